use backhaul::error::BackhaulError as E;
use backhaul::state::EpochProposal;
use backhaul_tests::*;
use solana_program_test::BanksClientError;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};

async fn proposed() -> (Env, EpochProposal) {
    let mut env = Env::new().await;
    let tree = env.reward_tree(0, &[(Pubkey::new_unique(), 500)]);
    let p = env.proposal(&tree, 0);
    env.end_epoch(0).await;
    env.vote(0, 0, p).await.unwrap();
    env.vote(1, 0, p).await.unwrap();
    (env, p)
}

/// A deployment with two guardians, `env.guardian` and the returned key.
async fn two_guardians() -> (Env, Keypair) {
    let mut env = Env::new_uninitialized().await;
    let second = Keypair::new();
    let mut params = env.default_params();
    params.guardians.push(second.pubkey());
    env.initialize(params).await.unwrap();
    (env, second)
}

async fn veto_as(env: &mut Env, guardian: &Keypair, epoch: u64) -> Result<(), BanksClientError> {
    let ix = env.veto_ix(&guardian.pubkey(), epoch);
    env.send_as(ix, guardian).await
}

#[tokio::test]
async fn the_guardian_vetoes_and_the_epoch_is_proposed_again() {
    let (mut env, p) = proposed().await;
    env.veto(0).await.unwrap();
    let r = env.epoch_state(0).await;
    assert_eq!(r.status, EpochStatus::Vetoed);
    assert_eq!(r.proposal, EpochProposal::default());
    assert_ne!(r.vetoed_digest, [0; 32]);
    let vetoed_at = env.now().await;
    assert_eq!(
        (r.round, r.banned_until, r.vetoes),
        (0, vetoed_at + CHALLENGE_SECS as i64, 1)
    );
    assert_program_err(env.finalize(0).await, E::NoQuorum);
    // The vetoed proposal cannot be voted for a challenge period ...
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
    assert_program_err(env.vote(1, 0, p).await, E::ProposalVetoed);
    env.vote(2, 0, fixed).await.unwrap();
    let at = env.epoch_state(0).await.finalizable_at;
    env.set_time(at).await;
    env.finalize(0).await.unwrap();
    assert_eq!(env.epoch_state(0).await.status, EpochStatus::Finalized);
}

/// The ban lasts one challenge period, however many rounds pass in it (here another one, vetoed
/// while voting): after it, the proposal the guardian vetoed may be voted again, reach quorum and
/// be finalized. Without that end, oracles that close deterministically could never finalize the
/// epoch again.
#[tokio::test]
async fn a_vetoed_proposal_can_be_voted_again_a_challenge_period_later() {
    let (mut env, p) = proposed().await;
    env.veto(0).await.unwrap();
    let until = env.epoch_state(0).await.banned_until;
    assert_program_err(env.vote(0, 0, p).await, E::ProposalVetoed);
    let other = EpochProposal {
        dataset_hash: [7; 32],
        ..p
    };
    env.vote(0, 0, other).await.unwrap();
    assert_eq!(env.epoch_state(0).await.round, 1);
    env.veto(0).await.unwrap();
    // A veto of a round still voting bans nothing new.
    assert_eq!(env.epoch_state(0).await.banned_until, until);
    env.set_time(until - 1).await;
    assert_program_err(env.vote(0, 0, p).await, E::ProposalVetoed);
    // Round 2, a challenge period after the veto: the digest is no longer banned.
    env.set_time(until).await;
    env.vote(0, 0, p).await.unwrap();
    env.vote(1, 0, p).await.unwrap();
    let r = env.epoch_state(0).await;
    let p = env.sponsored(0, p).await;
    assert_eq!(
        (r.status, r.round, r.vetoes, r.proposal),
        (EpochStatus::Proposed, 2, 2, p)
    );
    env.set_time(r.finalizable_at).await;
    env.finalize(0).await.unwrap();
    let r = env.epoch_state(0).await;
    let p = env.sponsored(0, p).await;
    assert_eq!((r.status, r.proposal), (EpochStatus::Finalized, p));
}

/// At most three vetoes per epoch, whichever guardians send them and whatever they veto (a round
/// still voting, or a proposal at quorum): the fourth is refused and the proposal finalizes.
#[tokio::test]
async fn vetoes_are_limited_to_three_per_epoch_across_guardians() {
    let (mut env, second) = two_guardians().await;
    let first = env.guardian.insecure_clone();
    let tree = env.reward_tree(0, &[(Pubkey::new_unique(), 500)]);
    let p = env.proposal(&tree, 0);
    let q = EpochProposal {
        dataset_hash: [9; 32],
        ..p
    };
    env.end_epoch(0).await;
    // Round 0, still voting: vetoed by the first guardian.
    env.vote(0, 0, p).await.unwrap();
    veto_as(&mut env, &first, 0).await.unwrap();
    // Round 1, at quorum: vetoed by the second guardian; p is banned for a challenge period.
    env.vote(0, 0, p).await.unwrap();
    env.vote(1, 0, p).await.unwrap();
    veto_as(&mut env, &second, 0).await.unwrap();
    // Round 2, voting for another proposal: the third veto.
    assert_program_err(env.vote(0, 0, p).await, E::ProposalVetoed);
    env.vote(0, 0, q).await.unwrap();
    veto_as(&mut env, &first, 0).await.unwrap();
    assert_eq!(env.epoch_state(0).await.vetoes, 3);
    // Round 3, once the ban has passed: p reaches quorum and neither guardian can stop it any
    // more.
    let until = env.epoch_state(0).await.banned_until;
    env.set_time(until).await;
    env.vote(0, 0, p).await.unwrap();
    env.vote(1, 0, p).await.unwrap();
    for g in [&first, &second] {
        assert_program_err(veto_as(&mut env, g, 0).await, E::VetoLimitReached);
    }
    let r = env.epoch_state(0).await;
    assert_eq!((r.status, r.round, r.vetoes), (EpochStatus::Proposed, 3, 3));
    env.set_time(r.finalizable_at).await;
    env.finalize(0).await.unwrap();
    let r = env.epoch_state(0).await;
    let p = env.sponsored(0, p).await;
    assert_eq!((r.status, r.proposal), (EpochStatus::Finalized, p));
}

#[tokio::test]
async fn only_a_guardian_can_veto() {
    let (mut env, second) = two_guardians().await;
    let tree = env.reward_tree(0, &[(Pubkey::new_unique(), 500)]);
    let p = env.proposal(&tree, 0);
    env.end_epoch(0).await;
    env.vote(0, 0, p).await.unwrap();
    env.vote(1, 0, p).await.unwrap();
    let stranger = Keypair::new();
    for k in [
        env.admin.insecure_clone(),
        env.oracles[0].insecure_clone(),
        stranger,
    ] {
        assert_program_err(veto_as(&mut env, &k, 0).await, E::NotGuardian);
    }
    assert_eq!(env.epoch_state(0).await.status, EpochStatus::Proposed);
    veto_as(&mut env, &second, 0).await.unwrap();
    assert_eq!(env.epoch_state(0).await.status, EpochStatus::Vetoed);
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
