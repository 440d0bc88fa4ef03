//! One event loop: a mio `Poll`, its listener (reuseport) or handoff channel
//! (acceptor), its connections, its timer wheel, its completion inbox.
//!
//! An iteration: poll (timeout = next timer tick, or zero when work is
//! queued); read the clocks and refresh the `Date` line once; handle events
//! (each connection is *serviced*: flush, parse and answer every buffered
//! request, read once, answer, flush — one write for all the answers);
//! accept a bounded batch; take in handed-off sockets and completions;
//! service the connections queued in the ready list (work left over from a
//! bounded pass, or unblocked by a completion); fire due timers; call
//! `Handler::tick`; advance shutdown.

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::Receiver;
use mio::event::Event;
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Registry};
use seckill_protocol::response::write_error;
use seckill_protocol::{CONTINUE_100, DateHeader, HttpError, OwnedRequest, Parse, RequestInfo, ResponseWriter, Status};

use crate::buffers::{Pools, ReadState};
use crate::completion::{Inbox, ParkToken};
use crate::connection::{Connection, Slot, SlotState};
use crate::exchange::{Context, Exchange, Outcome};
use crate::listener::{ACCEPT_BATCH, Handoff, prepare};

use crate::shutdown::{Admission, ExitGuard, Shutdown};
use crate::table::{Key, LISTENER, Table, WAKER};
use crate::timer::{self, Wheel};
use crate::{Handler, LoopStats, ReactorConfig};

/// Requests answered per connection per pass before others get a turn.
const REQUESTS_PER_PASS: usize = 64;
/// Completions and handed-off sockets taken per iteration.
const INBOX_PER_TICK: usize = 4096;
/// How long a closing connection waits for the client's EOF after our last answer.
const LINGER: Duration = Duration::from_secs(2);
/// Input discarded while lingering before giving up and closing anyway.
const LINGER_DISCARD_MAX: usize = 64 * 1024;
/// Spare buffers a loop keeps of each kind.
const POOLED_MAX: usize = 256;
const EVENTS_CAPACITY: usize = 1024;

/// Everything a loop thread is started with.
#[derive(Debug)]
pub(crate) struct LoopSetup<C> {
    pub id: usize,
    pub poll: Poll,
    pub listener: Option<TcpListener>,
    pub handoff: Option<Receiver<Handoff>>,
    pub inbox: Inbox<C>,
    pub config: ReactorConfig,
    pub stats: Arc<[LoopStats]>,
    pub shutdown: Arc<Shutdown>,
    pub admission: Arc<Admission>,
}

/// Why a pass over a connection's buffered input stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    /// Nothing buffered but (at most) an incomplete request.
    Drained,
    /// `pipeline_depth_max` answers are outstanding.
    Depth,
    /// The per-pass request budget is spent.
    Budget,
    /// No further request will be read.
    Finished,
}

/// What becomes of a connection after it was worked on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Keep,
    Close,
}

/// The loop's state apart from the connection table, so that a connection
/// borrowed from the table and the rest can be used together.
struct Core<H: Handler> {
    id: usize,
    handler: H,
    config: ReactorConfig,
    all_stats: Arc<[LoopStats]>,
    date: DateHeader,
    now: Instant,
    wall_now: SystemTime,
    pools: Pools,
    wheel: Wheel,
    /// Connections to service without a new event.
    ready: Vec<Key>,
    registry: Registry,
    admission: Arc<Admission>,
    read_max: usize,
    /// Listeners closed; connections are being wound down.
    stopping: bool,
}

pub(crate) struct EventLoop<H: Handler> {
    poll: Poll,
    events: Events,
    table: Table<Connection>,
    core: Core<H>,
    listener: Option<TcpListener>,
    /// The listener may hold connections not yet accepted.
    accept_pending: bool,
    /// Accepting stopped at `connections_max`; a close anywhere resumes it.
    accept_paused: bool,
    handoff: Option<Receiver<Handoff>>,
    inbox: Inbox<H::Completion>,
    inbox_pending: bool,
    shutdown: Arc<Shutdown>,
    due: Vec<timer::Entry>,
    ready_scratch: Vec<Key>,
}

