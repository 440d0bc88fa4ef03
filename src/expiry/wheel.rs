//! The hierarchical timing wheel of pending orders.
//!
//! Time is counted in ticks of `slot_ms`. An order is due at the tick
//! `ceil(deadline_ms / slot_ms)`: the first slot boundary at or after its
//! deadline, so it is never returned early and at most `slot_ms - 1` ms late.
//!
//! [`LEVELS`] levels of 64 slots each: a slot of level `k` spans `64^k` ticks,
//! so level 0 covers the next 64 ticks one by one and level 5 covers 2^36
//! ticks (218 years of 100 ms slots; 795 days of 1 ms slots). An order lives
//! at the lowest level whose slot tells it apart from `elapsed`; when a slot
//! of a higher level comes due its orders move down a level or more
//! (cascade), so every order is touched at most [`LEVELS`] times before it
//! expires, whatever the number of pending orders. Deadlines beyond the top
//! level wait in an overflow list that is looked at only when time crosses a
//! top-level boundary.
//!
//! Each slot is an intrusive doubly linked list through a node array allocated
//! once, and a 64-bit mask per level says which slots are occupied, so
//! [`ExpiryWheel::advance`] goes straight to the next occupied slot: it never
//! visits empty slots one by one and never looks at orders that are not due
//! or cascading.

use std::fmt;

use super::index::OrderIndex;

/// One pending order: what the store and the stock need to expire it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub order_id: u64,
    pub item_id: u64,
    pub user_id: u64,
    pub quantity: u32,
    /// The order's `pay_deadline_ms` (Unix ms).
    pub deadline_ms: u64,
}

/// The limits of a wheel, fixed at construction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WheelConfig {
    /// Pending orders the wheel holds at most; [`InsertError::Full`] beyond.
    pub pending_max: u32,
    /// The granularity: how late at most (less one ms) an order is returned.
    pub slot_ms: u64,
}

impl WheelConfig {
    /// 100 ms: with the writer's batch interval, well inside the contract's 1 s.
    pub const SLOT_MS_DEFAULT: u64 = 100;
    /// 2^31: the order index has twice as many buckets, addressed by 32 hash
    /// bits (and node numbers are `u32`); far above any memory budget anyway.
    pub const PENDING_MAX_LIMIT: u32 = 1 << 31;
}

/// Why an order was not added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InsertError {
    /// `pending_max` orders are pending: the caller refuses the order (503).
    Full,
    /// The order is already in the wheel: a bug in the caller.
    Duplicate,
}

impl fmt::Display for InsertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InsertError::Full => "the expiry wheel holds pending_max orders",
            InsertError::Duplicate => "the order is already in the expiry wheel",
        })
    }
}

impl std::error::Error for InsertError {}

/// Whether [`ExpiryWheel::advance_max`] returned everything that is due.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Nothing due at `now_ms` is left.
    Done,
    /// The batch is full and more orders may be due: call again.
    More,
}

/// Counters since construction, for /metrics and for tests that bound work.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WheelStats {
    pub inserted: u64,
    pub cancelled: u64,
    pub expired: u64,
    /// Moves of an order from a slot to a lower one: at most [`LEVELS`] per order.
    pub cascaded: u64,
}

/// Levels of the wheel; see the module doc for the ranges.
pub const LEVELS: usize = 6;
const SLOT_BITS: u32 = 6;
const SLOTS: usize = 1 << SLOT_BITS;
/// Bits of tick the levels tell apart: 36.
const WHEEL_BITS: u32 = SLOT_BITS * LEVELS as u32;
/// The list of orders beyond the top level; slot `k * SLOTS + s` is slot `s` of level `k`.
const OVERFLOW: u16 = (LEVELS * SLOTS) as u16;
const LISTS: usize = LEVELS * SLOTS + 1;
/// "No node": the end of a list.
const NIL: u32 = u32::MAX;
/// The list of a free node.
const FREE: u16 = u16::MAX;

#[derive(Clone, Copy)]
struct Node {
    entry: Entry,
    next: u32,
    prev: u32,
    /// The list the node is on, so that `cancel` can fix up its head.
    list: u16,
}

impl Node {
    const UNUSED: Node = Node {
        entry: Entry { order_id: 0, item_id: 0, user_id: 0, quantity: 0, deadline_ms: 0 },
        next: NIL,
        prev: NIL,
        list: FREE,
    };
}

/// Pending orders by payment deadline; see the module doc.
pub struct ExpiryWheel {
    /// Every node, allocated at construction: `pending_max` of them.
    nodes: Vec<Node>,
    /// Unused nodes, linked through `next`.
    free_head: u32,
    len: u32,
    heads: [u32; LISTS],
    /// Bit `s` of `occupied[k]`: slot `s` of level `k` is not empty.
    occupied: [u64; LEVELS],
    index: OrderIndex,
    slot_ms: u64,
    /// The tick up to which time has been processed. Invariant: every
    /// occupied slot starts at or after `elapsed`, within the same block of
    /// the level above as `elapsed`; so the slots are always visited in order
    /// of their start and none is skipped.
    elapsed: u64,
    stats: WheelStats,
}

