//! Ingest: verify, classify and durably store bindings, grants and receipts.
//!
//! Handlers decode and verify (signatures in batches, on blocking threads at a lower CPU priority);
//! one writer task then classifies every item against what is stored and commits each group of
//! requests in a single transaction before anyone is answered. A single writer makes
//! classification race-free, and group commit keeps the cost of durability per request, not per
//! item; every request passes through the writer, so it runs first when both want a core.
//!
//! What is stored is bounded by what it costs its signers:
//!
//! - a grant only for a buyer with an on-chain credit account (checked before the writer, see
//!   [`crate::admission`]), and at most `max_grants_per_buyer` clients per buyer;
//! - a binding only within its lifetime, and at most `max_nodes_per_operator` nodes per operator;
//! - a receipt only once its node's binding and its client's grant are here: until then it is
//!   held in memory ([`crate::held`], bounded) and answered `held`; the binding or grant that
//!   completes it stores it, the epoch's cutoff drops it. A receipt whose grant had expired, or
//!   whose buyer is the node's operator, can never count and is refused, not stored;
//! - once an epoch is finalized and published, its receipts go, and so do the bindings and
//!   grants that no later close can read ([`backhaul_close::prunable`]).
//!
//! A stored receipt may still not count (its buyer's credits ran out, as far as this oracle
//! knows now): the answer says so, but the close decides from the agreed input, so all oracles
//! reach the same result whatever order items arrived in.

use crate::clock::{ChainTime, EpochClock};
use crate::db::{self, Op, WriteSet};
use crate::held::{Held, Hold};
use crate::metrics as m;
use crate::status::Status;
use backhaul::state::Config;
use backhaul_close::{latest, prunable, Stored};
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
    /// This epoch is finalized on-chain and published: drop its state, and the bindings and
    /// grants no later close reads.
    Prune(u64, oneshot::Sender<Result<db::Pruned, String>>),
}

/// Bounds on what one signer can make the writer keep.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub nodes_per_operator: usize,
    pub grants_per_buyer: usize,
    pub held_receipts: usize,
}

impl Limits {
    pub fn of(settings: &crate::Settings) -> Self {
        Limits {
            nodes_per_operator: settings.max_nodes_per_operator,
            grants_per_buyer: settings.max_grants_per_buyer,
            held_receipts: settings.max_held_receipts,
        }
    }
}

