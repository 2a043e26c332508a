use crate::constants::*;
use crate::error::BackhaulError;
use crate::instructions::claim::{pay, Payout};
use crate::state::*;
use anchor_lang::prelude::*;
use anchor_spl::token::{Token, TokenAccount};

/// `claim`'s accounts, and the payer's proof buffer holding the proof.
#[event_cpi]
#[derive(Accounts)]
#[instruction(epoch: u64, cumulative: u64, buffer_id: u64)]
pub struct ClaimFromBuffer<'info> {
    /// Pays the fee and, on the first claim, the operator's claim record; owns the buffer and
    /// gets its rent back.
    #[account(mut)]
    pub payer: Signer<'info>,
    #[account(mut, has_one = vault)]
    pub config: Box<Account<'info, Config>>,
    /// The record of `epoch`, a finalized epoch whose reward tree holds the operator's leaf.
    #[account(
        seeds = [EPOCH_SEED, config.key().as_ref(), &epoch.to_le_bytes()],
        bump = epoch_record.bump,
        has_one = config,
    )]
    pub epoch_record: Box<Account<'info, EpochRecord>>,
    /// CHECK: only a key: it names the leaf and must own `recipient`; it need not sign.
    pub operator: UncheckedAccount<'info>,
    /// What the operator has claimed (`OperatorClaim`), created on its first claim.
    /// CHECK: as in `claim`: an existing record by its contents, a new one by its seeds.
    #[account(
        mut,
        seeds = [CLAIM_SEED, config.key().as_ref(), operator.key().as_ref()],
        bump,
    )]
    pub operator_claim: UncheckedAccount<'info>,
    /// The deployment's vault (`has_one` on the config).
    #[account(mut, seeds = [VAULT_SEED, config.key().as_ref()], bump = config.vault_bump)]
    pub vault: Box<Account<'info, TokenAccount>>,
    /// The operator's own token account for the network token.
    #[account(mut, token::mint = config.mint, token::authority = operator)]
    pub recipient: Box<Account<'info, TokenAccount>>,
    /// The payer's proof buffer `buffer_id` holding a `BufferedProof`; consumed and closed.
    #[account(
        mut,
        seeds = [PROOF_BUFFER_SEED, config.key().as_ref(), payer.key().as_ref(), &buffer_id.to_le_bytes()],
        bump = buffer.bump,
        has_one = config,
        constraint = buffer.owner == payer.key() @ BackhaulError::InvalidProofBuffer,
        close = payer,
    )]
    pub buffer: Box<Account<'info, ProofBuffer>>,
    pub token_program: Program<'info, Token>,
    pub system_program: Program<'info, System>,
}

/// `claim` with the proof (index and siblings) read from a proof buffer, for proofs that do not
/// fit one transaction (deep trees, or a third party paying). Same effects and checks as
/// `claim`; the buffer is closed, its rent back to the payer.
pub fn handler(
    ctx: Context<ClaimFromBuffer>,
    _epoch: u64,
    cumulative: u64,
    _buffer_id: u64,
) -> Result<()> {
    let proof: BufferedProof = ctx
        .accounts
        .buffer
        .decode(&ctx.accounts.buffer.to_account_info())?;
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
        proof.index,
        &proof.siblings,
    )?;
    emit_cpi!(event);
    Ok(())
}
