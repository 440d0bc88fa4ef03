//! `seckill-bench sale`: a whole flash sale, as its buyers live it.
//!
//! 1. The server: `--target`, or one started here on the embedded default
//!    ([`crate::spawn`]).
//! 2. An item whose sale starts later, N users with sessions (bulk), and each
//!    user's captcha drawn and answered (the admin hook) before the start.
//! 3. The start is moved to `--start-in` from now (on the server's clock);
//!    the bench waits for it, then trades every captcha for a sale path (the
//!    server gives paths only once the sale is open).
//! 4. Every user buys at once over C connections, closed loop or at a fixed
//!    rate; each connection cycles over the users, so a user whose buy
//!    succeeded keeps clicking (409) and the rest meet the sell-out (410).
//! 5. At rest, the store is read through the admin API and the promises are
//!    checked ([`crate::promises`]) against what each user was answered.
//!
//! With `--bots B` a second crowd joins the same sale: B bot users on their
//! own connections, each sending `--bot-rate-x` times a human's request rate,
//! and the report gives the humans' share of the units sold.

use crate::buy::{self, statuses_line};
use crate::promises::{self, Observations, StoreView, Terms, UserObservations, Violation};
use crate::report::{Summary, errors_line, group};
use crate::response::Response;
use crate::run::{BenchError, RunConfig, run_with};
use crate::setup::{self, Admin, Buyer, ItemSpec, SetupError};
use crate::spawn::{self, SpawnError, SpawnedServer};
use crate::target::Target;
use crate::workload::{Bodyless, RequestSource, StatusTally, UserCycle};
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::fmt::{self, Write as _};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The password of the users the bench creates.
pub(crate) const PASSWORD: &str = "seckill-bench-password";
/// Buckets of the throughput series: the run is cut into at most this many.
const SERIES_BUCKETS: usize = 300;
/// The narrowest bucket of the throughput series.
const BUCKET_MS_MIN: u64 = 10;
/// How long the bench waits for the store to come to rest after the run
/// (parked buys answer within `sale.confirm_timeout_ms`, 2 s by default).
const SETTLE_TIMEOUT: Duration = Duration::from_secs(15);
/// Reads of the stats that must agree, this far apart, for "at rest".
const SETTLE_INTERVAL: Duration = Duration::from_millis(250);
/// The most users a sale sets up (humans and bots).
pub const USERS_MAX: usize = 1_000_000;

/// Everything `seckill-bench sale` needs.
#[derive(Debug, Clone)]
pub struct SaleConfig {
    /// The humans' load: connections, threads, duration, warm-up, pipeline,
    /// rate. Its target is replaced by the server's.
    pub run: RunConfig,
    /// `None`: start a server here.
    pub target: Option<Target>,
    pub admin_token: Option<String>,
    /// The `seckill` binary to start (see [`spawn::find_binary`]).
    pub seckill: Option<PathBuf>,
    /// `key=value` settings for a server started here.
    pub server_sets: Vec<String>,
    /// `None`: 1 on a server started here, else one derived from the clock
    /// (the promise check needs an item without earlier orders).
    pub item_id: Option<u64>,
    pub stock: u64,
    pub per_user_limit: u32,
    pub quantity: Option<u32>,
    pub users: usize,
    pub user_prefix: Option<String>,
    pub setup_connections: usize,
    /// From the end of the captchas to the sale's start.
    pub start_in: Duration,
    /// Bot users (0: no bots), their connections, their per-user rate as a
    /// multiple of a human's.
    pub bots: usize,
    pub bot_connections: usize,
    pub bot_rate_x: f64,
    /// The live progress line on stderr.
    pub progress: bool,
    /// A Redis (`redis://host:port`) whose `INFO commandstats` is read
    /// before and after the buy: the Redis commands the buy cost.
    pub redis_stats: Option<String>,
}

impl SaleConfig {
    pub fn new() -> SaleConfig {
        let mut run = RunConfig::new(Target::parse("http://127.0.0.1/").expect("a constant URL"));
        run.duration = Duration::from_secs(5);
        SaleConfig {
            run,
            target: None,
            admin_token: None,
            seckill: None,
            server_sets: Vec::new(),
            item_id: None,
            stock: 1_000,
            per_user_limit: 1,
            quantity: None,
            users: 10_000,
            user_prefix: None,
            setup_connections: 16,
            start_in: Duration::from_millis(500),
            bots: 0,
            bot_connections: 64,
            bot_rate_x: 50.0,
            progress: true,
            redis_stats: None,
        }
    }

    pub fn validate(&self) -> Result<(), BenchError> {
        let bad = |what: &str| Err(BenchError::Config(what.to_string()));
        if self.users == 0 || self.users + self.bots > USERS_MAX {
            return bad("users (and bots) must be in 1..=1000000 together");
        }
        if !(1..=setup::SETUP_CONNECTIONS_MAX).contains(&self.setup_connections) {
            return bad("setup connections must be in 1..=256");
        }
        if self.per_user_limit == 0 || self.quantity == Some(0) {
            return bad("per-user limit and quantity must be at least 1");
        }
        if self.target.is_some() && self.admin_token.is_none() {
            return bad("--target needs --admin-token or --admin-token-file");
        }
        if self.target.is_some() && !self.server_sets.is_empty() {
            return bad("--server-set applies to a server the bench starts, not to --target");
        }
        if self.bots > 0 {
            if self.run.rate_per_s.is_none() {
                return bad("--bots needs --rate: the bots' rate is a multiple of the humans'");
            }
            if !(1..=crate::run::CONNECTIONS_MAX).contains(&self.bot_connections) {
                return bad("bot connections must be in 1..=100000");
            }
            if !(self.bot_rate_x.is_finite() && self.bot_rate_x > 0.0) {
                return bad("--bot-rate-x must be positive");
            }
        }
        if self.start_in > Duration::from_secs(3600) {
            return bad("--start-in must be at most 1h");
        }
        self.run.validate()
    }
}

impl Default for SaleConfig {
    fn default() -> Self {
        SaleConfig::new()
    }
}

