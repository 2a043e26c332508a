//! The budget, emission, price, split and rate-limit arithmetic of `backhaul_core`.
//!
//! Properties, for any input: no panic (overflow checks are on); with valid parameters, the
//! schedule stays between its floor and its initial emission and never pays out more than the
//! lifetime cap over any run of epochs; an epoch's budget never exceeds what the schedule leaves
//! plus capped net emissions, nor the paid-usage cap; an accepted allocation splits exactly into
//! a scheduled part within the cap's room and a net part within the net allowance; the moving
//! average of burns never exceeds the larger of its inputs; the rate limiter never holds more
//! than its capacity; largest-remainder splits sum exactly to the total and stay within one unit
//! of the exact share; price conversions always round against the receiver; the quorum price is
//! one of the submissions with at least `threshold` submissions at or above it.
#![no_main]

use arbitrary::Arbitrary;
use backhaul_core::budget::{
    next_burn_ema, BudgetExceeded, EpochActivity, EpochBudget, NetEmissionParams,
};
use backhaul_core::emission::EmissionSchedule;
use backhaul_core::price::{
    credits_for_tokens, median, price_band, quorum_post, tokens_for_credits, TimedPrice,
    MAX_BAND_FACTOR,
};
use backhaul_core::rate_limit::MintBucket;
use backhaul_core::split::{bytes_for_credits, credits_for_bytes, split_largest_remainder};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    initial: u64,
    decay_bps: u16,
    period: u64,
    floor: u64,
    cap: u64,
    epoch: u64,
    run_epochs: u8,
    minted: u64,
    prev_ema: u64,
    net_cap: u64,
    smoothing: u64,
    usage_cap_bps: u32,
    burned: u64,
    unreemitted: u64,
    usage_cost: u64,
    price: u64,
    decimals: u8,
    allocation: u64,
    bucket: (u64, u64, u64, i64),
    mints: Vec<(i64, u64)>,
    total: u64,
    weights: Vec<u64>,
    tokens: u64,
    prices: Vec<u64>,
    threshold: u8,
    proposed: u64,
    bps: u16,
    bytes: u64,
}

fn schedule(i: &Input) -> EmissionSchedule {
    EmissionSchedule {
        initial_per_epoch: i.initial,
        decay_bps: i.decay_bps,
        decay_period_epochs: i.period,
        floor_per_epoch: i.floor,
        lifetime_cap: i.cap,
    }
}

fn budget(i: &Input) {
    let s = schedule(i);
    let params = NetEmissionParams {
        net_emissions_cap: i.net_cap,
        smoothing_epochs: i.smoothing,
        usage_cap_bps: i.usage_cap_bps,
    };
    let activity = EpochActivity {
        tokens_burned: i.burned,
        usage_cost: i.usage_cost,
        burns_not_reemitted: i.unreemitted,
    };
    let valid = s.validate().is_ok() && params.validate().is_ok();
    let b = EpochBudget::compute(&s, i.epoch, i.minted, i.prev_ema, &params, &activity);
    if let Ok(sched) = s.scheduled(i.epoch) {
        if s.validate().is_ok() {
            assert!(
                sched >= i.floor && sched <= i.initial,
                "schedule out of range"
            );
        }
    }
    let Ok(b) = b else {
        // With valid parameters only an overflow of scheduled room plus net can fail.
        if valid {
            let room = s.budget(i.epoch, i.minted).expect("valid schedule");
            let ema = next_burn_ema(i.prev_ema, i.burned, i.smoothing).expect("valid smoothing");
            assert!(room
                .checked_add(ema.min(i.net_cap).min(i.unreemitted))
                .is_none());
        }
        return;
    };
    assert!(b.scheduled_room <= b.scheduled);
    assert!(b.scheduled_room <= i.cap.saturating_sub(i.minted));
    assert!(b.net <= i.net_cap && b.net <= b.burn_ema && b.net <= i.unreemitted);
    assert!(
        b.burn_ema <= i.prev_ema.max(i.burned),
        "average above both inputs"
    );
    assert!(b.total <= b.scheduled_room + b.net);
    // The paid-usage cap always applies: k × what buyers paid for what they consumed.
    assert!(b.total <= b.usage_cap);
    assert_eq!(b.total, (b.scheduled_room + b.net).min(b.usage_cap));
    assert!(u128::from(b.usage_cap) * 10_000 <= u128::from(i.usage_cost) * u128::from(i.usage_cap_bps));
    match b.split(i.allocation) {
        Ok(split) => {
            assert_eq!(
                split.scheduled + split.net,
                i.allocation,
                "split does not add up"
            );
            assert!(split.scheduled <= b.scheduled_room);
            assert!(
                split.net <= b.net,
                "re-minted more than net emissions allow"
            );
            assert!(i.allocation <= b.total);
        }
        Err(BudgetExceeded::Schedule) => assert!(i.allocation > b.scheduled + b.net),
        Err(BudgetExceeded::LifetimeCap) => {
            assert!(i.allocation > b.scheduled_room + b.net)
        }
        Err(BudgetExceeded::PaidUsageCap) => assert!(i.allocation > b.total),
    }
    // Over a run of epochs that each mint their full scheduled room, the cap is never passed.
    if s.validate().is_ok() {
        let mut minted = i.minted.min(i.cap);
        for e in 0..u64::from(i.run_epochs % 64) {
            let epoch = i.epoch.saturating_add(e);
            let Ok(room) = s.budget(epoch, minted) else {
                break;
            };
            minted = minted.checked_add(room).expect("minted overflow");
            assert!(minted <= i.cap, "the schedule passed the lifetime cap");
        }
    }
}

