//! Three oracles (threshold two), each its own process with its own SQLite database, SIGKILLed at
//! random moments of ingest, epoch close and submission, and started again on the same data,
//! while a fifth of the batches never reach a given oracle: no acknowledged receipt is lost
//! (every oracle's dataset counts every session at the bytes last sent, whichever oracles got
//! it), no published dataset changes, no oracle votes twice, and every epoch still reaches
//! quorum and finalizes.

use crate::harness::*;
use backhaul::state::EpochStatus;
use backhaul_protocol::dataset::{hash_from_hex, Dataset};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ORACLES: usize = 3;
/// The chance that a batch of receipts never reaches a given oracle (it always reaches one).
const LOSS: f64 = 0.2;

#[derive(Default, Debug)]
struct Kills {
    ingest: u32,
    close: u32,
    vote: u32,
    finalize: u32,
    seal: u32,
}

impl Kills {
    fn total(&self) -> u32 {
        self.ingest + self.close + self.vote + self.finalize + self.seal
    }
}

struct Loop {
    chain: Chain,
    oracles: Vec<OracleProc>,
    rng: StdRng,
    kills: Kills,
    target: u32,
    /// The first bytes seen of each oracle's dataset file per epoch, by hash.
    first_seen: BTreeMap<(usize, u64), [u8; 32]>,
    changed: Vec<String>,
}

impl Loop {
    fn done(&self) -> bool {
        self.kills.total() >= self.target
    }

    /// Kills oracle `i`, waits a moment, starts it again; then records its dataset files.
    async fn kill_and_restart(&mut self, i: usize, what: &str) {
        self.oracles[i].kill();
        match what {
            "ingest" => self.kills.ingest += 1,
            "close" => self.kills.close += 1,
            "vote" => self.kills.vote += 1,
            "finalize" => self.kills.finalize += 1,
            _ => self.kills.seal += 1,
        }
        let pause = self.rng.gen_range(0..300);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        self.oracles[i].start().await;
        self.scan_datasets();
    }

    /// Hashes every dataset file as it is now; a file that differs from its first version is a
    /// changed dataset.
    fn scan_datasets(&mut self) {
        for (i, o) in self.oracles.iter().enumerate() {
            let dir = o.data_dir.join("datasets");
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().to_string();
                let Some(epoch) = name
                    .strip_prefix("epoch-")
                    .and_then(|n| n.strip_suffix(".json"))
                    .and_then(|n| n.parse::<u64>().ok())
                else {
                    continue;
                };
                let Ok(bytes) = std::fs::read(entry.path()) else {
                    continue;
                };
                let hash = sha256(&bytes);
                match self.first_seen.get(&(i, epoch)) {
                    None => {
                        self.first_seen.insert((i, epoch), hash);
                    }
                    Some(first) if *first != hash => self.changed.push(format!(
                        "oracle {i} epoch {epoch}: {} then {}",
                        hex(first),
                        hex(&hash)
                    )),
                    Some(_) => {}
                }
            }
        }
    }

    /// Waits until one of `candidates` logs a line (after its mark in `from`) that satisfies
    /// `pred`, then kills it within a few milliseconds. Returns whether one was killed.
    async fn kill_on_line(
        &mut self,
        candidates: &[usize],
        from: &[usize],
        secs: u64,
        pred: impl Fn(&str) -> bool,
        what: &str,
    ) -> bool {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if let Some(&i) = candidates
                .iter()
                .find(|&&i| self.oracles[i].log.find(from[i], &pred).is_some())
            {
                let delay = self.rng.gen_range(0..15);
                tokio::time::sleep(Duration::from_millis(delay)).await;
                self.kill_and_restart(i, what).await;
                return true;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        false
    }
}

