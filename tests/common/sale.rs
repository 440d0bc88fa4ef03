//! Helpers for tests of the sale over real sockets: the admin token, items,
//! users in bulk with sessions, captcha + path, and the buy itself.
#![allow(dead_code)] // each test file uses a different subset

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::{Conn, Response, Server, ServerOptions};

pub const HOUR_MS: u64 = 3_600_000;
pub const PASSWORD: &str = "0123456789abcdef0123456789abcdef";

/// Cheap argon2 so that tests hash in microseconds; rate limits off unless a
/// test is about them. With `SECKILL_TEST_BACKENDS=redis-mysql` the server
/// runs on the production backends instead of the embedded default, with a
/// database and key prefix of its own (`tests/run` runs the sale tests both ways).
pub fn fast() -> ServerOptions {
    let options = ServerOptions::default()
        .set("auth.argon2_memory_kib", 64)
        .set("auth.argon2_iterations", 1)
        .set("limits.per_user_rps", 0)
        .set("limits.per_ip_rps", 0);
    match std::env::var("SECKILL_TEST_BACKENDS").as_deref() {
        Ok("redis-mysql") => Backends::fresh().apply(options),
        Ok("embedded") | Err(_) => options,
        Ok(other) => panic!("SECKILL_TEST_BACKENDS={other}: expected embedded or redis-mysql"),
    }
}

/// Whether the tests run on Redis + MariaDB (`SECKILL_TEST_BACKENDS=redis-mysql`),
/// where stock is leased: a buy may be answered 503 with a Retry-After while
/// units are being refilled (contract §3), which a client retries.
pub fn leased_stock() -> bool {
    std::env::var("SECKILL_TEST_BACKENDS").as_deref() == Ok("redis-mysql")
}

/// Redis + MariaDB for one test: a database and a key prefix nobody else
/// uses, on the services `tests/services` started (or those named by
/// `SECKILL_TEST_MYSQL_URL` and `SECKILL_TEST_REDIS_URL`).
#[derive(Debug, Clone)]
pub struct Backends {
    pub store_url: String,
    pub cache_url: String,
    pub key_prefix: String,
}

