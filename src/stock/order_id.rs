//! Order ids unique across instances and restarts, increasing with time on
//! each instance.
//!
//! Layout, most significant bit first (all 64 bits are used, so ids exceed
//! both 2^53 and 2^63 and travel as strings):
//!
//! ```text
//! | 63 ............... 24 | 23 ........ 10 | 9 ..... 0 |
//! | ms since 2026-01-01   | instance id    | sequence  |
//! |       40 bits         |    14 bits     |  10 bits  |
//! ```
//!
//! - **Time first**, so that ids of all instances sort by creation time to
//!   within a millisecond or two, and listings can page by id.
//! - **40 bits of milliseconds** from 2026-01-01T00:00:00Z last 34.8 years,
//!   until 2060-11. Past that, [`OrderIds::new`] refuses to start.
//! - **14 bits of instance id**: the store hands out a new id at every start
//!   and never reuses one (`Store::allocate_instance_id`), so this is a budget
//!   of 16,383 starts over the life of one database. When the store returns
//!   an id that does not fit, [`OrderIds::new`] fails and the server refuses
//!   to start with that error: reusing (wrapping) an id could collide with
//!   the ids of an instance that is still running or whose clock was ahead.
//!   More instance bits would cost time range or sequence bits; 16,383
//!   starts is years of daily deploys of a few instances.
//! - **10 bits of sequence**: 1,024 ids per millisecond, over a million orders
//!   per second per instance, beyond what group commit can make durable. A
//!   burst beyond it borrows the next milliseconds (the time field runs
//!   ahead of the clock until the burst ends) rather than waiting, because
//!   the caller is an event loop, which never waits.
//!
//! Generation is one compare-and-swap on the next free (ms, seq) pair, packed
//! as `ms << 10 | seq`: the next id is `max(now << 10, next)`, so a clock that
//! steps back never reuses a pair (ids keep climbing from the last one), and a
//! full sequence carries into the millisecond by plain addition.

use crate::sync::{AtomicU64, Ordering, backoff};

/// Unix milliseconds of 2026-01-01T00:00:00Z, the epoch of the time field.
pub const ORDER_ID_EPOCH_MS: u64 = 1_767_225_600_000;
pub const TIME_BITS: u32 = 40;
pub const INSTANCE_BITS: u32 = 14;
pub const SEQUENCE_BITS: u32 = 10;
/// The largest instance id that fits.
pub const INSTANCE_ID_MAX: u32 = (1 << INSTANCE_BITS) - 1;

const SEQUENCE_MASK: u64 = (1 << SEQUENCE_BITS) - 1;
/// One past the largest packed `(ms, seq)` pair.
const PAIRS_END: u64 = 1 << (TIME_BITS + SEQUENCE_BITS);

/// Why order ids cannot be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderIdError {
    /// The store's instance id is above [`INSTANCE_ID_MAX`]: every id this
    /// layout can tell apart has been used. The server refuses to start.
    InstanceIdTooLarge { instance_id: u32 },
    /// The time field is exhausted (the clock is past 2060-11, or a burst ran
    /// the ids that far ahead): the server refuses to start, or the order is
    /// refused with 503 `unavailable`.
    TimeExhausted,
}

impl std::fmt::Display for OrderIdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::InstanceIdTooLarge { instance_id } => {
                write!(f, "instance id {instance_id} does not fit in {INSTANCE_BITS} bits of order id")
            }
            Self::TimeExhausted => write!(f, "order ids' {TIME_BITS}-bit time field is exhausted"),
        }
    }
}

impl std::error::Error for OrderIdError {}

/// The parts of an order id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderIdParts {
    /// Unix milliseconds: the creation time, or a little later after a burst.
    pub unix_ms: u64,
    pub instance_id: u32,
    pub sequence: u32,
}

impl OrderIdParts {
    pub fn of(id: u64) -> Self {
        let ms = id >> (INSTANCE_BITS + SEQUENCE_BITS);
        // Both casts keep only bits that were masked to fit a u32.
        let instance_id = ((id >> SEQUENCE_BITS) & u64::from(INSTANCE_ID_MAX)) as u32;
        let sequence = (id & SEQUENCE_MASK) as u32;
        Self { unix_ms: ORDER_ID_EPOCH_MS + ms, instance_id, sequence }
    }
}

