//! Epoch close: determinism across oracles and orders, repeat closes, proofs, cumulative epochs.

use crate::common::*;
use backhaul_core::merkle::TreeKind;
use backhaul_core::sum_tree::{verify_leaf, Commitment, Leaf, Scope};
use backhaul_oracle::chain::MemoryChain;
use backhaul_protocol::api::{EpochSummary, ProofResponse};
use backhaul_protocol::dataset::{b58, hash_from_hex, hex};
use backhaul_protocol::SignedReceipt;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::sync::Arc;

/// A busy epoch: 5 nodes, 4 clients, many sessions with several receipts each, replays included.
fn traffic(w: &World) -> Vec<SignedReceipt> {
    let mut out = vec![];
    for n in 0..5 {
        for c in 0..4 {
            for s in 0..3u8 {
                for seq in 1..=4u64 {
                    let bytes = (n as u64 + 1) * (c as u64 + 2) * seq * (s as u64 + 1) * 37_000_000;
                    out.push(w.receipt(0, n, c, n as u8 * 10 + s, seq, bytes));
                }
            }
        }
    }
    out
}

async fn feed(
    o: &TestOracle,
    w: &World,
    mut receipts: Vec<SignedReceipt>,
    seed: u64,
    batch: usize,
) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut bindings = w.bindings();
    let mut grants = w.grants();
    bindings.shuffle(&mut rng);
    grants.shuffle(&mut rng);
    receipts.shuffle(&mut rng);
    // Receipts may even arrive before their grants and bindings.
    let (early, late) = receipts.split_at(receipts.len() / 3);
    for chunk in early.chunks(batch) {
        o.post("/v1/receipts", chunk).await;
    }
    o.post("/v1/grants", &grants).await;
    o.post("/v1/bindings", &bindings).await;
    for chunk in late.chunks(batch) {
        o.post("/v1/receipts", chunk).await;
    }
    // Replays change nothing.
    for chunk in early.chunks(batch * 2) {
        o.post("/v1/receipts", chunk).await;
    }
}

#[tokio::test]
async fn two_oracles_fed_in_different_orders_publish_identical_datasets() {
    let g = genesis();
    let w = World::new(5, 4);
    let dbs = databases().await;
    // The second oracle uses PostgreSQL when it is available.
    let second_db = dbs.last().cloned().unwrap_or(Db::Sqlite);
    let a = TestOracle::start(chain(g), &Db::Sqlite).await;
    let b = TestOracle::start(chain(g), &second_db).await;
    for o in [&a, &b] {
        w.fund_buyers(&o.chain, 10_000_000);
    }
    feed(&a, &w, traffic(&w), 1, 7).await;
    feed(&b, &w, traffic(&w), 2, 50).await;
    let da = a.close(0).await.unwrap();
    let db = b.close(0).await.unwrap();
    assert_eq!(da.bytes, db.bytes, "datasets differ ({second_db:?})");
    assert_eq!(da.hash, db.hash);
    assert!(
        da.dataset.allocation > 0,
        "{:?} {:?}",
        da.dataset.rejected,
        da.dataset.stats
    );
    assert_eq!(da.dataset.stats.sessions, 60);
    // The published files are the same bytes too.
    let fa = std::fs::read(a.dir.path().join("datasets/epoch-0.json")).unwrap();
    let fb = std::fs::read(b.dir.path().join("datasets/epoch-0.json")).unwrap();
    assert_eq!(fa, fb);
    assert_eq!(fa, da.bytes);
}

#[tokio::test]
async fn closing_again_gives_the_same_bytes() {
    let o = TestOracle::start(chain(genesis()), &Db::Sqlite).await;
    let w = World::new(5, 4);
    w.fund_buyers(&o.chain, 10_000_000);
    feed(&o, &w, traffic(&w), 3, 100).await;
    let first = o.close(0).await.unwrap();
    let second = o.close(0).await.unwrap();
    assert_eq!(first.bytes, second.bytes);
    // Recomputing from the stored agreed input with the same chain inputs gives the same bytes
    // too.
    let closer = &o.oracle().closer;
    let inputs = closer.chain.inputs(0).await.unwrap();
    let (agreed, hash) = agreed_input(closer, 0).await;
    let again = closer
        .compute(0, &inputs, &agreed, hash, None)
        .await
        .unwrap();
    assert_eq!(again.to_bytes(), first.bytes);
}

