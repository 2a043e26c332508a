//! The network page: every epoch with its figures, the totals, and the series the charts draw.

use crate::figure::epoch_check;
use crate::model::{Model, Tree};
use crate::Figure;
use backhaul::state::EpochStatus;
use backhaul_audit::status_name;
use backhaul_core::emission::EmissionSchedule;
use serde::Serialize;

/// The network page.
#[derive(Clone, Debug, Serialize)]
pub struct NetworkView {
    pub program_id: String,
    pub config: String,
    pub mint: String,
    pub decimals: u8,
    /// The chain's clock when read.
    pub now: i64,
    pub genesis_ts: i64,
    pub epoch_length_secs: u64,
    pub challenge_period_secs: u64,
    pub oracles: usize,
    pub threshold: u8,
    pub guardians: usize,
    /// Paused until this time (0 or past: not paused).
    pub paused_until: i64,
    pub audit_passed: bool,
    pub checks: usize,
    pub failed: Vec<String>,
    pub totals: Totals,
    /// Newest first.
    pub epochs: Vec<EpochRow>,
    /// Oldest first, for the charts.
    pub series: Series,
}

/// Deployment-wide totals.
#[derive(Clone, Debug, Serialize)]
pub struct Totals {
    pub minted: Figure,
    pub burned: Figure,
    pub claimed: Figure,
    #[serde(with = "crate::figure::dec")]
    pub lifetime_cap: u64,
    pub supply: Option<Figure>,
    /// The posted price: credits per token, and when it was posted.
    pub credits_per_token: Option<u64>,
    pub price_posted_at: Option<i64>,
}

/// One epoch.
#[derive(Clone, Debug, Serialize)]
pub struct EpochRow {
    pub epoch: u64,
    pub start: i64,
    pub end: i64,
    pub status: String,
    pub round: u32,
    /// Votes cast in the current round, and how many make a quorum.
    pub votes: usize,
    pub threshold: u8,
    /// When a standing proposal may be finalized, and the seconds left until then (0 once
    /// passed); none without a proposal.
    pub finalizable_at: Option<i64>,
    pub seconds_left: Option<i64>,
    pub allocation: Figure,
    pub burned: Figure,
    pub minted: Figure,
    /// What operators have claimed of this epoch's rewards: each operator's claims are counted
    /// against its rewards oldest first.
    pub claimed: Figure,
    pub settled: Figure,
    pub unpaid: Figure,
    pub credits_consumed: Figure,
    #[serde(with = "crate::figure::dec")]
    pub operators: u64,
    #[serde(with = "crate::figure::dec")]
    pub bytes: u64,
    /// Why the dataset is not shown, when it is not.
    pub dataset_error: Option<String>,
}

/// The charts' series, oldest epoch first.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Series {
    pub epochs: Vec<u64>,
    pub burned: Vec<u64>,
    pub minted: Vec<u64>,
    /// Minted through each epoch, what the schedule allowed through it, and the lifetime cap.
    pub cumulative_minted: Vec<u64>,
    pub cumulative_scheduled: Vec<u64>,
    #[serde(with = "crate::figure::dec")]
    pub lifetime_cap: u64,
    /// The price each epoch's purchases were made at (credits per token; 0 before one was
    /// posted) and when it was posted.
    pub credits_per_token: Vec<u64>,
    pub price_posted_at: Vec<i64>,
}

