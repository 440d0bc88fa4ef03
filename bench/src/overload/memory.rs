//! The server's resident memory during an overload run: sampled from
//! /proc/PID/status (`VmRSS`) on a thread of its own, then judged.
//!
//! "Bounded" has two parts, because either alone misses a failure: the peak
//! stays under a limit (a queue without bound would blow through it given
//! time), and the overload phase's second half does not climb above its
//! first half (a slow leak that would cross any limit given a longer run).
//! The growth check compares maxima, not single samples, so the allocator's
//! ups and downs do not read as growth.

use crate::sys;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// How often the RSS is read: cheap (one small file), fine enough to see a
/// queue build up within a phase of a few seconds.
pub const SAMPLE_INTERVAL: Duration = Duration::from_millis(100);
/// The most samples kept (over 8 hours at the interval): memory stays bounded.
const SAMPLES_MAX: usize = 300_000;
/// Growth allowed from the overload's first half to its second: this share
/// of the first half's maximum, plus [`GROWTH_SLACK_MIB`] (an arena or a
/// buffer pool settling is not a leak).
const GROWTH_SLACK_SHARE: f64 = 0.10;
const GROWTH_SLACK_MIB: f64 = 8.0;

/// RSS samples as `(seconds since the sampler started, KiB)`.
#[derive(Debug, Default)]
pub struct Samples {
    pub points: Vec<(f64, u64)>,
    /// VmHWM at the end: the peak RSS since the server started (setup included).
    pub hwm_kib: Option<u64>,
}

/// Samples `pid`'s RSS every [`SAMPLE_INTERVAL`] until `done`; a process
/// that cannot be read (it exited) ends the sampling.
pub fn sample(pid: u32, t0: Instant, done: &AtomicBool) -> Samples {
    let mut samples = Samples::default();
    while !done.load(Relaxed) && samples.points.len() < SAMPLES_MAX {
        let Ok(kib) = sys::rss_kib(pid) else { break };
        samples.points.push((t0.elapsed().as_secs_f64(), kib));
        std::thread::sleep(SAMPLE_INTERVAL);
    }
    samples.hwm_kib = sys::status_kib(pid, "VmHWM:").ok();
    samples
}

/// The verdict on the server's memory, in MiB.
#[derive(Debug, Clone, Serialize)]
pub struct Memory {
    pub pid: u32,
    pub limit_mib: f64,
    /// Before the capacity phase (the sale set up), at its end, and at the end.
    pub before_mib: f64,
    pub after_capacity_mib: f64,
    pub end_mib: f64,
    /// The largest sample over both phases.
    pub peak_mib: f64,
    /// VmHWM: the peak since start-up, setup included (password hashing).
    pub hwm_mib: Option<f64>,
    /// The overload phase's first and second halves: their largest samples.
    pub overload_first_half_max_mib: f64,
    pub overload_second_half_max_mib: f64,
    /// The peak is over the limit.
    pub over_limit: bool,
    /// The second half climbed above the first half by more than the slack.
    pub growing: bool,
    /// `[seconds, MiB]`, every sample.
    pub samples: Vec<[f64; 2]>,
}

impl Memory {
    /// Judges `samples`; the overload phase ran from `overload_from_s` to
    /// `overload_to_s` (seconds on the sampler's clock).
    pub fn judge(pid: u32, samples: &Samples, limit_mib: f64, overload_from_s: f64, overload_to_s: f64) -> Memory {
        let mib = |kib: u64| kib as f64 / 1024.0;
        let points = &samples.points;
        let max_in = |from: f64, to: f64| {
            points.iter().filter(|(t, _)| *t >= from && *t < to).map(|&(_, k)| mib(k)).fold(0.0, f64::max)
        };
        let last_before = |t: f64| points.iter().take_while(|(s, _)| *s < t).last().map_or(0.0, |&(_, k)| mib(k));
        let middle = (overload_from_s + overload_to_s) / 2.0;
        let first_half = max_in(overload_from_s, middle);
        let second_half = max_in(middle, f64::INFINITY);
        let peak = points.iter().map(|&(_, k)| mib(k)).fold(0.0, f64::max);
        Memory {
            pid,
            limit_mib,
            before_mib: points.first().map_or(0.0, |&(_, k)| mib(k)),
            after_capacity_mib: last_before(overload_from_s),
            end_mib: points.last().map_or(0.0, |&(_, k)| mib(k)),
            peak_mib: peak,
            hwm_mib: samples.hwm_kib.map(mib),
            overload_first_half_max_mib: first_half,
            overload_second_half_max_mib: second_half,
            over_limit: peak > limit_mib,
            growing: second_half > first_half * (1.0 + GROWTH_SLACK_SHARE) + GROWTH_SLACK_MIB,
            samples: points.iter().map(|&(t, k)| [(t * 10.0).round() / 10.0, (mib(k) * 10.0).round() / 10.0]).collect(),
        }
    }

    /// Bounded: under the limit and not growing.
    pub fn bounded(&self) -> bool {
        !self.over_limit && !self.growing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(mib: &[u64]) -> Samples {
        Samples { points: mib.iter().enumerate().map(|(i, m)| (i as f64, m * 1024)).collect(), hwm_kib: None }
    }

    #[test]
    fn a_plateau_is_bounded() {
        // Setup 20, capacity phase up to 60, overload (seconds 4..12) at 80-ish.
        let s = samples(&[20, 40, 60, 60, 78, 80, 79, 81, 80, 82, 80, 81]);
        let m = Memory::judge(1, &s, 100.0, 4.0, 12.0);
        assert!(m.bounded(), "{m:?}");
        assert_eq!((m.before_mib, m.after_capacity_mib, m.peak_mib), (20.0, 60.0, 82.0));
        assert_eq!((m.overload_first_half_max_mib, m.overload_second_half_max_mib), (81.0, 82.0));
    }

    #[test]
    fn a_climb_or_a_peak_over_the_limit_is_not() {
        let climbing = samples(&[20, 40, 60, 60, 70, 80, 90, 100, 110, 120, 130, 140]);
        let m = Memory::judge(1, &climbing, 1000.0, 4.0, 12.0);
        assert!(m.growing && !m.over_limit && !m.bounded(), "{m:?}");
        let flat_but_big = samples(&[20, 200, 200, 200, 200, 200]);
        let m = Memory::judge(1, &flat_but_big, 100.0, 2.0, 6.0);
        assert!(m.over_limit && !m.growing && !m.bounded(), "{m:?}");
    }
}
