//! One session on the node's side (`docs/node.md`): the handshake, the client's hello, the proxy
//! request, the connection to the destination under the egress rules, then the relay, metered,
//! with receipts asked for, checked, countersigned and stored before more bytes flow.

use crate::channel::{Channel, ChannelError};
use crate::egress::Policy;
use crate::frame::{Frame, Welcome, MAX_DATA};
use crate::hello;
use crate::meter::Meter;
use crate::proxy::{self, Failure, Handshake};
use backhaul_protocol::verify::SigCheck;
use backhaul_protocol::{Deployment, SignedGrant, SignedReceipt, UsageReceipt};
use ed25519_dalek::SigningKey;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// A boxed future, for the node's pluggable checks.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Whether a grant's buyer may be served now (the buyer has credits, as the oracles or the
/// chain see them); `Err` carries the reason told to the client.
pub trait GrantCheck: Send + Sync {
    fn check<'a>(&'a self, grant: &'a SignedGrant, epoch: u64)
        -> BoxFuture<'a, Result<(), String>>;
}

/// Where countersigned receipts go: stored durably before `store` returns.
pub trait ReceiptStore: Send + Sync {
    fn store(&self, receipt: SignedReceipt) -> BoxFuture<'_, Result<(), String>>;
}

/// What the node's sessions share.
pub struct NodeContext {
    pub deployment: Deployment,
    pub node: SigningKey,
    pub genesis_ts: i64,
    pub epoch_length_secs: u64,
    pub receipt_every_bytes: u64,
    pub max_unreceipted_bytes: u64,
    /// How long the node waits for a receipt once it stopped relaying, and for the handshake,
    /// the hello and the proxy request.
    pub timeout: Duration,
    pub policy: Policy,
    pub grants: Arc<dyn GrantCheck>,
    pub receipts: Arc<dyn ReceiptStore>,
    /// The clock (unix seconds); tests move it.
    pub clock: Arc<dyn Fn() -> i64 + Send + Sync>,
}

impl NodeContext {
    fn epoch_at(&self, ts: i64) -> (u64, i64) {
        let len = i64::try_from(self.epoch_length_secs.max(1)).unwrap_or(i64::MAX);
        let since = ts.saturating_sub(self.genesis_ts).max(0);
        let epoch = since / len;
        (
            u64::try_from(epoch).unwrap_or(0),
            self.genesis_ts.saturating_add(epoch.saturating_mul(len)),
        )
    }
}

/// How a session ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionReport {
    /// The client key, once its hello was accepted.
    pub client: Option<[u8; 32]>,
    /// Bytes relayed both ways.
    pub counted: u64,
    /// The last countersigned amount.
    pub receipted: u64,
    /// Countersigned receipts.
    pub receipts: u64,
    /// Why it ended.
    pub end: String,
}

/// Why a session failed before it was served.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("{0}")]
    Channel(#[from] ChannelError),
    #[error("timed out waiting for the {0}")]
    Timeout(&'static str),
    #[error("the client closed before its {0}")]
    Closed(&'static str),
    #[error("the client sent {0} where its {1} was expected")]
    Unexpected(&'static str, &'static str),
}

fn kind(f: &Frame) -> &'static str {
    match f {
        Frame::Hello(_) => "a hello",
        Frame::Welcome(_) => "a welcome",
        Frame::Refused(_) => "a refusal",
        Frame::Data(_) => "data",
        Frame::ReceiptDue(_) => "a receipt request",
        Frame::Receipt(..) => "a receipt",
        Frame::Countersigned(..) => "a countersignature",
        Frame::Close(_) => "a close",
    }
}

async fn recv_within<S: AsyncRead + AsyncWrite + Unpin>(
    chan: &mut Channel<S>,
    timeout: Duration,
    what: &'static str,
) -> Result<Frame, SessionError> {
    match tokio::time::timeout(timeout, chan.recv()).await {
        Err(_) => Err(SessionError::Timeout(what)),
        Ok(r) => r?.ok_or(SessionError::Closed(what)),
    }
}

/// Answers a session the node will not serve (it is at a limit): the handshake, then `why` in
/// answer to the hello, whatever it holds, so that the client learns the reason and tries another
/// node. Waits at most `cx.timeout` for each step.
pub async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    cx: &NodeContext,
    why: &str,
) -> Result<(), SessionError> {
    let mut chan = tokio::time::timeout(
        cx.timeout,
        Channel::accept(stream, &cx.deployment, &cx.node),
    )
    .await
    .map_err(|_| SessionError::Timeout("handshake"))??;
    match recv_within(&mut chan, cx.timeout, "hello").await? {
        Frame::Hello(_) => {}
        other => return Err(SessionError::Unexpected(kind(&other), "hello")),
    }
    chan.send(&Frame::Refused(truncate(why))).await?;
    let _ = chan.shutdown().await;
    Ok(())
}

