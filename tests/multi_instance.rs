//! Several instances as one system (issue 6): two servers on Redis + MariaDB
//! behind nginx round robin share sessions, captchas, paths, items and
//! orders, and a logout on one is effective on the other within a second.
//! Real processes and real services: `tests/services` starts Redis and
//! MariaDB; each test has its own database and key prefix.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::nginx::Nginx;
use common::sale::{Backends, PASSWORD, Shop, StoreLock, User, assert_conserved, fast, path_on, poll_until, send};
use common::{Conn, Server, ServerOptions};
use serde_json::{Value, json};

const ADMIN: &str = "multi-instance-admin-token-0123456789";
const SECRET: &str = "multi-instance-shared-secret-0123456789abcdef";

/// Two instances sharing one database, one key prefix and one secret.
fn two_instances() -> (Server, Server) {
    two_instances_with(|options| options)
}

/// The same, with more settings for both.
fn two_instances_with(more: impl Fn(ServerOptions) -> ServerOptions) -> (Server, Server) {
    let backends = Backends::fresh();
    let options = || -> ServerOptions {
        more(
            backends
                .apply(fast())
                .set("auth.admin_token", ADMIN)
                .set("auth.secret", SECRET)
                .set("cache.sessions_per_loop_max", 1024),
        )
    };
    let a = Server::start_with(options());
    let b = Server::start_with(options());
    (a, b)
}

fn call(addr: std::net::SocketAddr, method: &str, path: &str, bearer: Option<&str>, body: &Value) -> common::Response {
    let body = if body.is_null() { Vec::new() } else { body.to_string().into_bytes() };
    send(&mut Conn::connect(addr), method, path, bearer, &body)
}

fn login(addr: std::net::SocketAddr, username: &str) -> User {
    let resp = call(addr, "POST", "/api/login", None, &json!({ "username": username, "password": PASSWORD }));
    assert_eq!(resp.status, 200, "{}", resp.text());
    let v = resp.json();
    User { id: v["user_id"].as_u64().unwrap(), token: v["token"].as_str().unwrap().to_string() }
}

#[test]
fn a_session_captcha_and_path_from_one_instance_work_on_the_other_and_logout_reaches_both() {
    let (a, b) = two_instances();
    let shop_a = Shop { server: &a, admin: ADMIN.into() };
    // An item created on A is heard of by B.
    shop_a.put_item(1, 10, 2);
    let seen = poll_until(Duration::from_secs(5), || {
        (call(b.addr, "GET", "/api/items/1", None, &Value::Null).status == 200).then_some(())
    });
    assert!(seen.is_some(), "B never saw the item created on A");

    // Registered and logged in on A; known to B.
    let reg = call(a.addr, "POST", "/api/users", None, &json!({ "username": "alice", "password": PASSWORD }));
    assert_eq!(reg.status, 201, "{}", reg.text());
    let alice = login(a.addr, "alice");
    let me = call(b.addr, "GET", "/api/me", Some(&alice.token), &Value::Null);
    assert_eq!(me.status, 200, "a session made on A works on B: {}", me.text());
    assert_eq!(me.json()["username"], "alice");

    // Captcha drawn on A, answered (and the path minted) on B, bought on A.
    let captcha = call(a.addr, "GET", "/api/items/1/captcha", Some(&alice.token), &Value::Null);
    assert_eq!(captcha.status, 200, "{}", captcha.text());
    let hook =
        call(b.addr, "GET", &format!("/admin/items/1/captcha-answer?user_id={}", alice.id), Some(ADMIN), &Value::Null);
    assert_eq!(hook.status, 200, "B sees A's captcha: {}", hook.text());
    let answer = hook.json()["answer"].as_str().unwrap().to_string();
    let path = call(b.addr, "POST", "/api/items/1/path", Some(&alice.token), &json!({ "captcha": answer }));
    assert_eq!(path.status, 200, "{}", path.text());
    let path = path.json()["path"].as_str().unwrap().to_string();
    // The captcha was consumed on B: A cannot take it again.
    let again = call(a.addr, "POST", "/api/items/1/path", Some(&alice.token), &json!({ "captcha": answer }));
    assert_eq!(again.status, 403, "{}", again.text());
    assert_eq!(again.json()["code"], "captcha_expired");
    let buy = call(a.addr, "POST", &format!("/api/seckill/{path}"), Some(&alice.token), &json!({ "item_id": 1 }));
    assert_eq!(buy.status, 200, "a path minted on B buys on A: {}", buy.text());
    let order_id = buy.json()["order_id"].as_str().unwrap().to_string();
    let order = call(b.addr, "GET", &format!("/api/orders/{order_id}"), Some(&alice.token), &Value::Null);
    assert_eq!(order.status, 200, "B finds A's order in the shared store: {}", order.text());
    let result = call(b.addr, "GET", "/api/items/1/result", Some(&alice.token), &Value::Null);
    assert_eq!(result.json(), json!({ "status": "success", "order_id": order_id }), "/result is the same on B");

    // Logout on B: A refuses the token within a second. Both loops of A
    // have seen it (several connections), so both must forget it.
    for _ in 0..4 {
        assert_eq!(call(a.addr, "GET", "/api/me", Some(&alice.token), &Value::Null).status, 200);
    }
    let out = call(b.addr, "POST", "/api/logout", Some(&alice.token), &Value::Null);
    assert_eq!(out.status, 204, "{}", out.text());
    let started = Instant::now();
    let refused = poll_until(Duration::from_secs(5), || {
        let statuses: Vec<u16> =
            (0..4).map(|_| call(a.addr, "GET", "/api/me", Some(&alice.token), &Value::Null).status).collect();
        statuses.iter().all(|&s| s == 401).then_some(started.elapsed())
    })
    .expect("A still accepts a token logged out on B after 5 s");
    println!("logout on B refused on A after {} ms", refused.as_millis());
    assert!(
        refused < Duration::from_secs(1),
        "logout took {} ms to reach A (contract: within 1 s)",
        refused.as_millis()
    );
}

