//! The web pages against the real binary (issue 11, server side): `/` and
//! `/items/{id}` are HTML with a strong `ETag` and `Cache-Control`, a
//! matching `If-None-Match` is 304, an unknown item is 404, and both pages
//! change when an item changes (and only then). The page's behaviour in a
//! browser is `tests/browser/`.

mod common;

use common::sale::{Shop, assert_error, fast};
use common::{Response, Server};
use serde_json::json;

fn assert_html_page(resp: &Response) -> String {
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(resp.header("cache-control"), Some("no-cache"));
    let etag = resp.header("etag").expect("an ETag").to_string();
    assert!(etag.len() == 18 && etag.starts_with('"') && etag.ends_with('"') && !etag.starts_with("W/"), "{etag}");
    assert!(resp.text().starts_with("<!doctype html>"), "{}", resp.text());
    etag
}

/// 304 with no body for the page's own tag, 200 again for another.
fn check_revalidation(server: &Server, path: &str, etag: &str, length: usize) {
    let fresh = server.request("GET", path, &[("If-None-Match", etag)], b"");
    assert_eq!(fresh.status, 304, "{path}");
    assert!(fresh.body.is_empty() && fresh.header("content-length").is_none());
    assert_eq!(fresh.header("etag"), Some(etag));
    assert_eq!(fresh.header("cache-control"), Some("no-cache"));
    let stale = server.request("GET", path, &[("If-None-Match", "\"0000000000000000\"")], b"");
    assert_eq!((stale.status, stale.body.len()), (200, length), "{path}");
    let head = server.request("HEAD", path, &[], b"");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(head.header("content-length"), Some(length.to_string().as_str()));
    assert_eq!(head.header("etag"), Some(etag));
}

#[test]
fn home_page_is_html_with_an_etag_and_304() {
    let server = Server::start_with(fast());
    let resp = server.get("/");
    let etag = assert_html_page(&resp);
    assert!(resp.text().contains("Nothing is on sale yet"));
    check_revalidation(&server, "/", &etag, resp.body.len());
    let post = server.request("POST", "/", &[], b"");
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
}

#[test]
fn item_page_carries_the_item_and_the_client_salt() {
    let server = Server::start_with(fast().set("auth.client_salt", "pepper<&>"));
    let shop = Shop::new(&server);
    let now = common::sale::now_ms();
    let body = json!({
        "name": "Kettle <b>", "description": "Boils & pours", "price_cents": 1999, "stock": 3,
        "per_user_limit": 1, "start_ms": now + 60_000, "end_ms": now + 120_000,
    });
    assert_eq!(shop.admin_call("PUT", "/admin/items/5", &body).status, 200);
    let resp = server.get("/items/5");
    let etag = assert_html_page(&resp);
    let html = resp.text();
    assert!(html.contains("Kettle &lt;b&gt;") && !html.contains("Kettle <b>"), "the name is escaped");
    assert!(html.contains("Boils &amp; pours") && html.contains("19.99"));
    assert!(html.contains("data-item-id=\"5\""));
    assert!(html.contains(&format!("data-start-ms=\"{}\"", now + 60_000)));
    assert!(html.contains("data-client-salt=\"pepper&lt;&amp;&gt;\""), "the salt reaches the page");
    check_revalidation(&server, "/items/5", &etag, resp.body.len());

    let home = server.get("/");
    assert_html_page(&home);
    assert!(home.text().contains("href=\"/items/5\""));
}

#[test]
fn unknown_item_page_is_404() {
    let server = Server::start_with(fast());
    assert_error(&server.get("/items/9"), 404, "no_such_item");
    assert_error(&server.get("/items/x"), 404, "not_found");
    assert_error(&server.get("/items/"), 404, "not_found");
}

#[test]
fn pages_change_when_the_item_changes() {
    let server = Server::start_with(fast());
    let shop = Shop::new(&server);
    let home_before = assert_html_page(&server.get("/"));
    shop.put_item(1, 5, 1);
    let item_before = assert_html_page(&server.get("/items/1"));
    let home_listed = assert_html_page(&server.get("/"));
    assert_ne!(home_listed, home_before, "a new item changes the list page");

    // Served again unchanged: the same validator.
    assert_eq!(assert_html_page(&server.get("/items/1")), item_before);

    // A new name: both pages are rendered again, and the old tag is stale.
    let now = common::sale::now_ms();
    let renamed = json!({
        "name": "Renamed", "description": "", "price_cents": 100, "stock": 5,
        "per_user_limit": 1, "start_ms": now - 1000, "end_ms": now + 3_600_000,
    });
    assert_eq!(shop.admin_call("PUT", "/admin/items/1", &renamed).status, 200);
    let resp = server.get("/items/1");
    let item_after = assert_html_page(&resp);
    assert_ne!(item_after, item_before);
    assert!(resp.text().contains("Renamed"));
    let home_after = server.get("/");
    assert_ne!(assert_html_page(&home_after), home_listed);
    assert!(home_after.text().contains("Renamed"));
    let stale = server.request("GET", "/items/1", &[("If-None-Match", &item_before)], b"");
    assert_eq!(stale.status, 200, "the old tag no longer matches");

    // More stock: the page shows the total, so it changes too.
    let stock = shop.admin_call("POST", "/admin/items/1/stock", &json!({ "delta": 2 }));
    assert_eq!(stock.status, 200, "{}", stock.text());
    let restocked = server.get("/items/1");
    assert_ne!(assert_html_page(&restocked), item_after);
    assert!(restocked.text().contains("of 7"), "{}", restocked.text());
}

#[test]
fn pages_survive_a_restart_with_the_same_validators() {
    let server = Server::start_with(fast());
    let shop = Shop::new(&server);
    shop.put_item(3, 1, 1);
    let item = assert_html_page(&server.get("/items/3"));
    let home = assert_html_page(&server.get("/"));
    let dir = server.dir.clone();
    let options = server.options.clone();
    drop(shop);
    drop(server);
    // Rendered at start-up from the store: the same bytes, so a browser's
    // cached copy is still valid.
    let again = Server::start_in(dir, options);
    assert_eq!(assert_html_page(&again.get("/items/3")), item);
    assert_eq!(assert_html_page(&again.get("/")), home);
}
