//! The command tree (clap) and its dispatch.

use crate::context::{Context, GlobalArgs};
use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "backhaul",
    version,
    about = "Backhaul: a decentralized bandwidth network on Solana",
    long_about = "Backhaul: a decentralized bandwidth network on Solana.\n\n\
        Start with `backhaul demo`: it runs the whole network on a local endpoint."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Node operators: bind a node to your wallet, see pending rewards, claim them.
    #[command(subcommand)]
    Operator(crate::operator::OperatorCommand),
    /// AI firms: buy credits, see your balance and unsettled usage, settle, authorize clients.
    #[command(subcommand)]
    Firm(crate::firm::FirmCommand),
    /// Auditors: check the chain against every epoch's published dataset.
    Audit(crate::audit::AuditArgs),
    /// Admins: initialize a deployment and administer it.
    #[command(subcommand)]
    Admin(crate::admin::AdminCommand),
    /// Run the whole network locally: endpoint, three oracles, nodes, firms, epochs, claims, audit.
    Demo(crate::demo::DemoArgs),
}

/// Parses the arguments, runs the command and maps its result to an exit code (0 success, 1 a
/// failed command or check, 2 bad usage, which clap reports itself).
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    crate::output::init_tracing(cli.global.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let output = cli.global.output;
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            crate::output::print_error(output, &e);
            ExitCode::FAILURE
        }
    }
}

/// Runs one parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let ctx = || Context::new(&cli.global);
    match cli.command {
        Command::Operator(c) => crate::operator::run(&ctx()?, c).await,
        Command::Firm(c) => crate::firm::run(&ctx()?, c).await,
        Command::Audit(a) => crate::audit::run(&ctx()?, a).await,
        Command::Admin(c) => crate::admin::run(&ctx()?, c).await,
        Command::Demo(args) => crate::demo::run(&cli.global, args).await,
    }
}
