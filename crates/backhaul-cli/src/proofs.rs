//! Proofs from the oracles, checked against the chain before anything trusts them.
//!
//! The oracles serve an account's leaf in the newest epoch they closed (`GET
//! /v1/proofs/{operator,buyer}/{key}`). A proof is only used once it verifies against the root the
//! chain recorded for its epoch. To claim or settle, the epoch must also be finalized; when the
//! oracles' newest epoch is not finalized yet, the newest finalized epoch's proof is rebuilt from
//! its published dataset (whose sha256 the chain holds).

use crate::context::Context;
use crate::error::CommandError;
use anyhow::{anyhow, bail};
use backhaul_core::merkle::TreeKind;
use backhaul_core::sum_tree::{verify_leaf, Commitment, Leaf, Scope, SumNode};
use backhaul_core::tree::{Entry, EpochTree};
use backhaul_protocol::api::ProofResponse;
use backhaul_protocol::dataset::Dataset;
use backhaul_sdk::state::{Config, EpochRecord, EpochStatus};
use backhaul_sdk::Deployment;
use serde::Serialize;
use solana_sdk::pubkey::Pubkey;
use std::str::FromStr;

/// Which tree: an operator's rewards or a buyer's usage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProofKind {
    Reward,
    Usage,
}

impl ProofKind {
    fn tree(self) -> TreeKind {
        match self {
            ProofKind::Reward => TreeKind::Reward,
            ProofKind::Usage => TreeKind::Usage,
        }
    }

    fn noun(self) -> &'static str {
        match self {
            ProofKind::Reward => "operator",
            ProofKind::Usage => "buyer",
        }
    }
}

/// Where an epoch stands on-chain, as far as a proof is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChainStatus {
    /// No vote has reached the chain for this epoch yet.
    NotProposed,
    /// Votes are being collected.
    Voting,
    /// A proposal has quorum; it becomes final after its challenge period.
    Proposed,
    Finalized,
    Vetoed,
}

impl ChainStatus {
    pub fn describe(self) -> &'static str {
        match self {
            ChainStatus::NotProposed => "not yet proposed on-chain",
            ChainStatus::Voting => "oracles voting",
            ChainStatus::Proposed => "proposed, in its challenge period",
            ChainStatus::Finalized => "finalized",
            ChainStatus::Vetoed => "vetoed by the guardian",
        }
    }
}

/// An account's leaf and proof, and what the chain says about it.
#[derive(Clone, Debug, Serialize)]
pub struct CheckedProof {
    pub epoch: u64,
    pub cumulative: u64,
    /// The leaf's position in its tree.
    pub index: u64,
    /// The siblings (hash and sum), from the leaf's sibling up.
    #[serde(skip)]
    pub proof: Vec<SumNode>,
    pub status: ChainStatus,
    /// Whether the leaf verifies against the root the chain holds for its epoch (a proposal
    /// with quorum or a finalized one); `false` when the chain has no root for it yet.
    pub verified: bool,
    /// When the epoch can be finalized (quorum plus the challenge period), if it has quorum.
    pub finalizable_at: Option<i64>,
    /// Where the proof came from: an oracle's URL, or `dataset <url>`.
    pub source: String,
}

/// The status of an epoch on-chain and, once a proposal has quorum, its reward or usage tree's
/// commitment (the root and the total and leaf count declared with it), when it becomes
/// finalizable and its dataset hash.
async fn record_root(
    ctx: &Context,
    d: &Deployment,
    kind: ProofKind,
    epoch: u64,
) -> anyhow::Result<(
    ChainStatus,
    Option<Commitment>,
    Option<i64>,
    Option<[u8; 32]>,
)> {
    let Some(r) = ctx.account::<EpochRecord>(&d.epoch_record(epoch)).await? else {
        return Ok((ChainStatus::NotProposed, None, None, None));
    };
    let status = match r.status {
        EpochStatus::Voting => ChainStatus::Voting,
        EpochStatus::Proposed => ChainStatus::Proposed,
        EpochStatus::Finalized => ChainStatus::Finalized,
        EpochStatus::Vetoed => ChainStatus::Vetoed,
    };
    let has_root = matches!(status, ChainStatus::Proposed | ChainStatus::Finalized);
    let p = &r.proposal;
    let root = match kind {
        ProofKind::Reward => Commitment {
            root: p.reward_root,
            total: p.reward_total,
            leaf_count: p.reward_leaf_count,
        },
        ProofKind::Usage => Commitment {
            root: p.usage_root,
            total: p.usage_total,
            leaf_count: p.usage_leaf_count,
        },
    };
    Ok((
        status,
        has_root.then_some(root),
        has_root.then_some(r.finalizable_at),
        has_root.then_some(r.proposal.dataset_hash),
    ))
}

