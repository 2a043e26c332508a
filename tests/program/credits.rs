//! Prices, credit purchases and usage settlement.

use backhaul::error::BackhaulError as E;
use backhaul_sdk::ix;
use backhaul_tests::*;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};

const TOKEN: u64 = 1_000_000;
/// $1 = 100,000 credits and the token at $1.
const PRICE: u64 = 100_000;

async fn with_price() -> Env {
    let mut env = Env::new().await;
    env.post_price(PRICE).await;
    env
}

#[tokio::test]
async fn a_quorum_posts_the_median_of_the_fresh_submissions() {
    let mut env = Env::new().await;
    let t0 = env.now().await;
    env.submit_price(0, 110_000).await.unwrap();
    let feed: PriceFeed = env.account(&price_feed_address(&env.config)).await.unwrap();
    assert_eq!(feed.credits_per_token, 0, "one oracle alone posts nothing");
    // The first quorum posts freely: the median of two is their mean.
    env.submit_price(1, 100_000).await.unwrap();
    let feed: PriceFeed = env.account(&price_feed_address(&env.config)).await.unwrap();
    assert_eq!((feed.credits_per_token, feed.posted_at), (105_000, t0));
    // Three fresh submissions an hour later: the median of {110k, 100k, 115k} is 110k, within
    // an hour's band of 105k.
    env.set_time(t0 + 3_600).await;
    env.submit_price(2, 115_000).await.unwrap();
    let feed: PriceFeed = env.account(&price_feed_address(&env.config)).await.unwrap();
    assert_eq!(
        (feed.credits_per_token, feed.posted_at),
        (110_000, t0 + 3_600)
    );
    assert_eq!(feed.submissions.len(), 3);
    // Oracles 0 and 1 expire: fewer than m fresh submissions post nothing new.
    env.set_time(t0 + 3_601).await;
    env.submit_price(2, 115_000).await.unwrap();
    let feed: PriceFeed = env.account(&price_feed_address(&env.config)).await.unwrap();
    assert_eq!(
        (feed.credits_per_token, feed.posted_at),
        (110_000, t0 + 3_600)
    );
    assert_eq!(feed.submissions.len(), 1);
}

#[tokio::test]
async fn a_median_beyond_the_band_moves_the_price_to_the_band_edge() {
    let mut env = with_price().await;
    let t0 = env.now().await;
    // Both oracles have expired after an hour and a second; both submit 200,000 freely. The
    // median is 200,000, an hour's band from 100,000 reaches 122,139.
    env.set_time(t0 + 3_601).await;
    env.submit_price(0, 200_000).await.unwrap();
    let feed: PriceFeed = env.account(&price_feed_address(&env.config)).await.unwrap();
    assert_eq!(
        feed.credits_per_token, PRICE,
        "one fresh submission posts nothing"
    );
    env.submit_price(1, 200_000).await.unwrap();
    let feed: PriceFeed = env.account(&price_feed_address(&env.config)).await.unwrap();
    let edge = backhaul_core::price::price_band(PRICE, 3_601, 2_000)
        .unwrap()
        .upper;
    assert!((122_100..122_200).contains(&edge), "{edge}");
    assert_eq!((feed.credits_per_token, feed.posted_at), (edge, t0 + 3_601));
    // Each later submission moves it on by the band for the time since the last post.
    env.set_time(t0 + 7_201).await;
    env.submit_price(0, 200_000).await.unwrap();
    let feed: PriceFeed = env.account(&price_feed_address(&env.config)).await.unwrap();
    let next = backhaul_core::price::price_band(edge, 3_600, 2_000)
        .unwrap()
        .upper;
    assert_eq!(feed.credits_per_token, next);
    assert!(next > edge && next < 200_000);
}

