//! The pieces every fault test uses: a deployment on the local JSON-RPC endpoint, oracle processes
//! started from the real binary (and killed with SIGKILL), signed traffic, a feeder that records
//! every receipt an oracle acknowledged, and checks against the oracles' databases.

use backhaul::instructions::InitializeParams;
use backhaul::state::{ConsensusParams, EconomicsParams, EmissionParams, EpochRecord};
use backhaul_localnet::{Localnet, LocalnetConfig};
use backhaul_oracle::Settings;
use backhaul_protocol::api::{BatchResponse, ItemStatus, RejectReason};
use backhaul_protocol::{ClientGrant, Key, NodeBinding, SignedReceipt, UsageReceipt};
use backhaul_sdk::{ix, Deployment};
use ed25519_dalek::SigningKey;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use solana_client::nonblocking::rpc_client::RpcClient;
use solana_commitment_config::CommitmentConfig;
use solana_sdk::instruction::Instruction;
use solana_sdk::program_pack::Pack;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};
use solana_sdk::transaction::Transaction;
use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const DECIMALS: u8 = 6;
pub const TOKEN: u64 = 1_000_000;
pub const EPOCH_SECS: u64 = 7_200;
pub const CHALLENGE_SECS: u64 = 3_600;
pub const GRACE_SECS: u64 = 5;
/// Credits the oracles' price gives per whole token.
pub const PRICE: u64 = 100_000;

/// Polls `f` every 50 ms until it returns `Some`, for at most `secs` seconds.
pub async fn wait_for<T, F, Fut>(what: &str, secs: u64, mut f: F) -> T
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
            "timed out after {secs} s waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The seed of a test's random choices: `BACKHAUL_FAULT_SEED`, or a fresh one (printed, so that a
