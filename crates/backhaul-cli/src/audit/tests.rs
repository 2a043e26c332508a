//! The pure audit on a hand-built deployment of two finalized epochs, computed the way the
//! oracle closes epochs and the program finalizes, settles and pays claims: every check passes;
//! then each check fails when its input is perturbed.

use super::checks::{audit, AuditReport, Fetched, MintInfo, Snapshot, VaultInfo};
use backhaul_core::budget::{EpochActivity, EpochBudget, NetEmissionParams};
use backhaul_core::emission::EmissionSchedule;
use backhaul_core::merkle::{sha256v, TreeKind};
use backhaul_core::split::{credits_for_bytes, split_largest_remainder, GIB};
use backhaul_core::tree::{Entry, EpochTree};
use backhaul_oracle::chain::examples::{example_config, example_ledger};
use backhaul_protocol::dataset::{
    b58, hex, Budget, Dataset, NodeUsage, Parameters, RewardLeaf, RewardTree, Stats, UsageLeaf,
    UsageTree, DATASET_VERSION,
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

fn op(i: u8) -> [u8; 32] {
    [i; 32]
}
fn buyer(i: u8) -> [u8; 32] {
    [0xB0 + i; 32]
}
fn node_of(operator: &[u8; 32]) -> [u8; 32] {
    sha256v(&[b"node", operator])
}

/// A deployment and its datasets, kept consistent as the program and the oracle would.
struct Fixture {
    snapshot: Snapshot,
    datasets: BTreeMap<u64, Fetched>,
    decoded: BTreeMap<u64, Dataset>,
}

/// One epoch's activity: tokens burned by each buyer, bytes per operator and per buyer.
struct Activity {
    burns: Vec<([u8; 32], u64)>,
    operators: Vec<([u8; 32], u64)>,
    buyers: Vec<([u8; 32], u64)>,
}

/// The oracle's example config (1,000 tokens per epoch, 6 decimals), bound to this deployment's
/// accounts, with a 10-minute challenge period and a price that may be three epochs old.
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
    c.economics.price_max_age_secs = 3 * EPOCH_SECS;
    c.initial_supply = 1_000_000 * TOKEN;
    c
}

fn credit_account(d: &Deployment, b: &[u8; 32]) -> CreditAccount {
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
    }
}

