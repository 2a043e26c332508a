//! An epoch's reward budget under burn-and-mint with capped net emissions.
//!
//! ```text
//! ema(e)       = ⌊(ema(e−1) · (N − 1) + burned(e)) / N⌋             N = smoothing epochs
//! scheduled(e) = the emission schedule (see `emission`), limited by what the lifetime cap leaves
//! net(e)       = min(ema(e), net_emissions_cap, burned through e − re-emitted before e)
//! usage_cap(e) = ⌊k_bps · cost(e) / 10_000⌋      cost(e) = tokens buyers paid for the credits consumed in e
//! budget(e)    = min(scheduled(e) + net(e), usage_cap(e))
//! ```
//!
//! The lifetime cap bounds the scheduled part, which is new supply. The net part only re-mints
//! what buyers burned: by induction `Σ ema ≤ Σ burned` (each step gives
//! `N·ema(e) ≤ (N−1)·ema(e−1) + burned(e)`, so `Σ ema + (N−1)·ema(last) ≤ Σ burned`), so
//! re-emissions can never exceed burns under one N; the third term makes that hold by construction
//! when N (or anything else) changes between epochs, instead of halting on the invariant.
//!
//! The usage cap ties the whole budget to paid usage, valued at what buyers actually paid for the
//! credits they consumed (see [`crate::cost`]), never at a price that moves after the purchase:
//! `0 < k ≤ 1`, so no epoch mints more than its buyers burned for what they consumed, and the
//! oracle's per-buyer split (`cost::buyer_pots`) pays each buyer's part only to the nodes that
//! served it. See `docs/economics.md` for a worked example.

use crate::cost::usage_value;
pub use crate::cost::MAX_USAGE_CAP_BPS;
use crate::emission::EmissionSchedule;
use crate::CoreError;

/// Bounds enforced by [`NetEmissionParams::validate`].
pub const MAX_SMOOTHING_EPOCHS: u64 = 1_000;

/// Parameters of net emissions and the paid-usage cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct NetEmissionParams {
    /// The most re-minted per epoch on top of the schedule (0 turns net emissions off).
    pub net_emissions_cap: u64,
    /// N of the exponential moving average of burns (1 = no smoothing).
    pub smoothing_epochs: u64,
    /// k in basis points, from 1 to 10,000: the budget never exceeds k × what buyers paid for
    /// the credits consumed in the epoch. There is no setting that turns the cap off.
    pub usage_cap_bps: u32,
}

impl NetEmissionParams {
    pub fn validate(&self) -> Result<(), CoreError> {
        if (1..=MAX_SMOOTHING_EPOCHS).contains(&self.smoothing_epochs)
            && (1..=MAX_USAGE_CAP_BPS).contains(&self.usage_cap_bps)
        {
            Ok(())
        } else {
            Err(CoreError::InvalidParameter)
        }
    }
}

