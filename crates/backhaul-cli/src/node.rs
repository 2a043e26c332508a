//! `backhaul node serve`: the node service of `backhaul_node::server`, configured from a settings
//! file, `BACKHAUL_NODE_*` variables and flags, with what only the command line has: the chain
//! (the deployment's epoch timing, the chain's clock) and the grant check that refuses buyers
//! without credits ([`CreditCheck`]).

use crate::context::{wall_time, Context, GlobalArgs};
use crate::operator::protocol_deployment;
use anyhow::{anyhow, bail, Context as _};
use backhaul_client::{ClientConfig, OracleClient, RetryPolicy};
use backhaul_node::delivery::{Delivery, QueueStore};
use backhaul_node::queue::Queue;
use backhaul_node::server::{Limits, Server};
use backhaul_node::session::{BoxFuture, GrantCheck, NodeContext};
use backhaul_node::settings::{parse_listen, read_keypair, NodeSettings};
use backhaul_protocol::SignedGrant;
use backhaul_sdk::state::CreditAccount;
use backhaul_sdk::Deployment;
use clap::{Args, Subcommand};
use serde::Serialize;
use solana_sdk::pubkey::Pubkey;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a buyer's credit check is trusted.
pub const CREDIT_CACHE: Duration = Duration::from_secs(30);

/// How often the chain's clock is read again.
const CLOCK_REFRESH: Duration = Duration::from_secs(30);

#[derive(Subcommand, Debug)]
pub enum NodeCommand {
    /// Run a node: carry AI firms' traffic out of this connection, metered in receipts that
    /// their gateways sign and the node countersigns and sends to the oracles. Runs until
    /// SIGTERM or Ctrl-C.
    Serve(ServeArgs),
}

/// `node serve`'s options; each overrides the settings file and its `BACKHAUL_NODE_*` variable.
#[derive(Args, Debug, Clone, Default)]
pub struct ServeArgs {
    /// TOML settings file (crates/backhaul-node/node.example.toml lists every key);
    /// BACKHAUL_NODE_<KEY> variables override it.
    #[arg(long, env = "BACKHAUL_NODE_SETTINGS")]
    pub settings: Option<PathBuf>,
    /// Where gateways connect (default 0.0.0.0:7700); `off`: no port, reached through --relay
    /// only.
    #[arg(long, value_name = "ADDR|off", value_parser = parse_listen_arg)]
    pub listen: Option<Listen>,
    /// Keep a link to this relay (HOST:PORT, `backhaul relay`): gateways reach the node through
    /// it, with no open port.
    #[arg(long, value_name = "HOST:PORT")]
    pub relay: Option<String>,
    /// Where gateways are told to reach the node, in the adverts sent to every oracle:
    /// HOST:PORT or relay://HOST:PORT (default: the relay, if any).
    #[arg(long, value_name = "ENDPOINT")]
    pub advertise: Option<String>,
    /// The node's key file (a Solana CLI keypair; bind it with `backhaul operator bind`).
    #[arg(long)]
    pub node_keypair: Option<PathBuf>,
    /// The receipt queue and the month's volume (default ./node-data).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Serve Prometheus metrics on http://ADDR/metrics.
    #[arg(long)]
    pub metrics_listen: Option<SocketAddr>,
    /// A destination port sessions may use; repeat (replaces the settings' list, 80 and 443 by
    /// default).
    #[arg(long = "port", value_delimiter = ',')]
    pub ports: Vec<u16>,
    /// Let sessions reach loopback destinations: for tests with a local origin only.
    #[arg(long)]
    pub allow_loopback: bool,
    /// Ask for a receipt every this many bytes (default 1 MiB).
    #[arg(long)]
    pub receipt_every_bytes: Option<u64>,
    /// Relay at most this many bytes beyond the last countersigned receipt (default 4 MiB).
    #[arg(long)]
    pub max_unreceipted_bytes: Option<u64>,
    /// Sessions at once (default 256).
    #[arg(long)]
    pub max_sessions: Option<usize>,
    /// Bytes per second across sessions (default: no limit).
    #[arg(long, value_name = "BYTES_PER_SEC")]
    pub bandwidth_limit: Option<u64>,
    /// Bytes per calendar month after which new sessions are refused (default: no limit).
    #[arg(long, value_name = "BYTES")]
    pub monthly_limit: Option<u64>,
    /// Seconds to wait for a handshake, a request, a destination or a receipt (default 30).
    #[arg(long)]
    pub timeout_secs: Option<u64>,
    /// Print the effective settings (TOML) and exit.
    #[arg(long)]
    pub print_settings: bool,
    /// Whether --url was given (on the command line or as BACKHAUL_URL); otherwise the
    /// settings' rpc_url applies. Set by the command line's parser.
    #[arg(skip)]
    pub url_given: bool,
}

