use anchor_lang::prelude::*;

/// How much one operator has claimed, created on its first claim.
#[account]
#[derive(InitSpace, Debug)]
pub struct OperatorClaim {
    /// The deployment.
    pub config: Pubkey,
    /// The operator (reward recipient) this record belongs to.
    pub operator: Pubkey,
    /// Cumulative amount paid so far; a claim pays its leaf's cumulative amount minus this.
    pub claimed: u64,
    /// The epoch of the proof used by the last claim.
    pub last_epoch: u64,
    /// PDA bump of `["claim", config, operator]`.
    pub bump: u8,
}

impl OperatorClaim {
    pub const SIZE: usize = 8 + OperatorClaim::INIT_SPACE;
}
