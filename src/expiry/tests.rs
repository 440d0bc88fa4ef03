//! The wheel against its contract, a model, and the clock; the driver against a fake store.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use proptest::prelude::*;

use super::wheel::LEVELS;
use super::{Entry, Expirer, ExpiryDriver, ExpiryWheel, InsertError, Progress, Tick, WheelConfig};

/// A Unix time of 2023, on a slot boundary of every slot size used below.
const T0: u64 = 1_700_000_000_000;
const DAY_MS: u64 = 86_400_000;

fn entry(order_id: u64, deadline_ms: u64) -> Entry {
    Entry { order_id, item_id: order_id % 7, user_id: order_id % 11, quantity: 1 + (order_id % 3) as u32, deadline_ms }
}

fn wheel(pending_max: u32, slot_ms: u64, now_ms: u64) -> ExpiryWheel {
    ExpiryWheel::new(WheelConfig { pending_max, slot_ms }, now_ms)
}

/// The ids `advance(now_ms)` returns, sorted, after checking the invariants.
fn expire(wheel: &mut ExpiryWheel, now_ms: u64) -> Vec<u64> {
    let mut out = Vec::new();
    wheel.advance(now_ms, &mut out);
    wheel.check_invariants();
    let mut ids: Vec<u64> = out.iter().map(|e| e.order_id).collect();
    ids.sort_unstable();
    ids
}

/// A deterministic stream of numbers for the larger tests: no `rand` needed.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % bound
    }
}

#[test]
fn expires_at_the_deadline_and_within_one_slot() {
    for slot_ms in [1, 7, 100, 1_000] {
        let mut w = wheel(1_000, slot_ms, T0);
        let mut rng = Lcg(slot_ms);
        let mut deadlines = HashMap::new();
        for order_id in 0..1_000 {
            let deadline_ms = T0 + rng.below(20_000);
            deadlines.insert(order_id, deadline_ms);
            w.insert(entry(order_id, deadline_ms)).expect("room for 1,000");
        }
        let mut out = Vec::new();
        // Every millisecond, so that "late" means the wheel's lateness, not the test's.
        for now_ms in T0..=T0 + 20_000 + slot_ms {
            out.clear();
            w.advance(now_ms, &mut out);
            for e in &out {
                assert_eq!(e, &entry(e.order_id, deadlines[&e.order_id]), "the entry comes back whole");
                assert!(e.deadline_ms <= now_ms, "slot {slot_ms}: order {} early at {now_ms}", e.order_id);
                assert!(now_ms - e.deadline_ms < slot_ms, "slot {slot_ms}: order {} late at {now_ms}", e.order_id);
                assert!(deadlines.remove(&e.order_id).is_some(), "order {} twice", e.order_id);
            }
        }
        assert!(deadlines.is_empty(), "slot {slot_ms}: never expired: {deadlines:?}");
        w.check_invariants();
        assert!(w.is_empty());
    }
}

#[test]
fn cancel_prevents_expiry() {
    let mut w = wheel(8, 100, T0);
    for order_id in 1..=3 {
        w.insert(entry(order_id, T0 + 1_000)).expect("room");
    }
    assert_eq!(w.cancel(2), Some(entry(2, T0 + 1_000)));
    assert_eq!(w.cancel(2), None, "cancelled once");
    assert_eq!(w.cancel(99), None, "never inserted");
    assert_eq!(w.len(), 2);
    w.check_invariants();
    assert_eq!(expire(&mut w, T0 + 999), Vec::<u64>::new());
    assert_eq!(expire(&mut w, T0 + 1_000), vec![1, 3]);
    assert_eq!(w.cancel(1), None, "expired orders are gone");
    assert!(w.is_empty());
}

#[test]
fn cancel_from_every_level_and_the_overflow() {
    // One order per level and one beyond the top level (2^36 ticks of 1 ms ≈ 795 days).
    let deadlines =
        [T0 + 5, T0 + 100, T0 + 10_000, T0 + 300_000, T0 + 20_000_000, T0 + 2_000_000_000, T0 + 900 * DAY_MS];
    let mut w = wheel(16, 1, T0);
    for (order_id, &deadline_ms) in (0..).zip(&deadlines) {
        w.insert(entry(order_id, deadline_ms)).expect("room");
    }
    w.check_invariants();
    for order_id in (0..deadlines.len() as u64).step_by(2) {
        assert!(w.cancel(order_id).is_some());
        w.check_invariants();
    }
    assert_eq!(expire(&mut w, T0 + 1_000 * DAY_MS), vec![1, 3, 5]);
}

