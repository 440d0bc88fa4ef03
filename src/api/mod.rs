//! The endpoints, one file per area, as methods of the per-loop
//! [`LoopHandler`](crate::handler::LoopHandler). Each checks in the order
//! of contract §3 and either writes its answer or hands blocking work to a
//! worker (`offload`).
//!
//! - [`ops`]: /healthz, /readyz, /metrics.
//! - [`users`]: registration, login, logout, /api/me.
//! - [`items`]: the catalogue.
//! - [`sale`]: captcha and hidden path.
//! - [`buy`]: the buy (`/api/seckill/{path}`) and `/result`.
//! - [`orders`]: the user's orders: list, get, pay, cancel.
//! - [`admin`]: items, stock, stats, orders, reconcile, bulk users, the captcha-answer hook.
//! - [`openapi`]: /openapi.json, the OpenAPI 3.1 document of all of them.
//! - [`pages`]: `/` and `/items/{id}`, the web pages, served from memory.

pub mod admin;
pub mod buy;
pub mod items;
pub mod openapi;
pub mod ops;
pub mod orders;
pub mod pages;
pub mod sale;
pub mod users;

use seckill_protocol::{ContentType, Status};
use serde::de::DeserializeOwned;

use crate::api_error::ApiError;
use crate::etag::{self, ETag};
use crate::handler::{Answered, Call, Outcome};
use crate::router::Route;

/// Every request body is a JSON object (contract §2). Checked before serde,
/// which would also map an array onto a struct's fields in order.
fn require_object(body: &[u8]) -> Result<(), ApiError> {
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        None => Err(ApiError::InvalidInput("a JSON body is required")),
        Some(b'{') => Ok(()),
        Some(_) => Err(ApiError::InvalidInput("the body must be a JSON object")),
    }
}

/// Parses a JSON request body into `T`.
pub(crate) fn json_body<'r, T: serde::Deserialize<'r>>(body: &'r [u8]) -> Result<T, ApiError> {
    require_object(body)?;
    serde_json::from_slice(body).map_err(|_| ApiError::InvalidInput("the body is not the JSON this endpoint takes"))
}

/// Like [`json_body`] for types that own their data (sent to a worker).
pub(crate) fn owned_json_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    require_object(body)?;
    serde_json::from_slice(body).map_err(|_| ApiError::InvalidInput("the body is not the JSON this endpoint takes"))
}

/// Parses `body` as the JSON body of `route`, with the same deserialiser
/// (and the stateless reading that follows it) as the endpoint; `Ok` for
/// routes that take no body. The fuzz target `fuzz/` (`route`) drives the
/// routing and this JSON body layer with arbitrary bytes through it.
pub fn parse_body(route: Route, body: &[u8]) -> Result<(), ApiError> {
    match route {
        Route::Register | Route::Login => users::parse_credentials(body),
        Route::SalePath => sale::parse_path_request(body),
        Route::Seckill => buy::parse_buy_request(body),
        Route::AdminItem => admin::parse_put_item(body),
        Route::AdminBulkUsers => admin::parse_bulk_users(body),
        Route::AdminStock => admin::parse_stock_delta(body),
        Route::Healthz
        | Route::Readyz
        | Route::Metrics
        | Route::Logout
        | Route::Me
        | Route::Items
        | Route::Item
        | Route::Captcha
        | Route::AdminStats
        | Route::AdminCaptchaAnswer
        | Route::SaleResult
        | Route::Orders
        | Route::Order
        | Route::OrderPay
        | Route::OrderCancel
        | Route::AdminItemOrders
        | Route::AdminReconcile
        | Route::OpenApi
        | Route::Home
        | Route::ItemPage => Ok(()),
    }
}

/// Answers now with a JSON body written by `write`.
pub(crate) fn json_now(call: &mut Call<'_, '_, '_>, status: Status, write: impl FnOnce(&mut Vec<u8>)) -> Outcome {
    call.exchange.respond(status).body_with(ContentType::Json, write);
    Ok(Answered::Now(status))
}

/// Answers a body held in memory with its entity tag and `Cache-Control`:
/// 304 with no body when `If-None-Match` names the tag, else 200 with it.
/// Allocates nothing: the body is copied into the connection's buffer.
pub(crate) fn validated_now(
    call: &mut Call<'_, '_, '_>,
    etag: &ETag,
    cache_control: &[u8],
    content_type: ContentType,
    body: &[u8],
) -> Outcome {
    let fresh = call.request.header("if-none-match").is_some_and(|v| etag::none_match(v, etag));
    let status = if fresh { Status::NOT_MODIFIED } else { Status::OK };
    let mut w = call.exchange.respond(status);
    w.header("ETag", etag).header("Cache-Control", cache_control);
    if fresh {
        w.empty();
    } else {
        w.body(content_type, body);
    }
    Ok(Answered::Now(status))
}

/// The value of `name` in a query string (`a=1&b=2`), undecoded.
pub(crate) fn query_param<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then_some(v)
    })
}

/// Appends `"name":value` for an integer.
pub(crate) fn push_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params() {
        assert_eq!(query_param("user_id=7&x=1", "user_id"), Some("7"));
        assert_eq!(query_param("x=1&user_id=", "user_id"), Some(""));
        assert_eq!(query_param("user_idx=1", "user_id"), None);
        assert_eq!(query_param("", "user_id"), None);
    }

    #[test]
    fn bodies_parse_as_their_endpoints_parse_them() {
        assert_eq!(parse_body(Route::Register, br#"{"username":"alice","password":"12345678"}"#), Ok(()));
        assert_eq!(parse_body(Route::SalePath, br#"{"captcha":13}"#), Ok(()));
        assert!(parse_body(Route::SalePath, br#"{"captcha":[1]}"#).is_err());
        // An escaped request id is unescaped, then checked: printable ASCII only.
        assert_eq!(parse_body(Route::Seckill, br#"{"item_id":1,"request_id":"r\u0041"}"#), Ok(()));
        assert!(parse_body(Route::Seckill, br#"{"item_id":1,"request_id":"r\u00e9"}"#).is_err());
        assert!(parse_body(Route::Seckill, br#"{"item_id":1,"quantity":0}"#).is_err());
        assert!(parse_body(Route::AdminStock, br#"{"delta":1,"x":2}"#).is_err());
        assert!(parse_body(Route::AdminItem, b"[]").is_err());
        assert_eq!(parse_body(Route::Healthz, b"\xff"), Ok(()));
    }

    #[test]
    fn bodies_are_objects() {
        assert_eq!(require_object(b" {\"a\":1}"), Ok(()));
        assert!(require_object(b"").is_err());
        assert!(require_object(b" \r\n").is_err());
        assert!(require_object(b"[\"alice\",\"pw\"]").is_err());
        assert!(require_object(b"\"x\"").is_err());
    }
}
