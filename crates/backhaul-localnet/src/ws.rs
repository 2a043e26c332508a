//! Websocket transport for PubSub: the upgrade (on the websocket port, RPC port + 1, and on the
//! HTTP port's `GET /`), the per-connection loop, JSON-RPC framing and parameter parsing. The
//! subscriptions themselves are in [`crate::pubsub`], on the bank thread.

use crate::bank::BankHandle;
use crate::pubsub::{self, Outbox, Params};
use crate::rpc;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use futures::future::FutureExt;
use futures::{SinkExt, StreamExt};
use jsonrpc_core::{Call, Error, ErrorCode, Id, MethodCall, Value};
use solana_rpc_client_api::config::{
    RpcAccountInfoConfig, RpcProgramAccountsConfig, RpcSignatureSubscribeConfig,
    RpcTransactionLogsConfig, RpcTransactionLogsFilter, UiAccountEncoding,
};
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::Signature;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// Largest message a client may send (requests are small; this bounds what a client can make the
/// endpoint buffer).
const MAX_INCOMING_MESSAGE: usize = 1024 * 1024;

/// Bounds of the websocket endpoint.
#[derive(Clone, Debug)]
pub struct PubsubLimits {
    /// Open websocket connections at once; more are refused with HTTP 503.
    pub max_connections: usize,
    /// Subscriptions one connection may hold; more are refused with a JSON-RPC error.
    pub max_subscriptions_per_connection: usize,
    /// Messages queued for a connection that does not read them; past it the connection is
    /// closed (close code 1008, "notification queue full").
    pub max_queued_messages: usize,
}

impl Default for PubsubLimits {
    fn default() -> Self {
        PubsubLimits {
            max_connections: 256,
            max_subscriptions_per_connection: 1_000,
            max_queued_messages: 10_000,
        }
    }
}

/// The websocket side of the endpoint, shared by both ports' routers.
pub(crate) struct PubsubServer {
    bank: BankHandle,
    limits: PubsubLimits,
    connections: Arc<Semaphore>,
    next_conn: AtomicU64,
    shutdown: watch::Receiver<bool>,
}

impl PubsubServer {
    pub fn new(
        bank: BankHandle,
        limits: PubsubLimits,
        shutdown: watch::Receiver<bool>,
    ) -> Arc<Self> {
        Arc::new(PubsubServer {
            bank,
            connections: Arc::new(Semaphore::new(limits.max_connections)),
            limits,
            next_conn: AtomicU64::new(0),
            shutdown,
        })
    }
}

/// The websocket port's router: every path upgrades (clients connect to `/`).
pub(crate) fn router(server: Arc<PubsubServer>) -> Router {
    Router::new().fallback(only_websocket).with_state(server)
}

async fn only_websocket(State(server): State<Arc<PubsubServer>>, req: Request) -> Response {
    if is_upgrade(req.headers()) {
        upgrade(server, req)
    } else {
        (
            StatusCode::UPGRADE_REQUIRED,
            [(header::UPGRADE, HeaderValue::from_static("websocket"))],
            "this port serves Solana's PubSub over websocket (accountSubscribe, signatureSubscribe, \
             …); connect with a websocket client, or send HTTP JSON-RPC to the RPC port\n",
        )
            .into_response()
    }
}

/// Whether `headers` ask for a websocket upgrade.
pub(crate) fn is_upgrade(headers: &HeaderMap) -> bool {
    let has = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str().is_ok_and(|v| {
                v.split(',')
                    .any(|part| part.trim().eq_ignore_ascii_case(token))
            })
        })
    };
    has(header::UPGRADE, "websocket") && has(header::CONNECTION, "upgrade")
}

fn refuse(status: StatusCode, message: String) -> Response {
    tracing::debug!(%status, %message, "websocket upgrade refused");
    (status, message).into_response()
}

/// Answers a websocket handshake (RFC 6455) and serves the connection once upgraded.
pub(crate) fn upgrade(server: Arc<PubsubServer>, mut req: Request) -> Response {
    if req.method() != Method::GET {
        return refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            "a websocket upgrade is a GET request\n".into(),
        );
    }
    let version_ok = req
        .headers()
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v == "13");
    if !version_ok {
        return (
            StatusCode::BAD_REQUEST,
            [(
                header::SEC_WEBSOCKET_VERSION,
                HeaderValue::from_static("13"),
            )],
            "unsupported websocket version: use Sec-WebSocket-Version 13\n",
        )
            .into_response();
    }
    let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY).cloned() else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "missing Sec-WebSocket-Key header\n".into(),
        );
    };
    let Ok(permit) = server.connections.clone().try_acquire_owned() else {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "too many websocket connections (the limit is {}); close one and retry\n",
                server.limits.max_connections
            ),
        );
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let config = WebSocketConfig::default()
                    .max_message_size(Some(MAX_INCOMING_MESSAGE))
                    .max_frame_size(Some(MAX_INCOMING_MESSAGE));
                let ws = WebSocketStream::from_raw_socket(
                    hyper_util::rt::TokioIo::new(upgraded),
                    Role::Server,
                    Some(config),
                )
                .await;
                serve(server, ws, permit).await;
            }
            Err(e) => tracing::debug!(error = %e, "websocket upgrade failed"),
        }
    });
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    response
}