/// failing run can be repeated).
pub fn seed(test: &str) -> u64 {
    let seed = std::env::var("BACKHAUL_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("{test}: seed {seed} (BACKHAUL_FAULT_SEED={seed} repeats this run)");
    seed
}

pub fn signing_key(k: &Keypair) -> SigningKey {
    SigningKey::from_bytes(&k.secret_bytes()[..32].try_into().expect("32 bytes"))
}

/// A free loopback port (bound, then released) for a process that restarts on the same address.
pub fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

/// A deployment on a fresh local endpoint: `n` oracles with threshold `threshold`, a price posted,
/// a buyer with credits.
pub struct Chain {
    pub net: Localnet,
    pub rpc: RpcClient,
    pub http: reqwest::Client,
    pub d: Deployment,
    pub proto: backhaul_protocol::Deployment,
    pub genesis: i64,
    pub oracles: Vec<Keypair>,
    pub buyer: Keypair,
    /// The deployment's one guardian.
    pub guardian: Keypair,
}

/// The chain's clock when a test starts (it follows the wall clock from there).
pub const CHAIN_START: i64 = 1_800_000_000;

impl Chain {
    pub async fn start(n: usize, threshold: u8) -> Chain {
        let start = CHAIN_START;
        let net = Localnet::start(LocalnetConfig {
            unix_timestamp: Some(start),
            follow_wall_clock: true,
            ..Default::default()
        })
        .expect("the local endpoint starts");
        let rpc = RpcClient::new_with_commitment(net.url(), CommitmentConfig::confirmed());
        let mint = Keypair::new();
        let d = Deployment::new(mint.pubkey());
        let oracles: Vec<Keypair> = (0..n).map(|_| Keypair::new()).collect();
        let chain = Chain {
            net,
            rpc,
            http: reqwest::Client::new(),
            d,
            proto: backhaul_protocol::Deployment {
                program_id: backhaul::ID.to_bytes(),
                config: d.config.to_bytes(),
            },
            genesis: start,
            oracles,
            buyer: Keypair::new(),
            guardian: Keypair::new(),
        };
        chain.deploy(&mint, threshold).await;
        chain
    }

    async fn deploy(&self, mint: &Keypair, threshold: u8) {
        let d = &self.d;
        let treasury = Keypair::new();
        self.fund(&treasury.pubkey()).await;
        let space = spl_token_interface::state::Mint::LEN;
        let rent = self
            .rpc
            .get_minimum_balance_for_rent_exemption(space)
            .await
            .expect("rent");
        let treasury_ata = d.ata(&treasury.pubkey());
        let create = ix::create_mint(
            d,
            &treasury.pubkey(),
            rent,
            DECIMALS,
            Some((&treasury.pubkey(), 1_000_000 * TOKEN)),
        )
        .expect("ix");
        self.send(&create, &treasury, &[mint]).await;
        for o in &self.oracles {
            self.fund(&o.pubkey()).await;
        }
        let authority = self.net.faucet().insecure_clone();
        // Generous caps: a long fault loop finalizes many epochs and must never be stopped by
        // the emission schedule or the mint rate limiter.
        let params = InitializeParams {
            admin: authority.pubkey(),
            guardians: vec![self.guardian.pubkey()],
            oracles: self.oracles.iter().map(|k| k.pubkey()).collect(),
            threshold,
            genesis_ts: self.genesis,
            epoch_length_secs: EPOCH_SECS,
            challenge_period_secs: CHALLENGE_SECS,
            governance_delay_secs: EPOCH_SECS + CHALLENGE_SECS,
            emission: EmissionParams {
                initial_per_epoch: 1_000 * TOKEN,
                decay_bps: 100,
                decay_period_epochs: 1_000,
                floor_per_epoch: 10 * TOKEN,
                lifetime_cap: 100_000_000 * TOKEN,
            },
            rate_window_secs: 86_400,
            rate_capacity: 1_000_000 * TOKEN,
            economics: EconomicsParams {
                price_max_age_secs: 7 * 86_400,
                price_max_change_bps: 2_000,
                net_emissions_cap: 100 * TOKEN,
                burn_smoothing_epochs: 7,
                usage_cap_bps: 10_000,
            },
            // As the oracles are configured (`settings`): their defaults, with GRACE_SECS.
            consensus: ConsensusParams {
                credits_per_gib: 50_000,
                pair_cap_bytes: 100 << 30,
                max_rate_bytes_per_sec: 1 << 30,
                grace_secs: GRACE_SECS,
            },
        };
        self.send(
            &[ix::initialize(d, &authority.pubkey(), params)],
            &authority,
            &[],
        )
        .await;
        for o in &self.oracles {
            self.send(&[ix::submit_price(d, &o.pubkey(), PRICE)], o, &[])
                .await;
        }
        // The buyer burns 100 tokens for 10,000,000 credits.
        let buyer = &self.buyer;
        self.fund(&buyer.pubkey()).await;
        let buyer_ata = d.ata(&buyer.pubkey());
        self.send(
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
                .expect("ix"),
            ],
            &treasury,
            &[],
        )
        .await;
        self.send(
            &[ix::buy_credits(
                d,
                &buyer.pubkey(),
                &buyer_ata,
                100 * TOKEN,
                10_000_000,
                buyer.pubkey(),
                0,
            )],
            buyer,
            &[],
        )
        .await;
    }

    pub async fn send(&self, ixs: &[Instruction], payer: &Keypair, signers: &[&Keypair]) {
        let blockhash = self.rpc.get_latest_blockhash().await.expect("blockhash");
        let mut keys: Vec<&Keypair> = vec![payer];
        keys.extend_from_slice(signers);
        let tx = Transaction::new_signed_with_payer(ixs, Some(&payer.pubkey()), &keys, blockhash);
        self.rpc
            .send_and_confirm_transaction(&tx)
            .await
            .expect("the transaction lands");
    }

    pub async fn fund(&self, to: &Pubkey) {
        let ix = solana_system_interface::instruction::transfer(
            &self.net.faucet().pubkey(),
            to,
            10_000_000_000,
        );
        self.send(&[ix], self.net.faucet(), &[]).await;
    }

    pub async fn account<T: anchor_lang::AccountDeserialize>(&self, key: &Pubkey) -> Option<T> {
        let acc = self
            .rpc
            .get_account_with_commitment(key, CommitmentConfig::confirmed())
            .await
            .ok()?
            .value?;
        T::try_deserialize(&mut &acc.data[..]).ok()
    }

    pub async fn record(&self, epoch: u64) -> Option<EpochRecord> {
        self.account(&self.d.epoch_record(epoch)).await
    }

    /// The end of `epoch` by the chain's clock.
    pub fn epoch_end(&self, epoch: u64) -> i64 {
        self.genesis + ((epoch + 1) * EPOCH_SECS) as i64
    }

    /// Moves the chain's clock to `ts` with the endpoint's extra method.
    pub async fn warp_to(&self, ts: i64) {
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

/// The API base URLs of every address but `me`'s: an oracle's peers.
pub fn peers_of(addrs: &[SocketAddr], me: usize) -> Vec<String> {
    addrs
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != me)
        .map(|(_, a)| format!("http://{a}"))
        .collect()
}

/// Settings of an oracle under test (the keypair, when given, enables its submitter).
pub fn oracle_settings(
    chain: &Chain,
    rpc_url: &str,
    data_dir: &Path,
    addr: SocketAddr,
    keypair: Option<PathBuf>,
) -> Settings {
    Settings {
        listen: addr,
        data_dir: data_dir.to_path_buf(),
        rpc_url: rpc_url.to_string(),
        config: chain.d.config.to_string(),
        keypair,
        price_credits_per_token: Some(PRICE),
        sync_wait_secs: 3,
        close_poll_secs: 1,
        submit_poll_secs: 1,
        per_key_items_per_sec: 1_000_000,
        ..Settings::default()
    }
}

pub fn write_keypair(dir: &Path, name: &str, k: &Keypair) -> PathBuf {
    let path = dir.join(format!("{name}.json"));
    std::fs::write(
        &path,
        serde_json::to_string(&k.to_bytes().to_vec()).expect("json"),
    )
    .expect("write the keypair");
    path
}

/// Every line an oracle process printed, across restarts.
#[derive(Default)]
pub struct Log {
    lines: Mutex<Vec<String>>,
}

impl Log {
    pub fn len(&self) -> usize {
        self.lines.lock().map(|l| l.len()).unwrap_or(0)
    }

    /// The first line at or after `from` that satisfies `pred`.
    pub fn find(&self, from: usize, pred: impl Fn(&str) -> bool) -> Option<String> {
        let lines = self.lines.lock().ok()?;
        lines.iter().skip(from).find(|l| pred(l)).cloned()
    }

    pub fn lines_from(&self, from: usize) -> Vec<String> {
        self.lines
            .lock()
            .map(|l| l.iter().skip(from).cloned().collect())
            .unwrap_or_default()
    }

    pub fn count(&self, pred: impl Fn(&str) -> bool) -> usize {
        self.lines
            .lock()
            .map(|l| l.iter().filter(|l| pred(l)).count())
            .unwrap_or(0)
    }

    pub fn tail(&self, n: usize) -> String {
        self.lines
            .lock()
            .map(|l| l[l.len().saturating_sub(n)..].join("\n"))
            .unwrap_or_default()
    }

    fn push(&self, line: String) {
        if let Ok(mut l) = self.lines.lock() {
            l.push(line);
        }
    }
}

/// Strips terminal color codes, should any be printed.
fn plain(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// An oracle run from the real binary with its settings file, on a fixed address and data
/// directory, so that it can be killed and started again on the same state.
pub struct OracleProc {
    pub name: String,
    pub settings_path: PathBuf,
    pub data_dir: PathBuf,
    pub url: String,
    pub database_url: Option<String>,
    pub log: Arc<Log>,
    pub log_path: PathBuf,
    pub starts: u32,
    /// Extra environment variables of the process.
    pub env: Vec<(String, String)>,
    child: Option<Child>,
}

impl OracleProc {
    /// Writes the settings file (`database_url` is passed by flag: settings never print it).
    pub fn new(
        dir: &Path,
        name: &str,
        settings: &Settings,
        database_url: Option<String>,
    ) -> OracleProc {
        let settings_path = dir.join(format!("{name}.toml"));
        std::fs::write(
            &settings_path,
            toml::to_string(settings).expect("settings serialize"),
        )
        .expect("write the settings file");
        OracleProc {
            name: name.to_string(),
            settings_path,
            data_dir: settings.data_dir.clone(),
            url: format!("http://{}", settings.listen),
            database_url,
            log: Arc::default(),
            log_path: dir.join(format!("{name}.log")),
            starts: 0,
            env: vec![],
            child: None,
        }
    }

    /// Starts the process and waits until its HTTP server answers.
    pub async fn start(&mut self) {
        assert!(self.child.is_none(), "{} is already running", self.name);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_backhaul-oracle"));
        cmd.arg("--settings").arg(&self.settings_path);
        if let Some(url) = &self.database_url {
            cmd.arg("--database-url").arg(url);
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd.arg("serve")
            .env("RUST_LOG", "info,sqlx=warn")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("the oracle binary starts");
        self.starts += 1;
        let marker = format!("--- {} start {} ---", self.name, self.starts);
        self.log.push(marker.clone());
        let file = Arc::new(Mutex::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.log_path)
                .expect("the log file opens"),
        ));
        if let Ok(mut f) = file.lock() {
            let _ = writeln!(f, "{marker}");
        }
        let out: Box<dyn std::io::Read + Send> = Box::new(child.stdout.take().expect("stdout"));
        let err: Box<dyn std::io::Read + Send> = Box::new(child.stderr.take().expect("stderr"));
        for stream in [out, err] {
            let log = self.log.clone();
            let file = file.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    let line = plain(&line);
                    if let Ok(mut f) = file.lock() {
                        let _ = writeln!(f, "{line}");
                    }
                    log.push(line);
                }
            });
        }
        self.child = Some(child);
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("http client");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if http
                .get(format!("{}/health", self.url))
                .send()
                .await
                .is_ok()
            {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                panic!(
                    "{} exited during startup ({status}):\n{}",
                    self.name,
                    self.log.tail(40)
                );
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} did not answer within 60 s:\n{}",
                self.name,
                self.log.tail(40)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends SIGKILL and reaps the process; panics if it had already died on its own.
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("a running oracle to kill");
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{} had exited on its own before the kill ({status}):\n{}",
                self.name,
                self.log.tail(40)
            );
        }
        child.kill().expect("SIGKILL");
        let status = child.wait().expect("reap");
        assert_eq!(
            status.signal(),
            Some(9),
            "{} ended by SIGKILL: {status}",
            self.name
        );
    }
}

