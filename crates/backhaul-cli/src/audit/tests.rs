//! The pure audit on a hand-built deployment of two finalized epochs, computed the way the
//! oracle closes epochs and the program buys, finalizes, settles and pays claims: every check
//! passes; then each check fails when its input is perturbed.

use super::checks::{audit, AuditReport, Fetched, MintInfo, Snapshot, VaultInfo};
use backhaul_core::budget::{EpochActivity, EpochBudget, NetEmissionParams};
use backhaul_core::cost::{buyer_pots, consumption_cost, purchases_through, Consumed, Purchases};
use backhaul_core::emission::EmissionSchedule;
use backhaul_core::merkle::{sha256v, TreeKind};
use backhaul_core::split::{credits_for_bytes, split_largest_remainder, GIB};
use backhaul_core::tree::{Entry, EpochTree};
use backhaul_oracle::chain::examples::{example_config, example_ledger};
use backhaul_protocol::dataset::{
    b58, hex, key_from_b58, Budget, Dataset, NodeUsage, Parameters, RewardLeaf, RewardTree, Served,
    Stats, UsageLeaf, UsageTree, DATASET_VERSION,
};
use backhaul_sdk::state::{
    Config, CreditAccount, EpochLedger, EpochProposal, EpochRecord, EpochStatus, OperatorClaim,
    PriceFeed, Vote,
};
use backhaul_sdk::Deployment;
use solana_sdk::pubkey::Pubkey;
use std::collections::BTreeMap;

const TOKEN: u64 = 1_000_000;
const GENESIS: i64 = 1_800_000_000;
const EPOCH_SECS: u64 = 3_600;
const CREDITS_PER_TOKEN: u64 = 100_000;
const CREDITS_PER_GIB: u64 = 50_000;
/// k = 0.9.
const K_BPS: u32 = 9_000;

type Key = [u8; 32];

fn op(i: u8) -> Key {
    [i; 32]
}
fn buyer(i: u8) -> Key {
    [0xB0 + i; 32]
}
fn node_of(operator: &Key) -> Key {
    sha256v(&[b"node", operator])
}

/// A deployment and its datasets, kept consistent as the program and the oracle would.
struct Fixture {
    snapshot: Snapshot,
    datasets: BTreeMap<u64, Fetched>,
    decoded: BTreeMap<u64, Dataset>,
}

/// One epoch's activity: tokens each buyer burns for credits (before its traffic), and the bytes
/// of each buyer's traffic through each operator's node.
struct Activity {
    burns: Vec<(Key, u64)>,
    traffic: Vec<(Key, Key, u64)>,
}

/// The oracle's example config bound to this deployment's accounts, with a small schedule (one
/// token per epoch, so that paying operators also re-mints burns), k = 0.9, a 10-minute
/// challenge period and a price that may be three epochs old.
fn config(mint: Pubkey) -> Config {
    let d = Deployment::new(mint);
    let mut c = example_config(GENESIS, EPOCH_SECS, 0);
    c.admin = Pubkey::new_from_array([9; 32]);
    c.guardians = vec![Pubkey::new_from_array([8; 32])];
    c.mint = mint;
    c.vault = d.vault();
    c.price_feed = d.price_feed();
    c.oracles = vec![Pubkey::new_from_array([7; 32])];
    c.challenge_period_secs = 600;
    c.emission.initial_per_epoch = TOKEN;
    c.emission.floor_per_epoch = TOKEN / 10;
    c.economics.price_max_age_secs = 3 * EPOCH_SECS;
    c.economics.usage_cap_bps = K_BPS;
    c.initial_supply = 1_000_000 * TOKEN;
    c
}

fn credit_account(d: &Deployment, b: &Key) -> CreditAccount {
    CreditAccount {
        config: d.config,
        buyer: Pubkey::new_from_array(*b),
        bump: 255,
        balance: 0,
        issued: 0,
        settled: 0,
        unpaid: 0,
        consumed_cumulative: 0,
        last_settled_epoch: 0,
        tokens_burned: 0,
        purchase_epoch: 0,
        issued_before_purchase_epoch: 0,
        tokens_before_purchase_epoch: 0,
    }
}

/// The two epochs every test starts from. Epoch 0: buyer 1 buys and is served by operators 1
/// and 2. Epoch 1: buyer 1 buys a little more and is served by operator 2; buyer 2 buys and is
/// served by operators 2 and 3.
fn two_epochs() -> [Activity; 2] {
    [
        Activity {
            burns: vec![(buyer(1), 100 * TOKEN)],
            traffic: vec![(buyer(1), op(1), GIB), (buyer(1), op(2), 3 * GIB)],
        },
        Activity {
            burns: vec![(buyer(1), 7 * TOKEN), (buyer(2), 50 * TOKEN)],
            traffic: vec![
                (buyer(1), op(2), GIB),
                (buyer(2), op(2), GIB),
                (buyer(2), op(3), 2 * GIB),
            ],
        },
    ]
}

impl Fixture {
    fn new() -> Fixture {
        Fixture::with(|_| {})
    }

    /// The two epochs on a config changed by `tweak` first.
    fn with(tweak: impl FnOnce(&mut Config)) -> Fixture {
        let mint = Pubkey::new_from_array([0x4D; 32]);
        let d = Deployment::new(mint);
        let mut cfg = config(mint);
        tweak(&mut cfg);
        let snapshot = Snapshot {
            program_id: backhaul_sdk::PROGRAM_ID,
            config_address: d.config,
            price_feed: Some((
                d.price_feed(),
                PriceFeed {
                    config: d.config,
                    bump: 255,
                    credits_per_token: CREDITS_PER_TOKEN,
                    posted_at: GENESIS,
                    oracle_set_changed: false,
                    submissions: vec![],
                },
            )),
            mint: Some(MintInfo {
                supply: cfg.initial_supply,
                decimals: 6,
                mint_authority: Some(d.config),
            }),
            vault: Some((
                d.vault(),
                VaultInfo {
                    amount: 0,
                    mint,
                    owner: d.config,
                },
            )),
            config: cfg,
            records: vec![],
            ledgers: vec![],
            claims: vec![],
            credits: vec![],
            changes: vec![],
            unknown: vec![],
        };
        let mut f = Fixture {
            snapshot,
            datasets: BTreeMap::new(),
            decoded: BTreeMap::new(),
        };
        for a in two_epochs() {
            f.epoch(a);
        }
        // Buyers settle against epoch 1; operator 1 claims with epoch 1's proof, operator 2
        // with epoch 0's (an older, smaller cumulative amount).
        let latest = f.decoded[&1].clone();
        for l in &latest.usage.leaves {
            f.settle(1, &l.buyer, l.cumulative);
        }
        let earlier = f.decoded[&0].clone();
        f.claim(&latest, &b58(&op(1)), 1);
        f.claim(&earlier, &b58(&op(2)), 0);
        f
    }

    fn d(&self) -> Deployment {
        Deployment::new(self.snapshot.config.mint)
    }

    fn cfg(&mut self) -> &mut Config {
        &mut self.snapshot.config
    }

    fn ledger(&mut self, e: u64) -> &mut EpochLedger {
        &mut self
            .snapshot
            .ledgers
            .iter_mut()
            .find(|(_, l)| l.epoch == e)
            .unwrap()
            .1
    }

    fn record(&mut self, e: u64) -> &mut EpochRecord {
        &mut self
            .snapshot
            .records
            .iter_mut()
            .find(|(_, r)| r.epoch == e)
            .unwrap()
            .1
    }

    fn credits_of(&mut self, b: &Key) -> &mut CreditAccount {
        let d = self.d();
        let key = d.credits(&Pubkey::new_from_array(*b));
        if !self.snapshot.credits.iter().any(|(k, _)| *k == key) {
            self.snapshot.credits.push((key, credit_account(&d, b)));
        }
        &mut self
            .snapshot
            .credits
            .iter_mut()
            .find(|(k, _)| *k == key)
            .unwrap()
            .1
    }

    /// One epoch: purchases, the oracle's close, the quorum and the program's finalize.
    fn epoch(&mut self, a: Activity) {
        self.epoch_until(a, EpochStatus::Finalized);
    }

