//! Start-up and graceful shutdown of the whole server: builds the reactor's
//! settings from the configuration, starts the loops, prints the `listening
//! on` line, and on SIGTERM/SIGINT drains per contract §1.

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use seckill_config::{CacheUrl, Config, ConfirmMode, ReactorMode, StockStrategy, StoreUrl};
use seckill_protocol::Limits;
use seckill_reactor::{Completer, Design, Reactor, ReactorConfig};

use crate::app::{App, Counters, Lifecycle, REVOCATIONS_KEPT, Settings, TouchQueue};
use crate::auth::password::PasswordHasher;
use crate::auth::path::PathSigner;
use crate::auth::secrets;
use crate::auth::session::{RevocationLog, Session, TokenHash};
use crate::cache::Cache;
use crate::cache::events::{self, Subscription};
use crate::cache::memory::MemoryCache;
use crate::cache::redis::{RedisCache, RedisOptions};
use crate::catalogue::Catalogue;
use crate::expiry::{Entry, ExpiryDriver, ExpiryWheel, WheelConfig};
use crate::handler::{Completion, LoopHandler};
use crate::limits::TokenBuckets;
use crate::log;
use crate::log::Level;
use crate::orders;
use crate::orders::writer::WriterSettings;
use crate::pages::Pages;
use crate::sale::confirm::Confirmer;
use crate::sale::{Admission, Sale, SaleSettings, Scripted};
use crate::stock::{
    EmbeddedSource, EvalshaSource, LeaseSettings, LeasedSource, OrderIds, Seeding, SharedCounter, SharedPool, Stock,
    StockSource,
};
use crate::store::{MysqlOptions, MysqlStore, SqliteStore, Store, StoreError};
use crate::workers::WorkerPool;

/// The settings of the server shell, resolved from the configuration.
#[derive(Clone, Debug)]
pub struct ServerSettings {
    pub reactor: ReactorConfig,
    pub drain: Duration,
    pub shutdown_grace: Duration,
}

impl ServerSettings {
    /// The one place where configuration keys become the reactor's and the
    /// protocol's types.
    pub fn from_config(config: &Config) -> Self {
        let http = &config.http;
        let reactor = ReactorConfig {
            listen: config.server.listen,
            threads: config.server.event_loops(),
            design: match config.server.reactor {
                ReactorMode::ReusePort => Design::ReusePort,
                ReactorMode::Acceptor => Design::Acceptor,
            },
            limits: Limits {
                head_bytes_max: http.head_bytes_max,
                uri_bytes_max: http.uri_bytes_max,
                header_count_max: http.header_count_max,
                body_bytes_max: http.body_bytes_max,
            },
            head_timeout: Duration::from_millis(http.head_timeout_ms),
            idle_timeout: Duration::from_millis(http.idle_timeout_ms),
            connections_max: http.connections_max,
            pipeline_depth_max: http.pipeline_depth_max,
            pin_cpus: config.server.pin_cpus,
        };
        ServerSettings {
            reactor,
            drain: Duration::from_millis(config.server.drain_ms),
            shutdown_grace: Duration::from_millis(config.server.shutdown_grace_ms),
        }
    }
}

/// Why the server could not start. Start-up errors are reported and end the
/// process; nothing else handles them.
#[derive(Debug)]
pub enum StartError {
    Io(&'static str, std::io::Error),
    Store(StoreError),
    /// A configuration the running code does not support (yet).
    Unsupported(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Io(what, e) => write!(f, "{what}: {e}"),
            StartError::Store(e) => write!(f, "store: {e}"),
            StartError::Unsupported(what) => f.write_str(what),
        }
    }
}

impl From<StoreError> for StartError {
    fn from(e: StoreError) -> Self {
        StartError::Store(e)
    }
}

/// A started server.
#[derive(Debug)]
pub struct Running {
    app: Arc<App>,
    reactor: Reactor<Completion>,
    settings: ServerSettings,
    writer: Writer,
    refiller: Option<Refiller>,
}

