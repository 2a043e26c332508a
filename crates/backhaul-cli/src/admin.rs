//! Admins: initialize a deployment from a parameters file; queue, list, apply and cancel
//! governance changes (parameters, oracle set, guardians), which take effect only after the
//! governance delay; transfer the admin role, pause and unpause; and `show`, which prints a
//! deployment for everyone.

use crate::amount::format_tokens;
use crate::context::{parse_pubkey, read_keypair, write_keypair, Context};
use crate::error::CommandError;
use crate::output::{emit, format_duration, format_ts, relative};
use crate::tx;
use anyhow::{anyhow, bail};
use backhaul_core::epoch::epoch_at;
use backhaul_sdk::state::{
    Config, ConsensusParams, EconomicsParams, EmissionParams, EpochParams, PendingChange, PriceFeed,
};
use backhaul_sdk::{ix, Deployment, GovernanceChange, InitializeParams, ParamsChange};
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};
use solana_sdk::instruction::Instruction;
use solana_sdk::program_pack::Pack;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Create a deployment from a parameters file (see migrations/initial-params.toml); does
    /// nothing when it already exists with the same parameters.
    Init(InitArgs),
    /// Print the deployment: authorities, oracles, parameters, governance, price and totals.
    Show,
    /// Queue a change of the challenge period, governance delay, emission schedule, mint rate
    /// limiter, economics or consensus parameters (amounts in base units, as in the parameters
    /// file). It can be applied once the governance delay has passed; budget and consensus
    /// parameters then apply from the first epoch that has not started.
    QueueParams(QueueParamsArgs),
    /// Queue a new oracle set and threshold.
    QueueOracles(QueueOraclesArgs),
    /// Queue a new guardian set (1 to 4 keys).
    QueueGuardians(QueueGuardiansArgs),
    /// List the queued governance changes and when each becomes executable.
    Changes,
    /// Apply a queued change once its governance delay has passed (any keypair may sign).
    Apply(ChangeIdArg),
    /// Cancel a queued change (admin; guardians use `backhaul guardian cancel`).
    Cancel(ChangeIdArg),
    /// Propose a new admin; it takes over when it runs `accept-admin`.
    ProposeAdmin(KeyArg),
    /// Accept a pending admin transfer (sign with the proposed admin's keypair).
    AcceptAdmin,
    /// Pause voting, finalizing, claiming, buying and settling for at most a day (admin or
    /// guardian).
    Pause,
    /// Unpause (admin only).
    Unpause,
    /// Create the deployment's address lookup table, holding the accounts every claim and
    /// settlement names (config, mint, vault, event authority, token, system and associated
    /// token programs), and print its address. Any keypair may pay; it becomes the table's
    /// authority, which can add addresses or close the table but never change one. Pass the
    /// address as --lookup-table (BACKHAUL_LOOKUP_TABLE) to `operator claim` and `firm settle`:
    /// proofs of more than 15 levels may need it to fit one transaction.
    LookupTable,
}

/// `admin init`.
#[derive(Args, Debug, Clone, Default)]
pub struct InitArgs {
    /// The parameters file (TOML, in the shape of migrations/initial-params.toml).
    pub params: PathBuf,
    /// Also create the token mint (no freeze authority) and hand its mint authority to the
    /// deployment's config PDA.
    #[arg(long)]
    pub create_mint: bool,
    /// The new mint's keypair file; written with a fresh keypair if it does not exist (so a
    /// re-run finds the same mint). Default: a fresh keypair, not saved.
    #[arg(long, requires = "create_mint")]
    pub mint_keypair: Option<PathBuf>,
    /// Decimals of the new mint.
    #[arg(long, default_value_t = 6, requires = "create_mint")]
    pub decimals: u8,
    /// Pre-launch supply minted before the authority is handed over, in whole tokens.
    #[arg(long, requires = "create_mint")]
    pub supply: Option<String>,
    /// Who receives the pre-launch supply (its associated token account). Default: the signer.
    #[arg(long, requires = "supply")]
    pub supply_to: Option<String>,
}

/// A public key argument.
#[derive(Args, Debug, Clone)]
pub struct KeyArg {
    /// Base58 public key.
    pub key: String,
}

/// A queued change, by its id.
#[derive(Args, Debug, Clone, Copy)]
pub struct ChangeIdArg {
    /// The change's id (`backhaul admin changes` lists them).
    pub id: u64,
}

/// `admin queue-oracles`.
#[derive(Args, Debug, Clone)]
pub struct QueueOraclesArgs {
    /// The oracles' public keys (1 to 10, distinct).
    #[arg(required = true)]
    pub oracles: Vec<String>,
    /// Votes needed for quorum (more than half of the oracles).
    #[arg(long)]
    pub threshold: u8,
}

/// `admin queue-guardians`.
#[derive(Args, Debug, Clone)]
pub struct QueueGuardiansArgs {
    /// The guardians' public keys (1 to 4, distinct; none the admin or an oracle).
    #[arg(required = true)]
    pub guardians: Vec<String>,
}

/// `admin queue-params`: every option left out keeps its value. Budget and consensus values are
/// compared with the newest parameters, pending or current.
#[derive(Args, Debug, Clone, Default)]
pub struct QueueParamsArgs {
    /// Read the new parameters from a parameters file (its emission, rate_limit, economics,
    /// consensus, challenge_period_secs and governance_delay_secs); the options below override
    /// it.
    #[arg(long)]
    pub from_file: Option<PathBuf>,
    /// Time between quorum and the earliest finalize, seconds.
    #[arg(long)]
    pub challenge_period_secs: Option<u64>,
    /// Time between queueing a change and the earliest apply, seconds.
    #[arg(long)]
    pub governance_delay_secs: Option<u64>,
    /// Lamports each oracle must have bonded to vote (0: no bond); applies when the change is
    /// applied, so oracles top up their bonds during the governance delay.
    #[arg(long)]
    pub oracle_bond_lamports: Option<u64>,
    #[arg(long)]
    pub initial_per_epoch: Option<u64>,
    #[arg(long)]
    pub decay_bps: Option<u16>,
    #[arg(long)]
    pub decay_period_epochs: Option<u64>,
    #[arg(long)]
    pub floor_per_epoch: Option<u64>,
    #[arg(long)]
    pub lifetime_cap: Option<u64>,
    #[arg(long)]
    pub rate_window_secs: Option<u64>,
    #[arg(long)]
    pub rate_capacity: Option<u64>,
    #[arg(long)]
    pub price_max_age_secs: Option<u64>,
    #[arg(long)]
    pub price_max_change_bps: Option<u16>,
    #[arg(long)]
    pub net_emissions_cap: Option<u64>,
    #[arg(long)]
    pub burn_smoothing_epochs: Option<u64>,
    /// k in basis points, 1 to 10000: an epoch mints at most k times what buyers paid for the
    /// credits consumed in it, and each buyer's part only to the operators that served it (no
    /// value turns the cap off).
    #[arg(long)]
    pub usage_cap_bps: Option<u32>,
    /// Bandwidth price the oracles charge buyers: credits per GiB served (positive).
    #[arg(long)]
    pub credits_per_gib: Option<u64>,
    /// The most bytes one node-client pair counts for per epoch (positive).
    #[arg(long)]
    pub pair_cap_bytes: Option<u64>,
    /// Sessions faster than this do not count, bytes per second (positive).
    #[arg(long)]
    pub max_rate_bytes_per_sec: Option<u64>,
    /// Seconds after an epoch's end during which the oracles still take its receipts (less than
    /// half an epoch).
    #[arg(long)]
    pub grace_secs: Option<u64>,
}

// ---- the parameters file ----------------------------------------------------------------------

