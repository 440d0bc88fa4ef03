//! The buy: `POST /api/seckill/{path}` and `GET /api/items/{id}/result`.
//!
//! The hot path runs on the event loop and, when it refuses, allocates
//! nothing and blocks on nothing (a counting-allocator test holds it to
//! that). Checks in the contract's order (§3): session (401), rate limits
//! (429), body (400), path (403 `bad_path`), item (404), window (403), then
//! a request id already seen (its order again, or 409), per-user limit
//! (409), stock (410). An admitted order goes to the group-commit writer;
//! with sync confirmation the request is parked until its batch is durable
//! (or `sale.confirm_timeout_ms` passes: 503, outcome unknown), with async
//! it is answered 202 at once.

use std::borrow::Cow;
use std::num::NonZeroU32;

use seckill_protocol::Status;
use serde::Deserialize;

use super::{json_body, json_now, push_u64};
use crate::api_error::ApiError;
use crate::app::{App, Counters};
use crate::catalogue::SaleState;
use crate::handler::{Answered, Call, LoopHandler, Outcome, Pool};
use crate::reply::Reply;
use crate::sale::scripted::ScriptedBuy;
use crate::sale::{Known, Refusal, Scripted, Ticket};
use crate::stock::Beyond;
use crate::store::{NewOrder, OrderRecord};

/// The longest request id (contract §3).
const REQUEST_ID_BYTES_MAX: usize = 64;

#[derive(Deserialize)]
struct BuyRequest<'a> {
    item_id: u64,
    #[serde(default = "one")]
    quantity: i64,
    #[serde(borrow, default)]
    request_id: Option<Cow<'a, str>>,
}

fn one() -> i64 {
    1
}

/// `{"status":"success","order_id":"…","pay_deadline_ms":…}`.
pub fn write_success(out: &mut Vec<u8>, order_id: u64, pay_deadline_ms: u64) {
    out.extend_from_slice(b"{\"status\":\"success\",\"order_id\":\"");
    push_u64(out, order_id);
    out.extend_from_slice(b"\",\"pay_deadline_ms\":");
    push_u64(out, pay_deadline_ms);
    out.push(b'}');
}

/// A buy past the checks before stock, as the evalsha strategy takes it on.
struct AdmittedBuy<'a> {
    user: u64,
    item_id: u64,
    quantity: NonZeroU32,
    limit: u32,
    request_id: Option<&'a str>,
}

/// A buy body that passed every check of its own: what the endpoint acts on.
struct Buy<'a> {
    item_id: u64,
    quantity: NonZeroU32,
    request_id: Option<Cow<'a, str>>,
}

/// Parses and checks the body of `POST /api/seckill/{path}` (400 otherwise).
/// Allocates nothing unless the request id carries JSON escapes.
fn parse_buy(body: &[u8]) -> Result<Buy<'_>, ApiError> {
    let request: BuyRequest<'_> = json_body(body)?;
    let quantity = u32::try_from(request.quantity)
        .ok()
        .and_then(NonZeroU32::new)
        .ok_or(ApiError::InvalidInput("quantity: an integer of at least 1"))?;
    if let Some(id) = &request.request_id
        && !request_id_ok(id)
    {
        return Err(ApiError::InvalidInput("request_id: 1 to 64 printable ASCII characters"));
    }
    Ok(Buy { item_id: request.item_id, quantity, request_id: request.request_id })
}

/// The body check of `POST /api/seckill/{path}`, for [`super::parse_body`].
pub(super) fn parse_buy_request(body: &[u8]) -> Result<(), ApiError> {
    parse_buy(body).map(|_| ())
}

fn request_id_ok(id: &str) -> bool {
    (1..=REQUEST_ID_BYTES_MAX).contains(&id.len()) && id.bytes().all(|b| (b' '..=b'~').contains(&b))
}

