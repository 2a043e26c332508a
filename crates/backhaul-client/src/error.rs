//! What can go wrong talking to an oracle.

use backhaul_protocol::api::ItemResult;
use std::time::Duration;

/// A request to one oracle failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The oracle's base URL does not parse or cannot carry paths.
    #[error("invalid oracle URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },

    /// The HTTP client could not be built (TLS backend, bad configuration).
    #[error("cannot build the HTTP client: {0}")]
    Build(#[source] reqwest::Error),

    /// The request could not be encoded.
    #[error("cannot encode the request: {0}")]
    Encode(#[source] std::io::Error),

    /// Connection refused or reset, timeout, or the body could not be read, on every attempt.
    #[error("{url}: request failed after {attempts} attempt(s): {}", chain(.source))]
    Transport {
        url: String,
        attempts: u32,
        #[source]
        source: reqwest::Error,
    },

    /// `400`: the oracle could not decode the request; nothing was stored. Not retried.
    #[error("{url}: 400 bad request: {error}")]
    BadRequest { url: String, error: String },

    /// `413`: the body or the item count is over the oracle's limit. Not retried.
    #[error("{url}: 413 payload too large: {error}")]
    PayloadTooLarge { url: String, error: String },

    /// `415`: the oracle refused the content type. Not retried.
    #[error("{url}: 415 unsupported media type: {error}")]
    UnsupportedMediaType { url: String, error: String },

    /// `429` on the last attempt; `retry_after` is what the oracle asked for.
    #[error("{url}: 429 rate limited after {attempts} attempt(s) (retry after {retry_after:?}): {error}")]
    RateLimited {
        url: String,
        attempts: u32,
        retry_after: Option<Duration>,
        error: String,
    },

    /// `503` (or a gateway's `502`/`504`) on the last attempt: nothing was stored.
    #[error("{url}: {status} unavailable after {attempts} attempt(s): {error}")]
    Unavailable {
        url: String,
        status: u16,
        attempts: u32,
        error: String,
    },

    /// `404` where a resource was expected (an unknown epoch's dataset, a wrong base URL).
    #[error("{url}: 404 not found: {error}")]
    NotFound { url: String, error: String },

    /// Any other status the API does not define here. Not retried.
    #[error("{url}: unexpected status {status}: {error}")]
    Status {
        url: String,
        status: u16,
        error: String,
    },

    /// A success response whose body is not what the API promises.
    #[error("{url}: unexpected response: {reason}")]
    BadResponse { url: String, reason: String },
}

impl ClientError {
    /// The HTTP status the oracle answered with, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::BadRequest { .. } => Some(400),
            ClientError::PayloadTooLarge { .. } => Some(413),
            ClientError::UnsupportedMediaType { .. } => Some(415),
            ClientError::RateLimited { .. } => Some(429),
            ClientError::NotFound { .. } => Some(404),
            ClientError::Unavailable { status, .. } | ClientError::Status { status, .. } => {
                Some(*status)
            }
            _ => None,
        }
    }

    /// The oracle's `ErrorResponse.error` (or the start of its body when it is not JSON).
    pub fn server_error(&self) -> Option<&str> {
        match self {
            ClientError::BadRequest { error, .. }
            | ClientError::PayloadTooLarge { error, .. }
            | ClientError::UnsupportedMediaType { error, .. }
            | ClientError::RateLimited { error, .. }
            | ClientError::Unavailable { error, .. }
            | ClientError::NotFound { error, .. }
            | ClientError::Status { error, .. } => Some(error),
            _ => None,
        }
    }

    /// Whether sending the same request later may succeed (the retry policy gave up on it).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ClientError::Transport { .. }
                | ClientError::RateLimited { .. }
                | ClientError::Unavailable { .. }
        )
    }
}

/// An error and its causes, `: `-separated (reqwest's own message omits them, e.g. "connection
/// refused").
fn chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = e.source();
    }
    out
}

/// A submission failed part way. Chunks are sent in order, so `completed` holds the results of
/// the first `completed.len()` items (the chunks answered before the failure); the rest were not
/// stored by this request. Resubmitting everything is safe: stored items come back `duplicate`.
#[derive(Debug, thiserror::Error)]
#[error("{error} ({} of {total} items answered before the failure)", completed.len())]
pub struct SubmitError {
    pub completed: Vec<ItemResult>,
    pub total: usize,
    #[source]
    pub error: ClientError,
}

/// A signing helper refused its input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("the receipt names another node")]
    WrongNode,
    #[error("the client's signature on the receipt does not verify")]
    BadClientSignature,
    #[error("the key does not match the operator of this node")]
    WrongOperator,
    #[error("the operator's signature on the binding does not verify")]
    BadOperatorSignature,
}

/// A session cannot record more.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("the session's sequence or byte counter would overflow")]
    Overflow,
}
