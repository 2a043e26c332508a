//! Ingest through the real HTTP server: every status and rejection reason, replays, ordering,
//! equivocation, limits and malformed bodies.

use crate::common::*;
use backhaul_protocol::api::{ItemResult, ItemStatus, RejectReason};
use backhaul_protocol::{ClientGrant, NodeBinding, UsageReceipt};

fn reason(r: &ItemResult) -> Option<RejectReason> {
    assert_eq!(r.status, ItemStatus::Rejected, "{r:?}");
    r.reason
}

async fn registered(db: &Db) -> (TestOracle, World) {
    let o = TestOracle::start(chain(genesis()), db).await;
    let w = World::new(3, 3);
    w.fund_buyers(&o.chain, 1_000_000_000);
    o.oracle().refresh_credits().await.unwrap();
    assert!(o
        .post("/v1/bindings", &w.bindings())
        .await
        .iter()
        .all(|r| *r == ItemResult::ACCEPTED));
    assert!(o
        .post("/v1/grants", &w.grants())
        .await
        .iter()
        .all(|r| *r == ItemResult::ACCEPTED));
    o.oracle().refresh_credits().await.unwrap();
    (o, w)
}

#[tokio::test]
async fn valid_receipts_are_accepted_and_replays_are_duplicates() {
    for db in databases().await {
        let (o, w) = registered(&db).await;
        let batch: Vec<_> = (0..3).map(|i| w.receipt(0, i, i, 1, 1, GIB)).collect();
        assert_eq!(
            o.post("/v1/receipts", &batch).await,
            vec![ItemResult::ACCEPTED; 3],
            "{db:?}"
        );
        assert_eq!(
            o.post("/v1/receipts", &batch).await,
            vec![ItemResult::DUPLICATE; 3]
        );
        // Bindings and grants replayed are duplicates too.
        assert_eq!(
            o.post("/v1/bindings", &w.bindings()).await,
            vec![ItemResult::DUPLICATE; 3]
        );
        assert_eq!(
            o.post("/v1/grants", &w.grants()).await,
            vec![ItemResult::DUPLICATE; 3]
        );
    }
}

#[tokio::test]
async fn the_highest_sequence_wins_whatever_the_order() {
    for db in databases().await {
        let (o, w) = registered(&db).await;
        let r = |seq, bytes| w.receipt(0, 0, 0, 7, seq, bytes);
        assert_eq!(
            o.post("/v1/receipts", &[r(3, 3 * GIB)]).await,
            vec![ItemResult::ACCEPTED]
        );
        assert_eq!(
            o.post("/v1/receipts", &[r(1, GIB), r(2, 2 * GIB)]).await,
            vec![ItemResult::SUPERSEDED; 2]
        );
        assert_eq!(
            o.post("/v1/receipts", &[r(5, 5 * GIB), r(4, 4 * GIB)])
                .await,
            vec![ItemResult::ACCEPTED, ItemResult::SUPERSEDED]
        );
        let closed = o.close(0).await.unwrap();
        assert_eq!(closed.dataset.stats.sessions, 1);
        assert_eq!(closed.dataset.stats.bytes_counted, 5 * GIB, "{db:?}");
    }
}

#[tokio::test]
async fn equivocation_is_kept_as_evidence_and_counts_nothing() {
    for db in databases().await {
        let (o, w) = registered(&db).await;
        let a = w.receipt(0, 0, 0, 9, 4, GIB);
        let b = w.receipt(0, 0, 0, 9, 4, 2 * GIB);
        let honest = w.receipt(0, 1, 1, 1, 1, GIB);
        assert_eq!(
            o.post("/v1/receipts", &[a, honest]).await,
            vec![ItemResult::ACCEPTED; 2]
        );
        assert_eq!(
            o.post("/v1/receipts", &[b]).await,
            vec![ItemResult::EQUIVOCATION]
        );
        assert_eq!(
            o.post("/v1/receipts", &[b]).await,
            vec![ItemResult::DUPLICATE]
        );
        let pool = &o.oracle().closer.pool;
        let rows = sqlx::query("SELECT body_hash FROM equivocations")
            .fetch_all(pool)
            .await
            .unwrap();
        assert_eq!(rows.len(), 2, "both receipts are evidence ({db:?})");
        let closed = o.close(0).await.unwrap();
        assert_eq!(closed.dataset.rejected.get("equivocation"), Some(&1));
        assert_eq!(closed.dataset.stats.bytes_counted, GIB);
    }
}

