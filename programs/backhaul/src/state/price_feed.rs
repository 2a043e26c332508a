use crate::constants::MAX_ORACLES;
use anchor_lang::prelude::*;
use backhaul_core::price::{is_fresh, TimedPrice};

/// One oracle's latest price.
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Copy, Debug, PartialEq, Eq, InitSpace)]
pub struct PriceSubmission {
    pub oracle: Pubkey,
    pub credits_per_token: u64,
    pub submitted_at: i64,
}

/// The price of credits in tokens, as the oracle quorum agreed on it (the rules are in
/// `docs/economics.md`).
#[account]
#[derive(InitSpace, Debug)]
pub struct PriceFeed {
    /// The deployment.
    pub config: Pubkey,
    /// PDA bump of `["price", config]`.
    pub bump: u8,
    /// Credits one whole token buys: the median of a quorum's fresh submissions, moved from the
    /// previous posted price at most as far as `price_max_change_bps` per hour allows; 0 until
    /// the first quorum.
    pub credits_per_token: u64,
    /// When the price was posted; the next post's band is measured from it.
    pub posted_at: i64,
    /// Set by `set_oracles`: the posted price was agreed while another oracle set counted, so no
    /// purchase or seal may use it until the new set's quorum posts (which clears it). The value
    /// still anchors the next post's band.
    pub oracle_set_changed: bool,
    /// Each oracle's latest submission.
    #[max_len(MAX_ORACLES)]
    pub submissions: Vec<PriceSubmission>,
}

impl PriceFeed {
    pub const SIZE: usize = 8 + PriceFeed::INIT_SPACE;

    /// The posted price and when it was posted.
    pub fn posted(&self) -> TimedPrice {
        TimedPrice {
            credits_per_token: self.credits_per_token,
            at: self.posted_at,
        }
    }

    /// `oracle`'s latest submission, fresh or not.
    pub fn submission_of(&self, oracle: &Pubkey) -> Option<TimedPrice> {
        self.submissions
            .iter()
            .find(|s| s.oracle == *oracle)
            .map(|s| TimedPrice {
                credits_per_token: s.credits_per_token,
                at: s.submitted_at,
            })
    }

    /// The posted price if purchases may use it at `now`: posted at all, by the current oracle
    /// set, at most `max_age_secs` ago.
    pub fn usable_price(&self, now: i64, max_age_secs: u64) -> Option<u64> {
        (self.credits_per_token > 0
            && !self.oracle_set_changed
            && is_fresh(self.posted_at, now, max_age_secs))
        .then_some(self.credits_per_token)
    }
}
