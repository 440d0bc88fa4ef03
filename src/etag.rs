//! Strong entity tags and `If-None-Match` (RFC 9110 §8.8.3, §13.1.2) for
//! the bodies served from memory: `/openapi.json` (a compile-time constant)
//! and the pages (rendered when an item changes). One hash, one matcher,
//! so a validator means the same thing wherever it is sent.

/// `"` + 16 hex digits of a body's FNV-1a hash + `"`.
pub type ETag = [u8; 18];

/// The entity tag of `bytes`. A hash of the bytes themselves: a body that
/// did not change keeps its tag across restarts and instances, so a client's
/// cached copy stays valid behind a load balancer. `const` so that a body
/// built into the binary gets its tag at compile time.
pub const fn of(bytes: &[u8]) -> ETag {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    let mut tag = [b'"'; 18];
    let mut d = 0;
    while d < 16 {
        let nibble = (hash >> (60 - 4 * d)) as u8 & 0xf;
        tag[1 + d] = if nibble < 10 { b'0' + nibble } else { b'a' + nibble - 10 };
        d += 1;
    }
    tag
}

/// Whether an `If-None-Match` value names `tag`: `*`, or a list of entity
/// tags, compared weakly as RFC 9110 §13.1.2 asks (a `W/` prefix is ignored).
pub fn none_match(value: &[u8], tag: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .any(|candidate| candidate == b"*" || candidate.strip_prefix(b"W/").unwrap_or(candidate) == tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etag_is_a_quoted_hex_hash() {
        assert_eq!(&of(b""), b"\"cbf29ce484222325\"");
        assert_eq!(&of(b"a"), b"\"af63dc4c8601ec8c\"");
        assert!(of(b"page")[1..17].iter().all(u8::is_ascii_hexdigit));
    }

    #[test]
    fn if_none_match_lists() {
        let tag = b"\"0123456789abcdef\"";
        assert!(none_match(b"\"0123456789abcdef\"", tag));
        assert!(none_match(b"W/\"0123456789abcdef\"", tag));
        assert!(none_match(b"\"x\", \"0123456789abcdef\"", tag));
        assert!(none_match(b"*", tag));
        assert!(!none_match(b"\"0123456789abcdee\"", tag));
        assert!(!none_match(b"0123456789abcdef", tag));
        assert!(!none_match(b"", tag));
    }
}
