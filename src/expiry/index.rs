//! The order index: `order_id` → the wheel node that holds the order.
//!
//! An open-addressing table of node numbers with linear probing and
//! backward-shift deletion. It exists so that `cancel` is O(1) and frees the
//! order's place at once; it is written here rather than taken from
//! `std::collections::HashMap` because the std table, under steady
//! insert/remove churn near its capacity, may clean up its tombstones by
//! growing into a new allocation, and the wheel promises none once warm.
//! Backward-shift deletion leaves no tombstones, so the table never needs to
//! be rebuilt, and with at least twice as many buckets as orders it is at most
//! half full: probes stay short and an empty bucket always ends a search.
//!
//! Each bucket packs the node number with 32 bits of the key's hash: probes
//! and backward shifts compare and re-home entries from the bucket alone, and
//! read a node (a likely cache miss in a table of a million orders) only to
//! confirm a hash match.

/// The node number of an empty bucket. Node numbers are below it (the
/// wheel's capacity is).
const EMPTY_NODE: u32 = u32::MAX;
const EMPTY: u64 = EMPTY_NODE as u64;

/// Buckets at most: the home bucket comes from the 32 stored hash bits.
pub(super) const BUCKETS_MAX: usize = 1 << 32;

/// A fixed-size map from order ids to node numbers.
pub(super) struct OrderIndex {
    /// `hash << 32 | node`, or `EMPTY`.
    buckets: Vec<u64>,
    /// `buckets.len() - 1`; the length is a power of two.
    mask: usize,
}

impl OrderIndex {
    /// An index for up to `entries_max` orders, allocated once.
    ///
    /// # Panics
    /// If that needs more than [`BUCKETS_MAX`] buckets: the wheel limits
    /// `pending_max` so that it does not.
    pub(super) fn new(entries_max: u32) -> Self {
        // At most half full: see the module doc. `entries_max` < 2^32, so on a
        // 64-bit target the doubling cannot overflow.
        let buckets_len = (2 * entries_max as usize).next_power_of_two();
        assert!(buckets_len <= BUCKETS_MAX, "order index too large");
        Self { buckets: vec![EMPTY; buckets_len], mask: buckets_len - 1 }
    }

    fn hash(order_id: u64) -> u32 {
        // Order ids are structured (instance, time, sequence), not random:
        // the splitmix64 finaliser spreads every input bit over the low bits.
        let mut h = order_id;
        h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        h ^= h >> 31;
        // Truncation is intended: 32 bits are kept, and `mask` < 2^32.
        h as u32
    }

    fn home(&self, hash: u32) -> usize {
        hash as usize & self.mask
    }

    /// The bucket and node of `order_id`, if present.
    pub(super) fn find(&self, order_id: u64, key_of: impl Fn(u32) -> u64) -> Option<(usize, u32)> {
        let hash = Self::hash(order_id);
        let mut bucket = self.home(hash);
        loop {
            let packed = self.buckets[bucket];
            if packed == EMPTY {
                return None;
            }
            // Truncations split the packed bucket into its two halves.
            let node = packed as u32;
            if (packed >> 32) as u32 == hash && key_of(node) == order_id {
                return Some((bucket, node));
            }
            bucket = (bucket + 1) & self.mask;
        }
    }

    /// Adds `order_id` → `node`. The caller has checked that the id is absent
    /// and that fewer than `entries_max` orders are present.
    pub(super) fn insert(&mut self, order_id: u64, node: u32) {
        debug_assert_ne!(node, EMPTY_NODE);
        let hash = Self::hash(order_id);
        let mut bucket = self.home(hash);
        while self.buckets[bucket] != EMPTY {
            bucket = (bucket + 1) & self.mask;
        }
        self.buckets[bucket] = u64::from(hash) << 32 | u64::from(node);
    }

    /// Empties `bucket` (from [`Self::find`]) and shifts back the entries of
    /// its probe run so that every remaining key is still reachable from its
    /// home bucket without passing an empty one.
    pub(super) fn remove_at(&mut self, mut hole: usize) {
        let mut next = hole;
        loop {
            next = (next + 1) & self.mask;
            let packed = self.buckets[next];
            if packed == EMPTY {
                break;
            }
            let home = self.home((packed >> 32) as u32);
            // The entry at `next` may fill the hole only if its home is not in
            // the cyclic range (hole, next]: otherwise it would move before
            // its home and become unreachable.
            let home_in_range = if hole <= next { hole < home && home <= next } else { hole < home || home <= next };
            if !home_in_range {
                self.buckets[hole] = packed;
                hole = next;
            }
        }
        self.buckets[hole] = EMPTY;
    }

    /// Forgets every order, keeping the allocation.
    pub(super) fn clear(&mut self) {
        self.buckets.fill(EMPTY);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::OrderIndex;

    /// Keys by node number, as the wheel's nodes would hold them.
    fn check(ops: &[(bool, u64)], entries_max: u32) {
        let mut index = OrderIndex::new(entries_max);
        let mut keys = vec![0_u64; entries_max as usize];
        let mut free: Vec<u32> = (0..entries_max).rev().collect();
        let mut model: HashMap<u64, u32> = HashMap::new();
        for &(insert, order_id) in ops {
            let found = index.find(order_id, |n| keys[n as usize]);
            assert_eq!(found.map(|(_, n)| n), model.get(&order_id).copied(), "find {order_id}");
            match (insert, found) {
                (true, None) => {
                    let Some(node) = free.pop() else { continue };
                    keys[node as usize] = order_id;
                    index.insert(order_id, node);
                    model.insert(order_id, node);
                }
                (false, Some((bucket, node))) => {
                    index.remove_at(bucket);
                    free.push(node);
                    model.remove(&order_id);
                }
                _ => {}
            }
        }
        for (&order_id, &node) in &model {
            assert_eq!(index.find(order_id, |n| keys[n as usize]).map(|(_, n)| n), Some(node));
        }
    }

    proptest! {
        #[test]
        fn agrees_with_a_hash_map(ops in proptest::collection::vec((any::<bool>(), 0_u64..40), 0..400)) {
            // Few ids and a small table: long probe runs that wrap around.
            check(&ops, 16);
        }
    }

    #[test]
    fn full_table_of_colliding_runs() {
        let ops: Vec<(bool, u64)> =
            (0..64).map(|id| (true, id)).chain((0..64).step_by(3).map(|id| (false, id))).collect();
        check(&ops, 64);
    }
}
