//! Storage: SQLite (embedded, the default) or PostgreSQL, through one schema and one set of
//! queries (`sqlx`'s `Any` driver; `$n` placeholders work on both).

use backhaul_close::{Stored, StoredReceipt};
use backhaul_protocol::input::SignedManifest;
use backhaul_protocol::{Key, SignedBinding, SignedGrant, SignedReceipt};
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
    #[error("PostgreSQL runs with {setting} = {value}: a crash could lose writes the oracle already acknowledged; set {setting} = on in postgresql.conf and restart PostgreSQL")]
    NotDurable {
        setting: &'static str,
        value: String,
    },
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
                    // Up to 64 MiB of pages per connection (the default is 2 MiB): an epoch's
                    // receipts index is written at random places, and pages read back from the
                    // operating system on every insert cost more than the inserts themselves.
                    sqlx::query("PRAGMA cache_size = -65536")
                        .execute(&mut *conn)
                        .await?;
                    // Checkpoint when the write-ahead log reaches 64 MiB (the default is 4 MiB).
                    // Ingest rewrites the same pages over and over; a checkpoint copies each page
                    // once however often the log holds it, so rarer checkpoints copy far less,
                    // and a group commit rarely pays for one.
                    sqlx::query("PRAGMA wal_autocheckpoint = 16384")
                        .execute(&mut *conn)
                        .await?;
                } else {
                    // A commit returns only once it is flushed to disk, whatever the server's
                    // or database's default.
                    sqlx::query("SET synchronous_commit = on")
                        .execute(&mut *conn)
                        .await?;
                }
                Ok(())
            })
        })
        .connect(url)
        .await?;
    if !sqlite {
        check_durable(&pool).await?;
    }
    MIGRATOR.run(&pool).await?;
    // The node directory asks whether a node has a binding; an index by node answers it. Made
    // here, idempotently, rather than by a second migration file: the same statement runs on
    // SQLite and PostgreSQL and on databases created before it.
    sqlx::query("CREATE INDEX IF NOT EXISTS bindings_by_node ON bindings (node)")
        .execute(&pool)
        .await?;
    Ok(pool)
}

/// Refuses a PostgreSQL server that does not flush what it commits (`fsync` or
/// `full_page_writes` off): every answer the oracle gives follows a commit.
async fn check_durable(pool: &AnyPool) -> Result<(), DbError> {
    for setting in ["fsync", "full_page_writes", "synchronous_commit"] {
        let value: String = sqlx::query_scalar(&format!("SELECT current_setting('{setting}')"))
            .fetch_one(pool)
            .await?;
        if value != "on" {
            return Err(DbError::NotDurable { setting, value });
        }
    }
    Ok(())
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
    pub node: [u8; 32],
    pub session_id: [u8; 16],
    pub sequence: u64,
    pub body_hash: [u8; 32],
}

/// A stored binding or grant: the signed item and its position (the epoch whose agreed input
/// first held it; `None` while in none).
pub struct Positioned<T> {
    pub signed: T,
    pub body_hash: [u8; 32],
    pub position: Option<u64>,
}

impl<T> Positioned<T> {
    /// As the close reads it, with `unpositioned` standing for a missing position.
    pub fn stored<B: Copy>(&self, body: impl Fn(&T) -> B, unpositioned: u64) -> Stored<B> {
        Stored {
            body: body(&self.signed),
            body_hash: self.body_hash,
            position: self.position.unwrap_or(unpositioned),
        }
    }
}

fn position_of(r: &AnyRow) -> Result<Option<u64>, DbError> {
    r.try_get::<Option<i64>, _>("position")?
        .map(u64_of)
        .transpose()
}

/// All bindings.
/// Whether `node` has a stored binding (an index on `bindings.node` answers it).
pub async fn node_bound(pool: &AnyPool, node: &Key) -> Result<bool, DbError> {
    let row = sqlx::query("SELECT 1 FROM bindings WHERE node = $1 LIMIT 1")
        .bind(node.to_vec())
        .fetch_optional(pool)
        .await?;
    Ok(row.is_some())
}

