//! One oracle's HTTP API (`docs/api.md`).

use crate::error::{ClientError, SubmitError};
use crate::retry::{parse_retry_after, RetryPolicy};
use backhaul_protocol::api::{
    AdvertEntry, BatchResponse, EpochSummary, ErrorResponse, ItemResult, ProofResponse,
    MAX_ADVERTS_PER_REQUEST, MAX_BINDINGS_PER_REQUEST, MAX_GRANTS_PER_REQUEST,
    MAX_RECEIPTS_PER_REQUEST,
};
use backhaul_protocol::dataset::b58;
use backhaul_protocol::{Key, SignedBinding, SignedGrant, SignedReceipt};
use borsh::BorshSerialize;
use reqwest::header::{HeaderMap, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use std::time::{Duration, Instant};

/// The content type of ingest bodies.
pub const OCTET_STREAM: &str = "application/octet-stream";

/// How an [`OracleClient`] talks to its oracle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientConfig {
    /// Time allowed to open a connection.
    pub connect_timeout: Duration,
    /// Time allowed for one attempt, from sending to the last byte of the answer.
    pub request_timeout: Duration,
    /// Retries of connection errors, timeouts, `429`, `502`, `503` and `504`.
    pub retry: RetryPolicy,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
        }
    }
}

/// A client of one oracle.
///
/// Ingest calls split their items into requests of at most the API's per-request limits, send
/// them one after the other and return one result per item, in order. Every request is retried
/// on connection errors, timeouts, `429` (waiting what `Retry-After` asks), `502`, `503` and
/// `504`, within [`RetryPolicy`]; `400`, `413` and `415` are returned at once with the oracle's
/// error message. Retrying an ingest request is safe: items the oracle already stored come back
/// `duplicate`.
#[derive(Clone, Debug)]
pub struct OracleClient {
    base: Url,
    http: reqwest::Client,
    config: ClientConfig,
}

impl OracleClient {
    /// A client of the oracle at `base_url` (`https://oracle.example` or with a path prefix,
    /// `https://example.org/backhaul/`), with the default configuration.
    pub fn new(base_url: &str) -> Result<Self, ClientError> {
        Self::with_config(base_url, ClientConfig::default())
    }

