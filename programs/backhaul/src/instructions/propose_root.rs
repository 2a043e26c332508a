use crate::constants::*;
use crate::error::{core_error, BackhaulError};
use crate::events::{RootProposed, RootVoted, RoundExpired};
use crate::state::*;
use anchor_lang::prelude::*;
use backhaul_core::epoch::epoch_end;
use backhaul_core::merkle::{proposal_digest, TreeKind};
use backhaul_core::sum_tree::{depth, empty_root};

#[event_cpi]
#[derive(Accounts)]
#[instruction(epoch: u64)]
pub struct ProposeRoot<'info> {
    /// An oracle of the current set; pays for the epoch record on the first vote.
    #[account(mut)]
    pub oracle: Signer<'info>,
    pub config: Box<Account<'info, Config>>,
    /// The epoch's votes and status (`EpochRecord`), created on the first vote, also at an
    /// address someone sent lamports to first.
    /// CHECK: the address is checked by the seeds, the contents when the handler loads them.
    #[account(
        mut,
        seeds = [EPOCH_SEED, config.key().as_ref(), &epoch.to_le_bytes()],
        bump,
    )]
    pub epoch_record: UncheckedAccount<'info>,
    /// The epoch's ledger, sealed: the budget is computed from it.
    #[account(
        seeds = [LEDGER_SEED, config.key().as_ref(), &epoch.to_le_bytes()],
        bump = ledger.bump,
        constraint = ledger.sealed @ BackhaulError::LedgerNotSealed,
    )]
    pub ledger: Box<Account<'info, EpochLedger>>,
    /// The oracle's bond, `["bond", config, oracle]`; read only when the config asks for a bond.
    /// CHECK: when read, checked by its contents (owner, type, deployment, oracle: the program
    /// creates bonds only at their PDA); its seeds are stated for clients, in the IDL build.
    #[cfg_attr(
        feature = "idl-build",
        account(seeds = [BOND_SEED, config.key().as_ref(), oracle.key().as_ref()], bump)
    )]
    pub bond: UncheckedAccount<'info>,
    pub system_program: Program<'info, System>,
}

