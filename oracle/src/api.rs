//! The HTTP API (see `docs/api.md`).

use crate::clock::now;
use crate::close::{ClosedEpoch, Closer};
use crate::db;
use crate::ingest::Job;
use crate::metrics as m;
use axum::body::{to_bytes, Body};
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use backhaul_protocol::api::*;
use backhaul_protocol::dataset::{hex, key_from_b58};
use backhaul_protocol::{
    verify_each_strict, Deployment, Key, SigCheck, SignedBinding, SignedGrant, SignedReceipt,
    SIGNED_BINDING_LEN, SIGNED_GRANT_LEN, SIGNED_RECEIPT_LEN,
};
use sqlx::{AnyPool, Row};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, Semaphore};

/// What every handler shares.
pub struct ApiState {
    pub pool: AnyPool,
    pub deployment: Deployment,
    pub writer: mpsc::Sender<Job>,
    pub closer: Arc<Closer>,
    pub max_body_bytes: usize,
    /// Per signing key, charged for verified items only.
    pub limiter: KeyLimiter,
    /// Per remote address, charged for every request before its body is read.
    pub addresses: AddressLimiter,
    /// Whether loopback addresses are limited too (`limit_loopback_addresses`).
    pub limit_loopback: bool,
    /// One permit per request being handled (`max_concurrent_requests`).
    pub in_flight: Arc<Semaphore>,
    /// How long a client has to send a request's body.
    pub body_timeout: Duration,
    /// Storage, chain and submitter state for `/health`.
    pub status: Arc<crate::status::Status>,
    /// Closed epochs' summaries by epoch, each for the dataset hash it was computed from.
    pub summaries: SummaryCache,
    /// Buyers known to have (or not to have) an on-chain credit account.
    pub funded: crate::admission::FundedBuyers,
    /// The latest advert of every bound node (`GET /v1/adverts`).
    pub directory: crate::directory::Directory,
}

/// A summary, the stored dataset hash and the close time it was computed for.
type CachedSummary = (Vec<u8>, i64, EpochSummary);

/// The summaries `/v1/epochs` serves, each computed once from its stored dataset: an epoch
/// closed again (a new dataset hash or close time) gets a new entry.
#[derive(Default)]
pub struct SummaryCache {
    entries: Mutex<HashMap<u64, CachedSummary>>,
    parses: AtomicU64,
}

impl SummaryCache {
    /// How many stored datasets the read endpoints have parsed (cache misses).
    pub fn parses(&self) -> u64 {
        self.parses.load(Ordering::Relaxed)
    }

    fn get(&self, epoch: u64, hash: &[u8], closed_at: i64) -> Option<EpochSummary> {
        let entries = self.entries.lock().ok()?;
        entries
            .get(&epoch)
            .filter(|(h, at, _)| h == hash && *at == closed_at)
            .map(|(_, _, s)| s.clone())
    }

    fn put(&self, epoch: u64, hash: Vec<u8>, closed_at: i64, summary: EpochSummary) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.insert(epoch, (hash, closed_at, summary));
        }
    }
}

/// An API error: a status code and a message that says what to do.
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.0.is_client_error() || self.0.is_server_error() {
            m::refused(self.0.as_u16());
        }
        (self.0, Json(ErrorResponse { error: self.1 })).into_response()
    }
}

pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/v1/bindings", post(post_bindings))
        .route("/v1/grants", post(post_grants))
        .route("/v1/receipts", post(post_receipts))
        .route("/v1/adverts", post(post_adverts).get(get_adverts))
        .route("/v1/proofs/operator/{key}", get(operator_proof))
        .route("/v1/proofs/buyer/{key}", get(buyer_proof))
        .route("/v1/epochs", get(epochs))
        .route("/v1/epochs/{epoch}", get(epoch))
        .route("/v1/epochs/{epoch}/dataset", get(dataset))
        .route("/v1/epochs/{epoch}/manifests", get(manifests))
        .route("/v1/epochs/{epoch}/input", get(agreed_input))
        .route("/v1/inputs/{hash}", get(input_file))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .fallback(|| async {
            ApiError(
                StatusCode::NOT_FOUND,
                "no such endpoint; see docs/api.md".into(),
            )
        })
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

