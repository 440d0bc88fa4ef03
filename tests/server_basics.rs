//! The server shell over real sockets: operations endpoints, 404/405, HEAD,
//! the `listening on` line, structured logs, and graceful shutdown — for
//! both reactor designs.

mod common;

use std::time::Duration;

use common::{Server, ServerOptions};

fn designs() -> [ServerOptions; 2] {
    [
        ServerOptions::default().set("server.reactor", "reuseport"),
        ServerOptions::default().set("server.reactor", "acceptor"),
    ]
}

#[test]
fn operations_endpoints_answer() {
    for options in designs() {
        let server = Server::start_with(options.set("server.threads", 2));
        let health = server.get("/healthz");
        assert_eq!(health.status, 200);
        assert_eq!(health.json(), serde_json::json!({"status": "ok"}));
        assert_eq!(health.header("content-type"), Some("application/json"));
        assert!(health.header("date").is_some_and(|d| d.ends_with(" GMT")), "{health:?}");

        let ready = server.get("/readyz");
        assert_eq!(ready.status, 200, "{}", ready.text());

        let metrics = server.get("/metrics");
        assert_eq!(metrics.status, 200);
        assert!(metrics.header("content-type").unwrap().starts_with("text/plain"), "{metrics:?}");
        let text = metrics.text();
        assert!(text.contains("seckill_requests_total{route=\"/healthz\",status=\"200\"} 1"), "{text}");
        assert!(text.contains("seckill_open_connections"), "{text}");
        assert!(text.contains("seckill_loop_accepted_total{loop=\"1\"}"), "{text}");
    }
}

#[test]
fn unknown_paths_and_wrong_methods() {
    let server = Server::start();
    let missing = server.get("/nope");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["code"], "not_found");

    let wrong = server.request("POST", "/healthz", &[], b"{}");
    assert_eq!(wrong.status, 405);
    assert_eq!(wrong.header("allow"), Some("GET, HEAD"));
    assert_eq!(wrong.json()["code"], "method_not_allowed");
}

#[test]
fn head_has_the_get_length_and_no_body() {
    let server = Server::start();
    let get = server.get("/healthz");
    let mut conn = server.connect();
    conn.send_request("HEAD", "/healthz", &[], b"");
    let head = conn.read_response(true);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), get.header("content-length"));
    // The next response on the same connection starts right after the head:
    // a HEAD answer that carried a body would corrupt it.
    conn.send_request("GET", "/healthz", &[], b"");
    assert_eq!(conn.read_response(false).json()["status"], "ok");
}

#[test]
fn logs_are_json_lines_on_stderr() {
    let server = Server::start();
    let _ = server.get("/healthz");
    let stderr = server.stderr();
    let first = stderr.lines().next().expect("a start-up log line");
    let line: serde_json::Value = serde_json::from_str(first).unwrap_or_else(|e| panic!("{e}: {first}"));
    assert!(line["ts_ms"].is_u64() && line["level"].is_string() && line["msg"].is_string(), "{line}");
}

/// One GET on a fresh connection; `None` if the connection fails (a probe
/// racing the listener's close must not panic).
fn try_get(server: &Server, path: &str) -> Option<common::Response> {
    use std::io::Write as _;
    let mut conn = common::Conn::try_connect(server.addr)?;
    conn.stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes()).ok()?;
    conn.try_read_response(false).ok()
}

/// Calls `probe` until it returns something or `timeout` passes.
fn poll_until<T>(timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(found) = probe() {
            return Some(found);
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn sigterm_drains_then_exits_zero() {
    for options in designs() {
        // A drain long enough that a loaded machine still probes inside it.
        let mut server = Server::start_with(options.set("server.drain_ms", 4000));
        let mut kept = server.connect();
        kept.send_request("GET", "/healthz", &[], b"");
        assert_eq!(kept.read_response(false).status, 200);

        server.signal(libc::SIGTERM);
        // During the drain the listener still accepts, and readiness is
        // refused as soon as the signal has been delivered.
        let ready = poll_until(Duration::from_millis(3500), || try_get(&server, "/readyz").filter(|r| r.status == 503))
            .expect("/readyz turns 503 during the drain");
        assert_eq!(ready.json()["code"], "draining");
        assert!(ready.header("retry-after").is_some());

        let status = server.wait_exit(Duration::from_secs(10)).expect("exits within the grace period");
        assert!(status.success(), "{status:?}\n{}", server.stderr());
        assert!(std::net::TcpStream::connect(server.addr).is_err(), "listener closed");
    }
}
