//! Message bodies, their signed forms, and how they are signed.

use crate::verify::SigCheck;
use crate::Deployment;
use backhaul_core::merkle::sha256v;
use borsh::{BorshDeserialize, BorshSerialize};
use ed25519_dalek::{Signer, SigningKey};

/// Domain tag of node bindings (both the node and the operator sign it).
pub const BINDING_TAG: &[u8] = b"backhaul:binding:v1";
/// Domain tag of client grants (the buyer signs it).
pub const GRANT_TAG: &[u8] = b"backhaul:grant:v1";
/// Domain tag of the client's signature on a receipt.
pub const RECEIPT_CLIENT_TAG: &[u8] = b"backhaul:receipt:client:v1";
/// Domain tag of the node's countersignature on a receipt (over the body and the client's
/// signature).
pub const RECEIPT_NODE_TAG: &[u8] = b"backhaul:receipt:node:v1";

/// A 32-byte ed25519 public key.
pub type Key = [u8; 32];
/// A 64-byte ed25519 signature.
pub type Sig = [u8; 64];

/// A node key belongs to an operator's wallet from `epoch` on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize)]
pub struct NodeBinding {
    /// The key the node signs receipts with.
    pub node: Key,
    /// The operator's wallet: where the node's rewards go.
    pub operator: Key,
    /// The first epoch the binding applies to.
    pub epoch: u64,
    /// When it was signed (unix seconds); a later binding of the same node replaces an earlier
    /// one from its epoch on.
    pub issued_at: i64,
}

/// A binding signed by both the node and the operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SignedBinding {
    pub binding: NodeBinding,
    pub node_signature: Sig,
    pub operator_signature: Sig,
}

/// A buyer's wallet authorizes a client key (what its scrapers and gateways sign with).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize)]
pub struct ClientGrant {
    /// The buyer's wallet, whose credits pay for the client's usage.
    pub buyer: Key,
    /// The authorized client key.
    pub client: Key,
    /// The first epoch the grant applies to.
    pub epoch: u64,
    /// When it was signed (unix seconds); a later grant of the same buyer for the same client
    /// replaces an earlier one, which is how a grant is revoked (a new grant that has already
    /// expired). Grants of other buyers never apply to this buyer's receipts.
    pub issued_at: i64,
    /// Usage in epochs starting at or after this time (unix seconds) is not covered.
    pub expires_at: i64,
    /// The most credits the client may consume per epoch; 0 means no limit beyond the buyer's.
    pub credit_limit: u64,
}

/// A grant signed by the buyer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SignedGrant {
    pub grant: ClientGrant,
    pub buyer_signature: Sig,
}

/// A session's progress: the node served `cumulative_bytes` to the client so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize)]
pub struct UsageReceipt {
    pub epoch: u64,
    /// Chosen by the client; one session lives in one epoch.
    pub session_id: [u8; 16],
    pub node: Key,
    pub client: Key,
    /// The buyer whose grant authorizes the client and whose credits pay: the client names it,
    /// so only that buyer's grant (for this client) can apply.
    pub buyer: Key,
    /// Increases with every receipt of the session; the highest one counts.
    pub sequence: u64,
    /// Bytes served in the session so far.
    pub cumulative_bytes: u64,
    /// Seconds since the session started.
    pub session_age_secs: u64,
}

/// A receipt signed by the client and countersigned by the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SignedReceipt {
    pub receipt: UsageReceipt,
    pub client_signature: Sig,
    pub node_signature: Sig,
}

/// The largest value an unsigned field of a message may hold: `i64::MAX`, so that every field fits
/// the signed 64-bit integers of the oracles' databases. A message with a larger value is
/// refused (`out_of_range`) and never enters an input, whoever signed it.
pub const MAX_FIELD: u64 = i64::MAX as u64;

/// Encoded sizes (borsh, fixed layout).
pub const BINDING_BODY_LEN: usize = 32 + 32 + 8 + 8;
pub const SIGNED_BINDING_LEN: usize = BINDING_BODY_LEN + 64 + 64;
pub const GRANT_BODY_LEN: usize = 32 + 32 + 8 + 8 + 8 + 8;
pub const SIGNED_GRANT_LEN: usize = GRANT_BODY_LEN + 64;
pub const RECEIPT_BODY_LEN: usize = 8 + 16 + 32 + 32 + 32 + 8 + 8 + 8;
pub const SIGNED_RECEIPT_LEN: usize = RECEIPT_BODY_LEN + 64 + 64;

