//! The audit itself: a pure function from what was fetched (the deployment's accounts and each
//! epoch's dataset bytes) to a report of checks, each passed or failed with its evidence.
//!
//! Nothing here does I/O, so every check can be exercised on hand-made data.

use backhaul_core::budget::{EpochActivity, EpochBudget, NetEmissionParams};
use backhaul_core::emission::EmissionSchedule;
use backhaul_core::merkle::{sha256v, TreeKind};
use backhaul_core::split::credits_for_bytes;
use backhaul_core::tree::{Entry, EpochTree};
use backhaul_protocol::dataset::{hex, key_from_b58, Dataset, DATASET_VERSION};
use backhaul_sdk::state::{
    Config, CreditAccount, EpochLedger, EpochRecord, EpochStatus, OperatorClaim, PendingChange,
    PriceFeed,
};
use backhaul_sdk::Deployment;
use serde::Serialize;
use solana_sdk::pubkey::Pubkey;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;

/// The SPL mint of the deployment, as read from the chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MintInfo {
    pub supply: u64,
    pub decimals: u8,
    pub mint_authority: Option<Pubkey>,
}

/// The rewards vault (an SPL token account), as read from the chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VaultInfo {
    pub amount: u64,
    pub mint: Pubkey,
    pub owner: Pubkey,
}

/// Every on-chain account of one deployment.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// The program the accounts belong to.
    pub program_id: Pubkey,
    /// Where the config account was read.
    pub config_address: Pubkey,
    pub config: Config,
    /// The price feed at its address, when it exists.
    pub price_feed: Option<(Pubkey, PriceFeed)>,
    /// The mint, when it exists and decodes.
    pub mint: Option<MintInfo>,
    /// The vault, when it exists and decodes.
    pub vault: Option<(Pubkey, VaultInfo)>,
    pub records: Vec<(Pubkey, EpochRecord)>,
    pub ledgers: Vec<(Pubkey, EpochLedger)>,
    pub claims: Vec<(Pubkey, OperatorClaim)>,
    pub credits: Vec<(Pubkey, CreditAccount)>,
    /// Queued governance changes.
    pub changes: Vec<(Pubkey, PendingChange)>,
    /// Program accounts naming this config that are none of the above, with the reason.
    pub unknown: Vec<(Pubkey, String)>,
}

impl Snapshot {
    /// Sorts raw program accounts (address, data) into the snapshot by their Anchor
    /// discriminator; a known discriminator whose data does not decode, or an unknown one, goes
    /// to `unknown`.
    pub fn add_program_account(&mut self, key: Pubkey, data: &[u8]) {
        use anchor_lang::{AccountDeserialize, Discriminator};
        fn decode<T: AccountDeserialize>(data: &[u8]) -> Result<T, String> {
            T::try_deserialize(&mut &data[..]).map_err(|e| e.to_string())
        }
        let d = |disc: &[u8]| data.starts_with(disc);
        let result = if d(EpochRecord::DISCRIMINATOR) {
            decode::<EpochRecord>(data).map(|a| self.records.push((key, a)))
        } else if d(EpochLedger::DISCRIMINATOR) {
            decode::<EpochLedger>(data).map(|a| self.ledgers.push((key, a)))
        } else if d(OperatorClaim::DISCRIMINATOR) {
            decode::<OperatorClaim>(data).map(|a| self.claims.push((key, a)))
        } else if d(CreditAccount::DISCRIMINATOR) {
            decode::<CreditAccount>(data).map(|a| self.credits.push((key, a)))
        } else if d(PendingChange::DISCRIMINATOR) {
            decode::<PendingChange>(data).map(|a| self.changes.push((key, a)))
        } else if d(PriceFeed::DISCRIMINATOR) {
            // Read on its own too; here it only has to decode.
            decode::<PriceFeed>(data).map(|_| ())
        } else {
            Err("unknown account type (discriminator)".to_string())
        };
        if let Err(e) = result {
            self.unknown.push((key, e));
        }
    }
}

/// One epoch's dataset as fetched: where from, and its bytes or why there are none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    pub source: String,
    pub bytes: Result<Vec<u8>, String>,
}

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
    /// The check with this id.
    pub fn check(&self, id: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.id == id)
    }
}

/// Collects checks: a check passes when it found no problem.
#[derive(Default)]
pub(super) struct Checks {
    list: Vec<Check>,
}

impl Checks {
    pub(super) fn add(
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
}

/// Pushes a problem when `actual != expected`.
pub(super) fn same<T: PartialEq + Display>(
    problems: &mut Vec<String>,
    what: &str,
    actual: T,
    expected: T,
) {
    if actual != expected {
        problems.push(format!("{what} is {actual}, expected {expected}"));
    }
}

/// Sum of u64s without overflow (u128 holds any realistic count of u64s).
pub(super) fn sum<I: IntoIterator<Item = u64>>(it: I) -> u128 {
    it.into_iter().map(u128::from).sum()
}

use crate::output::status_name;

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

    deployment_checks(&mut c, s, &d);

    let records: BTreeMap<u64, &EpochRecord> =
        s.records.iter().map(|(_, r)| (r.epoch, r)).collect();
    let ledgers: BTreeMap<u64, &EpochLedger> =
        s.ledgers.iter().map(|(_, l)| (l.epoch, l)).collect();
    contiguity_check(&mut c, s, &records, &ledgers, datasets);

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

    totals_checks(
        &mut c,
        s,
        &records,
        &ledgers,
        Recomputed {
            scheduled: scheduled_before,
            reemitted: reemitted_before,
            burned: burned_before,
        },
        latest_finalized.as_ref(),
    );

    let failed: Vec<String> = c
        .list
        .iter()
        .filter(|c| !c.passed)
        .map(|c| c.id.clone())
        .collect();
    AuditReport {
        passed: failed.is_empty(),
        program_id: s.program_id.to_string(),
        config: s.config_address.to_string(),
        mint: config.mint.to_string(),
        finalized_epochs: config.next_epoch,
        failed,
        checks: c.list,
        epochs: figures,
    }
}