#[tokio::test]
async fn stale_and_foreign_submissions_do_not_count() {
    let mut env = Env::new().await;
    env.submit_price(0, 100_000).await.unwrap();
    let now = env.now().await;
    env.set_time(now + 3_601).await;
    env.submit_price(1, 100_000).await.unwrap();
    let feed: PriceFeed = env.account(&price_feed_address(&env.config)).await.unwrap();
    assert_eq!(
        feed.credits_per_token, 0,
        "oracle 0's submission went stale"
    );
    assert_eq!(feed.submissions.len(), 1);
    let outsider = Keypair::new();
    let ix = env.submit_price_ix(&outsider.pubkey(), 100_000);
    assert_program_err(env.send(&[ix], &[&outsider]).await, E::NotOracle);
    assert_program_err(env.submit_price(2, 0).await, E::InvalidPrice);
    let g = env.guardian.insecure_clone();
    let ix = env.set_paused_ix(&g.pubkey(), true);
    env.send_as(ix, &g).await.unwrap();
    assert_program_err(env.submit_price(2, 100_000).await, E::Paused);
}

#[tokio::test]
async fn buying_burns_tokens_and_credits_the_buyer() {
    let mut env = with_price().await;
    let buyer = crate::util::buyer_with(&mut env, 50 * TOKEN).await;
    let supply = env.mint_supply().await;
    env.buy(&buyer, 10 * TOKEN, 1_000_000, buyer.pubkey())
        .await
        .unwrap();
    let mint = env.mint;
    assert_eq!(
        env.token_balance(&ata(&buyer.pubkey(), &mint)).await,
        40 * TOKEN
    );
    assert_eq!(env.mint_supply().await, supply - 10 * TOKEN);
    let credits: CreditAccount = env
        .account(&credits_address(&env.config, &buyer.pubkey()))
        .await
        .unwrap();
    assert_eq!(
        (
            credits.buyer,
            credits.balance,
            credits.issued,
            credits.tokens_burned
        ),
        (buyer.pubkey(), 1_000_000, 1_000_000, 10 * TOKEN)
    );
    let epoch = env.current_epoch().await;
    let ledger: EpochLedger = env
        .account(&ledger_address(&env.config, epoch))
        .await
        .unwrap();
    assert_eq!(
        (ledger.tokens_burned, ledger.credits_issued, ledger.sealed),
        (10 * TOKEN, 1_000_000, false)
    );
    let c = env.config_state().await;
    assert_eq!((c.total_burned, c.credits_issued), (10 * TOKEN, 1_000_000));
    // A second purchase adds to the same account and ledger.
    env.buy(&buyer, TOKEN, 0, buyer.pubkey()).await.unwrap();
    let credits: CreditAccount = env
        .account(&credits_address(&env.config, &buyer.pubkey()))
        .await
        .unwrap();
    assert_eq!(credits.balance, 1_100_000);
    let ledger: EpochLedger = env
        .account(&ledger_address(&env.config, epoch))
        .await
        .unwrap();
    assert_eq!(ledger.tokens_burned, 11 * TOKEN);
    assert_eq!(
        credits.purchase_checkpoints(),
        [PurchaseCheckpoint {
            epoch,
            issued_before: 0,
            tokens_before: 0,
        }]
    );
    // A purchase in a later epoch remembers what was issued before it.
    env.end_epoch(epoch).await;
    env.post_price(PRICE).await;
    env.buy(&buyer, TOKEN, 0, buyer.pubkey()).await.unwrap();
    let credits: CreditAccount = env
        .account(&credits_address(&env.config, &buyer.pubkey()))
        .await
        .unwrap();
    assert_eq!(
        (credits.purchase_checkpoints().len(), credits.issued),
        (2, 1_200_000)
    );
    assert_eq!(
        credits.purchase_checkpoints()[1],
        PurchaseCheckpoint {
            epoch: epoch + 1,
            issued_before: 1_100_000,
            tokens_before: 11 * TOKEN,
        }
    );
    let through = purchases_through(&credits, epoch);
    assert_eq!(
        (through.credits, through.tokens, credits.tokens_burned),
        (1_100_000, 11 * TOKEN, 12 * TOKEN)
    );
}

/// The account as read now.
async fn credits_of(env: &mut Env, buyer: &Pubkey) -> CreditAccount {
    let key = credits_address(&env.config, buyer);
    env.account(&key).await.expect("a credit account")
}

