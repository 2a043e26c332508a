//! Proof buffers: only their owner writes, consumes or closes them; sizes and writes are bounded;
//! malformed contents are refused; the rent always goes back to the owner.

use backhaul::constants::MAX_PROOF_BUFFER_LEN;
use backhaul::error::BackhaulError as E;
use backhaul::state::{FraudProof, ProofBuffer, Standing, Tree};
use backhaul_sdk::fraud::{payload, proven};
use backhaul_sdk::ix;
use backhaul_tests::*;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};

async fn owner(env: &mut Env) -> Keypair {
    let k = Keypair::new();
    crate::util::fund(env, &k.pubkey()).await;
    k
}

#[tokio::test]
async fn sizes_writes_and_signers_are_checked_and_closing_returns_the_rent() {
    let mut env = Env::new().await;
    let d = env.deployment();
    let alice = owner(&mut env).await;
    let mallory = owner(&mut env).await;
    let a = alice.pubkey();
    for len in [0, MAX_PROOF_BUFFER_LEN + 1] {
        assert_program_err(
            env.send(&[ix::open_proof_buffer(&d, &a, 1, len)], &[&alice])
                .await,
            E::InvalidProofBuffer,
        );
    }
    let before = env.lamports(&a).await;
    env.send(&[ix::open_proof_buffer(&d, &a, 1, 100)], &[&alice])
        .await
        .unwrap();
    let buffer: ProofBuffer = env.account(&d.proof_buffer(&a, 1)).await.unwrap();
    assert_eq!((buffer.owner, buffer.id, buffer.len), (a, 1, 100));
    // Opening the same buffer twice fails; another id is another buffer.
    assert_failed(
        env.send(&[ix::open_proof_buffer(&d, &a, 1, 100)], &[&alice])
            .await,
    );
    // Writes stay within the payload.
    env.send(
        &[ix::write_proof_buffer(&d, &a, 1, 90, vec![1; 10])],
        &[&alice],
    )
    .await
    .unwrap();
    assert_program_err(
        env.send(
            &[ix::write_proof_buffer(&d, &a, 1, 91, vec![1; 10])],
            &[&alice],
        )
        .await,
        E::InvalidProofBuffer,
    );
    assert_program_err(
        env.send(
            &[ix::write_proof_buffer(&d, &a, 1, u32::MAX, vec![1])],
            &[&alice],
        )
        .await,
        E::InvalidProofBuffer,
    );
    // Only the owner writes or closes it.
    let mut write = ix::write_proof_buffer(&d, &mallory.pubkey(), 1, 0, vec![2; 10]);
    write.accounts[2].pubkey = d.proof_buffer(&a, 1);
    assert_anchor_err(
        env.send(&[write], &[&mallory]).await,
        anchor_lang::error::ErrorCode::ConstraintSeeds,
    );
    let mut close = ix::close_proof_buffer(&d, &mallory.pubkey(), 1);
    close.accounts[2].pubkey = d.proof_buffer(&a, 1);
    assert_anchor_err(
        env.send(&[close], &[&mallory]).await,
        anchor_lang::error::ErrorCode::ConstraintSeeds,
    );
    env.send(&[ix::close_proof_buffer(&d, &a, 1)], &[&alice])
        .await
        .unwrap();
    // The fixture's payer pays the fees: the owner gets back all it paid.
    assert_eq!(env.lamports(&a).await, before);
    assert_eq!(env.lamports(&d.proof_buffer(&a, 1)).await, 0);
}

/// Epoch 1 proposed with a theft of A's epoch-0 reward, and the proof of it.
async fn theft() -> (Env, FraudProof) {
    let a = Pubkey::new_from_array([0x40; 32]);
    let b = Pubkey::new_from_array([0x80; 32]);
    let mut env = Env::new().await;
    let t0 = env.reward_tree(0, &[(a, 300), (b, 700)]);
    env.run_epoch(0, env.proposal(&t0, 0)).await;
    let bad = env.reward_tree(1, &[(a, 0), (b, 0), (Pubkey::new_unique(), 1_000)]);
    env.end_epoch(1).await;
    env.vote(0, 1, env.proposal(&bad, 1_000)).await.unwrap();
    env.vote(1, 1, env.proposal(&bad, 1_000)).await.unwrap();
    let proof = FraudProof::Decrease {
        tree: Tree::Reward,
        earlier: proven(&t0.proof_for(&a.to_bytes()).unwrap()),
        later: Standing::Present(proven(&bad.proof_for(&a.to_bytes()).unwrap())),
    };
    (env, proof)
}

