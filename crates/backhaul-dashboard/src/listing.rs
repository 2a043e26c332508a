//! Operators and firms a page at a time, from the newest dataset (its leaves are in key order,
//! so a page is a slice and a lookup is a binary search: a network of a million operators is
//! never sent or scanned whole).

use crate::model::Model;
use serde::Serialize;

/// The most rows one page holds.
pub const MAX_PER_PAGE: usize = 200;

/// One page of a listing.
#[derive(Clone, Debug, Serialize)]
pub struct Page<T> {
    /// The epoch whose dataset it lists (none without any dataset).
    pub epoch: Option<u64>,
    pub page: usize,
    pub per_page: usize,
    pub total: usize,
    pub rows: Vec<T>,
}

/// An operator in a listing.
#[derive(Clone, Debug, Serialize)]
pub struct OperatorEntry {
    pub operator: String,
    #[serde(with = "crate::figure::dec")]
    pub cumulative: u64,
    #[serde(with = "crate::figure::dec")]
    pub reward: u64,
    #[serde(with = "crate::figure::dec")]
    pub bytes: u64,
}

/// A firm in a listing.
#[derive(Clone, Debug, Serialize)]
pub struct FirmEntry {
    pub buyer: String,
    #[serde(with = "crate::figure::dec")]
    pub cumulative: u64,
    #[serde(with = "crate::figure::dec")]
    pub credits: u64,
    #[serde(with = "crate::figure::dec")]
    pub bytes: u64,
}

fn slice<T: Clone, U>(
    epoch: Option<u64>,
    all: &[T],
    page: usize,
    per_page: usize,
    f: impl Fn(&T) -> U,
) -> Page<U> {
    let per_page = per_page.clamp(1, MAX_PER_PAGE);
    let start = page.saturating_mul(per_page).min(all.len());
    let end = start.saturating_add(per_page).min(all.len());
    Page {
        epoch,
        page,
        per_page,
        total: all.len(),
        rows: all[start..end].iter().map(f).collect(),
    }
}

/// Page `page` (from 0) of the operators in the newest dataset.
pub fn operators(m: &Model, page: usize, per_page: usize) -> Page<OperatorEntry> {
    let d = m.newest_with_dataset();
    let leaves = d
        .and_then(|d| d.dataset.as_ref())
        .map_or(&[][..], |ds| &ds.rewards.leaves[..]);
    slice(d.map(|d| d.record.epoch), leaves, page, per_page, |l| {
        OperatorEntry {
            operator: l.operator.clone(),
            cumulative: l.cumulative,
            reward: l.amount,
            bytes: l.bytes,
        }
    })
}

/// Page `page` (from 0) of the firms in the newest dataset.
pub fn firms(m: &Model, page: usize, per_page: usize) -> Page<FirmEntry> {
    let d = m.newest_with_dataset();
    let leaves = d
        .and_then(|d| d.dataset.as_ref())
        .map_or(&[][..], |ds| &ds.usage.leaves[..]);
    slice(d.map(|d| d.record.epoch), leaves, page, per_page, |l| {
        FirmEntry {
            buyer: l.buyer.clone(),
            cumulative: l.cumulative,
            credits: l.credits,
            bytes: l.bytes,
        }
    })
}
