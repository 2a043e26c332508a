//! Making and signing messages in each role: node, buyer, client.

use crate::error::{IdentityError, SessionError};
use backhaul_protocol::{
    ClientGrant, Deployment, Key, NodeBinding, Sig, SigCheck, SignedBinding, SignedGrant,
    SignedReceipt, UsageReceipt,
};
use ed25519_dalek::{Signer, SigningKey};

/// The `expires_at` of a revocation: before every epoch, so no epoch from the revocation's on
/// is covered.
pub const REVOKED_EXPIRES_AT: i64 = 0;

/// A node: its signing key and the operator wallet its rewards go to.
#[derive(Clone, Debug)]
pub struct NodeIdentity {
    deployment: Deployment,
    node: SigningKey,
    operator: Key,
}

impl NodeIdentity {
    pub fn new(deployment: Deployment, node: SigningKey, operator: Key) -> Self {
        NodeIdentity {
            deployment,
            node,
            operator,
        }
    }

    /// The node's public key.
    pub fn key(&self) -> Key {
        self.node.verifying_key().to_bytes()
    }

    pub fn operator(&self) -> Key {
        self.operator
    }

    pub fn deployment(&self) -> &Deployment {
        &self.deployment
    }

    /// The binding body of this node to its operator from `epoch` on.
    pub fn binding(&self, epoch: u64, issued_at: i64) -> NodeBinding {
        NodeBinding {
            node: self.key(),
            operator: self.operator,
            epoch,
            issued_at,
        }
    }

    /// The binding signed by the node and by `operator`, the operator wallet's key.
    pub fn sign_binding(
        &self,
        epoch: u64,
        issued_at: i64,
        operator: &SigningKey,
    ) -> Result<SignedBinding, IdentityError> {
        if operator.verifying_key().to_bytes() != self.operator {
            return Err(IdentityError::WrongOperator);
        }
        Ok(self
            .binding(epoch, issued_at)
            .sign(&self.deployment, &self.node, operator))
    }

    /// Completes a binding whose operator signature was made elsewhere (a wallet signing
    /// `binding.signing_message(deployment)`, see [`operator_sign_binding`]): checks it and adds
    /// the node's signature.
    pub fn complete_binding(
        &self,
        binding: NodeBinding,
        operator_signature: Sig,
    ) -> Result<SignedBinding, IdentityError> {
        if binding.node != self.key() {
            return Err(IdentityError::WrongNode);
        }
        if binding.operator != self.operator {
            return Err(IdentityError::WrongOperator);
        }
        let message = binding.signing_message(&self.deployment);
        SigCheck::new(message.clone(), operator_signature, self.operator)
            .verify_strict()
            .map_err(|_| IdentityError::BadOperatorSignature)?;
        Ok(SignedBinding {
            binding,
            node_signature: self.node.sign(&message).to_bytes(),
            operator_signature,
        })
    }

    /// Countersigns a receipt the client signed, after checking that it names this node and
    /// that the client's signature verifies (strictly, as the oracles check it).
    ///
    /// The client's signature covers the whole body, `buyer` included, so the buyer cannot be
    /// changed once the client has signed. Whether that buyer has a grant for the client is not
    /// checked here (the grants are the oracles'): a receipt whose buyer has not granted its
    /// client does not count.
    pub fn countersign(
        &self,
        receipt: &UsageReceipt,
        client_signature: Sig,
    ) -> Result<SignedReceipt, IdentityError> {
        if receipt.node != self.key() {
            return Err(IdentityError::WrongNode);
        }
        SigCheck::new(
            receipt.client_message(&self.deployment),
            client_signature,
            receipt.client,
        )
        .verify_strict()
        .map_err(|_| IdentityError::BadClientSignature)?;
        Ok(receipt.countersign(&self.deployment, client_signature, &self.node))
    }
}

/// The operator's signature on a binding, for wallets that sign apart from the node.
pub fn operator_sign_binding(
    binding: &NodeBinding,
    deployment: &Deployment,
    operator: &SigningKey,
) -> Sig {
    operator
        .sign(&binding.signing_message(deployment))
        .to_bytes()
}

/// A buyer's wallet, which authorizes client keys to spend its credits.
#[derive(Clone, Debug)]
pub struct BuyerIdentity {
    deployment: Deployment,
    buyer: SigningKey,
}

