//! Test harness: an oracle on 127.0.0.1:0 with an in-memory chain, and keys that sign messages.

use backhaul::state::{Config, ConsensusParams, EpochLedger};
use backhaul_oracle::chain::{MemoryChain, MemoryState};
use backhaul_oracle::{Oracle, Settings};
use backhaul_protocol::api::{BatchResponse, ItemResult};
use backhaul_protocol::{
    ClientGrant, Deployment, NodeBinding, SignedBinding, SignedGrant, SignedReceipt, UsageReceipt,
};
use borsh::BorshSerialize;
use ed25519_dalek::SigningKey;
use solana_sdk::pubkey::Pubkey;
use std::sync::Arc;

pub const EPOCH_SECS: u64 = 100_000;
pub const GIB: u64 = 1 << 30;

pub fn now() -> i64 {
    backhaul_oracle::clock::now()
}

/// A recent `issued_at` for bindings (which expire `BINDING_LIFETIME_SECS` after it), the same
/// for every call within about eleven days.
pub fn recent() -> i64 {
    let n = now();
    n - n.rem_euclid(1_000_000)
}

/// Genesis such that the clock is early in epoch 1 (epoch 0 is over).
pub fn genesis() -> i64 {
    now() - EPOCH_SECS as i64 - 1_000
}

pub fn key(seed: u64) -> SigningKey {
    let mut b = [0u8; 32];
    b[..8].copy_from_slice(&seed.to_le_bytes());
    b[31] = 0x5a;
    SigningKey::from_bytes(&b)
}

pub fn pk(k: &SigningKey) -> [u8; 32] {
    k.verifying_key().to_bytes()
}

pub fn deployment() -> Deployment {
    Deployment {
        program_id: backhaul::ID.to_bytes(),
        config: [0xC0; 32],
    }
}

/// A config as the chain would hold it: epoch `next_epoch` is the next to finalize. Its consensus
/// parameters are those of [`settings`] (the grace period longer than the program allows, which
/// only an in-memory chain can hold: the background closer never closes an epoch on its own).
pub fn config(genesis: i64, next_epoch: u64) -> Config {
    let mut c = backhaul_oracle::chain::examples::example_config(genesis, EPOCH_SECS, next_epoch);
    c.consensus = ConsensusParams {
        credits_per_gib: 1_000,
        pair_cap_bytes: 50 * GIB,
        max_rate_bytes_per_sec: 100 << 20,
        grace_secs: 2 * EPOCH_SECS,
    };
    c
}

pub fn sealed_ledger(epoch: u64, burned: u64, price: u64) -> EpochLedger {
    backhaul_oracle::chain::examples::example_ledger(
        Pubkey::new_from_array(deployment().config),
        epoch,
        true,
        burned,
        price,
    )
}

/// A chain where epoch 0 is sealed and next to finalize.
pub fn chain(genesis: i64) -> Arc<MemoryChain> {
    let mut state = MemoryState {
        config: Some(config(genesis, 0)),
        ..Default::default()
    };
    state.ledgers.insert(0, sealed_ledger(0, 0, 100_000));
    Arc::new(MemoryChain::new(state))
}

/// Which database a test oracle uses.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite,
    Postgres(String),
}

/// The databases every storage test runs against. PostgreSQL is required when
/// `BACKHAUL_REQUIRE_POSTGRES` is set (CI), so it can never be skipped there unnoticed.
pub async fn databases() -> Vec<Db> {
    let mut dbs = vec![Db::Sqlite];
    match std::env::var("BACKHAUL_TEST_POSTGRES_URL") {
        Ok(url) => dbs.push(Db::Postgres(fresh_postgres(&url).await)),
        Err(_) if std::env::var_os("BACKHAUL_REQUIRE_POSTGRES").is_some() => {
            panic!("BACKHAUL_REQUIRE_POSTGRES is set but BACKHAUL_TEST_POSTGRES_URL is not")
        }
        Err(_) => eprintln!("note: PostgreSQL not configured (BACKHAUL_TEST_POSTGRES_URL); this run covers SQLite only"),
    }
    dbs
}

/// Creates a fresh database on the server at `admin_url` and returns its URL.
async fn fresh_postgres(admin_url: &str) -> String {
    use sqlx::Connection;
    // Random: the server may outlive this run and hold databases of earlier ones.
    let name = format!(
        "bh_{:016x}{:016x}",
        rand::random::<u64>(),
        rand::random::<u64>()
    );
    let mut conn = sqlx::PgConnection::connect(admin_url)
        .await
        .expect("connect to PostgreSQL");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create database");
    let base = admin_url
        .rsplit_once('/')
        .map(|(b, _)| b)
        .unwrap_or(admin_url);
    format!("{base}/{name}")
}

pub struct TestOracle {
    pub oracle: Option<Oracle>,
    pub url: String,
    pub dir: Arc<tempfile::TempDir>,
    pub chain: Arc<MemoryChain>,
    pub settings: Settings,
    pub http: reqwest::Client,
}

pub fn settings(dir: &std::path::Path, db: &Db) -> Settings {
    Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.to_path_buf(),
        database_url: match db {
            Db::Sqlite => None,
            Db::Postgres(url) => Some(url.clone()),
        },
        config: Pubkey::new_from_array(deployment().config).to_string(),
        // The background closer never closes an epoch on its own during a test; tests close by
        // hand with a clock ten epochs ahead (the grace period is on-chain, see `chain`).
        close_poll_secs: 3_600,
        per_key_items_per_sec: 100_000,
        ..Settings::default()
    }
}