/// Why the sale produced no report.
#[derive(Debug)]
pub enum SaleError {
    Config(BenchError),
    Spawn(SpawnError),
    Setup(SetupError),
    Run(BenchError),
}

impl fmt::Display for SaleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SaleError::Config(e) => e.fmt(f),
            SaleError::Spawn(e) => write!(f, "server: {e}"),
            SaleError::Setup(e) => write!(f, "setup: {e}"),
            SaleError::Run(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SaleError {}

impl From<SetupError> for SaleError {
    fn from(e: SetupError) -> Self {
        SaleError::Setup(e)
    }
}

impl From<SpawnError> for SaleError {
    fn from(e: SpawnError) -> Self {
        SaleError::Spawn(e)
    }
}

/// Per-user counters shared by the load threads (one relaxed add per answer).
#[derive(Debug, Default)]
struct UserCounters {
    sent: AtomicU64,
    ok: AtomicU64,
    unknown: AtomicU64,
    unanswered: AtomicU64,
    sold_out: AtomicU64,
}

/// What every user was answered, and answers over time, for the whole run
/// (warm-up included: every buy counts for the promises).
#[derive(Debug)]
pub struct Ledger {
    users: Box<[UserCounters]>,
    tally: StatusTally,
    t0: OnceLock<Instant>,
    bucket_ms: u64,
    answers: Box<[AtomicU64]>,
    successes: Box<[AtomicU64]>,
    /// `(ledger index, order id)` of the 200s whose body the driver saw
    /// whole (nearly all on loopback): at most one per 200, so bounded by
    /// the units sold. Appended once per load thread, at its end.
    order_ids: Mutex<Vec<(u32, u64)>>,
    /// 429 and 503 answers, and those of them without `Retry-After` (the
    /// contract asks for one on each; the overload run reports the rest).
    shed: AtomicU64,
    shed_without_retry_after: AtomicU64,
    /// Answers by `status code` (`503 overloaded`, `409 limit_reached`, `200
    /// success`; `?` when the body did not arrive in one read): at most a
    /// few dozen keys. Appended once per load thread, at its end.
    codes: Mutex<BTreeMap<String, u64>>,
}

impl Ledger {
    pub fn new(users: usize, run_length: Duration) -> Ledger {
        let bucket_ms = (run_length.as_millis() as u64).div_ceil(SERIES_BUCKETS as u64).max(BUCKET_MS_MIN);
        let zeros = || -> Box<[AtomicU64]> { (0..SERIES_BUCKETS).map(|_| AtomicU64::new(0)).collect() };
        Ledger {
            users: (0..users).map(|_| UserCounters::default()).collect(),
            tally: StatusTally::default(),
            t0: OnceLock::new(),
            bucket_ms,
            answers: zeros(),
            successes: zeros(),
            order_ids: Mutex::new(Vec::new()),
            shed: AtomicU64::new(0),
            shed_without_retry_after: AtomicU64::new(0),
            codes: Mutex::new(BTreeMap::new()),
        }
    }

    /// Buys sent so far, over all users.
    pub(crate) fn sent(&self) -> u64 {
        self.users.iter().map(|u| u.sent.load(Relaxed)).sum()
    }

    /// Every answer so far by status (the whole run: warm-up and every phase).
    pub(crate) fn statuses(&self) -> BTreeMap<String, u64> {
        self.tally.counts().into_iter().map(|(s, n)| (s.to_string(), n)).collect()
    }

    /// Answers by `status code` from the load threads that have ended.
    pub(crate) fn codes(&self) -> BTreeMap<String, u64> {
        // A poisoned lock means a load thread panicked: the run fails anyway.
        self.codes.lock().map(|codes| codes.clone()).unwrap_or_default()
    }

    /// `(429 and 503 answers, those without Retry-After)` so far.
    pub(crate) fn shed(&self) -> (u64, u64) {
        (self.shed.load(Relaxed), self.shed_without_retry_after.load(Relaxed))
    }

    fn answered(&self, user: usize, status: u16) {
        self.tally.add(status);
        let counters = &self.users[user];
        match status {
            200 => counters.ok.fetch_add(1, Relaxed),
            // 202 queued (async) and 503 (overloaded, or not durable in time): outcome unknown.
            202 | 503 => counters.unknown.fetch_add(1, Relaxed),
            410 => counters.sold_out.fetch_add(1, Relaxed),
            _ => 0,
        };
        let t0 = *self.t0.get_or_init(Instant::now);
        let bucket = ((t0.elapsed().as_millis() as u64 / self.bucket_ms) as usize).min(SERIES_BUCKETS - 1);
        self.answers[bucket].fetch_add(1, Relaxed);
        if status == 200 {
            self.successes[bucket].fetch_add(1, Relaxed);
        }
    }

    /// All answers so far.
    pub fn answers(&self) -> u64 {
        self.answers.iter().map(|n| n.load(Relaxed)).sum()
    }

    fn user(&self, user: usize) -> UserObservations {
        let c = &self.users[user];
        UserObservations {
            requests: c.sent.load(Relaxed),
            acknowledged: c.ok.load(Relaxed),
            order_ids: Vec::new(),
            unknown: c.unknown.load(Relaxed),
            unanswered: c.unanswered.load(Relaxed),
            sold_out: c.sold_out.load(Relaxed),
            result: None,
        }
    }
}

/// One load thread's buys: a [`UserCycle`] that remembers which user each
/// outstanding request is for, to put every answer (or its absence) on that
/// user's account.
#[derive(Debug)]
struct SaleSource {
    cycle: UserCycle,
    ledger: Arc<Ledger>,
    /// Ledger index of the cycle's first user (bots come after the humans).
    offset: usize,
    /// Per thread-local connection, the users of its outstanding requests.
    inflight: Vec<VecDeque<u32>>,
    /// `(ledger index, order id)` of this thread's 200s, handed to the ledger at the end.
    order_ids: Vec<(u32, u64)>,
    /// This thread's answers by status and code, handed to the ledger at the end.
    codes: Vec<(u16, String, u64)>,
}

impl RequestSource for SaleSource {
    fn write_request(&mut self, conn: usize, out: &mut Vec<u8>) -> Bodyless {
        let (user, bodyless) = self.cycle.write_next(conn, out);
        let user = self.offset + user;
        self.ledger.t0.get_or_init(Instant::now);
        self.ledger.users[user].sent.fetch_add(1, Relaxed);
        if self.inflight.len() <= conn {
            self.inflight.resize_with(conn + 1, VecDeque::new);
        }
        // Users are fewer than USERS_MAX, which fits in u32.
        self.inflight[conn].push_back(user as u32);
        bodyless
    }

    fn on_response(&mut self, conn: usize, status: u16) {
        self.on_response_bytes(conn, status, None);
    }

    fn on_response_head(&mut self, conn: usize, response: &Response, bytes: Option<&[u8]>) {
        if matches!(response.status, 429 | 503) {
            self.ledger.shed.fetch_add(1, Relaxed);
            if !response.retry_after {
                self.ledger.shed_without_retry_after.fetch_add(1, Relaxed);
            }
        }
        self.on_response_bytes(conn, response.status, bytes);
        let code = bytes.map_or("?", answer_code);
        // A linear scan: a thread sees a few codes, and a hit allocates nothing.
        match self.codes.iter_mut().find(|(s, c, _)| *s == response.status && c == code) {
            Some((_, _, n)) => *n += 1,
            None => self.codes.push((response.status, code.to_string(), 1)),
        }
    }

    fn on_response_bytes(&mut self, conn: usize, status: u16, bytes: Option<&[u8]>) {
        let Some(user) = self.inflight.get_mut(conn).and_then(VecDeque::pop_front) else { return };
        self.ledger.answered(user as usize, status);
        if status == 200
            && let Some(id) = bytes.and_then(order_id)
        {
            self.order_ids.push((user, id));
        }
    }

    fn on_lost(&mut self, conn: usize, n: usize) {
        let Some(queue) = self.inflight.get_mut(conn) else { return };
        for user in queue.drain(..n.min(queue.len())) {
            self.ledger.users[user as usize].unanswered.fetch_add(1, Relaxed);
        }
    }
}

impl Drop for SaleSource {
    /// Requests still outstanding when the run ended got no answer.
    fn drop(&mut self) {
        for user in self.inflight.iter().flatten() {
            self.ledger.users[*user as usize].unanswered.fetch_add(1, Relaxed);
        }
        // A poisoned lock means another load thread panicked: the run fails anyway.
        if let Ok(mut ids) = self.ledger.order_ids.lock() {
            ids.append(&mut self.order_ids);
        }
        if let Ok(mut codes) = self.ledger.codes.lock() {
            for (status, code, n) in self.codes.drain(..) {
                *codes.entry(format!("{status} {code}")).or_insert(0) += n;
            }
        }
    }
}

/// What an answer's body says it is: the error `code` (`{"code":"overloaded",…}`),
/// else the `status` (`{"status":"success",…}`), else `-`; the body is capped
/// at 40 bytes so that a stray body cannot grow the tally's keys.
fn answer_code(response: &[u8]) -> &str {
    let field = |key: &[u8]| -> Option<&str> {
        let at = response.windows(key.len()).position(|w| w == key)? + key.len();
        let rest = &response[at..];
        let end = rest.iter().take(40).position(|&b| b == b'"')?;
        std::str::from_utf8(&rest[..end]).ok()
    };
    field(b"\"code\":\"").or_else(|| field(b"\"status\":\"")).unwrap_or("-")
}

/// The `order_id` of a 200's JSON body (`{"status":"success","order_id":"…",…}`).
fn order_id(response: &[u8]) -> Option<u64> {
    const KEY: &[u8] = b"\"order_id\":\"";
    let at = response.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let rest = &response[at..];
    let end = rest.iter().position(|&b| b == b'"')?;
    std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
}

/// How long each setup step took, in seconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct SetupTimes {
    pub server_s: f64,
    pub users_s: f64,
    pub captchas_s: f64,
    /// Waiting for the start.
    pub wait_s: f64,
    pub paths_s: f64,
}

