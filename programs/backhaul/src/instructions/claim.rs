use crate::constants::*;
use crate::error::BackhaulError;
use crate::events::RewardClaimed;
use crate::state::*;
use anchor_lang::prelude::*;
use anchor_spl::token::{self, Token, Transfer};
use backhaul_core::merkle::TreeKind;

// Accounts whose contents identify them (a program-owned account of the right type naming this
// deployment, or the deployment's own vault) are checked by those contents, which costs nothing
// beyond reading them; their seeds are stated for clients only, in the IDL build, since
// re-deriving each address would cost a `create_program_address` (1,500 units) apiece. The config
// and the epoch record are read field by field (`state::view`), not deserialized whole, and only
// the config's claimed total is written back; the IDL build declares them as the account types
// they are, with the same relations.
#[event_cpi]
#[derive(Accounts)]
#[instruction(epoch: u64)]
pub struct Claim<'info> {
    /// Pays the fee and, on the first claim, the operator's claim record. Anyone may send a claim.
    #[account(mut)]
    pub payer: Signer<'info>,
    /// CHECK: a `Config` of this program (owner and discriminator checked by `ConfigView::load`),
    /// whose vault is `vault`.
    #[cfg(not(feature = "idl-build"))]
    #[account(mut)]
    pub config: UncheckedAccount<'info>,
    #[cfg(feature = "idl-build")]
    #[account(mut, has_one = vault)]
    pub config: Box<Account<'info, Config>>,
    /// CHECK: an `EpochRecord` of this program naming `config` and `epoch` (in the handler).
    #[cfg(not(feature = "idl-build"))]
    pub epoch_record: UncheckedAccount<'info>,
    /// The record of `epoch`, a finalized epoch whose reward tree holds the operator's leaf:
    /// identified by its type, its deployment and its epoch.
    #[cfg(feature = "idl-build")]
    #[account(
        seeds = [EPOCH_SEED, config.key().as_ref(), &epoch.to_le_bytes()],
        bump = epoch_record.bump,
        has_one = config,
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
    /// CHECK: the address the config names (checked in the handler); SPL Token checks the rest.
    #[cfg_attr(not(feature = "idl-build"), account(mut))]
    #[cfg_attr(
        feature = "idl-build",
        account(mut, seeds = [VAULT_SEED, config.key().as_ref()], bump = config.vault_bump)
    )]
    pub vault: UncheckedAccount<'info>,
    /// The operator's own token account for the network token; the only place the tokens go.
    /// CHECK: an SPL Token account of the config's mint owned by `operator` (in the handler).
    #[account(mut)]
    pub recipient: UncheckedAccount<'info>,
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
    epoch: u64,
    cumulative: u64,
    index: u64,
    proof: Vec<ProofNode>,
) -> Result<()> {
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
        index,
        &proof,
    )?;
    emit_cpi!(event);
    Ok(())
}

/// The accounts a claim pays with, whether its proof came in the instruction or a buffer.
pub(crate) struct Payout<'a, 'info> {
    pub payer: &'a AccountInfo<'info>,
    /// The deployment's `Config` (checked by [`ConfigView::load`]).
    pub config: &'a AccountInfo<'info>,
    /// The record of `epoch` (checked by [`EpochRecordView::load`] and against the config and
    /// `epoch`).
    pub epoch_record: &'a AccountInfo<'info>,
    /// The epoch the instruction names.
    pub epoch: u64,
    pub operator: Pubkey,
    pub operator_claim: &'a AccountInfo<'info>,
    /// The vault (checked against the config's).
    pub vault: &'a AccountInfo<'info>,
    /// The operator's token account (checked here: an SPL Token account of the config's mint
    /// owned by the operator).
    pub recipient: &'a AccountInfo<'info>,
    pub token_program: Pubkey,
    pub system_program: &'a AccountInfo<'info>,
}

