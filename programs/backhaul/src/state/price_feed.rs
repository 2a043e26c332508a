use crate::constants::MAX_ORACLES;
use anchor_lang::prelude::*;

/// One oracle's latest price.
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Copy, Debug, PartialEq, Eq, InitSpace)]
pub struct PriceSubmission {
    pub oracle: Pubkey,
    pub credits_per_token: u64,
    pub submitted_at: i64,
}

/// The price of credits in tokens, as the oracle quorum agreed on it.
#[account]
#[derive(InitSpace, Debug)]
pub struct PriceFeed {
    /// The deployment.
    pub config: Pubkey,
    /// PDA bump of `["price", config]`.
    pub bump: u8,
    /// Credits one whole token buys; 0 until the first quorum.
    pub credits_per_token: u64,
    /// When the price was posted.
    pub posted_at: i64,
    /// Each oracle's latest submission.
    #[max_len(MAX_ORACLES)]
    pub submissions: Vec<PriceSubmission>,
}

impl PriceFeed {
    pub const SIZE: usize = 8 + PriceFeed::INIT_SPACE;
}
