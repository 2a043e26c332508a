use crate::constants::{MAX_GUARDIANS, MAX_ORACLES};
use crate::state::{ConsensusParams, EconomicsParams, EmissionParams};
use anchor_lang::prelude::*;

/// New values of the parameters that decide what may be minted and when, and how the oracles
/// build an epoch's dataset; `None` keeps the value.
/// The epoch length and genesis cannot change: they define which epoch every receipt belongs to.
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Debug, Default, PartialEq, Eq, InitSpace)]
pub struct ParamsChange {
    pub challenge_period_secs: Option<u64>,
    pub governance_delay_secs: Option<u64>,
    pub emission: Option<EmissionParams>,
    pub rate_window_secs: Option<u64>,
    pub rate_capacity: Option<u64>,
    pub economics: Option<EconomicsParams>,
    pub consensus: Option<ConsensusParams>,
    /// Lamports each oracle must have bonded to vote; applies at once (oracles top up during
    /// the governance delay).
    pub oracle_bond_lamports: Option<u64>,
}

/// A change the admin queued; it takes effect only after the governance delay.
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Debug, PartialEq, Eq, InitSpace)]
pub enum GovernanceChange {
    /// Parameters; the budget and consensus ones apply from the first epoch that starts after
    /// `apply_change`.
    Params(ParamsChange),
    /// A new oracle set and threshold.
    Oracles {
        #[max_len(MAX_ORACLES)]
        oracles: Vec<Pubkey>,
        threshold: u8,
    },
    /// A new guardian set.
    Guardians {
        #[max_len(MAX_GUARDIANS)]
        guardians: Vec<Pubkey>,
    },
}

/// One queued change: `["change", config, id]`. Closed (rent to `queued_by`) when applied or
/// cancelled.
#[account]
#[derive(InitSpace, Debug)]
pub struct PendingChange {
    /// The deployment.
    pub config: Pubkey,
    /// Its number: the config's `next_change_id` when it was queued.
    pub id: u64,
    /// PDA bump of `["change", config, id]`.
    pub bump: u8,
    /// The admin that queued it; receives the rent back.
    pub queued_by: Pubkey,
    /// When it was queued.
    pub queued_at: i64,
    /// The earliest time `apply_change` accepts it: `queued_at` plus the governance delay.
    pub executable_at: i64,
    pub change: GovernanceChange,
}

impl PendingChange {
    pub const SIZE: usize = 8 + PendingChange::INIT_SPACE;
}
