//! The sale's front half over real sockets against the real binary (issue 4,
//! contract §3): users and sessions, the catalogue, administration, the
//! captcha and the hidden path, the order of checks, rate limits, metrics,
//! and a full worker pool. Restart persistence is in `restart.rs`.

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{Response, Server, ServerOptions};
use serde_json::{Value, json};

/// Cheap argon2 so that tests hash in microseconds; rate limits off unless a
/// test is about them.
fn fast() -> ServerOptions {
    ServerOptions::default()
        .set("auth.argon2_memory_kib", 64)
        .set("auth.argon2_iterations", 1)
        .set("limits.per_user_rps", 0)
        .set("limits.per_ip_rps", 0)
}

const PASSWORD: &str = "0123456789abcdef0123456789abcdef";
const HOUR_MS: u64 = 3_600_000;

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

fn admin_token(server: &Server) -> String {
    let path = server.dir.path().join("data/admin_token");
    let token = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let token = token.trim().to_string();
    // The line is on stderr, read by another thread: wait for it.
    let printed = format!("admin token: {token}");
    let seen = poll_until(Duration::from_secs(5), || server.stderr().contains(&printed).then_some(()));
    assert!(seen.is_some(), "{}", server.stderr());
    token
}

/// A JSON request with an optional Bearer token.
fn call(server: &Server, method: &str, path: &str, bearer: Option<&str>, body: &[u8]) -> Response {
    let auth = bearer.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(auth) = &auth {
        headers.push(("Authorization", auth.as_str()));
    }
    server.request(method, path, &headers, body)
}

fn call_json(server: &Server, method: &str, path: &str, bearer: Option<&str>, body: &Value) -> Response {
    call(server, method, path, bearer, body.to_string().as_bytes())
}