/// `tag ‖ program id ‖ config ‖ parts…`: the bytes a signature covers.
pub fn signing_message(tag: &[u8], deployment: &Deployment, parts: &[&[u8]]) -> Vec<u8> {
    let len = tag.len() + 64 + parts.iter().map(|p| p.len()).sum::<usize>();
    let mut msg = Vec::with_capacity(len);
    msg.extend_from_slice(tag);
    msg.extend_from_slice(&deployment.program_id);
    msg.extend_from_slice(&deployment.config);
    for p in parts {
        msg.extend_from_slice(p);
    }
    msg
}

fn body<T: BorshSerialize>(value: &T) -> Vec<u8> {
    borsh::to_vec(value).unwrap_or_default()
}

/// How long a binding lasts unless it is renewed: it applies to epochs that start before
/// `issued_at` plus this (90 days). An operator renews by signing the binding again (`backhaul
/// node bind`), which replaces the old one from the epoch after the new one's position; renew a
/// few epochs before the end. Bindings of nodes that stopped serving expire, and the oracles drop
/// them from their state once the epoch after their end is finalized.
pub const BINDING_LIFETIME_SECS: i64 = 90 * 24 * 60 * 60;

impl NodeBinding {
    /// Every field within range ([`MAX_FIELD`]).
    pub fn in_range(&self) -> bool {
        self.epoch <= MAX_FIELD
    }

    /// The binding no longer applies to epochs starting at or after this time.
    pub fn expires_at(&self) -> i64 {
        self.issued_at.saturating_add(BINDING_LIFETIME_SECS)
    }

    /// Whether it has expired for an epoch starting at `epoch_start`: the close then treats the
    /// node as unbound, exactly as if the binding had never arrived.
    pub fn expired_for(&self, epoch_start: i64) -> bool {
        self.expires_at() <= epoch_start
    }

    /// Identifies the binding by its signed body.
    pub fn body_hash(&self) -> [u8; 32] {
        sha256v(&[BINDING_TAG, &body(self)])
    }

    pub fn signing_message(&self, deployment: &Deployment) -> Vec<u8> {
        signing_message(BINDING_TAG, deployment, &[&body(self)])
    }

    /// Signs with both keys; `node` and `operator` must match the body's keys.
    pub fn sign(
        self,
        deployment: &Deployment,
        node: &SigningKey,
        operator: &SigningKey,
    ) -> SignedBinding {
        let msg = self.signing_message(deployment);
        SignedBinding {
            binding: self,
            node_signature: node.sign(&msg).to_bytes(),
            operator_signature: operator.sign(&msg).to_bytes(),
        }
    }
}

impl SignedBinding {
    /// The two signatures to verify.
    pub fn checks(&self, deployment: &Deployment) -> [SigCheck; 2] {
        let msg = self.binding.signing_message(deployment);
        [
            SigCheck::new(msg.clone(), self.node_signature, self.binding.node),
            SigCheck::new(msg, self.operator_signature, self.binding.operator),
        ]
    }
}

impl ClientGrant {
    /// Every field within range ([`MAX_FIELD`]).
    pub fn in_range(&self) -> bool {
        self.epoch <= MAX_FIELD && self.credit_limit <= MAX_FIELD
    }

    /// Identifies the grant by its signed body.
    pub fn body_hash(&self) -> [u8; 32] {
        sha256v(&[GRANT_TAG, &body(self)])
    }

    pub fn signing_message(&self, deployment: &Deployment) -> Vec<u8> {
        signing_message(GRANT_TAG, deployment, &[&body(self)])
    }

    pub fn sign(self, deployment: &Deployment, buyer: &SigningKey) -> SignedGrant {
        SignedGrant {
            grant: self,
            buyer_signature: buyer.sign(&self.signing_message(deployment)).to_bytes(),
        }
    }
}

impl SignedGrant {
    pub fn checks(&self, deployment: &Deployment) -> [SigCheck; 1] {
        [SigCheck::new(
            self.grant.signing_message(deployment),
            self.buyer_signature,
            self.grant.buyer,
        )]
    }
}

