//! Sealing, net emissions, the paid-usage cap, and the ledger identities over several epochs.

use backhaul::error::BackhaulError as E;
use backhaul::state::EconomicsParams;
use backhaul_core::tree::EpochTree;
use backhaul_tests::*;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};

const TOKEN: u64 = 1_000_000;
const PRICE: u64 = 100_000;

#[tokio::test]
async fn sealing_freezes_an_ended_epoch_once() {
    let mut env = Env::new().await;
    env.post_price(PRICE).await;
    let b = crate::util::buyer_with(&mut env, 10 * TOKEN).await;
    env.buy(&b, 3 * TOKEN, 0, b.pubkey()).await.unwrap();
    assert_program_err(env.seal(0).await, E::EpochNotEnded);
    env.end_epoch(0).await;
    // The oracles keep the price fresh: it values the epoch's consumption.
    env.post_price(PRICE).await;
    env.seal(0).await.unwrap();
    let l: EpochLedger = env.account(&ledger_address(&env.config, 0)).await.unwrap();
    assert!(l.sealed);
    let now = env.now().await;
    assert_eq!(
        (
            l.tokens_burned,
            l.credits_per_token,
            l.price_posted_at,
            l.sealed_at
        ),
        (3 * TOKEN, PRICE, now, now)
    );
    assert_program_err(env.seal(0).await, E::LedgerSealed);
    // An epoch without purchases gets its ledger when sealed.
    env.end_epoch(1).await;
    env.seal(1).await.unwrap();
    let l: EpochLedger = env.account(&ledger_address(&env.config, 1)).await.unwrap();
    assert_eq!((l.epoch, l.tokens_burned, l.sealed), (1, 0, true));
    // Purchases now land in the epoch the clock is in, never in a sealed one.
    env.post_price(PRICE).await;
    env.buy(&b, TOKEN, 0, b.pubkey()).await.unwrap();
    assert_eq!(env.current_epoch().await, 2);
    let l: EpochLedger = env.account(&ledger_address(&env.config, 0)).await.unwrap();
    assert_eq!(l.tokens_burned, 3 * TOKEN);
}

#[tokio::test]
async fn burns_raise_the_budget_through_capped_net_emissions() {
    let mut env = Env::new_uninitialized().await;
    let mut params = env.default_params();
    params.economics.net_emissions_cap = 100 * TOKEN;
    params.rate_capacity = 2 * (params.emission.initial_per_epoch + 100 * TOKEN);
    env.initialize(params).await.unwrap();
    env.post_price(PRICE).await;
    let b = crate::util::buyer_with(&mut env, 2_800 * TOKEN).await;
    // 2,800 tokens burned in epoch 0: EMA = 2,800 / 7 = 400 tokens, capped at 100. Half of the
    // credits are consumed in each epoch, each half costing 1,400 tokens: more than the budget,
    // so the schedule and net emissions bind, not k.
    env.buy(&b, 2_800 * TOKEN, 0, b.pubkey()).await.unwrap();
    let op = Pubkey::new_unique();
    let scheduled = default_emission().initial_per_epoch;
    let u0 = env.usage_tree(0, &[(b.pubkey(), 140_000_000)]);
    let paid0 = |r: &EpochTree, env: &Env| {
        Env::with_cost(env.proposal_with_usage(r, 0, &u0, 0), 0, 1_400 * TOKEN)
    };
    let over = env.reward_tree(0, &[(op, scheduled + 100 * TOKEN + 1)]);
    env.end_epoch(0).await;
    assert_program_err(
        env.vote(0, 0, paid0(&over, &env)).await,
        E::ExceedsEpochEmission,
    );
    let full = env.reward_tree(0, &[(op, scheduled + 100 * TOKEN)]);
    env.run_epoch(0, paid0(&full, &env)).await;
    let c = env.config_state().await;
    assert_eq!(
        (c.burn_ema, c.scheduled_minted, c.total_reemitted),
        (400 * TOKEN, scheduled, 100 * TOKEN)
    );
    let l: EpochLedger = env.account(&ledger_address(&env.config, 0)).await.unwrap();
    assert_eq!(
        (l.tokens_minted, l.burn_ema, l.budget),
        (
            scheduled + 100 * TOKEN,
            400 * TOKEN,
            scheduled + 100 * TOKEN
        )
    );
    // Epoch 1 burns nothing: the EMA decays to 400 · 6/7 = 342.857142 tokens, still above the cap.
    let t1 = env.reward_tree(1, &[(op, 2 * scheduled + 200 * TOKEN)]);
    let u1 = env.usage_tree(1, &[(b.pubkey(), 280_000_000)]);
    let p1 = env.proposal_with_usage(&t1, scheduled + 100 * TOKEN, &u1, 140_000_000);
    env.run_epoch(1, Env::with_cost(p1, 1_400 * TOKEN, 2_800 * TOKEN))
        .await;
    let c = env.config_state().await;
    assert_eq!(c.burn_ema, 342_857_142);
    assert!(c.total_reemitted <= c.total_burned);
}

