//! The run's figures: a [`Summary`] that serialises to JSON and renders as a
//! table for people.

use crate::recorder::{Errors, Recorder};
use crate::run::RunConfig;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The parameters of the run, as given (normalised).
#[derive(Debug, Clone, Serialize)]
pub struct Params {
    pub url: String,
    pub method: String,
    pub headers: Vec<String>,
    pub body_bytes: usize,
    pub connections: usize,
    pub threads: usize,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub pipeline: usize,
    /// Requested total rate (open loop), or `null` for closed loop.
    pub rate_per_s: Option<f64>,
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p99_9: f64,
    pub p99_99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        let us = |ns: u64| (ns as f64 / 100.0).round() / 10.0;
        let q = |q: f64| if h.is_empty() { 0.0 } else { us(h.value_at_quantile(q)) };
        Percentiles {
            p50: q(0.50),
            p90: q(0.90),
            p99: q(0.99),
            p99_9: q(0.999),
            p99_99: q(0.9999),
            max: if h.is_empty() { 0.0 } else { us(h.max()) },
            mean: if h.is_empty() { 0.0 } else { (h.mean() / 100.0).round() / 10.0 },
        }
    }
}

/// Everything a run measured; serialised as the `--json` document.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The command line as typed, when run from it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub argv: Vec<String>,
    pub params: Params,
    /// `"closed"` (each connection keeps `pipeline` requests outstanding) or
    /// `"open"` (fixed rate, latency corrected for coordinated omission).
    pub mode: &'static str,
    /// Responses completed inside the measured window.
    pub requests: u64,
    pub duration_s: f64,
    pub requests_per_s: f64,
    pub errors: Errors,
    /// Responses with a status outside 200..=299.
    pub non_2xx: u64,
    /// Count per status code (as strings, for JSON object keys).
    pub status: BTreeMap<String, u64>,
    pub reconnects: u64,
    /// Open loop: requests due but not yet sent when the run ended (the
    /// server, or the connections, could not keep up).
    pub unsent: u64,
    /// Bytes received over the whole run, warm-up included.
    pub bytes_read: u64,
    /// Completion minus intended send time: corrected for coordinated
    /// omission in open loop; the same as the service time in closed loop.
    pub latency_us: Percentiles,
    /// Completion minus actual send time; only for open loop.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_time_us: Option<Percentiles>,
    /// `[percentile, µs]` of `latency_us` at [`CURVE_PERCENTILES`]: the
    /// distribution's shape, for plots.
    pub latency_curve_us: Vec<[f64; 2]>,
}

/// Where [`Summary::latency_curve_us`] samples the latency distribution.
pub const CURVE_PERCENTILES: [f64; 16] =
    [0.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 99.995, 99.999, 99.9999, 100.0];

fn curve(h: &Histogram<u64>) -> Vec<[f64; 2]> {
    if h.is_empty() {
        return Vec::new();
    }
    let us = |ns: u64| (ns as f64 / 100.0).round() / 10.0;
    CURVE_PERCENTILES.iter().map(|&p| [p, us(h.value_at_percentile(p))]).collect()
}

impl Summary {
    pub fn new(config: &RunConfig, threads: usize, recorder: &Recorder) -> Summary {
        let open = config.rate_per_s.is_some();
        let duration_s = config.duration.as_secs_f64();
        Summary {
            argv: Vec::new(),
            params: Params {
                url: config.target.url(),
                method: config.method.clone(),
                headers: config.headers.clone(),
                body_bytes: config.body.len(),
                connections: config.connections,
                threads,
                duration_s,
                warmup_s: config.warmup.as_secs_f64(),
                pipeline: config.pipeline,
                rate_per_s: config.rate_per_s,
            },
            mode: if open { "open" } else { "closed" },
            requests: recorder.requests(),
            duration_s,
            requests_per_s: (recorder.requests() as f64 / duration_s * 10.0).round() / 10.0,
            errors: recorder.errors,
            non_2xx: recorder.non_2xx(),
            status: recorder.statuses().map(|(s, n)| (s.to_string(), n)).collect(),
            reconnects: recorder.reconnects,
            unsent: recorder.unsent,
            bytes_read: recorder.bytes_read,
            latency_us: Percentiles::of(&recorder.latency),
            service_time_us: open.then(|| Percentiles::of(&recorder.service)),
            latency_curve_us: curve(&recorder.latency),
        }
    }

    /// Whether the run failed as a whole: a connection could not be opened,
    /// or nothing completed. (The command exits non-zero on it.)
    pub fn failed(&self) -> bool {
        self.errors.connect > 0 || self.requests == 0
    }

    pub fn to_json(&self) -> String {
        // A Summary is plain data with string keys: serialisation cannot fail.
        serde_json::to_string_pretty(self).expect("summary serialises")
    }

