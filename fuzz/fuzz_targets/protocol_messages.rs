//! Signed bindings, grants and receipts: decoding arbitrary bytes, and strict verification of
//! genuinely signed messages after one fuzzer-chosen change.
//!
//! Properties:
//! - a body that decodes has exactly the fixed encoded size and re-encodes to the same bytes;
//! - the batched verifier and the one-by-one strict verifier agree on every decoded message;
//! - a message signed by its keys verifies, under its own deployment only;
//! - changing any byte of the signed encoding (body, either signature) makes it fail.
#![no_main]

use arbitrary::Arbitrary;
use backhaul_protocol::{
    verify_each_strict, ClientGrant, Deployment, NodeBinding, SigCheck, SignedBinding,
    SignedGrant, SignedReceipt, UsageReceipt, SIGNED_BINDING_LEN, SIGNED_GRANT_LEN,
    SIGNED_RECEIPT_LEN,
};
use borsh::{BorshDeserialize, BorshSerialize};
use ed25519_dalek::SigningKey;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Input {
    /// Raw bytes decoded as each message kind.
    Raw {
        deployment: [u8; 64],
        bytes: Vec<u8>,
    },
    /// A message signed for real, then changed at one byte.
    Signed(Box<Signed>),
}

#[derive(Arbitrary, Debug)]
struct Signed {
    kind: Kind,
    seeds: [[u8; 32]; 2],
    deployment: [u8; 64],
    other_deployment: [u8; 64],
    body: [u8; 200],
    /// Which byte of the signed encoding to change, and the XOR mask (0 changes nothing).
    flip_at: u16,
    flip_mask: u8,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Kind {
    Binding,
    Grant,
    Receipt,
}

fn deployment(bytes: &[u8; 64]) -> Deployment {
    let mut program_id = [0u8; 32];
    let mut config = [0u8; 32];
    program_id.copy_from_slice(&bytes[..32]);
    config.copy_from_slice(&bytes[32..]);
    Deployment { program_id, config }
}

/// Decodes `bytes` as `T` (exactly, no trailing bytes) and checks the encoding round-trips and
/// that both verification paths agree. Returns the checks of a decoded message.
fn decode_exact<T: BorshDeserialize + BorshSerialize>(bytes: &[u8], len: usize) -> Option<T> {
    let value = borsh::from_slice::<T>(bytes).ok()?;
    assert_eq!(
        bytes.len(),
        len,
        "a message decoded from a body of the wrong size"
    );
    let again = borsh::to_vec(&value).expect("encode");
    assert_eq!(again, bytes, "decoding is not canonical");
    Some(value)
}

/// The batch verifier must say the same as `verify_strict` for items it refuses, and must refuse
/// everything `verify_strict` refuses except the documented torsion case, which random input
/// cannot produce for a key nobody holds: so on arbitrary input they agree exactly.
fn paths_agree(checks: &[SigCheck]) {
    let batch = verify_each_strict(checks);
    assert_eq!(batch.len(), checks.len());
    for (c, b) in checks.iter().zip(&batch) {
        let single = c.verify_strict();
        assert_eq!(
            single.is_ok(),
            b.is_ok(),
            "batch {b:?} vs strict {single:?}"
        );
    }
}

fn all_ok(checks: &[SigCheck]) -> bool {
    verify_each_strict(checks).iter().all(Result::is_ok)
}

fn raw(deployment_bytes: &[u8; 64], bytes: &[u8]) {
    let d = deployment(deployment_bytes);
    if let Some(b) = decode_exact::<SignedBinding>(bytes, SIGNED_BINDING_LEN) {
        paths_agree(&b.checks(&d));
    }
    if let Some(g) = decode_exact::<SignedGrant>(bytes, SIGNED_GRANT_LEN) {
        paths_agree(&g.checks(&d));
    }
    if let Some(r) = decode_exact::<SignedReceipt>(bytes, SIGNED_RECEIPT_LEN) {
        paths_agree(&r.checks(&d));
    }
}

fn u64_at(b: &[u8], i: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[i..i + 8]);
    u64::from_le_bytes(x)
}

