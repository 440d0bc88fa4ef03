//! The reactor over real sockets, in both designs, with a small test handler:
//! - `GET /x?Q` → 200, body `Q`;
//! - `GET /park?ms=N&...` → parked; a helper thread completes it after N ms
//!   through the `Completer` (body: the query);
//! - `GET /hold?...` → parked; the token goes to the test, which completes it;
//! - `GET /never` → parked with a 300 ms deadline, never completed → 503;
//! - `POST /echo` → 200 with the request body;
//! - `GET /replay?...` → parked; the helper completes it with a request to
//!   replay, which is handled again: answered `replayed Q`, or, with `park`
//!   in the query, parked once more and completed like `/park`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use seckill_protocol::{ContentType, DateHeader, Limits, OwnedRequest, Request, RequestInfo, ResponseWriter, Status};
use seckill_reactor::{Completer, Design, Exchange, Handler, ParkToken, Reactor, ReactorConfig};

type Completion = Vec<u8>;

struct TestHandler {
    to_helper: Sender<(Instant, ParkToken, Vec<u8>)>,
    to_test: Sender<ParkToken>,
    /// Copies of `/replay` requests, by the number their completion names.
    replays: HashMap<u64, OwnedRequest>,
    next_replay: u64,
    replaying: bool,
}

const REPLAY: &[u8] = b"replay:";

impl TestHandler {
    fn handle_inner(&mut self, request: &Request<'_>, exchange: &mut Exchange<'_>) {
        match request.path {
            "/x" => exchange.respond(Status::OK).body(ContentType::Text, request.query.as_bytes()),
            "/echo" => exchange.respond(Status::OK).body(ContentType::Text, request.body),
            "/park" => {
                let ms: u64 = request
                    .query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("ms="))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let token = exchange.park(exchange.now() + Duration::from_secs(10));
                let due = Instant::now() + Duration::from_millis(ms);
                // The helper lives as long as the reactor's handlers.
                let _ = self.to_helper.send((due, token, request.query.as_bytes().to_vec()));
            }
            "/hold" => {
                let token = exchange.park(exchange.now() + Duration::from_secs(30));
                let _ = self.to_test.send(token);
            }
            "/replay" if self.replaying && request.query.contains("park") => {
                let token = exchange.park(exchange.now() + Duration::from_secs(10));
                let _ = self.to_helper.send((Instant::now(), token, request.query.as_bytes().to_vec()));
            }
            "/replay" if self.replaying => {
                let body = format!("replayed {}", request.query);
                exchange.respond(Status::OK).body(ContentType::Text, body.as_bytes());
            }
            "/replay" => {
                let token = exchange.park(exchange.now() + Duration::from_secs(10));
                self.next_replay += 1;
                self.replays.insert(self.next_replay, OwnedRequest::copy_of(request));
                let marker = [REPLAY, self.next_replay.to_string().as_bytes()].concat();
                let _ = self.to_helper.send((Instant::now() + Duration::from_millis(20), token, marker));
            }
            "/never" => {
                exchange.park(exchange.now() + Duration::from_millis(300));
            }
            _ => exchange.respond(Status::NOT_FOUND).empty(),
        }
    }
}

impl Handler for TestHandler {
    type Completion = Completion;

    fn handle(&mut self, request: &Request<'_>, exchange: &mut Exchange<'_>) {
        self.handle_inner(request, exchange);
        self.replaying = false;
    }

    fn replay(&mut self, completion: Completion) -> Result<OwnedRequest, Completion> {
        let number = completion.strip_prefix(REPLAY).and_then(|n| std::str::from_utf8(n).ok()?.parse::<u64>().ok());
        match number.and_then(|n| self.replays.remove(&n)) {
            Some(request) => {
                self.replaying = true;
                Ok(request)
            }
            None => Err(completion),
        }
    }

    fn complete(
        &mut self,
        completion: Completion,
        info: RequestInfo,
        _parked_at: Instant,
        date: &DateHeader,
        out: &mut Vec<u8>,
    ) {
        ResponseWriter::new(out, date, info, Status::OK).body(ContentType::Text, &completion);
    }

    fn park_expired(&mut self, info: RequestInfo, _parked_at: Instant, date: &DateHeader, out: &mut Vec<u8>) {
        ResponseWriter::new(out, date, info, Status::SERVICE_UNAVAILABLE).body(ContentType::Text, b"expired");
    }
}

