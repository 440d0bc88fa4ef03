//! Session tokens and how a loop validates one without touching the store.
//!
//! A token is 32 random bytes in base64url (43 characters). At rest (store,
//! cache) only its SHA-256 is kept. Each event loop keeps a [`SessionCache`]
//! keyed by the token itself, so a warm check is one hash-map lookup: no
//! SHA-256, no lock, no store. Sliding expiry is extended locally and written
//! back at most once per `session_touch_interval_ms` through a bounded queue.
//!
//! A logout must be effective at once on every loop: the [`RevocationLog`] is
//! a bounded ring of revoked tokens with a sequence number that every check
//! compares (one atomic load); a loop that fell further behind than the ring
//! holds forgets its whole cache, which is always safe.

use std::collections::HashMap;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use sha2::{Digest, Sha256};

use seckill_protocol::Headers;

pub const TOKEN_LEN: usize = 43;
/// A token as sent by the client, validated for length and alphabet.
pub type TokenKey = [u8; TOKEN_LEN];
/// What is kept at rest: SHA-256 of the token.
pub type TokenHash = [u8; 32];

pub fn token_hash(token: &TokenKey) -> TokenHash {
    Sha256::digest(token).into()
}

/// The session token of a request: `Authorization: Bearer T` first, else the
/// `session` cookie. `None` when absent or not shaped like one of ours.
pub fn token_of(headers: &Headers<'_>) -> Option<TokenKey> {
    let raw = headers
        .authorization
        .and_then(super::bearer)
        .or_else(|| headers.cookie.and_then(|c| cookie_value(c, b"session")))?;
    token_key(raw)
}

/// Checks the shape of a token (43 characters of base64url) and copies it.
pub fn token_key(raw: &[u8]) -> Option<TokenKey> {
    if raw.len() != TOKEN_LEN || !raw.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return None;
    }
    let mut key = [0u8; TOKEN_LEN];
    key.copy_from_slice(raw);
    Some(key)
}

fn trim(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(v.len());
    let end = v.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(start, |e| e + 1);
    &v[start..end]
}

/// The value of cookie `name` in a `Cookie` header (`a=1; session=T`).
fn cookie_value<'v>(header: &'v [u8], name: &[u8]) -> Option<&'v [u8]> {
    header.split(|&b| b == b';').find_map(|pair| {
        let pair = trim(pair);
        let eq = pair.iter().position(|&b| b == b'=')?;
        (&pair[..eq] == name).then(|| trim(&pair[eq + 1..]))
    })
}

/// A live session as the loops see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    pub user_id: u64,
    pub expires_ms: u64,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    session: Session,
    /// When the extended expiry should next be written back.
    next_write_back_ms: u64,
}

/// What a check found in the loop's cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cached {
    /// Valid; `write_back` asks the caller to queue the new expiry.
    Valid { session: Session, write_back: bool },
    /// Not in this loop's cache, or expired by this loop's (possibly stale)
    /// view: ask the shared directory.
    Miss,
}

/// One loop's sessions, bounded by `capacity`.
#[derive(Debug)]
pub struct SessionCache {
    entries: HashMap<TokenKey, Entry>,
    capacity: usize,
    ttl_ms: u64,
    write_back_interval_ms: u64,
    revocations_seen: u64,
}

impl SessionCache {
    pub fn new(capacity: usize, ttl_ms: u64, write_back_interval_ms: u64) -> Self {
        SessionCache {
            entries: HashMap::with_capacity(capacity.min(1 << 16)),
            capacity: capacity.max(1),
            ttl_ms,
            write_back_interval_ms,
            revocations_seen: 0,
        }
    }