fn decode_proof(p: &ProofResponse) -> anyhow::Result<Vec<SumNode>> {
    p.siblings()
        .ok_or_else(|| anyhow!("a proof hash is not 32 bytes of hex"))
}

/// Every oracle's newest proof for `account`, checked against the chain; newest epoch first,
/// verified proofs before unverified ones. Oracles that fail or have no leaf are logged.
pub async fn oracle_proofs(
    ctx: &Context,
    d: &Deployment,
    kind: ProofKind,
    account: &Pubkey,
) -> anyhow::Result<Vec<CheckedProof>> {
    let readers = ctx.oracle_readers()?;
    let key = account.to_bytes();
    let answers = futures::future::join_all(readers.iter().map(|c| async move {
        let r = match kind {
            ProofKind::Reward => c.operator_proof(&key).await,
            ProofKind::Usage => c.buyer_proof(&key).await,
        };
        (c.base_url().to_string(), r)
    }))
    .await;
    let mut out = vec![];
    let mut errors = vec![];
    for (url, answer) in answers {
        let p = match answer {
            Ok(Some(p)) => p,
            Ok(None) => {
                tracing::info!(oracle = %url, "no {} leaf for {account}", kind.noun());
                continue;
            }
            Err(e) => {
                tracing::warn!(oracle = %url, error = %e, "oracle did not answer");
                errors.push(format!("{url}: {e}"));
                continue;
            }
        };
        if p.account != account.to_string() {
            tracing::warn!(oracle = %url, "oracle answered for {} instead of {account}", p.account);
            continue;
        }
        let proof = match decode_proof(&p) {
            Ok(proof) => proof,
            Err(e) => {
                tracing::warn!(oracle = %url, error = %e, "malformed proof");
                continue;
            }
        };
        let (status, root, finalizable_at, _) = record_root(ctx, d, kind, p.epoch).await?;
        let scope = Scope {
            kind: kind.tree(),
            config: d.config.to_bytes(),
            epoch: p.epoch,
        };
        let leaf = Leaf {
            account: key,
            amount: p.cumulative,
        };
        let verified = root.is_some_and(|root| verify_leaf(&scope, &root, &leaf, p.index, &proof));
        if root.is_some() && !verified {
            tracing::warn!(oracle = %url, epoch = p.epoch, "proof does not match the chain's root; ignored");
            continue;
        }
        out.push(CheckedProof {
            epoch: p.epoch,
            cumulative: p.cumulative,
            index: p.index,
            proof,
            status,
            verified,
            finalizable_at,
            source: url,
        });
    }
    if out.is_empty() && !errors.is_empty() && errors.len() == readers.len() {
        bail!(
            "no oracle answered: {}. Check the --oracle URLs",
            errors.join("; ")
        );
    }
    out.sort_by(|a, b| b.epoch.cmp(&a.epoch).then(b.verified.cmp(&a.verified)));
    Ok(out)
}

/// The newest proof for `account` whose epoch is finalized on-chain and which verifies against
/// its root; `None` when the account has no leaf in the newest finalized epoch (or no epoch is
/// finalized yet).
pub async fn finalized_proof(
    ctx: &Context,
    d: &Deployment,
    kind: ProofKind,
    account: &Pubkey,
    next_epoch: u64,
) -> anyhow::Result<Option<CheckedProof>> {
    if next_epoch == 0 {
        return Ok(None);
    }
    let proofs = oracle_proofs(ctx, d, kind, account).await?;
    finalized_from(ctx, d, kind, account, next_epoch, proofs).await
}

/// The newest finalized proof of `account`, for a command that acts on it on-chain (`acting`:
/// "settling", "claiming"): refused while the deployment is paused, fetched behind a spinner
/// saying `fetching`.
pub async fn proof_to_act_on(
    ctx: &Context,
    d: &Deployment,
    c: &Config,
    kind: ProofKind,
    account: &Pubkey,
    acting: &str,
    fetching: &str,
) -> anyhow::Result<Option<CheckedProof>> {
    if c.is_paused(ctx.chain_time().await?) {
        return Err(CommandError::Paused {
            what: acting.into(),
            until: c.paused_until,
        }
        .into());
    }
    let spinner = ctx.spinner(fetching);
    let proof = finalized_proof(ctx, d, kind, account, c.next_epoch).await;
    spinner.finish_and_clear();
    proof
}

