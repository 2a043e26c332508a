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

/// How many purchase epochs a buyer's credit account remembers ([`PurchaseCheckpoints`]).
pub const PURCHASE_CHECKPOINTS: usize = 8;

/// The first purchase of one of a buyer's purchase epochs: the epoch, and what the buyer had
/// bought before it (its credit account's `issued` and `tokens_burned` just before).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PurchaseCheckpoint {
    pub epoch: u64,
    pub before: Purchases,
}

/// A buyer's latest [`PURCHASE_CHECKPOINTS`] purchase epochs, oldest first: what its on-chain
/// credit account keeps (`CreditAccount.checkpoints`), and what `buy_credits` does to them
/// ([`PurchaseCheckpoints::record`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PurchaseCheckpoints {
    len: u8,
    slots: [PurchaseCheckpoint; PURCHASE_CHECKPOINTS],
}

impl PurchaseCheckpoints {
    /// The checkpoints `checkpoints`, in the order given; only the newest (last)
    /// [`PURCHASE_CHECKPOINTS`] of them when there are more.
    pub fn new(checkpoints: &[PurchaseCheckpoint]) -> Self {
        let newest = checkpoints
            .get(checkpoints.len().saturating_sub(PURCHASE_CHECKPOINTS)..)
            .unwrap_or_default();
        let mut out = PurchaseCheckpoints::default();
        for (slot, c) in out.slots.iter_mut().zip(newest) {
            *slot = *c;
        }
        // At most PURCHASE_CHECKPOINTS, which fits a u8.
        out.len = u8::try_from(newest.len()).unwrap_or(u8::MAX);
        out
    }

    /// The checkpoints in use, oldest first.
    pub fn as_slice(&self) -> &[PurchaseCheckpoint] {
        self.slots
            .get(..usize::from(self.len))
            .unwrap_or(&self.slots)
    }

    /// What `buy_credits` does before it adds a purchase made in `epoch` to the buyer's
    /// purchases so far, `total`: the first purchase of an epoch after the latest purchase epoch
    /// (or the buyer's first purchase) adds the checkpoint `(epoch, total)`, dropping the oldest
    /// when all [`PURCHASE_CHECKPOINTS`] are in use; another purchase in the latest purchase
    /// epoch changes nothing. Refuses an epoch before the latest purchase epoch
    /// (`InvalidParameter`): the clock only moves forward.
    pub fn record(&mut self, epoch: u64, total: Purchases) -> Result<(), CoreError> {
        if let Some(latest) = self.as_slice().last() {
            if latest.epoch == epoch {
                return Ok(());
            }
            if latest.epoch > epoch {
                return Err(CoreError::InvalidParameter);
            }
        }
        let checkpoint = PurchaseCheckpoint {
            epoch,
            before: total,
        };
        let len = usize::from(self.len);
        if let Some(slot) = self.slots.get_mut(len) {
            *slot = checkpoint;
            self.len = self.len.checked_add(1).ok_or(CoreError::Overflow)?;
        } else {
            self.slots.rotate_left(1);
            let newest = self.slots.last_mut().ok_or(CoreError::Overflow)?;
            *newest = checkpoint;
        }
        Ok(())
    }
}

/// A buyer's purchases through the end of `epoch`, from what its on-chain credit account keeps:
/// `total`, everything it ever bought, and `checkpoints`, its latest purchase epochs in increasing
/// order with what it had bought before each (see [`PurchaseCheckpoints`]). The answer is
/// everything when `epoch` is at or after the latest purchase epoch (or there is none), else
/// what the buyer had bought before the earliest checkpoint after `epoch`.
///
/// **When it is exact.** The answer equals what the buyer bought in epochs `≤ epoch` exactly when
/// the buyer made purchases in at most [`PURCHASE_CHECKPOINTS`] distinct epochs after `epoch` by
/// the time the account is read: the earliest of them is then still a checkpoint, and its
/// `before` is precisely the purchases through `epoch`. Purchases made after `epoch` only ever
/// add checkpoints after it, so while that count stays within [`PURCHASE_CHECKPOINTS`] the answer
/// for `epoch` is the same however much later the account is read. An epoch is closed while the
/// chain's clock is in a later epoch `c`, and the buyer can have bought in at most `c − epoch`
/// epochs after it: every close of `epoch` that reads the account before epoch
/// `epoch + PURCHASE_CHECKPOINTS + 1` starts gets the exact figures, whatever the buyer buys in
/// between ([`purchases_through_is_exact`] tells from the account alone when it can be sure).
///
/// Beyond that, the checkpoint that would answer has been dropped and the answer is what the
/// buyer had bought before its oldest kept checkpoint: an upper bound (it counts purchases of
/// epochs after `epoch` but before that checkpoint), never above `total`, which grows with every
/// further purchase epoch, so two reads of the account can then give different figures.
pub fn purchases_through(
    total: Purchases,
    checkpoints: &[PurchaseCheckpoint],
    epoch: u64,
) -> Purchases {
    checkpoints
        .iter()
        .find(|c| c.epoch > epoch)
        .map_or(total, |c| c.before)
}

