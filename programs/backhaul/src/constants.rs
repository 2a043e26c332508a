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

/// `PendingChange` PDA: `["change", config, id (u64 LE)]`.
#[constant]
pub const CHANGE_SEED: &[u8] = b"change";

/// `OracleBond` PDA: `["bond", config, oracle]`.
#[constant]
pub const BOND_SEED: &[u8] = b"bond";
/// `ProofBuffer` PDA: `["proof", config, owner, id (u64 LE)]`.
#[constant]
pub const PROOF_BUFFER_SEED: &[u8] = b"proof";

/// Layout version of the program's accounts, recorded in `Config` and `EpochRecord` (see
/// `migrations/README.md`).
#[constant]
pub const ACCOUNT_VERSION: u8 = 6;

/// How many purchase epochs a `CreditAccount` remembers (its `checkpoints`).
#[constant]
pub const PURCHASE_CHECKPOINTS: u8 = 8;

const _: () = assert!(
    PURCHASE_CHECKPOINTS as usize == backhaul_core::cost::PURCHASE_CHECKPOINTS,
    "the program and the core keep as many purchase checkpoints"
);

/// At most this many oracles.
#[constant]
pub const MAX_ORACLES: u8 = 10;

/// At most this many guardians.
#[constant]
pub const MAX_GUARDIANS: u8 = 4;

/// Epoch length bounds, seconds. The shortest epoch holds two of the shortest challenge periods.
#[constant]
pub const MIN_EPOCH_LENGTH_SECS: u64 = 7_200;
#[constant]
pub const MAX_EPOCH_LENGTH_SECS: u64 = 30 * 86_400;

/// Challenge period bounds, seconds; it may also be at most half the epoch length, so that
/// finalization keeps up with the clock.
#[constant]
pub const MIN_CHALLENGE_PERIOD_SECS: u64 = 3_600;
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

/// The longest governance delay, seconds; the shortest is one epoch plus the challenge period.
#[constant]
pub const MAX_GOVERNANCE_DELAY_SECS: u64 = 90 * 86_400;

/// A parameter that bounds emissions (initial and floor emission, rate capacity, net emissions
/// cap) may at most double in one change.
#[constant]
pub const MAX_RAISE_FACTOR: u64 = 2;

/// A pause lasts at most this long, seconds, unless the admin lifts it earlier.
#[constant]
pub const MAX_PAUSE_SECS: i64 = 86_400;
/// After a pause ends, nobody may pause again for this long, seconds.
#[constant]
pub const PAUSE_COOLDOWN_SECS: i64 = 86_400;

/// At most this many vetoes per epoch; after them only a failing proof stops a proposal.
#[constant]
pub const MAX_VETOES_PER_EPOCH: u8 = 3;

/// The most bytes a proof buffer holds after its header: a fraud proof with three paths of depth
/// 32 (three leaves, 3 × 32 siblings of 40 bytes) fits with room to spare, and an account of this
/// size can be created by the program in one instruction (10 KiB at most).
#[constant]
pub const MAX_PROOF_BUFFER_LEN: u32 = 8_192;

/// The most an oracle's bond may be required to be, lamports (10,000 SOL): a compromised admin
/// cannot price every oracle out of voting.
#[constant]
pub const MAX_ORACLE_BOND_LAMPORTS: u64 = 10_000_000_000_000u64;

/// Share of the slashed bonds paid to the prover of a fraud, basis points. The rest stays in the
/// deployment's config account, which no instruction takes lamports from: an oracle that proves
/// its own fraud still loses half of its bond.
#[constant]
pub const FRAUD_BOUNTY_BPS: u16 = 5_000;

/// How many proven-fraudulent digests an epoch record remembers (refused for good); a further
/// one replaces the oldest.
#[constant]
pub const MAX_REFUTED_DIGESTS: u8 = 8;
