//! The seam between the allotments and wherever the stock really lives: the
//! [`StockSource`] trait, and the embedded source that grants everything.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::ItemId;

/// What lies beyond this instance's allotment, as the source last saw it.
/// It decides what a loop answers when the allotment is short.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Beyond {
    /// The source may grant more: a short allotment asks for a refill and
    /// answers 503 with a short Retry-After meanwhile.
    Pool = 0,
    /// The source is empty but other instances still hold units (leases not
    /// yet sold or expired): 503 with a short Retry-After, and keep asking.
    Elsewhere = 1,
    /// No unit exists beyond this allotment: a short allotment is final, 410.
    Nothing = 2,
}

impl Beyond {
    pub(super) fn from_u8(raw: u8) -> Self {
        match raw {
            0 => Self::Pool,
            1 => Self::Elsewhere,
            // Only the three values above are ever stored (`as u8`).
            _ => Self::Nothing,
        }
    }
}

/// A source's answer to [`StockSource::refill`]: `units` more for the
/// allotment (possibly 0), and what is left beyond them.
///
/// The three answers of the design brief are: `Granted(n)` = `{ units: n,
/// beyond: Pool }`, `Busy` = `{ units: 0, beyond: Elsewhere }`, `Exhausted` =
/// `{ units: 0, beyond: Nothing }`. The struct also says what a grant leaves
/// behind, which the embedded source needs: it grants the whole stock at once,
/// `{ units: all, beyond: Nothing }`, so that an empty allotment is sold out
/// at once rather than after a pointless refill round trip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refill {
    pub units: u64,
    pub beyond: Beyond,
}

/// Where the units of an order that will not be sold after all go
/// (refused by the store, cancelled, expired).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Return {
    /// Into this instance's allotment.
    Local,
    /// The source took them into the shared pool (and told the other
    /// instances, whose sold-out marks clear): this allotment is unchanged.
    Pooled,
}

/// The answer to [`StockSource::renew`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Renewal {
    /// The units here stay this instance's.
    Kept,
    /// The lease was fenced (it expired while this instance was paused, or the
    /// pool was rebuilt after the cache lost its data): the units here are no
    /// longer this instance's to sell and are dropped without release.
    Revoked,
    /// None of the units here sold since the last renewal: they are handed
    /// back ([`StockSource::release`]), so that an instance with buyers can
    /// sell them rather than wait for this idle one; a new buyer here gets
    /// a refill.
    GiveBack,
}

/// How [`StockSource::seed`] treats a pool that exists already.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seeding {
    /// Start-up, or another instance changed the item: a shared pool that
    /// exists is the truth and is left alone, so instances starting together
    /// seed it once between them.
    IfAbsent,
    /// This instance changed the item's stock (a new total, reconcile, a
    /// rebuild): the pool is replaced and every lease on it is fenced.
    Replace,
}

/// A source that could not be reached (the shared cache is down): the
/// caller answers 503 and tries again later.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceError(pub String);

impl std::fmt::Display for SourceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "stock source unavailable: {}", self.0)
    }
}

impl std::error::Error for SourceError {}

/// Where an instance's allotments come from, and go back to.
///
/// Every method may block (a network round trip for the distributed source),
/// so none is ever called on an event loop: [`Stock`](super::Stock) calls them
/// from start-up, the refiller thread, admin and order-writer threads. Loops
/// only read the allotment and the bits the refiller leaves for them.
pub trait StockSource: Send + Sync {
    /// More units of `item` for this instance, which holds `left_here`. The
    /// source sizes the grant: the embedded source grants everything; the
    /// distributed one leases a chunk that shrinks as the pool runs low.
    fn refill(&self, item: ItemId, left_here: u64) -> Refill;

    /// Units of `item` this instance gives up unsold (shutdown, a lease it
    /// stops renewing): sellable again by whoever refills next.
    fn release(&self, item: ItemId, units: u64);

    /// Units of an order of `item` that will not be sold after all; `epoch`
    /// is the pool generation they came from (a refused order), `None` for
    /// units free whatever the generation (a cancelled or expired order).
    fn returned(&self, item: ItemId, units: u64, epoch: Option<u64>) -> Return;

    /// Keeps this instance's hold on `left_here` units of `item` alive; called
    /// by the refiller a few times per lease period. Sources without leases
    /// keep everything, which is the default.
    fn renew(&self, item: ItemId, left_here: u64) -> Renewal {
        let _ = (item, left_here);
        Renewal::Kept
    }

    /// The units of `item` not yet in any allotment become `units` (the
    /// store's stock left: `total - pending - paid`), as `seeding` says.
    fn seed(&self, item: ItemId, units: u64, seeding: Seeding) -> Result<(), SourceError>;

    /// Whether other instances sell from the same stock (what is left here
    /// is not what is left).
    fn is_shared(&self) -> bool {
        false
    }

    /// Another instance announced units of `item` back in the shared pool:
    /// shards this source saw empty may have some again.
    fn units_returned(&self, item: ItemId) {
        let _ = item;
    }