    pub fn with_config(base_url: &str, config: ClientConfig) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .build()
            .map_err(ClientError::Build)?;
        Self::with_http_client(base_url, config, http)
    }

    /// Shares an existing `reqwest::Client` (its connection pool) among several oracles.
    pub fn with_http_client(
        base_url: &str,
        config: ClientConfig,
        http: reqwest::Client,
    ) -> Result<Self, ClientError> {
        Ok(OracleClient {
            base: parse_base(base_url)?,
            http,
            config,
        })
    }

    /// The oracle's base URL (always ending in `/`).
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// `POST /v1/bindings`, in requests of at most [`MAX_BINDINGS_PER_REQUEST`] items.
    pub async fn submit_bindings(
        &self,
        items: &[SignedBinding],
    ) -> Result<BatchResponse, SubmitError> {
        self.submit("v1/bindings", items, MAX_BINDINGS_PER_REQUEST)
            .await
    }

    /// `POST /v1/grants`, in requests of at most [`MAX_GRANTS_PER_REQUEST`] items.
    pub async fn submit_grants(&self, items: &[SignedGrant]) -> Result<BatchResponse, SubmitError> {
        self.submit("v1/grants", items, MAX_GRANTS_PER_REQUEST)
            .await
    }

    /// `POST /v1/receipts`, in requests of at most [`MAX_RECEIPTS_PER_REQUEST`] items.
    pub async fn submit_receipts(
        &self,
        items: &[SignedReceipt],
    ) -> Result<BatchResponse, SubmitError> {
        self.submit("v1/receipts", items, MAX_RECEIPTS_PER_REQUEST)
            .await
    }

    /// `POST /v1/adverts`, in requests of at most [`MAX_ADVERTS_PER_REQUEST`] items.
    pub async fn submit_adverts(
        &self,
        items: &[backhaul_protocol::advert::SignedAdvert],
    ) -> Result<BatchResponse, SubmitError> {
        self.submit("v1/adverts", items, MAX_ADVERTS_PER_REQUEST)
            .await
    }

    /// `GET /v1/adverts`: a page of the directory, nodes whose key is above `after`, by key.
    /// The oracle vouches for nothing: check each advert's signature ([`AdvertEntry::signed`]).
    pub async fn adverts(
        &self,
        after: Option<&Key>,
        limit: usize,
    ) -> Result<Vec<AdvertEntry>, ClientError> {
        let mut url = self.endpoint("v1/adverts")?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(k) = after {
                q.append_pair("after", &b58(k));
            }
            q.append_pair("limit", &limit.to_string());
        }
        let body = self
            .execute(Method::GET, &url, None, &self.config.retry)
            .await?;
        decode_json(&url, &body)
    }

    /// `GET /v1/proofs/operator/{operator}`: the operator's latest reward leaf and proof, or
    /// `None` when the oracle has none.
    pub async fn operator_proof(
        &self,
        operator: &Key,
    ) -> Result<Option<ProofResponse>, ClientError> {
        self.proof("operator", operator).await
    }

    /// `GET /v1/proofs/buyer/{buyer}`: the buyer's latest usage leaf and proof, or `None`.
    pub async fn buyer_proof(&self, buyer: &Key) -> Result<Option<ProofResponse>, ClientError> {
        self.proof("buyer", buyer).await
    }

    /// `GET /v1/epochs`: the closed epochs.
    pub async fn epochs(&self) -> Result<Vec<EpochSummary>, ClientError> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Epochs {
            List(Vec<EpochSummary>),
            Wrapped { epochs: Vec<EpochSummary> },
        }
        let url = self.endpoint("v1/epochs")?;
        let body = self
            .execute(Method::GET, &url, None, &self.config.retry)
            .await?;
        match decode_json::<Epochs>(&url, &body)? {
            Epochs::List(list) | Epochs::Wrapped { epochs: list } => Ok(list),
        }
    }

    /// `GET /v1/epochs/{epoch}/dataset`: the epoch's canonical dataset bytes, unparsed (their
    /// sha256 is the on-chain `dataset_hash`). An epoch the oracle has not closed is
    /// [`ClientError::NotFound`].
    pub async fn dataset(&self, epoch: u64) -> Result<Vec<u8>, ClientError> {
        let url = self.endpoint(&format!("v1/epochs/{epoch}/dataset"))?;
        self.execute(Method::GET, &url, None, &self.config.retry)
            .await
    }

    /// `GET /v1/epochs/{epoch}/input`: the agreed input the epoch's dataset was closed over
    /// (its sha256 is the dataset's `input_hash`; `backhaul_protocol::input::EpochInput`).
    pub async fn agreed_input(&self, epoch: u64) -> Result<Vec<u8>, ClientError> {
        let url = self.endpoint(&format!("v1/epochs/{epoch}/input"))?;
        self.execute(Method::GET, &url, None, &self.config.retry)
            .await
    }

    /// `GET /health`, once, without retries: `Ok` when the oracle answers `2xx`.
    pub async fn health(&self) -> Result<(), ClientError> {
        let url = self.endpoint("health")?;
        self.execute(Method::GET, &url, None, &RetryPolicy::none())
            .await
            .map(|_| ())
    }

    async fn proof(&self, kind: &str, key: &Key) -> Result<Option<ProofResponse>, ClientError> {
        let url = self.endpoint(&format!("v1/proofs/{kind}/{}", b58(key)))?;
        match self
            .execute(Method::GET, &url, None, &self.config.retry)
            .await
        {
            Ok(body) => decode_json(&url, &body).map(Some),
            Err(ClientError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn submit<T: BorshSerialize>(
        &self,
        path: &str,
        items: &[T],
        limit: usize,
    ) -> Result<BatchResponse, SubmitError> {
        let total = items.len();
        let fail = |completed, error| SubmitError {
            completed,
            total,
            error,
        };
        let url = self.endpoint(path).map_err(|e| fail(Vec::new(), e))?;
        let mut results: Vec<ItemResult> = Vec::with_capacity(total);
        for chunk in chunks(items, limit) {
            match self.submit_chunk(&url, chunk).await {
                Ok(answered) => results.extend(answered),
                Err(error) => return Err(fail(results, error)),
            }
        }
        Ok(BatchResponse { results })
    }

    async fn submit_chunk<T: BorshSerialize>(
        &self,
        url: &Url,
        chunk: &[T],
    ) -> Result<Vec<ItemResult>, ClientError> {
        let body = borsh::to_vec(chunk).map_err(ClientError::Encode)?;
        tracing::debug!(%url, items = chunk.len(), bytes = body.len(), "submitting");
        let answer = self
            .execute(Method::POST, url, Some(body), &self.config.retry)
            .await?;
        let response: BatchResponse = decode_json(url, &answer)?;
        if response.results.len() != chunk.len() {
            return Err(ClientError::BadResponse {
                url: url.to_string(),
                reason: format!(
                    "{} results for {} items",
                    response.results.len(),
                    chunk.len()
                ),
            });
        }
        Ok(response.results)
    }

    fn endpoint(&self, path: &str) -> Result<Url, ClientError> {
        self.base.join(path).map_err(|e| ClientError::InvalidUrl {
            url: format!("{}{path}", self.base),
            reason: e.to_string(),
        })
    }

    /// Sends the request until it is answered `2xx` (its body is returned) or the policy gives
    /// up.
    async fn execute(
        &self,
        method: Method,
        url: &Url,
        body: Option<Vec<u8>>,
        policy: &RetryPolicy,
    ) -> Result<Vec<u8>, ClientError> {
        let start = Instant::now();
        let max_attempts = policy.attempts();
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let timeout = if attempt == 1 {
                self.config.request_timeout
            } else {
                self.config
                    .request_timeout
                    .min(policy.max_elapsed.saturating_sub(start.elapsed()))
                    .max(Duration::from_millis(1))
            };
            let (error, retry_after) = match self
                .attempt(method.clone(), url, body.as_ref(), timeout)
                .await
            {
                Ok((status, _, answer)) if status.is_success() => return Ok(answer),
                Ok((status, headers, answer)) => {
                    match classify(url, status, &headers, &answer, attempt) {
                        Classified::Final(e) => return Err(e),
                        Classified::Retry(e, retry_after) => (e, retry_after),
                    }
                }
                Err(e) if e.is_builder() || e.is_redirect() => {
                    return Err(ClientError::Transport {
                        url: url.to_string(),
                        attempts: attempt,
                        source: e,
                    })
                }
                Err(e) => (
                    ClientError::Transport {
                        url: url.to_string(),
                        attempts: attempt,
                        source: e,
                    },
                    None,
                ),
            };
            if attempt >= max_attempts {
                tracing::warn!(%url, attempt, error = %error, "giving up: attempts exhausted");
                return Err(error);
            }
            let delay = policy.delay(attempt, retry_after);
            if start.elapsed().saturating_add(delay) >= policy.max_elapsed {
                tracing::warn!(%url, attempt, ?delay, error = %error, "giving up: out of time");
                return Err(error);
            }
            tracing::warn!(%url, attempt, ?delay, error = %error, "retrying");
            tokio::time::sleep(delay).await;
        }
    }

    async fn attempt(
        &self,
        method: Method,
        url: &Url,
        body: Option<&Vec<u8>>,
        timeout: Duration,
    ) -> Result<(StatusCode, HeaderMap, Vec<u8>), reqwest::Error> {
        let mut request = self.http.request(method, url.clone()).timeout(timeout);
        if let Some(body) = body {
            request = request
                .header(CONTENT_TYPE, OCTET_STREAM)
                .body(body.clone());
        }
        let response = request.send().await?;
        let status = response.status();
        let headers = response.headers().clone();
        let answer = response.bytes().await?;
        Ok((status, headers, answer.to_vec()))
    }
}

enum Classified {
    Final(ClientError),
    Retry(ClientError, Option<Duration>),
}

/// What a non-`2xx` answer means.
fn classify(
    url: &Url,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    attempts: u32,
) -> Classified {
    let url = url.to_string();
    let error = error_message(status, body);
    match status.as_u16() {
        400 => Classified::Final(ClientError::BadRequest { url, error }),
        404 => Classified::Final(ClientError::NotFound { url, error }),
        413 => Classified::Final(ClientError::PayloadTooLarge { url, error }),
        415 => Classified::Final(ClientError::UnsupportedMediaType { url, error }),
        429 => {
            let retry_after = headers
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after);
            Classified::Retry(
                ClientError::RateLimited {
                    url,
                    attempts,
                    retry_after,
                    error,
                },
                retry_after,
            )
        }
        code @ (502..=504) => Classified::Retry(
            ClientError::Unavailable {
                url,
                status: code,
                attempts,
                error,
            },
            None,
        ),
        code => Classified::Final(ClientError::Status {
            url,
            status: code,
            error,
        }),
    }
}

