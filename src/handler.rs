//! The reactor's [`Handler`] for seckill: routes each request and answers it.
//! One instance per event loop; it records every answer in the loop's
//! metrics shard.

use std::sync::Arc;
use std::time::Instant;

use seckill_protocol::{ContentType, DateHeader, Request, RequestInfo, Status};
use seckill_reactor::{Exchange, Handler};

use crate::api_error::ApiError;
use crate::app::App;
use crate::router::{self, Miss, Route};

/// The answer to a parked request. Nothing parks yet: the sale adds its
/// outcomes here.
#[derive(Debug)]
pub enum Completion {}

#[derive(Debug)]
pub struct LoopHandler {
    loop_id: usize,
    app: Arc<App>,
}

impl LoopHandler {
    pub fn new(loop_id: usize, app: Arc<App>) -> Self {
        LoopHandler { loop_id, app }
    }

    fn dispatch(&mut self, route: Route, exchange: &mut Exchange<'_>) -> Status {
        match route {
            Route::Healthz => json(exchange, Status::OK, b"{\"status\":\"ok\"}"),
            Route::Readyz => self.readyz(exchange),
            Route::Metrics => {
                let app = &self.app;
                exchange
                    .respond(Status::OK)
                    .body_with(ContentType::Prometheus, |out| app.metrics().render(out, app.loop_stats()));
                Status::OK
            }
        }
    }

    fn readyz(&self, exchange: &mut Exchange<'_>) -> Status {
        if self.app.is_draining() {
            return error(exchange, ApiError::Draining);
        }
        if !self.app.is_ready() {
            return error(exchange, ApiError::NotReady);
        }
        json(exchange, Status::OK, b"{\"status\":\"ready\"}")
    }
}

fn json(exchange: &mut Exchange<'_>, status: Status, body: &[u8]) -> Status {
    exchange.respond(status).body(ContentType::Json, body);
    status
}

fn error(exchange: &mut Exchange<'_>, error: ApiError) -> Status {
    error.finish(exchange.respond(error.status()));
    error.status()
}

impl Handler for LoopHandler {
    type Completion = Completion;

    fn handle(&mut self, request: &Request<'_>, exchange: &mut Exchange<'_>) {
        let (route, status) = match router::route(request.method, request.path) {
            Ok(matched) => (Some(matched.route), self.dispatch(matched.route, exchange)),
            Err(Miss::NotFound) => (None, error(exchange, ApiError::NotFound)),
            Err(Miss::MethodNotAllowed { allow }) => (None, error(exchange, ApiError::MethodNotAllowed { allow })),
        };
        self.app.metrics().shard(self.loop_id).record(route, status, exchange.now().elapsed());
    }

    fn complete(
        &mut self,
        completion: Completion,
        _info: RequestInfo,
        _parked_at: Instant,
        _date: &DateHeader,
        _out: &mut Vec<u8>,
    ) {
        match completion {}
    }

    fn park_expired(&mut self, info: RequestInfo, _parked_at: Instant, date: &DateHeader, out: &mut Vec<u8>) {
        // Nothing parks yet; should a request ever expire, it is unavailable.
        let _ = (info, date, out);
    }
}
