//! A hand-built deployment of two finalized epochs, computed the way the oracle closes epochs and
//! the program buys, finalizes, settles and pays claims, built from the program's account types
//! directly; and the helpers the tests perturb it with.

use anchor_lang::prelude::{AnchorDeserialize, Pubkey};
use anchor_lang::Space;
use backhaul::state::{
    Config, CreditAccount, EpochLedger, EpochProposal, EpochRecord, EpochStatus, OperatorClaim,
    PriceFeed, Vote,
};
use backhaul_audit::{audit, AuditReport, Fetched, MintInfo, ProgramUpgrade, Snapshot, VaultInfo};
use backhaul_core::budget::{EpochActivity, EpochBudget, NetEmissionParams};
use backhaul_core::cost::{
    buyer_pots, consumption_cost, purchases_through, Consumed, PurchaseCheckpoint, Purchases,
};
use backhaul_core::emission::EmissionSchedule;
use backhaul_core::merkle::{sha256v, TreeKind};
use backhaul_core::split::{credits_for_bytes, split_largest_remainder, GIB};
use backhaul_core::tree::{Entry, EpochTree};
use backhaul_protocol::dataset::{
    b58, hex, key_from_b58, Budget, Dataset, NodeUsage, Parameters, RewardLeaf, RewardTree, Served,
    Stats, UsageLeaf, UsageTree, DATASET_VERSION,
};
use backhaul_sdk::Deployment;
use std::collections::BTreeMap;

pub const TOKEN: u64 = 1_000_000;
pub const GENESIS: i64 = 1_800_000_000;
pub const EPOCH_SECS: u64 = 3_600;
pub const CREDITS_PER_TOKEN: u64 = 100_000;
pub const CREDITS_PER_GIB: u64 = 50_000;
pub const PAIR_CAP_BYTES: u64 = 100 * GIB;
pub const MAX_RATE_BYTES_PER_SEC: u64 = GIB;
/// k = 0.9.
pub const K_BPS: u32 = 9_000;

pub type Key = [u8; 32];

pub fn op(i: u8) -> Key {
    [i; 32]
}
pub fn buyer(i: u8) -> Key {
    [0xB0 + i; 32]
}
pub fn node_of(operator: &Key) -> Key {
    sha256v(&[b"node", operator])
}

/// A deployment and its datasets, kept consistent as the program and the oracle would.
pub struct Fixture {
    pub snapshot: Snapshot,
    pub datasets: BTreeMap<u64, Fetched>,
    pub decoded: BTreeMap<u64, Dataset>,
}

/// One epoch's activity: tokens each buyer burns for credits (before its traffic), and the bytes
/// of each buyer's traffic through each operator's node.
pub struct Activity {
    pub burns: Vec<(Key, u64)>,
    pub traffic: Vec<(Key, Key, u64)>,
}

/// An account as `init` leaves it before the instruction writes it: every number zero, every
/// key the default, every list empty, every option none.
fn zeroed<T: AnchorDeserialize + Space>() -> T {
    T::deserialize(&mut &vec![0; T::INIT_SPACE][..]).expect("zero bytes decode as any account")
}

/// A config bound to this deployment's accounts, as `initialize` leaves it (epoch 0 next), with
/// a small schedule (one token per epoch, so that paying operators also re-mints burns), k = 0.9,
/// a 10-minute challenge period, a price that may be three epochs old and the consensus
/// parameters the datasets were closed with. Only what the audit reads matters; the rest is
/// zero.
pub fn config(mint: Pubkey) -> Config {
    let d = Deployment::new(mint);
    let mut c: Config = zeroed();
    c.version = backhaul::constants::ACCOUNT_VERSION;
    c.bump = 255;
    c.vault_bump = 255;
    c.admin = Pubkey::new_from_array([9; 32]);
    c.guardians = vec![Pubkey::new_from_array([8; 32])];
    c.mint = mint;
    c.vault = d.vault();
    c.price_feed = d.price_feed();
    c.oracles = vec![Pubkey::new_from_array([7; 32])];
    c.threshold = 1;
    c.genesis_ts = GENESIS;
    c.epoch_length_secs = EPOCH_SECS;
    c.challenge_period_secs = 600;
    c.governance_delay_secs = EPOCH_SECS + 3_600;
    c.emission.initial_per_epoch = TOKEN;
    c.emission.decay_bps = 5_000;
    c.emission.decay_period_epochs = 30;
    c.emission.floor_per_epoch = TOKEN / 10;
    c.emission.lifetime_cap = 50_000 * TOKEN;
    c.rate_limiter.window_secs = 86_400;
    c.rate_limiter.capacity = 2_000 * TOKEN;
    c.economics.price_max_age_secs = 3 * EPOCH_SECS;
    c.economics.price_max_change_bps = 2_000;
    c.economics.net_emissions_cap = 100 * TOKEN;
    c.economics.burn_smoothing_epochs = 7;
    c.economics.usage_cap_bps = K_BPS;
    c.consensus.credits_per_gib = CREDITS_PER_GIB;
    c.consensus.pair_cap_bytes = PAIR_CAP_BYTES;
    c.consensus.max_rate_bytes_per_sec = MAX_RATE_BYTES_PER_SEC;
    c.consensus.grace_secs = 300;
    c.decimals = 6;
    c.initial_supply = 1_000_000 * TOKEN;
    c
}

/// Epoch `e`'s ledger once sealed, before any purchase, at the fixture's price.
pub fn sealed_ledger(config: Pubkey, e: u64) -> EpochLedger {
    let mut l: EpochLedger = zeroed();
    l.config = config;
    l.epoch = e;
    l.bump = 255;
    l.sealed = true;
    l.sealed_at = GENESIS + (e as i64 + 1) * EPOCH_SECS as i64;
    l.credits_per_token = CREDITS_PER_TOKEN;
    l.price_posted_at = GENESIS;
    l
}