/// How far in the future a binding's `issued_at` may be (clock skew between signer and oracle).
const MAX_SKEW_SECS: i64 = 300;

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
    limits: Limits,
    /// Each node's operator by its latest binding (by `issued_at`), and nodes per operator.
    operator_of: HashMap<Key, (i64, Key)>,
    nodes_per_operator: HashMap<Key, usize>,
    /// Clients granted per buyer.
    clients_per_buyer: HashMap<Key, usize>,
    /// Receipts waiting for their binding or grant.
    held: Held,
    /// Epochs up to this one have been pruned.
    pruned_through: Option<u64>,
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
        limits: Limits,
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
            limits,
            operator_of: HashMap::new(),
            nodes_per_operator: HashMap::new(),
            clients_per_buyer: HashMap::new(),
            held: Held::new(limits.held_receipts),
            pruned_through: None,
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
        self.recount();
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
        let mut prunes = Vec::new();
        for job in jobs {
            match job {
                Job::Bindings(items, reply) => {
                    let results = items
                        .into_iter()
                        .map(|b| self.binding(b, now, &mut set))
                        .collect();
                    replies.push((reply, results));
                }
                Job::Grants(items, reply) => {
                    let results = items
                        .into_iter()
                        .map(|g| self.grant(g, now, &mut set))
                        .collect();
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
                Job::Prune(epoch, done) => prunes.push((epoch, done)),
            }
        }
        for key in self.pending_evidence.drain() {
            set.ops.push(Op::EvidenceOfSession(key));
        }
        m::held(self.held.len());
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
        for (epoch, done) in prunes {
            let _ = done.send(self.prune(epoch).await.map_err(|e| e.to_string()));
        }
    }

    /// Drops the state of `finalized` and earlier epochs, and the bindings and grants no close
    /// after it reads. Idempotent.
    async fn prune(&mut self, finalized: u64) -> Result<db::Pruned, db::DbError> {
        if self.pruned_through.is_some_and(|p| p >= finalized) {
            return Ok(db::Pruned::default());
        }
        let next_start = self.clock.start(finalized.saturating_add(1));
        // Real positions only: an item in no agreed input yet holds its whole group.
        let bindings: Vec<Stored<NodeBinding>> = db::bindings(&self.pool)
            .await?
            .iter()
            .map(|b| b.stored(|s| s.binding, u64::MAX))
            .collect();
        let grants: Vec<Stored<ClientGrant>> = db::grants(&self.pool)
            .await?
            .iter()
            .map(|g| g.stored(|s| s.grant, u64::MAX))
            .collect();
        let mut by_node: HashMap<Key, Vec<Stored<NodeBinding>>> = HashMap::new();
        for b in bindings {
            by_node.entry(b.body.node).or_default().push(b);
        }
        let mut by_pair: HashMap<(Key, Key), Vec<Stored<ClientGrant>>> = HashMap::new();
        for g in grants {
            by_pair
                .entry((g.body.buyer, g.body.client))
                .or_default()
                .push(g);
        }
        let drop_bindings: Vec<[u8; 32]> = by_node
            .values()
            .flat_map(|group| prunable(group, finalized, |b| b.expired_for(next_start)))
            .collect();
        let drop_grants: Vec<[u8; 32]> = by_pair
            .values()
            .flat_map(|group| prunable(group, finalized, |_| false))
            .collect();
        let pruned = db::prune(&self.pool, finalized, &drop_bindings, &drop_grants).await?;
        let dropped: HashSet<[u8; 32]> =
            drop_bindings.iter().chain(&drop_grants).copied().collect();
        for group in self.bindings.values_mut() {
            group.retain(|b| !dropped.contains(&b.body_hash));
        }
        self.bindings.retain(|_, g| !g.is_empty());
        for group in self.grants.values_mut() {
            group.retain(|g| !dropped.contains(&g.body_hash));
        }
        self.grants.retain(|_, g| !g.is_empty());
        self.known.retain(|h| !dropped.contains(h));
        self.recount();
        self.pruned_through = Some(finalized);
        m::pruned(&pruned);
        tracing::info!(
            epoch = finalized,
            receipts = pruned.receipts,
            bindings = pruned.bindings,
            grants = pruned.grants,
            "pruned the state of a finalized, published epoch"
        );
        Ok(pruned)
    }

    /// Recounts nodes per operator and clients per buyer from the bindings and grants held.
    fn recount(&mut self) {
        self.operator_of.clear();
        self.nodes_per_operator.clear();
        self.clients_per_buyer.clear();
        for (node, group) in &self.bindings {
            if let Some(b) = group.iter().max_by_key(|b| (b.body.issued_at, b.body_hash)) {
                self.operator_of
                    .insert(*node, (b.body.issued_at, b.body.operator));
                *self.nodes_per_operator.entry(b.body.operator).or_default() += 1;
            }
        }
        for (buyer, _) in self.grants.keys() {
            *self.clients_per_buyer.entry(*buyer).or_default() += 1;
        }
    }

    fn close_through(&mut self, epoch: u64) {
        self.closed_through = Some(self.closed_through.map_or(epoch, |c| c.max(epoch)));
        let dropped = self.held.drop_through(epoch);
        if dropped > 0 {
            tracing::info!(
                epoch,
                dropped,
                "receipts still waiting for a binding or grant at the cutoff were dropped"
            );
        }
        m::held_dropped(dropped);
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
                Job::Prune(_, done) => {
                    let _ = done.send(Err(msg.to_string()));
                }
            }
        }
    }

    /// The position an item arriving now will most likely get: the next epoch to close here
    /// (its agreed input will hold it).
    fn provisional_position(&self) -> u64 {
        self.closed_through.map_or(0, |c| c.saturating_add(1))
    }

    fn binding(&mut self, b: SignedBinding, now: i64, set: &mut WriteSet) -> ItemResult {
        let body = b.binding;
        if !body.in_range() || body.issued_at > now.saturating_add(MAX_SKEW_SECS) {
            return ItemResult::rejected(RejectReason::OutOfRange);
        }
        if body.expires_at() <= now {
            return ItemResult::rejected(RejectReason::BindingExpired);
        }
        let hash = body.body_hash();
        if self.known.contains(&hash) {
            return ItemResult::DUPLICATE;
        }
        // The node's operator as the latest binding names it: a node moving to an operator
        // takes one of that operator's places.
        let current = self.operator_of.get(&body.node).copied();
        let becomes_latest = current.is_none_or(|(at, _)| body.issued_at > at);
        let moves = becomes_latest && current.is_none_or(|(_, op)| op != body.operator);
        if moves
            && self
                .nodes_per_operator
                .get(&body.operator)
                .is_some_and(|n| *n >= self.limits.nodes_per_operator)
        {
            return ItemResult::rejected(RejectReason::TooManyNodes);
        }
        if becomes_latest {
            if moves {
                if let Some((_, old)) = current {
                    if let Some(n) = self.nodes_per_operator.get_mut(&old) {
                        *n = n.saturating_sub(1);
                    }
                }
                *self.nodes_per_operator.entry(body.operator).or_default() += 1;
            }
            self.operator_of
                .insert(body.node, (body.issued_at, body.operator));
        }
        self.known.insert(hash);
        let position = self.provisional_position();
        self.bindings.entry(body.node).or_default().push(Stored {
            body,
            body_hash: hash,
            position,
        });
        set.ops.push(Op::Binding(b, hash));
        let (bindings, grants, clock) = (&self.bindings, &self.grants, &self.clock);
        let released = self
            .held
            .release_node(&body.node, |r| parties_known(bindings, grants, clock, r));
        self.store_released(released, now, set);
        ItemResult::ACCEPTED
    }

    fn grant(&mut self, g: SignedGrant, now: i64, set: &mut WriteSet) -> ItemResult {
        let body = g.grant;
        if !body.in_range() {
            return ItemResult::rejected(RejectReason::OutOfRange);
        }
        let hash = body.body_hash();
        if self.known.contains(&hash) {
            return ItemResult::DUPLICATE;
        }
        let pair = (body.buyer, body.client);
        if !self.grants.contains_key(&pair) {
            let clients = self.clients_per_buyer.entry(body.buyer).or_default();
            if *clients >= self.limits.grants_per_buyer {
                return ItemResult::rejected(RejectReason::TooManyGrants);
            }
            *clients += 1;
        }
        self.known.insert(hash);
        let position = self.provisional_position();
        self.grants.entry(pair).or_default().push(Stored {
            body,
            body_hash: hash,
            position,
        });
        set.ops.push(Op::Grant(g, hash));
        let (bindings, grants, clock) = (&self.bindings, &self.grants, &self.clock);
        let released = self
            .held
            .release_pair(&pair, |r| parties_known(bindings, grants, clock, r));
        self.store_released(released, now, set);
        ItemResult::ACCEPTED
    }

    /// Stores receipts released from the held area (their senders were answered `held`).
    fn store_released(
        &mut self,
        released: Vec<crate::held::HeldReceipt>,
        now: i64,
        set: &mut WriteSet,
    ) {
        for (r, hash) in released {
            let result = self.receipt(r, hash, now, set);
            m::released(&result);
        }
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
        // A session is stored once its binding and grant are here; until then it waits in
        // memory. (A stored session's later receipts are stored whatever arrived since.)
        if !self.sessions.contains_key(&key) {
            let binding = self
                .bindings
                .get(&r.node)
                .and_then(|v| latest(v, r.epoch))
                .filter(|b| !b.expired_for(self.clock.start(r.epoch)));
            let grant = self
                .grants
                .get(&(r.buyer, r.client))
                .and_then(|v| latest(v, r.epoch));
            let missing = match (binding, grant) {
                (None, _) => Some(RejectReason::UnknownBinding),
                (_, None) => Some(RejectReason::UnknownGrant),
                (Some(b), Some(g)) => {
                    // Known, and it can never count: refused, not stored.
                    if g.expires_at <= self.clock.start(r.epoch) {
                        return ItemResult::rejected(RejectReason::GrantExpired);
                    }
                    if b.operator == g.buyer {
                        return ItemResult::rejected(RejectReason::SelfDealing);
                    }
                    None
                }
            };
            if let Some(reason) = missing {
                return match self.held.hold(signed, hash) {
                    // Sent again while it waits: still only held (a `duplicate` would tell the
                    // sender it is stored).
                    Hold::Held | Hold::Duplicate => ItemResult::held(reason),
                    Hold::Superseded => ItemResult::SUPERSEDED,
                    Hold::Full => ItemResult::rejected(RejectReason::HeldFull),
                };
            }
        }
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
        // Provisional: will the buyer's credits cover it, as far as this oracle knows now?
        let used = self.buyer_bytes.entry((r.epoch, r.buyer)).or_default();
        *used = used.saturating_add(r.cumulative_bytes.saturating_sub(previous_bytes));
        if let Some(available) = self.available_credits.get(&r.buyer) {
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

/// Whether a held receipt's binding (in force) and grant are both here now.
fn parties_known(
    bindings: &HashMap<Key, Vec<Stored<NodeBinding>>>,
    grants: &HashMap<(Key, Key), Vec<Stored<ClientGrant>>>,
    clock: &EpochClock,
    r: &SignedReceipt,
) -> bool {
    let r = &r.receipt;
    bindings
        .get(&r.node)
        .and_then(|v| latest(v, r.epoch))
        .is_some_and(|b| !b.expired_for(clock.start(r.epoch)))
        && grants
            .get(&(r.buyer, r.client))
            .and_then(|v| latest(v, r.epoch))
            .is_some()
}
