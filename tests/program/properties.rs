//! Randomized sequences of admin, guardian and oracle actions against the program in the bank:
//! a queued change never takes effect before its delay, and an honest quorum always finalizes
//! the next epoch within a bounded number of rounds, whatever a hostile guardian, a dishonest
//! oracle and an admin changing parameters at the worst moment do in between.
//!
//! The sequences come from a fixed-seed generator, so a failure names its case and replays.

use backhaul::constants::{MAX_PAUSE_SECS, MAX_VETOES_PER_EPOCH, MIN_CHALLENGE_PERIOD_SECS};
use backhaul::error::BackhaulError as E;
use backhaul_tests::*;
use solana_program_test::BanksClientError;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::Signer;

/// splitmix64: small, fixed-seed, good enough to pick actions.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn code(res: &Result<(), BanksClientError>) -> Option<u32> {
    res.as_ref().err().and_then(custom_code)
}

fn is(res: &Result<(), BanksClientError>, e: E) -> bool {
    code(res) == Some(anchor_lang::error::ERROR_CODE_OFFSET + e as u32)
}

/// A change that is always valid: the same oracles with another threshold, or another challenge
/// period within what the fixtures' governance delay allows.
fn random_change(env: &Env, rng: &mut Rng) -> GovernanceChange {
    if rng.below(2) == 0 {
        GovernanceChange::Oracles {
            oracles: env.oracles.iter().map(|k| k.pubkey()).collect(),
            threshold: 2 + rng.below(2) as u8,
        }
    } else {
        challenge_change(rng)
    }
}

/// Another challenge period, from the shortest allowed to the fixtures' (at most what the
/// governance delay allows).
fn challenge_change(rng: &mut Rng) -> GovernanceChange {
    GovernanceChange::Params(ParamsChange {
        challenge_period_secs: Some(
            MIN_CHALLENGE_PERIOD_SECS + rng.below(CHALLENGE_SECS - MIN_CHALLENGE_PERIOD_SECS),
        ),
        ..ParamsChange::default()
    })
}

/// The part of the config a change touches.
fn governed(c: &Config) -> (Vec<Pubkey>, u8, u64) {
    (c.oracles.clone(), c.threshold, c.challenge_period_secs)
}

fn applied(before: &Config, change: &GovernanceChange) -> (Vec<Pubkey>, u8, u64) {
    let (mut oracles, mut threshold, mut challenge) = governed(before);
    match change {
        GovernanceChange::Oracles {
            oracles: o,
            threshold: t,
        } => {
            oracles = o.clone();
            threshold = *t;
        }
        GovernanceChange::Params(p) => challenge = p.challenge_period_secs.unwrap_or(challenge),
        GovernanceChange::Guardians { .. } => {}
    }
    (oracles, threshold, challenge)
}

struct Queued {
    id: u64,
    executable_at: i64,
    change: GovernanceChange,
    gone: bool,
}

/// Queue, wait a random time, apply or cancel, in random order: an apply before
/// `queued_at + delay` is refused and changes nothing; after it, it applies exactly the change,
/// once; a cancelled change can never be applied.
#[tokio::test]
async fn property_a_queued_change_never_takes_effect_before_its_delay() {
    for case in 0..8u64 {
        let mut rng = Rng(case);
        let mut env = Env::new_seeded(300 + case).await;
        let guardian = env.guardian.insecure_clone();
        let mut queued: Vec<Queued> = Vec::new();
        for step in 0..24 {
            let now = env.now().await;
            match rng.below(4) {
                0 => {
                    let change = random_change(&env, &mut rng);
                    let id = env.queue(change.clone()).await.expect("queue");
                    let key = env.deployment().pending_change(id);
                    let pending: PendingChange = env.account(&key).await.expect("queued");
                    assert_eq!(
                        pending.executable_at,
                        now + GOVERNANCE_DELAY_SECS as i64,
                        "case {case} step {step}"
                    );
                    queued.push(Queued {
                        id,
                        executable_at: pending.executable_at,
                        change,
                        gone: false,
                    });
                }
                1 => {
                    let by = rng.below(2 * GOVERNANCE_DELAY_SECS) as i64;
                    env.set_time(now + by).await;
                }
                2 if !queued.is_empty() => {
                    let i = rng.below(queued.len() as u64) as usize;
                    let before = env.config_state().await;
                    let res = env.apply(queued[i].id).await;
                    let after = env.config_state().await;
                    let q = &mut queued[i];
                    if q.gone {
                        assert!(res.is_err(), "case {case} step {step}: applied twice");
                        assert_eq!(governed(&after), governed(&before));
                    } else if now < q.executable_at {
                        assert!(
                            is(&res, E::ChangeNotReady),
                            "case {case} step {step}: {res:?} {} s early",
                            q.executable_at - now
                        );
                        assert_eq!(governed(&after), governed(&before), "case {case}");
                    } else {
                        res.unwrap_or_else(|e| panic!("case {case} step {step}: {e:?}"));
                        assert_eq!(governed(&after), applied(&before, &q.change));
                        q.gone = true;
                    }
                }
                3 if !queued.is_empty() => {
                    let i = rng.below(queued.len() as u64) as usize;
                    let ix = env.cancel_change_ix(&guardian.pubkey(), queued[i].id);
                    let res = env.send_as(ix, &guardian).await;
                    assert_eq!(res.is_ok(), !queued[i].gone, "case {case} step {step}");
                    queued[i].gone = true;
                }
                _ => {}
            }
        }
    }
}

