//! A whole network on this machine: the local endpoint, three oracles (threshold two) with their
//! own keys, databases and submitters, a guardian watching every proposal (`guardian watch`),
//! node operators, AI firms and their clients, each actor driving the same command functions a
//! user runs, with a [`Context`] of its own.

use super::traffic::{self, Node};
use crate::admin::{
    ConsensusToml, EconomicsToml, EmissionToml, InitArgs, ParamsFile, RateLimitToml,
};
use crate::context::{write_keypair, Context, GlobalArgs, OutputFormat};
use crate::error::CommandError;
use crate::firm::{BuyArgs, GrantArgs};
use crate::guardian::watch::{self as guardian_watch, Action, JudgeArgs, Outcome, WatchLog};
use anyhow::{anyhow, bail, Context as _};
use backhaul_client::{ClientConfig, Fanout, NodeIdentity, OracleClient};
use backhaul_localnet::{Localnet, LocalnetConfig, ProgramBuild};
use backhaul_oracle::chain::{Addresses, RpcChain};
use backhaul_oracle::{Oracle, Settings};
use backhaul_protocol::dataset::Dataset;
use backhaul_sdk::state::{EpochRecord, EpochStatus, PriceFeed};
use backhaul_sdk::Deployment;
use ed25519_dalek::SigningKey;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use solana_client::nonblocking::rpc_client::RpcClient;
use solana_commitment_config::CommitmentConfig;
use solana_sdk::instruction::Instruction;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};
use std::collections::HashMap;
use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The chain's clock at start (the same every run, so a seed gives the same datasets).
pub const START_TS: i64 = 1_800_000_000;
/// The shortest epoch the program accepts.
pub const EPOCH_SECS: u64 = 7_200;
/// The shortest challenge period the program accepts (at most half an epoch).
pub const CHALLENGE_SECS: u64 = 3_600;
/// The shortest governance delay the program accepts: an epoch plus the challenge period.
pub const GOVERNANCE_DELAY_SECS: u64 = EPOCH_SECS + CHALLENGE_SECS;
/// How long after an epoch's end the oracles still take receipts.
pub const GRACE_SECS: u64 = 5;
/// The bandwidth price: credits per GiB served.
pub const CREDITS_PER_GIB: u64 = 50_000;
/// The credit price the oracles post: credits per whole token.
pub const PRICE: u64 = 100_000;
pub const DECIMALS: u8 = 6;
pub const TOKEN: u64 = 1_000_000;
/// Tokens each firm starts with.
pub const FIRM_TOKENS: u64 = 1_000;
/// k in basis points: an epoch mints at most 90% of what the firms paid for the credits they
/// consumed, so a firm serving itself through nodes of its own loses at least 10% of it.
pub const USAGE_CAP_BPS: u32 = 9_000;
/// How long to wait for the oracles at each step before giving up.
const STEP_TIMEOUT: Duration = Duration::from_secs(90);

/// What to simulate.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    pub epochs: u64,
    pub nodes: usize,
    pub firms: usize,
    pub seed: u64,
    /// Keep the data folder (oracles' databases and datasets, keys, the report) here.
    pub keep: Option<PathBuf>,
    /// Print each step on stderr.
    pub progress: bool,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            epochs: 3,
            nodes: 36,
            firms: 3,
            seed: 1,
            keep: None,
            progress: true,
        }
    }
}

/// Step-by-step progress on stderr, with the time since the start.
pub struct Progress {
    start: Instant,
    enabled: bool,
}

impl Progress {
    pub fn new(enabled: bool) -> Progress {
        Progress {
            start: Instant::now(),
            enabled,
        }
    }

    pub fn step(&self, message: impl Display) {
        if self.enabled {
            eprintln!("[{:>6.1}s] {message}", self.start.elapsed().as_secs_f64());
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }
}

/// The data folder: a temporary one, or the one `--keep` names.
enum DataDir {
    Temp(tempfile::TempDir),
    Kept(PathBuf),
}

impl DataDir {
    fn path(&self) -> &Path {
        match self {
            DataDir::Temp(t) => t.path(),
            DataDir::Kept(p) => p,
        }
    }
}

pub struct Operator {
    pub ctx: Context,
    pub key: Pubkey,
    /// Cumulative amount claimed so far.
    pub claimed: u64,
}

pub struct Firm {
    pub ctx: Context,
    pub key: Pubkey,
    pub clients: Vec<SigningKey>,
    /// Cumulative consumption settled so far.
    pub settled: u64,
}

/// What one epoch did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct EpochRun {
    pub epoch: u64,
    /// Tokens the firms burned for credits, and the credits they got.
    pub tokens_bought: u64,
    pub credits_bought: u64,
    pub sessions: usize,
    pub receipts: usize,
    /// Bytes the clients signed for.
    pub bytes_signed: u64,
    /// Claims sent after finalization and what they paid.
    pub claims: usize,
    pub claimed: u64,
    /// Settlements sent and what they debited (and left unpaid).
    pub settlements: usize,
    pub settled: u64,
    pub unpaid: u64,
    /// Seconds from the epoch's end to its finalization (wall time).
    pub close_to_finalize_secs: f64,
    /// The real fetch through a gateway and a node, with `--real-traffic`.
    pub real: Option<super::real::RealRun>,
}

