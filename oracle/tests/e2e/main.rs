//! End to end over the local JSON-RPC endpoint with the real `RpcClient`: initialize, buy credits,
//! three oracles (threshold two) fed by the client library, close, vote, challenge period,
//! finalize, claim, settle, and the totals.

use backhaul::instructions::InitializeParams;
use backhaul::state::{
    Config, CreditAccount, EconomicsParams, EmissionParams, EpochRecord, EpochStatus, PriceFeed,
};
use backhaul_client::{
    BuyerIdentity, ClientConfig, ClientSession, Fanout, NodeIdentity, OracleClient,
};
use backhaul_localnet::{Localnet, LocalnetConfig};
use backhaul_oracle::chain::{Addresses, RpcChain};
use backhaul_oracle::{Oracle, Settings};
use backhaul_protocol::dataset::hash_from_hex;
use backhaul_sdk::{ix, Deployment};
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
const EPOCH_SECS: u64 = 3_600;
const CHALLENGE_SECS: u64 = 600;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_oracles_reach_quorum_and_operators_and_buyers_settle() {
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
    net.send(
        &[
            solana_system_interface::instruction::create_account(
                &treasury.pubkey(),
                &mint.pubkey(),
                rent,
                space as u64,
                &spl_token_interface::ID,
            ),
            spl_token_interface::instruction::initialize_mint2(
                &spl_token_interface::ID,
                &mint.pubkey(),
                &treasury.pubkey(),
                None,
                DECIMALS,
            )
            .unwrap(),
            spl_associated_token_account_interface::instruction::create_associated_token_account(
                &treasury.pubkey(),
                &treasury.pubkey(),
                &mint.pubkey(),
                &spl_token_interface::ID,
            ),
            spl_token_interface::instruction::mint_to(
                &spl_token_interface::ID,
                &mint.pubkey(),
                &treasury_ata,
                &treasury.pubkey(),
                &[],
                1_000_000 * TOKEN,
            )
            .unwrap(),
            spl_token_interface::instruction::set_authority(
                &spl_token_interface::ID,
                &mint.pubkey(),
                Some(&d.config),
                spl_token_interface::instruction::AuthorityType::MintTokens,
                &treasury.pubkey(),
                &[],
            )
            .unwrap(),
        ],
        &treasury,
        &[&mint],
    )
    .await;

    // The deployment: three oracles, threshold two.
    let oracles: Vec<Keypair> = (0..3).map(|_| Keypair::new()).collect();
    for o in &oracles {
        net.fund(&o.pubkey()).await;
    }
    let genesis = start;
    let params = InitializeParams {
        admin: authority.pubkey(),
        guardian: Keypair::new().pubkey(),
        oracles: oracles.iter().map(|k| k.pubkey()).collect(),
        threshold: 2,
        genesis_ts: genesis,
        epoch_length_secs: EPOCH_SECS,
        challenge_period_secs: CHALLENGE_SECS,
        emission: EmissionParams {
            initial_per_epoch: 1_000 * TOKEN,
            decay_bps: 5_000,
            decay_period_epochs: 30,
            floor_per_epoch: 10 * TOKEN,
            lifetime_cap: 50_000 * TOKEN,
        },
        rate_window_secs: 86_400,
        rate_capacity: 2_000 * TOKEN,
        economics: EconomicsParams {
            price_max_age_secs: 3 * EPOCH_SECS,
            price_max_change_bps: 2_000,
            net_emissions_cap: 100 * TOKEN,
            burn_smoothing_epochs: 7,
            usage_cap_bps: 0,
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
        let settings = Settings {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: data.clone(),
            rpc_url: net.net.url(),
            config: d.config.to_string(),
            keypair: Some(write_keypair(dir.path(), &format!("oracle-{i}"), k)),
            price_credits_per_token: Some(100_000),
            credits_per_gib: 50_000,
            grace_secs: 5,
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
    wait_for("a posted price", 30, || async {
        net.account::<PriceFeed>(&d.price_feed())
            .await
            .filter(|f| f.credits_per_token == 100_000)
    })
    .await;

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
        .map(|(n, o)| n.sign_binding(0, 1, &signing_key(o)).unwrap())
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
    // The schedule's 1,000 tokens plus net emissions: a seventh of the 100 tokens burned.
    assert_eq!(allocation, 1_000 * TOKEN + 100 * TOKEN / 7);
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
        let proof = p.proof.iter().map(|h| hash_from_hex(h).unwrap()).collect();
        net.fund(&op.pubkey()).await;
        let ata = d.ata(&op.pubkey());
        net.send(
            &[
                spl_associated_token_account_interface::instruction::create_associated_token_account_idempotent(&op.pubkey(), &op.pubkey(), &mint.pubkey(), &spl_token_interface::ID),
                ix::claim(&d, &op.pubkey(), p.epoch, &op.pubkey(), &ata, p.cumulative, proof),
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
    let proof = p.proof.iter().map(|h| hash_from_hex(h).unwrap()).collect();
    net.send(
        &[ix::settle_usage(
            &d,
            &buyer.pubkey(),
            0,
            &buyer.pubkey(),
            p.cumulative,
            proof,
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
