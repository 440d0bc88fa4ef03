//! Tests of the table with an injected clock: no test sleeps.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64 as StdAtomicU64, Ordering as StdOrdering};
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;

const SEED: u64 = 0x5eed_0f7e_57ed;

fn buckets(rate_per_s: u32, burst: u32, buckets_max: usize) -> TokenBuckets {
    TokenBuckets::build(rate_per_s, burst, buckets_max, SEED, Instant::now())
}

/// The instant `ms` milliseconds after the table's epoch.
fn at_ms(buckets: &TokenBuckets, ms: u64) -> Instant {
    buckets.epoch() + Duration::from_millis(ms)
}

/// How many of `n` checks of `key` at `now` pass.
fn admitted(buckets: &TokenBuckets, key: u64, now: Instant, n: u32) -> u32 {
    (0..n).map(|_| buckets.check(key, now)).filter(Result::is_ok).count() as u32
}

/// The group index of `key`, to build collisions on purpose.
fn group_of(buckets: &TokenBuckets, key: u64) -> usize {
    let table = buckets.table.as_ref().unwrap();
    mix(key ^ table.seed) as usize & table.group_mask
}

#[test]
fn burst_then_refusal_then_refill() {
    let limits = buckets(5, 10, 64);
    let t0 = at_ms(&limits, 1_000);
    assert_eq!(admitted(&limits, 7, t0, 10), 10);
    assert_eq!(limits.check(7, t0), Err(RetryAfter { secs: 1 }));
    // One token every 200 ms.
    assert!(limits.check(7, at_ms(&limits, 1_199)).is_err());
    assert_eq!(admitted(&limits, 7, at_ms(&limits, 1_200), 5), 1);
    // Two seconds refill the whole burst, and no more.
    assert_eq!(admitted(&limits, 7, at_ms(&limits, 3_200), 20), 10);
    let metrics = limits.metrics();
    assert_eq!(metrics.admitted, 21);
    assert_eq!(metrics.refused_empty, 16);
    assert_eq!(metrics.checks(), 37);
}

#[test]
fn retry_after_is_whole_seconds_at_least_one() {
    assert_eq!(RetryAfter::from_wait_ns(0).secs(), 1);
    assert_eq!(RetryAfter::from_wait_ns(1).secs(), 1);
    assert_eq!(RetryAfter::from_wait_ns(NS_PER_S).secs(), 1);
    assert_eq!(RetryAfter::from_wait_ns(NS_PER_S + 1).secs(), 2);
    assert_eq!(RetryAfter::from_wait_ns(u64::MAX).secs(), u32::MAX);
    // With a whole number of tokens per second, a token is never more than 1 s away.
    let limits = buckets(1, 3, 8);
    let t0 = at_ms(&limits, 0);
    assert_eq!(admitted(&limits, 1, t0, 3), 3);
    assert_eq!(limits.check(1, t0).unwrap_err().secs(), 1);
}

#[test]
fn keys_do_not_interfere() {
    let limits = buckets(5, 10, 64);
    let t0 = at_ms(&limits, 0);
    for key in 0..32 {
        assert_eq!(admitted(&limits, key, t0, 11), 10, "key {key}");
    }
}

#[test]
fn clock_before_epoch_counts_as_epoch() {
    let limits = buckets(5, 2, 8);
    let before = limits.epoch().checked_sub(Duration::from_secs(1)).unwrap_or(limits.epoch());
    assert_eq!(admitted(&limits, 1, before, 3), 2);
    assert!(limits.check(1, limits.epoch()).is_err());
}

#[test]
fn disabled_limit_admits_everything_and_holds_no_table() {
    let limits = buckets(0, 0, 0);
    assert!(!limits.is_enabled());
    assert_eq!(limits.slots(), 0);
    assert_eq!(admitted(&limits, 1, Instant::now(), 1_000), 1_000);
    assert_eq!(limits.metrics(), Metrics::default());
}

#[test]
fn table_is_rounded_to_whole_groups_of_a_power_of_two() {
    assert_eq!(buckets(1, 1, 1).slots(), SLOTS_PER_GROUP);
    assert_eq!(buckets(1, 1, 1_000).slots(), 1_024);
    assert_eq!(size_of::<Slot>(), 16);
    assert_eq!(size_of::<Group>(), 128);
}