impl Drop for OracleProc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Nodes, their operators, clients and one buyer, with the bindings and grants that make their
/// sessions count.
pub struct Traffic {
    pub proto: backhaul_protocol::Deployment,
    pub nodes: Vec<SigningKey>,
    pub operators: Vec<SigningKey>,
    pub clients: Vec<SigningKey>,
    pub buyer: SigningKey,
}

impl Traffic {
    pub fn new(chain: &Chain, rng: &mut StdRng, nodes: usize, clients: usize) -> Traffic {
        let mut key = || SigningKey::from_bytes(&rng.gen());
        Traffic {
            proto: chain.proto,
            nodes: (0..nodes).map(|_| key()).collect(),
            operators: (0..nodes).map(|_| key()).collect(),
            clients: (0..clients).map(|_| key()).collect(),
            buyer: signing_key(&chain.buyer),
        }
    }

    /// Posts every binding and grant to `url` until it has them all.
    pub async fn register(&self, url: &str) {
        let bindings: Vec<_> = self
            .nodes
            .iter()
            .zip(&self.operators)
            .map(|(n, o)| {
                NodeBinding {
                    node: n.verifying_key().to_bytes(),
                    operator: o.verifying_key().to_bytes(),
                    epoch: 0,
                    // Bindings last `BINDING_LIFETIME_SECS` from when they were signed.
                    issued_at: CHAIN_START,
                }
                .sign(&self.proto, n, o)
            })
            .collect();
        let grants: Vec<_> = self
            .clients
            .iter()
            .map(|c| {
                ClientGrant {
                    buyer: self.buyer.verifying_key().to_bytes(),
                    client: c.verifying_key().to_bytes(),
                    epoch: 0,
                    issued_at: 1,
                    expires_at: i64::MAX,
                    credit_limit: 0,
                }
                .sign(&self.proto, &self.buyer)
            })
            .collect();
        let http = reqwest::Client::new();
        for (path, body) in [
            ("/v1/bindings", borsh::to_vec(&bindings).expect("borsh")),
            ("/v1/grants", borsh::to_vec(&grants).expect("borsh")),
        ] {
            let resp = post(&http, &format!("{url}{path}"), body).await;
            let Ok((200, BatchBody::Results(results))) = &resp else {
                panic!("{url}{path}: {resp:?}");
            };
            assert!(
                results
                    .iter()
                    .all(|r| matches!(r.status, ItemStatus::Accepted | ItemStatus::Duplicate)),
                "{path}: {results:?}"
            );
        }
    }