/// Answers over time, for the plot.
#[derive(Debug, Clone, Serialize)]
pub struct Series {
    pub bucket_ms: u64,
    /// Answers per bucket (all statuses), and the 200s among them.
    pub answers: Vec<u64>,
    pub successes: Vec<u64>,
}

/// The units the humans and the bots ended up with.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Fairness {
    pub humans: usize,
    pub bots: usize,
    /// Requests per second per human and per bot (offered).
    pub human_rate_per_user: f64,
    pub bot_rate_per_user: f64,
    pub human_units: u64,
    pub bot_units: u64,
    /// Human units over all units sold; 0 when nothing sold.
    pub human_share: f64,
    /// The humans' share of the users: what a fair sale gives them.
    pub human_share_of_users: f64,
}

/// The promise check: observations, store, verdict.
#[derive(Debug, Clone, Serialize)]
pub struct PromiseReport {
    pub held: bool,
    pub violations: Vec<Violation>,
    /// 200s, 503/202s and requests never answered, over all users.
    pub acknowledged: u64,
    /// 200s whose order id the bench read, each looked up in the store
    /// (the rest are checked by count per user).
    pub acknowledged_with_id: u64,
    pub unknown: u64,
    pub unanswered: u64,
    pub stored_orders: u64,
    pub live_units: u64,
    pub stats: setup::ItemStats,
    /// Users of unknown outcome (202, 503) who asked `/result` at rest, and
    /// how many of them it told `success`.
    pub results_asked: u64,
    pub results_success: u64,
    /// Seconds from the end of the load to a store at rest.
    pub settle_s: f64,
}

