//! The cache: state every instance must see but that need not be durable on
//! its own — sessions (whose durable copy is in the store), captcha answers,
//! and (with the sale) async order results. The embedded default keeps it in
//! process ([`memory::MemoryCache`]); production uses Redis behind the same
//! trait.
//!
//! Two kinds of call: `*_now` methods are for event loops and must not block
//! (an in-process cache answers them; a remote one returns `None`, meaning
//! "ask again from a worker"); the others may block and run on workers.

pub mod events;
pub mod memory;
pub mod mirror;
pub mod redis;
pub mod redis_counter;
pub mod redis_stock;

use std::sync::Arc;

use crate::auth::session::{Session, TokenHash, TokenKey};

/// The cache is unreachable or failed: answer 503 `unavailable`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheError(pub String);

impl std::fmt::Display for CacheError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cache unavailable: {}", self.0)
    }
}

/// An outstanding captcha of one user for one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaptchaEntry {
    pub answer: i64,
    pub expires_ms: u64,
}

/// A captcha could not be stored: too many are outstanding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutCaptchaError {
    Full,
    Unavailable(CacheError),
}

/// News from another instance sharing the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheEvent {
    /// A session was logged out: every loop must forget the token.
    Revoked(TokenKey),
    /// An item or its stock changed in the store: reload it.
    ItemChanged(u64),
    /// Units of an item went back into the shared stock pool (returned,
    /// cancelled, expired, a lease that lapsed): clear its sold-out mark.
    StockReturned(u64),
    /// Events may have been missed (the subscription reconnected): forget
    /// every loop's sessions and reload every item. Never sent, only delivered.
    Resync,
}

/// An order on its way to the store (async confirmation): until its batch
/// is decided, `/result` reads `pending` on every instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InFlight {
    pub user_id: u64,
    pub item_id: u64,
    /// After this, a mark left behind (its instance died) means nothing.
    pub until_ms: u64,
}

/// Where a shared cache delivers the events it hears (on its own thread).
pub type EventSink = Arc<dyn Fn(CacheEvent) + Send + Sync>;

pub trait Cache: Send + Sync + std::fmt::Debug + 'static {
    /// Whether other instances share this cache (and `*_now` may answer `None`).
    fn is_shared(&self) -> bool {
        false
    }

    /// Whether the cache answers now (for `/readyz`; called by the keeper).
    fn check(&self) -> Result<(), CacheError> {
        Ok(())
    }

    /// `Some(answer)` when the cache can answer without blocking.
    fn session_now(&self, hash: &TokenHash, now_ms: u64) -> Option<Option<Session>>;
    fn session(&self, hash: &TokenHash, now_ms: u64) -> Result<Option<Session>, CacheError>;
    fn put_sessions(&self, sessions: &[(TokenHash, Session)]) -> Result<(), CacheError>;
    fn remove_session(&self, hash: &TokenHash) -> Result<(), CacheError>;
    /// Slides expiries (written back in batches).
    fn touch_sessions(&self, touches: &[(TokenHash, u64)]) -> Result<(), CacheError>;

    /// Stores the captcha of (user, item), replacing any earlier one.
    fn put_captcha(&self, user_id: u64, item_id: u64, entry: CaptchaEntry) -> Result<(), PutCaptchaError>;
    /// Removes and returns the captcha of (user, item): any answer consumes it.
    fn take_captcha_now(&self, user_id: u64, item_id: u64) -> Option<Option<CaptchaEntry>>;
    fn take_captcha(&self, user_id: u64, item_id: u64) -> Result<Option<CaptchaEntry>, CacheError>;
    /// The outstanding answer, left in place (the admin hook for load tests).
    fn peek_captcha(&self, user_id: u64, item_id: u64, now_ms: u64) -> Result<Option<i64>, CacheError>;

    /// Drops what has expired; returns how many entries went.
    fn prune(&self, now_ms: u64) -> usize;
    /// Counts for `/metrics`: (sessions, captchas).
    fn sizes(&self) -> (usize, usize);

    /// Marks orders of a batch about to be committed, for the other
    /// instances' `/result` (a cache that is not shared has nobody to tell).
    /// Never blocks and never fails: a mark that cannot be written only
    /// makes `/result` elsewhere read `none` until the commit.
    fn orders_in_flight(&self, _orders: &[InFlight]) {}

    /// The batch of these marks is decided: they go.
    fn orders_landed(&self, _orders: &[InFlight]) {}

    /// In-flight marks that could not be written, since start-up (`/metrics`).
    fn in_flight_marks_lost(&self) -> u64 {
        0
    }

    /// Whether an instance marked an order of (user, item) in flight.
    fn order_in_flight(&self, _user_id: u64, _item_id: u64, _now_ms: u64) -> Result<bool, CacheError> {
        Ok(false)
    }

    /// Tells the other instances (a cache that is not shared has none).
    fn announce(&self, _event: &CacheEvent) -> Result<(), CacheError> {
        Ok(())
    }

    /// Delivers the other instances' announcements (and this one's own) to
    /// `sink` from now on.
    fn listen(&self, _sink: EventSink) -> Result<(), CacheError> {
        Ok(())
    }
}