pub async fn bindings(pool: &AnyPool) -> Result<Vec<Positioned<SignedBinding>>, DbError> {
    let rows = sqlx::query("SELECT body_hash, signed, position FROM bindings")
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|r| {
            let signed: Vec<u8> = r.try_get("signed")?;
            Ok(Positioned {
                signed: decode(&signed)?,
                body_hash: hash_of(r, "body_hash")?,
                position: position_of(r)?,
            })
        })
        .collect()
}

/// All grants.
pub async fn grants(pool: &AnyPool) -> Result<Vec<Positioned<SignedGrant>>, DbError> {
    let rows = sqlx::query("SELECT body_hash, signed, position FROM grants")
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|r| {
            let signed: Vec<u8> = r.try_get("signed")?;
            Ok(Positioned {
                signed: decode(&signed)?,
                body_hash: hash_of(r, "body_hash")?,
                position: position_of(r)?,
            })
        })
        .collect()
}

/// Stores the bindings and grants of `epoch`'s agreed input (those a peer held and this oracle
/// did not are added) and makes `epoch` their position; items positioned by `epoch` before (an
/// earlier close of the same epoch, redone after its input changed) and not in it lose it.
pub async fn position_items(
    pool: &AnyPool,
    epoch: u64,
    bindings: &[SignedBinding],
    grants: &[SignedGrant],
) -> Result<(), DbError> {
    let e = i64_of(epoch)?;
    let mut tx = pool.begin().await?;
    sqlx::query("UPDATE bindings SET position = NULL WHERE position >= $1")
        .bind(e)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE grants SET position = NULL WHERE position >= $1")
        .bind(e)
        .execute(&mut *tx)
        .await?;
    for b in bindings {
        let hash = b.binding.body_hash();
        insert_binding(&mut tx, b, &hash).await?;
        sqlx::query("UPDATE bindings SET position = $1 WHERE body_hash = $2 AND position IS NULL")
            .bind(e)
            .bind(&hash[..])
            .execute(&mut *tx)
            .await?;
    }
    for g in grants {
        let hash = g.grant.body_hash();
        insert_grant(&mut tx, g, &hash).await?;
        sqlx::query("UPDATE grants SET position = $1 WHERE body_hash = $2 AND position IS NULL")
            .bind(e)
            .bind(&hash[..])
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Every manifest stored for `epoch`.
pub async fn manifests(pool: &AnyPool, epoch: u64) -> Result<Vec<SignedManifest>, DbError> {
    let rows =
        sqlx::query("SELECT signed FROM manifests WHERE epoch = $1 ORDER BY oracle, input_hash")
            .bind(i64_of(epoch)?)
            .fetch_all(pool)
            .await?;
    rows.iter()
        .map(|r| decode(&r.try_get::<Vec<u8>, _>("signed")?))
        .collect()
}

/// Stores a manifest (once).
pub async fn store_manifest(pool: &AnyPool, m: &SignedManifest) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO manifests (epoch, oracle, input_hash, signed) VALUES ($1, $2, $3, $4) ON CONFLICT (epoch, oracle, input_hash) DO NOTHING",
    )
    .bind(i64_of(m.manifest.epoch)?)
    .bind(&m.manifest.oracle[..])
    .bind(&m.manifest.input_hash[..])
    .bind(encode(m))
    .execute(pool)
    .await?;
    Ok(())
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

/// The signed receipts stored for `epoch` (each session's top sequence).
pub async fn signed_receipts(pool: &AnyPool, epoch: u64) -> Result<Vec<SignedReceipt>, DbError> {
    let rows = sqlx::query("SELECT signed FROM receipts WHERE epoch = $1")
        .bind(i64_of(epoch)?)
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|r| decode(&r.try_get::<Vec<u8>, _>("signed")?))
        .collect()
}

