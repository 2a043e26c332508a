//! The dashboard's HTTP server: the page (embedded, no CDN), its JSON API over the latest read,
//! CSV exports, proof downloads and Prometheus metrics. Read-only; every answer is computed from
//! the read the page shows, so the page, the CSV and the API always agree.

use super::Published;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use backhaul_dashboard::{csv, firm, listing, operator};
use backhaul_protocol::dataset::key_from_b58;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

/// What the server shows: the latest read, and the error of the last read if it failed.
#[derive(Default)]
pub struct DashboardState {
    current: RwLock<Option<Arc<Published>>>,
    last_error: RwLock<Option<String>>,
}

impl DashboardState {
    pub fn publish(&self, p: Published) {
        if let Ok(mut c) = self.current.write() {
            *c = Some(Arc::new(p));
        }
        if let Ok(mut e) = self.last_error.write() {
            *e = None;
        }
    }

    pub fn fail(&self, error: String) {
        if let Ok(mut e) = self.last_error.write() {
            *e = Some(error);
        }
    }

    fn current(&self) -> Result<Arc<Published>, ApiError> {
        self.current
            .read()
            .ok()
            .and_then(|c| c.clone())
            .ok_or_else(|| {
                let why = self.last_error.read().ok().and_then(|e| e.clone()).map_or(
                    "the first read of the chain and the datasets is not done yet: retry in a \
                     few seconds"
                        .to_string(),
                    |e| format!("the chain could not be read yet: {e}"),
                );
                ApiError(StatusCode::SERVICE_UNAVAILABLE, why)
            })
    }

    fn last_error(&self) -> Option<String> {
        self.last_error.read().ok().and_then(|e| e.clone())
    }
}

/// An error answer: `{"error": "..."}` with its status.
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        #[derive(Serialize)]
        struct Body {
            error: String,
        }
        (self.0, Json(Body { error: self.1 })).into_response()
    }
}

type Shared = State<Arc<DashboardState>>;

/// The router over `state`.
pub fn router(state: Arc<DashboardState>) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX) }),
        )
        .route(
            "/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/style.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
        .route("/api/status", get(status))
        .route("/api/network", get(network))
        .route("/api/guardian", get(guardian))
        .route("/api/checks", get(checks))
        .route("/api/operators", get(operators))
        .route("/api/operators/{key}", get(operator_page))
        .route("/api/operators/{key}/proof", get(operator_proof))
        .route("/api/operators/{key}/history.csv", get(operator_csv))
        .route("/api/firms", get(firms))
        .route("/api/firms/{key}", get(firm_page))
        .route("/api/firms/{key}/history.csv", get(firm_csv))
        .route("/metrics", get(metrics::render))
        .fallback(|| async {
            ApiError(
                StatusCode::NOT_FOUND,
                "no such page: the dashboard is at /".into(),
            )
        })
        .with_state(state)
}

/// Binds `addr` and serves `state` until the process ends; returns the address bound.
pub async fn serve(addr: SocketAddr, state: Arc<DashboardState>) -> anyhow::Result<SocketAddr> {
    use anyhow::Context as _;
    metrics::install();
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("--listen {addr}: cannot listen (is another dashboard there?)"))?;
    let bound = listener.local_addr()?;
    let app = router(state);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the dashboard's server stopped");
        }
    });
    tracing::info!(%bound, "dashboard on http://{bound}/");
    Ok(bound)
}

const INDEX: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/style.css");

/// The page only runs its own script and style: data from a dataset can never become markup.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

fn key(s: &str, what: &str) -> Result<[u8; 32], ApiError> {
    key_from_b58(s).ok_or_else(|| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("{s:?} is not a base58 public key (an {what}'s wallet address)"),
        )
    })
}

/// The read the page shows: when, how long it took, and the last error.
#[derive(Serialize)]
struct StatusBody {
    read_at: i64,
    took_ms: u64,
    chain_time: i64,
    last_error: Option<String>,
}

async fn status(State(s): Shared) -> Result<Json<StatusBody>, ApiError> {
    let p = s.current()?;
    Ok(Json(StatusBody {
        read_at: p.read_at,
        took_ms: p.took_ms,
        chain_time: p.model.now,
        last_error: s.last_error(),
    }))
}

async fn network(State(s): Shared) -> Result<Response, ApiError> {
    let p = s.current()?;
    Ok(Json(&p.network).into_response())
}

async fn guardian(State(s): Shared) -> Result<Response, ApiError> {
    let p = s.current()?;
    Ok(Json(&p.guardian).into_response())
}

