//! The node and the gateway as services, in one process over loopback: a scraper's connections
//! go through the gateway (round-robin past a dead node) and the node to a local origin; every
//! countersigned receipt reaches a fake oracle from both, for exactly the bytes that moved; the
//! node forwards plain-HTTP proxy requests, answers malformed ones and keeps serving; the
//! bandwidth limit paces sessions; a node at its limits (sessions at once, bandwidth, the
//! month's volume) refuses with the reason and the gateway tries another; shutdown flushes the
//! queue.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use backhaul_client::OracleClient;
use backhaul_node::client::{ClientContext, ClientSession};
use backhaul_node::delivery::{Delivery, QueueStore};
use backhaul_node::egress::Policy;
use backhaul_node::gateway::{Gateway, GatewayConfig, NodeAddr, NOT_A_PROXY_REQUEST};
use backhaul_node::queue::Queue;
use backhaul_node::server::{
    bandwidth_refusal, busy_refusal, Limits, Server, MIN_SESSION_BYTES_PER_SEC,
};
use backhaul_node::session::{BoxFuture, GrantCheck, NodeContext};
use backhaul_protocol::api::{BatchResponse, ItemResult};
use backhaul_protocol::{ClientGrant, Deployment, SignedGrant, SignedReceipt};
use ed25519_dalek::SigningKey;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const D: Deployment = Deployment {
    program_id: [1; 32],
    config: [2; 32],
};

struct AnyBuyer;
impl GrantCheck for AnyBuyer {
    fn check<'a>(&'a self, _: &'a SignedGrant, _: u64) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The origin's body of `size` bytes: not all alike, so that a byte out of place shows.
fn body(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i * 7 % 251) as u8).collect()
}

/// An origin answering every request with `size` bytes.
async fn origin(size: usize) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = l.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {size}\r\nconnection: close\r\n\r\n"
                );
                let _ = s.write_all(answer.as_bytes()).await;
                let _ = s.write_all(&body(size)).await;
                let _ = s.shutdown().await;
            });
        }
    });
    port
}

/// A fake oracle that stores every receipt it is sent, by (session, sequence).
#[derive(Default)]
struct Oracle(Mutex<BTreeMap<([u8; 16], u64), SignedReceipt>>);

async fn ingest(State(o): State<Arc<Oracle>>, body: axum::body::Bytes) -> Json<BatchResponse> {
    let items: Vec<SignedReceipt> = borsh::from_slice(&body).unwrap_or_default();
    let mut stored = o.0.lock().expect("lock");
    for r in &items {
        stored.insert((r.receipt.session_id, r.receipt.sequence), *r);
    }
    Json(BatchResponse {
        results: items.iter().map(|_| ItemResult::ACCEPTED).collect(),
    })
}

async fn fake_oracle() -> (String, Arc<Oracle>) {
    let o = Arc::new(Oracle::default());
    let app = Router::new()
        .route("/v1/receipts", post(ingest))
        .with_state(o.clone());
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(l, app).await });
    (format!("http://{addr}"), o)
}

impl Oracle {
    /// The highest receipt of each session.
    fn tops(&self) -> BTreeMap<[u8; 16], SignedReceipt> {
        let mut out = BTreeMap::new();
        for ((session, _), r) in self.0.lock().expect("lock").iter() {
            out.insert(*session, *r);
        }
        out
    }
}

fn client_cx() -> ClientContext {
    let buyer = SigningKey::from_bytes(&[3; 32]);
    let client = SigningKey::from_bytes(&[4; 32]);
    let grant = ClientGrant {
        buyer: buyer.verifying_key().to_bytes(),
        client: client.verifying_key().to_bytes(),
        epoch: 0,
        issued_at: 1,
        expires_at: i64::MAX,
        credit_limit: 0,
    }
    .sign(&D, &buyer);
    ClientContext {
        deployment: D,
        client,
        grant,
        timeout: Duration::from_secs(5),
    }
}

fn delivery(dir: &std::path::Path, oracle: &str) -> impl std::future::Future<Output = Delivery> {
    let dir = dir.to_path_buf();
    let oracle = oracle.to_string();
    async move {
        let queue = Queue::open(&dir).await.expect("queue");
        Delivery::new(
            queue,
            vec![OracleClient::new(&oracle).expect("client")],
            Duration::from_secs(1),
            "test",
        )
    }
}

