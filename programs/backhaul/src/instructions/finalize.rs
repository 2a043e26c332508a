use crate::constants::{EPOCH_SEED, LEDGER_SEED, VAULT_SEED};
use crate::error::BackhaulError;
use crate::events::EpochFinalized;
use crate::state::*;
use anchor_lang::prelude::*;
use anchor_spl::token::{self, Mint, MintTo, Token, TokenAccount};

#[event_cpi]
#[derive(Accounts)]
#[instruction(epoch: u64)]
pub struct Finalize<'info> {
    #[account(mut, has_one = mint, has_one = vault)]
    pub config: Box<Account<'info, Config>>,
    /// The record of `epoch`, which must be the deployment's next epoch.
    #[account(
        mut,
        seeds = [EPOCH_SEED, config.key().as_ref(), &epoch.to_le_bytes()],
        bump = epoch_record.bump,
        has_one = config,
    )]
    pub epoch_record: Box<Account<'info, EpochRecord>>,
    #[account(mut)]
    pub mint: Box<Account<'info, Mint>>,
    #[account(mut, seeds = [VAULT_SEED, config.key().as_ref()], bump = config.vault_bump)]
    pub vault: Box<Account<'info, TokenAccount>>,
    pub token_program: Program<'info, Token>,
    /// The epoch's ledger; records what was minted and the new moving average of burns.
    #[account(
        mut,
        seeds = [LEDGER_SEED, config.key().as_ref(), &epoch.to_le_bytes()],
        bump = ledger.bump,
    )]
    pub ledger: Box<Account<'info, EpochLedger>>,
}

/// Finalizes the next epoch once its challenge period has passed. Anyone may send it.
///
/// Effects: mints exactly the proposal's allocation into the vault (signed by the config PDA),
/// counting it first against the schedule and the rest as re-minted burns; updates the moving
/// average of burns; advances `next_epoch`; records both trees' totals and leaf counts; writes
/// the ledger's minted amount and budget; marks the epoch `Finalized`; budget parameters applied
/// from the new next epoch become current.
///
/// Checks: not paused; the epoch is `Proposed` and is the next epoch; the challenge period has
/// ended; the allocation fits the epoch's budget (the schedule plus capped net emissions, the
/// lifetime cap, the paid-usage cap, under the epoch's parameters) and the mint rate limiter. The
/// votes checked the same at quorum, and none of it can get stricter since.
pub fn handler(ctx: Context<Finalize>, _epoch: u64) -> Result<()> {
    let now = Clock::get()?.unix_timestamp;
    let config = &ctx.accounts.config;
    let record = &ctx.accounts.epoch_record;
    require!(!config.is_paused(now), BackhaulError::Paused);
    match record.status {
        EpochStatus::Proposed => {}
        EpochStatus::Finalized => return err!(BackhaulError::AlreadyFinalized),
        EpochStatus::Voting | EpochStatus::Vetoed => return err!(BackhaulError::NoQuorum),
    }
    require!(
        record.epoch == config.next_epoch,
        BackhaulError::EpochOutOfOrder
    );
    require!(
        now >= record.finalizable_at,
        BackhaulError::ChallengePeriodActive
    );

    let epoch = record.epoch;
    let proposal = record.proposal;
    let allocation = proposal.allocation;
    let FinalizeOutcome {
        budget,
        split,
        bucket,
    } = config.finalize_outcome(
        epoch,
        &ctx.accounts.ledger,
        allocation,
        proposal.usage_cost,
        now,
    )?;
    let tokens_burned = ctx.accounts.ledger.tokens_burned;

    if allocation > 0 {
        let seeds = config.signer_seeds();
        token::mint_to(
            CpiContext::new_with_signer(
                ctx.accounts.token_program.key(),
                MintTo {
                    mint: ctx.accounts.mint.to_account_info(),
                    to: ctx.accounts.vault.to_account_info(),
                    authority: config.to_account_info(),
                },
                &[&seeds],
            ),
            allocation,
        )?;
    }

    let config = &mut ctx.accounts.config;
    config.rate_limiter.level = bucket.level;
    config.rate_limiter.last_ts = bucket.last_ts;
    config.total_minted = config
        .total_minted
        .checked_add(allocation)
        .ok_or(BackhaulError::Overflow)?;
    config.scheduled_minted = config
        .scheduled_minted
        .checked_add(split.scheduled)
        .ok_or(BackhaulError::Overflow)?;
    config.total_reemitted = config
        .total_reemitted
        .checked_add(split.net)
        .ok_or(BackhaulError::Overflow)?;
    config.burned_finalized = config
        .burned_finalized
        .checked_add(tokens_burned)
        .ok_or(BackhaulError::Overflow)?;
    config.credits_issued_finalized = config
        .credits_issued_finalized
        .checked_add(ctx.accounts.ledger.credits_issued)
        .ok_or(BackhaulError::Overflow)?;
    config.last_usage_cost_total = proposal.usage_cost_total;
    config.burn_ema = budget.burn_ema;
    config.last_reward_total = proposal.reward_total;
    config.last_reward_leaf_count = proposal.reward_leaf_count;
    config.last_usage_total = proposal.usage_total;
    config.last_usage_leaf_count = proposal.usage_leaf_count;
    config.next_epoch = epoch.checked_add(1).ok_or(BackhaulError::Overflow)?;
    config.promote_pending_params();
    config.invariant()?;
    let total_minted = config.total_minted;

    let ledger = &mut ctx.accounts.ledger;
    ledger.tokens_minted = allocation;
    ledger.burn_ema = budget.burn_ema;
    ledger.budget = budget.total;

    let record = &mut ctx.accounts.epoch_record;
    record.status = EpochStatus::Finalized;
    record.finalized_at = now;
    let digest = record.proposal_digest;

    emit_cpi!(EpochFinalized {
        config: ctx.accounts.config.key(),
        epoch,
        digest,
        proposal,
        minted: allocation,
        minted_scheduled: split.scheduled,
        minted_net: split.net,
        budget: budget.total,
        tokens_burned,
        burn_ema: budget.burn_ema,
        total_minted,
        finalized_at: now,
    });
    Ok(())
}
