//! Contract §1: users, sessions, items, a generated admin token and secret
//! survive a `kill -9` and a restart on the same data directory.

mod common;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use common::{Response, Server, ServerOptions, TempDir};
use serde_json::{Value, json};

const PASSWORD: &str = "0123456789abcdef0123456789abcdef";

fn fast() -> ServerOptions {
    ServerOptions::default().set("auth.argon2_memory_kib", 64).set("auth.argon2_iterations", 1)
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

fn call(server: &Server, method: &str, path: &str, bearer: Option<&str>, body: &Value) -> Response {
    let auth = bearer.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(auth) = &auth {
        headers.push(("Authorization", auth.as_str()));
    }
    let body = if body.is_null() { Vec::new() } else { body.to_string().into_bytes() };
    server.request(method, path, &headers, &body)
}

fn login(server: &Server) -> Value {
    let resp = call(server, "POST", "/api/login", None, &json!({"username": "alice", "password": PASSWORD}));
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.json()
}

#[test]
fn users_sessions_items_and_secrets_survive_kill_9() {
    let dir = Arc::new(TempDir::new("restart"));
    let mut server = Server::start_in(dir.clone(), fast());
    let admin = std::fs::read_to_string(dir.path().join("data/admin_token")).expect("admin token file");
    let admin = admin.trim().to_string();
    let secret = std::fs::read(dir.path().join("data/secret")).expect("generated secret file");
    assert!(!secret.is_empty());

    let created = call(&server, "POST", "/api/users", None, &json!({"username": "alice", "password": PASSWORD}));
    assert_eq!(created.status, 201, "{}", created.text());
    let user_id = created.json()["user_id"].as_u64().unwrap();
    let session = login(&server);
    let token = session["token"].as_str().unwrap().to_string();
    let now = now_ms();
    let item = json!({"name": "Phone", "description": "", "price_cents": 100, "stock": 5, "per_user_limit": 1,
                      "start_ms": now - 60_000, "end_ms": now + 3_600_000});
    assert_eq!(call(&server, "PUT", "/admin/items/7", Some(&admin), &item).status, 200);
    assert_eq!(call(&server, "GET", "/api/items/7/captcha", Some(&token), &Value::Null).status, 200);
    let answer =
        call(&server, "GET", &format!("/admin/items/7/captcha-answer?user_id={user_id}"), Some(&admin), &Value::Null);
    assert_eq!(answer.status, 200, "{}", answer.text());
    let path = call(&server, "POST", "/api/items/7/path", Some(&token), &json!({"captcha": answer.json()["answer"]}));
    assert_eq!(path.status, 200, "{}", path.text());

    server.kill9();
    let server = Server::start_in(dir.clone(), fast());

    // The old session still works, and a new login too.
    let me = call(&server, "GET", "/api/me", Some(&token), &Value::Null);
    assert_eq!(me.status, 200, "{}", me.text());
    assert_eq!(me.json(), json!({"user_id": user_id, "username": "alice"}));
    assert_eq!(login(&server)["user_id"], user_id);
    // The username is still taken.
    let again = call(&server, "POST", "/api/users", None, &json!({"username": "alice", "password": PASSWORD}));
    assert_eq!(again.status, 409, "{}", again.text());

    // The item is listed as it was.
    let items = server.get("/api/items").json();
    let listed = &items["items"][0];
    assert_eq!((listed["id"].as_u64(), listed["stock_total"].as_u64()), (Some(7), Some(5)), "{items}");
    assert_eq!(listed["state"], "active");

    // The same admin token and secret: kept, not generated again.
    let kept = std::fs::read_to_string(dir.path().join("data/admin_token")).unwrap();
    assert_eq!(kept.trim(), admin);
    assert_eq!(std::fs::read(dir.path().join("data/secret")).unwrap(), secret);
    let stats = call(&server, "GET", "/admin/items/7/stats", Some(&admin), &Value::Null);
    assert_eq!(stats.status, 200, "{}", stats.text());
    assert_eq!(stats.json()["stock_left"], 5);

    // Captchas may be lost, but the sale goes on with fresh ones.
    assert_eq!(call(&server, "GET", "/api/items/7/captcha", Some(&token), &Value::Null).status, 200);
}

#[test]
fn logout_survives_kill_9() {
    let dir = Arc::new(TempDir::new("restart-logout"));
    let mut server = Server::start_in(dir.clone(), fast());
    let created = call(&server, "POST", "/api/users", None, &json!({"username": "alice", "password": PASSWORD}));
    assert_eq!(created.status, 201);
    let token = login(&server)["token"].as_str().unwrap().to_string();
    assert_eq!(call(&server, "POST", "/api/logout", Some(&token), &Value::Null).status, 204);
    server.kill9();
    let server = Server::start_in(dir, fast());
    let me = call(&server, "GET", "/api/me", Some(&token), &Value::Null);
    assert_eq!(me.status, 401, "a logged-out session came back: {}", me.text());
}

#[test]
fn configured_secrets_are_used_not_generated() {
    let admin = "configured-admin-token-0123456789";
    let options =
        fast().set("auth.admin_token", admin).env("SECKILL_AUTH_SECRET", "a configured secret of enough bytes");
    let server = Server::start_with(options);
    let stats = call(&server, "GET", "/admin/items/1/stats", Some(admin), &Value::Null);
    assert_eq!(stats.status, 404, "the configured admin token is accepted: {}", stats.text());
    assert!(!server.dir.path().join("data/admin_token").exists(), "an admin token was generated");
    assert!(!server.dir.path().join("data/secret").exists(), "a secret was generated although one is configured");
    // Everything start-up prints comes before its `started` line.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !server.stderr().contains("\"msg\":\"started\"") && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let stderr = server.stderr();
    assert!(stderr.contains("\"msg\":\"started\""), "{stderr}");
    assert!(!stderr.contains("admin token:"), "{stderr}");
}
