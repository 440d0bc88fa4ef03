//! The buy over real sockets against the real binary (issue 5, contract §3
//! and §5): the hot path's answers in the contract's order, sync and async
//! confirmation, idempotent request ids, orders (list, get, pay, cancel),
//! the payment window, admin stock, listings and reconcile, and restarts.
//! Concurrency and crashes under load are in `sale_load.rs`.

mod common;

use std::time::Duration;

use common::sale::{HOUR_MS, Shop, StoreLock, assert_conserved, assert_error, fast, now_ms, poll_until};
use common::{Server, ServerOptions, TempDir};
use serde_json::{Value, json};

fn one() -> Value {
    json!({ "item_id": 1 })
}

#[test]
fn a_buy_is_durable_then_listed_paid_and_shown_in_stats() {
    let server = Server::start_with(fast());
    let shop = Shop::new(&server);
    shop.put_item(1, 10, 2);
    let users = shop.users("buyer", 2);
    let path = shop.path(&users[0], 1);
    assert_eq!(shop.result(&users[0], 1)["status"], "none");

    let resp = shop.buy(&users[0], &path, &one());
    assert_eq!(resp.status, 200, "{}", resp.text());
    let body = resp.json();
    assert_eq!(body["status"], "success");
    let order_id = body["order_id"].as_str().expect("order ids are strings").to_string();
    let deadline = body["pay_deadline_ms"].as_u64().unwrap();
    assert!(deadline > now_ms() + 500_000, "default payment window is ten minutes");
    assert_eq!(shop.result(&users[0], 1), json!({ "status": "success", "order_id": order_id }));

    let stats = shop.stats(1);
    assert_eq!((stats["pending_payment"].as_u64(), stats["stock_left"].as_u64()), (Some(1), Some(9)));
    assert_conserved(&stats);
    let item = shop.call("GET", "/api/items/1", None, &Value::Null).json();
    assert_eq!(item["stock_left"], 9);

    // The user's orders, and the order itself; another user sees nothing.
    let mine = shop.call("GET", "/api/orders", Some(&users[0].token), &Value::Null).json();
    assert_eq!(mine["orders"].as_array().unwrap().len(), 1);
    assert_eq!(mine["next"], Value::Null);
    let order = &mine["orders"][0];
    assert_eq!(order["id"], order_id.as_str());
    assert_eq!((order["status"].as_str(), order["quantity"].as_u64()), (Some("pending_payment"), Some(1)));
    assert_eq!(order["paid_ms"], Value::Null);
    let got = shop.call("GET", &format!("/api/orders/{order_id}"), Some(&users[0].token), &Value::Null);
    assert_eq!(got.json(), *order);
    let theirs = shop.call("GET", &format!("/api/orders/{order_id}"), Some(&users[1].token), &Value::Null);
    assert_error(&theirs, 404, "no_such_order");
    let nothing = shop.call("GET", "/api/orders", Some(&users[1].token), &Value::Null).json();
    assert_eq!(nothing["orders"], json!([]));

    // Pay twice: idempotent. Then cancelling is refused.
    let paid = shop.call("POST", &format!("/api/orders/{order_id}/pay"), Some(&users[0].token), &Value::Null);
    assert_eq!(paid.status, 200, "{}", paid.text());
    assert_eq!(paid.json()["status"], "paid");
    assert!(paid.json()["paid_ms"].as_u64().is_some());
    let again = shop.call("POST", &format!("/api/orders/{order_id}/pay"), Some(&users[0].token), &Value::Null);
    assert_eq!(again.json(), paid.json());
    let cancel = shop.call("POST", &format!("/api/orders/{order_id}/cancel"), Some(&users[0].token), &Value::Null);
    assert_error(&cancel, 409, "order_paid");
    let stats = shop.stats(1);
    assert_eq!((stats["paid"].as_u64(), stats["pending_payment"].as_u64()), (Some(1), Some(0)));
    assert_conserved(&stats);
    let listed = shop.item_orders(1);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["status"], "paid");
    let metrics = shop.call("GET", "/metrics", None, &Value::Null).text();
    for series in [
        "seckill_orders_total{event=\"placed\"} 1",
        "seckill_stock_left{item=\"1\"} 9",
        "seckill_writer_batches_total 1",
    ] {
        assert!(metrics.contains(series), "{series} in\n{metrics}");
    }
    assert!(metrics.contains("seckill_writer_commit_seconds_bucket"), "{metrics}");
    // Orders by status, as the keeper counts them in the store every few seconds.
    let counted = poll_until(Duration::from_secs(8), || {
        let m = shop.call("GET", "/metrics", None, &Value::Null).text();
        m.contains("seckill_order_units{item=\"1\",status=\"paid\"} 1").then_some(())
    });
    assert!(counted.is_some(), "{}", shop.call("GET", "/metrics", None, &Value::Null).text());
}

