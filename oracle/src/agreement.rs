//! Agreement on each epoch's input (see `docs/agreement.md`).
//!
//! At its cutoff an oracle writes what it holds for the epoch as a content-addressed input file
//! and signs a manifest naming it. It then fetches every peer's manifests (theirs and any they
//! relay) and the files they name, checking each file against its hash and each manifest against
//! its signer, an oracle of the on-chain set. The epoch's agreed input is the union of the files
//! of every oracle that signed exactly one manifest for the epoch, each item's signatures checked
//! again: honest oracles that saw the same manifests close over the same bytes, whatever each
//! of them happened to receive. What a peer withholds from some oracles splits the vote at most
//! once: after a round without quorum every honest oracle syncs again, and what any of them
//! fetched, every other fetches from it.

use crate::db::{self, DbError};
use crate::metrics as m;
use backhaul_protocol::dataset::{hash_from_hex, hex};
use backhaul_protocol::input::{counted_manifests, EpochInput, InputManifest, SignedManifest};
use backhaul_protocol::{Deployment, Key};
use ed25519_dalek::SigningKey;
use sqlx::AnyPool;
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The largest input file fetched from a peer.
const MAX_INPUT_BYTES: usize = 4 << 30;

#[derive(Debug, thiserror::Error)]
pub enum AgreementError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("the input file {path} cannot be read or written: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the stored input file {0} is corrupt: {1}")]
    Corrupt(String, String),
}

/// What a sync found for an epoch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Synced {
    /// The manifests that count (one per oracle that signed exactly one), with their files here.
    pub counted: Vec<InputManifest>,
    /// Oracles of the set whose manifest is missing here, or whose file is.
    pub missing: Vec<Key>,
}

/// Holds, signs, exchanges and merges epoch inputs.
pub struct Agreement {
    pub pool: AnyPool,
    pub deployment: Deployment,
    /// This oracle's key; without it the oracle signs no manifest and closes over its peers'.
    pub signer: Option<SigningKey>,
    /// Base URLs of the other oracles' APIs.
    pub peers: Vec<String>,
    pub http: reqwest::Client,
    /// Where input files are kept, by hash.
    pub dir: PathBuf,
    /// How long to wait for missing peers after this oracle's own cutoff.
    pub wait: Duration,
    held_at: Mutex<HashMap<u64, Instant>>,
    /// Without a key: the hash of the input this oracle holds, by epoch (it closes over it and
    /// its peers' counted inputs, for itself only: it never votes).
    unsigned: Mutex<HashMap<u64, InputManifest>>,
}