/// The addresses, the mint, the vault and every account's decoding.
fn deployment_checks(c: &mut Checks, s: &Snapshot, d: &Deployment) {
    let config = &s.config;
    let mut p = vec![];
    if d.config != s.config_address {
        p.push(format!(
            "the config was read at {} but the config PDA of mint {} is {}",
            s.config_address, config.mint, d.config
        ));
    }
    if s.program_id != backhaul_sdk::PROGRAM_ID {
        p.push(format!(
            "program {} is not the program these tools know ({})",
            s.program_id,
            backhaul_sdk::PROGRAM_ID
        ));
    }
    same(&mut p, "the config's vault", config.vault, d.vault());
    same(
        &mut p,
        "the config's price feed",
        config.price_feed,
        d.price_feed(),
    );
    match &s.price_feed {
        Some((key, feed)) => {
            same(&mut p, "the price feed's address", *key, d.price_feed());
            same(&mut p, "the price feed's config", feed.config, d.config);
        }
        None => p.push(format!("no price feed account at {}", d.price_feed())),
    }
    c.add(
        "deployment.addresses",
        None,
        p,
        format!(
            "config {} is the PDA of mint {}; vault {} and price feed {} are its PDAs",
            d.config,
            config.mint,
            d.vault(),
            d.price_feed()
        ),
    );

    let mut p = vec![];
    match &s.mint {
        Some(m) => {
            if m.mint_authority != Some(s.config_address) {
                p.push(format!(
                    "the mint authority is {}, not the config {}: someone other than the program can mint",
                    m.mint_authority.map_or("none".to_string(), |k| k.to_string()),
                    s.config_address
                ));
            }
            same(&mut p, "the mint's decimals", m.decimals, config.decimals);
        }
        None => p.push(format!(
            "the mint {} does not exist or does not decode",
            config.mint
        )),
    }
    match &s.vault {
        Some((key, v)) => {
            same(&mut p, "the vault's address", *key, d.vault());
            same(&mut p, "the vault's mint", v.mint, config.mint);
            same(&mut p, "the vault's owner", v.owner, s.config_address);
        }
        None => p.push(format!(
            "the vault {} does not exist or does not decode",
            d.vault()
        )),
    }
    c.add(
        "deployment.mint",
        None,
        p,
        format!(
            "only the config {} can mint {} ({} decimals); the vault holds that mint and is owned by the config",
            s.config_address, config.mint, config.decimals
        ),
    );

    // Every account naming this config decodes as what its address says it is.
    let mut p: Vec<String> = s
        .unknown
        .iter()
        .map(|(k, why)| format!("account {k} does not decode: {why}"))
        .collect();
    for (k, r) in &s.records {
        same(
            &mut p,
            &format!("epoch record {k}'s address"),
            *k,
            d.epoch_record(r.epoch),
        );
        same(
            &mut p,
            &format!("epoch record {k}'s config"),
            r.config,
            d.config,
        );
    }
    for (k, l) in &s.ledgers {
        same(
            &mut p,
            &format!("ledger {k}'s address"),
            *k,
            d.ledger(l.epoch),
        );
        same(&mut p, &format!("ledger {k}'s config"), l.config, d.config);
    }
    for (k, a) in &s.claims {
        same(
            &mut p,
            &format!("claim record {k}'s address"),
            *k,
            d.operator_claim(&a.operator),
        );
        same(
            &mut p,
            &format!("claim record {k}'s config"),
            a.config,
            d.config,
        );
    }
    for (k, a) in &s.credits {
        same(
            &mut p,
            &format!("credit account {k}'s address"),
            *k,
            d.credits(&a.buyer),
        );
        same(
            &mut p,
            &format!("credit account {k}'s config"),
            a.config,
            d.config,
        );
    }
    for (k, a) in &s.changes {
        same(
            &mut p,
            &format!("queued change {k}'s address"),
            *k,
            d.pending_change(a.id),
        );
        same(
            &mut p,
            &format!("queued change {k}'s config"),
            a.config,
            d.config,
        );
        if a.id >= config.next_change_id {
            p.push(format!(
                "queued change {k} has id {}, not below the config's next change id {}",
                a.id, config.next_change_id
            ));
        }
    }
    c.add(
        "accounts.decoded",
        None,
        p,
        format!(
            "{} epoch records, {} ledgers, {} claim records, {} credit accounts, {} queued changes, all at their PDAs",
            s.records.len(),
            s.ledgers.len(),
            s.claims.len(),
            s.credits.len(),
            s.changes.len()
        ),
    );
}

/// Epochs 0..n without gaps, finalized exactly below `next_epoch`, each with a sealed ledger and
/// a dataset when it has a proposal.
fn contiguity_check(
    c: &mut Checks,
    s: &Snapshot,
    records: &BTreeMap<u64, &EpochRecord>,
    ledgers: &BTreeMap<u64, &EpochLedger>,
    datasets: &BTreeMap<u64, Fetched>,
) {
    let next = s.config.next_epoch;
    let mut p = vec![];
    if records.len() != s.records.len() {
        p.push("two epoch records hold the same epoch".to_string());
    }
    for (i, e) in records.keys().enumerate() {
        if *e != i as u64 {
            p.push(format!("epoch {i} has no record but epoch {e} has one"));
            break;
        }
    }
    for e in 0..next {
        match records.get(&e) {
            Some(r) if r.status == EpochStatus::Finalized => {}
            Some(r) => p.push(format!(
                "epoch {e} is below next_epoch {next} but {}",
                status_name(r.status)
            )),
            None => p.push(format!(
                "epoch {e} is below next_epoch {next} but has no record"
            )),
        }
        match ledgers.get(&e) {
            Some(l) if l.sealed => {}
            Some(_) => p.push(format!(
                "epoch {e} is finalized but its ledger is not sealed"
            )),
            None => p.push(format!("epoch {e} is finalized but has no ledger")),
        }
    }
    for (e, r) in records.range(next..) {
        if r.status == EpochStatus::Finalized {
            p.push(format!("epoch {e} is finalized but next_epoch is {next}"));
        }
    }
    let with_proposal: Vec<u64> = records
        .iter()
        .filter(|(_, r)| matches!(r.status, EpochStatus::Proposed | EpochStatus::Finalized))
        .map(|(e, _)| *e)
        .collect();
    let missing: Vec<String> = with_proposal
        .iter()
        .filter(|e| datasets.get(e).is_none_or(|f| f.bytes.is_err()))
        .map(|e| e.to_string())
        .collect();
    if !missing.is_empty() {
        p.push(format!("no dataset for epoch(s) {}", missing.join(", ")));
    }
    c.add(
        "epochs.contiguous",
        None,
        p,
        format!(
            "epochs 0..{next} finalized in order with sealed ledgers; {} epoch(s) with a proposal, each with a dataset",
            with_proposal.len()
        ),
    );
}

/// What one epoch's checks read.
pub(super) struct EpochCtx<'a> {
    pub(super) s: &'a Snapshot,
    pub(super) e: u64,
    pub(super) config_bytes: [u8; 32],
    pub(super) record: &'a EpochRecord,
    pub(super) ledger: Option<&'a EpochLedger>,
    pub(super) prev_record: Option<&'a EpochRecord>,
    pub(super) prev_ledger: Option<&'a EpochLedger>,
    /// The previous epoch's dataset, when it was read.
    pub(super) prev: Option<&'a Dataset>,
    /// What the schedule minted before this epoch, when known.
    pub(super) scheduled_before: Option<u64>,
    /// Tokens burned in the finalized epochs before this one, when known.
    pub(super) burned_before: Option<u64>,
    /// Tokens re-minted from burns by the finalized epochs before this one, when known.
    pub(super) reemitted_before: Option<u64>,
}

/// Running totals recomputed over every finalized epoch.
struct Recomputed {
    scheduled: Option<u64>,
    reemitted: Option<u64>,
    burned: Option<u64>,
}

