//! One item's allotment on this instance: the units its event loops may still
//! sell without asking anyone, as one lock-free counter.

use crate::sync::{AtomicU64, Ordering, backoff};

/// Bits of the counter word that count units; the bits above hold the
/// generation of the pool the units came from.
const UNITS_BITS: u32 = 48;
const UNITS_MASK: u64 = (1 << UNITS_BITS) - 1;

/// The generation (low 16 bits of a shared pool's epoch) in a counter word.
fn generation_of(word: u64) -> u16 {
    (word >> UNITS_BITS) as u16
}

fn units_of(word: u64) -> u64 {
    word & UNITS_MASK
}

fn word(generation: u16, units: u64) -> u64 {
    (u64::from(generation) << UNITS_BITS) | units
}

/// The answer of [`Allotment::try_take`]. All or nothing: a take never
/// leaves a partial hole in the counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Take {
    /// `quantity` units are the caller's; `left` remain after it. They came
    /// from the pool generation `generation` (swapped with the count, so a
    /// take knows exactly which pool its units belong to).
    Taken { left: u64, generation: u16 },
    /// Fewer than `quantity` units were left here (`left` of them); nothing taken.
    Empty { left: u64 },
}

/// Units of one item that this instance may still sell, shared by every event
/// loop through `&self`.
///
/// `left` is the only word the hot path writes (one compare-and-swap). Its
/// low 48 bits count the units, its top 16 bits say which generation of a
/// shared pool they came from (0 for a source without generations): a
/// rebuilt pool starts a new generation ([`grant_in`](Self::grant_in)), which
/// drops the old units here in the same swap, and a take reports the
/// generation of what it took, so that the store can refuse (fence) an order
/// whose units a rebuild counted again. The
/// ledger beside it (`granted`, `returned`, `taken`) only grows, and exists so
/// that the counter can be checked against it on both the paths that lower it
/// and the paths that raise it:
///
/// - `left` is never negative: it is unsigned and a take that would go below
///   zero is refused before the swap;
/// - `left + taken <= granted + returned`, equal at rest: nothing is sold that
///   was not granted or returned, and no unit appears from nowhere.
///
/// Why the assertions hold while other threads run: a raise bumps its ledger
/// counter *before* `left` and a take bumps `taken` *after* `left` (release
/// read-modify-writes, acquire loads), so a reader that loads `taken`, then
/// `left`, then `granted` and `returned` can only see the ledger ahead of the
/// counter, never behind it.
#[derive(Debug, Default)]
pub struct Allotment {
    left: AtomicU64,
    /// Units ever received from the stock source.
    granted: AtomicU64,
    /// Units ever given back by orders that will not be sold after all.
    returned: AtomicU64,
    /// Units ever taken out: by orders, or drained back to the source.
    taken: AtomicU64,
}

