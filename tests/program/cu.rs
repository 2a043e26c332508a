//! The program as SBF bytecode: the ELF verifies as the loader verifies it, and no instruction
//! costs more compute units than its budget in `docs/compute-units.md`.
//!
//! Every key is fixed (`Env::new_seeded`), so every PDA's bump, and so every figure, is the same
//! from run to run. `BACKHAUL_WRITE_CU_TABLE=1` rewrites the table's measured columns (the budgets
//! stay as committed).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use backhaul::state::EpochProposal;
use backhaul_core::merkle::TreeKind;
use backhaul_core::sum_tree::{Leaf, Scope};
use backhaul_localnet::ProgramBuild;
use backhaul_tests::*;
use solana_sdk::signature::{Keypair, Signer};

const TABLE_BEGIN: &str = "<!-- cu-table:begin -->";
const TABLE_END: &str = "<!-- cu-table:end -->";

fn doc_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/compute-units.md")
}

fn bytecode() -> PathBuf {
    match program_build() {
        ProgramBuild::Bytecode(p) => p,
        ProgramBuild::Host => panic!(
            "compute units are only counted when the program runs as SBF bytecode; unset \
             BACKHAUL_PROGRAM=host and build it with scripts/build-sbf.sh"
        ),
    }
}

/// The ELF loads and passes the verifier with every feature on and broken ELFs rejected, as a
/// cluster's loader checks a deployment.
#[test]
fn the_bytecode_loads_and_verifies_as_the_loader_does() {
    use solana_program_runtime::invoke_context::InvokeContext;
    use solana_program_runtime::solana_sbpf::elf::Executable;
    use solana_program_runtime::solana_sbpf::verifier::RequisiteVerifier;

    let path = bytecode();
    let elf = std::fs::read(&path).expect("read the bytecode");
    let features = agave_feature_set::FeatureSet::all_enabled().runtime_features();
    let budget =
        solana_program_runtime::execution_budget::SVMTransactionExecutionBudget::new_with_defaults(
            true,
        );
    let loader =
        agave_syscalls::create_program_runtime_environment_v1(&features, &budget, true, false)
            .expect("runtime environment");
    let executable = Executable::<InvokeContext>::load(&elf, Arc::new(loader))
        .unwrap_or_else(|e| panic!("{} does not load: {e}", path.display()));
    executable
        .verify::<RequisiteVerifier>()
        .unwrap_or_else(|e| panic!("{} fails verification: {e}", path.display()));
    assert!(!executable.get_text_bytes().1.is_empty());
    // A damaged file fails the same check, so the check checks something.
    let mut broken = elf.clone();
    let loader2 =
        agave_syscalls::create_program_runtime_environment_v1(&features, &budget, true, false)
            .expect("runtime environment");
    broken.truncate(broken.len() / 2);
    assert!(
        Executable::<InvokeContext>::load(&broken, Arc::new(loader2)).is_err(),
        "a truncated ELF must not load"
    );
}

/// Units of each success path, by instruction.
#[derive(Default)]
struct Samples(BTreeMap<&'static str, Vec<(&'static str, u64)>>);

impl Samples {
    fn add(&mut self, ix: &'static str, case: &'static str, units: u64) {
        self.0.entry(ix).or_default().push((case, units));
    }
}

fn median(v: &[u64]) -> u64 {
    let mut s = v.to_vec();
    s.sort_unstable();
    s[(s.len() - 1) / 2]
}

