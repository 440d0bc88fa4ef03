//! The arithmetic of one token bucket, kept as a single number.
//!
//! A bucket of `burst` tokens refilled at `rate_per_s` is stored as its
//! *theoretical arrival time* (TAT, the generic cell rate algorithm of ATM
//! networks): the instant at which the bucket will be full again. Each admitted
//! request pushes the TAT one emission interval (`1 s / rate_per_s`) further; a
//! request is admitted while the TAT stays within `burst` intervals of now.
//! This is exactly a token bucket (tokens = `burst - (tat - now) / interval`),
//! but one `u64` holds the whole state, so it fits one atomic word without
//! splitting bits between a token count and a timestamp, and it needs no
//! refill step: time passing *is* the refill.
//!
//! Two facts the table relies on:
//! - `tat <= now` means the bucket is full, indistinguishable from a new one;
//! - every admission makes the TAT strictly larger, so a slot's TAT never
//!   returns to a value it had (no ABA on compare-and-swap).

/// Nanoseconds in one second.
pub(super) const NS_PER_S: u64 = 1_000_000_000;

/// A rate and a burst, turned into the two durations the bucket arithmetic needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Rate {
    /// Time for one token to come back, rounded *up* so that the limiter never
    /// admits more than `rate_per_s` in the long run.
    interval_ns: u64,
    /// How far the TAT may run ahead of now: `burst` intervals.
    burst_window_ns: u64,
}

impl Rate {
    /// Both must be at least 1 (the configuration checks it; asserted again here).
    pub(super) fn new(rate_per_s: u32, burst: u32) -> Rate {
        assert!(rate_per_s >= 1, "a rate of 0 turns the limit off and builds no buckets");
        assert!(burst >= 1, "a bucket that holds no token would refuse everything");
        let interval_ns = NS_PER_S.div_ceil(u64::from(rate_per_s));
        // At most 1e9 × (2^32 - 1) < 2^62: no overflow, and a TAT (now + this)
        // stays below the claim bit of the table for 146 years of uptime.
        let burst_window_ns = interval_ns * u64::from(burst);
        Rate { interval_ns, burst_window_ns }
    }

    /// Admits one request at `now_ns` against a bucket whose TAT is `tat_ns`:
    /// `Ok(new TAT)`, or `Err(ns until a token is back)` without changing anything.
    pub(super) fn admit(self, tat_ns: u64, now_ns: u64) -> Result<u64, u64> {
        let tat_next_ns = tat_ns.max(now_ns) + self.interval_ns;
        let ahead_ns = tat_next_ns - now_ns;
        if ahead_ns <= self.burst_window_ns { Ok(tat_next_ns) } else { Err(ahead_ns - self.burst_window_ns) }
    }

    pub(super) fn interval_ns(self) -> u64 {
        self.interval_ns
    }

    pub(super) fn burst_window_ns(self) -> u64 {
        self.burst_window_ns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Admits `n` requests at `now_ns`, returning the final TAT and how many passed.
    fn drain(rate: Rate, mut tat_ns: u64, now_ns: u64, n: u32) -> (u64, u32) {
        let mut admitted = 0;
        for _ in 0..n {
            if let Ok(next_ns) = rate.admit(tat_ns, now_ns) {
                tat_ns = next_ns;
                admitted += 1;
            }
        }
        (tat_ns, admitted)
    }

    #[test]
    fn interval_rounds_up() {
        assert_eq!(Rate::new(3, 1).interval_ns(), 333_333_334);
        assert_eq!(Rate::new(5, 10).interval_ns(), 200_000_000);
        assert_eq!(Rate::new(u32::MAX, u32::MAX).interval_ns(), 1);
    }

    #[test]
    fn full_bucket_gives_burst_then_waits_one_interval() {
        let rate = Rate::new(5, 10);
        let now_ns = 7 * NS_PER_S;
        let (tat_ns, admitted) = drain(rate, 0, now_ns, 20);
        assert_eq!(admitted, 10);
        assert_eq!(tat_ns, now_ns + 2 * NS_PER_S);
        assert_eq!(rate.admit(tat_ns, now_ns), Err(200_000_000));
        assert_eq!(rate.admit(tat_ns, now_ns + 150_000_000), Err(50_000_000));
        assert_eq!(rate.admit(tat_ns, now_ns + 200_000_000), Ok(tat_ns + 200_000_000));
    }

    #[test]
    fn time_refills_up_to_burst_only() {
        let rate = Rate::new(5, 10);
        let (tat_ns, _) = drain(rate, 0, 0, 10);
        // An hour later the bucket holds `burst`, not 18,000 tokens.
        let (_, admitted) = drain(rate, tat_ns, 3_600 * NS_PER_S, 100);
        assert_eq!(admitted, 10);
    }
}