#[tokio::test]
async fn the_split_is_exact_and_proportional_and_proofs_verify() {
    let o = TestOracle::start(chain(genesis()), &Db::Sqlite).await;
    let w = World::new(5, 4);
    w.fund_buyers(&o.chain, 10_000_000);
    feed(&o, &w, traffic(&w), 4, 64).await;
    let closed = o.close(0).await.unwrap();
    let d = &closed.dataset;
    let sum: u64 = d.rewards.leaves.iter().map(|l| l.amount).sum();
    assert_eq!(sum, d.allocation);
    assert!(d.allocation > 0);
    // k = 1 and the schedule does not bind: every buyer's pot is what its credits cost it, and
    // the pots use the whole budget.
    assert_eq!(d.allocation, d.budget.total);
    assert_eq!(d.budget.total, d.usage.usage_cost);
    assert_eq!(d.rewards.total, d.allocation);
    for u in &d.usage.leaves {
        assert_eq!(u.credits * BASE_UNITS_PER_CREDIT, u.cost, "{u:?}");
        assert_eq!(u.pot, u.cost);
        // Its pot goes to the operators that served it, in proportion to their bytes for it.
        let rows: Vec<_> = d.served.iter().filter(|s| s.buyer == u.buyer).collect();
        assert_eq!(rows.len(), 5, "every node served every client");
        assert_eq!(rows.iter().map(|s| s.bytes).sum::<u64>(), u.bytes);
        assert_eq!(rows.iter().map(|s| s.amount).sum::<u64>(), u.pot);
        for s in rows {
            let exact = u.pot as u128 * s.bytes as u128 / u.bytes as u128;
            assert!(s.amount as u128 == exact || s.amount as u128 == exact + 1);
        }
    }
    // Each operator's reward is the sum of its parts of the buyers' pots.
    for l in &d.rewards.leaves {
        let rows = d.served.iter().filter(|s| s.operator == l.operator);
        let (bytes, amount) = rows.fold((0, 0), |(b, a), s| (b + s.bytes, a + s.amount));
        assert_eq!((l.bytes, l.amount), (bytes, amount));
    }
    // Every operator's proof from the API verifies against the root in the dataset.
    let config = deployment().config;
    for op in &w.operators {
        let (code, text) = o
            .get(&format!("/v1/proofs/operator/{}", b58(&pk(op))))
            .await;
        assert_eq!(code, 200, "{text}");
        let p: ProofResponse = serde_json::from_str(&text).unwrap();
        let commitment = Commitment {
            root: hash_from_hex(&d.rewards.root).unwrap(),
            total: d.rewards.total,
            leaf_count: d.rewards.leaf_count,
        };
        let scope = Scope {
            kind: TreeKind::Reward,
            config,
            epoch: 0,
        };
        let leaf = Leaf {
            account: pk(op),
            amount: p.cumulative,
        };
        let siblings = p.siblings().unwrap();
        assert!(verify_leaf(&scope, &commitment, &leaf, p.index, &siblings));
    }
    for b in &w.buyers {
        let (code, text) = o.get(&format!("/v1/proofs/buyer/{}", b58(&pk(b)))).await;
        assert_eq!(code, 200, "{text}");
        let p: ProofResponse = serde_json::from_str(&text).unwrap();
        let commitment = Commitment {
            root: hash_from_hex(&d.usage.root).unwrap(),
            total: d.usage.total,
            leaf_count: d.usage.leaf_count,
        };
        let scope = Scope {
            kind: TreeKind::Usage,
            config,
            epoch: 0,
        };
        let leaf = Leaf {
            account: pk(b),
            amount: p.cumulative,
        };
        let siblings = p.siblings().unwrap();
        assert!(verify_leaf(&scope, &commitment, &leaf, p.index, &siblings));
    }
    let (code, _) = o
        .get(&format!("/v1/proofs/operator/{}", b58(&pk(&key(5)))))
        .await;
    assert_eq!(code, 404);
    let (code, _) = o.get("/v1/proofs/operator/not-a-key").await;
    assert_eq!(code, 400);
    // Summaries and the dataset file.
    let (code, text) = o.get("/v1/epochs").await;
    assert_eq!(code, 200);
    let list: Vec<EpochSummary> = serde_json::from_str(&text).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].dataset_hash, hex(&closed.hash));
    let resp = o
        .http
        .get(format!("{}/v1/epochs/0/dataset", o.url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["x-dataset-sha256"].to_str().unwrap(),
        hex(&closed.hash)
    );
    assert_eq!(resp.bytes().await.unwrap().to_vec(), closed.bytes);
    let (code, _) = o.get("/v1/epochs/9").await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn epochs_build_on_each_other_and_wait_for_the_chain() {
    let g = genesis();
    let o = TestOracle::start(chain(g), &Db::Sqlite).await;
    let w = World::new(2, 2);
    w.fund_buyers(&o.chain, 10_000_000);
    o.post("/v1/bindings", &w.bindings()).await;
    o.post("/v1/grants", &w.grants()).await;
    o.post(
        "/v1/receipts",
        &[
            w.receipt(0, 0, 0, 1, 1, GIB),
            w.receipt(0, 1, 1, 1, 1, 3 * GIB),
        ],
    )
    .await;
    let e0 = o.close(0).await.unwrap();
    // Epoch 1 cannot close until epoch 0 is finalized on-chain and epoch 1's ledger is sealed.
    o.post("/v1/receipts", &[w.receipt(1, 0, 1, 2, 1, 2 * GIB)])
        .await;
    let err = o.close(1).await.unwrap_err().to_string();
    assert!(err.contains("not finalized"), "{err}");
    finalize(&o.chain, &e0.dataset, 1);
    let err = o.close(1).await.unwrap_err().to_string();
    assert!(err.contains("sealed"), "{err}");
    o.chain.update(|s| {
        s.ledgers.insert(1, sealed_ledger(1, 0, 100_000));
    });
    let e1 = o.close(1).await.unwrap();
    let d1 = &e1.dataset;
    assert_eq!(
        d1.parameters.previous_reward_total,
        e0.dataset.rewards.total
    );
    assert_eq!(d1.rewards.total, e0.dataset.rewards.total + d1.allocation);
    assert_eq!(d1.rewards.leaf_count, 2, "operators stay in the tree");
    for l in &d1.rewards.leaves {
        let before = e0
            .dataset
            .rewards
            .leaves
            .iter()
            .find(|x| x.operator == l.operator)
            .unwrap();
        assert_eq!(l.cumulative, before.cumulative + l.amount);
    }
    assert_eq!(
        d1.usage.total,
        e0.dataset.usage.total + d1.usage.credits_consumed
    );
    // Costs build on each other too: only buyer 1 consumed in epoch 1.
    assert_eq!(
        d1.parameters.previous_usage_cost_total,
        e0.dataset.usage.cost_total
    );
    assert_eq!(
        d1.usage.cost_total,
        e0.dataset.usage.cost_total + d1.usage.usage_cost
    );
    assert_eq!(d1.usage.usage_cost, 2_000 * BASE_UNITS_PER_CREDIT);
    assert_eq!(d1.allocation, d1.usage.usage_cost);
    for (before, after) in e0.dataset.usage.leaves.iter().zip(&d1.usage.leaves) {
        assert_eq!(after.buyer, before.buyer);
        assert_eq!(after.cumulative_cost, before.cumulative_cost + after.cost);
    }
    assert_eq!(
        d1.usage
            .leaves
            .iter()
            .map(|l| l.cumulative_cost)
            .sum::<u64>(),
        d1.usage.cost_total
    );
    // Operator 1 served no one in epoch 1 and gets nothing; operator 0 gets buyer 1's pot.
    assert_eq!(d1.served.len(), 1);
    assert_eq!(d1.served[0].operator, b58(&pk(&w.operators[0])));
    assert_eq!(d1.served[0].amount, d1.allocation);

    // A previous dataset whose cost total the chain did not finalize is refused.
    let closer = &o.oracle().closer;
    let mut inputs = closer.chain.inputs(1).await.unwrap();
    inputs.last_usage_cost_total += 1;
    let (agreed, hash) = agreed_input(closer, 1).await;
    let err = closer
        .compute(1, &inputs, &agreed, hash, Some(&e0.dataset))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("usage cost"), "{err}");
}

