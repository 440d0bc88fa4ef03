//! The store's behaviour, on real SQLite files in a temporary directory and
//! on a real MariaDB (a database per test).
//!
//! Written against the [`Store`] trait through [`TestDb`], so every
//! behaviour test runs on SQLite and on MySQL/MariaDB (`mysql_db`); the
//! tests of one backend's files, settings and migrations stand alone.

// Tests may unwrap: a failure is the test failing, with the value in the message.
#![allow(clippy::unwrap_used)]

mod mysql_db;

use std::num::NonZeroU32;
use std::path::Path;
use std::sync::Barrier;
use std::time::Instant;

use tempfile::TempDir;

use super::sqlite::{order_id_from_sql, order_id_to_sql};
use super::*;

const WINDOW_MS: u64 = 600_000;
const T0: u64 = 1_700_000_000_000;

/// A store under test on its own data: a temporary SQLite file here, a
/// freshly created MySQL database in `mysql_db`. The behaviour tests are
/// generic over it and run on both through [`on_every_store!`].
trait TestDb {
    fn new() -> Self;
    /// A store that commits a batch as one transaction, deciding every
    /// entry in batch order (`store.commit_lanes = 1` on MySQL, whose test
    /// stores split a batch into lanes by user; SQLite always does).
    fn one_lane() -> Self
    where
        Self: Sized,
    {
        Self::new()
    }
    fn store(&self) -> &dyn Store;
    /// Drops the store and opens it again on the same data.
    fn reopen(&mut self);
    /// Runs `;`-separated SQL behind the store's back (to damage it on purpose).
    fn raw(&self, sql: &str);
}

struct SqliteDb {
    dir: TempDir,
    store: SqliteStore,
}

impl TestDb for SqliteDb {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&db_path(&dir)).unwrap();
        SqliteDb { dir, store }
    }

    fn store(&self) -> &dyn Store {
        &self.store
    }

    fn reopen(&mut self) {
        self.store = SqliteStore::open(&db_path(&self.dir)).unwrap();
    }

    fn raw(&self, sql: &str) {
        rusqlite::Connection::open(db_path(&self.dir)).unwrap().execute_batch(sql).unwrap();
    }
}

/// One `#[test]` per store for each generic test: `tests::sqlite::NAME` and
/// `tests::mysql::NAME` (the latter fails, naming the URL, without a MariaDB).
macro_rules! on_every_store {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $name() { super::$name::<super::SqliteDb>() } )*
        }
        mod mysql {
            $( #[test] fn $name() { super::$name::<super::mysql_db::MysqlDb>() } )*
        }
    };
}

on_every_store!(
    instance_ids_are_never_reused_across_restarts,
    users_create_and_look_up,
    bulk_users_are_all_or_nothing,
    bulk_10000_users_and_sessions_are_fast,
    sessions_insert_touch_delete,
    expired_sessions_are_deleted_in_bounded_calls,
    items_put_replace_and_list,
    item_with_orders_keeps_its_stock,
    adjust_stock_refuses_to_go_below_sold,
    batch_outcomes_are_per_entry,
    order_ids_keep_all_64_bits_and_their_order,
    order_listings_page_by_cursor,
    pay_is_idempotent_and_the_deadline_wins,
    cancel_is_idempotent_and_refuses_paid,
    expiry_happens_once_and_only_after_the_deadline,
    a_large_expiry_batch_releases_exactly_its_units,
    a_large_expiry_batch_racing_pays_and_cancels_releases_each_order_once,
    reconcile_repairs_drifted_counters,
    everything_survives_a_reopen,
    stock_is_conserved_under_a_random_mix,
    pay_racing_expiry_ends_in_exactly_one,
    orders_with_request_ids_are_listed_newest_first,
    orders_of_an_older_pool_generation_are_fenced,
);

fn temp_store() -> (TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&db_path(&dir)).unwrap();
    (dir, store)
}

fn db_path(dir: &TempDir) -> std::path::PathBuf {
    dir.path().join("data").join("seckill.db")
}

fn item(id: ItemId, stock_total: u64, per_user_limit: u32) -> ItemRecord {
    ItemRecord {
        id,
        name: format!("item {id}"),
        description: "a thing".to_owned(),
        price_cents: 999,
        stock_total,
        per_user_limit,
        start_ms: T0,
        end_ms: T0 + 3_600_000,
    }
}

fn new_order(id: OrderId, item_id: ItemId, user_id: UserId, quantity: u32, request_id: Option<&str>) -> NewOrder {
    NewOrder {
        id,
        item_id,
        user_id,
        quantity: NonZeroU32::new(quantity).unwrap(),
        created_ms: T0,
        pay_deadline_ms: T0 + WINDOW_MS,
        request_id: request_id.map(str::to_owned),
        pool_epoch: None,
    }
}

/// Outcomes as short names, so batch expectations read as one line.
fn kinds(outcomes: &[OrderOutcome]) -> Vec<&'static str> {
    outcomes
        .iter()
        .map(|o| match o {
            OrderOutcome::Committed(_) => "committed",
            OrderOutcome::Duplicate(_) => "duplicate",
            OrderOutcome::LimitReached => "limit",
            OrderOutcome::SoldOut => "sold_out",
            OrderOutcome::Fenced => "fenced",
            OrderOutcome::NoSuchItem => "no_item",
            OrderOutcome::IdTaken => "id_taken",
            OrderOutcome::NoSuchUser => "no_user",
        })
        .collect()
}

fn users(store: &dyn Store, count: u32) -> Vec<UserId> {
    store.create_users_bulk("user", count, "$argon2id$hash", T0).unwrap()
}

/// The invariants that must hold at rest, whatever happened before.
fn check_conserved(store: &dyn Store) {
    for row in store.stock_snapshot().unwrap() {
        let stats = store.item_stats(row.item_id).unwrap();
        assert_eq!(stats.stock_total, stats.stock_left + stats.pending_payment + stats.paid, "{stats:?}");
        assert_eq!(row.sold_units, stats.pending_payment + stats.paid, "sold counter of {row:?}");
        assert!(row.sold_units <= row.stock_total, "oversold {row:?}");
    }
    let limits: std::collections::HashMap<ItemId, u64> =
        store.items().unwrap().iter().map(|i| (i.id, u64::from(i.per_user_limit))).collect();
    for h in store.holdings_snapshot().unwrap() {
        assert!(h.units <= limits[&h.item_id], "{h:?} above the limit");
    }
    let report = store.reconcile().unwrap();
    assert!(report.sold_fixed.is_empty() && report.holdings_fixed == 0, "drift: {report:?}");
}