    /// `buy_credits` of `tokens` for `b` in epoch `e`.
    fn buy(&mut self, e: u64, b: &Key, tokens: u64, ledger: &mut EpochLedger) {
        let credits = tokens * CREDITS_PER_TOKEN / TOKEN;
        let acc = self.credits_of(b);
        if acc.issued == 0 || acc.purchase_epoch != e {
            acc.purchase_epoch = e;
            acc.issued_before_purchase_epoch = acc.issued;
            acc.tokens_before_purchase_epoch = acc.tokens_burned;
        }
        acc.balance += credits;
        acc.issued += credits;
        acc.tokens_burned += tokens;
        ledger.tokens_burned += tokens;
        ledger.credits_issued += credits;
        let cfg = self.cfg();
        cfg.total_burned += tokens;
        cfg.credits_issued += credits;
        self.snapshot.mint.as_mut().unwrap().supply -= tokens;
    }

    /// One epoch up to `status`: purchases and a sealed ledger always; the oracles' close and
    /// quorum from `Proposed` on; the program's finalize for `Finalized`.
    fn epoch_until(&mut self, a: Activity, status: EpochStatus) {
        let d = self.d();
        let e = self.snapshot.config.next_epoch;
        let mut ledger = example_ledger(d.config, e, true, 0, CREDITS_PER_TOKEN);
        ledger.sealed_at = GENESIS + (e as i64 + 1) * EPOCH_SECS as i64;
        ledger.price_posted_at = GENESIS;
        for (b, tokens) in &a.burns {
            self.buy(e, b, *tokens, &mut ledger);
        }

        // The oracle's close: bytes per (buyer, operator), per buyer and per operator.
        let cfg = self.snapshot.config.clone();
        let prev = e.checked_sub(1).map(|p| self.decoded[&p].clone());
        let mut served_bytes: BTreeMap<(Key, Key), u64> = BTreeMap::new();
        for (b, o, bytes) in &a.traffic {
            *served_bytes.entry((*b, *o)).or_default() += bytes;
        }
        let mut buyer_bytes: BTreeMap<Key, u64> = BTreeMap::new();
        let mut operator_bytes: BTreeMap<Key, u64> = BTreeMap::new();
        for ((b, o), bytes) in &served_bytes {
            *buyer_bytes.entry(*b).or_default() += bytes;
            *operator_bytes.entry(*o).or_default() += bytes;
        }
        // Each charged buyer: credits, purchases through the epoch, cost.
        let previous_usage: BTreeMap<Key, UsageLeaf> = prev
            .iter()
            .flat_map(|p| p.usage.leaves.iter())
            .map(|l| (key_from_b58(&l.buyer).unwrap(), l.clone()))
            .collect();
        struct Charged {
            bytes: u64,
            credits: u64,
            purchases: Purchases,
            cost: u64,
            pot: u64,
        }
        let mut charged: BTreeMap<Key, Charged> = BTreeMap::new();
        for (b, bytes) in &buyer_bytes {
            let acc = self.credits_of(b).clone();
            let purchases = purchases_through(
                Purchases {
                    credits: acc.issued,
                    tokens: acc.tokens_burned,
                },
                acc.purchase_epoch,
                Purchases {
                    credits: acc.issued_before_purchase_epoch,
                    tokens: acc.tokens_before_purchase_epoch,
                },
                e,
            );
            let before = previous_usage
                .get(b)
                .map_or(Consumed::default(), |l| Consumed {
                    credits: l.cumulative,
                    cost: l.cumulative_cost,
                });
            let credits = credits_for_bytes(*bytes, CREDITS_PER_GIB).unwrap();
            let cost = consumption_cost(before, purchases, credits).unwrap();
            charged.insert(
                *b,
                Charged {
                    bytes: *bytes,
                    credits,
                    purchases,
                    cost,
                    pot: 0,
                },
            );
        }
        let consumed: u64 = charged.values().map(|c| c.credits).sum();
        let usage_cost: u64 = charged.values().map(|c| c.cost).sum();
        let burns_not_reemitted = cfg.burned_finalized + ledger.tokens_burned - cfg.total_reemitted;
        let budget = EpochBudget::compute(
            &EmissionSchedule::from(cfg.emission),
            e,
            cfg.scheduled_minted,
            cfg.burn_ema,
            &NetEmissionParams::from(cfg.economics),
            &EpochActivity {
                tokens_burned: ledger.tokens_burned,
                usage_cost,
                burns_not_reemitted,
            },
        )
        .unwrap();
        // Each buyer's pot, split over the operators that served it by bytes.
        let costs: Vec<u64> = charged.values().map(|c| c.cost).collect();
        let pots = buyer_pots(budget.total, cfg.economics.usage_cap_bps, &costs).unwrap();
        for (c, pot) in charged.values_mut().zip(pots) {
            c.pot = pot;
        }
        let allocation: u64 = charged.values().map(|c| c.pot).sum();
        let mut served = vec![];
        let mut operator_amount: BTreeMap<Key, u64> = BTreeMap::new();
        for (b, c) in &charged {
            let rows: Vec<(Key, u64)> = served_bytes
                .iter()
                .filter(|((rb, _), _)| rb == b)
                .map(|((_, o), bytes)| (*o, *bytes))
                .collect();
            let weights: Vec<u64> = rows.iter().map(|(_, bytes)| *bytes).collect();
            let parts = split_largest_remainder(c.pot, &weights).unwrap();
            for ((o, bytes), amount) in rows.into_iter().zip(parts) {
                *operator_amount.entry(o).or_default() += amount;
                served.push(Served {
                    buyer: b58(b),
                    operator: b58(&o),
                    bytes,
                    amount,
                });
            }
        }
        // Cumulative leaves: everyone ever in a tree stays in it.
        let mut rewards: BTreeMap<Key, RewardLeaf> = prev
            .iter()
            .flat_map(|p| p.rewards.leaves.iter())
            .map(|l| {
                let k = key_from_b58(&l.operator).unwrap();
                (
                    k,
                    RewardLeaf {
                        amount: 0,
                        bytes: 0,
                        ..l.clone()
                    },
                )
            })
            .collect();
        for (o, bytes) in &operator_bytes {
            let amount = operator_amount.get(o).copied().unwrap_or(0);
            let l = rewards.entry(*o).or_insert(RewardLeaf {
                operator: b58(o),
                cumulative: 0,
                amount: 0,
                bytes: 0,
            });
            l.cumulative += amount;
            l.amount = amount;
            l.bytes = *bytes;
        }
        let mut usage: BTreeMap<Key, UsageLeaf> = previous_usage
            .iter()
            .map(|(k, l)| {
                (
                    *k,
                    UsageLeaf {
                        credits: 0,
                        bytes: 0,
                        purchased_credits: 0,
                        purchased_tokens: 0,
                        cost: 0,
                        pot: 0,
                        ..l.clone()
                    },
                )
            })
            .collect();
        for (b, c) in &charged {
            let l = usage.entry(*b).or_insert(UsageLeaf {
                buyer: b58(b),
                cumulative: 0,
                credits: 0,
                bytes: 0,
                purchased_credits: 0,
                purchased_tokens: 0,
                cumulative_cost: 0,
                cost: 0,
                pot: 0,
            });
            l.cumulative += c.credits;
            l.credits = c.credits;
            l.bytes = c.bytes;
            l.purchased_credits = c.purchases.credits;
            l.purchased_tokens = c.purchases.tokens;
            l.cumulative_cost += c.cost;
            l.cost = c.cost;
            l.pot = c.pot;
        }
        let mut nodes: Vec<NodeUsage> = operator_bytes
            .iter()
            .map(|(o, bytes)| NodeUsage {
                node: b58(&node_of(o)),
                operator: b58(o),
                bytes: *bytes,
            })
            .collect();
        nodes.sort_by_key(|n| key_from_b58(&n.node).unwrap());
        let previous_usage_cost_total = prev.as_ref().map_or(0, |p| p.usage.cost_total);
        let bytes_counted: u64 = operator_bytes.values().sum();
        let ds = Dataset {
            version: DATASET_VERSION,
            program_id: b58(&backhaul_sdk::PROGRAM_ID.to_bytes()),
            config: b58(&d.config.to_bytes()),
            epoch: e,
            epoch_start: GENESIS + (e * EPOCH_SECS) as i64,
            epoch_end: GENESIS + ((e + 1) * EPOCH_SECS) as i64,
            parameters: Parameters {
                credits_per_gib: CREDITS_PER_GIB,
                pair_cap_bytes: 100 * GIB,
                max_rate_bytes_per_sec: GIB,
                initial_per_epoch: cfg.emission.initial_per_epoch,
                decay_bps: cfg.emission.decay_bps,
                decay_period_epochs: cfg.emission.decay_period_epochs,
                floor_per_epoch: cfg.emission.floor_per_epoch,
                lifetime_cap: cfg.emission.lifetime_cap,
                scheduled_minted: cfg.scheduled_minted,
                previous_burn_ema: cfg.burn_ema,
                net_emissions_cap: cfg.economics.net_emissions_cap,
                burn_smoothing_epochs: cfg.economics.burn_smoothing_epochs,
                usage_cap_bps: cfg.economics.usage_cap_bps,
                tokens_burned: ledger.tokens_burned,
                credits_per_token: ledger.credits_per_token,
                decimals: cfg.decimals,
                previous_reward_total: prev.as_ref().map_or(0, |p| p.rewards.total),
                previous_usage_total: prev.as_ref().map_or(0, |p| p.usage.total),
                previous_usage_cost_total,
                burns_not_reemitted,
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
                root: String::new(),
                leaf_count: rewards.len() as u64,
                total: rewards.values().map(|r| r.cumulative).sum(),
                leaves: rewards.into_values().collect(),
            },
            usage: UsageTree {
                root: String::new(),
                leaf_count: usage.len() as u64,
                total: usage.values().map(|u| u.cumulative).sum(),
                credits_consumed: consumed,
                cost_total: previous_usage_cost_total + usage_cost,
                usage_cost,
                leaves: usage.into_values().collect(),
            },
            served,
            nodes,
            rejected: BTreeMap::new(),
            stats: Stats {
                sessions: 10,
                sessions_counted: 8,
                bytes_counted,
                bytes_over_pair_cap: 0,
                bytes_over_credits: 0,
            },
        };

        // Quorum on the dataset's proposal, then the program's finalize.
        let record = EpochRecord {
            version: backhaul::constants::ACCOUNT_VERSION,
            config: d.config,
            epoch: e,
            bump: 255,
            status,
            round: 0,
            round_started_at: 0,
            vetoes: 0,
            votes: vec![],
            proposal: EpochProposal::default(),
            proposal_digest: [0; 32],
            vetoed_digest: [0; 32],
            banned_until: 0,
            quorum_at: 0,
            finalizable_at: 0,
            finalized_at: 0,
        };
        self.snapshot.records.push((d.epoch_record(e), record));
        self.snapshot.ledgers.push((d.ledger(e), ledger));
        self.decoded.insert(e, ds);
        self.recommit(e);
        if status != EpochStatus::Finalized {
            let r = self.record(e);
            r.finalized_at = 0;
            if status == EpochStatus::Voting {
                r.proposal = EpochProposal::default();
                r.proposal_digest = [0; 32];
                r.quorum_at = 0;
                r.finalizable_at = 0;
                self.datasets.remove(&e);
            }
            return;
        }
        let split = budget.split(allocation).unwrap();
        let ds = self.decoded[&e].clone();
        let l = self.ledger(e);
        let (burned, issued) = (l.tokens_burned, l.credits_issued);
        l.tokens_minted = allocation;
        l.burn_ema = budget.burn_ema;
        l.budget = budget.total;
        let cfg = self.cfg();
        cfg.total_minted += allocation;
        cfg.scheduled_minted += split.scheduled;
        cfg.total_reemitted += split.net;
        cfg.burned_finalized += burned;
        cfg.credits_issued_finalized += issued;
        cfg.burn_ema = budget.burn_ema;
        cfg.last_reward_total = ds.rewards.total;
        cfg.last_reward_leaf_count = ds.rewards.leaf_count;
        cfg.last_usage_total = ds.usage.total;
        cfg.last_usage_leaf_count = ds.usage.leaf_count;
        cfg.last_usage_cost_total = ds.usage.cost_total;
        cfg.next_epoch = e + 1;
        self.snapshot.mint.as_mut().unwrap().supply += allocation;
        self.snapshot.vault.as_mut().unwrap().1.amount += allocation;
    }

