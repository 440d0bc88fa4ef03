//! Past the parser: arbitrary bytes → `RequestParser` → `router::route` →
//! the JSON body deserialiser of the route (`api::parse_body`). Checks: no
//! panic; a match is the route whose label the path fits, with its id, for
//! a method it admits; a 405's `Allow` names a method that routes; a body
//! is only ever refused with 400 `invalid_input`.
//!
//! Input layout: byte 0 picks the mode. Even: the rest is a client's byte
//! stream, parsed and routed request by request. Odd: byte 1 picks a route
//! and the rest is its body, straight to the body layer (so the fuzzer need
//! not first learn HTTP to reach the JSON). In both, each byte 0xD0–0xFE
//! stands for a fragment of HTTP or of the endpoints' JSON, and 0xFF
//! escapes the next byte.

#![no_main]

use libfuzzer_sys::fuzz_target;
use seckill::api::parse_body;
use seckill::router::{Miss, Route, route};
use seckill_protocol::{Limits, Method, Parse, RequestParser, Status};

/// Fragments the fuzzer can use as single bytes: request lines of the real
/// routes, framing, and the keys and edge values of the JSON bodies.
const FRAGMENTS: &[&[u8]] = &[
    b"GET /api/items/",
    b"POST /api/seckill/",
    b"POST /api/items/",
    b"PUT /admin/items/",
    b"POST /admin/items/",
    b"GET /admin/items/",
    b"POST /api/orders/",
    b"GET /api/orders",
    b"POST /api/users",
    b"POST /api/login",
    b"POST /admin/users/bulk",
    b"GET /openapi.json",
    b"/captcha",
    b"/path",
    b"/result",
    b"/stock",
    b"/pay",
    b"?limit=1&after=",
    b" HTTP/1.1\r\nHost: h\r\n",
    b"Content-Length: ",
    b"\r\n\r\n",
    b"{\"item_id\":",
    b",\"quantity\":",
    b",\"request_id\":\"",
    b"{\"captcha\":",
    b"{\"username\":\"",
    b"\",\"password\":\"",
    b"{\"name\":\"",
    b",\"description\":\"",
    b",\"price_cents\":",
    b",\"stock\":",
    b",\"per_user_limit\":",
    b",\"start_ms\":",
    b",\"end_ms\":",
    b"{\"prefix\":\"",
    b",\"count\":",
    b",\"sessions\":true",
    b"{\"delta\":",
    b"18446744073709551616",
    b"-9223372036854775809",
    b"1e308",
    b"\\u00e9\\ud800",
    b"null",
    b"[[[[[[[[",
    b"\"}",
    b"}",
    b"18446744073709551615",
];

fn expand(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() * 4);
    let mut bytes = raw.iter();
    while let Some(&b) = bytes.next() {
        match b {
            0xff => out.extend(bytes.next()),
            0xd0..=0xfe => out.extend_from_slice(FRAGMENTS[usize::from(b - 0xd0) % FRAGMENTS.len()]),
            _ => out.push(b),
        }
    }
    out
}

/// Whether `method` is one `route` answers (HEAD wherever GET).
fn admits(route: Route, method: Method) -> bool {
    method == route.method() || (method == Method::Head && route.method() == Method::Get)
}

/// Routes one request and checks the answer against the route table's
/// own description of itself (labels and methods).
fn check_route(method: Method, path: &str, body: &[u8]) {
    match route(method, path) {
        Ok(matched) => {
            let r = matched.route;
            assert!(admits(r, method), "{method:?} {path} → {r:?}");
            let label: Vec<&str> = r.label().split('/').collect();
            let segments: Vec<&str> = path.split('/').collect();
            assert_eq!(label.len(), segments.len(), "{path} → {r:?}");
            for (pattern, segment) in label.iter().zip(&segments) {
                match *pattern {
                    "{id}" => assert_eq!(segment.parse::<u64>().ok(), Some(matched.id), "{path} → {r:?}"),
                    "{path}" => assert!(!segment.is_empty(), "{path} → {r:?}"),
                    literal => assert_eq!(literal, *segment, "{path} → {r:?}"),
                }
            }
            check_body(r, body);
        }
        Err(Miss::MethodNotAllowed { allow }) => {
            let allowed = match allow.split(',').next() {
                Some("GET") => Method::Get,
                Some("POST") => Method::Post,
                Some("PUT") => Method::Put,
                other => panic!("Allow: {other:?}"),
            };
            assert_ne!(allowed, method, "{path}");
            let again = route(allowed, path).unwrap_or_else(|miss| panic!("{path} allows {allow} but: {miss:?}"));
            assert!(!admits(again.route, method), "{method:?} {path} refused but admitted by {:?}", again.route);
        }
        Err(Miss::NotFound) => {}
    }
}

/// The body layer refuses only with 400.
fn check_body(route: Route, body: &[u8]) {
    if let Err(error) = parse_body(route, body) {
        assert_eq!(error.status(), Status::BAD_REQUEST, "{route:?}: {error:?}");
    }
}

/// Parses a client's byte stream and routes every request in it.
fn check_stream(input: &[u8]) {
    let mut parser = RequestParser::new(Limits::default());
    let mut buf = input;
    loop {
        match parser.parse(buf) {
            Parse::Complete(request) => {
                check_route(request.method, request.path, request.body);
                let used = request.wire_len();
                if !request.keep_alive() || used >= buf.len() {
                    return;
                }
                buf = &buf[used..];
            }
            Parse::Partial { .. } | Parse::Error(_) => return,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    match data {
        [mode, rest @ ..] if mode & 1 == 0 => check_stream(&expand(rest)),
        [_, pick, body @ ..] => check_body(Route::ALL[usize::from(*pick) % Route::COUNT], &expand(body)),
        _ => {}
    }
});
