//! Events, emitted through `emit_cpi!` so that log truncation cannot drop them. Together they carry
//! every figure needed to rebuild the deployment's totals without reading account state.

use crate::state::{EmissionParams, EpochProposal};
use anchor_lang::prelude::*;

#[event]
pub struct ConfigInitialized {
    pub config: Pubkey,
    pub mint: Pubkey,
    pub vault: Pubkey,
    pub admin: Pubkey,
    pub guardian: Pubkey,
    pub oracles: Vec<Pubkey>,
    pub threshold: u8,
    pub genesis_ts: i64,
    pub epoch_length_secs: u64,
    pub challenge_period_secs: u64,
    pub emission: EmissionParams,
    pub rate_window_secs: u64,
    pub rate_capacity: u64,
}

#[event]
pub struct RootVoted {
    pub config: Pubkey,
    pub epoch: u64,
    pub round: u32,
    pub oracle: Pubkey,
    pub digest: [u8; 32],
    pub proposal: EpochProposal,
    /// Votes from current oracles for this digest, including this one.
    pub votes_for_digest: u8,
    pub threshold: u8,
    /// Whether a different proposal already holds quorum in this round.
    pub disagrees_with_quorum: bool,
}

#[event]
pub struct RootProposed {
    pub config: Pubkey,
    pub epoch: u64,
    pub round: u32,
    pub digest: [u8; 32],
    pub proposal: EpochProposal,
    pub quorum_at: i64,
    pub finalizable_at: i64,
}

#[event]
pub struct EpochVetoed {
    pub config: Pubkey,
    pub epoch: u64,
    pub round: u32,
    pub guardian: Pubkey,
    /// Digest of the vetoed proposal, zero when no proposal had quorum yet.
    pub digest: [u8; 32],
}

#[event]
pub struct EpochFinalized {
    pub config: Pubkey,
    pub epoch: u64,
    pub digest: [u8; 32],
    pub proposal: EpochProposal,
    /// Tokens minted into the vault (the allocation).
    pub minted: u64,
    /// The epoch's budget under the schedule and lifetime cap.
    pub budget: u64,
    /// Everything minted for rewards after this epoch.
    pub total_minted: u64,
    pub finalized_at: i64,
}

#[event]
pub struct RewardClaimed {
    pub config: Pubkey,
    pub operator: Pubkey,
    pub recipient: Pubkey,
    /// The epoch whose root proved the leaf.
    pub epoch: u64,
    pub cumulative: u64,
    /// Paid by this claim.
    pub amount: u64,
    /// Everything ever paid out by claims after this one.
    pub total_claimed: u64,
}

#[event]
pub struct ParamsUpdated {
    pub config: Pubkey,
    pub challenge_period_secs: u64,
    pub emission: EmissionParams,
    pub rate_window_secs: u64,
    pub rate_capacity: u64,
}

#[event]
pub struct OraclesSet {
    pub config: Pubkey,
    pub oracles: Vec<Pubkey>,
    pub threshold: u8,
}

#[event]
pub struct GuardianSet {
    pub config: Pubkey,
    pub old_guardian: Pubkey,
    pub new_guardian: Pubkey,
}

#[event]
pub struct AdminProposed {
    pub config: Pubkey,
    pub admin: Pubkey,
    pub pending_admin: Pubkey,
}

#[event]
pub struct AdminAccepted {
    pub config: Pubkey,
    pub old_admin: Pubkey,
    pub new_admin: Pubkey,
}

#[event]
pub struct PausedSet {
    pub config: Pubkey,
    pub by: Pubkey,
    pub paused: bool,
}
