//! Delayed governance: `queue_change`, `cancel_change`, `apply_change`. Nothing the admin signs
//! takes effect before the governance delay, every change is checked against the same bounds
//! as `initialize` and against the parameters it replaces, and budget parameters reach only
//! epochs that had not started.

use backhaul::error::BackhaulError as E;
use backhaul::state::EmissionParams;
use backhaul_core::emission::EmissionSchedule;
use backhaul_tests::*;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};

const TOKEN: u64 = 1_000_000;

fn oracle_change(env: &Env, keep: usize, threshold: u8) -> GovernanceChange {
    GovernanceChange::Oracles {
        oracles: env.oracles.iter().take(keep).map(|k| k.pubkey()).collect(),
        threshold,
    }
}

fn emission_change(emission: EmissionParams) -> GovernanceChange {
    GovernanceChange::Params(ParamsChange {
        emission: Some(emission),
        ..ParamsChange::default()
    })
}

async fn lamports(env: &mut Env, key: &Pubkey) -> u64 {
    env.ctx
        .banks_client
        .get_balance(*key)
        .await
        .expect("balance")
}

#[tokio::test]
async fn a_queued_change_applies_only_after_the_delay_and_only_once() {
    let mut env = Env::new().await;
    let admin = env.admin.pubkey();
    let before = lamports(&mut env, &admin).await;
    let id = env.queue(oracle_change(&env, 2, 2)).await.unwrap();
    assert_eq!(id, 0);
    let queued_at = env.now().await;
    let key = env.deployment().pending_change(id);
    let pending: PendingChange = env.account(&key).await.expect("queued");
    assert_eq!(
        pending.executable_at,
        queued_at + GOVERNANCE_DELAY_SECS as i64
    );
    assert_eq!(pending.queued_by, admin);
    assert!(
        lamports(&mut env, &admin).await < before,
        "the admin pays the rent"
    );
    // Nothing changes while the change waits, and it cannot be applied a second early.
    assert_eq!(env.config_state().await.oracles.len(), 3);
    assert_program_err(env.apply(id).await, E::ChangeNotReady);
    env.set_time(pending.executable_at - 1).await;
    assert_program_err(env.apply(id).await, E::ChangeNotReady);
    assert_eq!(env.config_state().await.threshold, 2);
    env.set_time(pending.executable_at).await;
    env.apply(id).await.unwrap();
    let c = env.config_state().await;
    assert_eq!((c.oracles.len(), c.threshold), (2, 2));
    assert_eq!(c.next_change_id, 1);
    // The account is closed and its rent is back with who queued it; a replay finds nothing.
    assert!(env.account::<PendingChange>(&key).await.is_none());
    assert_eq!(lamports(&mut env, &admin).await, before);
    assert_failed(env.apply(id).await);
    // The removed oracle can no longer vote.
    env.end_epoch(0).await;
    let tree = env.reward_tree(0, &[(Pubkey::new_unique(), TOKEN)]);
    let p = env.proposal(&tree, 0);
    assert_program_err(env.vote(2, 0, p).await, E::NotOracle);
}

#[tokio::test]
async fn queue_change_refuses_other_signers_and_wrong_ids() {
    let mut env = Env::new().await;
    let (admin, guardian) = (env.admin.insecure_clone(), env.guardian.insecure_clone());
    let change = oracle_change(&env, 2, 2);
    let ix = env.queue_change_ix(&guardian.pubkey(), 0, change.clone());
    assert_program_err(env.send_as(ix, &guardian).await, E::NotAdmin);
    // The admin's key without its signature.
    let mut ix = env.queue_change_ix(&admin.pubkey(), 0, change.clone());
    ix.accounts[0].is_signer = false;
    assert_failed(env.send(&[ix], &[]).await);
    // Ids are sequential: a skipped or reused id is refused.
    let ix = env.queue_change_ix(&admin.pubkey(), 1, change.clone());
    assert_program_err(env.send_as(ix, &admin).await, E::WrongChange);
    let id = env.queue(change.clone()).await.unwrap();
    // A reused id names an account that already exists: its creation fails before the id is
    // compared, and nothing changes.
    let ix = env.queue_change_ix(&admin.pubkey(), id, change.clone());
    assert_failed(env.send_as(ix, &admin).await);
    assert_eq!(env.next_change_id().await, id + 1);
    // Another deployment's admin cannot queue into this one.
    let other = env.add_deployment().await;
    let stranger = Keypair::new();
    crate::util::fund(&mut env, &stranger.pubkey()).await;
    let mut ix = env.queue_change_ix(&stranger.pubkey(), 1, change);
    ix.accounts[1].pubkey = config_address(&other);
    assert_failed(env.send_as(ix, &stranger).await);
    assert_eq!(env.next_change_id().await, 1);
}

