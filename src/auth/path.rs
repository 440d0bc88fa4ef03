//! The hidden sale path (contract §3: `POST /api/items/{id}/path` then
//! `POST /api/seckill/{path}`): bound to (user, item), unguessable, expiring,
//! and verifiable by any instance with no lookup, because it carries its own
//! expiry and a MAC under a key derived from `auth.secret`.
//!
//! Layout: base64url(expiry_ms as 6 big-endian bytes ‖ first 18 bytes of
//! HMAC-SHA256(key, user ‖ item ‖ expiry)) — 32 characters, 144 bits of MAC.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::auth::constant_time_eq;

const EXPIRY_BYTES: usize = 6;
const MAC_BYTES: usize = 18;
const RAW_BYTES: usize = EXPIRY_BYTES + MAC_BYTES;
/// The latest expiry six bytes can carry.
const EXPIRY_MAX_MS: u64 = (1 << (8 * EXPIRY_BYTES)) - 1;
/// The length of a path on the wire.
pub const PATH_LEN: usize = RAW_BYTES / 3 * 4;

/// Why a path was refused. Both answer 403 `bad_path`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// Not a path we made for this user and item.
    Forged,
    Expired,
}

/// Mints and verifies paths. Cloned per loop; verification allocates nothing.
#[derive(Clone)]
pub struct PathSigner {
    /// The MAC state after absorbing the key, cloned for each use so that
    /// the key schedule is not recomputed per request.
    keyed: Hmac<Sha256>,
}

impl std::fmt::Debug for PathSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PathSigner { .. }")
    }
}

impl PathSigner {
    pub fn new(key: &[u8; 32]) -> Self {
        // HMAC accepts keys of any length.
        PathSigner { keyed: Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length") }
    }

    fn mac(&self, user_id: u64, item_id: u64, expires_ms: u64) -> [u8; MAC_BYTES] {
        let mut mac = self.keyed.clone();
        mac.update(&user_id.to_be_bytes());
        mac.update(&item_id.to_be_bytes());
        mac.update(&expires_ms.to_be_bytes());
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; MAC_BYTES];
        out.copy_from_slice(&full[..MAC_BYTES]);
        out
    }

    /// A path for `user_id` and `item_id`, valid until `expires_ms` (at
    /// most year 10889: the expiry travels in six bytes).
    pub fn mint(&self, user_id: u64, item_id: u64, expires_ms: u64) -> String {
        let expires_ms = expires_ms.min(EXPIRY_MAX_MS);
        let mut raw = [0u8; RAW_BYTES];
        raw[..EXPIRY_BYTES].copy_from_slice(&expires_ms.to_be_bytes()[8 - EXPIRY_BYTES..]);
        raw[EXPIRY_BYTES..].copy_from_slice(&self.mac(user_id, item_id, expires_ms));
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Checks that `path` was minted for this user and item and has not expired.
    pub fn verify(&self, path: &[u8], user_id: u64, item_id: u64, now_ms: u64) -> Result<(), PathError> {
        if path.len() != PATH_LEN {
            return Err(PathError::Forged);
        }
        let mut raw = [0u8; RAW_BYTES];
        match URL_SAFE_NO_PAD.decode_slice(path, &mut raw) {
            Ok(RAW_BYTES) => {}
            _ => return Err(PathError::Forged),
        }
        let mut expiry = [0u8; 8];
        expiry[8 - EXPIRY_BYTES..].copy_from_slice(&raw[..EXPIRY_BYTES]);
        let expires_ms = u64::from_be_bytes(expiry);
        // The MAC is checked first so that a forged path learns nothing from timing.
        if !constant_time_eq(&raw[EXPIRY_BYTES..], &self.mac(user_id, item_id, expires_ms)) {
            return Err(PathError::Forged);
        }
        if now_ms >= expires_ms {
            return Err(PathError::Expired);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(seed: u8) -> PathSigner {
        PathSigner::new(&[seed; 32])
    }

    #[test]
    fn round_trip_and_binding() {
        let s = signer(1);
        let path = s.mint(7, 3, 10_000);
        assert_eq!(path.len(), PATH_LEN);
        assert!(path.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(s.verify(path.as_bytes(), 7, 3, 9_999), Ok(()));
        assert_eq!(s.verify(path.as_bytes(), 7, 3, 10_000), Err(PathError::Expired));
        assert_eq!(s.verify(path.as_bytes(), 8, 3, 0), Err(PathError::Forged), "another user");
        assert_eq!(s.verify(path.as_bytes(), 7, 4, 0), Err(PathError::Forged), "another item");
        assert_eq!(signer(2).verify(path.as_bytes(), 7, 3, 0), Err(PathError::Forged), "another secret");
    }

    #[test]
    fn far_expiries_are_clamped_not_broken() {
        let s = signer(1);
        let path = s.mint(7, 3, u64::MAX);
        assert_eq!(s.verify(path.as_bytes(), 7, 3, 1_800_000_000_000), Ok(()));
    }

    #[test]
    fn tampering_is_detected() {
        let s = signer(1);
        let path = s.mint(7, 3, 10_000).into_bytes();
        for i in 0..path.len() {
            let mut bad = path.clone();
            bad[i] = if bad[i] == b'A' { b'B' } else { b'A' };
            assert!(s.verify(&bad, 7, 3, 0).is_err(), "byte {i}");
        }
        assert_eq!(s.verify(b"short", 7, 3, 0), Err(PathError::Forged));
        assert_eq!(s.verify(&[b'!'; PATH_LEN], 7, 3, 0), Err(PathError::Forged));
    }

    #[test]
    fn a_later_expiry_cannot_be_grafted() {
        let s = signer(1);
        let path = s.mint(7, 3, 10_000);
        let later = s.mint(7, 3, 99_999);
        let mut grafted = later.as_bytes()[..8].to_vec();
        grafted.extend_from_slice(&path.as_bytes()[8..]);
        assert_eq!(s.verify(&grafted, 7, 3, 0), Err(PathError::Forged));
    }
}
