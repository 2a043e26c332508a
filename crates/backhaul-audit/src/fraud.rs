//! Fraud evidence against a proposal in its challenge period, for the program's `prove_fraud`
//! (see `programs/backhaul/src/state/fraud.rs`): what a guardian, or anyone, finds in the
//! proposed dataset's trees, the latest finalized epoch before it and the buyers' credit
//! accounts. Pure, like the rest of the crate: the bytes and accounts come in, the evidence
//! (or why there is none) goes out.
//!
//! The trees are rebuilt over the leaves **in the order the dataset lists them**
//! ([`SumTree::as_given`]): a hostile tree may be unsorted or repeat an account, and the
//! evidence must be made of proofs against the tree that was committed, not against the one
//! that should have been. Evidence counts only when those trees commit to the roots, totals and
//! leaf counts on the chain; when the dataset is missing or commits to something else, no proof
//! can be built and the proposal cannot be checked: that is data withholding, answered by a
//! veto ([`Finding::Unverifiable`]).
//!
//! The kinds are tried in the order the program lists them, the first that fits wins:
//!
//! 1. **disorder**: two adjacent leaves of either tree with the left account at or above the
//!    right one (which also makes every absence argument below sound);
//! 2. **decrease**: a leaf of the latest finalized earlier epoch whose account has a smaller
//!    amount in the proposed tree, or none while its earlier amount is positive (cumulative
//!    amounts only grow);
//! 3. **overspend**: a buyer's usage leaf above the credits it bought through the epoch, per its
//!    credit account (`backhaul_core::cost::purchases_through`; no account: nothing bought).
//!
//! [`judge`] puts this beside the audit's checks of the epoch and [`Judgment::decision`] says
//! what to do: prove, veto, or let the proposal be.

use crate::report::Check;
use crate::snapshot::{Fetched, Snapshot};
use anchor_lang::prelude::Pubkey;
use backhaul::state::{CreditAccount, EpochProposal, EpochRecord, EpochStatus, FraudProof, Tree};
use backhaul_core::cost::{purchases_through, PurchaseCheckpoint, Purchases};
use backhaul_core::merkle::TreeKind;
use backhaul_core::sum_tree::{
    verify, verify_absent, verify_disorder, Commitment, Leaf, Scope, SumTree,
};
use backhaul_protocol::dataset::{hex, key_from_b58, Dataset};
use backhaul_sdk::fraud::{absent, proven};
use std::collections::BTreeMap;

/// What the evidence is built from.
#[derive(Clone, Copy, Debug)]
pub struct Challenge<'a> {
    /// The deployment's `Config` address: every leaf is bound to it.
    pub config: Pubkey,
    /// The record of the epoch under challenge, with its proposal.
    pub record: &'a EpochRecord,
    /// The proposed dataset's bytes, if any were found.
    pub dataset: Option<&'a [u8]>,
    /// The latest finalized epoch before it: its record and its dataset's bytes (the dataset
    /// the chain finalized), if known.
    pub earlier: Option<(&'a EpochRecord, &'a [u8])>,
    /// The deployment's credit accounts (address, account), as read from the chain.
    pub credits: &'a [(Pubkey, CreditAccount)],
}

/// Which kind of fraud a proof shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FraudKind {
    Disorder,
    Decrease,
    Overspend,
}

impl FraudKind {
    /// Its name in logs and reports.
    pub fn name(self) -> &'static str {
        match self {
            FraudKind::Disorder => "disorder",
            FraudKind::Decrease => "decrease",
            FraudKind::Overspend => "overspend",
        }
    }
}

/// A fraud proof and what `prove_fraud` needs beside it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evidence {
    pub kind: FraudKind,
    /// The proof, as the proof buffer holds it (borsh).
    pub proof: FraudProof,
    /// A decrease proof's earlier epoch (its record is passed to `prove_fraud`).
    pub earlier_epoch: Option<u64>,
    /// An overspend proof's buyer (its credit account address is passed to `prove_fraud`).
    pub buyer: Option<Pubkey>,
    /// What the proof shows, in words.
    pub summary: String,
}

