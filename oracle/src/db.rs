//! Storage: SQLite (embedded, the default) or PostgreSQL, through one schema and one set of
//! queries (`sqlx`'s `Any` driver; `$n` placeholders work on both).

use crate::aggregate::{Stored, StoredReceipt};
use backhaul_protocol::{ClientGrant, NodeBinding, SignedBinding, SignedGrant, SignedReceipt};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use std::path::Path;
use std::time::Duration;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("a stored value does not decode: {0}")]
    Corrupt(String),
    #[error("value {0} does not fit the database's signed 64-bit integers")]
    TooLarge(u64),
}

/// The database URL for an embedded SQLite file in `dir`.
pub fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}?mode=rwc", dir.join("oracle.db").display())
}

/// Connects (creating an SQLite file on first start), configures and migrates.
pub async fn connect(url: &str) -> Result<AnyPool, DbError> {
    sqlx::any::install_default_drivers();
    let sqlite = url.starts_with("sqlite:");
    let pool = AnyPoolOptions::new()
        // SQLite has one writer anyway; a few readers serve the API.
        .max_connections(if sqlite { 4 } else { 10 })
        .acquire_timeout(Duration::from_secs(10))
        .after_connect(move |conn, _| {
            Box::pin(async move {
                if sqlite {
                    // WAL with full sync: a committed write survives a crash or power loss.
                    sqlx::query("PRAGMA journal_mode = WAL")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA synchronous = FULL")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA busy_timeout = 10000")
                        .execute(&mut *conn)
                        .await?;
                }
                Ok(())
            })
        })
        .connect(url)
        .await?;
    MIGRATOR.run(&pool).await?;
    Ok(pool)
}

pub fn i64_of(v: u64) -> Result<i64, DbError> {
    i64::try_from(v).map_err(|_| DbError::TooLarge(v))
}

fn u64_of(v: i64) -> Result<u64, DbError> {
    u64::try_from(v).map_err(|_| DbError::Corrupt(format!("negative value {v}")))
}

fn decode<T: borsh::BorshDeserialize>(bytes: &[u8]) -> Result<T, DbError> {
    borsh::from_slice(bytes).map_err(|e| DbError::Corrupt(e.to_string()))
}

fn hash_of(row: &AnyRow, col: &str) -> Result<[u8; 32], DbError> {
    let v: Vec<u8> = row.try_get(col)?;
    v.try_into()
        .map_err(|_| DbError::Corrupt(format!("{col} is not 32 bytes")))
}

/// One session's identity at the highest sequence seen, as rebuilt at startup.
pub struct SessionRow {
    pub epoch: u64,
    pub client: [u8; 32],
    pub session_id: [u8; 16],
    pub sequence: u64,
    pub body_hash: [u8; 32],
}

/// All bindings.
pub async fn bindings(pool: &AnyPool) -> Result<Vec<Stored<NodeBinding>>, DbError> {
    let rows = sqlx::query("SELECT body_hash, signed FROM bindings")
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|r| {
            let signed: Vec<u8> = r.try_get("signed")?;
            let s: SignedBinding = decode(&signed)?;
            Ok(Stored {
                body: s.binding,
                body_hash: hash_of(r, "body_hash")?,
            })
        })
        .collect()
}

/// All grants.
pub async fn grants(pool: &AnyPool) -> Result<Vec<Stored<ClientGrant>>, DbError> {
    let rows = sqlx::query("SELECT body_hash, signed FROM grants")
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|r| {
            let signed: Vec<u8> = r.try_get("signed")?;
            let s: SignedGrant = decode(&signed)?;
            Ok(Stored {
                body: s.grant,
                body_hash: hash_of(r, "body_hash")?,
            })
        })
        .collect()
}

/// The stored receipts of `epoch`.
pub async fn receipts(pool: &AnyPool, epoch: u64) -> Result<Vec<StoredReceipt>, DbError> {
    let rows = sqlx::query("SELECT body_hash, signed FROM receipts WHERE epoch = $1")
        .bind(i64_of(epoch)?)
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|r| {
            let signed: Vec<u8> = r.try_get("signed")?;
            let s: SignedReceipt = decode(&signed)?;
            Ok(StoredReceipt {
                receipt: s.receipt,
                body_hash: hash_of(r, "body_hash")?,
            })
        })
        .collect()
}

