//! The key table: every section, key, type, default and description, in one
//! place. The `schema!` macro turns it into the typed section structs, the
//! [`KEYS`] table that drives environment variables, `--set`, defaults,
//! `--print-config` and the example file, and the code that fills a struct
//! from the merged layers. Adding a key is one entry here.

use std::net::SocketAddr;

use crate::cidr::Cidr;
use crate::error::ConfigError;
use crate::layers::Layers;
use crate::url::{CacheUrl, StoreUrl};
use crate::value::{ConfigValue, Kind, Secret, text_enum};

/// One configuration key.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// `server`
    pub section: &'static str,
    /// `listen`
    pub name: &'static str,
    /// `server.listen`
    pub path: &'static str,
    /// How it is written as text (environment, `--set`).
    pub kind: Kind,
    /// The Rust type, for documentation.
    pub type_name: &'static str,
    /// The default as text (as an environment variable would hold it), or
    /// `None` for optional keys with no default.
    pub default: Option<&'static str>,
    /// What it is and its unit, one line.
    pub doc: &'static str,
}

impl Key {
    /// `SECKILL_SERVER_LISTEN`
    pub fn env_var(&self) -> String {
        format!("SECKILL_{}_{}", self.section, self.name).to_ascii_uppercase()
    }

    /// Looks a key up by `section.key`.
    pub fn find(path: &str) -> Option<&'static Key> {
        KEYS.iter().find(|key| key.path == path)
    }

    /// The `section.key` nearest to a misspelt one, if it is a plausible typo.
    pub(crate) fn nearest_path(typo: &str) -> Option<String> {
        nearest(typo, KEYS.iter().map(|key| key.path.to_owned()))
    }

    /// The `SECKILL_*` variable nearest to a misspelt one, if it is a plausible typo.
    pub(crate) fn nearest_env_var(typo: &str) -> Option<String> {
        nearest(typo, KEYS.iter().map(Key::env_var))
    }
}

/// The section nearest to a misspelt one, if it is a plausible typo.
pub(crate) fn nearest_section(typo: &str) -> Option<String> {
    nearest(typo, SECTIONS.iter().map(|section| section.to_string()))
}

fn nearest(typo: &str, names: impl Iterator<Item = String>) -> Option<String> {
    let typo = typo.to_ascii_lowercase();
    let distance = |name: &str| {
        // A forgotten unit suffix (`drain` for `drain_ms`) is the commonest
        // slip with names that carry their unit; count it as one edit.
        if name.starts_with(&typo) { 1 } else { edit_distance(&typo, name) }
    };
    let (distance, nearest) = names.map(|name| (distance(&name.to_ascii_lowercase()), name)).min_by_key(|(d, _)| *d)?;
    // Three edits cover a dropped, doubled or swapped letter or two.
    (distance <= 3).then_some(nearest)
}

