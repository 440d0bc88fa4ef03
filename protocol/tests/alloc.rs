//! Parsing and encoding allocate nothing once a connection's buffers are
//! warm: counted with a global allocator over 10,000 rounds.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::{Duration, UNIX_EPOCH};

use seckill_protocol::{
    ContentType, DateHeader, Limits, Parse, RequestInfo, RequestParser, ResponseWriter, Status, Version,
};

/// Counts the allocations of the current thread only: the test harness's
/// other threads must not disturb the count.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every method forwards to `System` unchanged; the counter is a
// thread-local `Cell` with a const initialiser, which does not allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` through `alloc` or `realloc`.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: as for `dealloc`, and the caller upholds `realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

const SECKILL_POST: &[u8] =
    b"POST /api/seckill/3f8a9c2e7b1d4f6a8c0e2b4d6f8a0c2e4b6d8f0a2c4e6b8d0f2a4c6e8b0d2f4a HTTP/1.1\r\n\
Host: shop.example.com\r\n\
Cookie: session=u42.1732240000.9f8e7d6c5b4a39281706f5e4d3c2b1a0\r\n\
Content-Type: application/json\r\n\
Content-Length: 47\r\n\
\r\n\
{\"item_id\":1,\"quantity\":1,\"request_id\":\"r-123\"}";

const CHUNKED_POST: &[u8] = b"POST /api/seckill/abc HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n\
10\r\n{\"item_id\":1,\"qu\r\n1f;ext=1\r\nantity\":1,\"request_id\":\"r-123\"}\r\n0\r\n\r\n";

const RESPONSE: &[u8] =
    b"{\"status\":\"success\",\"order_id\":\"1234567890123456789\",\"pay_deadline_ms\":1732240600000}";

/// Parses every request in `input` and answers each one; returns the count.
fn serve(parser: &mut RequestParser, input: &[u8], out: &mut Vec<u8>, date: &DateHeader) -> usize {
    out.clear();
    let (mut at, mut served) = (0, 0);
    loop {
        match parser.parse(&input[at..]) {
            Parse::Complete(request) => {
                assert!(request.body.len() == 47, "the body was decoded");
                at += request.wire_len();
                served += 1;
                ResponseWriter::new(out, date, request.info(), Status::OK).body(ContentType::Json, RESPONSE);
            }
            Parse::Partial { .. } => return served,
            Parse::Error(error) => panic!("{error:?}"),
        }
    }
}

fn check_no_allocation(input: &[u8], requests: usize) {
    let date = DateHeader::new(UNIX_EPOCH + Duration::from_secs(1_732_240_000));
    let mut parser = RequestParser::new(Limits::default());
    let mut out = Vec::new();
    let info = RequestInfo { version: Version::Http11, keep_alive: true, head_only: false };
    let mut round = |out: &mut Vec<u8>| {
        assert_eq!(serve(&mut parser, input, out, &date), requests);
        // The writer with a body computed in place as well.
        ResponseWriter::new(out, &date, info, Status::OK)
            .body_with(ContentType::Json, |b| b.extend_from_slice(RESPONSE));
    };
    // Warm up: the output buffer and the chunked decode buffer reach their size.
    round(&mut out);

    let before = allocations();
    for _ in 0..10_000 {
        round(&mut out);
    }
    let counted = allocations() - before;
    println!("{requests} request(s) x 10,000: {counted} allocations");
    assert_eq!(counted, 0);
}

#[test]
fn a_seckill_post_allocates_nothing() {
    check_no_allocation(SECKILL_POST, 1);
}

#[test]
fn a_pipelined_batch_of_16_allocates_nothing() {
    check_no_allocation(&SECKILL_POST.repeat(16), 16);
}

#[test]
fn chunked_bodies_reuse_the_decode_buffer() {
    check_no_allocation(&CHUNKED_POST.repeat(4), 4);
}
