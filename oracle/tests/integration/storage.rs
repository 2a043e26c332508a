//! The writer's batched statements against an in-order model: whatever a write set holds, the
//! tables end as if every write had been applied one after the other.

use crate::common::{databases, Db};
use backhaul_oracle::db::{self, Op, WriteSet};
use backhaul_protocol::{
    ClientGrant, NodeBinding, SignedBinding, SignedGrant, SignedReceipt, UsageReceipt,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::Row;
use std::collections::BTreeSet;

type Row6 = (i64, Vec<u8>, Vec<u8>, Vec<u8>, i64, Vec<u8>);
use backhaul_oracle::db::SessionKey;

/// The tables, as applying each op in order leaves them.
#[derive(Default)]
struct Model {
    receipts: BTreeSet<Row6>,
    equivocations: BTreeSet<Row6>,
    bindings: BTreeSet<Vec<u8>>,
    grants: BTreeSet<Vec<u8>>,
}

fn row(r: &SignedReceipt, hash: &[u8; 32]) -> Row6 {
    (
        r.receipt.epoch as i64,
        r.receipt.client.to_vec(),
        r.receipt.session_id.to_vec(),
        hash.to_vec(),
        r.receipt.sequence as i64,
        borsh::to_vec(r).unwrap(),
    )
}

/// Every receipt of the model names node 9, so a session's node is not compared.
fn of_session(row: &Row6, (epoch, client, _node, session): &SessionKey) -> bool {
    row.0 == *epoch as i64 && row.1 == client[..] && row.2 == session[..]
}

/// The primary key of a receipts row: its first four columns.
fn key_of(row: &Row6) -> (i64, Vec<u8>, Vec<u8>, Vec<u8>) {
    (row.0, row.1.clone(), row.2.clone(), row.3.clone())
}

fn insert_new(table: &mut BTreeSet<Row6>, row: Row6) {
    if !table.iter().any(|r| key_of(r) == key_of(&row)) {
        table.insert(row);
    }
}

impl Model {
    fn apply(&mut self, op: &Op) {
        match op {
            Op::Binding(_, hash) => {
                self.bindings.insert(hash.to_vec());
            }
            Op::Grant(_, hash) => {
                self.grants.insert(hash.to_vec());
            }
            Op::Supersede(key) => self.receipts.retain(|r| !of_session(r, key)),
            Op::Receipt(r, hash) => insert_new(&mut self.receipts, row(r, hash)),
            Op::EvidenceOfSession(key) => {
                let rows: Vec<Row6> = self
                    .receipts
                    .iter()
                    .filter(|r| of_session(r, key))
                    .cloned()
                    .collect();
                for r in rows {
                    insert_new(&mut self.equivocations, r);
                }
            }
        }
    }
}

/// Fails with the rows only one side has, each as (epoch, client, session, sequence).
fn assert_same(actual: &BTreeSet<Row6>, expected: &BTreeSet<Row6>, what: &str) {
    let brief = |rows: Vec<&Row6>| -> Vec<(i64, u8, u8, i64)> {
        rows.iter().map(|r| (r.0, r.1[0], r.2[0], r.4)).collect()
    };
    assert!(
        actual == expected,
        "{what}: stored but not expected {:?}; expected but not stored {:?}",
        brief(actual.difference(expected).collect()),
        brief(expected.difference(actual).collect()),
    );
}

async fn table(pool: &sqlx::AnyPool, name: &str) -> BTreeSet<Row6> {
    sqlx::query(&format!(
        "SELECT epoch, client, session_id, body_hash, sequence, signed FROM {name}"
    ))
    .fetch_all(pool)
    .await
    .unwrap()
    .iter()
    .map(|r| {
        (
            r.get("epoch"),
            r.get("client"),
            r.get("session_id"),
            r.get("body_hash"),
            r.get("sequence"),
            r.get("signed"),
        )
    })
    .collect()
}

async fn hashes(pool: &sqlx::AnyPool, name: &str) -> BTreeSet<Vec<u8>> {
    sqlx::query(&format!("SELECT body_hash FROM {name}"))
        .fetch_all(pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get("body_hash"))
        .collect()
}

/// A random write: few epochs, clients and sessions, so that supersedes, duplicates and
/// equivocations meet in one set.
fn random_op(rng: &mut StdRng, sessions: u8) -> Op {
    let epoch = rng.gen_range(0..2u64);
    let client = [rng.gen_range(0..3u8); 32];
    let session = [rng.gen_range(0..sessions); 16];
    match rng.gen_range(0..100) {
        0..=54 => {
            let r = SignedReceipt {
                receipt: UsageReceipt {
                    epoch,
                    session_id: session,
                    node: [9; 32],
                    client,
                    buyer: [8; 32],
                    sequence: rng.gen_range(0..4),
                    cumulative_bytes: rng.gen_range(0..3),
                    session_age_secs: 1,
                },
                client_signature: [1; 64],
                node_signature: [2; 64],
            };
            let hash = r.receipt.body_hash();
            Op::Receipt(r, hash)
        }
        55..=84 => Op::Supersede((epoch, client, [9; 32], session)),
        85..=91 => Op::EvidenceOfSession((epoch, client, [9; 32], session)),
        92..=95 => {
            let b = SignedBinding {
                binding: NodeBinding {
                    node: [rng.gen_range(0..4u8); 32],
                    operator: [7; 32],
                    epoch,
                    issued_at: 5,
                },
                node_signature: [3; 64],
                operator_signature: [4; 64],
            };
            let hash = b.binding.body_hash();
            Op::Binding(b, hash)
        }
        _ => {
            let g = SignedGrant {
                grant: ClientGrant {
                    client,
                    buyer: [rng.gen_range(0..4u8); 32],
                    epoch,
                    issued_at: 5,
                    expires_at: 10,
                    credit_limit: 0,
                },
                buyer_signature: [5; 64],
            };
            let hash = g.grant.body_hash();
            Op::Grant(g, hash)
        }
    }
}

#[tokio::test]
async fn batched_writes_leave_the_tables_as_writes_in_order_would() {
    for db in databases().await {
        let dir = tempfile::tempdir().unwrap();
        let url = match &db {
            crate::common::Db::Sqlite => db::sqlite_url(dir.path()),
            crate::common::Db::Postgres(url) => url.clone(),
        };
        let pool = db::connect(&url).await.unwrap();
        let mut model = Model::default();
        let mut rng = StdRng::seed_from_u64(7);
        // Small sets with few sessions (every interleaving), then large ones that span several
        // multi-row statements (over 500 rows each).
        let rounds = (0..60)
            .map(|_| (40usize, 4u8))
            .chain((0..4).map(|_| (3_000, 250)));
        for (round, (len, sessions)) in rounds.enumerate() {
            let ops: Vec<Op> = (0..len).map(|_| random_op(&mut rng, sessions)).collect();
            for op in &ops {
                model.apply(op);
            }
            db::apply(&pool, &WriteSet { ops }).await.unwrap();
            assert_same(
                &table(&pool, "receipts").await,
                &model.receipts,
                &format!("{db:?}: receipts after round {round}"),
            );
            assert_same(
                &table(&pool, "equivocations").await,
                &model.equivocations,
                &format!("{db:?}: equivocations after round {round}"),
            );
            assert_eq!(hashes(&pool, "bindings").await, model.bindings, "{db:?}");
            assert_eq!(hashes(&pool, "grants").await, model.grants, "{db:?}");
        }
        assert!(
            model.receipts.len() > 100 && !model.equivocations.is_empty(),
            "the workload reaches the interesting cases: {} receipts, {} evidence rows",
            model.receipts.len(),
            model.equivocations.len()
        );
    }
}

/// A database whose default lets commits return before they reach the disk is overridden: every
/// connection of the oracle commits synchronously.
#[tokio::test]
async fn postgres_commits_are_synchronous_whatever_the_database_default() {
    for db in databases().await {
        let Db::Postgres(url) = db else { continue };
        let name = url.rsplit('/').next().unwrap().to_string();
        {
            use sqlx::Connection;
            let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
            sqlx::query(&format!(
                "ALTER DATABASE {name} SET synchronous_commit = off"
            ))
            .execute(&mut admin)
            .await
            .unwrap();
            let default: String =
                sqlx::query_scalar("SELECT current_setting('synchronous_commit')")
                    .fetch_one(&mut admin)
                    .await
                    .unwrap();
            // (This connection predates the change.)
            assert_eq!(default, "on");
        }
        let pool = backhaul_oracle::db::connect(&url).await.unwrap();
        for _ in 0..3 {
            let value: String = sqlx::query_scalar("SELECT current_setting('synchronous_commit')")
                .fetch_one(&pool)
                .await
                .unwrap();
            assert_eq!(value, "on");
        }
        use sqlx::Connection;
        let mut fresh = sqlx::PgConnection::connect(&url).await.unwrap();
        let plain: String = sqlx::query_scalar("SELECT current_setting('synchronous_commit')")
            .fetch_one(&mut fresh)
            .await
            .unwrap();
        assert_eq!(
            plain, "off",
            "the database default is off; the oracle's sessions are not"
        );
    }
}