/// What the evidence finder found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finding {
    /// A proof fits.
    Fraud(Box<Evidence>),
    /// The dataset is missing, does not decode, or its trees do not commit to the proposal on
    /// the chain: no proof can be built and nothing can be checked (data withholding).
    Unverifiable(String),
    /// The trees commit to the proposal and no kind of proof fits; `notes` says what could not
    /// be looked at (such as an earlier dataset that does not match its record).
    NoProof { notes: Vec<String> },
}

/// One tree of a dataset rebuilt over its leaves as listed.
struct Built {
    tree: Tree,
    sum_tree: SumTree,
}

fn kind_of(tree: Tree) -> TreeKind {
    tree.into()
}

fn tree_name(tree: Tree) -> &'static str {
    match tree {
        Tree::Reward => "reward",
        Tree::Usage => "usage",
    }
}

fn who(tree: Tree) -> &'static str {
    match tree {
        Tree::Reward => "operator",
        Tree::Usage => "buyer",
    }
}

/// What a proposal commits for one tree.
pub fn commitment(p: &EpochProposal, tree: Tree) -> Commitment {
    match tree {
        Tree::Reward => Commitment {
            root: p.reward_root,
            total: p.reward_total,
            leaf_count: p.reward_leaf_count,
        },
        Tree::Usage => Commitment {
            root: p.usage_root,
            total: p.usage_total,
            leaf_count: p.usage_leaf_count,
        },
    }
}

/// The leaves of one tree of `ds`, as listed.
fn listed(ds: &Dataset, tree: Tree) -> Result<Vec<Leaf>, String> {
    let pairs: Vec<(&str, u64)> = match tree {
        Tree::Reward => ds
            .rewards
            .leaves
            .iter()
            .map(|l| (l.operator.as_str(), l.cumulative))
            .collect(),
        Tree::Usage => ds
            .usage
            .leaves
            .iter()
            .map(|l| (l.buyer.as_str(), l.cumulative))
            .collect(),
    };
    pairs
        .into_iter()
        .map(|(account, amount)| {
            key_from_b58(account)
                .map(|account| Leaf { account, amount })
                .ok_or_else(|| {
                    format!(
                        "its {} leaf {account:?} is not a base58 32-byte key",
                        tree_name(tree)
                    )
                })
        })
        .collect()
}

/// Both trees of the dataset `bytes` of `record`'s epoch, rebuilt as listed, or why they cannot
/// prove anything against `record`'s proposal.
fn rebuild(config: &Pubkey, record: &EpochRecord, bytes: &[u8]) -> Result<[Built; 2], String> {
    let ds = Dataset::from_bytes(bytes).map_err(|e| format!("it does not decode: {e}"))?;
    let build = |tree: Tree| -> Result<Built, String> {
        let scope = Scope {
            kind: kind_of(tree),
            config: config.to_bytes(),
            epoch: record.epoch,
        };
        let sum_tree = SumTree::as_given(scope, listed(&ds, tree)?)
            .map_err(|e| format!("its {} leaves make no tree: {e:?}", tree_name(tree)))?;
        let chain = commitment(&record.proposal, tree);
        let built = sum_tree.commitment();
        if *built != chain {
            return Err(format!(
                "its {} leaves commit to root {} (total {}, {} leaves), the chain's proposal to \
                 root {} (total {}, {} leaves)",
                tree_name(tree),
                hex(&built.root),
                built.total,
                built.leaf_count,
                hex(&chain.root),
                chain.total,
                chain.leaf_count
            ));
        }
        Ok(Built { tree, sum_tree })
    };
    Ok([build(Tree::Reward)?, build(Tree::Usage)?])
}

