use crate::constants::*;
use crate::error::BackhaulError;
use crate::state::EpochLedger;
use anchor_lang::prelude::*;
use backhaul_core::budget::{
    AllocationSplit, BudgetExceeded, EpochActivity, EpochBudget, NetEmissionParams,
};
use backhaul_core::emission::EmissionSchedule;
use backhaul_core::rate_limit::MintBucket;

/// The emission schedule as stored on-chain (see `backhaul_core::emission`).
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Copy, Debug, PartialEq, Eq, InitSpace)]
pub struct EmissionParams {
    /// Tokens (base units) epoch 0 may mint.
    pub initial_per_epoch: u64,
    /// Decay per step in basis points (5_000 halves).
    pub decay_bps: u16,
    /// Epochs between two decay steps.
    pub decay_period_epochs: u64,
    /// The per-epoch emission never goes below this.
    pub floor_per_epoch: u64,
    /// The most that may ever be minted for rewards.
    pub lifetime_cap: u64,
}

impl From<EmissionParams> for EmissionSchedule {
    fn from(p: EmissionParams) -> Self {
        EmissionSchedule {
            initial_per_epoch: p.initial_per_epoch,
            decay_bps: p.decay_bps,
            decay_period_epochs: p.decay_period_epochs,
            floor_per_epoch: p.floor_per_epoch,
            lifetime_cap: p.lifetime_cap,
        }
    }
}

/// Prices, net emissions and the paid-usage cap (see `backhaul_core::budget` and `price`).
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Copy, Debug, PartialEq, Eq, InitSpace)]
pub struct EconomicsParams {
    /// Buying refuses a price posted longer ago than this, seconds; older submissions no longer
    /// count towards a quorum.
    pub price_max_age_secs: u64,
    /// The most the posted price may move per hour, basis points, compounding every second (and
    /// at most 4× in one post); likewise each oracle's submission from its own previous one.
    pub price_max_change_bps: u16,
    /// The most re-minted from burns per epoch on top of the schedule (0: no net emissions).
    pub net_emissions_cap: u64,
    /// N of the moving average of burns (1: no smoothing).
    pub burn_smoothing_epochs: u64,
    /// k in basis points, 1 to 10,000: an epoch's budget never exceeds k × what buyers paid for
    /// the credits consumed in it. There is no setting that turns the cap off.
    pub usage_cap_bps: u32,
}

impl From<EconomicsParams> for NetEmissionParams {
    fn from(e: EconomicsParams) -> Self {
        NetEmissionParams {
            net_emissions_cap: e.net_emissions_cap,
            smoothing_epochs: e.burn_smoothing_epochs,
            usage_cap_bps: e.usage_cap_bps,
        }
    }
}

/// The windowed mint rate limiter (see `backhaul_core::rate_limit`).
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Copy, Debug, PartialEq, Eq, InitSpace)]
pub struct RateLimiter {
    /// Window length in seconds.
    pub window_secs: u64,
    /// At most this much in the bucket.
    pub capacity: u64,
    /// Bucket level at `last_ts`.
    pub level: u64,
    /// When the level was last written.
    pub last_ts: i64,
}

impl From<RateLimiter> for MintBucket {
    fn from(r: RateLimiter) -> Self {
        MintBucket {
            window_secs: r.window_secs,
            capacity: r.capacity,
            level: r.level,
            last_ts: r.last_ts,
        }
    }
}

impl From<MintBucket> for RateLimiter {
    fn from(b: MintBucket) -> Self {
        RateLimiter {
            window_secs: b.window_secs,
            capacity: b.capacity,
            level: b.level,
            last_ts: b.last_ts,
        }
    }
}

/// What decides an epoch's dataset besides the receipts: how the oracles count and price
/// bandwidth, and how long after the epoch they still take receipts. Every oracle reads them from
/// here for the epoch it closes, so oracles that agree on the receipts agree on the dataset.
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Copy, Debug, PartialEq, Eq, InitSpace)]
pub struct ConsensusParams {
    /// Bandwidth price: credits a buyer is charged per GiB served (positive).
    pub credits_per_gib: u64,
    /// The most bytes one node-client pair counts for per epoch (positive).
    pub pair_cap_bytes: u64,
    /// Sessions faster than this (cumulative bytes / session age) do not count, bytes per second
    /// (positive).
    pub max_rate_bytes_per_sec: u64,
    /// Seconds after an epoch's end during which its late receipts are still taken; less than
    /// half an epoch.
    pub grace_secs: u64,
}