/// The network page of `m`.
pub fn view(m: &Model) -> NetworkView {
    let c = &m.config;
    let claimed = claimed_by_epoch(m);
    let mut rows = Vec::with_capacity(m.epochs.len());
    let mut series = Series {
        lifetime_cap: c.emission.lifetime_cap,
        ..Series::default()
    };
    let schedule = EmissionSchedule::from(c.emission);
    let (mut minted_sum, mut scheduled_sum) = (0u64, 0u64);
    for (&e, d) in &m.epochs {
        let r = &d.record;
        let (start, end) = d.bounds(c);
        let proposed = matches!(r.status, EpochStatus::Proposed | EpochStatus::Finalized);
        let finalizable_at = proposed.then_some(r.finalizable_at);
        let ledger = d.ledger.as_ref();
        let ledger_fig = |v: u64, check: &str| m.figure(v, vec![check.to_string()]);
        let minted = ledger.map_or(0, |l| l.tokens_minted);
        let burned = ledger.map_or(0, |l| l.tokens_burned);
        rows.push(EpochRow {
            epoch: e,
            start,
            end,
            status: status_name(r.status).to_string(),
            round: r.round,
            votes: r.votes.len(),
            threshold: c.threshold,
            finalizable_at,
            seconds_left: finalizable_at.map(|f| f.saturating_sub(m.now).max(0)),
            allocation: m.figure(
                r.proposal.allocation,
                vec![
                    epoch_check(e, "proposal.quorum"),
                    epoch_check(e, "allocation.sum_of_increases"),
                    epoch_check(e, "budget.within"),
                ],
            ),
            burned: m.figure(
                burned,
                vec!["totals.burned".into(), epoch_check(e, "cost.purchases")],
            ),
            minted: m.figure(
                minted,
                vec!["totals.minted".into(), epoch_check(e, "budget.within")],
            ),
            claimed: m.figure(
                claimed.get(&e).copied().unwrap_or(0),
                [
                    vec!["claims.within_cumulative".into()],
                    m.dataset_checks(e, Tree::Rewards),
                ]
                .concat(),
            ),
            settled: ledger_fig(
                ledger.map_or(0, |l| l.credits_settled),
                "credits.settled_within_usage",
            ),
            unpaid: ledger_fig(
                ledger.map_or(0, |l| l.credits_unpaid),
                "credits.settled_within_usage",
            ),
            credits_consumed: m.figure(
                r.proposal.credits_consumed,
                vec![
                    epoch_check(e, "proposal.matches_dataset"),
                    epoch_check(e, "cost.consumption"),
                ],
            ),
            operators: d.dataset.as_ref().map_or(0, |ds| {
                ds.rewards.leaves.iter().filter(|l| l.amount > 0).count() as u64
            }),
            bytes: d.dataset.as_ref().map_or(0, |ds| ds.stats.bytes_counted),
            dataset_error: d.dataset_error.clone(),
        });
        minted_sum = minted_sum.saturating_add(minted);
        scheduled_sum = scheduled_sum.saturating_add(schedule.scheduled(e).unwrap_or(0));
        series.epochs.push(e);
        series.burned.push(burned);
        series.minted.push(minted);
        series.cumulative_minted.push(minted_sum);
        series
            .cumulative_scheduled
            .push(scheduled_sum.min(c.emission.lifetime_cap));
        series
            .credits_per_token
            .push(ledger.map_or(0, |l| l.credits_per_token));
        series
            .price_posted_at
            .push(ledger.map_or(0, |l| l.price_posted_at));
    }
    rows.reverse();
    NetworkView {
        program_id: m.program_id.clone(),
        config: m.config_address.clone(),
        mint: c.mint.to_string(),
        decimals: c.decimals,
        now: m.now,
        genesis_ts: c.genesis_ts,
        epoch_length_secs: c.epoch_length_secs,
        challenge_period_secs: c.challenge_period_secs,
        oracles: c.oracles.len(),
        threshold: c.threshold,
        guardians: c.guardians.len(),
        paused_until: c.paused_until,
        audit_passed: m.report.passed,
        checks: m.report.checks.len(),
        failed: m.report.failed.clone(),
        totals: Totals {
            minted: m.figure(c.total_minted, vec!["totals.minted".into()]),
            burned: m.figure(c.total_burned, vec!["totals.burned".into()]),
            claimed: m.figure(
                c.total_claimed,
                vec!["claims.within_cumulative".into(), "vault.balance".into()],
            ),
            lifetime_cap: c.emission.lifetime_cap,
            supply: m.supply.map(|s| m.figure(s, vec!["mint.supply".into()])),
            credits_per_token: m.price_feed.as_ref().map(|f| f.credits_per_token),
            price_posted_at: m.price_feed.as_ref().map(|f| f.posted_at),
        },
        epochs: rows,
        series,
    }
}

/// What operators claimed of each epoch's rewards: an operator that claimed `k` in all has
/// claimed `min(k, cumulative_e) − min(k, cumulative_{e−1})` of epoch `e`'s, so the epochs add
/// up to every claim that stays within what was earned.
fn claimed_by_epoch(m: &Model) -> std::collections::BTreeMap<u64, u64> {
    let mut out = std::collections::BTreeMap::new();
    if m.claims.is_empty() {
        return out;
    }
    let mut previous = 0u64;
    for (&e, d) in &m.epochs {
        let Some(ds) = &d.dataset else { continue };
        let mut through = 0u64;
        for leaf in &ds.rewards.leaves {
            let claimed = backhaul_protocol::dataset::key_from_b58(&leaf.operator)
                .and_then(|k| m.claims.get(&k))
                .map_or(0, |c| c.claimed);
            through = through.saturating_add(claimed.min(leaf.cumulative));
        }
        out.insert(e, through.saturating_sub(previous));
        previous = through;
    }
    out
}
