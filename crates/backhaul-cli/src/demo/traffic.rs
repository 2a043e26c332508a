//! The simulated traffic of one epoch: clients of the firms open sessions with nodes, sign a
//! receipt for the cumulative bytes after each transfer, and the node countersigns it.

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

/// Every node serves one to three sessions, each of one to four transfers of 64 to 512 MiB, to
/// clients drawn at random among the firms' clients. Sessions start in the epoch's first ten
/// minutes and transfers come two minutes apart, far below the oracles' rate limit.
pub fn simulate(
    rng: &mut StdRng,
    deployment: Deployment,
    epoch: u64,
    epoch_start: i64,
    nodes: &[Node],
    firms: &[Firm],
) -> anyhow::Result<Traffic> {
    let mut out = Traffic {
        receipts: vec![],
        sessions: 0,
        bytes: 0,
    };
    if firms.iter().all(|f| f.clients.is_empty()) {
        return Ok(out);
    }
    for node in nodes {
        for _ in 0..rng.gen_range(1..=3) {
            let firm = &firms[rng.gen_range(0..firms.len())];
            if firm.clients.is_empty() {
                continue;
            }
            let client = &firm.clients[rng.gen_range(0..firm.clients.len())];
            let started_at = epoch_start.saturating_add(rng.gen_range(60..600));
            let mut session = ClientSession::with_session_id(
                deployment,
                client.clone(),
                firm.key.to_bytes(),
                node.identity.key(),
                epoch,
                rng.gen(),
                started_at,
            );
            let transfers: i64 = rng.gen_range(1..=4);
            for i in 1..=transfers {
                let bytes = rng.gen_range(64..=512) * MIB;
                let (receipt, signature) = session
                    .record_signed(bytes, started_at.saturating_add(120 * i))
                    .map_err(|e| anyhow!("a client could not sign a receipt: {e}"))?;
                out.receipts.push(
                    node.identity
                        .countersign(&receipt, signature)
                        .map_err(|e| anyhow!("a node could not countersign: {e}"))?,
                );
            }
            out.sessions += 1;
            out.bytes = out.bytes.saturating_add(session.cumulative_bytes());
        }
    }
    Ok(out)
}
