//! Splitting an epoch's allocation across operators, and pricing bandwidth in credits.

use crate::CoreError;
use alloc::vec::Vec;

/// Bytes in one GiB: bandwidth is priced in credits per GiB.
pub const GIB: u64 = 1 << 30;

/// Credits for `bytes` at `credits_per_gib`, rounded down.
pub fn credits_for_bytes(bytes: u64, credits_per_gib: u64) -> Result<u64, CoreError> {
    let c = u128::from(bytes)
        .checked_mul(u128::from(credits_per_gib))
        .ok_or(CoreError::Overflow)?
        .checked_div(u128::from(GIB))
        .ok_or(CoreError::Overflow)?;
    u64::try_from(c).map_err(|_| CoreError::Overflow)
}

/// The most bytes `credits` pay for at `credits_per_gib` (all of them when bandwidth is free).
pub fn bytes_for_credits(credits: u64, credits_per_gib: u64) -> u64 {
    if credits_per_gib == 0 {
        return u64::MAX;
    }
    let b = u128::from(credits)
        .saturating_mul(u128::from(GIB))
        .checked_div(u128::from(credits_per_gib))
        .unwrap_or(u128::MAX);
    u64::try_from(b).unwrap_or(u64::MAX)
}

/// Splits `total` in proportion to `weights` so that the parts sum to exactly `total`
/// (largest-remainder method). Each part first gets `⌊total · w / Σw⌋`; the units left over go
/// one each to the largest remainders, ties broken by the lower index (callers order their items
/// canonically, e.g. by account bytes). All zeros when every weight is zero.
pub fn split_largest_remainder(total: u64, weights: &[u64]) -> Result<Vec<u64>, CoreError> {
    let sum: u128 = weights.iter().map(|w| u128::from(*w)).sum();
    if sum == 0 {
        return Ok(alloc::vec![0; weights.len()]);
    }
    let mut parts = Vec::with_capacity(weights.len());
    let mut remainders = Vec::with_capacity(weights.len());
    let mut given: u128 = 0;
    for (i, w) in weights.iter().enumerate() {
        let product = u128::from(total)
            .checked_mul(u128::from(*w))
            .ok_or(CoreError::Overflow)?;
        let part = product.checked_div(sum).ok_or(CoreError::Overflow)?;
        given = given.checked_add(part).ok_or(CoreError::Overflow)?;
        parts.push(u64::try_from(part).map_err(|_| CoreError::Overflow)?);
        remainders.push((product.checked_rem(sum).ok_or(CoreError::Overflow)?, i));
    }
    let left = usize::try_from(u128::from(total).saturating_sub(given))
        .map_err(|_| CoreError::Overflow)?;
    // Largest remainder first; among equals, the lower index first.
    remainders.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for &(_, i) in remainders.iter().take(left) {
        parts[i] = parts[i].checked_add(1).ok_or(CoreError::Overflow)?;
    }
    Ok(parts)
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    use super::*;
    use alloc::vec;
    use proptest::prelude::*;

    #[test]
    fn parts_sum_exactly_and_remainders_go_to_the_largest() {
        assert_eq!(
            split_largest_remainder(10, &[1, 1, 1]).unwrap(),
            vec![4, 3, 3]
        );
        assert_eq!(
            split_largest_remainder(100, &[1, 2, 3, 4]).unwrap(),
            vec![10, 20, 30, 40]
        );
        assert_eq!(
            split_largest_remainder(7, &[0, 5, 0]).unwrap(),
            vec![0, 7, 0]
        );
        assert_eq!(split_largest_remainder(5, &[0, 0]).unwrap(), vec![0, 0]);
        assert_eq!(
            split_largest_remainder(2, &[1, 2, 2]).unwrap(),
            vec![0, 1, 1]
        );
        assert_eq!(
            split_largest_remainder(u64::MAX, &[u64::MAX, 1])
                .unwrap()
                .iter()
                .map(|p| *p as u128)
                .sum::<u128>(),
            u64::MAX as u128
        );
    }

    #[test]
    fn bandwidth_pricing_rounds_down() {
        assert_eq!(credits_for_bytes(GIB, 50_000), Ok(50_000));
        assert_eq!(credits_for_bytes(GIB - 1, 1), Ok(0));
        assert_eq!(bytes_for_credits(50_000, 50_000), GIB);
        assert_eq!(bytes_for_credits(1, 0), u64::MAX);
        assert_eq!(
            credits_for_bytes(u64::MAX, u64::MAX),
            Err(CoreError::Overflow)
        );
    }

    proptest! {
        #[test]
        fn splits_are_exact_proportional_and_deterministic(total in any::<u64>(), weights in proptest::collection::vec(any::<u64>(), 1..50)) {
            let parts = split_largest_remainder(total, &weights).unwrap();
            let sum_w: u128 = weights.iter().map(|w| *w as u128).sum();
            let sum_p: u128 = parts.iter().map(|p| *p as u128).sum();
            match sum_w {
                0 => prop_assert_eq!(sum_p, 0),
                _ => {
                    prop_assert_eq!(sum_p, total as u128);
                    for (p, w) in parts.iter().zip(&weights) {
                        let exact = (total as u128 * *w as u128).checked_div(sum_w).unwrap();
                        prop_assert!(*p as u128 == exact || *p as u128 == exact + 1);
                    }
                }
            }
        }
    }
}
