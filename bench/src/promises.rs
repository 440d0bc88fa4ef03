//! The promises of the contract (api.md §5) that a client can check after a
//! sale, from what it saw on the wire and what the store holds at rest.
//!
//! The core is pure: [`check`] takes the client's [`Observations`] and a
//! [`StoreView`] (read through the admin API by [`read_store`], or built by
//! a test) and returns every [`Violation`]. Nothing here sends a request, so
//! the fault campaign of issue 10 feeds it its own observations, and the
//! tests feed it broken stores to show it fails on each broken promise.
//!
//! What is checked, for one item:
//! 1. **No oversell**: live units (`pending_payment` + `paid`) ≤ the stock.
//! 2. **Per-user limit**: no user holds more live units than `per_user_limit`.
//! 3. **Conservation**: `stock_total == stock_left + pending_payment + paid`
//!    in the stats, and the stats agree with the orders listed.
//! 4. **No lost acknowledgement**: every order id answered 200 is stored;
//!    without ids, each user has at least as many stored orders as 200s.
//! 5. **No unexplained order**: a user's stored orders beyond their 200s are
//!    at most their answers of unknown outcome (503, 202) plus requests that
//!    got no answer. Order ids are unique.
//! 6. **No undersell**: once a `sold_out` (410) was answered, fewer units
//!    than one buy's quantity were never ordered (units an expiry or a
//!    cancellation returned after the 410 may be left unsold).
//!
//! And, for a store at rest, [`check_expiry`]: an unpaid order is expired
//! within 1 s of its deadline (promise 6; conservation above shows its
//! units came back once).
//!
//! Idempotency (promise 5) needs clients that retry: [`check_replays`]
//! checks the fault campaign's retries, at rest, of buys answered 200 (the
//! same order again), [`check_refused_buys`] that a buy finally refused made
//! no order under its request id, and a retry that made a second order
//! shows above as an unexplained order. Expiry (6) needs clocks that run past a payment
//! window, which no check here waits for.

use crate::setup::{Admin, ItemStats, ResultSeen, SetupError, StoredOrder};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

/// What one user's buys got, as the client saw them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UserObservations {
    /// Buys sent.
    pub requests: u64,
    /// Answered 200: each an order that must be in the store.
    pub acknowledged: u64,
    /// The order ids of those 200s, when the client kept them (may be
    /// empty: the check then counts orders instead of matching ids).
    pub order_ids: Vec<String>,
    /// Answered 503 or 202: the order may or may not exist.
    pub unknown: u64,
    /// Sent but never answered (connection lost, run ended): may exist too.
    pub unanswered: u64,
    /// Answered 410 `sold_out`.
    pub sold_out: u64,
    /// What `/result` said at rest, when the client asked (after a 202 or
    /// 503: the way an async client learns its outcome).
    pub result: Option<ResultSeen>,
}

/// Everything the client saw of one item's sale.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Observations {
    /// Units per buy.
    pub quantity: u64,
    /// By user id. Stored orders of a user missing here are unexplained.
    pub users: BTreeMap<u64, UserObservations>,
}

/// The item as it was put on sale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Terms {
    pub stock: u64,
    pub per_user_limit: u64,
}

/// What the store holds for the item, at rest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoreView {
    pub terms: Terms,
    pub stats: ItemStats,
    pub orders: Vec<StoredOrder>,
}

