//! The RFC conformance table of `seckill-protocol` replayed against the live
//! server over real sockets, for both reactor designs. Each case is sent
//! whole on a fresh connection and followed by a canary request: where the
//! case must close the connection, the canary must not be answered.

mod common;

use std::io::Write as _;
use std::time::Duration;

use common::{Conn, Server, ServerOptions};
use seckill::router::{self, Miss};
use seckill_protocol::Method;
use seckill_protocol::conformance::{CASES, Case, Outcome};

const CANARY: &[u8] = b"GET /healthz?canary HTTP/1.1\r\nHost: canary\r\n\r\n";

/// The status the live server gives a request the parser accepted.
fn live_status(method: &str, path: &str) -> u16 {
    let method = match method {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "PATCH" => Method::Patch,
        "OPTIONS" => Method::Options,
        "CONNECT" => Method::Connect,
        "TRACE" => Method::Trace,
        _ => Method::Other,
    };
    match router::route(method, path) {
        Ok(_) => 200,
        Err(Miss::NotFound) => 404,
        Err(Miss::MethodNotAllowed { .. }) => 405,
    }
}

fn check(server: &Server, case: &Case) -> Result<(), String> {
    let mut conn = Conn::connect(server.addr);
    // A client that expects `100 Continue` sends its head, waits for the
    // interim answer, then the body; sent at once, the body would already be
    // there and the server rightly skips the 100.
    let expects_continue = case.expect.iter().any(|o| matches!(o, Outcome::Continue));
    let split = match case.input.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(end) if expects_continue => end + 4,
        _ => case.input.len(),
    };
    conn.send(&case.input[..split]);
    let mut rest_sent = split == case.input.len();
    for (i, outcome) in case.expect.iter().enumerate() {
        let (expected, head_only) = match outcome {
            Outcome::Request { method, path, .. } => (live_status(method, path), *method == "HEAD"),
            Outcome::Continue => (100, false),
            Outcome::Reject(status) => (*status, false),
        };
        let got = conn.try_read_response(head_only).map_err(|e| format!("answer {i}: {e}"))?;
        if got.status != expected {
            return Err(format!("answer {i}: status {} instead of {expected}: {}", got.status, got.text()));
        }
        if !rest_sent {
            conn.send(&case.input[split..]);
            rest_sent = true;
        }
    }
    // The canary: answered on a connection that stays open, never on one that had to close.
    let canary_sent = conn.stream.write_all(CANARY).is_ok();
    if case.closes {
        if !conn.closed_within(Duration::from_secs(5)) {
            return Err("connection not closed".into());
        }
        if let Ok(Some(_)) = common::parse_response(conn.pending(), false) {
            return Err("canary answered on a connection that had to close".into());
        }
    } else {
        if !canary_sent {
            return Err("connection closed before the canary".into());
        }
        let canary = conn.try_read_response(false).map_err(|e| format!("canary: {e}"))?;
        if canary.status != 200 {
            return Err(format!("canary status {}", canary.status));
        }
    }
    Ok(())
}

fn run_table(options: ServerOptions) {
    let server = Server::start_with(options);
    let failures: Vec<String> = CASES
        .iter()
        .filter_map(|case| check(&server, case).err().map(|e| format!("{} ({}): {e}", case.name, case.rfc)))
        .collect();
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), CASES.len(), failures.join("\n"));
}

#[test]
fn table_against_reuseport() {
    run_table(ServerOptions::default().set("server.reactor", "reuseport"));
}

#[test]
fn table_against_acceptor() {
    run_table(ServerOptions::default().set("server.reactor", "acceptor"));
}
