//! [`RedisCache`]: the [`Cache`] on Redis (or a Redis Cluster) through fred,
//! shared by every instance behind a load balancer.
//!
//! **Threading.** fred is asynchronous; the cache is called from workers,
//! the keeper and the order writer, which are plain threads. A [`Bridge`]
//! thread runs fred's client on a current-thread runtime; every call waits
//! at most `cache.command_timeout_ms`. Loops never call Redis: `session_now`
//! answers from the instance's [`SessionMirror`] (sessions this instance
//! wrote or already looked up, forgotten on any revocation), and otherwise
//! `None` ("ask a worker"): the loop hands the lookup to a worker and replays
//! the request when it comes back. The other `*_now` methods answer `None`.
//!
//! **Keys** (all under `cache.key_prefix`):
//! - `s:{sha256 hex}` → user id, expiring at the session's expiry (PXAT,
//!   slid by the keeper's batched write-backs); a logout replaces it with
//!   the tombstone `0` for `auth.session_ttl_ms`, and sessions are only ever
//!   written with NX, so a put-back from a store read that raced the logout
//!   (on any instance) cannot bring the session back;
//! - `c:{user}:{item}` → `answer:expires_ms`, taken with GETDEL so that any
//!   answer consumes it on whichever instance it arrives;
//! - `f:{item}` → hash of user id → deadline (ms): orders in flight under
//!   async confirmation, written per batch before its commit (HSET) and
//!   removed once it is decided (HDEL), so `/result` reads `pending` on every
//!   instance; a mark past its deadline (its instance died) is ignored;
//! - channel `events`: `r:{token}` (a logout: a revoked token is dead, so
//!   broadcasting it reveals nothing usable) and `i:{item}` (an item or its
//!   stock changed), `s:{item}` (units went back into the item's shared
//!   stock pool: sold-out marks clear). Every instance subscribes; after a
//!   reconnect it may have missed messages, so it resynchronises (forgets the
//!   mirror and every loop's sessions, reloads the catalogue).
//!
//! **Failures.** fred reconnects with exponential back-off for ever; while
//! disconnected, commands fail at once (`fail_fast`) and callers answer 503.
//! Sessions and items are durable in the store, which stays the truth: a
//! Redis that lost its data costs a store lookup per session, not a login.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use fred::prelude::*;
use fred::types::config::{ServerConfig, UnresponsiveConfig};
use fred::types::{Expiration, Message, SetOptions};

use super::mirror::SessionMirror;
use super::{Cache, CacheError, CacheEvent, CaptchaEntry, EventSink, InFlight, PutCaptchaError};
use crate::auth::session::{Session, TOKEN_LEN, TokenHash, token_hash, token_key};
use crate::bridge::{Bridge, BridgeError};
use seckill_config::CacheUrl;

/// Commands per pipeline when writing many sessions (start-up, write-backs).
const PIPELINE_MAX: usize = 1_000;
/// The in-flight marks of an item go with their key this long after the
/// last batch marked one (each mark also carries its own deadline).
const IN_FLIGHT_KEY_TTL_MS: i64 = 60_000;
/// Reconnect back-off: from 50 ms, doubling, at most 2 s, for ever.
const RECONNECT_MIN_MS: u32 = 50;
const RECONNECT_MAX_MS: u32 = 2_000;
/// The value of a logged-out session's key: user ids start at 1.
const SESSION_TOMBSTONE: u64 = 0;

/// Where and how to reach Redis.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    pub url: CacheUrl,
    pub key_prefix: String,
    pub command_timeout: Duration,
    /// Sessions the instance remembers beside Redis ([`SessionMirror`]).
    pub sessions_instance_max: usize,
    /// How long a logged-out session's tombstone stays (`auth.session_ttl_ms`):
    /// no session read before the logout can outlive it.
    pub session_ttl: Duration,
}

