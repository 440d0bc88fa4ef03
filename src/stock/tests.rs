//! The table's decisions against the embedded source and a leasing test
//! double, the conservation proptests, and the stress test.

use std::sync::{Arc, Mutex};

use proptest::prelude::*;

use super::*;

const ITEM: ItemId = 42;

/// A table of 8 items with `units` of `ITEM` granted by the embedded source.
fn embedded(units: u64) -> (Stock, Slot) {
    let source = Arc::new(EmbeddedSource::new(8));
    source.set(ITEM, units);
    let stock = Stock::new(8, source);
    let slot = stock.add(ITEM).expect("room for one item");
    assert_eq!(stock.refill(slot), Refill { units, beyond: Beyond::Nothing });
    (stock, slot)
}

fn check_takes(stock: &Stock, slot: Slot, takes: &[(u64, Outcome)]) {
    for (i, &(quantity, expected)) in takes.iter().enumerate() {
        assert_eq!(stock.take(slot, quantity), expected, "take #{i} of {quantity}");
    }
}

const TAKEN: Outcome = Outcome::Taken { wake_refiller: false, epoch: None };

#[test]
fn embedded_stock_sells_out_then_comes_back() {
    let (stock, slot) = embedded(3);
    assert!(!stock.is_sold_out(slot));
    check_takes(&stock, slot, &[(2, TAKEN), (2, Outcome::SoldOut), (1, TAKEN)]);
    assert!(stock.is_sold_out(slot), "an empty allotment with nothing beyond is marked");
    check_takes(&stock, slot, &[(1, Outcome::SoldOut)]);
    stock.give_back(slot, 2, None);
    assert!(!stock.is_sold_out(slot), "returned units clear the mark");
    check_takes(&stock, slot, &[(3, Outcome::SoldOut), (2, TAKEN), (1, Outcome::SoldOut)]);
    assert_eq!(stock.item(slot).allotment().ledger(), (3, 2, 5));
}

#[test]
fn a_quantity_above_what_is_left_is_refused_without_marking() {
    let (stock, slot) = embedded(1);
    check_takes(&stock, slot, &[(2, Outcome::SoldOut)]);
    assert!(!stock.is_sold_out(slot), "one unit is still for sale");
    check_takes(&stock, slot, &[(1, TAKEN)]);
}

#[test]
fn an_item_with_no_stock_is_sold_out_from_the_start() {
    let (stock, slot) = embedded(0);
    assert!(stock.is_sold_out(slot));
}

#[test]
fn admin_additions_arrive_through_a_refill() {
    let source = Arc::new(EmbeddedSource::new(8));
    source.set(ITEM, 1);
    let stock = Stock::new(8, source.clone());
    let slot = stock.add(ITEM).expect("room");
    stock.refill(slot);
    check_takes(&stock, slot, &[(1, TAKEN), (1, Outcome::SoldOut)]);
    source.add(ITEM, 4);
    assert_eq!(stock.refill(slot).units, 4);
    assert!(!stock.is_sold_out(slot));
    assert!(stock.withdraw(slot, 3), "an admin decrease within what is left");
    assert!(!stock.withdraw(slot, 2), "stock_below_sold");
    check_takes(&stock, slot, &[(1, TAKEN)]);
    assert!(stock.is_sold_out(slot));
}

#[test]
fn shutdown_releases_every_unit_to_the_source() {
    let source = Arc::new(EmbeddedSource::new(8));
    source.set(1, 10);
    source.set(2, 5);
    let stock = Stock::new(8, source.clone());
    for item in [1, 2] {
        let slot = stock.add(item).expect("room");
        stock.refill(slot);
        stock.take(slot, 1);
    }
    stock.release_all();
    assert_eq!((source.ungranted(1), source.ungranted(2)), (9, 4));
}

