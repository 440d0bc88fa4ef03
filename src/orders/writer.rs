//! The group-commit order writer: one thread that turns a stream of orders
//! (already admitted by the hot path, their stock already taken from the
//! local counter) into durable rows, a batch at a time.
//!
//! It blocks on its queue for the first order, then gathers more until the
//! batch holds `batch_orders_max` orders or `batch_wait` has passed since the
//! first — whichever comes first — and writes the whole batch in one store
//! transaction, so one fsync covers every order in it. Then it tells its
//! [`Sink`] the fate of each order and that the batch is done; the server's
//! sink completes the parked requests (one wake per loop per batch), gives
//! back the stock of refused orders, and arms the payment window of placed
//! ones.
//!
//! A failed transaction wrote nothing (the store rolls it back), so every
//! order of that batch is refused as `Unavailable` and its stock returned.
//! A transaction whose outcome is unknown (`StoreError::OutcomeUnknown`: the
//! database went away during its COMMIT) may have committed: its units
//! cannot go back, nor can its orders be forgotten. The writer holds the
//! batch and sends it again every `retry` until the store answers; the
//! batch is idempotent (order ids are primary keys, request ids unique), so
//! the answer says which orders the lost attempt committed — an entry that
//! finds its own order id — and commits the others now. Meanwhile the parked
//! requests get 503 at the confirm timeout and new orders queue, then meet a
//! full queue (503): nothing is decided twice and nothing is lost.
//! An order its sink says expired in the queue (a parked buy already
//! answered 503 at its confirm timeout, the writer having been held up) is
//! refused before the batch is written: its client may have retried on
//! another instance and been refused there, which a late commit would
//! contradict.
//! The writer never busy-polls: it sleeps in `recv` between batches.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use crate::store::{NewOrder, OrderOutcome, OrderRecord, Store, StoreError};

/// The fate of one order, as the client will hear it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Durable now: 200 with this order.
    Placed(OrderRecord),
    /// The request id already made this order: 200 with it, again. Its stock
    /// was taken a second time by the hot path and must go back.
    Existing(OrderRecord),
    /// The request id made an order of another item or quantity: 409.
    RequestIdReused,
    /// 409 `limit_reached`.
    LimitReached,
    /// 410 `sold_out`: the store found too few units (the local counter was
    /// ahead of it and must be corrected).
    SoldOut,
    /// 404: the item (or the user) is gone.
    Gone,
    /// The order's units came from a stock pool rebuilt since: a rebuild
    /// counted them as unsold, so they are dropped here (neither back in the
    /// allotment nor in the pool) and the client hears 503: nothing was
    /// written, and a retry takes a unit of the new pool.
    Fenced,
    /// The store failed: nothing of this order was written. 503.
    Unavailable,
}

impl Decision {
    /// Whether the order's units must go back to the local stock (no new
    /// order holds them).
    pub fn returns_stock(&self) -> bool {
        !matches!(self, Decision::Placed(_))
    }

    fn of(order: &NewOrder, outcome: OrderOutcome) -> Decision {
        match outcome {
            OrderOutcome::Committed(record) => Decision::Placed(record),
            OrderOutcome::Duplicate(record) => {
                if record.item_id == order.item_id && record.quantity == order.quantity.get() {
                    Decision::Existing(record)
                } else {
                    Decision::RequestIdReused
                }
            }
            OrderOutcome::LimitReached => Decision::LimitReached,
            OrderOutcome::SoldOut => Decision::SoldOut,
            OrderOutcome::Fenced => Decision::Fenced,
            OrderOutcome::NoSuchItem | OrderOutcome::NoSuchUser => Decision::Gone,
            // A duplicate generated id is a bug of ours; the order is not
            // durable, so the client must hear "outcome unknown, retry".
            OrderOutcome::IdTaken => Decision::Unavailable,
        }
    }
}

