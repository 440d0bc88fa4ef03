//! The bucket table: fixed slots shared by every event loop, updated by
//! compare-and-swap, taken over when their bucket has refilled.
//!
//! A slot is two atomic words: the key, and the bucket's TAT (see `gcra`).
//! The TAT is the word that is compare-and-swapped; the key only changes
//! while the TAT holds a *claim* (top bit set), which is how a slot changes
//! hands without a lock:
//!
//! 1. a thread whose key has no slot picks a slot whose bucket is full
//!    (`tat <= now`) and swaps that TAT for its claim;
//! 2. it stores its key, then the new TAT, which admits its request.
//!
//! Readers load the TAT before the key, and skip claimed slots. A thread
//! that updates a bucket swaps the TAT it loaded; since TATs only grow and a
//! takeover passes through a claim, that swap succeeds only if the slot did
//! not change hands in between, so a key never spends another key's tokens.
//! The claim carries 63 bits of the claimant's key hash: a thread that finds
//! its own key being installed waits for it instead of installing a second
//! bucket for the same key.

use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::time::Instant;

use super::gcra::{NS_PER_S, Rate};
use super::metrics::{self, Counters, Metrics, Shard};
use crate::sync::{self, AtomicU64, Ordering};

/// Slots a key may live in: one group, two cache lines (8 × 16 bytes), loaded
/// together. Under loom, two, to keep the model small.
const SLOTS_PER_GROUP: usize = if cfg!(loom) { 2 } else { 8 };

/// The largest table `new` accepts: 2^28 slots are 4 GiB.
pub const BUCKETS_MAX_LIMIT: usize = 1 << 28;

/// Rounds of scan-and-swap before a check gives up and refuses. Each lost
/// round means a peer updated the same slot, so this is reached only by a key
/// hammered from many loops at once, which is over its limit anyway.
const ATTEMPTS_MAX: u32 = 64;

/// Set in a TAT that is a claim, not a time.
const CLAIM_BIT: u64 = 1 << 63;

/// Time is clamped below 2^62 ns (146 years of uptime) so that a TAT, at most
/// now + 2^62 (see `Rate::new`), never reaches the claim bit.
const NOW_NS_MAX: u64 = 1 << 62;

/// A refused check: how long until the key may try again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryAfter {
    secs: u32,
}

impl RetryAfter {
    /// Whole seconds, rounded up, at least 1: the value of the `Retry-After` header.
    pub fn secs(self) -> u32 {
        self.secs
    }

    fn from_wait_ns(wait_ns: u64) -> RetryAfter {
        let secs = wait_ns.div_ceil(NS_PER_S).clamp(1, u64::from(u32::MAX));
        // The clamp just above keeps it within u32.
        RetryAfter { secs: secs as u32 }
    }
}

impl fmt::Display for RetryAfter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rate limited; retry after {} s", self.secs)
    }
}

/// Token buckets for many keys (user ids, or [`ip_key`](super::ip_key)s of
/// client addresses) in a table allocated once, shared by every event loop
/// through `&self`.
pub struct TokenBuckets {
    /// Times are nanoseconds since this instant.
    epoch: Instant,
    /// `None` when the rate is 0: the limit is off.
    table: Option<Table>,
}

struct Table {
    groups: Box<[Group]>,
    /// `groups.len() - 1`; the length is a power of two.
    group_mask: usize,
    /// Mixed into keys so that which keys share a group differs per process.
    seed: u64,
    rate: Rate,
    counters: Counters,
}

#[cfg_attr(not(loom), repr(align(128)))]
struct Group {
    slots: [Slot; SLOTS_PER_GROUP],
}

struct Slot {
    /// The bucket's TAT in ns since the epoch, or a claim (`CLAIM_BIT` set).
    /// 0 in a slot never used: a full bucket.
    tat_ns: AtomicU64,
    /// Whose bucket it is; meaningful only while `tat_ns` is not a claim.
    key: AtomicU64,
}