#[tokio::test]
async fn checkpoints_tell_purchases_through_every_epoch_not_finalized_yet() {
    // The buyer buys in epochs 0, 1, 2 (twice) and 3 while no epoch is finalized: the oracles
    // still have epochs 0, 1 and 2 to close, and the account tells each exactly.
    let mut env = with_price().await;
    let buyer = crate::util::buyer_with(&mut env, 100 * TOKEN).await;
    let start = env.current_epoch().await;
    let purchases = [(0, 10), (1, 2), (2, 3), (2, 1), (3, 4)];
    let mut read_before_epoch_3 = None;
    for (i, &(offset, tokens)) in purchases.iter().enumerate() {
        let epoch = start + offset;
        if env.current_epoch().await != epoch {
            env.end_epoch(epoch - 1).await;
            env.post_price(PRICE).await;
        }
        if offset == 3 {
            read_before_epoch_3 = Some(credits_of(&mut env, &buyer.pubkey()).await);
        }
        env.buy(&buyer, tokens * TOKEN + i as u64, 0, buyer.pubkey())
            .await
            .unwrap();
    }
    assert_eq!(env.config_state().await.next_epoch, 0, "nothing finalized");
    let credits = credits_of(&mut env, &buyer.pubkey()).await;
    let epochs: Vec<u64> = credits
        .purchase_checkpoints()
        .iter()
        .map(|c| c.epoch)
        .collect();
    assert_eq!(epochs, [start, start + 1, start + 2, start + 3]);
    // What was bought in epochs up to each (at 100,000 credits per token).
    let bought_through = |epoch: u64| {
        let mut p = backhaul_core::cost::Purchases::default();
        for (i, &(offset, tokens)) in purchases.iter().enumerate() {
            if start + offset <= epoch {
                let amount = tokens * TOKEN + i as u64;
                p.tokens += amount;
                p.credits += amount * PRICE / TOKEN;
            }
        }
        p
    };
    for epoch in start..=start + 3 {
        assert_eq!(
            purchases_through(&credits, epoch),
            bought_through(epoch),
            "through epoch {epoch}"
        );
    }
    assert_eq!(
        purchases_through(&credits, start + 3).credits,
        credits.issued
    );
    // Read before the purchase of epoch 3, the account gave the same figures for the epochs
    // that had ended.
    let before = read_before_epoch_3.unwrap();
    for epoch in start..start + 3 {
        assert_eq!(
            purchases_through(&before, epoch),
            purchases_through(&credits, epoch),
            "through epoch {epoch}"
        );
    }
}

#[tokio::test]
async fn a_ninth_purchase_epoch_drops_the_oldest_checkpoint() {
    // One purchase in each of ten epochs: the account keeps the latest eight, as the core's
    // `PurchaseCheckpoints::record` does.
    let mut env = with_price().await;
    let buyer = crate::util::buyer_with(&mut env, 100 * TOKEN).await;
    let start = env.current_epoch().await;
    let mut model = backhaul_core::cost::PurchaseCheckpoints::default();
    let mut total = backhaul_core::cost::Purchases::default();
    for i in 0..10u64 {
        if i > 0 {
            env.end_epoch(start + i - 1).await;
            env.post_price(PRICE).await;
        }
        let tokens = TOKEN + i;
        env.buy(&buyer, tokens, 0, buyer.pubkey()).await.unwrap();
        model.record(start + i, total).unwrap();
        total.credits += tokens * PRICE / TOKEN;
        total.tokens += tokens;
    }
    let credits = credits_of(&mut env, &buyer.pubkey()).await;
    assert_eq!(
        (credits.issued, credits.tokens_burned),
        (total.credits, total.tokens)
    );
    assert_eq!(
        usize::from(credits.checkpoint_count),
        credits.checkpoints.len()
    );
    let kept: Vec<_> = credits
        .purchase_checkpoints()
        .iter()
        .map(|c| backhaul_core::cost::PurchaseCheckpoint {
            epoch: c.epoch,
            before: backhaul_core::cost::Purchases {
                credits: c.issued_before,
                tokens: c.tokens_before,
            },
        })
        .collect();
    assert_eq!(kept, model.as_slice());
    assert_eq!(kept[0].epoch, start + 2);
    // Exact from the epoch before the oldest kept on (epochs `start` and `start + 1` bought
    // 100,000 credits each); before that only a bound.
    let first_two = backhaul_core::cost::Purchases {
        credits: 200_000,
        tokens: 2 * TOKEN + 1,
    };
    assert_eq!(purchases_through(&credits, start + 1), first_two);
    assert!(backhaul_core::cost::purchases_through_is_exact(
        &kept,
        start + 1
    ));
    assert_eq!(purchases_through(&credits, start), first_two);
    assert!(!backhaul_core::cost::purchases_through_is_exact(
        &kept, start
    ));
}

