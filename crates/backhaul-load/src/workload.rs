//! The simulated network: nodes and their operators, buyers and their clients, sessions, and
//! every message they sign, prepared before the clock starts.
//!
//! Sessions are spread over the nodes (`sessions_per_node` each) and their clients are picked
//! from the client pool; every round gives each session its next receipt (sequence `r`, `r`
//! MiB so far, `10·r` seconds old), so after the first round every receipt supersedes the
//! session's previous one, as a node that reports its sessions' progress would. Requests carry
//! `batch` receipts in (round, node, session) order, so one request holds the receipts of a few
//! neighbouring nodes.

use backhaul_client::{BuyerIdentity, ClientSession, NodeIdentity};
use backhaul_protocol::{
    verify_each_strict, Deployment, Key, SigCheck, SignedBinding, SignedGrant, SignedReceipt,
};
use bytes::Bytes;
use ed25519_dalek::SigningKey;
use std::time::Instant;

/// Bytes each receipt adds to its session.
pub const BYTES_PER_ROUND: u64 = 1 << 20;
/// Seconds each round adds to a session's age.
pub const SECS_PER_ROUND: u64 = 10;

/// The shape of the simulated network.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Shape {
    pub nodes: usize,
    pub sessions_per_node: usize,
    pub clients: usize,
    /// Receipts per ingest request.
    pub batch: usize,
    /// Receipts to prepare (the ingest phase stops early if it runs out).
    pub receipts: usize,
    /// The epoch the receipts belong to, and when their sessions started.
    pub epoch: u64,
    pub started_at: i64,
    /// Distinguishes this run's keys from another run's against the same oracle.
    pub seed: u64,
}

/// Deterministic key number `i` of kind `tag` for this run.
pub fn key(seed: u64, tag: u8, i: u64) -> SigningKey {
    let mut b = [tag; 32];
    b[..8].copy_from_slice(&i.to_le_bytes());
    b[8..16].copy_from_slice(&seed.to_le_bytes());
    SigningKey::from_bytes(&b)
}

const NODE: u8 = 1;
const OPERATOR: u8 = 2;
const CLIENT: u8 = 3;

/// Everything the load needs, signed.
pub struct Workload {
    pub deployment: Deployment,
    pub bindings: Vec<SignedBinding>,
    pub grants: Vec<SignedGrant>,
    /// Operator wallets, one per node.
    pub operators: Vec<Key>,
    /// Encoded `Vec<SignedReceipt>` request bodies, in sending order.
    pub bodies: Vec<Bytes>,
    /// Receipts in each body.
    pub items: Vec<usize>,
    /// Seconds spent signing.
    pub signing_secs: f64,
}

impl Workload {
    pub fn receipts(&self) -> usize {
        self.items.iter().sum()
    }
}

