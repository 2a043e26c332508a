//! An epoch's reward budget under burn-and-mint with capped net emissions.
//!
//! ```text
//! ema(e)       = ⌊(ema(e−1) · (N − 1) + burned(e)) / N⌋             N = smoothing epochs
//! scheduled(e) = the emission schedule (see `emission`), limited by what the lifetime cap leaves
//! net(e)       = min(ema(e), net_emissions_cap, burned through e − re-emitted before e)
//! usage_cap(e) = ⌊k_bps · tokens_for_credits(consumed(e)) / 10_000⌋   (only when k_bps > 0)
//! budget(e)    = min(scheduled(e) + net(e), usage_cap(e))
//! ```
//!
//! The lifetime cap bounds the scheduled part, which is new supply. The net part only re-mints
//! what buyers burned: by induction `Σ ema ≤ Σ burned` (each step gives
//! `N·ema(e) ≤ (N−1)·ema(e−1) + burned(e)`, so `Σ ema + (N−1)·ema(last) ≤ Σ burned`), so
//! re-emissions can never exceed burns under one N; the third term makes that hold by construction
//! when N (or anything else) changes between epochs, instead of halting on the invariant. The usage cap ties the whole budget to paid usage: with
//! `k < 1` (below 10_000 bps) paying yourself for fake traffic returns less than it burns.
//! See `docs/economics.md` for a worked example.

use crate::emission::EmissionSchedule;
use crate::price::tokens_for_credits;
use crate::{CoreError, BPS_DENOMINATOR};

/// Bounds enforced by [`NetEmissionParams::validate`].
pub const MAX_SMOOTHING_EPOCHS: u64 = 1_000;
/// The paid-usage multiple can be at most 100×.
pub const MAX_USAGE_CAP_BPS: u32 = 1_000_000;

/// Parameters of net emissions and the paid-usage cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct NetEmissionParams {
    /// The most re-minted per epoch on top of the schedule (0 turns net emissions off).
    pub net_emissions_cap: u64,
    /// N of the exponential moving average of burns (1 = no smoothing).
    pub smoothing_epochs: u64,
    /// k in basis points: the budget never exceeds k × the token value of the credits consumed
    /// in the epoch. 0 turns the cap off.
    pub usage_cap_bps: u32,
}

impl NetEmissionParams {
    pub fn validate(&self) -> Result<(), CoreError> {
        if (1..=MAX_SMOOTHING_EPOCHS).contains(&self.smoothing_epochs)
            && self.usage_cap_bps <= MAX_USAGE_CAP_BPS
        {
            Ok(())
        } else {
            Err(CoreError::InvalidParameter)
        }
    }
}

/// What happened in the epoch, as sealed on-chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct EpochActivity {
    /// Tokens burned for credits during the epoch.
    pub tokens_burned: u64,
    /// Credits consumed during the epoch (the usage tree's increase).
    pub credits_consumed: u64,
    /// The price sealed with the epoch (credits per whole token), 0 if none was ever posted.
    pub credits_per_token: u64,
    /// The mint's decimals.
    pub decimals: u8,
    /// Tokens burned through the end of the epoch (every finalized epoch's burns plus this one's)
    /// minus everything re-minted before it: net emissions never exceed it.
    pub burns_not_reemitted: u64,
}

/// The moving average of burns after an epoch that burned `burned`.
pub fn next_burn_ema(prev: u64, burned: u64, smoothing_epochs: u64) -> Result<u64, CoreError> {
    if smoothing_epochs == 0 {
        return Err(CoreError::InvalidParameter);
    }
    let weight = u128::from(smoothing_epochs.saturating_sub(1));
    let sum = u128::from(prev)
        .checked_mul(weight)
        .and_then(|v| v.checked_add(u128::from(burned)))
        .ok_or(CoreError::Overflow)?;
    let ema = sum
        .checked_div(u128::from(smoothing_epochs))
        .ok_or(CoreError::Overflow)?;
    u64::try_from(ema).map_err(|_| CoreError::Overflow)
}

/// An epoch's budget and its parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochBudget {
    /// The schedule's emission for the epoch, before the lifetime cap.
    pub scheduled: u64,
    /// The scheduled part after the lifetime cap.
    pub scheduled_room: u64,
    /// The moving average of burns including this epoch (stored at finalize).
    pub burn_ema: u64,
    /// Net emissions allowed: `min(burn_ema, cap, burns_not_reemitted)`.
    pub net: u64,
    /// The paid-usage cap, when configured.
    pub usage_cap: Option<u64>,
    /// What the epoch may mint.
    pub total: u64,
}