fn key_at(b: &[u8], i: usize) -> [u8; 32] {
    let mut x = [0u8; 32];
    x.copy_from_slice(&b[i..i + 32]);
    x
}

/// Signs, checks the genuine message, changes one byte of its encoding and checks again.
fn signed(s: Signed) {
    let d = deployment(&s.deployment);
    let other = deployment(&s.other_deployment);
    let k1 = SigningKey::from_bytes(&s.seeds[0]);
    let k2 = SigningKey::from_bytes(&s.seeds[1]);
    let b = &s.body;
    let (encoded, checks, checks_elsewhere): (Vec<u8>, Vec<SigCheck>, Vec<SigCheck>) = match s.kind
    {
        Kind::Binding => {
            let binding = NodeBinding {
                node: k1.verifying_key().to_bytes(),
                operator: k2.verifying_key().to_bytes(),
                epoch: u64_at(b, 0),
                issued_at: u64_at(b, 8) as i64,
            };
            let sb = binding.sign(&d, &k1, &k2);
            (
                borsh::to_vec(&sb).expect("encode"),
                sb.checks(&d).to_vec(),
                sb.checks(&other).to_vec(),
            )
        }
        Kind::Grant => {
            let grant = ClientGrant {
                buyer: k1.verifying_key().to_bytes(),
                client: key_at(b, 0),
                epoch: u64_at(b, 32),
                issued_at: u64_at(b, 40) as i64,
                expires_at: u64_at(b, 48) as i64,
                credit_limit: u64_at(b, 56),
            };
            let sg = grant.sign(&d, &k1);
            (
                borsh::to_vec(&sg).expect("encode"),
                sg.checks(&d).to_vec(),
                sg.checks(&other).to_vec(),
            )
        }
        Kind::Receipt => {
            let mut session_id = [0u8; 16];
            session_id.copy_from_slice(&b[8..24]);
            let receipt = UsageReceipt {
                epoch: u64_at(b, 0),
                session_id,
                node: k1.verifying_key().to_bytes(),
                client: k2.verifying_key().to_bytes(),
                buyer: key_at(b, 24),
                sequence: u64_at(b, 56),
                cumulative_bytes: u64_at(b, 64),
                session_age_secs: u64_at(b, 72),
            };
            let sr = receipt.sign_both(&d, &k2, &k1);
            (
                borsh::to_vec(&sr).expect("encode"),
                sr.checks(&d).to_vec(),
                sr.checks(&other).to_vec(),
            )
        }
    };
    assert!(
        all_ok(&checks),
        "a genuinely signed {:?} was refused",
        s.kind
    );
    if other != d {
        assert!(
            !all_ok(&checks_elsewhere),
            "a {:?} verified under another deployment",
            s.kind
        );
    }

    let mut changed = encoded.clone();
    let at = usize::from(s.flip_at) % changed.len();
    changed[at] ^= s.flip_mask;
    let d_raw = s.deployment;
    let still_valid = match s.kind {
        Kind::Binding => borsh::from_slice::<SignedBinding>(&changed)
            .map(|m| all_ok(&m.checks(&d)))
            .unwrap_or(false),
        Kind::Grant => borsh::from_slice::<SignedGrant>(&changed)
            .map(|m| all_ok(&m.checks(&d)))
            .unwrap_or(false),
        Kind::Receipt => borsh::from_slice::<SignedReceipt>(&changed)
            .map(|m| all_ok(&m.checks(&d)))
            .unwrap_or(false),
    };
    if changed == encoded {
        assert!(still_valid, "an unchanged message stopped verifying");
    } else {
        assert!(
            !still_valid,
            "a {:?} changed at byte {at} (mask {:#04x}) still verifies",
            s.kind, s.flip_mask
        );
    }
    raw(&d_raw, &changed);
}

fuzz_target!(|input: Input| {
    match input {
        Input::Raw { deployment, bytes } => raw(&deployment, &bytes),
        Input::Signed(s) => signed(*s),
    }
});
