//! Listening sockets and the acceptor thread.
//!
//! `ReusePort`: one SO_REUSEPORT listener per loop, created with socket2;
//! the first binds the configured address (port 0 picks a port) and the
//! others bind the address the first one got, so the kernel spreads
//! connections across loops. `Acceptor`: one listener owned by an acceptor
//! thread, which accepts in bounded batches, hands each socket to the next
//! loop round-robin through that loop's channel, and wakes each loop that
//! received sockets once per batch.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::Sender;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use socket2::{Domain, Protocol, Socket, Type};

use crate::shutdown::{Admission, Shutdown};

const BACKLOG: i32 = 4096;
/// Sockets accepted per batch before the acceptor wakes loops and polls again.
pub(crate) const ACCEPT_BATCH: usize = 64;

/// A nonblocking listener bound to `addr`; `reuse_port` lets several bind the same port.
pub(crate) fn bind(addr: SocketAddr, reuse_port: bool) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(TcpListener::from_std(socket.into()))
}

/// `count` SO_REUSEPORT listeners on one port: later ones bind the port the first got.
pub(crate) fn bind_reuseport(addr: SocketAddr, count: usize) -> io::Result<Vec<TcpListener>> {
    let first = bind(addr, true)?;
    let bound = first.local_addr()?;
    let mut listeners = vec![first];
    for _ in 1..count {
        listeners.push(bind(bound, true)?);
    }
    Ok(listeners)
}

/// Accepted sockets on their way to a loop.
pub(crate) type Handoff = (TcpStream, SocketAddr);

/// Prepares an accepted socket: Nagle off, since every response leaves in
/// one write and must not wait for an ACK.
pub(crate) fn prepare(stream: &TcpStream) {
    // Failure leaves Nagle on: slower, still correct.
    let _ = stream.set_nodelay(true);
}

/// The acceptor thread's state.
#[derive(Debug)]
pub(crate) struct Acceptor {
    pub poll: Poll,
    pub listener: TcpListener,
    pub loops: Vec<(Sender<Handoff>, Arc<Waker>)>,
    pub shutdown: Arc<Shutdown>,
    pub admission: Arc<Admission>,
    /// This thread's index in `admission`.
    pub admission_index: usize,
}

pub(crate) const ACCEPTOR_LISTENER: Token = Token(0);
pub(crate) const ACCEPTOR_WAKER: Token = Token(1);

impl Acceptor {
    pub fn run(mut self) {
        if let Err(error) = self.poll.registry().register(&mut self.listener, ACCEPTOR_LISTENER, Interest::READABLE) {
            eprintln!("seckill-reactor: acceptor cannot register its listener: {error}");
            return;
        }
        let mut events = Events::with_capacity(16);
        let mut next = 0usize;
        let mut dirty = vec![false; self.loops.len()];
        // Whether the listener may hold connections we have not accepted
        // (edge-triggered: we only hear of it again for a new connection).
        let mut pending = true;
        loop {
            let drain_end = self.shutdown.drain_end();
            if drain_end.is_some_and(|end| Instant::now() >= end) {
                // Dropping the listener closes it; the loops carry on.
                return;
            }
            let timeout = if pending && !self.admission.is_paused(self.admission_index) {
                Some(std::time::Duration::ZERO)
            } else {
                drain_end.map(|end| end.saturating_duration_since(Instant::now()))
            };
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    eprintln!("seckill-reactor: acceptor poll failed: {error}");
                    return;
                }
            }
            for event in events.iter() {
                if event.token() == ACCEPTOR_LISTENER {
                    pending = true;
                }
            }
            if !self.admission.is_paused(self.admission_index) {
                pending = pending || events.iter().any(|e| e.token() == ACCEPTOR_WAKER);
            }
            if pending {
                pending = self.accept_batch(&mut next, &mut dirty);
                for (i, flag) in dirty.iter_mut().enumerate() {
                    if std::mem::take(flag) {
                        let _ = self.loops[i].1.wake();
                    }
                }
            }
        }
    }

    /// Accepts up to a batch; returns whether more may be waiting.
    fn accept_batch(&mut self, next: &mut usize, dirty: &mut [bool]) -> bool {
        for _ in 0..ACCEPT_BATCH {
            if !self.admission.try_admit() {
                // At the limit: pause until a close wakes us (or retry at
                // once if one closed meanwhile).
                return !self.admission.pause(self.admission_index);
            }
            match self.listener.accept() {
                Ok((stream, peer)) => {
                    prepare(&stream);
                    let index = *next % self.loops.len();
                    *next = next.wrapping_add(1);
                    if self.loops[index].0.send((stream, peer)).is_err() {
                        // The loop is gone (shutting down): the socket closes here.
                        self.admission.release(self.admission_index);
                    } else {
                        dirty[index] = true;
                    }
                }
                Err(error) => {
                    self.admission.release(self.admission_index);
                    return match error.kind() {
                        io::ErrorKind::WouldBlock => false,
                        // The peer gave up before we accepted; try the next.
                        io::ErrorKind::ConnectionAborted | io::ErrorKind::Interrupted => true,
                        // EMFILE and friends: retry on the next event rather than spin.
                        _ => {
                            eprintln!("seckill-reactor: accept failed: {error}");
                            false
                        }
                    };
                }
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuseport_listeners_share_the_port_the_first_got() {
        let listeners = bind_reuseport("127.0.0.1:0".parse().expect("addr"), 3).expect("bind");
        let ports: Vec<u16> = listeners.iter().map(|l| l.local_addr().expect("addr").port()).collect();
        assert_ne!(ports[0], 0);
        assert!(ports.iter().all(|&p| p == ports[0]), "{ports:?}");
    }

    #[test]
    fn plain_listener_binds_port_zero() {
        let listener = bind("127.0.0.1:0".parse().expect("addr"), false).expect("bind");
        assert_ne!(listener.local_addr().expect("addr").port(), 0);
    }
}