/// Per epoch, a random mix between the honest oracles' votes: the dishonest oracle votes a tree
/// that pays a thief, the guardian vetoes whenever it may, pauses whenever it may, and the admin
/// queues and applies changes of the challenge period (the oracle set and threshold stay, so two
/// honest oracles remain a quorum). The honest oracles only vote their proposal again whenever
/// they may (waiting out a pause or a ban). The epoch always finalizes with the honest proposal,
/// within `1 + MAX_VETOES_PER_EPOCH` rounds plus one for each pause that outlasted a round.
#[tokio::test]
async fn property_an_honest_quorum_always_finalizes_within_bounded_rounds() {
    // What the hostile actors managed over all cases: the sequences must have exercised them.
    let (mut all_vetoes, mut all_pauses, mut all_lies) = (0u32, 0u32, 0u32);
    for case in 0..6u64 {
        let mut rng = Rng(1_000 + case);
        let mut env = Env::new_seeded(400 + case).await;
        let guardian = env.guardian.insecure_clone();
        let (op, thief) = (Pubkey::new_unique(), Pubkey::new_unique());
        let mut queued: Vec<u64> = Vec::new();
        let mut total = 0u64;
        for epoch in 0..3u64 {
            let previous = total;
            total += 100 + rng.below(1_000);
            let honest = env.proposal(&env.reward_tree(epoch, &[(op, total)]), previous);
            let lie = env.proposal(
                &env.reward_tree(epoch, &[(op, previous), (thief, total - previous)]),
                previous,
            );
            // The buyers paid for the epoch's usage before it ended (a pause still running from
            // the last epoch is waited out first: nobody can buy while paused).
            let now = env.now().await;
            let c = env.config_state().await;
            if c.is_paused(now) {
                env.set_time(c.paused_until).await;
            }
            let honest = env.paid(epoch, honest).await.expect("paid");
            let end = backhaul_core::epoch::epoch_end(GENESIS, EPOCH_SECS, epoch).unwrap();
            if env.now().await < end {
                env.set_time(end).await;
            }
            let (mut steps, mut pauses) = (0, 0u32);
            loop {
                steps += 1;
                assert!(steps <= 60, "case {case} epoch {epoch}: not finalized");
                for _ in 0..rng.below(3) {
                    match rng.below(5) {
                        0 => all_lies += u32::from(env.vote(2, epoch, lie).await.is_ok()),
                        1 => drop(env.veto(epoch).await),
                        2 => {
                            let ix = env.set_paused_ix(&guardian.pubkey(), true);
                            pauses += u32::from(env.send_as(ix, &guardian).await.is_ok());
                        }
                        3 => {
                            if let Ok(id) = env.queue(challenge_change(&mut rng)).await {
                                queued.push(id);
                            }
                        }
                        _ => {
                            for id in queued.clone() {
                                if env.apply(id).await.is_ok() {
                                    queued.retain(|q| *q != id);
                                }
                            }
                        }
                    }
                }
                let now = env.now().await;
                let c = env.config_state().await;
                if c.is_paused(now) {
                    assert!(c.paused_until - now <= MAX_PAUSE_SECS, "case {case}");
                    env.set_time(c.paused_until).await;
                    continue;
                }
                let record = env
                    .account::<EpochRecord>(&epoch_address(&env.config, epoch))
                    .await;
                match record.as_ref().map(|r| r.status) {
                    Some(EpochStatus::Finalized) => break,
                    Some(EpochStatus::Proposed) => {
                        let r = record.as_ref().unwrap();
                        if now >= r.finalizable_at {
                            let res = env.finalize(epoch).await;
                            assert!(
                                res.is_ok() || is(&res, E::Paused),
                                "case {case} epoch {epoch}: {res:?}"
                            );
                        } else {
                            env.set_time(r.finalizable_at).await;
                        }
                    }
                    _ => {
                        for i in 0..2 {
                            let res = env.vote(i, epoch, honest).await;
                            if is(&res, E::ProposalVetoed) {
                                let until = env.epoch_state(epoch).await.banned_until;
                                env.set_time(until).await;
                            } else {
                                assert!(
                                    res.is_ok() || is(&res, E::DoubleVote) || is(&res, E::Paused),
                                    "case {case} epoch {epoch}: oracle {i}: {res:?}"
                                );
                            }
                        }
                    }
                }
            }
            let r = env.epoch_state(epoch).await;
            assert_eq!(
                r.proposal, honest,
                "case {case} epoch {epoch}: not the honest one"
            );
            assert!(r.vetoes <= MAX_VETOES_PER_EPOCH, "case {case}");
            all_vetoes += u32::from(r.vetoes);
            all_pauses += pauses;
            assert!(
                r.round <= u32::from(MAX_VETOES_PER_EPOCH) + pauses,
                "case {case} epoch {epoch}: {} rounds after {} vetoes and {pauses} pauses",
                r.round + 1,
                r.vetoes
            );
        }
        assert_eq!(env.config_state().await.last_reward_total, total);
    }
    assert!(
        all_vetoes > 0 && all_pauses > 0 && all_lies > 0,
        "vetoes {all_vetoes}, pauses {all_pauses}, dishonest votes {all_lies}"
    );
}
