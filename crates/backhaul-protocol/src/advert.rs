//! Node advertisements: where a node can be reached, signed by its node key. Gateways read them
//! from the oracles' directory (`GET /v1/adverts`) and check the signature themselves, so an
//! oracle can leave adverts out but cannot forge one. An advert is a message of its own beside
//! the fixed-size binding: the binding says whom a node pays, the advert where it listens.
//!
//! An endpoint is `host:port` (the node accepts sessions there) or `relay://host:port` (the node
//! keeps a link to that relay, which gateways dial with the node's key; `docs/node.md`).

use crate::messages::{signing_message, Key, Sig};
use crate::verify::SigCheck;
use crate::Deployment;
use borsh::{BorshDeserialize, BorshSerialize};
use ed25519_dalek::{Signer, SigningKey};

/// Domain tag of an advert signature.
pub const ADVERT_TAG: &[u8] = b"backhaul:advert:v1";
/// The endpoint's bytes: ASCII, zero-padded.
pub const ENDPOINT_LEN: usize = 96;
/// Encoded sizes (borsh, fixed layout).
pub const ADVERT_BODY_LEN: usize = 32 + ENDPOINT_LEN + 8;
pub const SIGNED_ADVERT_LEN: usize = ADVERT_BODY_LEN + 64;
/// An advert is served for this long after it was signed (nodes sign a new one every hour or so).
pub const ADVERT_LIFETIME_SECS: i64 = 24 * 60 * 60;
/// How far in the future an advert may be dated.
pub const ADVERT_MAX_SKEW_SECS: i64 = 300;

/// Where a node is reached.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// The node itself listens here.
    Direct { host: String, port: u16 },
    /// A relay the node is linked to.
    Relay { host: String, port: u16 },
}

impl Endpoint {
    /// Parses `host:port` or `relay://host:port` (a bracketed IPv6 host allowed); at most
    /// [`ENDPOINT_LEN`] printable ASCII bytes.
    pub fn parse(s: &str) -> Option<Endpoint> {
        if s.is_empty() || s.len() > ENDPOINT_LEN || !s.bytes().all(|b| b.is_ascii_graphic()) {
            return None;
        }
        let (relay, rest) = match s.strip_prefix("relay://") {
            Some(r) => (true, r),
            None => (false, s),
        };
        let (host, port) = rest.rsplit_once(':')?;
        let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || host.contains('/') {
            return None;
        }
        let host = host.to_string();
        Some(if relay {
            Endpoint::Relay { host, port }
        } else {
            Endpoint::Direct { host, port }
        })
    }

    /// `host:port` to connect to (the node's, or the relay's).
    pub fn address(&self) -> String {
        let (Endpoint::Direct { host, port } | Endpoint::Relay { host, port }) = self;
        if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Direct { .. } => write!(f, "{}", self.address()),
            Endpoint::Relay { .. } => write!(f, "relay://{}", self.address()),
        }
    }
}

/// A node says where it is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize)]
pub struct NodeAdvert {
    pub node: Key,
    /// The endpoint's ASCII text, zero-padded.
    pub endpoint: [u8; ENDPOINT_LEN],
    /// When it was signed (unix seconds); a later advert of the same node replaces an earlier one.
    pub issued_at: i64,
}

/// An advert signed by its node key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SignedAdvert {
    pub advert: NodeAdvert,
    pub node_signature: Sig,
}

impl NodeAdvert {
    /// The advert of `node` for `endpoint` (which must parse, see [`Endpoint::parse`]).
    pub fn new(node: Key, endpoint: &Endpoint, issued_at: i64) -> Option<Self> {
        let text = endpoint.to_string();
        if Endpoint::parse(&text).as_ref() != Some(endpoint) {
            return None;
        }
        let mut bytes = [0u8; ENDPOINT_LEN];
        bytes
            .get_mut(..text.len())?
            .copy_from_slice(text.as_bytes());
        Some(NodeAdvert {
            node,
            endpoint: bytes,
            issued_at,
        })
    }