    /// The human table.
    pub fn table(&self) -> String {
        let p = &self.params;
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = writeln!(out, "seckill-bench  {} {}", p.method, p.url);
        let mode = match p.rate_per_s {
            Some(rate) => format!("open loop at {} req/s, latency corrected for coordinated omission", group(rate)),
            None => "closed loop".to_string(),
        };
        let _ = writeln!(out, "  {mode}");
        let _ = writeln!(
            out,
            "  {} threads, {} connections, pipeline {}, {}s measured after {}s warm-up\n",
            p.threads, p.connections, p.pipeline, p.duration_s, p.warmup_s
        );
        let mut rate = format!("{} req/s", group(self.requests_per_s));
        if let Some(requested) = p.rate_per_s {
            let _ = write!(rate, " (requested {}, {:.1}%)", group(requested), 100.0 * self.requests_per_s / requested);
        }
        let _ = writeln!(out, "  {:<12}{:>14}   {rate}", "requests", group(self.requests as f64));
        let _ = writeln!(out, "  {:<12}{}", "errors", errors_line(&self.errors));
        let statuses: Vec<String> = self.status.iter().map(|(s, n)| format!("{s}: {}", group(*n as f64))).collect();
        let statuses = if statuses.is_empty() { "none".to_string() } else { statuses.join(", ") };
        let _ = writeln!(out, "  {:<12}{statuses}   (non-2xx: {})", "status", self.non_2xx);
        let _ = writeln!(out, "  {:<12}{}", "reconnects", self.reconnects);
        if p.rate_per_s.is_some() {
            let _ = writeln!(out, "  {:<12}{}", "unsent", self.unsent);
        }
        let _ = writeln!(
            out,
            "\n  {:<18}{:>9}{:>9}{:>9}{:>9}{:>9}{:>9}{:>9}",
            "latency (µs)", "p50", "p90", "p99", "p99.9", "p99.99", "max", "mean"
        );
        let first = if self.service_time_us.is_some() { "corrected" } else { "service time" };
        let _ = writeln!(out, "{}", latency_row(first, &self.latency_us));
        if let Some(service) = &self.service_time_us {
            let _ = writeln!(out, "{}", latency_row("service time", service));
        }
        out
    }
}

pub(crate) fn errors_line(e: &Errors) -> String {
    if e.total() == 0 {
        return "none".to_string();
    }
    let kinds =
        [("connect", e.connect), ("closed", e.closed), ("read", e.read), ("write", e.write), ("parse", e.parse)];
    kinds.iter().filter(|(_, n)| *n > 0).map(|(k, n)| format!("{k}: {n}")).collect::<Vec<_>>().join(", ")
}

fn latency_row(name: &str, p: &Percentiles) -> String {
    format!(
        "  {name:<18}{:>9.1}{:>9.1}{:>9.1}{:>9.1}{:>9.1}{:>9.1}{:>9.1}",
        p.p50, p.p90, p.p99, p.p99_9, p.p99_99, p.max, p.mean
    )
}

/// `1234567.8` → `1,234,568`.
pub(crate) fn group(x: f64) -> String {
    let digits = format!("{:.0}", x.max(0.0));
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::Target;
    use std::time::Duration;

    fn summary(rate: Option<f64>) -> Summary {
        let mut config = RunConfig::new(Target::parse("http://127.0.0.1:8080/healthz").unwrap());
        config.rate_per_s = rate;
        config.duration = Duration::from_secs(2);
        let mut rec = Recorder::new();
        rec.record(200, Duration::from_micros(120), Duration::from_micros(80));
        rec.record(503, Duration::from_micros(300), Duration::from_micros(90));
        rec.errors.closed = 1;
        Summary::new(&config, 2, &rec)
    }

    #[test]
    fn json_shape() {
        let json: serde_json::Value = serde_json::from_str(&summary(Some(1000.0)).to_json()).unwrap();
        assert_eq!(json["mode"], "open");
        assert_eq!(json["requests"], 2);
        assert_eq!(json["requests_per_s"], 1.0);
        assert_eq!(json["status"]["200"], 1);
        assert_eq!(json["status"]["503"], 1);
        assert_eq!(json["non_2xx"], 1);
        assert_eq!(json["errors"]["closed"], 1);
        assert_eq!(json["params"]["url"], "http://127.0.0.1:8080/healthz");
        assert_eq!(json["params"]["rate_per_s"], 1000.0);
        assert_eq!(json["params"]["threads"], 2);
        for key in ["p50", "p90", "p99", "p99_9", "p99_99", "max", "mean"] {
            assert!(json["latency_us"][key].is_number(), "latency_us.{key}");
            assert!(json["service_time_us"][key].is_number(), "service_time_us.{key}");
        }
        assert!((json["latency_us"]["max"].as_f64().unwrap() - 300.0).abs() < 1.0);
        assert!(json.get("argv").is_none(), "argv only when run from the command line");
    }

    #[test]
    fn closed_loop_has_no_separate_service_time() {
        let s = summary(None);
        let json: serde_json::Value = serde_json::from_str(&s.to_json()).unwrap();
        assert_eq!(json["mode"], "closed");
        assert!(json.get("service_time_us").is_none());
        assert!(json["params"]["rate_per_s"].is_null());
        assert!(s.table().contains("service time"));
        assert!(!s.table().contains("corrected"));
    }

    #[test]
    fn table_shows_the_figures() {
        let t = summary(Some(1000.0)).table();
        for needle in ["open loop at 1,000 req/s", "requests", "closed: 1", "200: 1, 503: 1", "corrected", "p99.99"] {
            assert!(t.contains(needle), "{needle:?} in\n{t}");
        }
    }

    #[test]
    fn failure_rules() {
        let mut s = summary(None);
        assert!(!s.failed());
        s.errors.connect = 1;
        assert!(s.failed());
        s.errors.connect = 0;
        s.requests = 0;
        assert!(s.failed());
    }

    #[test]
    fn groups_thousands() {
        assert_eq!(group(0.0), "0");
        assert_eq!(group(999.0), "999");
        assert_eq!(group(1000.0), "1,000");
        assert_eq!(group(1234567.8), "1,234,568");
    }
}