/// Where the writer's decisions go. `T` is what travels with each order
/// (for the server: where to answer).
pub trait Sink<T> {
    /// Whether an order waited in the queue so long that its client has
    /// been answered already (503, outcome unknown) and may have retried
    /// elsewhere, where a refusal must stay true: it is refused unwritten
    /// (`Decision::Unavailable`) instead of joining the batch.
    fn expired_in_queue(&self, _order: &NewOrder, _ticket: &T) -> bool {
        false
    }
    /// A batch is about to be committed (before the store is asked).
    fn batch_started(&mut self, _orders: &[NewOrder], _tickets: &[T]) {}
    fn decided(&mut self, order: &NewOrder, ticket: T, decision: Decision);
    /// Every order of the batch (`orders` of them, committed in `commit`)
    /// has been decided.
    fn batch_done(&mut self, orders: usize, commit: Duration);
    /// Called before the writer waits for the next order (after every
    /// batch, and whenever a wait ends empty): other work of the writer
    /// thread, such as expiring orders. Returns how long the writer may wait
    /// for an order before calling again.
    fn between_batches(&mut self) -> Duration {
        Duration::MAX
    }
}

/// An order on its way to the writer.
#[derive(Debug)]
pub struct Queued<T> {
    pub order: NewOrder,
    pub ticket: T,
}

#[derive(Debug, Clone, Copy)]
pub struct WriterSettings {
    pub batch_orders_max: usize,
    /// How long a batch may wait for more orders after its first.
    pub batch_wait: Duration,
    /// How often to look at the stop flag while idle.
    pub idle_check: Duration,
    /// How long to wait before sending again a batch whose outcome is unknown.
    pub retry: Duration,
}

/// Counters for `/metrics`, written by the writer alone.
#[derive(Debug, Default)]
pub struct WriterStats {
    pub batches: AtomicU64,
    pub orders: AtomicU64,
    pub failed_batches: AtomicU64,
    /// Batches whose commit outcome was unknown, then resolved by asking again.
    pub unknown_batches: AtomicU64,
    /// The largest batch so far.
    pub batch_orders_peak: AtomicU64,
    /// Total time inside the store's commit, microseconds.
    pub commit_us_total: AtomicU64,
}