/// The cache on Redis. See the module doc.
pub struct RedisCache {
    bridge: Bridge<Client>,
    config: Config,
    prefix: String,
    channel: String,
    shown: String,
    /// Sessions known without asking Redis, shared by the loops.
    mirror: Arc<SessionMirror>,
    session_ttl: Duration,
    /// In-flight marks that could not be written (`/metrics`).
    marks_lost: Arc<AtomicU64>,
}

impl std::fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCache").field("url", &self.shown).field("prefix", &self.prefix).finish()
    }
}

fn unavailable(e: impl std::fmt::Display) -> CacheError {
    CacheError(e.to_string())
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        s.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    s
}

/// fred's configuration for `url`; also the URL to show (without a password).
fn fred_config(url: &CacheUrl) -> Result<(Config, String), CacheError> {
    match url {
        CacheUrl::Memory => Err(CacheError("memory:// is not a Redis URL".into())),
        CacheUrl::Redis { url } => {
            if url.starts_with("rediss://") {
                return Err(CacheError("rediss:// (TLS) is not built into this server".into()));
            }
            let config = Config::from_url(url).map_err(unavailable)?;
            let shown = match url.rsplit_once('@') {
                Some((_, rest)) => format!("redis://…@{rest}"),
                None => url.clone(),
            };
            Ok((config, shown))
        }
        CacheUrl::RedisCluster { nodes, username, password } => {
            let mut hosts = Vec::with_capacity(nodes.len());
            for node in nodes {
                let (host, port) = node.rsplit_once(':').ok_or_else(|| CacheError(format!("node {node}: no port")))?;
                let port: u16 = port.parse().map_err(|_| CacheError(format!("node {node}: bad port")))?;
                hosts.push((host.trim_start_matches('[').trim_end_matches(']').to_owned(), port));
            }
            let config = Config {
                server: ServerConfig::new_clustered(hosts),
                username: username.clone(),
                password: password.clone(),
                ..Config::default()
            };
            Ok((config, format!("redis-cluster://{}", nodes.join(","))))
        }
    }
}

/// A builder with our policies: fail fast while disconnected, reconnect for
/// ever with back-off, every command bounded in time.
fn builder(config: &Config, timeout: Duration) -> Builder {
    let mut builder = Builder::from_config(Config { fail_fast: true, ..config.clone() });
    builder
        .set_policy(ReconnectPolicy::new_exponential(0, RECONNECT_MIN_MS, RECONNECT_MAX_MS, 2))
        .with_performance_config(|perf| perf.default_command_timeout = timeout)
        .with_connection_config(|conn| {
            conn.connection_timeout = timeout;
            conn.internal_command_timeout = timeout;
            // A Redis that stops answering (SIGSTOP) is noticed and the
            // connection replaced, instead of every command timing out.
            conn.unresponsive = UnresponsiveConfig { max_timeout: Some(timeout * 2), interval: timeout / 4 };
        });
    builder
}

impl RedisCache {
    /// Connects (failing if Redis cannot be reached at start-up).
    pub fn open(options: &RedisOptions) -> Result<Self, CacheError> {
        let (config, shown) = fred_config(&options.url)?;
        let client = builder(&config, options.command_timeout).build().map_err(unavailable)?;
        let bridge = Bridge::start(
            "redis-cache",
            options.command_timeout,
            move || async move {
                // Connection errors surface through the first call below.
                let _ = client.init().await;
                client
            },
            |client: Client| async move {
                let _ = client.quit().await;
            },
        )
        .map_err(unavailable)?;
        let cache = RedisCache {
            bridge,
            config,
            prefix: options.key_prefix.clone(),
            channel: format!("{}events", options.key_prefix),
            shown,
            mirror: Arc::new(SessionMirror::new(options.sessions_instance_max)),
            session_ttl: options.session_ttl,
            marks_lost: Arc::new(AtomicU64::new(0)),
        };
        cache.ping()?;
        Ok(cache)
    }