#[test]
fn idle_buckets_are_evicted_and_memory_stays_fixed() {
    // rate 1000/s: a bucket spent once is full again 1 ms later.
    let limits = buckets(1_000, 1, 64);
    let slots = limits.slots();
    for key in 0..640_u64 {
        // Four new keys per millisecond: never more than four active buckets.
        let now = at_ms(&limits, key / 4);
        assert!(limits.check(key, now).is_ok(), "key {key}");
    }
    let metrics = limits.metrics();
    assert_eq!(limits.slots(), slots);
    assert_eq!(metrics.admitted, 640);
    assert_eq!(metrics.refusals(), 0);
    assert!(metrics.evictions >= 640 - slots as u64, "{metrics:?}");
}

#[test]
fn eviction_forgives_no_debt() {
    let limits = buckets(1, 2, 8);
    let t0 = at_ms(&limits, 0);
    assert_eq!(admitted(&limits, 1, t0, 3), 2);
    // A crowd of other keys passes while key 1 still owes tokens...
    for (i, key) in (100..200_u64).enumerate() {
        let _ = limits.check(key, at_ms(&limits, i as u64 * 10));
    }
    // ...and key 1 has still only refilled at 1 token per second.
    let t1 = at_ms(&limits, 999);
    assert!(limits.check(1, t1).is_err());
    assert_eq!(admitted(&limits, 1, at_ms(&limits, 1_000), 2), 1);
}

#[test]
fn full_group_refuses_newcomers_and_spares_active_buckets() {
    let limits = buckets(1, 3, 8);
    assert_eq!(limits.slots(), SLOTS_PER_GROUP, "one group");
    let t0 = at_ms(&limits, 0);
    // Fill every slot with a drained bucket: each is full again 3 s later.
    for key in 0..SLOTS_PER_GROUP as u64 {
        assert_eq!(admitted(&limits, key, t0, 3), 3);
    }
    let newcomer = 1_000;
    assert_eq!(limits.check(newcomer, at_ms(&limits, 500)), Err(RetryAfter { secs: 3 }));
    assert_eq!(limits.metrics().refused_table_full, 1);
    // The existing buckets kept their debts: one token back per second each.
    assert!(limits.check(0, at_ms(&limits, 500)).is_err());
    assert!(limits.check(0, at_ms(&limits, 1_000)).is_ok());
    // Once a bucket is full again, the newcomer takes its slot over.
    assert!(limits.check(newcomer, at_ms(&limits, 3_000)).is_ok());
    assert_eq!(limits.metrics().evictions, 1);
}

#[test]
fn colliding_keys_keep_separate_buckets() {
    let limits = buckets(1, 2, 1_024);
    let group = group_of(&limits, 0);
    let same_group: Vec<u64> = (1..).filter(|&key| group_of(&limits, key) == group).take(4).collect();
    let t0 = at_ms(&limits, 0);
    for &key in &same_group {
        assert_eq!(admitted(&limits, key, t0, 3), 2, "key {key}");
    }
}

#[test]
fn threads_on_one_key_with_a_frozen_clock_get_exactly_burst() {
    let limits = buckets(200, 400, 4_096);
    let now = at_ms(&limits, 5);
    let total: u32 = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..4).map(|_| scope.spawn(|| admitted(&limits, 42, now, 1_000))).collect();
        workers.into_iter().map(|worker| worker.join().unwrap()).sum()
    });
    assert_eq!(total, 400);
    let metrics = limits.metrics();
    assert_eq!((metrics.admitted, metrics.refusals()), (400, 3_600), "{metrics:?}");
}

#[test]
fn threads_on_one_key_with_a_moving_clock_stay_within_the_rate() {
    let (rate_per_s, burst) = (1_000_u32, 50_u32);
    let limits = buckets(rate_per_s, burst, 4_096);
    // The key has a bucket before the race (see the crate docs on first installs).
    assert!(limits.check(9, limits.epoch()).is_ok());
    let clock_ns = StdAtomicU64::new(0);
    let total: u64 = std::thread::scope(|scope| {
        let worker = || {
            let mut admitted = 0;
            for _ in 0..20_000 {
                let now_ns = clock_ns.fetch_add(7_000, StdOrdering::Relaxed);
                admitted += u64::from(limits.check(9, limits.epoch() + Duration::from_nanos(now_ns)).is_ok());
            }
            admitted
        };
        let workers: Vec<_> = (0..4).map(|_| scope.spawn(worker)).collect();
        workers.into_iter().map(|worker| worker.join().unwrap()).sum()
    });
    let elapsed_ns = clock_ns.load(StdOrdering::Relaxed);
    let bound = u64::from(burst) + elapsed_ns * u64::from(rate_per_s) / NS_PER_S;
    // + 1: the check that installed the bucket.
    let total = total + 1;
    assert!(total <= bound, "{total} admitted, bound {bound}");
    // 80,000 checks 7 µs apart span 560 ms: the bucket refilled about 560 times.
    assert!(total >= bound - 10, "{total} admitted, bound {bound}");
}

