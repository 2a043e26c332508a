//! The price rules against the attacks they exist for: a minority that is the fresh majority,
//! oracles removed from the set, and sealing without a fresh price (`docs/economics.md`).

use backhaul::error::BackhaulError as E;
use backhaul::state::EconomicsParams;
use backhaul_core::price::{price_band, submission_band, PriceBand};
use backhaul_tests::*;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::Signer;

const TOKEN: u64 = 1_000_000;
/// The honest price.
const P: u64 = 100_000;

/// The band the default economics allow a price posted at `from` to reach in `secs` seconds.
fn band(from: u64, secs: u64) -> PriceBand {
    price_band(from, secs, default_economics().price_max_change_bps).unwrap()
}

/// Oracle `i`'s own band at the clock's time, as the program computes it.
async fn own_band(env: &mut Env, i: usize) -> PriceBand {
    let key = env.oracles[i].pubkey();
    let previous = env.price_feed().await.submission_of(&key);
    let e = default_economics();
    let now = env.now().await;
    submission_band(previous, now, e.price_max_age_secs, e.price_max_change_bps).unwrap()
}

/// The attack on the per-update rule: in a 2-of-3 set, oracle 2's submission has just expired,
/// honest oracle 0's is a little old but fresh, and oracle 1 (never seen before, so its first
/// submission is free) walks the price down 20% per transaction, twenty times within a minute.
/// Under the old rule the posted price followed it to 1/87 of the truth and then refused the
/// honest oracle's true price as too large a jump. Now the posted price stays within the
/// per-minute band of the truth, oracle 1's own band refuses its jumps, an attacker walking at
/// its own band's edge does no better, and the honest oracle's true price is always accepted.
#[tokio::test]
async fn attack_minority_walks_the_price_down() {
    let mut env = Env::new().await;
    let max_age = default_economics().price_max_age_secs as i64;
    let t0 = env.now().await;
    env.submit_price(2, P).await.unwrap();
    env.set_time(t0 + max_age - 1).await;
    env.submit_price(0, P).await.unwrap();
    let posted_at = env.now().await;
    let feed = env.price_feed().await;
    assert_eq!((feed.credits_per_token, feed.posted_at), (P, posted_at));

    // Oracle 2's submission has expired; oracle 0 and the attacker are the fresh quorum.
    let mut price = P;
    let mut accepted = vec![];
    for k in 1..=20i64 {
        env.set_time(posted_at + 3 * k).await;
        price = (price * 8).div_ceil(10);
        match env.submit_price(1, price).await {
            Ok(()) => accepted.push(k),
            Err(e) => assert_eq!(
                custom_code(&e),
                Some(u32::from(E::PriceJumpTooLarge)),
                "{e}"
            ),
        }
        let posted = env.price_feed().await.credits_per_token;
        let allowed = band(P, 3 * k as u64);
        assert!(
            allowed.contains(posted),
            "after {k} transactions in {} s the price is {posted}, outside {allowed:?}",
            3 * k
        );
    }
    // Only its first submission, free, was accepted: the median of {P, 0.8 P} is 0.9 P, posted
    // as the band's edge three seconds after P.
    assert_eq!(accepted, vec![1]);
    let minute = band(P, 60);
    let posted = env.price_feed().await.credits_per_token;
    assert!(minute.contains(posted) && posted < P, "{posted}");
    assert!(
        posted >= P - P / 1_000,
        "{posted}: within 0.1% of the truth"
    );

    // The honest oracle's true price is accepted, however the posted price moved.
    env.set_time(posted_at + 61).await;
    env.submit_price(0, P).await.unwrap();
    assert!(band(P, 61).contains(env.price_feed().await.credits_per_token));

    // An attacker that keeps to its own band's lower edge, twenty times within the next minute,
    // moves the posted price no faster than the band allows from where it stood.
    let start = env.price_feed().await;
    for k in 1..=20i64 {
        env.set_time(posted_at + 61 + 3 * k).await;
        let edge = own_band(&mut env, 1).await.lower;
        env.submit_price(1, edge).await.unwrap();
    }
    let end = env.price_feed().await;
    let elapsed = (end.posted_at - start.posted_at) as u64;
    assert!(elapsed <= 60);
    assert!(band(start.credits_per_token, elapsed).contains(end.credits_per_token));
    assert!(band(P, 121).contains(end.credits_per_token));
    assert!(
        end.credits_per_token < start.credits_per_token,
        "it did move, slowly"
    );
    // The honest oracle is still not locked out.
    env.submit_price(0, P).await.unwrap();
}

