//! Distributed stock (issue 7): three instances on Redis + MariaDB selling
//! one item from leased allotments. Exactly the stock is sold, no user goes
//! above its limit, MySQL and every instance agree; an instance killed with
//! `kill -9` leaves no unit stranded once its lease lapses; an instance
//! paused past its lease sells nothing stale when it resumes; Redis losing
//! the pool's keys, or a Redis restarted empty mid-sale, costs a rebuild,
//! not a unit; and a 3-node Redis Cluster
//! started by the test runs a sale with the item's shards on several nodes.
//! Real processes and real services; each test has its own database and key
//! prefix. No timed assertion: waits are polls with generous deadlines.

mod common;

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use common::nginx::Nginx;
use common::sale::{Backends, Shop, User, fast, path_on, poll_until, send};
use common::stock::{self, Bought};
use common::{Conn, Server, ServerOptions};
use serde_json::json;

const ADMIN: &str = "distributed-stock-admin-token-0123456789";
const SECRET: &str = "distributed-stock-shared-secret-0123456789abcdef";
const ITEM: u64 = 7;
/// Short leases, so that a dead instance's units come back quickly.
const LEASE_MS: u64 = 1_000;

/// `count` instances sharing one database, one key prefix and one secret.
fn instances(count: usize) -> Vec<Server> {
    instances_on(&Backends::fresh(), count)
}

fn instances_on(backends: &Backends, count: usize) -> Vec<Server> {
    (0..count)
        .map(|_| {
            let options: ServerOptions = backends
                .apply(fast())
                .set("auth.admin_token", ADMIN)
                .set("auth.secret", SECRET)
                .set("sale.lease_ms", LEASE_MS)
                .set("sale.lease_chunk_max", 5);
            Server::start_with(options)
        })
        .collect()
}

/// Puts the item on instance 0 and waits until every instance serves it.
fn put_item(servers: &[Server], stock: u64, per_user_limit: u32) -> Shop<'_> {
    let shop = Shop { server: &servers[0], admin: ADMIN.into() };
    shop.put_item(ITEM, stock, per_user_limit);
    for server in servers {
        let seen = poll_until(Duration::from_secs(10), || {
            (send(&mut server.connect(), "GET", &format!("/api/items/{ITEM}"), None, b"").status == 200).then_some(())
        });
        assert!(seen.is_some(), "instance {} never saw the item", server.addr);
    }
    shop
}

fn buy(conn: &mut Conn, user: &User, path: &str, request_id: &str) -> Bought {
    stock::buy(conn, user, ITEM, path, request_id)
}

fn assert_sold_exactly(servers: &[Server], acknowledged: &HashSet<String>, stock: u64) {
    stock::assert_sold_exactly(servers, ADMIN, ITEM, acknowledged, stock);
}

/// Orders this instance placed, from its `/metrics`.
fn placed(server: &Server) -> u64 {
    let metrics = server.get("/metrics").text();
    let line = metrics.lines().find(|l| l.starts_with("seckill_orders_total{event=\"placed\"}"));
    let value = line.and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok());
    value.unwrap_or_else(|| panic!("no placed orders in /metrics:\n{metrics}"))
}

#[test]
fn three_instances_behind_nginx_sell_exactly_the_stock_and_respect_limits() {
    const STOCK: u64 = 60;
    const LIMIT: u32 = 2;
    let servers = instances(3);
    let nginx = Nginx::round_robin(&servers.iter().map(|s| s.addr).collect::<Vec<_>>());
    let shop = put_item(&servers, STOCK, LIMIT);
    let users = shop.users("lease", 60);
    let results: Mutex<Vec<(u64, Bought)>> = Mutex::new(Vec::new());
    // Four clients at once, each user trying one more unit than allowed.
    std::thread::scope(|scope| {
        for chunk in users.chunks(users.len() / 4) {
            let results = &results;
            let nginx = &nginx;
            scope.spawn(move || {
                let mut conn = Conn::connect(nginx.addr);
                for user in chunk {
                    let path = path_on(&mut conn, ADMIN, user, ITEM);
                    for attempt in 0..=LIMIT {
                        let bought = buy(&mut conn, user, &path, &format!("r-{}-{attempt}", user.id));
                        results.lock().unwrap().push((user.id, bought));
                    }
                }
            });
        }
    });
    let results = results.into_inner().unwrap();
    let acknowledged = stock::acknowledged_within(&results, LIMIT);
    assert_sold_exactly(&servers, &acknowledged, STOCK);
    // Every instance's own count of the orders it placed adds up to the same.
    assert_eq!(servers.iter().map(placed).sum::<u64>(), STOCK);
}

