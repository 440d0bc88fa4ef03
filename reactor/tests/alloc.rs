//! The steady-state request path allocates nothing: a counting global
//! allocator over thousands of keep-alive and pipelined requests through
//! real sockets, in both designs. A binary of its own, so no other test
//! allocates meanwhile; the client side uses only fixed buffers.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use seckill_protocol::{ContentType, DateHeader, Limits, Request, RequestInfo, Status};
use seckill_reactor::{Design, Exchange, Handler, Reactor, ReactorConfig};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the counter has no effect on memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        // SAFETY: the caller upholds `alloc`'s contract, which we pass on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        // SAFETY: as for `dealloc`; `new_size` comes from the caller's contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

struct Ok200;

impl Handler for Ok200 {
    type Completion = ();

    fn handle(&mut self, _request: &Request<'_>, exchange: &mut Exchange<'_>) {
        exchange.respond(Status::OK).body(ContentType::Json, b"{\"status\":\"ok\"}");
    }

    fn complete(&mut self, _: (), _: RequestInfo, _: Instant, _: &DateHeader, _: &mut Vec<u8>) {}

    fn park_expired(&mut self, _: RequestInfo, _: Instant, _: &DateHeader, _: &mut Vec<u8>) {}
}

const REQUEST: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";

/// Sends `depth` pipelined requests and reads until `depth` responses (each
/// ends with the JSON body) have arrived, with a fixed buffer.
fn round(stream: &mut TcpStream, batch: &[u8], depth: usize) {
    stream.write_all(batch).expect("send");
    let mut seen = 0;
    let mut buf = [0u8; 65536];
    let mut tail = [0u8; 15];
    while seen < depth {
        let n = stream.read(&mut buf).expect("read");
        assert!(n > 0, "closed");
        for &byte in &buf[..n] {
            tail.copy_within(1.., 0);
            tail[14] = byte;
            if &tail == b"{\"status\":\"ok\"}" {
                seen += 1;
            }
        }
    }
}

fn allocations_per_request(design: Design) -> (u64, u64) {
    let config = ReactorConfig {
        listen: "127.0.0.1:0".parse().expect("address"),
        threads: 2,
        design,
        limits: Limits::default(),
        head_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(60),
        connections_max: 1024,
        pipeline_depth_max: 64,
        pin_cpus: false,
    };
    let reactor: Reactor<()> = Reactor::start(config, |_| Ok200).expect("start");
    let mut streams: Vec<TcpStream> =
        (0..4).map(|_| TcpStream::connect(reactor.local_addr()).expect("connect")).collect();
    let batch: Vec<u8> = REQUEST.repeat(16);
    let mut run = |rounds: usize| {
        for _ in 0..rounds {
            for stream in streams.iter_mut() {
                round(stream, REQUEST, 1);
                round(stream, &batch, 16);
            }
        }
    };
    // Warm up: pools and buffers reach their working size.
    run(200);
    let before = ALLOCATIONS.load(Relaxed);
    let rounds = 1000;
    run(rounds);
    let allocations = ALLOCATIONS.load(Relaxed) - before;
    let requests = (rounds * 4 * 17) as u64;
    reactor.shutdown(Duration::ZERO);
    drop(streams);
    assert!(reactor.join(Instant::now() + Duration::from_secs(5)));
    (allocations, requests)
}

#[test]
fn the_request_path_does_not_allocate() {
    for design in [Design::ReusePort, Design::Acceptor] {
        let (allocations, requests) = allocations_per_request(design);
        eprintln!("{design:?}: {allocations} allocations over {requests} requests");
        // A handful at most (a timer slot's first entry, say), never one per request.
        assert!(allocations <= 16, "{design:?}: {allocations} allocations over {requests} requests");
    }
}
