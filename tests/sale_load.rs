//! The sale under load over real sockets (issue 5, contract §5): 2,000
//! users × 4 attempts at an item of 500 units, from 16 client threads on
//! keep-alive connections, sell exactly 500 units, no user above its limit,
//! every acknowledged order listed and no order unacknowledged; on both
//! reactor designs, in async confirmation, and across a `kill -9` in the
//! middle of the sale followed by a restart on the same data.
//!
//! Timings are printed, never asserted.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::sale::{Shop, User, assert_conserved, fast, leased_stock, poll_until, send};
use common::{Conn, Response, Server, ServerOptions, TempDir};
use serde_json::{Value, json};

const USERS: usize = 2_000;
const UNITS: u64 = 500;
const LIMIT: u32 = 2;
const ROUNDS: usize = 4;
const THREADS: usize = 16;
const ITEM: u64 = 1;
/// Acknowledged units after which the crash test kills the server.
const KILL_AFTER_UNITS: u64 = 200;

/// One attempt of a user's plan.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Attempt {
    quantity: u32,
    request_id: Option<&'static str>,
}

/// What user `user` sends in each round: single units, pairs, request ids
/// and their retries (the round after), so that every path of the buy is
/// under contention at once.
fn plan(user: usize) -> [Attempt; ROUNDS] {
    let a = |quantity, request_id| Attempt { quantity, request_id };
    match user % 4 {
        0 => [a(1, None), a(1, None), a(1, None), a(1, None)],
        1 => [a(2, Some("a")), a(2, Some("a")), a(1, None), a(1, None)],
        2 => [a(1, Some("a")), a(1, Some("a")), a(1, Some("b")), a(1, Some("b"))],
        _ => [a(2, None), a(1, None), a(2, Some("a")), a(1, None)],
    }
}

/// A user ready to buy: its index in the plan, session and hidden path.
#[derive(Debug)]
struct Buyer {
    index: usize,
    user: User,
    path: String,
}

/// The answer to one attempt; `status: None` when the connection broke
/// before a whole answer (the outcome is unknown).
#[derive(Debug, Clone)]
struct Answer {
    user: usize,
    attempt: Attempt,
    status: Option<u16>,
    code: String,
    order_id: Option<String>,
}

/// `POST /api/seckill/{path}` that reports a broken connection instead of
/// panicking: the crash test breaks connections on purpose.
fn try_buy(conn: &mut Conn, buyer: &Buyer, attempt: &Attempt) -> Result<Response, String> {
    let mut body = json!({ "item_id": ITEM, "quantity": attempt.quantity });
    if let Some(id) = attempt.request_id {
        body["request_id"] = json!(id);
    }
    let body = body.to_string();
    let head = format!(
        "POST /api/seckill/{} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        buyer.path,
        buyer.user.token,
        body.len()
    );
    conn.stream.write_all(&[head.as_bytes(), body.as_bytes()].concat()).map_err(|e| format!("write: {e}"))?;
    conn.try_read_response(false)
}

fn answer_of(buyer: &Buyer, attempt: &Attempt, resp: Result<Response, String>) -> Answer {
    let mut answer =
        Answer { user: buyer.index, attempt: attempt.clone(), status: None, code: String::new(), order_id: None };
    let Ok(resp) = resp else { return answer };
    let body: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
    answer.status = Some(resp.status);
    answer.code = body["code"].as_str().or(body["status"].as_str()).unwrap_or_default().to_string();
    answer.order_id = body["order_id"].as_str().map(str::to_string);
    answer
}

/// How many times a client sends again a buy answered 503 + Retry-After
/// on leased stock.
const REFILL_RETRIES_MAX: usize = 50;