/// Sends `request` through the gateway and reads everything back.
async fn through(gateway: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(gateway).await.expect("connect");
    s.write_all(request).await.expect("write");
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut got))
        .await
        .expect("in time")
        .expect("read");
    got
}

/// A SOCKS5 fetch of `/` from 127.0.0.1:`port` through the gateway: the bytes sent plus the
/// method reply, and what came after it.
async fn socks_fetch(gateway: SocketAddr, port: u16) -> (usize, Vec<u8>) {
    let mut s = TcpStream::connect(gateway).await.expect("connect");
    s.write_all(&[5, 1, 0]).await.expect("greeting");
    let mut reply = [0u8; 2];
    s.read_exact(&mut reply).await.expect("method");
    assert_eq!(reply, [5, 0]);
    let mut req = vec![5, 1, 0, 3, 9];
    req.extend_from_slice(b"127.0.0.1");
    req.extend_from_slice(&port.to_be_bytes());
    s.write_all(&req).await.expect("request");
    let get = b"GET / HTTP/1.1\r\nHost: origin\r\n\r\n";
    s.write_all(get).await.expect("get");
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut got))
        .await
        .expect("in time")
        .expect("read");
    (3 + req.len() + get.len() + reply.len(), got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_and_a_node_carry_traffic_and_every_receipt_reaches_the_oracle() {
    let size = 3 << 20;
    let port = origin(size).await;
    let (oracle_url, oracle) = fake_oracle().await;
    let dir = tempfile::tempdir().expect("dir");

    // The node: loopback and the origin's port allowed, receipts every 256 KiB.
    let node_key = SigningKey::from_bytes(&[7; 32]);
    let node_delivery = delivery(&dir.path().join("node"), &oracle_url).await;
    let mut policy = Policy {
        allow_loopback: true,
        ..Policy::default()
    };
    policy.ports.insert(port);
    let cx = NodeContext {
        deployment: D,
        node: node_key.clone(),
        genesis_ts: 0,
        epoch_length_secs: 86_400 * 365 * 100,
        receipt_every_bytes: 256 * 1024,
        max_unreceipted_bytes: 1 << 20,
        timeout: Duration::from_secs(5),
        policy,
        grants: Arc::new(AnyBuyer),
        receipts: Arc::new(QueueStore(node_delivery.clone())),
        clock: Arc::new(now),
    };
    let limits = Limits {
        max_sessions: 8,
        bandwidth_bytes_per_sec: 0,
        monthly_bytes: 0,
        drain: Duration::from_secs(2),
    };
    let server = Server::bind(
        "127.0.0.1:0".parse().expect("addr"),
        cx,
        node_delivery,
        limits,
    )
    .await
    .expect("bind");
    let node_addr = server.local_addr().expect("addr");
    let (stop_node, node_stopped) = tokio::sync::oneshot::channel::<()>();
    let node = tokio::spawn(server.run(async {
        let _ = node_stopped.await;
    }));

    // The gateway: a dead node first (another key), then the real one.
    let dead = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let dead_addr = dead.local_addr().expect("addr");
    drop(dead);
    let key = node_key.verifying_key().to_bytes();
    let report = dir.path().join("usage.json");
    let config = GatewayConfig {
        nodes: vec![
            NodeAddr {
                key: SigningKey::from_bytes(&[9; 32]).verifying_key().to_bytes(),
                addr: dead_addr.to_string(),
            },
            NodeAddr {
                key,
                addr: node_addr.to_string(),
            },
        ],
        client: client_cx(),
        report: Some(report.clone()),
        status_every: Duration::from_secs(60),
    };
    let gw_delivery = delivery(&dir.path().join("gateway"), &oracle_url).await;
    let gw = Gateway::bind(
        "127.0.0.1:0".parse().expect("addr"),
        config,
        Some(gw_delivery),
    )
    .await
    .expect("bind");
    let gw_addr = gw.local_addr().expect("addr");
    let (stop_gw, gw_stopped) = tokio::sync::oneshot::channel::<()>();
    let gateway = tokio::spawn(gw.run(async {
        let _ = gw_stopped.await;
    }));

    // HTTP CONNECT, then SOCKS5: the body arrives intact each time.
    let request = format!(
        "CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\nGET / HTTP/1.1\r\nHost: origin\r\n\r\n"
    );
    let got = through(gw_addr, request.as_bytes()).await;
    let head_end = got
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("connect answer")
        + 4;
    assert!(got.starts_with(b"HTTP/1.1 200 Connection established"));
    let rest = &got[head_end..];
    let body_start = rest
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response head")
        + 4;
    assert_eq!(&rest[body_start..], &body(size)[..], "the body is intact");
    let connect_moved = (request.len() + got.len()) as u64;
    let (sent, got) = socks_fetch(gw_addr, port).await;
    assert!(got.ends_with(&body(size)));
    let socks_moved = (sent + got.len()) as u64;

    // Plain HTTP (absolute form) is forwarded by the node, once; bytes that are no proxy request
    // are refused by the gateway, a malformed CONNECT by the node, a private destination too;
    // the node keeps serving.
    let plain_request = format!(
        "GET http://127.0.0.1:{port}/ HTTP/1.1\r\nHost: x\r\nProxy-Connection: keep-alive\r\n\r\n"
    );
    let plain = through(gw_addr, plain_request.as_bytes()).await;
    assert!(plain.starts_with(b"HTTP/1.1 200 OK"), "{:?}", &plain[..20]);
    assert!(plain.ends_with(&body(size)), "the body is intact");
    let junk = through(gw_addr, b"hello there\r\n\r\n").await;
    let text = String::from_utf8_lossy(&junk);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(text.contains(NOT_A_PROXY_REQUEST), "{text}");
    let bad = through(gw_addr, b"CONNECT nohostport HTTP/1.1\r\n\r\n").await;
    let text = String::from_utf8_lossy(&bad);
    assert!(
        text.starts_with("HTTP/1.1 400") && text.contains("malformed CONNECT"),
        "{text}"
    );
    let private = through(
        gw_addr,
        format!("CONNECT 10.0.0.1:{port} HTTP/1.1\r\n\r\n").as_bytes(),
    )
    .await;
    let text = String::from_utf8_lossy(&private);
    assert!(
        text.starts_with("HTTP/1.1 403") && text.contains("10.0.0.1 is not a public address"),
        "{text}"
    );
    let (_, again) = socks_fetch(gw_addr, port).await;
    assert!(again.ends_with(&body(size)));

    // The oracle gets the top receipt of both fetches, for exactly the bytes that moved.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let amounts = loop {
        let mut amounts: Vec<u64> = oracle
            .tops()
            .values()
            .map(|r| r.receipt.cumulative_bytes)
            .collect();
        amounts.sort_unstable();
        if amounts.contains(&connect_moved) && amounts.contains(&socks_moved) {
            break amounts;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the oracle has {amounts:?}, not {connect_moved} and {socks_moved}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(amounts.len() >= 3, "{amounts:?}");
    for r in oracle.0.lock().expect("lock").values() {
        for c in r.checks(&D) {
            c.verify_strict().expect("both signatures");
        }
    }

    // Shutdown: both stop, flushed; the report names the dead node's failure.
    let _ = stop_gw.send(());
    let usage = gateway.await.expect("join");
    let _ = stop_node.send(());
    let summary = node.await.expect("join");
    assert!(summary.flushed, "{summary:?}");
    assert_eq!(summary.served, usage.sessions, "{summary:?} {usage:#?}");
    assert_eq!(usage.rejected, 1);
    assert_eq!(usage.no_node, 0);
    let dead_usage = usage
        .nodes
        .values()
        .find(|n| n.failures > 0)
        .expect("the dead node's failures");
    assert_eq!(dead_usage.sessions, 0);
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).expect("report")).expect("json");
    assert_eq!(json["sessions"], usage.sessions);
    assert_eq!(
        json["recent"][0]["last_cumulative_bytes"].as_u64(),
        Some(connect_moved)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bandwidth_limit_paces_sessions_and_the_monthly_limit_refuses_new_ones() {
    let size = 800 * 1024;
    let port = origin(size).await;
    let (oracle_url, _oracle) = fake_oracle().await;
    let dir = tempfile::tempdir().expect("dir");
    let node_key = SigningKey::from_bytes(&[8; 32]);
    let node_delivery = delivery(dir.path(), &oracle_url).await;
    let mut policy = Policy {
        allow_loopback: true,
        ..Policy::default()
    };
    policy.ports.insert(port);
    let cx = NodeContext {
        deployment: D,
        node: node_key.clone(),
        genesis_ts: 0,
        epoch_length_secs: 86_400 * 365 * 100,
        receipt_every_bytes: 64 * 1024,
        max_unreceipted_bytes: 256 * 1024,
        timeout: Duration::from_secs(5),
        policy,
        grants: Arc::new(AnyBuyer),
        receipts: Arc::new(QueueStore(node_delivery.clone())),
        clock: Arc::new(now),
    };
    // 256 KiB/s, and a month of 1 MiB: the first fetch takes about two seconds, the second
    // goes over the month's volume, the third is refused.
    let limits = Limits {
        max_sessions: 8,
        bandwidth_bytes_per_sec: 256 * 1024,
        monthly_bytes: 1 << 20,
        drain: Duration::from_secs(1),
    };
    let server = Server::bind(
        "127.0.0.1:0".parse().expect("addr"),
        cx,
        node_delivery,
        limits,
    )
    .await
    .expect("bind");
    let node_addr = server.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let node = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    let gw = Gateway::bind(
        "127.0.0.1:0".parse().expect("addr"),
        GatewayConfig {
            nodes: vec![NodeAddr {
                key: node_key.verifying_key().to_bytes(),
                addr: node_addr.to_string(),
            }],
            client: client_cx(),
            report: None,
            status_every: Duration::from_secs(60),
        },
        None,
    )
    .await
    .expect("bind");
    let gw_addr = gw.local_addr().expect("addr");
    let (stop_gw, gw_stopped) = tokio::sync::oneshot::channel::<()>();
    let gateway = tokio::spawn(gw.run(async {
        let _ = gw_stopped.await;
    }));

    let start = std::time::Instant::now();
    let (_, got) = socks_fetch(gw_addr, port).await;
    assert!(got.ends_with(&body(size)));
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(1_500), "{took:?}");
    let (_, got) = socks_fetch(gw_addr, port).await;
    assert!(got.ends_with(&body(size)));
    // The month's volume is used up: the node refuses, and the gateway, with no other node,
    // answers the SOCKS request with a failure.
    let mut s = TcpStream::connect(gw_addr).await.expect("connect");
    s.write_all(&[5, 1, 0]).await.expect("greeting");
    let mut reply = [0u8; 2];
    s.read_exact(&mut reply).await.expect("method");
    let mut req = vec![5, 1, 0, 1, 127, 0, 0, 1];
    req.extend_from_slice(&port.to_be_bytes());
    s.write_all(&req).await.expect("request");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut answer)).await;
    assert_eq!(answer.get(..2), Some(&[5u8, 4][..]), "{answer:?}");
    let _ = stop_gw.send(());
    let usage = gateway.await.expect("join");
    assert_eq!((usage.sessions, usage.no_node), (2, 1));
    let failures = usage.nodes.values().next().expect("node").clone();
    assert!(
        failures
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("monthly volume limit")),
        "{failures:?}"
    );
    let _ = stop.send(());
    let summary = node.await.expect("join");
    assert_eq!((summary.served, summary.refused), (2, 1));
}

