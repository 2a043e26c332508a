use crate::constants::*;
use crate::error::BackhaulError;
use crate::state::EpochLedger;
use anchor_lang::prelude::*;
use backhaul_core::budget::{BudgetExceeded, EpochActivity, EpochBudget, NetEmissionParams};
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
    /// k in basis points: an epoch's budget never exceeds k × the token value of the credits
    /// consumed in it (0: no cap).
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

/// One deployment: its authorities, oracle set, schedule, limits and running totals.
#[account]
#[derive(InitSpace, Debug)]
pub struct Config {
    /// PDA bump of `["config", mint]`.
    pub bump: u8,
    /// PDA bump of the vault `["vault", config]`.
    pub vault_bump: u8,
    /// Changes parameters, the oracle set and the guardian; unpauses.
    pub admin: Pubkey,
    /// Set by `propose_admin`; becomes admin when it signs `accept_admin`.
    pub pending_admin: Option<Pubkey>,
    /// Pauses and vetoes; cannot move funds or change parameters.
    pub guardian: Pubkey,
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
    /// When set, voting, finalizing and claiming are refused.
    pub paused: bool,
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
    /// Credits ever issued by purchases.
    pub credits_issued: u64,
    /// Credits ever debited by settlements.
    pub credits_settled: u64,
    /// Consumption settled beyond a buyer's balance (recorded, never debited).
    pub credits_unpaid: u64,
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

    pub fn schedule(&self) -> EmissionSchedule {
        self.emission.into()
    }

    /// The budget of `epoch` given its sealed ledger and the credits its proposal consumes.
    pub fn epoch_budget(
        &self,
        epoch: u64,
        ledger: &EpochLedger,
        credits_consumed: u64,
    ) -> Result<EpochBudget> {
        let activity = EpochActivity {
            tokens_burned: ledger.tokens_burned,
            credits_consumed,
            credits_per_token: ledger.credits_per_token,
            decimals: self.decimals,
        };
        EpochBudget::compute(
            &self.schedule(),
            epoch,
            self.scheduled_minted,
            self.burn_ema,
            &self.economics.into(),
            &activity,
        )
        .map_err(crate::error::core_error)
    }

    /// Checks that must hold after every change.
    pub fn invariant(&self) -> Result<()> {
        let split_ok =
            self.scheduled_minted.checked_add(self.total_reemitted) == Some(self.total_minted);
        require!(
            self.total_claimed <= self.total_minted
                && self.scheduled_minted <= self.emission.lifetime_cap
                && split_ok
                && self.total_reemitted <= self.total_burned
                && self.last_reward_total == self.total_minted
                && self.credits_settled <= self.credits_issued,
            BackhaulError::InvariantViolated
        );
        validate_oracles(&self.oracles, self.threshold)?;
        Ok(())
    }
}

/// 1 to [`MAX_ORACLES`] distinct non-default keys and a majority threshold.
pub fn validate_oracles(oracles: &[Pubkey], threshold: u8) -> Result<()> {
    require!(
        !oracles.is_empty() && oracles.len() <= usize::from(MAX_ORACLES),
        BackhaulError::InvalidOracleSet
    );
    for (i, o) in oracles.iter().enumerate() {
        require!(*o != Pubkey::default(), BackhaulError::InvalidOracleSet);
        require!(!oracles[..i].contains(o), BackhaulError::InvalidOracleSet);
    }
    let m = usize::from(threshold);
    // m > n/2, written without division: 2m > n.
    require!(
        m >= 1 && m <= oracles.len() && m.saturating_mul(2) > oracles.len(),
        BackhaulError::InvalidThreshold
    );
    Ok(())
}

/// The emission schedule's bounds (see `backhaul_core::emission::EmissionSchedule::validate`).
pub fn validate_emission(e: &EmissionParams) -> Result<()> {
    EmissionSchedule::from(*e)
        .validate()
        .map_err(|_| error!(BackhaulError::InvalidEmissionSchedule))
}

/// A window within bounds and a capacity that can hold at least one initial epoch emission.
pub fn validate_rate_limit(
    window_secs: u64,
    capacity: u64,
    emission: &EmissionParams,
) -> Result<()> {
    require!(
        (MIN_RATE_WINDOW_SECS..=MAX_RATE_WINDOW_SECS).contains(&window_secs)
            && capacity >= emission.initial_per_epoch,
        BackhaulError::InvalidRateLimit
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

pub fn validate_challenge_period(secs: u64) -> Result<()> {
    require!(
        (MIN_CHALLENGE_PERIOD_SECS..=MAX_CHALLENGE_PERIOD_SECS).contains(&secs),
        BackhaulError::InvalidChallengePeriod
    );
    Ok(())
}