/// A loopback address, IPv4 mapped into IPv6 included.
fn is_loopback(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// `response` with a `Retry-After` of `secs` seconds.
fn retry_after(mut response: Response, secs: u64) -> Response {
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    response
}

/// The encoded length of one item of an ingest endpoint's batch.
fn ingest_item_len(path: &str) -> Option<usize> {
    match path {
        "/v1/receipts" => Some(SIGNED_RECEIPT_LEN),
        "/v1/grants" => Some(SIGNED_GRANT_LEN),
        "/v1/bindings" => Some(SIGNED_BINDING_LEN),
        "/v1/adverts" => Some(backhaul_protocol::advert::SIGNED_ADVERT_LEN),
        _ => None,
    }
}

/// How long a request waits for one of the `max_concurrent_requests` permits before it is
/// answered `503`. It waits before its body is read, holding no more than its connection.
const PERMIT_WAIT: Duration = Duration::from_secs(1);

/// Before a request's body is read: the remote address's token bucket (`429` with
/// `Retry-After` when it is empty; loopback addresses only with `limit_loopback_addresses`),
/// then a permit among `max_concurrent_requests` (`503` with `Retry-After` when none is free
/// within [`PERMIT_WAIT`]), held until the answer is ready.
async fn guard(State(state): State<Arc<ApiState>>, request: Request, next: Next) -> Response {
    let remote = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .filter(|ip| state.limit_loopback || !is_loopback(ip));
    let mut _counted = None;
    if let Some(ip) = remote {
        if let Err(wait) = state.addresses.take(ip) {
            tracing::debug!(address = %ip, retry_after_secs = wait, "request refused: the address is over its rate limit");
            let error = ApiError(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "this address is over its limit of {} requests per second; retry after {wait} s",
                    state.addresses.rate
                ),
            );
            return retry_after(error.into_response(), wait);
        }
        // What its signatures will cost to check, from the body's declared length (a body never
        // runs past it), before anything is read.
        if let Some(item_len) = ingest_item_len(request.uri().path()) {
            let len = request
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(state.max_body_bytes)
                .min(state.max_body_bytes);
            if let Err(wait) = state.addresses.take_items(ip, len.div_ceil(item_len)) {
                tracing::debug!(address = %ip, retry_after_secs = wait, "request refused: the address is over its item rate");
                let error = ApiError(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!(
                        "this address is over its limit of {} items per second; retry after {wait} s",
                        state.addresses.items_rate
                    ),
                );
                return retry_after(error.into_response(), wait);
            }
        }
        // One address cannot hold every request slot (with bodies it sends slowly, say).
        if !state.addresses.enter(ip) {
            tracing::debug!(address = %ip, "request refused: the address has as many requests in progress as it may");
            let error = ApiError(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "this address already has {} requests in progress; wait for their answers",
                    state.addresses.max_in_flight
                ),
            );
            return retry_after(error.into_response(), 1);
        }
        _counted = Some(InFlight {
            state: state.clone(),
            ip,
        });
    }
    let permit = tokio::time::timeout(PERMIT_WAIT, state.in_flight.clone().acquire_owned()).await;
    let Ok(Ok(_permit)) = permit else {
        tracing::debug!("request refused: every request slot is busy");
        let error = ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "the oracle is handling as many requests as it may; retry shortly".into(),
        );
        return retry_after(error.into_response(), 1);
    };
    next.run(request).await
}

/// Reads and decodes an ingest body: the content type, the size and item limits, exact borsh.
async fn decode_body<T: borsh::BorshDeserialize>(
    state: &ApiState,
    headers: &HeaderMap,
    body: Body,
    what: &'static str,
    item_len: usize,
    max_items: usize,
) -> Result<Vec<T>, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type != "application/octet-stream" {
        return Err(ApiError(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("send the borsh-encoded Vec<{what}> as application/octet-stream (got {content_type:?})"),
        ));
    }
    let read = tokio::time::timeout(state.body_timeout, to_bytes(body, state.max_body_bytes));
    let bytes = read
        .await
        .map_err(|_| {
            tracing::debug!("request refused: its body did not arrive in time");
            ApiError(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the body did not arrive within {} s; send it at once",
                    state.body_timeout.as_secs()
                ),
            )
        })?
        .map_err(|_| {
            ApiError(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the body is over {} bytes; split the batch",
                    state.max_body_bytes
                ),
            )
        })?;
    decode_batch(&bytes, what, item_len, max_items).map_err(|e| {
        let code = match e {
            BodyError::TooMany { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::Length { .. } | BodyError::Decode { .. } | BodyError::Empty { .. } => {
                StatusCode::BAD_REQUEST
            }
        };
        ApiError(code, e.to_string())
    })
}

/// How much lower than the rest of the oracle signature checks run (a `nice` increment).
const VERIFY_NICENESS: i32 = 10;

/// Lowers the calling thread's CPU priority by [`VERIFY_NICENESS`], once per thread.
///
/// Every request passes through the single storage writer in turn, while signatures are checked
/// on as many threads as there are requests. When both compete for the cores, the writer runs
/// for only a share of the time it has work, and every request waits behind it. Checking at a
/// lower priority lets the writer run as soon as it has work; verification takes whatever CPU is
/// left, which is all of it whenever the writer waits for the disk or for work. (Linux applies
/// `setpriority` to the calling thread; elsewhere this does nothing.)
fn yield_cpu_to_the_writer() {
    #[cfg(target_os = "linux")]
    {
        thread_local! {
            static LOWERED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
        }
        if !LOWERED.get() {
            LOWERED.set(true);
            // SAFETY: `gettid` and `setpriority` take no pointers; `setpriority` on the calling
            // thread's id changes only that thread's scheduling priority.
            let done = unsafe {
                let tid = libc::gettid();
                let current = libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t);
                libc::setpriority(
                    libc::PRIO_PROCESS,
                    tid as libc::id_t,
                    current.saturating_add(VERIFY_NICENESS).min(19),
                )
            };
            if done != 0 {
                tracing::debug!(
                    error = %std::io::Error::last_os_error(),
                    "could not lower a verification thread's priority"
                );
            }
        }
    }
}

