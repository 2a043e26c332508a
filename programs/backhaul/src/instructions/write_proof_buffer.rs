use crate::constants::PROOF_BUFFER_SEED;
use crate::error::BackhaulError;
use crate::state::*;
use anchor_lang::prelude::*;

#[derive(Accounts)]
#[instruction(id: u64)]
pub struct WriteProofBuffer<'info> {
    pub owner: Signer<'info>,
    /// CHECK: only a key: the deployment the buffer names (`has_one` on the buffer).
    pub config: UncheckedAccount<'info>,
    /// The owner's buffer `id`.
    #[account(
        mut,
        seeds = [PROOF_BUFFER_SEED, config.key().as_ref(), owner.key().as_ref(), &id.to_le_bytes()],
        bump = buffer.bump,
        has_one = owner,
        has_one = config,
    )]
    pub buffer: Box<Account<'info, ProofBuffer>>,
}

/// Writes `bytes` into the buffer's payload at `offset`. Writes may come in any order and may
/// overwrite each other; the consuming instruction reads the payload as it stands.
///
/// Checks: the owner signs; `offset + bytes.len()` is within the payload.
pub fn handler(
    ctx: Context<WriteProofBuffer>,
    _id: u64,
    offset: u32,
    bytes: Vec<u8>,
) -> Result<()> {
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
