//! `backhaul dashboard`: a read-only web page over a deployment. It reads the chain and the
//! oracles' datasets ([`crate::audit::fetch`]), runs the audit's checks, builds the pages' figures
//! with the `backhaul-dashboard` library (each figure names the checks that verified it) and
//! serves them ([`server`]) on loopback, reading again every `--refresh` seconds. Datasets the
//! chain committed are fetched once and kept.

pub mod server;

use crate::audit::fetch::{self, DatasetSource};
use crate::context::{Context, GlobalArgs};
use backhaul_audit::{Fetched, Snapshot};
use backhaul_core::merkle::sha256v;
use backhaul_dashboard::{guardian, network, Model};
use clap::Args;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `backhaul dashboard`.
#[derive(Args, Debug, Clone)]
pub struct DashboardArgs {
    /// Where to serve the page. Loopback by default: the page has no login, and it shows only
    /// public data, but it is meant for the viewer's own machine.
    #[arg(
        long,
        default_value = "127.0.0.1:8090",
        env = "BACKHAUL_DASHBOARD_LISTEN"
    )]
    pub listen: SocketAddr,
    /// Read each epoch's dataset from this folder (`epoch-<n>.json`) instead of the oracles
    /// given with --oracle.
    #[arg(long, value_name = "DIR")]
    pub datasets: Option<PathBuf>,
    /// Seconds between two reads of the chain.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub refresh: u64,
}

/// One read of the deployment and everything the pages show from it.
pub struct Published {
    pub model: Model,
    pub network: network::NetworkView,
    pub guardian: guardian::GuardianView,
    /// Wall-clock time of the read (Unix seconds) and how long it took.
    pub read_at: i64,
    pub took_ms: u64,
}

/// Datasets already fetched that hash to what the chain committed, by epoch and hash: they never
/// change, so they are not fetched again.
///
/// Also the previous read's audit, with a digest of everything it read: when nothing changed,
/// the report stands and the audit (seconds of CPU for a million operators) is not run again.
#[derive(Default)]
pub struct DatasetCache {
    kept: BTreeMap<(u64, [u8; 32]), Fetched>,
    audited: Option<([u8; 32], backhaul_audit::AuditReport)>,
}

/// Feeds what it is written into a SHA-256.
struct Digest(sha2::Sha256);