/// The agreed input an epoch was closed over, from the oracle's files.
async fn agreed_input(
    closer: &backhaul_oracle::close::Closer,
    epoch: u64,
) -> (backhaul_protocol::input::EpochInput, [u8; 32]) {
    let hash = backhaul_oracle::db::input_hash(&closer.pool, epoch)
        .await
        .unwrap()
        .expect("closed");
    let input = closer.agreement.read(&hash).await.unwrap().expect("stored");
    (input, hash)
}

/// What finalizing `d` does to the chain, as the program would.
pub fn finalize(chain: &MemoryChain, d: &backhaul_protocol::dataset::Dataset, next: u64) {
    chain.update(|s| {
        let c = s.config.as_mut().unwrap();
        c.next_epoch = next;
        c.last_reward_total = d.rewards.total;
        c.last_reward_leaf_count = d.rewards.leaf_count;
        c.last_usage_total = d.usage.total;
        c.last_usage_leaf_count = d.usage.leaf_count;
        c.last_usage_cost_total = d.usage.cost_total;
        c.total_minted += d.allocation;
        c.scheduled_minted += d.allocation.min(d.budget.scheduled_room);
        c.total_reemitted += d.allocation.saturating_sub(d.budget.scheduled_room);
        c.burn_ema = d.budget.burn_ema;
    });
}