/// Sessions of epochs from `first_epoch` on.
pub async fn sessions(pool: &AnyPool, first_epoch: u64) -> Result<Vec<SessionRow>, DbError> {
    let rows = sqlx::query(
        "SELECT epoch, client, node, session_id, sequence, body_hash FROM receipts WHERE epoch >= $1",
    )
    .bind(i64_of(first_epoch)?)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            let client: Vec<u8> = r.try_get("client")?;
            let node: Vec<u8> = r.try_get("node")?;
            let session: Vec<u8> = r.try_get("session_id")?;
            Ok(SessionRow {
                epoch: u64_of(r.try_get("epoch")?)?,
                client: client
                    .try_into()
                    .map_err(|_| DbError::Corrupt("client".into()))?,
                node: node
                    .try_into()
                    .map_err(|_| DbError::Corrupt("node".into()))?,
                session_id: session
                    .try_into()
                    .map_err(|_| DbError::Corrupt("session_id".into()))?,
                sequence: u64_of(r.try_get("sequence")?)?,
                body_hash: hash_of(r, "body_hash")?,
            })
        })
        .collect()
}

/// The agreed input hash a closed epoch's dataset was closed over.
pub async fn input_hash(pool: &AnyPool, epoch: u64) -> Result<Option<[u8; 32]>, DbError> {
    let row = sqlx::query("SELECT input_hash FROM epochs WHERE epoch = $1")
        .bind(i64_of(epoch)?)
        .fetch_optional(pool)
        .await?;
    match row {
        Some(r) => match r.try_get::<Option<Vec<u8>>, _>("input_hash")? {
            Some(v) => {
                Ok(Some(v.try_into().map_err(|_| {
                    DbError::Corrupt("input_hash is not 32 bytes".into())
                })?))
            }
            None => Ok(None),
        },
        None => Ok(None),
    }
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

/// Stores a closed epoch's dataset and the agreed input it was closed over, replacing an
/// earlier close of the same epoch (redone after its agreed input changed; only an epoch the
/// chain has not finalized is ever closed again).
pub async fn store_dataset(
    pool: &AnyPool,
    epoch: u64,
    dataset: &[u8],
    hash: &[u8; 32],
    input_hash: &[u8; 32],
    closed_at: i64,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO epochs (epoch, dataset, dataset_hash, input_hash, closed_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (epoch) DO UPDATE SET dataset = excluded.dataset, dataset_hash = excluded.dataset_hash, input_hash = excluded.input_hash, closed_at = excluded.closed_at",
    )
    .bind(i64_of(epoch)?)
    .bind(dataset.to_vec())
    .bind(hash.to_vec())
    .bind(input_hash.to_vec())
    .bind(closed_at)
    .execute(pool)
    .await?;
    Ok(())
}

/// One write of an ingest batch.
pub enum Op {
    Binding(SignedBinding, [u8; 32]),
    Grant(SignedGrant, [u8; 32]),
    /// A higher sequence replaces a session's stored receipts.
    Supersede(SessionKey),
    Receipt(SignedReceipt, [u8; 32]),
    /// Copy a session's stored receipts into the evidence table.
    EvidenceOfSession(SessionKey),
}

/// The writes of a group of ingest requests, applied in order in one transaction.
#[derive(Default)]
pub struct WriteSet {
    pub ops: Vec<Op>,
}

fn encode<T: borsh::BorshSerialize>(v: &T) -> Vec<u8> {
    borsh::to_vec(v).unwrap_or_default()
}

/// Rows per multi-row receipt insert (7 parameters each: 3,500 per statement, under every
/// driver's limit).
const RECEIPTS_PER_INSERT: usize = 500;
/// Sessions per multi-row delete (4 parameters each).
const SESSIONS_PER_DELETE: usize = 500;

/// How a multi-row statement's parameters are written. SQLite binds anonymous `?` parameters in
/// order; a numbered `$n` is looked up by name, a linear search per parameter that makes a
/// statement of thousands of parameters quadratic in its size. PostgreSQL takes only `$n`.
/// (Statements of a few parameters use `$n`, which both accept.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Params {
    Anonymous,
    Numbered,
}

