//! The pages' figures over a hand-built deployment: three epochs (two finalized, one in its
//! challenge period), an operator who claimed part of its rewards, a firm, a queued change, and
//! an audit report whose results decide what is verified.

use anchor_lang::prelude::Pubkey;
use anchor_lang::{AnchorDeserialize, Space};
use backhaul::state::{
    Config, CreditAccount, EpochRecord, EpochStatus, GovernanceChange, OperatorClaim, PendingChange,
};
use backhaul_audit::{AuditReport, Check, Fetched, Snapshot};
use backhaul_dashboard::{csv, firm, guardian, listing, network, operator, Model};
use backhaul_protocol::dataset::{
    b58, Budget, Dataset, Parameters, RewardLeaf, RewardTree, Stats, UsageLeaf, UsageTree,
    DATASET_VERSION,
};
use std::collections::BTreeMap;

fn zeroed<T: AnchorDeserialize + Space>() -> T {
    T::deserialize(&mut &vec![0; T::INIT_SPACE][..]).expect("zero bytes decode as any account")
}

const GENESIS: i64 = 1_800_000_000;
const LEN: u64 = 7_200;
const A: [u8; 32] = [1; 32];
const B: [u8; 32] = [2; 32];
const BUYER: [u8; 32] = [5; 32];

fn dataset(e: u64, rewards: &[([u8; 32], u64, u64)], usage: u64, consumed: u64) -> Dataset {
    let p: Parameters = serde_json::from_value(serde_json::json!({
        "credits_per_gib": 0, "pair_cap_bytes": 0, "max_rate_bytes_per_sec": 0,
        "initial_per_epoch": 0, "decay_bps": 0, "decay_period_epochs": 0, "floor_per_epoch": 0,
        "lifetime_cap": 0, "scheduled_minted": 0, "previous_burn_ema": 0,
        "net_emissions_cap": 0, "burn_smoothing_epochs": 0, "usage_cap_bps": 0,
        "tokens_burned": 0, "credits_per_token": 0, "decimals": 6,
        "previous_reward_total": 0, "previous_usage_total": 0,
        "previous_usage_cost_total": 0, "burns_not_reemitted": 0
    }))
    .expect("parameters");
    let leaves: Vec<RewardLeaf> = rewards
        .iter()
        .map(|(k, cumulative, amount)| RewardLeaf {
            operator: b58(k),
            cumulative: *cumulative,
            amount: *amount,
            bytes: amount * 10,
        })
        .collect();
    Dataset {
        version: DATASET_VERSION,
        program_id: b58(&[9; 32]),
        config: b58(&[8; 32]),
        epoch: e,
        epoch_start: GENESIS + (e * LEN) as i64,
        epoch_end: GENESIS + ((e + 1) * LEN) as i64,
        input_hash: "00".repeat(32),
        parameters: p,
        budget: Budget {
            scheduled: 0,
            scheduled_room: 0,
            burn_ema: 0,
            net: 0,
            usage_cap: 0,
            total: 0,
        },
        allocation: 0,
        rewards: RewardTree {
            root: "00".repeat(32),
            leaf_count: leaves.len() as u64,
            total: leaves.iter().map(|l| l.cumulative).sum(),
            leaves,
        },
        usage: UsageTree {
            root: "00".repeat(32),
            leaf_count: 1,
            total: usage,
            credits_consumed: consumed,
            cost_total: 0,
            usage_cost: 0,
            leaves: vec![UsageLeaf {
                buyer: b58(&BUYER),
                cumulative: usage,
                credits: consumed,
                bytes: consumed * 100,
                purchased_credits: 0,
                purchased_tokens: 0,
                cumulative_cost: 0,
                cost: consumed / 10,
                pot: 0,
            }],
        },
        served: vec![],
        nodes: vec![],
        rejected: BTreeMap::new(),
        stats: Stats {
            sessions: 0,
            sessions_counted: 0,
            bytes_counted: 0,
            bytes_over_pair_cap: 0,
            bytes_over_credits: 0,
        },
    }
}

