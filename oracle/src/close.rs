//! Closing epochs: gather what is stored and what the chain says, run the deterministic close,
//! store and publish the dataset, and keep the latest trees in memory for proofs.

use crate::chain::{ChainError, ChainView};
use crate::clock::EpochClock;
use crate::db::{self, DbError};
use crate::ingest::Job;
use crate::metrics as m;
use backhaul_close::{Aggregator, ChainInputs, CloseContext, CloseError, CloseParams};
use backhaul_core::merkle::TreeKind;
use backhaul_core::tree::{Entry, EpochTree};
use backhaul_protocol::dataset::{hex, key_from_b58, Dataset};
use backhaul_protocol::{Deployment, Key};
use futures::TryStreamExt;
use sqlx::AnyPool;
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
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
    #[error("writing the dataset file {path} failed: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the ingest writer has stopped")]
    WriterGone,
}

/// Closes epochs and keeps the latest one in memory.
pub struct Closer {
    pub pool: AnyPool,
    pub chain: Arc<dyn ChainView>,
    pub deployment: Deployment,
    pub clock: EpochClock,
    pub params: CloseParams,
    pub grace_secs: u64,
    pub datasets_dir: PathBuf,
    pub writer: mpsc::Sender<Job>,
    pub latest: RwLock<Option<Arc<ClosedEpoch>>>,
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

    /// The next epoch to close: one past the last closed, or the chain's next epoch.
    pub async fn next_epoch(&self) -> Result<u64, CloseFailure> {
        match db::closed_epochs(&self.pool).await?.last() {
            Some(e) => Ok(e.saturating_add(1)),
            None => Ok(self.chain.config().await?.next_epoch),
        }
    }

    /// Closes `epoch` if it can: its end plus the grace period has passed, the previous epoch is
    /// finalized on-chain, and its ledger is sealed. Closing an already closed epoch returns the
    /// stored dataset unchanged.
    pub async fn close(&self, epoch: u64, now: i64) -> Result<Arc<ClosedEpoch>, CloseFailure> {
        if let Some((bytes, closed_at)) = db::dataset(&self.pool, epoch).await? {
            return Ok(Arc::new(ClosedEpoch::from_bytes(bytes, closed_at)?));
        }
        let not_ready = |why: String| CloseFailure::NotReady { epoch, why };
        let ready_at = self
            .clock
            .end(epoch)
            .saturating_add(i64::try_from(self.grace_secs).unwrap_or(i64::MAX));
        if now < ready_at {
            return Err(not_ready(format!(
                "it ends at {} and late receipts are taken until {ready_at}",
                self.clock.end(epoch)
            )));
        }
        let inputs = self.chain.inputs(epoch).await?;
        if inputs.next_epoch != epoch {
            return Err(not_ready(if inputs.next_epoch < epoch {
                format!(
                    "epoch {} is not finalized on-chain yet; the budget depends on it",
                    inputs.next_epoch
                )
            } else {
                format!("the chain already finalized it (next epoch {}); import its dataset from the oracle that proposed it", inputs.next_epoch)
            }));
        }
        if !inputs.ledger_sealed {
            return Err(not_ready(
                "its ledger is not sealed on-chain yet: send seal_epoch".into(),
            ));
        }
        let previous = if epoch == 0 {
            None
        } else {
            db::dataset(&self.pool, epoch - 1)
                .await?
                .map(|(b, _)| Dataset::from_bytes(&b))
                .transpose()
                .map_err(|e| CloseFailure::Corrupt(e.to_string()))?
        };
        // From here on no receipt for this epoch is taken.
        let (tx, rx) = oneshot::channel();
        self.writer
            .send(Job::CloseThrough(epoch, tx))
            .await
            .map_err(|_| CloseFailure::WriterGone)?;
        rx.await.map_err(|_| CloseFailure::WriterGone)?;
        let started = Instant::now();
        let dataset = self.compute(epoch, &inputs, previous.as_ref()).await?;
        let bytes = dataset.to_bytes();
        // Datasets can be large (a row per buyer-operator pair): one copy in memory, not two.
        drop(dataset);
        let hash = backhaul_core::merkle::sha256v(&[&bytes]);
        db::store_dataset(&self.pool, epoch, &bytes, &hash, now).await?;
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
            reward_root = %dataset.rewards.root,
            usage_root = %dataset.usage.root,
            allocation = dataset.allocation,
            usage_cost = dataset.usage.usage_cost,
            operators = dataset.rewards.leaf_count,
            "epoch closed"
        );
        Ok(closed)
    }

    /// Runs the deterministic close on what is stored, with the given chain inputs. Receipts are
    /// streamed from the database in (client, session) order, never all held at once.
    pub async fn compute(
        &self,
        epoch: u64,
        inputs: &ChainInputs,
        previous: Option<&Dataset>,
    ) -> Result<Dataset, CloseFailure> {
        let bindings = db::bindings(&self.pool).await?;
        let grants = db::grants(&self.pool).await?;
        let clients: BTreeSet<Key> = db::epoch_clients(&self.pool, epoch)
            .await?
            .into_iter()
            .collect();
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
            params: self.params,
            chain: inputs,
            bindings: &bindings,
            grants: &grants,
            credits: &credits,
            previous,
        };
        let mut agg = Aggregator::new(&ctx)?;
        let mut rows = db::receipts_in_order(&self.pool, epoch);
        while let Some(r) = rows.try_next().await? {
            agg.push(&r)?;
        }
        Ok(agg.finish()?)
    }

    /// The published file of `epoch`'s dataset.
    pub fn dataset_path(&self, epoch: u64) -> PathBuf {
        self.datasets_dir.join(format!("epoch-{epoch}.json"))
    }

    /// Writes the dataset file atomically and durably: a temporary file, synced, renamed over
    /// the final name, then the directory synced. A crash leaves the old state or the new file,
    /// never a partial one.
    async fn publish(&self, epoch: u64, bytes: &[u8]) -> Result<(), CloseFailure> {
        let path = self.dataset_path(epoch);
        let tmp = self.datasets_dir.join(format!(".epoch-{epoch}.json.tmp"));
        let dir = self.datasets_dir.clone();
        let bytes = bytes.to_vec();
        let target = path.clone();
        let written = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            use std::io::Write;
            std::fs::create_dir_all(&dir)?;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            drop(f);
            std::fs::rename(&tmp, &target)?;
            std::fs::File::open(&dir)?.sync_all()
        })
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))
        .and_then(|r| r);
        written.map_err(|source| CloseFailure::File { path, source })
    }

    /// Makes sure the latest closed epoch's file is on disk: a close interrupted between storing
    /// the dataset and writing the file (a crash, a full disk) left it missing or partial. The
    /// stored copy is the one that counts, so the file is written again from it.
    pub async fn ensure_published(&self) -> Result<(), CloseFailure> {
        let Some(latest) = self.latest() else {
            return Ok(());
        };
        let epoch = latest.dataset.epoch;
        let path = self.dataset_path(epoch);
        let len = tokio::fs::metadata(&path).await.ok().map(|m| m.len());
        if len == Some(latest.bytes.len() as u64) {
            return Ok(());
        }
        match len {
            None => {
                tracing::warn!(epoch, path = %path.display(), "the dataset file is missing; writing it from the stored dataset")
            }
            Some(len) => {
                tracing::error!(epoch, path = %path.display(), len, expected = latest.bytes.len(), "the dataset file does not match the stored dataset; writing it again from the stored copy")
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