/// The newest finalized epoch as messages name it: its number, or "none yet".
pub fn newest_finalized(next_epoch: u64) -> String {
    next_epoch
        .checked_sub(1)
        .map_or("none yet".to_string(), |e| e.to_string())
}

/// [`finalized_proof`] from proofs already fetched with [`oracle_proofs`].
pub async fn finalized_from(
    ctx: &Context,
    d: &Deployment,
    kind: ProofKind,
    account: &Pubkey,
    next_epoch: u64,
    proofs: Vec<CheckedProof>,
) -> anyhow::Result<Option<CheckedProof>> {
    let Some(newest_final) = next_epoch.checked_sub(1) else {
        return Ok(None);
    };
    if let Some(p) = proofs
        .iter()
        .find(|p| p.verified && p.status == ChainStatus::Finalized && p.epoch == newest_final)
    {
        return Ok(Some(p.clone()));
    }
    // The oracles' newest epoch is not the newest finalized one: rebuild its proof from the
    // finalized epoch's dataset, which every oracle keeps.
    if let Some(p) = dataset_proof(ctx, d, kind, account, newest_final).await? {
        return Ok(Some(p));
    }
    // Fall back on the newest finalized proof an oracle served (an older epoch).
    Ok(proofs
        .into_iter()
        .find(|p| p.verified && p.status == ChainStatus::Finalized))
}

/// The proof of `account` in `epoch`, rebuilt from the epoch's dataset after checking the
/// dataset's hash against the chain.
pub async fn dataset_proof(
    ctx: &Context,
    d: &Deployment,
    kind: ProofKind,
    account: &Pubkey,
    epoch: u64,
) -> anyhow::Result<Option<CheckedProof>> {
    let (status, root, finalizable_at, dataset_hash) = record_root(ctx, d, kind, epoch).await?;
    let (Some(root), Some(dataset_hash)) = (root, dataset_hash) else {
        return Ok(None);
    };
    for client in ctx.oracle_readers()? {
        let url = client.base_url().to_string();
        let bytes = match client.dataset(epoch).await {
            Ok(b) => b,
            Err(e) => {
                tracing::info!(oracle = %url, epoch, error = %e, "no dataset");
                continue;
            }
        };
        if backhaul_core::merkle::sha256v(&[&bytes]) != dataset_hash {
            tracing::warn!(oracle = %url, epoch, "dataset does not hash to the chain's dataset_hash; ignored");
            continue;
        }
        let dataset = match Dataset::from_bytes(&bytes) {
            Ok(ds) => ds,
            Err(e) => {
                tracing::warn!(oracle = %url, epoch, error = %e, "dataset does not parse");
                continue;
            }
        };
        let entries: Vec<(String, u64)> = match kind {
            ProofKind::Reward => dataset
                .rewards
                .leaves
                .iter()
                .map(|l| (l.operator.clone(), l.cumulative))
                .collect(),
            ProofKind::Usage => dataset
                .usage
                .leaves
                .iter()
                .map(|l| (l.buyer.clone(), l.cumulative))
                .collect(),
        };
        let entries = entries
            .into_iter()
            .map(|(k, cumulative)| {
                Pubkey::from_str(&k).map(|p| Entry {
                    account: p.to_bytes(),
                    cumulative,
                })
            })
            .collect::<Result<Vec<_>, _>>();
        let Ok(entries) = entries else {
            tracing::warn!(oracle = %url, epoch, "dataset holds a malformed key");
            continue;
        };
        let tree = match EpochTree::build(kind.tree(), &d.config.to_bytes(), epoch, entries) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(oracle = %url, epoch, error = ?e, "dataset's leaves do not build a tree");
                continue;
            }
        };
        if *tree.commitment() != root {
            tracing::warn!(oracle = %url, epoch, "dataset's tree does not match the chain's root");
            continue;
        }
        return Ok(tree
            .proof_for(&account.to_bytes())
            .map(|proof| CheckedProof {
                epoch,
                cumulative: proof.leaf.amount,
                index: proof.index,
                proof: proof.siblings,
                status,
                verified: true,
                finalizable_at,
                source: format!("dataset {url}"),
            }));
    }
    Ok(None)
}
