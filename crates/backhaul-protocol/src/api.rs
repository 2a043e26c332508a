//! The JSON bodies of the oracle's HTTP API (see `docs/api.md`), shared by the server and the
//! client library.

use serde::{Deserialize, Serialize};

/// Limits of the ingest endpoints.
pub const MAX_BINDINGS_PER_REQUEST: usize = 1_000;
pub const MAX_GRANTS_PER_REQUEST: usize = 1_000;
pub const MAX_RECEIPTS_PER_REQUEST: usize = 10_000;

/// What happened to one submitted item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    Accepted,
    Duplicate,
    Superseded,
    Equivocation,
    Rejected,
}

/// Why an item was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    BadSignature,
    BadKey,
    EpochNotOpen,
    RateExceeded,
    UnknownGrant,
    GrantExpired,
    UnknownBinding,
    SelfDealing,
    CreditsExhausted,
    RateLimited,
}

impl RejectReason {
    pub const ALL: [RejectReason; 10] = [
        RejectReason::BadSignature,
        RejectReason::BadKey,
        RejectReason::EpochNotOpen,
        RejectReason::RateExceeded,
        RejectReason::UnknownGrant,
        RejectReason::GrantExpired,
        RejectReason::UnknownBinding,
        RejectReason::SelfDealing,
        RejectReason::CreditsExhausted,
        RejectReason::RateLimited,
    ];

    /// The snake_case name used in JSON, metrics and datasets.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::BadSignature => "bad_signature",
            RejectReason::BadKey => "bad_key",
            RejectReason::EpochNotOpen => "epoch_not_open",
            RejectReason::RateExceeded => "rate_exceeded",
            RejectReason::UnknownGrant => "unknown_grant",
            RejectReason::GrantExpired => "grant_expired",
            RejectReason::UnknownBinding => "unknown_binding",
            RejectReason::SelfDealing => "self_dealing",
            RejectReason::CreditsExhausted => "credits_exhausted",
            RejectReason::RateLimited => "rate_limited",
        }
    }
}

/// One item's result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemResult {
    pub status: ItemStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<RejectReason>,
}

impl ItemResult {
    pub const ACCEPTED: ItemResult = ItemResult {
        status: ItemStatus::Accepted,
        reason: None,
    };
    pub const DUPLICATE: ItemResult = ItemResult {
        status: ItemStatus::Duplicate,
        reason: None,
    };
    pub const SUPERSEDED: ItemResult = ItemResult {
        status: ItemStatus::Superseded,
        reason: None,
    };
    pub const EQUIVOCATION: ItemResult = ItemResult {
        status: ItemStatus::Equivocation,
        reason: None,
    };

    pub fn rejected(reason: RejectReason) -> Self {
        ItemResult {
            status: ItemStatus::Rejected,
            reason: Some(reason),
        }
    }
}

/// The answer to an ingest request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchResponse {
    pub results: Vec<ItemResult>,
}

/// The body of every error response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    pub error: String,
}

/// An operator's (reward tree) or buyer's (usage tree) latest leaf and proof.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofResponse {
    pub epoch: u64,
    /// base58
    pub account: String,
    pub cumulative: u64,
    /// hex, from the leaf's sibling up to the root
    pub proof: Vec<String>,
    /// hex
    pub root: String,
}

/// One closed epoch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochSummary {
    pub epoch: u64,
    /// hex
    pub dataset_hash: String,
    /// hex
    pub reward_root: String,
    pub reward_leaf_count: u64,
    pub reward_total: u64,
    pub allocation: u64,
    /// hex
    pub usage_root: String,
    pub usage_leaf_count: u64,
    pub usage_total: u64,
    pub credits_consumed: u64,
    pub closed_at: i64,
}