#[test]
fn open_reports_wal_and_full_sync() {
    let (_dir, store) = temp_store();
    let settings = store.durability_settings().unwrap();
    assert!(settings.contains(&("journal_mode".to_owned(), "wal".to_owned())), "{settings:?}");
    assert!(settings.contains(&("synchronous".to_owned(), "FULL".to_owned())), "{settings:?}");
    assert_eq!(store.schema_version().unwrap() as usize, schema::MIGRATIONS.len());
    // The server holds it as a trait object, shared by worker threads and the writer.
    let _shared: std::sync::Arc<dyn Store> = std::sync::Arc::new(store);
}

fn instance_ids_are_never_reused_across_restarts<D: TestDb>() {
    let mut db = D::new();
    let a = db.store().allocate_instance_id(T0).unwrap();
    let b = db.store().allocate_instance_id(T0).unwrap();
    assert!(b > a);
    // Even if the newest row disappears, its id is not handed out again.
    db.raw(&format!("DELETE FROM instances WHERE id = {b}"));
    db.reopen();
    assert!(db.store().allocate_instance_id(T0).unwrap() > b);
}

fn users_create_and_look_up<D: TestDb>() {
    let db = D::new();
    let store = db.store();
    let id = store.create_user("alice", "$argon2id$a", T0).unwrap();
    let by_name = store.user_by_name("alice").unwrap().unwrap();
    assert_eq!(
        by_name,
        UserRecord { id, username: "alice".into(), password_hash: "$argon2id$a".into(), created_ms: T0 }
    );
    assert_eq!(store.user_by_id(id).unwrap(), Some(by_name));
    assert_eq!(store.create_user("alice", "$argon2id$b", T0), Err(StoreError::UsernameTaken));
    assert_eq!(store.user_by_name("bob").unwrap(), None);
    assert_eq!(store.user_by_id(id + 1000).unwrap(), None);
}

fn bulk_users_are_all_or_nothing<D: TestDb>() {
    let db = D::new();
    let store = db.store();
    store.create_user("bulk5", "h", T0).unwrap();
    assert_eq!(store.create_users_bulk("bulk", 10, "h", T0), Err(StoreError::UsernameTaken));
    for i in (0..10).filter(|&i| i != 5) {
        assert_eq!(store.user_by_name(&format!("bulk{i}")).unwrap(), None, "bulk{i} was kept");
    }
    let ids = store.create_users_bulk("other", 3, "h", T0).unwrap();
    let names: Vec<String> = ids.iter().map(|&id| store.user_by_id(id).unwrap().unwrap().username).collect();
    assert_eq!(names, ["other0", "other1", "other2"]);
    assert_eq!(store.create_users_bulk("none", 0, "h", T0).unwrap(), Vec::<UserId>::new());
}

fn bulk_10000_users_and_sessions_are_fast<D: TestDb>() {
    let db = D::new();
    let store = db.store();
    let started = Instant::now();
    let ids = store.create_users_bulk("load", 10_000, "$argon2id$shared", T0).unwrap();
    let users_ms = started.elapsed().as_secs_f64() * 1e3;
    assert_eq!(ids.len(), 10_000);
    assert_eq!(store.user_by_name("load9999").unwrap().unwrap().id, ids[9999]);

    let sessions: Vec<SessionRecord> = ids
        .iter()
        .enumerate()
        .map(|(i, &user_id)| SessionRecord { token_hash: token(i as u32), user_id, created_ms: T0, expires_ms: T0 + 1 })
        .collect();
    let started = Instant::now();
    store.insert_sessions(&sessions).unwrap();
    let sessions_ms = started.elapsed().as_secs_f64() * 1e3;
    // Printed, not asserted: a timing depends on the machine.
    println!("bulk: 10000 users in {users_ms:.1} ms, 10000 sessions in {sessions_ms:.1} ms (one transaction each)");
    assert_eq!(store.live_sessions(T0).unwrap().len(), 10_000);
}

fn token(n: u32) -> TokenHash {
    let mut t = [0u8; 32];
    t[..4].copy_from_slice(&n.to_le_bytes());
    t[31] = 0xA5;
    t
}

fn sessions_insert_touch_delete<D: TestDb>() {
    let db = D::new();
    let store = db.store();
    let user = store.create_user("alice", "h", T0).unwrap();
    let s = SessionRecord { token_hash: token(1), user_id: user, created_ms: T0, expires_ms: T0 + 100 };
    store.insert_sessions(&[s]).unwrap();
    assert_eq!(store.session(&token(1)).unwrap(), Some(s));
    assert_eq!(store.session(&token(2)).unwrap(), None);

    // Sliding TTL: forwards moves it, an older write-back arriving late does not.
    store.touch_sessions(&[(token(1), T0 + 500), (token(2), T0 + 500)]).unwrap();
    store.touch_sessions(&[(token(1), T0 + 200)]).unwrap();
    assert_eq!(store.session(&token(1)).unwrap().unwrap().expires_ms, T0 + 500);

    assert!(store.delete_session(&token(1)).unwrap());
    assert!(!store.delete_session(&token(1)).unwrap());
    assert_eq!(store.session(&token(1)).unwrap(), None);

    // A session of an unknown user is refused, and the batch with it.
    let ghost = SessionRecord { user_id: user + 99, token_hash: token(3), ..s };
    assert_eq!(store.insert_sessions(&[SessionRecord { token_hash: token(4), ..s }, ghost]), Err(StoreError::NotFound));
    assert_eq!(store.session(&token(4)).unwrap(), None);
}

