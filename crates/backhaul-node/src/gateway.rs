//! The firm's gateway as a service (`backhaul firm gateway`): a local SOCKS5 / HTTP `CONNECT`
//! proxy. Each local connection becomes one session with a node, picked round-robin among the
//! configured ones (the next one is tried when a node cannot be reached or refuses the session);
//! the scraper's proxy request goes to the node, which answers it. The countersigned receipts
//! each session collects are queued and sent to the oracles too (the node sends them as well;
//! the oracles count each session once).
//!
//! Plain-HTTP proxy requests (`GET http://host/path`, what `curl --proxy` sends for an `http://`
//! URL) go to the node as they are too: the node forwards each to its origin, one request per
//! connection (`crate::proxy`).
//!
//! Metrics: `backhaul_gateway_sessions_open`, `backhaul_gateway_sessions_total{outcome}`
//! (`relayed`, `no_node`, `rejected`), `backhaul_gateway_node_failures_total{reason}`
//! (`connect`, `refused`, `handshake`), `backhaul_gateway_bytes_total` (payload bytes both
//! ways, as receipts count them), `backhaul_gateway_receipts_countersigned_total`, and the
//! queue's `backhaul_gateway_queue_length{oracle}`, `backhaul_gateway_deliveries_total{result}`.

use crate::client::{ClientContext, ClientSession, OpenError};
use crate::delivery::Delivery;
use crate::proxy::{self, Failure, Handshake};
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// What the gateway answers bytes that are no proxy request at all.
pub const NOT_A_PROXY_REQUEST: &str =
    "not a proxy request: this gateway speaks SOCKS5, HTTP CONNECT and plain HTTP (GET http://...)";

/// Sessions kept in the report's `recent` list.
const RECENT: usize = 1_000;

/// On shutdown, how long relays in progress may go on.
const DRAIN: Duration = Duration::from_secs(5);

/// A node to send sessions to: its key and address, `KEY@HOST:PORT`, or `KEY@relay://HOST:PORT`
/// for a node reached through a relay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeAddr {
    pub key: [u8; 32],
    pub addr: String,
}

impl NodeAddr {
    pub fn key_b58(&self) -> String {
        bs58::encode(self.key).into_string()
    }

    /// The relay's `HOST:PORT` when the node is reached through one.
    pub fn relay(&self) -> Option<&str> {
        self.addr.strip_prefix("relay://")
    }
}

impl std::fmt::Display for NodeAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.key_b58(), self.addr)
    }
}

impl FromStr for NodeAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (key, addr) = s.trim().split_once('@').ok_or_else(|| {
            format!("{s:?} is not NODEKEY@HOST:PORT or NODEKEY@relay://HOST:PORT")
        })?;
        let bytes = bs58::decode(key)
            .into_vec()
            .map_err(|e| format!("the node key {key:?} is not base58: {e}"))?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| format!("the node key {key:?} is not 32 bytes"))?;
        if crate::keys::noise_public_of(&key).is_none() {
            return Err(format!(
                "the node key {} is not a valid ed25519 key",
                bs58::encode(key).into_string()
            ));
        }
        let (host, port) = addr
            .strip_prefix("relay://")
            .unwrap_or(addr)
            .rsplit_once(':')
            .ok_or_else(|| format!("{addr:?} is not HOST:PORT"))?;
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(format!("{addr:?} is not HOST:PORT"));
        }
        Ok(NodeAddr {
            key,
            addr: addr.to_string(),
        })
    }
}

/// One node's share of the gateway's usage.
#[derive(Clone, Debug, Default, Serialize)]
pub struct NodeUsage {
    pub sessions: u64,
    pub bytes: u64,
    pub receipts: u64,
    /// Sessions the node could not open (unreachable, refused, failed handshake).
    pub failures: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// One session, as the report lists it.
#[derive(Clone, Debug, Serialize)]
pub struct SessionRecord {
    pub node: String,
    /// Hex.
    pub session_id: String,
    pub epoch: u64,
    /// Payload bytes both ways (what receipts count).
    pub bytes: u64,
    /// Receipts the node countersigned.
    pub receipts: u64,
    /// The last countersigned receipt's sequence and amount (0 without one).
    pub last_sequence: u64,
    pub last_cumulative_bytes: u64,
    pub end: String,
}

/// The gateway's usage since it started (`--report`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Usage {
    /// Sessions relayed.
    pub sessions: u64,
    /// Local connections no node would serve.
    pub no_node: u64,
    /// Local connections the gateway refused itself (not a proxy request).
    pub rejected: u64,
    /// Payload bytes relayed both ways.
    pub bytes: u64,
    /// Receipts countersigned by the nodes.
    pub receipts: u64,
    /// By node key (base58).
    pub nodes: BTreeMap<String, NodeUsage>,
    /// The latest sessions, oldest first.
    pub recent: VecDeque<SessionRecord>,
}

