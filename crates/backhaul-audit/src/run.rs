//! The order of the audit: the deployment's checks, then epoch by epoch (each builds on the
//! previous one's dataset and budget), then the running totals, claims and settlements.

use crate::report::{status_name, AuditReport, Checks, EpochFigures};
use crate::snapshot::{Fetched, Snapshot};
use crate::{budget, claims, datasets, deployment, economics, governance, proposal, supply, trees};
use backhaul::state::{EpochLedger, EpochRecord, EpochStatus};
use backhaul_core::budget::EpochBudget;
use backhaul_protocol::dataset::Dataset;
use backhaul_sdk::Deployment;
use std::collections::BTreeMap;

/// What one epoch's audit hands to the next epoch's and to the totals.
struct Audited {
    dataset: Dataset,
    /// The budget recomputed from the dataset's parameters.
    budget: Option<EpochBudget>,
}

/// Runs every check over `snapshot` and the fetched `datasets` (by epoch).
pub fn audit(s: &Snapshot, datasets: &BTreeMap<u64, Fetched>) -> AuditReport {
    let mut c = Checks::default();
    let config = &s.config;
    let d = Deployment::new(config.mint);
    let config_bytes = s.config_address.to_bytes();

    deployment::checks(&mut c, s, &d);

    let records: BTreeMap<u64, &EpochRecord> =
        s.records.iter().map(|(_, r)| (r.epoch, r)).collect();
    let ledgers: BTreeMap<u64, &EpochLedger> =
        s.ledgers.iter().map(|(_, l)| (l.epoch, l)).collect();
    deployment::contiguity_check(&mut c, s, &records, &ledgers, datasets);

    // Epoch by epoch, in order: each builds on the previous one's dataset and budget.
    let mut previous: Option<(u64, Audited)> = None;
    // What the schedule minted before the current epoch, as recomputed (None once unknown).
    let mut scheduled_before: Option<u64> = Some(0);
    // What finalized epochs before the current one burned and re-minted, as recomputed.
    let mut burned_before: Option<u64> = Some(0);
    let mut reemitted_before: Option<u64> = Some(0);
    let mut latest_finalized: Option<Dataset> = None;
    let mut figures = Vec::new();
    for (&e, record) in &records {
        let ledger = ledgers.get(&e).copied();
        let mut fig = EpochFigures {
            epoch: e,
            status: status_name(record.status).to_string(),
            tokens_burned: ledger.map_or(0, |l| l.tokens_burned),
            credits_issued: ledger.map_or(0, |l| l.credits_issued),
            tokens_minted: ledger.map_or(0, |l| l.tokens_minted),
            budget: ledger.map_or(0, |l| l.budget),
            credits_consumed: record.proposal.credits_consumed,
            usage_cost: record.proposal.usage_cost,
            credits_settled: ledger.map_or(0, |l| l.credits_settled),
            credits_unpaid: ledger.map_or(0, |l| l.credits_unpaid),
            operators_rewarded: 0,
            bytes_counted: 0,
            top_earners: vec![],
        };
        if !matches!(
            record.status,
            EpochStatus::Proposed | EpochStatus::Finalized
        ) {
            figures.push(fig);
            continue;
        }
        let prev_audit = previous
            .as_ref()
            .filter(|(pe, _)| pe.checked_add(1) == Some(e))
            .map(|(_, a)| a);
        let prev_record = e.checked_sub(1).and_then(|p| records.get(&p).copied());
        let prev_ledger = e.checked_sub(1).and_then(|p| ledgers.get(&p).copied());
        let ctx = EpochCtx {
            s,
            e,
            config_bytes,
            record,
            ledger,
            prev_record,
            prev_ledger,
            prev: prev_audit.map(|a| &a.dataset),
            scheduled_before,
            burned_before,
            reemitted_before,
        };
        let audited = epoch_checks(&mut c, &ctx, datasets.get(&e));
        // The schedule's share of this epoch's mint, for the next epoch's parameters (an epoch
        // not finalized yet minted nothing).
        let finalized = record.status == EpochStatus::Finalized;
        let scheduled_share = match &audited {
            Some(Audited {
                budget: Some(b), ..
            }) => Some(record.proposal.allocation.min(b.scheduled_room)),
            _ => None,
        };
        if finalized {
            scheduled_before = scheduled_before
                .zip(scheduled_share)
                .and_then(|(before, s)| before.checked_add(s));
            reemitted_before = reemitted_before
                .zip(scheduled_share)
                .and_then(|(before, s)| {
                    before.checked_add(record.proposal.allocation.saturating_sub(s))
                });
            burned_before = burned_before
                .zip(ledger.map(|l| l.tokens_burned))
                .and_then(|(before, b)| before.checked_add(b));
        }
        if let Some(a) = &audited {
            let mut earners: Vec<(String, u64)> = a
                .dataset
                .rewards
                .leaves
                .iter()
                .filter(|l| l.amount > 0)
                .map(|l| (l.operator.clone(), l.amount))
                .collect();
            fig.operators_rewarded = earners.len() as u64;
            earners.sort_by(|x, y| y.1.cmp(&x.1).then_with(|| x.0.cmp(&y.0)));
            earners.truncate(5);
            fig.top_earners = earners;
            fig.bytes_counted = a.dataset.stats.bytes_counted;
            if record.status == EpochStatus::Finalized {
                latest_finalized = Some(a.dataset.clone());
            }
        } else if record.status == EpochStatus::Finalized {
            latest_finalized = None;
        }
        figures.push(fig);
        previous = audited.map(|a| (e, a));
    }

    supply::checks(
        &mut c,
        s,
        &records,
        &ledgers,
        Recomputed {
            scheduled: scheduled_before,
            reemitted: reemitted_before,
            burned: burned_before,
        },
    );
    claims::checks(&mut c, s, latest_finalized.as_ref());

    c.into_report(s, figures)
}

