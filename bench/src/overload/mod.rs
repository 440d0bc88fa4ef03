//! `seckill-bench overload` (issue 10): offer three times what the server
//! can make durable, and check that it sheds the excess cleanly.
//!
//! 1. The sale is set up as `sale` sets it up ([`crate::sale::open_sale`]),
//!    but with stock and a per-user limit that nothing in the run exhausts,
//!    so every buy the server admits can succeed.
//! 2. **Capacity**: closed loop (`-c` connections, `--warmup`, `-d`), sync
//!    confirmation: 200s per second of the measured window. That is the
//!    durable-order capacity: each 200 is an order fsync'd in the store.
//! 3. **Overload**: open loop at `--factor` (3) × the capacity on
//!    `--overload-connections` connections, for `--overload-warmup` +
//!    `--overload-duration`. The load generator shares the machine with the
//!    server, so the rate it actually sent is measured and reported.
//! 4. Meanwhile the server's RSS is sampled ([`memory`]); afterwards, at
//!    rest, the promises are checked by the one checker
//!    ([`crate::promises`], as `sale` does, plus promise 6 once the payment
//!    windows have run out).
//!
//! Correctness decides the exit status: a broken promise, a 429 or 503
//! without `Retry-After`, or memory over the limit or still growing. The
//! figures (capacity, goodput and its ratio) are reported, never asserted:
//! on a shared 2-core machine they measure the machine as much as the server.

pub mod memory;
mod report;

pub use report::{OverloadReport, Phase};

use crate::promises::{self, Terms};
use crate::run::{BenchError, RunConfig};
use crate::sale::{self, Ledger, OpenSale, SaleConfig, SaleError, SetupTimes};
use crate::setup::{Admin, SetupError, StoredOrder};
use memory::Memory;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// Settings a server started here gets before `--server-set`:
/// - the per-user rate limit lifted: the bench's users each send many buys a
///   second, so the limit would shed by the bench's user count, not by what
///   the server can write (`--server-set limits.per_user_rps=5` puts it back);
/// - a short payment window, so that unpaid orders expire during the run:
///   the server's order state reaches a steady size instead of growing with
///   every order, and memory growth then means a queue or a leak. The
///   capacity phase's default warm-up is as long, so the capacity includes
///   the expiries' work too.
pub const OVERLOAD_SETTINGS: &[&str] =
    &["limits.per_user_rps=1000000", "limits.per_user_burst=1000000", "sale.payment_window_ms=2000"];

/// The default connections of both phases.
pub const OVERLOAD_CONNECTIONS: usize = 2048;
/// The overload phase's default requests outstanding per connection.
pub const OVERLOAD_PIPELINE: usize = 16;
/// The capacity phase's default requests outstanding per connection.
pub const CAPACITY_PIPELINE: usize = 2;

/// The goal of issue 10: goodput under overload ÷ capacity.
pub const GOODPUT_GOAL: f64 = 0.90;
/// How long the bench waits, at most, for payment deadlines to pass before
/// checking promise 6 (beyond it, the expiry check is skipped and said so).
const EXPIRY_WAIT_MAX: Duration = Duration::from_secs(15);

/// Everything `seckill-bench overload` needs.
#[derive(Debug, Clone)]
pub struct OverloadConfig {
    /// The sale and the capacity phase (`sale.run`: closed loop).
    pub sale: SaleConfig,
    /// The overload phase offers this multiple of the capacity.
    pub factor: f64,
    /// The overload phase's connections: an open loop needs rate × latency
    /// requests in flight, so many more than a closed loop.
    pub overload_connections: usize,
    /// Requests outstanding per connection in the overload phase, those due
    /// together written in one write. A shed answer queued behind an
    /// admitted buy on its connection waits for it (answers are in order),
    /// so every request holds its place for about an admitted buy's wait:
    /// the phase needs offered rate × that wait places, which 4,096
    /// one-request connections are far from (they offered 0.9–2.1 ×).
    pub overload_pipeline: usize,
    pub overload_warmup: Duration,
    pub overload_duration: Duration,
    /// The server's peak RSS must stay under this.
    pub rss_limit_mib: u64,
    /// The pid of a `--target` server, to sample its RSS (a server started
    /// here is always sampled).
    pub server_pid: Option<u32>,
}

