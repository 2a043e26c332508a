//! How a check notes what it found: each helper pushes a problem, in words, when the figures
//! disagree; a check passes when it noted none.

use backhaul_protocol::dataset::key_from_b58;
use std::fmt::Display;

/// Pushes a problem when `actual != expected`.
pub(crate) fn same<T: PartialEq + Display>(
    problems: &mut Vec<String>,
    what: &str,
    actual: T,
    expected: T,
) {
    if actual != expected {
        problems.push(format!("{what} is {actual}, expected {expected}"));
    }
}

/// Sum of u64s without overflow (u128 holds any realistic count of u64s).
pub(crate) fn sum<I: IntoIterator<Item = u64>>(it: I) -> u128 {
    it.into_iter().map(u128::from).sum()
}

/// Decodes a base58 key, noting a problem when it is not one.
pub(crate) fn key(p: &mut Vec<String>, what: &str, s: &str) -> Option<[u8; 32]> {
    let k = key_from_b58(s);
    if k.is_none() {
        p.push(format!("{what} {s:?} is not a base58 32-byte key"));
    }
    k
}

/// Keys strictly ascending (sorted and unique).
pub(crate) fn ascending(p: &mut Vec<String>, what: &str, keys: &[Option<[u8; 32]>]) {
    let keys: Vec<[u8; 32]> = keys.iter().flatten().copied().collect();
    if let Some(i) = keys.windows(2).position(|w| w[0] >= w[1]) {
        p.push(format!(
            "{what} are not sorted and unique by account bytes (at position {})",
            i + 1
        ));
    }
}
