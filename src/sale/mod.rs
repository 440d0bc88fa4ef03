//! The buy: everything between a checked `POST /api/seckill/{path}` and a
//! durable order, and what happens to the order afterwards.
//!
//! ```text
//!  event loop (hot path, never blocks)          writer thread (group commit)
//!  ──────────────────────────────────           ─────────────────────────────
//!  request index ─ retry? answer from memory
//!  holdings lock ─ per-user limit (409)
//!     └ stock.take ─ sold-out bit, CAS (410)
//!  order id (CAS)
//!  queue.try_send ───── bounded channel ──────▶ gather a batch, one transaction,
//!  park (sync) or 202 (async)                   one fsync; per order a Decision
//!                                                 ├ holdings, request index
//!          ◀─── one wake per loop per batch ──────┼ completions (200/409/410/503)
//!                                                 ├ refused units back to stock
//!                                                 └ placed orders into the expiry wheel
//!                                               between batches: expire what is due
//! ```
//!
//! - [`Sale`]: the shared state (stock table, order ids, holdings, request
//!   index, the queue), built at start-up from the store.
//! - `holdings`: per (user, item) live and in-flight units, for the limit.
//! - `requests`: request ids seen, for instant idempotent retries.
//! - `confirm`: the writer's sink (completions, stock, expiry).
//! - `scripted`: the buy's second half under the evalsha strategy (one
//!   script per buy in Redis instead of [`Sale::take`]).
//!
//! Units move between exactly three places, and each move has one owner:
//! the allotment (sellable), an in-flight order (taken by a loop, not yet
//! decided), and a store order (pending or paid). The loop moves allotment →
//! in flight; the writer moves in flight → store or back to the allotment;
//! pay/cancel/expiry move store → allotment, once, because the store's status
//! change is made once. A store refusal of `sold_out` is the one move that
//! does not give back: the local counter was ahead of the store, and keeping
//! the units out corrects it.

pub mod admission;
pub mod confirm;
pub mod holdings;
pub mod requests;
pub mod scripted;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use parking_lot::Mutex;
use seckill_reactor::ParkToken;

use crate::orders::writer::{Queued, WriterStats};
use crate::stock::{Beyond, OrderIds, Outcome, Seeding, Slot, Stock, StockError};
use crate::store::{ItemId, ItemStats, NewOrder, ReleasedUnits, UserId};
pub use admission::{Admission, DrainMeter};
pub use holdings::Holdings;
pub use requests::{Known, RequestIndex};
pub use scripted::Scripted;

/// Where the writer's decision about an order goes.
#[derive(Clone, Copy, Debug)]
pub enum Ticket {
    /// A parked request (sync confirmation): completed through the reactor.
    Parked(ParkToken),
    /// Answered 202 already (async confirmation): the client polls /result.
    Async,
}

/// Why the loop refused to take stock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// 409 `limit_reached`.
    LimitReached,
    /// 410 `sold_out`.
    SoldOut,
    /// 503 `unavailable`, short Retry-After: another instance may still hold units.
    Busy,
    /// 503 `overloaded`: too many orders pending or queued.
    Overloaded,
}

/// A wheel change requested off the writer thread (a payment or a
/// cancellation on a worker): applied by the writer before its next inserts.
#[derive(Clone, Copy, Debug)]
pub enum WheelOp {
    /// The order left `pending_payment`: stop tracking its deadline.
    Forget(u64),
}

/// Counters of the buy, for `/metrics`.
#[derive(Debug, Default)]
pub struct SaleCounters {
    pub admitted: AtomicU64,
    pub replayed: AtomicU64,
    pub refused_limit: AtomicU64,
    pub refused_sold_out: AtomicU64,
    pub refused_busy: AtomicU64,
    pub refused_overloaded: AtomicU64,
    pub placed: AtomicU64,
    pub writer_refused: AtomicU64,
    /// Orders whose units came back: cancelled, or expired (by the wheel or
    /// by a late payment). Counted once per order, by the call that did it.
    pub cancelled: AtomicU64,
    pub expired: AtomicU64,
}

