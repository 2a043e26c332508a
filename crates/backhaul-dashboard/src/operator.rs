//! An operator's page: earned, claimed, claimable now, and its history epoch by epoch.

use crate::model::{Model, Tree};
use crate::Figure;
use backhaul_audit::status_name;
use backhaul_protocol::api::ProofResponse;
use backhaul_protocol::dataset::b58;
use serde::Serialize;

/// An operator's page.
#[derive(Clone, Debug, Serialize)]
pub struct OperatorView {
    pub operator: String,
    pub decimals: u8,
    /// Its cumulative reward in the newest finalized epoch with a dataset.
    pub earned: Figure,
    /// What it has claimed (its claim account on the chain).
    pub claimed: Figure,
    /// What a claim would pay now: earned − claimed.
    pub claimable: Figure,
    /// The epoch a claim would prove against.
    pub claimable_epoch: Option<u64>,
    /// Earned in a newer epoch that is not finalized yet (in its challenge period); none when
    /// no such epoch names the operator.
    pub pending: Option<Figure>,
    pub pending_epoch: Option<u64>,
    pub last_claim_epoch: Option<u64>,
    /// Every epoch with a dataset, newest first.
    pub history: Vec<OperatorRow>,
}

/// One epoch of an operator's history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OperatorRow {
    pub epoch: u64,
    pub start: i64,
    pub end: i64,
    pub status: String,
    /// Bytes its nodes served that counted.
    #[serde(with = "crate::figure::dec")]
    pub bytes: u64,
    /// The epoch's reward and the cumulative total through it.
    #[serde(with = "crate::figure::dec")]
    pub reward: u64,
    #[serde(with = "crate::figure::dec")]
    pub cumulative: u64,
    pub verified: bool,
    pub checks: Vec<String>,
}

/// `operator`'s page, or `None` when no dataset and no claim names it.
pub fn view(m: &Model, operator: &[u8; 32]) -> Option<OperatorView> {
    let history = history(m, operator);
    let claim = m.claims.get(operator);
    if history.is_empty() && claim.is_none() {
        return None;
    }
    let finalized = history.iter().find(|r| r.status == "finalized");
    let earned = finalized.map_or(0, |r| r.cumulative);
    let earned_checks = finalized.map_or_else(Vec::new, |r| r.checks.clone());
    let claimed = claim.map_or(0, |c| c.claimed);
    let claimed_checks = vec![
        "accounts.decoded".to_string(),
        "claims.within_cumulative".to_string(),
    ];
    let newest = history.first();
    let pending = newest
        .filter(|r| r.status == "proposed")
        .map(|r| (r.epoch, r.cumulative.saturating_sub(earned.max(claimed))));
    Some(OperatorView {
        operator: b58(operator),
        decimals: m.config.decimals,
        earned: Figure {
            verified: finalized.is_some_and(|r| r.verified),
            value: earned,
            checks: earned_checks.clone(),
        },
        claimed: m.figure(claimed, claimed_checks.clone()),
        claimable: m.figure(
            earned.saturating_sub(claimed),
            if finalized.is_some() {
                [earned_checks, claimed_checks].concat()
            } else {
                claimed_checks
            },
        ),
        claimable_epoch: finalized.map(|r| r.epoch),
        pending: match (pending, newest) {
            (Some((_, v)), Some(r)) => Some(Figure {
                value: v,
                verified: r.verified,
                checks: r.checks.clone(),
            }),
            _ => None,
        },
        pending_epoch: pending.map(|(e, _)| e),
        last_claim_epoch: claim.map(|c| c.last_epoch),
        history,
    })
}

/// The operator's rows, newest first: one per epoch whose dataset has its leaf.
pub fn history(m: &Model, operator: &[u8; 32]) -> Vec<OperatorRow> {
    m.standing_newest_first()
        .filter_map(|(e, d)| {
            let leaf = d.reward_leaf(operator)?;
            let (start, end) = d.bounds(&m.config);
            let checks = m.dataset_checks(e, Tree::Rewards);
            let verified = m.figure(0, checks.clone()).verified;
            Some(OperatorRow {
                epoch: e,
                start,
                end,
                status: status_name(d.record.status).to_string(),
                bytes: leaf.bytes,
                reward: leaf.amount,
                cumulative: leaf.cumulative,
                verified,
                checks,
            })
        })
        .collect()
}

/// The Merkle proof of `operator`'s reward in the newest finalized epoch, in the oracles' format
/// (`GET /v1/operators/<key>/proof`), rebuilt from the dataset's leaves; or why there is none.
pub fn proof(m: &Model, operator: &[u8; 32]) -> Result<ProofResponse, String> {
    let e = m
        .newest_finalized()
        .ok_or("no finalized epoch has a dataset yet")?
        .record
        .epoch;
    let tree = m.reward_tree(e)?;
    ProofResponse::from_tree(e, &tree, operator)
        .ok_or_else(|| format!("no reward leaf for this operator as of epoch {e}"))
}
