use crate::constants::{EPOCH_SEED, MAX_VETOES_PER_EPOCH};
use crate::error::BackhaulError;
use crate::events::EpochVetoed;
use crate::state::*;
use anchor_lang::prelude::*;

#[event_cpi]
#[derive(Accounts)]
#[instruction(epoch: u64)]
pub struct Veto<'info> {
    pub guardian: Signer<'info>,
    #[account(constraint = config.is_guardian(&guardian.key()) @ BackhaulError::NotGuardian)]
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

/// A guardian stops an epoch before money moves. Works while paused.
///
/// Effects: marks the epoch `Vetoed`; a vetoed proposal's digest cannot be voted for one challenge
/// period (after that the oracles, which close deterministically, may propose it again, so a veto
/// never bans the honest proposal for good); the next vote starts a new round with no votes.
///
/// Checks: the signer is a guardian; the epoch is `Voting`, or `Proposed` with its challenge
/// period still running; fewer than [`MAX_VETOES_PER_EPOCH`] vetoes of this epoch so far, so a
/// hostile guardian delays an epoch by a bounded number of rounds.
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
    require!(
        record.vetoes < MAX_VETOES_PER_EPOCH,
        BackhaulError::VetoLimitReached
    );
    record.vetoes = record
        .vetoes
        .checked_add(1)
        .ok_or(BackhaulError::Overflow)?;
    record.status = EpochStatus::Vetoed;
    if digest != [0u8; 32] {
        record.vetoed_digest = digest;
        let challenge = i64::try_from(ctx.accounts.config.challenge_period_secs)
            .map_err(|_| BackhaulError::Overflow)?;
        record.banned_until = now.checked_add(challenge).ok_or(BackhaulError::Overflow)?;
    }
    record.proposal = EpochProposal::default();
    record.proposal_digest = [0u8; 32];
    record.quorum_at = 0;
    record.finalizable_at = 0;
    let (epoch, round, vetoes) = (record.epoch, record.round, record.vetoes);
    emit_cpi!(EpochVetoed {
        config: ctx.accounts.config.key(),
        epoch,
        round,
        guardian: ctx.accounts.guardian.key(),
        digest,
        vetoes,
    });
    Ok(())
}
