//! What the connections send: the [`RequestSource`] trait and the fixed request
//! of a plain load run.
//!
//! The driver asks its thread's source for each request's bytes and reports
//! each response back, in order. [`UserCycle`] is the flash-sale workload:
//! one pre-rendered request per user, each connection cycling over the users,
//! with every answer (warm-up included) counted in a shared [`StatusTally`].

use crate::response::Response;
use crate::target::Target;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// One load thread's supply of requests. Called only from that thread.
pub trait RequestSource: Send {
    /// Appends the next request for connection `conn` (thread-local index) to
    /// `out` and returns whether it is a `HEAD` request (its response has no body).
    fn write_request(&mut self, conn: usize, out: &mut Vec<u8>) -> Bodyless;

    /// A response to a request of connection `conn` arrived (in request order).
    fn on_response(&mut self, _conn: usize, _status: u16) {}

    /// [`RequestSource::on_response`] with the response's bytes (head and
    /// body) when they all arrived in one read, which the driver otherwise
    /// skips; the default ignores them.
    fn on_response_bytes(&mut self, conn: usize, status: u16, _bytes: Option<&[u8]>) {
        self.on_response(conn, status);
    }

    /// [`RequestSource::on_response_bytes`] with what the head said besides
    /// the status (`Retry-After`); the driver calls this one.
    fn on_response_head(&mut self, conn: usize, response: &Response, bytes: Option<&[u8]>) {
        self.on_response_bytes(conn, response.status, bytes);
    }

    /// Connection `conn` was dropped with its `n` outstanding requests
    /// unanswered (they may still take effect on the server). Requests
    /// outstanding when the run ends are not reported here: the source is
    /// dropped with them.
    fn on_lost(&mut self, _conn: usize, _n: usize) {}
}

/// Whether a response carries no body whatever its headers say (`HEAD`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bodyless {
    No,
    Yes,
}

/// The same request over and over, rendered once.
#[derive(Debug, Clone)]
pub struct FixedRequest {
    bytes: Box<[u8]>,
    bodyless: Bodyless,
}

