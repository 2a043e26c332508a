use crate::constants::*;
use crate::error::BackhaulError;
use crate::events::RewardClaimed;
use crate::state::*;
use anchor_lang::prelude::*;
use anchor_spl::token::{self, Token, TokenAccount, Transfer};
use backhaul_core::merkle::TreeKind;

// Accounts whose contents identify them (a program-owned account of the right type naming this
// deployment, or the deployment's own vault) are checked by those contents, which costs nothing
// beyond their deserialization; their seeds are stated for clients only, in the IDL build, since
// re-deriving each address would cost a `create_program_address` (1,500 units) apiece.
#[event_cpi]
#[derive(Accounts)]
#[instruction(epoch: u64)]
pub struct Claim<'info> {
    /// Pays the fee and, on the first claim, the operator's claim record. Anyone may send a claim.
    #[account(mut)]
    pub payer: Signer<'info>,
    #[account(mut, has_one = vault)]
    pub config: Box<Account<'info, Config>>,
    /// The record of `epoch`, a finalized epoch whose reward tree holds the operator's leaf:
    /// identified by its type, its deployment and its epoch.
    #[cfg_attr(
        not(feature = "idl-build"),
        account(
            has_one = config,
            constraint = epoch_record.epoch == epoch @ BackhaulError::WrongEpochRecord,
        )
    )]
    #[cfg_attr(
        feature = "idl-build",
        account(
            seeds = [EPOCH_SEED, config.key().as_ref(), &epoch.to_le_bytes()],
            bump = epoch_record.bump,
            has_one = config,
        )
    )]
    pub epoch_record: Box<Account<'info, EpochRecord>>,
    /// CHECK: only a key: it names the leaf and must own `recipient`; it need not sign.
    pub operator: UncheckedAccount<'info>,
    /// What the operator has claimed (`OperatorClaim`), created on its first claim, also at an
    /// address someone sent lamports to first.
    /// CHECK: an existing record is checked by its contents (owner, type, deployment, operator:
    /// the program creates records only at their PDA), a new one's address by its seeds, in the
    /// handler.
    #[cfg_attr(not(feature = "idl-build"), account(mut))]
    #[cfg_attr(
        feature = "idl-build",
        account(
            mut,
            seeds = [CLAIM_SEED, config.key().as_ref(), operator.key().as_ref()],
            bump,
        )
    )]
    pub operator_claim: UncheckedAccount<'info>,
    /// The deployment's vault (`has_one` on the config).
    #[cfg_attr(not(feature = "idl-build"), account(mut))]
    #[cfg_attr(
        feature = "idl-build",
        account(mut, seeds = [VAULT_SEED, config.key().as_ref()], bump = config.vault_bump)
    )]
    pub vault: Box<Account<'info, TokenAccount>>,
    /// The operator's own token account for the network token; the only place the tokens go.
    #[account(mut, token::mint = config.mint, token::authority = operator)]
    pub recipient: Box<Account<'info, TokenAccount>>,
    pub token_program: Program<'info, Token>,
    pub system_program: Program<'info, System>,
}

/// Pays an operator what its leaf proves it earned, minus what it already claimed.
///
/// Effects: creates the operator's claim record on the first claim; transfers
/// `cumulative − claimed` from the vault to the operator's token account; sets `claimed` to
/// `cumulative`; adds the amount to the deployment's claimed total.
///
/// `epoch` names the epoch whose proof is used, and `epoch_record` must be its record, so clients
/// derive the record's address from the argument.
///
/// Checks: not paused; the epoch is finalized; the proof (the leaf's `index` and at most 32
/// siblings, each a hash and a sum) links the leaf `(operator, cumulative)` of this deployment and
/// epoch to the epoch's reward root, through a top whose sum is the epoch's declared reward total
/// over its declared leaf count (so a tree summing to more than was voted pays nobody); the
/// recipient is owned by the operator and holds the configured mint; something is left to pay.
/// Proofs from older epochs carry smaller cumulative amounts and so can never pay twice.
pub fn handler(
    ctx: Context<Claim>,
    _epoch: u64,
    cumulative: u64,
    index: u64,
    proof: Vec<ProofNode>,
) -> Result<()> {
    let a = &mut *ctx.accounts;
    let event = pay(
        Payout {
            payer: a.payer.to_account_info(),
            config: &mut a.config,
            epoch_record: &a.epoch_record,
            operator: a.operator.key(),
            operator_claim: a.operator_claim.to_account_info(),
            vault: a.vault.to_account_info(),
            recipient: a.recipient.key(),
            recipient_info: a.recipient.to_account_info(),
            token_program: a.token_program.key(),
            system_program: a.system_program.to_account_info(),
        },
        ctx.program_id,
        cumulative,
        index,
        &proof,
    )?;
    emit_cpi!(event);
    Ok(())
}