impl<H: Handler> EventLoop<H> {
    pub fn new(setup: LoopSetup<H::Completion>, handler: H) -> io::Result<EventLoop<H>> {
        let LoopSetup { id, poll, mut listener, handoff, inbox, config, stats, shutdown, admission } = setup;
        if let Some(listener) = listener.as_mut() {
            poll.registry().register(listener, LISTENER, Interest::READABLE)?;
        }
        let now = Instant::now();
        let wall_now = SystemTime::now();
        let core = Core {
            id,
            handler,
            pools: Pools::new(config.limits, POOLED_MAX),
            read_max: ReadState::max_len(&config.limits),
            config,
            all_stats: stats,
            date: DateHeader::new(wall_now),
            now,
            wall_now,
            wheel: Wheel::new(now),
            ready: Vec::new(),
            registry: poll.registry().try_clone()?,
            admission,
            stopping: false,
        };
        Ok(EventLoop {
            poll,
            events: Events::with_capacity(EVENTS_CAPACITY),
            table: Table::new(core.config.connections_max.max(1)),
            core,
            accept_pending: listener.is_some(),
            accept_paused: false,
            listener,
            handoff,
            inbox,
            inbox_pending: false,
            shutdown,
            due: Vec::new(),
            ready_scratch: Vec::new(),
        })
    }