#[test]
fn cancel_returns_the_units_once_and_the_item_sells_again() {
    let server = Server::start_with(fast());
    let shop = Shop::new(&server);
    shop.put_item(1, 1, 1);
    let users = shop.users("canceller", 2);
    let paths: Vec<String> = users.iter().map(|u| shop.path(u, 1)).collect();
    let order_id = shop.buy(&users[0], &paths[0], &one()).json()["order_id"].as_str().unwrap().to_string();
    assert_error(&shop.buy(&users[1], &paths[1], &one()), 410, "sold_out");
    assert_eq!(shop.result(&users[1], 1)["status"], "sold_out");
    assert_eq!(shop.call("GET", "/api/items/1", None, &Value::Null).json()["state"], "sold_out");

    let cancel = |user: &common::sale::User| {
        shop.call("POST", &format!("/api/orders/{order_id}/cancel"), Some(&user.token), &Value::Null)
    };
    assert_error(&cancel(&users[1]), 404, "no_such_order");
    let first = cancel(&users[0]);
    assert_eq!((first.status, first.json()["status"].as_str()), (200, Some("cancelled")));
    assert_eq!(cancel(&users[0]).json(), first.json(), "idempotent");
    let pay = shop.call("POST", &format!("/api/orders/{order_id}/pay"), Some(&users[0].token), &Value::Null);
    assert_error(&pay, 409, "order_cancelled");
    let stats = shop.stats(1);
    assert_eq!((stats["stock_left"].as_u64(), stats["cancelled"].as_u64()), (Some(1), Some(1)));
    assert_conserved(&stats);
    assert_eq!(shop.result(&users[0], 1)["status"], "none");

    // The unit is back exactly once: one more buy succeeds, the next is 410.
    assert_eq!(shop.buy(&users[1], &paths[1], &one()).status, 200);
    assert_error(&shop.buy(&users[0], &paths[0], &one()), 410, "sold_out");
}

