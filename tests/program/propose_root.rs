use backhaul::error::BackhaulError as E;
use backhaul::state::EpochProposal;
use backhaul_core::merkle::TreeKind;
use backhaul_core::sum_tree::empty_root;
use backhaul_tests::*;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};

/// A deployment at the end of epoch 0 with a valid proposal for it.
async fn ready() -> (Env, EpochProposal) {
    let mut env = Env::new().await;
    let tree = env.reward_tree(
        0,
        &[(Pubkey::new_unique(), 400), (Pubkey::new_unique(), 600)],
    );
    let p = env.proposal(&tree, 0);
    env.end_epoch(0).await;
    let p = env.paid(0, p).await.unwrap();
    env.seal(0).await.unwrap();
    (env, p)
}

#[tokio::test]
async fn quorum_is_reached_when_m_oracles_agree() {
    let (mut env, p) = ready().await;
    env.vote(0, 0, p).await.unwrap();
    let r = env.epoch_state(0).await;
    assert_eq!(r.status, EpochStatus::Voting);
    assert_eq!(r.votes.len(), 1);
    assert_eq!(r.votes[0].oracle, env.oracles[0].pubkey());
    assert_eq!(r.proposal, EpochProposal::default());
    env.vote(1, 0, p).await.unwrap();
    let now = env.now().await;
    let r = env.epoch_state(0).await;
    assert_eq!(r.status, EpochStatus::Proposed);
    assert_eq!(r.proposal, p);
    assert_eq!(r.quorum_at, now);
    assert_eq!(r.finalizable_at, now + CHALLENGE_SECS as i64);
    assert_eq!((r.epoch, r.config, r.round), (0, env.config, 0));
}

#[tokio::test]
async fn oracles_outside_the_set_cannot_vote() {
    let (mut env, p) = ready().await;
    let outsider = Keypair::new();
    let ix = env.propose_ix(&outsider.pubkey(), 0, p);
    // The outsider pays for nothing: the payer funds it here so that the check, not rent, refuses.
    env.ctx.set_account(
        &outsider.pubkey(),
        &solana_sdk::account::Account::new(10_000_000_000, 0, &anchor_lang::system_program::ID)
            .into(),
    );
    assert_program_err(env.send(&[ix], &[&outsider]).await, E::NotOracle);
    // The guardian and the admin are not oracles either.
    let g = env.guardian.insecure_clone();
    let ix = env.propose_ix(&g.pubkey(), 0, p);
    assert_program_err(env.send(&[ix], &[&g]).await, E::NotOracle);
}

#[tokio::test]
async fn an_oracle_votes_once_per_round() {
    let (mut env, p) = ready().await;
    env.vote(0, 0, p).await.unwrap();
    assert_program_err(env.vote(0, 0, p).await, E::DoubleVote);
    let mut other = p;
    other.dataset_hash = [9; 32];
    assert_program_err(env.vote(0, 0, other).await, E::DoubleVote);
    let r = env.epoch_state(0).await;
    assert_eq!(r.votes.len(), 1);
    assert_eq!(r.status, EpochStatus::Voting);
}

#[tokio::test]
async fn split_votes_never_reach_quorum() {
    let (mut env, p) = ready().await;
    for i in 0..3 {
        let mut v = p;
        v.dataset_hash = [i as u8 + 1; 32];
        env.vote(i, 0, v).await.unwrap();
    }
    let r = env.epoch_state(0).await;
    assert_eq!(r.status, EpochStatus::Voting);
    assert_eq!(r.votes.len(), 3);
    env.set_time(GENESIS + 30 * 86_400).await;
    assert_program_err(env.finalize(0).await, E::NoQuorum);
}

#[tokio::test]
async fn every_field_must_match_for_quorum() {
    let (mut env, p) = ready().await;
    env.vote(0, 0, p).await.unwrap();
    let variants = [
        EpochProposal {
            reward_leaf_count: p.reward_leaf_count + 1,
            ..p
        },
        EpochProposal {
            dataset_hash: [7; 32],
            ..p
        },
    ];
    env.vote(1, 0, variants[0]).await.unwrap();
    env.vote(2, 0, variants[1]).await.unwrap();
    assert_eq!(env.epoch_state(0).await.status, EpochStatus::Voting);
}