    /// A signed receipt.
    pub fn receipt(&self, s: &Session) -> SignedReceipt {
        UsageReceipt {
            epoch: s.epoch,
            session_id: s.session_id,
            node: self.nodes[s.node].verifying_key().to_bytes(),
            client: self.clients[s.client].verifying_key().to_bytes(),
            buyer: self.buyer.verifying_key().to_bytes(),
            sequence: s.sequence,
            cumulative_bytes: s.bytes,
            session_age_secs: 3_600,
        }
        .sign_both(&self.proto, &self.clients[s.client], &self.nodes[s.node])
    }
}

/// A session as last sent.
#[derive(Clone, Debug)]
pub struct Session {
    pub epoch: u64,
    pub node: usize,
    pub client: usize,
    pub session_id: [u8; 16],
    pub sequence: u64,
    pub bytes: u64,
}

/// What an ingest request came back with.
#[derive(Debug)]
pub enum BatchBody {
    Results(Vec<backhaul_protocol::api::ItemResult>),
    Error(String),
}

/// Posts a borsh body; `Err` when no HTTP answer came (refused, reset, timeout).
pub async fn post(
    http: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
) -> Result<(u16, BatchBody), String> {
    let resp = http
        .post(url)
        .header("content-type", "application/octet-stream")
        .body(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let code = resp.status().as_u16();
    let text = resp.text().await.map_err(|e| e.to_string())?;
    if code == 200 {
        let r: BatchResponse = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
        Ok((code, BatchBody::Results(r.results)))
    } else {
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| format!("{code} without a JSON body: {e}: {text}"))?;
        let msg = v
            .get("error")
            .and_then(|e| e.as_str())
            .ok_or_else(|| format!("{code} without an error field: {text}"))?;
        Ok((code, BatchBody::Error(msg.to_string())))
    }
}

