//! Printing: logs on stderr through `tracing`, results on stdout as text or JSON.

use crate::context::OutputFormat;

/// Whether to colour what goes to a stream: only a terminal, and never with `NO_COLOR` set to
/// anything but the empty string (<https://no-color.org>).
pub fn use_colour(is_terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Whether stderr gets colours ([`use_colour`] for stderr and this process's `NO_COLOR`).
pub fn stderr_colour() -> bool {
    use std::io::IsTerminal;
    use_colour(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR"),
    )
}

/// Logs go to stderr so that `--output json` stays parseable; `RUST_LOG` overrides `-v`. They
/// are coloured only on a terminal (and without `NO_COLOR`).
pub fn init_tracing(verbose: u8) {
    init_tracing_for(verbose, false)
}

/// [`init_tracing`], for a long-running `service` (`guardian watch`) too, which logs its progress
/// at `info` without `-v`.
pub fn init_tracing_for(verbose: u8, service: bool) {
    let default = match verbose {
        0 if service => "info,solana_metrics=error,tarpc=error",
        0 => "warn,solana_metrics=error,tarpc=error",
        1 => "info,backhaul=debug",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(stderr_colour())
        .try_init();
}

/// Prints a command's error: a sentence on stderr, or `{"error": ...}` on stdout with JSON output.
pub fn print_error(output: OutputFormat, e: &anyhow::Error) {
    match output {
        OutputFormat::Display => eprintln!("error: {e:#}"),
        OutputFormat::Json | OutputFormat::JsonCompact => {
            println!("{}", serde_json::json!({ "error": format!("{e:#}") }))
        }
    }
}

/// Prints a serializable result as JSON, or calls `display` for people.
pub fn emit<T: serde::Serialize>(output: OutputFormat, value: &T, display: impl FnOnce(&T)) {
    match output {
        OutputFormat::Display => display(value),
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(value)
                .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
        ),
        OutputFormat::JsonCompact => println!(
            "{}",
            serde_json::to_string(value).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
        ),
    }
}

/// A unix time as people read it: `2027-01-15 08:00:00 UTC`.
pub fn format_time(ts: i64) -> String {
    let days = ts.div_euclid(86_400);
    let secs = ts.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        secs / 3_600,
        secs % 3_600 / 60,
        secs % 60
    )
}

/// A unix time with its reading: `1800000000 (2027-01-15 08:00:00 UTC)`.
pub fn format_ts(ts: i64) -> String {
    format!("{ts} ({})", format_time(ts))
}

/// A length of time in days, hours, minutes and seconds, largest first, zeros left out:
/// `2d 1h`, `59m 59s`, `0s`.
pub fn format_duration(secs: u64) -> String {
    let parts = [
        (secs / 86_400, "d"),
        (secs % 86_400 / 3_600, "h"),
        (secs % 3_600 / 60, "m"),
        (secs % 60, "s"),
    ];
    let text: Vec<String> = parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect();
    if text.is_empty() {
        "0s".into()
    } else {
        text.join(" ")
    }
}

/// `at` relative to `now`: `in 2d 1h` or `3m ago` (`now` when equal).
pub fn relative(at: i64, now: i64) -> String {
    match at.cmp(&now) {
        std::cmp::Ordering::Greater => format!("in {}", format_duration(at.abs_diff(now))),
        std::cmp::Ordering::Less => format!("{} ago", format_duration(at.abs_diff(now))),
        std::cmp::Ordering::Equal => "now".into(),
    }
}

/// (year, month, day) of the day `z` days after 1970-01-01 in the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z.saturating_add(719_468);
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe.saturating_add(era.saturating_mul(400));
    (if m <= 2 { y.saturating_add(1) } else { y }, m, d)
}