    /// Rebuilds epoch `e`'s roots from its (possibly edited) leaves, re-encodes it, and puts its
    /// hash, roots and figures on the chain: as if the oracles had committed the edited dataset.
    fn recommit(&mut self, e: u64) {
        let config = self.d().config.to_bytes();
        let ds = self.decoded.get_mut(&e).unwrap();
        let entries = |v: Vec<(String, u64)>| -> Vec<Entry> {
            v.into_iter()
                .map(|(k, c)| Entry {
                    account: key_from_b58(&k).unwrap(),
                    cumulative: c,
                })
                .collect()
        };
        let rt = EpochTree::build(
            TreeKind::Reward,
            &config,
            e,
            entries(
                ds.rewards
                    .leaves
                    .iter()
                    .map(|l| (l.operator.clone(), l.cumulative))
                    .collect(),
            ),
        )
        .unwrap();
        let ut = EpochTree::build(
            TreeKind::Usage,
            &config,
            e,
            entries(
                ds.usage
                    .leaves
                    .iter()
                    .map(|l| (l.buyer.clone(), l.cumulative))
                    .collect(),
            ),
        )
        .unwrap();
        ds.rewards.root = hex(&rt.root);
        ds.usage.root = hex(&ut.root);
        let ds = ds.clone();
        let bytes = ds.to_bytes();
        self.set_bytes(e, bytes);
        let challenge = self.snapshot.config.challenge_period_secs as i64;
        let oracle = self.snapshot.config.oracles[0];
        let r = self.record(e);
        r.proposal = EpochProposal {
            reward_root: rt.root,
            reward_leaf_count: ds.rewards.leaf_count,
            reward_total: ds.rewards.total,
            allocation: ds.allocation,
            dataset_hash: sha256v(&[&ds.to_bytes()]),
            usage_root: ut.root,
            usage_leaf_count: ds.usage.leaf_count,
            usage_total: ds.usage.total,
            credits_consumed: ds.usage.credits_consumed,
            usage_cost_total: ds.usage.cost_total,
            usage_cost: ds.usage.usage_cost,
        };
        self.revote(e, oracle, challenge, ds.epoch_end);
    }

    /// The oracle set's vote (threshold one) on epoch `e`'s proposal, then the challenge period.
    fn revote(&mut self, e: u64, oracle: Pubkey, challenge: i64, epoch_end: i64) {
        let config = self.d().config.to_bytes();
        let r = self.record(e);
        let digest = backhaul_core::merkle::proposal_digest(
            &config,
            e,
            &anchor_lang::prelude::borsh::to_vec(&r.proposal).unwrap(),
        );
        r.proposal_digest = digest;
        r.votes = vec![Vote { oracle, digest }];
        r.quorum_at = epoch_end + 10;
        r.finalizable_at = r.quorum_at + challenge;
        r.finalized_at = r.finalizable_at + 1;
    }

    /// Serves `bytes` as epoch `e`'s dataset, committing their hash on the chain.
    fn set_bytes(&mut self, e: u64, bytes: Vec<u8>) {
        let hash = sha256v(&[&bytes]);
        if let Some(r) = self.snapshot.records.iter_mut().find(|(_, r)| r.epoch == e) {
            r.1.proposal.dataset_hash = hash;
        }
        self.datasets.insert(
            e,
            Fetched {
                source: format!("epoch-{e}.json"),
                bytes: Ok(bytes),
            },
        );
    }

