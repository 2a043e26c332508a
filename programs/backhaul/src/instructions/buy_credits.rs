use crate::constants::*;
use crate::error::{core_error, BackhaulError};
use crate::events::CreditsPurchased;
use crate::state::*;
use anchor_lang::prelude::*;
use anchor_spl::token::{self, Burn, Mint, Token, TokenAccount};
use backhaul_core::epoch::epoch_at;
use backhaul_core::price::credits_for_tokens;

#[event_cpi]
#[derive(Accounts)]
#[instruction(token_amount: u64, min_credits: u64, beneficiary: Pubkey, epoch: u64)]
pub struct BuyCredits<'info> {
    /// Burns its tokens; pays for the credit account and the epoch ledger when they are new.
    #[account(mut)]
    pub payer: Signer<'info>,
    #[account(mut, has_one = mint, has_one = price_feed)]
    pub config: Box<Account<'info, Config>>,
    #[account(seeds = [PRICE_SEED, config.key().as_ref()], bump = price_feed.bump)]
    pub price_feed: Box<Account<'info, PriceFeed>>,
    #[account(mut)]
    pub mint: Box<Account<'info, Mint>>,
    /// The payer's own token account for the network token; the tokens are burned from it.
    #[account(mut, token::mint = mint, token::authority = payer)]
    pub payer_tokens: Box<Account<'info, TokenAccount>>,
    /// The beneficiary's credits (`CreditAccount`), created on its first purchase, also at an
    /// address someone sent lamports to first.
    /// CHECK: the address is checked by the seeds, the contents when the handler loads them.
    #[account(
        mut,
        seeds = [CREDITS_SEED, config.key().as_ref(), beneficiary.as_ref()],
        bump,
    )]
    pub credit_account: UncheckedAccount<'info>,
    /// The `EpochLedger` of `epoch`, the epoch the clock is in; created on the epoch's first
    /// purchase, also at an address someone sent lamports to first.
    /// CHECK: the address is checked by the seeds, the contents by `EpochLedger::load_or_create`.
    #[account(
        mut,
        seeds = [LEDGER_SEED, config.key().as_ref(), &epoch.to_le_bytes()],
        bump,
    )]
    pub ledger: UncheckedAccount<'info>,
    pub token_program: Program<'info, Token>,
    pub system_program: Program<'info, System>,
}

/// The epoch of `config` that the unix time `now` is in (epoch 0 before genesis). With the
/// chain's clock (the Clock sysvar's `unix_timestamp`) it is the epoch `buy_credits` must name.
pub fn epoch_at_time(config: &Config, now: i64) -> u64 {
    epoch_at(config.genesis_ts, config.epoch_length_secs, now).unwrap_or(0)
}

/// The log line of a purchase that names epoch `given` while the clock (`now`, unix seconds) is
/// in epoch `current`.
pub fn wrong_epoch_log(given: u64, now: i64, current: u64) -> String {
    format!(
        "buy_credits names epoch {given} but the clock ({now}) is in epoch {current}: a purchase \
         sent just before an epoch boundary can land after it; read the epoch from the chain's \
         clock and send again"
    )
}