/// `migrations/initial-params.toml`: amounts in base units.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamsFile {
    pub admin: String,
    /// 1 to 4 keys.
    pub guardians: Vec<String>,
    pub oracles: Vec<String>,
    pub threshold: u8,
    /// Unix seconds; 0 means the chain's clock at initialization.
    #[serde(default)]
    pub genesis_ts: i64,
    pub epoch_length_secs: u64,
    pub challenge_period_secs: u64,
    /// Time between queueing a governance change and applying it: at least one epoch plus the
    /// challenge period.
    pub governance_delay_secs: u64,
    pub emission: EmissionToml,
    pub rate_limit: RateLimitToml,
    pub economics: EconomicsToml,
    pub consensus: ConsensusToml,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmissionToml {
    pub initial_per_epoch: u64,
    pub decay_bps: u16,
    pub decay_period_epochs: u64,
    pub floor_per_epoch: u64,
    pub lifetime_cap: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitToml {
    pub window_secs: u64,
    pub capacity: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EconomicsToml {
    pub price_max_age_secs: u64,
    pub price_max_change_bps: u16,
    pub net_emissions_cap: u64,
    pub burn_smoothing_epochs: u64,
    /// k in basis points, 1 to 10,000 (see [`validate_usage_cap`]).
    pub usage_cap_bps: u32,
}

/// What decides each epoch's dataset, the same for every oracle (see `docs/parameters.md`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsensusToml {
    /// Credits a buyer is charged per GiB served (positive).
    pub credits_per_gib: u64,
    /// The most bytes one node-client pair counts for per epoch (positive).
    pub pair_cap_bytes: u64,
    /// Sessions faster than this do not count, bytes per second (positive).
    pub max_rate_bytes_per_sec: u64,
    /// Seconds after an epoch's end during which its late receipts are still taken (less than
    /// half an epoch).
    pub grace_secs: u64,
}

impl From<&ConsensusToml> for ConsensusParams {
    fn from(c: &ConsensusToml) -> Self {
        ConsensusParams {
            credits_per_gib: c.credits_per_gib,
            pair_cap_bytes: c.pair_cap_bytes,
            max_rate_bytes_per_sec: c.max_rate_bytes_per_sec,
            grace_secs: c.grace_secs,
        }
    }
}

impl From<&EmissionToml> for EmissionParams {
    fn from(e: &EmissionToml) -> Self {
        EmissionParams {
            initial_per_epoch: e.initial_per_epoch,
            decay_bps: e.decay_bps,
            decay_period_epochs: e.decay_period_epochs,
            floor_per_epoch: e.floor_per_epoch,
            lifetime_cap: e.lifetime_cap,
        }
    }
}

impl From<&EconomicsToml> for EconomicsParams {
    fn from(e: &EconomicsToml) -> Self {
        EconomicsParams {
            price_max_age_secs: e.price_max_age_secs,
            price_max_change_bps: e.price_max_change_bps,
            net_emissions_cap: e.net_emissions_cap,
            burn_smoothing_epochs: e.burn_smoothing_epochs,
            usage_cap_bps: e.usage_cap_bps,
        }
    }
}

impl ParamsFile {
    pub fn from_toml(text: &str) -> anyhow::Result<ParamsFile> {
        toml::from_str(text).map_err(|e| anyhow!("{e}"))
    }

    pub fn read(path: &Path) -> anyhow::Result<ParamsFile> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            anyhow!(
                "cannot read the parameters file {}: {e}. Start from migrations/initial-params.toml",
                path.display()
            )
        })?;
        Self::from_toml(&text).map_err(|e| {
            anyhow!(
                "the parameters file {} is not in the shape of migrations/initial-params.toml: {e}",
                path.display()
            )
        })
    }

    /// The instruction's parameters; `now` stands in for `genesis_ts = 0`.
    pub fn to_params(&self, now: i64) -> anyhow::Result<InitializeParams> {
        let key = |what: &str, s: &str| {
            parse_pubkey(what, s).map_err(|e| {
                anyhow!("{e}: replace the placeholder with the key in the parameters file")
            })
        };
        Ok(InitializeParams {
            admin: key("admin", &self.admin)?,
            guardians: self
                .guardians
                .iter()
                .map(|g| key("guardian", g))
                .collect::<anyhow::Result<_>>()?,
            oracles: self
                .oracles
                .iter()
                .map(|o| key("oracle", o))
                .collect::<anyhow::Result<_>>()?,
            threshold: self.threshold,
            genesis_ts: if self.genesis_ts == 0 {
                now
            } else {
                self.genesis_ts
            },
            epoch_length_secs: self.epoch_length_secs,
            challenge_period_secs: self.challenge_period_secs,
            governance_delay_secs: self.governance_delay_secs,
            emission: (&self.emission).into(),
            rate_window_secs: self.rate_limit.window_secs,
            rate_capacity: self.rate_limit.capacity,
            economics: (&self.economics).into(),
            consensus: (&self.consensus).into(),
        })
    }
}

/// Checks `p` against the bounds `initialize` enforces (the program's own checks, run here so
/// that nothing is sent, not even the mint, when the file is out of bounds). `now` is the
/// chain's clock.
pub fn validate_params(p: &InitializeParams, now: i64) -> anyhow::Result<()> {
    use backhaul::constants::*;
    use backhaul::state::config as checks;
    let program = |what: &str, r: anchor_lang::Result<()>| {
        r.map_err(|e| {
            let e = match e {
                anchor_lang::error::Error::AnchorError(a) => {
                    format!("{} ({})", a.error_msg, a.error_name)
                }
                other => other.to_string(),
            };
            anyhow!(
                "the parameters file is out of bounds: {what}: {e}. See docs/parameters.md; \
                 nothing was sent"
            )
        })
    };
    if p.admin == Pubkey::default() {
        bail!("the admin cannot be the all-zero key; nothing was sent");
    }
    validate_oracle_set(&p.oracles, p.threshold)?;
    validate_guardian_set(&p.guardians)?;
    validate_roles(&p.admin, &p.guardians, &p.oracles)?;
    if !(MIN_EPOCH_LENGTH_SECS..=MAX_EPOCH_LENGTH_SECS).contains(&p.epoch_length_secs) {
        bail!(
            "epoch_length_secs {} is out of bounds: {MIN_EPOCH_LENGTH_SECS} to \
             {MAX_EPOCH_LENGTH_SECS}; nothing was sent",
            p.epoch_length_secs
        );
    }
    if p.genesis_ts.abs_diff(now) > MAX_GENESIS_OFFSET_SECS.unsigned_abs() {
        bail!(
            "genesis_ts {} is more than a year from the chain's clock ({now}); use 0 for \
             \"now\"; nothing was sent",
            p.genesis_ts
        );
    }
    program(
        "challenge_period_secs and governance_delay_secs (the challenge period at most half an \
         epoch, the delay at least an epoch plus the challenge period)",
        checks::validate_timing(
            p.epoch_length_secs,
            p.challenge_period_secs,
            p.governance_delay_secs,
        ),
    )?;
    program("emission", checks::validate_emission(&p.emission))?;
    validate_usage_cap(p.economics.usage_cap_bps)?;
    program("economics", checks::validate_economics(&p.economics))?;
    program(
        "consensus (credits_per_gib, pair_cap_bytes and max_rate_bytes_per_sec positive, \
         grace_secs less than half an epoch)",
        checks::validate_consensus(&p.consensus, p.epoch_length_secs),
    )?;
    program(
        "rate_limit (the capacity must hold one epoch's initial emission plus the net \
         emissions cap, and drain that much per epoch)",
        checks::validate_params(
            &EpochParams {
                emission: p.emission,
                economics: p.economics,
                rate_window_secs: p.rate_window_secs,
                rate_capacity: p.rate_capacity,
                consensus: p.consensus,
            },
            p.epoch_length_secs,
        ),
    )?;
    Ok(())
}

/// How the on-chain config differs from `p` (genesis only compared when `compare_genesis`).
pub fn differences(c: &Config, p: &InitializeParams, compare_genesis: bool) -> Vec<String> {
    let mut out = vec![];
    let mut diff = |name: &str, chain: String, file: String| {
        if chain != file {
            out.push(format!("{name} is {chain} on-chain but {file} in the file"));
        }
    };
    diff("admin", c.admin.to_string(), p.admin.to_string());
    diff("guardians", keys(&c.guardians), keys(&p.guardians));
    diff("oracles", keys(&c.oracles), keys(&p.oracles));
    diff(
        "threshold",
        c.threshold.to_string(),
        p.threshold.to_string(),
    );
    if compare_genesis {
        diff(
            "genesis_ts",
            c.genesis_ts.to_string(),
            p.genesis_ts.to_string(),
        );
    }
    diff(
        "epoch_length_secs",
        c.epoch_length_secs.to_string(),
        p.epoch_length_secs.to_string(),
    );
    diff(
        "challenge_period_secs",
        c.challenge_period_secs.to_string(),
        p.challenge_period_secs.to_string(),
    );
    diff(
        "governance_delay_secs",
        c.governance_delay_secs.to_string(),
        p.governance_delay_secs.to_string(),
    );
    diff(
        "emission",
        format!("{:?}", c.emission),
        format!("{:?}", p.emission),
    );
    diff(
        "rate_limit.window_secs",
        c.rate_limiter.window_secs.to_string(),
        p.rate_window_secs.to_string(),
    );
    diff(
        "rate_limit.capacity",
        c.rate_limiter.capacity.to_string(),
        p.rate_capacity.to_string(),
    );
    diff(
        "economics",
        format!("{:?}", c.economics),
        format!("{:?}", p.economics),
    );
    diff(
        "consensus",
        format!("{:?}", c.consensus),
        format!("{:?}", p.consensus),
    );
    out
}

