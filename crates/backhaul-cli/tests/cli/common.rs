//! Shared setup: the local endpoint, keypair files, a deployment created with `admin init`, the
//! oracles, and running the real `backhaul` binary.

#![allow(dead_code)]

use backhaul_cli::admin::{self, InitArgs, InitOutcome};
use backhaul_cli::context::{write_keypair, GlobalArgs};
use backhaul_cli::Context;
use backhaul_client::{ClientConfig, ClientSession, Fanout, NodeIdentity};
use backhaul_localnet::{Localnet, LocalnetConfig};
use backhaul_oracle::chain::{Addresses, RpcChain};
use backhaul_oracle::{Oracle, Settings};
use backhaul_sdk::state::{EpochProposal, PriceFeed};
use backhaul_sdk::{ix, Deployment};
use solana_client::nonblocking::rpc_client::RpcClient;
use solana_commitment_config::CommitmentConfig;
use solana_sdk::instruction::Instruction;
use solana_sdk::program_pack::Pack;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};
use solana_sdk::transaction::Transaction;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

pub const DECIMALS: u8 = 6;
pub const TOKEN: u64 = 1_000_000;
/// The shortest epoch the program accepts.
pub const EPOCH_SECS: u64 = 7_200;
/// The shortest challenge period the program accepts (at most half an epoch).
pub const CHALLENGE_SECS: u64 = 3_600;
/// The shortest governance delay the program accepts: an epoch plus the challenge period.
pub const GOVERNANCE_DELAY_SECS: u64 = EPOCH_SECS + CHALLENGE_SECS;
/// The chain's clock when a test network starts.
pub const START: i64 = 1_800_000_000;

/// A local endpoint and a directory for keypair and parameter files.
pub struct Net {
    pub net: Localnet,
    pub rpc: RpcClient,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
}

