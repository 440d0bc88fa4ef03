//! A bounded pool of worker threads for the work an event loop must never
//! do itself: password hashing, store calls, captcha rendering. A loop parks
//! the request, submits a job, and the job answers the parked request through
//! the reactor's [`Completer`].
//!
//! The queue is bounded (`try_submit` fails at once when it is full, and the
//! loop answers 503): under a login storm the pool sheds load instead of
//! queueing without bound. Each worker wakes the loops once per run of jobs,
//! not once per job: it flushes its completions when the queue is empty.

use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use parking_lot::Mutex;
use seckill_reactor::Completer;

use crate::handler::Completion;

/// A job: it answers its parked request(s) through the completer.
pub type Job = Box<dyn FnOnce(&mut Completer<Completion>) + Send>;

/// The queue is full: answer 503 `overloaded`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolFull;

#[derive(Debug)]
pub struct WorkerPool {
    name: &'static str,
    threads: usize,
    jobs: Sender<Job>,
    pending: Mutex<Option<Receiver<Job>>>,
    handles: Mutex<Vec<JoinHandle<()>>>,
}

impl WorkerPool {
    /// A pool of `threads` workers behind a queue of `queue_max` jobs. Jobs
    /// may be submitted at once; they run once [`WorkerPool::start`] has
    /// given the pool the reactor's completer.
    pub fn new(name: &'static str, threads: usize, queue_max: usize) -> Self {
        let (jobs, queue) = crossbeam_channel::bounded(queue_max);
        WorkerPool {
            name,
            threads: threads.max(1),
            jobs,
            pending: Mutex::new(Some(queue)),
            handles: Mutex::new(Vec::new()),
        }
    }

    /// Starts the workers. Calling it again does nothing.
    pub fn start(&self, completer: &Completer<Completion>) -> std::io::Result<()> {
        let Some(queue) = self.pending.lock().take() else { return Ok(()) };
        let mut handles = self.handles.lock();
        for i in 0..self.threads {
            let queue = queue.clone();
            let mut completer = completer.clone();
            let handle = std::thread::Builder::new()
                .name(format!("{}-{i}", self.name))
                .spawn(move || work(&queue, &mut completer))?;
            handles.push(handle);
        }
        Ok(())
    }

    /// Queues `job`, or refuses at once when the queue is full.
    pub fn try_submit(&self, job: Job) -> Result<(), PoolFull> {
        match self.jobs.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => Err(PoolFull),
        }
    }

    /// Jobs waiting for a worker.
    pub fn queued(&self) -> usize {
        self.jobs.len()
    }
}

fn work(queue: &Receiver<Job>, completer: &mut Completer<Completion>) {
    // The pool lives as long as the process: `recv` fails only when every
    // sender is gone, which ends the worker.
    while let Ok(job) = queue.recv() {
        job(completer);
        if queue.is_empty() {
            completer.flush();
        }
    }
}
