//! The client against local test oracles (axum on 127.0.0.1:0) that answer as scripted.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use backhaul_client::{
    BuyerIdentity, ClientConfig, ClientError, ClientSession, Fanout, NodeIdentity, OracleClient,
    RetryPolicy,
};
use backhaul_protocol::api::{
    BatchResponse, EpochSummary, ErrorResponse, ItemResult, ItemStatus, ProofResponse, RejectReason,
};
use backhaul_protocol::dataset::b58;
use backhaul_protocol::{
    verify_each_strict, Deployment, NodeBinding, SignedBinding, SignedReceipt, UsageReceipt,
};
use borsh::BorshDeserialize;
use ed25519_dalek::SigningKey;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const DEP: Deployment = Deployment {
    program_id: [0xAA; 32],
    config: [0xBB; 32],
};

/// What the test oracle does with the next request.
#[derive(Clone, Debug)]
enum Reply {
    /// Answer normally.
    Pass,
    /// Answer this status with an `ErrorResponse` and an optional `Retry-After`.
    Status(u16, Option<&'static str>, &'static str),
    /// Answer 200 with one result too few.
    WrongCount,
    /// Wait this long, then answer normally.
    Hang(Duration),
}

#[derive(Clone, Debug)]
struct Seen {
    path: String,
    content_type: Option<String>,
    items: usize,
    at: Instant,
}

#[derive(Clone, Default)]
struct Oracle {
    seen: Arc<Mutex<Vec<Seen>>>,
    script: Arc<Mutex<VecDeque<Reply>>>,
    /// Once the script is exhausted, every request gets this (default: `Pass`).
    then: Arc<Mutex<Option<Reply>>>,
    delay: Duration,
    /// Verify receipt signatures (under `DEP`) and reject the bad ones.
    verify: bool,
}

impl Oracle {
    fn scripted(replies: Vec<Reply>) -> Self {
        Oracle {
            script: Arc::new(Mutex::new(replies.into())),
            ..Oracle::default()
        }
    }