#[test]
fn lookup_finds_every_item_and_only_those() {
    const ITEMS_MAX: usize = 100;
    let stock = Stock::new(ITEMS_MAX, Arc::new(EmbeddedSource::new(ITEMS_MAX)));
    // Consecutive ids, ids that differ only in high bits, and the extremes.
    let ids: Vec<ItemId> = (0..90).chain((1..9).map(|i| i << 40)).chain([u64::MAX, u64::MAX - 1]).collect();
    let slots: Vec<Slot> = ids.iter().map(|&id| stock.add(id).expect("room")).collect();
    for (i, (&id, &slot)) in ids.iter().zip(&slots).enumerate() {
        assert_eq!(slot.index(), i, "slots are dense, in order of addition");
        assert_eq!(stock.slot(id), Some(slot));
        assert_eq!(stock.add(id), Ok(slot), "adding twice finds the first");
        assert_eq!(stock.item(slot).id(), id);
    }
    assert_eq!(stock.slot(90), None);
    assert_eq!(stock.add(90), Err(StockError::TableFull { items_max: ITEMS_MAX }));
    assert_eq!(stock.slots().count(), ITEMS_MAX);
}

#[test]
fn an_empty_table_finds_nothing() {
    let stock = Stock::new(0, Arc::new(EmbeddedSource::new(0)));
    assert_eq!(stock.slot(1), None);
    assert_eq!(stock.add(1), Err(StockError::TableFull { items_max: 0 }));
}

/// A stand-in for the distributed source: a pool leased in chunks, a flag for
/// "other instances hold units", a lease that can be revoked, and returns
/// that go to the pool.
#[derive(Debug)]
struct Leasing {
    state: Mutex<LeasingState>,
}

#[derive(Debug)]
struct LeasingState {
    pool: u64,
    chunk: u64,
    held_elsewhere: bool,
    revoked: bool,
    refills: u32,
    /// The pool's generation, for a source with generations.
    epoch: Option<u64>,
}

impl Leasing {
    fn new(pool: u64, chunk: u64) -> Arc<Self> {
        let state = LeasingState { pool, chunk, held_elsewhere: false, revoked: false, refills: 0, epoch: None };
        Arc::new(Self { state: Mutex::new(state) })
    }

    fn with<R>(&self, change: impl FnOnce(&mut LeasingState) -> R) -> R {
        // The tests never panic while holding the lock.
        change(&mut self.state.lock().unwrap())
    }
}

impl StockSource for Leasing {
    fn refill(&self, _item: ItemId, _left_here: u64) -> Refill {
        self.with(|state| {
            state.refills += 1;
            let units = state.chunk.min(state.pool);
            state.pool -= units;
            let beyond = match (state.pool, state.held_elsewhere) {
                (0, false) => Beyond::Nothing,
                (0, true) => Beyond::Elsewhere,
                _ => Beyond::Pool,
            };
            Refill { units, beyond }
        })
    }

    fn release(&self, _item: ItemId, units: u64) {
        self.with(|state| state.pool += units);
    }

    fn returned(&self, _item: ItemId, units: u64, _epoch: Option<u64>) -> Return {
        self.with(|state| state.pool += units);
        Return::Pooled
    }

    fn epoch(&self, _item: ItemId) -> Option<u64> {
        self.with(|state| state.epoch)
    }

    fn renew(&self, _item: ItemId, _left_here: u64) -> Renewal {
        if self.with(|state| std::mem::take(&mut state.revoked)) { Renewal::Revoked } else { Renewal::Kept }
    }

    fn seed(&self, _item: ItemId, units: u64, _seeding: Seeding) -> Result<(), SourceError> {
        self.with(|state| state.pool = units);
        Ok(())
    }

    fn add_units(&self, _item: ItemId, units: u64) -> Result<(), SourceError> {
        self.with(|state| state.pool += units);
        Ok(())
    }
}

fn leasing(pool: u64, chunk: u64) -> (Stock, Slot, Arc<Leasing>) {
    let source = Leasing::new(pool, chunk);
    let stock = Stock::new(8, source.clone());
    let slot = stock.add(ITEM).expect("room");
    (stock, slot, source)
}

