//! The node as a service (`backhaul node serve`): the accept loop with a limit on sessions at
//! once, each session through [`session::serve`], a bandwidth limit shared by every session, a
//! monthly volume after which new sessions are refused, the receipt queue delivered to every
//! oracle in the background, Prometheus metrics, and a graceful shutdown (stop accepting, let
//! sessions drain briefly, send the queue once more).
//!
//! A session over a limit is refused with the reason in the answer to its hello, which the
//! gateway logs before it tries another node: all `max_sessions` in use ([`busy_refusal`]; the
//! handshake and the answer run beside the sessions, at most [`MAX_REFUSING`] at once, beyond
//! which a connection is closed unanswered), the month's volume used up
//! ([`MONTHLY_LIMIT_REFUSAL`]), or the bandwidth limit shared by as many sessions as it carries at
//! [`MIN_SESSION_BYTES_PER_SEC`] each ([`bandwidth_refusal`]).
//!
//! Metrics: `backhaul_node_sessions_open`, `backhaul_node_sessions_total{outcome}` (`served`,
//! `refused`, `failed`), `backhaul_node_sessions_refused_total{reason}` (`busy`,
//! `monthly_limit`, `bandwidth`, `grant`), `backhaul_node_bytes_relayed_total` (payload bytes, as receipts
//! count them, when a session ends), `backhaul_node_wire_bytes_total{direction}` (the gateways'
//! connections, framing included, as they flow), `backhaul_node_monthly_bytes`,
//! `backhaul_node_receipts_countersigned_total`, and the queue's
//! `backhaul_node_queue_length{oracle}`, `backhaul_node_deliveries_total{result}` (`settled`,
//! `retried`) and `backhaul_node_delivery_refused_total{reason}`, and with a relay
//! `backhaul_node_relay_linked` (1 while the link to the relay is up, 0 otherwise).

use crate::delivery::{Delivery, QueueStore};
use crate::session::{self, BoxFuture, GrantCheck, NodeContext};
use backhaul_protocol::SignedGrant;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};

/// What a client is told once the node's monthly volume is used up.
pub const MONTHLY_LIMIT_REFUSAL: &str =
    "this node has carried its monthly volume limit; try another node";

/// The least bandwidth a session is counted to need: with a bandwidth limit, a node serves at
/// most `limit / MIN_SESSION_BYTES_PER_SEC` sessions at once and refuses more.
pub const MIN_SESSION_BYTES_PER_SEC: u64 = 32 * 1024;

/// Sessions being refused (handshake and answer) at once, beyond those served.
pub const MAX_REFUSING: usize = 32;

/// What a client is told when every session the node serves at once is in use.
pub fn busy_refusal(max_sessions: usize) -> String {
    format!("this node is serving its limit of {max_sessions} sessions at once; try another node")
}

/// What a client is told when the node's bandwidth limit is shared by as many sessions as it
/// carries.
pub fn bandwidth_refusal(bytes_per_sec: u64, sessions: u64) -> String {
    format!(
        "this node's bandwidth limit ({bytes_per_sec} bytes/s) is shared by {sessions} sessions \
         already, at least {MIN_SESSION_BYTES_PER_SEC} bytes/s each; try another node"
    )
}

/// How often the month's volume is written to the data directory.
const VOLUME_SAVE_EVERY: Duration = Duration::from_secs(5);

/// How long the queue gets on shutdown to reach the oracles once more.
const FINAL_FLUSH: Duration = Duration::from_secs(10);

/// The service's limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_sessions: usize,
    /// Bytes per second across sessions; 0: none.
    pub bandwidth_bytes_per_sec: u64,
    /// Bytes per calendar month (UTC); 0: none.
    pub monthly_bytes: u64,
    /// On shutdown, how long sessions may go on.
    pub drain: Duration,
}

impl From<&crate::settings::NodeSettings> for Limits {
    fn from(s: &crate::settings::NodeSettings) -> Self {
        Limits {
            max_sessions: s.max_sessions,
            bandwidth_bytes_per_sec: s.bandwidth_limit_bytes_per_sec,
            monthly_bytes: s.monthly_limit_bytes,
            drain: Duration::from_secs(s.drain_secs),
        }
    }
}

/// `YYYY-MM` of a unix time (UTC).
pub fn month_of(ts: i64) -> String {
    // Howard Hinnant's civil_from_days.
    let z = ts.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}")
}

