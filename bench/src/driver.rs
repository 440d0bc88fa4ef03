//! The connection driver: one mio event loop per load thread, owning its
//! share of the connections.
//!
//! Each connection keeps up to `pipeline` requests outstanding. In closed loop
//! it refills as soon as responses arrive, writing every new request in one
//! write; in open loop requests leave when the [`Schedule`] says they are due,
//! filling one connection up to the depth before the next (see `free_conn`). Responses are framed by the sans-I/O
//! [`ResponseParser`], timed once per read, and recorded only inside the
//! measured window. A connection the server closes is counted and re-opened.

use crate::recorder::Recorder;
use crate::response::{ParseError, Response, ResponseParser, Step};
use crate::schedule::Schedule;
use crate::sys::Timer;
use crate::workload::{Bodyless, RequestSource};
use mio::net::TcpStream;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Barrier, OnceLock};
use std::time::{Duration, Instant};

/// Read buffer per connection; a response head must fit (see `HEAD_BYTES_MAX`).
const READ_BUFFER_BYTES: usize = 16 * 1024;
/// Events handled per poll.
const EVENTS_CAPACITY: usize = 1024;
/// How long the initial connections may take before the run is abandoned.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Wait before re-trying a connection attempt that failed, so a dead server
/// is not hammered in a tight loop.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(20);
const TIMER: Token = Token(usize::MAX);

/// What one load thread is asked to do.
#[derive(Debug, Clone)]
pub struct ThreadPlan {
    pub thread: usize,
    pub threads: usize,
    pub connections: usize,
    pub addr: SocketAddr,
    pub pipeline: usize,
    /// Total requests per second over all threads; `None` is closed loop.
    pub rate_per_s: Option<f64>,
    pub warmup: Duration,
    pub duration: Duration,
}

/// Lines the threads up so they start the clock together, after every
/// connection of every thread is open.
#[derive(Debug)]
pub struct StartLine {
    barrier: Barrier,
    failed: AtomicBool,
    t0: OnceLock<Instant>,
}

impl StartLine {
    pub fn new(threads: usize) -> StartLine {
        StartLine { barrier: Barrier::new(threads), failed: AtomicBool::new(false), t0: OnceLock::new() }
    }
}

/// Runs one load thread to the end of its window.
pub fn run_thread(plan: &ThreadPlan, start: &StartLine, source: Box<dyn RequestSource>) -> io::Result<Recorder> {
    let driver = Driver::new(plan, source);
    let connected = driver.and_then(|mut d| d.connect_all().map(|()| d));
    if connected.is_err() {
        start.failed.store(true, Ordering::SeqCst);
    }
    // Every thread reaches the barrier, failed or not, so none waits forever.
    start.barrier.wait();
    let mut driver = connected?;
    if start.failed.load(Ordering::SeqCst) {
        return Err(io::Error::other("another load thread could not connect"));
    }
    let t0 = *start.t0.get_or_init(Instant::now);
    driver.run(t0)?;
    Ok(driver.recorder)
}

#[derive(Debug)]
struct InFlight {
    intended: Instant,
    sent: Instant,
    bodyless: Bodyless,
}

#[derive(Debug)]
struct Conn {
    /// `None` while waiting to reconnect.
    stream: Option<TcpStream>,
    /// Bumped on every (re)connect; part of the token, so an event for the
    /// previous socket in the same batch is recognised as stale.
    generation: u32,
    connected: bool,
    retry_at: Instant,
    rbuf: Box<[u8]>,
    rlen: usize,
    wbuf: Vec<u8>,
    wpos: usize,
    inflight: VecDeque<InFlight>,
    parser: ResponseParser,
    /// The server announced it will close after the last response.
    closing: bool,
    dirty: bool,
}

/// Why a connection is being dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Close {
    Connect,
    Eof,
    Read,
    Write,
    Parse,
    /// The server said `Connection: close` and we honour it.
    Announced,
}

struct Driver {
    poll: Poll,
    events: Events,
    conns: Vec<Conn>,
    source: Box<dyn RequestSource>,
    recorder: Recorder,
    addr: SocketAddr,
    pipeline: usize,
    rate_per_s: Option<f64>,
    thread: usize,
    threads: usize,
    warmup: Duration,
    duration: Duration,
    /// Set by `run`: the measured window is `[window_start, window_end)`.
    window_start: Instant,
    window_end: Instant,
    schedule: Option<Schedule>,
    timer: Option<Timer>,
    /// The due time the timer is armed for, so an unchanged deadline costs no
    /// `timerfd_settime` on the next loop turn.
    timer_armed_for: Option<Instant>,
    /// Connections without a socket (waiting to reconnect): while zero, the
    /// loop skips the reconnect scan.
    down: usize,
    /// Open loop: requests of this thread's schedule handed to a connection.
    sent: u64,
    cursor: usize,
    dirty: Vec<usize>,
    /// The last poll's events as `(connection, readable, writable)`, copied
    /// out so that handlers may borrow the driver mutably.
    ready: Vec<(usize, bool, bool)>,
}