/// A running network.
pub struct Network {
    pub localnet: Localnet,
    pub oracles: Vec<Oracle>,
    pub urls: Vec<String>,
    /// The global options every actor's context is made from (URL, mint, oracles).
    pub global: GlobalArgs,
    pub deployment: Deployment,
    pub genesis: i64,
    pub admin: Context,
    pub operators: Vec<Operator>,
    pub firms: Vec<Firm>,
    /// Whether the firms granted their clients (after their first purchase: the oracles keep
    /// grants only of buyers with a credit account).
    granted: bool,
    pub nodes: Vec<Node>,
    pub rng: StdRng,
    pub progress: Progress,
    pub http: reqwest::Client,
    /// The guardian's watcher (`guardian watch` with the guardian's key, live) and its outcomes.
    pub guardian: Guardian,
    /// The node service and gateway carrying real bytes (`--real-traffic`).
    real: Option<super::real::RealTraffic>,
    dir: DataDir,
}

/// The guardian's watcher running beside the network.
pub struct Guardian {
    pub key: Pubkey,
    pub log: WatchLog,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Guardian {
    /// Starts `guardian watch` for `ctx`'s deployment and oracles, signing with the guardian's
    /// key, looking once a second.
    fn start(ctx: Context) -> anyhow::Result<Guardian> {
        let key = ctx.signer_pubkey()?;
        let log = WatchLog::default();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(guardian_watch::watch_until(
            ctx,
            JudgeArgs::default(),
            Duration::from_secs(1),
            log.clone(),
            async move {
                let _ = stopped.await;
            },
        ));
        Ok(Guardian {
            key,
            log,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// Stops the watcher.
    async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            match tokio::time::timeout(Duration::from_secs(5), task).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => {
                    tracing::debug!(error = %format!("{e:#}"), "the watcher ended with an error")
                }
                Ok(Err(e)) => tracing::debug!(error = %e, "the watcher's task failed"),
                Err(_) => tracing::debug!("the watcher was still stopping after 5 s; leaving it"),
            }
        }
    }
}

/// A keypair from 32 seed bytes drawn from `rng`.
fn keypair(rng: &mut StdRng) -> Keypair {
    Keypair::new_from_array(rng.gen())
}

impl Network {
    /// Starts the endpoint, creates the deployment, starts the oracles and enrolls every actor:
    /// nodes bound to operators, firms holding tokens and credits, clients granted.
    pub async fn start(opts: &DemoOptions) -> anyhow::Result<Network> {
        if opts.nodes == 0 || opts.firms == 0 || opts.epochs == 0 {
            bail!("--nodes, --firms and --epochs must each be at least 1");
        }
        let progress = Progress::new(opts.progress);
        let dir = match &opts.keep {
            Some(p) => {
                let used = std::fs::read_dir(p).is_ok_and(|mut d| d.next().is_some());
                if used {
                    bail!(
                        "--keep {}: the folder is not empty; name a new or empty folder (the \
                         oracles' databases of an earlier run would not match the new chain)",
                        p.display()
                    );
                }
                std::fs::create_dir_all(p)
                    .with_context(|| format!("cannot create the data folder {}", p.display()))?;
                DataDir::Kept(p.clone())
            }
            None => DataDir::Temp(tempfile::tempdir().context("cannot create a temporary folder")?),
        };
        let mut rng = StdRng::seed_from_u64(opts.seed);

        // The bytecode when it was built (or `BACKHAUL_PROGRAM` names a build), otherwise the
        // host build, so that the demo runs with the Rust toolchain alone; the report says which.
        let program = ProgramBuild::from_env_or_host()?;
        progress.step(format!("program: {}", program.describe()));
        let localnet = Localnet::start(LocalnetConfig {
            program: Some(program),
            unix_timestamp: Some(START_TS),
            follow_wall_clock: true,
            ..Default::default()
        })
        .context("cannot start the local endpoint")?;
        progress.step(format!("local endpoint at {}", localnet.url()));
        let mut global = GlobalArgs {
            url: localnet.url(),
            // Actors run concurrently: their own spinners stay hidden; the demo reports steps.
            output: OutputFormat::Json,
            ..GlobalArgs::default()
        };
        let admin_key = localnet.faucet().insecure_clone();
        let admin = Context::with_signer(&global, admin_key.insecure_clone())?;

        // Keys: three oracles, the guardian, operators, firms, nodes and clients.
        let oracle_keys: Vec<Keypair> = (0..3).map(|_| keypair(&mut rng)).collect();
        let guardian = keypair(&mut rng);
        let operator_count = opts.nodes.div_ceil(3);
        let operator_keys: Vec<Keypair> = (0..operator_count).map(|_| keypair(&mut rng)).collect();
        let firm_keys: Vec<Keypair> = (0..opts.firms).map(|_| keypair(&mut rng)).collect();
        let mint_path = dir.path().join("mint.json");
        let mint_key = keypair(&mut rng);
        write_keypair(&mint_path, &mint_key)?;

        // SOL for fees.
        let mut funded: Vec<(Pubkey, u64)> = oracle_keys
            .iter()
            .map(|k| (k.pubkey(), 100_000_000_000))
            .collect();
        funded.extend(operator_keys.iter().map(|k| (k.pubkey(), 1_000_000_000)));
        funded.extend(firm_keys.iter().map(|k| (k.pubkey(), 1_000_000_000)));
        // The guardian pays its vetoes' fees, and a fraud proof's buffer until it is consumed.
        funded.push((guardian.pubkey(), 1_000_000_000));
        for chunk in funded.chunks(10) {
            let ixs: Vec<Instruction> = chunk
                .iter()
                .map(|(to, lamports)| {
                    solana_system_interface::instruction::transfer(
                        &admin_key.pubkey(),
                        to,
                        *lamports,
                    )
                })
                .collect();
            crate::tx::send(&admin, "fund the actors", &ixs, &[]).await?;
        }

        // The deployment, through `admin init --create-mint`.
        let params = ParamsFile {
            admin: admin_key.pubkey().to_string(),
            guardians: vec![guardian.pubkey().to_string()],
            oracles: oracle_keys.iter().map(|k| k.pubkey().to_string()).collect(),
            threshold: 2,
            genesis_ts: START_TS,
            epoch_length_secs: EPOCH_SECS,
            challenge_period_secs: CHALLENGE_SECS,
            governance_delay_secs: GOVERNANCE_DELAY_SECS,
            emission: EmissionToml {
                initial_per_epoch: 1_000 * TOKEN,
                decay_bps: 5_000,
                decay_period_epochs: 30,
                floor_per_epoch: 10 * TOKEN,
                lifetime_cap: 50_000 * TOKEN,
            },
            // Holds and drains one full epoch budget (initial emission plus the net emissions
            // cap) per window of one epoch.
            rate_limit: RateLimitToml {
                window_secs: EPOCH_SECS,
                capacity: 2_400 * TOKEN,
            },
            economics: EconomicsToml {
                price_max_age_secs: 3 * EPOCH_SECS,
                price_max_change_bps: 2_000,
                net_emissions_cap: 200 * TOKEN,
                burn_smoothing_epochs: 7,
                usage_cap_bps: USAGE_CAP_BPS,
            },
            // What decides the datasets, the same for every oracle: 100 GiB per node-client
            // pair at most, sessions up to 1 GiB/s.
            consensus: ConsensusToml {
                credits_per_gib: CREDITS_PER_GIB,
                pair_cap_bytes: 100 << 30,
                max_rate_bytes_per_sec: 1 << 30,
                grace_secs: GRACE_SECS,
            },
        };
        let supply = (FIRM_TOKENS as usize)
            .checked_mul(opts.firms)
            .and_then(|t| t.checked_add(1_000_000))
            .ok_or_else(|| anyhow!("--firms {} is too many", opts.firms))?;
        let init = crate::admin::initialize_with(
            &admin,
            &params,
            &InitArgs {
                params: PathBuf::new(),
                create_mint: true,
                mint_keypair: Some(mint_path),
                decimals: DECIMALS,
                supply: Some(supply.to_string()),
                supply_to: None,
            },
        )
        .await
        .context("initializing the deployment")?;
        let deployment = Deployment::new(mint_key.pubkey());
        if init.config != deployment.config.to_string() {
            bail!(
                "the deployment was created at {} instead of {}",
                init.config,
                deployment.config
            );
        }
        progress.step(format!(
            "deployment created: mint {}, config {}",
            deployment.mint, deployment.config
        ));
        global.mint = Some(deployment.mint.to_string());
        let admin = admin.with_mint(deployment.mint);

        // Three oracles: each its own key, SQLite database and submitter.
        // Each oracle syncs every epoch's input with the other two, so their addresses are
        // chosen first.
        let mut oracles = vec![];
        let addrs = free_loopback_addrs(oracle_keys.len())?;
        for (i, k) in oracle_keys.iter().enumerate() {
            let key_path = dir.path().join(format!("oracle-{i}-key.json"));
            write_keypair(&key_path, k)?;
            let settings = Settings {
                listen: addrs[i],
                peers: addrs
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, a)| format!("http://{a}"))
                    .collect(),
                sync_wait_secs: 5,
                data_dir: dir.path().join(format!("oracle-{i}")),
                rpc_url: localnet.url(),
                config: deployment.config.to_string(),
                keypair: Some(key_path),
                price_credits_per_token: Some(PRICE),
                close_poll_secs: 1,
                submit_poll_secs: 1,
                ..Settings::default()
            };
            let chain = Arc::new(RpcChain {
                rpc: Arc::new(RpcClient::new_with_commitment(
                    localnet.url(),
                    CommitmentConfig::confirmed(),
                )),
                addresses: Addresses {
                    program_id: backhaul_sdk::PROGRAM_ID,
                    config: deployment.config,
                },
            });
            oracles.push(
                Oracle::start(settings, chain)
                    .await
                    .with_context(|| format!("starting oracle {i}"))?,
            );
        }
        let urls: Vec<String> = oracles
            .iter()
            .map(|o| format!("http://{}", o.addr))
            .collect();
        global.oracles = urls.clone();
        progress.step(format!("3 oracles (threshold 2) at {}", urls.join(", ")));
        let admin = admin_with_oracles(admin, &urls);
        // The guardian watches every proposal from now on, with its own key: live, not a dry run.
        let guardian = Guardian::start(Context::with_signer(&global, guardian)?)?;
        progress.step(format!(
            "guardian {} watching the proposals (fraud proofs, vetoes)",
            guardian.key
        ));

