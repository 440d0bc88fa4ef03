//! `seckill-bench buy`: sets a sale up (item, users with sessions, sale
//! paths), optionally puts it in the state to measure (sold out, limit
//! reached) with one buy per user, then loads `POST /api/seckill/{path}` with
//! every connection cycling over the users — alone, or alternating with runs
//! of `GET /healthz` of the same shape, to compare the two on the same
//! machine at the same moment (issue 5's targets are ratios to /healthz).
//!
//! Around the runs it reads the item's stats and the server's `/metrics`, to
//! put the orders that were written next to the commits (fsyncs) behind them.

use crate::client::Client;
use crate::metrics::{self, Samples};
use crate::report::{Summary, group};
use crate::run::{BenchError, RunConfig, run, run_with};
use crate::setup::{self, Admin, Buyer, ItemSpec, ItemStats, SetupError};
use crate::target::Target;
use crate::workload::{FixedRequest, StatusTally, UserCycle};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::sync::Arc;
use std::time::Instant;

/// The password of the users the bench creates (the contract's client-side
/// hash is an opaque 8–128 character secret to the server).
const PASSWORD: &str = "seckill-bench-password";

/// Everything `seckill-bench buy` needs.
#[derive(Debug, Clone)]
pub struct BuyConfig {
    /// The load: connections, threads, duration, warm-up, pipeline, rate.
    /// Its target's host and port are the server's; the path is ignored.
    pub run: RunConfig,
    pub admin_token: String,
    pub item_id: u64,
    pub stock: u64,
    pub per_user_limit: u32,
    pub users: usize,
    /// Users are `{prefix}{chunk}_{i}`; `None` picks a fresh prefix.
    pub user_prefix: Option<String>,
    /// `quantity` in each buy; `None` leaves it out (the server's default, 1).
    pub quantity: Option<u32>,
    /// How many users (the first ones) buy once before the measured runs.
    pub prebuy: usize,
    /// Parallel keep-alive connections for the setup and the pre-buys.
    pub setup_connections: usize,
    /// Pairs of (buy run, `/healthz` run); 0 runs the buy alone, once.
    pub alternate_healthz: usize,
}

impl BuyConfig {
    pub fn new(target: Target, admin_token: String) -> BuyConfig {
        let mut run = RunConfig::new(target);
        run.warmup = std::time::Duration::from_secs(1);
        BuyConfig {
            run,
            admin_token,
            item_id: 1,
            stock: 10_000_000,
            per_user_limit: 1_000_000,
            users: 10_000,
            user_prefix: None,
            quantity: None,
            prebuy: 0,
            setup_connections: 16,
            alternate_healthz: 0,
        }
    }

    pub fn validate(&self) -> Result<(), BenchError> {
        let bad = |what: &str| Err(BenchError::Config(what.to_string()));
        if self.users == 0 || self.users > 10_000_000 {
            return bad("users must be in 1..=10000000");
        }
        if !(1..=setup::SETUP_CONNECTIONS_MAX).contains(&self.setup_connections) {
            return bad("setup connections must be in 1..=256");
        }
        if self.per_user_limit == 0 {
            return bad("per-user limit must be at least 1");
        }
        if self.quantity == Some(0) {
            return bad("quantity must be at least 1");
        }
        if self.alternate_healthz > 100 {
            return bad("alternate-healthz must be at most 100 pairs");
        }
        if self.admin_token.is_empty() {
            return bad("an admin token is needed (--admin-token or --admin-token-file)");
        }
        self.run.validate()
    }
}

/// Why the command could not produce a report.
#[derive(Debug)]
pub enum BuyError {
    Setup(SetupError),
    Run(BenchError),
}