/// One oracle's answer to a submitted message.
#[derive(Clone, Debug, serde::Serialize)]
pub struct OracleReport {
    pub oracle: String,
    /// `accepted`, `duplicate`, `superseded`, `equivocation`, `rejected`, or `error`.
    pub status: String,
    /// Why it was rejected, or what went wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What the oracles answered to a signed message (binding, grant or revocation).
#[derive(Clone, Debug, serde::Serialize)]
pub struct SubmitOutcome {
    pub action: String,
    /// The message, in words.
    pub message: String,
    /// How many oracles hold it now (answered accepted or duplicate).
    pub stored_by: usize,
    pub oracles: Vec<OracleReport>,
}

impl SubmitOutcome {
    /// Summarizes a one-item fan-out report.
    pub fn from_report(
        action: &str,
        message: String,
        report: &backhaul_client::FanoutReport,
    ) -> SubmitOutcome {
        use backhaul_protocol::api::ItemStatus;
        let oracles = report
            .outcomes
            .iter()
            .map(|o| {
                let first = match &o.result {
                    Ok(batch) => batch.results.first().copied(),
                    Err(e) => e.completed.first().copied(),
                };
                match (first, &o.result) {
                    (Some(r), _) => OracleReport {
                        oracle: o.oracle.clone(),
                        status: match r.status {
                            ItemStatus::Accepted => "accepted",
                            ItemStatus::Duplicate => "duplicate",
                            ItemStatus::Superseded => "superseded",
                            ItemStatus::Equivocation => "equivocation",
                            ItemStatus::Held => "held",
                            ItemStatus::Rejected => "rejected",
                        }
                        .into(),
                        reason: r.reason.map(|r| r.as_str().to_string()),
                    },
                    (None, Err(e)) => OracleReport {
                        oracle: o.oracle.clone(),
                        status: "error".into(),
                        reason: Some(e.to_string()),
                    },
                    (None, Ok(_)) => OracleReport {
                        oracle: o.oracle.clone(),
                        status: "error".into(),
                        reason: Some("the oracle answered no result for the item".into()),
                    },
                }
            })
            .collect::<Vec<_>>();
        SubmitOutcome {
            action: action.into(),
            message,
            stored_by: report.stored_by(1).first().copied().unwrap_or(0),
            oracles,
        }
    }

    /// Every oracle holds the message.
    pub fn all_stored(&self) -> bool {
        self.stored_by == self.oracles.len()
    }

    /// 0 when every oracle holds the message, 1 otherwise.
    pub fn exit_code(&self) -> std::process::ExitCode {
        if self.all_stored() {
            std::process::ExitCode::SUCCESS
        } else {
            std::process::ExitCode::FAILURE
        }
    }

    pub fn print(&self) {
        println!(
            "{}: {} (held by {} of {} oracles)",
            self.action,
            self.message,
            self.stored_by,
            self.oracles.len()
        );
        for o in &self.oracles {
            match &o.reason {
                Some(r) => println!("  {:<40} {} ({r})", o.oracle, o.status),
                None => println!("  {:<40} {}", o.oracle, o.status),
            }
        }
        if !self.all_stored() {
            println!("  some oracles do not hold it: run the command again once they are reachable (resubmitting is safe)");
        }
    }
}

/// An epoch status as the command line prints it: as the audit's report names it.
pub use backhaul_audit::status_name;

#[cfg(test)]
mod tests {
    use super::{format_duration, format_time, relative, use_colour};

    #[test]
    fn times_read_as_utc_dates() {
        assert_eq!(format_time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_time(1_800_000_000), "2027-01-15 08:00:00 UTC");
        assert_eq!(format_time(951_825_600), "2000-02-29 12:00:00 UTC");
        assert_eq!(format_time(-1), "1969-12-31 23:59:59 UTC");
        assert_eq!(format_duration(0), "0s");
        assert_eq!(format_duration(172_800), "2d");
        assert_eq!(format_duration(90_061), "1d 1h 1m 1s");
        assert_eq!(relative(10, 0), "in 10s");
        assert_eq!(relative(0, 3_600), "1h ago");
        assert_eq!(relative(5, 5), "now");
    }

    #[test]
    fn colours_only_on_a_terminal_without_no_color() {
        assert!(use_colour(true, None));
        assert!(
            use_colour(true, Some("".into())),
            "an empty NO_COLOR is unset"
        );
        assert!(!use_colour(true, Some("1".into())));
        assert!(!use_colour(false, None));
        assert!(!use_colour(false, Some("1".into())));
    }
}
