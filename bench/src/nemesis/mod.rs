//! `seckill-bench nemesis`: the promises of api.md §5 under faults (issue 10).
//!
//! The campaign starts a whole system of real processes ([`cluster`]) and
//! runs sales on it one after another. During each sale's buying, at moments
//! drawn from one printed seed ([`faults`]), it kills (`-9`) and restarts
//! instances, pauses them (SIGSTOP, some past `--pause-ms`, then SIGCONT),
//! crashes redis-server and mariadbd, and drops, resets, delays or
//! blackholes an instance's connections to them ([`proxy`]). Payment windows
//! are short, so unpaid orders expire and their units return mid-sale. After
//! each sale, at rest, it checks promises 1–6 with the bench's one checker
//! ([`crate::promises`]): the buyers' observations ([`buyers`]) against the
//! store read through the admin API, via nginx and via every instance, once
//! every deadline is past (expiry); and the retries of acknowledged buys. A violation is printed with the seed
//! that replays the schedule, and the exit status is 3.
//!
//! - [`proxy`]: the userspace TCP proxy and its faults.
//! - [`services`]: private redis-server, mariadbd and nginx processes.
//! - [`cluster`]: the system, and each fault carried out on it.
//! - [`faults`]: the seeded generator, the plan and the schedule.
//! - [`buyers`]: buys with request ids and retries, and what they saw.
//! - [`report`]: the figures, the violations, the table and the replay.

pub mod buyers;
pub mod cluster;
pub mod faults;
pub mod proxy;
pub mod report;
pub mod services;

use crate::promises::{self, Terms, Violation};
use crate::sale::{PASSWORD, settle_store};
use crate::setup::{self, Admin, Buyer, ItemSpec, SetupError};
use crate::spawn::{self, SpawnError};
use buyers::BuyerSettings;
use cluster::{Cluster, ClusterError, ClusterSettings};
use faults::{Bounds, Fault, Rng};
pub use report::{Found, NemesisReport, SaleFigures};
use std::fmt;
use std::io::Read;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Bounds on the flags, so that a typo cannot ask for a runaway run.
pub const FAULTS_MAX: usize = 100_000;
pub const INSTANCES_MAX: usize = 16;
pub const USERS_MAX: usize = 100_000;
/// Parallel connections for the per-user setup steps.
const SETUP_CONNECTIONS: usize = 8;
/// Attempts of a sale's setup, and the wait between two.
const SETUP_ATTEMPTS: usize = 10;
const SETUP_RETRY: Duration = Duration::from_millis(500);
/// Longest wait for every instance to know a new item.
const ITEM_KNOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// Everything `seckill-bench nemesis` takes.
#[derive(Debug, Clone)]
pub struct NemesisConfig {
    /// `None`: drawn from the kernel, and printed.
    pub seed: Option<u64>,
    /// Faults in the whole campaign.
    pub faults: usize,
    /// Faults per sale; the sales are `faults / faults_per_sale` rounded up
    /// unless `sales` says.
    pub faults_per_sale: usize,
    pub sales: Option<usize>,
    /// No sale starts after this much of the campaign.
    pub duration: Duration,
    pub instances: usize,
    pub users: usize,
    pub stock: u64,
    pub per_user_limit: u32,
    pub buys_per_user: usize,
    /// Each sale's buying span (the faults fall in its first 80%).
    pub buying: Duration,
    /// A long pause lasts from this to 1.5 times it (meant to exceed the
    /// lease of distributed stock).
    pub pause_ms: u64,
    /// The instances' `sale.payment_window_ms`: short, so that orders expire
    /// and their units come back during the sale, under the faults too.
    pub payment_window_ms: u64,
    pub connections: usize,
    pub request_timeout: Duration,
    pub attempts_max: usize,
    pub seckill: Option<PathBuf>,
    pub server_sets: Vec<String>,
}

impl Default for NemesisConfig {
    fn default() -> Self {
        NemesisConfig {
            seed: None,
            faults: 100,
            faults_per_sale: 8,
            sales: None,
            duration: Duration::from_secs(15 * 60),
            instances: 3,
            users: 1_500,
            stock: 1_000,
            per_user_limit: 1,
            buys_per_user: 2,
            buying: Duration::from_secs(10),
            pause_ms: 4_000,
            payment_window_ms: 3_000,
            connections: 32,
            request_timeout: Duration::from_secs(20),
            attempts_max: 20,
            seckill: None,
            server_sets: Vec::new(),
        }
    }
}

