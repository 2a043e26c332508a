//! The global options every command takes, following the Solana CLI's conventions, and the
//! [`Context`] built from them.

use crate::error::CommandError;
use anyhow::{anyhow, bail, Context as _};
use backhaul_client::{ClientConfig, OracleClient, RetryPolicy};
use backhaul_sdk::state::Config;
use backhaul_sdk::Deployment;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use solana_client::client_error::{ClientError, ClientErrorKind};
use solana_client::nonblocking::rpc_client::RpcClient;
use solana_commitment_config::CommitmentConfig;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::Duration;

/// Where every program account except the config holds its config: right after the 8-byte
/// discriminator.
pub const CONFIG_FIELD_OFFSET: usize = 8;

/// How results are printed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Tables and sentences for people.
    #[default]
    Display,
    /// Pretty JSON on stdout, for scripts.
    Json,
    /// One line of JSON on stdout.
    JsonCompact,
}

impl OutputFormat {
    pub fn is_json(self) -> bool {
        !matches!(self, OutputFormat::Display)
    }
}

/// Options shared by every command.
#[derive(Args, Debug, Clone)]
pub struct GlobalArgs {
    /// Solana JSON-RPC URL or moniker: mainnet-beta, testnet, devnet, localhost (or m, t, d, l).
    #[arg(
        long,
        short = 'u',
        global = true,
        env = "BACKHAUL_URL",
        default_value = "localhost"
    )]
    pub url: String,
    /// A Solana CLI keypair file (JSON array of 64 bytes). Default: ~/.config/solana/id.json.
    #[arg(long, short = 'k', global = true, env = "BACKHAUL_KEYPAIR")]
    pub keypair: Option<PathBuf>,
    /// The deployment, by its token mint.
    #[arg(long, global = true, env = "BACKHAUL_MINT", conflicts_with = "config")]
    pub mint: Option<String>,
    /// The deployment, by its config account (the mint is read from it).
    #[arg(long, global = true, env = "BACKHAUL_CONFIG")]
    pub config: Option<String>,
    /// An oracle's base URL; repeat for several (comma-separated in the environment).
    #[arg(
        long = "oracle",
        global = true,
        env = "BACKHAUL_ORACLES",
        value_delimiter = ','
    )]
    pub oracles: Vec<String>,
    /// Output format.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = OutputFormat::Display)]
    pub output: OutputFormat,
    /// Commitment for reads and confirmations: processed, confirmed or finalized.
    #[arg(long, global = true, default_value = "confirmed")]
    pub commitment: String,
    /// Compute-unit limit set on every transaction. By default each transaction is simulated
    /// first and asks for the units it used plus 10% and 1,000 units (at most 1,400,000).
    #[arg(long, global = true, value_name = "UNITS", value_parser = clap::value_parser!(u32).range(1..=i64::from(backhaul_sdk::compute::MAX_COMPUTE_UNIT_LIMIT)))]
    pub compute_unit_limit: Option<u32>,
    /// Priority fee: price per compute unit in micro-lamports (none by default).
    #[arg(long = "with-compute-unit-price", global = true)]
    pub compute_unit_price: Option<u64>,
    /// The deployment's address lookup table (`backhaul admin lookup-table` creates it): claims
    /// and settlements are then sent as v0 transactions that load the deployment's fixed accounts
    /// from it, which proofs of more than 15 levels may need to fit one transaction.
    #[arg(long, global = true, env = "BACKHAUL_LOOKUP_TABLE")]
    pub lookup_table: Option<String>,
    /// More logging on stderr (repeat for more).
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

impl Default for GlobalArgs {
    fn default() -> Self {
        GlobalArgs {
            url: "localhost".into(),
            keypair: None,
            mint: None,
            config: None,
            oracles: Vec::new(),
            output: OutputFormat::Display,
            commitment: "confirmed".into(),
            compute_unit_limit: None,
            compute_unit_price: None,
            lookup_table: None,
            verbose: 0,
        }
    }
}

/// Resolves a Solana CLI moniker (or a URL) to a JSON-RPC URL.
pub fn resolve_url(url: &str) -> anyhow::Result<String> {
    let resolved = match url {
        "m" | "mainnet-beta" => "https://api.mainnet-beta.solana.com",
        "t" | "testnet" => "https://api.testnet.solana.com",
        "d" | "devnet" => "https://api.devnet.solana.com",
        "l" | "localhost" => "http://127.0.0.1:8899",
        other if other.starts_with("http://") || other.starts_with("https://") => other,
        other => bail!(
            "--url {other:?} is neither a URL nor a moniker: use mainnet-beta, testnet, devnet, \
             localhost (or m, t, d, l), or an http(s):// URL"
        ),
    };
    Ok(resolved.to_string())
}

