//! seckill's event loops: one mio poller per core.
//!
//! The reactor owns sockets, connections, buffers, timeouts and shutdown. It
//! knows HTTP only through `seckill-protocol` and knows nothing of routes or
//! the sale: every complete request goes to a [`Handler`], one per loop, which
//! either answers at once or *parks* the request. Another thread later
//! completes a parked request through a [`Completer`]; the loop is woken once
//! per batch of completions and writes the answer in pipeline order.
//!
//! Architecture invariants:
//! - a loop never blocks except in `poll`; a handler must not block either;
//! - responses on one connection leave in request order, parked or not;
//! - a stale event or completion never reaches a connection slot reused by a
//!   newer connection (tokens carry a generation);
//! - everything is bounded: connections, buffered bytes, pipelined requests,
//!   work per tick.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use seckill_protocol::{DateHeader, Limits, Request, RequestInfo, ResponseWriter, Status};

/// How connections reach the loops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Design {
    /// Every loop owns a listener on the same port (SO_REUSEPORT); the kernel
    /// spreads connections. With port 0, later listeners bind the port the first got.
    ReusePort,
    /// One acceptor thread hands accepted sockets to the loops round-robin.
    Acceptor,
}

/// Everything the reactor needs to run; the server builds it from the configuration.
#[derive(Clone, Debug)]
pub struct ReactorConfig {
    pub listen: SocketAddr,
    /// Event loops (already resolved: never 0).
    pub threads: usize,
    pub design: Design,
    pub limits: Limits,
    pub head_timeout: Duration,
    pub idle_timeout: Duration,
    /// Open connections across all loops; beyond it, stop accepting until one closes.
    pub connections_max: usize,
    /// Unanswered requests per connection; beyond it, stop reading that connection.
    pub pipeline_depth_max: usize,
    /// Pin loop `i` to CPU `i % cores`.
    pub pin_cpus: bool,
}

/// Identifies a parked request: its loop, its connection (slot and
/// generation) and its place in that connection's pipeline. `Copy` and
/// `Send`; meaningless to anyone but the reactor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ParkToken {
    _private: (),
}

/// What a handler sees besides the request: where to write the answer, or
/// how to park it, plus per-loop facts it may need.
#[derive(Debug)]
pub struct Exchange<'a> {
    _p: std::marker::PhantomData<&'a ()>,
}

impl<'a> Exchange<'a> {
    /// Starts the response to this request. Call at most once, and not after `park`.
    pub fn respond(&mut self, status: Status) -> ResponseWriter<'_> {
        let _ = status;
        todo!()
    }

    /// Parks the request: its answer will come from another thread through a
    /// [`Completer`] with the returned token, or, if none has come by
    /// `deadline`, from [`Handler::park_expired`].
    pub fn park(&mut self, deadline: Instant) -> ParkToken {
        let _ = deadline;
        todo!()
    }

    /// The client's address (the TCP peer; `X-Forwarded-For` is the handler's business).
    pub fn peer(&self) -> SocketAddr {
        todo!()
    }

    /// The loop's clock, read once per tick.
    pub fn now(&self) -> Instant {
        todo!()
    }

    /// Wall-clock time, read once per tick.
    pub fn wall_now(&self) -> SystemTime {
        todo!()
    }

    /// This loop's index, `0..threads`.
    pub fn loop_id(&self) -> usize {
        todo!()
    }
}

/// Per-loop request handling. One instance per loop, never shared, so it may
/// keep caches without locks.
pub trait Handler: 'static {
    /// The answer to a parked request, sent from another thread.
    type Completion: Send + 'static;

    /// Answers `request` through `exchange.respond`, or parks it.
    fn handle(&mut self, request: &Request<'_>, exchange: &mut Exchange<'_>);

    /// Writes the answer to a parked request. `info` is the request's; the
    /// writer for it is built with `ResponseWriter::new(out, date, info, status)`.
    fn complete(&mut self, completion: Self::Completion, info: RequestInfo, parked_at: Instant, date: &DateHeader, out: &mut Vec<u8>);

    /// Writes the answer to a parked request whose deadline passed before a
    /// completion came (a completion arriving later is dropped).
    fn park_expired(&mut self, info: RequestInfo, parked_at: Instant, date: &DateHeader, out: &mut Vec<u8>);

    /// Called once per loop iteration, after events are handled.
    fn tick(&mut self, now: Instant) {
        let _ = now;
    }
}

