//! Ingest: verify, classify and durably store bindings, grants and receipts.
//!
//! Handlers decode and verify (signatures in batches, on blocking threads at a lower CPU priority);
//! one writer task then classifies every item against what is stored and commits each group of
//! requests in a single transaction before anyone is answered. A single writer makes
//! classification race-free, and group commit keeps the cost of durability per request, not per
//! item; every request passes through the writer, so it runs first when both want a core.
//!
//! Every receipt with valid signatures in an open epoch is stored, even when the oracle's current
//! knowledge says it will not count (no grant or binding yet, an expired grant, self-dealing, no
//! credits left): the answer then says `rejected` with that reason, but the epoch's close decides
//! from everything that arrived before it, so all oracles reach the same result whatever order
//! items arrived in.

use crate::clock::{ChainTime, EpochClock};
use crate::db::{self, Op, WriteSet};
use crate::metrics as m;
use crate::status::Status;
use backhaul::state::Config;
use backhaul_close::{latest, Stored};
use backhaul_protocol::api::{ItemResult, RejectReason};
use backhaul_protocol::{ClientGrant, Key, NodeBinding, SignedBinding, SignedGrant, SignedReceipt};
use sqlx::AnyPool;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// A job for the writer.
pub enum Job {
    Bindings(
        Vec<SignedBinding>,
        oneshot::Sender<Result<Vec<ItemResult>, String>>,
    ),
    Grants(
        Vec<SignedGrant>,
        oneshot::Sender<Result<Vec<ItemResult>, String>>,
    ),
    /// Verified receipts with their body hashes.
    Receipts(
        Vec<(SignedReceipt, [u8; 32])>,
        oneshot::Sender<Result<Vec<ItemResult>, String>>,
    ),
    /// Stop taking receipts for epochs up to and including this one (it is being closed).
    CloseThrough(u64, oneshot::Sender<()>),
    /// Replace the provisional credit knowledge: buyer → credits still available.
    Credits(HashMap<Key, u64>),
    /// The deployment's config, read again (parameters governance changed).
    Config(Box<Config>),
}

#[derive(Default)]
struct Session {
    sequence: u64,
    /// Body hashes stored at the top sequence: the first, then any that equivocate with it.
    first: Option<[u8; 32]>,
    others: HashSet<[u8; 32]>,
    /// Bytes of the stored receipt (the first at the top sequence).
    bytes: u64,
    /// The buyer it names.
    buyer: Key,
}

/// The writer's in-memory view of what is stored.
pub struct Writer {
    pool: AnyPool,
    time: ChainTime,
    clock: EpochClock,
    /// The deployment's config as last read: each epoch's grace period and price of bandwidth
    /// (`params_for`), which governance may change from a later epoch.
    config: Box<Config>,
    /// Epochs up to this one are closed (`None`: none yet).
    closed_through: Option<u64>,
    sessions: HashMap<db::SessionKey, Session>,
    bindings: HashMap<Key, Vec<Stored<NodeBinding>>>,
    /// Grants by (buyer, client).
    grants: HashMap<(Key, Key), Vec<Stored<ClientGrant>>>,
    known: HashSet<[u8; 32]>,
    /// Provisional: bytes per (epoch, buyer) of stored sessions, and credits still available.
    buyer_bytes: HashMap<(u64, Key), u64>,
    available_credits: HashMap<Key, u64>,
    /// Sessions that equivocated in the write set being built: each is copied to the evidence
    /// table once, at the end of the set or before a higher sequence supersedes it, however many
    /// receipts equivocated (one copy per receipt made a request of n such receipts cost n²).
    pending_evidence: HashSet<db::SessionKey>,
    /// The in-memory view ran ahead of a failed write and could not be rebuilt yet: nothing is
    /// classified until a reload succeeds, or replays of stored items would pass as new.
    stale: bool,
    status: Arc<Status>,
}

/// Most jobs one transaction commits together.
const GROUP: usize = 64;

