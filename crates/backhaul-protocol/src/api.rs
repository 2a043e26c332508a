//! The JSON bodies of the oracle's HTTP API (see `docs/api.md`), shared by the server and the
//! client library.

use serde::{Deserialize, Serialize};

/// Limits of the ingest endpoints.
pub const MAX_BINDINGS_PER_REQUEST: usize = 1_000;
pub const MAX_GRANTS_PER_REQUEST: usize = 1_000;
pub const MAX_RECEIPTS_PER_REQUEST: usize = 10_000;
pub const MAX_ADVERTS_PER_REQUEST: usize = 100;
/// The most adverts `GET /v1/adverts` returns at once.
pub const MAX_ADVERTS_PER_PAGE: usize = 1_000;

/// Why an ingest body (a borsh `Vec<T>` of fixed-size items) was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// The length does not match the item count in the 4-byte prefix.
    #[error("the body has {len} bytes but {count} {what}s of {item_len} bytes take {expected}: truncated or malformed")]
    Length {
        what: &'static str,
        len: usize,
        count: usize,
        item_len: usize,
        expected: usize,
    },
    /// More items than one request may carry.
    #[error("{count} items in one request; at most {max} {what}s per request")]
    TooMany {
        what: &'static str,
        count: usize,
        max: usize,
    },
    /// The bytes are not a borsh `Vec<T>`.
    #[error("the body ({len} bytes) does not decode as Vec<{what}>: {reason}")]
    Decode {
        what: &'static str,
        len: usize,
        reason: String,
    },
    /// A well-formed but empty batch.
    #[error("the body holds no {what}")]
    Empty { what: &'static str },
}

/// Decodes an ingest body: a borsh `Vec<T>` whose items take exactly `item_len` bytes each, with
/// at least one and at most `max_items` items and no trailing bytes. The length is checked
/// against the count prefix before anything is allocated, so a forged count cannot make the
/// decoder reserve memory for items that are not there.
pub fn decode_batch<T: borsh::BorshDeserialize>(
    bytes: &[u8],
    what: &'static str,
    item_len: usize,
    max_items: usize,
) -> Result<Vec<T>, BodyError> {
    if let Some(prefix) = bytes.first_chunk::<4>() {
        let count = u32::from_le_bytes(*prefix) as usize;
        let expected = count.saturating_mul(item_len).saturating_add(4);
        if bytes.len() != expected {
            return Err(BodyError::Length {
                what,
                len: bytes.len(),
                count,
                item_len,
                expected,
            });
        }
        if count > max_items {
            return Err(BodyError::TooMany {
                what,
                count,
                max: max_items,
            });
        }
    }
    let items: Vec<T> = borsh::from_slice(bytes).map_err(|e| BodyError::Decode {
        what,
        len: bytes.len(),
        reason: e.to_string(),
    })?;
    if items.is_empty() {
        return Err(BodyError::Empty { what });
    }
    Ok(items)
}

/// What happened to one submitted item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    Accepted,
    Duplicate,
    Superseded,
    Equivocation,
    /// Kept in memory for a short while, not stored: the receipt's binding or grant (the
    /// `reason`) is not here yet. It is stored when that arrives before the epoch's cutoff;
    /// otherwise it is dropped. Send the binding or grant, then the receipt again.
    Held,
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
    OutOfRange,
    /// A grant of a buyer that has no on-chain credit account: buy credits first.
    NoCreditAccount,
    /// A binding past its lifetime, or signed in the future.
    BindingExpired,
    /// The operator already has as many nodes bound as an oracle keeps.
    TooManyNodes,
    /// The buyer already has as many clients granted as an oracle keeps.
    TooManyGrants,
    /// The oracle holds as many receipts waiting for a binding or grant as it keeps.
    HeldFull,
}

impl RejectReason {
    pub const ALL: [RejectReason; 16] = [
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
        RejectReason::OutOfRange,
        RejectReason::NoCreditAccount,
        RejectReason::BindingExpired,
        RejectReason::TooManyNodes,
        RejectReason::TooManyGrants,
        RejectReason::HeldFull,
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
            RejectReason::OutOfRange => "out_of_range",
            RejectReason::NoCreditAccount => "no_credit_account",
            RejectReason::BindingExpired => "binding_expired",
            RejectReason::TooManyNodes => "too_many_nodes",
            RejectReason::TooManyGrants => "too_many_grants",
            RejectReason::HeldFull => "held_full",
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

    /// Held until its binding or grant arrives (`UnknownBinding` or `UnknownGrant`).
    pub fn held(reason: RejectReason) -> Self {
        ItemResult {
            status: ItemStatus::Held,
            reason: Some(reason),
        }
    }

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

/// An operator's (reward tree) or buyer's (usage tree) latest leaf and proof (a Merkle-sum proof,
/// format v2 of `docs/merkle.md`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofResponse {
    pub epoch: u64,
    /// base58
    pub account: String,
    pub cumulative: u64,
    /// The leaf's position among the tree's leaves (ascending by account), from 0.
    pub index: u64,
    /// From the leaf's sibling up to the top: each sibling's hash and the sum of the amounts
    /// below it.
    pub proof: Vec<ProofSibling>,
    /// hex; commits to `total` and `leaf_count`
    pub root: String,
    /// The sum of the tree's amounts.
    pub total: u64,
    pub leaf_count: u64,
}

impl ProofResponse {
    /// `account`'s leaf in `tree` (epoch `epoch`'s) with its proof, or `None` without a leaf.
    pub fn from_tree(
        epoch: u64,
        tree: &backhaul_core::tree::EpochTree,
        account: &crate::Key,
    ) -> Option<Self> {
        let proof = tree.proof_for(account)?;
        Some(ProofResponse {
            epoch,
            account: crate::dataset::b58(account),
            cumulative: proof.leaf.amount,
            index: proof.index,
            proof: proof
                .siblings
                .iter()
                .map(|s| ProofSibling {
                    hash: crate::dataset::hex(&s.hash),
                    sum: s.sum,
                })
                .collect(),
            root: crate::dataset::hex(&tree.root),
            total: tree.total,
            leaf_count: tree.leaf_count(),
        })
    }