#[test]
fn refusals_come_in_the_contract_order() {
    let server = Server::start_with(fast());
    let shop = Shop::new(&server);
    shop.put_item(1, 3, 2);
    shop.put_item(2, 3, 2);
    let users = shop.users("checker", 2);
    let (alice, bob) = (&users[0], &users[1]);
    let path = shop.path(alice, 1);

    // 401 before anything else, even with a bad body and path.
    let anonymous = shop.call("POST", "/api/seckill/nonsense", None, &json!("x"));
    assert_error(&anonymous, 401, "unauthenticated");
    // 400: body before path.
    assert_error(&shop.buy(alice, "nonsense", &json!({ "item_id": "one" })), 400, "invalid_input");
    assert_error(&shop.buy(alice, "nonsense", &json!({ "item_id": 1, "quantity": 0 })), 400, "invalid_input");
    assert_error(&shop.buy(alice, &path, &json!({ "item_id": 1, "quantity": -1 })), 400, "invalid_input");
    assert_error(&shop.buy(alice, &path, &json!({ "item_id": 1, "request_id": "" })), 400, "invalid_input");
    assert_error(&shop.buy(alice, &path, &json!({ "item_id": 1, "request_id": "x".repeat(65) })), 400, "invalid_input");
    let raw =
        common::sale::send(&mut server.connect(), "POST", &format!("/api/seckill/{path}"), Some(&alice.token), b"[1]");
    assert_error(&raw, 400, "invalid_input");
    // 403 bad_path: garbage, another user's path, another item's path.
    assert_error(&shop.buy(alice, "nonsense", &one()), 403, "bad_path");
    assert_error(&shop.buy(bob, &path, &one()), 403, "bad_path");
    assert_error(&shop.buy(alice, &path, &json!({ "item_id": 2 })), 403, "bad_path");
    // 409 limit: more than the limit at once, nothing taken.
    assert_error(&shop.buy(alice, &path, &json!({ "item_id": 1, "quantity": 3 })), 409, "limit_reached");
    // 410: more than is left, all or nothing.
    let bob_path = shop.path(bob, 1);
    assert_eq!(shop.buy(bob, &bob_path, &json!({ "item_id": 1, "quantity": 2 })).status, 200);
    assert_error(&shop.buy(alice, &path, &json!({ "item_id": 1, "quantity": 2 })), 410, "sold_out");
    assert_eq!(shop.buy(alice, &path, &one()).status, 200, "the last unit");
    // At the limit and sold out: the limit is checked first.
    assert_error(&shop.buy(bob, &bob_path, &one()), 409, "limit_reached");
    assert_error(&shop.buy(alice, &path, &one()), 410, "sold_out");
    let stats = shop.stats(1);
    assert_eq!((stats["pending_payment"].as_u64(), stats["stock_left"].as_u64()), (Some(3), Some(0)));

    // The window: a path minted while open, used once the item moved.
    let now = now_ms();
    let item2_path = shop.path(alice, 2);
    shop.put_item_window(2, 3, 2, now + HOUR_MS, now + 2 * HOUR_MS);
    assert_error(&shop.buy(alice, &item2_path, &json!({ "item_id": 2 })), 403, "not_started");
    shop.put_item_window(2, 3, 2, now - 2 * HOUR_MS, now - HOUR_MS);
    assert_error(&shop.buy(alice, &item2_path, &json!({ "item_id": 2 })), 403, "ended");
}

#[test]
fn an_expired_path_is_bad() {
    let server = Server::start_with(fast().set("sale.path_ttl_ms", 300));
    let shop = Shop::new(&server);
    shop.put_item(1, 3, 2);
    let user = &shop.users("late", 1)[0];
    let path = shop.path(user, 1);
    std::thread::sleep(Duration::from_millis(400));
    assert_error(&shop.buy(user, &path, &one()), 403, "bad_path");
}

#[test]
fn rate_limits_answer_429_with_retry_after() {
    let server = Server::start_with(fast().set("limits.per_user_rps", 1).set("limits.per_user_burst", 4));
    let shop = Shop::new(&server);
    shop.put_item(1, 100, 100);
    let user = &shop.users("hasty", 1)[0];
    let path = shop.path(user, 1); // captcha + path: 2 of the burst of 4
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(shop.buy(user, &path, &one()));
    }
    assert_eq!(statuses.iter().filter(|r| r.status == 200).count(), 2, "the rest of the burst");
    let limited = statuses.last().unwrap();
    assert_error(limited, 429, "rate_limited");
    assert!(limited.header("retry-after").is_some_and(|s| s.parse::<u64>().unwrap() >= 1));
}