/// A compromised admin key, alone: every path from the admin to minting for itself is refused
/// or waits out a delay that the guardians and everyone watching can see.
#[tokio::test]
async fn a_compromised_admin_cannot_mint_or_take_over_at_once() {
    let mut env = Env::new().await;
    let admin = env.admin.pubkey();
    let guardian = env.guardian.pubkey();
    let e = default_emission();
    let capacity = env.config_state().await.rate_limiter.capacity;
    let refused = [
        // Making itself the oracle, or the guardian.
        (
            GovernanceChange::Oracles {
                oracles: vec![admin],
                threshold: 1,
            },
            E::RolesOverlap,
        ),
        (
            GovernanceChange::Guardians {
                guardians: vec![admin],
            },
            E::RolesOverlap,
        ),
        (
            GovernanceChange::Guardians {
                guardians: vec![env.oracles[0].pubkey()],
            },
            E::RolesOverlap,
        ),
        // A huge schedule: at most double per change.
        // (The rate capacity doubles with it, so only the raise limit is in the way.)
        (
            GovernanceChange::Params(ParamsChange {
                emission: Some(EmissionParams {
                    initial_per_epoch: 2 * e.initial_per_epoch + 1,
                    ..e
                }),
                rate_capacity: Some(2 * capacity),
                ..ParamsChange::default()
            }),
            E::RaiseTooLarge,
        ),
        (
            emission_change(EmissionParams {
                floor_per_epoch: 2 * e.floor_per_epoch + 1,
                ..e
            }),
            E::RaiseTooLarge,
        ),
        // A slower decay or a higher lifetime cap, never.
        (
            emission_change(EmissionParams {
                decay_bps: e.decay_bps - 1,
                ..e
            }),
            E::RaiseTooLarge,
        ),
        (
            emission_change(EmissionParams {
                lifetime_cap: e.lifetime_cap + 1,
                ..e
            }),
            E::LifetimeCapRaised,
        ),
        // An unlimited rate limiter.
        (
            GovernanceChange::Params(ParamsChange {
                rate_capacity: Some(u64::MAX),
                ..ParamsChange::default()
            }),
            E::RaiseTooLarge,
        ),
        // A challenge period too short to watch, or a delay shorter than an epoch and a
        // challenge period.
        (
            GovernanceChange::Params(ParamsChange {
                challenge_period_secs: Some(60),
                ..ParamsChange::default()
            }),
            E::InvalidChallengePeriod,
        ),
        (
            GovernanceChange::Params(ParamsChange {
                governance_delay_secs: Some(EPOCH_SECS + CHALLENGE_SECS - 1),
                ..ParamsChange::default()
            }),
            E::InvalidGovernanceDelay,
        ),
        // Oracles outside the bounds of `initialize`.
        (
            GovernanceChange::Oracles {
                oracles: vec![Pubkey::new_unique(), Pubkey::new_unique()],
                threshold: 1,
            },
            E::InvalidThreshold,
        ),
        (
            GovernanceChange::Guardians { guardians: vec![] },
            E::InvalidGuardianSet,
        ),
    ];
    let a = env.admin.insecure_clone();
    for (change, expected) in refused {
        let id = env.next_change_id().await;
        let ix = env.queue_change_ix(&a.pubkey(), id, change.clone());
        let res = env.send_as(ix, &a).await;
        assert_program_err(res, expected);
    }
    assert_eq!(env.next_change_id().await, 0, "nothing was queued");

    // What is left: oracles it holds the keys of, and guardians it holds the keys of. The
    // oracle change can be cancelled by any guardian; the guardian change cannot be cancelled by
    // the guardians it removes (or a hostile guardian could never be removed), so taking over
    // needs two delays in a row, each visible on-chain from its first second.
    let own_oracle = Pubkey::new_unique();
    let own_guardian = Keypair::new();
    let oracles = env
        .queue(GovernanceChange::Oracles {
            oracles: vec![own_oracle],
            threshold: 1,
        })
        .await
        .unwrap();
    let guardians = env
        .queue(GovernanceChange::Guardians {
            guardians: vec![own_guardian.pubkey()],
        })
        .await
        .unwrap();
    let g = env.guardian.insecure_clone();
    let ix = env.cancel_change_ix(&g.pubkey(), oracles);
    env.send_as(ix, &g).await.unwrap();
    let ix = env.cancel_change_ix(&g.pubkey(), guardians);
    assert_program_err(env.send_as(ix, &g).await, E::CannotCancel);
    env.wait_for_change(guardians).await;
    env.apply(guardians).await.unwrap();
    let c = env.config_state().await;
    assert_eq!(c.guardians, vec![own_guardian.pubkey()]);
    assert!(!c.oracles.contains(&own_oracle));
    assert!(!c.is_guardian(&guardian));
    // The oracle change must now be queued again and wait a whole delay more.
    let start = env.now().await;
    let again = env
        .queue(GovernanceChange::Oracles {
            oracles: vec![own_oracle],
            threshold: 1,
        })
        .await
        .unwrap();
    assert_program_err(env.apply(again).await, E::ChangeNotReady);
    let pending: PendingChange = env
        .account(&env.deployment().pending_change(again))
        .await
        .unwrap();
    assert!(pending.executable_at >= start + GOVERNANCE_DELAY_SECS as i64);
}