#[test]
fn a_short_allotment_with_more_in_the_pool_is_busy_and_asks_once() {
    let (stock, slot, source) = leasing(10, 4);
    // Nothing granted yet: busy, and only the first loop wakes the refiller.
    check_takes(
        &stock,
        slot,
        &[(1, Outcome::Busy { wake_refiller: true }), (1, Outcome::Busy { wake_refiller: false })],
    );
    assert_eq!(stock.refill_wanted(), 1);
    assert_eq!(stock.refill_wanted(), 0, "the flags were drained");
    assert_eq!(stock.item(slot).allotment().left(), 4);
    // A low-water mark of 1 (a quarter of 4): the take that leaves 0 asks ahead.
    check_takes(&stock, slot, &[(3, TAKEN), (1, Outcome::Taken { wake_refiller: true, epoch: None })]);
    assert!(!stock.is_sold_out(slot), "more in the pool");
    assert_eq!(stock.refill_wanted(), 1);
    assert_eq!(source.with(|state| state.refills), 2);
}

#[test]
fn the_last_units_held_elsewhere_are_busy_then_sold_out() {
    let (stock, slot, source) = leasing(2, 4);
    source.with(|state| state.held_elsewhere = true);
    stock.refill(slot);
    assert_eq!(stock.item(slot).beyond(), Beyond::Elsewhere);
    check_takes(&stock, slot, &[(2, TAKEN), (1, Outcome::Busy { wake_refiller: true })]);
    assert!(!stock.is_sold_out(slot), "another instance still holds units: never 410");
    // The other instance sold its last units.
    source.with(|state| state.held_elsewhere = false);
    assert_eq!(stock.refill_wanted(), 1);
    assert!(stock.is_sold_out(slot));
    check_takes(&stock, slot, &[(1, Outcome::SoldOut)]);
}

#[test]
fn pooled_returns_put_the_item_back_on_sale() {
    let (stock, slot, _source) = leasing(1, 4);
    stock.refill(slot);
    check_takes(&stock, slot, &[(1, TAKEN)]);
    assert!(stock.is_sold_out(slot));
    stock.give_back(slot, 1, None);
    assert!(!stock.is_sold_out(slot));
    assert_eq!(stock.item(slot).allotment().left(), 0, "the unit went to the pool");
    check_takes(&stock, slot, &[(1, Outcome::Busy { wake_refiller: true })]);
    stock.refill_wanted();
    check_takes(&stock, slot, &[(1, TAKEN)]);
}

/// Units carry their pool's generation to the order; a rebuilt pool's first
/// grant drops the old units here, and units of the old pool given back by
/// refused orders go nowhere (the rebuild counted them).
#[test]
fn a_new_pool_generation_drops_the_old_units_and_labels_takes() {
    let (stock, slot, source) = leasing(10, 4);
    source.with(|state| state.epoch = Some(7));
    stock.refill(slot);
    check_takes(&stock, slot, &[(1, Outcome::Taken { wake_refiller: false, epoch: Some(7) })]);
    // Another instance rebuilt the pool from the store: generation 8, 5 units.
    source.with(|state| (state.epoch, state.pool) = (Some(8), 5));
    stock.refill(slot);
    assert_eq!(stock.item(slot).allotment().left(), 4, "the old 3 dropped, 4 of the new pool granted");
    check_takes(&stock, slot, &[(1, Outcome::Taken { wake_refiller: false, epoch: Some(8) })]);
    stock.give_back(slot, 1, Some(7));
    stock.put_back(slot, 1, Some(7));
    assert_eq!(source.with(|state| state.pool), 1, "an old unit does not go to the new pool");
    assert_eq!(stock.item(slot).allotment().left(), 3, "nor into the allotment");
    stock.put_back(slot, 1, Some(8));
    assert_eq!(stock.item(slot).allotment().left(), 4);
    stock.give_back(slot, 1, Some(8));
    assert_eq!(source.with(|state| state.pool), 2, "a unit of the current pool goes back to it");
    stock.give_back(slot, 1, None);
    assert_eq!(source.with(|state| state.pool), 3, "a cancelled order's unit: free whatever its pool");
}

#[test]
fn a_revoked_lease_drops_the_units_and_asks_again() {
    let (stock, slot, source) = leasing(10, 4);
    stock.refill(slot);
    stock.renew();
    assert_eq!(stock.item(slot).allotment().left(), 4, "a kept lease keeps its units");
    source.with(|state| state.revoked = true);
    stock.renew();
    assert_eq!(stock.item(slot).allotment().left(), 0);
    check_takes(&stock, slot, &[(1, Outcome::Busy { wake_refiller: true })]);
}