/// `--listen`'s value: an address, or none (`off`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listen(pub Option<SocketAddr>);

fn parse_listen_arg(v: &str) -> Result<Listen, String> {
    parse_listen(v).map(Listen)
}

/// The settings from the file, the environment and the flags.
pub fn settings(args: &ServeArgs) -> anyhow::Result<NodeSettings> {
    let mut s = NodeSettings::load(args.settings.as_deref(), std::env::vars())?;
    if let Some(Listen(v)) = args.listen {
        s.listen = v;
    }
    if args.relay.is_some() {
        s.relay = args.relay.clone();
    }
    if args.advertise.is_some() {
        s.advertise = args.advertise.clone();
    }
    if let Some(v) = &args.node_keypair {
        s.node_keypair = v.clone();
    }
    if let Some(v) = &args.data_dir {
        s.data_dir = v.clone();
    }
    if args.metrics_listen.is_some() {
        s.metrics_listen = args.metrics_listen;
    }
    if !args.ports.is_empty() {
        s.ports = args.ports.clone();
    }
    if args.allow_loopback {
        s.allow_loopback = true;
    }
    if let Some(v) = args.receipt_every_bytes {
        s.receipt_every_bytes = v;
    }
    if let Some(v) = args.max_unreceipted_bytes {
        s.max_unreceipted_bytes = v;
    }
    if let Some(v) = args.max_sessions {
        s.max_sessions = v;
    }
    if let Some(v) = args.bandwidth_limit {
        s.bandwidth_limit_bytes_per_sec = v;
    }
    if let Some(v) = args.monthly_limit {
        s.monthly_limit_bytes = v;
    }
    if let Some(v) = args.timeout_secs {
        s.timeout_secs = v;
    }
    s.validate()?;
    Ok(s)
}

/// The global options with the settings' chain, deployment and oracles where the command line
/// and its environment name none.
pub fn global_with(global: &GlobalArgs, s: &NodeSettings, url_given: bool) -> GlobalArgs {
    let mut g = global.clone();
    if !url_given {
        if let Some(u) = &s.rpc_url {
            g.url = u.clone();
        }
    }
    if g.mint.is_none() && g.config.is_none() {
        g.mint = s.mint.clone();
        g.config = s.config.clone();
    }
    if g.oracles.is_empty() {
        g.oracles = s.oracles.clone();
    }
    g
}

/// A buyer's standing: served, or refused with the reason the client is told.
pub type Standing = Result<(), String>;

/// Refuses grants whose buyer has no credit account or no credits left on-chain (what the
/// oracles will charge the session to), each buyer's answer kept [`CREDIT_CACHE`]. When the
/// cluster cannot be read, the last answer stands, however old; with none, the session is
/// refused.
pub struct CreditCheck {
    ctx: Arc<Context>,
    d: Deployment,
    cache: Mutex<HashMap<Pubkey, (Instant, Standing)>>,
    ttl: Duration,
}

impl CreditCheck {
    pub fn new(ctx: Arc<Context>, d: Deployment, ttl: Duration) -> Self {
        CreditCheck {
            ctx,
            d,
            cache: Mutex::new(HashMap::new()),
            ttl,
        }
    }

    fn cached(&self, buyer: &Pubkey, fresh: bool) -> Option<Standing> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .get(buyer)
            .filter(|(at, _)| !fresh || at.elapsed() < self.ttl)
            .map(|(_, r)| r.clone())
    }

    /// The buyer's standing as the chain has it now.
    pub async fn look_up(&self, buyer: &Pubkey) -> anyhow::Result<Standing> {
        let acc: Option<CreditAccount> = self.ctx.account(&self.d.credits(buyer)).await?;
        Ok(match acc {
            None => Err(format!(
                "buyer {buyer} has no credit account: it must buy credits (`backhaul firm buy`) \
                 before its clients are served"
            )),
            Some(a) if a.balance == 0 => Err(format!(
                "buyer {buyer} has no credits left: it must buy more (`backhaul firm buy`)"
            )),
            Some(_) => Ok(()),
        })
    }
}

impl GrantCheck for CreditCheck {
    fn check<'a>(
        &'a self,
        grant: &'a SignedGrant,
        _epoch: u64,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let buyer = Pubkey::new_from_array(grant.grant.buyer);
            if let Some(r) = self.cached(&buyer, true) {
                return r;
            }
            match self.look_up(&buyer).await {
                Ok(r) => {
                    self.cache
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(buyer, (Instant::now(), r.clone()));
                    r
                }
                Err(e) => {
                    tracing::warn!(%buyer, error = %format!("{e:#}"), "cannot read the buyer's credits");
                    self.cached(&buyer, false).unwrap_or_else(|| {
                        Err(
                            "the node cannot check the buyer's credits right now; try again or \
                             another node"
                                .into(),
                        )
                    })
                }
            }
        })
    }
}