/// The stored receipts of `epoch` in (client, session id) order, as a stream.
pub fn receipts_in_order(
    pool: &AnyPool,
    epoch: u64,
) -> futures::stream::BoxStream<'_, Result<StoredReceipt, DbError>> {
    use futures::StreamExt;
    let epoch = i64::try_from(epoch).unwrap_or(i64::MAX);
    sqlx::query(
        "SELECT body_hash, signed FROM receipts WHERE epoch = $1 ORDER BY client, session_id",
    )
    .bind(epoch)
    .fetch(pool)
    .map(|row| {
        let r = row?;
        let signed: Vec<u8> = r.try_get("signed")?;
        let s: SignedReceipt = decode(&signed)?;
        Ok(StoredReceipt {
            receipt: s.receipt,
            body_hash: hash_of(&r, "body_hash")?,
        })
    })
    .boxed()
}

/// The distinct clients with receipts in `epoch`.
pub async fn epoch_clients(pool: &AnyPool, epoch: u64) -> Result<Vec<[u8; 32]>, DbError> {
    let rows = sqlx::query("SELECT DISTINCT client FROM receipts WHERE epoch = $1")
        .bind(i64_of(epoch)?)
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|r| {
            let v: Vec<u8> = r.try_get("client")?;
            v.try_into()
                .map_err(|_| DbError::Corrupt("client is not 32 bytes".into()))
        })
        .collect()
}

/// Sessions of epochs from `first_epoch` on.
pub async fn sessions(pool: &AnyPool, first_epoch: u64) -> Result<Vec<SessionRow>, DbError> {
    let rows = sqlx::query(
        "SELECT epoch, client, session_id, sequence, body_hash FROM receipts WHERE epoch >= $1",
    )
    .bind(i64_of(first_epoch)?)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            let client: Vec<u8> = r.try_get("client")?;
            let session: Vec<u8> = r.try_get("session_id")?;
            Ok(SessionRow {
                epoch: u64_of(r.try_get("epoch")?)?,
                client: client
                    .try_into()
                    .map_err(|_| DbError::Corrupt("client".into()))?,
                session_id: session
                    .try_into()
                    .map_err(|_| DbError::Corrupt("session_id".into()))?,
                sequence: u64_of(r.try_get("sequence")?)?,
                body_hash: hash_of(r, "body_hash")?,
            })
        })
        .collect()
}

/// A closed epoch's dataset bytes and when it was closed.
pub async fn dataset(pool: &AnyPool, epoch: u64) -> Result<Option<(Vec<u8>, i64)>, DbError> {
    let row = sqlx::query("SELECT dataset, closed_at FROM epochs WHERE epoch = $1")
        .bind(i64_of(epoch)?)
        .fetch_optional(pool)
        .await?;
    row.map(|r| Ok((r.try_get("dataset")?, r.try_get("closed_at")?)))
        .transpose()
}

/// Every closed epoch, oldest first.
pub async fn closed_epochs(pool: &AnyPool) -> Result<Vec<u64>, DbError> {
    let rows = sqlx::query("SELECT epoch FROM epochs ORDER BY epoch")
        .fetch_all(pool)
        .await?;
    rows.iter().map(|r| u64_of(r.try_get("epoch")?)).collect()
}

/// Stores a closed epoch's dataset (once: closing again keeps the first).
pub async fn store_dataset(
    pool: &AnyPool,
    epoch: u64,
    dataset: &[u8],
    hash: &[u8; 32],
    closed_at: i64,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO epochs (epoch, dataset, dataset_hash, closed_at) VALUES ($1, $2, $3, $4) ON CONFLICT (epoch) DO NOTHING",
    )
    .bind(i64_of(epoch)?)
    .bind(dataset.to_vec())
    .bind(hash.to_vec())
    .bind(closed_at)
    .execute(pool)
    .await?;
    Ok(())
}

/// One write of an ingest batch.
pub enum Op {
    Binding(SignedBinding, [u8; 32]),
    Grant(SignedGrant, [u8; 32]),
    /// A higher sequence replaces a session's stored receipts: (epoch, client, session).
    Supersede(u64, [u8; 32], [u8; 16]),
    Receipt(SignedReceipt, [u8; 32]),
    /// Copy a session's stored receipts into the evidence table.
    EvidenceOfSession(u64, [u8; 32], [u8; 16]),
}

/// The writes of a group of ingest requests, applied in order in one transaction.
#[derive(Default)]
pub struct WriteSet {
    pub ops: Vec<Op>,
}

fn encode<T: borsh::BorshSerialize>(v: &T) -> Vec<u8> {
    borsh::to_vec(v).unwrap_or_default()
}

/// Rows per multi-row receipt insert (6 parameters each, well under every driver's limit).
const RECEIPTS_PER_INSERT: usize = 200;

