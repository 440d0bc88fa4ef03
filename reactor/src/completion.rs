//! Completing parked requests from other threads: [`ParkToken`], the
//! per-loop completion inbox and [`Completer`].
//!
//! Each loop has one inbox (a crossbeam channel) and one `mio::Waker`.
//! `Completer::push` only enqueues and marks the loop dirty in the
//! completer; `flush` wakes each dirty loop once, so a group-commit writer
//! that completes a thousand requests costs each loop a single wake (an
//! eventfd write and one `poll` return), not a thousand.
//!
//! The channel is unbounded, deliberately. Its length is bounded by the
//! requests parked on the loop (each parked request is completed at most
//! once by a correct caller; a late completion is dropped by the loop), and
//! those are bounded by `connections_max × pipeline_depth_max`. A bounded
//! channel of that capacity would preallocate megabytes per loop for a
//! worst case that never occurs, and a smaller one could make `push` block
//! or fail in the writer thread, which must never wait for a loop.
//! Crossbeam's list channel allocates a block per 31 messages, not per message.

use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};
use mio::Waker;

use crate::table::Key;

/// Identifies a parked request: its loop, its connection (slot and
/// generation) and its place in that connection's pipeline. `Copy` and
/// `Send`; meaningless to anyone but the reactor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ParkToken {
    pub(crate) loop_id: u32,
    pub(crate) slot: u32,
    pub(crate) generation: u32,
    pub(crate) seq: u32,
}

impl ParkToken {
    pub(crate) fn new(loop_id: usize, key: Key, seq: u32) -> ParkToken {
        ParkToken { loop_id: loop_id as u32, slot: key.slot, generation: key.generation, seq }
    }

    pub(crate) fn key(self) -> Key {
        Key { slot: self.slot, generation: self.generation }
    }

    /// The loop that parked the request.
    pub fn loop_id(self) -> usize {
        self.loop_id as usize
    }
}

/// What a loop receives in its inbox.
pub(crate) type Inbox<C> = Receiver<(ParkToken, C)>;

/// The sending side of one loop: its inbox and its waker.
#[derive(Debug)]
pub(crate) struct Outbox<C> {
    pub sender: Sender<(ParkToken, C)>,
    pub waker: Arc<Waker>,
}

/// Sends completions of parked requests to their loops from any thread.
/// `push` queues without waking; `flush` wakes every loop that received
/// something since the last flush, once. Dropping flushes.
#[derive(Debug)]
pub struct Completer<C> {
    loops: Arc<[Outbox<C>]>,
    /// Loops pushed to since the last flush.
    dirty: Vec<bool>,
    pending: bool,
}

impl<C: Send + 'static> Completer<C> {
    pub(crate) fn new(loops: Arc<[Outbox<C>]>) -> Completer<C> {
        let dirty = vec![false; loops.len()];
        Completer { loops, dirty, pending: false }
    }

    /// Queues `completion` for the request parked under `token`.
    pub fn push(&mut self, token: ParkToken, completion: C) {
        let index = token.loop_id as usize;
        let Some(outbox) = self.loops.get(index) else {
            // A token from another reactor: there is no request to complete.
            return;
        };
        // Sending fails only when the loop has exited and dropped its inbox;
        // its requests are gone, so the completion has nowhere to go.
        if outbox.sender.send((token, completion)).is_ok() {
            self.dirty[index] = true;
            self.pending = true;
        }
    }

    /// Wakes each loop that has new completions, once.
    pub fn flush(&mut self) {
        if !self.pending {
            return;
        }
        self.pending = false;
        for (dirty, outbox) in self.dirty.iter_mut().zip(self.loops.iter()) {
            if std::mem::take(dirty) {
                // A failed wake means the poller is gone: the loop has exited.
                let _ = outbox.waker.wake();
            }
        }
    }
}

impl<C> Clone for Completer<C> {
    fn clone(&self) -> Self {
        Completer { loops: Arc::clone(&self.loops), dirty: vec![false; self.loops.len()], pending: false }
    }
}

impl<C> Drop for Completer<C> {
    fn drop(&mut self) {
        if !self.pending {
            return;
        }
        for (dirty, outbox) in self.dirty.iter().zip(self.loops.iter()) {
            if *dirty {
                let _ = outbox.waker.wake();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mio::{Events, Poll, Token};
    use std::time::Duration;

    fn setup() -> (Poll, Completer<u32>, Inbox<u32>) {
        let poll = Poll::new().expect("poll");
        let waker = Arc::new(Waker::new(poll.registry(), Token(9)).expect("waker"));
        let (sender, receiver) = crossbeam_channel::unbounded();
        let loops: Arc<[Outbox<u32>]> = Arc::from(vec![Outbox { sender, waker }]);
        (poll, Completer::new(loops), receiver)
    }

    fn wakes(poll: &mut Poll) -> usize {
        let mut events = Events::with_capacity(8);
        poll.poll(&mut events, Some(Duration::from_millis(50))).expect("poll");
        events.iter().count()
    }

    #[test]
    fn push_does_not_wake_and_flush_wakes_once() {
        let (mut poll, mut completer, inbox) = setup();
        let token = ParkToken { loop_id: 0, slot: 1, generation: 2, seq: 3 };
        for i in 0..100 {
            completer.push(token, i);
        }
        assert_eq!(wakes(&mut poll), 0, "push alone does not wake");
        completer.flush();
        completer.flush();
        assert_eq!(wakes(&mut poll), 1);
        assert_eq!(inbox.try_iter().count(), 100);
    }

    #[test]
    fn drop_flushes_and_clones_are_independent() {
        let (mut poll, completer, inbox) = setup();
        // The reactor keeps the wakers alive; here a third clone does (a
        // closed eventfd leaves the epoll set before its event is seen).
        let keep_alive = completer.clone();
        let mut other = completer.clone();
        other.push(ParkToken { loop_id: 0, slot: 0, generation: 0, seq: 0 }, 7);
        drop(completer);
        assert_eq!(wakes(&mut poll), 0, "the untouched clone has nothing to flush");
        drop(other);
        assert_eq!(wakes(&mut poll), 1);
        assert_eq!(inbox.try_recv().ok().map(|(_, c)| c), Some(7));
        drop(keep_alive);
    }

    #[test]
    fn tokens_of_unknown_loops_are_ignored() {
        let (_poll, mut completer, inbox) = setup();
        completer.push(ParkToken { loop_id: 5, slot: 0, generation: 0, seq: 0 }, 1);
        completer.flush();
        assert!(inbox.try_recv().is_err());
    }
}
