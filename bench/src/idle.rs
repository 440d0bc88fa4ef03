//! `seckill-bench idle`: open many keep-alive connections, make one request on
//! each, then hold them open and idle — to measure what an idle connection
//! costs the server (its RSS difference, when given the server's pid).

use crate::response::{ResponseParser, Step};
use crate::sys;
use crate::target::Target;
use crate::workload::{FixedRequest, RequestSource};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use serde::Serialize;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

/// Connections being opened or awaiting their response at once: more would
/// overflow the server's accept backlog and cost a 1 s SYN retransmit.
const OPENING_MAX: usize = 256;
/// Time allowed for all connections to be opened and answered.
const SETUP_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on the run's connections (each costs a descriptor, and little else).
pub const IDLE_CONNECTIONS_MAX: usize = 200_000;
/// Leftover bytes of a response split across reads; a valid head is far smaller.
const LEFTOVER_BYTES_MAX: usize = 16 * 1024;

#[derive(Debug, Clone)]
pub struct IdleConfig {
    pub target: Target,
    pub connections: usize,
    pub hold: Duration,
    /// The server's pid, to read its RSS before and while holding.
    pub server_pid: Option<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct IdleSummary {
    pub url: String,
    pub connections: usize,
    pub hold_s: f64,
    /// Connections that opened and got a response.
    pub held: usize,
    pub failed: usize,
    /// Responses outside 2xx (the connection is still held).
    pub non_2xx: usize,
    /// Held connections the server closed during the hold.
    pub closed_during_hold: usize,
    pub setup_s: f64,
    pub server_pid: Option<u32>,
    pub rss_before_kib: Option<u64>,
    /// Server RSS at the end of the hold, all connections idle.
    pub rss_held_kib: Option<u64>,
    pub rss_per_connection_bytes: Option<f64>,
}

impl IdleSummary {
    pub fn failed(&self) -> bool {
        self.failed > 0 || self.held == 0
    }

    pub fn table(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = writeln!(out, "seckill-bench idle  GET {}", self.url);
        let _ = writeln!(
            out,
            "  held {} of {} connections (failed {}, non-2xx {}) after {:.2}s setup, for {}s",
            self.held, self.connections, self.failed, self.non_2xx, self.setup_s, self.hold_s
        );
        let _ = writeln!(out, "  closed by the server during the hold: {}", self.closed_during_hold);
        if let (Some(pid), Some(before), Some(held)) = (self.server_pid, self.rss_before_kib, self.rss_held_kib) {
            let per = self.rss_per_connection_bytes.unwrap_or(0.0);
            let _ = writeln!(
                out,
                "  server pid {pid} RSS: {before} KiB before, {held} KiB held: {per:.0} bytes per connection"
            );
        }
        out
    }
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Phase {
    Connecting,
    Awaiting,
    Held,
    Gone,
}

#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    phase: Phase,
    parser: ResponseParser,
    leftover: Vec<u8>,
}

/// Opens, answers and holds the connections; returns once the hold is over.
pub fn run_idle(config: &IdleConfig) -> io::Result<IdleSummary> {
    if !(1..=IDLE_CONNECTIONS_MAX).contains(&config.connections) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "connections out of range"));
    }
    let addr = config.target.resolve().map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut request = FixedRequest::new(&config.target, "GET", &[], b"");
    let rss = |pid: Option<u32>| pid.map(sys::rss_kib).transpose();
    let rss_before_kib = rss(config.server_pid)?;

    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let mut conns: Vec<Conn> = Vec::with_capacity(config.connections);
    let mut summary = IdleSummary {
        url: config.target.url(),
        connections: config.connections,
        hold_s: config.hold.as_secs_f64(),
        held: 0,
        failed: 0,
        non_2xx: 0,
        closed_during_hold: 0,
        setup_s: 0.0,
        server_pid: config.server_pid,
        rss_before_kib,
        rss_held_kib: None,
        rss_per_connection_bytes: None,
    };
    let mut wire = Vec::new();
    request.write_request(0, &mut wire);
    let mut scratch = vec![0u8; 4096];
    let setup_start = Instant::now();
    let mut opening = 0usize;
    while summary.held + summary.failed < config.connections {
        while opening < OPENING_MAX && conns.len() < config.connections {
            match TcpStream::connect(addr) {
                Ok(mut stream) => {
                    poll.registry().register(
                        &mut stream,
                        Token(conns.len()),
                        Interest::READABLE | Interest::WRITABLE,
                    )?;
                    conns.push(Conn {
                        stream,
                        phase: Phase::Connecting,
                        parser: ResponseParser::default(),
                        leftover: Vec::new(),
                    });
                    opening += 1;
                }
                Err(_) => summary.failed += 1,
            }
            if conns.len() + summary.failed >= config.connections {
                break;
            }
        }
        if summary.held + summary.failed >= config.connections {
            break;
        }
        let elapsed = setup_start.elapsed();
        if elapsed >= SETUP_TIMEOUT {
            summary.failed += config.connections - summary.held - summary.failed;
            break;
        }
        poll.poll(&mut events, Some(SETUP_TIMEOUT - elapsed)).or_else(interrupted)?;
        for event in events.iter() {
            let conn = &mut conns[event.token().0];
            let before = conn.phase;
            step(conn, &wire, &mut scratch, &mut summary);
            if before != conn.phase && matches!(conn.phase, Phase::Held | Phase::Gone) {
                opening -= 1;
                if conn.phase == Phase::Gone {
                    summary.failed += 1;
                }
            }
        }
    }
    summary.setup_s = setup_start.elapsed().as_secs_f64();
    println!("holding {} connections for {}s", summary.held, config.hold.as_secs_f64());
    // Readiness line for scripts: make sure it leaves now, not at exit.
    let _ = io::stdout().flush();

    let hold_end = Instant::now() + config.hold;
    while let Some(left) = hold_end.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) {
        poll.poll(&mut events, Some(left)).or_else(interrupted)?;
        for event in events.iter() {
            let conn = &mut conns[event.token().0];
            if conn.phase == Phase::Held && closed_by_peer(conn, &mut scratch) {
                conn.phase = Phase::Gone;
                summary.closed_during_hold += 1;
            }
        }
    }
    summary.rss_held_kib = rss(config.server_pid)?;
    if let (Some(before), Some(held)) = (summary.rss_before_kib, summary.rss_held_kib)
        && summary.held > 0
    {
        summary.rss_per_connection_bytes = Some((held as f64 - before as f64) * 1024.0 / summary.held as f64);
    }
    Ok(summary)
}