#[test]
fn threads_on_many_keys_each_get_their_burst() {
    let limits = buckets(10, 5, 64);
    let now = at_ms(&limits, 0);
    let total: u32 = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..4_u64)
            .map(|thread| {
                let limits = &limits;
                scope.spawn(move || (0..8).map(|key| admitted(limits, thread * 8 + key, now, 10)).sum::<u32>())
            })
            .collect();
        workers.into_iter().map(|worker| worker.join().unwrap()).sum()
    });
    let metrics = limits.metrics();
    assert_eq!(u64::from(total), metrics.admitted);
    // 32 keys in 64 slots: all fit unless 9 land in one group of 8.
    if metrics.refused_table_full == 0 {
        assert_eq!(total, 32 * 5);
    }
}

/// A request in a generated run: which key, and how long after the previous one.
fn runs() -> impl Strategy<Value = (u32, u32, usize, Vec<(u64, u64)>)> {
    let rate_per_s = prop_oneof![1_u32..=10, 1_u32..=1_000];
    let burst = 1_u32..=8;
    let buckets_max = prop_oneof![Just(8_usize), Just(16), Just(64)];
    let requests = prop::collection::vec((0_u64..24, prop_oneof![Just(0_u64), 0_u64..2 * NS_PER_S]), 1..400);
    (rate_per_s, burst, buckets_max, requests)
}

/// Runs the requests through a table; returns (key, time, admitted) for each.
fn replay(limits: &TokenBuckets, requests: &[(u64, u64)]) -> Vec<(u64, u64, bool)> {
    let mut now_ns = 0;
    let mut outcomes = Vec::with_capacity(requests.len());
    for &(key, advance_ns) in requests {
        now_ns += advance_ns;
        let admitted = limits.check(key, limits.epoch() + Duration::from_nanos(now_ns)).is_ok();
        outcomes.push((key, now_ns, admitted));
    }
    outcomes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// In every window, a key is admitted at most `burst + rate × window` times,
    /// whatever the other keys do to the table.
    #[test]
    fn no_key_exceeds_burst_plus_rate_in_any_window((rate_per_s, burst, buckets_max, requests) in runs()) {
        let limits = buckets(rate_per_s, burst, buckets_max);
        let outcomes = replay(&limits, &requests);
        let mut times_by_key: HashMap<u64, Vec<u64>> = HashMap::new();
        for (key, now_ns, admitted) in outcomes {
            if admitted {
                times_by_key.entry(key).or_default().push(now_ns);
            }
        }
        for (key, times) in times_by_key {
            for (i, &start_ns) in times.iter().enumerate() {
                for (j, &end_ns) in times.iter().enumerate().skip(i) {
                    let count = (j - i + 1) as u128;
                    let allowed = u128::from(burst) * u128::from(NS_PER_S)
                        + u128::from(end_ns - start_ns) * u128::from(rate_per_s);
                    prop_assert!(count * u128::from(NS_PER_S) <= allowed, "key {} admitted {} in {} ns", key, count, end_ns - start_ns);
                }
            }
        }
    }

    /// Unless the table was full, the bounded table decides exactly like one
    /// bucket per key kept forever: evictions lose nothing.
    #[test]
    fn bounded_table_matches_unbounded_buckets((rate_per_s, burst, buckets_max, requests) in runs()) {
        let limits = buckets(rate_per_s, burst, buckets_max);
        let outcomes = replay(&limits, &requests);
        if limits.metrics().refused_table_full > 0 {
            // A refusal for a full table is stricter than unbounded buckets: the first property covers it.
            return Ok(());
        }
        let rate = Rate::new(rate_per_s, burst);
        let mut tats_ns: HashMap<u64, u64> = HashMap::new();
        for (key, now_ns, admitted) in outcomes {
            let tat_ns = tats_ns.entry(key).or_insert(0);
            let expected = rate.admit(*tat_ns, now_ns);
            if let Ok(next_ns) = expected {
                *tat_ns = next_ns;
            }
            prop_assert_eq!(admitted, expected.is_ok(), "key {} at {} ns", key, now_ns);
        }
    }
}