/// This instance's order id generator, shared by every loop through `&self`.
#[derive(Debug)]
pub struct OrderIds {
    /// `instance_id << SEQUENCE_BITS`, ready to be or-ed in.
    instance: u64,
    /// The next free `(ms, seq)` pair, packed `ms << SEQUENCE_BITS | seq`.
    next: AtomicU64,
}

impl OrderIds {
    /// A generator for `instance_id` (from the store, at start-up), checked
    /// against the clock now, so that a server that could not make ids never
    /// starts.
    pub fn new(instance_id: u32, now_ms: u64) -> Result<Self, OrderIdError> {
        if instance_id > INSTANCE_ID_MAX {
            return Err(OrderIdError::InstanceIdTooLarge { instance_id });
        }
        if pair_of(now_ms) >= PAIRS_END {
            return Err(OrderIdError::TimeExhausted);
        }
        Ok(Self { instance: u64::from(instance_id) << SEQUENCE_BITS, next: AtomicU64::new(0) })
    }

    /// A new id, greater than every id this generator made before, whatever
    /// `now_ms` says (a loop's cached clock is fine). Lock-free: one
    /// compare-and-swap, retried only when another loop took an id in between.
    #[inline]
    pub fn next(&self, now_ms: u64) -> Result<u64, OrderIdError> {
        let now = pair_of(now_ms);
        let mut next = self.next.load(Ordering::Relaxed);
        loop {
            let pair = next.max(now);
            if pair >= PAIRS_END {
                return Err(OrderIdError::TimeExhausted);
            }
            // Relaxed is enough: uniqueness and order come from the single
            // modification order of `next`; no other memory is published.
            match self.next.compare_exchange_weak(next, pair + 1, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return Ok(self.compose(pair)),
                Err(current) => {
                    next = current;
                    backoff();
                }
            }
        }
    }

    fn compose(&self, pair: u64) -> u64 {
        let ms = pair >> SEQUENCE_BITS;
        (ms << (INSTANCE_BITS + SEQUENCE_BITS)) | self.instance | (pair & SEQUENCE_MASK)
    }
}