#[tokio::test]
async fn a_company_can_fund_its_teams_account() {
    let mut env = with_price().await;
    let company = crate::util::buyer_with(&mut env, 5 * TOKEN).await;
    let team = Pubkey::new_unique();
    env.buy(&company, 2 * TOKEN, 200_000, team).await.unwrap();
    let credits: CreditAccount = env
        .account(&credits_address(&env.config, &team))
        .await
        .unwrap();
    assert_eq!((credits.buyer, credits.balance), (team, 200_000));
    assert!(env
        .account::<CreditAccount>(&credits_address(&env.config, &company.pubkey()))
        .await
        .is_none());
    assert_program_err(
        env.buy(&company, TOKEN, 0, Pubkey::default()).await,
        E::InvalidKey,
    );
}

#[tokio::test]
async fn buying_needs_a_fresh_price() {
    let mut env = Env::new().await;
    let buyer = crate::util::buyer_with(&mut env, 5 * TOKEN).await;
    assert_program_err(env.buy(&buyer, TOKEN, 0, buyer.pubkey()).await, E::NoPrice);
    env.post_price(PRICE).await;
    let now = env.now().await;
    env.set_time(now + 3_601).await;
    assert_program_err(
        env.buy(&buyer, TOKEN, 0, buyer.pubkey()).await,
        E::PriceStale,
    );
    env.set_time(now + 3_600).await;
    env.buy(&buyer, TOKEN, 0, buyer.pubkey()).await.unwrap();
}

#[tokio::test]
async fn min_credits_protects_against_a_price_move() {
    let mut env = with_price().await;
    let buyer = crate::util::buyer_with(&mut env, 5 * TOKEN).await;
    // Signed expecting 100,000 credits; an hour later, before it lands, oracle 0 submits 90,000
    // and the posted price drops 5% to the mean of the two oracles' submissions.
    let now = env.now().await;
    env.set_time(now + 3_600).await;
    env.submit_price(0, 90_000).await.unwrap();
    assert_eq!(env.price_feed().await.credits_per_token, 95_000);
    assert_program_err(
        env.buy(&buyer, TOKEN, 100_000, buyer.pubkey()).await,
        E::SlippageExceeded,
    );
    let mint = env.mint;
    assert_eq!(
        env.token_balance(&ata(&buyer.pubkey(), &mint)).await,
        5 * TOKEN,
        "nothing was burned"
    );
    env.buy(&buyer, TOKEN, 95_000, buyer.pubkey())
        .await
        .unwrap();
    // Dust that buys zero credits is refused rather than burned for nothing.
    assert_program_err(
        env.buy(&buyer, 1, 0, buyer.pubkey()).await,
        E::SlippageExceeded,
    );
    assert_program_err(env.buy(&buyer, 0, 0, buyer.pubkey()).await, E::ZeroAmount);
}