/// The first adjacent pair out of order in `b`.
fn disorder(b: &Built, epoch: u64) -> Option<Evidence> {
    let leaves = b.sum_tree.leaves();
    let i = leaves
        .windows(2)
        .position(|w| matches!(w, [l, r] if l.account >= r.account))?;
    let left = b.sum_tree.proof(u64::try_from(i).ok()?)?;
    let right = b.sum_tree.proof(u64::try_from(i).ok()?.checked_add(1)?)?;
    let (l, r) = (left.leaf.account, right.leaf.account);
    let summary = format!(
        "the proposed {} tree of epoch {epoch} lists {} {} at index {i} and {} at index {}: {}",
        tree_name(b.tree),
        who(b.tree),
        Pubkey::new_from_array(l),
        Pubkey::new_from_array(r),
        i.saturating_add(1),
        if l == r {
            "the same account twice"
        } else {
            "out of order"
        }
    );
    Some(Evidence {
        kind: FraudKind::Disorder,
        proof: FraudProof::Disorder {
            tree: b.tree,
            left: proven(&left),
            right: proven(&right),
        },
        earlier_epoch: None,
        buyer: None,
        summary,
    })
}

/// The first leaf of `earlier` whose account has less, or nothing, in `now` (strictly ascending).
fn decrease(earlier: &Built, earlier_epoch: u64, now: &Built, epoch: u64) -> Option<Evidence> {
    let tree = now.tree;
    for (i, leaf) in earlier.sum_tree.leaves().iter().enumerate() {
        let later = match now.sum_tree.proof_for(&leaf.account) {
            Some(p) if p.leaf.amount < leaf.amount => Some((
                backhaul::state::Standing::Present(proven(&p)),
                p.leaf.amount.to_string(),
            )),
            Some(_) => None,
            None if leaf.amount > 0 => now
                .sum_tree
                .absence(&leaf.account)
                .map(|a| (absent(&a), "no leaf".to_string())),
            None => None,
        };
        let Some((standing, amount_now)) = later else {
            continue;
        };
        let before = earlier.sum_tree.proof(u64::try_from(i).ok()?)?;
        return Some(Evidence {
            kind: FraudKind::Decrease,
            summary: format!(
                "{} {}'s cumulative {} amount fell from {} in finalized epoch {earlier_epoch} to \
                 {amount_now} in proposed epoch {epoch}",
                who(tree),
                Pubkey::new_from_array(leaf.account),
                tree_name(tree),
                leaf.amount,
            ),
            proof: FraudProof::Decrease {
                tree,
                earlier: proven(&before),
                later: standing,
            },
            earlier_epoch: Some(earlier_epoch),
            buyer: None,
        });
    }
    None
}

/// The credits `buyer` bought through `epoch`, as the program reads them from its credit
/// account `account` (none: zero).
pub fn credits_bought(account: Option<&CreditAccount>, epoch: u64) -> u64 {
    let Some(account) = account else {
        return 0;
    };
    let checkpoints: Vec<PurchaseCheckpoint> = account
        .purchase_checkpoints()
        .iter()
        .map(|c| PurchaseCheckpoint {
            epoch: c.epoch,
            before: Purchases {
                credits: c.issued_before,
                tokens: c.tokens_before,
            },
        })
        .collect();
    let total = Purchases {
        credits: account.issued,
        tokens: account.tokens_burned,
    };
    purchases_through(total, &checkpoints, epoch).credits
}

/// The credit accounts of `config`, by buyer.
fn accounts_by_buyer<'a>(
    config: &Pubkey,
    credits: &'a [(Pubkey, CreditAccount)],
) -> BTreeMap<Pubkey, &'a CreditAccount> {
    credits
        .iter()
        .filter(|(_, a)| a.config == *config)
        .map(|(_, a)| (a.buyer, a))
        .collect()
}

/// The first usage leaf above what its buyer bought through `epoch`.
fn overspend(
    usage: &Built,
    config: &Pubkey,
    credits: &[(Pubkey, CreditAccount)],
    epoch: u64,
) -> Option<Evidence> {
    let accounts = accounts_by_buyer(config, credits);
    for (i, leaf) in usage.sum_tree.leaves().iter().enumerate() {
        let buyer = Pubkey::new_from_array(leaf.account);
        let bought = credits_bought(accounts.get(&buyer).copied(), epoch);
        if leaf.amount <= bought {
            continue;
        }
        let p = usage.sum_tree.proof(u64::try_from(i).ok()?)?;
        return Some(Evidence {
            kind: FraudKind::Overspend,
            summary: format!(
                "buyer {buyer} consumed {} credits through epoch {epoch} in the proposed usage \
                 tree but bought {bought} through it",
                leaf.amount
            ),
            proof: FraudProof::Overspend { leaf: proven(&p) },
            earlier_epoch: None,
            buyer: Some(buyer),
        });
    }
    None
}