fn interrupted(e: io::Error) -> io::Result<()> {
    if e.kind() == io::ErrorKind::Interrupted { Ok(()) } else { Err(e) }
}

/// Advances one connection through connect → request → response.
fn step(conn: &mut Conn, wire: &[u8], scratch: &mut [u8], summary: &mut IdleSummary) {
    if conn.phase == Phase::Connecting {
        match conn.stream.take_error() {
            Ok(None) => {}
            _ => {
                conn.phase = Phase::Gone;
                return;
            }
        }
        match conn.stream.peer_addr() {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
            Err(_) => {
                conn.phase = Phase::Gone;
                return;
            }
        }
        // A small request on a fresh socket goes out whole or not at all.
        if conn.stream.write(wire).ok() != Some(wire.len()) {
            conn.phase = Phase::Gone;
            return;
        }
        conn.phase = Phase::Awaiting;
    }
    if conn.phase != Phase::Awaiting {
        return;
    }
    loop {
        match conn.stream.read(scratch) {
            Ok(0) => {
                conn.phase = Phase::Gone;
                return;
            }
            Ok(n) => {
                conn.leftover.extend_from_slice(&scratch[..n]);
                match parse_one(conn) {
                    Ok(Some(status)) => {
                        summary.held += 1;
                        summary.non_2xx += usize::from(!(200..300).contains(&status));
                        conn.leftover = Vec::new();
                        conn.phase = Phase::Held;
                        return;
                    }
                    Ok(None) if conn.leftover.len() <= LEFTOVER_BYTES_MAX => {}
                    _ => {
                        conn.phase = Phase::Gone;
                        return;
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                conn.phase = Phase::Gone;
                return;
            }
        }
    }
}

/// Frames the first response in the connection's bytes, if complete.
fn parse_one(conn: &mut Conn) -> Result<Option<u16>, crate::response::ParseError> {
    let mut pos = 0;
    loop {
        match conn.parser.parse(&conn.leftover[pos..], false)? {
            Step::NeedMore => {
                conn.leftover.drain(..pos);
                return Ok(None);
            }
            Step::Consumed(n) => pos += n,
            Step::Complete { response, .. } => return Ok(Some(response.status)),
        }
    }
}

/// Drains a held connection; true when the server has closed it.
fn closed_by_peer(conn: &mut Conn, scratch: &mut [u8]) -> bool {
    loop {
        match conn.stream.read(scratch) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
}
