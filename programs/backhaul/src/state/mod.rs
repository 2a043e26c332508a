//! Account types.

pub mod config;
pub mod credit_account;
pub mod epoch_ledger;
pub mod epoch_record;
pub mod operator_claim;
pub mod pda;
pub mod price_feed;

pub use config::*;
pub use credit_account::*;
pub use epoch_ledger::*;
pub use epoch_record::*;
pub use operator_claim::*;
pub use price_feed::*;
