//! Wiring: start the writer, the closer, the credit refresher and the HTTP server; stop them all
//! on a shutdown signal.

use crate::agreement::Agreement;
use crate::api::{router, AddressLimiter, ApiState, KeyLimiter};
use crate::chain::ChainView;
use crate::clock::{ChainTime, EpochClock};
use crate::close::Closer;
use crate::db;
use crate::ingest::{Job, Writer};
use crate::settings::Settings;
use crate::status::Status;
use crate::submit::{SubmitParams, Submitter};
use anyhow::Context;
use backhaul_protocol::dataset::key_from_b58;
use backhaul_protocol::Deployment;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// A running oracle.
pub struct Oracle {
    pub addr: SocketAddr,
    pub closer: Arc<Closer>,
    pub writer: mpsc::Sender<Job>,
    /// The chain's clock, as this oracle follows it.
    pub time: ChainTime,
    /// What `/health` reports.
    pub status: Arc<Status>,
    /// What the HTTP handlers share (its summary cache counts the datasets it parsed).
    pub api: Arc<ApiState>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// Parses the deployment's addresses from the settings.
pub fn deployment(settings: &Settings) -> anyhow::Result<Deployment> {
    let program_id = Pubkey::from_str(&settings.program_id).with_context(|| {
        format!(
            "program_id {:?} is not a base58 public key",
            settings.program_id
        )
    })?;
    let config = Pubkey::from_str(&settings.config).with_context(|| {
        format!("config {:?} is not a base58 public key: set `config` to the deployment's config account", settings.config)
    })?;
    Ok(Deployment {
        program_id: program_id.to_bytes(),
        config: config.to_bytes(),
    })
}

impl Oracle {
    /// Connects the database, reads the epoch timing from the chain, and starts everything.
    pub async fn start(settings: Settings, chain: Arc<dyn ChainView>) -> anyhow::Result<Oracle> {
        settings.validate()?;
        let deployment = deployment(&settings)?;
        // Install the metrics recorder before anything counts.
        crate::metrics::handle();
        tokio::fs::create_dir_all(&settings.data_dir)
            .await
            .with_context(|| {
                format!(
                    "cannot create the data directory {}",
                    settings.data_dir.display()
                )
            })?;
        let pool = db::connect(&settings.database()).await.context(
            "cannot open the database (check database_url, or that data_dir is writable)",
        )?;
        let config = chain
            .config()
            .await
            .context("cannot read the deployment's config account from the chain")?;
        let clock = EpochClock {
            genesis_ts: config.genesis_ts,
            epoch_length_secs: config.epoch_length_secs,
        };

        let time = ChainTime::new(
            chain
                .unix_timestamp()
                .await
                .context("cannot read the chain's clock")?,
        );
        let status = Arc::new(Status::default());
        let writer = Writer::load(
            pool.clone(),
            clock,
            time.clone(),
            config.clone(),
            crate::ingest::Limits::of(&settings),
            status.clone(),
        )
        .await
        .context("cannot load the ingest state")?;
        let (writer_tx, writer_rx) = mpsc::channel(1024);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut tasks = vec![tokio::spawn(writer.run(writer_rx))];

        // Read once: the manifest key and the vote key are the same key.
        let keypair = settings.keypair.as_deref().map(read_keypair).transpose()?;
        let signer = keypair.as_ref().map(|k| {
            let mut seed = [0u8; 32];
            seed.copy_from_slice(&k.secret_bytes()[..32]);
            ed25519_dalek::SigningKey::from_bytes(&seed)
        });
        let agreement = Agreement::new(
            pool.clone(),
            deployment,
            signer,
            settings.peers.clone(),
            settings.data_dir.join("inputs"),
            Duration::from_secs(settings.sync_wait_secs),
        );
        let closer = Arc::new(Closer {
            pool: pool.clone(),
            chain: chain.clone(),
            deployment,
            clock,
            store: crate::storage::open(
                settings.publish_url.as_deref(),
                settings.data_dir.join("datasets"),
            )
            .context("cannot open the publish store (publish_url)")?,
            published: Default::default(),
            counted: Default::default(),
            pruned: Default::default(),
            max_rate_bytes_per_sec: config
                .params_for(clock.at(time.now()).unwrap_or(0))
                .consensus
                .max_rate_bytes_per_sec
                .into(),
            writer: writer_tx.clone(),
            agreement,
            latest: Default::default(),
        });
        closer
            .load_latest()
            .await
            .context("cannot load the latest closed epoch")?;

        tasks.push(tokio::spawn(clock_loop(
            chain.clone(),
            time.clone(),
            status.clone(),
            shutdown_rx.clone(),
        )));
        tasks.push(tokio::spawn(close_loop(
            closer.clone(),
            time.clone(),
            Duration::from_secs(settings.close_poll_secs.max(1)),
            shutdown_rx.clone(),
        )));
        tasks.push(tokio::spawn(credit_loop(
            closer.clone(),
            writer_tx.clone(),
            time.clone(),
            shutdown_rx.clone(),
        )));

        if let Some(keypair) = keypair {
            let rpc = Arc::new(
                solana_client::nonblocking::rpc_client::RpcClient::new_with_commitment(
                    settings.rpc_url.clone(),
                    solana_commitment_config::CommitmentConfig::confirmed(),
                ),
            );
            let submitter = Submitter {
                rpc,
                keypair: Arc::new(keypair),
                deployment: backhaul_sdk::Deployment {
                    mint: config.mint,
                    config: Pubkey::new_from_array(deployment.config),
                },
                pool: pool.clone(),
                closer: closer.clone(),
                time: time.clone(),
                params: SubmitParams {
                    compute_unit_limit: settings.compute_unit_limit,
                    max_priority_fee_micro_lamports: settings.max_priority_fee_micro_lamports,
                    backoff_after: 5,
                    price: settings.price_credits_per_token,
                    price_interval_secs: settings.price_interval_secs,
                },
                crash: None,
            };
            tracing::info!(oracle = %submitter.keypair.pubkey(), "submitter enabled");
            status.submit_ok();
            tasks.push(tokio::spawn(submit_loop(
                submitter,
                Duration::from_secs(settings.submit_poll_secs.max(1)),
                status.clone(),
                shutdown_rx.clone(),
            )));
        }

        let state = Arc::new(ApiState {
            pool,
            deployment,
            writer: writer_tx.clone(),
            closer: closer.clone(),
            max_body_bytes: settings.max_body_bytes,
            limiter: KeyLimiter::new(settings.per_key_items_per_sec),
            addresses: AddressLimiter::new(
                settings.per_address_requests_per_sec,
                settings.per_address_items_per_sec,
                settings
                    .max_requests_per_address
                    .min(settings.max_concurrent_requests.max(1)),
            ),
            limit_loopback: settings.limit_loopback_addresses,
            in_flight: Arc::new(tokio::sync::Semaphore::new(
                settings.max_concurrent_requests.max(1),
            )),
            body_timeout: Duration::from_secs(settings.request_timeout_secs.max(1)),
            status: status.clone(),
            summaries: Default::default(),
            funded: crate::admission::FundedBuyers::new(Duration::from_secs(
                settings.unfunded_buyer_cache_secs,
            )),
            directory: Default::default(),
        });
        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {} (is another oracle running there?)",
                    settings.listen
                )
            })?;
        let addr = listener.local_addr()?;
        tasks.push(tokio::spawn(serve(
            listener,
            router(state.clone()),
            Duration::from_secs(settings.header_timeout_secs.max(1)),
            settings.max_connections.max(1),
            shutdown_rx.clone(),
        )));
        tracing::info!(%addr, program_id = %settings.program_id, config = %settings.config, "oracle started");
        Ok(Oracle {
            addr,
            closer,
            writer: writer_tx,
            time,
            status,
            api: state,
            shutdown,
            tasks,
        })
    }

    /// Refreshes the writer's provisional view of buyers' credits now (it also runs every 30 s).
    pub async fn refresh_credits(&self) -> anyhow::Result<()> {
        refresh_credits(&self.closer, &self.writer, self.time.now()).await
    }

    /// Stops everything at once, as a crash would: no graceful shutdown, nothing flushed beyond
    /// what was already committed.
    pub fn abort(self) {
        for t in &self.tasks {
            t.abort();
        }
    }

    /// Stops accepting requests, lets in-flight ones finish and waits for every task.
    pub async fn stop(self) {
        let Oracle {
            writer,
            closer,
            api,
            shutdown,
            mut tasks,
            ..
        } = self;
        let _ = shutdown.send(true);
        drop(writer);
        drop(closer);
        // The handlers' state holds a sender to the writer too.
        drop(api);
        // Every task but the writer ends on the shutdown signal, dropping the writer's senders it
        // holds; the writer ends when the last of them is gone, so it is awaited last.
        let writer_task = tasks.remove(0);
        for t in tasks.into_iter().chain(std::iter::once(writer_task)) {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
        tracing::info!("oracle stopped");
    }
}

