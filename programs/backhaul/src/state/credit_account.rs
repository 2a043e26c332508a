use crate::constants::CREDITS_SEED;
use crate::error::BackhaulError;
use anchor_lang::prelude::*;

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
    /// The epoch of the latest purchase.
    pub purchase_epoch: u64,
    /// `issued` before the first purchase of `purchase_epoch`: lets oracles tell which credits
    /// existed by the end of an earlier epoch (see `backhaul_core::cost::purchases_through`).
    pub issued_before_purchase_epoch: u64,
    /// `tokens_burned` before the first purchase of `purchase_epoch`: with the field above, what
    /// the credits that existed by the end of an earlier epoch cost (see
    /// `backhaul_core::cost::purchases_through`).
    pub tokens_before_purchase_epoch: u64,
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
}