    /// `settle_usage` with a leaf of epoch `e`.
    fn settle(&mut self, e: u64, b: &str, cumulative: u64) {
        let key = key_from_b58(b).unwrap();
        let acc = self.credits_of(&key);
        let delta = cumulative - acc.consumed_cumulative;
        let debited = delta.min(acc.balance);
        let unpaid = delta - debited;
        acc.balance -= debited;
        acc.settled += debited;
        acc.unpaid += unpaid;
        acc.consumed_cumulative = cumulative;
        acc.last_settled_epoch = e;
        let l = self.ledger(e);
        l.credits_settled += debited;
        l.credits_unpaid += unpaid;
        let cfg = self.cfg();
        cfg.credits_settled += debited;
        cfg.credits_unpaid += unpaid;
    }

    /// `claim` with an operator's leaf of `ds`.
    fn claim(&mut self, ds: &Dataset, operator: &str, e: u64) {
        let leaf = ds
            .rewards
            .leaves
            .iter()
            .find(|l| l.operator == operator)
            .unwrap();
        let key = Pubkey::new_from_array(key_from_b58(operator).unwrap());
        let d = self.d();
        self.snapshot.claims.push((
            d.operator_claim(&key),
            OperatorClaim {
                config: d.config,
                operator: key,
                claimed: leaf.cumulative,
                last_epoch: e,
                bump: 255,
            },
        ));
        self.cfg().total_claimed += leaf.cumulative;
        self.snapshot.vault.as_mut().unwrap().1.amount -= leaf.cumulative;
    }

    /// Edits epoch `e`'s dataset and commits the result on the chain (roots, hash, figures).
    fn edit(&mut self, e: u64, f: impl FnOnce(&mut Dataset)) {
        f(self.decoded.get_mut(&e).unwrap());
        self.recommit(e);
    }

    fn run(&self) -> AuditReport {
        audit(&self.snapshot, &self.datasets)
    }
}

/// The usage leaf of `b` in `ds`.
fn leaf_of<'d>(ds: &'d mut Dataset, b: &Key) -> &'d mut UsageLeaf {
    let b = b58(b);
    ds.usage.leaves.iter_mut().find(|l| l.buyer == b).unwrap()
}

/// The reward leaf of `o` in `ds`.
fn reward_of<'d>(ds: &'d mut Dataset, o: &Key) -> &'d mut RewardLeaf {
    let o = b58(o);
    ds.rewards
        .leaves
        .iter_mut()
        .find(|l| l.operator == o)
        .unwrap()
}

/// The served row of (`b`, `o`) in `ds`.
fn row_of<'d>(ds: &'d mut Dataset, b: &Key, o: &Key) -> &'d mut Served {
    let (b, o) = (b58(b), b58(o));
    ds.served
        .iter_mut()
        .find(|r| r.buyer == b && r.operator == o)
        .unwrap()
}

/// Asserts that `id` failed (with evidence) and returns its evidence.
fn failed(report: &AuditReport, id: &str) -> String {
    let c = report.check(id).unwrap_or_else(|| {
        panic!(
            "no check {id} in {:?}",
            report.checks.iter().map(|c| &c.id).collect::<Vec<_>>()
        )
    });
    assert!(!c.passed, "{id} should fail: {}", c.evidence);
    assert!(!report.passed);
    assert!(report.failed.contains(&id.to_string()));
    assert!(!c.evidence.is_empty());
    c.evidence.clone()
}

fn passed(report: &AuditReport, id: &str) {
    let c = report.check(id).unwrap_or_else(|| panic!("no check {id}"));
    assert!(c.passed, "{id} should pass: {}", c.evidence);
}

#[test]
fn every_check_passes_on_consistent_data() {
    let f = Fixture::new();
    let r = f.run();
    let failures: Vec<_> = r.checks.iter().filter(|c| !c.passed).collect();
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(r.passed && r.failed.is_empty());
    assert_eq!(r.finalized_epochs, 2);
    // 17 per epoch and 12 for the deployment.
    assert_eq!(
        r.checks.len(),
        2 * PER_EPOCH + DEPLOYMENT,
        "{:#?}",
        r.checks
    );
    for id in [
        "epoch-0/dataset.sha256",
        "epoch-1/root.rewards",
        "epoch-1/root.usage",
        "epoch-1/budget.within",
        "epoch-1/cost.consumption",
        "epoch-1/cost.purchases",
        "epoch-1/allocation.pots",
        "epoch-1/allocation.served",
        "vault.balance",
        "mint.supply",
        "credits.balances",
        "claims.within_cumulative",
    ] {
        passed(&r, id);
    }
    // The figures: epoch 0 burned 100 tokens for 10,000,000 credits; 200,000 of them were
    // consumed, which cost 2 tokens, and 0.9 of that was minted: 1 token of new supply and 0.8
    // re-minted from the burns.
    let e0 = &r.epochs[0];
    assert_eq!(e0.tokens_burned, 100 * TOKEN);
    assert_eq!(e0.credits_consumed, 200_000);
    assert_eq!(e0.usage_cost, 2 * TOKEN);
    assert_eq!(e0.tokens_minted, 18 * TOKEN / 10);
    assert_eq!(e0.operators_rewarded, 2);
    assert_eq!(
        e0.top_earners[0],
        (b58(&op(2)), 135 * TOKEN / 100),
        "operator 2 served 3 of buyer 1's 4 GiB"
    );
    // Epoch 1: buyer 1's 50,000 credits cost the average of what it had left (10,500,000
    // credits for 105 tokens), buyer 2's 150,000 cost 1.5 tokens; operator 2 served both.
    let d1 = &f.decoded[&1];
    let costs: Vec<(u64, u64)> = d1.usage.leaves.iter().map(|l| (l.cost, l.pot)).collect();
    assert_eq!(
        costs,
        [
            (TOKEN / 2, 45 * TOKEN / 100),
            (15 * TOKEN / 10, 135 * TOKEN / 100)
        ]
    );
    let amounts: Vec<u64> = d1.rewards.leaves.iter().map(|l| l.amount).collect();
    assert_eq!(amounts, [0, 9 * TOKEN / 10, 9 * TOKEN / 10]);
    assert_eq!(r.epochs[1].operators_rewarded, 2);
    assert_eq!(r.epochs[1].usage_cost, 2 * TOKEN);
}

/// Checks per epoch with a dataset, and for the deployment.
const PER_EPOCH: usize = 17;
const DEPLOYMENT: usize = 12;

#[test]
fn a_changed_byte_fails_the_sha256_check() {
    let mut f = Fixture::new();
    let Ok(bytes) = &mut f.datasets.get_mut(&1).unwrap().bytes else {
        panic!()
    };
    // The dataset still decodes: one digit of the session count changes.
    let at = bytes
        .windows(13)
        .position(|w| w == b"\"sessions\":10")
        .unwrap()
        + 12;
    bytes[at] = b'1';
    let r = f.run();
    let evidence = failed(&r, "epoch-1/dataset.sha256");
    assert!(evidence.contains("dataset_hash"), "{evidence}");
    passed(&r, "epoch-0/dataset.sha256");
    passed(&r, "epoch-1/dataset.format");
}

#[test]
fn a_re_encoded_dataset_fails_sha256_and_is_not_canonical() {
    let mut f = Fixture::new();
    let pretty = serde_json::to_vec_pretty(&f.decoded[&0]).unwrap();
    f.datasets.get_mut(&0).unwrap().bytes = Ok(pretty.clone());
    let r = f.run();
    failed(&r, "epoch-0/dataset.sha256");
    // Committed as such, it still is not the canonical encoding.
    f.set_bytes(0, pretty);
    let r = f.run();
    passed(&r, "epoch-0/dataset.sha256");
    let evidence = failed(&r, "epoch-0/dataset.format");
    assert!(evidence.contains("canonical"), "{evidence}");
}

#[test]
fn malformed_bytes_fail_the_format_check() {
    let mut f = Fixture::new();
    f.set_bytes(1, b"{\"version\":1,".to_vec());
    let r = f.run();
    passed(&r, "epoch-1/dataset.sha256");
    let evidence = failed(&r, "epoch-1/dataset.format");
    assert!(evidence.contains("does not decode"), "{evidence}");
    // Without epoch 1's dataset the claims against it cannot be checked.
    failed(&r, "claims.within_cumulative");
}