/// Submissions of removed oracles stop counting and are dropped; the price they helped post is
/// no longer usable for purchases (nor for sealing) until the new set reaches quorum.
#[tokio::test]
async fn removed_oracles_stop_counting_and_their_price_waits_for_the_new_quorum() {
    let mut env = Env::new().await;
    let buyer = crate::util::buyer_with(&mut env, 10 * TOKEN).await;
    // Oracle 0 is to be replaced; the change is queued first and applied after the delay.
    let newcomer = Pubkey::new_unique();
    let set = vec![env.oracles[1].pubkey(), env.oracles[2].pubkey(), newcomer];
    let id = env
        .queue(GovernanceChange::Oracles {
            oracles: set,
            threshold: 2,
        })
        .await
        .unwrap();
    env.wait_for_change(id).await;
    let t0 = env.now().await;
    env.submit_price(0, 120_000).await.unwrap();
    env.submit_price(1, 100_000).await.unwrap();
    assert_eq!(env.price_feed().await.credits_per_token, 110_000);
    env.buy(&buyer, TOKEN, 110_000, buyer.pubkey())
        .await
        .unwrap();

    env.apply(id).await.unwrap();
    let feed = env.price_feed().await;
    assert!(feed.oracle_set_changed);
    assert_eq!(
        feed.submissions
            .iter()
            .map(|s| s.oracle)
            .collect::<Vec<_>>(),
        vec![env.oracles[1].pubkey()],
        "the removed oracle's submission is dropped"
    );
    assert_eq!(feed.credits_per_token, 110_000, "kept as the band's anchor");
    assert_program_err(
        env.buy(&buyer, TOKEN, 0, buyer.pubkey()).await,
        E::PriceStale,
    );
    assert_program_err(env.submit_price(0, 120_000).await, E::NotOracle);

    // The new set's quorum: oracle 1's earlier submission and oracle 2's. Counting oracle 0's
    // 120,000 the median would be 120,000; without it, it is the mean of 100,000 and 130,000.
    env.set_time(t0 + 3_600).await;
    env.submit_price(2, 130_000).await.unwrap();
    let feed = env.price_feed().await;
    assert!(!feed.oracle_set_changed);
    assert_eq!(
        (feed.credits_per_token, feed.posted_at),
        (115_000, t0 + 3_600)
    );
    env.buy(&buyer, TOKEN, 115_000, buyer.pubkey())
        .await
        .unwrap();
}

/// A submission is bounded by the oracle's own previous one only: far from it, refused with
/// `PriceJumpTooLarge` (the log names the band); after it expired, free; and however far other
/// oracles moved the posted price, never refused for that.
#[tokio::test]
async fn an_oracle_is_bounded_by_its_own_previous_submission_only() {
    let mut env = Env::new().await;
    let t0 = env.now().await;
    env.post_price(P).await;
    // In the same second no move at all; a minute later 99,668..=100,333.
    assert_program_err(env.submit_price(0, P + 1).await, E::PriceJumpTooLarge);
    env.set_time(t0 + 60).await;
    assert_eq!(own_band(&mut env, 0).await, band(P, 60));
    assert_program_err(env.submit_price(0, 100_334).await, E::PriceJumpTooLarge);
    assert_program_err(env.submit_price(0, 99_667).await, E::PriceJumpTooLarge);
    env.submit_price(0, 100_333).await.unwrap();
    env.submit_price(0, 100_333).await.unwrap();

    // Oracle 1 walks down at its own band's edge for an hour: the posted price (the mean of two)
    // follows at the band's pace, and oracle 0 is never refused for it.
    for k in 1..=6 {
        env.set_time(t0 + 60 + 600 * k).await;
        let edge = own_band(&mut env, 1).await.lower;
        env.submit_price(1, edge).await.unwrap();
        env.submit_price(0, 100_333).await.unwrap();
    }
    let feed = env.price_feed().await;
    assert!(
        feed.credits_per_token < 95_000,
        "{}",
        feed.credits_per_token
    );
    let one = feed
        .submissions
        .iter()
        .find(|s| s.oracle == env.oracles[1].pubkey())
        .unwrap()
        .credits_per_token;
    assert!(one < 85_000, "{one}");

    // Expired (older than the staleness bound): the next submission is free again.
    let max_age = default_economics().price_max_age_secs as i64;
    env.set_time(t0 + 60 + 3_600 + max_age + 1).await;
    env.submit_price(0, 3 * P).await.unwrap();
    // The posted price is positive only.
    assert_program_err(env.submit_price(2, 0).await, E::InvalidPrice);
}

