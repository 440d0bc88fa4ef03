//! [`Exchange`]: what a handler gets besides the request — where to write
//! the answer, how to park it, and the loop's cached clock.

use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

use seckill_protocol::{DateHeader, RequestInfo, ResponseWriter, Status};

use crate::completion::ParkToken;
use crate::table::Key;

/// What the handler did with the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Unanswered,
    Responded,
    Parked { deadline: Instant },
}

/// What a handler sees besides the request: where to write the answer, or
/// how to park it, plus per-loop facts it may need.
#[derive(Debug)]
pub struct Exchange<'a> {
    out: &'a mut Vec<u8>,
    date: &'a DateHeader,
    info: RequestInfo,
    peer: SocketAddr,
    now: Instant,
    wall_now: SystemTime,
    loop_id: usize,
    key: Key,
    seq: u32,
    outcome: Outcome,
}

/// The loop facts an exchange carries (everything but the output buffer and the request).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Context<'a> {
    pub date: &'a DateHeader,
    pub now: Instant,
    pub wall_now: SystemTime,
    pub loop_id: usize,
}

impl<'a> Exchange<'a> {
    pub(crate) fn new(
        out: &'a mut Vec<u8>,
        cx: Context<'a>,
        info: RequestInfo,
        peer: SocketAddr,
        key: Key,
        seq: u32,
    ) -> Exchange<'a> {
        Exchange {
            out,
            date: cx.date,
            info,
            peer,
            now: cx.now,
            wall_now: cx.wall_now,
            loop_id: cx.loop_id,
            key,
            seq,
            outcome: Outcome::Unanswered,
        }
    }

    pub(crate) fn outcome(&self) -> Outcome {
        self.outcome
    }

    /// Starts the response to this request. Call at most once, and not after `park`.
    pub fn respond(&mut self, status: Status) -> ResponseWriter<'_> {
        debug_assert_eq!(self.outcome, Outcome::Unanswered, "a request is answered once");
        self.outcome = Outcome::Responded;
        ResponseWriter::new(self.out, self.date, self.info, status)
    }

    /// Parks the request: its answer will come from another thread through a
    /// [`crate::Completer`] with the returned token, or, if none has come by
    /// `deadline`, from [`crate::Handler::park_expired`].
    pub fn park(&mut self, deadline: Instant) -> ParkToken {
        debug_assert_eq!(self.outcome, Outcome::Unanswered, "a request is answered once");
        self.outcome = Outcome::Parked { deadline };
        ParkToken::new(self.loop_id, self.key, self.seq)
    }

    /// The token [`park`](Self::park) will return, without parking yet. It
    /// lets a handler hand the token to another thread first and park only
    /// once that succeeded: the loop reads completions only between handler
    /// calls, so a completion sent before `park` is called from this same
    /// `handle` still finds the request parked. A handler that sends the
    /// token must then park.
    pub fn park_token(&self) -> ParkToken {
        ParkToken::new(self.loop_id, self.key, self.seq)
    }

    /// The client's address (the TCP peer; `X-Forwarded-For` is the handler's business).
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The loop's clock, read once per tick.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Wall-clock time, read once per tick.
    pub fn wall_now(&self) -> SystemTime {
        self.wall_now
    }

    /// This loop's index, `0..threads`.
    pub fn loop_id(&self) -> usize {
        self.loop_id
    }

    /// The request's response facts (version, keep-alive, HEAD), as the
    /// reactor passes them to `ResponseWriter` (during shutdown `keep_alive`
    /// is false).
    pub fn info(&self) -> RequestInfo {
        self.info
    }
}
