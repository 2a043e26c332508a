//! The deterministic epoch close: stored receipts, bindings and grants in; the epoch's dataset
//! out. Pure: the same inputs give the same dataset, byte for byte, whatever order they arrived in.
//! It reads no database, network or clock: the oracle gathers the inputs and publishes the output.
//!
//! 1. Every session, keyed by (client, node, session id), counts once, with the receipts at its
//!    highest sequence. A session with two different receipts at that sequence is an
//!    equivocation and counts nothing.
//! 2. The node's operator is the latest binding (by `issued_at`, then body hash) that applies to
//!    this epoch ([`effective_epoch`]: never before the epoch whose agreed input first held it,
//!    and a replacement only from the epoch after); the client's buyer is the latest such grant. Missing ones, expired
//!    grants and too-fast sessions do not count; a session whose buyer is the node's own operator
//!    (self-dealing) counts zero bytes.
//! 3. Each node-client pair counts at most `pair_cap_bytes`.
//! 4. Each client counts at most its grant's per-epoch credit limit, and each buyer at most the
//!    credits it had by the end of the epoch (`backhaul_core::cost::purchases_through` of its
//!    credit account, `.credits`) minus what it had already consumed (its cumulative in the
//!    previous dataset), filled in canonical order (node, client, session).
//! 5. Counted bytes are summed per node, per operator, per buyer and per (buyer, operator) pair.
//!    Each buyer is charged `⌊bytes · credits_per_gib / 2^30⌋` credits, which cost it
//!    `consumption_cost(previous cumulative credits and cost, purchases through the epoch,
//!    credits)` tokens: the average price of its credits not consumed yet (see
//!    `backhaul_core::cost`). A buyer charged no credits costs nothing. The epoch's usage cost is
//!    the sum over buyers.
//! 6. The epoch's budget comes from the shared crate with the chain's inputs and that usage cost:
//!    `min(schedule room + net emissions, ⌊k · usage_cost / 10_000⌋)`. Each buyer's pot is
//!    `buyer_pots(budget, k, costs)` with the buyers in key order: `⌊k · cost / 10_000⌋`, or the
//!    budget split in proportion to those when they add up to more. Each pot is split among the
//!    operators that served that buyer in proportion to their counted bytes for it (largest
//!    remainder, operators in key order); an operator's reward is the sum of its parts over
//!    buyers, and the allocation is the sum of the pots (at most the budget). Rewards therefore
//!    come only from what buyers paid for the credits they consumed, and only to the operators
//!    that served them: a buyer serving itself through other keys gets back at most `k` times
//!    what it burned. An epoch that consumed no credits mints nothing.
//! 7. Cumulative amounts add this epoch to the previous dataset's; every account ever in a tree
//!    stays in it. Both trees follow `docs/merkle.md`. Each usage leaf's `cumulative_cost` adds
//!    its `cost` to the previous one, and the tree's `cost_total` is the previous total plus the
//!    usage cost. A leaf's `purchased_credits` and `purchased_tokens` are the purchases through
//!    the epoch of a buyer charged bytes this epoch (the figures its cap and cost used); for
//!    every other leaf they are 0 (and so are `cost` and `pot`): its credit account played no
//!    part in the close, so the dataset never depends on when or whether it was read.
//!
//! The dataset's `served` rows list every (buyer, operator) pair with counted bytes, by buyer
//! then operator key, with the operator's part of that buyer's pot. Every figure is computed with
//! checked arithmetic: an overflow fails the close, never wraps.
//!
//! [`close`] closes receipts held in memory; [`Aggregator`] streams them in (client, node,
//! session) order, as an agreed input file holds them, without holding them all.
//!
//! The modules follow the steps: `inputs` (what the close reads), `previous` (the previous
//! dataset, checked against the chain), `session` (steps 1–2), `caps` (3–4), `attribution` and
//! `charges` (5), `split` (6), `dataset` (7), with `aggregator` running them in turn.

mod aggregator;
mod attribution;
mod caps;
mod charges;
mod dataset;
mod error;
mod inputs;
mod intern;
mod previous;
mod prune;
mod session;
mod split;

#[cfg(test)]
mod tests;

pub use aggregator::Aggregator;
pub use error::CloseError;
pub use inputs::{
    effective_epoch, latest, BuyerCredits, ChainInputs, CloseContext, CloseInput, CloseParams,
    Stored, StoredReceipt, Versioned,
};

pub use prune::prunable;

use backhaul_protocol::dataset::Dataset;

/// Closes the epoch over receipts held in memory, in any order.
pub fn close(input: &CloseInput) -> Result<Dataset, CloseError> {
    let mut sorted: Vec<&StoredReceipt> = input.receipts.iter().collect();
    sorted.sort_unstable_by_key(|r| (r.receipt.client, r.receipt.node, r.receipt.session_id));
    let mut agg = Aggregator::new(&input.context)?;
    for r in sorted {
        agg.push(r)?;
    }
    agg.finish()
}
