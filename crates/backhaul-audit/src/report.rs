//! What the audit reports: each check's name, result and evidence, each epoch's figures, and the
//! whole report. Rendering is left to the caller (a table, JSON, a log line).

use crate::snapshot::Snapshot;
use backhaul::state::EpochStatus;
use serde::Serialize;

/// One check's outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    /// `epoch-<n>/<name>` for an epoch's check, `<name>` for a deployment-wide one.
    pub id: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
    pub passed: bool,
    /// What was compared: the figures when it passed, every discrepancy when it failed.
    pub evidence: String,
}

/// One epoch's figures, for reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EpochFigures {
    pub epoch: u64,
    pub status: String,
    /// Tokens burned for credits during the epoch (its ledger).
    pub tokens_burned: u64,
    /// Credits those burns issued.
    pub credits_issued: u64,
    /// Tokens minted as the epoch's rewards (its allocation once finalized).
    pub tokens_minted: u64,
    /// The epoch's budget (0 until finalized).
    pub budget: u64,
    /// Credits consumed in the epoch (its usage tree's increase).
    pub credits_consumed: u64,
    /// What the buyers paid for the credits consumed in the epoch, in tokens (the proposal's
    /// `usage_cost`): the epoch mints at most k times it.
    pub usage_cost: u64,
    /// Credits settled and left unpaid against this epoch's usage root.
    pub credits_settled: u64,
    pub credits_unpaid: u64,
    /// Operators rewarded in the epoch and bytes counted (from the dataset, when available).
    pub operators_rewarded: u64,
    pub bytes_counted: u64,
    /// The largest rewards of the epoch: (operator, tokens), largest first, at most five.
    pub top_earners: Vec<(String, u64)>,
}

/// The whole audit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditReport {
    pub passed: bool,
    pub program_id: String,
    pub config: String,
    pub mint: String,
    /// Epochs finalized on-chain (`next_epoch`).
    pub finalized_epochs: u64,
    /// Ids of the failed checks.
    pub failed: Vec<String>,
    pub checks: Vec<Check>,
    pub epochs: Vec<EpochFigures>,
}

impl AuditReport {
    /// Adds checks run apart from [`crate::audit`] (such as [`crate::recompute`]'s).
    pub fn add(&mut self, checks: Vec<Check>) {
        for c in checks {
            if !c.passed {
                self.failed.push(c.id.clone());
            }
            self.checks.push(c);
        }
        self.passed = self.failed.is_empty();
    }

    /// The check with this id.
    pub fn check(&self, id: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.id == id)
    }
}

/// Collects checks: a check passes when it found no problem.
#[derive(Default)]
pub(crate) struct Checks {
    list: Vec<Check>,
}

impl Checks {
    pub(crate) fn add(
        &mut self,
        name: &str,
        epoch: Option<u64>,
        problems: Vec<String>,
        ok: String,
    ) {
        let passed = problems.is_empty();
        self.list.push(Check {
            id: match epoch {
                Some(e) => format!("epoch-{e}/{name}"),
                None => name.to_string(),
            },
            name: name.to_string(),
            epoch,
            passed,
            evidence: if passed { ok } else { problems.join("; ") },
        });
    }

    /// The report of snapshot `s`'s audit: these checks and the epochs' figures.
    pub(crate) fn into_report(self, s: &Snapshot, epochs: Vec<EpochFigures>) -> AuditReport {
        let failed: Vec<String> = self
            .list
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.id.clone())
            .collect();
        AuditReport {
            passed: failed.is_empty(),
            program_id: s.program_id.to_string(),
            config: s.config_address.to_string(),
            mint: s.config.mint.to_string(),
            finalized_epochs: s.config.next_epoch,
            failed,
            checks: self.list,
            epochs,
        }
    }
}

/// An epoch status as reports name it.
pub fn status_name(s: EpochStatus) -> &'static str {
    match s {
        EpochStatus::Voting => "voting",
        EpochStatus::Proposed => "proposed",
        EpochStatus::Finalized => "finalized",
        EpochStatus::Vetoed => "vetoed",
    }
}
