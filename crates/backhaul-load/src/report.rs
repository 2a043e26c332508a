//! The figures as text (stdout) and JSON.

use crate::drive::PhaseReport;
use crate::monitor::RssStats;
use crate::run::Report;
use std::fmt::Write as _;

fn n(v: f64) -> String {
    // Thousands separators for readability.
    let s = format!("{:.0}", v.round());
    let (sign, digits) = s.strip_prefix('-').map_or(("", s.as_str()), |d| ("-", d));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}")
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn rss_line(s: &RssStats) -> String {
    format!(
        "first {}, last {}, max {}, slope {:+.2} MiB/min over {} samples",
        mib(s.first_kib),
        mib(s.last_kib),
        mib(s.max_kib),
        s.slope_kib_per_min / 1024.0,
        s.samples
    )
}

fn phase(out: &mut String, p: &PhaseReport, unit: &str) {
    let _ = writeln!(
        out,
        "{}: {} connections, {:.1} s planned, {:.1} s from first request to last answer{}",
        p.phase,
        p.connections,
        p.planned_secs,
        p.elapsed_secs,
        if p.exhausted {
            " (prepared work ran out)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        out,
        "  throughput: {} {unit}/s ({} {unit}), {} requests/s ({} requests)",
        n(p.items_per_sec),
        n(p.items as f64),
        n(p.requests_per_sec),
        n(p.requests as f64)
    );
    let l = &p.latency;
    let _ = writeln!(
        out,
        "  latency per request: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms, mean {:.2} ms",
        l.p50_ms, l.p90_ms, l.p99_ms, l.p999_ms, l.max_ms, l.mean_ms
    );
    if let (Some(o), Some(g)) = (p.oracle_cpu_secs, p.generator_cpu_secs) {
        let _ = writeln!(
            out,
            "  CPU: oracle {o:.1} s ({:.0}% of one core, {} us per {}), load generator {g:.1} s",
            100.0 * o / p.elapsed_secs.max(1e-9),
            p.oracle_cpu_us_per_item
                .map_or_else(|| "-".to_string(), |u| format!("{u:.1}")),
            unit.trim_end_matches('s'),
        );
    }
    let outcomes: Vec<String> = p
        .outcomes
        .iter()
        .map(|(k, v)| format!("{k} {}", n(*v as f64)))
        .collect();
    let _ = writeln!(out, "  answers: {}", outcomes.join(", "));
    let errors: Vec<String> = p
        .errors
        .iter()
        .map(|(k, v)| format!("{k} {}", n(*v as f64)))
        .collect();
    let _ = writeln!(
        out,
        "  errors: {}",
        if errors.is_empty() {
            "none".to_string()
        } else {
            errors.join(", ")
        }
    );
}

/// The human-readable report.
pub fn text(r: &Report) -> String {
    let mut out = String::new();
    let m = &r.machine;
    let _ = writeln!(
        out,
        "backhaul-load at unix {}: {} cores ({}), {:.0} GiB; oracle {}",
        r.started_at, m.cores, m.cpu, m.memory_gib, r.oracle_url
    );
    let w = &r.workload;
    let s = &w.shape;
    let _ = writeln!(
        out,
        "workload: {} nodes x {} sessions, {} clients, {} buyers; {} receipts in {} requests of up to {}; signed in {:.1} s; {} bindings and {} grants accepted",
        n(s.nodes as f64),
        s.sessions_per_node,
        n(s.clients as f64),
        w.buyers,
        n(s.receipts as f64),
        n(w.requests as f64),
        n(s.batch as f64),
        w.signing_secs,
        n(w.bindings_accepted as f64),
        n(w.grants_accepted as f64)
    );
    for (when, b) in [
        ("before ingest", &r.baseline),
        ("after ingest", &r.baseline_after),
    ] {
        if let Some(b) = b {
            let _ = writeln!(
                out,
                "baseline {when}: raw strict batch verification of {} of the same receipts in batches of {}: {} receipts/s on 1 thread, {} receipts/s on {} threads",
                n(b.receipts as f64),
                n(b.batch as f64),
                n(b.one_thread_receipts_per_sec),
                n(b.receipts_per_sec),
                b.threads
            );
        }
    }
    if let Some(p) = &r.ingest {
        phase(&mut out, p, "receipts");
        if let Some(ratio) = r.ingest_vs_baseline {
            let _ = writeln!(
                out,
                "  end to end / raw verification (the faster baseline): {:.1}% (target: at least 60%, and at least 10,000 receipts/s)",
                100.0 * ratio
            );
        }
    }
    if let Some(c) = &r.close {
        let _ = writeln!(
            out,
            "close: epoch {} closed {:.1} s after its seal; {} operators in the reward tree",
            c.epoch,
            c.secs,
            n(c.operators as f64)
        );
    }
    if let Some(p) = &r.proofs {
        phase(&mut out, p, "proofs");
        let _ = writeln!(
            out,
            "  target: at least 5,000 proofs/s with p99 under 20 ms: {}",
            if p.items_per_sec >= 5_000.0 && p.latency.p99_ms < 20.0 && p.error_count() == 0 {
                "met"
            } else {
                "missed"
            }
        );
    }
    if let Some(rss) = &r.rss {
        let _ = writeln!(
            out,
            "oracle memory (VmRSS of pid {}, every {:.0} s): {}",
            rss.pid,
            rss.interval_secs,
            rss_line(&rss.overall)
        );
        for (name, st) in &rss.phases {
            let _ = writeln!(out, "  {name}: {}", rss_line(st));
        }
        let series: Vec<String> = rss
            .series
            .iter()
            .map(|x| format!("{:.0}s {:.1}", x.t_secs, x.rss_kib as f64 / 1024.0))
            .collect();
        let _ = writeln!(out, "  series (s MiB): {}", series.join(", "));
    }
    if !r.load_average.is_empty() {
        let l: Vec<String> = r
            .load_average
            .iter()
            .map(|l| format!("{} {:.2} -> {:.2}", l.phase, l.at_start, l.at_end))
            .collect();
        let _ = writeln!(
            out,
            "machine load average (1 min) at the start and end of each phase: {}",
            l.join(", ")
        );
    }
    for note in &r.notes {
        let _ = writeln!(out, "note: {note}");
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn thousands() {
        assert_eq!(super::n(0.0), "0");
        assert_eq!(super::n(999.4), "999");
        assert_eq!(super::n(1_234_567.0), "1,234,567");
        assert_eq!(super::n(-1_000.0), "-1,000");
    }
}
