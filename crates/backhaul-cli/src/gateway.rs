//! `backhaul firm gateway`: the firm's local proxy (`backhaul_node::gateway`), with the client key,
//! the buyer's grant (from a file, or signed at start with the buyer's keypair and sent to the
//! oracles as `firm grant` does), the oracles its countersigned receipts go to, metrics and a
//! usage report. Also the grant file that `firm grant --write-grant` writes.

use crate::context::{read_keypair, signing_key, wall_time, Context, GlobalArgs};
use crate::firm::{grant_signed, GrantArgs};
use crate::node::{oracle_clients, shutdown_signal};
use crate::operator::protocol_deployment;
use anyhow::{anyhow, bail, Context as _};
use backhaul_node::client::ClientContext;
use backhaul_node::delivery::Delivery;
use backhaul_node::gateway::{DirectorySource, Gateway, GatewayConfig, NodeAddr};
use backhaul_node::queue::Queue;
use backhaul_protocol::dataset::{b58, hex, key_from_b58};
use backhaul_protocol::{ClientGrant, SignedGrant, SIGNED_GRANT_LEN};
use clap::Args;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// `firm gateway`'s options.
#[derive(Args, Debug, Clone)]
pub struct GatewayArgs {
    /// Where scrapers connect: SOCKS5, HTTP CONNECT and plain HTTP (`GET http://...`), one port.
    #[arg(long, default_value = "127.0.0.1:1080")]
    pub listen: SocketAddr,
    /// A node, NODEKEY@HOST:PORT, or NODEKEY@relay://HOST:PORT for a node reached through a
    /// relay; repeat for several (round-robin, and the next one is tried when a node cannot
    /// open a session). BACKHAUL_GATEWAY_NODES: comma-separated.
    #[arg(
        long = "node",
        value_name = "NODEKEY@HOST:PORT",
        env = "BACKHAUL_GATEWAY_NODES",
        value_delimiter = ',',
        required_unless_present = "directory"
    )]
    pub nodes: Vec<String>,
    /// Also use the nodes the oracles' directory lists (every --oracle; each advert's node
    /// signature is checked), read at start and every few minutes.
    #[arg(long)]
    pub directory: bool,
    /// Seconds between readings of the directory.
    #[arg(long, default_value_t = 180, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub directory_refresh_secs: u64,
    /// The client key (a Solana CLI keypair file) the buyer granted; it signs the receipts.
    #[arg(long, env = "BACKHAUL_CLIENT_KEYPAIR")]
    pub client_keypair: PathBuf,
    /// The buyer's grant of the client key: the JSON file `backhaul firm grant --write-grant`
    /// writes, or the grant's 160-byte borsh encoding.
    #[arg(
        long,
        conflicts_with = "buyer_keypair",
        required_unless_present = "buyer_keypair"
    )]
    pub grant_file: Option<PathBuf>,
    /// Sign a grant of the client key with this buyer keypair at start (no expiry, no
    /// per-epoch limit) and send it to every --oracle, as `backhaul firm grant` does.
    #[arg(long)]
    pub buyer_keypair: Option<PathBuf>,
    /// Where countersigned receipts wait for the oracles (SQLite).
    #[arg(long, default_value = "gateway-data")]
    pub data_dir: PathBuf,
    /// Serve Prometheus metrics on http://ADDR/metrics.
    #[arg(long)]
    pub metrics_listen: Option<SocketAddr>,
    /// Write the usage (totals, per node, the latest sessions) to this JSON file after every
    /// session and when stopping.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Log a usage line every this many seconds.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub status_secs: u64,
    /// Seconds to wait for a node's handshake and answers.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout_secs: u64,
}

/// A signed grant as JSON (keys base58, the signature hex).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantJson {
    pub buyer: String,
    pub client: String,
    pub epoch: u64,
    pub issued_at: i64,
    pub expires_at: i64,
    pub credit_limit: u64,
    pub buyer_signature: String,
}

impl From<&SignedGrant> for GrantJson {
    fn from(g: &SignedGrant) -> Self {
        GrantJson {
            buyer: b58(&g.grant.buyer),
            client: b58(&g.grant.client),
            epoch: g.grant.epoch,
            issued_at: g.grant.issued_at,
            expires_at: g.grant.expires_at,
            credit_limit: g.grant.credit_limit,
            buyer_signature: hex(&g.buyer_signature),
        }
    }
}

impl TryFrom<&GrantJson> for SignedGrant {
    type Error = anyhow::Error;