/// A token bucket: `rate` bytes per second, a second's worth of burst. Reads and writes take
/// what they moved after the fact, so the bucket may go below zero; the next one waits.
struct Bucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn wait(&mut self) -> Option<Duration> {
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        self.last = now;
        if self.tokens > 0.0 {
            None
        } else {
            Some(Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
        }
    }
}

/// What every session's connection shares: the bandwidth bucket and the month's volume.
pub struct Traffic {
    bucket: Option<Mutex<Bucket>>,
    month: Mutex<String>,
    month_bytes: AtomicU64,
    /// Sessions being served (from their connection on, refusals not included).
    sessions: AtomicU64,
}

impl Traffic {
    pub fn new(bandwidth_bytes_per_sec: u64, month: String, month_bytes: u64) -> Self {
        Traffic {
            bucket: (bandwidth_bytes_per_sec > 0).then(|| {
                Mutex::new(Bucket {
                    rate: bandwidth_bytes_per_sec as f64,
                    tokens: bandwidth_bytes_per_sec as f64,
                    last: Instant::now(),
                })
            }),
            month: Mutex::new(month),
            month_bytes: AtomicU64::new(month_bytes),
            sessions: AtomicU64::new(0),
        }
    }

    /// Sessions being served now.
    pub fn sessions(&self) -> u64 {
        self.sessions.load(Ordering::Relaxed)
    }

    /// How long to wait before moving more bytes, if at all.
    fn wait(&self) -> Option<Duration> {
        let bucket = self.bucket.as_ref()?;
        let mut b = bucket.lock().unwrap_or_else(|e| e.into_inner());
        b.wait()
    }

    fn took(&self, n: usize, direction: &'static str) {
        if n == 0 {
            return;
        }
        if let Some(bucket) = &self.bucket {
            let mut b = bucket.lock().unwrap_or_else(|e| e.into_inner());
            b.tokens -= n as f64;
        }
        self.month_bytes.fetch_add(n as u64, Ordering::Relaxed);
        metrics::counter!("backhaul_node_wire_bytes_total", "direction" => direction)
            .increment(n as u64);
    }

    /// This month's volume so far.
    pub fn month_bytes(&self) -> u64 {
        self.month_bytes.load(Ordering::Relaxed)
    }

    /// The month being counted and its volume; when `now_month` is another, the count starts
    /// again from zero, and the finished month's total is returned too.
    fn roll(&self, now_month: &str) -> ((String, u64), Option<(String, u64)>) {
        let mut month = self.month.lock().unwrap_or_else(|e| e.into_inner());
        if *month != now_month {
            let finished = self.month_bytes.swap(0, Ordering::Relaxed);
            let old = std::mem::replace(&mut *month, now_month.to_string());
            return ((now_month.to_string(), 0), Some((old, finished)));
        }
        ((month.clone(), self.month_bytes()), None)
    }
}

/// A connection whose bytes are counted into [`Traffic`] and paced by its bucket.
pub struct Throttled<S> {
    inner: S,
    traffic: Arc<Traffic>,
    sleep: Pin<Box<Sleep>>,
}

impl<S> Throttled<S> {
    pub fn new(inner: S, traffic: Arc<Traffic>) -> Self {
        Throttled {
            inner,
            traffic,
            sleep: Box::pin(tokio::time::sleep(Duration::ZERO)),
        }
    }

    /// Ready when the bucket lets bytes through.
    fn poll_pace(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        while let Some(wait) = self.traffic.wait() {
            self.sleep.as_mut().reset(Instant::now() + wait);
            if self.sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
        Poll::Ready(())
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Throttled<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.poll_pace(cx).is_pending() {
            return Poll::Pending;
        }
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            this.traffic
                .took(buf.filled().len().saturating_sub(before), "in");
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Throttled<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if this.poll_pace(cx).is_pending() {
            return Poll::Pending;
        }
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            this.traffic.took(n, "out");
        }
        r
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The node's own admission before the grant check: no new session once the month's volume is
/// used up, nor beyond what the bandwidth limit carries.
struct Admission {
    inner: Arc<dyn GrantCheck>,
    traffic: Arc<Traffic>,
    monthly_bytes: u64,
    bandwidth_bytes_per_sec: u64,
}

impl GrantCheck for Admission {
    fn check<'a>(
        &'a self,
        grant: &'a SignedGrant,
        epoch: u64,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            if self.monthly_bytes > 0 && self.traffic.month_bytes() >= self.monthly_bytes {
                return Err(MONTHLY_LIMIT_REFUSAL.to_string());
            }
            // This session is counted among those served already.
            let others = self.traffic.sessions().saturating_sub(1);
            if self.bandwidth_bytes_per_sec > 0
                && (others + 1).saturating_mul(MIN_SESSION_BYTES_PER_SEC)
                    > self.bandwidth_bytes_per_sec
            {
                return Err(bandwidth_refusal(self.bandwidth_bytes_per_sec, others));
            }
            self.inner.check(grant, epoch).await
        })
    }
}

