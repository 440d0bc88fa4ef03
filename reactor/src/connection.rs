//! One client connection: its socket, its buffers (borrowed from the loop's
//! pools only while in use), and the ordered answer slots of its pipeline.
//!
//! Ordering: a response produced while no earlier request of the connection
//! is still waiting goes straight into the write buffer. Otherwise it is
//! *held*: written into the connection's held buffer and recorded as a
//! `Held` slot behind the `Parked` slot(s) it must wait for. When the front
//! parked request is answered (completion or deadline), its answer goes into
//! the write buffer and every held answer behind it, up to the next parked
//! request, is copied after it. Slots are bounded by `pipeline_depth_max`,
//! because reading stops while that many answers are outstanding.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown as HalfClose, SocketAddr};
use std::time::Instant;

use mio::net::TcpStream;
use seckill_protocol::RequestInfo;

use crate::buffers::{Pools, ReadState, WRITE_BUF_KEEP};

/// An answer the client is still owed, in pipeline order.
#[derive(Debug)]
pub(crate) struct Slot {
    pub seq: u32,
    pub state: SlotState,
}

#[derive(Debug)]
pub(crate) enum SlotState {
    /// Waiting for a completion from another thread, or its deadline.
    Parked { info: RequestInfo, parked_at: Instant, deadline: Instant },
    /// Answered, but behind a parked request: `held[start..start + len]`.
    Held { start: u32, len: u32 },
}

#[derive(Debug)]
pub(crate) struct Connection {
    pub stream: TcpStream,
    pub peer: SocketAddr,
    /// Unconsumed input and the parser; `None` while nothing is buffered.
    pub read: Option<Box<ReadState>>,
    /// Bytes to send, from `wpos`; no capacity while nothing is pending.
    pub wbuf: Vec<u8>,
    pub wpos: usize,
    /// Answers waiting behind a parked request (see the module doc).
    pub held: Vec<u8>,
    pub slots: VecDeque<Slot>,
    /// Sequence number of the next request on this connection.
    pub next_seq: u32,
    /// Answers in `wbuf` not yet fully written.
    pub unflushed: u32,
    /// Edge-triggered readiness not yet used up (no `WouldBlock` seen since the last event).
    pub can_read: bool,
    pub can_write: bool,
    /// The peer shut down its sending side (we read EOF).
    pub eof: bool,
    /// An event reported the peer's FIN: a short read is then not proof of
    /// a drained socket, since the EOF behind the data raises no new edge.
    pub read_closed: bool,
    /// No further request will be read: an error, `Connection: close`, a
    /// head timeout, or shutdown. Closes once everything owed is written.
    pub read_stop: bool,
    /// The buffer ends in an incomplete request.
    pub partial: bool,
    /// Our side is shut down for writing; input is discarded until EOF or the linger deadline.
    pub lingering: bool,
    /// In the loop's ready list.
    pub queued: bool,
    /// When the incomplete request at the end of the buffer began.
    pub request_started: Option<Instant>,
    /// Last I/O or answer (the start of idleness or of lingering).
    pub last_active: Instant,
    /// The tick of this connection's live timer entry; 0 when none.
    pub timer_tick: u64,
}

impl Connection {
    pub fn new(stream: TcpStream, peer: SocketAddr, now: Instant) -> Connection {
        Connection {
            stream,
            peer,
            read: None,
            wbuf: Vec::new(),
            wpos: 0,
            held: Vec::new(),
            slots: VecDeque::new(),
            next_seq: 0,
            unflushed: 0,
            can_read: false,
            can_write: true,
            eof: false,
            read_closed: false,
            read_stop: false,
            partial: false,
            lingering: false,
            queued: false,
            request_started: None,
            last_active: now,
            timer_tick: 0,
        }
    }

    /// Requests received and not yet answered on the wire: parked, held, or unwritten.
    pub fn unanswered(&self) -> usize {
        self.slots.len() + self.unflushed as usize
    }