/// A credit account's purchase checkpoints, as `backhaul_core::cost` takes them.
pub fn checkpoints_of(a: &CreditAccount) -> Vec<PurchaseCheckpoint> {
    a.purchase_checkpoints()
        .iter()
        .map(|c| PurchaseCheckpoint {
            epoch: c.epoch,
            before: Purchases {
                credits: c.issued_before,
                tokens: c.tokens_before,
            },
        })
        .collect()
}

pub fn credit_account(d: &Deployment, b: &Key) -> CreditAccount {
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
        checkpoint_count: 0,
        checkpoints: Default::default(),
    }
}

/// The two epochs every test starts from. Epoch 0: buyer 1 buys and is served by operators 1
/// and 2. Epoch 1: buyer 1 buys a little more and is served by operator 2; buyer 2 buys and is
/// served by operators 2 and 3.
pub fn two_epochs() -> [Activity; 2] {
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
    pub fn new() -> Fixture {
        Fixture::with(|_| {})
    }

    /// The two epochs on a config changed by `tweak` first.
    pub fn with(tweak: impl FnOnce(&mut Config)) -> Fixture {
        let mint = Pubkey::new_from_array([0x4D; 32]);
        let d = Deployment::new(mint);
        let mut cfg = config(mint);
        tweak(&mut cfg);
        let snapshot = Snapshot {
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
            upgrade: ProgramUpgrade::Authority(Pubkey::new_from_array([0x55; 32])),
            ..Snapshot::new(backhaul_sdk::PROGRAM_ID, d.config, cfg)
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

    pub fn d(&self) -> Deployment {
        Deployment::new(self.snapshot.config.mint)
    }

    pub fn cfg(&mut self) -> &mut Config {
        &mut self.snapshot.config
    }

    pub fn ledger(&mut self, e: u64) -> &mut EpochLedger {
        &mut self
            .snapshot
            .ledgers
            .iter_mut()
            .find(|(_, l)| l.epoch == e)
            .unwrap()
            .1
    }

    pub fn record(&mut self, e: u64) -> &mut EpochRecord {
        &mut self
            .snapshot
            .records
            .iter_mut()
            .find(|(_, r)| r.epoch == e)
            .unwrap()
            .1
    }

    pub fn credits_of(&mut self, b: &Key) -> &mut CreditAccount {
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
    pub fn epoch(&mut self, a: Activity) {
        self.epoch_until(a, EpochStatus::Finalized);
    }

    /// `buy_credits` of `tokens` for `b` in epoch `e`.
    pub fn buy(&mut self, e: u64, b: &Key, tokens: u64, ledger: &mut EpochLedger) {
        let credits = tokens * CREDITS_PER_TOKEN / TOKEN;
        let acc = self.credits_of(b);
        acc.checkpoint_purchase(e).unwrap();
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
    pub fn epoch_until(&mut self, a: Activity, status: EpochStatus) {
        let d = self.d();
        let e = self.snapshot.config.next_epoch;
        let mut ledger = sealed_ledger(d.config, e);
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
                &checkpoints_of(&acc),
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
            input_hash: hex(&[e as u8; 32]),
            parameters: Parameters {
                credits_per_gib: CREDITS_PER_GIB,
                pair_cap_bytes: PAIR_CAP_BYTES,
                max_rate_bytes_per_sec: MAX_RATE_BYTES_PER_SEC,
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
            refuted: vec![],
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
    pub fn recommit(&mut self, e: u64) {
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
    pub fn revote(&mut self, e: u64, oracle: Pubkey, challenge: i64, epoch_end: i64) {
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
    pub fn set_bytes(&mut self, e: u64, bytes: Vec<u8>) {
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
    pub fn settle(&mut self, e: u64, b: &str, cumulative: u64) {
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
    pub fn claim(&mut self, ds: &Dataset, operator: &str, e: u64) {
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
    pub fn edit(&mut self, e: u64, f: impl FnOnce(&mut Dataset)) {
        f(self.decoded.get_mut(&e).unwrap());
        self.recommit(e);
    }

    pub fn run(&self) -> AuditReport {
        audit(&self.snapshot, &self.datasets)
    }
}

/// The usage leaf of `b` in `ds`.
pub fn leaf_of<'d>(ds: &'d mut Dataset, b: &Key) -> &'d mut UsageLeaf {
    let b = b58(b);
    ds.usage.leaves.iter_mut().find(|l| l.buyer == b).unwrap()
}

/// The reward leaf of `o` in `ds`.
pub fn reward_of<'d>(ds: &'d mut Dataset, o: &Key) -> &'d mut RewardLeaf {
    let o = b58(o);
    ds.rewards
        .leaves
        .iter_mut()
        .find(|l| l.operator == o)
        .unwrap()
}

/// The served row of (`b`, `o`) in `ds`.
pub fn row_of<'d>(ds: &'d mut Dataset, b: &Key, o: &Key) -> &'d mut Served {
    let (b, o) = (b58(b), b58(o));
    ds.served
        .iter_mut()
        .find(|r| r.buyer == b && r.operator == o)
        .unwrap()
}

/// Asserts that `id` failed (with evidence) and returns its evidence.
pub fn failed(report: &AuditReport, id: &str) -> String {
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

pub fn passed(report: &AuditReport, id: &str) {
    let c = report.check(id).unwrap_or_else(|| panic!("no check {id}"));
    assert!(c.passed, "{id} should pass: {}", c.evidence);
}
