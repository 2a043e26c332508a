//! End to end over the local JSON-RPC endpoint with the real `RpcClient`: initialize, buy credits,
//! three oracles (threshold two) fed by the client library, close, vote, challenge period,
//! finalize, claim, settle, and the totals.

use backhaul::instructions::InitializeParams;
use backhaul::state::{
    Config, ConsensusParams, CreditAccount, EconomicsParams, EmissionParams, EpochRecord,
    EpochStatus, PriceFeed,
};
use backhaul_client::{
    BuyerIdentity, ClientConfig, ClientSession, Fanout, NodeIdentity, OracleClient,
};
use backhaul_localnet::{Localnet, LocalnetConfig};
use backhaul_oracle::chain::{Addresses, RpcChain};
use backhaul_oracle::submit::{Crash, Entry, Kind, SubmitError, SubmitParams, Submitter};
use backhaul_oracle::{Oracle, Settings};
use backhaul_protocol::dataset::hash_from_hex;
use backhaul_sdk::{compute, ix, Deployment};
use ed25519_dalek::SigningKey;
use solana_client::nonblocking::rpc_client::RpcClient;
use solana_commitment_config::CommitmentConfig;
use solana_sdk::instruction::Instruction;
use solana_sdk::program_pack::Pack;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};
use solana_sdk::transaction::Transaction;
use std::sync::Arc;
use std::time::Duration;

const DECIMALS: u8 = 6;
const TOKEN: u64 = 1_000_000;
const EPOCH_SECS: u64 = 7_200;
const CHALLENGE_SECS: u64 = 3_600;

struct Net {
    net: Localnet,
    rpc: RpcClient,
    http: reqwest::Client,
}

impl Net {
    async fn send(&self, ixs: &[Instruction], payer: &Keypair, signers: &[&Keypair]) {
        let blockhash = self.rpc.get_latest_blockhash().await.expect("blockhash");
        let mut keys: Vec<&Keypair> = vec![payer];
        keys.extend_from_slice(signers);
        let tx = Transaction::new_signed_with_payer(ixs, Some(&payer.pubkey()), &keys, blockhash);
        self.rpc
            .send_and_confirm_transaction(&tx)
            .await
            .expect("transaction lands");
    }

    async fn fund(&self, to: &Pubkey) {
        let ix = solana_system_interface::instruction::transfer(
            &self.net.faucet().pubkey(),
            to,
            10_000_000_000,
        );
        self.send(&[ix], self.net.faucet(), &[]).await;
    }

    async fn account<T: anchor_lang::AccountDeserialize>(&self, key: &Pubkey) -> Option<T> {
        let acc = self
            .rpc
            .get_account_with_commitment(key, CommitmentConfig::confirmed())
            .await
            .ok()?
            .value?;
        T::try_deserialize(&mut &acc.data[..]).ok()
    }

    async fn token_balance(&self, key: &Pubkey) -> u64 {
        let acc = self.rpc.get_account(key).await.expect("token account");
        spl_token_interface::state::Account::unpack(&acc.data)
            .expect("token")
            .amount
    }

    async fn supply(&self, mint: &Pubkey) -> u64 {
        let acc = self.rpc.get_account(mint).await.expect("mint");
        spl_token_interface::state::Mint::unpack(&acc.data)
            .expect("mint")
            .supply
    }

    async fn now(&self) -> i64 {
        let acc = self
            .rpc
            .get_account(&solana_sdk::sysvar::clock::ID)
            .await
            .expect("clock");
        backhaul_oracle::chain::clock_unix_timestamp(&acc.data).expect("clock data")
    }

    /// Moves the chain's clock to `ts` with the endpoint's extra method.
    async fn warp_to(&self, ts: i64) {
        let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "backhaulWarpClock", "params": [{"unixTimestamp": ts}]});
        let resp: serde_json::Value = self
            .http
            .post(self.net.url())
            .json(&body)
            .send()
            .await
            .expect("warp")
            .json()
            .await
            .expect("json");
        assert!(resp.get("result").is_some(), "warp failed: {resp}");
    }
}