/// Checks the accounts and the proof and pays (see [`handler`]); returns the event to emit.
pub(crate) fn pay(
    a: Payout,
    program_id: &Pubkey,
    cumulative: u64,
    index: u64,
    proof: &[ProofNode],
) -> Result<RewardClaimed> {
    // The writable accounts are four different accounts (as Anchor checks for typed accounts):
    // the vault as the recipient, say, would keep the tokens yet count the claim.
    let writable = [
        a.config.key,
        a.operator_claim.key,
        a.vault.key,
        a.recipient.key,
    ];
    for (i, key) in writable.iter().enumerate() {
        if writable[..i].contains(key) {
            return Err(Error::from(ErrorCode::ConstraintDuplicateMutableAccount)
                .with_pubkeys((**key, **key)));
        }
    }
    let config_key = a.config.key();
    let mut config = ConfigView::load(a.config, program_id)?;
    // `has_one = vault` on the config.
    if a.vault.key() != config.vault {
        return Err(Error::from(ErrorCode::ConstraintHasOne)
            .with_account_name("config")
            .with_pubkeys((a.vault.key(), config.vault)));
    }
    let record = EpochRecordView::load(a.epoch_record, program_id)?;
    // `has_one = config` on the epoch record, and the record is the argument's epoch's.
    if record.config != config_key {
        return Err(Error::from(ErrorCode::ConstraintHasOne)
            .with_account_name("epoch_record")
            .with_pubkeys((record.config, config_key)));
    }
    require!(record.epoch == a.epoch, BackhaulError::WrongEpochRecord);
    // `token::mint = config.mint, token::authority = operator` on the recipient.
    let operator = a.operator;
    let recipient = TokenAccountView::load(a.recipient)?;
    if recipient.mint != config.mint {
        return Err(Error::from(ErrorCode::ConstraintTokenMint)
            .with_account_name("recipient")
            .with_pubkeys((recipient.mint, config.mint)));
    }
    if recipient.owner != operator {
        return Err(Error::from(ErrorCode::ConstraintTokenOwner)
            .with_account_name("recipient")
            .with_pubkeys((recipient.owner, operator)));
    }
    require!(
        !config.is_paused(Clock::get()?.unix_timestamp),
        BackhaulError::Paused
    );
    require!(
        record.status == EpochStatus::Finalized,
        BackhaulError::EpochNotFinalized
    );
    check_leaf(
        &TreeCommitment {
            kind: TreeKind::Reward,
            root: record.reward_root,
            total: record.reward_total,
            leaf_count: record.reward_leaf_count,
        },
        &config_key,
        record.epoch,
        &operator,
        cumulative,
        index,
        proof,
    )?;

    // What the operator already claimed: an existing record is read in place; a new one is
    // created (at its PDA, checked by its seeds) and written whole after the transfer.
    let claim_info = a.operator_claim;
    let (fresh, already) = if claim_info.owner == program_id {
        let record = OperatorClaimView::read(&claim_info.try_borrow_data()?)?;
        require!(
            record.config == config_key && record.operator == operator,
            BackhaulError::WrongClaimRecord
        );
        (None, record.claimed)
    } else {
        let (address, bump) = Pubkey::find_program_address(
            &[CLAIM_SEED, config_key.as_ref(), operator.as_ref()],
            program_id,
        );
        require_keys_eq!(address, claim_info.key(), BackhaulError::WrongClaimRecord);
        let claim_seeds: &[&[u8]] = &[CLAIM_SEED, config_key.as_ref(), operator.as_ref(), &[bump]];
        pda::create_pda(
            claim_info,
            a.payer,
            a.system_program,
            claim_seeds,
            OperatorClaim::SIZE,
            program_id,
        )?;
        // A new record is told apart by its creation, never by its contents: an operator whose
        // key is all zeros would otherwise look new at every claim and be paid again each time.
        let record = OperatorClaim {
            config: config_key,
            operator,
            claimed: 0,
            last_epoch: 0,
            bump,
        };
        (Some(record), 0)
    };
    let amount = cumulative
        .checked_sub(already)
        .filter(|a| *a > 0)
        .ok_or(BackhaulError::NothingToClaim)?;

    let seeds = config.signer_seeds();
    token::transfer(
        CpiContext::new_with_signer(
            a.token_program,
            Transfer {
                from: a.vault.clone(),
                to: a.recipient.clone(),
                authority: a.config.clone(),
            },
            &[&seeds],
        ),
        amount,
    )?;

    let epoch = record.epoch;
    match fresh {
        Some(mut record) => {
            record.claimed = cumulative;
            record.last_epoch = epoch;
            pda::store(&record, claim_info)?;
        }
        None => OperatorClaimView::store(claim_info, cumulative, epoch)?,
    }

    // The only field of the config a claim changes, checked against what was minted.
    let total_claimed = config.add_claimed(a.config, amount)?;
    Ok(RewardClaimed {
        config: config_key,
        operator,
        recipient: a.recipient.key(),
        epoch,
        cumulative,
        amount,
        total_claimed,
    })
}
