//! The route table: (method, path) → a [`Route`] with its path parameters,
//! or the reason there is none (404, or 405 with the methods that are
//! allowed). Matching walks the path's segments and allocates nothing.

use seckill_protocol::Method;

/// Every endpoint the server answers. The discriminant indexes per-route metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Route {
    Healthz,
    Readyz,
    Metrics,
    Register,
    Login,
    Logout,
    Me,
    Items,
    Item,
    Captcha,
    SalePath,
    AdminItem,
    AdminStats,
    AdminBulkUsers,
    AdminCaptchaAnswer,
    Seckill,
    SaleResult,
    Orders,
    Order,
    OrderPay,
    OrderCancel,
    AdminStock,
    AdminItemOrders,
    AdminReconcile,
    OpenApi,
    /// `/`: the page that lists the sales.
    Home,
    /// `/items/{id}`: an item's page.
    ItemPage,
}

impl Route {
    pub const ALL: [Route; 27] = [
        Route::Healthz,
        Route::Readyz,
        Route::Metrics,
        Route::Register,
        Route::Login,
        Route::Logout,
        Route::Me,
        Route::Items,
        Route::Item,
        Route::Captcha,
        Route::SalePath,
        Route::AdminItem,
        Route::AdminStats,
        Route::AdminBulkUsers,
        Route::AdminCaptchaAnswer,
        Route::Seckill,
        Route::SaleResult,
        Route::Orders,
        Route::Order,
        Route::OrderPay,
        Route::OrderCancel,
        Route::AdminStock,
        Route::AdminItemOrders,
        Route::AdminReconcile,
        Route::OpenApi,
        Route::Home,
        Route::ItemPage,
    ];
    pub const COUNT: usize = Route::ALL.len();

    /// The route's label in `/metrics`: its path pattern.
    pub const fn label(self) -> &'static str {
        match self {
            Route::Healthz => "/healthz",
            Route::Readyz => "/readyz",
            Route::Metrics => "/metrics",
            Route::Register => "/api/users",
            Route::Login => "/api/login",
            Route::Logout => "/api/logout",
            Route::Me => "/api/me",
            Route::Items => "/api/items",
            Route::Item => "/api/items/{id}",
            Route::Captcha => "/api/items/{id}/captcha",
            Route::SalePath => "/api/items/{id}/path",
            Route::AdminItem => "/admin/items/{id}",
            Route::AdminStats => "/admin/items/{id}/stats",
            Route::AdminBulkUsers => "/admin/users/bulk",
            Route::AdminCaptchaAnswer => "/admin/items/{id}/captcha-answer",
            Route::Seckill => "/api/seckill/{path}",
            Route::SaleResult => "/api/items/{id}/result",
            Route::Orders => "/api/orders",
            Route::Order => "/api/orders/{id}",
            Route::OrderPay => "/api/orders/{id}/pay",
            Route::OrderCancel => "/api/orders/{id}/cancel",
            Route::AdminStock => "/admin/items/{id}/stock",
            Route::AdminItemOrders => "/admin/items/{id}/orders",
            Route::AdminReconcile => "/admin/reconcile",
            Route::OpenApi => "/openapi.json",
            Route::Home => "/",
            Route::ItemPage => "/items/{id}",
        }
    }

    /// The method the route answers (`HEAD` too where it is `GET`). The
    /// table in [`route`] decides; a test holds the two together, and
    /// `tests/openapi.rs` holds `/openapi.json` to both.
    pub const fn method(self) -> Method {
        match self {
            Route::Healthz
            | Route::Readyz
            | Route::Metrics
            | Route::Me
            | Route::Items
            | Route::Item
            | Route::Captcha
            | Route::AdminStats
            | Route::AdminCaptchaAnswer
            | Route::SaleResult
            | Route::Orders
            | Route::Order
            | Route::AdminItemOrders
            | Route::OpenApi
            | Route::Home
            | Route::ItemPage => Method::Get,
            Route::Register
            | Route::Login
            | Route::Logout
            | Route::SalePath
            | Route::AdminBulkUsers
            | Route::Seckill
            | Route::OrderPay
            | Route::OrderCancel
            | Route::AdminStock
            | Route::AdminReconcile => Method::Post,
            Route::AdminItem => Method::Put,
        }
    }

    pub const fn index(self) -> usize {
        self as usize
    }
}

/// Why a request matched no route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Miss {
    NotFound,
    /// The path exists; `allow` is the value of the `Allow` header.
    MethodNotAllowed {
        allow: &'static str,
    },
}

/// A matched request: the route and its parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Matched {
    pub route: Route,
    /// The `{id}` of the path (an item or order id), 0 where the route has
    /// none. The hidden path of [`Route::Seckill`] is read from the request
    /// path by its handler.
    pub id: u64,
}

/// The methods a path accepts. `HEAD` is accepted wherever `GET` is.
#[derive(Clone, Copy)]
enum Allowed {
    Get,
    Post,
    Put,
}

