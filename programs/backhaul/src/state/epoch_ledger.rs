use crate::constants::LEDGER_SEED;
use crate::error::BackhaulError;
use anchor_lang::prelude::*;

/// What happened in one epoch, for auditors and for the epoch's budget. Created by the epoch's
/// first purchase or by `seal_epoch`; sealed once the epoch has ended, after which no purchase
/// can land in it.
#[account]
#[derive(InitSpace, Debug)]
pub struct EpochLedger {
    /// The deployment.
    pub config: Pubkey,
    /// The epoch.
    pub epoch: u64,
    /// PDA bump of `["ledger", config, epoch]`.
    pub bump: u8,
    /// Set by `seal_epoch`; the epoch's budget inputs no longer change.
    pub sealed: bool,
    pub sealed_at: i64,
    /// Tokens burned for credits during the epoch.
    pub tokens_burned: u64,
    /// Credits issued by those burns.
    pub credits_issued: u64,
    /// Credits debited by settlements proven against this epoch.
    pub credits_settled: u64,
    /// Consumption proven against this epoch beyond buyers' balances.
    pub credits_unpaid: u64,
    /// Tokens minted as this epoch's rewards.
    pub tokens_minted: u64,
    /// The posted price when the epoch was sealed (credits per whole token) if it was fresh
    /// (usable for purchases), else 0. For auditors only: the budget values consumption at what
    /// buyers paid, not at this price (see `seal_epoch`).
    pub credits_per_token: u64,
    /// When the posted price was posted (0 if none ever was), fresh or not.
    pub price_posted_at: i64,
    /// The moving average of burns after this epoch (set at finalize).
    pub burn_ema: u64,
    /// The epoch's budget (set at finalize).
    pub budget: u64,
}

impl EpochLedger {
    pub const SIZE: usize = 8 + EpochLedger::INIT_SPACE;
}

impl EpochLedger {
    /// Loads the ledger of `epoch` from `info`, creating it (rent paid by `payer`) when the epoch
    /// has none yet.
    ///
    /// `info` must already be checked as the PDA `["ledger", config, epoch]` with `bump` (the
    /// accounts struct's `seeds` constraint); an existing account must be this program's ledger
    /// for the same config and epoch.
    pub fn load_or_create<'info>(
        info: &AccountInfo<'info>,
        payer: &AccountInfo<'info>,
        system_program: &AccountInfo<'info>,
        config: &Pubkey,
        epoch: u64,
        bump: u8,
        program_id: &Pubkey,
    ) -> Result<Self> {
        let epoch_bytes = epoch.to_le_bytes();
        let seeds: &[&[u8]] = &[LEDGER_SEED, config.as_ref(), &epoch_bytes, &[bump]];
        let (mut ledger, created) = crate::state::pda::load_or_create::<EpochLedger>(
            info,
            payer,
            system_program,
            seeds,
            EpochLedger::SIZE,
            program_id,
        )?;
        if created {
            ledger.config = *config;
            ledger.epoch = epoch;
            ledger.bump = bump;
        }
        require!(
            ledger.config == *config && ledger.epoch == epoch,
            BackhaulError::WrongLedger
        );
        Ok(*ledger)
    }

    /// Writes the ledger (with its discriminator) back into `info`.
    pub fn store(&self, info: &AccountInfo) -> Result<()> {
        let mut data = info.try_borrow_mut_data()?;
        let mut writer: &mut [u8] = &mut data;
        self.try_serialize(&mut writer)
    }
}