/// 4 threads hammer one item of 10,000 units through the table: exactly
/// 10,000 are taken, and the item ends sold out.
#[test]
fn four_threads_sell_exactly_the_stock() {
    const UNITS: u64 = 10_000;
    let (stock, slot) = embedded(UNITS);
    let sold: u64 = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = 0;
                    while let Outcome::Taken { .. } = stock.take(slot, 1) {
                        mine += 1;
                    }
                    mine
                })
            })
            .collect();
        // A worker panics only through the ledger's assertions, which fail the test.
        workers.into_iter().map(|worker| worker.join().unwrap()).sum()
    });
    assert_eq!(sold, UNITS);
    assert!(stock.is_sold_out(slot));
    assert_eq!(stock.item(slot).allotment().ledger(), (UNITS, 0, UNITS));
}

/// One step of a buyer: take `quantity`, or give back the `order`-th live
/// order (modulo how many there are).
#[derive(Clone, Copy, Debug)]
enum Op {
    Take(u64),
    GiveBack(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![3 => (1_u64..=4).prop_map(Op::Take), 1 => any::<usize>().prop_map(Op::GiveBack)]
}

/// Runs `ops` against the table; returns the units of the orders still live.
/// With `model`, also checks each answer against a sequential model.
fn run(stock: &Stock, slot: Slot, ops: &[Op], mut model: Option<&mut u64>) -> u64 {
    let mut live: Vec<u64> = Vec::new();
    for &op in ops {
        match op {
            Op::Take(quantity) => {
                let taken = matches!(stock.take(slot, quantity), Outcome::Taken { .. });
                if taken {
                    live.push(quantity);
                }
                if let Some(left) = model.as_deref_mut() {
                    assert_eq!(taken, *left >= quantity, "take {quantity} with {left} left");
                    if taken {
                        *left -= quantity;
                    }
                }
            }
            Op::GiveBack(order) if !live.is_empty() => {
                let quantity = live.swap_remove(order % live.len());
                stock.give_back(slot, quantity, None);
                if let Some(left) = model.as_deref_mut() {
                    *left += quantity;
                }
            }
            Op::GiveBack(_) => {}
        }
        if let Some(left) = model.as_deref() {
            assert_eq!(stock.item(slot).allotment().left(), *left);
            assert_eq!(stock.is_sold_out(slot), *left == 0);
        }
    }
    live.iter().sum()
}

proptest! {
    /// Any sequence of takes and returns: the table answers as the model
    /// does, and sold + left == total after every step.
    #[test]
    fn sold_plus_left_is_total_in_any_sequence(total in 0_u64..40, ops in prop::collection::vec(op(), 0..200)) {
        let (stock, slot) = embedded(total);
        let mut left = total;
        let sold = run(&stock, slot, &ops, Some(&mut left));
        prop_assert_eq!(sold + left, total);
    }

    /// The same from 3 threads at once: whatever the interleaving, sold +
    /// left == total at the end, and no item with units is marked sold out.
    /// (The converse may lag: a return's clear can land just after a take
    /// marked; the next take that finds the allotment empty marks again.)
    #[test]
    fn sold_plus_left_is_total_in_any_interleaving(
        total in 0_u64..60,
        ops in prop::collection::vec(prop::collection::vec(op(), 0..100), 3),
    ) {
        let (stock, slot) = embedded(total);
        let sold: u64 = std::thread::scope(|scope| {
            let workers: Vec<_> =
                ops.iter().map(|ops| scope.spawn(|| run(&stock, slot, ops, None))).collect();
            // A worker panics only through the ledger's assertions, which fail the test.
            workers.into_iter().map(|worker| worker.join().unwrap()).sum()
        });
        let left = stock.item(slot).allotment().left();
        prop_assert_eq!(sold + left, total);
        prop_assert!(!stock.is_sold_out(slot) || left == 0);
    }
}
