//! Oracle bonds: required to vote when the config asks for one, locked for two challenge periods
//! after unbonding, and slashed by a fraud proof (half to the prover, half kept for good).

use backhaul::constants::FRAUD_BOUNTY_BPS;
use backhaul::error::BackhaulError as E;
use backhaul::state::{FraudProof, OracleBond, ParamsChange, Standing, Tree};
use backhaul_core::tree::EpochTree;
use backhaul_sdk::fraud::proven;
use backhaul_sdk::ix;
use backhaul_tests::*;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};

const SOL: u64 = 1_000_000_000;
const A: Pubkey = Pubkey::new_from_array([0x40; 32]);
const B: Pubkey = Pubkey::new_from_array([0x80; 32]);
const THIEF: Pubkey = Pubkey::new_from_array([0xf0; 32]);

/// A deployment asking each oracle for a bond of `bond` lamports (through governance), with
/// epoch 0 finalized by oracles 0 and 1, which bonded first: A is owed 300, B 700.
async fn bonded(bond: u64) -> (Env, EpochTree) {
    let mut env = Env::new().await;
    env.govern(GovernanceChange::Params(ParamsChange {
        oracle_bond_lamports: Some(bond),
        ..ParamsChange::default()
    }))
    .await
    .expect("bond required");
    assert_eq!(env.config_state().await.oracle_bond_lamports, bond);
    env.deposit_bond(0, bond).await.unwrap();
    env.deposit_bond(1, bond).await.unwrap();
    let t0 = env.reward_tree(0, &[(A, 300), (B, 700)]);
    env.run_epoch(0, env.proposal(&t0, 0)).await;
    (env, t0)
}

fn bond_address(env: &Env, i: usize) -> Pubkey {
    env.deployment().bond(&env.oracles[i].pubkey())
}

#[tokio::test]
async fn an_oracle_without_the_bond_cannot_vote() {
    let (mut env, _) = bonded(SOL).await;
    let tree = env.reward_tree(1, &[(A, 300), (B, 700)]);
    let p = env.proposal(&tree, 1_000);
    env.end_epoch(1).await;
    // Oracle 2 never bonded.
    assert_program_err(env.vote(2, 1, p).await, E::BondRequired);
    // Too little.
    env.deposit_bond(2, SOL - 1).await.unwrap();
    assert_program_err(env.vote(2, 1, p).await, E::BondRequired);
    env.deposit_bond(2, 1).await.unwrap();
    env.vote(2, 1, p).await.unwrap();
    // Another oracle's bond does not count for it (the builder names the voter's own bond).
    let oracle = env.oracles[2].insecure_clone();
    let mut ix = env.propose_ix(&oracle.pubkey(), 1, p);
    ix.accounts[4].pubkey = bond_address(&env, 0);
    assert_program_err(env.send(&[ix], &[&oracle]).await, E::BondRequired);
}

#[tokio::test]
async fn a_bond_unbonds_only_after_two_challenge_periods_and_cannot_vote_meanwhile() {
    let (mut env, _) = bonded(SOL).await;
    let oracle = env.oracles[0].insecure_clone();
    let d = env.deployment();
    // Only the oracle itself can unbond.
    let other = env.oracles[1].insecure_clone();
    let mut ix = ix::unbond(&d, &other.pubkey());
    ix.accounts[2].pubkey = bond_address(&env, 0);
    assert_anchor_err(
        env.send(&[ix], &[&other]).await,
        anchor_lang::error::ErrorCode::ConstraintSeeds,
    );
    // Withdrawing before unbonding is refused.
    assert_program_err(
        env.send(&[ix::withdraw_bond(&d, &oracle.pubkey())], &[&oracle])
            .await,
        E::BondLocked,
    );
    env.send(&[ix::unbond(&d, &oracle.pubkey())], &[&oracle])
        .await
        .unwrap();
    let started = env.now().await;
    let bond: OracleBond = env.account(&bond_address(&env, 0)).await.unwrap();
    assert_eq!(
        (bond.unbonding_at, bond.withdrawable_at),
        (started, started + 2 * CHALLENGE_SECS as i64)
    );
    assert_program_err(
        env.send(&[ix::unbond(&d, &oracle.pubkey())], &[&oracle])
            .await,
        E::AlreadyUnbonding,
    );
    assert_program_err(env.deposit_bond(0, SOL).await, E::AlreadyUnbonding);
    // It can no longer vote.
    let tree = env.reward_tree(1, &[(A, 300), (B, 700)]);
    env.end_epoch(1).await;
    assert_program_err(
        env.vote(0, 1, env.proposal(&tree, 1_000)).await,
        E::BondRequired,
    );
    // Locked until two challenge periods have passed.
    env.set_time(started + 2 * CHALLENGE_SECS as i64 - 1).await;
    assert_program_err(
        env.send(&[ix::withdraw_bond(&d, &oracle.pubkey())], &[&oracle])
            .await,
        E::BondLocked,
    );
    env.set_time(started + 2 * CHALLENGE_SECS as i64).await;
    let before = env.lamports(&oracle.pubkey()).await;
    let held = env.lamports(&bond_address(&env, 0)).await;
    env.send(&[ix::withdraw_bond(&d, &oracle.pubkey())], &[&oracle])
        .await
        .unwrap();
    assert_eq!(env.lamports(&oracle.pubkey()).await, before + held);
    assert_eq!(env.lamports(&bond_address(&env, 0)).await, 0);
    // Bonding anew works.
    env.deposit_bond(0, SOL).await.unwrap();
    env.end_epoch(1).await;
    env.vote(0, 1, env.proposal(&tree, 1_000)).await.unwrap();
}

