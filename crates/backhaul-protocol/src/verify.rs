//! Strict ed25519 verification, batched.
//!
//! Every key and every signature's `R` is first refused if it is of small order (what
//! `verify_strict` adds to plain verification), and non-canonical encodings are refused when
//! decoded. The rest is checked with one batch equation; if the batch fails, each signature is
//! checked on its own with `verify_strict` to find the bad ones. The batch equation accepts a
//! signature whose `R` carries a torsion component with probability 1/8 where `verify_strict`
//! would not; that can only re-encode a signature the key's owner made, and receipts are
//! identified by their signed bodies, never by their signatures, so it cannot change what counts.

use ed25519_dalek::{Signature, VerifyingKey};

/// One signature to check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigCheck {
    pub message: Vec<u8>,
    pub signature: [u8; 64],
    pub key: [u8; 32],
}

impl SigCheck {
    pub fn new(message: Vec<u8>, signature: [u8; 64], key: [u8; 32]) -> Self {
        Self {
            message,
            signature,
            key,
        }
    }

    /// `verify_strict` on this one signature.
    pub fn verify_strict(&self) -> Result<(), VerifyError> {
        let key = decode_key(&self.key)?;
        key.verify_strict(&self.message, &Signature::from_bytes(&self.signature))
            .map_err(|_| VerifyError::BadSignature)
    }
}

/// Why a signature was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the public key is not a valid ed25519 point or is of small order")]
    BadKey,
    #[error("the signature does not verify")]
    BadSignature,
}

fn decode_key(bytes: &[u8; 32]) -> Result<VerifyingKey, VerifyError> {
    let key = VerifyingKey::from_bytes(bytes).map_err(|_| VerifyError::BadKey)?;
    if key.is_weak() {
        return Err(VerifyError::BadKey);
    }
    Ok(key)
}

/// Checks every signature; the result for each is in the same order.
pub fn verify_batch_strict(checks: &[SigCheck]) -> Vec<Result<(), VerifyError>> {
    let mut results: Vec<Result<(), VerifyError>> = vec![Ok(()); checks.len()];
    let mut keys = Vec::with_capacity(checks.len());
    let mut sigs = Vec::with_capacity(checks.len());
    let mut msgs: Vec<&[u8]> = Vec::with_capacity(checks.len());
    let mut index = Vec::with_capacity(checks.len());
    for (i, c) in checks.iter().enumerate() {
        let key = match decode_key(&c.key) {
            Ok(k) => k,
            Err(e) => {
                results[i] = Err(e);
                continue;
            }
        };
        if small_order_r(&c.signature) {
            results[i] = Err(VerifyError::BadSignature);
            continue;
        }
        keys.push(key);
        sigs.push(Signature::from_bytes(&c.signature));
        msgs.push(&c.message);
        index.push(i);
    }
    if index.is_empty() || ed25519_dalek::verify_batch(&msgs, &sigs, &keys).is_ok() {
        return results;
    }
    for i in index {
        results[i] = checks[i].verify_strict();
    }
    results
}

/// Whether the signature's `R` fails to decode or is of small order.
fn small_order_r(signature: &[u8; 64]) -> bool {
    let mut r = [0u8; 32];
    r.copy_from_slice(&signature[..32]);
    // A key with R's bytes is weak exactly when R is of small order.
    match VerifyingKey::from_bytes(&r) {
        Ok(point) => point.is_weak(),
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    fn check(seed: u8, msg: &[u8]) -> SigCheck {
        let k = SigningKey::from_bytes(&[seed; 32]);
        SigCheck::new(
            msg.to_vec(),
            k.sign(msg).to_bytes(),
            k.verifying_key().to_bytes(),
        )
    }

    #[test]
    fn a_good_batch_passes_and_bad_items_are_pinpointed() {
        let mut checks: Vec<SigCheck> = (1..=20).map(|i| check(i, &[i; 40])).collect();
        assert!(verify_batch_strict(&checks).iter().all(Result::is_ok));
        checks[3].message[0] ^= 1;
        checks[11].signature[40] ^= 1;
        checks[15].key = [0; 32]; // not a usable key
        let identity = {
            let mut id = [0u8; 32];
            id[0] = 1;
            id
        };
        checks[17].key = identity; // the identity point: small order
        let r = verify_batch_strict(&checks);
        for (i, res) in r.iter().enumerate() {
            match i {
                3 | 11 => assert_eq!(*res, Err(VerifyError::BadSignature), "{i}"),
                15 | 17 => assert!(res.is_err(), "{i}"),
                _ => assert!(res.is_ok(), "{i}"),
            }
        }
        assert_eq!(r[17], Err(VerifyError::BadKey));
    }

    #[test]
    fn small_order_r_is_refused() {
        let mut c = check(9, b"hello");
        let mut id = [0u8; 32];
        id[0] = 1;
        c.signature[..32].copy_from_slice(&id);
        assert_eq!(verify_batch_strict(&[c])[0], Err(VerifyError::BadSignature));
    }

    #[test]
    fn empty_batches_are_fine() {
        assert!(verify_batch_strict(&[]).is_empty());
    }
}