/// One epoch's checks; returns its dataset when it could be read.
fn epoch_checks(c: &mut Checks, x: &EpochCtx, fetched: Option<&Fetched>) -> Option<Audited> {
    let e = x.e;
    let at = Some(e);
    let proposal = &x.record.proposal;
    quorum_check(c, x);

    // Available.
    let bytes = match fetched {
        Some(Fetched {
            source,
            bytes: Ok(b),
        }) => {
            c.add(
                "dataset.available",
                at,
                vec![],
                format!("{} bytes from {source}", b.len()),
            );
            b
        }
        Some(Fetched {
            source,
            bytes: Err(why),
        }) => {
            c.add(
                "dataset.available",
                at,
                vec![format!("cannot read the dataset from {source}: {why}")],
                String::new(),
            );
            return None;
        }
        None => {
            c.add(
                "dataset.available",
                at,
                vec!["no source was asked for this epoch's dataset".into()],
                String::new(),
            );
            return None;
        }
    };

    // sha256 against the chain.
    let hash = sha256v(&[bytes]);
    let mut p = vec![];
    if hash != proposal.dataset_hash {
        p.push(format!(
            "sha256 of the file is {}, the chain's dataset_hash is {}: the file is not the dataset the oracles committed",
            hex(&hash),
            hex(&proposal.dataset_hash)
        ));
    }
    c.add(
        "dataset.sha256",
        at,
        p,
        format!("sha256 {} equals the chain's dataset_hash", hex(&hash)),
    );

    // Format: decodes, canonical, names this deployment and epoch.
    let ds = match Dataset::from_bytes(bytes) {
        Ok(ds) => ds,
        Err(err) => {
            c.add(
                "dataset.format",
                at,
                vec![format!("the dataset does not decode: {err}")],
                String::new(),
            );
            return None;
        }
    };
    let mut p = vec![];
    same(&mut p, "version", ds.version, DATASET_VERSION);
    if ds.to_bytes() != *bytes {
        p.push("the bytes are not the canonical encoding of their content (re-encoded?)".into());
    }
    same(
        &mut p,
        "program_id",
        ds.program_id.clone(),
        x.s.program_id.to_string(),
    );
    same(
        &mut p,
        "config",
        ds.config.clone(),
        x.s.config_address.to_string(),
    );
    same(&mut p, "epoch", ds.epoch, e);
    let cfg = &x.s.config;
    let start = backhaul_core::epoch::epoch_start(cfg.genesis_ts, cfg.epoch_length_secs, e);
    let end = backhaul_core::epoch::epoch_end(cfg.genesis_ts, cfg.epoch_length_secs, e);
    match (start, end) {
        (Ok(start), Ok(end)) => {
            same(&mut p, "epoch_start", ds.epoch_start, start);
            same(&mut p, "epoch_end", ds.epoch_end, end);
        }
        _ => p.push("the chain's epoch timing overflows".into()),
    }
    c.add(
        "dataset.format",
        at,
        p,
        format!(
            "canonical version-{} dataset of epoch {e} of config {}, [{}, {})",
            ds.version, ds.config, ds.epoch_start, ds.epoch_end
        ),
    );

    let prev = x.prev;
    let prev_missing = e > 0 && prev.is_none();
    reward_leaf_checks(c, e, &ds, prev, prev_missing);
    usage_leaf_checks(c, e, &ds, prev, prev_missing);
    node_checks(c, e, &ds);
    root_checks(c, x, &ds);

    // The chain's proposal carries the dataset's figures.
    let mut p = vec![];
    same(
        &mut p,
        "reward_leaf_count",
        proposal.reward_leaf_count,
        ds.rewards.leaf_count,
    );
    same(
        &mut p,
        "reward_total",
        proposal.reward_total,
        ds.rewards.total,
    );
    same(&mut p, "allocation", proposal.allocation, ds.allocation);
    same(
        &mut p,
        "usage_leaf_count",
        proposal.usage_leaf_count,
        ds.usage.leaf_count,
    );
    same(&mut p, "usage_total", proposal.usage_total, ds.usage.total);
    same(
        &mut p,
        "credits_consumed",
        proposal.credits_consumed,
        ds.usage.credits_consumed,
    );
    same(
        &mut p,
        "usage_cost_total (vs the dataset's usage.cost_total)",
        proposal.usage_cost_total,
        ds.usage.cost_total,
    );
    same(
        &mut p,
        "usage_cost (vs the dataset's usage.usage_cost)",
        proposal.usage_cost,
        ds.usage.usage_cost,
    );
    c.add(
        "proposal.matches_dataset",
        at,
        p,
        format!(
            "the chain's proposal has the dataset's {} reward leaves totalling {}, allocation {}, {} usage leaves totalling {}, {} credits consumed costing their buyers {} (all consumption so far: {})",
            ds.rewards.leaf_count, ds.rewards.total, ds.allocation, ds.usage.leaf_count,
            ds.usage.total, ds.usage.credits_consumed, ds.usage.usage_cost, ds.usage.cost_total
        ),
    );

    // The allocation is the sum of the operators' increases, on the chain too.
    let mut p = vec![];
    let increases = sum(ds.rewards.leaves.iter().map(|l| l.amount));
    same(
        &mut p,
        "the sum of the leaves' increases",
        increases,
        u128::from(proposal.allocation),
    );
    let chain_prev_total = x.prev_record.map_or(0, |r| r.proposal.reward_total);
    if e > 0 && x.prev_record.is_none() {
        p.push(format!(
            "epoch {} has no record to take the previous total from",
            e - 1
        ));
    }
    same(
        &mut p,
        "the chain's reward_total minus the previous epoch's",
        i128::from(proposal.reward_total) - i128::from(chain_prev_total),
        i128::from(proposal.allocation),
    );
    if let Some(l) = x
        .ledger
        .filter(|_| x.record.status == EpochStatus::Finalized)
    {
        same(
            &mut p,
            "the ledger's tokens_minted",
            l.tokens_minted,
            proposal.allocation,
        );
    }
    c.add(
        "allocation.sum_of_increases",
        at,
        p,
        format!(
            "allocation {} = the sum of {} leaves' increases = reward_total {} − previous {}",
            proposal.allocation,
            ds.rewards.leaves.len(),
            proposal.reward_total,
            chain_prev_total
        ),
    );

    let budget = budget_checks(c, x, &ds);
    super::economics::checks(c, x, &ds, budget.as_ref());
    Some(Audited {
        dataset: ds,
        budget,
    })
}

