//! What a guardian sends: a fraud proof (its proof buffer opened and written, one transaction
//! each, then `prove_fraud` with the voters' bond accounts; the buffer is closed again if the
//! proof fails), or a veto. Every transaction goes through [`crate::tx::send`], which asks for
//! the compute units its simulation used plus the margin.

use crate::context::Context;
use crate::tx;
use anyhow::Context as _;
use backhaul_audit::fraud::Evidence;
use backhaul_sdk::state::{EpochRecord, ProofBuffer};
use backhaul_sdk::{buffer, fraud, ix, Deployment};
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::Signature;

/// The proof buffer number a proof against `epoch`'s round `round` is written to: one per round,
/// so a retry finds the buffer of its earlier attempt.
pub fn buffer_id(epoch: u64, round: u32) -> u64 {
    (epoch << 32) | u64::from(round)
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

/// Writes `e`'s proof into the signer's buffer and sends `prove_fraud` against `record`'s
/// proposal; closes the buffer (its rent back) if the proof does not land.
pub async fn send_proof(
    ctx: &Context,
    d: &Deployment,
    record: &EpochRecord,
    e: &Evidence,
) -> anyhow::Result<Signature> {
    let prover = ctx.signer_pubkey()?;
    let epoch = record.epoch;
    let id = buffer_id(epoch, record.round);
    let payload = fraud::payload(&e.proof);
    let mut ixs = buffer::fill(d, &prover, id, &payload).into_iter();
    let open = ixs
        .next()
        .context("no instruction to open the proof buffer")?;
    let writes: Vec<_> = ixs.collect();
    let address = d.proof_buffer(&prover, id);
    // A buffer left by an earlier attempt at this round is reused when its size fits.
    match ctx.account::<ProofBuffer>(&address).await {
        Ok(Some(b)) if usize::try_from(b.len).ok() == Some(payload.len()) => {
            tracing::info!(epoch, %address, "reusing the proof buffer of an earlier attempt");
        }
        Ok(Some(_)) => {
            tx::send(
                ctx,
                "close the earlier proof buffer",
                &[ix::close_proof_buffer(d, &prover, id)],
                &[],
            )
            .await?;
            tx::send(ctx, "open the proof buffer", &[open], &[]).await?;
        }
        Ok(None) | Err(_) => {
            tx::send(ctx, "open the proof buffer", &[open], &[]).await?;
        }
    }
    let total = payload.len();
    let chunks = writes.len();
    let mut written = 0usize;
    for (i, write) in writes.into_iter().enumerate() {
        let n = i.saturating_add(1);
        let what = format!("write the proof buffer ({n} of {chunks})");
        if let Err(err) = tx::send(ctx, &what, &[write], &[]).await {
            close(ctx, d, &prover, id).await;
            return Err(err);
        }
        written = written.saturating_add(buffer::CHUNK).min(total);
        tracing::info!(
            epoch,
            buffer = %address,
            written,
            total,
            "proof buffer: write {n} of {chunks} landed"
        );
    }
    let prove = ix::prove_fraud(
        d,
        &prover,
        epoch,
        id,
        e.earlier_epoch,
        e.buyer.as_ref(),
        &voters(record),
    );
    match tx::send(ctx, "prove fraud", &[prove], &[]).await {
        Ok(sig) => Ok(sig),
        Err(err) => {
            close(ctx, d, &prover, id).await;
            Err(err)
        }
    }
}

/// Closes the signer's buffer `id`, logging (not failing) when it cannot.
async fn close(ctx: &Context, d: &Deployment, prover: &Pubkey, id: u64) {
    let what = "close the proof buffer";
    match tx::send(ctx, what, &[ix::close_proof_buffer(d, prover, id)], &[]).await {
        Ok(sig) => tracing::info!(%sig, "closed the proof buffer; its rent is back"),
        Err(e) => tracing::warn!(error = %format!("{e:#}"), "could not close the proof buffer"),
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