#[test]
fn a_request_id_makes_one_order_and_gets_it_back() {
    let server = Server::start_with(fast());
    let shop = Shop::new(&server);
    shop.put_item(1, 2, 1);
    shop.put_item(2, 2, 1);
    let users = shop.users("retrier", 2);
    let (alice, bob) = (&users[0], &users[1]);
    let path = shop.path(alice, 1);
    let first = shop.buy(alice, &path, &json!({ "item_id": 1, "request_id": "r-1" }));
    assert_eq!(first.status, 200, "{}", first.text());
    // At the limit now, yet the retry gets its order back: 200, same id.
    for _ in 0..3 {
        let again = shop.buy(alice, &path, &json!({ "item_id": 1, "request_id": "r-1" }));
        assert_eq!(again.json(), first.json());
    }
    assert_error(&shop.buy(alice, &path, &json!({ "item_id": 1, "request_id": "r-2" })), 409, "limit_reached");
    // Reused with another quantity or item: 409.
    let other_quantity = shop.buy(alice, &path, &json!({ "item_id": 1, "quantity": 2, "request_id": "r-1" }));
    assert_error(&other_quantity, 409, "request_id_reused");
    let path2 = shop.path(alice, 2);
    assert_error(&shop.buy(alice, &path2, &json!({ "item_id": 2, "request_id": "r-1" })), 409, "request_id_reused");
    // Ids are per user; a refused attempt's id is not remembered.
    let bob_path = shop.path(bob, 1);
    let bob_buy = shop.buy(bob, &bob_path, &json!({ "item_id": 1, "quantity": 2, "request_id": "r-1" }));
    assert_error(&bob_buy, 409, "limit_reached");
    assert_eq!(shop.buy(bob, &bob_path, &json!({ "item_id": 1, "request_id": "r-1" })).status, 200);
    let stats = shop.stats(1);
    assert_eq!(stats["pending_payment"], 2, "{stats}");
    let orders = shop.item_orders(1);
    assert_eq!(orders.len(), 2);
    assert!(orders.iter().all(|o| o["request_id"] == "r-1"), "each order names its request id: {orders:?}");
    let alices = shop.call("GET", "/api/orders", Some(&alice.token), &Value::Null).json();
    assert_eq!(alices["orders"][0]["request_id"], "r-1");
}

#[test]
fn async_confirmation_answers_202_and_result_follows() {
    let server = Server::start_with(fast().set("sale.confirm", "async"));
    let shop = Shop::new(&server);
    shop.put_item(1, 1, 1);
    let users = shop.users("patient", 2);
    let path = shop.path(&users[0], 1);
    let queued = shop.buy(&users[0], &path, &one());
    assert_eq!((queued.status, queued.json()), (202, json!({ "status": "queued" })));
    let result = poll_until(Duration::from_secs(5), || {
        let r = shop.result(&users[0], 1);
        (r["status"] != "pending").then_some(r)
    })
    .expect("the order is decided");
    assert_eq!(result["status"], "success", "{result}");
    let orders = shop.item_orders(1);
    assert_eq!(orders.len(), 1);
    assert_eq!(result["order_id"], orders[0]["id"]);
    // The other user: 410 at once (sold out locally), and /result says so.
    let path = shop.path(&users[1], 1);
    assert_error(&shop.buy(&users[1], &path, &one()), 410, "sold_out");
    assert_eq!(shop.result(&users[1], 1)["status"], "sold_out");
}

