//! The wire rules of contract §2 for usernames and passwords.

/// 3–32 characters of `A-Z a-z 0-9 _ . -`.
pub fn username_ok(username: &str) -> bool {
    (3..=32).contains(&username.len())
        && username.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// The client-side hash: 8–128 printable ASCII characters.
pub fn password_ok(password: &str) -> bool {
    (8..=128).contains(&password.len()) && password.bytes().all(|b| (0x20..0x7f).contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        for ok in ["abc", "user_1.x-y", &"a".repeat(32)] {
            assert!(username_ok(ok), "{ok}");
        }
        for bad in ["ab", &"a".repeat(33), "with space", "ünï", "a/b", ""] {
            assert!(!username_ok(bad), "{bad}");
        }
    }

    #[test]
    fn passwords() {
        assert!(password_ok("12345678"));
        assert!(password_ok(&"~".repeat(128)));
        assert!(!password_ok("1234567"));
        assert!(!password_ok(&"x".repeat(129)));
        assert!(!password_ok("1234567\n"));
        assert!(!password_ok("1234567é"));
    }
}