#[test]
fn far_deadlines_expire_on_time() {
    // Days, a year, and past the top level of 100 ms slots (2^36 × 100 ms ≈ 218 years).
    let far = [2 * DAY_MS, 3 * DAY_MS + 1, 30 * DAY_MS, 365 * DAY_MS, 250 * 365 * DAY_MS];
    for slot_ms in [1, 100] {
        let mut w = wheel(16, slot_ms, T0);
        for (order_id, &in_ms) in (0..).zip(&far) {
            w.insert(entry(order_id, T0 + in_ms)).expect("room");
        }
        let mut now_ms = T0;
        for (order_id, &in_ms) in (0..).zip(&far) {
            let deadline_ms = T0 + in_ms;
            // Time jumps (the server slept), then creeps up to the deadline.
            assert_eq!(expire(&mut w, deadline_ms - 2 * slot_ms), Vec::<u64>::new());
            assert_eq!(expire(&mut w, deadline_ms - 1), Vec::<u64>::new(), "slot {slot_ms}: {order_id} early");
            let due_ms = deadline_ms.div_ceil(slot_ms) * slot_ms;
            assert_eq!(expire(&mut w, due_ms), vec![order_id], "slot {slot_ms}: {order_id} late");
            now_ms = due_ms;
        }
        assert!(w.is_empty());
        // Each order moved down at most once per level, plus once out of the overflow.
        assert!(w.stats().cascaded <= far.len() as u64 * (LEVELS as u64 + 1), "{:?}", w.stats());
        assert_eq!(expire(&mut w, now_ms + DAY_MS), Vec::<u64>::new());
    }
}

#[test]
fn past_deadlines_expire_on_the_next_advance() {
    let mut w = wheel(8, 100, T0);
    w.insert(entry(1, T0 - 3_600_000)).expect("room");
    w.insert(entry(2, 0)).expect("room");
    w.insert(entry(3, T0)).expect("room");
    w.insert(entry(4, T0 + 1)).expect("room");
    assert_eq!(expire(&mut w, T0), vec![1, 2, 3]);
    // After an advance, inserting in the past still works, also with a clock that went back.
    w.insert(entry(5, T0 - 1)).expect("room");
    assert_eq!(expire(&mut w, T0 - 5_000), vec![5], "time never runs backwards for the wheel");
    assert_eq!(expire(&mut w, T0 + 99), Vec::<u64>::new(), "still counted from T0");
    assert_eq!(expire(&mut w, T0 + 100), vec![4]);
}

#[test]
fn capacity_is_bounded_and_places_are_reused() {
    let mut w = wheel(3, 100, T0);
    for order_id in 1..=3 {
        w.insert(entry(order_id, T0 + 1_000)).expect("room");
    }
    assert_eq!(w.insert(entry(4, T0 + 1_000)), Err(InsertError::Full));
    assert_eq!(w.insert(entry(1, T0 + 5)), Err(InsertError::Duplicate));
    assert_eq!(w.len(), 3);
    w.cancel(2);
    assert_eq!(w.insert(entry(4, T0 + 500)), Ok(()), "a cancel frees a place at once");
    assert_eq!(w.insert(entry(5, T0 + 500)), Err(InsertError::Full));
    assert_eq!(expire(&mut w, T0 + 500), vec![4]);
    assert_eq!(w.insert(entry(5, T0 + 500)), Ok(()), "an expiry frees a place");
    assert_eq!(w.capacity(), 3);
    w.check_invariants();

    let mut none = wheel(0, 100, T0);
    assert_eq!(none.insert(entry(1, T0)), Err(InsertError::Full));
    assert_eq!(expire(&mut none, T0 + 1), Vec::<u64>::new());
}