impl NemesisConfig {
    pub fn validate(&self) -> Result<(), String> {
        let check = |ok: bool, what: &str| if ok { Ok(()) } else { Err(what.to_string()) };
        check((1..=FAULTS_MAX).contains(&self.faults), "--faults: 1 to 100000")?;
        check(self.faults_per_sale >= 1, "--faults-per-sale: at least 1")?;
        check(self.sales.is_none_or(|s| s >= 1), "--sales: at least 1")?;
        check((1..=INSTANCES_MAX).contains(&self.instances), "--instances: 1 to 16")?;
        check((1..=USERS_MAX).contains(&self.users), "--users: 1 to 100000")?;
        check(self.stock >= 1 && self.per_user_limit >= 1, "--stock and --per-user-limit: at least 1")?;
        check((1..=10).contains(&self.buys_per_user), "--buys-per-user: 1 to 10")?;
        check(self.buying >= Duration::from_secs(1), "--buying: at least 1s")?;
        check(self.pause_ms >= 1, "--pause-ms: at least 1")?;
        check(self.payment_window_ms >= 1_000, "--payment-window-ms: at least 1000")?;
        check((1..=256).contains(&self.connections), "-c: 1 to 256")?;
        check(self.attempts_max >= 1, "--attempts: at least 1")
    }

    fn sales(&self) -> usize {
        self.sales.unwrap_or(self.faults.div_ceil(self.faults_per_sale))
    }
}

/// Why the campaign could not run (not a broken promise: those are in the report).
#[derive(Debug)]
pub enum NemesisError {
    Cluster(ClusterError),
    Setup(SetupError),
    Spawn(SpawnError),
    /// A fault could not be carried out, or its part did not come back.
    Fault {
        fault: Fault,
        error: ClusterError,
    },
    Io(std::io::Error),
}

impl fmt::Display for NemesisError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NemesisError::Cluster(e) => write!(f, "{e}"),
            NemesisError::Setup(e) => write!(f, "sale setup: {e}"),
            NemesisError::Spawn(e) => write!(f, "{e}"),
            NemesisError::Fault { fault, error } => write!(f, "{} at {:?}: {error}", fault.kind.name(), fault.at),
            NemesisError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for NemesisError {}

impl From<ClusterError> for NemesisError {
    fn from(e: ClusterError) -> Self {
        NemesisError::Cluster(e)
    }
}

impl From<SetupError> for NemesisError {
    fn from(e: SetupError) -> Self {
        NemesisError::Setup(e)
    }
}

/// Runs the campaign; the seed is printed to stderr first, so that even a
/// run that dies says how to replay it.
pub fn run_nemesis(config: &NemesisConfig) -> Result<NemesisReport, NemesisError> {
    let seed = match config.seed {
        Some(seed) => seed,
        None => random_seed().map_err(NemesisError::Io)?,
    };
    eprintln!("seckill-bench nemesis: seed {seed} (replay with --seed {seed})");
    services::kill_children_on_panic();
    let started = Instant::now();
    let mut rng = Rng::new(seed);
    let kinds = faults::plan(config.faults, &mut rng);
    let sales = config.sales();
    let seckill = spawn::find_binary(config.seckill.as_deref()).map_err(NemesisError::Spawn)?;
    let cluster = Cluster::start(&ClusterSettings {
        instances: config.instances,
        seckill,
        server_sets: [format!("sale.payment_window_ms={}", config.payment_window_ms)]
            .into_iter()
            .chain(config.server_sets.iter().cloned())
            .collect(),
        upstream_read_timeout: config.request_timeout,
    })?;
    let mut report =
        NemesisReport { seed, system: cluster.describe(), sales_planned: sales, ..NemesisReport::default() };
    for sale in 0..sales {
        if started.elapsed() >= config.duration {
            report.stopped = Some(format!("--duration {:?} reached after {sale} sales", config.duration));
            break;
        }
        let share = &kinds[sale * kinds.len() / sales..(sale + 1) * kinds.len() / sales];
        let bounds = Bounds { buying: config.buying, instances: cluster.instances(), pause_ms: config.pause_ms };
        let schedule = faults::draw(share, bounds, &mut rng);
        let figures = run_one_sale(config, &cluster, sale, &schedule, &mut report)?;
        eprintln!(
            "sale {}/{sales}: {} faults, {} buys, {} × 200, {} 5xx and {} unanswered attempts, {} unknown, {} orders, \
             {} violations so far, {:.1} s",
            sale + 1,
            figures.faults,
            figures.buys,
            figures.acknowledged,
            figures.answers_5xx,
            figures.unanswered,
            figures.unknown,
            figures.orders,
            report.violations.len(),
            figures.took_s
        );
        report.sales.push(figures);
    }
    report.took_s = started.elapsed().as_secs_f64();
    Ok(report)
}