impl Driver {
    fn new(plan: &ThreadPlan, source: Box<dyn RequestSource>) -> io::Result<Driver> {
        let poll = Poll::new()?;
        let timer = match plan.rate_per_s {
            Some(_) => {
                let timer = Timer::new()?;
                poll.registry().register(&mut SourceFd(&timer.raw_fd()), TIMER, Interest::READABLE)?;
                Some(timer)
            }
            None => None,
        };
        let now = Instant::now();
        let conns = (0..plan.connections)
            .map(|_| Conn {
                stream: None,
                generation: 0,
                connected: false,
                retry_at: now,
                rbuf: vec![0; READ_BUFFER_BYTES].into_boxed_slice(),
                rlen: 0,
                wbuf: Vec::new(),
                wpos: 0,
                inflight: VecDeque::with_capacity(plan.pipeline),
                parser: ResponseParser::default(),
                closing: false,
                dirty: false,
            })
            .collect();
        Ok(Driver {
            poll,
            events: Events::with_capacity(EVENTS_CAPACITY),
            conns,
            source,
            recorder: Recorder::new(),
            addr: plan.addr,
            pipeline: plan.pipeline,
            rate_per_s: plan.rate_per_s,
            thread: plan.thread,
            threads: plan.threads,
            warmup: plan.warmup,
            duration: plan.duration,
            window_start: now,
            window_end: now,
            schedule: None,
            timer,
            timer_armed_for: None,
            down: plan.connections,
            sent: 0,
            cursor: 0,
            dirty: Vec::new(),
            ready: Vec::with_capacity(EVENTS_CAPACITY),
        })
    }

