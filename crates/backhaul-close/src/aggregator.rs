//! The streaming close: receipts in, session by session; then each step in turn.

use crate::dataset::Outcome;
use crate::error::CloseError;
use crate::inputs::{CloseContext, StoredReceipt};
use crate::previous::Previous;
use crate::session::Sessions;
use crate::{attribution, caps, charges, dataset, split};
use backhaul_protocol::dataset::{Dataset, Stats};

/// The streaming close: push the epoch's receipts in (client, node, session) order, then finish.
/// Memory grows with the number of counting sessions (48 bytes each) and of distinct keys.
pub struct Aggregator<'a> {
    ctx: &'a CloseContext<'a>,
    previous: Previous,
    sessions: Sessions<'a>,
}

impl<'a> Aggregator<'a> {
    /// Reads the previous dataset, which must agree with the chain.
    pub fn new(ctx: &'a CloseContext<'a>) -> Result<Self, CloseError> {
        let previous = Previous::read(ctx.epoch, ctx.previous, ctx.chain)?;
        Ok(Aggregator {
            ctx,
            previous,
            sessions: Sessions::new(ctx),
        })
    }

    /// Adds a stored receipt. Receipts must come in (client, node, session id) order; receipts of other
    /// epochs are ignored.
    pub fn push(&mut self, r: &StoredReceipt) -> Result<(), CloseError> {
        self.sessions.push(r)
    }

    /// Applies the caps, values each buyer's consumption, splits the budget and builds both
    /// trees.
    pub fn finish(self) -> Result<Dataset, CloseError> {
        let ctx = self.ctx;
        let previous = self.previous;
        let (mut judged, counted) = self.sessions.finish();
        let rejected = std::mem::take(&mut judged.rejected);
        let capped = caps::apply(ctx, &previous.usage_cum, &judged, counted)?;
        let attribution =
            attribution::attribute(ctx.epoch, &judged, &capped.node_bytes, capped.served_runs)?;
        let buyers = &judged.buyers.keys;
        let mut charges = charges::charge(
            ctx,
            &previous.usage_cum,
            attribution
                .groups
                .iter()
                .map(|(b, _)| (buyers[*b as usize], capped.buyer_bytes[*b as usize])),
        )?;
        let split = split::split(
            ctx,
            charges.usage_cost,
            &mut charges.buyers,
            &attribution.served,
            &attribution.groups,
            judged.operators.keys.len(),
        )?;
        let stats = Stats {
            sessions: judged.sessions,
            sessions_counted: capped.sessions_counted,
            bytes_counted: attribution.bytes_counted,
            bytes_over_pair_cap: capped.over_pair,
            bytes_over_credits: capped.over_credits,
        };
        dataset::build(
            ctx,
            buyers,
            &judged.operators.keys,
            Outcome {
                previous,
                attribution,
                charges,
                split,
                rejected,
                stats,
            },
        )
    }
}
