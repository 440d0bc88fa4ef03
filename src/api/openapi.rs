//! `GET /openapi.json`: the OpenAPI 3.1 document of this API (contract §3),
//! `openapi.json` beside this file, built into the binary. It is static, so
//! its `ETag` is computed at compile time and a matching `If-None-Match` is
//! answered 304. `tests/openapi.rs` holds the document to the routes the
//! server has, and `tests/schemathesis/run.sh` holds the server to it.

use seckill_protocol::ContentType;

use super::validated_now;
use crate::etag::{self, ETag};
use crate::handler::{Call, LoopHandler, Outcome};

/// The document, exactly as checked in.
pub const DOCUMENT: &[u8] = include_bytes!("openapi.json");

/// The document changes only with the binary, so a hash of its bytes is
/// a validator no client can be misled by across versions.
pub const ETAG: ETag = etag::of(DOCUMENT);

const CACHE_CONTROL: &[u8] = b"public, max-age=60";

impl LoopHandler {
    pub(crate) fn openapi(&mut self, call: &mut Call<'_, '_, '_>) -> Outcome {
        validated_now(call, &ETAG, CACHE_CONTROL, ContentType::Json, DOCUMENT)
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
}
