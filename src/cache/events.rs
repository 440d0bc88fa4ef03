//! What an instance does with the other instances' news: logouts, changed
//! items, units back in a shared stock pool, and a resynchronisation after
//! news may have been lost.
//!
//! The shared cache delivers events on its own thread, which must never
//! block (it also serves every Redis call). So the sink only queues them, in
//! a bounded channel; the `cache-events` thread applies them (item reloads
//! read the store). A full queue is not an error: it sets a flag, and the
//! thread then resynchronises, which covers whatever was dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError};

use super::{Cache, CacheError, CacheEvent, EventSink};
use crate::api::admin::reload_item;
use crate::app::App;
use crate::log;
use crate::log::Level;

/// Events waiting for the thread; beyond, a resynchronisation replaces them.
const EVENTS_QUEUED_MAX: usize = 4096;
/// How often the thread looks at the overflow flag when no event comes.
const IDLE_CHECK: Duration = Duration::from_millis(200);

/// A subscription made before anything was loaded from the store, so that
/// no change made meanwhile by another instance is missed.
#[derive(Debug)]
pub struct Subscription {
    events: Receiver<CacheEvent>,
    overflowed: Arc<AtomicBool>,
}

/// Subscribes to `cache`'s events (a cache no other instance shares sends none).
pub fn subscribe(cache: &dyn Cache) -> Result<Subscription, CacheError> {
    let (tx, events) = crossbeam_channel::bounded(EVENTS_QUEUED_MAX);
    let overflowed = Arc::new(AtomicBool::new(false));
    let flag = overflowed.clone();
    let sink: EventSink = Arc::new(move |event| {
        if tx.try_send(event).is_err() {
            flag.store(true, Ordering::Release);
        }
    });
    cache.listen(sink)?;
    Ok(Subscription { events, overflowed })
}

/// Starts the thread that applies the events to `app`.
pub fn start(app: Arc<App>, subscription: Subscription) -> std::io::Result<()> {
    std::thread::Builder::new().name("cache-events".into()).spawn(move || {
        loop {
            if subscription.overflowed.swap(false, Ordering::AcqRel) {
                apply(&app, CacheEvent::Resync);
            }
            match subscription.events.recv_timeout(IDLE_CHECK) {
                Ok(event) => apply(&app, event),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    })?;
    Ok(())
}

fn apply(app: &App, event: CacheEvent) {
    match event {
        CacheEvent::Revoked(token) => app.revocations.revoke(token),
        CacheEvent::ItemChanged(item_id) => {
            if let Err(e) = reload_item(app, item_id) {
                log!(Level::Warn, "item reload failed", item_id = item_id, error = e.code());
            }
        }
        CacheEvent::StockReturned(item_id) => {
            if let Some(slot) = app.sale.stock.slot(item_id) {
                app.sale.stock.units_returned(slot);
            }
        }
        CacheEvent::Resync => {
            log!(Level::Info, "cache events may have been missed: resynchronising");
            // Every loop forgets its sessions and asks the shared cache again.
            app.revocations.forget_all();
            match app.store.items() {
                Ok(items) => {
                    for item in items {
                        if let Err(e) = reload_item(app, item.id) {
                            log!(Level::Warn, "item reload failed", item_id = item.id, error = e.code());
                        }
                    }
                }
                Err(e) => log!(Level::Warn, "item reload failed", error = e),
            }
        }
    }
}
