//! The order writer's sink: what happens once a batch is durable (or not).
//!
//! Runs on the writer thread, which also owns the payment window's timer
//! wheel, so neither needs a lock. Per order it settles the user's holding
//! and request id, gives refused units back to the stock, puts placed orders
//! into the wheel and queues the answer for the parked request; per batch it
//! wakes each loop once and publishes the items' stock in the catalogue.
//! Between batches it applies wheel changes made by workers (payments and
//! cancellations) and expires what is due, one bounded batch per round.

use std::sync::Arc;
use std::time::{Duration, Instant};

use seckill_reactor::Completer;

use super::{DrainMeter, Ticket, WheelOp};
use crate::api_error::ApiError;
use crate::app::{App, Counters};
use crate::cache::InFlight;
use crate::expiry::{Entry, Expirer, ExpiryDriver, Progress};
use crate::handler::{Answer, Completion};
use crate::log;
use crate::log::Level;
use crate::orders::writer::{Decision, Sink};
use crate::router::Route;
use crate::store::{ItemId, NewOrder, StoreError};

/// How long the writer sleeps when nothing is queued and nothing is due.
const IDLE_WAIT: Duration = Duration::from_millis(100);
/// Expiry batches per round at most, so expiring a whole sale's unpaid
/// orders never keeps new orders waiting for long.
const EXPIRY_ROUNDS_MAX: usize = 4;
/// How often, while batches are being written, the store checkpoints
/// between two of them.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(100);
/// How long another instance believes an in-flight mark: far beyond a
/// batch's commit, so only a mark whose instance died runs out.
const IN_FLIGHT_MARK_MS: u64 = 30_000;

pub struct Confirmer {
    app: Arc<App>,
    completer: Completer<Completion>,
    driver: ExpiryDriver,
    ops: crossbeam_channel::Receiver<WheelOp>,
    /// Items whose stock changed since the catalogue was last told.
    touched: Vec<ItemId>,
    /// Orders of the batch being written that were answered 202 already,
    /// marked in flight in a shared cache until the batch is decided.
    in_flight: Vec<InFlight>,
    /// The writer's drain rate, which bounds the queue in time.
    meter: DrainMeter,
    /// Batches were written since the last checkpoint, which was then.
    unchecked: bool,
    last_checkpoint: Instant,
}

impl std::fmt::Debug for Confirmer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Confirmer").field("driver", &self.driver).finish_non_exhaustive()
    }
}

impl Confirmer {
    pub fn new(
        app: Arc<App>,
        completer: Completer<Completion>,
        driver: ExpiryDriver,
        ops: crossbeam_channel::Receiver<WheelOp>,
    ) -> Self {
        Confirmer {
            app,
            completer,
            driver,
            ops,
            touched: Vec::new(),
            in_flight: Vec::new(),
            meter: DrainMeter::default(),
            unchecked: false,
            last_checkpoint: Instant::now(),
        }
    }

    /// Payments and cancellations made on workers leave the wheel.
    fn apply_wheel_ops(&mut self) {
        for WheelOp::Forget(order_id) in self.ops.try_iter() {
            if self.driver.wheel_mut().cancel(order_id).is_some() {
                self.app.sale.places_freed(1);
            }
        }
    }

    fn track(&mut self, entry: Entry) {
        // The pending count admitted this order only below the wheel's
        // capacity, and wheel ops are applied before inserts, so this cannot
        // be full; if it were, the order would stay pending until a restart
        // rebuilds the wheel: say so loudly.
        if let Err(error) = self.driver.wheel_mut().insert(entry) {
            log!(Level::Error, "order not tracked for expiry", order_id = entry.order_id, error = format!("{error:?}"));
        }
    }

    /// Tells the catalogue the stock of every touched item.
    fn publish(&mut self) {
        self.touched.sort_unstable();
        self.touched.dedup();
        for &item_id in &self.touched {
            publish_left(&self.app, item_id);
        }
        self.touched.clear();
    }
}

