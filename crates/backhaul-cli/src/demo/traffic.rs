//! The simulated traffic of one epoch: clients of the firms open sessions with nodes, sign a
//! receipt for the cumulative bytes after each transfer, and the node countersigns it.
//!
//! The seeded random draws come first (a [`Plan`]); the signing, the costly part, then runs on
//! every core, off the async runtime, in an order that keeps the output deterministic.

use super::network::Firm;
use anyhow::anyhow;
use backhaul_client::{ClientSession, NodeIdentity};
use backhaul_protocol::{Deployment, SignedReceipt};
use ed25519_dalek::SigningKey;
use rand::rngs::StdRng;
use rand::Rng;

/// A node: its key, its identity (key and operator) and which operator runs it.
pub struct Node {
    pub key: SigningKey,
    pub identity: NodeIdentity,
    pub operator: usize,
}

/// One epoch's receipts.
pub struct Traffic {
    pub receipts: Vec<SignedReceipt>,
    pub sessions: usize,
    /// The bytes of the last receipt of every session.
    pub bytes: u64,
}

const MIB: u64 = 1 << 20;

/// One session, as drawn.
#[derive(Clone, Debug)]
struct Session {
    node: usize,
    client: SigningKey,
    buyer: [u8; 32],
    id: [u8; 16],
    started_at: i64,
    /// Bytes of each transfer.
    transfers: Vec<u64>,
}

/// Every node serves one to three sessions, each of one to four transfers of 64 to 512 MiB, to
/// clients drawn at random among the firms' clients. Sessions start in the epoch's first ten
/// minutes and transfers come two minutes apart, far below the oracles' rate limit.
fn plan(rng: &mut StdRng, epoch_start: i64, nodes: usize, firms: &[Firm]) -> Vec<Session> {
    let mut out = vec![];
    if firms.iter().all(|f| f.clients.is_empty()) {
        return out;
    }
    for node in 0..nodes {
        for _ in 0..rng.gen_range(1..=3) {
            let firm = &firms[rng.gen_range(0..firms.len())];
            if firm.clients.is_empty() {
                continue;
            }
            let client = firm.clients[rng.gen_range(0..firm.clients.len())].clone();
            let started_at = epoch_start.saturating_add(rng.gen_range(60..600));
            let id = rng.gen();
            let transfers = (0..rng.gen_range(1..=4))
                .map(|_| rng.gen_range(64..=512) * MIB)
                .collect();
            out.push(Session {
                node,
                client,
                buyer: firm.key.to_bytes(),
                id,
                started_at,
                transfers,
            });
        }
    }
    out
}

/// Signs one session's receipts: the client signs each, the node checks and countersigns.
fn sign(
    deployment: Deployment,
    epoch: u64,
    s: &Session,
    node: &NodeIdentity,
) -> anyhow::Result<(Vec<SignedReceipt>, u64)> {
    let mut session = ClientSession::with_session_id(
        deployment,
        s.client.clone(),
        s.buyer,
        node.key(),
        epoch,
        s.id,
        s.started_at,
    );
    let mut receipts = Vec::with_capacity(s.transfers.len());
    for (i, bytes) in (1i64..).zip(&s.transfers) {
        let (receipt, signature) = session
            .record_signed(*bytes, s.started_at.saturating_add(120 * i))
            .map_err(|e| anyhow!("a client could not sign a receipt: {e}"))?;
        receipts.push(
            node.countersign(&receipt, signature)
                .map_err(|e| anyhow!("a node could not countersign: {e}"))?,
        );
    }
    Ok((receipts, session.cumulative_bytes()))
}

/// One thread's signed sessions: each session's receipts and its cumulative bytes.
type SignedPart = anyhow::Result<Vec<(Vec<SignedReceipt>, u64)>>;

/// Draws the epoch's sessions from `rng`, then signs them on every core.
pub async fn simulate(
    rng: &mut StdRng,
    deployment: Deployment,
    epoch: u64,
    epoch_start: i64,
    nodes: &[Node],
    firms: &[Firm],
) -> anyhow::Result<Traffic> {
    let sessions = plan(rng, epoch_start, nodes.len(), firms);
    let identities: Vec<NodeIdentity> = nodes.iter().map(|n| n.identity.clone()).collect();
    tokio::task::spawn_blocking(move || {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = sessions.len().div_ceil(threads).max(1);
        let signed: Vec<SignedPart> = std::thread::scope(|scope| {
            let handles: Vec<_> = sessions
                .chunks(chunk)
                .map(|part| {
                    let identities = &identities;
                    scope.spawn(move || {
                        part.iter()
                            .map(|s| sign(deployment, epoch, s, &identities[s.node]))
                            .collect::<anyhow::Result<Vec<_>>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow!("a signing thread panicked")))
                })
                .collect()
        });
        let mut out = Traffic {
            receipts: vec![],
            sessions: 0,
            bytes: 0,
        };
        for part in signed {
            for (receipts, bytes) in part? {
                out.receipts.extend(receipts);
                out.sessions += 1;
                out.bytes = out.bytes.saturating_add(bytes);
            }
        }
        Ok(out)
    })
    .await
    .map_err(|e| anyhow!("the signing task failed: {e}"))?
}
