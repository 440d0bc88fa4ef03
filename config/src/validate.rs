//! Rules a single value's type cannot express: lower bounds, and keys that
//! must agree with each other. Each error names the first key of the rule
//! and where its value came from.

use crate::error::ConfigError;
use crate::layers::Layers;
use crate::schema::Config;

/// Keys for which 0 makes no sense: a zero timeout would expire everything
/// at once, a zero-sized queue or table would refuse all work.
const AT_LEAST_ONE: &[&str] = &[
    "server.shutdown_grace_ms",
    "http.head_bytes_max",
    "http.uri_bytes_max",
    "http.header_count_max",
    "http.body_bytes_max",
    "http.head_timeout_ms",
    "http.idle_timeout_ms",
    "http.connections_max",
    "http.pipeline_depth_max",
    "auth.session_ttl_ms",
    "auth.session_touch_interval_ms",
    "auth.argon2_iterations",
    "auth.argon2_parallelism",
    "auth.hash_queue_max",
    "server.work_queue_max",
    "store.pool_max",
    "store.commit_lanes",
    "cache.sessions_per_loop_max",
    "cache.sessions_instance_max",
    "cache.command_timeout_ms",
    "sale.payment_window_ms",
    "sale.path_ttl_ms",
    "sale.confirm_timeout_ms",
    "sale.order_queue_max",
    "sale.batch_orders_max",
    "sale.lease_ms",
    "sale.lease_chunk_max",
    "sale.stock_shards",
    "sale.pending_orders_max",
    "sale.request_ids_max",
    "sale.items_max",
    "captcha.ttl_ms",
    "captcha.outstanding_max",
    "limits.buckets_max",
];

/// More event loops or hash workers than this is a typo, not a machine.
const THREADS_MAX: usize = 1024;

struct Checker<'a> {
    layers: &'a Layers,
}

impl Checker<'_> {
    fn require(&self, path: &str, ok: bool, message: impl FnOnce() -> String) -> Result<(), ConfigError> {
        if ok {
            return Ok(());
        }
        Err(ConfigError::InvalidValue { key: path.to_owned(), source: self.layers.source_of(path), message: message() })
    }
}

pub(crate) fn validate(config: &Config, layers: &Layers) -> Result<(), ConfigError> {
    let check = Checker { layers };
    for path in AT_LEAST_ONE {
        let value = config.value(path).and_then(|v| v.as_integer());
        check.require(path, value.is_some_and(|n| n >= 1), || "must be at least 1".to_owned())?;
    }
    check_server(config, &check)?;
    check_http(config, &check)?;
    check_auth(config, &check)?;
    check_store(config, &check)?;
    check_cache(config, &check)?;
    check_sale(config, &check)?;
    check_limits(config, &check)
}

fn check_server(config: &Config, check: &Checker) -> Result<(), ConfigError> {
    let server = &config.server;
    check.require("server.threads", server.threads <= THREADS_MAX, || {
        format!("{} is more than {THREADS_MAX}", server.threads)
    })?;
    check.require("server.workers", server.workers <= THREADS_MAX, || {
        format!("{} is more than {THREADS_MAX}", server.workers)
    })?;
    check.require("server.drain_ms", server.drain_ms < server.shutdown_grace_ms, || {
        format!("must be less than server.shutdown_grace_ms ({})", server.shutdown_grace_ms)
    })?;
    check.require("server.data_dir", !server.data_dir.is_empty(), || "must not be empty".to_owned())
}

fn check_http(config: &Config, check: &Checker) -> Result<(), ConfigError> {
    let http = &config.http;
    // The request target is part of the head, so a URI limit at or above
    // the head limit could never be the one that triggers.
    check.require("http.uri_bytes_max", http.uri_bytes_max < http.head_bytes_max, || {
        format!("must be less than http.head_bytes_max ({})", http.head_bytes_max)
    })?;
    check.require("http.header_count_max", http.header_count_max <= 256, || {
        format!("{} is more than 256", http.header_count_max)
    })
}

