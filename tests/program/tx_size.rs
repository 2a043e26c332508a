//! The claim transaction an operator sends must fit Solana's 1232-byte packet.

use backhaul::state::EpochProposal;
use backhaul_core::merkle::{compute_root, leaf_hash, TreeKind};
use backhaul_tests::*;
use solana_sdk::hash::Hash;
use solana_sdk::instruction::Instruction;
use solana_sdk::signature::{Keypair, Signer};
use solana_sdk::transaction::Transaction;

/// Solana's maximum serialized transaction size.
const PACKET_DATA_SIZE: usize = 1232;

fn claim_tx(
    env: &Env,
    operator: &Keypair,
    payer: &Keypair,
    depth: usize,
    blockhash: Hash,
) -> Transaction {
    let recipient = ata(&operator.pubkey(), &env.mint);
    let ixs: Vec<Instruction> = vec![
        solana_compute_budget_interface::ComputeBudgetInstruction::set_compute_unit_limit(100_000),
        spl_associated_token_account_interface::instruction::create_associated_token_account_idempotent(
            &payer.pubkey(),
            &operator.pubkey(),
            &env.mint,
            &spl_token_interface::ID,
        ),
        env.claim_ix(&payer.pubkey(), 0, &operator.pubkey(), &recipient, u64::MAX, vec![[7; 32]; depth]),
    ];
    Transaction::new_signed_with_payer(&ixs, Some(&payer.pubkey()), &[payer], blockhash)
}

fn size(tx: &Transaction) -> usize {
    bincode::serialize(tx).expect("serialize").len()
}

#[tokio::test]
async fn a_depth_20_claim_with_compute_budget_and_ata_creation_fits_and_lands() {
    let mut env = Env::new().await;
    let operator = Keypair::new();
    crate::util::fund(&mut env, &operator.pubkey()).await;
    // A root for which a real depth-20 proof exists: 2^20 leaves' worth of siblings.
    let amount = 123_456;
    let leaf = leaf_hash(
        TreeKind::Reward,
        &env.config.to_bytes(),
        0,
        &operator.pubkey().to_bytes(),
        amount,
    );
    let proof: Vec<[u8; 32]> = (0..20u8)
        .map(|i| backhaul_core::merkle::sha256v(&[&[i]]))
        .collect();
    let root = compute_root(leaf, &proof);
    let p = EpochProposal {
        reward_root: root,
        reward_leaf_count: 1 << 20,
        reward_total: amount,
        allocation: amount,
        dataset_hash: [1; 32],
        usage_root: backhaul_core::merkle::empty_root(TreeKind::Usage, &env.config.to_bytes(), 0),
        usage_leaf_count: 0,
        usage_total: 0,
        credits_consumed: 0,
        usage_cost_total: 0,
        usage_cost: 0,
    };
    // The sponsor pays for the allocation (its usage tree replaces the empty one).
    env.run_epoch(0, p).await;

    let recipient = ata(&operator.pubkey(), &env.mint);
    let ixs = vec![
        solana_compute_budget_interface::ComputeBudgetInstruction::set_compute_unit_limit(100_000),
        spl_associated_token_account_interface::instruction::create_associated_token_account_idempotent(
            &operator.pubkey(),
            &operator.pubkey(),
            &env.mint,
            &spl_token_interface::ID,
        ),
        env.claim_ix(&operator.pubkey(), 0, &operator.pubkey(), &recipient, amount, proof),
    ];
    let tx = Transaction::new_signed_with_payer(
        &ixs,
        Some(&operator.pubkey()),
        &[&operator],
        env.ctx.last_blockhash,
    );
    let bytes = size(&tx);
    println!("claim transaction with a depth-20 proof: {bytes} bytes (limit {PACKET_DATA_SIZE})");
    assert!(bytes <= PACKET_DATA_SIZE, "{bytes} bytes");
    env.ctx
        .banks_client
        .process_transaction(tx)
        .await
        .expect("the claim lands");
    assert_eq!(env.token_balance(&recipient).await, amount);
}

#[tokio::test]
async fn the_deepest_proof_that_fits() {
    let env = Env::new().await;
    let operator = Keypair::new();
    let third_party = Keypair::new();
    let fits = |payer: &Keypair| {
        (0..=32)
            .take_while(|d| {
                size(&claim_tx(&env, &operator, payer, *d, Hash::default())) <= PACKET_DATA_SIZE
            })
            .last()
            .expect("depth 0 fits")
    };
    let own = fits(&operator);
    let other = fits(&third_party);
    println!("deepest proof in one legacy transaction with compute budget and ATA creation: {own} (operator pays), {other} (a third party pays)");
    assert!(
        own >= 20,
        "an operator's own claim must fit depth 20, got {own}"
    );
    assert!(other >= 19, "a third party's claim fits depth {other}");
}
