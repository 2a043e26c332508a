//! The encrypted, authenticated channel between a client (a gateway) and a node
//! (`docs/node.md`, "The channel"): the Noise handshake `NK` pinned to the node's key, then one
//! frame per length-prefixed Noise transport message.
//!
//! [`Channel::recv`] is cancel-safe (what was read stays buffered), so a relay may wait on it in a
//! `select!` beside the other side's reads; [`Channel::send`] is not and must not be raced.

use crate::frame::{Frame, FrameError};
use crate::keys::{noise_public_of, noise_secret};
use backhaul_protocol::Deployment;
use ed25519_dalek::SigningKey;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The Noise protocol every session uses.
pub const NOISE_PARAMS: &str = "Noise_NK_25519_ChaChaPoly_BLAKE2s";
/// Domain tag of the prologue.
pub const PROLOGUE_TAG: &[u8] = b"backhaul:session:v1";
/// The largest Noise message.
pub const MAX_MESSAGE: usize = 65_535;
/// Noise's authentication tag on every message.
pub const TAG_LEN: usize = 16;

/// Why a channel failed.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("the node key is not a valid ed25519 key")]
    BadNodeKey,
    #[error("noise: {0}")]
    Noise(#[from] snow::Error),
    #[error("{0}")]
    Frame(#[from] FrameError),
    #[error("the peer closed the connection in the middle of a message")]
    Truncated,
}

/// `tag ‖ program id ‖ config`: binds a session to one deployment.
pub fn prologue(deployment: &Deployment) -> Vec<u8> {
    [PROLOGUE_TAG, &deployment.program_id, &deployment.config].concat()
}

/// An established channel over the byte stream `S`.
pub struct Channel<S> {
    stream: S,
    noise: snow::TransportState,
    handshake_hash: [u8; 32],
    /// Bytes read but not yet a whole message.
    inbox: Vec<u8>,
    /// Ciphertext and plaintext scratch space.
    scratch: Vec<u8>,
    /// Bytes on the wire so far, both ways (framing included).
    wire_bytes: u64,
}

async fn write_message<S: AsyncWrite + Unpin>(stream: &mut S, m: &[u8]) -> std::io::Result<()> {
    let len = u16::try_from(m.len())
        .map_err(|_| std::io::Error::other("a Noise message longer than 65,535 bytes"))?;
    let mut out = Vec::with_capacity(m.len().saturating_add(2));
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(m);
    stream.write_all(&out).await?;
    stream.flush().await
}

async fn read_message<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Vec<u8>, ChannelError> {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await?;
    let mut m = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut m).await?;
    Ok(m)
}

impl<S: AsyncRead + AsyncWrite + Unpin> Channel<S> {
    /// The client's side: a handshake with the node whose ed25519 key is `node`.
    pub async fn connect(
        mut stream: S,
        deployment: &Deployment,
        node: &[u8; 32],
    ) -> Result<Self, ChannelError> {
        let remote = noise_public_of(node).ok_or(ChannelError::BadNodeKey)?;
        let prologue = prologue(deployment);
        let mut hs = snow::Builder::new(NOISE_PARAMS.parse()?)
            .prologue(&prologue)?
            .remote_public_key(&remote)?
            .build_initiator()?;
        let mut buf = vec![0u8; MAX_MESSAGE];
        let n = hs.write_message(&[], &mut buf)?;
        write_message(&mut stream, buf.get(..n).unwrap_or_default()).await?;
        let reply = read_message(&mut stream).await?;
        hs.read_message(&reply, &mut buf)?;
        Self::established(stream, hs)
    }

    /// The node's side: a handshake with a client, as the node whose key is `node`.
    pub async fn accept(
        mut stream: S,
        deployment: &Deployment,
        node: &SigningKey,
    ) -> Result<Self, ChannelError> {
        let secret = noise_secret(node);
        let prologue = prologue(deployment);
        let mut hs = snow::Builder::new(NOISE_PARAMS.parse()?)
            .prologue(&prologue)?
            .local_private_key(&secret)?
            .build_responder()?;
        let mut buf = vec![0u8; MAX_MESSAGE];
        let first = read_message(&mut stream).await?;
        hs.read_message(&first, &mut buf)?;
        let n = hs.write_message(&[], &mut buf)?;
        write_message(&mut stream, buf.get(..n).unwrap_or_default()).await?;
        Self::established(stream, hs)
    }

    fn established(stream: S, hs: snow::HandshakeState) -> Result<Self, ChannelError> {
        let mut handshake_hash = [0u8; 32];
        let h = hs.get_handshake_hash();
        let n = h.len().min(32);
        handshake_hash[..n].copy_from_slice(&h[..n]);
        Ok(Channel {
            stream,
            noise: hs.into_transport_mode()?,
            handshake_hash,
            inbox: Vec::new(),
            scratch: vec![0u8; MAX_MESSAGE],
            wire_bytes: 0,
        })
    }