/// The chain's clock as an offset from this machine's: epochs follow the chain, which the
/// oracles judge receipts by.
#[derive(Default)]
pub struct ChainClock {
    offset: AtomicI64,
}

impl ChainClock {
    pub fn now(&self) -> i64 {
        wall_time().saturating_add(self.offset.load(Ordering::Relaxed))
    }

    /// Reads the chain's clock once.
    pub async fn sync(&self, ctx: &Context) -> anyhow::Result<()> {
        let chain = ctx.chain_time().await?;
        self.offset
            .store(chain.saturating_sub(wall_time()), Ordering::Relaxed);
        Ok(())
    }

    /// Reads it every half a minute until the process ends.
    pub fn follow(self: &Arc<Self>, ctx: Arc<Context>) {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(CLOCK_REFRESH).await;
                if let Err(e) = this.sync(&ctx).await {
                    tracing::warn!(error = %format!("{e:#}"), "cannot read the chain's clock; keeping the last offset");
                }
            }
        });
    }
}

/// Oracle clients for a service that retries by itself: one quick retry per attempt.
pub fn oracle_clients(urls: &[String]) -> anyhow::Result<Vec<OracleClient>> {
    let config = ClientConfig {
        connect_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(20),
        retry: RetryPolicy {
            max_attempts: 2,
            max_elapsed: Duration::from_secs(20),
            ..RetryPolicy::default()
        },
    };
    urls.iter()
        .map(|u| {
            OracleClient::with_config(u, config.clone()).map_err(|e| anyhow!("oracle {u:?}: {e}"))
        })
        .collect()
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
    tracing::info!("shutting down");
}

/// What a node run served, printed when it stops.
#[derive(Clone, Debug, Serialize)]
pub struct ServeOutcome {
    pub node: String,
    pub listen: String,
    pub served: u64,
    pub refused: u64,
    pub failed: u64,
    pub bytes: u64,
    pub cut: u64,
    pub flushed: bool,
}

/// `node serve`.
pub async fn serve(global: &GlobalArgs, args: &ServeArgs) -> anyhow::Result<ServeOutcome> {
    let s = settings(args)?;
    if let Some(p) = &s.program_id {
        if p.trim() != backhaul_sdk::PROGRAM_ID.to_string() {
            bail!(
                "program_id {p} is not the program this build of backhaul serves ({}); remove it \
                 from the settings or use a build for that program",
                backhaul_sdk::PROGRAM_ID
            );
        }
    }
    let node = read_keypair(&s.node_keypair)?;
    let node_b58 = bs58::encode(node.verifying_key().as_bytes()).into_string();
    let ctx = Arc::new(Context::new(&global_with(global, &s, args.url_given))?);
    let urls = ctx
        .oracle_urls()
        .map_err(|_| {
            anyhow!(
                "no oracle given: a node's receipts must reach the oracles to be paid. Set \
                 `oracles` in the settings, or pass --oracle <URL> (repeat it) or \
                 BACKHAUL_ORACLES=<URL>,<URL>"
            )
        })?
        .to_vec();
    let (d, c) = ctx.deployment_config().await?;
    let clock = Arc::new(ChainClock::default());
    clock
        .sync(&ctx)
        .await
        .context("reading the chain's clock")?;
    clock.follow(ctx.clone());
    if let Some(addr) = s.metrics_listen {
        crate::guardian::metrics::serve(addr).await?;
    }
    let queue = Queue::open(&s.data_dir).await.with_context(|| {
        format!(
            "cannot open the receipt queue in {} (data_dir)",
            s.data_dir.display()
        )
    })?;
    let delivery = Delivery::new(
        queue,
        oracle_clients(&urls)?,
        Duration::from_secs(s.deliver_every_secs),
        "node",
    );
    let now_clock = clock.clone();
    let cx = NodeContext {
        deployment: protocol_deployment(&d),
        node: node.clone(),
        genesis_ts: c.genesis_ts,
        epoch_length_secs: c.epoch_length_secs,
        receipt_every_bytes: s.receipt_every_bytes,
        max_unreceipted_bytes: s.max_unreceipted_bytes,
        timeout: s.timeout(),
        policy: s.policy(),
        grants: Arc::new(CreditCheck::new(ctx.clone(), d, CREDIT_CACHE)),
        receipts: Arc::new(QueueStore(delivery.clone())),
        clock: Arc::new(move || now_clock.now()),
    };
    let deployment = cx.deployment;
    let server = Server::new(s.listen, cx, delivery, Limits::from(&s))
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (listen)",
                s.listen.map(|a| a.to_string()).unwrap_or_default()
            )
        })?
        .with_relay(s.relay.clone());
    let bound = s.listen.and_then(|_| server.local_addr().ok());
    let reach = match (&bound, &s.relay) {
        (Some(b), Some(r)) => format!(
            "{node_b58}@<this host>:{} or {node_b58}@relay://{r}",
            b.port()
        ),
        (Some(b), None) => format!("{node_b58}@<this host>:{}", b.port()),
        (None, Some(r)) => format!("{node_b58}@relay://{r} (no listening port)"),
        (None, None) => "nowhere (no port, no relay)".to_string(),
    };
    tracing::info!(
        listen = %bound.map(|b| b.to_string()).unwrap_or_else(|| "off".into()),
        relay = %s.relay.as_deref().unwrap_or("none"),
        node = %node_b58,
        config = %d.config,
        oracles = urls.len(),
        ports = ?s.ports,
        allow_loopback = s.allow_loopback,
        "node serving; gateways reach it as {reach}"
    );
    let advertiser = match s.advertised() {
        Some(endpoint) => {
            tracing::info!(%endpoint, "advertising the node to every oracle at start and every 30 minutes");
            // Adverts are dated by this machine's clock, as the oracles and gateways judge them
            // (not the chain's, which epochs follow).
            Some(tokio::spawn(backhaul_node::directory::advertise(
                oracle_clients(&urls)?,
                deployment,
                node.clone(),
                endpoint,
                Arc::new(wall_time),
            )))
        }
        None => None,
    };
    if s.allow_loopback {
        tracing::warn!("allow_loopback is on: sessions may reach this machine's loopback services (tests only)");
    }
    let summary = server.run(shutdown_signal()).await;
    if let Some(a) = advertiser {
        a.abort();
    }
    Ok(ServeOutcome {
        node: node_b58,
        listen: bound.map(|b| b.to_string()).unwrap_or_else(|| "off".into()),
        served: summary.served,
        refused: summary.refused,
        failed: summary.failed,
        bytes: summary.bytes,
        cut: summary.cut,
        flushed: summary.flushed,
    })
}

