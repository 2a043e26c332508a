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
                    cell(v0, "through a proof buffer")
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

/// `ixs` as a legacy transaction paid by the fixture's payer and signed by `signers` too: its
/// size, checked against the limit, and the transaction landed.
async fn land(env: &mut Env, ixs: &[Instruction], signers: &[&Keypair]) -> usize {
    let payer = env.payer();
    let mut keys: Vec<&Keypair> = vec![&payer];
    keys.extend_from_slice(signers);
    let blockhash = env.ctx.get_new_latest_blockhash().await.expect("blockhash");
    let tx = Transaction::new_signed_with_payer(ixs, Some(&payer.pubkey()), &keys, blockhash);
    let bytes = bincode::serialize(&tx).expect("serialize").len();
    assert!(bytes <= PACKET_DATA_SIZE, "{bytes} bytes");
    env.ctx
        .banks_client
        .process_transaction(tx)
        .await
        .expect("the transaction lands");
    bytes
}

fn cu_limit(units: u32) -> Instruction {
    solana_compute_budget_interface::ComputeBudgetInstruction::set_compute_unit_limit(units)
}

/// A claim at `depth`, paid by the operator or a third party, sent as the command line sends it:
/// one v0 transaction with the lookup table when it fits, otherwise the proof through a buffer
/// (an open and writes, then `claim_from_buffer`). Returns the way it went and the largest
/// transaction.
async fn land_claim(depth: u8, third_party: bool) -> (String, usize) {
    let mut env = Env::new().await;
    let operator = Keypair::new();
    let other = Keypair::new();
    crate::util::fund(&mut env, &operator.pubkey()).await;
    crate::util::fund(&mut env, &other.pubkey()).await;
    let payer = if third_party { &other } else { &operator };
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
    let (commitment, proof) = deep_proof(&scope, &leaf, depth);
    let p = EpochProposal {
        reward_root: commitment.root,
        reward_leaf_count: commitment.leaf_count,
        reward_total: commitment.total,
        allocation: amount,
        dataset_hash: [1; 32],
        usage_root: backhaul_core::sum_tree::empty_root(TreeKind::Usage),
        ..EpochProposal::default()
    };
    env.run_epoch(0, p).await;
    let table = env.create_lookup_table().await;
    let recipient = env.create_ata(&operator.pubkey()).await;
    let (op, pay) = (operator.pubkey(), payer.pubkey());
    let direct = vec![
        cu_limit(100_000),
        env.claim_ix(&pay, 0, &op, &recipient, amount, proof.clone()),
    ];
    let blockhash = env.ctx.get_new_latest_blockhash().await.expect("blockhash");
    let tx = v0_tx(&direct, &[payer], &table, blockhash);
    let bytes = bincode::serialize(&tx).expect("serialize").len();
    let way = if bytes <= PACKET_DATA_SIZE {
        env.ctx
            .banks_client
            .process_transaction(tx)
            .await
            .expect("the claim lands");
        ("one transaction".to_string(), bytes)
    } else {
        let d = env.deployment();
        let payload = backhaul_sdk::buffer::leaf_proof(proof.index, &proof.siblings);
        let fill = backhaul_sdk::buffer::fill(&d, &pay, 1, &payload);
        let mut largest = 0;
        for ix in &fill {
            let blockhash = env.ctx.get_new_latest_blockhash().await.expect("blockhash");
            let tx = v0_tx(&[cu_limit(30_000), ix.clone()], &[payer], &table, blockhash);
            largest = largest.max(bincode::serialize(&tx).expect("serialize").len());
            env.ctx
                .banks_client
                .process_transaction(tx)
                .await
                .expect("buffer");
        }
        let ix = backhaul_sdk::ix::claim_from_buffer(&d, &pay, 0, &op, &recipient, amount, 1);
        let blockhash = env.ctx.get_new_latest_blockhash().await.expect("blockhash");
        let tx = v0_tx(&[cu_limit(100_000), ix], &[payer], &table, blockhash);
        let claim = bincode::serialize(&tx).expect("serialize").len();
        env.ctx
            .banks_client
            .process_transaction(tx)
            .await
            .expect("the buffered claim lands");
        assert_eq!(
            env.lamports(&d.proof_buffer(&pay, 1)).await,
            0,
            "buffer closed"
        );
        (
            format!(
                "proof buffer: {} transactions, then the claim ({claim})",
                fill.len()
            ),
            largest.max(claim),
        )
    };
    assert_eq!(env.token_balance(&recipient).await, amount);
    way
}

