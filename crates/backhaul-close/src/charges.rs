//! Step 5, the money: the credits each buyer consumed this epoch and what they cost it.

use crate::error::CloseError;
use crate::inputs::CloseContext;
use backhaul_core::cost::{consumption_cost, Consumed, Purchases};
use backhaul_core::split::credits_for_bytes;
use backhaul_protocol::dataset::b58;
use backhaul_protocol::Key;
use std::collections::BTreeMap;

/// A buyer charged bytes this epoch.
pub(crate) struct Charged {
    pub(crate) key: Key,
    pub(crate) bytes: u64,
    pub(crate) credits: u64,
    /// Its purchases through the epoch.
    pub(crate) purchases: Purchases,
    /// What the credits it consumed this epoch cost it, in tokens.
    pub(crate) cost: u64,
    /// The rewards that consumption funds (set by `split`).
    pub(crate) pot: u64,
}

/// Every buyer charged this epoch and the sums.
pub(crate) struct Charges {
    /// In the order of `buyers` given to `charge` (key order).
    pub(crate) buyers: Vec<Charged>,
    pub(crate) credits_consumed: u64,
    pub(crate) usage_cost: u64,
}

/// Charges each of `buyers` (with their keys and counted bytes), given what each had consumed
/// before this epoch.
pub(crate) fn charge(
    ctx: &CloseContext,
    consumed: &BTreeMap<Key, Consumed>,
    buyers: impl Iterator<Item = (Key, u64)>,
) -> Result<Charges, CloseError> {
    let epoch = ctx.epoch;
    let overflow = || CloseError::Overflow(epoch);
    let mut charged: Vec<Charged> = Vec::with_capacity(buyers.size_hint().0);
    for (key, bytes) in buyers {
        let credits =
            credits_for_bytes(bytes, ctx.params.credits_per_gib).map_err(|_| overflow())?;
        let purchases = ctx
            .credits
            .get(&key)
            .map_or_else(Purchases::default, |c| c.purchases_through(epoch));
        let before = consumed.get(&key).copied().unwrap_or_default();
        let cost = if credits == 0 {
            0
        } else {
            consumption_cost(before, purchases, credits).map_err(|e| match e {
                backhaul_core::CoreError::Overflow => overflow(),
                _ => CloseError::ConsumptionExceedsPurchases {
                    buyer: b58(&key),
                    epoch,
                },
            })?
        };
        charged.push(Charged {
            key,
            bytes,
            credits,
            purchases,
            cost,
            pot: 0,
        });
    }
    let credits_consumed = charged
        .iter()
        .try_fold(0u64, |a, c| a.checked_add(c.credits))
        .ok_or_else(overflow)?;
    let usage_cost = charged
        .iter()
        .try_fold(0u64, |a, c| a.checked_add(c.cost))
        .ok_or_else(overflow)?;
    Ok(Charges {
        buyers: charged,
        credits_consumed,
        usage_cost,
    })
}
