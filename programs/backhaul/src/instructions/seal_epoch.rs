use crate::constants::*;
use crate::error::{core_error, BackhaulError};
use crate::events::EpochSealed;
use crate::state::*;
use anchor_lang::prelude::*;
use backhaul_core::epoch::epoch_end;

#[event_cpi]
#[derive(Accounts)]
#[instruction(epoch: u64)]
pub struct SealEpoch<'info> {
    /// Anyone; pays for the ledger if the epoch saw no purchase.
    #[account(mut)]
    pub payer: Signer<'info>,
    #[account(has_one = price_feed)]
    pub config: Box<Account<'info, Config>>,
    #[account(seeds = [PRICE_SEED, config.key().as_ref()], bump = price_feed.bump)]
    pub price_feed: Box<Account<'info, PriceFeed>>,
    /// The epoch's `EpochLedger`, created here if the epoch saw no purchase, also at an address
    /// someone sent lamports to first.
    /// CHECK: the address is checked by the seeds, the contents by `EpochLedger::load_or_create`.
    #[account(
        mut,
        seeds = [LEDGER_SEED, config.key().as_ref(), &epoch.to_le_bytes()],
        bump,
    )]
    pub ledger: UncheckedAccount<'info>,
    pub system_program: Program<'info, System>,
}

/// Freezes an ended epoch's budget inputs so that every oracle computes the same budget.
///
/// Effects: creates the ledger if the epoch saw no purchase; records, for auditors, the posted
/// price if purchases could use it now (posted by the current oracle set no longer ago than the
/// staleness bound), else 0; marks the ledger sealed. The price plays no part in the budget:
/// consumption is valued at what buyers paid for their credits, so whoever seals, whenever,
/// cannot move the epoch's rewards.
///
/// Checks: the epoch has ended by the clock (so no purchase can land in it any more); the ledger
/// is not sealed yet. Never the price: an ended epoch can always be sealed.
pub fn handler(ctx: Context<SealEpoch>, epoch: u64) -> Result<()> {
    let now = Clock::get()?.unix_timestamp;
    let config = &ctx.accounts.config;
    let end = epoch_end(config.genesis_ts, config.epoch_length_secs, epoch).map_err(core_error)?;
    require!(now >= end, BackhaulError::EpochNotEnded);
    let config_key = config.key();
    let feed = &ctx.accounts.price_feed;
    let (posted, posted_at) = (feed.credits_per_token, feed.posted_at);
    let fresh = feed.usable_price(now, config.economics.price_max_age_secs);
    let price = fresh.unwrap_or(0);

    let info = ctx.accounts.ledger.to_account_info();
    let mut ledger = EpochLedger::load_or_create(
        &info,
        &ctx.accounts.payer.to_account_info(),
        &ctx.accounts.system_program.to_account_info(),
        &config_key,
        epoch,
        ctx.bumps.ledger,
        ctx.program_id,
    )?;
    require!(!ledger.sealed, BackhaulError::LedgerSealed);
    ledger.sealed = true;
    ledger.sealed_at = now;
    ledger.credits_per_token = price;
    ledger.price_posted_at = posted_at;
    ledger.store(&info)?;
    let (tokens_burned, credits_issued) = (ledger.tokens_burned, ledger.credits_issued);
    emit_cpi!(EpochSealed {
        config: config_key,
        epoch,
        tokens_burned,
        credits_issued,
        credits_per_token: price,
        posted_credits_per_token: posted,
        price_fresh: fresh.is_some(),
        price_posted_at: posted_at,
        sealed_at: now,
    });
    Ok(())
}