    /// Runs until shutdown has completed; `_exit` is counted when this returns or unwinds.
    pub fn run(mut self, _exit: ExitGuard) {
        loop {
            let timeout = self.timeout();
            match self.poll.poll(&mut self.events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    eprintln!("seckill-reactor: loop {} poll failed: {e}", self.core.id);
                    return;
                }
            }
            self.core.stats().polls.fetch_add(1, Relaxed);
            self.core.now = Instant::now();
            self.core.wall_now = SystemTime::now();
            self.core.date.refresh(self.core.wall_now);
            self.handle_events();
            self.accept();
            self.take_handoffs();
            self.take_completions();
            self.service_ready();
            self.fire_timers();
            self.core.handler.tick(self.core.now);
            if self.advance_shutdown() {
                return;
            }
        }
    }

    fn timeout(&self) -> Option<Duration> {
        if !self.core.ready.is_empty() || self.accept_pending || self.inbox_pending {
            return Some(Duration::ZERO);
        }
        let now = Instant::now();
        let mut timeout = self.core.wheel.timeout(now);
        if !self.core.stopping
            && let Some(end) = self.shutdown.drain_end()
        {
            let left = end.saturating_duration_since(now);
            timeout = Some(timeout.map_or(left, |t| t.min(left)));
        }
        timeout
    }

    fn handle_events(&mut self) {
        // `events` is taken out so the connections can be serviced while iterating it.
        let events = std::mem::replace(&mut self.events, Events::with_capacity(0));
        for event in events.iter() {
            match event.token() {
                LISTENER => self.accept_pending = true,
                WAKER => {
                    self.core.stats().wakeups.fetch_add(1, Relaxed);
                    // An accepting loop paused at the limit is woken when a
                    // connection closes (most wakes are completions: no accept then).
                    if self.accept_paused && !self.core.admission.is_paused(self.core.id) {
                        self.accept_paused = false;
                        self.accept_pending = true;
                    }
                }
                token => self.on_connection_event(Key::from_token(token), event),
            }
        }
        self.events = events;
    }

    fn on_connection_event(&mut self, key: Key, event: &Event) {
        let Some(conn) = self.table.get_mut(key) else {
            // A stale event for a closed connection: its token's generation is retired.
            return;
        };
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            conn.can_read = true;
        }
        if event.is_read_closed() || event.is_error() {
            conn.read_closed = true;
        }
        if event.is_writable() || event.is_write_closed() || event.is_error() {
            conn.can_write = true;
        }
        let verdict = self.core.service(conn, key);
        self.settle(key, verdict);
    }

    /// Schedules the connection's timer and closes it if it is done.
    fn settle(&mut self, key: Key, verdict: Verdict) {
        let Some(conn) = self.table.get_mut(key) else { return };
        let verdict = match verdict {
            Verdict::Close => Verdict::Close,
            Verdict::Keep => self.core.after_service(conn, key),
        };
        if verdict == Verdict::Close {
            self.close(key);
        }
    }

    fn close(&mut self, key: Key) {
        let Some(mut conn) = self.table.remove(key) else { return };
        let parked = conn.parked() as u64;
        let stats = self.core.stats();
        if parked > 0 {
            stats.parked.fetch_sub(parked, Relaxed);
        }
        stats.closed.fetch_add(1, Relaxed);
        stats.open_connections.fetch_sub(1, Relaxed);
        conn.release_buffers(&mut self.core.pools);
        // Dropping the socket closes it and removes it from the epoll set
        // (no other descriptor refers to it), so no deregister call is spent.
        drop(conn);
        if self.core.admission.release(self.core.id) && self.listener.is_some() {
            self.accept_paused = false;
            self.accept_pending = true;
        }
    }

    /// Accepts a bounded batch from this loop's listener (reuseport design).
    fn accept(&mut self) {
        if !self.accept_pending {
            return;
        }
        for _ in 0..ACCEPT_BATCH {
            let Some(listener) = self.listener.as_ref() else {
                self.accept_pending = false;
                return;
            };
            if !self.core.admission.try_admit() {
                // At `connections_max`: leave the rest in the kernel backlog
                // until a close anywhere wakes us, rather than accept and close.
                self.accept_paused = self.core.admission.pause(self.core.id);
                self.accept_pending = !self.accept_paused;
                return;
            }
            match listener.accept() {
                Ok((stream, peer)) => {
                    prepare(&stream);
                    self.register(stream, peer);
                }
                Err(e) => {
                    self.core.admission.release(self.core.id);
                    match e.kind() {
                        io::ErrorKind::WouldBlock => self.accept_pending = false,
                        io::ErrorKind::ConnectionAborted | io::ErrorKind::Interrupted => continue,
                        _ => {
                            // EMFILE and the like: wait for the next event rather than spin.
                            eprintln!("seckill-reactor: loop {} accept failed: {e}", self.core.id);
                            self.accept_pending = false;
                        }
                    }
                    return;
                }
            }
        }
    }

    /// Adds an accepted (and admitted) socket to the loop.
    fn register(&mut self, stream: mio::net::TcpStream, peer: std::net::SocketAddr) {
        let now = self.core.now;
        let Some(key) = self.table.insert_with(|_| Connection::new(stream, peer, now)) else {
            // Cannot happen while admission holds the count below the table's capacity.
            self.core.admission.release(self.core.id);
            return;
        };
        let Some(conn) = self.table.get_mut(key) else { return };
        // READABLE | WRITABLE once, edge-triggered, for the connection's life.
        if let Err(e) =
            self.core.registry.register(&mut conn.stream, key.token(), Interest::READABLE | Interest::WRITABLE)
        {
            eprintln!("seckill-reactor: loop {} cannot register a connection: {e}", self.core.id);
            let _ = self.table.remove(key);
            self.core.admission.release(self.core.id);
            return;
        }
        let stats = self.core.stats();
        stats.accepted.fetch_add(1, Relaxed);
        stats.open_connections.fetch_add(1, Relaxed);
        self.settle(key, Verdict::Keep);
    }

    /// Sockets from the acceptor thread (acceptor design).
    fn take_handoffs(&mut self) {
        for _ in 0..INBOX_PER_TICK {
            let Some(Ok((stream, peer))) = self.handoff.as_ref().map(|h| h.try_recv()) else { return };
            if self.core.stopping {
                // Shutting down: the socket closes here, before any request.
                drop(stream);
                self.core.admission.release(self.core.id);
                continue;
            }
            self.register(stream, peer);
        }
    }

    fn take_completions(&mut self) {
        self.inbox_pending = false;
        for _ in 0..INBOX_PER_TICK {
            let Ok((token, completion)) = self.inbox.try_recv() else { return };
            self.complete(token, completion);
        }
        self.inbox_pending = !self.inbox.is_empty();
    }

    fn complete(&mut self, token: ParkToken, completion: H::Completion) {
        let key = token.key();
        let stats = self.core.stats();
        let Some(conn) = self.table.get_mut(key) else {
            stats.completions_stale.fetch_add(1, Relaxed);
            return;
        };
        let Some(index) =
            conn.slots.iter().position(|s| s.seq == token.seq && matches!(s.state, SlotState::Parked { .. }))
        else {
            // Expired already (answered by `park_expired`), or completed twice.
            stats.completions_stale.fetch_add(1, Relaxed);
            return;
        };
        stats.completions.fetch_add(1, Relaxed);
        stats.parked.fetch_sub(1, Relaxed);
        let core = &mut self.core;
        match core.handler.replay(completion) {
            Ok(request) => core.rehandle(conn, index, key, &request),
            Err(completion) => core.answer_parked(conn, index, |handler, info, parked_at, date, out| {
                handler.complete(completion, info, parked_at, date, out)
            }),
        }
        core.enqueue(conn, key);
    }

    fn service_ready(&mut self) {
        let mut ready = std::mem::replace(&mut self.core.ready, std::mem::take(&mut self.ready_scratch));
        for key in ready.drain(..) {
            let Some(conn) = self.table.get_mut(key) else { continue };
            conn.queued = false;
            let verdict = self.core.service(conn, key);
            self.settle(key, verdict);
        }
        self.ready_scratch = ready;
    }

    fn fire_timers(&mut self) {
        let mut due = std::mem::take(&mut self.due);
        self.core.wheel.expire(self.core.now, &mut due);
        for entry in due.iter() {
            let key = Key::from_token(mio::Token(entry.key));
            let Some(conn) = self.table.get_mut(key) else { continue };
            if conn.timer_tick != entry.tick {
                // Superseded by an earlier entry.
                continue;
            }
            conn.timer_tick = 0;
            let verdict = self.core.on_timer(conn, key);
            self.settle(key, verdict);
        }
        self.due = due;
    }

    /// Returns true when the loop should exit.
    fn advance_shutdown(&mut self) -> bool {
        if !self.core.stopping {
            let Some(end) = self.shutdown.drain_end() else { return false };
            if self.core.now < end {
                return false;
            }
            self.stop();
        }
        // Lingering connections owe nothing; the client has every answer.
        self.table.iter().all(|conn| conn.lingering)
    }

    /// The drain is over: close the listener, close idle connections, and
    /// let the others answer every request already read (nothing more is
    /// read), then close.
    fn stop(&mut self) {
        self.core.stopping = true;
        if let Some(mut listener) = self.listener.take() {
            let _ = self.core.registry.deregister(&mut listener);
        }
        self.accept_pending = false;
        let keys: Vec<Key> = self.table.keys().collect();
        for key in keys {
            let Some(conn) = self.table.get_mut(key) else { continue };
            let verdict = self.core.service(conn, key);
            self.settle(key, verdict);
        }
    }
}

