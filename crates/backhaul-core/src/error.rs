//! The one error type of the pure crate.

use core::fmt;

/// Why a pure computation refused its inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoreError {
    /// An intermediate or final value does not fit its integer type.
    Overflow,
    /// The mint would take the rate limiter's bucket above its capacity.
    RateLimited,
    /// A parameter is outside its documented bounds.
    InvalidParameter,
    /// Two leaves of one tree name the same account.
    DuplicateLeaf,
    /// A tree needs at least one leaf.
    EmptyTree,
}

impl fmt::Display for CoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CoreError::Overflow => "arithmetic overflow",
            CoreError::RateLimited => "mint rate limit exceeded",
            CoreError::InvalidParameter => "parameter out of bounds",
            CoreError::DuplicateLeaf => "two leaves name the same account",
            CoreError::EmptyTree => "a tree needs at least one leaf",
        })
    }
}

#[cfg(feature = "std")]
impl std::error::Error for CoreError {}
