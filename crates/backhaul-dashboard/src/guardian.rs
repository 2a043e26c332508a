//! The guardian's page: proposals in their challenge period, each check of their epoch and the
//! time left to act, and the governance changes queued.

use crate::model::Model;
use backhaul::state::{EpochStatus, GovernanceChange};
use backhaul_audit::Check;
use backhaul_protocol::dataset::hex;
use serde::Serialize;

/// The guardian's page.
#[derive(Clone, Debug, Serialize)]
pub struct GuardianView {
    pub now: i64,
    pub guardians: Vec<String>,
    pub paused_until: i64,
    /// Proposed epochs, oldest first.
    pub challenged: Vec<Challenged>,
    pub changes: Vec<Change>,
}

/// A proposal in (or past) its challenge period, not finalized yet.
#[derive(Clone, Debug, Serialize)]
pub struct Challenged {
    pub epoch: u64,
    pub round: u32,
    pub digest: String,
    pub finalizable_at: i64,
    pub seconds_left: i64,
    /// Every check of the epoch passed (and there is a dataset to check).
    pub passed: bool,
    pub checks: Vec<Check>,
    pub dataset_error: Option<String>,
    pub vetoes_used: u8,
}

/// A queued governance change.
#[derive(Clone, Debug, Serialize)]
pub struct Change {
    pub id: u64,
    pub queued_by: String,
    pub queued_at: i64,
    pub executable_at: i64,
    pub seconds_left: i64,
    pub kind: String,
    /// The change itself, as the program stores it.
    pub detail: String,
}

/// The guardian's page of `m`.
pub fn view(m: &Model) -> GuardianView {
    let challenged = m
        .epochs
        .iter()
        .filter(|(_, d)| d.record.status == EpochStatus::Proposed)
        .map(|(&e, d)| {
            let checks: Vec<Check> = m
                .report
                .checks
                .iter()
                .filter(|c| c.epoch == Some(e))
                .cloned()
                .collect();
            Challenged {
                epoch: e,
                round: d.record.round,
                digest: hex(&d.record.proposal_digest),
                finalizable_at: d.record.finalizable_at,
                seconds_left: d.record.finalizable_at.saturating_sub(m.now).max(0),
                passed: d.dataset.is_some() && checks.iter().all(|c| c.passed),
                checks,
                dataset_error: d.dataset_error.clone(),
                vetoes_used: d.record.vetoes,
            }
        })
        .collect();
    let changes = m
        .changes
        .iter()
        .map(|c| Change {
            id: c.id,
            queued_by: c.queued_by.to_string(),
            queued_at: c.queued_at,
            executable_at: c.executable_at,
            seconds_left: c.executable_at.saturating_sub(m.now).max(0),
            kind: match &c.change {
                GovernanceChange::Params(_) => "parameters",
                GovernanceChange::Oracles { .. } => "oracle set",
                GovernanceChange::Guardians { .. } => "guardian set",
            }
            .to_string(),
            detail: format!("{:?}", c.change),
        })
        .collect();
    GuardianView {
        now: m.now,
        guardians: m.config.guardians.iter().map(|g| g.to_string()).collect(),
        paused_until: m.config.paused_until,
        challenged,
        changes,
    }
}