/// Group-commit latency, in fixed buckets (microseconds).
pub const COMMIT_BOUNDS_US: [u64; 12] =
    [250, 500, 1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 256_000, 1_000_000];
/// Batch sizes, in fixed buckets (orders).
pub const BATCH_BOUNDS: [u64; 8] = [1, 4, 16, 64, 256, 1024, 4096, 16384];

/// A fixed-bucket histogram written by one thread, read by `/metrics`.
#[derive(Debug)]
pub struct Buckets<const N: usize> {
    bounds: &'static [u64; N],
    counts: [AtomicU64; N],
    overflow: AtomicU64,
    sum: AtomicU64,
}

impl<const N: usize> Buckets<N> {
    pub const fn new(bounds: &'static [u64; N]) -> Self {
        Buckets {
            bounds,
            counts: [const { AtomicU64::new(0) }; N],
            overflow: AtomicU64::new(0),
            sum: AtomicU64::new(0),
        }
    }

    pub fn record(&self, value: u64) {
        match self.bounds.iter().position(|&b| value <= b) {
            Some(i) => self.counts[i].fetch_add(1, Relaxed),
            None => self.overflow.fetch_add(1, Relaxed),
        };
        self.sum.fetch_add(value, Relaxed);
    }

    /// `(upper bound, cumulative count)` per bucket, then `(None, total)`, and the sum.
    pub fn cumulative(&self) -> (Vec<(Option<u64>, u64)>, u64) {
        let mut total = 0;
        let mut out: Vec<(Option<u64>, u64)> = self
            .bounds
            .iter()
            .zip(&self.counts)
            .map(|(&bound, count)| {
                total += count.load(Relaxed);
                (Some(bound), total)
            })
            .collect();
        out.push((None, total + self.overflow.load(Relaxed)));
        (out, self.sum.load(Relaxed))
    }
}

/// How the sale is configured.
#[derive(Clone, Copy, Debug)]
pub struct SaleSettings {
    pub confirm_async: bool,
    pub confirm_timeout: Duration,
    pub payment_window_ms: u64,
    pub pending_orders_max: u64,
}

/// The shared state of the buy. One per instance, in [`crate::app::App`].
#[derive(Debug)]
pub struct Sale {
    pub settings: SaleSettings,
    /// The stock table; its source (embedded, leased from a shared pool,
    /// or a counter per item under evalsha) is what admin changes go through.
    pub stock: Stock,
    /// Set under `sale.stock_strategy = "evalsha"`: buys skip
    /// [`take`](Self::take) and ask the shared counter, one script each.
    pub scripted: Option<Scripted>,
    pub order_ids: OrderIds,
    pub holdings: Holdings,
    pub requests: RequestIndex,
    /// The queue's bound in time: the writer sets it, a buy reads it.
    pub admission: Admission,
    queue: Sender<Queued<Ticket>>,
    /// Taken once by the writer thread.
    queue_rx: Mutex<Option<Receiver<Queued<Ticket>>>>,
    wheel_ops: Sender<WheelOp>,
    wheel_ops_rx: Mutex<Option<Receiver<WheelOp>>>,
    /// Orders admitted and not yet refused or out of the expiry wheel: at
    /// most `pending_orders_max`, the wheel's capacity.
    pending: AtomicU64,
    /// One stock change at a time (admin puts and deltas, reconcile).
    pub restock_lock: Mutex<()>,
    pub counters: SaleCounters,
    pub writer_stats: WriterStats,
    pub commit_latency_us: Buckets<12>,
    pub batch_sizes: Buckets<8>,
    /// Each item's units by order status as the store last counted them
    /// (the keeper refreshes it every few seconds), for `/metrics`.
    pub store_stats: Mutex<Vec<ItemStats>>,
    /// Each item's units left as the store last counted them, when other
    /// instances sell the same stock (see [`left`](Self::left)).
    store_left: Mutex<HashMap<ItemId, u64>>,
}

