//! Token amounts: whole tokens with decimals as people type them, base units on-chain.

use anyhow::{bail, Context as _};

/// Parses `text` (`"12"`, `"12.5"`, `"0.000001"`, `"1_000"`) as an amount of a token with
/// `decimals` decimals and returns base units. At most `decimals` digits after the point.
pub fn parse_tokens(text: &str, decimals: u8) -> anyhow::Result<u64> {
    let cleaned: String = text.trim().chars().filter(|c| *c != '_').collect();
    if cleaned.is_empty() {
        bail!("the amount is empty: give a number of tokens such as 12 or 0.5");
    }
    let (whole, frac) = match cleaned.split_once('.') {
        Some((w, f)) => (w, f),
        None => (cleaned.as_str(), ""),
    };
    let digits_only = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if !digits_only(whole) || !digits_only(frac) || (whole.is_empty() && frac.is_empty()) {
        bail!("{text:?} is not an amount of tokens: use digits with at most one decimal point, such as 12 or 0.5");
    }
    if frac.len() > usize::from(decimals) {
        bail!(
            "{text:?} has {} digits after the point, but the token has {decimals} decimals",
            frac.len()
        );
    }
    let unit = 10u64
        .checked_pow(u32::from(decimals))
        .context("the token's decimals are out of range")?;
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole
            .parse()
            .with_context(|| format!("{text:?} is too large"))?
    };
    let mut frac_units: u64 = 0;
    if !frac.is_empty() {
        let padded = format!("{frac:0<width$}", width = usize::from(decimals));
        frac_units = padded
            .parse()
            .with_context(|| format!("{text:?} is not an amount of tokens"))?;
    }
    whole
        .checked_mul(unit)
        .and_then(|w| w.checked_add(frac_units))
        .with_context(|| {
            format!("{text:?} tokens is more than a 64-bit amount of base units can hold")
        })
}

/// Formats `base_units` of a token with `decimals` decimals, without trailing zeros
/// (`1500000`, 6 → `"1.5"`).
pub fn format_tokens(base_units: u64, decimals: u8) -> String {
    let unit = 10u128.pow(u32::from(decimals.min(38)));
    let value = u128::from(base_units);
    let whole = value / unit;
    let frac = value % unit;
    if frac == 0 {
        return whole.to_string();
    }
    let frac = format!("{frac:0>width$}", width = usize::from(decimals));
    format!("{whole}.{}", frac.trim_end_matches('0'))
}
