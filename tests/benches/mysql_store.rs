//! The MySQL store's group commit without HTTP (issue 6: ≥ 50,000 durable
//! orders/s through batching). Prints orders/s, the batch size and fsyncs per
//! 1,000 orders (`Innodb_os_log_fsyncs`, `Innodb_data_fsyncs`, server-wide)
//! for a few batch sizes and lane counts (`store.commit_lanes`), and the
//! database server's own CPU time per order and share of a core when it runs
//! on this machine (its pid file, `/proc/PID/stat`), which is what bounds the
//! rate on a small machine; never asserts a timing.
//! Then it expires the orders it made (their deadlines have passed) in the
//! order writer's expiry batches and prints orders expired/s, the time per
//! `expire_orders` call and the statements it ran (issue 10).
//!
//! `cargo bench --bench mysql_store` against `SECKILL_BENCH_MYSQL_URL`
//! (default `mysql://root@127.0.0.1:3306/`, a URL without a database); it
//! works in a database of its own, dropped at the end. `--quick` runs a
//! tenth; `--lanes 1,2,4` sets the lane counts compared (default 1 and 2),
//! run alternating, batch size by batch size, so both see
//! the same machine load; `--rounds N` repeats the whole alternation.

use std::num::NonZeroU32;
use std::time::Instant;

use mysql_async::prelude::Queryable;
use seckill::store::{ItemRecord, MysqlOptions, MysqlStore, NewOrder, OrderOutcome, Store};

const USERS: u32 = 10_000;
const ITEM: u64 = 1;
const POOL_MAX: usize = 8;

/// The value after `flag` on the command line, if any.
fn arg(flag: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let lane_counts: Vec<usize> = match arg("--lanes") {
        Some(list) => list.split(',').map(|n| n.trim().parse().expect("--lanes 1,2")).collect(),
        None => vec![1, 2],
    };
    let rounds: usize = arg("--rounds").map_or(1, |n| n.parse().expect("--rounds N"));
    let server = std::env::var("SECKILL_BENCH_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/".into());
    let server = if server.ends_with('/') { server } else { format!("{server}/") };
    let database = format!("seckill_bench_{}", std::process::id());
    let url = format!("{server}{database}");
    // One store per lane count, on the same database, each with its own pool.
    let stores: Vec<(usize, MysqlStore)> = lane_counts
        .iter()
        .map(|&lanes| {
            let options = MysqlOptions { commit_lanes: lanes, ..MysqlOptions::new(&url, POOL_MAX.max(lanes)) };
            let store = MysqlStore::open(&options)
                .unwrap_or_else(|e| panic!("no MySQL/MariaDB at {server} (set SECKILL_BENCH_MYSQL_URL): {e}"));
            (lanes, store)
        })
        .collect();
    let store = &stores[0].1;
    for (name, value) in store.durability_settings().expect("durability settings") {
        println!("durability: {name} = {value}");
    }
    let users = store.create_users_bulk("bench", USERS, "$argon2id$bench", 0).expect("users");
    store
        .put_item(&ItemRecord {
            id: ITEM,
            name: "bench".into(),
            description: String::new(),
            price_cents: 1,
            stock_total: 100_000_000,
            per_user_limit: 1_000_000,
            start_ms: 0,
            end_ms: u32::MAX.into(),
        })
        .expect("item");
    let server_pid = server_pid(&url);
    let scale = if quick { 10 } else { 1 };
    let mut next_id = 1u64 << 60;
    let first_id = next_id + 1;
    for _ in 0..rounds {
        for (batch_size, orders) in [(1usize, 1_000usize), (100, 50_000), (1_000, 200_000), (4_000, 200_000)] {
            for (lanes, store) in &stores {
                let run = Run { batch_size, orders: orders / scale, lanes: *lanes, server_pid };
                run.measure(store, &users, &mut next_id);
            }
        }
    }
    // The first store expires what every store made (one database).
    expiry_rate(&stores[0].1, &url, first_id..=next_id, scale, server_pid);
    reference_insert_rate(&url, scale);
    drop(stores);
    drop_database(&server, &database);
}

/// One measurement: `orders` orders in batches of `batch_size`, on a store
/// with `lanes` lanes.
struct Run {
    batch_size: usize,
    orders: usize,
    lanes: usize,
    server_pid: Option<u32>,
}