/// The attacks on the paid-usage cap: a quorum declaring a ghost buyer's consumption (no credit
/// ever bought) or a cost nobody paid unlocks nothing, and the price sealed with an epoch (none,
/// stale, or set by whoever seals) plays no part: consumption is valued at what buyers paid.
#[tokio::test]
async fn attack_ghost_consumption_and_the_sealed_price_unlock_nothing() {
    let mut env = Env::new_uninitialized().await;
    let mut params = env.default_params();
    params.economics = EconomicsParams {
        usage_cap_bps: 8_000,
        ..default_economics()
    };
    env.initialize(params).await.unwrap();
    let ghost = Pubkey::new_unique();
    let op = Pubkey::new_unique();

    // Epoch 0: no price ever posted, no credit bought. Ghost consumption, or a cost nobody paid,
    // is refused; an allocation without paid usage is above the cap.
    env.end_epoch(0).await;
    env.seal(0).await.unwrap();
    let l: EpochLedger = env.account(&ledger_address(&env.config, 0)).await.unwrap();
    assert_eq!(
        (l.sealed, l.credits_per_token, l.price_posted_at),
        (true, 0, 0)
    );
    let usage = env.usage_tree(0, &[(ghost, 1_000 * P)]);
    let rewards = env.reward_tree(0, &[(op, TOKEN)]);
    let ghostly = env.proposal_with_usage(&rewards, 0, &usage, 0);
    assert_program_err(
        env.vote(0, 0, Env::with_cost(ghostly, 0, TOKEN)).await,
        E::UsageExceedsPurchases,
    );
    assert_program_err(env.vote(0, 0, ghostly).await, E::UsageExceedsPurchases);
    let empty = env.usage_tree(0, &[]);
    let unpaid = env.proposal_with_usage(&rewards, 0, &empty, 0);
    assert_program_err(
        env.vote(2, 0, Env::with_cost(unpaid, 0, TOKEN)).await,
        E::InconsistentProposal,
    );
    let nothing = env.reward_tree(0, &[]);
    env.run_epoch(0, env.proposal_with_usage(&nothing, 0, &empty, 0))
        .await;
    assert_eq!(env.config_state().await.total_minted, 0);

    // Epoch 1: a buyer pays 1,000 tokens and consumes every credit; the price is stale when the
    // epoch is sealed, and k = 0.8 still unlocks 800 tokens, not one more.
    env.post_price(P).await;
    let b = crate::util::buyer_with(&mut env, 1_000 * TOKEN).await;
    env.buy(&b, 1_000 * TOKEN, 0, b.pubkey()).await.unwrap();
    let max_age = default_economics().price_max_age_secs as i64;
    let end = GENESIS + 2 * EPOCH_SECS as i64;
    env.set_time(end + max_age + 1).await;
    env.seal(1).await.unwrap();
    let l: EpochLedger = env.account(&ledger_address(&env.config, 1)).await.unwrap();
    assert_eq!(l.credits_per_token, 0);
    let usage1 = env.usage_tree(1, &[(b.pubkey(), 1_000 * P)]);
    let over = env.reward_tree(1, &[(op, 800 * TOKEN + 1)]);
    let p_over = env.proposal_with_usage(&over, 0, &usage1, 0);
    assert_program_err(
        env.vote(0, 1, Env::with_cost(p_over, 0, 1_000 * TOKEN))
            .await,
        E::ExceedsPaidUsageCap,
    );
    // Claiming more cost than was burned is refused too.
    let right = env.reward_tree(1, &[(op, 800 * TOKEN)]);
    let p1 = env.proposal_with_usage(&right, 0, &usage1, 0);
    assert_program_err(
        env.vote(0, 1, Env::with_cost(p1, 0, 1_000 * TOKEN + 1))
            .await,
        E::UsageExceedsPurchases,
    );
    env.run_epoch(1, Env::with_cost(p1, 0, 1_000 * TOKEN)).await;
    assert_eq!(env.config_state().await.total_minted, 800 * TOKEN);
}
