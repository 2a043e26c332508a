//! The `backhaul-localnet` binary: flags, printed endpoint, SIGTERM.

use crate::common::Rpc;
use base64::prelude::{Engine, BASE64_STANDARD};
use futures::StreamExt;
use serde_json::json;
use solana_pubsub_client::nonblocking::pubsub_client::PubsubClient;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};
use solana_sdk::signer::keypair::read_keypair_file;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_serves_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let faucet_file = dir.path().join("faucet.json");
    let account_file = dir.path().join("account.json");
    let preloaded = Pubkey::new_unique();
    let owner = Pubkey::new_unique();
    std::fs::write(
        &account_file,
        json!({
            "pubkey": preloaded.to_string(),
            "account": {"lamports": 4242, "data": [BASE64_STANDARD.encode(b"hello"), "base64"],
                        "owner": owner.to_string(), "executable": false, "rentEpoch": 0, "space": 5}
        })
        .to_string(),
    )
    .unwrap();
    let authority = Keypair::new().pubkey();

    let mut child = Command::new(env!("CARGO_BIN_EXE_backhaul-localnet"))
        .args(["--listen", "127.0.0.1:0", "--unix-timestamp", "1700000000"])
        .arg("--upgrade-authority")
        .arg(authority.to_string())
        .arg("--write-faucet-keypair")
        .arg(&faucet_file)
        .arg("--account")
        .arg(&account_file)
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn backhaul-localnet");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut url = None;
    let mut ws_url = None;
    let mut faucet_line = None;
    let mut authority_line = None;
    while url.is_none() || ws_url.is_none() || faucet_line.is_none() || authority_line.is_none() {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the binary prints its endpoint");
        if let Some(u) = line.strip_prefix("JSON RPC URL: ") {
            url = Some(u.to_string());
        } else if let Some(u) = line.strip_prefix("WebSocket PubSub URL: ") {
            ws_url = Some(u.to_string());
        } else if let Some(f) = line.strip_prefix("Faucet: ") {
            faucet_line = Some(f.to_string());
        } else if let Some(a) = line.strip_prefix("Upgrade authority: ") {
            authority_line = Some(a.to_string());
        }
    }
    let url = url.unwrap();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    // The websocket endpoint is on the RPC port + 1, where web3.js looks for it.
    let port = |u: &str| -> u16 { u.rsplit(':').next().unwrap().parse().unwrap() };
    let ws_url = ws_url.unwrap();
    assert!(ws_url.starts_with("ws://127.0.0.1:"), "{ws_url}");
    assert_eq!(port(&ws_url), port(&url) + 1);
    let pubsub = PubsubClient::new(ws_url.as_str())
        .await
        .expect("connect to the printed websocket URL");
    let (mut slots, _unsubscribe) = pubsub.slot_subscribe().await.expect("slotSubscribe");
    assert_eq!(authority_line.unwrap(), authority.to_string());
    let faucet = read_keypair_file(&faucet_file).expect("faucet keypair written");
    assert!(faucet_line
        .unwrap()
        .starts_with(&faucet.pubkey().to_string()));

    let rpc = Rpc::for_url(&url);
    assert_eq!(rpc.ok("getHealth", json!([])).await, "ok");
    assert_eq!(rpc.clock_ts().await, 1_700_000_000);
    let v = rpc
        .ok(
            "getAccountInfo",
            json!([preloaded.to_string(), {"encoding": "base64"}]),
        )
        .await;
    assert_eq!(v["value"]["lamports"], 4242);
    assert_eq!(v["value"]["data"][0], BASE64_STANDARD.encode(b"hello"));
    let pd = rpc
        .ok(
            "getAccountInfo",
            json!([backhaul_localnet::program_data_address().to_string(), {"encoding": "base64"}]),
        )
        .await;
    let data = BASE64_STANDARD
        .decode(pd["value"]["data"][0].as_str().unwrap())
        .unwrap();
    assert_eq!(&data[13..45], authority.as_ref());
    // The written faucet keypair can pay; the transaction ends its slot.
    let slot = rpc.slot().await;
    rpc.send_ok(
        &[crate::common::transfer(
            &faucet.pubkey(),
            &Pubkey::new_unique(),
            1_000_000_000,
        )],
        &faucet,
        &[],
    )
    .await;
    let next = tokio::time::timeout(Duration::from_secs(20), slots.next())
        .await
        .expect("a slot notification in time")
        .expect("the slot stream is open");
    assert_eq!(next.slot, slot + 1);
    drop(slots);
    pubsub.shutdown().await.expect("websocket closes cleanly");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut exited = None;
    for _ in 0..200 {
        if let Some(s) = child.try_wait().unwrap() {
            exited = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let exited = exited.unwrap_or_else(|| {
        let _ = child.kill();
        panic!("the binary did not stop on SIGTERM")
    });
    assert!(exited.success(), "{exited:?}");
}
