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

/// A claim with a compute-unit limit and a proof of `depth` levels; with `create_account`, the
/// operator's token account is also created (idempotently) in the same transaction.
fn claim_ixs(
    env: &Env,
    operator: &Pubkey,
    payer: &Pubkey,
    depth: u8,
    create_account: bool,
) -> Vec<Instruction> {
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
    let mut ixs = vec![
        solana_compute_budget_interface::ComputeBudgetInstruction::set_compute_unit_limit(100_000),
    ];
    if create_account {
        ixs.push(
            spl_associated_token_account_interface::instruction::create_associated_token_account_idempotent(
                payer,
                operator,
                &env.mint,
                &spl_token_interface::ID,
            ),
        );
    }
    ixs.push(env.claim_ix(payer, 0, operator, &recipient, u64::MAX, proof));
    ixs
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
    let tx = Transaction::new_signed_with_payer(
        ixs,
        Some(&signers[0].pubkey()),
        signers,
        Hash::default(),
    );
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

fn cell(bytes: usize, beyond: &str) -> String {
    if bytes <= PACKET_DATA_SIZE {
        format!("{bytes}")
    } else {
        format!("{bytes}: {beyond}")
    }
}

/// The table in `docs/merkle.md`, "Limits" (which must carry every row measured here): every claim and settlement at depth 20 fits a v0
/// transaction with the lookup table, whoever pays, when the operator's token account exists
/// (the command line creates it in a transaction of its own when it does not).
#[tokio::test]
async fn claim_and_settlement_sizes_by_depth() {
    let env = Env::new().await;
    let operator = Keypair::new();
    let third_party = Keypair::new();
    let table = lookup_table(&env);
    println!("| transaction | depth | paid by | legacy | v0 with the lookup table |");
    println!("|---|---|---|---|---|");
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/merkle.md"),
    )
    .expect("docs/merkle.md");
    let mut sizes = vec![];
    let mut missing = vec![];
    for (what, kind) in [
        ("claim, creating the token account", 0),
        ("claim", 1),
        ("settle_usage", 2),
    ] {
        for depth in [10u8, 20, 24] {
            for (who, payer) in [("the operator", &operator), ("a third party", &third_party)] {
                let (op, pay) = (operator.pubkey(), payer.pubkey());
                let ixs = match kind {
                    0 => claim_ixs(&env, &op, &pay, depth, true),
                    1 => claim_ixs(&env, &op, &pay, depth, false),
                    _ => settle_ixs(&env, &op, &pay, depth),
                };
                let legacy = legacy_size(&ixs, &[payer]);
                let v0 = v0_size(&ixs, &[payer], &table);
                let row = format!(
                    "| {what} | {depth} | {who} | {} | {} |",
                    cell(legacy, "does not fit"),
                    cell(v0, "needs a proof buffer (not yet)")
                );
                println!("{row}");
                if !doc.lines().any(|l| l == row) {
                    missing.push(row);
                }
                sizes.push((kind, what, depth, who, v0));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "docs/merkle.md (\"Limits\") lacks these measured rows:\n{}",
        missing.join("\n")
    );
    for (kind, what, depth, who, bytes) in sizes {
        if kind > 0 && depth <= 20 {
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

    // The token account is created first, in a transaction of its own.
    let recipient = env.create_ata(&operator.pubkey()).await;
    let ixs = vec![
        solana_compute_budget_interface::ComputeBudgetInstruction::set_compute_unit_limit(100_000),
        env.claim_ix(
            &operator.pubkey(),
            0,
            &operator.pubkey(),
            &recipient,
            amount,
            proof,
        ),
    ];
    let blockhash = env.ctx.get_new_latest_blockhash().await.expect("blockhash");
    let tx = v0_tx(&ixs, &[&operator], &table, blockhash);
    let bytes = bincode::serialize(&tx).expect("serialize").len();
    println!(
        "v0 claim transaction with a depth-20 proof: {bytes} bytes (limit {PACKET_DATA_SIZE})"
    );
    assert!(bytes <= PACKET_DATA_SIZE, "{bytes} bytes");
    env.ctx
        .banks_client
        .process_transaction(tx)
        .await
        .expect("the claim lands");
    assert_eq!(env.token_balance(&recipient).await, amount);
}
