//! Why a close fails.

/// Why a close produced no dataset.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CloseError {
    #[error("arithmetic overflow while closing epoch {0}")]
    Overflow(u64),
    #[error("the previous dataset is for epoch {found}, not {expected}")]
    WrongPrevious { expected: u64, found: u64 },
    #[error("the previous dataset holds an unreadable key: {0}")]
    BadPrevious(String),
    #[error("the previous dataset is inconsistent: {0}")]
    InconsistentPrevious(String),
    #[error("the previous dataset's totals (rewards {reward}, usage {usage}, usage cost {cost}) differ from the chain's ({chain_reward}, {chain_usage}, {chain_cost}); import the dataset the chain finalized")]
    PreviousMismatch {
        reward: u64,
        usage: u64,
        cost: u64,
        chain_reward: u64,
        chain_usage: u64,
        chain_cost: u64,
    },
    #[error("buyer {buyer}'s consumption cannot be valued in epoch {epoch}: what it consumed before costs more than it paid through the epoch (its credit account and the previous dataset disagree)")]
    ConsumptionExceedsPurchases { buyer: String, epoch: u64 },
    #[error("receipts must be pushed in (client, session) order")]
    Unordered,
    #[error("a tree could not be built: {0}")]
    Tree(backhaul_core::CoreError),
}
