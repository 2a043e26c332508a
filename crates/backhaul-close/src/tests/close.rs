//! Examples of the close, and its wash-trading bound as a property.

use super::{check_sums, key, reward, usage, Net, GIB, TOKEN};
use crate::{BuyerCredits, CloseError};
use backhaul_protocol::dataset::b58;
use backhaul_protocol::Key;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::collections::BTreeSet;

/// An honest buyer (100 tokens, served by operator A) and a wash trader (50 tokens) whose
/// clients only use nodes of its own operator W, sending far more than its credits pay for.
fn wash(usage_cap_bps: u32, scheduled: u64) -> (Net, [Key; 4]) {
    let mut n = Net::new(usage_cap_bps, scheduled);
    let (honest, honest_client) = (key("buyer", 0), key("client", 0));
    let (trader, trader_client) = (key("buyer", 1), key("client", 1));
    let (a, w) = (key("operator", 0), key("operator", 1));
    n.buy(honest, 100 * TOKEN);
    n.buy(trader, 50 * TOKEN);
    n.grant(honest, honest_client);
    n.grant(trader, trader_client);
    n.bind(key("node", 0), a);
    n.session(0, key("node", 0), honest_client, honest, 1, 2 * GIB, 3);
    for i in 1..4 {
        n.bind(key("node", i), w);
        n.session(0, key("node", i), trader_client, trader, i, 5 * GIB, 2);
    }
    (n, [honest, trader, a, w])
}

/// One purchase: tokens burned and the price they were burned at (credits per token).
fn bought(n: &mut Net, buyer: Key, purchases: &[(u64, u64)]) -> u64 {
    let mut c = BuyerCredits::default();
    for (tokens, price) in purchases {
        c.issued += backhaul_core::price::credits_for_tokens(*tokens, *price, 6).unwrap();
        c.tokens_burned += tokens;
    }
    n.credits.insert(buyer, c);
    c.tokens_burned
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(96))]

    /// For any k the program accepts, any schedule, net emissions and prices that moved
    /// between purchases, and any traffic: what a buyer that also runs nodes gains by paying
    /// its own nodes for traffic (its operator's reward with the wash traffic, less without
    /// it) is at most k times what it burned for that traffic, so never more than it burned.
    /// Its own nodes may also serve honest buyers, whose pots the wash traffic can only
    /// dilute. The split is the oracle's real close.
    #[test]
    fn wash_trading_never_returns_more_than_was_burned(
        k in 1u32..=10_000,
        scheduled in 0u64..5_000,
        net_cap in 0u64..500,
        burn_ema in 0u64..1_000,
        honest in proptest::collection::vec(
            // (tokens, price, GiB through A, GiB through W) per honest buyer
            (1u64..200, 10_000u64..400_000, 0u64..8, 0u64..8),
            0..4,
        ),
        wash_purchases in proptest::collection::vec((1u64..300, 10_000u64..400_000), 1..3),
        wash_gib in 0u64..40,
    ) {
        let close_with = |with_wash: bool| {
            let mut n = Net::new(k, scheduled * TOKEN);
            n.chain.net_emissions_cap = net_cap * TOKEN;
            n.chain.burn_ema = burn_ema * TOKEN;
            n.chain.burns_not_reemitted = u64::MAX / 4;
            let (a, w) = (key("operator", 0), key("operator", 9));
            n.bind(key("node", 0), a);
            n.bind(key("node", 9), w);
            let mut id = 0u8;
            for (i, (tokens, price, via_a, via_w)) in honest.iter().enumerate() {
                let (b, c) = (key("buyer", i as u8), key("client", i as u8));
                bought(&mut n, b, &[(tokens * TOKEN, *price)]);
                n.grant(b, c);
                for (node, gib) in [(key("node", 0), via_a), (key("node", 9), via_w)] {
                    if *gib > 0 {
                        id += 1;
                        n.session(0, node, c, b, id, gib * GIB, 2);
                    }
                }
            }
            let mut burned = 0;
            if with_wash {
                let (t, c) = (key("trader", 0), key("trader-client", 0));
                let purchases: Vec<(u64, u64)> =
                    wash_purchases.iter().map(|(t, p)| (t * TOKEN, *p)).collect();
                burned = bought(&mut n, t, &purchases);
                n.grant(t, c);
                if wash_gib > 0 {
                    id += 1;
                    n.session(0, key("node", 9), c, t, id, wash_gib * GIB, 2);
                }
            }
            let d = n.close(0, None).unwrap();
            check_sums(&d);
            (reward(&d, &w), burned, d)
        };
        let (with, burned, d) = close_with(true);
        let (without, _, _) = close_with(false);
        let gain = with.saturating_sub(without);
        proptest::prop_assert!(
            u128::from(gain) * 10_000 <= u128::from(burned) * u128::from(k),
            "gain {} for {} burned at k = {}", gain, burned, k
        );
        proptest::prop_assert!(gain <= burned);
        // And the epoch never mints more than k times what its consumption cost.
        proptest::prop_assert!(
            u128::from(d.allocation) * 10_000 <= u128::from(d.usage.usage_cost) * u128::from(k)
        );
    }
}

