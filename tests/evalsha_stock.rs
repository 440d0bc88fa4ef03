//! The evalsha strategy (issue 7's comparison design): instances on Redis +
//! MariaDB with `sale.stock_strategy = "evalsha"`, every buy one script on
//! the item's counter in Redis. Two instances sell exactly the stock, no
//! user goes above its limit, refusals after the sell-out are 410, MySQL
//! and every instance agree; a cancelled order's unit sells again; a
//! counter Redis lost is rebuilt from the store. Real processes and real
//! services; each test has its own database and key prefix. No timed
//! assertion: waits are polls with generous deadlines.

mod common;

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use common::sale::{Backends, Shop, User, assert_conserved, assert_error, fast, path_on, poll_until, send};
use common::stock::{self, Bought};
use common::{Conn, Server};

const ADMIN: &str = "evalsha-stock-admin-token-0123456789abcd";
const SECRET: &str = "evalsha-stock-shared-secret-0123456789abcdef0";
const ITEM: u64 = 11;

/// `count` instances with the evalsha strategy sharing one database, one
/// key prefix and one secret.
fn instances(backends: &Backends, count: usize) -> Vec<Server> {
    (0..count)
        .map(|_| {
            let options = backends
                .apply(fast())
                .set("auth.admin_token", ADMIN)
                .set("auth.secret", SECRET)
                .set("sale.stock_strategy", "evalsha");
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

fn buy_once(conn: &mut Conn, user: &User, path: &str, request_id: &str) -> common::Response {
    stock::buy_once(conn, user, ITEM, path, request_id)
}

fn buy(conn: &mut Conn, user: &User, path: &str, request_id: &str) -> Bought {
    stock::buy(conn, user, ITEM, path, request_id)
}

fn assert_sold_exactly(servers: &[Server], acknowledged: &HashSet<String>, stock: u64) {
    stock::assert_sold_exactly(servers, ADMIN, ITEM, acknowledged, stock);
}

/// A counter of this instance's `/metrics`, e.g. `seckill_orders_total{event="placed"}`.
fn metric(server: &Server, name: &str) -> u64 {
    let metrics = server.get("/metrics").text();
    let line = metrics.lines().find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '));
    let value = line.and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok());
    value.unwrap_or_else(|| panic!("no {name} in /metrics:\n{metrics}"))
}

#[test]
fn two_instances_sell_exactly_the_stock_one_script_per_buy() {
    const STOCK: u64 = 50;
    const LIMIT: u32 = 2;
    let servers = instances(&Backends::fresh(), 2);
    let shop = put_item(&servers, STOCK, LIMIT);
    let users = shop.users("evalsha", 60);
    let results: Mutex<Vec<(u64, Bought)>> = Mutex::new(Vec::new());
    // Four clients at once, two on each instance, each user trying one more
    // unit than allowed.
    std::thread::scope(|scope| {
        for (i, chunk) in users.chunks(users.len() / 4).enumerate() {
            let results = &results;
            let server = &servers[i % servers.len()];
            scope.spawn(move || {
                let mut conn = server.connect();
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
    assert_eq!(servers.iter().map(|s| metric(s, "seckill_orders_total{event=\"placed\"}")).sum::<u64>(), STOCK);
    // After the sell-out every instance refuses at once with 410: the
    // counter says so, never a 503 (nothing is held anywhere else).
    let late = shop.users("late", 4);
    for (user, server) in late.iter().zip(servers.iter().cycle()) {
        let mut conn = server.connect();
        let path = path_on(&mut conn, ADMIN, user, ITEM);
        for attempt in 0..3 {
            assert_error(&buy_once(&mut conn, user, &path, &format!("late-{}-{attempt}", user.id)), 410, "sold_out");
        }
    }
    assert_sold_exactly(&servers, &acknowledged, STOCK);
}

#[test]
fn a_cancelled_orders_unit_sells_again_on_the_other_instance() {
    let servers = instances(&Backends::fresh(), 2);
    let shop = put_item(&servers, 1, 1);
    let users = shop.users("cancel", 3);
    let (mut a, mut b) = (servers[0].connect(), servers[1].connect());
    let paths: Vec<String> = users.iter().map(|u| path_on(&mut a, ADMIN, u, ITEM)).collect();
    let Bought::Order(order_id) = buy(&mut a, &users[0], &paths[0], "first") else { panic!("the one unit") };
    assert_eq!(buy(&mut b, &users[1], &paths[1], "second"), Bought::SoldOut);

    let cancel = send(&mut a, "POST", &format!("/api/orders/{order_id}/cancel"), Some(&users[0].token), b"");
    assert_eq!((cancel.status, cancel.json()["status"].as_str()), (200, Some("cancelled")), "{}", cancel.text());
    // The unit is back in the counter exactly once: one more buy succeeds
    // on the other instance, the next is 410 on either.
    let Bought::Order(again) = buy(&mut b, &users[1], &paths[1], "second-again") else { panic!("the unit came back") };
    assert_ne!(again, order_id);
    assert_eq!(buy(&mut a, &users[2], &paths[2], "third"), Bought::SoldOut);
    assert_eq!(buy(&mut b, &users[2], &paths[2], "third-again"), Bought::SoldOut);
    for server in &servers {
        let stats = Shop { server, admin: ADMIN.into() }.stats(ITEM);
        let n = |k: &str| stats[k].as_u64().unwrap();
        assert_eq!((n("pending_payment"), n("cancelled"), n("stock_left")), (1, 1, 0), "{stats}");
        assert_conserved(&stats);
    }
}

/// Deletes the item's counter, as a Redis restarted without persistence
/// would have lost it (FLUSHALL would hit the other tests).
fn lose_the_counter(backends: &Backends) {
    let key = format!("{}{{{ITEM}}}:stock", backends.key_prefix);
    let out = std::process::Command::new("redis-cli")
        .arg("-u")
        .arg(&backends.cache_url)
        .args(["DEL", &key])
        .output()
        .expect("redis-cli");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1", "the counter {key} existed");
}

#[test]
fn a_counter_lost_by_redis_is_rebuilt_from_the_store() {
    const STOCK: u64 = 20;
    let backends = Backends::fresh();
    let servers = instances(&backends, 2);
    let shop = put_item(&servers, STOCK, 1);
    let users = shop.users("lost", 30);
    let mut conn = servers[0].connect();
    let paths: Vec<String> = users.iter().map(|u| path_on(&mut conn, ADMIN, u, ITEM)).collect();
    let mut acknowledged = HashSet::new();
    for (user, path) in users[..5].iter().zip(&paths) {
        let Bought::Order(id) = buy(&mut conn, user, path, "r") else { panic!("the stock is untouched") };
        acknowledged.insert(id);
    }
    lose_the_counter(&backends);
    // The next buy finds it missing: 503, and a rebuild from the store.
    let first = buy_once(&mut servers[1].connect(), &users[5], &paths[5], "r");
    assert_error(&first, 503, "unavailable");
    let mut conn = servers[1].connect();
    let mut sold_out = false;
    for (user, path) in users[5..].iter().zip(&paths[5..]) {
        match buy(&mut conn, user, path, "r") {
            Bought::Order(id) => assert!(acknowledged.insert(id)),
            Bought::SoldOut => sold_out = true,
            Bought::LimitReached => panic!("user {} bought once", user.id),
        }
    }
    assert!(sold_out, "25 buyers for 20 units");
    assert_sold_exactly(&servers, &acknowledged, STOCK);
}