/// Finds the evidence that fits `c` first (disorder, decrease, overspend), or why there is none.
/// Every proof it returns [`verifies`].
pub fn find(c: &Challenge) -> Finding {
    match candidate(c) {
        Finding::Fraud(e) if !verifies(c, &e) => Finding::NoProof {
            notes: vec![format!(
                "a {} proof was built but does not verify; it is not sent ({})",
                e.kind.name(),
                e.summary
            )],
        },
        other => other,
    }
}

fn candidate(c: &Challenge) -> Finding {
    let epoch = c.record.epoch;
    let Some(bytes) = c.dataset else {
        return Finding::Unverifiable(format!(
            "no dataset of epoch {epoch} hashing to the proposal's dataset_hash {} was found",
            hex(&c.record.proposal.dataset_hash)
        ));
    };
    let proposed = match rebuild(&c.config, c.record, bytes) {
        Ok(t) => t,
        Err(why) => {
            return Finding::Unverifiable(format!(
                "the dataset found for epoch {epoch} does not match the proposal: {why}"
            ))
        }
    };
    if let Some(e) = proposed.iter().find_map(|b| disorder(b, epoch)) {
        return Finding::Fraud(Box::new(e));
    }
    let mut notes = vec![];
    match c.earlier {
        Some((record, _)) if record.status != EpochStatus::Finalized || record.epoch >= epoch => {
            notes.push(format!(
                "epoch {} is not a finalized epoch before {epoch}: no decrease was looked for",
                record.epoch
            ));
        }
        Some((record, bytes)) => match rebuild(&c.config, record, bytes) {
            Ok(earlier) => {
                let found = earlier
                    .iter()
                    .zip(&proposed)
                    .find_map(|(before, now)| decrease(before, record.epoch, now, epoch));
                if let Some(e) = found {
                    return Finding::Fraud(Box::new(e));
                }
            }
            Err(why) => notes.push(format!(
                "the dataset of finalized epoch {} does not match its record ({why}): no \
                 decrease was looked for",
                record.epoch
            )),
        },
        None if epoch > 0 => notes.push(format!(
            "no finalized epoch before {epoch} with its dataset: no decrease was looked for"
        )),
        None => {}
    }
    let [_, usage] = &proposed;
    if let Some(e) = overspend(usage, &c.config, c.credits, epoch) {
        return Finding::Fraud(Box::new(e));
    }
    Finding::NoProof { notes }
}

/// Whether `e` shows fraud against `c`'s proposal, checked as the program checks it, with
/// `backhaul_core::sum_tree`'s verification (for tests, and before paying for a proof).
pub fn verifies(c: &Challenge, e: &Evidence) -> bool {
    let epoch = c.record.epoch;
    let scope = |tree: Tree, epoch: u64| Scope {
        kind: kind_of(tree),
        config: c.config.to_bytes(),
        epoch,
    };
    match &e.proof {
        FraudProof::Disorder { tree, left, right } => verify_disorder(
            &scope(*tree, epoch),
            &commitment(&c.record.proposal, *tree),
            &left.to_core(),
            &right.to_core(),
        ),
        FraudProof::Decrease {
            tree,
            earlier,
            later,
        } => {
            let Some((record, _)) = c.earlier else {
                return false;
            };
            if record.status != EpochStatus::Finalized
                || record.epoch >= epoch
                || e.earlier_epoch != Some(record.epoch)
            {
                return false;
            }
            let now = commitment(&c.record.proposal, *tree);
            verify(
                &scope(*tree, record.epoch),
                &commitment(&record.proposal, *tree),
                &earlier.to_core(),
            ) && match later {
                backhaul::state::Standing::Present(leaf) => {
                    leaf.account == earlier.account
                        && leaf.amount < earlier.amount
                        && verify(&scope(*tree, epoch), &now, &leaf.to_core())
                }
                standing => {
                    earlier.amount > 0
                        && standing.absence().is_some_and(|a| {
                            verify_absent(
                                &scope(*tree, epoch),
                                &now,
                                &earlier.account.to_bytes(),
                                &a,
                            )
                        })
                }
            }
        }
        FraudProof::Overspend { leaf } => {
            e.buyer == Some(leaf.account)
                && leaf.amount
                    > credits_bought(
                        accounts_by_buyer(&c.config, c.credits)
                            .get(&leaf.account)
                            .copied(),
                        epoch,
                    )
                && verify(
                    &scope(Tree::Usage, epoch),
                    &commitment(&c.record.proposal, Tree::Usage),
                    &leaf.to_core(),
                )
        }
    }
}

