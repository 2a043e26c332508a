//! Converting between tokens and usage credits, and agreeing on a price.
//!
//! The price is `credits_per_token`: how many credits one whole token (`10^decimals` base units)
//! buys. Credits are pegged to a fixed fiat value, so the price rises when the token falls.
//! Every conversion rounds down, against the party that receives.
//!
//! The posting rules (see `docs/economics.md`), one function each:
//!
//! - an oracle's submission must lie within [`submission_band`]: the band of its own previous
//!   submission for the time since it, or any positive price when it has no fresh one;
//! - once at least `m` current oracles have fresh submissions, [`quorum_post`] posts their
//!   [`median`], clamped to the band of the previous posted price for the time since it was
//!   posted;
//! - a band ([`price_band`]) allows a move by at most a factor `q^t` up or down in `t` seconds,
//!   `q = 1 + price_max_change_bps / (10_000 · 3_600)` (the rate per hour, compounding every
//!   second), and at most [`MAX_BAND_FACTOR`] in one step. Factors are rounded towards no move,
//!   so however many steps a price takes, over any `T` seconds it moves at most `q^T`.

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

/// `price_max_change_bps` is a rate per this many seconds (an hour).
pub const BAND_PERIOD_SECS: u64 = 3_600;

/// Fractional bits of the band's fixed-point factors (Q.30 in a `u64`).
const BAND_FRAC_BITS: u32 = 30;
const BAND_ONE: u64 = 1 << BAND_FRAC_BITS;

/// However long ago the previous price was, one step moves a price at most this many times up,
/// or down to this fraction.
pub const MAX_BAND_FACTOR: u64 = 4;
const BAND_MAX: u64 = MAX_BAND_FACTOR << BAND_FRAC_BITS;

/// A price and when it was set (unix seconds): the posted price and its `posted_at`, or one
/// oracle's submission and its `submitted_at`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TimedPrice {
    pub credits_per_token: u64,
    pub at: i64,
}

/// Whether something set at `at` is still fresh at `now`: at most `max_age_secs` old (a time in
/// the future counts as fresh).
pub fn is_fresh(at: i64, now: i64, max_age_secs: u64) -> bool {
    now.saturating_sub(at) <= i64::try_from(max_age_secs).unwrap_or(i64::MAX)
}

/// Seconds from `from` to `now`; zero when `now` is not later.
pub fn elapsed_secs(from: i64, now: i64) -> u64 {
    u64::try_from(now.saturating_sub(from)).unwrap_or(0)
}

/// `a · b` of two Q.30 factors, rounded down and capped at `MAX_BAND_FACTOR`. Both are at most
/// `2^32`, so the product only overflows when both are at the cap.
fn mul_factor(a: u64, b: u64) -> u64 {
    a.checked_mul(b)
        .and_then(|p| p.checked_shr(BAND_FRAC_BITS))
        .map_or(BAND_MAX, |p| p.min(BAND_MAX))
}

/// The most a price may grow in `elapsed` seconds at `max_change_bps` per hour compounding every
/// second: `min(q^elapsed, MAX_BAND_FACTOR)` with `q = 1 + max_change_bps / (10_000 · 3_600)`,
/// as a Q.30 fixed-point factor.
///
/// Never above the exact value: `q` and every product of the squaring are rounded down, so a
/// sequence of steps whose times add up to `T` can never move a price further than `q^T`.
pub fn band_factor(elapsed: u64, max_change_bps: u16) -> u64 {
    // At most 2^16 · 2^30: u64 arithmetic, which is cheap on-chain (u128 division is not).
    let per_second = u64::from(max_change_bps)
        .checked_shl(BAND_FRAC_BITS)
        .and_then(|v| v.checked_div(BPS_DENOMINATOR.checked_mul(BAND_PERIOD_SECS)?))
        .unwrap_or(BAND_MAX);
    let mut base = BAND_ONE.saturating_add(per_second).min(BAND_MAX);
    let mut factor = BAND_ONE;
    let mut rest = elapsed;
    while rest > 0 {
        if rest & 1 == 1 {
            factor = mul_factor(factor, base);
        }
        rest = rest.checked_shr(1).unwrap_or(0);
        if rest == 0 || factor == BAND_MAX {
            break;
        }
        if base == BAND_MAX {
            // Some bit of `rest` is still set: the factor reaches the cap.
            return BAND_MAX;
        }
        base = mul_factor(base, base);
    }
    factor
}