impl Writer {
    /// Loads the writer's view from the database.
    pub async fn load(
        pool: AnyPool,
        clock: EpochClock,
        time: ChainTime,
        config: Config,
        status: Arc<Status>,
    ) -> Result<Self, db::DbError> {
        let closed = db::closed_epochs(&pool).await?;
        let closed_through = closed.last().copied();
        let mut w = Writer {
            pool,
            time,
            clock,
            config: Box::new(config),
            closed_through,
            sessions: HashMap::new(),
            bindings: HashMap::new(),
            grants: HashMap::new(),
            known: HashSet::new(),
            buyer_bytes: HashMap::new(),
            available_credits: HashMap::new(),
            pending_evidence: HashSet::new(),
            stale: false,
            status,
        };
        w.reload().await?;
        Ok(w)
    }

    async fn reload(&mut self) -> Result<(), db::DbError> {
        self.sessions.clear();
        self.bindings.clear();
        self.grants.clear();
        self.known.clear();
        self.buyer_bytes.clear();
        // Items in no agreed input yet enter the next one to close.
        let current = self.provisional_position();
        for b in db::bindings(&self.pool).await? {
            let b = b.stored(|s| s.binding, current);
            self.known.insert(b.body_hash);
            self.bindings.entry(b.body.node).or_default().push(b);
        }
        for g in db::grants(&self.pool).await? {
            let g = g.stored(|s| s.grant, current);
            self.known.insert(g.body_hash);
            self.grants
                .entry((g.body.buyer, g.body.client))
                .or_default()
                .push(g);
        }
        let first_open = self.closed_through.map_or(0, |e| e.saturating_add(1));
        for epoch in db::sessions(&self.pool, first_open)
            .await?
            .iter()
            .map(|s| s.epoch)
            .collect::<HashSet<_>>()
        {
            for r in db::receipts(&self.pool, epoch).await? {
                let key = (
                    r.receipt.epoch,
                    r.receipt.client,
                    r.receipt.node,
                    r.receipt.session_id,
                );
                let s = self.sessions.entry(key).or_default();
                if s.first.is_none() || r.receipt.sequence > s.sequence {
                    s.sequence = r.receipt.sequence;
                    s.first = Some(r.body_hash);
                    s.others.clear();
                    s.bytes = r.receipt.cumulative_bytes;
                    s.buyer = r.receipt.buyer;
                } else if r.receipt.sequence == s.sequence {
                    s.others.insert(r.body_hash);
                }
            }
        }
        for ((epoch, _, _, _), s) in &self.sessions {
            *self.buyer_bytes.entry((*epoch, s.buyer)).or_default() += s.bytes;
        }
        Ok(())
    }

    /// Whether `epoch` takes receipts at `now`: started, within its grace period, and not
    /// closed. The grace period is a hard cutoff by the chain's clock, the same for every
    /// oracle: an oracle that restarts after a close was interrupted must not take receipts the
    /// others refused.
    pub fn is_open(&self, epoch: u64, now: i64) -> bool {
        let started = self.clock.at(now).is_some_and(|current| epoch <= current);
        let late = now
            >= self.clock.end(epoch).saturating_add(
                i64::try_from(self.config.params_for(epoch).consensus.grace_secs)
                    .unwrap_or(i64::MAX),
            );
        let closed = self.closed_through.is_some_and(|c| epoch <= c);
        started && !late && !closed
    }

    /// Runs until every sender is dropped.
    pub async fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        while let Some(first) = rx.recv().await {
            let mut jobs = vec![first];
            while jobs.len() < GROUP {
                match rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
            self.process(jobs).await;
        }
    }