impl PromiseReport {
    /// The promise check's lines of a report's table.
    pub(crate) fn write_lines(&self, stock: u64, out: &mut String) {
        let pr = self;
        let st = &pr.stats;
        let _ = writeln!(
            out,
            "\n  promise check (store at rest after {:.2}s): {}",
            pr.settle_s,
            if pr.held { "all held" } else { "BROKEN" }
        );
        let _ = writeln!(
            out,
            "    200s {} ({} order ids looked up) / stored orders {} (503/202 {}, unanswered {}); live units {} of {}",
            pr.acknowledged, pr.acknowledged_with_id, pr.stored_orders, pr.unknown, pr.unanswered, pr.live_units, stock
        );
        let _ = writeln!(
            out,
            "    stats: total {} = left {} + pending {} + paid {} (cancelled {}, expired {})",
            st.stock_total, st.stock_left, st.pending_payment, st.paid, st.cancelled, st.expired
        );
        if pr.results_asked > 0 {
            let _ = writeln!(
                out,
                "    /result at rest for the {} users of unknown outcome: {} success, each a live order in the store",
                pr.results_asked, pr.results_success
            );
        }
        for v in &pr.violations {
            let _ = writeln!(out, "    VIOLATION {v}");
        }
    }
}

/// Everything `seckill-bench sale` measured; its `--json` document.
#[derive(Debug, Clone, Serialize)]
pub struct SaleReport {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub argv: Vec<String>,
    pub target: String,
    /// The server was started by the bench, with these `--set`s.
    pub spawned: bool,
    pub server_settings: Vec<String>,
    /// What "durable" means for the store measured (contract §5).
    pub durability: String,
    pub item_id: u64,
    pub stock: u64,
    pub per_user_limit: u32,
    pub quantity: u32,
    pub users: usize,
    pub setup: SetupTimes,
    /// The humans' run (every user when there are no bots).
    pub run: Summary,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bots_run: Option<Summary>,
    /// Every answer of the sale by status, warm-up and bots included.
    pub status_all: BTreeMap<String, u64>,
    /// Milliseconds from the first buy to the end of the bucket in which the
    /// last unit was answered 200; `None` if the item did not sell out.
    pub sold_out_after_ms: Option<u64>,
    pub series: Series,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fairness: Option<Fairness>,
    pub promises: PromiseReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisCost>,
}

/// The Redis commands run during the buy (`--redis-stats`), by name, and per
/// unit sold and per answer other than 200 (an upper bound on what a refusal
/// costs: those commands include the sold units').
#[derive(Clone, Debug, Serialize)]
pub struct RedisCost {
    pub commands: crate::redis_stats::Calls,
    pub total: u64,
    pub per_sold_unit: f64,
    pub per_other_answer: f64,
}

/// What the contract's statuses mean for a buy (api.md §3), for the table.
pub fn meaning(status: &str) -> &'static str {
    match status {
        "200" => "success: order durable",
        "202" => "queued (async confirmation)",
        "400" => "invalid_input",
        "401" => "unauthenticated",
        "403" => "bad_path / not_started / ended",
        "404" => "no_such_item",
        "409" => "limit_reached",
        "410" => "sold_out",
        "429" => "rate_limited",
        "503" => "overloaded / unavailable (outcome unknown)",
        _ => "",
    }
}

/// Runs the whole sale; progress goes to stderr.
pub fn run_sale(config: &SaleConfig) -> Result<SaleReport, SaleError> {
    config.validate().map_err(SaleError::Config)?;
    let started = Instant::now();
    let (server, target, token) = serve(config, "sale", &[])?;
    let mut times = SetupTimes { server_s: round3(started.elapsed().as_secs_f64()), ..SetupTimes::default() };
    let report = sell(config, &target, &token, &mut times);
    let durability = durability(config, server.is_some());
    let settings = server.as_ref().map(|s| s.settings.clone()).unwrap_or_default();
    if let Some(server) = server {
        server.stop();
    }
    let mut report = report?;
    report.target = format!("http://{}", target.authority);
    report.spawned = config.target.is_none();
    report.server_settings = settings;
    report.durability = durability;
    Ok(report)
}

/// The server of a sale: `--target`, or one started here with the bench's
/// settings, then `defaults` (the caller's), then `--server-set`; with the
/// admin token to use.
pub(crate) fn serve(
    config: &SaleConfig,
    command: &str,
    defaults: &[&str],
) -> Result<(Option<SpawnedServer>, Target, String), SaleError> {
    if let Some(target) = &config.target {
        // validate() made sure a target comes with a token.
        return Ok((None, target.clone(), config.admin_token.clone().unwrap_or_default()));
    }
    let binary = spawn::find_binary(config.seckill.as_deref())?;
    let mut sets: Vec<String> = defaults.iter().map(|s| s.to_string()).collect();
    sets.extend(config.server_sets.iter().cloned());
    let server = SpawnedServer::start(&binary, &sets)?;
    eprintln!(
        "seckill-bench {command}: started {} at http://{} (pid {})",
        binary.display(),
        server.target.authority,
        server.pid()
    );
    let (target, token) = (server.target.clone(), server.admin_token.clone());
    Ok((Some(server), target, token))
}

/// What "durable" means for the store measured (contract §5), as far as the bench knows.
pub(crate) fn durability(config: &SaleConfig, spawned: bool) -> String {
    if spawned && !config.server_sets.iter().any(|s| s.starts_with("store.url=")) {
        "embedded store: SQLite WAL, synchronous=FULL (fsync before each 200)".to_string()
    } else {
        "as configured on the server (not known to the bench)".to_string()
    }
}

/// A sale open for buying: the admin client, the item as put on sale, and
/// every user (humans, then bots) with a session and a sale path.
pub(crate) struct OpenSale {
    pub admin: Admin,
    pub item: ItemSpec,
    pub buyers: Vec<Buyer>,
}

