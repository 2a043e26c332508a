//! A whole epoch through the commands, with three real oracles: operators bind their nodes, the
//! firm buys credits and grants (and revokes) clients, traffic flows, the oracles reach quorum and
//! finalize; then rewards, claim (twice), balance and settle.

use crate::common::*;
use backhaul_cli::context::{read_keypair, signing_key};
use backhaul_cli::error::{command_error, CommandError};
use backhaul_cli::firm::{self, BuyArgs, GrantArgs, RevokeArgs};
use backhaul_cli::operator::{self, BindArgs};
use backhaul_cli::proofs::ChainStatus;
use backhaul_client::OracleClient;
use backhaul_sdk::state::{CreditAccount, EpochRecord, EpochStatus, OperatorClaim};
use solana_sdk::signature::{Keypair, Signer};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operators_claim_and_firms_settle_after_a_finalized_epoch() {
    let w = deploy(Net::start(true), START, 3 * EPOCH_SECS).await;
    let net = &w.net;
    let (running, urls) = start_oracles(&w, 100_000).await;

    // The firm buys 100 tokens of credits at the oracles' price.
    let buyer = net.funded().await;
    w.give_tokens(&buyer.pubkey(), 500 * TOKEN).await;
    let buyer_ctx = w.ctx(&buyer, &urls);
    let bought = firm::buy(
        &buyer_ctx,
        &BuyArgs {
            tokens: "100".into(),
            ..BuyArgs::default()
        },
    )
    .await
    .expect("buy");
    assert_eq!(bought.credits, 10_000_000);

    // It authorizes a client key, and revokes another; every oracle takes both.
    let client = ed25519_dalek::SigningKey::from_bytes(&rand::random());
    let client_key = solana_sdk::pubkey::Pubkey::new_from_array(client.verifying_key().to_bytes());
    let g = firm::grant(
        &buyer_ctx,
        &GrantArgs {
            client: client_key.to_string(),
            expires_at: None,
            expires_in_days: Some(30),
            credit_limit: 0,
            epoch: None,
            issued_at: None,
        },
    )
    .await
    .expect("grant");
    assert_eq!(g.stored_by, 3, "{g:?}");
    assert!(g.oracles.iter().all(|o| o.status == "accepted"), "{g:?}");
    let retired = solana_sdk::pubkey::Pubkey::new_unique();
    let grant_retired = GrantArgs {
        client: retired.to_string(),
        expires_at: Some(START + 86_400),
        expires_in_days: None,
        credit_limit: 1_000,
        epoch: Some(0),
        issued_at: Some(START),
    };
    assert!(firm::grant(&buyer_ctx, &grant_retired)
        .await
        .expect("grant")
        .all_stored());
    let r = firm::revoke(
        &buyer_ctx,
        &RevokeArgs {
            client: retired.to_string(),
            epoch: Some(0),
            issued_at: Some(START + 1),
        },
    )
    .await
    .expect("revoke");
    assert_eq!(r.stored_by, 3);
    assert!(r.oracles.iter().all(|o| o.status == "accepted"), "{r:?}");
    // The same grant again is a duplicate everywhere: still held by all three.
    let again = firm::grant(&buyer_ctx, &grant_retired)
        .await
        .expect("grant");
    assert!(
        again.oracles.iter().all(|o| o.status == "duplicate"),
        "{again:?}"
    );
    // An oracle that is down is reported as such, the others still take it, and the binary
    // exits non-zero so a script notices.
    let dead = format!("http://127.0.0.1:{}", unused_port());
    let mut with_dead = urls.clone();
    with_dead.push(dead.clone());
    let partial = firm::grant(&w.ctx(&buyer, &with_dead), &grant_retired)
        .await
        .expect("grant");
    assert_eq!((partial.stored_by, partial.oracles.len()), (3, 4));
    assert!(!partial.all_stored());
    let down = &partial.oracles[3];
    assert!(
        down.oracle.starts_with(&dead) && down.status == "error",
        "{down:?}"
    );
    assert!(down.reason.is_some());

    // Two operators bind a node each, from their key files.
    let operators: Vec<Keypair> = vec![net.funded().await, net.funded().await];
    let mut nodes = vec![];
    for (i, op) in operators.iter().enumerate() {
        let node_file = net.keypair_file(&format!("node-{i}"), &Keypair::new());
        let o = operator::bind(
            &w.ctx(op, &urls),
            &BindArgs {
                node_keypair: node_file.clone(),
                epoch: None,
            },
        )
        .await
        .expect("bind");
        assert_eq!(o.stored_by, 3, "{o:?}");
        assert!(o.message.contains(&op.pubkey().to_string()));
        nodes.push(signing_key(&read_keypair(&node_file).expect("node key")));
    }
    // A node key file that is not a keypair is refused with what to do.
    let garbage = net.write("garbage.json", "not a keypair");
    let e = operator::bind(
        &w.ctx(&operators[0], &urls),
        &BindArgs {
            node_keypair: garbage,
            epoch: None,
        },
    )
    .await
    .unwrap_err();
    assert!(
        format!("{e:#}").contains("is not a Solana CLI keypair file"),
        "{e:#}"
    );

    let operator_keys: Vec<_> = operators.iter().map(|o| o.pubkey()).collect();
    serve_traffic(&w, &urls, &nodes, &operator_keys, &client, &buyer.pubkey()).await;

    // Nothing is finalized yet: nothing to claim.
    let op0 = w.ctx(&operators[0], &urls);
    let e = operator::claim(&op0, None).await.unwrap_err();
    assert!(format!("{e}").starts_with("nothing to claim"), "{e}");

    // The epoch ends; the oracles close it and reach quorum.
    net.warp_to(START + EPOCH_SECS as i64 + 10).await;
    let record = wait_for("quorum on epoch 0", 90, || async {
        net.account::<EpochRecord>(&w.d.epoch_record(0))
            .await
            .filter(|r| r.status == EpochStatus::Proposed && r.votes.len() >= 2)
    })
    .await;

    // rewards: the proof verifies against the proposed root, but is not claimable yet.
    let api = OracleClient::new(&urls[0]).expect("client");
    let proof0 = wait_for("oracle 0's proof", 30, || async {
        api.operator_proof(&operators[0].pubkey().to_bytes())
            .await
            .ok()
            .flatten()
    })
    .await;
    let r = operator::rewards(&op0, None).await.expect("rewards");
    let latest = r.latest.clone().expect("a proof");
    assert_eq!(
        (
            latest.epoch,
            latest.cumulative,
            latest.status,
            latest.verified
        ),
        (0, proof0.cumulative, ChainStatus::Proposed, true)
    );
    assert_eq!(latest.finalizable_at, Some(record.finalizable_at));
    assert_eq!(
        (r.claimable_now, r.claimable_epoch, r.claimed),
        (0, None, 0)
    );
    assert_eq!(r.pending_finalization, proof0.cumulative);

    // After the challenge period an oracle finalizes.
    net.warp_to(record.finalizable_at + 1).await;
    wait_for("finalization", 60, || async {
        net.account::<EpochRecord>(&w.d.epoch_record(0))
            .await
            .filter(|r| r.status == EpochStatus::Finalized)
    })
    .await;
    // The binary's display for people says which epoch and that it is final.
    let out = w
        .run_cli(&[
            "operator",
            "rewards",
            "--operator",
            &operators[0].pubkey().to_string(),
            "--oracle",
            &urls.join(","),
        ])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("epoch 0:") && text.contains("finalized, verified against the chain"),
        "{text}"
    );
    let r = operator::rewards(&op0, None).await.expect("rewards");
    assert_eq!(
        (r.claimable_now, r.claimable_epoch),
        (proof0.cumulative, Some(0))
    );
    assert_eq!(r.pending_finalization, 0);
    assert_eq!(r.latest.expect("proof").status, ChainStatus::Finalized);

    // A dishonest oracle serving a forged cumulative amount (with a total to match) is ignored:
    // the proof does not verify against the chain's root and declared total. Alone, it leaves
    // nothing to claim.
    let forged = serde_json::json!({
        "epoch": 0,
        "account": operators[0].pubkey().to_string(),
        "cumulative": proof0.cumulative * 10,
        "index": proof0.index,
        "proof": proof0.proof,
        "root": proof0.root,
        "total": proof0.total + proof0.cumulative * 9,
        "leaf_count": proof0.leaf_count,
    });
    let fake = fake_oracle(forged.to_string()).await;
    let mixed = w.ctx(&operators[0], &[fake.clone(), urls[0].clone()]);
    let r = operator::rewards(&mixed, None).await.expect("rewards");
    assert_eq!(r.claimable_now, proof0.cumulative);
    assert!(r.latest.expect("proof").source.starts_with(&urls[0]));
    let e = operator::claim(&w.ctx(&operators[0], &[fake]), None)
        .await
        .unwrap_err();
    assert!(format!("{e}").starts_with("nothing to claim"), "{e}");
    // An oracle answering garbage, or a proof whose hashes are not hex, is skipped too.
    let garbage = fake_oracle("{not json".into()).await;
    let bad_hex = fake_oracle(
        serde_json::json!({
            "epoch": 0,
            "account": operators[0].pubkey().to_string(),
            "cumulative": proof0.cumulative,
            "index": proof0.index,
            "proof": [{"hash": "zz", "sum": 0}],
            "root": proof0.root,
            "total": proof0.total,
            "leaf_count": proof0.leaf_count,
        })
        .to_string(),
    )
    .await;
    let r = operator::rewards(
        &w.ctx(&operators[0], &[garbage, bad_hex, urls[1].clone()]),
        None,
    )
    .await
    .expect("rewards");
    assert_eq!(r.claimable_now, proof0.cumulative);
    assert!(r.latest.expect("proof").source.starts_with(&urls[1]));

    // claim: pays the proof's cumulative amount into the operator's new token account.
    let ata0 = w.d.ata(&operators[0].pubkey());
    assert_eq!(net.token_balance(&ata0).await, 0);
    let c = operator::claim(&op0, None).await.expect("claim");
    assert_eq!(
        (c.epoch, c.cumulative, c.amount),
        (0, proof0.cumulative, proof0.cumulative)
    );
    assert_eq!(c.balance, proof0.cumulative);
    assert_eq!(net.token_balance(&ata0).await, proof0.cumulative);
    let claim_record: OperatorClaim = net
        .account(&w.d.operator_claim(&operators[0].pubkey()))
        .await
        .expect("claim record");
    assert_eq!(claim_record.claimed, proof0.cumulative);

    // A second claim: nothing to claim, nothing sent.
    let lamports = net.lamports(&operators[0].pubkey()).await;
    let e = operator::claim(&op0, None).await.unwrap_err();
    assert!(
        matches!(
            command_error(&e),
            Some(CommandError::NothingToClaim { epoch: 0, .. })
        ),
        "{e:#}"
    );
    assert_eq!(net.lamports(&operators[0].pubkey()).await, lamports);

    // The second operator claims through the binary (JSON), then again: exit code 1.
    let proof1 = api
        .operator_proof(&operators[1].pubkey().to_bytes())
        .await
        .expect("proof")
        .expect("a leaf");
    assert!(proof1.cumulative > proof0.cumulative, "node 1 served more");
    let keypair1 = path_str(&net.keypair_file("operator-1", &operators[1]));
    let oracles = urls.join(",");
    // It sends its claim as a v0 transaction with the deployment's lookup table, which it
    // creates first (any keypair may).
    let out = w
        .run_cli(&[
            "admin",
            "lookup-table",
            "--keypair",
            keypair1.as_str(),
            "--output",
            "json",
        ])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let table = json(&out)["lookup_table"]
        .as_str()
        .expect("the table's address")
        .to_string();
    assert_eq!(json(&out)["addresses"].as_array().map(Vec::len), Some(7));
    let claim_args = |json: bool| {
        let mut a = vec![
            "operator",
            "claim",
            "--keypair",
            keypair1.as_str(),
            "--oracle",
            oracles.as_str(),
            "--lookup-table",
            table.as_str(),
        ];
        if json {
            a.extend(["--output", "json"]);
        }
        a
    };
    let out = w.run_cli(&claim_args(true)).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["amount"], proof1.cumulative);
    assert_eq!(v["epoch"], 0);
    assert_eq!(
        net.token_balance(&w.d.ata(&operators[1].pubkey())).await,
        proof1.cumulative
    );
    let out = w.run_cli(&claim_args(false)).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("nothing to claim"),
        "{}",
        stderr(&out)
    );
    let record: EpochRecord = net.account(&w.d.epoch_record(0)).await.expect("record");
    assert_eq!(
        proof0.cumulative + proof1.cumulative,
        record.proposal.allocation,
        "the two operators were paid the whole epoch"
    );

    // balance: 5 GiB at 50,000 credits per GiB proven and not yet settled.
    let b = firm::balance(&buyer_ctx, None).await.expect("balance");
    assert_eq!(b.balance, 10_000_000);
    assert_eq!(b.usage_epoch, Some(0));
    assert_eq!(b.usage_status, Some(ChainStatus::Finalized));
    assert!(b.usage_verified);
    assert_eq!(b.unsettled, Some(250_000));
    let out = w
        .run_cli(&[
            "firm",
            "balance",
            "--buyer",
            &buyer.pubkey().to_string(),
            "--oracle",
            &urls.join(","),
        ])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(
            "unsettled   250000 credits (usage through epoch 0, finalized, verified against the chain)"
        ),
        "{}",
        stdout(&out)
    );

    // Epoch 1 ends and reaches quorum but is not final: the oracles' newest proofs are of
    // epoch 1, so settling rebuilds epoch 0's proof from its published dataset.
    net.warp_to(START + 2 * EPOCH_SECS as i64 + 10).await;
    wait_for("quorum on epoch 1", 90, || async {
        net.account::<EpochRecord>(&w.d.epoch_record(1))
            .await
            .filter(|r| r.status == EpochStatus::Proposed)
    })
    .await;
    for url in &urls {
        let c = OracleClient::new(url).expect("client");
        wait_for("every oracle to close epoch 1", 30, || async {
            c.epochs()
                .await
                .ok()
                .filter(|e| e.iter().any(|s| s.epoch == 1))
        })
        .await;
    }
    let b = firm::balance(&buyer_ctx, None).await.expect("balance");
    assert_eq!(b.usage_epoch, Some(1));
    assert_eq!(b.usage_status, Some(ChainStatus::Proposed));
    assert!(b.usage_verified);
    assert_eq!(b.unsettled, Some(250_000), "no new usage in epoch 1");

    // settle, by anyone (here an operator pays the fee).
    let s = firm::settle(&op0, Some(buyer.pubkey()))
        .await
        .expect("settle");
    assert_eq!(
        (
            s.epoch,
            s.consumed_cumulative,
            s.debited,
            s.unpaid,
            s.balance
        ),
        (0, 250_000, 250_000, 0, 9_750_000)
    );
    assert!(s.source.starts_with("dataset "), "{}", s.source);
    let credits: CreditAccount = net
        .account(&w.d.credits(&buyer.pubkey()))
        .await
        .expect("credits");
    assert_eq!((credits.balance, credits.settled), (9_750_000, 250_000));
    let e = firm::settle(&buyer_ctx, None).await.unwrap_err();
    assert!(
        matches!(
            command_error(&e),
            Some(CommandError::NothingToSettle {
                cumulative: 250_000,
                ..
            })
        ),
        "{e:#}"
    );
    let b = firm::balance(&buyer_ctx, None).await.expect("balance");
    assert_eq!((b.settled, b.unsettled), (250_000, Some(0)));

    for o in running {
        o.stop().await;
    }
}
