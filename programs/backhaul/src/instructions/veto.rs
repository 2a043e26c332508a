use crate::constants::EPOCH_SEED;
use crate::error::BackhaulError;
use crate::events::EpochVetoed;
use crate::state::*;
use anchor_lang::prelude::*;

#[event_cpi]
#[derive(Accounts)]
#[instruction(epoch: u64)]
pub struct Veto<'info> {
    pub guardian: Signer<'info>,
    #[account(has_one = guardian @ BackhaulError::NotGuardian)]
    pub config: Box<Account<'info, Config>>,
    /// The record of `epoch`, the epoch to stop.
    #[account(
        mut,
        seeds = [EPOCH_SEED, config.key().as_ref(), &epoch.to_le_bytes()],
        bump = epoch_record.bump,
        has_one = config,
    )]
    pub epoch_record: Box<Account<'info, EpochRecord>>,
}

/// The guardian stops an epoch before money moves. Works while paused.
///
/// Effects: marks the epoch `Vetoed` and remembers the vetoed digest, which can never be voted
/// again; the next vote starts a new round with no votes.
///
/// Checks: the signer is the guardian; the epoch is `Voting`, or `Proposed` with its challenge
/// period still running.
pub fn handler(ctx: Context<Veto>, _epoch: u64) -> Result<()> {
    let now = Clock::get()?.unix_timestamp;
    let record = &mut ctx.accounts.epoch_record;
    let digest = match record.status {
        EpochStatus::Voting => [0u8; 32],
        EpochStatus::Proposed => {
            require!(now < record.finalizable_at, BackhaulError::VetoWindowClosed);
            record.proposal_digest
        }
        EpochStatus::Finalized => return err!(BackhaulError::VetoWindowClosed),
        EpochStatus::Vetoed => return err!(BackhaulError::NothingToVeto),
    };
    record.status = EpochStatus::Vetoed;
    if digest != [0u8; 32] {
        record.vetoed_digest = digest;
    }
    record.proposal = EpochProposal::default();
    record.proposal_digest = [0u8; 32];
    record.quorum_at = 0;
    record.finalizable_at = 0;
    let (epoch, round) = (record.epoch, record.round);
    emit_cpi!(EpochVetoed {
        config: ctx.accounts.config.key(),
        epoch,
        round,
        guardian: ctx.accounts.guardian.key(),
        digest,
    });
    Ok(())
}