/// How the gateway runs.
#[derive(Clone)]
pub struct GatewayConfig {
    pub nodes: Vec<NodeAddr>,
    pub client: ClientContext,
    /// Where the usage report is written (JSON, after every session and at the end).
    pub report: Option<PathBuf>,
    /// How often a usage line is logged.
    pub status_every: Duration,
}

/// Where the gateway finds more nodes: the oracles' directories (`crate::directory`).
#[derive(Clone)]
pub struct DirectorySource {
    pub oracles: Vec<backhaul_client::OracleClient>,
    /// How often the directory is read again.
    pub refresh: Duration,
    /// Unix seconds now (adverts are current for a day).
    pub clock: Arc<dyn Fn() -> i64 + Send + Sync>,
}

/// The gateway, bound and ready to run.
pub struct Gateway {
    listener: TcpListener,
    shared: Arc<Shared>,
}

struct Shared {
    config: GatewayConfig,
    directory: Option<DirectorySource>,
    /// The nodes the directory lists (besides the configured ones).
    found: Mutex<Vec<NodeAddr>>,
    delivery: Option<Delivery>,
    usage: Mutex<Usage>,
    next: AtomicUsize,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Gateway {
    /// Binds `listen`; countersigned receipts go to `delivery` (none: not sent anywhere by the
    /// gateway).
    pub async fn bind(
        listen: SocketAddr,
        config: GatewayConfig,
        delivery: Option<Delivery>,
    ) -> std::io::Result<Gateway> {
        Gateway::bind_with_directory(listen, config, delivery, None).await
    }

    /// [`Gateway::bind`], also sending sessions to the nodes `directory` lists (read when the
    /// gateway starts running, then every `refresh`).
    pub async fn bind_with_directory(
        listen: SocketAddr,
        config: GatewayConfig,
        delivery: Option<Delivery>,
        directory: Option<DirectorySource>,
    ) -> std::io::Result<Gateway> {
        if config.nodes.is_empty() && directory.is_none() {
            return Err(std::io::Error::other("no node to send sessions to"));
        }
        let listener = TcpListener::bind(listen).await?;
        Ok(Gateway {
            listener,
            shared: Arc::new(Shared {
                config,
                directory,
                found: Mutex::new(Vec::new()),
                delivery,
                usage: Mutex::new(Usage::default()),
                next: AtomicUsize::new(0),
            }),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes; the usage at the end.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Usage {
        let Gateway { listener, shared } = self;
        let (stop_tx, stop_rx) = watch::channel(false);
        let loops = shared
            .delivery
            .as_ref()
            .map(|d| d.spawn(stop_rx))
            .unwrap_or_default();
        let mut conns = JoinSet::new();
        let mut status = tokio::time::interval(shared.config.status_every);
        status.tick().await;
        let finder = match &shared.directory {
            Some(dir) => {
                // The first reading before the first connection is served.
                shared.refresh_directory().await;
                let shared = shared.clone();
                let refresh = dir.refresh;
                Some(tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(refresh).await;
                        shared.refresh_directory().await;
                    }
                }))
            }
            None => None,
        };
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot accept a local connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Ok((stream, peer)) => {
                        let shared = shared.clone();
                        conns.spawn(async move { shared.local(stream, peer).await });
                    }
                },
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
                _ = status.tick() => shared.status().await,
            }
        }
        drop(listener);
        if let Some(f) = finder {
            f.abort();
        }
        if tokio::time::timeout(DRAIN, async { while conns.join_next().await.is_some() {} })
            .await
            .is_err()
        {
            conns.abort_all();
            while conns.join_next().await.is_some() {}
        }
        let _ = stop_tx.send(true);
        for l in loops {
            let _ = l.await;
        }
        if let Some(d) = &shared.delivery {
            if !d.flush(Duration::from_secs(10)).await {
                tracing::warn!(
                    "some receipts have not reached every oracle: they stay queued in the data \
                     directory and are sent at the next start (the nodes send them too)"
                );
            }
        }
        shared.status().await;
        shared.write_report().await;
        shared.usage()
    }
}