impl OverloadConfig {
    pub fn new() -> OverloadConfig {
        let mut sale = SaleConfig::new();
        sale.stock = 10_000_000;
        sale.per_user_limit = 1_000_000;
        sale.start_in = Duration::from_millis(200);
        // Enough buys in flight to fill the writer's batches: with sync
        // confirmation each connection waits for a commit, so 64 would
        // measure the connections, not the writer. The same connections as
        // the overload phase (the command line keeps them equal unless `-c`
        // is given), pipelined too: the server's loops and the bench then
        // pay the same per-request costs in both phases, which is what makes
        // the ratio fair on a machine they share. Fewer outstanding per
        // connection than the overload phase: a closed loop beyond the
        // admission bound resends each shed buy at once, measuring the shed
        // path instead of the writer (4 deep, 8,192 in flight, shed 3–27%
        // of the capacity phase's buys in runs at 8–20k orders/s); 2 deep
        // is 4,096, four full batches of the default 1,024, under the bound
        // while the writer drains more than 8,192 orders/s.
        sale.run.connections = OVERLOAD_CONNECTIONS;
        sale.run.pipeline = CAPACITY_PIPELINE;
        sale.run.warmup = Duration::from_secs(2);
        sale.run.duration = Duration::from_secs(3);
        OverloadConfig {
            sale,
            factor: 3.0,
            overload_connections: OVERLOAD_CONNECTIONS,
            overload_pipeline: OVERLOAD_PIPELINE,
            overload_warmup: Duration::from_secs(1),
            overload_duration: Duration::from_secs(6),
            rss_limit_mib: 1024,
            server_pid: None,
        }
    }

    pub fn validate(&self) -> Result<(), BenchError> {
        let bad = |what: &str| Err(BenchError::Config(what.to_string()));
        if self.sale.run.rate_per_s.is_some() {
            return bad("the capacity phase is a closed loop: no --rate (the overload rate is --factor × capacity)");
        }
        if self.sale.bots > 0 {
            return bad("--bots is for `sale`");
        }
        if !(self.factor.is_finite() && self.factor > 0.0 && self.factor <= 100.0) {
            return bad("--factor must be in (0, 100]");
        }
        if self.rss_limit_mib == 0 {
            return bad("--rss-limit-mib must be positive");
        }
        self.sale.validate()?;
        self.overload_run(1.0).validate()
    }

    /// The overload phase's load at `rate` requests/s.
    fn overload_run(&self, rate: f64) -> RunConfig {
        let mut run = self.sale.run.clone();
        run.connections = self.overload_connections;
        run.pipeline = self.overload_pipeline;
        run.warmup = self.overload_warmup;
        run.duration = self.overload_duration;
        run.rate_per_s = Some(rate);
        run
    }
}

impl Default for OverloadConfig {
    fn default() -> Self {
        OverloadConfig::new()
    }
}

/// Runs both phases and the checks; progress goes to stderr.
pub fn run_overload(config: &OverloadConfig) -> Result<OverloadReport, SaleError> {
    config.validate().map_err(SaleError::Config)?;
    let started = Instant::now();
    let (server, target, token) = sale::serve(&config.sale, "overload", OVERLOAD_SETTINGS)?;
    let mut times = SetupTimes { server_s: sale::round3(started.elapsed().as_secs_f64()), ..SetupTimes::default() };
    let pid = server.as_ref().map(|s| s.pid()).or(config.server_pid);
    let result = overload(config, &target, &token, pid, &mut times);
    let settings = server.as_ref().map(|s| s.settings.clone()).unwrap_or_default();
    let durability = sale::durability(&config.sale, server.is_some());
    let spawned = server.is_some();
    if let Some(server) = server {
        server.stop();
    }
    let mut report = result?;
    report.target = format!("http://{}", target.authority);
    report.spawned = spawned;
    report.server_settings = settings;
    report.durability = durability;
    Ok(report)
}