/// A node service on loopback with `limits`: its address, its stop and its run.
async fn limited_node(
    key: &SigningKey,
    port: u16,
    dir: &std::path::Path,
    oracle: &str,
    limits: Limits,
) -> (
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<backhaul_node::server::Summary>,
) {
    let node_delivery = delivery(dir, oracle).await;
    let mut policy = Policy {
        allow_loopback: true,
        ..Policy::default()
    };
    policy.ports.insert(port);
    let cx = NodeContext {
        deployment: D,
        node: key.clone(),
        genesis_ts: 0,
        epoch_length_secs: 86_400 * 365 * 100,
        receipt_every_bytes: 64 * 1024,
        max_unreceipted_bytes: 256 * 1024,
        timeout: Duration::from_secs(5),
        policy,
        grants: Arc::new(AnyBuyer),
        receipts: Arc::new(QueueStore(node_delivery.clone())),
        clock: Arc::new(now),
    };
    let server = Server::bind(
        "127.0.0.1:0".parse().expect("addr"),
        cx,
        node_delivery,
        limits,
    )
    .await
    .expect("bind");
    let addr = server.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    (addr, stop, run)
}

/// Opens a session with the node at `addr` directly (no gateway).
async fn open(
    addr: SocketAddr,
    key: &SigningKey,
) -> Result<ClientSession<TcpStream>, backhaul_node::client::OpenError> {
    let stream = TcpStream::connect(addr).await.expect("connect");
    ClientSession::open(stream, client_cx(), key.verifying_key().to_bytes()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_at_its_limits_refuses_with_the_reason_and_the_gateway_tries_another_node() {
    let size = 100 * 1024;
    let port = origin(size).await;
    let (oracle_url, _oracle) = fake_oracle().await;
    let dir = tempfile::tempdir().expect("dir");
    let limits = Limits {
        max_sessions: 1,
        bandwidth_bytes_per_sec: 0,
        monthly_bytes: 0,
        drain: Duration::from_secs(1),
    };
    // A node serving one session at once, and it holds one.
    let busy_key = SigningKey::from_bytes(&[21; 32]);
    let (busy_addr, stop_busy, busy) = limited_node(
        &busy_key,
        port,
        &dir.path().join("busy"),
        &oracle_url,
        limits,
    )
    .await;
    let held = open(busy_addr, &busy_key).await.expect("the first session");
    match open(busy_addr, &busy_key).await {
        Err(backhaul_node::client::OpenError::Refused(why)) => {
            assert_eq!(why, busy_refusal(1), "{why}")
        }
        Err(e) => panic!("refused without the reason: {e}"),
        Ok(_) => panic!("a second session beyond max_sessions = 1"),
    }
    // A node whose bandwidth limit carries two sessions at once, and it holds two.
    let slow_key = SigningKey::from_bytes(&[22; 32]);
    let slow_limits = Limits {
        max_sessions: 8,
        bandwidth_bytes_per_sec: 2 * MIN_SESSION_BYTES_PER_SEC,
        ..limits
    };
    let (slow_addr, stop_slow, slow) = limited_node(
        &slow_key,
        port,
        &dir.path().join("slow"),
        &oracle_url,
        slow_limits,
    )
    .await;
    let held2 = [
        open(slow_addr, &slow_key).await.expect("one"),
        open(slow_addr, &slow_key).await.expect("two"),
    ];
    match open(slow_addr, &slow_key).await {
        Err(backhaul_node::client::OpenError::Refused(why)) => assert_eq!(
            why,
            bandwidth_refusal(2 * MIN_SESSION_BYTES_PER_SEC, 2),
            "{why}"
        ),
        Err(e) => panic!("refused without the reason: {e}"),
        Ok(_) => panic!("a third session beyond the bandwidth"),
    }
    // A free node.
    let free_key = SigningKey::from_bytes(&[23; 32]);
    let (free_addr, stop_free, free) = limited_node(
        &free_key,
        port,
        &dir.path().join("free"),
        &oracle_url,
        limits,
    )
    .await;

    // The gateway tries the busy node, then the slow one, and is served by the free one; its
    // report names each refusal's reason.
    let node = |k: &SigningKey, a: SocketAddr| NodeAddr {
        key: k.verifying_key().to_bytes(),
        addr: a.to_string(),
    };
    let gw = Gateway::bind(
        "127.0.0.1:0".parse().expect("addr"),
        GatewayConfig {
            nodes: vec![
                node(&busy_key, busy_addr),
                node(&slow_key, slow_addr),
                node(&free_key, free_addr),
            ],
            client: client_cx(),
            report: None,
            status_every: Duration::from_secs(60),
        },
        None,
    )
    .await
    .expect("bind");
    let gw_addr = gw.local_addr().expect("addr");
    let (stop_gw, gw_stopped) = tokio::sync::oneshot::channel::<()>();
    let gateway = tokio::spawn(gw.run(async {
        let _ = gw_stopped.await;
    }));
    let (_, got) = socks_fetch(gw_addr, port).await;
    assert!(got.ends_with(&body(size)));
    drop(held);
    drop(held2);
    let _ = stop_gw.send(());
    let usage = gateway.await.expect("join");
    assert_eq!((usage.sessions, usage.no_node), (1, 0), "{usage:#?}");
    let b58 = |k: &SigningKey| bs58::encode(k.verifying_key().to_bytes()).into_string();
    let error = |k: &SigningKey| usage.nodes[&b58(k)].last_error.clone().unwrap_or_default();
    assert!(
        error(&busy_key)
            .contains("the node refused the session: this node is serving its limit of 1 sessions"),
        "{usage:#?}"
    );
    assert!(error(&slow_key).contains("bandwidth limit"), "{usage:#?}");
    assert_eq!(usage.nodes[&b58(&free_key)].sessions, 1);
    for (stop, run, refused) in [
        (stop_busy, busy, 2),
        (stop_slow, slow, 2),
        (stop_free, free, 0),
    ] {
        let _ = stop.send(());
        let summary = run.await.expect("join");
        assert_eq!(summary.refused, refused, "{summary:?}");
    }
}

/// A fake oracle's directory: `GET /v1/adverts?after=&limit=`, by node key, a page at a time (at
/// most `MAX_ADVERTS_PER_PAGE`), as the oracle serves it; it counts the pages it served.
#[derive(Default)]
struct Directory {
    adverts: BTreeMap<[u8; 32], backhaul_protocol::api::AdvertEntry>,
    pages: std::sync::atomic::AtomicUsize,
}

#[derive(serde::Deserialize)]
struct AdvertsQuery {
    after: Option<String>,
    limit: Option<usize>,
}

async fn adverts_page(
    State(d): State<Arc<Directory>>,
    axum::extract::Query(q): axum::extract::Query<AdvertsQuery>,
) -> Json<Vec<backhaul_protocol::api::AdvertEntry>> {
    use backhaul_protocol::api::MAX_ADVERTS_PER_PAGE;
    d.pages.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let after: Option<[u8; 32]> = q.after.map(|a| {
        bs58::decode(a)
            .into_vec()
            .expect("base58")
            .try_into()
            .expect("32 bytes")
    });
    let limit = q
        .limit
        .unwrap_or(MAX_ADVERTS_PER_PAGE)
        .min(MAX_ADVERTS_PER_PAGE);
    let from = match after {
        Some(k) => std::ops::Bound::Excluded(k),
        None => std::ops::Bound::Unbounded,
    };
    Json(
        d.adverts
            .range((from, std::ops::Bound::Unbounded))
            .take(limit)
            .map(|(_, e)| e.clone())
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_of_several_pages_is_read_to_the_end() {
    use backhaul_protocol::advert::{Endpoint, NodeAdvert};
    use backhaul_protocol::api::{AdvertEntry, MAX_ADVERTS_PER_PAGE};
    // Two full pages and part of a third; a few adverts on each page do not count: signed by
    // another key, or stale.
    let n = 2 * MAX_ADVERTS_PER_PAGE + 150;
    let at = now();
    let mut d = Directory::default();
    let mut expected = BTreeMap::new();
    for i in 0..n {
        let mut seed = [9u8; 32];
        seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
        let key = SigningKey::from_bytes(&seed);
        let node = key.verifying_key().to_bytes();
        let endpoint = Endpoint::parse(&format!("node{i}.example:7700")).expect("endpoint");
        let issued_at = if i % 500 == 7 { at - 3 * 86_400 } else { at };
        let advert = NodeAdvert::new(node, &endpoint, issued_at).expect("advert");
        let signer = if i % 500 == 3 {
            SigningKey::from_bytes(&[1; 32])
        } else {
            key
        };
        let signed = advert.sign(&D, &signer);
        if i % 500 != 3 && i % 500 != 7 {
            expected.insert(node, format!("node{i}.example:7700"));
        }
        d.adverts
            .insert(node, AdvertEntry::of(&signed).expect("entry"));
    }
    let d = Arc::new(d);
    let app = Router::new()
        .route("/v1/adverts", axum::routing::get(adverts_page))
        .with_state(d.clone());
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(l, app).await });
    let oracle = OracleClient::new(&format!("http://{addr}")).expect("client");
    let found = backhaul_node::directory::read(&[oracle], &D, at).await;
    assert_eq!(d.pages.load(std::sync::atomic::Ordering::Relaxed), 3);
    let found: BTreeMap<[u8; 32], String> = found.into_iter().map(|n| (n.key, n.addr)).collect();
    assert_eq!(found.len(), n - 10, "every valid advert, on every page");
    assert_eq!(found, expected);
}
