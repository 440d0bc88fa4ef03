//! The hot path of the stock allocates nothing: a counting allocator proves
//! it for takes (sold, refused, busy), the sold-out check, the item lookup and
//! order ids.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;

use seckill::stock::{Allotment, EmbeddedSource, OrderIds, Outcome, Stock, StockSource, order_id::ORDER_ID_EPOCH_MS};

/// Counts the allocations of the thread that set `COUNTING`, so that the test
/// harness's own threads do not disturb the count.
struct Counting;

thread_local! {
    // `const` and no destructor: safe to touch from inside the allocator.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn note_allocation() {
    if COUNTING.with(Cell::get) {
        ALLOCATIONS.with(|count| count.set(count.get() + 1));
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator, which
// upholds the `GlobalAlloc` contract; counting only touches thread-locals
// that need no allocation.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: the caller's guarantees for `layout` are passed on as they are.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        // SAFETY: `ptr` and `layout` come from this allocator, which is `System`'s.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` and `layout` come from this allocator, which is `System`'s.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by `work` on this thread.
fn allocations_in(work: impl FnOnce()) -> u64 {
    ALLOCATIONS.with(|count| count.set(0));
    COUNTING.with(|counting| counting.set(true));
    work();
    COUNTING.with(|counting| counting.set(false));
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn the_counter_sees_allocations() {
    // Without this, a broken counter would pass the test below.
    assert_eq!(allocations_in(|| drop(std::hint::black_box(vec![1_u8; 16]))), 1);
}

/// A source with a pool that never grants before being asked, so that takes
/// find the allotment short and answer busy.
struct Pool;

impl StockSource for Pool {
    fn refill(&self, _item: u64, _left_here: u64) -> seckill::stock::Refill {
        seckill::stock::Refill { units: 0, beyond: seckill::stock::Beyond::Pool }
    }
    fn release(&self, _item: u64, _units: u64) {}
    fn returned(&self, _item: u64, _units: u64) -> seckill::stock::Return {
        seckill::stock::Return::Local
    }
}

#[test]
fn the_hot_path_allocates_nothing() {
    const ROUNDS: u64 = 10_000;
    let source = Arc::new(EmbeddedSource::new(4));
    source.set(1, ROUNDS);
    source.set(2, 0);
    let stock = Stock::new(4, source);
    let (hot, gone) = (stock.add(1).expect("room"), stock.add(2).expect("room"));
    stock.refill(hot);
    stock.refill(gone);
    let busy_stock = Stock::new(1, Arc::new(Pool));
    let busy = busy_stock.add(3).expect("room");
    let allotment = Allotment::new();
    allotment.grant(ROUNDS);
    let now_ms = ORDER_ID_EPOCH_MS + 1_000;
    let ids = OrderIds::new(1, now_ms).expect("fits");

    let allocations = allocations_in(|| {
        for round in 0..ROUNDS {
            assert_eq!(stock.slot(1), Some(hot));
            assert!(matches!(stock.take(hot, 1), Outcome::Taken { .. }));
            assert!(stock.is_sold_out(gone));
            assert_eq!(stock.take(gone, 1), Outcome::SoldOut);
            assert!(matches!(busy_stock.take(busy, 1), Outcome::Busy { .. }));
            assert!(matches!(allotment.try_take(1), seckill::stock::Take::Taken { .. }));
            ids.next(now_ms + round / 100).expect("time in range");
        }
    });
    assert_eq!(allocations, 0);
    assert!(stock.is_sold_out(hot), "the hot item sold out on the last round");
}
