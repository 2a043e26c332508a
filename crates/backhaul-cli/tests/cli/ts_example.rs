//! The TypeScript example (`examples/ts`: the standard Anchor client and the committed IDL) against
//! a deployment whose epoch 0 three real oracles finalized: it decodes every account type, buys
//! credits, claims an operator's reward with an oracle's proof and prints the events of both
//! transactions; what it printed is checked against what the Rust side reads from the chain.

use crate::common::*;
use backhaul_cli::context::{read_keypair, signing_key};
use backhaul_cli::firm::{self, BuyArgs, GrantArgs};
use backhaul_cli::operator::{self, BindArgs};
use backhaul_client::OracleClient;
use backhaul_core::price::credits_for_tokens;
use backhaul_sdk::ix;
use backhaul_sdk::state::{
    Config, CreditAccount, EpochLedger, EpochRecord, EpochStatus, OperatorClaim, PriceFeed,
};
use serde_json::Value;
use solana_sdk::signature::{Keypair, Signer};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const PRICE: u64 = 100_000;

fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/ts")
        .canonicalize()
        .expect("examples/ts exists")
}

/// Compiles the example with its own TypeScript compiler and returns the script to run.
fn build_example() -> PathBuf {
    let dir = example_dir();
    let tsc = dir.join("node_modules/typescript/bin/tsc");
    assert!(
        dir.join("node_modules").is_dir() && tsc.is_file(),
        "{} has no installed packages: run npm ci in examples/ts",
        dir.display()
    );
    let out = Command::new("node")
        .arg(&tsc)
        .arg("-p")
        .arg(&dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run node ({e}): install Node.js 18 or newer"));
    assert!(
        out.status.success(),
        "tsc -p examples/ts failed:\n{}{}",
        stdout(&out),
        stderr(&out)
    );
    let script = dir.join("dist/example.js");
    assert!(script.is_file(), "tsc wrote no {}", script.display());
    script
}

/// Runs the compiled example with `args`, off the async runtime's threads.
async fn run_example(script: &Path, args: Vec<String>) -> Output {
    let script = script.to_path_buf();
    tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(script)
            .args(args)
            .output()
            .expect("node runs the example")
    })
    .await
    .expect("example task")
}

/// A u64 the example printed (as a decimal string).
fn num(v: &Value) -> u64 {
    v.as_str()
        .unwrap_or_else(|| panic!("{v} is not a decimal string"))
        .parse()
        .unwrap_or_else(|e| panic!("{v}: {e}"))
}