impl LoopHandler {
    pub(crate) fn seckill(&mut self, call: &mut Call<'_, '_, '_>) -> Outcome {
        let (_, session) = self.session(call)?;
        self.limit_ip(call)?;
        self.limit_user(session.user_id, call)?;
        let user = session.user_id;
        let body = parse_buy(call.request.body)?;
        let quantity = body.quantity;
        let item_id = body.item_id;
        let now_ms = call.now_ms;
        let path = call.request.path.strip_prefix("/api/seckill/").unwrap_or_default();
        self.path_signer.verify(path.as_bytes(), user, item_id, now_ms).map_err(|_| ApiError::BadPath)?;
        let item = self.catalogue.get(item_id).ok_or(ApiError::NoSuchItem)?;
        match item.state(now_ms) {
            SaleState::Upcoming => return Err(ApiError::NotStarted),
            SaleState::Ended => return Err(ApiError::Ended),
            SaleState::Active | SaleState::SoldOut => {}
        }
        let limit = item.spec.per_user_limit;
        let sale = &self.app.sale;
        let request_id = body.request_id.as_deref();
        if let Some(request_id) = request_id {
            match sale.requests.get(user, request_id) {
                Some(known) if !known.matches(item_id, quantity.get()) => return Err(ApiError::RequestIdReused),
                Some(Known::Done { order_id, pay_deadline_ms, .. }) => {
                    Counters::bump(&sale.counters.replayed);
                    return json_now(call, Status::OK, |out| write_success(out, order_id, pay_deadline_ms));
                }
                // Its first attempt is still on its way to the store.
                Some(Known::InFlight { .. }) => return Err(ApiError::Unavailable),
                None => {}
            }
        }
        let slot = sale.stock.slot(item_id).ok_or(ApiError::Unavailable)?;
        if let Some(scripted) = &sale.scripted {
            let buy = AdmittedBuy { user, item_id, quantity, limit, request_id };
            return self.buy_by_script(call, scripted, buy);
        }
        let pool_epoch = match sale.take(user, item_id, slot, quantity.get(), limit) {
            Ok(pool_epoch) => pool_epoch,
            Err(refusal) => {
                if refusal == Refusal::Busy
                    && self.may_wait_for_refill()
                    && sale.stock.item(slot).beyond() == Beyond::Pool
                {
                    // The pool has units: a worker refills, then this buy runs again.
                    self.refill_for = (item_id, quantity.get());
                    return Err(ApiError::StockElsewhere);
                }
                return self.refused(call, refusal, user, request_id, item_id, quantity.get());
            }
        };
        let Ok(order_id) = sale.order_ids.next(now_ms) else {
            sale.untake(user, item_id, quantity.get(), pool_epoch);
            return Err(ApiError::Unavailable);
        };
        if let Some(request_id) = request_id {
            sale.requests.begin(user, request_id, item_id, quantity.get());
        }
        let order = NewOrder {
            id: order_id,
            item_id,
            user_id: user,
            quantity,
            created_ms: now_ms,
            pay_deadline_ms: now_ms + sale.settings.payment_window_ms,
            request_id: request_id.map(str::to_owned),
            pool_epoch,
        };
        let ticket =
            if sale.settings.confirm_async { Ticket::Async } else { Ticket::Parked(call.exchange.park_token()) };
        sale.queue(order, ticket).map_err(|refusal| refusal_error(refusal, &sale.counters))?;
        Counters::bump(&sale.counters.admitted);
        match ticket {
            Ticket::Parked(_) => {
                call.exchange.park(call.exchange.now() + sale.settings.confirm_timeout);
                Ok(Answered::Later)
            }
            Ticket::Async => json_now(call, Status::ACCEPTED, |out| out.extend_from_slice(b"{\"status\":\"queued\"}")),
        }
    }

    /// The answer to a refused take. A retry of an order the index does not
    /// know must still get its order: the index is authoritative only when
    /// it is complete and this instance is the only one writing to the store
    /// (with a shared cache, the first attempt may have been made on another).
    fn refused(
        &self,
        call: &mut Call<'_, '_, '_>,
        refusal: Refusal,
        user: u64,
        request_id: Option<&str>,
        item_id: u64,
        quantity: u32,
    ) -> Outcome {
        let sale = &self.app.sale;
        let error = refusal_error(refusal, &sale.counters);
        if let Some(request_id) = request_id
            && (!sale.requests.is_complete() || self.app.cache.is_shared())
            && matches!(refusal, Refusal::LimitReached | Refusal::SoldOut)
        {
            return self.replay_from_store(call, user, request_id.to_owned(), item_id, quantity, error);
        }
        Err(error)
    }

