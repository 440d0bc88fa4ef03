//! Per-thread measurements: latency histograms, status counts, errors.
//!
//! Each load thread owns one [`Recorder`] (no sharing on the hot path); the
//! run merges them when the threads finish. Memory is fixed at creation.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::time::Duration;

/// Latencies are recorded in nanoseconds, from 1 ns to this bound, with 3
/// significant digits (about 0.1% error; a few hundred KiB per histogram).
const LATENCY_NS_MAX: u64 = 3_600_000_000_000;
const SIGNIFICANT_DIGITS: u8 = 3;
/// Status codes are counted in a flat array; anything outside is counted as 0.
const STATUS_MAX: usize = 600;

/// Failures by kind. A non-2xx status is not an error of the transport and
/// is counted apart.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Errors {
    /// A connection attempt failed (refused, reset, timed out).
    pub connect: u64,
    /// The server closed a connection that had requests outstanding.
    pub closed: u64,
    /// A read failed (e.g. connection reset).
    pub read: u64,
    /// A write failed (e.g. broken pipe).
    pub write: u64,
    /// The server's bytes did not frame as HTTP/1.1 responses.
    pub parse: u64,
}

impl Errors {
    pub fn total(&self) -> u64 {
        self.connect + self.closed + self.read + self.write + self.parse
    }

    fn add(&mut self, o: &Errors) {
        self.connect += o.connect;
        self.closed += o.closed;
        self.read += o.read;
        self.write += o.write;
        self.parse += o.parse;
    }
}

/// One thread's figures for the measured window.
#[derive(Debug)]
pub struct Recorder {
    /// Completion minus intended send time (equal to `service` in closed loop).
    pub latency: Histogram<u64>,
    /// Completion minus actual send time.
    pub service: Histogram<u64>,
    status: Box<[u64; STATUS_MAX]>,
    pub errors: Errors,
    /// Connections re-opened after the server closed them or a connect failed.
    pub reconnects: u64,
    /// Open loop: requests that were due but still waiting for a free
    /// connection when the run ended.
    pub unsent: u64,
    pub bytes_read: u64,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

impl Recorder {
    pub fn new() -> Recorder {
        let histogram = || {
            // The bounds are constants that hdrhistogram accepts (low ≥ 1, high ≥ 2·low).
            Histogram::new_with_bounds(1, LATENCY_NS_MAX, SIGNIFICANT_DIGITS).expect("valid constant bounds")
        };
        Recorder {
            latency: histogram(),
            service: histogram(),
            status: Box::new([0; STATUS_MAX]),
            errors: Errors::default(),
            reconnects: 0,
            unsent: 0,
            bytes_read: 0,
        }
    }

    /// One response completed inside the measured window.
    pub fn record(&mut self, status: u16, latency: Duration, service: Duration) {
        self.latency.saturating_record(nanos(latency));
        self.service.saturating_record(nanos(service));
        let slot = if (status as usize) < STATUS_MAX { status as usize } else { 0 };
        self.status[slot] += 1;
    }

    /// Responses recorded in the window.
    pub fn requests(&self) -> u64 {
        self.latency.len()
    }

    /// `(status, count)` for every status seen, ascending.
    pub fn statuses(&self) -> impl Iterator<Item = (u16, u64)> + '_ {
        self.status.iter().enumerate().filter(|(_, n)| **n > 0).map(|(s, n)| (s as u16, *n))
    }

    /// Responses with a status outside 200..=299.
    pub fn non_2xx(&self) -> u64 {
        self.statuses().filter(|(s, _)| !(200..300).contains(s)).map(|(_, n)| n).sum()
    }

    pub fn merge(&mut self, other: &Recorder) {
        // Same bounds on both sides, so adding cannot fail.
        self.latency.add(&other.latency).expect("histograms share bounds");
        self.service.add(&other.service).expect("histograms share bounds");
        for (mine, theirs) in self.status.iter_mut().zip(other.status.iter()) {
            *mine += theirs;
        }
        self.errors.add(&other.errors);
        self.reconnects += other.reconnects;
        self.unsent += other.unsent;
        self.bytes_read += other.bytes_read;
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_counts_and_histograms() {
        let mut a = Recorder::new();
        let mut b = Recorder::new();
        a.record(200, Duration::from_micros(100), Duration::from_micros(50));
        b.record(200, Duration::from_micros(300), Duration::from_micros(60));
        b.record(503, Duration::from_micros(200), Duration::from_micros(70));
        b.record(999, Duration::ZERO, Duration::ZERO);
        b.errors.closed = 2;
        a.merge(&b);
        assert_eq!(a.requests(), 4);
        assert_eq!(a.statuses().collect::<Vec<_>>(), vec![(0, 1), (200, 2), (503, 1)]);
        assert_eq!(a.non_2xx(), 2);
        assert_eq!(a.errors.total(), 2);
        assert!(a.latency.max() >= 299_000 && a.service.max() < 71_000);
    }
}
