//! The reward emission schedule.
//!
//! Epoch `e` may mint at most
//!
//! ```text
//! scheduled(e) = max(floor, ⌊initial · r^⌊e / period⌋⌋)      r = (10_000 − decay_bps) / 10_000
//! budget(e)    = min(scheduled(e), lifetime_cap − minted_so_far)
//! ```
//!
//! `r^n` is computed by squaring in Q64.64 fixed point, rounding down at every step, so the
//! figure is never above the exact value and takes at most 64 squarings whatever `e` is. A halving
//! every `period` epochs is `decay_bps = 5_000`. Because the floor keeps emissions positive forever,
//! the lifetime cap is what bounds the supply: the sum of all budgets never exceeds it.

use crate::{CoreError, BPS_DENOMINATOR};

/// Bounds enforced by [`EmissionSchedule::validate`].
pub const MAX_DECAY_BPS: u16 = 9_999;

/// The emission schedule's parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct EmissionSchedule {
    /// Tokens (base units) epoch 0 may mint.
    pub initial_per_epoch: u64,
    /// How much the emission shrinks at each step, in basis points (5_000 halves it).
    pub decay_bps: u16,
    /// How many epochs pass between two steps.
    pub decay_period_epochs: u64,
    /// The emission never falls below this (until the lifetime cap is reached).
    pub floor_per_epoch: u64,
    /// The most that may ever be minted for rewards.
    pub lifetime_cap: u64,
}

const ONE_Q64: u128 = 1 << 64;

impl EmissionSchedule {
    /// Checks the documented bounds: a positive initial emission, a decay below 100%, a positive
    /// period, a floor no higher than the initial emission and a cap at least one initial emission.
    pub fn validate(&self) -> Result<(), CoreError> {
        let ok = self.initial_per_epoch > 0
            && self.decay_bps <= MAX_DECAY_BPS
            && self.decay_period_epochs > 0
            && self.floor_per_epoch <= self.initial_per_epoch
            && self.lifetime_cap >= self.initial_per_epoch;
        if ok {
            Ok(())
        } else {
            Err(CoreError::InvalidParameter)
        }
    }

    /// What the schedule allows in `epoch`, before the lifetime cap.
    pub fn scheduled(&self, epoch: u64) -> Result<u64, CoreError> {
        let steps = epoch
            .checked_div(self.decay_period_epochs)
            .ok_or(CoreError::InvalidParameter)?;
        let factor = pow_q64(retain_q64(self.decay_bps)?, steps)?;
        let decayed = u128::from(self.initial_per_epoch)
            .checked_mul(factor)
            .ok_or(CoreError::Overflow)?
            >> 64;
        let decayed = u64::try_from(decayed).map_err(|_| CoreError::Overflow)?;
        Ok(decayed.max(self.floor_per_epoch))
    }

    /// What `epoch` may mint given `minted_so_far`: the schedule, clipped to the lifetime cap.
    pub fn budget(&self, epoch: u64, minted_so_far: u64) -> Result<u64, CoreError> {
        let remaining = self.lifetime_cap.saturating_sub(minted_so_far);
        Ok(self.scheduled(epoch)?.min(remaining))
    }
}

/// `(10_000 − decay_bps) / 10_000` in Q64.64; exactly one when there is no decay.
fn retain_q64(decay_bps: u16) -> Result<u128, CoreError> {
    let retain = BPS_DENOMINATOR
        .checked_sub(u64::from(decay_bps))
        .ok_or(CoreError::InvalidParameter)?;
    (u128::from(retain) << 64)
        .checked_div(u128::from(BPS_DENOMINATOR))
        .ok_or(CoreError::Overflow)
}

/// `base^exp` in Q64.64 for `base ≤ 1`, rounding down at each product.
fn pow_q64(mut base: u128, mut exp: u64) -> Result<u128, CoreError> {
    if base > ONE_Q64 {
        return Err(CoreError::InvalidParameter);
    }
    let mut acc = ONE_Q64;
    while exp > 0 && acc > 0 {
        if exp & 1 == 1 {
            acc = mul_q64(acc, base)?;
        }
        exp >>= 1;
        if exp > 0 {
            base = mul_q64(base, base)?;
        }
    }
    Ok(acc)
}