/// One broken promise, with the figures that show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "promise", rename_all = "snake_case")]
pub enum Violation {
    Oversell { live_units: u64, stock: u64 },
    UserOverLimit { user_id: u64, live_units: u64, limit: u64 },
    NotConserved { stats: ItemStats },
    StatsDisagree { what: &'static str, stats: u64, listed: u64 },
    LostAcknowledgement { user_id: u64, acknowledged: u64, stored: u64 },
    LostOrder { user_id: u64, order_id: String },
    UnexplainedOrders { user_id: u64, stored: u64, acknowledged: u64, unknown_or_unanswered: u64 },
    DuplicateOrderId { order_id: String },
    Undersold { units_left: u64, quantity: u64, sold_out_answers: u64 },
    ResultDisagrees { user_id: u64, result: String, live_orders: Vec<String> },
    AnswerChanged { user_id: u64, request_id: String, first: String, replay: String },
    RetryRefused { user_id: u64, request_id: String, status: u16, order_id: String },
    NotExpired { order_id: String, pay_deadline_ms: u64, now_ms: u64 },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::Oversell { live_units, stock } => {
                write!(f, "oversell: {live_units} live units of a stock of {stock}")
            }
            Violation::UserOverLimit { user_id, live_units, limit } => {
                write!(f, "per-user limit: user {user_id} holds {live_units} units, limit {limit}")
            }
            Violation::NotConserved { stats: s } => write!(
                f,
                "conservation: stock_total {} != stock_left {} + pending_payment {} + paid {}",
                s.stock_total, s.stock_left, s.pending_payment, s.paid
            ),
            Violation::StatsDisagree { what, stats, listed } => {
                write!(f, "stats say {what} = {stats}, the orders listed add up to {listed}")
            }
            Violation::LostAcknowledgement { user_id, acknowledged, stored } => {
                write!(
                    f,
                    "lost acknowledgement: user {user_id} got {acknowledged} × 200, the store has {stored} orders"
                )
            }
            Violation::LostOrder { user_id, order_id } => {
                write!(f, "lost acknowledgement: order {order_id} of user {user_id} was answered 200 and is not stored")
            }
            Violation::UnexplainedOrders { user_id, stored, acknowledged, unknown_or_unanswered } => write!(
                f,
                "unexplained orders: user {user_id} has {stored} stored, {acknowledged} answered 200 \
                 and only {unknown_or_unanswered} of unknown outcome"
            ),
            Violation::DuplicateOrderId { order_id } => write!(f, "order id {order_id} is listed twice"),
            Violation::Undersold { units_left, quantity, sold_out_answers } => write!(
                f,
                "undersold: {units_left} units left (a buy takes {quantity}) after {sold_out_answers} sold_out answers"
            ),
            Violation::ResultDisagrees { user_id, result, live_orders } => write!(
                f,
                "result: user {user_id}'s /result at rest says {result}, the store holds live orders {live_orders:?}"
            ),
            Violation::NotExpired { order_id, pay_deadline_ms, now_ms } => write!(
                f,
                "expiry: order {order_id} is still pending {} ms after its deadline",
                now_ms.saturating_sub(*pay_deadline_ms)
            ),
            Violation::AnswerChanged { user_id, request_id, first, replay } => write!(
                f,
                "idempotency: user {user_id}'s request {request_id:?} was answered order {first}, \
                 its retry at rest {replay}"
            ),
            Violation::RetryRefused { user_id, request_id, status, order_id } => write!(
                f,
                "idempotency: user {user_id}'s request {request_id:?} was finally refused ({status}), \
                 yet it made order {order_id}"
            ),
        }
    }
}

/// Every broken promise, in the order of the module's list; empty when all hold.
pub fn check(observations: &Observations, store: &StoreView) -> Vec<Violation> {
    let mut out = Vec::new();
    let live: Vec<&StoredOrder> = store.orders.iter().filter(|o| o.is_live()).collect();
    let live_units: u64 = live.iter().map(|o| o.quantity).sum();
    if live_units > store.terms.stock {
        out.push(Violation::Oversell { live_units, stock: store.terms.stock });
    }
    check_user_limits(&live, store.terms.per_user_limit, &mut out);
    check_stats(store, &mut out);
    check_acknowledgements(observations, &store.orders, &mut out);
    check_results(observations, &store.orders, &mut out);
    let sold_out_answers: u64 = observations.users.values().map(|u| u.sold_out).sum();
    let ordered_units: u64 = store.orders.iter().map(|o| o.quantity).sum();
    let units_left = store.terms.stock.saturating_sub(ordered_units);
    let quantity = observations.quantity.max(1);
    if sold_out_answers > 0 && units_left >= quantity {
        out.push(Violation::Undersold { units_left, quantity, sold_out_answers });
    }
    out
}

fn check_user_limits(live: &[&StoredOrder], limit: u64, out: &mut Vec<Violation>) {
    let mut held: BTreeMap<u64, u64> = BTreeMap::new();
    for order in live {
        *held.entry(order.user_id).or_default() += order.quantity;
    }
    for (user_id, live_units) in held {
        if live_units > limit {
            out.push(Violation::UserOverLimit { user_id, live_units, limit });
        }
    }
}

fn check_stats(store: &StoreView, out: &mut Vec<Violation>) {
    let s = store.stats;
    if s.stock_total != s.stock_left + s.pending_payment + s.paid {
        out.push(Violation::NotConserved { stats: s });
    }
    let units = |status: &str| store.orders.iter().filter(|o| o.status == status).map(|o| o.quantity).sum::<u64>();
    let pairs = [
        ("stock_total", s.stock_total, store.terms.stock),
        ("pending_payment", s.pending_payment, units("pending_payment")),
        ("paid", s.paid, units("paid")),
    ];
    for (what, stats, listed) in pairs {
        if stats != listed {
            out.push(Violation::StatsDisagree { what, stats, listed });
        }
    }
}

