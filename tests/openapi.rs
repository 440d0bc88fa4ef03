//! `/openapi.json` against the real binary: the document is OpenAPI 3.1
//! JSON, documents exactly the routes the server has (from
//! `seckill::router::Route`), every documented operation is routed (neither
//! 404 `not_found` nor 405) and answers a status it documents, and the
//! document is served with an ETag, `Cache-Control` and 304.

mod common;

use std::collections::BTreeSet;

use seckill::router::Route;
use seckill_protocol::Method;
use serde_json::Value;

use common::Server;
use common::sale::fast;

/// The operations of an OpenAPI path item (OpenAPI 3.1 §4.8.9).
const OPERATIONS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

fn method_name(method: Method) -> &'static str {
    match method {
        Method::Get => "get",
        Method::Head => "head",
        Method::Post => "post",
        Method::Put => "put",
        other => panic!("no route answers {other:?}"),
    }
}

/// (method, path template) of every route, with HEAD wherever GET is.
fn server_operations() -> BTreeSet<(&'static str, String)> {
    let mut ops = BTreeSet::new();
    for route in Route::ALL {
        ops.insert((method_name(route.method()), route.label().to_string()));
        if route.method() == Method::Get {
            ops.insert(("head", route.label().to_string()));
        }
    }
    ops
}

/// (method, path template) of every documented operation, with HEAD
/// implied by GET (the document lists GET only).
fn documented_operations(doc: &Value) -> BTreeSet<(&'static str, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths is an object") {
        for method in OPERATIONS.iter().copied().filter(|m| item.get(*m).is_some()) {
            ops.insert((method, path.clone()));
            if method == "get" {
                ops.insert(("head", path.clone()));
            }
        }
    }
    ops
}

fn document() -> Value {
    serde_json::from_slice(seckill::api::openapi::DOCUMENT).expect("the built-in document is JSON")
}

/// Follows a local `$ref` (`#/components/...`).
fn resolve<'d>(doc: &'d Value, value: &'d Value) -> &'d Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let pointer = reference.strip_prefix('#').unwrap_or_else(|| panic!("non-local $ref {reference}"));
            let target = doc.pointer(pointer).unwrap_or_else(|| panic!("$ref {reference} resolves to nothing"));
            resolve(doc, target)
        }
        None => value,
    }
}

#[test]
fn served_document_lists_exactly_the_routes() {
    let server = Server::start_with(fast());
    let resp = server.get("/openapi.json");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert_eq!(resp.body, seckill::api::openapi::DOCUMENT, "the served bytes are the built-in document");
    let doc = resp.json();
    let version = doc["openapi"].as_str().expect("openapi is a string");
    assert!(version.starts_with("3.1."), "openapi: {version}");
    let served = server_operations();
    let documented = documented_operations(&doc);
    let missing: Vec<_> = served.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&served).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "undocumented routes: {missing:?}; documented, not routed: {extra:?}"
    );
}

#[test]
fn every_documented_operation_is_routed_and_answers_a_documented_status() {
    let server = Server::start_with(fast());
    let doc = document();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let concrete = path.replace("{id}", "1").replace("{path}", "p");
        for method in OPERATIONS.iter().copied().filter(|m| item.get(*m).is_some()) {
            let upper = method.to_ascii_uppercase();
            // No credentials and no body: nothing changes, and an answer past
            // the router (401, 400, 404 `no_such_item`, …) proves the route.
            let resp = server.request(&upper, &concrete, &[], b"");
            assert_ne!(resp.status, 405, "{upper} {concrete}: {}", resp.text());
            if resp.status == 404 {
                assert_ne!(resp.json()["code"], "not_found", "{upper} {concrete} is not routed");
            }
            let documented = &item[method]["responses"];
            assert!(
                documented.get(resp.status.to_string()).is_some(),
                "{upper} {concrete} answered {}, which {path} does not document: {}",
                resp.status,
                resp.text()
            );
            if method == "get" {
                let head = server.request("HEAD", &concrete, &[], b"");
                assert_eq!(head.status, resp.status, "HEAD {concrete}");
                assert!(head.body.is_empty());
            }
        }
    }
}

