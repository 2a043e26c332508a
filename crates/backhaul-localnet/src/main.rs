//! `backhaul-localnet`: serves Solana JSON-RPC over an in-process bank with the Backhaul program.

use anyhow::Context as _;
use backhaul_localnet::solana_sdk::account::Account;
use backhaul_localnet::solana_sdk::pubkey::Pubkey;
use backhaul_localnet::solana_sdk::signature::{Keypair, Signer};
use backhaul_localnet::solana_sdk::signer::keypair::{read_keypair_file, write_keypair_file};
use backhaul_localnet::{
    Localnet, LocalnetConfig, ProgramBuild, PubsubLimits, DEFAULT_FAUCET_LAMPORTS, PROGRAM_ID,
};
use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

#[derive(Parser, Debug)]
#[command(
    name = "backhaul-localnet",
    about = "Solana JSON-RPC over an in-process Agave bank with the Backhaul program, SPL Token and ATA"
)]
struct Args {
    /// Address to listen on. Keep it on loopback: the faucet answers anyone who can connect.
    #[arg(
        long,
        default_value = "127.0.0.1:8899",
        env = "BACKHAUL_LOCALNET_LISTEN"
    )]
    listen: SocketAddr,
    /// Address of the websocket PubSub endpoint (default: the --listen address with port + 1, where
    /// web3.js and other clients look for it). PubSub is also served on the --listen port.
    #[arg(long, env = "BACKHAUL_LOCALNET_WS_LISTEN")]
    ws_listen: Option<SocketAddr>,
    /// Most websocket connections open at once (more are refused with HTTP 503).
    #[arg(long, default_value_t = PubsubLimits::default().max_connections)]
    ws_max_connections: usize,
    /// Most subscriptions per websocket connection (more are refused with a JSON-RPC error).
    #[arg(long, default_value_t = PubsubLimits::default().max_subscriptions_per_connection)]
    ws_max_subscriptions: usize,
    /// Upgrade authority written into the program's ProgramData account: a pubkey or a keypair
    /// file. Default: the faucet.
    #[arg(long)]
    upgrade_authority: Option<String>,
    /// Keypair file to use as the faucet (default: a fresh keypair).
    #[arg(long)]
    faucet_keypair: Option<PathBuf>,
    /// Write the faucet's keypair to this file (JSON, as `solana-keygen`), e.g. to use it as a
    /// payer.
    #[arg(long)]
    write_faucet_keypair: Option<PathBuf>,
    /// The faucet's starting balance in lamports.
    #[arg(long, default_value_t = DEFAULT_FAUCET_LAMPORTS)]
    faucet_lamports: u64,
    /// The clock's unix timestamp at start (default: now).
    #[arg(long)]
    unix_timestamp: Option<i64>,
    /// Let the clock advance with wall time (otherwise it moves only with backhaulWarpClock).
    #[arg(long)]
    follow_wall_clock: bool,
    /// Preload an account from a JSON file as written by `solana account --output json`
    /// (`{"pubkey": ..., "account": {"lamports", "data": [..., "base64"], "owner", ...}}`).
    /// Repeatable.
    #[arg(long = "account", value_name = "FILE")]
    accounts: Vec<PathBuf>,
    /// The program to load: a `.so` file, or `host` for the host build (debugging only).
    /// Default: `$SBF_OUT_DIR/backhaul.so`, or `target/deploy/backhaul.so` in the workspace.
    #[arg(long, env = "BACKHAUL_PROGRAM", value_name = "PATH|host")]
    program: Option<String>,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new(
                    "info,tarpc=error,solana_runtime=warn,solana_program_test=warn,solana_sbpf=warn,\
                     solana_metrics=error,solana_accounts_db=warn,agave=warn",
                )
            }),
        )
        .init();
    let args = Args::parse();

    let faucet = match &args.faucet_keypair {
        Some(path) => read_keypair_file(path)
            .map_err(|e| anyhow::anyhow!("reading faucet keypair {}: {e}", path.display()))?,
        None => Keypair::new(),
    };
    if let Some(path) = &args.write_faucet_keypair {
        write_keypair_file(&faucet, path)
            .map_err(|e| anyhow::anyhow!("writing faucet keypair {}: {e}", path.display()))?;
    }
    let upgrade_authority = args
        .upgrade_authority
        .as_deref()
        .map(parse_pubkey_or_keypair)
        .transpose()?;
    let accounts = args
        .accounts
        .iter()
        .map(read_account_file)
        .collect::<anyhow::Result<Vec<_>>>()?;
    if !args.listen.ip().is_loopback() {
        tracing::warn!(listen = %args.listen, "listening beyond loopback: anyone who can connect can use the faucet");
    }

    let program = match args.program.as_deref() {
        Some("host") => ProgramBuild::Host,
        Some(path) => ProgramBuild::Bytecode(PathBuf::from(path)),
        None => ProgramBuild::from_env()?,
    };
    let program_line = program.describe();
    let net = Localnet::start(LocalnetConfig {
        program: Some(program),
        listen: args.listen,
        upgrade_authority,
        accounts,
        unix_timestamp: args.unix_timestamp,
        follow_wall_clock: args.follow_wall_clock,
        faucet: Some(faucet),
        faucet_lamports: args.faucet_lamports,
        ws_listen: args.ws_listen,
        pubsub_limits: PubsubLimits {
            max_connections: args.ws_max_connections,
            max_subscriptions_per_connection: args.ws_max_subscriptions,
            ..PubsubLimits::default()
        },
    })?;

    println!("JSON RPC URL: {}", net.url());
    println!("WebSocket PubSub URL: {}", net.ws_url());
    println!("Program: {PROGRAM_ID} ({program_line})");
    println!("Upgrade authority: {}", net.upgrade_authority());
    println!(
        "Faucet: {} ({} SOL; requestAirdrop transfers from it)",
        net.faucet().pubkey(),
        args.faucet_lamports as f64 / 1e9
    );
    if let Some(path) = &args.write_faucet_keypair {
        println!("Faucet keypair: {}", path.display());
    }
    println!("Genesis hash: {}", net.genesis_hash());

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(wait_for_signal())?;
    tracing::info!("shutting down");
    net.shutdown();
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await?;
    Ok(())
}