impl fmt::Debug for ExpiryWheel {
    // Not the nodes: a million of them would be no help in a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExpiryWheel")
            .field("len", &self.len)
            .field("pending_max", &self.nodes.len())
            .field("slot_ms", &self.slot_ms)
            .field("elapsed_ms", &self.elapsed.saturating_mul(self.slot_ms))
            .field("stats", &self.stats)
            .finish()
    }
}

impl ExpiryWheel {
    /// An empty wheel at `now_ms`, with all its memory allocated now
    /// (48 bytes per order for the nodes, 16 to 32 for the index).
    ///
    /// # Panics
    /// If `slot_ms` is 0 or `pending_max` is above
    /// [`WheelConfig::PENDING_MAX_LIMIT`]: the configuration is checked at
    /// start-up, before this is called.
    pub fn new(config: WheelConfig, now_ms: u64) -> Self {
        assert!(config.slot_ms > 0, "slot_ms must be at least 1");
        assert!(config.pending_max <= WheelConfig::PENDING_MAX_LIMIT, "pending_max too large");
        let mut wheel = Self {
            nodes: vec![Node::UNUSED; config.pending_max as usize],
            free_head: NIL,
            len: 0,
            heads: [NIL; LISTS],
            occupied: [0; LEVELS],
            index: OrderIndex::new(config.pending_max),
            slot_ms: config.slot_ms,
            elapsed: 0,
            stats: WheelStats::default(),
        };
        wheel.clear(now_ms);
        wheel
    }

    /// A wheel holding the store's pending orders at start-up. Orders already
    /// past their deadline come out of the first [`Self::advance`].
    ///
    /// # Errors
    /// [`InsertError::Full`] if the store holds more than `pending_max`
    /// pending orders (start-up should fail and name the setting: silently
    /// not tracking some would leave them pending for ever), or
    /// [`InsertError::Duplicate`] if an order id comes twice.
    pub fn rebuild(
        config: WheelConfig,
        pending: impl IntoIterator<Item = Entry>,
        now_ms: u64,
    ) -> Result<Self, InsertError> {
        let mut wheel = Self::new(config, now_ms);
        for entry in pending {
            wheel.insert(entry)?;
        }
        Ok(wheel)
    }

    /// Forgets every order and restarts the clock at `now_ms`, keeping the memory.
    pub fn clear(&mut self, now_ms: u64) {
        let nodes_len = self.nodes.len() as u32;
        for (number, node) in (0_u32..).zip(self.nodes.iter_mut()) {
            *node = Node::UNUSED;
            node.next = if number + 1 < nodes_len { number + 1 } else { NIL };
        }
        self.free_head = if nodes_len > 0 { 0 } else { NIL };
        self.len = 0;
        self.heads = [NIL; LISTS];
        self.occupied = [0; LEVELS];
        self.index.clear();
        self.elapsed = now_ms / self.slot_ms;
    }

    /// Pending orders.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// `pending_max`.
    pub fn capacity(&self) -> usize {
        self.nodes.len()
    }

    pub fn slot_ms(&self) -> u64 {
        self.slot_ms
    }

    pub fn stats(&self) -> WheelStats {
        self.stats
    }

    /// Adds a pending order. A deadline already past comes out of the next
    /// [`Self::advance`]. O(1); allocates nothing.
    ///
    /// # Errors
    /// [`InsertError::Full`] at `pending_max` orders; [`InsertError::Duplicate`]
    /// if `entry.order_id` is pending already (the wheel is unchanged).
    pub fn insert(&mut self, entry: Entry) -> Result<(), InsertError> {
        if self.find(entry.order_id).is_some() {
            return Err(InsertError::Duplicate);
        }
        let node = self.free_head;
        if node == NIL {
            return Err(InsertError::Full);
        }
        self.free_head = self.nodes[node as usize].next;
        self.nodes[node as usize].entry = entry;
        self.index.insert(entry.order_id, node);
        self.place(node);
        self.len += 1;
        self.stats.inserted += 1;
        Ok(())
    }

    /// Takes out a paid or cancelled order, freeing its place at once: O(1).
    /// Returns it, or `None` if it was not pending here (already expired,
    /// already cancelled, or never inserted).
    pub fn cancel(&mut self, order_id: u64) -> Option<Entry> {
        let (bucket, node) = self.find(order_id)?;
        self.index.remove_at(bucket);
        self.unlink(node);
        self.stats.cancelled += 1;
        Some(self.release(node))
    }

