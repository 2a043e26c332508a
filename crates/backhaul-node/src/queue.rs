//! The node's durable receipt queue (`docs/node.md`, "Receipts to the oracles"): every
//! countersigned receipt is written to SQLite before the session relays more bytes, then sent to
//! every oracle until that oracle has answered it for good, so a crash or an outage loses
//! nothing. The oracles count a session once, at its highest sequence, so sending twice is safe.

use crate::session::{BoxFuture, ReceiptStore};
use backhaul_client::OracleClient;
use backhaul_protocol::api::{ItemStatus, RejectReason};
use backhaul_protocol::SignedReceipt;
use borsh::BorshDeserialize;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

/// How many receipts one request to an oracle carries.
pub const BATCH: i64 = 500;

/// The queue.
#[derive(Clone)]
pub struct Queue {
    pool: SqlitePool,
}

/// What one delivery pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Delivered {
    /// Receipts an oracle answered for good (stored, known, superseded or refused for good).
    pub settled: u64,
    /// Receipts to send again later (held, rate limited, or the oracle unreachable).
    pub retry: u64,
    /// Receipts an oracle refused for good, by reason.
    pub refused: Vec<(String, RejectReason)>,
}

/// Whether an oracle's answer settles the receipt for that oracle.
fn settles(status: ItemStatus, reason: Option<RejectReason>) -> bool {
    match status {
        ItemStatus::Accepted
        | ItemStatus::Duplicate
        | ItemStatus::Superseded
        | ItemStatus::Equivocation => true,
        ItemStatus::Held => false,
        ItemStatus::Rejected => !matches!(
            reason,
            Some(RejectReason::RateLimited) | Some(RejectReason::EpochNotOpen) | None
        ),
    }
}

