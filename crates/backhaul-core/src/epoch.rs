//! Mapping between unix time and reward epochs.
//!
//! Epoch `e` covers `[genesis + e·length, genesis + (e+1)·length)`. An epoch can be proposed once
//! the clock has reached its end.

use crate::CoreError;

/// First second of `epoch`.
pub fn epoch_start(genesis_ts: i64, epoch_length_secs: u64, epoch: u64) -> Result<i64, CoreError> {
    let offset = epoch
        .checked_mul(epoch_length_secs)
        .ok_or(CoreError::Overflow)?;
    let offset = i64::try_from(offset).map_err(|_| CoreError::Overflow)?;
    genesis_ts.checked_add(offset).ok_or(CoreError::Overflow)
}

/// First second after `epoch` (the start of the next one).
pub fn epoch_end(genesis_ts: i64, epoch_length_secs: u64, epoch: u64) -> Result<i64, CoreError> {
    let next = epoch.checked_add(1).ok_or(CoreError::Overflow)?;
    epoch_start(genesis_ts, epoch_length_secs, next)
}

/// The epoch that contains `ts`, or `None` before genesis.
pub fn epoch_at(genesis_ts: i64, epoch_length_secs: u64, ts: i64) -> Option<u64> {
    if epoch_length_secs == 0 || ts < genesis_ts {
        return None;
    }
    let elapsed = u64::try_from(i128::from(ts).checked_sub(i128::from(genesis_ts))?).ok()?;
    elapsed.checked_div(epoch_length_secs)
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    #[test]
    fn epochs_tile_time() {
        assert_eq!(epoch_start(1_000, 60, 0), Ok(1_000));
        assert_eq!(epoch_end(1_000, 60, 0), Ok(1_060));
        assert_eq!(epoch_at(1_000, 60, 1_059), Some(0));
        assert_eq!(epoch_at(1_000, 60, 1_060), Some(1));
        assert_eq!(epoch_at(1_000, 60, 999), None);
        assert_eq!(epoch_at(1_000, 0, 2_000), None);
    }

    #[test]
    fn extreme_epochs_overflow_cleanly() {
        assert_eq!(epoch_start(0, u64::MAX, 2), Err(CoreError::Overflow));
        assert_eq!(epoch_end(0, 1, u64::MAX), Err(CoreError::Overflow));
        assert_eq!(epoch_start(i64::MAX, 1, 1), Err(CoreError::Overflow));
        assert_eq!(epoch_at(i64::MIN, 1, i64::MAX), Some(u64::MAX));
    }
}