impl Params {
    fn of(conn: &sqlx::AnyConnection) -> Self {
        if conn.backend_name() == "SQLite" {
            Params::Anonymous
        } else {
            Params::Numbered
        }
    }

    /// Appends `rows` tuples of `width` parameters to `sql`, separated by commas.
    fn push_rows(self, sql: &mut String, rows: usize, width: usize) {
        use std::fmt::Write;
        let mut n = 0;
        for row in 0..rows {
            if row > 0 {
                sql.push(',');
            }
            sql.push('(');
            for col in 0..width {
                if col > 0 {
                    sql.push_str(", ");
                }
                n += 1;
                match self {
                    Params::Anonymous => sql.push('?'),
                    Params::Numbered => {
                        let _ = write!(sql, "${n}");
                    }
                }
            }
            sql.push(')');
        }
    }

    /// A statement of `head`, `rows` parameter tuples and `tail`.
    fn statement(self, head: &str, rows: usize, width: usize, tail: &str) -> String {
        let mut sql = String::with_capacity(head.len() + tail.len() + rows * width * 6);
        sql.push_str(head);
        self.push_rows(&mut sql, rows, width);
        sql.push_str(tail);
        sql
    }
}

/// A session's key in the receipts table: (epoch, client, node, session id).
pub type SessionKey = (u64, [u8; 32], [u8; 32], [u8; 16]);

/// One stretch of a write set, applied as a few multi-row statements. A write set is cut after
/// each `EvidenceOfSession`, which reads the receipts written before it.
#[derive(Debug, Default, PartialEq, Eq)]
struct Stretch<'a> {
    bindings: Vec<(&'a SignedBinding, &'a [u8; 32])>,
    grants: Vec<(&'a SignedGrant, &'a [u8; 32])>,
    /// Sessions whose stored receipts are deleted (each once), before the inserts.
    deletes: Vec<SessionKey>,
    /// Receipts inserted after the deletes: those no later `Supersede` in the stretch removes.
    receipts: Vec<(&'a SignedReceipt, &'a [u8; 32])>,
    /// Applied last.
    evidence: Option<SessionKey>,
}

/// Plans `ops` as stretches whose batched application leaves the tables exactly as applying
/// every op in order would. Within a stretch the only order that matters is between a session's
/// receipts and its `Supersede`s: a delete removes every row of its session, so a receipt
/// followed by a `Supersede` of its session would be deleted again and is not written at all;
/// the rest are written after all the deletes. Bindings and grants are other tables.
fn plan(ops: &[Op]) -> Vec<Stretch<'_>> {
    let mut stretches = Vec::new();
    for part in ops.split_inclusive(|op| matches!(op, Op::EvidenceOfSession(..))) {
        let mut stretch = Stretch::default();
        let mut superseded_later = std::collections::HashSet::new();
        // Backwards: a receipt is kept when no `Supersede` of its session comes after it.
        for op in part.iter().rev() {
            match op {
                Op::Binding(b, hash) => stretch.bindings.push((b, hash)),
                Op::Grant(g, hash) => stretch.grants.push((g, hash)),
                Op::Supersede(key) => {
                    if superseded_later.insert(*key) {
                        stretch.deletes.push(*key);
                    }
                }
                Op::Receipt(r, hash) => {
                    let key = (
                        r.receipt.epoch,
                        r.receipt.client,
                        r.receipt.node,
                        r.receipt.session_id,
                    );
                    if !superseded_later.contains(&key) {
                        stretch.receipts.push((r, hash));
                    }
                }
                Op::EvidenceOfSession(key) => {
                    stretch.evidence = Some(*key);
                }
            }
        }
        stretch.bindings.reverse();
        stretch.grants.reverse();
        stretch.deletes.reverse();
        stretch.receipts.reverse();
        stretches.push(stretch);
    }
    stretches
}

