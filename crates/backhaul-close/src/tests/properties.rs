//! Properties of the close over random small networks of two epochs: bindings and grants that
//! change between epochs, tie on `issued_at` or expire; buyers that run nodes, buy again in the
//! second epoch or have no credit account; sessions that merge, equivocate, go too fast or hit the
//! pair cap or a credit limit.
//!
//! - The dataset does not depend on the order of the receipts, bindings, grants or credit
//!   accounts.
//! - Streaming the receipts into an `Aggregator` session by session gives the same bytes as
//!   `close` over them in any order.
//! - The totals add up (`check_sums`, and the bytes of the nodes, the served rows and the leaves).

use super::{check_sums, key, Net, GIB, TOKEN};
use crate::{Aggregator, BuyerCredits, CloseError, Stored, StoredReceipt};
use backhaul_core::merkle::sha256v;
use backhaul_protocol::dataset::Dataset;
use backhaul_protocol::{ClientGrant, Key, NodeBinding, UsageReceipt};
use proptest::prelude::*;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::collections::{BTreeMap, HashMap};

const DAY: i64 = 86_400;

/// One session's receipts.
#[derive(Clone, Debug)]
struct SessionSpec {
    epoch: u64,
    node: u8,
    client: u8,
    /// Whether the client names another buyer than its own (`client % 3`).
    other_buyer: bool,
    /// Sessions of one client with the same id (and epoch) are one session.
    id: u8,
    bytes: u64,
    receipts: u64,
    age_secs: u64,
    /// A second, different receipt at the top sequence.
    equivocates: bool,
}

/// A buyer's purchases: (whole tokens, credits per token) in epoch 0 and, maybe, in epoch 1.
type Purchase = (u64, u64);
/// A node's binding: (operator, epoch, issued_at).
type Binding = (u8, u64, i64);
/// A client's grant: (for another buyer than its own, epoch, issued_at, expires_at,
/// credit_limit).
type Grant = (bool, u64, i64, i64, u64);

#[derive(Clone, Debug)]
struct Spec {
    usage_cap_bps: u32,
    scheduled_tokens: u64,
    net_cap_tokens: u64,
    burn_ema_tokens: u64,
    pair_cap_bytes: Option<u64>,
    max_rate_bytes_per_sec: Option<u64>,
    /// Per node.
    bindings: Vec<Vec<Binding>>,
    /// Per client.
    grants: Vec<Vec<Grant>>,
    /// Per buyer: no account, or its purchases.
    purchases: Vec<Option<(Purchase, Option<Purchase>)>>,
    sessions: Vec<SessionSpec>,
}

fn session() -> impl Strategy<Value = SessionSpec> {
    (
        (
            0u64..2,
            0u8..6,
            0u8..6,
            proptest::bool::weighted(0.1),
            0u8..4,
        ),
        (
            0u64..4 * GIB,
            1u64..4,
            1u64..7_200,
            proptest::bool::weighted(0.03),
        ),
    )
        .prop_map(
            |((epoch, node, client, other_buyer, id), (bytes, receipts, age_secs, equivocates))| {
                SessionSpec {
                    epoch,
                    node,
                    client,
                    other_buyer,
                    id,
                    bytes,
                    receipts,
                    age_secs,
                    equivocates,
                }
            },
        )
}

fn network() -> impl Strategy<Value = Spec> {
    let purchase = (1u64..300, 10_000u64..400_000);
    (
        (1u32..=10_000, 0u64..400, 0u64..200, 0u64..500),
        (
            proptest::option::weighted(0.3, 0u64..3 * GIB),
            proptest::option::weighted(0.2, 100_000u64..5_000_000),
        ),
        proptest::collection::vec(
            proptest::collection::vec((0u8..4, epoch(), 0i64..3), 0..3),
            6,
        ),
        proptest::collection::vec(
            proptest::collection::vec(
                (
                    proptest::bool::weighted(0.1),
                    epoch(),
                    0i64..3,
                    prop_oneof![
                        1 => Just(0),
                        1 => Just(DAY),
                        1 => Just(DAY + 3_600),
                        6 => Just(i64::MAX)
                    ],
                    prop_oneof![3 => Just(0u64), 1 => 1u64..20_000_000],
                ),
                0..3,
            ),
            6,
        ),
        proptest::collection::vec(
            proptest::option::weighted(0.8, (purchase.clone(), proptest::option::of(purchase))),
            3,
        ),
        proptest::collection::vec(session(), 0..24),
    )
        .prop_map(
            |(
                (k, scheduled, net_cap, ema),
                (pair_cap, max_rate),
                bindings,
                grants,
                purchases,
                sessions,
            )| {
                Spec {
                    usage_cap_bps: k,
                    scheduled_tokens: scheduled,
                    net_cap_tokens: net_cap,
                    burn_ema_tokens: ema,
                    pair_cap_bytes: pair_cap,
                    max_rate_bytes_per_sec: max_rate,
                    bindings,
                    grants,
                    purchases,
                    sessions,
                }
            },
        )
}