impl BuyerIdentity {
    pub fn new(deployment: Deployment, buyer: SigningKey) -> Self {
        BuyerIdentity { deployment, buyer }
    }

    pub fn key(&self) -> Key {
        self.buyer.verifying_key().to_bytes()
    }

    pub fn deployment(&self) -> &Deployment {
        &self.deployment
    }

    /// Authorizes `client` from `epoch` on, for usage in epochs starting before `expires_at`,
    /// up to `credit_limit` credits per epoch (0: no limit beyond the buyer's credits). It
    /// replaces this buyer's grants for the client issued before `issued_at`, from `epoch` on.
    ///
    /// It applies only to receipts that name this buyer (the client's sessions must be made
    /// with [`key`](Self::key) as their buyer, see [`ClientSession::new`]); a grant of another
    /// buyer for the same client neither replaces nor is replaced by it.
    pub fn grant(
        &self,
        client: Key,
        epoch: u64,
        issued_at: i64,
        expires_at: i64,
        credit_limit: u64,
    ) -> SignedGrant {
        ClientGrant {
            buyer: self.key(),
            client,
            epoch,
            issued_at,
            expires_at,
            credit_limit,
        }
        .sign(&self.deployment, &self.buyer)
    }

    /// Revokes `client` from `epoch` on, for this buyer: a grant issued at `issued_at` (later
    /// than the grants it revokes) that has already expired ([`REVOKED_EXPIRES_AT`]). Receipts
    /// naming another buyer are not affected.
    pub fn revoke(&self, client: Key, epoch: u64, issued_at: i64) -> SignedGrant {
        self.grant(client, epoch, issued_at, REVOKED_EXPIRES_AT, 0)
    }
}

/// One session of a client with one node, in one epoch, paid for by one buyer: the client
/// signs a receipt for the cumulative bytes received so far, each with the next sequence number.
///
/// Every receipt names the buyer, and the oracles apply only that buyer's grant for the client:
/// the buyer must have granted the client (see [`BuyerIdentity::grant`]) or the receipts do not
/// count. A client granted by several buyers chooses, per session, which one pays.
///
/// The session id is random, so sessions never collide: the oracles key a session by
/// `(epoch, client, session_id)`, and two different receipts with the same key and sequence
/// are an equivocation that voids the session. Never restore a session from an old snapshot
/// and keep signing. A session lives in one epoch; start a new one when the epoch changes.
#[derive(Clone, Debug)]
pub struct ClientSession {
    deployment: Deployment,
    client: SigningKey,
    buyer: Key,
    node: Key,
    epoch: u64,
    session_id: [u8; 16],
    started_at: i64,
    sequence: u64,
    cumulative_bytes: u64,
    session_age_secs: u64,
}

impl ClientSession {
    /// A new session with a random id, started at `started_at` (unix seconds), in which
    /// `client` receives from `node` on behalf of `buyer` (the buyer wallet whose grant
    /// authorizes the client and whose credits pay).
    pub fn new(
        deployment: Deployment,
        client: SigningKey,
        buyer: Key,
        node: Key,
        epoch: u64,
        started_at: i64,
    ) -> Self {
        Self::with_session_id(
            deployment,
            client,
            buyer,
            node,
            epoch,
            rand::random::<[u8; 16]>(),
            started_at,
        )
    }

    /// A new session with a chosen id (tests; ids must never be reused).
    pub fn with_session_id(
        deployment: Deployment,
        client: SigningKey,
        buyer: Key,
        node: Key,
        epoch: u64,
        session_id: [u8; 16],
        started_at: i64,
    ) -> Self {
        ClientSession {
            deployment,
            client,
            buyer,
            node,
            epoch,
            session_id,
            started_at,
            sequence: 0,
            cumulative_bytes: 0,
            session_age_secs: 0,
        }
    }

    /// Adds `bytes` just received at `now` (unix seconds) and returns the next receipt: the
    /// sequence goes up by one (the first receipt has sequence 1), the cumulative bytes by
    /// `bytes`, and the age is `now − started_at` (never negative, never decreasing).
    pub fn record(&mut self, bytes: u64, now: i64) -> Result<UsageReceipt, SessionError> {
        let sequence = self.sequence.checked_add(1).ok_or(SessionError::Overflow)?;
        let cumulative_bytes = self
            .cumulative_bytes
            .checked_add(bytes)
            .ok_or(SessionError::Overflow)?;
        let age = u64::try_from(i128::from(now) - i128::from(self.started_at)).unwrap_or(0);
        self.sequence = sequence;
        self.cumulative_bytes = cumulative_bytes;
        self.session_age_secs = self.session_age_secs.max(age);
        Ok(self.current())
    }

