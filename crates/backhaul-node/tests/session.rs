//! A whole session over loopback: a client relays a scraper's HTTP CONNECT and request through
//! a node to a local origin; both ends count the same bytes, the node countersigns and stores
//! receipts for exactly what the client counted, and refuses what it must.

use backhaul_node::client::{ClientContext, ClientSession, OpenError};
use backhaul_node::egress::Policy;
use backhaul_node::session::{self, BoxFuture, GrantCheck, NodeContext, ReceiptStore};
use backhaul_protocol::{ClientGrant, Deployment, SignedGrant, SignedReceipt};
use ed25519_dalek::SigningKey;
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

#[derive(Default)]
struct Stored(Mutex<Vec<SignedReceipt>>);
impl ReceiptStore for Stored {
    fn store(&self, r: SignedReceipt) -> BoxFuture<'_, Result<(), String>> {
        self.0.lock().expect("lock").push(r);
        Box::pin(async { Ok(()) })
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// An origin that answers one request with `size` bytes.
async fn origin(size: usize) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = l.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {size}\r\nconnection: close\r\n\r\n"
                );
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(&vec![b'x'; size]).await;
                let _ = s.shutdown().await;
            });
        }
    });
    port
}

struct Node {
    addr: std::net::SocketAddr,
    cx: Arc<NodeContext>,
    key: SigningKey,
    stored: Arc<Stored>,
    reports: Arc<Mutex<Vec<session::SessionReport>>>,
}

async fn node(origin_port: u16, every: u64, bound: u64) -> Node {
    let key = SigningKey::from_bytes(&[7; 32]);
    let stored = Arc::new(Stored::default());
    let mut policy = Policy {
        allow_loopback: true,
        ..Policy::default()
    };
    policy.ports.insert(origin_port);
    let cx = Arc::new(NodeContext {
        deployment: D,
        node: key.clone(),
        genesis_ts: 0,
        epoch_length_secs: 86_400 * 365 * 100,
        receipt_every_bytes: every,
        max_unreceipted_bytes: bound,
        timeout: Duration::from_secs(2),
        policy,
        grants: Arc::new(AnyBuyer),
        receipts: stored.clone(),
        clock: Arc::new(now),
    });
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let reports = Arc::new(Mutex::new(vec![]));
    let r = reports.clone();
    let node_cx = cx.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let cx = cx.clone();
            let r = r.clone();
            tokio::spawn(async move {
                if let Ok(report) = session::serve(s, &cx).await {
                    r.lock().expect("lock").push(report);
                }
            });
        }
    });
    Node {
        addr,
        cx: node_cx,
        key,
        stored,
        reports,
    }
}

fn client_cx(expires_at: i64) -> ClientContext {
    let buyer = SigningKey::from_bytes(&[3; 32]);
    let client = SigningKey::from_bytes(&[4; 32]);
    let grant = ClientGrant {
        buyer: buyer.verifying_key().to_bytes(),
        client: client.verifying_key().to_bytes(),
        epoch: 0,
        issued_at: 1,
        expires_at,
        credit_limit: 0,
    }
    .sign(&D, &buyer);
    ClientContext {
        deployment: D,
        client,
        grant,
        timeout: Duration::from_secs(2),
    }
}

