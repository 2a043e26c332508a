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
//!    credits it had by the end of the epoch (`backhaul_core::cost::purchases_through` of its
//!    credit account, `.credits`) minus what it had already consumed (its cumulative in the
//!    previous dataset), filled in canonical order (node, client, session).
//! 5. Counted bytes are summed per node, per operator, per buyer and per (buyer, operator) pair.
//!    Each buyer is charged `⌊bytes · credits_per_gib / 2^30⌋` credits, which cost it
//!    `consumption_cost(previous cumulative credits and cost, purchases through the epoch,
//!    credits)` tokens: the average price of its credits not consumed yet (see
//!    `backhaul_core::cost`). A buyer charged no credits costs nothing. The epoch's usage cost is
//!    the sum over buyers.
//! 6. The epoch's budget comes from the shared crate with the chain's inputs and that usage cost:
//!    `min(schedule room + net emissions, ⌊k · usage_cost / 10_000⌋)`. Each buyer's pot is
//!    `buyer_pots(budget, k, costs)` with the buyers in key order: `⌊k · cost / 10_000⌋`, or the
//!    budget split in proportion to those when they add up to more. Each pot is split among the
//!    operators that served that buyer in proportion to their counted bytes for it (largest
//!    remainder, operators in key order); an operator's reward is the sum of its parts over
//!    buyers, and the allocation is the sum of the pots (at most the budget). Rewards therefore
//!    come only from what buyers paid for the credits they consumed, and only to the operators
//!    that served them: a buyer serving itself through other keys gets back at most `k` times
//!    what it burned. An epoch that consumed no credits mints nothing.
//! 7. Cumulative amounts add this epoch to the previous dataset's; every account ever in a tree
//!    stays in it. Both trees follow `docs/merkle.md`. Each usage leaf's `cumulative_cost` adds
//!    its `cost` to the previous one, and the tree's `cost_total` is the previous total plus the
//!    usage cost. A leaf's `purchased_credits` and `purchased_tokens` are the purchases through
//!    the epoch of a buyer charged bytes this epoch (the figures its cap and cost used); for
//!    every other leaf they are 0 (and so are `cost` and `pot`): its credit account played no
//!    part in the close, so the dataset never depends on when or whether it was read.
//!
//! The dataset's `served` rows list every (buyer, operator) pair with counted bytes, by buyer
//! then operator key, with the operator's part of that buyer's pot. Every figure is computed with
//! checked arithmetic: an overflow fails the close, never wraps.

use crate::chain::ChainInputs;
use backhaul_core::budget::{EpochActivity, EpochBudget, NetEmissionParams};
use backhaul_core::cost::{buyer_pots, consumption_cost, purchases_through, Consumed, Purchases};
use backhaul_core::emission::EmissionSchedule;
use backhaul_core::merkle::TreeKind;
use backhaul_core::split::{bytes_for_credits, credits_for_bytes, split_largest_remainder};
use backhaul_core::tree::{Entry, EpochTree};
use backhaul_protocol::dataset::{
    b58, hex, key_from_b58, Budget, Dataset, NodeUsage, Parameters, RewardLeaf, RewardTree, Served,
    Stats, UsageLeaf, UsageTree, DATASET_VERSION,
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

/// What a buyer bought, from its on-chain credit account: for its credit cap and for what its
/// consumption cost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BuyerCredits {
    /// Credits ever issued to it.
    pub issued: u64,
    /// Tokens ever burned for them.
    pub tokens_burned: u64,
    /// The epoch of its latest purchase.
    pub purchase_epoch: u64,
    /// `issued` and `tokens_burned` before the first purchase of `purchase_epoch`.
    pub issued_before_purchase_epoch: u64,
    pub tokens_before_purchase_epoch: u64,
}

impl BuyerCredits {
    /// Its purchases through the end of `epoch` (`backhaul_core::cost::purchases_through`).
    pub fn purchases_through(&self, epoch: u64) -> Purchases {
        purchases_through(
            Purchases {
                credits: self.issued,
                tokens: self.tokens_burned,
            },
            self.purchase_epoch,
            Purchases {
                credits: self.issued_before_purchase_epoch,
                tokens: self.tokens_before_purchase_epoch,
            },
            epoch,
        )
    }
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
    #[error("the previous dataset is inconsistent: {0}")]
    InconsistentPrevious(String),
    #[error("the previous dataset's totals (rewards {reward}, usage {usage}, usage cost {cost}) differ from the chain's ({chain_reward}, {chain_usage}, {chain_cost}); import the dataset the chain finalized")]
    PreviousMismatch {
        reward: u64,
        usage: u64,
        cost: u64,
        chain_reward: u64,
        chain_usage: u64,
        chain_cost: u64,
    },
    #[error("buyer {buyer}'s consumption cannot be valued in epoch {epoch}: what it consumed before costs more than it paid through the epoch (its credit account and the previous dataset disagree)")]
    ConsumptionExceedsPurchases { buyer: String, epoch: u64 },
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

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Keys seen during a close, each given a small dense id.
#[derive(Default)]
struct Interner {
    ids: FastMap<Key, u32>,
    keys: Vec<Key>,
}

impl Interner {
    fn id(&mut self, key: &Key) -> (u32, bool) {
        if let Some(id) = self.ids.get(key) {
            return (*id, false);
        }
        let id = self.keys.len() as u32;
        self.keys.push(*key);
        self.ids.insert(*key, id);
        (id, true)
    }