/// Which limit an allocation broke, checked in this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BudgetExceeded {
    /// Above the schedule's emission plus net emissions.
    Schedule,
    /// Above what the lifetime cap leaves plus net emissions.
    LifetimeCap,
    /// Above k times the value of the credits consumed.
    PaidUsageCap,
}

/// How a valid allocation splits between new supply and re-minted burns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllocationSplit {
    /// Counted against the lifetime cap.
    pub scheduled: u64,
    /// Re-minted from burns.
    pub net: u64,
}

impl EpochBudget {
    /// Computes the budget of `epoch` given what the schedule already minted and the previous
    /// moving average of burns.
    pub fn compute(
        schedule: &EmissionSchedule,
        epoch: u64,
        scheduled_minted: u64,
        prev_burn_ema: u64,
        params: &NetEmissionParams,
        activity: &EpochActivity,
    ) -> Result<Self, CoreError> {
        let scheduled = schedule.scheduled(epoch)?;
        let scheduled_room = schedule.budget(epoch, scheduled_minted)?;
        let burn_ema = next_burn_ema(
            prev_burn_ema,
            activity.tokens_burned,
            params.smoothing_epochs,
        )?;
        let net = burn_ema
            .min(params.net_emissions_cap)
            .min(activity.burns_not_reemitted);
        let usage_cap = if params.usage_cap_bps == 0 {
            None
        } else {
            let value = tokens_for_credits(
                activity.credits_consumed,
                activity.credits_per_token,
                activity.decimals,
            )?;
            let cap = u128::from(value)
                .checked_mul(u128::from(params.usage_cap_bps))
                .ok_or(CoreError::Overflow)?
                .checked_div(u128::from(BPS_DENOMINATOR))
                .ok_or(CoreError::Overflow)?;
            Some(u64::try_from(cap).unwrap_or(u64::MAX))
        };
        let uncapped = scheduled_room.checked_add(net).ok_or(CoreError::Overflow)?;
        let total = usage_cap.map_or(uncapped, |cap| uncapped.min(cap));
        Ok(Self {
            scheduled,
            scheduled_room,
            burn_ema,
            net,
            usage_cap,
            total,
        })
    }

