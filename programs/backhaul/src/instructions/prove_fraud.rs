use crate::constants::*;
use crate::error::BackhaulError;
use crate::events::FraudProven;
use crate::state::*;
use anchor_lang::prelude::*;
use backhaul_core::cost::{purchases_through, PurchaseCheckpoint as CoreCheckpoint, Purchases};
use backhaul_core::merkle::TreeKind;
use backhaul_core::sum_tree::{verify, verify_absent, verify_disorder, Commitment, Scope};
use backhaul_core::BPS_DENOMINATOR;

#[event_cpi]
#[derive(Accounts)]
#[instruction(epoch: u64, buffer_id: u64, buyer: Pubkey)]
pub struct ProveFraud<'info> {
    /// Anyone: wrote the proof into `buffer`, receives the bounty and the buffer's rent.
    #[account(mut)]
    pub prover: Signer<'info>,
    /// Receives the slashed lamports beyond the bounty, for good.
    #[account(mut)]
    pub config: Box<Account<'info, Config>>,
    /// The record of `epoch`, whose proposal is in its challenge period.
    #[account(
        mut,
        seeds = [EPOCH_SEED, config.key().as_ref(), &epoch.to_le_bytes()],
        bump = epoch_record.bump,
        has_one = config,
    )]
    pub epoch_record: Box<Account<'info, EpochRecord>>,
    /// A decrease proof's earlier finalized epoch (none for the other kinds).
    #[account(has_one = config)]
    pub earlier_record: Option<Box<Account<'info, EpochRecord>>>,
    /// An overspend proof's buyer's credit account `["credits", config, buyer]` (`buyer` is the
    /// leaf's account), which need not exist: a buyer with no account bought nothing. None for
    /// the other kinds.
    /// CHECK: the address by the seeds; the contents are read in the handler if it exists.
    #[account(seeds = [CREDITS_SEED, config.key().as_ref(), buyer.as_ref()], bump)]
    pub credit_account: Option<UncheckedAccount<'info>>,
    /// The prover's proof buffer `buffer_id` holding a `FraudProof`; consumed and closed.
    #[account(
        mut,
        seeds = [PROOF_BUFFER_SEED, config.key().as_ref(), prover.key().as_ref(), &buffer_id.to_le_bytes()],
        bump = buffer.bump,
        has_one = config,
        constraint = buffer.owner == prover.key() @ BackhaulError::InvalidProofBuffer,
        close = prover,
    )]
    pub buffer: Box<Account<'info, ProofBuffer>>,
    // Remaining accounts: the bond PDAs `["bond", config, oracle]` of the oracles that voted the
    // challenged digest, in the order of their votes, writable (existing or not).
}