#[tokio::test]
async fn wrong_mints_and_other_peoples_token_accounts_are_refused() {
    let mut env = with_price().await;
    let buyer = crate::util::buyer_with(&mut env, 5 * TOKEN).await;
    let victim = crate::util::buyer_with(&mut env, 5 * TOKEN).await;
    let mint = env.mint;
    // Burning from someone else's token account.
    let theirs = ata(&victim.pubkey(), &mint);
    let ix = env
        .buy_credits_ix(&buyer.pubkey(), &theirs, TOKEN, 0, buyer.pubkey())
        .await;
    assert_anchor_err(
        env.send(&[ix], &[&buyer]).await,
        anchor_lang::error::ErrorCode::ConstraintTokenOwner,
    );
    // A token account of another mint.
    let other_mint = Pubkey::new_unique();
    env.ctx.set_account(
        &other_mint,
        &mint_account(Some(Pubkey::new_unique()), None, 1_000).into(),
    );
    let wrong = env.create_token_account(&other_mint, &buyer.pubkey()).await;
    let ix = env
        .buy_credits_ix(&buyer.pubkey(), &wrong, TOKEN, 0, buyer.pubkey())
        .await;
    assert_anchor_err(
        env.send(&[ix], &[&buyer]).await,
        anchor_lang::error::ErrorCode::ConstraintTokenMint,
    );
    // Another mint passed as the mint.
    let mine = ata(&buyer.pubkey(), &mint);
    let mut ix = env
        .buy_credits_ix(&buyer.pubkey(), &mine, TOKEN, 0, buyer.pubkey())
        .await;
    ix.accounts[3].pubkey = other_mint;
    assert_anchor_err(
        env.send(&[ix], &[&buyer]).await,
        anchor_lang::error::ErrorCode::ConstraintHasOne,
    );
    // Another deployment's price feed.
    let other = env.add_deployment().await;
    let mut ix = env
        .buy_credits_ix(&buyer.pubkey(), &mine, TOKEN, 0, buyer.pubkey())
        .await;
    ix.accounts[2].pubkey = price_feed_address(&config_address(&other));
    assert_anchor_err(
        env.send(&[ix], &[&buyer]).await,
        anchor_lang::error::ErrorCode::ConstraintHasOne,
    );
    // A ledger of another epoch.
    let mut ix = env
        .buy_credits_ix(&buyer.pubkey(), &mine, TOKEN, 0, buyer.pubkey())
        .await;
    ix.accounts[6].pubkey = ledger_address(&env.config, 7);
    assert_anchor_err(
        env.send(&[ix], &[&buyer]).await,
        anchor_lang::error::ErrorCode::ConstraintSeeds,
    );
    assert_eq!(env.token_balance(&theirs).await, 5 * TOKEN);
    assert_eq!(env.token_balance(&mine).await, 5 * TOKEN);
}

#[tokio::test]
async fn amounts_that_overflow_are_refused() {
    let mut env = Env::new().await;
    env.post_price(1_000_000_000_000).await;
    let buyer = crate::util::buyer_with(&mut env, 20_000_000_000_000).await;
    assert_program_err(
        env.buy(&buyer, u64::MAX, 0, buyer.pubkey()).await,
        E::Overflow,
    );
    // A balance that would overflow.
    env.buy(&buyer, 18_000_000_000_000, 0, buyer.pubkey())
        .await
        .unwrap();
    assert_program_err(
        env.buy(&buyer, 1_000_000_000_000, 0, buyer.pubkey()).await,
        E::Overflow,
    );
}

#[tokio::test]
async fn buying_is_refused_while_paused() {
    let mut env = with_price().await;
    let buyer = crate::util::buyer_with(&mut env, 5 * TOKEN).await;
    let g = env.guardian.insecure_clone();
    let ix = env.set_paused_ix(&g.pubkey(), true);
    env.send_as(ix, &g).await.unwrap();
    assert_program_err(env.buy(&buyer, TOKEN, 0, buyer.pubkey()).await, E::Paused);
}

/// The raw state a refused purchase must leave alone: the buyer's tokens, credit account and
/// the ledgers of `epochs` (`None` where there is no account), the config and the mint.
async fn purchase_state(env: &mut Env, buyer: &Pubkey, epochs: &[u64]) -> Vec<Option<Vec<u8>>> {
    let mut keys = vec![
        ata(buyer, &env.mint),
        credits_address(&env.config, buyer),
        env.config,
        env.mint,
    ];
    keys.extend(epochs.iter().map(|e| ledger_address(&env.config, *e)));
    let mut state = vec![];
    for key in keys {
        let acc = env.ctx.banks_client.get_account(key).await.unwrap();
        state.push(acc.map(|a| a.data));
    }
    state
}

