//! Closing epochs: agree with the other oracles on the epoch's input ([`crate::agreement`]),
//! run the deterministic close over it with what the chain says, store and publish the dataset,
//! and keep the latest trees in memory for proofs. Also: closing again when the agreed input
//! changed after a round without quorum, and adopting epochs finalized without this oracle (or
//! finalized with another dataset than this oracle's, before the next epoch builds on them).

use crate::agreement::{Agreement, AgreementError, Synced};
use crate::chain::{ChainError, ChainView};
use crate::clock::EpochClock;
use crate::db::{self, DbError};
use crate::ingest::Job;
use crate::metrics as m;
use crate::storage::{Store, StoreError};
use backhaul_close::{Aggregator, ChainInputs, CloseContext, CloseError, StoredReceipt};
use backhaul_core::merkle::TreeKind;
use backhaul_core::tree::{Entry, EpochTree};
use backhaul_protocol::dataset::{hex, key_from_b58, Dataset};
use backhaul_protocol::input::{EpochInput, InputManifest};
use backhaul_protocol::{Deployment, Key};
use sqlx::AnyPool;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

/// A closed epoch held in memory: its dataset and both trees, for serving proofs.
#[derive(Debug)]
pub struct ClosedEpoch {
    pub dataset: Dataset,
    pub bytes: Vec<u8>,
    pub hash: [u8; 32],
    pub closed_at: i64,
    pub rewards: EpochTree,
    pub usage: EpochTree,
}

