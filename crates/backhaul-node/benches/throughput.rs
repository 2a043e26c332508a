//! Throughput of one stream through a gateway session and a node, against a direct TCP transfer
//! of the same bytes measured in the same run, on loopback (no shaping): the ratio, the CPU time
//! per GiB (both ends of the session run in this process) and the share of the channel's bytes
//! spent on receipts and framing.
//!
//! `cargo bench -p backhaul-node --bench throughput` (`BACKHAUL_BENCH_MIB` sets the size, 512 by
//! default).

mod common;

use backhaul_node::client::{ClientContext, ClientSession};
use backhaul_node::egress::Policy;
use backhaul_node::session::{self, BoxFuture, NodeContext, ReceiptStore};
use backhaul_protocol::{ClientGrant, SignedReceipt};
use common::{cpu, Any, D};
use ed25519_dalek::SigningKey;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Default)]
struct Count(AtomicU64);
impl ReceiptStore for Count {
    fn store(&self, _: SignedReceipt) -> BoxFuture<'_, Result<(), String>> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Box::pin(async { Ok(()) })
    }
}

/// An origin that sends `bytes` to whoever connects (after reading a request line).
async fn origin(bytes: u64) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = l.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut req = [0u8; 256];
                let _ = s.read(&mut req).await;
                let chunk = vec![b'x'; 1 << 20];
                let mut left = bytes;
                while left > 0 {
                    let n = left.min(chunk.len() as u64) as usize;
                    if s.write_all(&chunk[..n]).await.is_err() {
                        return;
                    }
                    left -= n as u64;
                }
                let _ = s.shutdown().await;
            });
        }
    });
    port
}

async fn drain(s: &mut (impl AsyncReadExt + Unpin)) -> u64 {
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    while let Ok(k) = s.read(&mut buf).await {
        if k == 0 {
            break;
        }
        n += k as u64;
    }
    n
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let mib: u64 = std::env::var("BACKHAUL_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512);
    let bytes = mib << 20;
    let port = origin(bytes).await;

    // Direct: a TCP client reads everything from the origin.
    let (t0, c0) = (Instant::now(), cpu());
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    s.write_all(b"GET\r\n").await.expect("write");
    let got = drain(&mut s).await;
    let (direct, direct_cpu) = (t0.elapsed().as_secs_f64(), cpu() - c0);
    assert_eq!(got, bytes);

    // Through a session: gateway side and node side in this process, over loopback TCP.
    let node = SigningKey::from_bytes(&[7; 32]);
    let stored = Arc::new(Count::default());
    let mut policy = Policy {
        allow_loopback: true,
        ..Policy::default()
    };
    policy.ports.insert(port);
    let cx = Arc::new(NodeContext {
        deployment: D,
        node: node.clone(),
        genesis_ts: 0,
        epoch_length_secs: 86_400 * 365 * 100,
        receipt_every_bytes: 1 << 20,
        max_unreceipted_bytes: 4 << 20,
        timeout: Duration::from_secs(10),
        policy,
        grants: Arc::new(Any),
        receipts: stored.clone(),
        clock: Arc::new(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0)
        }),
    });
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let cx = cx.clone();
            tokio::spawn(async move {
                let _ = session::serve(s, &cx).await;
            });
        }
    });
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
    let ccx = ClientContext {
        deployment: D,
        client,
        grant,
        timeout: Duration::from_secs(10),
    };
    let (t1, c1) = (Instant::now(), cpu());
    let stream = TcpStream::connect(addr).await.expect("connect");
    let session = ClientSession::open(stream, ccx, node.verifying_key().to_bytes())
        .await
        .expect("open");
    let (mut scraper, local) = tokio::io::duplex(4 << 20);
    let relay = tokio::spawn(session.relay(local));
    scraper
        .write_all(format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\nGET\r\n").as_bytes())
        .await
        .expect("write");
    let got = drain(&mut scraper).await;
    drop(scraper);
    let report = relay.await.expect("join").expect("relay");
    let (through, through_cpu) = (t1.elapsed().as_secs_f64(), cpu() - c1);
    assert!(got >= bytes, "{got} of {bytes} bytes");

    let gib = bytes as f64 / (1u64 << 30) as f64;
    let receipts = report.countersigned.len() as u64;
    // On the channel per receipt: the request (a frame of about 177 bytes), the receipt due
    // (about 10), the countersignature (about 73), each with 2 + 16 bytes of framing.
    let receipt_bytes = receipts * (177 + 10 + 73 + 3 * 18);
    let frames = report
        .counted
        .div_ceil(backhaul_node::frame::MAX_DATA as u64);
    let framing = frames * 23;
    println!("throughput of one stream, {mib} MiB on loopback, measured in one run");
    println!("| path | seconds | MiB/s | CPU s per GiB |");
    println!("|---|---|---|---|");
    println!(
        "| direct TCP (baseline) | {direct:.3} | {:.0} | {:.2} |",
        mib as f64 / direct,
        direct_cpu / gib
    );
    println!(
        "| gateway session and node | {through:.3} | {:.0} | {:.2} |",
        mib as f64 / through,
        through_cpu / gib
    );
    println!(
        "ratio of throughput through the session to direct: {:.2}",
        direct / through
    );
    println!(
        "receipts: {receipts} ({} stored by the node), about {receipt_bytes} bytes, {:.4}% of the {} bytes counted; framing about {framing} bytes ({:.3}%)",
        stored.0.load(Ordering::Relaxed),
        receipt_bytes as f64 * 100.0 / report.counted as f64,
        report.counted,
        framing as f64 * 100.0 / report.counted as f64,
    );
}