    /// The URL without credentials, for logs.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    pub fn ping(&self) -> Result<(), CacheError> {
        self.run(|client| async move { client.ping::<()>(None).await })
    }

    /// Prefix of every key of this cache (`cache.key_prefix`).
    pub(super) fn prefix(&self) -> &str {
        &self.prefix
    }

    pub(super) fn run<T, F, Fut>(&self, job: F) -> Result<T, CacheError>
    where
        T: Send + 'static,
        F: FnOnce(Client) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<T, Error>> + 'static,
    {
        match self.bridge.call(job) {
            Ok(result) => result.map_err(unavailable),
            Err(e @ (BridgeError::TimedOut(_) | BridgeError::Busy | BridgeError::Closed)) => Err(unavailable(e)),
        }
    }

    /// Runs `job` on the client's thread without waiting for it; false if
    /// it could not be queued (too many calls waiting, or the thread ended).
    pub(super) fn spawn<F, Fut>(&self, job: F) -> bool
    where
        F: FnOnce(Client) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + 'static,
    {
        self.bridge.spawn(job).is_ok()
    }

    fn session_key(&self, hash: &TokenHash) -> String {
        format!("{}s:{}", self.prefix, hex(hash))
    }

    fn captcha_key(&self, user_id: u64, item_id: u64) -> String {
        format!("{}c:{user_id}:{item_id}", self.prefix)
    }

    fn in_flight_key(&self, item_id: u64) -> String {
        format!("{}f:{item_id}", self.prefix)
    }

    /// `orders` grouped by item: the item's key and its (user, value) fields.
    fn in_flight_by_item(
        &self,
        orders: &[InFlight],
        value: impl Fn(&InFlight) -> String,
    ) -> Vec<(String, Vec<(String, String)>)> {
        let mut by_item: Vec<(u64, Vec<(String, String)>)> = Vec::new();
        for order in orders {
            let field = (order.user_id.to_string(), value(order));
            match by_item.iter_mut().find(|(item, _)| *item == order.item_id) {
                Some((_, fields)) => fields.push(field),
                None => by_item.push((order.item_id, vec![field])),
            }
        }
        by_item.into_iter().map(|(item, fields)| (self.in_flight_key(item), fields)).collect()
    }
}

fn encode_captcha(entry: CaptchaEntry) -> String {
    format!("{}:{}", entry.answer, entry.expires_ms)
}

fn decode_captcha(value: Option<String>) -> Option<CaptchaEntry> {
    let (answer, expires) = value?.split_once(':').map(|(a, e)| (a.to_owned(), e.to_owned()))?;
    Some(CaptchaEntry { answer: answer.parse().ok()?, expires_ms: expires.parse().ok()? })
}

/// An event as sent on the channel: `r:{token}` or `i:{item}`.
fn encode_event(event: &CacheEvent) -> Option<String> {
    match event {
        CacheEvent::Revoked(token) => Some(format!("r:{}", std::str::from_utf8(token).ok()?)),
        CacheEvent::ItemChanged(item_id) => Some(format!("i:{item_id}")),
        CacheEvent::StockReturned(item_id) => Some(format!("s:{item_id}")),
        CacheEvent::Resync => None,
    }
}

fn decode_event(text: &str) -> Option<CacheEvent> {
    match text.split_once(':')? {
        ("r", token) if token.len() == TOKEN_LEN => token_key(token.as_bytes()).map(CacheEvent::Revoked),
        ("i", item) => item.parse().ok().map(CacheEvent::ItemChanged),
        ("s", item) => item.parse().ok().map(CacheEvent::StockReturned),
        _ => None,
    }
}