/// The first `(ms, seq)` pair of the millisecond `now_ms`. A clock before the
/// epoch counts as the epoch: ids stay unique and increasing, and only their
/// time field is wrong, as the clock is.
fn pair_of(now_ms: u64) -> u64 {
    let ms = now_ms.saturating_sub(ORDER_ID_EPOCH_MS);
    ms.min(PAIRS_END >> SEQUENCE_BITS) << SEQUENCE_BITS
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::collections::HashSet;

    use super::*;

    const NOW_MS: u64 = ORDER_ID_EPOCH_MS + 1_000_000;

    fn ids() -> OrderIds {
        OrderIds::new(5, NOW_MS).expect("instance 5 fits and the clock is in range")
    }

    fn next(ids: &OrderIds, now_ms: u64) -> OrderIdParts {
        OrderIdParts::of(ids.next(now_ms).expect("time in range"))
    }

    #[test]
    fn layout_puts_time_then_instance_then_sequence() {
        let ids = OrderIds::new(INSTANCE_ID_MAX, NOW_MS).expect("the largest instance id fits");
        let id = ids.next(NOW_MS).expect("time in range");
        assert_eq!(id, (1_000_000 << 24) | (u64::from(INSTANCE_ID_MAX) << 10));
        assert_eq!(OrderIdParts::of(id), OrderIdParts { unix_ms: NOW_MS, instance_id: INSTANCE_ID_MAX, sequence: 0 });
        assert_eq!(TIME_BITS + INSTANCE_BITS + SEQUENCE_BITS, 64);
    }

    #[test]
    fn an_instance_id_that_does_not_fit_refuses_to_start() {
        assert_eq!(
            OrderIds::new(INSTANCE_ID_MAX + 1, NOW_MS).unwrap_err(),
            OrderIdError::InstanceIdTooLarge { instance_id: INSTANCE_ID_MAX + 1 }
        );
    }

    #[test]
    fn a_clock_past_the_time_field_refuses_to_start() {
        let end_ms = ORDER_ID_EPOCH_MS + (1 << TIME_BITS);
        assert_eq!(OrderIds::new(1, end_ms).unwrap_err(), OrderIdError::TimeExhausted);
        let ids = OrderIds::new(1, end_ms - 1).expect("the last millisecond is usable");
        assert_eq!(next(&ids, end_ms - 1).unix_ms, end_ms - 1);
        // The last millisecond has 1,023 more ids, then none.
        for _ in 0..SEQUENCE_MASK {
            ids.next(end_ms - 1).expect("sequence left in the last millisecond");
        }
        assert_eq!(ids.next(end_ms - 1), Err(OrderIdError::TimeExhausted));
        assert_eq!(ids.next(u64::MAX), Err(OrderIdError::TimeExhausted));
    }

    #[test]
    fn ids_increase_within_and_across_milliseconds() {
        let ids = ids();
        let mut last = 0;
        for now_ms in [NOW_MS, NOW_MS, NOW_MS, NOW_MS + 1, NOW_MS + 7, NOW_MS + 7] {
            let id = ids.next(now_ms).expect("time in range");
            assert!(id > last, "{id} after {last}");
            last = id;
        }
        let parts = OrderIdParts::of(last);
        assert_eq!((parts.unix_ms, parts.sequence), (NOW_MS + 7, 1));
    }

    #[test]
    fn a_clock_stepping_back_never_reuses_an_id() {
        let ids = ids();
        assert_eq!(next(&ids, NOW_MS).sequence, 0);
        assert_eq!(next(&ids, NOW_MS).sequence, 1);
        // The clock steps back a whole second: ids continue from the last.
        let back = next(&ids, NOW_MS - 1_000);
        assert_eq!((back.unix_ms, back.sequence), (NOW_MS, 2));
        // And forward again: a new millisecond starts at sequence 0.
        let forward = next(&ids, NOW_MS + 1);
        assert_eq!((forward.unix_ms, forward.sequence), (NOW_MS + 1, 0));
    }

    #[test]
    fn a_full_sequence_borrows_the_next_millisecond() {
        let ids = ids();
        for sequence in 0..=SEQUENCE_MASK as u32 {
            assert_eq!(next(&ids, NOW_MS).sequence, sequence);
        }
        let borrowed = next(&ids, NOW_MS);
        assert_eq!((borrowed.unix_ms, borrowed.sequence), (NOW_MS + 1, 0));
        // When the clock reaches the borrowed millisecond, it continues there.
        let caught_up = next(&ids, NOW_MS + 1);
        assert_eq!((caught_up.unix_ms, caught_up.sequence), (NOW_MS + 1, 1));
    }

    #[test]
    fn a_clock_before_the_epoch_still_makes_increasing_ids() {
        let ids = OrderIds::new(1, 0).expect("an early clock is not fatal");
        let first = ids.next(0).expect("time in range");
        let second = ids.next(5).expect("time in range");
        assert!(second > first);
        assert_eq!(OrderIdParts::of(first).unix_ms, ORDER_ID_EPOCH_MS);
    }

    #[test]
    fn instances_never_share_an_id() {
        let a = OrderIds::new(1, NOW_MS).expect("fits");
        let b = OrderIds::new(2, NOW_MS).expect("fits");
        for _ in 0..2_000 {
            assert_ne!(a.next(NOW_MS), b.next(NOW_MS));
        }
    }

    /// 4 threads × 100,000 ids at one frozen millisecond and at a moving
    /// clock: all distinct, and each thread sees its own ids increase.
    #[test]
    fn four_threads_make_distinct_increasing_ids() {
        const PER_THREAD: usize = 100_000;
        let ids = ids();
        let all: Vec<Vec<u64>> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..4_u64)
                .map(|thread| {
                    let ids = &ids;
                    scope.spawn(move || {
                        // Half the threads on a frozen clock, half on one that
                        // moves and sometimes steps back.
                        (0..PER_THREAD as u64)
                            .map(|i| {
                                let now_ms = if thread % 2 == 0 { NOW_MS } else { NOW_MS + i / 50 - (i % 7) };
                                ids.next(now_ms).expect("time in range")
                            })
                            .collect()
                    })
                })
                .collect();
            // A worker panics only through a failed `expect` above, which fails the test.
            workers.into_iter().map(|worker| worker.join().unwrap()).collect()
        });
        for mine in &all {
            assert!(mine.windows(2).all(|pair| pair[0] < pair[1]), "a thread's ids increase");
        }
        let distinct: HashSet<u64> = all.iter().flatten().copied().collect();
        assert_eq!(distinct.len(), 4 * PER_THREAD);
        assert!(distinct.iter().all(|&id| OrderIdParts::of(id).instance_id == 5));
    }
}
