//! The close's tests: a small network built by hand (`Net`), the sums every dataset must satisfy
//! (`check_sums`), examples, property tests, and what the crate may depend on.

mod close;
mod dependencies;
mod positions;
mod properties;
mod prune;

use crate::{
    close, BuyerCredits, ChainInputs, CloseContext, CloseError, CloseInput, CloseParams, Stored,
    StoredReceipt,
};
use backhaul_core::cost::Purchases;
use backhaul_core::merkle::sha256v;
use backhaul_protocol::dataset::{b58, key_from_b58, Dataset, UsageLeaf};
use backhaul_protocol::{ClientGrant, Deployment, Key, NodeBinding, UsageReceipt};
use std::collections::{BTreeMap, HashMap};

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
    params: CloseParams,
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
            params: CloseParams {
                credits_per_gib: CREDITS_PER_GIB,
                pair_cap_bytes: u64::MAX,
                max_rate_bytes_per_sec: u64::MAX,
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
            position: 0,
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
            position: 0,
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

    /// `buyer` burns `tokens` for `credits` in `epoch`, after what it bought before, as
    /// `buy_credits` records it (its checkpoints included).
    fn buy_in(&mut self, buyer: Key, epoch: u64, tokens: u64, credits: u64) {
        let c = self.credits.entry(buyer).or_default();
        let total = Purchases {
            credits: c.issued,
            tokens: c.tokens_burned,
        };
        c.checkpoints.record(epoch, total).unwrap();
        c.issued += credits;
        c.tokens_burned += tokens;
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

    /// The close's inputs for `epoch` (which lasts a day from `86_400 · epoch`).
    fn input<'a>(&'a self, epoch: u64, previous: Option<&'a Dataset>) -> CloseInput<'a> {
        CloseInput {
            context: CloseContext {
                input_hash: [0; 32],
                deployment: Deployment {
                    program_id: [1; 32],
                    config: [2; 32],
                },
                epoch,
                epoch_start: 86_400 * epoch as i64,
                epoch_end: 86_400 * (epoch as i64 + 1),
                params: self.params,
                chain: &self.chain,
                bindings: &self.bindings,
                grants: &self.grants,
                credits: &self.credits,
                previous,
            },
            receipts: &self.receipts,
        }
    }

    fn close(&self, epoch: u64, previous: Option<&Dataset>) -> Result<Dataset, CloseError> {
        close(&self.input(epoch, previous))
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