/// The submitter's log line for sending a transaction of `kind`.
fn sending(kind: &'static str) -> impl Fn(&str) -> bool {
    move |l: &str| {
        l.contains(" sending ")
            && (l.contains(&format!("kind=\"{kind}\"")) || l.contains(&format!("kind={kind} ")))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_loop_loses_nothing_changes_no_dataset_and_never_double_votes() {
    let target: u32 = std::env::var("BACKHAUL_FAULT_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let seed = seed("fault loop");
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(seed);
    let chain = Chain::start(ORACLES, 2).await;
    // Kept when the test fails (the oracles' logs and databases); removed when it passes.
    let dir = tempfile::Builder::new()
        .prefix("backhaul-fault-loop-")
        .tempdir()
        .expect("tempdir");
    println!(
        "fault loop: oracles' data and logs in {}",
        dir.path().display()
    );
    let dir = dir.keep();
    let dir = KeepOnPanic(dir);
    let mut oracles = vec![];
    let addrs: Vec<_> = chain.oracles.iter().map(|_| free_addr()).collect();
    for (i, k) in chain.oracles.iter().enumerate() {
        let name = format!("oracle-{i}");
        let key = write_keypair(dir.path(), &name, k);
        let mut s = oracle_settings(
            &chain,
            &chain.net.url(),
            &dir.path().join(&name),
            addrs[i],
            Some(key),
        );
        s.peers = peers_of(&addrs, i);
        // Longer than a kill and restart: an oracle killed at the close still contributes the
        // receipts only it received.
        s.sync_wait_secs = 15;
        oracles.push(OracleProc::new(dir.path(), &name, &s, None));
    }
    for o in &mut oracles {
        o.start().await;
    }
    let traffic = Arc::new(Traffic::new(&chain, &mut rng, 4, 4));
    for o in &oracles {
        traffic.register(&o.url).await;
    }
    let feeder = Feeder::start(
        traffic.clone(),
        oracles.iter().map(|o| o.url.clone()).collect(),
        rng.gen(),
        Rate {
            new: 20,
            updates: 5,
            every: Duration::from_millis(100),
            loss: LOSS,
        },
    );
    let mut l = Loop {
        chain,
        oracles,
        rng,
        kills: Kills::default(),
        target,
        first_seen: BTreeMap::new(),
        changed: vec![],
    };

    let mut epoch = 0u64;
    feeder.feed(Some(epoch));
    loop {
        // Ingest: kills while batches are in flight.
        let n = l.rng.gen_range(1..=2);
        for _ in 0..n {
            if l.done() {
                break;
            }
            let wait = l.rng.gen_range(100..700);
            tokio::time::sleep(Duration::from_millis(wait)).await;
            let v = l.rng.gen_range(0..ORACLES);
            l.kill_and_restart(v, "ingest").await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        // Every oracle holds the whole epoch before it ends, so all close the same dataset.
        feeder.drain(120).await;
        if l.done() && epoch > 0 {
            break;
        }

        // Close: the epoch ends with its grace period; a kill lands somewhere around the seal
        // and the close. The next epoch's receipts keep coming meanwhile.
        let marks: Vec<usize> = l.oracles.iter().map(|o| o.log.len()).collect();
        let end = l.chain.epoch_end(epoch);
        l.chain.warp_to(end + GRACE_SECS as i64 + 1).await;
        feeder.feed(Some(epoch + 1));
        if !l.done() {
            let v = l.rng.gen_range(0..ORACLES);
            let wait = l.rng.gen_range(0..2_500);
            tokio::time::sleep(Duration::from_millis(wait)).await;
            let closed = l.oracles[v]
                .log
                .find(marks[v], |s| s.contains("epoch closed"))
                .is_some();
            let sealed = l.oracles[v].log.find(marks[v], sending("seal")).is_some();
            let what = if closed || !sealed { "close" } else { "seal" };
            l.kill_and_restart(v, what).await;
        }

        // Submission: an oracle that has not voted yet is killed right after it sends its vote.
        if !l.done() {
            let marks: Vec<usize> = l.oracles.iter().map(|o| o.log.len()).collect();
            let record = l.chain.record(epoch).await;
            let voters: Vec<_> = record
                .map(|r| r.votes.iter().map(|v| v.oracle).collect())
                .unwrap_or_default();
            let waiting: Vec<usize> = (0..ORACLES)
                .filter(|i| {
                    !voters.contains(&solana_sdk::signer::Signer::pubkey(&l.chain.oracles[*i]))
                })
                .collect();
            l.kill_on_line(&waiting, &marks, 20, sending("vote"), "vote")
                .await;
        }
        let record = wait_for(&format!("quorum on epoch {epoch}"), 90, || async {
            l.chain
                .record(epoch)
                .await
                .filter(|r| r.status == EpochStatus::Proposed && r.votes.len() >= 2)
        })
        .await;

        // The challenge period is real time in production: every oracle has closed the epoch
        // (and published its dataset) long before it ends. Here the clock jumps, so wait for them.
        for (i, o) in l.oracles.iter().enumerate() {
            let path = o
                .data_dir
                .join("datasets")
                .join(format!("epoch-{epoch}.json"));
            wait_for(
                &format!("oracle {i} to close epoch {epoch}"),
                60,
                || async { path.exists().then_some(()) },
            )
            .await;
        }
        l.scan_datasets();

        // Finalization: whichever oracle sends it first is killed right after.
        let marks: Vec<usize> = l.oracles.iter().map(|o| o.log.len()).collect();
        l.chain.warp_to(record.finalizable_at + 1).await;
        if !l.done() {
            let all: Vec<usize> = (0..ORACLES).collect();
            l.kill_on_line(&all, &marks, 10, sending("finalize"), "finalize")
                .await;
        }
        wait_for(&format!("epoch {epoch} finalized"), 90, || async {
            l.chain
                .record(epoch)
                .await
                .filter(|r| r.status == EpochStatus::Finalized)
        })
        .await;
        l.scan_datasets();
        println!(
            "epoch {epoch} finalized after {:.0} s; kills so far {} {:?}",
            started.elapsed().as_secs_f64(),
            l.kills.total(),
            l.kills
        );
        epoch += 1;
        if l.done() {
            // The next epoch's traffic still drains, so its receipts are checked too.
            feeder.drain(120).await;
            break;
        }
    }
    let epochs = epoch;

    // Every oracle has published every finalized epoch; give the last one a moment.
    for (i, o) in l.oracles.iter().enumerate() {
        for e in 0..epochs {
            let path = o.data_dir.join("datasets").join(format!("epoch-{e}.json"));
            wait_for(
                &format!("oracle {i}'s dataset of epoch {e}"),
                30,
                || async { path.exists().then_some(()) },
            )
            .await;
        }
    }
    l.scan_datasets();

    // On-chain: one vote per oracle per epoch round, the quorum's dataset is every oracle's.
    let mut double_votes = 0;
    let mut proposals = HashMap::new();
    for e in 0..epochs {
        let r = l.chain.record(e).await.expect("a record per epoch");
        assert_eq!(r.status, EpochStatus::Finalized, "epoch {e}");
        for k in &l.chain.oracles {
            let n = r
                .votes
                .iter()
                .filter(|v| v.oracle == solana_sdk::signer::Signer::pubkey(k))
                .count();
            if n > 1 {
                double_votes += n - 1;
            }
        }
        proposals.insert(e, r.proposal.dataset_hash);
    }
    let refused_double_votes: usize = l
        .oracles
        .iter()
        .map(|o| o.log.count(|s| s.contains("DoubleVote")))
        .sum();

    // Stop every oracle (one last kill) and read what each one stored.
    let sent = feeder.sent();
    let acked = feeder.acked();
    let all_sessions = feeder.sessions();
    let mut lost = vec![];
    let mut bad_datasets = vec![];
    for (i, o) in l.oracles.iter_mut().enumerate() {
        o.kill();
        let url = backhaul_oracle::db::sqlite_url(&o.data_dir);
        let stored = kept_receipts(&o.data_dir).await;
        lost.extend(
            lost_receipts(&acked[i], &sent, &stored)
                .into_iter()
                .map(|x| format!("oracle {i}: {x}")),
        );
        let pool = backhaul_oracle::db::connect(&url).await.expect("database");
        let check: String = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_one(&pool)
            .await
            .expect("integrity check");
        assert_eq!(check, "ok", "oracle {i}'s SQLite file");
        for e in 0..epochs {
            let (db_bytes, _) = backhaul_oracle::db::dataset(&pool, e)
                .await
                .expect("read")
                .expect("the epoch is stored");
            let file = std::fs::read(o.data_dir.join("datasets").join(format!("epoch-{e}.json")))
                .expect("the dataset file");
            if file != db_bytes {
                bad_datasets.push(format!(
                    "oracle {i} epoch {e}: the file differs from the database"
                ));
            }
            if sha256(&file) != proposals[&e] {
                bad_datasets.push(format!("oracle {i} epoch {e}: not the quorum's dataset"));
            }
            // Every session sent in the epoch is in the dataset, at the bytes last sent.
            let d = Dataset::from_bytes(&file).expect("dataset");
            let sessions: Vec<_> = all_sessions.iter().filter(|s| s.epoch == e).collect();
            let bytes: u64 = sessions.iter().map(|s| s.bytes).sum();
            if d.stats.sessions != sessions.len() as u64 || d.stats.bytes_counted != bytes {
                bad_datasets.push(format!(
                    "oracle {i} epoch {e}: {} sessions and {} bytes counted, {} and {bytes} sent",
                    d.stats.sessions,
                    d.stats.bytes_counted,
                    sessions.len()
                ));
            }
            assert!(hash_from_hex(&d.rewards.root).is_some());
        }
        pool.close().await;
    }
    let acknowledged: Vec<usize> = acked.iter().map(|a| a.len()).collect();
    let lost_on_links = feeder.lost();
    let failures = feeder.failures();
    println!("requests refused or unanswered while oracles were down, per oracle:");
    for (i, f) in failures.iter().enumerate() {
        let total: u64 = f.values().sum();
        println!("  oracle {i}: {total}");
        for (k, n) in f.iter().take(5) {
            println!("    {n} × {k}");
        }
    }
    println!(
        "fault loop summary (seed {seed}, {:.0} s):",
        started.elapsed().as_secs_f64()
    );
    println!(
        "  kills survived: {} (ingest {}, seal {}, close {}, vote {}, finalize {})",
        l.kills.total(),
        l.kills.ingest,
        l.kills.seal,
        l.kills.close,
        l.kills.vote,
        l.kills.finalize
    );
    println!("  epochs finalized: {epochs}");
    println!(
        "  receipts sent: {}, acknowledged per oracle: {acknowledged:?}",
        sent.len()
    );
    println!(
        "  receipts lost on the way, per oracle: {lost_on_links:?} ({:.0}% per link)",
        LOSS * 100.0
    );
    println!("  items lost: {}", lost.len());
    println!(
        "  datasets changed: {} (of {} files hashed)",
        l.changed.len(),
        l.first_seen.len()
    );
    println!(
        "  double votes: {double_votes} (attempts refused by the program: {refused_double_votes})"
    );
    for o in &l.oracles {
        println!("  log: {}", o.log_path.display());
    }
    assert!(lost.is_empty(), "acknowledged receipts lost: {lost:#?}");
    assert!(l.changed.is_empty(), "datasets changed: {:#?}", l.changed);
    assert!(bad_datasets.is_empty(), "{bad_datasets:#?}");
    assert_eq!(double_votes, 0);
    assert_eq!(refused_double_votes, 0, "an oracle tried to vote twice");
    let unexpected = feeder.unexpected();
    assert!(
        unexpected.is_empty(),
        "{} unexpected answers, the first: {:#?}",
        unexpected.len(),
        &unexpected[..unexpected.len().min(5)]
    );
    assert!(l.kills.total() >= target);
    assert!(epochs >= 1);
    // Every receipt that was not lost on the way to an oracle was acknowledged by it.
    assert!(
        acknowledged
            .iter()
            .zip(&lost_on_links)
            .all(|(a, l)| *a as u64 + l == sent.len() as u64),
        "acknowledged {acknowledged:?} and lost {lost_on_links:?} of {} per oracle",
        sent.len()
    );
    assert!(
        lost_on_links.iter().all(|l| *l > 0),
        "every link lost some receipts: {lost_on_links:?}"
    );
    let _ = std::fs::remove_dir_all(&dir.0);
}

/// A directory removed only when the test passes (its last line does it).
struct KeepOnPanic(std::path::PathBuf);

impl KeepOnPanic {
    fn path(&self) -> &std::path::Path {
        &self.0
    }
}
