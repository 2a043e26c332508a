//! The model every page is drawn from: the chain's accounts by epoch and by key, each epoch's
//! dataset decoded, and the audit's results by check id.

use crate::figure::{epoch_check, Figure};
use backhaul::state::{
    Config, CreditAccount, EpochLedger, EpochRecord, EpochStatus, OperatorClaim, PendingChange,
    PriceFeed,
};
use backhaul_audit::{AuditReport, Fetched, Snapshot};
use backhaul_core::merkle::TreeKind;
use backhaul_core::tree::{Entry, EpochTree};
use backhaul_protocol::dataset::{key_from_b58, Dataset, RewardLeaf, UsageLeaf};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// One epoch as the chain and its dataset show it.
#[derive(Debug)]
pub struct EpochData {
    pub record: EpochRecord,
    pub ledger: Option<EpochLedger>,
    /// The dataset, when one was fetched and decodes (whether it matches the chain is the
    /// audit's `proposal.matches_dataset` check).
    pub dataset: Option<Dataset>,
    /// Why there is no dataset.
    pub dataset_error: Option<String>,
    /// Where it was read.
    pub dataset_source: Option<String>,
}

impl EpochData {
    /// The first second of the epoch and the first of the next.
    pub fn bounds(&self, c: &Config) -> (i64, i64) {
        bounds(c, self.record.epoch)
    }

    /// The reward leaf of `operator`, found by binary search (leaves are in key-byte order).
    pub fn reward_leaf(&self, operator: &[u8; 32]) -> Option<&RewardLeaf> {
        let leaves = &self.dataset.as_ref()?.rewards.leaves;
        find(leaves, operator, |l| &l.operator)
    }

    /// The usage leaf of `buyer`.
    pub fn usage_leaf(&self, buyer: &[u8; 32]) -> Option<&UsageLeaf> {
        let leaves = &self.dataset.as_ref()?.usage.leaves;
        find(leaves, buyer, |l| &l.buyer)
    }
}

/// The first second of epoch `e` and the first of the next (UTC, Unix seconds).
pub(crate) fn bounds(c: &Config, e: u64) -> (i64, i64) {
    let len = i64::try_from(c.epoch_length_secs).unwrap_or(i64::MAX);
    let at = |n: u64| {
        i64::try_from(n)
            .ok()
            .and_then(|n| n.checked_mul(len))
            .and_then(|d| c.genesis_ts.checked_add(d))
            .unwrap_or(i64::MAX)
    };
    (at(e), at(e.saturating_add(1)))
}

/// Binary search of leaves sorted by key bytes. A leaf whose key does not decode sorts nowhere:
/// the search then fails rather than guess (the audit's `dataset.format` check reports it).
fn find<'a, T>(leaves: &'a [T], key: &[u8; 32], name: impl Fn(&T) -> &String) -> Option<&'a T> {
    let (mut lo, mut hi) = (0usize, leaves.len());
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let k = key_from_b58(name(&leaves[mid]))?;
        match k.cmp(key) {
            std::cmp::Ordering::Less => lo = mid + 1,
            std::cmp::Ordering::Greater => hi = mid,
            std::cmp::Ordering::Equal => return Some(&leaves[mid]),
        }
    }
    None
}

/// An epoch's two trees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tree {
    Rewards,
    Usage,
}

/// Everything the pages show, built once per refresh.
#[derive(Debug)]
pub struct Model {
    pub report: AuditReport,
    /// Each check's id and whether it passed.
    pub results: HashMap<String, bool>,
    pub program_id: String,
    pub config_address: String,
    pub config: Config,
    pub price_feed: Option<PriceFeed>,
    pub supply: Option<u64>,
    /// The chain's clock when the model was read (Unix seconds).
    pub now: i64,
    pub epochs: BTreeMap<u64, EpochData>,
    pub claims: HashMap<[u8; 32], OperatorClaim>,
    pub credits: HashMap<[u8; 32], CreditAccount>,
    pub changes: Vec<PendingChange>,
    /// Reward trees built for proofs, by epoch (built on first use: a million leaves take a
    /// while to hash, and most epochs are never asked for).
    trees: Mutex<HashMap<u64, Arc<EpochTree>>>,
}

