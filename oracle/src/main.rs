//! `backhaul-oracle`: run an oracle, or close one epoch by hand.

use anyhow::Context;
use backhaul_oracle::chain::{Addresses, RpcChain};
use backhaul_oracle::{app, Oracle, Settings};
use clap::{Parser, Subcommand};
use solana_client::nonblocking::rpc_client::RpcClient;
use solana_commitment_config::CommitmentConfig;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    version,
    about = "Backhaul oracle: ingest signed usage receipts, close epochs, serve proofs"
)]
struct Cli {
    /// TOML settings file (see oracle/settings.example.toml); BACKHAUL_ORACLE_* variables override it.
    #[arg(long, short = 'c', env = "BACKHAUL_ORACLE_SETTINGS")]
    settings: Option<PathBuf>,
    /// Listen address of the HTTP API.
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// Directory for the embedded database and the datasets.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// PostgreSQL URL (SQLite in the data directory when absent).
    #[arg(long)]
    database_url: Option<String>,
    /// Solana JSON-RPC endpoint.
    #[arg(long)]
    rpc_url: Option<String>,
    /// The deployment's config account.
    #[arg(long)]
    config_account: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the oracle until SIGTERM or Ctrl-C.
    Serve,
    /// Close one epoch now (if it is ready) and print its summary.
    Close { epoch: u64 },
    /// Print the effective settings (secrets omitted: no database URL, the RPC URL's host only).
    Settings,
}

fn settings(cli: &Cli) -> anyhow::Result<Settings> {
    let mut s = Settings::load(cli.settings.as_deref(), std::env::vars())?;
    if let Some(v) = cli.listen {
        s.listen = v;
    }
    if let Some(v) = &cli.data_dir {
        s.data_dir = v.clone();
    }
    if let Some(v) = &cli.database_url {
        s.database_url = Some(v.clone());
    }
    if let Some(v) = &cli.rpc_url {
        s.rpc_url = v.clone();
    }
    if let Some(v) = &cli.config_account {
        s.config = v.clone();
    }
    s.validate()?;
    Ok(s)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Colours only on a terminal, and never with NO_COLOR set (https://no-color.org).
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .init();
    let cli = Cli::parse();
    let settings = settings(&cli)?;
    if let Command::Settings = cli.command {
        print!("{}", toml::to_string(&settings.redacted())?);
        return Ok(());
    }
    let d = app::deployment(&settings)?;
    let rpc = Arc::new(RpcClient::new_with_commitment(
        settings.rpc_url.clone(),
        CommitmentConfig::confirmed(),
    ));
    let chain = Arc::new(RpcChain {
        rpc,
        addresses: Addresses {
            program_id: solana_sdk::pubkey::Pubkey::new_from_array(d.program_id),
            config: solana_sdk::pubkey::Pubkey::new_from_array(d.config),
        },
    });
    tracing::info!(settings = %toml::to_string(&settings.redacted()).unwrap_or_default().replace('\n', "; "), "settings");
    let oracle = Oracle::start(settings, chain).await?;
    match cli.command {
        Command::Serve => {
            shutdown_signal().await;
            tracing::info!("shutting down");
            oracle.stop().await;
        }
        Command::Close { epoch } => {
            let closed = oracle
                .closer
                .close(epoch, oracle.time.now())
                .await
                .context("closing the epoch")?;
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({
                    "epoch": epoch,
                    "dataset_hash": backhaul_protocol::dataset::hex(&closed.hash),
                    "reward_root": closed.dataset.rewards.root,
                    "usage_root": closed.dataset.usage.root,
                    "allocation": closed.dataset.allocation,
                }))?
            );
            oracle.stop().await;
        }
        Command::Settings => {}
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