fn rate_limit(i: &Input) {
    let (window, capacity, level, last_ts) = i.bucket;
    let mut b = MintBucket {
        window_secs: window,
        capacity,
        level: level.min(capacity),
        last_ts,
    };
    for &(dt, amount) in i.mints.iter().take(32) {
        let now = b.last_ts.saturating_add(dt);
        if let Ok(l) = b.level_at(now) {
            assert!(l <= b.level, "draining raised the level");
        }
        match b.consume(now, amount) {
            Ok(next) => {
                assert!(next.level <= next.capacity, "bucket above capacity");
                assert!(next.last_ts >= b.last_ts, "time went backwards");
                b = next;
            }
            Err(_) => assert!(
                window == 0 || b.available_at(now).map_or(true, |avail| amount > avail),
                "a mint within the available room was refused"
            ),
        }
    }
}

fn split(i: &Input) {
    let weights: Vec<u64> = i.weights.iter().take(64).copied().collect();
    let sum: u128 = weights.iter().map(|w| u128::from(*w)).sum();
    let parts = split_largest_remainder(i.total, &weights).expect("u128 products never overflow");
    assert_eq!(parts.len(), weights.len());
    let given: u128 = parts.iter().map(|p| u128::from(*p)).sum();
    if sum == 0 {
        assert_eq!(given, 0);
        return;
    }
    assert_eq!(given, u128::from(i.total), "parts do not sum to the total");
    for (p, w) in parts.iter().zip(&weights) {
        let exact_floor = u128::from(i.total) * u128::from(*w) / sum;
        assert!(u128::from(*p) >= exact_floor && u128::from(*p) <= exact_floor + 1);
    }
}

fn prices(i: &Input) {
    if let Ok(credits) = credits_for_tokens(i.tokens, i.price, i.decimals) {
        if let Ok(back) = tokens_for_credits(credits, i.price, i.decimals) {
            assert!(back <= i.tokens, "converting back gained tokens");
        }
    }
    if let Ok(c) = credits_for_bytes(i.bytes, i.price) {
        if i.price > 0 {
            assert!(
                bytes_for_credits(c, i.price) <= i.bytes,
                "bytes paid for exceed bytes served"
            );
        } else {
            assert_eq!(c, 0);
        }
    }
    // The program refuses a zero submission (`InvalidPrice`).
    let mut values: Vec<u64> = i.prices.iter().take(16).map(|p| (*p).max(1)).collect();
    let t = usize::from(i.threshold % 17);
    let original = values.clone();
    let elapsed = i.bytes % (400 * 86_400);
    let posted = TimedPrice {
        credits_per_token: i.price,
        at: 0,
    };
    let now = i64::try_from(elapsed).unwrap();
    match quorum_post(posted, &mut values, t, now, i.bps) {
        Ok(Some(post)) => {
            assert!(t >= 1 && original.len() >= t);
            let mut sorted = original.clone();
            assert_eq!(median(&mut sorted), Some(post.median));
            assert!(post.median >= sorted[0] && post.median <= sorted[sorted.len() - 1]);
            if i.price == 0 {
                assert_eq!(post.credits_per_token, post.median.max(1));
            }
        }
        Ok(None) => {
            if t >= 1 && original.len() >= t {
                // Enough submissions, but the band does not yet allow a whole unit of movement
                // towards the median (posting would restart its clock and drop the fraction).
                let mut sorted = original.clone();
                let m = median(&mut sorted).expect("a median of submissions");
                assert!(i.price > 0 && m != i.price);
                let band = price_band(i.price, elapsed, i.bps).expect("a band never overflows");
                assert_eq!(band.clamp(m), i.price);
            }
        }
        Err(e) => panic!("quorum_post refused valid inputs: {e}"),
    }
    if i.price > 0 {
        let band = price_band(i.price, elapsed, i.bps).expect("a band never overflows");
        assert!(band.lower >= 1 && band.lower <= i.price && i.price <= band.upper);
        assert!(u128::from(band.upper) <= u128::from(i.price) * u128::from(MAX_BAND_FACTOR));
        assert!(u128::from(band.lower) * u128::from(MAX_BAND_FACTOR) >= u128::from(i.price));
        let clamped = band.clamp(i.proposed);
        assert!(band.contains(clamped));
        // q^t ≤ e^(bps·t / 36,000,000): the upper edge never exceeds it.
        let exact = (elapsed as f64 * f64::from(i.bps) / 36_000_000.0).exp();
        assert!(band.upper as f64 <= i.price as f64 * exact * (1.0 + 1e-12) + 1.0);
    }
}

fuzz_target!(|input: Input| {
    budget(&input);
    rate_limit(&input);
    split(&input);
    prices(&input);
});
