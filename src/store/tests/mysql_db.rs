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

use super::*;
use crate::store::{MysqlOptions, MysqlStore, mysql_schema};

const DEFAULT_URL: &str = "mysql://root@127.0.0.1:3306/";
/// Connections per test store: the tests' own concurrency is two threads at most.
const POOL_MAX: usize = 4;

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
    MysqlOptions::new(&format!("{}{database}", server_url()), POOL_MAX)
}

fn open(database: &str, version: Option<usize>) -> MysqlStore {
    let options = options(database);
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
    let options = MysqlOptions { url, pool_max: 1, command_timeout: std::time::Duration::from_secs(2) };
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
    let options = MysqlOptions { url, pool_max: 1, command_timeout: std::time::Duration::from_millis(300) };
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
