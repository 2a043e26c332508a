//! A windowed mint rate limiter: a bucket that drains linearly over its window.
//!
//! The bucket's level after `elapsed` seconds is `level · (window − min(elapsed, window)) / window`
//! (rounded down). A mint of `amount` is allowed when the drained level plus `amount` stays within
//! the capacity, so over any window at most about one capacity (two, at the very edge) can be
//! minted, however the mints are spread.

use crate::CoreError;

/// The limiter's parameters and state, as the program stores them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct MintBucket {
    /// Length of the window in seconds (positive).
    pub window_secs: u64,
    /// The most the bucket can hold.
    pub capacity: u64,
    /// The level at `last_ts`.
    pub level: u64,
    /// When the level was last written.
    pub last_ts: i64,
}

impl MintBucket {
    /// Checks the bounds: a positive window and capacity.
    pub fn validate(&self) -> Result<(), CoreError> {
        if self.window_secs == 0 || self.capacity == 0 {
            return Err(CoreError::InvalidParameter);
        }
        Ok(())
    }

    /// The level at `now` after draining. A clock that went backwards drains nothing.
    pub fn level_at(&self, now: i64) -> Result<u64, CoreError> {
        if self.window_secs == 0 {
            return Err(CoreError::InvalidParameter);
        }
        let elapsed = u64::try_from(i128::from(now).saturating_sub(i128::from(self.last_ts)))
            .unwrap_or(0)
            .min(self.window_secs);
        let remaining = self.window_secs.saturating_sub(elapsed);
        let level = u128::from(self.level)
            .checked_mul(u128::from(remaining))
            .ok_or(CoreError::Overflow)?
            .checked_div(u128::from(self.window_secs))
            .ok_or(CoreError::InvalidParameter)?;
        u64::try_from(level).map_err(|_| CoreError::Overflow)
    }

    /// How much could be minted at `now`.
    pub fn available_at(&self, now: i64) -> Result<u64, CoreError> {
        Ok(self.capacity.saturating_sub(self.level_at(now)?))
    }

    /// The bucket after minting `amount` at `now`, or [`CoreError::RateLimited`].
    pub fn consume(&self, now: i64, amount: u64) -> Result<Self, CoreError> {
        let level = self
            .level_at(now)?
            .checked_add(amount)
            .ok_or(CoreError::RateLimited)?;
        if level > self.capacity {
            return Err(CoreError::RateLimited);
        }
        Ok(Self {
            level,
            last_ts: now.max(self.last_ts),
            ..*self
        })
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bucket() -> MintBucket {
        MintBucket {
            window_secs: 100,
            capacity: 1_000,
            level: 0,
            last_ts: 0,
        }
    }

    #[test]
    fn fills_then_drains_linearly() {
        let b = bucket().consume(0, 1_000).unwrap();
        assert_eq!(b.consume(0, 1), Err(CoreError::RateLimited));
        assert_eq!(b.level_at(50), Ok(500));
        assert_eq!(b.available_at(50), Ok(500));
        let b = b.consume(50, 500).unwrap();
        assert_eq!(b.level, 1_000);
        assert_eq!(b.level_at(150), Ok(0));
        assert_eq!(b.consume(150, 1_000).unwrap().level, 1_000);
    }

    #[test]
    fn a_clock_going_backwards_drains_nothing_and_huge_amounts_are_refused() {
        let b = bucket().consume(10, 600).unwrap();
        assert_eq!(b.level_at(5), Ok(600));
        assert_eq!(bucket().consume(0, u64::MAX), Err(CoreError::RateLimited));
        let full = MintBucket {
            capacity: u64::MAX,
            level: u64::MAX,
            ..bucket()
        };
        assert_eq!(full.consume(0, 1), Err(CoreError::RateLimited));
        assert_eq!(
            MintBucket {
                window_secs: 0,
                ..bucket()
            }
            .level_at(0),
            Err(CoreError::InvalidParameter)
        );
    }

    proptest! {
        #[test]
        fn never_more_than_twice_the_capacity_in_any_window(
            mints in proptest::collection::vec((0i64..50, 0u64..2_000), 1..200)
        ) {
            let mut b = bucket();
            let mut now = 0i64;
            let mut log: std::vec::Vec<(i64, u64)> = std::vec::Vec::new();
            for (step, amount) in mints {
                now += step;
                if let Ok(next) = b.consume(now, amount) {
                    b = next;
                    log.push((now, amount));
                }
                prop_assert!(b.level <= b.capacity);
            }
            for &(t, _) in &log {
                let in_window: u64 = log.iter().filter(|(u, _)| *u >= t && *u < t + 100).map(|(_, a)| a).sum();
                prop_assert!(in_window <= 2 * b.capacity);
            }
        }
    }
}
