//! Recomputing every dataset from what it was closed over: its published agreed input (the signed
//! receipts, grants and bindings, checked against the dataset's `input_hash` and each signature
//! again), the bindings and grants of every earlier agreed input with their positions, and the
//! chain's figures the dataset records (which the other checks compare with the chain). The pure
//! close of `backhaul-close` runs over them, and the bytes must be the published bytes.

use crate::report::Check;
use crate::snapshot::{Fetched, Snapshot};
use backhaul_close::{BuyerCredits, ChainInputs, CloseContext, CloseInput, Stored, StoredReceipt};
use backhaul_core::merkle::sha256v;
use backhaul_protocol::dataset::{hash_from_hex, hex, key_from_b58, Dataset};
use backhaul_protocol::input::EpochInput;
use backhaul_protocol::{ClientGrant, Deployment, NodeBinding};
use std::collections::{BTreeMap, HashMap};

/// The close's chain inputs for `d`, from the figures it records.
fn chain_of(s: &Snapshot, d: &Dataset) -> ChainInputs {
    let p = &d.parameters;
    ChainInputs {
        genesis_ts: s.config.genesis_ts,
        epoch_length_secs: s.config.epoch_length_secs,
        next_epoch: d.epoch,
        initial_per_epoch: p.initial_per_epoch,
        decay_bps: p.decay_bps,
        decay_period_epochs: p.decay_period_epochs,
        floor_per_epoch: p.floor_per_epoch,
        lifetime_cap: p.lifetime_cap,
        scheduled_minted: p.scheduled_minted,
        burn_ema: p.previous_burn_ema,
        net_emissions_cap: p.net_emissions_cap,
        burn_smoothing_epochs: p.burn_smoothing_epochs,
        usage_cap_bps: p.usage_cap_bps,
        decimals: p.decimals,
        last_reward_total: p.previous_reward_total,
        last_usage_total: p.previous_usage_total,
        last_usage_cost_total: p.previous_usage_cost_total,
        tokens_burned: p.tokens_burned,
        credits_per_token: p.credits_per_token,
        ledger_sealed: true,
        burns_not_reemitted: p.burns_not_reemitted,
        params: backhaul_close::CloseParams {
            credits_per_gib: p.credits_per_gib,
            pair_cap_bytes: p.pair_cap_bytes,
            max_rate_bytes_per_sec: p.max_rate_bytes_per_sec,
        },
        grace_secs: 0,
    }
}

/// The buyers' purchases the dataset used (its usage leaves' `purchased_*`): a buyer charged
/// nothing played no part in the close.
fn credits_of(d: &Dataset) -> HashMap<[u8; 32], BuyerCredits> {
    d.usage
        .leaves
        .iter()
        .filter(|l| l.purchased_credits > 0 || l.purchased_tokens > 0)
        .filter_map(|l| {
            Some((
                key_from_b58(&l.buyer)?,
                BuyerCredits {
                    issued: l.purchased_credits,
                    tokens_burned: l.purchased_tokens,
                    ..Default::default()
                },
            ))
        })
        .collect()
}

/// Where two datasets first differ, in words.
fn difference(published: &Dataset, rebuilt: &Dataset) -> String {
    let fields: [(&str, bool); 8] = [
        (
            "reward root",
            published.rewards.root != rebuilt.rewards.root,
        ),
        ("usage root", published.usage.root != rebuilt.usage.root),
        ("allocation", published.allocation != rebuilt.allocation),
        ("budget", published.budget != rebuilt.budget),
        ("served rows", published.served != rebuilt.served),
        ("nodes", published.nodes != rebuilt.nodes),
        ("rejected sessions", published.rejected != rebuilt.rejected),
        ("stats", published.stats != rebuilt.stats),
    ];
    let differing: Vec<&str> = fields.iter().filter(|(_, d)| *d).map(|(n, _)| *n).collect();
    if differing.is_empty() {
        "the bytes differ in their encoding".into()
    } else {
        format!("they differ in: {}", differing.join(", "))
    }
}