    fn try_from(j: &GrantJson) -> anyhow::Result<SignedGrant> {
        let key = |what: &str, s: &str| {
            key_from_b58(s).ok_or_else(|| anyhow!("{what} {s:?} is not a base58 key"))
        };
        let sig = j.buyer_signature.trim();
        let bytes: Option<Vec<u8>> = (sig.len() == 128)
            .then(|| {
                (0..64)
                    .map(|i| {
                        sig.get(2 * i..2 * i + 2)
                            .and_then(|h| u8::from_str_radix(h, 16).ok())
                    })
                    .collect()
            })
            .flatten();
        let buyer_signature: [u8; 64] = bytes
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| anyhow!("buyer_signature is not 64 bytes of hex"))?;
        Ok(SignedGrant {
            grant: ClientGrant {
                buyer: key("buyer", &j.buyer)?,
                client: key("client", &j.client)?,
                epoch: j.epoch,
                issued_at: j.issued_at,
                expires_at: j.expires_at,
                credit_limit: j.credit_limit,
            },
            buyer_signature,
        })
    }
}

/// Writes `g` as JSON to `path`.
pub fn write_grant_file(path: &Path, g: &SignedGrant) -> anyhow::Result<()> {
    let json = serde_json::to_string_pretty(&GrantJson::from(g))?;
    std::fs::write(path, json + "\n")
        .with_context(|| format!("cannot write the grant file {}", path.display()))
}

/// Reads a grant file: JSON ([`GrantJson`]) or the 160-byte borsh encoding.
pub fn read_grant_file(path: &Path) -> anyhow::Result<SignedGrant> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read the grant file {}", path.display()))?;
    if bytes.len() == SIGNED_GRANT_LEN && bytes.first() != Some(&b'{') {
        return borsh::from_slice(&bytes)
            .map_err(|e| anyhow!("{} is not a borsh SignedGrant: {e}", path.display()));
    }
    let j: GrantJson = serde_json::from_slice(&bytes).map_err(|e| {
        anyhow!(
            "{} is neither a grant as `backhaul firm grant --write-grant` writes it (JSON) nor a \
             {SIGNED_GRANT_LEN}-byte borsh SignedGrant: {e}",
            path.display()
        )
    })?;
    SignedGrant::try_from(&j).with_context(|| format!("the grant file {}", path.display()))
}

/// What a gateway run relayed, printed when it stops.
#[derive(Clone, Debug, Serialize)]
pub struct GatewayOutcome {
    pub listen: String,
    pub client: String,
    pub buyer: String,
    #[serde(flatten)]
    pub usage: backhaul_node::gateway::Usage,
}

/// The grant the gateway presents: from the file (checked against the client key and the
/// deployment), or signed now by the buyer's keypair and sent to the oracles.
async fn the_grant(
    global: &GlobalArgs,
    args: &GatewayArgs,
    deployment: &backhaul_protocol::Deployment,
    client: &[u8; 32],
) -> anyhow::Result<SignedGrant> {
    let grant = match (&args.grant_file, &args.buyer_keypair) {
        (Some(path), _) => read_grant_file(path)?,
        (None, Some(buyer)) => {
            let buyer = read_keypair(buyer).context("reading --buyer-keypair")?;
            let ctx = Context::with_signer(global, buyer)?;
            if ctx.oracles.is_empty() {
                bail!(
                    "--buyer-keypair signs a grant that the oracles must hold: pass --oracle \
                     <URL> (repeat it) or BACKHAUL_ORACLES"
                );
            }
            let (signed, outcome) = grant_signed(
                &ctx,
                &GrantArgs {
                    client: b58(client),
                    expires_at: None,
                    expires_in_days: None,
                    credit_limit: 0,
                    epoch: None,
                    issued_at: None,
                },
            )
            .await?;
            if outcome.exit_code() != ExitCode::SUCCESS {
                tracing::warn!(
                    outcome = %serde_json::to_string(&outcome).unwrap_or_default(),
                    "not every oracle stored the grant: receipts are held there until it arrives"
                );
            }
            signed
        }
        (None, None) => bail!("pass --grant-file <FILE> or --buyer-keypair <FILE>"),
    };
    if grant.grant.client != *client {
        bail!(
            "the grant authorizes client {}, not --client-keypair's {}: grant this client key \
             (`backhaul firm grant {}`)",
            b58(&grant.grant.client),
            b58(client),
            b58(client)
        );
    }
    let [check] = grant.checks(deployment);
    if check.verify_strict().is_err() {
        bail!(
            "the grant is not signed by the buyer it names ({}) for this deployment: sign it \
             again with `backhaul firm grant` on this --mint / --config",
            b58(&grant.grant.buyer)
        );
    }
    if grant.grant.expires_at <= wall_time() {
        tracing::warn!(
            expires_at = grant.grant.expires_at,
            "the grant has expired: nodes will refuse it"
        );
    }
    Ok(grant)
}

