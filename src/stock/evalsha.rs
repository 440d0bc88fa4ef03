//! [`EvalshaSource`]: the conventional design issue 7 measures leases
//! against (`sale.stock_strategy = "evalsha"`). Every buy runs one script on
//! the item's counter in the shared cache — "if stock ≥ quantity, take it" —
//! and waits for its answer: no local allotment, no local sold-out mark, so
//! a refusal after the sell-out costs a round trip too. It is kept to be
//! compared, not to be fast.
//!
//! The counter lives behind [`SharedCounter`] (Redis, in
//! `crate::cache::redis_counter`), so this module knows the strategy, not
//! Redis. [`EvalshaSource`] is also the [`StockSource`] of the instance's
//! stock table, which is how the rest of the sale keeps working unchanged:
//! seeding at start-up and on admin changes, units returned by a refused,
//! cancelled or expired order, admin increases and decreases. Its refills
//! grant nothing and say `Elsewhere`, so the table never marks the item sold
//! out and [`Sale::left`](crate::sale::Sale::left) shows the store's count.
//!
//! The take itself does not fit the seam: [`StockSource`] calls may block
//! and are never made on a loop, while this strategy's take *is* the loop's
//! decision and must not block it. So the loop calls
//! [`SharedCounter::take`], which only hands the script to the cache's
//! thread; the answer comes back there and completes the parked request
//! (`crate::sale::scripted`).
//!
//! **Recovery.** A counter that is missing (the cache lost its data) is
//! answered 503, and one instance (the claim of the leased pool's rebuild,
//! reused) sets it again from the store's `total − pending − paid`. Orders
//! still on their way to the store then count twice until they land; the
//! store's conditional stock update refuses the excess, as with leases.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::ItemId;
use super::source::{Beyond, Refill, Return, Seeding, SourceError, StockSource};

/// The store's stock left of an item (`total − pending − paid`), for a rebuild.
pub type StockLeft = Box<dyn Fn(ItemId) -> Option<u64> + Send + Sync>;

/// How long one instance's claim on a counter's rebuild keeps the others
/// from rebuilding it too; a claimant that fails lets the next one try.
const REBUILD_CLAIM_MS: u64 = 1_000;

/// What the take script answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counted {
    /// The units are the order's; `left` remain in the counter.
    Taken { left: u64 },
    /// Fewer units than asked are left: 410.
    SoldOut,
    /// The counter does not exist (the cache lost its data): 503, rebuild.
    Missing,
    /// The cache did not answer: 503.
    Failed,
}

/// Where a take's answer goes: run on the cache's thread, so it must not
/// block (it may queue work for other threads).
pub type Answer = Box<dyn FnOnce(Counted) + Send>;

/// An item's stock as one counter in the shared cache, one script per call.
pub trait SharedCounter: Send + Sync + std::fmt::Debug {
    /// Starts the take script for `units` of `item` and returns at once;
    /// `answer` gets its outcome on the cache's thread. False if it could not
    /// be sent (too many calls waiting, or the cache's thread ended): then
    /// `answer` is dropped uncalled. The one call an event loop makes.
    fn take(&self, item: ItemId, units: u64, answer: Answer) -> bool;
    /// The same script, waiting for its outcome (an admin decrease).
    fn take_now(&self, item: ItemId, units: u64) -> Result<Counted, SourceError>;
    /// `units` back into the counter (INCRBY); false if it is missing, when
    /// its rebuild from the store counts them.
    fn put(&self, item: ItemId, units: u64) -> Result<bool, SourceError>;
    /// [`put`](Self::put) without waiting, for the cache's own thread, where
    /// waiting on the cache would wait on itself.
    fn put_later(&self, item: ItemId, units: u64);
    /// Sets the counter to `units` (`IfAbsent`: only if it does not exist,
    /// so instances starting together agree). True if it was written.
    fn set(&self, item: ItemId, units: u64, seeding: Seeding) -> Result<bool, SourceError>;
    /// Claims the rebuild of a lost counter for `ttl_ms`; true for one claimant.
    fn claim_rebuild(&self, item: ItemId, ttl_ms: u64) -> Result<bool, SourceError>;
}