/// One `dataset.recomputed` check per epoch with a dataset, in epoch order.
pub fn recompute(
    s: &Snapshot,
    datasets: &BTreeMap<u64, Fetched>,
    inputs: &BTreeMap<u64, Fetched>,
) -> Vec<Check> {
    let deployment = Deployment {
        program_id: s.program_id.to_bytes(),
        config: s.config_address.to_bytes(),
    };
    let mut checks = Vec::new();
    let mut bindings: Vec<Stored<NodeBinding>> = Vec::new();
    let mut grants: Vec<Stored<ClientGrant>> = Vec::new();
    let mut seen: std::collections::HashSet<[u8; 32]> = std::collections::HashSet::new();
    let mut previous: Option<Dataset> = None;
    // Once an epoch cannot be rebuilt, the state later ones build on is unknown.
    let mut broken: Option<u64> = None;
    for (&epoch, fetched) in datasets {
        let mut check = |problem: Option<String>, ok: String| {
            checks.push(Check {
                id: format!("epoch-{epoch}/dataset.recomputed"),
                name: "dataset.recomputed".into(),
                epoch: Some(epoch),
                passed: problem.is_none(),
                evidence: problem.unwrap_or(ok),
            })
        };
        if let Some(b) = broken {
            check(
                Some(format!(
                    "epoch {b} could not be rebuilt, and this one builds on it"
                )),
                String::new(),
            );
            continue;
        }
        let outcome = (|| -> Result<(Dataset, EpochInput, String), String> {
            let bytes = fetched
                .bytes
                .as_ref()
                .map_err(|e| format!("no dataset ({}: {e})", fetched.source))?;
            let published = Dataset::from_bytes(bytes).map_err(|e| e.to_string())?;
            let input_fetch = inputs
                .get(&epoch)
                .ok_or_else(|| "its agreed input was not fetched".to_string())?;
            let input_bytes = input_fetch
                .bytes
                .as_ref()
                .map_err(|e| format!("no agreed input ({}: {e})", input_fetch.source))?;
            if Some(sha256v(&[input_bytes])) != hash_from_hex(&published.input_hash) {
                return Err(format!(
                    "the agreed input from {} does not hash to the dataset's input_hash {}",
                    input_fetch.source, published.input_hash
                ));
            }
            let input = EpochInput::from_bytes(input_bytes).map_err(|e| e.to_string())?;
            input
                .check_for(&deployment, epoch)
                .map_err(|e| e.to_string())?;
            let mut verified = input.clone();
            let forged = verified.retain_verified(&deployment);
            if forged > 0 {
                return Err(format!(
                    "{forged} item(s) of the agreed input do not carry valid signatures"
                ));
            }
            // An item already in an earlier agreed input keeps its first position (an oracle
            // that dropped it from its state may include it again; it changes nothing).
            for b in input
                .bindings
                .iter()
                .filter(|b| seen.insert(b.binding.body_hash()))
            {
                bindings.push(Stored {
                    body: b.binding,
                    body_hash: b.binding.body_hash(),
                    position: epoch,
                });
            }
            for g in input
                .grants
                .iter()
                .filter(|g| seen.insert(g.grant.body_hash()))
            {
                grants.push(Stored {
                    body: g.grant,
                    body_hash: g.grant.body_hash(),
                    position: epoch,
                });
            }
            let chain = chain_of(s, &published);
            let credits = credits_of(&published);
            let receipts: Vec<StoredReceipt> = input
                .receipts
                .iter()
                .map(|r| StoredReceipt {
                    receipt: r.receipt,
                    body_hash: r.receipt.body_hash(),
                })
                .collect();
            let start = backhaul_core::epoch::epoch_start(
                s.config.genesis_ts,
                s.config.epoch_length_secs,
                epoch,
            )
            .map_err(|e| e.to_string())?;
            let end = backhaul_core::epoch::epoch_end(
                s.config.genesis_ts,
                s.config.epoch_length_secs,
                epoch,
            )
            .map_err(|e| e.to_string())?;
            let rebuilt = backhaul_close::close(&CloseInput {
                context: CloseContext {
                    deployment,
                    epoch,
                    epoch_start: start,
                    epoch_end: end,
                    input_hash: sha256v(&[input_bytes]),
                    params: chain.params,
                    chain: &chain,
                    bindings: &bindings,
                    grants: &grants,
                    credits: &credits,
                    previous: previous.as_ref(),
                },
                receipts: &receipts,
            })
            .map_err(|e| format!("the close refuses its inputs: {e}"))?;
            if rebuilt.to_bytes() != *bytes {
                return Err(format!(
                    "rebuilt from its agreed input, the dataset is not the published one: {}",
                    difference(&published, &rebuilt)
                ));
            }
            let ok = format!(
                "rebuilt byte for byte from {} receipts, {} grants and {} bindings (input {})",
                input.receipts.len(),
                input.grants.len(),
                input.bindings.len(),
                hex(&sha256v(&[input_bytes]))
            );
            Ok((published, input, ok))
        })();
        match outcome {
            Ok((published, _, ok)) => {
                check(None, ok);
                previous = Some(published);
            }
            Err(problem) => {
                check(Some(problem), String::new());
                broken = Some(epoch);
            }
        }
    }
    checks
}
