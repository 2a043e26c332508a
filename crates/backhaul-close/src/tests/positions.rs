//! What a buyer or a client can still change about an epoch after it delivered: nothing. A
//! revocation counts from the epoch after the one whose agreed input first held it, whatever it
//! dates itself; a receipt naming another node is another session; an age the client and node
//! make up cannot hide a rate beyond the cap.

use super::{key, reward, usage, Net, GIB, TOKEN};
use crate::{effective_epoch, latest, Stored};
use backhaul_core::merkle::sha256v;
use backhaul_protocol::dataset::Dataset;
use backhaul_protocol::{ClientGrant, Key, NodeBinding};

/// An honest buyer with 100 tokens of credits, its client granted in epoch 0, served 4 GiB in
/// epoch 2 by a node of operator A.
fn served() -> (Net, Key, Key, Key) {
    let mut n = Net::new(10_000, 1_000 * TOKEN);
    let (buyer, client, a) = (key("buyer", 0), key("client", 0), key("operator", 0));
    n.buy(buyer, 100 * TOKEN);
    n.grant(buyer, client);
    n.bind(key("node", 0), a);
    n.session(2, key("node", 0), client, buyer, 1, 4 * GIB, 3);
    (n, buyer, client, a)
}

fn revocation(buyer: Key, client: Key, epoch: u64, position: u64) -> Stored<ClientGrant> {
    Stored {
        body: ClientGrant {
            buyer,
            client,
            epoch,
            issued_at: 1_000,
            expires_at: 0,
            credit_limit: 0,
        },
        body_hash: sha256v(&[b"revocation", &buyer, &client]),
        position,
    }
}

fn closed(n: &Net, epoch: u64) -> Dataset {
    let mut chain = n.chain.clone();
    chain.next_epoch = epoch;
    let input = n.input(epoch, None);
    let ctx = crate::CloseContext {
        chain: &chain,
        ..input.context
    };
    crate::close(&crate::CloseInput {
        context: ctx,
        receipts: input.receipts,
    })
    .expect("close")
}

fn closed_reward(n: &Net, epoch: u64, operator: &Key) -> u64 {
    reward(&closed(n, epoch), operator)
}

#[test]
fn a_revocation_dated_back_and_sent_after_the_epoch_changes_nothing() {
    let (mut n, buyer, client, a) = served();
    let paid = closed_reward(&n, 2, &a);
    assert!(paid > 0, "the served bytes are paid");
    // Dated back to epoch 2, but it reached the agreed input of epoch 2 (sent during its grace
    // period, or slipped in by a dishonest oracle) or of epoch 3: it replaces the grant of epoch
    // 0 only from the epoch after.
    for position in [2, 3] {
        n.grants.push(revocation(buyer, client, 2, position));
        assert_eq!(closed_reward(&n, 2, &a), paid, "position {position}");
        n.grants.pop();
    }
    // It does take effect from the epoch after its position.
    n.grants.push(revocation(buyer, client, 2, 2));
    n.receipts.clear();
    n.session(3, key("node", 0), client, buyer, 1, 4 * GIB, 3);
    assert_eq!(closed_reward(&n, 3, &a), 0, "revoked from epoch 3 on");
}

#[test]
fn a_receipt_naming_a_made_up_node_is_another_session() {
    let (mut n, buyer, client, a) = served();
    let paid = closed_reward(&n, 2, &a);
    let consumed = usage(&closed(&n, 2), &buyer).bytes;
    // The client signs a higher sequence of the same session id naming a key it just made up
    // (no binding): the honest node's session still counts in full.
    n.session(2, key("made-up node", 0), client, buyer, 1, 10 * GIB, 9);
    assert_eq!(closed_reward(&n, 2, &a), paid);
    let d = closed(&n, 2);
    assert_eq!(d.rejected.get("unknown_binding"), Some(&1));
    assert_eq!(usage(&d, &buyer).bytes, consumed);
}

#[test]
fn a_new_grant_or_binding_counts_from_the_epoch_it_arrived_in() {
    let node = key("node", 9);
    let b = |operator: Key, epoch: u64, issued_at: i64, position: u64| Stored {
        body: NodeBinding {
            node,
            operator,
            epoch,
            issued_at,
        },
        body_hash: sha256v(&[&operator, &[position as u8]]),
        position,
    };
    let first = b(key("operator", 1), 0, 10, 4);
    // Dated epoch 0, first held by epoch 4's input: applies from 4 (not before).
    assert_eq!(effective_epoch(&first, [&first]), 4);
    let group = [first];
    assert!(latest(group.iter(), 3).is_none());
    assert_eq!(
        latest(group.iter(), 4).map(|x| x.operator),
        Some(key("operator", 1))
    );
    // A rebinding first held by epoch 6's input replaces it from epoch 7; one dated later than
    // that waits for its date.
    let second = b(key("operator", 2), 0, 20, 6);
    let group = [first, second];
    assert_eq!(effective_epoch(&second, group.iter()), 7);
    assert_eq!(
        latest(group.iter(), 6).map(|x| x.operator),
        Some(key("operator", 1))
    );
    assert_eq!(
        latest(group.iter(), 7).map(|x| x.operator),
        Some(key("operator", 2))
    );
    let dated = b(key("operator", 3), 12, 30, 6);
    assert_eq!(effective_epoch(&dated, [&first, &dated]), 12);
}

#[test]
fn a_session_claiming_to_be_older_than_its_epoch_is_judged_at_the_epochs_length() {
    let (mut n, buyer, client, a) = served();
    n.params.max_rate_bytes_per_sec = 1 << 20;
    n.receipts.clear();
    // Twice what 1 MiB/s over a whole day (the epoch) allows, claiming a thousand years.
    let bytes = 2 * 86_400 * (1u64 << 20);
    for (id, age) in [(1u8, 31_536_000_000u64), (2, 86_400)] {
        let receipt = backhaul_protocol::UsageReceipt {
            epoch: 2,
            session_id: [id; 16],
            node: key("node", 0),
            client,
            buyer,
            sequence: 1,
            cumulative_bytes: bytes,
            session_age_secs: age,
        };
        n.receipts.push(crate::StoredReceipt {
            receipt,
            body_hash: receipt.body_hash(),
        });
    }
    let d = closed(&n, 2);
    assert_eq!(
        d.rejected.get("rate_exceeded"),
        Some(&2),
        "{:?}",
        d.rejected
    );
    assert_eq!(reward(&d, &a), 0);
}

#[test]
fn a_binding_past_its_lifetime_is_no_binding() {
    let (mut n, _, _, a) = served();
    assert!(closed_reward(&n, 2, &a) > 0);
    // Epoch 2 starts at 172,800 s: a binding issued a lifetime before that has expired.
    let lifetime = backhaul_protocol::BINDING_LIFETIME_SECS;
    n.bindings[0].body.issued_at = 2 * 86_400 - lifetime;
    let d = closed(&n, 2);
    assert_eq!(reward(&d, &a), 0);
    assert_eq!(d.rejected.get("unknown_binding"), Some(&1));
    // One second younger, it still applies.
    n.bindings[0].body.issued_at += 1;
    assert!(closed_reward(&n, 2, &a) > 0);
}