    fn always(reply: Reply) -> Self {
        let o = Oracle::default();
        *o.then.lock().unwrap() = Some(reply);
        o
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn hits(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    fn items_per_request(&self) -> Vec<usize> {
        self.seen().iter().map(|s| s.items).collect()
    }

    fn next_reply(&self) -> Reply {
        self.script
            .lock()
            .unwrap()
            .pop_front()
            .or_else(|| self.then.lock().unwrap().clone())
            .unwrap_or(Reply::Pass)
    }

    fn record(&self, path: &str, headers: &HeaderMap, items: usize) {
        self.seen.lock().unwrap().push(Seen {
            path: path.to_string(),
            content_type: headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            items,
            at: Instant::now(),
        });
    }

    /// The scripted answer, if the script says anything but `Pass`.
    async fn scripted_answer(&self) -> Option<(Reply, Option<Response>)> {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let reply = self.next_reply();
        match &reply {
            Reply::Status(code, retry_after, error) => {
                let mut r = (
                    StatusCode::from_u16(*code).unwrap(),
                    Json(ErrorResponse {
                        error: error.to_string(),
                    }),
                )
                    .into_response();
                if let Some(after) = retry_after {
                    r.headers_mut()
                        .insert(header::RETRY_AFTER, after.parse().unwrap());
                }
                Some((reply, Some(r)))
            }
            Reply::Hang(d) => {
                tokio::time::sleep(*d).await;
                Some((reply, None))
            }
            Reply::WrongCount => Some((reply, None)),
            Reply::Pass => None,
        }
    }
}

fn error(code: StatusCode, msg: &str) -> Response {
    (
        code,
        Json(ErrorResponse {
            error: msg.to_string(),
        }),
    )
        .into_response()
}

async fn ingest<T: BorshDeserialize>(
    oracle: &Oracle,
    path: &str,
    headers: &HeaderMap,
    body: &Bytes,
    status_of: impl Fn(&Oracle, &[T]) -> Vec<ItemResult>,
) -> Response {
    let items = Vec::<T>::try_from_slice(body);
    oracle.record(path, headers, items.as_ref().map(Vec::len).unwrap_or(0));
    let reply = match oracle.scripted_answer().await {
        Some((_, Some(response))) => return response,
        Some((reply, None)) => reply,
        None => Reply::Pass,
    };
    if headers.get(header::CONTENT_TYPE).map(|v| v.as_bytes()) != Some(b"application/octet-stream")
    {
        return error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "wrong content type");
    }
    let items = match items {
        Ok(items) if !items.is_empty() => items,
        _ => return error(StatusCode::BAD_REQUEST, "body does not decode"),
    };
    let mut results = status_of(oracle, &items);
    if matches!(reply, Reply::WrongCount) {
        results.pop();
    }
    Json(BatchResponse { results }).into_response()
}

/// Items are answered from their content, so the order of the results can be checked.
fn by_number(n: u64) -> ItemResult {
    if n.is_multiple_of(3) {
        ItemResult::DUPLICATE
    } else {
        ItemResult::ACCEPTED
    }
}

fn receipt_statuses(oracle: &Oracle, items: &[SignedReceipt]) -> Vec<ItemResult> {
    if !oracle.verify {
        return items
            .iter()
            .map(|r| by_number(r.receipt.sequence))
            .collect();
    }
    let checks: Vec<_> = items.iter().flat_map(|r| r.checks(&DEP)).collect();
    let ok = verify_each_strict(&checks);
    ok.chunks(2)
        .map(|pair| {
            if pair.iter().all(Result::is_ok) {
                ItemResult::ACCEPTED
            } else {
                ItemResult::rejected(RejectReason::BadSignature)
            }
        })
        .collect()
}

fn proof(account: String) -> ProofResponse {
    ProofResponse {
        epoch: 7,
        account,
        cumulative: 1_000,
        index: 1,
        proof: vec![backhaul_protocol::api::ProofSibling {
            hash: "ab".repeat(32),
            sum: 500,
        }],
        root: "cd".repeat(32),
        total: 1_500,
        leaf_count: 2,
    }
}

fn summary(epoch: u64) -> EpochSummary {
    EpochSummary {
        epoch,
        dataset_hash: "00".repeat(32),
        reward_root: "11".repeat(32),
        reward_leaf_count: 1,
        reward_total: 10,
        allocation: 10,
        usage_root: "22".repeat(32),
        usage_leaf_count: 1,
        usage_total: 5,
        credits_consumed: 5,
        closed_at: 1_750_000_000,
    }
}

/// The key the test oracle knows proofs for.
const KNOWN: [u8; 32] = [0x42; 32];

fn router(oracle: Oracle) -> Router {
    Router::new()
        .route(
            "/v1/bindings",
            post(
                |State(o): State<Oracle>, h: HeaderMap, b: Bytes| async move {
                    ingest::<SignedBinding>(&o, "/v1/bindings", &h, &b, |_, items| {
                        items.iter().map(|i| by_number(i.binding.epoch)).collect()
                    })
                    .await
                },
            ),
        )
        .route(
            "/v1/grants",
            post(
                |State(o): State<Oracle>, h: HeaderMap, b: Bytes| async move {
                    ingest::<backhaul_protocol::SignedGrant>(
                        &o,
                        "/v1/grants",
                        &h,
                        &b,
                        |_, items| items.iter().map(|i| by_number(i.grant.epoch)).collect(),
                    )
                    .await
                },
            ),
        )
        .route(
            "/v1/receipts",
            post(
                |State(o): State<Oracle>, h: HeaderMap, b: Bytes| async move {
                    ingest::<SignedReceipt>(&o, "/v1/receipts", &h, &b, receipt_statuses).await
                },
            ),
        )
        .route(
            "/v1/proofs/{kind}/{key}",
            get(
                |State(o): State<Oracle>,
                 h: HeaderMap,
                 Path((kind, key)): Path<(String, String)>| async move {
                    o.record(&format!("/v1/proofs/{kind}/{key}"), &h, 0);
                    if let Some((_, Some(r))) = o.scripted_answer().await {
                        return r;
                    }
                    if key == b58(&KNOWN) {
                        Json(proof(key)).into_response()
                    } else {
                        error(StatusCode::NOT_FOUND, "no leaf for this account")
                    }
                },
            ),
        )
        .route(
            "/v1/epochs",
            get(|State(o): State<Oracle>, h: HeaderMap| async move {
                o.record("/v1/epochs", &h, 0);
                Json(vec![summary(6), summary(7)])
            }),
        )
        .route(
            "/v1/epochs/{epoch}/dataset",
            get(
                |State(o): State<Oracle>, h: HeaderMap, Path(epoch): Path<u64>| async move {
                    o.record(&format!("/v1/epochs/{epoch}/dataset"), &h, 0);
                    if epoch == 7 {
                        (StatusCode::OK, b"{\"version\":1}".to_vec()).into_response()
                    } else {
                        error(StatusCode::NOT_FOUND, "epoch not closed")
                    }
                },
            ),
        )
        .route(
            "/health",
            get(|State(o): State<Oracle>, h: HeaderMap| async move {
                o.record("/health", &h, 0);
                match o.scripted_answer().await {
                    Some((_, Some(r))) => r,
                    _ => "ok".into_response(),
                }
            }),
        )
        .layer(DefaultBodyLimit::disable())
        .with_state(oracle)
}

async fn serve_on(listener: tokio::net::TcpListener, oracle: Oracle) {
    let _ = axum::serve(listener, router(oracle)).await;
}

/// Starts a test oracle; returns its base URL.
async fn start(oracle: &Oracle) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve_on(listener, oracle.clone()));
    format!("http://{addr}")
}

