//! The demo's real traffic (unless `--simulated-only`): beside the simulated receipts of the other
//! nodes, real bytes through the real services over loopback. The first node runs as `backhaul node serve` does (the node service,
//! the credit check against the chain, the receipt queue delivered to every oracle) and the
//! first firm's first client runs `backhaul firm gateway`; each epoch a scraper fetches a few
//! MiB from a local origin through the gateway and the node, and the countersigned receipts
//! reach the oracles before the epoch ends, to be counted and paid with the rest.
//!
//! Session ids and ages then depend on the run, so the same seed no longer gives the same
//! datasets byte for byte.

use crate::node::{oracle_clients, CreditCheck, CREDIT_CACHE};
use anyhow::{anyhow, bail, Context as _};
use backhaul_node::client::ClientContext;
use backhaul_node::delivery::{Delivery, QueueStore};
use backhaul_node::egress::Policy;
use backhaul_node::gateway::{Gateway, GatewayConfig, NodeAddr};
use backhaul_node::queue::Queue;
use backhaul_node::server::{Limits, Server};
use backhaul_node::session::NodeContext;
use backhaul_protocol::SignedGrant;
use ed25519_dalek::SigningKey;
use serde::Serialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// What one epoch's fetch moved.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RealRun {
    /// The body fetched, bytes.
    pub body_bytes: u64,
    /// Every byte of the proxied stream both ways, as the receipts count them.
    pub bytes: u64,
    /// Receipts the node countersigned for it.
    pub receipts: u64,
    /// Seconds the fetch took.
    pub secs: f64,
    /// The node (base58) and the bytes its epoch's dataset counts for it: it carries only this
    /// traffic, so they equal `bytes`.
    pub node: String,
    pub counted: u64,
}

/// The body the origin serves: `size` bytes, not all alike.
fn body(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i * 7 % 251) as u8).collect()
}

/// A local origin answering `GET /bytes/N` with N bytes.
async fn origin() -> anyhow::Result<(u16, JoinHandle<()>)> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let port = l.local_addr()?.port();
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(buf.get(..n).unwrap_or_default()),
                    }
                }
                let size: usize = String::from_utf8_lossy(&head)
                    .split_whitespace()
                    .nth(1)
                    .and_then(|p| p.strip_prefix("/bytes/"))
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {size}\r\nconnection: close\r\n\r\n"
                );
                let _ = s.write_all(answer.as_bytes()).await;
                let _ = s.write_all(&body(size)).await;
                let _ = s.shutdown().await;
            });
        }
    });
    Ok((port, task))
}

/// The chain's clock as the demo last read it, moving with this machine's from then on (the
/// demo moves the chain's clock between epochs).
#[derive(Clone)]
struct DemoClock(Arc<Mutex<(i64, Instant)>>);

impl DemoClock {
    fn now(&self) -> i64 {
        let (ts, at) = *self.0.lock().unwrap_or_else(|e| e.into_inner());
        ts.saturating_add(i64::try_from(at.elapsed().as_secs()).unwrap_or(0))
    }

    fn set(&self, ts: i64) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = (ts, Instant::now());
    }
}

/// The node and the gateway, running.
pub struct RealTraffic {
    origin: u16,
    gateway: SocketAddr,
    report: PathBuf,
    delivery: Delivery,
    clock: DemoClock,
    stops: Vec<oneshot::Sender<()>>,
    tasks: Vec<JoinHandle<()>>,
    /// `KEY@ADDR` of the node, and its key alone (base58).
    pub node: String,
    pub node_key: String,
}

/// Who takes part.
pub struct RealParties {
    /// The node's key (bound to its operator at every oracle).
    pub node: SigningKey,
    /// The client's key and its buyer's grant.
    pub client: SigningKey,
    pub grant: SignedGrant,
}

