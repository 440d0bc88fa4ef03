//! The buy under `sale.stock_strategy = "evalsha"`, after the loop: the
//! answer of the item's take script, on the cache's thread, and what it
//! becomes.
//!
//! ```text
//!  loop: … per-user limit (holdings lock, units reserved) → request id begun
//!        → SharedCounter::take (hands the script to the cache's thread) → park
//!  cache thread, on the script's answer:
//!        taken    → order id → the writer's queue, parked as any buy (sync),
//!                   or 202 now (async); the store's conditional update is
//!                   still the last word, and units it refuses go back (INCRBY)
//!        sold out → 410 (a request id first looked up in the store, on a worker)
//!        missing  → 503, and a worker rebuilds the counter from the store
//!        failed   → 503
//! ```
//!
//! Nothing here may block: the cache's thread runs every Redis call of the
//! instance. Units to give back go with [`SharedCounter::put_later`], store
//! lookups to a worker.

use std::num::NonZeroU32;
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use seckill_protocol::Status;
use seckill_reactor::{Completer, ParkToken};

use super::{Refusal, Ticket};
use crate::api::buy::{refusal_error, stored_replay};
use crate::api_error::ApiError;
use crate::app::{App, Counters};
use crate::handler::{Answer, Completion};
use crate::reply::Reply;
use crate::router::Route;
use crate::stock::{Counted, EvalshaSource};
use crate::store::NewOrder;

/// A buy whose units the script is asked for, parked under `park`.
#[derive(Debug)]
pub struct ScriptedBuy {
    pub user: u64,
    pub item_id: u64,
    pub quantity: NonZeroU32,
    /// When the loop handled it: the order's creation time.
    pub created_ms: u64,
    pub request_id: Option<String>,
    pub park: ParkToken,
}

/// The evalsha strategy's state: its source, and the completer its answers
/// go through (attached once the reactor runs).
#[derive(Debug)]
pub struct Scripted {
    pub source: Arc<EvalshaSource>,
    /// Only the cache's thread pushes, so the lock is never contended.
    completer: OnceLock<Mutex<Completer<Completion>>>,
}

impl Scripted {
    pub fn new(source: Arc<EvalshaSource>) -> Self {
        Self { source, completer: OnceLock::new() }
    }

    /// Start-up, once the reactor runs.
    pub fn attach(&self, completer: Completer<Completion>) {
        // A second call would be a start-up bug; the first completer stays.
        let _ = self.completer.set(Mutex::new(completer));
    }

    /// From the loop: sends the take script; false if it could not be sent
    /// (the caller undoes the reservation and answers 503).
    pub fn start(&self, app: &Arc<App>, buy: ScriptedBuy) -> bool {
        let (item, units) = (buy.item_id, u64::from(buy.quantity.get()));
        let app = app.clone();
        self.source.counter().take(item, units, Box::new(move |counted| settle(&app, buy, counted)))
    }

    /// Answers the parked request now. Each answer wakes its loop: the
    /// answers arrive one by one as fred reads them.
    fn complete(&self, park: ParkToken, answer: Answer) {
        if let Some(completer) = self.completer.get() {
            let mut completer = completer.lock();
            completer.push(park, Completion { route: Route::Seckill, answer });
            completer.flush();
        }
    }
}

/// The script answered for `buy`. On the cache's thread.
fn settle(app: &Arc<App>, buy: ScriptedBuy, counted: Counted) {
    let Some(scripted) = &app.sale.scripted else { return };
    match counted {
        Counted::Taken { .. } => admit(app, scripted, buy),
        Counted::SoldOut if buy.request_id.is_some() => sold_out_unless_stored(app, scripted, buy),
        Counted::SoldOut => refuse(app, scripted, &buy, Refusal::SoldOut),
        Counted::Missing => {
            rebuild_later(app, buy.item_id);
            refuse(app, scripted, &buy, Refusal::Busy);
        }
        Counted::Failed => refuse(app, scripted, &buy, Refusal::Busy),
    }
}