/// Asserts an error answer: status, `code`, a message, JSON.
#[track_caller]
fn assert_error(resp: &Response, status: u16, code: &str) {
    assert_eq!(resp.status, status, "{}", resp.text());
    let body = resp.json();
    assert_eq!(body["code"], code, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    assert_eq!(resp.header("content-type"), Some("application/json"));
}

fn register(server: &Server, username: &str) -> u64 {
    let resp = call_json(server, "POST", "/api/users", None, &json!({"username": username, "password": PASSWORD}));
    assert_eq!(resp.status, 201, "{}", resp.text());
    resp.json()["user_id"].as_u64().expect("user_id")
}

/// Registers and logs in: (user id, session token).
fn user(server: &Server, username: &str) -> (u64, String) {
    let id = register(server, username);
    (id, login(server, username))
}

fn login(server: &Server, username: &str) -> String {
    let resp = call_json(server, "POST", "/api/login", None, &json!({"username": username, "password": PASSWORD}));
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.json()["token"].as_str().expect("token").to_string()
}

fn item_body(start_ms: u64, end_ms: u64) -> Value {
    json!({
        "name": "Phone",
        "description": "A phone",
        "price_cents": 99_900,
        "stock": 10,
        "per_user_limit": 2,
        "start_ms": start_ms,
        "end_ms": end_ms,
    })
}

fn put_item(server: &Server, admin: &str, id: u64, start_ms: u64, end_ms: u64) -> Value {
    let resp = call_json(server, "PUT", &format!("/admin/items/{id}"), Some(admin), &item_body(start_ms, end_ms));
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.json()
}

/// An item on sale now.
fn active_item(server: &Server, admin: &str, id: u64) {
    let now = now_ms();
    put_item(server, admin, id, now - HOUR_MS, now + HOUR_MS);
}

fn fetch_captcha(server: &Server, token: &str, item: u64) -> Response {
    call(server, "GET", &format!("/api/items/{item}/captcha"), Some(token), b"")
}

/// Fetches a captcha and returns its answer through the admin hook.
fn captcha_answer(server: &Server, admin: &str, token: &str, user_id: u64, item: u64) -> String {
    let resp = fetch_captcha(server, token, item);
    assert_eq!(resp.status, 200, "{}", resp.text());
    peek_answer(server, admin, user_id, item)
}

fn peek_answer(server: &Server, admin: &str, user_id: u64, item: u64) -> String {
    let resp = call(server, "GET", &format!("/admin/items/{item}/captcha-answer?user_id={user_id}"), Some(admin), b"");
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.json()["answer"].as_str().expect("answer is a string").to_string()
}

fn post_path(server: &Server, token: &str, item: u64, answer: &str) -> Response {
    call_json(server, "POST", &format!("/api/items/{item}/path"), Some(token), &json!({ "captcha": answer }))
}

/// An answer that is surely wrong.
fn wrong(answer: &str) -> String {
    (answer.parse::<i64>().unwrap() + 1000).to_string()
}

/// Polls `probe` until it returns something or `timeout` passes.
fn poll_until<T>(timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---- Users and sessions ----

#[test]
fn registration_created_taken_and_invalid() {
    let server = Server::start_with(fast());
    let first = register(&server, "alice");
    let second = register(&server, "bob.b-2_");
    assert_ne!(first, second);

    let taken = call_json(&server, "POST", "/api/users", None, &json!({"username": "alice", "password": PASSWORD}));
    assert_error(&taken, 409, "username_taken");

    let bad_bodies: Vec<(&str, Vec<u8>)> = vec![
        ("2 chars", json!({"username": "ab", "password": PASSWORD}).to_string().into_bytes()),
        ("33 chars", json!({"username": "a".repeat(33), "password": PASSWORD}).to_string().into_bytes()),
        ("bad char", json!({"username": "al ice", "password": PASSWORD}).to_string().into_bytes()),
        ("bad char /", json!({"username": "al/ice", "password": PASSWORD}).to_string().into_bytes()),
        ("7-char password", json!({"username": "carol", "password": "1234567"}).to_string().into_bytes()),
        ("non-printable password", json!({"username": "carol", "password": "1234567\u{7}x"}).to_string().into_bytes()),
        ("129-char password", json!({"username": "carol", "password": "x".repeat(129)}).to_string().into_bytes()),
        ("missing password", json!({"username": "carol"}).to_string().into_bytes()),
        ("bad JSON", b"{\"username\": \"carol\", ".to_vec()),
        ("empty body", Vec::new()),
    ];
    for (what, body) in bad_bodies {
        let resp = call(&server, "POST", "/api/users", None, &body);
        assert_eq!(resp.status, 400, "{what}: {}", resp.text());
        assert_eq!(resp.json()["code"], "invalid_input", "{what}");
    }
    // Nothing of the refused attempts was created: "carol" is still free.
    register(&server, "carol");
    // The limits are inclusive.
    register(&server, "abc");
    register(&server, &"z".repeat(32));
}

#[test]
fn login_cookie_bearer_and_bad_credentials() {
    let server = Server::start_with(fast());
    let user_id = register(&server, "alice");
    let before = now_ms();
    let resp = call_json(&server, "POST", "/api/login", None, &json!({"username": "alice", "password": PASSWORD}));
    assert_eq!(resp.status, 200, "{}", resp.text());
    let body = resp.json();
    let token = body["token"].as_str().expect("token").to_string();
    assert_eq!(body["user_id"], user_id);
    let expires = body["expires_ms"].as_u64().expect("expires_ms");
    assert!(expires >= before + 1_800_000 && expires <= now_ms() + 1_800_000, "{body}");
    assert_eq!(resp.header("set-cookie"), Some(format!("session={token}; HttpOnly; SameSite=Lax; Path=/").as_str()));

    let me_bearer = call(&server, "GET", "/api/me", Some(&token), b"");
    assert_eq!(me_bearer.status, 200, "{}", me_bearer.text());
    assert_eq!(me_bearer.json(), json!({"user_id": user_id, "username": "alice"}));
    let cookie = format!("theme=dark; session={token}");
    let me_cookie = server.request("GET", "/api/me", &[("Cookie", &cookie)], b"");
    assert_eq!(me_cookie.status, 200, "{}", me_cookie.text());
    assert_eq!(me_cookie.json()["username"], "alice");

    let wrong =
        call_json(&server, "POST", "/api/login", None, &json!({"username": "alice", "password": "x".repeat(32)}));
    assert_error(&wrong, 401, "bad_credentials");
    assert!(wrong.header("set-cookie").is_none());
    let unknown = call_json(&server, "POST", "/api/login", None, &json!({"username": "nobody", "password": PASSWORD}));
    assert_error(&unknown, 401, "bad_credentials");
    let bad = call(&server, "POST", "/api/login", None, b"not json");
    assert_error(&bad, 400, "invalid_input");
}

#[test]
fn me_needs_a_valid_session() {
    let server = Server::start_with(fast());
    assert_error(&server.get("/api/me"), 401, "unauthenticated");
    let forged = "A".repeat(43);
    assert_error(&call(&server, "GET", "/api/me", Some(&forged), b""), 401, "unauthenticated");
    assert_error(&call(&server, "GET", "/api/me", Some("short"), b""), 401, "unauthenticated");
    let cookie = format!("session={forged}");
    assert_error(&server.request("GET", "/api/me", &[("Cookie", &cookie)], b""), 401, "unauthenticated");
}

#[test]
fn logout_is_effective_at_once_on_every_loop() {
    let server = Server::start_with(fast().set("server.threads", 2));
    let (_, token) = user(&server, "alice");
    let (_, other) = user(&server, "bob");
    // Warm both loops' session caches: fresh connections spread over the loops.
    for _ in 0..12 {
        assert_eq!(call(&server, "GET", "/api/me", Some(&token), b"").status, 200);
    }
    // Both loops took connections, so both may hold the session in their caches.
    let metrics = server.get("/metrics").text();
    for lp in ["0", "1"] {
        assert!(sample(&metrics, &format!("seckill_loop_accepted_total{{loop=\"{lp}\"}}")) > 0.0, "{metrics}");
    }
    let out = call(&server, "POST", "/api/logout", Some(&token), b"");
    assert_eq!(out.status, 204, "{}", out.text());
    assert!(out.body.is_empty());
    assert!(out.header("content-length").is_none() && out.header("content-type").is_none(), "{out:?}");
    let cleared = out.header("set-cookie").expect("the cookie is cleared");
    assert!(cleared.starts_with("session=;") && cleared.contains("Max-Age=0"), "{cleared}");
    for i in 0..12 {
        let resp = call(&server, "GET", "/api/me", Some(&token), b"");
        assert_error(&resp, 401, "unauthenticated");
        let cookie = format!("session={token}");
        let resp = server.request("GET", "/api/me", &[("Cookie", &cookie)], b"");
        assert_eq!(resp.status, 401, "attempt {i} by cookie");
    }
    let again = call(&server, "POST", "/api/logout", Some(&token), b"");
    assert_error(&again, 401, "unauthenticated");
    assert_error(&call(&server, "POST", "/api/logout", None, b""), 401, "unauthenticated");
    // Another user's session is untouched.
    assert_eq!(call(&server, "GET", "/api/me", Some(&other), b"").status, 200);
    // A new login works again.
    let fresh = login(&server, "alice");
    assert_eq!(call(&server, "GET", "/api/me", Some(&fresh), b"").status, 200);
}

// ---- Catalogue and admin items ----

const ITEM_FIELDS: [&str; 11] = [
    "id",
    "name",
    "description",
    "price_cents",
    "stock_total",
    "stock_left",
    "per_user_limit",
    "start_ms",
    "end_ms",
    "state",
    "server_time_ms",
];

#[track_caller]
fn assert_item_fields(item: &Value) {
    let mut keys: Vec<&str> = item.as_object().expect("ITEM is an object").keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut expected = ITEM_FIELDS.to_vec();
    expected.sort_unstable();
    assert_eq!(keys, expected, "{item}");
}

#[test]
fn catalogue_items_states_and_404() {
    let server = Server::start_with(fast());
    let admin = admin_token(&server);
    let now = now_ms();
    let created = put_item(&server, &admin, 1, now - HOUR_MS, now + HOUR_MS);
    assert_item_fields(&created);
    assert_eq!(created["state"], "active");
    put_item(&server, &admin, 2, now + HOUR_MS, now + 2 * HOUR_MS);
    put_item(&server, &admin, 3, now - 2 * HOUR_MS, now - HOUR_MS);

    let before = now_ms();
    let list = server.get("/api/items");
    assert_eq!(list.status, 200, "{}", list.text());
    let list = list.json();
    let server_time = list["server_time_ms"].as_u64().expect("server_time_ms");
    assert!(server_time >= before && server_time <= now_ms(), "{list}");
    let items = list["items"].as_array().expect("items");
    assert_eq!(items.len(), 3, "{list}");
    let states: Vec<(u64, &str)> =
        items.iter().map(|i| (i["id"].as_u64().unwrap(), i["state"].as_str().unwrap())).collect();
    assert!(states.contains(&(1, "active")) && states.contains(&(2, "upcoming")) && states.contains(&(3, "ended")));
    for item in items {
        assert_item_fields(item);
    }

    let one = server.get("/api/items/2");
    assert_eq!(one.status, 200, "{}", one.text());
    let one = one.json();
    assert_item_fields(&one);
    let expected = json!({
        "id": 2, "name": "Phone", "description": "A phone", "price_cents": 99_900, "stock_total": 10,
        "stock_left": 10, "per_user_limit": 2, "start_ms": now + HOUR_MS, "end_ms": now + 2 * HOUR_MS,
        "state": "upcoming", "server_time_ms": one["server_time_ms"],
    });
    assert_eq!(one, expected);
    assert_error(&server.get("/api/items/99"), 404, "no_such_item");
}

#[test]
fn admin_put_item_creates_replaces_and_validates() {
    let server = Server::start_with(fast());
    let admin = admin_token(&server);
    let now = now_ms();
    put_item(&server, &admin, 5, now - HOUR_MS, now + HOUR_MS);
    let mut replacement = item_body(now + HOUR_MS, now + 2 * HOUR_MS);
    replacement["name"] = json!("Phone 2");
    replacement["stock"] = json!(3);
    let replaced = call_json(&server, "PUT", "/admin/items/5", Some(&admin), &replacement);
    assert_eq!(replaced.status, 200, "{}", replaced.text());
    let replaced = replaced.json();
    assert_item_fields(&replaced);
    assert_eq!((replaced["id"].as_u64(), replaced["name"].as_str()), (Some(5), Some("Phone 2")));
    assert_eq!((replaced["stock_total"].as_u64(), replaced["stock_left"].as_u64()), (Some(3), Some(3)));
    assert_eq!(replaced["state"], "upcoming");
    let listed = server.get("/api/items/5").json();
    assert_eq!((listed["name"].as_str(), listed["stock_total"].as_u64()), (Some("Phone 2"), Some(3)));
    assert_eq!(server.get("/api/items").json()["items"].as_array().map(Vec::len), Some(1));

    let mut cases = Vec::new();
    cases.push(("end == start", item_body(now, now)));
    cases.push(("end < start", item_body(now, now - 1)));
    let mut zero_limit = item_body(now, now + HOUR_MS);
    zero_limit["per_user_limit"] = json!(0);
    cases.push(("per_user_limit 0", zero_limit));
    for field in ["name", "price_cents", "stock", "per_user_limit", "start_ms", "end_ms"] {
        let mut missing = item_body(now, now + HOUR_MS);
        missing.as_object_mut().unwrap().remove(field);
        cases.push((field, missing));
    }
    let mut negative = item_body(now, now + HOUR_MS);
    negative["stock"] = json!(-1);
    cases.push(("negative stock", negative));
    for (what, body) in cases {
        let resp = call_json(&server, "PUT", "/admin/items/6", Some(&admin), &body);
        assert_eq!(resp.status, 400, "{what}: {}", resp.text());
        assert_eq!(resp.json()["code"], "invalid_input", "{what}");
    }
    assert_error(&call(&server, "PUT", "/admin/items/6", Some(&admin), b"{"), 400, "invalid_input");
    assert_error(&server.get("/api/items/6"), 404, "no_such_item");
}

#[test]
fn admin_endpoints_refuse_without_the_admin_token() {
    let server = Server::start_with(fast());
    let admin = admin_token(&server);
    active_item(&server, &admin, 1);
    let (user_id, user_token) = user(&server, "alice");
    let wrong_admin = format!("{}x", &admin[..admin.len() - 1]);
    let bulk = json!({"prefix": "lt", "count": 2, "password": PASSWORD});
    let requests: [(&str, String, Vec<u8>); 4] = [
        ("PUT", "/admin/items/1".into(), item_body(0, 1).to_string().into_bytes()),
        ("GET", "/admin/items/1/stats".into(), Vec::new()),
        ("POST", "/admin/users/bulk".into(), bulk.to_string().into_bytes()),
        ("GET", format!("/admin/items/1/captcha-answer?user_id={user_id}"), Vec::new()),
    ];
    for (method, path, body) in &requests {
        for bearer in [None, Some(user_token.as_str()), Some(wrong_admin.as_str())] {
            let resp = call(&server, method, path, bearer, body);
            assert_eq!(resp.status, 401, "{method} {path} with {bearer:?}: {}", resp.text());
            assert_eq!(resp.json()["code"], "unauthenticated");
        }
        // The admin token as a cookie is not the admin's Bearer.
        let cookie = format!("session={admin}");
        let resp = server.request(method, path, &[("Cookie", &cookie)], body);
        assert_eq!(resp.status, 401, "{method} {path} by cookie");
    }
    // Nothing changed: the item is intact and no bulk user exists.
    assert_eq!(server.get("/api/items/1").json()["end_ms"].as_u64().map(|e| e > 1), Some(true));
    let resp = call_json(&server, "POST", "/api/login", None, &json!({"username": "lt0", "password": PASSWORD}));
    assert_error(&resp, 401, "bad_credentials");
}

#[test]
fn admin_stats_zeros_and_404() {
    let server = Server::start_with(fast());
    let admin = admin_token(&server);
    active_item(&server, &admin, 4);
    let stats = call(&server, "GET", "/admin/items/4/stats", Some(&admin), b"");
    assert_eq!(stats.status, 200, "{}", stats.text());
    assert_eq!(
        stats.json(),
        json!({"item_id": 4, "stock_total": 10, "stock_left": 10, "pending_payment": 0, "paid": 0,
               "cancelled": 0, "expired": 0})
    );
    assert_error(&call(&server, "GET", "/admin/items/5/stats", Some(&admin), b""), 404, "no_such_item");
    let beyond = format!("/admin/items/{}/stats", u64::MAX);
    assert_error(&call(&server, "GET", &beyond, Some(&admin), b""), 404, "no_such_item");
}

#[test]
fn admin_bulk_users_with_sessions_and_all_or_nothing() {
    let server = Server::start_with(fast());
    let admin = admin_token(&server);
    let body = json!({"prefix": "bulk", "count": 3, "password": PASSWORD, "sessions": true});
    let resp = call_json(&server, "POST", "/admin/users/bulk", Some(&admin), &body);
    assert_eq!(resp.status, 200, "{}", resp.text());
    let resp = resp.json();
    assert_eq!(resp["created"], 3);
    let tokens: Vec<&str> = resp["tokens"].as_array().expect("tokens").iter().map(|t| t.as_str().unwrap()).collect();
    assert_eq!(tokens.len(), 3);
    for (i, token) in tokens.iter().enumerate() {
        let me = call(&server, "GET", "/api/me", Some(token), b"");
        assert_eq!(me.status, 200, "{}", me.text());
        assert_eq!(me.json()["username"], format!("bulk{i}"), "tokens are in user order");
    }
    // Bulk users log in with the shared password.
    login(&server, "bulk2");

    // Without sessions: no tokens.
    let plain = call_json(
        &server,
        "POST",
        "/admin/users/bulk",
        Some(&admin),
        &json!({"prefix": "plain", "count": 1, "password": PASSWORD}),
    );
    assert_eq!(plain.status, 200, "{}", plain.text());
    assert_eq!(plain.json()["created"], 1);
    assert!(plain.json().get("tokens").is_none(), "{}", plain.text());

    // "bulk1" exists: refused, and "bulk3", which did not, is not created either.
    let clash = json!({"prefix": "bulk", "count": 4, "password": PASSWORD, "sessions": true});
    assert_error(&call_json(&server, "POST", "/admin/users/bulk", Some(&admin), &clash), 409, "username_taken");
    let resp = call_json(&server, "POST", "/api/login", None, &json!({"username": "bulk3", "password": PASSWORD}));
    assert_error(&resp, 401, "bad_credentials");
    register(&server, "bulk3");

    for bad in [
        json!({"prefix": "x", "count": 0, "password": PASSWORD}),
        json!({"prefix": "x y", "count": 2, "password": PASSWORD}),
        json!({"prefix": "x", "count": 2, "password": "short"}),
        json!({"prefix": "x", "password": PASSWORD}),
    ] {
        let resp = call_json(&server, "POST", "/admin/users/bulk", Some(&admin), &bad);
        assert_error(&resp, 400, "invalid_input");
    }
}

#[test]
fn admin_bulk_ten_thousand_users_with_sessions() {
    let server = Server::start_with(fast());
    let admin = admin_token(&server);
    let body = json!({"prefix": "load", "count": 10_000, "password": PASSWORD, "sessions": true});
    let started = Instant::now();
    let resp = call_json(&server, "POST", "/admin/users/bulk", Some(&admin), &body);
    let took = started.elapsed();
    assert_eq!(resp.status, 200, "{}", resp.text());
    println!("bulk: 10,000 users with sessions in {:.3} s", took.as_secs_f64());
    let resp = resp.json();
    assert_eq!(resp["created"], 10_000);
    let tokens = resp["tokens"].as_array().expect("tokens");
    assert_eq!(tokens.len(), 10_000);
    for i in [0, 4_999, 9_999] {
        let me = call(&server, "GET", "/api/me", tokens[i].as_str(), b"");
        assert_eq!(me.json()["username"], format!("load{i}"));
    }
}

// ---- Captcha ----

#[test]
fn captcha_png_no_store_and_refusals() {
    let server = Server::start_with(fast());
    let admin = admin_token(&server);
    active_item(&server, &admin, 1);
    let (user_id, token) = user(&server, "alice");

    let resp = fetch_captcha(&server, &token, 1);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("content-type"), Some("image/png"));
    assert_eq!(resp.header("cache-control"), Some("no-store"));
    assert!(resp.body.starts_with(b"\x89PNG\r\n\x1a\n"), "PNG magic");
    assert!(resp.body.len() > 100);
    let answer = peek_answer(&server, &admin, user_id, 1);
    answer.parse::<i64>().expect("numeric answer");
    // Peeking leaves it in place.
    assert_eq!(peek_answer(&server, &admin, user_id, 1), answer);

    assert_error(&call(&server, "GET", "/api/items/1/captcha", None, b""), 401, "unauthenticated");
    assert_error(&fetch_captcha(&server, &token, 2), 404, "no_such_item");
    // A user with no outstanding captcha, and an item with none.
    let none =
        call(&server, "GET", &format!("/admin/items/1/captcha-answer?user_id={}", user_id + 1), Some(&admin), b"");
    assert_eq!(none.status, 404, "{}", none.text());
    let none = call(&server, "GET", &format!("/admin/items/2/captcha-answer?user_id={user_id}"), Some(&admin), b"");
    assert_eq!(none.status, 404, "{}", none.text());

    // A captcha can be fetched for an item not on sale too.
    let now = now_ms();
    put_item(&server, &admin, 3, now + HOUR_MS, now + 2 * HOUR_MS);
    assert_eq!(fetch_captcha(&server, &token, 3).status, 200);
}

#[test]
fn captcha_is_replaced_and_single_use() {
    let server = Server::start_with(fast());
    let admin = admin_token(&server);
    active_item(&server, &admin, 1);
    let (user_id, token) = user(&server, "alice");

    // A second fetch replaces the first: the first answer no longer works.
    // (Answers repeat now and then; fetch again until they differ.)
    let mut first = captcha_answer(&server, &admin, &token, user_id, 1);
    let mut second = captcha_answer(&server, &admin, &token, user_id, 1);
    for _ in 0..50 {
        if first != second {
            break;
        }
        first = second;
        second = captcha_answer(&server, &admin, &token, user_id, 1);
    }
    assert_ne!(first, second, "50 captchas in a row had the same answer");
    assert_error(&post_path(&server, &token, 1, &first), 403, "captcha_wrong");
    // That wrong answer consumed the second captcha: its right answer is now too late.
    assert_error(&post_path(&server, &token, 1, &second), 403, "captcha_expired");
    let gone = call(&server, "GET", &format!("/admin/items/1/captcha-answer?user_id={user_id}"), Some(&admin), b"");
    assert_eq!(gone.status, 404, "{}", gone.text());

    // A right answer consumes it too.
    let answer = captcha_answer(&server, &admin, &token, user_id, 1);
    assert_eq!(post_path(&server, &token, 1, &answer).status, 200);
    assert_error(&post_path(&server, &token, 1, &answer), 403, "captcha_expired");
}

// ---- Hidden path ----

#[test]
fn path_minted_after_a_right_answer() {
    let path_ttl_ms = 60_000;
    let server = Server::start_with(fast().set("sale.path_ttl_ms", path_ttl_ms));
    let admin = admin_token(&server);
    active_item(&server, &admin, 1);
    let (user_id, token) = user(&server, "alice");
    let answer = captcha_answer(&server, &admin, &token, user_id, 1);
    let before = now_ms();
    let resp = post_path(&server, &token, 1, &answer);
    let after = now_ms();
    assert_eq!(resp.status, 200, "{}", resp.text());
    let body = resp.json();
    let path = body["path"].as_str().expect("path");
    assert_eq!(path.len(), 32, "{body}");
    assert!(path.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{body}");
    let expires = body["expires_ms"].as_u64().expect("expires_ms");
    assert!(expires >= before + path_ttl_ms && expires <= after + path_ttl_ms, "{body}");

    // The answer may travel as a number too.
    let answer = captcha_answer(&server, &admin, &token, user_id, 1);
    let numeric = format!("{{\"captcha\":{answer}}}");
    let resp = call(&server, "POST", "/api/items/1/path", Some(&token), numeric.as_bytes());
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json()["path"].as_str().map(str::len), Some(32));
}

#[test]
fn path_checks_the_window_before_the_captcha() {
    let server = Server::start_with(fast());
    let admin = admin_token(&server);
    let now = now_ms();
    put_item(&server, &admin, 1, now + HOUR_MS, now + 2 * HOUR_MS);
    put_item(&server, &admin, 2, now - 2 * HOUR_MS, now - HOUR_MS);
    let (user_id, token) = user(&server, "alice");

    let answer = captcha_answer(&server, &admin, &token, user_id, 1);
    assert_error(&post_path(&server, &token, 1, &answer), 403, "not_started");
    // The refusal did not consume the captcha.
    assert_eq!(peek_answer(&server, &admin, user_id, 1), answer);
    let answer = captcha_answer(&server, &admin, &token, user_id, 2);
    assert_error(&post_path(&server, &token, 2, &answer), 403, "ended");
    assert_eq!(peek_answer(&server, &admin, user_id, 2), answer);
    // Without any captcha, the window still answers first.
    let (_, other) = user(&server, "bob");
    assert_error(&post_path(&server, &other, 1, "1"), 403, "not_started");
    assert_error(&post_path(&server, &other, 2, "1"), 403, "ended");

    // Once the sale opens, the captcha kept from before works.
    let answer = peek_answer(&server, &admin, user_id, 1);
    let now = now_ms();
    put_item(&server, &admin, 1, now - 1, now + HOUR_MS);
    assert_eq!(post_path(&server, &token, 1, &answer).status, 200);
}

#[test]
fn path_refuses_wrong_and_expired_captchas() {
    let server = Server::start_with(fast().set("captcha.ttl_ms", 200));
    let admin = admin_token(&server);
    active_item(&server, &admin, 1);
    let (user_id, token) = user(&server, "alice");

    let answer = captcha_answer(&server, &admin, &token, user_id, 1);
    assert_error(&post_path(&server, &token, 1, &wrong(&answer)), 403, "captcha_wrong");
    // Never fetched.
    let (_, other) = user(&server, "bob");
    assert_error(&post_path(&server, &other, 1, "3"), 403, "captcha_expired");
    // Not a number at all is a wrong answer, and consumes.
    captcha_answer(&server, &admin, &token, user_id, 1);
    assert_error(&post_path(&server, &token, 1, "seven"), 403, "captcha_wrong");

    // Expired: the answer was right but came after captcha.ttl_ms.
    let answer = captcha_answer(&server, &admin, &token, user_id, 1);
    std::thread::sleep(Duration::from_millis(300));
    let hook = call(&server, "GET", &format!("/admin/items/1/captcha-answer?user_id={user_id}"), Some(&admin), b"");
    assert_eq!(hook.status, 404, "an expired captcha is not outstanding: {}", hook.text());
    assert_error(&post_path(&server, &token, 1, &answer), 403, "captcha_expired");
}

#[test]
fn check_order_of_the_sale_requests() {
    let server = Server::start_with(fast().set("limits.per_user_rps", 1).set("limits.per_user_burst", 1));
    let admin = admin_token(&server);
    let now = now_ms();
    put_item(&server, &admin, 1, now + HOUR_MS, now + 2 * HOUR_MS);

    // Session first: 401 whatever else is wrong.
    assert_error(&call(&server, "POST", "/api/items/999/path", None, b"garbage"), 401, "unauthenticated");
    assert_error(&call(&server, "GET", "/api/items/999/captcha", None, b""), 401, "unauthenticated");

    // Each user below has one request per second.
    let (_, a) = user(&server, "alice");
    assert_error(&call(&server, "POST", "/api/items/999/path", Some(&a), b"garbage"), 400, "invalid_input");
    // Rate limit before body and item.
    let limited = call(&server, "POST", "/api/items/999/path", Some(&a), b"garbage");
    assert_error(&limited, 429, "rate_limited");
    let retry: u64 = limited.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!(retry >= 1, "{retry}");
    assert_error(&fetch_captcha(&server, &a, 999), 429, "rate_limited");

    // Body before item: bad body on a missing item is 400.
    let (_, b) = user(&server, "bob");
    assert_error(&call(&server, "POST", "/api/items/999/path", Some(&b), b"{}"), 400, "invalid_input");
    // Item before window: a good body on a missing item is 404.
    let (_, c) = user(&server, "carol");
    assert_error(&post_path(&server, &c, 999, "1"), 404, "no_such_item");
    // Body before window: bad body on an item not on sale is 400.
    let (_, d) = user(&server, "dave");
    assert_error(&call(&server, "POST", "/api/items/1/path", Some(&d), b"{\"answer\":1}"), 400, "invalid_input");
    // Window before captcha: good body, no captcha, item not on sale.
    let (_, e) = user(&server, "erin");
    assert_error(&post_path(&server, &e, 1, "1"), 403, "not_started");
    // Captcha: item before anything else but session and limits.
    let (_, f) = user(&server, "frank");
    assert_error(&fetch_captcha(&server, &f, 999), 404, "no_such_item");
}

// ---- Rate limits ----

#[test]
fn per_user_limit_answers_429_with_retry_after() {
    let server = Server::start_with(fast().set("limits.per_user_rps", 1).set("limits.per_user_burst", 2));
    let admin = admin_token(&server);
    active_item(&server, &admin, 1);
    let (_, alice) = user(&server, "alice");
    let (_, bob) = user(&server, "bob");
    assert_eq!(fetch_captcha(&server, &alice, 1).status, 200);
    assert_eq!(fetch_captcha(&server, &alice, 1).status, 200);
    let limited = fetch_captcha(&server, &alice, 1);
    assert_error(&limited, 429, "rate_limited");
    let retry: u64 = limited.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    assert_error(&post_path(&server, &alice, 1, "1"), 429, "rate_limited");
    // Per user: another user is not limited.
    assert_eq!(fetch_captcha(&server, &bob, 1).status, 200);
    // Non-sale requests of the limited user are not limited.
    assert_eq!(call(&server, "GET", "/api/me", Some(&alice), b"").status, 200);
    // The bucket refills at the configured rate.
    let refilled =
        poll_until(Duration::from_secs(5), || (fetch_captcha(&server, &alice, 1).status == 200).then_some(()));
    assert!(refilled.is_some(), "the user's bucket never refilled");
}

fn login_attempt(server: &Server, xff: Option<&str>) -> Response {
    let body = json!({"username": "nobody", "password": PASSWORD}).to_string();
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(xff) = xff {
        headers.push(("X-Forwarded-For", xff));
    }
    server.request("POST", "/api/login", &headers, body.as_bytes())
}

#[test]
fn per_address_limit_on_login() {
    let server = Server::start_with(fast().set("limits.per_ip_rps", 1).set("limits.per_ip_burst", 2));
    assert_error(&login_attempt(&server, None), 401, "bad_credentials");
    assert_error(&login_attempt(&server, None), 401, "bad_credentials");
    let limited = login_attempt(&server, None);
    assert_error(&limited, 429, "rate_limited");
    let retry: u64 = limited.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!(retry >= 1, "{retry}");
    // Without trusted proxies X-Forwarded-For is ignored: same address, same bucket.
    assert_error(&login_attempt(&server, Some("198.51.100.7")), 429, "rate_limited");
}

#[test]
fn forwarded_for_is_believed_only_from_trusted_proxies() {
    let trusted = Server::start_with(
        fast().set("limits.per_ip_rps", 1).set("limits.per_ip_burst", 1).set("server.trusted_proxies", "127.0.0.1/32"),
    );
    assert_error(&login_attempt(&trusted, Some("198.51.100.1")), 401, "bad_credentials");
    assert_error(&login_attempt(&trusted, Some("198.51.100.2")), 401, "bad_credentials");
    assert_error(&login_attempt(&trusted, None), 401, "bad_credentials");
    assert_error(&login_attempt(&trusted, Some("198.51.100.1")), 429, "rate_limited");
    assert_error(&login_attempt(&trusted, Some("198.51.100.2")), 429, "rate_limited");

    let untrusted = Server::start_with(fast().set("limits.per_ip_rps", 1).set("limits.per_ip_burst", 1));
    assert_error(&login_attempt(&untrusted, Some("198.51.100.1")), 401, "bad_credentials");
    assert_error(&login_attempt(&untrusted, Some("198.51.100.2")), 429, "rate_limited");
}

// ---- Metrics and overload ----

/// The value of the sample line that starts with `series ` in `text`.
fn sample(text: &str, series: &str) -> f64 {
    let prefix = format!("{series} ");
    let line = text.lines().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("no {series} in\n{text}"));
    line[prefix.len()..].trim().parse().unwrap_or_else(|e| panic!("{line}: {e}"))
}

