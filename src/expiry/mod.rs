//! The payment window: unpaid orders expire, and their stock comes back once.
//!
//! Contract (api.md §3, §5 promise 6): an unpaid order expires at its
//! `pay_deadline_ms`; its units are on sale again within 1 s of that, exactly
//! once, and a sold-out item becomes active again; a payment racing the expiry
//! ends in exactly one of paid or expired.
//!
//! - [`wheel`]: [`ExpiryWheel`], a hierarchical timing wheel of the pending
//!   orders keyed by deadline, so that expiring costs the orders that are due,
//!   not a scan of every pending order per tick.
//! - [`driver`]: [`ExpiryDriver`], how the order writer calls the wheel once
//!   per batch, and [`Expirer`], the seam to the store and the stock.
//! - `index`: the fixed-size `order_id` → node table behind `cancel`.
//!
//! # Granularity and lateness
//!
//! Deadlines are rounded up to slots of `slot_ms` (100 ms by default): an
//! order never comes out before its deadline and at most `slot_ms - 1` ms
//! after it, given a call to `advance` by then. The writer calls it once per
//! batch and waits no longer than [`ExpiryWheel::next_due_ms`], so the stock
//! is back within `slot_ms` + one batch (gather + commit), far inside 1 s.
//!
//! # Bounds
//!
//! Everything is allocated at start-up: `pending_max` nodes of 48 bytes, an
//! index of 2 to 4 buckets of 8 bytes per order, 385 list heads, and the
//! driver's buffer of `batch_max` entries. Nothing is allocated afterwards
//! (a counting-allocator test proves it). At `pending_max` pending orders
//! `insert` fails with [`InsertError::Full`], which the hot path answers with
//! 503 before taking stock. `insert`, `cancel` are O(1); `advance` costs one
//! step per occupied slot that came due plus one per order returned or moved
//! down a level, and an order moves down at most [`wheel::LEVELS`] times.
//!
//! # Cancel: an index, not tombstones
//!
//! Paid and cancelled orders leave the wheel through an `order_id` → node
//! table and doubly linked slot lists, not a tombstone set checked at expiry.
//! A tombstone would keep the order's place (and count towards `pending_max`)
//! until its deadline, hours away, and the set itself would need a bound; the
//! index frees the place at once, makes `len` exact, and also detects a
//! duplicate insert. It costs 16 to 32 bytes per order and one short probe
//! (at most half full) per operation.
//!
//! # Exactly once
//!
//! The wheel returns each inserted order at most once, but the guarantee lives
//! in the store, where the writer thread serialises everything:
//! - expiry is a transition `pending_payment → expired` that the store makes
//!   only for orders still pending; `expire_orders(ids, now)` reports just
//!   those, and only their units go back to stock, after the commit. An order
//!   that was paid but not yet cancelled in the wheel is simply not reported.
//! - payment is `pending_payment → paid` only while `now < pay_deadline_ms`;
//!   from the deadline on it is 409 `order_expired`, whatever the wheel has
//!   done. Both transitions run on the one writer thread, so a payment and
//!   the expiry of the same order cannot both succeed.
//! - if the store fails, the driver puts the batch back into the wheel, so no
//!   due order is forgotten; after a crash, [`ExpiryWheel::rebuild`] refills
//!   the wheel from the orders the store still has pending, and stock is
//!   recomputed from the store.

pub mod driver;
mod index;
pub mod wheel;

pub use driver::{Expirer, ExpiryDriver, Tick};
pub use wheel::{Entry, ExpiryWheel, InsertError, Progress, WheelConfig, WheelStats};

#[cfg(test)]
mod tests;