/// The prices one step may reach: `lower ..= upper`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PriceBand {
    pub lower: u64,
    pub upper: u64,
}

impl PriceBand {
    /// Any positive price: the band of a first price.
    pub const ANY: PriceBand = PriceBand {
        lower: 1,
        upper: u64::MAX,
    };

    pub fn contains(&self, price: u64) -> bool {
        (self.lower..=self.upper).contains(&price)
    }

    /// `price`, or the band's edge nearest to it.
    pub fn clamp(&self, price: u64) -> u64 {
        price.clamp(self.lower, self.upper)
    }
}

/// The prices reachable from `from` after `elapsed` seconds at `max_change_bps` per hour:
/// `[⌈from / f⌉, ⌊from · f⌋]` with `f = band_factor(elapsed, max_change_bps)`. Any positive
/// price when `from` is 0 (nothing to move from).
pub fn price_band(from: u64, elapsed: u64, max_change_bps: u16) -> Result<PriceBand, CoreError> {
    if from == 0 {
        return Ok(PriceBand::ANY);
    }
    let factor = band_factor(elapsed, max_change_bps);
    Ok(PriceBand {
        lower: shl_div_ceil(from, factor)?,
        upper: mul_shr(from, factor)?,
    })
}

/// `⌊from · factor / 2^30⌋`, saturating at `u64::MAX` (a bound above every price bounds nothing
/// more): in u64 when the product fits.
fn mul_shr(from: u64, factor: u64) -> Result<u64, CoreError> {
    if let Some(v) = from.checked_mul(factor) {
        return v.checked_shr(BAND_FRAC_BITS).ok_or(CoreError::Overflow);
    }
    let upper = u128::from(from)
        .checked_mul(u128::from(factor))
        .and_then(|v| v.checked_shr(BAND_FRAC_BITS))
        .ok_or(CoreError::Overflow)?;
    Ok(u64::try_from(upper).unwrap_or(u64::MAX))
}

/// `⌈from · 2^30 / factor⌉` for a factor of at least 1 (`2^30`): in u64 when `from · 2^30` fits,
/// as it does for any price below about 1.7 · 10^10 credits per token.
fn shl_div_ceil(from: u64, factor: u64) -> Result<u64, CoreError> {
    if factor < BAND_ONE {
        return Err(CoreError::InvalidParameter);
    }
    let bump = factor.checked_sub(1).ok_or(CoreError::Overflow)?;
    if let Some(v) = from
        .checked_shl(BAND_FRAC_BITS)
        .filter(|v| v.checked_shr(BAND_FRAC_BITS) == Some(from))
    {
        if let Some(v) = v.checked_add(bump) {
            return v.checked_div(factor).ok_or(CoreError::Overflow);
        }
    }
    let lower = u128::from(from)
        .checked_shl(BAND_FRAC_BITS)
        .and_then(|v| v.checked_add(u128::from(bump)))
        .and_then(|v| v.checked_div(u128::from(factor)))
        .ok_or(CoreError::Overflow)?;
    u64::try_from(lower).map_err(|_| CoreError::Overflow)
}

/// The prices an oracle may submit now: within the band of its own previous submission for the
/// time since it, or any positive price when it has none that is still fresh (at most
/// `max_age_secs` old). Other oracles' submissions and the posted price play no part.
pub fn submission_band(
    previous: Option<TimedPrice>,
    now: i64,
    max_age_secs: u64,
    max_change_bps: u16,
) -> Result<PriceBand, CoreError> {
    match previous {
        Some(p) if p.credits_per_token > 0 && is_fresh(p.at, now, max_age_secs) => {
            price_band(p.credits_per_token, elapsed_secs(p.at, now), max_change_bps)
        }
        _ => Ok(PriceBand::ANY),
    }
}