/// The client of session `j` of node `n`: spread over the pool by a multiplicative hash.
fn client_of(n: usize, j: usize, spn: usize, clients: usize) -> usize {
    let s = (n as u64)
        .wrapping_mul(spn as u64)
        .wrapping_add(j as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    ((s >> 17) % clients as u64) as usize
}

/// Signs bindings for every node, grants for every client (client `c` is granted by buyer
/// `c % buyers.len()`), and `shape.receipts` receipts, on `threads` threads.
pub fn prepare(
    shape: &Shape,
    deployment: Deployment,
    buyers: &[SigningKey],
    threads: usize,
) -> anyhow::Result<Workload> {
    anyhow::ensure!(
        shape.nodes > 0 && shape.sessions_per_node > 0 && shape.clients > 0,
        "nodes, sessions per node and clients must be at least 1"
    );
    anyhow::ensure!(!buyers.is_empty(), "at least one buyer is needed");
    anyhow::ensure!(
        (1..=backhaul_protocol::api::MAX_RECEIPTS_PER_REQUEST).contains(&shape.batch),
        "the batch must hold 1 to {} receipts (the API's limit)",
        backhaul_protocol::api::MAX_RECEIPTS_PER_REQUEST
    );
    let started = Instant::now();
    let threads = threads.max(1);
    let seed = shape.seed;
    let node_keys: Vec<SigningKey> = parallel(threads, shape.nodes, |range| {
        Ok(range.map(|n| key(seed, NODE, n as u64)).collect())
    })?;
    let operator_keys: Vec<SigningKey> = parallel(threads, shape.nodes, |range| {
        Ok(range.map(|n| key(seed, OPERATOR, n as u64)).collect())
    })?;
    let nodes: Vec<NodeIdentity> = node_keys
        .iter()
        .zip(&operator_keys)
        .map(|(n, o)| NodeIdentity::new(deployment, n.clone(), o.verifying_key().to_bytes()))
        .collect();
    let operators: Vec<Key> = nodes.iter().map(|n| n.operator()).collect();
    let clients: Vec<SigningKey> = parallel(threads, shape.clients, |range| {
        Ok(range.map(|c| key(seed, CLIENT, c as u64)).collect())
    })?;
    let buyer_ids: Vec<BuyerIdentity> = buyers
        .iter()
        .map(|b| BuyerIdentity::new(deployment, b.clone()))
        .collect();

    let bindings: Vec<SignedBinding> = parallel(threads, shape.nodes, |range| {
        range
            .map(|n| {
                nodes[n]
                    // Signed when the sessions start: bindings last `BINDING_LIFETIME_SECS`.
                    .sign_binding(shape.epoch, shape.started_at, &operator_keys[n])
                    .map_err(|e| anyhow::anyhow!("signing node {n}'s binding: {e}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()
    })?;
    let grants: Vec<SignedGrant> = (0..shape.clients)
        .map(|c| {
            buyer_ids[c % buyer_ids.len()].grant(
                clients[c].verifying_key().to_bytes(),
                shape.epoch,
                1,
                i64::MAX,
                0,
            )
        })
        .collect();

    // Receipts: each thread owns a contiguous range of nodes and their sessions, and signs
    // round by round; the rounds are then laid out in (round, node, session) order.
    let spn = shape.sessions_per_node;
    let sessions = shape.nodes.saturating_mul(spn);
    let rounds = shape.receipts.div_ceil(sessions.max(1));
    let per_thread: Vec<Vec<Vec<SignedReceipt>>> = std::thread::scope(|s| {
        let chunk = shape.nodes.div_ceil(threads);
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (nodes, node_keys, clients, buyer_ids) =
                    (&nodes, &node_keys, &clients, &buyer_ids);
                s.spawn(move || -> anyhow::Result<Vec<Vec<SignedReceipt>>> {
                    let lo = (t * chunk).min(shape.nodes);
                    let hi = ((t + 1) * chunk).min(shape.nodes);
                    let mut mine: Vec<(usize, ClientSession)> = Vec::new();
                    for (n, node) in nodes.iter().enumerate().take(hi).skip(lo) {
                        for j in 0..spn {
                            let c = client_of(n, j, spn, shape.clients);
                            let mut id = [0u8; 16];
                            id[..8].copy_from_slice(&((n * spn + j) as u64).to_le_bytes());
                            id[8..].copy_from_slice(&seed.to_le_bytes());
                            mine.push((
                                n,
                                ClientSession::with_session_id(
                                    deployment,
                                    clients[c].clone(),
                                    buyer_ids[c % buyer_ids.len()].key(),
                                    node.key(),
                                    shape.epoch,
                                    id,
                                    shape.started_at,
                                ),
                            ));
                        }
                    }
                    let mut out = Vec::with_capacity(rounds);
                    for r in 1..=rounds as u64 {
                        let mut round = Vec::with_capacity(mine.len());
                        for (n, session) in &mut mine {
                            let now = shape.started_at.saturating_add((r * SECS_PER_ROUND) as i64);
                            let (receipt, client_sig) = session
                                .record_signed(BYTES_PER_ROUND, now)
                                .map_err(|e| anyhow::anyhow!("signing a receipt: {e}"))?;
                            round.push(receipt.countersign(
                                &deployment,
                                client_sig,
                                &node_keys[*n],
                            ));
                        }
                        out.push(round);
                    }
                    Ok(out)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| anyhow::anyhow!("a signing thread panicked"))?
            })
            .collect::<anyhow::Result<Vec<_>>>()
    })?;
    let mut per_thread: Vec<std::vec::IntoIter<Vec<SignedReceipt>>> =
        per_thread.into_iter().map(|v| v.into_iter()).collect();
    let mut bodies = Vec::new();
    let mut items = Vec::new();
    let mut pending: Vec<SignedReceipt> = Vec::with_capacity(shape.batch);
    let mut left = shape.receipts;
    'rounds: for _ in 0..rounds {
        for t in per_thread.iter_mut() {
            let Some(round) = t.next() else { continue };
            for r in round {
                if left == 0 {
                    break 'rounds;
                }
                left -= 1;
                pending.push(r);
                if pending.len() == shape.batch {
                    items.push(pending.len());
                    bodies.push(Bytes::from(borsh::to_vec(&pending)?));
                    pending.clear();
                }
            }
        }
    }
    if !pending.is_empty() {
        items.push(pending.len());
        bodies.push(Bytes::from(borsh::to_vec(&pending)?));
    }
    Ok(Workload {
        deployment,
        bindings,
        grants,
        operators,
        bodies,
        items,
        signing_secs: started.elapsed().as_secs_f64(),
    })
}

/// Runs `f` over `0..n` split into `threads` contiguous ranges and concatenates the results.
fn parallel<T: Send>(
    threads: usize,
    n: usize,
    f: impl Fn(std::ops::Range<usize>) -> anyhow::Result<Vec<T>> + Sync,
) -> anyhow::Result<Vec<T>> {
    let chunk = n.div_ceil(threads.max(1)).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .step_by(chunk)
            .map(|lo| {
                let f = &f;
                s.spawn(move || f(lo..(lo + chunk).min(n)))
            })
            .collect();
        let mut out = Vec::with_capacity(n);
        for h in handles {
            out.extend(
                h.join()
                    .map_err(|_| anyhow::anyhow!("a signing thread panicked"))??,
            );
        }
        Ok(out)
    })
}

/// Raw strict batch verification of the same signatures the oracle is sent.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Baseline {
    pub receipts: usize,
    pub batch: usize,
    pub threads: usize,
    pub one_thread_receipts_per_sec: f64,
    pub receipts_per_sec: f64,
}