/// Levenshtein distance over bytes; keys are ASCII.
fn edit_distance(a: &str, b: &str) -> usize {
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.bytes().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.bytes().enumerate() {
            let substitute = previous[j] + usize::from(ca != cb);
            current.push(substitute.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

/// The sections, in file order.
pub const SECTIONS: &[&str] = &["server", "http", "auth", "store", "cache", "sale", "captcha", "limits"];

macro_rules! default_text {
    () => {
        None
    };
    ($default:literal) => {
        Some($default)
    };
}

macro_rules! schema {
    ($(
        $(#[doc = $section_doc:literal])+
        [$section:ident] $Section:ident {
            $(
                #[doc = $doc:literal]
                $key:ident : $ty:ty $(= $default:literal)?;
            )+
        }
    )+) => {
        $(
            $(#[doc = $section_doc])+
            #[derive(Debug, Clone, PartialEq, Eq)]
            #[non_exhaustive]
            pub struct $Section {
                $(#[doc = $doc] pub $key: $ty,)+
            }

            impl $Section {
                fn from_layers(layers: &Layers) -> Result<Self, ConfigError> {
                    Ok(Self {
                        $($key: layers.take::<$ty>(concat!(stringify!($section), ".", stringify!($key)))?,)+
                    })
                }

                fn to_table(&self, redact: bool) -> toml::Table {
                    let mut table = toml::Table::new();
                    $(
                        let value = if redact {
                            ConfigValue::to_toml_redacted(&self.$key)
                        } else {
                            ConfigValue::to_toml(&self.$key)
                        };
                        if let Some(value) = value {
                            table.insert(stringify!($key).to_owned(), value);
                        }
                    )+
                    table
                }
            }
        )+

        /// The whole configuration, one field per section. Built only by
        /// [`Config::load`] (or `Default`), so every value in it is valid.
        #[derive(Debug, Clone, PartialEq, Eq)]
        #[non_exhaustive]
        pub struct Config {
            $($(#[doc = $section_doc])+ pub $section: $Section,)+
        }

        impl Config {
            pub(crate) fn from_layers(layers: &Layers) -> Result<Self, ConfigError> {
                Ok(Config { $($section: $Section::from_layers(layers)?,)+ })
            }

            /// The configuration as a TOML table of sections; with `redact`,
            /// secrets and URL passwords are replaced by `<redacted>`.
            pub fn to_table(&self, redact: bool) -> toml::Table {
                let mut table = toml::Table::new();
                $(table.insert(stringify!($section).to_owned(), toml::Value::Table(self.$section.to_table(redact)));)+
                table
            }
        }

        /// Every key, in file order.
        pub const KEYS: &[Key] = &[$($(
            Key {
                section: stringify!($section),
                name: stringify!($key),
                path: concat!(stringify!($section), ".", stringify!($key)),
                kind: <$ty as ConfigValue>::KIND,
                type_name: stringify!($ty),
                default: default_text!($($default)?),
                doc: $doc,
            },
        )+)+];
    };
}

impl Server {
    /// The number of event loops: `threads`, with 0 meaning one per core.
    pub fn event_loops(&self) -> usize {
        resolve_per_core(self.threads)
    }

    /// The number of general worker threads: `workers`, with 0 resolved to one per core.
    pub fn worker_count(&self) -> usize {
        resolve_per_core(self.workers)
    }
}

impl Auth {
    /// The number of password-hashing threads: `hash_workers`, with 0
    /// meaning one per core.
    pub fn hash_worker_count(&self) -> usize {
        resolve_per_core(self.hash_workers)
    }
}

/// 0 means one per core; if the core count is unknown, one.
fn resolve_per_core(configured: usize) -> usize {
    match configured {
        0 => std::thread::available_parallelism().map_or(1, |cores| cores.get()),
        n => n,
    }
}

text_enum! {
    /// `server.reactor`: how connections reach the event loops.
    ReactorMode {
        /// Every loop owns an `SO_REUSEPORT` listener; the kernel spreads connections.
        ReusePort = "reuseport",
        /// One acceptor thread hands sockets to the loops round-robin.
        Acceptor = "acceptor",
    }
}

text_enum! {
    /// `server.log_level`: the least severe level written to stderr.
    LogLevel {
        Error = "error",
        Warn = "warn",
        Info = "info",
        Debug = "debug",
        Trace = "trace",
    }
}

text_enum! {
    /// `sale.confirm`: when a successful buy is answered.
    ConfirmMode {
        /// 200 once the order is durable in the store.
        Sync = "sync",
        /// 202 at once; the client polls `/result`.
        Async = "async",
    }
}

text_enum! {
    /// `sale.stock_strategy`: how instances share an item's stock through the cache.
    StockStrategy {
        /// Each instance sells from an allotment leased in chunks (no cache round trip per request).
        Lease = "lease",
        /// One EVALSHA per request: the conventional design, kept for comparison.
        Evalsha = "evalsha",
    }
}

schema! {
    /// `[server]`: the process, its listeners and its event loops.
    [server] Server {
        /// Address to listen on, IP:PORT; port 0 picks a free one (printed in the "listening on" line).
        listen: SocketAddr = "127.0.0.1:8080";
        /// Event loops; 0 = one per core.
        threads: usize = "0";
        /// "reuseport" (one SO_REUSEPORT listener per loop) or "acceptor" (one acceptor hands sockets to the loops).
        reactor: ReactorMode = "reuseport";
        /// Pin each event loop to its own core.
        pin_cpus: bool = "false";
        /// Networks (CIDR; a bare IP is one host) whose X-Forwarded-For is believed.
        trusted_proxies: Vec<Cidr> = "";
        /// Least severe log level written to stderr: "error", "warn", "info", "debug" or "trace".
        log_level: LogLevel = "info";
        /// Directory for the generated admin token and secret.
        data_dir: String = "./data";
        /// Threads for blocking work other than password hashing (store calls, captchas, admin); 0 = one per core.
        workers: usize = "0";
        /// Jobs queued or running on those threads at once; beyond: 503 overloaded.
        work_queue_max: usize = "4096";
        /// On SIGTERM/SIGINT, milliseconds between /readyz turning 503 and the listeners closing.
        drain_ms: u64 = "1000";
        /// On SIGTERM/SIGINT, milliseconds after which the process exits even if work remains.
        shutdown_grace_ms: u64 = "10000";
    }

    /// `[http]`: limits on what one client may send.
    [http] Http {
        /// Largest request head (request line + headers), bytes; beyond: 431.
        head_bytes_max: usize = "8192";
        /// Longest request target, bytes; beyond: 414. Less than head_bytes_max.
        uri_bytes_max: usize = "4096";
        /// Most header fields in one request (1 to 256); beyond: 431.
        header_count_max: usize = "64";
        /// Largest request body, bytes; beyond: 413.
        body_bytes_max: usize = "16384";
        /// Time to receive a whole head, milliseconds; beyond: 408 and close.
        head_timeout_ms: u64 = "10000";
        /// Idle keep-alive connections are closed silently after this, milliseconds.
        idle_timeout_ms: u64 = "60000";
        /// Open connections per instance; beyond: stop accepting until one closes.
        connections_max: usize = "16384";
        /// Unanswered pipelined requests per connection; beyond: stop reading (never refuse).
        pipeline_depth_max: usize = "64";
    }

    /// `[auth]`: users, sessions and the admin token.
    [auth] Auth {
        /// Bearer token for /admin/*; generated into data_dir/admin_token when absent.
        admin_token: Option<Secret>;
        /// HMAC key (at least 16 bytes) shared by all instances for sessions and paths; generated into data_dir when absent.
        secret: Option<Secret>;
        /// Sliding session lifetime, milliseconds.
        session_ttl_ms: u64 = "1800000";
        /// A session's expiry is written back (store, Redis) at most once per this many milliseconds per loop, so a session expires at most this much early; at most half of session_ttl_ms.
        session_touch_interval_ms: u64 = "60000";
        /// Public salt the login page mixes into the client-side password hash.
        client_salt: String = "1a2b3c4d";
        /// Argon2id memory cost per hash, KiB (at least 8 × argon2_parallelism).
        argon2_memory_kib: u32 = "19456";
        /// Argon2id passes over memory.
        argon2_iterations: u32 = "2";
        /// Argon2id lanes per hash.
        argon2_parallelism: u32 = "1";
        /// Threads computing password hashes off the event loops; 0 = one per core.
        hash_workers: usize = "0";
        /// Password hashes waiting for a worker; beyond: 503.
        hash_queue_max: usize = "1024";
    }

    /// `[store]`: the durable store of users, sessions, items and orders.
    [store] Store {
        /// "sqlite://PATH" (embedded, "sqlite:///abs/path" for an absolute path) or "mysql://USER:PASS@HOST:PORT/DB".
        url: StoreUrl = "sqlite://./data/seckill.db";
        /// Most connections to a MySQL store.
        pool_max: usize = "8";
        /// Concurrent transactions a MySQL group commit is split into, by user (each on its own connection, so the database works on a batch with several threads); 1 = one transaction (the default: on a database without cores to spare, lanes cost fsyncs and gain nothing); at most pool_max and 64.
        commit_lanes: usize = "1";
        /// A MySQL call not answered within this many milliseconds is 503 (a write cut off this way has an unknown outcome).
        command_timeout_ms: u64 = "5000";
    }

    /// `[cache]`: the cache shared by instances.
    [cache] Cache {
        /// "memory://" (in-process), "redis://HOST:PORT/DB" or "redis-cluster://HOST:PORT,HOST:PORT".
        url: CacheUrl = "memory://";
        /// Prefix of every Redis key (lets tests and tenants share a Redis); no spaces.
        key_prefix: String = "seckill:";
        /// Sessions each event loop keeps in its own cache.
        sessions_per_loop_max: usize = "65536";
        /// Sessions an instance on Redis remembers for all its loops (its own logins and those its loops asked Redis for), so a loop's miss rarely needs a Redis round trip.
        sessions_instance_max: usize = "262144";
        /// A Redis command not answered within this many milliseconds fails.
        command_timeout_ms: u64 = "1000";
    }

    /// `[sale]`: the buy, group commit and the payment window.
    [sale] Sale {
        /// Unpaid orders expire after this many milliseconds and their stock returns.
        payment_window_ms: u64 = "600000";
        /// A hidden path is valid for this many milliseconds.
        path_ttl_ms: u64 = "60000";
        /// "sync": 200 once the order is durable; "async": 202 at once, the client polls /result.
        confirm: ConfirmMode = "sync";
        /// A parked request not durable within this many milliseconds gets 503 (outcome unknown).
        confirm_timeout_ms: u64 = "2000";
        /// Orders waiting for the writer; beyond: 503 overloaded.
        order_queue_max: usize = "65536";
        /// Under overload, a buy is refused 503 overloaded when the queued orders would take longer than this many milliseconds to commit at the writer's measured rate (never fewer than one batch may queue); at most half of confirm_timeout_ms is used, so admitted buys stay well inside it. 0 = only order_queue_max applies.
        order_queue_wait_max_ms: u64 = "500";
        /// Most orders written in one group-commit transaction.
        batch_orders_max: usize = "1024";
        /// Milliseconds the writer waits to gather more orders into a batch (0 = write what is there; orders arriving during a commit form the next batch anyway).
        batch_wait_ms: u64 = "0";
        /// Milliseconds between the writer's attempts to resolve a batch whose commit outcome is unknown (the store went away during its COMMIT).
        writer_retry_ms: u64 = "250";
        /// Under overload the event loops answering the excess compete for the CPU with the order writer, whose every batch is goodput: the writer thread's nice value is lowered by this much (needs CAP_SYS_NICE or root; otherwise a warning and no change). 0 = leave it.
        writer_priority_boost: u32 = "5";
        /// How instances share stock through the cache: "lease" (leased allotments) or "evalsha" (one script per request).
        stock_strategy: StockStrategy = "lease";
        /// A stock lease not renewed within this many milliseconds expires and its units return.
        lease_ms: u64 = "5000";
        /// Most units one refill leases to an instance.
        lease_chunk_max: u64 = "100";
        /// Redis keys each item's shared stock is split over (1–64); each key has its own hash tag, so in a Redis Cluster a hot item's refills spread over several nodes.
        stock_shards: u32 = "4";
        /// Orders pending payment an instance tracks (about 80 bytes each, allocated at start-up); beyond: 503 overloaded.
        pending_orders_max: u32 = "262144";
        /// Request ids remembered in memory for instant retries; beyond, retries that would be refused ask the store.
        request_ids_max: usize = "1000000";
        /// Items the stock table holds (128 bytes each, allocated at start-up); beyond, creating an item is refused.
        items_max: usize = "65536";
    }

    /// `[captcha]`
    [captcha] Captcha {
        /// A captcha is valid for this many milliseconds.
        ttl_ms: u64 = "300000";
        /// Captchas outstanding at once in the in-process cache; beyond it a new one is refused with 503.
        outstanding_max: usize = "1000000";
    }

    /// `[limits]`: token buckets per instance; a rate of 0 turns that limit off.
    [limits] Limits {
        /// Sale requests (captcha, path, seckill) per user per second; 0 = off.
        per_user_rps: u64 = "5";
        /// Sale requests a user may make at once after being idle.
        per_user_burst: u64 = "10";
        /// Sale and login requests per client address per second; 0 = off.
        per_ip_rps: u64 = "200";
        /// Requests a client address may make at once after being idle.
        per_ip_burst: u64 = "400";
        /// Token buckets per limit, 16 bytes each, fixed at start-up, idle ones reused; keep buckets_max × rate above what the instance serves.
        buckets_max: usize = "262144";
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::Loaded;

    #[test]
    fn defaults_are_valid() {
        assert!(matches!(Config::load(Vec::new(), Vec::new()), Ok(Loaded::Run(_))));
    }

    /// The defaults the contract's examples and the team agreed on.
    #[test]
    fn contract_defaults() {
        let expected = [
            ("server.listen", "127.0.0.1:8080"),
            ("server.threads", "0"),
            ("server.reactor", "reuseport"),
            ("server.trusted_proxies", ""),
            ("server.log_level", "info"),
            ("server.drain_ms", "1000"),
            ("server.shutdown_grace_ms", "10000"),
            ("server.pin_cpus", "false"),
            ("server.workers", "0"),
            ("server.work_queue_max", "4096"),
            ("http.head_bytes_max", "8192"),
            ("http.uri_bytes_max", "4096"),
            ("http.header_count_max", "64"),
            ("http.body_bytes_max", "16384"),
            ("http.head_timeout_ms", "10000"),
            ("http.idle_timeout_ms", "60000"),
            ("http.connections_max", "16384"),
            ("http.pipeline_depth_max", "64"),
            ("auth.session_ttl_ms", "1800000"),
            ("auth.client_salt", "1a2b3c4d"),
            ("store.url", "sqlite://./data/seckill.db"),
            ("cache.url", "memory://"),
            ("cache.key_prefix", "seckill:"),
            ("sale.payment_window_ms", "600000"),
            ("sale.path_ttl_ms", "60000"),
            ("sale.confirm", "sync"),
            ("sale.confirm_timeout_ms", "2000"),
            ("captcha.ttl_ms", "300000"),
            ("captcha.outstanding_max", "1000000"),
            ("limits.per_user_rps", "5"),
            ("limits.per_user_burst", "10"),
            ("limits.per_ip_rps", "200"),
            ("limits.per_ip_burst", "400"),
        ];
        for (path, default) in expected {
            let key = Key::find(path).unwrap_or_else(|| panic!("{path} is missing"));
            assert_eq!(key.default, Some(default), "{path}");
        }
        for path in ["auth.admin_token", "auth.secret"] {
            assert_eq!(Key::find(path).map(|key| key.default), Some(None), "{path} has no default");
        }
    }

    #[test]
    fn keys_are_unique_and_in_known_sections() {
        for (i, key) in KEYS.iter().enumerate() {
            assert!(SECTIONS.contains(&key.section), "{}", key.path);
            assert!(KEYS[..i].iter().all(|other| other.path != key.path), "{} twice", key.path);
            assert_eq!(key.name, key.name.to_ascii_lowercase(), "env names are upper-cased from lower-case keys");
        }
        let table = Config::default().to_table(false);
        let structs: Vec<&str> = table.keys().map(String::as_str).collect();
        let mut listed = SECTIONS.to_vec();
        listed.sort_unstable();
        assert_eq!(structs, listed, "SECTIONS and the section structs differ");
    }

    #[test]
    fn zero_threads_means_one_per_core() {
        let mut config = Config::default();
        assert!(config.server.event_loops() >= 1);
        assert!(config.auth.hash_worker_count() >= 1);
        config.server.threads = 3;
        config.auth.hash_workers = 2;
        assert_eq!((config.server.event_loops(), config.auth.hash_worker_count()), (3, 2));
    }

    #[test]
    fn env_var_names() {
        assert_eq!(Key::find("http.head_bytes_max").unwrap().env_var(), "SECKILL_HTTP_HEAD_BYTES_MAX");
    }
}
