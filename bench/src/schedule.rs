//! The open-loop send schedule: when each request *should* leave.
//!
//! Requests are numbered globally `g = 0, 1, 2, …` and request `g` is due
//! `g / rate` seconds after the start. Thread `i` of `T` owns the requests with
//! `g % T == i`, so the threads interleave into one evenly spaced stream. A
//! request's latency is measured from its due time, not from when a free
//! connection finally carried it: that is the coordinated-omission correction
//! (a stalled server cannot hide the queue it caused).

use std::time::{Duration, Instant};

/// One thread's share of a fixed-rate schedule.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    start: Instant,
    rate_per_s: f64,
    thread: u64,
    threads: u64,
}

impl Schedule {
    /// `rate_per_s` is the total over all `threads`; it must be positive and finite.
    pub fn new(start: Instant, rate_per_s: f64, thread: usize, threads: usize) -> Schedule {
        assert!(rate_per_s.is_finite() && rate_per_s > 0.0, "rate must be positive");
        assert!(thread < threads, "thread index within the thread count");
        Schedule { start, rate_per_s, thread: thread as u64, threads: threads as u64 }
    }

    /// Offset from the start at which this thread's `k`-th request is due.
    pub fn offset(&self, k: u64) -> Duration {
        let global = k * self.threads + self.thread;
        Duration::from_secs_f64(global as f64 / self.rate_per_s)
    }

    /// When this thread's `k`-th request is due.
    pub fn due_at(&self, k: u64) -> Instant {
        self.start + self.offset(k)
    }

    /// How many of this thread's requests are due by `now` (due time ≤ now).
    pub fn due_count(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.start).as_secs_f64();
        let global_due = (elapsed * self.rate_per_s).floor();
        let thread = self.thread as f64;
        if global_due < thread {
            return 0;
        }
        let mut k = ((global_due - thread) / self.threads as f64).floor() as u64 + 1;
        // Float rounding can be off by one at an exact boundary: settle it on
        // the same arithmetic as `due_at`.
        while k > 0 && self.due_at(k - 1) > now {
            k -= 1;
        }
        while self.due_at(k) <= now {
            k += 1;
        }
        k
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_thread_is_evenly_spaced() {
        let t0 = Instant::now();
        let s = Schedule::new(t0, 1000.0, 0, 1);
        assert_eq!(s.offset(0), Duration::ZERO);
        assert_eq!(s.offset(1), Duration::from_millis(1));
        assert_eq!(s.offset(1500), Duration::from_millis(1500));
        assert_eq!(s.due_count(t0), 1);
        assert_eq!(s.due_count(t0 + Duration::from_micros(999)), 1);
        assert_eq!(s.due_count(t0 + Duration::from_millis(1)), 2);
        assert_eq!(s.due_count(t0 + Duration::from_secs(10)), 10_001);
    }

    #[test]
    fn threads_interleave_into_one_stream() {
        let t0 = Instant::now();
        let threads: Vec<Schedule> = (0..3).map(|i| Schedule::new(t0, 300.0, i, 3)).collect();
        let mut all: Vec<Duration> = threads.iter().flat_map(|s| (0..100).map(move |k| s.offset(k))).collect();
        all.sort();
        for (g, offset) in all.iter().enumerate() {
            let want = Duration::from_secs_f64(g as f64 / 300.0);
            assert!(offset.abs_diff(want) < Duration::from_nanos(2), "request {g}");
        }
        // Thread 2's first request is the third in the stream.
        let just_before = t0 + Duration::from_secs_f64(2.0 / 300.0) - Duration::from_nanos(10);
        assert_eq!(threads[2].due_count(just_before), 0);
        assert_eq!(threads[2].due_count(t0 + Duration::from_secs_f64(2.0 / 300.0)), 1);
        // After one second each of the 3 threads has had 100 requests due (+1 at the boundary).
        let one_s = t0 + Duration::from_secs(1);
        let total: u64 = threads.iter().map(|s| s.due_count(one_s)).sum();
        assert_eq!(total, 301);
    }

    #[test]
    fn due_count_agrees_with_due_at() {
        let t0 = Instant::now();
        let s = Schedule::new(t0, 7919.0, 1, 2);
        for k in 0..5000 {
            let at = s.due_at(k);
            assert_eq!(s.due_count(at), k + 1, "at its own due time request {k} is due");
            assert_eq!(s.due_count(at - Duration::from_nanos(1)), k, "just before, it is not");
        }
    }

    #[test]
    fn before_the_start_nothing_is_due() {
        let t0 = Instant::now() + Duration::from_secs(1);
        assert_eq!(Schedule::new(t0, 1e6, 0, 1).due_count(Instant::now()), 0);
    }
}
