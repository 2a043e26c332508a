//! The deterministic epoch close: stored receipts, bindings and grants in; the epoch's dataset
//! out. Pure: the same inputs give the same dataset, byte for byte, whatever order they arrived in.
//!
//! 1. Every session counts once, with the receipts at its highest sequence. A session with two
//!    different receipts at that sequence is an equivocation and counts nothing.
//! 2. The node's operator is the latest binding (by `issued_at`, then body hash) from an epoch at
//!    or before this one; the client's buyer is the latest such grant. Missing ones, expired
//!    grants and too-fast sessions do not count; a session whose buyer is the node's own operator
//!    (self-dealing) counts zero bytes.
//! 3. Each node-client pair counts at most `pair_cap_bytes`.
//! 4. Each client counts at most its grant's per-epoch credit limit, and each buyer at most the
//!    credits it had by the end of the epoch minus what it had already consumed, filled in
//!    canonical order (node, client, session).
//! 5. Counted bytes are summed per node, then per operator; each buyer is charged
//!    `⌊bytes · credits_per_gib / 2^30⌋` credits.
//! 6. The epoch's budget comes from the shared crate with the chain's inputs; when any bytes
//!    counted, the whole budget is split across operators in proportion to their bytes
//!    (largest remainder, so the parts sum exactly to the allocation).
//! 7. Cumulative amounts add this epoch to the previous dataset's; every account ever in a tree
//!    stays in it. Both trees follow `docs/merkle.md`.

use crate::chain::ChainInputs;
use backhaul_core::budget::{EpochActivity, EpochBudget, NetEmissionParams};
use backhaul_core::emission::EmissionSchedule;
use backhaul_core::merkle::TreeKind;
use backhaul_core::price::issued_through;
use backhaul_core::split::{bytes_for_credits, credits_for_bytes, split_largest_remainder};
use backhaul_core::tree::{Entry, EpochTree};
use backhaul_protocol::dataset::{
    b58, hex, key_from_b58, Budget, Dataset, NodeUsage, Parameters, RewardLeaf, RewardTree, Stats,
    UsageLeaf, UsageTree, DATASET_VERSION,
};
use backhaul_protocol::{ClientGrant, Deployment, Key, NodeBinding, UsageReceipt};
use std::collections::{BTreeMap, HashMap};

/// Oracle-side parameters of the close.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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

/// A stored binding or grant with the hash of its signed body (the tie-breaker).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stored<T> {
    pub body: T,
    pub body_hash: [u8; 32],
}

/// What a buyer had on-chain, for its credit cap.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BuyerCredits {
    pub issued: u64,
    pub purchase_epoch: u64,
    pub issued_before_purchase_epoch: u64,
}

/// Everything the close reads.
pub struct CloseInput<'a> {
    pub deployment: Deployment,
    pub epoch: u64,
    pub epoch_start: i64,
    pub epoch_end: i64,
    pub params: CloseParams,
    pub chain: &'a ChainInputs,
    /// Receipts of this epoch at each session's highest sequence.
    pub receipts: &'a [StoredReceipt],
    pub bindings: &'a [Stored<NodeBinding>],
    pub grants: &'a [Stored<ClientGrant>],
    /// On-chain credit accounts of the buyers (absent: none).
    pub credits: &'a HashMap<Key, BuyerCredits>,
    /// The previous epoch's dataset, if any.
    pub previous: Option<&'a Dataset>,
}

/// Why a session did not count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Skip {
    Equivocation,
    UnknownBinding,
    UnknownGrant,
    GrantExpired,
    RateExceeded,
    SelfDealing,
}