#[tokio::test]
async fn cancel_change_by_the_admin_or_a_guardian_only() {
    let mut env = Env::new().await;
    let admin = env.admin.insecure_clone();
    let before = lamports(&mut env, &admin.pubkey()).await;
    let id = env.queue(oracle_change(&env, 2, 2)).await.unwrap();
    let oracle = env.oracles[0].insecure_clone();
    let ix = env.cancel_change_ix(&oracle.pubkey(), id);
    assert_program_err(env.send_as(ix, &oracle).await, E::NotAdminOrGuardian);
    // The rent goes back to who queued it, not to whoever names itself.
    let g = env.guardian.insecure_clone();
    let mut ix = env.cancel_change_ix(&g.pubkey(), id);
    let queued_by = ix
        .accounts
        .iter()
        .position(|m| m.pubkey == admin.pubkey())
        .expect("queued_by account");
    ix.accounts[queued_by].pubkey = g.pubkey();
    assert_failed(env.send_as(ix, &g).await);
    let ix = env.cancel_change_ix(&g.pubkey(), id);
    env.send_as(ix, &g).await.unwrap();
    assert_eq!(lamports(&mut env, &admin.pubkey()).await, before);
    // A cancelled change can be neither applied nor cancelled again.
    env.set_time(GENESIS + GOVERNANCE_DELAY_SECS as i64).await;
    assert_failed(env.apply(id).await);
    let ix = env.cancel_change_ix(&admin.pubkey(), id);
    assert_failed(env.send_as(ix, &admin).await);
    assert_eq!(env.config_state().await.oracles.len(), 3);
    // The admin cancels its own.
    let id = env.queue(oracle_change(&env, 2, 2)).await.unwrap();
    let ix = env.cancel_change_ix(&admin.pubkey(), id);
    env.send_as(ix, &admin).await.unwrap();
    assert!(env
        .account::<PendingChange>(&env.deployment().pending_change(id))
        .await
        .is_none());
}

#[tokio::test]
async fn a_new_governance_delay_applies_to_changes_queued_after_it() {
    let mut env = Env::new().await;
    let longer = 3 * 86_400;
    // Shortening or lengthening the delay itself waits the old delay.
    env.govern(GovernanceChange::Params(ParamsChange {
        governance_delay_secs: Some(longer),
        ..ParamsChange::default()
    }))
    .await
    .unwrap();
    assert_eq!(env.config_state().await.governance_delay_secs, longer);
    let now = env.now().await;
    let id = env.queue(oracle_change(&env, 2, 2)).await.unwrap();
    let pending: PendingChange = env
        .account(&env.deployment().pending_change(id))
        .await
        .unwrap();
    assert_eq!(pending.executable_at, now + longer as i64);
    env.set_time(now + GOVERNANCE_DELAY_SECS as i64).await;
    assert_program_err(env.apply(id).await, E::ChangeNotReady);
}