async fn insert_binding(
    tx: &mut sqlx::AnyConnection,
    b: &SignedBinding,
    hash: &[u8; 32],
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO bindings (body_hash, node, operator, epoch, issued_at, signed) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (body_hash) DO NOTHING",
    )
    .bind(&hash[..])
    .bind(&b.binding.node[..])
    .bind(&b.binding.operator[..])
    .bind(i64_of(b.binding.epoch)?)
    .bind(b.binding.issued_at)
    .bind(encode(b))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

async fn insert_grant(
    tx: &mut sqlx::AnyConnection,
    g: &SignedGrant,
    hash: &[u8; 32],
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO grants (body_hash, client, buyer, epoch, issued_at, expires_at, credit_limit, signed) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (body_hash) DO NOTHING",
    )
    .bind(&hash[..])
    .bind(&g.grant.client[..])
    .bind(&g.grant.buyer[..])
    .bind(i64_of(g.grant.epoch)?)
    .bind(g.grant.issued_at)
    .bind(g.grant.expires_at)
    .bind(i64_of(g.grant.credit_limit)?)
    .bind(encode(g))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

async fn insert_receipts(
    tx: &mut sqlx::AnyConnection,
    params: Params,
    rows: &[(&SignedReceipt, &[u8; 32])],
) -> Result<(), DbError> {
    let sql = params.statement(
        "INSERT INTO receipts (epoch, client, node, session_id, body_hash, sequence, signed) VALUES ",
        rows.len(),
        7,
        " ON CONFLICT (epoch, client, session_id, body_hash) DO NOTHING",
    );
    // Only the full-size statement is worth keeping prepared; the rest would crowd it out.
    let mut q = sqlx::query(&sql).persistent(rows.len() == RECEIPTS_PER_INSERT);
    for (r, hash) in rows {
        q = q
            .bind(i64_of(r.receipt.epoch)?)
            .bind(&r.receipt.client[..])
            .bind(&r.receipt.node[..])
            .bind(&r.receipt.session_id[..])
            .bind(&hash[..])
            .bind(i64_of(r.receipt.sequence)?)
            .bind(encode(*r));
    }
    q.execute(&mut *tx).await?;
    Ok(())
}

/// The receipts of the listed sessions. The `SELECT` around the `VALUES` lets SQLite look each
/// session up in the primary key; a bare `IN (VALUES …)` scans the whole table.
const DELETE_HEAD: &str = "DELETE FROM receipts WHERE (epoch, client, session_id, node) IN (SELECT column1, column2, column3, column4 FROM (VALUES ";
const DELETE_TAIL: &str = ") AS sessions)";