/// Serves one session on `stream`.
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    cx: &NodeContext,
) -> Result<SessionReport, SessionError> {
    let mut chan = tokio::time::timeout(
        cx.timeout,
        Channel::accept(stream, &cx.deployment, &cx.node),
    )
    .await
    .map_err(|_| SessionError::Timeout("handshake"))??;
    let mut report = SessionReport {
        client: None,
        counted: 0,
        receipted: 0,
        receipts: 0,
        end: String::new(),
    };

    // The hello.
    let hello = match recv_within(&mut chan, cx.timeout, "hello").await? {
        Frame::Hello(h) => h,
        other => return Err(SessionError::Unexpected(kind(&other), "hello")),
    };
    let started_at = (cx.clock)();
    let (epoch, epoch_start) = cx.epoch_at(started_at);
    let refusal = match hello::verify(
        &hello,
        &cx.deployment,
        chan.handshake_hash(),
        epoch,
        epoch_start,
    ) {
        Err(e) => Some(e.to_string()),
        Ok(()) => cx.grants.check(&hello.grant, epoch).await.err(),
    };
    if let Some(why) = refusal {
        chan.send(&Frame::Refused(why.clone())).await?;
        report.end = format!("refused: {why}");
        return Ok(report);
    }
    let g = hello.grant.grant;
    report.client = Some(g.client);
    let welcome = Welcome {
        epoch,
        started_at,
        receipt_every_bytes: cx.receipt_every_bytes,
        max_unreceipted_bytes: cx.max_unreceipted_bytes,
    };
    chan.send(&Frame::Welcome(welcome)).await?;
    let mut meter = Meter::new(
        UsageReceipt {
            epoch,
            session_id: hello.session_id,
            node: cx.node.verifying_key().to_bytes(),
            client: g.client,
            buyer: g.buyer,
            sequence: 0,
            cumulative_bytes: 0,
            session_age_secs: 0,
        },
        cx.receipt_every_bytes,
        cx.max_unreceipted_bytes,
    );

    // The proxy request, then the destination.
    let mut handshake = Handshake::default();
    let mut first: Option<u8> = None;
    let connect = loop {
        let bytes = match recv_within(&mut chan, cx.timeout, "proxy request").await? {
            Frame::Data(d) => d,
            Frame::Close(_) => {
                report.end = "the client closed before its request".into();
                return Ok(report);
            }
            other => return Err(SessionError::Unexpected(kind(&other), "proxy request")),
        };
        meter.add(bytes.len());
        first = first.or(bytes.first().copied());
        match handshake.feed(&bytes) {
            Err(e) => {
                let answer = handshake.refusal(first, &e);
                meter.add(answer.len());
                chan.send(&Frame::Data(answer)).await?;
                return finish(chan, meter, report, format!("bad proxy request: {e}")).await;
            }
            Ok(step) => {
                if !step.reply.is_empty() {
                    meter.add(step.reply.len());
                    chan.send(&Frame::Data(step.reply)).await?;
                }
                if let Some(c) = step.connect {
                    break c;
                }
            }
        }
    };
    let target = match cx
        .policy
        .resolve(&connect.target.host, connect.target.port)
        .await
    {
        Err(why) => {
            let answer = proxy::failure(connect.protocol, Failure::NotAllowed, &why.to_string());
            meter.add(answer.len());
            chan.send(&Frame::Data(answer)).await?;
            return finish(chan, meter, report, format!("refused destination: {why}")).await;
        }
        Ok(addrs) => connect_any(&addrs, cx.timeout).await,
    };
    let mut upstream = match target {
        Err(e) => {
            let f = if e.kind() == std::io::ErrorKind::ConnectionRefused {
                Failure::Refused
            } else {
                Failure::Unreachable
            };
            let answer = proxy::failure(connect.protocol, f, &e.to_string());
            meter.add(answer.len());
            chan.send(&Frame::Data(answer)).await?;
            return finish(chan, meter, report, format!("destination unreachable: {e}")).await;
        }
        Ok(s) => s,
    };
    let bound = upstream
        .local_addr()
        .unwrap_or_else(|_| std::net::SocketAddr::from(([0, 0, 0, 0], 0)));
    // A forwarded plain-HTTP request has no answer of the proxy's own: the origin's is it.
    let answer = proxy::success(connect.protocol, bound);
    if !answer.is_empty() {
        meter.add(answer.len());
        chan.send(&Frame::Data(answer)).await?;
    }
    if !connect.rest.is_empty() {
        upstream.write_all(&connect.rest).await.ok();
    }

    // The relay. `draining` (the destination closed, or the epoch ended): nothing more is
    // relayed, the node asks for a last receipt and ends the session when it comes, or after the
    // timeout.
    let epoch_end =
        epoch_start.saturating_add(i64::try_from(cx.epoch_length_secs).unwrap_or(i64::MAX));
    let mut buf = vec![0u8; MAX_DATA];
    let mut draining: Option<(tokio::time::Instant, &'static str)> = None;
    let mut stalled_since: Option<tokio::time::Instant> = None;
    let end = loop {
        if draining.is_none() && (cx.clock)() >= epoch_end {
            chan.send(&Frame::ReceiptDue(meter.counted())).await?;
            draining = Some((tokio::time::Instant::now() + cx.timeout, "the epoch ended"));
        }
        if draining.is_none() && meter.receipt_due() {
            chan.send(&Frame::ReceiptDue(meter.counted())).await?;
        }
        let over = meter.over_bound();
        match (over, stalled_since) {
            (true, None) => stalled_since = Some(tokio::time::Instant::now() + cx.timeout),
            (false, Some(_)) => stalled_since = None,
            _ => {}
        }
        let relaying = draining.is_none() && !over;
        let deadline = match (draining, stalled_since) {
            (Some((d, _)), _) => Some(d),
            (None, s) => s,
        };
        tokio::select! {
            frame = chan.recv() => match frame? {
                None => break "the client disconnected".to_string(),
                Some(Frame::Data(d)) => {
                    if draining.is_some() {
                        continue;
                    }
                    meter.add(d.len());
                    if upstream.write_all(&d).await.is_err() {
                        chan.send(&Frame::ReceiptDue(meter.counted())).await?;
                        draining = Some((tokio::time::Instant::now() + cx.timeout, "the destination closed"));
                    }
                }
                Some(Frame::Receipt(r, sig)) => {
                    let age = u64::try_from((cx.clock)().saturating_sub(started_at)).unwrap_or(0);
                    match countersign(cx, &mut meter, r, sig, age) {
                        Ok(signed) => {
                            cx.receipts.store(signed).await.map_err(|e| {
                                SessionError::Channel(ChannelError::Io(std::io::Error::other(e)))
                            })?;
                            report.receipts = report.receipts.saturating_add(1);
                            chan
                                .send(&Frame::Countersigned(signed.receipt.sequence, signed.node_signature))
                                .await?;
                            // Draining ends with the receipt for everything relayed.
                            if let Some((_, why)) = draining {
                                if meter.receipted() >= meter.counted() {
                                    break why.to_string();
                                }
                            }
                        }
                        Err(why) => tracing::debug!(%why, "receipt not countersigned"),
                    }
                }
                Some(Frame::Close(why)) => break format!("the client closed: {why}"),
                Some(other) => break format!("the client sent {} mid-session", kind(&other)),
            },
            n = upstream.read(&mut buf), if relaying => match n {
                Ok(0) | Err(_) => {
                    chan.send(&Frame::ReceiptDue(meter.counted())).await?;
                    draining = Some((tokio::time::Instant::now() + cx.timeout, "the destination closed"));
                }
                Ok(n) => {
                    meter.add(n);
                    chan.send(&Frame::Data(buf[..n].to_vec())).await?;
                }
            },
            _ = sleep_until(deadline) => break match draining {
                Some((_, why)) => format!("{why}; no last receipt"),
                None => format!(
                    "no receipt for {} bytes beyond the last countersigned amount",
                    meter.unreceipted()
                ),
            },
        }
    };
    finish(chan, meter, report, end).await
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Checks the client's signature and the meter's rules; the countersigned receipt.
fn countersign(
    cx: &NodeContext,
    meter: &mut Meter,
    r: UsageReceipt,
    client_signature: backhaul_protocol::Sig,
    age: u64,
) -> Result<SignedReceipt, String> {
    SigCheck::new(r.client_message(&cx.deployment), client_signature, r.client)
        .verify_strict()
        .map_err(|_| "the receipt is not signed by the session's client".to_string())?;
    meter.accept(&r, age).map_err(|e| e.to_string())?;
    Ok(r.countersign(&cx.deployment, client_signature, &cx.node))
}

async fn connect_any(
    addrs: &[std::net::SocketAddr],
    timeout: Duration,
) -> std::io::Result<TcpStream> {
    let mut last = std::io::Error::other("no address");
    for a in addrs {
        match tokio::time::timeout(timeout, TcpStream::connect(a)).await {
            Ok(Ok(s)) => return Ok(s),
            Ok(Err(e)) => last = e,
            Err(_) => last = std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"),
        }
    }
    Err(last)
}

async fn finish<S: AsyncRead + AsyncWrite + Unpin>(
    mut chan: Channel<S>,
    meter: Meter,
    mut report: SessionReport,
    end: String,
) -> Result<SessionReport, SessionError> {
    let _ = chan.send(&Frame::Close(truncate(&end))).await;
    let _ = chan.shutdown().await;
    report.counted = meter.counted();
    report.receipted = meter.receipted();
    report.end = end;
    Ok(report)
}

fn truncate(s: &str) -> String {
    let mut end = s.len().min(crate::frame::MAX_REASON);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}