/// An address nobody listens on.
async fn dead_url() -> (String, std::net::SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    (format!("http://{addr}"), addr)
}

fn fast(max_attempts: u32) -> ClientConfig {
    ClientConfig {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(10),
        retry: RetryPolicy {
            max_attempts,
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(200),
            max_elapsed: Duration::from_secs(20),
            jitter: false,
        },
    }
}

fn client(url: &str, config: ClientConfig) -> OracleClient {
    OracleClient::with_config(url, config).unwrap()
}

fn bindings(n: u64) -> Vec<SignedBinding> {
    (0..n)
        .map(|i| SignedBinding {
            binding: NodeBinding {
                node: [1; 32],
                operator: [2; 32],
                epoch: i,
                issued_at: 0,
            },
            node_signature: [0; 64],
            operator_signature: [0; 64],
        })
        .collect()
}

fn receipts(n: u64) -> Vec<SignedReceipt> {
    (0..n)
        .map(|i| SignedReceipt {
            receipt: UsageReceipt {
                epoch: 1,
                session_id: [3; 16],
                node: [1; 32],
                client: [2; 32],
                buyer: [4; 32],
                sequence: i,
                cumulative_bytes: i,
                session_age_secs: 1,
            },
            client_signature: [0; 64],
            node_signature: [0; 64],
        })
        .collect()
}

fn statuses(b: &BatchResponse) -> Vec<ItemStatus> {
    b.results.iter().map(|r| r.status).collect()
}

#[tokio::test]
async fn submissions_are_chunked_at_the_api_limits_and_results_kept_in_order() {
    let oracle = Oracle::default();
    let c = client(&start(&oracle).await, fast(1));

    let items = bindings(2_501);
    let answer = c.submit_bindings(&items).await.unwrap();
    assert_eq!(oracle.items_per_request(), vec![1_000, 1_000, 501]);
    let expected: Vec<ItemStatus> = (0..2_501).map(|i| by_number(i).status).collect();
    assert_eq!(statuses(&answer), expected);
    assert!(oracle.seen().iter().all(|s| s.path == "/v1/bindings"
        && s.content_type.as_deref() == Some("application/octet-stream")));

    let oracle = Oracle::default();
    let c = client(&start(&oracle).await, fast(1));
    let answer = c.submit_receipts(&receipts(10_001)).await.unwrap();
    assert_eq!(oracle.items_per_request(), vec![10_000, 1]);
    assert_eq!(answer.results.len(), 10_001);
    assert_eq!(answer.results[10_000], by_number(10_000));

    let oracle = Oracle::default();
    let c = client(&start(&oracle).await, fast(1));
    let buyer = BuyerIdentity::new(DEP, SigningKey::from_bytes(&[3; 32]));
    let grants: Vec<_> = (0..1_000)
        .map(|i| buyer.grant([1; 32], i, 0, 1, 0))
        .collect();
    assert_eq!(c.submit_grants(&grants).await.unwrap().results.len(), 1_000);
    assert_eq!(oracle.items_per_request(), vec![1_000]);

    // Nothing to send: no request.
    assert!(c.submit_grants(&[]).await.unwrap().results.is_empty());
    assert_eq!(oracle.hits(), 1);
}

