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

/// Everything the server needs, shared.
#[derive(Debug)]
pub struct App {
    pub settings: Settings,
    pub store: Arc<dyn Store>,
    pub cache: Arc<dyn Cache>,
    pub catalogue: Arc<Catalogue>,
    pub revocations: RevocationLog,
    pub user_limits: TokenBuckets,
    pub ip_limits: TokenBuckets,
    pub workers: WorkerPool,
    pub hasher: PasswordHasher,
    pub path_signer: PathSigner,
    pub admin_token: String,
    /// A hash of a random password at the configured cost, verified when a
    /// login names an unknown user so that timing does not reveal it.
    pub dummy_password_hash: String,
    pub counters: Counters,
    /// Session expiries to write back (bounded; a full queue drops the
    /// write-back, which the next use of the session retries).
    pub touches: Sender<(TokenHash, u64)>,
    touches_rx: Receiver<(TokenHash, u64)>,
    draining: AtomicBool,
    metrics: Metrics,
    loop_stats: OnceLock<Arc<[LoopStats]>>,
}

/// The parts of an [`App`] that start-up builds.
#[derive(Debug)]
pub struct Parts {
    pub settings: Settings,
    pub loops: usize,
    pub store: Arc<dyn Store>,
    pub cache: Arc<dyn Cache>,
    pub catalogue: Arc<Catalogue>,
    pub user_limits: TokenBuckets,
    pub ip_limits: TokenBuckets,
    pub workers: WorkerPool,
    pub hasher: PasswordHasher,
    pub path_signer: PathSigner,
    pub admin_token: String,
    pub touches_max: usize,
}

/// How many revocations the log keeps before a lagging loop drops its cache.
const REVOCATIONS_KEPT: usize = 4096;

impl App {
    pub fn new(parts: Parts) -> Self {
        let (touches, touches_rx) = crossbeam_channel::bounded(parts.touches_max);
        let dummy_password_hash = parts.hasher.hash(&crate::auth::secrets::random_token());
        App {
            settings: parts.settings,
            store: parts.store,
            cache: parts.cache,
            catalogue: parts.catalogue,
            revocations: RevocationLog::new(REVOCATIONS_KEPT),
            user_limits: parts.user_limits,
            ip_limits: parts.ip_limits,
            workers: parts.workers,
            hasher: parts.hasher,
            path_signer: parts.path_signer,
            dummy_password_hash,
            admin_token: parts.admin_token,
            counters: Counters::default(),
            touches,
            touches_rx,
            draining: AtomicBool::new(false),
            metrics: Metrics::new(parts.loops),
            loop_stats: OnceLock::new(),
        }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Called once, after the reactor has started.
    pub fn attach_loop_stats(&self, stats: Arc<[LoopStats]>) {
        // A second call would be a bug in start-up; the first value stays.
        let _ = self.loop_stats.set(stats);
    }

    pub fn loop_stats(&self) -> &[LoopStats] {
        self.loop_stats.get().map_or(&[], |s| s)
    }

    /// Shutdown has begun: /readyz answers 503 from now on.
    pub fn begin_drain(&self) {
        self.draining.store(true, Ordering::Release);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Whether this instance can serve the sale: the embedded store and cache
    /// are in process and the catalogue was loaded before the listeners
    /// opened, so a running embedded instance is ready.
    pub fn is_ready(&self) -> bool {
        true
    }

    /// Session expiries waiting to be written back.
    pub fn take_touches(&self, max: usize) -> Vec<(TokenHash, u64)> {
        self.touches_rx.try_iter().take(max).collect()
    }
}