#[test]
fn batches_are_bounded_and_resume() {
    let mut w = wheel(64, 100, T0);
    for order_id in 0..10 {
        // Spread over levels 0 and 1, so a batch can end in the middle of a cascade.
        w.insert(entry(order_id, T0 + order_id * 1_000)).expect("room");
    }
    let mut seen = Vec::new();
    let mut out = Vec::new();
    let mut calls = 0;
    loop {
        out.clear();
        let progress = w.advance_max(T0 + 9_000, &mut out, 3);
        w.check_invariants();
        calls += 1;
        assert!(out.len() <= 3);
        // An insert between batches must not disturb the rest.
        if calls == 2 {
            w.insert(entry(100, T0 + 9_000)).expect("room");
        }
        seen.extend(out.iter().map(|e| e.order_id));
        if progress == Progress::Done {
            break;
        }
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..10).chain([100]).collect::<Vec<_>>());
    assert_eq!(calls, 4);
    assert!(w.is_empty());
}

#[test]
fn next_due_ms_bounds_the_writer_wait() {
    let mut w = wheel(8, 100, T0);
    assert_eq!(w.next_due_ms(), None);
    w.insert(entry(1, T0 + 1_250)).expect("room");
    assert_eq!(w.next_due_ms(), Some(T0 + 1_300), "level 0: the due slot");
    w.insert(entry(2, T0 + 3_600_000)).expect("room");
    assert_eq!(w.next_due_ms(), Some(T0 + 1_300));
    w.cancel(1);
    let cascade_ms = w.next_due_ms().expect("one pending");
    assert!(cascade_ms > T0 && cascade_ms <= T0 + 3_600_000, "a cascade no later than the deadline");
    w.insert(entry(3, T0 - 1)).expect("room");
    assert!(w.next_due_ms().expect("due") <= T0, "due now");
}

#[test]
fn rebuild_refills_from_the_store() {
    let pending = [entry(1, T0 - 10_000), entry(2, T0 + 10_000), entry(3, T0 + 5 * DAY_MS), entry(4, T0)];
    let config = WheelConfig { pending_max: 8, slot_ms: 100 };
    let mut w = ExpiryWheel::rebuild(config, pending, T0).expect("room");
    assert_eq!(w.len(), 4);
    assert_eq!(expire(&mut w, T0), vec![1, 4], "orders past their deadline at restart go at once");
    assert_eq!(expire(&mut w, T0 + 10_000), vec![2]);
    assert_eq!(expire(&mut w, T0 + 5 * DAY_MS), vec![3]);

    let small = WheelConfig { pending_max: 3, slot_ms: 100 };
    assert_eq!(ExpiryWheel::rebuild(small, pending, T0).err(), Some(InsertError::Full));
    let twice = [entry(1, T0), entry(1, T0)];
    assert_eq!(ExpiryWheel::rebuild(config, twice, T0).err(), Some(InsertError::Duplicate));
}

#[test]
fn clear_keeps_the_memory_and_restarts_the_clock() {
    let mut w = wheel(4, 100, T0);
    w.insert(entry(1, T0 + 100)).expect("room");
    w.clear(T0 + DAY_MS);
    w.check_invariants();
    assert!(w.is_empty());
    w.insert(entry(1, T0 + DAY_MS + 100)).expect("the id is free again");
    assert_eq!(expire(&mut w, T0 + DAY_MS + 100), vec![1]);
}

// The model: a BTreeMap by deadline. An order is due once `now_ms`, rounded
// down to a slot boundary, has reached its deadline; with 1 ms slots that is
// exactly `deadline_ms <= now_ms`.

#[derive(Clone, Debug)]
enum Op {
    Insert { order_id: u64, in_ms: i64 },
    Cancel { order_id: u64 },
    Advance { step_ms: i64, batch_max: usize },
}

