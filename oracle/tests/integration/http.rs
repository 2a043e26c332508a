//! The HTTP server under attack: rate limits charged to verified signers, per-address buckets,
//! stalled connections, secrets in the RPC URL, read endpoints served from memory, and the
//! settings file named by the environment.

use crate::common::*;
use backhaul_protocol::api::{EpochSummary, ItemResult, RejectReason};
use backhaul_protocol::dataset::hex;
use backhaul_protocol::UsageReceipt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn start(db: &Db, change: impl FnOnce(&mut backhaul_oracle::Settings)) -> TestOracle {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut s = settings(dir.path(), db);
    change(&mut s);
    TestOracle::start_with(chain(genesis()), dir, s).await
}

#[tokio::test]
async fn junk_naming_a_node_costs_that_node_none_of_its_rate_limit() {
    for db in databases().await {
        // Ten items a second, a burst of a hundred.
        let o = start(&db, |s| s.per_key_items_per_sec = 10).await;
        let w = World::new(1, 1);
        w.fund_buyers(&o.chain, 10_000_000);
        o.post("/v1/bindings", &w.bindings()).await;
        o.post("/v1/grants", &w.grants()).await;
        // 1,000 receipts naming the victim node, signed by someone else.
        let impostor = key(9_999);
        let junk: Vec<_> = (0..1_000u64)
            .map(|i| {
                UsageReceipt {
                    epoch: 0,
                    session_id: [0xEE; 16],
                    node: pk(&w.nodes[0]),
                    client: pk(&w.clients[0]),
                    buyer: pk(&w.buyers[0]),
                    sequence: i + 1,
                    cumulative_bytes: 1_000,
                    session_age_secs: 3_600,
                }
                .sign_both(&deployment(), &w.clients[0], &impostor)
            })
            .collect();
        for chunk in junk.chunks(1_000) {
            let results = o.post("/v1/receipts", chunk).await;
            assert!(
                results
                    .iter()
                    .all(|r| *r == ItemResult::rejected(RejectReason::BadSignature)),
                "{db:?}: {:?}",
                &results[..3]
            );
        }
        // The victim's own receipts: all of them within its burst are taken.
        let valid: Vec<_> = (0..50u8)
            .map(|s| w.receipt(0, 0, 0, s, 1, 1_000_000))
            .collect();
        let results = o.post("/v1/receipts", &valid).await;
        assert!(
            results.iter().all(|r| *r == ItemResult::ACCEPTED),
            "{db:?}: {results:?}"
        );
        // Replays of its receipts (anyone may have them) cost it nothing either.
        for _ in 0..10 {
            let results = o.post("/v1/receipts", &valid).await;
            assert!(results.iter().all(|r| *r == ItemResult::DUPLICATE));
        }
        let fresh: Vec<_> = (50..90u8)
            .map(|s| w.receipt(0, 0, 0, s, 1, 1_000_000))
            .collect();
        let results = o.post("/v1/receipts", &fresh).await;
        assert!(
            results.iter().all(|r| *r == ItemResult::ACCEPTED),
            "{db:?}: {results:?}"
        );
        // Its bucket still applies to what it signs itself.
        let more: Vec<_> = (90..250u8)
            .map(|s| w.receipt(0, 0, 0, s, 1, 1_000_000))
            .collect();
        let results = o.post("/v1/receipts", &more).await;
        assert!(
            results.contains(&ItemResult::rejected(RejectReason::RateLimited)),
            "{db:?}: the victim's own flood is limited"
        );
    }
}

fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

#[tokio::test]
async fn an_address_over_its_rate_gets_429_with_retry_after_and_others_do_not() {
    for db in databases().await {
        // Two requests a second, a burst of ten.
        let o = start(&db, |s| {
            s.per_address_requests_per_sec = 2;
            s.limit_loopback_addresses = true;
        })
        .await;
        let from_1 = client_from("127.0.0.1");
        let mut codes = vec![];
        let mut limited = None;
        for _ in 0..30 {
            let resp = from_1
                .get(format!("{}/health", o.url))
                .send()
                .await
                .unwrap();
            codes.push(resp.status().as_u16());
            if resp.status() == 429 && limited.is_none() {
                let retry: u64 = resp.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                let body: serde_json::Value = resp.json().await.unwrap();
                limited = Some((retry, body));
            }
        }
        let ok = codes.iter().filter(|c| **c == 200).count();
        assert!((10..=12).contains(&ok), "{db:?}: {codes:?}");
        let (retry, body) = limited.expect("a 429");
        assert!((1..=5).contains(&retry), "{retry}");
        assert!(
            body["error"].as_str().unwrap().contains("retry after"),
            "{body}"
        );
        // Refused before the body is read: even a junk body gets 429, not 400.
        let resp = from_1
            .post(format!("{}/v1/receipts", o.url))
            .header("content-type", "application/octet-stream")
            .body(vec![0xFF; 100_000])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 429);
        // Another address has its own bucket.
        let from_2 = client_from("127.0.0.2");
        for _ in 0..5 {
            let resp = from_2
                .get(format!("{}/health", o.url))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200, "{db:?}");
        }
    }
}

