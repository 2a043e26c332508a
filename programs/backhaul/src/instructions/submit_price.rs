use crate::constants::PRICE_SEED;
use crate::error::BackhaulError;
use crate::events::{PriceSubmitted, PriceUpdated};
use crate::state::*;
use anchor_lang::prelude::*;
use backhaul_core::price::{quorum_price, within_bound};

#[event_cpi]
#[derive(Accounts)]
pub struct SubmitPrice<'info> {
    pub oracle: Signer<'info>,
    #[account(has_one = price_feed)]
    pub config: Box<Account<'info, Config>>,
    #[account(mut, seeds = [PRICE_SEED, config.key().as_ref()], bump = price_feed.bump)]
    pub price_feed: Box<Account<'info, PriceFeed>>,
}

/// An oracle's price: how many credits one whole token buys.
///
/// Effects: replaces this oracle's submission; drops submissions of oracles that left the set and
/// those older than the price staleness; when at least `threshold` fresh submissions remain, posts
/// the `threshold`-th largest of them (the conservative price a quorum supports) with the current
/// time.
///
/// Checks: not paused; the signer is in the oracle set; the price is positive and within the
/// configured bound of the posted price.
pub fn handler(ctx: Context<SubmitPrice>, credits_per_token: u64) -> Result<()> {
    let now = Clock::get()?.unix_timestamp;
    let config = &ctx.accounts.config;
    let oracle = ctx.accounts.oracle.key();
    require!(!config.paused, BackhaulError::Paused);
    require!(config.is_oracle(&oracle), BackhaulError::NotOracle);
    require!(credits_per_token > 0, BackhaulError::InvalidPrice);
    let feed = &mut ctx.accounts.price_feed;
    require!(
        within_bound(
            feed.credits_per_token,
            credits_per_token,
            config.economics.price_max_change_bps
        ),
        BackhaulError::PriceJumpTooLarge
    );

    let max_age =
        i64::try_from(config.economics.price_max_age_secs).map_err(|_| BackhaulError::Overflow)?;
    let fresh_after = now.saturating_sub(max_age);
    feed.submissions.retain(|s| {
        s.oracle != oracle && config.oracles.contains(&s.oracle) && s.submitted_at >= fresh_after
    });
    feed.submissions.push(PriceSubmission {
        oracle,
        credits_per_token,
        submitted_at: now,
    });
    let mut values: Vec<u64> = feed
        .submissions
        .iter()
        .map(|s| s.credits_per_token)
        .collect();
    let fresh = u8::try_from(values.len()).map_err(|_| BackhaulError::Overflow)?;
    let agreed = quorum_price(&mut values, usize::from(config.threshold));
    let previous = feed.credits_per_token;
    if let Some(price) = agreed {
        feed.credits_per_token = price;
        feed.posted_at = now;
    }
    let config_key = config.key();
    emit_cpi!(PriceSubmitted {
        config: config_key,
        oracle,
        credits_per_token,
        fresh_submissions: fresh,
    });
    if let Some(price) = agreed {
        emit_cpi!(PriceUpdated {
            config: config_key,
            previous_credits_per_token: previous,
            credits_per_token: price,
            posted_at: now,
        });
    }
    Ok(())
}