    /// The buy under the evalsha strategy: the per-user limit here, then
    /// one script on the item's counter in Redis, sent to the cache's thread
    /// without waiting; the request stays parked until the script's answer
    /// completes it there (`crate::sale::scripted`). The conventional design,
    /// kept for comparison: a round trip per buy, refusals included.
    fn buy_by_script(&self, call: &mut Call<'_, '_, '_>, scripted: &Scripted, buy: AdmittedBuy<'_>) -> Outcome {
        let sale = &self.app.sale;
        let (user, item_id, quantity) = (buy.user, buy.item_id, buy.quantity.get());
        if let Err(refusal) = sale.reserve(user, item_id, quantity, buy.limit) {
            return self.refused(call, refusal, user, buy.request_id, item_id, quantity);
        }
        if let Some(request_id) = buy.request_id {
            sale.requests.begin(user, request_id, item_id, quantity);
        }
        let scripted_buy = ScriptedBuy {
            user,
            item_id,
            quantity: buy.quantity,
            created_ms: call.now_ms,
            request_id: buy.request_id.map(str::to_owned),
            park: call.exchange.park_token(),
        };
        if !scripted.start(&self.app, scripted_buy) {
            sale.unreserve(user, item_id, quantity);
            if let Some(request_id) = buy.request_id {
                sale.requests.forget(user, request_id);
            }
            return Err(refusal_error(Refusal::Busy, &sale.counters));
        }
        call.exchange.park(call.exchange.now() + sale.settings.confirm_timeout);
        Ok(Answered::Later)
    }

    /// A request id the in-memory index may have forgotten, on a request
    /// the loop would refuse: the store says whether it made an order. With
    /// a shared cache, an order of the user for the item that another
    /// instance marked in flight may be this request's first attempt, still
    /// on its way to the store: 503 (retry), not a refusal that its commit
    /// would contradict.
    fn replay_from_store(
        &self,
        call: &mut Call<'_, '_, '_>,
        user: u64,
        request_id: String,
        item_id: u64,
        quantity: u32,
        refusal: ApiError,
    ) -> Outcome {
        self.offload(call, Pool::General, move |app| stored_replay(app, user, &request_id, item_id, quantity, refusal))
    }

    /// `GET /api/items/{id}/result`: what became of the user's buy, the same
    /// on every instance (§3). Answered on the loop from memory; only a
    /// `success` whose newest order ended while older ones live on reads the
    /// order id from the store. Polled, so under the per-address limit.
    pub(crate) fn sale_result(&mut self, call: &mut Call<'_, '_, '_>) -> Outcome {
        let (_, session) = self.session(call)?;
        self.limit_ip(call)?;
        let item_id = call.matched.id;
        if self.catalogue.get(item_id).is_none() {
            return Err(ApiError::NoSuchItem);
        }
        let sale = &self.app.sale;
        let held = sale.holdings.get(session.user_id, item_id);
        let status: &[u8] = if held.live > 0 && held.order_id != 0 {
            return json_now(call, Status::OK, |out| {
                out.extend_from_slice(b"{\"status\":\"success\",\"order_id\":\"");
                push_u64(out, held.order_id);
                out.extend_from_slice(b"\"}");
            });
        } else if held.live > 0 {
            let user = session.user_id;
            return self.offload(call, Pool::General, move |app| live_order_reply(app, user, item_id));
        } else if held.in_flight > 0 {
            b"pending"
        } else if self.app.cache.is_shared() {
            // Another instance may have sold to this user: the store knows.
            let (user, now_ms) = (session.user_id, call.now_ms);
            return self.offload(call, Pool::General, move |app| shared_result(app, user, item_id, now_ms));
        } else if sale.stock.slot(item_id).is_none_or(|slot| sale.stock.is_sold_out(slot)) {
            b"sold_out"
        } else {
            b"none"
        };
        json_now(call, Status::OK, |out| {
            out.extend_from_slice(b"{\"status\":\"");
            out.extend_from_slice(status);
            out.extend_from_slice(b"\"}");
        })
    }
}

/// What a buy the instance would refuse answers when its request id may
/// have made an order already (see `replay_from_store`): that order (200),
/// 409 `request_id_reused`, 503 while an order of the user for the item is
/// marked in flight on another instance, else `refusal`. Runs on a worker.
pub(crate) fn stored_replay(
    app: &App,
    user: u64,
    request_id: &str,
    item_id: u64,
    quantity: u32,
    refusal: ApiError,
) -> Result<Reply, ApiError> {
    // The mark first: it goes only once its batch is decided, so an order
    // committed between the two reads is found in the store.
    let marked =
        app.cache.is_shared() && app.cache.order_in_flight(user, item_id, crate::clock::now_ms()).unwrap_or(true);
    match app.store.order_by_request(user, request_id)? {
        Some(order) if order.item_id == item_id && order.quantity == quantity => {
            app.sale.requests.done(user, request_id, &order);
            let mut body = Vec::new();
            write_success(&mut body, order.id, order.pay_deadline_ms);
            Ok(Reply::json(Status::OK, body))
        }
        Some(_) => Err(ApiError::RequestIdReused),
        None if marked => Err(ApiError::Unavailable),
        None => Err(refusal),
    }
}

