//! Creating, signing and submitting Backhaul messages to oracles.
//!
//! - [`NodeIdentity`], [`BuyerIdentity`] and [`ClientSession`] make and sign bindings, grants
//!   and usage receipts (`docs/receipts.md` has their formats and rules).
//! - [`OracleClient`] speaks one oracle's HTTP API (`docs/api.md`): ingest in chunks of at most
//!   the per-request limits, with bounded retries; proofs, epochs, datasets and health.
//! - [`Fanout`] sends the same items to several oracles at once and reports each one's outcome.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use backhaul_client::{BuyerIdentity, ClientConfig, ClientSession, Fanout, NodeIdentity};
//! use backhaul_protocol::Deployment;
//! use ed25519_dalek::SigningKey;
//!
//! let deployment = Deployment { program_id: [0xAA; 32], config: [0xBB; 32] };
//! let operator = SigningKey::from_bytes(&[4; 32]);
//! let node = NodeIdentity::new(deployment, SigningKey::from_bytes(&[2; 32]),
//!     operator.verifying_key().to_bytes());
//! let oracles = Fanout::from_urls(["https://o1.example", "https://o2.example"],
//!     ClientConfig::default())?;
//! oracles.submit_bindings(&[node.sign_binding(42, 1_750_000_000, &operator)?]).await;
//!
//! // The client signs what it received, naming the buyer whose grant authorizes it (and whose
//! // credits pay); the node countersigns and submits.
//! let buyer = BuyerIdentity::new(deployment, SigningKey::from_bytes(&[3; 32]));
//! let client = SigningKey::from_bytes(&[1; 32]);
//! oracles.submit_grants(&[buyer.grant(client.verifying_key().to_bytes(), 42, 1_750_000_000,
//!     1_767_225_600, 0)]).await;
//! let mut session = ClientSession::new(deployment, client, buyer.key(), node.key(), 42,
//!     1_750_000_000);
//! let (receipt, client_signature) = session.record_signed(1 << 20, 1_750_000_060)?;
//! let signed = node.countersign(&receipt, client_signature)?;
//! let report = oracles.submit_receipts(&[signed]).await;
//! for (oracle, error) in report.failures() {
//!     eprintln!("{oracle}: {error}");
//! }
//! # Ok(())
//! # }
//! ```

mod client;
mod error;
mod fanout;
mod identity;
mod retry;

pub use client::{ClientConfig, OracleClient, OCTET_STREAM};
pub use error::{ClientError, IdentityError, SessionError, SubmitError};
pub use fanout::{Fanout, FanoutReport, OracleOutcome};
pub use identity::{
    operator_sign_binding, BuyerIdentity, ClientSession, NodeIdentity, REVOKED_EXPIRES_AT,
};
pub use retry::RetryPolicy;

/// The protocol crate, re-exported so users need not depend on it separately.
pub use backhaul_protocol as protocol;
