//! Every error the API answers with, its status and its `code`, in one
//! place (contract §2: `{"code":"snake_case_code","message":"human text"}`).
//! Errors of the HTTP layer itself live in `seckill_protocol::HttpError`.

use seckill_protocol::{ContentType, ResponseWriter, Status};

use crate::store::StoreError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiError {
    NotFound,
    MethodNotAllowed {
        allow: &'static str,
    },
    /// /readyz before the backends are reachable.
    NotReady,
    /// /readyz once a shutdown has begun.
    Draining,
    /// Bad JSON, a missing or malformed field; the text says which.
    InvalidInput(&'static str),
    UsernameTaken,
    BadCredentials,
    Unauthenticated,
    RateLimited {
        retry_after_s: u64,
    },
    /// A queue is full: retry shortly.
    Overloaded,
    /// A backend is down or being rebuilt: retry shortly.
    Unavailable,
    /// Not an answer: the session is not in this loop's cache and only a
    /// worker can ask the shared cache. The handler parks the request, a
    /// worker finds the session and the request is handled again. Should it
    /// ever reach a client, it reads as `Unavailable`.
    SessionElsewhere,
    /// Not an answer: the allotment here is short while the shared pool has
    /// units. The handler parks the request, a worker refills the item and
    /// the request is handled again. Should it ever reach a client, it reads
    /// as `Unavailable`.
    StockElsewhere,
    NoSuchItem,
    NotStarted,
    Ended,
    CaptchaWrong,
    CaptchaExpired,
    /// No captcha is outstanding for that user and item (admin hook).
    NoCaptcha,
    ItemHasOrders,
    StockBelowSold,
    /// The hidden path is not this user's for this item, or has expired.
    BadPath,
    LimitReached,
    RequestIdReused,
    SoldOut,
    NoSuchOrder,
    OrderExpired,
    OrderCancelled,
    OrderPaid,
    Internal,
}

impl ApiError {
    pub const fn status(self) -> Status {
        match self {
            ApiError::NotFound | ApiError::NoSuchItem | ApiError::NoCaptcha | ApiError::NoSuchOrder => {
                Status::NOT_FOUND
            }
            ApiError::MethodNotAllowed { .. } => Status::METHOD_NOT_ALLOWED,
            ApiError::NotReady
            | ApiError::Draining
            | ApiError::Overloaded
            | ApiError::Unavailable
            | ApiError::SessionElsewhere
            | ApiError::StockElsewhere => Status::SERVICE_UNAVAILABLE,
            ApiError::InvalidInput(_) => Status::BAD_REQUEST,
            ApiError::UsernameTaken
            | ApiError::ItemHasOrders
            | ApiError::StockBelowSold
            | ApiError::LimitReached
            | ApiError::RequestIdReused
            | ApiError::OrderExpired
            | ApiError::OrderCancelled
            | ApiError::OrderPaid => Status::CONFLICT,
            ApiError::SoldOut => Status::GONE,
            ApiError::BadCredentials | ApiError::Unauthenticated => Status::UNAUTHORIZED,
            ApiError::RateLimited { .. } => Status::TOO_MANY_REQUESTS,
            ApiError::NotStarted
            | ApiError::Ended
            | ApiError::CaptchaWrong
            | ApiError::CaptchaExpired
            | ApiError::BadPath => Status::FORBIDDEN,
            ApiError::Internal => Status::INTERNAL_SERVER_ERROR,
        }
    }

    pub const fn code(self) -> &'static str {
        match self {
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::NotReady => "not_ready",
            ApiError::Draining => "draining",
            ApiError::InvalidInput(_) => "invalid_input",
            ApiError::UsernameTaken => "username_taken",
            ApiError::BadCredentials => "bad_credentials",
            ApiError::Unauthenticated => "unauthenticated",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Overloaded => "overloaded",
            ApiError::Unavailable | ApiError::SessionElsewhere | ApiError::StockElsewhere => "unavailable",
            ApiError::NoSuchItem => "no_such_item",
            ApiError::NotStarted => "not_started",
            ApiError::Ended => "ended",
            ApiError::CaptchaWrong => "captcha_wrong",
            ApiError::CaptchaExpired => "captcha_expired",
            ApiError::NoCaptcha => "no_captcha",
            ApiError::ItemHasOrders => "item_has_orders",
            ApiError::StockBelowSold => "stock_below_sold",
            ApiError::BadPath => "bad_path",
            ApiError::LimitReached => "limit_reached",
            ApiError::RequestIdReused => "request_id_reused",
            ApiError::SoldOut => "sold_out",
            ApiError::NoSuchOrder => "no_such_order",
            ApiError::OrderExpired => "order_expired",
            ApiError::OrderCancelled => "order_cancelled",
            ApiError::OrderPaid => "order_paid",
            ApiError::Internal => "internal",
        }
    }

    /// A human sentence. Our own text: it never needs JSON escaping.
    pub const fn message(self) -> &'static str {
        match self {
            ApiError::NotFound => "no such path",
            ApiError::MethodNotAllowed { .. } => "this path does not accept that method",
            ApiError::NotReady => "the server is starting or a backend is unreachable",
            ApiError::Draining => "the server is shutting down",
            ApiError::InvalidInput(why) => why,
            ApiError::UsernameTaken => "that username is taken",
            ApiError::BadCredentials => "wrong username or password",
            ApiError::Unauthenticated => "a valid session or token is needed",
            ApiError::RateLimited { .. } => "too many requests; retry after the given seconds",
            ApiError::Overloaded => "the server is busy; retry shortly",
            ApiError::Unavailable | ApiError::SessionElsewhere | ApiError::StockElsewhere => {
                "a backend is unavailable; retry shortly"
            }
            ApiError::NoSuchItem => "no such item",
            ApiError::NotStarted => "the sale has not started",
            ApiError::Ended => "the sale has ended",
            ApiError::CaptchaWrong => "wrong captcha answer; fetch a new captcha",
            ApiError::CaptchaExpired => "no valid captcha; fetch a new one",
            ApiError::NoCaptcha => "no captcha is outstanding for that user and item",
            ApiError::ItemHasOrders => "the item has orders: its stock can only change by a stock delta",
            ApiError::StockBelowSold => "stock cannot drop below the units sold",
            ApiError::BadPath => "this sale path is not valid for you and this item, or has expired",
            ApiError::LimitReached => "you would hold more units of this item than the limit allows",
            ApiError::RequestIdReused => "this request id already made an order of another item or quantity",
            ApiError::SoldOut => "sold out: fewer units are left than asked",
            ApiError::NoSuchOrder => "no such order",
            ApiError::OrderExpired => "the payment window of this order has closed",
            ApiError::OrderCancelled => "the order was cancelled",
            ApiError::OrderPaid => "the order is paid and cannot be cancelled",
            ApiError::Internal => "internal error",
        }
    }

    /// Seconds a client should wait before retrying, for the errors that have one.
    pub const fn retry_after_s(self) -> Option<u64> {
        match self {
            ApiError::RateLimited { retry_after_s } => Some(retry_after_s),
            ApiError::NotReady
            | ApiError::Draining
            | ApiError::Overloaded
            | ApiError::Unavailable
            | ApiError::SessionElsewhere
            | ApiError::StockElsewhere => Some(1),
            _ => None,
        }
    }

    /// The JSON body.
    pub fn write_body(self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"code\":\"");
        out.extend_from_slice(self.code().as_bytes());
        out.extend_from_slice(b"\",\"message\":\"");
        out.extend_from_slice(self.message().as_bytes());
        out.extend_from_slice(b"\"}");
    }

    /// Finishes `w` (already started with `self.status()`) with this error.
    pub fn finish(self, mut w: ResponseWriter<'_>) {
        if let ApiError::MethodNotAllowed { allow } = self {
            w.header("Allow", allow.as_bytes());
        }
        if let Some(seconds) = self.retry_after_s() {
            w.header_u64("Retry-After", seconds);
        }
        w.body_with(ContentType::Json, |out| self.write_body(out));
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::UsernameTaken => ApiError::UsernameTaken,
            StoreError::ItemHasOrders => ApiError::ItemHasOrders,
            StoreError::StockBelowSold => ApiError::StockBelowSold,
            StoreError::NotFound => ApiError::NoSuchItem,
            StoreError::OutOfRange(_) => ApiError::InvalidInput("a number is out of range"),
            StoreError::Unavailable(_) | StoreError::OutcomeUnknown(_) => ApiError::Unavailable,
            StoreError::Internal(_) => ApiError::Internal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_need_no_escaping() {
        let all = [
            ApiError::NotFound,
            ApiError::MethodNotAllowed { allow: "GET" },
            ApiError::NotReady,
            ApiError::Draining,
            ApiError::InvalidInput("x"),
            ApiError::RateLimited { retry_after_s: 1 },
            ApiError::CaptchaWrong,
            ApiError::ItemHasOrders,
            ApiError::Internal,
        ];
        for e in all {
            assert!(!e.message().contains(['"', '\\']), "{e:?}");
            assert!(e.code().bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{e:?}");
        }
    }
}
