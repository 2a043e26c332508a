//! PDA seeds and the documented bounds of every parameter (see `docs/parameters.md`).

use anchor_lang::prelude::*;

/// `Config` PDA: `["config", mint]`. It is also the mint authority and the vault's owner.
#[constant]
pub const CONFIG_SEED: &[u8] = b"config";
/// Rewards vault token account PDA: `["vault", config]`.
#[constant]
pub const VAULT_SEED: &[u8] = b"vault";
/// `EpochRecord` PDA: `["epoch", config, epoch (u64 LE)]`.
#[constant]
pub const EPOCH_SEED: &[u8] = b"epoch";
/// `OperatorClaim` PDA: `["claim", config, operator]`.
#[constant]
pub const CLAIM_SEED: &[u8] = b"claim";

/// `PriceFeed` PDA: `["price", config]`.
#[constant]
pub const PRICE_SEED: &[u8] = b"price";
/// `CreditAccount` PDA: `["credits", config, buyer]`.
#[constant]
pub const CREDITS_SEED: &[u8] = b"credits";
/// `EpochLedger` PDA: `["ledger", config, epoch (u64 LE)]`.
#[constant]
pub const LEDGER_SEED: &[u8] = b"ledger";

/// At most this many oracles.
#[constant]
pub const MAX_ORACLES: u8 = 10;

/// Epoch length bounds, seconds.
#[constant]
pub const MIN_EPOCH_LENGTH_SECS: u64 = 60;
#[constant]
pub const MAX_EPOCH_LENGTH_SECS: u64 = 30 * 86_400;

/// Challenge period bounds, seconds.
#[constant]
pub const MIN_CHALLENGE_PERIOD_SECS: u64 = 60;
#[constant]
pub const MAX_CHALLENGE_PERIOD_SECS: u64 = 30 * 86_400;

/// Mint rate limiter window bounds, seconds.
#[constant]
pub const MIN_RATE_WINDOW_SECS: u64 = 60;
#[constant]
pub const MAX_RATE_WINDOW_SECS: u64 = 365 * 86_400;

/// Genesis may lie at most this far from the clock at initialization, seconds.
#[constant]
pub const MAX_GENESIS_OFFSET_SECS: i64 = 365 * 86_400;

/// Bounds of the price staleness allowed when buying, seconds.
#[constant]
pub const MIN_PRICE_MAX_AGE_SECS: u64 = 60;
#[constant]
pub const MAX_PRICE_MAX_AGE_SECS: u64 = 7 * 86_400;

/// The highest allowed price change rate, basis points per hour (100% per hour).
#[constant]
pub const MAX_PRICE_CHANGE_BPS: u16 = 10_000;