#[tokio::test]
async fn epochs_go_strictly_in_order() {
    let (mut env, p) = ready().await;
    env.end_epoch(3).await;
    let tree1 = env.reward_tree(1, &[(Pubkey::new_unique(), 100)]);
    let p1 = env.proposal(&tree1, 0);
    assert_program_err(env.vote(0, 1, p1).await, E::EpochOutOfOrder);
    env.run_epoch(0, p).await;
    // Epoch 0 is done: voting on it again is out of order, and epoch 2 must wait for epoch 1.
    assert_program_err(env.vote(2, 0, p).await, E::EpochOutOfOrder);
    env.end_epoch(3).await;
    assert_program_err(env.vote(0, 2, p1).await, E::EpochOutOfOrder);
}

#[tokio::test]
async fn the_epoch_must_have_ended() {
    let mut env = Env::new().await;
    let tree = env.reward_tree(0, &[(Pubkey::new_unique(), 1)]);
    let p = env.proposal(&tree, 0);
    let end = GENESIS + EPOCH_SECS as i64;
    env.set_time(end - 1).await;
    // Neither the ledger can be sealed nor, without a sealed ledger, a vote cast.
    assert_program_err(env.seal(0).await, E::EpochNotEnded);
    assert_anchor_err(
        env.vote(0, 0, p).await,
        anchor_lang::error::ErrorCode::AccountNotInitialized,
    );
    env.set_time(end).await;
    let p = env.paid(0, p).await.unwrap();
    env.seal(0).await.unwrap();
    // Even with a sealed ledger the vote checks the clock itself.
    env.set_time(end - 1).await;
    assert_program_err(env.vote(0, 0, p).await, E::EpochNotEnded);
    env.set_time(end).await;
    env.vote(0, 0, p).await.unwrap();
}

#[tokio::test]
async fn zero_roots_and_inconsistent_totals_are_refused() {
    let (mut env, p) = ready().await;
    assert_program_err(
        env.vote(
            0,
            0,
            EpochProposal {
                reward_root: [0; 32],
                ..p
            },
        )
        .await,
        E::ZeroRoot,
    );
    for bad in [
        EpochProposal {
            reward_total: p.reward_total + 1,
            ..p
        },
        EpochProposal {
            allocation: p.allocation - 1,
            ..p
        },
        EpochProposal {
            reward_leaf_count: 0,
            ..p
        },
        EpochProposal {
            reward_root: empty_root(TreeKind::Reward),
            ..p
        },
        // More leaves than a proof of at most 32 siblings can reach.
        EpochProposal {
            reward_leaf_count: (1 << 32) + 1,
            ..p
        },
    ] {
        assert_program_err(env.vote(0, 0, bad).await, E::InconsistentProposal);
    }
    assert!(env
        .account::<EpochRecord>(&epoch_address(&env.config, 0))
        .await
        .is_none());
}

#[tokio::test]
async fn an_allocation_above_the_schedule_is_refused_at_the_vote() {
    let (mut env, _) = ready().await;
    let big = default_emission().initial_per_epoch + 1;
    let tree = env.reward_tree(0, &[(Pubkey::new_unique(), big)]);
    let p = env.proposal(&tree, 0);
    assert_program_err(env.vote(0, 0, p).await, E::ExceedsEpochEmission);
    // Overflowing totals are refused without wrapping.
    let p = EpochProposal {
        reward_total: u64::MAX,
        allocation: u64::MAX,
        ..p
    };
    assert_program_err(env.vote(0, 0, p).await, E::ExceedsEpochEmission);
}

#[tokio::test]
async fn the_leaf_count_never_shrinks_and_empty_epochs_use_the_empty_root() {
    let mut env = Env::new().await;
    // Epoch 0: nobody earned anything.
    let empty = env.reward_tree(0, &[]);
    let p0 = env.proposal(&empty, 0);
    assert_eq!(p0.reward_root, empty_root(TreeKind::Reward));
    env.run_epoch(0, p0).await;
    assert_eq!(env.config_state().await.total_minted, 0);
    // Epoch 1: two operators.
    let (a, b) = (Pubkey::new_unique(), Pubkey::new_unique());
    let t1 = env.reward_tree(1, &[(a, 10), (b, 20)]);
    env.run_epoch(1, env.proposal(&t1, 0)).await;
    // Epoch 2 cannot drop one of them.
    let t2 = env.reward_tree(2, &[(a, 40)]);
    let p2 = EpochProposal {
        allocation: 10,
        reward_total: 40,
        ..env.proposal(&t2, 30)
    };
    env.end_epoch(2).await;
    assert_program_err(env.vote(0, 2, p2).await, E::InconsistentProposal);
}

