//! The stock of the sale on this instance: which items are sold out, how many
//! units each event loop may still sell without asking anyone, where more come
//! from, and the ids of the orders they become.
//!
//! # The hot path
//!
//! After the contract's earlier checks (session, limits, body, path, item,
//! window, per-user limit), a buy does, with `slot = stock.slot(item_id)`:
//!
//! 1. [`Stock::take`]`(slot, quantity)`: first the **sold-out bitmap** (the
//!    seeds' "isOver" memory mark: one relaxed load; a marked item is refused
//!    with 410 at once), then one compare-and-swap on the item's
//!    **allotment**, all or nothing. [`Outcome::Taken`] goes on,
//!    [`Outcome::SoldOut`] is 410, [`Outcome::Busy`] is 503 with a short
//!    `Retry-After` (§3: another instance may still hold units).
//! 2. [`OrderIds::next`]`(now_ms)`: one compare-and-swap.
//! 3. The order goes to the writer. If the store refuses it, or the order is
//!    later cancelled or expires unpaid, [`Stock::give_back`] returns its units
//!    exactly once (the store's status change is the "once") and clears the
//!    sold-out mark.
//!
//! None of it blocks, locks or allocates (`tests/alloc.rs` counts).
//!
//! # Allotments, sources and refills: the seam
//!
//! Loops sell only from their instance's [`Allotment`] of each item. Units
//! reach it from a [`StockSource`], whose calls may block and so are never
//! made on a loop: start-up, admin, the order writer and a *refiller* thread
//! call them, through [`Stock::refill`], [`Stock::refill_wanted`],
//! [`Stock::renew`], [`Stock::give_back`] and [`Stock::release_all`].
//!
//! Every refill answer says what lies [`Beyond`] the allotment, and the item
//! keeps it; that is all a loop needs to answer a short allotment without
//! asking anyone:
//! - `Nothing` — the allotment is all there is: 410, and the item is marked
//!   sold out once it is empty;
//! - `Pool` or `Elsewhere` — more may come: 503, and the loop flags the item
//!   in a second bitmap of wanted refills; the one loop whose flag was new is
//!   told to wake the refiller (`wake_refiller`), which drains the flags with
//!   [`Stock::refill_wanted`]. A take that leaves the allotment below a
//!   quarter of its last grant flags it too, so the refill usually lands
//!   before the allotment runs dry.
//!
//! **Embedded** ([`EmbeddedSource`], the default): the first refill grants the
//! item's whole remaining stock with `beyond: Nothing`. The allotment *is* the
//! stock: empty means sold out, refills never happen on the buy path, returned
//! units go straight back into the allotment, and the refiller only runs after
//! an admin stock change (`EmbeddedSource::add`, then [`Stock::refill`]).
//!
//! **Leased** ([`LeasedSource`], Redis + MySQL; see its module doc): the
//! same trait, with the pool in Redis behind [`SharedPool`]:
//! - `refill` is one Lua call on one shard of the item's pool (another only
//!   if that one had nothing), leasing a chunk of `min(lease_chunk_max, pool,
//!   max(ceil(pool / (2 × holders)), ceil(lease_chunk_max / 8)))` so the last units are not stranded on one
//!   instance; it answers `Pool` while a shard has units, `Elsewhere` when
//!   every shard is empty but other leases hold units (503, keep asking),
//!   `Nothing` when no lease holds any (410);
//! - `renew` (the refiller, every third of `lease_ms`) shrinks the leases by
//!   what sold and extends them; it answers [`Renewal::Revoked`] when a lease
//!   is gone (it lapsed while this instance was paused, or the pool was
//!   rebuilt after Redis lost its data) or overdue here, and the units here
//!   are dropped unsold; [`Renewal::GiveBack`] when nothing sold since the
//!   last renewal, and the units go back to the pool for busier instances;
//! - `returned` puts an order's units back into the pool and announces them
//!   (pub/sub), answering [`Return::Pooled`]: every instance's mark clears and
//!   the units are sellable everywhere, not just here;
//! - `release` hands back what is left at shutdown ([`Stock::release_all`]).
//!
//! A buy that finds the allotment short while the pool has units is parked
//! and a worker refills ([`Stock::refill_until`]) before the buy runs again
//! once: the loop still never calls the source.
//!
//! **Evalsha** ([`EvalshaSource`], the conventional design kept for
//! comparison; see its module doc): no allotment at all. Its refills grant
//! nothing, returned units go back into one counter per item in Redis, and
//! the buy skips [`Stock::take`]: the loop sends one script per request to
//! the cache's thread ([`SharedCounter::take`], which never waits) and parks.
//!
//! # Invariants
//!
//! - An allotment's `left` is never negative and never above
//!   `granted + returned - taken`; both are asserted, on the path that lowers
//!   it and on the paths that raise it (see [`Allotment`]).
//! - No oversell on this instance: units taken never exceed units granted or
//!   returned (loom model test, proptest, stress test).
//! - The sold-out mark is never left on an item that has units here or
//!   beyond: whoever adds units clears it after adding, and whoever marks
//!   re-checks after marking. A stale mark is read for a moment at most.
//! - Order ids never repeat, across loops, instances and restarts, and
//!   increase on each instance even when the clock steps back ([`order_id`]).
//! - Memory is fixed at start-up: `items_max` slots of 128 bytes, two bits
//!   each in the bitmaps, an index of twice `items_max` entries.
//!
//! # Code map
//! - `allotment` — the lock-free counter and its ledger;
//! - `bits` — the slot bitmaps (sold out, refills wanted);
//! - `source` — the [`StockSource`] seam and the [`EmbeddedSource`];
//! - [`leased`] — leases from a sharded pool; [`evalsha`] — one script per buy;
//! - `table` — [`Stock`]: the items, their lookup, the decisions;
//! - [`order_id`] — the order id layout and generator;
//! - `sync` — std atomics, or loom's when model checking.

#![forbid(unsafe_code)]

mod allotment;
mod bits;
pub mod evalsha;
pub mod leased;
pub mod order_id;
mod source;
mod table;

#[cfg(all(test, loom))]
mod loom_tests;
#[cfg(all(test, not(loom)))]
mod tests;

pub use allotment::{Allotment, Take};
pub use bits::{SlotBits, SoldOut};
pub use evalsha::{Counted, EvalshaSource, SharedCounter};
pub use leased::{LeaseSettings, LeasedSource, SharedPool};
pub use order_id::{OrderIdError, OrderIdParts, OrderIds};
pub use source::{Beyond, EmbeddedSource, Refill, Renewal, Return, Seeding, SourceError, StockSource};
pub use table::{ItemStock, Outcome, Slot, Stock, StockError};

/// An item's id, as the store's `ItemId`.
pub type ItemId = u64;
