use crate::constants::*;
use crate::error::{core_error, BackhaulError};
use crate::events::{RootProposed, RootVoted};
use crate::state::*;
use anchor_lang::prelude::*;
use backhaul_core::epoch::epoch_end;
use backhaul_core::merkle::{empty_root, proposal_digest, TreeKind};

#[event_cpi]
#[derive(Accounts)]
#[instruction(epoch: u64)]
pub struct ProposeRoot<'info> {
    /// An oracle of the current set; pays for the epoch record on the first vote.
    #[account(mut)]
    pub oracle: Signer<'info>,
    pub config: Box<Account<'info, Config>>,
    #[account(
        init_if_needed,
        payer = oracle,
        space = EpochRecord::SIZE,
        seeds = [EPOCH_SEED, config.key().as_ref(), &epoch.to_le_bytes()],
        bump,
    )]
    pub epoch_record: Box<Account<'info, EpochRecord>>,
    pub system_program: Program<'info, System>,
}

/// Records one oracle's vote for `proposal` in `epoch`.
///
/// Effects: creates the epoch record on the first vote; after a veto, starts a new round (clears
/// the votes); appends the vote; when `threshold` current oracles voted for the same digest, stores
/// the proposal, moves the epoch to `Proposed` and sets `finalizable_at = now + challenge period`.
/// A vote that arrives after quorum is recorded (and flagged in its event) but changes nothing.
///
/// Checks: not paused; the signer is in the oracle set; `epoch` is the next epoch and has ended by
/// the clock; not finalized; the oracle has not voted in this round; the digest was not vetoed;
/// the root is not all zeros; the proposal is consistent (total = previous total + allocation,
/// the leaf count never shrinks, an empty tree has the empty root) and within the epoch's budget.
pub fn handler(ctx: Context<ProposeRoot>, epoch: u64, proposal: EpochProposal) -> Result<()> {
    let now = Clock::get()?.unix_timestamp;
    let config = &ctx.accounts.config;
    let oracle = ctx.accounts.oracle.key();
    require!(!config.paused, BackhaulError::Paused);
    require!(config.is_oracle(&oracle), BackhaulError::NotOracle);
    require!(epoch == config.next_epoch, BackhaulError::EpochOutOfOrder);
    let end = epoch_end(config.genesis_ts, config.epoch_length_secs, epoch).map_err(core_error)?;
    require!(now >= end, BackhaulError::EpochNotEnded);
    check_proposal(config, &config.key(), epoch, &proposal)?;

    let config_key = config.key();
    let record = &mut ctx.accounts.epoch_record;
    if record.config == Pubkey::default() {
        record.config = config_key;
        record.epoch = epoch;
        record.bump = ctx.bumps.epoch_record;
        record.status = EpochStatus::Voting;
    }
    match record.status {
        EpochStatus::Finalized => return err!(BackhaulError::AlreadyFinalized),
        EpochStatus::Vetoed => {
            record.round = record.round.checked_add(1).ok_or(BackhaulError::Overflow)?;
            record.votes.clear();
            record.status = EpochStatus::Voting;
        }
        EpochStatus::Voting | EpochStatus::Proposed => {}
    }
    // Votes of oracles that have since left the set no longer count, nor take a slot.
    record.votes.retain(|v| config.oracles.contains(&v.oracle));
    require!(
        !record.votes.iter().any(|v| v.oracle == oracle),
        BackhaulError::DoubleVote
    );

    let digest = proposal_digest(&config_key.to_bytes(), epoch, &borsh::to_vec(&proposal)?);
    require!(
        digest != record.vetoed_digest,
        BackhaulError::ProposalVetoed
    );
    record.votes.push(Vote { oracle, digest });
    let votes_for_digest = record.votes.iter().filter(|v| v.digest == digest).count();
    let votes_for_digest = u8::try_from(votes_for_digest).map_err(|_| BackhaulError::Overflow)?;

    let disagrees_with_quorum =
        record.status == EpochStatus::Proposed && record.proposal_digest != digest;
    let round = record.round;
    emit_cpi!(RootVoted {
        config: config_key,
        epoch,
        round,
        oracle,
        digest,
        proposal,
        votes_for_digest,
        threshold: config.threshold,
        disagrees_with_quorum,
    });

    let record = &mut ctx.accounts.epoch_record;
    if record.status == EpochStatus::Voting && votes_for_digest >= config.threshold {
        let challenge =
            i64::try_from(config.challenge_period_secs).map_err(|_| BackhaulError::Overflow)?;
        record.status = EpochStatus::Proposed;
        record.proposal = proposal;
        record.proposal_digest = digest;
        record.quorum_at = now;
        record.finalizable_at = now.checked_add(challenge).ok_or(BackhaulError::Overflow)?;
        let finalizable_at = record.finalizable_at;
        emit_cpi!(RootProposed {
            config: config_key,
            epoch,
            round,
            digest,
            proposal,
            quorum_at: now,
            finalizable_at,
        });
    }
    Ok(())
}

/// The proposal's internal consistency and its fit within the epoch's budget.
fn check_proposal(
    config: &Config,
    config_key: &Pubkey,
    epoch: u64,
    p: &EpochProposal,
) -> Result<()> {
    require!(p.reward_root != [0u8; 32], BackhaulError::ZeroRoot);
    let expected_total = config
        .last_reward_total
        .checked_add(p.allocation)
        .ok_or(BackhaulError::Overflow)?;
    let empty = p.reward_leaf_count == 0;
    let empty_root_ok =
        empty == (p.reward_root == empty_root(TreeKind::Reward, &config_key.to_bytes(), epoch));
    require!(
        p.reward_total == expected_total
            && p.reward_leaf_count >= config.last_reward_leaf_count
            && empty_root_ok
            && (!empty || p.reward_total == 0),
        BackhaulError::InconsistentProposal
    );
    check_budget(config, epoch, p.allocation)?;
    Ok(())
}

/// `allocation` fits the schedule's emission for `epoch` and what remains under the lifetime cap;
/// returns the epoch's budget.
pub(crate) fn check_budget(config: &Config, epoch: u64, allocation: u64) -> Result<u64> {
    let schedule = config.schedule();
    let scheduled = schedule.scheduled(epoch).map_err(core_error)?;
    require!(allocation <= scheduled, BackhaulError::ExceedsEpochEmission);
    let budget = schedule
        .budget(epoch, config.total_minted)
        .map_err(core_error)?;
    require!(allocation <= budget, BackhaulError::ExceedsLifetimeCap);
    Ok(budget)
}