impl ClosedEpoch {
    /// Rebuilds both trees from a dataset's leaves.
    pub fn from_bytes(bytes: Vec<u8>, closed_at: i64) -> Result<Self, CloseFailure> {
        let dataset =
            Dataset::from_bytes(&bytes).map_err(|e| CloseFailure::Corrupt(e.to_string()))?;
        let config =
            key_from_b58(&dataset.config).ok_or_else(|| CloseFailure::Corrupt("config".into()))?;
        let leaf = |account: &str, cumulative: u64| -> Result<Entry, CloseFailure> {
            Ok(Entry {
                account: key_from_b58(account)
                    .ok_or_else(|| CloseFailure::Corrupt(account.into()))?,
                cumulative,
            })
        };
        let rewards = dataset
            .rewards
            .leaves
            .iter()
            .map(|l| leaf(&l.operator, l.cumulative))
            .collect::<Result<_, _>>()?;
        let usage = dataset
            .usage
            .leaves
            .iter()
            .map(|l| leaf(&l.buyer, l.cumulative))
            .collect::<Result<_, _>>()?;
        let rewards = EpochTree::build(TreeKind::Reward, &config, dataset.epoch, rewards)
            .map_err(|e| CloseFailure::Corrupt(e.to_string()))?;
        let usage = EpochTree::build(TreeKind::Usage, &config, dataset.epoch, usage)
            .map_err(|e| CloseFailure::Corrupt(e.to_string()))?;
        if hex(&rewards.root) != dataset.rewards.root || hex(&usage.root) != dataset.usage.root {
            return Err(CloseFailure::Corrupt(format!(
                "epoch {}: the leaves do not give the recorded roots",
                dataset.epoch
            )));
        }
        let hash = backhaul_core::merkle::sha256v(&[&bytes]);
        Ok(ClosedEpoch {
            dataset,
            bytes,
            hash,
            closed_at,
            rewards,
            usage,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CloseFailure {
    #[error("epoch {epoch} cannot close yet: {why}")]
    NotReady { epoch: u64, why: String },
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("reading the chain failed: {0}")]
    Chain(#[from] ChainError),
    #[error(transparent)]
    Close(#[from] CloseError),
    #[error("a stored dataset is corrupt: {0}")]
    Corrupt(String),
    #[error("publishing failed: {0}")]
    Publish(#[from] StoreError),
    #[error("the ingest writer has stopped")]
    WriterGone,
    #[error(transparent)]
    Agreement(#[from] AgreementError),
}

/// Closes epochs and keeps the latest one in memory.
pub struct Closer {
    pub pool: AnyPool,
    pub chain: Arc<dyn ChainView>,
    pub deployment: Deployment,
    pub clock: EpochClock,
    /// Where datasets and agreed inputs are published.
    pub store: Arc<dyn Store>,
    /// The epoch and size of the dataset last published or found published, by this process.
    pub published: std::sync::Mutex<Option<(u64, u64)>>,
    /// The epoch last closed here and the manifests its agreed input merged.
    pub counted: std::sync::Mutex<Option<(u64, Vec<InputManifest>)>>,
    /// The current epoch's rate limit, as last read from the chain: ingest refuses receipts
    /// faster than it at once (the close judges each epoch by its own parameters anyway).
    pub max_rate_bytes_per_sec: std::sync::atomic::AtomicU64,
    pub writer: mpsc::Sender<Job>,
    pub agreement: Agreement,
    pub latest: RwLock<Option<Arc<ClosedEpoch>>>,
    /// Epochs up to this one are pruned (by this process; see [`crate::pruning`]).
    pub pruned: std::sync::Mutex<Option<u64>>,
}

impl Closer {
    /// The latest closed epoch in memory.
    pub fn latest(&self) -> Option<Arc<ClosedEpoch>> {
        self.latest.read().ok().and_then(|l| l.clone())
    }

    /// Loads the latest closed epoch from the database (at startup).
    pub async fn load_latest(&self) -> Result<(), CloseFailure> {
        if let Some(&epoch) = db::closed_epochs(&self.pool).await?.last() {
            if let Some((bytes, closed_at)) = db::dataset(&self.pool, epoch).await? {
                self.set_latest(Arc::new(ClosedEpoch::from_bytes(bytes, closed_at)?));
            }
        }
        Ok(())
    }

    fn set_latest(&self, closed: Arc<ClosedEpoch>) {
        if let Ok(mut l) = self.latest.write() {
            if l.as_ref()
                .is_none_or(|c| c.dataset.epoch <= closed.dataset.epoch)
            {
                *l = Some(closed);
            }
        }
    }

    /// The next epoch to close: one past the last closed; an oracle that has closed nothing
    /// starts from epoch 0, adopting every finalized epoch from its peers (their bindings and
    /// grants are the state later closes read).
    pub async fn next_epoch(&self) -> Result<u64, CloseFailure> {
        match db::closed_epochs(&self.pool).await?.last() {
            Some(e) => Ok(e.saturating_add(1)),
            None => Ok(0),
        }
    }

    /// Closes `epoch` if it can: its end plus the grace period has passed, the previous epoch is
    /// finalized on-chain, its ledger is sealed, and this oracle holds the input of every oracle
    /// of the set (or has waited long enough for the missing ones). An epoch the chain finalized
    /// without this oracle is adopted from its peers instead. Closing an already closed epoch
    /// returns the stored dataset ([`Closer::refresh`] closes it again if its input changed).
    pub async fn close(&self, epoch: u64, now: i64) -> Result<Arc<ClosedEpoch>, CloseFailure> {
        if let Some((bytes, closed_at)) = db::dataset(&self.pool, epoch).await? {
            return Ok(Arc::new(ClosedEpoch::from_bytes(bytes, closed_at)?));
        }
        let not_ready = |why: String| CloseFailure::NotReady { epoch, why };
        let config = self.chain.config().await?;
        if config.next_epoch > epoch {
            return self.adopt(epoch, now).await;
        }
        let grace = config.params_for(epoch).consensus.grace_secs;
        let ready_at = self
            .clock
            .end(epoch)
            .saturating_add(i64::try_from(grace).unwrap_or(i64::MAX));
        if now < ready_at {
            return Err(not_ready(format!(
                "it ends at {} and late receipts are taken until {ready_at}",
                self.clock.end(epoch)
            )));
        }
        let inputs = self.chain.inputs(epoch).await?;
        if inputs.next_epoch != epoch {
            return Err(not_ready(format!(
                "epoch {} is not finalized on-chain yet; the budget depends on it",
                inputs.next_epoch
            )));
        }
        if !inputs.ledger_sealed {
            return Err(not_ready(
                "its ledger is not sealed on-chain yet: send seal_epoch".into(),
            ));
        }
        // Build on the previous epoch as the chain finalized it, not as this oracle closed it.
        if let Some(previous) = epoch.checked_sub(1) {
            self.follow_finalized(previous, now).await?;
        }
        // From here on no receipt for this epoch is taken: this oracle's input is fixed.
        let (tx, rx) = oneshot::channel();
        self.writer
            .send(Job::CloseThrough(epoch, tx))
            .await
            .map_err(|_| CloseFailure::WriterGone)?;
        rx.await.map_err(|_| CloseFailure::WriterGone)?;
        self.agreement.hold(epoch).await?;
        let oracles = oracle_keys(&config);
        let synced = self.agreement.sync(epoch, &oracles).await?;
        m::missing_peers(synced.missing.len());
        if !synced.missing.is_empty() && !self.agreement.waited(epoch) {
            return Err(not_ready(format!(
                "waiting for the inputs of {} oracle(s) of the set",
                synced.missing.len()
            )));
        }
        if synced.counted.is_empty() {
            return Err(not_ready(
                "no oracle's input is here yet (this oracle signs none without a keypair)".into(),
            ));
        }
        if !synced.missing.is_empty() {
            tracing::info!(
                epoch,
                missing = synced.missing.len(),
                "closing without the inputs of some oracles; a later round picks them up if they matter"
            );
        }
        let agreed = self.agreement.agreed(epoch, &synced).await?;
        let closed = self.close_over(epoch, &inputs, agreed, now).await?;
        self.remember_counted(epoch, &synced);
        Ok(closed)
    }

    /// Records which manifests the latest close of `epoch` merged.
    fn remember_counted(&self, epoch: u64, synced: &Synced) {
        if let Ok(mut c) = self.counted.lock() {
            *c = Some((epoch, synced.counted.clone()));
        }
    }

    /// Makes the stored dataset of `previous` (a finalized epoch) the one the chain finalized:
    /// an oracle whose own close of it lost the vote (it dissented, and the quorum finalized
    /// another dataset) adopts the finalized dataset and its agreed input from its peers, as an
    /// oracle that lagged does. Epochs build on the previous epoch's cumulative amounts, so a
    /// close over any other previous dataset could never match the chain's totals. Returns
    /// whether it adopted one; a view of the chain without epoch records keeps the stored one.
    async fn follow_finalized(&self, previous: u64, now: i64) -> Result<bool, CloseFailure> {
        let Some(record) = self.chain.epoch_record(previous).await? else {
            return Ok(false);
        };
        if record.status != backhaul::state::EpochStatus::Finalized {
            return Ok(false);
        }
        let expected = record.proposal.dataset_hash;
        let stored = db::dataset(&self.pool, previous)
            .await?
            .map(|(bytes, _)| backhaul_core::merkle::sha256v(&[&bytes]));
        if stored == Some(expected) {
            return Ok(false);
        }
        tracing::warn!(
            epoch = previous,
            finalized = %hex(&expected),
            stored = %stored.map(|h| hex(&h)).unwrap_or_default(),
            "the chain finalized another dataset than this oracle's; adopting it before closing \
             the next epoch"
        );
        self.adopt(previous, now).await?;
        Ok(true)
    }

    /// Syncs an epoch this oracle closed but the chain has not finalized, and closes it again if
    /// its agreed input changed (a peer's input arrived late, or an oracle was found to have
    /// signed two) or if it was closed over a previous dataset the chain did not finalize: the
    /// submitter calls it before each vote. Returns whether it closed again.
    pub async fn refresh(&self, epoch: u64, now: i64) -> Result<bool, CloseFailure> {
        let Some(stored) = db::input_hash(&self.pool, epoch).await? else {
            return Ok(false);
        };
        let config = self.chain.config().await?;
        if config.next_epoch != epoch {
            return Ok(false);
        }
        let adopted = match epoch.checked_sub(1) {
            Some(previous) => self.follow_finalized(previous, now).await?,
            None => false,
        };
        let synced = self.agreement.sync(epoch, &oracle_keys(&config)).await?;
        // The same manifests merge into the same input: only a change of them (or a restart,
        // which forgets them) is worth merging and verifying every item again. The submitter
        // asks at every tick until its vote lands.
        if !adopted
            && self
                .counted
                .lock()
                .ok()
                .is_some_and(|c| *c == Some((epoch, synced.counted.clone())))
        {
            return Ok(false);
        }
        let agreed = self.agreement.agreed(epoch, &synced).await?;
        if !adopted && agreed.hash() == stored {
            self.remember_counted(epoch, &synced);
            return Ok(false);
        }
        let inputs = self.chain.inputs(epoch).await?;
        let closed = self.close_over(epoch, &inputs, agreed, now).await?;
        self.remember_counted(epoch, &synced);
        m::reclosed();
        tracing::info!(
            epoch,
            input_hash = %closed.dataset.input_hash,
            dataset_hash = %hex(&closed.hash),
            "the agreed input changed since the last close; the epoch was closed again"
        );
        Ok(true)
    }

    /// Closes `epoch` over its agreed input: stores the input file, positions its bindings and
    /// grants, runs the pure close, stores and publishes the dataset.
    async fn close_over(
        &self,
        epoch: u64,
        inputs: &ChainInputs,
        agreed: EpochInput,
        now: i64,
    ) -> Result<Arc<ClosedEpoch>, CloseFailure> {
        let started = Instant::now();
        let input_hash = self.agreement.write(&agreed).await?;
        self.publish_input(epoch, &agreed).await?;
        db::position_items(&self.pool, epoch, &agreed.bindings, &agreed.grants).await?;
        let previous = if epoch == 0 {
            None
        } else {
            db::dataset(&self.pool, epoch - 1)
                .await?
                .map(|(b, _)| Dataset::from_bytes(&b))
                .transpose()
                .map_err(|e| CloseFailure::Corrupt(e.to_string()))?
        };
        let dataset = self
            .compute(epoch, inputs, &agreed, input_hash, previous.as_ref())
            .await?;
        drop(agreed);
        let bytes = dataset.to_bytes();
        // Datasets can be large (a row per buyer-operator pair): one copy in memory, not two.
        drop(dataset);
        let hash = backhaul_core::merkle::sha256v(&[&bytes]);
        db::store_dataset(&self.pool, epoch, &bytes, &hash, &input_hash, now).await?;
        // Stored: this is the epoch's dataset from now on, whatever happens to the file below
        // (a failed or interrupted write is redone from the stored copy).
        let closed = Arc::new(ClosedEpoch::from_bytes(bytes, now)?);
        self.set_latest(closed.clone());
        self.publish(epoch, &closed.bytes).await?;
        m::epoch_closed(epoch, started.elapsed().as_secs_f64());
        let dataset = &closed.dataset;
        tracing::info!(
            epoch,
            dataset_hash = %hex(&hash),
            input_hash = %dataset.input_hash,
            reward_root = %dataset.rewards.root,
            usage_root = %dataset.usage.root,
            allocation = dataset.allocation,
            usage_cost = dataset.usage.usage_cost,
            operators = dataset.rewards.leaf_count,
            "epoch closed"
        );
        Ok(closed)
    }

    /// Takes a finalized epoch's dataset and agreed input from a peer, checked against the hash
    /// the chain finalized: how an oracle that lagged, or joined the set late, catches up.
    async fn adopt(&self, epoch: u64, now: i64) -> Result<Arc<ClosedEpoch>, CloseFailure> {
        let not_ready = |why: String| CloseFailure::NotReady { epoch, why };
        let Some(record) = self.chain.epoch_record(epoch).await? else {
            return Err(not_ready(
                "the chain finalized it but its record cannot be read".into(),
            ));
        };
        let expected = record.proposal.dataset_hash;
        let Some((bytes, input)) = self.agreement.fetch_finalized(epoch, &expected).await else {
            return Err(not_ready(
                "the chain finalized it without this oracle and no peer serves its dataset yet"
                    .into(),
            ));
        };
        let input_hash = self.agreement.write(&input).await?;
        self.publish_input(epoch, &input).await?;
        db::position_items(&self.pool, epoch, &input.bindings, &input.grants).await?;
        db::store_dataset(&self.pool, epoch, &bytes, &expected, &input_hash, now).await?;
        let closed = Arc::new(ClosedEpoch::from_bytes(bytes, now)?);
        self.set_latest(closed.clone());
        self.publish(epoch, &closed.bytes).await?;
        m::adopted(epoch);
        tracing::info!(epoch, dataset_hash = %hex(&expected), "adopted the finalized dataset from a peer");
        Ok(closed)
    }

    /// Runs the deterministic close over an agreed input, with the given chain inputs. The
    /// bindings and grants are those positioned at or before the epoch.
    pub async fn compute(
        &self,
        epoch: u64,
        inputs: &ChainInputs,
        agreed: &EpochInput,
        input_hash: [u8; 32],
        previous: Option<&Dataset>,
    ) -> Result<Dataset, CloseFailure> {
        let in_state = |p: Option<u64>| p.is_some_and(|p| p <= epoch);
        let bindings: Vec<_> = db::bindings(&self.pool)
            .await?
            .into_iter()
            .filter(|b| in_state(b.position))
            .map(|b| b.stored(|s| s.binding, epoch))
            .collect();
        let grants: Vec<_> = db::grants(&self.pool)
            .await?
            .into_iter()
            .filter(|g| in_state(g.position))
            .map(|g| g.stored(|s| s.grant, epoch))
            .collect();
        let clients: BTreeSet<Key> = agreed.receipts.iter().map(|r| r.receipt.client).collect();
        let buyers: Vec<Key> = grants
            .iter()
            .filter(|g| clients.contains(&g.body.client))
            .map(|g| g.body.buyer)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let credits: HashMap<_, _> = self.chain.credits(&buyers).await?;
        let ctx = CloseContext {
            deployment: self.deployment,
            epoch,
            epoch_start: self.clock.start(epoch),
            epoch_end: self.clock.end(epoch),
            input_hash,
            params: inputs.params,
            chain: inputs,
            bindings: &bindings,
            grants: &grants,
            credits: &credits,
            previous,
        };
        let mut agg = Aggregator::new(&ctx)?;
        for r in &agreed.receipts {
            agg.push(&StoredReceipt {
                receipt: r.receipt,
                body_hash: r.receipt.body_hash(),
            })?;
        }
        Ok(agg.finish()?)
    }

    /// The published name of `epoch`'s dataset, and of its agreed input.
    pub fn dataset_name(epoch: u64) -> String {
        format!("epoch-{epoch}.json")
    }

    pub fn input_name(epoch: u64) -> String {
        format!("epoch-{epoch}.input")
    }

    /// Publishes the agreed input beside the dataset, as `epoch-<n>.input`.
    async fn publish_input(&self, epoch: u64, input: &EpochInput) -> Result<(), CloseFailure> {
        Ok(self
            .store
            .put(&Self::input_name(epoch), input.to_bytes())
            .await?)
    }

    /// Publishes the dataset, whole or not at all (see [`crate::storage`]).
    async fn publish(&self, epoch: u64, bytes: &[u8]) -> Result<(), CloseFailure> {
        self.store
            .put(&Self::dataset_name(epoch), bytes.to_vec())
            .await?;
        if let Ok(mut p) = self.published.lock() {
            *p = Some((epoch, bytes.len() as u64));
        }
        Ok(())
    }

    /// Makes sure the latest closed epoch's dataset is published: a close interrupted between
    /// storing the dataset and publishing it (a crash, a full disk, a store that was down) left
    /// it missing or partial. The stored copy is the one that counts, so it is published again
    /// from it. Checked once per epoch and process, then remembered.
    pub async fn ensure_published(&self) -> Result<(), CloseFailure> {
        let Some(latest) = self.latest() else {
            return Ok(());
        };
        let epoch = latest.dataset.epoch;
        let expected = latest.bytes.len() as u64;
        if self
            .published
            .lock()
            .ok()
            .is_some_and(|p| *p == Some((epoch, expected)))
        {
            return Ok(());
        }
        let name = Self::dataset_name(epoch);
        let len = self.store.size(&name).await?;
        if len == Some(expected) {
            if let Ok(mut p) = self.published.lock() {
                *p = Some((epoch, expected));
            }
            return Ok(());
        }
        let place = self.store.place();
        match len {
            None => {
                tracing::warn!(epoch, %place, %name, "the dataset is not published; publishing it from the stored dataset")
            }
            Some(len) => {
                tracing::error!(epoch, %place, %name, len, expected, "the published dataset does not match the stored dataset; publishing it again from the stored copy")
            }
        }
        if let Some(hash) = db::input_hash(&self.pool, epoch).await? {
            if let Some(input) = self.agreement.read(&hash).await? {
                self.publish_input(epoch, &input).await?;
            }
        }
        self.publish(epoch, &latest.bytes).await
    }

    /// Closes every epoch that is ready, oldest first; returns how many closed.
    pub async fn close_ready(&self, now: i64) -> usize {
        if let Err(e) = self.ensure_published().await {
            tracing::error!(error = %e, "writing the latest dataset file failed; will retry");
            m::close_error("publish");
        }
        if let Err(e) = self.prune_finalized().await {
            tracing::warn!(error = %e, "pruning the finalized epochs' state failed; will retry");
            m::close_error("prune");
        }
        let mut closed = 0;
        loop {
            let epoch = match self.next_epoch().await {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot tell which epoch to close next");
                    m::close_error("lookup");
                    return closed;
                }
            };
            match self.close(epoch, now).await {
                Ok(_) => closed += 1,
                Err(CloseFailure::NotReady { epoch, why }) => {
                    tracing::debug!(epoch, %why, "epoch not ready to close");
                    return closed;
                }
                Err(e) => {
                    tracing::error!(epoch, error = %e, "closing the epoch failed; will retry");
                    m::close_error("failed");
                    return closed;
                }
            }
        }
    }
}

/// The oracle set's keys.
pub fn oracle_keys(config: &backhaul::state::Config) -> Vec<Key> {
    config.oracles.iter().map(|o| o.to_bytes()).collect()
}
