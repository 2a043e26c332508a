//! Step 5, the bytes: counted bytes per node, per operator and per (buyer, operator) pair, in
//! key order.

use crate::error::CloseError;
use crate::session::Judged;
use backhaul_protocol::Key;
use std::ops::Range;

/// Who served whom.
pub(crate) struct Attribution {
    /// Every node with counted bytes, in key order: (node, (operator, bytes)).
    pub(crate) nodes: Vec<(Key, (Key, u64))>,
    /// Per operator id.
    pub(crate) operator_bytes: Vec<u64>,
    pub(crate) bytes_counted: u64,
    /// (buyer id, operator id, bytes): one row per pair with counted bytes, in buyer key order,
    /// then operator key order.
    pub(crate) served: Vec<(u32, u32, u64)>,
    /// Each buyer with counted bytes, in key order, and its rows in `served`.
    pub(crate) groups: Vec<(u32, Range<usize>)>,
}

/// Sums the capped bytes: `node_bytes` per node id, `served_runs` as `caps::apply` left them.
pub(crate) fn attribute(
    epoch: u64,
    judged: &Judged,
    node_bytes: &[u64],
    mut served_runs: Vec<(u32, u32, u64)>,
) -> Result<Attribution, CloseError> {
    let overflow = || CloseError::Overflow(epoch);
    let mut operator_bytes = vec![0u64; judged.operators.keys.len()];
    let mut node_rows: Vec<(Key, Key, u64)> = Vec::new();
    for (node, bytes) in node_bytes.iter().enumerate() {
        if *bytes == 0 {
            continue;
        }
        if let Some(op) = judged.node_operator[node] {
            operator_bytes[op as usize] = operator_bytes[op as usize]
                .checked_add(*bytes)
                .ok_or_else(overflow)?;
            node_rows.push((
                judged.nodes.keys[node],
                judged.operators.keys[op as usize],
                *bytes,
            ));
        }
    }
    node_rows.sort_unstable_by_key(|r| r.0);
    let nodes: Vec<(Key, (Key, u64))> =
        node_rows.into_iter().map(|(n, o, b)| (n, (o, b))).collect();
    let bytes_counted = operator_bytes
        .iter()
        .try_fold(0u64, |a, c| a.checked_add(*c))
        .ok_or_else(overflow)?;

    // The (buyer, operator) rows in buyer key order, then operator key order, merged.
    let buyer_rank = judged.buyers.ranks();
    let operator_rank = judged.operators.ranks();
    served_runs.sort_unstable_by_key(|(b, o, _)| {
        (u64::from(buyer_rank[*b as usize]) << 32) | u64::from(operator_rank[*o as usize])
    });
    let mut served: Vec<(u32, u32, u64)> = Vec::with_capacity(served_runs.len());
    for (b, o, bytes) in served_runs {
        match served.last_mut() {
            Some((pb, po, pbytes)) if *pb == b && *po == o => {
                *pbytes = pbytes.checked_add(bytes).ok_or_else(overflow)?;
            }
            _ => served.push((b, o, bytes)),
        }
    }
    let mut groups: Vec<(u32, Range<usize>)> = Vec::new();
    for (i, (b, _, _)) in served.iter().enumerate() {
        match groups.last_mut() {
            Some((gb, range)) if *gb == *b => range.end = i + 1,
            _ => groups.push((*b, i..i + 1)),
        }
    }
    Ok(Attribution {
        nodes,
        operator_bytes,
        bytes_counted,
        served,
        groups,
    })
}
