//! The generation-tagged connection table of one loop.
//!
//! A slot index alone would let an event or a completion meant for a closed
//! connection reach the next connection that reuses its slot. Every slot
//! therefore carries a generation, bumped when the slot is freed, and every
//! key handed out (a mio `Token`, a timer entry, a `ParkToken`) carries both;
//! a lookup with a stale generation finds nothing.

use mio::Token;

/// Slot index and generation. Packed into a `Token` as `slot | generation << 32`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    pub slot: u32,
    pub generation: u32,
}

/// Tokens the loop reserves for itself; no connection key can produce them,
/// because slots stay below `u32::MAX - 1` (the table's capacity is checked).
pub(crate) const LISTENER: Token = Token(usize::MAX);
pub(crate) const WAKER: Token = Token(usize::MAX - 1);

const _: () = assert!(usize::BITS == 64, "tokens pack a slot and a generation into 64 bits");

impl Key {
    pub fn token(self) -> Token {
        Token(self.slot as usize | (self.generation as usize) << 32)
    }

    pub fn from_token(token: Token) -> Key {
        Key { slot: token.0 as u32, generation: (token.0 >> 32) as u32 }
    }
}

#[derive(Debug)]
struct Entry<T> {
    generation: u32,
    value: Option<T>,
}

/// A slab whose keys carry generations. Grows on demand up to `capacity`
/// slots (the global connection limit), so a loop that serves few
/// connections holds little memory.
#[derive(Debug)]
pub(crate) struct Table<T> {
    entries: Vec<Entry<T>>,
    free: Vec<u32>,
    capacity: usize,
    len: usize,
}

impl<T> Table<T> {
    pub fn new(capacity: usize) -> Table<T> {
        assert!(capacity < (u32::MAX - 1) as usize, "connection table capacity must leave the reserved tokens free");
        Table { entries: Vec::new(), free: Vec::new(), capacity, len: 0 }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Inserts the value built from its key, or gives it back when full.
    pub fn insert_with(&mut self, make: impl FnOnce(Key) -> T) -> Option<Key> {
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None if self.entries.len() < self.capacity => {
                self.entries.push(Entry { generation: 0, value: None });
                (self.entries.len() - 1) as u32
            }
            None => return None,
        };
        let entry = &mut self.entries[slot as usize];
        debug_assert!(entry.value.is_none());
        let key = Key { slot, generation: entry.generation };
        entry.value = Some(make(key));
        self.len += 1;
        Some(key)
    }

    pub fn get_mut(&mut self, key: Key) -> Option<&mut T> {
        let entry = self.entries.get_mut(key.slot as usize)?;
        if entry.generation != key.generation {
            return None;
        }
        entry.value.as_mut()
    }

    /// Removes the value and retires the key: the slot's next value gets a new generation.
    pub fn remove(&mut self, key: Key) -> Option<T> {
        let entry = self.entries.get_mut(key.slot as usize)?;
        if entry.generation != key.generation {
            return None;
        }
        let value = entry.value.take()?;
        entry.generation = entry.generation.wrapping_add(1);
        self.free.push(key.slot);
        self.len -= 1;
        Some(value)
    }

    /// Every live value.
    pub fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.entries.iter().filter_map(|e| e.value.as_ref())
    }

    /// Keys of every live value (for the one-off sweeps of shutdown).
    pub fn keys(&self) -> impl Iterator<Item = Key> + '_ {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.value.is_some())
            .map(|(slot, e)| Key { slot: slot as u32, generation: e.generation })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_round_trip() {
        let key = Key { slot: 7, generation: u32::MAX };
        assert_eq!(Key::from_token(key.token()), key);
        assert_ne!(key.token(), LISTENER);
        assert_ne!(key.token(), WAKER);
    }

    #[test]
    fn stale_key_finds_nothing_after_reuse() {
        let mut table = Table::new(4);
        let a = table.insert_with(|_| "a").expect("room");
        assert_eq!(table.remove(a), Some("a"));
        let b = table.insert_with(|_| "b").expect("room");
        assert_eq!(a.slot, b.slot, "the slot is reused");
        assert_ne!(a.generation, b.generation);
        assert!(table.get_mut(a).is_none());
        assert!(table.remove(a).is_none());
        assert_eq!(table.get_mut(b).copied(), Some("b"));
    }

    #[test]
    fn capacity_is_a_hard_limit() {
        let mut table = Table::new(2);
        assert!(table.insert_with(|_| 1).is_some());
        assert!(table.insert_with(|_| 2).is_some());
        assert!(table.insert_with(|_| 3).is_none());
        assert_eq!(table.len(), 2);
        assert_eq!(table.keys().count(), 2);
    }
}
