//! Time as the oracle sees it: this machine's clock, the chain's clock as last read, and the
//! epochs the chain's config defines.

use std::sync::{Arc, RwLock};

/// Unix seconds now, by this machine's clock.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The chain's clock as last read, advanced by this machine's monotonic clock in between reads.
#[derive(Clone)]
pub struct ChainTime {
    inner: Arc<RwLock<(i64, std::time::Instant)>>,
}

impl ChainTime {
    pub fn new(unix_timestamp: i64) -> Self {
        ChainTime {
            inner: Arc::new(RwLock::new((unix_timestamp, std::time::Instant::now()))),
        }
    }

    /// The chain's time now (unix seconds).
    pub fn now(&self) -> i64 {
        let (ts, at) = self
            .inner
            .read()
            .map(|g| *g)
            .unwrap_or((0, std::time::Instant::now()));
        ts.saturating_add(i64::try_from(at.elapsed().as_secs()).unwrap_or(i64::MAX))
    }

    /// Records a fresh reading (never moving backwards).
    pub fn set(&self, unix_timestamp: i64) {
        if let Ok(mut g) = self.inner.write() {
            let current =
                g.0.saturating_add(i64::try_from(g.1.elapsed().as_secs()).unwrap_or(0));
            *g = (unix_timestamp.max(current), std::time::Instant::now());
        }
    }
}

/// Epoch timing, from the chain's config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochClock {
    pub genesis_ts: i64,
    pub epoch_length_secs: u64,
}

impl EpochClock {
    pub fn start(&self, epoch: u64) -> i64 {
        backhaul_core::epoch::epoch_start(self.genesis_ts, self.epoch_length_secs, epoch)
            .unwrap_or(i64::MAX)
    }

    pub fn end(&self, epoch: u64) -> i64 {
        backhaul_core::epoch::epoch_end(self.genesis_ts, self.epoch_length_secs, epoch)
            .unwrap_or(i64::MAX)
    }

    /// The epoch at `now`, or `None` before genesis.
    pub fn at(&self, now: i64) -> Option<u64> {
        backhaul_core::epoch::epoch_at(self.genesis_ts, self.epoch_length_secs, now)
    }
}