fn op() -> impl Strategy<Value = Op> {
    // Beyond 2^36 ms the overflow list is used even with 1 ms slots.
    let in_ms = prop_oneof![8 => -3_000_i64..10_000, 1 => -(1_i64 << 40)..0, 2 => 0_i64..(1 << 38)];
    let step_ms = prop_oneof![8 => -50_i64..700, 2 => 0_i64..200_000, 1 => 0_i64..(1 << 38)];
    let batch_max = prop_oneof![Just(usize::MAX), 1_usize..5];
    prop_oneof![
        4 => (0_u64..48, in_ms).prop_map(|(order_id, in_ms)| Op::Insert { order_id, in_ms }),
        1 => (0_u64..48).prop_map(|order_id| Op::Cancel { order_id }),
        3 => (step_ms, batch_max).prop_map(|(step_ms, batch_max)| Op::Advance { step_ms, batch_max }),
    ]
}

fn run_against_model(slot_ms: u64, pending_max: u32, start_ms: u64, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut w = wheel(pending_max, slot_ms, start_ms);
    let mut by_deadline: BTreeMap<(u64, u64), Entry> = BTreeMap::new();
    let mut deadline_of: HashMap<u64, u64> = HashMap::new();
    let mut now_ms = start_ms;
    // The wheel's time never goes back; the model's neither.
    let mut time_ms = start_ms;
    let mut out = Vec::new();
    for op in ops {
        match *op {
            Op::Insert { order_id, in_ms } => {
                let e = entry(order_id, now_ms.saturating_add_signed(in_ms));
                let expected = if deadline_of.contains_key(&order_id) {
                    Err(InsertError::Duplicate)
                } else if deadline_of.len() == pending_max as usize {
                    Err(InsertError::Full)
                } else {
                    by_deadline.insert((e.deadline_ms, order_id), e);
                    deadline_of.insert(order_id, e.deadline_ms);
                    Ok(())
                };
                prop_assert_eq!(w.insert(e), expected);
            }
            Op::Cancel { order_id } => {
                let expected = deadline_of.remove(&order_id).and_then(|d| by_deadline.remove(&(d, order_id)));
                prop_assert_eq!(w.cancel(order_id), expected);
            }
            Op::Advance { step_ms, batch_max } => {
                now_ms = now_ms.saturating_add_signed(step_ms);
                time_ms = time_ms.max(now_ms);
                let due_until_ms = time_ms / slot_ms * slot_ms;
                let mut expected: Vec<Entry> = Vec::new();
                while let Some((&(deadline_ms, order_id), &e)) = by_deadline.first_key_value() {
                    if deadline_ms > due_until_ms {
                        break;
                    }
                    by_deadline.remove(&(deadline_ms, order_id));
                    deadline_of.remove(&order_id);
                    expected.push(e);
                }
                let mut got: Vec<Entry> = Vec::new();
                for call in 0.. {
                    prop_assert!(call <= expected.len(), "batches never end");
                    out.clear();
                    let progress = w.advance_max(now_ms, &mut out, batch_max);
                    prop_assert!(out.len() <= batch_max);
                    got.extend_from_slice(&out);
                    if progress == Progress::Done {
                        break;
                    }
                }
                let key = |e: &Entry| e.order_id;
                expected.sort_unstable_by_key(key);
                got.sort_unstable_by_key(key);
                // Same entries, each once: the model held each id at most once.
                prop_assert_eq!(got, expected, "advance to {} ms (slot {} ms)", now_ms, slot_ms);
            }
        }
        prop_assert_eq!(w.len(), deadline_of.len());
        w.check_invariants();
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1_000, ..ProptestConfig::default() })]

    #[test]
    fn agrees_with_a_model(
        slot_ms in prop_oneof![Just(1_u64), Just(7), Just(100), 1_u64..2_000],
        pending_max in 1_u32..40,
        start_ms in 0_u64..(1 << 45),
        ops in proptest::collection::vec(op(), 1..200),
    ) {
        run_against_model(slot_ms, pending_max, start_ms, &ops)?;
    }
}

// The driver against a fake store that keeps the contract's rules.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Pending,
    Paid,
    Expired,
}

#[derive(Default)]
struct FakeStore {
    status: HashMap<u64, Status>,
    deadline_ms: HashMap<u64, u64>,
    stock_left: HashMap<u64, u32>,
    sold_out: HashSet<u64>,
    /// Every order whose units went back, in order: the exactly-once record.
    returned: Vec<u64>,
    fail_next: bool,
}

