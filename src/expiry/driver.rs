//! How the order writer thread drives the wheel.
//!
//! The wheel is owned by the order writer, the one thread that writes orders,
//! so it needs no lock: the writer inserts every order it commits, cancels
//! every order it marks paid or cancelled, and once per batch calls
//! [`ExpiryDriver::tick`], which takes at most `batch_max` due orders out of
//! the wheel and hands them to an [`Expirer`] (the store and the stock, kept
//! behind a trait so that this module depends on neither).
//!
//! ```text
//! loop {
//!     let timeout = driver.wheel().next_due_ms().map_or(IDLE_MS, |due| due.saturating_sub(now));
//!     let batch = gather(channel, batch_rows_max, timeout);   // orders, payments, cancellations
//!     commit(batch);                    // insert / cancel in the wheel after the commit
//!     driver.tick(clock.now_ms(), &mut store_and_stock)?;    // one expiry batch per round
//! }
//! ```
//!
//! One expiry batch per round keeps the writer at its own pace: a burst of
//! expiries (a whole flash sale's unpaid orders reaching their deadline
//! together) is spread over rounds of `batch_max` instead of stalling new
//! orders behind one huge transaction. [`Tick::progress`] says whether more
//! are due, so the writer can come back at once instead of waiting for input.

use std::fmt;

use super::wheel::{Entry, ExpiryWheel, Progress};

/// Expires orders in the store and returns their units to stock.
pub trait Expirer {
    type Error;

    /// Expires the `due` orders, all or nothing:
    ///
    /// 1. in one store transaction, `expire_orders(ids, now_ms)` moves to
    ///    `expired` those still `pending_payment` with `pay_deadline_ms <=
    ///    now_ms`, and reports exactly those (the others were paid or
    ///    cancelled in the meantime);
    /// 2. after the commit, and only then, adds the reported orders'
    ///    quantities back to their items' stock and clears each item's
    ///    sold-out mark.
    ///
    /// On `Err` nothing may have changed: the driver puts `due` back in the
    /// wheel and they come out again on the next tick.
    ///
    /// # Errors
    /// The store's, when the transaction did not commit.
    fn expire(&mut self, due: &[Entry], now_ms: u64) -> Result<(), Self::Error>;
}

/// What one [`ExpiryDriver::tick`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tick {
    /// Orders handed to the [`Expirer`] (the store may have expired fewer).
    pub expired: usize,
    pub progress: Progress,
}

/// The wheel, with the buffer of due orders allocated once.
pub struct ExpiryDriver {
    wheel: ExpiryWheel,
    due: Vec<Entry>,
    batch_max: usize,
}

impl fmt::Debug for ExpiryDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExpiryDriver").field("wheel", &self.wheel).field("batch_max", &self.batch_max).finish()
    }
}

impl ExpiryDriver {
    /// Drives `wheel`, expiring at most `batch_max` orders per tick.
    ///
    /// # Panics
    /// If `batch_max` is 0: nothing would ever expire.
    pub fn new(wheel: ExpiryWheel, batch_max: usize) -> Self {
        assert!(batch_max > 0, "batch_max must be at least 1");
        Self { wheel, due: Vec::with_capacity(batch_max), batch_max }
    }

    pub fn wheel(&self) -> &ExpiryWheel {
        &self.wheel
    }

    /// For `insert` after an order commits and `cancel` after it is paid or
    /// cancelled (see [`ExpiryWheel`]).
    pub fn wheel_mut(&mut self) -> &mut ExpiryWheel {
        &mut self.wheel
    }

    /// Expires one batch of the orders due at `now_ms`.
    ///
    /// # Errors
    /// The expirer's; the batch is then back in the wheel, still due.
    pub fn tick<E: Expirer>(&mut self, now_ms: u64, expirer: &mut E) -> Result<Tick, E::Error> {
        self.due.clear();
        let progress = self.wheel.advance_max(now_ms, &mut self.due, self.batch_max);
        if self.due.is_empty() {
            return Ok(Tick { expired: 0, progress });
        }
        if let Err(error) = expirer.expire(&self.due, now_ms) {
            for &entry in &self.due {
                // Cannot fail: `advance_max` just took these very orders out,
                // freeing their ids and places, and nothing was inserted since
                // (the expirer has no access to the wheel).
                self.wheel.insert(entry).expect("a just-expired order goes back in its place");
            }
            return Err(error);
        }
        Ok(Tick { expired: self.due.len(), progress })
    }
}
