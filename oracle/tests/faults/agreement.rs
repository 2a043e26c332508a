//! Agreement on each epoch's input, with three oracle processes (threshold two) that exchange
//! their inputs over HTTP: whatever each of them happened to receive, they close over the same
//! agreed input and publish byte-identical datasets; an oracle that was down, a veto, and an
//! oracle that joins the set late all end in a finalized epoch with the same bytes everywhere.

use crate::harness::*;
use backhaul::state::{EpochRecord, EpochStatus};
use backhaul_protocol::dataset::{b58, hash_from_hex, Dataset};
use backhaul_protocol::input::EpochInput;
use backhaul_protocol::{SignedReceipt, UsageReceipt};
use backhaul_sdk::ix;
use ed25519_dalek::SigningKey;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use solana_sdk::signature::{Keypair, Signer};
use std::net::SocketAddr;
use std::path::Path;

/// Oracle processes on pre-chosen addresses, each with the others as peers.
fn oracles(chain: &Chain, dir: &Path, keys: &[&Keypair], addrs: &[SocketAddr]) -> Vec<OracleProc> {
    keys.iter()
        .enumerate()
        .map(|(i, k)| {
            let name = format!("oracle-{i}");
            let key = write_keypair(dir, &name, k);
            let mut s = oracle_settings(
                chain,
                &chain.net.url(),
                &dir.join(&name),
                addrs[i],
                Some(key),
            );
            s.peers = peers_of(addrs, i);
            OracleProc::new(dir, &name, &s, None)
        })
        .collect()
}

async fn send(url: &str, receipts: &[SignedReceipt]) {
    let body = borsh::to_vec(&receipts.to_vec()).expect("borsh");
    match post(&reqwest::Client::new(), &format!("{url}/v1/receipts"), body).await {
        Ok((200, BatchBody::Results(r))) => assert_eq!(r.len(), receipts.len()),
        other => panic!("{url}: {other:?}"),
    }
}

async fn get(url: &str) -> Option<Vec<u8>> {
    let resp = reqwest::get(url).await.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    resp.bytes().await.ok().map(|b| b.to_vec())
}

async fn dataset(url: &str, epoch: u64) -> Option<Vec<u8>> {
    get(&format!("{url}/v1/epochs/{epoch}/dataset")).await
}

/// A receipt signed by two keys nobody registered: valid signatures, zero bytes, no grant.
fn junk(rng: &mut StdRng, chain: &Chain, epoch: u64) -> SignedReceipt {
    let client = SigningKey::from_bytes(&rng.gen());
    let node = SigningKey::from_bytes(&rng.gen());
    UsageReceipt {
        epoch,
        session_id: rng.gen(),
        node: node.verifying_key().to_bytes(),
        client: client.verifying_key().to_bytes(),
        buyer: client.verifying_key().to_bytes(),
        sequence: 1,
        cumulative_bytes: 0,
        session_age_secs: 1,
    }
    .sign_both(&chain.proto, &client, &node)
}

fn session(rng: &mut StdRng, epoch: u64, node: usize, bytes: u64) -> Session {
    Session {
        epoch,
        node,
        client: 0,
        session_id: rng.gen(),
        sequence: 1,
        bytes,
    }
}

/// Waits until `epoch` is finalized on-chain (warping past its challenge period once it has a
/// quorum) and returns its record.
async fn finalized(chain: &Chain, epoch: u64, secs: u64) -> EpochRecord {
    let proposed = wait_for(&format!("a quorum on epoch {epoch}"), secs, || async {
        chain
            .record(epoch)
            .await
            .filter(|r| matches!(r.status, EpochStatus::Proposed | EpochStatus::Finalized))
    })
    .await;
    if proposed.status == EpochStatus::Proposed {
        chain.warp_to(proposed.finalizable_at + 1).await;
    }
    wait_for(&format!("epoch {epoch} finalized"), secs, || async {
        chain
            .record(epoch)
            .await
            .filter(|r| r.status == EpochStatus::Finalized)
    })
    .await
}

/// Every running oracle's dataset of `epoch`, once each has one that hashes to the finalized
/// proposal's `dataset_hash`; returns the bytes (the same everywhere).
async fn same_dataset_everywhere(urls: &[String], epoch: u64, record: &EpochRecord) -> Dataset {
    let mut bytes = None;
    for url in urls {
        let b = wait_for(
            &format!("{url}'s finalized dataset of {epoch}"),
            60,
            || async {
                dataset(url, epoch)
                    .await
                    .filter(|b| sha256(b) == record.proposal.dataset_hash)
            },
        )
        .await;
        if let Some(first) = &bytes {
            assert_eq!(first, &b, "{url} publishes other bytes");
        }
        bytes = Some(b);
    }
    Dataset::from_bytes(&bytes.expect("an oracle")).expect("a dataset")
}