impl UsageReceipt {
    /// Every field within range ([`MAX_FIELD`]).
    pub fn in_range(&self) -> bool {
        [
            self.epoch,
            self.sequence,
            self.cumulative_bytes,
            self.session_age_secs,
        ]
        .iter()
        .all(|v| *v <= MAX_FIELD)
    }

    pub fn client_message(&self, deployment: &Deployment) -> Vec<u8> {
        signing_message(RECEIPT_CLIENT_TAG, deployment, &[&body(self)])
    }

    pub fn node_message(&self, deployment: &Deployment, client_signature: &Sig) -> Vec<u8> {
        signing_message(
            RECEIPT_NODE_TAG,
            deployment,
            &[&body(self), client_signature],
        )
    }

    /// The client's signature (the client signs what it received).
    pub fn client_sign(&self, deployment: &Deployment, client: &SigningKey) -> Sig {
        client.sign(&self.client_message(deployment)).to_bytes()
    }

    /// The node's countersignature over the body and the client's signature.
    pub fn countersign(
        self,
        deployment: &Deployment,
        client_signature: Sig,
        node: &SigningKey,
    ) -> SignedReceipt {
        SignedReceipt {
            receipt: self,
            client_signature,
            node_signature: node
                .sign(&self.node_message(deployment, &client_signature))
                .to_bytes(),
        }
    }

    /// Both signatures at once (tests and simulations holding both keys).
    pub fn sign_both(
        self,
        deployment: &Deployment,
        client: &SigningKey,
        node: &SigningKey,
    ) -> SignedReceipt {
        let client_signature = self.client_sign(deployment, client);
        self.countersign(deployment, client_signature, node)
    }

    /// Identifies the receipt by what was signed, not by the signatures: two encodings of a
    /// signature over the same body are the same receipt.
    pub fn body_hash(&self) -> [u8; 32] {
        sha256v(&[RECEIPT_CLIENT_TAG, &body(self)])
    }

    /// Bytes per second over the session's life, its age taken as at least one second and at
    /// most `max_age_secs` (the epoch's length: a session lives in one epoch, so a larger age,
    /// which only the client and the node vouch for, would only hide a faster rate).
    pub fn rate_bytes_per_sec(&self, max_age_secs: u64) -> u64 {
        self.cumulative_bytes / self.session_age_secs.min(max_age_secs).max(1)
    }
}

impl SignedReceipt {
    pub fn checks(&self, deployment: &Deployment) -> [SigCheck; 2] {
        let r = &self.receipt;
        [
            SigCheck::new(
                r.client_message(deployment),
                self.client_signature,
                r.client,
            ),
            SigCheck::new(
                r.node_message(deployment, &self.client_signature),
                self.node_signature,
                r.node,
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_sizes_are_fixed() {
        let r = UsageReceipt {
            epoch: 1,
            session_id: [2; 16],
            node: [3; 32],
            client: [4; 32],
            buyer: [8; 32],
            sequence: 5,
            cumulative_bytes: 6,
            session_age_secs: 7,
        };
        assert_eq!(body(&r).len(), RECEIPT_BODY_LEN);
        let s = SignedReceipt {
            receipt: r,
            client_signature: [0; 64],
            node_signature: [0; 64],
        };
        assert_eq!(body(&s).len(), SIGNED_RECEIPT_LEN);
        let g = ClientGrant {
            buyer: [1; 32],
            client: [2; 32],
            epoch: 0,
            issued_at: 0,
            expires_at: 0,
            credit_limit: 0,
        };
        assert_eq!(body(&g).len(), GRANT_BODY_LEN);
        assert_eq!(
            body(&SignedGrant {
                grant: g,
                buyer_signature: [0; 64]
            })
            .len(),
            SIGNED_GRANT_LEN
        );
        let b = NodeBinding {
            node: [1; 32],
            operator: [2; 32],
            epoch: 0,
            issued_at: 0,
        };
        assert_eq!(body(&b).len(), BINDING_BODY_LEN);
        let sb = SignedBinding {
            binding: b,
            node_signature: [0; 64],
            operator_signature: [0; 64],
        };
        assert_eq!(body(&sb).len(), SIGNED_BINDING_LEN);
    }
}
