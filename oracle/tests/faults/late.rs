//! The grace period is a hard cutoff. An oracle whose close has not run (its ledger is not sealed
//! yet, or the close was interrupted by a crash) refuses an ended epoch's receipts once its grace
//! period is over, before and after a restart, so it cannot take receipts the other oracles
//! refused; when the close runs, it counts exactly what was taken in time.

use crate::harness::*;
use backhaul_protocol::api::{ItemStatus, RejectReason};
use backhaul_protocol::dataset::Dataset;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

async fn one(
    http: &reqwest::Client,
    url: &str,
    traffic: &Traffic,
    s: &Session,
) -> (ItemStatus, Option<RejectReason>) {
    let body = borsh::to_vec(&vec![traffic.receipt(s)]).expect("borsh");
    match post(http, &format!("{url}/v1/receipts"), body).await {
        Ok((200, BatchBody::Results(r))) => (r[0].status, r[0].reason),
        other => panic!("{other:?}"),
    }
}

fn session(rng: &mut StdRng, epoch: u64) -> Session {
    Session {
        epoch,
        node: 0,
        client: 0,
        session_id: rng.gen(),
        sequence: 1,
        bytes: 1 << 20,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn receipts_after_the_grace_period_are_refused_even_before_the_close_and_after_a_restart() {
    let mut rng = StdRng::seed_from_u64(seed("late receipts"));
    let chain = Chain::start(1, 1).await;
    let dir = tempfile::tempdir().expect("tempdir");
    // No keypair: nothing seals the ledger, so the close cannot run until the test seals it.
    let s = oracle_settings(
        &chain,
        &chain.net.url(),
        &dir.path().join("oracle"),
        free_addr(),
        None,
    );
    let mut o = OracleProc::new(dir.path(), "oracle", &s, None);
    o.start().await;
    let traffic = Traffic::new(&chain, &mut rng, 1, 1);
    traffic.register(&o.url).await;
    let http = reqwest::Client::new();
    let on_time = session(&mut rng, 0);
    assert_eq!(
        one(&http, &o.url, &traffic, &on_time).await.0,
        ItemStatus::Accepted
    );

    // The epoch ends and its grace period passes; the oracle sees the new time once it takes
    // epoch 1's receipts.
    chain
        .warp_to(chain.epoch_end(0) + GRACE_SECS as i64 + 1)
        .await;
    wait_for("the oracle to see epoch 1", 30, || async {
        let r = one(
            &http,
            &o.url,
            &traffic,
            &session(&mut StdRng::from_entropy(), 1),
        )
        .await;
        (r.0 == ItemStatus::Accepted).then_some(())
    })
    .await;
    let late = session(&mut rng, 0);
    assert_eq!(
        one(&http, &o.url, &traffic, &late).await,
        (ItemStatus::Rejected, Some(RejectReason::EpochNotOpen)),
        "a late receipt, with the close not run yet"
    );
    o.kill();
    o.start().await;
    assert_eq!(
        one(&http, &o.url, &traffic, &session(&mut rng, 0)).await,
        (ItemStatus::Rejected, Some(RejectReason::EpochNotOpen)),
        "a late receipt after a restart"
    );

    // The ledger is sealed; the close counts the receipt taken in time, and only that one.
    let payer = chain.net.faucet().insecure_clone();
    chain
        .send(
            &[backhaul_sdk::ix::seal_epoch(
                &chain.d,
                &solana_sdk::signer::Signer::pubkey(&payer),
                0,
            )],
            &payer,
            &[],
        )
        .await;
    let path = o.data_dir.join("datasets").join("epoch-0.json");
    wait_for("epoch 0 closed", 30, || async {
        path.exists().then_some(())
    })
    .await;
    let d = Dataset::from_bytes(&std::fs::read(&path).expect("dataset")).expect("dataset");
    assert_eq!(
        (d.stats.sessions, d.stats.bytes_counted),
        (1, on_time.bytes)
    );
    o.kill();
}