/// Refutes the proposal of `epoch` with the fraud proof in `buffer`. Anyone may send it, also
/// while paused, until the proposal's challenge period ends.
///
/// Effects: the digest is refused for good in this epoch; the epoch is `Vetoed` (the next vote
/// starts a new round; no guardian veto is used up); every lamport bonded by the oracles that
/// voted the digest is slashed, [`FRAUD_BOUNTY_BPS`] of it to the prover, the rest to the config
/// account, which nothing takes lamports from; the buffer is closed, its rent to the prover.
///
/// `buyer` names an overspend proof's buyer (the default key for the other kinds).
///
/// Checks: the epoch is `Proposed` and `finalizable_at` has not come; the proof shows one of:
/// a cumulative amount lower than the same account's in an earlier finalized epoch (or absent
/// with a positive earlier amount); two adjacent leaves out of order or with the same account;
/// a buyer's usage leaf above the credits it bought through the epoch. The remaining accounts are
/// the voters' bond addresses in vote order.
pub fn handler<'info>(
    ctx: Context<'info, ProveFraud<'info>>,
    epoch: u64,
    _buffer_id: u64,
    buyer: Pubkey,
) -> Result<()> {
    let now = Clock::get()?.unix_timestamp;
    let record = &ctx.accounts.epoch_record;
    require!(
        record.status == EpochStatus::Proposed && now < record.finalizable_at,
        BackhaulError::NoProposalToChallenge
    );
    let config_key = ctx.accounts.config.key();
    let proof: FraudProof = ctx
        .accounts
        .buffer
        .decode(&ctx.accounts.buffer.to_account_info())?;
    let kind = check_fraud(&ctx, &config_key, epoch, &buyer, &proof)?;

    let digest = record.proposal_digest;
    let voters: Vec<Pubkey> = record
        .votes
        .iter()
        .filter(|v| v.digest == digest)
        .map(|v| v.oracle)
        .collect();
    let slashed = slash(&voters, ctx.remaining_accounts, &config_key, ctx.program_id)?;
    let bounty = u64::try_from(
        u128::from(slashed)
            .checked_mul(u128::from(FRAUD_BOUNTY_BPS))
            .and_then(|n| n.checked_div(u128::from(BPS_DENOMINATOR)))
            .ok_or(BackhaulError::Overflow)?,
    )
    .map_err(|_| BackhaulError::Overflow)?;
    let kept = slashed.checked_sub(bounty).ok_or(BackhaulError::Overflow)?;
    credit(&ctx.accounts.prover.to_account_info(), bounty)?;
    credit(&ctx.accounts.config.to_account_info(), kept)?;

    let record = &mut ctx.accounts.epoch_record;
    let round = record.round;
    record.refute(digest)?;
    emit_cpi!(FraudProven {
        config: config_key,
        epoch,
        round,
        prover: ctx.accounts.prover.key(),
        digest,
        kind,
        voters,
        slashed,
        bounty,
    });
    Ok(())
}

/// Checks `proof` against the proposal under challenge; returns its kind for the event.
fn check_fraud(
    ctx: &Context<ProveFraud>,
    config: &Pubkey,
    epoch: u64,
    buyer: &Pubkey,
    proof: &FraudProof,
) -> Result<u8> {
    let proposal = &ctx.accounts.epoch_record.proposal;
    let scope = |tree: Tree, epoch: u64| Scope {
        kind: tree.into(),
        config: config.to_bytes(),
        epoch,
    };
    let shown = match proof {
        FraudProof::Decrease {
            tree,
            earlier,
            later,
        } => {
            let earlier_record = ctx
                .accounts
                .earlier_record
                .as_ref()
                .ok_or(BackhaulError::WrongEarlierEpoch)?;
            require!(
                earlier_record.status == EpochStatus::Finalized && earlier_record.epoch < epoch,
                BackhaulError::WrongEarlierEpoch
            );
            let before = commitment(&earlier_record.proposal, *tree);
            let now = commitment(proposal, *tree);
            let proposed = scope(*tree, epoch);
            verify(
                &scope(*tree, earlier_record.epoch),
                &before,
                &earlier.to_core(),
            ) && match later {
                Standing::Present(leaf) => {
                    leaf.account == earlier.account
                        && leaf.amount < earlier.amount
                        && verify(&proposed, &now, &leaf.to_core())
                }
                absent => {
                    earlier.amount > 0
                        && absent.absence().is_some_and(|a| {
                            verify_absent(&proposed, &now, &earlier.account.to_bytes(), &a)
                        })
                }
            }
        }
        FraudProof::Disorder { tree, left, right } => verify_disorder(
            &scope(*tree, epoch),
            &commitment(proposal, *tree),
            &left.to_core(),
            &right.to_core(),
        ),
        FraudProof::Overspend { leaf } => {
            require_keys_eq!(leaf.account, *buyer, BackhaulError::InvalidCreditAccount);
            let bought = credits_bought(ctx, config, buyer, epoch)?;
            leaf.amount > bought
                && verify(
                    &scope(Tree::Usage, epoch),
                    &commitment(proposal, Tree::Usage),
                    &leaf.to_core(),
                )
        }
    };
    require!(shown, BackhaulError::NotFraud);
    Ok(match proof {
        FraudProof::Decrease { .. } => 0,
        FraudProof::Disorder { .. } => 1,
        FraudProof::Overspend { .. } => 2,
    })
}