#[tokio::test]
async fn a_longer_challenge_period_also_lengthens_the_wait_of_a_bond_already_unbonding() {
    let (mut env, _) = bonded(SOL).await;
    let oracle = env.oracles[0].insecure_clone();
    let d = env.deployment();
    let longer = 2 * CHALLENGE_SECS;
    let id = env
        .queue(GovernanceChange::Params(ParamsChange {
            challenge_period_secs: Some(longer),
            governance_delay_secs: Some(EPOCH_SECS + longer),
            ..ParamsChange::default()
        }))
        .await
        .unwrap();
    env.wait_for_change(id).await;
    // The oracle unbonds just before the change applies: its bond records the shorter lock.
    env.send(&[ix::unbond(&d, &oracle.pubkey())], &[&oracle])
        .await
        .unwrap();
    let started = env.now().await;
    env.apply(id).await.unwrap();
    let bond: OracleBond = env.account(&bond_address(&env, 0)).await.unwrap();
    assert_eq!(bond.withdrawable_at, started + 2 * CHALLENGE_SECS as i64);
    env.set_time(bond.withdrawable_at).await;
    assert_program_err(
        env.send(&[ix::withdraw_bond(&d, &oracle.pubkey())], &[&oracle])
            .await,
        E::BondLocked,
    );
    env.set_time(started + 2 * longer as i64).await;
    env.send(&[ix::withdraw_bond(&d, &oracle.pubkey())], &[&oracle])
        .await
        .unwrap();
}