    async fn process(&mut self, jobs: Vec<Job>) {
        if self.stale {
            match self.reload().await {
                Ok(()) => {
                    self.stale = false;
                    tracing::info!("the ingest state was rebuilt from the database");
                }
                Err(e) => {
                    tracing::error!(error = %e, "the ingest state cannot be rebuilt: the database is unavailable; refusing writes");
                    m::storage_error();
                    self.status.storage_failed(&e);
                    let msg = format!(
                        "the oracle's database is unavailable ({e}); nothing was stored, retry later"
                    );
                    self.refuse(jobs, &msg);
                    return;
                }
            }
        }
        let now = self.time.now();
        let mut set = WriteSet::default();
        let mut replies = Vec::new();
        // Acknowledged only once the writes classified before them are committed: a close must
        // not start reading while receipts it should count are still being written.
        let mut closes = Vec::new();
        for job in jobs {
            match job {
                Job::Bindings(items, reply) => {
                    let results = items
                        .into_iter()
                        .map(|b| self.binding(b, &mut set))
                        .collect();
                    replies.push((reply, results));
                }
                Job::Grants(items, reply) => {
                    let results = items.into_iter().map(|g| self.grant(g, &mut set)).collect();
                    replies.push((reply, results));
                }
                Job::Receipts(items, reply) => {
                    let results = items
                        .into_iter()
                        .map(|(r, h)| self.receipt(r, h, now, &mut set))
                        .collect();
                    replies.push((reply, results));
                }
                Job::CloseThrough(epoch, done) => {
                    self.close_through(epoch);
                    closes.push(done);
                }
                Job::Credits(available) => self.available_credits = available,
                Job::Config(config) => self.config = config,
            }
        }
        for key in self.pending_evidence.drain() {
            set.ops.push(Op::EvidenceOfSession(key));
        }
        match db::apply(&self.pool, &set).await {
            Ok(()) => {
                if !set.ops.is_empty() {
                    self.status.storage_ok();
                }
                for (reply, results) in replies {
                    for r in &results {
                        m::item(r);
                    }
                    let _ = reply.send(Ok(results));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "storing an ingest batch failed; nothing in it was stored");
                m::storage_error();
                self.status.storage_failed(&e);
                let msg = format!(
                    "the oracle could not store the batch ({e}); nothing was stored, retry later"
                );
                for (reply, _) in replies {
                    let _ = reply.send(Err(msg.clone()));
                }
                // The in-memory view ran ahead of the database: rebuild it, now or before the
                // next batch.
                if let Err(e) = self.reload().await {
                    tracing::error!(error = %e, "reloading the ingest state failed; will retry before the next batch");
                    self.stale = true;
                }
            }
        }
        for done in closes {
            let _ = done.send(());
        }
    }

    fn close_through(&mut self, epoch: u64) {
        self.closed_through = Some(self.closed_through.map_or(epoch, |c| c.max(epoch)));
        self.sessions.retain(|(e, _, _, _), _| *e > epoch);
        self.buyer_bytes.retain(|(e, _), _| *e > epoch);
    }

    /// Answers every job of a group that cannot be classified.
    fn refuse(&mut self, jobs: Vec<Job>, msg: &str) {
        for job in jobs {
            match job {
                Job::Bindings(_, reply) | Job::Grants(_, reply) | Job::Receipts(_, reply) => {
                    let _ = reply.send(Err(msg.to_string()));
                }
                Job::CloseThrough(epoch, done) => {
                    self.close_through(epoch);
                    let _ = done.send(());
                }
                Job::Credits(available) => self.available_credits = available,
                Job::Config(config) => self.config = config,
            }
        }
    }

    /// The position an item arriving now will most likely get: the next epoch to close here
    /// (its agreed input will hold it).
    fn provisional_position(&self) -> u64 {
        self.closed_through.map_or(0, |c| c.saturating_add(1))
    }

    fn binding(&mut self, b: SignedBinding, set: &mut WriteSet) -> ItemResult {
        if !b.binding.in_range() {
            return ItemResult::rejected(RejectReason::OutOfRange);
        }
        let hash = b.binding.body_hash();
        if !self.known.insert(hash) {
            return ItemResult::DUPLICATE;
        }
        let position = self.provisional_position();
        self.bindings
            .entry(b.binding.node)
            .or_default()
            .push(Stored {
                body: b.binding,
                body_hash: hash,
                position,
            });
        set.ops.push(Op::Binding(b, hash));
        ItemResult::ACCEPTED
    }