impl TestOracle {
    pub async fn start(chain: Arc<MemoryChain>, db: &Db) -> Self {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let s = settings(dir.path(), db);
        Self::start_with(chain, dir, s).await
    }

    pub async fn start_with(
        chain: Arc<MemoryChain>,
        dir: Arc<tempfile::TempDir>,
        settings: Settings,
    ) -> Self {
        let oracle = Oracle::start(settings.clone(), chain.clone())
            .await
            .expect("oracle starts");
        let url = format!("http://{}", oracle.addr);
        TestOracle {
            oracle: Some(oracle),
            url,
            dir,
            chain,
            settings,
            http: reqwest::Client::new(),
        }
    }

    /// Starts again on the same data (after `crash` or `stop`).
    pub async fn restart(&mut self) {
        let mut s = self.settings.clone();
        s.listen = "127.0.0.1:0".parse().unwrap();
        let oracle = Oracle::start(s, self.chain.clone())
            .await
            .expect("oracle restarts");
        self.url = format!("http://{}", oracle.addr);
        self.oracle = Some(oracle);
    }

    /// Stops everything abruptly.
    pub fn crash(&mut self) {
        if let Some(o) = self.oracle.take() {
            o.abort();
        }
    }

    pub fn oracle(&self) -> &Oracle {
        self.oracle.as_ref().expect("running")
    }

    pub async fn post_raw(&self, path: &str, body: Vec<u8>, content_type: &str) -> (u16, String) {
        let resp = self
            .http
            .post(format!("{}{path}", self.url))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request");
        let code = resp.status().as_u16();
        (code, resp.text().await.unwrap_or_default())
    }

    pub async fn post<T: BorshSerialize + Clone>(
        &self,
        path: &str,
        items: &[T],
    ) -> Vec<ItemResult> {
        let (code, text) = self
            .post_raw(
                path,
                borsh::to_vec(&items.to_vec()).unwrap(),
                "application/octet-stream",
            )
            .await;
        assert_eq!(code, 200, "{path}: {text}");
        serde_json::from_str::<BatchResponse>(&text)
            .expect("batch response")
            .results
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let resp = self
            .http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .expect("request");
        let code = resp.status().as_u16();
        (code, resp.text().await.unwrap_or_default())
    }

    pub async fn close(
        &self,
        epoch: u64,
    ) -> Result<Arc<backhaul_oracle::close::ClosedEpoch>, backhaul_oracle::close::CloseFailure>
    {
        self.oracle()
            .closer
            .close(epoch, now() + 10 * EPOCH_SECS as i64)
            .await
    }
}

/// Keys of a small network: `n` nodes bound to operators, `m` clients granted by buyers.
pub struct World {
    pub nodes: Vec<SigningKey>,
    pub operators: Vec<SigningKey>,
    pub clients: Vec<SigningKey>,
    pub buyers: Vec<SigningKey>,
}

impl World {
    pub fn new(nodes: usize, clients: usize) -> Self {
        World {
            nodes: (0..nodes as u64).map(|i| key(1_000 + i)).collect(),
            operators: (0..nodes as u64).map(|i| key(2_000 + i)).collect(),
            clients: (0..clients as u64).map(|i| key(3_000 + i)).collect(),
            buyers: (0..clients as u64).map(|i| key(4_000 + i)).collect(),
        }
    }

    pub fn bindings(&self) -> Vec<SignedBinding> {
        self.nodes
            .iter()
            .zip(&self.operators)
            .map(|(n, o)| {
                NodeBinding {
                    node: pk(n),
                    operator: pk(o),
                    epoch: 0,
                    issued_at: recent(),
                }
                .sign(&deployment(), n, o)
            })
            .collect()
    }

    pub fn grants(&self) -> Vec<SignedGrant> {
        self.clients
            .iter()
            .zip(&self.buyers)
            .map(|(c, b)| {
                ClientGrant {
                    buyer: pk(b),
                    client: pk(c),
                    epoch: 0,
                    issued_at: 1,
                    expires_at: i64::MAX,
                    credit_limit: 0,
                }
                .sign(&deployment(), b)
            })
            .collect()
    }

    /// A receipt for session `s` between node `n` and client `c`.
    pub fn receipt(
        &self,
        epoch: u64,
        n: usize,
        c: usize,
        s: u8,
        sequence: u64,
        bytes: u64,
    ) -> SignedReceipt {
        UsageReceipt {
            epoch,
            session_id: [s; 16],
            node: pk(&self.nodes[n]),
            client: pk(&self.clients[c]),
            buyer: pk(&self.buyers[c]),
            sequence,
            cumulative_bytes: bytes,
            session_age_secs: 3_600,
        }
        .sign_both(&deployment(), &self.clients[c], &self.nodes[n])
    }

    /// Gives every buyer `credits` on the chain, bought in epoch 0 at [`BASE_UNITS_PER_CREDIT`].
    pub fn fund_buyers(&self, chain: &MemoryChain, credits: u64) {
        chain.update(|s| {
            for b in &self.buyers {
                s.credits.insert(pk(b), bought(credits));
            }
        });
    }
}

/// What a credit costs at the example price (100,000 credits per token of 6 decimals).
pub const BASE_UNITS_PER_CREDIT: u64 = 10;

/// A credit account holding `credits` bought in epoch 0 at [`BASE_UNITS_PER_CREDIT`].
pub fn bought(credits: u64) -> backhaul_close::BuyerCredits {
    backhaul_close::BuyerCredits {
        issued: credits,
        tokens_burned: credits * BASE_UNITS_PER_CREDIT,
        ..Default::default()
    }
}