/// `buy_credits` names the epoch the clock is in, from which its ledger's address derives. A
/// purchase built for epoch e that lands after the boundary (sent just before it), and one naming
/// a future epoch, are refused with `WrongEpoch` and change nothing.
/// Rebuilt from the chain's clock (what the SDK and the command line do), it goes through.
#[tokio::test]
async fn a_purchase_naming_another_epoch_than_the_clocks_is_refused() {
    let mut env = with_price().await;
    let buyer = crate::util::buyer_with(&mut env, 10 * TOKEN).await;
    let tokens = ata(&buyer.pubkey(), &env.mint);
    env.buy(&buyer, TOKEN, 0, buyer.pubkey()).await.unwrap();
    let e = env.current_epoch().await;
    let d = env.deployment();
    let build = |epoch| {
        ix::buy_credits(
            &d,
            &buyer.pubkey(),
            &tokens,
            TOKEN,
            0,
            buyer.pubkey(),
            epoch,
        )
    };
    let signed_in_e = build(e);
    // The transaction lands at the first second of e + 1, whose ledger does not exist yet; e's
    // ledger is sealed meanwhile. The price is posted again so that only the epoch is wrong.
    env.end_epoch(e).await;
    env.seal(e).await.unwrap();
    env.post_price(PRICE).await;
    let watched = [e, e + 1, e + 2];
    let before = purchase_state(&mut env, &buyer.pubkey(), &watched).await;
    assert!(before[4].is_some() && before[5].is_none() && before[6].is_none());
    for (ix, named) in [(signed_in_e, e), (build(e + 2), e + 2)] {
        assert_program_err(env.send(&[ix], &[&buyer]).await, E::WrongEpoch);
        // What the program logs (a host-compiled program's logs do not reach the bank's log
        // collector, so the line is checked here).
        let now = env.now().await;
        let log = backhaul::instructions::buy_credits::wrong_epoch_log(named, now, e + 1);
        assert!(
            log.contains(&format!(
                "names epoch {named} but the clock ({now}) is in epoch {}",
                e + 1
            )) && log.contains("just before an epoch boundary")
                && log.contains("read the epoch from the chain's clock and send again"),
            "{log}"
        );
        assert_eq!(
            purchase_state(&mut env, &buyer.pubkey(), &watched).await,
            before,
            "a refused purchase changed something"
        );
    }
    // The epoch read from the chain's clock, as `backhaul_sdk::purchase_epoch` gives it.
    let config = env.config_state().await;
    let now = env.now().await;
    let epoch = backhaul_sdk::purchase_epoch(&config, now);
    assert_eq!(epoch, e + 1);
    env.send(&[build(epoch)], &[&buyer]).await.unwrap();
    let ledger: EpochLedger = env
        .account(&ledger_address(&env.config, e + 1))
        .await
        .unwrap();
    assert_eq!((ledger.epoch, ledger.tokens_burned), (e + 1, TOKEN));
    assert_eq!(env.token_balance(&tokens).await, 8 * TOKEN);
}

/// Buyer b bought 1,000,000 credits for 10 tokens in epoch 0, then epoch 0 and 1 are finalized
/// with usage trees in which b consumed 300,000 and then 700,000 (cumulative), costing 3 and
/// then 7 tokens, which pay an operator 3 and then 7 tokens (k = 1).
async fn settled_world() -> (
    Env,
    Keypair,
    backhaul_core::tree::EpochTree,
    backhaul_core::tree::EpochTree,
) {
    let mut env = with_price().await;
    let b = crate::util::buyer_with(&mut env, 20 * TOKEN).await;
    env.buy(&b, 10 * TOKEN, 0, b.pubkey()).await.unwrap();
    let op = Pubkey::new_unique();
    let r0 = env.reward_tree(0, &[(op, 3 * TOKEN)]);
    let u0 = env.usage_tree(0, &[(b.pubkey(), 300_000)]);
    let p0 = env.proposal_with_usage(&r0, 0, &u0, 0);
    env.run_epoch(0, Env::with_cost(p0, 0, 3 * TOKEN)).await;
    let r1 = env.reward_tree(1, &[(op, 7 * TOKEN)]);
    let u1 = env.usage_tree(1, &[(b.pubkey(), 700_000)]);
    let p1 = env.proposal_with_usage(&r1, 3 * TOKEN, &u1, 300_000);
    env.run_epoch(1, Env::with_cost(p1, 3 * TOKEN, 7 * TOKEN))
        .await;
    (env, b, u0, u1)
}