impl FixedRequest {
    /// Renders `method path HTTP/1.1` with `Host`, the extra `headers`
    /// (`Name: value` each), and `Content-Length` when there is a body.
    pub fn new(target: &Target, method: &str, headers: &[String], body: &[u8]) -> FixedRequest {
        let mut bytes = Vec::with_capacity(128 + body.len());
        let has = |name: &str| {
            headers.iter().any(|h| h.split(':').next().is_some_and(|n| n.trim().eq_ignore_ascii_case(name)))
        };
        bytes.extend_from_slice(format!("{method} {} HTTP/1.1\r\n", target.path).as_bytes());
        if !has("host") {
            bytes.extend_from_slice(format!("Host: {}\r\n", target.authority).as_bytes());
        }
        for h in headers {
            bytes.extend_from_slice(h.trim().as_bytes());
            bytes.extend_from_slice(b"\r\n");
        }
        if (!body.is_empty() || method == "POST" || method == "PUT") && !has("content-length") {
            bytes.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
        }
        bytes.extend_from_slice(b"\r\n");
        bytes.extend_from_slice(body);
        let bodyless = if method.eq_ignore_ascii_case("HEAD") { Bodyless::Yes } else { Bodyless::No };
        FixedRequest { bytes: bytes.into_boxed_slice(), bodyless }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl RequestSource for FixedRequest {
    fn write_request(&mut self, _conn: usize, out: &mut Vec<u8>) -> Bodyless {
        out.extend_from_slice(&self.bytes);
        self.bodyless
    }
}

/// Status codes counted by [`StatusTally`]: 0..=599; anything else in slot 0.
const TALLY_STATUS_MAX: usize = 600;

/// Responses by status over a whole run, warm-up and all threads included
/// (the recorder counts only the measured window). Shared by the threads'
/// sources; a relaxed increment per response.
#[derive(Debug)]
pub struct StatusTally {
    counts: Box<[AtomicU64]>,
}

impl Default for StatusTally {
    fn default() -> Self {
        StatusTally { counts: (0..TALLY_STATUS_MAX).map(|_| AtomicU64::new(0)).collect() }
    }
}

impl StatusTally {
    pub fn add(&self, status: u16) {
        let slot = if usize::from(status) < TALLY_STATUS_MAX { usize::from(status) } else { 0 };
        self.counts[slot].fetch_add(1, Relaxed);
    }

    pub fn get(&self, status: u16) -> u64 {
        self.counts.get(usize::from(status)).map_or(0, |n| n.load(Relaxed))
    }

    /// `(status, count)` for every status seen, ascending.
    pub fn counts(&self) -> Vec<(u16, u64)> {
        let seen = self.counts.iter().enumerate().map(|(s, n)| (s as u16, n.load(Relaxed)));
        seen.filter(|(_, n)| *n > 0).collect()
    }
}

/// One request per user, rendered once; every connection walks the users in
/// order from its own starting point, so at any moment the connections are on
/// different users, and each user is visited as often as every other.
#[derive(Debug, Clone)]
pub struct UserCycle {
    requests: Arc<[FixedRequest]>,
    tally: Arc<StatusTally>,
    /// Next user per thread-local connection, created on first use.
    next: Vec<usize>,
    thread: usize,
    threads: usize,
    connections: usize,
}

impl UserCycle {
    /// The source of load thread `thread` of `threads`, which together open
    /// `connections` connections; `requests` must not be empty.
    pub fn new(
        requests: Arc<[FixedRequest]>,
        tally: Arc<StatusTally>,
        thread: usize,
        threads: usize,
        connections: usize,
    ) -> UserCycle {
        assert!(!requests.is_empty(), "a user cycle needs at least one user");
        UserCycle { requests, tally, next: Vec::new(), thread, threads, connections: connections.max(1) }
    }

    /// Where connection `conn` of this thread starts: connections are spread
    /// evenly over the users. Numbering connection `conn` of thread `t` of `T`
    /// as `conn * T + t` keeps the numbers distinct across threads.
    fn start(&self, conn: usize) -> usize {
        let global = conn * self.threads + self.thread;
        (global * self.requests.len() / self.connections) % self.requests.len()
    }
}

impl UserCycle {
    /// Appends the request of connection `conn`'s next user; returns that
    /// user's index (for sources that follow each user's answers).
    pub fn write_next(&mut self, conn: usize, out: &mut Vec<u8>) -> (usize, Bodyless) {
        while self.next.len() <= conn {
            let start = self.start(self.next.len());
            self.next.push(start);
        }
        let user = self.next[conn];
        self.next[conn] = (user + 1) % self.requests.len();
        out.extend_from_slice(self.requests[user].bytes());
        (user, self.requests[user].bodyless)
    }
}

impl RequestSource for UserCycle {
    fn write_request(&mut self, conn: usize, out: &mut Vec<u8>) -> Bodyless {
        self.write_next(conn, out).1
    }

    fn on_response(&mut self, _conn: usize, status: u16) {
        self.tally.add(status);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(method: &str, headers: &[&str], body: &str) -> String {
        let target = Target::parse("http://127.0.0.1:8080/buy?x=1").unwrap();
        let headers: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
        String::from_utf8(FixedRequest::new(&target, method, &headers, body.as_bytes()).bytes().to_vec()).unwrap()
    }

    #[test]
    fn renders_a_get() {
        assert_eq!(render("GET", &[], ""), "GET /buy?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n");
    }

    #[test]
    fn renders_headers_and_a_body() {
        assert_eq!(
            render("POST", &["Content-Type: application/json", "X-A: b"], "{}"),
            "POST /buy?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Type: application/json\r\n\
             X-A: b\r\nContent-Length: 2\r\n\r\n{}"
        );
        assert_eq!(
            render("POST", &[], ""),
            "POST /buy?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Length: 0\r\n\r\n"
        );
    }

    #[test]
    fn user_host_and_length_win() {
        assert_eq!(render("GET", &["host: other"], ""), "GET /buy?x=1 HTTP/1.1\r\nhost: other\r\n\r\n");
        assert_eq!(
            render("PUT", &["Content-Length: 1"], "x"),
            "PUT /buy?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Length: 1\r\n\r\nx"
        );
    }

    #[test]
    fn head_is_bodyless() {
        let target = Target::parse("http://h/").unwrap();
        let mut r = FixedRequest::new(&target, "HEAD", &[], b"");
        assert_eq!(r.write_request(0, &mut Vec::new()), Bodyless::Yes);
    }

    #[test]
    fn user_cycle_spreads_connections_and_visits_every_user() {
        let target = Target::parse("http://h/").unwrap();
        let requests: Arc<[FixedRequest]> =
            (0..10).map(|u| FixedRequest::new(&target, "POST", &[format!("X-User: {u}")], b"")).collect();
        let tally = Arc::new(StatusTally::default());
        // Two threads of 4 connections in all: thread 1 has global connections 1 and 3.
        let mut source = UserCycle::new(requests, tally.clone(), 1, 2, 4);
        let user_of = |source: &mut UserCycle, conn| {
            let mut out = Vec::new();
            source.write_request(conn, &mut out);
            let text = String::from_utf8(out).unwrap();
            text.split("X-User: ").nth(1).unwrap().split('\r').next().unwrap().parse::<usize>().unwrap()
        };
        assert_eq!(user_of(&mut source, 0), 2, "global connection 1 starts at 10 * 1 / 4");
        assert_eq!(user_of(&mut source, 1), 7, "global connection 3 starts at 10 * 3 / 4");
        let walk: Vec<usize> = (0..10).map(|_| user_of(&mut source, 0)).collect();
        assert_eq!(walk, vec![3, 4, 5, 6, 7, 8, 9, 0, 1, 2]);
        source.on_response(0, 410);
        source.on_response(1, 410);
        source.on_response(1, 200);
        source.on_response(1, 1000);
        assert_eq!(tally.counts(), vec![(0, 1), (200, 1), (410, 2)]);
        assert_eq!(tally.get(410), 2);
    }
}
