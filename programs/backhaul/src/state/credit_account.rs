use crate::constants::{CREDITS_SEED, PURCHASE_CHECKPOINTS};
use crate::error::BackhaulError;
use anchor_lang::prelude::*;

/// The first purchase of one of a buyer's purchase epochs.
#[derive(
    AnchorSerialize, AnchorDeserialize, Clone, Copy, Debug, Default, PartialEq, Eq, InitSpace,
)]
pub struct PurchaseCheckpoint {
    /// The purchase epoch.
    pub epoch: u64,
    /// The account's `issued` before the epoch's first purchase.
    pub issued_before: u64,
    /// The account's `tokens_burned` before the epoch's first purchase.
    pub tokens_before: u64,
}

/// A buyer's usage credits. Credits are not transferable: no instruction moves them between
/// accounts; they are only issued by burning tokens and debited by settling proven usage.
#[account]
#[derive(InitSpace, Debug)]
pub struct CreditAccount {
    /// The deployment.
    pub config: Pubkey,
    /// The buyer whose usage these credits pay for.
    pub buyer: Pubkey,
    /// PDA bump of `["credits", config, buyer]`.
    pub bump: u8,
    /// Credits available.
    pub balance: u64,
    /// Credits ever issued to this account.
    pub issued: u64,
    /// Credits ever debited from it.
    pub settled: u64,
    /// Consumption settled beyond the balance: recorded, never debited.
    pub unpaid: u64,
    /// Cumulative consumption of the last settled usage leaf.
    pub consumed_cumulative: u64,
    /// Epoch of the last settled usage proof.
    pub last_settled_epoch: u64,
    /// Tokens ever burned for this account.
    pub tokens_burned: u64,
    /// How many of `checkpoints` are in use (at most `PURCHASE_CHECKPOINTS`).
    pub checkpoint_count: u8,
    /// The buyer's latest purchase epochs, oldest first (the first `checkpoint_count`; the rest
    /// are zero): each with `issued` and `tokens_burned` as they stood before the epoch's first
    /// purchase. A ninth purchase epoch drops the oldest. With the totals they tell oracles what
    /// the buyer had bought by the end of each of the epochs they still have to close (see
    /// `backhaul_core::cost::purchases_through`).
    pub checkpoints: [PurchaseCheckpoint; PURCHASE_CHECKPOINTS as usize],
}

impl CreditAccount {
    pub const SIZE: usize = 8 + CreditAccount::INIT_SPACE;

    /// `buyer`'s credit account in `config`, created (paid by `payer`) when it has none yet.
    ///
    /// `info` must already be checked as the PDA `["credits", config, buyer]` with `bump` (the
    /// accounts struct's `seeds` constraint); an existing account must be this program's credit
    /// account for the same config and buyer. Write it back with [`crate::state::pda::store`].
    pub fn load_or_create<'info>(
        info: &AccountInfo<'info>,
        payer: &AccountInfo<'info>,
        system_program: &AccountInfo<'info>,
        config: &Pubkey,
        buyer: &Pubkey,
        bump: u8,
        program_id: &Pubkey,
    ) -> Result<Box<Self>> {
        let seeds: &[&[u8]] = &[CREDITS_SEED, config.as_ref(), buyer.as_ref(), &[bump]];
        let (mut account, created) = crate::state::pda::load_or_create::<CreditAccount>(
            info,
            payer,
            system_program,
            seeds,
            CreditAccount::SIZE,
            program_id,
        )?;
        if created {
            account.config = *config;
            account.buyer = *buyer;
            account.bump = bump;
        }
        require!(
            account.config == *config && account.buyer == *buyer,
            BackhaulError::InvariantViolated
        );
        Ok(account)
    }

    /// The checkpoints in use, oldest first.
    pub fn purchase_checkpoints(&self) -> &[PurchaseCheckpoint] {
        let count = usize::from(self.checkpoint_count).min(self.checkpoints.len());
        self.checkpoints.get(..count).unwrap_or(&[])
    }

    /// What a purchase made in `epoch` does to the checkpoints, before it is added to `issued`
    /// and `tokens_burned`: the first purchase of an epoch after the latest purchase epoch (or
    /// the account's first purchase) adds a checkpoint with the totals so far, dropping the
    /// oldest when all are in use; another purchase in the latest purchase epoch changes
    /// nothing. `backhaul_core::cost::PurchaseCheckpoints::record` does the same off-chain.
    pub fn checkpoint_purchase(&mut self, epoch: u64) -> Result<()> {
        let count = usize::from(self.checkpoint_count);
        require!(
            count <= self.checkpoints.len(),
            BackhaulError::InvariantViolated
        );
        if let Some(latest) = self.purchase_checkpoints().last() {
            if latest.epoch == epoch {
                return Ok(());
            }
            // The clock only moves forward.
            require!(latest.epoch < epoch, BackhaulError::InvariantViolated);
        }
        let checkpoint = PurchaseCheckpoint {
            epoch,
            issued_before: self.issued,
            tokens_before: self.tokens_burned,
        };
        if let Some(slot) = self.checkpoints.get_mut(count) {
            *slot = checkpoint;
            self.checkpoint_count = self
                .checkpoint_count
                .checked_add(1)
                .ok_or(BackhaulError::Overflow)?;
        } else {
            self.checkpoints.rotate_left(1);
            let newest = self
                .checkpoints
                .last_mut()
                .ok_or(BackhaulError::InvariantViolated)?;
            *newest = checkpoint;
        }
        Ok(())
    }
}