/// What one epoch's checks read.
pub(crate) struct EpochCtx<'a> {
    pub(crate) s: &'a Snapshot,
    pub(crate) e: u64,
    pub(crate) config_bytes: [u8; 32],
    pub(crate) record: &'a EpochRecord,
    pub(crate) ledger: Option<&'a EpochLedger>,
    pub(crate) prev_record: Option<&'a EpochRecord>,
    pub(crate) prev_ledger: Option<&'a EpochLedger>,
    /// The previous epoch's dataset, when it was read.
    pub(crate) prev: Option<&'a Dataset>,
    /// What the schedule minted before this epoch, when known.
    pub(crate) scheduled_before: Option<u64>,
    /// Tokens burned in the finalized epochs before this one, when known.
    pub(crate) burned_before: Option<u64>,
    /// Tokens re-minted from burns by the finalized epochs before this one, when known.
    pub(crate) reemitted_before: Option<u64>,
}

/// Running totals recomputed over every finalized epoch.
pub(crate) struct Recomputed {
    pub(crate) scheduled: Option<u64>,
    pub(crate) reemitted: Option<u64>,
    pub(crate) burned: Option<u64>,
}

/// One epoch's checks; returns its dataset when it could be read.
fn epoch_checks(c: &mut Checks, x: &EpochCtx, fetched: Option<&Fetched>) -> Option<Audited> {
    proposal::quorum_check(c, x);
    let ds = datasets::read(c, x, fetched)?;
    let prev = x.prev;
    let prev_missing = x.e > 0 && prev.is_none();
    trees::reward_leaf_checks(c, x.e, &ds, prev, prev_missing);
    trees::usage_leaf_checks(c, x.e, &ds, prev, prev_missing);
    datasets::node_checks(c, x.e, &ds);
    trees::root_checks(c, x, &ds);
    proposal::matches_dataset_check(c, x, &ds);
    budget::sum_of_increases_check(c, x, &ds);
    let budget = budget::checks(c, x, &ds);
    governance::consensus_check(c, x, &ds);
    economics::checks(c, x, &ds, budget.as_ref());
    Some(Audited {
        dataset: ds,
        budget,
    })
}
