//! One module per instruction, each with its accounts struct and handler.
// Every module names its handler `handler`; callers use the module path, so the clash is harmless.
#![allow(ambiguous_glob_reexports)]

pub mod accept_admin;
pub mod apply_change;
pub mod buy_credits;
pub mod cancel_change;
pub mod claim;
pub mod claim_from_buffer;
pub mod close_proof_buffer;
pub mod deposit_bond;
pub mod finalize;
pub mod initialize;
pub mod open_proof_buffer;
pub mod propose_admin;
pub mod propose_root;
pub mod prove_fraud;
pub mod queue_change;
pub mod seal_epoch;
pub mod set_paused;
pub mod settle_from_buffer;
pub mod settle_usage;
pub mod submit_price;
pub mod unbond;
pub mod veto;
pub mod withdraw_bond;
pub mod write_proof_buffer;

pub use accept_admin::*;
pub use apply_change::*;
pub use buy_credits::*;
pub use cancel_change::*;
pub use claim::*;
pub use claim_from_buffer::*;
pub use close_proof_buffer::*;
pub use deposit_bond::*;
pub use finalize::*;
pub use initialize::*;
pub use open_proof_buffer::*;
pub use propose_admin::*;
pub use propose_root::*;
pub use prove_fraud::*;
pub use queue_change::*;
pub use seal_epoch::*;
pub use set_paused::*;
pub use settle_from_buffer::*;
pub use settle_usage::*;
pub use submit_price::*;
pub use unbond::*;
pub use veto::*;
pub use withdraw_bond::*;
pub use write_proof_buffer::*;
