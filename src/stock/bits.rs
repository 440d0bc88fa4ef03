//! A fixed bitmap of item slots: the sold-out marks (the seeds' "isOver" map)
//! and the refills wanted.

use crate::sync::{AtomicU64, Ordering};

/// One bit per item slot, in words of 64, sized once at start-up.
///
/// Reads are one relaxed load: the hot path asks [`is_marked`](Self::is_marked)
/// before anything else, so a refusal after sold-out costs that load and
/// nothing more. A mark is a hint, never the authority: a stale "not marked"
/// falls through to the allotment, which decides; a stale "marked" lasts only
/// until the clearing store becomes visible, which is the "possibly a moment
/// stale" that the contract allows. Mark and clear are release/acquire
/// read-modify-writes so that [`Stock`](super::Stock) can re-check the
/// allotment after marking and never leave a mark on an item with units.
#[derive(Debug)]
pub struct SlotBits {
    words: Box<[AtomicU64]>,
    slots: usize,
}

/// The sold-out marks: bit `slot` set once no unit of that item is left anywhere.
pub type SoldOut = SlotBits;

impl SlotBits {
    /// Room for slots `0..slots`; all clear.
    pub fn new(slots: usize) -> Self {
        let words = (0..slots.div_ceil(64)).map(|_| AtomicU64::new(0)).collect();
        Self { words, slots }
    }

    /// The number of slots.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Sets the bit; returns whether it was clear before.
    ///
    /// # Panics
    /// If `slot` is not below [`slots`](Self::slots) (as for all methods).
    pub fn mark(&self, slot: usize) -> bool {
        let (word, bit) = self.locate(slot);
        word.fetch_or(bit, Ordering::AcqRel) & bit == 0
    }

    /// Clears the bit; returns whether it was set before.
    pub fn clear(&self, slot: usize) -> bool {
        let (word, bit) = self.locate(slot);
        word.fetch_and(!bit, Ordering::AcqRel) & bit != 0
    }

    /// One relaxed load.
    #[inline]
    pub fn is_marked(&self, slot: usize) -> bool {
        let (word, bit) = self.locate(slot);
        word.load(Ordering::Relaxed) & bit != 0
    }

    /// Every marked slot in increasing order, clearing each as it is yielded:
    /// how the refiller collects the refills that loops asked for.
    pub fn take_marked(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().flat_map(|(index, word)| {
            // Swap the whole word: a loop that marks a bit after this swap is
            // seen by the next round, never lost.
            let mut bits = if word.load(Ordering::Relaxed) == 0 { 0 } else { word.swap(0, Ordering::AcqRel) };
            std::iter::from_fn(move || {
                if bits == 0 {
                    return None;
                }
                let bit = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                Some(index * 64 + bit)
            })
        })
    }

    #[inline]
    fn locate(&self, slot: usize) -> (&AtomicU64, u64) {
        assert!(slot < self.slots, "slot {slot} beyond {} slots", self.slots);
        (&self.words[slot / 64], 1 << (slot % 64))
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn marks_are_per_slot() {
        let bits = SlotBits::new(130);
        assert_eq!(bits.slots(), 130);
        for slot in [0, 63, 64, 129] {
            assert!(!bits.is_marked(slot));
            assert!(bits.mark(slot), "newly marked");
            assert!(!bits.mark(slot), "already marked");
            assert!(bits.is_marked(slot));
        }
        assert!(!bits.is_marked(1) && !bits.is_marked(65) && !bits.is_marked(128));
        assert!(bits.clear(64));
        assert!(!bits.clear(64));
        assert!(!bits.is_marked(64));
        assert!(bits.is_marked(63) && bits.is_marked(129));
    }

    #[test]
    fn take_marked_yields_and_clears_in_order() {
        let bits = SlotBits::new(200);
        for slot in [199, 3, 64, 0] {
            bits.mark(slot);
        }
        assert_eq!(bits.take_marked().collect::<Vec<_>>(), [0, 3, 64, 199]);
        assert_eq!(bits.take_marked().count(), 0);
    }

    #[test]
    #[should_panic(expected = "slot 10 beyond 10 slots")]
    fn a_slot_beyond_the_table_is_a_bug() {
        SlotBits::new(10).is_marked(10);
    }
}