/// The proposal is the one the oracles voted for, by a quorum, and was finalized only after its
/// challenge period.
fn quorum_check(c: &mut Checks, x: &EpochCtx) {
    let r = x.record;
    let cfg = &x.s.config;
    let mut p = vec![];
    match anchor_lang::prelude::borsh::to_vec(&r.proposal) {
        Ok(bytes) => {
            let digest = backhaul_core::merkle::proposal_digest(&x.config_bytes, x.e, &bytes);
            if digest != r.proposal_digest {
                p.push(format!(
                    "the proposal hashes to {}, but the record's digest is {}",
                    hex(&digest),
                    hex(&r.proposal_digest)
                ));
            }
        }
        Err(err) => p.push(format!("the proposal does not encode: {err}")),
    }
    let voters: BTreeSet<Pubkey> = r
        .votes
        .iter()
        .filter(|v| v.digest == r.proposal_digest)
        .map(|v| v.oracle)
        .collect();
    if voters.len() < usize::from(cfg.threshold) {
        p.push(format!(
            "{} distinct oracle(s) voted for the proposal; the threshold is {}",
            voters.len(),
            cfg.threshold
        ));
    }
    for v in voters.iter().filter(|v| !cfg.oracles.contains(v)) {
        p.push(format!(
            "{v} voted but is not in the oracle set (if the set changed since, this is expected)"
        ));
    }
    let challenge = i64::try_from(cfg.challenge_period_secs).unwrap_or(i64::MAX);
    if r.finalizable_at != r.quorum_at.saturating_add(challenge) {
        p.push(format!(
            "finalizable at {} but quorum at {} plus the challenge period {} is {}",
            r.finalizable_at,
            r.quorum_at,
            cfg.challenge_period_secs,
            r.quorum_at.saturating_add(challenge)
        ));
    }
    if r.status == EpochStatus::Finalized && r.finalized_at < r.finalizable_at {
        p.push(format!(
            "finalized at {}, before the challenge period ended at {}",
            r.finalized_at, r.finalizable_at
        ));
    }
    c.add(
        "proposal.quorum",
        Some(x.e),
        p,
        format!(
            "{} of {} oracles voted digest {} (threshold {}); quorum at {}, finalizable at {}{}",
            voters.len(),
            cfg.oracles.len(),
            hex(&r.proposal_digest),
            cfg.threshold,
            r.quorum_at,
            r.finalizable_at,
            if r.status == EpochStatus::Finalized {
                format!(", finalized at {}", r.finalized_at)
            } else {
                String::new()
            }
        ),
    );
}

/// Decodes a base58 key, noting a problem when it is not one.
pub(super) fn key(p: &mut Vec<String>, what: &str, s: &str) -> Option<[u8; 32]> {
    let k = key_from_b58(s);
    if k.is_none() {
        p.push(format!("{what} {s:?} is not a base58 32-byte key"));
    }
    k
}

/// Keys strictly ascending (sorted and unique).
fn ascending(p: &mut Vec<String>, what: &str, keys: &[Option<[u8; 32]>]) {
    let keys: Vec<[u8; 32]> = keys.iter().flatten().copied().collect();
    if let Some(i) = keys.windows(2).position(|w| w[0] >= w[1]) {
        p.push(format!(
            "{what} are not sorted and unique by account bytes (at position {})",
            i + 1
        ));
    }
}

/// One leaf of either tree, as the checks read it: the account, what this epoch adds to it and
/// its running total.
struct LeafFigures<'a> {
    account: &'a str,
    added: u64,
    cumulative: u64,
}

/// One tree of a dataset, as the checks read it.
struct TreeFigures<'a> {
    leaf_count: u64,
    total: u64,
    /// What the epoch adds over all leaves (the allocation, or the credits consumed).
    added: u64,
    /// The previous epoch's total, as the dataset's parameters state it.
    previous_total: u64,
    leaves: Vec<LeafFigures<'a>>,
}

/// What differs between the reward tree and the usage tree: the names used in problems and how
/// to read the tree out of a dataset.
struct TreeSide {
    /// Check id.
    id: &'static str,
    /// Field prefix in the dataset ("rewards", "usage").
    section: &'static str,
    /// Leaf name ("reward", "usage").
    leaf: &'static str,
    /// Who a leaf belongs to ("operator", "buyer").
    who: &'static str,
    /// What a leaf adds this epoch ("amount", "credits").
    added: &'static str,
    /// What the sum of the leaves' additions is called.
    added_sum: &'static str,
    /// The parameter holding the previous epoch's total.
    previous_field: &'static str,
    figures: for<'a> fn(&'a Dataset) -> TreeFigures<'a>,
}

fn reward_figures(ds: &Dataset) -> TreeFigures<'_> {
    TreeFigures {
        leaf_count: ds.rewards.leaf_count,
        total: ds.rewards.total,
        added: ds.allocation,
        previous_total: ds.parameters.previous_reward_total,
        leaves: ds
            .rewards
            .leaves
            .iter()
            .map(|l| LeafFigures {
                account: &l.operator,
                added: l.amount,
                cumulative: l.cumulative,
            })
            .collect(),
    }
}

fn usage_figures(ds: &Dataset) -> TreeFigures<'_> {
    TreeFigures {
        leaf_count: ds.usage.leaf_count,
        total: ds.usage.total,
        added: ds.usage.credits_consumed,
        previous_total: ds.parameters.previous_usage_total,
        leaves: ds
            .usage
            .leaves
            .iter()
            .map(|l| LeafFigures {
                account: &l.buyer,
                added: l.credits,
                cumulative: l.cumulative,
            })
            .collect(),
    }
}

const REWARD_TREE: TreeSide = TreeSide {
    id: "dataset.reward_leaves",
    section: "rewards",
    leaf: "reward",
    who: "operator",
    added: "amount",
    added_sum: "the sum of reward amounts",
    previous_field: "parameters.previous_reward_total",
    figures: reward_figures,
};

const USAGE_TREE: TreeSide = TreeSide {
    id: "dataset.usage_leaves",
    section: "usage",
    leaf: "usage",
    who: "buyer",
    added: "credits",
    added_sum: "the sum of usage credits",
    previous_field: "parameters.previous_usage_total",
    figures: usage_figures,
};

/// The checks both trees share: keys sorted and unique, counts and totals, the previous total,
/// and each leaf's cumulative against the previous epoch's. `more` adds the tree's own checks
/// before the comparison with the previous epoch.
fn tree_leaf_problems(
    side: &TreeSide,
    e: u64,
    ds: &Dataset,
    prev: Option<&Dataset>,
    prev_missing: bool,
    more: impl FnOnce(&mut Vec<String>),
) -> Vec<String> {
    let t = (side.figures)(ds);
    let mut p = vec![];
    let keys: Vec<Option<[u8; 32]>> = t
        .leaves
        .iter()
        .map(|l| {
            key(
                &mut p,
                &format!("{} leaf {}", side.leaf, side.who),
                l.account,
            )
        })
        .collect();
    ascending(&mut p, &format!("{} leaves", side.leaf), &keys);
    same(
        &mut p,
        &format!("{}.leaf_count", side.section),
        u128::from(t.leaf_count),
        t.leaves.len() as u128,
    );
    let total = format!("{}.total", side.section);
    same(
        &mut p,
        &total,
        u128::from(t.total),
        sum(t.leaves.iter().map(|l| l.cumulative)),
    );
    same(
        &mut p,
        side.added_sum,
        sum(t.leaves.iter().map(|l| l.added)),
        u128::from(t.added),
    );
    let prev_figures = prev.map(side.figures);
    same(
        &mut p,
        side.previous_field,
        t.previous_total,
        prev_figures.as_ref().map_or(0, |f| f.total),
    );
    same(
        &mut p,
        &total,
        u128::from(t.total),
        u128::from(t.previous_total) + u128::from(t.added),
    );
    more(&mut p);
    if prev_missing {
        p.push(format!(
            "cannot check cumulative = previous cumulative + {}: epoch {}'s dataset is unavailable",
            side.added,
            e - 1
        ));
    } else {
        let before: BTreeMap<&str, u64> = prev_figures
            .map(|f| f.leaves.iter().map(|l| (l.account, l.cumulative)).collect())
            .unwrap_or_default();
        for l in &t.leaves {
            let was = before.get(l.account).copied().unwrap_or(0);
            if u128::from(l.cumulative) != u128::from(was) + u128::from(l.added) {
                p.push(format!(
                    "{} {}: cumulative {} ≠ previous cumulative {was} + {} {}",
                    side.who, l.account, l.cumulative, side.added, l.added
                ));
            }
        }
        let now: BTreeSet<&str> = t.leaves.iter().map(|l| l.account).collect();
        for gone in before.keys().filter(|k| !now.contains(*k)) {
            p.push(format!(
                "{} {gone} had a leaf in epoch {} and has none now",
                side.who,
                e - 1
            ));
        }
    }
    p
}

