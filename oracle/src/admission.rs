//! Which buyers may have grants stored: those with an on-chain credit account.
//!
//! A grant costs its signer nothing, so without a bound anyone could make an oracle store, and
//! refresh the credits of, as many buyers as it can generate keys. A credit account exists only
//! once its buyer burned tokens for credits, so requiring one gives every stored grant a cost.
//! Accounts are looked up in batches (one `getMultipleAccounts` per hundred buyers); a buyer found
//! is remembered, a buyer not found is remembered for a short while, both in bounded sets.

use crate::chain::{ChainError, ChainView};
use backhaul_protocol::Key;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a buyer without a credit account is answered from memory by default
/// (`unfunded_buyer_cache_secs`).
const UNFUNDED_FOR: Duration = Duration::from_secs(10);
/// The most buyers remembered either way.
const REMEMBERED: usize = 1_000_000;

pub struct FundedBuyers {
    funded: Mutex<HashSet<Key>>,
    unfunded: Mutex<HashMap<Key, Instant>>,
    lookups: std::sync::atomic::AtomicU64,
    unfunded_for: Duration,
}

impl Default for FundedBuyers {
    fn default() -> Self {
        FundedBuyers::new(UNFUNDED_FOR)
    }
}

impl FundedBuyers {
    /// Remembers a buyer without a credit account for `unfunded_for`.
    pub fn new(unfunded_for: Duration) -> Self {
        FundedBuyers {
            funded: Mutex::default(),
            unfunded: Mutex::default(),
            lookups: Default::default(),
            unfunded_for,
        }
    }

    /// For each buyer, whether it has a credit account.
    pub async fn check(
        &self,
        chain: &dyn ChainView,
        buyers: &[Key],
    ) -> Result<Vec<bool>, ChainError> {
        let now = Instant::now();
        let mut unknown: Vec<Key> = {
            let funded = self.funded.lock().map_err(|_| poisoned())?;
            let unfunded = self.unfunded.lock().map_err(|_| poisoned())?;
            buyers
                .iter()
                .filter(|b| {
                    !funded.contains(*b)
                        && unfunded
                            .get(*b)
                            .is_none_or(|at| now.duration_since(*at) >= self.unfunded_for)
                })
                .copied()
                .collect()
        };
        unknown.sort_unstable();
        unknown.dedup();
        if !unknown.is_empty() {
            self.lookups
                .fetch_add(unknown.len() as u64, std::sync::atomic::Ordering::Relaxed);
            let found = chain.credits(&unknown).await?;
            let mut funded = self.funded.lock().map_err(|_| poisoned())?;
            let mut unfunded = self.unfunded.lock().map_err(|_| poisoned())?;
            if unfunded.len() + unknown.len() > REMEMBERED {
                unfunded.retain(|_, at| now.duration_since(*at) < self.unfunded_for);
                if unfunded.len() + unknown.len() > REMEMBERED {
                    unfunded.clear();
                }
            }
            for b in unknown {
                if found.contains_key(&b) {
                    unfunded.remove(&b);
                    if funded.len() < REMEMBERED {
                        funded.insert(b);
                    }
                } else {
                    unfunded.insert(b, now);
                }
            }
            let funded_now: HashSet<Key> = found.into_keys().collect();
            return Ok(buyers
                .iter()
                .map(|b| funded.contains(b) || funded_now.contains(b))
                .collect());
        }
        let funded = self.funded.lock().map_err(|_| poisoned())?;
        Ok(buyers.iter().map(|b| funded.contains(b)).collect())
    }

    /// Buyers looked up on the chain so far.
    pub fn lookups(&self) -> u64 {
        self.lookups.load(std::sync::atomic::Ordering::Relaxed)
    }
}

fn poisoned() -> ChainError {
    ChainError::Decode(
        solana_sdk::pubkey::Pubkey::default(),
        "the funded-buyer cache is unusable after a panic".into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::{MemoryChain, MemoryState};

    #[tokio::test]
    async fn a_buyer_is_funded_once_it_has_a_credit_account_and_lookups_are_remembered() {
        let chain = MemoryChain::new(MemoryState::default());
        let f = FundedBuyers::default();
        let (a, b) = ([1; 32], [2; 32]);
        assert_eq!(
            f.check(&chain, &[a, b, a]).await.unwrap(),
            vec![false, false, false]
        );
        assert_eq!(f.lookups(), 2);
        chain.update(|s| {
            s.credits.insert(a, Default::default());
        });
        // Not funded as far as the oracle remembers, for a short while.
        assert_eq!(f.check(&chain, &[a]).await.unwrap(), vec![false]);
        assert_eq!(f.lookups(), 2);
        f.unfunded.lock().unwrap().clear();
        assert_eq!(f.check(&chain, &[a, b]).await.unwrap(), vec![true, false]);
        assert_eq!(f.lookups(), 4);
        // A funded buyer is never looked up again.
        assert_eq!(f.check(&chain, &[a]).await.unwrap(), vec![true]);
        assert_eq!(f.lookups(), 4);
    }
}