#[tokio::test]
async fn settlement_debits_proven_usage_once() {
    let (mut env, b, u0, u1) = settled_world().await;
    let key = credits_address(&env.config, &b.pubkey());
    env.settle_from(&u0, &b.pubkey()).await.unwrap();
    let c: CreditAccount = env.account(&key).await.unwrap();
    assert_eq!(
        (
            c.balance,
            c.settled,
            c.consumed_cumulative,
            c.last_settled_epoch
        ),
        (700_000, 300_000, 300_000, 0)
    );
    assert_program_err(env.settle_from(&u0, &b.pubkey()).await, E::NothingToSettle);
    env.settle_from(&u1, &b.pubkey()).await.unwrap();
    let c: CreditAccount = env.account(&key).await.unwrap();
    assert_eq!((c.balance, c.settled, c.unpaid), (300_000, 700_000, 0));
    assert_program_err(env.settle_from(&u1, &b.pubkey()).await, E::NothingToSettle);
    assert_program_err(env.settle_from(&u0, &b.pubkey()).await, E::NothingToSettle);
    let l0: EpochLedger = env.account(&ledger_address(&env.config, 0)).await.unwrap();
    let l1: EpochLedger = env.account(&ledger_address(&env.config, 1)).await.unwrap();
    assert_eq!((l0.credits_settled, l1.credits_settled), (300_000, 400_000));
    let cfg = env.config_state().await;
    assert_eq!(
        (cfg.credits_issued, cfg.credits_settled),
        (1_000_000, 700_000)
    );
}

#[tokio::test]
async fn invalid_settlement_proofs_are_refused() {
    let (mut env, b, u0, u1) = settled_world().await;
    let payer = env.payer().pubkey();
    let (entry, proof) = u1.leaf_proof(&b.pubkey().to_bytes()).unwrap();
    let ix = env.settle_ix(&payer, 1, &b.pubkey(), entry.cumulative + 1, proof.clone());
    assert_program_err(env.send(&[ix], &[]).await, E::InvalidProof);
    // Epoch 0's leaf against epoch 1.
    let (e0, p0) = u0.leaf_proof(&b.pubkey().to_bytes()).unwrap();
    let ix = env.settle_ix(&payer, 1, &b.pubkey(), e0.cumulative, p0);
    assert_program_err(env.send(&[ix], &[]).await, E::InvalidProof);
    // The reward tree's format is not the usage tree's.
    let op = Pubkey::new_unique();
    let ix = env.settle_ix(&payer, 1, &op, 200 * TOKEN, Proof::default());
    assert_program_err(env.send(&[ix], &[]).await, E::InvalidProof);
    // Another buyer's leaf.
    let other = Pubkey::new_unique();
    let ix = env.settle_ix(&payer, 1, &other, entry.cumulative, proof.clone());
    assert_program_err(env.send(&[ix], &[]).await, E::InvalidProof);
    // Malformed bytes.
    let mut ix = env.settle_ix(&payer, 1, &b.pubkey(), entry.cumulative, proof);
    ix.data.truncate(12);
    assert_anchor_err(
        env.send(&[ix], &[]).await,
        anchor_lang::error::ErrorCode::InstructionDidNotDeserialize,
    );
    let c: CreditAccount = env
        .account(&credits_address(&env.config, &b.pubkey()))
        .await
        .unwrap();
    assert_eq!(c.balance, 1_000_000);
}

