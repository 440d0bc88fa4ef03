//! Every item's stock on this instance: a table sized at start-up, found by
//! item id without locks, and the decisions of the hot path.

use std::sync::{Arc, Mutex, PoisonError};

use super::ItemId;
use super::allotment::{Allotment, Take};
use super::bits::SlotBits;
use super::source::{Beyond, Refill, Renewal, Return, StockSource};
use crate::sync::{AtomicU8, AtomicU32, AtomicU64, Ordering};

/// The epoch an order carries when its units came from a pool generation
/// older than the item's latest known one: it matches no epoch the store
/// has, so the store fences the order.
pub const STALE_EPOCH: u64 = u64::MAX;

/// Most refills a parked buy waits for: a leased source grants from one
/// shard per refill, and a buy of several units may need several.
pub const REFILLS_PER_BUY_MAX: usize = 4;

/// An item's dense index in the table, `0..items_max`: what the hot path
/// carries once the item id has been looked up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Slot(u32);

impl Slot {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// What the hot path answers for a take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The units are the order's. If `wake_refiller`, this take crossed the
    /// allotment's low-water mark and the caller should wake the refiller.
    /// `epoch`: the generation of the shared pool they came from, for the
    /// order (`NewOrder::pool_epoch`); `None` for a source without generations.
    Taken { wake_refiller: bool, epoch: Option<u64> },
    /// Fewer units than asked are left anywhere: 410 `sold_out`.
    SoldOut,
    /// Too few here, but others may have more: 503 with a short Retry-After.
    /// If `wake_refiller`, this call asked for the refill: wake the refiller.
    Busy { wake_refiller: bool },
}

/// Why an item cannot be added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StockError {
    /// Every one of the `items_max` slots is taken.
    TableFull { items_max: usize },
    /// The stock source (the shared pool) cannot be reached.
    SourceUnavailable,
}

impl std::fmt::Display for StockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TableFull { items_max } => write!(f, "the stock table is full ({items_max} items)"),
            Self::SourceUnavailable => f.write_str("the stock source cannot be reached"),
        }
    }
}

impl std::error::Error for StockError {}

/// One item's stock on this instance. Aligned to its own cache lines (as the
/// rate limiter's groups are) so that loops hammering one hot item do not
/// slow down the items beside it.
#[derive(Debug, Default)]
#[cfg_attr(not(loom), repr(align(128)))]
pub struct ItemStock {
    /// Written once, before the slot is published in the index.
    id: AtomicU64,
    allotment: Allotment,
    /// A [`Beyond`], as the last refill or renewal reported it.
    beyond: AtomicU8,
    /// A take that leaves fewer units than this asks for a refill ahead of
    /// need; 0 when the source has nothing more to grant.
    low_water: AtomicU64,
    /// The newest generation of the item's shared pool this instance knows,
    /// plus one; 0 for a source without generations. Stored before the
    /// allotment's word takes the generation, so a take that read the word
    /// finds here at least the epoch of the units it took.
    epoch_plus_one: AtomicU64,
}

impl ItemStock {
    pub fn id(&self) -> ItemId {
        self.id.load(Ordering::Relaxed)
    }

    pub fn allotment(&self) -> &Allotment {
        &self.allotment
    }

    pub fn beyond(&self) -> Beyond {
        Beyond::from_u8(self.beyond.load(Ordering::Acquire))
    }

    /// The epoch for an order whose units came from `generation` (the low
    /// 16 bits of an epoch, as the allotment keeps it).
    fn epoch_of(&self, generation: u16) -> Option<u64> {
        let epoch = self.epoch_plus_one.load(Ordering::Acquire).checked_sub(1)?;
        // A different generation is an older one (generations only grow):
        // 65,536 rebuilds during one order's flight would be needed to alias.
        Some(if epoch as u16 == generation { epoch } else { STALE_EPOCH })
    }

    /// Whether units of an order of `epoch` may go back into this
    /// allotment or the pool: not if a rebuild since counted them again.
    fn is_current(&self, epoch: Option<u64>) -> bool {
        match (epoch, self.epoch_plus_one.load(Ordering::Acquire).checked_sub(1)) {
            (Some(order), Some(now)) => order == now,
            _ => true,
        }
    }
}