/// Everything that decides an epoch's budget, its mint limit and its dataset.
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Copy, Debug, PartialEq, Eq, InitSpace)]
pub struct EpochParams {
    pub emission: EmissionParams,
    pub economics: EconomicsParams,
    pub rate_window_secs: u64,
    pub rate_capacity: u64,
    pub consensus: ConsensusParams,
}

/// Budget and consensus parameters applied by governance that take effect from `from_epoch`.
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Copy, Debug, PartialEq, Eq, InitSpace)]
pub struct PendingParams {
    /// The first epoch they apply to: one that had not started when they were applied.
    pub from_epoch: u64,
    pub params: EpochParams,
}

/// One deployment: its authorities, oracle set, schedule, limits and running totals.
#[account]
#[derive(InitSpace, Debug)]
pub struct Config {
    /// Layout version ([`ACCOUNT_VERSION`]).
    pub version: u8,
    /// PDA bump of `["config", mint]`.
    pub bump: u8,
    /// PDA bump of the vault `["vault", config]`.
    pub vault_bump: u8,
    /// Queues changes of parameters, oracles and guardians; pauses and unpauses.
    pub admin: Pubkey,
    /// Set by `propose_admin`; becomes admin when it signs `accept_admin`.
    pub pending_admin: Option<Pubkey>,
    /// Each may veto (a bounded number of times per epoch), pause (for a bounded time) and cancel
    /// queued changes (except its own removal); none can move funds or change parameters.
    #[max_len(MAX_GUARDIANS)]
    pub guardians: Vec<Pubkey>,
    /// The network token (classic SPL Token); this config is its mint authority.
    pub mint: Pubkey,
    /// Token account holding minted rewards until they are claimed; owned by this config.
    pub vault: Pubkey,
    /// The credit price feed `["price", config]`.
    pub price_feed: Pubkey,
    /// The oracle set.
    #[max_len(MAX_ORACLES)]
    pub oracles: Vec<Pubkey>,
    /// Votes needed for quorum (n/2 < m <= n).
    pub threshold: u8,
    /// Start of epoch 0, unix seconds.
    pub genesis_ts: i64,
    /// Length of an epoch, seconds.
    pub epoch_length_secs: u64,
    /// Time between quorum and the earliest finalize, seconds.
    pub challenge_period_secs: u64,
    /// Time between queueing a change and the earliest `apply_change`, seconds.
    pub governance_delay_secs: u64,
    /// The id the next queued change gets.
    pub next_change_id: u64,
    /// Budget and consensus parameters that apply from a later epoch than the current ones.
    pub pending_params: Option<PendingParams>,
    /// The emission schedule.
    pub emission: EmissionParams,
    /// The mint rate limiter and its state.
    pub rate_limiter: RateLimiter,
    /// Prices, net emissions and the paid-usage cap.
    pub economics: EconomicsParams,
    /// The mint's decimals.
    pub decimals: u8,
    /// The mint's supply when the deployment was created.
    pub initial_supply: u64,
    /// Voting, finalizing, claiming, buying and settling are refused until this time.
    pub paused_until: i64,
    /// Nobody may pause before this time (the cooldown after the last pause).
    pub pause_available_at: i64,
    /// The next epoch to be proposed and finalized.
    pub next_epoch: u64,
    /// Sum of all cumulative amounts in the last finalized reward tree.
    pub last_reward_total: u64,
    /// Leaf count of the last finalized reward tree.
    pub last_reward_leaf_count: u64,
    /// Everything ever minted for rewards (`scheduled_minted + total_reemitted`).
    pub total_minted: u64,
    /// The part of `total_minted` counted against the lifetime cap.
    pub scheduled_minted: u64,
    /// The part of `total_minted` re-minted from burns (net emissions).
    pub total_reemitted: u64,
    /// Everything ever paid out by claims.
    pub total_claimed: u64,
    /// Moving average of burns per epoch, as of the last finalized epoch.
    pub burn_ema: u64,
    /// Sum of all cumulative amounts in the last finalized usage tree.
    pub last_usage_total: u64,
    /// Leaf count of the last finalized usage tree.
    pub last_usage_leaf_count: u64,
    /// Tokens ever burned for credits.
    pub total_burned: u64,
    /// Tokens burned in finalized epochs (net emissions never exceed it).
    pub burned_finalized: u64,
    /// Credits ever issued by purchases.
    pub credits_issued: u64,
    /// Credits ever debited by settlements.
    pub credits_settled: u64,
    /// Consumption settled beyond a buyer's balance (recorded, never debited).
    pub credits_unpaid: u64,
    /// What the consumption in the last finalized usage tree cost its buyers, in tokens.
    pub last_usage_cost_total: u64,
    /// Credits issued in finalized epochs (the usage tree never consumes more).
    pub credits_issued_finalized: u64,
    /// What decides the datasets of the epochs finalized so far (see [`Config::params_for`]).
    pub consensus: ConsensusParams,
    /// Lamports an oracle must have bonded (`OracleBond`) to vote; 0 asks for none. Changed by
    /// governance, at most [`MAX_ORACLE_BOND_LAMPORTS`].
    pub oracle_bond_lamports: u64,
}