/// What the first bytes of a local connection are.
#[derive(Debug, PartialEq, Eq)]
enum Kind {
    Socks,
    Connect,
    PlainHttp,
    Junk,
}

/// Looks at the first bytes without taking them (they go to the node as they are).
async fn classify(stream: &TcpStream, timeout: Duration) -> Option<Kind> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut buf = [0u8; 16];
    loop {
        let n = match tokio::time::timeout_at(deadline, stream.peek(&mut buf)).await {
            Ok(Ok(n)) => n,
            _ => return None,
        };
        let seen = buf.get(..n).unwrap_or_default();
        match seen.first() {
            None => return None,
            Some(5) => return Some(Kind::Socks),
            Some(b) if !b.is_ascii_uppercase() => return Some(Kind::Junk),
            Some(_) => {}
        }
        if let Some(space) = seen.iter().position(|b| *b == b' ') {
            let method = seen.get(..space).unwrap_or_default();
            return Some(if method == b"CONNECT" {
                Kind::Connect
            } else if method.iter().all(u8::is_ascii_uppercase) {
                Kind::PlainHttp
            } else {
                Kind::Junk
            });
        }
        if n == buf.len() {
            return Some(Kind::Junk);
        }
        // Part of the method so far: wait for more.
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Reads what the client sent (up to its request head, or a little), answers `answer`, and
/// closes after letting the client read it.
async fn answer_and_close(mut stream: TcpStream, answer: &[u8]) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while head.len() < proxy::MAX_HTTP_HEAD && !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(buf.get(..n).unwrap_or_default()),
            }
        }
    })
    .await;
    let _ = stream.write_all(answer).await;
    let _ = stream.shutdown().await;
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

/// Answers the client's proxy request (SOCKS5 or HTTP CONNECT) with a failure saying `why`,
/// without any node: as a proxy that could not connect.
async fn fail_locally(mut stream: TcpStream, why: &str, timeout: Duration) {
    let mut h = Handshake::default();
    let mut buf = [0u8; 4096];
    let mut first = None;
    let answered = tokio::time::timeout(timeout, async {
        loop {
            let n = match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => n,
            };
            let bytes = buf.get(..n).unwrap_or_default();
            first = first.or(bytes.first().copied());
            match h.feed(bytes) {
                Err(e) => return Some(h.refusal(first, &e)),
                Ok(step) => {
                    if !step.reply.is_empty() && stream.write_all(&step.reply).await.is_err() {
                        return None;
                    }
                    if let Some(c) = step.connect {
                        return Some(proxy::failure(c.protocol, Failure::Unreachable, why));
                    }
                }
            }
        }
    })
    .await;
    if let Ok(Some(answer)) = answered {
        let _ = stream.write_all(&answer).await;
    }
    let _ = stream.shutdown().await;
}