/// Bindings and grants mostly apply from the first epoch.
fn epoch() -> impl Strategy<Value = u64> {
    prop_oneof![4 => Just(0u64), 1 => Just(1u64)]
}

/// Client `c`'s own buyer is `c % 3`; the other one, the next.
fn buyer_of(client: u8, other: bool) -> u8 {
    (client + u8::from(other)) % 3
}

/// Operator 3 is buyer 0: its sessions on its own nodes are self-dealing.
fn operator(i: u8) -> Key {
    if i == 3 {
        key("buyer", 0)
    } else {
        key("operator", i)
    }
}

fn receipt(r: UsageReceipt) -> StoredReceipt {
    let body_hash = sha256v(&[
        &r.epoch.to_le_bytes(),
        &r.session_id,
        &r.node,
        &r.client,
        &r.buyer,
        &r.sequence.to_le_bytes(),
        &r.cumulative_bytes.to_le_bytes(),
        &r.session_age_secs.to_le_bytes(),
    ]);
    StoredReceipt {
        receipt: r,
        body_hash,
    }
}

fn build(spec: &Spec) -> Net {
    let mut n = Net::new(spec.usage_cap_bps, spec.scheduled_tokens * TOKEN);
    n.chain.net_emissions_cap = spec.net_cap_tokens * TOKEN;
    n.chain.burn_ema = spec.burn_ema_tokens * TOKEN;
    n.chain.burns_not_reemitted = u64::MAX / 4;
    if let Some(cap) = spec.pair_cap_bytes {
        n.params.pair_cap_bytes = cap;
    }
    if let Some(rate) = spec.max_rate_bytes_per_sec {
        n.params.max_rate_bytes_per_sec = rate;
    }
    let bindings = spec.bindings.iter().enumerate();
    for (node, &(op, epoch, issued_at)) in bindings.flat_map(|(i, v)| v.iter().map(move |b| (i, b)))
    {
        let body = NodeBinding {
            node: key("node", node as u8),
            operator: operator(op),
            epoch,
            issued_at,
        };
        let body_hash = sha256v(&[
            &body.node,
            &body.operator,
            &epoch.to_le_bytes(),
            &issued_at.to_le_bytes(),
        ]);
        n.bindings.push(Stored {
            body,
            body_hash,
            position: 0,
        });
    }
    let grants = spec.grants.iter().enumerate();
    for (client, &(other, epoch, issued_at, expires_at, credit_limit)) in
        grants.flat_map(|(i, v)| v.iter().map(move |g| (i as u8, g)))
    {
        let body = ClientGrant {
            buyer: key("buyer", buyer_of(client, other)),
            client: key("client", client),
            epoch,
            issued_at,
            expires_at,
            credit_limit,
        };
        let body_hash = sha256v(&[
            &body.buyer,
            &body.client,
            &epoch.to_le_bytes(),
            &issued_at.to_le_bytes(),
            &expires_at.to_le_bytes(),
            &credit_limit.to_le_bytes(),
        ]);
        n.grants.push(Stored {
            body,
            body_hash,
            position: 0,
        });
    }
    for (i, p) in spec.purchases.iter().enumerate() {
        let Some(((tokens, price), later)) = *p else {
            continue;
        };
        let mut c = BuyerCredits {
            issued: tokens * price,
            tokens_burned: tokens * TOKEN,
            ..Default::default()
        };
        if let Some((tokens, price)) = later {
            let before = backhaul_core::cost::Purchases {
                credits: c.issued,
                tokens: c.tokens_burned,
            };
            c.checkpoints.record(0, Default::default()).unwrap();
            c.checkpoints.record(1, before).unwrap();
            c.issued += tokens * price;
            c.tokens_burned += tokens * TOKEN;
        }
        n.credits.insert(key("buyer", i as u8), c);
    }
    for s in &spec.sessions {
        let mut r = UsageReceipt {
            epoch: s.epoch,
            session_id: [s.id; 16],
            node: key("node", s.node),
            client: key("client", s.client),
            buyer: key("buyer", buyer_of(s.client, s.other_buyer)),
            sequence: 0,
            cumulative_bytes: 0,
            session_age_secs: s.age_secs,
        };
        for seq in 1..=s.receipts {
            r.sequence = seq;
            r.cumulative_bytes = s.bytes / s.receipts * seq;
            n.receipts.push(receipt(r));
        }
        if s.equivocates {
            r.cumulative_bytes += 1;
            n.receipts.push(receipt(r));
        }
    }
    n
}

/// Both epochs, the second on top of the first as the chain finalized it.
fn close_both(n: &mut Net) -> Result<(Dataset, Dataset), CloseError> {
    let chain = n.chain.clone();
    let d0 = n.close(0, None)?;
    n.finalized(&d0);
    let d1 = n.close(1, Some(&d0));
    n.chain = chain;
    Ok((d0, d1?))
}

