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
    #[error("receipts must be pushed in (client, session) order")]
    Unordered,
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

/// Everything the close reads besides the receipts.
pub struct CloseContext<'a> {
    pub deployment: Deployment,
    pub epoch: u64,
    pub epoch_start: i64,
    pub epoch_end: i64,
    pub params: CloseParams,
    pub chain: &'a ChainInputs,
    pub bindings: &'a [Stored<NodeBinding>],
    pub grants: &'a [Stored<ClientGrant>],
    /// On-chain credit accounts of the buyers (absent: none).
    pub credits: &'a HashMap<Key, BuyerCredits>,
    /// The previous epoch's dataset, if any.
    pub previous: Option<&'a Dataset>,
}

/// Everything the close reads, with the receipts in memory (tests and small epochs).
pub struct CloseInput<'a> {
    pub deployment: Deployment,
    pub epoch: u64,
    pub epoch_start: i64,
    pub epoch_end: i64,
    pub params: CloseParams,
    pub chain: &'a ChainInputs,
    pub receipts: &'a [StoredReceipt],
    pub bindings: &'a [Stored<NodeBinding>],
    pub grants: &'a [Stored<ClientGrant>],
    pub credits: &'a HashMap<Key, BuyerCredits>,
    pub previous: Option<&'a Dataset>,
}

/// Closes the epoch over receipts held in memory, in any order.
pub fn close(input: &CloseInput) -> Result<Dataset, CloseError> {
    let ctx = CloseContext {
        deployment: input.deployment,
        epoch: input.epoch,
        epoch_start: input.epoch_start,
        epoch_end: input.epoch_end,
        params: input.params,
        chain: input.chain,
        bindings: input.bindings,
        grants: input.grants,
        credits: input.credits,
        previous: input.previous,
    };
    let mut sorted: Vec<&StoredReceipt> = input.receipts.iter().collect();
    sorted.sort_unstable_by_key(|r| (r.receipt.client, r.receipt.session_id));
    let mut agg = Aggregator::new(&ctx)?;
    for r in sorted {
        agg.push(r)?;
    }
    agg.finish()
}

/// One counting session, with interned keys (small, so that ten million fit in memory).
struct Counted {
    node: u32,
    client: u32,
    session: u128,
    limit: u64,
    bytes: u64,
}

/// Resolves a key's binding or grant once and remembers it.
#[derive(Clone, Copy)]
enum Resolved {
    /// The operator (for a node) or the buyer and credit limit (for a client); the grant's
    /// expiry for clients.
    Found {
        owner: u32,
        limit: u64,
        expired: bool,
    },
    Missing,
}

/// The streaming close: push the epoch's stored receipts in (client, session) order, then finish.
/// Memory grows with the number of counting sessions (about 48 bytes each) and distinct keys.
pub struct Aggregator<'a> {
    ctx: &'a CloseContext<'a>,
    bindings_by_node: HashMap<Key, Vec<&'a Stored<NodeBinding>>>,
    grants_by_client: HashMap<Key, Vec<&'a Stored<ClientGrant>>>,
    /// Interned keys: nodes, clients and owners (operators and buyers) in one table.
    keys: Vec<Key>,
    ids: HashMap<Key, u32>,
    node_resolved: HashMap<u32, Resolved>,
    client_resolved: HashMap<u32, Resolved>,
    /// The operator of each counting node, by node id.
    node_operator: HashMap<u32, u32>,
    client_buyer: HashMap<u32, u32>,
    /// The session being read and its receipts at the top sequence.
    current: Option<(Key, [u8; 16], u64, Vec<StoredReceipt>)>,
    counted: Vec<Counted>,
    rejected: BTreeMap<String, u64>,
    sessions: u64,
    reward_cum: BTreeMap<Key, u64>,
    usage_cum: BTreeMap<Key, u64>,
    prev_reward_total: u64,
    prev_usage_total: u64,
}