fn event<'a>(events: &'a Value, name: &str) -> &'a Value {
    events
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["name"] == name)
        .map(|e| &e["data"])
        .unwrap_or_else(|| panic!("no {name} event in {events}"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_typescript_example_decodes_every_account_buys_claims_and_reads_the_events() {
    let script = build_example();
    let w = deploy(Net::start(true), START, 3 * EPOCH_SECS).await;
    let net = &w.net;
    let (running, urls) = start_oracles(&w, PRICE).await;

    // Epoch 0: the firm buys credits and authorizes a client; two operators bind a node each and
    // serve it; the oracles close the epoch, reach quorum and finalize it.
    let buyer = net.funded().await;
    w.give_tokens(&buyer.pubkey(), 500 * TOKEN).await;
    let buyer_ctx = w.ctx(&buyer, &urls);
    firm::buy(
        &buyer_ctx,
        &BuyArgs {
            tokens: "100".into(),
            ..BuyArgs::default()
        },
    )
    .await
    .expect("buy");
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
        nodes.push(signing_key(&read_keypair(&node_file).expect("node key")));
    }
    let operator_keys: Vec<_> = operators.iter().map(|o| o.pubkey()).collect();
    serve_traffic(&w, &urls, &nodes, &operator_keys, &client, &buyer.pubkey()).await;
    net.warp_to(START + EPOCH_SECS as i64 + 10).await;
    let record = wait_for("quorum on epoch 0", 90, || async {
        net.account::<EpochRecord>(&w.d.epoch_record(0))
            .await
            .filter(|r| r.status == EpochStatus::Proposed && r.votes.len() >= 2)
    })
    .await;
    net.warp_to(record.finalizable_at + 1).await;
    let record = wait_for("finalization of epoch 0", 60, || async {
        net.account::<EpochRecord>(&w.d.epoch_record(0))
            .await
            .filter(|r| r.status == EpochStatus::Finalized)
    })
    .await;

    // The operator whose node served more; its leaf has a sibling, so the proof is not empty.
    let operator = &operators[1];
    let proof = OracleClient::new(&urls[0])
        .expect("client")
        .operator_proof(&operator.pubkey().to_bytes())
        .await
        .expect("proof")
        .expect("a leaf");
    assert_eq!(proof.epoch, 0);
    assert!(proof.cumulative > 0 && !proof.proof.is_empty(), "{proof:?}");
    let credits_before: CreditAccount = net
        .account(&w.d.credits(&buyer.pubkey()))
        .await
        .expect("credits");
    assert_eq!(credits_before.balance, 100 * PRICE);

    let buyer_file = path_str(&net.keypair_file("ts-buyer", &buyer));
    let operator_file = path_str(&net.keypair_file("ts-operator", operator));
    let args = |oracles: &[String]| {
        let mut a = vec![
            "--url".to_string(),
            net.url(),
            "--mint".into(),
            w.mint.to_string(),
            "--buyer".into(),
            buyer_file.clone(),
            "--operator".into(),
            operator_file.clone(),
            "--tokens".into(),
            "25".into(),
        ];
        for o in oracles {
            a.extend(["--oracle".to_string(), o.clone()]);
        }
        a
    };
    // A queued governance change, which the example lists and decodes.
    let new_guardian = Keypair::new().pubkey();
    backhaul_cli::admin::queue_guardians(
        &w.ctx(&w.admin, &urls),
        &backhaul_cli::admin::QueueGuardiansArgs {
            guardians: vec![w.guardian.pubkey().to_string(), new_guardian.to_string()],
        },
    )
    .await
    .expect("queue a guardian change");
    // An oracle's bond and an open proof buffer, which the example finds and decodes too.
    let bonded = &w.oracles[0];
    net.send(
        &[ix::deposit_bond(&w.d, &bonded.pubkey(), 1_000_000_000)],
        bonded,
        &[],
    )
    .await;
    net.send(
        &[ix::open_proof_buffer(&w.d, &operator.pubkey(), 7, 64)],
        operator,
        &[],
    )
    .await;
    let out = run_example(&script, args(&urls)).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "the example failed:\n{}\n{}",
        stderr(&out),
        stdout(&out)
    );
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", stdout(&out)));

    // What the chain holds now, read from Rust.
    let config: Config = net.account(&w.d.config).await.expect("config");
    let purchase_epoch = backhaul_sdk::purchase_epoch(&config, net.now().await);
    assert_eq!(purchase_epoch, 1, "the purchase lands in the epoch after");
    let feed: PriceFeed = net.account(&w.d.price_feed()).await.expect("price feed");
    let ledger: EpochLedger = net
        .account(&w.d.ledger(purchase_epoch))
        .await
        .expect("ledger");
    let credits: CreditAccount = net
        .account(&w.d.credits(&buyer.pubkey()))
        .await
        .expect("credits");
    let claim: OperatorClaim = net
        .account(&w.d.operator_claim(&operator.pubkey()))
        .await
        .expect("the claim record");
    let bought = credits_for_tokens(25 * TOKEN, PRICE, DECIMALS).expect("quote");

    // The purchase and the claim happened, by the chain.
    assert_eq!(credits.balance, credits_before.balance + bought);
    assert_eq!(claim.claimed, proof.cumulative);
    assert_eq!(claim.last_epoch, 0);
    assert_eq!(
        net.token_balance(&w.d.ata(&operator.pubkey())).await,
        proof.cumulative
    );

    // Every account type of the IDL, decoded by Anchor at the address the IDL's seeds give.
    let idl: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../programs/backhaul/idl/backhaul.json"),
        )
        .expect("IDL"),
    )
    .expect("IDL JSON");
    let accounts = v["accounts"].as_object().expect("accounts");
    let idl_accounts = idl["accounts"].as_array().expect("IDL accounts");
    assert_eq!(accounts.len(), idl_accounts.len(), "{accounts:?}");
    let expected = [
        ("config", w.d.config),
        ("priceFeed", w.d.price_feed()),
        ("epochRecord", w.d.epoch_record(0)),
        ("epochLedger", w.d.ledger(purchase_epoch)),
        ("creditAccount", w.d.credits(&buyer.pubkey())),
        ("operatorClaim", w.d.operator_claim(&operator.pubkey())),
        ("pendingChange", w.d.pending_change(0)),
        ("oracleBond", w.d.bond(&bonded.pubkey())),
        ("proofBuffer", w.d.proof_buffer(&operator.pubkey(), 7)),
    ];
    assert_eq!(expected.len(), idl_accounts.len());
    for (name, address) in expected {
        assert_eq!(accounts[name]["address"], address.to_string(), "{name}");
    }
    let a = |name: &str| &accounts[name]["data"];
    assert_eq!(a("config")["mint"], w.mint.to_string());
    assert_eq!(a("config")["vault"], w.d.vault().to_string());
    assert_eq!(num(&a("config")["totalClaimed"]), config.total_claimed);
    assert_eq!(num(&a("config")["totalBurned"]), config.total_burned);
    assert_eq!(num(&a("config")["nextEpoch"]), config.next_epoch);
    assert_eq!(
        num(&a("priceFeed")["creditsPerToken"]),
        feed.credits_per_token
    );
    assert_eq!(num(&a("priceFeed")["postedAt"]), feed.posted_at as u64);
    assert_eq!(
        a("epochRecord")["status"],
        serde_json::json!({"finalized": {}})
    );
    assert_eq!(
        a("epochRecord")["proposal"]["rewardRoot"],
        hex(&record.proposal.reward_root)
    );
    assert_eq!(
        num(&a("epochRecord")["proposal"]["allocation"]),
        record.proposal.allocation
    );
    assert_eq!(num(&a("epochLedger")["epoch"]), purchase_epoch);
    assert_eq!(num(&a("epochLedger")["tokensBurned"]), ledger.tokens_burned);
    assert_eq!(ledger.tokens_burned, 25 * TOKEN);
    assert_eq!(a("creditAccount")["buyer"], buyer.pubkey().to_string());
    assert_eq!(num(&a("creditAccount")["balance"]), credits.balance);
    assert_eq!(num(&a("creditAccount")["issued"]), credits.issued);
    assert_eq!(
        num(&v["before"]["creditAccount"]["balance"]),
        credits_before.balance
    );
    assert_eq!(
        a("operatorClaim")["operator"],
        operator.pubkey().to_string()
    );
    assert_eq!(num(&a("operatorClaim")["claimed"]), claim.claimed);
    assert_eq!(v["before"]["operatorClaim"], Value::Null);
    assert_eq!(a("oracleBond")["oracle"], bonded.pubkey().to_string());
    assert_eq!(num(&a("oracleBond")["slashed"]), 0);
    assert_eq!(a("proofBuffer")["owner"], operator.pubkey().to_string());
    assert_eq!(
        (
            num(&a("proofBuffer")["id"]),
            a("proofBuffer")["len"].as_u64()
        ),
        (7, Some(64))
    );
    assert_eq!(num(&a("pendingChange")["id"]), 0);
    assert_eq!(a("pendingChange")["queuedBy"], w.admin.pubkey().to_string());
    assert_eq!(
        a("pendingChange")["change"]["guardians"]["guardians"],
        serde_json::json!([w.guardian.pubkey().to_string(), new_guardian.to_string()])
    );
    assert!(
        stderr(&out).contains("queued change 0 (guardians)"),
        "{}",
        stderr(&out)
    );

    // The events it read from each transaction.
    let purchased = event(&v["purchase"]["events"], "creditsPurchased");
    assert_eq!(purchased["buyer"], buyer.pubkey().to_string());
    assert_eq!(num(&purchased["tokensBurned"]), 25 * TOKEN);
    assert_eq!(num(&purchased["credits"]), bought);
    assert_eq!(num(&purchased["balance"]), credits.balance);
    assert_eq!(num(&purchased["epoch"]), purchase_epoch);
    let rewarded = event(&v["claim"]["events"], "rewardClaimed");
    assert_eq!(rewarded["operator"], operator.pubkey().to_string());
    assert_eq!(num(&rewarded["amount"]), proof.cumulative);
    assert_eq!(num(&rewarded["cumulative"]), proof.cumulative);
    assert_eq!(num(&rewarded["totalClaimed"]), config.total_claimed);
    assert_eq!(num(&v["claim"]["epoch"]), 0);
    assert_eq!(v["claim"]["proofDepth"], proof.proof.len());

    // Run again: nothing is left to claim, so it fails before sending anything (the purchase
    // included).
    let again = run_example(&script, args(&urls)).await;
    assert_eq!(again.status.code(), Some(1), "{}", stdout(&again));
    assert!(
        stderr(&again).contains("nothing to claim") && stderr(&again).contains("nothing was sent"),
        "{}",
        stderr(&again)
    );
    let unchanged: CreditAccount = net
        .account(&w.d.credits(&buyer.pubkey()))
        .await
        .expect("credits");
    assert_eq!(unchanged.balance, credits.balance);
    // Without an oracle it says what is missing.
    let none = run_example(&script, args(&[])).await;
    assert_eq!(none.status.code(), Some(1));
    assert!(
        stderr(&none).contains("--oracle is required"),
        "{}",
        stderr(&none)
    );

    for o in running {
        o.stop().await;
    }
}
