//! The oracle's resident memory over time, read from `/proc/<pid>/status` (`VmRSS`).

use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One reading.
#[derive(Clone, Debug, Serialize)]
pub struct RssSample {
    /// Seconds since the monitor started.
    pub t_secs: f64,
    /// The phase running when it was taken.
    pub phase: String,
    pub rss_kib: u64,
}

/// First, last and largest reading and the least-squares slope.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RssStats {
    pub samples: usize,
    pub first_kib: u64,
    pub last_kib: u64,
    pub max_kib: u64,
    /// Least-squares slope over the readings, KiB per minute.
    pub slope_kib_per_min: f64,
}

impl RssStats {
    pub fn of<'a>(samples: impl IntoIterator<Item = &'a RssSample>) -> Self {
        let s: Vec<&RssSample> = samples.into_iter().collect();
        let (Some(first), Some(last)) = (s.first(), s.last()) else {
            return Self::default();
        };
        RssStats {
            samples: s.len(),
            first_kib: first.rss_kib,
            last_kib: last.rss_kib,
            max_kib: s.iter().map(|x| x.rss_kib).max().unwrap_or(0),
            slope_kib_per_min: slope(
                &s.iter()
                    .map(|x| (x.t_secs, x.rss_kib as f64))
                    .collect::<Vec<_>>(),
            ) * 60.0,
        }
    }
}

/// The least-squares slope of `y` over `x` (0 with fewer than two distinct `x`).
pub fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx) * (p.0 - mx)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    if sxx <= f64::EPSILON {
        0.0
    } else {
        sxy / sxx
    }
}

/// The whole series, overall and per phase.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RssReport {
    pub pid: u32,
    pub interval_secs: f64,
    pub overall: RssStats,
    /// Per phase, in the order they ran.
    pub phases: Vec<(String, RssStats)>,
    pub series: Vec<RssSample>,
}

/// The resident set size of `pid` in KiB.
pub fn read_rss_kib(pid: u32) -> std::io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("/proc/{pid}/status has no readable VmRSS line"),
            )
        })
}

/// CPU time (user + system) `pid` has used so far, in seconds (`/proc/<pid>/stat`, in clock
/// ticks of 1/100 s, the value Linux exposes to user space on every architecture it runs on).
pub fn cpu_secs(pid: u32) -> std::io::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 (utime, stime) are the 12th and 13th after the command name.
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(u), Some(s)) => Ok((u + s) as f64 / 100.0),
        _ => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("/proc/{pid}/stat has no readable utime/stime"),
        )),
    }
}

/// Samples a process's RSS every `interval` on a thread of its own until dropped.
pub struct RssMonitor {
    pid: u32,
    interval: Duration,
    started: Instant,
    phase: Mutex<String>,
    samples: Mutex<Vec<RssSample>>,
    stop: Mutex<bool>,
}

impl RssMonitor {
    /// Starts sampling; fails if the process's memory cannot be read at all.
    pub fn start(pid: u32, interval: Duration) -> std::io::Result<Arc<RssMonitor>> {
        read_rss_kib(pid)?;
        let m = Arc::new(RssMonitor {
            pid,
            interval,
            started: Instant::now(),
            phase: Mutex::new("setup".into()),
            samples: Mutex::new(Vec::new()),
            stop: Mutex::new(false),
        });
        // The first reading now, then one every interval.
        m.sample();
        let weak = Arc::downgrade(&m);
        std::thread::Builder::new()
            .name("rss-monitor".into())
            .spawn(move || loop {
                std::thread::sleep(interval);
                let Some(m) = weak.upgrade() else { return };
                if m.stop.lock().map(|s| *s).unwrap_or(true) {
                    return;
                }
                m.sample();
            })?;
        Ok(m)
    }

    /// Takes one reading now (also done every interval).
    pub fn sample(&self) {
        match read_rss_kib(self.pid) {
            Ok(kib) => {
                let phase = self.phase.lock().map(|p| p.clone()).unwrap_or_default();
                if let Ok(mut s) = self.samples.lock() {
                    s.push(RssSample {
                        t_secs: self.started.elapsed().as_secs_f64(),
                        phase,
                        rss_kib: kib,
                    });
                }
            }
            Err(e) => {
                tracing::debug!(pid = self.pid, error = %e, "reading the oracle's memory failed")
            }
        }
    }

    /// Labels the readings that follow.
    pub fn set_phase(&self, phase: &str) {
        if let Ok(mut p) = self.phase.lock() {
            *p = phase.to_string();
        }
        self.sample();
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn last_kib(&self) -> Option<u64> {
        self.samples.lock().ok()?.last().map(|s| s.rss_kib)
    }

    /// Stops sampling and summarizes.
    pub fn finish(&self) -> RssReport {
        self.sample();
        if let Ok(mut s) = self.stop.lock() {
            *s = true;
        }
        let series = self.samples.lock().map(|s| s.clone()).unwrap_or_default();
        let mut names: Vec<&str> = Vec::new();
        for s in &series {
            if !names.contains(&s.phase.as_str()) {
                names.push(&s.phase);
            }
        }
        let phases = names
            .iter()
            .map(|n| {
                (
                    n.to_string(),
                    RssStats::of(series.iter().filter(|s| s.phase == *n)),
                )
            })
            .collect();
        RssReport {
            pid: self.pid,
            interval_secs: self.interval.as_secs_f64(),
            overall: RssStats::of(&series),
            phases,
            series,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slope_of_a_line_and_of_noise() {
        let line: Vec<_> = (0..10).map(|i| (i as f64, 3.0 * i as f64 + 7.0)).collect();
        assert!((slope(&line) - 3.0).abs() < 1e-9);
        assert_eq!(slope(&[(1.0, 5.0)]), 0.0);
        assert_eq!(slope(&[(1.0, 5.0), (1.0, 9.0)]), 0.0);
    }

    #[test]
    fn reads_this_process_and_refuses_a_missing_one() {
        let me = std::process::id();
        assert!(read_rss_kib(me).unwrap() > 0);
        assert!(read_rss_kib(u32::MAX).is_err());
        assert!(cpu_secs(u32::MAX).is_err());
        let before = cpu_secs(me).unwrap();
        let spin = std::time::Instant::now();
        let mut x = 0u64;
        while spin.elapsed() < Duration::from_millis(300) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        assert!(
            cpu_secs(me).unwrap() >= before + 0.1,
            "300 ms of spinning shows as CPU time"
        );
        assert!(RssMonitor::start(u32::MAX, Duration::from_millis(10)).is_err());
        let m = RssMonitor::start(me, Duration::from_millis(20)).unwrap();
        m.set_phase("a");
        std::thread::sleep(Duration::from_millis(100));
        m.set_phase("b");
        let r = m.finish();
        assert!(r.overall.samples >= 4, "{:?}", r.overall);
        let names: Vec<&str> = r.phases.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["setup", "a", "b"]);
        assert!(r.overall.max_kib >= r.overall.first_kib);
        assert!(r.series.windows(2).all(|w| w[0].t_secs <= w[1].t_secs));
    }
}