#[tokio::test]
async fn loopback_is_not_limited_per_address_by_default() {
    let o = start(&Db::Sqlite, |s| s.per_address_requests_per_sec = 1).await;
    for _ in 0..30 {
        let (code, _) = o.get("/health").await;
        assert_eq!(code, 200);
    }
}

/// Reads until the server closes the connection (or resets it); what it sent, or `None` when it
/// kept the connection open for `within`.
async fn read_until_closed(stream: &mut tokio::net::TcpStream, within: Duration) -> Option<String> {
    let mut got = vec![];
    let read = tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok()
        .map(|_| String::from_utf8_lossy(&got).into_owned())
}

#[tokio::test]
async fn stalled_connections_are_closed_and_honest_requests_are_served_meanwhile() {
    for db in databases().await {
        let o = start(&db, |s| {
            s.header_timeout_secs = 1;
            s.request_timeout_secs = 1;
        })
        .await;
        let addr = o.oracle().addr;
        // 240 connections that send part of a request's headers and stall.
        let mut heads = vec![];
        for _ in 0..240 {
            let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
            c.write_all(b"POST /v1/receipts HTTP/1.1\r\nHost: oracle\r\nContent-Ty")
                .await
                .unwrap();
            heads.push(c);
        }
        // Eight that send whole headers and part of the body, and stall.
        let mut bodies = vec![];
        for _ in 0..8 {
            let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
            c.write_all(
                b"POST /v1/receipts HTTP/1.1\r\nHost: oracle\r\nContent-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n\x01\x00\x00\x00",
            )
            .await
            .unwrap();
            bodies.push(c);
        }
        // Honest requests are served meanwhile, promptly.
        let started = Instant::now();
        for _ in 0..5 {
            let (code, _) = o.get("/health").await;
            assert_eq!(code, 200, "{db:?}");
        }
        let (code, text) = o
            .post_raw(
                "/v1/grants",
                borsh::to_vec(&World::new(1, 1).grants()).unwrap(),
                "application/octet-stream",
            )
            .await;
        assert_eq!(code, 200, "{db:?}: {text}");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        // Then every stalled connection is closed: the slow bodies with a 408.
        for c in &mut bodies {
            let sent = read_until_closed(c, Duration::from_secs(10))
                .await
                .expect("a stalled body's connection is closed");
            assert!(sent.starts_with("HTTP/1.1 408"), "{db:?}: {sent}");
        }
        for c in &mut heads {
            read_until_closed(c, Duration::from_secs(10))
                .await
                .expect("stalled headers' connection is closed");
        }
        assert!(started.elapsed() < Duration::from_secs(10));
        let (code, _) = o.get("/health").await;
        assert_eq!(code, 200);
    }
}