#[tokio::test]
async fn the_paid_usage_cap_binds_the_whole_budget() {
    let mut env = Env::new_uninitialized().await;
    let mut params = env.default_params();
    params.economics = EconomicsParams {
        usage_cap_bps: 8_000,
        ..default_economics()
    };
    env.initialize(params).await.unwrap();
    env.post_price(PRICE).await;
    let b = crate::util::buyer_with(&mut env, 1_000 * TOKEN).await;
    env.buy(&b, 500 * TOKEN, 0, b.pubkey()).await.unwrap();
    // 20,000,000 of 50,000,000 credits consumed: they cost 200 tokens; k = 0.8 → at most 160.
    let op = Pubkey::new_unique();
    let usage = env.usage_tree(0, &[(b.pubkey(), 20_000_000)]);
    let over = env.reward_tree(0, &[(op, 160 * TOKEN + 1)]);
    env.end_epoch(0).await;
    env.post_price(PRICE).await;
    let cost = |p| Env::with_cost(p, 0, 200 * TOKEN);
    assert_program_err(
        env.vote(0, 0, cost(env.proposal_with_usage(&over, 0, &usage, 0)))
            .await,
        E::ExceedsPaidUsageCap,
    );
    let ok = env.reward_tree(0, &[(op, 160 * TOKEN)]);
    env.run_epoch(0, cost(env.proposal_with_usage(&ok, 0, &usage, 0)))
        .await;
    assert_eq!(env.config_state().await.total_minted, 160 * TOKEN);
    // Without usage there is no budget at all.
    let none = env.reward_tree(1, &[(op, 160 * TOKEN + 1)]);
    let same_usage = env.usage_tree(1, &[(b.pubkey(), 20_000_000)]);
    env.end_epoch(1).await;
    env.post_price(PRICE).await;
    assert_program_err(
        env.vote(
            0,
            1,
            Env::with_cost(
                env.proposal_with_usage(&none, 160 * TOKEN, &same_usage, 20_000_000),
                200 * TOKEN,
                200 * TOKEN,
            ),
        )
        .await,
        E::ExceedsPaidUsageCap,
    );
}

#[tokio::test]
async fn proposals_need_a_sealed_ledger_and_consistent_usage() {
    let mut env = Env::new().await;
    env.post_price(PRICE).await;
    let buyer = crate::util::buyer_with(&mut env, TOKEN).await;
    env.buy(&buyer, TOKEN, 0, buyer.pubkey()).await.unwrap();
    let b = buyer.pubkey();
    // 1,000 of its 100,000 credits, costing 10,000 base units, paying as much.
    let r = env.reward_tree(0, &[(Pubkey::new_unique(), 10_000)]);
    let u = env.usage_tree(0, &[(b, 1_000)]);
    let p = Env::with_cost(env.proposal_with_usage(&r, 0, &u, 0), 0, 10_000);
    env.end_epoch(0).await;
    let oracle = env.oracles[0].insecure_clone();
    let ix = env.propose_ix(&oracle.pubkey(), 0, p);
    // A ledger created by a purchase but not sealed is refused.
    assert_program_err(env.send(&[ix], &[&oracle]).await, E::LedgerNotSealed);
    env.seal(0).await.unwrap();
    for bad in [
        backhaul::state::EpochProposal {
            usage_total: 1_001,
            ..p
        },
        backhaul::state::EpochProposal {
            credits_consumed: 999,
            ..p
        },
        backhaul::state::EpochProposal {
            usage_root: [0; 32],
            ..p
        },
        backhaul::state::EpochProposal {
            usage_leaf_count: 0,
            ..p
        },
    ] {
        let res = env.vote(0, 0, bad).await;
        assert!(res.is_err());
        let code = custom_code(&res.unwrap_err()).unwrap();
        let expected = [
            E::InconsistentProposal as u32 + 6000,
            E::ZeroRoot as u32 + 6000,
        ];
        assert!(expected.contains(&code), "got {code}");
    }
    env.vote(0, 0, p).await.unwrap();
}

#[tokio::test]
async fn a_purchase_ledger_that_is_not_sealed_blocks_votes() {
    let mut env = Env::new().await;
    env.post_price(PRICE).await;
    let b = crate::util::buyer_with(&mut env, 10 * TOKEN).await;
    env.buy(&b, TOKEN, 0, b.pubkey()).await.unwrap();
    env.end_epoch(0).await;
    let r = env.reward_tree(0, &[(Pubkey::new_unique(), TOKEN)]);
    let p = env.proposal(&r, 0);
    let oracle = env.oracles[0].insecure_clone();
    let ix = env.propose_ix(&oracle.pubkey(), 0, p);
    assert_program_err(env.send(&[ix], &[&oracle]).await, E::LedgerNotSealed);
}