    /// The siblings decoded, or `None` if a hash is not 32 bytes of hex.
    pub fn siblings(&self) -> Option<Vec<backhaul_core::sum_tree::SumNode>> {
        self.proof
            .iter()
            .map(|s| {
                crate::dataset::hash_from_hex(&s.hash)
                    .map(|hash| backhaul_core::sum_tree::SumNode { hash, sum: s.sum })
            })
            .collect()
    }
}

/// One level of a [`ProofResponse`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofSibling {
    /// hex
    pub hash: String,
    pub sum: u64,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SignedGrant, SIGNED_GRANT_LEN};

    fn grants(n: u32) -> Vec<u8> {
        let mut body = n.to_le_bytes().to_vec();
        for i in 0..n {
            let mut item = vec![0u8; SIGNED_GRANT_LEN];
            item[0] = i as u8;
            body.extend_from_slice(&item);
        }
        body
    }

    fn decode(bytes: &[u8], max: usize) -> Result<Vec<SignedGrant>, BodyError> {
        decode_batch(bytes, "SignedGrant", SIGNED_GRANT_LEN, max)
    }

    #[test]
    fn exact_bodies_decode() {
        let items = decode(&grants(3), 10).expect("three grants");
        assert_eq!(items.len(), 3);
        assert_eq!(items[2].grant.buyer[0], 2);
    }

    #[test]
    fn every_malformed_body_is_refused_with_its_reason() {
        assert!(matches!(decode(&[], 10), Err(BodyError::Decode { .. })));
        assert!(matches!(decode(&[1, 0], 10), Err(BodyError::Decode { .. })));
        assert_eq!(
            decode(&grants(0), 10),
            Err(BodyError::Empty {
                what: "SignedGrant"
            })
        );
        let mut long = grants(2);
        long.push(0);
        assert!(matches!(
            decode(&long, 10),
            Err(BodyError::Length { count: 2, .. })
        ));
        let mut short = grants(2);
        short.pop();
        assert!(matches!(decode(&short, 10), Err(BodyError::Length { .. })));
        assert!(matches!(
            decode(&grants(11), 10),
            Err(BodyError::TooMany {
                count: 11,
                max: 10,
                ..
            })
        ));
        // A count that would overflow the expected length on 32-bit hosts saturates and is
        // refused on length, before any allocation.
        let forged = u32::MAX.to_le_bytes();
        assert!(matches!(decode(&forged, 10), Err(BodyError::Length { .. })));
    }
}

/// One node advert as `GET /v1/adverts` lists it; check `signature` before trusting it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdvertEntry {
    /// base58
    pub node: String,
    pub endpoint: String,
    pub issued_at: i64,
    /// hex of the node's signature of the advert
    pub signature: String,
}

impl AdvertEntry {
    /// The entry of a signed advert.
    pub fn of(a: &crate::advert::SignedAdvert) -> Option<Self> {
        Some(AdvertEntry {
            node: crate::dataset::b58(&a.advert.node),
            endpoint: a.advert.endpoint()?.to_string(),
            issued_at: a.advert.issued_at,
            signature: crate::dataset::hex(&a.node_signature),
        })
    }

    /// The signed advert again, or `None` when a field does not decode.
    pub fn signed(&self) -> Option<crate::advert::SignedAdvert> {
        let node = crate::dataset::key_from_b58(&self.node)?;
        let endpoint = crate::advert::Endpoint::parse(&self.endpoint)?;
        let advert = crate::advert::NodeAdvert::new(node, &endpoint, self.issued_at)?;
        let sig = crate::dataset::hex_bytes(&self.signature)?;
        let node_signature: [u8; 64] = sig.try_into().ok()?;
        Some(crate::advert::SignedAdvert {
            advert,
            node_signature,
        })
    }
}
