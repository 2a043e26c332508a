//! An epoch's input: the signed items a close reads, as one content-addressed file, and the
//! manifests by which oracles announce what they hold (see `docs/agreement.md`).
//!
//! Each oracle writes the items it holds for an epoch at its cutoff as an [`EpochInput`] (its
//! *held* input) and signs an [`InputManifest`] naming that file's hash. The epoch's *agreed*
//! input is the [`EpochInput::merge`] of the held inputs of every oracle that signed exactly one
//! manifest for the epoch, each item's signatures checked: the close reads that and nothing
//! else, and it is published beside the dataset so that anyone can recompute the dataset.
//!
//! The encoding is canonical: a tag, the deployment, the epoch, then the receipts, grants and
//! bindings (borsh, each list sorted, no duplicates). Two oracles holding the same items write
//! the same bytes, whatever order the items arrived in.

use crate::messages::{signing_message, Key, Sig, SignedBinding, SignedGrant, SignedReceipt};
use crate::verify::{verify_each_strict, SigCheck};
use crate::Deployment;
use backhaul_core::merkle::sha256v;
use borsh::{BorshDeserialize, BorshSerialize};
use ed25519_dalek::{Signer, SigningKey};
use std::collections::BTreeMap;

/// Written first in every input file.
pub const INPUT_TAG: &[u8; 18] = b"backhaul:input:v1\n";
/// Domain tag of an oracle's manifest signature.
pub const MANIFEST_TAG: &[u8] = b"backhaul:manifest:v1";

/// The signed items of one epoch's close, in canonical order.
#[derive(Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct EpochInput {
    pub deployment: Option<Deployment>,
    pub epoch: u64,
    /// Receipts of the epoch at each session's highest sequence (several when a session
    /// equivocates), by (client, node, session id, sequence, body hash).
    pub receipts: Vec<SignedReceipt>,
    /// Grants and bindings that enter the state with this epoch, by body hash.
    pub grants: Vec<SignedGrant>,
    pub bindings: Vec<SignedBinding>,
}

/// Why an input file was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InputError {
    #[error("not an input file (the tag is missing)")]
    Tag,
    #[error("the input file does not decode: {0}")]
    Decode(String),
    #[error("the input file is not in canonical form (unsorted, duplicated or trailing bytes)")]
    NotCanonical,
    #[error("the input is for {found}, not {expected}")]
    Wrong { expected: String, found: String },
}

/// The (client, node, session) a receipt belongs to: a session is served by one node to one
/// client, so a receipt naming another node is another session.
pub fn session_key(r: &SignedReceipt) -> ([u8; 32], [u8; 32], [u8; 16]) {
    (r.receipt.client, r.receipt.node, r.receipt.session_id)
}

fn receipt_order(r: &SignedReceipt) -> ([u8; 32], [u8; 32], [u8; 16], u64, [u8; 32]) {
    let (c, n, s) = session_key(r);
    (c, n, s, r.receipt.sequence, r.receipt.body_hash())
}

impl EpochInput {
    /// An input holding `receipts`, `grants` and `bindings` in canonical form: receipts reduced
    /// to those at each session's top sequence, one copy of each signed body (the smallest
    /// signature bytes when a body arrives with two different valid signatures).
    pub fn new(
        deployment: Deployment,
        epoch: u64,
        receipts: impl IntoIterator<Item = SignedReceipt>,
        grants: impl IntoIterator<Item = SignedGrant>,
        bindings: impl IntoIterator<Item = SignedBinding>,
    ) -> Self {
        let mut by_body: BTreeMap<_, SignedReceipt> = BTreeMap::new();
        for r in receipts {
            if r.receipt.epoch != epoch {
                continue;
            }
            by_body
                .entry(receipt_order(&r))
                .and_modify(|kept| {
                    if sig_pair(&r) < sig_pair(kept) {
                        *kept = r;
                    }
                })
                .or_insert(r);
        }
        // Keep only the top sequence of each session (the map is ordered by session, then
        // sequence).
        let mut receipts: Vec<SignedReceipt> = Vec::with_capacity(by_body.len());
        for r in by_body.into_values() {
            if let Some(last) = receipts.last() {
                if session_key(last) == session_key(&r)
                    && last.receipt.sequence < r.receipt.sequence
                {
                    let key = session_key(&r);
                    while receipts.last().is_some_and(|l| session_key(l) == key) {
                        receipts.pop();
                    }
                }
            }
            receipts.push(r);
        }
        let mut g: BTreeMap<[u8; 32], SignedGrant> = BTreeMap::new();
        for x in grants {
            g.entry(x.grant.body_hash())
                .and_modify(|kept| {
                    if x.buyer_signature < kept.buyer_signature {
                        *kept = x;
                    }
                })
                .or_insert(x);
        }
        let mut b: BTreeMap<[u8; 32], SignedBinding> = BTreeMap::new();
        for x in bindings {
            b.entry(x.binding.body_hash())
                .and_modify(|kept| {
                    if (x.node_signature, x.operator_signature)
                        < (kept.node_signature, kept.operator_signature)
                    {
                        *kept = x;
                    }
                })
                .or_insert(x);
        }
        EpochInput {
            deployment: Some(deployment),
            epoch,
            receipts,
            grants: g.into_values().collect(),
            bindings: b.into_values().collect(),
        }
    }