    /// The endpoint, or `None` when the bytes are not one (padding must be zeros only).
    pub fn endpoint(&self) -> Option<Endpoint> {
        let end = self
            .endpoint
            .iter()
            .position(|b| *b == 0)
            .unwrap_or(ENDPOINT_LEN);
        if self.endpoint.get(end..)?.iter().any(|b| *b != 0) {
            return None;
        }
        Endpoint::parse(std::str::from_utf8(self.endpoint.get(..end)?).ok()?)
    }

    /// Whether it is served at `now`: signed at most [`ADVERT_MAX_SKEW_SECS`] ahead and less than
    /// [`ADVERT_LIFETIME_SECS`] ago.
    pub fn current(&self, now: i64) -> bool {
        self.issued_at <= now.saturating_add(ADVERT_MAX_SKEW_SECS)
            && now < self.issued_at.saturating_add(ADVERT_LIFETIME_SECS)
    }

    pub fn signing_message(&self, deployment: &Deployment) -> Vec<u8> {
        signing_message(
            ADVERT_TAG,
            deployment,
            &[&borsh::to_vec(self).unwrap_or_default()],
        )
    }

    pub fn sign(self, deployment: &Deployment, node: &SigningKey) -> SignedAdvert {
        SignedAdvert {
            advert: self,
            node_signature: node.sign(&self.signing_message(deployment)).to_bytes(),
        }
    }
}

impl SignedAdvert {
    pub fn checks(&self, deployment: &Deployment) -> [SigCheck; 1] {
        [SigCheck::new(
            self.advert.signing_message(deployment),
            self.node_signature,
            self.advert.node,
        )]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Deployment = Deployment {
        program_id: [1; 32],
        config: [2; 32],
    };

    #[test]
    fn endpoints_parse_round_trip_and_bad_ones_are_refused() {
        for s in [
            "node.example:443",
            "relay://relay.example:7000",
            "[2001:db8::1]:8443",
            "1.2.3.4:1",
        ] {
            let e = Endpoint::parse(s).expect(s);
            assert_eq!(e.to_string(), s);
        }
        for s in [
            "",
            "nohost",
            "h:0",
            "h:70000",
            "relay://",
            ":80",
            "a b:1",
            "http://x:80",
        ] {
            assert_eq!(Endpoint::parse(s), None, "{s}");
        }
        assert_eq!(
            Endpoint::parse(&format!("{}:1", "a".repeat(ENDPOINT_LEN))),
            None
        );
    }

    #[test]
    fn an_advert_is_signed_by_its_node_fixed_size_and_current_for_a_day() {
        let node = SigningKey::from_bytes(&[5; 32]);
        let e = Endpoint::parse("relay://r.example:7000").unwrap();
        let a = NodeAdvert::new(node.verifying_key().to_bytes(), &e, 1_000).unwrap();
        assert_eq!(a.endpoint(), Some(e));
        let s = a.sign(&D, &node);
        assert_eq!(borsh::to_vec(&s).unwrap().len(), SIGNED_ADVERT_LEN);
        for c in s.checks(&D) {
            c.verify_strict().unwrap();
        }
        let mut forged = s;
        forged.advert.endpoint[0] = b'x';
        assert!(forged.checks(&D)[0].verify_strict().is_err());
        assert!(a.current(1_000) && a.current(1_000 + ADVERT_LIFETIME_SECS - 1));
        assert!(!a.current(1_000 + ADVERT_LIFETIME_SECS));
        assert!(!a.current(1_000 - ADVERT_MAX_SKEW_SECS - 1));
        let mut junk = a;
        junk.endpoint[ENDPOINT_LEN - 1] = b'z';
        assert_eq!(junk.endpoint(), None, "bytes after the padding");
    }
}