impl<'a> Aggregator<'a> {
    pub fn new(ctx: &'a CloseContext<'a>) -> Result<Self, CloseError> {
        let epoch = ctx.epoch;
        let mut reward_cum = BTreeMap::new();
        let mut usage_cum = BTreeMap::new();
        if let Some(prev) = ctx.previous {
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
                let k = key_from_b58(&l.buyer)
                    .ok_or_else(|| CloseError::BadPrevious(l.buyer.clone()))?;
                usage_cum.insert(k, l.cumulative);
            }
        }
        let prev_reward_total = ctx.previous.map_or(0, |d| d.rewards.total);
        let prev_usage_total = ctx.previous.map_or(0, |d| d.usage.total);
        if prev_reward_total != ctx.chain.last_reward_total
            || prev_usage_total != ctx.chain.last_usage_total
        {
            return Err(CloseError::PreviousMismatch {
                reward: prev_reward_total,
                usage: prev_usage_total,
                chain_reward: ctx.chain.last_reward_total,
                chain_usage: ctx.chain.last_usage_total,
            });
        }
        let mut bindings_by_node: HashMap<Key, Vec<&Stored<NodeBinding>>> = HashMap::new();
        for b in ctx.bindings {
            bindings_by_node.entry(b.body.node).or_default().push(b);
        }
        let mut grants_by_client: HashMap<Key, Vec<&Stored<ClientGrant>>> = HashMap::new();
        for g in ctx.grants {
            grants_by_client.entry(g.body.client).or_default().push(g);
        }
        Ok(Aggregator {
            ctx,
            bindings_by_node,
            grants_by_client,
            keys: Vec::new(),
            ids: HashMap::new(),
            node_resolved: HashMap::new(),
            client_resolved: HashMap::new(),
            node_operator: HashMap::new(),
            client_buyer: HashMap::new(),
            current: None,
            counted: Vec::new(),
            rejected: BTreeMap::new(),
            sessions: 0,
            reward_cum,
            usage_cum,
            prev_reward_total,
            prev_usage_total,
        })
    }

    fn intern(&mut self, key: &Key) -> u32 {
        if let Some(id) = self.ids.get(key) {
            return *id;
        }
        let id = self.keys.len() as u32;
        self.keys.push(*key);
        self.ids.insert(*key, id);
        id
    }

    fn skip(&mut self, s: Skip) {
        *self.rejected.entry(s.name().to_string()).or_default() += 1;
    }

    /// Adds a stored receipt. Receipts must come in (client, session id) order; receipts of other
    /// epochs are ignored.
    pub fn push(&mut self, r: &StoredReceipt) -> Result<(), CloseError> {
        if r.receipt.epoch != self.ctx.epoch {
            return Ok(());
        }
        let (client, session) = (r.receipt.client, r.receipt.session_id);
        match &mut self.current {
            Some((c, s, top, list)) if *c == client && *s == session => {
                if r.receipt.sequence > *top {
                    *top = r.receipt.sequence;
                    list.clear();
                    list.push(*r);
                } else if r.receipt.sequence == *top {
                    list.push(*r);
                }
                return Ok(());
            }
            Some((c, s, _, _)) if (*c, *s) > (client, session) => {
                return Err(CloseError::Unordered)
            }
            _ => {}
        }
        if let Some((_, _, _, list)) = self.current.take() {
            self.session(list);
        }
        self.current = Some((client, session, r.receipt.sequence, vec![*r]));
        Ok(())
    }

    /// Judges one session from the receipts at its top sequence.
    fn session(&mut self, top: Vec<StoredReceipt>) {
        self.sessions += 1;
        let first = top[0];
        if top.iter().any(|r| r.body_hash != first.body_hash) {
            return self.skip(Skip::Equivocation);
        }
        let r = first.receipt;
        let epoch = self.ctx.epoch;
        let node = self.intern(&r.node);
        let client = self.intern(&r.client);
        let node_res = match self.node_resolved.get(&node) {
            Some(v) => *v,
            None => {
                let v = match self
                    .bindings_by_node
                    .get(&r.node)
                    .and_then(|v| latest(v.iter().copied(), epoch))
                    .map(|b| b.operator)
                {
                    Some(op) => Resolved::Found {
                        owner: self.intern(&op),
                        limit: 0,
                        expired: false,
                    },
                    None => Resolved::Missing,
                };
                self.node_resolved.insert(node, v);
                v
            }
        };
        let client_res = match self.client_resolved.get(&client) {
            Some(v) => *v,
            None => {
                let found = self
                    .grants_by_client
                    .get(&r.client)
                    .and_then(|v| latest(v.iter().copied(), epoch))
                    .copied();
                let v = match found {
                    Some(g) => Resolved::Found {
                        owner: self.intern(&g.buyer),
                        limit: g.credit_limit,
                        expired: g.expires_at <= self.ctx.epoch_start,
                    },
                    None => Resolved::Missing,
                };
                self.client_resolved.insert(client, v);
                v
            }
        };
        let Resolved::Found {
            owner: operator, ..
        } = node_res
        else {
            return self.skip(Skip::UnknownBinding);
        };
        let Resolved::Found {
            owner: buyer,
            limit,
            expired,
        } = client_res
        else {
            return self.skip(Skip::UnknownGrant);
        };
        if expired {
            return self.skip(Skip::GrantExpired);
        }
        if r.rate_bytes_per_sec() > self.ctx.params.max_rate_bytes_per_sec {
            return self.skip(Skip::RateExceeded);
        }
        if operator == buyer {
            return self.skip(Skip::SelfDealing);
        }
        self.node_operator.insert(node, operator);
        self.client_buyer.insert(client, buyer);
        self.counted.push(Counted {
            node,
            client,
            session: u128::from_be_bytes(r.session_id),
            limit,
            bytes: r.cumulative_bytes,
        });
    }

    /// Applies the caps, splits the budget and builds both trees.
    pub fn finish(mut self) -> Result<Dataset, CloseError> {
        if let Some((_, _, _, list)) = self.current.take() {
            self.session(list);
        }
        let ctx = self.ctx;
        let epoch = ctx.epoch;
        let overflow = || CloseError::Overflow(epoch);
        let p = ctx.params;
        let keys = std::mem::take(&mut self.keys);

        // 3–4. Caps, filled in canonical order: node key, client key, session id.
        self.counted.sort_unstable_by(|a, b| {
            keys[a.node as usize]
                .cmp(&keys[b.node as usize])
                .then_with(|| keys[a.client as usize].cmp(&keys[b.client as usize]))
                .then(a.session.cmp(&b.session))
        });
        let mut client_left: HashMap<u32, u64> = HashMap::new();
        let mut buyer_left: HashMap<u32, u64> = HashMap::new();
        let (mut over_pair, mut over_credits) = (0u64, 0u64);
        let mut node_bytes: BTreeMap<Key, (Key, u64)> = BTreeMap::new();
        let mut buyer_bytes: BTreeMap<Key, u64> = BTreeMap::new();
        let mut sessions_counted = 0u64;
        let mut pair: Option<(u32, u32)> = None;
        let mut pair_left = 0u64;
        for c in &self.counted {
            if pair != Some((c.node, c.client)) {
                pair = Some((c.node, c.client));
                pair_left = p.pair_cap_bytes;
            }
            let after_pair = c.bytes.min(pair_left);
            pair_left -= after_pair;
            over_pair = over_pair
                .checked_add(c.bytes - after_pair)
                .ok_or_else(overflow)?;
            let buyer = self.client_buyer[&c.client];
            let client = client_left.entry(c.client).or_insert_with(|| {
                if c.limit == 0 {
                    u64::MAX
                } else {
                    bytes_for_credits(c.limit, p.credits_per_gib)
                }
            });
            let buyer_key = keys[buyer as usize];
            let left = buyer_left.entry(buyer).or_insert_with(|| {
                let credits = ctx.credits.get(&buyer_key).copied().unwrap_or_default();
                let had = issued_through(
                    credits.issued,
                    credits.purchase_epoch,
                    credits.issued_before_purchase_epoch,
                    epoch,
                );
                let used = self.usage_cum.get(&buyer_key).copied().unwrap_or(0);
                bytes_for_credits(had.saturating_sub(used), p.credits_per_gib)
            });
            let take = after_pair.min(*client).min(*left);
            *client -= take;
            *left -= take;
            over_credits = over_credits
                .checked_add(after_pair - take)
                .ok_or_else(overflow)?;
            if take == 0 {
                continue;
            }
            sessions_counted += 1;
            let operator = keys[self.node_operator[&c.node] as usize];
            let entry = node_bytes
                .entry(keys[c.node as usize])
                .or_insert((operator, 0));
            entry.1 = entry.1.checked_add(take).ok_or_else(overflow)?;
            let b = buyer_bytes.entry(buyer_key).or_default();
            *b = b.checked_add(take).ok_or_else(overflow)?;
        }
        drop(std::mem::take(&mut self.counted));

        // 5. Per operator and per buyer.
        let mut operator_bytes: BTreeMap<Key, u64> = BTreeMap::new();
        for (operator, bytes) in node_bytes.values() {
            let o = operator_bytes.entry(*operator).or_default();
            *o = o.checked_add(*bytes).ok_or_else(overflow)?;
        }
        let mut buyer_credits: BTreeMap<Key, u64> = BTreeMap::new();
        for (buyer, bytes) in &buyer_bytes {
            buyer_credits.insert(
                *buyer,
                credits_for_bytes(*bytes, p.credits_per_gib).map_err(|_| overflow())?,
            );
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
        let ch = ctx.chain;
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
        let mut reward_cum = std::mem::take(&mut self.reward_cum);
        let mut usage_cum = std::mem::take(&mut self.usage_cum);
        for (k, (share, _)) in &epoch_reward {
            let c = reward_cum.entry(*k).or_default();
            *c = c.checked_add(*share).ok_or_else(overflow)?;
        }
        for (k, credits) in &buyer_credits {
            let c = usage_cum.entry(*k).or_default();
            *c = c.checked_add(*credits).ok_or_else(overflow)?;
        }
        let config = ctx.deployment.config;
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
            program_id: b58(&ctx.deployment.program_id),
            config: b58(&config),
            epoch,
            epoch_start: ctx.epoch_start,
            epoch_end: ctx.epoch_end,
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
                previous_reward_total: self.prev_reward_total,
                previous_usage_total: self.prev_usage_total,
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
                        let (amount, bytes) =
                            epoch_reward.get(&e.account).copied().unwrap_or((0, 0));
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
            rejected: self.rejected,
            stats: Stats {
                sessions: self.sessions,
                sessions_counted,
                bytes_counted,
                bytes_over_pair_cap: over_pair,
                bytes_over_credits: over_credits,
            },
        })
    }
}