/// Both factors are at most one (2^64), so the product is at most 2^128 − 2^65 + 1 unless both
/// are exactly one, which is handled without multiplying.
fn mul_q64(a: u128, b: u128) -> Result<u128, CoreError> {
    if a == ONE_Q64 {
        return Ok(b);
    }
    if b == ONE_Q64 {
        return Ok(a);
    }
    Ok(a.checked_mul(b).ok_or(CoreError::Overflow)? >> 64)
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn halving() -> EmissionSchedule {
        EmissionSchedule {
            initial_per_epoch: 1_000_000,
            decay_bps: 5_000,
            decay_period_epochs: 10,
            floor_per_epoch: 1_000,
            lifetime_cap: 30_000_000,
        }
    }

    #[test]
    fn halving_steps_every_period_down_to_the_floor() {
        let s = halving();
        assert_eq!(s.scheduled(0), Ok(1_000_000));
        assert_eq!(s.scheduled(9), Ok(1_000_000));
        assert_eq!(s.scheduled(10), Ok(500_000));
        assert_eq!(s.scheduled(25), Ok(250_000));
        assert_eq!(s.scheduled(100), Ok(1_000)); // 1e6 / 1024 = 976 < floor
        assert_eq!(s.scheduled(u64::MAX), Ok(1_000));
    }

    #[test]
    fn no_decay_is_flat() {
        let s = EmissionSchedule {
            decay_bps: 0,
            ..halving()
        };
        assert_eq!(s.scheduled(u64::MAX), Ok(1_000_000));
    }

    #[test]
    fn budget_is_clipped_by_the_lifetime_cap() {
        let s = halving();
        assert_eq!(s.budget(0, 29_999_000), Ok(1_000));
        assert_eq!(s.budget(0, 30_000_000), Ok(0));
        assert_eq!(s.budget(0, u64::MAX), Ok(0));
    }

    #[test]
    fn validation_bounds() {
        assert!(halving().validate().is_ok());
        for bad in [
            EmissionSchedule {
                initial_per_epoch: 0,
                ..halving()
            },
            EmissionSchedule {
                decay_bps: 10_000,
                ..halving()
            },
            EmissionSchedule {
                decay_period_epochs: 0,
                ..halving()
            },
            EmissionSchedule {
                floor_per_epoch: 1_000_001,
                ..halving()
            },
            EmissionSchedule {
                lifetime_cap: 999_999,
                ..halving()
            },
        ] {
            assert_eq!(bad.validate(), Err(CoreError::InvalidParameter), "{bad:?}");
        }
    }

    fn schedules() -> impl Strategy<Value = EmissionSchedule> {
        (
            1u64..,
            0u16..=MAX_DECAY_BPS,
            1u64..,
            any::<u64>(),
            any::<u64>(),
        )
            .prop_map(|(initial, decay, period, floor, cap)| EmissionSchedule {
                initial_per_epoch: initial,
                decay_bps: decay,
                decay_period_epochs: period,
                floor_per_epoch: floor % (initial + 1).max(1),
                lifetime_cap: cap.max(initial),
            })
    }

    proptest! {
        #[test]
        fn scheduled_is_monotone_bounded_and_never_fails(s in schedules(), e in any::<u64>(), d in 0u64..1_000) {
            let now = s.scheduled(e).unwrap();
            prop_assert!(now <= s.initial_per_epoch);
            prop_assert!(now >= s.floor_per_epoch);
            let later = s.scheduled(e.saturating_add(d)).unwrap();
            prop_assert!(later <= now);
        }

        #[test]
        fn minting_every_budget_never_exceeds_the_lifetime_cap(
            s in schedules(),
            start in any::<u64>(),
            stride in 1u64..1_000_000,
            take_bps in 0u64..=10_000,
        ) {
            let mut minted = 0u64;
            for i in 0..200u64 {
                let epoch = start.saturating_add(i.saturating_mul(stride));
                let budget = s.budget(epoch, minted).unwrap();
                // Mint the whole budget or a share of it.
                let mint = if i % 2 == 0 { budget } else { (u128::from(budget) * u128::from(take_bps) / 10_000) as u64 };
                minted = minted.checked_add(mint).unwrap();
                prop_assert!(minted <= s.lifetime_cap);
            }
        }
    }
}