/// What happened in the epoch, as sealed on-chain and proposed by the oracles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct EpochActivity {
    /// Tokens burned for credits during the epoch.
    pub tokens_burned: u64,
    /// What buyers paid for the credits consumed in the epoch, in tokens (the usage tree's
    /// cost increase; see [`crate::cost`]).
    pub usage_cost: u64,
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
    /// The paid-usage cap: k × what buyers paid for the credits consumed.
    pub usage_cap: u64,
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
    /// Above k times what buyers paid for the credits consumed.
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
        let usage_cap = usage_value(activity.usage_cost, params.usage_cap_bps)?;
        let uncapped = scheduled_room.checked_add(net).ok_or(CoreError::Overflow)?;
        Ok(Self {
            scheduled,
            scheduled_room,
            burn_ema,
            net,
            usage_cap,
            total: uncapped.min(usage_cap),
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
            usage_cap_bps: 10_000,
        }
    }

    fn activity(burned: u64, usage_cost: u64) -> EpochActivity {
        EpochActivity {
            tokens_burned: burned,
            usage_cost,
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
        // Previous EMA 70 tokens; 140 tokens burned this epoch; the credits consumed cost their
        // buyers 1,200 tokens.
        let b = EpochBudget::compute(
            &schedule(),
            0,
            0,
            70 * TOKEN,
            &p,
            &activity(140 * TOKEN, 1_200 * TOKEN),
        )
        .unwrap();
        assert_eq!(b.scheduled, 1_000 * TOKEN);
        assert_eq!(b.burn_ema, 80 * TOKEN); // (70·6 + 140) / 7
        assert_eq!(b.net, 80 * TOKEN);
        assert_eq!(b.usage_cap, 960 * TOKEN); // 0.8 × 1,200
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
        // With more paid usage the schedule and net emissions bind: 1,000 scheduled + 80 re-minted.
        let b = EpochBudget::compute(
            &schedule(),
            0,
            0,
            70 * TOKEN,
            &p,
            &activity(140 * TOKEN, 2_000 * TOKEN),
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
            &activity(0, u64::MAX),
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
    fn no_paid_usage_means_no_budget() {
        let b = EpochBudget::compute(&schedule(), 0, 0, 0, &params(), &activity(500 * TOKEN, 0))
            .unwrap();
        assert_eq!((b.usage_cap, b.total), (0, 0));
        assert_eq!(b.split(1), Err(BudgetExceeded::PaidUsageCap));
    }

    #[test]
    fn k_is_between_one_basis_point_and_one() {
        for (k, ok) in [(0, false), (1, true), (10_000, true), (10_001, false)] {
            let p = NetEmissionParams {
                usage_cap_bps: k,
                ..params()
            };
            assert_eq!(p.validate().is_ok(), ok, "k = {k}");
        }
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
            usage_cost: u64::MAX,
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
            k in 1u32..=MAX_USAGE_CAP_BPS,
            cost in any::<u64>(),
            minted in any::<u64>(),
            epoch in any::<u64>(),
        ) {
            let p = NetEmissionParams { net_emissions_cap: cap, smoothing_epochs: n, usage_cap_bps: k };
            let a = EpochActivity { tokens_burned: burned, usage_cost: cost, burns_not_reemitted: u64::MAX };
            let b = EpochBudget::compute(&schedule(), epoch, minted, ema, &p, &a).unwrap();
            prop_assert!(b.net <= cap);
            prop_assert!(b.scheduled_room <= schedule().lifetime_cap.saturating_sub(minted));
            prop_assert!(b.total <= b.scheduled_room + b.net);
            // Never more than what buyers paid for what they consumed.
            prop_assert!(b.total as u128 * 10_000 <= cost as u128 * k as u128);
            prop_assert!(b.total <= cost);
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
                let p = NetEmissionParams { net_emissions_cap: cap, smoothing_epochs: n, usage_cap_bps: 10_000 };
                let a = EpochActivity { burns_not_reemitted: burned - reminted, ..activity(b, u64::MAX) };
                let budget = EpochBudget::compute(&schedule(), 1_000_000, schedule().lifetime_cap, ema, &p, &a).unwrap();
                ema = budget.burn_ema;
                reminted += budget.split(budget.total).unwrap().net;
                prop_assert!(reminted <= burned);
            }
        }

        #[test]
        fn the_usage_cap_binds_exactly_when_paid_usage_is_below_the_uncapped_budget(
            cost in 0u64..10_000_000_000,
            k in 1u32..=MAX_USAGE_CAP_BPS,
            burned in 0u64..1_000_000_000_000,
        ) {
            let p = NetEmissionParams { usage_cap_bps: k, ..params() };
            let capped = EpochBudget::compute(&schedule(), 3, 0, 0, &p, &activity(burned, cost)).unwrap();
            let uncapped = capped.scheduled_room + capped.net;
            let cap = capped.usage_cap;
            prop_assert_eq!(cap as u128, cost as u128 * k as u128 / 10_000);
            if cap < uncapped {
                prop_assert_eq!(capped.total, cap);
                prop_assert_eq!(capped.split(cap + 1), Err(BudgetExceeded::PaidUsageCap));
            } else {
                prop_assert_eq!(capped.total, uncapped);
            }
        }
    }
}