/// Epoch 0 finalized with a depth-20 reward tree holding `victim` at index 0 with 1,000 (and
/// the sponsor's usage): the earlier epoch of the decrease proofs below.
async fn deep_epoch_0(victim: &Pubkey) -> (Env, backhaul::state::ProvenLeaf) {
    let mut env = Env::new().await;
    let scope = Scope {
        kind: TreeKind::Reward,
        config: env.config.to_bytes(),
        epoch: 0,
    };
    let leaf = Leaf {
        account: victim.to_bytes(),
        amount: 1_000,
    };
    let (c, proof) = deep_proof(&scope, &leaf, 20);
    let p = EpochProposal {
        reward_root: c.root,
        reward_leaf_count: c.leaf_count,
        reward_total: c.total,
        allocation: c.total,
        dataset_hash: [1; 32],
        usage_root: backhaul_core::sum_tree::empty_root(TreeKind::Usage),
        ..EpochProposal::default()
    };
    env.run_epoch(0, p).await;
    (env, proven(&leaf, &proof))
}

fn proven(leaf: &Leaf, proof: &Proof) -> backhaul::state::ProvenLeaf {
    backhaul::state::ProvenLeaf {
        account: Pubkey::new_from_array(leaf.account),
        amount: leaf.amount,
        index: proof.index,
        siblings: proof
            .siblings
            .iter()
            .map(backhaul::state::ProofNode::from)
            .collect(),
    }
}

/// Epoch 1 voted by oracles 0 and 1 with the reward tree `c` (its total 1,000, as epoch 0's).
async fn collude(env: &mut Env, c: &backhaul_core::sum_tree::Commitment) {
    let p = EpochProposal {
        reward_root: c.root,
        reward_leaf_count: c.leaf_count,
        reward_total: c.total,
        allocation: 0,
        dataset_hash: [2; 32],
        usage_root: backhaul_core::sum_tree::empty_root(TreeKind::Usage),
        ..EpochProposal::default()
    };
    env.end_epoch(1).await;
    env.vote(0, 1, p).await.expect("vote 0");
    env.vote(1, 1, p).await.expect("vote 1");
}

/// Writes `proof` through a buffer and lands `prove_fraud`, each in its own transaction paid by
/// the fixture's payer and signed by the prover: the payload size, the number of transactions
/// and the largest one.
async fn land_fraud_proof(
    env: &mut Env,
    proof: &backhaul::state::FraudProof,
    earlier: Option<u64>,
    buyer: Option<&Pubkey>,
) -> (usize, usize, usize) {
    let prover = Keypair::new();
    crate::util::fund(env, &prover.pubkey()).await;
    let d = env.deployment();
    let payload = backhaul_sdk::fraud::payload(proof);
    let fill = backhaul_sdk::buffer::fill(&d, &prover.pubkey(), 1, &payload);
    let mut largest = 0;
    for ix in &fill {
        largest = largest.max(land(env, &[cu_limit(30_000), ix.clone()], &[&prover]).await);
    }
    let ix = env
        .prove_fraud_ix(&prover.pubkey(), 1, 1, earlier, buyer)
        .await;
    largest = largest.max(land(env, &[cu_limit(200_000), ix], &[&prover]).await);
    assert_eq!(
        env.epoch_state(1).await.status,
        EpochStatus::Vetoed,
        "the proof refuted the proposal"
    );
    (payload.len(), fill.len() + 1, largest)
}