/// Serves HTTP/1.1 on `listener` until `stop`: each connection has `header_timeout` to send a
/// request's headers (and an idle one is closed after as long), each request knows its remote
/// address (`ConnectInfo<SocketAddr>`, for the per-address limit). On `stop` it accepts no more
/// connections, lets in-flight requests finish and returns when every connection is closed. At
/// most `max_connections` are open at once: beyond, connections wait in the kernel's backlog
/// until one closes (a stalled one is closed after `header_timeout`).
async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    header_timeout: Duration,
    max_connections: usize,
    mut stop: watch::Receiver<bool>,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    // Each connection holds a sender; `recv` answers `None` once all are gone.
    let (open_tx, mut open_rx) = mpsc::channel::<()>(1);
    let slots = Arc::new(tokio::sync::Semaphore::new(max_connections));
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(s) => s,
                Err(_) => break,
            },
            _ = stopped(&mut stop) => break,
        };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait, and let connections close.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stopped(&mut stop) => break,
        };
        let _ = stream.set_nodelay(true);
        crate::metrics::connections(max_connections.saturating_sub(slots.available_permits()));
        let slots = slots.clone();
        let app = app.clone();
        let mut stop = stop.clone();
        let open = open_tx.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(
                move |mut request: hyper::Request<hyper::body::Incoming>| {
                    request
                        .extensions_mut()
                        .insert(axum::extract::ConnectInfo(remote));
                    let mut app = app.clone();
                    // A Router is always ready.
                    tower::Service::call(&mut app, request.map(axum::body::Body::new))
                },
            );
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                _ = stopped(&mut stop) => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%remote, error = %e, "connection closed");
            }
            drop(open);
            drop(slot);
            crate::metrics::connections(max_connections.saturating_sub(slots.available_permits()));
        });
    }
    drop(open_tx);
    let _ = open_rx.recv().await;
}