impl std::io::Write for Digest {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        sha2::Digest::update(&mut self.0, buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One dataset as a read found it: its epoch, where it came from, and its bytes' sha256 or why
/// there are none.
type DatasetRead = (u64, String, Result<[u8; 32], String>);

/// A digest of everything the audit reads: every account of the snapshot and each dataset read.
fn fingerprint(s: &Snapshot, datasets: &[DatasetRead]) -> [u8; 32] {
    let mut d = Digest(sha2::Sha256::default());
    // Serializing into a hasher cannot fail; a failure would only make the digest differ.
    let _ = borsh::to_writer(
        &mut d,
        &(
            s.program_id,
            s.config_address,
            &s.config,
            &s.price_feed,
            &s.records,
            &s.ledgers,
            &s.claims,
            &s.credits,
            &s.changes,
            &s.unknown,
        ),
    );
    let _ = borsh::to_writer(
        &mut d,
        &(
            s.mint.map(|m| (m.supply, m.decimals, m.mint_authority)),
            s.vault.map(|(k, v)| (k, v.amount, v.mint, v.owner)),
            format!("{:?}", s.upgrade),
            datasets,
        ),
    );
    sha2::Digest::finalize(d.0).into()
}

/// Reads the chain and the datasets, audits them and builds the pages.
pub async fn read(
    ctx: &Context,
    source: &DatasetSource,
    cache: &mut DatasetCache,
) -> anyhow::Result<Published> {
    let started = Instant::now();
    let snapshot = fetch::snapshot(ctx).await?;
    let now = ctx.chain_time().await?;
    let wanted = crate::audit::committed_datasets(&snapshot);
    let missing: Vec<(u64, [u8; 32])> = wanted
        .iter()
        .filter(|k| !cache.kept.contains_key(k))
        .copied()
        .collect();
    let fetched = fetch::datasets(source, &missing, |_| {}).await;
    let mut datasets = BTreeMap::new();
    let mut read: Vec<DatasetRead> = Vec::with_capacity(wanted.len());
    for (epoch, hash) in &wanted {
        if let Some(f) = cache.kept.get(&(*epoch, *hash)) {
            datasets.insert(*epoch, f.clone());
            read.push((*epoch, f.source.clone(), Ok(*hash)));
        } else if let Some(f) = fetched.get(epoch) {
            let digest = f
                .bytes
                .as_ref()
                .map(|b| sha256v(&[b]))
                .map_err(Clone::clone);
            if digest.as_ref() == Ok(hash) {
                cache.kept.insert((*epoch, *hash), f.clone());
            }
            datasets.insert(*epoch, f.clone());
            read.push((*epoch, f.source.clone(), digest));
        }
    }
    // Keep the cache to what the chain names now.
    cache.kept.retain(|k, _| wanted.contains(k));
    let print = fingerprint(&snapshot, &read);
    let report = match cache.audited.take() {
        Some((p, report)) if p == print => {
            tracing::debug!("nothing the audit reads changed; its report stands");
            report
        }
        _ => backhaul_audit::audit(&snapshot, &datasets),
    };
    cache.audited = Some((print, report.clone()));
    let model = Model::build(&snapshot, &datasets, report, now);
    let network = network::view(&model);
    let guardian = guardian::view(&model);
    let took_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    Ok(Published {
        model,
        network,
        guardian,
        read_at: crate::context::wall_time(),
        took_ms,
    })
}

/// Reads the deployment every `refresh` into `state` until the process ends. A failed read keeps
/// the previous one on the page, with the error beside it.
pub async fn keep_reading(
    ctx: Context,
    source: DatasetSource,
    state: Arc<server::DashboardState>,
    refresh: Duration,
) {
    let mut cache = DatasetCache::default();
    loop {
        match read(&ctx, &source, &mut cache).await {
            Ok(p) => {
                tracing::info!(
                    epochs = p.model.epochs.len(),
                    audit_passed = p.model.report.passed,
                    took_ms = p.took_ms,
                    "read the deployment"
                );
                server::metrics::read(true, p.took_ms, p.model.report.failed.len());
                state.publish(p);
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "cannot read the deployment; the page keeps the previous read");
                server::metrics::read(false, 0, 0);
                state.fail(format!("{e:#}"));
            }
        }
        tokio::time::sleep(refresh).await;
    }
}

/// Starts the dashboard for `ctx`'s deployment on `listen`: the first read, then the server and
/// the reads in the background. Returns the address bound.
pub async fn start(
    ctx: Context,
    datasets: Option<PathBuf>,
    listen: SocketAddr,
    refresh: Duration,
) -> anyhow::Result<SocketAddr> {
    let source = crate::audit::dataset_source(&ctx, datasets)?;
    let state = Arc::new(server::DashboardState::default());
    let bound = server::serve(listen, state.clone()).await?;
    tokio::spawn(keep_reading(ctx, source, state, refresh));
    Ok(bound)
}

pub async fn run(global: &GlobalArgs, args: DashboardArgs) -> anyhow::Result<ExitCode> {
    let ctx = Context::new(global)?;
    // Fail at once on a deployment that cannot be read, rather than serve an empty page.
    ctx.deployment().await?;
    let bound = start(
        ctx,
        args.datasets,
        args.listen,
        Duration::from_secs(args.refresh),
    )
    .await?;
    println!("dashboard on http://{bound}/ (Ctrl-C to stop)");
    tokio::signal::ctrl_c().await?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use anchor_lang::{AnchorDeserialize, Space};
    use backhaul_sdk::state::{Config, OperatorClaim};
    use solana_sdk::pubkey::Pubkey;

    fn zeroed<T: AnchorDeserialize + Space>() -> T {
        T::deserialize(&mut &vec![0; T::INIT_SPACE][..]).expect("zero bytes decode")
    }

    #[test]
    fn the_audit_is_skipped_only_when_nothing_it_reads_changed() {
        let mut s = Snapshot::new(
            Pubkey::new_unique(),
            Pubkey::new_unique(),
            zeroed::<Config>(),
        );
        let mut claim: OperatorClaim = zeroed();
        claim.claimed = 5;
        s.claims.push((Pubkey::new_unique(), claim));
        let datasets = vec![(0u64, "oracle".to_string(), Ok([1u8; 32]))];
        let base = fingerprint(&s, &datasets);
        assert_eq!(
            base,
            fingerprint(&s, &datasets),
            "the same read, the same digest"
        );

        s.claims[0].1.claimed = 6;
        assert_ne!(base, fingerprint(&s, &datasets), "a claim moved");
        s.claims[0].1.claimed = 5;
        s.config.total_minted = 1;
        assert_ne!(base, fingerprint(&s, &datasets), "the config changed");
        s.config.total_minted = 0;
        assert_eq!(base, fingerprint(&s, &datasets));

        let other = vec![(0u64, "oracle".to_string(), Ok([2u8; 32]))];
        assert_ne!(base, fingerprint(&s, &other), "another dataset");
        let missing = vec![(0u64, "oracle".to_string(), Err("timed out".to_string()))];
        assert_ne!(base, fingerprint(&s, &missing), "a dataset went missing");
        s.upgrade = backhaul_audit::ProgramUpgrade::Immutable;
        assert_ne!(
            base,
            fingerprint(&s, &datasets),
            "the upgrade authority changed"
        );
    }
}
