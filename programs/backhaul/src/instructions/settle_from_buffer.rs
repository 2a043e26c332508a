use crate::constants::*;
use crate::error::BackhaulError;
use crate::instructions::settle_usage::{settle, Settlement};
use crate::state::*;
use anchor_lang::prelude::*;

/// `settle_usage`'s accounts, and the payer's proof buffer holding the proof.
#[event_cpi]
#[derive(Accounts)]
#[instruction(epoch: u64, consumed_cumulative: u64, buffer_id: u64)]
pub struct SettleFromBuffer<'info> {
    /// Anyone; owns the buffer and gets its rent back.
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
    /// The buyer's credits (`CreditAccount`), created if it has none.
    /// CHECK: the address is checked by the seeds, the contents when the handler loads them.
    #[account(
        mut,
        seeds = [CREDITS_SEED, config.key().as_ref(), buyer.key().as_ref()],
        bump,
    )]
    pub credit_account: UncheckedAccount<'info>,
    /// The payer's proof buffer `buffer_id` holding a `BufferedProof`; consumed and closed.
    #[account(
        mut,
        seeds = [PROOF_BUFFER_SEED, config.key().as_ref(), payer.key().as_ref(), &buffer_id.to_le_bytes()],
        bump = buffer.bump,
        has_one = config,
        constraint = buffer.owner == payer.key() @ BackhaulError::InvalidProofBuffer,
        close = payer,
    )]
    pub buffer: Box<Account<'info, ProofBuffer>>,
    pub system_program: Program<'info, System>,
}

/// `settle_usage` with the proof (index and siblings) read from a proof buffer. Same effects and
/// checks as `settle_usage`; the buffer is closed, its rent back to the payer.
pub fn handler(
    ctx: Context<SettleFromBuffer>,
    _epoch: u64,
    consumed_cumulative: u64,
    _buffer_id: u64,
) -> Result<()> {
    let proof: BufferedProof = ctx
        .accounts
        .buffer
        .decode(&ctx.accounts.buffer.to_account_info())?;
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
        proof.index,
        &proof.siblings,
    )?;
    emit_cpi!(event);
    Ok(())
}