#[tokio::test]
async fn a_full_house_is_answered_503_with_retry_after() {
    let o = start(&Db::Sqlite, |s| {
        s.max_concurrent_requests = 2;
        s.request_timeout_secs = 4;
    })
    .await;
    let addr = o.oracle().addr;
    let mut stalled = vec![];
    for _ in 0..2 {
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        c.write_all(
            b"POST /v1/receipts HTTP/1.1\r\nHost: oracle\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000\r\n\r\n",
        )
        .await
        .unwrap();
        stalled.push(c);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // It waits a second for a slot, then is refused.
    let asked = Instant::now();
    let resp = o
        .http
        .get(format!("{}/health", o.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "{:?}",
        asked.elapsed()
    );
    // The stalled bodies time out and free their slots.
    for c in &mut stalled {
        read_until_closed(c, Duration::from_secs(10)).await.unwrap();
    }
    let (code, _) = o.get("/health").await;
    assert_eq!(code, 200);
}

#[tokio::test]
async fn secrets_in_the_rpc_url_reach_neither_health_nor_metrics() {
    use solana_sdk::signature::Keypair;
    for db in databases().await {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let keypair = dir.path().join("oracle.json");
        std::fs::write(
            &keypair,
            serde_json::to_string(&Keypair::new().to_bytes().to_vec()).unwrap(),
        )
        .unwrap();
        let mut s = settings(dir.path(), &db);
        // Nothing listens on port 1: every RPC request fails and quotes its URL.
        s.rpc_url = "http://127.0.0.1:1/v2/PATHTOKEN?api-key=SECRET123".into();
        s.keypair = Some(keypair);
        s.submit_poll_secs = 1;
        let o = TestOracle::start_with(chain(genesis()), dir, s).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        let health = loop {
            let (_, text) = o.get("/health").await;
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            if v["submitter"]["status"] == "retrying" {
                break text;
            }
            assert!(
                Instant::now() < deadline,
                "the submitter never failed: {text}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let (_, metrics) = o.get("/metrics").await;
        for text in [&health, &metrics] {
            assert!(
                !text.contains("SECRET123") && !text.contains("PATHTOKEN"),
                "{db:?}: {text}"
            );
        }
        assert!(health.contains("http://127.0.0.1:1"), "{health}");
    }
}

#[tokio::test]
async fn epoch_summaries_are_parsed_once_and_served_from_memory() {
    for db in databases().await {
        let o = start(&db, |_| {}).await;
        let w = World::new(2, 2);
        w.fund_buyers(&o.chain, 10_000_000);
        o.post("/v1/bindings", &w.bindings()).await;
        o.post("/v1/grants", &w.grants()).await;
        let receipts: Vec<_> = (0..4u8)
            .map(|s| w.receipt(0, s as usize % 2, s as usize / 2, s, 1, 300_000_000))
            .collect();
        o.post("/v1/receipts", &receipts).await;
        let closed = o.close(0).await.unwrap();
        let api = o.oracle().api.clone();
        let parses = api.summaries.parses();
        let (code, text) = o.get("/v1/epochs").await;
        assert_eq!(code, 200, "{text}");
        let list: Vec<EpochSummary> = serde_json::from_str(&text).unwrap();
        assert_eq!(list.len(), 1);
        let s = &list[0];
        let d = &closed.dataset;
        assert_eq!(
            (s.epoch, s.dataset_hash.clone(), s.closed_at),
            (0, hex(&closed.hash), closed.closed_at)
        );
        assert_eq!(
            (
                &s.reward_root,
                s.reward_leaf_count,
                s.reward_total,
                s.allocation
            ),
            (
                &d.rewards.root,
                d.rewards.leaf_count,
                d.rewards.total,
                d.allocation
            )
        );
        assert_eq!(
            (
                &s.usage_root,
                s.usage_leaf_count,
                s.usage_total,
                s.credits_consumed
            ),
            (
                &d.usage.root,
                d.usage.leaf_count,
                d.usage.total,
                d.usage.credits_consumed
            )
        );
        assert_eq!(api.summaries.parses(), parses + 1);
        // Again, and one by one: nothing parsed.
        for _ in 0..20 {
            let (_, again) = o.get("/v1/epochs").await;
            assert_eq!(again, text);
            let (_, one) = o.get("/v1/epochs/0").await;
            assert_eq!(serde_json::from_str::<EpochSummary>(&one).unwrap(), *s);
        }
        assert_eq!(api.summaries.parses(), parses + 1, "{db:?}");
        let (code, _) = o.get("/v1/epochs/7").await;
        assert_eq!(code, 404);
        // The dataset file is served as stored, with its hash.
        let resp = o
            .http
            .get(format!("{}/v1/epochs/0/dataset", o.url))
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.headers()["x-dataset-sha256"],
            hex(&closed.hash).as_str()
        );
        assert_eq!(resp.bytes().await.unwrap().to_vec(), closed.bytes);
        assert_eq!(api.summaries.parses(), parses + 1, "{db:?}");
        // The metric counts the same parses.
        let (_, metrics) = o.get("/metrics").await;
        assert!(
            metrics.contains("backhaul_api_dataset_parses_total"),
            "{metrics}"
        );
    }
}

#[test]
fn the_settings_file_named_by_the_environment_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("oracle.toml");
    std::fs::write(
        &path,
        "listen = \"127.0.0.1:9555\"\nrpc_url = \"https://rpc.example.net/v2/PATHTOKEN?api-key=SECRET123\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_backhaul-oracle"))
        .arg("settings")
        .env("BACKHAUL_ORACLE_SETTINGS", &path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("listen = \"127.0.0.1:9555\""), "{stdout}");
    assert!(
        stdout.contains("rpc_url = \"https://rpc.example.net\""),
        "{stdout}"
    );
    assert!(
        !stdout.contains("SECRET123") && !stdout.contains("PATHTOKEN"),
        "{stdout}"
    );

    // A bad value is refused at startup with what to change.
    std::fs::write(&path, "close_poll_secs = 0\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_backhaul-oracle"))
        .arg("settings")
        .env("BACKHAUL_ORACLE_SETTINGS", &path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("close_poll_secs = 0") && stderr.contains("between 1 and"),
        "{stderr}"
    );
}

