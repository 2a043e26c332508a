//! A figure and the checks that verified it.

use serde::Serialize;
use std::collections::HashMap;

/// One number on a page, with the ids of the audit checks it rests on. It is verified only when
/// it names at least one check and every check it names ran and passed: a figure whose dataset
/// could not be fetched, or whose check failed, is shown as unverified.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Figure {
    #[serde(with = "dec")]
    pub value: u64,
    pub verified: bool,
    pub checks: Vec<String>,
}

impl Figure {
    /// `value`, verified by `checks` as the audit found them (`results`: each check's id and
    /// whether it passed).
    pub fn new(results: &HashMap<String, bool>, value: u64, checks: Vec<String>) -> Figure {
        let verified = !checks.is_empty()
            && checks
                .iter()
                .all(|id| results.get(id).copied().unwrap_or(false));
        Figure {
            value,
            verified,
            checks,
        }
    }
}

/// The id of epoch `e`'s check `name`.
pub(crate) fn epoch_check(e: u64, name: &str) -> String {
    format!("epoch-{e}/{name}")
}

/// Amounts as decimal strings in JSON: a u64 of base units does not fit a JavaScript number
/// (2^53), so the page reads them with `BigInt`.
pub mod dec {
    use serde::Serializer;

    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }
}