/// The units are the order's: to the writer, as the loop queues a buy.
fn admit(app: &App, scripted: &Scripted, buy: ScriptedBuy) {
    let sale = &app.sale;
    let give_up = |refusal| {
        scripted.source.counter().put_later(buy.item_id, u64::from(buy.quantity.get()));
        refuse(app, scripted, &buy, refusal);
    };
    let Ok(order_id) = sale.order_ids.next(buy.created_ms) else { return give_up(Refusal::Busy) };
    let order = NewOrder {
        id: order_id,
        item_id: buy.item_id,
        user_id: buy.user,
        quantity: buy.quantity,
        created_ms: buy.created_ms,
        pay_deadline_ms: buy.created_ms + sale.settings.payment_window_ms,
        request_id: buy.request_id.clone(),
        pool_epoch: None,
    };
    let ticket = if sale.settings.confirm_async { Ticket::Async } else { Ticket::Parked(buy.park) };
    if !sale.try_queue(order, ticket) {
        return give_up(Refusal::Overloaded);
    }
    Counters::bump(&sale.counters.admitted);
    if let Ticket::Async = ticket {
        let queued = Reply::json(Status::ACCEPTED, b"{\"status\":\"queued\"}".to_vec());
        scripted.complete(buy.park, Answer::Reply(queued));
    }
    // Sync: the writer completes the parked request once the batch is durable.
}

/// Undoes the loop's reservation and answers the refusal.
fn refuse(app: &App, scripted: &Scripted, buy: &ScriptedBuy, refusal: Refusal) {
    let sale = &app.sale;
    sale.unreserve(buy.user, buy.item_id, buy.quantity.get());
    if let Some(request_id) = &buy.request_id {
        sale.requests.forget(buy.user, request_id);
    }
    scripted.complete(buy.park, Answer::Error(refusal_error(refusal, &sale.counters)));
}

/// Sold out, but the request id's first attempt may have made an order on
/// another instance: a worker asks the store, as the loop does for leases.
fn sold_out_unless_stored(app: &Arc<App>, scripted: &Scripted, buy: ScriptedBuy) {
    let sale = &app.sale;
    sale.unreserve(buy.user, buy.item_id, buy.quantity.get());
    let Some(request_id) = buy.request_id else { return };
    sale.requests.forget(buy.user, &request_id);
    let error = refusal_error(Refusal::SoldOut, &sale.counters);
    let Some(reservation) = app.workers.try_reserve() else {
        // Without a worker the outcome cannot be known: 503, not 410.
        Counters::bump(&app.counters.workers_full);
        return scripted.complete(buy.park, Answer::Error(ApiError::Unavailable));
    };
    let (app, park) = (app.clone(), buy.park);
    let (user, item_id, quantity) = (buy.user, buy.item_id, buy.quantity.get());
    reservation.submit(Box::new(move |completer| {
        let answer = match stored_replay(&app, user, &request_id, item_id, quantity, error) {
            Ok(reply) => Answer::Reply(reply),
            Err(e) => Answer::Error(e),
        };
        completer.push(park, Completion { route: Route::Seckill, answer });
    }));
}

/// The counter is missing: one worker of this instance tries to rebuild it.
fn rebuild_later(app: &Arc<App>, item_id: u64) {
    let Some(scripted) = &app.sale.scripted else { return };
    if !scripted.source.wants_rebuild(item_id) {
        return;
    }
    let Some(reservation) = app.workers.try_reserve() else {
        // The next buy that finds it missing tries again.
        scripted.source.rebuild_abandoned(item_id);
        return;
    };
    let app = app.clone();
    reservation.submit(Box::new(move |_| {
        if let Some(scripted) = &app.sale.scripted {
            scripted.source.rebuild(item_id);
        }
    }));
}