/// One client thread: `rounds` of its buyers' plans on one keep-alive
/// connection, round by round so that every thread contends all the time.
/// Stops at the first broken connection. Adds acknowledged units to `acked`.
fn buy_rounds(addr: SocketAddr, buyers: &[Buyer], acked: &AtomicU64) -> Vec<Answer> {
    let mut answers = Vec::with_capacity(buyers.len() * ROUNDS);
    let Some(mut conn) = Conn::try_connect(addr) else { return answers };
    let retry_refills = leased_stock();
    for round in 0..ROUNDS {
        for buyer in buyers {
            let attempt = &plan(buyer.index)[round];
            let mut resp = try_buy(&mut conn, buyer, attempt);
            // On leased stock a short allotment is 503 + Retry-After while
            // units are refilled (contract §3): a client sends the same
            // attempt again. Only that answer is retried, and only there.
            for _ in 0..REFILL_RETRIES_MAX {
                let refilling = resp.as_ref().is_ok_and(|r| r.status == 503 && r.header("retry-after").is_some());
                if !(retry_refills && refilling) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
                resp = try_buy(&mut conn, buyer, attempt);
            }
            let answer = answer_of(buyer, attempt, resp);
            if answer.status == Some(200) {
                acked.fetch_add(u64::from(attempt.quantity), Ordering::Relaxed);
            }
            let broken = answer.status.is_none();
            answers.push(answer);
            if broken {
                return answers;
            }
        }
    }
    answers
}

/// Every buyer's plan from `THREADS` client threads; `during` runs on this
/// thread meanwhile, with the acknowledged units counter.
fn sale(addr: SocketAddr, buyers: &[Buyer], during: impl FnOnce(&AtomicU64, &dyn Fn() -> bool)) -> Vec<Answer> {
    let acked = AtomicU64::new(0);
    let started = Instant::now();
    let answers: Vec<Answer> = std::thread::scope(|s| {
        let handles: Vec<_> = buyers
            .chunks(buyers.len().div_ceil(THREADS))
            .map(|chunk| s.spawn(|| buy_rounds(addr, chunk, &acked)))
            .collect();
        during(&acked, &|| handles.iter().all(|h| h.is_finished()));
        handles.into_iter().flat_map(|h| h.join().expect("client thread")).collect()
    });
    let elapsed = started.elapsed();
    let requests_per_s = answers.len() as f64 / elapsed.as_secs_f64();
    println!(
        "{} buy requests in {:.0} ms: {requests_per_s:.0} requests/s, {} units in 200s (replays included)",
        answers.len(),
        elapsed.as_secs_f64() * 1e3,
        acked.load(Ordering::Relaxed)
    );
    answers
}