/// Verifies signatures on a blocking thread; returns which items passed.
async fn verify(checks: Vec<Vec<SigCheck>>) -> Result<Vec<Option<RejectReason>>, ApiError> {
    tokio::task::spawn_blocking(move || {
        yield_cpu_to_the_writer();
        let flat: Vec<SigCheck> = checks.iter().flatten().cloned().collect();
        let results = verify_each_strict(&flat);
        let mut out = Vec::with_capacity(checks.len());
        let mut i = 0;
        for item in &checks {
            let mut reason = None;
            for r in &results[i..i + item.len()] {
                if let Err(e) = r {
                    reason = Some(match e {
                        backhaul_protocol::VerifyError::BadKey => RejectReason::BadKey,
                        backhaul_protocol::VerifyError::BadSignature => RejectReason::BadSignature,
                    });
                    break;
                }
            }
            i += item.len();
            out.push(reason);
        }
        out
    })
    .await
    .map_err(|e| {
        ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("verification failed: {e}"),
        )
    })
}

/// Whether an answer charges the signing key's bucket: anything but a duplicate or an item for an
/// epoch that is not open. Replays of a key's receipts (those of closed epochs are public in
/// their input files) cost the key nothing.
fn charged(result: &ItemResult) -> bool {
    !matches!(
        (result.status, result.reason),
        (ItemStatus::Duplicate, _) | (_, Some(RejectReason::EpochNotOpen))
    )
}

/// Sends the items that passed to the writer, charges each passing item's signing key (`keys`)
/// for what the writer did not answer as a replay, and merges its results with the refusals.
async fn store<T>(
    state: &ApiState,
    items: Vec<T>,
    keys: Vec<Key>,
    refused: Vec<Option<RejectReason>>,
    job: impl FnOnce(Vec<T>, oneshot::Sender<Result<Vec<ItemResult>, String>>) -> Job,
) -> Result<Json<BatchResponse>, ApiError> {
    let mut passing_keys = Vec::new();
    for (key, reason) in keys.into_iter().zip(&refused) {
        if reason.is_none() {
            passing_keys.push(key);
        }
    }
    let mut passing = Vec::new();
    for (item, reason) in items.into_iter().zip(&refused) {
        if reason.is_none() {
            passing.push(item);
        }
    }
    let mut stored = Vec::new().into_iter();
    if !passing.is_empty() {
        let (tx, rx) = oneshot::channel();
        state.writer.send(job(passing, tx)).await.map_err(|_| {
            ApiError(
                StatusCode::SERVICE_UNAVAILABLE,
                "the oracle is shutting down; retry against another oracle".into(),
            )
        })?;
        let results = rx
            .await
            .map_err(|_| {
                ApiError(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the oracle is shutting down; retry".into(),
                )
            })?
            .map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, e))?;
        state.limiter.charge(
            passing_keys
                .iter()
                .zip(&results)
                .filter(|(_, r)| charged(r))
                .map(|(k, _)| *k),
        );
        stored = results.into_iter();
    }
    let results = refused
        .into_iter()
        .map(|reason| match reason {
            Some(r) => {
                let res = ItemResult::rejected(r);
                m::item(&res);
                res
            }
            None => stored
                .next()
                .unwrap_or(ItemResult::rejected(RejectReason::BadSignature)),
        })
        .collect();
    Ok(Json(BatchResponse { results }))
}