/// The HTTP layer answers before any route is chosen, so every operation can
/// be answered 414 (a long query string) or 431 (large headers); each must
/// document both, with the error body the server really sends.
#[test]
fn every_operation_documents_the_http_layer_refusals_it_can_get() {
    let server = Server::start_with(fast());
    let doc = document();
    let long_query = format!("?q={}", "a".repeat(5_000));
    let large_header = "h".repeat(9_000);
    for (path, item) in doc["paths"].as_object().unwrap() {
        let concrete = path.replace("{id}", "1").replace("{path}", "p");
        for method in OPERATIONS.iter().copied().filter(|m| item.get(*m).is_some()) {
            let upper = method.to_ascii_uppercase();
            let too_long = server.request(&upper, &format!("{concrete}{long_query}"), &[], b"");
            let too_large = server.request(&upper, &concrete, &[("x-padding", large_header.as_str())], b"");
            for (resp, status, code) in [(too_long, 414, "uri_too_long"), (too_large, 431, "headers_too_large")] {
                assert_eq!(resp.status, status, "{upper} {concrete}: {}", resp.text());
                assert_eq!(resp.json()["code"], code);
                let documented = item[method]["responses"].get(status.to_string());
                let documented = documented.unwrap_or_else(|| panic!("{upper} {path} does not document {status}"));
                let schema = &resolve(&doc, documented)["content"]["application/json"]["schema"];
                let constant = &resolve(&doc, schema)["properties"]["code"]["const"];
                assert_eq!(constant, code, "{upper} {path} {status} documents another code");
            }
        }
    }
}

#[test]
fn document_has_an_etag_cache_control_and_304() {
    let server = Server::start_with(fast());
    let first = server.get("/openapi.json");
    assert_eq!(first.status, 200);
    let etag = first.header("etag").expect("an ETag").to_string();
    assert!(etag.starts_with('"') && etag.ends_with('"') && etag.len() > 2, "{etag}");
    assert_eq!(first.header("cache-control"), Some("public, max-age=60"));

    for validator in [etag.clone(), format!("W/{etag}"), format!("\"other\", {etag}"), "*".to_string()] {
        let resp = server.request("GET", "/openapi.json", &[("If-None-Match", &validator)], b"");
        assert_eq!(resp.status, 304, "If-None-Match: {validator}");
        assert!(resp.body.is_empty() && resp.header("content-length").is_none(), "{validator}");
        assert_eq!(resp.header("etag"), Some(etag.as_str()));
        assert_eq!(resp.header("cache-control"), Some("public, max-age=60"));
    }
    let stale = server.request("GET", "/openapi.json", &[("If-None-Match", "\"0000000000000000\"")], b"");
    assert_eq!((stale.status, stale.body.len()), (200, first.body.len()));

    let head = server.request("HEAD", "/openapi.json", &[], b"");
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some(first.body.len().to_string().as_str()));
    assert_eq!(head.header("etag"), Some(etag.as_str()));
}

/// Every `$ref` resolves, every operation has an id and a response, and
/// every error response carries the one error body `{"code","message"}`.
#[test]
fn refs_resolve_and_every_error_is_the_error_body() {
    let doc = document();
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(!refs.is_empty());
    for reference in refs {
        let pointer = reference.strip_prefix('#').unwrap_or_else(|| panic!("non-local $ref {reference}"));
        assert!(doc.pointer(pointer).is_some(), "$ref {reference} resolves to nothing");
    }
    let error = "#/components/schemas/Error";
    let mut ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in OPERATIONS.iter().copied().filter(|m| item.get(*m).is_some()) {
            let op = &item[method];
            let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path}: no operationId"));
            assert!(ids.insert(id.to_string()), "operationId {id} twice");
            assert!(op.get("security").is_some(), "{method} {path}: no security requirement (empty for public)");
            let responses = op["responses"].as_object().expect("responses");
            assert!(responses.keys().any(|s| s.starts_with('2')), "{method} {path}: no success");
            for (status, response) in responses.iter().filter(|(s, _)| s.starts_with(['4', '5'])) {
                let schema = resolve(&doc, &resolve(&doc, response)["content"]["application/json"]["schema"]);
                let is_error = schema["allOf"].as_array().is_some_and(|all| all.iter().any(|s| s["$ref"] == error));
                assert!(is_error, "{method} {path} {status}: the error body is not {error}");
            }
        }
    }
}

fn collect_refs(value: &Value, refs: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                refs.push(r.clone());
            }
            map.values().for_each(|v| collect_refs(v, refs));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, refs)),
        _ => {}
    }
}