#[tokio::test]
async fn late_votes_are_recorded_but_do_not_change_the_quorum() {
    let (mut env, p) = ready().await;
    env.vote(0, 0, p).await.unwrap();
    env.vote(1, 0, p).await.unwrap();
    let mut other = p;
    other.dataset_hash = [3; 32];
    env.vote(2, 0, other).await.unwrap();
    let r = env.epoch_state(0).await;
    assert_eq!(r.status, EpochStatus::Proposed);
    assert_eq!(r.proposal, p);
    assert_eq!(r.votes.len(), 3);
}

#[tokio::test]
async fn votes_of_removed_oracles_stop_counting() {
    let (mut env, p) = ready().await;
    let newcomer = Keypair::new();
    let set = vec![
        env.oracles[1].pubkey(),
        env.oracles[2].pubkey(),
        newcomer.pubkey(),
    ];
    let id = env
        .queue(GovernanceChange::Oracles {
            oracles: set,
            threshold: 2,
        })
        .await
        .unwrap();
    env.wait_for_change(id).await;
    env.vote(0, 0, p).await.unwrap();
    env.apply(id).await.unwrap();
    env.vote(1, 0, p).await.unwrap();
    let r = env.epoch_state(0).await;
    assert_eq!(
        r.status,
        EpochStatus::Voting,
        "the removed oracle's vote must not count"
    );
    assert_eq!(r.votes.len(), 1);
    assert_program_err(env.vote(0, 0, p).await, E::NotOracle);
    env.vote(2, 0, p).await.unwrap();
    assert_eq!(env.epoch_state(0).await.status, EpochStatus::Proposed);
}

/// A split vote does not stall the epoch: a round without quorum a challenge period after its
/// first vote expires at the next vote (`RoundExpired`), which opens a new round where the
/// oracles, their earlier votes cleared, reach quorum.
#[tokio::test]
async fn a_split_round_expires_and_a_new_round_reaches_quorum() {
    let (mut env, p) = ready().await;
    let q = EpochProposal {
        dataset_hash: [1; 32],
        ..p
    };
    let r3 = EpochProposal {
        dataset_hash: [2; 32],
        ..p
    };
    let started = env.now().await;
    env.vote(0, 0, p).await.unwrap();
    env.vote(1, 0, q).await.unwrap();
    // One second before the end of the round: the vote joins it.
    env.set_time(started + CHALLENGE_SECS as i64 - 1).await;
    env.vote(2, 0, r3).await.unwrap();
    let r = env.epoch_state(0).await;
    assert_eq!(
        (r.status, r.round, r.round_started_at, r.votes.len()),
        (EpochStatus::Voting, 0, started, 3)
    );
    assert_program_err(env.vote(0, 0, p).await, E::DoubleVote);
    // At the end of the round, oracle 0's vote expires it and opens round 1.
    let expired_at = started + CHALLENGE_SECS as i64;
    env.set_time(expired_at).await;
    let oracle = env.oracles[0].insecure_clone();
    let ix = env.propose_ix(&oracle.pubkey(), 0, p);
    let events = crate::util::send_with_events(&mut env, &[ix], &[&oracle])
        .await
        .unwrap();
    let expired: Vec<backhaul::events::RoundExpired> = crate::util::events_of(&events);
    assert_eq!(expired.len(), 1, "one RoundExpired event");
    assert_eq!(
        (
            expired[0].config,
            expired[0].epoch,
            expired[0].round,
            expired[0].started_at
        ),
        (env.config, 0, 0, started)
    );
    let r = env.epoch_state(0).await;
    assert_eq!(
        (r.status, r.round, r.round_started_at),
        (EpochStatus::Voting, 1, expired_at)
    );
    assert_eq!(r.votes.len(), 1);
    assert_eq!(r.votes[0].oracle, oracle.pubkey());
    env.vote(1, 0, p).await.unwrap();
    let r = env.epoch_state(0).await;
    assert_eq!(
        (r.status, r.round, r.proposal),
        (EpochStatus::Proposed, 1, p)
    );
    env.set_time(r.finalizable_at).await;
    env.finalize(0).await.unwrap();
    assert_eq!(env.config_state().await.total_minted, 1_000);
}

