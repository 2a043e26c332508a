//! Steps 3 and 4: the per-pair cap, each grant's credit limit and each buyer's credits, filled in
//! canonical order: node key, client key, session id.

use crate::error::CloseError;
use crate::inputs::CloseContext;
use crate::session::{Counted, Judged, PairGrant};
use backhaul_core::cost::Consumed;
use backhaul_core::split::bytes_for_credits;
use backhaul_protocol::Key;
use std::collections::BTreeMap;

/// The counted bytes after the caps.
pub(crate) struct Capped {
    /// Per node id.
    pub(crate) node_bytes: Vec<u64>,
    /// Per buyer id.
    pub(crate) buyer_bytes: Vec<u64>,
    /// (buyer id, operator id, bytes), merged where consecutive sessions share both.
    pub(crate) served_runs: Vec<(u32, u32, u64)>,
    pub(crate) over_pair: u64,
    pub(crate) over_credits: u64,
    pub(crate) sessions_counted: u64,
}

/// Caps the counting sessions. `consumed` is each buyer's consumption before this epoch.
pub(crate) fn apply(
    ctx: &CloseContext,
    consumed: &BTreeMap<Key, Consumed>,
    judged: &Judged,
    mut counted: Vec<Counted>,
) -> Result<Capped, CloseError> {
    let epoch = ctx.epoch;
    let overflow = || CloseError::Overflow(epoch);
    let p = ctx.params;
    let node_rank = judged.nodes.ranks();
    let client_rank = judged.clients.ranks();
    counted.sort_unstable_by_key(|c| {
        (
            (u64::from(node_rank[c.node as usize]) << 32)
                | u64::from(client_rank[c.client as usize]),
            c.session,
        )
    });
    let mut pair_left: Vec<Option<u64>> = vec![None; judged.pair_grant.len()];
    let mut buyer_left: Vec<Option<u64>> = vec![None; judged.buyers.keys.len()];
    let mut node_bytes = vec![0u64; judged.nodes.keys.len()];
    let mut buyer_bytes = vec![0u64; judged.buyers.keys.len()];
    let mut served_runs: Vec<(u32, u32, u64)> = Vec::new();
    let (mut over_pair, mut over_credits) = (0u64, 0u64);
    let mut sessions_counted = 0u64;
    let mut node_client: Option<(u32, u32)> = None;
    let mut nc_left = 0u64;
    for c in &counted {
        // Sessions without an operator were never counted (`Sessions::session`).
        let Some(operator) = judged.node_operator[c.node as usize] else {
            continue;
        };
        if node_client != Some((c.node, c.client)) {
            node_client = Some((c.node, c.client));
            nc_left = p.pair_cap_bytes;
        }
        let after_cap = c.bytes.min(nc_left);
        nc_left -= after_cap;
        over_pair = over_pair
            .checked_add(c.bytes - after_cap)
            .ok_or_else(overflow)?;
        let PairGrant::Valid { buyer, limit } = judged.pair_grant[c.pair as usize] else {
            continue;
        };
        let grant_left = pair_left[c.pair as usize].get_or_insert_with(|| {
            if limit == 0 {
                u64::MAX
            } else {
                bytes_for_credits(limit, p.credits_per_gib)
            }
        });
        let buyer_key = judged.buyers.keys[buyer as usize];
        let left = buyer_left[buyer as usize].get_or_insert_with(|| {
            let had = ctx
                .credits
                .get(&buyer_key)
                .map_or(0, |c| c.purchases_through(epoch).credits);
            let used = consumed.get(&buyer_key).map_or(0, |u| u.credits);
            bytes_for_credits(had.saturating_sub(used), p.credits_per_gib)
        });
        let take = after_cap.min(*grant_left).min(*left);
        *grant_left -= take;
        *left -= take;
        over_credits = over_credits
            .checked_add(after_cap - take)
            .ok_or_else(overflow)?;
        if take == 0 {
            continue;
        }
        sessions_counted += 1;
        node_bytes[c.node as usize] = node_bytes[c.node as usize]
            .checked_add(take)
            .ok_or_else(overflow)?;
        buyer_bytes[buyer as usize] = buyer_bytes[buyer as usize]
            .checked_add(take)
            .ok_or_else(overflow)?;
        match served_runs.last_mut() {
            Some((b, o, bytes)) if *b == buyer && *o == operator => {
                *bytes = bytes.checked_add(take).ok_or_else(overflow)?;
            }
            _ => served_runs.push((buyer, operator, take)),
        }
    }
    Ok(Capped {
        node_bytes,
        buyer_bytes,
        served_runs,
        over_pair,
        over_credits,
        sessions_counted,
    })
}