/// Burns `token_amount` of the payer's tokens and credits `beneficiary` at the posted price.
///
/// Effects: a real SPL Token burn; `credits = ⌊token_amount · price / 10^decimals⌋` added to the
/// beneficiary's balance; the burn and the credits recorded in the current epoch's ledger and in
/// the deployment's totals; the beneficiary's first purchase of the epoch adds a checkpoint to
/// its credit account (`CreditAccount::checkpoint_purchase`, the oldest of
/// `PURCHASE_CHECKPOINTS` dropped), so oracles can tell its purchases through each epoch they
/// still have to close.
///
/// `epoch` names the epoch the clock is in, whose ledger records the purchase (the ledger's
/// address depends on it, so clients derive it from the argument). A purchase signed for one
/// epoch that lands after the epoch boundary is refused with `WrongEpoch` and changes nothing;
/// the client reads the epoch again from the chain's clock and resends.
///
/// Checks: not paused; `epoch` is the epoch the clock is in; a positive amount; a price was
/// posted by the current oracle set no longer ago than the staleness bound; at least `min_credits` (and at least one) credits result, so a price move between
/// signing and landing cannot shortchange the buyer; the payer's token account holds the
/// configured mint; no overflow anywhere.
pub fn handler(
    ctx: Context<BuyCredits>,
    token_amount: u64,
    min_credits: u64,
    beneficiary: Pubkey,
    epoch: u64,
) -> Result<()> {
    let now = Clock::get()?.unix_timestamp;
    let config = &ctx.accounts.config;
    require!(!config.is_paused(now), BackhaulError::Paused);
    let current = epoch_at_time(config, now);
    if epoch != current {
        msg!("{}", wrong_epoch_log(epoch, now, current));
        return err!(BackhaulError::WrongEpoch);
    }
    require!(token_amount > 0, BackhaulError::ZeroAmount);
    require!(beneficiary != Pubkey::default(), BackhaulError::InvalidKey);
    let feed = &ctx.accounts.price_feed;
    require!(feed.credits_per_token > 0, BackhaulError::NoPrice);
    let price = feed
        .usable_price(now, config.economics.price_max_age_secs)
        .ok_or(BackhaulError::PriceStale)?;
    let credits = credits_for_tokens(token_amount, price, config.decimals).map_err(core_error)?;
    require!(
        credits >= min_credits && credits > 0,
        BackhaulError::SlippageExceeded
    );
    let config_key = config.key();

    token::burn(
        CpiContext::new(
            ctx.accounts.token_program.key(),
            Burn {
                mint: ctx.accounts.mint.to_account_info(),
                from: ctx.accounts.payer_tokens.to_account_info(),
                authority: ctx.accounts.payer.to_account_info(),
            },
        ),
        token_amount,
    )?;

    let credit_info = ctx.accounts.credit_account.to_account_info();
    let mut account = CreditAccount::load_or_create(
        &credit_info,
        &ctx.accounts.payer.to_account_info(),
        &ctx.accounts.system_program.to_account_info(),
        &config_key,
        &beneficiary,
        ctx.bumps.credit_account,
        ctx.program_id,
    )?;
    account.checkpoint_purchase(epoch)?;
    account.balance = account
        .balance
        .checked_add(credits)
        .ok_or(BackhaulError::Overflow)?;
    account.issued = account
        .issued
        .checked_add(credits)
        .ok_or(BackhaulError::Overflow)?;
    account.tokens_burned = account
        .tokens_burned
        .checked_add(token_amount)
        .ok_or(BackhaulError::Overflow)?;
    let balance = account.balance;
    pda::store(&*account, &credit_info)?;

    let mut ledger = EpochLedger::load_or_create(
        &ctx.accounts.ledger.to_account_info(),
        &ctx.accounts.payer.to_account_info(),
        &ctx.accounts.system_program.to_account_info(),
        &config_key,
        epoch,
        ctx.bumps.ledger,
        ctx.program_id,
    )?;
    require!(!ledger.sealed, BackhaulError::LedgerSealed);
    ledger.tokens_burned = ledger
        .tokens_burned
        .checked_add(token_amount)
        .ok_or(BackhaulError::Overflow)?;
    ledger.credits_issued = ledger
        .credits_issued
        .checked_add(credits)
        .ok_or(BackhaulError::Overflow)?;
    ledger.store(&ctx.accounts.ledger.to_account_info())?;

    let config = &mut ctx.accounts.config;
    config.total_burned = config
        .total_burned
        .checked_add(token_amount)
        .ok_or(BackhaulError::Overflow)?;
    config.credits_issued = config
        .credits_issued
        .checked_add(credits)
        .ok_or(BackhaulError::Overflow)?;
    config.invariant()?;
    let (total_burned, credits_issued) = (config.total_burned, config.credits_issued);

    emit_cpi!(CreditsPurchased {
        config: config_key,
        payer: ctx.accounts.payer.key(),
        buyer: beneficiary,
        epoch,
        tokens_burned: token_amount,
        credits,
        credits_per_token: price,
        balance,
        total_burned,
        credits_issued,
    });
    Ok(())
}
