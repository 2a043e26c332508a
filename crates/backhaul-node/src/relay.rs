//! The relay (`backhaul relay`): how a gateway reaches a node behind NAT without port
//! forwarding. The node keeps an outbound control connection to the relay, registered with a
//! signature of the relay's challenge by its node key. A gateway asks the relay for a node by key;
//! the relay tells the node, which dials the relay again with the ticket it was given, and the
//! relay splices the two connections. The session inside is the same Noise channel pinned to the
//! node's key, so the relay only ever sees ciphertext and cannot pose as the node.
//!
//! Messages (one byte of type, then fixed-size fields; integers big-endian):
//!
//! | type | from | fields | meaning |
//! |---|---|---|---|
//! | `0x01` challenge | relay | 32 random bytes | the first message on every connection |
//! | `0x02` register | node | node key (32), signature (64) of `backhaul:relay:v1 ‖ challenge` | this connection is the node's control link |
//! | `0x03` dial | gateway | node key (32) | connect me to that node |
//! | `0x04` incoming | relay | ticket (16) | a gateway waits: dial back with this ticket |
//! | `0x05` accept | node | ticket (16) | this connection serves that ticket |
//! | `0x06` ok | relay | — | spliced from here on |
//! | `0x07` error | relay | code (1) | 1 unknown node, 2 bad registration, 3 timed out, 4 busy |
//!
//! Metrics: `backhaul_relay_nodes_linked` (node links registered now),
//! `backhaul_relay_registrations_total{result}` (`ok`, `refused`),
//! `backhaul_relay_sessions_spliced_total` and `backhaul_relay_bytes_spliced_total` (both ways,
//! counted when a splice ends).

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, Mutex};

/// Domain tag of a registration signature.
pub const RELAY_TAG: &[u8] = b"backhaul:relay:v1";

const CHALLENGE: u8 = 0x01;
const REGISTER: u8 = 0x02;
const DIAL: u8 = 0x03;
const INCOMING: u8 = 0x04;
const ACCEPT: u8 = 0x05;
const OK: u8 = 0x06;
const ERROR: u8 = 0x07;

/// Why the relay refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RelayError {
    #[error("the relay knows no node with that key (it is not connected to this relay)")]
    UnknownNode,
    #[error("the relay refused the registration (a bad signature)")]
    BadRegistration,
    #[error("the node did not answer through the relay in time")]
    TimedOut,
    #[error("the relay is busy")]
    Busy,
    #[error("the relay answered something else")]
    Protocol,
    #[error("i/o with the relay: {0}")]
    Io(String),
}

impl From<std::io::Error> for RelayError {
    fn from(e: std::io::Error) -> Self {
        RelayError::Io(e.to_string())
    }
}

fn code(e: &RelayError) -> u8 {
    match e {
        RelayError::UnknownNode => 1,
        RelayError::BadRegistration => 2,
        RelayError::TimedOut => 3,
        _ => 4,
    }
}

fn from_code(c: u8) -> RelayError {
    match c {
        1 => RelayError::UnknownNode,
        2 => RelayError::BadRegistration,
        3 => RelayError::TimedOut,
        _ => RelayError::Busy,
    }
}

/// The relay's limits.
#[derive(Clone, Debug)]
pub struct RelayConfig {
    /// How long a node has to dial back, and a connection to say what it is.
    pub timeout: Duration,
    /// The most nodes registered at once.
    pub max_nodes: usize,
    /// The most gateways waiting for nodes at once.
    pub max_pending: usize,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            timeout: Duration::from_secs(10),
            max_nodes: 10_000,
            max_pending: 1_000,
        }
    }
}

#[derive(Default)]
struct Relay {
    /// Registered nodes: where to send tickets.
    nodes: HashMap<[u8; 32], mpsc::Sender<[u8; 16]>>,
    /// Gateways waiting for a node's dial-back, by ticket.
    pending: HashMap<[u8; 16], oneshot::Sender<TcpStream>>,
}

/// Serves the relay on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, config: RelayConfig) -> std::io::Result<()> {
    let state = Arc::new(Mutex::new(Relay::default()));
    loop {
        let (stream, peer) = listener.accept().await?;
        let state = state.clone();
        let config = config.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(stream, &state, &config).await {
                tracing::debug!(%peer, error = %e, "relay connection ended");
            }
        });
    }
}