/// One receipt sent, as the feeder remembers it.
#[derive(Clone, Copy, Debug)]
pub struct Sent {
    pub epoch: u64,
    pub client: Key,
    pub session_id: [u8; 16],
    pub sequence: u64,
}

/// A batch, the same bytes for every oracle.
pub struct Batch {
    pub body: Vec<u8>,
    pub hashes: Vec<[u8; 32]>,
    /// Per oracle: whether this batch is lost on the way to it (never all of them).
    pub dropped: Vec<bool>,
}

#[derive(Default)]
struct FeedState {
    /// The epoch batches are generated for, if any.
    feeding: Option<u64>,
    batches: Vec<Arc<Batch>>,
    sent: HashMap<[u8; 32], Sent>,
    /// Per oracle: receipts answered accepted or duplicate.
    acked: Vec<HashMap<[u8; 32], ItemStatus>>,
    /// Per oracle: batches fully answered.
    cursors: Vec<usize>,
    /// Per oracle: requests that got no answer or an error, by kind.
    failures: Vec<HashMap<String, u64>>,
    /// Answers no correct oracle gives for this traffic.
    unexpected: Vec<String>,
    sessions: Vec<Session>,
    /// Per oracle: receipts lost on the way to it.
    lost: Vec<u64>,
}

/// Keeps submitting signed receipts to every oracle, the same batches in the same order, and
/// retries each until that oracle answers it; records every receipt each oracle acknowledged.
pub struct Feeder {
    state: Arc<Mutex<FeedState>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// How fast a feeder sends: per batch, new sessions and updates to earlier ones (a higher
/// sequence replaces), one batch every `every`. Receipts are signed twice each in the test
/// process (a debug build), so the rate is kept modest. Each batch is lost on the way to each
/// oracle with probability `loss` (a node that gave up on that oracle), but always reaches one.
#[derive(Clone, Copy, Debug)]
pub struct Rate {
    pub new: usize,
    pub updates: usize,
    pub every: Duration,
    pub loss: f64,
}
/// Batches generated ahead of the slowest oracle, at most (an oracle that is down holds the
/// generator back rather than growing the backlog without bound).
const MAX_BACKLOG: usize = 30;

impl Feeder {
    pub fn start(traffic: Arc<Traffic>, urls: Vec<String>, seed: u64, rate: Rate) -> Feeder {
        let n = urls.len();
        let state = Arc::new(Mutex::new(FeedState {
            acked: vec![HashMap::new(); n],
            cursors: vec![0; n],
            failures: vec![HashMap::new(); n],
            lost: vec![0; n],
            ..Default::default()
        }));
        let mut tasks = vec![];
        {
            let state = state.clone();
            tasks.push(tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(seed);
                loop {
                    tokio::time::sleep(rate.every).await;
                    let Ok(mut s) = state.lock() else { return };
                    let Some(epoch) = s.feeding else { continue };
                    let slowest = s.cursors.iter().copied().min().unwrap_or(0);
                    if s.batches.len() - slowest >= MAX_BACKLOG {
                        continue;
                    }
                    let batch = generate(&traffic, &mut s, &mut rng, epoch, rate);
                    s.batches.push(Arc::new(batch));
                }
            }));
        }
        for (i, url) in urls.into_iter().enumerate() {
            let state = state.clone();
            tasks.push(tokio::spawn(async move {
                let http = reqwest::Client::builder()
                    .timeout(Duration::from_secs(30))
                    .connect_timeout(Duration::from_secs(2))
                    .build()
                    .expect("http client");
                let url = format!("{url}/v1/receipts");
                loop {
                    let next = state
                        .lock()
                        .ok()
                        .and_then(|s| s.batches.get(s.cursors[i]).cloned());
                    let Some(batch) = next else {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    };
                    if batch.dropped[i] {
                        let Ok(mut s) = state.lock() else { return };
                        s.lost[i] += batch.hashes.len() as u64;
                        s.cursors[i] += 1;
                        continue;
                    }
                    let answer = post(&http, &url, batch.body.clone()).await;
                    let retry = match state.lock() {
                        Ok(mut s) => record(&mut s, i, &batch, answer),
                        Err(_) => return,
                    };
                    if retry {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }));
        }
        Feeder { state, tasks }
    }

    /// Starts generating batches for `epoch` (`None`: stops generating).
    pub fn feed(&self, epoch: Option<u64>) {
        if let Ok(mut s) = self.state.lock() {
            s.feeding = epoch;
        }
    }

    /// Stops generating and waits until every oracle answered every batch.
    pub async fn drain(&self, secs: u64) {
        self.feed(None);
        wait_for("every oracle to answer every batch", secs, || async {
            let s = self.state.lock().ok()?;
            s.cursors
                .iter()
                .all(|c| *c == s.batches.len())
                .then_some(())
        })
        .await;
    }

    /// Every receipt sent so far.
    pub fn sent(&self) -> HashMap<[u8; 32], Sent> {
        self.state
            .lock()
            .map(|s| s.sent.clone())
            .unwrap_or_default()
    }

    /// Per oracle, the receipts it acknowledged.
    pub fn acked(&self) -> Vec<HashMap<[u8; 32], ItemStatus>> {
        self.state
            .lock()
            .map(|s| s.acked.clone())
            .unwrap_or_default()
    }

    /// Per oracle, the requests that failed, by what came back.
    pub fn failures(&self) -> Vec<HashMap<String, u64>> {
        self.state
            .lock()
            .map(|s| s.failures.clone())
            .unwrap_or_default()
    }

    pub fn unexpected(&self) -> Vec<String> {
        self.state
            .lock()
            .map(|s| s.unexpected.clone())
            .unwrap_or_default()
    }

    /// Per oracle: the receipts lost on the way to it.
    pub fn lost(&self) -> Vec<u64> {
        self.state
            .lock()
            .map(|s| s.lost.clone())
            .unwrap_or_default()
    }

    /// Per epoch: the sessions sent (at their last sequence).
    pub fn sessions(&self) -> Vec<Session> {
        self.state
            .lock()
            .map(|s| s.sessions.clone())
            .unwrap_or_default()
    }
}

impl Drop for Feeder {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Records an oracle's answer to a batch; returns whether the same batch is to be sent again.
fn record(
    s: &mut FeedState,
    i: usize,
    batch: &Arc<Batch>,
    answer: Result<(u16, BatchBody), String>,
) -> bool {
    match answer {
        Ok((200, BatchBody::Results(results))) => {
            let mut done = true;
            for (h, r) in batch.hashes.iter().zip(&results) {
                match (r.status, r.reason) {
                    (ItemStatus::Accepted | ItemStatus::Duplicate, _) => {
                        s.acked[i].insert(*h, r.status);
                    }
                    // The oracle has not seen the chain's clock reach the
                    // epoch yet: send again.
                    (ItemStatus::Rejected, Some(RejectReason::EpochNotOpen))
                        if s.feeding == s.sent.get(h).map(|x| x.epoch) =>
                    {
                        done = false;
                    }
                    _ => s.unexpected.push(format!("oracle {i}: {r:?}")),
                }
            }
            if results.len() != batch.hashes.len() {
                s.unexpected.push(format!(
                    "oracle {i}: {} results for {} receipts",
                    results.len(),
                    batch.hashes.len()
                ));
            }
            if done {
                s.cursors[i] += 1;
            }
        }
        Ok((code, body)) => {
            *s.failures[i]
                .entry(format!("{code}: {body:?}").chars().take(160).collect())
                .or_default() += 1;
        }
        Err(e) => {
            *s.failures[i]
                .entry(format!("no answer: {e}").chars().take(160).collect())
                .or_default() += 1;
        }
    }
    s.cursors[i] < s.batches.len()
        && s.batches
            .get(s.cursors[i])
            .is_some_and(|b| Arc::ptr_eq(b, batch))
}

fn generate(
    traffic: &Traffic,
    s: &mut FeedState,
    rng: &mut StdRng,
    epoch: u64,
    rate: Rate,
) -> Batch {
    let mut receipts = Vec::with_capacity(rate.new + rate.updates);
    let open: Vec<usize> = s
        .sessions
        .iter()
        .enumerate()
        .filter(|(_, x)| x.epoch == epoch)
        .map(|(i, _)| i)
        .collect();
    let mut touched = std::collections::HashSet::new();
    for _ in 0..rate.updates {
        if open.is_empty() {
            break;
        }
        let i = open[rng.gen_range(0..open.len())];
        if !touched.insert(i) {
            continue;
        }
        let x = &mut s.sessions[i];
        x.sequence += 1;
        x.bytes += rng.gen_range(1..=1u64 << 16);
        receipts.push(x.clone());
    }
    for _ in 0..rate.new {
        let x = Session {
            epoch,
            node: rng.gen_range(0..traffic.nodes.len()),
            client: rng.gen_range(0..traffic.clients.len()),
            session_id: rng.gen(),
            sequence: 1,
            bytes: rng.gen_range(1..=1u64 << 16),
        };
        s.sessions.push(x.clone());
        receipts.push(x);
    }
    let signed: Vec<SignedReceipt> = receipts.iter().map(|x| traffic.receipt(x)).collect();
    let hashes: Vec<[u8; 32]> = signed.iter().map(|r| r.receipt.body_hash()).collect();
    for (x, h) in receipts.iter().zip(&hashes) {
        s.sent.insert(
            *h,
            Sent {
                epoch: x.epoch,
                client: traffic.clients[x.client].verifying_key().to_bytes(),
                session_id: x.session_id,
                sequence: x.sequence,
            },
        );
    }
    let n = s.cursors.len();
    let mut dropped: Vec<bool> = (0..n).map(|_| rng.gen_bool(rate.loss)).collect();
    if n > 0 && dropped.iter().all(|d| *d) {
        dropped[rng.gen_range(0..n)] = false;
    }
    Batch {
        body: borsh::to_vec(&signed).expect("borsh"),
        hashes,
        dropped,
    }
}

/// The receipts an oracle's database holds: (epoch, client, session) → (sequence, body hash)s.
pub type Stored = HashMap<(u64, Key, [u8; 16]), Vec<(u64, [u8; 32])>>;

pub async fn stored_receipts(database_url: &str) -> Stored {
    use sqlx::Row;
    let pool = backhaul_oracle::db::connect(database_url)
        .await
        .expect("the oracle's database opens");
    let rows = sqlx::query("SELECT epoch, client, session_id, sequence, body_hash FROM receipts")
        .fetch_all(&pool)
        .await
        .expect("receipts");
    let mut out: Stored = HashMap::new();
    for r in rows {
        let epoch: i64 = r.get("epoch");
        let client: Vec<u8> = r.get("client");
        let session: Vec<u8> = r.get("session_id");
        let sequence: i64 = r.get("sequence");
        let hash: Vec<u8> = r.get("body_hash");
        out.entry((
            epoch as u64,
            client.try_into().expect("32 bytes"),
            session.try_into().expect("16 bytes"),
        ))
        .or_default()
        .push((sequence as u64, hash.try_into().expect("32 bytes")));
    }
    pool.close().await;
    out
}

/// What an oracle keeps of the receipts it acknowledged: its stored receipts, and for the epochs
/// it closed (whose receipts it drops once they are finalized and published) the receipts of the
/// agreed input it closed over, kept in `data_dir/inputs`.
pub async fn kept_receipts(data_dir: &std::path::Path) -> Stored {
    use sqlx::Row;
    let url = backhaul_oracle::db::sqlite_url(data_dir);
    let mut out = stored_receipts(&url).await;
    let pool = backhaul_oracle::db::connect(&url)
        .await
        .expect("the oracle's database opens");
    let rows = sqlx::query("SELECT input_hash FROM epochs WHERE input_hash IS NOT NULL")
        .fetch_all(&pool)
        .await
        .expect("epochs");
    pool.close().await;
    for r in rows {
        let hash: Vec<u8> = r.get("input_hash");
        let path = data_dir
            .join("inputs")
            .join(format!("{}.input", hex(&hash)));
        let bytes = std::fs::read(&path).expect("the agreed input of a closed epoch is kept");
        let input = backhaul_protocol::input::EpochInput::from_bytes(&bytes).expect("input");
        for s in input.receipts {
            let r = s.receipt;
            out.entry((r.epoch, r.client, r.session_id))
                .or_default()
                .push((r.sequence, r.body_hash()));
        }
    }
    out
}

/// Acknowledged receipts the database does not hold: neither the receipt itself nor a higher
/// sequence of its session that replaced it.
pub fn lost_receipts(
    acked: &HashMap<[u8; 32], ItemStatus>,
    sent: &HashMap<[u8; 32], Sent>,
    stored: &Stored,
) -> Vec<String> {
    let mut lost = vec![];
    for h in acked.keys() {
        let Some(x) = sent.get(h) else {
            lost.push(format!("{}: acknowledged but never sent", hex(h)));
            continue;
        };
        let held = stored.get(&(x.epoch, x.client, x.session_id));
        let ok = held.is_some_and(|v| {
            v.iter()
                .any(|(seq, hash)| *seq > x.sequence || (*seq == x.sequence && hash == h))
        });
        if !ok {
            lost.push(format!(
                "{} (epoch {}, sequence {}): stored {:?}",
                hex(h),
                x.epoch,
                x.sequence,
                held.map(|v| v.iter().map(|(s, _)| *s).collect::<Vec<_>>())
            ));
        }
    }
    lost
}

pub fn hex(b: &[u8]) -> String {
    backhaul_protocol::dataset::hex(b)
}

pub fn sha256(b: &[u8]) -> [u8; 32] {
    backhaul_core::merkle::sha256v(&[b])
}

/// Reads a Prometheus counter or gauge (summed over its label sets) from `/metrics`.
pub async fn metric(url: &str, name: &str) -> f64 {
    let text = reqwest::get(format!("{url}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// `/health` as JSON, with its status code.
pub async fn health(url: &str) -> (u16, serde_json::Value) {
    let resp = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("http")
        .get(format!("{url}/health"))
        .send()
        .await
        .expect("health answers");
    let code = resp.status().as_u16();
    (code, resp.json().await.expect("health is JSON"))
}