/// Steps 2 and 3: the item, the users, their captchas, the start, the paths.
pub(crate) fn open_sale(
    config: &SaleConfig,
    target: &Target,
    token: &str,
    times: &mut SetupTimes,
) -> Result<OpenSale, SaleError> {
    let mut admin = Admin::new(target, token)?;
    let now = setup::now_ms();
    // Put on sale in an hour while preparing; moved to `start_in` below.
    let id = config.item_id.unwrap_or(if config.target.is_some() { setup::now_ms() / 1000 % 1_000_000_000 } else { 1 });
    let mut item = ItemSpec {
        id,
        stock: config.stock,
        per_user_limit: config.per_user_limit,
        start_ms: now + 3_600_000,
        end_ms: now + 7_200_000,
    };
    // Refuse before touching an item that already sold: its orders would
    // count against this sale's promises (a missing item has none).
    match admin.stats(item.id) {
        Ok(before) if before.ordered() > 0 => {
            let error = format!("item {} already has orders: give a fresh --item", item.id);
            return Err(SaleError::Setup(SetupError::Json { what: "the item".into(), error }));
        }
        Ok(_) | Err(SetupError::Status { status: 404, .. }) => {}
        Err(e) => return Err(e.into()),
    }
    admin.put_item(&item)?;
    let step = Instant::now();
    let prefix = config.user_prefix.clone().unwrap_or_else(setup::fresh_prefix);
    let users = admin.bulk_users(&prefix, config.users + config.bots, PASSWORD)?;
    times.users_s = lap(step);
    let step = Instant::now();
    let answered = setup::draw_captchas(target, token, item.id, &users, config.setup_connections)?;
    times.captchas_s = lap(step);
    eprintln!(
        "seckill-bench sale: {} users with sessions ({:.2}s) and captchas ({:.2}s)",
        users.len(),
        times.users_s,
        times.captchas_s
    );

    // The start on the server's clock, which may differ from ours.
    let step = Instant::now();
    let server_now = item.start_ms as i64 - admin.ms_until_start(item.id)?;
    item.start_ms = (server_now + config.start_in.as_millis() as i64).max(0) as u64;
    admin.put_item(&item)?;
    wait_for_start(&mut admin, item.id)?;
    times.wait_s = lap(step);
    let step = Instant::now();
    let buyers = setup::trade_for_paths(target, item.id, &answered, config.setup_connections)?;
    times.paths_s = lap(step);
    eprintln!("seckill-bench sale: open; {} paths in {:.2}s; buying", buyers.len(), times.paths_s);
    Ok(OpenSale { admin, item, buyers })
}