    /// Appends to `out` every order due at `now_ms`, in no particular order,
    /// and takes them out of the wheel: [`Self::advance_max`] without a batch bound.
    pub fn advance(&mut self, now_ms: u64, out: &mut Vec<Entry>) {
        let progress = self.advance_max(now_ms, out, usize::MAX);
        debug_assert_eq!(progress, Progress::Done, "an unbounded batch takes everything");
    }

    /// Appends to `out` at most `entries_max` of the orders due at `now_ms`
    /// (deadline rounded up to a slot boundary ≤ `now_ms`), in no particular
    /// order, and takes them out of the wheel; each order comes out once.
    ///
    /// Time only moves forward: a `now_ms` below an earlier one counts as the
    /// earlier one. The work is one step per occupied slot that came due, plus
    /// one per order returned or moved down a level; orders that are not due
    /// are not looked at. `out` grows only past its capacity, so a caller
    /// that reserved `entries_max` allocates nothing.
    pub fn advance_max(&mut self, now_ms: u64, out: &mut Vec<Entry>, entries_max: usize) -> Progress {
        let now_tick = (now_ms / self.slot_ms).max(self.elapsed);
        let mut taken = 0_usize;
        while let Some((list, start)) = self.next_list() {
            if start > now_tick {
                break;
            }
            if list == OVERFLOW {
                // Only reached when every level is empty (their slots all
                // start before the overflow's), so time may jump to now.
                debug_assert!(self.occupied.iter().all(|&bits| bits == 0));
                self.elapsed = now_tick;
                self.replace_overflow();
                continue;
            }
            self.elapsed = start;
            loop {
                let node = self.heads[list as usize];
                if node == NIL {
                    break;
                }
                if taken == entries_max {
                    // `elapsed` stays at this slot's start, which keeps the
                    // invariant for the orders left in it.
                    return Progress::More;
                }
                self.unlink(node);
                let entry = self.nodes[node as usize].entry;
                if self.due_tick(entry.deadline_ms) <= now_tick {
                    // The order went into the index when inserted and has not
                    // left it since, so `find` succeeds.
                    if let Some((bucket, _)) = self.find(entry.order_id) {
                        self.index.remove_at(bucket);
                    } else {
                        debug_assert!(false, "a node in a slot is in the index");
                    }
                    self.stats.expired += 1;
                    out.push(self.release(node));
                    taken += 1;
                } else {
                    // Due later within this slot's span: a lower level tells it apart.
                    self.place(node);
                    self.stats.cascaded += 1;
                }
            }
        }
        self.elapsed = now_tick;
        Progress::Done
    }

    /// The earliest time at which [`Self::advance`] has work: an order coming
    /// due or moving down a level; at or before now if something is due.
    /// `None` when empty. For the writer's receive timeout.
    pub fn next_due_ms(&self) -> Option<u64> {
        self.next_list().map(|(_, start)| start.saturating_mul(self.slot_ms))
    }

    fn find(&self, order_id: u64) -> Option<(usize, u32)> {
        let nodes = &self.nodes;
        self.index.find(order_id, |n| nodes[n as usize].entry.order_id)
    }

    /// The tick at which an order with this deadline is due: rounded up, so
    /// that it is never returned before its deadline.
    fn due_tick(&self, deadline_ms: u64) -> u64 {
        deadline_ms / self.slot_ms + u64::from(!deadline_ms.is_multiple_of(self.slot_ms))
    }

    /// The list for an order due at `due_tick`, relative to `elapsed`.
    fn list_for(&self, due_tick: u64) -> u16 {
        // A deadline already past goes to the slot of `elapsed`, the first to be visited.
        let tick = due_tick.max(self.elapsed);
        let differing = tick ^ self.elapsed;
        if differing >> WHEEL_BITS != 0 {
            return OVERFLOW;
        }
        // The level of the highest bit where the tick differs from `elapsed`:
        // the lowest level whose slots tell them apart.
        let level = if differing < SLOTS as u64 { 0 } else { (63 - differing.leading_zeros()) / SLOT_BITS };
        let slot = (tick >> (level * SLOT_BITS)) as usize & (SLOTS - 1);
        (level as usize * SLOTS + slot) as u16
    }