/// What a run served.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub served: u64,
    pub refused: u64,
    pub failed: u64,
    /// Payload bytes of the sessions served.
    pub bytes: u64,
    /// Sessions still running when the drain ended, cut.
    pub cut: u64,
    /// Whether the last delivery reached every oracle with everything.
    pub flushed: bool,
}

/// The node service, bound and ready to run.
pub struct Server {
    listener: Option<TcpListener>,
    relay: Option<String>,
    cx: Arc<NodeContext>,
    delivery: Delivery,
    limits: Limits,
    traffic: Arc<Traffic>,
}

impl Server {
    /// Binds `listen`. `cx` is the sessions' context: its receipts go to `delivery`'s queue
    /// (whatever `cx.receipts` was), its grant check runs after the monthly limit's.
    pub async fn bind(
        listen: SocketAddr,
        cx: NodeContext,
        delivery: Delivery,
        limits: Limits,
    ) -> std::io::Result<Server> {
        Server::new(Some(listen), cx, delivery, limits).await
    }

    /// [`Server::bind`], or with no listening port at all (`None`: the node is reached through
    /// a relay only, [`Server::with_relay`]).
    pub async fn new(
        listen: Option<SocketAddr>,
        cx: NodeContext,
        delivery: Delivery,
        limits: Limits,
    ) -> std::io::Result<Server> {
        let listener = match listen {
            Some(a) => Some(TcpListener::bind(a).await?),
            None => None,
        };
        let month = month_of((cx.clock)());
        let month_bytes = delivery
            .queue
            .volume(&month)
            .await
            .map_err(std::io::Error::other)?;
        let traffic = Arc::new(Traffic::new(
            limits.bandwidth_bytes_per_sec,
            month,
            month_bytes,
        ));
        metrics::gauge!("backhaul_node_monthly_bytes").set(month_bytes as f64);
        let cx = NodeContext {
            grants: Arc::new(Admission {
                inner: cx.grants.clone(),
                traffic: traffic.clone(),
                monthly_bytes: limits.monthly_bytes,
                bandwidth_bytes_per_sec: limits.bandwidth_bytes_per_sec,
            }),
            receipts: Arc::new(QueueStore(delivery.clone())),
            ..cx
        };
        Ok(Server {
            listener,
            relay: None,
            cx: Arc::new(cx),
            delivery,
            limits,
            traffic,
        })
    }

    /// Also serves the sessions of gateways that reach the node through the relay at `relay`
    /// (`host:port`): the node keeps its link up, reconnecting with a backoff, and each spliced
    /// connection is served as an accepted one (the same session limit, bandwidth and queue).
    pub fn with_relay(mut self, relay: Option<String>) -> Self {
        self.relay = relay;
        self
    }