/// One connection: reads requests, writes responses and notifications, until either side
/// closes, the client stops reading, or the endpoint shuts down.
async fn serve<S>(server: Arc<PubsubServer>, ws: WebSocketStream<S>, _permit: OwnedSemaphorePermit)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let conn = server.next_conn.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(conn, "websocket connected");
    let (outbox, mut queue) = Outbox::new(conn, server.limits.max_queued_messages);
    let (mut sink, mut stream) = ws.split();
    let mut shutdown = server.shutdown.clone();

    let writer = async {
        let close = |code: CloseCode, reason: &'static str| {
            Message::Close(Some(CloseFrame {
                code,
                reason: reason.into(),
            }))
        };
        loop {
            tokio::select! {
                biased;
                _ = outbox.overflowed() => {
                    let _ = sink.send(close(CloseCode::Policy, "notification queue full")).await;
                    break;
                }
                _ = shutdown.wait_for(|stop| *stop).map(|_| ()) => {
                    let _ = sink.send(close(CloseCode::Away, "the endpoint is shutting down")).await;
                    break;
                }
                message = queue.recv() => {
                    let Some(text) = message else { break };
                    if sink.send(Message::text(text)).await.is_err() {
                        break;
                    }
                }
            }
        }
    };
    let reader = async {
        while let Some(message) = stream.next().await {
            match message {
                Ok(Message::Text(text)) => on_message(&server, &outbox, text.as_str()).await,
                Ok(Message::Binary(bytes)) => match std::str::from_utf8(&bytes) {
                    Ok(text) => on_message(&server, &outbox, text).await,
                    Err(_) => {
                        outbox.push(pubsub::failure(Id::Null, Error::parse_error()));
                    }
                },
                Ok(Message::Close(_)) => break,
                Ok(_) => {} // ping / pong (answered by tungstenite)
                Err(e) => {
                    tracing::debug!(conn, error = %e, "websocket read failed");
                    break;
                }
            }
        }
    };
    tokio::select! {
        _ = writer => {}
        _ = reader => {}
    }
    let forgotten = server
        .bank
        .call(move |b| async move { b.pubsub.remove_connection(conn) }.boxed_local())
        .await;
    if forgotten.is_err() {
        tracing::debug!(
            conn,
            "bank stopped before the connection's subscriptions were removed"
        );
    }
    tracing::debug!(conn, "websocket closed");
}

/// One client message: a JSON-RPC request (batches are refused).
async fn on_message(server: &PubsubServer, outbox: &Outbox, text: &str) {
    let request: jsonrpc_core::Request = match serde_json::from_str(text) {
        Ok(r) => r,
        Err(_) => {
            outbox.push(pubsub::failure(Id::Null, Error::parse_error()));
            return;
        }
    };
    match request {
        jsonrpc_core::Request::Single(Call::MethodCall(call)) => {
            on_call(server, outbox, call).await
        }
        // Notifications get no answer (and subscribing needs an id to answer with).
        jsonrpc_core::Request::Single(Call::Notification(_)) => {}
        jsonrpc_core::Request::Single(Call::Invalid { id }) => {
            outbox.push(pubsub::failure(id, Error::invalid_request()));
        }
        jsonrpc_core::Request::Batch(_) => {
            outbox.push(pubsub::failure(
                Id::Null,
                Error {
                    code: ErrorCode::InvalidRequest,
                    message: "Invalid request: batches are not supported over websocket; send \
                              one request per message"
                        .into(),
                    data: None,
                },
            ));
        }
    }
}

/// A parameter that does not parse, worded as Agave's PubSub.
fn invalid(thing: &str) -> Error {
    Error {
        code: ErrorCode::InvalidParams,
        message: format!("Invalid Request: Invalid {thing} provided"),
        data: None,
    }
}

fn pubkey_param(s: &str, thing: &str) -> Result<Pubkey, Error> {
    Pubkey::from_str(s).map_err(|_| invalid(thing))
}