async fn delete_sessions(
    tx: &mut sqlx::AnyConnection,
    params: Params,
    sessions: &[SessionKey],
) -> Result<(), DbError> {
    let sql = params.statement(DELETE_HEAD, sessions.len(), 4, DELETE_TAIL);
    let mut q = sqlx::query(&sql).persistent(sessions.len() == SESSIONS_PER_DELETE);
    for (epoch, client, node, session) in sessions {
        q = q
            .bind(i64_of(*epoch)?)
            .bind(&client[..])
            .bind(&session[..])
            .bind(&node[..]);
    }
    q.execute(&mut *tx).await?;
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
    let params = Params::of(conn);
    let started = std::time::Instant::now();
    let mut tx = sqlx::Connection::begin(&mut **conn).await?;
    for stretch in plan(&set.ops) {
        for (b, hash) in stretch.bindings {
            insert_binding(&mut tx, b, hash).await?;
        }
        for (g, hash) in stretch.grants {
            insert_grant(&mut tx, g, hash).await?;
        }
        for chunk in stretch.deletes.chunks(SESSIONS_PER_DELETE) {
            delete_sessions(&mut tx, params, chunk).await?;
        }
        for chunk in stretch.receipts.chunks(RECEIPTS_PER_INSERT) {
            insert_receipts(&mut tx, params, chunk).await?;
        }
        if let Some((epoch, client, node, session)) = stretch.evidence {
            sqlx::query(
                "INSERT INTO equivocations (epoch, client, node, session_id, body_hash, sequence, signed) SELECT epoch, client, node, session_id, body_hash, sequence, signed FROM receipts WHERE epoch = $1 AND client = $2 AND session_id = $3 AND node = $4 ON CONFLICT (epoch, client, session_id, body_hash) DO NOTHING",
            )
                .bind(i64_of(epoch)?)
                .bind(&client[..])
                .bind(&session[..])
                .bind(&node[..])
                .execute(&mut *tx)
                .await?;
        }
    }
    let written = started.elapsed();
    tx.commit().await?;
    crate::metrics::write_set(
        set.ops.len(),
        written.as_secs_f64(),
        (started.elapsed() - written).as_secs_f64(),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use backhaul_protocol::UsageReceipt;

    fn receipt(session: u8, sequence: u64) -> (SignedReceipt, [u8; 32]) {
        let r = SignedReceipt {
            receipt: UsageReceipt {
                epoch: 3,
                session_id: [session; 16],
                node: [1; 32],
                client: [2; 32],
                buyer: [4; 32],
                sequence,
                cumulative_bytes: sequence * 1000,
                session_age_secs: sequence,
            },
            client_signature: [5; 64],
            node_signature: [6; 64],
        };
        let hash = r.receipt.body_hash();
        (r, hash)
    }

    fn key(session: u8) -> SessionKey {
        (3, [2; 32], [1; 32], [session; 16])
    }

    fn sequences(receipts: &[(&SignedReceipt, &[u8; 32])]) -> Vec<(u8, u64)> {
        receipts
            .iter()
            .map(|(r, _)| (r.receipt.session_id[0], r.receipt.sequence))
            .collect()
    }

    #[test]
    fn a_receipt_a_later_supersede_removes_is_not_written() {
        let (a1, h1) = receipt(1, 1);
        let (a2, h2) = receipt(1, 2);
        let (b1, hb) = receipt(2, 1);
        let (a3, h3) = receipt(1, 3);
        let ops = vec![
            Op::Receipt(a1, h1),
            Op::Receipt(b1, hb),
            Op::Supersede(key(1)),
            Op::Receipt(a2, h2),
            Op::Supersede(key(1)),
            Op::Receipt(a3, h3),
        ];
        let stretches = plan(&ops);
        assert_eq!(stretches.len(), 1);
        let s = &stretches[0];
        // Session 1 is deleted once; only its last receipt and session 2's are written.
        assert_eq!(s.deletes, vec![key(1)]);
        assert_eq!(sequences(&s.receipts), vec![(2, 1), (1, 3)]);
        assert_eq!(s.evidence, None);
    }

    #[test]
    fn a_supersede_before_any_receipt_of_its_session_only_deletes() {
        let (a, h) = receipt(1, 4);
        let ops = vec![Op::Supersede(key(7)), Op::Receipt(a, h)];
        let stretches = plan(&ops);
        assert_eq!(stretches[0].deletes, vec![key(7)]);
        assert_eq!(sequences(&stretches[0].receipts), vec![(1, 4)]);
    }

    #[test]
    fn evidence_ends_a_stretch_so_it_reads_what_came_before() {
        let (a1, h1) = receipt(1, 1);
        let (a1b, h1b) = receipt(1, 1);
        let (a2, h2) = receipt(1, 2);
        let ops = vec![
            Op::Receipt(a1, h1),
            Op::Receipt(a1b, h1b),
            Op::EvidenceOfSession(key(1)),
            Op::Supersede(key(1)),
            Op::Receipt(a2, h2),
        ];
        let stretches = plan(&ops);
        assert_eq!(stretches.len(), 2);
        assert_eq!(sequences(&stretches[0].receipts), vec![(1, 1), (1, 1)]);
        assert_eq!(stretches[0].evidence, Some(key(1)));
        assert!(stretches[0].deletes.is_empty());
        assert_eq!(stretches[1].deletes, vec![key(1)]);
        assert_eq!(sequences(&stretches[1].receipts), vec![(1, 2)]);
        assert_eq!(stretches[1].evidence, None);
    }

    #[test]
    fn parameters_are_anonymous_for_sqlite_and_numbered_for_postgres() {
        assert_eq!(
            Params::Anonymous.statement("V ", 2, 3, ";"),
            "V (?, ?, ?),(?, ?, ?);"
        );
        assert_eq!(
            Params::Numbered.statement("V ", 2, 3, ";"),
            "V ($1, $2, $3),($4, $5, $6);"
        );
    }

    /// A multi-row session delete must look each session up, not scan every receipt.
    #[tokio::test]
    async fn session_deletes_use_the_primary_key() {
        let dir = tempfile::tempdir().unwrap();
        let pool = connect(&sqlite_url(dir.path())).await.unwrap();
        // The pool's connections are recognized as SQLite, so they get `?` parameters.
        let conn = pool.acquire().await.unwrap();
        assert_eq!(Params::of(&conn), Params::Anonymous);
        drop(conn);
        let sql = format!(
            "EXPLAIN QUERY PLAN {}",
            Params::Anonymous.statement(DELETE_HEAD, 3, 4, DELETE_TAIL)
        );
        let mut q = sqlx::query(&sql);
        for s in 0..3u8 {
            q = q
                .bind(3i64)
                .bind(vec![2u8; 32])
                .bind(vec![s; 16])
                .bind(vec![1u8; 32]);
        }
        let rows = q.fetch_all(&pool).await.unwrap();
        let plan: Vec<String> = rows
            .iter()
            .map(|r| r.try_get::<String, _>("detail").unwrap())
            .collect();
        assert!(
            plan.iter().any(|d| d.starts_with("SEARCH receipts USING")
                && d.ends_with("(epoch=? AND client=? AND session_id=?)")),
            "{plan:?}"
        );
        assert!(!plan.iter().any(|d| d == "SCAN receipts"), "{plan:?}");
    }
}

/// What pruning a finalized epoch removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    pub receipts: u64,
    pub bindings: u64,
    pub grants: u64,
}