/// `firm gateway`.
pub async fn gateway(global: &GlobalArgs, args: &GatewayArgs) -> anyhow::Result<GatewayOutcome> {
    let nodes: Vec<NodeAddr> = args
        .nodes
        .iter()
        .map(|n| n.parse().map_err(|e: String| anyhow!("--node: {e}")))
        .collect::<anyhow::Result<_>>()?;
    let client =
        signing_key(&read_keypair(&args.client_keypair).context("reading --client-keypair")?);
    let client_key = client.verifying_key().to_bytes();
    let ctx = Context::new(global)?;
    let d = ctx.deployment().await?;
    let deployment = protocol_deployment(&d);
    let grant = the_grant(global, args, &deployment, &client_key).await?;
    if let Some(addr) = args.metrics_listen {
        crate::guardian::metrics::serve(addr).await?;
    }
    let delivery = if ctx.oracles.is_empty() {
        tracing::warn!(
            "no --oracle: the gateway keeps its countersigned receipts to itself (the nodes \
             still send theirs)"
        );
        None
    } else {
        let queue = Queue::open(&args.data_dir).await.with_context(|| {
            format!(
                "cannot open the receipt queue in {} (--data-dir)",
                args.data_dir.display()
            )
        })?;
        Some(Delivery::new(
            queue,
            oracle_clients(&ctx.oracles)?,
            Duration::from_secs(10),
            "gateway",
        ))
    };
    let config = GatewayConfig {
        nodes,
        client: ClientContext {
            deployment,
            client,
            grant,
            timeout: Duration::from_secs(args.timeout_secs),
        },
        report: args.report.clone(),
        status_every: Duration::from_secs(args.status_secs),
    };
    let directory = if args.directory {
        if ctx.oracles.is_empty() {
            bail!(
                "--directory reads the oracles' directory: pass --oracle <URL> (repeat it) or \
                 BACKHAUL_ORACLES"
            );
        }
        Some(DirectorySource {
            oracles: oracle_clients(&ctx.oracles)?,
            refresh: Duration::from_secs(args.directory_refresh_secs),
            clock: Arc::new(wall_time),
        })
    } else {
        None
    };
    let gw = Gateway::bind_with_directory(args.listen, config.clone(), delivery, directory)
        .await
        .with_context(|| format!("cannot listen on {} (--listen)", args.listen))?;
    let bound = gw.local_addr()?;
    tracing::info!(
        listen = %bound,
        client = %b58(&client_key),
        buyer = %b58(&grant.grant.buyer),
        nodes = config.nodes.len(),
        directory = args.directory,
        "gateway ready: curl --socks5-hostname {bound} https://... or curl -p -x http://{bound} ..."
    );
    let usage = gw.run(shutdown_signal()).await;
    Ok(GatewayOutcome {
        listen: bound.to_string(),
        client: b58(&client_key),
        buyer: b58(&grant.grant.buyer),
        usage,
    })
}

pub async fn run(global: &GlobalArgs, args: &GatewayArgs) -> anyhow::Result<ExitCode> {
    let o = gateway(global, args).await?;
    crate::output::emit(global.output, &o, |o| {
        println!(
            "gateway {} stopped: {} sessions, {} bytes, {} receipts countersigned; {} connections no node served, {} refused by the gateway",
            o.listen, o.usage.sessions, o.usage.bytes, o.usage.receipts, o.usage.no_node, o.usage.rejected
        );
        for (node, u) in &o.usage.nodes {
            println!(
                "  node {node}: {} sessions, {} bytes, {} receipts, {} failed opens{}",
                u.sessions,
                u.bytes,
                u.receipts,
                u.failures,
                u.last_error
                    .as_ref()
                    .map(|e| format!(" (last: {e})"))
                    .unwrap_or_default()
            );
        }
    });
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_files_round_trip_as_json_and_borsh() {
        let d = backhaul_protocol::Deployment {
            program_id: [1; 32],
            config: [2; 32],
        };
        let buyer = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
        let g = ClientGrant {
            buyer: buyer.verifying_key().to_bytes(),
            client: [9; 32],
            epoch: 4,
            issued_at: 5,
            expires_at: i64::MAX,
            credit_limit: 6,
        }
        .sign(&d, &buyer);
        let dir = tempfile::tempdir().expect("dir");
        let json = dir.path().join("grant.json");
        write_grant_file(&json, &g).expect("write");
        assert_eq!(read_grant_file(&json).expect("json"), g);
        let bin = dir.path().join("grant.bin");
        std::fs::write(&bin, borsh::to_vec(&g).expect("borsh")).expect("write");
        assert_eq!(read_grant_file(&bin).expect("borsh"), g);
        std::fs::write(&bin, b"{\"buyer\": 1}").expect("write");
        let e = read_grant_file(&bin).expect_err("junk");
        assert!(format!("{e:#}").contains("--write-grant"), "{e:#}");
    }
}
