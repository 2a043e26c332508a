//! Sending a [`Queue`] to every oracle, for as long as the service runs: one loop per oracle, so
//! that an oracle that is down (and backed off from, up to a minute) never delays the others. A
//! new receipt wakes every loop; a loop with nothing new looks again every `every`.

use crate::queue::{Delivered, Queue};
use crate::session::{BoxFuture, ReceiptStore};
use backhaul_client::OracleClient;
use backhaul_protocol::SignedReceipt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

/// The longest pause after failures.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// How long a loop waits after a wake-up before sending, so that receipts arriving together go
/// in one request.
pub const BATCH_WAIT: Duration = Duration::from_millis(200);

/// Receipts every oracle has settled are removed from the queue this long after they were
/// queued.
pub const KEEP_SETTLED_SECS: i64 = 86_400;

/// How often settled receipts are looked for.
const PRUNE_EVERY: Duration = Duration::from_secs(3_600);

/// The queue, the oracles and their loops' wake-ups. `role` names the metrics
/// (`backhaul_<role>_deliveries_total{result}`, `backhaul_<role>_queue_length{oracle}`,
/// `backhaul_<role>_delivery_refused_total{reason}`).
#[derive(Clone)]
pub struct Delivery {
    pub queue: Queue,
    oracles: Vec<OracleClient>,
    wakes: Vec<Arc<Notify>>,
    every: Duration,
    role: &'static str,
}

/// The pause after `failures` failed passes in a row: 1 s, 2 s, 4 s, ... up to [`MAX_BACKOFF`].
pub fn backoff(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.saturating_sub(1).min(6)).min(MAX_BACKOFF)
}

impl Delivery {
    pub fn new(
        queue: Queue,
        oracles: Vec<OracleClient>,
        every: Duration,
        role: &'static str,
    ) -> Self {
        let wakes = oracles.iter().map(|_| Arc::new(Notify::new())).collect();
        Delivery {
            queue,
            oracles,
            wakes,
            every,
            role,
        }
    }

    pub fn oracles(&self) -> &[OracleClient] {
        &self.oracles
    }

    /// Wakes every oracle's loop (a receipt was queued).
    pub fn wake(&self) {
        for w in &self.wakes {
            w.notify_one();
        }
    }

    /// Queues `r` durably, then wakes the loops.
    pub async fn push(&self, r: &SignedReceipt) -> Result<(), sqlx::Error> {
        self.queue.push(r).await?;
        self.wake();
        Ok(())
    }

    fn record(&self, d: &Delivered) {
        let role = self.role;
        if d.settled > 0 {
            metrics::counter!(format!("backhaul_{role}_deliveries_total"), "result" => "settled")
                .increment(d.settled);
        }
        if d.retry > 0 {
            metrics::counter!(format!("backhaul_{role}_deliveries_total"), "result" => "retried")
                .increment(d.retry);
        }
        for (oracle, reason) in &d.refused {
            tracing::warn!(%oracle, reason = reason.as_str(), "an oracle refused a receipt for good");
            metrics::counter!(
                format!("backhaul_{role}_delivery_refused_total"),
                "reason" => reason.as_str()
            )
            .increment(1);
        }
    }

    async fn gauge(&self, oracle: &OracleClient) {
        let name = oracle.base_url().to_string();
        if let Ok(n) = self.queue.pending_len(&name).await {
            metrics::gauge!(format!("backhaul_{}_queue_length", self.role), "oracle" => name)
                .set(n as f64);
        }
    }

    /// One oracle until nothing is left or a pass needs a retry; whether all went through.
    async fn pass(&self, oracle: &OracleClient) -> bool {
        let ok = loop {
            match self.queue.deliver(std::slice::from_ref(oracle)).await {
                Ok(d) => {
                    self.record(&d);
                    if d.retry > 0 {
                        break false;
                    }
                    if d.settled == 0 {
                        break true;
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the receipt queue");
                    break false;
                }
            }
        };
        self.gauge(oracle).await;
        ok
    }

    /// Removes what every oracle has settled, [`KEEP_SETTLED_SECS`] after it was queued.
    pub async fn prune(&self) {
        let names: Vec<String> = self
            .oracles
            .iter()
            .map(|o| o.base_url().to_string())
            .collect();
        match self.queue.prune(&names, KEEP_SETTLED_SECS).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(receipts = n, "settled receipts removed from the queue"),
            Err(e) => tracing::warn!(error = %e, "cannot remove settled receipts from the queue"),
        }
    }