#[test]
fn orders_placed_through_nginx_on_both_instances_are_all_in_mysql_and_never_oversold() {
    let (a, b) = two_instances();
    let nginx = Nginx::round_robin(&[a.addr, b.addr]);
    let shop = Shop { server: &a, admin: ADMIN.into() };
    const STOCK: u64 = 30;
    shop.put_item(7, STOCK, 1);
    assert!(
        poll_until(Duration::from_secs(5), || (call(b.addr, "GET", "/api/items/7", None, &Value::Null).status == 200)
            .then_some(()))
        .is_some()
    );
    let users = shop.users("lb", 60);
    let mut conn = Conn::connect(nginx.addr);
    let mut acknowledged = HashSet::new();
    let mut sold_out = 0;
    for user in &users {
        // Through the balancer: captcha, answer hook, path and buy each land
        // on whichever instance nginx picks.
        let path = path_on(&mut conn, ADMIN, user, 7);
        let body = json!({ "item_id": 7, "request_id": format!("r-{}", user.id) });
        let buy = |conn: &mut Conn| {
            send(conn, "POST", &format!("/api/seckill/{path}"), Some(&user.token), body.to_string().as_bytes())
        };
        let mut resp = buy(&mut conn);
        // Contract §3: while another instance holds units of its lease, a
        // short allotment answers 503 with a Retry-After; the same request
        // id is sent again until the answer is final.
        let deadline = Instant::now() + Duration::from_secs(30);
        while resp.status == 503 && Instant::now() < deadline {
            assert!(resp.header("Retry-After").is_some(), "{}", resp.text());
            std::thread::sleep(Duration::from_millis(20));
            resp = buy(&mut conn);
        }
        match resp.status {
            200 => {
                acknowledged.insert(resp.json()["order_id"].as_str().unwrap().to_string());
            }
            410 => sold_out += 1,
            other => panic!("unexpected {other}: {}", resp.text()),
        }
    }
    assert_eq!(acknowledged.len() as u64, STOCK, "exactly the stock sold ({sold_out} refused sold out)");
    let stored: HashSet<String> = shop.item_orders(7).iter().map(|o| o["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(stored, acknowledged, "every acknowledged order is in MySQL, and nothing else");
    let shop_b = Shop { server: &b, admin: ADMIN.into() };
    for stats in [shop.stats(7), shop_b.stats(7)] {
        assert_eq!(stats["pending_payment"].as_u64().unwrap() + stats["paid"].as_u64().unwrap(), STOCK, "{stats}");
        assert_conserved(&stats);
    }
}

/// Async confirmation behind a balancer: the 202 comes from A, the client's
/// next `/result` may land on B, which must read `pending` (not `none`)
/// while A's batch is still being written, then `success`.
#[test]
fn an_order_in_flight_on_one_instance_reads_pending_on_the_other() {
    let (a, b) = two_instances_with(|options| options.set("sale.confirm", "async"));
    let shop = Shop { server: &a, admin: ADMIN.into() };
    shop.put_item(5, 10, 1);
    assert!(
        poll_until(Duration::from_secs(5), || (call(b.addr, "GET", "/api/items/5", None, &Value::Null).status == 200)
            .then_some(()))
        .is_some()
    );
    let user = &shop.users("flight", 1)[0];
    let path = shop.path(user, 5);
    // The item's row locked: A's batch waits inside its commit.
    let lock = StoreLock::take(&a, 5);
    let body = json!({ "item_id": 5, "request_id": "in-flight-1" });
    let bought = call(a.addr, "POST", &format!("/api/seckill/{path}"), Some(&user.token), &body);
    assert_eq!(bought.status, 202, "{}", bought.text());
    let result = |server: &Server| call(server.addr, "GET", "/api/items/5/result", Some(&user.token), &Value::Null);
    let pending = poll_until(Duration::from_secs(5), || (result(&b).json()["status"] == "pending").then_some(()));
    assert!(pending.is_some(), "B never read pending while A's batch was held: {}", result(&b).text());
    lock.release();
    let done = poll_until(Duration::from_secs(10), || {
        let seen = result(&b).json();
        (seen["status"] == "success").then_some(seen)
    })
    .expect("B reads success once A's batch committed");
    assert_eq!(done, result(&a).json(), "both instances give the same answer");
    let metrics = a.get("/metrics").text();
    let lost = metrics.lines().find(|l| l.starts_with("seckill_cache_in_flight_marks_lost_total "));
    assert_eq!(lost, Some("seckill_cache_in_flight_marks_lost_total 0"), "A's mark was written");
}

/// Short leases: A's renewal soon says its unit is sold, and B then finds
/// the item sold out.
const LEASE_MS: u64 = 1_000;

/// Found by the nemesis (issue 10): a buy answered 503 on A (its batch held
/// up in the store) and retried on B, where the item is sold out, must not
/// be refused while A's attempt may still commit: B sees A's in-flight mark
/// and answers 503 until the store decides; then the retry gets the order.
#[test]
fn a_retry_elsewhere_while_its_first_attempt_is_in_flight_is_not_refused() {
    let (a, b) = two_instances_with(|o| o.set("sale.lease_ms", LEASE_MS).set("sale.confirm_timeout_ms", 60_000));
    let shop = Shop { server: &a, admin: ADMIN.into() };
    shop.put_item(5, 1, 1);
    let seen = poll_until(Duration::from_secs(5), || {
        (call(b.addr, "GET", "/api/items/5", None, &Value::Null).status == 200).then_some(())
    });
    assert!(seen.is_some(), "B never saw the item created on A");
    let user = &shop.users("inflight", 1)[0];
    let path = shop.path(user, 5);
    let body = json!({ "item_id": 5, "request_id": "first-1" });
    // A takes the only unit; its batch waits on the item's row lock. (If B
    // leased the unit first, A answers 503 until B's idle lease goes back to
    // the pool: the client retries with the same request id, as told.)
    let lock = StoreLock::take(&a, 5);
    let first = std::thread::scope(|scope| {
        let first = scope.spawn(|| {
            poll_until(Duration::from_secs(30), || {
                let resp = call(a.addr, "POST", &format!("/api/seckill/{path}"), Some(&user.token), &body);
                (resp.status != 503).then_some(resp)
            })
            .expect("A answers the first attempt for good")
        });
        retried_on_b_while_held(&b, user, &path, &body, lock);
        first.join().unwrap()
    });
    assert_eq!(first.status, 200, "{}", first.text());
    let retry = poll_until(Duration::from_secs(10), || {
        let resp = call(b.addr, "POST", &format!("/api/seckill/{path}"), Some(&user.token), &body);
        (resp.status != 503).then_some(resp)
    })
    .expect("B answers the retry for good once A's batch committed");
    assert_eq!(retry.status, 200, "{}", retry.text());
    assert_eq!(retry.json()["order_id"], first.json()["order_id"], "the same order");
}

/// While `lock` holds A's batch, B answers the retry 503 (never 409/410),
/// also once its own stock says sold out; then the lock goes.
fn retried_on_b_while_held(b: &Server, user: &User, path: &str, body: &Value, lock: StoreLock) {
    let result = |server: &Server| call(server.addr, "GET", "/api/items/5/result", Some(&user.token), &Value::Null);
    let marked = poll_until(Duration::from_secs(20), || (result(b).json()["status"] == "pending").then_some(()));
    assert!(marked.is_some(), "A's order never showed as in flight on B");
    // Once A's lease no longer holds the unit, B's stock answer is sold out;
    // the retry must still not be refused.
    let sold_out_answers = || -> u64 {
        let metrics = b.get("/metrics").text();
        let line = metrics.lines().find(|l| l.starts_with("seckill_buy_answers_total{outcome=\"sold_out\"}"));
        line.and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok()).unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while sold_out_answers() == 0 {
        assert!(Instant::now() < deadline, "B never found the item sold out");
        let retry = call(b.addr, "POST", &format!("/api/seckill/{path}"), Some(&user.token), body);
        assert_eq!(retry.status, 503, "the retry on B while A's attempt is in flight: {}", retry.text());
        assert!(retry.header("retry-after").is_some());
        std::thread::sleep(Duration::from_millis(LEASE_MS / 4));
    }
    lock.release();
}

/// Found by the nemesis (issue 10): a retry of a buy answered 200 on A,
/// sent to B once B has seen the item sell out, must get the same order
/// (promise 5), not 410. B's index of request ids never saw A's requests,
/// so a miss in it proves nothing: B must ask the shared store.
#[test]
fn a_retry_of_an_order_made_on_one_instance_gets_that_order_on_the_other_after_the_sell_out() {
    let (a, b) = two_instances();
    let shop_a = Shop { server: &a, admin: ADMIN.into() };
    let shop_b = Shop { server: &b, admin: ADMIN.into() };
    shop_a.put_item(9, 1, 1);
    let seen = poll_until(Duration::from_secs(5), || {
        (call(b.addr, "GET", "/api/items/9", None, &Value::Null).status == 200).then_some(())
    });
    assert!(seen.is_some(), "B never saw the item created on A");
    let users = shop_a.users("retry", 2);
    let (alice, bob) = (&users[0], &users[1]);
    let alice_path = shop_a.path(alice, 9);
    let body = json!({ "item_id": 9, "request_id": "alice-1" });
    let first = shop_a.buy(alice, &alice_path, &body);
    assert_eq!(first.status, 200, "{}", first.text());
    let order_id = first.json()["order_id"].clone();
    // Bob's buy on B ends in 410: B now knows the item is sold out. (On
    // leased stock B answers 503 + Retry-After while A's lease may still
    // hold the unit; Bob retries with the same request id, as the contract
    // tells clients to.)
    let bob_path = shop_b.path(bob, 9);
    let bob_body = json!({ "item_id": 9, "request_id": "bob-1" });
    let bob_buy = poll_until(Duration::from_secs(10), || {
        let resp = shop_b.buy(bob, &bob_path, &bob_body);
        (resp.status != 503).then_some(resp)
    })
    .expect("B answers Bob for good within 10 s");
    assert_eq!(bob_buy.status, 410, "{}", bob_buy.text());
    let retry = shop_b.buy(alice, &alice_path, &body);
    assert_eq!(retry.status, 200, "the retry on B: {}", retry.text());
    assert_eq!(retry.json()["order_id"], order_id, "the same order");
}