    /// The handshake's hash: what a client's hello signature binds to this channel.
    pub fn handshake_hash(&self) -> &[u8; 32] {
        &self.handshake_hash
    }

    /// Bytes sent and received on the wire so far, framing and encryption included.
    pub fn wire_bytes(&self) -> u64 {
        self.wire_bytes
    }

    /// Encrypts and sends one frame. Not cancel-safe.
    pub async fn send(&mut self, frame: &Frame) -> Result<(), ChannelError> {
        let plain = frame.encode()?;
        let n = self.noise.write_message(&plain, &mut self.scratch)?;
        let m = self.scratch.get(..n).ok_or(ChannelError::Truncated)?;
        write_message(&mut self.stream, m).await?;
        self.wire_bytes = self.wire_bytes.saturating_add(n as u64 + 2);
        Ok(())
    }

    /// The next frame, or `None` when the peer closed the connection between messages.
    /// Cancel-safe: bytes read before a cancellation stay buffered for the next call.
    pub async fn recv(&mut self) -> Result<Option<Frame>, ChannelError> {
        loop {
            if let Some(message) = self.take_message() {
                let n = self.noise.read_message(&message, &mut self.scratch)?;
                self.wire_bytes = self.wire_bytes.saturating_add(message.len() as u64 + 2);
                let plain = self.scratch.get(..n).ok_or(ChannelError::Truncated)?;
                return Ok(Some(Frame::decode(plain)?));
            }
            let mut chunk = [0u8; 16 * 1024];
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return if self.inbox.is_empty() {
                    Ok(None)
                } else {
                    Err(ChannelError::Truncated)
                };
            }
            self.inbox
                .extend_from_slice(chunk.get(..n).unwrap_or_default());
        }
    }

    /// A whole message from the inbox, if one is there.
    fn take_message(&mut self) -> Option<Vec<u8>> {
        let len = usize::from(u16::from_be_bytes([
            *self.inbox.first()?,
            *self.inbox.get(1)?,
        ]));
        let end = len.checked_add(2)?;
        if self.inbox.len() < end {
            return None;
        }
        let message = self.inbox.get(2..end)?.to_vec();
        self.inbox.drain(..end);
        Some(message)
    }

    /// Shuts the stream down for writing (after a close frame).
    pub async fn shutdown(&mut self) -> Result<(), ChannelError> {
        self.stream.shutdown().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment() -> Deployment {
        Deployment {
            program_id: [1; 32],
            config: [2; 32],
        }
    }

    #[tokio::test]
    async fn a_client_reaches_the_node_it_names_and_no_other() {
        let node = SigningKey::from_bytes(&[7; 32]);
        let d = deployment();
        let (a, b) = tokio::io::duplex(1 << 20);
        let server = {
            let node = node.clone();
            tokio::spawn(async move { Channel::accept(b, &d, &node).await })
        };
        let mut client = Channel::connect(a, &d, &node.verifying_key().to_bytes())
            .await
            .expect("handshake");
        let mut server = server.await.expect("join").expect("handshake");
        assert_eq!(client.handshake_hash(), server.handshake_hash());
        client.send(&Frame::Data(b"GET /".to_vec())).await.unwrap();
        assert_eq!(
            server.recv().await.unwrap(),
            Some(Frame::Data(b"GET /".to_vec()))
        );
        server.send(&Frame::ReceiptDue(5)).await.unwrap();
        assert_eq!(client.recv().await.unwrap(), Some(Frame::ReceiptDue(5)));

        // A client that expects another node's key cannot complete the handshake.
        let other = SigningKey::from_bytes(&[8; 32]);
        let (a, b) = tokio::io::duplex(1 << 20);
        let server = tokio::spawn(async move { Channel::accept(b, &deployment(), &node).await });
        let client = Channel::connect(a, &d, &other.verifying_key().to_bytes()).await;
        let server = server.await.expect("join");
        assert!(client.is_err() || server.is_err());

        // Nor a session of another deployment.
        let node = SigningKey::from_bytes(&[9; 32]);
        let (a, b) = tokio::io::duplex(1 << 20);
        let key = node.verifying_key().to_bytes();
        let server = tokio::spawn(async move { Channel::accept(b, &deployment(), &node).await });
        let other_deployment = Deployment {
            program_id: [1; 32],
            config: [3; 32],
        };
        let client = Channel::connect(a, &other_deployment, &key).await;
        let server = server.await.expect("join");
        assert!(client.is_err() || server.is_err());
    }
}