impl<H: Handler> Core<H> {
    fn stats(&self) -> &LoopStats {
        &self.all_stats[self.id]
    }

    fn enqueue(&mut self, conn: &mut Connection, key: Key) {
        if !conn.queued {
            conn.queued = true;
            self.ready.push(key);
        }
    }

    /// Works on a connection after an event or a wake-up: flush, answer
    /// buffered requests, read once, answer, flush. Bounded: at most one
    /// read and `REQUESTS_PER_PASS` requests; leftovers requeue it.
    fn service(&mut self, conn: &mut Connection, key: Key) -> Verdict {
        if conn.lingering {
            return self.linger(conn);
        }
        if self.flush(conn).is_err() {
            return Verdict::Close;
        }
        let mut budget = REQUESTS_PER_PASS;
        let mut read_done = false;
        loop {
            let stop = self.process_input(conn, key, &mut budget);
            if self.flush(conn).is_err() {
                return Verdict::Close;
            }
            match stop {
                Stop::Depth if conn.unanswered() < self.config.pipeline_depth_max => continue,
                // Resumed by a WRITABLE event or a completion.
                Stop::Depth | Stop::Finished => return Verdict::Keep,
                Stop::Budget => {
                    self.enqueue(conn, key);
                    return Verdict::Keep;
                }
                Stop::Drained if self.stopping => {
                    // Shutting down: every request already read is answered;
                    // nothing more is read, and an incomplete one is dropped.
                    conn.read_stop = true;
                    self.drop_input(conn);
                    return Verdict::Keep;
                }
                Stop::Drained => {}
            }
            if read_done || !conn.can_read || conn.eof {
                return Verdict::Keep;
            }
            read_done = true;
            // Whatever the read brought (bytes, EOF, or a refusal written by
            // `read`), the next round answers and flushes it.
            if self.read(conn).is_err() {
                return Verdict::Close;
            }
        }
    }

