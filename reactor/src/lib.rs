//! seckill's event loops: one mio poller per core.
//!
//! The reactor owns sockets, connections, buffers, timeouts and shutdown. It
//! knows HTTP only through `seckill-protocol` and knows nothing of routes or
//! the sale: every complete request goes to a [`Handler`], one per loop, which
//! either answers at once or *parks* the request. Another thread later
//! completes a parked request through a [`Completer`]; the loop is woken once
//! per batch of completions and writes the answer in pipeline order.
//!
//! Map of the modules:
//! - `lib.rs`: the public API — [`ReactorConfig`], [`Handler`], [`Reactor`], [`LoopStats`].
//! - [`Exchange`] (`exchange.rs`): the handler's view of one request.
//! - `event_loop.rs`: one loop — poll, accept, service connections, timers, shutdown.
//! - `connection.rs`: one connection — socket, pooled buffers, ordered answer slots.
//! - `table.rs`: the generation-tagged connection table and the reserved tokens.
//! - `buffers.rs`: per-loop pools of read states (buffer + parser) and write buffers.
//! - `timer.rs`: the coarse hashed timing wheel (100 ms ticks).
//! - `listener.rs`: SO_REUSEPORT listeners and the acceptor thread.
//! - `completion.rs`: [`ParkToken`], [`Completer`] and the per-loop inboxes and wakers.
//! - `shutdown.rs`: the shutdown signal, the connection admission count, exit tracking.
//! - `affinity.rs`: optional CPU pinning.
//!
//! Architecture invariants:
//! - a loop never blocks except in `poll`; a handler must not block either;
//! - responses on one connection leave in request order, parked or not;
//! - a stale event or completion never reaches a connection slot reused by a
//!   newer connection (tokens carry a generation);
//! - everything is bounded: connections, buffered bytes, pipelined requests,
//!   work per tick;
//! - an idle keep-alive connection holds no buffer (about 250 bytes of RSS);
//!   the steady-state request path allocates nothing (`tests/alloc.rs`).
//!
//! Connection rules the handler can rely on: `Connection: close` or an
//! HTTP/1.0 request without keep-alive ends reading, and the connection
//! closes once that answer is written; a protocol error is answered with
//! `write_error` and then the same; a client that half-closes still gets
//! every answer it is owed. Closing is a half-close (`shutdown(Write)`)
//! followed by discarding input until the client's EOF or 2 s, so the client
//! reads the last answer rather than a reset.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::{Poll, Waker};
use seckill_protocol::{DateHeader, Limits, OwnedRequest, Request, RequestInfo};

mod affinity;
mod buffers;
mod completion;
mod connection;
mod event_loop;
mod exchange;
mod listener;
mod shutdown;
mod table;
mod timer;

pub use completion::{Completer, ParkToken};
pub use exchange::Exchange;

use completion::Outbox;
use event_loop::{EventLoop, LoopSetup};
use listener::Acceptor;
use shutdown::{Admission, ExitGuard, Shutdown};

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

/// Per-loop request handling. One instance per loop, never shared, so it may
/// keep caches without locks.
pub trait Handler: 'static {
    /// The answer to a parked request, sent from another thread.
    type Completion: Send + 'static;

    /// Answers `request` through `exchange.respond`, or parks it.
    fn handle(&mut self, request: &Request<'_>, exchange: &mut Exchange<'_>);

    /// Writes the answer to a parked request. `info` is the request's; the
    /// writer for it is built with `ResponseWriter::new(out, date, info, status)`.
    fn complete(
        &mut self,
        completion: Self::Completion,
        info: RequestInfo,
        parked_at: Instant,
        date: &DateHeader,
        out: &mut Vec<u8>,
    );

    /// Whether `completion` asks instead for its request to be handled again
    /// on this loop, from the copy it carries: e.g. a worker fetched what the
    /// loop lacked (a session held by another instance). The request then
    /// goes through [`handle`](Self::handle) in its place in the pipeline,
    /// and may be answered or parked again. The default never replays.
    fn replay(&mut self, completion: Self::Completion) -> Result<OwnedRequest, Self::Completion> {
        Err(completion)
    }

    /// Writes the answer to a parked request whose deadline passed before a
    /// completion came (a completion arriving later is dropped).
    fn park_expired(&mut self, info: RequestInfo, parked_at: Instant, date: &DateHeader, out: &mut Vec<u8>);

    /// Called once per loop iteration, after events are handled.
    fn tick(&mut self, now: Instant) {
        let _ = now;
    }
}

/// Counters of one loop, updated with relaxed atomics by the loop alone and
/// read by anyone (for `/metrics`). Aligned to two cache lines so that
/// neighbouring loops in the stats slice never write the same line.
#[derive(Debug, Default)]
#[repr(align(128))]
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
    /// Completions that found no parked request: its connection closed, or
    /// its deadline passed first, or it was completed twice.
    pub completions_stale: std::sync::atomic::AtomicU64,
}

/// A running set of event loops. Dropping it does not stop them: call
/// [`Reactor::shutdown`] and [`Reactor::join`].
pub struct Reactor<C> {
    local_addr: SocketAddr,
    outboxes: Arc<[Outbox<C>]>,
    stats: Arc<[LoopStats]>,
    shutdown: Arc<Shutdown>,
    /// Every thread's waker: the loops', then the acceptor's if any.
    wakers: Vec<Arc<Waker>>,
    threads: Vec<JoinHandle<()>>,
}

