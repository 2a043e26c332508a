//! The same submission to several oracles at once.

use crate::client::{ClientConfig, OracleClient};
use crate::error::{ClientError, SubmitError};
use backhaul_protocol::api::{BatchResponse, ItemStatus};
use backhaul_protocol::{SignedBinding, SignedGrant, SignedReceipt};
use futures::future::join_all;
use std::future::Future;

/// Several oracles, each sent everything.
///
/// Every call goes to all oracles concurrently and waits for all of them (each bounded by its
/// own retry policy); one oracle failing does not affect the others, and the report says which
/// failed and why.
#[derive(Clone, Debug)]
pub struct Fanout {
    clients: Vec<OracleClient>,
}

/// One oracle's answer.
#[derive(Debug)]
pub struct OracleOutcome<T, E = SubmitError> {
    /// The oracle's base URL.
    pub oracle: String,
    pub result: Result<T, E>,
}

/// Every oracle's answer to one submission, in the order of [`Fanout::clients`].
#[derive(Debug)]
pub struct FanoutReport {
    pub outcomes: Vec<OracleOutcome<BatchResponse>>,
}

impl FanoutReport {
    /// How many oracles answered every item.
    pub fn succeeded(&self) -> usize {
        self.outcomes.iter().filter(|o| o.result.is_ok()).count()
    }

    pub fn all_succeeded(&self) -> bool {
        self.outcomes.iter().all(|o| o.result.is_ok())
    }

    /// The oracles that failed, with why.
    pub fn failures(&self) -> impl Iterator<Item = (&str, &SubmitError)> {
        self.outcomes
            .iter()
            .filter_map(|o| o.result.as_ref().err().map(|e| (o.oracle.as_str(), e)))
    }

    /// For each submitted item, how many oracles hold it now (answered `accepted` or
    /// `duplicate`), counting the items a failed oracle answered before failing.
    pub fn stored_by(&self, items: usize) -> Vec<usize> {
        let mut counts = vec![0usize; items];
        for outcome in &self.outcomes {
            let results = match &outcome.result {
                Ok(batch) => &batch.results,
                Err(e) => &e.completed,
            };
            for (count, r) in counts.iter_mut().zip(results) {
                if matches!(r.status, ItemStatus::Accepted | ItemStatus::Duplicate) {
                    *count += 1;
                }
            }
        }
        counts
    }
}

impl Fanout {
    pub fn new(clients: Vec<OracleClient>) -> Self {
        Fanout { clients }
    }

    /// One client per URL, all with `config`, sharing one connection pool.
    pub fn from_urls<I, S>(urls: I, config: ClientConfig) -> Result<Self, ClientError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .build()
            .map_err(ClientError::Build)?;
        let clients = urls
            .into_iter()
            .map(|u| OracleClient::with_http_client(u.as_ref(), config.clone(), http.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Fanout { clients })
    }

    pub fn clients(&self) -> &[OracleClient] {
        &self.clients
    }

    pub async fn submit_bindings(&self, items: &[SignedBinding]) -> FanoutReport {
        self.submit(|c| c.submit_bindings(items)).await
    }

    pub async fn submit_grants(&self, items: &[SignedGrant]) -> FanoutReport {
        self.submit(|c| c.submit_grants(items)).await
    }

    pub async fn submit_receipts(&self, items: &[SignedReceipt]) -> FanoutReport {
        self.submit(|c| c.submit_receipts(items)).await
    }

    /// Every oracle's `/health`.
    pub async fn health(&self) -> Vec<OracleOutcome<(), ClientError>> {
        self.each(|c| c.health()).await
    }

    async fn submit<'a, F, Fut>(&'a self, call: F) -> FanoutReport
    where
        F: Fn(&'a OracleClient) -> Fut,
        Fut: Future<Output = Result<BatchResponse, SubmitError>>,
    {
        let outcomes = self.each(call).await;
        for o in &outcomes {
            if let Err(e) = &o.result {
                tracing::warn!(oracle = %o.oracle, error = %e, "oracle failed the submission");
            }
        }
        FanoutReport { outcomes }
    }

    async fn each<'a, F, Fut, T, E>(&'a self, call: F) -> Vec<OracleOutcome<T, E>>
    where
        F: Fn(&'a OracleClient) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let results = join_all(self.clients.iter().map(&call)).await;
        self.clients
            .iter()
            .zip(results)
            .map(|(c, result)| OracleOutcome {
                oracle: c.base_url().to_string(),
                result,
            })
            .collect()
    }
}