#[tokio::test]
async fn settlement_needs_a_finalized_epoch() {
    let mut env = with_price().await;
    let b = crate::util::buyer_with(&mut env, 20 * TOKEN).await;
    env.buy(&b, 10 * TOKEN, 0, b.pubkey()).await.unwrap();
    let r0 = env.reward_tree(0, &[(Pubkey::new_unique(), TOKEN)]);
    let u0 = env.usage_tree(0, &[(b.pubkey(), 300_000)]);
    env.end_epoch(0).await;
    let p0 = Env::with_cost(env.proposal_with_usage(&r0, 0, &u0, 0), 0, 3 * TOKEN);
    env.vote(0, 0, p0).await.unwrap();
    env.vote(1, 0, p0).await.unwrap();
    assert_program_err(
        env.settle_from(&u0, &b.pubkey()).await,
        E::EpochNotFinalized,
    );
    env.veto(0).await.unwrap();
    assert_program_err(
        env.settle_from(&u0, &b.pubkey()).await,
        E::EpochNotFinalized,
    );
}

#[tokio::test]
async fn over_consumption_is_recorded_not_hidden() {
    let mut env = with_price().await;
    let b = crate::util::buyer_with(&mut env, 20 * TOKEN).await;
    env.buy(&b, TOKEN, 0, b.pubkey()).await.unwrap(); // 100,000 credits
                                                      // Another buyer's unused credits: consumption in all stays within the credits issued.
    let c = crate::util::buyer_with(&mut env, 2 * TOKEN).await;
    env.buy(&c, 2 * TOKEN, 0, c.pubkey()).await.unwrap();
    let stranger = Pubkey::new_unique(); // never bought anything
    let r0 = env.reward_tree(0, &[(Pubkey::new_unique(), TOKEN)]);
    let u0 = env.usage_tree(0, &[(b.pubkey(), 250_000), (stranger, 5_000)]);
    let p0 = env.proposal_with_usage(&r0, 0, &u0, 0);
    env.run_epoch(0, Env::with_cost(p0, 0, TOKEN)).await;
    env.settle_from(&u0, &b.pubkey()).await.unwrap();
    let c: CreditAccount = env
        .account(&credits_address(&env.config, &b.pubkey()))
        .await
        .unwrap();
    assert_eq!(
        (c.balance, c.settled, c.unpaid, c.consumed_cumulative),
        (0, 100_000, 150_000, 250_000)
    );
    env.settle_from(&u0, &stranger).await.unwrap();
    let s: CreditAccount = env
        .account(&credits_address(&env.config, &stranger))
        .await
        .unwrap();
    assert_eq!((s.balance, s.settled, s.unpaid), (0, 0, 5_000));
    let cfg = env.config_state().await;
    assert_eq!(
        (cfg.credits_settled, cfg.credits_unpaid),
        (100_000, 155_000)
    );
    let l0: EpochLedger = env.account(&ledger_address(&env.config, 0)).await.unwrap();
    assert_eq!((l0.credits_settled, l0.credits_unpaid), (100_000, 155_000));
}

#[tokio::test]
async fn settlement_is_refused_while_paused() {
    let (mut env, b, u0, _) = settled_world().await;
    let admin = env.admin.insecure_clone();
    let ix = env.set_paused_ix(&admin.pubkey(), true);
    env.send_as(ix, &admin).await.unwrap();
    assert_program_err(env.settle_from(&u0, &b.pubkey()).await, E::Paused);
}

#[tokio::test]
async fn no_instruction_moves_credits_between_buyers() {
    // Read the committed IDL: only buying and settling (with the proof in the instruction or in
    // a buffer) write a credit account, one each (a fraud proof reads one).
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../programs/backhaul/idl/backhaul.json"
    );
    let idl: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut touching = vec![];
    for ix in idl["instructions"].as_array().unwrap() {
        let credit_accounts = ix["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["name"].as_str().unwrap().contains("credit"))
            .filter(|a| a["writable"].as_bool().unwrap_or(false))
            .count();
        if credit_accounts > 0 {
            assert_eq!(
                credit_accounts, 1,
                "{} touches two credit accounts",
                ix["name"]
            );
            touching.push(ix["name"].as_str().unwrap().to_string());
        }
    }
    touching.sort();
    assert_eq!(
        touching,
        ["buy_credits", "settle_from_buffer", "settle_usage"]
    );
}