async fn insert_receipts(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    ops: &[Op],
) -> Result<(), DbError> {
    let mut sql = String::from(
        "INSERT INTO receipts (epoch, client, session_id, body_hash, sequence, signed) VALUES ",
    );
    for k in 0..ops.len() {
        let b = k * 6;
        if k > 0 {
            sql.push(',');
        }
        sql.push_str(&format!(
            "(${}, ${}, ${}, ${}, ${}, ${})",
            b + 1,
            b + 2,
            b + 3,
            b + 4,
            b + 5,
            b + 6
        ));
    }
    sql.push_str(" ON CONFLICT (epoch, client, session_id, body_hash) DO NOTHING");
    let mut q = sqlx::query(&sql);
    for op in ops {
        if let Op::Receipt(r, hash) = op {
            q = q
                .bind(i64_of(r.receipt.epoch)?)
                .bind(&r.receipt.client[..])
                .bind(&r.receipt.session_id[..])
                .bind(&hash[..])
                .bind(i64_of(r.receipt.sequence)?)
                .bind(encode(r));
        }
    }
    q.execute(&mut **tx).await?;
    Ok(())
}

/// Applies `set` atomically; when this returns `Ok`, every write is durable.
///
/// A connection whose write failed is closed, not returned to the pool: after a full disk or an
/// I/O error SQLite may keep the failed transaction (and its write lock) open, or roll it back by
/// itself so that the driver's own rollback fails and its transaction bookkeeping is off. Either
/// way every later write would wait for a lock nobody releases ("database is locked"). Closing
/// the connection ends whatever it held.
pub async fn apply(pool: &AnyPool, set: &WriteSet) -> Result<(), DbError> {
    if set.ops.is_empty() {
        return Ok(());
    }
    let mut conn = pool.acquire().await?;
    let written = apply_on(&mut conn, set).await;
    if written.is_err() {
        conn.close_on_drop();
    }
    written
}

async fn apply_on(
    conn: &mut sqlx::pool::PoolConnection<sqlx::Any>,
    set: &WriteSet,
) -> Result<(), DbError> {
    let mut tx = sqlx::Connection::begin(&mut **conn).await?;
    let mut i = 0;
    while i < set.ops.len() {
        // Consecutive receipts go in multi-row inserts: far fewer round trips per item.
        let run = set.ops[i..]
            .iter()
            .take_while(|op| matches!(op, Op::Receipt(..)))
            .count();
        if run > 0 {
            for chunk in set.ops[i..i + run].chunks(RECEIPTS_PER_INSERT) {
                insert_receipts(&mut tx, chunk).await?;
            }
            i += run;
            continue;
        }
        let op = &set.ops[i];
        i += 1;
        match op {
            Op::Binding(b, hash) => {
                sqlx::query(
                    "INSERT INTO bindings (body_hash, node, operator, epoch, issued_at, signed) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (body_hash) DO NOTHING",
                )
                .bind(hash.to_vec())
                .bind(b.binding.node.to_vec())
                .bind(b.binding.operator.to_vec())
                .bind(i64_of(b.binding.epoch)?)
                .bind(b.binding.issued_at)
                .bind(encode(b))
                .execute(&mut *tx)
                .await?;
            }
            Op::Grant(g, hash) => {
                sqlx::query(
                    "INSERT INTO grants (body_hash, client, buyer, epoch, issued_at, expires_at, credit_limit, signed) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (body_hash) DO NOTHING",
                )
                .bind(hash.to_vec())
                .bind(g.grant.client.to_vec())
                .bind(g.grant.buyer.to_vec())
                .bind(i64_of(g.grant.epoch)?)
                .bind(g.grant.issued_at)
                .bind(g.grant.expires_at)
                .bind(i64_of(g.grant.credit_limit)?)
                .bind(encode(g))
                .execute(&mut *tx)
                .await?;
            }
            Op::Supersede(epoch, client, session) => {
                sqlx::query(
                    "DELETE FROM receipts WHERE epoch = $1 AND client = $2 AND session_id = $3",
                )
                .bind(i64_of(*epoch)?)
                .bind(client.to_vec())
                .bind(session.to_vec())
                .execute(&mut *tx)
                .await?;
            }
            // Written in runs above.
            Op::Receipt(..) => {}
            Op::EvidenceOfSession(epoch, client, session) => {
                sqlx::query(
                    "INSERT INTO equivocations (epoch, client, session_id, body_hash, sequence, signed) SELECT epoch, client, session_id, body_hash, sequence, signed FROM receipts WHERE epoch = $1 AND client = $2 AND session_id = $3 ON CONFLICT (epoch, client, session_id, body_hash) DO NOTHING",
                )
                .bind(i64_of(*epoch)?)
                .bind(client.to_vec())
                .bind(session.to_vec())
                .execute(&mut *tx)
                .await?;
            }
        }
    }
    tx.commit().await?;
    Ok(())
}