fn reward_leaf_checks(
    c: &mut Checks,
    e: u64,
    ds: &Dataset,
    prev: Option<&Dataset>,
    prev_missing: bool,
) {
    let p = tree_leaf_problems(&REWARD_TREE, e, ds, prev, prev_missing, |_| {});
    c.add(
        REWARD_TREE.id,
        Some(e),
        p,
        format!(
            "{} leaves sorted and unique, total {} = previous {} + allocation {}, each cumulative = previous + amount",
            ds.rewards.leaves.len(),
            ds.rewards.total,
            ds.parameters.previous_reward_total,
            ds.allocation
        ),
    );
}

fn usage_leaf_checks(
    c: &mut Checks,
    e: u64,
    ds: &Dataset,
    prev: Option<&Dataset>,
    prev_missing: bool,
) {
    let u = &ds.usage;
    let priced = |p: &mut Vec<String>| {
        for l in &u.leaves {
            match credits_for_bytes(l.bytes, ds.parameters.credits_per_gib) {
                Ok(credits) if credits == l.credits => {}
                Ok(credits) => p.push(format!(
                    "buyer {}: charged {} credits for {} bytes, {} at {} credits per GiB",
                    l.buyer, l.credits, l.bytes, credits, ds.parameters.credits_per_gib
                )),
                Err(_) => p.push(format!(
                    "buyer {}: the price of {} bytes overflows",
                    l.buyer, l.bytes
                )),
            }
        }
    };
    let p = tree_leaf_problems(&USAGE_TREE, e, ds, prev, prev_missing, priced);
    c.add(
        USAGE_TREE.id,
        Some(e),
        p,
        format!(
            "{} leaves sorted and unique, total {} = previous {} + consumed {}, each cumulative = previous + credits, credits priced at {} per GiB",
            u.leaves.len(),
            u.total,
            ds.parameters.previous_usage_total,
            u.credits_consumed,
            ds.parameters.credits_per_gib
        ),
    );
}

/// Nodes, their operators' bytes and the statistics agree.
fn node_checks(c: &mut Checks, e: u64, ds: &Dataset) {
    let mut p = vec![];
    let keys: Vec<Option<[u8; 32]>> = ds
        .nodes
        .iter()
        .map(|n| key(&mut p, "node", &n.node))
        .collect();
    ascending(&mut p, "nodes", &keys);
    let mut per_operator: BTreeMap<&str, u128> = BTreeMap::new();
    for n in &ds.nodes {
        *per_operator.entry(n.operator.as_str()).or_default() += u128::from(n.bytes);
    }
    for l in &ds.rewards.leaves {
        let nodes = per_operator.remove(l.operator.as_str()).unwrap_or(0);
        if nodes != u128::from(l.bytes) {
            p.push(format!(
                "operator {}: {} bytes in its leaf, {nodes} in its nodes",
                l.operator, l.bytes
            ));
        }
    }
    for (op, bytes) in per_operator {
        p.push(format!(
            "nodes of {op} served {bytes} bytes but it has no reward leaf"
        ));
    }
    let st = &ds.stats;
    same(
        &mut p,
        "the nodes' bytes",
        sum(ds.nodes.iter().map(|n| n.bytes)),
        u128::from(st.bytes_counted),
    );
    same(
        &mut p,
        "the buyers' bytes",
        sum(ds.usage.leaves.iter().map(|l| l.bytes)),
        u128::from(st.bytes_counted),
    );
    if st.sessions_counted > st.sessions {
        p.push(format!(
            "{} sessions counted out of {} seen",
            st.sessions_counted, st.sessions
        ));
    }
    c.add(
        "dataset.nodes",
        Some(e),
        p,
        format!(
            "{} nodes, sorted and unique, served {} bytes = the operators' and the buyers' bytes; {} of {} sessions counted",
            ds.nodes.len(),
            st.bytes_counted,
            st.sessions_counted,
            st.sessions
        ),
    );
}

/// Both roots rebuilt from the leaves with the shared Merkle code.
fn root_checks(c: &mut Checks, x: &EpochCtx, ds: &Dataset) {
    let e = x.e;
    let rebuild = |kind: TreeKind, side: &TreeSide| -> Result<EpochTree, String> {
        let entries = (side.figures)(ds)
            .leaves
            .into_iter()
            .map(|l| {
                key_from_b58(l.account)
                    .map(|account| Entry {
                        account,
                        cumulative: l.cumulative,
                    })
                    .ok_or_else(|| format!("{:?} is not a key", l.account))
            })
            .collect::<Result<Vec<_>, _>>()?;
        EpochTree::build(kind, &x.config_bytes, e, entries).map_err(|err| format!("{err:?}"))
    };
    let trees = [
        (
            "root.rewards",
            rebuild(TreeKind::Reward, &REWARD_TREE),
            &ds.rewards.root,
            x.record.proposal.reward_root,
        ),
        (
            "root.usage",
            rebuild(TreeKind::Usage, &USAGE_TREE),
            &ds.usage.root,
            x.record.proposal.usage_root,
        ),
    ];
    for (name, tree, published, chain) in trees {
        let mut p = vec![];
        let root = match tree {
            Ok(t) => hex(&t.root),
            Err(err) => {
                p.push(format!("the leaves do not make a tree: {err}"));
                String::new()
            }
        };
        if p.is_empty() {
            same(
                &mut p,
                "the rebuilt root (vs the dataset's)",
                root.as_str(),
                published.as_str(),
            );
            same(
                &mut p,
                "the rebuilt root (vs the chain's)",
                root.as_str(),
                hex(&chain).as_str(),
            );
        }
        c.add(
            name,
            Some(e),
            p,
            format!("rebuilt from the leaves: {root}, as in the dataset and on the chain"),
        );
    }
}

