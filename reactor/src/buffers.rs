//! Per-loop pools of read and write buffers.
//!
//! An idle keep-alive connection holds no buffer: it takes a [`ReadState`]
//! (read buffer plus request parser, whose decode buffer is pooled with it)
//! when bytes arrive that do not form complete requests, or while it works
//! through them, and gives it back as soon as everything read is consumed;
//! it takes a write buffer when it has something to send and gives it back
//! once flushed. Buffers are allocated on first need and then reused, so the
//! steady state allocates nothing. A pool keeps at most `pooled_max` spares,
//! and a buffer that grew for an unusually large request is shrunk back
//! before it is pooled.

use seckill_protocol::{Limits, RequestParser};

/// Read buffer size of a fresh state; grown up to [`ReadState::max_len`] for large requests.
pub(crate) const READ_BUF_LEN: usize = 16 * 1024;
/// Write buffers above this capacity are shrunk before they are pooled.
pub(crate) const WRITE_BUF_KEEP: usize = 64 * 1024;

/// The unconsumed input of a connection and the parser working through it.
/// `buf` is always fully initialised (`len() == capacity` in use), so reads
/// go straight into it; `buf[start..end]` holds the unconsumed bytes.
#[derive(Debug)]
pub(crate) struct ReadState {
    pub buf: Vec<u8>,
    pub start: usize,
    pub end: usize,
    pub parser: RequestParser,
}

impl ReadState {
    fn new(limits: Limits) -> ReadState {
        ReadState { buf: vec![0; READ_BUF_LEN], start: 0, end: 0, parser: RequestParser::new(limits) }
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    #[cfg(test)]
    pub fn unconsumed(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    pub fn consume(&mut self, n: usize) {
        self.start += n;
        debug_assert!(self.start <= self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Room to read into: moves unconsumed bytes to the front when the tail
    /// is full, and grows the buffer (up to `max_len`) when a single partial
    /// request fills all of it. Empty only when the buffer is at its maximum
    /// and full.
    pub fn spare(&mut self, max_len: usize) -> &mut [u8] {
        if self.end == self.buf.len() && self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() && self.buf.len() < max_len {
            let len = (self.buf.len() * 2).min(max_len);
            self.buf.resize(len, 0);
        }
        &mut self.buf[self.end..]
    }

    /// The largest read buffer a connection may need: one whole request at
    /// the limits, with room for chunked framing around the body.
    pub fn max_len(limits: &Limits) -> usize {
        (limits.head_bytes_max + limits.body_bytes_max * 2 + 4096).max(READ_BUF_LEN)
    }
}

#[derive(Debug)]
pub(crate) struct Pools {
    limits: Limits,
    /// Boxed because a connection holds its state as an 8-byte `Option<Box<_>>`.
    #[allow(clippy::vec_box)]
    reads: Vec<Box<ReadState>>,
    writes: Vec<Vec<u8>>,
    pooled_max: usize,
}

impl Pools {
    pub fn new(limits: Limits, pooled_max: usize) -> Pools {
        Pools { limits, reads: Vec::new(), writes: Vec::new(), pooled_max }
    }

    pub fn take_read(&mut self) -> Box<ReadState> {
        self.reads.pop().unwrap_or_else(|| Box::new(ReadState::new(self.limits)))
    }

    /// Takes back an emptied read state; the parser is reset so the next
    /// connection starts clean.
    pub fn give_read(&mut self, mut state: Box<ReadState>) {
        if self.reads.len() >= self.pooled_max {
            return;
        }
        state.start = 0;
        state.end = 0;
        state.parser.reset();
        if state.buf.len() > READ_BUF_LEN {
            state.buf.truncate(READ_BUF_LEN);
            state.buf.shrink_to_fit();
        }
        self.reads.push(state);
    }

    /// An empty write buffer with some capacity.
    pub fn take_write(&mut self) -> Vec<u8> {
        self.writes.pop().unwrap_or_else(|| Vec::with_capacity(READ_BUF_LEN))
    }

    pub fn give_write(&mut self, mut buf: Vec<u8>) {
        if buf.capacity() == 0 || self.writes.len() >= self.pooled_max {
            return;
        }
        buf.clear();
        if buf.capacity() > WRITE_BUF_KEEP {
            buf.shrink_to(READ_BUF_LEN);
        }
        self.writes.push(buf);
    }

    #[cfg(test)]
    fn spares(&self) -> (usize, usize) {
        (self.reads.len(), self.writes.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spare_compacts_then_grows_to_the_maximum() {
        let mut state = ReadState::new(Limits::default());
        let max = READ_BUF_LEN * 2;
        let n = state.spare(max).len();
        assert_eq!(n, READ_BUF_LEN);
        state.end = READ_BUF_LEN;
        state.consume(10);
        // Full tail with consumed front: compacted, not grown.
        assert_eq!(state.spare(max).len(), 10);
        assert_eq!((state.start, state.end), (0, READ_BUF_LEN - 10));
        state.end = READ_BUF_LEN;
        assert_eq!(state.spare(max).len(), READ_BUF_LEN);
        state.end = max;
        assert!(state.spare(max).is_empty());
    }

    #[test]
    fn consuming_everything_rewinds() {
        let mut state = ReadState::new(Limits::default());
        state.end = 100;
        state.consume(40);
        assert_eq!(state.unconsumed().len(), 60);
        state.consume(60);
        assert!(state.is_empty());
        assert_eq!((state.start, state.end), (0, 0));
    }

    #[test]
    fn pools_reuse_and_stay_bounded() {
        let mut pools = Pools::new(Limits::default(), 1);
        let a = pools.take_write();
        let ptr = a.as_ptr();
        let b = pools.take_write();
        pools.give_write(a);
        pools.give_write(b);
        assert_eq!(pools.spares().1, 1, "at most pooled_max spares");
        let again = pools.take_write();
        assert_eq!(again.as_ptr(), ptr, "a pooled buffer is reused");
        let mut big = Vec::with_capacity(WRITE_BUF_KEEP * 4);
        big.push(1);
        pools.give_write(big);
        let back = pools.take_write();
        assert!(back.is_empty() && back.capacity() <= WRITE_BUF_KEEP);
    }
}
