//! Request ids the instance has seen, so that a retry is answered from
//! memory: the same order again (200), or 409 `request_id_reused` when the
//! id made an order of another item or quantity. It is checked before the
//! per-user limit and the stock, because a retry of a successful buy must
//! get its order back even when the user is now at the limit or the item
//! sold out.
//!
//! Keys are (user, a keyed 64-bit hash of the id): the id itself is up to 64
//! bytes and a per-process random key makes collisions unforgeable. The
//! index is bounded by `sale.request_ids_max`. Once full it stops
//! remembering and says so ([`RequestIndex::is_complete`]): a miss is then
//! not proof of a new id, and a request the loop would refuse (409, 410)
//! asks the store instead. The same goes for every miss when instances
//! share the store: the first attempt may have been made on another one. The store's unique key on (user, request id)
//! keeps idempotency exact in every case; this index only makes it fast.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};

use parking_lot::Mutex;

use crate::store::{ItemId, OrderId, OrderRecord, UserId};

const SHARDS: usize = 64;

/// What a request id is known to have done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Known {
    /// Its order is queued for the writer: the outcome is not known yet.
    InFlight { item_id: ItemId, quantity: u32 },
    /// It made this order (durable).
    Done { order_id: OrderId, item_id: ItemId, quantity: u32, pay_deadline_ms: u64 },
}

impl Known {
    fn of(record: &OrderRecord) -> Known {
        Known::Done {
            order_id: record.id,
            item_id: record.item_id,
            quantity: record.quantity,
            pay_deadline_ms: record.pay_deadline_ms,
        }
    }

    /// Whether a new request for (`item_id`, `quantity`) is the same request.
    pub fn matches(self, item: ItemId, qty: u32) -> bool {
        match self {
            Known::InFlight { item_id, quantity } | Known::Done { item_id, quantity, .. } => {
                item_id == item && quantity == qty
            }
        }
    }
}

/// (user, keyed hash of the request id) → what it did.
type Shard = HashMap<(UserId, u64), Known>;

#[derive(Debug)]
pub struct RequestIndex {
    shards: Box<[Mutex<Shard>]>,
    hasher: std::hash::RandomState,
    len: AtomicUsize,
    max: usize,
    complete: AtomicBool,
}

impl RequestIndex {
    pub fn new(max: usize) -> Self {
        RequestIndex {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: std::hash::RandomState::new(),
            len: AtomicUsize::new(0),
            max,
            complete: AtomicBool::new(true),
        }
    }

    fn key(&self, user: UserId, request_id: &str) -> ((UserId, u64), usize) {
        let hash = self.hasher.hash_one(request_id.as_bytes());
        ((user, hash), (hash as usize) % SHARDS)
    }

    pub fn get(&self, user: UserId, request_id: &str) -> Option<Known> {
        let (key, shard) = self.key(user, request_id);
        crate::sync::lock_spinning(&self.shards[shard]).get(&key).copied()
    }

    /// Whether every id seen is remembered: a miss then means a new id.
    pub fn is_complete(&self) -> bool {
        self.complete.load(Relaxed)
    }

    /// An order with this id was queued. Unless the index is full.
    pub fn begin(&self, user: UserId, request_id: &str, item_id: ItemId, quantity: u32) {
        self.put(user, request_id, Known::InFlight { item_id, quantity });
    }

    /// The id made `record` (queued now, or found at start-up).
    pub fn done(&self, user: UserId, request_id: &str, record: &OrderRecord) {
        self.put(user, request_id, Known::of(record));
    }

    /// The attempt was refused: the id is not remembered (contract §3).
    pub fn forget(&self, user: UserId, request_id: &str) {
        let (key, shard) = self.key(user, request_id);
        if crate::sync::lock_spinning(&self.shards[shard]).remove(&key).is_some() {
            self.len.fetch_sub(1, Relaxed);
        }
    }

    fn put(&self, user: UserId, request_id: &str, known: Known) {
        let (key, shard) = self.key(user, request_id);
        let mut shard = crate::sync::lock_spinning(&self.shards[shard]);
        if let Some(slot) = shard.get_mut(&key) {
            *slot = known;
            return;
        }
        if self.len.load(Relaxed) >= self.max {
            self.complete.store(false, Relaxed);
            return;
        }
        shard.insert(key, known);
        self.len.fetch_add(1, Relaxed);
    }

    pub fn len(&self) -> usize {
        self.len.load(Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::OrderStatus;

    fn record(id: OrderId) -> OrderRecord {
        OrderRecord {
            id,
            item_id: 7,
            user_id: 1,
            quantity: 2,
            status: OrderStatus::PendingPayment,
            created_ms: 0,
            pay_deadline_ms: 99,
            paid_ms: None,
            request_id: Some("r".into()),
        }
    }

    #[test]
    fn in_flight_then_done_or_forgotten() {
        let index = RequestIndex::new(10);
        assert_eq!(index.get(1, "r"), None);
        index.begin(1, "r", 7, 2);
        assert_eq!(index.get(1, "r"), Some(Known::InFlight { item_id: 7, quantity: 2 }));
        assert_eq!(index.get(2, "r"), None, "ids are scoped to the user");
        index.done(1, "r", &record(5));
        let known = index.get(1, "r").unwrap();
        assert!(known.matches(7, 2) && !known.matches(7, 1) && !known.matches(8, 2));
        assert_eq!(index.len(), 1);
        index.begin(1, "s", 7, 1);
        index.forget(1, "s");
        assert_eq!((index.get(1, "s"), index.len()), (None, 1));
    }

    #[test]
    fn a_full_index_stops_remembering_and_says_so() {
        let index = RequestIndex::new(1);
        index.begin(1, "a", 7, 1);
        assert!(index.is_complete());
        index.begin(1, "b", 7, 1);
        assert!(!index.is_complete());
        assert_eq!(index.get(1, "b"), None);
        index.done(1, "a", &record(5));
        assert!(matches!(index.get(1, "a"), Some(Known::Done { order_id: 5, .. })), "known ids still update");
    }
}
