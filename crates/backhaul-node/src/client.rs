//! One session on the client's side (a firm's gateway): the handshake with a node pinned to its
//! key, the hello with the buyer's grant, then the relay of a local connection's bytes, counting
//! what actually moved and signing cumulative receipts for that count only.

use crate::channel::{Channel, ChannelError};
use crate::frame::{Frame, Welcome, MAX_DATA};
use crate::hello;
use backhaul_protocol::{Deployment, SignedGrant, SignedReceipt, UsageReceipt};
use ed25519_dalek::SigningKey;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Who the client is and what pays for it.
#[derive(Clone)]
pub struct ClientContext {
    pub deployment: Deployment,
    /// The client key the grant authorizes; it signs the receipts.
    pub client: SigningKey,
    pub grant: SignedGrant,
    pub timeout: Duration,
}

/// Why a session could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{0}")]
    Channel(#[from] ChannelError),
    #[error("the node refused the session: {0}")]
    Refused(String),
    #[error("the node did not answer the hello in time")]
    Timeout,
    #[error("the node answered the hello with something else")]
    Unexpected,
}

/// An open session.
pub struct ClientSession<S> {
    chan: Channel<S>,
    cx: ClientContext,
    node: [u8; 32],
    session_id: [u8; 16],
    welcome: Welcome,
    /// When the welcome came: receipts carry the session's age from it, by this machine's
    /// monotonic clock (the node's clock, which dated the session, may differ from ours).
    opened: std::time::Instant,
}

/// What a session moved and proved.
#[derive(Clone, Debug, Default)]
pub struct ClientReport {
    /// Bytes the client sent through the node plus bytes it received from it.
    pub counted: u64,
    /// Receipts signed.
    pub signed: u64,
    /// The receipts the node countersigned, in order.
    pub countersigned: Vec<SignedReceipt>,
    pub end: String,
}

impl<S: AsyncRead + AsyncWrite + Unpin> ClientSession<S> {
    /// Handshake with the node whose key is `node`, then the hello.
    pub async fn open(stream: S, cx: ClientContext, node: [u8; 32]) -> Result<Self, OpenError> {
        let mut chan =
            tokio::time::timeout(cx.timeout, Channel::connect(stream, &cx.deployment, &node))
                .await
                .map_err(|_| OpenError::Timeout)??;
        let session_id: [u8; 16] = rand::random();
        let h = hello::sign(
            &cx.deployment,
            &cx.client,
            cx.grant,
            session_id,
            chan.handshake_hash(),
        );
        chan.send(&Frame::Hello(Box::new(h))).await?;
        let welcome = match tokio::time::timeout(cx.timeout, chan.recv()).await {
            Err(_) => return Err(OpenError::Timeout),
            Ok(r) => match r? {
                Some(Frame::Welcome(w)) => w,
                Some(Frame::Refused(why)) => return Err(OpenError::Refused(why)),
                _ => return Err(OpenError::Unexpected),
            },
        };
        Ok(ClientSession {
            chan,
            cx,
            node,
            session_id,
            welcome,
            opened: std::time::Instant::now(),
        })
    }

    /// The node's terms.
    pub fn welcome(&self) -> &Welcome {
        &self.welcome
    }

    /// The session's id (random, never reused).
    pub fn session_id(&self) -> [u8; 16] {
        self.session_id
    }

    /// The node's key.
    pub fn node(&self) -> [u8; 32] {
        self.node
    }