/// The evalsha strategy's stock source. See the module doc.
pub struct EvalshaSource {
    counter: Arc<dyn SharedCounter>,
    stock_left: StockLeft,
    /// Items whose rebuild this instance has started and not finished: the
    /// many buys that find a counter missing start one between them.
    rebuilding: Mutex<HashSet<ItemId>>,
}

impl std::fmt::Debug for EvalshaSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EvalshaSource").field("counter", &self.counter).finish_non_exhaustive()
    }
}

impl EvalshaSource {
    pub fn new(counter: Arc<dyn SharedCounter>, stock_left: StockLeft) -> Self {
        Self { counter, stock_left, rebuilding: Mutex::new(HashSet::new()) }
    }

    pub fn counter(&self) -> &dyn SharedCounter {
        &*self.counter
    }

    fn rebuilding(&self) -> MutexGuard<'_, HashSet<ItemId>> {
        // Each critical section is one set operation: a panic cannot leave it half done.
        self.rebuilding.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the caller should rebuild `item`'s counter: true once until
    /// [`rebuild`](Self::rebuild) has run. Never blocks (the cache's thread calls it).
    pub fn wants_rebuild(&self, item: ItemId) -> bool {
        self.rebuilding().insert(item)
    }

    /// Sets a lost counter again from the store (`total − pending − paid`),
    /// if this instance wins the claim. Blocks on the cache and the store:
    /// a worker's job.
    pub fn rebuild(&self, item: ItemId) {
        if self.counter.claim_rebuild(item, REBUILD_CLAIM_MS) == Ok(true)
            && let Some(units) = (self.stock_left)(item)
        {
            crate::log!(
                crate::log::Level::Warn,
                "stock counter lost: rebuilding from the store",
                item_id = item,
                units = units
            );
            // SET NX: a counter another instance rebuilt meanwhile, and has
            // been selling from, stays as it is.
            let _ = self.counter.set(item, units, Seeding::IfAbsent);
        }
        self.rebuild_abandoned(item);
    }

    /// The rebuild of `item` is over (or was never started): the next buy
    /// that finds its counter missing may start one.
    pub fn rebuild_abandoned(&self, item: ItemId) {
        self.rebuilding().remove(&item);
    }
}

impl StockSource for EvalshaSource {
    /// Nothing is ever granted to an allotment: the stock stays in the
    /// counter, elsewhere, and the table never marks the item sold out.
    fn refill(&self, _item: ItemId, _left_here: u64) -> Refill {
        Refill { units: 0, beyond: Beyond::Elsewhere }
    }

    /// Never has anything to release (nothing is granted), but whatever
    /// reaches it goes back into the counter.
    fn release(&self, item: ItemId, units: u64) {
        if units > 0 {
            let _ = self.counter.put(item, units);
        }
    }

    fn returned(&self, item: ItemId, units: u64, _epoch: Option<u64>) -> Return {
        if let Err(e) = self.counter.put(item, units) {
            // The store has them: the next rebuild or reconcile counts them.
            crate::log!(crate::log::Level::Warn, "returned units not counted", item_id = item, error = e);
        }
        Return::Pooled
    }

    fn seed(&self, item: ItemId, units: u64, seeding: Seeding) -> Result<(), SourceError> {
        self.counter.set(item, units, seeding).map(drop)
    }

    fn is_shared(&self) -> bool {
        true
    }

    fn withdraw(&self, item: ItemId, units: u64) -> Result<bool, SourceError> {
        Ok(matches!(self.counter.take_now(item, units)?, Counted::Taken { .. }))
    }

    fn add_units(&self, item: ItemId, units: u64) -> Result<(), SourceError> {
        self.counter.put(item, units).map(drop)
    }
}