    /// Checks `allocation` against each limit and splits it: the scheduled part first, the rest
    /// re-minted from burns.
    pub fn split(&self, allocation: u64) -> Result<AllocationSplit, BudgetExceeded> {
        let above =
            |limit: u64, extra: u64| limit.checked_add(extra).is_some_and(|l| allocation > l);
        if above(self.scheduled, self.net) {
            return Err(BudgetExceeded::Schedule);
        }
        if above(self.scheduled_room, self.net) {
            return Err(BudgetExceeded::LifetimeCap);
        }
        if allocation > self.total {
            return Err(BudgetExceeded::PaidUsageCap);
        }
        let scheduled = allocation.min(self.scheduled_room);
        Ok(AllocationSplit {
            scheduled,
            net: allocation.saturating_sub(scheduled),
        })
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TOKEN: u64 = 1_000_000;

    fn schedule() -> EmissionSchedule {
        EmissionSchedule {
            initial_per_epoch: 1_000 * TOKEN,
            decay_bps: 5_000,
            decay_period_epochs: 30,
            floor_per_epoch: 10 * TOKEN,
            lifetime_cap: 50_000 * TOKEN,
        }
    }

    fn params() -> NetEmissionParams {
        NetEmissionParams {
            net_emissions_cap: 200 * TOKEN,
            smoothing_epochs: 7,
            usage_cap_bps: 0,
        }
    }

    fn activity(burned: u64, consumed: u64) -> EpochActivity {
        EpochActivity {
            tokens_burned: burned,
            credits_consumed: consumed,
            credits_per_token: 100_000,
            decimals: 6,
            burns_not_reemitted: u64::MAX,
        }
    }

    /// The worked example of docs/economics.md.
    #[test]
    fn worked_example() {
        let p = NetEmissionParams {
            usage_cap_bps: 8_000,
            ..params()
        };
        // Previous EMA 70 tokens; 140 tokens burned this epoch; 1,200 tokens' worth of credits consumed.
        let b = EpochBudget::compute(
            &schedule(),
            0,
            0,
            70 * TOKEN,
            &p,
            &activity(140 * TOKEN, 120_000_000),
        )
        .unwrap();
        assert_eq!(b.scheduled, 1_000 * TOKEN);
        assert_eq!(b.burn_ema, 80 * TOKEN); // (70·6 + 140) / 7
        assert_eq!(b.net, 80 * TOKEN);
        assert_eq!(b.usage_cap, Some(960 * TOKEN)); // 0.8 × 1,200
        assert_eq!(b.total, 960 * TOKEN);
        assert_eq!(
            b.split(960 * TOKEN),
            Ok(AllocationSplit {
                scheduled: 960 * TOKEN,
                net: 0
            })
        );
        assert_eq!(b.split(961 * TOKEN), Err(BudgetExceeded::PaidUsageCap));
        assert_eq!(b.split(1_081 * TOKEN), Err(BudgetExceeded::Schedule));
        // Without the usage cap the full 1,080 is available: 1,000 scheduled + 80 re-minted.
        let b = EpochBudget::compute(
            &schedule(),
            0,
            0,
            70 * TOKEN,
            &params(),
            &activity(140 * TOKEN, 0),
        )
        .unwrap();
        assert_eq!(b.total, 1_080 * TOKEN);
        assert_eq!(
            b.split(1_080 * TOKEN),
            Ok(AllocationSplit {
                scheduled: 1_000 * TOKEN,
                net: 80 * TOKEN
            })
        );
    }

    #[test]
    fn the_lifetime_cap_limits_only_the_scheduled_part() {
        let b = EpochBudget::compute(
            &schedule(),
            0,
            49_900 * TOKEN,
            70 * TOKEN,
            &params(),
            &activity(0, 0),
        )
        .unwrap();
        assert_eq!(b.scheduled_room, 100 * TOKEN);
        assert_eq!(b.burn_ema, 60 * TOKEN);
        assert_eq!(b.total, 160 * TOKEN);
        assert_eq!(b.split(161 * TOKEN), Err(BudgetExceeded::LifetimeCap));
        assert_eq!(
            b.split(160 * TOKEN),
            Ok(AllocationSplit {
                scheduled: 100 * TOKEN,
                net: 60 * TOKEN
            })
        );
    }

    #[test]
    fn no_price_means_no_usage_value() {
        let p = NetEmissionParams {
            usage_cap_bps: 10_000,
            ..params()
        };
        let a = EpochActivity {
            credits_per_token: 0,
            ..activity(0, 1_000)
        };
        let b = EpochBudget::compute(&schedule(), 0, 0, 0, &p, &a).unwrap();
        assert_eq!((b.usage_cap, b.total), (Some(0), 0));
    }

    #[test]
    fn extreme_inputs_do_not_overflow() {
        let p = NetEmissionParams {
            net_emissions_cap: u64::MAX,
            smoothing_epochs: 1,
            usage_cap_bps: MAX_USAGE_CAP_BPS,
        };
        let s = EmissionSchedule {
            initial_per_epoch: u64::MAX,
            decay_bps: 0,
            decay_period_epochs: 1,
            floor_per_epoch: 0,
            lifetime_cap: u64::MAX,
        };
        let a = EpochActivity {
            tokens_burned: u64::MAX,
            credits_consumed: u64::MAX,
            credits_per_token: 1,
            decimals: 18,
            burns_not_reemitted: u64::MAX,
        };
        // scheduled + net overflows u64: refused as an error, never wrapped.
        assert_eq!(
            EpochBudget::compute(&s, 0, 0, u64::MAX, &p, &a),
            Err(CoreError::Overflow)
        );
        assert_eq!(
            next_burn_ema(u64::MAX, u64::MAX, MAX_SMOOTHING_EPOCHS),
            Ok(u64::MAX)
        );
        assert_eq!(next_burn_ema(1, 1, 0), Err(CoreError::InvalidParameter));
    }

    proptest! {
        #[test]
        fn the_budget_never_exceeds_its_caps(
            ema in 0u64..u64::MAX / 4,
            burned in 0u64..u64::MAX / 4,
            cap in 0u64..u64::MAX / 4,
            n in 1u64..=MAX_SMOOTHING_EPOCHS,
            k in 0u32..=MAX_USAGE_CAP_BPS,
            consumed in any::<u64>(),
            price in 0u64..u64::MAX,
            minted in any::<u64>(),
            epoch in any::<u64>(),
        ) {
            let p = NetEmissionParams { net_emissions_cap: cap, smoothing_epochs: n, usage_cap_bps: k };
            let a = EpochActivity { tokens_burned: burned, credits_consumed: consumed, credits_per_token: price, decimals: 6, burns_not_reemitted: u64::MAX };
            let b = EpochBudget::compute(&schedule(), epoch, minted, ema, &p, &a).unwrap();
            prop_assert!(b.net <= cap);
            prop_assert!(b.scheduled_room <= schedule().lifetime_cap.saturating_sub(minted));
            prop_assert!(b.total <= b.scheduled_room + b.net);
            if k > 0 {
                let value = tokens_for_credits(consumed, price, 6).unwrap() as u128;
                prop_assert!(b.total as u128 <= value * k as u128 / 10_000);
            }
            let split = b.split(b.total).unwrap();
            prop_assert_eq!(split.scheduled + split.net, b.total);
            prop_assert!(split.net <= b.net);
            prop_assert!(b.split(b.total.saturating_add(1)).is_err() || b.total == u64::MAX);
        }

        #[test]
        fn the_moving_average_converges_to_a_steady_burn(
            start in 0u64..1_000_000_000_000,
            steady in 0u64..1_000_000_000_000,
            n in 1u64..50,
        ) {
            let mut ema = start;
            for _ in 0..(60 * n) {
                ema = next_burn_ema(ema, steady, n).unwrap();
            }
            // Within N tokens of the steady burn (flooring can hold it just below).
            prop_assert!(ema.abs_diff(steady) <= n, "ema {} steady {}", ema, steady);
        }

        #[test]
        fn re_emissions_never_exceed_burns(burns in proptest::collection::vec(0u64..1_000_000_000_000, 1..200), n in 1u64..30) {
            let mut ema = 0u64;
            let (mut burned, mut reminted) = (0u128, 0u128);
            for b in burns {
                ema = next_burn_ema(ema, b, n).unwrap();
                burned += b as u128;
                reminted += ema as u128;
                prop_assert!(reminted <= burned);
            }
        }

        #[test]
        fn re_emissions_never_exceed_burns_when_smoothing_changes(
            steps in proptest::collection::vec((0u64..1_000_000_000_000, 1u64..30, 0u64..2_000_000_000_000), 1..100),
        ) {
            // N and the cap change between epochs (as a governance change may); each epoch
            // re-mints its full net allowance, the most an allocation may take.
            let mut ema = 0u64;
            let (mut burned, mut reminted) = (0u64, 0u64);
            for (b, n, cap) in steps {
                burned += b;
                let p = NetEmissionParams { net_emissions_cap: cap, smoothing_epochs: n, usage_cap_bps: 0 };
                let a = EpochActivity { burns_not_reemitted: burned - reminted, ..activity(b, 0) };
                let budget = EpochBudget::compute(&schedule(), 1_000_000, schedule().lifetime_cap, ema, &p, &a).unwrap();
                ema = budget.burn_ema;
                reminted += budget.split(budget.total).unwrap().net;
                prop_assert!(reminted <= burned);
            }
        }

        #[test]
        fn the_usage_cap_binds_exactly_when_usage_value_is_below_the_uncapped_budget(
            consumed in 0u64..10_000_000_000,
            k in 1u32..=MAX_USAGE_CAP_BPS,
            burned in 0u64..1_000_000_000_000,
        ) {
            let p = NetEmissionParams { usage_cap_bps: k, ..params() };
            let a = activity(burned, consumed);
            let capped = EpochBudget::compute(&schedule(), 3, 0, 0, &p, &a).unwrap();
            let free = EpochBudget::compute(&schedule(), 3, 0, 0, &NetEmissionParams { usage_cap_bps: 0, ..p }, &a).unwrap();
            let cap = capped.usage_cap.unwrap();
            if cap < free.total {
                prop_assert_eq!(capped.total, cap);
                prop_assert_eq!(capped.split(cap + 1), Err(BudgetExceeded::PaidUsageCap));
            } else {
                prop_assert_eq!(capped.total, free.total);
            }
        }
    }
}