pub async fn run(global: &GlobalArgs, command: NodeCommand) -> anyhow::Result<ExitCode> {
    match command {
        NodeCommand::Serve(args) => {
            if args.print_settings {
                let s = settings(&args)?;
                print!("{}", toml::to_string(&s)?);
                return Ok(ExitCode::SUCCESS);
            }
            let o = serve(global, &args).await?;
            crate::output::emit(global.output, &o, |o| {
                println!(
                    "node {} stopped: {} sessions served ({} bytes), {} refused, {} failed, {} cut at shutdown; {}",
                    o.node,
                    o.served,
                    o.bytes,
                    o.refused,
                    o.failed,
                    o.cut,
                    if o.flushed {
                        "every receipt reached every oracle"
                    } else {
                        "some receipts stay queued for the next start"
                    }
                );
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{url_given, Cli};
    use clap::CommandFactory;

    #[test]
    fn the_settings_name_the_chain_unless_the_command_line_does() {
        let matches = |args: &[&str]| Cli::command().try_get_matches_from(args).expect("parses");
        if std::env::var_os("BACKHAUL_URL").is_none() {
            assert!(!url_given(&matches(&["backhaul", "node", "serve"])));
        }
        assert!(url_given(&matches(&[
            "backhaul", "node", "serve", "--url", "devnet"
        ])));
        assert!(url_given(&matches(&[
            "backhaul", "--url", "devnet", "node", "serve"
        ])));
        let s = NodeSettings {
            rpc_url: Some("http://rpc.example:8899".into()),
            config: Some("C".into()),
            oracles: vec!["http://o1".into()],
            ..NodeSettings::default()
        };
        let global = GlobalArgs::default();
        let g = global_with(&global, &s, false);
        assert_eq!(
            (g.url.as_str(), g.config.as_deref(), g.mint.as_deref()),
            ("http://rpc.example:8899", Some("C"), None)
        );
        assert_eq!(g.oracles, vec!["http://o1".to_string()]);
        // What the command line names wins.
        let global = GlobalArgs {
            url: "devnet".into(),
            mint: Some("M".into()),
            oracles: vec!["http://o2".into()],
            ..GlobalArgs::default()
        };
        let g = global_with(&global, &s, true);
        assert_eq!(
            (g.url.as_str(), g.config.as_deref(), g.mint.as_deref()),
            ("devnet", None, Some("M"))
        );
        assert_eq!(g.oracles, vec!["http://o2".to_string()]);
    }
}