    /// For each id, its position in key order.
    fn ranks(&self) -> Vec<u32> {
        let mut order: Vec<u32> = (0..self.keys.len() as u32).collect();
        order.sort_unstable_by_key(|i| self.keys[*i as usize]);
        let mut rank = vec![0u32; order.len()];
        for (r, id) in order.into_iter().enumerate() {
            rank[id as usize] = r as u32;
        }
        rank
    }
}

/// What applies to a (buyer, client) pair: the grant's limit, or why nothing does.
#[derive(Clone, Copy)]
enum PairGrant {
    Valid { buyer: u32, limit: u64 },
    Expired,
    Missing,
}

/// One counting session, with interned ids (48 bytes, so that ten million fit in memory).
struct Counted {
    node: u32,
    client: u32,
    pair: u32,
    session: u128,
    bytes: u64,
}

/// The session being read: its identity, the receipt at its top sequence, and whether another
/// receipt at that sequence differs.
struct Current {
    client: Key,
    session: [u8; 16],
    top: StoredReceipt,
    equivocated: bool,
}

/// The streaming close: push the epoch's stored receipts in (client, session) order, then finish.
/// Memory grows with the number of counting sessions (48 bytes each) and of distinct keys.
pub struct Aggregator<'a> {
    ctx: &'a CloseContext<'a>,
    bindings_by_node: FastMap<Key, Vec<&'a Stored<NodeBinding>>>,
    grants_by_pair: FastMap<(Key, Key), Vec<&'a Stored<ClientGrant>>>,
    nodes: Interner,
    /// The operator of each node (an id in `operators`), `None` without a binding.
    node_operator: Vec<Option<u32>>,
    operators: Interner,
    clients: Interner,
    buyers: Interner,
    pairs: Interner,
    pair_grant: Vec<PairGrant>,
    last_pair: Option<((Key, Key), u32)>,
    current: Option<Current>,
    counted: Vec<Counted>,
    rejected: BTreeMap<String, u64>,
    sessions: u64,
    reward_cum: BTreeMap<Key, u64>,
    /// Each buyer's cumulative consumption and its cost, as of the previous dataset.
    usage_cum: BTreeMap<Key, Consumed>,
    prev_reward_total: u64,
    prev_usage_total: u64,
    prev_usage_cost_total: u64,
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
            let mut cost_sum = 0u64;
            for l in &prev.usage.leaves {
                let k = key_from_b58(&l.buyer)
                    .ok_or_else(|| CloseError::BadPrevious(l.buyer.clone()))?;
                usage_cum.insert(
                    k,
                    Consumed {
                        credits: l.cumulative,
                        cost: l.cumulative_cost,
                    },
                );
                cost_sum = cost_sum
                    .checked_add(l.cumulative_cost)
                    .ok_or(CloseError::Overflow(epoch))?;
            }
            // The usage root commits to the credits, not to their cost: the leaves' costs must
            // add up to the total the chain checks.
            if cost_sum != prev.usage.cost_total {
                return Err(CloseError::InconsistentPrevious(format!(
                    "its buyers' cumulative costs add up to {cost_sum}, not to its cost total {}",
                    prev.usage.cost_total
                )));
            }
        }
        let prev_reward_total = ctx.previous.map_or(0, |d| d.rewards.total);
        let prev_usage_total = ctx.previous.map_or(0, |d| d.usage.total);
        let prev_usage_cost_total = ctx.previous.map_or(0, |d| d.usage.cost_total);
        if prev_reward_total != ctx.chain.last_reward_total
            || prev_usage_total != ctx.chain.last_usage_total
            || prev_usage_cost_total != ctx.chain.last_usage_cost_total
        {
            return Err(CloseError::PreviousMismatch {
                reward: prev_reward_total,
                usage: prev_usage_total,
                cost: prev_usage_cost_total,
                chain_reward: ctx.chain.last_reward_total,
                chain_usage: ctx.chain.last_usage_total,
                chain_cost: ctx.chain.last_usage_cost_total,
            });
        }
        let mut bindings_by_node: FastMap<Key, Vec<&Stored<NodeBinding>>> = FastMap::default();
        for b in ctx.bindings {
            bindings_by_node.entry(b.body.node).or_default().push(b);
        }
        let mut grants_by_pair: FastMap<(Key, Key), Vec<&Stored<ClientGrant>>> = FastMap::default();
        for g in ctx.grants {
            grants_by_pair
                .entry((g.body.buyer, g.body.client))
                .or_default()
                .push(g);
        }
        Ok(Aggregator {
            ctx,
            bindings_by_node,
            grants_by_pair,
            nodes: Interner::default(),
            node_operator: Vec::new(),
            operators: Interner::default(),
            clients: Interner::default(),
            buyers: Interner::default(),
            pairs: Interner::default(),
            pair_grant: Vec::new(),
            last_pair: None,
            current: None,
            counted: Vec::new(),
            rejected: BTreeMap::new(),
            sessions: 0,
            reward_cum,
            usage_cum,
            prev_reward_total,
            prev_usage_total,
            prev_usage_cost_total,
        })
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
        if let Some(cur) = &mut self.current {
            if cur.client == client && cur.session == session {
                if r.receipt.sequence > cur.top.receipt.sequence {
                    cur.top = *r;
                    cur.equivocated = false;
                } else if r.receipt.sequence == cur.top.receipt.sequence
                    && r.body_hash != cur.top.body_hash
                {
                    cur.equivocated = true;
                }
                return Ok(());
            }
            if (cur.client, cur.session) > (client, session) {
                return Err(CloseError::Unordered);
            }
        }
        if let Some(done) = self.current.take() {
            self.session(done);
        }
        self.current = Some(Current {
            client,
            session,
            top: *r,
            equivocated: false,
        });
        Ok(())
    }

    /// Judges one session from the receipt at its top sequence.
    fn session(&mut self, cur: Current) {
        self.sessions += 1;
        if cur.equivocated {
            return self.skip(Skip::Equivocation);
        }
        let r = cur.top.receipt;
        let epoch = self.ctx.epoch;
        let (node, new_node) = self.nodes.id(&r.node);
        if new_node {
            let operator = self
                .bindings_by_node
                .get(&r.node)
                .and_then(|v| latest(v.iter().copied(), epoch))
                .map(|b| self.operators.id(&b.operator).0);
            self.node_operator.push(operator);
        }
        let pair_key = (r.buyer, r.client);
        let pair = match self.last_pair {
            Some((k, id)) if k == pair_key => id,
            _ => {
                let (id, new_pair) = self.pairs.id(&pair_hash(&pair_key));
                if new_pair {
                    let grant = self
                        .grants_by_pair
                        .get(&pair_key)
                        .and_then(|v| latest(v.iter().copied(), epoch))
                        .copied();
                    self.pair_grant.push(match grant {
                        None => PairGrant::Missing,
                        Some(g) if g.expires_at <= self.ctx.epoch_start => PairGrant::Expired,
                        Some(g) => PairGrant::Valid {
                            buyer: self.buyers.id(&g.buyer).0,
                            limit: g.credit_limit,
                        },
                    });
                }
                self.last_pair = Some((pair_key, id));
                id
            }
        };
        let Some(operator) = self.node_operator[node as usize] else {
            return self.skip(Skip::UnknownBinding);
        };
        let buyer = match self.pair_grant[pair as usize] {
            PairGrant::Missing => return self.skip(Skip::UnknownGrant),
            PairGrant::Expired => return self.skip(Skip::GrantExpired),
            PairGrant::Valid { buyer, .. } => buyer,
        };
        if r.rate_bytes_per_sec() > self.ctx.params.max_rate_bytes_per_sec {
            return self.skip(Skip::RateExceeded);
        }
        if self.operators.keys[operator as usize] == self.buyers.keys[buyer as usize] {
            return self.skip(Skip::SelfDealing);
        }
        let (client, _) = self.clients.id(&r.client);
        self.counted.push(Counted {
            node,
            client,
            pair,
            session: u128::from_be_bytes(r.session_id),
            bytes: r.cumulative_bytes,
        });
    }

    /// Applies the caps, values each buyer's consumption, splits the budget and builds both
    /// trees.
    pub fn finish(mut self) -> Result<Dataset, CloseError> {
        if let Some(done) = self.current.take() {
            self.session(done);
        }
        let ctx = self.ctx;
        let epoch = ctx.epoch;
        let overflow = || CloseError::Overflow(epoch);
        let p = ctx.params;

        // 3–4. Caps, filled in canonical order: node key, client key, session id.
        let node_rank = self.nodes.ranks();
        let client_rank = self.clients.ranks();
        let mut counted = std::mem::take(&mut self.counted);
        counted.sort_unstable_by_key(|c| {
            (
                (u64::from(node_rank[c.node as usize]) << 32)
                    | u64::from(client_rank[c.client as usize]),
                c.session,
            )
        });
        let mut pair_left: Vec<Option<u64>> = vec![None; self.pairs.keys.len()];
        let mut buyer_left: Vec<Option<u64>> = vec![None; self.buyers.keys.len()];
        let mut node_bytes = vec![0u64; self.nodes.keys.len()];
        let mut buyer_bytes_v = vec![0u64; self.buyers.keys.len()];
        // Counted bytes per (buyer, operator), merged where consecutive sessions share both.
        let mut served_runs: Vec<(u32, u32, u64)> = Vec::new();
        let (mut over_pair, mut over_credits) = (0u64, 0u64);
        let mut sessions_counted = 0u64;
        let mut node_client: Option<(u32, u32)> = None;
        let mut nc_left = 0u64;
        for c in &counted {
            // Sessions without an operator were never counted (`session`).
            let Some(operator) = self.node_operator[c.node as usize] else {
                continue;
            };
            if node_client != Some((c.node, c.client)) {
                node_client = Some((c.node, c.client));
                nc_left = p.pair_cap_bytes;
            }
            let after_cap = c.bytes.min(nc_left);
            nc_left -= after_cap;
            over_pair = over_pair
                .checked_add(c.bytes - after_cap)
                .ok_or_else(overflow)?;
            let PairGrant::Valid { buyer, limit } = self.pair_grant[c.pair as usize] else {
                continue;
            };
            let grant_left = pair_left[c.pair as usize].get_or_insert_with(|| {
                if limit == 0 {
                    u64::MAX
                } else {
                    bytes_for_credits(limit, p.credits_per_gib)
                }
            });
            let buyer_key = self.buyers.keys[buyer as usize];
            let left = buyer_left[buyer as usize].get_or_insert_with(|| {
                let had = ctx
                    .credits
                    .get(&buyer_key)
                    .map_or(0, |c| c.purchases_through(epoch).credits);
                let used = self.usage_cum.get(&buyer_key).map_or(0, |u| u.credits);
                bytes_for_credits(had.saturating_sub(used), p.credits_per_gib)
            });
            let take = after_cap.min(*grant_left).min(*left);
            *grant_left -= take;
            *left -= take;
            over_credits = over_credits
                .checked_add(after_cap - take)
                .ok_or_else(overflow)?;
            if take == 0 {
                continue;
            }
            sessions_counted += 1;
            node_bytes[c.node as usize] = node_bytes[c.node as usize]
                .checked_add(take)
                .ok_or_else(overflow)?;
            buyer_bytes_v[buyer as usize] = buyer_bytes_v[buyer as usize]
                .checked_add(take)
                .ok_or_else(overflow)?;
            match served_runs.last_mut() {
                Some((b, o, bytes)) if *b == buyer && *o == operator => {
                    *bytes = bytes.checked_add(take).ok_or_else(overflow)?;
                }
                _ => served_runs.push((buyer, operator, take)),
            }
        }
        drop(counted);
        let mut operator_bytes_v = vec![0u64; self.operators.keys.len()];
        let mut node_rows: Vec<(Key, Key, u64)> = Vec::new();
        for (node, bytes) in node_bytes.iter().enumerate() {
            if *bytes == 0 {
                continue;
            }
            if let Some(op) = self.node_operator[node] {
                operator_bytes_v[op as usize] = operator_bytes_v[op as usize]
                    .checked_add(*bytes)
                    .ok_or_else(overflow)?;
                node_rows.push((
                    self.nodes.keys[node],
                    self.operators.keys[op as usize],
                    *bytes,
                ));
            }
        }
        node_rows.sort_unstable_by_key(|r| r.0);
        let node_bytes: Vec<(Key, (Key, u64))> =
            node_rows.into_iter().map(|(n, o, b)| (n, (o, b))).collect();
        let bytes_counted = operator_bytes_v
            .iter()
            .try_fold(0u64, |a, c| a.checked_add(*c))
            .ok_or_else(overflow)?;

        // The (buyer, operator) rows in buyer key order, then operator key order, merged.
        let buyer_rank = self.buyers.ranks();
        let operator_rank = self.operators.ranks();
        served_runs.sort_unstable_by_key(|(b, o, _)| {
            (u64::from(buyer_rank[*b as usize]) << 32) | u64::from(operator_rank[*o as usize])
        });
        let mut served: Vec<(u32, u32, u64)> = Vec::with_capacity(served_runs.len());
        for (b, o, bytes) in served_runs {
            match served.last_mut() {
                Some((pb, po, pbytes)) if *pb == b && *po == o => {
                    *pbytes = pbytes.checked_add(bytes).ok_or_else(overflow)?;
                }
                _ => served.push((b, o, bytes)),
            }
        }

        // 5. Per buyer charged this epoch (in key order, as `served` is): credits and their cost.
        // `groups[i]` is the buyer and its rows in `served`.
        let mut groups: Vec<(u32, std::ops::Range<usize>)> = Vec::new();
        for (i, (b, _, _)) in served.iter().enumerate() {
            match groups.last_mut() {
                Some((gb, range)) if *gb == *b => range.end = i + 1,
                _ => groups.push((*b, i..i + 1)),
            }
        }
        let mut charged: Vec<Charged> = Vec::with_capacity(groups.len());
        for (buyer, _) in &groups {
            let key = self.buyers.keys[*buyer as usize];
            let bytes = buyer_bytes_v[*buyer as usize];
            let credits = credits_for_bytes(bytes, p.credits_per_gib).map_err(|_| overflow())?;
            let purchases = ctx
                .credits
                .get(&key)
                .map_or_else(Purchases::default, |c| c.purchases_through(epoch));
            let before = self.usage_cum.get(&key).copied().unwrap_or_default();
            let cost = if credits == 0 {
                0
            } else {
                consumption_cost(before, purchases, credits).map_err(|e| match e {
                    backhaul_core::CoreError::Overflow => overflow(),
                    _ => CloseError::ConsumptionExceedsPurchases {
                        buyer: b58(&key),
                        epoch,
                    },
                })?
            };
            charged.push(Charged {
                key,
                bytes,
                credits,
                purchases,
                cost,
                pot: 0,
            });
        }
        let credits_consumed = charged
            .iter()
            .try_fold(0u64, |a, c| a.checked_add(c.credits))
            .ok_or_else(overflow)?;
        let usage_cost = charged
            .iter()
            .try_fold(0u64, |a, c| a.checked_add(c.cost))
            .ok_or_else(overflow)?;

        // 6. Budget, each buyer's pot, and its split across the operators that served it.
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
            usage_cost,
            burns_not_reemitted: ch.burns_not_reemitted,
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
        let costs: Vec<u64> = charged.iter().map(|c| c.cost).collect();
        let pots = buyer_pots(budget.total, ch.usage_cap_bps, &costs).map_err(|_| overflow())?;
        let mut allocation = 0u64;
        let mut served_amounts = vec![0u64; served.len()];
        let mut operator_reward_v = vec![0u64; self.operators.keys.len()];
        for ((c, pot), (_, range)) in charged.iter_mut().zip(pots).zip(&groups) {
            c.pot = pot;
            allocation = allocation.checked_add(pot).ok_or_else(overflow)?;
            let rows = served.get(range.clone()).ok_or_else(overflow)?;
            let weights: Vec<u64> = rows.iter().map(|r| r.2).collect();
            let parts = split_largest_remainder(pot, &weights).map_err(|_| overflow())?;
            for (i, part) in range.clone().zip(parts) {
                served_amounts[i] = part;
                let op = served[i].1 as usize;
                operator_reward_v[op] = operator_reward_v[op]
                    .checked_add(part)
                    .ok_or_else(overflow)?;
            }
        }
        // Every operator with counted bytes: (this epoch's reward, its bytes).
        let epoch_reward: BTreeMap<Key, (u64, u64)> = operator_bytes_v
            .iter()
            .zip(&operator_reward_v)
            .enumerate()
            .filter(|(_, (bytes, _))| **bytes > 0)
            .map(|(i, (bytes, reward))| (self.operators.keys[i], (*reward, *bytes)))
            .collect();
        let charged: BTreeMap<Key, Charged> = charged.into_iter().map(|c| (c.key, c)).collect();

        // 7. Cumulative leaves and trees.
        let mut reward_cum = std::mem::take(&mut self.reward_cum);
        let mut usage_cum = std::mem::take(&mut self.usage_cum);
        for (k, (share, _)) in &epoch_reward {
            let c = reward_cum.entry(*k).or_default();
            *c = c.checked_add(*share).ok_or_else(overflow)?;
        }
        for (k, b) in &charged {
            let u = usage_cum.entry(*k).or_default();
            u.credits = u.credits.checked_add(b.credits).ok_or_else(overflow)?;
            u.cost = u.cost.checked_add(b.cost).ok_or_else(overflow)?;
        }
        let cost_total = self
            .prev_usage_cost_total
            .checked_add(usage_cost)
            .ok_or_else(overflow)?;
        let config = ctx.deployment.config;
        let reward_entries = reward_cum
            .iter()
            .map(|(k, v)| Entry {
                account: *k,
                cumulative: *v,
            })
            .collect();
        let usage_entries = usage_cum
            .iter()
            .map(|(k, u)| Entry {
                account: *k,
                cumulative: u.credits,
            })
            .collect();
        let reward_tree = EpochTree::build(TreeKind::Reward, &config, epoch, reward_entries)
            .map_err(CloseError::Tree)?;
        let usage_tree = EpochTree::build(TreeKind::Usage, &config, epoch, usage_entries)
            .map_err(CloseError::Tree)?;

        // Each key is encoded once, however many rows name it.
        let mut buyer_names: Vec<Option<String>> = vec![None; self.buyers.keys.len()];
        let mut operator_names: Vec<Option<String>> = vec![None; self.operators.keys.len()];
        let served = served
            .into_iter()
            .zip(served_amounts)
            .map(|((b, o, bytes), amount)| Served {
                buyer: buyer_names[b as usize]
                    .get_or_insert_with(|| b58(&self.buyers.keys[b as usize]))
                    .clone(),
                operator: operator_names[o as usize]
                    .get_or_insert_with(|| b58(&self.operators.keys[o as usize]))
                    .clone(),
                bytes,
                amount,
            })
            .collect();
        drop((buyer_names, operator_names));

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
                previous_usage_cost_total: self.prev_usage_cost_total,
                burns_not_reemitted: ch.burns_not_reemitted,
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
                cost_total,
                usage_cost,
                leaves: usage_tree
                    .entries
                    .iter()
                    .map(|e| {
                        let cumulative_cost = usage_cum.get(&e.account).map_or(0, |u| u.cost);
                        let c = charged.get(&e.account);
                        UsageLeaf {
                            buyer: b58(&e.account),
                            cumulative: e.cumulative,
                            credits: c.map_or(0, |c| c.credits),
                            bytes: c.map_or(0, |c| c.bytes),
                            purchased_credits: c.map_or(0, |c| c.purchases.credits),
                            purchased_tokens: c.map_or(0, |c| c.purchases.tokens),
                            cumulative_cost,
                            cost: c.map_or(0, |c| c.cost),
                            pot: c.map_or(0, |c| c.pot),
                        }
                    })
                    .collect(),
            },
            served,
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