/// The oracle's `ErrorResponse.error`, or the start of the body, or the status's reason.
fn error_message(status: StatusCode, body: &[u8]) -> String {
    if let Ok(e) = serde_json::from_slice::<ErrorResponse>(body) {
        return e.error;
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return status.canonical_reason().unwrap_or("").to_string();
    }
    text.chars().take(300).collect()
}

fn decode_json<T: DeserializeOwned>(url: &Url, body: &[u8]) -> Result<T, ClientError> {
    serde_json::from_slice(body).map_err(|e| ClientError::BadResponse {
        url: url.to_string(),
        reason: format!("body does not decode: {e}"),
    })
}

fn parse_base(base_url: &str) -> Result<Url, ClientError> {
    let invalid = |reason: &str| ClientError::InvalidUrl {
        url: base_url.to_string(),
        reason: reason.to_string(),
    };
    let mut url = Url::parse(base_url).map_err(|e| invalid(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("the scheme must be http or https"));
    }
    if url.cannot_be_a_base() || url.host().is_none() {
        return Err(invalid("not a base URL"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("a base URL carries no query or fragment"));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// `items` in runs of at most `limit` (at least one) items.
pub(crate) fn chunks<T>(items: &[T], limit: usize) -> std::slice::Chunks<'_, T> {
    items.chunks(limit.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_respect_the_limit_and_keep_order() {
        let items: Vec<u32> = (0..2_501).collect();
        let sizes: Vec<usize> = chunks(&items, 1_000).map(<[u32]>::len).collect();
        assert_eq!(sizes, vec![1_000, 1_000, 501]);
        let rejoined: Vec<u32> = chunks(&items, 1_000).flatten().copied().collect();
        assert_eq!(rejoined, items);
        assert_eq!(chunks(&items[..1_000], 1_000).count(), 1);
        assert_eq!(chunks::<u32>(&[], 1_000).count(), 0);
        assert_eq!(chunks(&items[..3], 0).count(), 3);
    }

    #[test]
    fn base_urls_are_normalized() {
        let c = OracleClient::new("http://127.0.0.1:8080").unwrap();
        assert_eq!(c.base_url().as_str(), "http://127.0.0.1:8080/");
        assert_eq!(
            c.endpoint("v1/receipts").unwrap().as_str(),
            "http://127.0.0.1:8080/v1/receipts"
        );
        let c = OracleClient::new("https://example.org/backhaul").unwrap();
        assert_eq!(
            c.endpoint("v1/epochs/7/dataset").unwrap().as_str(),
            "https://example.org/backhaul/v1/epochs/7/dataset"
        );
        assert!(matches!(
            OracleClient::new("ftp://example.org"),
            Err(ClientError::InvalidUrl { .. })
        ));
        assert!(OracleClient::new("not a url").is_err());
        assert!(OracleClient::new("http://example.org/?x=1").is_err());
    }

    #[test]
    fn statuses_are_classified() {
        let url = Url::parse("http://o/v1/receipts").unwrap();
        let h = HeaderMap::new();
        let body = br#"{"error":"body does not decode"}"#;
        for (code, retry) in [
            (400, false),
            (404, false),
            (413, false),
            (415, false),
            (500, false),
            (429, true),
            (502, true),
            (503, true),
            (504, true),
        ] {
            let c = classify(&url, StatusCode::from_u16(code).unwrap(), &h, body, 1);
            let (e, retried) = match c {
                Classified::Final(e) => (e, false),
                Classified::Retry(e, _) => (e, true),
            };
            assert_eq!(retried, retry, "{code}");
            assert_eq!(e.status(), Some(code));
            assert_eq!(e.server_error(), Some("body does not decode"));
        }
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "2".parse().unwrap());
        match classify(&url, StatusCode::TOO_MANY_REQUESTS, &h, b"", 1) {
            Classified::Retry(ClientError::RateLimited { error, .. }, after) => {
                assert_eq!(after, Some(Duration::from_secs(2)));
                assert_eq!(error, "Too Many Requests");
            }
            _ => panic!("429 must be retried"),
        }
    }

    #[test]
    fn error_messages_fall_back_to_the_body() {
        assert_eq!(
            error_message(StatusCode::BAD_REQUEST, b"  plain text  "),
            "plain text"
        );
        assert_eq!(
            error_message(StatusCode::BAD_REQUEST, &[b'x'; 1_000]).len(),
            300
        );
    }
}