#[tokio::test]
async fn bytes_through_a_session_are_counted_alike_and_receipted_exactly() {
    let size = 3 * 1024 * 1024;
    let port = origin(size).await;
    let n = node(port, 256 * 1024, 1024 * 1024).await;
    let stream = TcpStream::connect(n.addr).await.expect("connect");
    let session = ClientSession::open(
        stream,
        client_cx(i64::MAX),
        n.key.verifying_key().to_bytes(),
    )
    .await
    .expect("open");
    // The scraper's side of the gateway, in memory.
    let (mut scraper, local) = tokio::io::duplex(1 << 20);
    let relay = tokio::spawn(session.relay(local));
    let request = format!(
        "CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"
    );
    scraper.write_all(request.as_bytes()).await.expect("write");
    let mut got = Vec::new();
    scraper.read_to_end(&mut got).await.expect("read");
    let text = String::from_utf8_lossy(&got[..60.min(got.len())]).to_string();
    assert!(
        text.starts_with("HTTP/1.1 200 Connection established"),
        "{text}"
    );
    assert!(got.len() > size, "{} bytes", got.len());
    drop(scraper);
    let report = relay.await.expect("join").expect("relay");
    // What the client counted: what it sent and what it received.
    assert_eq!(report.counted, (request.len() + got.len()) as u64);
    let last = report.countersigned.last().expect("receipts").receipt;
    assert_eq!(last.cumulative_bytes, report.counted);
    assert!(
        report.countersigned.len() >= 5,
        "{} receipts",
        report.countersigned.len()
    );
    // The node stored every countersigned receipt, the last for exactly that amount.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stored = n.stored.0.lock().expect("lock").clone();
    assert_eq!(
        stored.last().expect("stored").receipt,
        last,
        "stored {:?}, countersigned {:?}",
        stored
            .iter()
            .map(|r| (r.receipt.sequence, r.receipt.cumulative_bytes))
            .collect::<Vec<_>>(),
        report
            .countersigned
            .iter()
            .map(|r| (r.receipt.sequence, r.receipt.cumulative_bytes))
            .collect::<Vec<_>>()
    );
    for w in stored.windows(2) {
        assert!(w[1].receipt.cumulative_bytes > w[0].receipt.cumulative_bytes);
        assert!(w[1].receipt.sequence > w[0].receipt.sequence);
    }
    for r in &stored {
        for c in r.checks(&D) {
            c.verify_strict().expect("both signatures");
        }
    }
    let reports = n.reports.lock().expect("lock").clone();
    assert_eq!(reports[0].counted, report.counted);
}