fn expired_sessions_are_deleted_in_bounded_calls<D: TestDb>() {
    let db = D::new();
    let store = db.store();
    let user = store.create_user("alice", "h", T0).unwrap();
    let n = EXPIRED_SESSIONS_PER_CALL_MAX as u32 + 5;
    let sessions: Vec<SessionRecord> =
        (0..n).map(|i| SessionRecord { token_hash: token(i), user_id: user, created_ms: T0, expires_ms: T0 }).collect();
    let live = SessionRecord { token_hash: token(n), user_id: user, created_ms: T0, expires_ms: T0 + 10 };
    store.insert_sessions(&sessions).unwrap();
    store.insert_sessions(&[live]).unwrap();
    assert_eq!(store.delete_expired_sessions(T0).unwrap(), EXPIRED_SESSIONS_PER_CALL_MAX);
    assert_eq!(store.delete_expired_sessions(T0).unwrap(), 5);
    assert_eq!(store.delete_expired_sessions(T0).unwrap(), 0);
    assert_eq!(store.session(&live.token_hash).unwrap(), Some(live));
}

fn items_put_replace_and_list<D: TestDb>() {
    let db = D::new();
    let store = db.store();
    assert_eq!(store.item(1).unwrap(), None);
    assert_eq!(store.put_item(&item(2, 10, 1)).unwrap(), item(2, 10, 1));
    store.put_item(&item(1, 5, 1)).unwrap();
    let renamed = ItemRecord { name: "renamed".into(), stock_total: 7, ..item(1, 5, 1) };
    store.put_item(&renamed).unwrap();
    assert_eq!(store.item(1).unwrap(), Some(renamed.clone()));
    assert_eq!(store.items().unwrap(), vec![renamed, item(2, 10, 1)]);
    let stats = store.item_stats(2).unwrap();
    assert_eq!(
        stats,
        ItemStats {
            item_id: 2,
            stock_total: 10,
            stock_left: 10,
            pending_payment: 0,
            paid: 0,
            cancelled: 0,
            expired: 0
        }
    );
    assert_eq!(store.item_stats(3), Err(StoreError::NotFound));
    let too_big = ItemRecord { stock_total: u64::MAX, ..item(3, 0, 1) };
    assert!(matches!(store.put_item(&too_big), Err(StoreError::OutOfRange(_))));
}

fn item_with_orders_keeps_its_stock<D: TestDb>() {
    let db = D::new();
    let store = db.store();
    let u = users(store, 1);
    store.put_item(&item(1, 10, 5)).unwrap();
    store.commit_orders(&[new_order(1, 1, u[0], 2, None)]).unwrap();
    assert_eq!(store.put_item(&item(1, 11, 5)), Err(StoreError::ItemHasOrders));
    // Everything but the stock may still change.
    let edited = ItemRecord { description: "new text".into(), ..item(1, 10, 5) };
    assert_eq!(store.put_item(&edited).unwrap(), edited);
    assert_eq!(store.item_stats(1).unwrap().pending_payment, 2);
}

fn adjust_stock_refuses_to_go_below_sold<D: TestDb>() {
    let db = D::new();
    let store = db.store();
    let u = users(store, 1);
    store.put_item(&item(1, 10, 5)).unwrap();
    store.commit_orders(&[new_order(1, 1, u[0], 3, None)]).unwrap();
    let stats = store.adjust_stock(1, 5).unwrap();
    assert_eq!((stats.stock_total, stats.stock_left, stats.pending_payment), (15, 12, 3));
    assert_eq!(store.adjust_stock(1, -12).unwrap().stock_left, 0);
    assert_eq!(store.adjust_stock(1, -1), Err(StoreError::StockBelowSold));
    assert_eq!(store.adjust_stock(9, 1), Err(StoreError::NotFound));
    assert!(matches!(store.adjust_stock(1, i64::MAX), Err(StoreError::OutOfRange(_))));
    assert_eq!(store.item(1).unwrap().unwrap().stock_total, 3);
}

fn batch_outcomes_are_per_entry<D: TestDb>() {
    // One lane: entries of different users compete for the last units and
    // for one order id here, which only one transaction decides in batch
    // order (lanes have their own tests in `mysql_db`).
    let db = D::one_lane();
    let store = db.store();
    let u = users(store, 3);
    store.put_item(&item(1, 5, 2)).unwrap();
    let batch = [
        new_order(10, 1, u[0], 1, Some("r1")),
        new_order(11, 1, u[0], 1, Some("r1")), // same request id, same batch
        new_order(12, 1, u[0], 2, Some("r2")), // 1 held + 2 > limit 2
        new_order(13, 1, u[0], 1, None),       // exactly at the limit
        new_order(14, 9, u[0], 1, None),       // no such item
        new_order(10, 1, u[1], 1, None),       // order id already used
        new_order(15, 1, u[1], 2, Some("r1")), // request ids are per user
        new_order(16, 1, u[2], 2, None),       // 4 sold + 2 > 5
        new_order(18, 1, u[2] + 50, 1, None),  // no such user
        new_order(17, 1, u[2], 1, None),       // the last unit
    ];
    let outcomes = store.commit_orders(&batch).unwrap();
    assert_eq!(
        kinds(&outcomes),
        [
            "committed",
            "duplicate",
            "limit",
            "committed",
            "no_item",
            "id_taken",
            "committed",
            "sold_out",
            "no_user",
            "committed"
        ]
    );
    let OrderOutcome::Duplicate(dup) = &outcomes[1] else { unreachable!("checked above") };
    assert_eq!((dup.id, dup.request_id.as_deref()), (10, Some("r1")));
    let OrderOutcome::Committed(first) = &outcomes[0] else { unreachable!("checked above") };
    assert_eq!(store.order(10).unwrap().as_ref(), Some(first));

    // Across batches: the same request id returns the stored order; refused ones are not remembered.
    let again = store.commit_orders(&[new_order(20, 1, u[0], 1, Some("r1")), new_order(21, 1, u[0], 1, Some("r2"))]);
    let again = again.unwrap();
    assert_eq!(kinds(&again), ["duplicate", "limit"]);
    assert_eq!(store.order_by_request(u[0], "r2").unwrap(), None);
    assert_eq!(store.order_by_request(u[1], "r1").unwrap().unwrap().id, 15);

    let stats = store.item_stats(1).unwrap();
    assert_eq!((stats.stock_left, stats.pending_payment), (0, 5));
    assert_eq!(store.stock_snapshot().unwrap(), vec![StockRow { item_id: 1, stock_total: 5, sold_units: 5 }]);
    let held: Vec<(UserId, u64)> = store.holdings_snapshot().unwrap().iter().map(|h| (h.user_id, h.units)).collect();
    assert_eq!(held, vec![(u[0], 2), (u[1], 2), (u[2], 1)]);
    assert!(store.commit_orders(&[]).unwrap().is_empty());
    check_conserved(store);
}

