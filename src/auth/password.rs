//! Passwords at rest: argon2id over the client-side hash the page sends
//! (contract §3: the wire carries `md5(client_salt + password)`, which the
//! server treats as an opaque secret). Hashing costs tens of milliseconds
//! and megabytes on purpose, so it only ever runs on the worker pool.

use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};

/// argon2id with the configured cost.
#[derive(Debug, Clone)]
pub struct PasswordHasher {
    argon2: Argon2<'static>,
}

/// The configured parameters are out of argon2's range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadParams(pub String);

impl PasswordHasher {
    pub fn new(memory_kib: u32, iterations: u32, parallelism: u32) -> Result<Self, BadParams> {
        let params = Params::new(memory_kib, iterations, parallelism, None).map_err(|e| BadParams(e.to_string()))?;
        Ok(PasswordHasher { argon2: Argon2::new(Algorithm::Argon2id, Version::V0x13, params) })
    }

    /// A PHC string (`$argon2id$v=19$m=…`) with a fresh random salt.
    pub fn hash(&self, password: &str) -> String {
        // Hashing with valid parameters and a generated salt cannot fail.
        self.argon2.hash_password(password.as_bytes()).expect("argon2 with valid params").to_string()
    }

    /// Whether `password` matches `stored`, with the parameters recorded in
    /// `stored` (so raising the configured cost does not lock anyone out).
    pub fn verify(&self, password: &str, stored: &str) -> bool {
        match PasswordHash::new(stored) {
            Ok(parsed) => self.argon2.verify_password(password.as_bytes(), &parsed).is_ok(),
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_then_verify() {
        // Small cost: the test checks the wiring, not the strength.
        let hasher = PasswordHasher::new(64, 1, 1).unwrap();
        let stored = hasher.hash("0123456789abcdef");
        assert!(stored.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{stored}");
        assert!(hasher.verify("0123456789abcdef", &stored));
        assert!(!hasher.verify("0123456789abcdeF", &stored));
        assert!(!hasher.verify("0123456789abcdef", "not a phc string"));
        assert_ne!(stored, hasher.hash("0123456789abcdef"), "salted");
    }

    #[test]
    fn verifies_with_the_stored_cost() {
        let stored = PasswordHasher::new(64, 1, 1).unwrap().hash("password-1");
        assert!(PasswordHasher::new(128, 2, 1).unwrap().verify("password-1", &stored));
    }

    #[test]
    fn bad_params_are_refused() {
        assert!(PasswordHasher::new(1, 1, 1).is_err());
    }
}