async fn post_bindings(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<BatchResponse>, ApiError> {
    let items: Vec<SignedBinding> = decode_body(
        &state,
        &headers,
        body,
        "SignedBinding",
        SIGNED_BINDING_LEN,
        MAX_BINDINGS_PER_REQUEST,
    )
    .await?;
    let checks = items
        .iter()
        .map(|b| b.checks(&state.deployment).to_vec())
        .collect();
    let verified = verify(checks).await?;
    // The node's bucket, only for bindings it signed.
    let keys: Vec<Key> = items.iter().map(|b| b.binding.node).collect();
    let limited = state.limiter.allow(&keys, &verified);
    let refused = merge(verified, limited);
    store(&state, items, keys, refused, Job::Bindings).await
}

async fn post_grants(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<BatchResponse>, ApiError> {
    let items: Vec<SignedGrant> = decode_body(
        &state,
        &headers,
        body,
        "SignedGrant",
        SIGNED_GRANT_LEN,
        MAX_GRANTS_PER_REQUEST,
    )
    .await?;
    let checks = items
        .iter()
        .map(|g| g.checks(&state.deployment).to_vec())
        .collect();
    let verified = verify(checks).await?;
    // The buyer's bucket, only for grants it signed.
    let keys: Vec<Key> = items.iter().map(|g| g.grant.buyer).collect();
    let limited = state.limiter.allow(&keys, &verified);
    let refused = merge(verified, limited);
    // Kept only for a buyer with an on-chain credit account (looked up for those that passed).
    let passing: Vec<Key> = keys
        .iter()
        .zip(&refused)
        .filter(|(_, r)| r.is_none())
        .map(|(k, _)| *k)
        .collect();
    let funded = state
        .funded
        .check(state.closer.chain.as_ref(), &passing)
        .await
        .map_err(|e| {
            ApiError(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the oracle cannot read the chain to check the buyers' credit accounts ({e}); nothing was stored, retry later"),
            )
        })?;
    let mut funded = funded.into_iter();
    let unfunded = refused
        .iter()
        .map(|r| match r {
            Some(_) => None,
            None => (!funded.next().unwrap_or(false)).then_some(RejectReason::NoCreditAccount),
        })
        .collect();
    let refused = merge(refused, unfunded);
    store(&state, items, keys, refused, Job::Grants).await
}

async fn post_receipts(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<BatchResponse>, ApiError> {
    let items: Vec<SignedReceipt> = decode_body(
        &state,
        &headers,
        body,
        "SignedReceipt",
        SIGNED_RECEIPT_LEN,
        MAX_RECEIPTS_PER_REQUEST,
    )
    .await?;
    let max_rate = state
        .closer
        .max_rate_bytes_per_sec
        .load(std::sync::atomic::Ordering::Relaxed);
    // Stateless checks first; only what passes is verified.
    let pre: Vec<Option<RejectReason>> = items
        .iter()
        .map(|r| {
            (r.receipt
                .rate_bytes_per_sec(state.closer.clock.epoch_length_secs)
                > max_rate)
                .then_some(RejectReason::RateExceeded)
        })
        .collect();
    let checks = items
        .iter()
        .zip(&pre)
        .map(|(r, p)| {
            if p.is_none() {
                r.checks(&state.deployment).to_vec()
            } else {
                vec![]
            }
        })
        .collect();
    let verified = merge(pre, verify(checks).await?);
    // The node's bucket, only for receipts both parties signed: junk naming a node's key costs
    // that node nothing.
    let keys: Vec<Key> = items.iter().map(|r| r.receipt.node).collect();
    let limited = state.limiter.allow(&keys, &verified);
    let refused = merge(verified, limited);
    let with_hashes: Vec<(SignedReceipt, [u8; 32])> = items
        .into_iter()
        .map(|r| (r, r.receipt.body_hash()))
        .collect();
    store(&state, with_hashes, keys, refused, Job::Receipts).await
}

/// Node adverts: each signed by its node, current (signed less than a day ago and not more than
/// five minutes ahead), of a node with a binding; kept in memory, the latest per node.
async fn post_adverts(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<BatchResponse>, ApiError> {
    use backhaul_protocol::advert::{SignedAdvert, SIGNED_ADVERT_LEN};
    let items: Vec<SignedAdvert> = decode_body(
        &state,
        &headers,
        body,
        "SignedAdvert",
        SIGNED_ADVERT_LEN,
        MAX_ADVERTS_PER_REQUEST,
    )
    .await?;
    let now = now();
    let pre: Vec<Option<RejectReason>> = items
        .iter()
        .map(|a| {
            (a.advert.endpoint().is_none() || !a.advert.current(now))
                .then_some(RejectReason::OutOfRange)
        })
        .collect();
    let checks = items
        .iter()
        .map(|a| a.checks(&state.deployment).to_vec())
        .collect();
    let verified = merge(pre, verify(checks).await?);
    let keys: Vec<Key> = items.iter().map(|a| a.advert.node).collect();
    let limited = state.limiter.allow(&keys, &verified);
    let refused = merge(verified, limited);
    let mut results = Vec::with_capacity(items.len());
    for (a, refusal) in items.into_iter().zip(refused) {
        let result = match refusal {
            Some(reason) => ItemResult::rejected(reason),
            None if !db::node_bound(&state.pool, &a.advert.node)
                .await
                .map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))? =>
            {
                ItemResult::rejected(RejectReason::UnknownBinding)
            }
            None => state.directory.offer(a, now),
        };
        results.push(result);
    }
    Ok(Json(BatchResponse { results }))
}

/// Query of `GET /v1/adverts`.
#[derive(serde::Deserialize)]
struct AdvertsQuery {
    /// base58: list nodes whose key is above this one.
    after: Option<String>,
    limit: Option<usize>,
}

/// The current adverts by node key, a page at a time (`after`, `limit` at most
/// [`MAX_ADVERTS_PER_PAGE`]).
async fn get_adverts(
    State(state): State<Arc<ApiState>>,
    axum::extract::Query(q): axum::extract::Query<AdvertsQuery>,
) -> Result<Json<Vec<AdvertEntry>>, ApiError> {
    let after = q.after.as_deref().map(parse_key).transpose()?;
    let limit = q
        .limit
        .unwrap_or(MAX_ADVERTS_PER_PAGE)
        .min(MAX_ADVERTS_PER_PAGE);
    let page = state.directory.page(after, limit, now());
    Ok(Json(page.iter().filter_map(AdvertEntry::of).collect()))
}

fn merge(a: Vec<Option<RejectReason>>, b: Vec<Option<RejectReason>>) -> Vec<Option<RejectReason>> {
    a.into_iter().zip(b).map(|(a, b)| a.or(b)).collect()
}

fn parse_key(s: &str) -> Result<Key, ApiError> {
    key_from_b58(s).ok_or_else(|| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("{s:?} is not a base58 public key"),
        )
    })
}