/// Completes `/park` requests when they are due, from its own thread.
fn park_helper(mut completer: Completer<Completion>, requests: Receiver<(Instant, ParkToken, Vec<u8>)>) {
    let mut due: BinaryHeap<Reverse<(Instant, u64)>> = BinaryHeap::new();
    let mut waiting: HashMap<u64, (ParkToken, Vec<u8>)> = HashMap::new();
    let mut n = 0u64;
    loop {
        let wait = due
            .peek()
            .map(|Reverse((at, ..))| at.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::from_secs(3600));
        match requests.recv_timeout(wait) {
            Ok((at, token, body)) => {
                n += 1;
                due.push(Reverse((at, n)));
                waiting.insert(n, (token, body));
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
        }
        let now = Instant::now();
        while due.peek().is_some_and(|Reverse((at, ..))| *at <= now) {
            let Some(Reverse((_, n))) = due.pop() else { break };
            let Some((token, body)) = waiting.remove(&n) else { continue };
            completer.push(token, body);
        }
        completer.flush();
    }
}

fn config(design: Design) -> ReactorConfig {
    ReactorConfig {
        listen: "127.0.0.1:0".parse().expect("address"),
        threads: 2,
        design,
        limits: Limits::default(),
        head_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(60),
        connections_max: 16384,
        pipeline_depth_max: 64,
        pin_cpus: false,
    }
}

struct Server {
    reactor: Option<Reactor<Completion>>,
    addr: SocketAddr,
    held: Receiver<ParkToken>,
}

impl Server {
    fn start(design: Design, tweak: impl FnOnce(&mut ReactorConfig)) -> Server {
        let mut config = config(design);
        tweak(&mut config);
        let (to_helper, helper_rx) = crossbeam_channel::unbounded();
        let (to_test, held) = crossbeam_channel::unbounded();
        let reactor = Reactor::start(config, move |_| TestHandler {
            to_helper: to_helper.clone(),
            to_test: to_test.clone(),
            replays: HashMap::new(),
            next_replay: 0,
            replaying: false,
        })
        .expect("start");
        let completer = reactor.completer();
        std::thread::spawn(move || park_helper(completer, helper_rx));
        Server { addr: reactor.local_addr(), reactor: Some(reactor), held }
    }

    fn reactor(&self) -> &Reactor<Completion> {
        self.reactor.as_ref().expect("running")
    }

    fn connect(&self) -> Client {
        Client::connect(self.addr)
    }

    fn wakeups(&self) -> u64 {
        self.reactor().stats().iter().map(|s| s.wakeups.load(Relaxed)).sum()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(reactor) = self.reactor.take() {
            reactor.shutdown(Duration::ZERO);
            let exited = reactor.join(Instant::now() + Duration::from_secs(10));
            if !std::thread::panicking() {
                assert!(exited, "the loops exit after shutdown");
            }
        }
    }
}

#[derive(Debug)]
struct Response {
    status: u16,
    connection: Option<String>,
    body: Vec<u8>,
}

struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        Client { stream, buf: Vec::new() }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    fn get(&mut self, target: &str) -> Response {
        self.send(format!("GET {target} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
        self.response()
    }

    /// Reads one response; panics on timeout or EOF.
    fn response(&mut self) -> Response {
        self.try_response().expect("a response before EOF")
    }

    fn try_response(&mut self) -> Option<Response> {
        loop {
            if let Some(response) = self.parse() {
                return Some(response);
            }
            let mut chunk = [0u8; 16384];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => panic!("reading a response: {e}"),
            }
        }
    }

    fn parse(&mut self) -> Option<Response> {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut parsed = httparse::Response::new(&mut headers);
        let head_len = match parsed.parse(&self.buf).expect("a valid response") {
            httparse::Status::Complete(n) => n,
            httparse::Status::Partial => return None,
        };
        let header = |name: &str| {
            parsed
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).to_ascii_lowercase())
        };
        let length: usize = header("content-length").map(|v| v.parse().expect("length")).unwrap_or(0);
        let connection = header("connection");
        let status = parsed.code.expect("status");
        if self.buf.len() < head_len + length {
            return None;
        }
        let body = self.buf[head_len..head_len + length].to_vec();
        self.buf.drain(..head_len + length);
        Some(Response { status, connection, body })
    }

    /// Asserts the server closes the connection (EOF) with nothing more sent.
    fn expect_eof(&mut self) {
        assert!(self.buf.is_empty(), "unexpected bytes: {:?}", String::from_utf8_lossy(&self.buf));
        let mut chunk = [0u8; 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => {}
            Ok(n) => panic!("expected EOF, got {:?}", String::from_utf8_lossy(&chunk[..n])),
            Err(e) => panic!("expected EOF, got {e}"),
        }
    }

    /// Asserts nothing arrives within `wait`.
    fn expect_silence(&mut self, wait: Duration) {
        self.stream.set_read_timeout(Some(wait)).expect("timeout");
        let mut chunk = [0u8; 1024];
        match self.stream.read(&mut chunk) {
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            other => panic!("expected silence, got {other:?}"),
        }
        self.stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    }
}

