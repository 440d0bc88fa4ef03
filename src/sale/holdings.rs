//! What each user holds of each item on this instance: the live units of
//! their committed orders and the units of orders still on their way to the
//! store. The per-user limit is checked against both, so a user who fires
//! many requests at once cannot slip past it while earlier ones are queued.
//!
//! Sharded maps behind `parking_lot` mutexes: the hot path locks one shard
//! for a lookup and, on success, one small update. The store stays the
//! arbiter (its commit re-checks the limit); this is what lets the loop
//! answer 409 without asking it. A lookup allocates nothing; an entry exists
//! only while the user holds or awaits units, so the maps are bounded by the
//! live orders, which are bounded by the stock.

use std::collections::HashMap;
use std::hash::BuildHasher;

use parking_lot::{Mutex, MutexGuard};

use crate::store::{ItemId, UserId};

const SHARDS: usize = 64;

/// A user's units of one item.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Held {
    /// Units of pending and paid orders.
    pub live: u64,
    /// Units of orders admitted here and not yet decided by the writer.
    pub in_flight: u64,
    /// The newest live order of these units, for `/result`; 0 when unknown
    /// (that order ended while older ones live on, or after a restart).
    pub order_id: u64,
}

impl Held {
    pub fn total(self) -> u64 {
        self.live + self.in_flight
    }
}

type Shard = HashMap<(UserId, ItemId), Held>;

#[derive(Debug)]
pub struct Holdings {
    shards: Box<[Mutex<Shard>]>,
    hasher: std::hash::RandomState,
}

/// One (user, item) locked: check and reserve without anyone slipping in.
#[derive(Debug)]
pub struct Locked<'a> {
    shard: MutexGuard<'a, Shard>,
    key: (UserId, ItemId),
}

impl Locked<'_> {
    pub fn held(&self) -> Held {
        self.shard.get(&self.key).copied().unwrap_or_default()
    }

    /// Counts `units` of an admitted order as in flight.
    pub fn reserve(&mut self, units: u64) {
        self.shard.entry(self.key).or_default().in_flight += units;
    }
}

impl Default for Holdings {
    fn default() -> Self {
        Self::new()
    }
}

impl Holdings {
    pub fn new() -> Self {
        Holdings {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: std::hash::RandomState::new(),
        }
    }

    fn shard(&self, key: (UserId, ItemId)) -> MutexGuard<'_, Shard> {
        let index = self.hasher.hash_one(key) as usize % SHARDS;
        crate::sync::lock_spinning(&self.shards[index])
    }

    /// Locks the shard of (user, item) for a check-and-reserve.
    pub fn lock(&self, user: UserId, item: ItemId) -> Locked<'_> {
        Locked { shard: self.shard((user, item)), key: (user, item) }
    }

    pub fn get(&self, user: UserId, item: ItemId) -> Held {
        self.shard((user, item)).get(&(user, item)).copied().unwrap_or_default()
    }

    /// The writer decided an in-flight order: its units leave `in_flight`
    /// and, when `placed`, become live.
    pub fn settle(&self, user: UserId, item: ItemId, units: u64, placed: Option<u64>) {
        self.update(user, item, |held| {
            held.in_flight = held.in_flight.saturating_sub(units);
            if let Some(order_id) = placed {
                held.live += units;
                held.order_id = order_id;
            }
        });
    }

    /// A live order was cancelled or expired: its units are no longer held.
    pub fn release(&self, user: UserId, item: ItemId, units: u64, order_id: u64) {
        self.update(user, item, |held| {
            held.live = held.live.saturating_sub(units);
            if held.order_id == order_id {
                held.order_id = 0;
            }
        });
    }

    /// Start-up: the live units of every (user, item) as the store counts them.
    pub fn load(&self, user: UserId, item: ItemId, live: u64) {
        self.update(user, item, |held| held.live = live);
    }

    fn update(&self, user: UserId, item: ItemId, change: impl FnOnce(&mut Held)) {
        let key = (user, item);
        let mut shard = self.shard(key);
        let held = shard.entry(key).or_default();
        change(held);
        if held.total() == 0 {
            shard.remove(&key);
        }
    }

    /// Units in flight per item (admin reconcile).
    pub fn in_flight_by_item(&self) -> HashMap<ItemId, u64> {
        let mut out = HashMap::new();
        for shard in self.shards.iter() {
            for (&(_, item), held) in shard.lock().iter() {
                if held.in_flight > 0 {
                    *out.entry(item).or_insert(0) += held.in_flight;
                }
            }
        }
        out
    }

    /// Entries held, for `/metrics`.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_settle_release_and_forget() {
        let holdings = Holdings::new();
        {
            let mut locked = holdings.lock(1, 7);
            assert_eq!(locked.held(), Held::default());
            locked.reserve(2);
            assert_eq!(locked.held().total(), 2);
        }
        holdings.settle(1, 7, 1, Some(9));
        holdings.settle(1, 7, 1, None);
        assert_eq!(holdings.get(1, 7), Held { live: 1, in_flight: 0, order_id: 9 });
        holdings.release(1, 7, 1, 9);
        assert_eq!(holdings.get(1, 7), Held::default());
        assert!(holdings.is_empty(), "an empty holding is forgotten");
        holdings.load(2, 7, 3);
        assert_eq!(holdings.get(2, 7).live, 3);
        assert_eq!(holdings.get(2, 8).total(), 0);
    }
}