fn latest(state: &ApiState) -> Result<Arc<ClosedEpoch>, ApiError> {
    state
        .closer
        .latest()
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, "no epoch has been closed yet".into()))
}

fn proof(closed: &ClosedEpoch, usage: bool, key: &Key) -> Option<ProofResponse> {
    let tree = if usage {
        &closed.usage
    } else {
        &closed.rewards
    };
    ProofResponse::from_tree(closed.dataset.epoch, tree, key)
}

async fn operator_proof(
    State(state): State<Arc<ApiState>>,
    Path(key): Path<String>,
) -> Result<Json<ProofResponse>, ApiError> {
    let key = parse_key(&key)?;
    let closed = latest(&state)?;
    m::proof_served("reward");
    proof(&closed, false, &key).map(Json).ok_or_else(|| {
        ApiError(
            StatusCode::NOT_FOUND,
            format!(
                "no reward leaf for this operator as of epoch {}",
                closed.dataset.epoch
            ),
        )
    })
}

async fn buyer_proof(
    State(state): State<Arc<ApiState>>,
    Path(key): Path<String>,
) -> Result<Json<ProofResponse>, ApiError> {
    let key = parse_key(&key)?;
    let closed = latest(&state)?;
    m::proof_served("usage");
    proof(&closed, true, &key).map(Json).ok_or_else(|| {
        ApiError(
            StatusCode::NOT_FOUND,
            format!(
                "no usage leaf for this buyer as of epoch {}",
                closed.dataset.epoch
            ),
        )
    })
}

fn summary(closed: &ClosedEpoch) -> EpochSummary {
    let d = &closed.dataset;
    EpochSummary {
        epoch: d.epoch,
        dataset_hash: hex(&closed.hash),
        reward_root: d.rewards.root.clone(),
        reward_leaf_count: d.rewards.leaf_count,
        reward_total: d.rewards.total,
        allocation: d.allocation,
        usage_root: d.usage.root.clone(),
        usage_leaf_count: d.usage.leaf_count,
        usage_total: d.usage.total,
        credits_consumed: d.usage.credits_consumed,
        closed_at: closed.closed_at,
    }
}

fn not_closed(epoch: u64) -> ApiError {
    ApiError(
        StatusCode::NOT_FOUND,
        format!("epoch {epoch} is not closed on this oracle"),
    )
}

/// The stored dataset hash and close time of closed epochs (`epoch` alone, or all), oldest
/// first: what the summary cache is keyed by, read without the datasets themselves.
async fn stored_epochs(
    pool: &AnyPool,
    epoch: Option<u64>,
) -> Result<Vec<(u64, Vec<u8>, i64)>, ApiError> {
    let rows = match epoch {
        Some(e) => {
            let e = i64::try_from(e).map_err(|_| not_closed(e))?;
            sqlx::query("SELECT epoch, dataset_hash, closed_at FROM epochs WHERE epoch = $1")
                .bind(e)
                .fetch_all(pool)
                .await
        }
        None => {
            sqlx::query("SELECT epoch, dataset_hash, closed_at FROM epochs ORDER BY epoch")
                .fetch_all(pool)
                .await
        }
    }
    .map_err(unavailable)?;
    rows.iter()
        .map(|r| {
            let epoch: i64 = r.try_get("epoch").map_err(unavailable)?;
            Ok((
                u64::try_from(epoch).map_err(unavailable)?,
                r.try_get("dataset_hash").map_err(unavailable)?,
                r.try_get("closed_at").map_err(unavailable)?,
            ))
        })
        .collect()
}

/// An epoch's summary: from the cache when it holds one for this dataset, else parsed once.
async fn cached_summary(
    state: &ApiState,
    epoch: u64,
    hash: &[u8],
    closed_at: i64,
) -> Result<EpochSummary, ApiError> {
    if let Some(s) = state.summaries.get(epoch, hash, closed_at) {
        return Ok(s);
    }
    let (bytes, closed_at) = db::dataset(&state.pool, epoch)
        .await
        .map_err(unavailable)?
        .ok_or_else(|| not_closed(epoch))?;
    state.summaries.parses.fetch_add(1, Ordering::Relaxed);
    m::dataset_parsed();
    let closed = ClosedEpoch::from_bytes(bytes, closed_at)
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let s = summary(&closed);
    // Filed under the hash of the bytes parsed: a close that replaced the row after `hash` was
    // read files its summary under its own hash.
    state
        .summaries
        .put(epoch, closed.hash.to_vec(), closed.closed_at, s.clone());
    Ok(s)
}

