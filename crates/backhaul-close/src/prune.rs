//! Which bindings and grants an oracle may drop from its state once an epoch is finalized,
//! without changing any later close.
//!
//! Oracles prune at different moments (each when it learns of a finalization), and an oracle
//! that pruned must close every later epoch exactly as one that did not: otherwise their datasets
//! would differ and the epoch could not finalize. So an item is dropped only when the close of
//! every epoch after the finalized one reads the same with and without it:
//!
//! - a key's group of items is touched only when every item has a position at or before the
//!   finalized epoch (a later or unknown position could still change which item applies when);
//! - a group whose every item is *dead* for all later epochs is dropped whole (a binding past its
//!   lifetime is treated by the close as no binding at all);
//! - otherwise the items [`latest`] picks for some later epoch are kept, with every item not yet
//!   effective, and the rest are dropped only if the kept ones pick the same item for every later
//!   epoch (checked at each epoch where the pick can change).

use crate::inputs::{effective_epoch, latest, Stored, Versioned};
use std::collections::BTreeSet;

/// The body hashes of a key's `group` that can be dropped once `finalized` is finalized. `dead`
/// says whether an item counts as absent for every epoch after `finalized` (for bindings:
/// expired by the start of the next epoch; grants are never dead, since the close tells an
/// expired grant from a missing one).
pub fn prunable<T: Versioned + Copy + PartialEq>(
    group: &[Stored<T>],
    finalized: u64,
    dead: impl Fn(&T) -> bool,
) -> Vec<[u8; 32]> {
    if group.is_empty() || group.iter().any(|s| s.position > finalized) {
        return Vec::new();
    }
    if group.iter().all(|s| dead(&s.body)) {
        return group.iter().map(|s| s.body_hash).collect();
    }
    let next = finalized.saturating_add(1);
    let effective = |s: &Stored<T>, g: &[Stored<T>]| effective_epoch(s, g.iter());
    // Where the pick of the whole group can change.
    let mut checkpoints: BTreeSet<u64> = group
        .iter()
        .map(|s| effective(s, group))
        .filter(|e| *e > next)
        .collect();
    checkpoints.insert(next);
    let pick = |g: &[Stored<T>], epoch: u64| -> Option<[u8; 32]> {
        let body = latest(g.iter(), epoch)?;
        g.iter()
            .filter(|s| s.body == *body)
            .map(|s| s.body_hash)
            .max()
    };
    let mut keep: BTreeSet<[u8; 32]> = checkpoints.iter().filter_map(|e| pick(group, *e)).collect();
    keep.extend(
        group
            .iter()
            .filter(|s| effective(s, group) > next)
            .map(|s| s.body_hash),
    );
    if keep.len() == group.len() {
        return Vec::new();
    }
    let kept: Vec<Stored<T>> = group
        .iter()
        .filter(|s| keep.contains(&s.body_hash))
        .copied()
        .collect();
    // The kept items' own effective epochs can differ from before (the group's first position
    // may have been dropped): compare the picks wherever either could change.
    checkpoints.extend(
        kept.iter()
            .map(|s| effective(s, &kept))
            .filter(|e| *e > next),
    );
    if checkpoints
        .iter()
        .any(|e| pick(group, *e) != pick(&kept, *e))
    {
        return Vec::new();
    }
    group
        .iter()
        .filter(|s| !keep.contains(&s.body_hash))
        .map(|s| s.body_hash)
        .collect()
}