    /// The union of several inputs of the same epoch, in canonical form.
    pub fn merge<'a>(
        deployment: Deployment,
        epoch: u64,
        inputs: impl IntoIterator<Item = &'a EpochInput>,
    ) -> Self {
        let mut receipts = Vec::new();
        let mut grants = Vec::new();
        let mut bindings = Vec::new();
        for i in inputs {
            receipts.extend_from_slice(&i.receipts);
            grants.extend_from_slice(&i.grants);
            bindings.extend_from_slice(&i.bindings);
        }
        EpochInput::new(deployment, epoch, receipts, grants, bindings)
    }

    /// Drops every item whose signatures do not all verify strictly, that has a field out of
    /// range (`MAX_FIELD`), or whose receipt is of another epoch; returns how many items were
    /// dropped. A held input from a dishonest oracle can therefore add nothing that its signers
    /// did not sign, nor anything ingest would have refused.
    pub fn retain_verified(&mut self, deployment: &Deployment) -> u64 {
        let before = self.receipts.len() + self.grants.len() + self.bindings.len();
        let epoch = self.epoch;
        self.receipts.retain(|r| r.receipt.in_range());
        self.grants.retain(|g| g.grant.in_range());
        self.bindings.retain(|b| b.binding.in_range());
        retain_by(&mut self.receipts, |r| r.checks(deployment).to_vec());
        self.receipts.retain(|r| r.receipt.epoch == epoch);
        retain_by(&mut self.grants, |g| g.checks(deployment).to_vec());
        retain_by(&mut self.bindings, |b| b.checks(deployment).to_vec());
        let after = self.receipts.len() + self.grants.len() + self.bindings.len();
        (before - after) as u64
    }

    /// The canonical bytes: the tag, then borsh.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = INPUT_TAG.to_vec();
        // Writing to a Vec cannot fail.
        let _ = self.serialize(&mut out);
        out
    }

    /// Decodes and checks that the bytes are canonical: what re-encodes to other bytes (items
    /// out of order, duplicated, below their session's top, trailing bytes) is refused.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, InputError> {
        let body = bytes.strip_prefix(&INPUT_TAG[..]).ok_or(InputError::Tag)?;
        let input =
            EpochInput::try_from_slice(body).map_err(|e| InputError::Decode(e.to_string()))?;
        let Some(deployment) = input.deployment else {
            return Err(InputError::NotCanonical);
        };
        let canonical = EpochInput::new(
            deployment,
            input.epoch,
            input.receipts.iter().copied(),
            input.grants.iter().copied(),
            input.bindings.iter().copied(),
        );
        if canonical != input {
            return Err(InputError::NotCanonical);
        }
        Ok(input)
    }

    /// sha256 of the canonical bytes: how manifests and datasets name the file.
    pub fn hash(&self) -> [u8; 32] {
        sha256v(&[&self.to_bytes()])
    }

    /// Checks that the input is for this deployment and epoch.
    pub fn check_for(&self, deployment: &Deployment, epoch: u64) -> Result<(), InputError> {
        if self.deployment.as_ref() != Some(deployment) || self.epoch != epoch {
            return Err(InputError::Wrong {
                expected: format!("epoch {epoch} of this deployment"),
                found: format!("epoch {} of another or no deployment", self.epoch),
            });
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.receipts.is_empty() && self.grants.is_empty() && self.bindings.is_empty()
    }
}

