//! Operations endpoints: liveness, readiness, metrics.

use seckill_protocol::{ContentType, Status};

use super::json_now;
use crate::api_error::ApiError;
use crate::handler::{Answered, Call, LoopHandler, Outcome};

impl LoopHandler {
    pub(crate) fn healthz(&mut self, call: &mut Call<'_, '_, '_>) -> Outcome {
        json_now(call, Status::OK, |out| out.extend_from_slice(b"{\"status\":\"ok\"}"))
    }

    pub(crate) fn readyz(&mut self, call: &mut Call<'_, '_, '_>) -> Outcome {
        if self.app.is_draining() {
            return Err(ApiError::Draining);
        }
        if !self.app.is_ready() {
            return Err(ApiError::NotReady);
        }
        json_now(call, Status::OK, |out| out.extend_from_slice(b"{\"status\":\"ready\"}"))
    }

    pub(crate) fn metrics(&mut self, call: &mut Call<'_, '_, '_>) -> Outcome {
        let app = &self.app;
        call.exchange
            .respond(Status::OK)
            .body_with(ContentType::Prometheus, |out| crate::metrics::render_all(app, out));
        Ok(Answered::Now(Status::OK))
    }
}