fn ms(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl Cache for RedisCache {
    fn is_shared(&self) -> bool {
        true
    }

    fn check(&self) -> Result<(), CacheError> {
        self.ping()
    }

    fn session_now(&self, hash: &TokenHash, now_ms: u64) -> Option<Option<Session>> {
        // Known here: valid. Unknown here: only Redis can say.
        self.mirror.get(hash, now_ms).map(Some)
    }

    fn session(&self, hash: &TokenHash, now_ms: u64) -> Result<Option<Session>, CacheError> {
        let revision = self.mirror.revision();
        let key = self.session_key(hash);
        let (user, ttl): (Option<u64>, i64) = self.run(move |client| async move {
            let pipeline = client.pipeline();
            let () = pipeline.get(&key).await?;
            let () = pipeline.pttl(&key).await?;
            pipeline.all().await
        })?;
        let session = user
            .filter(|&user_id| user_id != SESSION_TOMBSTONE && ttl > 0)
            .map(|user_id| Session { user_id, expires_ms: now_ms + ttl.unsigned_abs() });
        if let Some(session) = session {
            self.mirror.keep_looked_up(*hash, session, revision);
        }
        Ok(session)
    }

    fn put_sessions(&self, sessions: &[(TokenHash, Session)]) -> Result<(), CacheError> {
        // Taken before Redis is asked: a revocation heard meanwhile keeps a
        // session out of the mirror even if its tombstone came too late.
        let revision = self.mirror.revision();
        for chunk in sessions.chunks(PIPELINE_MAX) {
            let entries: Vec<(String, u64, i64)> =
                chunk.iter().map(|(hash, s)| (self.session_key(hash), s.user_id, ms(s.expires_ms))).collect();
            // NX with GET: an existing key (a tombstone above all) stays,
            // and its old value says whether the session may be remembered.
            let previous: Vec<Option<u64>> = self.run(move |client| async move {
                let pipeline = client.pipeline();
                for (key, user_id, expires_ms) in entries {
                    let () = pipeline
                        .set(key, user_id, Some(Expiration::PXAT(expires_ms)), Some(SetOptions::NX), true)
                        .await?;
                }
                pipeline.all().await
            })?;
            // Only once Redis has them: a loop that finds one here may be
            // answered by another instance next.
            for ((hash, session), previous) in chunk.iter().zip(previous) {
                if previous != Some(SESSION_TOMBSTONE) {
                    self.mirror.keep_looked_up(*hash, *session, revision);
                }
            }
        }
        Ok(())
    }

    fn remove_session(&self, hash: &TokenHash) -> Result<(), CacheError> {
        self.mirror.forget(hash);
        let key = self.session_key(hash);
        let tombstone = Expiration::PX(i64::try_from(self.session_ttl.as_millis()).unwrap_or(i64::MAX).max(1));
        self.run(move |client| async move {
            client.set::<(), _, _>(key, SESSION_TOMBSTONE, Some(tombstone), None, false).await
        })
    }

    fn touch_sessions(&self, touches: &[(TokenHash, u64)]) -> Result<(), CacheError> {
        for chunk in touches.chunks(PIPELINE_MAX) {
            let entries: Vec<(String, i64)> =
                chunk.iter().map(|(hash, expires_ms)| (self.session_key(hash), ms(*expires_ms))).collect();
            // PEXPIREAT leaves a missing key missing: a write-back never
            // resurrects a session logged out meanwhile.
            self.run(move |client| async move {
                let pipeline = client.pipeline();
                for (key, expires_ms) in entries {
                    let () = pipeline.pexpire_at(key, expires_ms, None).await?;
                }
                pipeline.all::<()>().await
            })?;
        }
        for (hash, expires_ms) in touches {
            self.mirror.slide(hash, *expires_ms);
        }
        Ok(())
    }

    fn put_captcha(&self, user_id: u64, item_id: u64, entry: CaptchaEntry) -> Result<(), PutCaptchaError> {
        let key = self.captcha_key(user_id, item_id);
        let value = encode_captcha(entry);
        self.run(move |client| async move {
            client.set::<(), _, _>(key, value, Some(Expiration::PXAT(ms(entry.expires_ms))), None, false).await
        })
        .map_err(PutCaptchaError::Unavailable)
    }

    fn take_captcha_now(&self, _user_id: u64, _item_id: u64) -> Option<Option<CaptchaEntry>> {
        None
    }

    fn take_captcha(&self, user_id: u64, item_id: u64) -> Result<Option<CaptchaEntry>, CacheError> {
        let key = self.captcha_key(user_id, item_id);
        let value: Option<String> = self.run(move |client| async move { client.getdel(key).await })?;
        Ok(decode_captcha(value))
    }

    fn peek_captcha(&self, user_id: u64, item_id: u64, now_ms: u64) -> Result<Option<i64>, CacheError> {
        let key = self.captcha_key(user_id, item_id);
        let value: Option<String> = self.run(move |client| async move { client.get(key).await })?;
        Ok(decode_captcha(value).filter(|c| now_ms < c.expires_ms).map(|c| c.answer))
    }

    fn prune(&self, _now_ms: u64) -> usize {
        // Redis expires keys itself.
        0
    }

    fn sizes(&self) -> (usize, usize) {
        // The sessions this instance remembers; counting Redis's own keys
        // would cost a scan, so captchas stay at zero.
        (self.mirror.len(), 0)
    }

    fn orders_in_flight(&self, orders: &[InFlight]) {
        let key_ttl_ms = IN_FLIGHT_KEY_TTL_MS;
        for (key, fields) in self.in_flight_by_item(orders, |o| format!("{}", o.until_ms)) {
            let lost = self.marks_lost.clone();
            let marks = fields.len() as u64;
            // Sent in order on fred's connection, so the batch's HDEL always
            // comes after its HSET; a failure here only costs the marks
            // (counted: `/result` elsewhere read `none` until the commit).
            let sent = self.bridge.spawn(move |client| async move {
                let pipeline = client.pipeline();
                let _: Result<(), _> = pipeline.hset(&key, fields).await;
                let _: Result<(), _> = pipeline.pexpire(&key, key_ttl_ms, None).await;
                if pipeline.all::<()>().await.is_err() {
                    lost.fetch_add(marks, Relaxed);
                }
            });
            if sent.is_err() {
                self.marks_lost.fetch_add(marks, Relaxed);
            }
        }
    }

    fn orders_landed(&self, orders: &[InFlight]) {
        for (key, fields) in self.in_flight_by_item(orders, |_| String::new()) {
            let users: Vec<String> = fields.into_iter().map(|(user, _)| user).collect();
            // A mark left behind is harmless: it carries its own deadline.
            let _ = self.bridge.spawn(move |client| async move {
                let _: Result<(), _> = client.hdel(&key, users).await;
            });
        }
    }

    fn in_flight_marks_lost(&self) -> u64 {
        self.marks_lost.load(Relaxed)
    }

    fn order_in_flight(&self, user_id: u64, item_id: u64, now_ms: u64) -> Result<bool, CacheError> {
        let key = self.in_flight_key(item_id);
        let until: Option<u64> = self.run(move |client| async move { client.hget(key, user_id).await })?;
        Ok(until.is_some_and(|until| now_ms < until))
    }

    fn announce(&self, event: &CacheEvent) -> Result<(), CacheError> {
        let Some(message) = encode_event(event) else { return Ok(()) };
        let channel = self.channel.clone();
        self.run(move |client| async move { client.publish::<(), _, _>(channel, message).await })
    }

    fn listen(&self, sink: EventSink) -> Result<(), CacheError> {
        let subscriber =
            builder(&self.config, Duration::from_secs(5)).build_subscriber_client().map_err(unavailable)?;
        let channel = self.channel.clone();
        let mirror = self.mirror.clone();
        let (ready_tx, ready_rx) = crossbeam_channel::bounded::<Result<(), CacheError>>(1);
        self.bridge
            .spawn(move |_client| async move {
                let mut messages = subscriber.message_rx();
                let subscribed = async {
                    subscriber.init().await?;
                    subscriber.subscribe(channel.as_str()).await
                }
                .await;
                // Listened to only now: the first connection is no reconnect.
                let mut reconnects = subscriber.reconnect_rx();
                let _ = ready_tx.send(subscribed.map_err(unavailable));
                // Re-subscribes after every reconnect.
                let _manager = subscriber.manage_subscriptions();
                loop {
                    tokio::select! {
                        message = messages.recv() => match message {
                            Ok(message) => deliver(&sink, &mirror, &message),
                            // Fell behind the broadcast buffer: messages were lost.
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => resync(&sink, &mirror),
                            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                        },
                        reconnect = reconnects.recv() => match reconnect {
                            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => resync(&sink, &mirror),
                            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                        },
                    }
                }
            })
            .map_err(unavailable)?;
        match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(result) => result,
            Err(_) => Err(CacheError("the subscription did not start within 10 s".into())),
        }
    }
}