#[test]
fn metrics_count_sessions_logins_captchas_and_limits() {
    let server = Server::start_with(fast().set("limits.per_user_rps", 1).set("limits.per_user_burst", 1));
    let admin = admin_token(&server);
    active_item(&server, &admin, 1);
    let (_, alice) = user(&server, "alice");
    let (_, bob) = user(&server, "bob");
    assert_error(
        &call_json(&server, "POST", "/api/login", None, &json!({"username": "alice", "password": "wrongwrong"})),
        401,
        "bad_credentials",
    );
    assert_eq!(fetch_captcha(&server, &alice, 1).status, 200);
    assert_error(&fetch_captcha(&server, &alice, 1), 429, "rate_limited");
    assert_eq!(call(&server, "POST", "/api/logout", Some(&bob), b"").status, 204);

    let text = server.get("/metrics").text();
    assert_eq!(sample(&text, "seckill_logins_total{result=\"ok\"}"), 2.0);
    assert_eq!(sample(&text, "seckill_logins_total{result=\"bad_credentials\"}"), 1.0);
    assert_eq!(sample(&text, "seckill_sessions"), 1.0, "alice's; bob logged out");
    assert_eq!(sample(&text, "seckill_captchas_issued_total"), 1.0);
    assert_eq!(sample(&text, "seckill_rate_limited_total{limit=\"user\"}"), 1.0);
    assert_eq!(sample(&text, "seckill_rate_limited_total{limit=\"ip\"}"), 0.0);
}

