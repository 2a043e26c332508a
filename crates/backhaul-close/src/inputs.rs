//! What the close reads: the oracle's parameters, the chain's state, the stored receipts,
//! bindings and grants, and the buyers' credit accounts. Plain data; the oracle fills it from its
//! database and the chain.

use backhaul_core::cost::{purchases_through, PurchaseCheckpoints, Purchases};
use backhaul_protocol::dataset::Dataset;
use backhaul_protocol::{ClientGrant, Deployment, Key, NodeBinding, UsageReceipt};
use std::collections::HashMap;

/// The chain's inputs to an epoch's close, flattened from the config and the sealed ledger.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChainInputs {
    pub genesis_ts: i64,
    pub epoch_length_secs: u64,
    /// The next epoch the program will accept a proposal for.
    pub next_epoch: u64,
    pub initial_per_epoch: u64,
    pub decay_bps: u16,
    pub decay_period_epochs: u64,
    pub floor_per_epoch: u64,
    pub lifetime_cap: u64,
    pub scheduled_minted: u64,
    pub burn_ema: u64,
    pub net_emissions_cap: u64,
    pub burn_smoothing_epochs: u64,
    pub usage_cap_bps: u32,
    pub decimals: u8,
    pub last_reward_total: u64,
    pub last_usage_total: u64,
    /// What the consumption in the last finalized usage tree cost its buyers, in tokens.
    pub last_usage_cost_total: u64,
    /// From the epoch's ledger (zero when it has none).
    pub tokens_burned: u64,
    pub credits_per_token: u64,
    pub ledger_sealed: bool,
    /// Tokens burned in finalized epochs and this epoch's ledger, less everything already
    /// re-minted: net emissions never exceed it.
    pub burns_not_reemitted: u64,
    /// The chain's consensus parameters of the epoch: price per GiB, pair cap and rate limit.
    pub params: CloseParams,
    /// The chain's grace period of the epoch: seconds after its end during which late receipts
    /// are still taken.
    pub grace_secs: u64,
}

/// Parameters of the close that decide how bandwidth is counted and priced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CloseParams {
    pub credits_per_gib: u64,
    pub pair_cap_bytes: u64,
    pub max_rate_bytes_per_sec: u64,
}

/// One stored receipt at its session's highest sequence, with the hash of its signed body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredReceipt {
    pub receipt: UsageReceipt,
    pub body_hash: [u8; 32],
}

/// A binding or grant with the hash of its signed body (the tie-breaker) and its position: the
/// epoch whose agreed input first held it (see [`latest`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stored<T> {
    pub body: T,
    pub body_hash: [u8; 32],
    pub position: u64,
}

/// What a buyer bought, from its on-chain credit account: for its credit cap and for what its
/// consumption cost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BuyerCredits {
    /// Credits ever issued to it.
    pub issued: u64,
    /// Tokens ever burned for them.
    pub tokens_burned: u64,
    /// Its latest purchase epochs, oldest first, each with `issued` and `tokens_burned` as they
    /// stood before the epoch's first purchase (none: `issued` and `tokens_burned` are its
    /// purchases through any epoch).
    pub checkpoints: PurchaseCheckpoints,
}

impl BuyerCredits {
    /// Its purchases through the end of `epoch` (`backhaul_core::cost::purchases_through`):
    /// exact, and the same however late the account was read, while it bought in at most
    /// `PURCHASE_CHECKPOINTS` epochs after `epoch` by the time it was read.
    pub fn purchases_through(&self, epoch: u64) -> Purchases {
        purchases_through(
            Purchases {
                credits: self.issued,
                tokens: self.tokens_burned,
            },
            self.checkpoints.as_slice(),
            epoch,
        )
    }
}

/// Bindings and grants apply from their epoch on (see [`effective_epoch`]); a later `issued_at`
/// replaces an earlier one.
pub trait Versioned {
    fn epoch(&self) -> u64;
    fn issued_at(&self) -> i64;
}

impl Versioned for NodeBinding {
    fn epoch(&self) -> u64 {
        self.epoch
    }
    fn issued_at(&self) -> i64 {
        self.issued_at
    }
}

impl Versioned for ClientGrant {
    fn epoch(&self) -> u64 {
        self.epoch
    }
    fn issued_at(&self) -> i64 {
        self.issued_at
    }
}

/// The first epoch an item of a key's `group` (the bindings of one node, or the grants of one
/// (buyer, client) pair) applies to: its own `epoch`, and never before its position, the epoch
/// whose agreed input first held it. An item that arrived after another of its key (a later
/// position) replaces it only from the epoch after its position. So whatever a buyer or a node
/// signs after an epoch's cutoff, and whatever date it writes in the body, never changes that
/// epoch: a revocation cannot void bandwidth already delivered, and a new grant or binding still
/// counts from the epoch it arrived in.
pub fn effective_epoch<'a, T: Versioned + 'a>(
    item: &Stored<T>,
    group: impl IntoIterator<Item = &'a Stored<T>>,
) -> u64 {
    let first = group
        .into_iter()
        .map(|s| s.position)
        .min()
        .unwrap_or(item.position);
    let from = if item.position > first {
        item.position.saturating_add(1)
    } else {
        item.position
    };
    from.max(item.body.epoch())
}

/// The item of a key's `group` that applies to `epoch`: the latest (by `issued_at`, then body
/// hash) among those whose [`effective_epoch`] is at or before it.
pub fn latest<'a, T: Versioned + 'a>(
    group: impl IntoIterator<Item = &'a Stored<T>> + Clone,
    epoch: u64,
) -> Option<&'a T> {
    group
        .clone()
        .into_iter()
        .filter(|s| effective_epoch(s, group.clone()) <= epoch)
        .max_by(|a, b| {
            a.body
                .issued_at()
                .cmp(&b.body.issued_at())
                .then(a.body_hash.cmp(&b.body_hash))
        })
        .map(|s| &s.body)
}

/// Everything the close reads besides the receipts.
pub struct CloseContext<'a> {
    pub deployment: Deployment,
    pub epoch: u64,
    pub epoch_start: i64,
    pub epoch_end: i64,
    /// sha256 of the agreed input the receipts, bindings and grants come from.
    pub input_hash: [u8; 32],
    pub params: CloseParams,
    pub chain: &'a ChainInputs,
    /// Every binding and grant in the agreed inputs of this epoch and earlier ones, each with its
    /// position (later positions are not passed).
    pub bindings: &'a [Stored<NodeBinding>],
    pub grants: &'a [Stored<ClientGrant>],
    /// On-chain credit accounts of the buyers (absent: none).
    pub credits: &'a HashMap<Key, BuyerCredits>,
    /// The previous epoch's dataset, if any.
    pub previous: Option<&'a Dataset>,
}

/// Everything the close reads, with the receipts in memory (tests and small epochs).
pub struct CloseInput<'a> {
    pub context: CloseContext<'a>,
    /// The epoch's receipts, in any order.
    pub receipts: &'a [StoredReceipt],
}