/// The two phases against a running server, then the checks.
fn overload(
    config: &OverloadConfig,
    target: &crate::Target,
    token: &str,
    pid: Option<u32>,
    times: &mut SetupTimes,
) -> Result<OverloadReport, SaleError> {
    let OpenSale { mut admin, item, buyers } = sale::open_sale(&config.sale, target, token, times)?;
    let capacity_run = {
        let mut run = config.sale.run.clone();
        run.target = target.clone();
        run
    };
    let run_length = capacity_run.warmup
        + capacity_run.duration
        + config.overload_warmup
        + config.overload_duration
        + Duration::from_secs(1);
    let ledger = Arc::new(Ledger::new(buyers.len(), run_length));
    let quantity = config.sale.quantity;
    let done = AtomicBool::new(false);
    let t0 = Instant::now();
    let (phases, samples) = std::thread::scope(|scope| {
        let sampler = pid.map(|pid| {
            let done = &done;
            scope.spawn(move || memory::sample(pid, t0, done))
        });
        if config.sale.progress {
            let (ledger, done) = (&ledger, &done);
            scope.spawn(move || sale::progress(ledger, run_length, done));
        }
        let phases = phases(config, &capacity_run, target, item.id, quantity, &buyers, &ledger, t0);
        done.store(true, Relaxed);
        // A panic in the sampler is a bug: pass it on.
        let samples = sampler.map(|s| s.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
        (phases, samples)
    });
    let (capacity, overload, overload_span) = phases?;
    let memory = pid.zip(samples).map(|(pid, samples)| {
        Memory::judge(pid, &samples, config.rss_limit_mib as f64, overload_span.0, overload_span.1)
    });

    let terms = Terms { stock: config.sale.stock, per_user_limit: u64::from(config.sale.per_user_limit) };
    let settle = Instant::now();
    sale::settle_store(&mut admin, item.id)?;
    let expiry_waited = wait_for_deadlines(&mut admin, item.id)?;
    sale::settle_store(&mut admin, item.id)?;
    let store = promises::read_store(&mut admin, item.id, terms, 5)?;
    let now_ms = crate::setup::now_ms();
    let settle_s = sale::round3(settle.elapsed().as_secs_f64());
    let mut observations = sale::observe(&ledger, &buyers, quantity);
    sale::ask_results(target, item.id, &buyers, config.sale.setup_connections, &mut observations)?;
    let mut promises = sale::promise_report(&observations, &store, settle_s);
    if expiry_waited {
        promises.violations.extend(promises::check_expiry(&store, now_ms));
        promises.held = promises.violations.is_empty();
    }
    let (shed, shed_without_retry_after) = ledger.shed();
    Ok(OverloadReport {
        argv: Vec::new(),
        target: String::new(),
        spawned: false,
        server_settings: Vec::new(),
        durability: String::new(),
        item_id: item.id,
        stock: config.sale.stock,
        per_user_limit: config.sale.per_user_limit,
        users: buyers.len(),
        setup: *times,
        factor: config.factor,
        capacity,
        overload,
        shed,
        shed_without_retry_after,
        memory,
        expiry_checked: expiry_waited,
        promises,
    })
}

/// The two load phases; returns them and the overload phase's span in
/// seconds since `t0` (the memory sampler's clock).
#[allow(clippy::too_many_arguments)]
fn phases(
    config: &OverloadConfig,
    capacity_run: &RunConfig,
    target: &crate::Target,
    item_id: u64,
    quantity: Option<u32>,
    buyers: &[crate::setup::Buyer],
    ledger: &Arc<Ledger>,
    t0: Instant,
) -> Result<(Phase, Phase, (f64, f64)), SaleError> {
    let mark = Mark::of(ledger);
    let summary = sale::load(capacity_run, target, item_id, quantity, buyers, ledger, 0).map_err(SaleError::Run)?;
    let ok = summary.status.get("200").copied().unwrap_or(0);
    let capacity_per_s = ok as f64 / summary.duration_s;
    let capacity = Phase::new(summary, &mark, &Mark::of(ledger), capacity_run, capacity_per_s);
    eprintln!("seckill-bench overload: capacity {:.0} orders/s", capacity.goodput_per_s);
    if ok == 0 {
        let error = "no buy succeeded in the capacity phase".to_string();
        return Err(SaleError::Setup(SetupError::Json { what: "the capacity".into(), error }));
    }

    let rate = config.factor * capacity_per_s;
    let mut overload_run = config.overload_run(rate);
    overload_run.target = target.clone();
    let mark = Mark::of(ledger);
    let from_s = t0.elapsed().as_secs_f64();
    let summary = sale::load(&overload_run, target, item_id, quantity, buyers, ledger, 0).map_err(SaleError::Run)?;
    let to_s = t0.elapsed().as_secs_f64();
    let overload = Phase::new(summary, &mark, &Mark::of(ledger), &overload_run, capacity_per_s);
    Ok((capacity, overload, (from_s, to_s)))
}

/// What the ledger had counted at a moment: phases are differences of two.
struct Mark {
    at: Instant,
    sent: u64,
    statuses: BTreeMap<String, u64>,
    codes: BTreeMap<String, u64>,
}

impl Mark {
    fn of(ledger: &Ledger) -> Mark {
        Mark { at: Instant::now(), sent: ledger.sent(), statuses: ledger.statuses(), codes: ledger.codes() }
    }
}

/// `after - before`, key by key, zeros left out.
fn difference(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    let delta = after.iter().map(|(k, n)| (k.clone(), n - before.get(k).copied().unwrap_or(0)));
    delta.filter(|(_, n)| *n > 0).collect()
}

/// Waits until every pending order's payment deadline is [`EXPIRY_GRACE_MS`]
/// past, when that is at most [`EXPIRY_WAIT_MAX`] away; returns whether it
/// waited (promise 6 can then be checked).
///
/// [`EXPIRY_GRACE_MS`]: promises::EXPIRY_GRACE_MS
fn wait_for_deadlines(admin: &mut Admin, item_id: u64) -> Result<bool, SetupError> {
    let orders = admin.orders(item_id, promises::STORE_ORDERS_MAX)?;
    let last = orders.iter().filter(|o| o.status == "pending_payment").map(|o: &StoredOrder| o.pay_deadline_ms).max();
    let Some(last) = last else { return Ok(true) };
    // Another 200 ms for the expiry's own write to land.
    let until = last + promises::EXPIRY_GRACE_MS + 200;
    let now = crate::setup::now_ms();
    if until.saturating_sub(now) > EXPIRY_WAIT_MAX.as_millis() as u64 {
        eprintln!("seckill-bench overload: payment deadlines are too far away to wait for: promise 6 not checked");
        return Ok(false);
    }
    std::thread::sleep(Duration::from_millis(until.saturating_sub(now)));
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_are_differences() {
        let before: BTreeMap<String, u64> = [("200".to_string(), 5), ("503".to_string(), 1)].into();
        let after: BTreeMap<String, u64> =
            [("200".to_string(), 9), ("503".to_string(), 1), ("429".to_string(), 2)].into();
        let d = difference(&before, &after);
        assert_eq!(d, [("200".to_string(), 4), ("429".to_string(), 2)].into());
    }

    #[test]
    fn validation() {
        let mut c = OverloadConfig::new();
        assert!(c.validate().is_ok());
        c.sale.run.rate_per_s = Some(10.0);
        assert!(c.validate().unwrap_err().to_string().contains("closed loop"));
        c.sale.run.rate_per_s = None;
        c.factor = 0.0;
        assert!(c.validate().unwrap_err().to_string().contains("factor"));
        c.factor = 3.0;
        c.overload_connections = 0;
        assert!(c.validate().unwrap_err().to_string().contains("connections"));
    }
}