/// Every instruction's success paths, on one deployment with fixed keys.
async fn measure() -> Samples {
    bytecode();
    let mut s = Samples::default();
    let mut keys = seeded_keys(7_000);

    // initialize
    let mut env = Env::new_uninitialized_seeded(7).await;
    let params = env.default_params();
    let auth = env.upgrade_authority.insecure_clone();
    let ix = env.initialize_ix(&auth.pubkey(), params);
    s.add(
        "initialize",
        "first",
        env.send_metered(&[ix], &[&auth]).await.expect("initialize"),
    );

    // submit_price: the first oracle's submission, then the one that posts the quorum's first
    // price; 45 minutes later a submission bounded by its own previous one that moves the posted
    // price within its band (both bands computed).
    let start = env.now().await;
    for (i, at, price, case) in [
        (0, start, 1_000_000, "first submission"),
        (1, start, 1_000_000, "posts the price"),
        (0, start + 2_700, 1_100_000, "moves the posted price"),
    ] {
        env.set_time(at).await;
        let o = env.oracles[i].insecure_clone();
        let ix = env.submit_price_ix(&o.pubkey(), price);
        s.add(
            "submit_price",
            case,
            env.send_metered(&[ix], &[&o]).await.expect("price"),
        );
    }
    assert_eq!(env.price_feed().await.credits_per_token, 1_050_000);

    // buy_credits: a new credit account and ledger, then a repeat purchase.
    let buyer = keys();
    let tokens = env.give_tokens(&buyer.pubkey(), 1_000_000_000).await;
    crate::util::fund(&mut env, &buyer.pubkey()).await;
    for case in ["creates the credit account", "repeat purchase"] {
        let ix = env
            .buy_credits_ix(&buyer.pubkey(), &tokens, 10_000_000, 1, buyer.pubkey())
            .await;
        s.add(
            "buy_credits",
            case,
            env.send_metered(&[ix], &[&buyer]).await.expect("buy"),
        );
    }

    // seal, two votes, finalize: epoch 0 with a depth-20 reward tree and a one-leaf usage tree.
    let operator = keys();
    crate::util::fund(&mut env, &operator.pubkey()).await;
    let amount = 123_456;
    let (root, proof10) = deep_root(&env, &operator, amount, 10, 0);
    let usage = env.usage_tree(0, &[(buyer.pubkey(), 1_000)]);
    let p = EpochProposal {
        reward_root: root,
        reward_leaf_count: 1 << 10,
        reward_total: amount,
        allocation: amount,
        dataset_hash: [1; 32],
        usage_root: usage.root,
        usage_leaf_count: 1,
        usage_total: usage.total,
        credits_consumed: usage.total,
        // The buyer paid 10 tokens for its credits; these cost less.
        usage_cost_total: amount,
        usage_cost: amount,
    };
    env.end_epoch(0).await;
    let payer = env.payer().pubkey();
    let ix = env.seal_ix(&payer, 0);
    s.add(
        "seal_epoch",
        "ended epoch",
        env.send_metered(&[ix], &[]).await.expect("seal"),
    );
    for (i, case) in [(0, "first vote"), (1, "reaches quorum")] {
        let o = env.oracles[i].insecure_clone();
        let ix = env.propose_ix(&o.pubkey(), 0, p);
        s.add(
            "propose_root",
            case,
            env.send_metered(&[ix], &[&o]).await.expect("vote"),
        );
    }
    let at = env.epoch_state(0).await.finalizable_at;
    env.set_time(at).await;
    let ix = env.finalize_ix(0);
    s.add(
        "finalize",
        "mints the allocation",
        env.send_metered(&[ix], &[]).await.expect("finalize"),
    );

    // claim at depth 10 (creates the claim account), then settle the usage leaf.
    let recipient = env.create_ata(&operator.pubkey()).await;
    let ix = env.claim_ix(&payer, 0, &operator.pubkey(), &recipient, amount, proof10);
    s.add(
        "claim",
        "depth 10, first claim",
        env.send_metered(&[ix], &[]).await.expect("claim"),
    );
    let (entry, uproof) = usage.leaf_proof(&buyer.pubkey().to_bytes()).expect("leaf");
    let ix = env.settle_ix(&payer, 0, &buyer.pubkey(), entry.cumulative, uproof);
    s.add(
        "settle_usage",
        "one-leaf tree",
        env.send_metered(&[ix], &[]).await.expect("settle"),
    );

    // epoch 1: a depth-20 claim by an operator that has claimed before.
    let (root1, proof20) = deep_root(&env, &operator, amount * 2, 20, 1);
    let usage1 = env.usage_tree(1, &[(buyer.pubkey(), 2_000)]);
    let p1 = EpochProposal {
        reward_root: root1,
        reward_leaf_count: 1 << 20,
        reward_total: amount * 2,
        allocation: amount,
        dataset_hash: [2; 32],
        usage_root: usage1.root,
        usage_leaf_count: 1,
        usage_total: usage1.total,
        credits_consumed: 1_000,
        usage_cost_total: amount * 2,
        usage_cost: amount,
    };
    env.run_epoch(1, p1).await;
    let earlier20 = proof20.clone();
    let ix = env.claim_ix(
        &payer,
        1,
        &operator.pubkey(),
        &recipient,
        amount * 2,
        proof20,
    );
    s.add(
        "claim",
        "depth 20, repeat claim",
        env.send_metered(&[ix], &[]).await.expect("claim 1"),
    );

    // veto: epoch 2 at quorum, inside its challenge period.
    let tree2 = env.reward_tree(2, &[(operator.pubkey(), amount * 3)]);
    let usage2 = env.usage_tree(2, &[(buyer.pubkey(), 3_000)]);
    let mut p2 = env.proposal_with_usage(&tree2, amount * 2, &usage2, usage1.total);
    p2.usage_cost_total = amount * 3;
    p2.usage_cost = amount;
    // Leaf counts never shrink; the veto does not look at the tree.
    p2.reward_leaf_count = 1 << 20;
    env.end_epoch(2).await;
    env.vote(0, 2, p2).await.expect("vote 0");
    env.vote(1, 2, p2).await.expect("vote 1");
    let g = env.guardian.insecure_clone();
    let ix = env.veto_ix(&g.pubkey(), 2);
    s.add(
        "veto",
        "at quorum",
        env.send_metered(&[ix], &[&g]).await.expect("veto"),
    );

    // prove_fraud: epoch 2 voted again with a depth-20 tree that drops the operator (a thief's
    // leaf first), refuted by the operator's depth-20 leaf of epoch 1, from a proof buffer.
    let thief = loop {
        let k = keys();
        if k.pubkey() > operator.pubkey() {
            break k;
        }
    };
    let (bad_root, thief_proof) = deep_root(&env, &thief, amount * 3, 20, 2);
    let bad = EpochProposal {
        reward_root: bad_root,
        dataset_hash: [3; 32],
        ..p2
    };
    env.vote(0, 2, bad).await.expect("vote 0");
    env.vote(1, 2, bad).await.expect("vote 1");
    let leaf = |account: &Keypair, amount: u64, proof: Proof| backhaul::state::ProvenLeaf {
        account: account.pubkey(),
        amount,
        index: proof.index,
        siblings: proof
            .siblings
            .iter()
            .map(backhaul::state::ProofNode::from)
            .collect(),
    };
    let fraud = backhaul::state::FraudProof::Decrease {
        tree: backhaul::state::Tree::Reward,
        earlier: leaf(&operator, amount * 2, earlier20),
        later: backhaul::state::Standing::BeforeFirst(leaf(&thief, amount * 3, thief_proof)),
    };
    let bytes = backhaul_sdk::fraud::payload(&fraud);
    let prover = keys();
    crate::util::fund(&mut env, &prover.pubkey()).await;
    let d = env.deployment();
    let fill = backhaul_sdk::buffer::fill(&d, &prover.pubkey(), 1, &bytes);
    let (open, writes) = fill.split_first().expect("open");
    s.add(
        "open_proof_buffer",
        "a depth-20 decrease proof",
        env.send_metered(std::slice::from_ref(open), &[&prover])
            .await
            .expect("open"),
    );
    for (i, w) in writes.iter().enumerate() {
        let units = env
            .send_metered(std::slice::from_ref(w), &[&prover])
            .await
            .expect("write");
        if i == 0 {
            s.add("write_proof_buffer", "800 bytes", units);
        }
    }
    let ix = env
        .prove_fraud_ix(&prover.pubkey(), 2, 1, Some(1), None)
        .await;
    s.add(
        "prove_fraud",
        "decrease, two depth-20 proofs",
        env.send_metered(&[ix], &[&prover]).await.expect("prove"),
    );
    assert_eq!(env.epoch_state(2).await.status, EpochStatus::Vetoed);
    let ix = backhaul_sdk::ix::open_proof_buffer(&d, &prover.pubkey(), 2, 100);
    env.send(&[ix], &[&prover]).await.expect("open");
    let ix = backhaul_sdk::ix::close_proof_buffer(&d, &prover.pubkey(), 2);
    s.add(
        "close_proof_buffer",
        "unused",
        env.send_metered(&[ix], &[&prover]).await.expect("close"),
    );

    // Bonds: a first deposit creates the account, a second tops it up; unbond, then withdraw.
    let o = env.oracles[2].insecure_clone();
    for case in ["creates the bond", "tops it up"] {
        let ix = backhaul_sdk::ix::deposit_bond(&d, &o.pubkey(), 1_000_000_000);
        s.add(
            "deposit_bond",
            case,
            env.send_metered(&[ix], &[&o]).await.expect("deposit"),
        );
    }
    let ix = backhaul_sdk::ix::unbond(&d, &o.pubkey());
    s.add(
        "unbond",
        "bonded",
        env.send_metered(&[ix], &[&o]).await.expect("unbond"),
    );
    let unlock = env.now().await + 2 * CHALLENGE_SECS as i64;
    env.set_time(unlock).await;
    let ix = backhaul_sdk::ix::withdraw_bond(&d, &o.pubkey());
    s.add(
        "withdraw_bond",
        "after the lock",
        env.send_metered(&[ix], &[&o]).await.expect("withdraw"),
    );

    // The administrative instructions.
    let admin = env.admin.insecure_clone();
    let params = GovernanceChange::Params(ParamsChange {
        challenge_period_secs: Some(CHALLENGE_SECS - 60),
        emission: Some(backhaul::state::EmissionParams {
            floor_per_epoch: default_emission().floor_per_epoch / 2,
            ..default_emission()
        }),
        ..ParamsChange::default()
    });
    let id = env.next_change_id().await;
    let ix = env.queue_change_ix(&admin.pubkey(), id, params);
    s.add(
        "queue_change",
        "parameters",
        env.send_metered(&[ix], &[&admin]).await.expect("queue"),
    );
    let g = env.guardian.insecure_clone();
    let ix = env.cancel_change_ix(&g.pubkey(), id);
    s.add(
        "cancel_change",
        "by a guardian",
        env.send_metered(&[ix], &[&g]).await.expect("cancel"),
    );
    let mut oracles: Vec<_> = env.oracles.iter().map(|k| k.pubkey()).collect();
    oracles.truncate(2);
    let changes = [
        (
            "parameters, from the next epoch",
            GovernanceChange::Params(ParamsChange {
                emission: Some(backhaul::state::EmissionParams {
                    floor_per_epoch: default_emission().floor_per_epoch / 2,
                    ..default_emission()
                }),
                ..ParamsChange::default()
            }),
        ),
        (
            "oracles, two of three kept",
            GovernanceChange::Oracles {
                oracles,
                threshold: 2,
            },
        ),
        (
            "guardians, one replaced",
            GovernanceChange::Guardians {
                guardians: vec![keys().pubkey()],
            },
        ),
    ];
    for (case, change) in changes {
        let id = env.queue(change).await.expect("queue");
        env.wait_for_change(id).await;
        let ix = env.apply_change_ix(id);
        s.add(
            "apply_change",
            case,
            env.send_metered(&[ix], &[]).await.expect("apply"),
        );
    }
    for (paused, case) in [(true, "pause"), (false, "unpause")] {
        let ix = env.set_paused_ix(&admin.pubkey(), paused);
        s.add(
            "set_paused",
            case,
            env.send_metered(&[ix], &[&admin]).await.expect("pause"),
        );
    }
    let new_admin = keys();
    crate::util::fund(&mut env, &new_admin.pubkey()).await;
    let ix = env.propose_admin_ix(&admin.pubkey(), new_admin.pubkey());
    s.add(
        "propose_admin",
        "new admin",
        env.send_metered(&[ix], &[&admin]).await.expect("propose"),
    );
    let ix = env.accept_admin_ix(&new_admin.pubkey());
    s.add(
        "accept_admin",
        "accepts",
        env.send_metered(&[ix], &[&new_admin])
            .await
            .expect("accept"),
    );

    // buy_credits in a ninth purchase epoch of the buyer (it bought in epoch 0 and then in seven
    // more): it drops the oldest checkpoint and creates the epoch's ledger.
    for ninth in [false, false, false, false, false, false, false, true] {
        let epoch = env.current_epoch().await;
        env.end_epoch(epoch).await;
        env.post_price(1_050_000).await;
        let ix = env
            .buy_credits_ix(&buyer.pubkey(), &tokens, 10_000_000, 1, buyer.pubkey())
            .await;
        let units = env.send_metered(&[ix], &[&buyer]).await.expect("buy");
        if ninth {
            s.add("buy_credits", "a ninth purchase epoch", units);
        }
    }
    // claim_from_buffer and settle_from_buffer: depth-24 proofs, on a deployment of their own.
    let mut env2 = Env::new_seeded(8).await;
    let operator = keys();
    crate::util::fund(&mut env2, &operator.pubkey()).await;
    let (root24, proof24) = deep_root(&env2, &operator, amount, 24, 0);
    let p24 = EpochProposal {
        reward_root: root24,
        reward_leaf_count: 1 << 24,
        reward_total: amount,
        allocation: amount,
        dataset_hash: [4; 32],
        usage_root: backhaul_core::sum_tree::empty_root(TreeKind::Usage),
        ..EpochProposal::default()
    };
    env2.run_epoch(0, p24).await;
    let recipient = env2.create_ata(&operator.pubkey()).await;
    let d2 = env2.deployment();
    let payload = backhaul_sdk::buffer::leaf_proof(proof24.index, &proof24.siblings);
    env2.fill_buffer(&operator, 1, &payload)
        .await
        .expect("fill");
    let ix = backhaul_sdk::ix::claim_from_buffer(
        &d2,
        &operator.pubkey(),
        0,
        &operator.pubkey(),
        &recipient,
        amount,
        1,
    );
    s.add(
        "claim_from_buffer",
        "depth 24, first claim",
        env2.send_metered(&[ix], &[&operator]).await.expect("claim"),
    );
    let consumed = env2.config_state().await.last_usage_total;
    let uscope = Scope {
        kind: TreeKind::Usage,
        config: env2.config.to_bytes(),
        epoch: 0,
    };
    let (_, uproof) = deep_proof(
        &uscope,
        &Leaf {
            account: env2.sponsor.pubkey().to_bytes(),
            amount: consumed,
        },
        0,
    );
    let payload = backhaul_sdk::buffer::leaf_proof(uproof.index, &uproof.siblings);
    env2.fill_buffer(&operator, 2, &payload)
        .await
        .expect("fill");
    let sponsor = env2.sponsor.pubkey();
    let ix =
        backhaul_sdk::ix::settle_from_buffer(&d2, &operator.pubkey(), 0, &sponsor, consumed, 2);
    s.add(
        "settle_from_buffer",
        "the sponsor's one-leaf tree",
        env2.send_metered(&[ix], &[&operator])
            .await
            .expect("settle"),
    );

    let credits: CreditAccount = env
        .account(&credits_address(&env.config, &buyer.pubkey()))
        .await
        .expect("credits");
    assert_eq!(
        usize::from(credits.checkpoint_count),
        credits.checkpoints.len()
    );
    assert!(credits.checkpoints[0].epoch > 0, "the oldest was dropped");
    s
}