/// `account` after a purchase of `tokens` for `credits` in `epoch`, as `buy_credits` records it.
fn buy(account: &mut backhaul::state::CreditAccount, epoch: u64, tokens: u64, credits: u64) {
    account.checkpoint_purchase(epoch).unwrap();
    account.balance += credits;
    account.issued += credits;
    account.tokens_burned += tokens;
}

#[tokio::test]
async fn oracles_that_read_a_credit_account_before_and_after_later_purchases_agree() {
    // Epoch 0 is not finalized yet while its buyer goes on buying in epochs 1 and 2. One oracle
    // reads the buyer's account before those purchases, the other after: both close epoch 0
    // over the same purchases, those made by its end, and publish the same bytes.
    let w = World::new(1, 1);
    let buyer = pk(&w.buyers[0]);
    let mut account = backhaul::state::CreditAccount {
        config: solana_sdk::pubkey::Pubkey::new_from_array(deployment().config),
        buyer: solana_sdk::pubkey::Pubkey::new_from_array(buyer),
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
    };
    // 10 GiB worth of credits in epoch 0, at BASE_UNITS_PER_CREDIT.
    buy(&mut account, 0, 10_000 * BASE_UNITS_PER_CREDIT, 10_000);
    let early = backhaul_oracle::chain::buyer_credits(&account);
    // Then 20 GiB worth in epoch 1 at half the price, and more in epoch 2.
    buy(&mut account, 1, 20_000 * BASE_UNITS_PER_CREDIT / 2, 20_000);
    buy(&mut account, 2, 1_000 * BASE_UNITS_PER_CREDIT, 1_000);
    let late = backhaul_oracle::chain::buyer_credits(&account);
    assert_eq!(late.purchases_through(0), early.purchases_through(0));
    assert_eq!(late.purchases_through(0).credits, 10_000);

    let g = genesis();
    let a = TestOracle::start(chain(g), &Db::Sqlite).await;
    let b = TestOracle::start(chain(g), &Db::Sqlite).await;
    a.chain.update(|s| {
        s.credits.insert(buyer, early);
    });
    b.chain.update(|s| {
        s.credits.insert(buyer, late);
    });
    // 15 GiB served in epoch 0: more than the buyer had bought by its end.
    let receipts = vec![
        w.receipt(0, 0, 0, 1, 1, 5 * GIB),
        w.receipt(0, 0, 0, 1, 2, 15 * GIB),
    ];
    for o in [&a, &b] {
        o.post("/v1/grants", &w.grants()).await;
        o.post("/v1/bindings", &w.bindings()).await;
        o.post("/v1/receipts", &receipts).await;
    }
    let da = a.close(0).await.unwrap();
    let db = b.close(0).await.unwrap();
    assert_eq!(da.bytes, db.bytes, "the two reads gave different datasets");
    let u = &da.dataset.usage.leaves[0];
    assert_eq!(
        (u.credits, u.purchased_credits, u.purchased_tokens),
        (10_000, 10_000, 10_000 * BASE_UNITS_PER_CREDIT)
    );
    assert_eq!(u.cost, 10_000 * BASE_UNITS_PER_CREDIT);
}