async fn epochs(State(state): State<Arc<ApiState>>) -> Result<Json<Vec<EpochSummary>>, ApiError> {
    let list = stored_epochs(&state.pool, None).await?;
    let mut out = Vec::with_capacity(list.len());
    for (epoch, hash, closed_at) in list {
        out.push(cached_summary(&state, epoch, &hash, closed_at).await?);
    }
    Ok(Json(out))
}

async fn epoch(
    State(state): State<Arc<ApiState>>,
    Path(epoch): Path<u64>,
) -> Result<Json<EpochSummary>, ApiError> {
    let (epoch, hash, closed_at) = stored_epochs(&state.pool, Some(epoch))
        .await?
        .pop()
        .ok_or_else(|| not_closed(epoch))?;
    Ok(Json(cached_summary(&state, epoch, &hash, closed_at).await?))
}

/// The dataset file as stored, with its stored hash: nothing parsed.
async fn dataset(
    State(state): State<Arc<ApiState>>,
    Path(epoch): Path<u64>,
) -> Result<Response, ApiError> {
    let e = i64::try_from(epoch).map_err(|_| not_closed(epoch))?;
    let row = sqlx::query("SELECT dataset, dataset_hash FROM epochs WHERE epoch = $1")
        .bind(e)
        .fetch_optional(&state.pool)
        .await
        .map_err(unavailable)?
        .ok_or_else(|| not_closed(epoch))?;
    let bytes: Vec<u8> = row.try_get("dataset").map_err(unavailable)?;
    let hash: Vec<u8> = row.try_get("dataset_hash").map_err(unavailable)?;
    let mut resp = bytes.into_response();
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(&hex(&hash)) {
        headers.insert("x-dataset-sha256", v);
    }
    Ok(resp)
}

fn unavailable(e: impl std::fmt::Display) -> ApiError {
    ApiError(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("reading the database failed: {e}"),
    )
}

/// Every manifest this oracle holds for `epoch` (its own and those it fetched from peers), each
/// hex-encoded borsh of a `SignedManifest`: peers check each signature themselves.
async fn manifests(
    State(state): State<Arc<ApiState>>,
    Path(epoch): Path<u64>,
) -> Result<Json<Vec<String>>, ApiError> {
    let list = db::manifests(&state.pool, epoch)
        .await
        .map_err(unavailable)?;
    Ok(Json(
        list.iter()
            .map(|m| hex(&borsh::to_vec(m).unwrap_or_default()))
            .collect(),
    ))
}

fn octets(bytes: Vec<u8>, hash: &[u8; 32]) -> Response {
    let mut resp = bytes.into_response();
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(v) = HeaderValue::from_str(&hex(hash)) {
        headers.insert("x-input-sha256", v);
    }
    resp
}

/// An input file by its sha256 (hex): a held input this oracle made or fetched, or an agreed one.
async fn input_file(
    State(state): State<Arc<ApiState>>,
    Path(hash): Path<String>,
) -> Result<Response, ApiError> {
    let parsed = backhaul_protocol::dataset::hash_from_hex(&hash).ok_or_else(|| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("{hash:?} is not a sha256 in hex"),
        )
    })?;
    let bytes = state.closer.agreement.bytes(&parsed).await.ok_or_else(|| {
        ApiError(
            StatusCode::NOT_FOUND,
            "no input file with this hash here".into(),
        )
    })?;
    Ok(octets(bytes, &parsed))
}

/// The agreed input a closed epoch's dataset was closed over (its `input_hash`).
async fn agreed_input(
    State(state): State<Arc<ApiState>>,
    Path(epoch): Path<u64>,
) -> Result<Response, ApiError> {
    let hash = db::input_hash(&state.pool, epoch)
        .await
        .map_err(unavailable)?
        .ok_or_else(|| {
            ApiError(
                StatusCode::NOT_FOUND,
                format!("epoch {epoch} is not closed on this oracle"),
            )
        })?;
    let bytes = state.closer.agreement.bytes(&hash).await.ok_or_else(|| {
        ApiError(
            StatusCode::NOT_FOUND,
            format!("epoch {epoch}'s input file is missing here"),
        )
    })?;
    Ok(octets(bytes, &hash))
}

