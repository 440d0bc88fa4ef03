//! [`Bridge`]: plain threads calling an async client (fred) that lives on
//! its own thread, with a deadline on every call.
//!
//! The server never awaits: its loops must not block and its workers, order
//! writer and keeper are plain threads. A client library that needs a tokio
//! runtime gets one thread running a current-thread runtime; each call sends
//! a job over a bounded channel and blocks on the reply with a timeout. One
//! thread suffices: the work is waiting on the network, and many jobs wait
//! at once as local tasks.

use std::future::Future;
use std::pin::Pin;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::mpsc;

type LocalFuture = Pin<Box<dyn Future<Output = ()>>>;
/// A job for the bridge's thread: given the client, the future that does the work and replies.
type Job<C> = Box<dyn FnOnce(C) -> LocalFuture + Send>;

/// Jobs waiting for the thread; beyond, a call fails at once (the caller
/// answers 503 rather than queue without bound).
const JOBS_QUEUED_MAX: usize = 4096;
/// The caller waits this much longer than the job's own timeout, so that the
/// job's timeout error (which names the cause) is what it normally sees.
const REPLY_MARGIN: Duration = Duration::from_millis(250);

/// Why a bridged call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BridgeError {
    /// No answer within the timeout: the outcome of a write is unknown.
    TimedOut(Duration),
    /// Too many calls waiting.
    Busy,
    /// The thread has ended (shutting down, or it could not start a runtime).
    Closed,
}

impl std::fmt::Display for BridgeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BridgeError::TimedOut(t) => write!(f, "no answer within {} ms (outcome unknown)", t.as_millis()),
            BridgeError::Busy => f.write_str("too many calls waiting"),
            BridgeError::Closed => f.write_str("the client's thread has ended"),
        }
    }
}

/// One thread with a current-thread runtime, serving calls on a client `C`.
pub struct Bridge<C: Clone + 'static> {
    /// `None` only while dropping (closing it ends the thread).
    jobs: Option<mpsc::Sender<Job<C>>>,
    thread: Option<JoinHandle<()>>,
    timeout: Duration,
}

impl<C: Clone + 'static> std::fmt::Debug for Bridge<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge").field("timeout", &self.timeout).finish()
    }
}

impl<C: Clone + Send + 'static> Bridge<C> {
    /// Starts thread `name`. `make` builds the client inside the runtime
    /// (clients that spawn tasks must be created there); `close` runs when
    /// the bridge is dropped.
    pub fn start<M, MF, X, XF>(name: &str, timeout: Duration, make: M, close: X) -> std::io::Result<Self>
    where
        M: FnOnce() -> MF + Send + 'static,
        MF: Future<Output = C>,
        X: FnOnce(C) -> XF + Send + 'static,
        XF: Future<Output = ()>,
    {
        let (jobs, mut queue) = mpsc::channel::<Job<C>>(JOBS_QUEUED_MAX);
        let thread = std::thread::Builder::new().name(name.into()).spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                // Every call then fails with `Closed`: reported, not a panic.
                return;
            };
            let local = tokio::task::LocalSet::new();
            local.block_on(&runtime, async move {
                let client = make().await;
                while let Some(job) = queue.recv().await {
                    tokio::task::spawn_local(job(client.clone()));
                }
                close(client).await;
            });
        })?;
        Ok(Bridge { jobs: Some(jobs), thread: Some(thread), timeout })
    }

    /// Runs `job` on the bridge's thread and waits for its answer, at most
    /// the timeout (plus a margin).
    pub fn call<T, F, Fut>(&self, job: F) -> Result<T, BridgeError>
    where
        T: Send + 'static,
        F: FnOnce(C) -> Fut + Send + 'static,
        Fut: Future<Output = T> + 'static,
    {
        let (reply, answer) = crossbeam_channel::bounded(1);
        let timeout = self.timeout;
        let boxed: Job<C> = Box::new(move |client: C| -> LocalFuture {
            Box::pin(async move {
                let result =
                    tokio::time::timeout(timeout, job(client)).await.map_err(|_| BridgeError::TimedOut(timeout));
                // The caller may have given up waiting: then nobody reads it.
                let _ = reply.send(result);
            })
        });
        let jobs = self.jobs.as_ref().ok_or(BridgeError::Closed)?;
        jobs.try_send(boxed).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => BridgeError::Busy,
            mpsc::error::TrySendError::Closed(_) => BridgeError::Closed,
        })?;
        match answer.recv_timeout(timeout + REPLY_MARGIN) {
            Ok(result) => result,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => Err(BridgeError::TimedOut(timeout)),
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => Err(BridgeError::Closed),
        }
    }

    /// Runs `job` on the bridge's thread without waiting for it (background
    /// tasks such as a subscription). Fails only if the thread has ended.
    pub fn spawn<F, Fut>(&self, job: F) -> Result<(), BridgeError>
    where
        F: FnOnce(C) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let boxed: Job<C> = Box::new(move |client: C| -> LocalFuture { Box::pin(job(client)) });
        let jobs = self.jobs.as_ref().ok_or(BridgeError::Closed)?;
        jobs.try_send(boxed).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => BridgeError::Busy,
            mpsc::error::TrySendError::Closed(_) => BridgeError::Closed,
        })
    }
}

impl<C: Clone + 'static> Drop for Bridge<C> {
    fn drop(&mut self) {
        // Closing the channel ends the thread's loop; it then closes the client.
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