#[test]
fn full_worker_pool_answers_503_overloaded() {
    let server = Server::start_with(
        ServerOptions::default()
            .set("auth.argon2_memory_kib", 65_536)
            .set("auth.hash_workers", 1)
            .set("auth.hash_queue_max", 1)
            .set("limits.per_ip_rps", 0),
    );
    // All requests are on the wire before the first hash (tens of ms) ends.
    let mut conns: Vec<_> = (0..6).map(|_| server.connect()).collect();
    for (i, conn) in conns.iter_mut().enumerate() {
        let body = json!({"username": format!("user{i}"), "password": PASSWORD}).to_string();
        conn.send_request("POST", "/api/users", &[("Content-Type", "application/json")], body.as_bytes());
    }
    let answers: Vec<Response> = conns.iter_mut().map(|c| c.read_response(false)).collect();
    let created = answers.iter().filter(|r| r.status == 201).count();
    let refused: Vec<&Response> = answers.iter().filter(|r| r.status == 503).collect();
    assert!(created >= 1, "{answers:?}");
    assert!(!refused.is_empty(), "{answers:?}");
    assert_eq!(created + refused.len(), answers.len(), "{answers:?}");
    for r in refused {
        assert_error(r, 503, "overloaded");
        assert!(r.header("retry-after").is_some_and(|v| v.parse::<u64>().is_ok_and(|s| s >= 1)), "{r:?}");
    }
    let text = server.get("/metrics").text();
    assert!(sample(&text, "seckill_worker_pool_full_total") >= 1.0);
}