/// A round that reached quorum does not expire: a late vote long after the quorum changes
/// nothing, and the proposal still finalizes.
#[tokio::test]
async fn a_round_at_quorum_does_not_expire() {
    let (mut env, p) = ready().await;
    env.vote(0, 0, p).await.unwrap();
    env.vote(1, 0, p).await.unwrap();
    let before = env.epoch_state(0).await;
    env.set_time(before.round_started_at + 3 * CHALLENGE_SECS as i64)
        .await;
    let other = EpochProposal {
        dataset_hash: [5; 32],
        ..p
    };
    env.vote(2, 0, other).await.unwrap();
    let r = env.epoch_state(0).await;
    assert_eq!(
        (r.status, r.round, r.proposal, r.finalizable_at),
        (EpochStatus::Proposed, 0, p, before.finalizable_at)
    );
    assert_eq!(r.votes.len(), 3);
    env.finalize(0).await.unwrap();
}

#[tokio::test]
async fn voting_is_refused_while_paused() {
    let (mut env, p) = ready().await;
    let g = env.guardian.insecure_clone();
    let ix = env.set_paused_ix(&g.pubkey(), true);
    env.send_as(ix, &g).await.unwrap();
    assert_program_err(env.vote(0, 0, p).await, E::Paused);
}

#[tokio::test]
async fn the_epoch_record_must_be_this_epochs_pda() {
    let (mut env, p) = ready().await;
    let oracle = env.oracles[0].insecure_clone();
    let mut ix = env.propose_ix(&oracle.pubkey(), 0, p);
    ix.accounts[2].pubkey = epoch_address(&env.config, 1);
    assert_anchor_err(
        env.send(&[ix], &[&oracle]).await,
        anchor_lang::error::ErrorCode::ConstraintSeeds,
    );
    // Another deployment's config with this deployment's record is refused too.
    let other = env.add_deployment().await;
    let mut ix = env.propose_ix(&oracle.pubkey(), 0, p);
    ix.accounts[1].pubkey = config_address(&other);
    assert_anchor_err(
        env.send(&[ix], &[&oracle]).await,
        anchor_lang::error::ErrorCode::ConstraintSeeds,
    );
    // And a ledger of another epoch or deployment.
    let mut ix = env.propose_ix(&oracle.pubkey(), 0, p);
    ix.accounts[3].pubkey = ledger_address(&env.config, 1);
    assert_anchor_err(
        env.send(&[ix], &[&oracle]).await,
        anchor_lang::error::ErrorCode::AccountNotInitialized,
    );
    let first = env.mint;
    env.use_deployment(other);
    env.seal(0).await.unwrap();
    env.use_deployment(first);
    let mut ix = env.propose_ix(&oracle.pubkey(), 0, p);
    ix.accounts[3].pubkey = ledger_address(&config_address(&other), 0);
    assert_anchor_err(
        env.send(&[ix], &[&oracle]).await,
        anchor_lang::error::ErrorCode::ConstraintSeeds,
    );
}

#[tokio::test]
async fn a_non_config_account_is_refused_as_config() {
    let (mut env, p) = ready().await;
    let oracle = env.oracles[0].insecure_clone();
    let mut ix = env.propose_ix(&oracle.pubkey(), 0, p);
    ix.accounts[1].pubkey = env.vault;
    assert_anchor_err(
        env.send(&[ix], &[&oracle]).await,
        anchor_lang::error::ErrorCode::AccountOwnedByWrongProgram,
    );
    let mut ix = env.propose_ix(&oracle.pubkey(), 0, p);
    ix.data.truncate(30);
    assert_anchor_err(
        env.send(&[ix], &[&oracle]).await,
        anchor_lang::error::ErrorCode::InstructionDidNotDeserialize,
    );
}
