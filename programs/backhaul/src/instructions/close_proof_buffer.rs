use crate::constants::PROOF_BUFFER_SEED;
use crate::state::*;
use anchor_lang::prelude::*;

#[derive(Accounts)]
#[instruction(id: u64)]
pub struct CloseProofBuffer<'info> {
    /// Receives the rent back.
    #[account(mut)]
    pub owner: Signer<'info>,
    /// CHECK: only a key: the deployment the buffer names (`has_one` on the buffer).
    pub config: UncheckedAccount<'info>,
    /// The owner's buffer `id`, closed.
    #[account(
        mut,
        seeds = [PROOF_BUFFER_SEED, config.key().as_ref(), owner.key().as_ref(), &id.to_le_bytes()],
        bump = buffer.bump,
        has_one = owner,
        has_one = config,
        close = owner,
    )]
    pub buffer: Box<Account<'info, ProofBuffer>>,
}

/// Closes an unused proof buffer, its rent back to its owner (buffers consumed by a proof are
/// closed by that instruction).
pub fn handler(_ctx: Context<CloseProofBuffer>, _id: u64) -> Result<()> {
    Ok(())
}
