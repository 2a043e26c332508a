//! `backhaul relay`: the rendezvous of `backhaul_node::relay`, through which gateways reach nodes
//! behind NAT. It only splices connections: the sessions inside are encrypted end to end and
//! pinned to the node's key. Runs until SIGTERM or Ctrl-C.

use crate::node::shutdown_signal;
use anyhow::Context as _;
use backhaul_node::relay::{serve, RelayConfig};
use clap::Args;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

/// `relay`'s options.
#[derive(Args, Debug, Clone)]
pub struct RelayArgs {
    /// Where nodes link and gateways dial (TCP). Open this port to the internet.
    #[arg(long, default_value = "0.0.0.0:7800")]
    pub listen: SocketAddr,
    /// Seconds a node has to dial back for a gateway, and a connection to say what it is.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub timeout_secs: u64,
    /// The most nodes linked at once.
    #[arg(long, default_value_t = 10_000)]
    pub max_nodes: usize,
    /// The most gateways waiting for a node at once.
    #[arg(long, default_value_t = 1_000)]
    pub max_pending: usize,
    /// Serve Prometheus metrics on http://ADDR/metrics (`backhaul_relay_*`: nodes linked,
    /// registrations, sessions and bytes spliced).
    #[arg(long)]
    pub metrics_listen: Option<SocketAddr>,
}

pub async fn run(args: &RelayArgs) -> anyhow::Result<ExitCode> {
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {} (--listen)", args.listen))?;
    let bound = listener.local_addr()?;
    if let Some(addr) = args.metrics_listen {
        crate::guardian::metrics::serve(addr).await?;
    }
    let config = RelayConfig {
        timeout: Duration::from_secs(args.timeout_secs),
        max_nodes: args.max_nodes.max(1),
        max_pending: args.max_pending.max(1),
    };
    tracing::info!(
        listen = %bound,
        "relay ready: nodes link with `relay = \"<this host>:{}\"`, gateways reach them as NODEKEY@relay://<this host>:{}",
        bound.port(),
        bound.port()
    );
    tokio::select! {
        r = serve(listener, config) => r.context("the relay stopped accepting")?,
        _ = shutdown_signal() => {}
    }
    Ok(ExitCode::SUCCESS)
}