/// How many session write-backs may wait for the keeper.
const TOUCHES_MAX: usize = 65_536;
/// How often an idle order writer looks at its stop flag.
const WRITER_IDLE_CHECK: Duration = Duration::from_millis(100);
/// How often the keeper writes back session expiries and prunes.
const KEEPER_INTERVAL: Duration = Duration::from_millis(500);
/// How often the keeper counts each item's orders by status for `/metrics`.
const STORE_STATS_INTERVAL: Duration = Duration::from_secs(5);
/// How often expired sessions are deleted from the store.
const STORE_PRUNE_INTERVAL: Duration = Duration::from_secs(60);

/// Opens the store and the cache, loads the catalogue, the live sessions
/// and the sale's state, and assembles the shared state. Also returns the
/// expiry wheel, rebuilt from the pending orders, for the writer thread.
pub fn build_app(config: &Config) -> Result<(App, ExpiryDriver, Subscription), StartError> {
    let data_dir = std::path::PathBuf::from(&config.server.data_dir);
    let store: Arc<dyn Store> = match &config.store.url {
        StoreUrl::Sqlite { path } => Arc::new(SqliteStore::open(path)?),
        StoreUrl::Mysql { url } => {
            let mut options = MysqlOptions::new(url, config.store.pool_max);
            options.command_timeout = Duration::from_millis(config.store.command_timeout_ms.max(1));
            options.commit_lanes = config.store.commit_lanes;
            Arc::new(MysqlStore::open(&options)?)
        }
    };
    for (setting, value) in store.durability_settings()? {
        // Contract §5: a 200 promises an fsync'd order; say loudly when the
        // database's settings break that promise (the operator's choice).
        let level = if setting == "durable_commits" && value != "yes" { Level::Warn } else { Level::Info };
        log!(level, "store durability", setting = setting, value = value);
    }
    // Shared stock needs a shared cache to hold it and a shared store to
    // arbitrate (issue 7): leased allotments from a pool, or (evalsha) one
    // counter per item asked by every buy; otherwise embedded.
    let mut shared_stock: Option<SharedStock> = None;
    let cache: Arc<dyn Cache> = match &config.cache.url {
        CacheUrl::Memory => Arc::new(MemoryCache::new(config.captcha.outstanding_max)),
        url @ (CacheUrl::Redis { .. } | CacheUrl::RedisCluster { .. }) => {
            let options = RedisOptions {
                url: url.clone(),
                key_prefix: config.cache.key_prefix.clone(),
                command_timeout: Duration::from_millis(config.cache.command_timeout_ms),
                sessions_instance_max: config.cache.sessions_instance_max,
                session_ttl: Duration::from_millis(config.auth.session_ttl_ms),
            };
            let cache = RedisCache::open(&options).map_err(|e| StartError::Unsupported(e.to_string()))?;
            log!(Level::Info, "cache", url = cache.shown(), key_prefix = config.cache.key_prefix);
            let cache = Arc::new(cache);
            if matches!(config.store.url, StoreUrl::Mysql { .. }) {
                shared_stock = Some(match config.sale.stock_strategy {
                    StockStrategy::Lease => SharedStock::Pool(cache.clone()),
                    StockStrategy::Evalsha => SharedStock::Counter(cache.clone()),
                });
            }
            cache
        }
    };
    // Before anything is loaded: a change another instance makes meanwhile
    // is then heard, not missed.
    let subscription = events::subscribe(&*cache).map_err(|e| StartError::Unsupported(e.to_string()))?;
    let (admin_token, origin) =
        secrets::configured_or_kept(&data_dir, "admin_token", config.auth.admin_token.as_ref().map(|s| s.expose()))
            .map_err(|e| StartError::Io("admin token in the data directory", e))?;
    if origin != secrets::Origin::Configured {
        // Contract §1: the operator (or a test harness) reads it here.
        eprintln!("admin token: {admin_token}");
    }
    let (secret, _) = secrets::configured_or_kept(&data_dir, "secret", config.auth.secret.as_ref().map(|s| s.expose()))
        .map_err(|e| StartError::Io("secret in the data directory", e))?;
    let auth = &config.auth;
    let hasher = PasswordHasher::new(auth.argon2_memory_kib, auth.argon2_iterations, auth.argon2_parallelism)
        .map_err(|e| StartError::Unsupported(format!("auth.argon2_*: {}", e.0)))?;
    let now_ms = crate::clock::now_ms();
    let (sale, driver) = build_sale(config, &store, shared_stock, now_ms)?;
    let records = store.items()?.into_iter().map(|record| {
        let left = sale.left(record.id);
        (record, left)
    });
    let catalogue = Arc::new(Catalogue::new(Pages::new(&auth.client_salt), records));
    let live: Vec<(TokenHash, Session)> = store
        .live_sessions(now_ms)?
        .into_iter()
        .map(|r| (r.token_hash, Session { user_id: r.user_id, expires_ms: r.expires_ms }))
        .collect();
    cache.put_sessions(&live).map_err(|e| StartError::Unsupported(e.to_string()))?;
    log!(Level::Info, "loaded", items = catalogue.all().len(), sessions = live.len());
    let limits = &config.limits;
    let settings = Settings {
        session_ttl_ms: auth.session_ttl_ms,
        session_touch_interval_ms: auth.session_touch_interval_ms,
        sessions_per_loop_max: config.cache.sessions_per_loop_max,
        path_ttl_ms: config.sale.path_ttl_ms,
        captcha_ttl_ms: config.captcha.ttl_ms,
        trusted_proxies: config.server.trusted_proxies.clone(),
    };
    let hash_workers = auth.hash_worker_count();
    let app = App {
        settings,
        store,
        cache,
        catalogue,
        sale,
        revocations: RevocationLog::new(REVOCATIONS_KEPT),
        user_limits: TokenBuckets::new(
            clamp_u32(limits.per_user_rps),
            clamp_u32(limits.per_user_burst),
            limits.buckets_max,
        ),
        ip_limits: TokenBuckets::new(clamp_u32(limits.per_ip_rps), clamp_u32(limits.per_ip_burst), limits.buckets_max),
        hash_pool: WorkerPool::new("hash", hash_workers, auth.hash_queue_max),
        workers: WorkerPool::new("worker", config.server.worker_count(), config.server.work_queue_max),
        dummy_password_hash: hasher.hash(&secrets::random_token()),
        hasher,
        path_signer: PathSigner::new(&secrets::derive_key(&secret, "sale path")),
        admin_token,
        counters: Counters::default(),
        touches: TouchQueue::new(TOUCHES_MAX),
        lifecycle: Lifecycle::new(config.server.event_loops()),
    };
    Ok((app, driver, subscription))
}