fn order_ids_keep_all_64_bits_and_their_order<D: TestDb>() {
    for id in [0, 1, (1 << 53) + 1, i64::MAX as u64, 1 << 63, u64::MAX - 1, u64::MAX] {
        assert_eq!(order_id_from_sql(order_id_to_sql(id)), id);
    }
    assert!(order_id_to_sql(i64::MAX as u64) < order_id_to_sql(1 << 63));

    let db = D::new();
    let store = db.store();
    let u = users(store, 1);
    store.put_item(&item(1, 100, 100)).unwrap();
    let ids = [1, i64::MAX as u64, 1 << 63, u64::MAX];
    let batch: Vec<NewOrder> = ids.iter().map(|&id| new_order(id, 1, u[0], 1, None)).collect();
    assert_eq!(kinds(&store.commit_orders(&batch).unwrap()), ["committed"; 4]);
    assert_eq!(store.order(u64::MAX).unwrap().unwrap().id, u64::MAX);
    let newest_first: Vec<OrderId> = store.orders_of_user(u[0], 10, None).unwrap().iter().map(|o| o.id).collect();
    assert_eq!(newest_first, [u64::MAX, 1 << 63, i64::MAX as u64, 1]);
    let oldest_first: Vec<OrderId> = store.orders_of_item(1, 10, None).unwrap().iter().map(|o| o.id).collect();
    assert_eq!(oldest_first, [1, i64::MAX as u64, 1 << 63, u64::MAX]);
}

fn order_listings_page_by_cursor<D: TestDb>() {
    let db = D::new();
    let store = db.store();
    let u = users(store, 2);
    store.put_item(&item(1, 100, 100)).unwrap();
    store.put_item(&item(2, 100, 100)).unwrap();
    let batch: Vec<NewOrder> = (1..=7).map(|id| new_order(id, 1 + id % 2, u[(id % 2) as usize], 1, None)).collect();
    store.commit_orders(&batch).unwrap();
    let ids = |orders: Vec<OrderRecord>| orders.iter().map(|o| o.id).collect::<Vec<_>>();
    // u[1] owns the odd ids (item 2), u[0] the even ones (item 1).
    assert_eq!(ids(store.orders_of_user(u[1], 2, None).unwrap()), [7, 5]);
    assert_eq!(ids(store.orders_of_user(u[1], 2, Some(5)).unwrap()), [3, 1]);
    assert_eq!(ids(store.orders_of_user(u[1], 2, Some(1)).unwrap()), Vec::<u64>::new());
    assert_eq!(ids(store.orders_of_item(1, 2, None).unwrap()), [2, 4]);
    assert_eq!(ids(store.orders_of_item(1, 2, Some(4)).unwrap()), [6]);
    assert_eq!(ids(store.orders_of_item(3, 2, None).unwrap()), Vec::<u64>::new());
    assert_eq!(store.order(99).unwrap(), None);
}

fn pay_is_idempotent_and_the_deadline_wins<D: TestDb>() {
    let db = D::new();
    let store = db.store();
    let u = users(store, 2);
    store.put_item(&item(1, 10, 10)).unwrap();
    store.commit_orders(&[new_order(1, 1, u[0], 2, None), new_order(2, 1, u[0], 3, None)]).unwrap();
    let deadline = T0 + WINDOW_MS;

    let paid = store.pay_order(1, u[0], deadline - 1).unwrap();
    assert_eq!((paid.status, paid.paid_ms), (OrderStatus::Paid, Some(deadline - 1)));
    assert_eq!(store.pay_order(1, u[0], deadline + 5).unwrap(), paid, "a repeated pay changes nothing");
    assert_eq!(store.pay_order(1, u[1], deadline - 1), Err(PayError::NotFound), "another user's order");
    assert_eq!(store.pay_order(99, u[0], deadline - 1), Err(PayError::NotFound));

    // At the deadline, with no timer having run: expired by the pay call, units back once.
    let Err(PayError::Expired { order, units_returned: true }) = store.pay_order(2, u[0], deadline) else {
        panic!("expected the first late pay to expire the order")
    };
    assert_eq!(order.status, OrderStatus::Expired);
    assert!(matches!(store.pay_order(2, u[0], deadline), Err(PayError::Expired { units_returned: false, .. })));
    assert!(store.expire_orders(&[2], deadline).unwrap().is_empty(), "already expired");
    let stats = store.item_stats(1).unwrap();
    assert_eq!((stats.paid, stats.expired, stats.stock_left), (2, 3, 8));
    check_conserved(store);
}

fn cancel_is_idempotent_and_refuses_paid<D: TestDb>() {
    let db = D::new();
    let store = db.store();
    let u = users(store, 2);
    store.put_item(&item(1, 10, 10)).unwrap();
    store.commit_orders(&[new_order(1, 1, u[0], 2, None), new_order(2, 1, u[0], 1, None)]).unwrap();
    let first = store.cancel_order(1, u[0], T0 + 1).unwrap();
    assert!(first.units_returned);
    assert_eq!(first.order.status, OrderStatus::Cancelled);
    let again = store.cancel_order(1, u[0], T0 + 2).unwrap();
    assert_eq!((again.order.status, again.units_returned), (OrderStatus::Cancelled, false));
    assert!(matches!(store.pay_order(1, u[0], T0 + 3), Err(PayError::Cancelled(_))));
    assert_eq!(store.cancel_order(1, u[1], T0 + 2), Err(CancelError::NotFound));

    store.pay_order(2, u[0], T0 + 1).unwrap();
    assert!(matches!(store.cancel_order(2, u[0], T0 + 2), Err(CancelError::Paid(_))));
    let stats = store.item_stats(1).unwrap();
    assert_eq!((stats.cancelled, stats.paid, stats.stock_left), (2, 1, 9));
    // Cancelled units are back on sale, and count no more against the limit.
    assert_eq!(store.holdings_snapshot().unwrap(), vec![Holding { user_id: u[0], item_id: 1, units: 1 }]);
    check_conserved(store);
}