#[test]
fn a_hashing_storm_does_not_block_other_work() {
    let server = Server::start_with(
        ServerOptions::default()
            .set("auth.argon2_memory_kib", 65_536)
            .set("auth.hash_workers", 1)
            .set("auth.hash_queue_max", 2)
            .set("limits.per_ip_rps", 0),
    );
    let (_, token) = user(&server, "alice");
    // Fill the hashing pool with registrations, then ask for general work
    // while they hash: it has its own workers and answers at once.
    let mut storm: Vec<_> = (0..6).map(|_| server.connect()).collect();
    for (i, conn) in storm.iter_mut().enumerate() {
        let body = json!({"username": format!("storm{i}"), "password": PASSWORD}).to_string();
        conn.send_request("POST", "/api/users", &[("Content-Type", "application/json")], body.as_bytes());
    }
    let me = call(&server, "GET", "/api/me", Some(&token), b"");
    assert_eq!(me.status, 200, "{}", me.text());
    let answers: Vec<u16> = storm.iter_mut().map(|c| c.read_response(false).status).collect();
    assert!(answers.contains(&503), "the storm filled the hashing pool: {answers:?}");
    let text = server.get("/metrics").text();
    assert!(text.contains("seckill_worker_jobs{pool=\"hash\"}"), "{text}");
}

