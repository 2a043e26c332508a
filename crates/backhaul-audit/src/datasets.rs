//! Each epoch's dataset as published: available, hashing to the chain's `dataset_hash`, a
//! canonical encoding naming this deployment and epoch, and its nodes agreeing with its reward
//! leaves and statistics.

use crate::evidence::{ascending, key, same, sum};
use crate::report::Checks;
use crate::run::EpochCtx;
use crate::snapshot::Fetched;
use backhaul_core::merkle::sha256v;
use backhaul_protocol::dataset::{hex, Dataset, DATASET_VERSION};
use std::collections::BTreeMap;

/// `dataset.available`, `dataset.sha256` and `dataset.format`; returns the decoded dataset, or
/// `None` when there is none to check further.
pub(crate) fn read(c: &mut Checks, x: &EpochCtx, fetched: Option<&Fetched>) -> Option<Dataset> {
    let e = x.e;
    let at = Some(e);
    let proposal = &x.record.proposal;
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
    Some(ds)
}

/// Nodes, their operators' bytes and the statistics agree.
pub(crate) fn node_checks(c: &mut Checks, e: u64, ds: &Dataset) {
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
