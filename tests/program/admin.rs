use backhaul::constants::{MAX_PAUSE_SECS, PAUSE_COOLDOWN_SECS};
use backhaul::error::BackhaulError as E;
use backhaul_tests::*;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};

const TOKEN: u64 = 1_000_000;

#[tokio::test]
async fn admin_transfer_takes_two_steps() {
    let mut env = Env::new().await;
    let admin = env.admin.insecure_clone();
    let next = Keypair::new();
    crate::util::fund(&mut env, &next.pubkey()).await;
    // Nothing pending yet.
    let ix = env.accept_admin_ix(&next.pubkey());
    assert_program_err(env.send_as(ix, &next).await, E::NoPendingAdmin);
    // Only the admin proposes.
    let ix = env.propose_admin_ix(&next.pubkey(), next.pubkey());
    assert_program_err(env.send_as(ix, &next).await, E::NotAdmin);
    let ix = env.propose_admin_ix(&admin.pubkey(), Pubkey::default());
    assert_program_err(env.send_as(ix, &admin).await, E::InvalidKey);
    // Nor can the admin role go to a guardian or an oracle: one key would hold two roles.
    for taken in [env.guardian.pubkey(), env.oracles[0].pubkey()] {
        let ix = env.propose_admin_ix(&admin.pubkey(), taken);
        assert_program_err(env.send_as(ix, &admin).await, E::RolesOverlap);
    }
    let ix = env.propose_admin_ix(&admin.pubkey(), next.pubkey());
    env.send_as(ix, &admin).await.unwrap();
    let c = env.config_state().await;
    assert_eq!(
        (c.admin, c.pending_admin),
        (admin.pubkey(), Some(next.pubkey()))
    );
    // Someone else cannot accept.
    let g = env.guardian.insecure_clone();
    let ix = env.accept_admin_ix(&g.pubkey());
    assert_program_err(env.send_as(ix, &g).await, E::NotPendingAdmin);
    let ix = env.accept_admin_ix(&next.pubkey());
    env.send_as(ix, &next).await.unwrap();
    let c = env.config_state().await;
    assert_eq!((c.admin, c.pending_admin), (next.pubkey(), None));
    // The old admin has lost its powers; accepting again finds nothing pending.
    let change = GovernanceChange::Guardians {
        guardians: vec![Pubkey::new_unique()],
    };
    let ix = env.queue_change_ix(&admin.pubkey(), 0, change);
    assert_program_err(env.send_as(ix, &admin).await, E::NotAdmin);
    let ix = env.accept_admin_ix(&next.pubkey());
    assert_program_err(env.send_as(ix, &next).await, E::NoPendingAdmin);
}

#[tokio::test]
async fn proposing_the_current_admin_cancels_a_transfer() {
    let mut env = Env::new().await;
    let admin = env.admin.insecure_clone();
    let next = Keypair::new();
    let ix = env.propose_admin_ix(&admin.pubkey(), next.pubkey());
    env.send_as(ix, &admin).await.unwrap();
    let ix = env.propose_admin_ix(&admin.pubkey(), admin.pubkey());
    env.send_as(ix, &admin).await.unwrap();
    assert_eq!(env.config_state().await.pending_admin, None);
    crate::util::fund(&mut env, &next.pubkey()).await;
    let ix = env.accept_admin_ix(&next.pubkey());
    assert_program_err(env.send_as(ix, &next).await, E::NoPendingAdmin);
}