impl Net {
    /// The endpoint with its clock at [`START`]; `follow_wall_clock` lets it advance with time
    /// (the oracles need that), otherwise it only moves with [`Net::warp_to`].
    pub fn start(follow_wall_clock: bool) -> Net {
        let net = Localnet::start(LocalnetConfig {
            unix_timestamp: Some(START),
            follow_wall_clock,
            ..Default::default()
        })
        .expect("localnet starts");
        Net {
            rpc: RpcClient::new_with_commitment(net.url(), CommitmentConfig::confirmed()),
            net,
            http: reqwest::Client::new(),
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn url(&self) -> String {
        self.net.url()
    }

    /// The faucet, which is also the program's upgrade authority.
    pub fn authority(&self) -> Keypair {
        self.net.faucet().insecure_clone()
    }

    pub async fn send(&self, ixs: &[Instruction], payer: &Keypair, signers: &[&Keypair]) {
        let blockhash = self.rpc.get_latest_blockhash().await.expect("blockhash");
        let mut keys: Vec<&Keypair> = vec![payer];
        keys.extend_from_slice(signers);
        let tx = Transaction::new_signed_with_payer(ixs, Some(&payer.pubkey()), &keys, blockhash);
        self.rpc
            .send_and_confirm_transaction(&tx)
            .await
            .expect("transaction lands");
    }

    /// Gives `to` 10 SOL from the faucet.
    pub async fn fund(&self, to: &Pubkey) {
        let ix = solana_system_interface::instruction::transfer(
            &self.net.faucet().pubkey(),
            to,
            10_000_000_000,
        );
        self.send(&[ix], self.net.faucet(), &[]).await;
    }

    /// A fresh keypair with 10 SOL.
    pub async fn funded(&self) -> Keypair {
        let k = Keypair::new();
        self.fund(&k.pubkey()).await;
        k
    }

    pub async fn lamports(&self, key: &Pubkey) -> u64 {
        self.rpc.get_balance(key).await.expect("balance")
    }

    pub async fn account_data(&self, key: &Pubkey) -> Vec<u8> {
        self.rpc.get_account(key).await.expect("account").data
    }

    pub async fn token_balance(&self, key: &Pubkey) -> u64 {
        match self
            .rpc
            .get_account_with_commitment(key, CommitmentConfig::confirmed())
            .await
            .expect("rpc")
            .value
        {
            Some(acc) => {
                spl_token_interface::state::Account::unpack(&acc.data)
                    .expect("token account")
                    .amount
            }
            None => 0,
        }
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

    /// Moves the chain's clock to `ts` with the endpoint's extra method.
    pub async fn warp_to(&self, ts: i64) {
        let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "backhaulWarpClock", "params": [{"unixTimestamp": ts}]});
        let resp: serde_json::Value = self
            .http
            .post(self.url())
            .json(&body)
            .send()
            .await
            .expect("warp")
            .json()
            .await
            .expect("json");
        assert!(resp.get("result").is_some(), "warp failed: {resp}");
    }

    pub async fn now(&self) -> i64 {
        let acc = self
            .rpc
            .get_account(&solana_sdk::sysvar::clock::ID)
            .await
            .expect("clock");
        backhaul_cli::context::clock_unix_timestamp(&acc.data).expect("clock data")
    }

    /// Writes `k` as a Solana CLI keypair file named `name.json` in the test's directory.
    pub fn keypair_file(&self, name: &str, k: &Keypair) -> PathBuf {
        let path = self.dir.path().join(format!("{name}.json"));
        write_keypair(&path, k).expect("keypair file");
        path
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        path
    }

    /// Global options for this endpoint.
    pub fn args(&self, mint: Option<&Pubkey>, oracles: &[String]) -> GlobalArgs {
        GlobalArgs {
            url: self.url(),
            mint: mint.map(|m| m.to_string()),
            oracles: oracles.to_vec(),
            ..GlobalArgs::default()
        }
    }

    /// A command context signing with `signer`.
    pub fn ctx(&self, signer: &Keypair, mint: Option<&Pubkey>, oracles: &[String]) -> Context {
        Context::with_signer(&self.args(mint, oracles), signer.insecure_clone()).expect("context")
    }
}

/// What a test deployment is made of.
pub struct Params {
    pub admin: Pubkey,
    pub guardians: Vec<Pubkey>,
    pub oracles: Vec<Pubkey>,
    pub threshold: u8,
    pub genesis_ts: i64,
    pub price_max_age_secs: u64,
}

/// A parameters file in the shape of `migrations/initial-params.toml`.
pub fn params_toml(p: &Params) -> String {
    let quoted = |keys: &[Pubkey]| -> String {
        keys.iter()
            .map(|k| format!("\"{k}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        r#"# test deployment
admin = "{admin}"
guardians = [{guardians}]
oracles = [{oracles}]
threshold = {threshold}

genesis_ts = {genesis}
epoch_length_secs = {epoch}
challenge_period_secs = {challenge}
governance_delay_secs = {delay}

[emission]
initial_per_epoch = {initial}
decay_bps = 5000
decay_period_epochs = 30
floor_per_epoch = {floor}
lifetime_cap = {cap}

[rate_limit]
window_secs = {window}
capacity = {capacity}

[economics]
price_max_age_secs = {age}
price_max_change_bps = 2000
net_emissions_cap = {net}
burn_smoothing_epochs = 7
usage_cap_bps = 10000

# as the test oracles of `start_oracles` were configured
[consensus]
credits_per_gib = 50000
pair_cap_bytes = 107374182400
max_rate_bytes_per_sec = 1073741824
grace_secs = 5
"#,
        admin = p.admin,
        guardians = quoted(&p.guardians),
        oracles = quoted(&p.oracles),
        threshold = p.threshold,
        genesis = p.genesis_ts,
        epoch = EPOCH_SECS,
        challenge = CHALLENGE_SECS,
        delay = GOVERNANCE_DELAY_SECS,
        // A window of one epoch: the capacity holds and drains one full budget (initial
        // emission plus the net emissions cap) per epoch.
        window = EPOCH_SECS,
        initial = 1_000 * TOKEN,
        floor = 10 * TOKEN,
        cap = 50_000 * TOKEN,
        capacity = 2_000 * TOKEN,
        age = p.price_max_age_secs,
        net = 100 * TOKEN,
    )
}

/// A deployment created through `admin init --create-mint`, with a treasury holding the
/// pre-launch supply.
pub struct Deployed {
    pub net: Net,
    pub d: Deployment,
    pub mint: Pubkey,
    pub admin: Keypair,
    pub guardian: Keypair,
    pub oracles: Vec<Keypair>,
    pub treasury: Keypair,
    pub params_path: PathBuf,
    pub init: InitOutcome,
}

impl Deployed {
    /// Runs the `backhaul` binary with `words`, on this endpoint (`--url`) and deployment
    /// (`--mint`).
    pub async fn run_cli(&self, words: &[&str]) -> Output {
        let mut args: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        args.extend([
            "--url".into(),
            self.net.url(),
            "--mint".into(),
            self.mint.to_string(),
        ]);
        run_binary_async(args).await
    }

    /// A context for `signer` on this deployment.
    pub fn ctx(&self, signer: &Keypair, oracles: &[String]) -> Context {
        self.net.ctx(signer, Some(&self.mint), oracles)
    }

    /// Sends `amount` base units from the treasury to `owner`'s token account.
    pub async fn give_tokens(&self, owner: &Pubkey, amount: u64) {
        let from = self.d.ata(&self.treasury.pubkey());
        let to = self.d.ata(owner);
        self.net
            .send(
                &[
                    spl_associated_token_account_interface::instruction::create_associated_token_account_idempotent(
                        &self.treasury.pubkey(),
                        owner,
                        &self.mint,
                        &spl_token_interface::ID,
                    ),
                    spl_token_interface::instruction::transfer(
                        &spl_token_interface::ID,
                        &from,
                        &to,
                        &self.treasury.pubkey(),
                        &[],
                        amount,
                    )
                    .expect("transfer"),
                ],
                &self.treasury,
                &[],
            )
            .await;
    }

    /// Seals epoch `e`'s ledger (the treasury pays), as the oracles do once it has ended.
    pub async fn seal(&self, e: u64) {
        self.net
            .send(
                &[ix::seal_epoch(&self.d, &self.treasury.pubkey(), e)],
                &self.treasury,
                &[],
            )
            .await;
    }

    /// A proposal for any epoch of a deployment that has finalized nothing: no rewards, no
    /// usage, told apart from others by `tag` (its dataset hash).
    pub fn empty_proposal(&self, tag: u8) -> EpochProposal {
        use backhaul_core::merkle::TreeKind;
        use backhaul_core::sum_tree::empty_root;
        EpochProposal {
            reward_root: empty_root(TreeKind::Reward),
            usage_root: empty_root(TreeKind::Usage),
            dataset_hash: [tag; 32],
            ..EpochProposal::default()
        }
    }

    /// Oracle `i` votes for `proposal` in epoch `e` directly (as its submitter would).
    pub async fn vote(&self, i: usize, e: u64, proposal: EpochProposal) {
        let o = &self.oracles[i];
        self.net
            .send(
                &[ix::propose_root(&self.d, &o.pubkey(), e, proposal)],
                o,
                &[],
            )
            .await;
    }

    /// Oracles `0..n` post `price` directly (as their submitters would).
    pub async fn post_price(&self, n: usize, price: u64) {
        for o in self.oracles.iter().take(n) {
            self.net
                .send(&[ix::submit_price(&self.d, &o.pubkey(), price)], o, &[])
                .await;
        }
    }
}

/// `admin init` creating the mint from a parameters file, with decimals [`DECIMALS`].
pub fn init_creating_mint(params: impl Into<PathBuf>) -> InitArgs {
    InitArgs {
        create_mint: true,
        decimals: DECIMALS,
        ..InitArgs::for_file(params)
    }
}

/// `admin init` as [`deploy`] runs it: the mint from the keypair file `mint.json`, and
/// 1,000,000 tokens minted to `treasury`.
pub fn deployment_init(net: &Net, params: &Path, treasury: &Pubkey) -> InitArgs {
    InitArgs {
        mint_keypair: Some(net.dir.path().join("mint.json")),
        supply: Some("1000000".into()),
        supply_to: Some(treasury.to_string()),
        ..init_creating_mint(params)
    }
}

/// Creates a deployment: three funded oracle keys (threshold two), a separate admin and
/// guardian, the mint with 1,000,000 tokens for the treasury, initialized by the upgrade
/// authority through `admin::initialize`.
pub async fn deploy(net: Net, genesis_ts: i64, price_max_age_secs: u64) -> Deployed {
    let admin = Keypair::new();
    let guardian = Keypair::new();
    let oracles: Vec<Keypair> = (0..3).map(|_| Keypair::new()).collect();
    for k in [&admin, &guardian] {
        net.fund(&k.pubkey()).await;
    }
    for o in &oracles {
        net.fund(&o.pubkey()).await;
    }
    let treasury = Keypair::new();
    net.fund(&treasury.pubkey()).await;
    let params = Params {
        admin: admin.pubkey(),
        guardians: vec![guardian.pubkey()],
        oracles: oracles.iter().map(|o| o.pubkey()).collect(),
        threshold: 2,
        genesis_ts,
        price_max_age_secs,
    };
    let params_path = net.write("params.toml", &params_toml(&params));
    let ctx = net.ctx(&net.authority(), None, &[]);
    let init = admin::initialize(
        &ctx,
        &deployment_init(&net, &params_path, &treasury.pubkey()),
    )
    .await
    .expect("admin init");
    let mint = Pubkey::from_str(&init.mint).expect("mint");
    Deployed {
        d: Deployment::new(mint),
        mint,
        net,
        admin,
        guardian,
        oracles,
        treasury,
        params_path,
        init,
    }
}

/// Polls `f` every 200 ms until it returns `Some`, for at most `secs` seconds.
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
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Starts one oracle per key of `w`, each with its own database, submitting with its key and
/// posting `price`; returns them and their URLs.
pub async fn start_oracles(w: &Deployed, price: u64) -> (Vec<Oracle>, Vec<String>) {
    let mut running = vec![];
    for (i, k) in w.oracles.iter().enumerate() {
        let settings = Settings {
            listen: "127.0.0.1:0".parse().expect("addr"),
            data_dir: w.net.dir.path().join(format!("oracle-{i}")),
            rpc_url: w.net.url(),
            config: w.d.config.to_string(),
            keypair: Some(w.net.keypair_file(&format!("oracle-{i}"), k)),
            price_credits_per_token: Some(price),
            close_poll_secs: 1,
            submit_poll_secs: 1,
            ..Settings::default()
        };
        let chain = Arc::new(RpcChain {
            rpc: Arc::new(RpcClient::new_with_commitment(
                w.net.url(),
                CommitmentConfig::confirmed(),
            )),
            addresses: Addresses {
                program_id: backhaul::ID,
                config: w.d.config,
            },
        });
        running.push(Oracle::start(settings, chain).await.expect("oracle starts"));
    }
    let urls: Vec<String> = running
        .iter()
        .map(|o| format!("http://{}", o.addr))
        .collect();
    wait_for("a posted price", 30, || async {
        w.net
            .account::<PriceFeed>(&w.d.price_feed())
            .await
            .filter(|f| f.credits_per_token == price)
    })
    .await;
    (running, urls)
}

/// Node `i` serves `(i + 1)` GiB to `client` for `buyer` in epoch 0, in `i + 1` receipts,
/// submitted to every oracle.
pub async fn serve_traffic(
    w: &Deployed,
    urls: &[String],
    nodes: &[ed25519_dalek::SigningKey],
    operators: &[Pubkey],
    client: &ed25519_dalek::SigningKey,
    buyer: &Pubkey,
) {
    let proto = backhaul_cli::operator::protocol_deployment(&w.d);
    let fanout = Fanout::from_urls(urls, ClientConfig::default()).expect("fanout");
    let mut receipts = vec![];
    for (i, (node, operator)) in nodes.iter().zip(operators).enumerate() {
        let node = NodeIdentity::new(proto, node.clone(), operator.to_bytes());
        let mut session = ClientSession::new(
            proto,
            client.clone(),
            buyer.to_bytes(),
            node.key(),
            0,
            START,
        );
        for _ in 0..=i {
            let (r, sig) = session
                .record_signed((i as u64 + 1) << 30, START + 60)
                .expect("receipt");
            receipts.push(node.countersign(&r, sig).expect("countersign"));
        }
    }
    let report = fanout.submit_receipts(&receipts).await;
    assert!(report.all_succeeded(), "receipts: {report:?}");
    assert!(
        report.stored_by(receipts.len()).iter().all(|n| *n == 3),
        "every oracle stores every receipt"
    );
}

/// Runs the real `backhaul` binary with `args` (no `BACKHAUL_*` variables from the
/// environment), returning its exit status and output.
pub fn run_binary(args: &[&str]) -> Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_backhaul"));
    for var in [
        "BACKHAUL_URL",
        "BACKHAUL_KEYPAIR",
        "BACKHAUL_MINT",
        "BACKHAUL_CONFIG",
        "BACKHAUL_ORACLES",
        "RUST_LOG",
    ] {
        cmd.env_remove(var);
    }
    cmd.args(args).output().expect("the backhaul binary runs")
}

/// Runs the binary off the async runtime's threads.
pub async fn run_binary_async(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        run_binary(&refs)
    })
    .await
    .expect("binary task")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The binary's stdout as JSON.
pub fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
            stdout(o),
            stderr(o)
        )
    })
}

pub fn path_str(p: &Path) -> String {
    p.display().to_string()
}

/// A dishonest oracle: answers every proof request with `proof_body` (JSON) and everything else
/// with 404. Returns its base URL; it serves until the test's runtime ends.
pub async fn fake_oracle(proof_body: String) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let body = proof_body.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let n = stream.read(&mut buf).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]);
                let (status, body) = if request.starts_with("GET /v1/proofs/") {
                    ("200 OK", body)
                } else {
                    ("404 Not Found", r#"{"error":"not found"}"#.to_string())
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    format!("http://{addr}")
}

/// A loopback port nothing listens on.
pub fn unused_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    port
}
