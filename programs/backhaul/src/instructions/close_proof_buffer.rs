use crate::state::*;
use anchor_lang::prelude::*;

#[derive(Accounts)]
pub struct CloseProofBuffer<'info> {
    /// Receives the rent back.
    #[account(mut)]
    pub owner: Signer<'info>,
    /// One of the owner's buffers, closed.
    #[account(mut, has_one = owner, close = owner)]
    pub buffer: Box<Account<'info, ProofBuffer>>,
}

/// Closes an unused proof buffer, its rent back to its owner (buffers consumed by a proof are
/// closed by that instruction).
pub fn handler(_ctx: Context<CloseProofBuffer>) -> Result<()> {
    Ok(())
}