impl fmt::Display for BuyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuyError::Setup(e) => write!(f, "setup: {e}"),
            BuyError::Run(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for BuyError {}

impl From<SetupError> for BuyError {
    fn from(e: SetupError) -> Self {
        BuyError::Setup(e)
    }
}

impl From<BenchError> for BuyError {
    fn from(e: BenchError) -> Self {
        BuyError::Run(e)
    }
}

/// One pair of an alternating run.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Pair {
    pub buy_requests_per_s: f64,
    pub healthz_requests_per_s: f64,
    /// buy / healthz requests per second.
    pub ratio: f64,
    pub buy_p99_us: f64,
    pub healthz_p99_us: f64,
}

/// Orders written during the runs (warm-ups included) and the commits behind them.
#[derive(Debug, Clone, Serialize)]
pub struct Commits {
    /// Orders the store gained (from the item's stats: units / quantity).
    pub orders: u64,
    /// 200 answers the bench received, warm-ups included: each must be an
    /// order in the store, so `acknowledged <= orders`.
    pub acknowledged: u64,
    /// Every answer of the buy runs by status, warm-ups included.
    pub status_all: BTreeMap<String, u64>,
    /// The `/metrics` series counted as commits (see [`metrics::commit_count`]).
    pub series: Option<String>,
    pub commits: Option<f64>,
    pub commits_per_1000_orders: Option<f64>,
    /// Mean group-commit latency over the runs (from a `*commit*_seconds`
    /// histogram in `/metrics`). With `c` closed-loop connections a batch
    /// holds at most `c` orders, so the buy rate is bounded by `c` over it.
    pub commit_latency_ms_mean: Option<f64>,
    /// Change of every `/metrics` series about batches, commits and orders.
    pub metrics_delta: Samples,
    pub stats_before: ItemStats,
    pub stats_after: ItemStats,
    /// Unix milliseconds just before the first read of the stats and
    /// `/metrics` and just after the last: the window these figures cover,
    /// so that outside counts (an strace of the server) can be matched.
    pub window_start_ms: u64,
    pub window_end_ms: u64,
}

/// Everything `seckill-bench buy` measured; its `--json` document.
#[derive(Debug, Clone, Serialize)]
pub struct BuyReport {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub argv: Vec<String>,
    pub target: String,
    pub item_id: u64,
    pub stock: u64,
    pub per_user_limit: u32,
    pub quantity: Option<u32>,
    pub users: usize,
    pub setup_s: f64,
    /// Answers to the pre-buys by status (empty without pre-buys).
    pub prebuy: BTreeMap<String, u64>,
    pub buy: Vec<Summary>,
    pub healthz: Vec<Summary>,
    pub pairs: Vec<Pair>,
    pub ratio_median: Option<f64>,
    pub buy_p99_median_us: Option<f64>,
    pub healthz_p99_median_us: Option<f64>,
    pub commits: Commits,
}

/// A sale ready to be loaded.
#[derive(Debug, Clone)]
pub struct Sale {
    pub item: ItemSpec,
    pub buyers: Vec<Buyer>,
    pub setup_s: f64,
}

/// Puts the item on sale and prepares `users` buyers with sessions and paths.
pub fn prepare(config: &BuyConfig, admin: &mut Admin) -> Result<Sale, SetupError> {
    let started = Instant::now();
    let item = ItemSpec::open_now(config.item_id, config.stock, config.per_user_limit);
    admin.put_item(&item)?;
    let prefix = config.user_prefix.clone().unwrap_or_else(setup::fresh_prefix);
    let users = admin.bulk_users(&prefix, config.users, PASSWORD)?;
    let target = &config.run.target;
    let buyers = setup::open_paths(target, &config.admin_token, item.id, &users, config.setup_connections)?;
    Ok(Sale { item, buyers, setup_s: started.elapsed().as_secs_f64() })
}

/// The buy requests, one per buyer, rendered once.
pub fn buy_requests(target: &Target, item_id: u64, quantity: Option<u32>, buyers: &[Buyer]) -> Arc<[FixedRequest]> {
    let body = setup::buy_body(item_id, quantity);
    let mut target = target.clone();
    buyers
        .iter()
        .map(|b| {
            target.path = format!("/api/seckill/{}", b.path);
            let headers = [format!("Authorization: Bearer {}", b.user.token), "Content-Type: application/json".into()];
            FixedRequest::new(&target, "POST", &headers, &body)
        })
        .collect()
}