fn check_acknowledgements(observations: &Observations, orders: &[StoredOrder], out: &mut Vec<Violation>) {
    let mut ids = HashSet::with_capacity(orders.len());
    let mut stored: HashMap<u64, u64> = HashMap::new();
    for order in orders {
        if !ids.insert(order.id.as_str()) {
            out.push(Violation::DuplicateOrderId { order_id: order.id.clone() });
        }
        *stored.entry(order.user_id).or_default() += 1;
    }
    for (&user_id, seen) in &observations.users {
        let have = stored.get(&user_id).copied().unwrap_or(0);
        for id in seen.order_ids.iter().filter(|id| !ids.contains(id.as_str())) {
            out.push(Violation::LostOrder { user_id, order_id: id.clone() });
        }
        if have < seen.acknowledged {
            out.push(Violation::LostAcknowledgement { user_id, acknowledged: seen.acknowledged, stored: have });
        }
    }
    let mut users: Vec<(&u64, &u64)> = stored.iter().collect();
    users.sort_unstable();
    let none = UserObservations::default();
    for (&user_id, &have) in users {
        let seen = observations.users.get(&user_id).unwrap_or(&none);
        let explained = seen.unknown + seen.unanswered;
        if have > seen.acknowledged + explained {
            out.push(Violation::UnexplainedOrders {
                user_id,
                stored: have,
                acknowledged: seen.acknowledged,
                unknown_or_unanswered: explained,
            });
        }
    }
}

/// A buy answered 200, sent again with its request id once the store is at rest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Replay {
    pub user_id: u64,
    pub request_id: String,
    /// The order id of the first 200.
    pub order_id: String,
    /// The retry's answer: its status, and its order id when it has one.
    pub status: u16,
    pub replayed_order_id: Option<String>,
}

/// A buy whose last answer refused it (409, 410, …), usually after
/// attempts of unknown outcome: its request id must then have made no order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefusedBuy {
    pub user_id: u64,
    pub request_id: String,
    pub status: u16,
}

/// Promise 5 the other way round: a buy finally refused made no order under
/// its request id (an earlier attempt's order, committed after the refusal,
/// would give the one request two answers). Needs the store to list request
/// ids; orders without one are not matched.
pub fn check_refused_buys(refused: &[RefusedBuy], orders: &[StoredOrder]) -> Vec<Violation> {
    let made: HashMap<(u64, &str), &str> =
        orders.iter().filter_map(|o| Some(((o.user_id, o.request_id.as_deref()?), o.id.as_str()))).collect();
    refused
        .iter()
        .filter_map(|r| {
            let order_id = made.get(&(r.user_id, r.request_id.as_str()))?;
            Some(Violation::RetryRefused {
                user_id: r.user_id,
                request_id: r.request_id.clone(),
                status: r.status,
                order_id: (*order_id).to_string(),
            })
        })
        .collect()
}

/// Promise 5 on retries: a retry of a buy answered 200 gets that order
/// again. A retry of unknown outcome (503, 502, 504: the instance it met
/// was not ready) proves nothing either way.
pub fn check_replays(replays: &[Replay]) -> Vec<Violation> {
    replays
        .iter()
        .filter(|r| !matches!(r.status, 502..=504))
        .filter(|r| r.status != 200 || r.replayed_order_id.as_deref() != Some(r.order_id.as_str()))
        .map(|r| Violation::AnswerChanged {
            user_id: r.user_id,
            request_id: r.request_id.clone(),
            first: r.order_id.clone(),
            replay: match &r.replayed_order_id {
                Some(id) => format!("{} with order {id}", r.status),
                None => r.status.to_string(),
            },
        })
        .collect()
}

/// How late after its deadline an unpaid order may still be pending (api.md §5, promise 6).
pub const EXPIRY_GRACE_MS: u64 = 1_000;

/// Promise 6 at rest: every order still `pending_payment` at `now_ms` has a
/// deadline less than [`EXPIRY_GRACE_MS`] ago.
pub fn check_expiry(store: &StoreView, now_ms: u64) -> Vec<Violation> {
    store
        .orders
        .iter()
        .filter(|o| o.status == "pending_payment" && o.pay_deadline_ms + EXPIRY_GRACE_MS <= now_ms)
        .map(|o| Violation::NotExpired { order_id: o.id.clone(), pay_deadline_ms: o.pay_deadline_ms, now_ms })
        .collect()
}