/// The accounts a claim pays with, whether its proof came in the instruction or a buffer.
pub(crate) struct Payout<'a, 'info> {
    pub payer: AccountInfo<'info>,
    pub config: &'a mut Account<'info, Config>,
    pub epoch_record: &'a EpochRecord,
    pub operator: Pubkey,
    pub operator_claim: AccountInfo<'info>,
    pub vault: AccountInfo<'info>,
    pub recipient: Pubkey,
    pub recipient_info: AccountInfo<'info>,
    pub token_program: Pubkey,
    pub system_program: AccountInfo<'info>,
}

/// Checks the proof and pays (see [`handler`]); returns the event to emit.
pub(crate) fn pay(
    a: Payout,
    program_id: &Pubkey,
    cumulative: u64,
    index: u64,
    proof: &[ProofNode],
) -> Result<RewardClaimed> {
    let config_key = a.config.key();
    let record = a.epoch_record;
    let operator = a.operator;
    require!(
        !a.config.is_paused(Clock::get()?.unix_timestamp),
        BackhaulError::Paused
    );
    require!(
        record.status == EpochStatus::Finalized,
        BackhaulError::EpochNotFinalized
    );
    let p = &record.proposal;
    check_leaf(
        &TreeCommitment {
            kind: TreeKind::Reward,
            root: p.reward_root,
            total: p.reward_total,
            leaf_count: p.reward_leaf_count,
        },
        &config_key,
        record.epoch,
        &operator,
        cumulative,
        index,
        proof,
    )?;

    let claim_info = a.operator_claim;
    let (mut claim, created) = if claim_info.owner == program_id {
        let data = claim_info.try_borrow_data()?;
        (
            Box::new(OperatorClaim::try_deserialize(&mut &data[..])?),
            false,
        )
    } else {
        let (address, bump) = Pubkey::find_program_address(
            &[CLAIM_SEED, config_key.as_ref(), operator.as_ref()],
            program_id,
        );
        require_keys_eq!(address, claim_info.key(), BackhaulError::WrongClaimRecord);
        let claim_seeds: &[&[u8]] = &[CLAIM_SEED, config_key.as_ref(), operator.as_ref(), &[bump]];
        let (mut fresh, created) = pda::load_or_create::<OperatorClaim>(
            &claim_info,
            &a.payer,
            &a.system_program,
            claim_seeds,
            OperatorClaim::SIZE,
            program_id,
        )?;
        fresh.bump = bump;
        (fresh, created)
    };
    // A new record is told apart by its creation, never by its contents: an operator whose key
    // is all zeros would otherwise look new at every claim and be paid again each time.
    if created {
        claim.config = config_key;
        claim.operator = operator;
    }
    require!(
        claim.config == config_key && claim.operator == operator,
        BackhaulError::WrongClaimRecord
    );
    let already = claim.claimed;
    let amount = cumulative
        .checked_sub(already)
        .filter(|a| *a > 0)
        .ok_or(BackhaulError::NothingToClaim)?;

    let seeds = a.config.signer_seeds();
    token::transfer(
        CpiContext::new_with_signer(
            a.token_program,
            Transfer {
                from: a.vault,
                to: a.recipient_info,
                authority: a.config.to_account_info(),
            },
            &[&seeds],
        ),
        amount,
    )?;

    let epoch = record.epoch;
    claim.claimed = cumulative;
    claim.last_epoch = epoch;
    pda::store(&*claim, &claim_info)?;

    let config = a.config;
    config.total_claimed = config
        .total_claimed
        .checked_add(amount)
        .ok_or(BackhaulError::Overflow)?;
    config.invariant()?;
    Ok(RewardClaimed {
        config: config_key,
        operator,
        recipient: a.recipient,
        epoch,
        cumulative,
        amount,
        total_claimed: config.total_claimed,
    })
}