/// Runs until `stop` is set and the queue is empty, or every sender is gone.
pub fn run<T>(
    store: &dyn Store,
    queue: &Receiver<Queued<T>>,
    settings: WriterSettings,
    sink: &mut impl Sink<T>,
    stats: &WriterStats,
    stop: &AtomicBool,
) {
    let batch_max = settings.batch_orders_max.max(1);
    let mut orders: Vec<NewOrder> = Vec::with_capacity(batch_max);
    let mut tickets: Vec<T> = Vec::with_capacity(batch_max);
    loop {
        let wait = sink.between_batches().min(settings.idle_check);
        let first = match queue.recv_timeout(wait) {
            Ok(first) => first,
            Err(RecvTimeoutError::Timeout) if stop.load(Relaxed) => return,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let gather_until = Instant::now() + settings.batch_wait;
        orders.push(first.order);
        tickets.push(first.ticket);
        while orders.len() < batch_max {
            // Take what is already queued without waiting, then wait out the window.
            let next = match queue.try_recv() {
                Ok(next) => next,
                Err(_) => match queue.recv_deadline(gather_until) {
                    Ok(next) => next,
                    Err(_) => break,
                },
            };
            orders.push(next.order);
            tickets.push(next.ticket);
        }
        refuse_expired(&mut orders, &mut tickets, sink);
        if orders.is_empty() {
            // Every order of this gathering had expired: their refusals leave now.
            sink.batch_done(0, Duration::ZERO);
            continue;
        }
        commit(store, &mut orders, &mut tickets, sink, stats, stop, settings.retry);
    }
}

/// Decides the orders the sink says expired in the queue (rare: the writer
/// was held up, by a store outage or a paused process) and keeps the rest.
fn refuse_expired<T>(orders: &mut Vec<NewOrder>, tickets: &mut Vec<T>, sink: &mut impl Sink<T>) {
    if !orders.iter().zip(tickets.iter()).any(|(order, ticket)| sink.expired_in_queue(order, ticket)) {
        return;
    }
    let mut kept_orders = Vec::with_capacity(orders.len());
    let mut kept_tickets = Vec::with_capacity(tickets.len());
    for (order, ticket) in orders.drain(..).zip(tickets.drain(..)) {
        if sink.expired_in_queue(&order, &ticket) {
            sink.decided(&order, ticket, Decision::Unavailable);
        } else {
            kept_orders.push(order);
            kept_tickets.push(ticket);
        }
    }
    *orders = kept_orders;
    *tickets = kept_tickets;
}

fn commit<T>(
    store: &dyn Store,
    orders: &mut Vec<NewOrder>,
    tickets: &mut Vec<T>,
    sink: &mut impl Sink<T>,
    stats: &WriterStats,
    stop: &AtomicBool,
    retry: Duration,
) {
    sink.batch_started(orders, tickets);
    let started = Instant::now();
    let mut result = store.commit_orders(orders);
    if let Err(StoreError::OutcomeUnknown(why)) = &result {
        crate::log!(
            crate::log::Level::Warn,
            "batch outcome unknown, asking the store again",
            orders = orders.len(),
            error = why
        );
        stats.unknown_batches.fetch_add(1, Relaxed);
        result = resolve(store, orders, stop, retry);
    }
    let took = started.elapsed();
    let batch = orders.len();
    stats.commit_us_total.fetch_add(took.as_micros() as u64, Relaxed);
    stats.batches.fetch_add(1, Relaxed);
    stats.orders.fetch_add(orders.len() as u64, Relaxed);
    stats.batch_orders_peak.fetch_max(orders.len() as u64, Relaxed);
    match result {
        Ok(outcomes) => {
            // The store answers one outcome per order, in order.
            debug_assert_eq!(outcomes.len(), orders.len());
            for ((order, ticket), outcome) in orders.drain(..).zip(tickets.drain(..)).zip(outcomes) {
                let decision = Decision::of(&order, outcome);
                sink.decided(&order, ticket, decision);
            }
        }
        Err(_) => {
            stats.failed_batches.fetch_add(1, Relaxed);
            for (order, ticket) in orders.drain(..).zip(tickets.drain(..)) {
                sink.decided(&order, ticket, Decision::Unavailable);
            }
        }
    }
    // Entries not matched by an outcome (a store breaking its contract) are
    // refused rather than left hanging.
    for (order, ticket) in orders.drain(..).zip(tickets.drain(..)) {
        sink.decided(&order, ticket, Decision::Unavailable);
    }
    sink.batch_done(batch, took);
}

/// Sends a batch of unknown outcome again, every `retry`, until the store
/// answers or the writer is told to stop (then the orders are refused as
/// unavailable: the process is ending, and a restart rebuilds from the store).
fn resolve(
    store: &dyn Store,
    orders: &[NewOrder],
    stop: &AtomicBool,
    retry: Duration,
) -> Result<Vec<OrderOutcome>, StoreError> {
    loop {
        if stop.load(Relaxed) {
            return Err(StoreError::Unavailable("stopping with a batch of unknown outcome".into()));
        }
        std::thread::sleep(retry);
        let answer = store.commit_orders(orders).and_then(|outcomes| {
            orders.iter().zip(outcomes).map(|(order, outcome)| committed_before(store, order, outcome)).collect()
        });
        match answer {
            Ok(outcomes) => return Ok(outcomes),
            Err(StoreError::Unavailable(_) | StoreError::OutcomeUnknown(_)) => continue,
            Err(other) => return Err(other),
        }
    }
}

/// An entry of a batch sent again: one that finds its own order id was
/// committed by the attempt whose outcome was unknown, and is placed. With a
/// request id the store says so (`Duplicate` of this very order); without
/// one it refuses the entry — as a taken id, or because the lost attempt's
/// own units now count against the per-user limit or the stock — so every
/// other refusal asks for the order by its id (this path is rare).
fn committed_before(store: &dyn Store, order: &NewOrder, outcome: OrderOutcome) -> Result<OrderOutcome, StoreError> {
    Ok(match outcome {
        OrderOutcome::Committed(_) => outcome,
        OrderOutcome::Duplicate(record) if record.id == order.id => OrderOutcome::Committed(record),
        OrderOutcome::Duplicate(_) => outcome,
        refused => match store.order(order.id)? {
            Some(record)
                if record.user_id == order.user_id
                    && record.item_id == order.item_id
                    && record.quantity == order.quantity.get() =>
            {
                OrderOutcome::Committed(record)
            }
            _ => refused,
        },
    })
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;
    use std::sync::Arc;

    use super::*;
    use crate::store::{ItemRecord, SqliteStore};

    struct Recorder {
        decisions: Vec<(u64, Decision)>,
        batches: usize,
    }

    impl Sink<u64> for Recorder {
        fn decided(&mut self, _order: &NewOrder, ticket: u64, decision: Decision) {
            self.decisions.push((ticket, decision));
        }

        fn batch_done(&mut self, _orders: usize, _commit: Duration) {
            self.batches += 1;
        }
    }

    fn store() -> (tempfile::TempDir, Arc<SqliteStore>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("s.db")).unwrap());
        store
            .put_item(&ItemRecord {
                id: 1,
                name: "phone".into(),
                description: String::new(),
                price_cents: 100,
                stock_total: 3,
                per_user_limit: 2,
                start_ms: 0,
                end_ms: u64::MAX / 2,
            })
            .unwrap();
        (dir, store)
    }

    fn order(id: u64, user_id: u64, quantity: u32, request_id: &str) -> Queued<u64> {
        let order = NewOrder {
            id,
            item_id: 1,
            user_id,
            quantity: NonZeroU32::new(quantity).unwrap(),
            created_ms: 1,
            pay_deadline_ms: 1_000,
            request_id: Some(request_id.to_string()),
            pool_epoch: None,
        };
        Queued { order, ticket: id }
    }

    fn settings(batch_orders_max: usize) -> WriterSettings {
        WriterSettings {
            batch_orders_max,
            batch_wait: Duration::from_millis(5),
            idle_check: Duration::from_millis(5),
            retry: Duration::from_millis(1),
        }
    }

    #[test]
    fn a_batch_is_decided_in_one_commit() {
        let (_dir, store) = store();
        let users: Vec<u64> = (0..3).map(|i| store.create_user(&format!("user{i}"), "hash", 0).unwrap()).collect();
        let (tx, rx) = crossbeam_channel::unbounded();
        tx.send(order(10, users[0], 1, "a")).unwrap();
        tx.send(order(11, users[0], 1, "a")).unwrap(); // same request id: the same order again
        tx.send(order(12, users[0], 2, "b")).unwrap(); // would hold 3 > limit 2
        tx.send(order(13, users[1], 2, "a")).unwrap(); // 1 + 2 = all 3 units sold
        tx.send(order(14, users[2], 1, "a")).unwrap(); // none left
        tx.send(order(15, users[2], 1, "b")).unwrap();
        tx.send(order(16, users[1], 1, "a")).unwrap(); // request id reused with another quantity
        drop(tx);
        let mut sink = Recorder { decisions: Vec::new(), batches: 0 };
        let stats = WriterStats::default();
        run(&*store, &rx, settings(100), &mut sink, &stats, &AtomicBool::new(false));
        let kinds: Vec<(u64, &'static str)> = sink
            .decisions
            .iter()
            .map(|(t, d)| {
                let kind = match d {
                    Decision::Placed(_) => "placed",
                    Decision::Existing(r) if r.id == 10 => "existing 10",
                    Decision::Existing(_) => "existing other",
                    Decision::RequestIdReused => "reused",
                    Decision::LimitReached => "limit",
                    Decision::SoldOut => "sold out",
                    Decision::Fenced => "fenced",
                    Decision::Gone => "gone",
                    Decision::Unavailable => "unavailable",
                };
                (*t, kind)
            })
            .collect();
        assert_eq!(
            kinds,
            [
                (10, "placed"),
                (11, "existing 10"),
                (12, "limit"),
                (13, "placed"),
                (14, "sold out"),
                (15, "sold out"),
                (16, "reused")
            ]
        );
        assert_eq!((sink.batches, stats.batches.load(Relaxed), stats.orders.load(Relaxed)), (1, 1, 7));
        let stats = store.item_stats(1).unwrap();
        assert_eq!((stats.stock_left, stats.pending_payment), (0, 3));
    }

    /// Tickets at or above `expired_from` count as expired in the queue.
    struct Expiring {
        inner: Recorder,
        expired_from: u64,
    }

    impl Sink<u64> for Expiring {
        fn expired_in_queue(&self, _order: &NewOrder, ticket: &u64) -> bool {
            *ticket >= self.expired_from
        }

        fn decided(&mut self, order: &NewOrder, ticket: u64, decision: Decision) {
            self.inner.decided(order, ticket, decision);
        }

        fn batch_done(&mut self, orders: usize, commit: Duration) {
            assert!(orders > 0 || commit.is_zero(), "a batch of only expired orders commits nothing");
            self.inner.batch_done(orders, commit);
        }
    }

    #[test]
    fn orders_expired_in_the_queue_are_refused_unwritten() {
        let (_dir, store) = store();
        let users: Vec<u64> = (0..3).map(|i| store.create_user(&format!("user{i}"), "hash", 0).unwrap()).collect();
        let (tx, rx) = crossbeam_channel::unbounded();
        tx.send(order(20, users[0], 1, "a")).unwrap();
        tx.send(order(91, users[1], 1, "a")).unwrap();
        tx.send(order(22, users[2], 1, "a")).unwrap();
        drop(tx);
        let mut sink = Expiring { inner: Recorder { decisions: Vec::new(), batches: 0 }, expired_from: 90 };
        let stats = WriterStats::default();
        run(&*store, &rx, settings(100), &mut sink, &stats, &AtomicBool::new(false));
        let placed =
            |t: u64| sink.inner.decisions.iter().any(|(ticket, d)| *ticket == t && matches!(d, Decision::Placed(_)));
        assert!(placed(20) && placed(22));
        assert!(sink.inner.decisions.contains(&(91, Decision::Unavailable)));
        assert_eq!((stats.batches.load(Relaxed), stats.orders.load(Relaxed)), (1, 2), "91 never reached the store");
        assert_eq!(store.item_stats(1).unwrap().pending_payment, 2);
        // A gathering of expired orders only: refused, no store call.
        let (tx, rx) = crossbeam_channel::unbounded();
        tx.send(order(95, users[1], 1, "b")).unwrap();
        drop(tx);
        run(&*store, &rx, settings(100), &mut sink, &stats, &AtomicBool::new(false));
        assert!(sink.inner.decisions.contains(&(95, Decision::Unavailable)));
        assert_eq!(stats.batches.load(Relaxed), 1);
    }

    #[test]
    fn batches_are_bounded_by_size() {
        let (_dir, store) = store();
        let user = store.create_user("user", "hash", 0).unwrap();
        let (tx, rx) = crossbeam_channel::unbounded();
        for i in 0..5 {
            tx.send(order(100 + i, user, 1, &format!("r{i}"))).unwrap();
        }
        drop(tx);
        let mut sink = Recorder { decisions: Vec::new(), batches: 0 };
        let stats = WriterStats::default();
        run(&*store, &rx, settings(2), &mut sink, &stats, &AtomicBool::new(false));
        assert_eq!(sink.batches, 3, "2 + 2 + 1");
        assert_eq!(stats.batch_orders_peak.load(Relaxed), 2);
        assert_eq!(sink.decisions.iter().filter(|(_, d)| matches!(d, Decision::Placed(_))).count(), 2, "limit 2");
        assert!(sink.decisions.iter().filter(|(_, d)| d.returns_stock()).all(|(_, d)| *d == Decision::LimitReached));
    }

    /// A store whose first `commit_orders` commits and then loses its answer
    /// (`OutcomeUnknown`), as when the database dies during COMMIT, and whose
    /// second fails before writing anything (still down).
    #[derive(Debug)]
    struct LosesAnswers {
        inner: Arc<SqliteStore>,
        calls: std::sync::atomic::AtomicUsize,
    }

    macro_rules! delegate {
        ($($name:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {
            $(fn $name(&self, $($arg: $ty),*) -> $ret { self.inner.$name($($arg),*) })*
        };
    }

    impl Store for LosesAnswers {
        fn commit_orders(&self, orders: &[NewOrder]) -> Result<Vec<OrderOutcome>, StoreError> {
            match self.calls.fetch_add(1, Relaxed) {
                0 => {
                    self.inner.commit_orders(orders)?;
                    Err(StoreError::OutcomeUnknown("lost".into()))
                }
                1 => Err(StoreError::Unavailable("still down".into())),
                _ => self.inner.commit_orders(orders),
            }
        }

        delegate! {
            durability_settings() -> Result<Vec<(String, String)>, StoreError>;
            allocate_instance_id(now_ms: u64) -> Result<u32, StoreError>;
            create_user(username: &str, password_hash: &str, now_ms: u64) -> Result<u64, StoreError>;
            create_users_bulk(prefix: &str, count: u32, password_hash: &str, now_ms: u64) -> Result<Vec<u64>, StoreError>;
            user_by_name(username: &str) -> Result<Option<crate::store::UserRecord>, StoreError>;
            user_by_id(user_id: u64) -> Result<Option<crate::store::UserRecord>, StoreError>;
            insert_sessions(sessions: &[crate::store::SessionRecord]) -> Result<(), StoreError>;
            session(token_hash: &crate::store::TokenHash) -> Result<Option<crate::store::SessionRecord>, StoreError>;
            touch_sessions(touches: &[(crate::store::TokenHash, u64)]) -> Result<(), StoreError>;
            live_sessions(now_ms: u64) -> Result<Vec<crate::store::SessionRecord>, StoreError>;
            delete_session(token_hash: &crate::store::TokenHash) -> Result<bool, StoreError>;
            delete_expired_sessions(now_ms: u64) -> Result<usize, StoreError>;
            put_item(item: &ItemRecord) -> Result<ItemRecord, StoreError>;
            item(item_id: u64) -> Result<Option<ItemRecord>, StoreError>;
            items() -> Result<Vec<ItemRecord>, StoreError>;
            adjust_stock(item_id: u64, delta: i64) -> Result<crate::store::ItemStats, StoreError>;
            item_stats(item_id: u64) -> Result<crate::store::ItemStats, StoreError>;
            renew_pool_epoch(item_id: u64) -> Result<(u64, u64), StoreError>;
            order(order_id: u64) -> Result<Option<OrderRecord>, StoreError>;
            order_by_request(user_id: u64, request_id: &str) -> Result<Option<OrderRecord>, StoreError>;
            orders_of_user(user_id: u64, limit: u32, before: Option<u64>) -> Result<Vec<OrderRecord>, StoreError>;
            orders_of_item(item_id: u64, limit: u32, after: Option<u64>) -> Result<Vec<OrderRecord>, StoreError>;
            pay_order(order_id: u64, user_id: u64, now_ms: u64) -> Result<OrderRecord, crate::store::PayError>;
            cancel_order(order_id: u64, user_id: u64, now_ms: u64) -> Result<crate::store::CancelOutcome, crate::store::CancelError>;
            expire_orders(order_ids: &[u64], now_ms: u64) -> Result<Vec<crate::store::ReleasedUnits>, StoreError>;
            orders_with_request_ids(limit: usize) -> Result<Vec<OrderRecord>, StoreError>;
            pending_orders() -> Result<Vec<crate::store::PendingOrder>, StoreError>;
            stock_snapshot() -> Result<Vec<crate::store::StockRow>, StoreError>;
            holdings_snapshot() -> Result<Vec<crate::store::Holding>, StoreError>;
            reconcile() -> Result<crate::store::ReconcileReport, StoreError>;
        }
    }

    #[test]
    fn a_batch_of_unknown_outcome_is_resolved_by_asking_again() {
        let (_dir, inner) = store();
        let users: Vec<u64> = (0..2).map(|i| inner.create_user(&format!("user{i}"), "hash", 0).unwrap()).collect();
        let store = LosesAnswers { inner: inner.clone(), calls: Default::default() };
        let (tx, rx) = crossbeam_channel::unbounded();
        tx.send(order(20, users[0], 1, "a")).unwrap();
        // Two units: the lost attempt's own holding makes the retry pass the limit of 2.
        let mut without_request_id = order(21, users[1], 2, "");
        without_request_id.order.request_id = None;
        tx.send(without_request_id).unwrap();
        drop(tx);
        let mut sink = Recorder { decisions: Vec::new(), batches: 0 };
        let stats = WriterStats::default();
        run(&store, &rx, settings(100), &mut sink, &stats, &AtomicBool::new(false));
        // Both were committed by the lost attempt: placed once, not refused, not twice.
        let placed: Vec<(u64, u64)> = sink
            .decisions
            .iter()
            .filter_map(|(t, d)| match d {
                Decision::Placed(record) => Some((*t, record.id)),
                _ => None,
            })
            .collect();
        assert_eq!(placed, [(20, 20), (21, 21)], "{:?}", sink.decisions);
        assert_eq!(store.calls.load(Relaxed), 3);
        assert_eq!(stats.unknown_batches.load(Relaxed), 1);
        assert_eq!(inner.item_stats(1).unwrap().pending_payment, 3);
    }

    #[test]
    fn stops_when_asked_and_idle() {
        let (_dir, store) = store();
        let (_tx, rx) = crossbeam_channel::unbounded::<Queued<u64>>();
        let mut sink = Recorder { decisions: Vec::new(), batches: 0 };
        run(&*store, &rx, settings(10), &mut sink, &WriterStats::default(), &AtomicBool::new(true));
        assert_eq!(sink.batches, 0);
    }
}