impl Agreement {
    pub fn new(
        pool: AnyPool,
        deployment: Deployment,
        signer: Option<SigningKey>,
        peers: Vec<String>,
        dir: PathBuf,
        wait: Duration,
    ) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_default();
        Agreement {
            pool,
            deployment,
            signer,
            peers: peers
                .into_iter()
                .map(|p| p.trim_end_matches('/').to_string())
                .collect(),
            http,
            dir,
            wait,
            held_at: Mutex::new(HashMap::new()),
            unsigned: Mutex::new(HashMap::new()),
        }
    }

    /// This oracle's key, if it signs.
    pub fn me(&self) -> Option<Key> {
        self.signer.as_ref().map(|k| k.verifying_key().to_bytes())
    }

    pub fn path(&self, hash: &[u8; 32]) -> PathBuf {
        self.dir.join(format!("{}.input", hex(hash)))
    }

    /// Removes a stored input file; whether there was one.
    pub async fn forget(&self, hash: &[u8; 32]) -> bool {
        tokio::fs::remove_file(self.path(hash)).await.is_ok()
    }

    /// Reads a stored input file, checking it against its name.
    pub async fn read(&self, hash: &[u8; 32]) -> Result<Option<EpochInput>, AgreementError> {
        let path = self.path(hash);
        let bytes = match tokio::fs::read(&path).await {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(AgreementError::File { path, source }),
        };
        if backhaul_core::merkle::sha256v(&[&bytes]) != *hash {
            return Err(AgreementError::Corrupt(
                path.display().to_string(),
                "its bytes do not hash to its name".into(),
            ));
        }
        EpochInput::from_bytes(&bytes)
            .map(Some)
            .map_err(|e| AgreementError::Corrupt(path.display().to_string(), e.to_string()))
    }

    /// The raw bytes of a stored input file (for serving it).
    pub async fn bytes(&self, hash: &[u8; 32]) -> Option<Vec<u8>> {
        tokio::fs::read(self.path(hash)).await.ok()
    }

    /// Writes an input file under its hash, atomically.
    pub async fn write(&self, input: &EpochInput) -> Result<[u8; 32], AgreementError> {
        let bytes = input.to_bytes();
        let hash = backhaul_core::merkle::sha256v(&[&bytes]);
        let path = self.path(&hash);
        if tokio::fs::metadata(&path).await.is_ok() {
            return Ok(hash);
        }
        crate::files::write_atomically(&self.dir, &path, bytes)
            .await
            .map_err(|source| AgreementError::File { path, source })?;
        Ok(hash)
    }

    /// This oracle's manifest for `epoch`, made once at its cutoff from what it stored: the
    /// epoch's receipts and every binding and grant in no agreed input yet.
    pub async fn hold(&self, epoch: u64) -> Result<Option<SignedManifest>, AgreementError> {
        let me = self.me();
        if let Some(m) = db::manifests(&self.pool, epoch)
            .await?
            .into_iter()
            .find(|m| Some(m.manifest.oracle) == me)
        {
            self.started(epoch);
            return Ok(Some(m));
        }
        let receipts = db::signed_receipts(&self.pool, epoch).await?;
        let bindings = db::bindings(&self.pool).await?;
        let grants = db::grants(&self.pool).await?;
        let input = EpochInput::new(
            self.deployment,
            epoch,
            receipts,
            grants
                .into_iter()
                .filter(|g| g.position.is_none())
                .map(|g| g.signed),
            bindings
                .into_iter()
                .filter(|b| b.position.is_none())
                .map(|b| b.signed),
        );
        self.write(&input).await?;
        let Some(signer) = &self.signer else {
            if let Ok(mut u) = self.unsigned.lock() {
                u.insert(epoch, InputManifest::of([0; 32], &input));
            }
            self.started(epoch);
            return Ok(None);
        };
        let signed = InputManifest::of(signer.verifying_key().to_bytes(), &input)
            .sign(&self.deployment, signer);
        db::store_manifest(&self.pool, &signed).await?;
        self.started(epoch);
        tracing::info!(
            epoch,
            input_hash = %hex(&signed.manifest.input_hash),
            receipts = signed.manifest.receipts,
            grants = signed.manifest.grants,
            bindings = signed.manifest.bindings,
            "this oracle's input for the epoch is fixed and announced"
        );
        Ok(Some(signed))
    }

    fn started(&self, epoch: u64) {
        if let Ok(mut h) = self.held_at.lock() {
            h.entry(epoch).or_insert_with(Instant::now);
        }
    }

    /// Whether the wait for missing peers is over (at once without peers: nothing more can
    /// arrive).
    pub fn waited(&self, epoch: u64) -> bool {
        self.peers.is_empty()
            || self
                .held_at
                .lock()
                .ok()
                .and_then(|h| h.get(&epoch).copied())
                .is_some_and(|t| t.elapsed() >= self.wait)
    }

    /// Fetches every peer's manifests for `epoch` and the files they name; returns which count
    /// and which oracles of `oracles` are still missing. A peer that is down or answers junk is
    /// skipped (and retried at the next sync).
    pub async fn sync(&self, epoch: u64, oracles: &[Key]) -> Result<Synced, AgreementError> {
        for peer in &self.peers {
            if let Err(why) = self.sync_from(peer, epoch, oracles).await {
                tracing::debug!(epoch, peer = %peer, %why, "syncing from a peer failed; retrying later");
                m::agreement_peer_error();
            }
        }
        self.synced(epoch, oracles).await
    }

    /// What is here for `epoch`, without asking peers.
    pub async fn synced(&self, epoch: u64, oracles: &[Key]) -> Result<Synced, AgreementError> {
        let stored = db::manifests(&self.pool, epoch).await?;
        let mut counted = Vec::new();
        if self.signer.is_none() {
            if let Some(m) = self
                .unsigned
                .lock()
                .ok()
                .and_then(|u| u.get(&epoch).copied())
            {
                counted.push(m);
            }
        }
        for m in counted_manifests(&stored, oracles, &self.deployment, epoch) {
            if tokio::fs::metadata(self.path(&m.input_hash)).await.is_ok() {
                counted.push(m);
            }
        }
        let present: BTreeSet<Key> = counted.iter().map(|m| m.oracle).collect();
        // (An unsigned input is under the zero key, which is no oracle's.)
        let missing = oracles
            .iter()
            .filter(|o| !present.contains(*o))
            .copied()
            .collect();
        Ok(Synced { counted, missing })
    }

    async fn sync_from(&self, peer: &str, epoch: u64, oracles: &[Key]) -> Result<(), String> {
        let url = format!("{peer}/v1/epochs/{epoch}/manifests");
        let resp = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("{url} answered {}", resp.status()));
        }
        let list: Vec<String> = resp.json().await.map_err(|e| e.to_string())?;
        let mut wanted = Vec::new();
        for encoded in list.iter().take(4 * oracles.len().max(1)) {
            let Some(bytes) = decode_hex(encoded) else {
                continue;
            };
            let Ok(m) = borsh::from_slice::<SignedManifest>(&bytes) else {
                continue;
            };
            if m.manifest.epoch != epoch
                || !oracles.contains(&m.manifest.oracle)
                || !m.verify(&self.deployment)
            {
                continue;
            }
            db::store_manifest(&self.pool, &m)
                .await
                .map_err(|e| e.to_string())?;
            // The manifest fixes the file's length: nothing longer is read.
            match m.manifest.file_len() {
                Some(len) if len <= MAX_INPUT_BYTES as u64 => {
                    wanted.push((m.manifest.input_hash, len))
                }
                _ => {
                    tracing::warn!(epoch, peer = %peer, "a manifest names an input file too large to fetch");
                }
            }
        }
        for (hash, len) in wanted {
            if tokio::fs::metadata(self.path(&hash)).await.is_ok() {
                continue;
            }
            let url = format!("{peer}/v1/inputs/{}", hex(&hash));
            let resp = self
                .http
                .get(&url)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if !resp.status().is_success() {
                continue;
            }
            let bytes = read_exactly(resp, len)
                .await
                .map_err(|e| format!("{url}: {e}"))?;
            if backhaul_core::merkle::sha256v(&[&bytes]) != hash {
                return Err(format!("{url} does not hash to its name"));
            }
            let input = EpochInput::from_bytes(&bytes).map_err(|e| e.to_string())?;
            input
                .check_for(&self.deployment, epoch)
                .map_err(|e| e.to_string())?;
            self.write(&input).await.map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// The agreed input of `epoch` from the counted manifests: their files merged and every item's
    /// signatures checked. Nothing this oracle stores decides what is in it, so that it is the
    /// same bytes at every oracle that merged the same manifests, whatever each has pruned: a
    /// binding or grant already in an earlier agreed input may appear again (an oracle that
    /// pruned it took it again) and keeps its first position.
    pub async fn agreed(&self, epoch: u64, synced: &Synced) -> Result<EpochInput, AgreementError> {
        let mut held = Vec::with_capacity(synced.counted.len());
        for m in &synced.counted {
            match self.read(&m.input_hash).await? {
                Some(i) if i.check_for(&self.deployment, epoch).is_ok() => held.push(i),
                _ => {}
            }
        }
        let mut agreed = EpochInput::merge(self.deployment, epoch, &held);
        drop(held);
        let dropped = agreed.retain_verified(&self.deployment);
        if dropped > 0 {
            tracing::info!(
                epoch,
                dropped,
                "items in peers' inputs whose signatures do not verify are left out"
            );
        }
        Ok(agreed)
    }

    /// Fetches a finalized epoch's dataset and agreed input from the first peer whose dataset
    /// hashes to `dataset_hash` (the chain's record), for an oracle that lagged or joined late.
    pub async fn fetch_finalized(
        &self,
        epoch: u64,
        dataset_hash: &[u8; 32],
    ) -> Option<(Vec<u8>, EpochInput)> {
        for peer in &self.peers {
            let url = format!("{peer}/v1/epochs/{epoch}/dataset");
            let Ok(resp) = self.http.get(&url).send().await else {
                continue;
            };
            if !resp.status().is_success() {
                continue;
            }
            let Ok(bytes) = resp.bytes().await else {
                continue;
            };
            if backhaul_core::merkle::sha256v(&[&bytes]) != *dataset_hash {
                tracing::warn!(epoch, peer = %peer, "a peer's dataset does not match the finalized hash");
                continue;
            }
            let Ok(dataset) = backhaul_protocol::dataset::Dataset::from_bytes(&bytes) else {
                continue;
            };
            let Some(input_hash) = hash_from_hex(&dataset.input_hash) else {
                continue;
            };
            let url = format!("{peer}/v1/inputs/{}", dataset.input_hash);
            let Ok(resp) = self.http.get(&url).send().await else {
                continue;
            };
            let Ok(input_bytes) = resp.bytes().await else {
                continue;
            };
            if backhaul_core::merkle::sha256v(&[&input_bytes]) != input_hash {
                continue;
            }
            let Ok(input) = EpochInput::from_bytes(&input_bytes) else {
                continue;
            };
            if input.check_for(&self.deployment, epoch).is_err() {
                continue;
            }
            return Some((bytes.to_vec(), input));
        }
        None
    }
}

