//! The Backhaul oracle: ingests signed usage receipts, verifies and de-duplicates them, closes
//! each epoch into two Merkle roots and a published dataset, and serves proofs over HTTP.
//!
//! - [`agreement`]: each epoch's agreed input: held inputs, signed manifests, peers' files.
//! - [`ingest`]: verification, classification and durable storage (one writer, group commit).
//! - [`close`]: runs the deterministic epoch close (the `backhaul-close` crate, pure) against the
//!   database and the chain, publishes datasets.
//! - [`api`]: the HTTP API (see `docs/api.md`).
//! - [`chain`]: what is read from the chain.
//! - [`clock`]: this machine's clock, the chain's clock and epoch timing.
//! - [`db`]: SQLite or PostgreSQL storage.
//! - [`directory`]: the node directory, the latest advert of every bound node.

pub mod admission;
pub mod agreement;
pub mod api;
pub mod app;
pub mod chain;
pub mod clock;
pub mod close;
pub mod db;
pub mod directory;
pub mod files;
pub mod held;
pub mod ingest;
pub mod metrics;
pub mod pruning;
pub mod settings;
pub mod status;
pub mod storage;
pub mod submit;

pub use app::Oracle;
pub use settings::Settings;
