use backhaul::error::BackhaulError as E;
use backhaul::state::EpochProposal;
use backhaul_tests::*;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::Signer;

async fn proposed() -> (Env, EpochProposal) {
    let mut env = Env::new().await;
    let tree = env.reward_tree(0, &[(Pubkey::new_unique(), 500)]);
    let p = env.proposal(&tree, 0);
    env.end_epoch(0).await;
    env.vote(0, 0, p).await.unwrap();
    env.vote(1, 0, p).await.unwrap();
    (env, p)
}

#[tokio::test]
async fn the_guardian_vetoes_and_the_epoch_is_proposed_again() {
    let (mut env, p) = proposed().await;
    env.veto(0).await.unwrap();
    let r = env.epoch_state(0).await;
    assert_eq!(r.status, EpochStatus::Vetoed);
    assert_eq!(r.proposal, EpochProposal::default());
    assert_ne!(r.vetoed_digest, [0; 32]);
    assert_program_err(env.finalize(0).await, E::NoQuorum);
    // The vetoed proposal can never be voted again ...
    assert_program_err(env.vote(0, 0, p).await, E::ProposalVetoed);
    // ... but a corrected one starts round 1 and can reach quorum.
    let fixed = EpochProposal {
        dataset_hash: [42; 32],
        ..p
    };
    env.vote(0, 0, fixed).await.unwrap();
    let r = env.epoch_state(0).await;
    assert_eq!(
        (r.status, r.round, r.votes.len()),
        (EpochStatus::Voting, 1, 1)
    );
    env.vote(2, 0, fixed).await.unwrap();
    let at = env.epoch_state(0).await.finalizable_at;
    env.set_time(at).await;
    env.finalize(0).await.unwrap();
    assert_eq!(env.epoch_state(0).await.status, EpochStatus::Finalized);
}

#[tokio::test]
async fn only_the_guardian_can_veto() {
    let (mut env, _) = proposed().await;
    for k in [env.admin.insecure_clone(), env.oracles[0].insecure_clone()] {
        let ix = env.veto_ix(&k.pubkey(), 0);
        assert_program_err(env.send_as(ix, &k).await, E::NotGuardian);
    }
    assert_eq!(env.epoch_state(0).await.status, EpochStatus::Proposed);
}

#[tokio::test]
async fn no_veto_after_the_challenge_period() {
    let (mut env, _) = proposed().await;
    let at = env.epoch_state(0).await.finalizable_at;
    env.set_time(at).await;
    assert_program_err(env.veto(0).await, E::VetoWindowClosed);
    env.finalize(0).await.unwrap();
    assert_program_err(env.veto(0).await, E::VetoWindowClosed);
}

#[tokio::test]
async fn a_veto_one_second_before_the_end_works() {
    let (mut env, _) = proposed().await;
    let at = env.epoch_state(0).await.finalizable_at;
    env.set_time(at - 1).await;
    env.veto(0).await.unwrap();
}

#[tokio::test]
async fn split_votes_can_be_vetoed_to_restart_the_round() {
    let mut env = Env::new().await;
    let tree = env.reward_tree(0, &[(Pubkey::new_unique(), 500)]);
    let p = env.proposal(&tree, 0);
    env.end_epoch(0).await;
    env.vote(0, 0, p).await.unwrap();
    env.vote(
        1,
        0,
        EpochProposal {
            dataset_hash: [1; 32],
            ..p
        },
    )
    .await
    .unwrap();
    env.veto(0).await.unwrap();
    assert_program_err(env.veto(0).await, E::NothingToVeto);
    // Nothing had quorum, so nothing is banned: both may vote again.
    env.vote(0, 0, p).await.unwrap();
    env.vote(1, 0, p).await.unwrap();
    assert_eq!(env.epoch_state(0).await.status, EpochStatus::Proposed);
}

#[tokio::test]
async fn the_guardian_can_veto_while_paused() {
    let (mut env, _) = proposed().await;
    let g = env.guardian.insecure_clone();
    let ix = env.set_paused_ix(&g.pubkey(), true);
    env.send_as(ix, &g).await.unwrap();
    env.veto(0).await.unwrap();
}

#[tokio::test]
async fn a_record_of_another_deployment_is_refused() {
    let (mut env, p) = proposed().await;
    let first = env.mint;
    let other = env.add_deployment().await;
    env.use_deployment(other);
    let tree = env.reward_tree(0, &[(Pubkey::new_unique(), 5)]);
    let p_other = env.proposal(&tree, 0);
    assert_ne!(p_other, p);
    env.vote(0, 0, p_other).await.unwrap();
    env.use_deployment(first);
    let g = env.guardian.insecure_clone();
    let mut ix = env.veto_ix(&g.pubkey(), 0);
    ix.accounts[2].pubkey = epoch_address(&config_address(&other), 0);
    assert_anchor_err(
        env.send_as(ix, &g).await,
        anchor_lang::error::ErrorCode::ConstraintSeeds,
    );
}