/// The stock of every item on this instance. Built once at start-up with
/// room for `items_max` items and shared by every loop (in an `Arc`).
#[derive(Debug)]
pub struct Stock {
    items: Box<[ItemStock]>,
    /// Open addressing over item ids, at most half full: 0 is an empty
    /// entry, any other value a slot + 1. Entries are written once.
    index: Box<[AtomicU32]>,
    sold_out: SlotBits,
    refill_wanted: SlotBits,
    /// Slots in use. Only adding an item takes the lock; lookups never do.
    used: Mutex<u32>,
    /// One refill at a time (the refiller, workers refilling for a parked
    /// buy, start-up and admin): two racing refills could store their
    /// `beyond` answers in the wrong order.
    refilling: Mutex<()>,
    source: Arc<dyn StockSource>,
}

impl std::fmt::Debug for dyn StockSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("dyn StockSource")
    }
}

impl Stock {
    /// Room for `items_max` items (at most `u32::MAX / 2`), all memory
    /// allocated now: `items_max` × 128 bytes, plus the index and two bits
    /// per item.
    pub fn new(items_max: usize, source: Arc<dyn StockSource>) -> Self {
        assert!(items_max <= (u32::MAX / 2) as usize, "items_max {items_max} too large");
        let index_len = (items_max * 2).next_power_of_two().max(2);
        Self {
            items: (0..items_max).map(|_| ItemStock::default()).collect(),
            index: (0..index_len).map(|_| AtomicU32::new(0)).collect(),
            sold_out: SlotBits::new(items_max),
            refill_wanted: SlotBits::new(items_max),
            used: Mutex::new(0),
            refilling: Mutex::new(()),
            source,
        }
    }

    /// The slot of `item`, if it was added. Lock-free: a few acquire loads.
    #[inline]
    pub fn slot(&self, item: ItemId) -> Option<Slot> {
        let mask = self.index.len() - 1;
        let mut at = index_hash(item, mask);
        loop {
            let entry = self.index[at].load(Ordering::Acquire);
            let slot = entry.checked_sub(1)?;
            if self.items[slot as usize].id() == item {
                return Some(Slot(slot));
            }
            // The index is at most half full, so an empty entry comes soon.
            at = (at + 1) & mask;
        }
    }

    /// Adds `item` with an empty allotment (or finds it, if already there).
    /// Not for event loops: call [`refill`](Self::refill) next, off the loop.
    pub fn add(&self, item: ItemId) -> Result<Slot, StockError> {
        let mut used = self.used.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = self.slot(item) {
            return Ok(slot);
        }
        if *used as usize == self.items.len() {
            return Err(StockError::TableFull { items_max: self.items.len() });
        }
        let slot = *used;
        self.items[slot as usize].id.store(item, Ordering::Relaxed);
        let mask = self.index.len() - 1;
        let mut at = index_hash(item, mask);
        while self.index[at].load(Ordering::Relaxed) != 0 {
            at = (at + 1) & mask;
        }
        // Release: a loop that finds the entry also finds the id stored above.
        self.index[at].store(slot + 1, Ordering::Release);
        *used += 1;
        Ok(Slot(slot))
    }

    /// The hot path: takes `quantity` units of the item in `slot`, all or
    /// none, without blocking, locking or allocating. A sold-out item costs
    /// one relaxed load.
    #[inline]
    pub fn take(&self, slot: Slot, quantity: u64) -> Outcome {
        if self.sold_out.is_marked(slot.index()) {
            return Outcome::SoldOut;
        }
        self.take_from_allotment(slot, quantity)
    }

    /// The part of [`take`](Self::take) past the sold-out check, kept apart
    /// so that `take` stays small enough to inline into the handler.
    fn take_from_allotment(&self, slot: Slot, quantity: u64) -> Outcome {
        let item = &self.items[slot.index()];
        match item.allotment.try_take(quantity) {
            Take::Taken { left, generation } => {
                if left == 0 {
                    self.settle(slot);
                }
                let wake_refiller = left < item.low_water.load(Ordering::Relaxed) && self.want_refill(slot);
                Outcome::Taken { wake_refiller, epoch: item.epoch_of(generation) }
            }
            Take::Empty { left } => match item.beyond() {
                Beyond::Nothing => {
                    if left == 0 {
                        self.settle(slot);
                    }
                    Outcome::SoldOut
                }
                Beyond::Pool | Beyond::Elsewhere => Outcome::Busy { wake_refiller: self.want_refill(slot) },
            },
        }
    }