    /// Looks `token` up and slides its expiry.
    pub fn check(&mut self, token: &TokenKey, now_ms: u64, revocations: &RevocationLog) -> Cached {
        revocations.apply(self);
        let Some(entry) = self.entries.get_mut(token) else { return Cached::Miss };
        if now_ms >= entry.session.expires_ms {
            return Cached::Miss;
        }
        entry.session.expires_ms = now_ms + self.ttl_ms;
        let write_back = now_ms >= entry.next_write_back_ms;
        if write_back {
            entry.next_write_back_ms = now_ms + self.write_back_interval_ms;
        }
        Cached::Valid { session: entry.session, write_back }
    }

    /// Applies the revocations this cache has not seen yet.
    pub fn catch_up(&mut self, revocations: &RevocationLog) {
        revocations.apply(self);
    }

    /// Remembers a session found in the shared directory.
    pub fn insert(&mut self, token: TokenKey, session: Session, now_ms: u64) {
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&token) {
            self.evict_one(now_ms);
        }
        self.entries.insert(token, Entry { session, next_write_back_ms: now_ms + self.write_back_interval_ms });
    }

    pub fn remove(&mut self, token: &TokenKey) {
        self.entries.remove(token);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Makes room: an expired entry if the first few have one, else any.
    /// Losing an entry costs one lookup in the shared directory later.
    fn evict_one(&mut self, now_ms: u64) {
        let victim = self
            .entries
            .iter()
            .take(8)
            .find(|(_, e)| now_ms >= e.session.expires_ms)
            .or_else(|| self.entries.iter().next())
            .map(|(k, _)| *k);
        if let Some(key) = victim {
            self.entries.remove(&key);
        }
    }
}

/// Revoked tokens, newest last, shared by all loops. A revoked token is dead,
/// so keeping (or broadcasting) it reveals nothing usable.
#[derive(Debug)]
pub struct RevocationLog {
    /// Sequence number of the newest revocation; 0 = none yet.
    newest: AtomicU64,
    ring: Mutex<VecDeque<(u64, TokenKey)>>,
    capacity: usize,
}

impl RevocationLog {
    pub fn new(capacity: usize) -> Self {
        RevocationLog { newest: AtomicU64::new(0), ring: Mutex::new(VecDeque::with_capacity(capacity)), capacity }
    }

    /// Records a revocation. Effective for every loop's next check.
    pub fn revoke(&self, token: TokenKey) {
        let mut ring = self.ring.lock();
        let seq = self.newest.load(Ordering::Relaxed) + 1;
        if ring.len() == self.capacity {
            ring.pop_front();
        }
        ring.push_back((seq, token));
        // Published under the lock so that a reader seeing `seq` finds its entry.
        self.newest.store(seq, Ordering::Release);
    }

    /// Makes every loop forget its whole cache (revocations may have been
    /// missed): always safe, it costs each session one shared lookup.
    pub fn forget_all(&self) {
        let mut ring = self.ring.lock();
        ring.clear();
        // With the ring empty, every loop is now behind it.
        self.newest.fetch_add(1, Ordering::Release);
    }