async fn checks(State(s): Shared) -> Result<Response, ApiError> {
    let p = s.current()?;
    Ok(Json(&p.model.report).into_response())
}

#[derive(Deserialize)]
struct PageQuery {
    #[serde(default)]
    page: usize,
    #[serde(default = "per_page")]
    per_page: usize,
}

fn per_page() -> usize {
    50
}

async fn operators(State(s): Shared, Query(q): Query<PageQuery>) -> Result<Response, ApiError> {
    let p = s.current()?;
    Ok(Json(listing::operators(&p.model, q.page, q.per_page)).into_response())
}

async fn firms(State(s): Shared, Query(q): Query<PageQuery>) -> Result<Response, ApiError> {
    let p = s.current()?;
    Ok(Json(listing::firms(&p.model, q.page, q.per_page)).into_response())
}

fn unknown(what: &str, k: &str) -> ApiError {
    ApiError(
        StatusCode::NOT_FOUND,
        format!("no {what} {k} in any dataset or account of this deployment"),
    )
}

async fn operator_page(State(s): Shared, Path(k): Path<String>) -> Result<Response, ApiError> {
    let op = key(&k, "operator")?;
    let p = s.current()?;
    let v = operator::view(&p.model, &op).ok_or_else(|| unknown("operator", &k))?;
    Ok(Json(v).into_response())
}

async fn operator_proof(State(s): Shared, Path(k): Path<String>) -> Result<Response, ApiError> {
    let op = key(&k, "operator")?;
    let p = s.current()?;
    let proof = operator::proof(&p.model, &op).map_err(|e| ApiError(StatusCode::NOT_FOUND, e))?;
    Ok(attachment(
        "application/json",
        format!("backhaul-proof-{k}-epoch-{}.json", proof.epoch),
        serde_json::to_string_pretty(&proof).unwrap_or_default(),
    ))
}

async fn operator_csv(State(s): Shared, Path(k): Path<String>) -> Result<Response, ApiError> {
    let op = key(&k, "operator")?;
    let p = s.current()?;
    let rows = operator::history(&p.model, &op);
    Ok(attachment(
        "text/csv; charset=utf-8",
        format!("backhaul-operator-{k}.csv"),
        csv::operator(&rows, p.model.config.decimals),
    ))
}

async fn firm_page(State(s): Shared, Path(k): Path<String>) -> Result<Response, ApiError> {
    let buyer = key(&k, "AI firm")?;
    let p = s.current()?;
    let v = firm::view(&p.model, &buyer).ok_or_else(|| unknown("firm", &k))?;
    Ok(Json(v).into_response())
}

async fn firm_csv(State(s): Shared, Path(k): Path<String>) -> Result<Response, ApiError> {
    let buyer = key(&k, "AI firm")?;
    let p = s.current()?;
    let rows = firm::history(&p.model, &buyer);
    Ok(attachment(
        "text/csv; charset=utf-8",
        format!("backhaul-firm-{k}.csv"),
        csv::firm(&rows, p.model.config.decimals),
    ))
}

fn attachment(content_type: &'static str, name: String, body: String) -> Response {
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
        .unwrap_or(HeaderValue::from_static("attachment"));
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response()
}

/// The dashboard's Prometheus metrics.
pub mod metrics {
    /// Installs the process-wide recorder (shared with the oracle's when one runs in the same
    /// process, as in the demo).
    pub fn install() {
        if backhaul_oracle::metrics::handle().is_none() {
            tracing::warn!("another metrics recorder is installed: /metrics will be empty");
        }
    }

    /// A read of the deployment: `backhaul_dashboard_reads_total{result}`, and after a good one
    /// `backhaul_dashboard_read_ms` and `backhaul_dashboard_failed_checks`.
    pub fn read(ok: bool, took_ms: u64, failed_checks: usize) {
        let result = if ok { "ok" } else { "error" };
        ::metrics::counter!("backhaul_dashboard_reads_total", "result" => result).increment(1);
        if ok {
            ::metrics::gauge!("backhaul_dashboard_read_ms").set(took_ms as f64);
            ::metrics::gauge!("backhaul_dashboard_failed_checks").set(failed_checks as f64);
        }
    }

    pub async fn render() -> impl axum::response::IntoResponse {
        (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4",
            )],
            backhaul_oracle::metrics::handle()
                .map(|h| h.render())
                .unwrap_or_default(),
        )
    }
}