impl Run {
    fn measure(&self, store: &MysqlStore, users: &[u64], next_id: &mut u64) {
        let batch_size = self.batch_size;
        let batches = self.orders / batch_size;
        let (log_before, data_before) = store.fsync_counters().expect("status");
        let cpu_before = self.server_pid.and_then(cpu_seconds);
        let started = Instant::now();
        for _ in 0..batches {
            let batch: Vec<NewOrder> = (0..batch_size)
                .map(|i| {
                    *next_id += 1;
                    NewOrder {
                        id: *next_id,
                        item_id: ITEM,
                        user_id: users[(*next_id as usize + i) % users.len()],
                        quantity: NonZeroU32::MIN,
                        created_ms: 1,
                        pay_deadline_ms: 2,
                        request_id: Some(format!("r{next_id}")),
                        pool_epoch: None,
                    }
                })
                .collect();
            let outcomes = store.commit_orders(&batch).expect("commit");
            assert!(outcomes.iter().all(|o| matches!(o, OrderOutcome::Committed(_))));
        }
        let seconds = started.elapsed().as_secs_f64();
        let (log_after, data_after) = store.fsync_counters().expect("status");
        let written = (batches * batch_size) as f64;
        let cpu = match (cpu_before, self.server_pid.and_then(cpu_seconds)) {
            (Some(before), Some(after)) => format!(
                "; server CPU {:.1} µs per order ({:.0}% of a core)",
                (after - before) * 1e6 / written,
                (after - before) * 100.0 / seconds
            ),
            _ => String::new(),
        };
        println!(
            "mysql group commit: batch {batch_size:>5}, lanes {}: {written:>7} orders in {:>8.1} ms = {:>7.0} orders/s, \
             {:>6.2} ms per batch; per 1,000 orders: {:.1} log fsyncs, {:.1} data fsyncs{cpu}",
            self.lanes,
            seconds * 1e3,
            written / seconds,
            seconds * 1e3 / batches as f64,
            (log_after - log_before) as f64 * 1000.0 / written,
            (data_after - data_before) as f64 * 1000.0 / written,
        );
    }
}

/// Expires the pending orders made above (ids `ids`, every deadline past)
/// in batches as the order writer makes them (`sale.batch_orders_max`, 1,024
/// by default, and a larger one), as many per batch size as the sale would
/// expire in a few seconds at its group-commit rate.
fn expiry_rate(
    store: &MysqlStore,
    url: &str,
    ids: std::ops::RangeInclusive<u64>,
    scale: usize,
    server_pid: Option<u32>,
) {
    let ids: Vec<u64> = ids.collect();
    let mut rest = &ids[..];
    for (batch_size, orders) in [(1_024usize, 100_000usize), (4_096, 100_000)] {
        let orders = (orders / scale).min(rest.len());
        let (mine, after) = rest.split_at(orders);
        rest = after;
        let statements_before = statements_executed(url);
        let (_, data_before) = store.fsync_counters().expect("status");
        let cpu_before = server_pid.and_then(cpu_seconds);
        let started = Instant::now();
        let mut expired = 0;
        for batch in mine.chunks(batch_size) {
            expired += store.expire_orders(batch, u64::from(u32::MAX)).expect("expire").len();
        }
        let seconds = started.elapsed().as_secs_f64();
        let (_, data_after) = store.fsync_counters().expect("status");
        let batches = orders.div_ceil(batch_size) as f64;
        let statements = match (statements_before, statements_executed(url)) {
            // Server-wide: other clients' statements and this bench's own
            // status queries count too, a few at most on a quiet server.
            (Some(before), Some(after)) => format!("{:.1}", (after - before) as f64 / batches),
            _ => "?".into(),
        };
        let cpu = match (cpu_before, server_pid.and_then(cpu_seconds)) {
            (Some(before), Some(after)) => {
                format!("; server CPU {:.1} µs per order", (after - before) * 1e6 / orders as f64)
            }
            _ => String::new(),
        };
        assert_eq!(expired, orders, "every order was pending and due");
        println!(
            "mysql expiry: batch {batch_size:>5}: {orders:>7} orders expired in {:>8.1} ms = {:>7.0} orders/s, \
             {:>6.2} ms per expire_orders call, {statements} statements per call (server-wide), \
             {:.1} data fsyncs per 1,000 orders{cpu}",
            seconds * 1e3,
            orders as f64 / seconds,
            seconds * 1e3 / batches,
            (data_after - data_before) as f64 * 1000.0 / orders as f64,
        );
    }
}