fn sig_pair(r: &SignedReceipt) -> ([u8; 64], [u8; 64]) {
    (r.client_signature, r.node_signature)
}

/// Keeps the items whose every signature verifies (strictly, one by one), checked on every core
/// and without holding all the signed messages at once (a full epoch's input holds millions).
fn retain_by<T: Sync>(items: &mut Vec<T>, checks: impl Fn(&T) -> Vec<SigCheck> + Sync) {
    let valid = |item: &T| verify_each_strict(&checks(item)).iter().all(Result::is_ok);
    let ok = map_on_every_core(items, valid);
    let mut i = 0;
    items.retain(|_| {
        let keep = ok[i];
        i += 1;
        keep
    });
}

/// `f` of every item, in order, on as many threads as there are cores (one for few items).
fn map_on_every_core<T: Sync>(items: &[T], f: impl Fn(&T) -> bool + Sync) -> Vec<bool> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads <= 1 || items.len() < 256 {
        return items.iter().map(&f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| s.spawn(|| part.iter().map(&f).collect::<Vec<bool>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| match h.join() {
                Ok(v) => v,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    })
}

/// An oracle's announcement of the input it holds for an epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize)]
pub struct InputManifest {
    /// The oracle's key (its on-chain vote key).
    pub oracle: Key,
    pub epoch: u64,
    /// sha256 of its held input file.
    pub input_hash: [u8; 32],
    pub receipts: u64,
    pub grants: u64,
    pub bindings: u64,
}

/// A manifest signed by its oracle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize)]
pub struct SignedManifest {
    pub manifest: InputManifest,
    pub signature: Sig,
}

impl InputManifest {
    /// The exact length of the file it names, in bytes (`None` if it cannot be represented):
    /// what a peer fetching it reads at most.
    pub fn file_len(&self) -> Option<u64> {
        let items = |n: u64, len: usize| n.checked_mul(len as u64)?.checked_add(4);
        let fixed = (INPUT_TAG.len() + 1 + 64 + 8) as u64;
        fixed
            .checked_add(items(self.receipts, crate::SIGNED_RECEIPT_LEN)?)?
            .checked_add(items(self.grants, crate::SIGNED_GRANT_LEN)?)?
            .checked_add(items(self.bindings, crate::SIGNED_BINDING_LEN)?)
    }

    /// The manifest of `input`, held by `oracle`.
    pub fn of(oracle: Key, input: &EpochInput) -> Self {
        InputManifest {
            oracle,
            epoch: input.epoch,
            input_hash: input.hash(),
            receipts: input.receipts.len() as u64,
            grants: input.grants.len() as u64,
            bindings: input.bindings.len() as u64,
        }
    }

    pub fn signing_message(&self, deployment: &Deployment) -> Vec<u8> {
        let body = borsh::to_vec(self).unwrap_or_default();
        signing_message(MANIFEST_TAG, deployment, &[&body])
    }

    pub fn sign(self, deployment: &Deployment, oracle: &SigningKey) -> SignedManifest {
        SignedManifest {
            manifest: self,
            signature: oracle.sign(&self.signing_message(deployment)).to_bytes(),
        }
    }
}

impl SignedManifest {
    pub fn check(&self, deployment: &Deployment) -> SigCheck {
        SigCheck::new(
            self.manifest.signing_message(deployment),
            self.signature,
            self.manifest.oracle,
        )
    }

    /// The manifest's signature checks out under `verify_strict`.
    pub fn verify(&self, deployment: &Deployment) -> bool {
        self.check(deployment).verify_strict().is_ok()
    }
}

/// Which manifests of an epoch count: those of oracles in the set that signed exactly one
/// (distinct) manifest for it. An oracle that signed two different manifests for one epoch
/// equivocated and none of its manifests count. Returns the counted manifests by oracle key.
pub fn counted_manifests<'a>(
    manifests: impl IntoIterator<Item = &'a SignedManifest>,
    oracles: &[Key],
    deployment: &Deployment,
    epoch: u64,
) -> Vec<InputManifest> {
    let mut by_oracle: BTreeMap<Key, Vec<InputManifest>> = BTreeMap::new();
    for m in manifests {
        if m.manifest.epoch != epoch
            || !oracles.contains(&m.manifest.oracle)
            || !m.verify(deployment)
        {
            continue;
        }
        let list = by_oracle.entry(m.manifest.oracle).or_default();
        if !list.contains(&m.manifest) {
            list.push(m.manifest);
        }
    }
    by_oracle
        .into_values()
        .filter(|l| l.len() == 1)
        .map(|l| l[0])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ClientGrant, NodeBinding, UsageReceipt};

    const D: Deployment = Deployment {
        program_id: [7; 32],
        config: [8; 32],
    };

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn receipt(client: u8, node: u8, session: u8, seq: u64, bytes: u64) -> SignedReceipt {
        UsageReceipt {
            epoch: 3,
            session_id: [session; 16],
            node: key(node).verifying_key().to_bytes(),
            client: key(client).verifying_key().to_bytes(),
            buyer: [9; 32],
            sequence: seq,
            cumulative_bytes: bytes,
            session_age_secs: 10,
        }
        .sign_both(&D, &key(client), &key(node))
    }

    fn grant(buyer: u8, client: u8) -> SignedGrant {
        ClientGrant {
            buyer: key(buyer).verifying_key().to_bytes(),
            client: key(client).verifying_key().to_bytes(),
            epoch: 0,
            issued_at: 1,
            expires_at: i64::MAX,
            credit_limit: 0,
        }
        .sign(&D, &key(buyer))
    }

    fn binding(node: u8, operator: u8) -> SignedBinding {
        NodeBinding {
            node: key(node).verifying_key().to_bytes(),
            operator: key(operator).verifying_key().to_bytes(),
            epoch: 0,
            issued_at: 1,
        }
        .sign(&D, &key(node), &key(operator))
    }

    #[test]
    fn the_same_items_in_any_order_give_the_same_bytes() {
        let rs = vec![
            receipt(1, 2, 1, 1, 10),
            receipt(1, 2, 1, 2, 20),
            receipt(3, 2, 1, 5, 50),
            receipt(1, 4, 1, 1, 7),
        ];
        let gs = vec![grant(5, 1), grant(5, 3)];
        let bs = vec![binding(2, 6), binding(4, 6)];
        let a = EpochInput::new(D, 3, rs.clone(), gs.clone(), bs.clone());
        let mut rrev = rs.clone();
        rrev.reverse();
        let b = EpochInput::new(
            D,
            3,
            rrev,
            gs.iter().rev().copied(),
            bs.iter().rev().copied(),
        );
        assert_eq!(a.to_bytes(), b.to_bytes());
        // Sequence 1 of session (1, 2, 1) is below its top and is dropped; the same session id
        // at another node is another session and is kept.
        assert_eq!(a.receipts.len(), 3);
        assert!(a
            .receipts
            .iter()
            .any(|r| r.receipt.node == key(4).verifying_key().to_bytes()));
        assert_eq!(EpochInput::from_bytes(&a.to_bytes()).unwrap(), a);
        // A manifest says exactly how long its file is: what a peer reads at most.
        let m = InputManifest::of([9; 32], &a);
        assert_eq!(m.file_len(), Some(a.to_bytes().len() as u64));
        let huge = InputManifest {
            receipts: u64::MAX / 2,
            ..m
        };
        assert_eq!(huge.file_len(), None);
    }

    #[test]
    fn a_large_input_is_verified_on_every_core_and_bad_items_dropped_wherever_they_are() {
        let mut rs: Vec<SignedReceipt> = (0..600u64)
            .map(|i| receipt((i % 7) as u8 + 1, 2, i as u8, 1, i + 1))
            .collect();
        rs[0].client_signature[0] ^= 1;
        rs[599].node_signature[5] ^= 1;
        rs[300].receipt.cumulative_bytes += 1;
        let mut input = EpochInput {
            deployment: Some(D),
            epoch: 3,
            receipts: rs,
            grants: vec![],
            bindings: vec![],
        };
        assert_eq!(input.retain_verified(&D), 3);
        assert_eq!(input.receipts.len(), 597);
    }

    #[test]
    fn a_merge_is_the_union_and_keeps_equivocations() {
        let a = EpochInput::new(D, 3, vec![receipt(1, 2, 1, 2, 20)], vec![grant(5, 1)], []);
        let b = EpochInput::new(
            D,
            3,
            vec![receipt(1, 2, 1, 1, 10), receipt(1, 2, 1, 2, 25)],
            [],
            vec![binding(2, 6)],
        );
        let m = EpochInput::merge(D, 3, [&a, &b]);
        // Both receipts at sequence 2 stay: the session equivocates, and the close sees it.
        assert_eq!(m.receipts.len(), 2);
        assert!(m.receipts.iter().all(|r| r.receipt.sequence == 2));
        assert_eq!((m.grants.len(), m.bindings.len()), (1, 1));
        assert_eq!(
            EpochInput::merge(D, 3, [&b, &a]).to_bytes(),
            m.to_bytes(),
            "order independent"
        );
    }

    #[test]
    fn unsigned_items_are_dropped_and_non_canonical_files_refused() {
        let mut bad = receipt(1, 2, 1, 1, 10);
        bad.receipt.cumulative_bytes = 1 << 40; // no longer what was signed
        let mut i = EpochInput::new(D, 3, vec![bad, receipt(3, 2, 1, 1, 5)], [], []);
        assert_eq!(i.retain_verified(&D), 1);
        assert_eq!(i.receipts.len(), 1);

        let mut bytes = i.to_bytes();
        bytes.push(0);
        assert!(EpochInput::from_bytes(&bytes).is_err(), "trailing byte");
        let mut dup = i.clone();
        dup.receipts.push(dup.receipts[0]);
        assert_eq!(
            EpochInput::from_bytes(&dup.to_bytes()),
            Err(InputError::NotCanonical)
        );
        assert_eq!(EpochInput::from_bytes(b"junk"), Err(InputError::Tag));
        let other_epoch = EpochInput::new(D, 4, [], [], []);
        assert!(other_epoch.check_for(&D, 3).is_err());
    }

    #[test]
    fn validly_signed_items_out_of_range_are_dropped() {
        // Signed by their keys, but with values no database column holds: a dishonest oracle's
        // input carrying them must not fail every honest oracle's close.
        let mut body = UsageReceipt {
            epoch: 3,
            session_id: [1; 16],
            node: key(2).verifying_key().to_bytes(),
            client: key(1).verifying_key().to_bytes(),
            buyer: [9; 32],
            sequence: 1 << 63,
            cumulative_bytes: 10,
            session_age_secs: 10,
        };
        let high_sequence = body.sign_both(&D, &key(1), &key(2));
        body.session_id = [7; 16];
        body.sequence = 1;
        body.cumulative_bytes = u64::MAX;
        let high_bytes = body.sign_both(&D, &key(1), &key(2));
        let mut g = grant(5, 1);
        g.grant.credit_limit = u64::MAX;
        let g = g.grant.sign(&D, &key(5));
        let mut i = EpochInput::new(
            D,
            3,
            vec![high_sequence, high_bytes, receipt(3, 2, 1, 1, 5)],
            vec![g, grant(5, 3)],
            [],
        );
        assert_eq!(i.retain_verified(&D), 3);
        assert_eq!((i.receipts.len(), i.grants.len()), (1, 1));
    }

    #[test]
    fn equivocating_oracles_and_outsiders_do_not_count() {
        let i1 = EpochInput::new(D, 3, vec![receipt(1, 2, 1, 1, 10)], [], []);
        let i2 = EpochInput::new(D, 3, vec![receipt(1, 2, 1, 1, 11)], [], []);
        let (o1, o2, o3) = (key(21), key(22), key(23));
        let k = |s: &SigningKey| s.verifying_key().to_bytes();
        let m1 = InputManifest::of(k(&o1), &i1).sign(&D, &o1);
        let m2a = InputManifest::of(k(&o2), &i1).sign(&D, &o2);
        let m2b = InputManifest::of(k(&o2), &i2).sign(&D, &o2);
        let m3 = InputManifest::of(k(&o3), &i2).sign(&D, &o3);
        let mut forged = m1;
        forged.manifest.input_hash = [0; 32];
        let set = [k(&o1), k(&o2)];
        let counted = counted_manifests([&m1, &m2a, &m2b, &m3, &forged, &m1], &set, &D, 3);
        // o2 equivocated, o3 is not in the set, the forged copy does not verify.
        assert_eq!(counted, vec![m1.manifest]);
    }
}
