//! What `/health` reports beyond a database ping: whether the last ingest write committed, whether
//! the chain's endpoint answers, and whether the submitter is backing off.
//!
//! Each part keeps its state, since when it has been in that state (unix seconds), the last error
//! and how many failures in a row it has seen. The parts are updated by the tasks that do the work
//! (the writer, the clock loop, the submit loop), so the report says what the oracle itself
//! experienced, not what a fresh probe would see. Every URL in an error is cut to
//! `scheme://host[:port]` (an RPC URL's path or query often holds an API key).

use crate::settings::redact_urls;
use serde::Serialize;
use std::sync::Mutex;

/// One part's state.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Part {
    /// `ok`, or what is wrong (`failing`, `unreachable`, `retrying`), or `disabled`.
    pub status: &'static str,
    /// Since when (unix seconds) it has been in this state; `None` before the first report.
    pub since: Option<i64>,
    /// Failures in a row (zero when ok).
    pub failures: u64,
    /// The last error, while failing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When the next attempt is due, seconds from the report (the submitter's backoff).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_in_secs: Option<u64>,
}

impl Part {
    fn new(status: &'static str) -> Self {
        Part {
            status,
            ..Default::default()
        }
    }

    pub fn is_ok(&self) -> bool {
        self.status == "ok" || self.status == "disabled"
    }

    fn ok(&mut self, now: i64) {
        if self.status != "ok" || self.since.is_none() {
            self.since = Some(now);
        }
        self.status = "ok";
        self.failures = 0;
        self.error = None;
        self.retry_in_secs = None;
    }

    fn failed(&mut self, status: &'static str, error: String, now: i64) {
        if self.status != status {
            self.since = Some(now);
        }
        self.status = status;
        self.failures = self.failures.saturating_add(1);
        self.error = Some(error);
    }
}

/// A snapshot of every part.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Report {
    /// Ingest writes: `ok` or `failing` (the last group of requests could not be stored).
    pub storage: Part,
    /// The Solana endpoint: `ok` or `unreachable`.
    pub chain: Part,
    /// The submitter: `ok`, `retrying` (backing off after errors) or `disabled` (no keypair).
    pub submitter: Part,
}

/// Shared by the tasks that report and the health endpoint that reads.
pub struct Status {
    inner: Mutex<Report>,
}

impl Default for Status {
    fn default() -> Self {
        Status {
            inner: Mutex::new(Report {
                storage: Part::new("ok"),
                chain: Part::new("ok"),
                submitter: Part::new("disabled"),
            }),
        }
    }
}

impl Status {
    fn update(&self, f: impl FnOnce(&mut Report, i64)) {
        let now = crate::clock::now();
        if let Ok(mut r) = self.inner.lock() {
            f(&mut r, now);
        }
    }

    /// A copy of the current state.
    pub fn report(&self) -> Report {
        self.inner
            .lock()
            .map(|r| r.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    /// An ingest group committed.
    pub fn storage_ok(&self) {
        self.update(|r, now| {
            if r.storage.status != "ok" {
                tracing::info!(
                    after_failures = r.storage.failures,
                    "storing ingest batches works again"
                );
            }
            r.storage.ok(now)
        });
    }

    /// An ingest group could not be stored.
    pub fn storage_failed(&self, error: &impl ToString) {
        let error = redact_urls(&error.to_string());
        self.update(|r, now| r.storage.failed("failing", error, now));
    }

    /// The chain's endpoint answered.
    pub fn chain_ok(&self) {
        self.update(|r, now| {
            if r.chain.status != "ok" {
                tracing::info!(
                    after_failures = r.chain.failures,
                    "the chain's endpoint answers again"
                );
            }
            r.chain.ok(now)
        });
        metrics::gauge!("backhaul_chain_reachable").set(1.0);
    }

    /// The chain's endpoint failed to answer.
    pub fn chain_failed(&self, error: &impl ToString) {
        let error = redact_urls(&error.to_string());
        self.update(|r, now| r.chain.failed("unreachable", error, now));
        metrics::gauge!("backhaul_chain_reachable").set(0.0);
        metrics::counter!("backhaul_chain_errors_total").increment(1);
    }

    /// A submitter tick went through.
    pub fn submit_ok(&self) {
        self.update(|r, now| r.submitter.ok(now));
        metrics::gauge!("backhaul_submit_backoff_seconds").set(0.0);
    }

    /// A submitter tick failed; the next one is due in `retry_in_secs`.
    pub fn submit_failed(&self, error: &impl ToString, retry_in_secs: u64) {
        let error = redact_urls(&error.to_string());
        self.update(|r, now| {
            r.submitter.failed("retrying", error, now);
            r.submitter.retry_in_secs = Some(retry_in_secs);
        });
        metrics::gauge!("backhaul_submit_backoff_seconds").set(retry_in_secs as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_count_failures_and_reset() {
        let s = Status::default();
        assert_eq!(s.report().submitter.status, "disabled");
        assert!(s.report().submitter.is_ok());
        s.chain_failed(&"connection refused");
        s.chain_failed(&"connection refused");
        let r = s.report();
        assert_eq!(r.chain.status, "unreachable");
        assert_eq!(r.chain.failures, 2);
        assert_eq!(r.chain.error.as_deref(), Some("connection refused"));
        assert!(!r.chain.is_ok());
        s.chain_ok();
        let r = s.report();
        assert_eq!((r.chain.status, r.chain.failures), ("ok", 0));
        assert!(r.chain.error.is_none());
        s.submit_failed(&"timeout", 8);
        let r = s.report();
        assert_eq!(r.submitter.status, "retrying");
        assert_eq!(r.submitter.retry_in_secs, Some(8));
        s.storage_failed(&"database or disk is full");
        assert_eq!(s.report().storage.status, "failing");
        s.storage_ok();
        assert_eq!(s.report().storage.failures, 0);
    }

    #[test]
    fn errors_never_carry_a_url_s_path_or_query() {
        let s = Status::default();
        s.chain_failed(
            &"error sending request for url (https://rpc.example/k/TOKEN?api-key=SECRET)",
        );
        s.submit_failed(&"rpc https://rpc.example/?api-key=SECRET failed", 2);
        let json = serde_json::to_string(&s.report()).unwrap();
        assert!(
            !json.contains("SECRET") && !json.contains("TOKEN"),
            "{json}"
        );
        assert!(json.contains("https://rpc.example"), "{json}");
    }
}