#[test]
fn unpaid_orders_expire_and_their_units_sell_again() {
    let server = Server::start_with(fast().set("sale.payment_window_ms", 1000));
    let shop = Shop::new(&server);
    shop.put_item(1, 2, 2);
    let users = shop.users("forgetful", 2);
    let paths: Vec<String> = users.iter().map(|u| shop.path(u, 1)).collect();
    let order = shop.buy(&users[0], &paths[0], &json!({ "item_id": 1, "quantity": 2 })).json();
    let order_id = order["order_id"].as_str().unwrap().to_string();
    assert_error(&shop.buy(&users[1], &paths[1], &one()), 410, "sold_out");
    let started = std::time::Instant::now();
    let back = poll_until(Duration::from_secs(5), || (shop.stats(1)["expired"] == 2).then_some(()));
    assert!(back.is_some(), "{}", shop.stats(1));
    println!("expired and back on sale {} ms after the buy (window 1000 ms)", started.elapsed().as_millis());
    let stats = shop.stats(1);
    assert_eq!((stats["stock_left"].as_u64(), stats["pending_payment"].as_u64()), (Some(2), Some(0)));
    assert_conserved(&stats);
    let pay = shop.call("POST", &format!("/api/orders/{order_id}/pay"), Some(&users[0].token), &Value::Null);
    assert_error(&pay, 409, "order_expired");
    assert_eq!(shop.call("GET", "/api/items/1", None, &Value::Null).json()["state"], "active");
    // Back exactly once: two units sell, the third does not.
    assert_eq!(shop.buy(&users[1], &paths[1], &one()).status, 200);
    assert_eq!(shop.buy(&users[1], &paths[1], &one()).status, 200);
    assert_error(&shop.buy(&users[0], &paths[0], &one()), 410, "sold_out");
    let metrics = shop.call("GET", "/metrics", None, &Value::Null).text();
    assert!(metrics.contains("seckill_orders_total{event=\"expired\"} 1"), "{metrics}");
}

#[test]
fn a_late_payment_expires_the_order_whatever_the_timer() {
    // A long window for the timer, checked against a deadline that passes.
    let server = Server::start_with(fast().set("sale.payment_window_ms", 300));
    let shop = Shop::new(&server);
    shop.put_item(1, 1, 1);
    let user = &shop.users("slow", 1)[0];
    let path = shop.path(user, 1);
    let order_id = shop.buy(user, &path, &one()).json()["order_id"].as_str().unwrap().to_string();
    std::thread::sleep(Duration::from_millis(350));
    let pay = shop.call("POST", &format!("/api/orders/{order_id}/pay"), Some(&user.token), &Value::Null);
    assert_error(&pay, 409, "order_expired");
    let back = poll_until(Duration::from_secs(3), || (shop.stats(1)["stock_left"] == 1).then_some(()));
    assert!(back.is_some(), "{}", shop.stats(1));
    assert_eq!(shop.stats(1)["expired"], 1, "expired once, whoever did it");
}

/// Stock is bounded (10^12 units): a total or delta beyond it is a clear 400,
/// and restocking at the bound again and again, then withdrawing, keeps the
/// server whole (the allotment's ledger adds up every unit ever granted).
#[test]
fn stock_beyond_the_bound_is_refused_and_large_restocks_stay_exact() {
    const MAX: u64 = 1_000_000_000_000;
    let server = Server::start_with(fast());
    let shop = Shop::new(&server);
    let item = |stock: u64| {
        json!({ "name": "Big", "price_cents": 1, "stock": stock, "per_user_limit": 1,
                "start_ms": 0, "end_ms": 4_000_000_000_000u64 })
    };
    assert_error(&shop.admin_call("PUT", "/admin/items/7", &item(MAX + 1)), 400, "invalid_input");
    assert_error(&shop.admin_call("PUT", "/admin/items/7", &item(i64::MAX as u64)), 400, "invalid_input");
    for _ in 0..4 {
        let put = shop.admin_call("PUT", "/admin/items/7", &item(MAX));
        assert_eq!(put.status, 200, "{}", put.text());
    }
    assert_error(&shop.admin_call("POST", "/admin/items/7/stock", &json!({ "delta": 1 })), 400, "invalid_input");
    let too_far = json!({ "delta": -(MAX as i64) - 1 });
    assert_error(&shop.admin_call("POST", "/admin/items/7/stock", &too_far), 400, "invalid_input");
    let all = shop.admin_call("POST", "/admin/items/7/stock", &json!({ "delta": -(MAX as i64) }));
    assert_eq!((all.status, all.json()["stock_left"].as_u64()), (200, Some(0)), "{}", all.text());
    let back = shop.admin_call("POST", "/admin/items/7/stock", &json!({ "delta": MAX }));
    assert_eq!((back.status, back.json()["stock_left"].as_u64()), (200, Some(MAX)), "{}", back.text());
    assert_eq!(shop.stats(7)["stock_total"], MAX);
}

