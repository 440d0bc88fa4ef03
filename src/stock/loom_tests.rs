//! Every interleaving of the allotment's, the sold-out mark's and the order
//! ids' compare-and-swaps, explored by loom:
//! `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test --release --lib loom`.

use loom::sync::Arc;
use loom::thread;

use super::*;

fn taken(take: Take, quantity: u64) -> u64 {
    if let Take::Taken { .. } = take { quantity } else { 0 }
}

/// The allotment model shared by the two tests below: `taker` takes 2 then 1,
/// `returner` takes 1 and gives it back, `granter` (if any) grants 1, on an
/// allotment of 2 units. No interleaving sells more than was granted and
/// returned; `left` never goes negative (it would wrap, and the ledger
/// assertions inside the allotment would fire); at the end the ledger
/// balances exactly: sold + left == total.
fn allotment_model(with_granter: bool) {
    let allotment = Arc::new(Allotment::new());
    allotment.grant(2);
    let taker = {
        let allotment = allotment.clone();
        thread::spawn(move || taken(allotment.try_take(2), 2) + taken(allotment.try_take(1), 1))
    };
    let granter = with_granter.then(|| {
        let allotment = allotment.clone();
        thread::spawn(move || allotment.grant(1))
    });
    let returner_took = taken(allotment.try_take(1), 1);
    if returner_took > 0 {
        allotment.give_back(returner_took);
    }
    // A thread panics only through the ledger's assertions, which fail the model.
    let taken_units = taker.join().unwrap();
    if let Some(granter) = granter {
        granter.join().unwrap();
    }

    let (granted, returned) = (2 + u64::from(with_granter), returner_took);
    let sold = taken_units + returner_took - returned;
    assert!(taken_units + returner_took <= granted + returned, "oversold");
    assert_eq!(sold + allotment.left(), granted, "conservation");
    assert_eq!(allotment.ledger(), (granted, returned, taken_units + returner_took));
}

/// Two threads, every interleaving.
#[test]
fn loom_allotment_takes_and_returns_never_oversell() {
    loom::model(|| allotment_model(false));
}

/// Three threads. Exhaustive exploration of three threads' ~40 atomic steps
/// does not finish in minutes, so this one bounds preemptions at 3, which
/// (as loom's documentation notes) finds nearly all real bugs.
#[test]
fn loom_allotment_takes_returns_and_grants_never_oversell() {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(|| allotment_model(true));
}

/// The take that empties an item marks it sold out while an order's units
/// come back: whatever the interleaving, the item is not left marked with a
/// unit in it.
#[test]
fn loom_a_return_is_never_hidden_by_the_sold_out_mark() {
    loom::model(|| {
        let source = std::sync::Arc::new(EmbeddedSource::new(1));
        source.set(1, 2);
        let stock = Arc::new(Stock::new(1, source));
        // `add` and `refill` lock std mutexes: done before any thread starts.
        let slot = stock.add(1).expect("room for one item");
        stock.refill(slot);
        // An earlier order holds one unit, which it will give back.
        assert!(matches!(stock.take(slot, 1), Outcome::Taken { .. }));
        let returner = {
            let stock = stock.clone();
            thread::spawn(move || stock.give_back(slot, 1, None))
        };
        let last = stock.take(slot, 1);
        // A thread panics only through the ledger's assertions, which fail the model.
        returner.join().unwrap();
        assert!(matches!(last, Outcome::Taken { .. }), "a unit was there throughout");
        assert_eq!(stock.item(slot).allotment().left(), 1);
        assert!(!stock.is_sold_out(slot), "marked sold out with a unit left");
    });
}

/// Two loops take two ids each at the same millisecond: four distinct ids,
/// increasing on each loop.
#[test]
fn loom_order_ids_are_distinct() {
    loom::model(|| {
        const NOW_MS: u64 = order_id::ORDER_ID_EPOCH_MS + 1;
        let ids = Arc::new(OrderIds::new(1, NOW_MS).expect("fits"));
        let two = |ids: &OrderIds| {
            let first = ids.next(NOW_MS).expect("time in range");
            let second = ids.next(NOW_MS).expect("time in range");
            assert!(first < second);
            [first, second]
        };
        let peer = {
            let ids = ids.clone();
            thread::spawn(move || two(&ids))
        };
        let mine = two(&ids);
        // A thread panics only through the assertions in `two`, which fail the model.
        let theirs = peer.join().unwrap();
        let mut all = [mine, theirs].concat();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 4);
    });
}
