//! An operator's and a firm's history as CSV (RFC 4180), from the same rows as their pages.
//! Times are UTC (ISO 8601) beside the Unix seconds; amounts are in base units with the
//! decimals named in the header.

use crate::firm::FirmRow;
use crate::operator::OperatorRow;

/// `unix` as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn utc(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3_600,
        secs % 3_600 / 60,
        secs % 60
    )
}

/// The columns every history starts with.
const EPOCH_COLUMNS: &str = "epoch,start_utc,end_utc,start_unix,end_unix,status";

/// An epoch's leading columns, then `rest` (comma-separated), as one CSV line.
fn line(out: &mut String, epoch: u64, (start, end): (i64, i64), status: &str, rest: &str) {
    out.push_str(&format!(
        "{epoch},{},{},{start},{end},{status},{rest}\n",
        utc(start),
        utc(end)
    ));
}

/// The operator's history, newest epoch first, as the page's table shows it.
pub fn operator(rows: &[OperatorRow], decimals: u8) -> String {
    let mut out = format!(
        "{EPOCH_COLUMNS},bytes,reward_base_units,cumulative_base_units,verified,decimals
"
    );
    for r in rows {
        let rest = format!(
            "{},{},{},{},{decimals}",
            r.bytes, r.reward, r.cumulative, r.verified
        );
        line(&mut out, r.epoch, (r.start, r.end), &r.status, &rest);
    }
    out
}

/// The firm's history, newest epoch first, as the page's table shows it.
pub fn firm(rows: &[FirmRow], decimals: u8) -> String {
    let mut out = format!(
        "{EPOCH_COLUMNS},credits_consumed,bytes,cost_base_units,cumulative_credits,verified,decimals
"
    );
    for r in rows {
        let rest = format!(
            "{},{},{},{},{},{decimals}",
            r.credits, r.bytes, r.cost, r.cumulative, r.verified
        );
        line(&mut out, r.epoch, (r.start, r.end), &r.status, &rest);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_times_match_known_dates() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_796_601_599), "2026-12-06T23:59:59Z");
        assert_eq!(utc(-1), "1969-12-31T23:59:59Z");
    }
}
