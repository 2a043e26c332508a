//! The command tree (clap) and its dispatch.

use crate::context::{Context, GlobalArgs};
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};
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
    /// Guardians: veto an epoch, cancel a queued governance change, pause for at most a day,
    /// watch proposals and refute or veto the bad ones.
    #[command(subcommand)]
    Guardian(crate::guardian::GuardianCommand),
    /// Oracle operators: the bond a deployment may ask of each oracle before it votes.
    #[command(subcommand)]
    Oracle(crate::oracle_bond::OracleCommand),
    /// Node operators: run a node that carries AI firms' traffic (`node serve`).
    #[command(subcommand)]
    Node(crate::node::NodeCommand),
    /// Run a relay: nodes behind NAT keep a link to it, gateways reach them through it
    /// (NODEKEY@relay://HOST:PORT). It splices connections and sees only ciphertext.
    Relay(crate::relay::RelayArgs),
    /// Auditors, operators, firms and guardians: a read-only web page over the deployment where
    /// every figure is verified from the chain and the published datasets (loopback by default).
    Dashboard(crate::dashboard::DashboardArgs),
    /// Run the whole network locally: endpoint, three oracles, nodes, firms, epochs, claims, audit.
    Demo(crate::demo::DemoArgs),
}

/// Parses the arguments, runs the command and maps its result to an exit code (0 success, 1 a
/// failed command or check, 2 bad usage, which clap reports itself).
pub fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let mut cli =
        Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.format(&mut Cli::command()).exit());
    if let Command::Node(crate::node::NodeCommand::Serve(a)) = &mut cli.command {
        a.url_given = url_given(&matches);
    }
    if let Some(refusal) = demo_refusal(&matches) {
        Cli::command()
            .error(clap::error::ErrorKind::ArgumentConflict, refusal)
            .exit();
    }
    // A watcher, a node and a gateway are services: their progress is logged at `info` by
    // default.
    let service = matches!(
        cli.command,
        Command::Guardian(crate::guardian::GuardianCommand::Watch(_))
            | Command::Node(_)
            | Command::Relay(_)
            | Command::Firm(crate::firm::FirmCommand::Gateway(_))
            | Command::Dashboard(_)
    );
    crate::output::init_tracing_for(cli.global.verbose, service);
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
        Command::Firm(crate::firm::FirmCommand::Gateway(a)) => {
            crate::gateway::run(&cli.global, &a).await
        }
        Command::Firm(c) => crate::firm::run(&ctx()?, c).await,
        Command::Audit(a) => crate::audit::run(&ctx()?, a).await,
        Command::Admin(c) => crate::admin::run(&ctx()?, c).await,
        Command::Guardian(c) => crate::guardian::run(ctx()?, c).await,
        Command::Oracle(c) => crate::oracle_bond::run(&ctx()?, c).await,
        Command::Node(c) => crate::node::run(&cli.global, c).await,
        Command::Relay(a) => crate::relay::run(&a).await,
        Command::Dashboard(a) => crate::dashboard::run(&cli.global, a).await,
        Command::Demo(args) => crate::demo::run(&cli.global, args).await,
    }
}

/// Whether `--url` was given on the command line or as `BACKHAUL_URL` (not its default), before
/// or after the subcommands.
pub fn url_given(matches: &ArgMatches) -> bool {
    let mut m = Some(matches);
    while let Some(cur) = m {
        if cur.try_contains_id("url").unwrap_or(false)
            && matches!(
                cur.value_source("url"),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            )
        {
            return true;
        }
        m = cur.subcommand().map(|(_, sub)| sub);
    }
    false
}

/// The global options `demo` has no use for (it starts its own endpoint, deployment, keys and
/// oracles, and sizes its own transactions), by argument id and flag.
const DEMO_UNUSED: [(&str, &str); 9] = [
    ("url", "--url"),
    ("keypair", "--keypair"),
    ("mint", "--mint"),
    ("config", "--config"),
    ("oracles", "--oracle"),
    ("commitment", "--commitment"),
    ("compute_unit_limit", "--compute-unit-limit"),
    ("compute_unit_price", "--with-compute-unit-price"),
    ("lookup_table", "--lookup-table"),
];

/// The options given on the command line to `demo` that it would not use. Those that come from
/// the environment (`BACKHAUL_URL`, ...) are for the other commands and are left alone.
pub fn demo_unused_options(matches: &ArgMatches) -> Vec<&'static str> {
    let Some(("demo", demo)) = matches.subcommand() else {
        return vec![];
    };
    let given = |m: &ArgMatches, id: &str| {
        m.try_contains_id(id).unwrap_or(false)
            && m.value_source(id) == Some(ValueSource::CommandLine)
    };
    DEMO_UNUSED
        .iter()
        .filter(|(id, _)| given(matches, id) || given(demo, id))
        .map(|(_, flag)| *flag)
        .collect()
}

/// Why `demo` refuses these arguments, if it does.
pub fn demo_refusal(matches: &ArgMatches) -> Option<String> {
    let unused = demo_unused_options(matches);
    let (last, rest) = unused.split_last()?;
    let (list, verb) = if rest.is_empty() {
        (last.to_string(), "is")
    } else {
        (format!("{} and {last}", rest.join(", ")), "are")
    };
    Some(format!(
        "the demo starts its own local network; {list} {verb} not used by `demo`"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(args: &[&str]) -> Option<String> {
        let matches = Cli::command()
            .try_get_matches_from(args)
            .expect("the arguments parse");
        demo_refusal(&matches)
    }

    #[test]
    fn the_demo_refuses_the_options_it_would_ignore() {
        assert_eq!(
            refusal(&["backhaul", "demo", "--url", "http://x"]).as_deref(),
            Some("the demo starts its own local network; --url is not used by `demo`")
        );
        // Before or after the subcommand, alone or with others.
        let both =
            refusal(&["backhaul", "--url", "devnet", "demo", "--mint", "M"]).expect("refused");
        assert!(
            both.contains("--url and --mint are not used by `demo`"),
            "{both}"
        );
        let three = refusal(&[
            "backhaul",
            "demo",
            "--oracle",
            "http://o",
            "--compute-unit-limit",
            "5000",
            "-k",
            "id.json",
        ])
        .expect("refused");
        assert!(
            three.contains("--keypair, --oracle and --compute-unit-limit are not used"),
            "{three}"
        );
        // What the demo uses, and other commands, are fine.
        assert_eq!(
            refusal(&["backhaul", "demo", "--epochs", "1", "-v", "-o", "json"]),
            None
        );
        assert_eq!(
            refusal(&["backhaul", "firm", "balance", "--url", "http://x"]),
            None
        );
    }
}
