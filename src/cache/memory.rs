//! The in-process cache of the embedded default: sharded maps behind
//! `parking_lot` locks held only for a map operation, so event loops may call
//! the `*_now` methods. Captchas are bounded by `captcha_max`; sessions are
//! bounded by what the store holds (they are loaded from it at start-up and
//! pruned when they expire).

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;

use super::{Cache, CacheError, CaptchaEntry, PutCaptchaError};
use crate::auth::session::{Session, TokenHash};

const SHARDS: usize = 16;

/// A map split into shards, each behind its own lock.
#[derive(Debug)]
struct Sharded<K, V> {
    shards: Box<[Mutex<HashMap<K, V>>]>,
    hasher: std::collections::hash_map::RandomState,
}

impl<K: Hash + Eq, V> Sharded<K, V> {
    fn new() -> Self {
        Sharded {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }

    fn shard(&self, key: &K) -> &Mutex<HashMap<K, V>> {
        &self.shards[self.hasher.hash_one(key) as usize % SHARDS]
    }

    fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    /// Removes entries for which `expired` is true, one shard at a time.
    fn retain(&self, mut keep: impl FnMut(&V) -> bool) -> usize {
        let mut removed = 0;
        for shard in self.shards.iter() {
            let mut map = shard.lock();
            let before = map.len();
            map.retain(|_, v| keep(v));
            removed += before - map.len();
        }
        removed
    }
}

#[derive(Debug)]
pub struct MemoryCache {
    sessions: Sharded<TokenHash, Session>,
    captchas: Sharded<(u64, u64), CaptchaEntry>,
    captcha_count: AtomicUsize,
    captcha_max: usize,
}

impl MemoryCache {
    pub fn new(captcha_max: usize) -> Self {
        MemoryCache {
            sessions: Sharded::new(),
            captchas: Sharded::new(),
            captcha_count: AtomicUsize::new(0),
            captcha_max,
        }
    }

    fn take(&self, user_id: u64, item_id: u64) -> Option<CaptchaEntry> {
        let key = (user_id, item_id);
        let taken = self.captchas.shard(&key).lock().remove(&key);
        if taken.is_some() {
            self.captcha_count.fetch_sub(1, Ordering::Relaxed);
        }
        taken
    }
}

impl Cache for MemoryCache {
    fn session_now(&self, hash: &TokenHash, now_ms: u64) -> Option<Option<Session>> {
        let found = self.sessions.shard(hash).lock().get(hash).copied();
        Some(found.filter(|s| now_ms < s.expires_ms))
    }

    fn session(&self, hash: &TokenHash, now_ms: u64) -> Result<Option<Session>, CacheError> {
        Ok(self.session_now(hash, now_ms).flatten())
    }

    fn put_sessions(&self, sessions: &[(TokenHash, Session)]) -> Result<(), CacheError> {
        for (hash, session) in sessions {
            self.sessions.shard(hash).lock().insert(*hash, *session);
        }
        Ok(())
    }

    fn remove_session(&self, hash: &TokenHash) -> Result<(), CacheError> {
        self.sessions.shard(hash).lock().remove(hash);
        Ok(())
    }

    fn touch_sessions(&self, touches: &[(TokenHash, u64)]) -> Result<(), CacheError> {
        for (hash, expires_ms) in touches {
            if let Some(s) = self.sessions.shard(hash).lock().get_mut(hash) {
                s.expires_ms = s.expires_ms.max(*expires_ms);
            }
        }
        Ok(())
    }

    fn put_captcha(&self, user_id: u64, item_id: u64, entry: CaptchaEntry) -> Result<(), PutCaptchaError> {
        let key = (user_id, item_id);
        let mut shard = self.captchas.shard(&key).lock();
        if !shard.contains_key(&key) {
            // Reserve a place first so that concurrent puts cannot overshoot the bound.
            if self.captcha_count.fetch_add(1, Ordering::Relaxed) >= self.captcha_max {
                self.captcha_count.fetch_sub(1, Ordering::Relaxed);
                return Err(PutCaptchaError::Full);
            }
        }
        shard.insert(key, entry);
        Ok(())
    }

    fn take_captcha_now(&self, user_id: u64, item_id: u64) -> Option<Option<CaptchaEntry>> {
        Some(self.take(user_id, item_id))
    }

    fn take_captcha(&self, user_id: u64, item_id: u64) -> Result<Option<CaptchaEntry>, CacheError> {
        Ok(self.take(user_id, item_id))
    }

    fn peek_captcha(&self, user_id: u64, item_id: u64, now_ms: u64) -> Result<Option<i64>, CacheError> {
        let key = (user_id, item_id);
        let entry = self.captchas.shard(&key).lock().get(&key).copied();
        Ok(entry.filter(|e| now_ms < e.expires_ms).map(|e| e.answer))
    }

    fn prune(&self, now_ms: u64) -> usize {
        let sessions = self.sessions.retain(|s| now_ms < s.expires_ms);
        let captchas = self.captchas.retain(|c| now_ms < c.expires_ms);
        self.captcha_count.fetch_sub(captchas, Ordering::Relaxed);
        sessions + captchas
    }

    fn sizes(&self) -> (usize, usize) {
        (self.sessions.len(), self.captcha_count.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_and_slide() {
        let cache = MemoryCache::new(10);
        let h = [1u8; 32];
        cache.put_sessions(&[(h, Session { user_id: 5, expires_ms: 100 })]).unwrap();
        assert_eq!(cache.session_now(&h, 99), Some(Some(Session { user_id: 5, expires_ms: 100 })));
        assert_eq!(cache.session_now(&h, 100), Some(None));
        cache.touch_sessions(&[(h, 200)]).unwrap();
        assert_eq!(cache.session(&h, 150).unwrap().map(|s| s.user_id), Some(5));
        cache.remove_session(&h).unwrap();
        assert_eq!(cache.session(&h, 0).unwrap(), None);
    }

    #[test]
    fn captcha_is_single_use_and_replaced() {
        let cache = MemoryCache::new(10);
        cache.put_captcha(1, 2, CaptchaEntry { answer: 13, expires_ms: 100 }).unwrap();
        cache.put_captcha(1, 2, CaptchaEntry { answer: 7, expires_ms: 100 }).unwrap();
        assert_eq!(cache.peek_captcha(1, 2, 0).unwrap(), Some(7), "replaced by the next");
        assert_eq!(cache.take_captcha_now(1, 2), Some(Some(CaptchaEntry { answer: 7, expires_ms: 100 })));
        assert_eq!(cache.take_captcha_now(1, 2), Some(None), "consumed");
        assert_eq!(cache.sizes().1, 0);
    }

    #[test]
    fn captchas_are_bounded_and_pruned() {
        let cache = MemoryCache::new(2);
        let entry = CaptchaEntry { answer: 1, expires_ms: 10 };
        cache.put_captcha(1, 1, entry).unwrap();
        cache.put_captcha(2, 1, entry).unwrap();
        assert_eq!(cache.put_captcha(3, 1, entry), Err(PutCaptchaError::Full));
        cache.put_captcha(2, 1, entry).unwrap();
        assert_eq!(cache.prune(10), 2);
        cache.put_captcha(3, 1, entry).unwrap();
        assert_eq!(cache.sizes().1, 1);
    }
}
