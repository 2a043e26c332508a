//! Pure arithmetic and hashing shared by the Backhaul program and its oracle.
//!
//! **API boundary:** nothing in this crate reads a clock, an account or the network. Every input is
//! passed in, every output is returned, and every operation that can overflow returns
//! [`CoreError`] instead of wrapping or panicking. The on-chain program and the off-chain oracle
//! both call these functions, so the two can never disagree about a hash, a budget or a price.
//!
//! The crate is `no_std`. The `alloc` feature adds the Merkle tree builders used off-chain; hashing
//! goes through the `sol_sha256` syscall on Solana and through `sha2` elsewhere.
#![no_std]
#![deny(clippy::arithmetic_side_effects)]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod budget;
pub mod cost;
pub mod emission;
pub mod epoch;
pub mod error;
pub mod merkle;
pub mod price;
pub mod rate_limit;
#[cfg(feature = "alloc")]
pub mod split;
pub mod sum_tree;
#[cfg(feature = "alloc")]
pub mod tree;

pub use error::CoreError;

/// A 32-byte value: a SHA-256 digest or the bytes of an ed25519 public key.
pub type Hash32 = [u8; 32];

/// Basis points in one whole (100%).
pub const BPS_DENOMINATOR: u64 = 10_000;