/// A root (of a full tree of `2^depth` leaves totalling `amount`) for which `proof` (made-up
/// siblings) proves `operator`'s leaf of `amount` in `epoch`.
fn deep_root(
    env: &Env,
    operator: &Keypair,
    amount: u64,
    depth: u8,
    epoch: u64,
) -> ([u8; 32], Proof) {
    let scope = Scope {
        kind: TreeKind::Reward,
        config: env.config.to_bytes(),
        epoch,
    };
    let leaf = Leaf {
        account: operator.pubkey().to_bytes(),
        amount,
    };
    let (commitment, proof) = deep_proof(&scope, &leaf, depth);
    (commitment.root, proof)
}

/// One row of the committed table.
struct Row {
    budget: u64,
}

/// The committed budgets, by instruction, from the table between the markers.
fn committed_budgets(doc: &str) -> BTreeMap<String, Row> {
    let begin = doc
        .find(TABLE_BEGIN)
        .expect("table start marker in docs/compute-units.md");
    let end = doc
        .find(TABLE_END)
        .expect("table end marker in docs/compute-units.md");
    doc[begin..end]
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let name = cells[1].trim_matches('`').to_string();
            let budget = cells[5]
                .replace(',', "")
                .parse()
                .unwrap_or_else(|_| panic!("budget of {name} in docs/compute-units.md: {l}"));
            (name, Row { budget })
        })
        .collect()
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn table(samples: &Samples, budgets: &BTreeMap<String, Row>) -> String {
    let mut t = String::from(
        "| instruction | success paths measured | median | worst | budget |\n|---|---|---|---|---|\n",
    );
    for (ix, cases) in &samples.0 {
        let units: Vec<u64> = cases.iter().map(|c| c.1).collect();
        let paths: Vec<String> = cases
            .iter()
            .map(|(c, u)| format!("{c}: {}", thousands(*u)))
            .collect();
        let budget = budgets.get(*ix).map_or(0, |r| r.budget);
        t.push_str(&format!(
            "| `{ix}` | {} | {} | {} | {} |\n",
            paths.join("; "),
            thousands(median(&units)),
            thousands(*units.iter().max().expect("a sample")),
            thousands(budget)
        ));
    }
    t
}