#[tokio::test]
async fn pause_by_admin_or_guardian_unpause_by_admin_only() {
    let mut env = Env::new().await;
    let (admin, guardian) = (env.admin.insecure_clone(), env.guardian.insecure_clone());
    let oracle = env.oracles[0].insecure_clone();
    let ix = env.set_paused_ix(&oracle.pubkey(), true);
    assert_program_err(env.send_as(ix, &oracle).await, E::NotAdminOrGuardian);
    let ix = env.set_paused_ix(&admin.pubkey(), false);
    assert_program_err(env.send_as(ix, &admin).await, E::NotPaused);
    let ix = env.set_paused_ix(&guardian.pubkey(), true);
    env.send_as(ix, &guardian).await.unwrap();
    let now = env.now().await;
    let c = env.config_state().await;
    assert!(c.is_paused(now));
    assert_eq!(c.paused_until, now + MAX_PAUSE_SECS);
    // A pause cannot be extended by pausing again.
    let ix = env.set_paused_ix(&admin.pubkey(), true);
    assert_program_err(env.send_as(ix, &admin).await, E::Paused);
    let ix = env.set_paused_ix(&guardian.pubkey(), false);
    assert_program_err(env.send_as(ix, &guardian).await, E::NotAdmin);
    let ix = env.set_paused_ix(&admin.pubkey(), false);
    env.send_as(ix, &admin).await.unwrap();
    let c = env.config_state().await;
    assert!(!c.is_paused(now));
    // After a pause ends, the next waits out the cooldown, for the admin too.
    assert_eq!(c.pause_available_at, now + PAUSE_COOLDOWN_SECS);
    let ix = env.set_paused_ix(&admin.pubkey(), true);
    assert_program_err(env.send_as(ix, &admin).await, E::PauseCoolingDown);
    env.set_time(c.pause_available_at).await;
    let ix = env.set_paused_ix(&admin.pubkey(), true);
    env.send_as(ix, &admin).await.unwrap();
    assert!(env.config_state().await.is_paused(c.pause_available_at));
}

/// A hostile or mistaken guardian: a pause ends by itself, and the next one, by any guardian,
/// must wait a cooldown, so the network runs at least half of the time whatever the guardians
/// do.
#[tokio::test]
async fn a_pause_expires_by_itself_and_cannot_be_chained() {
    let mut env = Env::new_uninitialized().await;
    let guardian = env.guardian.insecure_clone();
    let second = Keypair::new();
    let mut params = env.default_params();
    params.guardians.push(second.pubkey());
    env.initialize(params).await.unwrap();
    crate::util::fund(&mut env, &second.pubkey()).await;
    let tree = env.reward_tree(0, &[(Pubkey::new_unique(), TOKEN)]);
    let p = env.proposal(&tree, 0);
    env.end_epoch(0).await;
    let p = env.paid(0, p).await.unwrap();
    let ix = env.set_paused_ix(&guardian.pubkey(), true);
    env.send_as(ix, &guardian).await.unwrap();
    let c = env.config_state().await;
    // Paused: votes are refused.
    assert_program_err(env.vote(0, 0, p).await, E::Paused);
    // At the pause's end, with nobody unpausing, they go through again.
    env.set_time(c.paused_until).await;
    env.vote(0, 0, p).await.unwrap();
    env.vote(1, 0, p).await.unwrap();
    // Neither guardian can pause again until the cooldown ends.
    for g in [&guardian, &second] {
        let ix = env.set_paused_ix(&g.pubkey(), true);
        assert_program_err(env.send_as(ix, g).await, E::PauseCoolingDown);
    }
    // The epoch finalizes in the window the cooldown guarantees.
    let at = env.epoch_state(0).await.finalizable_at;
    assert!(at < c.pause_available_at);
    env.set_time(at).await;
    env.finalize(0).await.unwrap();
    assert_eq!(env.config_state().await.next_epoch, 1);
}

#[tokio::test]
async fn admin_instructions_need_the_signature() {
    let mut env = Env::new().await;
    // The admin's key without its signature: the runtime refuses the missing signer.
    let admin = env.admin.pubkey();
    let mut ix = env.set_paused_ix(&admin, true);
    ix.accounts[0].is_signer = false;
    assert_anchor_err(
        env.send(&[ix], &[]).await,
        anchor_lang::error::ErrorCode::AccountNotSigner,
    );
    // Another deployment's config cannot be changed by this deployment's admin... and a config
    // of another deployment with the same admin is still its own account: has_one binds them.
    let other = env.add_deployment().await;
    let stranger = Keypair::new();
    crate::util::fund(&mut env, &stranger.pubkey()).await;
    let mut ix = env.propose_admin_ix(&stranger.pubkey(), Pubkey::new_unique());
    ix.accounts[1].pubkey = config_address(&other);
    assert_program_err(env.send_as(ix, &stranger).await, E::NotAdmin);
}