/// The default keypair path of the Solana CLI.
pub fn default_keypair_path() -> PathBuf {
    home().join(".config").join("solana").join("id.json")
}

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// `~/x` means `$HOME/x`, as in the Solana CLI's config.
fn expand_home(path: &Path) -> PathBuf {
    match path.strip_prefix("~") {
        Ok(rest) => home().join(rest),
        Err(_) => path.to_path_buf(),
    }
}

/// Reads a Solana CLI keypair file, with an error that says what to do.
pub fn read_keypair(path: &Path) -> anyhow::Result<Keypair> {
    let path = expand_home(path);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        anyhow!(
            "cannot read the keypair file {}: {e}. Pass --keypair <FILE> (a Solana CLI keypair, \
             as `solana-keygen new -o <FILE>` writes)",
            path.display()
        )
    })?;
    let bytes: Vec<u8> = serde_json::from_str(text.trim()).map_err(|e| {
        anyhow!(
            "{} is not a Solana CLI keypair file (a JSON array of 64 numbers): {e}. Pass \
             --keypair <FILE> with a file that `solana-keygen new -o <FILE>` wrote",
            path.display()
        )
    })?;
    if bytes.len() != 64 {
        bail!(
            "{} holds {} bytes, not the 64 of a Solana CLI keypair (secret key then public key)",
            path.display(),
            bytes.len()
        );
    }
    Keypair::try_from(bytes.as_slice()).map_err(|e| {
        anyhow!(
            "{} does not hold a valid keypair (its public half does not match its secret half): {e}",
            path.display()
        )
    })
}

/// Writes `keypair` as a Solana CLI keypair file (a JSON array of its 64 bytes).
pub fn write_keypair(path: &Path, keypair: &Keypair) -> anyhow::Result<()> {
    let json = serde_json::to_string(&keypair.to_bytes().to_vec())?;
    std::fs::write(path, json)
        .with_context(|| format!("cannot write the keypair file {}", path.display()))
}

/// The ed25519 signing key of a Solana keypair (the same key signs oracle messages).
pub fn signing_key(keypair: &Keypair) -> ed25519_dalek::SigningKey {
    let mut secret = [0u8; 32];
    secret.copy_from_slice(&keypair.to_bytes()[..32]);
    ed25519_dalek::SigningKey::from_bytes(&secret)
}

/// Parses a base58 public key named `what` (an option or argument name) in errors.
pub fn parse_pubkey(what: &str, s: &str) -> anyhow::Result<Pubkey> {
    Pubkey::from_str(s.trim()).map_err(|e| anyhow!("{what} {s:?} is not a base58 public key: {e}"))
}

/// Everything a command needs: the RPC client, the signer (read when first needed), the
/// deployment, the oracles and the output format.
pub struct Context {
    pub url: String,
    pub rpc: RpcClient,
    pub http: reqwest::Client,
    pub output: OutputFormat,
    pub oracles: Vec<String>,
    /// A fixed compute-unit limit (`--compute-unit-limit`); `None`: from a simulation.
    pub compute_unit_limit: Option<u32>,
    pub compute_unit_price: Option<u64>,
    /// `--lookup-table`: the address lookup table claims and settlements load accounts from.
    pub lookup_table: Option<Pubkey>,
    keypair_path: PathBuf,
    keypair: OnceLock<Keypair>,
    mint: Option<Pubkey>,
    config: Option<Pubkey>,
}

impl Context {
    pub fn new(args: &GlobalArgs) -> anyhow::Result<Context> {
        let url = resolve_url(&args.url)?;
        let commitment = CommitmentConfig::from_str(&args.commitment).map_err(|_| {
            anyhow!(
                "--commitment {:?}: use processed, confirmed or finalized",
                args.commitment
            )
        })?;
        Ok(Context {
            rpc: RpcClient::new_with_timeout_and_commitment(
                url.clone(),
                Duration::from_secs(30),
                commitment,
            ),
            url,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .context("cannot build the HTTP client")?,
            output: args.output,
            oracles: args.oracles.clone(),
            compute_unit_limit: args.compute_unit_limit,
            compute_unit_price: args.compute_unit_price,
            lookup_table: args
                .lookup_table
                .as_deref()
                .map(|s| parse_pubkey("--lookup-table", s))
                .transpose()?,
            keypair_path: args.keypair.clone().unwrap_or_else(default_keypair_path),
            keypair: OnceLock::new(),
            mint: args
                .mint
                .as_deref()
                .map(|s| parse_pubkey("--mint", s))
                .transpose()?,
            config: args
                .config
                .as_deref()
                .map(|s| parse_pubkey("--config", s))
                .transpose()?,
        })
    }