    fn grant(&mut self, g: SignedGrant, set: &mut WriteSet) -> ItemResult {
        if !g.grant.in_range() {
            return ItemResult::rejected(RejectReason::OutOfRange);
        }
        let hash = g.grant.body_hash();
        if !self.known.insert(hash) {
            return ItemResult::DUPLICATE;
        }
        let position = self.provisional_position();
        self.grants
            .entry((g.grant.buyer, g.grant.client))
            .or_default()
            .push(Stored {
                body: g.grant,
                body_hash: hash,
                position,
            });
        set.ops.push(Op::Grant(g, hash));
        ItemResult::ACCEPTED
    }

    fn receipt(
        &mut self,
        signed: SignedReceipt,
        hash: [u8; 32],
        now: i64,
        set: &mut WriteSet,
    ) -> ItemResult {
        let r = signed.receipt;
        // Before anything is written: one item out of range must not fail its neighbours'
        // group commit.
        if !r.in_range() {
            return ItemResult::rejected(RejectReason::OutOfRange);
        }
        if !self.is_open(r.epoch, now) {
            return ItemResult::rejected(RejectReason::EpochNotOpen);
        }
        let key = (r.epoch, r.client, r.node, r.session_id);
        let session = self.sessions.entry(key).or_default();
        let previous_bytes;
        if session.first.is_none() || r.sequence > session.sequence {
            if session.first.is_some() {
                // Evidence first: the supersede deletes the equivocating receipts.
                if self.pending_evidence.remove(&key) {
                    set.ops.push(Op::EvidenceOfSession(key));
                }
                set.ops.push(Op::Supersede(key));
            }
            previous_bytes = session.bytes;
            session.sequence = r.sequence;
            session.first = Some(hash);
            session.others.clear();
            session.bytes = r.cumulative_bytes;
            session.buyer = r.buyer;
            set.ops.push(Op::Receipt(signed, hash));
        } else if r.sequence < session.sequence {
            return ItemResult::SUPERSEDED;
        } else if session.first == Some(hash) || session.others.contains(&hash) {
            return ItemResult::DUPLICATE;
        } else {
            session.others.insert(hash);
            set.ops.push(Op::Receipt(signed, hash));
            // Every receipt at this sequence, the new one included, becomes evidence (copied
            // once per write set).
            self.pending_evidence.insert(key);
            return ItemResult::EQUIVOCATION;
        }
        // Provisional checks: will this session count at the close, as far as we know now?
        let binding = self
            .bindings
            .get(&r.node)
            .and_then(|v| latest(v, r.epoch))
            .copied();
        let grant = self
            .grants
            .get(&(r.buyer, r.client))
            .and_then(|v| latest(v, r.epoch))
            .copied();
        let Some(binding) = binding else {
            return ItemResult::rejected(RejectReason::UnknownBinding);
        };
        let Some(grant) = grant else {
            return ItemResult::rejected(RejectReason::UnknownGrant);
        };
        if grant.expires_at <= self.clock.start(r.epoch) {
            return ItemResult::rejected(RejectReason::GrantExpired);
        }
        if binding.operator == grant.buyer {
            return ItemResult::rejected(RejectReason::SelfDealing);
        }
        let used = self.buyer_bytes.entry((r.epoch, grant.buyer)).or_default();
        *used = used.saturating_add(r.cumulative_bytes.saturating_sub(previous_bytes));
        if let Some(available) = self.available_credits.get(&grant.buyer) {
            let per_gib = self.config.params_for(r.epoch).consensus.credits_per_gib;
            let credits =
                backhaul_core::split::credits_for_bytes(*used, per_gib).unwrap_or(u64::MAX);
            if credits > *available {
                return ItemResult::rejected(RejectReason::CreditsExhausted);
            }
        }
        ItemResult::ACCEPTED
    }
}
