//! A node's ed25519 key as its Noise static key: the X25519 secret is the clamped SHA-512 of the
//! ed25519 seed (the scalar ed25519 signs with), the X25519 public key the Montgomery form of the
//! ed25519 public key. Whoever knows a node's key knows its Noise key, and only the holder of the
//! node key can complete a handshake against it.

use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha512};

/// The X25519 secret of `node` (clamped).
pub fn noise_secret(node: &SigningKey) -> [u8; 32] {
    let h = Sha512::digest(node.to_bytes());
    let mut s = [0u8; 32];
    s.copy_from_slice(&h[..32]);
    s[0] &= 248;
    s[31] &= 127;
    s[31] |= 64;
    s
}

/// The X25519 public key of the node whose ed25519 key is `node`.
pub fn noise_public(node: &VerifyingKey) -> [u8; 32] {
    node.to_montgomery().to_bytes()
}

/// [`noise_public`] of raw key bytes, or `None` when they are not a valid ed25519 point.
pub fn noise_public_of(node: &[u8; 32]) -> Option<[u8; 32]> {
    VerifyingKey::from_bytes(node)
        .ok()
        .map(|k| noise_public(&k))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_and_the_public_key_are_one_x25519_pair() {
        for seed in 0u8..8 {
            let node = SigningKey::from_bytes(&[seed; 32]);
            let secret = noise_secret(&node);
            let derived = curve25519_dalek::MontgomeryPoint::mul_base_clamped(secret).to_bytes();
            assert_eq!(derived, noise_public(&node.verifying_key()));
        }
    }
}