/// Sets up, pre-buys, runs and reports; progress lines go to stderr.
pub fn run_buy(config: &BuyConfig) -> Result<BuyReport, BuyError> {
    config.validate()?;
    let target = &config.run.target;
    let mut admin = Admin::new(target, &config.admin_token)?;
    let sale = prepare(config, &mut admin)?;
    eprintln!("seckill-bench buy: {} users with sessions and paths in {:.2}s", sale.buyers.len(), sale.setup_s);
    let mut prebuy = BTreeMap::new();
    if config.prebuy > 0 {
        let n = config.prebuy.min(sale.buyers.len());
        let buyers = &sale.buyers[..n];
        let counts = setup::buy_once_each(target, sale.item.id, config.quantity, buyers, config.setup_connections)?;
        prebuy = counts.into_iter().map(|(s, n)| (s.to_string(), n)).collect();
        eprintln!("seckill-bench buy: pre-buys by {n} users: {}", statuses_line(&prebuy, n as u64));
    }

    let requests = buy_requests(target, sale.item.id, config.quantity, &sale.buyers);
    let buy_config = buy_run_config(config);
    let healthz_config = healthz_run_config(&config.run);
    let tally = Arc::new(StatusTally::default());
    let mut scraper = Client::new(target).map_err(|error| SetupError::Client { what: "/metrics".into(), error })?;
    let window_start_ms = setup::now_ms();
    // /metrics is optional to the bench: without it the commit figures are absent.
    let metrics_before = metrics::scrape(&mut scraper, metrics::COMMIT_WORDS).ok();
    let stats_before = admin.stats(sale.item.id)?;

    let (mut buy, mut healthz) = (Vec::new(), Vec::new());
    for round in 0..config.alternate_healthz.max(1) {
        let threads = buy_config.effective_threads();
        let summary = run_with(&buy_config, |thread| {
            Box::new(UserCycle::new(requests.clone(), tally.clone(), thread, threads, buy_config.connections))
        })?;
        eprintln!("seckill-bench buy: round {}: buy {} req/s", round + 1, summary.requests_per_s);
        buy.push(summary);
        if config.alternate_healthz > 0 {
            let summary = run(&healthz_config)?;
            eprintln!("seckill-bench buy: round {}: /healthz {} req/s", round + 1, summary.requests_per_s);
            healthz.push(summary);
        }
    }

    let stats_after = admin.stats(sale.item.id)?;
    let metrics_after = metrics::scrape(&mut scraper, metrics::COMMIT_WORDS).ok();
    let window_ms = (window_start_ms, setup::now_ms());
    let metrics_delta = match (metrics_before, metrics_after) {
        (Some(before), Some(after)) => metrics::delta(&before, &after),
        _ => Samples::new(),
    };
    let commits = commits(config, &tally, (stats_before, stats_after), metrics_delta, window_ms);
    let pairs: Vec<Pair> = buy.iter().zip(&healthz).map(|(b, h)| pair(b, h)).collect();
    Ok(BuyReport {
        argv: Vec::new(),
        target: format!("http://{}", target.authority),
        item_id: sale.item.id,
        stock: sale.item.stock,
        per_user_limit: sale.item.per_user_limit,
        quantity: config.quantity,
        users: sale.buyers.len(),
        setup_s: round3(sale.setup_s),
        prebuy,
        ratio_median: median(pairs.iter().map(|p| p.ratio)),
        buy_p99_median_us: median(buy.iter().map(|s| s.latency_us.p99)),
        healthz_p99_median_us: median(healthz.iter().map(|s| s.latency_us.p99)),
        buy,
        healthz,
        pairs,
        commits,
    })
}

