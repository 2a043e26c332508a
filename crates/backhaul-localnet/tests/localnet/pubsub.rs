//! Websocket PubSub: the real `PubsubClient` for each subscription kind, and raw websocket
//! messages for framing errors, unsubscribing and the limits.

use crate::common::*;
use backhaul_localnet::{LocalnetConfig, PubsubLimits};
use base64::prelude::{Engine, BASE64_STANDARD};
use futures::stream::BoxStream;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use solana_client::rpc_config::{
    RpcAccountInfoConfig, RpcProgramAccountsConfig, RpcSignatureSubscribeConfig,
    RpcTransactionLogsConfig, RpcTransactionLogsFilter, UiAccountEncoding,
};
use solana_client::rpc_filter::{Memcmp, RpcFilterType};
use solana_client::rpc_response::{ProcessedSignatureResult, RpcSignatureResult};
use solana_commitment_config::CommitmentConfig;
use solana_pubsub_client::nonblocking::pubsub_client::PubsubClient;
use solana_sdk::program_pack::Pack;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a notification may take before the test fails.
const WAIT: Duration = Duration::from_secs(20);

async fn next<T>(stream: &mut BoxStream<'_, T>, what: &str) -> T {
    tokio::time::timeout(WAIT, stream.next())
        .await
        .unwrap_or_else(|_| panic!("no {what} notification within {WAIT:?}"))
        .unwrap_or_else(|| panic!("the {what} stream ended"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_client_gets_every_kind_of_notification() {
    let net = start();
    let rpc = Rpc::new(&net);
    let faucet = net.faucet();
    // Where web3.js and solana-test-validator put it: the RPC port + 1.
    assert_eq!(net.ws_addr().port(), net.local_addr().port() + 1);
    assert_eq!(net.ws_url(), format!("ws://{}", net.ws_addr()));
    let client = PubsubClient::new(net.ws_url().as_str())
        .await
        .expect("connect to the websocket endpoint");

    let tokens = setup_tokens(&rpc, faucet, 1_000).await;
    let to = Keypair::new().pubkey();

    let (mut slots, _unsub_slots) = client.slot_subscribe().await.expect("slotSubscribe");
    let (mut account, _unsub_account) = client
        .account_subscribe(
            &to,
            Some(RpcAccountInfoConfig {
                encoding: Some(UiAccountEncoding::Base64),
                commitment: Some(CommitmentConfig::confirmed()),
                ..Default::default()
            }),
        )
        .await
        .expect("accountSubscribe");
    let (mut logs, _unsub_logs) = client
        .logs_subscribe(
            RpcTransactionLogsFilter::Mentions(vec![to.to_string()]),
            RpcTransactionLogsConfig {
                commitment: Some(CommitmentConfig::confirmed()),
            },
        )
        .await
        .expect("logsSubscribe");
    // Token accounts of this mint only (dataSize + memcmp on the mint), parsed as JSON.
    let (mut program, _unsub_program) = client
        .program_subscribe(
            &spl_token_interface::ID,
            Some(RpcProgramAccountsConfig {
                filters: Some(vec![
                    RpcFilterType::DataSize(spl_token_interface::state::Account::LEN as u64),
                    RpcFilterType::Memcmp(Memcmp::new_base58_encoded(0, tokens.mint.as_ref())),
                ]),
                account_config: RpcAccountInfoConfig {
                    encoding: Some(UiAccountEncoding::JsonParsed),
                    ..Default::default()
                },
                ..Default::default()
            }),
        )
        .await
        .expect("programSubscribe");

    // A transfer whose signature is subscribed before it is sent, as clients do.
    let slot_before = rpc.slot().await;
    let tx = rpc
        .sign(&[transfer(&faucet.pubkey(), &to, 3_000_000)], faucet, &[])
        .await;
    let sig = tx.signatures[0];
    let (mut signature, _unsub_sig) = client
        .signature_subscribe(
            &sig,
            Some(RpcSignatureSubscribeConfig {
                commitment: Some(CommitmentConfig::finalized()),
                enable_received_notification: None,
            }),
        )
        .await
        .expect("signatureSubscribe");
    let sent = rpc
        .ok("sendTransaction", json!([b64(&tx), {"encoding": "base64"}]))
        .await;
    assert_eq!(sent, sig.to_string());
    let status = rpc.status(&sig).await;

    let n = next(&mut signature, "signature").await;
    assert_eq!(
        n.value,
        RpcSignatureResult::ProcessedSignature(ProcessedSignatureResult { err: None })
    );
    assert_eq!(n.context.slot, status["slot"].as_u64().unwrap());
    // The subscription ends with its notification.
    assert!(
        tokio::time::timeout(Duration::from_secs(2), signature.next())
            .await
            .map_or(true, |n| n.is_none()),
        "a signature subscription notifies once"
    );

    let n = next(&mut account, "account").await;
    assert_eq!(n.value.lamports, 3_000_000);
    assert_eq!(
        n.value.owner,
        solana_system_interface::program::ID.to_string()
    );
    assert_eq!(
        n.context.slot, slot_before,
        "the slot the transfer landed in"
    );

    let n = next(&mut logs, "logs").await;
    assert_eq!(n.value.signature, sig.to_string());
    assert!(n.value.err.is_none());
    assert_eq!(
        n.value.logs,
        [
            "Program 11111111111111111111111111111111 invoke [1]",
            "Program 11111111111111111111111111111111 success"
        ]
    );

    let n = next(&mut slots, "slot").await;
    assert_eq!(n.parent + 1, n.slot);
    assert_eq!(
        n.slot,
        slot_before + 1,
        "the transfer ended slot {slot_before}"
    );
    assert!(n.root <= n.slot);

    // A token transfer: programSubscribe sees both token accounts of the mint change.
    let ix = token_transfer(
        &tokens.alice_tokens,
        &tokens.bob_tokens,
        &tokens.alice.pubkey(),
        400,
    );
    let token_sig = rpc.send_ok(&[ix], &tokens.alice, &[]).await;
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..2 {
        let n = next(&mut program, "program").await;
        let info = &n.value.account.data;
        let parsed = serde_json::to_value(info).unwrap();
        let amount = parsed["parsed"]["info"]["tokenAmount"]["amount"]
            .as_str()
            .unwrap_or_else(|| panic!("jsonParsed token account: {parsed}"))
            .to_string();
        assert_eq!(parsed["parsed"]["info"]["mint"], tokens.mint.to_string());
        seen.insert(n.value.pubkey, amount);
    }
    assert_eq!(
        seen,
        [
            (tokens.alice_tokens.to_string(), "600".to_string()),
            (tokens.bob_tokens.to_string(), "400".to_string()),
        ]
        .into_iter()
        .collect()
    );
    // The slot stream keeps going with every committed transaction.
    let token_slot = rpc.status(&token_sig).await["slot"].as_u64().unwrap();
    assert_eq!(token_slot, slot_before + 1);
    let n = next(&mut slots, "slot").await;
    assert_eq!((n.parent, n.slot), (token_slot, token_slot + 1));

    // A signature processed before anyone subscribed is notified at once.
    let (mut late, _unsub_late) = client
        .signature_subscribe(&sig, None)
        .await
        .expect("signatureSubscribe after the fact");
    let n = next(&mut late, "signature (already processed)").await;
    assert_eq!(
        n.value,
        RpcSignatureResult::ProcessedSignature(ProcessedSignatureResult { err: None })
    );

    // A failed transaction is notified with its error, to its signature and logs subscribers.
    let (mut all_logs, _unsub_all) = client
        .logs_subscribe(
            RpcTransactionLogsFilter::All,
            RpcTransactionLogsConfig { commitment: None },
        )
        .await
        .expect("logsSubscribe all");
    let too_much = rpc
        .sign(
            &[token_transfer(
                &tokens.alice_tokens,
                &tokens.bob_tokens,
                &tokens.alice.pubkey(),
                10_000,
            )],
            &tokens.alice,
            &[],
        )
        .await;
    let (mut failed, _unsub_failed) = client
        .signature_subscribe(&too_much.signatures[0], None)
        .await
        .expect("signatureSubscribe");
    rpc.ok(
        "sendTransaction",
        json!([b64(&too_much), {"encoding": "base64", "skipPreflight": true}]),
    )
    .await;
    let n = next(&mut failed, "signature (failed)").await;
    let RpcSignatureResult::ProcessedSignature(result) = n.value else {
        panic!("expected a processed notification: {:?}", n.value)
    };
    assert!(result.err.is_some(), "the failure is reported");
    let n = next(&mut all_logs, "logs (all)").await;
    assert_eq!(n.value.signature, too_much.signatures[0].to_string());
    assert!(n.value.err.is_some());
    assert!(
        n.value
            .logs
            .iter()
            .any(|l| l.contains("insufficient funds")),
        "{:?}",
        n.value.logs
    );

    drop((
        slots, account, logs, program, signature, late, all_logs, failed,
    ));
    client.shutdown().await.expect("clean shutdown");
    net.shutdown();
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn connect(url: &str) -> Ws {
    let (ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .unwrap_or_else(|e| panic!("websocket connect to {url}: {e}"));
    ws
}

async fn send_text(ws: &mut Ws, text: &str) {
    ws.send(Message::text(text.to_string()))
        .await
        .expect("websocket send");
}

/// The next text message, parsed.
async fn recv(ws: &mut Ws) -> Value {
    loop {
        let message = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a websocket message in time")
            .expect("the connection is open")
            .expect("a websocket message");
        match message {
            Message::Text(text) => {
                return serde_json::from_str(text.as_str())
                    .unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
            }
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected websocket message: {other:?}"),
        }
    }
}

/// Sends a request and returns its response (which must carry `id`).
async fn request(ws: &mut Ws, id: u64, method: &str, params: Value) -> Value {
    send_text(
        ws,
        &json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string(),
    )
    .await;
    let response = recv(ws).await;
    assert_eq!(response["jsonrpc"], "2.0", "{response}");
    assert_eq!(response["id"], id, "{response}");
    response
}

async fn subscribe(ws: &mut Ws, id: u64, method: &str, params: Value) -> u64 {
    let response = request(ws, id, method, params).await;
    response["result"]
        .as_u64()
        .unwrap_or_else(|| panic!("{method} refused: {response}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn framing_errors_unsubscribe_and_received_notifications() {
    let net = start();
    let rpc = Rpc::new(&net);
    let faucet = net.faucet();
    let mut ws = connect(&net.ws_url()).await;

    // Malformed JSON: a parse error, and the connection stays usable.
    send_text(&mut ws, "{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\":").await;
    let e = recv(&mut ws).await;
    assert_eq!(e["error"]["code"], -32700, "{e}");
    assert_eq!(e["id"], Value::Null);
    send_text(&mut ws, r#"{"jsonrpc":"2.0","id":2,"method":7}"#).await;
    let e = recv(&mut ws).await;
    assert_eq!(e["error"]["code"], -32600, "{e}");
    let e = request(&mut ws, 3, "blockSubscribe", json!(["all"])).await;
    assert_eq!(e["error"]["code"], -32601, "{e}");
    let e = request(&mut ws, 4, "accountSubscribe", json!(["not-a-key"])).await;
    assert_eq!(e["error"]["code"], -32602, "{e}");
    assert_eq!(
        e["error"]["message"],
        "Invalid Request: Invalid pubkey provided"
    );
    let two = [
        Pubkey::new_unique().to_string(),
        Pubkey::new_unique().to_string(),
    ];
    let e = request(&mut ws, 5, "logsSubscribe", json!([{"mentions": two}])).await;
    assert_eq!(
        e["error"]["message"], "Invalid Request: Only 1 address supported",
        "{e}"
    );
    let e = request(&mut ws, 6, "signatureSubscribe", json!([])).await;
    assert_eq!(e["error"]["code"], -32602, "{e}");
    let e = request(
        &mut ws,
        7,
        "programSubscribe",
        json!([spl_token_interface::ID.to_string(), {"filters": [{"dataSize": 1}, {"dataSize": 2}, {"dataSize": 3}, {"dataSize": 4}, {"dataSize": 5}]}]),
    )
    .await;
    assert_eq!(e["error"]["code"], -32602, "{e}");
    let e = request(&mut ws, 8, "slotUnsubscribe", json!([123_456])).await;
    assert_eq!(e["error"]["code"], -32602, "{e}");
    assert_eq!(e["error"]["message"], "Invalid subscription id.");
    // A JSON-RPC notification (no id) gets no answer; the next request is answered in order.
    send_text(&mut ws, r#"{"jsonrpc":"2.0","method":"slotSubscribe"}"#).await;

    // Two slot subscriptions; one is removed: only the other is notified.
    let first = subscribe(&mut ws, 10, "slotSubscribe", json!([])).await;
    let second = subscribe(&mut ws, 11, "slotSubscribe", json!([])).await;
    assert!(second > first, "ids increase: {first} {second}");
    let ok = request(&mut ws, 12, "slotUnsubscribe", json!([first])).await;
    assert_eq!(ok["result"], true, "{ok}");
    let again = request(&mut ws, 13, "slotUnsubscribe", json!([first])).await;
    assert_eq!(
        again["error"]["message"], "Invalid subscription id.",
        "{again}"
    );

    // signatureSubscribe with enableReceivedNotification: received, then processed.
    let tx = rpc
        .sign(
            &[transfer(&faucet.pubkey(), &Pubkey::new_unique(), 1_000_000)],
            faucet,
            &[],
        )
        .await;
    let sig_sub = subscribe(
        &mut ws,
        14,
        "signatureSubscribe",
        json!([tx.signatures[0].to_string(), {"commitment": "confirmed", "enableReceivedNotification": true}]),
    )
    .await;
    let slot = rpc.slot().await;
    rpc.ok("sendTransaction", json!([b64(&tx), {"encoding": "base64"}]))
        .await;
    let received = recv(&mut ws).await;
    assert_eq!(
        received,
        json!({"jsonrpc": "2.0", "method": "signatureNotification",
               "params": {"result": {"context": {"slot": slot}, "value": "receivedSignature"},
                          "subscription": sig_sub}})
    );
    let processed = recv(&mut ws).await;
    assert_eq!(
        processed,
        json!({"jsonrpc": "2.0", "method": "signatureNotification",
               "params": {"result": {"context": {"slot": slot}, "value": {"err": null}},
                          "subscription": sig_sub}})
    );
    // Then the new slot, for the remaining slot subscription only.
    let n = recv(&mut ws).await;
    assert_eq!(n["method"], "slotNotification", "{n}");
    assert_eq!(n["params"]["subscription"], second, "{n}");
    assert_eq!(
        n["params"]["result"],
        json!({"parent": slot, "root": slot, "slot": slot + 1})
    );
    // The signature subscription is over.
    let e = request(&mut ws, 15, "signatureUnsubscribe", json!([sig_sub])).await;
    assert_eq!(e["error"]["message"], "Invalid subscription id.", "{e}");

    // The HTTP port accepts the websocket upgrade too (and still answers GET / with `ok`).
    let http_ws_url = format!("ws://{}", net.local_addr());
    let mut on_http = connect(&http_ws_url).await;
    let on_http_sub = subscribe(
        &mut on_http,
        1,
        "accountSubscribe",
        json!([faucet.pubkey().to_string(), {"encoding": "base64"}]),
    )
    .await;
    let (status, body) = rpc.get_raw("/").await;
    assert_eq!((status.as_u16(), body.as_str()), (200, "ok"));
    // backhaulSetAccount outside the runtime is notified too.
    let set = Pubkey::new_unique();
    let sub_set = subscribe(
        &mut on_http,
        2,
        "accountSubscribe",
        json!([set.to_string(), {"encoding": "base64"}]),
    )
    .await;
    rpc.ok(
        "backhaulSetAccount",
        json!([set.to_string(), {"lamports": 777, "owner": Pubkey::new_unique().to_string(), "data": BASE64_STANDARD.encode(b"abc")}]),
    )
    .await;
    let n = recv(&mut on_http).await;
    assert_eq!(n["params"]["subscription"], sub_set, "{n}");
    assert_eq!(n["params"]["result"]["value"]["lamports"], 777);
    assert_eq!(
        n["params"]["result"]["value"]["data"],
        json!([BASE64_STANDARD.encode(b"abc"), "base64"])
    );
    // The faucet pays for a transfer: its subscriber sees the new balance.
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
    let n = recv(&mut on_http).await;
    assert_eq!(n["params"]["subscription"], on_http_sub, "{n}");
    assert_eq!(
        n["params"]["result"]["value"]["lamports"],
        rpc.balance(&faucet.pubkey()).await
    );
    net.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_and_connection_limits() {
    let net = start_with(LocalnetConfig {
        pubsub_limits: PubsubLimits {
            max_connections: 2,
            max_subscriptions_per_connection: 3,
            ..PubsubLimits::default()
        },
        ..Default::default()
    });
    let mut ws = connect(&net.ws_url()).await;
    let mut ids = Vec::new();
    for id in 0..3 {
        ids.push(subscribe(&mut ws, id, "slotSubscribe", json!([])).await);
    }
    let refused = request(&mut ws, 3, "logsSubscribe", json!(["all"])).await;
    assert_eq!(refused["error"]["code"], -32603, "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("Subscription refused") && message.contains('3'),
        "{message}"
    );
    // Freed by unsubscribing.
    let ok = request(&mut ws, 4, "slotUnsubscribe", json!([ids[0]])).await;
    assert_eq!(ok["result"], true);
    subscribe(&mut ws, 5, "logsSubscribe", json!(["all"])).await;

    // The limit is per connection.
    let mut other = connect(&net.ws_url()).await;
    subscribe(&mut other, 1, "slotSubscribe", json!([])).await;

    // A third connection is refused with HTTP 503 until one closes.
    match tokio_tungstenite::connect_async(net.ws_url()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 503);
            let body =
                String::from_utf8_lossy(response.body().as_deref().unwrap_or_default()).to_string();
            assert!(body.contains("too many websocket connections"), "{body}");
        }
        Err(e) => panic!("expected HTTP 503, got {e}"),
        Ok(_) => panic!("a third connection was accepted over the limit of 2"),
    }
    other.close(None).await.expect("close");
    drop(other);
    let mut third = None;
    for _ in 0..100 {
        if let Ok((ws, _)) = tokio_tungstenite::connect_async(net.ws_url()).await {
            third = Some(ws);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut third = third.expect("a connection is accepted again once one closed");
    subscribe(&mut third, 1, "slotSubscribe", json!([])).await;

    // Plain HTTP on the websocket port says what the port is for.
    let (status, body) = Rpc::for_url(&format!("http://{}", net.ws_addr()))
        .get_raw("/")
        .await;
    assert_eq!(status.as_u16(), 426, "{body}");
    assert!(body.contains("websocket"), "{body}");
    net.shutdown();
}

#[test]
fn explicit_websocket_address_and_taken_port_plus_one() {
    // An explicit websocket address is used as given.
    let ws_addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let net = start_with(LocalnetConfig {
        ws_listen: Some(ws_addr),
        ..Default::default()
    });
    assert_eq!(net.ws_addr(), ws_addr);
    net.shutdown();

    // With an explicit RPC port whose port + 1 is taken, start fails and says what to do.
    // (An ephemeral port is held open; the port below it must be free for the RPC side.)
    let (_blocker, listen) = (0..50)
        .find_map(|_| {
            let blocker = std::net::TcpListener::bind("127.0.0.1:0").ok()?;
            let below = blocker.local_addr().ok()?.port().checked_sub(1)?;
            let listen = std::net::SocketAddr::from(([127, 0, 0, 1], below));
            drop(std::net::TcpListener::bind(listen).ok()?);
            Some((blocker, listen))
        })
        .expect("a free port just below a taken one");
    let err = backhaul_localnet::Localnet::start(LocalnetConfig {
        listen,
        ..Default::default()
    })
    .err()
    .expect("port + 1 is taken");
    let message = format!("{err:#}");
    assert!(
        message.contains("RPC port + 1") && message.contains("ws_listen"),
        "{message}"
    );
}
