//! Raw HTTP conformance: each method's JSON shape as Solana documents it, and the error cases.

use crate::common::*;
use backhaul_localnet::LocalnetConfig;
use base64::prelude::{Engine, BASE64_STANDARD};
use serde_json::{json, Value};
use solana_sdk::hash::Hash;
use solana_sdk::message::{v0, VersionedMessage};
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signature, Signer};
use solana_sdk::transaction::VersionedTransaction;
use std::str::FromStr;

fn assert_context(v: &Value) {
    assert!(v["context"]["slot"].is_u64(), "context.slot: {v}");
    assert!(
        v["context"]["apiVersion"].is_string(),
        "context.apiVersion: {v}"
    );
    assert!(v.get("value").is_some(), "value: {v}");
}

fn is_base58_of_len(s: &Value, len: usize) -> bool {
    s.as_str()
        .and_then(|s| bs58::decode(s).into_vec().ok())
        .is_some_and(|b| b.len() == len)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn framing_and_parameter_errors() {
    let net = start();
    let rpc = Rpc::new(&net);

    // Parse error.
    let (status, text) = rpc.post_raw("{not json").await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["error"]["code"], -32700, "{v}");
    assert_eq!(v["id"], Value::Null);
    assert_eq!(v["jsonrpc"], "2.0");

    // Invalid request: no method; wrong jsonrpc version.
    let v = rpc.post(json!({"jsonrpc": "2.0", "id": 1})).await;
    assert_eq!(v["error"]["code"], -32600, "{v}");
    let v = rpc
        .post(json!({"jsonrpc": "1.0", "id": 1, "method": "getSlot"}))
        .await;
    assert_eq!(v["error"]["code"], -32600, "{v}");

    // Method not found.
    let e = rpc.err("getEverything", json!([])).await;
    assert_eq!(e["code"], -32601, "{e}");
    assert_eq!(e["message"], "Method not found");

    // Invalid params: wrong type, not a pubkey, missing, too many, object instead of array.
    let e = rpc.err("getBalance", json!([17])).await;
    assert_eq!(e["code"], -32602, "{e}");
    let e = rpc.err("getBalance", json!(["not-a-pubkey"])).await;
    assert_eq!(e["code"], -32602, "{e}");
    assert!(
        e["message"].as_str().unwrap().starts_with("Invalid param"),
        "{e}"
    );
    let e = rpc.err("getBalance", json!([])).await;
    assert_eq!(e["code"], -32602, "{e}");
    let e = rpc
        .err("getSlot", json!([{"commitment": "finalized"}, 1, 2]))
        .await;
    assert_eq!(e["code"], -32602, "{e}");
    let e = rpc.err("getSlot", json!({"commitment": "finalized"})).await;
    assert_eq!(e["code"], -32602, "{e}");
    let e = rpc
        .err("getSlot", json!([{"minContextSlot": "soon"}]))
        .await;
    assert_eq!(e["code"], -32602, "{e}");
    let e = rpc.err("getHealth", json!([1])).await;
    assert_eq!(e["code"], -32602, "{e}");
    let e = rpc.err("getSignatureStatuses", json!([["xyz"]])).await;
    assert_eq!(e["code"], -32602, "{e}");

    // Batches answer each request, in order, with their ids.
    let v = rpc
        .post(json!([
            {"jsonrpc": "2.0", "id": 1, "method": "getHealth"},
            {"jsonrpc": "2.0", "id": "two", "method": "nope"},
        ]))
        .await;
    let arr = v.as_array().expect("batch response");
    assert_eq!(arr.len(), 2);
    assert_eq!(arr[0]["id"], 1);
    assert_eq!(arr[0]["result"], "ok");
    assert_eq!(arr[1]["id"], "two");
    assert_eq!(arr[1]["error"]["code"], -32601);

    // A notification (no id) gets no JSON answer.
    let (status, text) = rpc
        .post_raw(r#"{"jsonrpc":"2.0","method":"getHealth"}"#)
        .await;
    assert_eq!(status, 200);
    assert!(text.is_empty(), "{text}");

    // GET /health like a validator.
    let body = reqwest::get(format!("{}/health", rpc.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "ok");
    net.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_methods() {
    let net = start();
    let rpc = Rpc::new(&net);

    assert_eq!(rpc.ok("getHealth", json!([])).await, "ok");
    let v = rpc.ok("getVersion", json!([])).await;
    assert!(v["solana-core"].as_str().unwrap().starts_with("3."), "{v}");
    assert!(v["feature-set"].is_u64(), "{v}");
    let v = rpc.ok("getGenesisHash", json!([])).await;
    assert!(is_base58_of_len(&v, 32), "{v}");
    assert_eq!(v, net.genesis_hash().to_string());

    let slot = rpc.slot().await;
    let height = rpc
        .ok("getBlockHeight", json!([{"commitment": "confirmed"}]))
        .await;
    assert!(height.is_u64(), "{height}");
    let info = rpc.ok("getEpochInfo", json!([])).await;
    for key in [
        "absoluteSlot",
        "blockHeight",
        "epoch",
        "slotIndex",
        "slotsInEpoch",
        "transactionCount",
    ] {
        assert!(info[key].is_u64(), "{key}: {info}");
    }
    assert_eq!(info["absoluteSlot"], slot);

    let v = rpc
        .ok("getLatestBlockhash", json!([{"commitment": "processed"}]))
        .await;
    assert_context(&v);
    assert!(is_base58_of_len(&v["value"]["blockhash"], 32), "{v}");
    let last_valid = v["value"]["lastValidBlockHeight"].as_u64().unwrap();
    assert_eq!(last_valid, height.as_u64().unwrap() + 150, "{v}");
    let hash = v["value"]["blockhash"].clone();
    let valid = rpc
        .ok(
            "isBlockhashValid",
            json!([hash, {"commitment": "processed"}]),
        )
        .await;
    assert_context(&valid);
    assert_eq!(valid["value"], true);
    let unknown = Hash::new_from_array([9; 32]).to_string();
    assert_eq!(
        rpc.ok("isBlockhashValid", json!([unknown])).await["value"],
        false
    );
    let e = rpc.err("isBlockhashValid", json!(["zz"])).await;
    assert_eq!(e["code"], -32602);

    // Without transactions or warps the blockhash stands still, whatever the wall time does
    // (solana-program-test's own 6.4 ms blockhash ticker is kept from running).
    let standing = rpc.latest_blockhash().await;
    for _ in 0..10 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        rpc.ok("getBalance", json!([Pubkey::new_unique().to_string()]))
            .await;
    }
    assert_eq!(rpc.latest_blockhash().await, standing);
    assert_eq!(rpc.slot().await, slot);

    assert_eq!(
        rpc.ok("getMinimumBalanceForRentExemption", json!([0]))
            .await,
        890_880
    );
    assert_eq!(
        rpc.ok(
            "getMinimumBalanceForRentExemption",
            json!([165, {"commitment": "finalized"}])
        )
        .await,
        2_039_280
    );

    // minContextSlot beyond the current slot.
    let e = rpc
        .err(
            "getBalance",
            json!([Pubkey::new_unique().to_string(), {"minContextSlot": slot + 1000}]),
        )
        .await;
    assert_eq!(e["code"], -32016, "{e}");
    assert_eq!(e["data"]["contextSlot"], slot, "{e}");

    // Prioritization fees: none yet, then the price of a transaction that paid one.
    let fees = rpc.ok("getRecentPrioritizationFees", json!([])).await;
    assert!(fees.as_array().unwrap().is_empty(), "{fees}");
    let faucet = net.faucet();
    let to = Pubkey::new_unique();
    rpc.send_ok(
        &[
            cu_price(777),
            transfer(&faucet.pubkey(), &to, 1_000_000_000),
        ],
        faucet,
        &[],
    )
    .await;
    let fees = rpc
        .ok("getRecentPrioritizationFees", json!([[to.to_string()]]))
        .await;
    let fees = fees.as_array().unwrap();
    assert_eq!(fees.len(), 1, "{fees:?}");
    assert!(fees[0]["slot"].is_u64());
    assert_eq!(fees[0]["prioritizationFee"], 777);
    let fees = rpc
        .ok(
            "getRecentPrioritizationFees",
            json!([[Pubkey::new_unique().to_string()]]),
        )
        .await;
    assert_eq!(fees[0]["prioritizationFee"], 777, "block minimum: {fees}");
    net.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_methods() {
    let net = start();
    let rpc = Rpc::new(&net);
    let faucet = net.faucet().pubkey().to_string();
    let missing = Pubkey::new_unique().to_string();

    let v = rpc
        .ok("getAccountInfo", json!([missing, {"encoding": "base64"}]))
        .await;
    assert_context(&v);
    assert!(v["value"].is_null(), "{v}");

    let v = rpc
        .ok(
            "getAccountInfo",
            json!([faucet, {"encoding": "base64", "commitment": "confirmed"}]),
        )
        .await;
    let acc = &v["value"];
    assert_eq!(acc["data"], json!(["", "base64"]), "{v}");
    assert_eq!(acc["owner"], "11111111111111111111111111111111");
    assert_eq!(acc["executable"], false);
    assert_eq!(acc["lamports"], backhaul_localnet::DEFAULT_FAUCET_LAMPORTS);
    assert!(acc["rentEpoch"].is_u64(), "{v}");
    assert_eq!(acc["space"], 0);
    // Default encoding is the legacy base58 string.
    let v = rpc.ok("getAccountInfo", json!([faucet])).await;
    assert_eq!(v["value"]["data"], "", "{v}");

    // The upgradeable ProgramData account, with base58 and a data slice.
    let pd = backhaul_localnet::program_data_address().to_string();
    let v = rpc
        .ok("getAccountInfo", json!([pd, {"encoding": "base58"}]))
        .await;
    let data = v["value"]["data"].as_array().unwrap();
    assert_eq!(data[1], "base58");
    let bytes = bs58::decode(data[0].as_str().unwrap()).into_vec().unwrap();
    assert_eq!(bytes.len(), 45);
    assert_eq!(&bytes[13..45], net.upgrade_authority().as_ref());
    let v = rpc
        .ok(
            "getAccountInfo",
            json!([pd, {"encoding": "base64", "dataSlice": {"offset": 13, "length": 32}}]),
        )
        .await;
    let sliced = BASE64_STANDARD
        .decode(v["value"]["data"][0].as_str().unwrap())
        .unwrap();
    assert_eq!(sliced, net.upgrade_authority().as_ref());
    assert_eq!(v["value"]["space"], 45);

    // base58 of more than 128 bytes is refused as Solana does.
    let e = rpc
        .err(
            "getAccountInfo",
            json!([spl_token_interface::ID.to_string(), {"encoding": "base58"}]),
        )
        .await;
    assert_eq!(e["code"], -32600, "{e}");
    // base64+zstd (what RpcClient asks for) works.
    let v = rpc
        .ok(
            "getAccountInfo",
            json!([spl_token_interface::ID.to_string(), {"encoding": "base64+zstd"}]),
        )
        .await;
    assert_eq!(v["value"]["data"][1], "base64+zstd");
    assert_eq!(v["value"]["executable"], true);

    let v = rpc
        .ok(
            "getMultipleAccounts",
            json!([[faucet, missing], {"encoding": "base64"}]),
        )
        .await;
    assert_context(&v);
    let values = v["value"].as_array().unwrap();
    assert_eq!(values.len(), 2);
    assert_eq!(
        values[0]["lamports"],
        backhaul_localnet::DEFAULT_FAUCET_LAMPORTS
    );
    assert!(values[1].is_null());
    let too_many: Vec<String> = (0..101).map(|_| Pubkey::new_unique().to_string()).collect();
    assert_eq!(
        rpc.err("getMultipleAccounts", json!([too_many])).await["code"],
        -32602
    );

    let v = rpc
        .ok("getBalance", json!([faucet, {"commitment": "finalized"}]))
        .await;
    assert_context(&v);
    assert_eq!(v["value"], backhaul_localnet::DEFAULT_FAUCET_LAMPORTS);
    assert_eq!(rpc.ok("getBalance", json!([missing])).await["value"], 0);

    // Overriding an account at runtime.
    let key = Pubkey::new_unique();
    let owner = Pubkey::new_unique();
    let r = rpc
        .ok(
            "backhaulSetAccount",
            json!([key.to_string(), {"lamports": 5_000_000, "data": [BASE64_STANDARD.encode([1, 2, 3]), "base64"], "owner": owner.to_string()}]),
        )
        .await;
    assert!(r["slot"].is_u64());
    let v = rpc
        .ok(
            "getAccountInfo",
            json!([key.to_string(), {"encoding": "base64"}]),
        )
        .await;
    assert_eq!(v["value"]["data"][0], BASE64_STANDARD.encode([1, 2, 3]));
    assert_eq!(v["value"]["owner"], owner.to_string());
    let listed = rpc
        .ok("getProgramAccounts", json!([owner.to_string()]))
        .await;
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["pubkey"], key.to_string());
    net.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_status_and_transaction_shapes() {
    let net = start();
    let rpc = Rpc::new(&net);
    let faucet = net.faucet();
    let to = Pubkey::new_unique();
    let slot_before = rpc.slot().await;
    let hash_before = rpc.latest_blockhash().await;

    // base58 (the default encoding).
    let tx = rpc
        .sign(
            &[transfer(&faucet.pubkey(), &to, 2_000_000_000)],
            faucet,
            &[],
        )
        .await;
    let sig = rpc.ok("sendTransaction", json!([b58(&tx)])).await;
    assert_eq!(sig, tx.signatures[0].to_string());
    // Every committed transaction moves to a new slot with a new blockhash.
    assert_eq!(rpc.slot().await, slot_before + 1);
    assert_ne!(rpc.latest_blockhash().await, hash_before);

    // The identical transaction again: already processed, reported by preflight.
    let e = rpc.send(&tx, json!({"encoding": "base64"})).await["error"].clone();
    assert_eq!(e["code"], -32002, "{e}");
    assert_eq!(e["data"]["err"], "AlreadyProcessed", "{e}");

    // base64, same instruction, fresh blockhash: a different transaction that lands.
    let tx2 = rpc
        .sign(
            &[transfer(&faucet.pubkey(), &to, 2_000_000_000)],
            faucet,
            &[],
        )
        .await;
    assert_ne!(tx2.signatures[0], tx.signatures[0]);
    let sig2 = rpc.ok("sendTransaction", json!([b64(&tx2), {"encoding": "base64", "preflightCommitment": "processed", "maxRetries": 0}])).await;
    assert_eq!(sig2, tx2.signatures[0].to_string());
    assert_eq!(rpc.balance(&to).await, 4_000_000_000);

    let e = rpc
        .err("sendTransaction", json!([b64(&tx2), {"encoding": "json"}]))
        .await;
    assert_eq!(e["code"], -32602, "{e}");

    // getSignatureStatuses: known, unknown, with searchTransactionHistory.
    let unknown = Signature::from([3u8; 64]).to_string();
    let v = rpc
        .ok(
            "getSignatureStatuses",
            json!([[sig, unknown], {"searchTransactionHistory": true}]),
        )
        .await;
    assert_context(&v);
    let st = &v["value"][0];
    assert_eq!(st["slot"], slot_before);
    assert!(st["confirmations"].is_null());
    assert!(st["err"].is_null());
    assert_eq!(st["status"], json!({"Ok": null}));
    assert_eq!(st["confirmationStatus"], "finalized");
    assert!(v["value"][1].is_null());

    // getTransaction, json.
    let t = rpc
        .ok(
            "getTransaction",
            json!([sig, {"encoding": "json", "commitment": "confirmed"}]),
        )
        .await;
    assert_eq!(t["slot"], slot_before);
    assert!(t["blockTime"].is_i64(), "{t}");
    assert!(
        t.get("version").is_none(),
        "no version without maxSupportedTransactionVersion: {t}"
    );
    let meta = &t["meta"];
    assert!(meta["err"].is_null());
    assert_eq!(meta["status"], json!({"Ok": null}));
    assert_eq!(meta["fee"], 5000);
    let pre = meta["preBalances"].as_array().unwrap();
    let post = meta["postBalances"].as_array().unwrap();
    assert_eq!(pre.len(), 3, "{meta}");
    assert_eq!(post.len(), 3);
    assert_eq!(
        pre[0].as_u64().unwrap() - post[0].as_u64().unwrap(),
        2_000_000_000 + 5000
    );
    assert_eq!(pre[1], 0);
    assert_eq!(post[1], 2_000_000_000);
    assert_eq!(meta["preTokenBalances"], json!([]));
    assert_eq!(meta["postTokenBalances"], json!([]));
    assert_eq!(meta["rewards"], json!([]));
    assert_eq!(
        meta["loadedAddresses"],
        json!({"writable": [], "readonly": []})
    );
    let logs: Vec<&str> = meta["logMessages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert_eq!(
        logs,
        [
            "Program 11111111111111111111111111111111 invoke [1]",
            "Program 11111111111111111111111111111111 success"
        ]
    );
    assert!(meta["computeUnitsConsumed"].is_u64());
    let msg = &t["transaction"]["message"];
    assert_eq!(t["transaction"]["signatures"], json!([sig]));
    assert_eq!(
        msg["header"],
        json!({"numRequiredSignatures": 1, "numReadonlySignedAccounts": 0, "numReadonlyUnsignedAccounts": 1})
    );
    assert_eq!(
        msg["accountKeys"],
        json!([
            faucet.pubkey().to_string(),
            to.to_string(),
            "11111111111111111111111111111111"
        ])
    );
    assert_eq!(
        msg["recentBlockhash"],
        tx.message.recent_blockhash.to_string()
    );
    assert_eq!(msg["instructions"][0]["programIdIndex"], 2);
    assert_eq!(msg["instructions"][0]["accounts"], json!([0, 1]));
    assert_eq!(
        msg["instructions"][0]["data"],
        bs58::encode(&tx.message.instructions[0].data).into_string()
    );

    // base64 and base58 round-trip the wire bytes; a version when the client says it knows them.
    let t = rpc
        .ok(
            "getTransaction",
            json!([sig, {"encoding": "base64", "maxSupportedTransactionVersion": 0}]),
        )
        .await;
    assert_eq!(t["transaction"], json!([b64(&tx), "base64"]));
    assert_eq!(t["version"], "legacy");
    let t = rpc.ok("getTransaction", json!([sig, "base58"])).await;
    assert_eq!(t["transaction"], json!([b58(&tx), "base58"]));

    assert!(rpc.ok("getTransaction", json!([unknown])).await.is_null());
    let e = rpc
        .err("getTransaction", json!([sig, {"commitment": "processed"}]))
        .await;
    assert_eq!(e["code"], -32602, "{e}");

    // A version-0 transaction: refused without maxSupportedTransactionVersion (-32015).
    let blockhash = rpc.latest_blockhash().await;
    let message = v0::Message::try_compile(
        &faucet.pubkey(),
        &[transfer(&faucet.pubkey(), &to, 1)],
        &[],
        blockhash,
    )
    .unwrap();
    let vtx = VersionedTransaction::try_new(VersionedMessage::V0(message), &[faucet]).unwrap();
    let wire = BASE64_STANDARD.encode(bincode::serialize(&vtx).unwrap());
    let vsig = rpc
        .ok("sendTransaction", json!([wire, {"encoding": "base64"}]))
        .await;
    let e = rpc.err("getTransaction", json!([vsig])).await;
    assert_eq!(e["code"], -32015, "{e}");
    let t = rpc
        .ok(
            "getTransaction",
            json!([vsig, {"maxSupportedTransactionVersion": 0}]),
        )
        .await;
    assert_eq!(t["version"], 0);
    assert_eq!(
        t["transaction"]["message"]["addressTableLookups"],
        json!([])
    );
    assert!(t["meta"]["err"].is_null());

    // Simulation of a good transaction.
    let tx3 = rpc
        .sign(&[transfer(&faucet.pubkey(), &to, 5)], faucet, &[])
        .await;
    let v = rpc
        .ok("simulateTransaction", json!([b64(&tx3), {"encoding": "base64", "sigVerify": true, "innerInstructions": true}]))
        .await;
    assert_context(&v);
    assert!(v["value"]["err"].is_null(), "{v}");
    assert_eq!(
        v["value"]["logs"][0],
        "Program 11111111111111111111111111111111 invoke [1]"
    );
    assert!(v["value"]["unitsConsumed"].is_u64(), "{v}");
    assert!(v["value"]["replacementBlockhash"].is_null());
    // Simulation does not commit.
    assert!(rpc
        .ok(
            "getSignatureStatuses",
            json!([[tx3.signatures[0].to_string()]])
        )
        .await["value"][0]
        .is_null());
    net.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_signature_failures() {
    let net = start();
    let rpc = Rpc::new(&net);
    let faucet = net.faucet();

    let e = rpc.err("sendTransaction", json!(["0OIl!!"])).await;
    assert_eq!(e["code"], -32602, "{e}");
    assert!(e["message"].as_str().unwrap().contains("base58"), "{e}");
    let e = rpc
        .err(
            "sendTransaction",
            json!([BASE64_STANDARD.encode([1u8, 2, 3, 4, 5]), {"encoding": "base64"}]),
        )
        .await;
    assert_eq!(e["code"], -32602, "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("failed to deserialize"),
        "{e}"
    );
    let e = rpc
        .err("sendTransaction", json!(["%%%", {"encoding": "base64"}]))
        .await;
    assert_eq!(e["code"], -32602, "{e}");
    let e = rpc
        .err(
            "simulateTransaction",
            json!([BASE64_STANDARD.encode([0u8; 2000]), {"encoding": "base64"}]),
        )
        .await;
    assert_eq!(e["code"], -32602, "{e}");

    // A valid transaction whose signature does not match.
    let mut tx = rpc
        .sign(
            &[transfer(
                &faucet.pubkey(),
                &Pubkey::new_unique(),
                1_000_000_000,
            )],
            faucet,
            &[],
        )
        .await;
    tx.signatures[0] = Keypair::new().sign_message(&tx.message_data());
    for skip in [false, true] {
        let e = rpc
            .send(&tx, json!({"encoding": "base64", "skipPreflight": skip}))
            .await["error"]
            .clone();
        assert_eq!(e["code"], -32003, "{e}");
        assert_eq!(e["message"], "Transaction signature verification failure");
    }
    let e = rpc
        .err(
            "simulateTransaction",
            json!([b64(&tx), {"encoding": "base64", "sigVerify": true}]),
        )
        .await;
    assert_eq!(e["code"], -32003, "{e}");
    // Without sigVerify the simulation runs.
    let v = rpc
        .ok(
            "simulateTransaction",
            json!([b64(&tx), {"encoding": "base64"}]),
        )
        .await;
    assert!(v["value"]["err"].is_null(), "{v}");
    assert!(rpc
        .ok(
            "getSignatureStatuses",
            json!([[tx.signatures[0].to_string()]])
        )
        .await["value"][0]
        .is_null());
    net.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blockhash_not_found_and_expiry() {
    let net = start();
    let rpc = Rpc::new(&net);
    let faucet = net.faucet();
    let to = Pubkey::new_unique();
    let ixs = [transfer(&faucet.pubkey(), &to, 1_000_000_000)];

    // A blockhash the bank never saw.
    let bogus = solana_sdk::transaction::Transaction::new_signed_with_payer(
        &ixs,
        Some(&faucet.pubkey()),
        &[faucet],
        Hash::new_from_array([5; 32]),
    );
    let e = rpc.send(&bogus, json!({"encoding": "base64"})).await["error"].clone();
    assert_eq!(e["code"], -32002, "{e}");
    assert_eq!(
        e["message"],
        "Transaction simulation failed: Blockhash not found"
    );
    assert_eq!(e["data"]["err"], "BlockhashNotFound");
    assert_eq!(e["data"]["logs"], json!([]));
    assert!(e["data"]["unitsConsumed"].is_u64(), "{e}");
    assert!(e["data"].get("accounts").is_some(), "{e}");
    let v = rpc
        .ok(
            "simulateTransaction",
            json!([b64(&bogus), {"encoding": "base64"}]),
        )
        .await;
    assert_eq!(v["value"]["err"], "BlockhashNotFound");
    // replaceRecentBlockhash makes it simulate against the latest blockhash.
    let v = rpc
        .ok(
            "simulateTransaction",
            json!([b64(&bogus), {"encoding": "base64", "replaceRecentBlockhash": true}]),
        )
        .await;
    assert!(v["value"]["err"].is_null(), "{v}");
    let replacement = &v["value"]["replacementBlockhash"];
    assert_eq!(
        replacement["blockhash"],
        rpc.latest_blockhash().await.to_string()
    );
    assert!(replacement["lastValidBlockHeight"].is_u64());
    let e = rpc
        .err("simulateTransaction", json!([b64(&bogus), {"encoding": "base64", "replaceRecentBlockhash": true, "sigVerify": true}]))
        .await;
    assert_eq!(e["code"], -32602, "{e}");

    // A real blockhash, expired on request.
    let old = rpc.sign(&ixs, faucet, &[]).await;
    let old_hash = old.message.recent_blockhash.to_string();
    assert_eq!(
        rpc.ok("isBlockhashValid", json!([old_hash])).await["value"],
        true
    );
    let r = rpc.ok("backhaulExpireBlockhashes", json!([])).await;
    assert!(r["advancedSlots"].as_u64().unwrap() > 150, "{r}");
    assert_ne!(r["blockhash"], old_hash);
    assert_eq!(
        rpc.ok("isBlockhashValid", json!([old_hash])).await["value"],
        false
    );
    assert_eq!(
        rpc.ok("isBlockhashValid", json!([r["blockhash"]])).await["value"],
        true
    );
    let e = rpc.send(&old, json!({"encoding": "base64"})).await["error"].clone();
    assert_eq!(e["code"], -32002, "{e}");
    assert_eq!(e["data"]["err"], "BlockhashNotFound");
    // Without preflight the signature comes back but the transaction is dropped, as on a cluster.
    let sig = rpc
        .ok(
            "sendTransaction",
            json!([b64(&old), {"encoding": "base64", "skipPreflight": true}]),
        )
        .await;
    assert_eq!(sig, old.signatures[0].to_string());
    assert!(rpc.ok("getSignatureStatuses", json!([[sig]])).await["value"][0].is_null());
    assert_eq!(rpc.balance(&to).await, 0);
    net.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_token_transfer_is_recorded_with_its_error() {
    let net = start();
    let rpc = Rpc::new(&net);
    let faucet = net.faucet();
    let t = setup_tokens(&rpc, faucet, 100).await;

    let v = rpc
        .ok(
            "getTokenAccountBalance",
            json!([t.alice_tokens.to_string(), {"commitment": "confirmed"}]),
        )
        .await;
    assert_context(&v);
    assert_eq!(
        v["value"],
        json!({"amount": "100", "decimals": 6, "uiAmount": 0.0001, "uiAmountString": "0.0001"})
    );
    let e = rpc
        .err(
            "getTokenAccountBalance",
            json!([faucet.pubkey().to_string()]),
        )
        .await;
    assert_eq!(e["code"], -32602, "{e}");
    assert_eq!(e["message"], "Invalid param: not a Token account");
    let e = rpc
        .err(
            "getTokenAccountBalance",
            json!([Pubkey::new_unique().to_string()]),
        )
        .await;
    assert_eq!(e["message"], "Invalid param: could not find account");

    // 1000 > 100: SPL Token fails with InsufficientFunds (custom error 1).
    let ix = token_transfer(&t.alice_tokens, &t.bob_tokens, &t.alice.pubkey(), 1000);
    let tx = rpc.sign(std::slice::from_ref(&ix), &t.alice, &[]).await;
    let e = rpc.send(&tx, json!({"encoding": "base64"})).await["error"].clone();
    assert_eq!(e["code"], -32002, "{e}");
    assert_eq!(
        e["message"],
        "Transaction simulation failed: Error processing Instruction 0: custom program error: 0x1"
    );
    let expected_err = json!({"InstructionError": [0, {"Custom": 1}]});
    assert_eq!(e["data"]["err"], expected_err);
    let logs = e["data"]["logs"].to_string();
    assert!(logs.contains("Error: insufficient funds"), "{logs}");
    assert!(
        e["data"]["unitsConsumed"].as_u64().unwrap() > 0,
        "SBF token counts CUs: {e}"
    );

    // Without preflight it executes, fails, pays the fee and is recorded.
    let alice_before = rpc.balance(&t.alice.pubkey()).await;
    let sig = rpc
        .ok(
            "sendTransaction",
            json!([b64(&tx), {"encoding": "base64", "skipPreflight": true}]),
        )
        .await;
    assert_eq!(sig, tx.signatures[0].to_string());
    let st = rpc.status(&tx.signatures[0]).await;
    assert_eq!(st["err"], expected_err);
    assert_eq!(st["status"], json!({"Err": expected_err}));
    assert_eq!(rpc.balance(&t.alice.pubkey()).await, alice_before - 5000);
    let got = rpc.ok("getTransaction", json!([sig, "json"])).await;
    let meta = &got["meta"];
    assert_eq!(meta["err"], expected_err);
    assert_eq!(meta["status"], json!({"Err": expected_err}));
    assert_eq!(meta["fee"], 5000);
    assert_eq!(
        meta["preBalances"][0].as_u64().unwrap() - meta["postBalances"][0].as_u64().unwrap(),
        5000
    );
    assert!(
        meta["logMessages"]
            .to_string()
            .contains("Error: insufficient funds"),
        "{meta}"
    );
    assert!(meta["computeUnitsConsumed"].as_u64().unwrap() > 0);
    // Token balances before and after (unchanged).
    let pre = meta["preTokenBalances"].as_array().unwrap();
    let post = meta["postTokenBalances"].as_array().unwrap();
    assert_eq!(pre.len(), 2, "{meta}");
    assert_eq!(pre, post);
    let alice_entry = pre
        .iter()
        .find(|b| b["owner"] == t.alice.pubkey().to_string())
        .expect("alice's token balance");
    assert_eq!(alice_entry["mint"], t.mint.to_string());
    assert_eq!(
        alice_entry["programId"],
        spl_token_interface::ID.to_string()
    );
    assert_eq!(alice_entry["uiTokenAmount"]["amount"], "100");
    assert!(alice_entry["accountIndex"].is_u64());

    // And a transfer that fits, with token balances moving.
    let ix = token_transfer(&t.alice_tokens, &t.bob_tokens, &t.alice.pubkey(), 40);
    let sig = rpc.send_ok(&[ix], &t.alice, &[]).await;
    let got = rpc.ok("getTransaction", json!([sig.to_string()])).await;
    let bob_post = got["meta"]["postTokenBalances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["owner"] == t.bob.pubkey().to_string())
        .cloned()
        .expect("bob's balance");
    assert_eq!(bob_post["uiTokenAmount"]["amount"], "40");
    assert_eq!(
        rpc.ok("getTokenAccountBalance", json!([t.bob_tokens.to_string()]))
            .await["value"]["amount"],
        "40"
    );
    net.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn program_accounts_with_filters() {
    let net = start();
    let rpc = Rpc::new(&net);
    let t = setup_tokens(&rpc, net.faucet(), 7).await;
    let token = spl_token_interface::ID.to_string();

    let all = rpc
        .ok("getProgramAccounts", json!([token, {"encoding": "base64"}]))
        .await;
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 3, "mint and two token accounts: {all:?}");
    for entry in all {
        assert!(entry["pubkey"].is_string());
        assert_eq!(entry["account"]["owner"], token);
        assert_eq!(entry["account"]["data"][1], "base64");
    }

    let accounts = rpc
        .ok(
            "getProgramAccounts",
            json!([token, {"encoding": "base64", "filters": [{"dataSize": 165}]}]),
        )
        .await;
    let mut keys: Vec<String> = accounts
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["pubkey"].as_str().unwrap().to_string())
        .collect();
    keys.sort();
    let mut expected = vec![t.alice_tokens.to_string(), t.bob_tokens.to_string()];
    expected.sort();
    assert_eq!(keys, expected);

    let mints = rpc
        .ok(
            "getProgramAccounts",
            json!([token, {"encoding": "base64", "filters": [{"dataSize": 82}]}]),
        )
        .await;
    assert_eq!(mints.as_array().unwrap().len(), 1);
    assert_eq!(mints[0]["pubkey"], t.mint.to_string());

    // memcmp on the owner field (offset 32), base58 and base64.
    let bob = t.bob.pubkey();
    for bytes in [
        json!({"offset": 32, "bytes": bob.to_string()}),
        json!({"offset": 32, "bytes": BASE64_STANDARD.encode(bob.as_ref()), "encoding": "base64"}),
    ] {
        let v = rpc
            .ok(
                "getProgramAccounts",
                json!([token, {"encoding": "base64", "filters": [{"dataSize": 165}, {"memcmp": bytes}]}]),
            )
            .await;
        let arr = v.as_array().unwrap();
        assert_eq!(arr.len(), 1, "{v}");
        assert_eq!(arr[0]["pubkey"], t.bob_tokens.to_string());
    }
    // No match.
    let v = rpc
        .ok(
            "getProgramAccounts",
            json!([token, {"filters": [{"memcmp": {"offset": 32, "bytes": Pubkey::new_unique().to_string()}}]}]),
        )
        .await;
    assert_eq!(v, json!([]));

    // withContext wraps the list.
    let v = rpc
        .ok("getProgramAccounts", json!([token, {"encoding": "base64", "withContext": true, "filters": [{"dataSize": 82}]}]))
        .await;
    assert_context(&v);
    assert_eq!(v["value"].as_array().unwrap().len(), 1);

    // jsonParsed token accounts.
    let v = rpc
        .ok(
            "getProgramAccounts",
            json!([token, {"encoding": "jsonParsed", "filters": [{"memcmp": {"offset": 32, "bytes": t.alice.pubkey().to_string()}}]}]),
        )
        .await;
    let parsed = &v[0]["account"]["data"]["parsed"];
    assert_eq!(parsed["type"], "account", "{v}");
    assert_eq!(parsed["info"]["tokenAmount"]["amount"], "7");
    assert_eq!(parsed["info"]["tokenAmount"]["decimals"], 6);

    // Bad filters.
    let e = rpc
        .err("getProgramAccounts", json!([token, {"filters": [{"memcmp": {"offset": 0, "bytes": bs58::encode([0u8; 200]).into_string()}}]}]))
        .await;
    assert_eq!(e["code"], -32602, "{e}");
    let five = vec![json!({"dataSize": 1}); 5];
    let e = rpc
        .err("getProgramAccounts", json!([token, {"filters": five}]))
        .await;
    assert_eq!(e["code"], -32602, "{e}");
    net.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_warp() {
    let net = start_with(LocalnetConfig {
        unix_timestamp: Some(1_700_000_000),
        ..Default::default()
    });
    let rpc = Rpc::new(&net);
    assert_eq!(rpc.clock_ts().await, 1_700_000_000);
    let slot = rpc.slot().await;
    let hash = rpc.latest_blockhash().await;

    let r = rpc
        .ok("backhaulWarpClock", json!([{"advanceSeconds": 3600}]))
        .await;
    assert_eq!(r["unixTimestamp"], 1_700_003_600);
    assert_eq!(r["slot"], slot + 1);
    assert_eq!(rpc.clock_ts().await, 1_700_003_600);
    assert_ne!(
        rpc.latest_blockhash().await,
        hash,
        "a warp makes a new blockhash"
    );

    let r = rpc
        .ok(
            "backhaulWarpClock",
            json!([{"unixTimestamp": 1_800_000_000i64}]),
        )
        .await;
    assert_eq!(r["unixTimestamp"], 1_800_000_000i64);

    // Transactions (new slots) keep the warped time instead of the bank's own estimate.
    let faucet = net.faucet();
    rpc.send_ok(
        &[transfer(
            &faucet.pubkey(),
            &Pubkey::new_unique(),
            1_000_000_000,
        )],
        faucet,
        &[],
    )
    .await;
    assert_eq!(rpc.clock_ts().await, 1_800_000_000);

    // Never backward; exactly one argument.
    let e = rpc
        .err(
            "backhaulWarpClock",
            json!([{"unixTimestamp": 1_700_000_000}]),
        )
        .await;
    assert_eq!(e["code"], -32602, "{e}");
    assert_eq!(rpc.clock_ts().await, 1_800_000_000);
    for bad in [
        json!([{}]),
        json!([{"unixTimestamp": 1_900_000_000i64, "advanceSeconds": 1}]),
        json!([]),
        json!([{"seconds": 5}]),
    ] {
        let e = rpc.err("backhaulWarpClock", bad).await;
        assert_eq!(e["code"], -32602, "{e}");
    }
    net.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_follows_wall_time_when_asked() {
    let net = start_with(LocalnetConfig {
        unix_timestamp: Some(1_700_000_000),
        follow_wall_clock: true,
        ..Default::default()
    });
    let rpc = Rpc::new(&net);
    let start = rpc.clock_ts().await;
    assert!((1_700_000_000..1_700_000_002).contains(&start), "{start}");
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let later = rpc.clock_ts().await;
    assert!(later >= start + 2, "{start} -> {later}");
    // Warps add to it.
    let r = rpc
        .ok("backhaulWarpClock", json!([{"advanceSeconds": 1000}]))
        .await;
    assert!(r["unixTimestamp"].as_i64().unwrap() >= later + 1000, "{r}");
    net.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests() {
    let net = start();
    let rpc = std::sync::Arc::new(Rpc::new(&net));
    let receivers: Vec<Pubkey> = (0..16).map(|_| Pubkey::new_unique()).collect();
    let mut tasks = Vec::new();
    for (i, key) in receivers.iter().enumerate() {
        let rpc = rpc.clone();
        let key = *key;
        tasks.push(tokio::spawn(async move {
            let sig = rpc
                .ok(
                    "requestAirdrop",
                    json!([key.to_string(), 1_000_000_000 + i as u64]),
                )
                .await;
            for _ in 0..5 {
                rpc.ok("getLatestBlockhash", json!([])).await;
                rpc.ok("getBalance", json!([key.to_string()])).await;
            }
            Signature::from_str(sig.as_str().unwrap()).unwrap()
        }));
    }
    let mut sigs = Vec::new();
    for t in tasks {
        sigs.push(t.await.unwrap());
    }
    let unique: std::collections::HashSet<_> = sigs.iter().collect();
    assert_eq!(unique.len(), sigs.len());
    for (i, key) in receivers.iter().enumerate() {
        assert_eq!(rpc.balance(key).await, 1_000_000_000 + i as u64);
    }
    for sig in &sigs {
        assert!(rpc.status(sig).await["err"].is_null());
    }
    let info = rpc.ok("getEpochInfo", json!([])).await;
    assert_eq!(info["transactionCount"], 16);
    net.shutdown();
}