/// What finalizing a proposal would do: the budget, its split and the rate limiter after it.
#[derive(Clone, Copy, Debug)]
pub struct FinalizeOutcome {
    pub budget: EpochBudget,
    pub split: AllocationSplit,
    pub bucket: MintBucket,
}

impl Config {
    /// Account size including the discriminator.
    pub const SIZE: usize = 8 + Config::INIT_SPACE;

    /// Signer seeds of this config PDA (mint authority and vault owner).
    pub fn signer_seeds(&self) -> [&[u8]; 3] {
        [
            CONFIG_SEED,
            self.mint.as_ref(),
            core::slice::from_ref(&self.bump),
        ]
    }

    pub fn is_oracle(&self, key: &Pubkey) -> bool {
        self.oracles.contains(key)
    }

    pub fn is_guardian(&self, key: &Pubkey) -> bool {
        self.guardians.contains(key)
    }

    pub fn is_paused(&self, now: i64) -> bool {
        now < self.paused_until
    }

    /// The budget and consensus parameters in force for the epochs finalized so far.
    pub fn current_params(&self) -> EpochParams {
        EpochParams {
            emission: self.emission,
            economics: self.economics,
            rate_window_secs: self.rate_limiter.window_secs,
            rate_capacity: self.rate_limiter.capacity,
            consensus: self.consensus,
        }
    }

    /// The budget and consensus parameters of `epoch`.
    pub fn params_for(&self, epoch: u64) -> EpochParams {
        match self.pending_params {
            Some(p) if epoch >= p.from_epoch => p.params,
            _ => self.current_params(),
        }
    }

    /// The newest budget parameters, pending or current: a new change is checked against them.
    pub fn latest_params(&self) -> EpochParams {
        self.pending_params
            .map_or_else(|| self.current_params(), |p| p.params)
    }

    /// Makes pending parameters current once every epoch before `from_epoch` is finalized (the
    /// rate limiter keeps its level). A lowered lifetime cap that the epochs finalized in between
    /// already passed becomes what they minted: nothing more is scheduled, and nothing halts.
    pub fn promote_pending_params(&mut self) {
        if let Some(p) = self.pending_params {
            if self.next_epoch >= p.from_epoch {
                let mut params = p.params;
                params.emission.lifetime_cap =
                    params.emission.lifetime_cap.max(self.scheduled_minted);
                self.set_current_params(&params);
                self.pending_params = None;
            }
        }
    }

    pub fn set_current_params(&mut self, p: &EpochParams) {
        self.emission = p.emission;
        self.economics = p.economics;
        self.rate_limiter.window_secs = p.rate_window_secs;
        self.rate_limiter.capacity = p.rate_capacity;
        self.consensus = p.consensus;
    }

    /// The budget of `epoch` given its sealed ledger and what its proposal's consumption cost.
    pub fn epoch_budget(
        &self,
        epoch: u64,
        ledger: &EpochLedger,
        usage_cost: u64,
    ) -> Result<EpochBudget> {
        let params = self.params_for(epoch);
        let burns_not_reemitted = self
            .burned_finalized
            .checked_add(ledger.tokens_burned)
            .and_then(|b| b.checked_sub(self.total_reemitted))
            .ok_or(BackhaulError::InvariantViolated)?;
        let activity = EpochActivity {
            tokens_burned: ledger.tokens_burned,
            usage_cost,
            burns_not_reemitted,
        };
        EpochBudget::compute(
            &params.emission.into(),
            epoch,
            self.scheduled_minted,
            self.burn_ema,
            &params.economics.into(),
            &activity,
        )
        .map_err(crate::error::core_error)
    }