/// Polls `f` every 200 ms until it returns `Some`, for at most `secs` seconds.
async fn wait_for<T, F, Fut>(what: &str, secs: u64, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn write_keypair(dir: &std::path::Path, name: &str, k: &Keypair) -> std::path::PathBuf {
    let path = dir.join(format!("{name}.json"));
    std::fs::write(
        &path,
        serde_json::to_string(&k.to_bytes().to_vec()).unwrap(),
    )
    .unwrap();
    path
}

fn signing_key(k: &Keypair) -> SigningKey {
    SigningKey::from_bytes(&k.secret_bytes()[..32].try_into().unwrap())
}

/// Options of a test network.
struct Opts {
    /// Whether the oracles run their own submitters.
    submitters: bool,
    /// An oracle that also gets a receipt the others never see. The oracles here have no
    /// peers, so it closes over a different input and votes a different root.
    dissenter: Option<usize>,
}

/// A running network with traffic for epoch 0 ingested by every oracle.
#[allow(dead_code)]
struct World {
    net: Net,
    d: Deployment,
    mint: Keypair,
    genesis: i64,
    oracles: Vec<Keypair>,
    guardian: Keypair,
    running: Vec<Oracle>,
    urls: Vec<String>,
    buyer: Keypair,
    operators: Vec<Keypair>,
    dir: tempfile::TempDir,
}

async fn world(opts: Opts) -> World {
    let start = 1_800_000_000;
    let net = Localnet::start(LocalnetConfig {
        unix_timestamp: Some(start),
        follow_wall_clock: true,
        ..Default::default()
    })
    .expect("localnet");
    let net = Net {
        rpc: RpcClient::new_with_commitment(net.url(), CommitmentConfig::confirmed()),
        net,
        http: reqwest::Client::new(),
    };
    let authority = net.net.faucet().insecure_clone();

    // The token: minted before the deployment to a treasury, then handed to the config PDA.
    let mint = Keypair::new();
    let d = Deployment::new(mint.pubkey());
    let treasury = Keypair::new();
    net.fund(&treasury.pubkey()).await;
    let space = spl_token_interface::state::Mint::LEN;
    let rent = net
        .rpc
        .get_minimum_balance_for_rent_exemption(space)
        .await
        .unwrap();
    let treasury_ata = d.ata(&treasury.pubkey());
    let create = ix::create_mint(
        &d,
        &treasury.pubkey(),
        rent,
        DECIMALS,
        Some((&treasury.pubkey(), 1_000_000 * TOKEN)),
    )
    .unwrap();
    net.send(&create, &treasury, &[&mint]).await;

    // The deployment: three oracles, threshold two.
    let oracles: Vec<Keypair> = (0..3).map(|_| Keypair::new()).collect();
    for o in &oracles {
        net.fund(&o.pubkey()).await;
    }
    let guardian = Keypair::new();
    net.fund(&guardian.pubkey()).await;
    let genesis = start;
    let params = InitializeParams {
        admin: authority.pubkey(),
        guardians: vec![guardian.pubkey()],
        oracles: oracles.iter().map(|k| k.pubkey()).collect(),
        threshold: 2,
        genesis_ts: genesis,
        epoch_length_secs: EPOCH_SECS,
        challenge_period_secs: CHALLENGE_SECS,
        governance_delay_secs: EPOCH_SECS + CHALLENGE_SECS,
        emission: EmissionParams {
            initial_per_epoch: 1_000 * TOKEN,
            decay_bps: 5_000,
            decay_period_epochs: 30,
            floor_per_epoch: 10 * TOKEN,
            lifetime_cap: 50_000 * TOKEN,
        },
        rate_window_secs: EPOCH_SECS,
        rate_capacity: 2_000 * TOKEN,
        economics: EconomicsParams {
            price_max_age_secs: 3 * EPOCH_SECS,
            price_max_change_bps: 2_000,
            net_emissions_cap: 100 * TOKEN,
            burn_smoothing_epochs: 7,
            usage_cap_bps: 10_000,
        },
        // As the oracles below are configured (the price most of them use when `opts` gives
        // them different ones).
        consensus: ConsensusParams {
            credits_per_gib: 50_000,
            pair_cap_bytes: 100 << 30,
            max_rate_bytes_per_sec: 1 << 30,
            grace_secs: 5,
        },
    };
    net.send(
        &[ix::initialize(&d, &authority.pubkey(), params)],
        &authority,
        &[],
    )
    .await;

    // Three oracles, each with its own key and database, posting a price.
    let dir = tempfile::tempdir().unwrap();
    let mut running = vec![];
    for (i, k) in oracles.iter().enumerate() {
        let data = dir.path().join(format!("oracle-{i}"));
        let submits = opts.submitters;
        let settings = Settings {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: data.clone(),
            rpc_url: net.net.url(),
            config: d.config.to_string(),
            keypair: submits.then(|| write_keypair(dir.path(), &format!("oracle-{i}"), k)),
            price_credits_per_token: Some(100_000),
            close_poll_secs: 1,
            submit_poll_secs: 1,
            ..Settings::default()
        };
        let chain = Arc::new(RpcChain {
            rpc: Arc::new(RpcClient::new_with_commitment(
                net.net.url(),
                CommitmentConfig::confirmed(),
            )),
            addresses: Addresses {
                program_id: backhaul::ID,
                config: d.config,
            },
        });
        running.push(Oracle::start(settings, chain).await.expect("oracle starts"));
    }
    let urls: Vec<String> = running
        .iter()
        .map(|o| format!("http://{}", o.addr))
        .collect();
    if opts.submitters {
        wait_for("a posted price", 30, || async {
            net.account::<PriceFeed>(&d.price_feed())
                .await
                .filter(|f| f.credits_per_token == 100_000)
        })
        .await;
    } else {
        for o in oracles.iter().take(2) {
            net.send(&[ix::submit_price(&d, &o.pubkey(), 100_000)], o, &[])
                .await;
        }
    }

    // A buyer burns 100 tokens for 10,000,000 credits.
    let buyer = Keypair::new();
    net.fund(&buyer.pubkey()).await;
    let buyer_ata = d.ata(&buyer.pubkey());
    net.send(
        &[
            spl_associated_token_account_interface::instruction::create_associated_token_account(
                &treasury.pubkey(),
                &buyer.pubkey(),
                &mint.pubkey(),
                &spl_token_interface::ID,
            ),
            spl_token_interface::instruction::transfer(
                &spl_token_interface::ID,
                &treasury_ata,
                &buyer_ata,
                &treasury.pubkey(),
                &[],
                500 * TOKEN,
            )
            .unwrap(),
        ],
        &treasury,
        &[],
    )
    .await;
    net.send(
        &[ix::buy_credits(
            &d,
            &buyer.pubkey(),
            &buyer_ata,
            100 * TOKEN,
            10_000_000,
            buyer.pubkey(),
            0,
        )],
        &buyer,
        &[],
    )
    .await;

    // Two nodes serve one client of the buyer; everything goes to all three oracles.
    let proto = backhaul_protocol::Deployment {
        program_id: backhaul::ID.to_bytes(),
        config: d.config.to_bytes(),
    };
    let fanout = Fanout::from_urls(&urls, ClientConfig::default()).unwrap();
    let operators: Vec<Keypair> = (0..2).map(|_| Keypair::new()).collect();
    let nodes: Vec<NodeIdentity> = operators
        .iter()
        .map(|o| {
            NodeIdentity::new(
                proto,
                SigningKey::from_bytes(&rand::random()),
                o.pubkey().to_bytes(),
            )
        })
        .collect();
    let bindings: Vec<_> = nodes
        .iter()
        .zip(&operators)
        .map(|(n, o)| n.sign_binding(0, genesis, &signing_key(o)).unwrap())
        .collect();
    assert!(fanout.submit_bindings(&bindings).await.all_succeeded());
    let buyer_id = BuyerIdentity::new(proto, signing_key(&buyer));
    let client_key = SigningKey::from_bytes(&rand::random());
    let grant = buyer_id.grant(client_key.verifying_key().to_bytes(), 0, 1, i64::MAX, 0);
    assert!(fanout.submit_grants(&[grant]).await.all_succeeded());
    let mut receipts = vec![];
    for (i, node) in nodes.iter().enumerate() {
        let mut session = ClientSession::new(
            proto,
            client_key.clone(),
            buyer_id.key(),
            node.key(),
            0,
            genesis,
        );
        for _ in 0..=i {
            let (r, sig) = session
                .record_signed((i as u64 + 1) << 30, genesis + 60)
                .unwrap();
            receipts.push(node.countersign(&r, sig).unwrap());
        }
    }
    let report = fanout.submit_receipts(&receipts).await;
    assert!(report.all_succeeded());
    assert!(report.stored_by(receipts.len()).iter().all(|n| *n == 3));
    if let Some(i) = opts.dissenter {
        let mut session = ClientSession::new(
            proto,
            client_key.clone(),
            buyer_id.key(),
            nodes[0].key(),
            0,
            genesis + 1,
        );
        let (r, sig) = session.record_signed(1 << 29, genesis + 120).unwrap();
        let extra = nodes[0].countersign(&r, sig).unwrap();
        let resp = fanout.clients()[i].submit_receipts(&[extra]).await.unwrap();
        assert_eq!(resp.results.len(), 1);
    }

    World {
        net,
        d,
        mint,
        genesis,
        oracles,
        guardian,
        running,
        urls,
        buyer,
        operators,
        dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_oracles_reach_quorum_and_operators_and_buyers_settle() {
    let World {
        net,
        d,
        mint,
        genesis,
        running,
        urls,
        buyer,
        operators,
        // Keeps the oracles' data directories until the test ends.
        dir: _dir,
        ..
    } = world(Opts {
        submitters: true,
        dissenter: None,
    })
    .await;
    // The epoch ends; the oracles seal it, close it, vote, and two votes make quorum.
    net.warp_to(genesis + EPOCH_SECS as i64 + 1).await;
    let record = wait_for("quorum on epoch 0", 90, || async {
        net.account::<EpochRecord>(&d.epoch_record(0))
            .await
            .filter(|r| r.status == EpochStatus::Proposed && r.votes.len() >= 2)
    })
    .await;
    // Every oracle published the same dataset, and the quorum's root is its root.
    let mut hashes = vec![];
    for url in &urls {
        let c = OracleClient::new(url).unwrap();
        hashes.push(
            wait_for("a closed epoch", 30, || async {
                c.epochs()
                    .await
                    .ok()
                    .and_then(|e| e.first().map(|s| s.dataset_hash.clone()))
            })
            .await,
        );
    }
    assert!(
        hashes.windows(2).all(|w| w[0] == w[1]),
        "datasets differ: {hashes:?}"
    );
    assert_eq!(
        record.proposal.dataset_hash,
        hash_from_hex(&hashes[0]).unwrap()
    );

    // After the challenge period an oracle finalizes.
    net.warp_to(record.finalizable_at + 1).await;
    wait_for("finalization", 60, || async {
        net.account::<EpochRecord>(&d.epoch_record(0))
            .await
            .filter(|r| r.status == EpochStatus::Finalized)
    })
    .await;
    let allocation = record.proposal.allocation;
    // k = 1: what the 250,000 credits consumed cost the buyer (it paid 100 tokens for
    // 10,000,000), far below the schedule's 1,000 tokens plus net emissions.
    assert_eq!(allocation, 100 * TOKEN * 250_000 / 10_000_000);
    assert_eq!(record.proposal.usage_cost, allocation);
    assert_eq!(record.proposal.usage_cost_total, allocation);
    // Every oracle voted exactly once.
    let record: EpochRecord = net.account(&d.epoch_record(0)).await.unwrap();
    let mut voters: Vec<_> = record.votes.iter().map(|v| v.oracle).collect();
    voters.sort();
    voters.dedup();
    assert_eq!(voters.len(), record.votes.len());

    // Operators claim with the oracles' proofs; node 1 served twice the bytes of node 0.
    let api = OracleClient::new(&urls[0]).unwrap();
    let mut claimed = 0;
    for op in &operators {
        let p = api
            .operator_proof(&op.pubkey().to_bytes())
            .await
            .unwrap()
            .expect("a leaf");
        let proof = p.siblings().unwrap();
        net.fund(&op.pubkey()).await;
        let ata = d.ata(&op.pubkey());
        net.send(
            &[
                spl_associated_token_account_interface::instruction::create_associated_token_account_idempotent(&op.pubkey(), &op.pubkey(), &mint.pubkey(), &spl_token_interface::ID),
                ix::claim(&d, &op.pubkey(), p.epoch, &op.pubkey(), &ata, p.cumulative, p.index, &proof),
            ],
            op,
            &[],
        )
        .await;
        assert_eq!(net.token_balance(&ata).await, p.cumulative);
        claimed += p.cumulative;
    }
    let b0 = net.token_balance(&d.ata(&operators[0].pubkey())).await;
    let b1 = net.token_balance(&d.ata(&operators[1].pubkey())).await;
    assert_eq!(b0 + b1, allocation);
    assert!(
        b1 > b0 && b1.abs_diff(4 * b0) <= 4,
        "node 1 served 4 GiB, node 0 1 GiB: {b0} {b1}"
    );

    // The buyer's usage settles against its credits: 5 GiB at 50,000 credits per GiB.
    let p = api
        .buyer_proof(&buyer.pubkey().to_bytes())
        .await
        .unwrap()
        .expect("a usage leaf");
    assert_eq!(p.cumulative, 250_000);
    let proof = p.siblings().unwrap();
    net.send(
        &[ix::settle_usage(
            &d,
            &buyer.pubkey(),
            0,
            &buyer.pubkey(),
            p.cumulative,
            p.index,
            &proof,
        )],
        &buyer,
        &[],
    )
    .await;
    let credits: CreditAccount = net.account(&d.credits(&buyer.pubkey())).await.unwrap();
    assert_eq!(
        (credits.balance, credits.settled),
        (10_000_000 - 250_000, 250_000)
    );

    // Totals: supply = initial + minted − burned; vault = minted − claimed.
    let c: Config = net.account(&d.config).await.unwrap();
    assert_eq!(c.total_minted, allocation);
    assert_eq!(c.total_claimed, claimed);
    assert_eq!(
        net.supply(&mint.pubkey()).await,
        c.initial_supply + c.total_minted - c.total_burned
    );
    assert_eq!(
        net.token_balance(&d.vault()).await,
        c.total_minted - c.total_claimed
    );
    assert!(net.now().await > record.finalizable_at);

    for o in running {
        o.stop().await;
    }
}

/// A submitter for oracle `i` of `w`, driven by hand, sizing its transactions by simulation.
fn submitter(w: &World, i: usize, crash: Option<Crash>) -> Submitter {
    submitter_with_limit(w, i, crash, None)
}

/// A submitter for oracle `i` of `w` with a fixed compute-unit limit (or none: by simulation).
fn submitter_with_limit(
    w: &World,
    i: usize,
    crash: Option<Crash>,
    compute_unit_limit: Option<u32>,
) -> Submitter {
    let o = &w.running[i];
    Submitter {
        rpc: Arc::new(RpcClient::new_with_commitment(
            w.net.net.url(),
            CommitmentConfig::confirmed(),
        )),
        keypair: Arc::new(w.oracles[i].insecure_clone()),
        deployment: w.d,
        pool: o.closer.pool.clone(),
        closer: o.closer.clone(),
        time: o.time.clone(),
        params: SubmitParams {
            compute_unit_limit,
            max_priority_fee_micro_lamports: 1_000,
            backoff_after: 20,
            price: None,
            price_interval_secs: None,
        },
        crash,
    }
}

/// Ticks until `done` holds, for at most `secs` seconds.
async fn tick_until(
    s: &Submitter,
    w: &World,
    secs: u64,
    done: impl Fn(&EpochRecord) -> bool,
) -> EpochRecord {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let _ = s.tick().await;
        if let Some(r) = w.net.account::<EpochRecord>(&w.d.epoch_record(0)).await {
            if done(&r) {
                return r;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn votes_of(r: &EpochRecord, k: &Keypair) -> usize {
    r.votes.iter().filter(|v| v.oracle == k.pubkey()).count()
}

/// Ends epoch 0 by the chain's clock, seals its ledger through oracle 0's submitter and waits
/// until every oracle has closed it.
async fn close_epoch_0(w: &World) {
    w.net.warp_to(w.genesis + EPOCH_SECS as i64 + 1).await;
    let s0 = submitter(w, 0, None);
    wait_for("the sealed ledger", 30, || async {
        let _ = s0.tick().await;
        w.net
            .account::<backhaul::state::EpochLedger>(&w.d.ledger(0))
            .await
            .filter(|l| l.sealed)
    })
    .await;
    for o in &w.running {
        wait_for("a closed epoch", 30, || async {
            o.closer.latest().filter(|c| c.dataset.epoch == 0)
        })
        .await;
    }
}

/// Moves the chain's clock to `ts` and waits until oracle 0 follows it (about once a second).
async fn warp_and_follow(w: &World, ts: i64) {
    w.net.warp_to(ts).await;
    let time = w.running[0].time.clone();
    wait_for("the oracle to see the new time", 10, || async {
        (time.now() >= ts).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crashed_submitter_never_double_votes_nor_loses_its_vote() {
    let w = world(Opts {
        submitters: false,
        dissenter: None,
    })
    .await;
    close_epoch_0(&w).await;

    // Oracle 0 is killed after journaling its vote, before sending it.
    let crashed = submitter(&w, 0, Some(Crash::AfterJournal(Kind::Vote)));
    assert!(matches!(crashed.tick().await, Err(SubmitError::Crash(_))));
    let pending = crashed
        .entry(0, Kind::Vote, 0)
        .await
        .unwrap()
        .expect("journaled");
    assert_eq!(pending.status, "pending");
    assert!(
        w.net
            .account::<EpochRecord>(&w.d.epoch_record(0))
            .await
            .is_none(),
        "nothing was sent"
    );
    // On restart it rebroadcasts the journaled bytes: the same signature lands, once.
    let restarted = submitter(&w, 0, None);
    let r = tick_until(&restarted, &w, 30, |r| votes_of(r, &w.oracles[0]) == 1).await;
    assert_eq!(votes_of(&r, &w.oracles[0]), 1);
    let e = wait_for("the confirmed vote", 30, || async {
        let _ = restarted.tick().await;
        restarted
            .entry(0, Kind::Vote, 0)
            .await
            .unwrap()
            .filter(|e| e.status == "confirmed")
    })
    .await;
    assert_eq!(
        e.signature, pending.signature,
        "the same transaction, not a second one"
    );

    // Oracle 1 is killed after sending, before confirming; the restart finds it on-chain.
    let crashed = submitter(&w, 1, Some(Crash::AfterSend(Kind::Vote)));
    assert!(matches!(crashed.tick().await, Err(SubmitError::Crash(_))));
    let restarted = submitter(&w, 1, None);
    let r = tick_until(&restarted, &w, 30, |r| r.status == EpochStatus::Proposed).await;
    assert_eq!(
        (votes_of(&r, &w.oracles[0]), votes_of(&r, &w.oracles[1])),
        (1, 1)
    );

    // Oracle 2 journals a vote whose blockhash then expires without it ever being sent: on
    // restart the entry is retired and a fresh vote lands, once.
    let crashed = submitter(&w, 2, Some(Crash::AfterJournal(Kind::Vote)));
    assert!(matches!(crashed.tick().await, Err(SubmitError::Crash(_))));
    let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "backhaulExpireBlockhashes", "params": []});
    w.net
        .http
        .post(w.net.net.url())
        .json(&body)
        .send()
        .await
        .unwrap();
    let restarted = submitter(&w, 2, None);
    let r = tick_until(&restarted, &w, 30, |r| votes_of(r, &w.oracles[2]) == 1).await;
    assert_eq!(r.votes.len(), 3);
    let e = restarted.entry(0, Kind::Vote, 0).await.unwrap().unwrap();
    assert!(e.attempts >= 2, "the expired attempt was replaced: {e:?}");

    // Finalize: killed after journaling, then restarted; the epoch finalizes once.
    warp_and_follow(&w, r.finalizable_at + 1).await;
    let crashed = submitter(&w, 0, Some(Crash::AfterJournal(Kind::Finalize)));
    assert!(matches!(crashed.tick().await, Err(SubmitError::Crash(_))));
    let restarted = submitter(&w, 0, None);
    tick_until(&restarted, &w, 30, |r| r.status == EpochStatus::Finalized).await;
    let c: Config = w.net.account(&w.d.config).await.unwrap();
    assert_eq!(c.total_minted, r.proposal.allocation, "minted once");
    assert_eq!(c.next_epoch, 1);
}

/// A guardian vetoes the honest proposal at quorum. The oracles, which close deterministically,
/// hold the same proposal: they wait out its ban (one challenge period) without spending
/// attempts on votes the program would refuse, vote it again in the next round, and the epoch
/// finalizes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_a_veto_the_oracles_vote_again_once_the_ban_ends_and_the_epoch_finalizes() {
    let w = world(Opts {
        submitters: false,
        dissenter: None,
    })
    .await;
    close_epoch_0(&w).await;
    let (s0, s1) = (submitter(&w, 0, None), submitter(&w, 1, None));
    tick_until(&s0, &w, 30, |r| votes_of(r, &w.oracles[0]) == 1).await;
    let proposed = tick_until(&s1, &w, 30, |r| r.status == EpochStatus::Proposed).await;

    let veto = ix::veto(&w.d, &w.guardian.pubkey(), 0);
    w.net.send(&[veto], &w.guardian, &[]).await;
    let r: EpochRecord = w.net.account(&w.d.epoch_record(0)).await.unwrap();
    assert_eq!((r.status, r.vetoes), (EpochStatus::Vetoed, 1));
    assert_eq!(r.vetoed_digest, proposed.proposal_digest);
    // During the ban: nothing is sent and no attempt is journaled for the next round.
    for _ in 0..3 {
        for s in [&s0, &s1] {
            assert_eq!(s.tick().await.expect("tick"), vec![]);
        }
    }
    for s in [&s0, &s1] {
        assert!(s.entry(0, Kind::Vote, 1).await.unwrap().is_none());
    }
    assert_eq!(
        w.net
            .account::<EpochRecord>(&w.d.epoch_record(0))
            .await
            .unwrap()
            .status,
        EpochStatus::Vetoed
    );

    // Once it ends, both vote the same proposal in round 1 and it reaches quorum again.
    warp_and_follow(&w, r.banned_until).await;
    tick_until(&s0, &w, 30, |r| {
        r.round == 1 && votes_of(r, &w.oracles[0]) == 1
    })
    .await;
    let again = tick_until(&s1, &w, 30, |r| r.status == EpochStatus::Proposed).await;
    assert_eq!(
        (again.round, again.proposal_digest),
        (1, proposed.proposal_digest)
    );
    // Each vote of round 1 took one attempt: none was spent during the ban.
    for s in [&s0, &s1] {
        let e = wait_for("the confirmed vote of round 1", 30, || async {
            let _ = s.tick().await;
            s.entry(0, Kind::Vote, 1)
                .await
                .unwrap()
                .filter(|e| e.status == "confirmed")
        })
        .await;
        assert_eq!(e.attempts, 1, "{e:?}");
    }
    warp_and_follow(&w, again.finalizable_at).await;
    let done = tick_until(&s0, &w, 30, |r| r.status == EpochStatus::Finalized).await;
    assert_eq!(done.proposal, proposed.proposal);
    let c: Config = w.net.account(&w.d.config).await.unwrap();
    assert_eq!(c.total_minted, proposed.proposal.allocation);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quorum_forms_on_the_honest_root_and_dissent_is_reported() {
    // Oracle 2 holds a receipt the others never got (and, without peers, never fetch), so its
    // dataset and root differ.
    let w = world(Opts {
        submitters: true,
        dissenter: Some(2),
    })
    .await;
    w.net.warp_to(w.genesis + EPOCH_SECS as i64 + 1).await;
    let r = wait_for("all three votes", 90, || async {
        w.net
            .account::<EpochRecord>(&w.d.epoch_record(0))
            .await
            .filter(|r| r.status == EpochStatus::Proposed && r.votes.len() == 3)
    })
    .await;
    let honest = OracleClient::new(&w.urls[0])
        .unwrap()
        .epochs()
        .await
        .unwrap()[0]
        .clone();
    let dissent = OracleClient::new(&w.urls[2])
        .unwrap()
        .epochs()
        .await
        .unwrap()[0]
        .clone();
    // Its usage tree (and so its dataset) differs; the quorum holds the honest one.
    assert_ne!(honest.usage_root, dissent.usage_root);
    assert_ne!(honest.dataset_hash, dissent.dataset_hash);
    assert_eq!(
        hash_from_hex(&honest.dataset_hash).unwrap(),
        r.proposal.dataset_hash
    );
    assert_eq!(
        hash_from_hex(&honest.usage_root).unwrap(),
        r.proposal.usage_root
    );
    let digests: std::collections::HashSet<_> = r.votes.iter().map(|v| v.digest).collect();
    assert_eq!(digests.len(), 2, "the dissenting vote is on record");
    // The dissent is reported in the metrics (the oracles share this process's recorder) once a
    // submitter next looks at the chain and sees the votes differ.
    let count = wait_for("the dissent metric", 30, || async {
        let metrics = reqwest::get(format!("{}/metrics", w.urls[0]))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        let line = metrics
            .lines()
            .find(|l| l.starts_with("backhaul_submit_dissent_total"))?;
        let count: f64 = line.rsplit(' ').next()?.parse().ok()?;
        (count >= 1.0).then_some(count)
    })
    .await;
    assert!(count >= 1.0);
}

/// A journaled transaction as it landed: the compute-unit limit it set, whether it set a price,
/// and the units it consumed (`getTransaction`'s `meta.computeUnitsConsumed`).
async fn landed(w: &World, e: &Entry) -> (Option<u32>, bool, u64) {
    let tx: Transaction = bincode::deserialize(&e.tx).expect("the journaled transaction");
    assert_eq!(
        tx.signatures[0].to_string(),
        e.signature,
        "the journaled bytes"
    );
    let programs: Vec<(Pubkey, Vec<u8>)> = tx
        .message
        .instructions
        .iter()
        .map(|ix| {
            (
                tx.message.account_keys[usize::from(ix.program_id_index)],
                ix.data.clone(),
            )
        })
        .collect();
    let limit = programs
        .iter()
        .find_map(|(p, data)| compute::decode_compute_unit_limit(p, data));
    let priced = programs
        .iter()
        .filter(|(p, _)| *p == compute::COMPUTE_BUDGET_PROGRAM_ID)
        .count()
        > 1;
    let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "getTransaction", "params": [e.signature, {"encoding": "json", "commitment": "confirmed"}]});
    let v: serde_json::Value = w
        .net
        .http
        .post(w.net.net.url())
        .json(&body)
        .send()
        .await
        .expect("getTransaction")
        .json()
        .await
        .expect("json");
    let meta = &v["result"]["meta"];
    assert!(
        meta["err"].is_null(),
        "the transaction landed and succeeded: {v}"
    );
    let consumed = meta["computeUnitsConsumed"]
        .as_u64()
        .unwrap_or_else(|| panic!("no computeUnitsConsumed: {v}"));
    (limit, priced, consumed)
}

/// Ticks `s` until its journal entry for (epoch 0, `kind`, round 0) is confirmed.
async fn confirmed(s: &Submitter, kind: Kind) -> Entry {
    wait_for("a confirmed journal entry", 30, || async {
        let _ = s.tick().await;
        s.entry(0, kind, 0)
            .await
            .unwrap()
            .filter(|e| e.status == "confirmed")
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn submitted_transactions_ask_for_their_simulated_units_plus_the_margin() {
    let w = world(Opts {
        submitters: false,
        dissenter: None,
    })
    .await;
    w.net.warp_to(w.genesis + EPOCH_SECS as i64 + 1).await;
    // No recent fees on these accounts: no price instruction, so the transaction consumes
    // exactly the units its simulation did, and asks for them plus the margin.
    let by_simulation = |e: (Option<u32>, bool, u64)| {
        let (limit, priced, consumed) = e;
        assert!(!priced, "no priority fee here");
        assert_eq!(limit, Some(compute::limit_from_simulation(consumed)));
        // Far below the 200,000 units each transaction asked for before.
        assert!(limit < Some(100_000), "{limit:?} for {consumed} units");
    };
    let s0 = submitter(&w, 0, None);
    let seal = confirmed(&s0, Kind::Seal).await;
    by_simulation(landed(&w, &seal).await);
    for o in &w.running {
        wait_for("a closed epoch", 30, || async {
            o.closer.latest().filter(|c| c.dataset.epoch == 0)
        })
        .await;
    }
    let vote = confirmed(&s0, Kind::Vote).await;
    by_simulation(landed(&w, &vote).await);

    // A fixed limit in the settings is used as it is.
    let fixed = submitter_with_limit(&w, 1, None, Some(77_777));
    let vote = confirmed(&fixed, Kind::Vote).await;
    let (limit, _, consumed) = landed(&w, &vote).await;
    assert_eq!(limit, Some(77_777));
    assert_ne!(compute::limit_from_simulation(consumed), 77_777);

    // Oracle 2 finds the quorum formed; its vote still lands, sized by its simulation.
    let s2 = submitter(&w, 2, None);
    let vote = confirmed(&s2, Kind::Vote).await;
    by_simulation(landed(&w, &vote).await);
    let r: EpochRecord = w.net.account(&w.d.epoch_record(0)).await.unwrap();
    assert_eq!(r.votes.len(), 3);
}

/// The price slot of the tests below, seconds: the worlds start on a slot boundary (genesis is a
/// multiple of it), and epoch 0 spans two slots.
const PRICE_SLOT: u64 = 3_600;
/// A target ten times the quorum's price (100,000): the band of an oracle's previous submission
/// lets it step only part of the way at each submission.
const FAR_TARGET: u64 = 1_000_000;

/// A submitter for oracle `i` of `w` posting [`FAR_TARGET`] every [`PRICE_SLOT`] seconds.
fn price_submitter(w: &World, i: usize, crash: Option<Crash>) -> Submitter {
    let mut s = submitter(w, i, crash);
    s.params.price = Some(FAR_TARGET);
    s.params.price_interval_secs = Some(PRICE_SLOT);
    s
}

/// The price entries of `s`'s journal.
async fn price_entries(s: &Submitter) -> Vec<Entry> {
    s.entries()
        .await
        .expect("the journal")
        .into_iter()
        .filter(|e| e.kind == "price")
        .collect()
}

/// How many price transactions a tick sent.
fn prices_sent(sent: &[(Kind, u64)]) -> usize {
    sent.iter().filter(|(k, _)| *k == Kind::Price).count()
}

/// The price a journaled price entry submits.
fn entry_price(e: &Entry) -> u64 {
    u64::from_le_bytes(e.digest.clone().try_into().expect("an 8-byte price"))
}

/// The fee the transaction `signature` paid (`getTransaction`'s `meta.fee`).
async fn fee_of(w: &World, signature: &str) -> u64 {
    let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "getTransaction", "params": [signature, {"encoding": "json", "commitment": "confirmed"}]});
    let v: serde_json::Value = w
        .net
        .http
        .post(w.net.net.url())
        .json(&body)
        .send()
        .await
        .expect("getTransaction")
        .json()
        .await
        .expect("json");
    v["result"]["meta"]["fee"]
        .as_u64()
        .unwrap_or_else(|| panic!("no fee: {v}"))
}

/// Oracle `i`'s on-chain price submission.
async fn submission(w: &World, i: usize) -> Option<backhaul_core::price::TimedPrice> {
    w.net
        .account::<PriceFeed>(&w.d.price_feed())
        .await
        .expect("the price feed")
        .submission_of(&w.oracles[i].pubkey())
}

/// Ticks `s` `n` times, 300 ms apart; returns how many price transactions they sent.
async fn tick_prices(s: &Submitter, n: usize) -> usize {
    let mut sent = 0;
    for _ in 0..n {
        sent += prices_sent(&s.tick().await.expect("tick"));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    sent
}

/// Ticks `s` until its price entry of `slot` is confirmed; returns it and the price transactions
/// sent meanwhile.
async fn price_confirmed(s: &Submitter, slot: u64) -> (Entry, usize) {
    let mut sent = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        sent += prices_sent(&s.tick().await.expect("tick"));
        let confirmed = price_entries(s)
            .await
            .into_iter()
            .find(|e| e.round == slot && e.status == "confirmed");
        if let Some(e) = confirmed {
            return (e, sent);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for the confirmed price entry of slot {slot}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// With a target ten times the quorum's price every submission steps only to the edge of its
/// band, so each tick's stepped price differs from the last submission: the submitter used to post
/// at every tick. On the schedule it sends one price transaction per slot, however many ticks the
/// slot sees, and one more in the next slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn prices_are_posted_once_per_slot_however_far_the_target() {
    let w = world(Opts {
        submitters: false,
        dissenter: None,
    })
    .await;
    let slot = u64::try_from(w.genesis).unwrap() / PRICE_SLOT;
    assert_eq!(u64::try_from(w.genesis).unwrap() % PRICE_SLOT, 0);
    let oracle = w.oracles[0].pubkey();
    let balance = w.net.rpc.get_balance(&oracle).await.unwrap();
    let before = submission(&w, 0).await.expect("posted by hand");
    assert_eq!(before.credits_per_token, 100_000);

    // Half an hour in, the band allows 10% (2,000 bps per hour): one transaction, then nothing
    // for the rest of the slot, though the band keeps moving.
    warp_and_follow(&w, w.genesis + 1_800).await;
    let s = price_submitter(&w, 0, None);
    let mut sent = tick_prices(&s, 5).await;
    let (first, more) = price_confirmed(&s, slot).await;
    sent += more;
    warp_and_follow(&w, w.genesis + 3_000).await;
    sent += tick_prices(&s, 5).await;
    assert_eq!(sent, 1, "one price transaction in the slot");
    let entries = price_entries(&s).await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!((first.epoch, first.round, first.attempts), (0, slot, 1));
    let posted = entry_price(&first);
    assert!(posted > 100_000 && posted < FAR_TARGET, "stepped: {posted}");
    let mine = submission(&w, 0).await.unwrap();
    assert_eq!(mine.credits_per_token, posted);
    assert_eq!(u64::try_from(mine.at).unwrap() / PRICE_SLOT, slot);
    landed(&w, &first).await;
    // On-chain, exactly one transaction paid by this oracle.
    let fee = fee_of(&w, &first.signature).await;
    assert_eq!(w.net.rpc.get_balance(&oracle).await.unwrap(), balance - fee);

    // The next slot: one more, stepped further from this slot's submission.
    warp_and_follow(&w, w.genesis + PRICE_SLOT as i64 + 60).await;
    let mut sent = tick_prices(&s, 3).await;
    let (second, more) = price_confirmed(&s, slot + 1).await;
    sent += more + tick_prices(&s, 3).await;
    assert_eq!(sent, 1, "one price transaction in the next slot");
    assert_eq!(price_entries(&s).await.len(), 2);
    assert_eq!((second.round, second.attempts), (slot + 1, 1));
    assert!(entry_price(&second) > posted && entry_price(&second) < FAR_TARGET);
    let mine = submission(&w, 0).await.unwrap();
    assert_eq!(mine.credits_per_token, entry_price(&second));
    assert_eq!(u64::try_from(mine.at).unwrap() / PRICE_SLOT, slot + 1);
    let fee2 = fee_of(&w, &second.signature).await;
    assert_eq!(
        w.net.rpc.get_balance(&oracle).await.unwrap(),
        balance - fee - fee2
    );
}

/// Killed after journaling its price transaction, before sending it: the restarted submitter
/// sends the journaled transaction (the same signature), once, and no second one in the slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_price_journaled_before_a_crash_is_sent_once_after_the_restart() {
    let w = world(Opts {
        submitters: false,
        dissenter: None,
    })
    .await;
    let slot = u64::try_from(w.genesis).unwrap() / PRICE_SLOT;
    let oracle = w.oracles[0].pubkey();
    warp_and_follow(&w, w.genesis + 1_800).await;
    let before = submission(&w, 0).await.unwrap();
    let balance = w.net.rpc.get_balance(&oracle).await.unwrap();

    let crashed = price_submitter(&w, 0, Some(Crash::AfterJournal(Kind::Price)));
    assert!(matches!(
        crashed.tick().await,
        Err(SubmitError::Crash(Crash::AfterJournal(Kind::Price)))
    ));
    let journaled = price_entries(&crashed).await;
    assert_eq!(journaled.len(), 1, "{journaled:?}");
    let pending = journaled[0].clone();
    assert_eq!((pending.round, pending.status.as_str()), (slot, "pending"));
    assert_eq!(submission(&w, 0).await.unwrap(), before, "nothing was sent");

    let restarted = price_submitter(&w, 0, None);
    let (e, sent) = price_confirmed(&restarted, slot).await;
    let mut sent = sent + tick_prices(&restarted, 3).await;
    // Later in the slot the band has moved and the stepped price differs: still nothing.
    warp_and_follow(&w, w.genesis + 3_000).await;
    sent += tick_prices(&restarted, 3).await;
    assert_eq!(
        sent, 0,
        "the journaled transaction was rebroadcast, not rebuilt"
    );
    assert_eq!(
        e.signature, pending.signature,
        "the same transaction, not a second one"
    );
    assert_eq!(price_entries(&restarted).await.len(), 1);
    let mine = submission(&w, 0).await.unwrap();
    assert_eq!(mine.credits_per_token, entry_price(&pending));
    let fee = fee_of(&w, &e.signature).await;
    assert_eq!(
        w.net.rpc.get_balance(&oracle).await.unwrap(),
        balance - fee,
        "one transaction landed"
    );
}

/// A JSON-RPC proxy in front of the local endpoint that fails the next `fail` `sendTransaction`
/// requests in transport (502 Bad Gateway, as a proxy whose upstream is down answers) and passes
/// everything else through.
struct SendFailingProxy {
    url: String,
    failed: Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SendFailingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn send_failing_proxy(upstream: String, fail: usize) -> SendFailingProxy {
    use axum::http::{header, StatusCode};
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    let to_fail = Arc::new(AtomicUsize::new(fail));
    let failed = Arc::new(AtomicUsize::new(0));
    let http = reqwest::Client::new();
    let counted = failed.clone();
    let app = axum::Router::new().route(
        "/",
        axum::routing::post(move |body: axum::body::Bytes| {
            let (http, upstream) = (http.clone(), upstream.clone());
            let (to_fail, failed) = (to_fail.clone(), counted.clone());
            async move {
                let json = [(header::CONTENT_TYPE, "application/json")];
                let send = serde_json::from_slice::<serde_json::Value>(&body)
                    .is_ok_and(|v| v["method"] == "sendTransaction");
                if send
                    && to_fail
                        .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
                        .is_ok()
                {
                    failed.fetch_add(1, SeqCst);
                    return (StatusCode::BAD_GATEWAY, json, Vec::new());
                }
                let answer = http
                    .post(&upstream)
                    .header(header::CONTENT_TYPE.as_str(), "application/json")
                    .body(body)
                    .send()
                    .await;
                match answer {
                    Ok(r) => (
                        StatusCode::from_u16(r.status().as_u16())
                            .unwrap_or(StatusCode::BAD_GATEWAY),
                        json,
                        r.bytes().await.map(|b| b.to_vec()).unwrap_or_default(),
                    ),
                    Err(_) => (StatusCode::BAD_GATEWAY, json, Vec::new()),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    SendFailingProxy { url, failed, task }
}

/// The price is posted first in a tick; its send failing in transport does not hold up the
/// tick: the seal due in the same tick is still sent, the price transaction stays pending, and
/// the next ticks rebroadcast it (the same signature) instead of building another.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_price_send_failing_in_transport_does_not_hold_up_the_seal() {
    let w = world(Opts {
        submitters: false,
        dissenter: None,
    })
    .await;
    warp_and_follow(&w, w.genesis + EPOCH_SECS as i64 + 1).await;
    let slot = u64::try_from(w.genesis + EPOCH_SECS as i64 + 1).unwrap() / PRICE_SLOT;
    let proxy = send_failing_proxy(w.net.net.url(), 1).await;
    let mut s = price_submitter(&w, 0, None);
    s.rpc = Arc::new(RpcClient::new_with_commitment(
        proxy.url.clone(),
        CommitmentConfig::confirmed(),
    ));
    // The price goes first and fails in transport; the seal follows in the same tick.
    let sent = s.tick().await.expect("the tick goes on");
    assert_eq!(sent, vec![(Kind::Seal, 0)]);
    assert_eq!(proxy.failed.load(std::sync::atomic::Ordering::SeqCst), 1);
    let entries = price_entries(&s).await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    let pending = entries[0].clone();
    assert_eq!((pending.round, pending.status.as_str()), (slot, "pending"));
    assert_eq!(
        s.entry(0, Kind::Seal, 0).await.unwrap().unwrap().status,
        "pending"
    );
    // The reconcile rebroadcasts the price: it lands once, with the journaled signature.
    let (e, more) = price_confirmed(&s, slot).await;
    assert_eq!(more, 0);
    assert_eq!(e.signature, pending.signature);
    assert_eq!(price_entries(&s).await.len(), 1);
    assert_eq!(
        submission(&w, 0).await.unwrap().credits_per_token,
        entry_price(&pending)
    );
    wait_for("the sealed ledger", 30, || async {
        w.net
            .account::<backhaul::state::EpochLedger>(&w.d.ledger(0))
            .await
            .filter(|l| l.sealed)
    })
    .await;
}
