//! A firm's page: credits, consumption per epoch, unsettled usage, runway at the recent rate.

use crate::model::{Model, Tree};
use crate::Figure;
use backhaul_audit::status_name;
use backhaul_protocol::dataset::b58;
use serde::Serialize;

/// How many recent epochs with a dataset set the rate the runway is measured at.
pub const RUNWAY_EPOCHS: usize = 3;

/// A firm's (a buyer's) page.
#[derive(Clone, Debug, Serialize)]
pub struct FirmView {
    pub buyer: String,
    pub decimals: u8,
    /// Credits left (its credit account on the chain).
    pub balance: Figure,
    /// Credits bought in all, and the tokens burned for them.
    pub issued: Figure,
    pub tokens_burned: Figure,
    /// Credits settled against finalized usage, and usage left unpaid for want of credits.
    pub settled: Figure,
    pub unpaid: Figure,
    /// Consumption through the newest finalized epoch with a dataset.
    pub consumed: Figure,
    pub consumed_epoch: Option<u64>,
    /// Consumed through that epoch but not settled yet: the next settlement takes it.
    pub unsettled: Figure,
    /// Credits consumed per epoch over the last [`RUNWAY_EPOCHS`] epochs with data, and how many
    /// epochs and seconds the balance lasts at that rate (none when nothing was consumed).
    #[serde(with = "crate::figure::dec")]
    pub rate_per_epoch: u64,
    pub runway_epochs: Option<u64>,
    pub runway_secs: Option<u64>,
    /// Newest first.
    pub history: Vec<FirmRow>,
}

/// One epoch of a firm's history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FirmRow {
    pub epoch: u64,
    pub start: i64,
    pub end: i64,
    pub status: String,
    /// Credits consumed in the epoch, the bytes charged, what they cost in tokens, and the
    /// consumption through the epoch.
    #[serde(with = "crate::figure::dec")]
    pub credits: u64,
    #[serde(with = "crate::figure::dec")]
    pub bytes: u64,
    #[serde(with = "crate::figure::dec")]
    pub cost: u64,
    #[serde(with = "crate::figure::dec")]
    pub cumulative: u64,
    pub verified: bool,
    pub checks: Vec<String>,
}

/// `buyer`'s page, or `None` when no dataset and no credit account names it.
pub fn view(m: &Model, buyer: &[u8; 32]) -> Option<FirmView> {
    let history = history(m, buyer);
    let account = m.credits.get(buyer);
    if history.is_empty() && account.is_none() {
        return None;
    }
    let chain = |v: u64| {
        m.figure(
            v,
            vec!["accounts.decoded".into(), "credits.balances".into()],
        )
    };
    let finalized = history.iter().find(|r| r.status == "finalized");
    let consumed = finalized.map_or(0, |r| r.cumulative);
    let through = account.map_or(0, |a| a.consumed_cumulative);
    let mut consumed_checks = finalized.map_or_else(Vec::new, |r| r.checks.clone());
    let consumed_fig = Figure {
        verified: finalized.is_some_and(|r| r.verified),
        value: consumed,
        checks: consumed_checks.clone(),
    };
    consumed_checks.push("credits.settled_within_usage".into());
    let recent: Vec<&FirmRow> = history.iter().take(RUNWAY_EPOCHS).collect();
    let rate = if recent.is_empty() {
        0
    } else {
        recent.iter().map(|r| r.credits).sum::<u64>() / recent.len() as u64
    };
    let balance = account.map_or(0, |a| a.balance);
    let runway_epochs = (rate > 0).then(|| balance / rate);
    Some(FirmView {
        buyer: b58(buyer),
        decimals: m.config.decimals,
        balance: chain(balance),
        issued: chain(account.map_or(0, |a| a.issued)),
        tokens_burned: m.figure(
            account.map_or(0, |a| a.tokens_burned),
            vec!["accounts.decoded".into(), "totals.burned".into()],
        ),
        settled: chain(account.map_or(0, |a| a.settled)),
        unpaid: chain(account.map_or(0, |a| a.unpaid)),
        consumed: consumed_fig,
        consumed_epoch: finalized.map(|r| r.epoch),
        unsettled: m.figure(consumed.saturating_sub(through), consumed_checks),
        rate_per_epoch: rate,
        runway_epochs,
        runway_secs: runway_epochs.map(|e| e.saturating_mul(m.config.epoch_length_secs)),
        history,
    })
}

/// The firm's rows, newest first: one per epoch whose dataset has its usage leaf.
pub fn history(m: &Model, buyer: &[u8; 32]) -> Vec<FirmRow> {
    m.standing_newest_first()
        .filter_map(|(e, d)| {
            let leaf = d.usage_leaf(buyer)?;
            let (start, end) = d.bounds(&m.config);
            let mut checks = m.dataset_checks(e, Tree::Usage);
            checks.push(crate::figure::epoch_check(e, "cost.consumption"));
            let verified = m.figure(0, checks.clone()).verified;
            Some(FirmRow {
                epoch: e,
                start,
                end,
                status: status_name(d.record.status).to_string(),
                credits: leaf.credits,
                bytes: leaf.bytes,
                cost: leaf.cost,
                cumulative: leaf.cumulative,
                verified,
                checks,
            })
        })
        .collect()
}