async fn connection(
    mut stream: TcpStream,
    state: &Arc<Mutex<Relay>>,
    config: &RelayConfig,
) -> Result<(), RelayError> {
    let challenge: [u8; 32] = rand::random();
    let mut hello = vec![CHALLENGE];
    hello.extend_from_slice(&challenge);
    stream.write_all(&hello).await?;
    let mut ty = [0u8; 1];
    tokio::time::timeout(config.timeout, stream.read_exact(&mut ty))
        .await
        .map_err(|_| RelayError::TimedOut)??;
    match ty[0] {
        REGISTER => {
            let mut body = [0u8; 96];
            stream.read_exact(&mut body).await?;
            let mut key = [0u8; 32];
            key.copy_from_slice(&body[..32]);
            let mut sig = [0u8; 64];
            sig.copy_from_slice(&body[32..]);
            let message = [RELAY_TAG, &challenge].concat();
            let valid = VerifyingKey::from_bytes(&key).ok().is_some_and(|k| {
                k.verify_strict(&message, &Signature::from_bytes(&sig))
                    .is_ok()
            });
            if !valid {
                metrics::counter!("backhaul_relay_registrations_total", "result" => "refused")
                    .increment(1);
                stream
                    .write_all(&[ERROR, code(&RelayError::BadRegistration)])
                    .await?;
                return Err(RelayError::BadRegistration);
            }
            let (tx, mut rx) = mpsc::channel::<[u8; 16]>(64);
            {
                let mut s = state.lock().await;
                if s.nodes.len() >= config.max_nodes && !s.nodes.contains_key(&key) {
                    metrics::counter!("backhaul_relay_registrations_total", "result" => "refused")
                        .increment(1);
                    stream.write_all(&[ERROR, code(&RelayError::Busy)]).await?;
                    return Err(RelayError::Busy);
                }
                // A newer registration of the same key replaces the older link.
                s.nodes.insert(key, tx);
                metrics::gauge!("backhaul_relay_nodes_linked").set(s.nodes.len() as f64);
            }
            metrics::counter!("backhaul_relay_registrations_total", "result" => "ok").increment(1);
            stream.write_all(&[OK]).await?;
            tracing::info!(node = %bs(&key), "node registered");
            // Forward tickets until the node goes away.
            let mut probe = [0u8; 1];
            loop {
                tokio::select! {
                    t = rx.recv() => match t {
                        Some(ticket) => {
                            let mut m = vec![INCOMING];
                            m.extend_from_slice(&ticket);
                            if stream.write_all(&m).await.is_err() {
                                break;
                            }
                        }
                        None => break,
                    },
                    n = stream.read(&mut probe) => {
                        if !matches!(n, Ok(n) if n > 0) {
                            break;
                        }
                    }
                }
            }
            // This link's receiver goes first, so that its sender shows closed below (a newer
            // link's does not).
            drop(rx);
            let mut s = state.lock().await;
            if s.nodes.get(&key).is_some_and(|tx| tx.is_closed()) {
                s.nodes.remove(&key);
            }
            metrics::gauge!("backhaul_relay_nodes_linked").set(s.nodes.len() as f64);
            Ok(())
        }
        DIAL => {
            let mut key = [0u8; 32];
            stream.read_exact(&mut key).await?;
            let ticket: [u8; 16] = rand::random();
            let (tx, rx) = oneshot::channel();
            {
                let mut s = state.lock().await;
                if s.pending.len() >= config.max_pending {
                    drop(s);
                    stream.write_all(&[ERROR, code(&RelayError::Busy)]).await?;
                    return Err(RelayError::Busy);
                }
                let Some(node) = s.nodes.get(&key).cloned() else {
                    drop(s);
                    stream
                        .write_all(&[ERROR, code(&RelayError::UnknownNode)])
                        .await?;
                    return Err(RelayError::UnknownNode);
                };
                s.pending.insert(ticket, tx);
                if node.try_send(ticket).is_err() {
                    s.pending.remove(&ticket);
                    drop(s);
                    stream.write_all(&[ERROR, code(&RelayError::Busy)]).await?;
                    return Err(RelayError::Busy);
                }
            }
            let back = tokio::time::timeout(config.timeout, rx).await;
            state.lock().await.pending.remove(&ticket);
            let Ok(Ok(mut node_side)) = back else {
                stream
                    .write_all(&[ERROR, code(&RelayError::TimedOut)])
                    .await?;
                return Err(RelayError::TimedOut);
            };
            stream.write_all(&[OK]).await?;
            node_side.write_all(&[OK]).await?;
            metrics::counter!("backhaul_relay_sessions_spliced_total").increment(1);
            // Ciphertext both ways until either side closes.
            let moved = tokio::io::copy_bidirectional(&mut stream, &mut node_side).await;
            if let Ok((a, b)) = moved {
                metrics::counter!("backhaul_relay_bytes_spliced_total")
                    .increment(a.saturating_add(b));
            }
            Ok(())
        }
        ACCEPT => {
            let mut ticket = [0u8; 16];
            stream.read_exact(&mut ticket).await?;
            let waiting = state.lock().await.pending.remove(&ticket);
            match waiting {
                // The gateway's task takes the stream over and splices it.
                Some(tx) => tx.send(stream).map_err(|_| RelayError::TimedOut),
                None => {
                    stream
                        .write_all(&[ERROR, code(&RelayError::TimedOut)])
                        .await?;
                    Err(RelayError::TimedOut)
                }
            }
        }
        _ => Err(RelayError::Protocol),
    }
}