/// The dataset's parameters against the chain, the recomputed budget, and the allocation in it.
fn budget_checks(c: &mut Checks, x: &EpochCtx, ds: &Dataset) -> Option<EpochBudget> {
    let e = x.e;
    let at = Some(e);
    let cfg = &x.s.config;
    let pr = &ds.parameters;
    let mut p = vec![];
    same(&mut p, "decimals", pr.decimals, cfg.decimals);
    match x.ledger {
        Some(l) => {
            if !l.sealed {
                p.push("the epoch's ledger is not sealed".into());
            }
            same(
                &mut p,
                "tokens_burned (vs the ledger)",
                pr.tokens_burned,
                l.tokens_burned,
            );
            same(
                &mut p,
                "credits_per_token (vs the ledger)",
                pr.credits_per_token,
                l.credits_per_token,
            );
        }
        None => p.push("the epoch has no ledger on the chain".into()),
    }
    let prev_ema = if e == 0 {
        Some(0)
    } else {
        x.prev_ledger.map(|l| l.burn_ema)
    };
    match prev_ema {
        Some(ema) => same(
            &mut p,
            "previous_burn_ema (vs the previous ledger)",
            pr.previous_burn_ema,
            ema,
        ),
        None => p.push(format!(
            "epoch {} has no ledger to take the moving average of burns from",
            e - 1
        )),
    }
    match x.scheduled_before {
        Some(s) => same(
            &mut p,
            "scheduled_minted (vs the epochs before)",
            pr.scheduled_minted,
            s,
        ),
        None => p.push(
            "scheduled_minted cannot be recomputed: an earlier epoch could not be audited".into(),
        ),
    }
    // Every finalized epoch's burns and this epoch's, less what the epochs before re-minted.
    let burns_not_reemitted = x
        .burned_before
        .zip(x.ledger.map(|l| l.tokens_burned))
        .and_then(|(before, now)| before.checked_add(now))
        .zip(x.reemitted_before)
        .map(|(burned, reemitted)| burned.checked_sub(reemitted));
    match burns_not_reemitted {
        Some(Some(b)) => same(
            &mut p,
            "burns_not_reemitted (vs the epochs before and this epoch's ledger)",
            pr.burns_not_reemitted,
            b,
        ),
        Some(None) => p.push(format!(
            "the epochs before epoch {e} re-minted more than was burned through it"
        )),
        None => p.push(
            "burns_not_reemitted cannot be recomputed: an earlier epoch could not be audited or \
             a ledger is missing"
                .into(),
        ),
    }
    let prev_reward = x.prev_record.map_or(0, |r| r.proposal.reward_total);
    let prev_usage = x.prev_record.map_or(0, |r| r.proposal.usage_total);
    same(
        &mut p,
        "previous_reward_total (vs the chain)",
        pr.previous_reward_total,
        prev_reward,
    );
    same(
        &mut p,
        "previous_usage_total (vs the chain)",
        pr.previous_usage_total,
        prev_usage,
    );
    same(
        &mut p,
        "previous_usage_cost_total (vs the chain's previous usage_cost_total)",
        pr.previous_usage_cost_total,
        x.prev_record.map_or(0, |r| r.proposal.usage_cost_total),
    );
    // The chain holds the parameters in force and those pending for a later epoch: a change
    // applied since this epoch shows here.
    let params = cfg.params_for(e);
    let em = &params.emission;
    same(
        &mut p,
        "initial_per_epoch (vs the config)",
        pr.initial_per_epoch,
        em.initial_per_epoch,
    );
    same(
        &mut p,
        "decay_bps (vs the config)",
        pr.decay_bps,
        em.decay_bps,
    );
    same(
        &mut p,
        "decay_period_epochs (vs the config)",
        pr.decay_period_epochs,
        em.decay_period_epochs,
    );
    same(
        &mut p,
        "floor_per_epoch (vs the config)",
        pr.floor_per_epoch,
        em.floor_per_epoch,
    );
    same(
        &mut p,
        "lifetime_cap (vs the config)",
        pr.lifetime_cap,
        em.lifetime_cap,
    );
    let ec = &params.economics;
    same(
        &mut p,
        "net_emissions_cap (vs the config)",
        pr.net_emissions_cap,
        ec.net_emissions_cap,
    );
    same(
        &mut p,
        "burn_smoothing_epochs (vs the config)",
        pr.burn_smoothing_epochs,
        ec.burn_smoothing_epochs,
    );
    same(
        &mut p,
        "usage_cap_bps (vs the config)",
        pr.usage_cap_bps,
        ec.usage_cap_bps,
    );
    if p.iter().any(|m| m.contains("(vs the config)")) {
        p.push(
            "the config holds only the parameters in force (and those pending for a later \
             epoch): if a governance change was applied after this epoch, check the values \
             against the program's `ChangeApplied` events (their `from_epoch` is the first epoch \
             the new values decide)"
                .into(),
        );
    }
    c.add(
        "budget.parameters",
        at,
        p,
        format!(
            "burned {}, price {} credits/token, previous moving average {}, schedule minted {} before, burns not re-minted {}, previous totals {}/{}/{} (rewards, credits consumed, their cost), schedule and economics (k = {} bps) as configured",
            pr.tokens_burned,
            pr.credits_per_token,
            pr.previous_burn_ema,
            pr.scheduled_minted,
            pr.burns_not_reemitted,
            pr.previous_reward_total,
            pr.previous_usage_total,
            pr.previous_usage_cost_total,
            pr.usage_cap_bps
        ),
    );

    // The budget, recomputed with the shared crate from the dataset's parameters.
    let schedule = EmissionSchedule {
        initial_per_epoch: pr.initial_per_epoch,
        decay_bps: pr.decay_bps,
        decay_period_epochs: pr.decay_period_epochs,
        floor_per_epoch: pr.floor_per_epoch,
        lifetime_cap: pr.lifetime_cap,
    };
    let net = NetEmissionParams {
        net_emissions_cap: pr.net_emissions_cap,
        smoothing_epochs: pr.burn_smoothing_epochs,
        usage_cap_bps: pr.usage_cap_bps,
    };
    // The paid-usage cap reads what the epoch's consumption cost its buyers (recomputed buyer by
    // buyer in `cost.consumption`).
    let activity = EpochActivity {
        tokens_burned: pr.tokens_burned,
        usage_cost: ds.usage.usage_cost,
        burns_not_reemitted: pr.burns_not_reemitted,
    };
    let mut p = vec![];
    let budget = match EpochBudget::compute(
        &schedule,
        e,
        pr.scheduled_minted,
        pr.previous_burn_ema,
        &net,
        &activity,
    ) {
        Ok(b) => Some(b),
        Err(err) => {
            p.push(format!(
                "the budget cannot be computed from the dataset's parameters: {err:?}"
            ));
            None
        }
    };
    let allocation = x.record.proposal.allocation;
    if let Some(b) = &budget {
        let db = &ds.budget;
        same(&mut p, "budget.scheduled", db.scheduled, b.scheduled);
        same(
            &mut p,
            "budget.scheduled_room",
            db.scheduled_room,
            b.scheduled_room,
        );
        same(&mut p, "budget.burn_ema", db.burn_ema, b.burn_ema);
        same(&mut p, "budget.net", db.net, b.net);
        same(&mut p, "budget.usage_cap", db.usage_cap, b.usage_cap);
        same(&mut p, "budget.total", db.total, b.total);
        if let Err(which) = b.split(allocation) {
            p.push(format!(
                "allocation {allocation} exceeds the budget {} ({which:?}: scheduled {} (room {}) + net {}, usage cap {} = k {} bps × usage cost {})",
                b.total, b.scheduled, b.scheduled_room, b.net, b.usage_cap, pr.usage_cap_bps, ds.usage.usage_cost
            ));
        }
        if x.record.status == EpochStatus::Finalized {
            if let Some(l) = x.ledger {
                same(&mut p, "the ledger's budget", l.budget, b.total);
                same(
                    &mut p,
                    "the ledger's moving average of burns",
                    l.burn_ema,
                    b.burn_ema,
                );
            }
        }
    }
    c.add(
        "budget.within",
        at,
        p,
        budget.map_or(String::new(), |b| {
            format!(
                "allocation {allocation} ≤ budget {} = min(scheduled room {} + net {}, usage cap {} = k {} bps × what buyers paid for this epoch's consumption {}), as the dataset and the ledger say",
                b.total,
                b.scheduled_room,
                b.net,
                b.usage_cap,
                pr.usage_cap_bps,
                ds.usage.usage_cost
            )
        }),
    );
    budget
}

