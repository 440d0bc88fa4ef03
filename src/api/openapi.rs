//! `GET /openapi.json`: the OpenAPI 3.1 document of this API (contract §3),
//! `openapi.json` beside this file, built into the binary. It is static, so
//! its `ETag` is computed at compile time and a matching `If-None-Match` is
//! answered 304. `tests/openapi.rs` holds the document to the routes the
//! server has, and `tests/schemathesis/run.sh` holds the server to it.

use seckill_protocol::{ContentType, Status};

use crate::handler::{Answered, Call, LoopHandler, Outcome};

/// The document, exactly as checked in.
pub const DOCUMENT: &[u8] = include_bytes!("openapi.json");

/// A strong ETag: `"` + 16 hex digits of the document's FNV-1a hash + `"`.
/// The document changes only with the binary, so a hash of its bytes is
/// a validator no client can be misled by across versions.
pub const ETAG: [u8; 18] = etag(DOCUMENT);

const CACHE_CONTROL: &[u8] = b"public, max-age=60";

const fn etag(bytes: &[u8]) -> [u8; 18] {
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
fn none_match(value: &[u8], tag: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .any(|candidate| candidate == b"*" || candidate.strip_prefix(b"W/").unwrap_or(candidate) == tag)
}

impl LoopHandler {
    pub(crate) fn openapi(&mut self, call: &mut Call<'_, '_, '_>) -> Outcome {
        let fresh = call.request.header("if-none-match").is_some_and(|v| none_match(v, &ETAG));
        let status = if fresh { Status::NOT_MODIFIED } else { Status::OK };
        let mut w = call.exchange.respond(status);
        w.header("ETag", &ETAG).header("Cache-Control", CACHE_CONTROL);
        if fresh {
            w.empty();
        } else {
            w.body(ContentType::Json, DOCUMENT);
        }
        Ok(Answered::Now(status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_is_openapi_3_1_json() {
        let doc: serde_json::Value = serde_json::from_slice(DOCUMENT).expect("openapi.json is JSON");
        assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1.")), "{}", doc["openapi"]);
    }

    #[test]
    fn etag_is_a_quoted_hex_hash() {
        assert_eq!(&etag(b""), b"\"cbf29ce484222325\"");
        assert_eq!(&etag(b"a"), b"\"af63dc4c8601ec8c\"");
        assert!(ETAG[1..17].iter().all(u8::is_ascii_hexdigit));
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
