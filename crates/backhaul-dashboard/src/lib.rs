//! What the Backhaul dashboard shows, as a pure library. The chain's accounts (the audit's
//! [`Snapshot`](backhaul_audit::Snapshot)), the published datasets and the audit's report go in
//! ([`Model::build`]); the pages' figures come out, each a [`Figure`] naming the audit checks that
//! verified it, so a page can link every number to its evidence and mark what nothing verified.
//! Nothing here reads the chain, an oracle or a socket: `backhaul dashboard` fetches, audits,
//! builds the model and serves it.
//!
//! - [`network`]: epochs (status, votes, challenge countdown, allocation, burned, minted, claimed,
//!   settled, unpaid) and the series the charts draw (burn against mint, emission against the
//!   schedule and the lifetime cap, the posted price).
//! - [`operator`]: earned, claimed, claimable now, per-epoch bytes and rewards, and the Merkle
//!   proof of the newest finalized reward.
//! - [`firm`]: credits, consumption per epoch, unsettled usage, runway at the recent rate.
//! - [`guardian`]: proposals in their challenge period with each check and the time left,
//!   queued governance changes.
//! - [`listing`]: operators and firms a page at a time, and lookup by key (a network of a
//!   million operators is never sent whole).
//! - [`csv`]: an operator's and a firm's history as CSV, from the same rows as the pages.
//!
//! Times are Unix seconds (UTC); each epoch row carries its boundaries.

pub mod csv;
pub mod figure;
pub mod firm;
pub mod guardian;
pub mod listing;
mod model;
pub mod network;
pub mod operator;

pub use figure::Figure;
pub use model::{EpochData, Model, Tree};