impl Allowed {
    const fn header(self) -> &'static str {
        match self {
            Allowed::Get => "GET, HEAD",
            Allowed::Post => "POST",
            Allowed::Put => "PUT",
        }
    }

    fn admits(self, method: Method) -> bool {
        match self {
            Allowed::Get => matches!(method, Method::Get | Method::Head),
            Allowed::Post => method == Method::Post,
            Allowed::Put => method == Method::Put,
        }
    }
}

/// A path id: decimal digits only, no sign, no leading `+`, fits in u64.
fn id(segment: &str) -> Option<u64> {
    if segment.is_empty() || !segment.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    segment.parse().ok()
}

/// Finds the route for `method` and `path` (the path without its query).
pub fn route(method: Method, path: &str) -> Result<Matched, Miss> {
    let Some(rest) = path.strip_prefix('/') else { return Err(Miss::NotFound) };
    let mut segments = rest.split('/');
    let s = [segments.next(), segments.next(), segments.next(), segments.next()];
    if segments.next().is_some() {
        return Err(Miss::NotFound);
    }
    use Allowed::{Get, Post, Put};
    let (route, id, allowed) = match s {
        [Some("healthz"), None, None, None] => (Route::Healthz, 0, Get),
        [Some("readyz"), None, None, None] => (Route::Readyz, 0, Get),
        [Some("metrics"), None, None, None] => (Route::Metrics, 0, Get),
        [Some("api"), Some("users"), None, None] => (Route::Register, 0, Post),
        [Some("api"), Some("login"), None, None] => (Route::Login, 0, Post),
        [Some("api"), Some("logout"), None, None] => (Route::Logout, 0, Post),
        [Some("api"), Some("me"), None, None] => (Route::Me, 0, Get),
        [Some("api"), Some("items"), None, None] => (Route::Items, 0, Get),
        [Some("api"), Some("items"), Some(n), None] => (Route::Item, id(n).ok_or(Miss::NotFound)?, Get),
        [Some("api"), Some("items"), Some(n), Some("captcha")] => (Route::Captcha, id(n).ok_or(Miss::NotFound)?, Get),
        [Some("api"), Some("items"), Some(n), Some("path")] => (Route::SalePath, id(n).ok_or(Miss::NotFound)?, Post),
        [Some("admin"), Some("items"), Some(n), None] => (Route::AdminItem, id(n).ok_or(Miss::NotFound)?, Put),
        [Some("admin"), Some("items"), Some(n), Some("stats")] => {
            (Route::AdminStats, id(n).ok_or(Miss::NotFound)?, Get)
        }
        [Some("admin"), Some("users"), Some("bulk"), None] => (Route::AdminBulkUsers, 0, Post),
        [Some("admin"), Some("items"), Some(n), Some("captcha-answer")] => {
            (Route::AdminCaptchaAnswer, id(n).ok_or(Miss::NotFound)?, Get)
        }
        [Some("api"), Some("seckill"), Some(p), None] if !p.is_empty() => (Route::Seckill, 0, Post),
        [Some("api"), Some("items"), Some(n), Some("result")] => (Route::SaleResult, id(n).ok_or(Miss::NotFound)?, Get),
        [Some("api"), Some("orders"), None, None] => (Route::Orders, 0, Get),
        [Some("api"), Some("orders"), Some(n), None] => (Route::Order, id(n).ok_or(Miss::NotFound)?, Get),
        [Some("api"), Some("orders"), Some(n), Some("pay")] => (Route::OrderPay, id(n).ok_or(Miss::NotFound)?, Post),
        [Some("api"), Some("orders"), Some(n), Some("cancel")] => {
            (Route::OrderCancel, id(n).ok_or(Miss::NotFound)?, Post)
        }
        [Some("admin"), Some("items"), Some(n), Some("stock")] => {
            (Route::AdminStock, id(n).ok_or(Miss::NotFound)?, Post)
        }
        [Some("admin"), Some("items"), Some(n), Some("orders")] => {
            (Route::AdminItemOrders, id(n).ok_or(Miss::NotFound)?, Get)
        }
        [Some("admin"), Some("reconcile"), None, None] => (Route::AdminReconcile, 0, Post),
        [Some("openapi.json"), None, None, None] => (Route::OpenApi, 0, Get),
        // `"/"` splits into one empty segment.
        [Some(""), None, None, None] => (Route::Home, 0, Get),
        [Some("items"), Some(n), None, None] => (Route::ItemPage, id(n).ok_or(Miss::NotFound)?, Get),
        _ => return Err(Miss::NotFound),
    };
    if allowed.admits(method) {
        Ok(Matched { route, id })
    } else {
        Err(Miss::MethodNotAllowed { allow: allowed.header() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(method: Method, path: &str, expected: Result<(Route, u64), Miss>) {
        assert_eq!(route(method, path).map(|m| (m.route, m.id)), expected, "{method:?} {path}");
    }

    #[test]
    fn operations_routes() {
        check(Method::Get, "/healthz", Ok((Route::Healthz, 0)));
        check(Method::Head, "/healthz", Ok((Route::Healthz, 0)));
        check(Method::Get, "/readyz", Ok((Route::Readyz, 0)));
        check(Method::Get, "/metrics", Ok((Route::Metrics, 0)));
        check(Method::Post, "/healthz", Err(Miss::MethodNotAllowed { allow: "GET, HEAD" }));
        check(Method::Get, "/healthz/", Err(Miss::NotFound));
        check(Method::Get, "/nope", Err(Miss::NotFound));
        check(Method::Get, "*", Err(Miss::NotFound));
        check(Method::Other, "/metrics", Err(Miss::MethodNotAllowed { allow: "GET, HEAD" }));
    }

    #[test]
    fn api_routes_with_ids() {
        check(Method::Post, "/api/users", Ok((Route::Register, 0)));
        check(Method::Get, "/api/users", Err(Miss::MethodNotAllowed { allow: "POST" }));
        check(Method::Get, "/api/items/42", Ok((Route::Item, 42)));
        check(Method::Get, "/api/items/42/captcha", Ok((Route::Captcha, 42)));
        check(Method::Post, "/api/items/42/path", Ok((Route::SalePath, 42)));
        check(Method::Put, "/admin/items/7", Ok((Route::AdminItem, 7)));
        check(Method::Get, "/admin/items/7", Err(Miss::MethodNotAllowed { allow: "PUT" }));
        check(Method::Get, "/admin/items/7/captcha-answer", Ok((Route::AdminCaptchaAnswer, 7)));
        check(Method::Get, "/api/items/-1", Err(Miss::NotFound));
        check(Method::Get, "/api/items/+1", Err(Miss::NotFound));
        check(Method::Get, "/api/items/99999999999999999999", Err(Miss::NotFound));
        check(Method::Get, "/api/items/1/captcha/x", Err(Miss::NotFound));
        check(Method::Get, "/api/items/", Err(Miss::NotFound));
        check(Method::Post, "/api/seckill/abc-_9", Ok((Route::Seckill, 0)));
        check(Method::Get, "/api/seckill/abc", Err(Miss::MethodNotAllowed { allow: "POST" }));
        check(Method::Post, "/api/seckill/", Err(Miss::NotFound));
        check(Method::Get, "/api/items/3/result", Ok((Route::SaleResult, 3)));
        check(Method::Get, "/api/orders", Ok((Route::Orders, 0)));
        check(Method::Get, "/api/orders/18446744073709551615", Ok((Route::Order, u64::MAX)));
        check(Method::Post, "/api/orders/5/pay", Ok((Route::OrderPay, 5)));
        check(Method::Post, "/api/orders/5/cancel", Ok((Route::OrderCancel, 5)));
        check(Method::Post, "/admin/items/5/stock", Ok((Route::AdminStock, 5)));
        check(Method::Get, "/admin/items/5/orders", Ok((Route::AdminItemOrders, 5)));
        check(Method::Post, "/admin/reconcile", Ok((Route::AdminReconcile, 0)));
        check(Method::Get, "/openapi.json", Ok((Route::OpenApi, 0)));
        check(Method::Head, "/openapi.json", Ok((Route::OpenApi, 0)));
        check(Method::Post, "/openapi.json", Err(Miss::MethodNotAllowed { allow: "GET, HEAD" }));
    }

    #[test]
    fn page_routes() {
        check(Method::Get, "/", Ok((Route::Home, 0)));
        check(Method::Head, "/", Ok((Route::Home, 0)));
        check(Method::Post, "/", Err(Miss::MethodNotAllowed { allow: "GET, HEAD" }));
        check(Method::Get, "/items/12", Ok((Route::ItemPage, 12)));
        check(Method::Put, "/items/12", Err(Miss::MethodNotAllowed { allow: "GET, HEAD" }));
        check(Method::Get, "/items", Err(Miss::NotFound));
        check(Method::Get, "/items/", Err(Miss::NotFound));
        check(Method::Get, "/items/x", Err(Miss::NotFound));
        check(Method::Get, "/items/1/", Err(Miss::NotFound));
        check(Method::Get, "//", Err(Miss::NotFound));
    }

    /// `Route::method` agrees with the table: each route's label, its
    /// parameters filled in, routes to it with its method and to 405 with
    /// every other.
    #[test]
    fn methods_agree_with_the_table() {
        let others = [Method::Get, Method::Head, Method::Post, Method::Put, Method::Delete, Method::Other];
        for r in Route::ALL {
            let path = r.label().replace("{id}", "7").replace("{path}", "p");
            let id = if r.label().contains("{id}") { 7 } else { 0 };
            check(r.method(), &path, Ok((r, id)));
            for m in others {
                let admitted = m == r.method() || (m == Method::Head && r.method() == Method::Get);
                assert_eq!(route(m, &path).is_ok(), admitted, "{m:?} {path}");
            }
        }
    }

    #[test]
    fn labels_are_distinct_and_indexes_dense() {
        for (i, r) in Route::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
        let mut labels: Vec<_> = Route::ALL.iter().map(|r| r.label()).collect();
        labels.sort();
        labels.dedup();
        assert_eq!(labels.len(), Route::COUNT);
    }
}