/// Hands an event to the instance; a revocation leaves the mirror first, so
/// no loop can learn the session from it once the loops hear of the logout.
fn deliver(sink: &EventSink, mirror: &SessionMirror, message: &Message) {
    if let Some(event) = message.value.as_str().as_deref().and_then(decode_event) {
        if let CacheEvent::Revoked(token) = &event {
            mirror.forget(&token_hash(token));
        }
        sink(event);
    }
}

/// News may have been lost: the mirror forgets everything, then the
/// instance resynchronises.
fn resync(sink: &EventSink, mirror: &SessionMirror) {
    mirror.forget_all();
    sink(CacheEvent::Resync);
}

/// Options for unit tests against a real Redis (`SECKILL_TEST_REDIS_URL`,
/// default the local one), under a key prefix of the test's own.
#[cfg(test)]
pub(crate) fn test_options(test: &str) -> RedisOptions {
    let url = std::env::var("SECKILL_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into());
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    RedisOptions {
        url: CacheUrl::Redis { url },
        key_prefix: format!("test:{test}:{}:{nanos}:", std::process::id()),
        command_timeout: Duration::from_secs(2),
        sessions_instance_max: 1024,
        session_ttl: Duration::from_secs(60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip() {
        let token = [b'A'; TOKEN_LEN];
        for event in [CacheEvent::Revoked(token), CacheEvent::ItemChanged(42), CacheEvent::StockReturned(7)] {
            assert_eq!(decode_event(&encode_event(&event).unwrap()), Some(event));
        }
        assert_eq!(encode_event(&CacheEvent::Resync), None);
        assert_eq!(decode_event("r:short"), None);
        assert_eq!(decode_event("x:1"), None);
        assert_eq!(decode_event("i:notanumber"), None);
    }

    #[test]
    fn captcha_round_trip() {
        let entry = CaptchaEntry { answer: -7, expires_ms: 123 };
        assert_eq!(decode_captcha(Some(encode_captcha(entry))), Some(entry));
        assert_eq!(decode_captcha(Some("garbage".into())), None);
        assert_eq!(decode_captcha(None), None);
    }

    #[test]
    fn hex_of_bytes() {
        assert_eq!(hex(&[0x00, 0xab, 0xff]), "00abff");
    }

    /// Two instances' caches under one key prefix of a real Redis.
    fn two_instances(test: &str) -> (RedisCache, RedisCache) {
        let options = test_options(test);
        let open = || RedisCache::open(&options).expect("Redis for the cache tests (tests/run starts one)");
        (open(), open())
    }

    #[test]
    fn a_put_back_racing_a_logout_does_not_bring_the_session_back() {
        let (here, there) = two_instances("tombstone");
        let hash = [7u8; 32];
        let session = Session { user_id: 42, expires_ms: crate::clock::now_ms() + 600_000 };
        let now_ms = crate::clock::now_ms();
        here.put_sessions(&[(hash, session)]).unwrap();
        assert_eq!(there.session(&hash, now_ms).unwrap().map(|s| s.user_id), Some(42));
        // Logged out on one instance while the other, having read the
        // session from the store just before, puts it back.
        here.remove_session(&hash).unwrap();
        there.mirror.forget(&hash);
        there.put_sessions(&[(hash, session)]).unwrap();
        for cache in [&here, &there] {
            assert_eq!(cache.session(&hash, now_ms).unwrap(), None);
            assert_eq!(cache.session_now(&hash, now_ms), None, "the mirror kept a revoked session");
        }
        // Another token is untouched by the tombstone.
        let other = [8u8; 32];
        there.put_sessions(&[(other, session)]).unwrap();
        assert_eq!(here.session(&other, now_ms).unwrap().map(|s| s.user_id), Some(42));
    }
}
