//! One module per instruction, each with its accounts struct and handler.
// Every module names its handler `handler`; callers use the module path, so the clash is harmless.
#![allow(ambiguous_glob_reexports)]

pub mod accept_admin;
pub mod buy_credits;
pub mod claim;
pub mod finalize;
pub mod initialize;
pub mod propose_admin;
pub mod propose_root;
pub mod seal_epoch;
pub mod set_guardian;
pub mod set_oracles;
pub mod set_paused;
pub mod settle_usage;
pub mod submit_price;
pub mod update_params;
pub mod veto;

pub use accept_admin::*;
pub use buy_credits::*;
pub use claim::*;
pub use finalize::*;
pub use initialize::*;
pub use propose_admin::*;
pub use propose_root::*;
pub use seal_epoch::*;
pub use set_guardian::*;
pub use set_oracles::*;
pub use set_paused::*;
pub use settle_usage::*;
pub use submit_price::*;
pub use update_params::*;
pub use veto::*;