impl Backends {
    pub fn fresh() -> Backends {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let unique =
            format!("{}_{}_{}", std::process::id(), now_ms() % 1_000_000, NEXT.fetch_add(1, Ordering::Relaxed));
        let mysql = std::env::var("SECKILL_TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/".into());
        let mysql = if mysql.ends_with('/') { mysql } else { format!("{mysql}/") };
        Backends {
            store_url: format!("{mysql}seckill_it_{unique}"),
            cache_url: std::env::var("SECKILL_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into()),
            key_prefix: format!("it{unique}:"),
        }
    }

    pub fn apply(&self, options: ServerOptions) -> ServerOptions {
        options
            .set("store.url", &self.store_url)
            .set("cache.url", &self.cache_url)
            .set("cache.key_prefix", &self.key_prefix)
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// Polls `probe` until it returns something or `timeout` passes.
pub fn poll_until<T>(timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
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

/// The admin token the server generated (read from its data dir, once the
/// `admin token:` line is out).
pub fn admin_token(server: &Server) -> String {
    let path = server.dir.path().join("data/admin_token");
    let token = poll_until(Duration::from_secs(5), || std::fs::read_to_string(&path).ok())
        .unwrap_or_else(|| panic!("{} never appeared", path.display()));
    token.trim().to_string()
}

/// Asserts an error answer: status, `code`, a message, JSON.
#[track_caller]
pub fn assert_error(resp: &Response, status: u16, code: &str) {
    assert_eq!(resp.status, status, "{}", resp.text());
    let body = resp.json();
    assert_eq!(body["code"], code, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
}

/// A request with an optional Bearer token, on `conn`.
pub fn send(conn: &mut Conn, method: &str, path: &str, bearer: Option<&str>, body: &[u8]) -> Response {
    let auth = bearer.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(auth) = &auth {
        headers.push(("Authorization", auth.as_str()));
    }
    conn.send_request(method, path, &headers, body);
    conn.read_response(method == "HEAD")
}

/// A user with a session.
#[derive(Debug, Clone)]
pub struct User {
    pub id: u64,
    pub token: String,
}

/// A test's view of one server: its address and admin token.
#[derive(Debug)]
pub struct Shop<'s> {
    pub server: &'s Server,
    pub admin: String,
}

impl<'s> Shop<'s> {
    pub fn new(server: &'s Server) -> Self {
        Shop { admin: admin_token(server), server }
    }

    pub fn call(&self, method: &str, path: &str, bearer: Option<&str>, body: &Value) -> Response {
        let body = if body.is_null() { Vec::new() } else { body.to_string().into_bytes() };
        send(&mut self.server.connect(), method, path, bearer, &body)
    }

    pub fn admin_call(&self, method: &str, path: &str, body: &Value) -> Response {
        self.call(method, path, Some(&self.admin), body)
    }

    /// Creates or replaces item `id`, on sale from `start_ms` to `end_ms`.
    pub fn put_item_window(&self, id: u64, stock: u64, per_user_limit: u32, start_ms: u64, end_ms: u64) -> Value {
        let body = json!({
            "name": format!("Item {id}"), "description": "", "price_cents": 100, "stock": stock,
            "per_user_limit": per_user_limit, "start_ms": start_ms, "end_ms": end_ms,
        });
        let resp = self.admin_call("PUT", &format!("/admin/items/{id}"), &body);
        assert_eq!(resp.status, 200, "{}", resp.text());
        resp.json()
    }

    /// Item `id` on sale for the next hour.
    pub fn put_item(&self, id: u64, stock: u64, per_user_limit: u32) -> Value {
        let now = now_ms();
        self.put_item_window(id, stock, per_user_limit, now - 1000, now + HOUR_MS)
    }

    /// `count` users `{prefix}0..` with sessions, in one admin call.
    pub fn users(&self, prefix: &str, count: usize) -> Vec<User> {
        users_on(&mut self.server.connect(), &self.admin, prefix, count)
    }

    /// A captcha, its answer through the admin hook, and the hidden path.
    pub fn path_on(&self, conn: &mut Conn, user: &User, item: u64) -> String {
        path_on(conn, &self.admin, user, item)
    }

    pub fn path(&self, user: &User, item: u64) -> String {
        self.path_on(&mut self.server.connect(), user, item)
    }

    /// `POST /api/seckill/{path}` with `body`.
    pub fn buy_on(conn: &mut Conn, user: &User, path: &str, body: &Value) -> Response {
        send(conn, "POST", &format!("/api/seckill/{path}"), Some(&user.token), body.to_string().as_bytes())
    }

    pub fn buy(&self, user: &User, path: &str, body: &Value) -> Response {
        Self::buy_on(&mut self.server.connect(), user, path, body)
    }

    pub fn stats(&self, item: u64) -> Value {
        let resp = self.admin_call("GET", &format!("/admin/items/{item}/stats"), &Value::Null);
        assert_eq!(resp.status, 200, "{}", resp.text());
        resp.json()
    }

    /// Every order of the item, through the admin listing's pages.
    pub fn item_orders(&self, item: u64) -> Vec<Value> {
        let mut orders = Vec::new();
        let mut after = String::new();
        loop {
            let path = format!("/admin/items/{item}/orders?limit=1000&after={after}");
            let resp = self.admin_call("GET", &path, &Value::Null);
            assert_eq!(resp.status, 200, "{}", resp.text());
            let page = resp.json();
            orders.extend(page["orders"].as_array().unwrap().iter().cloned());
            match page["next"].as_str() {
                Some(next) => after = next.to_string(),
                None => return orders,
            }
        }
    }

    pub fn result(&self, user: &User, item: u64) -> Value {
        let resp = self.call("GET", &format!("/api/items/{item}/result"), Some(&user.token), &Value::Null);
        assert_eq!(resp.status, 200, "{}", resp.text());
        resp.json()
    }
}

/// `count` users `{prefix}0..` with sessions, in one admin call on `conn`
/// (for tests without a [`Server`], such as an in-process one).
pub fn users_on(conn: &mut Conn, admin: &str, prefix: &str, count: usize) -> Vec<User> {
    let body = json!({ "prefix": prefix, "count": count, "password": PASSWORD, "sessions": true });
    let resp = send(conn, "POST", "/admin/users/bulk", Some(admin), body.to_string().as_bytes());
    assert_eq!(resp.status, 200, "{}", resp.text());
    let v = resp.json();
    let ids = v["user_ids"].as_array().expect("user_ids");
    let tokens = v["tokens"].as_array().expect("tokens");
    ids.iter()
        .zip(tokens)
        .map(|(id, t)| User { id: id.as_u64().unwrap(), token: t.as_str().unwrap().to_string() })
        .collect()
}

/// A captcha, its answer through the admin hook, and the hidden path, on `conn`.
pub fn path_on(conn: &mut Conn, admin: &str, user: &User, item: u64) -> String {
    let captcha = send(conn, "GET", &format!("/api/items/{item}/captcha"), Some(&user.token), b"");
    assert_eq!(captcha.status, 200, "{}", captcha.text());
    let hook = format!("/admin/items/{item}/captcha-answer?user_id={}", user.id);
    let answer = send(conn, "GET", &hook, Some(admin), b"");
    assert_eq!(answer.status, 200, "{}", answer.text());
    let answer = answer.json()["answer"].as_str().unwrap().to_string();
    let body = json!({ "captcha": answer }).to_string();
    let path = send(conn, "POST", &format!("/api/items/{item}/path"), Some(&user.token), body.as_bytes());
    assert_eq!(path.status, 200, "{}", path.text());
    path.json()["path"].as_str().unwrap().to_string()
}

/// Asserts promise 3 at rest: `stock_total == stock_left + pending_payment + paid`.
#[track_caller]
pub fn assert_conserved(stats: &Value) {
    let n = |k: &str| stats[k].as_u64().unwrap_or_else(|| panic!("{k} in {stats}"));
    assert_eq!(n("stock_total"), n("stock_left") + n("pending_payment") + n("paid"), "{stats}");
}

/// Another connection holding the store's write lock on an item (as a long
/// transaction or a backup would), so that the order writer must wait.
pub enum StoreLock {
    Sqlite(rusqlite::Connection),
    /// A `mariadb` client inside `BEGIN … FOR UPDATE`, its stdin open.
    Mysql(std::process::Child),
}

impl StoreLock {
    /// Takes the lock on `server`'s store (the embedded file, or the MySQL
    /// database named by its `store.url`).
    pub fn take(server: &Server, item: u64) -> StoreLock {
        use std::io::{BufRead, Write};
        // The last setting wins, as on the server's command line.
        let url = server.options.args.iter().rev().find_map(|a| a.strip_prefix("store.url=")).map(str::to_owned);
        let Some(url) = url.filter(|u| u.starts_with("mysql://")) else {
            let db = rusqlite::Connection::open(server.dir.path().join("data/seckill.db")).unwrap();
            db.execute_batch("BEGIN IMMEDIATE").unwrap();
            return StoreLock::Sqlite(db);
        };
        let rest = url.trim_start_matches("mysql://");
        let (user_host, database) = rest.rsplit_once('/').expect("a database in store.url");
        let (user, host) = user_host.split_once('@').unwrap_or(("root", user_host));
        let (host, port) = host.split_once(':').unwrap_or((host, "3306"));
        let mut child = std::process::Command::new("mariadb")
            .args(["-h", host, "-P", port, "-u", user.split(':').next().unwrap(), "-D", database, "-N", "--unbuffered"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("the mariadb client");
        let stdin = child.stdin.as_mut().unwrap();
        writeln!(stdin, "BEGIN; SELECT 'locked', id FROM items WHERE id = {item} FOR UPDATE;").unwrap();
        stdin.flush().unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
        assert!(line.starts_with("locked"), "the lock query answered {line:?}");
        StoreLock::Mysql(child)
    }

    pub fn release(self) {
        use std::io::Write;
        match self {
            StoreLock::Sqlite(db) => db.execute_batch("ROLLBACK").unwrap(),
            StoreLock::Mysql(mut child) => {
                let mut stdin = child.stdin.take().unwrap();
                writeln!(stdin, "ROLLBACK;").unwrap();
                drop(stdin);
                child.wait().unwrap();
            }
        }
    }
}
