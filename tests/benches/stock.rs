//! The hot path of the stock in nanoseconds per operation:
//! `cargo bench --bench stock` (in the server: `tests/benches/hot_path.rs`).
//!
//! Single-threaded, so these are the uncontended costs: one loop taking from
//! a hot item, refusing a sold-out one, and making order ids.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use seckill::stock::{Allotment, EmbeddedSource, OrderIds, Outcome, Stock, Take, order_id::ORDER_ID_EPOCH_MS};

/// More units than any run takes, so the hot item never sells out.
const UNITS: u64 = 1 << 60;

fn stock(c: &mut Criterion) {
    let source = Arc::new(EmbeddedSource::new(1_024));
    source.set(7, UNITS);
    source.set(8, 0);
    let stock = Stock::new(1_024, source);
    let (hot, gone) = (stock.add(7).expect("room"), stock.add(8).expect("room"));
    stock.refill(hot);
    stock.refill(gone);
    let allotment = Allotment::new();
    allotment.grant(UNITS);
    let now_ms = ORDER_ID_EPOCH_MS + 1_000;
    let ids = OrderIds::new(1, now_ms).expect("fits");

    c.bench_function("allotment_try_take", |b| {
        b.iter(|| black_box(matches!(allotment.try_take(black_box(1)), Take::Taken { .. })))
    });
    // `black_box` of the two-byte `Outcome` itself costs a store-forwarding
    // stall (about 8 ns) that the server never pays: keep a bool instead.
    c.bench_function("stock_take_hot_item", |b| {
        b.iter(|| black_box(matches!(stock.take(black_box(hot), 1), Outcome::Taken { .. })))
    });
    c.bench_function("stock_take_sold_out", |b| {
        b.iter(|| black_box(stock.take(black_box(gone), 1) == Outcome::SoldOut))
    });
    c.bench_function("stock_is_sold_out", |b| b.iter(|| black_box(stock.is_sold_out(black_box(gone)))));
    c.bench_function("stock_slot_lookup", |b| b.iter(|| black_box(stock.slot(black_box(7)))));
    // A fixed clock: every id after the first 1,024 borrows ahead, the worst case.
    c.bench_function("order_ids_next", |b| b.iter(|| black_box(ids.next(black_box(now_ms)))));
}

criterion_group!(benches, stock);
criterion_main!(benches);