#[tokio::test]
async fn a_fraud_proof_slashes_the_voters_bonds_and_pays_half_to_the_prover() {
    let (mut env, t0) = bonded(SOL).await;
    env.deposit_bond(2, SOL).await.unwrap();
    // Oracles 0 and 1 vote the theft; oracle 2 voted first, for the honest tree.
    let bad = env.reward_tree(1, &[(A, 0), (B, 0), (THIEF, 1_000)]);
    let honest = env.reward_tree(1, &[(A, 300), (B, 700)]);
    env.end_epoch(1).await;
    env.vote(2, 1, env.proposal(&honest, 1_000)).await.unwrap();
    env.vote(0, 1, env.proposal(&bad, 1_000)).await.unwrap();
    env.vote(1, 1, env.proposal(&bad, 1_000)).await.unwrap();
    assert_eq!(env.epoch_state(1).await.status, EpochStatus::Proposed);

    let proof = FraudProof::Decrease {
        tree: Tree::Reward,
        earlier: proven(&t0.proof_for(&A.to_bytes()).unwrap()),
        later: Standing::Present(proven(&bad.proof_for(&A.to_bytes()).unwrap())),
    };
    let prover = Keypair::new();
    crate::util::fund(&mut env, &prover.pubkey()).await;
    let d = env.deployment();
    let id = 9;
    env.fill_buffer(&prover, id, &backhaul_sdk::fraud::payload(&proof))
        .await
        .unwrap();
    let voters = env.voters_of_proposal(1).await;
    assert_eq!(
        voters,
        vec![env.oracles[0].pubkey(), env.oracles[1].pubkey()]
    );

    // The voters' bonds must all be named, in vote order.
    let cases = [
        vec![voters[0]],
        vec![voters[1], voters[0]],
        vec![voters[0], env.oracles[2].pubkey()],
    ];
    for named in cases {
        let ix = ix::prove_fraud(&d, &prover.pubkey(), 1, id, Some(0), None, &named);
        assert_program_err(env.send(&[ix], &[&prover]).await, E::WrongBondAccounts);
    }

    let buffer_rent = env.lamports(&d.proof_buffer(&prover.pubkey(), id)).await;
    let prover_before = env.lamports(&prover.pubkey()).await;
    let config_before = env.lamports(&env.config.clone()).await;
    let bonds_before = [
        env.lamports(&bond_address(&env, 0)).await,
        env.lamports(&bond_address(&env, 1)).await,
        env.lamports(&bond_address(&env, 2)).await,
    ];
    let ix = ix::prove_fraud(&d, &prover.pubkey(), 1, id, Some(0), None, &voters);
    env.send(&[ix], &[&prover]).await.unwrap();

    let slashed = 2 * SOL;
    let bounty = slashed * u64::from(FRAUD_BOUNTY_BPS) / 10_000;
    assert_eq!(
        env.lamports(&prover.pubkey()).await,
        prover_before + bounty + buffer_rent
    );
    assert_eq!(
        env.lamports(&env.config.clone()).await,
        config_before + slashed - bounty
    );
    for (i, before) in bonds_before.iter().take(2).enumerate() {
        assert_eq!(env.lamports(&bond_address(&env, i)).await, before - SOL);
        let b: OracleBond = env.account(&bond_address(&env, i)).await.unwrap();
        assert_eq!(b.slashed, SOL);
    }
    // The honest oracle keeps its bond.
    assert_eq!(env.lamports(&bond_address(&env, 2)).await, bonds_before[2]);
    // The buffer is closed.
    assert_eq!(env.lamports(&d.proof_buffer(&prover.pubkey(), id)).await, 0);
    // The slashed oracles cannot vote until they bond again.
    let p = env.proposal(&honest, 1_000);
    assert_program_err(env.vote(0, 1, p).await, E::BondRequired);
    env.deposit_bond(0, SOL).await.unwrap();
    env.vote(0, 1, p).await.unwrap();
}

#[tokio::test]
async fn colluders_that_prove_their_own_fraud_still_lose_together() {
    let (mut env, t0) = bonded(SOL).await;
    let bad = env.reward_tree(1, &[(A, 0), (B, 0), (THIEF, 1_000)]);
    env.end_epoch(1).await;
    env.vote(0, 1, env.proposal(&bad, 1_000)).await.unwrap();
    env.vote(1, 1, env.proposal(&bad, 1_000)).await.unwrap();
    let oracle = env.oracles[0].insecure_clone();
    let before = env.lamports(&oracle.pubkey()).await + env.lamports(&bond_address(&env, 0)).await;
    let proof = FraudProof::Decrease {
        tree: Tree::Reward,
        earlier: proven(&t0.proof_for(&A.to_bytes()).unwrap()),
        later: Standing::Present(proven(&bad.proof_for(&A.to_bytes()).unwrap())),
    };
    // Fees are paid by the fixture's payer, so the difference is the oracle's own.
    env.prove_fraud(&oracle, 1, &proof, Some(0), None)
        .await
        .unwrap();
    let after = env.lamports(&oracle.pubkey()).await + env.lamports(&bond_address(&env, 0)).await;
    // Its bond is gone and the bounty is half of both bonds: the betrayer breaks even at its
    // partner's expense, and the two of them together lose one bond.
    let bounty = 2 * SOL * u64::from(FRAUD_BOUNTY_BPS) / 10_000;
    assert_eq!(after, before - SOL + bounty);
    let partner = env.lamports(&bond_address(&env, 1)).await;
    let rent = env.ctx.banks_client.get_rent().await.unwrap();
    assert_eq!(
        partner,
        rent.minimum_balance(OracleBond::SIZE),
        "the partner's bond is left with its rent only"
    );
    assert!(2 * SOL - bounty > 0);
}

#[tokio::test]
async fn a_bond_above_the_most_governance_may_ask_is_refused() {
    let mut env = Env::new().await;
    let too_much = backhaul::constants::MAX_ORACLE_BOND_LAMPORTS + 1;
    assert_program_err(
        env.queue(GovernanceChange::Params(ParamsChange {
            oracle_bond_lamports: Some(too_much),
            ..ParamsChange::default()
        }))
        .await
        .map(|_| ()),
        E::InvalidOracleBond,
    );
    assert_program_err(env.deposit_bond(0, 0).await, E::InvalidOracleBond);
}