fn bs(k: &[u8; 32]) -> String {
    k.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

async fn read_challenge(stream: &mut TcpStream) -> Result<[u8; 32], RelayError> {
    let mut m = [0u8; 33];
    stream.read_exact(&mut m).await?;
    if m[0] != CHALLENGE {
        return Err(RelayError::Protocol);
    }
    let mut c = [0u8; 32];
    c.copy_from_slice(&m[1..]);
    Ok(c)
}

async fn read_answer(stream: &mut TcpStream) -> Result<(), RelayError> {
    let mut ty = [0u8; 1];
    stream.read_exact(&mut ty).await?;
    match ty[0] {
        OK => Ok(()),
        ERROR => {
            let mut c = [0u8; 1];
            stream.read_exact(&mut c).await?;
            Err(from_code(c[0]))
        }
        _ => Err(RelayError::Protocol),
    }
}

/// A gateway's connection to the node `node` through the relay at `relay`: once this returns,
/// the stream carries the session (start the Noise handshake on it).
pub async fn dial(
    relay: SocketAddr,
    node: &[u8; 32],
    timeout: Duration,
) -> Result<TcpStream, RelayError> {
    let attempt = async {
        let mut s = TcpStream::connect(relay).await?;
        read_challenge(&mut s).await?;
        let mut m = vec![DIAL];
        m.extend_from_slice(node);
        s.write_all(&m).await?;
        read_answer(&mut s).await?;
        Ok(s)
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| RelayError::TimedOut)?
}

/// The node's side: registers with the relay at `relay` and, for every gateway that dials it,
/// dials back and hands the spliced stream to `serve`. Returns when the control link drops (the
/// caller reconnects, with a backoff).
pub async fn link<F, Fut>(relay: SocketAddr, node: &SigningKey, serve: F) -> Result<(), RelayError>
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    link_with(relay, node, || {}, serve).await
}

/// [`link`], calling `registered` once the relay has accepted the registration.
pub async fn link_with<F, Fut>(
    relay: SocketAddr,
    node: &SigningKey,
    registered: impl FnOnce(),
    serve: F,
) -> Result<(), RelayError>
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut control = TcpStream::connect(relay).await?;
    let challenge = read_challenge(&mut control).await?;
    let sig = node.sign(&[RELAY_TAG, &challenge].concat()).to_bytes();
    let mut m = vec![REGISTER];
    m.extend_from_slice(&node.verifying_key().to_bytes());
    m.extend_from_slice(&sig);
    control.write_all(&m).await?;
    read_answer(&mut control).await?;
    tracing::info!(%relay, "registered with the relay");
    registered();
    let serve = Arc::new(serve);
    loop {
        let mut m = [0u8; 17];
        control.read_exact(&mut m).await?;
        if m[0] != INCOMING {
            return Err(RelayError::Protocol);
        }
        let mut ticket = [0u8; 16];
        ticket.copy_from_slice(&m[1..]);
        let serve = serve.clone();
        tokio::spawn(async move {
            let back = async {
                let mut s = TcpStream::connect(relay).await?;
                read_challenge(&mut s).await?;
                let mut m = vec![ACCEPT];
                m.extend_from_slice(&ticket);
                s.write_all(&m).await?;
                read_answer(&mut s).await?;
                Ok::<_, RelayError>(s)
            };
            match back.await {
                Ok(s) => serve(s).await,
                Err(e) => tracing::info!(error = %e, "could not take a session through the relay"),
            }
        });
    }
}
