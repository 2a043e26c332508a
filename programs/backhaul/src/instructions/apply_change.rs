use crate::constants::*;
use crate::error::BackhaulError;
use crate::events::ChangeApplied;
use crate::state::*;
use anchor_lang::prelude::*;

#[event_cpi]
#[derive(Accounts)]
#[instruction(id: u64)]
pub struct ApplyChange<'info> {
    #[account(mut, has_one = price_feed)]
    pub config: Box<Account<'info, Config>>,
    /// The change to apply; closed, its rent returned to the admin that queued it.
    #[account(
        mut,
        seeds = [CHANGE_SEED, config.key().as_ref(), &id.to_le_bytes()],
        bump = pending_change.bump,
        has_one = config,
        has_one = queued_by,
        close = queued_by,
    )]
    pub pending_change: Box<Account<'info, PendingChange>>,
    /// CHECK: receives the rent; must be the change's `queued_by` (checked by `has_one`).
    #[account(mut)]
    pub queued_by: UncheckedAccount<'info>,
    /// The price feed: an oracle change drops the removed oracles' submissions.
    #[account(mut, seeds = [PRICE_SEED, config.key().as_ref()], bump = price_feed.bump)]
    pub price_feed: Box<Account<'info, PriceFeed>>,
}

/// Applies a queued change once its governance delay has passed. Anyone may send it.
///
/// Effects: see [`Config::apply_governance`]. A new oracle set also drops the price submissions
/// of removed oracles and marks the posted price as agreed under another set
/// (`oracle_set_changed`), so purchases treat it as stale until the new set's quorum posts; votes
/// already cast by removed oracles stop counting, and a proposal that already has quorum keeps it.
///
/// Checks: the clock has reached `executable_at`; the change is still acceptable now.
pub fn handler(ctx: Context<ApplyChange>, id: u64) -> Result<()> {
    let now = Clock::get()?.unix_timestamp;
    let pending = &ctx.accounts.pending_change;
    require!(now >= pending.executable_at, BackhaulError::ChangeNotReady);
    let change = pending.change.clone();
    let config = &mut ctx.accounts.config;
    config.apply_governance(&change, now, GovernanceStep::Apply)?;
    let from_epoch = match &change {
        GovernanceChange::Params(_) => config.pending_params.map(|p| p.from_epoch),
        GovernanceChange::Oracles { oracles, .. } => {
            let feed = &mut ctx.accounts.price_feed;
            feed.submissions.retain(|s| oracles.contains(&s.oracle));
            feed.oracle_set_changed = true;
            None
        }
        GovernanceChange::Guardians { .. } => None,
    };
    emit_cpi!(ChangeApplied {
        config: config.key(),
        id,
        change,
        from_epoch,
    });
    Ok(())
}
