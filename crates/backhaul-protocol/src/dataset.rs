//! The epoch dataset: everything an oracle committed for one epoch, published as one canonical
//! JSON file whose sha256 goes on-chain (`dataset_hash`). Anyone can recompute both roots from
//! the leaves and check every figure.
//!
//! The encoding is canonical: fields in declaration order, lists sorted by account bytes, maps
//! ordered by key, integers as JSON numbers, keys in base58 and hashes in hex, no whitespace. The
//! same receipts therefore give the same bytes on every machine.

use crate::Key;
use backhaul_core::merkle::sha256v;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Format version written in every dataset. Version 4: both roots are Merkle-sum roots (format v2
/// of `docs/merkle.md`), which commit to the tree's total and leaf count.
pub const DATASET_VERSION: u32 = 4;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dataset {
    pub version: u32,
    /// base58
    pub program_id: String,
    /// base58
    pub config: String,
    pub epoch: u64,
    /// First and last second (exclusive) of the epoch.
    pub epoch_start: i64,
    pub epoch_end: i64,
    /// sha256 (hex) of the epoch's agreed input file (`input::EpochInput`): the signed receipts,
    /// grants and bindings the close read, published beside the dataset.
    pub input_hash: String,
    pub parameters: Parameters,
    pub budget: Budget,
    /// What this epoch adds for all operators together (the on-chain `allocation`).
    pub allocation: u64,
    pub rewards: RewardTree,
    pub usage: UsageTree,
    /// Who served whom: counted bytes per (buyer, operator) and the reward each buyer's pot paid
    /// that operator, by buyer then operator bytes ascending. Each operator's `amount` in the
    /// reward tree is the sum of its rows.
    pub served: Vec<Served>,
    /// Verified bytes per node, and the operator each node is bound to.
    pub nodes: Vec<NodeUsage>,
    /// Sessions that did not count, by reason.
    pub rejected: BTreeMap<String, u64>,
    pub stats: Stats,
}

/// The inputs the oracle used, read from its configuration and from the chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Parameters {
    /// Bandwidth price: credits per GiB served.
    pub credits_per_gib: u64,
    /// The most bytes one node-client pair counts for in an epoch.
    pub pair_cap_bytes: u64,
    /// Sessions faster than this (cumulative bytes / session age) do not count.
    pub max_rate_bytes_per_sec: u64,
    /// From the chain: the emission schedule, what it already minted, the moving average of burns
    /// before this epoch, the economics, the sealed ledger's burns and price, the decimals.
    pub initial_per_epoch: u64,
    pub decay_bps: u16,
    pub decay_period_epochs: u64,
    pub floor_per_epoch: u64,
    pub lifetime_cap: u64,
    pub scheduled_minted: u64,
    pub previous_burn_ema: u64,
    pub net_emissions_cap: u64,
    pub burn_smoothing_epochs: u64,
    pub usage_cap_bps: u32,
    pub tokens_burned: u64,
    pub credits_per_token: u64,
    pub decimals: u8,
    /// Totals of the previous epoch's trees, which this epoch's build on.
    pub previous_reward_total: u64,
    pub previous_usage_total: u64,
    /// What the previous usage tree's consumption cost its buyers, in tokens.
    pub previous_usage_cost_total: u64,
    /// Tokens burned in finalized epochs and this epoch, less everything already re-minted: the
    /// most net emissions can add.
    pub burns_not_reemitted: u64,
}

