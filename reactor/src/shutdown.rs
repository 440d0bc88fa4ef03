//! Shared state across loops: the graceful-shutdown signal, the
//! connection admission count (`connections_max`), and the exit count that
//! `Reactor::join` waits on.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use mio::Waker;
use parking_lot::{Condvar, Mutex};

/// The graceful-shutdown signal. `requested` is read by every loop on every
/// iteration (one relaxed load); the drain deadline behind the mutex only
/// once it is set.
#[derive(Debug, Default)]
pub(crate) struct Shutdown {
    requested: AtomicBool,
    drain_end: Mutex<Option<Instant>>,
    running: Mutex<usize>,
    exited: Condvar,
}

impl Shutdown {
    pub fn new(running: usize) -> Shutdown {
        Shutdown { running: Mutex::new(running), ..Shutdown::default() }
    }

    /// Sets the drain deadline (the first call wins) and raises the flag.
    pub fn request(&self, drain_end: Instant) {
        let mut end = self.drain_end.lock();
        if end.is_none() {
            *end = Some(drain_end);
        }
        self.requested.store(true, Ordering::Release);
    }

    /// The drain deadline, once shutdown is requested.
    pub fn drain_end(&self) -> Option<Instant> {
        if !self.requested.load(Ordering::Acquire) {
            return None;
        }
        *self.drain_end.lock()
    }

    /// Waits until every loop has exited, up to `deadline`.
    pub fn wait_exited(&self, deadline: Instant) -> bool {
        let mut running = self.running.lock();
        while *running > 0 {
            if self.exited.wait_until(&mut running, deadline).timed_out() {
                return *running == 0;
            }
        }
        true
    }
}

/// Counts a thread as exited when dropped, even by a panic.
#[derive(Debug)]
pub(crate) struct ExitGuard(pub Arc<Shutdown>);

impl Drop for ExitGuard {
    fn drop(&mut self) {
        let mut running = self.0.running.lock();
        *running -= 1;
        self.0.exited.notify_all();
    }
}

/// The global connection count against `connections_max`. A thread that
/// finds the limit reached pauses its accepting and registers here; the
/// next close wakes it.
#[derive(Debug)]
pub(crate) struct Admission {
    open: AtomicUsize,
    max: usize,
    /// One flag per accepting thread (loops, then the acceptor if any).
    paused: Box<[AtomicBool]>,
    wakers: Box<[Arc<Waker>]>,
}

impl Admission {
    pub fn new(max: usize, wakers: Box<[Arc<Waker>]>) -> Admission {
        let paused = wakers.iter().map(|_| AtomicBool::new(false)).collect();
        Admission { open: AtomicUsize::new(0), max, paused, wakers }
    }

    /// Counts one more connection, if the limit allows.
    pub fn try_admit(&self) -> bool {
        if self.open.fetch_add(1, Ordering::AcqRel) < self.max {
            return true;
        }
        self.open.fetch_sub(1, Ordering::AcqRel);
        false
    }

    /// Records that accepting thread `who` stopped at the limit. Returns
    /// false if a connection closed meanwhile, in which case `who` should
    /// simply try again.
    pub fn pause(&self, who: usize) -> bool {
        self.paused[who].store(true, Ordering::SeqCst);
        if self.open.load(Ordering::SeqCst) < self.max {
            return !self.paused[who].swap(false, Ordering::SeqCst);
        }
        true
    }

    /// Counts a closed connection and wakes paused accepting threads.
    /// Returns true if `who` itself was paused and should accept again (it
    /// is not woken through its waker: it is running).
    pub fn release(&self, who: usize) -> bool {
        self.open.fetch_sub(1, Ordering::SeqCst);
        let mut resume_self = false;
        for (i, paused) in self.paused.iter().enumerate() {
            if paused.load(Ordering::SeqCst) && paused.swap(false, Ordering::SeqCst) {
                if i == who {
                    resume_self = true;
                } else {
                    let _ = self.wakers[i].wake();
                }
            }
        }
        resume_self
    }

    /// Whether `who` is still paused (a wake without this set means resume).
    pub fn is_paused(&self, who: usize) -> bool {
        self.paused[who].load(Ordering::SeqCst)
    }

    #[cfg(test)]
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mio::{Poll, Token};
    use std::time::Duration;

    #[test]
    fn admission_stops_at_the_limit_and_resumes_on_release() {
        let poll = Poll::new().expect("poll");
        let waker = Arc::new(Waker::new(poll.registry(), Token(0)).expect("waker"));
        let admission = Admission::new(2, vec![Arc::clone(&waker), waker].into_boxed_slice());
        assert!(admission.try_admit());
        assert!(admission.try_admit());
        assert!(!admission.try_admit());
        assert!(admission.pause(0));
        assert!(admission.is_paused(0));
        assert!(!admission.release(1), "the releasing thread was not paused");
        assert!(!admission.is_paused(0), "the paused thread is resumed");
        assert_eq!(admission.open(), 1);
        assert!(admission.try_admit());
    }

    #[test]
    fn join_waits_for_every_guard() {
        let shutdown = Arc::new(Shutdown::new(2));
        let a = ExitGuard(Arc::clone(&shutdown));
        let b = ExitGuard(Arc::clone(&shutdown));
        drop(a);
        assert!(!shutdown.wait_exited(Instant::now() + Duration::from_millis(20)));
        std::thread::spawn(move || drop(b));
        assert!(shutdown.wait_exited(Instant::now() + Duration::from_secs(5)));
    }

    #[test]
    fn the_first_drain_deadline_wins() {
        let shutdown = Shutdown::new(0);
        assert!(shutdown.drain_end().is_none());
        let t = Instant::now();
        shutdown.request(t);
        shutdown.request(t + Duration::from_secs(1));
        assert_eq!(shutdown.drain_end(), Some(t));
    }
}