/// Sends completions of parked requests to their loops from any thread.
/// `push` queues without waking; `flush` wakes every loop that received
/// something since the last flush, once. Dropping flushes.
#[derive(Debug)]
pub struct Completer<C> {
    _p: std::marker::PhantomData<C>,
}

impl<C: Send + 'static> Completer<C> {
    /// Queues `completion` for the request parked under `token`.
    pub fn push(&mut self, token: ParkToken, completion: C) {
        let _ = (token, completion);
        todo!()
    }

    /// Wakes each loop that has new completions, once.
    pub fn flush(&mut self) {
        todo!()
    }
}

impl<C: Send + 'static> Clone for Completer<C> {
    fn clone(&self) -> Self {
        todo!()
    }
}

/// Counters of one loop, updated with relaxed atomics by the loop alone and
/// read by anyone (for `/metrics`).
#[derive(Debug, Default)]
pub struct LoopStats {
    pub accepted: std::sync::atomic::AtomicU64,
    pub closed: std::sync::atomic::AtomicU64,
    pub open_connections: std::sync::atomic::AtomicU64,
    pub requests: std::sync::atomic::AtomicU64,
    pub protocol_errors: std::sync::atomic::AtomicU64,
    pub head_timeouts: std::sync::atomic::AtomicU64,
    pub idle_timeouts: std::sync::atomic::AtomicU64,
    pub parked: std::sync::atomic::AtomicU64,
    pub completions: std::sync::atomic::AtomicU64,
    pub park_expired: std::sync::atomic::AtomicU64,
    pub wakeups: std::sync::atomic::AtomicU64,
    pub polls: std::sync::atomic::AtomicU64,
    pub bytes_read: std::sync::atomic::AtomicU64,
    pub bytes_written: std::sync::atomic::AtomicU64,
}

/// A running set of event loops.
#[derive(Debug)]
pub struct Reactor<C> {
    _p: std::marker::PhantomData<C>,
}

impl<C: Send + 'static> Reactor<C> {
    /// Binds the listener(s) and starts `config.threads` loops. Each loop
    /// builds its own handler with `make_handler(loop_id)` on its own thread,
    /// so a handler need not be `Send`. Returns once every listener is bound.
    pub fn start<H, F>(config: ReactorConfig, make_handler: F) -> std::io::Result<Reactor<C>>
    where
        H: Handler<Completion = C>,
        F: Fn(usize) -> H + Send + Sync + 'static,
    {
        let _ = (config, make_handler);
        todo!()
    }

    /// The bound address (the real port when `listen` had port 0).
    pub fn local_addr(&self) -> SocketAddr {
        todo!()
    }

    /// A handle for completing parked requests from other threads.
    pub fn completer(&self) -> Completer<C> {
        todo!()
    }

    /// One entry per loop.
    pub fn stats(&self) -> std::sync::Arc<[LoopStats]> {
        todo!()
    }

    /// Begins a graceful shutdown: accepting continues for `drain` (so a load
    /// balancer that saw /readyz turn 503 can move away), then the listeners
    /// close; requests already received are answered (parked ones included),
    /// idle connections are closed, and each loop exits when it holds no
    /// unanswered request. Returns at once.
    pub fn shutdown(&self, drain: Duration) {
        let _ = drain;
        todo!()
    }

    /// Waits for every loop to exit, up to `deadline`. True if all exited.
    pub fn join(self, deadline: Instant) -> bool {
        let _ = deadline;
        todo!()
    }
}
