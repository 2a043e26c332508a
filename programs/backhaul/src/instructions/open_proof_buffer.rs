use crate::constants::*;
use crate::error::BackhaulError;
use crate::events::ProofBufferOpened;
use crate::state::*;
use anchor_lang::prelude::*;

#[event_cpi]
#[derive(Accounts)]
#[instruction(id: u64)]
pub struct OpenProofBuffer<'info> {
    /// Opens the buffer and pays its rent; the only signer that may write, consume or close it.
    #[account(mut)]
    pub owner: Signer<'info>,
    pub config: Box<Account<'info, Config>>,
    /// CHECK: created here at the PDA `["proof", config, owner, id]` (checked by the seeds).
    #[account(
        mut,
        seeds = [PROOF_BUFFER_SEED, config.key().as_ref(), owner.key().as_ref(), &id.to_le_bytes()],
        bump,
    )]
    pub buffer: UncheckedAccount<'info>,
    pub system_program: Program<'info, System>,
}

/// Opens a proof buffer of `len` payload bytes, all zero, for proofs that do not fit one
/// transaction. Works while paused (a fraud proof must be possible whenever a proposal can be
/// challenged).
///
/// Checks: `len` is 1 to [`MAX_PROOF_BUFFER_LEN`]; no account at the address yet.
pub fn handler(ctx: Context<OpenProofBuffer>, id: u64, len: u32) -> Result<()> {
    let space = ProofBuffer::space(len)?;
    let config = ctx.accounts.config.key();
    let owner = ctx.accounts.owner.key();
    let info = ctx.accounts.buffer.to_account_info();
    let id_bytes = id.to_le_bytes();
    let bump = ctx.bumps.buffer;
    let seeds: &[&[u8]] = &[
        PROOF_BUFFER_SEED,
        config.as_ref(),
        owner.as_ref(),
        &id_bytes,
        &[bump],
    ];
    pda::create_pda(
        &info,
        &ctx.accounts.owner.to_account_info(),
        &ctx.accounts.system_program.to_account_info(),
        seeds,
        space,
        ctx.program_id,
    )?;
    let buffer = ProofBuffer {
        config,
        owner,
        id,
        bump,
        len,
    };
    pda::store(&buffer, &info)?;
    require!(info.data_len() == space, BackhaulError::InvariantViolated);
    emit_cpi!(ProofBufferOpened {
        config,
        owner,
        id,
        len,
    });
    Ok(())
}