impl Model {
    /// The model of `snapshot` with its `datasets` as `report` audited them, read at `now`.
    pub fn build(
        snapshot: &Snapshot,
        datasets: &BTreeMap<u64, Fetched>,
        report: AuditReport,
        now: i64,
    ) -> Model {
        let ledgers: HashMap<u64, &EpochLedger> =
            snapshot.ledgers.iter().map(|(_, l)| (l.epoch, l)).collect();
        let epochs = snapshot
            .records
            .iter()
            .map(|(_, r)| {
                let (dataset, dataset_error, dataset_source) = match datasets.get(&r.epoch) {
                    None => (None, Some(not_published(r.status)), None),
                    Some(f) => match &f.bytes {
                        Err(e) => (None, Some(e.clone()), Some(f.source.clone())),
                        Ok(b) => match Dataset::from_bytes(b) {
                            Ok(d) => (Some(d), None, Some(f.source.clone())),
                            Err(e) => (
                                None,
                                Some(format!("the dataset does not decode: {e}")),
                                Some(f.source.clone()),
                            ),
                        },
                    },
                };
                let data = EpochData {
                    record: r.clone(),
                    ledger: ledgers.get(&r.epoch).map(|l| (*l).clone()),
                    dataset,
                    dataset_error,
                    dataset_source,
                };
                (r.epoch, data)
            })
            .collect();
        let results = report
            .checks
            .iter()
            .map(|c| (c.id.clone(), c.passed))
            .collect();
        Model {
            results,
            report,
            program_id: snapshot.program_id.to_string(),
            config_address: snapshot.config_address.to_string(),
            config: snapshot.config.clone(),
            price_feed: snapshot.price_feed.as_ref().map(|(_, f)| f.clone()),
            supply: snapshot.mint.as_ref().map(|m| m.supply),
            now,
            epochs,
            claims: snapshot
                .claims
                .iter()
                .map(|(_, c)| (c.operator.to_bytes(), c.clone()))
                .collect(),
            credits: snapshot
                .credits
                .iter()
                .map(|(_, c)| (c.buyer.to_bytes(), c.clone()))
                .collect(),
            changes: snapshot.changes.iter().map(|(_, c)| c.clone()).collect(),
            trees: Mutex::new(HashMap::new()),
        }
    }

    /// A figure verified by `checks`.
    pub fn figure(&self, value: u64, checks: Vec<String>) -> Figure {
        Figure::new(&self.results, value, checks)
    }

    /// The checks a figure read from epoch `e`'s dataset rests on: the dataset hashes to what
    /// the chain committed, its leaves of `tree` are consistent, and the root
    /// rebuilt from them is the chain's.
    pub fn dataset_checks(&self, e: u64, tree: Tree) -> Vec<String> {
        let (leaves, root) = match tree {
            Tree::Rewards => ("dataset.reward_leaves", "root.rewards"),
            Tree::Usage => ("dataset.usage_leaves", "root.usage"),
        };
        vec![
            epoch_check(e, "dataset.sha256"),
            epoch_check(e, leaves),
            epoch_check(e, root),
        ]
    }

    /// The epochs whose proposal stands (proposed or finalized), newest first: those a history
    /// lists.
    pub fn standing_newest_first(&self) -> impl Iterator<Item = (u64, &EpochData)> {
        self.epochs
            .iter()
            .rev()
            .filter(|(_, d)| {
                matches!(
                    d.record.status,
                    EpochStatus::Proposed | EpochStatus::Finalized
                )
            })
            .map(|(&e, d)| (e, d))
    }

    /// The newest finalized epoch that has a dataset.
    pub fn newest_finalized(&self) -> Option<&EpochData> {
        self.epochs
            .values()
            .rev()
            .find(|d| d.record.status == EpochStatus::Finalized && d.dataset.is_some())
    }

    /// The newest epoch with a dataset, whatever its status.
    pub fn newest_with_dataset(&self) -> Option<&EpochData> {
        self.epochs.values().rev().find(|d| d.dataset.is_some())
    }

    /// Epoch `e`'s reward tree rebuilt from its dataset's leaves (cached), or why not.
    pub fn reward_tree(&self, e: u64) -> Result<Arc<EpochTree>, String> {
        if let Some(t) = self.trees.lock().ok().and_then(|t| t.get(&e).cloned()) {
            return Ok(t);
        }
        let data = self.epochs.get(&e).ok_or("no such epoch")?;
        let ds = data
            .dataset
            .as_ref()
            .ok_or_else(|| format!("epoch {e} has no dataset"))?;
        let entries = ds
            .rewards
            .leaves
            .iter()
            .map(|l| {
                key_from_b58(&l.operator)
                    .map(|account| Entry {
                        account,
                        cumulative: l.cumulative,
                    })
                    .ok_or_else(|| format!("{:?} in epoch {e}'s dataset is not a key", l.operator))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let tree = EpochTree::build(
            TreeKind::Reward,
            &key_from_b58(&self.config_address).ok_or("the config address is not a key")?,
            e,
            entries,
        )
        .map_err(|err| format!("epoch {e}'s reward leaves do not make a tree: {err:?}"))?;
        let tree = Arc::new(tree);
        if let Ok(mut t) = self.trees.lock() {
            t.insert(e, tree.clone());
        }
        Ok(tree)
    }
}

fn not_published(status: EpochStatus) -> String {
    match status {
        EpochStatus::Voting | EpochStatus::Vetoed => {
            "no proposal stands for this epoch yet, so no dataset is committed".into()
        }
        _ => "no oracle served this epoch's dataset".into(),
    }
}