/// Verifies the receipts of the first bodies (at least `sample` receipts), in batches of the
/// request size, on one thread and then on `threads` threads. Fails if any signature does not
/// verify: the oracle would refuse those receipts and the comparison would be meaningless.
pub fn baseline(w: &Workload, sample: usize, threads: usize) -> anyhow::Result<Baseline> {
    let mut batches: Vec<Vec<SigCheck>> = Vec::new();
    let mut receipts = 0;
    let mut batch = 0;
    for body in &w.bodies {
        if receipts >= sample {
            break;
        }
        let items: Vec<SignedReceipt> = borsh::from_slice(body)?;
        receipts += items.len();
        batch = batch.max(items.len());
        batches.push(items.iter().flat_map(|r| r.checks(&w.deployment)).collect());
    }
    anyhow::ensure!(receipts > 0, "no receipts to verify");
    let run = |threads: usize| -> anyhow::Result<f64> {
        let started = Instant::now();
        let ok = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let batches = &batches;
                    s.spawn(move || {
                        batches
                            .iter()
                            .skip(t)
                            .step_by(threads)
                            .all(|b| verify_each_strict(b).iter().all(Result::is_ok))
                    })
                })
                .collect();
            handles.into_iter().all(|h| h.join().unwrap_or(false))
        });
        anyhow::ensure!(ok, "a prepared signature does not verify");
        Ok(receipts as f64 / started.elapsed().as_secs_f64())
    };
    let one = run(1)?;
    let all = run(threads.max(1))?;
    Ok(Baseline {
        receipts,
        batch,
        threads: threads.max(1),
        one_thread_receipts_per_sec: one,
        receipts_per_sec: all,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(receipts: usize) -> Shape {
        Shape {
            nodes: 7,
            sessions_per_node: 3,
            clients: 5,
            batch: 4,
            receipts,
            epoch: 2,
            started_at: 1_000,
            seed: 9,
        }
    }

    #[test]
    fn receipts_are_laid_out_round_by_round_and_verify() {
        let d = Deployment {
            program_id: [1; 32],
            config: [2; 32],
        };
        let buyers = vec![key(9, 7, 0), key(9, 7, 1)];
        let w = prepare(&shape(50), d, &buyers, 2).unwrap();
        assert_eq!(w.receipts(), 50);
        assert_eq!(w.bodies.len(), 13);
        assert_eq!(w.items.last(), Some(&2));
        assert_eq!((w.bindings.len(), w.grants.len()), (7, 5));
        let all: Vec<SignedReceipt> = w
            .bodies
            .iter()
            .flat_map(|b| borsh::from_slice::<Vec<SignedReceipt>>(b).unwrap())
            .collect();
        // 21 sessions: rounds 1 and 2 whole, then 8 of round 3.
        assert!(all[..21].iter().all(|r| r.receipt.sequence == 1));
        assert!(all[21..42].iter().all(|r| r.receipt.sequence == 2));
        assert!(all[42..].iter().all(|r| r.receipt.sequence == 3));
        assert_eq!(all[21].receipt.session_id, all[0].receipt.session_id);
        assert_eq!(all[30].receipt.cumulative_bytes, 2 * BYTES_PER_ROUND);
        assert_eq!(all[30].receipt.session_age_secs, 2 * SECS_PER_ROUND);
        // Every receipt names its client's granting buyer and a bound node.
        for r in &all {
            let g = w
                .grants
                .iter()
                .find(|g| g.grant.client == r.receipt.client)
                .unwrap();
            assert_eq!(g.grant.buyer, r.receipt.buyer);
            assert!(w.bindings.iter().any(|b| b.binding.node == r.receipt.node));
            assert_eq!(r.receipt.epoch, 2);
        }
        let b = baseline(&w, 1_000, 2).unwrap();
        assert_eq!(b.receipts, 50);
        assert!(b.receipts_per_sec > 0.0);
    }

    #[test]
    fn a_tampered_signature_fails_the_baseline() {
        let d = Deployment {
            program_id: [1; 32],
            config: [2; 32],
        };
        let mut w = prepare(&shape(8), d, &[key(9, 7, 0)], 1).unwrap();
        let mut items: Vec<SignedReceipt> = borsh::from_slice(&w.bodies[0]).unwrap();
        items[1].node_signature[5] ^= 1;
        w.bodies[0] = Bytes::from(borsh::to_vec(&items).unwrap());
        assert!(baseline(&w, 100, 1).is_err());
    }

    #[test]
    fn shapes_that_cannot_work_are_refused() {
        let d = Deployment {
            program_id: [1; 32],
            config: [2; 32],
        };
        let mut s = shape(8);
        s.batch = 0;
        assert!(prepare(&s, d, &[key(9, 7, 0)], 1).is_err());
        s.batch = 20_000;
        assert!(prepare(&s, d, &[key(9, 7, 0)], 1).is_err());
        assert!(prepare(&shape(8), d, &[], 1).is_err());
    }
}
