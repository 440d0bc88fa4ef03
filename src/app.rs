//! The state shared by every loop's handler: readiness, draining, metrics,
//! and (set once the reactor runs) the reactor's counters.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use seckill_reactor::LoopStats;

use crate::metrics::Metrics;

#[derive(Debug)]
pub struct App {
    draining: AtomicBool,
    metrics: Metrics,
    loop_stats: OnceLock<Arc<[LoopStats]>>,
}

impl App {
    pub fn new(loops: usize) -> Self {
        App { draining: AtomicBool::new(false), metrics: Metrics::new(loops), loop_stats: OnceLock::new() }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Called once, after the reactor has started.
    pub fn attach_loop_stats(&self, stats: Arc<[LoopStats]>) {
        // A second call would be a bug in start-up; the first value stays.
        let _ = self.loop_stats.set(stats);
    }

    pub fn loop_stats(&self) -> &[LoopStats] {
        self.loop_stats.get().map_or(&[], |s| s)
    }

    /// Shutdown has begun: /readyz answers 503 from now on.
    pub fn begin_drain(&self) {
        self.draining.store(true, Ordering::Release);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Whether this instance can serve the sale: its backends are reachable
    /// and its stock is loaded. With nothing yet to load, always.
    pub fn is_ready(&self) -> bool {
        true
    }
}