/// The median of `values` (sorted in place): the middle one, or for an even count the mean of
/// the two middle ones rounded down. `None` when there are none.
///
/// When more than half of the values lie within some range, so does the median: a minority
/// cannot move it outside the range of the majority.
pub fn median(values: &mut [u64]) -> Option<u64> {
    values.sort_unstable();
    let half = values.len().checked_shr(1)?;
    let upper = *values.get(half)?;
    if values.len() & 1 == 1 {
        return Some(upper);
    }
    let lower = *values.get(half.checked_sub(1)?)?;
    // lower ≤ upper (sorted), so neither step can overflow.
    lower.checked_add(upper.checked_sub(lower)?.checked_shr(1)?)
}

/// What a quorum posts: the median of the fresh submissions and the price posted, which is the
/// median clamped to the band of the previous posted price.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuorumPost {
    pub median: u64,
    pub credits_per_token: u64,
}

/// The price to post after a submission, given the previous posted price and the values of
/// every fresh submission of a current oracle (one per oracle, sorted in place): `None` while
/// fewer than `threshold` exist; else their median, moved from the previous posted price at most
/// as far as its band for the time since it was posted allows (any positive median when nothing
/// was ever posted). A median outside the band is clamped to the band's edge, not refused, so the
/// posted price still moves towards it, at the band's pace.
///
/// Also `None` when the median lies beyond the band but the band does not yet allow a whole unit
/// of movement towards it: posting the unchanged price would restart the band's clock and drop
/// the fraction, so that one oracle submitting every second could freeze a price whose band
/// allows less than a unit per second. The price then moves once the band allows a unit.
pub fn quorum_post(
    posted: TimedPrice,
    fresh: &mut [u64],
    threshold: usize,
    now: i64,
    max_change_bps: u16,
) -> Result<Option<QuorumPost>, CoreError> {
    if threshold == 0 || fresh.len() < threshold {
        return Ok(None);
    }
    let Some(median) = median(fresh) else {
        return Ok(None);
    };
    let previous = posted.credits_per_token;
    if median == previous {
        // Within every band: no need to compute it.
        return Ok(Some(QuorumPost {
            median,
            credits_per_token: median,
        }));
    }
    let band = price_band(previous, elapsed_secs(posted.at, now), max_change_bps)?;
    let price = band.clamp(median);
    if previous > 0 && price == previous {
        return Ok(None);
    }
    Ok(Some(QuorumPost {
        median,
        credits_per_token: price,
    }))
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

    /// `q^t` as a real number, for checking the fixed-point band.
    fn exact_factor(elapsed: u64, bps: u16) -> f64 {
        (elapsed as f64 * (f64::from(bps) / 36_000_000.0).ln_1p()).exp()
    }

    #[test]
    fn band_factor_compounds_the_hourly_rate_every_second() {
        let one = BAND_ONE as f64;
        for (elapsed, bps) in [
            (0, 2_000),
            (1, 2_000),
            (60, 2_000),
            (3_600, 2_000),
            (3_600, 1),
        ] {
            let f = band_factor(elapsed, bps) as f64 / one;
            let exact = exact_factor(elapsed, bps);
            assert!(f <= exact, "{elapsed} s at {bps}: {f} above {exact}");
            // Rounding down costs less than 3% of the allowed move (at 1 bps the per-second
            // rate itself is rounded down from 29.8 to 29 units of 2^-30).
            assert!(
                f - 1.0 >= 0.97 * (exact - 1.0),
                "{elapsed} s at {bps}: {f} vs {exact}"
            );
        }
        // An hour at 2,000 bps per hour compounds to (1 + 0.2/3600)^3600, just below e^0.2:
        // about 22.1% up (or 18.1% down).
        let hour = band_factor(3_600, 2_000) as f64 / one;
        assert!((1.2213..1.2214).contains(&hour), "{hour}");
        assert_eq!(band_factor(0, 10_000), BAND_ONE);
        // Capped however long the gap, and whatever the rate.
        assert_eq!(band_factor(u64::MAX, 1), BAND_MAX);
        assert_eq!(band_factor(u64::MAX, u16::MAX), BAND_MAX);
        assert_eq!(band_factor(30 * 86_400, 2_000), BAND_MAX);
    }

    #[test]
    fn a_band_bounds_both_ways_and_rounds_towards_no_move() {
        // A minute at 2,000 bps per hour: ×/÷ 1.0033388 (99,667.2 rounds up, 100,333.9 down).
        let b = price_band(100_000, 60, 2_000).unwrap();
        assert_eq!((b.lower, b.upper), (99_668, 100_333));
        assert!(b.contains(100_000) && !b.contains(99_667) && !b.contains(100_334));
        assert_eq!(
            (b.clamp(1), b.clamp(u64::MAX), b.clamp(100_100)),
            (99_668, 100_333, 100_100)
        );
        // No time, no move; a long gap moves at most 4× either way.
        let b = price_band(100_000, 0, 2_000).unwrap();
        assert_eq!((b.lower, b.upper), (100_000, 100_000));
        let b = price_band(100_000, 365 * 86_400, 2_000).unwrap();
        assert_eq!((b.lower, b.upper), (25_000, 400_000));
        // Nothing to move from: any positive price.
        assert_eq!(price_band(0, 0, 1).unwrap(), PriceBand::ANY);
        assert!(!PriceBand::ANY.contains(0));
        // Extremes neither overflow nor reach zero.
        let b = price_band(u64::MAX, u64::MAX, u16::MAX).unwrap();
        assert_eq!((b.lower, b.upper), (u64::MAX / 4 + 1, u64::MAX));
        let b = price_band(1, u64::MAX, u16::MAX).unwrap();
        assert_eq!((b.lower, b.upper), (1, 4));
    }

    #[test]
    fn an_oracle_is_bounded_by_its_own_fresh_submission_only() {
        let prev = TimedPrice {
            credits_per_token: 100_000,
            at: 1_000,
        };
        let b = submission_band(Some(prev), 1_060, 600, 2_000).unwrap();
        assert_eq!((b.lower, b.upper), (99_668, 100_333));
        // Expired (older than the staleness bound), none, or zero: free.
        assert_eq!(
            submission_band(Some(prev), 1_601, 600, 2_000),
            Ok(PriceBand::ANY)
        );
        assert_ne!(
            submission_band(Some(prev), 1_600, 600, 2_000),
            Ok(PriceBand::ANY)
        );
        assert_eq!(submission_band(None, 1_060, 600, 2_000), Ok(PriceBand::ANY));
        let zero = TimedPrice {
            credits_per_token: 0,
            ..prev
        };
        assert_eq!(
            submission_band(Some(zero), 1_060, 600, 2_000),
            Ok(PriceBand::ANY)
        );
        // A clock that went backwards allows no move.
        let b = submission_band(Some(prev), 900, 600, 2_000).unwrap();
        assert_eq!((b.lower, b.upper), (100_000, 100_000));
    }

    #[test]
    fn freshness_is_inclusive_and_saturating() {
        assert!(is_fresh(1_000, 1_600, 600));
        assert!(!is_fresh(1_000, 1_601, 600));
        assert!(is_fresh(2_000, 1_000, 0));
        assert!(is_fresh(i64::MIN, i64::MAX, u64::MAX));
        assert!(!is_fresh(i64::MIN, i64::MAX, 1));
        assert_eq!(elapsed_secs(5, 3), 0);
        assert_eq!(elapsed_secs(i64::MIN, i64::MAX), i64::MAX as u64);
    }

    #[test]
    fn the_median_is_the_middle_or_the_mean_of_the_two_middles() {
        assert_eq!(median(&mut [5, 9, 7]), Some(7));
        assert_eq!(median(&mut [9, 5]), Some(7));
        assert_eq!(median(&mut [9, 6]), Some(7));
        assert_eq!(median(&mut [4]), Some(4));
        assert_eq!(median(&mut [1, 100, 2, 3]), Some(2));
        assert_eq!(median(&mut [u64::MAX, u64::MAX - 2]), Some(u64::MAX - 1));
        assert_eq!(median(&mut []), None);
    }

    #[test]
    fn a_quorum_posts_its_median_within_the_band_of_the_posted_price() {
        let none = TimedPrice::default();
        // The first quorum posts its median freely.
        let post = quorum_post(none, &mut [110_000, 100_000, 115_000], 2, 10, 2_000).unwrap();
        assert_eq!(
            post,
            Some(QuorumPost {
                median: 110_000,
                credits_per_token: 110_000
            })
        );
        // Fewer than `threshold` fresh submissions post nothing.
        assert_eq!(quorum_post(none, &mut [100_000], 2, 10, 2_000), Ok(None));
        assert_eq!(quorum_post(none, &mut [], 0, 10, 2_000), Ok(None));
        // A median far below the posted price is clamped to the band's edge, not refused.
        let posted = TimedPrice {
            credits_per_token: 100_000,
            at: 1_000,
        };
        let post = quorum_post(posted, &mut [100_000, 1_150], 2, 1_060, 2_000).unwrap();
        assert_eq!(
            post,
            Some(QuorumPost {
                median: 50_575,
                credits_per_token: 99_668
            })
        );
        // A median beyond the band when the band allows no whole unit yet posts nothing (the
        // price and its time stay); once it allows one, the price moves.
        let small = TimedPrice {
            credits_per_token: 1_000,
            at: 0,
        };
        assert_eq!(
            quorum_post(small, &mut [2_000, 2_000], 2, 17, 2_000),
            Ok(None)
        );
        let post = quorum_post(small, &mut [2_000, 2_000], 2, 18, 2_000).unwrap();
        assert_eq!(post.map(|p| p.credits_per_token), Some(1_001));
        // The same price is posted again at any time (it refreshes the price's time).
        let post = quorum_post(small, &mut [1_000, 1_000], 2, 0, 2_000).unwrap();
        assert_eq!(post.map(|p| p.credits_per_token), Some(1_000));
        // Within the band it is posted as it is.
        let post = quorum_post(posted, &mut [100_100, 100_200, 1], 2, 1_060, 2_000).unwrap();
        assert_eq!(post.map(|p| p.credits_per_token), Some(100_100));
    }

    /// One oracle submitting every second cannot freeze a price whose band allows less than a
    /// unit per second: over an hour at 100 bps per hour, 1,000 still reaches 1,010.
    #[test]
    fn posting_every_second_does_not_freeze_a_slow_price() {
        let mut posted = TimedPrice {
            credits_per_token: 1_000,
            at: 0,
        };
        for now in 1..=3_600 {
            if let Some(p) = quorum_post(posted, &mut [5_000, 5_000], 2, now, 100).unwrap() {
                posted = TimedPrice {
                    credits_per_token: p.credits_per_token,
                    at: now,
                };
            }
        }
        assert_eq!(posted.credits_per_token, 1_010);
        assert!(price_band(1_000, 3_600, 100).unwrap().contains(1_010));
    }

    proptest! {
        #[test]
        fn a_minority_cannot_move_the_median_outside_the_honest_range(
            honest in proptest::collection::vec(1u64..1_000_000, 1..8),
            liars in proptest::collection::vec(any::<u64>(), 0..8),
        ) {
            prop_assume!(honest.len() > liars.len());
            let mut all: std::vec::Vec<u64> = honest.iter().chain(liars.iter()).copied().collect();
            let p = median(&mut all).unwrap();
            prop_assert!(p >= *honest.iter().min().unwrap());
            prop_assert!(p <= *honest.iter().max().unwrap());
        }

        /// Random submissions at random times by `n` oracles, each checked as the program checks
        /// it: whatever was posted, between any two posts `T` seconds apart the price moved by at
        /// most `q^T` either way, and by at most `MAX_BAND_FACTOR` in one step.
        #[test]
        fn the_posted_price_never_moves_faster_than_the_band(
            n in 1usize..=10,
            bps in 1u16..=10_000,
            max_age in 60u64..=7_200,
            steps in proptest::collection::vec(
                (any::<usize>(), 0i64..900, any::<bool>(), any::<u64>(), 0u64..=1_000_000),
                1..120,
            ),
        ) {
            let threshold = n / 2 + 1;
            let mut latest: std::vec::Vec<Option<TimedPrice>> = std::vec![None; n];
            let mut posted = TimedPrice::default();
            let mut history: std::vec::Vec<TimedPrice> = std::vec::Vec::new();
            let mut now = 1_700_000_000i64;
            for (who, dt, wild, value, pick) in steps {
                now += dt;
                let i = who % n;
                let band = submission_band(latest[i], now, max_age, bps).unwrap();
                // Either a wild value (refused unless within the band) or one inside the band.
                let price = if wild {
                    value.max(1)
                } else {
                    let width = band.upper.min(1 << 62).saturating_sub(band.lower) as u128;
                    band.lower + (width * u128::from(pick) / 1_000_000) as u64
                };
                if !band.contains(price) {
                    continue;
                }
                latest[i] = Some(TimedPrice { credits_per_token: price, at: now });
                let mut fresh: std::vec::Vec<u64> = latest
                    .iter()
                    .flatten()
                    .filter(|s| is_fresh(s.at, now, max_age))
                    .map(|s| s.credits_per_token)
                    .collect();
                if let Some(post) = quorum_post(posted, &mut fresh, threshold, now, bps).unwrap() {
                    if posted.credits_per_token == 0 {
                        prop_assert_eq!(post.credits_per_token, post.median);
                    }
                    posted = TimedPrice { credits_per_token: post.credits_per_token, at: now };
                    history.push(posted);
                }
            }
            let rate = (f64::from(bps) / 36_000_000.0).ln_1p();
            for (k, a) in history.iter().enumerate() {
                for b in &history[k + 1..] {
                    let moved = (b.credits_per_token as f64 / a.credits_per_token as f64).ln().abs();
                    let allowed = (b.at - a.at) as f64 * rate;
                    prop_assert!(moved <= allowed + 1e-9, "{:?} -> {:?}: {} > {}", a, b, moved, allowed);
                }
            }
            for w in history.windows(2) {
                let (a, b) = (w[0].credits_per_token, w[1].credits_per_token);
                prop_assert!(b <= a.saturating_mul(MAX_BAND_FACTOR) && a <= b.saturating_mul(MAX_BAND_FACTOR));
            }
        }

        #[test]
        fn band_edges_are_the_same_on_both_arithmetic_paths(from in any::<u64>(), elapsed in 0u64..100_000, bps in 1u16..=10_000) {
            let factor = band_factor(elapsed, bps);
            let exact = (u128::from(from) << BAND_FRAC_BITS).div_ceil(u128::from(factor));
            prop_assert_eq!(u128::from(shl_div_ceil(from, factor).unwrap()), exact);
            let upper = (u128::from(from) * u128::from(factor)) >> BAND_FRAC_BITS;
            prop_assert_eq!(u128::from(mul_shr(from, factor).unwrap()), upper.min(u128::from(u64::MAX)));
            prop_assert_eq!(shl_div_ceil(from, BAND_ONE - 1), Err(CoreError::InvalidParameter));
        }

        #[test]
        fn round_trips_never_create_value(amount in any::<u64>(), price in 1u64..u64::MAX, d in 0u8..=18) {
            if let Ok(credits) = credits_for_tokens(amount, price, d) {
                prop_assert!(tokens_for_credits(credits, price, d).unwrap() <= amount);
            }
        }
    }
}
