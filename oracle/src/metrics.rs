//! Prometheus metrics, named once here.

use backhaul_protocol::api::{ItemResult, ItemStatus};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

/// The process-wide recorder's handle (installed on first use).
pub fn handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok().map(|_| handle)
        })
        .as_ref()
}

/// One ingested item's outcome: `backhaul_ingest_items_total{status, reason}`.
pub fn item(r: &ItemResult) {
    let status = match r.status {
        ItemStatus::Accepted => "accepted",
        ItemStatus::Duplicate => "duplicate",
        ItemStatus::Superseded => "superseded",
        ItemStatus::Equivocation => "equivocation",
        ItemStatus::Held => "held",
        ItemStatus::Rejected => "rejected",
    };
    let reason = r.reason.map_or("", |r| r.as_str());
    metrics::counter!("backhaul_ingest_items_total", "status" => status, "reason" => reason)
        .increment(1);
}

/// A request refused as a whole: `backhaul_ingest_requests_refused_total{code}`.
pub fn refused(code: u16) {
    metrics::counter!("backhaul_ingest_requests_refused_total", "code" => code.to_string())
        .increment(1);
}

/// A stored dataset parsed to answer a read endpoint (a miss of the summary cache):
/// `backhaul_api_dataset_parses_total`.
pub fn dataset_parsed() {
    metrics::counter!("backhaul_api_dataset_parses_total").increment(1);
}

/// A failed database write: `backhaul_storage_errors_total`.
pub fn storage_error() {
    metrics::counter!("backhaul_storage_errors_total").increment(1);
}

/// A closed epoch: `backhaul_epochs_closed_total`, `backhaul_last_closed_epoch`, and how long it took.
pub fn epoch_closed(epoch: u64, seconds: f64) {
    metrics::counter!("backhaul_epochs_closed_total").increment(1);
    metrics::gauge!("backhaul_last_closed_epoch").set(epoch as f64);
    metrics::histogram!("backhaul_epoch_close_seconds").record(seconds);
}

/// A close that could not run yet or failed: `backhaul_epoch_close_errors_total{kind}`.
pub fn close_error(kind: &'static str) {
    metrics::counter!("backhaul_epoch_close_errors_total", "kind" => kind).increment(1);
}

/// Proofs served: `backhaul_proofs_served_total{tree}`.
pub fn proof_served(tree: &'static str) {
    metrics::counter!("backhaul_proofs_served_total", "tree" => tree).increment(1);
}

/// One ingest write set stored: `backhaul_ingest_write_seconds{phase}` (`statements`: the
/// inserts and deletes; `commit`: making them durable) and `backhaul_ingest_write_ops` (writes
/// per set).
pub fn write_set(ops: usize, statements: f64, commit: f64) {
    metrics::histogram!("backhaul_ingest_write_seconds", "phase" => "statements")
        .record(statements);
    metrics::histogram!("backhaul_ingest_write_seconds", "phase" => "commit").record(commit);
    metrics::histogram!("backhaul_ingest_write_ops").record(ops as f64);
}

/// A peer that could not be synced from: `backhaul_agreement_peer_errors_total`.
pub fn agreement_peer_error() {
    metrics::counter!("backhaul_agreement_peer_errors_total").increment(1);
}

/// An epoch closed again because its agreed input changed after a round without quorum:
/// `backhaul_agreement_recloses_total`; and one adopted from peers after it was finalized
/// without this oracle: `backhaul_agreement_adopted_total`.
pub fn reclosed() {
    metrics::counter!("backhaul_agreement_recloses_total").increment(1);
}

pub fn adopted(epoch: u64) {
    metrics::counter!("backhaul_agreement_adopted_total").increment(1);
    metrics::gauge!("backhaul_last_closed_epoch").set(epoch as f64);
}

/// The oracles whose input is missing here for the epoch being closed:
/// `backhaul_agreement_missing_peers`.
pub fn missing_peers(n: usize) {
    metrics::gauge!("backhaul_agreement_missing_peers").set(n as f64);
}

/// A held receipt stored once its binding or grant arrived (or refused then):
/// `backhaul_ingest_held_released_total{status}`.
pub fn released(r: &ItemResult) {
    let status = if r.status == ItemStatus::Accepted {
        "stored"
    } else {
        "not_stored"
    };
    metrics::counter!("backhaul_ingest_held_released_total", "status" => status).increment(1);
}

/// Held receipts dropped at their epoch's cutoff: `backhaul_ingest_held_dropped_total`.
pub fn held_dropped(n: usize) {
    metrics::counter!("backhaul_ingest_held_dropped_total").increment(n as u64);
}

/// Receipts held now: `backhaul_ingest_held_receipts`.
pub fn held(n: usize) {
    metrics::gauge!("backhaul_ingest_held_receipts").set(n as f64);
}

/// Rows pruned after a finalization: `backhaul_pruned_rows_total{table}`.
pub fn pruned(p: &crate::db::Pruned) {
    for (table, n) in [
        ("receipts", p.receipts),
        ("bindings", p.bindings),
        ("grants", p.grants),
    ] {
        metrics::counter!("backhaul_pruned_rows_total", "table" => table).increment(n);
    }
}

/// Held input files removed after their epochs were pruned: `backhaul_pruned_files_total`.
pub fn pruned_files(n: usize) {
    metrics::counter!("backhaul_pruned_files_total").increment(n as u64);
}

/// Connections open now: `backhaul_http_open_connections`.
pub fn connections(n: usize) {
    metrics::gauge!("backhaul_http_open_connections").set(n as f64);
}