/// An epoch record as the chain holds it once `hash` was finalized for `epoch`.
fn finalized_record(epoch: u64, hash: [u8; 32]) -> backhaul::state::EpochRecord {
    use anchor_lang::{AnchorDeserialize, Space};
    use backhaul::state::{EpochRecord, EpochStatus};
    let mut r = EpochRecord::deserialize(&mut &vec![0; EpochRecord::INIT_SPACE][..])
        .expect("zero bytes decode as a record");
    r.epoch = epoch;
    r.status = EpochStatus::Finalized;
    r.proposal.dataset_hash = hash;
    r
}

/// An oracle that missed a receipt the quorum counted closed epoch 0 differently; the chain
/// finalized the other dataset. Before closing epoch 1 on top of it, the oracle adopts the
/// finalized dataset from its peer (its own could never lead to the chain's totals), and then
/// closes epoch 1 byte for byte as the peer does. Without a peer serving it, it waits.
#[tokio::test]
async fn an_oracle_whose_dataset_was_not_finalized_adopts_the_finalized_one_before_the_next() {
    let g = genesis();
    let chain = chain(g);
    let w = World::new(2, 2);
    w.fund_buyers(&chain, 10_000_000);
    let peer = TestOracle::start(chain.clone(), &Db::Sqlite).await;
    let start_lagging = |peers: Vec<String>| {
        let chain = chain.clone();
        async move {
            let dir = Arc::new(tempfile::tempdir().unwrap());
            let mut s = settings(dir.path(), &Db::Sqlite);
            s.peers = peers;
            s.sync_wait_secs = 0;
            TestOracle::start_with(chain, dir, s).await
        }
    };
    let lagging = start_lagging(vec![peer.url.clone()]).await;
    let alone = start_lagging(vec![]).await;
    let receipts = [
        w.receipt(0, 0, 0, 1, 1, GIB),
        w.receipt(0, 1, 1, 1, 1, 3 * GIB),
    ];
    for o in [&peer, &lagging, &alone] {
        o.post("/v1/bindings", &w.bindings()).await;
        o.post("/v1/grants", &w.grants()).await;
    }
    peer.post("/v1/receipts", &receipts).await;
    for o in [&lagging, &alone] {
        o.post("/v1/receipts", &receipts[..1]).await;
    }
    let finalized = peer.close(0).await.unwrap();
    let own = lagging.close(0).await.unwrap();
    assert_ne!(own.hash, finalized.hash, "it missed a receipt");
    assert_eq!(alone.close(0).await.unwrap().hash, own.hash);

    // The chain finalizes the peer's dataset; epoch 1 is sealed.
    finalize(&chain, &finalized.dataset, 1);
    chain.update(|s| {
        s.records.insert(0, finalized_record(0, finalized.hash));
        s.ledgers.insert(1, sealed_ledger(1, 0, 100_000));
    });
    let next = lagging.close(1).await.unwrap();
    assert_eq!(
        next.dataset.parameters.previous_reward_total,
        finalized.dataset.rewards.total
    );
    let (code, stored) = lagging.get("/v1/epochs/0/dataset").await;
    assert_eq!(code, 200);
    assert_eq!(stored.as_bytes(), finalized.bytes.as_slice(), "adopted");
    assert_eq!(peer.close(1).await.unwrap().hash, next.hash);
    // With no peer to adopt from, it does not close epoch 1 over its own epoch 0.
    let err = alone.close(1).await.unwrap_err().to_string();
    assert!(err.contains("no peer serves its dataset"), "{err}");
    let (_, still) = alone.get("/v1/epochs/0/dataset").await;
    assert_eq!(
        backhaul_core::merkle::sha256v(&[still.as_bytes()]),
        own.hash
    );
}
