//! The buy's refusal path allocates nothing (issue 5): 100,000 seckill
//! requests through real sockets, answered 410 `sold_out` and 409
//! `limit_reached`, counted by a global allocator over the server's event
//! loops.
//!
//! The allocator has to see the server's threads, so the server runs in
//! this process (`seckill::server::start`). `tests/counting_alloc` counts
//! only the thread that asks it to, which cannot be a loop we did not
//! spawn; the allocator here counts per thread, by the thread's name, while
//! a window is open, and this test's own threads (set-up and pipelining
//! clients, which write pre-built bytes and read into fixed buffers) mark
//! themselves out. Every server thread's count is printed; the loops'
//! (the whole refusal path runs on them) must be zero.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use common::sale::{User, now_ms, path_on, poll_until, send, users_on};
use common::{Conn, TempDir, parse_response};
use serde_json::json;

// --- The allocator -----------------------------------------------------

/// Counts allocations per thread while [`WINDOW`] is open.
struct PerThread;

/// Whether allocations are being counted.
static WINDOW: AtomicBool = AtomicBool::new(false);

/// One counted thread: its name (16 bytes, as the kernel keeps it) and count.
struct Slot {
    name: [AtomicU64; 2],
    allocations: AtomicU64,
}

const SLOTS_MAX: usize = 64;
#[allow(clippy::declare_interior_mutable_const)] // only used to initialise SLOTS
const EMPTY_SLOT: Slot = Slot { name: [AtomicU64::new(0), AtomicU64::new(0)], allocations: AtomicU64::new(0) };
static SLOTS: [Slot; SLOTS_MAX] = [EMPTY_SLOT; SLOTS_MAX];
static SLOTS_USED: AtomicUsize = AtomicUsize::new(0);
/// Allocations of threads beyond `SLOTS_MAX` (there should be none).
static UNSLOTTED: AtomicU64 = AtomicU64::new(0);

/// A thread's place in [`SLOTS`]: not yet known, this test's own, or a slot.
const UNKNOWN: usize = usize::MAX;
const OURS: usize = usize::MAX - 1;
const NO_SLOT: usize = usize::MAX - 2;

/// Where the first counted allocation of an event loop came from.
static FIRST_LOOP_TRACE: Mutex<Option<String>> = Mutex::new(None);
static TRACE_TAKEN: AtomicBool = AtomicBool::new(false);

thread_local! {
    // `const` and no destructor: safe to touch from inside the allocator.
    static SLOT: Cell<usize> = const { Cell::new(UNKNOWN) };
    static INSIDE: Cell<bool> = const { Cell::new(false) };
}

/// This thread's name as the kernel has it (at most 15 bytes, no allocation).
fn thread_name() -> [u8; 16] {
    let mut name = [0u8; 16];
    // SAFETY: the buffer is 16 bytes, the size pthread_getname_np needs on
    // Linux, and `pthread_self` is always a valid thread.
    unsafe { libc::pthread_getname_np(libc::pthread_self(), name.as_mut_ptr().cast(), name.len()) };
    name
}

/// Whether a thread of this name runs the request path (event loops, and
/// the acceptor of the `acceptor` design).
fn is_request_path(name: &[u8]) -> bool {
    name.starts_with(b"seckill-loop") || name.starts_with(b"seckill-accept")
}

/// Claims a slot for this thread, named; called once per thread, in the window.
fn claim_slot() -> usize {
    let index = SLOTS_USED.fetch_add(1, Relaxed);
    if index >= SLOTS_MAX {
        return NO_SLOT;
    }
    let name = thread_name();
    let [a, b] = [&name[..8], &name[8..]].map(|half| u64::from_ne_bytes(half.try_into().unwrap()));
    SLOTS[index].name[0].store(a, Relaxed);
    SLOTS[index].name[1].store(b, Relaxed);
    index
}

