use crate::constants::{MAX_ORACLES, MAX_REFUTED_DIGESTS};
use anchor_lang::prelude::*;

/// What oracles vote on for one epoch.
#[derive(
    AnchorSerialize, AnchorDeserialize, Clone, Copy, Debug, Default, PartialEq, Eq, InitSpace,
)]
pub struct EpochProposal {
    /// Root of the reward tree (operator, cumulative tokens).
    pub reward_root: [u8; 32],
    /// Leaves in the reward tree.
    pub reward_leaf_count: u64,
    /// Sum of all cumulative amounts in the reward tree.
    pub reward_total: u64,
    /// What this epoch adds for all operators together: `reward_total` minus the previous one.
    pub allocation: u64,
    /// sha256 of the epoch's published dataset.
    pub dataset_hash: [u8; 32],
    /// Root of the usage tree (buyer, cumulative credits consumed).
    pub usage_root: [u8; 32],
    /// Leaves in the usage tree.
    pub usage_leaf_count: u64,
    /// Sum of all cumulative amounts in the usage tree.
    pub usage_total: u64,
    /// Credits consumed in this epoch by all buyers: `usage_total` minus the previous one.
    pub credits_consumed: u64,
    /// What all consumption in the usage tree cost its buyers, in tokens (each buyer's credits
    /// valued at what it paid for them; `backhaul_core::cost`). At most the tokens burned for
    /// credits through the epoch.
    pub usage_cost_total: u64,
    /// What this epoch's consumption cost: `usage_cost_total` minus the previous one. The epoch's
    /// allocation is at most `k` times it.
    pub usage_cost: u64,
}

/// Where an epoch stands.
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Copy, Debug, PartialEq, Eq, InitSpace)]
pub enum EpochStatus {
    /// Votes are being collected; no proposal has quorum yet.
    Voting,
    /// A proposal reached quorum; it can be finalized after `finalizable_at` unless vetoed.
    Proposed,
    /// Rewards are minted and claimable.
    Finalized,
    /// A guardian vetoed, or a fraud proof refuted the proposal; the next vote starts a new
    /// round.
    Vetoed,
}

/// One oracle's vote: the digest of the proposal it voted for.
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Copy, Debug, PartialEq, Eq, InitSpace)]
pub struct Vote {
    pub oracle: Pubkey,
    pub digest: [u8; 32],
}

/// One epoch: its votes, the proposal that reached quorum, and its status.
#[account]
#[derive(InitSpace, Debug)]
pub struct EpochRecord {
    /// The deployment; first, like in every account of a deployment, so that one `memcmp` at
    /// offset 8 finds them all.
    pub config: Pubkey,
    /// Layout version (`ACCOUNT_VERSION`).
    pub version: u8,
    /// The epoch number.
    pub epoch: u64,
    /// PDA bump of `["epoch", config, epoch]`.
    pub bump: u8,
    pub status: EpochStatus,
    /// Incremented each time a veto or an expired round restarts the vote.
    pub round: u32,
    /// When the current round's first vote arrived; a round without quorum ends a challenge
    /// period later.
    pub round_started_at: i64,
    /// Vetoes of this epoch so far.
    pub vetoes: u8,
    /// Votes of the current round.
    #[max_len(MAX_ORACLES)]
    pub votes: Vec<Vote>,
    /// The proposal that reached quorum (zero until then).
    pub proposal: EpochProposal,
    /// Digest of `proposal`.
    pub proposal_digest: [u8; 32],
    /// Digest of the last vetoed proposal; it cannot be voted before `banned_until`.
    pub vetoed_digest: [u8; 32],
    /// One challenge period after the veto: until then `vetoed_digest` is refused, after that the
    /// oracles (which close deterministically) may vote it again.
    pub banned_until: i64,
    /// When the proposal reached quorum.
    pub quorum_at: i64,
    /// When the proposal became (or becomes) finalizable: quorum plus the challenge period.
    pub finalizable_at: i64,
    /// When it was finalized.
    pub finalized_at: i64,
    /// Digests proven fraudulent (`prove_fraud`), oldest first, refused for good; one more than
    /// [`MAX_REFUTED_DIGESTS`] replaces the oldest. (A list rather than a fixed array, so that
    /// the instructions that load a record without refutations decode four bytes, not 256.)
    #[max_len(MAX_REFUTED_DIGESTS)]
    pub refuted: Vec<[u8; 32]>,
}

impl EpochRecord {
    pub const SIZE: usize = 8 + EpochRecord::INIT_SPACE;

    /// Whether `digest` was vetoed less than a challenge period before `now`, or proven
    /// fraudulent.
    pub fn is_banned(&self, digest: &[u8; 32], now: i64) -> bool {
        *digest != [0u8; 32]
            && ((*digest == self.vetoed_digest && now < self.banned_until)
                || self.is_refuted(digest))
    }

    /// Whether a fraud proof refuted `digest`.
    pub fn is_refuted(&self, digest: &[u8; 32]) -> bool {
        self.refuted.iter().any(|d| d == digest)
    }

    /// Records `digest` as refuted (dropping the oldest when [`MAX_REFUTED_DIGESTS`] are kept)
    /// and stops the proposal: the epoch is `Vetoed` (the next vote starts a new round) without
    /// using up one of the guardians' vetoes.
    pub fn refute(&mut self, digest: [u8; 32]) -> Result<()> {
        if self.refuted.len() >= usize::from(MAX_REFUTED_DIGESTS) {
            self.refuted.remove(0);
        }
        self.refuted.push(digest);
        self.status = EpochStatus::Vetoed;
        self.proposal = EpochProposal::default();
        self.proposal_digest = [0u8; 32];
        self.quorum_at = 0;
        self.finalizable_at = 0;
        Ok(())
    }

    /// Clears the votes and any proposal and starts round `round + 1` at `now`.
    pub fn start_next_round(&mut self, now: i64) -> Result<()> {
        self.round = self
            .round
            .checked_add(1)
            .ok_or(crate::error::BackhaulError::Overflow)?;
        self.votes.clear();
        self.status = EpochStatus::Voting;
        self.proposal = EpochProposal::default();
        self.proposal_digest = [0u8; 32];
        self.quorum_at = 0;
        self.finalizable_at = 0;
        self.round_started_at = now;
        Ok(())
    }
}
