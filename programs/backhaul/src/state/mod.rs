//! Account types.

pub mod config;
pub mod epoch_record;
pub mod operator_claim;

pub use config::*;
pub use epoch_record::*;
pub use operator_claim::*;
