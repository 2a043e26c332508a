//! Proof buffers from the command line: a proof that does not fit one transaction is written
//! into one of the signer's buffers (opened, then written 800 bytes at a time, each write its
//! own transaction, with a progress line), consumed by the instruction that checks it, and
//! closed again when that instruction fails, so that its rent comes back.

use crate::context::Context;
use crate::tx;
use anyhow::Context as _;
use backhaul_sdk::state::ProofBuffer;
use backhaul_sdk::{buffer, ix, Deployment};
use solana_sdk::instruction::Instruction;
use solana_sdk::message::AddressLookupTableAccount;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::Signature;

/// A buffer number derived from what the proof is for (`parts`), so that a retry of the same
/// claim, settlement or fraud proof finds the buffer of its earlier attempt.
pub fn id_for(parts: &[&[u8]]) -> u64 {
    let h = backhaul_core::merkle::sha256v(parts);
    let mut first = [0u8; 8];
    first.copy_from_slice(&h[..8]);
    u64::from_le_bytes(first)
}

/// Opens the signer's buffer `id` and writes `payload` into it; `what` names the proof in the
/// progress line. A buffer left at `id` by an earlier attempt is reused when it has the right
/// length (and rewritten: writes are idempotent), or closed and opened anew.
pub async fn write(
    ctx: &Context,
    d: &Deployment,
    id: u64,
    payload: &[u8],
    what: &str,
) -> anyhow::Result<Pubkey> {
    let owner = ctx.signer_pubkey()?;
    let address = d.proof_buffer(&owner, id);
    let mut ixs = buffer::fill(d, &owner, id, payload).into_iter();
    let open = ixs
        .next()
        .context("no instruction opens the proof buffer")?;
    let writes: Vec<Instruction> = ixs.collect();
    match ctx.account::<ProofBuffer>(&address).await? {
        Some(b) if usize::try_from(b.len).ok() == Some(payload.len()) => {
            tracing::info!(%address, what, "reusing the proof buffer of an earlier attempt");
        }
        Some(_) => {
            let close = ix::close_proof_buffer(d, &owner, id);
            tx::send(
                ctx,
                &format!("{what}: close an earlier proof buffer"),
                &[close],
                &[],
            )
            .await?;
            tx::send(ctx, &format!("{what}: open a proof buffer"), &[open], &[]).await?;
        }
        None => {
            tx::send(ctx, &format!("{what}: open a proof buffer"), &[open], &[]).await?;
        }
    }
    let chunks = writes.len();
    for (i, write) in writes.into_iter().enumerate() {
        let n = i.saturating_add(1);
        let step = format!("{what}: writing the proof buffer ({n} of {chunks})");
        if let Err(e) = tx::send(ctx, &step, &[write], &[]).await {
            close(ctx, d, id, what).await;
            return Err(e);
        }
        let written = n.saturating_mul(buffer::CHUNK).min(payload.len());
        tracing::info!(
            %address,
            written,
            total = payload.len(),
            "{what}: proof buffer write {n} of {chunks} landed"
        );
    }
    Ok(address)
}

/// Closes the signer's buffer `id`, its rent back; logs (does not fail) when it cannot.
pub async fn close(ctx: &Context, d: &Deployment, id: u64, what: &str) {
    let Ok(owner) = ctx.signer_pubkey() else {
        return;
    };
    let step = format!("{what}: close the proof buffer");
    match tx::send(ctx, &step, &[ix::close_proof_buffer(d, &owner, id)], &[]).await {
        Ok(sig) => tracing::info!(%sig, what, "closed the proof buffer; its rent is back"),
        Err(e) => tracing::warn!(
            error = %format!("{e:#}"),
            what,
            "could not close the proof buffer: close it with the same keypair later \
             (its rent stays in it until then)"
        ),
    }
}

/// Sends `direct` in one transaction when it fits; otherwise writes `payload` into the signer's
/// buffer `id` and sends `buffered` (the instruction that consumes it), closing the buffer if
/// that fails.
pub async fn send_either(
    ctx: &Context,
    d: &Deployment,
    what: &str,
    direct: Instruction,
    buffered: (u64, &[u8], Instruction),
    table: Option<&AddressLookupTableAccount>,
) -> anyhow::Result<Signature> {
    if tx::fits(ctx, std::slice::from_ref(&direct), table)? {
        return tx::send_with_table(ctx, what, &[direct], &[], table).await;
    }
    let (id, payload, consume) = buffered;
    tracing::info!(
        what,
        bytes = payload.len(),
        "the proof does not fit one transaction: sending it through a proof buffer"
    );
    write(ctx, d, id, payload, what).await?;
    match tx::send_with_table(ctx, what, &[consume], &[], table).await {
        Ok(sig) => Ok(sig),
        Err(e) => {
            close(ctx, d, id, what).await;
            Err(e)
        }
    }
}
