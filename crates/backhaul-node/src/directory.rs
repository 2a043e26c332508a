//! The node directory from both sides (`docs/node.md`): a node signs an advert of where it is
//! reached and sends it to every oracle, at start and every half hour; a gateway reads every
//! oracle's directory (`GET /v1/adverts`, page by page), keeps the adverts whose node signature
//! verifies for its deployment and that are current, and uses those nodes.

use crate::gateway::NodeAddr;
use backhaul_client::OracleClient;
use backhaul_protocol::advert::{Endpoint, NodeAdvert};
use backhaul_protocol::api::{ItemStatus, RejectReason, MAX_ADVERTS_PER_PAGE};
use backhaul_protocol::Deployment;
use ed25519_dalek::SigningKey;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// How often a node signs and sends its advert again (adverts are current for a day).
pub const ADVERTISE_EVERY: Duration = Duration::from_secs(30 * 60);

/// How often a gateway reads the directory again.
pub const DIRECTORY_REFRESH: Duration = Duration::from_secs(3 * 60);

/// What a node is told to do when an oracle has no binding of it.
pub const BIND_FIRST: &str = "bind this node first: backhaul operator bind";

/// Signs an advert of `endpoint` dated `now` and sends it to every oracle; how many stored it (or
/// already had it). Each refusal is logged with what to do.
pub async fn advertise_once(
    oracles: &[OracleClient],
    deployment: &Deployment,
    node: &SigningKey,
    endpoint: &Endpoint,
    now: i64,
) -> usize {
    let Some(advert) = NodeAdvert::new(node.verifying_key().to_bytes(), endpoint, now) else {
        tracing::warn!(%endpoint, "this endpoint cannot be advertised");
        return 0;
    };
    let signed = advert.sign(deployment, node);
    let mut stored = 0;
    for o in oracles {
        let oracle = o.base_url().as_str();
        match o.submit_adverts(&[signed]).await {
            Err(e) => {
                tracing::warn!(%oracle, error = %e.error, "cannot send the node's advert; trying again later");
            }
            Ok(r) => match r.results.first() {
                Some(item)
                    if matches!(
                        item.status,
                        ItemStatus::Accepted | ItemStatus::Duplicate | ItemStatus::Superseded
                    ) =>
                {
                    stored += 1;
                    tracing::info!(%oracle, %endpoint, "advert stored: gateways reading this oracle's directory find the node");
                }
                Some(item) if item.reason == Some(RejectReason::UnknownBinding) => {
                    tracing::warn!(%oracle, "the oracle refused the node's advert (unknown_binding): {BIND_FIRST}");
                }
                Some(item) => {
                    let reason = item.reason.map(RejectReason::as_str).unwrap_or("none");
                    tracing::warn!(%oracle, status = ?item.status, %reason, "the oracle refused the node's advert");
                }
                None => {
                    tracing::warn!(%oracle, "the oracle answered the advert with no result");
                }
            },
        }
    }
    stored
}

/// [`advertise_once`] now and every [`ADVERTISE_EVERY`], until the task is dropped.
pub async fn advertise(
    oracles: Vec<OracleClient>,
    deployment: Deployment,
    node: SigningKey,
    endpoint: Endpoint,
    clock: Arc<dyn Fn() -> i64 + Send + Sync>,
) {
    loop {
        let stored = advertise_once(&oracles, &deployment, &node, &endpoint, clock()).await;
        metrics::gauge!("backhaul_node_adverts_stored").set(stored as f64);
        tokio::time::sleep(ADVERTISE_EVERY).await;
    }
}

/// The nodes every oracle's directory lists, each with the latest advert (by `issued_at`) whose
/// signature verifies for `deployment` and that is current at `now`, in key order. An oracle that
/// cannot be read is logged and skipped.
pub async fn read(oracles: &[OracleClient], deployment: &Deployment, now: i64) -> Vec<NodeAddr> {
    let mut best: BTreeMap<[u8; 32], (i64, Endpoint)> = BTreeMap::new();
    for o in oracles {
        let mut after = None;
        let mut bad = 0usize;
        loop {
            let page = match o.adverts(after.as_ref(), MAX_ADVERTS_PER_PAGE).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(oracle = %o.base_url(), error = %e, "cannot read the oracle's directory");
                    break;
                }
            };
            let full = page.len() >= MAX_ADVERTS_PER_PAGE;
            let mut last = None;
            for entry in &page {
                let Some(signed) = entry.signed() else {
                    bad += 1;
                    continue;
                };
                last = Some(signed.advert.node);
                let verified = signed
                    .checks(deployment)
                    .iter()
                    .all(|c| c.verify_strict().is_ok());
                let endpoint = signed.advert.endpoint();
                match endpoint {
                    Some(e) if verified && signed.advert.current(now) => {
                        let at = signed.advert.issued_at;
                        let newer = best
                            .get(&signed.advert.node)
                            .is_none_or(|(kept, _)| *kept < at);
                        if newer {
                            best.insert(signed.advert.node, (at, e));
                        }
                    }
                    _ => bad += 1,
                }
            }
            // The next page starts after the last key; a page not full is the last one.
            match last {
                Some(k) if full && Some(k) != after => after = Some(k),
                _ => break,
            }
        }
        if bad > 0 {
            tracing::warn!(oracle = %o.base_url(), adverts = bad, "adverts left out: not signed by their node for this deployment, or not current");
        }
    }
    best.into_iter()
        .filter_map(|(key, (_, e))| {
            crate::keys::noise_public_of(&key)?;
            Some(NodeAddr {
                key,
                addr: e.to_string(),
            })
        })
        .collect()
}