#[tokio::test]
async fn an_expired_grant_and_private_destinations_are_refused() {
    let port = origin(10).await;
    let n = node(port, 1024, 4096).await;
    let stream = TcpStream::connect(n.addr).await.expect("connect");
    match ClientSession::open(stream, client_cx(0), n.key.verifying_key().to_bytes()).await {
        Err(OpenError::Refused(why)) => assert!(why.contains("expired"), "{why}"),
        _ => panic!("an expired grant must be refused"),
    }
    // A private address on an allowed port: 403 with the reason, and the session ends.
    let stream = TcpStream::connect(n.addr).await.expect("connect");
    let session = ClientSession::open(
        stream,
        client_cx(i64::MAX),
        n.key.verifying_key().to_bytes(),
    )
    .await
    .expect("open");
    let (mut scraper, local) = tokio::io::duplex(1 << 16);
    let relay = tokio::spawn(session.relay(local));
    scraper
        .write_all(format!("CONNECT 10.0.0.1:{port} HTTP/1.1\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), scraper.read_to_end(&mut got)).await;
    let text = String::from_utf8_lossy(&got).to_string();
    assert!(text.starts_with("HTTP/1.1 403"), "{text}");
    assert!(text.contains("10.0.0.1 is not a public address"), "{text}");
    drop(scraper);
    let _ = relay.await;
}

#[tokio::test]
async fn a_client_that_stops_signing_is_cut_off_after_the_bound() {
    use backhaul_node::channel::Channel;
    use backhaul_node::frame::Frame;
    let size = 8 * 1024 * 1024;
    let port = origin(size).await;
    let bound = 512 * 1024;
    let n = node(port, 128 * 1024, bound).await;
    // A client that never answers receipt requests.
    let cx = client_cx(i64::MAX);
    let stream = TcpStream::connect(n.addr).await.expect("connect");
    let mut chan = Channel::connect(stream, &D, &n.key.verifying_key().to_bytes())
        .await
        .expect("handshake");
    let hello =
        backhaul_node::hello::sign(&D, &cx.client, cx.grant, [5; 16], chan.handshake_hash());
    chan.send(&Frame::Hello(Box::new(hello)))
        .await
        .expect("hello");
    assert!(matches!(chan.recv().await, Ok(Some(Frame::Welcome(_)))));
    let req = format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n");
    chan.send(&Frame::Data(req.into_bytes()))
        .await
        .expect("send");
    let mut received = 0u64;
    let end = loop {
        match tokio::time::timeout(Duration::from_secs(10), chan.recv()).await {
            Ok(Ok(Some(Frame::Data(d)))) => received += d.len() as u64,
            Ok(Ok(Some(Frame::Close(why)))) => break why,
            Ok(Ok(Some(_))) => {}
            other => panic!("{other:?}"),
        }
    };
    assert!(end.starts_with("no receipt for"), "{end}");
    // Cut off within the bound (plus at most one frame read before the node noticed).
    assert!(
        received <= bound + 65_536,
        "{received} bytes without a receipt"
    );
    assert!(received < size as u64);
    assert!(n.stored.0.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn a_node_behind_a_relay_serves_a_gateway_that_only_knows_its_key() {
    use backhaul_node::relay::{self, RelayConfig, RelayError};
    let size = 256 * 1024;
    let port = origin(size).await;
    let n = node(port, 64 * 1024, 1024 * 1024).await;
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let relay_addr = l.local_addr().expect("addr");
    tokio::spawn(relay::serve(l, RelayConfig::default()));
    // Nobody registered yet.
    let key = n.key.verifying_key().to_bytes();
    assert_eq!(
        relay::dial(relay_addr, &key, Duration::from_secs(2))
            .await
            .err(),
        Some(RelayError::UnknownNode)
    );
    // The node links to the relay (an outbound connection only).
    let cx = n.cx.clone();
    let node_key = n.key.clone();
    tokio::spawn(async move {
        let _ = relay::link(relay_addr, &node_key, move |s| {
            let cx = cx.clone();
            async move {
                let _ = session::serve(s, &cx).await;
            }
        })
        .await;
    });
    let stream = loop {
        match relay::dial(relay_addr, &key, Duration::from_secs(2)).await {
            Ok(s) => break s,
            Err(RelayError::UnknownNode) => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(e) => panic!("{e}"),
        }
    };
    let session = ClientSession::open(stream, client_cx(i64::MAX), key)
        .await
        .expect("open through the relay");
    let (mut scraper, local) = tokio::io::duplex(1 << 20);
    let relay_task = tokio::spawn(session.relay(local));
    let request = format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n");
    scraper.write_all(request.as_bytes()).await.expect("write");
    let mut got = Vec::new();
    scraper.read_to_end(&mut got).await.expect("read");
    assert!(got.len() > size);
    drop(scraper);
    let report = relay_task.await.expect("join").expect("relay");
    assert_eq!(
        report
            .countersigned
            .last()
            .expect("receipts")
            .receipt
            .cumulative_bytes,
        report.counted
    );

    // A registration signed by another key is refused; a relay cannot pose as the node: a
    // session through a link registered by an impostor fails the handshake.
    let impostor = SigningKey::from_bytes(&[66; 32]);
    let mut s = TcpStream::connect(relay_addr).await.expect("connect");
    let mut challenge = [0u8; 33];
    s.read_exact(&mut challenge).await.expect("challenge");
    let mut m = vec![2u8];
    m.extend_from_slice(&key);
    m.extend_from_slice(&ed25519_dalek::Signer::sign(&impostor, &challenge[1..]).to_bytes());
    s.write_all(&m).await.expect("register");
    let mut answer = [0u8; 2];
    s.read_exact(&mut answer).await.expect("answer");
    assert_eq!(answer, [7, 2], "bad registration");
}

/// A hostile node, built from the crate's channel, hello and frame primitives as `session::serve`
/// uses them: it accepts the handshake with its key, checks and answers the hello, reads the
/// client's request, delivers a known number of bytes, and lies about them in every way the
/// frames allow: receipt requests for far more than it delivered (before any data, after some,
/// and again with nothing new), a countersignature of an inflated receipt, a countersignature of
/// a receipt the client never signed, an empty data frame. The client signs for what it counted
/// and nothing more, and keeps only the countersignatures of the receipts it signed.
#[tokio::test]
async fn a_node_claiming_more_bytes_than_it_delivered_gets_no_receipt_for_them() {
    use backhaul_node::channel::Channel;
    use backhaul_node::frame::{Frame, Welcome};
    use backhaul_protocol::verify::SigCheck;
    use backhaul_protocol::{Sig, UsageReceipt};

    let key = SigningKey::from_bytes(&[9; 32]);
    let cx = client_cx(i64::MAX);
    let client_key = cx.client.verifying_key().to_bytes();
    let request =
        b"CONNECT origin.example:443 HTTP/1.1\r\nHost: origin.example:443\r\n\r\n".to_vec();
    let first = [
        b"HTTP/1.1 200 Connection established\r\n\r\n".as_slice(),
        &[b'x'; 10_000],
    ]
    .concat();
    let second = vec![b'y'; 5_000];
    let first_len = first.len() as u64;
    let delivered = first_len + second.len() as u64;
    // The billed amount (`docs/node.md`, "Metering"): what the client sent plus what it received.
    let billed = request.len() as u64 + delivered;

    let (client_end, node_end) = tokio::io::duplex(1 << 20);
    let hostile = {
        let key = key.clone();
        let (request_len, first, second) = (request.len() as u64, first.clone(), second.clone());
        tokio::spawn(async move {
            let mut chan = Channel::accept(node_end, &D, &key)
                .await
                .expect("handshake");
            async fn next(chan: &mut Channel<tokio::io::DuplexStream>) -> Option<Frame> {
                tokio::time::timeout(Duration::from_secs(5), chan.recv())
                    .await
                    .expect("the client answers in time")
                    .expect("a frame")
            }
            async fn receipt(chan: &mut Channel<tokio::io::DuplexStream>) -> (UsageReceipt, Sig) {
                match next(chan).await {
                    Some(Frame::Receipt(r, sig)) => (r, sig),
                    other => panic!("a receipt was expected, not {other:?}"),
                }
            }
            let hello = match next(&mut chan).await {
                Some(Frame::Hello(h)) => h,
                other => panic!("a hello was expected, not {other:?}"),
            };
            backhaul_node::hello::verify(&hello, &D, chan.handshake_hash(), 0, 0).expect("hello");
            chan.send(&Frame::Welcome(Welcome {
                epoch: 0,
                started_at: now(),
                receipt_every_bytes: 1024,
                max_unreceipted_bytes: 4096,
            }))
            .await
            .expect("welcome");
            let mut received = 0u64;
            while received < request_len {
                match next(&mut chan).await {
                    Some(Frame::Data(d)) => received += d.len() as u64,
                    other => panic!("the request was expected, not {other:?}"),
                }
            }
            let mut receipts = vec![];
            let countersign = |r: UsageReceipt, sig: Sig| r.countersign(&D, sig, &key);

            // Lie 1: a receipt asked for a gigabyte before a byte was delivered.
            chan.send(&Frame::ReceiptDue(1 << 30)).await.expect("send");
            let (r0, s0) = receipt(&mut chan).await;
            receipts.push((r0, s0));
            chan.send(&Frame::Countersigned(
                r0.sequence,
                countersign(r0, s0).node_signature,
            ))
            .await
            .expect("send");

            // Some bytes, and an empty data frame; then a receipt asked for a thousand times
            // what was delivered.
            for chunk in first.chunks(4096) {
                chan.send(&Frame::Data(chunk.to_vec())).await.expect("send");
            }
            chan.send(&Frame::Data(vec![])).await.expect("send");
            chan.send(&Frame::ReceiptDue(delivered * 1000))
                .await
                .expect("send");
            let (r1, s1) = receipt(&mut chan).await;
            receipts.push((r1, s1));
            // Lie 2: a countersignature of that receipt inflated, and one of a receipt the client
            // never signed.
            let mut inflated = r1;
            inflated.cumulative_bytes = 1 << 40;
            chan.send(&Frame::Countersigned(
                r1.sequence,
                countersign(inflated, s1).node_signature,
            ))
            .await
            .expect("send");
            let mut unsigned = inflated;
            unsigned.sequence = 7;
            chan.send(&Frame::Countersigned(
                7,
                countersign(unsigned, s1).node_signature,
            ))
            .await
            .expect("send");
            // Lie 3: a receipt asked for again with nothing delivered since.
            chan.send(&Frame::ReceiptDue(u64::MAX)).await.expect("send");

            // The rest, then a request for the most a count can be.
            chan.send(&Frame::Data(second)).await.expect("send");
            chan.send(&Frame::ReceiptDue(u64::MAX)).await.expect("send");
            let (r2, s2) = receipt(&mut chan).await;
            receipts.push((r2, s2));
            chan.send(&Frame::Countersigned(
                r2.sequence,
                countersign(r2, s2).node_signature,
            ))
            .await
            .expect("send");
            // Whatever the client sends until it closes.
            loop {
                match next(&mut chan).await {
                    Some(Frame::Receipt(r, sig)) => receipts.push((r, sig)),
                    Some(Frame::Data(d)) => received += d.len() as u64,
                    Some(Frame::Close(_)) | None => break,
                    Some(other) => panic!("unexpected {other:?}"),
                }
            }
            (receipts, received)
        })
    };

    let session = ClientSession::open(client_end, cx, key.verifying_key().to_bytes())
        .await
        .expect("open");
    let (mut scraper, local) = tokio::io::duplex(1 << 20);
    let relay = tokio::spawn(session.relay(local));
    scraper.write_all(&request).await.expect("write");
    let mut got = vec![0u8; delivered as usize];
    tokio::time::timeout(Duration::from_secs(10), scraper.read_exact(&mut got))
        .await
        .expect("in time")
        .expect("read");
    assert_eq!(got, [first, second].concat());
    drop(scraper);
    let report = tokio::time::timeout(Duration::from_secs(10), relay)
        .await
        .expect("in time")
        .expect("join")
        .expect("relay");
    let (receipts, received) = hostile.await.expect("join");

    // The client counts exactly what moved: its request and the bytes delivered.
    assert_eq!(received, request.len() as u64);
    assert_eq!(report.counted, billed);
    // Every receipt it signed is for at most that, each for its own count at the time, whatever
    // the node asked; none for a request that came with nothing new.
    let amounts: Vec<u64> = receipts.iter().map(|(r, _)| r.cumulative_bytes).collect();
    assert_eq!(
        amounts,
        vec![
            request.len() as u64,
            request.len() as u64 + first_len,
            billed
        ]
    );
    for (i, (r, sig)) in receipts.iter().enumerate() {
        assert!(r.cumulative_bytes <= billed, "{r:?}");
        assert_eq!(r.sequence, i as u64 + 1);
        assert_eq!(r.node, key.verifying_key().to_bytes());
        assert_eq!(r.client, client_key);
        SigCheck::new(r.client_message(&D), *sig, r.client)
            .verify_strict()
            .expect("the client's signature");
    }
    assert_eq!(report.signed, receipts.len() as u64);
    // Only the honest countersignatures are kept: not the inflated one, nor the one of a receipt
    // the client never signed.
    let kept: Vec<UsageReceipt> = report.countersigned.iter().map(|s| s.receipt).collect();
    assert_eq!(kept, vec![receipts[0].0, receipts[2].0]);
    for s in &report.countersigned {
        for c in s.checks(&D) {
            c.verify_strict().expect("both signatures");
        }
    }
}
