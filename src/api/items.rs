//! The catalogue: every item, or one, with live stock and state.

use seckill_protocol::Status;

use super::json_now;
use crate::api_error::ApiError;
use crate::handler::{Call, LoopHandler, Outcome};

impl LoopHandler {
    pub(crate) fn items(&mut self, call: &mut Call<'_, '_, '_>) -> Outcome {
        let now_ms = call.now_ms;
        let view = &mut self.catalogue;
        json_now(call, Status::OK, |out| view.write_list_json(out, now_ms))
    }

    pub(crate) fn item(&mut self, call: &mut Call<'_, '_, '_>) -> Outcome {
        let now_ms = call.now_ms;
        let item = self.catalogue.get(call.matched.id).ok_or(ApiError::NoSuchItem)?;
        json_now(call, Status::OK, |out| item.write_json(out, now_ms))
    }
}