impl Fixture {
    fn new() -> Fixture {
        let mint = Pubkey::new_from_array([0x4D; 32]);
        let d = Deployment::new(mint);
        let cfg = config(mint);
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
        f.epoch(Activity {
            burns: vec![(buyer(1), 100 * TOKEN)],
            operators: vec![(op(1), GIB), (op(2), 3 * GIB)],
            buyers: vec![(buyer(1), 4 * GIB)],
        });
        f.epoch(Activity {
            burns: vec![(buyer(2), 50 * TOKEN)],
            operators: vec![(op(2), 2 * GIB), (op(3), 2 * GIB)],
            buyers: vec![(buyer(1), GIB), (buyer(2), 3 * GIB)],
        });
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

    fn credits_of(&mut self, b: &[u8; 32]) -> &mut CreditAccount {
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

    /// One epoch up to `status`: purchases and a sealed ledger always; the oracles' close and
    /// quorum from `Proposed` on; the program's finalize for `Finalized`.
    fn epoch_until(&mut self, a: Activity, status: EpochStatus) {
        let d = self.d();
        let e = self.snapshot.config.next_epoch;
        let mut ledger = example_ledger(d.config, e, true, 0, CREDITS_PER_TOKEN);
        ledger.sealed_at = GENESIS + (e as i64 + 1) * EPOCH_SECS as i64;
        ledger.price_posted_at = GENESIS;
        for (b, tokens) in &a.burns {
            let credits = tokens * CREDITS_PER_TOKEN / TOKEN;
            let acc = self.credits_of(b);
            acc.balance += credits;
            acc.issued += credits;
            acc.tokens_burned += tokens;
            acc.purchase_epoch = e;
            ledger.tokens_burned += tokens;
            ledger.credits_issued += credits;
            let cfg = self.cfg();
            cfg.total_burned += tokens;
            cfg.credits_issued += credits;
            self.snapshot.mint.as_mut().unwrap().supply -= tokens;
        }

        // The oracle's close.
        let cfg = self.snapshot.config.clone();
        let prev = e.checked_sub(1).map(|p| self.decoded[&p].clone());
        let mut usage_credits: BTreeMap<[u8; 32], (u64, u64)> = BTreeMap::new();
        for (b, bytes) in &a.buyers {
            usage_credits.insert(
                *b,
                (credits_for_bytes(*bytes, CREDITS_PER_GIB).unwrap(), *bytes),
            );
        }
        let consumed: u64 = usage_credits.values().map(|(c, _)| c).sum();
        let schedule = EmissionSchedule::from(cfg.emission);
        let budget = EpochBudget::compute(
            &schedule,
            e,
            cfg.scheduled_minted,
            cfg.burn_ema,
            &NetEmissionParams::from(cfg.economics),
            &EpochActivity {
                tokens_burned: ledger.tokens_burned,
                credits_consumed: consumed,
                credits_per_token: ledger.credits_per_token,
                decimals: cfg.decimals,
                burns_not_reemitted: cfg.burned_finalized + ledger.tokens_burned
                    - cfg.total_reemitted,
            },
        )
        .unwrap();
        let mut operators = a.operators.clone();
        operators.sort();
        let bytes_counted: u64 = operators.iter().map(|(_, b)| b).sum();
        let allocation = if bytes_counted == 0 { 0 } else { budget.total };
        let shares = split_largest_remainder(
            allocation,
            &operators.iter().map(|(_, b)| *b).collect::<Vec<_>>(),
        )
        .unwrap();
        let mut rewards: BTreeMap<[u8; 32], (u64, u64, u64)> = BTreeMap::new();
        if let Some(p) = &prev {
            for l in &p.rewards.leaves {
                let k = backhaul_protocol::dataset::key_from_b58(&l.operator).unwrap();
                rewards.insert(k, (l.cumulative, 0, 0));
            }
        }
        for ((k, bytes), share) in operators.iter().zip(shares) {
            let r = rewards.entry(*k).or_insert((0, 0, 0));
            r.0 += share;
            r.1 = share;
            r.2 = *bytes;
        }
        let mut usage: BTreeMap<[u8; 32], (u64, u64, u64)> = BTreeMap::new();
        if let Some(p) = &prev {
            for l in &p.usage.leaves {
                let k = backhaul_protocol::dataset::key_from_b58(&l.buyer).unwrap();
                usage.insert(k, (l.cumulative, 0, 0));
            }
        }
        for (k, (credits, bytes)) in &usage_credits {
            let u = usage.entry(*k).or_insert((0, 0, 0));
            u.0 += credits;
            u.1 = *credits;
            u.2 = *bytes;
        }
        let mut nodes: Vec<NodeUsage> = operators
            .iter()
            .map(|(k, bytes)| (node_of(k), *k, *bytes))
            .collect::<Vec<_>>()
            .into_iter()
            .map(|(n, o, bytes)| {
                (
                    n,
                    NodeUsage {
                        node: b58(&n),
                        operator: b58(&o),
                        bytes,
                    },
                )
            })
            .collect::<BTreeMap<_, _>>()
            .into_values()
            .collect();
        nodes.sort_by_key(|n| backhaul_protocol::dataset::key_from_b58(&n.node).unwrap());
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
                burns_not_reemitted: cfg.burned_finalized + ledger.tokens_burned
                    - cfg.total_reemitted,
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
                total: rewards.values().map(|r| r.0).sum(),
                leaves: rewards
                    .iter()
                    .map(|(k, (cumulative, amount, bytes))| RewardLeaf {
                        operator: b58(k),
                        cumulative: *cumulative,
                        amount: *amount,
                        bytes: *bytes,
                    })
                    .collect(),
            },
            usage: UsageTree {
                root: String::new(),
                leaf_count: usage.len() as u64,
                total: usage.values().map(|u| u.0).sum(),
                credits_consumed: consumed,
                leaves: usage
                    .iter()
                    .map(|(k, (cumulative, credits, bytes))| UsageLeaf {
                        buyer: b58(k),
                        cumulative: *cumulative,
                        credits: *credits,
                        bytes: *bytes,
                    })
                    .collect(),
            },
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
        let burned = l.tokens_burned;
        l.tokens_minted = allocation;
        l.burn_ema = budget.burn_ema;
        l.budget = budget.total;
        let cfg = self.cfg();
        cfg.total_minted += allocation;
        cfg.scheduled_minted += split.scheduled;
        cfg.total_reemitted += split.net;
        cfg.burned_finalized += burned;
        cfg.burn_ema = budget.burn_ema;
        cfg.last_reward_total = ds.rewards.total;
        cfg.last_reward_leaf_count = ds.rewards.leaf_count;
        cfg.last_usage_total = ds.usage.total;
        cfg.last_usage_leaf_count = ds.usage.leaf_count;
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
                    account: backhaul_protocol::dataset::key_from_b58(&k).unwrap(),
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
        };
        // The oracle set's vote (threshold one) on that proposal, then the challenge period.
        let digest = backhaul_core::merkle::proposal_digest(
            &config,
            e,
            &anchor_lang::prelude::borsh::to_vec(&r.proposal).unwrap(),
        );
        r.proposal_digest = digest;
        r.votes = vec![Vote { oracle, digest }];
        r.quorum_at = ds.epoch_end + 10;
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
        let key = backhaul_protocol::dataset::key_from_b58(b).unwrap();
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
        let key =
            Pubkey::new_from_array(backhaul_protocol::dataset::key_from_b58(operator).unwrap());
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
    // 14 per epoch and 12 for the deployment.
    assert_eq!(r.checks.len(), 2 * 14 + 12, "{:#?}", r.checks);
    for id in [
        "epoch-0/dataset.sha256",
        "epoch-1/root.rewards",
        "epoch-1/root.usage",
        "epoch-1/budget.within",
        "vault.balance",
        "mint.supply",
        "credits.balances",
        "claims.within_cumulative",
    ] {
        passed(&r, id);
    }
    // The figures: epoch 0 burned 100 tokens and minted the schedule plus a seventh of them.
    let e0 = &r.epochs[0];
    assert_eq!(e0.tokens_burned, 100 * TOKEN);
    assert_eq!(e0.tokens_minted, 1_000 * TOKEN + 100 * TOKEN / 7);
    assert_eq!(e0.credits_consumed, 200_000);
    assert_eq!(e0.operators_rewarded, 2);
    assert_eq!(
        e0.top_earners[0].0,
        b58(&op(2)),
        "operator 2 served 3 of 4 GiB"
    );
    assert_eq!(r.epochs[1].operators_rewarded, 2);
}

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
fn a_split_out_of_proportion_fails() {
    let mut f = Fixture::new();
    // Epoch 1: operators 2 and 3 served 2 GiB each; move one token from one to the other.
    f.edit(1, |d| {
        let (a, b) = (1, 2);
        d.rewards.leaves[a].amount += TOKEN;
        d.rewards.leaves[a].cumulative += TOKEN;
        d.rewards.leaves[b].amount -= TOKEN;
        d.rewards.leaves[b].cumulative -= TOKEN;
    });
    let r = f.run();
    let evidence = failed(&r, "epoch-1/allocation.split");
    assert!(evidence.contains("its share is"), "{evidence}");
    passed(&r, "epoch-1/dataset.reward_leaves");
    passed(&r, "epoch-1/root.rewards");
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
fn the_reconciliations_fail_when_a_total_is_off() {
    let mut f = Fixture::new();
    f.snapshot.vault.as_mut().unwrap().1.amount -= 1;
    let evidence = failed(&f.run(), "vault.balance");
    assert!(evidence.contains("vault's balance"), "{evidence}");

    let mut f = Fixture::new();
    f.snapshot.mint.as_mut().unwrap().supply += 1;
    let evidence = failed(&f.run(), "mint.supply");
    assert!(evidence.contains("supply"), "{evidence}");

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
        operators: vec![(op(1), GIB), (op(3), GIB)],
        buyers: vec![(buyer(1), 2 * GIB)],
    };
    // Epoch 2 has a quorum and waits out its challenge period.
    let mut f = Fixture::new();
    f.epoch_until(activity(), EpochStatus::Proposed);
    let r = f.run();
    let failures: Vec<_> = r.checks.iter().filter(|c| !c.passed).collect();
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(r.finalized_epochs, 2);
    assert_eq!(r.epochs[2].status, "proposed");
    assert_eq!(r.checks.len(), 3 * 14 + 12);
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
    assert_eq!(r.checks.len(), 2 * 14 + 12);
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
    // Epoch 0 re-minted part of its burns: epoch 1 may re-mint what is left of both epochs'.
    let f = Fixture::new();
    let reminted = f.decoded[&0].budget.net;
    assert!(reminted > 0, "the fixture re-mints from burns");
    assert_eq!(
        f.decoded[&1].parameters.burns_not_reemitted,
        150 * TOKEN - reminted
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
