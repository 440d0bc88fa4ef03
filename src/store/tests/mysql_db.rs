//! The MySQL/MariaDB side of the store tests: [`MysqlDb`], a freshly created
//! database per test (so tests run in parallel on one server), and the
//! tests of what only MySQL has (its settings, migrations, fsync counts).
//!
//! The server is `SECKILL_TEST_MYSQL_URL` (default
//! `mysql://root@127.0.0.1:3306/`, a URL without a database). Without a
//! reachable server these tests fail, naming the URL: CI installs and starts
//! MariaDB, and a skipped test would hide a broken set-up.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use mysql_async::prelude::Queryable;

use super::*;
use crate::store::{MysqlOptions, MysqlStore, mysql_schema};

const DEFAULT_URL: &str = "mysql://root@127.0.0.1:3306/";
/// Connections per test store: the tests' own concurrency is two threads at
/// most, and up to four commit lanes.
const POOL_MAX: usize = 4;
/// Commit lanes of the test stores: more than the default of one, so that
/// every behaviour test runs through lanes (`TestDb::one_lane` for one).
const LANES: usize = 2;

/// The server URL, without a database and ending in `/`.
fn server_url() -> String {
    let url = std::env::var("SECKILL_TEST_MYSQL_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
    if url.ends_with('/') { url } else { format!("{url}/") }
}

/// A database name unique to this process and call.
fn fresh_database() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("seckill_t_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

fn options(database: &str) -> MysqlOptions {
    MysqlOptions { commit_lanes: LANES, ..MysqlOptions::new(&format!("{}{database}", server_url()), POOL_MAX) }
}

fn open(database: &str, version: Option<usize>) -> MysqlStore {
    open_with(options(database), version)
}

fn open_with(options: MysqlOptions, version: Option<usize>) -> MysqlStore {
    let opened = match version {
        Some(version) => MysqlStore::open_at_version(&options, version),
        None => MysqlStore::open(&options),
    };
    opened.unwrap_or_else(|e| {
        panic!(
            "MySQL/MariaDB store tests need a server at {} (set SECKILL_TEST_MYSQL_URL to another): {e}",
            server_url()
        )
    })
}

/// A store on a database created for one test and dropped after it.
pub(super) struct MysqlDb {
    database: String,
    store: Option<MysqlStore>,
}

impl MysqlDb {
    fn mysql(&self) -> &MysqlStore {
        // Only `Drop` takes it out.
        self.store.as_ref().unwrap()
    }
}

impl TestDb for MysqlDb {
    fn new() -> Self {
        let database = fresh_database();
        let store = open(&database, None);
        MysqlDb { database, store: Some(store) }
    }

    fn one_lane() -> Self {
        let database = fresh_database();
        let store = open_with(MysqlOptions { commit_lanes: 1, ..options(&database) }, None);
        MysqlDb { database, store: Some(store) }
    }

    fn store(&self) -> &dyn Store {
        self.mysql()
    }

    fn reopen(&mut self) {
        drop(self.store.take());
        self.store = Some(open(&self.database, None));
    }

    fn raw(&self, sql: &str) {
        for statement in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            self.mysql().execute_raw(statement).unwrap();
        }
    }
}

impl Drop for MysqlDb {
    fn drop(&mut self) {
        if let Some(store) = self.store.take() {
            // Best effort: a failed test must still report its own failure.
            let _ = store.execute_raw(&format!("DROP DATABASE IF EXISTS `{}`", self.database));
        }
    }
}

#[test]
fn open_reports_durable_commits_and_the_schema_version() {
    let db = MysqlDb::new();
    let settings = db.store().durability_settings().unwrap();
    let value = |name: &str| settings.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    assert_eq!(value("store").as_deref(), Some("mysql"));
    for name in ["innodb_flush_log_at_trx_commit", "sync_binlog", "log_bin", "durable_commits"] {
        assert!(value(name).is_some(), "{name} missing from {settings:?}");
    }
    assert_eq!(db.mysql().schema_version().unwrap() as usize, mysql_schema::MIGRATIONS.len());
}

#[test]
fn an_empty_database_is_migrated() {
    let database = fresh_database();
    let old = open(&database, Some(0));
    assert_eq!(old.schema_version().unwrap(), 0);
    drop(old);
    let mut db = MysqlDb { database, store: None };
    db.reopen();
    assert_eq!(db.mysql().schema_version().unwrap() as usize, mysql_schema::MIGRATIONS.len());
    let user = db.store().create_user("alice", "h", T0).unwrap();
    db.store().put_item(&item(1, 10, 3)).unwrap();
    assert_eq!(kinds(&db.store().commit_orders(&[new_order(1, 1, user, 1, None)]).unwrap()), ["committed"]);
}

#[test]
fn a_newer_database_is_refused() {
    let db = MysqlDb::new();
    db.raw("UPDATE schema_version SET version = 99");
    assert!(matches!(MysqlStore::open(&options(&db.database)), Err(StoreError::Internal(_))));
}

#[test]
fn usernames_and_request_ids_are_case_sensitive() {
    let db = MysqlDb::new();
    let store = db.store();
    let a = store.create_user("alice", "h", T0).unwrap();
    let b = store.create_user("Alice", "h", T0).unwrap();
    assert_ne!(a, b);
    assert_eq!(store.user_by_name("ALICE").unwrap(), None);
    store.put_item(&item(1, 10, 5)).unwrap();
    let batch = [new_order(1, 1, a, 1, Some("Req")), new_order(2, 1, a, 1, Some("req"))];
    assert_eq!(kinds(&store.commit_orders(&batch).unwrap()), ["committed", "committed"]);
}

#[test]
fn a_batch_larger_than_one_chunk_commits_whole() {
    let db = MysqlDb::new();
    let store = db.store();
    let u = users(store, 700);
    store.put_item(&item(1, 1500, 2)).unwrap();
    // 1,400 orders: two per user, then a third per user refused by the limit.
    let batch: Vec<NewOrder> =
        (0..2100u64).map(|i| new_order(i + 1, 1, u[(i % 700) as usize], 1, Some(&format!("r{}", i / 700)))).collect();
    let outcomes = store.commit_orders(&batch).unwrap();
    let committed = outcomes.iter().filter(|o| matches!(o, OrderOutcome::Committed(_))).count();
    let limited = outcomes.iter().filter(|o| matches!(o, OrderOutcome::LimitReached)).count();
    assert_eq!((committed, limited), (1400, 700));
    // The same batch again: every request id is a duplicate, nothing is applied twice.
    let again = store.commit_orders(&batch[..1400]).unwrap();
    assert!(again.iter().all(|o| matches!(o, OrderOutcome::Duplicate(_))));
    assert_eq!(store.item_stats(1).unwrap().pending_payment, 1400);
    check_conserved(store);
}

#[test]
fn an_unreachable_server_is_unavailable() {
    // Port 1 on loopback: nothing listens there, the connection is refused at once.
    let options = MysqlOptions::new("mysql://root@127.0.0.1:1/seckill_nowhere", 1);
    match MysqlStore::open(&options) {
        Err(StoreError::Unavailable(_)) => {}
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

/// Prints the group commit's throughput and fsyncs per batch size. Rates are
/// printed, never asserted; what is asserted is that every order committed.
/// `cargo bench --bench mysql_store` runs the larger measurement.
#[test]
fn group_commit_throughput() {
    let db = MysqlDb::new();
    let store = db.store();
    let u = users(store, 1000);
    store.put_item(&item(1, 10_000_000, 1_000_000)).unwrap();
    println!("durability: {:?}", store.durability_settings().unwrap());
    let mut next_id = 1u64 << 60;
    for (batch_size, orders) in [(1, 200), (100, 10_000), (1000, 20_000)] {
        let (log_before, data_before) = db.mysql().fsync_counters().unwrap();
        let started = Instant::now();
        for _ in 0..orders / batch_size {
            let batch: Vec<NewOrder> = (0..batch_size)
                .map(|i| {
                    next_id += 1;
                    new_order(next_id, 1, u[i % u.len()], 1, Some(&format!("req-{next_id}")))
                })
                .collect();
            let outcomes = store.commit_orders(&batch).unwrap();
            assert!(outcomes.iter().all(|o| matches!(o, OrderOutcome::Committed(_))));
        }
        let seconds = started.elapsed().as_secs_f64();
        let (log_after, data_after) = db.mysql().fsync_counters().unwrap();
        let per_1000 = |n: u64| n as f64 * 1000.0 / orders as f64;
        println!(
            "mysql group commit: batch {batch_size:>4}: {orders:>6} orders in {:>7.1} ms = {:>7.0} orders/s, \
             per 1,000 orders {:.1} log fsyncs, {:.1} data fsyncs (server-wide)",
            seconds * 1e3,
            orders as f64 / seconds,
            per_1000(log_after - log_before),
            per_1000(data_after - data_before),
        );
    }
    check_conserved(store);
}

/// A TCP relay between a store and the server that a test can cut and
/// restore on the same port: a database that goes away and comes back,
/// without stopping the server other tests share.
struct Relay {
    port: u16,
    stopping: std::sync::Arc<std::sync::atomic::AtomicBool>,
    streams: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
    acceptor: Option<std::thread::JoinHandle<()>>,
}

impl Relay {
    /// Listens on `port` (0: any free port) and relays each connection to the test server.
    fn start(port: u16) -> Relay {
        use std::net::{TcpListener, TcpStream};
        let server = mysql_async::Opts::from_url(&server_url()).unwrap();
        let target = format!("{}:{}", server.ip_or_hostname(), server.tcp_port());
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stopping = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let streams = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (stop, open) = (stopping.clone(), streams.clone());
        let acceptor = std::thread::spawn(move || {
            for client in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let (Ok(client), Ok(upstream)) = (client, TcpStream::connect(&target)) else { continue };
                let pipe = |mut from: TcpStream, mut to: TcpStream| {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                };
                pipe(client.try_clone().unwrap(), upstream.try_clone().unwrap());
                pipe(upstream.try_clone().unwrap(), client.try_clone().unwrap());
                open.lock().unwrap().extend([client, upstream]);
            }
        });
        Relay { port, stopping, streams, acceptor: Some(acceptor) }
    }

    /// Stops listening and breaks every relayed connection.
    fn cut(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wakes the acceptor, which then sees the flag and drops the listener.
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
        if let Some(acceptor) = self.acceptor.take() {
            acceptor.join().unwrap();
        }
        for stream in self.streams.lock().unwrap().drain(..) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.cut();
    }
}

#[test]
fn a_database_that_goes_away_is_unavailable_and_used_again_when_back() {
    let db = MysqlDb::new();
    let mut relay = Relay::start(0);
    let server = mysql_async::Opts::from_url(&server_url()).unwrap();
    let credentials = match server.pass() {
        Some(pass) => format!("{}:{pass}", server.user().unwrap_or("root")),
        None => server.user().unwrap_or("root").to_owned(),
    };
    // TCP through the relay (mysql_async would otherwise switch to the Unix
    // socket on loopback); one connection, so no other stale one lingers.
    let url = format!("mysql://{credentials}@127.0.0.1:{}/{}?prefer_socket=false", relay.port, db.database);
    let options = MysqlOptions { command_timeout: std::time::Duration::from_secs(2), ..MysqlOptions::new(&url, 1) };
    let store = MysqlStore::open(&options).unwrap();
    store.create_user("before", "h", T0).unwrap();

    relay.cut();
    assert!(matches!(store.user_by_name("before"), Err(StoreError::Unavailable(_))));
    assert!(matches!(store.create_user("during", "h", T0), Err(StoreError::Unavailable(_))));
    assert!(matches!(store.commit_orders(&[new_order(1, 1, 1, 1, None)]), Err(StoreError::Unavailable(_))));

    // Back on the same port: the next calls open a new connection by themselves.
    let _relay = Relay::start(relay.port);
    assert_eq!(store.user_by_name("before").unwrap().unwrap().username, "before");
    store.create_user("after", "h", T0).unwrap();
    assert_eq!(store.user_by_name("during").unwrap(), None);
}

#[test]
fn a_server_that_does_not_answer_times_out() {
    // Accepts connections (the kernel does, from the backlog) and never says a word.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let url = format!("mysql://root@127.0.0.1:{port}/seckill_silent?prefer_socket=false");
    let options = MysqlOptions { command_timeout: std::time::Duration::from_millis(300), ..MysqlOptions::new(&url, 1) };
    let started = Instant::now();
    let result = MysqlStore::open(&options);
    assert!(matches!(result, Err(StoreError::Unavailable(_))), "{result:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(3), "took {:?}", started.elapsed());
}

/// Two instances (two stores on one database) commit batches at once that
/// share request ids but not items, so no item lock orders them: the loser's
/// INSERT meets the winner's unique key, and its batch is decided again.
/// Whatever the interleaving, each request id makes exactly one order.
#[test]
fn instances_racing_on_one_request_id_make_one_order() {
    let db = MysqlDb::new();
    let other = open(&db.database, None);
    let u = users(db.store(), 20);
    // Enough stock for every order on either item: only the request ids conflict.
    db.store().put_item(&item(1, 200, 10)).unwrap();
    db.store().put_item(&item(2, 200, 10)).unwrap();
    for round in 0..10u64 {
        let batch = |item_id: ItemId, first_id: OrderId| -> Vec<NewOrder> {
            (0..20).map(|i| new_order(first_id + i, item_id, u[i as usize], 1, Some(&format!("r{round}")))).collect()
        };
        let (a, b) = (batch(1, 1000 * round + 100), batch(2, 1000 * round + 500));
        let barrier = std::sync::Barrier::new(2);
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(|| {
                barrier.wait();
                db.store().commit_orders(&a).unwrap()
            });
            let b = s.spawn(|| {
                barrier.wait();
                other.commit_orders(&b).unwrap()
            });
            (a.join().unwrap(), b.join().unwrap())
        });
        for (x, y) in a.iter().zip(&b) {
            let pair = [x, y].map(|o| matches!(o, OrderOutcome::Committed(_)));
            assert!(pair == [true, false] || pair == [false, true], "round {round}: {x:?} / {y:?}");
            assert!([x, y].iter().any(|o| matches!(o, OrderOutcome::Duplicate(_))), "round {round}: {x:?} / {y:?}");
        }
    }
    let sold: u64 = db.store().stock_snapshot().unwrap().iter().map(|r| r.sold_units).sum();
    assert_eq!(sold, 10 * 20);
    check_conserved(db.store());
}

/// A store with `lanes` commit lanes on `database`, and the pool for them.
fn open_lanes(database: &str, lanes: usize) -> MysqlStore {
    open_with(
        MysqlOptions { commit_lanes: lanes, ..MysqlOptions::new(&options(database).url, lanes.max(POOL_MAX)) },
        None,
    )
}

/// `users` grouped by the lane a store of `lanes` lanes puts them in, each in the given order.
fn by_lane(users: &[UserId], lanes: usize) -> Vec<Vec<UserId>> {
    let mut grouped = vec![Vec::new(); lanes];
    for &user in users {
        grouped[crate::store::mysql_orders::lane_of(user, lanes)].push(user);
    }
    grouped
}

/// Users spread over four lanes, each with the same entries interleaved with
/// everyone else's in one batch: each user's entries are decided in order
/// (a duplicate request id, the per-user limit counting the earlier entries,
/// a refused request id not remembered), and the outcomes come back in the
/// batch's order.
#[test]
fn a_batch_whose_users_span_lanes_keeps_each_users_order_and_limit() {
    let db = MysqlDb::new();
    let store = open_lanes(&db.database, 4);
    let u = users(&store, 24);
    assert!(by_lane(&u, 4).iter().all(|lane| !lane.is_empty()), "24 users leave a lane empty");
    store.put_item(&item(1, 1000, 3)).unwrap();
    store.put_item(&item(2, 1000, 1)).unwrap();
    let entries = |k: u64, user: UserId| {
        [
            new_order(k * 10 + 1, 1, user, 2, Some("a")),
            new_order(k * 10 + 2, 1, user, 1, Some("a")), // the first entry again
            new_order(k * 10 + 3, 1, user, 2, Some("b")), // 2 held + 2 > 3
            new_order(k * 10 + 4, 1, user, 1, None),      // exactly at the limit
            new_order(k * 10 + 5, 2, user, 1, Some("b")), // "b" was refused, so it is free
            new_order(k * 10 + 6, 2, user, 1, None),      // 1 held + 1 > 1
        ]
    };
    // Step by step across users: every lane's entries are spread over the whole batch.
    let batch: Vec<NewOrder> = (0..6)
        .flat_map(|step| u.iter().enumerate().map(move |(k, &user)| entries(k as u64, user)[step].clone()))
        .collect();
    let outcomes = store.commit_orders(&batch).unwrap();
    assert_eq!(outcomes.len(), batch.len());
    for (k, &user) in u.iter().enumerate() {
        let mine: Vec<(&NewOrder, &OrderOutcome)> =
            batch.iter().zip(&outcomes).filter(|(order, _)| order.user_id == user).collect();
        let got: Vec<OrderOutcome> = mine.iter().map(|(_, outcome)| (*outcome).clone()).collect();
        assert_eq!(kinds(&got), ["committed", "duplicate", "limit", "committed", "committed", "limit"], "user {user}");
        for (order, outcome) in &mine {
            match outcome {
                OrderOutcome::Committed(record) => assert_eq!(record.id, order.id, "outcome out of place"),
                OrderOutcome::Duplicate(record) => assert_eq!(record.id, k as u64 * 10 + 1),
                _ => {}
            }
        }
    }
    let sold: Vec<u64> = store.stock_snapshot().unwrap().iter().map(|row| row.sold_units).collect();
    assert_eq!(sold, [24 * 3, 24]);
    check_conserved(&store);
}

/// Two lanes each fit in the stock alone and not together: both plan from
/// an unlocked read, the second to reach the item's row finds the units
/// gone and decides again under the lock. Exactly the stock is sold, and
/// within a lane the sold-out entries are the last ones. Then two instances
/// with two lanes each race the same way.
#[test]
fn lanes_racing_for_the_last_units_sell_exactly_the_stock() {
    let db = MysqlDb::new();
    let other = open_lanes(&db.database, 2);
    let store = open_lanes(&db.database, 2);
    let u = users(&store, 60);
    let lanes = by_lane(&u, 2);
    assert!(lanes.iter().all(|lane| lane.len() >= 16), "60 users split unevenly: {lanes:?}");
    let batch = |item_id: ItemId, users: &[UserId], first_id: OrderId| -> Vec<NewOrder> {
        users.iter().enumerate().map(|(i, &user)| new_order(first_id + i as u64, item_id, user, 1, None)).collect()
    };
    for round in 0..10u64 {
        let item_id = round + 1;
        store.put_item(&item(item_id, 10, 1)).unwrap();
        // 8 + 8 orders, interleaved, for 10 units.
        let mixed: Vec<UserId> = lanes[0][..8].iter().zip(&lanes[1][..8]).flat_map(|(&a, &b)| [a, b]).collect();
        let orders = batch(item_id, &mixed, 1000 * item_id);
        let outcomes = store.commit_orders(&orders).unwrap();
        let kinds = kinds(&outcomes);
        assert_eq!(kinds.iter().filter(|k| **k == "committed").count(), 10, "round {round}: {kinds:?}");
        assert_eq!(kinds.iter().filter(|k| **k == "sold_out").count(), 6, "round {round}: {kinds:?}");
        for lane in &lanes {
            let mine: Vec<&str> =
                orders.iter().zip(&kinds).filter(|(o, _)| lane.contains(&o.user_id)).map(|(_, k)| *k).collect();
            let first_refused = mine.iter().position(|k| *k == "sold_out").unwrap_or(mine.len());
            assert!(mine[first_refused..].iter().all(|k| *k == "sold_out"), "round {round}: {mine:?}");
        }
    }
    // Two instances, each a batch over both lanes, 32 orders for 20 units.
    for round in 0..5u64 {
        let item_id = 100 + round;
        store.put_item(&item(item_id, 20, 1)).unwrap();
        let (a_users, b_users) =
            (&[&lanes[0][..8], &lanes[1][..8]].concat(), &[&lanes[0][8..16], &lanes[1][8..16]].concat());
        let (a, b) = (batch(item_id, a_users, 1000 * item_id), batch(item_id, b_users, 1000 * item_id + 500));
        let barrier = std::sync::Barrier::new(2);
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(|| {
                barrier.wait();
                store.commit_orders(&a).unwrap()
            });
            let b = s.spawn(|| {
                barrier.wait();
                other.commit_orders(&b).unwrap()
            });
            (a.join().unwrap(), b.join().unwrap())
        });
        let committed = a.iter().chain(&b).filter(|o| matches!(o, OrderOutcome::Committed(_))).count();
        let sold_out = a.iter().chain(&b).filter(|o| matches!(o, OrderOutcome::SoldOut)).count();
        assert_eq!((committed, sold_out), (20, 12), "round {round}");
    }
    check_conserved(&store);
}