/// One unit for each of `users` on `server`, while the stock is untouched:
/// each buy must end in an order.
fn buy_one_each(server: &Server, users: &[User], acknowledged: &mut HashSet<String>) {
    let mut conn = server.connect();
    for user in users {
        let path = path_on(&mut conn, ADMIN, user, ITEM);
        match buy(&mut conn, user, &path, &format!("r-{}", user.id)) {
            Bought::Order(id) => assert!(acknowledged.insert(id)),
            other => panic!("{other:?} with the stock untouched"),
        }
    }
}

/// Buys on `server` with fresh users until it answers 410; returns the orders.
fn buy_until_sold_out(server: &Server, users: &[User], acknowledged: &mut HashSet<String>) -> usize {
    let mut conn = server.connect();
    for user in users {
        let path = path_on(&mut conn, ADMIN, user, ITEM);
        match buy(&mut conn, user, &path, &format!("r-{}", user.id)) {
            Bought::Order(id) => {
                acknowledged.insert(id);
            }
            Bought::SoldOut => return acknowledged.len(),
            Bought::LimitReached => panic!("user {} was fresh", user.id),
        }
    }
    panic!("not sold out after {} buyers", users.len());
}

#[test]
fn a_killed_instance_strands_nothing_once_its_lease_lapses() {
    const STOCK: u64 = 40;
    let mut servers = instances(3);
    let shop = put_item(&servers, STOCK, 1);
    let users = shop.users("kill", 100);
    let mut acknowledged = HashSet::new();
    // Instance 0 sells a few, so it holds the rest of a leased chunk.
    buy_one_each(&servers[0], &users[..3], &mut acknowledged);
    servers[0].kill9();
    let survivors = &servers[1..];
    // The survivors answer 503 while the dead lease holds units, then sell them.
    buy_until_sold_out(&survivors[0], &users[3..], &mut acknowledged);
    assert_sold_exactly(survivors, &acknowledged, STOCK);
}

#[test]
fn an_instance_paused_past_its_lease_sells_nothing_stale() {
    const STOCK: u64 = 30;
    let servers = instances(2);
    let shop = put_item(&servers, STOCK, 1);
    let users = shop.users("pause", 80);
    let mut acknowledged = HashSet::new();
    let paused = &servers[0];
    let mut conn = paused.connect();
    let path = path_on(&mut conn, ADMIN, &users[0], ITEM);
    match buy(&mut conn, &users[0], &path, "r-first") {
        Bought::Order(id) => assert!(acknowledged.insert(id)),
        other => panic!("{other:?} with the stock untouched"),
    }
    // A path for the paused instance's next buyer, made before the pause.
    let stale_path = path_on(&mut conn, ADMIN, &users[1], ITEM);
    paused.signal(libc::SIGSTOP);
    // The other instance sells everything, the paused lease's units included
    // once it lapses.
    buy_until_sold_out(&servers[1], &users[2..], &mut acknowledged);
    paused.signal(libc::SIGCONT);
    // Whatever the paused instance still had in its allotment is not its to sell.
    assert_eq!(buy(&mut conn, &users[1], &stale_path, "r-stale"), Bought::SoldOut);
    assert_sold_exactly(&servers, &acknowledged, STOCK);
    // The lapsed lease was settled by a rebuild from the store, not by
    // handing back units it may have sold: at rest the pool holds exactly
    // the store's count (nothing), every lease renewed meanwhile.
    std::thread::sleep(Duration::from_millis(2 * LEASE_MS));
    let report = shop.admin_call("POST", "/admin/reconcile", &serde_json::Value::Null);
    assert_eq!(report.json()["pool_drift"], json!([]), "{}", report.text());
    let rebuilt = servers.iter().filter(|s| s.stderr().contains("stock pool rebuilt from the store")).count();
    assert!(rebuilt >= 1, "the lapsed lease was not settled by a rebuild");
}

