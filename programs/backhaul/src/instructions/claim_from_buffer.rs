use crate::constants::*;
use crate::error::BackhaulError;
use crate::instructions::claim::{pay, Payout};
use crate::state::*;
use anchor_lang::prelude::*;
use anchor_spl::token::Token;

/// `claim`'s accounts, and the payer's proof buffer holding the proof.
#[event_cpi]
#[derive(Accounts)]
#[instruction(epoch: u64, cumulative: u64, buffer_id: u64)]
pub struct ClaimFromBuffer<'info> {
    /// Pays the fee and, on the first claim, the operator's claim record; owns the buffer and
    /// gets its rent back.
    #[account(mut)]
    pub payer: Signer<'info>,
    /// CHECK: a `Config` of this program whose vault is `vault`, as in `claim`.
    #[cfg(not(feature = "idl-build"))]
    #[account(mut)]
    pub config: UncheckedAccount<'info>,
    #[cfg(feature = "idl-build")]
    #[account(mut, has_one = vault)]
    pub config: Box<Account<'info, Config>>,
    /// CHECK: an `EpochRecord` of this program naming `config` and `epoch`, as in `claim`.
    #[cfg(not(feature = "idl-build"))]
    pub epoch_record: UncheckedAccount<'info>,
    /// The record of `epoch`, a finalized epoch whose reward tree holds the operator's leaf.
    #[cfg(feature = "idl-build")]
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
    /// CHECK: as in `claim`: the address the config names; SPL Token checks the rest.
    #[cfg_attr(not(feature = "idl-build"), account(mut))]
    #[cfg_attr(
        feature = "idl-build",
        account(mut, seeds = [VAULT_SEED, config.key().as_ref()], bump = config.vault_bump)
    )]
    pub vault: UncheckedAccount<'info>,
    /// The operator's own token account for the network token.
    /// CHECK: as in `claim`: an SPL Token account of the config's mint owned by `operator`.
    #[account(mut)]
    pub recipient: UncheckedAccount<'info>,
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
    epoch: u64,
    cumulative: u64,
    _buffer_id: u64,
) -> Result<()> {
    let proof: BufferedProof = ctx
        .accounts
        .buffer
        .decode(&ctx.accounts.buffer.to_account_info())?;
    let a = &*ctx.accounts;
    // The IDL build declares the config and the epoch record as the account types they are.
    #[cfg(not(feature = "idl-build"))]
    let (config, epoch_record): (&AccountInfo, &AccountInfo) =
        (a.config.as_ref(), a.epoch_record.as_ref());
    #[cfg(feature = "idl-build")]
    let (config, epoch_record): (&AccountInfo, &AccountInfo) =
        ((*a.config).as_ref(), (*a.epoch_record).as_ref());
    let event = pay(
        Payout {
            payer: a.payer.as_ref(),
            config,
            epoch_record,
            epoch,
            operator: a.operator.key(),
            operator_claim: a.operator_claim.as_ref(),
            vault: a.vault.as_ref(),
            recipient: a.recipient.as_ref(),
            token_program: a.token_program.key(),
            system_program: a.system_program.as_ref(),
        },
        ctx.program_id,
        cumulative,
        proof.index,
        &proof.siblings,
    )?;
    emit_cpi!(event);
    Ok(())
}