fn parse_pubkey_or_keypair(s: &str) -> anyhow::Result<Pubkey> {
    if let Ok(key) = Pubkey::from_str(s) {
        return Ok(key);
    }
    read_keypair_file(s).map(|k| k.pubkey()).map_err(|e| {
        anyhow::anyhow!("--upgrade-authority {s}: neither a pubkey nor a keypair file ({e})")
    })
}

#[derive(serde::Deserialize)]
struct AccountFile {
    pubkey: String,
    account: UiAccountFile,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct UiAccountFile {
    lamports: u64,
    data: (String, String),
    owner: String,
    #[serde(default)]
    executable: bool,
    #[serde(default)]
    rent_epoch: u64,
}

fn read_account_file(path: &PathBuf) -> anyhow::Result<(Pubkey, Account)> {
    use base64::prelude::{Engine, BASE64_STANDARD};
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let file: AccountFile =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let (data, encoding) = &file.account.data;
    let data = match encoding.as_str() {
        "base64" => BASE64_STANDARD.decode(data)?,
        "base58" => bs58::decode(data).into_vec()?,
        other => anyhow::bail!("{}: unsupported data encoding {other}", path.display()),
    };
    Ok((
        Pubkey::from_str(&file.pubkey)?,
        Account {
            lamports: file.account.lamports,
            data,
            owner: Pubkey::from_str(&file.account.owner)?,
            executable: file.account.executable,
            rent_epoch: file.account.rent_epoch,
        },
    ))
}