/// The sale's state rebuilt from the store, so that a restart (clean or
/// `kill -9`) loses no acknowledged order and never oversells afterwards:
/// each item's units on sale are its stock less its pending and paid
/// orders, holdings are the live orders' units, request ids are the
/// orders' own, pending orders are back in the expiry wheel (those past
/// their deadline expire at once), and a fresh instance id keeps new order
/// ids apart from every earlier run's.
fn build_sale(
    config: &Config,
    store: &Arc<dyn Store>,
    shared_stock: Option<SharedStock>,
    now_ms: u64,
) -> Result<(Sale, ExpiryDriver), StartError> {
    let s = &config.sale;
    let instance_id = store.allocate_instance_id(now_ms)?;
    let mut scripted = None;
    let source: Arc<dyn StockSource> = match shared_stock {
        None => Arc::new(EmbeddedSource::new(s.items_max)),
        Some(SharedStock::Counter(counter)) => {
            let store = store.clone();
            let stock_left = Box::new(move |item| store.item_stats(item).ok().map(|stats| stats.stock_left));
            let source = Arc::new(EvalshaSource::new(counter, stock_left));
            log!(Level::Info, "stock counted in the shared cache: one script per buy (evalsha)");
            scripted = Some(Scripted::new(source.clone()));
            source
        }
        Some(SharedStock::Pool(pool)) => {
            let settings = LeaseSettings { shards: s.stock_shards, chunk_max: s.lease_chunk_max, lease_ms: s.lease_ms };
            let store = store.clone();
            // A rebuild starts a new generation of the pool in the store.
            let pool_basis = Box::new(move |item| store.renew_pool_epoch(item).ok());
            let data_dir = std::path::Path::new(&config.server.data_dir);
            let (lease, _) = secrets::configured_or_kept(data_dir, "stock_lease_id", None)
                .map_err(|e| StartError::Io("stock lease id in the data directory", e))?;
            log!(Level::Info, "stock leased from the shared pool", shards = s.stock_shards, lease_ms = s.lease_ms);
            Arc::new(LeasedSource::new(pool, lease, settings, pool_basis))
        }
    };
    let stock = Stock::new(s.items_max, source);
    let order_ids =
        OrderIds::new(instance_id, now_ms).map_err(|e| StartError::Unsupported(format!("order ids: {e:?}")))?;
    let settings = SaleSettings {
        confirm_async: s.confirm == ConfirmMode::Async,
        confirm_timeout: Duration::from_millis(s.confirm_timeout_ms),
        payment_window_ms: s.payment_window_ms,
        pending_orders_max: u64::from(s.pending_orders_max),
    };
    // Admitted buys must commit well inside the confirm timeout, or they time
    // out (503, outcome unknown) and the writer's work buys no 200s.
    let queue_wait = s.order_queue_wait_max_ms.min(s.confirm_timeout_ms / 2);
    let admission = Admission::new(Duration::from_millis(queue_wait), s.batch_orders_max, s.order_queue_max);
    let mut sale = Sale::new(settings, stock, order_ids, admission, s.order_queue_max, s.request_ids_max);
    sale.scripted = scripted;
    for row in store.stock_snapshot()? {
        // A shared pool that exists is the truth: instances starting
        // together seed it once between them.
        sale.restock(row.item_id, row.stock_total.saturating_sub(row.sold_units), Seeding::IfAbsent)
            .map_err(|e| StartError::Unsupported(format!("stock of item {}: {e}", row.item_id)))?;
    }
    for holding in store.holdings_snapshot()? {
        sale.holdings.load(holding.user_id, holding.item_id, holding.units);
    }
    for order in store.orders_with_request_ids(s.request_ids_max)? {
        if let Some(request_id) = &order.request_id {
            sale.requests.done(order.user_id, request_id, &order);
        }
    }
    let pending = store.pending_orders()?;
    let entries = pending.iter().map(|p| Entry {
        order_id: p.order_id,
        item_id: p.item_id,
        user_id: p.user_id,
        quantity: p.quantity,
        deadline_ms: p.pay_deadline_ms,
    });
    let wheel_config = WheelConfig { pending_max: s.pending_orders_max, slot_ms: WheelConfig::SLOT_MS_DEFAULT };
    let wheel = ExpiryWheel::rebuild(wheel_config, entries, now_ms).map_err(|e| {
        StartError::Unsupported(format!(
            "sale.pending_orders_max ({}) is below the {} pending orders in the store: {e:?}",
            s.pending_orders_max,
            pending.len()
        ))
    })?;
    sale.count_pending(pending.len() as u64);
    log!(Level::Info, "sale loaded", instance_id = instance_id, pending_orders = pending.len());
    Ok((sale, ExpiryDriver::new(wheel, s.batch_orders_max)))
}