#[tokio::test]
async fn every_rejection_reason_is_named() {
    for db in databases().await {
        let (o, w) = registered(&db).await;
        let d = deployment();
        // bad_signature: a tampered body.
        let mut tampered = w.receipt(0, 0, 0, 1, 1, GIB);
        tampered.receipt.cumulative_bytes += 1;
        // bad_key: a small-order node key (the client signed; no one can sign for such a key).
        let weak_body = UsageReceipt {
            node: {
                let mut k = [0u8; 32];
                k[0] = 1;
                k
            },
            ..w.receipt(0, 0, 0, 2, 1, GIB).receipt
        };
        let weak = backhaul_protocol::SignedReceipt {
            receipt: weak_body,
            client_signature: weak_body.client_sign(&d, &w.clients[0]),
            node_signature: [7; 64],
        };
        // epoch_not_open: an epoch that has not started.
        let future = w.receipt(5, 0, 0, 3, 1, GIB);
        // rate_exceeded: 1 TiB in one second.
        let fast = UsageReceipt {
            session_age_secs: 1,
            cumulative_bytes: 1 << 40,
            ..w.receipt(0, 0, 0, 4, 1, 1).receipt
        }
        .sign_both(&d, &w.clients[0], &w.nodes[0]);
        // unknown_binding and unknown_grant: keys nobody registered.
        let stranger_node = key(9_001);
        let unbound = UsageReceipt {
            node: pk(&stranger_node),
            ..w.receipt(0, 0, 0, 5, 1, GIB).receipt
        }
        .sign_both(&d, &w.clients[0], &stranger_node);
        let stranger_client = key(9_002);
        let ungranted = UsageReceipt {
            client: pk(&stranger_client),
            ..w.receipt(0, 0, 0, 6, 1, GIB).receipt
        }
        .sign_both(&d, &stranger_client, &w.nodes[0]);
        let results = o
            .post(
                "/v1/receipts",
                &[tampered, weak, future, fast, unbound, ungranted],
            )
            .await;
        let reasons: Vec<_> = results[..4].iter().map(reason).collect();
        assert_eq!(
            reasons,
            [
                RejectReason::BadSignature,
                RejectReason::BadKey,
                RejectReason::EpochNotOpen,
                RejectReason::RateExceeded,
            ]
            .map(Some),
            "{db:?}"
        );
        // Held, not stored, until their binding or grant arrives.
        assert_eq!(
            results[4..],
            [
                ItemResult::held(RejectReason::UnknownBinding),
                ItemResult::held(RejectReason::UnknownGrant)
            ]
        );
        // grant_expired: client 1's buyer revokes (a newer grant that already expired).
        let revoke = ClientGrant {
            buyer: pk(&w.buyers[1]),
            client: pk(&w.clients[1]),
            epoch: 0,
            issued_at: 2,
            expires_at: 5,
            credit_limit: 0,
        }
        .sign(&d, &w.buyers[1]);
        assert_eq!(
            o.post("/v1/grants", &[revoke]).await,
            vec![ItemResult::ACCEPTED]
        );
        assert_eq!(
            reason(
                &o.post("/v1/receipts", &[w.receipt(0, 1, 1, 1, 1, GIB)])
                    .await[0]
            ),
            Some(RejectReason::GrantExpired)
        );
        // self_dealing: node 2's operator (a buyer too) grants itself client 2.
        o.chain.update(|s| {
            s.credits.insert(pk(&w.operators[2]), bought(1));
        });
        let own = ClientGrant {
            buyer: pk(&w.operators[2]),
            client: pk(&w.clients[2]),
            epoch: 0,
            issued_at: 3,
            expires_at: i64::MAX,
            credit_limit: 0,
        }
        .sign(&d, &w.operators[2]);
        assert_eq!(
            o.post("/v1/grants", &[own]).await,
            vec![ItemResult::ACCEPTED]
        );
        let self_paid = UsageReceipt {
            buyer: pk(&w.operators[2]),
            ..w.receipt(0, 2, 2, 1, 1, GIB).receipt
        }
        .sign_both(&d, &w.clients[2], &w.nodes[2]);
        assert_eq!(
            reason(&o.post("/v1/receipts", &[self_paid]).await[0]),
            Some(RejectReason::SelfDealing)
        );
        // A grant of a buyer without an on-chain credit account is not kept.
        let unfunded = key(9_004);
        let free = ClientGrant {
            buyer: pk(&unfunded),
            client: pk(&w.clients[0]),
            epoch: 0,
            issued_at: 4,
            expires_at: i64::MAX,
            credit_limit: 0,
        }
        .sign(&d, &unfunded);
        assert_eq!(
            reason(&o.post("/v1/grants", &[free]).await[0]),
            Some(RejectReason::NoCreditAccount)
        );
        // A grant signed by someone else (with credits of its own) for this client cannot touch
        // its receipts.
        let hijacker = key(9_003);
        o.chain.update(|s| {
            s.credits.insert(pk(&hijacker), bought(1));
        });
        let hijack = ClientGrant {
            buyer: pk(&hijacker),
            client: pk(&w.clients[0]),
            epoch: 0,
            issued_at: i64::MAX,
            expires_at: 1,
            credit_limit: 0,
        }
        .sign(&d, &hijacker);
        assert_eq!(
            o.post("/v1/grants", &[hijack]).await,
            vec![ItemResult::ACCEPTED]
        );
        assert_eq!(
            o.post("/v1/receipts", &[w.receipt(0, 0, 0, 9, 1, GIB)])
                .await,
            vec![ItemResult::ACCEPTED]
        );
        // A binding or grant with a bad signature.
        let mut bad_binding = w.bindings()[0];
        bad_binding.operator_signature[0] ^= 1;
        assert_eq!(
            reason(&o.post("/v1/bindings", &[bad_binding]).await[0]),
            Some(RejectReason::BadSignature)
        );
        let mut bad_grant = w.grants()[0];
        bad_grant.grant.credit_limit = 7;
        assert_eq!(
            reason(&o.post("/v1/grants", &[bad_grant]).await[0]),
            Some(RejectReason::BadSignature)
        );
        // None of the refused or held receipts was stored: the close never saw them.
        let closed = o.close(0).await.unwrap();
        let d = &closed.dataset;
        assert!(d.rejected.is_empty(), "{:?}", d.rejected);
        assert_eq!(
            d.stats.bytes_counted, GIB,
            "only the receipt the hijack could not touch counts"
        );
        // A receipt for the closed epoch is no longer taken.
        assert_eq!(
            reason(
                &o.post("/v1/receipts", &[w.receipt(0, 0, 0, 8, 1, GIB)])
                    .await[0]
            ),
            Some(RejectReason::EpochNotOpen)
        );
    }
}