/// The deployment's running totals against the accounts and the latest finalized dataset.
fn totals_checks(
    c: &mut Checks,
    s: &Snapshot,
    records: &BTreeMap<u64, &EpochRecord>,
    ledgers: &BTreeMap<u64, &EpochLedger>,
    recomputed: Recomputed,
    latest: Option<&Dataset>,
) {
    let cfg = &s.config;
    let finalized: Vec<&EpochRecord> = records
        .values()
        .copied()
        .filter(|r| r.status == EpochStatus::Finalized)
        .collect();

    // Minted.
    let mut p = vec![];
    let allocations = sum(finalized.iter().map(|r| r.proposal.allocation));
    let ledger_minted = sum(ledgers.values().map(|l| l.tokens_minted));
    same(
        &mut p,
        "Σ finalized allocations",
        allocations,
        u128::from(cfg.total_minted),
    );
    same(
        &mut p,
        "Σ ledgers' tokens_minted",
        ledger_minted,
        u128::from(cfg.total_minted),
    );
    same(
        &mut p,
        "last_reward_total",
        cfg.last_reward_total,
        cfg.total_minted,
    );
    same(
        &mut p,
        "scheduled_minted + total_reemitted",
        u128::from(cfg.scheduled_minted) + u128::from(cfg.total_reemitted),
        u128::from(cfg.total_minted),
    );
    if cfg.total_reemitted > cfg.burned_finalized {
        p.push(format!(
            "re-minted {} exceeds what finalized epochs burned ({})",
            cfg.total_reemitted, cfg.burned_finalized
        ));
    }
    if cfg.scheduled_minted > cfg.emission.lifetime_cap {
        p.push(format!(
            "scheduled_minted {} exceeds the lifetime cap {}",
            cfg.scheduled_minted, cfg.emission.lifetime_cap
        ));
    }
    match recomputed.scheduled {
        Some(v) => same(
            &mut p,
            "scheduled_minted (recomputed over the epochs)",
            cfg.scheduled_minted,
            v,
        ),
        None => {
            p.push("scheduled_minted cannot be recomputed: an epoch could not be audited".into())
        }
    }
    match recomputed.reemitted {
        Some(v) => same(
            &mut p,
            "total_reemitted (recomputed over the epochs)",
            cfg.total_reemitted,
            v,
        ),
        None => {
            p.push("total_reemitted cannot be recomputed: an epoch could not be audited".into())
        }
    }
    c.add(
        "totals.minted",
        None,
        p,
        format!(
            "total_minted {} = Σ of {} finalized allocations = Σ ledgers = scheduled {} + re-minted {}",
            cfg.total_minted,
            finalized.len(),
            cfg.scheduled_minted,
            cfg.total_reemitted
        ),
    );

    // The latest trees.
    let mut p = vec![];
    let last = finalized.last();
    same(
        &mut p,
        "last_reward_total",
        cfg.last_reward_total,
        last.map_or(0, |r| r.proposal.reward_total),
    );
    same(
        &mut p,
        "last_reward_leaf_count",
        cfg.last_reward_leaf_count,
        last.map_or(0, |r| r.proposal.reward_leaf_count),
    );
    same(
        &mut p,
        "last_usage_total",
        cfg.last_usage_total,
        last.map_or(0, |r| r.proposal.usage_total),
    );
    same(
        &mut p,
        "last_usage_leaf_count",
        cfg.last_usage_leaf_count,
        last.map_or(0, |r| r.proposal.usage_leaf_count),
    );
    same(
        &mut p,
        "last_usage_cost_total",
        cfg.last_usage_cost_total,
        last.map_or(0, |r| r.proposal.usage_cost_total),
    );
    c.add(
        "totals.latest_trees",
        None,
        p,
        format!(
            "the config's latest reward tree ({} leaves, {}) and usage tree ({} leaves, {} credits costing their buyers {}) are the last finalized epoch's",
            cfg.last_reward_leaf_count, cfg.last_reward_total, cfg.last_usage_leaf_count, cfg.last_usage_total, cfg.last_usage_cost_total
        ),
    );

    // Vault ≥ minted − claimed: only the program takes tokens out of the vault (claims), but
    // anyone can send tokens to it.
    let mut p = vec![];
    let owed = cfg.total_minted.checked_sub(cfg.total_claimed);
    let vault = s.vault.as_ref().map(|(_, v)| v.amount);
    match (vault, owed) {
        (Some(v), Some(o)) if v < o => p.push(format!(
            "the vault holds {v}, less than minted {} − claimed {} = {o}: {} of the unclaimed \
             rewards are missing",
            cfg.total_minted,
            cfg.total_claimed,
            o - v
        )),
        (Some(_), Some(_)) => {}
        (None, _) => p.push("the vault cannot be read".into()),
        (_, None) => p.push(format!(
            "claimed {} exceeds minted {}",
            cfg.total_claimed, cfg.total_minted
        )),
    }
    let donated = vault.zip(owed).map_or(0, |(v, o)| v.saturating_sub(o));
    c.add(
        "vault.balance",
        None,
        p,
        format!(
            "vault {} ≥ minted {} − claimed {}{}",
            vault.unwrap_or(0),
            cfg.total_minted,
            cfg.total_claimed,
            if donated > 0 {
                format!(
                    " ({donated} more: tokens sent to the vault directly, which anyone can do; \
                     they are not rewards and no claim pays them out)"
                )
            } else {
                " (equal: nothing was sent to the vault directly)".to_string()
            }
        ),
    );

    // Supply ≤ initial + minted − burned for credits: only the program mints, but any holder can
    // burn its own tokens directly (an SPL Token burn, outside `buy_credits`), lowering the supply.
    let mut p = vec![];
    let expected = (i128::from(cfg.initial_supply) + i128::from(cfg.total_minted))
        - i128::from(cfg.total_burned);
    let supply = s.mint.map(|m| i128::from(m.supply));
    match supply {
        Some(supply) if supply > expected => p.push(format!(
            "the mint's supply is {supply}, more than initial {} + minted {} − burned for \
             credits {} = {expected}: {} tokens were minted outside the program's rewards",
            cfg.initial_supply,
            cfg.total_minted,
            cfg.total_burned,
            supply - expected
        )),
        Some(_) => {}
        None => p.push("the mint cannot be read".into()),
    }
    let burned_directly = supply.map_or(0, |v| (expected - v).max(0));
    c.add(
        "mint.supply",
        None,
        p,
        format!(
            "supply {} ≤ initial {} + minted {} − burned for credits {}{}",
            s.mint.map_or(0, |m| m.supply),
            cfg.initial_supply,
            cfg.total_minted,
            cfg.total_burned,
            if burned_directly > 0 {
                format!(
                    " ({burned_directly} less: tokens their holders burned directly, outside \
                     buy_credits, which anyone can do with their own tokens; they bought no \
                     credits and fund no rewards)"
                )
            } else {
                " (equal: nobody burned tokens outside buy_credits)".to_string()
            }
        ),
    );

    // Burns.
    let mut p = vec![];
    same(
        &mut p,
        "Σ ledgers' tokens_burned",
        sum(ledgers.values().map(|l| l.tokens_burned)),
        u128::from(cfg.total_burned),
    );
    same(
        &mut p,
        "Σ credit accounts' tokens_burned",
        sum(s.credits.iter().map(|(_, a)| a.tokens_burned)),
        u128::from(cfg.total_burned),
    );
    same(
        &mut p,
        "Σ ledgers' credits_issued",
        sum(ledgers.values().map(|l| l.credits_issued)),
        u128::from(cfg.credits_issued),
    );
    match recomputed.burned {
        Some(v) => same(
            &mut p,
            "burned_finalized (Σ finalized epochs' ledgers)",
            cfg.burned_finalized,
            v,
        ),
        None => {
            p.push("burned_finalized cannot be recomputed: a finalized epoch has no ledger".into())
        }
    }
    let issued_finalized: Option<u128> = finalized
        .iter()
        .map(|r| ledgers.get(&r.epoch).map(|l| u128::from(l.credits_issued)))
        .sum();
    match issued_finalized {
        Some(v) => same(
            &mut p,
            "credits_issued_finalized (Σ finalized epochs' ledgers)",
            u128::from(cfg.credits_issued_finalized),
            v,
        ),
        None => p.push(
            "credits_issued_finalized cannot be recomputed: a finalized epoch has no ledger".into(),
        ),
    }
    c.add(
        "totals.burned",
        None,
        p,
        format!(
            "total_burned {} = Σ of {} ledgers = Σ of {} credit accounts; {} of it in finalized epochs; credits_issued {} = Σ ledgers, {} of them in finalized epochs",
            cfg.total_burned,
            ledgers.len(),
            s.credits.len(),
            cfg.burned_finalized,
            cfg.credits_issued,
            cfg.credits_issued_finalized
        ),
    );

    // Credits: issued − settled = Σ balances.
    let mut p = vec![];
    let balances = sum(s.credits.iter().map(|(_, a)| a.balance));
    same(
        &mut p,
        "credits_issued − credits_settled",
        i128::from(cfg.credits_issued) - i128::from(cfg.credits_settled),
        i128::try_from(balances).unwrap_or(i128::MAX),
    );
    same(
        &mut p,
        "Σ accounts' issued",
        sum(s.credits.iter().map(|(_, a)| a.issued)),
        u128::from(cfg.credits_issued),
    );
    same(
        &mut p,
        "Σ accounts' settled",
        sum(s.credits.iter().map(|(_, a)| a.settled)),
        u128::from(cfg.credits_settled),
    );
    same(
        &mut p,
        "Σ accounts' unpaid",
        sum(s.credits.iter().map(|(_, a)| a.unpaid)),
        u128::from(cfg.credits_unpaid),
    );
    same(
        &mut p,
        "Σ ledgers' credits_settled",
        sum(ledgers.values().map(|l| l.credits_settled)),
        u128::from(cfg.credits_settled),
    );
    same(
        &mut p,
        "Σ ledgers' credits_unpaid",
        sum(ledgers.values().map(|l| l.credits_unpaid)),
        u128::from(cfg.credits_unpaid),
    );
    for (_, a) in &s.credits {
        if a.issued.checked_sub(a.settled) != Some(a.balance) {
            p.push(format!(
                "buyer {}: balance {} ≠ issued {} − settled {}",
                a.buyer, a.balance, a.issued, a.settled
            ));
        }
        if u128::from(a.settled) + u128::from(a.unpaid) != u128::from(a.consumed_cumulative) {
            p.push(format!(
                "buyer {}: settled {} + unpaid {} ≠ consumed {}",
                a.buyer, a.settled, a.unpaid, a.consumed_cumulative
            ));
        }
        if a.issued_before_purchase_epoch > a.issued
            || a.tokens_before_purchase_epoch > a.tokens_burned
        {
            p.push(format!(
                "buyer {}: before its purchase epoch {} it had bought {} credits for {} tokens, \
                 more than its totals {} for {}",
                a.buyer,
                a.purchase_epoch,
                a.issued_before_purchase_epoch,
                a.tokens_before_purchase_epoch,
                a.issued,
                a.tokens_burned
            ));
        }
    }
    c.add(
        "credits.balances",
        None,
        p,
        format!(
            "issued {} − settled {} = Σ of {} balances {balances}; unpaid {}",
            cfg.credits_issued,
            cfg.credits_settled,
            s.credits.len(),
            cfg.credits_unpaid
        ),
    );

    // Settlements and claims against the latest finalized dataset.
    let mut p = vec![];
    let usage: BTreeMap<&str, u64> = latest
        .map(|d| {
            d.usage
                .leaves
                .iter()
                .map(|l| (l.buyer.as_str(), l.cumulative))
                .collect()
        })
        .unwrap_or_default();
    let rewards: BTreeMap<&str, u64> = latest
        .map(|d| {
            d.rewards
                .leaves
                .iter()
                .map(|l| (l.operator.as_str(), l.cumulative))
                .collect()
        })
        .unwrap_or_default();
    if latest.is_none() && cfg.next_epoch > 0 {
        p.push("the latest finalized epoch's dataset could not be audited".into());
    }
    for (_, a) in &s.credits {
        let leaf = usage
            .get(a.buyer.to_string().as_str())
            .copied()
            .unwrap_or(0);
        if a.consumed_cumulative > leaf {
            p.push(format!(
                "buyer {} settled consumption {} but its latest usage leaf is {leaf}",
                a.buyer, a.consumed_cumulative
            ));
        }
    }
    c.add(
        "credits.settled_within_usage",
        None,
        p,
        format!(
            "no buyer settled more than its latest cumulative usage ({} credit accounts)",
            s.credits.len()
        ),
    );

    let mut p = vec![];
    if latest.is_none() && cfg.next_epoch > 0 {
        p.push("the latest finalized epoch's dataset could not be audited".into());
    }
    let claimed = sum(s.claims.iter().map(|(_, a)| a.claimed));
    same(
        &mut p,
        "Σ claim records",
        claimed,
        u128::from(cfg.total_claimed),
    );
    for (_, a) in &s.claims {
        let leaf = rewards
            .get(a.operator.to_string().as_str())
            .copied()
            .unwrap_or(0);
        if a.claimed > leaf {
            p.push(format!(
                "operator {} claimed {} but its latest cumulative reward is {leaf}",
                a.operator, a.claimed
            ));
        }
        if a.last_epoch >= cfg.next_epoch {
            p.push(format!(
                "operator {} claimed with a proof of epoch {}, which is not finalized",
                a.operator, a.last_epoch
            ));
        }
    }
    c.add(
        "claims.within_cumulative",
        None,
        p,
        format!(
            "{} operators claimed {} in all, none more than its latest cumulative reward",
            s.claims.len(),
            cfg.total_claimed
        ),
    );
}
