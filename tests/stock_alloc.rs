//! The hot path of the stock allocates nothing: a counting allocator proves
//! it for takes (sold, refused, busy), the sold-out check, the item lookup and
//! order ids.

use std::sync::Arc;

use seckill::stock::{Allotment, EmbeddedSource, OrderIds, Outcome, Stock, StockSource, order_id::ORDER_ID_EPOCH_MS};

mod counting_alloc;
use counting_alloc::allocations_in;

/// A source with a pool that never grants before being asked, so that takes
/// find the allotment short and answer busy.
struct Pool;

impl StockSource for Pool {
    fn refill(&self, _item: u64, _left_here: u64) -> seckill::stock::Refill {
        seckill::stock::Refill { units: 0, beyond: seckill::stock::Beyond::Pool }
    }
    fn release(&self, _item: u64, _units: u64) {}
    fn returned(&self, _item: u64, _units: u64, _epoch: Option<u64>) -> seckill::stock::Return {
        seckill::stock::Return::Local
    }
    fn seed(
        &self,
        _item: u64,
        _units: u64,
        _seeding: seckill::stock::Seeding,
    ) -> Result<(), seckill::stock::SourceError> {
        Ok(())
    }
    fn add_units(&self, _item: u64, _units: u64) -> Result<(), seckill::stock::SourceError> {
        Ok(())
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