        let mut net = Network {
            localnet,
            oracles,
            urls,
            global,
            deployment,
            genesis: START_TS,
            admin,
            operators: vec![],
            firms: vec![],
            granted: false,
            nodes: vec![],
            rng,
            progress,
            http: reqwest::Client::new(),
            guardian,
            real: None,
            dir,
        };
        net.wait_for_price().await?;
        net.enroll(operator_keys, firm_keys, opts.nodes).await?;
        Ok(net)
    }

    /// Starts the first node as a service (`node serve`) and the first firm's first client as
    /// a gateway (`firm gateway`) over loopback: every epoch then fetches real bytes through
    /// them ([`super::real`]).
    pub async fn carry_real_traffic(&mut self) -> anyhow::Result<()> {
        let (Some(node), Some(firm)) = (self.nodes.first(), self.firms.first()) else {
            bail!("real traffic needs a node and a firm");
        };
        let Some(client) = firm.clients.first() else {
            bail!("real traffic needs a client");
        };
        // The grant `grant_clients` sends (signed at the genesis, no expiry, no limit).
        let grant = backhaul_client::BuyerIdentity::new(
            crate::operator::protocol_deployment(&self.deployment),
            crate::context::signing_key(firm.ctx.signer()?),
        )
        .grant(client.verifying_key().to_bytes(), 0, START_TS, i64::MAX, 0);
        let real = super::real::RealTraffic::start(
            Context::new(&self.global)?,
            self.deployment,
            (self.genesis, EPOCH_SECS),
            &self.urls,
            super::real::RealParties {
                node: node.key.clone(),
                client: client.clone(),
                grant,
            },
            &self.dir.path().join("real"),
        )
        .await?;
        self.progress.step(format!(
            "real traffic: node {} serving over loopback, a gateway for firm {}'s client in front of it",
            real.node, firm.key
        ));
        self.real = Some(real);
        Ok(())
    }

    /// The data folder.
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Where oracle `i` publishes its datasets.
    pub fn datasets_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("oracle-{i}")).join("datasets")
    }

    fn context(&self, key: &Keypair) -> anyhow::Result<Context> {
        Context::with_signer(&self.global, key.insecure_clone())
    }

    async fn wait_for_price(&self) -> anyhow::Result<()> {
        let d = self.deployment;
        wait_for("the oracles' price", || async {
            Ok(self
                .admin
                .account::<PriceFeed>(&d.price_feed())
                .await?
                .filter(|f| f.credits_per_token == PRICE)
                .map(|_| ()))
        })
        .await?;
        self.progress.step(format!(
            "the oracles posted the price: {PRICE} credits per token"
        ));
        Ok(())
    }

    /// Tokens to the firms; operators bind their nodes. (Firms grant their clients after their
    /// first purchase, see [`Network::grant_clients`].)
    async fn enroll(
        &mut self,
        operator_keys: Vec<Keypair>,
        firm_keys: Vec<Keypair>,
        nodes: usize,
    ) -> anyhow::Result<()> {
        let d = self.deployment;
        let admin_key = self.admin.signer()?.pubkey();
        let treasury = d.ata(&admin_key);
        for chunk in firm_keys.chunks(4) {
            let mut ixs = vec![];
            for f in chunk {
                ixs.push(
                    spl_associated_token_account_interface::instruction::create_associated_token_account_idempotent(
                        &admin_key,
                        &f.pubkey(),
                        &d.mint,
                        &spl_token_interface::ID,
                    ),
                );
                ixs.push(spl_token_interface::instruction::transfer(
                    &spl_token_interface::ID,
                    &treasury,
                    &d.ata(&f.pubkey()),
                    &admin_key,
                    &[],
                    FIRM_TOKENS * TOKEN,
                )?);
            }
            crate::tx::send(&self.admin, "give the firms tokens", &ixs, &[]).await?;
        }

        for k in &operator_keys {
            self.operators.push(Operator {
                ctx: self.context(k)?,
                key: k.pubkey(),
                claimed: 0,
            });
        }
        let proto = crate::operator::protocol_deployment(&d);
        let node_keys: Vec<SigningKey> = (0..nodes)
            .map(|_| SigningKey::from_bytes(&self.rng.gen()))
            .collect();
        for (i, node) in node_keys.into_iter().enumerate() {
            let operator = i % self.operators.len();
            self.nodes.push(Node {
                identity: NodeIdentity::new(
                    proto,
                    node.clone(),
                    self.operators[operator].key.to_bytes(),
                ),
                key: node,
                operator,
            });
        }
        // Each node is bound to its operator by `operator bind`, at every oracle.
        let binds = self.nodes.iter().map(|n| {
            let op = &self.operators[n.operator];
            // Signed at the genesis, not the wall clock: the same seed gives the same signed
            // items, so the same agreed inputs and datasets, byte for byte.
            async move { crate::operator::bind_node(&op.ctx, &n.key, Some(0), Some(START_TS)).await }
        });
        for outcome in futures::future::join_all(binds).await {
            let o = outcome?;
            if o.stored_by < self.urls.len() {
                bail!(
                    "a binding reached only {} of {} oracles: {:?}",
                    o.stored_by,
                    self.urls.len(),
                    o.oracles
                );
            }
        }
        self.progress.step(format!(
            "{} nodes bound to {} operators at every oracle",
            self.nodes.len(),
            self.operators.len()
        ));

        // Firms grant three clients each, by `firm grant`.
        for k in &firm_keys {
            let clients: Vec<SigningKey> = (0..3)
                .map(|_| SigningKey::from_bytes(&self.rng.gen()))
                .collect();
            self.firms.push(Firm {
                ctx: self.context(k)?,
                key: k.pubkey(),
                clients,
                settled: 0,
            });
        }
        self.progress.step(format!(
            "{} firms hold {FIRM_TOKENS} tokens each",
            self.firms.len()
        ));
        Ok(())
    }

    /// Firms grant their clients, once they hold credit accounts.
    async fn grant_clients(&mut self) -> anyhow::Result<()> {
        let grants = self.firms.iter().flat_map(|f| {
            f.clients.iter().map(move |c| {
                let args = GrantArgs {
                    client: Pubkey::new_from_array(c.verifying_key().to_bytes()).to_string(),
                    expires_at: None,
                    expires_in_days: None,
                    credit_limit: 0,
                    epoch: Some(0),
                    issued_at: Some(START_TS),
                };
                async move { crate::firm::grant(&f.ctx, &args).await }
            })
        });
        for outcome in futures::future::join_all(grants).await {
            let o = outcome?;
            if o.stored_by < self.urls.len() {
                bail!(
                    "a grant reached only {} of {} oracles: {:?}",
                    o.stored_by,
                    self.urls.len(),
                    o.oracles
                );
            }
        }
        self.progress.step(format!(
            "{} firms granted {} clients",
            self.firms.len(),
            self.firms.iter().map(|f| f.clients.len()).sum::<usize>()
        ));
        self.granted = true;
        Ok(())
    }

    /// The chain's clock.
    pub async fn now(&self) -> anyhow::Result<i64> {
        self.admin.chain_time().await
    }

    /// Moves the chain's clock to `ts` with the endpoint's `backhaulWarpClock`.
    pub async fn warp_to(&self, ts: i64) -> anyhow::Result<()> {
        let body = serde_json::json!({
            "jsonrpc": "2.0", "id": 1, "method": "backhaulWarpClock",
            "params": [{"unixTimestamp": ts}]
        });
        let resp: serde_json::Value = self
            .http
            .post(self.localnet.url())
            .json(&body)
            .send()
            .await
            .context("backhaulWarpClock")?
            .json()
            .await
            .context("backhaulWarpClock's answer")?;
        if resp.get("result").is_none() {
            bail!("the endpoint refused to move its clock to {ts}: {resp}");
        }
        Ok(())
    }

    async fn record(&self, epoch: u64) -> anyhow::Result<Option<EpochRecord>> {
        self.admin
            .account::<EpochRecord>(&self.deployment.epoch_record(epoch))
            .await
    }

    /// One epoch: purchases, traffic, close and quorum, the challenge period, finalization,
    /// claims and settlements.
    pub async fn run_epoch(&mut self, e: u64) -> anyhow::Result<EpochRun> {
        let mut run = EpochRun {
            epoch: e,
            ..EpochRun::default()
        };
        let start = backhaul_core::epoch::epoch_start(self.genesis, EPOCH_SECS, e)
            .map_err(|err| anyhow!("epoch {e} starts out of range: {err:?}"))?;
        let end = backhaul_core::epoch::epoch_end(self.genesis, EPOCH_SECS, e)
            .map_err(|err| anyhow!("epoch {e} ends out of range: {err:?}"))?;
        let now = self.now().await?;
        if now < start || now >= end {
            bail!("the chain's clock ({now}) is not in epoch {e} [{start}, {end})");
        }

        // Firms buy credits with `firm buy`.
        let amounts: Vec<u64> = self
            .firms
            .iter()
            .map(|_| self.rng.gen_range(10..=30))
            .collect();
        let buys = self.firms.iter().zip(&amounts).map(|(f, tokens)| {
            let args = BuyArgs {
                tokens: tokens.to_string(),
                ..BuyArgs::default()
            };
            async move { crate::firm::buy(&f.ctx, &args).await }
        });
        for outcome in futures::future::join_all(buys).await {
            let o = outcome.context("buying credits")?;
            run.tokens_bought = run.tokens_bought.saturating_add(o.tokens);
            run.credits_bought = run.credits_bought.saturating_add(o.credits);
        }
        self.progress.step(format!(
            "epoch {e}: {} firms burned {} tokens for {} credits",
            self.firms.len(),
            crate::amount::format_tokens(run.tokens_bought, DECIMALS),
            run.credits_bought
        ));
        if !self.granted {
            self.grant_clients().await?;
        }

        // Clients sign receipts, nodes countersign, everything goes to every oracle.
        let proto = crate::operator::protocol_deployment(&self.deployment);
        let signing = Instant::now();
        // The node carrying real bytes carries nothing else, so what its epoch counts can be
        // compared with what it metered.
        let simulated = if self.real.is_some() {
            self.nodes.get(1..).unwrap_or_default()
        } else {
            &self.nodes[..]
        };
        let t = traffic::simulate(&mut self.rng, proto, e, start, simulated, &self.firms).await?;
        let signed_in = signing.elapsed();
        run.sessions = t.sessions;
        run.receipts = t.receipts.len();
        run.bytes_signed = t.bytes;
        let fanout = Fanout::from_urls(&self.urls, ClientConfig::default())
            .map_err(|err| anyhow!("the oracles' URLs: {err}"))?;
        let sending = Instant::now();
        let report = fanout.submit_receipts(&t.receipts).await;
        let sent_in = sending.elapsed();
        if let Some((oracle, err)) = report.failures().next() {
            bail!("submitting epoch {e}'s receipts to {oracle} failed: {err}");
        }
        let stored = report.stored_by(t.receipts.len());
        if stored.iter().any(|n| *n < self.urls.len()) {
            tracing::warn!(epoch = e, "some receipts were not stored by every oracle");
        }
        self.progress.step(format!(
            "epoch {e}: {} sessions, {} receipts signed by clients and countersigned by nodes ({:.1} s), {:.1} GiB, sent to {} oracles ({:.1} s)",
            t.sessions,
            t.receipts.len(),
            signed_in.as_secs_f64(),
            t.bytes as f64 / (1u64 << 30) as f64,
            self.urls.len(),
            sent_in.as_secs_f64()
        ));
        if let Some(real) = &self.real {
            let now = self.now().await?;
            let r = real
                .fetch(now, 4 << 20, STEP_TIMEOUT)
                .await
                .with_context(|| format!("epoch {e}'s real traffic"))?;
            self.progress.step(format!(
                "epoch {e}: real traffic: {} bytes fetched through the gateway and node {} in {:.1} s; {} bytes receipted in {} receipts, at every oracle",
                r.body_bytes, real.node, r.secs, r.bytes, r.receipts
            ));
            run.sessions += 1;
            run.receipts += usize::try_from(r.receipts).unwrap_or(usize::MAX);
            run.bytes_signed = run.bytes_signed.saturating_add(r.bytes);
            run.real = Some(r);
        }

        // The epoch ends: the oracles seal it, close it, publish the dataset and vote.
        let closing = Instant::now();
        let grace = i64::try_from(GRACE_SECS).unwrap_or(0);
        self.warp_to(end.saturating_add(grace).saturating_add(1))
            .await?;
        let record = wait_for(&format!("quorum on epoch {e}"), || async {
            Ok(self.record(e).await?.filter(|r| {
                r.status == EpochStatus::Proposed || r.status == EpochStatus::Finalized
            }))
        })
        .await?;
        self.progress.step(format!(
            "epoch {e}: closed by the oracles; {} votes reached quorum on reward root {}…",
            record.votes.len(),
            &backhaul_protocol::dataset::hex(&record.proposal.reward_root)[..16]
        ));

        // The guardian checks the proposal during its challenge period.
        let checked = self.guardian_outcome(e, record.round).await?;
        self.progress.step(format!(
            "epoch {e}: the guardian checked the proposal against its dataset: {}",
            checked.reason
        ));

        // The challenge period passes; the oracles finalize.
        self.warp_to(record.finalizable_at.saturating_add(1))
            .await?;
        wait_for(&format!("finalization of epoch {e}"), || async {
            Ok(self
                .record(e)
                .await?
                .filter(|r| r.status == EpochStatus::Finalized))
        })
        .await?;
        run.close_to_finalize_secs = closing.elapsed().as_secs_f64();
        self.progress.step(format!(
            "epoch {e}: finalized after the challenge period; {} tokens minted into the vault",
            crate::amount::format_tokens(record.proposal.allocation, DECIMALS)
        ));

        self.wait_for_datasets(e).await?;
        self.claim_and_settle(e, &mut run).await?;
        Ok(run)
    }

    /// Waits for the guardian's verdict on epoch `e`'s proposal of round `round`; anything but
    /// "passed" on the demo's honest network is an error.
    async fn guardian_outcome(&self, e: u64, round: u32) -> anyhow::Result<Outcome> {
        let log = self.guardian.log.clone();
        let outcome = wait_for(&format!("the guardian's check of epoch {e}"), || {
            let log = log.clone();
            async move { Ok(log.of(e, round)) }
        })
        .await?;
        if outcome.action != Action::Passed {
            bail!(
                "the guardian {} epoch {e}'s honest proposal: {}",
                outcome.action,
                outcome.reason
            );
        }
        Ok(outcome)
    }

    /// Waits until every oracle serves epoch `e`'s dataset (the quorum needs only two of them).
    pub async fn wait_for_datasets(&self, e: u64) -> anyhow::Result<()> {
        for url in &self.urls {
            let client = OracleClient::new(url).map_err(|err| anyhow!("{url}: {err}"))?;
            wait_for(&format!("{url} to publish epoch {e}'s dataset"), || async {
                Ok(client.dataset(e).await.ok().map(|_| ()))
            })
            .await?;
        }
        Ok(())
    }

    /// Operators whose turn it is (every other epoch) claim what they earned (`operator claim`);
    /// firms with unsettled usage settle (`firm settle`).
    async fn claim_and_settle(&mut self, e: u64, run: &mut EpochRun) -> anyhow::Result<()> {
        let bytes = OracleClient::new(&self.urls[0])
            .map_err(|err| anyhow!("{}: {err}", self.urls[0]))?
            .dataset(e)
            .await
            .map_err(|err| anyhow!("fetching epoch {e}'s dataset: {err}"))?;
        let dataset = Dataset::from_bytes(&bytes)
            .map_err(|err| anyhow!("epoch {e}'s dataset does not decode: {err}"))?;
        let rewards: HashMap<String, u64> = dataset
            .rewards
            .leaves
            .iter()
            .map(|l| (l.operator.clone(), l.cumulative))
            .collect();
        if let Some(r) = run.real.as_mut() {
            r.counted = dataset
                .nodes
                .iter()
                .find(|n| n.node == r.node)
                .map_or(0, |n| n.bytes);
        }
        let usage: HashMap<String, u64> = dataset
            .usage
            .leaves
            .iter()
            .map(|l| (l.buyer.clone(), l.cumulative))
            .collect();

        let claims = self
            .operators
            .iter()
            .enumerate()
            // Operators claim every other epoch, half of them in each (claims cost fees, and
            // the rewards add up meanwhile), so some rewards are always waiting to be claimed.
            .filter(|(i, o)| {
                (*i as u64 + e).is_multiple_of(2)
                    && rewards
                        .get(&o.key.to_string())
                        .is_some_and(|c| *c > o.claimed)
            })
            .map(|(i, o)| async move { (i, crate::operator::claim(&o.ctx, None).await) });
        for (i, outcome) in futures::future::join_all(claims).await {
            match outcome {
                Ok(o) => {
                    run.claims += 1;
                    run.claimed = run.claimed.saturating_add(o.amount);
                    self.operators[i].claimed = o.cumulative;
                }
                Err(err)
                    if matches!(
                        crate::error::command_error(&err),
                        Some(CommandError::NothingToClaim { .. })
                    ) => {}
                Err(err) => {
                    return Err(err.context(format!("operator {} claiming", self.operators[i].key)))
                }
            }
        }
        let settlements = self
            .firms
            .iter()
            .enumerate()
            .filter(|(_, f)| {
                usage
                    .get(&f.key.to_string())
                    .is_some_and(|c| *c > f.settled)
            })
            .map(|(i, f)| async move { (i, crate::firm::settle(&f.ctx, None).await) });
        for (i, outcome) in futures::future::join_all(settlements).await {
            match outcome {
                Ok(o) => {
                    run.settlements += 1;
                    run.settled = run.settled.saturating_add(o.debited);
                    run.unpaid = run.unpaid.saturating_add(o.unpaid);
                    self.firms[i].settled = o.consumed_cumulative;
                }
                Err(err)
                    if matches!(
                        crate::error::command_error(&err),
                        Some(CommandError::NothingToSettle { .. })
                    ) => {}
                Err(err) => return Err(err.context(format!("firm {} settling", self.firms[i].key))),
            }
        }
        self.progress.step(format!(
            "epoch {e}: {} operators claimed {} tokens; {} firms settled {} credits",
            run.claims,
            crate::amount::format_tokens(run.claimed, DECIMALS),
            run.settlements,
            run.settled
        ));
        Ok(())
    }

    /// Stops the real traffic's gateway and node, the guardian's watcher, the oracles, then
    /// the endpoint.
    pub async fn stop(mut self) {
        if let Some(real) = self.real.take() {
            real.stop().await;
        }
        self.guardian.stop().await;
        // Each oracle's stop may wait for its ingest writer, which outlives it while anything
        // still holds a sender; the data is on disk by then, so the wait is bounded.
        let stops = futures::future::join_all(self.oracles.into_iter().map(Oracle::stop));
        if tokio::time::timeout(Duration::from_secs(2), stops)
            .await
            .is_err()
        {
            tracing::debug!("an oracle was still stopping after 2 s; leaving it");
        }
        let localnet = self.localnet;
        let _ = tokio::task::spawn_blocking(move || localnet.shutdown()).await;
        drop(self.dir);
    }
}

/// The admin's context with the oracles' URLs.
fn admin_with_oracles(mut admin: Context, urls: &[String]) -> Context {
    admin.oracles = urls.to_vec();
    admin
}

/// Polls `f` every 100 ms until it gives `Some`, for at most [`STEP_TIMEOUT`].
async fn wait_for<T, F, Fut>(what: &str, mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        if let Some(v) = f().await? {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            bail!(
                "timed out after {}s waiting for {what}: the oracles did not get there (run with -v \
                 to see their logs)",
                STEP_TIMEOUT.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `n` loopback addresses with free ports (bound together, then released for the oracles).
fn free_loopback_addrs(n: usize) -> anyhow::Result<Vec<std::net::SocketAddr>> {
    let listeners = (0..n)
        .map(|_| std::net::TcpListener::bind(("127.0.0.1", 0)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(listeners
        .iter()
        .map(|l| l.local_addr())
        .collect::<Result<_, _>>()?)
}