fn expiry_happens_once_and_only_after_the_deadline<D: TestDb>() {
    let db = D::new();
    let store = db.store();
    let u = users(store, 1);
    store.put_item(&item(1, 10, 10)).unwrap();
    let mut late = new_order(2, 1, u[0], 3, None);
    late.pay_deadline_ms += 1000;
    store.commit_orders(&[new_order(1, 1, u[0], 2, None), late, new_order(3, 1, u[0], 1, None)]).unwrap();
    store.pay_order(3, u[0], T0).unwrap();
    let deadline = T0 + WINDOW_MS;

    assert!(store.expire_orders(&[1, 2, 3], deadline - 1).unwrap().is_empty(), "too early");
    let released = store.expire_orders(&[1, 2, 3, 404], deadline).unwrap();
    assert_eq!(released, vec![ReleasedUnits { order_id: 1, item_id: 1, user_id: u[0], quantity: 2 }]);
    assert!(store.expire_orders(&[1], deadline + 5000).unwrap().is_empty(), "exactly once");
    let pending = store.pending_orders().unwrap();
    assert_eq!(
        pending,
        vec![PendingOrder { order_id: 2, item_id: 1, user_id: u[0], quantity: 3, pay_deadline_ms: deadline + 1000 }]
    );
    assert_eq!(store.expire_orders(&[2], deadline + 1000).unwrap().len(), 1);
    assert!(store.pending_orders().unwrap().is_empty());
    assert_eq!(store.item_stats(1).unwrap().expired, 5);
    check_conserved(store);
}

/// The orders of the large expiry tests: `count` orders over 3 items and 400
/// users, quantities 1 to 3, so that most (user, item) holdings gather several
/// orders of one batch; committed in the writer's batches of 1,000.
fn many_orders(store: &dyn Store, count: u64) -> Vec<NewOrder> {
    let u = users(store, 400);
    for item_id in 1..=3 {
        store.put_item(&item(item_id, 1_000_000, 1_000)).unwrap();
    }
    let orders: Vec<NewOrder> = (0..count)
        .map(|i| new_order(i + 1, 1 + i % 3, u[(i * 7 % 400) as usize], 1 + (i % 5 % 3) as u32, None))
        .collect();
    for batch in orders.chunks(1000) {
        assert!(store.commit_orders(batch).unwrap().iter().all(|o| matches!(o, OrderOutcome::Committed(_))));
    }
    orders
}

/// Holdings as a map, for comparing with a model.
fn holdings_map(store: &dyn Store) -> std::collections::BTreeMap<(UserId, ItemId), u64> {
    store.holdings_snapshot().unwrap().into_iter().map(|h| ((h.user_id, h.item_id), h.units)).collect()
}

/// Removes `quantity` units from a model holding (a holding at 0 is not listed).
fn release_in_model(model: &mut std::collections::BTreeMap<(UserId, ItemId), u64>, order: &NewOrder) {
    let key = (order.user_id, order.item_id);
    let units = model.get_mut(&key).unwrap();
    *units -= u64::from(order.quantity.get());
    if *units == 0 {
        model.remove(&key);
    }
}

/// An expiry batch as large as the writer makes, thousands of orders over a
/// few items and many users (several orders per holding), among them paid,
/// cancelled and not yet due ones: exactly the due pending orders expire, in
/// the caller's order, their units return to exactly their items and
/// holdings, and a second call releases nothing.
fn a_large_expiry_batch_releases_exactly_its_units<D: TestDb>() {
    let db = D::new();
    let store = db.store();
    let mut orders = many_orders(store, 6000);
    let deadline = T0 + WINDOW_MS;
    // Every 10th paid, every 15th (not paid) cancelled, every 11th not due yet.
    let mut model = holdings_map(store);
    for order in orders.iter_mut() {
        if order.id % 10 == 0 {
            store.pay_order(order.id, order.user_id, T0 + 1).unwrap();
        } else if order.id % 15 == 0 {
            assert!(store.cancel_order(order.id, order.user_id, T0 + 1).unwrap().units_returned);
            release_in_model(&mut model, order);
        }
    }
    let later: Vec<OrderId> =
        orders.iter().map(|o| o.id).filter(|id| id % 11 == 0 && id % 10 != 0 && id % 15 != 0).collect();
    // Moved past this expiry's `now` behind the store's back: not due yet.
    for chunk in later.chunks(500) {
        let ids: Vec<String> = chunk.iter().map(|&id| order_id_to_sql(id).to_string()).collect();
        db.raw(&format!("UPDATE orders SET pay_deadline_ms = {} WHERE id IN ({})", deadline + 1, ids.join(", ")));
    }
    assert_eq!(holdings_map(store), model, "cancellations gave back their units");

    // Reversed: the report follows the caller's order, whatever the store's.
    let ids: Vec<OrderId> = orders.iter().rev().map(|o| o.id).collect();
    let released = store.expire_orders(&ids, deadline).unwrap();
    let due: Vec<&NewOrder> =
        orders.iter().rev().filter(|o| o.id % 10 != 0 && o.id % 15 != 0 && !later.contains(&o.id)).collect();
    let expected: Vec<ReleasedUnits> = due
        .iter()
        .map(|o| ReleasedUnits { order_id: o.id, item_id: o.item_id, user_id: o.user_id, quantity: o.quantity.get() })
        .collect();
    assert_eq!(released.len(), expected.len());
    assert_eq!(released, expected);
    for order in &due {
        release_in_model(&mut model, order);
    }
    assert_eq!(holdings_map(store), model, "every expired order's units left its holding, once");
    for item_id in 1..=3 {
        let units = |keep: &dyn Fn(&NewOrder) -> bool| -> u64 {
            orders.iter().filter(|o| o.item_id == item_id && keep(o)).map(|o| u64::from(o.quantity.get())).sum()
        };
        let stats = store.item_stats(item_id).unwrap();
        assert_eq!(stats.expired, units(&|o| due.iter().any(|d| d.id == o.id)), "item {item_id}");
        assert_eq!(stats.paid, units(&|o| o.id % 10 == 0));
        assert_eq!(stats.pending_payment, units(&|o| later.contains(&o.id)));
    }

    assert_eq!(store.expire_orders(&ids, deadline + 5000).unwrap().len(), later.len(), "only the later ones");
    assert!(store.expire_orders(&ids, deadline + 5000).unwrap().is_empty(), "exactly once");
    for id in &later {
        let order = orders.iter().find(|o| o.id == *id).unwrap();
        release_in_model(&mut model, order);
    }
    assert_eq!(holdings_map(store), model);
    check_conserved(store);
}

