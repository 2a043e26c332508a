//! Converting between tokens and usage credits, and agreeing on a price.
//!
//! The price is `credits_per_token`: how many credits one whole token (`10^decimals` base units)
//! buys. Credits are pegged to a fixed fiat value, so the price rises when the token falls.
//! Every conversion rounds down, against the party that receives.

use crate::{CoreError, BPS_DENOMINATOR};

/// The largest mint precision the program accepts (10^18 base units per token).
pub const MAX_DECIMALS: u8 = 18;

fn token_unit(decimals: u8) -> Result<u128, CoreError> {
    if decimals > MAX_DECIMALS {
        return Err(CoreError::InvalidParameter);
    }
    10u128
        .checked_pow(u32::from(decimals))
        .ok_or(CoreError::Overflow)
}

/// Credits bought by burning `token_amount` base units: `⌊amount · price / 10^decimals⌋`.
pub fn credits_for_tokens(
    token_amount: u64,
    credits_per_token: u64,
    decimals: u8,
) -> Result<u64, CoreError> {
    let credits = u128::from(token_amount)
        .checked_mul(u128::from(credits_per_token))
        .ok_or(CoreError::Overflow)?
        .checked_div(token_unit(decimals)?)
        .ok_or(CoreError::Overflow)?;
    u64::try_from(credits).map_err(|_| CoreError::Overflow)
}

/// Token base units worth `credits`: `⌊credits · 10^decimals / price⌋`; zero without a price.
pub fn tokens_for_credits(
    credits: u64,
    credits_per_token: u64,
    decimals: u8,
) -> Result<u64, CoreError> {
    if credits_per_token == 0 {
        return Ok(0);
    }
    let tokens = u128::from(credits)
        .checked_mul(token_unit(decimals)?)
        .ok_or(CoreError::Overflow)?
        .checked_div(u128::from(credits_per_token))
        .ok_or(CoreError::Overflow)?;
    // Saturating: a value above u64::MAX tokens only ever serves as a cap.
    Ok(u64::try_from(tokens).unwrap_or(u64::MAX))
}

/// Whether moving the price from `current` to `proposed` stays within `max_change_bps` of
/// `current`. Any positive price is accepted when there is no current price.
pub fn within_bound(current: u64, proposed: u64, max_change_bps: u16) -> bool {
    if proposed == 0 {
        return false;
    }
    if current == 0 {
        return true;
    }
    let diff = u128::from(current.abs_diff(proposed));
    // diff / current <= bps / 10_000, without division.
    let lhs = diff.saturating_mul(u128::from(BPS_DENOMINATOR));
    let rhs = u128::from(current).saturating_mul(u128::from(max_change_bps));
    lhs <= rhs
}

/// The price a quorum of `threshold` agrees on: the `threshold`-th largest of `values`. At least
/// `threshold` submissions are at or above it, and with an honest majority it always lies within
/// the honest submissions' range, so no minority can move it. Among values a quorum supports it is
/// the lowest, which is the conservative side for a price in credits per token (fewer credits
/// per burned token). `None` while fewer than `threshold` values are given.
pub fn quorum_price(values: &mut [u64], threshold: usize) -> Option<u64> {
    if threshold == 0 || values.len() < threshold {
        return None;
    }
    values.sort_unstable_by(|a, b| b.cmp(a));
    values.get(threshold.checked_sub(1)?).copied()
}

/// Credits a buyer had been issued by the end of `epoch`, from its on-chain account: everything
/// when `epoch` is at or after the latest purchase's epoch, else what was issued before that
/// epoch. Exact for every epoch from the one before the latest purchase on, which is what an
/// oracle closing an epoch shortly after its end needs.
pub fn issued_through(
    issued: u64,
    purchase_epoch: u64,
    issued_before_purchase_epoch: u64,
    epoch: u64,
) -> u64 {
    if epoch >= purchase_epoch {
        issued
    } else {
        issued_before_purchase_epoch
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn conversions_round_down() {
        // 6 decimals, 100_000 credits per token ($1 = 100k credits at $1 per token).
        assert_eq!(credits_for_tokens(1_000_000, 100_000, 6), Ok(100_000));
        assert_eq!(credits_for_tokens(9, 100_000, 6), Ok(0));
        assert_eq!(credits_for_tokens(15, 100_000, 6), Ok(1));
        assert_eq!(tokens_for_credits(100_000, 100_000, 6), Ok(1_000_000));
        assert_eq!(tokens_for_credits(1, 300_000, 6), Ok(3));
        assert_eq!(tokens_for_credits(5, 0, 6), Ok(0));
        assert_eq!(
            credits_for_tokens(1, 1, 19),
            Err(CoreError::InvalidParameter)
        );
    }

    #[test]
    fn overflow_is_an_error_not_a_wrap() {
        assert_eq!(
            credits_for_tokens(u64::MAX, u64::MAX, 0),
            Err(CoreError::Overflow)
        );
        assert_eq!(
            credits_for_tokens(u64::MAX, u64::MAX, 18),
            Err(CoreError::Overflow)
        );
        assert_eq!(tokens_for_credits(u64::MAX, 1, 18), Ok(u64::MAX));
    }

    #[test]
    fn issued_through_separates_the_latest_purchase_epoch() {
        assert_eq!(issued_through(500, 4, 300, 4), 500);
        assert_eq!(issued_through(500, 4, 300, 9), 500);
        assert_eq!(issued_through(500, 4, 300, 3), 300);
    }

    #[test]
    fn bounds() {
        assert!(within_bound(1_000, 1_100, 1_000));
        assert!(within_bound(1_000, 900, 1_000));
        assert!(!within_bound(1_000, 1_101, 1_000));
        assert!(!within_bound(1_000, 899, 1_000));
        assert!(within_bound(0, 5, 0));
        assert!(!within_bound(0, 0, 10_000));
        assert!(within_bound(u64::MAX, u64::MAX, 0));
    }

    #[test]
    fn quorum_price_is_the_threshold_th_largest() {
        assert_eq!(quorum_price(&mut [5, 9, 7], 2), Some(7));
        assert_eq!(quorum_price(&mut [5, 9, 7], 3), Some(5));
        assert_eq!(quorum_price(&mut [5], 2), None);
        assert_eq!(quorum_price(&mut [5], 0), None);
    }

    proptest! {
        #[test]
        fn a_minority_cannot_move_the_quorum_price_outside_the_honest_range(
            honest in proptest::collection::vec(1u64..1_000_000, 3..7),
            liars in proptest::collection::vec(any::<u64>(), 0..3),
        ) {
            let n = honest.len() + liars.len();
            let m = n / 2 + 1;
            prop_assume!(honest.len() >= m);
            let mut all: std::vec::Vec<u64> = honest.iter().chain(liars.iter()).copied().collect();
            let p = quorum_price(&mut all, m).unwrap();
            prop_assert!(p >= *honest.iter().min().unwrap());
            prop_assert!(p <= *honest.iter().max().unwrap());
        }

        #[test]
        fn round_trips_never_create_value(amount in any::<u64>(), price in 1u64..u64::MAX, d in 0u8..=18) {
            if let Ok(credits) = credits_for_tokens(amount, price, d) {
                prop_assert!(tokens_for_credits(credits, price, d).unwrap() <= amount);
            }
        }
    }
}
