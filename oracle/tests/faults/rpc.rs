//! The chain's endpoint down or slow: a TCP proxy between the oracle and the local endpoint that
//! forwards, delays, or refuses (its listener closed, open connections cut). The oracle keeps
//! ingesting, reports the chain unreachable, backs off, and once the endpoint is back gets its
//! journaled vote on-chain exactly once: the same transaction, never a second one.

use crate::harness::*;
use backhaul::state::EpochStatus;
use rand::rngs::StdRng;
use rand::SeedableRng;
use solana_sdk::signature::Signer;
use sqlx::Row;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Up,
    /// Every chunk from the client waits this long before it is forwarded.
    Slow(Duration),
    /// Nothing listens; open connections are cut.
    Down,
}

pub struct Proxy {
    pub addr: SocketAddr,
    mode: watch::Sender<Mode>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (mode, rx) = watch::channel(Mode::Up);
        let task = tokio::spawn(serve(Some(listener), addr, upstream, rx));
        Proxy { addr, mode, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set(&self, mode: Mode) {
        let _ = self.mode.send(mode);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    mut listener: Option<TcpListener>,
    addr: SocketAddr,
    upstream: SocketAddr,
    mut mode: watch::Receiver<Mode>,
) {
    loop {
        let current = *mode.borrow_and_update();
        if current == Mode::Down {
            listener = None;
            if mode.changed().await.is_err() {
                return;
            }
            continue;
        }
        if listener.is_none() {
            // The port was released when the proxy went down; take it again.
            match TcpListener::bind(addr).await {
                Ok(l) => listener = Some(l),
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            }
        }
        let Some(l) = &listener else { continue };
        tokio::select! {
            accepted = l.accept() => {
                if let Ok((client, _)) = accepted {
                    tokio::spawn(connection(client, upstream, mode.clone()));
                }
            }
            changed = mode.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

async fn connection(client: TcpStream, upstream: SocketAddr, mut mode: watch::Receiver<Mode>) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let delays = mode.clone();
    let up = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match cr.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let current = *delays.borrow();
            if let Mode::Slow(d) = current {
                tokio::time::sleep(d).await;
            }
            if sw.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    let down = async move {
        let _ = tokio::io::copy(&mut sr, &mut cw).await;
    };
    // Both directions end together; going down cuts the connection (dropping both sockets).
    tokio::select! {
        _ = up => {}
        _ = down => {}
        _ = mode.wait_for(|m| *m == Mode::Down) => {}
    }
}

/// The submitter's pauses after failures (`retry_in_secs=N`), as logged from line `from` on.
fn backoffs(log: &Log, from: usize) -> Vec<u64> {
    log.lines_from(from)
        .iter()
        .filter(|l| l.contains("submitter tick failed"))
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("retry_in_secs="))
                .and_then(|v| v.parse().ok())
        })
        .collect()
}

async fn journal(o: &OracleProc, kind: &str) -> Vec<(u64, String, u64, String)> {
    let pool = backhaul_oracle::db::connect(&backhaul_oracle::db::sqlite_url(&o.data_dir))
        .await
        .expect("the oracle's database");
    let rows = sqlx::query(
        "SELECT epoch, status, attempts, signature FROM submissions WHERE kind = $1 ORDER BY epoch",
    )
    .bind(kind)
    .fetch_all(&pool)
    .await
    .expect("journal");
    pool.close().await;
    rows.iter()
        .map(|r| {
            (
                r.get::<i64, _>("epoch") as u64,
                r.get::<String, _>("status"),
                r.get::<i64, _>("attempts") as u64,
                r.get::<String, _>("signature"),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chain_endpoint_down_or_slow_backs_off_reports_and_votes_exactly_once() {
    let seed = seed("rpc faults");
    let mut rng = StdRng::seed_from_u64(seed);
    let chain = Chain::start(1, 1).await;
    let proxy = Proxy::start(chain.net.local_addr()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let key = write_keypair(dir.path(), "oracle", &chain.oracles[0]);
    let s = oracle_settings(
        &chain,
        &proxy.url(),
        &dir.path().join("oracle"),
        free_addr(),
        Some(key),
    );
    let mut o = OracleProc::new(dir.path(), "oracle", &s, None);
    o.start().await;
    let traffic = Arc::new(Traffic::new(&chain, &mut rng, 2, 2));
    traffic.register(&o.url).await;
    let feeder = Feeder::start(
        traffic,
        vec![o.url.clone()],
        seed,
        Rate {
            new: 5,
            updates: 2,
            every: Duration::from_millis(200),
            loss: 0.0,
        },
    );
    feeder.feed(Some(0));
    let (code, h) = health(&o.url).await;
    assert_eq!(code, 200, "{h}");
    assert_eq!(h["chain"]["status"], "ok", "{h}");

    // Down: the epoch ends on the chain, but the oracle cannot see it.
    let mark = o.log.len();
    proxy.set(Mode::Down);
    chain
        .warp_to(chain.epoch_end(0) + GRACE_SECS as i64 + 1)
        .await;
    let acked_before = feeder.acked()[0].len();
    tokio::time::sleep(Duration::from_secs(8)).await;
    // Ingest goes on.
    let acked_during = feeder.acked()[0].len();
    assert!(
        acked_during > acked_before,
        "receipts are still acknowledged while the chain is unreachable ({acked_before} then {acked_during})"
    );
    let (code, h) = health(&o.url).await;
    assert_eq!(code, 200, "ingest works, so the oracle is up: {h}");
    assert_eq!(h["status"], "degraded", "{h}");
    assert_eq!(h["chain"]["status"], "unreachable", "{h}");
    assert!(h["chain"]["failures"].as_u64().unwrap_or(0) >= 5, "{h}");
    assert!(
        h["chain"]["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{h}"
    );
    assert_eq!(h["submitter"]["status"], "retrying", "{h}");
    assert!(
        h["submitter"]["retry_in_secs"].as_u64().unwrap_or(0) >= 4,
        "{h}"
    );
    // The submitter backs off: each pause longer than the one before, up to the cap.
    let pauses = backoffs(&o.log, mark);
    assert!(pauses.len() >= 2, "{pauses:?}:\n{}", o.log.tail(20));
    assert!(
        pauses.windows(2).all(|w| w[1] > w[0] || w[1] == 30),
        "backoff grows: {pauses:?}"
    );
    assert!(metric(&o.url, "backhaul_submit_errors_total").await >= 2.0);
    assert_eq!(metric(&o.url, "backhaul_chain_reachable").await, 0.0);
    assert!(metric(&o.url, "backhaul_chain_errors_total").await >= 5.0);
    assert!(chain.record(0).await.is_none(), "nothing was voted");

    // Everything sent so far is in; from now on the oracle can see epoch 0 end, so the traffic
    // moves on to epoch 1.
    feeder.drain(60).await;
    feeder.feed(Some(1));

    // Slow: the oracle seals, closes and votes through a slow endpoint; the moment it sends its
    // vote, the endpoint goes down again, so the vote is cut in transit (or just made it).
    let mark = o.log.len();
    proxy.set(Mode::Slow(Duration::from_millis(250)));
    let line = wait_for("the oracle to send its vote", 90, || async {
        o.log.find(mark, |l| {
            l.contains(" sending ") && (l.contains("kind=\"vote\"") || l.contains("kind=vote "))
        })
    })
    .await;
    proxy.set(Mode::Down);
    let signature = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("signature="))
        .expect("the signature is logged")
        .to_string();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let votes = journal(&o, "vote").await;
    assert_eq!(votes.len(), 1, "{votes:?}");
    assert_eq!(
        (votes[0].1.as_str(), votes[0].2, votes[0].3.as_str()),
        ("pending", 1, signature.as_str()),
        "while the endpoint is down the journaled vote stays pending"
    );
    let landed = chain.record(0).await.is_some();
    println!(
        "the vote {} before the endpoint went down",
        if landed {
            "had landed"
        } else {
            "was cut in transit"
        }
    );

    // Back: the same transaction is found or sent again; one vote, one attempt.
    proxy.set(Mode::Up);
    let r = wait_for("quorum on epoch 0", 90, || async {
        chain
            .record(0)
            .await
            .filter(|r| r.status == EpochStatus::Proposed)
    })
    .await;
    assert_eq!(r.votes.len(), 1);
    assert_eq!(r.votes[0].oracle, chain.oracles[0].pubkey());
    wait_for("the vote confirmed in the journal", 30, || async {
        let v = journal(&o, "vote").await;
        (v.len() == 1 && v[0].1 == "confirmed").then_some(())
    })
    .await;
    let votes = journal(&o, "vote").await;
    assert_eq!(
        (votes[0].2, votes[0].3.as_str()),
        (1, signature.as_str()),
        "the same transaction, not a second one"
    );
    let (code, h) = health(&o.url).await;
    assert_eq!(code, 200, "{h}");
    wait_for("health to report the chain back", 30, || async {
        let (_, h) = health(&o.url).await;
        (h["chain"]["status"] == "ok" && h["submitter"]["status"] == "ok").then_some(())
    })
    .await;
    assert_eq!(metric(&o.url, "backhaul_chain_reachable").await, 1.0);

    // Slow again through finalization: it finalizes once.
    proxy.set(Mode::Slow(Duration::from_millis(200)));
    chain.warp_to(r.finalizable_at + 1).await;
    wait_for("epoch 0 finalized", 90, || async {
        chain
            .record(0)
            .await
            .filter(|r| r.status == EpochStatus::Finalized)
    })
    .await;
    let finals = journal(&o, "finalize").await;
    assert_eq!(finals.len(), 1, "{finals:?}");
    assert_eq!(finals[0].2, 1, "{finals:?}");
    let seals = journal(&o, "seal").await;
    assert_eq!(seals.len(), 1, "{seals:?}");
    feeder.drain(60).await;
    let unexpected = feeder.unexpected();
    assert!(
        unexpected.is_empty(),
        "{} unexpected answers, the first: {:?}",
        unexpected.len(),
        &unexpected[..unexpected.len().min(5)]
    );
    o.kill();
    let stored = kept_receipts(&o.data_dir).await;
    let lost = lost_receipts(&feeder.acked()[0], &feeder.sent(), &stored);
    assert!(lost.is_empty(), "{lost:?}");
}
