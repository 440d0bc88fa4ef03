//! An instance's memory of sessions kept in a shared cache, shared by its
//! loops, so that a loop missing a session rarely needs a Redis round trip
//! (a worker, a park and a replay).
//!
//! It holds the sessions this instance wrote (logins, bulk sessions) and
//! the ones its workers read from Redis for a loop. It forgets a session
//! when this instance logs it out, when another instance's logout is heard,
//! and everything when news may have been lost (a resubscription). A lookup
//! answered by Redis before a revocation must not put the session back
//! afterwards: every forgetting bumps a revision first, and a looked-up
//! session is only kept if the revision has not moved since the lookup began.
//!
//! A miss here says nothing: Redis is asked. An entry past its expiry is a
//! miss too (Redis may know a later, slid expiry).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::auth::session::{Session, TokenHash};

/// Shards of the map: loops miss rarely, but a login storm writes often.
const SHARDS: usize = 16;

#[derive(Debug)]
pub struct SessionMirror {
    shards: Box<[Mutex<HashMap<TokenHash, Session>>]>,
    per_shard_max: usize,
    /// Bumped before every forgetting; see the module doc.
    revision: AtomicU64,
}

impl SessionMirror {
    /// Room for about `max` sessions; beyond, an arbitrary one makes room.
    pub fn new(max: usize) -> Self {
        let per_shard_max = max.div_ceil(SHARDS).max(1);
        let shards = (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect();
        Self { shards, per_shard_max, revision: AtomicU64::new(0) }
    }

    fn shard(&self, hash: &TokenHash) -> &Mutex<HashMap<TokenHash, Session>> {
        // The hash is SHA-256 of the token: any byte is uniform.
        &self.shards[usize::from(hash[0]) % SHARDS]
    }

    /// The session, unless unknown here or past its expiry.
    pub fn get(&self, hash: &TokenHash, now_ms: u64) -> Option<Session> {
        self.shard(hash).lock().get(hash).copied().filter(|session| now_ms < session.expires_ms)
    }

    /// Where forgetting stands; pass it to [`Self::keep_looked_up`].
    pub fn revision(&self) -> u64 {
        self.revision.load(Ordering::Acquire)
    }

    /// A session this instance wrote itself (it cannot have been revoked
    /// before it existed).
    pub fn keep(&self, hash: TokenHash, session: Session) {
        insert(&mut self.shard(&hash).lock(), self.per_shard_max, hash, session);
    }

    /// A session read from the shared cache by a lookup that began at
    /// `revision`: kept only if nothing was forgotten since.
    pub fn keep_looked_up(&self, hash: TokenHash, session: Session, revision: u64) {
        let mut shard = self.shard(&hash).lock();
        // Checked under the shard lock: a forgetting bumps the revision
        // before it takes the lock, so it either stops this insert or
        // removes what it inserted.
        if self.revision() == revision {
            insert(&mut shard, self.per_shard_max, hash, session);
        }
    }

    /// A later expiry for a session kept here (a write-back).
    pub fn slide(&self, hash: &TokenHash, expires_ms: u64) {
        if let Some(session) = self.shard(hash).lock().get_mut(hash) {
            session.expires_ms = session.expires_ms.max(expires_ms);
        }
    }

    /// A logout, here or on another instance.
    pub fn forget(&self, hash: &TokenHash) {
        self.revision.fetch_add(1, Ordering::AcqRel);
        self.shard(hash).lock().remove(hash);
    }

    /// News may have been lost: nothing here can be trusted.
    pub fn forget_all(&self) {
        self.revision.fetch_add(1, Ordering::AcqRel);
        for shard in &*self.shards {
            shard.lock().clear();
        }
    }

    /// Sessions kept now.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|shard| shard.lock().len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn insert(shard: &mut HashMap<TokenHash, Session>, max: usize, hash: TokenHash, session: Session) {
    if shard.len() >= max && !shard.contains_key(&hash) {
        // Any entry will do: a forgotten session is only a round trip later.
        if let Some(victim) = shard.keys().next().copied() {
            shard.remove(&victim);
        }
    }
    shard.insert(hash, session);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(user_id: u64, expires_ms: u64) -> Session {
        Session { user_id, expires_ms }
    }

    #[test]
    fn keeps_until_expiry_or_forgetting() {
        let mirror = SessionMirror::new(100);
        mirror.keep([1; 32], session(7, 1_000));
        assert_eq!(mirror.get(&[1; 32], 999), Some(session(7, 1_000)));
        assert_eq!(mirror.get(&[1; 32], 1_000), None, "expired is a miss");
        mirror.slide(&[1; 32], 2_000);
        assert_eq!(mirror.get(&[1; 32], 1_500).map(|s| s.user_id), Some(7));
        mirror.forget(&[1; 32]);
        assert_eq!(mirror.get(&[1; 32], 0), None);
        assert_eq!(mirror.get(&[2; 32], 0), None, "unknown is a miss");
    }

    #[test]
    fn a_lookup_older_than_a_revocation_is_not_kept() {
        let mirror = SessionMirror::new(100);
        let before = mirror.revision();
        mirror.forget(&[9; 32]);
        mirror.keep_looked_up([1; 32], session(1, 10), before);
        assert_eq!(mirror.get(&[1; 32], 0), None);
        let now = mirror.revision();
        mirror.keep_looked_up([1; 32], session(1, 10), now);
        assert_eq!(mirror.get(&[1; 32], 0), Some(session(1, 10)));
        mirror.forget_all();
        assert_eq!((mirror.get(&[1; 32], 0), mirror.len()), (None, 0));
    }

    #[test]
    fn stays_within_its_bound() {
        let mirror = SessionMirror::new(SHARDS * 2);
        for i in 0..=255u8 {
            mirror.keep([i; 32], session(u64::from(i), 10));
        }
        assert_eq!(mirror.len(), SHARDS * 2);
        mirror.keep([3; 32], session(3, 20));
        assert_eq!(mirror.len(), SHARDS * 2);
    }
}