#[tokio::test]
async fn buyers_without_credits_are_told_and_capped_at_close() {
    for db in databases().await {
        let o = TestOracle::start(chain(genesis()), &db).await;
        let w = World::new(1, 2);
        // Buyer 0 holds 1,500 credits (1.5 GiB at 1,000 credits per GiB); buyer 1 has a credit
        // account with none.
        o.chain.update(|s| {
            s.credits.insert(pk(&w.buyers[0]), bought(1_500));
            s.credits.insert(pk(&w.buyers[1]), bought(0));
        });
        o.post("/v1/bindings", &w.bindings()).await;
        o.post("/v1/grants", &w.grants()).await;
        o.oracle().refresh_credits().await.unwrap();
        let results = o
            .post(
                "/v1/receipts",
                &[
                    w.receipt(0, 0, 0, 1, 1, GIB),
                    w.receipt(0, 0, 0, 2, 1, GIB),
                    w.receipt(0, 0, 1, 1, 1, GIB),
                ],
            )
            .await;
        assert_eq!(results[0], ItemResult::ACCEPTED);
        assert_eq!(reason(&results[1]), Some(RejectReason::CreditsExhausted));
        assert_eq!(reason(&results[2]), Some(RejectReason::CreditsExhausted));
        let closed = o.close(0).await.unwrap();
        let d = &closed.dataset;
        assert_eq!(d.stats.bytes_counted, GIB + GIB / 2, "{db:?}");
        assert_eq!(d.stats.bytes_over_credits, GIB / 2 + GIB);
        assert_eq!(d.usage.credits_consumed, 1_500);
    }
}