impl Sale {
    pub fn new(
        settings: SaleSettings,
        stock: Stock,
        order_ids: OrderIds,
        admission: Admission,
        queue_max: usize,
        request_ids_max: usize,
    ) -> Self {
        let (queue, queue_rx) = crossbeam_channel::bounded(queue_max);
        // Unbounded in type only: each pending order yields at most one op,
        // and pending orders are bounded by `pending_orders_max`.
        let (wheel_ops, wheel_ops_rx) = crossbeam_channel::unbounded();
        Sale {
            settings,
            stock,
            scripted: None,
            order_ids,
            holdings: Holdings::new(),
            requests: RequestIndex::new(request_ids_max),
            admission,
            queue,
            queue_rx: Mutex::new(Some(queue_rx)),
            wheel_ops,
            wheel_ops_rx: Mutex::new(Some(wheel_ops_rx)),
            pending: AtomicU64::new(0),
            restock_lock: Mutex::new(()),
            counters: SaleCounters::default(),
            writer_stats: WriterStats::default(),
            commit_latency_us: Buckets::new(&COMMIT_BOUNDS_US),
            batch_sizes: Buckets::new(&BATCH_BOUNDS),
            store_stats: Mutex::new(Vec::new()),
            store_left: Mutex::new(HashMap::new()),
        }
    }

    /// The hot path's decision, under the (user, item) holdings lock so that
    /// concurrent requests of one user cannot both pass the limit: 409 if
    /// the user would hold more than `limit`, else take the units from the
    /// stock (410 / 503 when it cannot) and count them in flight. On `Ok`
    /// the caller must queue the order or [`undo_take`](Self::undo_take);
    /// `Ok` carries the pool generation of the units, for the order
    /// (`NewOrder::pool_epoch`).
    #[inline]
    pub fn take(
        &self,
        user: UserId,
        item: ItemId,
        slot: Slot,
        quantity: u32,
        limit: u32,
    ) -> Result<Option<u64>, Refusal> {
        let mut held = self.holdings.lock(user, item);
        if held.held().total() + u64::from(quantity) > u64::from(limit) {
            return Err(Refusal::LimitReached);
        }
        let epoch = match self.stock.take(slot, u64::from(quantity)) {
            Outcome::Taken { epoch, .. } => epoch,
            Outcome::SoldOut => return Err(Refusal::SoldOut),
            Outcome::Busy { .. } => return Err(Refusal::Busy),
        };
        // The order will need a place in the expiry wheel. Counted after the
        // take, so that a refusal touches no shared counter.
        if self.pending.fetch_add(1, Relaxed) >= self.settings.pending_orders_max {
            self.pending.fetch_sub(1, Relaxed);
            self.stock.put_back(slot, u64::from(quantity), epoch);
            return Err(Refusal::Overloaded);
        }
        held.reserve(u64::from(quantity));
        Ok(epoch)
    }

    /// The evalsha strategy's part of [`take`](Self::take): the per-user
    /// limit and a place for the order, under the same lock, without
    /// touching the stock table (the shared counter is asked next). On `Ok`
    /// the caller must queue the order or [`unreserve`](Self::unreserve).
    pub fn reserve(&self, user: UserId, item: ItemId, quantity: u32, limit: u32) -> Result<(), Refusal> {
        let mut held = self.holdings.lock(user, item);
        if held.held().total() + u64::from(quantity) > u64::from(limit) {
            return Err(Refusal::LimitReached);
        }
        if self.pending.fetch_add(1, Relaxed) >= self.settings.pending_orders_max {
            self.pending.fetch_sub(1, Relaxed);
            return Err(Refusal::Overloaded);
        }
        held.reserve(u64::from(quantity));
        Ok(())
    }

    /// Undoes a [`reserve`](Self::reserve): the units were never in the
    /// stock table, so none go back to it.
    pub fn unreserve(&self, user: UserId, item: ItemId, quantity: u32) {
        self.undo_take(user, item, quantity, true, None);
    }