    /// Everything `finalize` checks about `allocation` of the next epoch at `now`: the budget, the
    /// rate limiter and the totals it would leave. Votes run it too, so a proposal that reaches
    /// quorum can always be finalized.
    pub fn finalize_outcome(
        &self,
        epoch: u64,
        ledger: &EpochLedger,
        allocation: u64,
        usage_cost: u64,
        now: i64,
    ) -> Result<FinalizeOutcome> {
        let params = self.params_for(epoch);
        let budget = self.epoch_budget(epoch, ledger, usage_cost)?;
        let split = budget.split(allocation).map_err(budget_error)?;
        let bucket = MintBucket {
            window_secs: params.rate_window_secs,
            capacity: params.rate_capacity,
            level: self.rate_limiter.level,
            last_ts: self.rate_limiter.last_ts,
        }
        .consume(now, allocation)
        .map_err(crate::error::core_error)?;
        let scheduled = self
            .scheduled_minted
            .checked_add(split.scheduled)
            .ok_or(BackhaulError::Overflow)?;
        let reemitted = self
            .total_reemitted
            .checked_add(split.net)
            .ok_or(BackhaulError::Overflow)?;
        let burned = self
            .burned_finalized
            .checked_add(ledger.tokens_burned)
            .ok_or(BackhaulError::Overflow)?;
        // The schedule's room is what the cap leaves, so `scheduled` stays within the cap.
        require!(
            scheduled <= params.emission.lifetime_cap.max(self.scheduled_minted)
                && reemitted <= burned,
            BackhaulError::InvariantViolated
        );
        Ok(FinalizeOutcome {
            budget,
            split,
            bucket,
        })
    }

    /// Checks that must hold after every change.
    pub fn invariant(&self) -> Result<()> {
        let split_ok =
            self.scheduled_minted.checked_add(self.total_reemitted) == Some(self.total_minted);
        require!(
            self.total_claimed <= self.total_minted
                && self.scheduled_minted <= self.emission.lifetime_cap
                && split_ok
                && self.total_reemitted <= self.burned_finalized
                && self.burned_finalized <= self.total_burned
                && self.last_reward_total == self.total_minted
                && self.credits_settled <= self.credits_issued
                && self.credits_issued_finalized <= self.credits_issued
                && self.last_usage_total <= self.credits_issued_finalized
                && self.last_usage_cost_total <= self.burned_finalized,
            BackhaulError::InvariantViolated
        );
        validate_oracles(&self.oracles, self.threshold)?;
        validate_guardians(&self.guardians)?;
        validate_roles(&self.admin, &self.guardians, &self.oracles)?;
        Ok(())
    }
}

/// 1 to [`MAX_ORACLES`] distinct non-default keys and a majority threshold.
pub fn validate_oracles(oracles: &[Pubkey], threshold: u8) -> Result<()> {
    require!(
        !oracles.is_empty() && oracles.len() <= usize::from(MAX_ORACLES),
        BackhaulError::InvalidOracleSet
    );
    require!(distinct_keys(oracles), BackhaulError::InvalidOracleSet);
    let m = usize::from(threshold);
    // m > n/2, written without division: 2m > n.
    require!(
        m >= 1 && m <= oracles.len() && m.saturating_mul(2) > oracles.len(),
        BackhaulError::InvalidThreshold
    );
    Ok(())
}

/// 1 to [`MAX_GUARDIANS`] distinct non-default keys.
pub fn validate_guardians(guardians: &[Pubkey]) -> Result<()> {
    require!(
        !guardians.is_empty()
            && guardians.len() <= usize::from(MAX_GUARDIANS)
            && distinct_keys(guardians),
        BackhaulError::InvalidGuardianSet
    );
    Ok(())
}

fn distinct_keys(keys: &[Pubkey]) -> bool {
    keys.iter()
        .enumerate()
        .all(|(i, k)| *k != Pubkey::default() && !keys[..i].contains(k))
}

/// The admin, the guardians and the oracles are different keys: no one key both queues changes
/// and votes, or both votes and vetoes.
pub fn validate_roles(admin: &Pubkey, guardians: &[Pubkey], oracles: &[Pubkey]) -> Result<()> {
    require!(*admin != Pubkey::default(), BackhaulError::InvalidKey);
    require!(
        !guardians.contains(admin)
            && !oracles.contains(admin)
            && !guardians.iter().any(|g| oracles.contains(g)),
        BackhaulError::RolesOverlap
    );
    Ok(())
}

/// The emission schedule's bounds (see `backhaul_core::emission::EmissionSchedule::validate`).
pub fn validate_emission(e: &EmissionParams) -> Result<()> {
    EmissionSchedule::from(*e)
        .validate()
        .map_err(|_| error!(BackhaulError::InvalidEmissionSchedule))
}

