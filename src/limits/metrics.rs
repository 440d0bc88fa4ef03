//! Counters of what the limiter decided, cheap enough for the hot path.
//!
//! Every check bumps exactly one counter. One shared counter would bounce its
//! cache line between the event loops on every request, so the counters are
//! sharded by the key's group: two loops collide on a shard only as often as
//! they touch the same part of the table. Relaxed atomics: these are
//! statistics, read by `/metrics`, and order nothing.

use std::sync::atomic::{AtomicU64, Ordering};

/// Shards of counters; a power of two.
const SHARDS: usize = 16;

/// A snapshot of the counters, summed over shards. Every field only grows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Metrics {
    /// Checks that consumed a token.
    pub admitted: u64,
    /// Checks refused because the key's bucket was empty.
    pub refused_empty: u64,
    /// Checks refused because every slot the key may use held an active
    /// bucket of another key (the table is full there).
    pub refused_table_full: u64,
    /// Checks refused because peers kept winning the race for the slot.
    pub refused_contended: u64,
    /// Full buckets of idle keys whose slot was taken over by another key
    /// (first use of a never-used slot not counted).
    pub evictions: u64,
}

impl Metrics {
    /// Every check, whatever its outcome.
    pub fn checks(&self) -> u64 {
        self.admitted + self.refusals()
    }

    /// Every refusal (429), whatever its reason.
    pub fn refusals(&self) -> u64 {
        self.refused_empty + self.refused_table_full + self.refused_contended
    }
}

/// One shard, alone on its pair of cache lines (the adjacent-line prefetcher
/// pulls lines in pairs, hence 128 and not 64).
#[derive(Debug, Default)]
#[repr(align(128))]
pub(super) struct Shard {
    pub(super) admitted: AtomicU64,
    pub(super) refused_empty: AtomicU64,
    pub(super) refused_table_full: AtomicU64,
    pub(super) refused_contended: AtomicU64,
    pub(super) evictions: AtomicU64,
}

#[derive(Debug, Default)]
pub(super) struct Counters {
    shards: [Shard; SHARDS],
}

impl Counters {
    /// The shard for a key whose table hash is `hash`.
    pub(super) fn shard(&self, hash: u64) -> &Shard {
        &self.shards[(hash >> 32) as usize % SHARDS]
    }

    pub(super) fn snapshot(&self) -> Metrics {
        let mut sum = Metrics::default();
        for shard in &self.shards {
            sum.admitted += shard.admitted.load(Ordering::Relaxed);
            sum.refused_empty += shard.refused_empty.load(Ordering::Relaxed);
            sum.refused_table_full += shard.refused_table_full.load(Ordering::Relaxed);
            sum.refused_contended += shard.refused_contended.load(Ordering::Relaxed);
            sum.evictions += shard.evictions.load(Ordering::Relaxed);
        }
        sum
    }
}

/// Adds one to a counter.
pub(super) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}