/// The catalogue's `stock_left` of `item_id` from the stock table. When
/// other instances sell the same stock, the store's count is the global one:
/// one read of the items' sold counters (not of their orders) per call (a
/// batch, a cancellation, reconcile), never per order nor on a loop.
pub fn publish_left(app: &App, item_id: ItemId) {
    if app.sale.stock.source().is_shared()
        && let Ok(rows) = app.store.stock_snapshot()
    {
        for row in rows {
            app.sale.note_store_left(row.item_id, row.stock_total.saturating_sub(row.sold_units));
        }
    }
    if let Some(item) = app.catalogue.get(item_id) {
        item.set_stock_left(app.sale.left(item_id));
    }
}

impl Sink<Ticket> for Confirmer {
    /// A parked buy is answered 503 at `sale.confirm_timeout_ms`; an order
    /// still queued by then (the writer was held up) is refused unwritten,
    /// so that a retry refused on another instance meanwhile stays true.
    /// Orders answered 202 are promised a decision, whenever it comes.
    fn expired_in_queue(&self, order: &NewOrder, ticket: &Ticket) -> bool {
        let timeout_ms = u64::try_from(self.app.sale.settings.confirm_timeout.as_millis()).unwrap_or(u64::MAX);
        matches!(ticket, Ticket::Parked(_)) && crate::clock::now_ms().saturating_sub(order.created_ms) >= timeout_ms
    }

    fn batch_started(&mut self, orders: &[NewOrder], tickets: &[Ticket]) {
        // Only a shared cache has other instances to tell. Marked: orders
        // answered 202, whose client polls `/result` (perhaps elsewhere), and
        // orders with a request id, whose client may retry elsewhere after a
        // 503 (a retry refused there asks the mark before it says 409/410).
        if !self.app.cache.is_shared() {
            return;
        }
        let until_ms = crate::clock::now_ms() + IN_FLIGHT_MARK_MS;
        self.in_flight.clear();
        for (order, ticket) in orders.iter().zip(tickets) {
            if matches!(ticket, Ticket::Async) || order.request_id.is_some() {
                self.in_flight.push(InFlight { user_id: order.user_id, item_id: order.item_id, until_ms });
            }
        }
        if !self.in_flight.is_empty() {
            self.app.cache.orders_in_flight(&self.in_flight);
        }
    }

    fn decided(&mut self, order: &NewOrder, ticket: Ticket, decision: Decision) {
        let app = self.app.clone();
        let sale = &app.sale;
        let (user, item, quantity) = (order.user_id, order.item_id, order.quantity.get());
        let request_id = order.request_id.as_deref();
        let refused = |error: ApiError, keep_out: bool| {
            sale.undo_take(user, item, quantity, keep_out, order.pool_epoch);
            if let Some(request_id) = request_id {
                sale.requests.forget(user, request_id);
            }
            Counters::bump(&sale.counters.writer_refused);
            Answer::Error(error)
        };
        let answer = match decision {
            Decision::Placed(record) => {
                sale.holdings.settle(user, item, u64::from(quantity), Some(record.id));
                if let Some(request_id) = request_id {
                    sale.requests.done(user, request_id, &record);
                }
                self.apply_wheel_ops();
                let deadline_ms = record.pay_deadline_ms;
                self.track(Entry { order_id: record.id, item_id: item, user_id: user, quantity, deadline_ms });
                Counters::bump(&sale.counters.placed);
                Answer::Order { order_id: record.id, pay_deadline_ms: deadline_ms }
            }
            Decision::Existing(record) => {
                // The request id's first attempt holds the units already.
                sale.undo_take(user, item, quantity, false, order.pool_epoch);
                if let Some(request_id) = request_id {
                    sale.requests.done(user, request_id, &record);
                }
                Counters::bump(&sale.counters.replayed);
                Answer::Order { order_id: record.id, pay_deadline_ms: record.pay_deadline_ms }
            }
            Decision::RequestIdReused => refused(ApiError::RequestIdReused, false),
            Decision::LimitReached => refused(ApiError::LimitReached, false),
            // The store has fewer units than the counter thought: keeping
            // them out corrects the counter.
            Decision::SoldOut => refused(ApiError::SoldOut, true),
            Decision::Gone => refused(ApiError::NoSuchItem, false),
            // Its units were counted again by a rebuild of the pool: kept out.
            Decision::Fenced => refused(ApiError::Unavailable, true),
            Decision::Unavailable => refused(ApiError::Unavailable, false),
        };
        self.touched.push(item);
        if let Ticket::Parked(token) = ticket {
            self.completer.push(token, Completion { route: Route::Seckill, answer });
        }
    }