/// `503` when the database cannot be reached; `200` with `"status": "degraded"` when the last
/// ingest write failed (`storage`, e.g. a full disk: the next write may work, and a balancer
/// that stopped sending would never find out), or the chain or the submitter has trouble.
async fn health(State(state): State<Arc<ApiState>>) -> Response {
    // A short bound: a health check that hangs as long as the pool's acquire timeout is no
    // answer at all.
    let ping = sqlx::query("SELECT 1").execute(&state.pool);
    let db_ok = matches!(
        tokio::time::timeout(std::time::Duration::from_secs(3), ping).await,
        Ok(Ok(_))
    );
    let report = state.status.report();
    let ingest_ok = db_ok && report.storage.is_ok();
    let all_ok = ingest_ok && report.chain.is_ok() && report.submitter.is_ok();
    let body = serde_json::json!({
        "status": if all_ok { "ok" } else { "degraded" },
        "database": if db_ok { "ok" } else { "unavailable" },
        "storage": report.storage,
        "chain": report.chain,
        "submitter": report.submitter,
        "last_closed_epoch": state.closer.latest().map(|c| c.dataset.epoch),
        "time": now(),
    });
    let code = if db_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

async fn metrics() -> Response {
    let text = m::handle().map(|h| h.render()).unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// Per-key token buckets: each signing key may submit `rate` items per second, with a burst of
/// ten seconds' worth. A request is checked against its keys' buckets ([`KeyLimiter::allow`])
/// and charged after the writer answered ([`KeyLimiter::charge`]), only for items whose
/// signatures verified and that were not replays. Concurrent requests of one key may take its
/// bucket below zero (at most a burst's worth), which that key alone then waits out.
pub struct KeyLimiter {
    rate: f64,
    buckets: Mutex<HashMap<Key, (f64, Instant)>>,
}

impl KeyLimiter {
    pub fn new(rate_per_sec: u32) -> Self {
        KeyLimiter {
            rate: f64::from(rate_per_sec.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn burst(&self) -> f64 {
        self.rate * 10.0
    }

    /// A bucket's tokens now, refilled since it was last touched.
    fn refill(&self, bucket: &mut (f64, Instant), now: Instant) -> f64 {
        let (tokens, at) = bucket;
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.rate).min(self.burst());
        *at = now;
        *tokens
    }

    /// Which items fit their key's bucket, taking nothing: the items not yet refused (`None` in
    /// `refused`), in order, as many per key as it has whole tokens; the rest get
    /// `RateLimited`. Refused items are not looked at (`None`: merge with `refused`).
    pub fn allow(
        &self,
        keys: &[Key],
        refused: &[Option<RejectReason>],
    ) -> Vec<Option<RejectReason>> {
        let now = Instant::now();
        let Ok(mut buckets) = self.buckets.lock() else {
            return vec![None; keys.len()];
        };
        let mut left: HashMap<Key, f64> = HashMap::new();
        keys.iter()
            .zip(refused)
            .map(|(k, r)| {
                if r.is_some() {
                    return None;
                }
                let tokens = left.entry(*k).or_insert_with(|| match buckets.get_mut(k) {
                    Some(b) => self.refill(b, now),
                    None => self.burst(),
                });
                if *tokens >= 1.0 {
                    *tokens -= 1.0;
                    None
                } else {
                    Some(RejectReason::RateLimited)
                }
            })
            .collect()
    }

    /// Takes one token per key listed (an item stored), down to minus a burst at most.
    pub fn charge(&self, keys: impl Iterator<Item = Key>) {
        let burst = self.burst();
        let now = Instant::now();
        let Ok(mut buckets) = self.buckets.lock() else {
            return;
        };
        if buckets.len() > 100_000 {
            // Forget keys that have refilled completely.
            buckets.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * self.rate < burst
            });
        }
        for k in keys {
            let bucket = buckets.entry(k).or_insert((burst, now));
            let tokens = self.refill(bucket, now);
            bucket.0 = (tokens - 1.0).max(-burst);
        }
    }
}

/// How many seconds' worth of requests an address may send at once.
const ADDRESS_BURST_SECS: f64 = 5.0;

/// Per-address token buckets: each remote address may make `rate` requests per second and send
/// `items_rate` items per second, each with a burst of [`ADDRESS_BURST_SECS`] seconds' worth, and
/// have at most `max_in_flight` requests in progress. IPv6 addresses count by their /64, which one
/// host usually holds whole.
pub struct AddressLimiter {
    rate: f64,
    items_rate: f64,
    max_in_flight: usize,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
    items: Mutex<HashMap<IpAddr, (f64, Instant)>>,
    in_flight: Mutex<HashMap<IpAddr, usize>>,
}

/// Takes `n` tokens from `ip`'s bucket of `rate` per second; when there are not enough, the whole
/// seconds until there are (a request over the burst waits for the burst).
fn take_from(
    buckets: &Mutex<HashMap<IpAddr, (f64, Instant)>>,
    rate: f64,
    ip: IpAddr,
    n: f64,
) -> Result<(), u64> {
    let burst = rate * ADDRESS_BURST_SECS;
    let n = n.min(burst);
    let now = Instant::now();
    let Ok(mut buckets) = buckets.lock() else {
        return Ok(());
    };
    if buckets.len() > 100_000 {
        // Forget addresses that have refilled completely.
        buckets.retain(|_, (tokens, at)| {
            *tokens + now.duration_since(*at).as_secs_f64() * rate < burst
        });
    }
    let (tokens, at) = buckets.entry(ip).or_insert((burst, now));
    *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * rate).min(burst);
    *at = now;
    if *tokens >= n {
        *tokens -= n;
        Ok(())
    } else {
        Err(((n - *tokens) / rate).ceil().max(1.0) as u64)
    }
}

impl AddressLimiter {
    pub fn new(rate_per_sec: u32, items_per_sec: u32, max_in_flight: usize) -> Self {
        AddressLimiter {
            rate: f64::from(rate_per_sec.max(1)),
            items_rate: f64::from(items_per_sec.max(1)),
            max_in_flight: max_in_flight.max(1),
            buckets: Mutex::new(HashMap::new()),
            items: Mutex::new(HashMap::new()),
            in_flight: Mutex::new(HashMap::new()),
        }
    }

    /// What an address counts as: itself (IPv4, or IPv4 mapped into IPv6), or its /64.
    fn bucket_of(ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(_) => ip,
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
            },
        }
    }

    /// Takes a token for one request from `ip`; when there is none, the whole seconds until
    /// there is.
    pub fn take(&self, ip: IpAddr) -> Result<(), u64> {
        take_from(&self.buckets, self.rate, Self::bucket_of(ip), 1.0)
    }

    /// Takes `n` item tokens from `ip` (charged once a body is decoded, before its signatures
    /// are checked); when there are not enough, the whole seconds until there are.
    pub fn take_items(&self, ip: IpAddr, n: usize) -> Result<(), u64> {
        take_from(&self.items, self.items_rate, Self::bucket_of(ip), n as f64)
    }

    /// Counts a request of `ip` in progress, unless it already has `max_in_flight`.
    pub fn enter(&self, ip: IpAddr) -> bool {
        let Ok(mut m) = self.in_flight.lock() else {
            return true;
        };
        let n = m.entry(Self::bucket_of(ip)).or_insert(0);
        if *n >= self.max_in_flight {
            return false;
        }
        *n += 1;
        true
    }

    /// The end of a request [`AddressLimiter::enter`] counted.
    pub fn leave(&self, ip: IpAddr) {
        if let Ok(mut m) = self.in_flight.lock() {
            let key = Self::bucket_of(ip);
            if let Some(n) = m.get_mut(&key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    m.remove(&key);
                }
            }
        }
    }
}

