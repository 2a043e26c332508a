//! The oracle's ingest request bodies (`backhaul_protocol::api::decode_batch`, which the
//! `/v1/bindings`, `/v1/grants` and `/v1/receipts` handlers call on every body).
//!
//! Properties: never a panic or an oversized allocation; a body is accepted exactly when it is a
//! count prefix followed by that many fixed-size items, with at least one and at most the limit;
//! an accepted body re-encodes to the same bytes; every refusal names the right reason.
#![no_main]

use backhaul_protocol::api::{
    decode_batch, BodyError, MAX_BINDINGS_PER_REQUEST, MAX_GRANTS_PER_REQUEST,
    MAX_RECEIPTS_PER_REQUEST,
};
use backhaul_protocol::{
    SignedBinding, SignedGrant, SignedReceipt, SIGNED_BINDING_LEN, SIGNED_GRANT_LEN,
    SIGNED_RECEIPT_LEN,
};
use borsh::{BorshDeserialize, BorshSerialize};
use libfuzzer_sys::fuzz_target;

fn check<T: BorshDeserialize + BorshSerialize>(
    bytes: &[u8],
    what: &'static str,
    item_len: usize,
    max: usize,
) {
    let count = bytes
        .first_chunk::<4>()
        .map(|p| u32::from_le_bytes(*p) as usize);
    match decode_batch::<T>(bytes, what, item_len, max) {
        Ok(items) => {
            let n = count.expect("an accepted body has a count prefix");
            assert_eq!(items.len(), n);
            assert!((1..=max).contains(&n), "{n} items accepted (limit {max})");
            assert_eq!(bytes.len(), 4 + n * item_len);
            assert_eq!(
                borsh::to_vec(&items).expect("encode"),
                bytes,
                "not canonical"
            );
        }
        Err(BodyError::Length {
            len,
            count: c,
            expected,
            ..
        }) => {
            assert_eq!(Some(c), count);
            assert_eq!(len, bytes.len());
            assert_ne!(len, expected);
            assert_eq!(expected, c.saturating_mul(item_len).saturating_add(4));
        }
        Err(BodyError::TooMany {
            count: c, max: m, ..
        }) => {
            assert_eq!(Some(c), count);
            assert_eq!(m, max);
            assert!(c > max);
            assert_eq!(bytes.len(), 4 + c * item_len);
        }
        Err(BodyError::Empty { .. }) => assert_eq!(bytes, [0, 0, 0, 0]),
        Err(BodyError::Decode { len, .. }) => {
            assert_eq!(len, bytes.len());
            // With a consistent length, only the short bodies and bodies whose fixed-size
            // items fail to decode can get here; these item types accept every byte pattern.
            assert!(
                bytes.len() < 4,
                "a well-sized body of plain bytes failed to decode"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks a small item limit so the "too many" path is reachable too.
    let (limit, body) = match data.split_first() {
        Some((l, rest)) => (usize::from(*l), rest),
        None => (0, data),
    };
    check::<SignedBinding>(
        body,
        "SignedBinding",
        SIGNED_BINDING_LEN,
        MAX_BINDINGS_PER_REQUEST,
    );
    check::<SignedGrant>(
        body,
        "SignedGrant",
        SIGNED_GRANT_LEN,
        MAX_GRANTS_PER_REQUEST,
    );
    check::<SignedReceipt>(
        body,
        "SignedReceipt",
        SIGNED_RECEIPT_LEN,
        MAX_RECEIPTS_PER_REQUEST,
    );
    check::<SignedGrant>(body, "SignedGrant", SIGNED_GRANT_LEN, limit);
    // A body built from the fuzz bytes with a correct prefix, so the accepting path is hit often.
    let n = body.len() / SIGNED_GRANT_LEN;
    if n > 0 {
        let mut framed = (n as u32).to_le_bytes().to_vec();
        framed.extend_from_slice(&body[..n * SIGNED_GRANT_LEN]);
        check::<SignedGrant>(
            &framed,
            "SignedGrant",
            SIGNED_GRANT_LEN,
            MAX_GRANTS_PER_REQUEST,
        );
    }
});