/// Returns once `stop` says so (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Reads a Solana CLI keypair file (a JSON array of 64 bytes).
pub fn read_keypair(path: &std::path::Path) -> anyhow::Result<Keypair> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the keypair file {}", path.display()))?;
    let bytes: Vec<u8> = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a Solana keypair file (a JSON array of 64 numbers)",
            path.display()
        )
    })?;
    Keypair::try_from(&bytes[..])
        .map_err(|e| anyhow::anyhow!("{} does not hold a valid keypair: {e}", path.display()))
}

/// The pause after the `failures`-th failure in a row: `every`, doubled per failure, at most
/// 30 s.
pub fn backoff(every: Duration, failures: u32) -> Duration {
    let max = Duration::from_secs(30);
    every
        .checked_mul(2u32.saturating_pow(failures.min(16)))
        .unwrap_or(max)
        .min(max)
}

/// Runs the submitter, backing off (up to 30 s) while the RPC endpoint fails.
async fn submit_loop(
    submitter: Submitter,
    every: Duration,
    status: Arc<Status>,
    mut stop: watch::Receiver<bool>,
) {
    let mut failures = 0u32;
    loop {
        let pause = match submitter.tick().await {
            Ok(_) => {
                if failures > 0 {
                    tracing::info!(after_failures = failures, "the submitter works again");
                }
                failures = 0;
                status.submit_ok();
                every
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                let pause = backoff(every, failures);
                let error = crate::settings::redact_urls(&format!("{e:#}"));
                tracing::warn!(%error, failures, retry_in_secs = pause.as_secs(), "submitter tick failed");
                metrics::counter!("backhaul_submit_errors_total").increment(1);
                status.submit_failed(&e, pause.as_secs());
                pause
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Follows the chain's clock: epochs end by it, not by this machine's clock.
async fn clock_loop(
    chain: Arc<dyn ChainView>,
    time: ChainTime,
    status: Arc<Status>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        match chain.unix_timestamp().await {
            Ok(ts) => {
                time.set(ts);
                status.chain_ok();
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading the chain's clock failed; using the last reading");
                status.chain_failed(&e);
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

async fn close_loop(
    closer: Arc<Closer>,
    time: ChainTime,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        closer.close_ready(time.now()).await;
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Refreshes the provisional credit knowledge of the writer every 30 seconds: for each buyer with
/// a grant, what it had by the current epoch minus what the last closed epoch says it consumed.
async fn credit_loop(
    closer: Arc<Closer>,
    writer: mpsc::Sender<Job>,
    time: ChainTime,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        if let Err(e) = refresh_credits(&closer, &writer, time.now()).await {
            let error = crate::settings::redact_urls(&format!("{e:#}"));
            tracing::warn!(%error, "refreshing buyers' credits failed; provisional credit checks use older figures");
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(30)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

async fn refresh_credits(
    closer: &Closer,
    writer: &mpsc::Sender<Job>,
    now: i64,
) -> anyhow::Result<()> {
    // Parameters governance changed reach the writer with the credits.
    let config = closer.chain.config().await?;
    let current = closer.clock.at(now).unwrap_or(0);
    closer.max_rate_bytes_per_sec.store(
        config.params_for(current).consensus.max_rate_bytes_per_sec,
        std::sync::atomic::Ordering::Relaxed,
    );
    writer.send(Job::Config(Box::new(config))).await.ok();
    let grants = db::grants(&closer.pool).await?;
    let mut buyers: Vec<_> = grants.iter().map(|g| g.signed.grant.buyer).collect();
    buyers.sort_unstable();
    buyers.dedup();
    let credits = closer.chain.credits(&buyers).await?;
    let epoch = closer.clock.at(now).unwrap_or(0);
    let used: HashMap<_, _> = closer
        .latest()
        .map(|c| {
            c.dataset
                .usage
                .leaves
                .iter()
                .filter_map(|l| Some((key_from_b58(&l.buyer)?, l.cumulative)))
                .collect()
        })
        .unwrap_or_default();
    let available = buyers
        .iter()
        .map(|b| {
            let c = credits.get(b).copied().unwrap_or_default();
            let had = c.purchases_through(epoch).credits;
            (*b, had.saturating_sub(used.get(b).copied().unwrap_or(0)))
        })
        .collect();
    writer.send(Job::Credits(available)).await.ok();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::backoff;
    use std::time::Duration;

    #[test]
    fn backoff_doubles_up_to_thirty_seconds() {
        let every = Duration::from_secs(2);
        let secs: Vec<u64> = (1..=6).map(|f| backoff(every, f).as_secs()).collect();
        assert_eq!(secs, vec![4, 8, 16, 30, 30, 30]);
        assert_eq!(backoff(every, u32::MAX), Duration::from_secs(30));
    }
}