#[test]
fn admin_stock_deltas_listings_and_reconcile() {
    let server = Server::start_with(fast());
    let shop = Shop::new(&server);
    shop.put_item(1, 2, 5);
    let user = &shop.users("stocker", 1)[0];
    let path = shop.path(user, 1);
    assert_eq!(shop.buy(user, &path, &one()).status, 200);
    assert_eq!(shop.buy(user, &path, &one()).status, 200);
    assert_error(&shop.buy(user, &path, &one()), 410, "sold_out");

    let add = shop.admin_call("POST", "/admin/items/1/stock", &json!({ "delta": 3 }));
    assert_eq!(add.status, 200, "{}", add.text());
    assert_eq!((add.json()["stock_total"].as_u64(), add.json()["stock_left"].as_u64()), (Some(5), Some(3)));
    assert_eq!(shop.call("GET", "/api/items/1", None, &Value::Null).json()["stock_total"], 5);
    assert_eq!(shop.buy(user, &path, &one()).status, 200, "sold out no more");
    let below = shop.admin_call("POST", "/admin/items/1/stock", &json!({ "delta": -3 }));
    assert_error(&below, 409, "stock_below_sold");
    let remove = shop.admin_call("POST", "/admin/items/1/stock", &json!({ "delta": -2 }));
    assert_eq!((remove.status, remove.json()["stock_left"].as_u64()), (200, Some(0)));
    assert_error(&shop.buy(user, &path, &one()), 410, "sold_out");
    assert_error(&shop.admin_call("POST", "/admin/items/9/stock", &json!({ "delta": 1 })), 404, "no_such_item");
    assert_error(&shop.admin_call("POST", "/admin/items/1/stock", &json!({ "units": 1 })), 400, "invalid_input");
    let no_admin = shop.call("POST", "/admin/items/1/stock", Some(&user.token), &json!({ "delta": 1 }));
    assert_error(&no_admin, 401, "unauthenticated");

    // Listing pages, oldest first, with a cursor.
    let first = shop.admin_call("GET", "/admin/items/1/orders?limit=2", &Value::Null).json();
    assert_eq!(first["orders"].as_array().unwrap().len(), 2);
    let next = first["next"].as_str().expect("a full page has a cursor");
    let rest = shop.admin_call("GET", &format!("/admin/items/1/orders?limit=2&after={next}"), &Value::Null).json();
    assert_eq!((rest["orders"].as_array().unwrap().len(), &rest["next"]), (1, &Value::Null));
    let ids: Vec<u64> = first["orders"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["orders"].as_array().unwrap())
        .map(|o| o["id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "oldest first: {ids:?}");
    assert_error(&shop.admin_call("GET", "/admin/items/1/orders?limit=0", &Value::Null), 400, "invalid_input");

    let report = shop.admin_call("POST", "/admin/reconcile", &Value::Null);
    assert_eq!(report.status, 200, "{}", report.text());
    let report = report.json();
    assert_eq!(report["sold_fixed"], json!([]), "{report}");
    assert_eq!(report["stock_fixed"], json!([]), "{report}");
    assert!(report["items_checked"].as_u64().unwrap() >= 1);
    assert_conserved(&shop.stats(1));
}

#[test]
fn a_restart_keeps_orders_request_ids_limits_and_the_stock() {
    let dir = std::sync::Arc::new(TempDir::new("buy-restart"));
    let options = fast();
    let mut server = Server::start_in(dir.clone(), options.clone());
    let shop = Shop::new(&server);
    shop.put_item(1, 3, 2);
    let users = shop.users("survivor", 2);
    let path = shop.path(&users[0], 1);
    let first = shop.buy(&users[0], &path, &json!({ "item_id": 1, "request_id": "keep" })).json();
    assert_eq!(shop.buy(&users[0], &path, &one()).status, 200);
    drop(shop);
    server.kill9();

    let server = Server::start_in(dir, options);
    let shop = Shop::new(&server);
    let path = shop.path(&users[0], 1);
    let again = shop.buy(&users[0], &path, &json!({ "item_id": 1, "request_id": "keep" }));
    assert_eq!(again.json(), first, "the request id survived");
    let result = shop.result(&users[0], 1);
    assert_eq!(result["status"], "success", "{result}");
    assert!(result["order_id"].as_str().is_some(), "{result}");
    assert_error(&shop.buy(&users[0], &path, &one()), 409, "limit_reached");
    let other = shop.path(&users[1], 1);
    assert_eq!(shop.buy(&users[1], &other, &one()).status, 200);
    assert_error(&shop.buy(&users[1], &other, &one()), 410, "sold_out");
    let stats = shop.stats(1);
    assert_eq!((stats["pending_payment"].as_u64(), stats["stock_left"].as_u64()), (Some(3), Some(0)));
    let ids: std::collections::HashSet<String> =
        shop.item_orders(1).iter().map(|o| o["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids.len(), 3, "order ids stay unique across restarts");
}

#[test]
fn a_store_slower_than_the_confirm_timeout_answers_503_and_the_retry_gets_the_order() {
    // Another connection holds the store's write lock on the item (as a
    // long transaction or a backup would): the writer waits for it, so the
    // order cannot be durable within the confirm timeout.
    let server = Server::start_with(fast().set("sale.confirm_timeout_ms", 200));
    let shop = Shop::new(&server);
    shop.put_item(1, 5, 1);
    let user = &shop.users("early", 1)[0];
    let path = shop.path(user, 1);
    let lock = StoreLock::take(&server, 1);
    let started = std::time::Instant::now();
    let timed_out = shop.buy(user, &path, &json!({ "item_id": 1, "request_id": "once" }));
    let waited = started.elapsed();
    assert_error(&timed_out, 503, "unavailable");
    assert!(timed_out.header("retry-after").is_some());
    println!("503 after {waited:?} (confirm timeout 200 ms)");
    // Outcome unknown: a retry while the store is still stuck is 503 too.
    assert_error(&shop.buy(user, &path, &json!({ "item_id": 1, "request_id": "once" })), 503, "unavailable");
    lock.release();
    let retried = poll_until(Duration::from_secs(10), || {
        let r = shop.buy(user, &path, &json!({ "item_id": 1, "request_id": "once" }));
        (r.status == 200).then_some(r)
    })
    .expect("the retry gets the order");
    assert_eq!(retried.json()["status"], "success");
    assert_eq!(shop.item_orders(1).len(), 1, "one order for one request id");
}

#[test]
fn graceful_shutdown_writes_queued_async_orders() {
    let dir = std::sync::Arc::new(TempDir::new("buy-drain"));
    let options: ServerOptions = fast().set("sale.confirm", "async");
    let mut server = Server::start_in(dir.clone(), options.clone());
    let shop = Shop::new(&server);
    shop.put_item(1, 100, 100);
    let user = &shop.users("drainer", 1)[0];
    let path = shop.path(user, 1);
    let mut conn = server.connect();
    for _ in 0..50 {
        assert_eq!(Shop::buy_on(&mut conn, user, &path, &one()).status, 202);
    }
    drop(shop);
    server.signal(libc_sigterm());
    assert_eq!(server.wait_exit(Duration::from_secs(15)).and_then(|s| s.code()), Some(0));
    let server = Server::start_in(dir, options);
    let shop = Shop::new(&server);
    assert_eq!(shop.stats(1)["pending_payment"], 50, "every 202 was written before exit");
}

fn libc_sigterm() -> i32 {
    15
}