#[tokio::test]
async fn no_instruction_exceeds_its_compute_unit_budget() {
    let samples = measure().await;
    let doc_file = doc_path();
    let doc = std::fs::read_to_string(&doc_file).expect("docs/compute-units.md");
    let budgets = committed_budgets(&doc);
    let fresh = table(&samples, &budgets);
    println!("{fresh}");
    if std::env::var_os("BACKHAUL_WRITE_CU_TABLE").is_some() {
        let begin = doc.find(TABLE_BEGIN).expect("marker") + TABLE_BEGIN.len();
        let end = doc.find(TABLE_END).expect("marker");
        let new = format!("{}\n{fresh}{}", &doc[..begin], &doc[end..]);
        std::fs::write(&doc_file, new).expect("write docs/compute-units.md");
    }
    let mut over = Vec::new();
    for (ix, cases) in &samples.0 {
        let Some(row) = budgets.get(*ix) else {
            panic!("`{ix}` has no row in docs/compute-units.md: add one with a budget");
        };
        for (case, units) in cases {
            if *units > row.budget {
                over.push(format!("{ix} ({case}): {units} > budget {}", row.budget));
            }
        }
    }
    for name in budgets.keys() {
        assert!(
            samples.0.contains_key(name.as_str()),
            "docs/compute-units.md lists `{name}`, which this test does not measure"
        );
    }
    assert!(
        over.is_empty(),
        "over budget:\n{}\n\nmeasured:\n{fresh}",
        over.join("\n")
    );
}

/// The figures do not depend on anything but the keys: two runs give the same units.
#[tokio::test]
async fn figures_with_fixed_keys_are_repeatable() {
    let a = measure().await;
    let b = measure().await;
    assert_eq!(a.0, b.0);
}
