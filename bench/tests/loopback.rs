//! The bench against a tiny keep-alive responder started in the test: a
//! closed-loop run, a pipelined run and an open-loop run at a low rate.

use seckill_bench::{IdleConfig, RunConfig, Summary, Target, run, run_idle};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 15\r\nContent-Type: application/json\r\n\r\n{\"status\":\"ok\"}";
/// The last response on a connection the responder closes.
const RESPONSE_CLOSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";

/// A minimal HTTP/1.1 server: a thread per connection, every request answered
/// with the fixed 200 (requests in one read answered in one write). Stops
/// accepting and joins when dropped.
struct Responder {
    port: u16,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl Responder {
    fn start() -> Responder {
        Responder::start_closing_after(usize::MAX)
    }

    /// Answers `requests_per_connection` requests on each connection, the
    /// last with `Connection: close`, then closes it.
    fn start_closing_after(requests_per_connection: usize) -> Responder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let acceptor = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                std::thread::spawn(move || serve(stream, requests_per_connection));
            }
        });
        Responder { port, stop, acceptor: Some(acceptor) }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/healthz", self.port)
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the acceptor so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// Answers each complete request head (bodiless GETs) with `RESPONSE`, up
/// to `requests_max` of them.
fn serve(mut stream: TcpStream, requests_max: usize) {
    let mut answered = 0;
    let _ = stream.set_nodelay(true);
    let mut buf = vec![0u8; 64 * 1024];
    let mut filled = 0;
    let mut out = Vec::new();
    loop {
        let n = match stream.read(&mut buf[filled..]) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        filled += n;
        let mut start = 0;
        while let Some(end) = buf[start..filled].windows(4).position(|w| w == b"\r\n\r\n") {
            start += end + 4;
            answered += 1;
            if answered == requests_max {
                out.extend_from_slice(RESPONSE_CLOSE);
                let _ = stream.write_all(&out);
                return;
            }
            out.extend_from_slice(RESPONSE);
        }
        buf.copy_within(start..filled, 0);
        filled -= start;
        if !out.is_empty() && stream.write_all(&out).is_err() {
            return;
        }
        out.clear();
    }
}

fn config(responder: &Responder, connections: usize, duration: Duration) -> RunConfig {
    let mut c = RunConfig::new(Target::parse(&responder.url()).unwrap());
    c.connections = connections;
    c.threads = 2;
    c.duration = duration;
    c
}

fn assert_clean(s: &Summary) {
    assert!(s.requests > 0, "some requests completed:\n{}", s.table());
    assert_eq!(s.errors.total(), 0, "no errors:\n{}", s.table());
    assert_eq!(s.non_2xx, 0, "all 200:\n{}", s.table());
    assert_eq!(s.status.get("200"), Some(&s.requests));
    assert_eq!(s.reconnects, 0);
    assert!(!s.failed());
}

#[test]
fn closed_loop() {
    let responder = Responder::start();
    let s = run(&config(&responder, 8, Duration::from_secs(1))).unwrap();
    assert_clean(&s);
    assert_eq!(s.mode, "closed");
    assert!(s.service_time_us.is_none());
    assert!(s.latency_us.p50 > 0.0 && s.latency_us.p50 <= s.latency_us.p99);
}

#[test]
fn closed_loop_pipelined_with_warmup() {
    let responder = Responder::start();
    let mut c = config(&responder, 4, Duration::from_millis(700));
    c.pipeline = 16;
    c.warmup = Duration::from_millis(300);
    let s = run(&c).unwrap();
    assert_clean(&s);
    assert_eq!(s.params.pipeline, 16);
}

#[test]
fn open_loop_keeps_the_requested_rate() {
    let responder = Responder::start();
    let mut c = config(&responder, 8, Duration::from_secs(1));
    c.rate_per_s = Some(2000.0);
    c.warmup = Duration::from_millis(200);
    let s = run(&c).unwrap();
    assert_clean(&s);
    assert_eq!(s.mode, "open");
    let ratio = s.requests_per_s / 2000.0;
    assert!((0.8..=1.2).contains(&ratio), "achieved {} req/s of 2000:\n{}", s.requests_per_s, s.table());
    assert_eq!(s.unsent, 0, "a fast server leaves no backlog");
    let service = s.service_time_us.expect("open loop reports the service time");
    assert!(service.p50 <= s.latency_us.p50 + 0.5, "corrected latency includes the service time");
}

#[test]
fn idle_connections_are_opened_answered_and_held() {
    let responder = Responder::start();
    let config = IdleConfig {
        target: Target::parse(&responder.url()).unwrap(),
        connections: 50,
        hold: Duration::from_millis(200),
        // The responder lives in this process: its RSS is ours.
        server_pid: Some(std::process::id()),
    };
    let s = run_idle(&config).unwrap();
    assert_eq!((s.held, s.failed, s.non_2xx, s.closed_during_hold), (50, 0, 0, 0), "{}", s.table());
    assert!(s.rss_before_kib.is_some() && s.rss_held_kib.is_some());
    assert!(s.rss_per_connection_bytes.is_some());
    assert!(!s.failed());
}

#[test]
fn connections_the_server_closes_are_reopened() {
    let responder = Responder::start_closing_after(100);
    let s = run(&config(&responder, 4, Duration::from_millis(500))).unwrap();
    assert!(s.requests > 100, "{}", s.table());
    assert!(s.reconnects > 0, "closed connections were re-opened:\n{}", s.table());
    // One request in flight at a time, and the close was announced: nothing lost.
    assert_eq!(s.errors.total(), 0, "{}", s.table());
    assert_eq!(s.non_2xx, 0);
}