/// Where the stock of instances that share it lives (issue 7).
enum SharedStock {
    /// Leased allotments from a sharded pool.
    Pool(Arc<dyn SharedPool>),
    /// One counter per item, one script per buy (the evalsha strategy).
    Counter(Arc<dyn SharedCounter>),
}

fn clamp_u32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// Starts the loops, the workers and the keeper, and prints `listening on
/// http://HOST:PORT` on stdout.
pub fn start(config: &Config) -> Result<Running, StartError> {
    let settings = ServerSettings::from_config(config);
    std::fs::create_dir_all(&config.server.data_dir).map_err(|e| StartError::Io("data directory", e))?;
    let (app, driver, subscription) = build_app(config)?;
    let app = Arc::new(app);
    let handler_app = app.clone();
    let reactor =
        Reactor::start(settings.reactor.clone(), move |loop_id| LoopHandler::new(loop_id, handler_app.clone()))
            .map_err(|e| StartError::Io("listen", e))?;
    app.attach_loop_stats(reactor.stats());
    if let Some(scripted) = &app.sale.scripted {
        scripted.attach(reactor.completer());
    }
    let writer = start_writer(
        app.clone(),
        reactor.completer(),
        driver,
        writer_settings(config),
        config.sale.writer_priority_boost,
    )
    .map_err(|e| StartError::Io("order writer thread", e))?;
    app.hash_pool.start(&reactor.completer()).map_err(|e| StartError::Io("hash threads", e))?;
    app.workers.start(&reactor.completer()).map_err(|e| StartError::Io("worker threads", e))?;
    start_keeper(app.clone()).map_err(|e| StartError::Io("keeper thread", e))?;
    let refiller = start_refiller(app.clone(), config).map_err(|e| StartError::Io("refiller thread", e))?;
    events::start(app.clone(), subscription).map_err(|e| StartError::Io("cache events thread", e))?;
    let addr = reactor.local_addr();
    crate::log!(
        Level::Info,
        "started",
        addr = addr,
        threads = settings.reactor.threads,
        reactor = design_name(settings.reactor.design)
    );
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on http://{addr}").map_err(|e| StartError::Io("stdout", e))?;
    stdout.flush().map_err(|e| StartError::Io("stdout", e))?;
    Ok(Running { app, reactor, settings, writer, refiller })
}