/// Everything a guardian learns about one proposal: the audit's checks of its epoch and the
/// evidence finder's answer.
#[derive(Clone, Debug)]
pub struct Judgment {
    pub epoch: u64,
    pub round: u32,
    pub digest: [u8; 32],
    /// The audit's checks of the epoch (`epoch-<n>/…`).
    pub checks: Vec<Check>,
    pub finding: Finding,
}

/// What to do about a proposal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Send this fraud proof (anyone may).
    Prove(Box<Evidence>),
    /// Veto (a guardian), for this reason: checks failed and no proof fits, or the data is
    /// withheld.
    Veto(String),
    /// Every check passed and no proof fits.
    Pass,
}

impl Judgment {
    /// The checks that failed.
    pub fn failed(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| !c.passed)
    }

    /// A proof when one fits; otherwise a veto when the data is withheld or a check failed;
    /// otherwise nothing to do.
    pub fn decision(&self) -> Decision {
        match &self.finding {
            Finding::Fraud(e) => Decision::Prove(e.clone()),
            Finding::Unverifiable(why) => Decision::Veto(format!("no proof fits: {why}")),
            Finding::NoProof { .. } => {
                let failed: Vec<String> = self
                    .failed()
                    .map(|c| format!("{}: {}", c.id, c.evidence))
                    .collect();
                if failed.is_empty() {
                    Decision::Pass
                } else {
                    Decision::Veto(format!(
                        "no proof fits but {} check(s) failed: {}",
                        failed.len(),
                        failed.join("; ")
                    ))
                }
            }
        }
    }
}

/// Judges the proposal of `epoch` in `s` (which must be `Proposed`): runs the audit over `s` and
/// `datasets` (by epoch; the earlier epochs' datasets let the audit check this one against
/// them) and keeps this epoch's checks, and finds the evidence against it, with the latest
/// finalized epoch before it as the earlier epoch. `None` when the snapshot holds no proposal of
/// `epoch`.
pub fn judge(s: &Snapshot, datasets: &BTreeMap<u64, Fetched>, epoch: u64) -> Option<Judgment> {
    let record = s
        .records
        .iter()
        .map(|(_, r)| r)
        .find(|r| r.epoch == epoch && r.status == EpochStatus::Proposed)?;
    let bytes_of = |e: u64| {
        datasets
            .get(&e)
            .and_then(|f| f.bytes.as_ref().ok())
            .map(Vec::as_slice)
    };
    let earlier_record = s
        .records
        .iter()
        .map(|(_, r)| r)
        .filter(|r| r.status == EpochStatus::Finalized && r.epoch < epoch)
        .max_by_key(|r| r.epoch);
    let earlier = earlier_record.and_then(|r| bytes_of(r.epoch).map(|b| (r, b)));
    let finding = find(&Challenge {
        config: s.config_address,
        record,
        dataset: bytes_of(epoch),
        earlier,
        credits: &s.credits,
    });
    let report = crate::run::audit(s, datasets);
    let checks = report
        .checks
        .into_iter()
        .filter(|c| c.epoch == Some(epoch))
        .collect();
    Some(Judgment {
        epoch,
        round: record.round,
        digest: record.proposal_digest,
        checks,
        finding,
    })
}
