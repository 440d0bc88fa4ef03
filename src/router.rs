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
}

impl Route {
    pub const ALL: [Route; 3] = [Route::Healthz, Route::Readyz, Route::Metrics];
    pub const COUNT: usize = Route::ALL.len();

    /// The route's label in `/metrics`: its path pattern.
    pub const fn label(self) -> &'static str {
        match self {
            Route::Healthz => "/healthz",
            Route::Readyz => "/readyz",
            Route::Metrics => "/metrics",
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
}

/// The methods a path accepts. `HEAD` is accepted wherever `GET` is.
#[derive(Clone, Copy)]
enum Allowed {
    Get,
}

impl Allowed {
    const fn header(self) -> &'static str {
        match self {
            Allowed::Get => "GET, HEAD",
        }
    }

    fn admits(self, method: Method) -> bool {
        match self {
            Allowed::Get => matches!(method, Method::Get | Method::Head),
        }
    }
}

/// Finds the route for `method` and `path` (the path without its query).
pub fn route(method: Method, path: &str) -> Result<Matched, Miss> {
    let (route, allowed) = match path {
        "/healthz" => (Route::Healthz, Allowed::Get),
        "/readyz" => (Route::Readyz, Allowed::Get),
        "/metrics" => (Route::Metrics, Allowed::Get),
        _ => return Err(Miss::NotFound),
    };
    if allowed.admits(method) { Ok(Matched { route }) } else { Err(Miss::MethodNotAllowed { allow: allowed.header() }) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(method: Method, path: &str, expected: Result<Route, Miss>) {
        assert_eq!(route(method, path).map(|m| m.route), expected, "{method:?} {path}");
    }

    #[test]
    fn operations_routes() {
        check(Method::Get, "/healthz", Ok(Route::Healthz));
        check(Method::Head, "/healthz", Ok(Route::Healthz));
        check(Method::Get, "/readyz", Ok(Route::Readyz));
        check(Method::Get, "/metrics", Ok(Route::Metrics));
        check(Method::Post, "/healthz", Err(Miss::MethodNotAllowed { allow: "GET, HEAD" }));
        check(Method::Get, "/healthz/", Err(Miss::NotFound));
        check(Method::Get, "/nope", Err(Miss::NotFound));
        check(Method::Other, "/metrics", Err(Miss::MethodNotAllowed { allow: "GET, HEAD" }));
    }

    #[test]
    fn labels_are_distinct_and_indexes_dense() {
        for (i, r) in Route::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
        let mut labels: Vec<_> = Route::ALL.iter().map(|r| r.label()).collect();
        labels.dedup();
        assert_eq!(labels.len(), Route::COUNT);
    }
}
