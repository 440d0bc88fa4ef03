//! Who is asking: generated secrets, password hashing, session tokens and
//! their per-loop cache, the hidden sale path, and constant-time comparison.
//!
//! - [`secrets`]: the admin token and the HMAC secret, generated into the
//!   data directory when not configured, and derived sub-keys.
//! - [`password`]: argon2id over the client-side hash; runs on the worker pool.
//! - [`session`]: session tokens, their hashes, the per-loop session cache and
//!   the revocation log that makes a logout effective at once.
//! - [`path`]: the hidden path, an HMAC over (user, item, expiry).
//! - [`validate`]: the wire rules for usernames and passwords.

pub mod password;
pub mod path;
pub mod secrets;
pub mod session;
pub mod validate;

/// The token of an `Authorization: Bearer TOKEN` header value. The scheme
/// is case-insensitive (RFC 9110 §11.1: `bearer T` is the same header).
pub fn bearer(value: &[u8]) -> Option<&[u8]> {
    const SCHEME: &[u8] = b"Bearer ";
    let (scheme, token) = value.split_at_checked(SCHEME.len())?;
    scheme.eq_ignore_ascii_case(SCHEME).then(|| token.trim_ascii())
}

/// Compares two secrets in time independent of where they differ
/// (contract §2: tokens are compared in constant time).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    // Lengths are not secret (tokens have a fixed, public length).
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"BEARER  abc "), Some(&b"abc"[..]));
        assert_eq!(bearer(b"Bearerabc"), None);
        assert_eq!(bearer(b"Basic abc"), None);
        assert_eq!(bearer(b"Bear"), None);
    }
}