/// Polls `condition` until it holds or `limit` passes.
fn wait_until(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    condition()
}

/// Runs each test against both designs.
macro_rules! both_designs {
    ($($name:ident),* $(,)?) => {
        $(mod $name {
            #[test]
            fn reuseport() {
                super::$name(seckill_reactor::Design::ReusePort);
            }
            #[test]
            fn acceptor() {
                super::$name(seckill_reactor::Design::Acceptor);
            }
        })*
    };
}

both_designs!(
    keep_alive,
    pipelining_in_order_with_parked,
    parked_completed_in_order,
    replayed_requests_keep_their_place,
    connection_close,
    http10_default_close,
    http10_keep_alive,
    protocol_error_then_close,
    expect_continue,
    head_timeout,
    idle_timeout,
    pipeline_depth_max,
    connections_max,
    park_deadline_expiry,
    completions_batched,
    graceful_shutdown,
    port_zero_one_port,
    slow_clients,
    completion_after_close_is_dropped,
    idle_connections_are_cheap,
    client_that_never_reads,
);

/// A client that pipelines without ever reading: reading stops at the depth
/// limit (the rest stays in the kernel), and once its answers have sat
/// unread for the idle timeout the connection is closed.
fn client_that_never_reads(design: Design) {
    let server = Server::start(design, |c| {
        c.idle_timeout = Duration::from_millis(700);
        c.pipeline_depth_max = 8;
    });
    let client = server.connect();
    client.stream.set_nonblocking(true).expect("nonblocking");
    // A large answer fills the socket buffers fast: echo 16 KiB bodies.
    let body = vec![b'z'; 16 * 1024];
    let mut request = format!("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    request.extend_from_slice(&body);
    let mut writer = &client.stream;
    let started = Instant::now();
    let mut sent = 0usize;
    let mut blocked_since = None;
    // Write until the server stops reading and both kernels' buffers fill.
    while blocked_since.is_none_or(|t: Instant| t.elapsed() < Duration::from_millis(200))
        && started.elapsed() < Duration::from_secs(5)
    {
        match writer.write(&request[sent % request.len()..]) {
            Ok(n) => {
                sent += n;
                blocked_since = None;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                blocked_since.get_or_insert_with(Instant::now);
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("send: {e}"),
        }
    }
    let stats = server.reactor().stats();
    let open = || stats.iter().map(|s| s.open_connections.load(Relaxed)).sum::<u64>();
    assert_eq!(open(), 1);
    assert!(wait_until(Duration::from_secs(5), || open() == 0), "the stalled connection is closed");
}

/// Tests that hold thousands of sockets take turns: the process has one descriptor limit.
static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn heavy() -> std::sync::MutexGuard<'static, ()> {
    HEAVY.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn completion_after_close_is_dropped(design: Design) {
    let server = Server::start(design, |_| {});
    let mut half = server.connect();
    half.send(b"GET /park?ms=100 HTTP/1.1\r\nHost: t\r\n\r\n");
    half.stream.shutdown(std::net::Shutdown::Write).expect("half-close");
    assert_eq!(half.response().body, b"ms=100");
    half.expect_eof();
    let mut client = server.connect();
    client.send(b"GET /hold HTTP/1.1\r\nHost: t\r\n\r\n");
    let token = server.held.recv_timeout(Duration::from_secs(5)).expect("parked");
    // A reset (not a FIN: a client that only half-closes still gets its answers).
    socket2::SockRef::from(&client.stream).set_linger(Some(Duration::ZERO)).expect("linger");
    drop(client);
    let stats = server.reactor().stats();
    let open = || stats.iter().map(|s| s.open_connections.load(Relaxed)).sum::<u64>();
    assert!(wait_until(Duration::from_secs(5), || open() == 0), "the server notices the close");
    assert_eq!(stats.iter().map(|s| s.parked.load(Relaxed)).sum::<u64>(), 0);
    // A new connection may reuse the slot; the stale completion must not reach it.
    let mut next = server.connect();
    assert_eq!(next.get("/x?fresh").body, b"fresh");
    let mut completer = server.reactor().completer();
    completer.push(token, b"stale".to_vec());
    completer.flush();
    assert!(wait_until(Duration::from_secs(2), || stats
        .iter()
        .map(|s| s.completions_stale.load(Relaxed))
        .sum::<u64>()
        == 1));
    assert_eq!(next.get("/x?still").body, b"still");
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("resident pages");
    // SAFETY: sysconf has no preconditions.
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64
}

/// Idle keep-alive connections hold no buffers: ≤ 4 KiB each of resident memory
/// (client and server share this process; client sockets cost no user memory).
fn idle_connections_are_cheap(design: Design) {
    const IDLE: usize = 8000;
    let _turn = heavy();
    raise_fd_limit(2 * IDLE as u64 + 1024);
    let server = Server::start(design, |_| {});
    let mut warm = server.connect();
    assert_eq!(warm.get("/x?warm").status, 200);
    let before = rss_bytes();
    let mut idle = Vec::with_capacity(IDLE);
    for _ in 0..IDLE {
        let mut stream = TcpStream::connect(server.addr).expect("connect");
        stream.write_all(b"GET /x?i HTTP/1.1\r\nHost: t\r\n\r\n").expect("send");
        let mut response = [0u8; 256];
        let n = stream.read(&mut response).expect("response");
        assert!(response[..n].starts_with(b"HTTP/1.1 200 "));
        idle.push(stream);
    }
    let stats = server.reactor().stats();
    assert_eq!(stats.iter().map(|s| s.open_connections.load(Relaxed)).sum::<u64>(), IDLE as u64 + 1);
    let per_connection = rss_bytes().saturating_sub(before) / IDLE as u64;
    assert!(per_connection <= 4096, "{per_connection} bytes per idle connection");
    eprintln!("{design:?}: {per_connection} bytes of RSS per idle keep-alive connection");
}

fn keep_alive(design: Design) {
    let server = Server::start(design, |_| {});
    let mut client = server.connect();
    for i in 0..200 {
        let response = client.get(&format!("/x?{i}"));
        assert_eq!(response.status, 200);
        assert_eq!(response.body, i.to_string().as_bytes());
        assert_ne!(response.connection.as_deref(), Some("close"));
    }
    let mut echo = server.connect();
    echo.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello");
    assert_eq!(echo.response().body, b"hello");
}

fn pipelining_in_order_with_parked(design: Design) {
    let server = Server::start(design, |_| {});
    let mut client = server.connect();
    let batch = "GET /x?1 HTTP/1.1\r\nHost: t\r\n\r\n\
                 GET /park?ms=200&id=2 HTTP/1.1\r\nHost: t\r\n\r\n\
                 GET /x?3 HTTP/1.1\r\nHost: t\r\n\r\n\
                 POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\n4\
                 GET /park?ms=10&id=5 HTTP/1.1\r\nHost: t\r\n\r\n\
                 GET /x?6 HTTP/1.1\r\nHost: t\r\n\r\n";
    client.send(batch.as_bytes());
    let bodies: Vec<Vec<u8>> = (0..6).map(|_| client.response().body).collect();
    let expected: Vec<&[u8]> = vec![b"1", b"ms=200&id=2", b"3", b"4", b"ms=10&id=5", b"6"];
    assert_eq!(bodies, expected);
    // The connection carries on after the parked answers.
    assert_eq!(client.get("/x?7").body, b"7");
}

fn parked_completed_in_order(design: Design) {
    let server = Server::start(design, |_| {});
    let mut clients: Vec<Client> = (0..4).map(|_| server.connect()).collect();
    for client in clients.iter_mut() {
        // Completed in the reverse order of the requests.
        client.send(b"GET /park?ms=300 HTTP/1.1\r\nHost: t\r\n\r\nGET /park?ms=150 HTTP/1.1\r\nHost: t\r\n\r\nGET /park?ms=1 HTTP/1.1\r\nHost: t\r\n\r\n");
    }
    for client in clients.iter_mut() {
        let bodies: Vec<Vec<u8>> = (0..3).map(|_| client.response().body).collect();
        assert_eq!(bodies, vec![b"ms=300".to_vec(), b"ms=150".to_vec(), b"ms=1".to_vec()]);
    }
    let stats = server.reactor().stats();
    assert!(wait_until(Duration::from_secs(2), || stats.iter().map(|s| s.parked.load(Relaxed)).sum::<u64>() == 0));
    assert_eq!(stats.iter().map(|s| s.completions.load(Relaxed)).sum::<u64>(), 12);
}

/// A completion may hand the request back to be handled again, in its
/// place in the pipeline: answered then, or parked once more.
fn replayed_requests_keep_their_place(design: Design) {
    let server = Server::start(design, |_| {});
    let mut client = server.connect();
    let batch = "GET /x?1 HTTP/1.1\r\nHost: t\r\n\r\n\
                 GET /replay?a HTTP/1.1\r\nHost: t\r\n\r\n\
                 GET /x?3 HTTP/1.1\r\nHost: t\r\n\r\n\
                 GET /replay?park&b HTTP/1.1\r\nHost: t\r\n\r\n\
                 GET /x?5 HTTP/1.1\r\nHost: t\r\n\r\n";
    client.send(batch.as_bytes());
    let bodies: Vec<Vec<u8>> = (0..5).map(|_| client.response().body).collect();
    let expected: Vec<&[u8]> = vec![b"1", b"replayed a", b"3", b"park&b", b"5"];
    assert_eq!(bodies, expected);
    assert_eq!(client.get("/x?6").body, b"6");
    let stats = server.reactor().stats();
    assert!(wait_until(Duration::from_secs(2), || stats.iter().map(|s| s.parked.load(Relaxed)).sum::<u64>() == 0));
}

fn connection_close(design: Design) {
    let server = Server::start(design, |_| {});
    let mut client = server.connect();
    client.send(b"GET /x?a HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\nGET /x?b HTTP/1.1\r\nHost: t\r\n\r\n");
    let response = client.response();
    assert_eq!(response.body, b"a");
    assert_eq!(response.connection.as_deref(), Some("close"));
    // The request after `Connection: close` is not answered.
    client.expect_eof();
}

fn http10_default_close(design: Design) {
    let server = Server::start(design, |_| {});
    let mut client = server.connect();
    client.send(b"GET /x?a HTTP/1.0\r\n\r\n");
    assert_eq!(client.response().body, b"a");
    client.expect_eof();
}

fn http10_keep_alive(design: Design) {
    let server = Server::start(design, |_| {});
    let mut client = server.connect();
    for i in 0..3 {
        client.send(format!("GET /x?{i} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").as_bytes());
        let response = client.response();
        assert_eq!(response.body, i.to_string().as_bytes());
        assert_eq!(response.connection.as_deref(), Some("keep-alive"));
    }
}

fn protocol_error_then_close(design: Design) {
    let server = Server::start(design, |_| {});
    let mut client = server.connect();
    client.send(b"GET /x?ok HTTP/1.1\r\nHost: t\r\n\r\nGARBAGE\r\n\r\nGET /x?never HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(client.response().status, 200);
    let refused = client.response();
    assert_eq!(refused.status, 400);
    assert_eq!(refused.connection.as_deref(), Some("close"));
    client.expect_eof();
    let stats = server.reactor().stats();
    assert_eq!(stats.iter().map(|s| s.protocol_errors.load(Relaxed)).sum::<u64>(), 1);
    // A head too large: 431, then closed.
    let mut big = server.connect();
    big.send(format!("GET /x HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n", "a".repeat(9000)).as_bytes());
    assert_eq!(big.response().status, 431);
    big.expect_eof();
}

fn expect_continue(design: Design) {
    let server = Server::start(design, |_| {});
    let mut client = server.connect();
    client.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n");
    assert_eq!(client.response().status, 100);
    client.send(b"abc");
    assert_eq!(client.response().body, b"abc");
}

fn head_timeout(design: Design) {
    let server = Server::start(design, |c| c.head_timeout = Duration::from_millis(500));
    let mut client = server.connect();
    let started = Instant::now();
    client.send(b"GET /x HTTP/1.1\r\nHost: t\r\n");
    let response = client.response();
    assert_eq!(response.status, 408);
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(450) && waited < Duration::from_secs(2), "{waited:?}");
    client.expect_eof();
    let stats = server.reactor().stats();
    assert_eq!(stats.iter().map(|s| s.head_timeouts.load(Relaxed)).sum::<u64>(), 1);
}

fn idle_timeout(design: Design) {
    let server = Server::start(design, |c| c.idle_timeout = Duration::from_millis(500));
    let mut client = server.connect();
    assert_eq!(client.get("/x?a").status, 200);
    let started = Instant::now();
    client.expect_eof();
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(400) && waited < Duration::from_secs(2), "{waited:?}");
    // A connection that never sent anything is idle too.
    let mut silent = server.connect();
    silent.expect_eof();
}

fn pipeline_depth_max(design: Design) {
    let server = Server::start(design, |c| c.pipeline_depth_max = 4);
    let mut client = server.connect();
    let mut writer = client.stream.try_clone().expect("clone");
    let sender = std::thread::spawn(move || {
        let mut batch = Vec::new();
        for i in 0..200 {
            let target = if i % 10 == 5 { format!("/park?ms=5&i={i}") } else { format!("/x?i={i}") };
            batch.extend_from_slice(format!("GET {target} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
        }
        writer.write_all(&batch).expect("send");
    });
    for i in 0..200 {
        let response = client.response();
        assert_eq!(response.status, 200, "request {i}");
        let expected = if i % 10 == 5 { format!("ms=5&i={i}") } else { format!("i={i}") };
        assert_eq!(response.body, expected.as_bytes());
    }
    sender.join().expect("sender");
}

fn connections_max(design: Design) {
    let server = Server::start(design, |c| c.connections_max = 8);
    let mut clients: Vec<Client> = (0..8).map(|_| server.connect()).collect();
    for client in clients.iter_mut() {
        assert_eq!(client.get("/x?a").status, 200);
    }
    let mut ninth = server.connect();
    ninth.send(b"GET /x?ninth HTTP/1.1\r\nHost: t\r\n\r\n");
    ninth.expect_silence(Duration::from_millis(400));
    drop(clients.pop());
    assert_eq!(ninth.response().body, b"ninth");
    // The others were served all along.
    assert_eq!(clients[0].get("/x?b").status, 200);
}

fn park_deadline_expiry(design: Design) {
    let server = Server::start(design, |_| {});
    let mut client = server.connect();
    let started = Instant::now();
    let response = client.get("/never");
    assert_eq!(response.status, 503);
    assert_eq!(response.body, b"expired");
    assert!(started.elapsed() >= Duration::from_millis(250) && started.elapsed() < Duration::from_secs(2));
    assert_eq!(client.get("/x?after").body, b"after");
    let stats = server.reactor().stats();
    assert_eq!(stats.iter().map(|s| s.park_expired.load(Relaxed)).sum::<u64>(), 1);
    assert_eq!(stats.iter().map(|s| s.parked.load(Relaxed)).sum::<u64>(), 0);
}

fn completions_batched(design: Design) {
    let server = Server::start(design, |c| c.threads = 1);
    let mut clients: Vec<Client> = (0..10).map(|_| server.connect()).collect();
    for (c, client) in clients.iter_mut().enumerate() {
        for i in 0..5 {
            client.send(format!("GET /hold?c={c}&i={i} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
        }
    }
    let tokens: Vec<ParkToken> =
        (0..50).map(|_| server.held.recv_timeout(Duration::from_secs(5)).expect("parked")).collect();
    let stats = server.reactor().stats();
    assert!(wait_until(Duration::from_secs(2), || stats[0].parked.load(Relaxed) == 50));
    let before = server.wakeups();
    let mut completer = server.reactor().completer();
    for token in tokens.iter().rev() {
        completer.push(*token, b"done".to_vec());
    }
    completer.flush();
    for client in clients.iter_mut() {
        for _ in 0..5 {
            assert_eq!(client.response().body, b"done");
        }
    }
    let woken = server.wakeups() - before;
    assert!((1..=2).contains(&woken), "50 completions, one flush: {woken} wakeups");
    // A second completion of the same request is dropped and counted.
    completer.push(tokens[0], b"again".to_vec());
    completer.flush();
    assert!(wait_until(Duration::from_secs(2), || stats[0].completions_stale.load(Relaxed) == 1));
}

fn graceful_shutdown(design: Design) {
    let mut server = Server::start(design, |_| {});
    let mut parked = server.connect();
    parked.send(b"GET /park?ms=400 HTTP/1.1\r\nHost: t\r\n\r\n");
    let mut pipelined = server.connect();
    pipelined.send(b"GET /park?ms=300 HTTP/1.1\r\nHost: t\r\n\r\nGET /x?behind HTTP/1.1\r\nHost: t\r\n\r\n");
    let mut idle = server.connect();
    assert_eq!(idle.get("/x?a").status, 200);
    let stats = server.reactor().stats();
    assert!(wait_until(Duration::from_secs(2), || stats.iter().map(|s| s.parked.load(Relaxed)).sum::<u64>() == 2));
    let reactor = server.reactor.take().expect("running");
    reactor.shutdown(Duration::from_millis(100));
    // The idle connection is closed; the parked request is still answered, as the last.
    idle.expect_eof();
    let response = parked.response();
    assert_eq!(response.body, b"ms=400");
    assert_eq!(response.connection.as_deref(), Some("close"));
    parked.expect_eof();
    // Requests read before the drain ended are all answered, in order.
    assert_eq!(pipelined.response().body, b"ms=300");
    assert_eq!(pipelined.response().body, b"behind");
    pipelined.expect_eof();
    assert!(reactor.join(Instant::now() + Duration::from_secs(5)));
    // The listeners are closed.
    assert!(TcpStream::connect(server.addr).is_err());
}

fn port_zero_one_port(design: Design) {
    let server = Server::start(design, |c| c.threads = 2);
    assert_ne!(server.addr.port(), 0);
    let mut clients: Vec<Client> = (0..24).map(|_| server.connect()).collect();
    for client in clients.iter_mut() {
        assert_eq!(client.get("/x?a").status, 200);
    }
    let stats = server.reactor().stats();
    for (i, s) in stats.iter().enumerate() {
        assert!(s.accepted.load(Relaxed) > 0, "loop {i} accepted nothing on the shared port");
    }
}

fn raise_fd_limit(wanted: u64) {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we own.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) }, 0);
    if limit.rlim_cur >= wanted {
        return;
    }
    limit.rlim_cur = wanted.min(limit.rlim_max);
    // SAFETY: setrlimit reads the struct we own.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
}

fn slow_clients(design: Design) {
    const SLOW: usize = 2000;
    let _turn = heavy();
    raise_fd_limit(3 * SLOW as u64 + 512);
    let server = Server::start(design, |c| c.head_timeout = Duration::from_secs(3));
    let head = b"GET /x?slow HTTP/1.1\r\nHost: t\r\n\r\n";
    let mut slow: Vec<TcpStream> = (0..SLOW).map(|_| TcpStream::connect(server.addr).expect("connect")).collect();
    let started = Instant::now();
    let mut sent = 0;
    let mut healthy = server.connect();
    let mut answered = 0;
    let mut healthy_worst = Duration::ZERO;
    // Dribble a byte per second on every slow connection while the healthy
    // client keeps going, until the head timeout has passed.
    while started.elapsed() < Duration::from_millis(3500) {
        if started.elapsed() >= Duration::from_secs(sent as u64) {
            for stream in slow.iter_mut() {
                // A write may fail once the server has answered 408 and closed.
                let _ = stream.write_all(&head[sent..sent + 1]);
            }
            sent += 1;
        }
        let t = Instant::now();
        assert_eq!(healthy.get(&format!("/x?{answered}")).body, answered.to_string().as_bytes());
        healthy_worst = healthy_worst.max(t.elapsed());
        answered += 1;
    }
    assert!(answered >= 200, "the healthy client got only {answered} answers");
    assert!(healthy_worst < Duration::from_secs(1), "worst healthy latency {healthy_worst:?}");
    // Every slow connection gets its 408 at the head timeout, then EOF.
    for (i, stream) in slow.iter_mut().enumerate() {
        stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        let mut got = Vec::new();
        let mut chunk = [0u8; 512];
        loop {
            match stream.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
                Err(e) => panic!("slow client {i}: {e}"),
            }
        }
        assert!(got.starts_with(b"HTTP/1.1 408 "), "slow client {i}: {:?}", String::from_utf8_lossy(&got));
    }
    let closed_by = started.elapsed();
    assert!(closed_by < Duration::from_secs(10), "{closed_by:?}");
    let stats = server.reactor().stats();
    assert_eq!(stats.iter().map(|s| s.head_timeouts.load(Relaxed)).sum::<u64>(), SLOW as u64);
}