/// At rest, `/result` agrees with the store: `success` names a live order
/// of the user; `none` and `sold_out` mean the user holds none; nothing is
/// `pending` any more.
fn check_results(observations: &Observations, orders: &[StoredOrder], out: &mut Vec<Violation>) {
    for (&user_id, seen) in &observations.users {
        let Some(result) = &seen.result else { continue };
        let live: Vec<String> =
            orders.iter().filter(|o| o.user_id == user_id && o.is_live()).map(|o| o.id.clone()).collect();
        let agrees = match result.status.as_str() {
            "success" => result.order_id.as_ref().is_some_and(|id| live.contains(id)),
            "none" | "sold_out" => live.is_empty(),
            _ => false,
        };
        if !agrees {
            let said = match &result.order_id {
                Some(id) => format!("{} (order {id})", result.status),
                None => result.status.clone(),
            };
            out.push(Violation::ResultDisagrees { user_id, result: said, live_orders: live });
        }
    }
}

/// Bounds the orders [`read_store`] lists (memory stays bounded).
pub const STORE_ORDERS_MAX: usize = 10_000_000;

/// Reads the item's stats and every order of it through the admin API. The
/// stats are read before and after the listing, and again until they agree,
/// so that the view is of a store at rest (at most `attempts` tries).
pub fn read_store(admin: &mut Admin, item_id: u64, terms: Terms, attempts: usize) -> Result<StoreView, SetupError> {
    let mut stats = admin.stats(item_id)?;
    let mut orders = admin.orders(item_id, STORE_ORDERS_MAX)?;
    for _ in 1..attempts.max(1) {
        let after = admin.stats(item_id)?;
        if after == stats {
            break;
        }
        stats = after;
        orders = admin.orders(item_id, STORE_ORDERS_MAX)?;
    }
    Ok(StoreView { terms, stats, orders })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TERMS: Terms = Terms { stock: 3, per_user_limit: 1 };

    fn order(id: u64, user_id: u64, status: &str) -> StoredOrder {
        StoredOrder {
            id: id.to_string(),
            user_id,
            quantity: 1,
            status: status.to_string(),
            pay_deadline_ms: 0,
            request_id: None,
        }
    }

    fn stats_of(orders: &[StoredOrder], stock: u64) -> ItemStats {
        let units = |s: &str| orders.iter().filter(|o| o.status == s).map(|o| o.quantity).sum::<u64>();
        let live = units("pending_payment") + units("paid");
        ItemStats {
            stock_total: stock,
            stock_left: stock.saturating_sub(live),
            pending_payment: units("pending_payment"),
            paid: units("paid"),
            cancelled: units("cancelled"),
            expired: units("expired"),
        }
    }

    /// A consistent store holding `orders`.
    fn store(orders: Vec<StoredOrder>) -> StoreView {
        StoreView { terms: TERMS, stats: stats_of(&orders, TERMS.stock), orders }
    }

    fn user(acknowledged: u64, unknown: u64, sold_out: u64) -> UserObservations {
        UserObservations {
            requests: acknowledged + unknown + sold_out,
            acknowledged,
            unknown,
            sold_out,
            ..Default::default()
        }
    }

    /// Users 1–3 each got their unit (200); users 4 and 5 were told sold out.
    fn clean() -> (Observations, StoreView) {
        let users =
            [(1, user(1, 0, 0)), (2, user(1, 0, 0)), (3, user(1, 0, 0)), (4, user(0, 0, 2)), (5, user(0, 0, 1))];
        let observations = Observations { quantity: 1, users: users.into_iter().collect() };
        let orders = vec![order(10, 1, "pending_payment"), order(11, 2, "paid"), order(12, 3, "pending_payment")];
        (observations, store(orders))
    }

    /// Runs the check and returns the names of the promises it says broke.
    fn broken(observations: &Observations, store: &StoreView) -> Vec<String> {
        let violations = check(observations, store);
        violations.iter().map(|v| serde_json::to_value(v).unwrap()["promise"].as_str().unwrap().to_string()).collect()
    }

    #[test]
    fn a_clean_sale_passes() {
        let (observations, store) = clean();
        assert_eq!(check(&observations, &store), vec![]);
    }

    #[test]
    fn an_oversell_fails() {
        let (mut observations, _) = clean();
        observations.users.insert(6, user(1, 0, 0));
        let orders = vec![
            order(10, 1, "pending_payment"),
            order(11, 2, "paid"),
            order(12, 3, "pending_payment"),
            order(13, 6, "pending_payment"),
        ];
        let mut oversold = store(orders);
        oversold.stats.stock_left = 0;
        assert!(broken(&observations, &oversold).contains(&"oversell".to_string()));
        assert!(broken(&observations, &oversold).contains(&"not_conserved".to_string()), "4 sold of 3");
    }

    #[test]
    fn a_user_above_the_limit_fails() {
        let (mut observations, _) = clean();
        observations.users.insert(1, user(2, 0, 0));
        let mut without_user_2 = observations.clone();
        without_user_2.users.remove(&2);
        let orders = vec![order(10, 1, "pending_payment"), order(11, 1, "paid"), order(12, 3, "pending_payment")];
        assert_eq!(broken(&without_user_2, &store(orders)), vec!["user_over_limit"]);
        // Returned units do not count against the limit.
        let orders = vec![order(10, 1, "expired"), order(11, 1, "paid"), order(12, 2, "paid"), order(13, 3, "paid")];
        assert_eq!(broken(&observations, &store(orders)), vec![] as Vec<String>);
    }

    #[test]
    fn a_lost_acknowledged_order_fails() {
        let (observations, _) = clean();
        // User 2's order, answered 200, is gone; its unit is back on sale.
        let orders = vec![order(10, 1, "pending_payment"), order(12, 3, "pending_payment")];
        assert_eq!(broken(&observations, &store(orders.clone())), vec!["lost_acknowledgement", "undersold"]);
        // With the order ids kept, the missing id is named too.
        let mut with_ids = observations.clone();
        with_ids.users.get_mut(&2).unwrap().order_ids = vec!["11".to_string()];
        let names = broken(&with_ids, &store(orders));
        assert!(names.contains(&"lost_order".to_string()), "{names:?}");
        // An order id answered 200 but replaced by another order of the same user is caught by id alone.
        let swapped = vec![order(10, 1, "pending_payment"), order(99, 2, "paid"), order(12, 3, "pending_payment")];
        assert_eq!(broken(&with_ids, &store(swapped)), vec!["lost_order"]);
    }

    #[test]
    fn stored_orders_need_an_explanation() {
        let (mut observations, mut base) = clean();
        base.terms.per_user_limit = 2;
        base.terms.stock = 4;
        let orders = vec![
            order(10, 1, "pending_payment"),
            order(11, 2, "paid"),
            order(12, 3, "pending_payment"),
            order(13, 1, "pending_payment"),
        ];
        let extra = StoreView { terms: base.terms, stats: stats_of(&orders, 4), orders };
        assert_eq!(broken(&observations, &extra), vec!["unexplained_orders"]);
        // A 503 (outcome unknown) or a request never answered explains it.
        observations.users.get_mut(&1).unwrap().unknown = 1;
        assert_eq!(check(&observations, &extra), vec![]);
        observations.users.get_mut(&1).unwrap().unknown = 0;
        observations.users.get_mut(&1).unwrap().unanswered = 1;
        assert_eq!(check(&observations, &extra), vec![]);
        // An order of a user the client never saw is unexplained.
        let mut stranger = extra.clone();
        stranger.orders.push(order(14, 77, "cancelled"));
        assert_eq!(broken(&observations, &stranger), vec!["unexplained_orders"]);
    }

    #[test]
    fn stats_must_be_conserved_and_match_the_orders() {
        let (observations, good) = clean();
        let mut leak = good.clone();
        leak.stats.stock_left += 1;
        assert_eq!(broken(&observations, &leak), vec!["not_conserved"]);
        let mut disagree = good.clone();
        disagree.stats.paid = 2;
        disagree.stats.pending_payment = 1;
        assert_eq!(broken(&observations, &disagree), vec!["stats_disagree", "stats_disagree"]);
        let mut duplicate = good;
        duplicate.orders.push(order(10, 1, "cancelled"));
        assert_eq!(broken(&observations, &duplicate), vec!["duplicate_order_id", "unexplained_orders"]);
    }

    #[test]
    fn units_left_after_sold_out_fail() {
        let (observations, _) = clean();
        // User 3's unit was never ordered (their 200 is lost too).
        let orders = vec![order(10, 1, "pending_payment"), order(11, 2, "paid")];
        assert_eq!(broken(&observations, &store(orders.clone())), vec!["lost_acknowledgement", "undersold"]);
        let mut no_user_3 = observations;
        no_user_3.users.remove(&3);
        assert_eq!(broken(&no_user_3, &store(orders.clone())), vec!["undersold"]);
        // Without a sold-out answer, units left are merely unsold.
        let mut no_410 = no_user_3;
        no_410.users.remove(&4);
        no_410.users.remove(&5);
        assert_eq!(check(&no_410, &store(orders)), vec![]);
    }

    #[test]
    fn a_result_that_disagrees_with_the_store_fails() {
        let (mut observations, store) = clean();
        let said = |status: &str, order_id: Option<&str>| {
            Some(ResultSeen { status: status.into(), order_id: order_id.map(str::to_string) })
        };
        // Agreeing: user 1's live order, and user 4 holds none.
        observations.users.get_mut(&1).unwrap().result = said("success", Some("10"));
        observations.users.get_mut(&4).unwrap().result = said("sold_out", None);
        assert_eq!(check(&observations, &store), vec![]);
        for (user, result) in [
            (1, said("success", Some("11"))), // another user's order
            (2, said("none", None)),          // user 2 holds order 11
            (4, said("pending", None)),       // nothing is pending at rest
            (5, said("success", Some("99"))), // no such order
        ] {
            let mut wrong = observations.clone();
            wrong.users.get_mut(&user).unwrap().result = result;
            assert_eq!(broken(&wrong, &store), vec!["result_disagrees"], "user {user}");
        }
    }

    #[test]
    fn units_returned_after_a_sold_out_are_not_undersold() {
        let (observations, _) = clean();
        // User 3's unit expired after users 4 and 5 were told sold out.
        let orders = vec![order(10, 1, "pending_payment"), order(11, 2, "paid"), order(12, 3, "expired")];
        assert_eq!(check(&observations, &store(orders)), vec![]);
    }

    #[test]
    fn an_order_pending_past_its_deadline_fails() {
        let mut orders = vec![order(10, 1, "pending_payment"), order(11, 2, "paid"), order(12, 3, "expired")];
        for o in &mut orders {
            o.pay_deadline_ms = 5_000;
        }
        let view = store(orders);
        assert_eq!(check_expiry(&view, 5_999), vec![], "within the grace");
        let late = check_expiry(&view, 6_000);
        assert_eq!(late.len(), 1);
        assert_eq!(late[0].to_string(), "expiry: order 10 is still pending 1000 ms after its deadline");
    }

    #[test]
    fn a_retry_answered_differently_fails() {
        let replay = |status, id: Option<&str>| Replay {
            user_id: 1,
            request_id: "r1".into(),
            order_id: "10".into(),
            status,
            replayed_order_id: id.map(str::to_string),
        };
        assert_eq!(check_replays(&[replay(200, Some("10")), replay(503, None), replay(502, None)]), vec![]);
        let changed = check_replays(&[replay(200, Some("11")), replay(409, None)]);
        assert_eq!(changed.len(), 2);
        assert_eq!(
            changed[1].to_string(),
            "idempotency: user 1's request \"r1\" was answered order 10, its retry at rest 409"
        );
    }

    #[test]
    fn a_refused_buy_whose_request_id_made_an_order_fails() {
        let with_request = |id: u64, user_id: u64, request_id: &str| StoredOrder {
            request_id: Some(request_id.into()),
            ..order(id, user_id, "cancelled")
        };
        let orders = [with_request(10, 1, "r1"), with_request(11, 2, "r1"), order(12, 3, "paid")];
        let refused =
            |user_id: u64, request_id: &str| RefusedBuy { user_id, request_id: request_id.into(), status: 410 };
        assert_eq!(check_refused_buys(&[refused(1, "r2"), refused(3, "r1"), refused(4, "r1")], &orders), vec![]);
        let broken = check_refused_buys(&[refused(2, "r1")], &orders);
        assert_eq!(
            broken.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["idempotency: user 2's request \"r1\" was finally refused (410), yet it made order 11"]
        );
    }

    #[test]
    fn violations_read_as_sentences() {
        let v = Violation::Oversell { live_units: 4, stock: 3 };
        assert_eq!(v.to_string(), "oversell: 4 live units of a stock of 3");
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!((json["promise"].as_str(), json["live_units"].as_u64()), (Some("oversell"), Some(4)));
    }
}
