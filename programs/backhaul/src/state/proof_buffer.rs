//! Proof buffers: proofs too large for one transaction are written into an account over several
//! transactions, then consumed (and the account closed) by the instruction that checks them.

use crate::constants::MAX_PROOF_BUFFER_LEN;
use crate::error::BackhaulError;
use anchor_lang::prelude::*;

/// `["proof", config, owner, id]`: a header, then `len` bytes of payload (the borsh encoding of
/// what the consuming instruction reads). Only the owner writes it, consumes it or closes it, and
/// the rent goes back to the owner when it is closed or consumed.
#[account]
#[derive(InitSpace, Debug)]
pub struct ProofBuffer {
    /// The deployment.
    pub config: Pubkey,
    /// Who opened it: the only signer that may write, consume or close it.
    pub owner: Pubkey,
    /// The owner's number for it (several buffers may be open at once).
    pub id: u64,
    /// PDA bump.
    pub bump: u8,
    /// Payload length, bytes.
    pub len: u32,
}

impl ProofBuffer {
    /// Where the payload starts in the account's data.
    pub const HEADER: usize = 8 + ProofBuffer::INIT_SPACE;

    /// The account size for a payload of `len` bytes (at most [`MAX_PROOF_BUFFER_LEN`]).
    pub fn space(len: u32) -> Result<usize> {
        require!(
            len > 0 && len <= MAX_PROOF_BUFFER_LEN,
            BackhaulError::InvalidProofBuffer
        );
        let len = usize::try_from(len).map_err(|_| BackhaulError::Overflow)?;
        Self::HEADER
            .checked_add(len)
            .ok_or(BackhaulError::Overflow.into())
    }

    /// The payload decoded as `T`, which must take exactly `len` bytes.
    pub fn decode<T: AnchorDeserialize>(&self, info: &AccountInfo) -> Result<T> {
        let data = info.try_borrow_data()?;
        let len = usize::try_from(self.len).map_err(|_| BackhaulError::Overflow)?;
        let end = Self::HEADER
            .checked_add(len)
            .ok_or(BackhaulError::Overflow)?;
        let mut payload = data
            .get(Self::HEADER..end)
            .ok_or(BackhaulError::InvalidProofBuffer)?;
        let value = T::deserialize(&mut payload).map_err(|_| BackhaulError::MalformedProof)?;
        require!(payload.is_empty(), BackhaulError::MalformedProof);
        Ok(value)
    }
}

/// What a proof buffer holds for `claim_from_buffer` and `settle_from_buffer`: the leaf's index
/// and its siblings from the leaf level up (what `claim` and `settle_usage` take as arguments).
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct BufferedProof {
    pub index: u64,
    pub siblings: Vec<crate::state::ProofNode>,
}