// ---- Malformed requests found by these tests ----

#[test]
fn bodies_must_be_json_objects() {
    let server = Server::start_with(fast());
    let admin = admin_token(&server);
    active_item(&server, &admin, 1);
    let (user_id, token) = user(&server, "alice");
    // serde maps an array onto a struct's fields in order; no client means that.
    let array = json!(["bobby", PASSWORD]).to_string();
    assert_error(&call(&server, "POST", "/api/users", None, array.as_bytes()), 400, "invalid_input");
    assert_error(&call(&server, "POST", "/api/login", None, array.as_bytes()), 400, "invalid_input");
    let resp = call_json(&server, "POST", "/api/login", None, &json!({"username": "bobby", "password": PASSWORD}));
    assert_error(&resp, 401, "bad_credentials");
    let answer = captcha_answer(&server, &admin, &token, user_id, 1);
    let array = json!([answer]).to_string();
    assert_error(&call(&server, "POST", "/api/items/1/path", Some(&token), array.as_bytes()), 400, "invalid_input");
    assert_eq!(peek_answer(&server, &admin, user_id, 1), answer, "a refused body does not consume the captcha");
    assert_error(&call(&server, "POST", "/api/users", None, b"  \r\n "), 400, "invalid_input");
}

#[test]
fn a_captcha_field_of_another_type_is_invalid_input() {
    let server = Server::start_with(fast());
    let admin = admin_token(&server);
    active_item(&server, &admin, 1);
    let (user_id, token) = user(&server, "alice");
    let answer = captcha_answer(&server, &admin, &token, user_id, 1);
    for body in [r#"{"captcha":true}"#, r#"{"captcha":null}"#, r#"{"captcha":{}}"#, r#"{"captcha":["1"]}"#] {
        let resp = call(&server, "POST", "/api/items/1/path", Some(&token), body.as_bytes());
        assert_eq!(resp.status, 400, "{body}: {}", resp.text());
        assert_eq!(resp.json()["code"], "invalid_input", "{body}");
    }
    // Body errors come before the captcha: it is still outstanding.
    assert_eq!(peek_answer(&server, &admin, user_id, 1), answer);
    assert_eq!(post_path(&server, &token, 1, &answer).status, 200);
}