/// One lane commits and its sibling cannot (another transaction holds its
/// item's row): the call's outcome is unknown, and the order writer sends
/// the same batch again until the store answers. Nothing is applied twice:
/// the committed lane's orders come back as their own duplicates (with a
/// request id) or as refusals the writer resolves by order id (without),
/// and the other lane commits now.
#[test]
fn a_batch_sent_again_after_one_lane_committed_is_idempotent() {
    let db = MysqlDb::new();
    let url = options(&db.database).url;
    let store =
        open_with(MysqlOptions { command_timeout: std::time::Duration::from_secs(2), ..options(&db.database) }, None);
    let u = users(&store, 20);
    let lanes = by_lane(&u, LANES);
    store.put_item(&item(1, 100, 5)).unwrap();
    store.put_item(&item(2, 100, 5)).unwrap();
    // Lane 0's users buy item 1, lane 1's item 2.
    let mut batch: Vec<NewOrder> = Vec::new();
    for (i, (&a, &b)) in lanes[0].iter().zip(&lanes[1]).take(3).enumerate() {
        batch.push(new_order(10 + i as u64, 1, a, 1, Some("r")));
        batch.push(new_order(20 + i as u64, 2, b, 1, Some("r")));
    }
    batch.push(new_order(30, 1, lanes[0][3], 2, None));

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut holder = runtime.block_on(mysql_async::Conn::from_url(url.as_str())).unwrap();
    runtime.block_on(holder.query_drop("START TRANSACTION")).unwrap();
    runtime.block_on(holder.query_drop("SELECT id FROM items WHERE id = 2 FOR UPDATE")).unwrap();
    let first = store.commit_orders(&batch);
    assert!(matches!(first, Err(StoreError::OutcomeUnknown(_))), "{first:?}");
    for order in &batch {
        let stored = store.order(order.id).unwrap();
        assert_eq!(stored.is_some(), order.item_id == 1, "order {} after the first attempt", order.id);
    }
    runtime.block_on(holder.query_drop("ROLLBACK")).unwrap();
    runtime.block_on(holder.disconnect()).unwrap();

    // As the writer does: again until the store answers.
    let mut again = None;
    for _ in 0..10 {
        match store.commit_orders(&batch) {
            Err(StoreError::OutcomeUnknown(_) | StoreError::Unavailable(_)) => continue,
            other => {
                again = Some(other.unwrap());
                break;
            }
        }
    }
    let again = again.expect("the store never answered the batch sent again");
    for (order, outcome) in batch.iter().zip(&again) {
        match (order.item_id, order.request_id.is_some(), outcome) {
            (1, true, OrderOutcome::Duplicate(record)) => assert_eq!(record.id, order.id),
            (1, false, refused) => {
                assert!(!matches!(refused, OrderOutcome::Committed(_)), "order 30 applied twice");
                assert_eq!(store.order(order.id).unwrap().unwrap().quantity, 2);
            }
            (2, _, OrderOutcome::Committed(record)) => assert_eq!(record.id, order.id),
            other => panic!("order {}: {other:?}", order.id),
        }
    }
    let sold: Vec<u64> = store.stock_snapshot().unwrap().iter().map(|row| row.sold_units).collect();
    assert_eq!(sold, [5, 3]);
    check_conserved(&store);
}