    /// The listening address (an error when the node listens on no port).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match &self.listener {
            Some(l) => l.local_addr(),
            None => Err(std::io::Error::other("the node listens on no port")),
        }
    }

    /// Serves until `shutdown` completes, then drains and flushes.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Summary {
        let Server {
            listener,
            relay,
            cx,
            delivery,
            limits,
            traffic,
        } = self;
        let (stop_tx, stop_rx) = watch::channel(false);
        let loops = delivery.spawn(stop_rx.clone());
        let saver = tokio::spawn(save_volume(
            delivery.clone(),
            traffic.clone(),
            cx.clock.clone(),
            stop_rx,
        ));
        let permits = Arc::new(Semaphore::new(limits.max_sessions));
        let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
        let summary = Arc::new(Mutex::new(Summary::default()));
        let mut sessions = JoinSet::new();
        let (relayed_tx, mut relayed) = mpsc::channel::<(TcpStream, SocketAddr)>(64);
        let linker = relay.map(|r| tokio::spawn(keep_linked(r, cx.node.clone(), relayed_tx)));
        let accept = || async {
            match &listener {
                Some(l) => l.accept().await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = async {
                    tokio::select! {
                        a = accept() => a,
                        Some(r) = relayed.recv() => Ok(r),
                    }
                } => match accepted {
                    Err(e) => {
                        // Out of file descriptors, most likely: wait for sessions to end.
                        tracing::warn!(error = %e, "cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Ok((stream, peer)) => {
                        let Ok(permit) = permits.clone().try_acquire_owned() else {
                            metrics::counter!("backhaul_node_sessions_refused_total", "reason" => "busy").increment(1);
                            metrics::counter!("backhaul_node_sessions_total", "outcome" => "refused").increment(1);
                            summary.lock().unwrap_or_else(|e| e.into_inner()).refused += 1;
                            // Told why, so that its gateway tries another node at once.
                            let Ok(refusal) = refusing.clone().try_acquire_owned() else {
                                tracing::info!(%peer, max = limits.max_sessions, "busy: connection closed");
                                continue;
                            };
                            tracing::info!(%peer, max = limits.max_sessions, "busy: session refused");
                            let cx = cx.clone();
                            let why = busy_refusal(limits.max_sessions);
                            sessions.spawn(async move {
                                let _ = stream.set_nodelay(true);
                                if let Err(e) = session::refuse(stream, &cx, &why).await {
                                    tracing::debug!(%peer, error = %e, "refusal not delivered");
                                }
                                drop(refusal);
                            });
                            continue;
                        };
                        let cx = cx.clone();
                        let traffic = traffic.clone();
                        let summary = summary.clone();
                        sessions.spawn(async move {
                            serve_one(stream, peer, &cx, traffic, &summary).await;
                            drop(permit);
                        });
                    }
                },
                Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
            }
        }
        drop(listener);
        if let Some(l) = linker {
            l.abort();
            metrics::gauge!("backhaul_node_relay_linked").set(0.0);
        }
        drop(relayed);
        let running = sessions.len();
        if running > 0 {
            tracing::info!(
                sessions = running,
                drain_secs = limits.drain.as_secs(),
                "stopping: no new sessions; letting those in progress end"
            );
        }
        let drained = tokio::time::timeout(limits.drain, async {
            while sessions.join_next().await.is_some() {}
        })
        .await;
        let cut = if drained.is_err() {
            let n = sessions.len() as u64;
            tracing::info!(sessions = n, "cutting the sessions still running");
            sessions.abort_all();
            while sessions.join_next().await.is_some() {}
            n
        } else {
            0
        };
        let _ = stop_tx.send(true);
        for l in loops {
            let _ = l.await;
        }
        let _ = saver.await;
        let flushed = delivery.flush(FINAL_FLUSH).await;
        if !flushed {
            tracing::warn!(
                "some receipts have not reached every oracle yet: they stay queued in the data \
                 directory and are sent at the next start"
            );
        }
        let mut s = summary.lock().unwrap_or_else(|e| e.into_inner()).clone();
        s.cut = cut;
        s.flushed = flushed;
        s
    }
}

/// Keeps the node's link to the relay at `relay` up: each spliced connection goes to `streams`
/// (as if accepted from the relay's address). A link that drops is made again after a backoff
/// from 1 s to a minute (back to 1 s after a link that held a minute).
async fn keep_linked(
    relay: String,
    node: ed25519_dalek::SigningKey,
    streams: mpsc::Sender<(TcpStream, SocketAddr)>,
) {
    let linked = metrics::gauge!("backhaul_node_relay_linked");
    linked.set(0.0);
    let mut backoff = Duration::from_secs(1);
    loop {
        let started = Instant::now();
        let addr = tokio::net::lookup_host(relay.as_str())
            .await
            .ok()
            .and_then(|mut a| a.next());
        let ended = match addr {
            None => format!("cannot resolve {relay}"),
            Some(addr) => {
                let streams = streams.clone();
                let serve = move |s: TcpStream| {
                    let streams = streams.clone();
                    async move {
                        let _ = streams.send((s, addr)).await;
                    }
                };
                let registered = || {
                    linked.set(1.0);
                    tracing::info!(%relay, "linked to the relay: gateways reach this node through it");
                };
                match crate::relay::link_with(addr, &node, registered, serve).await {
                    Ok(()) => "the link closed".to_string(),
                    Err(e) => e.to_string(),
                }
            }
        };
        linked.set(0.0);
        if started.elapsed() >= Duration::from_secs(60) {
            backoff = Duration::from_secs(1);
        }
        tracing::info!(
            %relay,
            error = %ended,
            retry_in_secs = backoff.as_secs(),
            "no link to the relay; linking again"
        );
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(60));
    }
}