    /// Starts one loop per oracle, and one that removes what every oracle settled; they end
    /// when `stop` turns true.
    pub fn spawn(&self, stop: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
        let pruner = {
            let this = self.clone();
            let mut stop = stop.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = stop.changed() => return,
                        _ = tokio::time::sleep(PRUNE_EVERY) => this.prune().await,
                    }
                }
            })
        };
        let mut loops: Vec<JoinHandle<()>> = (0..self.oracles.len())
            .map(|i| {
                let this = self.clone();
                let mut stop = stop.clone();
                tokio::spawn(async move {
                    let oracle = &this.oracles[i];
                    let wake = this.wakes[i].clone();
                    let mut failures = 0u32;
                    loop {
                        if *stop.borrow() {
                            return;
                        }
                        if this.pass(oracle).await {
                            failures = 0;
                        } else {
                            failures = failures.saturating_add(1);
                        }
                        let pause = if failures == 0 {
                            this.every
                        } else {
                            backoff(failures)
                        };
                        tokio::select! {
                            _ = stop.changed() => return,
                            _ = tokio::time::sleep(pause) => {}
                            _ = wake.notified(), if failures == 0 => {
                                tokio::time::sleep(BATCH_WAIT).await;
                            }
                        }
                    }
                })
            })
            .collect();
        loops.push(pruner);
        loops
    }

    /// Sends what is queued to every oracle once more (on shutdown), within `within`; whether
    /// every oracle settled everything.
    pub async fn flush(&self, within: Duration) -> bool {
        let all = async {
            let mut ok = true;
            for o in &self.oracles {
                ok &= self.pass(o).await;
            }
            ok
        };
        tokio::time::timeout(within, all).await.unwrap_or(false)
    }
}

/// The node's [`ReceiptStore`]: each countersigned receipt is queued (committed) and the
/// delivery loops woken; `backhaul_node_receipts_countersigned_total` counts them.
pub struct QueueStore(pub Delivery);

impl ReceiptStore for QueueStore {
    fn store(&self, receipt: SignedReceipt) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            self.0.push(&receipt).await.map_err(|e| e.to_string())?;
            metrics::counter!("backhaul_node_receipts_countersigned_total").increment(1);
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn settled_receipts_leave_the_queue_once_every_oracle_has_them() {
        use backhaul_protocol::{Deployment, UsageReceipt};
        use ed25519_dalek::SigningKey;
        let d = Deployment {
            program_id: [1; 32],
            config: [2; 32],
        };
        let dir = tempfile::tempdir().expect("dir");
        let q = Queue::open(dir.path()).await.expect("queue");
        let client = SigningKey::from_bytes(&[4; 32]);
        let node = SigningKey::from_bytes(&[7; 32]);
        let receipts: Vec<_> = (1..=3u64)
            .map(|seq| {
                UsageReceipt {
                    epoch: 1,
                    session_id: [1; 16],
                    node: node.verifying_key().to_bytes(),
                    client: client.verifying_key().to_bytes(),
                    buyer: [3; 32],
                    sequence: seq,
                    cumulative_bytes: seq * 1000,
                    session_age_secs: seq,
                }
                .sign_both(&d, &client, &node)
            })
            .collect();
        for r in &receipts {
            q.push(r).await.expect("push");
        }
        let oracles = ["http://a/".to_string(), "http://b/".to_string()];
        // Nothing settled: nothing goes, however old.
        assert_eq!(q.prune(&oracles, -10).await.expect("prune"), 0);
        // The first receipt settled with both oracles, the second with one.
        for o in &oracles {
            q.mark(o, &receipts[0]).await.expect("mark");
        }
        q.mark(&oracles[0], &receipts[1]).await.expect("mark");
        // Too recent to go.
        assert_eq!(q.prune(&oracles, 3_600).await.expect("prune"), 0);
        assert_eq!(q.prune(&oracles, -10).await.expect("prune"), 1);
        assert_eq!(q.len().await.expect("len"), 2);
        assert_eq!(q.pending_len(&oracles[0]).await.expect("pending"), 1);
        assert_eq!(q.pending_len(&oracles[1]).await.expect("pending"), 2);
    }

    #[test]
    fn backoff_doubles_up_to_a_minute() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(4), Duration::from_secs(8));
        assert_eq!(backoff(7), Duration::from_secs(60));
        assert_eq!(backoff(100), Duration::from_secs(60));
    }
}