/// Deletes every key of the test's prefix, as a Redis restarted without
/// persistence would have lost them (FLUSHALL would hit the other tests).
fn lose_redis_data(backends: &Backends) {
    let redis_cli = |args: &[&str]| {
        let out = std::process::Command::new("redis-cli")
            .arg("-u")
            .arg(&backends.cache_url)
            .args(args)
            .output()
            .expect("redis-cli");
        assert!(out.status.success(), "redis-cli {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let pattern = format!("{}*", backends.key_prefix);
    let keys = redis_cli(&["--scan", "--pattern", &pattern]);
    let keys: Vec<&str> = keys.lines().filter(|k| !k.is_empty()).collect();
    assert!(keys.iter().any(|k| k.contains(&format!("{{{ITEM}:"))), "the pool's keys: {keys:?}");
    let mut del = vec!["DEL"];
    del.extend(keys);
    redis_cli(&del);
}

#[test]
fn a_pool_lost_by_redis_is_rebuilt_from_the_store_and_the_sale_completes_exactly() {
    const STOCK: u64 = 30;
    let backends = Backends::fresh();
    let servers = instances_on(&backends, 2);
    let shop = put_item(&servers, STOCK, 1);
    let users = shop.users("lost", 80);
    let mut acknowledged = HashSet::new();
    buy_one_each(&servers[0], &users[..5], &mut acknowledged);
    lose_redis_data(&backends);
    // Both instances sell on: 503 until one rebuilds the pool, then orders.
    buy_until_sold_out(&servers[1], &users[5..40], &mut acknowledged);
    assert_sold_exactly(&servers, &acknowledged, STOCK);
    // At rest: every lease renewed since the last sale (a lease still counts
    // the units sold since its last renewal, every third of LEASE_MS).
    std::thread::sleep(Duration::from_millis(2 * LEASE_MS));
    // Reconcile rebuilds the pool on demand; at rest nothing is left to sell.
    let report = shop.admin_call("POST", "/admin/reconcile", &serde_json::Value::Null);
    assert_eq!(report.status, 200, "{}", report.text());
    assert_eq!(report.json()["pools_rebuilt"], json!([ITEM]), "{}", report.text());
    assert_eq!(report.json()["pool_drift"], json!([]), "at rest the pool holds the store's count");
    let mut acknowledged_after = HashSet::new();
    buy_until_sold_out(&servers[0], &users[40..42], &mut acknowledged_after);
    assert!(acknowledged_after.is_empty(), "sold after the rebuild: {acknowledged_after:?}");
    assert_sold_exactly(&servers, &acknowledged, STOCK);
    // Three units that exist nowhere but in one shard: reconcile reports
    // them, and its rebuild takes them away.
    let shard = format!("{}{{{ITEM}:0}}", backends.key_prefix);
    let out = std::process::Command::new("redis-cli")
        .args(["-u", &backends.cache_url, "HINCRBY", &shard, "pool", "3"])
        .output()
        .expect("redis-cli");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report = shop.admin_call("POST", "/admin/reconcile", &serde_json::Value::Null);
    assert_eq!(report.json()["pool_drift"], json!([{ "item_id": ITEM, "pool_units": 3, "store_left": 0 }]));
    buy_until_sold_out(&servers[1], &users[42..44], &mut acknowledged_after);
    assert!(acknowledged_after.is_empty(), "sold the drifted units: {acknowledged_after:?}");
    assert_sold_exactly(&servers, &acknowledged, STOCK);
}

/// A redis-server of the test's own on a free loopback port, without
/// persistence: killed and started again, it comes back empty, as a real
/// Redis restart (or FLUSHALL) leaves the instances' pool.
struct PrivateRedis {
    port: u16,
    child: Option<std::process::Child>,
}

impl PrivateRedis {
    fn start() -> PrivateRedis {
        let mut redis = PrivateRedis { port: free_ports(1)[0], child: None };
        redis.spawn();
        redis
    }

    fn spawn(&mut self) {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server");
        self.child = Some(child);
        let port = self.port;
        let up = poll_until(Duration::from_secs(10), || {
            let out = std::process::Command::new("redis-cli").args(["-p", &port.to_string(), "ping"]).output();
            out.is_ok_and(|o| o.stdout.starts_with(b"PONG")).then_some(())
        });
        assert!(up.is_some(), "redis-server on {port} never answered");
    }

    /// `kill -9`, then a new process on the same port, with nothing in it.
    fn restart_empty(&mut self) {
        self.kill();
        self.spawn();
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

#[test]
fn a_redis_restarted_empty_mid_sale_costs_a_rebuild_not_a_unit() {
    const STOCK: u64 = 30;
    let mut redis = PrivateRedis::start();
    let mut backends = Backends::fresh();
    backends.cache_url = redis.url();
    let servers = instances_on(&backends, 2);
    let shop = put_item(&servers, STOCK, 1);
    let users = shop.users("restart", 80);
    let mut acknowledged = HashSet::new();
    buy_one_each(&servers[0], &users[..5], &mut acknowledged);
    // Sessions, captchas, the pool, the scripts: all gone with the process.
    redis.restart_empty();
    // Captchas live in Redis: wait for each instance to have reconnected.
    for server in &servers {
        let back = poll_until(Duration::from_secs(30), || {
            let resp =
                send(&mut server.connect(), "GET", &format!("/api/items/{ITEM}/captcha"), Some(&users[5].token), b"");
            (resp.status == 200).then_some(())
        });
        assert!(back.is_some(), "instance {} never reached the restarted Redis", server.addr);
    }
    // Both instances sell on: 503 while Redis is away and until one rebuilds
    // the pool from MySQL, then orders, until exactly the stock is sold.
    buy_until_sold_out(&servers[1], &users[5..45], &mut acknowledged);
    buy_until_sold_out(&servers[0], &users[45..], &mut acknowledged);
    assert_sold_exactly(&servers, &acknowledged, STOCK);
    let rebuilt = servers.iter().filter(|s| s.stderr().contains("stock pool rebuilt from the store")).count();
    assert!(rebuilt >= 1, "no instance rebuilt the pool");
}

/// A 3-node Redis Cluster (no replicas) on free loopback ports, each node in
/// its own directory; the nodes are killed on drop.
struct RedisCluster {
    nodes: Vec<(u16, std::process::Child)>,
    _dir: common::TempDir,
}

impl RedisCluster {
    fn start() -> RedisCluster {
        let dir = common::TempDir::new("redis-cluster");
        let mut nodes = Vec::new();
        for port in free_ports(3) {
            let node_dir = dir.path().join(port.to_string());
            std::fs::create_dir_all(&node_dir).unwrap();
            let child = std::process::Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--cluster-enabled", "yes"])
                .args(["--cluster-config-file", "nodes.conf", "--appendonly", "no", "--save", ""])
                .current_dir(&node_dir)
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("redis-server");
            nodes.push((port, child));
        }
        let cluster = RedisCluster { nodes, _dir: dir };
        for (port, _) in &cluster.nodes {
            let up = poll_until(Duration::from_secs(10), || (cluster.cli(*port, &["ping"]) == "PONG").then_some(()));
            assert!(up.is_some(), "redis-server on {port} never answered");
        }
        let addrs: Vec<String> = cluster.nodes.iter().map(|(port, _)| format!("127.0.0.1:{port}")).collect();
        let mut create = vec!["--cluster", "create"];
        create.extend(addrs.iter().map(String::as_str));
        create.extend(["--cluster-replicas", "0", "--cluster-yes"]);
        cluster.cli(cluster.nodes[0].0, &create);
        for (port, _) in &cluster.nodes {
            let ok = poll_until(Duration::from_secs(20), || {
                cluster.cli(*port, &["cluster", "info"]).contains("cluster_state:ok").then_some(())
            });
            assert!(ok.is_some(), "the cluster never became ok on {port}");
        }
        cluster
    }

    fn cli(&self, port: u16, args: &[&str]) -> String {
        let out = std::process::Command::new("redis-cli")
            .args(["-p", &port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn url(&self) -> String {
        let addrs: Vec<String> = self.nodes.iter().map(|(port, _)| format!("127.0.0.1:{port}")).collect();
        format!("redis-cluster://{}", addrs.join(","))
    }

    /// How many nodes hold at least one shard key of item `ITEM`.
    fn nodes_holding_the_pool(&self) -> usize {
        let pattern = format!("*{{{ITEM}:*");
        self.nodes.iter().filter(|(port, _)| !self.cli(*port, &["--scan", "--pattern", &pattern]).is_empty()).count()
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for (_, child) in &mut self.nodes {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `count` loopback ports free now, whose cluster bus ports (+10000) are free too.
fn free_ports(count: usize) -> Vec<u16> {
    let mut ports = Vec::new();
    while ports.len() < count {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = probe.local_addr().unwrap().port();
        let bus_free = port < 55_000 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok();
        if bus_free && !ports.contains(&port) {
            ports.push(port);
        }
    }
    ports
}

#[test]
fn a_redis_cluster_runs_a_sale_with_the_pool_on_several_nodes() {
    const STOCK: u64 = 40;
    let cluster = RedisCluster::start();
    let mut backends = Backends::fresh();
    backends.cache_url = cluster.url();
    let servers = instances_on(&backends, 2);
    let shop = put_item(&servers, STOCK, 1);
    assert!(cluster.nodes_holding_the_pool() >= 2, "the item's shards sit on one node");
    let users = shop.users("cluster", 60);
    let mut acknowledged = HashSet::new();
    // Half the buyers on each instance, then the rest on the first.
    let mut conns: Vec<Conn> = servers.iter().map(Server::connect).collect();
    for (i, user) in users[..20].iter().enumerate() {
        let conn = &mut conns[i % 2];
        let path = path_on(conn, ADMIN, user, ITEM);
        match buy(conn, user, &path, &format!("r-{}", user.id)) {
            Bought::Order(id) => assert!(acknowledged.insert(id)),
            other => panic!("{other:?} with units left"),
        }
    }
    buy_until_sold_out(&servers[0], &users[20..], &mut acknowledged);
    assert_sold_exactly(&servers, &acknowledged, STOCK);
}