#[tokio::test]
async fn per_key_rate_limits_apply() {
    let db = Db::Sqlite;
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let mut s = settings(dir.path(), &db);
    s.per_key_items_per_sec = 1; // a burst of 10
    let o = TestOracle::start_with(chain(genesis()), dir, s).await;
    let w = World::new(1, 1);
    o.post("/v1/bindings", &w.bindings()).await;
    let batch: Vec<_> = (0..12u8).map(|i| w.receipt(0, 0, 0, i, 1, 1)).collect();
    let results = o.post("/v1/receipts", &batch).await;
    let limited = results
        .iter()
        .filter(|r| r.reason == Some(RejectReason::RateLimited))
        .count();
    assert_eq!(limited, 3, "{results:?}"); // the binding used one token, ten receipts fit the rest
}

#[tokio::test]
async fn malformed_and_oversized_bodies_get_clear_errors() {
    let o = TestOracle::start(chain(genesis()), &Db::Sqlite).await;
    let w = World::new(1, 1);
    let good = borsh::to_vec(&vec![w.receipt(0, 0, 0, 1, 1, 1)]).unwrap();
    let mut too_many = 10_001u32.to_le_bytes().to_vec();
    too_many.resize(4 + 10_001 * backhaul_protocol::SIGNED_RECEIPT_LEN, 0);
    let cases: Vec<(Vec<u8>, &str, u16)> = vec![
        (
            good[..good.len() - 1].to_vec(),
            "application/octet-stream",
            400,
        ), // truncated
        (
            [good.clone(), vec![0]].concat(),
            "application/octet-stream",
            400,
        ), // trailing byte
        (
            vec![0xde, 0xad, 0xbe, 0xef, 1, 2, 3],
            "application/octet-stream",
            400,
        ), // garbage
        (vec![], "application/octet-stream", 400), // empty
        (0u32.to_le_bytes().to_vec(), "application/octet-stream", 400), // no items
        (good.clone(), "application/json", 415),   // wrong type
        (vec![0; 5 << 20], "application/octet-stream", 413), // too big
        (too_many, "application/octet-stream", 413), // too many items
    ];
    for (body, ct, expected) in cases {
        let (code, text) = o.post_raw("/v1/receipts", body, ct).await;
        assert_eq!(code, expected, "{text}");
        let err: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON error body: {text}"));
        assert!(err["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    // Bindings and grants with wrong lengths too.
    let (code, _) = o
        .post_raw("/v1/bindings", good.clone(), "application/octet-stream")
        .await;
    assert_eq!(code, 400);
    let (code, _) = o
        .post_raw(
            "/v1/grants",
            vec![1, 0, 0, 0, 9],
            "application/octet-stream",
        )
        .await;
    assert_eq!(code, 400);
    // The server is unharmed.
    let (code, body) = o.get("/health").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        o.post("/v1/bindings", &w.bindings()).await,
        vec![ItemResult::ACCEPTED]
    );
    let (code, text) = o.get("/metrics").await;
    assert_eq!(code, 200);
    assert!(
        text.contains("backhaul_ingest_requests_refused_total"),
        "{text}"
    );
    let (code, _) = o.get("/v1/nothing").await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn an_acknowledged_receipt_survives_a_crash() {
    for db in databases().await {
        let (mut o, w) = registered(&db).await;
        assert_eq!(
            o.post("/v1/receipts", &[w.receipt(0, 0, 0, 1, 1, 3 * GIB)])
                .await,
            vec![ItemResult::ACCEPTED]
        );
        o.crash();
        o.restart().await;
        // Still known after the restart ...
        assert_eq!(
            o.post("/v1/receipts", &[w.receipt(0, 0, 0, 1, 1, 3 * GIB)])
                .await,
            vec![ItemResult::DUPLICATE]
        );
        // ... and counted.
        let closed = o.close(0).await.unwrap();
        assert_eq!(closed.dataset.stats.bytes_counted, 3 * GIB, "{db:?}");
    }
}

#[tokio::test]
async fn bindings_apply_from_their_epoch_and_later_ones_replace_earlier() {
    let (o, w) = registered(&Db::Sqlite).await;
    let d = deployment();
    let new_operator = key(7_777);
    // From epoch 1 on node 0 pays a new operator; epoch 0 still pays the old one.
    let rebind = NodeBinding {
        node: pk(&w.nodes[0]),
        operator: pk(&new_operator),
        epoch: 1,
        issued_at: recent() + 10,
    }
    .sign(&d, &w.nodes[0], &new_operator);
    assert_eq!(
        o.post("/v1/bindings", &[rebind]).await,
        vec![ItemResult::ACCEPTED]
    );
    o.post("/v1/receipts", &[w.receipt(0, 0, 0, 1, 1, GIB)])
        .await;
    let closed = o.close(0).await.unwrap();
    assert_eq!(
        closed.dataset.nodes[0].operator,
        backhaul_protocol::dataset::b58(&pk(&w.operators[0]))
    );
}

/// A validly signed item with a field beyond what the database holds (a u64 at or above 2^63)
/// is refused alone, with its reason, and the rest of its request and of the same group commit
/// is stored: before, it failed the whole group and forced a reload of the ingest state.
#[tokio::test]
async fn an_item_out_of_range_fails_alone() {
    for db in databases().await {
        let (o, w) = registered(&db).await;
        let d = deployment();
        let huge = UsageReceipt {
            sequence: 1 << 63,
            ..w.receipt(0, 0, 0, 7, 1, GIB).receipt
        }
        .sign_both(&d, &w.clients[0], &w.nodes[0]);
        let fine = [w.receipt(0, 0, 0, 8, 1, GIB), w.receipt(0, 1, 1, 9, 1, GIB)];
        let results = o.post("/v1/receipts", &[fine[0], huge, fine[1]]).await;
        assert_eq!(results[0], ItemResult::ACCEPTED, "{db:?}");
        assert_eq!(reason(&results[1]), Some(RejectReason::OutOfRange));
        assert_eq!(results[2], ItemResult::ACCEPTED);
        // The same for a grant with an unlimited-looking credit limit.
        let mut g = w.grants()[0];
        g.grant.credit_limit = u64::MAX;
        g.grant.issued_at += 1;
        let g = g.grant.sign(&d, &w.buyers[0]);
        let results = o.post("/v1/grants", &[g]).await;
        assert_eq!(reason(&results[0]), Some(RejectReason::OutOfRange));
        // Both good receipts were stored: a replay is a duplicate.
        let again = o.post("/v1/receipts", &fine).await;
        assert!(
            again.iter().all(|r| *r == ItemResult::DUPLICATE),
            "{again:?}"
        );
    }
}

/// One request holding many receipts that equivocate at one session and sequence: every one is
/// answered and kept as evidence once, the session is superseded cleanly by a higher sequence
/// afterwards, and the writer's work grows with the number of receipts, not its square (each
/// equivocating session is copied to the evidence table once per write set, and a receipt is
/// told apart from those stored by a hash lookup). The time is printed, not asserted: see
/// `docs/load.md` for the figure.
#[tokio::test]
async fn many_equivocating_receipts_cost_the_writer_linear_work() {
    const N: u64 = 500;
    for db in databases().await {
        let (o, w) = registered(&db).await;
        let equivocating: Vec<_> = (0..N).map(|i| w.receipt(0, 0, 0, 42, 7, GIB + i)).collect();
        let started = std::time::Instant::now();
        let results = o.post("/v1/receipts", &equivocating).await;
        eprintln!(
            "{N} receipts equivocating at one session and sequence, one request ({db:?}): {:.2} s",
            started.elapsed().as_secs_f64()
        );
        assert_eq!(results[0], ItemResult::ACCEPTED);
        assert!(results[1..].iter().all(|r| *r == ItemResult::EQUIVOCATION));
        let pool = &o.oracle().closer.pool;
        let evidence: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM equivocations")
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(
            evidence, N as i64,
            "every receipt is evidence once ({db:?})"
        );
        // A higher sequence supersedes the session; the evidence stays.
        let next = w.receipt(0, 0, 0, 42, 8, 3 * GIB);
        assert_eq!(
            o.post("/v1/receipts", &[next]).await,
            vec![ItemResult::ACCEPTED]
        );
        let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM receipts WHERE sequence = 7")
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(stored, 0);
        let evidence: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM equivocations")
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(evidence, N as i64);
    }
}