/// A large expiry batch while another connection pays and cancels orders of
/// it (payments and cancellations made before the deadline, so they may win):
/// every order ends in exactly one state, and the units of each come back
/// once — by the expiry only for the orders it reports, by the cancellation
/// only when it says so.
fn a_large_expiry_batch_racing_pays_and_cancels_releases_each_order_once<D: TestDb>() {
    let db = D::new();
    let store = db.store();
    let orders = many_orders(store, 3000);
    let deadline = T0 + WINDOW_MS;
    let ids: Vec<OrderId> = orders.iter().map(|o| o.id).collect();
    let barrier = Barrier::new(2);
    let (released, cancelled) = std::thread::scope(|s| {
        let racer = s.spawn(|| {
            barrier.wait();
            let mut cancelled = Vec::new();
            // From the end, while the expiry starts at the beginning: the
            // first land before it (which then finds them no longer pending),
            // the next meet its row locks, the last find their orders expired.
            for order in orders.iter().rev().filter(|o| o.id % 2 == 0) {
                if order.id % 4 == 0 {
                    // Before the deadline a payment never expires the order itself.
                    match store.pay_order(order.id, order.user_id, deadline - 1) {
                        Ok(_) | Err(PayError::Expired { units_returned: false, .. }) => {}
                        Err(e) => panic!("order {}: {e:?}", order.id),
                    }
                } else if store.cancel_order(order.id, order.user_id, deadline - 1).unwrap().units_returned {
                    cancelled.push(order.id);
                }
            }
            cancelled
        });
        barrier.wait();
        let mut released = Vec::new();
        for batch in ids.chunks(1024) {
            released.extend(store.expire_orders(batch, deadline).unwrap());
        }
        (released, racer.join().unwrap())
    });
    let mut model = std::collections::BTreeMap::new();
    let mut expired_units = 0;
    for order in &orders {
        let status = store.order(order.id).unwrap().unwrap().status;
        let by_expiry = released.iter().any(|r| r.order_id == order.id);
        let by_cancel = cancelled.contains(&order.id);
        match status {
            OrderStatus::Expired => {
                assert!(by_expiry && !by_cancel, "order {}: expired but reported {by_expiry}/{by_cancel}", order.id);
                expired_units += u64::from(order.quantity.get());
            }
            OrderStatus::Cancelled => assert!(by_cancel && !by_expiry, "order {}", order.id),
            OrderStatus::Paid => {
                assert!(!by_expiry && !by_cancel, "order {}", order.id);
                *model.entry((order.user_id, order.item_id)).or_default() += u64::from(order.quantity.get());
            }
            OrderStatus::PendingPayment => panic!("order {} still pending after its expiry", order.id),
        }
    }
    println!(
        "racing a large expiry: {} expired, {} cancelled, {} paid",
        released.len(),
        cancelled.len(),
        orders.len() - released.len() - cancelled.len()
    );
    assert_eq!(holdings_map(store), model, "only paid orders still hold units");
    let expired: u64 = (1..=3).map(|item_id| store.item_stats(item_id).unwrap().expired).sum();
    assert_eq!(expired, expired_units);
    check_conserved(store);
}

fn reconcile_repairs_drifted_counters<D: TestDb>() {
    let db = D::new();
    let store = db.store();
    let u = users(store, 2);
    store.put_item(&item(1, 10, 10)).unwrap();
    store.put_item(&item(2, 10, 10)).unwrap();
    store.commit_orders(&[new_order(1, 1, u[0], 2, None), new_order(2, 1, u[1], 1, None)]).unwrap();
    assert_eq!(store.reconcile().unwrap(), ReconcileReport { items_checked: 2, ..Default::default() });

    // Damage the counters behind the store's back.
    db.raw(
        "UPDATE items SET sold_units = 7 WHERE id = 1;
         UPDATE holdings SET units = 5 WHERE item_id = 1 AND units = 2;
         DELETE FROM holdings WHERE item_id = 1 AND units = 1;
         INSERT INTO holdings VALUES (42, 2, 3);",
    );
    let report = store.reconcile().unwrap();
    assert_eq!(report.sold_fixed, vec![(1, 7, 3)]);
    assert_eq!(report.holdings_fixed, 3);
    check_conserved(store);
    let held: Vec<(UserId, u64)> = store.holdings_snapshot().unwrap().iter().map(|h| (h.user_id, h.units)).collect();
    assert_eq!(held, vec![(u[0], 2), (u[1], 1)]);
}

/// Writes one of everything, for the restart tests.
fn write_everything(store: &dyn Store) -> (UserId, u32) {
    let user = store.create_user("alice", "h", T0).unwrap();
    let instance = store.allocate_instance_id(T0).unwrap();
    store
        .insert_sessions(&[SessionRecord { token_hash: token(7), user_id: user, created_ms: T0, expires_ms: T0 + 9 }])
        .unwrap();
    store.put_item(&item(1, 10, 3)).unwrap();
    store.commit_orders(&[new_order(u64::MAX, 1, user, 2, Some("req")), new_order(5, 1, user, 1, None)]).unwrap();
    store.pay_order(5, user, T0 + 1).unwrap();
    (user, instance)
}

fn check_everything(store: &dyn Store, user: UserId, instance: u32) {
    assert_eq!(store.user_by_name("alice").unwrap().unwrap().id, user);
    assert_eq!(store.session(&token(7)).unwrap().unwrap().user_id, user);
    assert_eq!(store.item(1).unwrap(), Some(item(1, 10, 3)));
    assert_eq!(store.order_by_request(user, "req").unwrap().unwrap().id, u64::MAX);
    assert_eq!(store.order(5).unwrap().unwrap().status, OrderStatus::Paid);
    assert_eq!(store.stock_snapshot().unwrap(), vec![StockRow { item_id: 1, stock_total: 10, sold_units: 3 }]);
    assert_eq!(store.holdings_snapshot().unwrap(), vec![Holding { user_id: user, item_id: 1, units: 3 }]);
    assert!(store.allocate_instance_id(T0).unwrap() > instance);
    check_conserved(store);
}

