use crate::error::BackhaulError;
use crate::state::*;
use anchor_lang::prelude::*;

#[derive(Accounts)]
pub struct WriteProofBuffer<'info> {
    pub owner: Signer<'info>,
    /// One of the owner's buffers (the program creates them only at their PDA, so the owner and
    /// deployment they name identify them).
    #[account(mut, has_one = owner)]
    pub buffer: Box<Account<'info, ProofBuffer>>,
}

/// Writes `bytes` into the buffer's payload at `offset`. Writes may come in any order and may
/// overwrite each other; the consuming instruction reads the payload as it stands.
///
/// Checks: the owner signs; `offset + bytes.len()` is within the payload.
pub fn handler(ctx: Context<WriteProofBuffer>, offset: u32, bytes: Vec<u8>) -> Result<()> {
    let info = ctx.accounts.buffer.to_account_info();
    let len = usize::try_from(ctx.accounts.buffer.len).map_err(|_| BackhaulError::Overflow)?;
    let offset = usize::try_from(offset).map_err(|_| BackhaulError::Overflow)?;
    let end = offset
        .checked_add(bytes.len())
        .filter(|end| *end <= len)
        .ok_or(BackhaulError::InvalidProofBuffer)?;
    let start = ProofBuffer::HEADER
        .checked_add(offset)
        .ok_or(BackhaulError::Overflow)?;
    let stop = ProofBuffer::HEADER
        .checked_add(end)
        .ok_or(BackhaulError::Overflow)?;
    let mut data = info.try_borrow_mut_data()?;
    data.get_mut(start..stop)
        .ok_or(BackhaulError::InvalidProofBuffer)?
        .copy_from_slice(&bytes);
    Ok(())
}
