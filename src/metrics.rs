//! Request metrics and the Prometheus text exposition of `/metrics`.
//!
//! Each event loop writes only its own [`LoopMetrics`] shard (relaxed
//! atomics, no contention, cache-line aligned so loops do not false-share);
//! a scrape sums the shards. Recording allocates nothing.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use seckill_protocol::Status;
use seckill_reactor::LoopStats;

use crate::router::Route;

/// Status codes with their own counter; anything else counts as `other`.
const STATUSES: [u16; 22] =
    [200, 201, 202, 204, 304, 400, 401, 403, 404, 405, 408, 409, 410, 413, 414, 415, 429, 431, 500, 501, 503, 505];
const STATUS_SLOTS: usize = STATUSES.len() + 1;

/// Requests that matched no route (404, 405) are counted under this label.
const UNMATCHED: usize = Route::COUNT;
const ROUTE_SLOTS: usize = Route::COUNT + 1;

/// Upper bounds of the latency histogram buckets, in microseconds.
const LATENCY_BOUNDS_US: [u64; 16] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    5_000_000,
];

/// A fixed-bucket latency histogram (the last bucket is +Inf).
#[derive(Debug, Default)]
struct Histogram {
    buckets: [AtomicU64; LATENCY_BOUNDS_US.len() + 1],
    sum_us: AtomicU64,
}

impl Histogram {
    fn record(&self, elapsed: Duration) {
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let slot = LATENCY_BOUNDS_US.iter().position(|&bound| us <= bound).unwrap_or(LATENCY_BOUNDS_US.len());
        self.buckets[slot].fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
    }
}

/// One loop's counters.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct LoopMetrics {
    requests: [[AtomicU64; STATUS_SLOTS]; ROUTE_SLOTS],
    latency: [Histogram; ROUTE_SLOTS],
}

impl LoopMetrics {
    /// Counts one answered request. `route` is `None` for a request that matched no route.
    pub fn record(&self, route: Option<Route>, status: Status, elapsed: Duration) {
        let route_slot = route.map_or(UNMATCHED, Route::index);
        let status_slot = STATUSES.iter().position(|&s| s == status.0).unwrap_or(STATUSES.len());
        self.requests[route_slot][status_slot].fetch_add(1, Relaxed);
        self.latency[route_slot].record(elapsed);
    }
}

/// All loops' request metrics.
#[derive(Debug)]
pub struct Metrics {
    loops: Box<[LoopMetrics]>,
}

fn route_label(slot: usize) -> &'static str {
    Route::ALL.get(slot).map_or("unmatched", |r| r.label())
}

impl Metrics {
    pub fn new(loops: usize) -> Self {
        Metrics { loops: (0..loops).map(|_| LoopMetrics::default()).collect() }
    }

    /// The shard of loop `loop_id`.
    pub fn shard(&self, loop_id: usize) -> &LoopMetrics {
        &self.loops[loop_id]
    }

    fn sum(&self, read: impl Fn(&LoopMetrics) -> &AtomicU64) -> u64 {
        self.loops.iter().map(|l| read(l).load(Relaxed)).sum()
    }

    /// Appends the request counters, latency histograms and reactor counters
    /// in Prometheus text format 0.0.4.
    pub fn render(&self, out: &mut Vec<u8>, loops: &[LoopStats]) {
        let mut w = Exposition { out };
        w.help("seckill_requests_total", "counter", "Requests answered, by route and status.");
        for route in 0..ROUTE_SLOTS {
            for (slot, code) in STATUSES.iter().map(|c| c.to_string()).chain(["other".to_string()]).enumerate() {
                let n = self.sum(|l| &l.requests[route][slot]);
                if n > 0 {
                    w.sample("seckill_requests_total", &[("route", route_label(route)), ("status", &code)], n as f64);
                }
            }
        }
        w.help("seckill_request_duration_seconds", "histogram", "Time from reading a request to writing its answer.");
        for route in 0..ROUTE_SLOTS {
            let mut cumulative = 0;
            for (slot, bound) in
                LATENCY_BOUNDS_US.iter().map(|b| format!("{}", *b as f64 / 1e6)).chain(["+Inf".to_string()]).enumerate()
            {
                cumulative += self.sum(|l| &l.latency[route].buckets[slot]);
                w.sample(
                    "seckill_request_duration_seconds_bucket",
                    &[("route", route_label(route)), ("le", &bound)],
                    cumulative as f64,
                );
            }
            let sum = self.sum(|l| &l.latency[route].sum_us) as f64 / 1e6;
            w.sample("seckill_request_duration_seconds_sum", &[("route", route_label(route))], sum);
            w.sample("seckill_request_duration_seconds_count", &[("route", route_label(route))], cumulative as f64);
        }
        render_loops(&mut w, loops);
    }
}