/// The item, `USERS` users with sessions, and a path for each (fetched
/// from `THREADS` threads: captcha, the admin's answer, path).
fn prepare(shop: &Shop<'_>) -> Vec<Buyer> {
    let started = Instant::now();
    shop.put_item(ITEM, UNITS, LIMIT);
    let users = shop.users("load", USERS);
    let buyers: Vec<Buyer> = std::thread::scope(|s| {
        let handles: Vec<_> = users
            .chunks(USERS.div_ceil(THREADS))
            .enumerate()
            .map(|(n, chunk)| {
                s.spawn(move || {
                    let mut conn = shop.server.connect();
                    let first = n * USERS.div_ceil(THREADS);
                    let with_paths = chunk.iter().enumerate().map(|(i, user)| Buyer {
                        index: first + i,
                        path: shop.path_on(&mut conn, user, ITEM),
                        user: user.clone(),
                    });
                    with_paths.collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("path thread")).collect()
    });
    println!("{USERS} users with sessions and paths in {} ms", started.elapsed().as_millis());
    buyers
}

/// Order id → (user index, quantity) over the 200s. A retry of a request
/// id gets the same order back, so one order id always means one user and
/// one quantity; and every 200 of one request id is one order.
fn acknowledged(answers: &[Answer]) -> HashMap<String, (usize, u32)> {
    let mut orders = HashMap::new();
    let mut by_request_id: HashMap<(usize, &str), &str> = HashMap::new();
    for a in answers.iter().filter(|a| a.status == Some(200)) {
        let id = a.order_id.as_deref().unwrap_or_else(|| panic!("a 200 without an order id: {a:?}"));
        let seen = orders.entry(id.to_string()).or_insert((a.user, a.attempt.quantity));
        assert_eq!(*seen, (a.user, a.attempt.quantity), "order {id} acknowledged to two different buys");
        if let Some(request_id) = a.attempt.request_id {
            let first = by_request_id.entry((a.user, request_id)).or_insert(id);
            assert_eq!(*first, id, "request id {request_id} of user {} made two orders", a.user);
        }
    }
    orders
}

/// Which 503s a phase of the sale may see besides the contract's usual answers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Unknowns {
    /// None: sync confirmation, nothing in flight anywhere else.
    None,
    /// Async confirmation: the retry of a request id whose first attempt is
    /// still queued.
    QueuedRetries,
    /// After a `kill -9` on shared backends: the killed process left its
    /// last batch's orders marked in flight in Redis (until the marks'
    /// deadline), and a buy with a request id that would be refused while
    /// its user has such a mark is answered 503 (outcome unknown: the order
    /// might still be committing elsewhere), never 409/410.
    MarksOfTheKilled,
}

/// Every answer is one the contract allows for this load: 200, 409
/// `limit_reached`, 410 `sold_out`; with async confirmation also 202
/// `queued`; and 503 `unavailable` only where `unknowns` says. Returns the
/// answers by status.
fn check_statuses(answers: &[Answer], unknowns: Unknowns) -> HashMap<u16, usize> {
    let confirm_async = unknowns == Unknowns::QueuedRetries;
    let mut counts = HashMap::new();
    let mut queued_ids: HashSet<(usize, &str)> = HashSet::new();
    for a in answers {
        let Some(status) = a.status else { continue };
        *counts.entry(status).or_insert(0) += 1;
        let retry_in_flight = a.attempt.request_id.is_some_and(|id| queued_ids.contains(&(a.user, id)));
        let allowed = match (status, a.code.as_str()) {
            (200, "success") | (409, "limit_reached") | (410, "sold_out") => true,
            (202, "queued") => confirm_async,
            (503, "unavailable") => {
                (confirm_async && retry_in_flight)
                    || (unknowns == Unknowns::MarksOfTheKilled && a.attempt.request_id.is_some())
            }
            _ => false,
        };
        assert!(allowed, "an answer outside the contract for this load: {a:?}");
        if status == 202
            && let Some(id) = a.attempt.request_id
        {
            queued_ids.insert((a.user, id));
        }
    }
    counts
}

/// The admin listing of the item, by order id.
fn listing(shop: &Shop<'_>) -> HashMap<String, Value> {
    let orders = shop.item_orders(ITEM);
    let by_id: HashMap<String, Value> =
        orders.iter().map(|o| (o["id"].as_str().expect("string order ids").to_string(), o.clone())).collect();
    assert_eq!(by_id.len(), orders.len(), "the listing repeats an order");
    by_id
}

/// Checks the listing against the acknowledged orders (each listed, with
/// its user and quantity), every user's live units against the limit, and
/// the stats against the listing. Returns the units sold.
fn check_store(
    shop: &Shop<'_>,
    buyers: &[Buyer],
    acked: &HashMap<String, (usize, u32)>,
    listed: &HashMap<String, Value>,
) -> u64 {
    for (id, (user, quantity)) in acked {
        let order = listed.get(id).unwrap_or_else(|| panic!("acknowledged order {id} is not in the listing"));
        assert_eq!(order["user_id"], buyers[*user].user.id, "{order}");
        assert_eq!(order["quantity"], *quantity, "{order}");
        assert_eq!(order["item_id"], ITEM, "{order}");
    }
    let mut units_by_user: HashMap<u64, u64> = HashMap::new();
    let mut sold = 0;
    for order in listed.values() {
        assert_eq!(order["status"], "pending_payment", "nothing is paid, cancelled or expired here: {order}");
        let quantity = order["quantity"].as_u64().unwrap();
        *units_by_user.entry(order["user_id"].as_u64().unwrap()).or_insert(0) += quantity;
        sold += quantity;
    }
    let over: Vec<_> = units_by_user.iter().filter(|(_, units)| **units > u64::from(LIMIT)).collect();
    assert!(over.is_empty(), "users above the limit of {LIMIT}: {over:?}");
    let stats = shop.stats(ITEM);
    assert_conserved(&stats);
    assert_eq!(stats["stock_total"], UNITS, "{stats}");
    assert_eq!(stats["pending_payment"], sold, "stats against the listing: {stats}");
    assert_eq!(stats["stock_left"], UNITS - sold, "{stats}");
    sold
}

/// 2,000 users × 4 attempts, sync confirmation, on one reactor design:
/// exactly the stock is sold and the 200s are exactly the listing.
fn sell_out_exactly(options: ServerOptions) {
    let server = Server::start_with(options);
    let shop = Shop::new(&server);
    let buyers = prepare(&shop);
    let answers = sale(server.addr, &buyers, |_, _| {});
    let counts = check_statuses(&answers, Unknowns::None);
    println!("answers by status: {counts:?}");
    assert!(answers.iter().all(|a| a.status.is_some()), "no connection broke");
    let acked = acknowledged(&answers);
    let units: u64 = acked.values().map(|(_, q)| u64::from(*q)).sum();
    assert_eq!(units, UNITS, "the 200s sold exactly the stock");
    let listed = listing(&shop);
    assert_eq!(listed.keys().collect::<HashSet<_>>(), acked.keys().collect::<HashSet<_>>(), "listing == the 200s");
    assert_eq!(check_store(&shop, &buyers, &acked, &listed), UNITS);
}

#[test]
fn two_thousand_users_buy_exactly_the_stock_reuseport() {
    sell_out_exactly(fast().set("server.reactor", "reuseport"));
}

#[test]
fn two_thousand_users_buy_exactly_the_stock_acceptor() {
    sell_out_exactly(fast().set("server.reactor", "acceptor"));
}

#[test]
fn a_kill_9_mid_sale_loses_no_acknowledged_order_and_the_sale_completes_exactly() {
    let dir = Arc::new(TempDir::new("sale-kill"));
    let options = fast();
    let mut server = Server::start_in(dir.clone(), options.clone());
    let buyers = prepare(&Shop::new(&server));

    let addr = server.addr;
    let mut killed_at = None;
    let before = sale(addr, &buyers, |acked, all_done| {
        let reached = poll_until(Duration::from_secs(20), || {
            (acked.load(Ordering::Relaxed) >= KILL_AFTER_UNITS || all_done()).then_some(())
        });
        assert!(reached.is_some() && !all_done(), "the clients were still sending when the kill came");
        killed_at = Some(acked.load(Ordering::Relaxed));
        server.kill9();
    });
    check_statuses(&before, Unknowns::None);
    let unknown = before.iter().filter(|a| a.status.is_none()).count();
    let acked_before = acknowledged(&before);
    let units_before: u64 = acked_before.values().map(|(_, q)| u64::from(*q)).sum();
    println!(
        "killed at {killed_at:?} acknowledged units: {units_before} units in {} acknowledged orders, \
         {unknown} requests of unknown outcome",
        acked_before.len()
    );
    assert!(unknown > 0, "requests were in flight at the kill");

    // Restart on the same data: nothing acknowledged is lost, and whatever
    // was not acknowledged came from a request whose outcome is unknown.
    let server = Server::start_in(dir, options);
    let shop = Shop::new(&server);
    let listed = listing(&shop);
    let sold = check_store(&shop, &buyers, &acked_before, &listed);
    let unacknowledged = listed.len() - acked_before.len();
    println!("after the restart: {sold} units in {} orders, {unacknowledged} not acknowledged", listed.len());
    assert!(unacknowledged <= unknown, "{unacknowledged} orders nobody was told about, {unknown} unknown outcomes");

    // The paths are HMACs under the persisted secret: they survive the
    // restart (a 403 bad_path would fail the status check). The same plans
    // again: request ids acknowledged before the crash get their order back.
    let after = sale(server.addr, &buyers, |_, _| {});
    check_statuses(&after, if leased_stock() { Unknowns::MarksOfTheKilled } else { Unknowns::None });
    assert!(after.iter().all(|a| a.status.is_some()), "no connection broke");
    let all: Vec<Answer> = before.iter().chain(&after).cloned().collect();
    let acked = acknowledged(&all);
    let listed = listing(&shop);
    assert_eq!(check_store(&shop, &buyers, &acked, &listed), UNITS, "the sale completes exactly");
    assert!(listed.len() - acked.len() <= unknown, "only unknown outcomes may be unacknowledged orders");
    let replayed = after.iter().filter(|a| a.order_id.as_ref().is_some_and(|id| acked_before.contains_key(id))).count();
    println!("{replayed} answers after the restart replayed an order acknowledged before the crash");
}

#[test]
fn async_confirmation_sells_exactly_the_stock_and_results_agree() {
    let server = Server::start_with(fast().set("sale.confirm", "async"));
    let shop = Shop::new(&server);
    let buyers = prepare(&shop);
    let answers = sale(server.addr, &buyers, |_, _| {});
    let counts = check_statuses(&answers, Unknowns::QueuedRetries);
    println!("answers by status: {counts:?}");
    assert!(answers.iter().all(|a| a.status.is_some()), "no connection broke");

    // Poll every user's /result until none is pending.
    let started = Instant::now();
    let results: HashMap<u64, Value> = std::thread::scope(|s| {
        let handles: Vec<_> = buyers
            .chunks(USERS.div_ceil(THREADS))
            .map(|chunk| {
                s.spawn(|| {
                    let mut conn = server.connect();
                    let mut decided = |buyer: &Buyer| {
                        poll_until(Duration::from_secs(10), || {
                            let path = format!("/api/items/{ITEM}/result");
                            let resp = send(&mut conn, "GET", &path, Some(&buyer.user.token), b"");
                            assert_eq!(resp.status, 200, "{}", resp.text());
                            let result = resp.json();
                            (result["status"] != "pending").then_some(result)
                        })
                        .unwrap_or_else(|| panic!("user {} still pending", buyer.index))
                    };
                    chunk.iter().map(|b| (b.user.id, decided(b))).collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("result thread")).collect()
    });
    println!("every /result decided {} ms after the last answer", started.elapsed().as_millis());

    let listed = listing(&shop);
    let acked = acknowledged(&answers); // replays of done request ids
    assert_eq!(check_store(&shop, &buyers, &acked, &listed), UNITS, "the sale sold exactly the stock");
    let mut holders: HashMap<u64, HashSet<&str>> = HashMap::new();
    for (id, order) in &listed {
        holders.entry(order["user_id"].as_u64().unwrap()).or_default().insert(id);
    }
    for (user, result) in &results {
        match (result["status"].as_str(), holders.get(user)) {
            (Some("success"), Some(orders)) => {
                let id = result["order_id"].as_str().unwrap();
                assert!(orders.contains(id), "user {user}: {result} names an order of theirs");
            }
            (Some("sold_out"), None) => {}
            other => panic!("user {user}: /result {result} against the listing's orders {other:?}"),
        }
    }
    let successes = results.values().filter(|r| r["status"] == "success").count();
    assert_eq!(successes, holders.len(), "successes are the users holding orders");
    let queued = counts.get(&202).copied().unwrap_or(0);
    assert!(queued + acked.len() >= listed.len(), "each order came from a 202 (or a replayed 200)");
    println!("{} orders, {successes} users with success, {queued} answers 202", listed.len());
}
