//! Events, emitted through `emit_cpi!` so that log truncation cannot drop them. Together they carry
//! every figure needed to rebuild the deployment's totals without reading account state.

use crate::state::{
    ConsensusParams, EconomicsParams, EmissionParams, EpochProposal, GovernanceChange,
};
use anchor_lang::prelude::*;

#[event]
pub struct ConfigInitialized {
    pub config: Pubkey,
    pub mint: Pubkey,
    pub vault: Pubkey,
    pub admin: Pubkey,
    pub guardians: Vec<Pubkey>,
    pub oracles: Vec<Pubkey>,
    pub threshold: u8,
    pub genesis_ts: i64,
    pub epoch_length_secs: u64,
    pub challenge_period_secs: u64,
    pub governance_delay_secs: u64,
    pub emission: EmissionParams,
    pub rate_window_secs: u64,
    pub rate_capacity: u64,
    pub economics: EconomicsParams,
    pub consensus: ConsensusParams,
    pub decimals: u8,
    /// The mint's supply at initialization; token supply = this + minted − burned.
    pub initial_supply: u64,
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
    /// Digest of the vetoed proposal, zero when no proposal had quorum yet; it cannot be voted
    /// in the next round.
    pub digest: [u8; 32],
    /// Vetoes of this epoch so far, this one included (at most `MAX_VETOES_PER_EPOCH`).
    pub vetoes: u8,
}

#[event]
pub struct EpochFinalized {
    pub config: Pubkey,
    pub epoch: u64,
    pub digest: [u8; 32],
    pub proposal: EpochProposal,
    /// Tokens minted into the vault (the allocation).
    pub minted: u64,
    /// The part of `minted` counted against the lifetime cap.
    pub minted_scheduled: u64,
    /// The part of `minted` re-minted from burns.
    pub minted_net: u64,
    /// The epoch's budget.
    pub budget: u64,
    /// Tokens burned for credits during the epoch.
    pub tokens_burned: u64,
    /// The moving average of burns after this epoch.
    pub burn_ema: u64,
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
pub struct PriceSubmitted {
    pub config: Pubkey,
    pub oracle: Pubkey,
    pub credits_per_token: u64,
    /// Fresh submissions from current oracles, including this one.
    pub fresh_submissions: u8,
}

#[event]
pub struct PriceUpdated {
    pub config: Pubkey,
    pub previous_credits_per_token: u64,
    /// The posted price: `median`, or the edge of the band it lay beyond.
    pub credits_per_token: u64,
    /// The median of the quorum's fresh submissions.
    pub median: u64,
    pub posted_at: i64,
}

#[event]
pub struct CreditsPurchased {
    pub config: Pubkey,
    pub payer: Pubkey,
    pub buyer: Pubkey,
    /// The epoch (by the clock) whose ledger records the burn.
    pub epoch: u64,
    pub tokens_burned: u64,
    pub credits: u64,
    pub credits_per_token: u64,
    /// The buyer's balance after the purchase.
    pub balance: u64,
    pub total_burned: u64,
    pub credits_issued: u64,
}

#[event]
pub struct EpochSealed {
    pub config: Pubkey,
    pub epoch: u64,
    pub tokens_burned: u64,
    pub credits_issued: u64,
    /// The price that values the epoch's consumption, as recorded in the ledger: the posted price
    /// when it was fresh, else 0 (no usage value).
    pub credits_per_token: u64,
    /// The posted price when sealed, fresh or not (0 if none was ever posted).
    pub posted_credits_per_token: u64,
    /// Whether the posted price was usable for purchases when sealed.
    pub price_fresh: bool,
    pub price_posted_at: i64,
    pub sealed_at: i64,
}

#[event]
pub struct UsageSettled {
    pub config: Pubkey,
    pub buyer: Pubkey,
    /// The epoch whose usage root proved the leaf.
    pub epoch: u64,
    pub consumed_cumulative: u64,
    /// Debited from the balance.
    pub debited: u64,
    /// Consumption beyond the balance, recorded as unpaid.
    pub unpaid: u64,
    /// The buyer's balance after settlement.
    pub balance: u64,
    pub credits_settled: u64,
    pub credits_unpaid: u64,
}

#[event]
pub struct ChangeQueued {
    pub config: Pubkey,
    pub id: u64,
    pub queued_by: Pubkey,
    pub executable_at: i64,
    pub change: GovernanceChange,
}

#[event]
pub struct ChangeCancelled {
    pub config: Pubkey,
    pub id: u64,
    pub cancelled_by: Pubkey,
}

#[event]
pub struct ChangeApplied {
    pub config: Pubkey,
    pub id: u64,
    pub change: GovernanceChange,
    /// The first epoch whose budget and dataset the new parameters decide, for a change of budget
    /// or consensus parameters.
    pub from_epoch: Option<u64>,
}

#[event]
pub struct RoundExpired {
    pub config: Pubkey,
    pub epoch: u64,
    /// The round that ended without quorum; the vote that noticed starts the next one.
    pub round: u32,
    pub started_at: i64,
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
    /// The pause ends at this time unless lifted earlier (the time it was lifted when unpausing).
    pub paused_until: i64,
    /// Nobody may pause again before this time.
    pub pause_available_at: i64,
}

#[event]
pub struct FraudProven {
    pub config: Pubkey,
    pub epoch: u64,
    pub round: u32,
    /// Who sent the proof; paid the bounty.
    pub prover: Pubkey,
    /// The refuted digest: never accepted again for this epoch.
    pub digest: [u8; 32],
    /// 0 a decreased cumulative amount, 1 leaves out of order, 2 usage beyond the credits bought.
    pub kind: u8,
    /// The oracles that voted the digest, whose bonds were slashed.
    pub voters: Vec<Pubkey>,
    /// Lamports slashed from their bonds together.
    pub slashed: u64,
    /// The prover's share of them (`FRAUD_BOUNTY_BPS`); the rest stays in the config account.
    pub bounty: u64,
}

#[event]
pub struct BondDeposited {
    pub config: Pubkey,
    pub oracle: Pubkey,
    pub amount: u64,
    /// The bond after the deposit.
    pub bonded: u64,
}

#[event]
pub struct BondUnbonding {
    pub config: Pubkey,
    pub oracle: Pubkey,
    pub bonded: u64,
    pub withdrawable_at: i64,
}

#[event]
pub struct BondWithdrawn {
    pub config: Pubkey,
    pub oracle: Pubkey,
    /// Every lamport of the closed bond account, its rent included.
    pub amount: u64,
}

#[event]
pub struct ProofBufferOpened {
    pub config: Pubkey,
    pub owner: Pubkey,
    pub id: u64,
    pub len: u32,
}