/// Everything `/metrics` shows: requests, the reactor's loops, and the sale.
pub fn render_all(app: &crate::app::App, out: &mut Vec<u8>) {
    app.metrics().render(out, app.loop_stats());
    let mut w = Exposition { out };
    render_sale(&mut w, app);
    render_buy(&mut w, app);
}

/// The buy: stock, orders, the writer's queue, batches and commit latency.
fn render_buy(w: &mut Exposition<'_>, app: &crate::app::App) {
    let sale = &app.sale;
    w.help("seckill_stock_left", "gauge", "Units on sale on this instance, per item.");
    for item in app.catalogue.all() {
        let id = item.spec.id.to_string();
        w.sample("seckill_stock_left", &[("item", &id)], sale.left(item.spec.id) as f64);
    }
    let c = &sale.counters;
    w.help("seckill_buy_answers_total", "counter", "Buy requests by how the instance answered them.");
    let answers = [
        ("admitted", &c.admitted),
        ("replayed", &c.replayed),
        ("limit_reached", &c.refused_limit),
        ("sold_out", &c.refused_sold_out),
        ("busy", &c.refused_busy),
        ("overloaded", &c.refused_overloaded),
    ];
    for (outcome, counter) in answers {
        w.sample("seckill_buy_answers_total", &[("outcome", outcome)], counter.load(Relaxed) as f64);
    }
    w.help(
        "seckill_orders_total",
        "counter",
        "Orders by event: placed (durable), refused by the store, cancelled, expired.",
    );
    let events =
        [("placed", &c.placed), ("refused", &c.writer_refused), ("cancelled", &c.cancelled), ("expired", &c.expired)];
    for (event, counter) in events {
        w.sample("seckill_orders_total", &[("event", event)], counter.load(Relaxed) as f64);
    }
    w.help("seckill_order_units", "gauge", "Units per item by order status, as the store counted them (every 5 s).");
    for stats in sale.store_stats.lock().iter() {
        let id = stats.item_id.to_string();
        let by_status = [
            ("pending_payment", stats.pending_payment),
            ("paid", stats.paid),
            ("cancelled", stats.cancelled),
            ("expired", stats.expired),
        ];
        for (status, units) in by_status {
            w.sample("seckill_order_units", &[("item", &id), ("status", status)], units as f64);
        }
    }
    w.help("seckill_orders_pending", "gauge", "Orders admitted and not yet paid, cancelled, expired or refused.");
    w.sample("seckill_orders_pending", &[], sale.pending() as f64);
    w.help("seckill_order_queue_depth", "gauge", "Orders waiting for the group-commit writer.");
    w.sample("seckill_order_queue_depth", &[], sale.queue_depth() as f64);
    w.help(
        "seckill_order_queue_admit_max",
        "gauge",
        "Queued orders beyond which a buy is refused 503: the writer's rate times sale.order_queue_wait_max_ms.",
    );
    w.sample("seckill_order_queue_admit_max", &[], sale.admission.queued_max() as f64);
    w.help("seckill_request_ids", "gauge", "Request ids remembered in memory.");
    w.sample("seckill_request_ids", &[], sale.requests.len() as f64);
    let stats = &sale.writer_stats;
    w.help("seckill_writer_batches_total", "counter", "Group-commit transactions (one fsync each).");
    w.sample("seckill_writer_batches_total", &[], stats.batches.load(Relaxed) as f64);
    w.help("seckill_writer_orders_total", "counter", "Orders written by the group-commit writer.");
    w.sample("seckill_writer_orders_total", &[], stats.orders.load(Relaxed) as f64);
    w.help(
        "seckill_writer_failed_batches_total",
        "counter",
        "Group-commit transactions that failed (nothing written).",
    );
    w.sample("seckill_writer_failed_batches_total", &[], stats.failed_batches.load(Relaxed) as f64);
    histogram(w, "seckill_writer_batch_orders", "Orders per group-commit batch.", &sale.batch_sizes, 1.0);
    histogram(w, "seckill_writer_commit_seconds", "Group-commit transaction latency.", &sale.commit_latency_us, 1e-6);
}