    /// A context whose signer is `keypair` instead of the `--keypair` file (the demo runs many
    /// actors through the same commands).
    pub fn with_signer(args: &GlobalArgs, keypair: Keypair) -> anyhow::Result<Context> {
        let ctx = Context::new(args)?;
        let _ = ctx.keypair.set(keypair);
        Ok(ctx)
    }

    /// The same context for the deployment of `mint` (after `admin init --create-mint`).
    pub fn with_mint(mut self, mint: Pubkey) -> Context {
        self.mint = Some(mint);
        self.config = None;
        self
    }

    /// The mint given with `--mint`, if any.
    pub fn mint_arg(&self) -> Option<Pubkey> {
        self.mint
    }

    /// The signer from `--keypair` (read once).
    pub fn signer(&self) -> anyhow::Result<&Keypair> {
        if let Some(k) = self.keypair.get() {
            return Ok(k);
        }
        let k = read_keypair(&self.keypair_path)?;
        Ok(self.keypair.get_or_init(|| k))
    }

    /// The signer's public key.
    pub fn signer_pubkey(&self) -> anyhow::Result<Pubkey> {
        Ok(self.signer()?.pubkey())
    }

    /// The deployment named by `--mint`, or by `--config` (whose mint is read from the chain).
    pub async fn deployment(&self) -> anyhow::Result<Deployment> {
        if let Some(mint) = self.mint {
            return Ok(Deployment::new(mint));
        }
        let Some(config) = self.config else {
            bail!(
                "no deployment given: pass --mint <MINT> or --config <CONFIG> (or set BACKHAUL_MINT)"
            );
        };
        let c: Config = self.account(&config).await?.ok_or_else(|| {
            anyhow!(
                "no config account at {config} on {}: check --config and --url",
                self.url
            )
        })?;
        let d = Deployment::new(c.mint);
        if d.config != config {
            bail!("{config} is not a config account of this program");
        }
        Ok(d)
    }

    /// The deployment and its config account, with an error saying what to do when there is none.
    pub async fn deployment_config(&self) -> anyhow::Result<(Deployment, Config)> {
        let d = self.deployment().await?;
        let c: Config = self.account(&d.config).await?.ok_or_else(|| {
            anyhow!(
                "no Backhaul deployment for mint {} on {} (config {} does not exist): check --mint \
                 and --url, or create it with `backhaul admin init`",
                d.mint,
                self.url,
                d.config
            )
        })?;
        Ok((d, c))
    }

    /// Reads and decodes an Anchor account; `None` when it does not exist.
    pub async fn account<T: anchor_lang::AccountDeserialize>(
        &self,
        key: &Pubkey,
    ) -> anyhow::Result<Option<T>> {
        let acc = self.raw_account(key).await?;
        acc.map(|a| {
            T::try_deserialize(&mut &a.data[..])
                .map_err(|e| anyhow!("account {key} does not decode as expected: {e}"))
        })
        .transpose()
    }

    /// Reads an account as stored; `None` when it does not exist.
    pub async fn raw_account(
        &self,
        key: &Pubkey,
    ) -> anyhow::Result<Option<solana_sdk::account::Account>> {
        Ok(self
            .rpc
            .get_account_with_commitment(key, self.rpc.commitment())
            .await
            .map_err(|e| self.rpc_error(e))?
            .value)
    }

    /// The chain's clock (unix seconds): epochs, price ages and grants are judged by it.
    pub async fn chain_time(&self) -> anyhow::Result<i64> {
        let acc = self
            .raw_account(&solana_sdk::sysvar::clock::ID)
            .await?
            .ok_or_else(|| anyhow!("the cluster at {} has no Clock sysvar", self.url))?;
        clock_unix_timestamp(&acc.data).ok_or_else(|| {
            anyhow!(
                "the Clock sysvar at {} is {} bytes, too short",
                self.url,
                acc.data.len()
            )
        })
    }

