//! A bounded pool of worker threads for the work an event loop must never
//! do itself: password hashing, store calls, captcha rendering. A loop
//! reserves a place, parks the request, and submits a job that answers the
//! parked request through the reactor's [`Completer`].
//!
//! Reserving first means a request is only parked once its job is sure to
//! run: a full pool is refused at once with 503 instead of leaving a parked
//! request to time out. The number of queued and running jobs is bounded by
//! `queue_max`. Each worker wakes the loops once per run of jobs, not once
//! per job: it flushes its completions when the queue is empty.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;
use seckill_reactor::Completer;

use crate::handler::Completion;

/// A job: it answers its parked request(s) through the completer.
pub type Job = Box<dyn FnOnce(&mut Completer<Completion>) + Send>;

#[derive(Debug)]
pub struct WorkerPool {
    name: &'static str,
    threads: usize,
    jobs: Sender<Job>,
    queue: Mutex<Option<Receiver<Job>>>,
    /// Reserved, queued or running jobs.
    in_flight: Arc<AtomicUsize>,
    queue_max: usize,
    handles: Mutex<Vec<JoinHandle<()>>>,
}

/// A place in the pool, taken before parking. Dropping it unused frees it.
#[derive(Debug)]
pub struct Reservation<'p> {
    pool: &'p WorkerPool,
    used: bool,
}

impl Reservation<'_> {
    /// Queues `job`; it will run.
    pub fn submit(mut self, job: Job) {
        self.used = true;
        // The receiver lives in the pool (and its workers) as long as the
        // sender, so sending cannot fail.
        let _ = self.pool.jobs.send(job);
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if !self.used {
            self.pool.in_flight.fetch_sub(1, Ordering::Release);
        }
    }
}

impl WorkerPool {
    /// A pool of `threads` workers for at most `queue_max` jobs at once. Jobs
    /// may be submitted at once; they run once [`WorkerPool::start`] has
    /// given the pool the reactor's completer.
    pub fn new(name: &'static str, threads: usize, queue_max: usize) -> Self {
        let (jobs, queue) = crossbeam_channel::unbounded();
        WorkerPool {
            name,
            threads: threads.max(1),
            jobs,
            queue: Mutex::new(Some(queue)),
            in_flight: Arc::new(AtomicUsize::new(0)),
            queue_max: queue_max.max(1),
            handles: Mutex::new(Vec::new()),
        }
    }

    /// Starts the workers. Calling it again does nothing.
    pub fn start(&self, completer: &Completer<Completion>) -> std::io::Result<()> {
        let Some(queue) = self.queue.lock().take() else { return Ok(()) };
        let mut handles = self.handles.lock();
        for i in 0..self.threads {
            let queue = queue.clone();
            let in_flight = self.in_flight.clone();
            let mut completer = completer.clone();
            let handle = std::thread::Builder::new()
                .name(format!("{}-{i}", self.name))
                .spawn(move || work(&queue, &in_flight, &mut completer))?;
            handles.push(handle);
        }
        Ok(())
    }

    /// A place for one job, or `None` when the pool is full (answer 503).
    pub fn try_reserve(&self) -> Option<Reservation<'_>> {
        let taken = self.in_flight.fetch_add(1, Ordering::AcqRel);
        if taken >= self.queue_max {
            self.in_flight.fetch_sub(1, Ordering::Release);
            return None;
        }
        Some(Reservation { pool: self, used: false })
    }

    /// Jobs reserved, queued or running.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }
}

fn work(queue: &Receiver<Job>, in_flight: &AtomicUsize, completer: &mut Completer<Completion>) {
    // `recv` fails only when every sender is gone, which ends the worker.
    while let Ok(job) = queue.recv() {
        job(completer);
        in_flight.fetch_sub(1, Ordering::Release);
        if queue.is_empty() {
            completer.flush();
        }
    }
}