    /// One relaxed load: whether no unit of the item is left anywhere.
    #[inline]
    pub fn is_sold_out(&self, slot: Slot) -> bool {
        self.sold_out.is_marked(slot.index())
    }

    pub fn item(&self, slot: Slot) -> &ItemStock {
        &self.items[slot.index()]
    }

    /// Units of an order that will not be sold after all (refused by the
    /// store, cancelled, expired): back where the source says, and the item
    /// is on sale again. Call once per order; the store's status change is
    /// what makes it once. `epoch` is the order's pool generation when the
    /// store refused it (`NewOrder::pool_epoch`), `None` for units that are
    /// free now whatever the pool (a cancelled or expired order): units of a
    /// pool rebuilt since are dropped, as the rebuild counted them already.
    pub fn give_back(&self, slot: Slot, quantity: u64, epoch: Option<u64>) {
        let item = &self.items[slot.index()];
        if !item.is_current(epoch) {
            return;
        }
        match self.source.returned(item.id(), quantity, epoch) {
            Return::Local => match epoch {
                // The allotment may have moved on since the check above.
                Some(epoch) => {
                    item.allotment.give_back_from(quantity, epoch as u16);
                }
                None => item.allotment.give_back(quantity),
            },
            Return::Pooled => item.beyond.store(Beyond::Pool as u8, Ordering::Release),
        }
        self.sold_out.clear(slot.index());
    }

    /// Units a loop took and could not use (the order was never queued):
    /// straight back into the allotment, without asking the source, since
    /// loops never call it; dropped if the pool was rebuilt meanwhile (see
    /// [`give_back`](Self::give_back)).
    pub fn put_back(&self, slot: Slot, quantity: u64, epoch: Option<u64>) {
        let item = &self.items[slot.index()];
        let back = match epoch {
            Some(epoch) => item.is_current(Some(epoch)) && item.allotment.give_back_from(quantity, epoch as u16),
            None => {
                item.allotment.give_back(quantity);
                true
            }
        };
        if back {
            self.sold_out.clear(slot.index());
        }
    }

    /// Another instance put units of the item in `slot` back into the shared
    /// pool: it is on sale again, and the next take that finds the allotment
    /// short asks for a refill.
    pub fn units_returned(&self, slot: Slot) {
        let item = &self.items[slot.index()];
        self.source.units_returned(item.id());
        if item.beyond() != Beyond::Pool {
            self.set_beyond(slot, Beyond::Pool);
        }
    }

    /// The stock source behind this table (admin changes go through it).
    pub fn source(&self) -> &dyn StockSource {
        &*self.source
    }

    /// Takes `units` out of the allotment for good (an admin stock decrease),
    /// all or none; false if fewer are left here (`stock_below_sold`).
    pub fn withdraw(&self, slot: Slot, units: u64) -> bool {
        if units == 0 {
            return true;
        }
        let taken = matches!(self.items[slot.index()].allotment.try_take(units), Take::Taken { .. });
        if taken {
            self.settle(slot);
        }
        taken
    }

    /// Asks the source for more units of the item in `slot` and applies the
    /// answer. May block on the source: start-up, admin and the refiller only.
    /// Refills are serialised (`refilling`).
    pub fn refill(&self, slot: Slot) -> Refill {
        let _one_at_a_time = self.refilling.lock().unwrap_or_else(PoisonError::into_inner);
        let item = &self.items[slot.index()];
        let refill = self.source.refill(item.id(), item.allotment.left());
        match self.source.epoch(item.id()) {
            Some(epoch) => {
                // The epoch before the word (see `epoch_plus_one`).
                item.epoch_plus_one.store(epoch + 1, Ordering::Release);
                item.allotment.grant_in(refill.units, epoch as u16);
            }
            None => item.allotment.grant(refill.units),
        }
        // Refill ahead of need only while the source has more to grant.
        let low_water = if refill.beyond == Beyond::Pool { refill.units / 4 } else { 0 };
        item.low_water.store(low_water, Ordering::Relaxed);
        self.set_beyond(slot, refill.beyond);
        refill
    }