/// A parameter change at the worst moment: applied while an epoch runs or waits in its
/// challenge period, the new budget reaches only the first epoch that had not started, so the
/// oracles' closes of earlier epochs stay valid.
#[tokio::test]
async fn budget_changes_apply_from_an_epoch_that_had_not_started() {
    let mut env = Env::new().await;
    let old = default_emission();
    let new = EmissionParams {
        initial_per_epoch: old.initial_per_epoch / 2,
        ..old
    };
    let id = env.queue(emission_change(new)).await.unwrap();
    let op = Pubkey::new_unique();
    let old_schedule = EmissionSchedule::from(old);
    let new_schedule = EmissionSchedule::from(new);
    let a0 = old_schedule.scheduled(0).unwrap();
    let r0 = env.reward_tree(0, &[(op, a0)]);
    env.run_epoch(0, env.proposal(&r0, 0)).await;
    // Applied during epoch 1 (30 hours after genesis), with epoch 0 finalized.
    env.wait_for_change(id).await;
    assert_eq!(env.current_epoch().await, 1);
    env.apply(id).await.unwrap();
    let c = env.config_state().await;
    let pending = c.pending_params.expect("pending");
    assert_eq!(pending.from_epoch, 2);
    assert_eq!(c.emission, old, "the current parameters are unchanged");
    assert_eq!(c.params_for(1).emission, old);
    assert_eq!(c.params_for(2).emission, new);
    // Epoch 1 still gets the old schedule.
    let a1 = old_schedule.scheduled(1).unwrap();
    assert!(a1 > new_schedule.scheduled(1).unwrap());
    let r1 = env.reward_tree(1, &[(op, a0 + a1)]);
    env.run_epoch(1, env.proposal(&r1, a0)).await;
    let c = env.config_state().await;
    assert_eq!(c.emission, new, "promoted once epoch 2 is next");
    assert!(c.pending_params.is_none());
    // Epoch 2 gets the new one: the old amount is refused at the vote.
    env.end_epoch(2).await;
    let too_much = env.reward_tree(2, &[(op, a0 + a1 + old_schedule.scheduled(2).unwrap())]);
    let res = env.vote(0, 2, env.proposal(&too_much, a0 + a1)).await;
    assert_program_err(res, E::ExceedsEpochEmission);
    let a2 = new_schedule.scheduled(2).unwrap();
    let r2 = env.reward_tree(2, &[(op, a0 + a1 + a2)]);
    env.run_epoch(2, env.proposal(&r2, a0 + a1)).await;
    assert_eq!(env.config_state().await.total_minted, a0 + a1 + a2);
}

#[tokio::test]
async fn a_second_budget_change_waits_until_the_first_took_effect() {
    let mut env = Env::new().await;
    let e = default_emission();
    let first = EmissionParams {
        floor_per_epoch: e.floor_per_epoch / 2,
        ..e
    };
    let second = EmissionParams {
        floor_per_epoch: e.floor_per_epoch / 4,
        ..e
    };
    let a = env.queue(emission_change(first)).await.unwrap();
    // Checked against the current parameters when queued, against the pending ones when
    // applied.
    let b = env.queue(emission_change(second)).await.unwrap();
    let op = Pubkey::new_unique();
    let schedule = EmissionSchedule::from(e);
    let a0 = schedule.scheduled(0).unwrap();
    let r0 = env.reward_tree(0, &[(op, a0)]);
    env.run_epoch(0, env.proposal(&r0, 0)).await;
    env.wait_for_change(b).await;
    env.apply(a).await.unwrap();
    assert_eq!(
        env.config_state().await.pending_params.unwrap().from_epoch,
        2
    );
    assert_program_err(env.apply(b).await, E::BudgetChangePending);
    // Still queued: it applies once the first took effect.
    let a1 = schedule.scheduled(1).unwrap();
    let r1 = env.reward_tree(1, &[(op, a0 + a1)]);
    env.run_epoch(1, env.proposal(&r1, a0)).await;
    assert_eq!(env.config_state().await.emission, first);
    env.apply(b).await.unwrap();
    let c = env.config_state().await;
    let pending = c.pending_params.unwrap();
    assert_eq!(pending.params.emission, second);
    assert_eq!(pending.from_epoch, 3);
}