#[test]
fn the_bearer_scheme_is_case_insensitive() {
    let server = Server::start_with(fast());
    let admin = admin_token(&server);
    let (user_id, token) = user(&server, "alice");
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let auth = format!("{scheme} {token}");
        let me = server.request("GET", "/api/me", &[("Authorization", &auth)], b"");
        assert_eq!(me.status, 200, "{scheme}: {}", me.text());
        assert_eq!(me.json()["user_id"], user_id);
        let auth = format!("{scheme} {admin}");
        let stats = server.request("GET", "/admin/items/1/stats", &[("Authorization", &auth)], b"");
        assert_error(&stats, 404, "no_such_item");
    }
    for bad in [format!("Bearer{token}"), format!("Basic {token}"), format!("Bearer x{token}")] {
        let me = server.request("GET", "/api/me", &[("Authorization", &bad)], b"");
        assert_error(&me, 401, "unauthenticated");
    }
}

// ---- Sessions over time, and answers from workers ----

#[test]
fn sessions_slide_across_loops_then_expire() {
    let ttl_ms = 3_000;
    let server = Server::start_with(
        fast().set("server.threads", 2).set("auth.session_ttl_ms", ttl_ms).set("auth.session_touch_interval_ms", 200),
    );
    let (_, token) = user(&server, "alice");
    // Used every 300 ms for longer than the TTL, on fresh connections spread
    // over both loops: the expiry slides on every loop.
    let until = Instant::now() + Duration::from_millis(ttl_ms + 1_500);
    while Instant::now() < until {
        let me = call(&server, "GET", "/api/me", Some(&token), b"");
        assert_eq!(me.status, 200, "a session in use expired: {}", me.text());
        std::thread::sleep(Duration::from_millis(300));
    }
    // Unused for longer than the TTL: gone on every loop.
    std::thread::sleep(Duration::from_millis(ttl_ms + 300));
    for _ in 0..6 {
        assert_error(&call(&server, "GET", "/api/me", Some(&token), b""), 401, "unauthenticated");
    }
}

