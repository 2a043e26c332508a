//! Where a guardian looks for datasets: the oracles (`--oracle`), and the extra places given
//! with `--datasets-from` (a URL serving `epoch-<n>.json` files or an oracle's API, or a folder).
//! A dataset is looked up by the sha256 the chain holds for it: bytes that hash to anything else
//! are skipped, whoever serves them. What was found is kept by hash (the chain's hashes never
//! change), so each dataset is fetched once.

use crate::context::Context;
use anyhow::{anyhow, bail};
use backhaul_client::OracleClient;
use backhaul_core::merkle::sha256v;
use backhaul_protocol::dataset::hex;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

/// One place to look.
#[derive(Clone, Debug)]
enum Source {
    /// An oracle's API: `GET /v1/epochs/<n>/dataset`.
    Oracle(OracleClient),
    /// A base URL: `<url>/epoch-<n>.json` (a published store), then `<url>/v1/epochs/<n>/dataset`.
    Url(reqwest::Client, String),
    /// A folder: `epoch-<n>.json`, then any `*.json` in it.
    Folder(PathBuf),
}

impl Source {
    fn describe(&self) -> String {
        match self {
            Source::Oracle(c) => c.base_url().as_str().trim_end_matches('/').to_string(),
            Source::Url(_, url) => url.clone(),
            Source::Folder(dir) => dir.display().to_string(),
        }
    }

    /// The candidates this source offers for epoch `epoch`'s dataset: (where, bytes).
    async fn candidates(&self, epoch: u64) -> Vec<(String, Vec<u8>)> {
        match self {
            Source::Oracle(c) => {
                let at = format!("{}/v1/epochs/{epoch}/dataset", self.describe());
                match c.dataset(epoch).await {
                    Ok(bytes) => vec![(at, bytes)],
                    Err(e) => {
                        tracing::debug!(%at, error = %e, "no dataset there");
                        vec![]
                    }
                }
            }
            Source::Url(http, base) => {
                let mut out = vec![];
                for path in [
                    format!("epoch-{epoch}.json"),
                    format!("v1/epochs/{epoch}/dataset"),
                ] {
                    let at = format!("{base}/{path}");
                    match get(http, &at).await {
                        Ok(bytes) => out.push((at, bytes)),
                        Err(e) => tracing::debug!(%at, error = %e, "no dataset there"),
                    }
                }
                out
            }
            Source::Folder(dir) => {
                let mut out = vec![];
                let named = dir.join(format!("epoch-{epoch}.json"));
                if let Ok(bytes) = tokio::fs::read(&named).await {
                    out.push((named.display().to_string(), bytes));
                }
                if let Ok(mut entries) = tokio::fs::read_dir(dir).await {
                    while let Ok(Some(entry)) = entries.next_entry().await {
                        let path = entry.path();
                        if path == named || path.extension().is_none_or(|x| x != "json") {
                            continue;
                        }
                        if let Ok(bytes) = tokio::fs::read(&path).await {
                            out.push((path.display().to_string(), bytes));
                        }
                    }
                }
                out
            }
        }
    }
}

/// GETs `url`'s body, refusing anything but 200.
async fn get(http: &reqwest::Client, url: &str) -> anyhow::Result<Vec<u8>> {
    let resp = http.get(url).send().await?;
    if !resp.status().is_success() {
        bail!("HTTP {}", resp.status());
    }
    Ok(resp.bytes().await?.to_vec())
}

/// A dataset found: its bytes and where they came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub source: String,
    pub bytes: Vec<u8>,
}

/// Every place a guardian looks, and what it found there.
#[derive(Debug)]
pub struct Sources {
    list: Vec<Source>,
    found: Mutex<HashMap<[u8; 32], Found>>,
}

impl Sources {
    /// The context's oracles, then each `--datasets-from` place (an `http(s)://` URL or a
    /// folder), in that order.
    pub fn new(ctx: &Context, extra: &[String]) -> anyhow::Result<Sources> {
        let mut list: Vec<Source> = if ctx.oracles.is_empty() {
            vec![]
        } else {
            ctx.oracle_readers()?
                .into_iter()
                .map(Source::Oracle)
                .collect()
        };
        for place in extra {
            let place = place.trim();
            if place.starts_with("http://") || place.starts_with("https://") {
                list.push(Source::Url(
                    ctx.http.clone(),
                    place.trim_end_matches('/').to_string(),
                ));
            } else {
                let dir = PathBuf::from(place);
                if !dir.is_dir() {
                    bail!(
                        "--datasets-from {place}: neither an http(s):// URL nor a folder that \
                         exists"
                    );
                }
                list.push(Source::Folder(dir));
            }
        }
        if list.is_empty() {
            return Err(anyhow!(
                "a guardian needs the datasets the oracles commit: pass --oracle <URL> (repeat \
                 it) and/or --datasets-from <URL|DIR>"
            ));
        }
        Ok(Sources {
            list,
            found: Mutex::new(HashMap::new()),
        })
    }

    /// Where it looks, in order.
    pub fn describe(&self) -> Vec<String> {
        self.list.iter().map(Source::describe).collect()
    }

    /// Epoch `epoch`'s dataset whose sha256 is `hash`, from the first place that serves it.
    pub async fn find(&self, epoch: u64, hash: &[u8; 32]) -> Option<Found> {
        if let Some(f) = self.found.lock().ok().and_then(|m| m.get(hash).cloned()) {
            return Some(f);
        }
        for source in &self.list {
            for (at, bytes) in source.candidates(epoch).await {
                if sha256v(&[&bytes]) == *hash {
                    let found = Found { source: at, bytes };
                    if let Ok(mut m) = self.found.lock() {
                        m.insert(*hash, found.clone());
                    }
                    return Some(found);
                }
                tracing::debug!(
                    epoch,
                    %at,
                    wanted = %hex(hash),
                    "a dataset that is not the one the chain holds; skipped"
                );
            }
        }
        None
    }
}
