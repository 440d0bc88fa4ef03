//! A pipelining flood: 10 connections each send 100,000 requests without
//! waiting, while reading concurrently. Every answer must come back, in
//! order (each names the item its request asked for), and the server's
//! memory must stay bounded: it stops reading a connection at
//! `pipeline_depth_max` unanswered requests instead of buffering the flood.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::{Server, ServerOptions};

const CONNECTIONS: usize = 10;
const REQUESTS_PER_CONNECTION: usize = 100_000;
const ITEMS: u64 = 10;
/// How much the server's RSS may grow during the flood. Generous: what is
/// checked is that the flood's 100 MB of requests are not buffered.
const RSS_GROWTH_MAX_KIB: u64 = 64 * 1024;

fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS line");
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("VmRSS in kB")
}

fn item_of(request: usize) -> u64 {
    1 + (request as u64 * 7 + 3) % ITEMS
}

fn create_items(server: &Server) {
    let token = std::fs::read_to_string(server.dir.path().join("data/admin_token")).expect("admin token");
    for id in 1..=ITEMS {
        let body = format!(
            r#"{{"name":"item {id}","description":"","price_cents":100,"stock":10,"per_user_limit":1,"start_ms":0,"end_ms":99999999999999}}"#
        );
        let auth = format!("Bearer {}", token.trim());
        let resp = server.request("PUT", &format!("/admin/items/{id}"), &[("Authorization", &auth)], body.as_bytes());
        assert_eq!(resp.status, 200, "{}", resp.text());
    }
}

/// Writes every request of one connection while another thread reads.
fn flood(addr: std::net::SocketAddr) -> Result<usize, String> {
    let mut stream = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(Duration::from_secs(30))).map_err(|e| e.to_string())?;
    let mut writer = stream.try_clone().map_err(|e| e.to_string())?;
    let sender = std::thread::spawn(move || -> std::io::Result<()> {
        let mut batch = Vec::with_capacity(64 * 1024);
        for request in 0..REQUESTS_PER_CONNECTION {
            write!(batch, "GET /api/items/{} HTTP/1.1\r\nHost: flood\r\n\r\n", item_of(request))?;
            if batch.len() > 60 * 1024 {
                writer.write_all(&batch)?;
                batch.clear();
            }
        }
        writer.write_all(&batch)
    });
    let mut pending: Vec<u8> = Vec::with_capacity(256 * 1024);
    let mut chunk = vec![0u8; 128 * 1024];
    let mut answered = 0;
    while answered < REQUESTS_PER_CONNECTION {
        let n = stream.read(&mut chunk).map_err(|e| format!("after {answered} answers: {e}"))?;
        if n == 0 {
            return Err(format!("closed after {answered} answers"));
        }
        pending.extend_from_slice(&chunk[..n]);
        let mut consumed = 0;
        while let Some((response, used)) = common::parse_response(&pending[consumed..], false)? {
            if response.status != 200 {
                return Err(format!("answer {answered}: status {}", response.status));
            }
            let expected = format!("{{\"id\":{},", item_of(answered));
            if !response.body.starts_with(expected.as_bytes()) {
                return Err(format!("answer {answered} out of order: {}", response.text()));
            }
            consumed += used;
            answered += 1;
        }
        pending.drain(..consumed);
    }
    sender.join().map_err(|_| "sender panicked".to_string())?.map_err(|e| e.to_string())?;
    Ok(answered)
}

#[test]
fn ten_connections_of_100k_pipelined_requests_answered_in_order_with_bounded_memory() {
    let server = Server::start_with(ServerOptions::default().set("server.threads", 2).set("limits.per_ip_rps", 0));
    create_items(&server);
    let rss_before = rss_kib(server.pid());
    let started = Instant::now();
    let floods: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let addr = server.addr;
            std::thread::spawn(move || flood(addr))
        })
        .collect();
    let mut rss_peak = rss_before;
    while !floods.iter().all(|f| f.is_finished()) {
        rss_peak = rss_peak.max(rss_kib(server.pid()));
        std::thread::sleep(Duration::from_millis(20));
    }
    let answered: usize = floods.into_iter().map(|f| f.join().expect("flood thread").expect("flood")).sum();
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "pipelining flood: {answered} answers in {seconds:.2} s ({:.0}/s); server RSS {rss_before} KiB before, {rss_peak} KiB peak",
        answered as f64 / seconds
    );
    assert_eq!(answered, CONNECTIONS * REQUESTS_PER_CONNECTION);
    assert!(
        rss_peak - rss_before <= RSS_GROWTH_MAX_KIB,
        "server RSS grew by {} KiB during the flood",
        rss_peak - rss_before
    );
}
