//! Once an epoch is finalized on-chain and its dataset and agreed input are published, the state
//! that only its close needed goes: its receipts, evidence and manifests, the held input files of
//! every oracle, and the bindings and grants no later close reads (the writer decides which,
//! with `backhaul_close::prunable`). Datasets and agreed inputs stay: proofs, peers that lag and
//! auditors read them.

use crate::close::{CloseFailure, Closer};
use crate::db;
use crate::ingest::Job;
use crate::metrics as m;
use std::collections::HashSet;
use tokio::sync::oneshot;

impl Closer {
    /// Prunes every finalized epoch not pruned yet whose dataset and agreed input are published.
    pub async fn prune_finalized(&self) -> Result<(), CloseFailure> {
        let config = self.chain.config().await?;
        let Some(finalized) = config.next_epoch.checked_sub(1) else {
            return Ok(());
        };
        let done = self.pruned.lock().ok().and_then(|p| *p);
        if done.is_some_and(|p| p >= finalized) {
            return Ok(());
        }
        // Only what this oracle holds the dataset of, published.
        if db::input_hash(&self.pool, finalized).await?.is_none() {
            return Ok(());
        }
        for name in [Self::dataset_name(finalized), Self::input_name(finalized)] {
            if self.store.size(&name).await?.is_none() {
                return Ok(());
            }
        }
        let first = done.map_or(0, |p| p.saturating_add(1));
        let mut held = HashSet::new();
        let mut agreed = HashSet::new();
        for epoch in first..=finalized {
            for m in db::manifests(&self.pool, epoch).await? {
                held.insert(m.manifest.input_hash);
            }
            if let Some(hash) = db::input_hash(&self.pool, epoch).await? {
                agreed.insert(hash);
            }
        }
        let (tx, rx) = oneshot::channel();
        self.writer
            .send(Job::Prune(finalized, tx))
            .await
            .map_err(|_| CloseFailure::WriterGone)?;
        rx.await
            .map_err(|_| CloseFailure::WriterGone)?
            .map_err(|e| CloseFailure::Corrupt(format!("pruning failed: {e}")))?;
        let mut files = 0usize;
        for hash in held.difference(&agreed) {
            if self.agreement.forget(hash).await {
                files += 1;
            }
        }
        if let Ok(mut p) = self.pruned.lock() {
            *p = Some(finalized);
        }
        m::pruned_files(files);
        tracing::debug!(
            epoch = finalized,
            files,
            "held input files of pruned epochs removed"
        );
        Ok(())
    }
}