/// The sale proper, against a running server.
fn sell(config: &SaleConfig, target: &Target, token: &str, times: &mut SetupTimes) -> Result<SaleReport, SaleError> {
    let OpenSale { mut admin, item, buyers } = open_sale(config, target, token, times)?;

    let (humans, bots) = buyers.split_at(config.users);
    let run_length = config.run.warmup + config.run.duration;
    let ledger = Arc::new(Ledger::new(buyers.len(), run_length));
    let mut human_run = config.run.clone();
    human_run.target = target.clone();
    let bot_run = (!bots.is_empty()).then(|| bot_run_config(config, &human_run));
    let redis_address = config.redis_stats.as_deref().map(crate::redis_stats::address).transpose();
    let redis_address = redis_address.map_err(|e| SaleError::Config(BenchError::Config(e)))?;
    let redis_read =
        |address: &str| crate::redis_stats::read(address).map_err(|e| SaleError::Config(BenchError::Config(e)));
    let redis_before = redis_address.as_deref().map(redis_read).transpose()?;
    let done = AtomicBool::new(false);
    let quantity = config.quantity;
    let (human_summary, bot_summary) = std::thread::scope(|scope| {
        if config.progress {
            let (ledger, done) = (&ledger, &done);
            scope.spawn(move || progress(ledger, run_length, done));
        }
        let bot_thread = bot_run.as_ref().map(|run| {
            let ledger = &ledger;
            scope.spawn(move || load(run, target, item.id, quantity, bots, ledger, humans.len()))
        });
        let humans_result = load(&human_run, target, item.id, quantity, humans, &ledger, 0);
        // A panic in a load thread is a bug: pass it on.
        let bots_result = bot_thread.map(|t| t.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
        done.store(true, Relaxed);
        (humans_result, bots_result)
    });
    let redis_after = redis_address.as_deref().map(redis_read).transpose()?;
    let run = human_summary.map_err(SaleError::Run)?;
    let bots_run = bot_summary.transpose().map_err(SaleError::Run)?;

    let terms = Terms { stock: config.stock, per_user_limit: u64::from(config.per_user_limit) };
    let settle = Instant::now();
    settle_store(&mut admin, item.id)?;
    let store = promises::read_store(&mut admin, item.id, terms, 5)?;
    let settle_s = round3(settle.elapsed().as_secs_f64());
    let mut observations = observe(&ledger, &buyers, config.quantity);
    ask_results(target, item.id, &buyers, config.setup_connections, &mut observations)?;
    let promises = promise_report(&observations, &store, settle_s);
    let fairness = bot_run.as_ref().map(|b| fairness(&store, humans, bots, &human_run, b));
    let series = series(&ledger);
    let status_all: BTreeMap<String, u64> =
        ledger.tally.counts().into_iter().map(|(s, n)| (s.to_string(), n)).collect();
    let redis = redis_before.zip(redis_after).map(|(before, after)| {
        redis_cost(crate::redis_stats::between(&before, &after), promises.live_units, &status_all)
    });
    let quantity = u64::from(config.quantity.unwrap_or(1));
    let units_to_sell = config.stock / quantity * quantity;
    Ok(SaleReport {
        argv: Vec::new(),
        target: String::new(),
        spawned: false,
        server_settings: Vec::new(),
        durability: String::new(),
        item_id: item.id,
        stock: config.stock,
        per_user_limit: config.per_user_limit,
        quantity: quantity as u32,
        users: config.users,
        setup: *times,
        run,
        bots_run,
        status_all,
        sold_out_after_ms: sold_out_after(&series, promises.live_units >= units_to_sell && units_to_sell > 0),
        series,
        fairness,
        promises,
        redis,
    })
}

fn redis_cost(commands: crate::redis_stats::Calls, sold_units: u64, status_all: &BTreeMap<String, u64>) -> RedisCost {
    let total: u64 = commands.values().sum();
    let others: u64 = status_all.iter().filter(|(status, _)| status.as_str() != "200").map(|(_, n)| n).sum();
    let per = |n: u64| if n == 0 { 0.0 } else { round3(total as f64 / n as f64) };
    RedisCost { commands, total, per_sold_unit: per(sold_units), per_other_answer: per(others) }
}

pub(crate) fn lap(since: Instant) -> f64 {
    round3(since.elapsed().as_secs_f64())
}

/// Waits until the item's sale is open on the server's clock.
fn wait_for_start(admin: &mut Admin, item_id: u64) -> Result<(), SetupError> {
    // At most `start_in` (≤ 1 h) plus a few polls: the wait is bounded.
    loop {
        let until = admin.ms_until_start(item_id)?;
        if until <= 0 {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(until as u64));
    }
}

/// Waits until two reads of the stats, [`SETTLE_INTERVAL`] apart, agree
/// (parked buys answered, the writer's queue empty), for at most [`SETTLE_TIMEOUT`].
pub(crate) fn settle_store(admin: &mut Admin, item_id: u64) -> Result<(), SetupError> {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    let mut last = admin.stats(item_id)?;
    while Instant::now() < deadline {
        std::thread::sleep(SETTLE_INTERVAL);
        let now = admin.stats(item_id)?;
        if now == last {
            return Ok(());
        }
        last = now;
    }
    eprintln!("seckill-bench sale: warning: the store did not come to rest in {SETTLE_TIMEOUT:?}");
    Ok(())
}

/// Loads the buys of `buyers` (ledger indices from `offset`) with `run`.
pub(crate) fn load(
    run: &RunConfig,
    target: &Target,
    item_id: u64,
    quantity: Option<u32>,
    buyers: &[Buyer],
    ledger: &Arc<Ledger>,
    offset: usize,
) -> Result<Summary, BenchError> {
    let requests = buy::buy_requests(target, item_id, quantity, buyers);
    let mut shown = run.clone();
    shown.target.path = "/api/seckill/{path}".to_string();
    shown.method = "POST".to_string();
    let threads = run.effective_threads();
    let tally = Arc::new(StatusTally::default());
    let mut summary = run_with(run, |thread| {
        let cycle = UserCycle::new(requests.clone(), tally.clone(), thread, threads, run.connections);
        Box::new(SaleSource {
            cycle,
            ledger: ledger.clone(),
            offset,
            inflight: Vec::new(),
            order_ids: Vec::new(),
            codes: Vec::new(),
        })
    })?;
    summary.params.url = shown.target.url();
    summary.params.method = shown.method;
    summary.params.body_bytes = setup::buy_body(item_id, quantity).len();
    Ok(summary)
}

/// The bots' load: their own connections, at `bot_rate_x` times a human's
/// per-user rate (the humans' total rate over their number), for each bot.
fn bot_run_config(config: &SaleConfig, human_run: &RunConfig) -> RunConfig {
    let mut run = human_run.clone();
    run.connections = config.bot_connections;
    let per_human = human_run.rate_per_s.unwrap_or(0.0) / config.users as f64;
    run.rate_per_s = Some(per_human * config.bot_rate_x * config.bots as f64);
    run
}

pub(crate) fn observe(ledger: &Ledger, buyers: &[Buyer], quantity: Option<u32>) -> Observations {
    let mut users: Vec<UserObservations> = (0..buyers.len()).map(|i| ledger.user(i)).collect();
    // The load threads have ended: the lock is free unless one panicked.
    if let Ok(ids) = ledger.order_ids.lock() {
        for (user, id) in ids.iter() {
            users[*user as usize].order_ids.push(id.to_string());
        }
    }
    let users = buyers.iter().zip(users).map(|(b, seen)| (b.user.id, seen)).collect();
    Observations { quantity: u64::from(quantity.unwrap_or(1)), users }
}

/// Users answered 202 or 503 learn their outcome as a client would: from
/// `/result`, asked once at rest, which the check holds to the store.
pub(crate) fn ask_results(
    target: &Target,
    item_id: u64,
    buyers: &[Buyer],
    connections: usize,
    observations: &mut Observations,
) -> Result<(), SaleError> {
    let unsure: Vec<setup::User> = buyers
        .iter()
        .filter(|b| observations.users.get(&b.user.id).is_some_and(|u| u.unknown > 0))
        .map(|b| b.user.clone())
        .collect();
    if unsure.is_empty() {
        return Ok(());
    }
    let results = setup::results(target, item_id, &unsure, connections)?;
    for (user, result) in unsure.iter().zip(results) {
        if let Some(seen) = observations.users.get_mut(&user.id) {
            seen.result = Some(result);
        }
    }
    Ok(())
}

pub(crate) fn promise_report(observations: &Observations, store: &StoreView, settle_s: f64) -> PromiseReport {
    let violations = promises::check(observations, store);
    let sum = |f: fn(&UserObservations) -> u64| observations.users.values().map(f).sum::<u64>();
    PromiseReport {
        held: violations.is_empty(),
        violations,
        acknowledged: sum(|u| u.acknowledged),
        acknowledged_with_id: sum(|u| u.order_ids.len() as u64),
        unknown: sum(|u| u.unknown),
        unanswered: sum(|u| u.unanswered),
        stored_orders: store.orders.len() as u64,
        live_units: store.orders.iter().filter(|o| o.is_live()).map(|o| o.quantity).sum(),
        stats: store.stats,
        results_asked: sum(|u| u64::from(u.result.is_some())),
        results_success: sum(|u| u64::from(u.result.as_ref().is_some_and(|r| r.status == "success"))),
        settle_s,
    }
}

fn fairness(
    store: &StoreView,
    humans: &[Buyer],
    bots: &[Buyer],
    human_run: &RunConfig,
    bot_run: &RunConfig,
) -> Fairness {
    let bot_ids: std::collections::HashSet<u64> = bots.iter().map(|b| b.user.id).collect();
    let (mut human_units, mut bot_units) = (0, 0);
    for order in store.orders.iter().filter(|o| o.is_live()) {
        if bot_ids.contains(&order.user_id) {
            bot_units += order.quantity;
        } else {
            human_units += order.quantity;
        }
    }
    let total = human_units + bot_units;
    let per_user = |run: &RunConfig, n: usize| round3(run.rate_per_s.unwrap_or(0.0) / n.max(1) as f64);
    Fairness {
        humans: humans.len(),
        bots: bots.len(),
        human_rate_per_user: per_user(human_run, humans.len()),
        bot_rate_per_user: per_user(bot_run, bots.len()),
        human_units,
        bot_units,
        human_share: if total == 0 { 0.0 } else { round3(human_units as f64 / total as f64) },
        human_share_of_users: round3(humans.len() as f64 / (humans.len() + bots.len()) as f64),
    }
}

/// The ledger's series, cut after the last bucket with an answer.
fn series(ledger: &Ledger) -> Series {
    let load = |v: &[AtomicU64]| v.iter().map(|n| n.load(Relaxed)).collect::<Vec<u64>>();
    let (mut answers, mut successes) = (load(&ledger.answers), load(&ledger.successes));
    let len = answers.iter().rposition(|&n| n > 0).map_or(0, |i| i + 1);
    answers.truncate(len);
    successes.truncate(len);
    Series { bucket_ms: ledger.bucket_ms, answers, successes }
}

/// The end of the bucket with the last 200, when the item sold out.
fn sold_out_after(series: &Series, sold_out: bool) -> Option<u64> {
    let last = series.successes.iter().rposition(|&n| n > 0)?;
    sold_out.then_some((last as u64 + 1) * series.bucket_ms)
}

/// Prints a progress line on stderr every second until `done`: in place on
/// a terminal, one line per second otherwise.
pub(crate) fn progress(ledger: &Ledger, run_length: Duration, done: &AtomicBool) {
    let terminal = std::io::stderr().is_terminal();
    let start = Instant::now();
    let mut last = (start, 0u64);
    while !done.load(Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        let now = Instant::now();
        if now - last.0 < Duration::from_secs(1) {
            continue;
        }
        let answers = ledger.answers();
        let rate = (answers - last.1) as f64 / (now - last.0).as_secs_f64();
        last = (now, answers);
        let counts: BTreeMap<String, u64> =
            ledger.tally.counts().into_iter().map(|(s, n)| (s.to_string(), n)).collect();
        let line = format!(
            "  {:>5.1}s / {:.0}s  {} answers, {} req/s  {}",
            start.elapsed().as_secs_f64(),
            run_length.as_secs_f64(),
            group(answers as f64),
            group(rate),
            statuses_line(&counts, answers)
        );
        if terminal {
            eprint!("\r{line:<110}");
        } else {
            eprintln!("{line}");
        }
    }
    if terminal {
        eprintln!();
    }
}

pub(crate) fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

impl SaleReport {
    /// Whether a promise broke (the command then exits 3).
    pub fn promises_failed(&self) -> bool {
        !self.promises.held
    }

    /// Whether a run failed as a whole (no connection, nothing answered).
    pub fn failed(&self) -> bool {
        self.run.failed() || self.bots_run.as_ref().is_some_and(Summary::failed)
    }

    pub fn to_json(&self) -> String {
        // Plain data with string keys: serialisation cannot fail.
        serde_json::to_string_pretty(self).expect("report serialises")
    }

    /// The human table: the sale, the load, answers by status, latency, the promises.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let r = &self.run;
        let p = &r.params;
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "seckill-bench sale  {}{}\n  item {}: stock {}, per-user limit {}, {} unit(s) per buy; {} users{}",
            self.target,
            if self.spawned { " (started by the bench)" } else { "" },
            self.item_id,
            group(self.stock as f64),
            self.per_user_limit,
            self.quantity,
            group(self.users as f64),
            self.fairness.map_or(String::new(), |f| format!(" + {} bots", f.bots)),
        );
        let _ = writeln!(out, "  durability: {}", self.durability);
        let s = &self.setup;
        let _ = writeln!(
            out,
            "  setup: server {:.2}s, users {:.2}s, captchas {:.2}s, wait for start {:.2}s, paths {:.2}s",
            s.server_s, s.users_s, s.captchas_s, s.wait_s, s.paths_s
        );
        let mode = p.rate_per_s.map_or("closed loop".to_string(), |rate| {
            format!("open loop at {} req/s (latency corrected for coordinated omission)", group(rate))
        });
        let _ = writeln!(
            out,
            "  {mode}, {} connections, {} threads, pipeline {}, {}s measured after {}s warm-up\n",
            p.connections, p.threads, p.pipeline, p.duration_s, p.warmup_s
        );
        let _ = writeln!(out, "  {:<16}{:>12}", "requests/s", group(r.requests_per_s));
        let ok = self.status_all.get("200").copied().unwrap_or(0);
        let sold = match self.sold_out_after_ms {
            Some(ms) => format!("; sold out after {ms} ms"),
            None => String::new(),
        };
        let _ = writeln!(out, "  {:<16}{:>12}   orders answered 200{sold}", "successes", group(ok as f64));
        let total: u64 = self.status_all.values().sum();
        let _ = writeln!(out, "  answers by status (whole sale, {} in all):", group(total as f64));
        for (status, n) in &self.status_all {
            let share = 100.0 * *n as f64 / total.max(1) as f64;
            let _ = writeln!(out, "    {status:<6}{:>12} {share:>6.2}%  {}", group(*n as f64), meaning(status));
        }
        if r.errors.total() > 0 {
            let _ = writeln!(out, "  transport errors: {}", errors_line(&r.errors));
        }
        if r.unsent > 0 {
            let _ = writeln!(
                out,
                "  unsent: {} requests were due but no connection was free at the end",
                group(r.unsent as f64)
            );
        }
        let _ = writeln!(
            out,
            "\n  {:<18}{:>9}{:>9}{:>9}{:>9}{:>9}{:>9}",
            "latency (ms)", "p50", "p90", "p99", "p99.9", "p99.99", "max"
        );
        let first = if r.service_time_us.is_some() { "corrected" } else { "service time" };
        let _ = writeln!(out, "{}", latency_ms_row(first, &r.latency_us));
        if let Some(service) = &r.service_time_us {
            let _ = writeln!(out, "{}", latency_ms_row("service time", service));
        }
        if let Some(b) = &self.bots_run {
            let _ = writeln!(out, "{}", latency_ms_row("bots, corrected", &b.latency_us));
        }
        if let Some(f) = &self.fairness {
            let _ = writeln!(
                out,
                "\n  fairness: {} humans at {:.2} req/s each, {} bots at {:.2} req/s each\n  \
                 units: humans {}, bots {}; humans' share {:.1}% (their share of the users: {:.1}%)",
                f.humans,
                f.human_rate_per_user,
                f.bots,
                f.bot_rate_per_user,
                f.human_units,
                f.bot_units,
                100.0 * f.human_share,
                100.0 * f.human_share_of_users
            );
        }
        self.promises.write_lines(self.stock, &mut out);
        if let Some(redis) = &self.redis {
            let by_name: Vec<String> = redis.commands.iter().map(|(name, n)| format!("{name} {n}")).collect();
            let _ = writeln!(
                out,
                "\n  Redis during the buy (INFO commandstats): {} commands ({}); {} per unit sold, at most {} per other answer",
                redis.total,
                if by_name.is_empty() { "none".to_string() } else { by_name.join(", ") },
                redis.per_sold_unit,
                redis.per_other_answer
            );
        }
        out
    }
}