#[test]
fn a_wash_trader_gets_back_at_most_k_times_what_it_paid() {
    let (n, [honest, trader, a, w]) = wash(8_000, 1_000 * TOKEN);
    let d = n.close(0, None).unwrap();
    check_sums(&d);
    // The honest buyer consumed all its credits (2 GiB): they cost it 100 tokens, and 0.8 of
    // that goes to the operator that served it.
    let h = usage(&d, &honest);
    assert_eq!(
        (h.credits, h.cost, h.pot),
        (10_000_000, 100 * TOKEN, 80 * TOKEN)
    );
    assert_eq!(
        (h.purchased_credits, h.purchased_tokens),
        (10_000_000, 100 * TOKEN)
    );
    assert_eq!(reward(&d, &a), 80 * TOKEN);
    // The wash trader's 15 GiB count only as far as its credits go (1 GiB), which cost it
    // 50 tokens: its own operator gets 40, less than it burned.
    let t = usage(&d, &trader);
    assert_eq!((t.credits, t.bytes, t.cost), (5_000_000, GIB, 50 * TOKEN));
    assert_eq!(t.pot, 40 * TOKEN);
    assert_eq!(reward(&d, &w), 40 * TOKEN);
    assert!(reward(&d, &w) <= 8_000 * 50 * TOKEN / 10_000);
    assert_eq!(d.stats.bytes_over_credits, 14 * GIB);
    // The budget: k × 150 tokens, below the schedule; the pots use all of it.
    assert_eq!(d.budget.usage_cap, 120 * TOKEN);
    assert_eq!(d.budget.total, 120 * TOKEN);
    assert_eq!(d.allocation, 120 * TOKEN);
    assert_eq!(d.usage.usage_cost, 150 * TOKEN);
    assert_eq!(d.usage.cost_total, 150 * TOKEN);
    assert_eq!(
        d.served
            .iter()
            .map(|s| (s.buyer.clone(), s.operator.clone(), s.bytes, s.amount))
            .collect::<BTreeSet<_>>(),
        [
            (b58(&honest), b58(&a), 2 * GIB, 80 * TOKEN),
            (b58(&trader), b58(&w), GIB, 40 * TOKEN),
        ]
        .into_iter()
        .collect()
    );
}

#[test]
fn a_binding_budget_scales_the_pots_and_is_used_exactly() {
    // The schedule allows 30 tokens, less than the 80 + 40 the pots would be.
    let (n, [honest, trader, a, w]) = wash(8_000, 30 * TOKEN);
    let d = n.close(0, None).unwrap();
    check_sums(&d);
    assert_eq!(d.budget.usage_cap, 120 * TOKEN);
    assert_eq!(d.budget.total, 30 * TOKEN);
    assert_eq!(usage(&d, &honest).pot, 20 * TOKEN);
    assert_eq!(usage(&d, &trader).pot, 10 * TOKEN);
    assert_eq!((reward(&d, &a), reward(&d, &w)), (20 * TOKEN, 10 * TOKEN));
    assert_eq!(d.allocation, 30 * TOKEN);
    // A pot split across several operators sums exactly too, by largest remainder.
    let (mut n, [honest, _, a, _]) = wash(10_000, 100 * TOKEN - 1);
    let b = key("operator", 9);
    n.bind(key("node", 9), b);
    let client = key("client", 0);
    n.session(0, key("node", 9), client, honest, 7, GIB / 3, 1);
    n.buy(honest, 1_000 * TOKEN);
    n.buy(key("buyer", 1), 1_000 * TOKEN);
    let d = n.close(0, None).unwrap();
    check_sums(&d);
    assert_eq!(d.allocation, d.budget.total);
    assert_eq!(d.budget.total, 100 * TOKEN - 1);
    assert!(reward(&d, &a) > 0 && reward(&d, &b) > 0);
}

