//! Dropping what `prunable` names never changes which binding or grant a later close reads.

use crate::{latest, prunable, Stored};
use backhaul_core::merkle::sha256v;
use backhaul_protocol::{ClientGrant, NodeBinding, BINDING_LIFETIME_SECS};
use proptest::prelude::*;

const EPOCH_SECS: i64 = 1_000;

fn start(epoch: u64) -> i64 {
    i64::try_from(epoch).unwrap_or(i64::MAX) * EPOCH_SECS
}

fn binding(i: u8, operator: u8, epoch: u64, issued_at: i64, position: u64) -> Stored<NodeBinding> {
    let body = NodeBinding {
        node: [7; 32],
        operator: [operator; 32],
        epoch,
        issued_at,
    };
    Stored {
        body,
        body_hash: sha256v(&[&[i], &body.node, &issued_at.to_le_bytes()]),
        position,
    }
}

fn grant(i: u8, epoch: u64, issued_at: i64, expires_at: i64, position: u64) -> Stored<ClientGrant> {
    let body = ClientGrant {
        buyer: [1; 32],
        client: [2; 32],
        epoch,
        issued_at,
        expires_at,
        credit_limit: u64::from(i),
    };
    Stored {
        body,
        body_hash: sha256v(&[&[i], &issued_at.to_le_bytes(), &expires_at.to_le_bytes()]),
        position,
    }
}

/// What the close reads for `epoch`: the operator of the binding that applies, if it has not
/// expired.
fn operator_at(group: &[Stored<NodeBinding>], epoch: u64) -> Option<[u8; 32]> {
    latest(group.iter(), epoch)
        .filter(|b| !b.expired_for(start(epoch)))
        .map(|b| b.operator)
}

fn grant_at(group: &[Stored<ClientGrant>], epoch: u64) -> Option<ClientGrant> {
    latest(group.iter(), epoch).copied()
}

fn without<T: Copy>(group: &[Stored<T>], dropped: &[[u8; 32]]) -> Vec<Stored<T>> {
    group
        .iter()
        .filter(|s| !dropped.contains(&s.body_hash))
        .copied()
        .collect()
}

#[test]
fn a_replaced_binding_is_dropped_and_the_one_in_force_kept() {
    let old = binding(0, 1, 0, 100, 0);
    let new = binding(1, 2, 0, 200, 3);
    let group = [old, new];
    assert_eq!(
        prunable(&group, 5, |b| b.expired_for(start(6))),
        vec![old.body_hash]
    );
    // Before the replacement is in force for every later epoch (it applies from 4), nothing.
    assert!(prunable(&group, 2, |b| b.expired_for(start(3))).is_empty());
}

#[test]
fn a_node_whose_bindings_all_expired_is_dropped_whole() {
    let lifetime_epochs = u64::try_from(BINDING_LIFETIME_SECS / EPOCH_SECS).unwrap_or(u64::MAX);
    let group = [binding(0, 1, 0, 100, 0), binding(1, 1, 0, 150, 1)];
    let f = lifetime_epochs + 2;
    assert_eq!(
        prunable(&group, f, |b| b.expired_for(start(f + 1))).len(),
        2
    );
    // Not yet expired: the latest stays.
    assert_eq!(prunable(&group, 3, |b| b.expired_for(start(4))).len(), 1);
}

#[test]
fn an_item_positioned_after_the_finalized_epoch_holds_its_group() {
    let group = [binding(0, 1, 0, 100, 0), binding(1, 2, 0, 200, 9)];
    assert!(prunable(&group, 5, |b| b.expired_for(start(6))).is_empty());
}

#[test]
fn a_revocation_is_kept_and_the_grant_it_revoked_dropped() {
    let granted = grant(0, 0, 100, i64::MAX, 0);
    let revoked = grant(1, 0, 200, 0, 2);
    let group = [granted, revoked];
    assert_eq!(prunable(&group, 4, |_| false), vec![granted.body_hash]);
}

fn arb_bindings() -> impl Strategy<Value = Vec<Stored<NodeBinding>>> {
    prop::collection::vec((0u8..3, 0u64..12, 0i64..40, 0u64..10, any::<bool>()), 1..6).prop_map(
        |items| {
            items
                .into_iter()
                .enumerate()
                .map(|(i, (op, epoch, issued, position, long_ago))| {
                    // Issued either recently or so long ago that it expires within the window.
                    let issued_at = if long_ago {
                        issued * EPOCH_SECS - BINDING_LIFETIME_SECS
                    } else {
                        issued * EPOCH_SECS
                    };
                    binding(i as u8, op, epoch, issued_at, position)
                })
                .collect()
        },
    )
}

fn arb_grants() -> impl Strategy<Value = Vec<Stored<ClientGrant>>> {
    prop::collection::vec((0u64..12, 0i64..40, 0i64..40, 0u64..10), 1..6).prop_map(|items| {
        items
            .into_iter()
            .enumerate()
            .map(|(i, (epoch, issued, expires, position))| {
                grant(i as u8, epoch, issued, expires * EPOCH_SECS, position)
            })
            .collect()
    })
}

proptest! {
    #[test]
    fn pruning_bindings_never_changes_a_later_close(group in arb_bindings(), f in 0u64..12) {
        let dropped = prunable(&group, f, |b| b.expired_for(start(f + 1)));
        let kept = without(&group, &dropped);
        for epoch in f + 1..f + 60 {
            prop_assert_eq!(operator_at(&group, epoch), operator_at(&kept, epoch), "epoch {}", epoch);
        }
    }

    #[test]
    fn pruning_grants_never_changes_a_later_close(group in arb_grants(), f in 0u64..12) {
        let dropped = prunable(&group, f, |_| false);
        let kept = without(&group, &dropped);
        for epoch in f + 1..f + 30 {
            prop_assert_eq!(grant_at(&group, epoch), grant_at(&kept, epoch), "epoch {}", epoch);
        }
    }

    #[test]
    fn pruning_leaves_at_most_one_grant_per_pair_once_all_are_in_force(group in arb_grants()) {
        let f = 20;
        let all_in_force = group.iter().all(|g| g.body.epoch <= f && g.position < f);
        let dropped = prunable(&group, f, |_| false);
        if all_in_force {
            prop_assert_eq!(group.len() - dropped.len(), 1);
        }
    }
}