    /// Takes `units` of `item` out of the source for good (an admin stock
    /// decrease), all or none: false if it holds fewer. The embedded source
    /// has granted everything to the allotment, where the decrease is taken.
    fn withdraw(&self, item: ItemId, units: u64) -> Result<bool, SourceError> {
        let _ = (item, units);
        Ok(false)
    }

    /// `units` more of `item` (an admin stock increase); the next refill,
    /// here or elsewhere, grants them.
    fn add_units(&self, item: ItemId, units: u64) -> Result<(), SourceError>;

    /// The generation of `item`'s shared pool that this source's last
    /// refill came from (the store's `items.pool_epoch`); `None` for a
    /// source without generations, whose orders are not fenced.
    fn epoch(&self, item: ItemId) -> Option<u64> {
        let _ = item;
        None
    }

    /// A shared source's count of `item`'s units in no order: its pool and
    /// every allotment leased from it (for reconcile's drift report).
    /// `None` if it cannot tell (lost, unreachable) or is not shared.
    fn shared_units(&self, item: ItemId) -> Option<u64> {
        let _ = item;
        None
    }
}

/// The single-instance source: the stock of each item lives in this process,
/// and the first refill grants all of it, so the instance's allotment *is* the
/// whole stock. An empty allotment is then sold out without asking anyone,
/// returned units go straight back into the allotment, and nothing ever
/// expires. Its own counter holds the units not yet granted: the stock loaded
/// at start-up and admin additions, until the next refill moves them over.
///
/// A mutex, not atomics: it is touched only off the event loops (start-up,
/// admin, the refiller), rarely, and never while blocking on anything else.
#[derive(Debug, Default)]
pub struct EmbeddedSource {
    ungranted: Mutex<HashMap<ItemId, u64>>,
}

impl EmbeddedSource {
    /// Room for `items_max` items without reallocating.
    pub fn new(items_max: usize) -> Self {
        Self { ungranted: Mutex::new(HashMap::with_capacity(items_max)) }
    }

    /// Units of `item` not yet granted become `units` (start-up: the stock
    /// left in the store, `total - pending - paid`).
    pub fn set(&self, item: ItemId, units: u64) {
        self.counters().insert(item, units);
    }

    /// `units` more of `item` (an admin stock delta); the next refill grants them.
    pub fn add(&self, item: ItemId, units: u64) {
        let mut counters = self.counters();
        let ungranted = counters.entry(item).or_insert(0);
        // Cannot overflow: the store keeps stock in SQL integers (at most
        // i64::MAX), and the sum of two of them fits in a u64.
        *ungranted = ungranted.checked_add(units).expect("stock beyond u64 units");
    }

    /// Units of `item` not yet granted.
    pub fn ungranted(&self, item: ItemId) -> u64 {
        self.counters().get(&item).copied().unwrap_or(0)
    }

    fn counters(&self) -> MutexGuard<'_, HashMap<ItemId, u64>> {
        // Every critical section is a map operation that cannot leave the map
        // half-updated, so a panic elsewhere while holding it is harmless.
        self.ungranted.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl StockSource for EmbeddedSource {
    fn refill(&self, item: ItemId, _left_here: u64) -> Refill {
        let units = self.counters().get_mut(&item).map_or(0, std::mem::take);
        Refill { units, beyond: Beyond::Nothing }
    }

    fn release(&self, item: ItemId, units: u64) {
        self.add(item, units);
    }

    fn returned(&self, _item: ItemId, _units: u64, _epoch: Option<u64>) -> Return {
        Return::Local
    }

    /// Only this process holds the stock, so both seedings set it.
    fn seed(&self, item: ItemId, units: u64, _seeding: Seeding) -> Result<(), SourceError> {
        self.set(item, units);
        Ok(())
    }

    fn add_units(&self, item: ItemId, units: u64) -> Result<(), SourceError> {
        self.add(item, units);
        Ok(())
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn grants_everything_at_once_then_nothing() {
        let source = EmbeddedSource::new(4);
        source.set(7, 500);
        assert_eq!(source.refill(7, 0), Refill { units: 500, beyond: Beyond::Nothing });
        assert_eq!(source.refill(7, 500), Refill { units: 0, beyond: Beyond::Nothing });
        assert_eq!(source.refill(8, 0), Refill { units: 0, beyond: Beyond::Nothing }, "unknown item");
    }

    #[test]
    fn additions_and_releases_are_granted_next() {
        let source = EmbeddedSource::new(4);
        source.set(7, 10);
        source.refill(7, 0);
        source.add(7, 5);
        source.release(7, 3);
        assert_eq!(source.ungranted(7), 8);
        assert_eq!(source.refill(7, 0).units, 8);
        assert_eq!(source.ungranted(7), 0);
    }

    #[test]
    fn returns_stay_local_and_leases_never_expire() {
        let source = EmbeddedSource::new(1);
        assert_eq!(source.returned(7, 2, None), Return::Local);
        assert_eq!(source.renew(7, 2), Renewal::Kept);
    }

    #[test]
    fn beyond_round_trips_through_u8() {
        for beyond in [Beyond::Pool, Beyond::Elsewhere, Beyond::Nothing] {
            assert_eq!(Beyond::from_u8(beyond as u8), beyond);
        }
    }
}