fn histogram<const N: usize>(w: &mut Exposition<'_>, name: &str, help: &str, h: &crate::sale::Buckets<N>, scale: f64) {
    w.help(name, "histogram", help);
    let (buckets, sum) = h.cumulative();
    let mut count = 0;
    for (bound, cumulative) in buckets {
        let le = bound.map_or_else(|| "+Inf".to_string(), |b| (b as f64 * scale).to_string());
        w.sample(&format!("{name}_bucket"), &[("le", &le)], cumulative as f64);
        count = cumulative;
    }
    w.sample(&format!("{name}_sum"), &[], sum as f64 * scale);
    w.sample(&format!("{name}_count"), &[], count as f64);
}

fn render_sale(w: &mut Exposition<'_>, app: &crate::app::App) {
    let c = &app.counters;
    let counters: [(&str, &str, &AtomicU64); 12] = [
        ("seckill_registrations_total", "Users registered one by one.", &c.registrations),
        ("seckill_logins_total{result=\"ok\"}", "Logins.", &c.logins_ok),
        ("seckill_logins_total{result=\"bad_credentials\"}", "", &c.logins_failed),
        ("seckill_logouts_total", "Logouts.", &c.logouts),
        ("seckill_captchas_issued_total", "Captchas drawn.", &c.captchas_issued),
        ("seckill_captcha_answers_total{result=\"right\"}", "Captcha answers.", &c.captchas_right),
        ("seckill_captcha_answers_total{result=\"wrong\"}", "", &c.captchas_wrong),
        ("seckill_captcha_answers_total{result=\"expired\"}", "", &c.captchas_expired),
        ("seckill_paths_issued_total", "Hidden sale paths minted.", &c.paths_issued),
        ("seckill_rate_limited_total{limit=\"user\"}", "Requests refused by a rate limit.", &c.limited_user),
        ("seckill_rate_limited_total{limit=\"ip\"}", "", &c.limited_ip),
        ("seckill_worker_pool_full_total", "Requests refused because the worker pool was full.", &c.workers_full),
    ];
    for (series, help, counter) in counters {
        let name = series.split('{').next().unwrap_or(series);
        if !help.is_empty() {
            w.help(name, "counter", help);
        }
        w.raw_sample(series, counter.load(Relaxed) as f64);
    }
    let (sessions, captchas) = app.cache.sizes();
    w.help("seckill_sessions", "gauge", "Live sessions in the cache (on Redis: those this instance remembers).");
    w.sample("seckill_sessions", &[], sessions as f64);
    w.help("seckill_captchas_outstanding", "gauge", "Captchas waiting for an answer.");
    w.sample("seckill_captchas_outstanding", &[], captchas as f64);
    w.help(
        "seckill_cache_in_flight_marks_lost_total",
        "counter",
        "Async orders whose in-flight mark the shared cache could not take (/result elsewhere read none until the commit).",
    );
    w.sample("seckill_cache_in_flight_marks_lost_total", &[], app.cache.in_flight_marks_lost() as f64);
    w.help("seckill_worker_jobs", "gauge", "Jobs reserved, queued or running, by worker pool.");
    w.sample("seckill_worker_jobs", &[("pool", "hash")], app.hash_pool.in_flight() as f64);
    w.sample("seckill_worker_jobs", &[("pool", "general")], app.workers.in_flight() as f64);
    let limits = [("user", &app.user_limits), ("ip", &app.ip_limits)];
    w.help("seckill_rate_limit_evictions_total", "counter", "Idle (full) buckets whose slot another key took.");
    for (limit, buckets) in &limits {
        w.sample("seckill_rate_limit_evictions_total", &[("limit", limit)], buckets.metrics().evictions as f64);
    }
    w.help("seckill_rate_limit_refusals_total", "counter", "Rate-limit refusals by reason.");
    for (limit, buckets) in &limits {
        let m = buckets.metrics();
        let reasons =
            [("empty", m.refused_empty), ("table_full", m.refused_table_full), ("contended", m.refused_contended)];
        for (reason, n) in reasons {
            w.sample("seckill_rate_limit_refusals_total", &[("limit", limit), ("reason", reason)], n as f64);
        }
    }
}