impl Allotment {
    /// An empty allotment; units arrive through [`grant`](Self::grant).
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes `quantity` units, all or none. Lock-free: one compare-and-swap,
    /// retried only when another loop changed the counter in between.
    ///
    /// # Panics
    /// If `quantity` is 0 (the request parser refuses it with 400), or if the
    /// ledger says more was taken than ever came in (a bug: oversell).
    #[inline]
    pub fn try_take(&self, quantity: u64) -> Take {
        assert!(quantity > 0, "a take of no unit");
        let mut current = self.left.load(Ordering::Acquire);
        loop {
            let left = units_of(current);
            let Some(after) = left.checked_sub(quantity) else {
                return Take::Empty { left };
            };
            let generation = generation_of(current);
            match self.left.compare_exchange_weak(current, word(generation, after), Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    self.note_taken(quantity);
                    return Take::Taken { left: after, generation };
                }
                Err(now) => {
                    current = now;
                    backoff();
                }
            }
        }
    }

    /// Units of an order that will not be sold after all: refused by the
    /// store, cancelled, or expired unpaid. Each such order gives back once;
    /// the store's status change is what makes it once.
    pub fn give_back(&self, quantity: u64) {
        self.raise(&self.returned, quantity);
    }

    /// Units taken from pool generation `generation` that will not be sold
    /// after all: back only if the units here are still of that generation
    /// (true); units of a pool rebuilt since are dropped (false), since the
    /// rebuild counted them as unsold already.
    pub fn give_back_from(&self, quantity: u64, generation: u16) -> bool {
        if quantity == 0 {
            return true;
        }
        // The ledger first, as every raise does; a dropped return is then
        // ledgered as taken straight away, so the two still balance.
        self.returned.fetch_add(quantity, Ordering::AcqRel);
        let mut current = self.left.load(Ordering::Acquire);
        loop {
            if generation_of(current) != generation {
                self.note_taken(quantity);
                return false;
            }
            let after = units_of(current).checked_add(quantity).filter(|u| *u <= UNITS_MASK);
            let after = after.unwrap_or_else(|| panic!("allotment overflow: {current} + {quantity}"));
            match self.left.compare_exchange_weak(current, word(generation, after), Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    self.assert_ledger();
                    return true;
                }
                Err(now) => {
                    current = now;
                    backoff();
                }
            }
        }
    }

    /// A refill from the stock source arrived.
    pub fn grant(&self, units: u64) {
        self.raise(&self.granted, units);
    }

    /// A refill from generation `generation` of a shared pool arrived. A
    /// newer generation than the units here (the pool was rebuilt) replaces
    /// them in one swap: they were counted again by the rebuild, and are
    /// dropped. Returns the units dropped.
    pub fn grant_in(&self, units: u64, generation: u16) -> u64 {
        let current = self.left.load(Ordering::Acquire);
        if generation_of(current) == generation {
            self.grant(units);
            return 0;
        }
        self.granted.fetch_add(units, Ordering::AcqRel);
        let before = self.left.swap(word(generation, units), Ordering::AcqRel);
        let dropped = units_of(before);
        if dropped > 0 {
            self.note_taken(dropped);
        }
        self.assert_ledger();
        dropped
    }

    /// Takes every unit left, for handing back to the source (shutdown, an
    /// expiring lease, a source that asks for units back). Returns how many.
    /// The generation stays.
    pub fn drain(&self) -> u64 {
        let mut current = self.left.load(Ordering::Acquire);
        loop {
            if units_of(current) == 0 {
                return 0;
            }
            let emptied = word(generation_of(current), 0);
            match self.left.compare_exchange_weak(current, emptied, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    let units = units_of(current);
                    self.note_taken(units);
                    return units;
                }
                Err(now) => {
                    current = now;
                    backoff();
                }
            }
        }
    }

    /// Units left here now; a moment stale once read.
    #[inline]
    pub fn left(&self) -> u64 {
        units_of(self.left.load(Ordering::Acquire))
    }

    /// The pool generation of the units here.
    pub fn generation(&self) -> u16 {
        generation_of(self.left.load(Ordering::Acquire))
    }

    /// The ledger: `(granted, returned, taken)` units since start.
    pub fn ledger(&self) -> (u64, u64, u64) {
        let taken = self.taken.load(Ordering::Acquire);
        (self.granted.load(Ordering::Acquire), self.returned.load(Ordering::Acquire), taken)
    }

    /// The path that lowers the counter: after the swap, everything ever
    /// taken must be covered by what ever came in.
    fn note_taken(&self, units: u64) {
        let taken = self.taken.fetch_add(units, Ordering::AcqRel) + units;
        let came_in = self.granted.load(Ordering::Acquire) + self.returned.load(Ordering::Acquire);
        assert!(taken <= came_in, "allotment oversold: taken {taken} > granted + returned {came_in}");
    }

    /// The paths that raise the counter: ledger first, then `left`, then the
    /// check that `left` is not above what the ledger allows.
    fn raise(&self, ledger: &AtomicU64, units: u64) {
        if units == 0 {
            return;
        }
        ledger.fetch_add(units, Ordering::AcqRel);
        // Adds to the unit bits; the generation bits stay as they are.
        let before = units_of(self.left.fetch_add(units, Ordering::AcqRel));
        assert!(before + units <= UNITS_MASK, "allotment overflow: {before} + {units}");
        self.assert_ledger();
    }

    /// `left + taken <= granted + returned`, read in the order that makes it
    /// hold under concurrency (see the type's doc).
    fn assert_ledger(&self) {
        let taken = self.taken.load(Ordering::Acquire);
        let left = units_of(self.left.load(Ordering::Acquire));
        let came_in = self.granted.load(Ordering::Acquire) + self.returned.load(Ordering::Acquire);
        assert!(
            left + taken <= came_in,
            "allotment above its ledger: left {left} + taken {taken} > granted + returned {came_in}"
        );
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn takes_are_all_or_nothing() {
        let allotment = Allotment::new();
        assert_eq!(allotment.try_take(1), Take::Empty { left: 0 });
        allotment.grant(5);
        assert_eq!(allotment.try_take(3), Take::Taken { left: 2, generation: 0 });
        assert_eq!(allotment.try_take(3), Take::Empty { left: 2 });
        assert_eq!(allotment.try_take(2), Take::Taken { left: 0, generation: 0 });
        allotment.give_back(3);
        assert_eq!(allotment.left(), 3);
        assert_eq!(allotment.ledger(), (5, 3, 5));
    }

    #[test]
    fn drain_empties_and_is_ledgered() {
        let allotment = Allotment::new();
        allotment.grant(7);
        assert_eq!(allotment.try_take(2), Take::Taken { left: 5, generation: 0 });
        assert_eq!(allotment.drain(), 5);
        assert_eq!(allotment.drain(), 0);
        assert_eq!(allotment.left(), 0);
        assert_eq!(allotment.ledger(), (7, 0, 7));
    }

    #[test]
    fn a_new_generation_drops_the_old_units_and_their_returns() {
        let allotment = Allotment::new();
        allotment.grant_in(5, 1);
        assert_eq!(allotment.try_take(2), Take::Taken { left: 3, generation: 1 });
        assert_eq!(allotment.grant_in(2, 1), 0, "the same generation adds");
        assert_eq!(allotment.grant_in(4, 2), 5, "a rebuilt pool's grant drops what was here");
        assert_eq!(allotment.left(), 4);
        assert_eq!(allotment.generation(), 2);
        assert!(!allotment.give_back_from(2, 1), "a unit of the old pool is not sold again");
        assert_eq!(allotment.left(), 4);
        assert!(allotment.give_back_from(1, 2));
        assert_eq!(allotment.try_take(5), Take::Taken { left: 0, generation: 2 });
        assert_eq!(allotment.drain(), 0);
        assert_eq!(allotment.generation(), 2, "draining keeps the generation");
        // granted 5 + 2 + 4, returned 2 + 1; taken 2 + 5 (dropped) + 2 (dropped return) + 5.
        assert_eq!(allotment.ledger(), (11, 3, 14));
    }

    #[test]
    #[should_panic(expected = "a take of no unit")]
    fn a_take_of_nothing_is_a_bug() {
        Allotment::new().try_take(0);
    }

    #[test]
    fn four_threads_take_exactly_the_stock() {
        const UNITS: u64 = 10_000;
        let allotment = Allotment::new();
        allotment.grant(UNITS);
        let taken: u64 = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..4)
                .map(|_| {
                    scope.spawn(|| {
                        let mut mine = 0;
                        // Mixed quantities: 1, 2 and 3 units, until nothing fits.
                        for quantity in (1..=3).cycle() {
                            match allotment.try_take(quantity) {
                                Take::Taken { .. } => mine += quantity,
                                Take::Empty { left: 0 } => break,
                                Take::Empty { .. } => {}
                            }
                        }
                        mine
                    })
                })
                .collect();
            // A worker can only panic through the ledger's assertions, which fail the test.
            workers.into_iter().map(|worker| worker.join().unwrap()).sum()
        });
        assert_eq!(taken, UNITS);
        assert_eq!(allotment.left(), 0);
        assert_eq!(allotment.ledger(), (UNITS, 0, UNITS));
    }
}