/// A buyer charged bytes this epoch.
struct Charged {
    key: Key,
    bytes: u64,
    credits: u64,
    /// Its purchases through the epoch.
    purchases: Purchases,
    /// What the credits it consumed this epoch cost it, in tokens.
    cost: u64,
    /// The rewards that consumption funds.
    pot: u64,
}

/// One 32-byte key for a (buyer, client) pair, for interning.
fn pair_hash(pair: &(Key, Key)) -> Key {
    backhaul_core::merkle::sha256v(&[&pair.0, &pair.1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use backhaul_core::merkle::sha256v;
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    use std::collections::BTreeSet;

    const TOKEN: u64 = 1_000_000;
    const GIB: u64 = 1 << 30;
    /// The price buyers pay: 100,000 credits per token.
    const CREDITS_PER_TOKEN: u64 = 100_000;
    /// 1 GiB costs 50 tokens' worth of credits.
    const CREDITS_PER_GIB: u64 = 50 * CREDITS_PER_TOKEN;

    fn key(tag: &str, i: u8) -> Key {
        sha256v(&[tag.as_bytes(), &[i]])
    }

    /// Receipts, bindings, grants and credit accounts of a small network, closed by hand.
    struct Net {
        chain: ChainInputs,
        receipts: Vec<StoredReceipt>,
        bindings: Vec<Stored<NodeBinding>>,
        grants: Vec<Stored<ClientGrant>>,
        credits: HashMap<Key, BuyerCredits>,
    }

    impl Net {
        /// k in basis points; the schedule allows `scheduled` per epoch and nothing is re-minted.
        fn new(usage_cap_bps: u32, scheduled: u64) -> Self {
            Net {
                chain: ChainInputs {
                    epoch_length_secs: 86_400,
                    initial_per_epoch: scheduled,
                    decay_period_epochs: 1,
                    lifetime_cap: u64::MAX / 2,
                    burn_smoothing_epochs: 1,
                    usage_cap_bps,
                    decimals: 6,
                    credits_per_token: CREDITS_PER_TOKEN,
                    ledger_sealed: true,
                    ..Default::default()
                },
                receipts: vec![],
                bindings: vec![],
                grants: vec![],
                credits: HashMap::new(),
            }
        }

        fn bind(&mut self, node: Key, operator: Key) {
            self.bindings.push(Stored {
                body: NodeBinding {
                    node,
                    operator,
                    epoch: 0,
                    issued_at: 1,
                },
                body_hash: sha256v(&[b"binding", &node]),
            });
        }

        fn grant(&mut self, buyer: Key, client: Key) {
            self.grants.push(Stored {
                body: ClientGrant {
                    buyer,
                    client,
                    epoch: 0,
                    issued_at: 1,
                    expires_at: i64::MAX,
                    credit_limit: 0,
                },
                body_hash: sha256v(&[b"grant", &buyer, &client]),
            });
        }

        /// `buyer` burns `tokens` for credits at the price, in epoch 0.
        fn buy(&mut self, buyer: Key, tokens: u64) {
            let credits = tokens / TOKEN * CREDITS_PER_TOKEN;
            self.credits.insert(
                buyer,
                BuyerCredits {
                    issued: credits,
                    tokens_burned: tokens,
                    ..Default::default()
                },
            );
        }

        /// One session of `bytes`, reported in `receipts` receipts of growing sequence.
        #[allow(clippy::too_many_arguments)]
        fn session(
            &mut self,
            epoch: u64,
            node: Key,
            client: Key,
            buyer: Key,
            id: u8,
            bytes: u64,
            receipts: u64,
        ) {
            for seq in 1..=receipts {
                let receipt = UsageReceipt {
                    epoch,
                    session_id: [id; 16],
                    node,
                    client,
                    buyer,
                    sequence: seq,
                    cumulative_bytes: if seq == receipts {
                        bytes
                    } else {
                        bytes / receipts * seq
                    },
                    session_age_secs: 3_600,
                };
                let body_hash = sha256v(&[&node, &client, &[id], &seq.to_le_bytes()]);
                self.receipts.push(StoredReceipt { receipt, body_hash });
            }
        }

        fn close(&self, epoch: u64, previous: Option<&Dataset>) -> Result<Dataset, CloseError> {
            close(&CloseInput {
                deployment: Deployment {
                    program_id: [1; 32],
                    config: [2; 32],
                },
                epoch,
                epoch_start: 86_400 * epoch as i64,
                epoch_end: 86_400 * (epoch as i64 + 1),
                params: CloseParams {
                    credits_per_gib: CREDITS_PER_GIB,
                    pair_cap_bytes: u64::MAX,
                    max_rate_bytes_per_sec: u64::MAX,
                },
                chain: &self.chain,
                receipts: &self.receipts,
                bindings: &self.bindings,
                grants: &self.grants,
                credits: &self.credits,
                previous,
            })
        }

        /// The chain after finalizing `d`, as the program leaves it for the next epoch.
        fn finalized(&mut self, d: &Dataset) {
            self.chain.next_epoch = d.epoch + 1;
            self.chain.last_reward_total = d.rewards.total;
            self.chain.last_usage_total = d.usage.total;
            self.chain.last_usage_cost_total = d.usage.cost_total;
            self.chain.scheduled_minted += d.allocation;
        }
    }

    fn reward(d: &Dataset, operator: &Key) -> u64 {
        let op = b58(operator);
        d.rewards
            .leaves
            .iter()
            .find(|l| l.operator == op)
            .map_or(0, |l| l.amount)
    }

    fn usage<'d>(d: &'d Dataset, buyer: &Key) -> &'d UsageLeaf {
        let b = b58(buyer);
        d.usage
            .leaves
            .iter()
            .find(|l| l.buyer == b)
            .expect("a usage leaf")
    }

    /// What must hold in every dataset: the served rows add up to the reward leaves, the pots to
    /// the allocation, the costs to the usage cost, and nothing exceeds the budget.
    fn check_sums(d: &Dataset) {
        let mut by_operator: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
        for s in &d.served {
            let e = by_operator.entry(&s.operator).or_default();
            e.0 += s.bytes;
            e.1 += s.amount;
        }
        for l in &d.rewards.leaves {
            let (bytes, amount) = by_operator
                .get(l.operator.as_str())
                .copied()
                .unwrap_or_default();
            assert_eq!((l.bytes, l.amount), (bytes, amount), "{}", l.operator);
        }
        let keys: Vec<(Key, Key)> = d
            .served
            .iter()
            .map(|s| {
                (
                    key_from_b58(&s.buyer).unwrap(),
                    key_from_b58(&s.operator).unwrap(),
                )
            })
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "served rows in order");
        let pots: u64 = d.usage.leaves.iter().map(|l| l.pot).sum();
        let costs: u64 = d.usage.leaves.iter().map(|l| l.cost).sum();
        let cumulative: u64 = d.usage.leaves.iter().map(|l| l.cumulative_cost).sum();
        assert_eq!(pots, d.allocation);
        assert_eq!(
            d.rewards.leaves.iter().map(|l| l.amount).sum::<u64>(),
            d.allocation
        );
        assert_eq!(costs, d.usage.usage_cost);
        assert_eq!(cumulative, d.usage.cost_total);
        assert_eq!(
            d.usage.cost_total,
            d.parameters.previous_usage_cost_total + d.usage.usage_cost
        );
        assert!(d.allocation <= d.budget.total);
        for l in &d.usage.leaves {
            let k = u128::from(d.parameters.usage_cap_bps);
            assert!(
                u128::from(l.pot) * 10_000 <= u128::from(l.cost) * k,
                "{l:?}"
            );
        }
    }

    /// An honest buyer (100 tokens, served by operator A) and a wash trader (50 tokens) whose
    /// clients only use nodes of its own operator W, sending far more than its credits pay for.
    fn wash(usage_cap_bps: u32, scheduled: u64) -> (Net, [Key; 4]) {
        let mut n = Net::new(usage_cap_bps, scheduled);
        let (honest, honest_client) = (key("buyer", 0), key("client", 0));
        let (trader, trader_client) = (key("buyer", 1), key("client", 1));
        let (a, w) = (key("operator", 0), key("operator", 1));
        n.buy(honest, 100 * TOKEN);
        n.buy(trader, 50 * TOKEN);
        n.grant(honest, honest_client);
        n.grant(trader, trader_client);
        n.bind(key("node", 0), a);
        n.session(0, key("node", 0), honest_client, honest, 1, 2 * GIB, 3);
        for i in 1..4 {
            n.bind(key("node", i), w);
            n.session(0, key("node", i), trader_client, trader, i, 5 * GIB, 2);
        }
        (n, [honest, trader, a, w])
    }

    /// One purchase: tokens burned and the price they were burned at (credits per token).
    fn bought(n: &mut Net, buyer: Key, purchases: &[(u64, u64)]) -> u64 {
        let mut c = BuyerCredits::default();
        for (tokens, price) in purchases {
            c.issued += backhaul_core::price::credits_for_tokens(*tokens, *price, 6).unwrap();
            c.tokens_burned += tokens;
        }
        n.credits.insert(buyer, c);
        c.tokens_burned
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(96))]

        /// For any k the program accepts, any schedule, net emissions and prices that moved
        /// between purchases, and any traffic: what a buyer that also runs nodes gains by paying
        /// its own nodes for traffic (its operator's reward with the wash traffic, less without
        /// it) is at most k times what it burned for that traffic, so never more than it burned.
        /// Its own nodes may also serve honest buyers, whose pots the wash traffic can only
        /// dilute. The split is the oracle's real close.
        #[test]
        fn wash_trading_never_returns_more_than_was_burned(
            k in 1u32..=10_000,
            scheduled in 0u64..5_000,
            net_cap in 0u64..500,
            burn_ema in 0u64..1_000,
            honest in proptest::collection::vec(
                // (tokens, price, GiB through A, GiB through W) per honest buyer
                (1u64..200, 10_000u64..400_000, 0u64..8, 0u64..8),
                0..4,
            ),
            wash_purchases in proptest::collection::vec((1u64..300, 10_000u64..400_000), 1..3),
            wash_gib in 0u64..40,
        ) {
            let close_with = |with_wash: bool| {
                let mut n = Net::new(k, scheduled * TOKEN);
                n.chain.net_emissions_cap = net_cap * TOKEN;
                n.chain.burn_ema = burn_ema * TOKEN;
                n.chain.burns_not_reemitted = u64::MAX / 4;
                let (a, w) = (key("operator", 0), key("operator", 9));
                n.bind(key("node", 0), a);
                n.bind(key("node", 9), w);
                let mut id = 0u8;
                for (i, (tokens, price, via_a, via_w)) in honest.iter().enumerate() {
                    let (b, c) = (key("buyer", i as u8), key("client", i as u8));
                    bought(&mut n, b, &[(tokens * TOKEN, *price)]);
                    n.grant(b, c);
                    for (node, gib) in [(key("node", 0), via_a), (key("node", 9), via_w)] {
                        if *gib > 0 {
                            id += 1;
                            n.session(0, node, c, b, id, gib * GIB, 2);
                        }
                    }
                }
                let mut burned = 0;
                if with_wash {
                    let (t, c) = (key("trader", 0), key("trader-client", 0));
                    let purchases: Vec<(u64, u64)> =
                        wash_purchases.iter().map(|(t, p)| (t * TOKEN, *p)).collect();
                    burned = bought(&mut n, t, &purchases);
                    n.grant(t, c);
                    if wash_gib > 0 {
                        id += 1;
                        n.session(0, key("node", 9), c, t, id, wash_gib * GIB, 2);
                    }
                }
                let d = n.close(0, None).unwrap();
                check_sums(&d);
                (reward(&d, &w), burned, d)
            };
            let (with, burned, d) = close_with(true);
            let (without, _, _) = close_with(false);
            let gain = with.saturating_sub(without);
            proptest::prop_assert!(
                u128::from(gain) * 10_000 <= u128::from(burned) * u128::from(k),
                "gain {} for {} burned at k = {}", gain, burned, k
            );
            proptest::prop_assert!(gain <= burned);
            // And the epoch never mints more than k times what its consumption cost.
            proptest::prop_assert!(
                u128::from(d.allocation) * 10_000 <= u128::from(d.usage.usage_cost) * u128::from(k)
            );
        }
    }

    #[test]
    fn a_wash_trader_gets_back_at_most_k_times_what_it_paid() {
        let (n, [honest, trader, a, w]) = wash(8_000, 1_000 * TOKEN);
        let d = n.close(0, None).unwrap();
        check_sums(&d);
        // The honest buyer consumed all its credits (2 GiB): they cost it 100 tokens, and 0.8 of
        // that goes to the operator that served it.
        let h = usage(&d, &honest);
        assert_eq!(
            (h.credits, h.cost, h.pot),
            (10_000_000, 100 * TOKEN, 80 * TOKEN)
        );
        assert_eq!(
            (h.purchased_credits, h.purchased_tokens),
            (10_000_000, 100 * TOKEN)
        );
        assert_eq!(reward(&d, &a), 80 * TOKEN);
        // The wash trader's 15 GiB count only as far as its credits go (1 GiB), which cost it
        // 50 tokens: its own operator gets 40, less than it burned.
        let t = usage(&d, &trader);
        assert_eq!((t.credits, t.bytes, t.cost), (5_000_000, GIB, 50 * TOKEN));
        assert_eq!(t.pot, 40 * TOKEN);
        assert_eq!(reward(&d, &w), 40 * TOKEN);
        assert!(reward(&d, &w) <= 8_000 * 50 * TOKEN / 10_000);
        assert_eq!(d.stats.bytes_over_credits, 14 * GIB);
        // The budget: k × 150 tokens, below the schedule; the pots use all of it.
        assert_eq!(d.budget.usage_cap, 120 * TOKEN);
        assert_eq!(d.budget.total, 120 * TOKEN);
        assert_eq!(d.allocation, 120 * TOKEN);
        assert_eq!(d.usage.usage_cost, 150 * TOKEN);
        assert_eq!(d.usage.cost_total, 150 * TOKEN);
        assert_eq!(
            d.served
                .iter()
                .map(|s| (s.buyer.clone(), s.operator.clone(), s.bytes, s.amount))
                .collect::<BTreeSet<_>>(),
            [
                (b58(&honest), b58(&a), 2 * GIB, 80 * TOKEN),
                (b58(&trader), b58(&w), GIB, 40 * TOKEN),
            ]
            .into_iter()
            .collect()
        );
    }

    #[test]
    fn a_binding_budget_scales_the_pots_and_is_used_exactly() {
        // The schedule allows 30 tokens, less than the 80 + 40 the pots would be.
        let (n, [honest, trader, a, w]) = wash(8_000, 30 * TOKEN);
        let d = n.close(0, None).unwrap();
        check_sums(&d);
        assert_eq!(d.budget.usage_cap, 120 * TOKEN);
        assert_eq!(d.budget.total, 30 * TOKEN);
        assert_eq!(usage(&d, &honest).pot, 20 * TOKEN);
        assert_eq!(usage(&d, &trader).pot, 10 * TOKEN);
        assert_eq!((reward(&d, &a), reward(&d, &w)), (20 * TOKEN, 10 * TOKEN));
        assert_eq!(d.allocation, 30 * TOKEN);
        // A pot split across several operators sums exactly too, by largest remainder.
        let (mut n, [honest, _, a, _]) = wash(10_000, 100 * TOKEN - 1);
        let b = key("operator", 9);
        n.bind(key("node", 9), b);
        let client = key("client", 0);
        n.session(0, key("node", 9), client, honest, 7, GIB / 3, 1);
        n.buy(honest, 1_000 * TOKEN);
        n.buy(key("buyer", 1), 1_000 * TOKEN);
        let d = n.close(0, None).unwrap();
        check_sums(&d);
        assert_eq!(d.allocation, d.budget.total);
        assert_eq!(d.budget.total, 100 * TOKEN - 1);
        assert!(reward(&d, &a) > 0 && reward(&d, &b) > 0);
    }

    #[test]
    fn later_purchases_do_not_change_the_cost() {
        let buyer = key("buyer", 0);
        let client = key("client", 0);
        let op = key("operator", 0);
        let mut n = Net::new(10_000, 1_000 * TOKEN);
        n.buy(buyer, 100 * TOKEN);
        n.grant(buyer, client);
        n.bind(key("node", 0), op);
        n.session(0, key("node", 0), client, buyer, 1, GIB, 2);
        let d0 = n.close(0, None).unwrap();
        check_sums(&d0);
        // Half of its credits, at 1 token per 100,000: 50 tokens.
        assert_eq!(usage(&d0, &buyer).cost, 50 * TOKEN);

        // The same epoch closed after the buyer bought 1,000,000 more credits in epoch 1 at nine
        // times the price: nothing changes, byte for byte.
        let mut later = Net { ..n };
        later.credits.insert(
            buyer,
            BuyerCredits {
                issued: 11_000_000,
                tokens_burned: 1_000 * TOKEN,
                purchase_epoch: 1,
                issued_before_purchase_epoch: 10_000_000,
                tokens_before_purchase_epoch: 100 * TOKEN,
            },
        );
        assert_eq!(later.close(0, None).unwrap().to_bytes(), d0.to_bytes());

        // Epoch 1 sees that purchase: the other 5,000,000 credits consumed cost the average of
        // what is left, 6,000,000 credits for 950 tokens.
        later.finalized(&d0);
        later.session(1, key("node", 0), client, buyer, 2, GIB, 1);
        let d1 = later.close(1, Some(&d0)).unwrap();
        check_sums(&d1);
        let u = usage(&d1, &buyer);
        assert_eq!(u.credits, 5_000_000);
        assert_eq!(u.cost, 5_000_000 * 950 * TOKEN / 6_000_000);
        assert_eq!(u.cumulative_cost, 50 * TOKEN + u.cost);
        assert_eq!(
            (u.purchased_credits, u.purchased_tokens),
            (11_000_000, 1_000 * TOKEN)
        );
        assert_eq!(d1.parameters.previous_usage_cost_total, 50 * TOKEN);
        assert_eq!(d1.allocation, u.cost);
        assert_eq!(reward(&d1, &op), u.cost);

        // The previous dataset must be the one the chain finalized, costs included.
        let mut wrong = Net { ..later };
        wrong.chain.last_usage_cost_total += 1;
        assert!(matches!(
            wrong.close(1, Some(&d0)),
            Err(CloseError::PreviousMismatch { cost, chain_cost, .. })
                if cost == 50 * TOKEN && chain_cost == 50 * TOKEN + 1
        ));
        wrong.chain.last_usage_cost_total -= 1;
        let mut tampered = d0.clone();
        tampered.usage.leaves[0].cumulative_cost += 1;
        assert!(matches!(
            wrong.close(1, Some(&tampered)),
            Err(CloseError::InconsistentPrevious(_))
        ));
    }

    #[test]
    fn without_paid_usage_nothing_is_minted() {
        // Credits that cost nothing (none burned for them) fund nothing, however much is served.
        let (mut n, [honest, trader, a, w]) = wash(10_000, 1_000 * TOKEN);
        for b in [honest, trader] {
            if let Some(c) = n.credits.get_mut(&b) {
                c.tokens_burned = 0;
            }
        }
        let d = n.close(0, None).unwrap();
        check_sums(&d);
        assert!(d.usage.credits_consumed > 0);
        assert_eq!(
            (d.usage.usage_cost, d.budget.total, d.allocation),
            (0, 0, 0)
        );
        assert_eq!((reward(&d, &a), reward(&d, &w)), (0, 0));
        assert_eq!(
            d.rewards.leaf_count, 2,
            "operators that served are in the tree"
        );
        // Nor does an epoch without receipts.
        n.receipts.clear();
        let d = n.close(0, None).unwrap();
        assert_eq!((d.budget.total, d.allocation), (0, 0));
        assert!(d.served.is_empty());
    }

    #[test]
    fn buyers_that_consumed_nothing_keep_their_cost_and_show_no_purchases() {
        let (mut n, [honest, trader, _, w]) = wash(10_000, 1_000 * TOKEN);
        let d0 = n.close(0, None).unwrap();
        n.finalized(&d0);
        // In epoch 1 only the wash trader's operator serves the honest buyer.
        n.receipts.clear();
        let honest_client = key("client", 0);
        n.buy(honest, 200 * TOKEN);
        n.session(1, key("node", 1), honest_client, honest, 9, GIB / 2, 1);
        let d1 = n.close(1, Some(&d0)).unwrap();
        check_sums(&d1);
        let t = usage(&d1, &trader);
        assert_eq!((t.credits, t.bytes, t.cost, t.pot), (0, 0, 0, 0));
        assert_eq!((t.purchased_credits, t.purchased_tokens), (0, 0));
        assert_eq!(t.cumulative_cost, usage(&d0, &trader).cumulative_cost);
        let h = usage(&d1, &honest);
        // 2,500,000 of the 10,000,000 credits left (20,000,000 bought for 200 tokens) cost 25.
        assert_eq!((h.credits, h.cost), (2_500_000, 25 * TOKEN));
        assert_eq!(reward(&d1, &w), 25 * TOKEN);
    }

    #[test]
    fn the_same_inputs_in_any_order_give_the_same_bytes() {
        // The schedule binds: the pots are scaled to it.
        let mut n = Net::new(7_500, 300 * TOKEN);
        for b in 0..4u8 {
            n.buy(key("buyer", b), (u64::from(b) + 1) * 100 * TOKEN);
            for c in 0..2u8 {
                n.grant(key("buyer", b), key("client", b * 2 + c));
            }
        }
        for i in 0..6u8 {
            n.bind(key("node", i), key("operator", i % 4));
        }
        for b in 0..4u8 {
            for c in 0..2u8 {
                let client = key("client", b * 2 + c);
                for i in 0..6u8 {
                    if (b + c + i) % 3 != 0 {
                        let bytes = u64::from(b + 1) * u64::from(i + 1) * 37_000_000;
                        n.session(0, key("node", i), client, key("buyer", b), i, bytes, 3);
                    }
                }
            }
        }
        let first = n.close(0, None).unwrap();
        check_sums(&first);
        assert_eq!(first.allocation, 300 * TOKEN);
        assert!(first.served.len() > 10, "{:?}", first.served);
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..5 {
            n.receipts.shuffle(&mut rng);
            n.bindings.shuffle(&mut rng);
            n.grants.shuffle(&mut rng);
            let mut entries: Vec<_> = n.credits.drain().collect();
            entries.shuffle(&mut rng);
            n.credits = entries.into_iter().collect();
            assert_eq!(n.close(0, None).unwrap().to_bytes(), first.to_bytes());
        }
        // And on top of a previous epoch.
        n.finalized(&first);
        for r in &mut n.receipts {
            r.receipt.epoch = 1;
        }
        let second = n.close(1, Some(&first)).unwrap();
        check_sums(&second);
        n.receipts.shuffle(&mut rng);
        assert_eq!(
            n.close(1, Some(&first)).unwrap().to_bytes(),
            second.to_bytes()
        );
    }
}