#[test]
fn a_stale_dataset_served_for_the_next_epoch_fails() {
    let mut f = Fixture::new();
    let stale = f.datasets[&0].clone();
    f.datasets.insert(1, stale);
    let r = f.run();
    failed(&r, "epoch-1/dataset.sha256");
    let evidence = failed(&r, "epoch-1/dataset.format");
    assert!(evidence.contains("epoch is 0, expected 1"), "{evidence}");
}

#[test]
fn a_missing_dataset_fails_availability_and_contiguity() {
    let mut f = Fixture::new();
    f.datasets.get_mut(&1).unwrap().bytes = Err("404 not found".into());
    let r = f.run();
    let evidence = failed(&r, "epoch-1/dataset.available");
    assert!(evidence.contains("404"), "{evidence}");
    failed(&r, "epochs.contiguous");
    f.datasets.remove(&0);
    failed(&f.run(), "epoch-0/dataset.available");
}

#[test]
fn a_cumulative_that_is_not_previous_plus_amount_fails_the_reward_leaves() {
    let mut f = Fixture::new();
    f.edit(1, |d| {
        d.rewards.leaves[0].cumulative += 1;
        d.rewards.total += 1;
    });
    let r = f.run();
    let evidence = failed(&r, "epoch-1/dataset.reward_leaves");
    assert!(evidence.contains("previous cumulative"), "{evidence}");
    passed(&r, "epoch-1/root.rewards");
}

#[test]
fn unsorted_duplicate_or_miscounted_reward_leaves_fail() {
    let mut f = Fixture::new();
    f.decoded.get_mut(&1).unwrap().rewards.leaves.swap(0, 1);
    let bytes = f.decoded[&1].to_bytes();
    f.set_bytes(1, bytes);
    let evidence = failed(&f.run(), "epoch-1/dataset.reward_leaves");
    assert!(evidence.contains("sorted"), "{evidence}");

    let mut f = Fixture::new();
    f.edit(0, |d| d.rewards.leaf_count += 1);
    let evidence = failed(&f.run(), "epoch-0/dataset.reward_leaves");
    assert!(evidence.contains("leaf_count"), "{evidence}");

    // An operator that disappears from the tree.
    let mut f = Fixture::new();
    f.edit(1, |d| {
        let gone = d.rewards.leaves.remove(0);
        d.rewards.leaf_count -= 1;
        d.rewards.total -= gone.cumulative;
    });
    let evidence = failed(&f.run(), "epoch-1/dataset.reward_leaves");
    assert!(evidence.contains("has none now"), "{evidence}");
}

#[test]
fn overflowing_leaves_fail_the_leaves_and_the_root() {
    let mut f = Fixture::new();
    f.decoded.get_mut(&1).unwrap().rewards.leaves[0].cumulative = u64::MAX;
    f.decoded.get_mut(&1).unwrap().rewards.leaves[1].cumulative = u64::MAX;
    let bytes = f.decoded[&1].to_bytes();
    f.set_bytes(1, bytes);
    let r = f.run();
    failed(&r, "epoch-1/dataset.reward_leaves");
    let evidence = failed(&r, "epoch-1/root.rewards");
    assert!(evidence.contains("Overflow"), "{evidence}");
}

#[test]
fn mispriced_usage_fails_the_usage_leaves() {
    let mut f = Fixture::new();
    f.edit(0, |d| {
        d.usage.leaves[0].credits += 5;
        d.usage.leaves[0].cumulative += 5;
        d.usage.total += 5;
        d.usage.credits_consumed += 5;
    });
    let r = f.run();
    let evidence = failed(&r, "epoch-0/dataset.usage_leaves");
    assert!(evidence.contains("credits per GiB"), "{evidence}");
}

#[test]
fn node_bytes_that_do_not_add_up_fail_the_nodes_check() {
    let mut f = Fixture::new();
    f.edit(1, |d| d.nodes[0].bytes += 1);
    let evidence = failed(&f.run(), "epoch-1/dataset.nodes");
    assert!(evidence.contains("bytes"), "{evidence}");
}

#[test]
fn roots_that_differ_from_the_leaves_or_the_chain_fail() {
    let mut f = Fixture::new();
    let d = f.decoded.get_mut(&0).unwrap();
    d.rewards.root = hex(&[0xAB; 32]);
    let bytes = d.to_bytes();
    f.set_bytes(0, bytes);
    let evidence = failed(&f.run(), "epoch-0/root.rewards");
    assert!(evidence.contains("vs the dataset"), "{evidence}");

    let mut f = Fixture::new();
    f.record(1).proposal.usage_root = [0xCD; 32];
    let evidence = failed(&f.run(), "epoch-1/root.usage");
    assert!(evidence.contains("vs the chain"), "{evidence}");
}

#[test]
fn a_proposal_that_differs_from_its_dataset_fails() {
    let mut f = Fixture::new();
    f.record(0).proposal.reward_leaf_count += 1;
    let evidence = failed(&f.run(), "epoch-0/proposal.matches_dataset");
    assert!(evidence.contains("reward_leaf_count"), "{evidence}");
}

#[test]
fn an_allocation_that_is_not_the_sum_of_increases_fails() {
    let mut f = Fixture::new();
    f.ledger(1).tokens_minted += 1;
    let evidence = failed(&f.run(), "epoch-1/allocation.sum_of_increases");
    assert!(evidence.contains("tokens_minted"), "{evidence}");

    let mut f = Fixture::new();
    f.record(1).proposal.allocation -= 1;
    let r = f.run();
    failed(&r, "epoch-1/allocation.sum_of_increases");
    failed(&r, "epoch-1/proposal.matches_dataset");
}

#[test]
fn a_served_amount_out_of_proportion_fails() {
    let mut f = Fixture::new();
    // Epoch 1: buyer 2's pot paid operators 2 and 3 for 1 and 2 GiB; move one base unit from
    // operator 3 to operator 2, in their rows and their reward leaves alike.
    f.edit(1, |d| {
        row_of(d, &buyer(2), &op(2)).amount += 1;
        row_of(d, &buyer(2), &op(3)).amount -= 1;
        let l = reward_of(d, &op(2));
        l.amount += 1;
        l.cumulative += 1;
        let l = reward_of(d, &op(3));
        l.amount -= 1;
        l.cumulative -= 1;
    });
    let r = f.run();
    let evidence = failed(&r, "epoch-1/allocation.served");
    assert!(evidence.contains("its share is"), "{evidence}");
    assert!(evidence.contains(&b58(&buyer(2))), "{evidence}");
    passed(&r, "epoch-1/allocation.pots");
    passed(&r, "epoch-1/dataset.reward_leaves");
    passed(&r, "epoch-1/root.rewards");

    // A served row that disagrees with its operator's reward leaf.
    let mut f = Fixture::new();
    f.edit(0, |d| row_of(d, &buyer(1), &op(1)).amount += 1);
    let evidence = failed(&f.run(), "epoch-0/allocation.served");
    assert!(evidence.contains("its served rows pay"), "{evidence}");

    // A reward paid to an operator that did not serve the buyer.
    let mut f = Fixture::new();
    f.edit(0, |d| row_of(d, &buyer(1), &op(1)).operator = b58(&op(3)));
    let evidence = failed(&f.run(), "epoch-0/allocation.served");
    assert!(evidence.contains("no reward leaf"), "{evidence}");
}

#[test]
fn a_tampered_cost_fails() {
    // Buyer 2's cost raised by one base unit everywhere it adds up: its purchases do not give it.
    let mut f = Fixture::new();
    f.edit(1, |d| {
        let l = leaf_of(d, &buyer(2));
        l.cost += 1;
        l.cumulative_cost += 1;
        d.usage.usage_cost += 1;
        d.usage.cost_total += 1;
    });
    let r = f.run();
    let evidence = failed(&r, "epoch-1/cost.consumption");
    assert!(
        evidence.contains(&format!(
            "buyer {}: cost is 1500001, expected 1500000",
            b58(&buyer(2))
        )),
        "{evidence}"
    );
    passed(&r, "epoch-1/proposal.matches_dataset");

    // A cumulative cost that is not the previous one plus the cost.
    let mut f = Fixture::new();
    f.edit(1, |d| {
        leaf_of(d, &buyer(1)).cumulative_cost += 1;
        d.usage.cost_total += 1;
    });
    let evidence = failed(&f.run(), "epoch-1/cost.consumption");
    assert!(evidence.contains("cumulative_cost"), "{evidence}");

    // Totals that do not add up.
    let mut f = Fixture::new();
    f.edit(0, |d| d.usage.usage_cost += 1);
    let evidence = failed(&f.run(), "epoch-0/cost.consumption");
    assert!(evidence.contains("usage.usage_cost"), "{evidence}");

    // The chain's proposal carries another cost than the dataset.
    let mut f = Fixture::new();
    f.record(1).proposal.usage_cost += 1;
    let evidence = failed(&f.run(), "epoch-1/proposal.matches_dataset");
    assert!(evidence.contains("usage_cost"), "{evidence}");
    let mut f = Fixture::new();
    f.record(0).proposal.usage_cost_total += 1;
    let evidence = failed(&f.run(), "epoch-0/proposal.matches_dataset");
    assert!(evidence.contains("usage_cost_total"), "{evidence}");
}

