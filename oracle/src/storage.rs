//! Where the oracle publishes what anyone may fetch: each epoch's dataset and the agreed input it
//! was closed over. One interface, two places: a folder on this machine (the default,
//! `data_dir/datasets`), or an object store with the S3 API by URL (`publish_url =
//! "s3://bucket/prefix"`, credentials and endpoint from the usual `AWS_*` environment variables),
//! for deployments that outgrow one disk or serve their files from a bucket.
//!
//! A write is whole or absent: the folder writes a temporary file, syncs it and renames it over
//! the name; an object store makes an object visible only once it is complete.

use async_trait::async_trait;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutPayload};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("writing or reading {name} in {place} failed: {reason}")]
    Io {
        name: String,
        place: String,
        reason: String,
    },
    #[error("the publish URL {url:?} is not usable: {reason} (expected s3://bucket[/prefix])")]
    Url { url: String, reason: String },
}

/// Published files by name (`epoch-<n>.json`, `epoch-<n>.input`).
#[async_trait]
pub trait Store: Send + Sync {
    /// Writes `bytes` under `name`, replacing what was there, all or nothing.
    async fn put(&self, name: &str, bytes: Vec<u8>) -> Result<(), StoreError>;
    /// The bytes under `name`, if any.
    async fn get(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// The size of what is under `name`, if anything.
    async fn size(&self, name: &str) -> Result<Option<u64>, StoreError>;
    /// Where the files go, for logs and errors (no credentials).
    fn place(&self) -> String;
}

/// A folder on this machine.
pub struct Folder {
    pub dir: PathBuf,
}

#[async_trait]
impl Store for Folder {
    async fn put(&self, name: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        crate::files::write_atomically(&self.dir, &self.dir.join(name), bytes)
            .await
            .map_err(|e| self.error(name, e))
    }

    async fn get(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match tokio::fs::read(self.dir.join(name)).await {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.error(name, e)),
        }
    }

    async fn size(&self, name: &str) -> Result<Option<u64>, StoreError> {
        match tokio::fs::metadata(self.dir.join(name)).await {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.error(name, e)),
        }
    }

    fn place(&self) -> String {
        self.dir.display().to_string()
    }
}

impl Folder {
    fn error(&self, name: &str, e: std::io::Error) -> StoreError {
        StoreError::Io {
            name: name.into(),
            place: self.place(),
            reason: e.to_string(),
        }
    }
}

/// An object store with the S3 API.
pub struct Bucket {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    url: String,
}

impl Bucket {
    /// `s3://bucket[/prefix][?endpoint=…&region=…&allow_http=true]`; credentials, and whatever
    /// the URL does not say, come from the environment (`AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT`, `AWS_ALLOW_HTTP`).
    pub fn open(url: &str) -> Result<Bucket, StoreError> {
        let bad = |reason: String| StoreError::Url {
            url: url.into(),
            reason,
        };
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| bad("only s3:// URLs are supported".into()))?;
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(bad("no bucket".into()));
        }
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            builder = match k {
                "endpoint" => builder.with_endpoint(v),
                "region" => builder.with_region(v),
                "allow_http" => builder.with_allow_http(v == "true"),
                other => {
                    return Err(bad(format!(
                        "unknown option {other:?} (endpoint, region and allow_http are)"
                    )))
                }
            };
        }
        let store = builder.build().map_err(|e| bad(e.to_string()))?;
        Ok(Bucket {
            store: Arc::new(store),
            prefix: prefix.trim_matches('/').to_string(),
            // No query: it names the place, and never holds credentials anyway.
            url: format!("s3://{bucket}/{}", prefix.trim_matches('/')),
        })
    }

    fn path(&self, name: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(name)
        } else {
            ObjectPath::from(format!("{}/{name}", self.prefix))
        }
    }

    fn error(&self, name: &str, e: object_store::Error) -> StoreError {
        StoreError::Io {
            name: name.into(),
            place: self.url.clone(),
            reason: e.to_string(),
        }
    }
}

#[async_trait]
impl Store for Bucket {
    async fn put(&self, name: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.store
            .put(&self.path(name), PutPayload::from(bytes))
            .await
            .map(|_| ())
            .map_err(|e| self.error(name, e))
    }

    async fn get(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self.store.get(&self.path(name)).await {
            Ok(r) => r
                .bytes()
                .await
                .map(|b| Some(b.to_vec()))
                .map_err(|e| self.error(name, e)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error(name, e)),
        }
    }

    async fn size(&self, name: &str) -> Result<Option<u64>, StoreError> {
        match self.store.head(&self.path(name)).await {
            Ok(m) => Ok(Some(m.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error(name, e)),
        }
    }

    fn place(&self) -> String {
        self.url.clone()
    }
}

/// The store the settings name: the object store at `url`, or else the folder `dir`.
pub fn open(url: Option<&str>, dir: PathBuf) -> Result<Arc<dyn Store>, StoreError> {
    match url {
        Some(u) => Ok(Arc::new(Bucket::open(u)?)),
        None => Ok(Arc::new(Folder { dir })),
    }
}