#[tokio::test]
async fn unavailable_is_retried_with_exponential_backoff() {
    let oracle = Oracle::scripted(vec![
        Reply::Status(503, None, "database unavailable"),
        Reply::Status(503, None, "database unavailable"),
        Reply::Status(502, None, "bad gateway"),
    ]);
    let c = client(&start(&oracle).await, fast(5));
    let answer = c.submit_bindings(&bindings(4)).await.unwrap();
    assert_eq!(answer.results.len(), 4);
    let seen = oracle.seen();
    assert_eq!(seen.len(), 4);
    // Waits of 20, 40 and 80 ms (no jitter).
    let gaps: Vec<Duration> = seen.windows(2).map(|w| w[1].at - w[0].at).collect();
    for (gap, min) in gaps.iter().zip([20u64, 40, 80]) {
        assert!(*gap >= Duration::from_millis(min), "{gaps:?}");
    }
}

#[tokio::test]
async fn rate_limits_wait_for_retry_after() {
    let oracle = Oracle::scripted(vec![Reply::Status(429, Some("1"), "slow down")]);
    let c = client(&start(&oracle).await, fast(3));
    let started = Instant::now();
    c.submit_receipts(&receipts(2)).await.unwrap();
    let seen = oracle.seen();
    assert_eq!(seen.len(), 2);
    assert!(seen[1].at - seen[0].at >= Duration::from_secs(1));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_retry_after_beyond_the_time_budget_gives_up_at_once() {
    let oracle = Oracle::scripted(vec![Reply::Status(429, Some("120"), "slow down")]);
    let mut config = fast(5);
    config.retry.max_elapsed = Duration::from_secs(5);
    let c = client(&start(&oracle).await, config);
    let started = Instant::now();
    let err = c.submit_receipts(&receipts(2)).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(oracle.hits(), 1);
    match err.error {
        ClientError::RateLimited {
            retry_after,
            attempts,
            ref error,
            ..
        } => {
            assert_eq!(retry_after, Some(Duration::from_secs(120)));
            assert_eq!(attempts, 1);
            assert_eq!(error, "slow down");
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
}

#[tokio::test]
async fn client_errors_are_returned_at_once_with_the_servers_message() {
    for code in [400u16, 413, 415] {
        let oracle = Oracle::always(Reply::Status(code, None, "the server says no"));
        let c = client(&start(&oracle).await, fast(5));
        let err = c.submit_receipts(&receipts(3)).await.unwrap_err();
        assert_eq!(oracle.hits(), 1, "{code} must not be retried");
        assert_eq!(err.error.status(), Some(code));
        assert_eq!(err.error.server_error(), Some("the server says no"));
        assert!(!err.error.is_transient());
        let typed = match code {
            400 => matches!(err.error, ClientError::BadRequest { .. }),
            413 => matches!(err.error, ClientError::PayloadTooLarge { .. }),
            _ => matches!(err.error, ClientError::UnsupportedMediaType { .. }),
        };
        assert!(typed, "{code}: {:?}", err.error);
        assert!(err.completed.is_empty());
        assert_eq!(err.total, 3);
    }
}

#[tokio::test]
async fn attempts_are_bounded() {
    let oracle = Oracle::always(Reply::Status(503, None, "down"));
    let c = client(&start(&oracle).await, fast(3));
    let err = c.submit_bindings(&bindings(1)).await.unwrap_err();
    assert_eq!(oracle.hits(), 3);
    match err.error {
        ClientError::Unavailable {
            status, attempts, ..
        } => assert_eq!((status, attempts), (503, 3)),
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn total_time_is_bounded() {
    let oracle = Oracle::always(Reply::Status(503, None, "down"));
    let mut config = fast(1_000);
    config.retry.initial_backoff = Duration::from_millis(50);
    config.retry.max_backoff = Duration::from_millis(50);
    config.retry.max_elapsed = Duration::from_millis(400);
    let c = client(&start(&oracle).await, config);
    let started = Instant::now();
    assert!(c.submit_bindings(&bindings(1)).await.is_err());
    assert!(started.elapsed() < Duration::from_millis(1_000));
    let hits = oracle.hits();
    assert!((2..=9).contains(&hits), "{hits} attempts in 400 ms");
}

#[tokio::test]
async fn timeouts_are_retried() {
    let oracle = Oracle::scripted(vec![Reply::Hang(Duration::from_secs(3))]);
    let mut config = fast(3);
    config.request_timeout = Duration::from_millis(300);
    let c = client(&start(&oracle).await, config);
    let started = Instant::now();
    c.submit_bindings(&bindings(2)).await.unwrap();
    assert_eq!(oracle.hits(), 2);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn connection_errors_are_retried_until_the_oracle_is_up() {
    let (url, addr) = dead_url().await;
    let oracle = Oracle::default();
    let late = oracle.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        serve_on(listener, late).await;
    });
    let mut config = fast(30);
    config.retry.max_backoff = Duration::from_millis(50);
    let c = client(&url, config);
    let answer = c.submit_bindings(&bindings(5)).await.unwrap();
    assert_eq!(answer.results.len(), 5);
    assert_eq!(oracle.hits(), 1);
}

#[tokio::test]
async fn connection_errors_give_up_after_the_attempts() {
    let (url, _) = dead_url().await;
    let c = client(&url, fast(3));
    let err = c.submit_bindings(&bindings(1)).await.unwrap_err();
    match &err.error {
        ClientError::Transport {
            attempts, url: u, ..
        } => {
            assert_eq!(*attempts, 3);
            assert!(u.starts_with(&url));
        }
        other => panic!("expected Transport, got {other:?}"),
    }
    assert!(err.error.is_transient());
    // The message carries the cause, not only reqwest's "error sending request".
    let text = err.to_string();
    assert!(text.to_lowercase().contains("refused"), "{text}");
}

#[tokio::test]
async fn a_failure_part_way_reports_what_was_answered() {
    let oracle = Oracle::scripted(vec![
        Reply::Pass,
        Reply::Status(400, None, "body does not decode"),
    ]);
    let c = client(&start(&oracle).await, fast(3));
    let err = c.submit_bindings(&bindings(2_500)).await.unwrap_err();
    assert_eq!(oracle.items_per_request(), vec![1_000, 1_000]);
    assert_eq!(err.completed.len(), 1_000);
    assert_eq!(err.total, 2_500);
    assert!(matches!(err.error, ClientError::BadRequest { .. }));
    assert!(err.to_string().contains("1000 of 2500"), "{err}");
}

#[tokio::test]
async fn a_wrong_number_of_results_is_an_error() {
    let oracle = Oracle::scripted(vec![Reply::WrongCount]);
    let c = client(&start(&oracle).await, fast(3));
    let err = c.submit_bindings(&bindings(3)).await.unwrap_err();
    assert!(
        matches!(err.error, ClientError::BadResponse { ref reason, .. } if reason.contains("2 results for 3 items")),
        "{:?}",
        err.error
    );
}

#[tokio::test]
async fn read_endpoints() {
    let oracle = Oracle::default();
    let url = start(&oracle).await;
    let c = client(&url, fast(2));

    let p = c.operator_proof(&KNOWN).await.unwrap().unwrap();
    assert_eq!(p, proof(b58(&KNOWN)));
    assert_eq!(c.operator_proof(&[1; 32]).await.unwrap(), None);
    assert_eq!(
        c.buyer_proof(&KNOWN).await.unwrap().map(|p| p.epoch),
        Some(7)
    );
    assert_eq!(c.buyer_proof(&[1; 32]).await.unwrap(), None);
    let paths: Vec<String> = oracle.seen().into_iter().map(|s| s.path).collect();
    assert_eq!(
        paths,
        vec![
            format!("/v1/proofs/operator/{}", b58(&KNOWN)),
            format!("/v1/proofs/operator/{}", b58(&[1; 32])),
            format!("/v1/proofs/buyer/{}", b58(&KNOWN)),
            format!("/v1/proofs/buyer/{}", b58(&[1; 32])),
        ]
    );

    let epochs = c.epochs().await.unwrap();
    assert_eq!(epochs, vec![summary(6), summary(7)]);
    assert_eq!(c.dataset(7).await.unwrap(), b"{\"version\":1}".to_vec());
    match c.dataset(8).await {
        Err(ClientError::NotFound { error, .. }) => assert_eq!(error, "epoch not closed"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    c.health().await.unwrap();
}

#[tokio::test]
async fn proofs_retry_unavailable_and_health_does_not() {
    let oracle = Oracle::scripted(vec![Reply::Status(503, None, "down")]);
    let c = client(&start(&oracle).await, fast(3));
    assert!(c.operator_proof(&KNOWN).await.unwrap().is_some());
    assert_eq!(oracle.hits(), 2);

    let oracle = Oracle::scripted(vec![Reply::Status(503, None, "down")]);
    let c = client(&start(&oracle).await, fast(3));
    let err = c.health().await.unwrap_err();
    assert_eq!(err.status(), Some(503));
    assert_eq!(oracle.hits(), 1);
}

/// Real signed receipts: a client session signs, the node countersigns, oracles verify.
fn signed_receipts(n: u64) -> Vec<SignedReceipt> {
    let operator = SigningKey::from_bytes(&[4; 32]);
    let node = NodeIdentity::new(
        DEP,
        SigningKey::from_bytes(&[2; 32]),
        operator.verifying_key().to_bytes(),
    );
    let buyer = SigningKey::from_bytes(&[3; 32]).verifying_key().to_bytes();
    let mut session = ClientSession::new(
        DEP,
        SigningKey::from_bytes(&[1; 32]),
        buyer,
        node.key(),
        42,
        0,
    );
    (0..n)
        .map(|i| {
            let (r, sig) = session.record_signed(1_000, 10 + i as i64).unwrap();
            node.countersign(&r, sig).unwrap()
        })
        .collect()
}

#[tokio::test]
async fn fanout_goes_on_when_one_oracle_is_down() {
    let a = Oracle {
        verify: true,
        ..Oracle::default()
    };
    let b = Oracle {
        verify: true,
        ..Oracle::default()
    };
    let refusing = Oracle::always(Reply::Status(413, None, "too many items"));
    let (dead, _) = dead_url().await;
    let urls = [
        start(&a).await,
        dead.clone(),
        start(&b).await,
        start(&refusing).await,
    ];
    let fanout = Fanout::from_urls(&urls, fast(2)).unwrap();

    let mut items = signed_receipts(5);
    items[3].node_signature[0] ^= 1; // one bad countersignature
    let report = fanout.submit_receipts(&items).await;

    assert_eq!(report.outcomes.len(), 4);
    assert_eq!(report.succeeded(), 2);
    assert!(!report.all_succeeded());
    for (i, o) in report.outcomes.iter().enumerate() {
        assert!(
            o.oracle.starts_with(&urls[i]),
            "outcomes keep the oracles' order"
        );
    }
    let failures: Vec<(&str, &backhaul_client::SubmitError)> = report.failures().collect();
    assert_eq!(failures.len(), 2);
    assert!(failures[0].0.starts_with(&dead));
    assert!(matches!(
        failures[0].1.error,
        ClientError::Transport { attempts: 2, .. }
    ));
    assert!(failures[1].0.starts_with(&urls[3]));
    assert_eq!(failures[1].1.error.server_error(), Some("too many items"));

    for live in [&a, &b] {
        assert_eq!(live.items_per_request(), vec![5]);
    }
    let ok = report.outcomes[0].result.as_ref().unwrap();
    assert_eq!(
        ok.results[3],
        ItemResult::rejected(RejectReason::BadSignature)
    );
    assert_eq!(ok.results[0], ItemResult::ACCEPTED);
    assert_eq!(report.stored_by(5), vec![2, 2, 2, 0, 2]);

    let health = fanout.health().await;
    let healthy: Vec<bool> = health.iter().map(|h| h.result.is_ok()).collect();
    assert_eq!(healthy, vec![true, false, true, false]); // the last one answers 413 to everything
}

#[tokio::test]
async fn fanout_is_concurrent() {
    let slow: Vec<Oracle> = (0..3)
        .map(|_| Oracle {
            delay: Duration::from_millis(400),
            ..Oracle::default()
        })
        .collect();
    let mut urls = Vec::new();
    for o in &slow {
        urls.push(start(o).await);
    }
    let fanout = Fanout::from_urls(&urls, fast(1)).unwrap();
    let started = Instant::now();
    let report = fanout.submit_bindings(&bindings(3)).await;
    let elapsed = started.elapsed();
    assert!(report.all_succeeded());
    assert!(
        elapsed < Duration::from_millis(1_100),
        "three 400 ms oracles took {elapsed:?}"
    );
    assert!(slow.iter().all(|o| o.hits() == 1));
}
