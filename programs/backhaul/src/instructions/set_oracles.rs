use crate::constants::PRICE_SEED;
use crate::error::BackhaulError;
use crate::events::OraclesSet;
use crate::state::*;
use anchor_lang::prelude::*;

#[event_cpi]
#[derive(Accounts)]
pub struct SetOracles<'info> {
    pub admin: Signer<'info>,
    #[account(mut, has_one = admin @ BackhaulError::NotAdmin, has_one = price_feed)]
    pub config: Box<Account<'info, Config>>,
    #[account(mut, seeds = [PRICE_SEED, config.key().as_ref()], bump = price_feed.bump)]
    pub price_feed: Box<Account<'info, PriceFeed>>,
}

/// Replaces the oracle set and threshold.
///
/// Effects: the new set and threshold; the price submissions of removed oracles are dropped; the
/// posted price is marked as agreed under another set (`oracle_set_changed`), so purchases and
/// seals treat it as stale until the new set's quorum posts (the remaining oracles' fresh
/// submissions still count towards it). Votes already cast by removed oracles stop counting
/// towards quorum; a proposal that already has quorum keeps it.
///
/// Checks: the signer is the admin; 1 to 10 distinct non-default keys; `n/2 < m <= n`.
pub fn handler(ctx: Context<SetOracles>, oracles: Vec<Pubkey>, threshold: u8) -> Result<()> {
    validate_oracles(&oracles, threshold)?;
    let config = &mut ctx.accounts.config;
    config.oracles = oracles.clone();
    config.threshold = threshold;
    config.invariant()?;
    let feed = &mut ctx.accounts.price_feed;
    feed.submissions.retain(|s| oracles.contains(&s.oracle));
    feed.oracle_set_changed = true;
    emit_cpi!(OraclesSet {
        config: config.key(),
        oracles,
        threshold,
    });
    Ok(())
}