/// At most `max_connections` are open at once: one more waits in the kernel's backlog, unserved,
/// until a connection closes, and is served then.
#[tokio::test]
async fn connections_beyond_the_limit_wait_until_one_closes() {
    let o = start(&Db::Sqlite, |s| {
        s.max_connections = 2;
        s.header_timeout_secs = 60;
    })
    .await;
    let addr = o.oracle().addr;
    let mut stalled = vec![];
    for _ in 0..2 {
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        c.write_all(b"GET /health HTTP/1.1\r\nHost: or")
            .await
            .unwrap();
        stalled.push(c);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let url = format!("{}/health", o.url);
    let quick = reqwest::Client::builder()
        .timeout(Duration::from_millis(700))
        .build()
        .unwrap();
    assert!(
        quick.get(&url).send().await.is_err(),
        "a third connection is not served while two hold the slots"
    );
    drop(stalled);
    let (code, _) = o.get("/health").await;
    assert_eq!(code, 200);
}

/// Before: 64 connections sending full headers and then their bodies slowly, from one address,
/// held every request slot and took honest ingest to 0% (the attack benchmark). Now one address
/// holds at most `max_requests_per_address` slots; other addresses are served meanwhile.
#[tokio::test]
async fn one_address_sending_bodies_slowly_holds_only_its_share_of_the_slots() {
    let o = start(&Db::Sqlite, |s| {
        s.limit_loopback_addresses = true;
        s.max_concurrent_requests = 16;
        s.max_requests_per_address = 4;
        s.request_timeout_secs = 60;
    })
    .await;
    let addr = o.oracle().addr;
    let mut slow = vec![];
    for _ in 0..12 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        let mut c = socket.connect(addr).await.unwrap();
        c.write_all(
            b"POST /v1/receipts HTTP/1.1\r\nHost: oracle\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000\r\n\r\n\x01\x00",
        )
        .await
        .unwrap();
        slow.push(c);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Eight of the twelve were answered 429 at once: only four hold a slot.
    let mut refused = 0;
    for c in &mut slow {
        let mut buf = [0u8; 64];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(200), c.read(&mut buf)).await
        {
            if String::from_utf8_lossy(&buf[..n]).contains("429") {
                refused += 1;
            }
        }
    }
    assert_eq!(refused, 8);
    // Another address is served meanwhile.
    let honest = client_from("127.0.0.1");
    let resp = honest
        .get(format!("{}/health", o.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

/// Before: the per-address limit counted requests, so one address could send 50 requests of
/// 10,000 receipts a second, more signature checks than the oracle can make. Now the items a
/// request declares are charged to its address before the body is read.
#[tokio::test]
async fn an_address_is_charged_for_the_items_it_sends_before_they_are_checked() {
    let o = start(&Db::Sqlite, |s| {
        s.limit_loopback_addresses = true;
        // A burst of 50 items, 10 more a second.
        s.per_address_items_per_sec = 10;
    })
    .await;
    // The length of 50 receipts (the body's content does not matter: it is charged before it is
    // read, and then refused as undecodable).
    let body = vec![0u8; 4 + 50 * backhaul_protocol::SIGNED_RECEIPT_LEN];
    let post = |ip: &'static str| {
        let body = body.clone();
        let url = format!("{}/v1/receipts", o.url);
        async move {
            client_from(ip)
                .post(url)
                .header("content-type", "application/octet-stream")
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(post("127.0.0.2").await.status(), 400);
    let resp = post("127.0.0.2").await;
    assert_eq!(resp.status(), 429);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=5).contains(&retry), "{retry}");
    let text = resp.text().await.unwrap();
    assert!(text.contains("10 items per second"), "{text}");
    // Another address has its own budget.
    assert_eq!(post("127.0.0.3").await.status(), 400);
}