#[test]
fn later_purchases_do_not_change_the_cost() {
    let buyer = key("buyer", 0);
    let client = key("client", 0);
    let op = key("operator", 0);
    let mut n = Net::new(10_000, 1_000 * TOKEN);
    n.buy(buyer, 100 * TOKEN);
    n.grant(buyer, client);
    n.bind(key("node", 0), op);
    n.session(0, key("node", 0), client, buyer, 1, GIB, 2);
    let d0 = n.close(0, None).unwrap();
    check_sums(&d0);
    // Half of its credits, at 1 token per 100,000: 50 tokens.
    assert_eq!(usage(&d0, &buyer).cost, 50 * TOKEN);

    // The same epoch closed after the buyer bought 1,000,000 more credits in epoch 1 at nine
    // times the price: nothing changes, byte for byte.
    let mut later = Net { ..n };
    later.credits.remove(&buyer);
    later.buy_in(buyer, 0, 100 * TOKEN, 10_000_000);
    later.buy_in(buyer, 1, 900 * TOKEN, 1_000_000);
    assert_eq!(later.close(0, None).unwrap().to_bytes(), d0.to_bytes());

    // Epoch 1 sees that purchase: the other 5,000,000 credits consumed cost the average of
    // what is left, 6,000,000 credits for 950 tokens.
    later.finalized(&d0);
    later.session(1, key("node", 0), client, buyer, 2, GIB, 1);
    let d1 = later.close(1, Some(&d0)).unwrap();
    check_sums(&d1);
    let u = usage(&d1, &buyer);
    assert_eq!(u.credits, 5_000_000);
    assert_eq!(u.cost, 5_000_000 * 950 * TOKEN / 6_000_000);
    assert_eq!(u.cumulative_cost, 50 * TOKEN + u.cost);
    assert_eq!(
        (u.purchased_credits, u.purchased_tokens),
        (11_000_000, 1_000 * TOKEN)
    );
    assert_eq!(d1.parameters.previous_usage_cost_total, 50 * TOKEN);
    assert_eq!(d1.allocation, u.cost);
    assert_eq!(reward(&d1, &op), u.cost);

    // The previous dataset must be the one the chain finalized, costs included.
    let mut wrong = Net { ..later };
    wrong.chain.last_usage_cost_total += 1;
    assert!(matches!(
        wrong.close(1, Some(&d0)),
        Err(CloseError::PreviousMismatch { cost, chain_cost, .. })
            if cost == 50 * TOKEN && chain_cost == 50 * TOKEN + 1
    ));
    wrong.chain.last_usage_cost_total -= 1;
    let mut tampered = d0.clone();
    tampered.usage.leaves[0].cumulative_cost += 1;
    assert!(matches!(
        wrong.close(1, Some(&tampered)),
        Err(CloseError::InconsistentPrevious(_))
    ));
}

#[test]
fn a_late_close_gives_the_same_dataset_before_and_after_later_purchases() {
    let buyer = key("buyer", 0);
    let client = key("client", 0);
    let op = key("operator", 0);
    let mut n = Net::new(10_000, 1_000 * TOKEN);
    n.grant(buyer, client);
    n.bind(key("node", 0), op);
    n.buy_in(buyer, 0, 100 * TOKEN, 10_000_000);
    // 3 GiB served in epoch 0, worth 15,000,000 credits: more than the buyer had by its end.
    n.session(0, key("node", 0), client, buyer, 1, 3 * GIB, 2);
    let first = n.close(0, None).unwrap();
    check_sums(&first);
    let u = usage(&first, &buyer);
    assert_eq!(
        (u.credits, u.purchased_credits, u.purchased_tokens),
        (10_000_000, 10_000_000, 100 * TOKEN)
    );

    // The chain stalls with epoch 0 not finalized; the buyer buys in each of epochs 1 to 8 at
    // another price, and the oracles close epoch 0 again after each purchase, reading its
    // account anew: the same dataset, byte for byte.
    for e in 1..=8 {
        n.buy_in(buyer, e, 10 * TOKEN, 3_000_000);
        assert_eq!(
            n.close(0, None).unwrap().to_bytes(),
            first.to_bytes(),
            "read after the purchase of epoch {e}"
        );
    }
    // A purchase in a ninth epoch after it drops the checkpoint that answered: the account only
    // bounds what the buyer had by the end of epoch 0 (what it had before epoch 2), and a close
    // that reads it now counts more.
    n.buy_in(buyer, 9, 10 * TOKEN, 3_000_000);
    let late = n.close(0, None).unwrap();
    check_sums(&late);
    assert_eq!(usage(&late, &buyer).purchased_credits, 13_000_000);
}