#[test]
fn consumption_beyond_the_purchases_fails() {
    // Epoch 0 as if buyer 1 had bought only 100,000 credits (for 1 token) of the 200,000 it
    // consumed.
    let mut f = Fixture::new();
    f.edit(0, |d| {
        let l = leaf_of(d, &buyer(1));
        l.purchased_credits = 100_000;
        l.purchased_tokens = TOKEN;
    });
    let r = f.run();
    let evidence = failed(&r, "epoch-0/cost.consumption");
    assert!(
        evidence.contains("more than the 100000 it bought"),
        "{evidence}"
    );
    let evidence = failed(&r, "epoch-0/cost.purchases");
    assert!(evidence.contains("its credit account says"), "{evidence}");
}

#[test]
fn purchases_that_differ_from_the_credit_account_fail() {
    let mut f = Fixture::new();
    f.edit(1, |d| leaf_of(d, &buyer(1)).purchased_tokens += TOKEN);
    let r = f.run();
    let evidence = failed(&r, "epoch-1/cost.purchases");
    assert!(
        evidence.contains(
            "108000000 tokens through epoch 1, its credit account says 10700000 for 107000000"
        ),
        "{evidence}"
    );
    // The cost depends on them too.
    failed(&r, "epoch-1/cost.consumption");

    // A buyer with no credit account on-chain bought nothing.
    let mut f = Fixture::new();
    let key = f.d().credits(&Pubkey::new_from_array(buyer(2)));
    f.snapshot.credits.retain(|(k, _)| *k != key);
    let evidence = failed(&f.run(), "epoch-1/cost.purchases");
    assert!(evidence.contains("has no credit account"), "{evidence}");
}

#[test]
fn a_later_purchase_leaves_earlier_epochs_bounded_by_the_credit_account() {
    // Buyer 1 buys again in epoch 3 (not served in epoch 2): its account no longer tells what it
    // had bought through epochs 0 and 1, only bounds it.
    let mut f = Fixture::new();
    f.epoch(Activity {
        burns: vec![(buyer(2), 10 * TOKEN)],
        traffic: vec![(buyer(2), op(3), GIB)],
    });
    f.epoch(Activity {
        burns: vec![(buyer(1), 30 * TOKEN)],
        traffic: vec![(buyer(1), op(1), 2 * GIB)],
    });
    let r = f.run();
    let failures: Vec<_> = r.checks.iter().filter(|c| !c.passed).collect();
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(r
        .check("epoch-0/cost.purchases")
        .unwrap()
        .evidence
        .contains("1 bought again more than an epoch later"));
    assert!(r
        .check("epoch-2/cost.purchases")
        .unwrap()
        .evidence
        .starts_with("1 charged buyers' purchases"));
    // Buyer 1 was not charged in epoch 2: its leaf keeps its cumulative cost and shows nothing
    // else.
    let l = leaf_of(f.decoded.get_mut(&2).unwrap(), &buyer(1)).clone();
    assert_eq!(
        (
            l.credits,
            l.cost,
            l.pot,
            l.purchased_credits,
            l.cumulative_cost
        ),
        (0, 0, 0, 0, 25 * TOKEN / 10)
    );

    // Within the bound is all that can be checked; beyond it fails.
    let mut g = Fixture::new();
    g.epoch(Activity {
        burns: vec![(buyer(2), 10 * TOKEN)],
        traffic: vec![(buyer(2), op(3), GIB)],
    });
    g.epoch(Activity {
        burns: vec![(buyer(1), 30 * TOKEN)],
        traffic: vec![(buyer(1), op(1), 2 * GIB)],
    });
    g.edit(0, |d| leaf_of(d, &buyer(1)).purchased_credits = 10_700_001);
    let evidence = failed(&g.run(), "epoch-0/cost.purchases");
    assert!(evidence.contains("held before epoch 3"), "{evidence}");

    // A leaf of a buyer not charged that claims purchases.
    f.edit(2, |d| leaf_of(d, &buyer(1)).purchased_credits = 1);
    let evidence = failed(&f.run(), "epoch-2/cost.consumption");
    assert!(
        evidence.contains("no bytes of its traffic counted"),
        "{evidence}"
    );
}

#[test]
fn a_tampered_pot_fails() {
    // Buyer 1's pot in epoch 0 lowered by one base unit, everything downstream adjusted: the
    // rows still split it by bytes and the operators' leaves still add up.
    let mut f = Fixture::new();
    f.edit(0, |d| {
        leaf_of(d, &buyer(1)).pot -= 1;
        row_of(d, &buyer(1), &op(2)).amount -= 1;
        let l = reward_of(d, &op(2));
        l.amount -= 1;
        l.cumulative -= 1;
        d.rewards.total -= 1;
        d.allocation -= 1;
    });
    let r = f.run();
    let evidence = failed(&r, "epoch-0/allocation.pots");
    assert!(
        evidence.contains(&format!(
            "buyer {}: pot is 1799999, expected 1800000",
            b58(&buyer(1))
        )),
        "{evidence}"
    );
    passed(&r, "epoch-0/allocation.served");
    passed(&r, "epoch-0/dataset.reward_leaves");

    // An allocation that is not the sum of the pots.
    let mut f = Fixture::new();
    f.edit(1, |d| leaf_of(d, &buyer(2)).pot += 1);
    let r = f.run();
    let evidence = failed(&r, "epoch-1/allocation.pots");
    assert!(evidence.contains("sum of the buyers' pots"), "{evidence}");
    failed(&r, "epoch-1/allocation.served");
}

#[test]
fn a_budget_below_the_pots_scales_them() {
    // One token of schedule and no net emissions: the 1.8 tokens of pots are scaled to 1.
    let f = Fixture::with(|c| c.economics.net_emissions_cap = 0);
    let r = f.run();
    let failures: Vec<_> = r.checks.iter().filter(|c| !c.passed).collect();
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(r.epochs[0].tokens_minted, TOKEN);
    let d1 = &f.decoded[&1];
    let pots: Vec<u64> = d1.usage.leaves.iter().map(|l| l.pot).collect();
    assert_eq!(pots, [TOKEN / 4, 3 * TOKEN / 4]);

    // Pots paid at k × cost regardless of the budget fail (and exceed it).
    let mut f = Fixture::with(|c| c.economics.net_emissions_cap = 0);
    f.edit(0, |d| {
        let extra = 8 * TOKEN / 10;
        leaf_of(d, &buyer(1)).pot += extra;
        d.allocation += extra;
    });
    let r = f.run();
    let evidence = failed(&r, "epoch-0/allocation.pots");
    assert!(evidence.contains("expected 1000000"), "{evidence}");
    failed(&r, "epoch-0/budget.within");
}

#[test]
fn parameters_that_differ_from_the_chain_fail() {
    let mut f = Fixture::new();
    f.edit(1, |d| d.parameters.tokens_burned += 1);
    let evidence = failed(&f.run(), "epoch-1/budget.parameters");
    assert!(evidence.contains("tokens_burned"), "{evidence}");

    let mut f = Fixture::new();
    f.edit(1, |d| d.parameters.scheduled_minted = 0);
    let evidence = failed(&f.run(), "epoch-1/budget.parameters");
    assert!(evidence.contains("scheduled_minted"), "{evidence}");

    let mut f = Fixture::new();
    f.ledger(0).burn_ema += 1;
    let r = f.run();
    let evidence = failed(&r, "epoch-1/budget.parameters");
    assert!(evidence.contains("previous_burn_ema"), "{evidence}");
    failed(&r, "epoch-0/budget.within");
}

