//! Publishing to an object store with the S3 API: an oracle process configured with
//! `publish_url = "s3://…"` puts each epoch's dataset and agreed input there, byte for byte what
//! it serves. Runs against the S3-compatible server `.ci/run` starts (`scripts/start-s3.sh`,
//! `BACKHAUL_TEST_S3_ENDPOINT`); CI sets `BACKHAUL_REQUIRE_S3`, so it is never skipped there.

use crate::harness::*;
use backhaul::state::EpochStatus;
use backhaul_protocol::dataset::{hash_from_hex, Dataset};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn endpoint() -> Option<String> {
    match std::env::var("BACKHAUL_TEST_S3_ENDPOINT") {
        Ok(e) => Some(e.trim_end_matches('/').to_string()),
        Err(_) if std::env::var_os("BACKHAUL_REQUIRE_S3").is_some() => {
            panic!("BACKHAUL_REQUIRE_S3 is set but BACKHAUL_TEST_S3_ENDPOINT is not")
        }
        Err(_) => {
            eprintln!(
                "note: no S3 server (BACKHAUL_TEST_S3_ENDPOINT, scripts/start-s3.sh); the object \
                 store is not covered by this run"
            );
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn datasets_and_agreed_inputs_are_published_to_an_object_store() {
    let Some(endpoint) = endpoint() else {
        return;
    };
    let mut rng = StdRng::seed_from_u64(seed("object store"));
    let http = reqwest::Client::new();
    let bucket = format!("backhaul-{:016x}", rng.gen::<u64>());
    let created = http
        .put(format!("{endpoint}/{bucket}"))
        .send()
        .await
        .expect("the S3 server answers");
    assert!(created.status().is_success(), "{created:?}");

    let chain = Chain::start(1, 1).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let key = write_keypair(dir.path(), "oracle", &chain.oracles[0]);
    let mut s = oracle_settings(
        &chain,
        &chain.net.url(),
        &dir.path().join("oracle"),
        free_addr(),
        Some(key),
    );
    s.publish_url = Some(format!(
        "s3://{bucket}/deployment-a?endpoint={endpoint}&region=us-east-1&allow_http=true"
    ));
    let mut o = OracleProc::new(dir.path(), "oracle", &s, None);
    o.env = vec![
        ("AWS_ACCESS_KEY_ID".into(), "backhaul-test".into()),
        ("AWS_SECRET_ACCESS_KEY".into(), "backhaul-test".into()),
    ];
    o.start().await;
    let traffic = Traffic::new(&chain, &mut rng, 2, 1);
    traffic.register(&o.url).await;
    let session = Session {
        epoch: 0,
        node: 0,
        client: 0,
        session_id: rng.gen(),
        sequence: 1,
        bytes: 1 << 30,
    };
    let body = borsh::to_vec(&vec![traffic.receipt(&session)]).expect("borsh");
    let answer = post(&http, &format!("{}/v1/receipts", o.url), body).await;
    assert!(matches!(answer, Ok((200, _))), "{answer:?}");
    chain
        .warp_to(chain.epoch_end(0) + GRACE_SECS as i64 + 1)
        .await;
    wait_for("epoch 0 proposed", 60, || async {
        chain
            .record(0)
            .await
            .filter(|r| r.status == EpochStatus::Proposed)
    })
    .await;

    // Read back as any client of the bucket would, with its own credentials.
    let bucket_store = object_store::aws::AmazonS3Builder::new()
        .with_bucket_name(&bucket)
        .with_endpoint(&endpoint)
        .with_region("us-east-1")
        .with_allow_http(true)
        .with_access_key_id("backhaul-test")
        .with_secret_access_key("backhaul-test")
        .build()
        .expect("a client of the bucket");
    let object = |name: &str| {
        let path = object_store::path::Path::from(format!("deployment-a/{name}"));
        let store = &bucket_store;
        async move {
            use object_store::ObjectStore;
            let r = store.get(&path).await.ok()?;
            r.bytes().await.ok().map(|b| b.to_vec())
        }
    };
    let published = match tokio::time::timeout(std::time::Duration::from_secs(30), async {
        loop {
            if let Some(b) = object("epoch-0.json").await {
                return b;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    })
    .await
    {
        Ok(b) => b,
        Err(_) => panic!(
            "no dataset in the bucket; the oracle's log:\n{}",
            o.log.tail(30)
        ),
    };
    let served = reqwest::get(format!("{}/v1/epochs/0/dataset", o.url))
        .await
        .expect("served")
        .bytes()
        .await
        .expect("bytes");
    assert_eq!(published, served.to_vec());
    let d = Dataset::from_bytes(&published).expect("a dataset");
    let input = wait_for("the agreed input in the bucket", 30, || {
        object("epoch-0.input")
    })
    .await;
    assert_eq!(Some(sha256(&input)), hash_from_hex(&d.input_hash));
    // Nothing was written to the local folder instead.
    assert!(!dir.path().join("oracle/datasets/epoch-0.json").exists());
    o.kill();
}
