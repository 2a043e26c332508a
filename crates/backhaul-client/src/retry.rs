//! When and how long to wait before trying a request again.

use std::time::Duration;

/// Exponential backoff, bounded in attempts and in total time.
///
/// The `n`th retry (`n` from 1) waits `min(max_backoff, initial_backoff × 2^(n−1))`, reduced by
/// up to half at random when `jitter` is set, or exactly what the oracle's `Retry-After` asks
/// for. A request stops after `max_attempts` attempts, or as soon as the next wait would end
/// after `max_elapsed` from its first attempt; each attempt's timeout is also cut to what is
/// left of `max_elapsed`, so one request never takes much longer than that.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (0 counts as 1).
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub max_elapsed: Duration,
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(10),
            max_elapsed: Duration::from_secs(60),
            jitter: true,
        }
    }
}

impl RetryPolicy {
    /// One attempt, no retries.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// The wait before retry number `retry` (1 for the first retry), before jitter.
    pub fn backoff(&self, retry: u32) -> Duration {
        let exponent = retry.saturating_sub(1).min(31);
        self.initial_backoff
            .saturating_mul(1u32 << exponent)
            .min(self.max_backoff)
    }

    /// The wait before retry number `retry`: the oracle's `Retry-After` when it sent one,
    /// otherwise the backoff with jitter applied.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(wait) = retry_after {
            return wait;
        }
        let base = self.backoff(retry);
        if self.jitter {
            // Somewhere in [base / 2, base].
            base.mul_f64(0.5 + rand::random::<f64>() * 0.5)
        } else {
            base
        }
    }

    pub(crate) fn attempts(&self) -> u32 {
        self.max_attempts.max(1)
    }
}

/// `Retry-After` in seconds (the form the oracle sends); an HTTP date is ignored.
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1_000),
            max_elapsed: Duration::from_secs(30),
            jitter: false,
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = policy();
        let waits: Vec<u128> = (1..=7).map(|n| p.backoff(n).as_millis()).collect();
        assert_eq!(waits, vec![100, 200, 400, 800, 1000, 1000, 1000]);
        // Huge retry numbers neither overflow nor exceed the cap.
        assert_eq!(p.backoff(u32::MAX), Duration::from_millis(1_000));
        assert_eq!(p.delay(3, None), Duration::from_millis(400));
    }

    #[test]
    fn jitter_stays_within_half_and_full_backoff() {
        let p = RetryPolicy {
            jitter: true,
            ..policy()
        };
        let mut seen_below_full = false;
        for _ in 0..200 {
            let d = p.delay(3, None);
            assert!(
                d >= Duration::from_millis(200) && d <= Duration::from_millis(400),
                "{d:?}"
            );
            seen_below_full |= d < Duration::from_millis(399);
        }
        assert!(seen_below_full, "jitter never reduced the wait");
    }

    #[test]
    fn retry_after_overrides_backoff() {
        let p = policy();
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
        assert_eq!(parse_retry_after(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }

    #[test]
    fn zero_attempts_means_one() {
        let p = RetryPolicy {
            max_attempts: 0,
            ..policy()
        };
        assert_eq!(p.attempts(), 1);
        assert_eq!(RetryPolicy::none().attempts(), 1);
    }
}