/// Writes the month's volume every few seconds and when stopping, and starts a new month's
/// count when the month changes.
async fn save_volume(
    delivery: Delivery,
    traffic: Arc<Traffic>,
    clock: Arc<dyn Fn() -> i64 + Send + Sync>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let stopping = tokio::select! {
            _ = stop.changed() => true,
            _ = tokio::time::sleep(VOLUME_SAVE_EVERY) => false,
        };
        let ((month, bytes), finished) = traffic.roll(&month_of(clock()));
        if let Some((old, total)) = finished {
            tracing::info!(month = %old, bytes = total, "a month ended");
            if let Err(e) = delivery.queue.set_volume(&old, total).await {
                tracing::warn!(error = %e, "cannot record the month's volume");
            }
        }
        metrics::gauge!("backhaul_node_monthly_bytes").set(bytes as f64);
        if let Err(e) = delivery.queue.set_volume(&month, bytes).await {
            tracing::warn!(error = %e, "cannot record the month's volume");
        }
        if stopping || *stop.borrow() {
            return;
        }
    }
}

/// A short base58 form of a key for logs.
fn short(key: &[u8; 32]) -> String {
    bs58::encode(key).into_string()
}

async fn serve_one(
    stream: TcpStream,
    peer: SocketAddr,
    cx: &NodeContext,
    traffic: Arc<Traffic>,
    summary: &Mutex<Summary>,
) {
    let _ = stream.set_nodelay(true);
    let open = metrics::gauge!("backhaul_node_sessions_open");
    open.increment(1.0);
    traffic.sessions.fetch_add(1, Ordering::Relaxed);
    let result = session::serve(Throttled::new(stream, traffic.clone()), cx).await;
    traffic.sessions.fetch_sub(1, Ordering::Relaxed);
    open.decrement(1.0);
    let mut s = summary.lock().unwrap_or_else(|e| e.into_inner());
    match result {
        Ok(report) if report.client.is_none() => {
            let reason = if report.end.contains(MONTHLY_LIMIT_REFUSAL) {
                "monthly_limit"
            } else if report.end.contains("bandwidth limit") {
                "bandwidth"
            } else {
                "grant"
            };
            tracing::info!(%peer, end = %report.end, "session refused");
            metrics::counter!("backhaul_node_sessions_refused_total", "reason" => reason)
                .increment(1);
            metrics::counter!("backhaul_node_sessions_total", "outcome" => "refused").increment(1);
            s.refused += 1;
        }
        Ok(report) => {
            tracing::info!(
                %peer,
                client = %report.client.as_ref().map(short).unwrap_or_default(),
                bytes = report.counted,
                receipted = report.receipted,
                receipts = report.receipts,
                end = %report.end,
                "session ended"
            );
            metrics::counter!("backhaul_node_sessions_total", "outcome" => "served").increment(1);
            metrics::counter!("backhaul_node_bytes_relayed_total").increment(report.counted);
            s.served += 1;
            s.bytes = s.bytes.saturating_add(report.counted);
        }
        Err(e) => {
            tracing::debug!(%peer, error = %e, "session failed");
            metrics::counter!("backhaul_node_sessions_total", "outcome" => "failed").increment(1);
            s.failed += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months() {
        assert_eq!(month_of(0), "1970-01");
        assert_eq!(month_of(1_800_000_000), "2027-01");
        assert_eq!(month_of(951_782_400), "2000-02"); // 2000-02-29
        assert_eq!(month_of(951_868_799), "2000-02");
        assert_eq!(month_of(951_868_800), "2000-03");
    }

    #[tokio::test]
    async fn the_bucket_paces_bytes_across_connections() {
        let traffic = Arc::new(Traffic::new(64 * 1024, "2027-01".into(), 0));
        let (a, mut b) = tokio::io::duplex(1 << 20);
        let mut t = Throttled::new(a, traffic.clone());
        let start = std::time::Instant::now();
        let reader = tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let mut sink = Vec::new();
            let _ = b.read_to_end(&mut sink).await;
            sink.len()
        });
        use tokio::io::AsyncWriteExt;
        // 64 KiB of burst, then 128 KiB more at 64 KiB/s: about two seconds.
        for _ in 0..12 {
            t.write_all(&[0u8; 16 * 1024]).await.expect("write");
        }
        t.shutdown().await.expect("shutdown");
        drop(t);
        assert_eq!(reader.await.expect("join"), 12 * 16 * 1024);
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(1_700), "{took:?}");
        assert_eq!(traffic.month_bytes(), 12 * 16 * 1024);
        let ((m, n), finished) = traffic.roll("2027-02");
        assert_eq!((m.as_str(), n), ("2027-02", 0));
        assert_eq!(finished, Some(("2027-01".to_string(), 12 * 16 * 1024)));
    }
}