/// Whether the account's figures alone show that [`purchases_through`] of `epoch` is exact: it is
/// when no checkpoint was ever dropped (fewer than [`PURCHASE_CHECKPOINTS`] of them, or nothing
/// bought before the oldest), and when `epoch` is at least the one before the oldest checkpoint's
/// (every dropped checkpoint was of an earlier epoch, so none of them was after `epoch`). When
/// this says no, the figures may still be exact, but the account cannot tell.
pub fn purchases_through_is_exact(checkpoints: &[PurchaseCheckpoint], epoch: u64) -> bool {
    match checkpoints.first() {
        None => true,
        Some(oldest) => {
            checkpoints.len() < PURCHASE_CHECKPOINTS
                || oldest.before == Purchases::default()
                || epoch.saturating_add(1) >= oldest.epoch
        }
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

    const fn at(epoch: u64, credits: u64, tokens: u64) -> PurchaseCheckpoint {
        PurchaseCheckpoint {
            epoch,
            before: bought(credits, tokens),
        }
    }

    #[test]
    fn purchases_after_the_epoch_are_not_seen() {
        // Bought 300 for 60 in epoch 2, 200 for 30 in epoch 4.
        let total = bought(500, 90);
        let checkpoints = [at(2, 0, 0), at(4, 300, 60)];
        assert_eq!(purchases_through(total, &checkpoints, 4), total);
        assert_eq!(purchases_through(total, &checkpoints, 9), total);
        assert_eq!(purchases_through(total, &checkpoints, 3), bought(300, 60));
        assert_eq!(purchases_through(total, &checkpoints, 2), bought(300, 60));
        assert_eq!(purchases_through(total, &checkpoints, 1), bought(0, 0));
        // No checkpoint: nothing was bought, or the caller passes totals already through the
        // epoch.
        assert_eq!(purchases_through(total, &[], 0), total);
        for e in 0..10 {
            assert!(purchases_through_is_exact(&checkpoints, e));
        }
    }

    #[test]
    fn a_ninth_purchase_epoch_drops_the_oldest() {
        let mut history = PurchaseCheckpoints::default();
        let mut total = Purchases::default();
        // One purchase of 10 credits for 1 token in each of epochs 0, 2, 4, …, 18; two in
        // epoch 4.
        for e in (0..20).step_by(2) {
            for _ in 0..if e == 4 { 2 } else { 1 } {
                history.record(e, total).unwrap();
                total.credits += 10;
                total.tokens += 1;
            }
        }
        let kept: alloc::vec::Vec<u64> = history.as_slice().iter().map(|c| c.epoch).collect();
        assert_eq!(kept, [4, 6, 8, 10, 12, 14, 16, 18]);
        assert_eq!(history.as_slice()[0].before, bought(20, 2));
        let cps = history.as_slice();
        // Exact from the epoch before the oldest kept checkpoint on.
        assert_eq!(purchases_through(total, cps, 3), bought(20, 2));
        assert_eq!(purchases_through(total, cps, 4), bought(40, 4));
        assert_eq!(purchases_through(total, cps, 17), bought(100, 10));
        assert_eq!(purchases_through(total, cps, 18), total);
        assert!(purchases_through_is_exact(cps, 3));
        // Before that, a bound: epochs 0 and 1 really had 10 for 1.
        assert_eq!(purchases_through(total, cps, 1), bought(20, 2));
        assert!(!purchases_through_is_exact(cps, 1));
        // The clock never goes back.
        assert_eq!(history.record(17, total), Err(CoreError::InvalidParameter));
        // The newest eight of a longer list.
        let many: alloc::vec::Vec<_> = (0..12).map(|e| at(e, e, e)).collect();
        assert_eq!(PurchaseCheckpoints::new(&many).as_slice(), &many[4..]);
        assert_eq!(PurchaseCheckpoints::new(&many[..3]).as_slice(), &many[..3]);
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

    /// Purchases `(epoch, credits, tokens)` in the order they were made: epochs never go back,
    /// often repeat, sometimes skip.
    fn purchase_sequence() -> impl Strategy<Value = alloc::vec::Vec<(u64, u64, u64)>> {
        let gap = prop_oneof![3 => Just(0u64), 4 => Just(1u64), 1 => 2u64..6];
        proptest::collection::vec((gap, 1u64..1_000_000, 0u64..1_000_000), 0..40).prop_map(
            |steps| {
                let mut epoch = 0;
                steps
                    .into_iter()
                    .map(|(gap, credits, tokens)| {
                        epoch += gap;
                        (epoch, credits, tokens)
                    })
                    .collect()
            },
        )
    }

    /// The totals and checkpoints of a credit account after `purchases`, as `buy_credits`
    /// keeps them.
    fn account_after(purchases: &[(u64, u64, u64)]) -> (Purchases, PurchaseCheckpoints) {
        let mut total = Purchases::default();
        let mut history = PurchaseCheckpoints::default();
        for (epoch, credits, tokens) in purchases {
            history.record(*epoch, total).unwrap();
            total.credits += credits;
            total.tokens += tokens;
        }
        (total, history)
    }

    /// What `purchases` bought in epochs up to `epoch`.
    fn bought_through(purchases: &[(u64, u64, u64)], epoch: u64) -> Purchases {
        let mut p = Purchases::default();
        for (e, credits, tokens) in purchases {
            if *e <= epoch {
                p.credits += credits;
                p.tokens += tokens;
            }
        }
        p
    }

    /// In how many distinct epochs after `epoch` `purchases` bought.
    fn epochs_after(purchases: &[(u64, u64, u64)], epoch: u64) -> usize {
        let mut epochs: alloc::vec::Vec<u64> = purchases
            .iter()
            .map(|p| p.0)
            .filter(|e| *e > epoch)
            .collect();
        epochs.dedup();
        epochs.len()
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

        /// For any purchases and any epoch the account still covers (the buyer bought in at
        /// most `PURCHASE_CHECKPOINTS` epochs after it), the account's figures are exactly the
        /// purchases of the epochs up to it; for older epochs they bound them.
        #[test]
        fn purchases_through_is_exact_within_the_checkpoints(purchases in purchase_sequence()) {
            let (total, history) = account_after(&purchases);
            let last = purchases.last().map_or(0, |p| p.0);
            for epoch in 0..=last + 1 {
                let through = purchases_through(total, history.as_slice(), epoch);
                let expected = bought_through(&purchases, epoch);
                if epochs_after(&purchases, epoch) <= PURCHASE_CHECKPOINTS {
                    prop_assert_eq!(through, expected, "epoch {}", epoch);
                } else {
                    prop_assert!(through.credits >= expected.credits);
                    prop_assert!(through.tokens >= expected.tokens);
                    prop_assert!(through.credits <= total.credits);
                }
                if purchases_through_is_exact(history.as_slice(), epoch) {
                    prop_assert_eq!(through, expected, "claimed exact for epoch {}", epoch);
                }
            }
        }

        /// Read once an epoch has ended, and read again after later purchases: the figures for
        /// the epoch do not change while the buyer has bought in at most
        /// `PURCHASE_CHECKPOINTS` epochs after it.
        #[test]
        fn later_purchases_do_not_change_an_ended_epoch(purchases in purchase_sequence()) {
            // The account as read after each number of purchases.
            let reads: alloc::vec::Vec<_> =
                (0..=purchases.len()).map(|n| account_after(&purchases[..n])).collect();
            let last = purchases.last().map_or(0, |p| p.0);
            for epoch in 0..=last + 1 {
                // The epoch has ended by the read after `n` purchases when every later purchase
                // is in a later epoch.
                let ended = purchases.iter().filter(|p| p.0 <= epoch).count();
                let mut seen = None;
                for (n, (total, history)) in reads.iter().enumerate().skip(ended) {
                    if epochs_after(&purchases[..n], epoch) > PURCHASE_CHECKPOINTS {
                        break;
                    }
                    let through = purchases_through(*total, history.as_slice(), epoch);
                    let first = *seen.get_or_insert(through);
                    prop_assert_eq!(through, first, "epoch {} read after {} purchases", epoch, n);
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