/// The second table of `docs/merkle.md`, "Limits": claims at depths 10, 20 and 24 paid by the
/// operator or a third party, and each kind of fraud proof at depth 20, every one landed.
#[tokio::test]
async fn claims_and_fraud_proofs_land_whichever_way_they_fit() {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/merkle.md"),
    )
    .expect("docs/merkle.md");
    let mut rows = vec![];
    for depth in [10u8, 20, 24] {
        for (who, third) in [("the operator", false), ("a third party", true)] {
            let (way, largest) = land_claim(depth, third).await;
            rows.push(format!("| claim | {depth} | {who} | {way} | {largest} |"));
        }
    }
    // The fraud proofs, at depth 20. Keys in a known order: LO < VICTIM < HI.
    let lo = Pubkey::new_from_array([0x10; 32]);
    let victim = Pubkey::new_from_array([0x40; 32]);
    let hi = Pubkey::new_from_array([0xf0; 32]);
    let leaf = |k: &Pubkey, amount: u64| Leaf {
        account: k.to_bytes(),
        amount,
    };
    let scope1 = |env: &Env, kind| Scope {
        kind,
        config: env.config.to_bytes(),
        epoch: 1,
    };
    let tree = backhaul::state::Tree::Reward;
    use backhaul::state::{FraudProof, Standing};

    // A leaf lowered: the victim at 100, the other 900 elsewhere.
    let (mut env, earlier) = deep_epoch_0(&victim).await;
    let (c, p) = deep_proof_with_rest(
        &scope1(&env, TreeKind::Reward),
        &leaf(&victim, 100),
        20,
        900,
    );
    collude(&mut env, &c).await;
    let later = Standing::Present(proven(&leaf(&victim, 100), &p));
    let f = FraudProof::Decrease {
        tree,
        earlier,
        later,
    };
    let (bytes, txs, largest) = land_fraud_proof(&mut env, &f, Some(0), None).await;
    rows.push(format!("| fraud proof: a leaf lowered | 20 | anyone | proof buffer: {bytes} bytes, {txs} transactions | {largest} |"));

    // A leaf dropped: two adjacent leaves bracket the victim.
    let (mut env, earlier) = deep_epoch_0(&victim).await;
    let (l, r) = (leaf(&lo, 300), leaf(&hi, 700));
    let (c, pl, pr) = deep_pair(&scope1(&env, TreeKind::Reward), &l, &r, 20);
    collude(&mut env, &c).await;
    let later = Standing::Between(proven(&l, &pl), proven(&r, &pr));
    let f = FraudProof::Decrease {
        tree,
        earlier,
        later,
    };
    let (bytes, txs, largest) = land_fraud_proof(&mut env, &f, Some(0), None).await;
    rows.push(format!("| fraud proof: a leaf dropped (between two leaves) | 20 | anyone | proof buffer: {bytes} bytes, {txs} transactions | {largest} |"));

    // Two adjacent leaves out of order.
    let (mut env, _) = deep_epoch_0(&victim).await;
    let (l, r) = (leaf(&hi, 700), leaf(&lo, 300));
    let (c, pl, pr) = deep_pair(&scope1(&env, TreeKind::Reward), &l, &r, 20);
    collude(&mut env, &c).await;
    let f = FraudProof::Disorder {
        tree,
        left: proven(&l, &pl),
        right: proven(&r, &pr),
    };
    let (bytes, txs, largest) = land_fraud_proof(&mut env, &f, None, None).await;
    rows.push(format!("| fraud proof: leaves out of order | 20 | anyone | proof buffer: {bytes} bytes, {txs} transactions | {largest} |"));

    // Usage beyond the credits bought: a buyer with no credit account.
    let (mut env, _) = deep_epoch_0(&victim).await;
    let config = env.config_state().await;
    let ghost = leaf(&hi, config.last_usage_total + 5);
    let (c, p) = deep_proof(&scope1(&env, TreeKind::Usage), &ghost, 20);
    let proposal = EpochProposal {
        usage_root: c.root,
        usage_leaf_count: c.leaf_count,
        usage_total: c.total,
        credits_consumed: c.total - config.last_usage_total,
        usage_cost_total: config.last_usage_cost_total,
        usage_cost: 0,
        allocation: 0,
        ..env.epoch_state(0).await.proposal
    };
    env.end_epoch(1).await;
    env.vote(0, 1, proposal).await.expect("vote 0");
    env.vote(1, 1, proposal).await.expect("vote 1");
    let f = FraudProof::Overspend {
        leaf: proven(&ghost, &p),
    };
    let (bytes, txs, largest) = land_fraud_proof(&mut env, &f, None, Some(&hi)).await;
    rows.push(format!("| fraud proof: usage beyond the credits bought | 20 | anyone | proof buffer: {bytes} bytes, {txs} transactions | {largest} |"));

    println!("| transaction | depth | paid by | how it is sent | largest transaction (bytes) |");
    println!("|---|---|---|---|---|");
    let mut missing = vec![];
    for row in &rows {
        println!("{row}");
        if !doc.lines().any(|l| l == row) {
            missing.push(row.clone());
        }
    }
    assert!(
        missing.is_empty(),
        "docs/merkle.md (\"Limits\") lacks these measured rows:\n{}",
        missing.join("\n")
    );
}