    /// Refills the item in `slot` until its allotment holds `quantity`
    /// units or the source has no more to grant, in at most
    /// [`REFILLS_PER_BUY_MAX`] refills (a refill that landed meanwhile
    /// counts). For a worker serving a parked buy.
    pub fn refill_until(&self, slot: Slot, quantity: u64) {
        let item = &self.items[slot.index()];
        let short = || item.allotment.left() < quantity && item.beyond() == Beyond::Pool;
        for _ in 0..REFILLS_PER_BUY_MAX {
            if !short() {
                return;
            }
            self.refill(slot);
        }
    }

    /// Refills every item a loop asked for since the last call; returns how
    /// many. The refiller thread calls it when woken, then waits a few
    /// milliseconds before the next round, so that loops answering 503 while
    /// others hold the last units cost the source one call per item per round.
    pub fn refill_wanted(&self) -> usize {
        let mut refills = 0;
        for slot in self.refill_wanted.take_marked() {
            // Slots are below `items_max`, which `new` keeps below u32::MAX.
            self.refill(Slot(slot as u32));
            refills += 1;
        }
        refills
    }

    /// Renews this instance's hold on every item's units with the source; a
    /// revoked hold drops the units here (they were fenced off, not sold).
    /// The refiller calls it a few times per lease period.
    pub fn renew(&self) {
        for slot in self.slots() {
            let item = &self.items[slot.index()];
            let renewal = self.source.renew(item.id(), item.allotment.left());
            if renewal == Renewal::Kept {
                continue;
            }
            let units = item.allotment.drain();
            if renewal == Renewal::GiveBack && units > 0 {
                self.source.release(item.id(), units);
            }
            item.low_water.store(0, Ordering::Relaxed);
            // Back to asking: the next buy here asks for a refill.
            self.set_beyond(slot, Beyond::Pool);
        }
    }

    /// Hands every unit left here back to the source (graceful shutdown).
    pub fn release_all(&self) {
        for slot in self.slots() {
            let item = &self.items[slot.index()];
            let units = item.allotment.drain();
            if units > 0 {
                self.source.release(item.id(), units);
            }
        }
    }

    /// Every slot in use.
    pub fn slots(&self) -> impl Iterator<Item = Slot> + use<> {
        let used = *self.used.lock().unwrap_or_else(PoisonError::into_inner);
        (0..used).map(Slot)
    }

    /// Records what lies beyond the allotment, then makes the sold-out mark
    /// agree with it and with the allotment: cleared (units may have been
    /// granted), then set again if nothing is left here nor beyond. A loop
    /// that slips in between finds the allotment empty and answers 410 all
    /// the same.
    fn set_beyond(&self, slot: Slot, beyond: Beyond) {
        self.items[slot.index()].beyond.store(beyond as u8, Ordering::Release);
        self.sold_out.clear(slot.index());
        self.settle(slot);
    }

    /// Marks the item sold out if nothing is left here nor beyond. Whoever
    /// adds units or changes `beyond` clears the mark *afterwards* with a
    /// read-modify-write, so re-checking after marking is enough: either the
    /// re-check sees their units, or their clear comes after our mark.
    fn settle(&self, slot: Slot) {
        let item = &self.items[slot.index()];
        let sold_out = || item.allotment.left() == 0 && item.beyond() == Beyond::Nothing;
        if sold_out() {
            self.sold_out.mark(slot.index());
            if !sold_out() {
                self.sold_out.clear(slot.index());
            }
        }
    }

    /// Flags the slot for the refiller; true only for the call that flagged it.
    fn want_refill(&self, slot: Slot) -> bool {
        !self.refill_wanted.is_marked(slot.index()) && self.refill_wanted.mark(slot.index())
    }
}

/// Fibonacci hashing: admin-chosen ids are often consecutive, and this
/// spreads them over the index.
fn index_hash(item: ItemId, mask: usize) -> usize {
    (item.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize & mask
}