    /// Relays `local`'s bytes (a scraper's connection, starting with its proxy request) through
    /// the node until either side closes, answering every receipt request with a receipt for the
    /// client's own count.
    pub async fn relay<L: AsyncRead + AsyncWrite + Unpin>(
        mut self,
        mut local: L,
    ) -> Result<ClientReport, ChannelError> {
        let mut report = ClientReport::default();
        let mut sequence = 0u64;
        let mut last_signed = 0u64;
        // Receipts sent and not countersigned yet, by sequence.
        let mut pending: std::collections::BTreeMap<u64, (UsageReceipt, backhaul_protocol::Sig)> =
            Default::default();
        let mut buf = vec![0u8; MAX_DATA];
        let mut local_open = true;
        let end = loop {
            tokio::select! {
                frame = self.chan.recv() => match frame? {
                    None => break "the node disconnected".to_string(),
                    Some(Frame::Data(d)) => {
                        report.counted = report.counted.saturating_add(d.len() as u64);
                        if local.write_all(&d).await.is_err() {
                            local_open = false;
                        }
                    }
                    Some(Frame::ReceiptDue(_)) => {
                        if report.counted > last_signed {
                            sequence = sequence.saturating_add(1);
                            let (r, sig) = self.receipt(sequence, report.counted);
                            self.chan.send(&Frame::Receipt(r, sig)).await?;
                            last_signed = report.counted;
                            report.signed = report.signed.saturating_add(1);
                            pending.insert(sequence, (r, sig));
                        }
                    }
                    Some(Frame::Countersigned(seq, node_sig)) => {
                        self.record(&mut pending, &mut report, seq, node_sig);
                    }
                    Some(Frame::Close(why)) => break format!("the node closed: {why}"),
                    Some(_) => break "the node sent an unexpected frame".to_string(),
                },
                n = local.read(&mut buf), if local_open => match n {
                    Ok(0) | Err(_) => {
                        // The last receipt, then the close.
                        if report.counted > last_signed {
                            sequence = sequence.saturating_add(1);
                            let (r, sig) = self.receipt(sequence, report.counted);
                            self.chan.send(&Frame::Receipt(r, sig)).await?;
                            report.signed = report.signed.saturating_add(1);
                            pending.insert(sequence, (r, sig));
                        }
                        // Data still in flight is dropped (the local side is gone) and not
                        // counted; what is waited for is the countersignature of the latest
                        // receipt, whether signed just now or for a receipt request a moment
                        // before (the node answers in order, so the earlier ones come first).
                        let deadline = tokio::time::Instant::now() + self.cx.timeout;
                        while pending.contains_key(&sequence) {
                            match tokio::time::timeout_at(deadline, self.chan.recv()).await {
                                Ok(Ok(Some(Frame::Countersigned(seq, node_sig)))) => {
                                    self.record(&mut pending, &mut report, seq, node_sig);
                                }
                                Ok(Ok(Some(Frame::Close(_)))) | Ok(Ok(None)) | Ok(Err(_)) | Err(_) => {
                                    break;
                                }
                                Ok(Ok(Some(_))) => {}
                            }
                        }
                        let _ = self.chan.send(&Frame::Close("the local connection closed".into())).await;
                        break "the local connection closed".to_string();
                    }
                    Ok(n) => {
                        report.counted = report.counted.saturating_add(n as u64);
                        self.chan.send(&Frame::Data(buf[..n].to_vec())).await?;
                    }
                },
            }
        };
        let _ = local.shutdown().await;
        let _ = self.chan.shutdown().await;
        report.end = end;
        Ok(report)
    }

    /// Keeps the receipt with sequence `seq` as countersigned when the node's signature checks.
    fn record(
        &self,
        pending: &mut std::collections::BTreeMap<u64, (UsageReceipt, backhaul_protocol::Sig)>,
        report: &mut ClientReport,
        seq: u64,
        node_signature: backhaul_protocol::Sig,
    ) {
        let Some((receipt, client_signature)) = pending.remove(&seq) else {
            return;
        };
        let signed = SignedReceipt {
            receipt,
            client_signature,
            node_signature,
        };
        let [_, node_check] = signed.checks(&self.cx.deployment);
        if node_check.verify_strict().is_ok() {
            report.countersigned.push(signed);
        }
    }

    /// A receipt for `bytes` with the next sequence, signed by the client.
    fn receipt(&self, sequence: u64, bytes: u64) -> (UsageReceipt, backhaul_protocol::Sig) {
        let r = UsageReceipt {
            epoch: self.welcome.epoch,
            session_id: self.session_id,
            node: self.node,
            client: self.cx.client.verifying_key().to_bytes(),
            buyer: self.cx.grant.grant.buyer,
            sequence,
            cumulative_bytes: bytes,
            session_age_secs: self.opened.elapsed().as_secs(),
        };
        let sig = r.client_sign(&self.cx.deployment, &self.cx.client);
        (r, sig)
    }
}