/// Statements the server has run so far (all clients, every kind: prepared
/// executions, plain queries, BEGIN and COMMIT), from `Questions`.
fn statements_executed(url: &str) -> Option<u64> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
    runtime.block_on(async {
        let mut conn = mysql_async::Conn::from_url(url).await.ok()?;
        let row: Option<(String, u64)> = conn.query_first("SHOW GLOBAL STATUS LIKE 'Questions'").await.ok()?;
        let _ = conn.disconnect().await;
        row.map(|(_, n)| n)
    })
}

/// The same machine's ceiling in the same run: batches of 1,000 plain rows
/// (the order's columns, primary key only, no reads, no checks) in one
/// transaction each, as 2 prepared 500-row INSERTs. The store's rate divided
/// by this one is the figure to compare across noisy runs.
fn reference_insert_rate(url: &str, scale: usize) {
    const BATCH: usize = 1_000;
    const CHUNK: usize = 500;
    let batches = 200 / scale;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let result: mysql_async::Result<f64> = runtime.block_on(async {
        let mut conn = mysql_async::Conn::from_url(url).await?;
        conn.query_drop(
            "CREATE TABLE reference_rows (id BIGINT NOT NULL PRIMARY KEY, item_id BIGINT NOT NULL,
             user_id BIGINT NOT NULL, quantity INT NOT NULL, status TINYINT NOT NULL, created_ms BIGINT NOT NULL,
             pay_deadline_ms BIGINT NOT NULL, request_id VARCHAR(64) NULL) ENGINE=InnoDB",
        )
        .await?;
        let sql = format!("INSERT INTO reference_rows VALUES {}", vec!["(?, ?, ?, ?, ?, ?, ?, ?)"; CHUNK].join(", "));
        let started = Instant::now();
        let mut id = 0i64;
        for _ in 0..batches {
            conn.query_drop("START TRANSACTION").await?;
            for _ in 0..BATCH / CHUNK {
                let mut params: Vec<mysql_async::Value> = Vec::with_capacity(CHUNK * 8);
                for _ in 0..CHUNK {
                    id += 1;
                    params.extend([id.into(), 1i64.into(), (id % 10_000).into(), 1i64.into(), 0i64.into()]);
                    params.extend([1i64.into(), 2i64.into(), format!("r{id}").into()]);
                }
                conn.exec_drop(sql.as_str(), params).await?;
            }
            conn.query_drop("COMMIT").await?;
        }
        let rate = (batches * BATCH) as f64 / started.elapsed().as_secs_f64();
        conn.disconnect().await?;
        Ok(rate)
    });
    match result {
        Ok(rate) => println!("reference: plain 1,000-row transactions, primary key only: {rate:>7.0} rows/s"),
        Err(e) => eprintln!("reference insert failed: {e}"),
    }
}

/// The database server's pid, if it runs on this machine (its pid file is readable here).
fn server_pid(url: &str) -> Option<u32> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
    let pid_file: Option<String> = runtime.block_on(async {
        let mut conn = mysql_async::Conn::from_url(url).await.ok()?;
        let file: Option<String> = conn.query_first("SELECT @@pid_file").await.ok()?;
        let _ = conn.disconnect().await;
        file
    });
    std::fs::read_to_string(pid_file?).ok()?.trim().parse().ok()
}

/// User + system CPU seconds of process `pid` (Linux `/proc/PID/stat`, 100 ticks a second).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command (which may hold spaces) start at state, field 3.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn drop_database(server: &str, database: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let result: mysql_async::Result<()> = runtime.block_on(async {
        let mut conn = mysql_async::Conn::from_url(server).await?;
        conn.query_drop(format!("DROP DATABASE IF EXISTS `{database}`")).await?;
        conn.disconnect().await
    });
    if let Err(e) = result {
        eprintln!("could not drop {database}: {e}");
    }
}