/// Shuffles every input, and the credit accounts' entries.
fn shuffle(n: &mut Net, rng: &mut rand::rngs::StdRng) {
    n.receipts.shuffle(rng);
    n.bindings.shuffle(rng);
    n.grants.shuffle(rng);
    let mut entries: Vec<(Key, BuyerCredits)> = n.credits.drain().collect();
    entries.shuffle(rng);
    n.credits = entries.into_iter().collect::<HashMap<_, _>>();
}

/// The close of `epoch` with the receipts streamed session by session, in (client, node,
/// session) order; within a session, in the order they are in.
fn streamed(n: &Net, epoch: u64, previous: Option<&Dataset>) -> Result<Dataset, CloseError> {
    let input = n.input(epoch, previous);
    let mut receipts: Vec<&StoredReceipt> = n.receipts.iter().collect();
    receipts.sort_by_key(|r| (r.receipt.client, r.receipt.node, r.receipt.session_id));
    let mut agg = Aggregator::new(&input.context)?;
    for r in receipts {
        agg.push(r)?;
    }
    agg.finish()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any permutation of the receipts, bindings, grants and credit accounts gives the same
    /// bytes, in both epochs.
    #[test]
    fn the_order_of_the_inputs_never_changes_the_bytes(spec in network(), seed in any::<u64>()) {
        let mut n = build(&spec);
        let (d0, d1) = close_both(&mut n).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        for _ in 0..3 {
            shuffle(&mut n, &mut rng);
            let (e0, e1) = close_both(&mut n).unwrap();
            prop_assert_eq!(e0.to_bytes(), d0.to_bytes());
            prop_assert_eq!(e1.to_bytes(), d1.to_bytes());
        }
    }

    /// Streaming the receipts session by session into the `Aggregator` gives the bytes `close`
    /// gives over the same receipts in any order; and out of order, the stream refuses them.
    #[test]
    fn streaming_by_session_gives_the_bytes_of_close(spec in network(), seed in any::<u64>()) {
        let mut n = build(&spec);
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        shuffle(&mut n, &mut rng);
        let d0 = n.close(0, None).unwrap();
        prop_assert_eq!(streamed(&n, 0, None).unwrap().to_bytes(), d0.to_bytes());
        n.finalized(&d0);
        n.receipts.shuffle(&mut rng);
        let d1 = n.close(1, Some(&d0)).unwrap();
        prop_assert_eq!(streamed(&n, 1, Some(&d0)).unwrap().to_bytes(), d1.to_bytes());

        let input = n.input(1, Some(&d0));
        let mut sessions: Vec<_> = n
            .receipts
            .iter()
            .filter(|r| r.receipt.epoch == 1)
            .map(|r| (r.receipt.client, r.receipt.node, r.receipt.session_id))
            .collect();
        sessions.sort_unstable();
        sessions.dedup();
        if let [.., second_last, last] = sessions[..] {
            let pick = |s: (Key, Key, [u8; 16])| {
                n.receipts.iter().find(|r| {
                    r.receipt.epoch == 1
                        && (r.receipt.client, r.receipt.node, r.receipt.session_id) == s
                })
            };
            let mut agg = Aggregator::new(&input.context).unwrap();
            agg.push(pick(last).unwrap()).unwrap();
            prop_assert_eq!(agg.push(pick(second_last).unwrap()), Err(CloseError::Unordered));
        }
    }

    /// The served rows add up to the reward leaves, the pots to the allocation, the costs to the
    /// usage cost; the nodes' bytes, the served rows' bytes, the reward leaves' bytes and the
    /// usage leaves' bytes are all the bytes counted.
    #[test]
    fn the_totals_add_up(spec in network()) {
        let mut n = build(&spec);
        let (d0, d1) = close_both(&mut n).unwrap();
        for d in [&d0, &d1] {
            check_sums(d);
            let counted = d.stats.bytes_counted;
            prop_assert_eq!(d.nodes.iter().map(|r| r.bytes).sum::<u64>(), counted);
            prop_assert_eq!(d.served.iter().map(|r| r.bytes).sum::<u64>(), counted);
            prop_assert_eq!(d.rewards.leaves.iter().map(|l| l.bytes).sum::<u64>(), counted);
            prop_assert_eq!(d.usage.leaves.iter().map(|l| l.bytes).sum::<u64>(), counted);
            let mut by_buyer: BTreeMap<&str, u64> = BTreeMap::new();
            for s in &d.served {
                *by_buyer.entry(&s.buyer).or_default() += s.bytes;
            }
            for l in &d.usage.leaves {
                prop_assert_eq!(by_buyer.get(l.buyer.as_str()).copied().unwrap_or(0), l.bytes);
            }
            prop_assert!(d.stats.sessions_counted <= d.stats.sessions);
            prop_assert_eq!(d.usage.total, d.parameters.previous_usage_total + d.usage.credits_consumed);
            prop_assert_eq!(d.rewards.total, d.parameters.previous_reward_total + d.allocation);
        }
    }
}