/// The load of the buy runs: `config.run` as a POST with the buyers' headers
/// (the URL and token shown in the report are placeholders; each request has its own).
fn buy_run_config(config: &BuyConfig) -> RunConfig {
    let mut run = config.run.clone();
    run.target.path = "/api/seckill/{path}".to_string();
    run.method = "POST".to_string();
    run.headers = vec!["Authorization: Bearer {session}".into(), "Content-Type: application/json".into()];
    run.body = setup::buy_body(config.item_id, config.quantity);
    run
}

/// The same load shape on `GET /healthz`.
fn healthz_run_config(run: &RunConfig) -> RunConfig {
    let mut healthz = run.clone();
    healthz.target.path = "/healthz".to_string();
    healthz.method = "GET".to_string();
    healthz.headers.clear();
    healthz.body.clear();
    healthz
}

fn commits(
    config: &BuyConfig,
    tally: &StatusTally,
    (stats_before, stats_after): (ItemStats, ItemStats),
    metrics_delta: Samples,
    (window_start_ms, window_end_ms): (u64, u64),
) -> Commits {
    let quantity = u64::from(config.quantity.unwrap_or(1));
    let orders = stats_after.ordered().saturating_sub(stats_before.ordered()) / quantity;
    let (series, commits) = metrics::commit_count(&metrics_delta).unzip();
    let per_1000 = commits.filter(|_| orders > 0).map(|c| round3(c * 1000.0 / orders as f64));
    Commits {
        orders,
        acknowledged: tally.get(200),
        status_all: tally.counts().into_iter().map(|(s, n)| (s.to_string(), n)).collect(),
        series,
        commits,
        commits_per_1000_orders: per_1000,
        commit_latency_ms_mean: metrics::commit_latency_ms_mean(&metrics_delta).map(round3),
        metrics_delta,
        stats_before,
        stats_after,
        window_start_ms,
        window_end_ms,
    }
}

fn pair(buy: &Summary, healthz: &Summary) -> Pair {
    let ratio = if healthz.requests_per_s > 0.0 { buy.requests_per_s / healthz.requests_per_s } else { 0.0 };
    Pair {
        buy_requests_per_s: buy.requests_per_s,
        healthz_requests_per_s: healthz.requests_per_s,
        ratio: round3(ratio),
        buy_p99_us: buy.latency_us.p99,
        healthz_p99_us: healthz.latency_us.p99,
    }
}

/// The median (the mean of the middle two for an even count); `None` when empty.
pub fn median(values: impl Iterator<Item = f64>) -> Option<f64> {
    let mut v: Vec<f64> = values.collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 { v[mid] } else { (v[mid - 1] + v[mid]) / 2.0 })
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// `410: 9,999 (99.99%), 409: 1 (0.01%)`, most frequent first.
pub fn statuses_line(status: &BTreeMap<String, u64>, total: u64) -> String {
    let mut by_count: Vec<(&String, &u64)> = status.iter().collect();
    by_count.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let parts: Vec<String> = by_count
        .iter()
        .map(|(s, n)| format!("{s}: {} ({:.2}%)", group(**n as f64), 100.0 * **n as f64 / total.max(1) as f64))
        .collect();
    if parts.is_empty() { "none".to_string() } else { parts.join(", ") }
}

impl BuyReport {
    /// Whether the command should exit non-zero: a run failed as a whole.
    pub fn failed(&self) -> bool {
        self.buy.iter().chain(&self.healthz).any(Summary::failed)
    }

    pub fn to_json(&self) -> String {
        // Plain data with string keys: serialisation cannot fail.
        serde_json::to_string_pretty(self).expect("report serialises")
    }