/// Keys as `[a, b]`.
pub fn keys(k: &[Pubkey]) -> String {
    format!(
        "[{}]",
        k.iter()
            .map(|k| k.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

// ---- init -------------------------------------------------------------------------------------

/// What `init` did.
#[derive(Clone, Debug, Serialize)]
pub struct InitOutcome {
    pub config: String,
    pub mint: String,
    pub vault: String,
    pub price_feed: String,
    /// The deployment already existed with the file's parameters; nothing was sent.
    pub already_initialized: bool,
    /// The mint was created by this run.
    pub created_mint: bool,
    pub genesis_ts: i64,
    pub signatures: Vec<String>,
}

/// The upgrade authority recorded in the program's ProgramData account.
pub async fn upgrade_authority(ctx: &Context) -> anyhow::Result<Option<Pubkey>> {
    let key = backhaul_sdk::program_data();
    let acc = ctx.raw_account(&key).await?.ok_or_else(|| {
        anyhow!(
            "the program {} is not deployed on {} (no ProgramData account {key}): deploy it \
             first, or check --url",
            backhaul_sdk::PROGRAM_ID,
            ctx.url
        )
    })?;
    // bincode UpgradeableLoaderState::ProgramData: u32 tag 3, u64 slot, Option<Pubkey>.
    if acc.data.len() < 13 || acc.data[..4] != 3u32.to_le_bytes() {
        bail!("{key} is not the program's ProgramData account");
    }
    if acc.data[12] == 0 {
        return Ok(None);
    }
    let bytes: [u8; 32] = acc
        .data
        .get(13..45)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| anyhow!("{key}: truncated ProgramData account"))?;
    Ok(Some(Pubkey::new_from_array(bytes)))
}

/// Creates the deployment described by `args.params` (and its mint when asked).
pub async fn initialize(ctx: &Context, args: &InitArgs) -> anyhow::Result<InitOutcome> {
    let file = ParamsFile::read(&args.params)?;
    initialize_with(ctx, &file, args).await
}

/// [`initialize`] with the parameters already read.
pub async fn initialize_with(
    ctx: &Context,
    file: &ParamsFile,
    args: &InitArgs,
) -> anyhow::Result<InitOutcome> {
    let signer = ctx.signer()?;
    let now = ctx.chain_time().await?;
    let params = file.to_params(now)?;
    let mut signatures = vec![];
    let mut created_mint = false;

    let mint_keypair = if args.create_mint {
        Some(match &args.mint_keypair {
            Some(path) if path.exists() => read_keypair(path)?,
            Some(path) => {
                let k = Keypair::new();
                write_keypair(path, &k)?;
                k
            }
            None => Keypair::new(),
        })
    } else {
        None
    };
    let d = match &mint_keypair {
        Some(k) => {
            if let Some(given) = ctx.mint_arg().filter(|m| *m != k.pubkey()) {
                bail!(
                    "--mint {given} and --create-mint disagree: the mint to create is {}. Leave \
                     out --mint (and BACKHAUL_MINT) to create one, or --create-mint to use {given}",
                    k.pubkey()
                );
            }
            Deployment::new(k.pubkey())
        }
        None => ctx.deployment().await?,
    };

    if let Some(existing) = ctx.account::<Config>(&d.config).await? {
        let diffs = differences(&existing, &params, file.genesis_ts != 0);
        if !diffs.is_empty() {
            return Err(CommandError::InitializedDifferently {
                config: d.config.to_string(),
                differences: diffs,
            }
            .into());
        }
        tracing::info!(config = %d.config, "already initialized with these parameters");
        return Ok(InitOutcome {
            config: d.config.to_string(),
            mint: d.mint.to_string(),
            vault: d.vault().to_string(),
            price_feed: d.price_feed().to_string(),
            already_initialized: true,
            created_mint: false,
            genesis_ts: existing.genesis_ts,
            signatures,
        });
    }

    validate_params(&params, now)?;
    match upgrade_authority(ctx).await? {
        Some(a) if a == signer.pubkey() => {}
        Some(a) => {
            return Err(CommandError::WrongKeypair {
                signer: signer.pubkey().to_string(),
                role: "program's upgrade authority".into(),
                expected: a.to_string(),
                hint: "only the upgrade authority can initialize a deployment: pass its keypair \
                       with --keypair; nothing was sent"
                    .into(),
            }
            .into())
        }
        None => bail!(
            "the program is immutable (no upgrade authority), so no deployment can be initialized"
        ),
    }
    if let Some(mint) = &mint_keypair {
        if let Some(sig) = create_mint(ctx, &d, mint, args).await? {
            signatures.push(sig.to_string());
            created_mint = true;
        }
    }
    check_mint(ctx, &d).await?;
    let genesis_ts = params.genesis_ts;
    let sig = tx::send(
        ctx,
        "initialize",
        &[ix::initialize(&d, &signer.pubkey(), params)],
        &[],
    )
    .await?;
    signatures.push(sig.to_string());
    Ok(InitOutcome {
        config: d.config.to_string(),
        mint: d.mint.to_string(),
        vault: d.vault().to_string(),
        price_feed: d.price_feed().to_string(),
        already_initialized: false,
        created_mint,
        genesis_ts,
        signatures,
    })
}

/// Refuses a mint the program would refuse, saying how to fix it.
async fn check_mint(ctx: &Context, d: &Deployment) -> anyhow::Result<()> {
    let acc = ctx.raw_account(&d.mint).await?.ok_or_else(|| {
        anyhow!(
            "the mint {} does not exist on {}: create it first, or pass --create-mint",
            d.mint,
            ctx.url
        )
    })?;
    let mint = spl_token_interface::state::Mint::unpack(&acc.data)
        .map_err(|e| anyhow!("{} is not an SPL Token mint: {e}", d.mint))?;
    if mint.mint_authority != Some(d.config).into() {
        bail!(
            "the mint {}'s mint authority must be the deployment's config PDA {} before \
             initializing: run `spl-token authorize {} mint {}`",
            d.mint,
            d.config,
            d.mint,
            d.config
        );
    }
    if mint.freeze_authority.is_some() {
        bail!(
            "the mint {} has a freeze authority, which could freeze the rewards vault: the \
             program refuses such a mint",
            d.mint
        );
    }
    Ok(())
}

/// Creates the mint (and its pre-launch supply) and hands its authority to the config PDA; does
/// nothing when that is already done.
async fn create_mint(
    ctx: &Context,
    d: &Deployment,
    mint: &Keypair,
    args: &InitArgs,
) -> anyhow::Result<Option<solana_sdk::signature::Signature>> {
    let signer = ctx.signer()?;
    if let Some(acc) = ctx.raw_account(&d.mint).await? {
        let existing = spl_token_interface::state::Mint::unpack(&acc.data)
            .map_err(|e| anyhow!("{} exists and is not an SPL Token mint: {e}", d.mint))?;
        if existing.mint_authority == Some(d.config).into() {
            return Ok(None);
        }
        bail!(
            "the mint {} exists but its mint authority is not the config PDA {}",
            d.mint,
            d.config
        );
    }
    let space = spl_token_interface::state::Mint::LEN;
    let rent = ctx
        .rpc
        .get_minimum_balance_for_rent_exemption(space)
        .await
        .map_err(|e| ctx.rpc_error(e))?;
    let supply = match &args.supply {
        Some(supply) => {
            let amount = crate::amount::parse_tokens(supply, args.decimals)?;
            let owner = match &args.supply_to {
                Some(k) => parse_pubkey("--supply-to", k)?,
                None => signer.pubkey(),
            };
            Some((owner, amount))
        }
        None => None,
    };
    let ixs = ix::create_mint(
        d,
        &signer.pubkey(),
        rent,
        args.decimals,
        supply.as_ref().map(|(owner, amount)| (owner, *amount)),
    )?;
    let sig = tx::send(ctx, "create the mint", &ixs, &[mint]).await?;
    Ok(Some(sig))
}

// ---- show -------------------------------------------------------------------------------------

/// A deployment as `admin show` prints it.
#[derive(Clone, Debug, Serialize)]
pub struct ConfigView {
    pub config: String,
    pub mint: String,
    pub vault: String,
    pub admin: String,
    pub pending_admin: Option<String>,
    pub guardians: Vec<String>,
    pub oracles: Vec<String>,
    pub threshold: u8,
    /// Paused by the chain's clock: `chain_time < paused_until`.
    pub paused: bool,
    /// A pause ends at this time unless the admin lifts it earlier (0: never paused).
    pub paused_until: i64,
    /// Nobody may pause before this time (the cooldown after the last pause).
    pub pause_available_at: i64,
    pub decimals: u8,
    pub genesis_ts: i64,
    pub epoch_length_secs: u64,
    pub challenge_period_secs: u64,
    /// Time between queueing a governance change and the earliest apply, seconds.
    pub governance_delay_secs: u64,
    /// The id the next queued change gets.
    pub next_change_id: u64,
    /// Budget parameters applied by governance that take effect from a later epoch.
    pub pending_params: Option<PendingParamsView>,
    /// The chain's clock.
    pub chain_time: i64,
    /// The epoch the chain's clock is in.
    pub current_epoch: u64,
    /// The next epoch to be proposed and finalized (every earlier one is finalized).
    pub next_epoch: u64,
    pub emission: EmissionToml,
    pub rate_limit: RateLimitToml,
    pub rate_limiter_level: u64,
    pub economics: EconomicsToml,
    /// What decides each epoch's dataset (the epochs finalized so far and the next ones, unless
    /// `pending_params` says otherwise).
    pub consensus: ConsensusToml,
    pub price: PriceView,
    pub totals: TotalsView,
}

/// Budget and consensus parameters waiting for their first epoch.
#[derive(Clone, Debug, Serialize)]
pub struct PendingParamsView {
    pub from_epoch: u64,
    pub emission: EmissionToml,
    pub rate_limit: RateLimitToml,
    pub economics: EconomicsToml,
    pub consensus: ConsensusToml,
}

#[derive(Clone, Debug, Serialize)]
pub struct PriceView {
    /// Credits one whole token buys; 0 before the oracles first agree.
    pub credits_per_token: u64,
    pub posted_at: i64,
    pub age_secs: Option<i64>,
    /// Older than `price_max_age_secs` by the chain's clock: purchases are refused.
    pub stale: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct TotalsView {
    /// Base units.
    pub supply: u64,
    pub initial_supply: u64,
    pub vault_balance: u64,
    pub total_minted: u64,
    pub total_claimed: u64,
    pub total_burned: u64,
    pub credits_issued: u64,
    pub credits_settled: u64,
    pub credits_unpaid: u64,
}

fn emission_view(e: &EmissionParams) -> EmissionToml {
    EmissionToml {
        initial_per_epoch: e.initial_per_epoch,
        decay_bps: e.decay_bps,
        decay_period_epochs: e.decay_period_epochs,
        floor_per_epoch: e.floor_per_epoch,
        lifetime_cap: e.lifetime_cap,
    }
}

fn economics_view(e: &EconomicsParams) -> EconomicsToml {
    EconomicsToml {
        price_max_age_secs: e.price_max_age_secs,
        price_max_change_bps: e.price_max_change_bps,
        net_emissions_cap: e.net_emissions_cap,
        burn_smoothing_epochs: e.burn_smoothing_epochs,
        usage_cap_bps: e.usage_cap_bps,
    }
}

fn consensus_view(c: &ConsensusParams) -> ConsensusToml {
    ConsensusToml {
        credits_per_gib: c.credits_per_gib,
        pair_cap_bytes: c.pair_cap_bytes,
        max_rate_bytes_per_sec: c.max_rate_bytes_per_sec,
        grace_secs: c.grace_secs,
    }
}

/// Reads the deployment named by `--mint`/`--config`.
pub async fn show(ctx: &Context) -> anyhow::Result<ConfigView> {
    let (d, c) = ctx.deployment_config().await?;
    let now = ctx.chain_time().await?;
    let feed: Option<PriceFeed> = ctx.account(&d.price_feed()).await?;
    let supply = match ctx.raw_account(&d.mint).await? {
        Some(a) => spl_token_interface::state::Mint::unpack(&a.data)
            .map(|m| m.supply)
            .unwrap_or(0),
        None => 0,
    };
    let vault_balance = match ctx.raw_account(&d.vault()).await? {
        Some(a) => spl_token_interface::state::Account::unpack(&a.data)
            .map(|t| t.amount)
            .unwrap_or(0),
        None => 0,
    };
    let (price, posted_at) = feed
        .as_ref()
        .map_or((0, 0), |f| (f.credits_per_token, f.posted_at));
    let age = (price > 0).then(|| now.saturating_sub(posted_at));
    Ok(ConfigView {
        config: d.config.to_string(),
        mint: d.mint.to_string(),
        vault: c.vault.to_string(),
        admin: c.admin.to_string(),
        pending_admin: c.pending_admin.map(|k| k.to_string()),
        guardians: c.guardians.iter().map(|k| k.to_string()).collect(),
        oracles: c.oracles.iter().map(|k| k.to_string()).collect(),
        threshold: c.threshold,
        paused: c.is_paused(now),
        paused_until: c.paused_until,
        pause_available_at: c.pause_available_at,
        decimals: c.decimals,
        genesis_ts: c.genesis_ts,
        epoch_length_secs: c.epoch_length_secs,
        challenge_period_secs: c.challenge_period_secs,
        governance_delay_secs: c.governance_delay_secs,
        next_change_id: c.next_change_id,
        pending_params: c.pending_params.map(|p| PendingParamsView {
            from_epoch: p.from_epoch,
            emission: emission_view(&p.params.emission),
            rate_limit: RateLimitToml {
                window_secs: p.params.rate_window_secs,
                capacity: p.params.rate_capacity,
            },
            economics: economics_view(&p.params.economics),
            consensus: consensus_view(&p.params.consensus),
        }),
        chain_time: now,
        current_epoch: epoch_at(c.genesis_ts, c.epoch_length_secs, now).unwrap_or(0),
        next_epoch: c.next_epoch,
        emission: emission_view(&c.emission),
        rate_limit: RateLimitToml {
            window_secs: c.rate_limiter.window_secs,
            capacity: c.rate_limiter.capacity,
        },
        rate_limiter_level: c.rate_limiter.level,
        economics: economics_view(&c.economics),
        consensus: consensus_view(&c.consensus),
        price: PriceView {
            credits_per_token: price,
            posted_at,
            age_secs: age,
            stale: age
                .is_none_or(|a| u64::try_from(a).unwrap_or(0) > c.economics.price_max_age_secs),
        },
        totals: TotalsView {
            supply,
            initial_supply: c.initial_supply,
            vault_balance,
            total_minted: c.total_minted,
            total_claimed: c.total_claimed,
            total_burned: c.total_burned,
            credits_issued: c.credits_issued,
            credits_settled: c.credits_settled,
            credits_unpaid: c.credits_unpaid,
        },
    })
}

// ---- administration ---------------------------------------------------------------------------

/// `admin lookup-table`: the table created.
#[derive(Clone, Debug, Serialize)]
pub struct LookupTableOutcome {
    pub config: String,
    pub lookup_table: String,
    pub addresses: Vec<String>,
    pub signature: String,
}

/// Creates and fills the deployment's address lookup table in one transaction, its address
/// derived from the newest slot of the chain's `SlotHashes` (the program accepts any slot the
/// sysvar holds, and it holds the last 512).
pub async fn create_lookup_table(ctx: &Context) -> anyhow::Result<LookupTableOutcome> {
    let (d, _) = ctx.deployment_config().await?;
    let payer = ctx.signer_pubkey()?;
    let sysvar = solana_sdk::sysvar::slot_hashes::id();
    let account = ctx
        .raw_account(&sysvar)
        .await?
        .ok_or_else(|| anyhow!("the cluster has no SlotHashes sysvar"))?;
    let hashes: solana_sdk::slot_hashes::SlotHashes = bincode::deserialize(&account.data)
        .map_err(|e| anyhow!("the SlotHashes sysvar does not decode: {e}"))?;
    let recent_slot = hashes
        .first()
        .map(|(slot, _)| *slot)
        .ok_or_else(|| anyhow!("the SlotHashes sysvar is empty"))?;
    let (ixs, table) = backhaul_sdk::lookup_table::create(&d, &payer, &payer, recent_slot);
    let sig = tx::send(ctx, "create the lookup table", &ixs, &[]).await?;
    Ok(LookupTableOutcome {
        config: d.config.to_string(),
        lookup_table: table.to_string(),
        addresses: d
            .lookup_table_addresses()
            .iter()
            .map(Pubkey::to_string)
            .collect(),
        signature: sig.to_string(),
    })
}

/// What an administrative transaction did.
#[derive(Clone, Debug, Serialize)]
pub struct AdminOutcome {
    pub action: String,
    pub config: String,
    pub signature: String,
    /// What changed, one sentence each.
    pub changes: Vec<String>,
    /// The governance change queued, applied or cancelled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change_id: Option<u64>,
    /// When a queued change becomes executable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub executable_at: Option<i64>,
    /// The first epoch whose budget applied parameters decide.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_epoch: Option<u64>,
}

impl AdminOutcome {
    fn new(action: &str, d: &Deployment, signature: String, changes: Vec<String>) -> Self {
        AdminOutcome {
            action: action.into(),
            config: d.config.to_string(),
            signature,
            changes,
            change_id: None,
            executable_at: None,
            from_epoch: None,
        }
    }
}

/// Sends one administrative instruction (`what` names it in messages) and reports `changes`
/// under `action`.
async fn send_admin(
    ctx: &Context,
    d: &Deployment,
    action: &str,
    what: &str,
    instruction: Instruction,
    changes: Vec<String>,
) -> anyhow::Result<AdminOutcome> {
    let sig = tx::send(ctx, what, &[instruction], &[]).await?;
    Ok(AdminOutcome::new(action, d, sig.to_string(), changes))
}

/// The error for a signer that is not `role` (`expected` names who is).
pub fn wrong_keypair(signer: &Pubkey, role: &str, expected: String, action: &str) -> anyhow::Error {
    CommandError::WrongKeypair {
        signer: signer.to_string(),
        role: role.into(),
        expected,
        hint: format!("pass --keypair with the {role}'s keypair to {action}; nothing was sent"),
    }
    .into()
}

/// The deployment, its config and the signer, after checking the signer is the admin.
async fn as_admin(ctx: &Context, action: &str) -> anyhow::Result<(Deployment, Config, Pubkey)> {
    let (d, c) = ctx.deployment_config().await?;
    let signer = ctx.signer_pubkey()?;
    if signer != c.admin {
        return Err(wrong_keypair(&signer, "admin", c.admin.to_string(), action));
    }
    Ok((d, c, signer))
}

/// The parameters change `args` asks for, against `c` (challenge period and delay against the
/// current ones, budget and consensus parameters against the newest, pending or current): only
/// what differs.
pub fn params_change(c: &Config, args: &QueueParamsArgs) -> anyhow::Result<ParamsChange> {
    let file = args
        .from_file
        .as_deref()
        .map(ParamsFile::read)
        .transpose()?;
    let latest = c.latest_params();
    let mut emission = file
        .as_ref()
        .map_or(latest.emission, |f| (&f.emission).into());
    let mut economics = file
        .as_ref()
        .map_or(latest.economics, |f| (&f.economics).into());
    let mut consensus = file
        .as_ref()
        .map_or(latest.consensus, |f| (&f.consensus).into());
    let pick = |opt: Option<u64>, file: Option<u64>, current: u64| opt.or(file).unwrap_or(current);
    let challenge = pick(
        args.challenge_period_secs,
        file.as_ref().map(|f| f.challenge_period_secs),
        c.challenge_period_secs,
    );
    let delay = pick(
        args.governance_delay_secs,
        file.as_ref().map(|f| f.governance_delay_secs),
        c.governance_delay_secs,
    );
    let window = pick(
        args.rate_window_secs,
        file.as_ref().map(|f| f.rate_limit.window_secs),
        latest.rate_window_secs,
    );
    let capacity = pick(
        args.rate_capacity,
        file.as_ref().map(|f| f.rate_limit.capacity),
        latest.rate_capacity,
    );
    macro_rules! set {
        ($target:ident . $field:ident) => {
            if let Some(v) = args.$field {
                $target.$field = v;
            }
        };
    }
    set!(emission.initial_per_epoch);
    set!(emission.decay_bps);
    set!(emission.decay_period_epochs);
    set!(emission.floor_per_epoch);
    set!(emission.lifetime_cap);
    set!(economics.price_max_age_secs);
    set!(economics.price_max_change_bps);
    set!(economics.net_emissions_cap);
    set!(economics.burn_smoothing_epochs);
    set!(economics.usage_cap_bps);
    set!(consensus.credits_per_gib);
    set!(consensus.pair_cap_bytes);
    set!(consensus.max_rate_bytes_per_sec);
    set!(consensus.grace_secs);
    if economics != latest.economics {
        validate_usage_cap(economics.usage_cap_bps)?;
    }
    let differs = |new: u64, old: u64| (new != old).then_some(new);
    Ok(ParamsChange {
        challenge_period_secs: differs(challenge, c.challenge_period_secs),
        governance_delay_secs: differs(delay, c.governance_delay_secs),
        emission: (emission != latest.emission).then_some(emission),
        rate_window_secs: differs(window, latest.rate_window_secs),
        rate_capacity: differs(capacity, latest.rate_capacity),
        economics: (economics != latest.economics).then_some(economics),
        consensus: (consensus != latest.consensus).then_some(consensus),
        oracle_bond_lamports: args
            .oracle_bond_lamports
            .and_then(|b| differs(b, c.oracle_bond_lamports)),
    })
}

/// Queues `change` as the config's next change id and reports when it becomes executable.
async fn queue(
    ctx: &Context,
    action: &str,
    d: &Deployment,
    c: &Config,
    admin: &Pubkey,
    change: GovernanceChange,
) -> anyhow::Result<AdminOutcome> {
    let id = c.next_change_id;
    let changes = describe_change(&change, c);
    let sig = tx::send(
        ctx,
        "queue the change",
        &[ix::queue_change(d, admin, id, change)],
        &[],
    )
    .await
    .map_err(|e| {
        tx::rehint(e, "WrongChange", || {
            format!(
                "another change took id {id} meanwhile: run the command again (`backhaul admin \
                 changes` lists the queued changes)"
            )
        })
    })?;
    let pending: Option<PendingChange> = ctx.account(&d.pending_change(id)).await?;
    let executable_at = match pending {
        Some(p) => p.executable_at,
        None => ctx
            .chain_time()
            .await?
            .saturating_add(i64::try_from(c.governance_delay_secs).unwrap_or(i64::MAX)),
    };
    let mut o = AdminOutcome::new(action, d, sig.to_string(), changes);
    o.change_id = Some(id);
    o.executable_at = Some(executable_at);
    Ok(o)
}

/// `admin queue-params`: queues the options given (the rest keep their values).
pub async fn queue_params(ctx: &Context, args: &QueueParamsArgs) -> anyhow::Result<AdminOutcome> {
    let (d, c, admin) = as_admin(ctx, "queue a change of parameters").await?;
    let change = params_change(&c, args)?;
    if change == ParamsChange::default() {
        bail!(
            "nothing to change: every value given equals the current one (or the pending one, \
             for budget and consensus parameters). Pass at least one option that differs (see \
             `backhaul admin queue-params --help`); nothing was sent"
        );
    }
    queue(
        ctx,
        "queue-params",
        &d,
        &c,
        &admin,
        GovernanceChange::Params(change),
    )
    .await
}

/// Checks k (`economics.usage_cap_bps`) the way the program does, before sending: 1 to 10,000
/// basis points. An epoch mints at most k times what buyers paid for the credits consumed in it,
/// so a buyer serving itself through nodes of its own gets back at most k times what it burned;
/// there is no value that turns the cap off.
pub fn validate_usage_cap(usage_cap_bps: u32) -> anyhow::Result<()> {
    let max = backhaul_core::cost::MAX_USAGE_CAP_BPS;
    if !(1..=max).contains(&usage_cap_bps) {
        bail!(
            "economics.usage_cap_bps {usage_cap_bps} is out of bounds: k is 1 to {max} basis \
             points of what buyers paid for the credits they consumed (an epoch never mints more), \
             and no value turns the cap off; with 9000 (k = 0.9) a buyer that serves itself loses \
             at least 10% of what it burns. See docs/parameters.md; nothing was sent"
        );
    }
    Ok(())
}

/// Checks an oracle set the way the program does, before sending.
pub fn validate_oracle_set(oracles: &[Pubkey], threshold: u8) -> anyhow::Result<()> {
    let max = usize::from(backhaul::constants::MAX_ORACLES);
    if oracles.is_empty() || oracles.len() > max {
        bail!("give 1 to {max} oracle keys, not {}", oracles.len());
    }
    for (i, o) in oracles.iter().enumerate() {
        if *o == Pubkey::default() {
            bail!("the all-zero key cannot be an oracle");
        }
        if oracles[..i].contains(o) {
            bail!("oracle {o} is listed twice");
        }
    }
    let m = usize::from(threshold);
    if m == 0 || m > oracles.len() || m.saturating_mul(2) <= oracles.len() {
        bail!(
            "threshold {threshold} does not fit {} oracles: it must be more than half of them \
             and at most all of them",
            oracles.len()
        );
    }
    Ok(())
}

/// Checks a guardian set the way the program does, before sending.
pub fn validate_guardian_set(guardians: &[Pubkey]) -> anyhow::Result<()> {
    let max = usize::from(backhaul::constants::MAX_GUARDIANS);
    if guardians.is_empty() || guardians.len() > max {
        bail!("give 1 to {max} guardian keys, not {}", guardians.len());
    }
    for (i, g) in guardians.iter().enumerate() {
        if *g == Pubkey::default() {
            bail!("the all-zero key cannot be a guardian");
        }
        if guardians[..i].contains(g) {
            bail!("guardian {g} is listed twice");
        }
    }
    Ok(())
}

/// The admin, the guardians and the oracles must be different keys.
pub fn validate_roles(
    admin: &Pubkey,
    guardians: &[Pubkey],
    oracles: &[Pubkey],
) -> anyhow::Result<()> {
    let overlap = if guardians.contains(admin) {
        Some(format!("the admin {admin} is also a guardian"))
    } else if oracles.contains(admin) {
        Some(format!("the admin {admin} is also an oracle"))
    } else {
        guardians
            .iter()
            .find(|g| oracles.contains(g))
            .map(|g| format!("{g} is both a guardian and an oracle"))
    };
    match overlap {
        Some(why) => bail!(
            "{why}: the admin, the guardians and the oracles must be different keys; nothing was \
             sent"
        ),
        None => Ok(()),
    }
}

/// `admin queue-oracles`.
pub async fn queue_oracles(ctx: &Context, args: &QueueOraclesArgs) -> anyhow::Result<AdminOutcome> {
    let oracles = args
        .oracles
        .iter()
        .map(|o| parse_pubkey("oracle", o))
        .collect::<anyhow::Result<Vec<_>>>()?;
    validate_oracle_set(&oracles, args.threshold)?;
    let (d, c, admin) = as_admin(ctx, "queue a change of the oracle set").await?;
    validate_roles(&c.admin, &c.guardians, &oracles)?;
    queue(
        ctx,
        "queue-oracles",
        &d,
        &c,
        &admin,
        GovernanceChange::Oracles {
            oracles,
            threshold: args.threshold,
        },
    )
    .await
}

/// `admin queue-guardians`.
pub async fn queue_guardians(
    ctx: &Context,
    args: &QueueGuardiansArgs,
) -> anyhow::Result<AdminOutcome> {
    let guardians = args
        .guardians
        .iter()
        .map(|g| parse_pubkey("guardian", g))
        .collect::<anyhow::Result<Vec<_>>>()?;
    validate_guardian_set(&guardians)?;
    let (d, c, admin) = as_admin(ctx, "queue a change of the guardians").await?;
    validate_roles(&c.admin, &guardians, &c.oracles)?;
    queue(
        ctx,
        "queue-guardians",
        &d,
        &c,
        &admin,
        GovernanceChange::Guardians { guardians },
    )
    .await
}

// ---- queued changes ---------------------------------------------------------------------------

/// `params`, `oracles` or `guardians`.
pub fn change_kind(change: &GovernanceChange) -> &'static str {
    match change {
        GovernanceChange::Params(_) => "params",
        GovernanceChange::Oracles { .. } => "oracles",
        GovernanceChange::Guardians { .. } => "guardians",
    }
}

/// What `change` would do to `c`, one sentence per value (budget parameters against the newest
/// ones, pending or current).
pub fn describe_change(change: &GovernanceChange, c: &Config) -> Vec<String> {
    let mut out = vec![];
    match change {
        GovernanceChange::Params(p) => {
            let mut diff = |name: &str, old: String, new: String| {
                if old != new {
                    out.push(format!("{name} {old} -> {new}"));
                }
            };
            let latest = c.latest_params();
            if let Some(v) = p.challenge_period_secs {
                diff(
                    "challenge_period_secs",
                    c.challenge_period_secs.to_string(),
                    v.to_string(),
                );
            }
            if let Some(v) = p.governance_delay_secs {
                diff(
                    "governance_delay_secs",
                    c.governance_delay_secs.to_string(),
                    v.to_string(),
                );
            }
            if let Some(v) = p.oracle_bond_lamports {
                diff(
                    "oracle_bond_lamports",
                    c.oracle_bond_lamports.to_string(),
                    v.to_string(),
                );
            }
            if let Some(e) = &p.emission {
                let o = &latest.emission;
                diff(
                    "emission.initial_per_epoch",
                    o.initial_per_epoch.to_string(),
                    e.initial_per_epoch.to_string(),
                );
                diff(
                    "emission.decay_bps",
                    o.decay_bps.to_string(),
                    e.decay_bps.to_string(),
                );
                diff(
                    "emission.decay_period_epochs",
                    o.decay_period_epochs.to_string(),
                    e.decay_period_epochs.to_string(),
                );
                diff(
                    "emission.floor_per_epoch",
                    o.floor_per_epoch.to_string(),
                    e.floor_per_epoch.to_string(),
                );
                diff(
                    "emission.lifetime_cap",
                    o.lifetime_cap.to_string(),
                    e.lifetime_cap.to_string(),
                );
            }
            if let Some(v) = p.rate_window_secs {
                diff(
                    "rate_limit.window_secs",
                    latest.rate_window_secs.to_string(),
                    v.to_string(),
                );
            }
            if let Some(v) = p.rate_capacity {
                diff(
                    "rate_limit.capacity",
                    latest.rate_capacity.to_string(),
                    v.to_string(),
                );
            }
            if let Some(e) = &p.economics {
                let o = &latest.economics;
                diff(
                    "economics.price_max_age_secs",
                    o.price_max_age_secs.to_string(),
                    e.price_max_age_secs.to_string(),
                );
                diff(
                    "economics.price_max_change_bps",
                    o.price_max_change_bps.to_string(),
                    e.price_max_change_bps.to_string(),
                );
                diff(
                    "economics.net_emissions_cap",
                    o.net_emissions_cap.to_string(),
                    e.net_emissions_cap.to_string(),
                );
                diff(
                    "economics.burn_smoothing_epochs",
                    o.burn_smoothing_epochs.to_string(),
                    e.burn_smoothing_epochs.to_string(),
                );
                diff(
                    "economics.usage_cap_bps",
                    o.usage_cap_bps.to_string(),
                    e.usage_cap_bps.to_string(),
                );
            }
            if let Some(n) = &p.consensus {
                let o = &latest.consensus;
                diff(
                    "consensus.credits_per_gib",
                    o.credits_per_gib.to_string(),
                    n.credits_per_gib.to_string(),
                );
                diff(
                    "consensus.pair_cap_bytes",
                    o.pair_cap_bytes.to_string(),
                    n.pair_cap_bytes.to_string(),
                );
                diff(
                    "consensus.max_rate_bytes_per_sec",
                    o.max_rate_bytes_per_sec.to_string(),
                    n.max_rate_bytes_per_sec.to_string(),
                );
                diff(
                    "consensus.grace_secs",
                    o.grace_secs.to_string(),
                    n.grace_secs.to_string(),
                );
            }
            if out.is_empty() {
                out.push("parameters: the same values as now (applying changes nothing)".into());
            }
        }
        GovernanceChange::Oracles { oracles, threshold } => out.push(format!(
            "oracles {} (threshold {}) -> {} (threshold {threshold})",
            keys(&c.oracles),
            c.threshold,
            keys(oracles)
        )),
        GovernanceChange::Guardians { guardians } => out.push(format!(
            "guardians {} -> {}",
            keys(&c.guardians),
            keys(guardians)
        )),
    }
    out
}

/// One queued change as `admin changes` prints it.
#[derive(Clone, Debug, Serialize)]
pub struct ChangeView {
    pub id: u64,
    pub address: String,
    /// `params`, `oracles` or `guardians`.
    pub kind: String,
    pub queued_by: String,
    pub queued_at: i64,
    pub executable_at: i64,
    /// The chain's clock has reached `executable_at`: anyone may apply it.
    pub executable: bool,
    /// What it would change, one sentence each.
    pub summary: Vec<String>,
}

/// The queued changes of a deployment.
#[derive(Clone, Debug, Serialize)]
pub struct ChangesView {
    pub config: String,
    pub chain_time: i64,
    pub governance_delay_secs: u64,
    pub next_change_id: u64,
    pub changes: Vec<ChangeView>,
}

/// Every queued change of `d`, by id (`getProgramAccounts` by account type and config).
pub async fn pending_changes(
    ctx: &Context,
    d: &Deployment,
) -> anyhow::Result<Vec<(Pubkey, PendingChange)>> {
    use anchor_lang::{AccountDeserialize, Discriminator};
    let accounts = ctx
        .deployment_accounts(
            &backhaul_sdk::PROGRAM_ID,
            &d.config,
            Some(PendingChange::DISCRIMINATOR),
        )
        .await?;
    let mut out = vec![];
    for (key, data) in accounts {
        let data = data.ok_or_else(|| {
            anyhow!("the cluster sent account {key} in an encoding not asked for")
        })?;
        let change = PendingChange::try_deserialize(&mut &data[..])
            .map_err(|e| anyhow!("queued change {key} does not decode: {e}"))?;
        if d.pending_change(change.id) == key {
            out.push((key, change));
        }
    }
    out.sort_by_key(|(_, c)| c.id);
    Ok(out)
}

/// A queued change as listed.
pub fn change_view(key: &Pubkey, p: &PendingChange, c: &Config, now: i64) -> ChangeView {
    ChangeView {
        id: p.id,
        address: key.to_string(),
        kind: change_kind(&p.change).into(),
        queued_by: p.queued_by.to_string(),
        queued_at: p.queued_at,
        executable_at: p.executable_at,
        executable: now >= p.executable_at,
        summary: describe_change(&p.change, c),
    }
}

/// `admin changes`.
pub async fn changes(ctx: &Context) -> anyhow::Result<ChangesView> {
    let (d, c) = ctx.deployment_config().await?;
    let now = ctx.chain_time().await?;
    let list = pending_changes(ctx, &d).await?;
    Ok(ChangesView {
        config: d.config.to_string(),
        chain_time: now,
        governance_delay_secs: c.governance_delay_secs,
        next_change_id: c.next_change_id,
        changes: list
            .iter()
            .map(|(k, p)| change_view(k, p, &c, now))
            .collect(),
    })
}

/// Queued change `id`, or an error saying where it went.
pub async fn read_change(
    ctx: &Context,
    d: &Deployment,
    c: &Config,
    id: u64,
) -> anyhow::Result<PendingChange> {
    match ctx.account::<PendingChange>(&d.pending_change(id)).await? {
        Some(p) => Ok(p),
        None if id < c.next_change_id => bail!(
            "change {id} is no longer queued: it was applied or cancelled (`backhaul admin \
             changes` lists the queued ones); nothing was sent"
        ),
        None => bail!(
            "no change {id} was ever queued: the next change id is {} (`backhaul admin changes` \
             lists the queued ones); nothing was sent",
            c.next_change_id
        ),
    }
}

/// `admin apply ID`: any keypair may sign once the delay has passed.
pub async fn apply(ctx: &Context, id: u64) -> anyhow::Result<AdminOutcome> {
    let (d, c) = ctx.deployment_config().await?;
    let pending = read_change(ctx, &d, &c, id).await?;
    let now = ctx.chain_time().await?;
    if now < pending.executable_at {
        return Err(CommandError::ChangeNotReady {
            id,
            executable_at: pending.executable_at,
            now,
        }
        .into());
    }
    let summary = describe_change(&pending.change, &c);
    let waiting = c.pending_params.map(|p| p.from_epoch);
    let executable_at = pending.executable_at;
    let sig = tx::send(
        ctx,
        "apply the change",
        &[ix::apply_change(&d, id, &pending.queued_by)],
        &[],
    )
    .await
    .map_err(|e| {
        let e = tx::rehint(e, "ChangeNotReady", || {
            format!(
                "wait until {} and run `backhaul admin apply {id}` again",
                format_ts(executable_at)
            )
        });
        tx::rehint(e, "BudgetChangePending", || match waiting {
            Some(from) => format!(
                "the budget parameters applied earlier take effect from epoch {from}: run \
                 `backhaul admin apply {id}` again once epoch {} is finalized",
                from.saturating_sub(1)
            ),
            None => format!(
                "run `backhaul admin apply {id}` again once the epoch the earlier parameters wait \
                 for is finalized"
            ),
        })
    })?;
    let after: Option<Config> = ctx.account(&d.config).await?;
    let mut changes = summary;
    let from_epoch = match (&pending.change, after.and_then(|a| a.pending_params)) {
        (GovernanceChange::Params(p), Some(pp))
            if p.emission.is_some()
                || p.economics.is_some()
                || p.rate_window_secs.is_some()
                || p.rate_capacity.is_some()
                || p.consensus.is_some() =>
        {
            changes.push(format!(
                "the budget and consensus parameters apply from epoch {}",
                pp.from_epoch
            ));
            Some(pp.from_epoch)
        }
        _ => None,
    };
    let mut o = AdminOutcome::new("apply", &d, sig.to_string(), changes);
    o.change_id = Some(id);
    o.from_epoch = from_epoch;
    Ok(o)
}

/// Cancels change `id`, signed by the admin or a guardian (`guardian` says which command runs,
/// for the messages).
pub async fn cancel(ctx: &Context, id: u64, guardian: bool) -> anyhow::Result<AdminOutcome> {
    let (d, c) = ctx.deployment_config().await?;
    let signer = ctx.signer_pubkey()?;
    if guardian && !c.is_guardian(&signer) {
        return Err(wrong_keypair(
            &signer,
            "guardian",
            keys(&c.guardians),
            "cancel a change as a guardian",
        ));
    }
    if !guardian && signer != c.admin {
        return Err(wrong_keypair(
            &signer,
            "admin",
            c.admin.to_string(),
            "cancel a change (a guardian runs `backhaul guardian cancel`)",
        ));
    }
    let pending = read_change(ctx, &d, &c, id).await?;
    if signer != c.admin && !pending.change.cancellable_by_guardian(&signer) {
        bail!(
            "a guardian cannot cancel change {id}: it is a guardian set that leaves {signer} out. \
             Ask the admin or a guardian that stays to cancel it; nothing was sent"
        );
    }
    let mut changes = vec![format!(
        "cancelled change {id} ({}) queued at {}; it will never apply:",
        change_kind(&pending.change),
        format_ts(pending.queued_at)
    )];
    changes.extend(
        describe_change(&pending.change, &c)
            .into_iter()
            .map(|s| format!("  {s}")),
    );
    let mut o = send_admin(
        ctx,
        &d,
        "cancel",
        "cancel the change",
        ix::cancel_change(&d, &signer, id, &pending.queued_by),
        changes,
    )
    .await?;
    o.change_id = Some(id);
    Ok(o)
}

pub async fn propose_admin(ctx: &Context, new_admin: &Pubkey) -> anyhow::Result<AdminOutcome> {
    if *new_admin == Pubkey::default() {
        bail!("the all-zero key cannot be the admin");
    }
    let (d, _, admin) = as_admin(ctx, "propose a new admin").await?;
    send_admin(
        ctx,
        &d,
        "propose-admin",
        "propose the admin",
        ix::propose_admin(&d, &admin, *new_admin),
        vec![format!(
            "pending admin {new_admin}: it takes over when it runs `backhaul admin accept-admin`"
        )],
    )
    .await
}

pub async fn accept_admin(ctx: &Context) -> anyhow::Result<AdminOutcome> {
    let (d, c) = ctx.deployment_config().await?;
    let signer = ctx.signer_pubkey()?;
    let Some(pending) = c.pending_admin else {
        bail!(
            "no admin transfer is pending: the admin ({}) must first run `backhaul admin \
             propose-admin {signer}`; nothing was sent",
            c.admin
        );
    };
    if signer != pending {
        return Err(wrong_keypair(
            &signer,
            "pending admin",
            pending.to_string(),
            "accept the admin role",
        ));
    }
    send_admin(
        ctx,
        &d,
        "accept-admin",
        "accept the admin role",
        ix::accept_admin(&d, &signer),
        vec![format!("admin {} -> {signer}", c.admin)],
    )
    .await
}

/// Pauses (admin or guardian, for at most a day, not during the cooldown after a pause) or
/// unpauses (admin).
pub async fn set_paused(ctx: &Context, paused: bool) -> anyhow::Result<AdminOutcome> {
    let (d, c) = ctx.deployment_config().await?;
    let signer = ctx.signer_pubkey()?;
    if paused && signer != c.admin && !c.is_guardian(&signer) {
        return Err(wrong_keypair(
            &signer,
            "admin or guardian",
            format!("admin {}, guardians {}", c.admin, keys(&c.guardians)),
            "pause",
        ));
    }
    if !paused && signer != c.admin {
        return Err(wrong_keypair(
            &signer,
            "admin",
            c.admin.to_string(),
            "unpause (guardians can only pause)",
        ));
    }
    let now = ctx.chain_time().await?;
    if paused && c.is_paused(now) {
        bail!(
            "the deployment is already paused until {} ({}); nothing was sent",
            format_ts(c.paused_until),
            relative(c.paused_until, now)
        );
    }
    if paused && now < c.pause_available_at {
        bail!(
            "nobody can pause before {} ({}): a pause ended less than {} ago (the cooldown \
             between pauses); nothing was sent",
            format_ts(c.pause_available_at),
            relative(c.pause_available_at, now),
            format_duration(backhaul::constants::PAUSE_COOLDOWN_SECS.unsigned_abs())
        );
    }
    if !paused && !c.is_paused(now) {
        bail!("the deployment is already running (not paused); nothing was sent");
    }
    let action = if paused { "pause" } else { "unpause" };
    let available_at = c.pause_available_at;
    let sig = tx::send(ctx, action, &[ix::set_paused(&d, &signer, paused)], &[])
        .await
        .map_err(|e| {
            tx::rehint(e, "PauseCoolingDown", || {
                format!("wait until {}", format_ts(available_at))
            })
        })?;
    let after: Option<Config> = ctx.account(&d.config).await?;
    let changes = match after {
        Some(a) if paused => vec![format!(
            "paused until {} unless the admin unpauses earlier; nobody can pause again before {}",
            format_ts(a.paused_until),
            format_ts(a.pause_available_at)
        )],
        Some(a) => vec![format!(
            "unpaused; nobody can pause again before {}",
            format_ts(a.pause_available_at)
        )],
        None => vec![format!("paused {paused}")],
    };
    Ok(AdminOutcome::new(action, &d, sig.to_string(), changes))
}

// ---- dispatch ---------------------------------------------------------------------------------

/// Prints what an administrative transaction did.
pub fn print_admin(o: &AdminOutcome) {
    match (o.change_id, o.executable_at) {
        (Some(id), Some(at)) => {
            println!(
                "{}: queued change {id} (signature {})",
                o.action, o.signature
            );
            for c in &o.changes {
                println!("  {c}");
            }
            println!(
                "  executable at {}: then anyone can run `backhaul admin apply {id}`; until \
                 then the admin or a guardian can cancel it",
                format_ts(at)
            );
        }
        _ => {
            println!("{}: done (signature {})", o.action, o.signature);
            for c in &o.changes {
                println!("  {c}");
            }
        }
    }
}

fn print_changes(v: &ChangesView) {
    println!(
        "Queued changes of {} (the clock: {}; governance delay {}; next change id {})",
        v.config,
        format_ts(v.chain_time),
        format_duration(v.governance_delay_secs),
        v.next_change_id
    );
    if v.changes.is_empty() {
        println!("  none");
    }
    print_change_list(&v.changes, v.chain_time);
}

/// The lines `admin changes` and `guardian show` print for queued changes.
pub fn print_change_list(changes: &[ChangeView], now: i64) {
    for c in changes {
        println!(
            "  change {} ({}), queued at {} by {}",
            c.id,
            c.kind,
            format_ts(c.queued_at),
            c.queued_by
        );
        for s in &c.summary {
            println!("      {s}");
        }
        if c.executable {
            println!(
                "      executable since {}: run `backhaul admin apply {}`",
                format_ts(c.executable_at),
                c.id
            );
        } else {
            println!(
                "      executable at {} ({})",
                format_ts(c.executable_at),
                relative(c.executable_at, now)
            );
        }
    }
}

pub async fn run(ctx: &Context, command: AdminCommand) -> anyhow::Result<ExitCode> {
    let out = ctx.output;
    match command {
        AdminCommand::Init(args) => {
            let o = initialize(ctx, &args).await?;
            emit(out, &o, |o| {
                if o.already_initialized {
                    println!("already initialized: config {} (mint {}) holds these parameters; nothing was changed", o.config, o.mint);
                } else {
                    println!("initialized: config {}", o.config);
                    println!(
                        "  mint        {}{}",
                        o.mint,
                        if o.created_mint { " (created)" } else { "" }
                    );
                    println!("  vault       {}", o.vault);
                    println!("  price feed  {}", o.price_feed);
                    println!("  genesis     {}", o.genesis_ts);
                    for s in &o.signatures {
                        println!("  signature   {s}");
                    }
                    println!(
                        "use --mint {} (or BACKHAUL_MINT) with the other commands",
                        o.mint
                    );
                }
            });
        }
        AdminCommand::Show => {
            let v = show(ctx).await?;
            emit(out, &v, print_config);
        }
        AdminCommand::QueueParams(args) => emit(out, &queue_params(ctx, &args).await?, print_admin),
        AdminCommand::QueueOracles(args) => {
            emit(out, &queue_oracles(ctx, &args).await?, print_admin)
        }
        AdminCommand::QueueGuardians(args) => {
            emit(out, &queue_guardians(ctx, &args).await?, print_admin)
        }
        AdminCommand::Changes => emit(out, &changes(ctx).await?, print_changes),
        AdminCommand::Apply(a) => emit(out, &apply(ctx, a.id).await?, print_admin),
        AdminCommand::Cancel(a) => emit(out, &cancel(ctx, a.id, false).await?, print_admin),
        AdminCommand::ProposeAdmin(k) => {
            let key = parse_pubkey("admin", &k.key)?;
            emit(out, &propose_admin(ctx, &key).await?, print_admin)
        }
        AdminCommand::AcceptAdmin => emit(out, &accept_admin(ctx).await?, print_admin),
        AdminCommand::Pause => emit(out, &set_paused(ctx, true).await?, print_admin),
        AdminCommand::Unpause => emit(out, &set_paused(ctx, false).await?, print_admin),
        AdminCommand::LookupTable => emit(out, &create_lookup_table(ctx).await?, |o| {
            println!(
                "created lookup table {} for config {} ({} addresses; signature {})",
                o.lookup_table,
                o.config,
                o.addresses.len(),
                o.signature
            );
            println!(
                "use --lookup-table {} (or BACKHAUL_LOOKUP_TABLE) for claims and settlements",
                o.lookup_table
            );
        }),
    }
    Ok(ExitCode::SUCCESS)
}

/// The pause state in words, by the chain's clock `now`.
pub fn pause_state(paused_until: i64, pause_available_at: i64, now: i64) -> String {
    if now < paused_until {
        format!(
            "YES, until {} ({}) unless the admin unpauses",
            format_ts(paused_until),
            relative(paused_until, now)
        )
    } else if now < pause_available_at {
        format!(
            "no (cooling down: nobody can pause before {}, {})",
            format_ts(pause_available_at),
            relative(pause_available_at, now)
        )
    } else {
        "no".into()
    }
}

fn print_config(v: &ConfigView) {
    let t = |a: u64| format_tokens(a, v.decimals);
    println!("Deployment {}", v.config);
    println!("  mint              {} ({} decimals)", v.mint, v.decimals);
    println!("  vault             {}", v.vault);
    println!("  admin             {}", v.admin);
    if let Some(p) = &v.pending_admin {
        println!("  pending admin     {p}");
    }
    println!(
        "  guardians         {}: {}",
        v.guardians.len(),
        v.guardians.join(", ")
    );
    println!(
        "  oracles           {} of {}: {}",
        v.threshold,
        v.oracles.len(),
        v.oracles.join(", ")
    );
    println!(
        "  paused            {}",
        pause_state(v.paused_until, v.pause_available_at, v.chain_time)
    );
    println!(
        "  epochs            {} s from {}; the clock ({}) is in epoch {}; next to finalize: {}",
        v.epoch_length_secs, v.genesis_ts, v.chain_time, v.current_epoch, v.next_epoch
    );
    println!("  challenge period  {} s", v.challenge_period_secs);
    println!(
        "  governance        changes wait {} s ({}) after they are queued; next change id {} \
         (`backhaul admin changes` lists the queued ones)",
        v.governance_delay_secs,
        format_duration(v.governance_delay_secs),
        v.next_change_id
    );
    let print_consensus = |label: &str, c: &ConsensusToml| {
        println!(
            "  {label:<17} {} credits per GiB, pair cap {} bytes, max rate {} bytes/s, grace {} s",
            c.credits_per_gib, c.pair_cap_bytes, c.max_rate_bytes_per_sec, c.grace_secs
        );
    };
    let print_budget = |label: &str, e: &EmissionToml, r: &RateLimitToml, ec: &EconomicsToml| {
        println!(
            "  {label:<17} {} per epoch, decay {} bps every {} epochs, floor {}, lifetime cap {}",
            t(e.initial_per_epoch),
            e.decay_bps,
            e.decay_period_epochs,
            t(e.floor_per_epoch),
            t(e.lifetime_cap)
        );
        println!(
            "  {:<17} rate limit {} per {} s; price max age {} s, max change {} bps, net \
             emissions cap {}, smoothing {} epochs, paid-usage cap k = {} bps",
            "",
            t(r.capacity),
            r.window_secs,
            ec.price_max_age_secs,
            ec.price_max_change_bps,
            t(ec.net_emissions_cap),
            ec.burn_smoothing_epochs,
            ec.usage_cap_bps
        );
    };
    println!(
        "  emission          {} per epoch, decay {} bps every {} epochs, floor {}, lifetime cap {}",
        t(v.emission.initial_per_epoch),
        v.emission.decay_bps,
        v.emission.decay_period_epochs,
        t(v.emission.floor_per_epoch),
        t(v.emission.lifetime_cap)
    );
    println!(
        "  rate limit        {} per {} s (level {})",
        t(v.rate_limit.capacity),
        v.rate_limit.window_secs,
        t(v.rate_limiter_level)
    );
    println!(
        "  economics         price max age {} s, max change {} bps, net emissions cap {}, smoothing {} epochs, paid-usage cap k = {} bps",
        v.economics.price_max_age_secs,
        v.economics.price_max_change_bps,
        t(v.economics.net_emissions_cap),
        v.economics.burn_smoothing_epochs,
        v.economics.usage_cap_bps
    );
    print_consensus("consensus", &v.consensus);
    match &v.pending_params {
        Some(p) => {
            let label = format!("from epoch {}", p.from_epoch);
            print_budget(&label, &p.emission, &p.rate_limit, &p.economics);
            print_consensus("", &p.consensus);
        }
        None => println!("  pending params    none"),
    }
    match v.price.age_secs {
        Some(age) => println!(
            "  price             {} credits per token, posted {age} s ago{}",
            v.price.credits_per_token,
            if v.price.stale {
                " (STALE: purchases refused)"
            } else {
                ""
            }
        ),
        None => println!("  price             none posted yet"),
    }
    let s = &v.totals;
    println!(
        "  supply            {} (initial {}); minted {}, claimed {}, in the vault {}, burned {}",
        t(s.supply),
        t(s.initial_supply),
        t(s.total_minted),
        t(s.total_claimed),
        t(s.vault_balance),
        t(s.total_burned)
    );
    println!(
        "  credits           issued {}, settled {}, unpaid {}",
        s.credits_issued, s.credits_settled, s.credits_unpaid
    );
}

/// `InitArgs` for a parameters file, with no mint creation.
impl InitArgs {
    pub fn for_file(params: impl Into<PathBuf>) -> InitArgs {
        InitArgs {
            params: params.into(),
            decimals: 6,
            ..InitArgs::default()
        }
    }
}