impl RealTraffic {
    /// Starts the origin, the node service and the gateway. `ctx` reads the chain (the node's
    /// credit check); `genesis` and `epoch_secs` are the deployment's.
    pub async fn start(
        ctx: crate::Context,
        deployment: backhaul_sdk::Deployment,
        (genesis, epoch_secs): (i64, u64),
        urls: &[String],
        parties: RealParties,
        dir: &Path,
    ) -> anyhow::Result<RealTraffic> {
        let proto = crate::operator::protocol_deployment(&deployment);
        let (origin, origin_task) = origin().await?;
        let clock = DemoClock(Arc::new(Mutex::new((genesis, Instant::now()))));
        let queue = Queue::open(&dir.join("node-queue"))
            .await
            .context("the demo node's receipt queue")?;
        let delivery = Delivery::new(queue, oracle_clients(urls)?, Duration::from_secs(1), "node");
        let mut policy = Policy {
            allow_loopback: true,
            ..Policy::default()
        };
        policy.ports.insert(origin);
        let node_clock = clock.clone();
        let cx = NodeContext {
            deployment: proto,
            node: parties.node.clone(),
            genesis_ts: genesis,
            epoch_length_secs: epoch_secs,
            receipt_every_bytes: 1 << 20,
            max_unreceipted_bytes: 4 << 20,
            timeout: Duration::from_secs(10),
            policy,
            grants: Arc::new(CreditCheck::new(Arc::new(ctx), deployment, CREDIT_CACHE)),
            receipts: Arc::new(QueueStore(delivery.clone())),
            clock: Arc::new(move || node_clock.now()),
        };
        let limits = Limits {
            max_sessions: 16,
            bandwidth_bytes_per_sec: 0,
            monthly_bytes: 0,
            drain: Duration::from_secs(2),
        };
        let server = Server::bind(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            cx,
            delivery.clone(),
            limits,
        )
        .await
        .context("the demo node cannot listen")?;
        let node_addr = server.local_addr()?;
        let (stop_node, node_stopped) = oneshot::channel::<()>();
        let node_task = tokio::spawn(async move {
            let _ = server
                .run(async {
                    let _ = node_stopped.await;
                })
                .await;
        });
        let node = NodeAddr {
            key: parties.node.verifying_key().to_bytes(),
            addr: node_addr.to_string(),
        };
        let report = dir.join("gateway-report.json");
        let gw = Gateway::bind(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            GatewayConfig {
                nodes: vec![node.clone()],
                client: ClientContext {
                    deployment: proto,
                    client: parties.client,
                    grant: parties.grant,
                    timeout: Duration::from_secs(10),
                },
                report: Some(report.clone()),
                status_every: Duration::from_secs(3_600),
            },
            // The node sends the receipts; the demo's gateway keeps its copies.
            None,
        )
        .await
        .context("the demo gateway cannot listen")?;
        let gateway = gw.local_addr()?;
        let (stop_gw, gw_stopped) = oneshot::channel::<()>();
        let gw_task = tokio::spawn(async move {
            let _ = gw
                .run(async {
                    let _ = gw_stopped.await;
                })
                .await;
        });
        Ok(RealTraffic {
            origin,
            gateway,
            report,
            delivery,
            clock,
            stops: vec![stop_gw, stop_node],
            tasks: vec![gw_task, node_task, origin_task],
            node: node.to_string(),
            node_key: node.key_b58(),
        })
    }

    /// Fetches `size` bytes through the gateway and the node (HTTP CONNECT, as `curl -p`
    /// does) while the chain's clock reads `chain_now`, checks the body, and waits until every
    /// oracle has the session's receipts.
    pub async fn fetch(
        &self,
        chain_now: i64,
        size: usize,
        within: Duration,
    ) -> anyhow::Result<RealRun> {
        self.clock.set(chain_now);
        let started = Instant::now();
        let request = format!(
            "CONNECT 127.0.0.1:{o} HTTP/1.1\r\nHost: 127.0.0.1:{o}\r\n\r\nGET /bytes/{size} HTTP/1.1\r\nHost: origin\r\nConnection: close\r\n\r\n",
            o = self.origin
        );
        let mut s = TcpStream::connect(self.gateway)
            .await
            .context("connecting to the demo gateway")?;
        s.write_all(request.as_bytes()).await?;
        let mut got = Vec::new();
        tokio::time::timeout(within, s.read_to_end(&mut got))
            .await
            .map_err(|_| anyhow!("the fetch through the demo gateway took over {within:?}"))??;
        drop(s);
        if !got.starts_with(b"HTTP/1.1 200") || !got.ends_with(&body(size)) {
            bail!(
                "the fetch through the demo gateway and node did not bring the body back: {}",
                String::from_utf8_lossy(got.get(..200.min(got.len())).unwrap_or_default())
            );
        }
        let secs = started.elapsed().as_secs_f64();
        let bytes = (request.len() + got.len()) as u64;
        // The gateway reports the session once its last receipt is countersigned.
        let deadline = Instant::now() + within;
        let receipts = loop {
            let last = std::fs::read(&self.report)
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .and_then(|r| r["recent"].as_array().and_then(|a| a.last().cloned()));
            if let Some(s) = last.filter(|s| s["bytes"].as_u64() == Some(bytes)) {
                if s["last_cumulative_bytes"].as_u64() != Some(bytes) {
                    bail!("the demo gateway's last receipt does not cover the fetch: {s}");
                }
                break s["receipts"].as_u64().unwrap_or(0);
            }
            if Instant::now() > deadline {
                bail!("the demo gateway did not report the fetch");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        // Every oracle has the receipts before the epoch ends.
        for o in self.delivery.oracles() {
            let name = o.base_url().to_string();
            loop {
                if self.delivery.queue.pending_len(&name).await? == 0 {
                    break;
                }
                if Instant::now() > deadline {
                    bail!("the demo node's receipts did not reach {name}");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(RealRun {
            body_bytes: size as u64,
            bytes,
            receipts,
            secs,
            node: self.node_key.clone(),
            counted: 0,
        })
    }

    /// Stops the gateway, the node (which sends its queue once more) and the origin.
    pub async fn stop(self) {
        for s in self.stops {
            let _ = s.send(());
        }
        let mut tasks = self.tasks.into_iter();
        for t in tasks.by_ref().take(2) {
            let _ = tokio::time::timeout(Duration::from_secs(15), t).await;
        }
        for t in tasks {
            t.abort();
        }
    }
}
