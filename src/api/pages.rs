//! `GET /` and `GET /items/{id}`: the web pages, answered on the loop from
//! the catalogue view's memory (rendered by [`crate::pages`] when the
//! catalogue changed) with their `ETag`; a matching `If-None-Match` is 304.

use seckill_protocol::ContentType;

use super::validated_now;
use crate::api_error::ApiError;
use crate::handler::{Call, LoopHandler, Outcome};

/// A page changes whenever an admin changes an item, so a browser keeps its
/// copy but asks again each time (`no-cache`); the answer is then usually a
/// 304 without a body.
const CACHE_CONTROL: &[u8] = b"no-cache";

impl LoopHandler {
    pub(crate) fn home_page(&mut self, call: &mut Call<'_, '_, '_>) -> Outcome {
        let page = self.catalogue.home();
        validated_now(call, &page.etag, CACHE_CONTROL, ContentType::Html, &page.html)
    }

    pub(crate) fn item_page(&mut self, call: &mut Call<'_, '_, '_>) -> Outcome {
        let item = self.catalogue.get(call.matched.id).ok_or(ApiError::NoSuchItem)?;
        validated_now(call, &item.page.etag, CACHE_CONTROL, ContentType::Html, &item.page.html)
    }
}