/// The deployment, with every check of `failing` failed and the others passed.
fn model(failing: &[&str]) -> Model {
    let mut c: Config = zeroed();
    c.genesis_ts = GENESIS;
    c.epoch_length_secs = LEN;
    c.challenge_period_secs = 3_600;
    c.decimals = 6;
    c.threshold = 2;
    c.emission.lifetime_cap = 1_000_000;
    c.emission.initial_per_epoch = 100;
    c.emission.decay_period_epochs = 10;
    let mut s = Snapshot::new(
        Pubkey::new_from_array([9; 32]),
        Pubkey::new_from_array([8; 32]),
        c,
    );
    let datasets = [
        dataset(0, &[(A, 100, 100), (B, 50, 50)], 40, 40),
        dataset(1, &[(A, 250, 150), (B, 50, 0)], 100, 60),
        dataset(2, &[(A, 300, 50), (B, 80, 30)], 130, 30),
    ];
    let mut fetched = BTreeMap::new();
    for (e, ds) in datasets.iter().enumerate() {
        let mut r: EpochRecord = zeroed();
        r.epoch = e as u64;
        r.status = if e < 2 {
            EpochStatus::Finalized
        } else {
            EpochStatus::Proposed
        };
        r.finalizable_at = GENESIS + ((e as u64 + 1) * LEN) as i64 + 3_600;
        s.records.push((Pubkey::new_unique(), r));
        fetched.insert(
            e as u64,
            Fetched {
                source: format!("epoch-{e}.json"),
                bytes: Ok(ds.to_bytes()),
            },
        );
    }
    let mut claim: OperatorClaim = zeroed();
    claim.operator = Pubkey::new_from_array(A);
    claim.claimed = 120;
    claim.last_epoch = 1;
    s.claims.push((Pubkey::new_unique(), claim));
    let mut credits: CreditAccount = zeroed();
    credits.buyer = Pubkey::new_from_array(BUYER);
    credits.balance = 900;
    credits.issued = 1_000;
    credits.settled = 40;
    credits.consumed_cumulative = 40;
    s.credits.push((Pubkey::new_unique(), credits));
    let mut change: PendingChange = zeroed();
    change.id = 3;
    change.executable_at = GENESIS + 4 * LEN as i64;
    change.change = GovernanceChange::Guardians { guardians: vec![] };
    s.changes.push((Pubkey::new_unique(), change));

    // A report with every check the pages name, passed unless listed.
    let mut ids: Vec<String> = [
        "accounts.decoded",
        "claims.within_cumulative",
        "credits.balances",
        "credits.settled_within_usage",
        "totals.burned",
        "totals.minted",
        "vault.balance",
    ]
    .map(String::from)
    .to_vec();
    for e in 0..3 {
        for n in [
            "dataset.sha256",
            "dataset.reward_leaves",
            "dataset.usage_leaves",
            "root.rewards",
            "root.usage",
            "cost.consumption",
            "cost.purchases",
            "proposal.quorum",
            "proposal.matches_dataset",
            "allocation.sum_of_increases",
            "budget.within",
        ] {
            ids.push(format!("epoch-{e}/{n}"));
        }
    }
    let checks: Vec<Check> = ids
        .iter()
        .map(|id| Check {
            id: id.clone(),
            name: id.rsplit('/').next().unwrap_or(id).to_string(),
            epoch: id
                .strip_prefix("epoch-")
                .and_then(|r| r.split('/').next())
                .and_then(|e| e.parse().ok()),
            passed: !failing.contains(&id.as_str()),
            evidence: "test".into(),
        })
        .collect();
    let failed = checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| c.id.clone())
        .collect::<Vec<_>>();
    let report = AuditReport {
        passed: failed.is_empty(),
        program_id: String::new(),
        config: String::new(),
        mint: String::new(),
        finalized_epochs: 2,
        failed,
        checks,
        epochs: vec![],
    };
    Model::build(&s, &fetched, report, GENESIS + 3 * LEN as i64)
}

#[test]
fn an_operator_sees_earned_claimed_claimable_and_pending_from_the_finalized_epoch() {
    let m = model(&[]);
    let v = operator::view(&m, &A).expect("the operator has a page");
    assert_eq!(
        v.earned.value, 250,
        "the newest finalized epoch's cumulative"
    );
    assert_eq!(v.claimed.value, 120);
    assert_eq!(v.claimable.value, 130);
    assert_eq!(v.claimable_epoch, Some(1));
    let pending = v.pending.expect("epoch 2 is in its challenge period");
    assert_eq!((pending.value, v.pending_epoch), (50, Some(2)));
    assert!(v.earned.verified && v.claimed.verified && v.claimable.verified);
    assert_eq!(
        v.history
            .iter()
            .map(|r| (r.epoch, r.reward, r.cumulative))
            .collect::<Vec<_>>(),
        vec![(2, 50, 300), (1, 150, 250), (0, 100, 100)]
    );
    // An unknown operator has no page; a firm's key is not an operator.
    assert!(operator::view(&m, &[7; 32]).is_none());
    assert!(operator::view(&m, &BUYER).is_none());
}

#[test]
fn a_figure_is_unverified_when_a_check_it_rests_on_failed_or_never_ran() {
    let m = model(&["epoch-1/root.rewards"]);
    let v = operator::view(&m, &A).expect("page");
    assert!(!v.earned.verified, "epoch 1's reward root failed");
    assert!(!v.claimable.verified);
    assert!(v.claimed.verified, "the claim record rests on other checks");
    assert!(
        v.history
            .iter()
            .find(|r| r.epoch == 0)
            .expect("epoch 0")
            .verified
    );
    assert!(
        !v.history
            .iter()
            .find(|r| r.epoch == 1)
            .expect("epoch 1")
            .verified
    );
    // A figure that names no check is never verified.
    assert!(!m.figure(1, vec![]).verified);
    assert!(!m.figure(1, vec!["no-such-check".into()]).verified);
}

