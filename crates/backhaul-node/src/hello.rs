//! What a client presents after the handshake (`docs/node.md`, "Frames"): the buyer's grant of
//! its client key, and the client key's signature binding the grant to this channel, so that a
//! grant seen on one connection cannot be replayed on another.

use crate::frame::Hello;
use crate::PROTOCOL_VERSION;
use backhaul_protocol::verify::SigCheck;
use backhaul_protocol::{Deployment, SignedGrant};
use ed25519_dalek::{Signer, SigningKey};

/// Domain tag of the hello signature.
pub const HELLO_TAG: &[u8] = b"backhaul:hello:v1";

/// Why a node refuses a hello; the text is what the client is told.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HelloError {
    #[error("protocol version {0} is not served (this node speaks {PROTOCOL_VERSION})")]
    Version(u16),
    #[error("the grant is not signed by the buyer it names")]
    GrantSignature,
    #[error("the hello is not signed by the client key the grant authorizes")]
    ClientSignature,
    #[error("the grant applies from epoch {from}, not epoch {epoch}")]
    GrantNotYet { from: u64, epoch: u64 },
    #[error("the grant expired at {0}")]
    GrantExpired(i64),
    #[error("the grant is out of range")]
    OutOfRange,
}

/// `tag ‖ program id ‖ config ‖ handshake hash ‖ session id`.
pub fn message(
    deployment: &Deployment,
    handshake_hash: &[u8; 32],
    session_id: &[u8; 16],
) -> Vec<u8> {
    [
        HELLO_TAG,
        &deployment.program_id,
        &deployment.config,
        handshake_hash,
        session_id,
    ]
    .concat()
}

/// The hello of `client`, which `grant` authorizes, on the channel whose handshake hash is given.
pub fn sign(
    deployment: &Deployment,
    client: &SigningKey,
    grant: SignedGrant,
    session_id: [u8; 16],
    handshake_hash: &[u8; 32],
) -> Hello {
    Hello {
        version: PROTOCOL_VERSION,
        grant,
        session_id,
        signature: client
            .sign(&message(deployment, handshake_hash, &session_id))
            .to_bytes(),
    }
}

/// Checks a hello on the channel whose handshake hash is given, for a session in `epoch`, which
/// starts at `epoch_start` (unix seconds): the version, the buyer's signature of the grant, the
/// client's signature of the hello (strict ed25519 verification), and that the grant covers the
/// epoch.
pub fn verify(
    hello: &Hello,
    deployment: &Deployment,
    handshake_hash: &[u8; 32],
    epoch: u64,
    epoch_start: i64,
) -> Result<(), HelloError> {
    if hello.version != PROTOCOL_VERSION {
        return Err(HelloError::Version(hello.version));
    }
    let g = &hello.grant.grant;
    if !g.in_range() {
        return Err(HelloError::OutOfRange);
    }
    let [grant] = hello.grant.checks(deployment);
    grant
        .verify_strict()
        .map_err(|_| HelloError::GrantSignature)?;
    SigCheck::new(
        message(deployment, handshake_hash, &hello.session_id),
        hello.signature,
        g.client,
    )
    .verify_strict()
    .map_err(|_| HelloError::ClientSignature)?;
    if epoch < g.epoch {
        return Err(HelloError::GrantNotYet {
            from: g.epoch,
            epoch,
        });
    }
    if g.expires_at <= epoch_start {
        return Err(HelloError::GrantExpired(g.expires_at));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use backhaul_protocol::ClientGrant;

    const D: Deployment = Deployment {
        program_id: [1; 32],
        config: [2; 32],
    };

    fn grant(buyer: &SigningKey, client: &SigningKey, epoch: u64, expires_at: i64) -> SignedGrant {
        ClientGrant {
            buyer: buyer.verifying_key().to_bytes(),
            client: client.verifying_key().to_bytes(),
            epoch,
            issued_at: 10,
            expires_at,
            credit_limit: 0,
        }
        .sign(&D, buyer)
    }

    #[test]
    fn a_hello_verifies_only_on_its_channel_for_its_client_and_within_its_grant() {
        let buyer = SigningKey::from_bytes(&[1; 32]);
        let client = SigningKey::from_bytes(&[2; 32]);
        let other = SigningKey::from_bytes(&[3; 32]);
        let hh = [9u8; 32];
        let g = grant(&buyer, &client, 5, 1_000);
        let h = sign(&D, &client, g, [4; 16], &hh);
        assert_eq!(verify(&h, &D, &hh, 5, 900), Ok(()));
        // Replayed on another channel.
        assert_eq!(
            verify(&h, &D, &[8; 32], 5, 900),
            Err(HelloError::ClientSignature)
        );
        // Signed by a key the grant does not name.
        let h2 = sign(&D, &other, g, [4; 16], &hh);
        assert_eq!(
            verify(&h2, &D, &hh, 5, 900),
            Err(HelloError::ClientSignature)
        );
        // A grant the buyer did not sign.
        let mut forged = g;
        forged.grant.credit_limit = 7;
        let h3 = sign(&D, &client, forged, [4; 16], &hh);
        assert_eq!(
            verify(&h3, &D, &hh, 5, 900),
            Err(HelloError::GrantSignature)
        );
        // Before its epoch, after its expiry, another version.
        assert_eq!(
            verify(&h, &D, &hh, 4, 900),
            Err(HelloError::GrantNotYet { from: 5, epoch: 4 })
        );
        assert_eq!(
            verify(&h, &D, &hh, 5, 1_000),
            Err(HelloError::GrantExpired(1_000))
        );
        let mut v2 = h.clone();
        v2.version = 2;
        assert_eq!(verify(&v2, &D, &hh, 5, 900), Err(HelloError::Version(2)));
    }
}