/// `/result` when several instances share the store and this one knows of
/// no order: an order another instance marked in flight (async confirmation)
/// is `pending`; a live order in the store is `success`; otherwise
/// `sold_out` when the store has no unit left, else `none`. The mark is read
/// first: it goes only after its batch is decided, so an order between the
/// two reads is found in the store. (An order answered 202 whose batch has
/// not started yet reads `none` here for those few ms.)
fn shared_result(app: &App, user: u64, item_id: u64, now_ms: u64) -> Result<Reply, ApiError> {
    if app.cache.order_in_flight(user, item_id, now_ms).map_err(|_| ApiError::Unavailable)? {
        return Ok(Reply::json_value(Status::OK, &serde_json::json!({ "status": "pending" })));
    }
    if let Some(order_id) = live_order(app, user, item_id)? {
        return Ok(success_reply(order_id));
    }
    // The items' sold counters (one row per item), not `item_stats`, which
    // sums the item's orders by status: per `/result` that scan took 0.2 s
    // and more once a sale with a short payment window had made 100,000
    // orders, and the workers fell minutes behind. The counter is kept in the
    // orders' own transactions: `stock_total - sold_units` is `stock_left`.
    let row = app.store.stock_snapshot()?.into_iter().find(|row| row.item_id == item_id);
    let Some(row) = row else { return Err(ApiError::NoSuchItem) };
    let status = if row.stock_total <= row.sold_units { "sold_out" } else { "none" };
    Ok(Reply::json_value(Status::OK, &serde_json::json!({ "status": status })))
}

/// The newest live order of the user for the item, as `/result` shows it.
fn live_order_reply(app: &App, user: u64, item_id: u64) -> Result<Reply, ApiError> {
    match live_order(app, user, item_id)? {
        Some(order_id) => Ok(success_reply(order_id)),
        // Expired or cancelled between the check and now.
        None => Ok(Reply::json_value(Status::OK, &serde_json::json!({ "status": "none" }))),
    }
}

fn success_reply(order_id: u64) -> Reply {
    Reply::json_value(Status::OK, &serde_json::json!({ "status": "success", "order_id": order_id.to_string() }))
}

/// The id of the newest live order of the user for the item, from the store.
fn live_order(app: &App, user: u64, item_id: u64) -> Result<Option<u64>, ApiError> {
    let mut before = None;
    loop {
        let page = app.store.orders_of_user(user, 200, before)?;
        if let Some(order) = page.iter().find(|o: &&OrderRecord| o.item_id == item_id && o.status.is_live()) {
            return Ok(Some(order.id));
        }
        match page.last() {
            Some(last) if page.len() == 200 => before = Some(last.id),
            _ => return Ok(None),
        }
    }
}

pub(crate) fn refusal_error(refusal: Refusal, counters: &crate::sale::SaleCounters) -> ApiError {
    let (counter, error) = match refusal {
        Refusal::LimitReached => (&counters.refused_limit, ApiError::LimitReached),
        Refusal::SoldOut => (&counters.refused_sold_out, ApiError::SoldOut),
        Refusal::Busy => (&counters.refused_busy, ApiError::Unavailable),
        Refusal::Overloaded => (&counters.refused_overloaded, ApiError::Overloaded),
    };
    Counters::bump(counter);
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_body_is_json_with_a_string_id() {
        let mut out = Vec::new();
        write_success(&mut out, u64::MAX, 5);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["order_id"], "18446744073709551615");
        assert_eq!((v["status"].as_str(), v["pay_deadline_ms"].as_u64()), (Some("success"), Some(5)));
    }

    #[test]
    fn request_ids_are_short_printable_ascii() {
        assert!(request_id_ok("a") && request_id_ok(&"x".repeat(64)) && request_id_ok("r-1 2"));
        assert!(!request_id_ok("") && !request_id_ok(&"x".repeat(65)) && !request_id_ok("é") && !request_id_ok("\t"));
    }
}