fn check_auth(config: &Config, check: &Checker) -> Result<(), ConfigError> {
    let auth = &config.auth;
    if let Some(secret) = &auth.secret {
        // Shorter HMAC keys are guessable offline from one signed path.
        check.require("auth.secret", secret.expose().len() >= 16, || {
            format!("is {} bytes; it must be at least 16", secret.expose().len())
        })?;
    }
    // Loops learn of each other's extensions through the write-back, so it
    // must come well before the TTL runs out: at most half of it.
    check.require(
        "auth.session_touch_interval_ms",
        auth.session_touch_interval_ms <= auth.session_ttl_ms / 2,
        || format!("must be at most half of auth.session_ttl_ms ({})", auth.session_ttl_ms),
    )?;
    check.require("auth.client_salt", !auth.client_salt.is_empty(), || "must not be empty".to_owned())?;
    // Argon2 itself refuses less than 8 KiB per lane.
    let memory_min = 8 * u64::from(auth.argon2_parallelism);
    check.require("auth.argon2_memory_kib", u64::from(auth.argon2_memory_kib) >= memory_min, || {
        format!("must be at least 8 × auth.argon2_parallelism ({memory_min})")
    })?;
    check.require("auth.hash_workers", auth.hash_workers <= THREADS_MAX, || {
        format!("{} is more than {THREADS_MAX}", auth.hash_workers)
    })
}

/// More lanes than this would be more threads of the database on one batch
/// than any machine it runs on has cores.
const COMMIT_LANES_MAX: usize = 64;

fn check_store(config: &Config, check: &Checker) -> Result<(), ConfigError> {
    let store = &config.store;
    // Each lane holds a pooled connection for its whole transaction.
    check.require("store.commit_lanes", store.commit_lanes <= store.pool_max, || {
        format!("must be at most store.pool_max ({})", store.pool_max)
    })?;
    check.require("store.commit_lanes", store.commit_lanes <= COMMIT_LANES_MAX, || {
        format!("must be at most {COMMIT_LANES_MAX}")
    })
}

fn check_cache(config: &Config, check: &Checker) -> Result<(), ConfigError> {
    let prefix = &config.cache.key_prefix;
    check.require(
        "cache.key_prefix",
        !prefix.is_empty() && !prefix.chars().any(|c| c.is_whitespace() || c.is_control()),
        || format!("{prefix:?} must be non-empty and hold no spaces or control characters"),
    )
}

fn check_sale(config: &Config, check: &Checker) -> Result<(), ConfigError> {
    let sale = &config.sale;
    check.require("sale.batch_orders_max", sale.batch_orders_max <= sale.order_queue_max, || {
        format!("must be at most sale.order_queue_max ({})", sale.order_queue_max)
    })?;
    // A gather window as long as the confirm timeout would time out every
    // parked request of a batch before it is written.
    check.require("sale.batch_wait_ms", sale.batch_wait_ms < sale.confirm_timeout_ms, || {
        format!("must be less than sale.confirm_timeout_ms ({})", sale.confirm_timeout_ms)
    })?;
    check.require("sale.pending_orders_max", sale.pending_orders_max <= 1 << 31, || "must be at most 2^31".into())?;
    // Nice values run from -20 to 19.
    check.require("sale.writer_priority_boost", sale.writer_priority_boost <= 20, || "must be at most 20".into())?;
    check.require("sale.stock_shards", sale.stock_shards <= 64, || "must be at most 64".into())?;
    check.require("sale.items_max", sale.items_max <= 1 << 24, || "must be at most 2^24".into())
}

fn check_limits(config: &Config, check: &Checker) -> Result<(), ConfigError> {
    let limits = &config.limits;
    // A bucket that holds no token refuses everything: with a rate set,
    // that is never what was meant (a rate of 0 is how to turn it off).
    check.require("limits.per_user_burst", limits.per_user_rps == 0 || limits.per_user_burst >= 1, || {
        "must be at least 1 when limits.per_user_rps is not 0".to_owned()
    })?;
    check.require("limits.per_ip_burst", limits.per_ip_rps == 0 || limits.per_ip_burst >= 1, || {
        "must be at least 1 when limits.per_ip_rps is not 0".to_owned()
    })
}
