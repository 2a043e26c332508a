//! The node directory (`GET /v1/adverts`): the latest advert of every bound node, in memory.
//! Nodes sign a new advert every hour or so, so an oracle that restarts has its directory back
//! within the hour; nothing here enters an epoch's input. Gateways check each advert's signature
//! themselves: an oracle can leave adverts out, never forge one.

use backhaul_protocol::advert::SignedAdvert;
use backhaul_protocol::api::ItemResult;
use backhaul_protocol::Key;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// The most adverts kept; beyond it the one signed longest ago makes room.
pub const DEFAULT_MAX_ADVERTS: usize = 100_000;

/// The directory.
pub struct Directory {
    adverts: Mutex<BTreeMap<Key, SignedAdvert>>,
    max: usize,
}

impl Default for Directory {
    fn default() -> Self {
        Directory::new(DEFAULT_MAX_ADVERTS)
    }
}

impl Directory {
    pub fn new(max: usize) -> Self {
        Directory {
            adverts: Mutex::new(BTreeMap::new()),
            max: max.max(1),
        }
    }

    /// Keeps `a` (already verified: signed by its node, current, the node bound) unless the
    /// node's advert already kept is as recent.
    pub fn offer(&self, a: SignedAdvert, now: i64) -> ItemResult {
        let Ok(mut map) = self.adverts.lock() else {
            return ItemResult::DUPLICATE;
        };
        if let Some(kept) = map.get(&a.advert.node) {
            if kept == &a {
                return ItemResult::DUPLICATE;
            }
            if kept.advert.issued_at >= a.advert.issued_at {
                return ItemResult::SUPERSEDED;
            }
        }
        map.retain(|_, kept| kept.advert.current(now));
        if map.len() >= self.max && !map.contains_key(&a.advert.node) {
            let oldest = map
                .iter()
                .min_by_key(|(_, kept)| kept.advert.issued_at)
                .map(|(k, kept)| (*k, kept.advert.issued_at));
            match oldest {
                Some((k, at)) if at < a.advert.issued_at => {
                    map.remove(&k);
                }
                _ => return ItemResult::SUPERSEDED,
            }
        }
        map.insert(a.advert.node, a);
        ItemResult::ACCEPTED
    }

    /// Up to `limit` current adverts of nodes whose key is above `after`, by key.
    pub fn page(&self, after: Option<Key>, limit: usize, now: i64) -> Vec<SignedAdvert> {
        let Ok(map) = self.adverts.lock() else {
            return vec![];
        };
        let range = match after {
            Some(k) => map.range((std::ops::Bound::Excluded(k), std::ops::Bound::Unbounded)),
            None => map.range::<Key, _>(..),
        };
        range
            .map(|(_, a)| *a)
            .filter(|a| a.advert.current(now))
            .take(limit)
            .collect()
    }

    /// How many adverts are kept.
    pub fn len(&self) -> usize {
        self.adverts.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backhaul_protocol::advert::{Endpoint, NodeAdvert, ADVERT_LIFETIME_SECS};
    use backhaul_protocol::api::ItemStatus;
    use backhaul_protocol::Deployment;
    use ed25519_dalek::SigningKey;

    const D: Deployment = Deployment {
        program_id: [1; 32],
        config: [2; 32],
    };

    fn advert(seed: u8, at: i64) -> SignedAdvert {
        let k = SigningKey::from_bytes(&[seed; 32]);
        NodeAdvert::new(
            k.verifying_key().to_bytes(),
            &Endpoint::parse("n.example:443").unwrap(),
            at,
        )
        .unwrap()
        .sign(&D, &k)
    }

    #[test]
    fn the_latest_advert_per_node_is_kept_pages_go_by_key_and_the_oldest_makes_room() {
        let d = Directory::new(2);
        assert_eq!(d.offer(advert(1, 100), 100).status, ItemStatus::Accepted);
        assert_eq!(d.offer(advert(1, 100), 100).status, ItemStatus::Duplicate);
        assert_eq!(d.offer(advert(1, 90), 100).status, ItemStatus::Superseded);
        assert_eq!(d.offer(advert(1, 110), 110).status, ItemStatus::Accepted);
        assert_eq!(d.offer(advert(2, 120), 120).status, ItemStatus::Accepted);
        // Full: a newer advert of a third node replaces the oldest; an older one is refused.
        assert_eq!(d.offer(advert(3, 50), 120).status, ItemStatus::Superseded);
        assert_eq!(d.offer(advert(3, 130), 130).status, ItemStatus::Accepted);
        assert_eq!(d.len(), 2);
        let all = d.page(None, 10, 130);
        assert_eq!(all.len(), 2);
        assert!(all[0].advert.node < all[1].advert.node);
        let next = d.page(Some(all[0].advert.node), 10, 130);
        assert_eq!(next, vec![all[1]]);
        // Expired adverts are not served.
        assert!(d.page(None, 10, 130 + ADVERT_LIFETIME_SECS).is_empty());
    }
}
