//! `backhaul-load`: drive an oracle's ingest and read APIs from a separate process and report
//! throughput, latency and the oracle's memory (see `docs/load.md`).

use backhaul_load::report;
use backhaul_load::run::{run, RunArgs};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    version,
    about = "Load generator for the Backhaul oracle: ingest and proof load on loopback, with throughput, latency and memory figures"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the local endpoint and an oracle (or use --oracle), then ingest, close the epoch,
    /// ask for proofs, and print the figures.
    Run(RunArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,solana=warn".into()),
        )
        .init();
    let Command::Run(args) = Cli::parse().command;
    let json = args.json.clone();
    let r = run(args).await?;
    print!("{}", report::text(&r));
    if let Some(path) = json {
        std::fs::write(&path, serde_json::to_vec_pretty(&r)?)
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
        tracing::info!(path = %path.display(), "figures written");
    }
    Ok(())
}