    /// Queues an order without blocking; false if the queue is full or
    /// beyond its bound in time, as in [`queue`](Self::queue) (the caller
    /// undoes it: under evalsha its units go back to the counter, which
    /// `queue` would put in the allotment).
    pub fn try_queue(&self, order: NewOrder, ticket: Ticket) -> bool {
        self.admission.admits(self.queue.len()) && self.queue.try_send(Queued { order, ticket }).is_ok()
    }

    /// Undoes a [`take`](Self::take) whose order was not queued, or was
    /// refused by the writer: units back to the stock (unless `keep_out`,
    /// when the store found them not to exist), out of the user's in-flight
    /// units, and the pending place freed. `epoch` is the order's pool
    /// generation: units of a pool rebuilt since are not given back.
    pub fn undo_take(&self, user: UserId, item: ItemId, quantity: u32, keep_out: bool, epoch: Option<u64>) {
        if !keep_out && let Some(slot) = self.stock.slot(item) {
            self.stock.give_back(slot, u64::from(quantity), epoch);
        }
        self.holdings.settle(user, item, u64::from(quantity), None);
        self.pending.fetch_sub(1, Relaxed);
    }

    /// Undoes a [`take`](Self::take) on the loop, before its order left
    /// it: units back into the allotment (loops never call the source),
    /// out of the user's in-flight units, and the pending place freed.
    pub fn untake(&self, user: UserId, item: ItemId, quantity: u32, epoch: Option<u64>) {
        if let Some(slot) = self.stock.slot(item) {
            self.stock.put_back(slot, u64::from(quantity), epoch);
        }
        self.holdings.settle(user, item, u64::from(quantity), None);
        self.pending.fetch_sub(1, Relaxed);
    }