fn writer_settings(config: &Config) -> WriterSettings {
    WriterSettings {
        batch_orders_max: config.sale.batch_orders_max,
        batch_wait: Duration::from_millis(config.sale.batch_wait_ms),
        idle_check: WRITER_IDLE_CHECK,
        retry: Duration::from_millis(config.sale.writer_retry_ms.max(1)),
    }
}

/// The order writer: group commit of the queued orders, completions of the
/// parked requests, and the payment window's expiries. Returns when told
/// to stop and the queue is empty.
fn start_writer(
    app: Arc<App>,
    completer: Completer<Completion>,
    driver: ExpiryDriver,
    settings: WriterSettings,
    boost: u32,
) -> std::io::Result<Writer> {
    let stop = Arc::new(AtomicBool::new(false));
    let (queue, ops) = app.sale.take_receivers().ok_or_else(|| std::io::Error::other("the writer started twice"))?;
    let thread_stop = stop.clone();
    let thread = std::thread::Builder::new().name("order-writer".into()).spawn(move || {
        raise_priority(boost);
        let mut sink = Confirmer::new(app.clone(), completer, driver, ops);
        orders::writer::run(&*app.store, &queue, settings, &mut sink, &app.sale.writer_stats, &thread_stop);
    })?;
    Ok(Writer { stop, thread })
}

/// Lowers the calling thread's nice value by `boost`: under overload the
/// loops answering the excess (each a 429 or 503, cheap but not free) must
/// not starve the one thread that turns admitted buys into 200s. Best
/// effort: without the privilege, the writer runs at the usual priority.
fn raise_priority(boost: u32) {
    if boost == 0 {
        return;
    }
    // SAFETY: gettid and setpriority take no pointers; the id is this thread's own.
    let result = unsafe {
        let tid = libc::gettid() as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, -(boost.min(20) as libc::c_int))
    };
    if result != 0 {
        let error = std::io::Error::last_os_error();
        log!(Level::Warn, "the order writer's priority was not raised", boost = boost, error = error);
    }
}

