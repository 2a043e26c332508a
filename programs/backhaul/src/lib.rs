//! Backhaul: burn-and-mint accounting and reward distribution for a bandwidth-sharing network.
//!
//! Node operators are paid in newly minted network tokens once per epoch. Off-chain oracles
//! compute every operator's cumulative reward and commit them as one Merkle root per epoch; this
//! program makes those rewards safe:
//!
//! - **Quorum.** A root counts only when `m` of the `n` oracles voted for identical values, so a
//!   single compromised oracle cannot move money.
//! - **Challenge window.** A root that reached quorum waits out a challenge period during which a
//!   guardian can veto it; only then can anyone finalize it.
//! - **Delayed governance.** The admin only queues changes; they take effect after a delay of at
//!   least an epoch plus the challenge period, during which a guardian can cancel them.
//! - **Capped emissions.** Finalizing mints exactly the epoch's allocation into the rewards vault,
//!   and refuses anything above the emission schedule, the lifetime cap or the mint rate limiter.
//! - **Cumulative claims.** Leaves hold what an operator earned since genesis; a claim pays that
//!   minus what was already claimed, so proofs from any epoch can be used and none pays twice.
//!
//! All hashing and arithmetic lives in `backhaul-core`, shared with the oracle. Every state change
//! emits an event through `emit_cpi!`.
#![deny(clippy::arithmetic_side_effects)]
#![deny(unused_must_use)]

use anchor_lang::prelude::*;

pub mod constants;
pub mod error;
pub mod events;
pub mod instructions;
pub mod state;

use instructions::*;
use state::{EpochProposal, GovernanceChange, ProofNode};

declare_id!("3sxASsPrgiDAqyZAg5nTtKUjxRFHXD7kq4W1Ta6Z6WFX");

// Where to report a vulnerability, embedded in the deployed program (read by explorers and
// `query-security-txt`). The URLs name the project's public repository; edit them if it moves.
#[cfg(not(feature = "no-entrypoint"))]
solana_security_txt::security_txt! {
    name: "Backhaul",
    project_url: "https://github.com/backhaul-network/backhaul",
    contacts: "link:https://github.com/backhaul-network/backhaul/security/advisories/new",
    policy: "https://github.com/backhaul-network/backhaul/blob/main/SECURITY.md",
    source_code: "https://github.com/backhaul-network/backhaul",
    source_release: "v0.1.0",
    auditors: "None"
}

#[program]
pub mod backhaul {
    use super::*;

    /// Creates the deployment; only the program's upgrade authority may call it.
    pub fn initialize(ctx: Context<Initialize>, params: InitializeParams) -> Result<()> {
        instructions::initialize::handler(ctx, params)
    }

    /// An oracle's vote for an epoch's roots and totals.
    pub fn propose_root(
        ctx: Context<ProposeRoot>,
        epoch: u64,
        proposal: EpochProposal,
    ) -> Result<()> {
        instructions::propose_root::handler(ctx, epoch, proposal)
    }

    /// A guardian stops an epoch before its challenge period ends (a bounded number of times).
    pub fn veto(ctx: Context<Veto>, epoch: u64) -> Result<()> {
        instructions::veto::handler(ctx, epoch)
    }

    /// Mints the next epoch's allocation once its challenge period has passed. Anyone may call.
    pub fn finalize(ctx: Context<Finalize>, epoch: u64) -> Result<()> {
        instructions::finalize::handler(ctx, epoch)
    }

    /// Pays an operator its proven cumulative reward minus what it already claimed, with the
    /// proof of `epoch`.
    pub fn claim(
        ctx: Context<Claim>,
        epoch: u64,
        cumulative: u64,
        index: u64,
        proof: Vec<ProofNode>,
    ) -> Result<()> {
        instructions::claim::handler(ctx, epoch, cumulative, index, proof)
    }

    /// `claim` with the proof read from the payer's proof buffer `buffer_id` (deep trees, or a
    /// third party paying), which it closes.
    pub fn claim_from_buffer(
        ctx: Context<ClaimFromBuffer>,
        epoch: u64,
        cumulative: u64,
        buffer_id: u64,
    ) -> Result<()> {
        instructions::claim_from_buffer::handler(ctx, epoch, cumulative, buffer_id)
    }

    /// `settle_usage` with the proof read from the payer's proof buffer `buffer_id`, which it
    /// closes.
    pub fn settle_from_buffer(
        ctx: Context<SettleFromBuffer>,
        epoch: u64,
        consumed_cumulative: u64,
        buffer_id: u64,
    ) -> Result<()> {
        instructions::settle_from_buffer::handler(ctx, epoch, consumed_cumulative, buffer_id)
    }

