//! The signed messages that nodes, buyers and oracles exchange (see `docs/receipts.md`).
//!
//! Every message is a fixed-layout little-endian (borsh) body, signed with ed25519 over
//!
//! ```text
//! domain tag ‖ program id (32) ‖ config (32) ‖ body
//! ```
//!
//! so a signature is valid for exactly one message kind and one deployment; bodies carry the
//! epoch they belong to.
//!
//! - [`SignedBinding`]: a node key belongs to an operator's wallet (the reward recipient); signed
//!   by both keys.
//! - [`SignedGrant`]: a buyer's wallet authorizes a client key, with an expiry and an optional
//!   per-epoch credit limit; signed by the buyer.
//! - [`SignedReceipt`]: a session's cumulative bytes served by a node to a client; signed by the
//!   client (who received the bytes) and countersigned by the node.
//! - [`advert::SignedAdvert`]: where a node is reached (its own address or a relay's); signed by
//!   the node key.
//! - [`input::SignedManifest`]: an oracle names the input it holds for an epoch
//!   ([`input::EpochInput`], the content-addressed file of the signed items above).

pub mod advert;
pub mod api;
pub mod dataset;
pub mod input;
pub mod messages;
pub mod verify;

pub use messages::*;
pub use verify::{verify_each_strict, SigCheck, VerifyError};

/// The deployment a message is bound to: the program and its config account.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, borsh::BorshSerialize, borsh::BorshDeserialize,
)]
pub struct Deployment {
    pub program_id: [u8; 32],
    pub config: [u8; 32],
}
