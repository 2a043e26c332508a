//! The processes under load and the deployment they run: the local JSON-RPC endpoint and the
//! oracle as child processes on loopback, and a deployment initialized on the endpoint through
//! real transactions (mint, mint authority to the config, initialize, price, credits).

use anyhow::Context;
use backhaul::instructions::InitializeParams;
use backhaul::state::{ConsensusParams, EconomicsParams, EmissionParams};
use backhaul_sdk::{ix, Deployment};
use solana_client::nonblocking::rpc_client::RpcClient;
use solana_commitment_config::CommitmentConfig;
use solana_sdk::instruction::Instruction;
use solana_sdk::program_pack::Pack;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};
use solana_sdk::transaction::Transaction;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const DECIMALS: u8 = 6;
pub const TOKEN: u64 = 1_000_000;
pub const EPOCH_SECS: u64 = 7_200;
/// The credit price the oracle posts: credits per whole token.
pub const CREDITS_PER_TOKEN: u64 = 100_000;
/// Seconds after an epoch's end the oracle waits before closing it.
pub const GRACE_SECS: u64 = 5;

/// A child process that is stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Child {
    pub name: &'static str,
    child: std::process::Child,
}

impl Child {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits up to `wait` for the process to exit, then kills it.
    pub fn stop(&mut self, wait: Duration) -> Option<std::process::ExitStatus> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(status);
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        tracing::warn!(process = self.name, "did not stop on SIGTERM; killing it");
        let _ = self.child.kill();
        self.child.wait().ok()
    }

    /// Fails if the process has exited.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        match self.child.try_wait()? {
            Some(status) => anyhow::bail!("{} exited ({status}); see its log", self.name),
            None => Ok(()),
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(10));
    }
}

/// The `name` binary next to this one (cargo builds the workspace's binaries into one
/// directory), or `explicit`.
pub fn binary(explicit: Option<&Path>, name: &str) -> anyhow::Result<PathBuf> {
    if let Some(p) = explicit {
        anyhow::ensure!(p.is_file(), "{} does not exist", p.display());
        return Ok(p.to_path_buf());
    }
    let me = std::env::current_exe().context("locating this executable")?;
    let dir = me.parent().context("this executable has no directory")?;
    // Test binaries live one level down, in deps/.
    for d in [dir, dir.parent().unwrap_or(dir)] {
        let p = d.join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    anyhow::bail!(
        "no {name} binary next to {}: build it with `cargo build --profile bench -p {name}` or pass its path",
        me.display()
    )
}

fn log_file(dir: &Path, name: &str) -> anyhow::Result<(std::fs::File, PathBuf)> {
    let path = dir.join(format!("{name}.log"));
    let f = std::fs::File::create(&path)
        .with_context(|| format!("creating the log file {}", path.display()))?;
    Ok((f, path))
}

/// Starts `backhaul-localnet` on an ephemeral loopback port with the clock at `unix_timestamp`;
/// returns it, its URL and its faucet.
pub fn start_localnet(
    bin: &Path,
    dir: &Path,
    unix_timestamp: i64,
) -> anyhow::Result<(Child, String, Keypair)> {
    let faucet_path = dir.join("faucet.json");
    let (log, log_path) = log_file(dir, "localnet")?;
    let mut child = Command::new(bin)
        .args(["--listen", "127.0.0.1:0", "--unix-timestamp"])
        .arg(unix_timestamp.to_string())
        .arg("--write-faucet-keypair")
        .arg(&faucet_path)
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let stdout = child.stdout.take().context("the endpoint's stdout")?;
    let child = Child {
        name: "backhaul-localnet",
        child,
    };
    // Its first lines name the URL; the rest of its output is drained into nothing.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if !sent {
                if let Some(url) = line.strip_prefix("JSON RPC URL: ") {
                    let _ = tx.send(url.trim().to_string());
                    sent = true;
                }
            }
        }
    });
    let url = rx.recv_timeout(Duration::from_secs(120)).map_err(|_| {
        anyhow::anyhow!(
            "backhaul-localnet did not print its URL within 120 s; see {}",
            log_path.display()
        )
    })?;
    let faucet = solana_sdk::signer::keypair::read_keypair_file(&faucet_path)
        .map_err(|e| anyhow::anyhow!("reading the faucet keypair: {e}"))?;
    Ok((child, url, faucet))
}