#[test]
fn an_allocation_over_the_budget_fails() {
    let mut f = Fixture::new();
    let over = f.decoded[&0].budget.total + 1;
    f.edit(0, |d| {
        let extra = over - d.allocation;
        d.allocation = over;
        d.rewards.leaves[0].amount += extra;
        d.rewards.leaves[0].cumulative += extra;
        d.rewards.total += extra;
    });
    let r = f.run();
    let evidence = failed(&r, "epoch-0/budget.within");
    assert!(evidence.contains("exceeds the budget"), "{evidence}");

    let mut f = Fixture::new();
    f.ledger(1).budget += 1;
    let evidence = failed(&f.run(), "epoch-1/budget.within");
    assert!(evidence.contains("ledger's budget"), "{evidence}");

    // A dataset whose published budget is not what its parameters give.
    let mut f = Fixture::new();
    f.edit(0, |d| d.budget.net += 1);
    let evidence = failed(&f.run(), "epoch-0/budget.within");
    assert!(evidence.contains("budget.net"), "{evidence}");
}

#[test]
fn gaps_and_out_of_order_finalization_fail_contiguity() {
    let mut f = Fixture::new();
    f.record(1).status = EpochStatus::Proposed;
    let evidence = failed(&f.run(), "epochs.contiguous");
    assert!(evidence.contains("below next_epoch"), "{evidence}");

    let mut f = Fixture::new();
    f.snapshot.records.retain(|(_, r)| r.epoch != 0);
    let evidence = failed(&f.run(), "epochs.contiguous");
    assert!(evidence.contains("no record"), "{evidence}");

    let mut f = Fixture::new();
    f.ledger(0).sealed = false;
    let evidence = failed(&f.run(), "epochs.contiguous");
    assert!(evidence.contains("not sealed"), "{evidence}");
}

#[test]
fn wrong_addresses_mint_or_vault_fail_the_deployment_checks() {
    let mut f = Fixture::new();
    f.snapshot.price_feed = None;
    failed(&f.run(), "deployment.addresses");

    let mut f = Fixture::new();
    f.snapshot.config_address = Pubkey::new_from_array([1; 32]);
    let evidence = failed(&f.run(), "deployment.addresses");
    assert!(evidence.contains("config PDA"), "{evidence}");

    // A mint someone else can mint with.
    let mut f = Fixture::new();
    f.snapshot.mint.as_mut().unwrap().mint_authority = Some(Pubkey::new_from_array([5; 32]));
    let evidence = failed(&f.run(), "deployment.mint");
    assert!(evidence.contains("mint authority"), "{evidence}");

    // A vault of another mint.
    let mut f = Fixture::new();
    f.snapshot.vault.as_mut().unwrap().1.mint = Pubkey::new_from_array([6; 32]);
    let evidence = failed(&f.run(), "deployment.mint");
    assert!(evidence.contains("vault's mint"), "{evidence}");
}

#[test]
fn undecodable_or_misplaced_accounts_fail_decoding() {
    let mut f = Fixture::new();
    f.snapshot.add_program_account(
        Pubkey::new_from_array([3; 32]),
        &[1, 2, 3, 4, 5, 6, 7, 8, 9],
    );
    let evidence = failed(&f.run(), "accounts.decoded");
    assert!(evidence.contains("unknown account type"), "{evidence}");

    // A credit account at another buyer's address.
    let mut f = Fixture::new();
    f.snapshot.credits[0].1.buyer = Pubkey::new_from_array([0xEE; 32]);
    let evidence = failed(&f.run(), "accounts.decoded");
    assert!(evidence.contains("credit account"), "{evidence}");

    // A known type whose data is cut short.
    let mut f = Fixture::new();
    use anchor_lang::Discriminator;
    let mut data = EpochLedger::DISCRIMINATOR.to_vec();
    data.extend_from_slice(&[0; 10]);
    f.snapshot
        .add_program_account(Pubkey::new_from_array([4; 32]), &data);
    failed(&f.run(), "accounts.decoded");
}

#[test]
fn donations_to_the_vault_and_direct_burns_pass() {
    // Anyone can send tokens to the vault, and burn its own tokens outside buy_credits.
    let mut f = Fixture::new();
    f.snapshot.vault.as_mut().unwrap().1.amount += 5 * TOKEN;
    f.snapshot.mint.as_mut().unwrap().supply -= 3 * TOKEN;
    let r = f.run();
    assert!(r.passed, "{:?}", r.failed);
    let vault = &r.check("vault.balance").unwrap().evidence;
    assert!(
        vault.contains("5000000 more: tokens sent to the vault directly"),
        "{vault}"
    );
    let supply = &r.check("mint.supply").unwrap().evidence;
    assert!(
        supply.contains("3000000 less: tokens their holders burned directly"),
        "{supply}"
    );
    // Without either, both identities hold with equality.
    let r = Fixture::new().run();
    assert!(r.check("vault.balance").unwrap().evidence.contains("equal"));
    assert!(r.check("mint.supply").unwrap().evidence.contains("equal"));
}

#[test]
fn the_reconciliations_fail_when_a_total_is_off() {
    // A vault holding less than what was minted and not claimed yet.
    let mut f = Fixture::new();
    f.snapshot.vault.as_mut().unwrap().1.amount -= 1;
    let evidence = failed(&f.run(), "vault.balance");
    assert!(
        evidence.contains("less than minted") && evidence.contains("1 of the unclaimed"),
        "{evidence}"
    );

    // A supply above what the program minted and buyers burned: minted elsewhere.
    let mut f = Fixture::new();
    f.snapshot.mint.as_mut().unwrap().supply += 1;
    let evidence = failed(&f.run(), "mint.supply");
    assert!(evidence.contains("minted outside"), "{evidence}");

    // Claimed more than was minted.
    let mut f = Fixture::new();
    f.cfg().total_claimed = f.snapshot.config.total_minted + 1;
    failed(&f.run(), "vault.balance");

    // What only the program moves stays exact.
    let mut f = Fixture::new();
    f.cfg().last_usage_cost_total += 1;
    let evidence = failed(&f.run(), "totals.latest_trees");
    assert!(evidence.contains("last_usage_cost_total"), "{evidence}");
    let mut f = Fixture::new();
    f.cfg().credits_issued_finalized -= 1;
    let evidence = failed(&f.run(), "totals.burned");
    assert!(evidence.contains("credits_issued_finalized"), "{evidence}");
    let mut f = Fixture::new();
    f.snapshot.credits[0].1.tokens_before_purchase_epoch = u64::MAX;
    let evidence = failed(&f.run(), "credits.balances");
    assert!(evidence.contains("before its purchase epoch"), "{evidence}");

    let mut f = Fixture::new();
    f.cfg().total_minted += 1;
    let r = f.run();
    failed(&r, "totals.minted");

    let mut f = Fixture::new();
    f.cfg().last_usage_leaf_count += 1;
    failed(&f.run(), "totals.latest_trees");

    let mut f = Fixture::new();
    f.snapshot.credits[0].1.tokens_burned += 1;
    let evidence = failed(&f.run(), "totals.burned");
    assert!(evidence.contains("credit accounts"), "{evidence}");

    let mut f = Fixture::new();
    f.snapshot.credits[0].1.balance += 1;
    let evidence = failed(&f.run(), "credits.balances");
    assert!(
        evidence.contains("balances") || evidence.contains("balance"),
        "{evidence}"
    );
}

