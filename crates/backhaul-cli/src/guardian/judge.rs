//! Judging a proposal: the deployment's accounts from the cluster and every epoch's dataset up
//! to the proposed one from the guardian's [`Sources`], then the pure judgment of the
//! `backhaul-audit` crate ([`backhaul_audit::fraud::judge`]): the epoch's audit checks and the
//! fraud evidence against it.

use super::sources::Sources;
use crate::context::Context;
use backhaul_audit::fraud::{self, Judgment};
use backhaul_audit::{Fetched, Snapshot};
use backhaul_sdk::state::EpochStatus;
use std::collections::BTreeMap;

/// What a judgment was made of.
pub struct Judged {
    pub snapshot: Snapshot,
    pub judgment: Judgment,
    /// Where the proposed dataset came from, if it was found.
    pub source: Option<String>,
}

/// Judges the proposal of `epoch` as the chain holds it now; `None` when it holds none in its
/// challenge period (it was finalized, vetoed or refuted meanwhile).
pub async fn judge(ctx: &Context, sources: &Sources, epoch: u64) -> anyhow::Result<Option<Judged>> {
    let snapshot = crate::audit::fetch::snapshot(ctx).await?;
    let mut wanted: Vec<(u64, [u8; 32])> = snapshot
        .records
        .iter()
        .map(|(_, r)| r)
        .filter(|r| r.epoch <= epoch)
        .filter(|r| matches!(r.status, EpochStatus::Proposed | EpochStatus::Finalized))
        .map(|r| (r.epoch, r.proposal.dataset_hash))
        .collect();
    wanted.sort();
    let mut datasets = BTreeMap::new();
    let mut source = None;
    for (e, hash) in wanted {
        let fetched = match sources.find(e, &hash).await {
            Some(found) => {
                if e == epoch {
                    source = Some(found.source.clone());
                }
                Fetched {
                    source: found.source,
                    bytes: Ok(found.bytes),
                }
            }
            None => Fetched {
                source: sources.describe().join(", "),
                bytes: Err(format!(
                    "no dataset hashing to the chain's dataset_hash {} was found",
                    backhaul_protocol::dataset::hex(&hash)
                )),
            },
        };
        datasets.insert(e, fetched);
    }
    let Some(judgment) = fraud::judge(&snapshot, &datasets, epoch) else {
        return Ok(None);
    };
    Ok(Some(Judged {
        snapshot,
        judgment,
        source,
    }))
}