/// The subscription a `*Subscribe` call asks for, with its parameters checked.
fn subscription_params(call: &MethodCall) -> Option<Result<Params, Error>> {
    let params = call.params.clone();
    let parsed = match call.method.as_str() {
        "accountSubscribe" => rpc::parse::<(String, Option<RpcAccountInfoConfig>)>(params, 1, 2)
            .and_then(|(key, config)| {
                let config = config.unwrap_or_default();
                Ok(Params::Account {
                    key: pubkey_param(&key, "pubkey")?,
                    encoding: config.encoding.unwrap_or(UiAccountEncoding::Binary),
                    data_slice: config.data_slice,
                })
            }),
        "programSubscribe" => rpc::parse::<(String, Option<RpcProgramAccountsConfig>)>(
            params, 1, 2,
        )
        .and_then(|(program, config)| {
            let config = config.unwrap_or_default();
            let filters = config.filters.unwrap_or_default();
            rpc::check_filters(&filters)?;
            Ok(Params::Program {
                program: pubkey_param(&program, "pubkey")?,
                filters,
                encoding: config
                    .account_config
                    .encoding
                    .unwrap_or(UiAccountEncoding::Binary),
                data_slice: config.account_config.data_slice,
            })
        }),
        "logsSubscribe" => {
            rpc::parse::<(RpcTransactionLogsFilter, Option<RpcTransactionLogsConfig>)>(params, 1, 2)
                .and_then(|(filter, _config)| {
                    let mentions = match filter {
                        RpcTransactionLogsFilter::All | RpcTransactionLogsFilter::AllWithVotes => {
                            None
                        }
                        RpcTransactionLogsFilter::Mentions(keys) => {
                            let [key] = keys.as_slice() else {
                                return Err(Error {
                                    code: ErrorCode::InvalidParams,
                                    message: "Invalid Request: Only 1 address supported".into(),
                                    data: None,
                                });
                            };
                            Some(pubkey_param(key, "mentions")?)
                        }
                    };
                    Ok(Params::Logs { mentions })
                })
        }
        "signatureSubscribe" => rpc::parse::<(String, Option<RpcSignatureSubscribeConfig>)>(
            params, 1, 2,
        )
        .and_then(|(signature, config)| {
            let config = config.unwrap_or_default();
            Ok(Params::Signature {
                signature: Signature::from_str(&signature).map_err(|_| invalid("signature"))?,
                received: config.enable_received_notification.unwrap_or(false),
            })
        }),
        "slotSubscribe" => rpc::no_params(params).map(|()| Params::Slot),
        _ => return None,
    };
    Some(parsed)
}

const UNSUBSCRIBE: [&str; 5] = [
    "accountUnsubscribe",
    "programUnsubscribe",
    "logsUnsubscribe",
    "signatureUnsubscribe",
    "slotUnsubscribe",
];

async fn on_call(server: &PubsubServer, outbox: &Outbox, call: MethodCall) {
    let id = call.id.clone();
    let bank_gone =
        || rpc::internal("the bank did not answer (stopped, or the request panicked; see the log)");
    if let Some(params) = subscription_params(&call) {
        let params = match params {
            Ok(p) => p,
            Err(e) => {
                outbox.push(pubsub::failure(id, e));
                return;
            }
        };
        let limit = server.limits.max_subscriptions_per_connection;
        let job_outbox = outbox.clone();
        let job_id = id.clone();
        let ran = server
            .bank
            .call(move |b| pubsub::subscribe(b, job_outbox, job_id, params, limit).boxed_local())
            .await;
        if ran.is_err() {
            outbox.push(pubsub::failure(id, bank_gone()));
        }
        return;
    }
    if UNSUBSCRIBE.contains(&call.method.as_str()) {
        let sub = match rpc::parse::<(u64,)>(call.params, 1, 1) {
            Ok((sub,)) => sub,
            Err(e) => {
                outbox.push(pubsub::failure(id, e));
                return;
            }
        };
        let conn = outbox.conn();
        let removed = server
            .bank
            .call(move |b| async move { b.pubsub.remove(conn, sub) }.boxed_local())
            .await;
        let message = match removed {
            Ok(true) => pubsub::success(id, Value::Bool(true)),
            Ok(false) => pubsub::failure(
                id,
                Error {
                    code: ErrorCode::InvalidParams,
                    message: "Invalid subscription id.".into(),
                    data: None,
                },
            ),
            Err(_) => pubsub::failure(id, bank_gone()),
        };
        outbox.push(message);
        return;
    }
    outbox.push(pubsub::failure(id, Error::method_not_found()));
}