/// What a proposal commits for one tree.
fn commitment(p: &EpochProposal, tree: Tree) -> Commitment {
    match TreeKind::from(tree) {
        TreeKind::Reward => Commitment {
            root: p.reward_root,
            total: p.reward_total,
            leaf_count: p.reward_leaf_count,
        },
        TreeKind::Usage => Commitment {
            root: p.usage_root,
            total: p.usage_total,
            leaf_count: p.usage_leaf_count,
        },
    }
}

/// The credits `buyer` bought through `epoch`, from its credit account (none: zero). When the
/// account no longer remembers that epoch exactly the figure is an upper bound
/// (`purchases_through`), so a leaf above it is above what the buyer bought.
fn credits_bought(
    ctx: &Context<ProveFraud>,
    config: &Pubkey,
    buyer: &Pubkey,
    epoch: u64,
) -> Result<u64> {
    let info = ctx
        .accounts
        .credit_account
        .as_ref()
        .ok_or(BackhaulError::InvalidCreditAccount)?;
    if info.owner != ctx.program_id {
        return Ok(0);
    }
    let account = CreditAccount::try_deserialize(&mut &info.try_borrow_data()?[..])?;
    require!(
        account.config == *config && account.buyer == *buyer,
        BackhaulError::InvalidCreditAccount
    );
    let checkpoints: Vec<CoreCheckpoint> = account
        .purchase_checkpoints()
        .iter()
        .map(|c| CoreCheckpoint {
            epoch: c.epoch,
            before: Purchases {
                credits: c.issued_before,
                tokens: c.tokens_before,
            },
        })
        .collect();
    let total = Purchases {
        credits: account.issued,
        tokens: account.tokens_burned,
    };
    Ok(purchases_through(total, &checkpoints, epoch).credits)
}

/// Takes every bonded lamport of each voter's bond; returns the total. `accounts` must be the
/// voters' bond addresses in order; a bond that does not exist has nothing to take.
fn slash(
    voters: &[Pubkey],
    accounts: &[AccountInfo],
    config: &Pubkey,
    program_id: &Pubkey,
) -> Result<u64> {
    require!(
        accounts.len() == voters.len(),
        BackhaulError::WrongBondAccounts
    );
    let mut total: u64 = 0;
    for (voter, info) in voters.iter().zip(accounts) {
        let (address, _) =
            Pubkey::find_program_address(&[BOND_SEED, config.as_ref(), voter.as_ref()], program_id);
        require_keys_eq!(address, info.key(), BackhaulError::WrongBondAccounts);
        if info.owner != program_id {
            continue;
        }
        require!(info.is_writable, BackhaulError::WrongBondAccounts);
        let mut bond = OracleBond::try_deserialize(&mut &info.try_borrow_data()?[..])?;
        require!(
            bond.config == *config && bond.oracle == *voter,
            BackhaulError::WrongBondAccounts
        );
        let amount = OracleBond::bonded(info)?;
        **info.try_borrow_mut_lamports()? = info
            .lamports()
            .checked_sub(amount)
            .ok_or(BackhaulError::Overflow)?;
        bond.slashed = bond
            .slashed
            .checked_add(amount)
            .ok_or(BackhaulError::Overflow)?;
        pda::store(&bond, info)?;
        total = total.checked_add(amount).ok_or(BackhaulError::Overflow)?;
    }
    Ok(total)
}

/// Adds `amount` lamports to `info`.
fn credit(info: &AccountInfo, amount: u64) -> Result<()> {
    let balance = info
        .lamports()
        .checked_add(amount)
        .ok_or(BackhaulError::Overflow)?;
    **info.try_borrow_mut_lamports()? = balance;
    Ok(())
}
