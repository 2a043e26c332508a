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
    /// existed by the end of an earlier epoch (see `backhaul_core::price::issued_through`).
    pub issued_before_purchase_epoch: u64,
}

impl CreditAccount {
    pub const SIZE: usize = 8 + CreditAccount::INIT_SPACE;
}
