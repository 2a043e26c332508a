//! What a guardian sends: a fraud proof (its proof buffer opened and written, one transaction
//! each, by [`crate::buffer`], then `prove_fraud` with the voters' bond accounts; the buffer is
//! closed again if the proof fails), or a veto. Every transaction goes through
//! [`crate::tx::send`], which asks for the compute units its simulation used plus the margin.

use crate::context::Context;
use crate::tx;
use anyhow::Context as _;
use backhaul_audit::fraud::Evidence;
use backhaul_sdk::state::EpochRecord;
use backhaul_sdk::{fraud, ix, Deployment};
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::Signature;

/// The proof buffer number a proof against `epoch`'s round `round` is written to: one per round,
/// so a retry finds the buffer of its earlier attempt.
pub fn buffer_id(epoch: u64, round: u32) -> u64 {
    crate::buffer::id_for(&[b"fraud", &epoch.to_le_bytes(), &round.to_le_bytes()])
}

/// The oracles that voted `record`'s proposal, in the order of their votes: their bonds are
/// slashed, and `prove_fraud` takes their bond accounts in this order.
pub fn voters(record: &EpochRecord) -> Vec<Pubkey> {
    record
        .votes
        .iter()
        .filter(|v| v.digest == record.proposal_digest)
        .map(|v| v.oracle)
        .collect()
}

/// Writes `e`'s proof into the signer's buffer ([`crate::buffer::write`]: reused after an
/// earlier attempt, progress lines) and sends `prove_fraud` against `record`'s proposal; closes
/// the buffer (its rent back) if the proof does not land.
pub async fn send_proof(
    ctx: &Context,
    d: &Deployment,
    record: &EpochRecord,
    e: &Evidence,
) -> anyhow::Result<Signature> {
    let prover = ctx.signer_pubkey()?;
    let epoch = record.epoch;
    let id = buffer_id(epoch, record.round);
    let what = format!("fraud proof against epoch {epoch}");
    crate::buffer::write(ctx, d, id, &fraud::payload(&e.proof), &what).await?;
    let prove = ix::prove_fraud(
        d,
        &prover,
        epoch,
        id,
        e.earlier_epoch,
        e.buyer.as_ref(),
        &voters(record),
    );
    match tx::send(ctx, &what, &[prove], &[]).await {
        Ok(sig) => Ok(sig),
        Err(err) => {
            crate::buffer::close(ctx, d, id, &what).await;
            Err(err)
        }
    }
}

/// Vetoes `epoch` (the signer must be a guardian); the checks and the error words are
/// `guardian veto`'s.
pub async fn send_veto(ctx: &Context, epoch: u64) -> anyhow::Result<Signature> {
    let outcome = super::veto(ctx, epoch).await?;
    outcome
        .signature
        .parse()
        .context("the veto's signature does not parse")
}