#[tokio::test]
async fn a_fraud_proof_reads_only_its_provers_well_formed_buffer() {
    let (mut env, proof) = theft().await;
    let d = env.deployment();
    let alice = owner(&mut env).await;
    let mallory = owner(&mut env).await;
    let bytes = payload(&proof);
    env.fill_buffer(&alice, 1, &bytes).await.unwrap();
    // Mallory cannot use Alice's buffer (and so cannot take her bounty).
    let mut ix = env
        .prove_fraud_ix(&mallory.pubkey(), 1, 1, Some(0), None)
        .await;
    ix.accounts[5].pubkey = d.proof_buffer(&alice.pubkey(), 1);
    assert_anchor_err(
        env.send(&[ix], &[&mallory]).await,
        anchor_lang::error::ErrorCode::ConstraintSeeds,
    );
    // Truncated, padded and garbled payloads are refused.
    let mut padded = bytes.clone();
    padded.push(0);
    let garbled: Vec<u8> = vec![0xff; bytes.len()];
    for (id, bad) in [
        (2u64, bytes[..bytes.len() - 1].to_vec()),
        (3, padded),
        (4, garbled),
    ] {
        env.fill_buffer(&mallory, id, &bad).await.unwrap();
        let ix = env
            .prove_fraud_ix(&mallory.pubkey(), 1, id, Some(0), None)
            .await;
        assert_program_err(env.send(&[ix], &[&mallory]).await, E::MalformedProof);
    }
    // A buffer of another deployment is refused.
    let other_mint = env.add_deployment().await;
    let main_mint = env.mint;
    env.use_deployment(other_mint);
    env.fill_buffer(&alice, 7, &bytes).await.unwrap();
    let other_buffer = env.deployment().proof_buffer(&alice.pubkey(), 7);
    env.use_deployment(main_mint);
    let mut ix = env
        .prove_fraud_ix(&alice.pubkey(), 1, 1, Some(0), None)
        .await;
    ix.accounts[5].pubkey = other_buffer;
    assert_anchor_err(
        env.send(&[ix], &[&alice]).await,
        anchor_lang::error::ErrorCode::ConstraintSeeds,
    );
    // Alice's own proof goes through, and her buffer is consumed.
    let ix = env
        .prove_fraud_ix(&alice.pubkey(), 1, 1, Some(0), None)
        .await;
    env.send(&[ix], &[&alice]).await.unwrap();
    assert_eq!(env.lamports(&d.proof_buffer(&alice.pubkey(), 1)).await, 0);
}

#[tokio::test]
async fn buffered_claims_and_settlements_pay_once_from_the_payers_own_buffer() {
    use backhaul_core::merkle::TreeKind;
    use backhaul_core::sum_tree::{Leaf, Scope};
    let mut env = Env::new().await;
    let d = env.deployment();
    let operator = owner(&mut env).await;
    let mallory = owner(&mut env).await;
    let op = operator.pubkey();
    let scope = Scope {
        kind: TreeKind::Reward,
        config: env.config.to_bytes(),
        epoch: 0,
    };
    let (c, proof) = deep_proof(
        &scope,
        &Leaf {
            account: op.to_bytes(),
            amount: 5_000,
        },
        24,
    );
    let p = backhaul::state::EpochProposal {
        reward_root: c.root,
        reward_leaf_count: c.leaf_count,
        reward_total: c.total,
        allocation: c.total,
        dataset_hash: [1; 32],
        usage_root: backhaul_core::sum_tree::empty_root(TreeKind::Usage),
        ..Default::default()
    };
    env.run_epoch(0, p).await;
    let recipient = env.create_ata(&op).await;
    let payload = backhaul_sdk::buffer::leaf_proof(proof.index, &proof.siblings);
    env.fill_buffer(&operator, 1, &payload).await.unwrap();
    // Mallory cannot spend the operator's buffer.
    let mut ix = ix::claim_from_buffer(&d, &mallory.pubkey(), 0, &op, &recipient, 5_000, 1);
    ix.accounts[7].pubkey = d.proof_buffer(&op, 1);
    assert_anchor_err(
        env.send(&[ix], &[&mallory]).await,
        anchor_lang::error::ErrorCode::ConstraintSeeds,
    );
    // A buffer holding a wrong amount's proof pays nothing.
    let ix = ix::claim_from_buffer(&d, &op, 0, &op, &recipient, 6_000, 1);
    assert_program_err(env.send(&[ix], &[&operator]).await, E::InvalidProof);
    let ix = ix::claim_from_buffer(&d, &op, 0, &op, &recipient, 5_000, 1);
    env.send(std::slice::from_ref(&ix), &[&operator])
        .await
        .unwrap();
    assert_eq!(env.token_balance(&recipient).await, 5_000);
    assert_eq!(env.lamports(&d.proof_buffer(&op, 1)).await, 0);
    // Replaying it finds no buffer; a new buffer pays nothing more.
    assert_failed(env.send(&[ix], &[&operator]).await);
    env.fill_buffer(&operator, 2, &payload).await.unwrap();
    let ix = ix::claim_from_buffer(&d, &op, 0, &op, &recipient, 5_000, 2);
    assert_program_err(env.send(&[ix], &[&operator]).await, E::NothingToClaim);
    assert_eq!(env.token_balance(&recipient).await, 5_000);

    // A settlement at depth 24 through a buffer, paid by a third party.
    let buyer = Pubkey::new_unique();
    let c_usage = env.config_state().await;
    let uscope = Scope {
        kind: TreeKind::Usage,
        config: env.config.to_bytes(),
        epoch: 1,
    };
    let consumed = c_usage.last_usage_total;
    let (uc, uproof) = deep_proof(
        &uscope,
        &Leaf {
            account: buyer.to_bytes(),
            amount: consumed,
        },
        24,
    );
    let rewards = env.epoch_state(0).await.proposal;
    let p1 = backhaul::state::EpochProposal {
        allocation: 0,
        usage_root: uc.root,
        usage_leaf_count: uc.leaf_count,
        usage_total: uc.total,
        credits_consumed: 0,
        usage_cost_total: c_usage.last_usage_cost_total,
        usage_cost: 0,
        ..rewards
    };
    env.run_epoch(1, p1).await;
    let payer = owner(&mut env).await;
    let payload = backhaul_sdk::buffer::leaf_proof(uproof.index, &uproof.siblings);
    env.fill_buffer(&payer, 3, &payload).await.unwrap();
    let ix = ix::settle_from_buffer(&d, &payer.pubkey(), 1, &buyer, consumed, 3);
    env.send(&[ix], &[&payer]).await.unwrap();
    let credits: CreditAccount = env.account(&d.credits(&buyer)).await.unwrap();
    assert_eq!(
        (credits.consumed_cumulative, credits.unpaid),
        (consumed, consumed)
    );
    assert_eq!(env.lamports(&d.proof_buffer(&payer.pubkey(), 3)).await, 0);
}