    /// An oracle's price submission; posts the quorum's conservative price.
    pub fn submit_price(ctx: Context<SubmitPrice>, credits_per_token: u64) -> Result<()> {
        instructions::submit_price::handler(ctx, credits_per_token)
    }

    /// Burns tokens for non-transferable usage credits at the posted price; `epoch` is the epoch
    /// the clock is in.
    pub fn buy_credits(
        ctx: Context<BuyCredits>,
        token_amount: u64,
        min_credits: u64,
        beneficiary: Pubkey,
        epoch: u64,
    ) -> Result<()> {
        instructions::buy_credits::handler(ctx, token_amount, min_credits, beneficiary, epoch)
    }

    /// Freezes an ended epoch's budget inputs (burns, price). Anyone may call.
    pub fn seal_epoch(ctx: Context<SealEpoch>, epoch: u64) -> Result<()> {
        instructions::seal_epoch::handler(ctx, epoch)
    }

    /// Debits a buyer's proven cumulative usage from its credits, with the proof of `epoch`.
    /// Anyone may call.
    pub fn settle_usage(
        ctx: Context<SettleUsage>,
        epoch: u64,
        consumed_cumulative: u64,
        index: u64,
        proof: Vec<ProofNode>,
    ) -> Result<()> {
        instructions::settle_usage::handler(ctx, epoch, consumed_cumulative, index, proof)
    }

    /// Queues a change of parameters, oracles or guardians (admin); `id` is the config's
    /// `next_change_id`.
    pub fn queue_change(
        ctx: Context<QueueChange>,
        id: u64,
        change: GovernanceChange,
    ) -> Result<()> {
        instructions::queue_change::handler(ctx, id, change)
    }

    /// Cancels a queued change (admin, or a guardian unless the change removes it).
    pub fn cancel_change(ctx: Context<CancelChange>, id: u64) -> Result<()> {
        instructions::cancel_change::handler(ctx, id)
    }

    /// Applies a queued change after its governance delay. Anyone may call.
    pub fn apply_change(ctx: Context<ApplyChange>, id: u64) -> Result<()> {
        instructions::apply_change::handler(ctx, id)
    }

    /// Names the next admin (admin); it takes over when it accepts.
    pub fn propose_admin(ctx: Context<ProposeAdmin>, new_admin: Pubkey) -> Result<()> {
        instructions::propose_admin::handler(ctx, new_admin)
    }

    /// The pending admin takes over.
    pub fn accept_admin(ctx: Context<AcceptAdmin>) -> Result<()> {
        instructions::accept_admin::handler(ctx)
    }

    /// Pauses for at most a day (admin or a guardian) or unpauses (admin).
    pub fn set_paused(ctx: Context<SetPaused>, paused: bool) -> Result<()> {
        instructions::set_paused::handler(ctx, paused)
    }

    /// Refutes `epoch`'s proposal during its challenge period with the fraud proof in a proof
    /// buffer, slashing the bonds of the oracles that voted it. Anyone may call.
    pub fn prove_fraud<'info>(
        ctx: Context<'info, ProveFraud<'info>>,
        epoch: u64,
        buffer_id: u64,
        buyer: Pubkey,
    ) -> Result<()> {
        instructions::prove_fraud::handler(ctx, epoch, buffer_id, buyer)
    }

    /// Opens a proof buffer of `len` bytes for a proof that does not fit one transaction.
    pub fn open_proof_buffer(ctx: Context<OpenProofBuffer>, id: u64, len: u32) -> Result<()> {
        instructions::open_proof_buffer::handler(ctx, id, len)
    }

    /// Writes part of a proof into the owner's buffer `id`.
    pub fn write_proof_buffer(
        ctx: Context<WriteProofBuffer>,
        id: u64,
        offset: u32,
        bytes: Vec<u8>,
    ) -> Result<()> {
        instructions::write_proof_buffer::handler(ctx, id, offset, bytes)
    }

    /// Closes the owner's unused proof buffer `id`, its rent back to the owner.
    pub fn close_proof_buffer(ctx: Context<CloseProofBuffer>, id: u64) -> Result<()> {
        instructions::close_proof_buffer::handler(ctx, id)
    }

    /// Adds lamports to an oracle's bond, which voting requires when the config asks for one.
    pub fn deposit_bond(ctx: Context<DepositBond>, amount: u64) -> Result<()> {
        instructions::deposit_bond::handler(ctx, amount)
    }

    /// Starts withdrawing an oracle's bond; it cannot vote from then on.
    pub fn unbond(ctx: Context<Unbond>) -> Result<()> {
        instructions::unbond::handler(ctx)
    }

    /// Withdraws an unbonded oracle's bond two challenge periods after `unbond`.
    pub fn withdraw_bond(ctx: Context<WithdrawBond>) -> Result<()> {
        instructions::withdraw_bond::handler(ctx)
    }
}