/// Records one oracle's vote for `proposal` in `epoch`.
///
/// Effects: creates the epoch record on the first vote; after a veto, or when the current round
/// began a challenge period ago without reaching quorum, starts a new round (clears the votes);
/// appends the vote; when `threshold` current oracles voted for the same digest, stores
/// the proposal, moves the epoch to `Proposed` and sets `finalizable_at = now + challenge period`.
/// A vote that arrives after quorum is recorded (and flagged in its event) but changes nothing.
///
/// Checks: not paused; the signer is in the oracle set; when the config asks for a bond, the
/// oracle has at least that much bonded and is not unbonding; `epoch` is the next epoch, has ended by
/// the clock and its ledger is sealed; not finalized; the oracle has not voted in this round; the
/// digest was not vetoed in the previous round nor proven fraudulent; neither root is all zeros; both trees are
/// consistent (total = previous total + this epoch's increase, the leaf count never shrinks, an
/// empty tree has the empty root); the usage tree consumes at most the credits issued through the
/// epoch and its cost is at most the tokens burned for them (`UsageExceedsPurchases`); everything `finalize` will check passes now (the epoch's
/// budget, the mint rate limiter, the totals it leaves), so a proposal with quorum can always be
/// finalized.
pub fn handler(ctx: Context<ProposeRoot>, epoch: u64, proposal: EpochProposal) -> Result<()> {
    let now = Clock::get()?.unix_timestamp;
    let config = &ctx.accounts.config;
    let oracle = ctx.accounts.oracle.key();
    require!(!config.is_paused(now), BackhaulError::Paused);
    require!(config.is_oracle(&oracle), BackhaulError::NotOracle);
    require!(epoch == config.next_epoch, BackhaulError::EpochOutOfOrder);
    let end = epoch_end(config.genesis_ts, config.epoch_length_secs, epoch).map_err(core_error)?;
    require!(now >= end, BackhaulError::EpochNotEnded);
    check_bond(config, &oracle, &ctx.accounts.bond)?;
    check_proposal(config, &proposal)?;
    check_usage_paid(config, &ctx.accounts.ledger, &proposal)?;
    config.finalize_outcome(
        epoch,
        &ctx.accounts.ledger,
        proposal.allocation,
        proposal.usage_cost,
        now,
    )?;

    let config_key = config.key();
    let record_info = ctx.accounts.epoch_record.to_account_info();
    let epoch_bytes = epoch.to_le_bytes();
    let bump = ctx.bumps.epoch_record;
    let seeds: &[&[u8]] = &[EPOCH_SEED, config_key.as_ref(), &epoch_bytes, &[bump]];
    let (mut record, created) = pda::load_or_create::<EpochRecord>(
        &record_info,
        &ctx.accounts.oracle.to_account_info(),
        &ctx.accounts.system_program.to_account_info(),
        seeds,
        EpochRecord::SIZE,
        ctx.program_id,
    )?;
    if created {
        record.version = ACCOUNT_VERSION;
        record.round_started_at = now;
        record.config = config_key;
        record.epoch = epoch;
        record.bump = bump;
        record.status = EpochStatus::Voting;
    }
    require!(
        record.config == config_key && record.epoch == epoch,
        BackhaulError::InvariantViolated
    );
    match record.status {
        EpochStatus::Finalized => return err!(BackhaulError::AlreadyFinalized),
        EpochStatus::Vetoed => record.start_next_round(now)?,
        EpochStatus::Voting | EpochStatus::Proposed => {}
    }
    // Votes of oracles that have since left the set no longer count, nor take a slot.
    record.votes.retain(|v| config.oracles.contains(&v.oracle));
    if record.status == EpochStatus::Voting {
        let challenge =
            i64::try_from(config.challenge_period_secs).map_err(|_| BackhaulError::Overflow)?;
        let round_ends = record
            .round_started_at
            .checked_add(challenge)
            .ok_or(BackhaulError::Overflow)?;
        if record.votes.is_empty() {
            record.round_started_at = now;
        } else if now >= round_ends {
            // A split vote, or votes for a digest that can no longer reach quorum: start over.
            emit_cpi!(RoundExpired {
                config: config_key,
                epoch,
                round: record.round,
                started_at: record.round_started_at,
            });
            record.start_next_round(now)?;
        }
    }
    require!(
        !record.votes.iter().any(|v| v.oracle == oracle),
        BackhaulError::DoubleVote
    );

    let digest = proposal_digest(&config_key.to_bytes(), epoch, &borsh::to_vec(&proposal)?);
    require!(
        !record.is_banned(&digest, now),
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
    pda::store(&*record, &record_info)
}

/// When the config asks for a bond: the oracle's bond account holds at least that much and is
/// not unbonding.
fn check_bond(config: &Account<Config>, oracle: &Pubkey, info: &AccountInfo) -> Result<()> {
    if config.oracle_bond_lamports == 0 {
        return Ok(());
    }
    require_keys_eq!(*info.owner, crate::ID, BackhaulError::BondRequired);
    let bond = OracleBond::try_deserialize(&mut &info.try_borrow_data()?[..])?;
    require!(
        bond.config == config.key() && bond.oracle == *oracle,
        BackhaulError::BondRequired
    );
    require!(
        bond.unbonding_at == 0 && OracleBond::bonded(info)? >= config.oracle_bond_lamports,
        BackhaulError::BondRequired
    );
    Ok(())
}

/// The usage tree against what buyers bought through the epoch (the finalized epochs' purchases
/// plus this sealed epoch's): cumulative consumption at most the credits issued, its cost at most
/// the tokens burned for them, the cost cumulative (previous total plus this epoch's) and rising
/// only with consumption. So, summed over epochs, allocations never exceed `k` times the tokens
/// buyers burned for credits they consumed.
fn check_usage_paid(config: &Config, ledger: &EpochLedger, p: &EpochProposal) -> Result<()> {
    let expected_cost = config
        .last_usage_cost_total
        .checked_add(p.usage_cost)
        .ok_or(BackhaulError::Overflow)?;
    require!(
        p.usage_cost_total == expected_cost && (p.usage_cost == 0 || p.credits_consumed > 0),
        BackhaulError::InconsistentProposal
    );
    let issued_through = config
        .credits_issued_finalized
        .checked_add(ledger.credits_issued)
        .ok_or(BackhaulError::Overflow)?;
    let burned_through = config
        .burned_finalized
        .checked_add(ledger.tokens_burned)
        .ok_or(BackhaulError::Overflow)?;
    require!(
        p.usage_total <= issued_through && p.usage_cost_total <= burned_through,
        BackhaulError::UsageExceedsPurchases
    );
    Ok(())
}

/// Both trees' internal consistency against the last finalized epoch.
fn check_proposal(config: &Config, p: &EpochProposal) -> Result<()> {
    check_tree(
        TreeCommit {
            kind: TreeKind::Reward,
            root: &p.reward_root,
            leaf_count: p.reward_leaf_count,
            total: p.reward_total,
            increase: p.allocation,
        },
        config.last_reward_total,
        config.last_reward_leaf_count,
    )?;
    check_tree(
        TreeCommit {
            kind: TreeKind::Usage,
            root: &p.usage_root,
            leaf_count: p.usage_leaf_count,
            total: p.usage_total,
            increase: p.credits_consumed,
        },
        config.last_usage_total,
        config.last_usage_leaf_count,
    )
}

struct TreeCommit<'a> {
    kind: TreeKind,
    root: &'a [u8; 32],
    leaf_count: u64,
    total: u64,
    increase: u64,
}

/// A non-zero root; total = previous total + increase; the leaf count never shrinks and is at most
/// 2^32 (the deepest tree a proof may climb); zero leaves exactly when the root is the empty root,
/// with a zero total.
///
/// The program cannot see the leaves, so it cannot check here that they sum to the total. It
/// does not need to: a Merkle-sum root commits to its top's sum, and every claim and settlement is
/// verified against the declared total (`check_leaf`), so a tree whose leaves sum to anything else
/// proves no leaf.
fn check_tree(t: TreeCommit, previous_total: u64, previous_leaf_count: u64) -> Result<()> {
    require!(*t.root != [0u8; 32], BackhaulError::ZeroRoot);
    let expected_total = previous_total
        .checked_add(t.increase)
        .ok_or(BackhaulError::Overflow)?;
    let empty = t.leaf_count == 0;
    let is_empty_root = *t.root == empty_root(t.kind);
    require!(
        t.total == expected_total
            && t.leaf_count >= previous_leaf_count
            && depth(t.leaf_count).is_some()
            && empty == is_empty_root
            && (!empty || t.total == 0),
        BackhaulError::InconsistentProposal
    );
    Ok(())
}