    /// Opens every connection; any failure fails the run before the clock starts.
    fn connect_all(&mut self) -> io::Result<()> {
        for idx in 0..self.conns.len() {
            self.open(idx)?;
        }
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        while self.conns.iter().any(|c| !c.connected) {
            let now = Instant::now();
            if now >= deadline {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "connections not established in 5 s"));
            }
            self.poll_once(deadline - now)?;
            for i in 0..self.ready.len() {
                let (idx, _, _) = self.ready[i];
                if !self.conns[idx].connected {
                    self.check_connected(idx)?;
                }
            }
        }
        Ok(())
    }

    fn run(&mut self, t0: Instant) -> io::Result<()> {
        self.window_start = t0 + self.warmup;
        self.window_end = self.window_start + self.duration;
        self.schedule = self.rate_per_s.map(|rate| Schedule::new(t0, rate, self.thread, self.threads));
        if self.schedule.is_none() {
            for idx in 0..self.conns.len() {
                self.refill(idx, t0);
            }
        }
        loop {
            let now = Instant::now();
            if now >= self.window_end {
                break;
            }
            self.dispatch_due(now)?;
            let mut timeout = self.window_end - now;
            if self.down > 0 {
                timeout = timeout.min(RECONNECT_BACKOFF);
            }
            self.poll_once(timeout)?;
            for i in 0..self.ready.len() {
                self.handle_event(i);
            }
            self.reconnect_due(Instant::now());
        }
        Ok(())
    }

    /// Polls once and fills `ready` with the live connection events; the
    /// timer is cleared and stale tokens (a socket since replaced) dropped.
    fn poll_once(&mut self, timeout: Duration) -> io::Result<()> {
        self.ready.clear();
        match self.poll.poll(&mut self.events, Some(timeout)) {
            // mio 1.x returns EINTR instead of retrying: the caller loops anyway.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            other => other?,
        }
        for event in self.events.iter() {
            let token = event.token();
            if token == TIMER {
                if let Some(timer) = &self.timer {
                    timer.clear();
                }
                self.timer_armed_for = None;
                continue;
            }
            let (idx, generation) = (token.0 & 0xffff_ffff, (token.0 >> 32) as u32);
            let live = self.conns.get(idx).is_some_and(|c| c.generation == generation && c.stream.is_some());
            if live {
                let readable = event.is_readable() || event.is_read_closed() || event.is_error();
                let writable = event.is_writable() || event.is_write_closed() || event.is_error();
                self.ready.push((idx, readable, writable));
            }
        }
        Ok(())
    }

    fn handle_event(&mut self, i: usize) {
        let (idx, readable, writable) = self.ready[i];
        // An earlier event of this batch may have closed the connection.
        if self.conns[idx].stream.is_none() {
            return;
        }
        if !self.conns[idx].connected {
            if self.check_connected(idx).is_err() {
                self.drop_conn(idx, Close::Connect, Instant::now());
                return;
            }
            if self.conns[idx].connected && self.schedule.is_none() {
                self.refill(idx, Instant::now());
            }
            return;
        }
        if writable {
            self.flush(idx);
        }
        if readable && self.conns[idx].stream.is_some() {
            self.read(idx);
        }
    }

    fn open(&mut self, idx: usize) -> io::Result<()> {
        let mut stream = TcpStream::connect(self.addr)?;
        let conn = &mut self.conns[idx];
        conn.generation = conn.generation.wrapping_add(1);
        // Index in the low 32 bits, generation in the high 32 (usize is 64-bit on
        // the targets we run on; connections are far fewer than 2^32).
        let token = Token(idx | (conn.generation as usize) << 32);
        self.poll.registry().register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)?;
        conn.stream = Some(stream);
        self.down -= 1;
        conn.connected = false;
        Ok(())
    }

    /// Settles a pending connect: `Ok` with `connected` set once established,
    /// `Ok` unchanged while still in progress, `Err` when it failed.
    fn check_connected(&mut self, idx: usize) -> io::Result<()> {
        let conn = &mut self.conns[idx];
        let Some(stream) = &conn.stream else { return Ok(()) };
        if let Some(e) = stream.take_error()? {
            return Err(e);
        }
        match stream.peer_addr() {
            Ok(_) => {
                // Requests are written whole; Nagle would only delay them.
                stream.set_nodelay(true)?;
                conn.connected = true;
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn reconnect_due(&mut self, now: Instant) {
        if self.down == 0 {
            return;
        }
        for idx in 0..self.conns.len() {
            if self.conns[idx].stream.is_some() || self.conns[idx].retry_at > now {
                continue;
            }
            self.recorder.reconnects += 1;
            if self.open(idx).is_err() {
                self.recorder.errors.connect += 1;
                self.conns[idx].retry_at = now + RECONNECT_BACKOFF;
            }
        }
    }

    /// Closed loop: tops connection `idx` up to `pipeline` outstanding requests
    /// and writes them all at once.
    fn refill(&mut self, idx: usize, now: Instant) {
        let conn = &mut self.conns[idx];
        if !conn.connected || conn.closing {
            return;
        }
        while conn.inflight.len() < self.pipeline {
            let bodyless = self.source.write_request(idx, &mut conn.wbuf);
            conn.inflight.push_back(InFlight { intended: now, sent: now, bodyless });
        }
        self.flush(idx);
    }

    /// Open loop: hands every request due by `now` to a connection with room.
    fn dispatch_due(&mut self, now: Instant) -> io::Result<()> {
        let Some(schedule) = self.schedule else { return Ok(()) };
        let due = schedule.due_count(now);
        while self.sent < due {
            let Some(idx) = self.free_conn() else { break };
            let conn = &mut self.conns[idx];
            let bodyless = self.source.write_request(idx, &mut conn.wbuf);
            conn.inflight.push_back(InFlight { intended: schedule.due_at(self.sent), sent: now, bodyless });
            if !conn.dirty {
                conn.dirty = true;
                self.dirty.push(idx);
            }
            self.sent += 1;
        }
        // The backlog at the last dispatch is what remains unsent at the end.
        self.recorder.unsent = due - self.sent;
        while let Some(idx) = self.dirty.pop() {
            self.conns[idx].dirty = false;
            self.flush(idx);
        }
        // With a backlog, the next send waits for a response, not the clock.
        let next = schedule.due_at(self.sent);
        if self.sent >= due
            && self.timer_armed_for != Some(next)
            && let Some(timer) = &self.timer
        {
            timer.arm(next.saturating_duration_since(Instant::now()))?;
            self.timer_armed_for = Some(next);
        }
        Ok(())
    }

    /// The next connection, round-robin, that is open and below the pipeline
    /// depth. The cursor stays on a connection until it is full: requests due
    /// together then leave in one write on one connection (pipelined, as
    /// HTTP/1.1 allows), which costs the bench and the server one syscall
    /// for several requests instead of one each. With a depth of 1 this is
    /// plain round-robin.
    fn free_conn(&mut self) -> Option<usize> {
        let n = self.conns.len();
        for step in 0..n {
            let idx = (self.cursor + step) % n;
            let c = &self.conns[idx];
            if c.connected && !c.closing && c.inflight.len() < self.pipeline {
                self.cursor = idx;
                return Some(idx);
            }
        }
        None
    }

    fn flush(&mut self, idx: usize) {
        let conn = &mut self.conns[idx];
        let Some(stream) = conn.stream.as_mut() else { return };
        while conn.wpos < conn.wbuf.len() {
            match stream.write(&conn.wbuf[conn.wpos..]) {
                Ok(0) => break,
                Ok(n) => conn.wpos += n,
                // The rest goes out on the next writable edge.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        if conn.wpos < conn.wbuf.len() {
            return self.drop_conn(idx, Close::Write, Instant::now());
        }
        conn.wbuf.clear();
        conn.wpos = 0;
    }

    /// Reads until WouldBlock, completing every response in each read.
    fn read(&mut self, idx: usize) {
        loop {
            let conn = &mut self.conns[idx];
            let Some(stream) = conn.stream.as_mut() else { return };
            let result = stream.read(&mut conn.rbuf[conn.rlen..]);
            let now = Instant::now();
            match result {
                Ok(0) => {
                    if let Some(response) = conn.parser.finish_at_eof() {
                        self.complete(idx, &response, None, now);
                    }
                    return self.drop_conn(idx, Close::Eof, now);
                }
                Ok(n) => {
                    conn.rlen += n;
                    self.recorder.bytes_read += n as u64;
                    if self.frame(idx, now).is_err() {
                        return self.drop_conn(idx, Close::Parse, now);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.drop_conn(idx, Close::Read, now),
            }
        }
        let now = Instant::now();
        if self.conns[idx].closing && self.conns[idx].inflight.is_empty() {
            return self.drop_conn(idx, Close::Announced, now);
        }
        if self.schedule.is_none() {
            self.refill(idx, now);
        }
    }

    /// Frames the buffered bytes of connection `idx` into responses.
    fn frame(&mut self, idx: usize, now: Instant) -> Result<(), ParseError> {
        let mut pos = 0;
        // Where the response being framed began in this buffer, when it did:
        // its bytes are then all here once it completes (a response split
        // over reads has lost its head to the compaction below).
        let mut start = self.conns[idx].parser.is_idle().then_some(0);
        loop {
            let conn = &mut self.conns[idx];
            let Some(front) = conn.inflight.front() else {
                if pos < conn.rlen {
                    return Err(ParseError::Unsolicited);
                }
                break;
            };
            let bodyless = front.bodyless == Bodyless::Yes;
            match conn.parser.parse(&conn.rbuf[pos..conn.rlen], bodyless)? {
                Step::NeedMore => break,
                Step::Consumed(n) => pos += n,
                Step::Complete { consumed, response } => {
                    pos += consumed;
                    conn.closing |= response.close;
                    self.complete(idx, &response, start.map(|s| s..pos), now);
                    start = Some(pos);
                }
            }
        }
        let conn = &mut self.conns[idx];
        conn.rbuf.copy_within(pos..conn.rlen, 0);
        conn.rlen -= pos;
        Ok(())
    }

    /// Response of the oldest outstanding request of `idx`; `bytes` is where
    /// the whole response lies in the read buffer, when it does.
    fn complete(&mut self, idx: usize, response: &Response, bytes: Option<Range<usize>>, now: Instant) {
        let Some(req) = self.conns[idx].inflight.pop_front() else { return };
        let bytes = bytes.map(|range| &self.conns[idx].rbuf[range]);
        self.source.on_response_head(idx, response, bytes);
        if now >= self.window_start && now < self.window_end {
            self.recorder.record(response.status, now - req.intended, now - req.sent);
        }
    }

    fn drop_conn(&mut self, idx: usize, why: Close, now: Instant) {
        let conn = &mut self.conns[idx];
        let lost = !conn.inflight.is_empty();
        if lost {
            self.source.on_lost(idx, conn.inflight.len());
        }
        let errors = &mut self.recorder.errors;
        match why {
            Close::Connect => errors.connect += 1,
            Close::Read => errors.read += 1,
            Close::Write => errors.write += 1,
            Close::Parse => errors.parse += 1,
            Close::Eof | Close::Announced if lost => errors.closed += 1,
            Close::Eof | Close::Announced => {}
        }
        if let Some(mut stream) = conn.stream.take() {
            self.down += 1;
            // Deregistering can only fail for a socket mio never saw; closing follows anyway.
            let _ = self.poll.registry().deregister(&mut stream);
        }
        conn.connected = false;
        conn.closing = false;
        conn.rlen = 0;
        conn.wbuf.clear();
        conn.wpos = 0;
        conn.inflight.clear();
        conn.parser = ResponseParser::default();
        conn.retry_at = if why == Close::Connect { now + RECONNECT_BACKOFF } else { now };
    }
}