impl Queue {
    /// Opens (creating) the queue in `dir/receipts.db`, with synchronous commits.
    pub async fn open(dir: &Path) -> Result<Self, sqlx::Error> {
        std::fs::create_dir_all(dir).map_err(sqlx::Error::Io)?;
        let options = SqliteConnectOptions::from_str(&format!(
            "sqlite://{}",
            dir.join("receipts.db").display()
        ))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS receipts (
                body_hash BLOB PRIMARY KEY,
                bytes BLOB NOT NULL,
                stored_at INTEGER NOT NULL
            )",
        )
        .execute(&pool)
        .await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS delivered (
                body_hash BLOB NOT NULL,
                oracle TEXT NOT NULL,
                PRIMARY KEY (body_hash, oracle)
            )",
        )
        .execute(&pool)
        .await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS volume (
                month TEXT PRIMARY KEY,
                bytes INTEGER NOT NULL
            )",
        )
        .execute(&pool)
        .await?;
        Ok(Queue { pool })
    }

    /// Writes `r` (committed when this returns); a receipt already queued is left as it is.
    pub async fn push(&self, r: &SignedReceipt) -> Result<(), sqlx::Error> {
        let bytes = borsh::to_vec(r).map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
        sqlx::query(
            "INSERT INTO receipts (body_hash, bytes, stored_at) VALUES (?, ?, unixepoch())
             ON CONFLICT (body_hash) DO NOTHING",
        )
        .bind(r.receipt.body_hash().to_vec())
        .bind(bytes)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Receipts not yet settled with `oracle`, oldest first, at most [`BATCH`].
    pub async fn pending(&self, oracle: &str) -> Result<Vec<SignedReceipt>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT r.bytes FROM receipts r
             WHERE NOT EXISTS (SELECT 1 FROM delivered d WHERE d.body_hash = r.body_hash AND d.oracle = ?)
             ORDER BY r.rowid LIMIT ?",
        )
        .bind(oracle)
        .bind(BATCH)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let bytes: Vec<u8> = row.try_get("bytes")?;
                SignedReceipt::try_from_slice(&bytes).map_err(|e| sqlx::Error::Decode(Box::new(e)))
            })
            .collect()
    }

    /// How many receipts are queued in all.
    pub async fn len(&self) -> Result<u64, sqlx::Error> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM receipts")
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// How many receipts are not yet settled with `oracle` (its base URL, as
    /// [`OracleClient::base_url`] writes it).
    pub async fn pending_len(&self, oracle: &str) -> Result<u64, sqlx::Error> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM receipts r
             WHERE NOT EXISTS (SELECT 1 FROM delivered d WHERE d.body_hash = r.body_hash AND d.oracle = ?)",
        )
        .bind(oracle)
        .fetch_one(&self.pool)
        .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// The bytes recorded for `month` (a node's monthly volume, `YYYY-MM`).
    pub async fn volume(&self, month: &str) -> Result<u64, sqlx::Error> {
        let n: Option<i64> = sqlx::query_scalar("SELECT bytes FROM volume WHERE month = ?")
            .bind(month)
            .fetch_optional(&self.pool)
            .await?;
        Ok(n.map_or(0, |n| u64::try_from(n).unwrap_or(0)))
    }

    /// Records `bytes` as `month`'s volume.
    pub async fn set_volume(&self, month: &str, bytes: u64) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO volume (month, bytes) VALUES (?, ?)
             ON CONFLICT (month) DO UPDATE SET bytes = excluded.bytes",
        )
        .bind(month)
        .bind(i64::try_from(bytes).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Removes the receipts that every one of `oracles` has settled and that were queued more
    /// than `keep_secs` ago (with their delivery records); how many went. The queue then holds
    /// only what some oracle still needs, and a little history.
    pub async fn prune(&self, oracles: &[String], keep_secs: i64) -> Result<u64, sqlx::Error> {
        if oracles.is_empty() {
            return Ok(0);
        }
        let places = vec!["?"; oracles.len()].join(", ");
        let sql = format!(
            "DELETE FROM receipts WHERE stored_at < unixepoch() - ? AND
             (SELECT COUNT(DISTINCT d.oracle) FROM delivered d
              WHERE d.body_hash = receipts.body_hash AND d.oracle IN ({places})) = ?"
        );
        let mut q = sqlx::query(&sql).bind(keep_secs);
        for o in oracles {
            q = q.bind(o.as_str());
        }
        let gone = q
            .bind(i64::try_from(oracles.len()).unwrap_or(i64::MAX))
            .execute(&self.pool)
            .await?
            .rows_affected();
        sqlx::query(
            "DELETE FROM delivered WHERE NOT EXISTS
             (SELECT 1 FROM receipts r WHERE r.body_hash = delivered.body_hash)",
        )
        .execute(&self.pool)
        .await?;
        Ok(gone)
    }

    /// Whether the queue is empty.
    pub async fn is_empty(&self) -> Result<bool, sqlx::Error> {
        Ok(self.len().await? == 0)
    }

    pub(crate) async fn mark(&self, oracle: &str, r: &SignedReceipt) -> Result<(), sqlx::Error> {
        sqlx::query("INSERT OR IGNORE INTO delivered (body_hash, oracle) VALUES (?, ?)")
            .bind(r.receipt.body_hash().to_vec())
            .bind(oracle)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Sends every receipt not yet settled with each oracle, one batch per oracle per call, and
    /// records the answers that settle them.
    pub async fn deliver(&self, oracles: &[OracleClient]) -> Result<Delivered, sqlx::Error> {
        let mut out = Delivered::default();
        for o in oracles {
            let name = o.base_url().to_string();
            let batch = self.pending(&name).await?;
            if batch.is_empty() {
                continue;
            }
            match o.submit_receipts(&batch).await {
                Ok(resp) if resp.results.len() == batch.len() => {
                    for (r, item) in batch.iter().zip(&resp.results) {
                        if settles(item.status, item.reason) {
                            self.mark(&name, r).await?;
                            out.settled = out.settled.saturating_add(1);
                            if let (ItemStatus::Rejected, Some(reason)) = (item.status, item.reason)
                            {
                                out.refused.push((name.clone(), reason));
                            }
                        } else {
                            out.retry = out.retry.saturating_add(1);
                        }
                    }
                }
                Ok(_) => {
                    tracing::warn!(oracle = %name, "an oracle answered a batch with a different number of results; sending it again later");
                    out.retry = out.retry.saturating_add(batch.len() as u64);
                }
                Err(e) => {
                    tracing::info!(oracle = %name, error = %e, "oracle unreachable; the receipts stay queued");
                    out.retry = out.retry.saturating_add(batch.len() as u64);
                }
            }
        }
        Ok(out)
    }
}

impl ReceiptStore for Queue {
    fn store(&self, receipt: SignedReceipt) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move { self.push(&receipt).await.map_err(|e| e.to_string()) })
    }
}
