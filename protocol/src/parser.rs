//! The per-connection request parser.
//!
//! The caller keeps the unconsumed bytes of the connection in one buffer and
//! calls [`RequestParser::parse`] whenever more arrive. The parser remembers
//! how far it has searched for the end of the head and how far it has decoded
//! a chunked body, so a client that sends one byte at a time costs linear, not
//! quadratic, work. On `Complete` the caller handles the request and then
//! drops `wire_len()` bytes from the front of its buffer before calling again.

use crate::{HttpError, Limits, Request};

/// The outcome of one call to [`RequestParser::parse`].
#[derive(Debug)]
pub enum Parse<'b> {
    /// A whole request, head and body, is at the front of the buffer.
    Complete(Request<'b>),
    /// More bytes are needed. `send_continue` is true exactly once per
    /// request, when its head is complete, it carries `Expect: 100-continue`
    /// and its body has not yet arrived: write [`crate::CONTINUE_100`].
    Partial { send_continue: bool },
    /// The request is refused; answer with `error.status()` and close.
    Error(HttpError),
}

/// Parser state for one connection. Reused for every request on it.
#[derive(Debug)]
pub struct RequestParser {
    limits: Limits,
}

impl RequestParser {
    pub fn new(limits: Limits) -> Self {
        RequestParser { limits }
    }

    /// Parses the request at the front of `buf`, which holds every
    /// unconsumed byte of the connection (a part of a request, or several
    /// pipelined ones).
    pub fn parse<'b>(&'b mut self, buf: &'b [u8]) -> Parse<'b> {
        let _ = buf;
        todo!()
    }

    /// Whether a request has begun (some of its bytes are buffered) but is
    /// not complete. The reactor uses this for `head_timeout_ms`.
    pub fn in_progress(&self) -> bool {
        todo!()
    }

    /// Forgets any partial request (the connection is being reused for a
    /// fresh client, or was reset). Keeps the decode buffer's allocation.
    pub fn reset(&mut self) {
        todo!()
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }
}