/// The epoch's budget as the shared crate computes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    pub scheduled: u64,
    pub scheduled_room: u64,
    pub burn_ema: u64,
    pub net: u64,
    /// k × what buyers paid for the credits consumed this epoch.
    pub usage_cap: u64,
    pub total: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RewardTree {
    /// hex
    pub root: String,
    pub leaf_count: u64,
    /// Sum of all cumulative amounts.
    pub total: u64,
    /// One per operator ever rewarded, by operator bytes ascending.
    pub leaves: Vec<RewardLeaf>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RewardLeaf {
    /// base58
    pub operator: String,
    pub cumulative: u64,
    /// This epoch's reward.
    pub amount: u64,
    /// Verified bytes this epoch.
    pub bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageTree {
    /// hex
    pub root: String,
    pub leaf_count: u64,
    pub total: u64,
    /// Credits consumed this epoch by all buyers.
    pub credits_consumed: u64,
    /// What all consumption so far cost its buyers, in tokens (the on-chain `usage_cost_total`).
    pub cost_total: u64,
    /// What this epoch's consumption cost its buyers (the on-chain `usage_cost`).
    pub usage_cost: u64,
    /// One per buyer ever charged, by buyer bytes ascending.
    pub leaves: Vec<UsageLeaf>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageLeaf {
    /// base58
    pub buyer: String,
    pub cumulative: u64,
    /// Credits consumed this epoch.
    pub credits: u64,
    /// Bytes charged this epoch.
    pub bytes: u64,
    /// The buyer's purchases through the epoch's end: credits issued and tokens burned for them
    /// (from its credit account on-chain); 0, like `cost` and `pot`, for a buyer with no traffic
    /// counted this epoch.
    pub purchased_credits: u64,
    pub purchased_tokens: u64,
    /// What all of its consumption so far cost it, in tokens.
    pub cumulative_cost: u64,
    /// What this epoch's consumption cost it (`backhaul_core::cost::consumption_cost`).
    pub cost: u64,
    /// The rewards its consumption funds this epoch (`backhaul_core::cost::buyer_pots`), paid to
    /// the operators that served it in proportion to their bytes.
    pub pot: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Served {
    /// base58
    pub buyer: String,
    /// base58
    pub operator: String,
    /// Counted bytes of this buyer's traffic through this operator's nodes.
    pub bytes: u64,
    /// This operator's part of the buyer's pot.
    pub amount: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeUsage {
    /// base58
    pub node: String,
    /// base58
    pub operator: String,
    pub bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stats {
    /// Sessions seen (each counts once, with its highest sequence).
    pub sessions: u64,
    /// Sessions that counted, at least in part.
    pub sessions_counted: u64,
    /// Bytes that counted.
    pub bytes_counted: u64,
    /// Bytes cut by the per-pair cap.
    pub bytes_over_pair_cap: u64,
    /// Bytes cut because buyers had no credits (or client limits) left for them.
    pub bytes_over_credits: u64,
}

impl Dataset {
    /// The canonical bytes (compact JSON).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// sha256 of the canonical bytes: the on-chain `dataset_hash`.
    pub fn hash(&self) -> [u8; 32] {
        sha256v(&[&self.to_bytes()])
    }
}

/// base58 of a key.
pub fn b58(key: &Key) -> String {
    bs58::encode(key).into_string()
}

/// A key from base58.
pub fn key_from_b58(s: &str) -> Option<Key> {
    let v = bs58::decode(s).into_vec().ok()?;
    v.try_into().ok()
}

/// Lowercase hex of bytes (one allocation: proofs are answered with a dozen or more hashes).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

/// 32 bytes from hex.
pub fn hash_from_hex(s: &str) -> Option<[u8; 32]> {
    hex_bytes(s)?.try_into().ok()
}

/// Bytes from hex (an even number of hex digits).
pub fn hex_bytes(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.as_bytes()
        .chunks(2)
        .map(|chunk| {
            let hi = (chunk[0] as char).to_digit(16)?;
            let lo = (chunk[1] as char).to_digit(16)?;
            u8::try_from(hi * 16 + lo).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_hashes_round_trip() {
        let k = [7u8; 32];
        assert_eq!(key_from_b58(&b58(&k)), Some(k));
        assert_eq!(hash_from_hex(&hex(&k)), Some(k));
        assert_eq!(hash_from_hex("zz"), None);
        assert_eq!(key_from_b58("0OIl"), None);
    }

    #[test]
    fn hex_is_lowercase_two_digits_per_byte() {
        let all: Vec<u8> = (0..=255).collect();
        let expected: String = all.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex(&all), expected);
        assert_eq!(hex(&[]), "");
        assert_eq!(hex(&[0x0a, 0xf0]), "0af0");
    }
}