/// The body of `resp`, which must be exactly `len` bytes: reading stops as soon as it is longer.
async fn read_exactly(mut resp: reqwest::Response, len: u64) -> Result<Vec<u8>, String> {
    if let Some(declared) = resp.content_length().filter(|l| *l != len) {
        return Err(format!(
            "{declared} bytes, but its manifest names a file of {len}"
        ));
    }
    let len = usize::try_from(len).map_err(|_| "too large for this machine".to_string())?;
    let mut bytes = Vec::with_capacity(len.min(64 << 20));
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        if bytes.len() + chunk.len() > len {
            return Err(format!("longer than the {len} bytes its manifest names"));
        }
        bytes.extend_from_slice(&chunk);
    }
    if bytes.len() != len {
        return Err(format!(
            "{} bytes, but its manifest names a file of {len}",
            bytes.len()
        ));
    }
    Ok(bytes)
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.len() > 4096 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::read_exactly;
    use tokio::io::AsyncWriteExt;

    /// Serves one raw HTTP response and returns its URL.
    async fn serve_once(response: &'static [u8]) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            if let Ok((mut c, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = tokio::io::AsyncReadExt::read(&mut c, &mut buf).await;
                let _ = c.write_all(response).await;
            }
        });
        format!("http://{addr}/")
    }

    async fn fetch(response: &'static [u8], len: u64) -> Result<Vec<u8>, String> {
        let resp = reqwest::get(serve_once(response).await).await.unwrap();
        read_exactly(resp, len).await
    }

    #[tokio::test]
    async fn a_peers_file_is_read_only_up_to_the_length_its_manifest_names() {
        let exact = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789";
        assert_eq!(fetch(exact, 10).await.unwrap(), b"0123456789");
        let err = fetch(exact, 4).await.unwrap_err();
        assert!(err.contains("names a file of 4"), "{err}");
        // No length declared: reading stops once the body runs past the manifest's length.
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n01234567\r\n8\r\n89abcdef\r\n0\r\n\r\n";
        let err = fetch(chunked, 10).await.unwrap_err();
        assert!(err.contains("longer than the 10 bytes"), "{err}");
        let short = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n0123\r\n0\r\n\r\n";
        let err = fetch(short, 10).await.unwrap_err();
        assert!(err.contains("4 bytes"), "{err}");
    }
}