fn note_allocation() {
    if !WINDOW.load(Relaxed) || INSIDE.with(Cell::get) {
        return;
    }
    let mut slot = SLOT.with(Cell::get);
    if slot == UNKNOWN {
        slot = claim_slot();
        SLOT.with(|s| s.set(slot));
    }
    match slot {
        OURS => {}
        NO_SLOT => {
            UNSLOTTED.fetch_add(1, Relaxed);
        }
        index => {
            SLOTS[index].allocations.fetch_add(1, Relaxed);
            if is_request_path(&thread_name()) && !TRACE_TAKEN.swap(true, Relaxed) {
                // The backtrace allocates: not counted (INSIDE), and only once.
                INSIDE.with(|inside| inside.set(true));
                let trace = std::backtrace::Backtrace::force_capture().to_string();
                *FIRST_LOOP_TRACE.lock().unwrap_or_else(|e| e.into_inner()) = Some(trace);
                INSIDE.with(|inside| inside.set(false));
            }
        }
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator, which
// upholds the `GlobalAlloc` contract; counting touches only atomics and
// const thread-locals, which need no allocation (the one backtrace is
// taken with counting off for this thread, its allocations forwarded too).
unsafe impl GlobalAlloc for PerThread {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: the caller's guarantees for `layout` are passed on as they are.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        // SAFETY: `ptr` and `layout` come from this allocator, which is `System`'s.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` and `layout` come from this allocator, which is `System`'s.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: PerThread = PerThread;

/// This test's own threads are not the server's: never counted.
fn mark_ours() {
    SLOT.with(|s| s.set(OURS));
}

/// (thread name, allocations) of every thread that allocated in the window.
fn counted() -> Vec<(String, u64)> {
    let used = SLOTS_USED.load(Relaxed).min(SLOTS_MAX);
    let mut threads: Vec<(String, u64)> = SLOTS[..used]
        .iter()
        .map(|slot| {
            let bytes: Vec<u8> = slot.name.iter().flat_map(|half| half.load(Relaxed).to_ne_bytes()).collect();
            let name = String::from_utf8_lossy(&bytes).trim_end_matches('\0').to_string();
            (name, slot.allocations.load(Relaxed))
        })
        .collect();
    threads.push(("(threads beyond the table)".into(), UNSLOTTED.load(Relaxed)));
    threads.retain(|(_, n)| *n > 0);
    threads
}

/// Opens the window, runs `work`, closes it; returns what was counted and
/// the first loop allocation's backtrace, and forgets both.
fn window(work: impl FnOnce()) -> (Vec<(String, u64)>, Option<String>) {
    WINDOW.store(true, Relaxed);
    work();
    WINDOW.store(false, Relaxed);
    let threads = counted();
    for slot in &SLOTS {
        slot.allocations.store(0, Relaxed);
    }
    UNSLOTTED.store(0, Relaxed);
    // A loop may still be writing its backtrace down.
    let trace = poll_until(Duration::from_secs(10), || {
        let trace = FIRST_LOOP_TRACE.lock().unwrap().take();
        (trace.is_some() || !TRACE_TAKEN.load(Relaxed)).then_some(trace)
    })
    .flatten();
    TRACE_TAKEN.store(false, Relaxed);
    (threads, trace)
}

/// Without this, a broken counter would pass the test: a thread named like
/// a loop is counted, with a backtrace, and ours is not.
fn check_the_counter() {
    // (The harness's own main thread may allocate meanwhile: not asserted on.)
    let ours = String::from_utf8_lossy(&thread_name()).trim_end_matches('\0').to_string();
    let (threads, _) = window(|| drop(std::hint::black_box(vec![1_u8; 16])));
    assert!(threads.iter().all(|(name, _)| *name != ours), "this test's own thread is not counted: {threads:?}");
    let probe = std::thread::Builder::new().name("seckill-loop-probe".into());
    let probe = probe.spawn(|| window(|| drop(std::hint::black_box(vec![1_u8; 16])))).unwrap();
    let (threads, trace) = probe.join().unwrap();
    // The kernel keeps 15 bytes of a thread's name.
    let probed: Vec<_> = threads.iter().filter(|(name, _)| is_request_path(name.as_bytes())).collect();
    assert_eq!(probed, [&("seckill-loop-pr".to_string(), 1)], "a loop's allocation is counted: {threads:?}");
    assert!(trace.is_some_and(|t| t.contains("check_the_counter")), "with a backtrace");
}

// --- The test ----------------------------------------------------------

const ADMIN: &str = "buy-alloc-admin-token-0123456789abcdef";
/// Users who hold the item's only units (their buys answer 409), and as
/// many who hold none (410).
const HOLDERS: usize = 50;
const ITEM: u64 = 1;
/// Connections per refusal kind, each on its own client thread.
const CONNECTIONS_PER_KIND: usize = 2;
/// Requests written at once on a connection (below `http.pipeline_depth_max`).
const PIPELINED: usize = 32;
const WARMUP_BATCHES: usize = 100;
/// 4 connections × 782 batches × 32 = 100,096 requests in the window.
const MEASURED_BATCHES: usize = 782;

/// Starts the server in this process on a fresh data directory; returns
/// its address and how long a parked buy may wait for its batch.
fn start_in_process(dir: &TempDir) -> (SocketAddr, Duration) {
    let data = dir.path().join("data");
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--threads",
        "2",
        "--log-level",
        "warn",
        "--admin-token",
        ADMIN,
        "--store",
        &format!("sqlite://{}/seckill.db", data.display()),
        "--set",
        &format!("server.data_dir={}", data.display()),
        "--set",
        "auth.argon2_memory_kib=64",
        "--set",
        "auth.argon2_iterations=1",
        // Rate limits on, so that their checks are on the measured path, but
        // far from binding.
        "--set",
        "limits.per_user_rps=1000000",
        "--set",
        "limits.per_user_burst=1000000",
        "--set",
        "limits.per_ip_rps=10000000",
        "--set",
        "limits.per_ip_burst=10000000",
    ]
    .map(String::from);
    let config = match seckill_config::Config::load(args, std::iter::empty()) {
        Ok(seckill_config::Loaded::Run(config)) => config,
        other => panic!("configuration: {other:?}"),
    };
    let running = seckill::server::start(&config).expect("server starts");
    let addr = running.local_addr();
    // The server lives as long as the test process: the loops keep running.
    std::mem::forget(running);
    (addr, Duration::from_millis(config.sale.confirm_timeout_ms))
}

/// One buy request as bytes.
fn buy_bytes(user: &User, path: &str) -> Vec<u8> {
    let body = json!({ "item_id": ITEM }).to_string();
    format!(
        "POST /api/seckill/{path} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        user.token,
        body.len()
    )
    .into_bytes()
}

/// A client connection replaying one refusal kind: `PIPELINED` pre-built
/// requests per write, their answers read into a fixed buffer and checked
/// by their status line (every answer of a kind has the same length).
struct Client {
    conn: Conn,
    batch: Vec<u8>,
    status_line: &'static [u8],
    answer_len: usize,
    answers: Vec<u8>,
}

impl Client {
    /// Sends one batch and parses its answers the slow way, to learn their
    /// common length.
    fn new(addr: SocketAddr, requests: &[Vec<u8>], status: u16, code: &str) -> Client {
        let batch: Vec<u8> = requests.iter().cycle().take(PIPELINED).flatten().copied().collect();
        let mut conn = Conn::connect(addr);
        conn.send(&batch);
        let (mut raw, mut lengths) = (Vec::new(), Vec::new());
        while lengths.len() < PIPELINED {
            let consumed: usize = lengths.iter().sum();
            if let Some((resp, used)) = parse_response(&raw[consumed..], false).expect("a response") {
                assert_eq!(resp.status, status, "{}", resp.text());
                assert_eq!(resp.json()["code"], code);
                lengths.push(used);
                continue;
            }
            let mut chunk = [0u8; 16_384];
            let n = conn.stream.read(&mut chunk).expect("read");
            assert!(n > 0, "the server closed the connection");
            raw.extend_from_slice(&chunk[..n]);
        }
        let answer_len = lengths[0];
        assert!(lengths.iter().all(|&n| n == answer_len), "answers of one kind have one length: {lengths:?}");
        let status_line: &'static [u8] = if status == 409 { b"HTTP/1.1 409 " } else { b"HTTP/1.1 410 " };
        Client { conn, batch, status_line, answer_len, answers: vec![0; answer_len * PIPELINED] }
    }

    /// One batch, allocation-free.
    fn round(&mut self) {
        self.conn.stream.write_all(&self.batch).expect("write");
        let mut filled = 0;
        while filled < self.answers.len() {
            match self.conn.stream.read(&mut self.answers[filled..]) {
                Ok(0) | Err(_) => panic!("the server closed or stalled after {filled} bytes"),
                Ok(n) => filled += n,
            }
        }
        for answer in self.answers.chunks(self.answer_len) {
            assert!(answer.starts_with(self.status_line), "{}", String::from_utf8_lossy(answer));
        }
    }
}

#[test]
fn the_refusal_path_allocates_nothing_over_100_000_requests() {
    mark_ours();
    check_the_counter();
    let dir = TempDir::new("buy-alloc");
    let (addr, confirm_timeout) = start_in_process(&dir);
    let mut setup = Conn::connect(addr);
    let now = now_ms();
    let item = json!({
        "name": "Refused", "description": "", "price_cents": 100, "stock": HOLDERS, "per_user_limit": 1,
        "start_ms": now - 1000, "end_ms": now + 3_600_000,
    });
    let resp = send(&mut setup, "PUT", &format!("/admin/items/{ITEM}"), Some(ADMIN), item.to_string().as_bytes());
    assert_eq!(resp.status, 200, "{}", resp.text());
    let users = users_on(&mut setup, ADMIN, "refused", 2 * HOLDERS);
    let requests: Vec<Vec<u8>> = users.iter().map(|u| buy_bytes(u, &path_on(&mut setup, ADMIN, u, ITEM))).collect();
    // The holders take every unit: from now on they are at the limit (409)
    // and everyone else finds the item sold out (410).
    for request in &requests[..HOLDERS] {
        setup.send(request);
        let resp = setup.read_response(false);
        assert_eq!(resp.status, 200, "{}", resp.text());
    }
    // Those buys were parked: their confirm deadlines stay in the loop's
    // timer wheel and fire (growing its list of due timers) after the
    // timeout. That is the set-up's, not the refusal path's: warm up past it.
    let warm_until = Instant::now() + confirm_timeout + Duration::from_millis(500);
    let (holders, others) = requests.split_at(HOLDERS);
    let kinds = [(holders, 409, "limit_reached"), (others, 410, "sold_out")];

    let ready = Barrier::new(2 * CONNECTIONS_PER_KIND + 1);
    let go = Barrier::new(2 * CONNECTIONS_PER_KIND + 1);
    let done = Barrier::new(2 * CONNECTIONS_PER_KIND + 1);
    let closed = Barrier::new(2 * CONNECTIONS_PER_KIND + 1);
    let mut elapsed = Duration::ZERO;
    let (threads, first_trace) = std::thread::scope(|s| {
        for (requests, status, code) in kinds {
            for n in 0..CONNECTIONS_PER_KIND {
                let (ready, go, done, closed) = (&ready, &go, &done, &closed);
                // Each connection starts at another user, so every user is asked.
                let requests: Vec<Vec<u8>> =
                    requests.iter().cycle().skip(n * PIPELINED).take(requests.len()).cloned().collect();
                s.spawn(move || {
                    mark_ours();
                    let mut client = Client::new(addr, &requests, status, code);
                    // Warm: per-connection buffers, session caches, counters' maps.
                    let mut batches = 0;
                    while batches < WARMUP_BATCHES || Instant::now() < warm_until {
                        client.round();
                        batches += 1;
                    }
                    ready.wait();
                    go.wait();
                    for _ in 0..MEASURED_BATCHES {
                        client.round();
                    }
                    done.wait();
                    // Closing is not the refusal path (the loop's first
                    // close grows its free list): after the window.
                    closed.wait();
                });
            }
        }
        ready.wait();
        // The window opens once every client is warm, before any measured request.
        let counted = window(|| {
            let started = Instant::now();
            go.wait();
            done.wait();
            elapsed = started.elapsed();
        });
        closed.wait();
        counted
    });

    let requests = 2 * CONNECTIONS_PER_KIND * MEASURED_BATCHES * PIPELINED;
    let on_loops: u64 = threads.iter().filter(|(name, _)| is_request_path(name.as_bytes())).map(|(_, n)| n).sum();
    println!(
        "{requests} refused buys (409 and 410, {PIPELINED} pipelined per write, {} connections) in {} ms: \
         {:.0} requests/s; allocations on the event loops: {on_loops} ({:.4} per request); \
         every server thread that allocated in the window: {threads:?}",
        2 * CONNECTIONS_PER_KIND,
        elapsed.as_millis(),
        requests as f64 / elapsed.as_secs_f64(),
        on_loops as f64 / requests as f64,
    );
    assert!(requests >= 100_000);
    assert_eq!(
        on_loops,
        0,
        "allocations on the refusal path over {requests} requests; the first one:\n{}",
        first_trace.as_deref().unwrap_or("(no backtrace)")
    );
    let stats = send(&mut setup, "GET", &format!("/admin/items/{ITEM}/stats"), Some(ADMIN), b"").json();
    assert_eq!((stats["pending_payment"].as_u64(), stats["stock_left"].as_u64()), (Some(HOLDERS as u64), Some(0)));
}