#[test]
fn pipelined_answers_from_workers_keep_their_order() {
    let server = Server::start_with(fast());
    let (user_id, token) = user(&server, "alice");
    let auth = format!("Bearer {token}");
    let mut conn = server.connect();
    // /api/me is answered by a worker, /api/items and 401s by the loop at once.
    conn.send_request("GET", "/api/me", &[("Authorization", &auth)], b"");
    conn.send_request("GET", "/api/items", &[], b"");
    conn.send_request("HEAD", "/api/me", &[("Authorization", &auth)], b"");
    conn.send_request("GET", "/api/me", &[], b"");
    conn.send_request("GET", "/api/me", &[("Authorization", &auth)], b"");
    let first = conn.read_response(false);
    assert_eq!(first.json(), json!({"user_id": user_id, "username": "alice"}));
    assert!(conn.read_response(false).json()["items"].is_array());
    let head = conn.read_response(true);
    assert_eq!((head.status, head.header("content-length")), (200, first.header("content-length")));
    assert_error(&conn.read_response(false), 401, "unauthenticated");
    assert_eq!(conn.read_response(false).json()["user_id"], user_id);
}

#[test]
fn too_many_outstanding_captchas_answer_503() {
    let server = Server::start_with(fast().set("captcha.outstanding_max", 1));
    let admin = admin_token(&server);
    active_item(&server, &admin, 1);
    let (_, alice) = user(&server, "alice");
    let (_, bob) = user(&server, "bob");
    assert_eq!(fetch_captcha(&server, &alice, 1).status, 200);
    let full = fetch_captcha(&server, &bob, 1);
    assert_error(&full, 503, "overloaded");
    assert!(full.header("retry-after").is_some(), "{full:?}");
    // Replacing one's own captcha takes no new place.
    assert_eq!(fetch_captcha(&server, &alice, 1).status, 200);
    // An answer frees the place.
    assert_error(&post_path(&server, &alice, 1, "-1000"), 403, "captcha_wrong");
    assert_eq!(fetch_captcha(&server, &bob, 1).status, 200);
}

#[test]
fn the_whole_front_half_on_both_reactor_designs() {
    for design in ["reuseport", "acceptor"] {
        let server = Server::start_with(fast().set("server.reactor", design).set("server.threads", 2));
        let admin = admin_token(&server);
        active_item(&server, &admin, 1);
        let (user_id, token) = user(&server, "alice");
        assert_eq!(call(&server, "GET", "/api/me", Some(&token), b"").json()["user_id"], user_id, "{design}");
        assert_eq!(server.get("/api/items").json()["items"][0]["state"], "active", "{design}");
        let answer = captcha_answer(&server, &admin, &token, user_id, 1);
        let path = post_path(&server, &token, 1, &answer);
        assert_eq!(path.status, 200, "{design}: {}", path.text());
        assert_eq!(call(&server, "POST", "/api/logout", Some(&token), b"").status, 204, "{design}");
        assert_error(&call(&server, "GET", "/api/me", Some(&token), b""), 401, "unauthenticated");
    }
}

#[test]
fn per_address_limit_on_sale_requests() {
    let server = Server::start_with(fast().set("limits.per_ip_rps", 1).set("limits.per_ip_burst", 2));
    let admin = admin_token(&server);
    active_item(&server, &admin, 1);
    // Admin requests are not rate limited: three users with sessions.
    let body = json!({"prefix": "ip", "count": 3, "password": PASSWORD, "sessions": true});
    let resp = call_json(&server, "POST", "/admin/users/bulk", Some(&admin), &body);
    assert_eq!(resp.status, 200, "{}", resp.text());
    let tokens: Vec<String> =
        resp.json()["tokens"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect();
    // Three users, one address: the address's bucket runs dry.
    assert_eq!(fetch_captcha(&server, &tokens[0], 1).status, 200);
    assert_eq!(fetch_captcha(&server, &tokens[1], 1).status, 200);
    let limited = post_path(&server, &tokens[2], 1, "1");
    assert_error(&limited, 429, "rate_limited");
    assert!(limited.header("retry-after").is_some_and(|v| v.parse::<u64>().is_ok_and(|s| s >= 1)), "{limited:?}");
    let text = server.get("/metrics").text();
    assert_eq!(sample(&text, "seckill_rate_limited_total{limit=\"ip\"}"), 1.0);
    assert_eq!(sample(&text, "seckill_rate_limited_total{limit=\"user\"}"), 0.0);
}
