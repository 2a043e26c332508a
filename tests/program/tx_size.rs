//! The claim and settlement transactions must fit Solana's 1232-byte packet. A Merkle-sum proof
//! is 40 bytes a level plus its index, so deep claims go in v0 transactions that load the
//! deployment's fixed accounts from its address lookup table
//! (`backhaul_sdk::Deployment::lookup_table_addresses`). The table these tests print is the one in
//! `docs/merkle.md`, "Limits".

use backhaul::state::EpochProposal;
use backhaul_core::merkle::TreeKind;
use backhaul_core::sum_tree::{Leaf, Scope};
use backhaul_tests::*;
use solana_sdk::hash::Hash;
use solana_sdk::instruction::Instruction;
use solana_sdk::message::{v0, AddressLookupTableAccount, VersionedMessage};
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};
use solana_sdk::transaction::{Transaction, VersionedTransaction};

/// Solana's maximum serialized transaction size.
const PACKET_DATA_SIZE: usize = 1232;

/// A claim as the command line sends it: a compute-unit limit, the operator's token account
/// created idempotently, and the claim with a proof of `depth` levels.
fn claim_ixs(env: &Env, operator: &Pubkey, payer: &Pubkey, depth: u8) -> Vec<Instruction> {
    let recipient = ata(operator, &env.mint);
    let scope = Scope {
        kind: TreeKind::Reward,
        config: env.config.to_bytes(),
        epoch: 0,
    };
    let leaf = Leaf {
        account: operator.to_bytes(),
        amount: u64::MAX,
    };
    let (_, proof) = deep_proof(&scope, &leaf, depth);
    vec![
        solana_compute_budget_interface::ComputeBudgetInstruction::set_compute_unit_limit(100_000),
        spl_associated_token_account_interface::instruction::create_associated_token_account_idempotent(
            payer,
            operator,
            &env.mint,
            &spl_token_interface::ID,
        ),
        env.claim_ix(payer, 0, operator, &recipient, u64::MAX, proof),
    ]
}

/// A settlement, paid by `payer`, with a proof of `depth` levels.
fn settle_ixs(env: &Env, buyer: &Pubkey, payer: &Pubkey, depth: u8) -> Vec<Instruction> {
    let scope = Scope {
        kind: TreeKind::Usage,
        config: env.config.to_bytes(),
        epoch: 0,
    };
    let leaf = Leaf {
        account: buyer.to_bytes(),
        amount: u64::MAX,
    };
    let (_, proof) = deep_proof(&scope, &leaf, depth);
    vec![
        solana_compute_budget_interface::ComputeBudgetInstruction::set_compute_unit_limit(100_000),
        env.settle_ix(payer, 0, buyer, u64::MAX, proof),
    ]
}

fn lookup_table(env: &Env) -> AddressLookupTableAccount {
    AddressLookupTableAccount {
        key: Pubkey::new_from_array([0xa1; 32]),
        addresses: env.deployment().lookup_table_addresses(),
    }
}

fn legacy_size(ixs: &[Instruction], signers: &[&Keypair]) -> usize {
    let tx =
        Transaction::new_signed_with_payer(ixs, Some(&signers[0].pubkey()), signers, Hash::default());
    bincode::serialize(&tx).expect("serialize").len()
}

fn v0_tx(
    ixs: &[Instruction],
    signers: &[&Keypair],
    table: &AddressLookupTableAccount,
    blockhash: Hash,
) -> VersionedTransaction {
    let message = v0::Message::try_compile(
        &signers[0].pubkey(),
        ixs,
        std::slice::from_ref(table),
        blockhash,
    )
    .expect("compile");
    VersionedTransaction::try_new(VersionedMessage::V0(message), signers).expect("sign")
}

fn v0_size(ixs: &[Instruction], signers: &[&Keypair], table: &AddressLookupTableAccount) -> usize {
    bincode::serialize(&v0_tx(ixs, signers, table, Hash::default()))
        .expect("serialize")
        .len()
}

fn cell(bytes: usize) -> String {
    if bytes <= PACKET_DATA_SIZE {
        format!("{bytes}")
    } else {
        format!("{bytes}: needs a proof buffer (not yet)")
    }
}

#[tokio::test]
async fn claim_and_settlement_sizes_by_depth() {
    let env = Env::new().await;
    let operator = Keypair::new();
    let third_party = Keypair::new();
    let table = lookup_table(&env);
    println!("| transaction | depth | payer | legacy | v0 with the lookup table |");
    println!("|---|---|---|---|---|");
    let mut v0_fits = vec![];
    for depth in [10u8, 20, 24] {
        for (who, signers) in [
            ("the operator", vec![&operator]),
            ("a third party", vec![&third_party]),
        ] {
            let ixs = claim_ixs(&env, &operator.pubkey(), &signers[0].pubkey(), depth);
            let (legacy, v0) = (legacy_size(&ixs, &signers), v0_size(&ixs, &signers, &table));
            println!("| claim | {depth} | {who} | {} | {} |", cell(legacy), cell(v0));
            v0_fits.push(("claim", depth, who, v0));
            let ixs = settle_ixs(&env, &operator.pubkey(), &signers[0].pubkey(), depth);
            let (legacy, v0) = (legacy_size(&ixs, &signers), v0_size(&ixs, &signers, &table));
            println!("| settle_usage | {depth} | {who} | {} | {} |", cell(legacy), cell(v0));
            v0_fits.push(("settle_usage", depth, who, v0));
        }
    }
    for (what, depth, who, bytes) in v0_fits {
        if depth <= 20 {
            assert!(
                bytes <= PACKET_DATA_SIZE,
                "{what} at depth {depth} paid by {who}: {bytes} bytes"
            );
        }
    }
}

#[tokio::test]
async fn a_depth_20_claim_in_a_v0_transaction_with_the_lookup_table_lands() {
    let mut env = Env::new().await;
    let operator = Keypair::new();
    crate::util::fund(&mut env, &operator.pubkey()).await;
    let amount = 123_456;
    let scope = Scope {
        kind: TreeKind::Reward,
        config: env.config.to_bytes(),
        epoch: 0,
    };
    let leaf = Leaf {
        account: operator.pubkey().to_bytes(),
        amount,
    };
    let (commitment, proof) = deep_proof(&scope, &leaf, 20);
    let p = EpochProposal {
        reward_root: commitment.root,
        reward_leaf_count: commitment.leaf_count,
        reward_total: commitment.total,
        allocation: amount,
        dataset_hash: [1; 32],
        usage_root: backhaul_core::sum_tree::empty_root(TreeKind::Usage),
        usage_leaf_count: 0,
        usage_total: 0,
        credits_consumed: 0,
        usage_cost_total: 0,
        usage_cost: 0,
    };
    // The sponsor pays for the allocation (its usage tree replaces the empty one).
    env.run_epoch(0, p).await;
    let table = env.create_lookup_table().await;

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
    let blockhash = env.ctx.get_new_latest_blockhash().await.expect("blockhash");
    let tx = v0_tx(&ixs, &[&operator], &table, blockhash);
    let bytes = bincode::serialize(&tx).expect("serialize").len();
    println!("v0 claim transaction with a depth-20 proof: {bytes} bytes (limit {PACKET_DATA_SIZE})");
    assert!(bytes <= PACKET_DATA_SIZE, "{bytes} bytes");
    env.ctx
        .banks_client
        .process_transaction(tx)
        .await
        .expect("the claim lands");
    assert_eq!(env.token_balance(&recipient).await, amount);
}