#[test]
fn without_paid_usage_nothing_is_minted() {
    // Credits that cost nothing (none burned for them) fund nothing, however much is served.
    let (mut n, [honest, trader, a, w]) = wash(10_000, 1_000 * TOKEN);
    for b in [honest, trader] {
        if let Some(c) = n.credits.get_mut(&b) {
            c.tokens_burned = 0;
        }
    }
    let d = n.close(0, None).unwrap();
    check_sums(&d);
    assert!(d.usage.credits_consumed > 0);
    assert_eq!(
        (d.usage.usage_cost, d.budget.total, d.allocation),
        (0, 0, 0)
    );
    assert_eq!((reward(&d, &a), reward(&d, &w)), (0, 0));
    assert_eq!(
        d.rewards.leaf_count, 2,
        "operators that served are in the tree"
    );
    // Nor does an epoch without receipts.
    n.receipts.clear();
    let d = n.close(0, None).unwrap();
    assert_eq!((d.budget.total, d.allocation), (0, 0));
    assert!(d.served.is_empty());
}

#[test]
fn buyers_that_consumed_nothing_keep_their_cost_and_show_no_purchases() {
    let (mut n, [honest, trader, _, w]) = wash(10_000, 1_000 * TOKEN);
    let d0 = n.close(0, None).unwrap();
    n.finalized(&d0);
    // In epoch 1 only the wash trader's operator serves the honest buyer.
    n.receipts.clear();
    let honest_client = key("client", 0);
    n.buy(honest, 200 * TOKEN);
    n.session(1, key("node", 1), honest_client, honest, 9, GIB / 2, 1);
    let d1 = n.close(1, Some(&d0)).unwrap();
    check_sums(&d1);
    let t = usage(&d1, &trader);
    assert_eq!((t.credits, t.bytes, t.cost, t.pot), (0, 0, 0, 0));
    assert_eq!((t.purchased_credits, t.purchased_tokens), (0, 0));
    assert_eq!(t.cumulative_cost, usage(&d0, &trader).cumulative_cost);
    let h = usage(&d1, &honest);
    // 2,500,000 of the 10,000,000 credits left (20,000,000 bought for 200 tokens) cost 25.
    assert_eq!((h.credits, h.cost), (2_500_000, 25 * TOKEN));
    assert_eq!(reward(&d1, &w), 25 * TOKEN);
}

#[test]
fn the_same_inputs_in_any_order_give_the_same_bytes() {
    // The schedule binds: the pots are scaled to it.
    let mut n = Net::new(7_500, 300 * TOKEN);
    for b in 0..4u8 {
        n.buy(key("buyer", b), (u64::from(b) + 1) * 100 * TOKEN);
        for c in 0..2u8 {
            n.grant(key("buyer", b), key("client", b * 2 + c));
        }
    }
    for i in 0..6u8 {
        n.bind(key("node", i), key("operator", i % 4));
    }
    for b in 0..4u8 {
        for c in 0..2u8 {
            let client = key("client", b * 2 + c);
            for i in 0..6u8 {
                if (b + c + i) % 3 != 0 {
                    let bytes = u64::from(b + 1) * u64::from(i + 1) * 37_000_000;
                    n.session(0, key("node", i), client, key("buyer", b), i, bytes, 3);
                }
            }
        }
    }
    let first = n.close(0, None).unwrap();
    check_sums(&first);
    assert_eq!(first.allocation, 300 * TOKEN);
    assert!(first.served.len() > 10, "{:?}", first.served);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for _ in 0..5 {
        n.receipts.shuffle(&mut rng);
        n.bindings.shuffle(&mut rng);
        n.grants.shuffle(&mut rng);
        let mut entries: Vec<_> = n.credits.drain().collect();
        entries.shuffle(&mut rng);
        n.credits = entries.into_iter().collect();
        assert_eq!(n.close(0, None).unwrap().to_bytes(), first.to_bytes());
    }
    // And on top of a previous epoch.
    n.finalized(&first);
    for r in &mut n.receipts {
        r.receipt.epoch = 1;
    }
    let second = n.close(1, Some(&first)).unwrap();
    check_sums(&second);
    n.receipts.shuffle(&mut rng);
    assert_eq!(
        n.close(1, Some(&first)).unwrap().to_bytes(),
        second.to_bytes()
    );
}
