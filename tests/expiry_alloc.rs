//! Once warm, the wheel and its driver allocate nothing: a counting allocator proves it.
//!
//! An integration test because a binary has one global allocator.

use seckill::expiry::{Entry, Expirer, ExpiryDriver, ExpiryWheel, Progress, WheelConfig};

mod counting_alloc;
use counting_alloc::allocations_in;

const T0: u64 = 1_700_000_000_000;
const PENDING_MAX: u32 = 10_000;

fn entry(order_id: u64, deadline_ms: u64) -> Entry {
    Entry { order_id, item_id: order_id % 13, user_id: order_id, quantity: 1, deadline_ms }
}

/// A deadline between now and 2 minutes on, and now and then days away.
fn deadline_ms(order_id: u64, now_ms: u64) -> u64 {
    let spread = order_id.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40;
    if order_id % 500 < 2 { now_ms + 3 * 86_400_000 + spread } else { now_ms + spread % 120_000 }
}

/// Sale-like churn: two orders a round, a third of them paid, the rest
/// expire; time moves 10 ms a round. About 8,000 of 10,000 places in use.
fn churn(wheel: &mut ExpiryWheel, out: &mut Vec<Entry>, next_id: &mut u64, now_ms: &mut u64, rounds: u64) {
    for _ in 0..rounds {
        for _ in 0..2 {
            if wheel.insert(entry(*next_id, deadline_ms(*next_id, *now_ms))).is_ok() && next_id.is_multiple_of(3) {
                wheel.cancel(*next_id);
            }
            *next_id += 1;
        }
        *now_ms += 10;
        out.clear();
        wheel.advance(*now_ms, out);
    }
}

#[test]
fn the_wheel_allocates_nothing_once_warm() {
    let mut wheel = ExpiryWheel::new(WheelConfig { pending_max: PENDING_MAX, slot_ms: 100 }, T0);
    let mut out = Vec::with_capacity(PENDING_MAX as usize);
    let (mut next_id, mut now_ms) = (0, T0);
    // Warm: fill to the limit (inserts then fail with Full), through days of
    // deadlines, so that every level, the index and `out` have been used.
    churn(&mut wheel, &mut out, &mut next_id, &mut now_ms, 20_000);
    let mut full = ExpiryWheel::new(WheelConfig { pending_max: 1, slot_ms: 100 }, T0);
    full.insert(entry(1, T0)).expect("one place");
    let allocations = allocations_in(|| {
        churn(&mut wheel, &mut out, &mut next_id, &mut now_ms, 200_000);
        // The refusals too: the caller answers 503 without allocating.
        assert!(full.insert(entry(2, T0)).is_err() && full.insert(entry(1, T0)).is_err());
    });
    assert_eq!(allocations, 0, "allocations in 400,000 inserts over 33 minutes");
    let stats = wheel.stats();
    assert!(stats.expired > 200_000 && stats.cancelled > 100_000, "{stats:?}");
}

struct Discard;

impl Expirer for Discard {
    type Error = ();

    fn expire(&mut self, due: &[Entry], _now_ms: u64) -> Result<(), ()> {
        std::hint::black_box(due);
        Ok(())
    }
}

#[test]
fn the_driver_allocates_nothing() {
    let wheel = ExpiryWheel::new(WheelConfig { pending_max: PENDING_MAX, slot_ms: 100 }, T0);
    // The buffer of due orders is allocated here, once.
    let mut driver = ExpiryDriver::new(wheel, 256);
    let allocations = allocations_in(|| {
        for round in 0..100_000_u64 {
            let now_ms = T0 + round * 10;
            for order_id in round * 4..round * 4 + 4 {
                let _full_is_fine = driver.wheel_mut().insert(entry(order_id, now_ms + order_id % 60_000));
            }
            while driver.tick(now_ms, &mut Discard).map(|tick| tick.progress) == Ok(Progress::More) {}
        }
    });
    assert_eq!(allocations, 0);
    assert!(driver.wheel().stats().expired > 300_000, "{:?}", driver.wheel().stats());
}