fn everything_survives_a_reopen<D: TestDb>() {
    let mut db = D::new();
    let (user, instance) = write_everything(db.store());
    db.reopen();
    check_everything(db.store(), user, instance);
}

/// A crash leaves the committed data in the WAL, not yet checkpointed into the
/// main file, and no clean close. Simulated by copying the files while the
/// store is still open (never closed: leaked) and opening the copy.
#[test]
fn committed_data_survives_without_a_clean_close() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&db_path(&dir)).unwrap();
    let (user, instance) = write_everything(&store);
    let crashed = tempfile::tempdir().unwrap();
    let copy = crashed.path().join("seckill.db");
    std::fs::copy(db_path(&dir), &copy).unwrap();
    let wal = |p: &Path| p.with_file_name("seckill.db-wal");
    assert!(std::fs::metadata(wal(&db_path(&dir))).unwrap().len() > 0, "the data should still be in the WAL");
    std::fs::copy(wal(&db_path(&dir)), wal(&copy)).unwrap();
    std::mem::forget(store);
    check_everything(&SqliteStore::open(&copy).unwrap(), user, instance);
}

#[test]
fn an_old_database_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let old = SqliteStore::open_at_version(&db_path(&dir), 1).unwrap();
    assert_eq!(old.schema_version().unwrap(), 1);
    let user = old.create_user("alice", "h", T0).unwrap();
    old.put_item(&item(1, 10, 3)).unwrap();
    drop(old);

    let store = SqliteStore::open(&db_path(&dir)).unwrap();
    assert_eq!(store.schema_version().unwrap() as usize, schema::MIGRATIONS.len());
    assert_eq!(store.user_by_name("alice").unwrap().unwrap().id, user);
    assert_eq!(store.stock_snapshot().unwrap(), vec![StockRow { item_id: 1, stock_total: 10, sold_units: 0 }]);
    assert_eq!(kinds(&store.commit_orders(&[new_order(1, 1, user, 1, None)]).unwrap()), ["committed"]);
}

#[test]
fn a_newer_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(SqliteStore::open(&db_path(&dir)).unwrap());
    let raw = rusqlite::Connection::open(db_path(&dir)).unwrap();
    raw.pragma_update(None, "user_version", 99).unwrap();
    drop(raw);
    assert!(matches!(SqliteStore::open(&db_path(&dir)), Err(StoreError::Internal(_))));
}

/// A small deterministic generator, so a failing run can be replayed from its seed.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn stock_is_conserved_under_a_random_mix<D: TestDb>() {
    for seed in 1..=3 {
        let db = D::new();
        let store = db.store();
        let u = users(store, 12);
        for id in 1..=3 {
            store.put_item(&item(id, 20 + id * 5, 3)).unwrap();
        }
        let mut rng = SplitMix(seed);
        let mut now = T0;
        let mut next_id = 1;
        for _ in 0..300 {
            now += rng.below(20_000);
            match rng.below(4) {
                0 => {
                    let batch: Vec<NewOrder> = (0..1 + rng.below(20))
                        .map(|_| {
                            next_id += 1;
                            let rid = format!("r{}", rng.below(50));
                            let mut o = new_order(
                                next_id,
                                1 + rng.below(3),
                                u[rng.below(12) as usize],
                                1 + rng.below(3) as u32,
                                Some(&rid),
                            );
                            o.created_ms = now;
                            o.pay_deadline_ms = now + rng.below(2 * WINDOW_MS);
                            o
                        })
                        .collect();
                    store.commit_orders(&batch).unwrap();
                }
                1 => {
                    let id = 1 + rng.below(next_id);
                    if let Some(o) = store.order(id).unwrap() {
                        let _ = store.pay_order(id, o.user_id, now);
                    }
                }
                2 => {
                    let id = 1 + rng.below(next_id);
                    if let Some(o) = store.order(id).unwrap() {
                        let _ = store.cancel_order(id, o.user_id, now);
                    }
                }
                _ => {
                    let due: Vec<OrderId> = store
                        .pending_orders()
                        .unwrap()
                        .iter()
                        .filter(|p| p.pay_deadline_ms <= now)
                        .map(|p| p.order_id)
                        .collect();
                    assert_eq!(store.expire_orders(&due, now).unwrap().len(), due.len(), "seed {seed}");
                }
            }
        }
        check_conserved(store);
    }
}

fn pay_racing_expiry_ends_in_exactly_one<D: TestDb>() {
    let db = D::new();
    let store = db.store();
    let u = users(store, 1);
    const ORDERS: u64 = 100;
    store.put_item(&item(1, ORDERS, ORDERS as u32)).unwrap();
    let batch: Vec<NewOrder> = (1..=ORDERS).map(|id| new_order(id, 1, u[0], 1, None)).collect();
    store.commit_orders(&batch).unwrap();
    let deadline = T0 + WINDOW_MS;
    let mut paid = 0;
    for id in 1..=ORDERS {
        let barrier = Barrier::new(2);
        let (pay, expire) = std::thread::scope(|s| {
            let pay = s.spawn(|| {
                barrier.wait();
                store.pay_order(id, u[0], deadline - 1)
            });
            let expire = s.spawn(|| {
                barrier.wait();
                store.expire_orders(&[id], deadline).unwrap()
            });
            (pay.join().unwrap(), expire.join().unwrap())
        });
        let status = store.order(id).unwrap().unwrap().status;
        match pay {
            Ok(order) => {
                assert!(expire.is_empty(), "order {id} both paid and expired");
                assert_eq!((order.status, status), (OrderStatus::Paid, OrderStatus::Paid));
                paid += 1;
            }
            Err(PayError::Expired { units_returned: false, .. }) => {
                assert_eq!(expire.len(), 1, "order {id}: expired, but not by the expiry call");
                assert_eq!(status, OrderStatus::Expired);
            }
            Err(e) => panic!("order {id}: {e:?}"),
        }
    }
    println!("pay vs expire: {paid} of {ORDERS} paid, the rest expired");
    let stats = store.item_stats(1).unwrap();
    assert_eq!((stats.paid, stats.expired), (paid, ORDERS - paid));
    check_conserved(store);
}

