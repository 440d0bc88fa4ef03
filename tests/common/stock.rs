//! What the distributed stock tests share (leased allotments in
//! `distributed_stock.rs`, one script per buy in `evalsha_stock.rs`): a buy
//! retried with its request id until its answer is final, and the check
//! that exactly the stock was sold, as MySQL and every instance say.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::json;

use super::sale::{Shop, User, assert_conserved, send};
use super::{Conn, Response, Server};

/// How long one buy may go on answering 503 before the test fails.
pub const BUY_DEADLINE: Duration = Duration::from_secs(60);

/// What one buy came to, after retrying 503s (same request id) until the
/// answer is final.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bought {
    Order(String),
    SoldOut,
    LimitReached,
}

/// One unit of `item` for `user`, once.
pub fn buy_once(conn: &mut Conn, user: &User, item: u64, path: &str, request_id: &str) -> Response {
    let body = json!({ "item_id": item, "request_id": request_id }).to_string();
    send(conn, "POST", &format!("/api/seckill/{path}"), Some(&user.token), body.as_bytes())
}

/// One unit of `item` for `user`, retrying 503 with the same request id
/// (contract §3: another instance may still hold units, or the stock is
/// being refilled or rebuilt); every 503 must carry `Retry-After`.
pub fn buy(conn: &mut Conn, user: &User, item: u64, path: &str, request_id: &str) -> Bought {
    let deadline = Instant::now() + BUY_DEADLINE;
    loop {
        let resp = buy_once(conn, user, item, path, request_id);
        match resp.status {
            200 => return Bought::Order(resp.json()["order_id"].as_str().unwrap().to_string()),
            410 => return Bought::SoldOut,
            409 => return Bought::LimitReached,
            503 => {
                assert!(resp.header("Retry-After").is_some(), "a 503 without Retry-After");
                assert!(Instant::now() < deadline, "still 503 after {BUY_DEADLINE:?}: {}", resp.text());
                std::thread::sleep(Duration::from_millis(20));
            }
            other => panic!("unexpected {other}: {}", resp.text()),
        }
    }
}

/// Every acknowledged order of `item` is in MySQL and nothing else; every
/// instance's stats say the stock is sold exactly and conserved.
pub fn assert_sold_exactly(servers: &[Server], admin: &str, item: u64, acknowledged: &HashSet<String>, stock: u64) {
    assert_eq!(acknowledged.len() as u64, stock, "exactly the stock sold");
    let shop = Shop { server: &servers[0], admin: admin.into() };
    let stored: HashSet<String> =
        shop.item_orders(item).iter().map(|o| o["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(&stored, acknowledged, "every acknowledged order is in MySQL, and nothing else");
    for server in servers {
        let stats = Shop { server, admin: admin.into() }.stats(item);
        let held = stats["pending_payment"].as_u64().unwrap() + stats["paid"].as_u64().unwrap();
        assert_eq!(held, stock, "{stats}");
        assert_conserved(&stats);
    }
}

/// The order ids of `results` (user id, what a buy came to), after checking
/// that no order was acknowledged twice, no user got more than `limit` and
/// demand beyond the stock met a 410.
pub fn acknowledged_within(results: &[(u64, Bought)], limit: u32) -> HashSet<String> {
    let mut per_user: HashMap<u64, u32> = HashMap::new();
    let mut acknowledged = HashSet::new();
    for (user, bought) in results {
        if let Bought::Order(id) = bought {
            *per_user.entry(*user).or_default() += 1;
            assert!(acknowledged.insert(id.clone()), "order {id} acknowledged twice");
        }
    }
    assert!(per_user.values().all(|&n| n <= limit), "a user above the limit: {per_user:?}");
    assert!(results.iter().any(|(_, b)| *b == Bought::SoldOut), "demand above stock ends in 410");
    acknowledged
}