impl FakeStore {
    fn order(&mut self, e: Entry) {
        self.status.insert(e.order_id, Status::Pending);
        self.deadline_ms.insert(e.order_id, e.deadline_ms);
    }

    /// The store's side of POST /api/orders/{id}/pay.
    fn pay(&mut self, order_id: u64, now_ms: u64) -> Result<(), &'static str> {
        match self.status[&order_id] {
            Status::Pending if now_ms < self.deadline_ms[&order_id] => {
                self.status.insert(order_id, Status::Paid);
                Ok(())
            }
            Status::Pending | Status::Expired => Err("order_expired"),
            Status::Paid => Ok(()),
        }
    }
}

impl Expirer for FakeStore {
    type Error = &'static str;

    fn expire(&mut self, due: &[Entry], now_ms: u64) -> Result<(), Self::Error> {
        if std::mem::take(&mut self.fail_next) {
            return Err("disk I/O error");
        }
        // `expire_orders(ids, now)`: only orders still pending and past their deadline.
        for e in due {
            if self.status[&e.order_id] == Status::Pending && self.deadline_ms[&e.order_id] <= now_ms {
                self.status.insert(e.order_id, Status::Expired);
                *self.stock_left.entry(e.item_id).or_default() += e.quantity;
                self.sold_out.remove(&e.item_id);
                self.returned.push(e.order_id);
            }
        }
        Ok(())
    }
}

fn order(order_id: u64, item_id: u64, quantity: u32, deadline_ms: u64) -> Entry {
    Entry { order_id, item_id, user_id: 1, quantity, deadline_ms }
}

#[test]
fn driver_returns_stock_once_and_clears_sold_out() {
    const D: u64 = T0 + 60_000;
    let mut store = FakeStore::default();
    store.stock_left.insert(1, 0);
    store.sold_out.insert(1);
    let mut driver = ExpiryDriver::new(wheel(16, 100, T0), 8);
    let (a, b) = (order(1, 1, 1, D), order(2, 1, 2, D));
    for e in [a, b] {
        store.order(e);
        driver.wheel_mut().insert(e).expect("room");
    }

    // Paid in time: the writer takes it out of the wheel.
    assert_eq!(store.pay(1, D - 1), Ok(()));
    assert!(driver.wheel_mut().cancel(1).is_some());

    assert_eq!(driver.tick(D - 1, &mut store), Ok(Tick { expired: 0, progress: Progress::Done }));
    // At the deadline payment is refused whether or not the wheel has fired.
    assert_eq!(store.pay(2, D), Err("order_expired"));
    assert_eq!(driver.tick(D, &mut store), Ok(Tick { expired: 1, progress: Progress::Done }));
    assert_eq!(store.status[&2], Status::Expired);
    assert_eq!(store.stock_left[&1], 2);
    assert!(!store.sold_out.contains(&1), "the item is on sale again");
    assert_eq!(store.pay(2, D + 1), Err("order_expired"));
    assert_eq!(driver.tick(D + 10_000, &mut store), Ok(Tick { expired: 0, progress: Progress::Done }));
    assert_eq!(store.returned, vec![2]);
    assert_eq!(store.status[&1], Status::Paid);
}

#[test]
fn driver_ignores_an_order_paid_but_still_in_the_wheel() {
    // The payment committed but its cancel has not reached the wheel: the
    // store reports nothing to expire, so no units come back.
    const D: u64 = T0 + 1_000;
    let mut store = FakeStore::default();
    let mut driver = ExpiryDriver::new(wheel(4, 100, T0), 4);
    let e = order(7, 3, 5, D);
    store.order(e);
    driver.wheel_mut().insert(e).expect("room");
    assert_eq!(store.pay(7, D - 1), Ok(()));
    assert_eq!(driver.tick(D, &mut store), Ok(Tick { expired: 1, progress: Progress::Done }));
    assert!(store.returned.is_empty());
    assert_eq!(store.stock_left.get(&3), None);
    assert_eq!(store.status[&7], Status::Paid);
}