impl<C> std::fmt::Debug for Reactor<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reactor")
            .field("local_addr", &self.local_addr)
            .field("loops", &self.stats.len())
            .finish_non_exhaustive()
    }
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
        let threads = config.threads.max(1);
        let (mut listeners, acceptor_listener) = match config.design {
            Design::ReusePort => {
                (listener::bind_reuseport(config.listen, threads)?.into_iter().map(Some).collect(), None)
            }
            Design::Acceptor => {
                ((0..threads).map(|_| None).collect::<Vec<_>>(), Some(listener::bind(config.listen, false)?))
            }
        };
        let local_addr = match (&acceptor_listener, listeners.first()) {
            (Some(listener), _) => listener.local_addr()?,
            (None, Some(Some(listener))) => listener.local_addr()?,
            _ => return Err(std::io::Error::other("no listener bound")),
        };
        let mut polls = Vec::with_capacity(threads);
        let mut wakers = Vec::with_capacity(threads + 1);
        for _ in 0..threads {
            let poll = Poll::new()?;
            wakers.push(Arc::new(Waker::new(poll.registry(), table::WAKER)?));
            polls.push(poll);
        }
        let acceptor_poll = match acceptor_listener {
            Some(_) => {
                let poll = Poll::new()?;
                wakers.push(Arc::new(Waker::new(poll.registry(), listener::ACCEPTOR_WAKER)?));
                Some(poll)
            }
            None => None,
        };
        let admission = Arc::new(Admission::new(config.connections_max, wakers.clone().into_boxed_slice()));
        let shutdown = Arc::new(Shutdown::new(wakers.len()));
        let stats: Arc<[LoopStats]> = (0..threads).map(|_| LoopStats::default()).collect();
        let mut inboxes = Vec::with_capacity(threads);
        let mut outboxes = Vec::with_capacity(threads);
        for waker in wakers.iter().take(threads) {
            let (sender, receiver) = crossbeam_channel::unbounded();
            inboxes.push(receiver);
            outboxes.push(Outbox { sender, waker: Arc::clone(waker) });
        }
        let mut handoff_senders = Vec::new();
        let mut handoff_receivers: Vec<Option<_>> = Vec::new();
        for _ in 0..threads {
            if acceptor_listener.is_some() {
                // Unbounded, because admission already bounds the sockets in flight to `connections_max`.
                let (sender, receiver) = crossbeam_channel::unbounded();
                handoff_senders.push(sender);
                handoff_receivers.push(Some(receiver));
            } else {
                handoff_receivers.push(None);
            }
        }
        let make_handler = Arc::new(make_handler);
        let mut handles = Vec::with_capacity(wakers.len());
        let setups = polls.into_iter().zip(inboxes).zip(handoff_receivers).enumerate();
        for (id, ((poll, inbox), handoff)) in setups {
            let setup = LoopSetup {
                id,
                poll,
                listener: listeners[id].take(),
                handoff,
                inbox,
                config: config.clone(),
                stats: Arc::clone(&stats),
                shutdown: Arc::clone(&shutdown),
                admission: Arc::clone(&admission),
            };
            let make_handler = Arc::clone(&make_handler);
            let exit = ExitGuard(Arc::clone(&shutdown));
            let pin = config.pin_cpus;
            let handle = std::thread::Builder::new().name(format!("seckill-loop-{id}")).spawn(move || {
                if pin && let Err(e) = affinity::pin_current_thread(id) {
                    eprintln!("seckill-reactor: loop {id} not pinned: {e}");
                }
                let handler = make_handler(id);
                match EventLoop::new(setup, handler) {
                    Ok(event_loop) => event_loop.run(exit),
                    Err(e) => eprintln!("seckill-reactor: loop {id} failed to start: {e}"),
                }
            })?;
            handles.push(handle);
        }
        if let (Some(listener), Some(poll)) = (acceptor_listener, acceptor_poll) {
            let acceptor = Acceptor {
                poll,
                listener,
                loops: handoff_senders.into_iter().zip(wakers.iter().take(threads).cloned()).collect(),
                shutdown: Arc::clone(&shutdown),
                admission: Arc::clone(&admission),
                admission_index: threads,
            };
            let exit = ExitGuard(Arc::clone(&shutdown));
            handles.push(std::thread::Builder::new().name("seckill-acceptor".into()).spawn(move || {
                let _exit = exit;
                acceptor.run();
            })?);
        }
        Ok(Reactor { local_addr, outboxes: Arc::from(outboxes), stats, shutdown, wakers, threads: handles })
    }

    /// The bound address (the real port when `listen` had port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle for completing parked requests from other threads.
    pub fn completer(&self) -> Completer<C> {
        Completer::new(Arc::clone(&self.outboxes))
    }

    /// One entry per loop.
    pub fn stats(&self) -> std::sync::Arc<[LoopStats]> {
        Arc::clone(&self.stats)
    }

    /// Begins a graceful shutdown: accepting continues for `drain` (so a load
    /// balancer that saw /readyz turn 503 can move away), then the listeners
    /// close; requests already received are answered (parked ones included),
    /// idle connections are closed, and each loop exits when it holds no
    /// unanswered request. Returns at once.
    pub fn shutdown(&self, drain: Duration) {
        self.shutdown.request(Instant::now() + drain);
        for waker in &self.wakers {
            // A failed wake means that thread is already gone.
            let _ = waker.wake();
        }
    }

    /// Waits for every loop to exit, up to `deadline`. True if all exited.
    pub fn join(self, deadline: Instant) -> bool {
        if !self.shutdown.wait_exited(deadline) {
            return false;
        }
        for handle in self.threads {
            // Every thread has signalled its exit; a panic was already reported on stderr.
            let _ = handle.join();
        }
        true
    }
}