    /// Nothing buffered, nothing owed: the state `idle_timeout` applies to.
    pub fn is_idle(&self) -> bool {
        self.read.is_none() && self.slots.is_empty() && self.wbuf.is_empty() && !self.lingering && !self.read_stop
    }

    /// No further request can arrive: what is owed is all that is left.
    pub fn input_finished(&self) -> bool {
        self.read_stop || (self.eof && (self.read.as_ref().is_none_or(|r| r.is_empty()) || self.partial))
    }

    pub fn parked(&self) -> usize {
        self.slots.iter().filter(|s| matches!(s.state, SlotState::Parked { .. })).count()
    }

    /// Writes as much of `wbuf` as the socket takes. Returns bytes written;
    /// gives the buffer back to the pool once it is all out.
    pub fn flush(&mut self, pools: &mut Pools) -> io::Result<usize> {
        let mut written = 0;
        while self.can_write && self.wpos < self.wbuf.len() {
            match self.stream.write(&self.wbuf[self.wpos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.wpos += n;
                    written += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.can_write = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.wpos == self.wbuf.len() && self.wbuf.capacity() > 0 {
            self.wpos = 0;
            self.unflushed = 0;
            pools.give_write(std::mem::take(&mut self.wbuf));
        }
        Ok(written)
    }

    /// Moves held answers at the front of the pipeline into the write buffer.
    pub fn release_held(&mut self, pools: &mut Pools) {
        while let Some(Slot { state: SlotState::Held { start, len }, .. }) = self.slots.front() {
            let (start, len) = (*start as usize, *len as usize);
            if self.wbuf.capacity() == 0 {
                self.wbuf = pools.take_write();
            }
            self.wbuf.extend_from_slice(&self.held[start..start + len]);
            self.unflushed += 1;
            self.slots.pop_front();
        }
        if self.held.capacity() == 0 {
            return;
        }
        if !self.slots.iter().any(|s| matches!(s.state, SlotState::Held { .. })) {
            pools.give_write(std::mem::take(&mut self.held));
        } else if self.held.len() > WRITE_BUF_KEEP {
            self.compact_held(pools);
        }
    }

    /// Copies the live held answers into a fresh buffer, in slot order, so
    /// that a pipeline that never fully drains does not grow `held` forever.
    fn compact_held(&mut self, pools: &mut Pools) {
        let mut fresh = pools.take_write();
        for slot in self.slots.iter_mut() {
            if let SlotState::Held { start, len } = &mut slot.state {
                let from = *start as usize;
                *start = fresh.len() as u32;
                fresh.extend_from_slice(&self.held[from..from + *len as usize]);
            }
        }
        pools.give_write(std::mem::replace(&mut self.held, fresh));
    }

    /// Reads and drops input while lingering. Returns true once the peer
    /// has closed, or when it keeps sending more than `limit` bytes.
    pub fn discard_input(&mut self, limit: usize) -> io::Result<bool> {
        let mut scratch = [0u8; 4096];
        let mut total = 0;
        while total <= limit {
            match self.stream.read(&mut scratch) {
                Ok(0) => return Ok(true),
                Ok(n) => total += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.can_read = false;
                    return Ok(false);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Shuts our sending side: the client reads every answer, then EOF,
    /// rather than an RST that could destroy answers it has not read yet.
    pub fn half_close(&mut self) {
        let _ = self.stream.shutdown(HalfClose::Write);
        self.lingering = true;
    }

    /// Hands back whatever buffers the connection still holds.
    pub fn release_buffers(&mut self, pools: &mut Pools) {
        if let Some(read) = self.read.take() {
            pools.give_read(read);
        }
        pools.give_write(std::mem::take(&mut self.wbuf));
        pools.give_write(std::mem::take(&mut self.held));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_connection_is_small() {
        // With no buffer, no held answer and no slot, this is all an idle
        // keep-alive connection costs in user space (plus its table entry).
        assert!(std::mem::size_of::<Connection>() <= 256, "{}", std::mem::size_of::<Connection>());
    }
}