/// What one pass over a key's group found.
enum Scan<'a> {
    /// The key's bucket, with the TAT loaded before the key.
    Found(&'a Slot, u64),
    /// No bucket for the key; the first slot with a full bucket, and its TAT.
    Reclaimable(&'a Slot, u64),
    /// A peer is installing this key (or one with the same claim), or every
    /// slot is mid-takeover: look again.
    Pending,
    /// Every slot holds an active bucket of another key; the earliest TAT.
    Full(u64),
}

impl TokenBuckets {
    /// Buckets of `burst` tokens refilled at `rate_per_s`, in a table of
    /// `buckets_max` slots rounded up to a power of two (16 bytes each),
    /// allocated here and never again. `rate_per_s == 0` turns the limit off:
    /// no table, every check admitted.
    ///
    /// Size the table so that `slots × rate_per_s` exceeds the requests per
    /// second the instance can admit: a slot stays busy only while its bucket
    /// owes tokens, so no client, however many keys it has, can then fill the
    /// table (see the crate docs).
    ///
    /// # Panics
    /// If the rate is not 0 and `burst` is 0, or `buckets_max` is 0 or above
    /// [`BUCKETS_MAX_LIMIT`]: the configuration rejects those first.
    pub fn new(rate_per_s: u32, burst: u32, buckets_max: usize) -> TokenBuckets {
        TokenBuckets::build(rate_per_s, burst, buckets_max, RandomState::new().hash_one(0_u64), Instant::now())
    }

    /// `new` with a chosen seed and epoch, for deterministic tests.
    fn build(rate_per_s: u32, burst: u32, buckets_max: usize, seed: u64, epoch: Instant) -> TokenBuckets {
        if rate_per_s == 0 {
            return TokenBuckets { epoch, table: None };
        }
        assert!((1..=BUCKETS_MAX_LIMIT).contains(&buckets_max), "buckets_max must be in 1..={BUCKETS_MAX_LIMIT}");
        let slots = buckets_max.next_power_of_two().max(SLOTS_PER_GROUP);
        let groups: Box<[Group]> = (0..slots / SLOTS_PER_GROUP).map(|_| Group::new()).collect();
        let group_mask = groups.len() - 1;
        let table =
            Table { groups, group_mask, seed, rate: Rate::new(rate_per_s, burst), counters: Counters::default() };
        TokenBuckets { epoch, table: Some(table) }
    }

    /// Takes one token from `key`'s bucket at `now`, or says how long to wait.
    ///
    /// Lock-free and allocation-free. `now` is the caller's clock (an event
    /// loop's cached `Instant`); instants before the epoch count as the epoch.
    pub fn check(&self, key: u64, now: Instant) -> Result<(), RetryAfter> {
        let Some(table) = &self.table else { return Ok(()) };
        table.check(key, self.ns_since_epoch(now))
    }

    /// False when the rate is 0 and every check is admitted.
    pub fn is_enabled(&self) -> bool {
        self.table.is_some()
    }

    /// Buckets the table holds at most (0 when disabled).
    pub fn slots(&self) -> usize {
        self.table.as_ref().map_or(0, |table| table.groups.len() * SLOTS_PER_GROUP)
    }

    /// The instant from which the table measures time.
    pub fn epoch(&self) -> Instant {
        self.epoch
    }

    /// The counters so far (all 0 when disabled).
    pub fn metrics(&self) -> Metrics {
        self.table.as_ref().map_or_else(Metrics::default, |table| table.counters.snapshot())
    }

    fn ns_since_epoch(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.epoch);
        let elapsed_ns = elapsed.as_secs().saturating_mul(NS_PER_S).saturating_add(u64::from(elapsed.subsec_nanos()));
        elapsed_ns.min(NOW_NS_MAX)
    }
}

impl fmt::Debug for TokenBuckets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("TokenBuckets");
        if let Some(table) = &self.table {
            debug.field("interval_ns", &table.rate.interval_ns());
            debug.field("burst_window_ns", &table.rate.burst_window_ns());
        }
        debug.field("slots", &self.slots()).field("metrics", &self.metrics()).finish()
    }
}

impl Table {
    fn check(&self, key: u64, now_ns: u64) -> Result<(), RetryAfter> {
        let hash = mix(key ^ self.seed);
        let group = &self.groups[hash as usize & self.group_mask];
        let shard = self.counters.shard(hash);
        let outcome = self.check_in(group, key, CLAIM_BIT | hash >> 1, now_ns, shard);
        if outcome.is_ok() {
            metrics::bump(&shard.admitted);
        }
        outcome
    }