    /// The accounts of `program_id` that name `config` right after the discriminator (where every
    /// account of a deployment holds it), of the account type `discriminator` when one is given,
    /// as raw data (`getProgramAccounts` with memcmp filters).
    pub async fn deployment_accounts(
        &self,
        program_id: &Pubkey,
        config: &Pubkey,
        discriminator: Option<&[u8]>,
    ) -> anyhow::Result<Vec<(Pubkey, Option<Vec<u8>>)>> {
        use solana_client::rpc_config::{
            RpcAccountInfoConfig, RpcProgramAccountsConfig, UiAccountEncoding,
        };
        use solana_client::rpc_filter::{Memcmp, RpcFilterType};
        let mut filters = vec![RpcFilterType::Memcmp(Memcmp::new_raw_bytes(
            CONFIG_FIELD_OFFSET,
            config.to_bytes().to_vec(),
        ))];
        if let Some(d) = discriminator {
            filters.push(RpcFilterType::Memcmp(Memcmp::new_raw_bytes(0, d.to_vec())));
        }
        let accounts = self
            .rpc
            .get_program_ui_accounts_with_config(
                program_id,
                RpcProgramAccountsConfig {
                    filters: Some(filters),
                    account_config: RpcAccountInfoConfig {
                        encoding: Some(UiAccountEncoding::Base64),
                        commitment: Some(self.rpc.commitment()),
                        ..Default::default()
                    },
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| self.rpc_error(e))?;
        Ok(accounts
            .into_iter()
            .map(|(key, account)| (key, account.data.decode()))
            .collect())
    }

    /// The error for an RPC failure: a cluster that cannot be reached says to check `--url`.
    pub fn rpc_error(&self, e: ClientError) -> anyhow::Error {
        if let ClientErrorKind::Reqwest(r) = e.kind() {
            if r.is_connect() || r.is_timeout() {
                return CommandError::ClusterUnreachable {
                    url: self.url.clone(),
                    detail: if r.is_timeout() {
                        "timed out".into()
                    } else {
                        "connection refused".into()
                    },
                }
                .into();
            }
        }
        // Some calls wrap the transport error in a message (`AccountNotFound: pubkey=…: error
        // sending request …`): recognize those too.
        let text = e.to_string();
        if [
            "error sending request",
            "Connection refused",
            "connection refused",
            "timed out",
        ]
        .iter()
        .any(|needle| text.contains(needle))
        {
            return CommandError::ClusterUnreachable {
                url: self.url.clone(),
                detail: "no answer".into(),
            }
            .into();
        }
        if let ClientErrorKind::Io(io) = e.kind() {
            return CommandError::ClusterUnreachable {
                url: self.url.clone(),
                detail: io.to_string(),
            }
            .into();
        }
        anyhow!("the cluster at {} refused the request: {e}", self.url)
    }

    /// The error for an RPC failure (same as [`Context::rpc_error`]).
    pub fn unreachable(&self, e: ClientError) -> anyhow::Error {
        self.rpc_error(e)
    }

    /// The oracles from `--oracle`, or an error saying how to name them.
    pub fn oracle_urls(&self) -> anyhow::Result<&[String]> {
        if self.oracles.is_empty() {
            bail!(
                "no oracle given: pass --oracle <URL> (repeat it for each oracle) or set \
                 BACKHAUL_ORACLES=<URL>,<URL>"
            );
        }
        Ok(&self.oracles)
    }

    /// Clients of the oracles for reads: few retries, short waits.
    pub fn oracle_readers(&self) -> anyhow::Result<Vec<OracleClient>> {
        let config = ClientConfig {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(20),
            retry: RetryPolicy {
                max_attempts: 2,
                max_elapsed: Duration::from_secs(15),
                ..RetryPolicy::default()
            },
        };
        self.oracle_urls()?
            .iter()
            .map(|u| {
                OracleClient::with_http_client(u, config.clone(), self.http.clone())
                    .map_err(|e| anyhow!("--oracle {u:?}: {e}"))
            })
            .collect()
    }

    /// A spinner on stderr, hidden when stderr is not a terminal or the output is JSON.
    pub fn spinner(&self, message: impl Into<String>) -> ProgressBar {
        if self.output.is_json() || !std::io::stderr().is_terminal() {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
            bar.set_style(style);
        }
        bar.set_message(message.into());
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    }
}

/// `unix_timestamp` from the Clock sysvar's bytes (slot, epoch start, epoch, leader schedule
/// epoch, unix timestamp: five 8-byte little-endian fields).
pub fn clock_unix_timestamp(data: &[u8]) -> Option<i64> {
    let bytes: [u8; 8] = data.get(32..40)?.try_into().ok()?;
    Some(i64::from_le_bytes(bytes))
}

/// Wall-clock unix seconds (used for `issued_at` of signed messages, which orders them).
pub fn wall_time() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