/// The reactor's per-loop counters, one series per loop.
fn render_loops(w: &mut Exposition<'_>, loops: &[LoopStats]) {
    let open: u64 = loops.iter().map(|l| l.open_connections.load(Relaxed)).sum();
    w.help("seckill_open_connections", "gauge", "Open client connections, all loops.");
    w.sample("seckill_open_connections", &[], open as f64);
    type Read = fn(&LoopStats) -> &AtomicU64;
    let series: [(&str, &str, &str, Read); 14] = [
        ("seckill_loop_accepted_total", "counter", "Connections accepted.", |l| &l.accepted),
        ("seckill_loop_closed_total", "counter", "Connections closed.", |l| &l.closed),
        ("seckill_loop_open_connections", "gauge", "Open connections.", |l| &l.open_connections),
        ("seckill_loop_requests_total", "counter", "Requests parsed.", |l| &l.requests),
        ("seckill_loop_protocol_errors_total", "counter", "Requests refused by the HTTP parser.", |l| {
            &l.protocol_errors
        }),
        ("seckill_loop_head_timeouts_total", "counter", "Connections closed with 408 at the head timeout.", |l| {
            &l.head_timeouts
        }),
        ("seckill_loop_idle_timeouts_total", "counter", "Idle keep-alive connections closed.", |l| &l.idle_timeouts),
        ("seckill_loop_parked", "gauge", "Requests waiting for an answer from another thread.", |l| &l.parked),
        ("seckill_loop_completions_total", "counter", "Parked requests answered from another thread.", |l| {
            &l.completions
        }),
        ("seckill_loop_park_expired_total", "counter", "Parked requests answered at their deadline.", |l| {
            &l.park_expired
        }),
        ("seckill_loop_wakeups_total", "counter", "Wake-ups of the loop by other threads.", |l| &l.wakeups),
        ("seckill_loop_polls_total", "counter", "Returns from poll.", |l| &l.polls),
        ("seckill_loop_read_bytes_total", "counter", "Bytes read from clients.", |l| &l.bytes_read),
        ("seckill_loop_written_bytes_total", "counter", "Bytes written to clients.", |l| &l.bytes_written),
    ];
    for (name, kind, help, read) in series {
        w.help(name, kind, help);
        for (i, stats) in loops.iter().enumerate() {
            w.sample(name, &[("loop", &i.to_string())], read(stats).load(Relaxed) as f64);
        }
    }
}

/// A writer of the Prometheus text format. Label values here come from our
/// own tables, never from clients, so they need no escaping.
#[derive(Debug)]
pub struct Exposition<'o> {
    pub out: &'o mut Vec<u8>,
}

impl Exposition<'_> {
    pub fn help(&mut self, name: &str, kind: &str, help: &str) {
        use std::io::Write;
        // Writing to a Vec cannot fail.
        let _ = write!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
    }

    /// A sample whose series (name and labels) is already written out.
    pub fn raw_sample(&mut self, series: &str, value: f64) {
        use std::io::Write;
        let _ = writeln!(self.out, "{series} {value}");
    }

    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        use std::io::Write;
        self.out.extend_from_slice(name.as_bytes());
        if !labels.is_empty() {
            self.out.push(b'{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(b',');
                }
                let _ = write!(self.out, "{k}=\"{v}\"");
            }
            self.out.push(b'}');
        }
        let _ = writeln!(self.out, " {value}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(m: &Metrics) -> String {
        let mut out = Vec::new();
        m.render(&mut out, &[LoopStats::default(), LoopStats::default()]);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn counts_sum_across_loops() {
        let m = Metrics::new(2);
        m.shard(0).record(Some(Route::Healthz), Status::OK, Duration::from_micros(30));
        m.shard(1).record(Some(Route::Healthz), Status::OK, Duration::from_micros(300));
        m.shard(1).record(None, Status::NOT_FOUND, Duration::from_micros(3));
        m.shard(1).record(None, Status(418), Duration::from_micros(3));
        let text = rendered(&m);
        assert!(text.contains("seckill_requests_total{route=\"/healthz\",status=\"200\"} 2\n"), "{text}");
        assert!(text.contains("seckill_requests_total{route=\"unmatched\",status=\"404\"} 1\n"));
        assert!(text.contains("seckill_requests_total{route=\"unmatched\",status=\"other\"} 1\n"));
        assert!(
            text.contains("seckill_request_duration_seconds_bucket{route=\"/healthz\",le=\"0.00005\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("seckill_request_duration_seconds_bucket{route=\"/healthz\",le=\"0.0005\"} 2\n"));
        assert!(text.contains("seckill_request_duration_seconds_count{route=\"/healthz\"} 2\n"));
        assert!(text.contains("seckill_loop_requests_total{loop=\"1\"} 0\n"));
    }

    #[test]
    fn every_sample_line_is_well_formed() {
        let m = Metrics::new(1);
        m.shard(0).record(Some(Route::Metrics), Status::OK, Duration::from_secs(9));
        for line in rendered(&m).lines() {
            if line.starts_with('#') {
                assert!(line.starts_with("# HELP seckill_") || line.starts_with("# TYPE seckill_"), "{line}");
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("a sample has a value");
            assert!(series.starts_with("seckill_"), "{line}");
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
}