impl Shared {
    fn usage(&self) -> Usage {
        self.usage.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn with_usage<T>(&self, f: impl FnOnce(&mut Usage) -> T) -> T {
        f(&mut self.usage.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Reads the directory again; the nodes it lists replace those it listed before.
    async fn refresh_directory(&self) {
        let Some(dir) = &self.directory else {
            return;
        };
        let deployment = self.config.client.deployment;
        let found = crate::directory::read(&dir.oracles, &deployment, (dir.clock)()).await;
        let configured: std::collections::BTreeSet<[u8; 32]> =
            self.config.nodes.iter().map(|n| n.key).collect();
        let found: Vec<NodeAddr> = found
            .into_iter()
            .filter(|n| !configured.contains(&n.key))
            .collect();
        metrics::gauge!("backhaul_gateway_directory_nodes").set(found.len() as f64);
        tracing::info!(
            nodes = found.len(),
            "read the directory: {} node(s) besides --node",
            found.len()
        );
        for n in &found {
            tracing::debug!(node = %n, "from the directory");
        }
        *self.found.lock().unwrap_or_else(|e| e.into_inner()) = found;
    }

    /// The configured nodes, then the directory's.
    fn nodes(&self) -> Vec<NodeAddr> {
        let mut nodes = self.config.nodes.clone();
        nodes.extend(
            self.found
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .cloned(),
        );
        nodes
    }

    async fn status(&self) {
        let u = self.usage();
        let mut queued = 0;
        if let Some(d) = &self.delivery {
            for o in d.oracles() {
                queued = queued.max(
                    d.queue
                        .pending_len(o.base_url().as_str())
                        .await
                        .unwrap_or(0),
                );
            }
        }
        tracing::info!(
            sessions = u.sessions,
            bytes = u.bytes,
            receipts = u.receipts,
            no_node = u.no_node,
            rejected = u.rejected,
            queued_for_oracles = queued,
            "usage"
        );
    }

    async fn write_report(&self) {
        let Some(path) = &self.config.report else {
            return;
        };
        let json = match serde_json::to_vec_pretty(&self.usage()) {
            Ok(j) => j,
            Err(e) => {
                tracing::warn!(error = %e, "cannot encode the usage report");
                return;
            }
        };
        let tmp = path.with_extension("tmp");
        let written = async {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                tokio::fs::create_dir_all(dir).await?;
            }
            tokio::fs::write(&tmp, &json).await?;
            tokio::fs::rename(&tmp, path).await
        };
        if let Err(e) = written.await {
            tracing::warn!(path = %path.display(), error = %e, "cannot write the usage report");
        }
    }

    /// One local connection.
    async fn local(&self, stream: TcpStream, peer: SocketAddr) {
        let _ = stream.set_nodelay(true);
        let timeout = self.config.client.timeout;
        let kind = classify(&stream, timeout).await;
        let refuse = match kind {
            None => return,
            Some(Kind::Socks) | Some(Kind::Connect) | Some(Kind::PlainHttp) => None,
            Some(Kind::Junk) => Some(NOT_A_PROXY_REQUEST),
        };
        if let Some(why) = refuse {
            tracing::info!(%peer, "{why}");
            metrics::counter!("backhaul_gateway_sessions_total", "outcome" => "rejected")
                .increment(1);
            self.with_usage(|u| u.rejected += 1);
            let answer = proxy::failure(proxy::Protocol::HttpConnect, Failure::BadRequest, why);
            answer_and_close(stream, &answer).await;
            return;
        }
        let Some((node, session)) = self.open().await else {
            let why = "no node would open a session (see the gateway's log)";
            metrics::counter!("backhaul_gateway_sessions_total", "outcome" => "no_node")
                .increment(1);
            self.with_usage(|u| u.no_node += 1);
            fail_locally(stream, why, timeout).await;
            return;
        };
        let open = metrics::gauge!("backhaul_gateway_sessions_open");
        open.increment(1.0);
        let session_id = session.session_id();
        let epoch = session.welcome().epoch;
        let result = session.relay(stream).await;
        open.decrement(1.0);
        metrics::counter!("backhaul_gateway_sessions_total", "outcome" => "relayed").increment(1);
        let report = match result {
            Ok(r) => r,
            Err(e) => {
                tracing::info!(%peer, node = %node, error = %e, "the session broke");
                crate::client::ClientReport {
                    end: e.to_string(),
                    ..Default::default()
                }
            }
        };
        let receipts = report.countersigned.len() as u64;
        let last = report.countersigned.last().map(|r| r.receipt);
        tracing::info!(
            %peer,
            node = %node,
            session = %hex(&session_id),
            bytes = report.counted,
            receipts,
            receipted = last.map_or(0, |r| r.cumulative_bytes),
            end = %report.end,
            "session ended"
        );
        metrics::counter!("backhaul_gateway_bytes_total").increment(report.counted);
        metrics::counter!("backhaul_gateway_receipts_countersigned_total").increment(receipts);
        if let Some(d) = &self.delivery {
            for r in &report.countersigned {
                if let Err(e) = d.push(r).await {
                    tracing::error!(error = %e, "cannot queue a countersigned receipt for the oracles");
                }
            }
        }
        self.with_usage(|u| {
            u.sessions += 1;
            u.bytes = u.bytes.saturating_add(report.counted);
            u.receipts = u.receipts.saturating_add(receipts);
            let n = u.nodes.entry(node.key_b58()).or_default();
            n.sessions += 1;
            n.bytes = n.bytes.saturating_add(report.counted);
            n.receipts = n.receipts.saturating_add(receipts);
            u.recent.push_back(SessionRecord {
                node: node.key_b58(),
                session_id: hex(&session_id),
                epoch,
                bytes: report.counted,
                receipts,
                last_sequence: last.map_or(0, |r| r.sequence),
                last_cumulative_bytes: last.map_or(0, |r| r.cumulative_bytes),
                end: report.end.clone(),
            });
            while u.recent.len() > RECENT {
                u.recent.pop_front();
            }
        });
        self.write_report().await;
    }

    /// A session with the next node that opens one, round-robin.
    async fn open(&self) -> Option<(NodeAddr, ClientSession<TcpStream>)> {
        let nodes = self.nodes();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let timeout = self.config.client.timeout;
        for i in 0..nodes.len() {
            let Some(node) = nodes.get((start + i) % nodes.len()) else {
                continue;
            };
            let attempt = async {
                let stream = match node.relay() {
                    Some(relay) => {
                        let relay_addr = tokio::net::lookup_host(relay)
                            .await
                            .ok()
                            .and_then(|mut a| a.next())
                            .ok_or_else(|| {
                                ("connect", format!("cannot resolve the relay {relay}"))
                            })?;
                        crate::relay::dial(relay_addr, &node.key, timeout)
                            .await
                            .map_err(|e| ("connect", format!("through the relay {relay}: {e}")))?
                    }
                    None => tokio::time::timeout(timeout, TcpStream::connect(&node.addr))
                        .await
                        .map_err(|_| ("connect", "the connection timed out".to_string()))?
                        .map_err(|e| ("connect", e.to_string()))?,
                };
                let _ = stream.set_nodelay(true);
                ClientSession::open(stream, self.config.client.clone(), node.key)
                    .await
                    .map_err(|e| match e {
                        OpenError::Refused(_) => ("refused", e.to_string()),
                        _ => ("handshake", e.to_string()),
                    })
            };
            match attempt.await {
                Ok(s) => return Some((node.clone(), s)),
                Err((reason, why)) => {
                    tracing::warn!(node = %node, %why, "cannot open a session; trying the next node");
                    metrics::counter!("backhaul_gateway_node_failures_total", "reason" => reason)
                        .increment(1);
                    self.with_usage(|u| {
                        let n = u.nodes.entry(node.key_b58()).or_default();
                        n.failures += 1;
                        n.last_error = Some(why);
                    });
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_addresses() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32])
            .verifying_key()
            .to_bytes();
        let b58 = bs58::encode(key).into_string();
        let n: NodeAddr = format!("{b58}@127.0.0.1:7700").parse().expect("parse");
        assert_eq!((n.key, n.addr.as_str()), (key, "127.0.0.1:7700"));
        assert_eq!(n.to_string(), format!("{b58}@127.0.0.1:7700"));
        let n: NodeAddr = format!("{b58}@node.example.net:443")
            .parse()
            .expect("parse");
        assert_eq!(n.addr, "node.example.net:443");
        assert_eq!(n.relay(), None);
        let n: NodeAddr = format!("{b58}@relay://relay.example:7800")
            .parse()
            .expect("parse");
        assert_eq!(n.relay(), Some("relay.example:7800"));
        assert_eq!(n.to_string(), format!("{b58}@relay://relay.example:7800"));
        for bad in [
            "127.0.0.1:7700".to_string(),
            format!("{b58}@127.0.0.1"),
            format!("{b58}@:80"),
            "abc@127.0.0.1:80".to_string(),
            format!("{b58}@127.0.0.1:99999"),
            format!("{b58}@relay://127.0.0.1"),
        ] {
            assert!(bad.parse::<NodeAddr>().is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn first_bytes_are_told_apart() {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        for (bytes, kind) in [
            (&[5u8, 1, 0][..], Kind::Socks),
            (b"CONNECT a:443 HTTP/1.1\r\n\r\n", Kind::Connect),
            (b"GET http://a/ HTTP/1.1\r\n\r\n", Kind::PlainHttp),
            (b"\x16\x03\x01\x00", Kind::Junk),
            (b"Hello there", Kind::Junk),
        ] {
            let mut c = TcpStream::connect(addr).await.expect("connect");
            let (s, _) = l.accept().await.expect("accept");
            c.write_all(bytes).await.expect("write");
            assert_eq!(
                classify(&s, Duration::from_secs(2)).await,
                Some(kind),
                "{bytes:?}"
            );
        }
        // A method split across packets.
        let mut c = TcpStream::connect(addr).await.expect("connect");
        let (s, _) = l.accept().await.expect("accept");
        c.write_all(b"CONN").await.expect("write");
        let later = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            c.write_all(b"ECT a:443 HTTP/1.1\r\n\r\n")
                .await
                .expect("write");
            c
        });
        assert_eq!(
            classify(&s, Duration::from_secs(2)).await,
            Some(Kind::Connect)
        );
        let _ = later.await;
    }
}
