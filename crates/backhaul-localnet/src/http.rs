//! HTTP transport: `POST /` carries JSON-RPC (single or batch), `GET /health` answers `ok` as a
//! validator's RPC port does, and `GET /` with a websocket upgrade serves PubSub (the same as the
//! websocket port). CORS is open so browser clients (web3.js) can connect.

use crate::ws::{self, PubsubServer};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRef, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use jsonrpc_core::IoHandler;
use std::sync::Arc;

/// Requests larger than this are refused (Solana's limit is 50 KiB; batches can be larger).
const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

#[derive(Clone)]
struct Shared {
    io: Arc<IoHandler>,
    pubsub: Arc<PubsubServer>,
}

impl FromRef<Shared> for Arc<IoHandler> {
    fn from_ref(shared: &Shared) -> Self {
        shared.io.clone()
    }
}

impl FromRef<Shared> for Arc<PubsubServer> {
    fn from_ref(shared: &Shared) -> Self {
        shared.pubsub.clone()
    }
}

pub(crate) fn router(io: Arc<IoHandler>, pubsub: Arc<PubsubServer>) -> Router {
    Router::new()
        .route("/", post(rpc).options(preflight).get(root))
        .route("/health", get(health))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::map_response(cors))
        .with_state(Shared { io, pubsub })
}

/// `GET /`: a websocket upgrade, or the health check.
async fn root(State(pubsub): State<Arc<PubsubServer>>, req: Request) -> Response {
    if ws::is_upgrade(req.headers()) {
        ws::upgrade(pubsub, req)
    } else {
        health().await.into_response()
    }
}

async fn rpc(State(io): State<Arc<IoHandler>>, body: Bytes) -> Response {
    let Ok(text) = std::str::from_utf8(&body) else {
        return json(
            r#"{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"},"id":null}"#
                .to_string(),
        );
    };
    match io.handle_request(text).await {
        Some(out) => json(out),
        // Only notifications (no id): nothing to answer.
        None => StatusCode::OK.into_response(),
    }
}

fn json(body: String) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

async fn health() -> &'static str {
    "ok"
}

async fn preflight() -> StatusCode {
    StatusCode::NO_CONTENT
}

async fn cors(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, GET, OPTIONS"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("content-type, solana-client"),
    );
    response
}
