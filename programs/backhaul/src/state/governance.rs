//! How a queued governance change takes effect, shared by `queue_change` (which checks it against
//! a copy of the config) and `apply_change`.

use crate::constants::MAX_ORACLE_BOND_LAMPORTS;
use crate::error::BackhaulError;
use crate::state::*;
use anchor_lang::prelude::*;
use backhaul_core::epoch::epoch_at;

/// Whether a change is being checked when queued or applied for real.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GovernanceStep {
    Queue,
    Apply,
}

impl Config {
    /// The epoch the clock is in (0 before genesis).
    pub fn clock_epoch(&self, now: i64) -> u64 {
        epoch_at(self.genesis_ts, self.epoch_length_secs, now).unwrap_or(0)
    }

    /// Applies `change` at `now`. The challenge period and governance delay take effect at once
    /// (each proposal and each queued change keeps the times it was given); budget and consensus
    /// parameters apply from the first epoch that has not started (`pending_params`), so no epoch
    /// that is running, voted on or proposed sees them.
    ///
    /// Checks: the resulting timing, parameters (consensus ones included) and roles are within
    /// bounds; budget parameters raise no limit more than [`MAX_RAISE_FACTOR`]-fold and the
    /// lifetime cap does not rise; when applying, earlier parameters still waiting for their first
    /// epoch must have taken effect (`BudgetChangePending`: apply again once that epoch is
    /// finalized).
    pub fn apply_governance(
        &mut self,
        change: &GovernanceChange,
        now: i64,
        step: GovernanceStep,
    ) -> Result<()> {
        match change {
            GovernanceChange::Params(p) => {
                let challenge = p
                    .challenge_period_secs
                    .unwrap_or(self.challenge_period_secs);
                let delay = p
                    .governance_delay_secs
                    .unwrap_or(self.governance_delay_secs);
                validate_timing(self.epoch_length_secs, challenge, delay)?;
                self.challenge_period_secs = challenge;
                self.governance_delay_secs = delay;
                let bond = p.oracle_bond_lamports.unwrap_or(self.oracle_bond_lamports);
                require!(
                    bond <= MAX_ORACLE_BOND_LAMPORTS,
                    BackhaulError::InvalidOracleBond
                );
                self.oracle_bond_lamports = bond;
                let old = self.latest_params();
                let new = EpochParams {
                    emission: p.emission.unwrap_or(old.emission),
                    economics: p.economics.unwrap_or(old.economics),
                    rate_window_secs: p.rate_window_secs.unwrap_or(old.rate_window_secs),
                    rate_capacity: p.rate_capacity.unwrap_or(old.rate_capacity),
                    consensus: p.consensus.unwrap_or(old.consensus),
                };
                validate_params(&new, self.epoch_length_secs)?;
                validate_params_change(&old, &new, self.scheduled_minted)?;
                if new != old && step == GovernanceStep::Apply {
                    self.promote_pending_params();
                    require!(
                        self.pending_params.is_none(),
                        BackhaulError::BudgetChangePending
                    );
                    let from_epoch = self
                        .clock_epoch(now)
                        .checked_add(1)
                        .ok_or(BackhaulError::Overflow)?
                        .max(self.next_epoch);
                    self.pending_params = Some(PendingParams {
                        from_epoch,
                        params: new,
                    });
                }
            }
            GovernanceChange::Oracles { oracles, threshold } => {
                validate_oracles(oracles, *threshold)?;
                self.oracles = oracles.clone();
                self.threshold = *threshold;
            }
            GovernanceChange::Guardians { guardians } => {
                validate_guardians(guardians)?;
                self.guardians = guardians.clone();
            }
        }
        self.invariant()
    }
}

impl GovernanceChange {
    /// Whether `guardian` may cancel this change: any guardian may, except for a guardian set
    /// that no longer holds it (it cannot keep itself in office).
    pub fn cancellable_by_guardian(&self, guardian: &Pubkey) -> bool {
        match self {
            GovernanceChange::Guardians { guardians } => guardians.contains(guardian),
            GovernanceChange::Params(_) | GovernanceChange::Oracles { .. } => true,
        }
    }
}