fn random_seed() -> std::io::Result<u64> {
    let mut bytes = [0u8; 8];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(u64::from_le_bytes(bytes))
}

/// One sale: set up at rest, buy under the faults, check at rest.
fn run_one_sale(
    config: &NemesisConfig,
    cluster: &Cluster,
    sale: usize,
    schedule: &[Fault],
    report: &mut NemesisReport,
) -> Result<SaleFigures, NemesisError> {
    let started = Instant::now();
    let item_id = sale as u64 + 1;
    let terms = Terms { stock: config.stock, per_user_limit: u64::from(config.per_user_limit) };
    let mut admin = Admin::new(&cluster.front, &cluster.admin_token)?;
    let buyers = set_up_sale(config, cluster, &mut admin, sale, item_id)?;
    let settings = BuyerSettings {
        connections: config.connections,
        buys_per_user: config.buys_per_user,
        buying: config.buying,
        request_timeout: config.request_timeout,
        attempts_max: config.attempts_max,
        retry_backoff: Duration::from_millis(100),
    };

    let buying_started = Instant::now();
    let (records, injected) = std::thread::scope(|scope| {
        let nemesis = scope.spawn(|| inject_all(cluster, schedule, buying_started));
        let records = buyers::buy_all(&cluster.front, item_id, sale, &buyers, settings);
        // A panic in the nemesis thread is a bug: pass it on.
        (records, nemesis.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
    });
    for fault in &injected? {
        *report.faults_by_kind.entry(fault.kind).or_default() += 1;
    }

    // At rest: every part back, the store settled, then the checks.
    cluster.heal();
    cluster.wait_ready()?;
    at_rest("settling", |_| Ok(settle_store(&mut admin, item_id)?))?;
    let observations = buyers::observe(&records, &buyers);
    let replays = buyers::replay_acknowledged(&cluster.front, item_id, &records, &buyers, settings);
    let found = |seen_via: &str, violations: Vec<Violation>| -> Vec<Found> {
        violations.into_iter().map(|violation| Found { sale, seen_via: seen_via.to_string(), violation }).collect()
    };
    report.violations.extend(found("retries", promises::check_replays(&replays)));
    at_rest("settling", |_| Ok(settle_store(&mut admin, item_id)?))?;
    at_rest("reading deadlines", |_| Ok(wait_past_deadlines(&mut admin, item_id, terms)?))?;
    at_rest("settling", |_| Ok(settle_store(&mut admin, item_id)?))?;
    let (store, now_ms) = at_rest("reading the store", |_| Ok(read_at_rest(&mut admin, item_id, terms)?))?;
    report.violations.extend(found("nginx", promises::check(&observations, &store)));
    report.violations.extend(found("nginx", promises::check_expiry(&store, now_ms)));
    let refused = buyers::refused(&records, &buyers);
    report.violations.extend(found("retries", promises::check_refused_buys(&refused, &store.orders)));
    // Every instance's own view: its stats must be conserved too.
    for (i, target) in cluster.instance_targets().iter().enumerate() {
        let mut direct = Admin::new(target, &cluster.admin_token)?;
        let (view, now_ms) = at_rest("reading the store", |_| Ok(read_at_rest(&mut direct, item_id, terms)?))?;
        let seen_via = format!("instance {i}");
        report.violations.extend(found(&seen_via, promises::check(&observations, &view)));
        report.violations.extend(found(&seen_via, promises::check_expiry(&view, now_ms)));
    }
    Ok(report::figures(&records, schedule, &store, started))
}

/// The store's view and the time just before it was read.
fn read_at_rest(admin: &mut Admin, item_id: u64, terms: Terms) -> Result<(promises::StoreView, u64), SetupError> {
    let now_ms = setup::now_ms();
    Ok((promises::read_store(admin, item_id, terms, 5)?, now_ms))
}

/// Sleeps until every pending order's deadline is past by the contract's
/// grace, so that the expiry check can hold the server to it.
fn wait_past_deadlines(admin: &mut Admin, item_id: u64, terms: Terms) -> Result<(), SetupError> {
    let store = promises::read_store(admin, item_id, terms, 5)?;
    let pending = store.orders.iter().filter(|o| o.status == "pending_payment");
    if let Some(last) = pending.map(|o| o.pay_deadline_ms).max() {
        let wait_ms = (last + promises::EXPIRY_GRACE_MS).saturating_sub(setup::now_ms());
        std::thread::sleep(Duration::from_millis(wait_ms));
    }
    Ok(())
}

/// The item and its buyers (sessions, captchas, paths), set up at rest,
/// from the start again (new users) while a step meets a transient error.
fn set_up_sale(
    config: &NemesisConfig,
    cluster: &Cluster,
    admin: &mut Admin,
    sale: usize,
    item_id: u64,
) -> Result<Vec<Buyer>, NemesisError> {
    at_rest("sale setup", |attempt| {
        let prefix = format!("{}s{sale}a{attempt}_", setup::fresh_prefix());
        try_set_up(config, cluster, admin, item_id, &prefix)
    })
}

/// Runs a step at rest again while it meets a transient error, a bounded
/// number of times: a part the last faults touched may still answer 503
/// for a moment after `/readyz` said 200 (its client reconnecting). A 503
/// is allowed by the contract; only a broken promise is a finding.
fn at_rest<T>(what: &str, mut step: impl FnMut(usize) -> Result<T, NemesisError>) -> Result<T, NemesisError> {
    let mut attempt = 1;
    loop {
        match step(attempt) {
            Err(NemesisError::Setup(e)) if attempt < SETUP_ATTEMPTS && is_transient(&e) => {
                eprintln!("seckill-bench nemesis: {what}, attempt {attempt}: {e}; again");
                attempt += 1;
                std::thread::sleep(SETUP_RETRY);
            }
            other => return other,
        }
    }
}

fn try_set_up(
    config: &NemesisConfig,
    cluster: &Cluster,
    admin: &mut Admin,
    item_id: u64,
    prefix: &str,
) -> Result<Vec<Buyer>, NemesisError> {
    admin.put_item(&ItemSpec::open_now(item_id, config.stock, config.per_user_limit))?;
    wait_item_known(cluster, item_id)?;
    let users = admin.bulk_users(prefix, config.users, PASSWORD)?;
    Ok(setup::open_paths(&cluster.front, &cluster.admin_token, item_id, &users, SETUP_CONNECTIONS)?)
}

/// A 5xx or a lost connection: a backend or instance still coming back.
fn is_transient(error: &SetupError) -> bool {
    matches!(error, SetupError::Status { status: 502..=504, .. } | SetupError::Client { .. })
}

/// Polls every instance, directly, until it knows the item (announced on
/// Redis, or read from the store after a resynchronisation).
fn wait_item_known(cluster: &Cluster, item_id: u64) -> Result<(), NemesisError> {
    let deadline = Instant::now() + ITEM_KNOWN_TIMEOUT;
    for target in cluster.instance_targets() {
        let mut admin = Admin::new(&target, &cluster.admin_token)?;
        while admin.ms_until_start(item_id).is_err() {
            if Instant::now() >= deadline {
                let what = format!("{} never heard of item {item_id}", target.url());
                return Err(ClusterError::NotRecovered(what).into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Ok(())
}

/// Carries out the schedule, each fault in its own thread at its moment
/// (they overlap, one part at a time); returns them once all are done.
fn inject_all(cluster: &Cluster, schedule: &[Fault], started: Instant) -> Result<Vec<Fault>, NemesisError> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = schedule
            .iter()
            .map(|fault| {
                std::thread::sleep((started + fault.at).saturating_duration_since(Instant::now()));
                scope.spawn(move || cluster.inject(fault).map(|()| *fault))
            })
            .collect();
        handles
            .into_iter()
            .zip(schedule)
            .map(|(h, fault)| {
                let done = h.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
                done.map_err(|error| NemesisError::Fault { fault: *fault, error })
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_plan_a_hundred_faults() {
        let config = NemesisConfig::default();
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(config.sales(), 13);
        let bad = NemesisConfig { instances: 0, ..NemesisConfig::default() };
        assert!(bad.validate().is_err());
    }
}