pub(crate) fn latency_ms_row(name: &str, p: &crate::Percentiles) -> String {
    let ms = |us: f64| us / 1000.0;
    format!(
        "  {name:<18}{:>9.2}{:>9.2}{:>9.2}{:>9.2}{:>9.2}{:>9.2}",
        ms(p.p50),
        ms(p.p90),
        ms(p.p99),
        ms(p.p99_9),
        ms(p.p99_99),
        ms(p.max)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ledger_follows_each_user() {
        let ledger = Arc::new(Ledger::new(3, Duration::from_secs(1)));
        let target = Target::parse("http://h:1/").unwrap();
        let buyers: Vec<Buyer> = (0..2)
            .map(|i| Buyer { user: setup::User { id: 10 + i, token: format!("t{i}") }, path: format!("p{i}") })
            .collect();
        let requests = buy::buy_requests(&target, 1, None, &buyers);
        let tally = Arc::new(StatusTally::default());
        let cycle = UserCycle::new(requests, tally, 0, 1, 1);
        let mut source = SaleSource {
            cycle,
            ledger: ledger.clone(),
            offset: 1,
            inflight: Vec::new(),
            order_ids: Vec::new(),
            codes: Vec::new(),
        };
        let mut out = Vec::new();
        for _ in 0..5 {
            source.write_request(0, &mut out);
        }
        // Users (ledger 1, 2) alternate: 1 2 1 2 1.
        source.on_response_bytes(0, 200, Some(b"{\"status\":\"success\",\"order_id\":\"7\"}"));
        source.on_response(0, 503);
        source.on_lost(0, 2);
        source.write_request(0, &mut out);
        drop(source);
        let (u1, u2) = (ledger.user(1), ledger.user(2));
        assert_eq!((u1.requests, u1.acknowledged, u1.unanswered), (3, 1, 2), "{u1:?}");
        assert_eq!((u2.requests, u2.unknown, u2.unanswered), (3, 1, 2), "{u2:?}");
        assert_eq!(ledger.user(0), UserObservations::default());
        assert_eq!(ledger.answers(), 2);
        let s = series(&ledger);
        assert_eq!((s.answers.iter().sum::<u64>(), s.successes.iter().sum::<u64>()), (2, 1));
        let mut everyone = vec![Buyer { user: setup::User { id: 9, token: "t".into() }, path: "p".into() }];
        everyone.extend(buyers);
        let seen = observe(&ledger, &everyone, None);
        assert_eq!(seen.users[&10].order_ids, vec!["7"], "user 10 is ledger index 1");
        assert!(seen.users[&11].order_ids.is_empty() && seen.users[&9] == UserObservations::default());
    }

    #[test]
    fn order_ids_are_read_from_a_200() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 70\r\n\r\n{\"status\":\"success\",\"order_id\":\"18446744073709551615\",\"pay_deadline_ms\":1}";
        assert_eq!(order_id(ok), Some(u64::MAX));
        assert_eq!(order_id(b"HTTP/1.1 200 OK\r\n\r\n{\"order_id\":\"12"), None, "cut short");
        assert_eq!(order_id(b"{\"status\":\"queued\"}"), None);
    }

    #[test]
    fn sell_out_time_is_the_end_of_the_last_success_bucket() {
        let s = Series { bucket_ms: 10, answers: vec![5, 5, 5, 5], successes: vec![3, 1, 0, 0] };
        assert_eq!(sold_out_after(&s, true), Some(20));
        assert_eq!(sold_out_after(&s, false), None);
    }

    #[test]
    fn validation() {
        let mut c = SaleConfig::new();
        assert!(c.validate().is_ok());
        c.bots = 5;
        assert!(c.validate().unwrap_err().to_string().contains("--rate"));
        c.run.rate_per_s = Some(100.0);
        assert!(c.validate().is_ok());
        c.target = Some(Target::parse("http://h:1/").unwrap());
        assert!(c.validate().unwrap_err().to_string().contains("admin-token"));
    }

    #[test]
    fn bots_send_a_multiple_of_a_humans_rate() {
        let mut c = SaleConfig::new();
        c.users = 1000;
        c.bots = 10;
        c.bot_connections = 32;
        c.run.rate_per_s = Some(2000.0);
        let bots = bot_run_config(&c, &c.run);
        // 2 req/s per human; each bot 100 req/s.
        assert_eq!((bots.rate_per_s, bots.connections), (Some(1000.0), 32));
    }
}
