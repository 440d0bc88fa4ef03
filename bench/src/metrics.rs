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

/// The count of durable commits in `samples`, and the series it was read
/// from. By preference: an fsync counter, else a batch counter, else the
/// count of a batch histogram. Label sets of one name are summed, except
/// those about failures; a peak or a size gauge never matches. Every
/// group-commit batch is one transaction and one fsync of the store's log
/// (contract §5), which is why the batch count stands for the fsync count
/// when there is no fsync counter.
pub fn commit_count(samples: &Samples) -> Option<(String, f64)> {
    let name_of = |s: &str| s.split('{').next().unwrap_or(s).to_string();
    let rules: [&dyn Fn(&str) -> bool; 3] = [
        &|n| n.contains("fsync") && (n.ends_with("_total") || n.ends_with("_count")),
        &|n| n.contains("batch") && n.ends_with("_total"),
        &|n| n.contains("batch") && n.ends_with("_count"),
    ];
    let usable = |k: &&String| !k.contains("fail");
    for rule in rules {
        let Some(name) = samples.keys().filter(usable).map(|k| name_of(k)).find(|n| rule(n)) else { continue };
        let series: Vec<(&String, &f64)> = samples.iter().filter(|(k, _)| usable(k) && name_of(k) == name).collect();
        let total = series.iter().map(|(_, v)| **v).sum();
        let label = if series.len() > 1 { format!("{name} (sum of {} series)", series.len()) } else { name };
        return Some((label, total));
    }
    None
}

/// The mean of a latency histogram in milliseconds over `samples` (deltas):
/// the first `*commit*_seconds` histogram's `_sum / _count`, if it counted any.
pub fn commit_latency_ms_mean(samples: &Samples) -> Option<f64> {
    let (sum_key, sum) = samples.iter().find(|(k, _)| k.contains("commit") && k.ends_with("_seconds_sum"))?;
    let count = samples.get(&format!("{}_count", sum_key.trim_end_matches("_sum")))?;
    (*count > 0.0).then(|| sum / count * 1e3)
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
        let pick = |text: &str| commit_count(&parse(text, COMMIT_WORDS));
        assert_eq!(pick(TEXT), Some(("seckill_order_batches_total".to_string(), 12.0)));
        let hist_only = "seckill_writer_batch_orders_count 11\nseckill_writer_batch_orders_sum 700\n";
        assert_eq!(pick(hist_only), Some(("seckill_writer_batch_orders_count".to_string(), 11.0)));
        let with_fsync = format!("{TEXT}seckill_store_fsyncs_total 30\n");
        assert_eq!(pick(&with_fsync), Some(("seckill_store_fsyncs_total".to_string(), 30.0)));
        let labelled =
            "b_batches_total{result=\"ok\"} 5\nb_batches_total{result=\"failed\"} 9\nb_batches_total{x=\"y\"} 2\n";
        assert_eq!(pick(labelled), Some(("b_batches_total (sum of 2 series)".to_string(), 7.0)));
        assert_eq!(pick("seckill_orders_total 5\nseckill_order_batches_failed_total 3\n"), None);
    }

    #[test]
    fn commit_latency() {
        let s = parse("seckill_writer_commit_seconds_sum 0.5\nseckill_writer_commit_seconds_count 100\n", COMMIT_WORDS);
        assert_eq!(commit_latency_ms_mean(&s), Some(5.0));
        let none = parse("seckill_writer_commit_seconds_sum 0\nseckill_writer_commit_seconds_count 0\n", COMMIT_WORDS);
        assert_eq!(commit_latency_ms_mean(&none), None);
    }

    #[test]
    fn deltas() {
        let before = parse("a_batch 1\nb_batch 5\n", &["batch"]);
        let after = parse("a_batch 4\nb_batch 5\nc_batch 2\n", &["batch"]);
        let d = delta(&before, &after);
        assert_eq!((d["a_batch"], d["b_batch"], d["c_batch"]), (3.0, 0.0, 2.0));
    }
}