    /// Scan-and-swap rounds until one decides; refusals are counted here, by reason.
    fn check_in(&self, group: &Group, key: u64, claim: u64, now_ns: u64, shard: &Shard) -> Result<(), RetryAfter> {
        for _ in 0..ATTEMPTS_MAX {
            match group.scan(key, claim, now_ns) {
                Scan::Found(slot, tat_ns) => match self.rate.admit(tat_ns, now_ns) {
                    Ok(tat_next_ns) => {
                        // Fails if a peer spent a token or took the slot over since the load.
                        let swap =
                            slot.tat_ns.compare_exchange(tat_ns, tat_next_ns, Ordering::AcqRel, Ordering::Acquire);
                        if swap.is_ok() {
                            return Ok(());
                        }
                    }
                    Err(wait_ns) => {
                        metrics::bump(&shard.refused_empty);
                        return Err(RetryAfter::from_wait_ns(wait_ns));
                    }
                },
                Scan::Reclaimable(slot, tat_ns) => {
                    if self.take_over(slot, tat_ns, key, claim, now_ns) {
                        if tat_ns != 0 {
                            metrics::bump(&shard.evictions);
                        }
                        return Ok(());
                    }
                }
                Scan::Pending => {}
                Scan::Full(tat_soonest_ns) => {
                    // Refuse rather than share or evict an active bucket: see the crate docs.
                    metrics::bump(&shard.refused_table_full);
                    return Err(RetryAfter::from_wait_ns(tat_soonest_ns - now_ns));
                }
            }
            sync::backoff();
        }
        metrics::bump(&shard.refused_contended);
        Err(RetryAfter::from_wait_ns(0))
    }

    /// Installs `key` in `slot`, whose bucket was full with TAT `tat_ns`, and
    /// spends its first token. False if a peer changed the slot first.
    fn take_over(&self, slot: &Slot, tat_ns: u64, key: u64, claim: u64, now_ns: u64) -> bool {
        debug_assert!(tat_ns <= now_ns && claim & CLAIM_BIT != 0);
        if slot.tat_ns.compare_exchange(tat_ns, claim, Ordering::AcqRel, Ordering::Acquire).is_err() {
            return false;
        }
        // Relaxed: readers look at the key only after loading a TAT that is
        // not a claim, and the Release store of the TAT below publishes it.
        slot.key.store(key, Ordering::Relaxed);
        // A full bucket always admits (burst >= 1): the fresh bucket starts
        // exactly where the old one was, full, so the takeover loses nothing.
        let tat_next_ns = now_ns + self.rate.interval_ns();
        debug_assert_eq!(self.rate.admit(tat_ns, now_ns), Ok(tat_next_ns));
        slot.tat_ns.store(tat_next_ns, Ordering::Release);
        true
    }
}

impl Group {
    fn new() -> Group {
        Group { slots: std::array::from_fn(|_| Slot { tat_ns: AtomicU64::new(0), key: AtomicU64::new(0) }) }
    }

    fn scan(&self, key: u64, claim: u64, now_ns: u64) -> Scan<'_> {
        let mut reclaimable = None;
        let mut pending = false;
        let mut tat_soonest_ns = u64::MAX;
        for slot in &self.slots {
            // The TAT first: if the swap on it succeeds later, the key loaded
            // after it is the key that owned that TAT.
            let tat_ns = slot.tat_ns.load(Ordering::Acquire);
            if tat_ns & CLAIM_BIT != 0 {
                pending |= tat_ns == claim;
                continue;
            }
            if slot.key.load(Ordering::Acquire) == key {
                return Scan::Found(slot, tat_ns);
            }
            if tat_ns <= now_ns {
                reclaimable = reclaimable.or(Some((slot, tat_ns)));
            } else {
                tat_soonest_ns = tat_soonest_ns.min(tat_ns);
            }
        }
        match reclaimable {
            _ if pending => Scan::Pending,
            Some((slot, tat_ns)) => Scan::Reclaimable(slot, tat_ns),
            None if tat_soonest_ns == u64::MAX => Scan::Pending,
            None => Scan::Full(tat_soonest_ns),
        }
    }
}

/// A bijective mix (MurmurHash3's finalizer) so that sequential user ids
/// spread over the groups. Not a keyed hash: user ids are assigned by the
/// server, and address keys come already keyed from `ip_key`.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ x >> 33
}

#[cfg(all(test, not(loom)))]
mod tests;

#[cfg(all(test, loom))]
mod loom_tests;