/// The running order writer.
#[derive(Debug)]
struct Writer {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

/// How often the refiller serves the refills the loops asked for: a loop
/// that finds its allotment short answers 503 and flags the item, so this
/// is about how long such an item waits for its next chunk.
const REFILL_ROUND: Duration = Duration::from_millis(5);

/// The refiller (leased stock only): every round, refills the items the
/// loops flagged; every third of a lease, renews every lease. Loops never
/// call the stock source; this thread does it for them, at its own pace.
fn start_refiller(app: Arc<App>, config: &Config) -> std::io::Result<Option<Refiller>> {
    let leased = matches!(config.store.url, StoreUrl::Mysql { .. })
        && !matches!(config.cache.url, CacheUrl::Memory)
        && config.sale.stock_strategy == StockStrategy::Lease;
    if !leased {
        return Ok(None);
    }
    let renew_every = Duration::from_millis((config.sale.lease_ms / 3).max(1));
    let stop = Arc::new(AtomicBool::new(false));
    let thread_stop = stop.clone();
    let thread = std::thread::Builder::new().name("refiller".into()).spawn(move || {
        let stock = &app.sale.stock;
        let mut last_renewal = Instant::now();
        while !thread_stop.load(Ordering::Relaxed) {
            std::thread::sleep(REFILL_ROUND);
            stock.refill_wanted();
            if last_renewal.elapsed() >= renew_every {
                last_renewal = Instant::now();
                stock.renew();
            }
        }
    })?;
    Ok(Some(Refiller { stop, thread }))
}

/// The refiller thread and its stop flag.
#[derive(Debug)]
struct Refiller {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

/// The keeper: writes back session expiries in batches, prunes what
/// expired, and counts orders by status for `/metrics`, at its own pace
/// rather than per request.
fn start_keeper(app: Arc<App>) -> std::io::Result<()> {
    std::thread::Builder::new().name("keeper".into()).spawn(move || {
        let mut last_store_prune = Instant::now();
        let mut last_stats = Instant::now() - STORE_STATS_INTERVAL;
        loop {
            std::thread::sleep(KEEPER_INTERVAL);
            // /readyz follows the store, and the log says when it changes.
            let up = match app.store.ping() {
                Ok(()) => true,
                Err(error) => {
                    if app.is_ready() {
                        log!(Level::Warn, "store unreachable", error = error);
                    }
                    false
                }
            };
            if up && !app.is_ready() {
                log!(Level::Info, "store reachable again");
            }
            app.set_store_up(up);
            let touches = app.touches.take(TOUCHES_MAX);
            if !touches.is_empty() {
                let _ = app.cache.touch_sessions(&touches);
                if let Err(e) = app.store.touch_sessions(&touches) {
                    log!(Level::Warn, "session write-back failed", error = e);
                }
            }
            let now_ms = crate::clock::now_ms();
            app.cache.prune(now_ms);
            app.set_cache_reachable(app.cache.check().is_ok());
            if last_stats.elapsed() >= STORE_STATS_INTERVAL {
                last_stats = Instant::now();
                let stats: Vec<_> =
                    app.catalogue.all().iter().filter_map(|item| app.store.item_stats(item.spec.id).ok()).collect();
                *app.sale.store_stats.lock() = stats;
            }
            if last_store_prune.elapsed() >= STORE_PRUNE_INTERVAL {
                last_store_prune = Instant::now();
                if let Err(e) = app.store.delete_expired_sessions(now_ms) {
                    log!(Level::Warn, "session pruning failed", error = e);
                }
            }
        }
    })?;
    Ok(())
}

/// Joins `thread` if it ends by `deadline`; false if it did not.
fn join_until(thread: std::thread::JoinHandle<()>, deadline: Instant) -> bool {
    while !thread.is_finished() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    thread.join().is_ok()
}

fn design_name(design: Design) -> &'static str {
    match design {
        Design::ReusePort => "reuseport",
        Design::Acceptor => "acceptor",
    }
}

impl Running {
    pub fn local_addr(&self) -> SocketAddr {
        self.reactor.local_addr()
    }

    /// Blocks until SIGTERM or SIGINT, then shuts down gracefully: /readyz
    /// turns 503 at once, listeners close after `drain`, in-flight requests
    /// finish. A second signal exits at once with status 1. Returns true if
    /// everything finished within `shutdown_grace`.
    pub fn run_until_signal(self) -> std::io::Result<bool> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])?;
        let first = signals.forever().next();
        // A second signal means "now": exit at once, as a crash would. That is
        // safe because nothing is acknowledged before it is durable.
        std::thread::spawn(move || {
            if signals.forever().next().is_some() {
                log!(Level::Warn, "second signal: exiting without waiting");
                std::process::exit(1);
            }
        });
        let deadline = Instant::now() + self.settings.shutdown_grace;
        log!(Level::Info, "shutdown begins", signal = first.unwrap_or(0), drain_ms = self.settings.drain.as_millis());
        self.app.begin_drain();
        self.reactor.shutdown(self.settings.drain);
        let reactor = self.reactor;
        // The loops finish their parked requests, which the writer answers;
        // then the writer writes whatever is still queued (async orders) and stops.
        let mut finished = reactor.join(deadline);
        self.writer.stop.store(true, Ordering::Relaxed);
        finished &= join_until(self.writer.thread, deadline);
        if let Some(refiller) = self.refiller {
            refiller.stop.store(true, Ordering::Relaxed);
            finished &= join_until(refiller.thread, deadline);
            // Every order is written: what is left here goes back to the
            // shared pool now rather than when the leases lapse.
            self.app.sale.stock.release_all();
        }
        if finished {
            log!(Level::Info, "shutdown complete");
        } else {
            log!(Level::Warn, "shutdown grace expired with requests in flight");
        }
        Ok(finished)
    }
}
