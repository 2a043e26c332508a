//! The durable receipt queue: receipts survive a restart, reach every oracle, are sent again
//! while an oracle is down or holds them, and are not sent again once settled.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use backhaul_client::OracleClient;
use backhaul_node::queue::Queue;
use backhaul_protocol::api::{BatchResponse, ItemResult, RejectReason};
use backhaul_protocol::{Deployment, SignedReceipt, UsageReceipt};
use ed25519_dalek::SigningKey;
use std::sync::{Arc, Mutex};

const D: Deployment = Deployment {
    program_id: [1; 32],
    config: [2; 32],
};

fn receipt(seq: u64) -> SignedReceipt {
    UsageReceipt {
        epoch: 1,
        session_id: [1; 16],
        node: SigningKey::from_bytes(&[7; 32]).verifying_key().to_bytes(),
        client: SigningKey::from_bytes(&[4; 32]).verifying_key().to_bytes(),
        buyer: [3; 32],
        sequence: seq,
        cumulative_bytes: seq * 1000,
        session_age_secs: seq,
    }
    .sign_both(
        &D,
        &SigningKey::from_bytes(&[4; 32]),
        &SigningKey::from_bytes(&[7; 32]),
    )
}

/// What a fake oracle answers, and what it received.
#[derive(Default)]
struct Fake {
    mode: Mutex<&'static str>,
    received: Mutex<Vec<u64>>,
}

async fn receipts(
    State(f): State<Arc<Fake>>,
    body: axum::body::Bytes,
) -> Result<Json<BatchResponse>, axum::http::StatusCode> {
    let mode = *f.mode.lock().expect("lock");
    if mode == "down" {
        return Err(axum::http::StatusCode::SERVICE_UNAVAILABLE);
    }
    let items: Vec<SignedReceipt> = borsh::from_slice(&body).unwrap_or_default();
    let result = match mode {
        "held" => ItemResult::held(RejectReason::UnknownGrant),
        "limited" => ItemResult::rejected(RejectReason::RateLimited),
        "refuse" => ItemResult::rejected(RejectReason::SelfDealing),
        _ => ItemResult::ACCEPTED,
    };
    f.received
        .lock()
        .expect("lock")
        .extend(items.iter().map(|r| r.receipt.sequence));
    Ok(Json(BatchResponse {
        results: items.iter().map(|_| result).collect(),
    }))
}

async fn fake(mode: &'static str) -> (Arc<Fake>, OracleClient) {
    let f = Arc::new(Fake::default());
    *f.mode.lock().expect("lock") = mode;
    let app = Router::new()
        .route("/v1/receipts", post(receipts))
        .with_state(f.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", l.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(l, app).await });
    (f, OracleClient::new(&url).expect("client"))
}

#[tokio::test]
async fn receipts_survive_a_restart_reach_every_oracle_and_are_settled_once() {
    let dir = tempfile::tempdir().expect("dir");
    let q = Queue::open(dir.path()).await.expect("open");
    for s in 1..=3 {
        q.push(&receipt(s)).await.expect("push");
    }
    q.push(&receipt(2))
        .await
        .expect("a second push changes nothing");
    drop(q);
    // A restart: everything is still there.
    let q = Queue::open(dir.path()).await.expect("reopen");
    assert_eq!(q.len().await.unwrap(), 3);

    let (up, a) = fake("accept").await;
    let (down, b) = fake("down").await;
    let oracles = [a, b];
    let d = q.deliver(&oracles).await.expect("deliver");
    assert_eq!((d.settled, d.retry), (3, 3));
    assert_eq!(*up.received.lock().unwrap(), vec![1, 2, 3]);
    // The one that was down comes back; the first is not sent the receipts again.
    *down.mode.lock().unwrap() = "accept";
    let d = q.deliver(&oracles).await.expect("deliver");
    assert_eq!((d.settled, d.retry), (3, 0));
    assert_eq!(*up.received.lock().unwrap(), vec![1, 2, 3]);
    assert_eq!(*down.received.lock().unwrap(), vec![1, 2, 3]);
    let d = q.deliver(&oracles).await.expect("deliver");
    assert_eq!(d, Default::default());
}

#[tokio::test]
async fn held_and_rate_limited_receipts_are_sent_again_and_refused_ones_are_not() {
    let dir = tempfile::tempdir().expect("dir");
    let q = Queue::open(dir.path()).await.expect("open");
    q.push(&receipt(1)).await.expect("push");
    for mode in ["held", "limited"] {
        let (f, o) = fake(mode).await;
        for _ in 0..2 {
            let d = q.deliver(std::slice::from_ref(&o)).await.expect("deliver");
            assert_eq!((d.settled, d.retry), (0, 1), "{mode}");
        }
        assert_eq!(f.received.lock().unwrap().len(), 2, "{mode}: sent again");
        *f.mode.lock().unwrap() = "accept";
        let d = q.deliver(std::slice::from_ref(&o)).await.expect("deliver");
        assert_eq!(d.settled, 1);
    }
    let (f, o) = fake("refuse").await;
    let d = q.deliver(std::slice::from_ref(&o)).await.expect("deliver");
    assert_eq!(d.refused.len(), 1);
    assert_eq!(d.refused[0].1, RejectReason::SelfDealing);
    let d = q.deliver(std::slice::from_ref(&o)).await.expect("deliver");
    assert_eq!(d.settled + d.retry, 0);
    assert_eq!(f.received.lock().unwrap().len(), 1);
}