/// The agreed input named by `d`, from `url`, checked against its hash.
async fn agreed_input(url: &str, d: &Dataset) -> EpochInput {
    let bytes = get(&format!("{url}/v1/inputs/{}", d.input_hash))
        .await
        .expect("the agreed input is served");
    assert_eq!(Some(sha256(&bytes)), hash_from_hex(&d.input_hash));
    EpochInput::from_bytes(&bytes).expect("canonical")
}

fn counted_bytes(d: &Dataset) -> u64 {
    d.nodes.iter().map(|n| n.bytes).sum()
}

/// (a) and (e): each oracle gets its own junk receipt, one oracle never gets a node's last
/// receipt, and one receipt reaches a single oracle a second before its cutoff. The three close
/// over the same agreed input, which holds every one of them, and publish the same bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oracles_given_different_receipts_close_over_the_same_input() {
    let mut rng = StdRng::seed_from_u64(seed("agreement"));
    let chain = Chain::start(3, 2).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let addrs: Vec<_> = (0..3).map(|_| free_addr()).collect();
    let keys: Vec<&Keypair> = chain.oracles.iter().collect();
    let mut procs = oracles(&chain, dir.path(), &keys, &addrs);
    for o in &mut procs {
        o.start().await;
    }
    let urls: Vec<String> = procs.iter().map(|o| o.url.clone()).collect();
    let traffic = Traffic::new(&chain, &mut rng, 2, 1);
    for u in &urls {
        traffic.register(u).await;
    }

    // A session everyone sees in full but for its last receipt, which oracle 2 never gets (a
    // 503, a timeout, a client that gave up).
    let mut s = session(&mut rng, 0, 0, 1 << 30);
    let first = traffic.receipt(&s);
    for u in &urls {
        send(u, &[first]).await;
    }
    s.sequence = 2;
    s.bytes = 3 << 30;
    let last = traffic.receipt(&s);
    send(&urls[0], &[last]).await;
    send(&urls[1], &[last]).await;
    // Junk: a different one at each oracle.
    for u in &urls {
        send(u, &[junk(&mut rng, &chain, 0)]).await;
    }
    // A receipt that reaches only oracle 1, a second before the cutoff.
    chain
        .warp_to(chain.epoch_end(0) + GRACE_SECS as i64 - 1)
        .await;
    let straddling = traffic.receipt(&session(&mut rng, 0, 1, 1 << 29));
    send(&urls[1], &[straddling]).await;
    chain
        .warp_to(chain.epoch_end(0) + GRACE_SECS as i64 + 1)
        .await;

    let record = finalized(&chain, 0, 120).await;
    let d = same_dataset_everywhere(&urls, 0, &record).await;
    // The last receipt counts (3 GiB, not 1), and so does the straddling one.
    assert_eq!(counted_bytes(&d), (3 << 30) + (1 << 29));
    // No junk receipt (fresh keys, no binding or grant) was stored anywhere: none is in the
    // agreed input.
    let input = agreed_input(&urls[2], &d).await;
    assert_eq!(input.receipts.len(), 2, "{:?}", input.receipts);
    assert!(input.receipts.contains(&last) && input.receipts.contains(&straddling));
    assert_eq!(d.rejected.values().sum::<u64>(), 0);
    // Every oracle voted the same digest: none dissented.
    let votes = chain.record(0).await.expect("record").votes;
    assert!(
        votes.iter().all(|v| v.digest == votes[0].digest),
        "{votes:?}"
    );
}

