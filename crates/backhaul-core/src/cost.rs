//! What consumed credits cost their buyer, and how that cost funds rewards.
//!
//! Rewards are funded per buyer: the credits a buyer consumed in an epoch are valued at what that
//! buyer paid for them (tokens burned), and at most `k` times that value is paid, only to the
//! operators whose nodes served that buyer. A buyer that runs nodes under other keys therefore
//! gets back at most `k ≤ 1` times what it burned: wash trading never pays.
//!
//! ```text
//! cost(ΔC)  = ⌊ΔC · (T − cost_before) / (I − consumed_before)⌋   (all of it once ΔC reaches I − consumed_before)
//! pot(b)    = ⌊k_bps · cost(b) / 10_000⌋
//! pots      = pot(b) each, or the budget split in proportion to them when Σ pot exceeds it
//! ```
//!
//! `I` and `T` are the credits issued to the buyer and the tokens burned for them through the
//! epoch's end. The cost is the average cost of the credits the buyer has not consumed yet (the
//! weighted-average inventory method), so a buyer's cumulative cost never decreases, never exceeds
//! what it paid, reaches exactly what it paid once every credit is consumed, and depends only on
//! purchases made by the epoch's end: a later purchase, at any price, never changes it.

use crate::{CoreError, BPS_DENOMINATOR};

/// The most `k` may be: rewards never exceed what buyers paid for the credits they consumed.
pub const MAX_USAGE_CAP_BPS: u32 = 10_000;

/// A buyer's purchases through the end of an epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Purchases {
    /// Credits issued to the buyer.
    pub credits: u64,
    /// Tokens burned for them.
    pub tokens: u64,
}

/// A buyer's consumption so far: cumulative credits consumed and what they cost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Consumed {
    pub credits: u64,
    pub cost: u64,
}

/// A buyer's purchases through `epoch`, from the figures its on-chain credit account keeps:
/// everything when `epoch` is at or after the latest purchase's epoch, else what existed before
/// that epoch. Exact for every epoch from the one before the latest purchase on.
pub fn purchases_through(
    total: Purchases,
    purchase_epoch: u64,
    before_purchase_epoch: Purchases,
    epoch: u64,
) -> Purchases {
    if epoch >= purchase_epoch {
        total
    } else {
        before_purchase_epoch
    }
}

/// The cost of consuming `credits` more, after `before`, given the buyer's `purchases`: the
/// average cost of its credits not consumed yet. Consuming every remaining credit costs every
/// remaining token. Refuses consumption beyond the credits issued and a `before` that exceeds the
/// purchases (`InvalidParameter`).
pub fn consumption_cost(
    before: Consumed,
    purchases: Purchases,
    credits: u64,
) -> Result<u64, CoreError> {
    let credits_left = purchases
        .credits
        .checked_sub(before.credits)
        .ok_or(CoreError::InvalidParameter)?;
    let tokens_left = purchases
        .tokens
        .checked_sub(before.cost)
        .ok_or(CoreError::InvalidParameter)?;
    if credits > credits_left {
        return Err(CoreError::InvalidParameter);
    }
    if credits == credits_left {
        return Ok(tokens_left);
    }
    // credits < credits_left, so the divisor is positive.
    let cost = u128::from(credits)
        .checked_mul(u128::from(tokens_left))
        .ok_or(CoreError::Overflow)?
        .checked_div(u128::from(credits_left))
        .ok_or(CoreError::Overflow)?;
    u64::try_from(cost).map_err(|_| CoreError::Overflow)
}

/// `k` (basis points) times `cost`, rounded down: the most that consumption costing `cost` may
/// fund.
pub fn usage_value(cost: u64, usage_cap_bps: u32) -> Result<u64, CoreError> {
    let v = u128::from(cost)
        .checked_mul(u128::from(usage_cap_bps))
        .ok_or(CoreError::Overflow)?
        .checked_div(u128::from(BPS_DENOMINATOR))
        .ok_or(CoreError::Overflow)?;
    u64::try_from(v).map_err(|_| CoreError::Overflow)
}

