//! The watcher's Prometheus metrics, named once here, in the process-wide recorder the oracle
//! installs (`backhaul_oracle::metrics::handle`), and the `/metrics` endpoint that serves them
//! (`guardian watch --metrics-listen`).

use anyhow::Context as _;
use std::net::SocketAddr;

/// A proposal seen in its challenge period for the first time:
/// `backhaul_guardian_epochs_watched_total`, and `backhaul_guardian_last_epoch_watched`.
pub fn watched(epoch: u64) {
    metrics::counter!("backhaul_guardian_epochs_watched_total").increment(1);
    metrics::gauge!("backhaul_guardian_last_epoch_watched").set(epoch as f64);
}

/// A proposal whose checks failed (or whose data was withheld):
/// `backhaul_guardian_checks_failed_total`.
pub fn checks_failed() {
    metrics::counter!("backhaul_guardian_checks_failed_total").increment(1);
}

/// A fraud proof that landed: `backhaul_guardian_proofs_sent_total{kind}`.
pub fn proof_sent(kind: &'static str) {
    metrics::counter!("backhaul_guardian_proofs_sent_total", "kind" => kind).increment(1);
}

/// A veto that landed: `backhaul_guardian_vetoes_sent_total`.
pub fn veto_sent() {
    metrics::counter!("backhaul_guardian_vetoes_sent_total").increment(1);
}

/// Something that failed and is retried (or given up on): `backhaul_guardian_errors_total{kind}`
/// (`chain`, `judge`, `proof`, `veto`).
pub fn error(kind: &'static str) {
    metrics::counter!("backhaul_guardian_errors_total", "kind" => kind).increment(1);
}

/// Installs the recorder and serves `GET /metrics` on `addr` until the process ends; returns the
/// address bound (a port of 0 picks one).
pub async fn serve(addr: SocketAddr) -> anyhow::Result<SocketAddr> {
    let handle = backhaul_oracle::metrics::handle()
        .context("cannot install the metrics recorder (another one is installed)")?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("--metrics-listen {addr}: cannot listen"))?;
    let bound = listener.local_addr()?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || async move {
            (
                [(
                    axum::http::header::CONTENT_TYPE,
                    "text/plain; version=0.0.4",
                )],
                handle.render(),
            )
        }),
    );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the metrics endpoint stopped");
        }
    });
    tracing::info!(%bound, "metrics on http://{bound}/metrics");
    Ok(bound)
}