    /// Queues an admitted order for the writer without blocking. A queue
    /// beyond its bound in time ([`Admission`]) or full gives the order back
    /// (undo) and answers 503 `overloaded`: checked here, after the limit and
    /// the stock, so that a sold-out item still answers 410.
    pub fn queue(&self, order: NewOrder, ticket: Ticket) -> Result<(), Refusal> {
        let refused = if self.admission.admits(self.queue.len()) {
            match self.queue.try_send(Queued { order, ticket }) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Full(q) | TrySendError::Disconnected(q)) => q.order,
            }
        } else {
            order
        };
        self.untake(refused.user_id, refused.item_id, refused.quantity.get(), refused.pool_epoch);
        if let Some(request_id) = &refused.request_id {
            self.requests.forget(refused.user_id, request_id);
        }
        Err(Refusal::Overloaded)
    }

    /// A live order left the live states (cancelled, expired, or expired by
    /// a late payment): its units are sellable again and no longer held.
    /// Call once per order: the store's status change is the "once".
    pub fn release(&self, user: UserId, item: ItemId, quantity: u32, order_id: u64) {
        if let Some(slot) = self.stock.slot(item) {
            // Free now, whichever pool they came from: the current one's.
            self.stock.give_back(slot, u64::from(quantity), None);
        }
        self.holdings.release(user, item, u64::from(quantity), order_id);
    }

    /// [`release`](Self::release) for every order of one expiry batch, the
    /// units handed to the stock once per item. Per order, a shared pool
    /// would cost the writer thread a Redis round trip (and an announcement)
    /// for each of up to a thousand orders: about a second per expiry batch
    /// under load, which held the sale to one order batch a second (issue 10).
    pub fn release_all(&self, released: &[ReleasedUnits]) {
        // A batch has a handful of items: a linear scan beats hashing.
        let mut per_item: Vec<(ItemId, u64)> = Vec::new();
        for r in released {
            match per_item.iter_mut().find(|(item, _)| *item == r.item_id) {
                Some((_, units)) => *units += u64::from(r.quantity),
                None => per_item.push((r.item_id, u64::from(r.quantity))),
            }
        }
        for (item, units) in per_item {
            if let Some(slot) = self.stock.slot(item) {
                // Free now, whichever pool they came from: the current one's.
                self.stock.give_back(slot, units, None);
            }
        }
        for r in released {
            self.holdings.release(r.user_id, r.item_id, u64::from(r.quantity), r.order_id);
        }
    }

    /// A pending order was paid, cancelled or expired off the writer
    /// thread: the writer takes it out of the wheel, which frees its place
    /// ([`places_freed`](Self::places_freed)) — once, however many calls
    /// report the same order.
    pub fn forget_deadline(&self, order_id: u64) {
        let _ = self.wheel_ops.send(WheelOp::Forget(order_id));
    }

    /// The writer took `orders` out of the wheel (due, or forgotten).
    pub fn places_freed(&self, orders: u64) {
        self.pending.fetch_sub(orders, Relaxed);
    }

    /// Start-up: pending orders found in the store hold places.
    pub fn count_pending(&self, orders: u64) {
        self.pending.fetch_add(orders, Relaxed);
    }

    pub fn pending(&self) -> u64 {
        self.pending.load(Relaxed)
    }

    pub fn queue_depth(&self) -> usize {
        self.queue.len()
    }

    /// The writer's ends of the queues; `None` after the first call.
    pub fn take_receivers(&self) -> Option<(Receiver<Queued<Ticket>>, Receiver<WheelOp>)> {
        Some((self.queue_rx.lock().take()?, self.wheel_ops_rx.lock().take()?))
    }

    /// Sets the units of `item` not yet sold to `units` (start-up, a new
    /// item, a changed stock total, reconcile), as `seeding` says: the
    /// allotment here is handed back first, then the source seeded, then a
    /// first refill taken. Holds the restock lock; never on a loop.
    pub fn restock(&self, item: ItemId, units: u64, seeding: Seeding) -> Result<Slot, StockError> {
        let _one_at_a_time = self.restock_lock.lock();
        let slot = self.stock.add(item)?;
        let source = self.stock.source();
        let drained = self.stock.item(slot).allotment().drain();
        if drained > 0 {
            source.release(item, drained);
        }
        source.seed(item, units, seeding).map_err(|_| StockError::SourceUnavailable)?;
        self.stock.refill(slot);
        Ok(slot)
    }

    /// `units` more of `item` (an admin stock increase).
    pub fn add_units(&self, item: ItemId, units: u64) -> Result<(), StockError> {
        let _one_at_a_time = self.restock_lock.lock();
        let slot = self.stock.add(item)?;
        self.stock.source().add_units(item, units).map_err(|_| StockError::SourceUnavailable)?;
        self.stock.refill(slot);
        Ok(())
    }

    /// Takes `units` of `item` off sale for good (an admin decrease); false
    /// if fewer are left here (embedded), or in the shared pool once this
    /// instance's allotment is back in it (leased: units other instances
    /// hold cannot be withdrawn).
    pub fn withdraw_units(&self, item: ItemId, units: u64) -> bool {
        let _one_at_a_time = self.restock_lock.lock();
        let Some(slot) = self.stock.slot(item) else { return false };
        let source = self.stock.source();
        if !source.is_shared() {
            return self.stock.withdraw(slot, units);
        }
        let here = self.stock.item(slot).allotment().drain();
        if here > 0 {
            source.release(item, here);
        }
        let withdrawn = source.withdraw(item, units).unwrap_or(false);
        self.stock.refill(slot);
        withdrawn
    }

    /// The store's count of the units of `item` left (`total − pending −
    /// paid`: after a batch, a cancellation, an admin change), for
    /// [`left`](Self::left).
    pub fn note_store_left(&self, item: ItemId, units: u64) {
        self.store_left.lock().insert(item, units);
    }

    /// Units of `item` left, as the catalogue shows them (contract §3: global,
    /// possibly a moment stale): those here when nothing is beyond this
    /// allotment (the embedded source always), else at least the store's last
    /// count, and not 0 before the store has counted.
    pub fn left(&self, item: ItemId) -> u64 {
        let Some(slot) = self.stock.slot(item) else { return 0 };
        let stock = self.stock.item(slot);
        let here = stock.allotment().left();
        if stock.beyond() == Beyond::Nothing {
            return here;
        }
        match self.store_left.lock().get(&item) {
            Some(&counted) => here.max(counted),
            None => here.max(1),
        }
    }
}
