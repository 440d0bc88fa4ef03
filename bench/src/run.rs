//! A load run from start to summary: validate the parameters, split the
//! connections over the threads, start them together, merge what they recorded.

use crate::driver::{self, StartLine, ThreadPlan};
use crate::recorder::Recorder;
use crate::report::Summary;
use crate::target::{Target, UrlError};
use crate::workload::{FixedRequest, RequestSource};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

/// Upper bounds that keep a run's memory bounded (each connection holds a
/// 16 KiB read buffer and `pipeline` in-flight records).
pub const CONNECTIONS_MAX: usize = 100_000;
pub const THREADS_MAX: usize = 64;
pub const PIPELINE_MAX: usize = 1024;
pub const DURATION_MAX: Duration = Duration::from_secs(24 * 3600);

/// Everything a load run needs; the command line maps onto it one to one.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub target: Target,
    pub method: String,
    /// Extra request headers, `Name: value` each.
    pub headers: Vec<String>,
    pub body: Vec<u8>,
    pub connections: usize,
    pub threads: usize,
    pub duration: Duration,
    pub warmup: Duration,
    /// Requests outstanding per connection, written back to back.
    pub pipeline: usize,
    /// Total requests per second (open loop); `None` is closed loop.
    pub rate_per_s: Option<f64>,
}

impl RunConfig {
    /// A closed-loop `GET` of `target` with the defaults of the command line.
    pub fn new(target: Target) -> RunConfig {
        RunConfig {
            target,
            method: "GET".to_string(),
            headers: Vec::new(),
            body: Vec::new(),
            connections: 64,
            threads: default_threads(),
            duration: Duration::from_secs(10),
            warmup: Duration::ZERO,
            pipeline: 1,
            rate_per_s: None,
        }
    }

    /// Threads actually used: never more than connections.
    pub fn effective_threads(&self) -> usize {
        self.threads.min(self.connections).max(1)
    }

    pub fn validate(&self) -> Result<(), BenchError> {
        let bad = |what: String| Err(BenchError::Config(what));
        if !(1..=CONNECTIONS_MAX).contains(&self.connections) {
            return bad(format!("connections must be in 1..={CONNECTIONS_MAX}"));
        }
        if !(1..=THREADS_MAX).contains(&self.threads) {
            return bad(format!("threads must be in 1..={THREADS_MAX}"));
        }
        if !(1..=PIPELINE_MAX).contains(&self.pipeline) {
            return bad(format!("pipeline must be in 1..={PIPELINE_MAX}"));
        }
        if self.duration.is_zero() || self.duration > DURATION_MAX || self.warmup > DURATION_MAX {
            return bad("duration must be positive and at most 24h (warmup too)".to_string());
        }
        if self.rate_per_s.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
            return bad("rate must be a positive number of requests per second".to_string());
        }
        if self.method.is_empty() || !self.method.bytes().all(|b| b.is_ascii_alphabetic()) {
            return bad(format!("method {:?} is not a token", self.method));
        }
        if let Some(h) = self.headers.iter().find(|h| !is_header_line(h)) {
            return bad(format!("header {h:?} is not `Name: value`"));
        }
        Ok(())
    }
}

fn is_header_line(h: &str) -> bool {
    let Some((name, _)) = h.split_once(':') else { return false };
    !name.is_empty() && !name.contains(char::is_whitespace) && !h.contains(['\r', '\n'])
}

/// Two load threads when the machine has two cores or more: one thread can
/// saturate a loopback server only with pipelining.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(2))
}

/// Why a run could not produce a summary.
#[derive(Debug)]
pub enum BenchError {
    /// The parameters are inconsistent (a usage error).
    Config(String),
    Url(UrlError),
    /// The initial connections could not be opened: the server is not there.
    Connect {
        addr: SocketAddr,
        error: io::Error,
    },
    /// A load thread failed outside any connection (poller, timer, spawn).
    Io(io::Error),
}

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BenchError::Config(what) => f.write_str(what),
            BenchError::Url(e) => e.fmt(f),
            BenchError::Connect { addr, error } => write!(f, "cannot connect to {addr}: {error}"),
            BenchError::Io(e) => write!(f, "load thread failed: {e}"),
        }
    }
}

impl std::error::Error for BenchError {}

/// Runs `config` with its fixed request on every connection.
pub fn run(config: &RunConfig) -> Result<Summary, BenchError> {
    let request = FixedRequest::new(&config.target, &config.method, &config.headers, &config.body);
    run_with(config, |_thread| Box::new(request.clone()))
}

/// Runs `config` with one [`RequestSource`] per load thread from `source_for`.
pub fn run_with<F>(config: &RunConfig, source_for: F) -> Result<Summary, BenchError>
where
    F: Fn(usize) -> Box<dyn RequestSource> + Sync,
{
    config.validate()?;
    let addr = config.target.resolve().map_err(BenchError::Url)?;
    let threads = config.effective_threads();
    let start = StartLine::new(threads);
    let results: Vec<io::Result<Recorder>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|thread| {
                let plan = ThreadPlan {
                    thread,
                    threads,
                    connections: share(config.connections, thread, threads),
                    addr,
                    pipeline: config.pipeline,
                    rate_per_s: config.rate_per_s,
                    warmup: config.warmup,
                    duration: config.duration,
                };
                let source = source_for(thread);
                let start = &start;
                std::thread::Builder::new()
                    .name(format!("load-{thread}"))
                    .spawn_scoped(scope, move || driver::run_thread(&plan, start, source))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| match h {
                Ok(h) => h.join().unwrap_or_else(|_| Err(io::Error::other("load thread panicked"))),
                Err(e) => Err(e),
            })
            .collect()
    });
    let mut merged = Recorder::new();
    let mut connect_error = None;
    for result in results {
        match result {
            Ok(recorder) => merged.merge(&recorder),
            Err(e) if connect_error.is_none() => connect_error = Some(e),
            Err(_) => {}
        }
    }
    if let Some(error) = connect_error {
        return Err(BenchError::Connect { addr, error });
    }
    Ok(Summary::new(config, threads, &merged))
}

/// Connections of thread `thread`: an even split, the remainder to the first threads.
fn share(total: usize, thread: usize, threads: usize) -> usize {
    total / threads + usize::from(thread < total % threads)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_split_evenly() {
        let split: Vec<usize> = (0..3).map(|t| share(10, t, 3)).collect();
        assert_eq!(split, vec![4, 3, 3]);
        assert_eq!((0..2).map(|t| share(64, t, 2)).sum::<usize>(), 64);
    }

    #[test]
    fn validation_names_the_problem() {
        let mut c = RunConfig::new(Target::parse("http://127.0.0.1:1/").unwrap());
        assert!(c.validate().is_ok());
        c.pipeline = 0;
        assert!(c.validate().unwrap_err().to_string().contains("pipeline"));
        c.pipeline = 1;
        c.headers = vec!["NoColon".to_string()];
        assert!(c.validate().unwrap_err().to_string().contains("header"));
        c.headers = vec!["X-Ok: 1".to_string()];
        c.rate_per_s = Some(0.0);
        assert!(c.validate().unwrap_err().to_string().contains("rate"));
    }

    #[test]
    fn refused_connection_is_an_error() {
        // Bind then drop a listener: its port is very likely closed now.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut c = RunConfig::new(Target::parse(&format!("http://127.0.0.1:{port}/")).unwrap());
        c.connections = 2;
        c.duration = Duration::from_millis(100);
        assert!(matches!(run(&c), Err(BenchError::Connect { .. })));
    }
}