    /// Brings `cache` up to date. The common case is one atomic load.
    fn apply(&self, cache: &mut SessionCache) {
        let newest = self.newest.load(Ordering::Acquire);
        if newest == cache.revocations_seen {
            return;
        }
        let ring = self.ring.lock();
        let oldest_kept = ring.front().map_or(newest + 1, |(seq, _)| *seq);
        if cache.revocations_seen + 1 < oldest_kept {
            // Fell behind the ring: what was revoked meanwhile is unknown.
            cache.entries.clear();
        } else {
            for (_, token) in ring.iter().filter(|(seq, _)| *seq > cache.revocations_seen) {
                cache.entries.remove(token);
            }
        }
        cache.revocations_seen = ring.back().map_or(newest, |(seq, _)| *seq);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(n: u8) -> TokenKey {
        let mut t = [b'a'; TOKEN_LEN];
        t[0] = b'A' + n;
        t
    }

    #[test]
    fn token_from_bearer_or_cookie() {
        let t = std::str::from_utf8(&token(1)).unwrap().to_string();
        let bearer = format!("Bearer {t}");
        let cookie = format!("theme=dark; session={t}; x=y");
        let h = Headers { authorization: Some(bearer.as_bytes()), ..Headers::default() };
        assert_eq!(token_of(&h), Some(token(1)));
        let h = Headers { cookie: Some(cookie.as_bytes()), ..Headers::default() };
        assert_eq!(token_of(&h), Some(token(1)));
        let h = Headers { cookie: Some(b"session=short"), ..Headers::default() };
        assert_eq!(token_of(&h), None);
        let h = Headers { authorization: Some(b"Basic abc"), ..Headers::default() };
        assert_eq!(token_of(&h), None);
        let lower = format!("bearer {t}");
        let h = Headers { authorization: Some(lower.as_bytes()), ..Headers::default() };
        assert_eq!(token_of(&h), Some(token(1)));
        assert_eq!(token_key(&[b'!'; TOKEN_LEN]), None);
    }

    #[test]
    fn sliding_expiry_and_write_back_interval() {
        let log = RevocationLog::new(4);
        let mut cache = SessionCache::new(10, 1_000, 100);
        cache.insert(token(1), Session { user_id: 7, expires_ms: 1_000 }, 0);
        assert_eq!(
            cache.check(&token(1), 50, &log),
            Cached::Valid { session: Session { user_id: 7, expires_ms: 1_050 }, write_back: false }
        );
        assert!(matches!(cache.check(&token(1), 100, &log), Cached::Valid { write_back: true, .. }));
        assert!(matches!(cache.check(&token(1), 150, &log), Cached::Valid { write_back: false, .. }));
        assert_eq!(cache.check(&token(1), 1_150, &log), Cached::Miss, "expired after a TTL without use");
        assert_eq!(cache.check(&token(2), 0, &log), Cached::Miss);
    }

    #[test]
    fn revocation_reaches_every_cache() {
        let log = RevocationLog::new(2);
        let mut a = SessionCache::new(10, 1_000, 100);
        let mut b = SessionCache::new(10, 1_000, 100);
        for cache in [&mut a, &mut b] {
            cache.insert(token(1), Session { user_id: 1, expires_ms: 500 }, 0);
            cache.insert(token(2), Session { user_id: 2, expires_ms: 500 }, 0);
        }
        log.revoke(token(1));
        assert_eq!(a.check(&token(1), 1, &log), Cached::Miss);
        assert!(matches!(a.check(&token(2), 1, &log), Cached::Valid { .. }));
        // `b` falls behind the two-entry ring: it forgets everything, safely.
        log.revoke(token(3));
        log.revoke(token(4));
        assert_eq!(b.check(&token(2), 1, &log), Cached::Miss);
        assert!(b.is_empty());
    }

    #[test]
    fn forgetting_all_empties_every_cache() {
        let log = RevocationLog::new(4);
        let mut a = SessionCache::new(10, 1_000, 100);
        a.insert(token(1), Session { user_id: 1, expires_ms: 500 }, 0);
        log.revoke(token(2));
        assert!(matches!(a.check(&token(1), 1, &log), Cached::Valid { .. }));
        log.forget_all();
        assert_eq!(a.check(&token(1), 1, &log), Cached::Miss);
        a.insert(token(1), Session { user_id: 1, expires_ms: 500 }, 0);
        assert!(matches!(a.check(&token(1), 1, &log), Cached::Valid { .. }), "later entries stay");
        log.revoke(token(3));
        assert!(matches!(a.check(&token(1), 1, &log), Cached::Valid { .. }));
    }

    #[test]
    fn bounded() {
        let mut cache = SessionCache::new(3, 1_000, 100);
        for n in 0..10 {
            cache.insert(token(n), Session { user_id: n.into(), expires_ms: 500 }, 0);
        }
        assert_eq!(cache.len(), 3);
    }
}
