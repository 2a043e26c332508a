//! Every way an instruction can refuse, one variant per check.

use anchor_lang::prelude::*;
use backhaul_core::CoreError;

#[error_code]
pub enum BackhaulError {
    #[msg("The signer is not the program's upgrade authority")]
    NotUpgradeAuthority,
    #[msg("The signer is not the admin")]
    NotAdmin,
    #[msg("The signer is not the pending admin")]
    NotPendingAdmin,
    #[msg("No admin transfer is pending")]
    NoPendingAdmin,
    #[msg("The signer is not one of the guardians")]
    NotGuardian,
    #[msg("The signer is neither the admin nor a guardian")]
    NotAdminOrGuardian,
    #[msg("The signer is not in the oracle set")]
    NotOracle,
    #[msg("The deployment is paused until paused_until (or until the admin unpauses)")]
    Paused,
    #[msg("The mint's authority must be the config PDA and it must have no freeze authority")]
    InvalidMint,
    #[msg("Oracle set: 1 to 10 distinct, non-default keys")]
    InvalidOracleSet,
    #[msg("Threshold must satisfy n/2 < m <= n")]
    InvalidThreshold,
    #[msg("Epoch length out of bounds")]
    InvalidEpochLength,
    #[msg("Genesis time too far from the current clock")]
    InvalidGenesis,
    #[msg("Challenge period out of bounds")]
    InvalidChallengePeriod,
    #[msg("Emission schedule out of bounds")]
    InvalidEmissionSchedule,
    #[msg("Rate limiter out of bounds (window, or a capacity below one epoch's initial emission)")]
    InvalidRateLimit,
    #[msg("A required key is the default (all-zero) key")]
    InvalidKey,
    #[msg("Epochs are proposed and finalized strictly in order; this is not the next one")]
    EpochOutOfOrder,
    #[msg("The epoch has not ended yet by the on-chain clock")]
    EpochNotEnded,
    #[msg("The root is all zeros")]
    ZeroRoot,
    #[msg("The proposal is inconsistent: totals, leaf counts or the empty root do not add up")]
    InconsistentProposal,
    #[msg("This oracle already voted in this round")]
    DoubleVote,
    #[msg("This proposal was vetoed less than a challenge period ago: vote it again once banned_until has passed, or vote a corrected one")]
    ProposalVetoed,
    #[msg("The epoch is already finalized")]
    AlreadyFinalized,
    #[msg("The epoch has no proposal with quorum")]
    NoQuorum,
    #[msg("The challenge period has not ended")]
    ChallengePeriodActive,
    #[msg("The challenge period has ended; the epoch can no longer be vetoed")]
    VetoWindowClosed,
    #[msg("Nothing to veto in this epoch's state")]
    NothingToVeto,
    #[msg("The allocation exceeds this epoch's scheduled emission")]
    ExceedsEpochEmission,
    #[msg("The allocation exceeds what remains under the lifetime cap")]
    ExceedsLifetimeCap,
    #[msg("The allocation exceeds the mint rate limiter; wait for the window to drain")]
    RateLimited,
    #[msg("The epoch is not finalized")]
    EpochNotFinalized,
    #[msg("The Merkle proof does not match the epoch's root")]
    InvalidProof,
    #[msg("The proof is longer than the maximum depth")]
    ProofTooLong,
    #[msg("Nothing to claim: the cumulative amount was already paid")]
    NothingToClaim,
    #[msg("Arithmetic overflow")]
    Overflow,
    #[msg("An internal invariant would be broken")]
    InvariantViolated,
    #[msg("Economics parameters out of bounds (price age, price change, smoothing, usage cap)")]
    InvalidEconomics,
    #[msg("The mint has more than 18 decimals")]
    InvalidDecimals,
    #[msg("The allocation exceeds k times the value of the credits consumed in the epoch")]
    ExceedsPaidUsageCap,
    #[msg("The epoch's ledger must be sealed first: send seal_epoch")]
    LedgerNotSealed,
    #[msg("The epoch's ledger is already sealed")]
    LedgerSealed,
    #[msg("No price has been posted yet")]
    NoPrice,
    #[msg("The posted price is older than the allowed staleness, or predates the oracle set; wait for the oracles to post")]
    PriceStale,
    #[msg("The price is further from this oracle's previous submission than price_max_change_bps per hour allows")]
    PriceJumpTooLarge,
    #[msg("The price must be positive")]
    InvalidPrice,
    #[msg("The amount must be positive")]
    ZeroAmount,
    #[msg("The purchase yields fewer credits than min_credits (the price moved)")]
    SlippageExceeded,
    #[msg("Nothing to settle: this cumulative usage was already settled")]
    NothingToSettle,
    #[msg("The ledger account is not the current epoch's ledger of this deployment")]
    WrongLedger,
    #[msg("The epoch argument is not the epoch the clock is in (a purchase sent just before an epoch boundary can land after it): read the epoch from the chain's clock and send again")]
    WrongEpoch,
    #[msg("The epoch record is not the record of the epoch argument: derive it from the seeds [\"epoch\", config, epoch]")]
    WrongEpochRecord,
    #[msg("The claim record is not this operator's claim record of this deployment: derive it from the seeds [\"claim\", config, operator]")]
    WrongClaimRecord,
    #[msg("Guardians must be 1 to 4 distinct non-default keys")]
    InvalidGuardianSet,
    #[msg("The admin, the guardians and the oracles must be different keys")]
    RolesOverlap,
    #[msg("The governance delay must be at least one epoch plus the challenge period and at most 90 days")]
    InvalidGovernanceDelay,
    #[msg("The lifetime cap may only go down, and not below what the schedule already minted")]
    LifetimeCapRaised,
    #[msg("A change may at most double the emission, floor, net emissions cap or rate capacity, and may not slow the schedule's decay")]
    RaiseTooLarge,
    #[msg("Budget parameters applied earlier have not reached their first epoch yet: apply again once it is finalized")]
    BudgetChangePending,
    #[msg("The change id is not the next change id of this deployment (queue) or no such change is queued: read next_change_id from the config")]
    WrongChange,
    #[msg("The governance delay of this change has not passed yet: wait for executable_at")]
    ChangeNotReady,
    #[msg("A guardian cannot cancel a change that removes it")]
    CannotCancel,
    #[msg("The deployment is not paused")]
    NotPaused,
    #[msg("A pause ended less than the cooldown ago: wait for pause_available_at")]
    PauseCoolingDown,
    #[msg("This epoch was already vetoed the maximum number of times")]
    VetoLimitReached,
    #[msg("The proposal's usage exceeds what buyers bought through the epoch: consumption above the credits issued, or a cost above the tokens burned for them")]
    UsageExceedsPurchases,
    #[msg("Consensus parameters out of bounds: credits_per_gib, pair_cap_bytes and max_rate_bytes_per_sec must be positive, grace_secs less than half the epoch length")]
    InvalidConsensusParams,
    #[msg("The oracle bond asked for is above MAX_ORACLE_BOND_LAMPORTS")]
    InvalidOracleBond,
    #[msg("The oracle has not bonded the config's oracle_bond_lamports, or its bond is unbonding: deposit_bond first")]
    BondRequired,
    #[msg(
        "The bond is not unbonding, or is still locked: call unbond, then wait for withdrawable_at"
    )]
    BondLocked,
    #[msg("The bond is already unbonding")]
    AlreadyUnbonding,
    #[msg("Proof buffer: wrong owner, deployment or size (1 to MAX_PROOF_BUFFER_LEN bytes), or a write beyond its end")]
    InvalidProofBuffer,
    #[msg("The proof buffer's bytes do not decode as the instruction's proof")]
    MalformedProof,
    #[msg("There is no proposal in its challenge period to prove fraudulent")]
    NoProposalToChallenge,
    #[msg("The fraud proof does not show fraud in the proposal under challenge")]
    NotFraud,
    #[msg("The earlier epoch's record is not a finalized epoch before the one challenged")]
    WrongEarlierEpoch,
    #[msg("The remaining accounts must be the bond accounts of the oracles that voted the digest, in vote order")]
    WrongBondAccounts,
    #[msg("The credit account is not the buyer's credit account address of this deployment")]
    InvalidCreditAccount,
}

/// Maps the pure crate's errors onto the program's.
pub fn core_error(e: CoreError) -> Error {
    match e {
        CoreError::Overflow => BackhaulError::Overflow.into(),
        CoreError::RateLimited => BackhaulError::RateLimited.into(),
        CoreError::InvalidParameter => BackhaulError::InvalidEmissionSchedule.into(),
        CoreError::DuplicateLeaf | CoreError::EmptyTree => {
            BackhaulError::InconsistentProposal.into()
        }
    }
}