#[test]
fn settling_or_claiming_beyond_the_latest_leaf_fails() {
    let mut f = Fixture::new();
    let acc = &mut f.snapshot.credits[0].1;
    acc.consumed_cumulative += 1;
    acc.unpaid += 1;
    f.cfg().credits_unpaid += 1;
    f.ledger(1).credits_unpaid += 1;
    let r = f.run();
    passed(&r, "credits.balances");
    let evidence = failed(&r, "credits.settled_within_usage");
    assert!(evidence.contains("latest usage leaf"), "{evidence}");

    let mut f = Fixture::new();
    f.snapshot.claims[0].1.claimed += 1;
    f.cfg().total_claimed += 1;
    f.snapshot.vault.as_mut().unwrap().1.amount -= 1;
    let r = f.run();
    passed(&r, "vault.balance");
    let evidence = failed(&r, "claims.within_cumulative");
    assert!(evidence.contains("latest cumulative reward"), "{evidence}");

    // A claim by an operator with no leaf at all.
    let mut f = Fixture::new();
    f.snapshot.claims[0].1.operator = Pubkey::new_from_array([0x77; 32]);
    failed(&f.run(), "claims.within_cumulative");
}

#[test]
fn a_proposal_without_quorum_or_finalized_early_fails() {
    // The record's digest is not its proposal's.
    let mut f = Fixture::new();
    f.record(0).proposal_digest = [0x11; 32];
    let evidence = failed(&f.run(), "epoch-0/proposal.quorum");
    assert!(evidence.contains("hashes to"), "{evidence}");

    // Fewer votes than the threshold.
    let mut f = Fixture::new();
    f.record(1).votes.clear();
    let evidence = failed(&f.run(), "epoch-1/proposal.quorum");
    assert!(evidence.contains("threshold"), "{evidence}");

    // A vote from outside the oracle set.
    let mut f = Fixture::new();
    f.record(1).votes[0].oracle = Pubkey::new_from_array([0x99; 32]);
    let evidence = failed(&f.run(), "epoch-1/proposal.quorum");
    assert!(evidence.contains("not in the oracle set"), "{evidence}");

    // Finalized before its challenge period ended.
    let mut f = Fixture::new();
    let r = f.record(0);
    r.finalized_at = r.finalizable_at - 1;
    let evidence = failed(&f.run(), "epoch-0/proposal.quorum");
    assert!(
        evidence.contains("before the challenge period ended"),
        "{evidence}"
    );
}

#[test]
fn an_epoch_in_its_challenge_period_or_still_voting_audits_clean() {
    let activity = || Activity {
        burns: vec![(buyer(1), 20 * TOKEN)],
        traffic: vec![(buyer(1), op(1), GIB), (buyer(1), op(3), GIB)],
    };
    // Epoch 2 has a quorum and waits out its challenge period.
    let mut f = Fixture::new();
    f.epoch_until(activity(), EpochStatus::Proposed);
    let r = f.run();
    let failures: Vec<_> = r.checks.iter().filter(|c| !c.passed).collect();
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(r.finalized_epochs, 2);
    assert_eq!(r.epochs[2].status, "proposed");
    assert_eq!(r.checks.len(), 3 * PER_EPOCH + DEPLOYMENT);
    passed(&r, "epoch-2/budget.within");
    // Its dataset is checked like the others: a changed byte fails.
    let Ok(bytes) = &mut f.datasets.get_mut(&2).unwrap().bytes else {
        panic!()
    };
    let last = bytes.len() - 2;
    bytes[last] = b' ';
    failed(&f.run(), "epoch-2/dataset.sha256");

    // Epoch 2 still collects votes: it has no proposal and no dataset to check yet.
    let mut f = Fixture::new();
    f.epoch_until(activity(), EpochStatus::Voting);
    let r = f.run();
    assert!(r.passed, "{:?}", r.failed);
    assert_eq!(r.checks.len(), 2 * PER_EPOCH + DEPLOYMENT);
    assert_eq!(r.epochs[2].status, "voting");
}

#[test]
fn parameters_changed_since_an_epoch_are_flagged_with_what_to_check() {
    let mut f = Fixture::new();
    f.cfg().economics.net_emissions_cap += 1;
    let r = f.run();
    let evidence = failed(&r, "epoch-0/budget.parameters");
    assert!(
        evidence.contains("net_emissions_cap (vs the config)"),
        "{evidence}"
    );
    assert!(evidence.contains("`ChangeApplied` events"), "{evidence}");
    // The budget itself still matches what the program recorded at finalize.
    passed(&r, "epoch-0/budget.within");
}

#[test]
fn burns_not_reemitted_is_recomputed_from_the_epochs() {
    // Epoch 0 re-minted part of its burns (what its allocation took beyond the schedule's one
    // token): epoch 1 may re-mint what is left of both epochs' burns.
    let f = Fixture::new();
    let d0 = &f.decoded[&0];
    let reminted = d0.allocation - d0.budget.scheduled_room;
    assert_eq!(reminted, 8 * TOKEN / 10, "the fixture re-mints from burns");
    assert_eq!(
        f.decoded[&1].parameters.burns_not_reemitted,
        157 * TOKEN - reminted
    );
    passed(&f.run(), "epoch-1/budget.parameters");

    let mut f = Fixture::new();
    f.edit(1, |d| d.parameters.burns_not_reemitted += 1);
    let evidence = failed(&f.run(), "epoch-1/budget.parameters");
    assert!(
        evidence.contains("burns_not_reemitted (vs the epochs before"),
        "{evidence}"
    );

    // The config's running totals of finalized burns and re-mints are reconciled too.
    let mut f = Fixture::new();
    f.cfg().burned_finalized += 1;
    let evidence = failed(&f.run(), "totals.burned");
    assert!(evidence.contains("burned_finalized"), "{evidence}");
    let mut f = Fixture::new();
    f.cfg().total_reemitted += 1;
    f.cfg().scheduled_minted -= 1;
    let evidence = failed(&f.run(), "totals.minted");
    assert!(
        evidence.contains("total_reemitted (recomputed"),
        "{evidence}"
    );
}

#[test]
fn parameters_pending_for_a_later_epoch_are_compared_from_that_epoch() {
    use backhaul_sdk::state::PendingParams;
    // Applied after epoch 1 for epoch 2 on: epochs 0 and 1 still match the parameters in force.
    let mut f = Fixture::new();
    let mut params = f.snapshot.config.current_params();
    params.economics.net_emissions_cap += 1;
    f.cfg().pending_params = Some(PendingParams {
        from_epoch: 2,
        params,
    });
    let r = f.run();
    assert!(r.passed, "{:?}", r.failed);

    // Pending from epoch 1: epoch 1's dataset should have used them.
    f.cfg().pending_params = Some(PendingParams {
        from_epoch: 1,
        params,
    });
    let r = f.run();
    passed(&r, "epoch-0/budget.parameters");
    let evidence = failed(&r, "epoch-1/budget.parameters");
    assert!(
        evidence.contains("net_emissions_cap (vs the config)")
            && evidence.contains("`ChangeApplied` events"),
        "{evidence}"
    );
}

#[test]
fn queued_changes_decode_at_their_addresses() {
    use anchor_lang::AccountSerialize;
    use backhaul_sdk::state::{GovernanceChange, PendingChange};
    let mut f = Fixture::new();
    let d = f.d();
    f.cfg().next_change_id = 1;
    let change = PendingChange {
        config: d.config,
        id: 0,
        bump: 255,
        queued_by: f.snapshot.config.admin,
        queued_at: GENESIS,
        executable_at: GENESIS + 2 * EPOCH_SECS as i64,
        change: GovernanceChange::Guardians {
            guardians: vec![Pubkey::new_from_array([0x11; 32])],
        },
    };
    let mut data = vec![];
    change.try_serialize(&mut data).unwrap();
    let mut good = Fixture::new();
    good.cfg().next_change_id = 1;
    good.snapshot
        .add_program_account(d.pending_change(0), &data);
    let r = good.run();
    assert!(r.passed, "{:?}", r.failed);
    assert!(r
        .check("accounts.decoded")
        .unwrap()
        .evidence
        .contains("1 queued changes"));

    // At another id's address, or with an id the config never gave out.
    f.snapshot.add_program_account(d.pending_change(1), &data);
    let evidence = failed(&f.run(), "accounts.decoded");
    assert!(evidence.contains("queued change"), "{evidence}");
    let mut f = Fixture::new();
    f.snapshot.add_program_account(d.pending_change(0), &data);
    let evidence = failed(&f.run(), "accounts.decoded");
    assert!(evidence.contains("next change id 0"), "{evidence}");
}
