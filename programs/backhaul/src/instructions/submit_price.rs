use crate::constants::PRICE_SEED;
use crate::error::{core_error, BackhaulError};
use crate::events::{PriceSubmitted, PriceUpdated};
use crate::state::*;
use anchor_lang::prelude::*;
use backhaul_core::price::{is_fresh, quorum_post, submission_band, PriceBand};

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
/// those older than the price staleness; when at least `threshold` fresh submissions remain,
/// posts their median, moved from the previous posted price at most as far as
/// `price_max_change_bps` per hour allows for the time since it was posted (a median beyond that
/// posts the band's edge, or nothing while the band allows no whole unit of movement), with the
/// current time.
///
/// Checks: not paused; the signer is in the oracle set; the price is positive and, when this
/// oracle's previous submission is still fresh, within the band of that submission for the time
/// since it (the posted price and other oracles' submissions play no part).
pub fn handler(ctx: Context<SubmitPrice>, credits_per_token: u64) -> Result<()> {
    let now = Clock::get()?.unix_timestamp;
    let config = &ctx.accounts.config;
    let oracle = ctx.accounts.oracle.key();
    require!(!config.is_paused(now), BackhaulError::Paused);
    require!(config.is_oracle(&oracle), BackhaulError::NotOracle);
    require!(credits_per_token > 0, BackhaulError::InvalidPrice);
    let economics = &config.economics;
    let (max_age, max_change) = (economics.price_max_age_secs, economics.price_max_change_bps);
    let feed = &mut ctx.accounts.price_feed;
    let previous = feed.submission_of(&oracle);
    // Resubmitting the same price is within every band: no need to compute it.
    let unchanged = previous.is_some_and(|p| p.credits_per_token == credits_per_token);
    let band = if unchanged {
        PriceBand::ANY
    } else {
        submission_band(previous, now, max_age, max_change).map_err(core_error)?
    };
    if !band.contains(credits_per_token) {
        msg!(
            "price {} is outside {}..={}, the band of this oracle's previous submission",
            credits_per_token,
            band.lower,
            band.upper
        );
        return err!(BackhaulError::PriceJumpTooLarge);
    }

    feed.submissions.retain(|s| {
        s.oracle != oracle
            && config.oracles.contains(&s.oracle)
            && is_fresh(s.submitted_at, now, max_age)
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
    let previous_posted = feed.posted();
    let post = quorum_post(
        previous_posted,
        &mut values,
        usize::from(config.threshold),
        now,
        max_change,
    )
    .map_err(core_error)?;
    if let Some(post) = post {
        feed.credits_per_token = post.credits_per_token;
        feed.posted_at = now;
        feed.oracle_set_changed = false;
    }
    let config_key = config.key();
    emit_cpi!(PriceSubmitted {
        config: config_key,
        oracle,
        credits_per_token,
        fresh_submissions: fresh,
    });
    if let Some(post) = post {
        emit_cpi!(PriceUpdated {
            config: config_key,
            previous_credits_per_token: previous_posted.credits_per_token,
            credits_per_token: post.credits_per_token,
            median: post.median,
            posted_at: now,
        });
    }
    Ok(())
}