impl Skip {
    fn name(self) -> &'static str {
        match self {
            Skip::Equivocation => "equivocation",
            Skip::UnknownBinding => "unknown_binding",
            Skip::UnknownGrant => "unknown_grant",
            Skip::GrantExpired => "grant_expired",
            Skip::RateExceeded => "rate_exceeded",
            Skip::SelfDealing => "self_dealing",
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CloseError {
    #[error("arithmetic overflow while closing epoch {0}")]
    Overflow(u64),
    #[error("the previous dataset is for epoch {found}, not {expected}")]
    WrongPrevious { expected: u64, found: u64 },
    #[error("the previous dataset holds an unreadable key: {0}")]
    BadPrevious(String),
    #[error("the previous dataset's totals ({reward}, {usage}) differ from the chain's ({chain_reward}, {chain_usage}); import the dataset the chain finalized")]
    PreviousMismatch {
        reward: u64,
        usage: u64,
        chain_reward: u64,
        chain_usage: u64,
    },
    #[error("a tree could not be built: {0}")]
    Tree(backhaul_core::CoreError),
}

/// Bindings and grants apply from their epoch on; a later `issued_at` replaces an earlier one.
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

/// The item that applies to `epoch`: the latest (by `issued_at`, then body hash) among those from
/// an epoch at or before it.
pub fn latest<'a, T: Versioned + 'a>(
    items: impl IntoIterator<Item = &'a Stored<T>>,
    epoch: u64,
) -> Option<&'a T> {
    items
        .into_iter()
        .filter(|s| s.body.epoch() <= epoch)
        .max_by(|a, b| {
            a.body
                .issued_at()
                .cmp(&b.body.issued_at())
                .then(a.body_hash.cmp(&b.body_hash))
        })
        .map(|s| &s.body)
}

/// Closes the epoch.
pub fn close(input: &CloseInput) -> Result<Dataset, CloseError> {
    let epoch = input.epoch;
    let overflow = || CloseError::Overflow(epoch);
    let p = input.params;

    // Previous cumulative amounts, checked against the chain's last finalized totals.
    let mut reward_cum: BTreeMap<Key, u64> = BTreeMap::new();
    let mut usage_cum: BTreeMap<Key, u64> = BTreeMap::new();
    if let Some(prev) = input.previous {
        if prev.epoch.checked_add(1) != Some(epoch) {
            return Err(CloseError::WrongPrevious {
                expected: epoch.saturating_sub(1),
                found: prev.epoch,
            });
        }
        for l in &prev.rewards.leaves {
            let k = key_from_b58(&l.operator)
                .ok_or_else(|| CloseError::BadPrevious(l.operator.clone()))?;
            reward_cum.insert(k, l.cumulative);
        }
        for l in &prev.usage.leaves {
            let k =
                key_from_b58(&l.buyer).ok_or_else(|| CloseError::BadPrevious(l.buyer.clone()))?;
            usage_cum.insert(k, l.cumulative);
        }
    }
    let prev_reward_total = input.previous.map_or(0, |d| d.rewards.total);
    let prev_usage_total = input.previous.map_or(0, |d| d.usage.total);
    if prev_reward_total != input.chain.last_reward_total
        || prev_usage_total != input.chain.last_usage_total
    {
        return Err(CloseError::PreviousMismatch {
            reward: prev_reward_total,
            usage: prev_usage_total,
            chain_reward: input.chain.last_reward_total,
            chain_usage: input.chain.last_usage_total,
        });
    }

    // Index bindings and grants.
    let mut bindings_by_node: HashMap<Key, Vec<&Stored<NodeBinding>>> = HashMap::new();
    for b in input.bindings {
        bindings_by_node.entry(b.body.node).or_default().push(b);
    }
    let mut grants_by_client: HashMap<Key, Vec<&Stored<ClientGrant>>> = HashMap::new();
    for g in input.grants {
        grants_by_client.entry(g.body.client).or_default().push(g);
    }

    // 1. Sessions in canonical order; equivocations count nothing.
    let mut sessions: BTreeMap<(Key, [u8; 16]), Vec<&StoredReceipt>> = BTreeMap::new();
    for r in input.receipts.iter().filter(|r| r.receipt.epoch == epoch) {
        sessions
            .entry((r.receipt.client, r.receipt.session_id))
            .or_default()
            .push(r);
    }
    let mut rejected: BTreeMap<String, u64> = BTreeMap::new();
    let mut skip = |s: Skip| *rejected.entry(s.name().to_string()).or_default() += 1;

    // A counting session: (node, client, session) → bytes, with its operator, buyer and limit.
    struct Counted {
        node: Key,
        client: Key,
        session: [u8; 16],
        operator: Key,
        buyer: Key,
        client_limit: u64,
        bytes: u64,
    }
    let mut counted: Vec<Counted> = Vec::new();
    let session_count = sessions.len() as u64;
    for ((client, session), receipts) in &sessions {
        let top = receipts
            .iter()
            .map(|r| r.receipt.sequence)
            .max()
            .unwrap_or(0);
        let at_top: Vec<_> = receipts
            .iter()
            .filter(|r| r.receipt.sequence == top)
            .collect();
        let first = at_top[0];
        if at_top.iter().any(|r| r.body_hash != first.body_hash) {
            skip(Skip::Equivocation);
            continue;
        }
        let r = first.receipt;
        let Some(binding) = bindings_by_node
            .get(&r.node)
            .and_then(|v| latest(v.iter().copied(), epoch))
        else {
            skip(Skip::UnknownBinding);
            continue;
        };
        let Some(grant) = grants_by_client
            .get(client)
            .and_then(|v| latest(v.iter().copied(), epoch))
        else {
            skip(Skip::UnknownGrant);
            continue;
        };
        if grant.expires_at <= input.epoch_start {
            skip(Skip::GrantExpired);
            continue;
        }
        if r.rate_bytes_per_sec() > p.max_rate_bytes_per_sec {
            skip(Skip::RateExceeded);
            continue;
        }
        if binding.operator == grant.buyer {
            skip(Skip::SelfDealing);
            continue;
        }
        counted.push(Counted {
            node: r.node,
            client: *client,
            session: *session,
            operator: binding.operator,
            buyer: grant.buyer,
            client_limit: grant.credit_limit,
            bytes: r.cumulative_bytes,
        });
    }

    // 3–4. Caps, filled in canonical (node, client, session) order.
    counted.sort_by_key(|c| (c.node, c.client, c.session));
    let mut pair_left: HashMap<(Key, Key), u64> = HashMap::new();
    let mut client_left: HashMap<Key, u64> = HashMap::new();
    let mut buyer_left: HashMap<Key, u64> = HashMap::new();
    let (mut over_pair, mut over_credits) = (0u64, 0u64);
    let mut node_bytes: BTreeMap<Key, (Key, u64)> = BTreeMap::new();
    let mut buyer_bytes: BTreeMap<Key, u64> = BTreeMap::new();
    let mut sessions_counted = 0u64;
    for c in &counted {
        let pair = pair_left
            .entry((c.node, c.client))
            .or_insert(p.pair_cap_bytes);
        let after_pair = c.bytes.min(*pair);
        *pair -= after_pair;
        over_pair = over_pair
            .checked_add(c.bytes - after_pair)
            .ok_or_else(overflow)?;
        let client = client_left.entry(c.client).or_insert_with(|| {
            if c.client_limit == 0 {
                u64::MAX
            } else {
                bytes_for_credits(c.client_limit, p.credits_per_gib)
            }
        });
        let buyer = buyer_left.entry(c.buyer).or_insert_with(|| {
            let credits = input.credits.get(&c.buyer).copied().unwrap_or_default();
            let had = issued_through(
                credits.issued,
                credits.purchase_epoch,
                credits.issued_before_purchase_epoch,
                epoch,
            );
            let used = usage_cum.get(&c.buyer).copied().unwrap_or(0);
            bytes_for_credits(had.saturating_sub(used), p.credits_per_gib)
        });
        let take = after_pair.min(*client).min(*buyer);
        *client -= take;
        *buyer -= take;
        over_credits = over_credits
            .checked_add(after_pair - take)
            .ok_or_else(overflow)?;
        if take == 0 {
            continue;
        }
        sessions_counted += 1;
        let entry = node_bytes.entry(c.node).or_insert((c.operator, 0));
        entry.1 = entry.1.checked_add(take).ok_or_else(overflow)?;
        let b = buyer_bytes.entry(c.buyer).or_default();
        *b = b.checked_add(take).ok_or_else(overflow)?;
    }

    // 5. Per operator and per buyer.
    let mut operator_bytes: BTreeMap<Key, u64> = BTreeMap::new();
    for (operator, bytes) in node_bytes.values() {
        let o = operator_bytes.entry(*operator).or_default();
        *o = o.checked_add(*bytes).ok_or_else(overflow)?;
    }
    let mut buyer_credits: BTreeMap<Key, u64> = BTreeMap::new();
    for (buyer, bytes) in &buyer_bytes {
        let credits = credits_for_bytes(*bytes, p.credits_per_gib).map_err(|_| overflow())?;
        buyer_credits.insert(*buyer, credits);
    }
    let credits_consumed = buyer_credits
        .values()
        .try_fold(0u64, |a, c| a.checked_add(*c))
        .ok_or_else(overflow)?;
    let bytes_counted = operator_bytes
        .values()
        .try_fold(0u64, |a, c| a.checked_add(*c))
        .ok_or_else(overflow)?;

    // 6. Budget and split.
    let ch = input.chain;
    let schedule = EmissionSchedule {
        initial_per_epoch: ch.initial_per_epoch,
        decay_bps: ch.decay_bps,
        decay_period_epochs: ch.decay_period_epochs,
        floor_per_epoch: ch.floor_per_epoch,
        lifetime_cap: ch.lifetime_cap,
    };
    let net = NetEmissionParams {
        net_emissions_cap: ch.net_emissions_cap,
        smoothing_epochs: ch.burn_smoothing_epochs,
        usage_cap_bps: ch.usage_cap_bps,
    };
    let activity = EpochActivity {
        tokens_burned: ch.tokens_burned,
        credits_consumed,
        credits_per_token: ch.credits_per_token,
        decimals: ch.decimals,
    };
    let budget = EpochBudget::compute(
        &schedule,
        epoch,
        ch.scheduled_minted,
        ch.burn_ema,
        &net,
        &activity,
    )
    .map_err(|_| overflow())?;
    let allocation = if bytes_counted == 0 { 0 } else { budget.total };
    let weights: Vec<u64> = operator_bytes.values().copied().collect();
    let shares = split_largest_remainder(allocation, &weights).map_err(|_| overflow())?;
    let epoch_reward: BTreeMap<Key, (u64, u64)> = operator_bytes
        .iter()
        .zip(shares)
        .map(|((k, bytes), share)| (*k, (share, *bytes)))
        .collect();

    // 7. Cumulative leaves and trees.
    for (k, (share, _)) in &epoch_reward {
        let c = reward_cum.entry(*k).or_default();
        *c = c.checked_add(*share).ok_or_else(overflow)?;
    }
    for (k, credits) in &buyer_credits {
        let c = usage_cum.entry(*k).or_default();
        *c = c.checked_add(*credits).ok_or_else(overflow)?;
    }
    let config = input.deployment.config;
    let entries = |m: &BTreeMap<Key, u64>| {
        m.iter()
            .map(|(k, v)| Entry {
                account: *k,
                cumulative: *v,
            })
            .collect()
    };
    let reward_tree = EpochTree::build(TreeKind::Reward, &config, epoch, entries(&reward_cum))
        .map_err(CloseError::Tree)?;
    let usage_tree = EpochTree::build(TreeKind::Usage, &config, epoch, entries(&usage_cum))
        .map_err(CloseError::Tree)?;

    Ok(Dataset {
        version: DATASET_VERSION,
        program_id: b58(&input.deployment.program_id),
        config: b58(&config),
        epoch,
        epoch_start: input.epoch_start,
        epoch_end: input.epoch_end,
        parameters: Parameters {
            credits_per_gib: p.credits_per_gib,
            pair_cap_bytes: p.pair_cap_bytes,
            max_rate_bytes_per_sec: p.max_rate_bytes_per_sec,
            initial_per_epoch: ch.initial_per_epoch,
            decay_bps: ch.decay_bps,
            decay_period_epochs: ch.decay_period_epochs,
            floor_per_epoch: ch.floor_per_epoch,
            lifetime_cap: ch.lifetime_cap,
            scheduled_minted: ch.scheduled_minted,
            previous_burn_ema: ch.burn_ema,
            net_emissions_cap: ch.net_emissions_cap,
            burn_smoothing_epochs: ch.burn_smoothing_epochs,
            usage_cap_bps: ch.usage_cap_bps,
            tokens_burned: ch.tokens_burned,
            credits_per_token: ch.credits_per_token,
            decimals: ch.decimals,
            previous_reward_total: prev_reward_total,
            previous_usage_total: prev_usage_total,
        },
        budget: Budget {
            scheduled: budget.scheduled,
            scheduled_room: budget.scheduled_room,
            burn_ema: budget.burn_ema,
            net: budget.net,
            usage_cap: budget.usage_cap,
            total: budget.total,
        },
        allocation,
        rewards: RewardTree {
            root: hex(&reward_tree.root),
            leaf_count: reward_tree.entries.len() as u64,
            total: reward_tree.total,
            leaves: reward_tree
                .entries
                .iter()
                .map(|e| {
                    let (amount, bytes) = epoch_reward.get(&e.account).copied().unwrap_or((0, 0));
                    RewardLeaf {
                        operator: b58(&e.account),
                        cumulative: e.cumulative,
                        amount,
                        bytes,
                    }
                })
                .collect(),
        },
        usage: UsageTree {
            root: hex(&usage_tree.root),
            leaf_count: usage_tree.entries.len() as u64,
            total: usage_tree.total,
            credits_consumed,
            leaves: usage_tree
                .entries
                .iter()
                .map(|e| UsageLeaf {
                    buyer: b58(&e.account),
                    cumulative: e.cumulative,
                    credits: buyer_credits.get(&e.account).copied().unwrap_or(0),
                    bytes: buyer_bytes.get(&e.account).copied().unwrap_or(0),
                })
                .collect(),
        },
        nodes: node_bytes
            .iter()
            .map(|(node, (operator, bytes))| NodeUsage {
                node: b58(node),
                operator: b58(operator),
                bytes: *bytes,
            })
            .collect(),
        rejected,
        stats: Stats {
            sessions: session_count,
            sessions_counted,
            bytes_counted,
            bytes_over_pair_cap: over_pair,
            bytes_over_credits: over_credits,
        },
    })
}