#[test]
fn driver_keeps_a_failed_batch_due() {
    const D: u64 = T0 + 1_000;
    let mut store = FakeStore::default();
    let mut driver = ExpiryDriver::new(wheel(4, 100, T0), 4);
    for e in [order(1, 1, 1, D), order(2, 1, 1, D + 50)] {
        store.order(e);
        driver.wheel_mut().insert(e).expect("room");
    }
    store.fail_next = true;
    assert_eq!(driver.tick(D + 100, &mut store), Err("disk I/O error"));
    assert_eq!(driver.wheel().len(), 2, "the batch is back in the wheel");
    driver.wheel().check_invariants();
    assert_eq!(driver.tick(D + 100, &mut store), Ok(Tick { expired: 2, progress: Progress::Done }));
    assert_eq!(driver.tick(D + 200, &mut store), Ok(Tick { expired: 0, progress: Progress::Done }));
    store.returned.sort_unstable();
    assert_eq!(store.returned, vec![1, 2], "each once");
}

#[test]
fn driver_expires_in_batches() {
    let mut store = FakeStore::default();
    let mut driver = ExpiryDriver::new(wheel(16, 100, T0), 2);
    for order_id in 0..5 {
        let e = order(order_id, 1, 1, T0 + 100);
        store.order(e);
        driver.wheel_mut().insert(e).expect("room");
    }
    let ticks: Vec<Tick> = (0..4).map(|_| driver.tick(T0 + 100, &mut store).expect("no failure")).collect();
    let more = |expired| Tick { expired, progress: Progress::More };
    let done = |expired| Tick { expired, progress: Progress::Done };
    assert_eq!(ticks, vec![more(2), more(2), done(1), done(0)]);
    assert_eq!(store.stock_left[&1], 5);
}

/// Figures for the report, not assertions on speed (the machine is shared);
/// the assertions are on work: nothing due means no order touched.
/// `cargo test --release -- --nocapture per_operation_costs` for real figures.
#[test]
fn per_operation_costs_with_a_million_pending() {
    const N: u32 = 1_000_000;
    const WINDOW_MS: u64 = 15 * 60 * 1_000;
    let mut w = wheel(N, WheelConfig::SLOT_MS_DEFAULT, T0);
    let mut rng = Lcg(42);
    let entries: Vec<Entry> = (0..u64::from(N)).map(|id| entry(id, T0 + 1_000 + rng.below(WINDOW_MS))).collect();

    let started = Instant::now();
    for &e in &entries {
        w.insert(e).expect("room for N");
    }
    let insert_ns = started.elapsed().as_nanos() / u128::from(N);

    // Nothing is due before T0 + 1 s: advance through the first 900 ms.
    let before = w.stats();
    let calls = 10_000_u64;
    let started = Instant::now();
    let mut out = Vec::with_capacity(N as usize);
    for call in 0..calls {
        w.advance(T0 + call * 900 / calls, &mut out);
    }
    let idle_advance_ns = started.elapsed().as_nanos() / u128::from(calls);
    assert!(out.is_empty());
    assert_eq!(w.stats(), before, "an advance with nothing due touched orders");

    let cancels = 100_000_u32;
    let started = Instant::now();
    for order_id in 0..u64::from(cancels) {
        assert!(w.cancel(order_id * 7).is_some());
    }
    let cancel_ns = started.elapsed().as_nanos() / u128::from(cancels);

    // Expire everything in 100 ms steps, as a writer ticking every slot would.
    let steps = (WINDOW_MS + 1_000) / 100 + 1;
    let started = Instant::now();
    for step in 0..steps {
        w.advance(T0 + step * 100, &mut out);
    }
    let drain = started.elapsed();
    assert_eq!(out.len(), (N - cancels) as usize);
    assert!(w.is_empty());
    let stats = w.stats();
    assert!(stats.cascaded <= u64::from(N) * LEVELS as u64);
    println!(
        "1M pending, 100 ms slots: insert {insert_ns} ns; advance with nothing due {idle_advance_ns} ns; \
         cancel {cancel_ns} ns; drain {} ns per expired order, {} µs per 100 ms advance; \
         {:.2} cascades per order",
        drain.as_nanos() / out.len() as u128,
        drain.as_micros() / u128::from(steps),
        stats.cascaded as f64 / f64::from(N),
    );
}