    /// One read into the connection's buffer. Ok(true) if bytes arrived.
    fn read(&mut self, conn: &mut Connection) -> io::Result<bool> {
        let read = conn.read.get_or_insert_with(|| self.pools.take_read());
        if read.spare(self.read_max).is_empty() {
            // One incomplete request fills the largest buffer the limits
            // allow (possible only with chunked framing overhead): refuse it.
            self.stats().protocol_errors.fetch_add(1, Relaxed);
            self.refuse(conn, HttpError::BodyTooLarge);
            return Ok(false);
        }
        let spare = read.spare(self.read_max);
        let room = spare.len();
        loop {
            match conn.stream.read(spare) {
                Ok(0) => {
                    conn.eof = true;
                    conn.can_read = false;
                    return Ok(false);
                }
                Ok(n) => {
                    read.end += n;
                    // A short read drained the socket: new data brings a new edge.
                    // A full one may have left more: `after_service` requeues.
                    if n < room && !conn.read_closed {
                        conn.can_read = false;
                    }
                    self.stats().bytes_read.fetch_add(n as u64, Relaxed);
                    conn.last_active = self.now;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    conn.can_read = false;
                    return Ok(false);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn flush(&mut self, conn: &mut Connection) -> io::Result<()> {
        let written = conn.flush(&mut self.pools)?;
        if written > 0 {
            self.stats().bytes_written.fetch_add(written as u64, Relaxed);
            conn.last_active = self.now;
        }
        Ok(())
    }

    /// Parses and answers the requests buffered on `conn`, in order.
    fn process_input(&mut self, conn: &mut Connection, key: Key, budget: &mut usize) -> Stop {
        loop {
            if conn.read_stop {
                return Stop::Finished;
            }
            match conn.read.as_deref() {
                None => {
                    conn.partial = false;
                    return Stop::Drained;
                }
                Some(read) if read.is_empty() => {
                    conn.partial = false;
                    if let Some(read) = conn.read.take() {
                        self.pools.give_read(read);
                    }
                    return Stop::Drained;
                }
                Some(_) => {}
            }
            if conn.unanswered() >= self.config.pipeline_depth_max {
                return Stop::Depth;
            }
            if *budget == 0 {
                return Stop::Budget;
            }
            let Some(read) = conn.read.as_deref_mut() else { return Stop::Drained };
            let ReadState { buf, start, end, parser } = read;
            let consumed = match parser.parse(&buf[*start..*end]) {
                Parse::Complete(request) => {
                    *budget -= 1;
                    conn.partial = false;
                    let info = request.info();
                    let seq = conn.next_seq;
                    conn.next_seq = seq.wrapping_add(1);
                    self.stats().requests.fetch_add(1, Relaxed);
                    let held = !conn.slots.is_empty();
                    let out = output(&mut conn.wbuf, &mut conn.held, held, &mut self.pools);
                    let out_start = out.len();
                    let cx = Context { date: &self.date, now: self.now, wall_now: self.wall_now, loop_id: self.id };
                    let mut exchange = Exchange::new(out, cx, info, conn.peer, key, seq);
                    self.handler.handle(&request, &mut exchange);
                    let outcome = exchange.outcome();
                    let wire_len = request.wire_len();
                    match outcome {
                        Outcome::Parked { deadline } => {
                            // A parked request writes nothing now; undo anything written by mistake.
                            let out = if held { &mut conn.held } else { &mut conn.wbuf };
                            out.truncate(out_start);
                            conn.slots.push_back(Slot {
                                seq,
                                state: SlotState::Parked { info, parked_at: self.now, deadline },
                            });
                            self.stats().parked.fetch_add(1, Relaxed);
                        }
                        Outcome::Responded | Outcome::Unanswered => {
                            let out = if held { &mut conn.held } else { &mut conn.wbuf };
                            if outcome == Outcome::Unanswered {
                                // A handler bug; the client still gets an answer, in order.
                                ResponseWriter::new(out, &self.date, info, Status::INTERNAL_SERVER_ERROR).empty();
                            }
                            record_answer(conn, held, out_start, seq);
                        }
                    }
                    if !info.keep_alive {
                        // The answer to this request is the last: read nothing further.
                        conn.read_stop = true;
                    }
                    wire_len
                }
                Parse::Partial { send_continue } => {
                    conn.partial = true;
                    if send_continue {
                        let held = !conn.slots.is_empty();
                        let out = output(&mut conn.wbuf, &mut conn.held, held, &mut self.pools);
                        let out_start = out.len();
                        out.extend_from_slice(CONTINUE_100);
                        // Counted like an answer, so it waits for the answers before it.
                        record_answer(conn, held, out_start, conn.next_seq);
                    }
                    return Stop::Drained;
                }
                Parse::Error(error) => {
                    self.stats().protocol_errors.fetch_add(1, Relaxed);
                    self.refuse(conn, error);
                    return Stop::Finished;
                }
            };
            if let Some(read) = conn.read.as_deref_mut() {
                read.consume(consumed);
            }
            if conn.read_stop {
                self.drop_input(conn);
            }
        }
    }

    /// Answers with a protocol error (in pipeline order) and stops reading.
    fn refuse(&mut self, conn: &mut Connection, error: HttpError) {
        let held = !conn.slots.is_empty();
        let out = output(&mut conn.wbuf, &mut conn.held, held, &mut self.pools);
        let out_start = out.len();
        write_error(out, &self.date, error);
        let seq = conn.next_seq;
        conn.next_seq = seq.wrapping_add(1);
        record_answer(conn, held, out_start, seq);
        conn.read_stop = true;
        self.drop_input(conn);
    }

    /// Forgets buffered input that will never be answered.
    fn drop_input(&mut self, conn: &mut Connection) {
        conn.partial = false;
        conn.request_started = None;
        if let Some(read) = conn.read.take() {
            self.pools.give_read(read);
        }
    }

    /// Handles the parked request at `index` again, from the copy its
    /// completion carried, as if it had just arrived in its place: answered
    /// now (releasing the held answers behind it) or parked again.
    fn rehandle(&mut self, conn: &mut Connection, index: usize, key: Key, owned: &OwnedRequest) {
        let Some(slot) = conn.slots.get(index) else { return };
        let seq = slot.seq;
        let SlotState::Parked { info, parked_at, .. } = slot.state else { return };
        let held = index > 0;
        let out = output(&mut conn.wbuf, &mut conn.held, held, &mut self.pools);
        let out_start = out.len();
        let cx = Context { date: &self.date, now: self.now, wall_now: self.wall_now, loop_id: self.id };
        let mut exchange = Exchange::new(out, cx, info, conn.peer, key, seq);
        self.handler.handle(&owned.request(), &mut exchange);
        match exchange.outcome() {
            Outcome::Parked { deadline } => {
                let out = if held { &mut conn.held } else { &mut conn.wbuf };
                out.truncate(out_start);
                conn.slots[index].state = SlotState::Parked { info, parked_at, deadline };
                self.stats().parked.fetch_add(1, Relaxed);
            }
            outcome @ (Outcome::Responded | Outcome::Unanswered) => {
                let out = if held { &mut conn.held } else { &mut conn.wbuf };
                // What was written is dropped: `answer_parked` writes it again
                // at the same place, with the slot's bookkeeping.
                let written = out.split_off(out_start);
                self.answer_parked(conn, index, |_, info, _, date, out| {
                    if outcome == Outcome::Unanswered {
                        // A handler bug; the client still gets an answer, in order.
                        ResponseWriter::new(out, date, info, Status::INTERNAL_SERVER_ERROR).empty();
                    } else {
                        out.extend_from_slice(&written);
                    }
                });
            }
        }
    }

    /// Writes the answer of the parked request at `index` (a completion or
    /// its deadline) and releases the held answers behind it.
    fn answer_parked(
        &mut self,
        conn: &mut Connection,
        index: usize,
        write: impl FnOnce(&mut H, RequestInfo, Instant, &DateHeader, &mut Vec<u8>),
    ) {
        let SlotState::Parked { mut info, parked_at, .. } = conn.slots[index].state else {
            return;
        };
        if self.stopping && conn.read_stop && index + 1 == conn.slots.len() {
            // The last answer this connection will get: say so.
            info.keep_alive = false;
        }
        let held = index > 0;
        let out = output(&mut conn.wbuf, &mut conn.held, held, &mut self.pools);
        let out_start = out.len();
        write(&mut self.handler, info, parked_at, &self.date, out);
        if held {
            let len = (conn.held.len() - out_start) as u32;
            conn.slots[index].state = SlotState::Held { start: out_start as u32, len };
        } else {
            conn.slots.pop_front();
            conn.unflushed += 1;
            conn.release_held(&mut self.pools);
        }
        if !info.keep_alive {
            conn.read_stop = true;
        }
    }

    /// Timers: head timeout, idle timeout, linger, parked deadlines.
    fn on_timer(&mut self, conn: &mut Connection, key: Key) -> Verdict {
        let now = self.now;
        if conn.lingering {
            return if now >= conn.last_active + LINGER { Verdict::Close } else { Verdict::Keep };
        }
        if conn.is_idle() && now >= conn.last_active + self.config.idle_timeout {
            self.stats().idle_timeouts.fetch_add(1, Relaxed);
            return Verdict::Close;
        }
        if !conn.wbuf.is_empty() && now >= conn.last_active + self.config.idle_timeout {
            // A client that stopped reading its answers for as long as an
            // idle one may stay: it would hold the connection forever.
            self.stats().idle_timeouts.fetch_add(1, Relaxed);
            return Verdict::Close;
        }
        let mut answered = false;
        while let Some(index) =
            conn.slots.iter().position(|s| matches!(s.state, SlotState::Parked { deadline, .. } if deadline <= now))
        {
            let stats = self.stats();
            stats.park_expired.fetch_add(1, Relaxed);
            stats.parked.fetch_sub(1, Relaxed);
            self.answer_parked(conn, index, |handler, info, parked_at, date, out| {
                handler.park_expired(info, parked_at, date, out)
            });
            answered = true;
        }
        // `head_timeout` runs until the whole request is in (head and body):
        // a body dribbled byte by byte must not hold a connection forever either.
        if conn.partial
            && !conn.read_stop
            && let Some(started) = conn.request_started
            && now >= started + self.config.head_timeout
        {
            self.stats().head_timeouts.fetch_add(1, Relaxed);
            self.refuse(conn, HttpError::HeadTimeout);
            answered = true;
        }
        if answered {
            return self.service(conn, key);
        }
        Verdict::Keep
    }

    /// After a pass: give back unused buffers, start the close of a finished
    /// connection, requeue leftover input, and schedule the next timer.
    fn after_service(&mut self, conn: &mut Connection, key: Key) -> Verdict {
        if conn.read.as_ref().is_some_and(|r| r.is_empty())
            && let Some(read) = conn.read.take()
        {
            // A read that brought nothing (EOF, or WouldBlock) leaves no buffer behind.
            self.pools.give_read(read);
        }
        if !conn.lingering && conn.input_finished() && conn.slots.is_empty() && conn.wbuf.is_empty() {
            if conn.eof {
                // The peer sent FIN and we read everything: nothing to reset.
                return Verdict::Close;
            }
            conn.half_close();
            conn.last_active = self.now;
            // Whatever the client sent after its last request is read and discarded.
            conn.can_read = true;
            if self.linger(conn) == Verdict::Close {
                return Verdict::Close;
            }
        }
        if self.stopping && conn.is_idle() {
            return Verdict::Close;
        }
        if conn.partial {
            conn.request_started.get_or_insert(self.now);
        } else {
            conn.request_started = None;
        }
        if conn.can_read
            && !conn.eof
            && !conn.read_stop
            && !conn.lingering
            && conn.unanswered() < self.config.pipeline_depth_max
        {
            // The last read filled the buffer: the socket may hold more, and
            // no new edge will say so.
            self.enqueue(conn, key);
        }
        self.schedule(conn, key);
        Verdict::Keep
    }

    fn linger(&mut self, conn: &mut Connection) -> Verdict {
        if !conn.can_read {
            return Verdict::Keep;
        }
        match conn.discard_input(LINGER_DISCARD_MAX) {
            Ok(false) => Verdict::Keep,
            Ok(true) | Err(_) => Verdict::Close,
        }
    }

    /// The earliest moment something is due on `conn`.
    fn deadline(&self, conn: &Connection) -> Option<Instant> {
        let mut deadline = None;
        let mut consider = |at: Instant| deadline = Some(deadline.map_or(at, |d: Instant| d.min(at)));
        if conn.lingering {
            consider(conn.last_active + LINGER);
            return deadline;
        }
        if conn.is_idle() || !conn.wbuf.is_empty() {
            // Idle, or waiting for the client to read (`last_active` moves with every write).
            consider(conn.last_active + self.config.idle_timeout);
        }
        if conn.partial
            && !conn.read_stop
            && let Some(started) = conn.request_started
        {
            consider(started + self.config.head_timeout);
        }
        for slot in conn.slots.iter() {
            if let SlotState::Parked { deadline, .. } = slot.state {
                consider(deadline);
            }
        }
        deadline
    }

    /// Keeps one live timer entry at or before the connection's deadline.
    fn schedule(&mut self, conn: &mut Connection, key: Key) {
        let Some(deadline) = self.deadline(conn) else { return };
        let tick = self.wheel.fire_tick(deadline);
        if conn.timer_tick == 0 || tick < conn.timer_tick {
            conn.timer_tick = self.wheel.schedule(key.token().0, deadline);
        }
    }
}

/// Where the next answer goes: the write buffer, or the held buffer when an
/// earlier request is still parked. Takes a pooled buffer if needed.
fn output<'a>(wbuf: &'a mut Vec<u8>, held_buf: &'a mut Vec<u8>, held: bool, pools: &mut Pools) -> &'a mut Vec<u8> {
    let out = if held { held_buf } else { wbuf };
    if out.capacity() == 0 {
        *out = pools.take_write();
    }
    out
}

/// Records an answer written at `out_start`: counted as unflushed in the
/// write buffer, or as a held slot.
fn record_answer(conn: &mut Connection, held: bool, out_start: usize, seq: u32) {
    if held {
        let len = (conn.held.len() - out_start) as u32;
        conn.slots.push_back(Slot { seq, state: SlotState::Held { start: out_start as u32, len } });
    } else {
        conn.unflushed += 1;
    }
}