    /// The human table: each run, the pairs, the commits.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let quantity = self.quantity.map_or(String::new(), |q| format!(", quantity {q}"));
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "seckill-bench buy  {}  item {} (stock {}, per-user limit {}{quantity}), {} users set up in {:.2}s",
            self.target,
            self.item_id,
            group(self.stock as f64),
            self.per_user_limit,
            group(self.users as f64),
            self.setup_s
        );
        if !self.prebuy.is_empty() {
            let total = self.prebuy.values().sum();
            let _ = writeln!(out, "  pre-buys      {}", statuses_line(&self.prebuy, total));
        }
        if let Some(first) = self.buy.first() {
            let p = &first.params;
            let mode = p.rate_per_s.map_or("closed loop".to_string(), |r| format!("open loop at {r} req/s"));
            let _ = writeln!(
                out,
                "  {mode}, {} connections, {} threads, pipeline {}, {}s runs after {}s warm-up",
                p.connections, p.threads, p.pipeline, p.duration_s, p.warmup_s
            );
        }
        let _ =
            writeln!(out, "\n  {:<10}{:>12}{:>10}{:>10}{:>10}   status", "run", "req/s", "p50 µs", "p99 µs", "max µs");
        for (i, buy) in self.buy.iter().enumerate() {
            let _ = writeln!(out, "{}", run_row("buy", buy));
            if let Some(healthz) = self.healthz.get(i) {
                let _ = writeln!(out, "{}", run_row("/healthz", healthz));
            }
        }
        if let Some(ratio) = self.ratio_median {
            let ratios: Vec<String> = self.pairs.iter().map(|p| format!("{:.3}", p.ratio)).collect();
            let _ = writeln!(
                out,
                "\n  buy / healthz req/s: median {ratio:.3} over {} pairs ({})",
                self.pairs.len(),
                ratios.join(", ")
            );
            let _ = writeln!(
                out,
                "  p99 median: buy {:.1} µs, /healthz {:.1} µs",
                self.buy_p99_median_us.unwrap_or(0.0),
                self.healthz_p99_median_us.unwrap_or(0.0)
            );
        }
        let c = &self.commits;
        let _ = writeln!(
            out,
            "\n  orders written {} (200s received {}, warm-ups included)",
            group(c.orders as f64),
            group(c.acknowledged as f64)
        );
        if c.acknowledged > c.orders {
            let _ = writeln!(out, "  WARNING: more 200s than orders in the store: an acknowledged order is missing");
        }
        let per_1000 = match (&c.series, c.commits, c.commits_per_1000_orders) {
            (Some(series), Some(n), Some(per)) => format!("{per:.2} per 1,000 orders ({n} by {series})"),
            (Some(series), Some(n), None) => format!("n/a: no order written ({n} by {series})"),
            _ => "n/a: /metrics has no fsync or batch counter".to_string(),
        };
        let _ = writeln!(out, "  fsyncs        {per_1000}");
        if let Some(ms) = c.commit_latency_ms_mean {
            let _ = writeln!(out, "  commit        {ms:.2} ms mean per group commit");
        }
        out
    }
}

fn run_row(name: &str, s: &Summary) -> String {
    format!(
        "  {name:<10}{:>12}{:>10.1}{:>10.1}{:>10.1}   {}{}",
        group(s.requests_per_s),
        s.latency_us.p50,
        s.latency_us.p99,
        s.latency_us.max,
        statuses_line(&s.status, s.requests),
        if s.errors.total() > 0 { format!("  errors: {}", s.errors.total()) } else { String::new() }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median([].into_iter()), None);
        assert_eq!(median([3.0, 1.0, 2.0].into_iter()), Some(2.0));
        assert_eq!(median([4.0, 1.0, 2.0, 3.0].into_iter()), Some(2.5));
    }

    #[test]
    fn status_lines_most_frequent_first() {
        let status: BTreeMap<String, u64> = [("409".to_string(), 1), ("410".to_string(), 9_999)].into();
        assert_eq!(statuses_line(&status, 10_000), "410: 9,999 (99.99%), 409: 1 (0.01%)");
        assert_eq!(statuses_line(&BTreeMap::new(), 0), "none");
    }

    #[test]
    fn validation() {
        let mut c = BuyConfig::new(Target::parse("http://127.0.0.1:1/").unwrap(), "t".into());
        assert!(c.validate().is_ok());
        c.users = 0;
        assert!(c.validate().unwrap_err().to_string().contains("users"));
        c.users = 1;
        c.admin_token.clear();
        assert!(c.validate().unwrap_err().to_string().contains("admin token"));
    }
}