    fn batch_done(&mut self, orders: usize, commit: Duration) {
        // The catalogue first, so that a client reading the item after its
        // answer sees its own order counted.
        self.publish();
        // The marks go before the answers: a client's next request (a new
        // buy refused at its limit, say) must not find its own landed order
        // still marked. Both travel in order on the cache's one connection.
        if !self.in_flight.is_empty() {
            self.app.cache.orders_landed(&self.in_flight);
            self.in_flight.clear();
        }
        // One wake per loop for the whole batch.
        self.completer.flush();
        if orders == 0 {
            // Only refusals of expired orders: nothing was committed.
            return;
        }
        let sale = &self.app.sale;
        sale.batch_sizes.record(orders as u64);
        sale.commit_latency_us.record(u64::try_from(commit.as_micros()).unwrap_or(u64::MAX));
        self.meter.batch_done(orders, Instant::now(), &sale.admission);
        self.unchecked = true;
    }

    fn between_batches(&mut self) -> Duration {
        // Between batches, after their answers left: no buy waits inside a
        // commit for the checkpoint (those queued meanwhile wait a little).
        if self.unchecked && self.last_checkpoint.elapsed() >= CHECKPOINT_INTERVAL {
            if let Err(error) = self.app.store.checkpoint() {
                log!(Level::Warn, "store checkpoint failed", error = error);
            }
            self.unchecked = false;
            self.last_checkpoint = Instant::now();
        }
        self.apply_wheel_ops();
        let now_ms = crate::clock::now_ms();
        for _ in 0..EXPIRY_ROUNDS_MAX {
            let mut expirer = StoreExpirer { app: &self.app, touched: &mut self.touched };
            match self.driver.tick(now_ms, &mut expirer) {
                Ok(tick) if tick.progress == Progress::More => continue,
                Ok(_) => break,
                Err(error) => {
                    log!(Level::Warn, "expiry failed, retrying", error = error);
                    return Duration::from_millis(50);
                }
            }
        }
        self.publish();
        match self.driver.wheel().next_due_ms() {
            Some(due) => Duration::from_millis(due.saturating_sub(now_ms).clamp(1, IDLE_WAIT.as_millis() as u64)),
            None => IDLE_WAIT,
        }
    }
}

/// Expires due orders in the store, then returns the units of exactly
/// those the store expired.
struct StoreExpirer<'a> {
    app: &'a App,
    touched: &'a mut Vec<ItemId>,
}

impl Expirer for StoreExpirer<'_> {
    type Error = StoreError;

    fn expire(&mut self, due: &[Entry], now_ms: u64) -> Result<(), StoreError> {
        let ids: Vec<u64> = due.iter().map(|e| e.order_id).collect();
        let released = self.app.store.expire_orders(&ids, now_ms)?;
        let sale = &self.app.sale;
        sale.release_all(&released);
        for units in &released {
            Counters::bump(&sale.counters.expired);
            self.touched.push(units.item_id);
        }
        // Every due order left the wheel, expired now or paid or cancelled before.
        sale.places_freed(due.len() as u64);
        Ok(())
    }
}