/// What each buyer's consumption funds this epoch, given the epoch's budget: `k · cost` each, or,
/// when those add up to more than the budget, the budget split in proportion to them (largest
/// remainder). The pots never add up to more than the budget, and each is at most `k · cost`.
#[cfg(feature = "alloc")]
pub fn buyer_pots(
    budget: u64,
    usage_cap_bps: u32,
    costs: &[u64],
) -> Result<alloc::vec::Vec<u64>, CoreError> {
    let mut pots = alloc::vec::Vec::with_capacity(costs.len());
    let mut sum: u128 = 0;
    for c in costs {
        let v = usage_value(*c, usage_cap_bps)?;
        sum = sum.checked_add(u128::from(v)).ok_or(CoreError::Overflow)?;
        pots.push(v);
    }
    if sum <= u128::from(budget) {
        return Ok(pots);
    }
    crate::split::split_largest_remainder(budget, &pots)
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const fn bought(credits: u64, tokens: u64) -> Purchases {
        Purchases { credits, tokens }
    }

    #[test]
    fn average_cost_of_what_is_left() {
        // 100 credits for 50 tokens: half of them cost 25.
        assert_eq!(
            consumption_cost(Consumed::default(), bought(100, 50), 50),
            Ok(25)
        );
        // Then 100 more for 150 tokens: 150 credits left for 175 tokens.
        let before = Consumed {
            credits: 50,
            cost: 25,
        };
        assert_eq!(consumption_cost(before, bought(200, 200), 60), Ok(70));
        // The last credit takes every token left, so the whole purchase is eventually counted.
        assert_eq!(consumption_cost(before, bought(200, 200), 150), Ok(175));
        // Nothing consumed costs nothing; more than was issued is refused.
        assert_eq!(consumption_cost(before, bought(200, 200), 0), Ok(0));
        assert_eq!(
            consumption_cost(before, bought(200, 200), 151),
            Err(CoreError::InvalidParameter)
        );
        // A previous consumption beyond the purchases is refused, not wrapped.
        assert_eq!(
            consumption_cost(before, bought(40, 200), 0),
            Err(CoreError::InvalidParameter)
        );
    }

    #[test]
    fn purchases_after_the_epoch_are_not_seen() {
        let total = bought(500, 90);
        let before = bought(300, 60);
        assert_eq!(purchases_through(total, 4, before, 4), total);
        assert_eq!(purchases_through(total, 4, before, 9), total);
        assert_eq!(purchases_through(total, 4, before, 3), before);
    }

    #[test]
    fn pots_fit_the_budget() {
        assert_eq!(
            buyer_pots(1_000, 10_000, &[100, 50]),
            Ok(vec_of(&[100, 50]))
        );
        assert_eq!(buyer_pots(1_000, 8_000, &[100, 50]), Ok(vec_of(&[80, 40])));
        // Over the budget: split in proportion to k·cost.
        assert_eq!(buyer_pots(90, 10_000, &[100, 50]), Ok(vec_of(&[60, 30])));
        assert_eq!(buyer_pots(0, 10_000, &[100, 50]), Ok(vec_of(&[0, 0])));
        assert_eq!(usage_value(u64::MAX, MAX_USAGE_CAP_BPS), Ok(u64::MAX));
    }

    fn vec_of(v: &[u64]) -> alloc::vec::Vec<u64> {
        v.to_vec()
    }

    proptest! {
        /// Whatever the purchases and the order of consumption, the cumulative cost never
        /// decreases, never exceeds what was paid through the epoch, and equals it once every
        /// credit is consumed.
        #[test]
        fn cumulative_cost_is_monotone_and_bounded_by_what_was_paid(
            steps in proptest::collection::vec((0u64..1_000_000_000, 0u64..1_000_000_000, 0u64..=100), 1..40),
        ) {
            let mut purchases = Purchases::default();
            let mut consumed = Consumed::default();
            for (credits, tokens, percent) in steps {
                purchases.credits += credits;
                purchases.tokens += tokens;
                let left = purchases.credits - consumed.credits;
                let take = left * percent / 100;
                let cost = consumption_cost(consumed, purchases, take).unwrap();
                consumed.credits += take;
                consumed.cost += cost;
                prop_assert!(consumed.cost <= purchases.tokens);
                if consumed.credits == purchases.credits {
                    prop_assert_eq!(consumed.cost, purchases.tokens);
                }
            }
        }

        #[test]
        fn pots_never_exceed_k_times_cost_nor_the_budget(
            budget in any::<u64>(),
            k in 1u32..=MAX_USAGE_CAP_BPS,
            costs in proptest::collection::vec(0u64..u64::MAX / 64, 0..40),
        ) {
            let pots = buyer_pots(budget, k, &costs).unwrap();
            let sum: u128 = pots.iter().map(|p| u128::from(*p)).sum();
            prop_assert!(sum <= u128::from(budget));
            for (p, c) in pots.iter().zip(&costs) {
                prop_assert!(u128::from(*p) * 10_000 <= u128::from(*c) * u128::from(k));
            }
        }
    }
}