/// Drops the state of epochs up to `finalized` (finalized and published: their receipts,
/// evidence and manifests) and the listed bindings and grants, in one transaction.
pub async fn prune(
    pool: &AnyPool,
    finalized: u64,
    bindings: &[[u8; 32]],
    grants: &[[u8; 32]],
) -> Result<Pruned, DbError> {
    let f = i64_of(finalized)?;
    let mut tx = pool.begin().await?;
    let receipts = sqlx::query("DELETE FROM receipts WHERE epoch <= $1")
        .bind(f)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    for table in ["equivocations", "manifests"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE epoch <= $1"))
            .bind(f)
            .execute(&mut *tx)
            .await?;
    }
    let mut pruned = Pruned {
        receipts,
        ..Pruned::default()
    };
    for (table, hashes, count) in [
        ("bindings", bindings, &mut pruned.bindings),
        ("grants", grants, &mut pruned.grants),
    ] {
        for hash in hashes {
            *count += sqlx::query(&format!("DELETE FROM {table} WHERE body_hash = $1"))
                .bind(&hash[..])
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
    }
    tx.commit().await?;
    Ok(pruned)
}

/// Rows in each table of per-epoch or per-key state: what pruning bounds.
pub async fn state_rows(pool: &AnyPool) -> Result<Vec<(&'static str, u64)>, DbError> {
    let mut out = Vec::new();
    for table in [
        "receipts",
        "equivocations",
        "manifests",
        "bindings",
        "grants",
    ] {
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(pool)
            .await?;
        out.push((table, u64::try_from(n).unwrap_or(0)));
    }
    Ok(out)
}