#[tokio::test]
async fn a_change_without_budget_parameters_applies_at_once() {
    let mut env = Env::new().await;
    env.govern(GovernanceChange::Params(ParamsChange {
        challenge_period_secs: Some(CHALLENGE_SECS / 2),
        ..ParamsChange::default()
    }))
    .await
    .unwrap();
    let c = env.config_state().await;
    assert_eq!(c.challenge_period_secs, CHALLENGE_SECS / 2);
    assert!(c.pending_params.is_none());
    // Guardians: the new set can pause, the old one no longer.
    let new = Keypair::new();
    crate::util::fund(&mut env, &new.pubkey()).await;
    let old = env.guardian.insecure_clone();
    env.govern(GovernanceChange::Guardians {
        guardians: vec![new.pubkey(), old.pubkey()],
    })
    .await
    .unwrap();
    env.govern(GovernanceChange::Guardians {
        guardians: vec![new.pubkey()],
    })
    .await
    .unwrap();
    let ix = env.set_paused_ix(&old.pubkey(), true);
    assert_program_err(env.send_as(ix, &old).await, E::NotAdminOrGuardian);
    let ix = env.set_paused_ix(&new.pubkey(), true);
    env.send_as(ix, &new).await.unwrap();
}

/// The parameters that decide an epoch's dataset change like the budget: only the admin queues
/// them, each is checked against the bounds of `initialize`, and once applied they reach only
/// the first epoch that had not started, so the running epoch's dataset is decided by the values
/// it started with.
#[tokio::test]
async fn consensus_changes_only_by_governance_and_from_an_epoch_that_had_not_started() {
    let mut env = Env::new().await;
    let old = default_consensus();
    let new = ConsensusParams {
        credits_per_gib: 60_000,
        pair_cap_bytes: 50 << 30,
        max_rate_bytes_per_sec: 512 << 20,
        grace_secs: 600,
    };
    let change = |c: ConsensusParams| {
        GovernanceChange::Params(ParamsChange {
            consensus: Some(c),
            ..ParamsChange::default()
        })
    };
    // Neither a guardian nor an oracle can queue it.
    for signer in [
        env.guardian.insecure_clone(),
        env.oracles[0].insecure_clone(),
    ] {
        let ix = env.queue_change_ix(&signer.pubkey(), 0, change(new));
        assert_program_err(env.send_as(ix, &signer).await, E::NotAdmin);
    }
    // Out of bounds, refused when queued.
    let refused: [fn(&mut ConsensusParams); 5] = [
        |c| c.credits_per_gib = 0,
        |c| c.pair_cap_bytes = 0,
        |c| c.max_rate_bytes_per_sec = 0,
        |c| c.grace_secs = EPOCH_SECS / 2,
        |c| c.grace_secs = u64::MAX,
    ];
    let admin = env.admin.insecure_clone();
    for edit in refused {
        let mut c = new;
        edit(&mut c);
        let ix = env.queue_change_ix(&admin.pubkey(), 0, change(c));
        assert_program_err(env.send_as(ix, &admin).await, E::InvalidConsensusParams);
    }
    assert_eq!(env.next_change_id().await, 0, "nothing was queued");

    // Queued during epoch 0: nothing changes while it waits.
    let id = env.queue(change(new)).await.unwrap();
    let c = env.config_state().await;
    assert_eq!((c.consensus, c.params_for(0).consensus), (old, old));
    assert!(c.pending_params.is_none());
    let op = Pubkey::new_unique();
    let r0 = env.reward_tree(0, &[(op, TOKEN)]);
    env.run_epoch(0, env.proposal(&r0, 0)).await;
    // Applied during epoch 1: epoch 1 keeps the values it started with, epoch 2 reads the new.
    env.wait_for_change(id).await;
    assert_eq!(env.current_epoch().await, 1);
    env.apply(id).await.unwrap();
    let c = env.config_state().await;
    assert_eq!(c.pending_params.map(|p| p.from_epoch), Some(2));
    assert_eq!(c.consensus, old, "the current parameters are unchanged");
    assert_eq!(c.params_for(1).consensus, old);
    assert_eq!(c.params_for(2).consensus, new);
    assert_eq!(
        c.params_for(2).emission,
        c.emission,
        "only the consensus changes"
    );
    // Promoted once epoch 2 is next.
    let r1 = env.reward_tree(1, &[(op, 2 * TOKEN)]);
    env.run_epoch(1, env.proposal(&r1, TOKEN)).await;
    let c = env.config_state().await;
    assert_eq!(c.consensus, new);
    assert!(c.pending_params.is_none());
}
