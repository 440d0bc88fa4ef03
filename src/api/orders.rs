//! The user's orders: list, get, pay, cancel. Store calls, so they run on
//! workers. Payment and cancellation are idempotent; the store makes each
//! status change once, and only the call that made it returns units to
//! the stock.

use seckill_protocol::Status;

use super::query_param;
use crate::api_error::ApiError;
use crate::app::{App, Counters};
use crate::handler::{Call, LoopHandler, Outcome, Pool};
use crate::reply::Reply;
use crate::sale::confirm::publish_left;
use crate::store::{CancelError, OrderRecord, PayError};

/// `limit` of the user's listing: default and maximum (contract §3).
const USER_PAGE_DEFAULT: u32 = 50;
const USER_PAGE_MAX: u32 = 200;
/// The admin listing of an item's orders may page further.
pub(crate) const ADMIN_PAGE_MAX: u32 = 1000;

/// ORDER as the contract shows it, and the order's request id.
pub(crate) fn order_json(order: &OrderRecord) -> serde_json::Value {
    serde_json::json!({
        "id": order.id.to_string(),
        "item_id": order.item_id,
        "user_id": order.user_id,
        "quantity": order.quantity,
        "status": order.status.as_str(),
        "created_ms": order.created_ms,
        "pay_deadline_ms": order.pay_deadline_ms,
        "paid_ms": order.paid_ms,
        // Beyond the contract's ORDER: lets a client (and seckill-bench's
        // promise check) match an order to the buy whose retries must get it.
        "request_id": order.request_id,
    })
}

/// `{"orders":[…],"next"}`: `next` is the cursor for the following page,
/// null when this page is not full.
pub(crate) fn page_json(orders: &[OrderRecord], limit: u32) -> serde_json::Value {
    let next = match orders.last() {
        Some(last) if orders.len() == limit as usize => serde_json::Value::String(last.id.to_string()),
        _ => serde_json::Value::Null,
    };
    serde_json::json!({ "orders": orders.iter().map(order_json).collect::<Vec<_>>(), "next": next })
}

/// `limit` and `after` of a listing's query.
pub(crate) fn page_query(query: &str, max: u32) -> Result<(u32, Option<u64>), ApiError> {
    let limit = match query_param(query, "limit") {
        None => USER_PAGE_DEFAULT.min(max),
        Some(v) => v.parse().ok().filter(|n| (1..=max).contains(n)).ok_or(ApiError::InvalidInput(
            "limit: an integer from 1 to the maximum (200 for a user, 1000 for admin)",
        ))?,
    };
    let after = match query_param(query, "after") {
        None | Some("") => None,
        Some(v) => Some(v.parse().map_err(|_| ApiError::InvalidInput("after: the cursor of a previous page"))?),
    };
    Ok((limit, after))
}

fn ok_order(order: &OrderRecord) -> Reply {
    Reply::json_value(Status::OK, &order_json(order))
}

impl LoopHandler {
    pub(crate) fn orders(&mut self, call: &mut Call<'_, '_, '_>) -> Outcome {
        let (_, session) = self.session(call)?;
        let (limit, after) = page_query(call.request.query, USER_PAGE_MAX)?;
        self.offload(call, Pool::General, move |app| {
            let orders = app.store.orders_of_user(session.user_id, limit, after)?;
            Ok(Reply::json_value(Status::OK, &page_json(&orders, limit)))
        })
    }

    pub(crate) fn order(&mut self, call: &mut Call<'_, '_, '_>) -> Outcome {
        let (_, session) = self.session(call)?;
        let order_id = call.matched.id;
        self.offload(call, Pool::General, move |app| match app.store.order(order_id) {
            Ok(Some(order)) if order.user_id == session.user_id => Ok(ok_order(&order)),
            Ok(_) | Err(crate::store::StoreError::OutOfRange(_)) => Err(ApiError::NoSuchOrder),
            Err(e) => Err(e.into()),
        })
    }

    pub(crate) fn pay(&mut self, call: &mut Call<'_, '_, '_>) -> Outcome {
        let (_, session) = self.session(call)?;
        let order_id = call.matched.id;
        let now_ms = call.now_ms;
        self.offload(call, Pool::General, move |app| match app.store.pay_order(order_id, session.user_id, now_ms) {
            Ok(order) => {
                // Paid (now or before): no longer due to expire.
                app.sale.forget_deadline(order.id);
                Ok(ok_order(&order))
            }
            Err(PayError::Expired { order, units_returned }) => {
                if units_returned {
                    returned(app, &order);
                    Counters::bump(&app.sale.counters.expired);
                }
                Err(ApiError::OrderExpired)
            }
            Err(PayError::Cancelled(_)) => Err(ApiError::OrderCancelled),
            Err(PayError::NotFound) => Err(ApiError::NoSuchOrder),
            Err(PayError::Store(e)) => Err(e.into()),
        })
    }

    pub(crate) fn cancel(&mut self, call: &mut Call<'_, '_, '_>) -> Outcome {
        let (_, session) = self.session(call)?;
        let order_id = call.matched.id;
        let now_ms = call.now_ms;
        self.offload(call, Pool::General, move |app| match app.store.cancel_order(order_id, session.user_id, now_ms) {
            Ok(outcome) => {
                if outcome.units_returned {
                    returned(app, &outcome.order);
                    Counters::bump(&app.sale.counters.cancelled);
                }
                Ok(ok_order(&outcome.order))
            }
            Err(CancelError::Paid(_)) => Err(ApiError::OrderPaid),
            Err(CancelError::NotFound) => Err(ApiError::NoSuchOrder),
            Err(CancelError::Store(e)) => Err(e.into()),
        })
    }
}

/// This call took `order` out of the live states: its units go back on
/// sale, once, and its deadline is no longer tracked.
fn returned(app: &App, order: &OrderRecord) {
    app.sale.release(order.user_id, order.item_id, order.quantity, order.id);
    app.sale.forget_deadline(order.id);
    publish_left(app, order.item_id);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_queries() {
        assert_eq!(page_query("", 200), Ok((50, None)));
        assert_eq!(page_query("limit=200&after=18446744073709551615", 200), Ok((200, Some(u64::MAX))));
        assert!(page_query("limit=0", 200).is_err());
        assert!(page_query("limit=201", 200).is_err());
        assert!(page_query("after=x", 200).is_err());
        assert_eq!(page_query("limit=1000", 1000), Ok((1000, None)));
    }
}
