//! The test vectors printed in `docs/receipts.md` are the ones this crate computes.

use backhaul_core::merkle::sha256v;
use backhaul_protocol::dataset::{b58, hex};
use backhaul_protocol::{
    verify_each_strict, ClientGrant, Deployment, NodeBinding, SigCheck, UsageReceipt,
    BINDING_BODY_LEN, GRANT_BODY_LEN, RECEIPT_BODY_LEN, SIGNED_BINDING_LEN, SIGNED_GRANT_LEN,
    SIGNED_RECEIPT_LEN,
};
use ed25519_dalek::SigningKey;

const DEPLOYMENT: Deployment = Deployment {
    program_id: [0xAA; 32],
    config: [0xBB; 32],
};

fn sha(bytes: &[u8]) -> String {
    hex(&sha256v(&[bytes]))
}

fn all_verify(checks: &[SigCheck]) {
    assert!(
        verify_each_strict(checks).iter().all(Result::is_ok),
        "a vector's signature does not verify"
    );
}

fn vectors() -> Vec<(&'static str, String)> {
    let client = SigningKey::from_bytes(&[1u8; 32]);
    let node = SigningKey::from_bytes(&[2u8; 32]);
    let buyer = SigningKey::from_bytes(&[3u8; 32]);
    let operator = SigningKey::from_bytes(&[4u8; 32]);
    let pk = |k: &SigningKey| k.verifying_key().to_bytes();

    let binding = NodeBinding {
        node: pk(&node),
        operator: pk(&operator),
        epoch: 42,
        issued_at: 1_750_000_000,
    };
    let binding_body = borsh::to_vec(&binding).unwrap();
    assert_eq!(binding_body.len(), BINDING_BODY_LEN);
    let signed_binding = binding.sign(&DEPLOYMENT, &node, &operator);
    assert_eq!(
        borsh::to_vec(&signed_binding).unwrap().len(),
        SIGNED_BINDING_LEN
    );
    all_verify(&signed_binding.checks(&DEPLOYMENT));

    let grant = ClientGrant {
        buyer: pk(&buyer),
        client: pk(&client),
        epoch: 42,
        issued_at: 1_750_000_100,
        expires_at: 1_767_225_600,
        credit_limit: 5_000_000,
    };
    let grant_body = borsh::to_vec(&grant).unwrap();
    assert_eq!(grant_body.len(), GRANT_BODY_LEN);
    let signed_grant = grant.sign(&DEPLOYMENT, &buyer);
    assert_eq!(
        borsh::to_vec(&signed_grant).unwrap().len(),
        SIGNED_GRANT_LEN
    );
    all_verify(&signed_grant.checks(&DEPLOYMENT));

    let revocation = ClientGrant {
        epoch: 43,
        issued_at: 1_750_600_000,
        expires_at: 0,
        credit_limit: 0,
        ..grant
    };
    let revocation_body = borsh::to_vec(&revocation).unwrap();
    let signed_revocation = revocation.sign(&DEPLOYMENT, &buyer);
    all_verify(&signed_revocation.checks(&DEPLOYMENT));

    let mut session_id = [0u8; 16];
    for (i, b) in session_id.iter_mut().enumerate() {
        *b = i as u8;
    }
    let receipt = UsageReceipt {
        epoch: 42,
        session_id,
        node: pk(&node),
        client: pk(&client),
        buyer: pk(&buyer),
        sequence: 3,
        cumulative_bytes: 5_368_709_120,
        session_age_secs: 3_600,
    };
    let receipt_body = borsh::to_vec(&receipt).unwrap();
    assert_eq!(receipt_body.len(), RECEIPT_BODY_LEN);
    let client_signature = receipt.client_sign(&DEPLOYMENT, &client);
    let signed_receipt = receipt.countersign(&DEPLOYMENT, client_signature, &node);
    assert_eq!(
        borsh::to_vec(&signed_receipt).unwrap().len(),
        SIGNED_RECEIPT_LEN
    );
    all_verify(&signed_receipt.checks(&DEPLOYMENT));
    // The signed encodings are the body followed by the signatures.
    let mut expected = receipt_body.clone();
    expected.extend_from_slice(&signed_receipt.client_signature);
    expected.extend_from_slice(&signed_receipt.node_signature);
    assert_eq!(borsh::to_vec(&signed_receipt).unwrap(), expected);
    // A one-item ingest body is the count (u32 LE) and the item.
    let mut ingest = 1u32.to_le_bytes().to_vec();
    ingest.extend_from_slice(&expected);
    assert_eq!(borsh::to_vec(&vec![signed_receipt]).unwrap(), ingest);

    vec![
        ("client key", hex(&pk(&client))),
        ("client key base58", b58(&pk(&client))),
        ("node key", hex(&pk(&node))),
        ("node key base58", b58(&pk(&node))),
        ("buyer key", hex(&pk(&buyer))),
        ("buyer key base58", b58(&pk(&buyer))),
        ("operator key", hex(&pk(&operator))),
        ("operator key base58", b58(&pk(&operator))),
        ("binding body", hex(&binding_body)),
        (
            "binding message sha256",
            sha(&binding.signing_message(&DEPLOYMENT)),
        ),
        (
            "binding node signature",
            hex(&signed_binding.node_signature),
        ),
        (
            "binding operator signature",
            hex(&signed_binding.operator_signature),
        ),
        ("binding body hash", hex(&binding.body_hash())),
        ("grant body", hex(&grant_body)),
        (
            "grant message sha256",
            sha(&grant.signing_message(&DEPLOYMENT)),
        ),
        ("grant buyer signature", hex(&signed_grant.buyer_signature)),
        ("grant body hash", hex(&grant.body_hash())),
        ("revocation body", hex(&revocation_body)),
        (
            "revocation message sha256",
            sha(&revocation.signing_message(&DEPLOYMENT)),
        ),
        (
            "revocation buyer signature",
            hex(&signed_revocation.buyer_signature),
        ),
        ("revocation body hash", hex(&revocation.body_hash())),
        ("receipt body", hex(&receipt_body)),
        (
            "receipt client message sha256",
            sha(&receipt.client_message(&DEPLOYMENT)),
        ),
        ("receipt client signature", hex(&client_signature)),
        (
            "receipt node message sha256",
            sha(&receipt.node_message(&DEPLOYMENT, &client_signature)),
        ),
        (
            "receipt node signature",
            hex(&signed_receipt.node_signature),
        ),
        ("receipt body hash", hex(&receipt.body_hash())),
    ]
}

#[test]
fn docs_carry_the_computed_vectors() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/receipts.md"
    ))
    .expect("docs/receipts.md exists");
    // Long hex strings may be wrapped in the doc; compare without whitespace and table pipes.
    let flat: String = doc
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '`' && *c != '|')
        .collect();
    let all = vectors();
    let listing: String = all.iter().map(|(n, v)| format!("  {n}: {v}\n")).collect();
    for (name, value) in &all {
        assert!(
            flat.contains(value.as_str()),
            "docs/receipts.md lacks the {name} vector {value}; the computed vectors are:\n{listing}"
        );
    }
}

#[test]
fn the_domain_tags_are_as_documented() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/receipts.md"
    ))
    .expect("docs/receipts.md exists");
    for tag in [
        backhaul_protocol::BINDING_TAG,
        backhaul_protocol::GRANT_TAG,
        backhaul_protocol::RECEIPT_CLIENT_TAG,
        backhaul_protocol::RECEIPT_NODE_TAG,
    ] {
        let tag = std::str::from_utf8(tag).unwrap();
        let row = format!("`{tag}` | {}", tag.len());
        assert!(doc.contains(&row), "docs/receipts.md lacks the row {row:?}");
    }
}