/// Several epochs of purchases, settlements and reward finalizations; then the ledger identities
/// hold against the real token supply and account balances.
#[tokio::test]
async fn ledger_identities_hold_over_several_epochs() {
    let mut env = Env::new().await;
    let buyers: Vec<Keypair> = {
        let mut v = vec![];
        for _ in 0..3 {
            v.push(crate::util::buyer_with(&mut env, 1_000 * TOKEN).await);
        }
        v
    };
    let operators: Vec<Pubkey> = (0..4).map(|_| Pubkey::new_unique()).collect();
    let mut reward_cum = [0u64; 4];
    let mut usage_cum = [0u64; 3];
    let (mut prev_reward, mut prev_usage) = (0u64, 0u64);
    let mut trees: Vec<(EpochTree, EpochTree)> = vec![];

    for epoch in 0..4u64 {
        env.set_time(backhaul_core::epoch::epoch_start(GENESIS, EPOCH_SECS, epoch).unwrap() + 60)
            .await;
        env.post_price(PRICE + epoch * 1_000).await;
        for (i, b) in buyers.iter().enumerate() {
            let amount = (epoch + 1) * (i as u64 + 1) * 7 * TOKEN;
            env.buy(b, amount, 0, b.pubkey()).await.unwrap();
        }
        // Each buyer consumes some credits (buyer 0 more than it ever bought, once; all of them
        // together never more than were issued).
        for (i, u) in usage_cum.iter_mut().enumerate() {
            *u += (epoch + 1) * (i as u64 + 1) * 300_000
                + if i == 0 && epoch == 3 { 5_000_000 } else { 0 };
        }
        // Rewards within what the epoch's consumption cost (k = 1; at least 42 tokens burned).
        for (i, r) in reward_cum.iter_mut().enumerate() {
            *r += (i as u64 + 1) * 4 * TOKEN + epoch * 3;
        }
        let rt = env.reward_tree(
            epoch,
            &operators
                .iter()
                .copied()
                .zip(reward_cum)
                .collect::<Vec<_>>(),
        );
        let ut = env.usage_tree(
            epoch,
            &buyers
                .iter()
                .map(|b| b.pubkey())
                .zip(usage_cum)
                .collect::<Vec<_>>(),
        );
        let p = env.proposal_with_usage(&rt, prev_reward, &ut, prev_usage);
        env.run_epoch(epoch, Env::with_cost(p, prev_reward, rt.total))
            .await;
        prev_reward = rt.total;
        prev_usage = ut.total;
        // Settle and claim part of the time, sometimes skipping epochs.
        if epoch % 2 == 1 {
            for b in &buyers {
                env.settle_from(&ut, &b.pubkey()).await.unwrap();
            }
        }
        for op in operators.iter().skip((epoch % 2) as usize) {
            env.claim_from(&rt, epoch, op).await.unwrap();
        }
        trees.push((rt, ut));
    }

    let c = env.config_state().await;
    // Token supply = the supply when the deployment was created + minted − burned.
    assert_eq!(c.initial_supply, TREASURY_SUPPLY);
    assert_eq!(
        env.mint_supply().await,
        c.initial_supply + c.total_minted - c.total_burned
    );
    // The vault holds what was minted minus what was claimed.
    let vault = env.vault;
    assert_eq!(
        env.token_balance(&vault).await,
        c.total_minted - c.total_claimed
    );
    // Credits issued − settled = the sum of credit balances.
    let mut balances = 0;
    let mut unpaid = 0;
    for b in &buyers {
        let acc: CreditAccount = env
            .account(&credits_address(&env.config, &b.pubkey()))
            .await
            .unwrap();
        balances += acc.balance;
        unpaid += acc.unpaid;
    }
    assert_eq!(c.credits_issued - c.credits_settled, balances);
    assert_eq!(c.credits_unpaid, unpaid);
    assert!(unpaid > 0, "the over-consumption was recorded");
    // The per-epoch ledgers add up to the global totals.
    let (mut burned, mut issued, mut settled, mut minted) = (0, 0, 0, 0);
    for epoch in 0..4 {
        let l: EpochLedger = env
            .account(&ledger_address(&env.config, epoch))
            .await
            .unwrap();
        burned += l.tokens_burned;
        issued += l.credits_issued;
        settled += l.credits_settled;
        minted += l.tokens_minted;
    }
    assert_eq!(
        (burned, issued, settled, minted),
        (
            c.total_burned,
            c.credits_issued,
            c.credits_settled,
            c.total_minted
        )
    );
    // No operator was paid more than its latest cumulative amount.
    let (last_rewards, _) = trees.last().unwrap();
    let mut claimed = 0;
    for op in &operators {
        let cl: OperatorClaim = env.account(&claim_address(&env.config, op)).await.unwrap();
        let (entry, _) = last_rewards.leaf_proof(&op.to_bytes()).unwrap();
        assert!(cl.claimed <= entry.cumulative);
        claimed += cl.claimed;
    }
    assert_eq!(claimed, c.total_claimed);
    assert_eq!(c.scheduled_minted + c.total_reemitted, c.total_minted);
    assert!(c.total_reemitted <= c.total_burned);
}