/// (b) and lag: oracle 2 holds a receipt and is down at the close, so 0 and 1 close without it
/// and reach quorum; a guardian vetoes; oracle 2 comes back; in the next round all three sync,
/// 0 and 1 close again over the larger input, and that is what is finalized.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_a_veto_the_oracles_sync_close_again_and_finalize() {
    let mut rng = StdRng::seed_from_u64(seed("veto and lag"));
    let chain = Chain::start(3, 2).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let addrs: Vec<_> = (0..3).map(|_| free_addr()).collect();
    let keys: Vec<&Keypair> = chain.oracles.iter().collect();
    let mut procs = oracles(&chain, dir.path(), &keys, &addrs);
    for o in &mut procs {
        o.start().await;
    }
    let urls: Vec<String> = procs.iter().map(|o| o.url.clone()).collect();
    let traffic = Traffic::new(&chain, &mut rng, 2, 1);
    for u in &urls {
        traffic.register(u).await;
    }
    let everyone = traffic.receipt(&session(&mut rng, 0, 0, 1 << 30));
    for u in &urls {
        send(u, &[everyone]).await;
    }
    let only_2 = traffic.receipt(&session(&mut rng, 0, 1, 1 << 28));
    send(&urls[2], &[only_2]).await;
    procs[2].kill();

    chain
        .warp_to(chain.epoch_end(0) + GRACE_SECS as i64 + 1)
        .await;
    let first = wait_for("a quorum without oracle 2", 120, || async {
        chain
            .record(0)
            .await
            .filter(|r| r.status == EpochStatus::Proposed)
    })
    .await;
    let without = dataset(&urls[0], 0).await.expect("oracle 0 closed");
    assert_eq!(
        counted_bytes(&Dataset::from_bytes(&without).unwrap()),
        1 << 30
    );
    chain.fund(&chain.guardian.pubkey()).await;
    chain
        .send(
            &[ix::veto(&chain.d, &chain.guardian.pubkey(), 0)],
            &chain.guardian,
            &[],
        )
        .await;
    procs[2].start().await;
    // Oracle 2 fixes and announces its input once it runs again (in production, long before the
    // ban below ends; here the clock jumps, so wait for it).
    wait_for("oracle 2's manifest", 60, || async {
        let list: Vec<String> = reqwest::get(format!("{}/v1/epochs/0/manifests", urls[2]))
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (!list.is_empty()).then_some(())
    })
    .await;
    // The veto bans the vetoed digest for one challenge period; the next round has oracle 2's
    // input, so the proposal differs anyway.
    chain
        .warp_to(first.quorum_at + CHALLENGE_SECS as i64 + 1)
        .await;
    let record = finalized(&chain, 0, 180).await;
    assert!(record.round >= 1, "finalized in a later round");
    assert_ne!(record.proposal_digest, first.proposal_digest);
    let d = same_dataset_everywhere(&urls, 0, &record).await;
    assert_eq!(counted_bytes(&d), (1 << 30) + (1 << 28));
}

/// (c): a fourth oracle, added by governance after two finalized epochs, starts with an empty
/// database, adopts both finalized datasets from its peers (checked against the chain), and
/// votes the next epoch with the same bytes as the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_oracle_added_later_catches_up_from_finalized_datasets_and_votes() {
    use backhaul::state::GovernanceChange;
    let mut rng = StdRng::seed_from_u64(seed("late oracle"));
    let chain = Chain::start(3, 2).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let newcomer = Keypair::new();
    chain.fund(&newcomer.pubkey()).await;
    let addrs: Vec<_> = (0..4).map(|_| free_addr()).collect();
    let keys: Vec<&Keypair> = chain.oracles.iter().chain([&newcomer]).collect();
    let mut procs = oracles(&chain, dir.path(), &keys, &addrs);
    for o in procs.iter_mut().take(3) {
        o.start().await;
    }
    let urls: Vec<String> = procs.iter().map(|o| o.url.clone()).collect();
    let traffic = Traffic::new(&chain, &mut rng, 2, 1);
    for u in &urls[..3] {
        traffic.register(u).await;
    }
    // Queue the new set now: it applies after the governance delay, during epoch 1.
    let admin = chain.net.faucet().insecure_clone();
    let mut set: Vec<_> = chain.oracles.iter().map(|k| k.pubkey()).collect();
    set.push(newcomer.pubkey());
    chain
        .send(
            &[ix::queue_change(
                &chain.d,
                &admin.pubkey(),
                0,
                GovernanceChange::Oracles {
                    oracles: set,
                    threshold: 3,
                },
            )],
            &admin,
            &[],
        )
        .await;
    for epoch in 0..2u64 {
        let r = traffic.receipt(&session(&mut rng, epoch, epoch as usize, 1 << 30));
        for u in &urls[..3] {
            send(u, &[r]).await;
        }
        chain
            .warp_to(chain.epoch_end(epoch) + GRACE_SECS as i64 + 1)
            .await;
        finalized(&chain, epoch, 120).await;
    }
    chain
        .send(
            &[ix::apply_change(&chain.d, 0, &admin.pubkey())],
            &admin,
            &[],
        )
        .await;
    // The newcomer starts from nothing; epoch 2's traffic reaches only the old three (its
    // input reaches the newcomer through them).
    procs[3].start().await;
    let r = traffic.receipt(&session(&mut rng, 2, 1, 1 << 30));
    for u in &urls[..3] {
        send(u, &[r]).await;
    }
    for epoch in 0..2u64 {
        let record = chain.record(epoch).await.expect("record");
        same_dataset_everywhere(&urls, epoch, &record).await;
    }
    chain
        .warp_to(chain.epoch_end(2) + GRACE_SECS as i64 + 1)
        .await;
    let record = finalized(&chain, 2, 180).await;
    let d = same_dataset_everywhere(&urls, 2, &record).await;
    assert_eq!(counted_bytes(&d), 1 << 30);
    let newcomer_key = newcomer.pubkey();
    let votes = chain.record(2).await.expect("record").votes;
    assert!(
        votes
            .iter()
            .any(|v| v.oracle == newcomer_key && v.digest == record.proposal_digest),
        "the newcomer voted the finalized proposal: {votes:?}"
    );
    let _ = b58(&newcomer_key.to_bytes());
}