/// Settings of the oracle under load (TOML keys of `oracle/settings.example.toml`).
pub struct OracleSettings {
    pub rpc_url: String,
    pub config: Pubkey,
    pub per_key_items_per_sec: u32,
}

/// Starts `backhaul-oracle serve` on a free loopback port with SQLite in `dir/oracle-data`;
/// returns it and its base URL once `/health` answers.
pub async fn start_oracle(
    bin: &Path,
    dir: &Path,
    s: &OracleSettings,
) -> anyhow::Result<(Child, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let settings = dir.join("oracle.toml");
    std::fs::write(
        &settings,
        format!(
            "listen = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\nrpc_url = \"{}\"\nconfig = \"{}\"\n\
             close_poll_secs = 1\nper_key_items_per_sec = {}\n",
            dir.join("oracle-data").display(),
            s.rpc_url,
            s.config,
            s.per_key_items_per_sec,
        ),
    )?;
    let (log, log_path) = log_file(dir, "oracle")?;
    let mut child = Child {
        name: "backhaul-oracle",
        child: Command::new(bin)
            .arg("--settings")
            .arg(&settings)
            .arg("serve")
            .env_remove("BACKHAUL_ORACLE_SETTINGS")
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?,
    };
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder().no_proxy().build()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if http
            .get(format!("{url}/health"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok((child, url));
        }
        child
            .check_running()
            .with_context(|| format!("the oracle did not start; see {}", log_path.display()))?;
        anyhow::ensure!(
            Instant::now() < deadline,
            "the oracle did not answer /health within 60 s; see {}",
            log_path.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A client of the local endpoint.
pub struct Chain {
    pub rpc: RpcClient,
    pub url: String,
    pub faucet: Keypair,
    http: reqwest::Client,
}

impl Chain {
    pub fn new(url: String, faucet: Keypair) -> anyhow::Result<Self> {
        Ok(Chain {
            rpc: RpcClient::new_with_commitment(url.clone(), CommitmentConfig::confirmed()),
            url,
            faucet,
            http: reqwest::Client::builder().no_proxy().build()?,
        })
    }

    pub async fn send(
        &self,
        what: &str,
        ixs: &[Instruction],
        payer: &Keypair,
        signers: &[&Keypair],
    ) -> anyhow::Result<()> {
        let blockhash = self.rpc.get_latest_blockhash().await?;
        let mut keys: Vec<&Keypair> = vec![payer];
        keys.extend_from_slice(signers);
        let tx = Transaction::new_signed_with_payer(ixs, Some(&payer.pubkey()), &keys, blockhash);
        self.rpc
            .send_and_confirm_transaction(&tx)
            .await
            .with_context(|| format!("transaction {what:?} failed"))?;
        Ok(())
    }

    pub async fn fund(&self, to: &Pubkey, lamports: u64) -> anyhow::Result<()> {
        let ix =
            solana_system_interface::instruction::transfer(&self.faucet.pubkey(), to, lamports);
        self.send("fund", &[ix], &self.faucet, &[]).await
    }

    /// Moves the chain's clock to `ts` (the endpoint's `backhaulWarpClock`).
    pub async fn warp_to(&self, ts: i64) -> anyhow::Result<()> {
        let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "backhaulWarpClock", "params": [{"unixTimestamp": ts}]});
        let resp: serde_json::Value = self
            .http
            .post(&self.url)
            .json(&body)
            .send()
            .await?
            .json()
            .await?;
        anyhow::ensure!(
            resp.get("result").is_some(),
            "backhaulWarpClock failed: {resp}"
        );
        Ok(())
    }
}

/// A deployment with one oracle (threshold one), a posted price, and buyers holding credits.
pub struct Deployed {
    pub d: Deployment,
    pub genesis: i64,
    /// Credits each buyer bought.
    pub credits_per_buyer: u64,
}

/// Initializes the deployment of `mint` (its keypair) with `oracle` as its only oracle, posts
/// the price, and has every buyer burn `tokens_per_buyer` whole tokens for credits.
pub async fn deploy(
    chain: &Chain,
    mint: &Keypair,
    oracle: &Keypair,
    buyers: &[Keypair],
    genesis: i64,
    tokens_per_buyer: u64,
) -> anyhow::Result<Deployed> {
    let authority = chain.faucet.insecure_clone();
    let d = Deployment::new(mint.pubkey());
    let treasury = Keypair::new();
    chain.fund(&treasury.pubkey(), 100_000_000_000).await?;
    let space = spl_token_interface::state::Mint::LEN;
    let rent = chain
        .rpc
        .get_minimum_balance_for_rent_exemption(space)
        .await?;
    let treasury_ata = d.ata(&treasury.pubkey());
    let per_buyer = tokens_per_buyer
        .checked_mul(TOKEN)
        .context("tokens per buyer overflow")?;
    let supply = per_buyer
        .checked_mul(buyers.len() as u64)
        .and_then(|s| s.checked_add(1_000 * TOKEN))
        .context("token supply overflow")?;
    let create = ix::create_mint(
        &d,
        &treasury.pubkey(),
        rent,
        DECIMALS,
        Some((&treasury.pubkey(), supply)),
    )?;
    chain
        .send("create the mint", &create, &treasury, &[mint])
        .await?;

    chain.fund(&oracle.pubkey(), 10_000_000_000).await?;
    let params = InitializeParams {
        admin: authority.pubkey(),
        guardians: vec![Keypair::new().pubkey()],
        oracles: vec![oracle.pubkey()],
        threshold: 1,
        genesis_ts: genesis,
        epoch_length_secs: EPOCH_SECS,
        challenge_period_secs: 3_600,
        governance_delay_secs: EPOCH_SECS + 3_600,
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
        // As the oracle under load is configured: its defaults, with a grace of GRACE_SECS.
        consensus: ConsensusParams {
            credits_per_gib: 50_000,
            pair_cap_bytes: 100 << 30,
            max_rate_bytes_per_sec: 1 << 30,
            grace_secs: GRACE_SECS,
        },
    };
    chain
        .send(
            "initialize",
            &[ix::initialize(&d, &authority.pubkey(), params)],
            &authority,
            &[],
        )
        .await?;
    chain
        .send(
            "submit_price",
            &[ix::submit_price(&d, &oracle.pubkey(), CREDITS_PER_TOKEN)],
            oracle,
            &[],
        )
        .await?;

    let credits = tokens_per_buyer
        .checked_mul(CREDITS_PER_TOKEN)
        .context("credits overflow")?;
    for buyer in buyers {
        chain.fund(&buyer.pubkey(), 1_000_000_000).await?;
        let buyer_ata = d.ata(&buyer.pubkey());
        chain
            .send(
                "give the buyer tokens",
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
                        per_buyer,
                    )?,
                ],
                &treasury,
                &[],
            )
            .await?;
        chain
            .send(
                "buy_credits",
                &[ix::buy_credits(
                    &d,
                    &buyer.pubkey(),
                    &buyer_ata,
                    per_buyer,
                    credits,
                    buyer.pubkey(),
                    0,
                )],
                buyer,
                &[],
            )
            .await?;
    }
    Ok(Deployed {
        d,
        genesis,
        credits_per_buyer: credits,
    })
}
