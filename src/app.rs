//! The state shared by every loop's handler and by the workers: the store,
//! the cache, the catalogue, rate limits, the worker pool, secrets, counters,
//! readiness and draining. Built once at start-up from the configuration.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use crossbeam_channel::{Receiver, Sender};
use seckill_config::Cidr;
use seckill_reactor::LoopStats;

use crate::auth::password::PasswordHasher;
use crate::auth::path::PathSigner;
use crate::auth::session::{RevocationLog, TokenHash};
use crate::cache::Cache;
use crate::catalogue::Catalogue;
use crate::limits::TokenBuckets;
use crate::metrics::Metrics;
use crate::sale::Sale;
use crate::store::Store;
use crate::workers::WorkerPool;

/// Settings the handlers read on every request, resolved from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub session_ttl_ms: u64,
    pub session_touch_interval_ms: u64,
    pub sessions_per_loop_max: usize,
    pub path_ttl_ms: u64,
    pub captcha_ttl_ms: u64,
    pub trusted_proxies: Vec<Cidr>,
}

/// Counters of the sale's front half, for `/metrics`.
#[derive(Debug, Default)]
pub struct Counters {
    pub registrations: AtomicU64,
    pub logins_ok: AtomicU64,
    pub logins_failed: AtomicU64,
    pub logouts: AtomicU64,
    pub captchas_issued: AtomicU64,
    pub captchas_right: AtomicU64,
    pub captchas_wrong: AtomicU64,
    pub captchas_expired: AtomicU64,
    pub paths_issued: AtomicU64,
    pub limited_user: AtomicU64,
    pub limited_ip: AtomicU64,
    pub workers_full: AtomicU64,
}

impl Counters {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Everything the server needs, shared. Built by `server::build_app`.
#[derive(Debug)]
pub struct App {
    pub settings: Settings,
    pub store: Arc<dyn Store>,
    pub cache: Arc<dyn Cache>,
    pub catalogue: Arc<Catalogue>,
    /// The buy: stock, order ids, holdings, request ids, the writer's queue.
    pub sale: Sale,
    pub revocations: RevocationLog,
    pub user_limits: TokenBuckets,
    pub ip_limits: TokenBuckets,
    /// argon2id work only (registration, login, bulk users): a login storm
    /// fills this pool, never the other.
    pub hash_pool: WorkerPool,
    /// Every other blocking job: store calls, captcha drawing, admin.
    pub workers: WorkerPool,
    pub hasher: PasswordHasher,
    /// A hash of a random password at the configured cost, verified when a
    /// login names an unknown user so that timing does not reveal it.
    pub dummy_password_hash: String,
    pub path_signer: PathSigner,
    pub admin_token: String,
    pub counters: Counters,
    pub touches: TouchQueue,
    pub lifecycle: Lifecycle,
}

/// Session expiries waiting to be written back, bounded: a full queue drops
/// a write-back, which the next use of the session retries.
#[derive(Debug)]
pub struct TouchQueue {
    tx: Sender<(TokenHash, u64)>,
    rx: Receiver<(TokenHash, u64)>,
}

impl TouchQueue {
    pub fn new(capacity: usize) -> Self {
        let (tx, rx) = crossbeam_channel::bounded(capacity);
        TouchQueue { tx, rx }
    }

    /// Queues a write-back unless the queue is full.
    pub fn offer(&self, hash: TokenHash, expires_ms: u64) {
        let _ = self.tx.try_send((hash, expires_ms));
    }

    /// Up to `max` queued write-backs.
    pub fn take(&self, max: usize) -> Vec<(TokenHash, u64)> {
        self.rx.try_iter().take(max).collect()
    }
}

/// Readiness, draining, and the counters the loops write.
#[derive(Debug)]
pub struct Lifecycle {
    draining: AtomicBool,
    /// The keeper's last check of the cache (a shared one can go away).
    cache_reachable: AtomicBool,
    /// The store answered the keeper's last ping.
    store_up: AtomicBool,
    metrics: Metrics,
    loop_stats: OnceLock<Arc<[LoopStats]>>,
}

/// How many revocations the log keeps before a lagging loop drops its cache.
pub const REVOCATIONS_KEPT: usize = 4096;

impl Lifecycle {
    pub fn new(loops: usize) -> Self {
        Lifecycle {
            draining: AtomicBool::new(false),
            cache_reachable: AtomicBool::new(true),
            // The store answered at start-up, or the server would not have started.
            store_up: AtomicBool::new(true),
            metrics: Metrics::new(loops),
            loop_stats: OnceLock::new(),
        }
    }
}

impl App {
    pub fn metrics(&self) -> &Metrics {
        &self.lifecycle.metrics
    }

    /// Called once, after the reactor has started.
    pub fn attach_loop_stats(&self, stats: Arc<[LoopStats]>) {
        // A second call would be a bug in start-up; the first value stays.
        let _ = self.lifecycle.loop_stats.set(stats);
    }

    pub fn loop_stats(&self) -> &[LoopStats] {
        self.lifecycle.loop_stats.get().map_or(&[], |s| s)
    }

    /// Shutdown has begun: /readyz answers 503 from now on.
    pub fn begin_drain(&self) {
        self.lifecycle.draining.store(true, Ordering::Release);
    }

    pub fn is_draining(&self) -> bool {
        self.lifecycle.draining.load(Ordering::Acquire)
    }

    /// Whether this instance can serve the sale: the catalogue and the sale
    /// were loaded before the listeners opened, so it is whether the store
    /// answered the keeper's last ping and the cache its last check (embedded
    /// ones always do). A load balancer then sends buyers elsewhere while a
    /// shared backend is down.
    pub fn is_ready(&self) -> bool {
        self.lifecycle.store_up.load(Ordering::Relaxed) && self.lifecycle.cache_reachable.load(Ordering::Relaxed)
    }

    pub fn set_cache_reachable(&self, reachable: bool) {
        self.lifecycle.cache_reachable.store(reachable, Ordering::Relaxed);
    }

    /// The keeper's ping of the store came back (or failed).
    pub fn set_store_up(&self, up: bool) {
        self.lifecycle.store_up.store(up, Ordering::Relaxed);
    }
}