#[test]
fn claims_are_attributed_to_epochs_oldest_first_and_add_up() {
    let m = model(&[]);
    let n = network::view(&m);
    let claimed: BTreeMap<u64, u64> = n
        .epochs
        .iter()
        .map(|e| (e.epoch, e.claimed.value))
        .collect();
    // A claimed 120 of 100 (epoch 0) + 150 (epoch 1): 100 of epoch 0's, 20 of epoch 1's.
    assert_eq!(claimed, BTreeMap::from([(0, 100), (1, 20), (2, 0)]));
    assert_eq!(n.epochs.first().map(|e| e.epoch), Some(2), "newest first");
    assert_eq!(
        n.epochs[0].seconds_left,
        Some(3_600),
        "the challenge period runs"
    );
    assert_eq!(n.series.epochs, vec![0, 1, 2]);
    assert_eq!(n.series.cumulative_scheduled, vec![100, 200, 300]);
}

#[test]
fn a_firm_sees_its_balance_unsettled_usage_and_runway() {
    let m = model(&[]);
    let v = firm::view(&m, &BUYER).expect("the firm has a page");
    assert_eq!(v.balance.value, 900);
    assert_eq!((v.consumed.value, v.consumed_epoch), (100, Some(1)));
    assert_eq!(
        v.unsettled.value, 60,
        "consumed 100 through epoch 1, settled through 40"
    );
    // The mean of the last three epochs' consumption: (30 + 60 + 40) / 3 = 43.
    assert_eq!(v.rate_per_epoch, 43);
    assert_eq!(v.runway_epochs, Some(900 / 43));
    assert_eq!(v.runway_secs, Some(900 / 43 * LEN));
    assert!(v.consumed.verified && v.unsettled.verified);
}

#[test]
fn the_guardian_sees_the_proposal_in_its_challenge_period_and_the_queued_change() {
    let m = model(&["epoch-2/budget.within"]);
    let g = guardian::view(&m);
    assert_eq!(g.challenged.len(), 1);
    let c = &g.challenged[0];
    assert_eq!((c.epoch, c.seconds_left, c.passed), (2, 3_600, false));
    assert!(c
        .checks
        .iter()
        .any(|k| k.id == "epoch-2/budget.within" && !k.passed));
    assert!(c.checks.iter().all(|k| k.epoch == Some(2)));
    assert_eq!(g.changes.len(), 1);
    assert_eq!(
        (g.changes[0].id, g.changes[0].kind.as_str()),
        (3, "guardian set")
    );
    assert_eq!(g.changes[0].seconds_left, LEN as i64);
}

#[test]
fn listings_page_through_the_newest_dataset_and_stop_at_its_end() {
    let m = model(&[]);
    let p = listing::operators(&m, 0, 1);
    assert_eq!((p.epoch, p.total, p.rows.len()), (Some(2), 2, 1));
    assert_eq!(p.rows[0].operator, b58(&A));
    assert_eq!(listing::operators(&m, 1, 1).rows[0].operator, b58(&B));
    assert!(listing::operators(&m, usize::MAX, 50).rows.is_empty());
    assert_eq!(
        listing::operators(&m, 0, 1_000_000).per_page,
        listing::MAX_PER_PAGE
    );
    assert_eq!(
        listing::firms(&m, 0, 0).per_page,
        1,
        "at least one row a page"
    );
}

#[test]
fn the_csv_holds_the_pages_rows_with_utc_boundaries() {
    let m = model(&[]);
    let rows = operator::history(&m, &A);
    let text = csv::operator(&rows, 6);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1 + rows.len());
    assert!(lines[0].starts_with("epoch,start_utc,end_utc,"));
    assert_eq!(
        lines[1],
        format!(
            "2,{},{},{},{},proposed,500,50,300,true,6",
            csv::utc(GENESIS + 2 * LEN as i64),
            csv::utc(GENESIS + 3 * LEN as i64),
            GENESIS + 2 * LEN as i64,
            GENESIS + 3 * LEN as i64
        )
    );
}

#[test]
fn a_proof_is_rebuilt_from_the_newest_finalized_dataset() {
    let m = model(&[]);
    let p = operator::proof(&m, &A).expect("a proof");
    assert_eq!((p.epoch, p.cumulative, p.leaf_count), (1, 250, 2));
    assert!(operator::proof(&m, &[7; 32]).is_err());
}
