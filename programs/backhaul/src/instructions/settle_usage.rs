use crate::constants::*;
use crate::error::BackhaulError;
use crate::events::UsageSettled;
use crate::state::*;
use anchor_lang::prelude::*;
use backhaul_core::merkle::TreeKind;

#[event_cpi]
#[derive(Accounts)]
#[instruction(epoch: u64)]
pub struct SettleUsage<'info> {
    /// Anyone; pays for the buyer's credit account if usage was proven for a buyer without one.
    #[account(mut)]
    pub payer: Signer<'info>,
    #[account(mut)]
    pub config: Box<Account<'info, Config>>,
    /// The record of `epoch`, a finalized epoch whose usage tree holds the buyer's leaf.
    #[account(
        seeds = [EPOCH_SEED, config.key().as_ref(), &epoch.to_le_bytes()],
        bump = epoch_record.bump,
        has_one = config,
    )]
    pub epoch_record: Box<Account<'info, EpochRecord>>,
    /// That epoch's ledger.
    #[account(
        mut,
        seeds = [LEDGER_SEED, config.key().as_ref(), &epoch.to_le_bytes()],
        bump = ledger.bump,
    )]
    pub ledger: Box<Account<'info, EpochLedger>>,
    /// CHECK: only a key: it names the leaf and the credit account.
    pub buyer: UncheckedAccount<'info>,
    /// The buyer's credits (`CreditAccount`), created if usage was proven for a buyer without
    /// one, also at an address someone sent lamports to first.
    /// CHECK: the address is checked by the seeds, the contents when the handler loads them.
    #[account(
        mut,
        seeds = [CREDITS_SEED, config.key().as_ref(), buyer.key().as_ref()],
        bump,
    )]
    pub credit_account: UncheckedAccount<'info>,
    pub system_program: Program<'info, System>,
}

/// Debits a buyer's proven consumption from its credits.
///
/// Effects: `delta = consumed_cumulative − already settled`; debits `min(delta, balance)`; records
/// the rest as unpaid (over-consumption is never hidden and never takes the balance below zero);
/// adds both to the epoch's ledger and the deployment's totals.
///
/// Checks: not paused; the epoch is finalized; the proof (the leaf's `index` and at most 32
/// siblings, each a hash and a sum) links the leaf `(buyer, consumed_cumulative)` of this
/// deployment and epoch to the epoch's usage root, through a top whose sum is the epoch's declared
/// usage total over its declared leaf count; the
/// cumulative amount is above what was already settled (so nothing is ever debited twice, and
/// proofs from older epochs settle nothing).
///
/// `epoch` names the epoch whose proof is used; the accounts' seeds check that `epoch_record` and
/// `ledger` are its own, so clients derive both addresses from the argument.
pub fn handler(
    ctx: Context<SettleUsage>,
    _epoch: u64,
    consumed_cumulative: u64,
    index: u64,
    proof: Vec<ProofNode>,
) -> Result<()> {
    let a = &mut *ctx.accounts;
    let event = settle(
        Settlement {
            payer: a.payer.to_account_info(),
            config: &mut a.config,
            epoch_record: &a.epoch_record,
            ledger: &mut a.ledger,
            buyer: a.buyer.key(),
            credit_account: a.credit_account.to_account_info(),
            credit_bump: ctx.bumps.credit_account,
            system_program: a.system_program.to_account_info(),
        },
        ctx.program_id,
        consumed_cumulative,
        index,
        &proof,
    )?;
    emit_cpi!(event);
    Ok(())
}

/// The accounts a settlement works on, whether its proof came in the instruction or a buffer.
pub(crate) struct Settlement<'a, 'info> {
    pub payer: AccountInfo<'info>,
    pub config: &'a mut Account<'info, Config>,
    pub epoch_record: &'a EpochRecord,
    pub ledger: &'a mut Account<'info, EpochLedger>,
    pub buyer: Pubkey,
    /// Checked by its seeds (`bump`) in the accounts struct.
    pub credit_account: AccountInfo<'info>,
    pub credit_bump: u8,
    pub system_program: AccountInfo<'info>,
}

/// Checks the proof and settles (see [`handler`]); returns the event to emit.
pub(crate) fn settle(
    a: Settlement,
    program_id: &Pubkey,
    consumed_cumulative: u64,
    index: u64,
    proof: &[ProofNode],
) -> Result<UsageSettled> {
    let record = a.epoch_record;
    let buyer = a.buyer;
    require!(
        !a.config.is_paused(Clock::get()?.unix_timestamp),
        BackhaulError::Paused
    );
    require!(
        record.status == EpochStatus::Finalized,
        BackhaulError::EpochNotFinalized
    );
    let config_key = a.config.key();
    let p = &record.proposal;
    check_leaf(
        &TreeCommitment {
            kind: TreeKind::Usage,
            root: p.usage_root,
            total: p.usage_total,
            leaf_count: p.usage_leaf_count,
        },
        &config_key,
        record.epoch,
        &buyer,
        consumed_cumulative,
        index,
        proof,
    )?;
    let epoch = record.epoch;

    let credit_info = a.credit_account;
    let mut account = CreditAccount::load_or_create(
        &credit_info,
        &a.payer,
        &a.system_program,
        &config_key,
        &buyer,
        a.credit_bump,
        program_id,
    )?;
    let delta = consumed_cumulative
        .checked_sub(account.consumed_cumulative)
        .filter(|d| *d > 0)
        .ok_or(BackhaulError::NothingToSettle)?;
    let debited = delta.min(account.balance);
    let unpaid = delta.saturating_sub(debited);
    account.balance = account.balance.saturating_sub(debited);
    account.settled = account
        .settled
        .checked_add(debited)
        .ok_or(BackhaulError::Overflow)?;
    account.unpaid = account
        .unpaid
        .checked_add(unpaid)
        .ok_or(BackhaulError::Overflow)?;
    account.consumed_cumulative = consumed_cumulative;
    account.last_settled_epoch = epoch;
    let balance = account.balance;
    pda::store(&*account, &credit_info)?;

    let ledger = a.ledger;
    ledger.credits_settled = ledger
        .credits_settled
        .checked_add(debited)
        .ok_or(BackhaulError::Overflow)?;
    ledger.credits_unpaid = ledger
        .credits_unpaid
        .checked_add(unpaid)
        .ok_or(BackhaulError::Overflow)?;

    let config = a.config;
    config.credits_settled = config
        .credits_settled
        .checked_add(debited)
        .ok_or(BackhaulError::Overflow)?;
    config.credits_unpaid = config
        .credits_unpaid
        .checked_add(unpaid)
        .ok_or(BackhaulError::Overflow)?;
    config.invariant()?;
    Ok(UsageSettled {
        config: config_key,
        buyer,
        epoch,
        consumed_cumulative,
        debited,
        unpaid,
        balance,
        credits_settled: config.credits_settled,
        credits_unpaid: config.credits_unpaid,
    })
}