/// A request of an address in progress, counted until dropped.
struct InFlight {
    state: Arc<ApiState>,
    ip: IpAddr,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.state.addresses.leave(self.ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_burst_then_waits() {
        let l = AddressLimiter::new(2, 100, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..10 {
            l.take(a).unwrap();
        }
        assert_eq!(l.take(a), Err(1));
        l.take("192.0.2.2".parse().unwrap()).unwrap();
        // One /64 is one bucket; another /64 is another.
        let v6 = |s: &str| s.parse::<IpAddr>().unwrap();
        for i in 0..10 {
            l.take(v6(&format!("2001:db8::{i:x}"))).unwrap();
        }
        assert!(l.take(v6("2001:db8::ffff:1")).is_err());
        l.take(v6("2001:db8:0:1::1")).unwrap();
    }

    #[test]
    fn a_key_is_checked_first_and_charged_for_what_was_stored() {
        let l = KeyLimiter::new(1);
        let k = [7u8; 32];
        let other = [8u8; 32];
        // Refused items are not looked at; checking takes nothing.
        let refused = vec![Some(RejectReason::BadSignature); 100];
        assert!(l.allow(&[k; 100], &refused).iter().all(Option::is_none));
        for _ in 0..3 {
            let r = l.allow(&[k; 11], &[None; 11]);
            assert!(r[..10].iter().all(Option::is_none));
            assert_eq!(r[10], Some(RejectReason::RateLimited));
        }
        // Charged for ten stored items: the bucket is empty; another key's is not.
        l.charge(std::iter::repeat_n(k, 10));
        assert_eq!(
            l.allow(&[k], &[None]),
            vec![Some(RejectReason::RateLimited)]
        );
        assert_eq!(l.allow(&[other], &[None]), vec![None]);
        // Overdrawn by concurrent requests: at most a burst below zero.
        l.charge(std::iter::repeat_n(other, 1_000));
        let b = l.buckets.lock().unwrap()[&other].0;
        assert!((-10.0..=-9.9).contains(&b), "{b}");
    }

    #[test]
    fn replays_are_not_charged() {
        assert!(!charged(&ItemResult::DUPLICATE));
        assert!(!charged(&ItemResult::rejected(RejectReason::EpochNotOpen)));
        assert!(charged(&ItemResult::ACCEPTED));
        assert!(charged(&ItemResult::SUPERSEDED));
        assert!(charged(&ItemResult::rejected(RejectReason::UnknownGrant)));
    }
}