    /// [`record`](Self::record), and the client's signature on the receipt.
    pub fn record_signed(
        &mut self,
        bytes: u64,
        now: i64,
    ) -> Result<(UsageReceipt, Sig), SessionError> {
        let receipt = self.record(bytes, now)?;
        Ok((receipt, self.sign(&receipt)))
    }

    /// The client's signature on `receipt`.
    pub fn sign(&self, receipt: &UsageReceipt) -> Sig {
        receipt.client_sign(&self.deployment, &self.client)
    }

    /// The latest receipt (`None` before the first [`record`](Self::record)).
    pub fn last(&self) -> Option<UsageReceipt> {
        (self.sequence > 0).then(|| self.current())
    }

    pub fn client(&self) -> Key {
        self.client.verifying_key().to_bytes()
    }

    /// The buyer every receipt of the session names.
    pub fn buyer(&self) -> Key {
        self.buyer
    }

    pub fn node(&self) -> Key {
        self.node
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    pub fn session_id(&self) -> [u8; 16] {
        self.session_id
    }

    pub fn started_at(&self) -> i64 {
        self.started_at
    }

    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    pub fn cumulative_bytes(&self) -> u64 {
        self.cumulative_bytes
    }

    fn current(&self) -> UsageReceipt {
        UsageReceipt {
            epoch: self.epoch,
            session_id: self.session_id,
            node: self.node,
            client: self.client(),
            buyer: self.buyer,
            sequence: self.sequence,
            cumulative_bytes: self.cumulative_bytes,
            session_age_secs: self.session_age_secs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backhaul_protocol::verify_each_strict;

    const DEP: Deployment = Deployment {
        program_id: [0xAA; 32],
        config: [0xBB; 32],
    };

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn all_verify(checks: &[SigCheck]) -> bool {
        verify_each_strict(checks).iter().all(Result::is_ok)
    }

    #[test]
    fn sessions_count_up() {
        let node = key(2).verifying_key().to_bytes();
        let buyer = key(3).verifying_key().to_bytes();
        let mut s = ClientSession::with_session_id(DEP, key(1), buyer, node, 42, [9; 16], 1_000);
        assert_eq!((s.buyer(), s.node()), (buyer, node));
        assert_eq!(s.last(), None);
        let r1 = s.record(100, 1_010).unwrap();
        let r2 = s.record(250, 1_030).unwrap();
        let r3 = s.record(0, 1_020).unwrap(); // the clock went back
        assert_eq!(
            [r1.sequence, r2.sequence, r3.sequence],
            [1, 2, 3],
            "sequence"
        );
        assert_eq!(
            [
                r1.cumulative_bytes,
                r2.cumulative_bytes,
                r3.cumulative_bytes
            ],
            [100, 350, 350]
        );
        assert_eq!(
            [
                r1.session_age_secs,
                r2.session_age_secs,
                r3.session_age_secs
            ],
            [10, 30, 30]
        );
        for r in [r1, r2, r3] {
            assert_eq!(r.epoch, 42);
            assert_eq!(r.session_id, [9; 16]);
            assert_eq!(r.node, node);
            assert_eq!(r.client, key(1).verifying_key().to_bytes());
            assert_eq!(r.buyer, buyer);
        }
        assert_eq!(s.last(), Some(r3));
        assert_eq!((s.sequence(), s.cumulative_bytes()), (3, 350));
        // Before the start: age 0, not a wrapped-around huge number.
        let mut early =
            ClientSession::with_session_id(DEP, key(1), buyer, node, 42, [8; 16], 1_000);
        assert_eq!(early.record(1, 900).unwrap().session_age_secs, 0);
    }

    #[test]
    fn counters_refuse_to_overflow_and_leave_the_session_unchanged() {
        let mut s = ClientSession::new(DEP, key(1), [3; 32], [2; 32], 1, 0);
        s.record(u64::MAX - 1, 5).unwrap();
        assert_eq!(s.record(2, 6), Err(SessionError::Overflow));
        assert_eq!(s.sequence(), 1);
        assert_eq!(s.cumulative_bytes(), u64::MAX - 1);
        assert_eq!(s.record(1, 6).unwrap().cumulative_bytes, u64::MAX);
    }

    #[test]
    fn session_ids_are_random() {
        let a = ClientSession::new(DEP, key(1), [3; 32], [2; 32], 1, 0);
        let b = ClientSession::new(DEP, key(1), [3; 32], [2; 32], 1, 0);
        assert_ne!(a.session_id(), b.session_id());
    }

    #[test]
    fn client_and_node_signatures_verify_and_the_node_checks_what_it_signs() {
        let node = NodeIdentity::new(DEP, key(2), key(4).verifying_key().to_bytes());
        let buyer = key(3).verifying_key().to_bytes();
        let mut s = ClientSession::new(DEP, key(1), buyer, node.key(), 42, 0);
        let (receipt, client_sig) = s.record_signed(1 << 20, 60).unwrap();
        assert_eq!(receipt.buyer, buyer);
        let signed = node.countersign(&receipt, client_sig).unwrap();
        assert_eq!(signed.receipt, receipt);
        assert_eq!(signed.client_signature, client_sig);
        assert!(all_verify(&signed.checks(&DEP)));

        let mut bad = client_sig;
        bad[5] ^= 1;
        assert_eq!(
            node.countersign(&receipt, bad),
            Err(IdentityError::BadClientSignature)
        );
        // The client's signature covers the buyer: naming another one breaks it.
        let rebought = UsageReceipt {
            buyer: key(5).verifying_key().to_bytes(),
            ..receipt
        };
        assert_eq!(
            node.countersign(&rebought, client_sig),
            Err(IdentityError::BadClientSignature)
        );
        let other = NodeIdentity::new(DEP, key(7), [4; 32]);
        assert_eq!(
            other.countersign(&receipt, client_sig),
            Err(IdentityError::WrongNode)
        );
        // A signature for another deployment does not pass.
        let elsewhere = Deployment {
            program_id: [0xAA; 32],
            config: [0xBC; 32],
        };
        let foreign = receipt.client_sign(&elsewhere, &key(1));
        assert_eq!(
            node.countersign(&receipt, foreign),
            Err(IdentityError::BadClientSignature)
        );
    }

    #[test]
    fn bindings_are_signed_by_both_keys() {
        let operator = key(4);
        let node = NodeIdentity::new(DEP, key(2), operator.verifying_key().to_bytes());
        let b = node.sign_binding(42, 1_750_000_000, &operator).unwrap();
        assert_eq!(b.binding, node.binding(42, 1_750_000_000));
        assert!(all_verify(&b.checks(&DEP)));
        assert_eq!(
            node.sign_binding(42, 0, &key(5)).unwrap_err(),
            IdentityError::WrongOperator
        );

        // Operator signing elsewhere gives the same signed binding.
        let body = node.binding(42, 1_750_000_000);
        let op_sig = operator_sign_binding(&body, &DEP, &operator);
        assert_eq!(node.complete_binding(body, op_sig).unwrap(), b);
        let mut bad = op_sig;
        bad[0] ^= 1;
        assert_eq!(
            node.complete_binding(body, bad),
            Err(IdentityError::BadOperatorSignature)
        );
        let mut foreign = body;
        foreign.node = [9; 32];
        assert_eq!(
            node.complete_binding(foreign, op_sig),
            Err(IdentityError::WrongNode)
        );
    }

    #[test]
    fn grants_and_revocations() {
        let buyer = BuyerIdentity::new(DEP, key(3));
        let client = key(1).verifying_key().to_bytes();
        let g = buyer.grant(client, 42, 100, 1_000, 5_000);
        assert_eq!(g.grant.buyer, key(3).verifying_key().to_bytes());
        assert_eq!(
            (
                g.grant.client,
                g.grant.epoch,
                g.grant.expires_at,
                g.grant.credit_limit
            ),
            (client, 42, 1_000, 5_000)
        );
        assert!(all_verify(&g.checks(&DEP)));

        let r = buyer.revoke(client, 43, 200);
        assert!(r.grant.issued_at > g.grant.issued_at);
        assert!(r.grant.expires_at <= r.grant.issued_at, "already expired");
        assert_eq!((r.grant.epoch, r.grant.credit_limit), (43, 0));
        assert!(all_verify(&r.checks(&DEP)));
    }
}