/// Prints the group commit's throughput per batch size (issue 5 targets
/// ≥ 50,000 orders/s in batches of about 1,000, fsync per commit). Rates are
/// printed, never asserted (a timing depends on the machine); what is
/// asserted is the mechanism: exactly one commit per batch.
#[test]
fn group_commit_throughput() {
    let (_dir, store) = temp_store();
    let u = users(&store, 1000);
    store.put_item(&item(1, 10_000_000, 1_000_000)).unwrap();
    println!("durability: {:?}", store.durability_settings().unwrap());
    let mut next_id = 1u64 << 60;
    let mut rates = Vec::new();
    for (batch_size, orders) in [(1, 300), (100, 20_000), (1000, 100_000)] {
        let commits_before = store.write_commits();
        let started = Instant::now();
        for _ in 0..orders / batch_size {
            let batch: Vec<NewOrder> = (0..batch_size)
                .map(|i| {
                    next_id += 1;
                    let rid = format!("req-{next_id}");
                    new_order(next_id, 1, u[i % u.len()], 1, Some(&rid))
                })
                .collect();
            let outcomes = store.commit_orders(&batch).unwrap();
            assert!(outcomes.iter().all(|o| matches!(o, OrderOutcome::Committed(_))));
        }
        let seconds = started.elapsed().as_secs_f64();
        let rate = orders as f64 / seconds;
        let fsyncs_per_1000 = (store.write_commits() - commits_before) as f64 * 1000.0 / orders as f64;
        assert_eq!(store.write_commits() - commits_before, (orders / batch_size) as u64, "one commit per batch");
        println!(
            "group commit: batch {batch_size:>4}: {orders:>6} orders in {:>7.1} ms = {rate:>9.0} orders/s, \
             {fsyncs_per_1000:.0} commits (WAL fsyncs) per 1,000 orders",
            seconds * 1e3
        );
        rates.push(rate);
    }
    check_conserved(&store);
    println!("orders/s by batch size 1, 100, 1000: {rates:.0?}");
}

fn orders_with_request_ids_are_listed_newest_first<D: TestDb>() {
    let db = D::new();
    let store = db.store();
    let u = users(store, 2);
    store.put_item(&item(1, 10, 10)).unwrap();
    store
        .commit_orders(&[
            new_order(1, 1, u[0], 1, Some("a")),
            new_order(2, 1, u[0], 1, None),
            new_order(3, 1, u[1], 1, Some("a")),
            new_order(u64::MAX - 1, 1, u[1], 1, Some("b")),
        ])
        .unwrap();
    let listed: Vec<(OrderId, Option<String>)> =
        store.orders_with_request_ids(10).unwrap().into_iter().map(|o| (o.id, o.request_id)).collect();
    assert_eq!(listed, vec![(u64::MAX - 1, Some("b".into())), (3, Some("a".into())), (1, Some("a".into()))]);
    assert_eq!(store.orders_with_request_ids(1).unwrap().len(), 1);
}

#[test]
fn checkpoints_catch_up_with_the_writer() {
    let (dir, store) = temp_store();
    let u = users(&store, 1);
    store.put_item(&item(1, 100, 100)).unwrap();
    store.commit_orders(&(1..=50).map(|id| new_order(id, 1, u[0], 1, None)).collect::<Vec<_>>()).unwrap();
    store.checkpoint().unwrap();
    // Every frame of the WAL is in the database file now.
    let conn = rusqlite::Connection::open(db_path(&dir)).unwrap();
    let (busy, log, done): (i64, i64, i64) =
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap();
    assert_eq!((busy, log), (0, done), "frames in the WAL: {log}, checkpointed: {done}");
    assert_eq!(store.item_stats(1).unwrap().pending_payment, 50);
}

/// A rebuild of the shared pool starts a new generation and reads the stock
/// left in one transaction: orders of the old generation committed before
/// it are counted in that figure, those arriving after it are fenced.
fn orders_of_an_older_pool_generation_are_fenced<D: TestDb>() {
    let db = D::new();
    let store = db.store();
    let u = users(store, 3);
    store.put_item(&item(1, 10, 5)).unwrap();
    let of = |mut order: NewOrder, epoch: Option<u64>| {
        order.pool_epoch = epoch;
        order
    };
    // Generation 0 (no rebuild yet): 2 units sold.
    let first = store.commit_orders(&[of(new_order(1, 1, u[0], 2, Some("a")), Some(0))]).unwrap();
    assert_eq!(kinds(&first), ["committed"]);
    assert_eq!(store.renew_pool_epoch(1).unwrap(), (1, 8), "generation 1 from the 8 units left");
    let batch = [
        of(new_order(2, 1, u[1], 1, Some("b")), Some(0)), // taken from the old pool: fenced
        of(new_order(3, 1, u[1], 1, None), Some(1)),      // the new pool's
        of(new_order(4, 1, u[2], 1, None), None),         // not checked (embedded, evalsha)
        of(new_order(5, 1, u[0], 2, Some("a")), Some(0)), // a retry of a committed order: its order again
        of(new_order(6, 1, u[2], 1, None), Some(u64::MAX)), // stale, as the hot path labels it
    ];
    let outcomes = store.commit_orders(&batch).unwrap();
    assert_eq!(kinds(&outcomes), ["fenced", "committed", "committed", "duplicate", "fenced"]);
    assert_eq!(store.order(2).unwrap(), None, "nothing of a fenced order is written");
    assert_eq!(store.order_by_request(u[1], "b").unwrap(), None);
    let stats = store.item_stats(1).unwrap();
    assert_eq!((stats.stock_left, stats.pending_payment), (6, 4));
    let held: Vec<(UserId, u64)> = store.holdings_snapshot().unwrap().iter().map(|h| (h.user_id, h.units)).collect();
    assert_eq!(held, vec![(u[0], 2), (u[1], 1), (u[2], 1)]);
    assert_eq!(store.renew_pool_epoch(1).unwrap(), (2, 6));
    assert!(matches!(store.renew_pool_epoch(9), Err(StoreError::NotFound)));
    check_conserved(store);
}