/// The epoch length, challenge period and governance delay fit together: the challenge period is
/// within its bounds and at most half an epoch (so finalization keeps up with the clock), and the
/// delay covers at least one epoch plus the challenge period.
pub fn validate_timing(epoch_length: u64, challenge: u64, delay: u64) -> Result<()> {
    require!(
        (MIN_EPOCH_LENGTH_SECS..=MAX_EPOCH_LENGTH_SECS).contains(&epoch_length),
        BackhaulError::InvalidEpochLength
    );
    require!(
        (MIN_CHALLENGE_PERIOD_SECS..=MAX_CHALLENGE_PERIOD_SECS).contains(&challenge)
            && challenge.saturating_mul(2) <= epoch_length,
        BackhaulError::InvalidChallengePeriod
    );
    require!(
        delay >= epoch_length.saturating_add(challenge) && delay <= MAX_GOVERNANCE_DELAY_SECS,
        BackhaulError::InvalidGovernanceDelay
    );
    Ok(())
}

/// Budget parameters that can always be met: a valid schedule and economics, a rate window within
/// bounds, and a rate capacity that holds one full epoch budget (initial emission plus the net
/// emissions cap) and drains at least one full budget per epoch; and valid consensus parameters.
pub fn validate_params(p: &EpochParams, epoch_length: u64) -> Result<()> {
    validate_emission(&p.emission)?;
    validate_economics(&p.economics)?;
    validate_consensus(&p.consensus, epoch_length)?;
    let max_budget = u128::from(p.emission.initial_per_epoch)
        .saturating_add(u128::from(p.economics.net_emissions_cap));
    let capacity = u128::from(p.rate_capacity);
    require!(
        (MIN_RATE_WINDOW_SECS..=MAX_RATE_WINDOW_SECS).contains(&p.rate_window_secs)
            && capacity >= max_budget
            && capacity.saturating_mul(u128::from(epoch_length))
                >= max_budget.saturating_mul(u128::from(p.rate_window_secs)),
        BackhaulError::InvalidRateLimit
    );
    Ok(())
}

/// A change of budget parameters from `old` to `new` can raise what any epoch may mint at most
/// [`MAX_RAISE_FACTOR`]-fold: the initial and floor emission, the net emissions cap and the rate
/// capacity at most double, the schedule may only decay as fast or faster, and the lifetime cap
/// only goes down (never below what the schedule already minted).
pub fn validate_params_change(
    old: &EpochParams,
    new: &EpochParams,
    scheduled_minted: u64,
) -> Result<()> {
    let (o, n) = (&old.emission, &new.emission);
    require!(
        n.lifetime_cap <= o.lifetime_cap && n.lifetime_cap >= scheduled_minted,
        BackhaulError::LifetimeCapRaised
    );
    let within = |old: u64, new: u64| new <= old.saturating_mul(MAX_RAISE_FACTOR);
    require!(
        within(o.initial_per_epoch, n.initial_per_epoch)
            && within(o.floor_per_epoch, n.floor_per_epoch)
            && n.decay_bps >= o.decay_bps
            && n.decay_period_epochs <= o.decay_period_epochs
            && within(old.rate_capacity, new.rate_capacity)
            && within(
                old.economics.net_emissions_cap,
                new.economics.net_emissions_cap
            ),
        BackhaulError::RaiseTooLarge
    );
    Ok(())
}

/// Maps a broken budget limit onto the program's error.
pub fn budget_error(e: BudgetExceeded) -> Error {
    match e {
        BudgetExceeded::Schedule => error!(BackhaulError::ExceedsEpochEmission),
        BudgetExceeded::LifetimeCap => error!(BackhaulError::ExceedsLifetimeCap),
        BudgetExceeded::PaidUsageCap => error!(BackhaulError::ExceedsPaidUsageCap),
    }
}

/// A positive price per GiB, pair cap and rate limit, and a grace period shorter than half an
/// epoch: with the challenge period at most half an epoch too, an epoch's close and its challenge
/// period end before the next epoch does, so finalization keeps up with the clock.
pub fn validate_consensus(c: &ConsensusParams, epoch_length: u64) -> Result<()> {
    require!(
        c.credits_per_gib > 0
            && c.pair_cap_bytes > 0
            && c.max_rate_bytes_per_sec > 0
            && c.grace_secs.saturating_mul(2) < epoch_length,
        BackhaulError::InvalidConsensusParams
    );
    Ok(())
}

/// Price staleness and change-rate bounds, smoothing and usage-cap bounds.
pub fn validate_economics(e: &EconomicsParams) -> Result<()> {
    require!(
        (MIN_PRICE_MAX_AGE_SECS..=MAX_PRICE_MAX_AGE_SECS).contains(&e.price_max_age_secs)
            && (1..=MAX_PRICE_CHANGE_BPS).contains(&e.price_max_change_bps),
        BackhaulError::InvalidEconomics
    );
    NetEmissionParams::from(*e)
        .validate()
        .map_err(|_| error!(BackhaulError::InvalidEconomics))
}
