use crate::error::BackhaulError;
use anchor_lang::prelude::*;

/// The lamports an oracle put up to vote: `["bond", config, oracle]`. The bond is the account's
/// balance above its rent-exempt minimum. While the config asks for a bond, an oracle votes only
/// with at least that much bonded and not unbonding; a fraud proof against a digest it voted
/// slashes all of it.
#[account]
#[derive(InitSpace, Debug)]
pub struct OracleBond {
    /// The deployment.
    pub config: Pubkey,
    /// The oracle whose votes the bond stands behind.
    pub oracle: Pubkey,
    /// PDA bump of `["bond", config, oracle]`.
    pub bump: u8,
    /// When the oracle asked to withdraw (0 while bonded). From then on it cannot vote.
    pub unbonding_at: i64,
    /// The earliest withdrawal: `unbonding_at` plus two challenge periods as they stood then (a
    /// vote cast before `unbonding_at` reaches quorum within one challenge period and can be
    /// proven fraudulent during the next). Withdrawing also waits two of the current challenge
    /// periods, should governance have lengthened it since.
    pub withdrawable_at: i64,
    /// Lamports slashed from this bond so far.
    pub slashed: u64,
}

impl OracleBond {
    pub const SIZE: usize = 8 + OracleBond::INIT_SPACE;

    /// The bond: the account's lamports above its rent-exempt minimum.
    pub fn bonded(info: &AccountInfo) -> Result<u64> {
        let rent = Rent::get()?.minimum_balance(info.data_len());
        Ok(info.lamports().saturating_sub(rent))
    }

    /// When a bond that started unbonding at `unbonding_at` may be withdrawn under a challenge
    /// period of `challenge_period_secs`.
    pub fn unlock_time(unbonding_at: i64, challenge_period_secs: u64) -> Result<i64> {
        let twice = challenge_period_secs
            .checked_mul(2)
            .and_then(|t| i64::try_from(t).ok())
            .ok_or(BackhaulError::Overflow)?;
        unbonding_at
            .checked_add(twice)
            .ok_or(BackhaulError::Overflow.into())
    }
}
