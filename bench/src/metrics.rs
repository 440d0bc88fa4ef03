//! The server's `/metrics` (Prometheus text format) read before and after a
//! run, to count what the server did meanwhile — the group-commit batches
//! behind the orders, in particular.
//!
//! The bench knows no series by heart: it keeps those whose names match a few
//! words and picks the fsync (or batch) counter by name, saying which one it
//! used. When the server exposes none, the figure is absent, never guessed.

use crate::client::{Client, ClientError};
use std::collections::BTreeMap;

/// Series values by their full name, labels included (`name{a="b"}`).
pub type Samples = BTreeMap<String, f64>;

/// Words that select the series a buy report keeps.
pub const COMMIT_WORDS: &[&str] = &["batch", "fsync", "commit", "orders"];

/// `GET /metrics`, keeping the series whose name contains one of `words`.
pub fn scrape(client: &mut Client, words: &[&str]) -> Result<Samples, ClientError> {
    let reply = client.request("GET", "/metrics", None, None)?;
    if reply.status != 200 {
        return Err(ClientError::Malformed("/metrics did not answer 200"));
    }
    Ok(parse(&reply.text(), words))
}

/// Parses the text exposition format: `name{labels} value [timestamp]` lines,
/// `#` lines and blanks skipped.
pub fn parse(text: &str, words: &[&str]) -> Samples {
    let mut out = Samples::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // Label values may hold spaces: the series ends at the closing brace.
        let series_end = match line.find('{') {
            Some(_) => line.rfind('}').map(|i| i + 1),
            None => line.find(' '),
        };
        let Some(end) = series_end else { continue };
        let (series, rest) = line.split_at(end);
        let name = series.split('{').next().unwrap_or(series);
        if !words.iter().any(|w| name.contains(w)) {
            continue;
        }
        if let Some(value) = rest.split_whitespace().next().and_then(|v| v.parse::<f64>().ok()) {
            out.insert(series.to_string(), value);
        }
    }
    out
}

/// `after - before` for every series in `after` (a series new in `after` counts from 0).
pub fn delta(before: &Samples, after: &Samples) -> Samples {
    after.iter().map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0))).collect()
}

/// The series that counts durable commits, by preference: an fsync counter,
/// else the count of a batch histogram, else a batch counter (not of failures,
/// not a peak or a size gauge). Every group-commit batch is one transaction
/// and one fsync of the store's log (contract §5), which is why the batch
/// count stands for the fsync count when there is no fsync counter.
pub fn commit_series(samples: &Samples) -> Option<&str> {
    let name = |s: &str| s.split('{').next().unwrap_or(s).to_string();
    let unlabelled = |s: &&String| !s.contains('{');
    let keys: Vec<&String> = samples.keys().filter(unlabelled).collect();
    let pick = |accept: &dyn Fn(&str) -> bool| keys.iter().find(|k| accept(&name(k))).map(|k| k.as_str());
    pick(&|n| n.contains("fsync") && (n.ends_with("_total") || n.ends_with("_count")))
        .or_else(|| pick(&|n| n.contains("batch") && n.ends_with("_count") && !n.contains("fail")))
        .or_else(|| pick(&|n| n.contains("batch") && n.ends_with("_total") && !n.contains("fail")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# HELP seckill_order_batches_total Batches committed.
# TYPE seckill_order_batches_total counter
seckill_order_batches_total 12
seckill_order_batches_failed_total 0
seckill_orders_total{status=\"pending payment\"} 4000 1700000000000
seckill_order_batch_orders_peak 800
seckill_requests_total{route=\"/healthz\",status=\"200\"} 99
broken_line_without_value
";

    #[test]
    fn keeps_the_matching_series() {
        let s = parse(TEXT, COMMIT_WORDS);
        assert_eq!(s.get("seckill_order_batches_total"), Some(&12.0));
        assert_eq!(s.get("seckill_orders_total{status=\"pending payment\"}"), Some(&4000.0));
        assert!(!s.keys().any(|k| k.starts_with("seckill_requests_total")));
        assert_eq!(s.len(), 4);
    }

    #[test]
    fn picks_the_commit_counter() {
        let s = parse(TEXT, COMMIT_WORDS);
        assert_eq!(commit_series(&s), Some("seckill_order_batches_total"));
        let with_hist = parse(&format!("{TEXT}seckill_group_commit_batch_seconds_count 11\n"), COMMIT_WORDS);
        assert_eq!(commit_series(&with_hist), Some("seckill_group_commit_batch_seconds_count"));
        let with_fsync = parse(&format!("{TEXT}seckill_store_fsyncs_total 30\n"), COMMIT_WORDS);
        assert_eq!(commit_series(&with_fsync), Some("seckill_store_fsyncs_total"));
        assert_eq!(commit_series(&parse("seckill_orders_total 5\n", COMMIT_WORDS)), None);
    }

    #[test]
    fn deltas() {
        let before = parse("a_batch 1\nb_batch 5\n", &["batch"]);
        let after = parse("a_batch 4\nb_batch 5\nc_batch 2\n", &["batch"]);
        let d = delta(&before, &after);
        assert_eq!((d["a_batch"], d["b_batch"], d["c_batch"]), (3.0, 0.0, 2.0));
    }
}
