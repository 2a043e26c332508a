//! Proofs too deep for one transaction, and oracle bonds, from the command line.
//!
//! `firm settle` with a depth-20 usage proof and no lookup table (its legacy transaction would be
//! 1,247 bytes) writes the proof into a proof buffer, settles from there and gets the buffer's
//! rent back. `oracle bond`, `show-bond`, `unbond` and `withdraw` through the real binary.

use crate::common::*;
use backhaul_core::merkle::TreeKind;
use backhaul_core::sum_tree::{compute_root, empty_root, Leaf, Scope, SumNode};
use backhaul_protocol::api::{ProofResponse, ProofSibling};
use backhaul_protocol::dataset::hex;
use backhaul_sdk::ix;
use backhaul_sdk::state::{CreditAccount, EpochProposal, EpochRecord, EpochStatus};
use solana_sdk::signature::Signer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settlement_too_deep_for_one_transaction_goes_through_a_proof_buffer() {
    let w = deploy(Net::start(false), START, 3 * EPOCH_SECS).await;
    let net = &w.net;
    // A buyer buys credits in epoch 0.
    w.post_price(2, 100_000).await;
    let buyer = net.funded().await;
    let b = buyer.pubkey();
    w.give_tokens(&b, 1_000_000).await;
    let buy = ix::buy_credits(&w.d, &b, &w.d.ata(&b), 1_000_000, 1, b, 0);
    net.send(&[buy], &buyer, &[]).await;
    let credits: CreditAccount = net.account(&w.d.credits(&b)).await.expect("credits");
    let consumed = credits.issued / 2;

    // Epoch 0 finalizes with a usage tree of 2^20 leaves holding the buyer's consumption.
    net.warp_to(START + EPOCH_SECS as i64 + 10).await;
    w.seal(0).await;
    let scope = Scope {
        kind: TreeKind::Usage,
        config: w.d.config.to_bytes(),
        epoch: 0,
    };
    let leaf = Leaf {
        account: b.to_bytes(),
        amount: consumed,
    };
    let siblings: Vec<SumNode> = (0..20u8)
        .map(|i| SumNode {
            hash: backhaul_core::merkle::sha256v(&[b"sibling", &[i]]),
            sum: 0,
        })
        .collect();
    let c = compute_root(&scope, &leaf, 0, 1 << 20, &siblings).expect("a full tree");
    let p = EpochProposal {
        reward_root: empty_root(TreeKind::Reward),
        usage_root: c.root,
        usage_leaf_count: c.leaf_count,
        usage_total: c.total,
        credits_consumed: c.total,
        dataset_hash: [9; 32],
        ..EpochProposal::default()
    };
    w.vote(0, 0, p).await;
    w.vote(1, 0, p).await;
    let record: EpochRecord = net.account(&w.d.epoch_record(0)).await.expect("record");
    net.warp_to(record.finalizable_at).await;
    net.send(&[ix::finalize(&w.d, 0)], &w.treasury, &[]).await;
    let record: EpochRecord = net.account(&w.d.epoch_record(0)).await.expect("record");
    assert_eq!(record.status, EpochStatus::Finalized);

    // An oracle serves the buyer's proof.
    let proof = ProofResponse {
        epoch: 0,
        account: b.to_string(),
        cumulative: consumed,
        index: 0,
        proof: siblings
            .iter()
            .map(|s| ProofSibling {
                hash: hex(&s.hash),
                sum: s.sum,
            })
            .collect(),
        root: hex(&c.root),
        total: c.total,
        leaf_count: c.leaf_count,
    };
    let oracle = fake_oracle(serde_json::to_string(&proof).expect("json")).await;
    let payer = net.funded().await;
    let before = net.lamports(&payer.pubkey()).await;
    let payer_file = path_str(&net.keypair_file("payer", &payer));
    let out = w
        .run_cli(&[
            "firm",
            "settle",
            "--buyer",
            &b.to_string(),
            "--oracle",
            &oracle,
            "--keypair",
            &payer_file,
            "--output",
            "json",
        ])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let o = json(&out);
    assert_eq!(o["consumed_cumulative"], consumed, "{o}");
    let after: CreditAccount = net.account(&w.d.credits(&b)).await.expect("credits");
    assert_eq!(after.consumed_cumulative, consumed);
    assert_eq!(after.balance, credits.issued - consumed);
    // The buffer is gone and its rent back: the payer spent only fees.
    let id = backhaul_cli::buffer::id_for(&[b"settle", b.as_ref(), &0u64.to_le_bytes()]);
    assert_eq!(
        net.lamports(&w.d.proof_buffer(&payer.pubkey(), id)).await,
        0
    );
    let spent = before - net.lamports(&payer.pubkey()).await;
    assert!(spent < 100_000, "fees only, {spent} lamports");
    // It had to: the settlement with the proof in it does not fit one transaction.
    let direct = ix::settle_usage(&w.d, &payer.pubkey(), 0, &b, consumed, 0, &siblings);
    let ctx = w.ctx(&payer, &[]);
    assert!(!backhaul_cli::tx::fits(&ctx, &[direct], None).expect("size"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oracle_bonds_shows_unbonds_and_withdraws_after_the_lock() {
    let w = deploy(Net::start(false), START, 3 * EPOCH_SECS).await;
    let net = &w.net;
    let oracle = &w.oracles[0];
    let file = path_str(&net.keypair_file("oracle", oracle));
    let cli = |words: Vec<&str>| {
        let mut words: Vec<String> = words.iter().map(|s| s.to_string()).collect();
        words.extend([
            "--keypair".into(),
            file.clone(),
            "--output".into(),
            "json".into(),
        ]);
        words
    };
    let run = |words: Vec<String>| {
        let w = &w;
        async move {
            let refs: Vec<&str> = words.iter().map(String::as_str).collect();
            w.run_cli(&refs).await
        }
    };
    let out = run(cli(vec!["oracle", "bond", "--lamports", "2000000000"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let o = json(&out);
    assert_eq!(o["bond"]["bonded"], 2_000_000_000u64, "{o}");
    assert_eq!(o["bond"]["may_vote"], true, "{o}");

    // Withdrawing before unbonding is refused before anything is sent.
    let out = run(cli(vec!["oracle", "withdraw"])).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("is not unbonding"),
        "{}",
        stdout(&out)
    );

    let out = run(cli(vec!["oracle", "unbond"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let o = json(&out);
    let until = o["bond"]["withdrawable_at"]
        .as_i64()
        .expect("withdrawable_at");
    let now = net.now().await;
    assert!(until >= now + 2 * CHALLENGE_SECS as i64 - 5, "{o}");
    let out = run(cli(vec!["oracle", "withdraw"])).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("is locked until"), "{}", stdout(&out));

    net.warp_to(until).await;
    let before = net.lamports(&oracle.pubkey()).await;
    let out = run(cli(vec!["oracle", "withdraw"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(net.lamports(&oracle.pubkey()).await > before + 1_999_000_000);
    let out = run(cli(vec!["oracle", "show-bond"])).await;
    assert_eq!(json(&out)["bonded"], 0, "{}", stdout(&out));
}