    /// The occupied list that starts first, with its start tick.
    fn next_list(&self) -> Option<(u16, u64)> {
        let mut first: Option<(u16, u64)> = None;
        for (level, &bits) in self.occupied.iter().enumerate() {
            let shift = level as u32 * SLOT_BITS;
            let current = (self.elapsed >> shift) as u32 & (SLOTS as u32 - 1);
            // The invariant puts every occupied slot at or after the current one.
            debug_assert_eq!(bits & !(u64::MAX << current), 0, "a slot before elapsed at level {level}");
            let ahead = bits & (u64::MAX << current);
            if ahead == 0 {
                continue;
            }
            let slot = u64::from(ahead.trailing_zeros());
            let block = (self.elapsed >> (shift + SLOT_BITS)) << (shift + SLOT_BITS);
            let start = block | (slot << shift);
            if first.is_none_or(|(_, earliest)| start < earliest) {
                first = Some(((level * SLOTS) as u16 + slot as u16, start));
            }
        }
        if first.is_none() && self.heads[OVERFLOW as usize] != NIL {
            // The next top-level block; none after the last one (tick 2^64),
            // which no Unix-ms clock reaches.
            let next_block = ((self.elapsed >> WHEEL_BITS) + 1).checked_mul(1 << WHEEL_BITS);
            first = next_block.map(|start| (OVERFLOW, start));
        }
        first
    }

    /// Files every overflow order again relative to `elapsed`.
    fn replace_overflow(&mut self) {
        // Detached first: orders still beyond the top level go back on it.
        let mut node = std::mem::replace(&mut self.heads[OVERFLOW as usize], NIL);
        while node != NIL {
            let next = self.nodes[node as usize].next;
            self.place(node);
            self.stats.cascaded += 1;
            node = next;
        }
    }

    /// Links a node holding an order onto the list its deadline selects.
    fn place(&mut self, node: u32) {
        let list = self.list_for(self.due_tick(self.nodes[node as usize].entry.deadline_ms));
        let head = self.heads[list as usize];
        if head != NIL {
            self.nodes[head as usize].prev = node;
        }
        let n = &mut self.nodes[node as usize];
        n.prev = NIL;
        n.next = head;
        n.list = list;
        self.heads[list as usize] = node;
        if list != OVERFLOW {
            self.occupied[list as usize / SLOTS] |= 1 << (list as usize % SLOTS);
        }
    }

    fn unlink(&mut self, node: u32) {
        let Node { prev, next, list, .. } = self.nodes[node as usize];
        debug_assert_ne!(list, FREE, "unlinking a free node");
        if prev == NIL {
            self.heads[list as usize] = next;
            if next == NIL && list != OVERFLOW {
                self.occupied[list as usize / SLOTS] &= !(1 << (list as usize % SLOTS));
            }
        } else {
            self.nodes[prev as usize].next = next;
        }
        if next != NIL {
            self.nodes[next as usize].prev = prev;
        }
    }

    /// Returns an unlinked node, already out of the index, to the free list.
    fn release(&mut self, node: u32) -> Entry {
        let n = &mut self.nodes[node as usize];
        let entry = n.entry;
        n.list = FREE;
        n.prev = NIL;
        n.next = self.free_head;
        self.free_head = node;
        self.len -= 1;
        entry
    }
}

#[cfg(test)]
impl ExpiryWheel {
    /// Checks every structural invariant; panics on the first broken one.
    pub(super) fn check_invariants(&self) {
        let mut linked = 0_usize;
        for (list, &head) in self.heads.iter().enumerate() {
            let mut prev = NIL;
            let mut node = head;
            while node != NIL {
                let n = &self.nodes[node as usize];
                assert_eq!(n.list as usize, list, "node {node} on the wrong list");
                assert_eq!(n.prev, prev, "broken back link at node {node}");
                assert_eq!(self.find(n.entry.order_id).map(|(_, found)| found), Some(node), "not indexed");
                if list < OVERFLOW as usize {
                    let (level, slot) = (list / SLOTS, (list % SLOTS) as u64);
                    let shift = level as u32 * SLOT_BITS;
                    let block = (self.elapsed >> (shift + SLOT_BITS)) << (shift + SLOT_BITS);
                    let start = block | (slot << shift);
                    assert!(start >= self.elapsed, "slot {list} starts before elapsed");
                    let due = self.due_tick(n.entry.deadline_ms);
                    assert!(due >= start || level == 0, "order {} filed after its due tick", n.entry.order_id);
                    assert!(due < start + (1 << shift) || level == 0, "order filed before its slot");
                }
                linked += 1;
                prev = node;
                node = n.next;
            }
            let level_occupied = list < OVERFLOW as usize && self.occupied[list / SLOTS] & (1 << (list % SLOTS)) != 0;
            if list < OVERFLOW as usize {
                assert_eq!(level_occupied, head != NIL, "occupied bit of slot {list}");
            }
        }
        assert_eq!(linked, self.len(), "len");
        let mut free = 0_usize;
        let mut node = self.free_head;
        while node != NIL {
            assert_eq!(self.nodes[node as usize].list, FREE);
            free += 1;
            node = self.nodes[node as usize].next;
        }
        assert_eq!(free + linked, self.capacity(), "nodes lost");
    }
}
