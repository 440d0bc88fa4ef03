//! The reactor's [`Handler`] for seckill: routes each request to its
//! endpoint (in [`crate::api`]) and answers it, now or — for work that must
//! not run on a loop — later, from a worker. One instance per event loop; it
//! owns the loop's session cache and catalogue view, so the hot path takes
//! no lock. Every answer is counted in the loop's metrics shard.

use std::sync::Arc;
use std::time::{Duration, Instant};

use seckill_protocol::{ContentType, DateHeader, OwnedRequest, Request, RequestInfo, ResponseWriter, Status};
use seckill_reactor::{Exchange, Handler};

use crate::api_error::ApiError;
use crate::app::{App, Counters};
use crate::auth::path::PathSigner;
use crate::auth::session::{Cached, Session, SessionCache, TokenHash, TokenKey, token_hash, token_of};
use crate::catalogue::CatalogueView;
use crate::client_addr::client_ip;
use crate::limits::ip_key;
use crate::reply::Reply;
use crate::router::{self, Matched, Miss, Route};

/// How long a request may wait for a worker before it is answered 503.
/// Generous: a full queue of password hashes takes seconds to drain.
const WORKER_ANSWER_DEADLINE: Duration = Duration::from_secs(30);

/// The answer to a parked request, sent by a worker or the order writer.
#[derive(Debug)]
pub struct Completion {
    pub route: Route,
    pub answer: Answer,
}

/// What a parked request is answered with.
#[derive(Debug)]
pub enum Answer {
    /// Prepared by a worker.
    Reply(Reply),
    /// A durable order (the buy's 200), written by the loop without allocating.
    Order {
        order_id: u64,
        pay_deadline_ms: u64,
    },
    Error(ApiError),
    /// Not an answer: handle the request again, now that a worker found its
    /// session (held by the shared cache, not yet by this loop).
    Replay {
        request: Box<OwnedRequest>,
        token: TokenKey,
        session: Session,
    },
    /// Not an answer: handle the buy again, now that a worker refilled its
    /// item's allotment from the shared pool.
    Refilled {
        request: Box<OwnedRequest>,
        /// How many times the buy was parked for a refill so far.
        rounds: u32,
    },
}

impl Answer {
    fn status(&self) -> Status {
        match self {
            Answer::Reply(reply) => reply.status,
            Answer::Order { .. } => Status::OK,
            Answer::Error(error) => error.status(),
            Answer::Replay { .. } | Answer::Refilled { .. } => Status::INTERNAL_SERVER_ERROR,
        }
    }

    fn write(self, info: RequestInfo, date: &DateHeader, out: &mut Vec<u8>) {
        match self {
            Answer::Reply(reply) => reply.write(info, date, out),
            Answer::Order { order_id, pay_deadline_ms } => {
                ResponseWriter::new(out, date, info, Status::OK)
                    .body_with(ContentType::Json, |out| crate::api::buy::write_success(out, order_id, pay_deadline_ms));
            }
            Answer::Error(error) => error.finish(ResponseWriter::new(out, date, info, error.status())),
            // `Handler::replay` takes these before anything is written.
            Answer::Replay { .. } | Answer::Refilled { .. } => {
                ResponseWriter::new(out, date, info, Status::INTERNAL_SERVER_ERROR).empty();
            }
        }
    }
}

/// Which worker pool runs a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pool {
    /// Jobs that run argon2id.
    Hashing,
    General,
}

/// How an endpoint answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answered {
    /// Written, with this status.
    Now(Status),
    /// Parked: a worker will answer.
    Later,
}

pub type Outcome = Result<Answered, ApiError>;

/// What an endpoint gets: the request, where to answer, and the moment.
#[derive(Debug)]
pub struct Call<'c, 'r, 'x> {
    pub request: &'c Request<'r>,
    pub exchange: &'c mut Exchange<'x>,
    pub matched: Matched,
    pub now_ms: u64,
}

#[derive(Debug)]
pub struct LoopHandler {
    pub(crate) loop_id: usize,
    pub(crate) app: Arc<App>,
    pub(crate) sessions: SessionCache,
    pub(crate) catalogue: CatalogueView,
    pub(crate) path_signer: PathSigner,
    /// The request being handled is a replay: its session was just put in
    /// this loop's cache, so a second miss must not ask again (no loop).
    replaying: bool,
    /// The request being handled is a buy replayed after this many refills
    /// (0: not a replay); at [`REFILL_ROUNDS_MAX`] a short allotment is 503.
    refill_rounds: u32,
    /// The item and quantity a buy answered `StockElsewhere` for.
    pub(crate) refill_for: (u64, u32),
}

impl LoopHandler {
    pub fn new(loop_id: usize, app: Arc<App>) -> Self {
        let s = &app.settings;
        LoopHandler {
            loop_id,
            sessions: SessionCache::new(s.sessions_per_loop_max, s.session_ttl_ms, s.session_touch_interval_ms),
            catalogue: CatalogueView::new(app.catalogue.clone()),
            path_signer: app.path_signer.clone(),
            replaying: false,
            refill_rounds: 0,
            refill_for: (0, 0),
            app,
        }
    }

    /// Whether the buy being handled may be parked for a refill (again): a
    /// buy that lost its refilled units to others tries a few more rounds,
    /// each of which sold units to someone, then answers 503.
    pub(crate) fn may_wait_for_refill(&self) -> bool {
        self.refill_rounds < REFILL_ROUNDS_MAX
    }

    fn dispatch(&mut self, call: &mut Call<'_, '_, '_>) -> Outcome {
        match call.matched.route {
            Route::Healthz => self.healthz(call),
            Route::Readyz => self.readyz(call),
            Route::Metrics => self.metrics(call),
            Route::Register => self.register(call),
            Route::Login => self.login(call),
            Route::Logout => self.logout(call),
            Route::Me => self.me(call),
            Route::Items => self.items(call),
            Route::Item => self.item(call),
            Route::Captcha => self.captcha(call),
            Route::SalePath => self.sale_path(call),
            Route::AdminItem => self.admin_put_item(call),
            Route::AdminStats => self.admin_stats(call),
            Route::AdminBulkUsers => self.admin_bulk_users(call),
            Route::AdminCaptchaAnswer => self.admin_captcha_answer(call),
            Route::Seckill => self.seckill(call),
            Route::SaleResult => self.sale_result(call),
            Route::Orders => self.orders(call),
            Route::Order => self.order(call),
            Route::OrderPay => self.pay(call),
            Route::OrderCancel => self.cancel(call),
            Route::AdminStock => self.admin_stock(call),
            Route::AdminItemOrders => self.admin_item_orders(call),
            Route::AdminReconcile => self.admin_reconcile(call),
            Route::OpenApi => self.openapi(call),
            Route::Home => self.home_page(call),
            Route::ItemPage => self.item_page(call),
        }
    }

    /// The session of the request (401 without a valid one). A warm check
    /// is one lookup in this loop's cache.
    pub(crate) fn session(&mut self, call: &Call<'_, '_, '_>) -> Result<(TokenKey, Session), ApiError> {
        let token = token_of(&call.request.headers).ok_or(ApiError::Unauthenticated)?;
        let now_ms = call.now_ms;
        match self.sessions.check(&token, now_ms, &self.app.revocations) {
            Cached::Valid { session, write_back } => {
                if write_back {
                    self.app.touches.offer(token_hash(&token), session.expires_ms);
                }
                Ok((token, session))
            }
            Cached::Miss => {
                let hash = token_hash(&token);
                match self.app.cache.session_now(&hash, now_ms) {
                    Some(Some(shared)) => {
                        let settings = &self.app.settings;
                        let session = Session { user_id: shared.user_id, expires_ms: now_ms + settings.session_ttl_ms };
                        self.sessions.insert(token, session, now_ms);
                        // Written back only when the shared expiry lags by a
                        // whole interval, as the loop's cache does later: a
                        // session made or slid a moment ago costs no write.
                        if shared.expires_ms + settings.session_touch_interval_ms <= session.expires_ms {
                            self.app.touches.offer(hash, session.expires_ms);
                        }
                        Ok((token, session))
                    }
                    Some(None) => Err(ApiError::Unauthenticated),
                    // A shared cache cannot answer on the loop: a worker will
                    // ask it, then the request is handled again.
                    None if self.replaying => Err(ApiError::Unavailable),
                    None => Err(ApiError::SessionElsewhere),
                }
            }
        }
    }

    /// The per-user rate limit of sale requests.
    pub(crate) fn limit_user(&self, user_id: u64, call: &Call<'_, '_, '_>) -> Result<(), ApiError> {
        self.app.user_limits.check(user_id, call.exchange.now()).map_err(|retry| {
            Counters::bump(&self.app.counters.limited_user);
            ApiError::RateLimited { retry_after_s: retry.secs().into() }
        })
    }

    /// The per-address rate limit of sale and login requests.
    pub(crate) fn limit_ip(&self, call: &Call<'_, '_, '_>) -> Result<(), ApiError> {
        let peer = call.exchange.peer().ip();
        let ip = client_ip(peer, call.request.headers.x_forwarded_for, &self.app.settings.trusted_proxies);
        self.app.ip_limits.check(ip_key(ip), call.exchange.now()).map_err(|retry| {
            Counters::bump(&self.app.counters.limited_ip);
            ApiError::RateLimited { retry_after_s: retry.secs().into() }
        })
    }

    /// Runs `job` on a worker of `pool` and parks the request until it
    /// answers; 503 `overloaded` at once when the pool is full.
    pub(crate) fn offload(
        &self,
        call: &mut Call<'_, '_, '_>,
        pool: Pool,
        job: impl FnOnce(&App) -> Result<Reply, ApiError> + Send + 'static,
    ) -> Outcome {
        let pool = match pool {
            Pool::Hashing => &self.app.hash_pool,
            Pool::General => &self.app.workers,
        };
        let Some(reservation) = pool.try_reserve() else {
            Counters::bump(&self.app.counters.workers_full);
            return Err(ApiError::Overloaded);
        };
        let token = call.exchange.park(call.exchange.now() + WORKER_ANSWER_DEADLINE);
        let app = self.app.clone();
        let route = call.matched.route;
        reservation.submit(Box::new(move |completer| {
            let reply = job(&app).unwrap_or_else(Reply::error);
            completer.push(token, Completion { route, answer: Answer::Reply(reply) });
        }));
        Ok(Answered::Later)
    }

    /// Parks `request`, whose session only the shared cache (or the store)
    /// knows, while a worker finds it; the request is then handled again
    /// with the session in this loop's cache (see [`Handler::replay`]). A
    /// copy of the request travels with the job: this happens once per token
    /// and loop, not per request.
    fn find_session_elsewhere(&self, request: &Request<'_>, exchange: &mut Exchange<'_>, route: Route) -> Outcome {
        let token = token_of(&request.headers).ok_or(ApiError::Unauthenticated)?;
        let Some(reservation) = self.app.workers.try_reserve() else {
            Counters::bump(&self.app.counters.workers_full);
            return Err(ApiError::Overloaded);
        };
        let park = exchange.park(exchange.now() + WORKER_ANSWER_DEADLINE);
        let copy = Box::new(OwnedRequest::copy_of(request));
        let now_ms = wall_ms(exchange);
        let app = self.app.clone();
        reservation.submit(Box::new(move |completer| {
            let answer = match shared_session(&app, &token_hash(&token), now_ms) {
                Ok(Some(session)) => Answer::Replay { request: copy, token, session },
                Ok(None) => Answer::Error(ApiError::Unauthenticated),
                Err(error) => Answer::Error(error),
            };
            completer.push(park, Completion { route, answer });
        }));
        Ok(Answered::Later)
    }
}

impl LoopHandler {
    /// Parks a buy whose item's allotment is short while the shared pool
    /// has units (contract §3: "refills or answers 503"): a worker refills
    /// the item, unless a refill landed meanwhile, and the buy is handled
    /// again once, answering 503 if it is still short. Only the buy asks
    /// for this, and only when its item's source may grant more.
    fn refill_then_replay(&self, request: &Request<'_>, exchange: &mut Exchange<'_>, matched: Matched) -> Outcome {
        let Some(reservation) = self.app.workers.try_reserve() else {
            Counters::bump(&self.app.counters.workers_full);
            return Err(ApiError::Unavailable);
        };
        let park = exchange.park(exchange.now() + WORKER_ANSWER_DEADLINE);
        let copy = Box::new(OwnedRequest::copy_of(request));
        let app = self.app.clone();
        let (item_id, quantity) = self.refill_for;
        let rounds = self.refill_rounds + 1;
        reservation.submit(Box::new(move |completer| {
            if let Some(slot) = app.sale.stock.slot(item_id) {
                app.sale.stock.refill_until(slot, u64::from(quantity));
            }
            completer
                .push(park, Completion { route: matched.route, answer: Answer::Refilled { request: copy, rounds } });
        }));
        Ok(Answered::Later)
    }
}

/// Most times one buy is parked for a refill before it answers 503.
const REFILL_ROUNDS_MAX: u32 = 8;

/// The session of `hash` in the shared cache, else in the store (the truth:
/// a cache that lost its data, or cannot be reached, costs a store lookup,
/// not a login). Runs on a worker.
fn shared_session(app: &App, hash: &TokenHash, now_ms: u64) -> Result<Option<Session>, ApiError> {
    if let Ok(Some(session)) = app.cache.session(hash, now_ms) {
        return Ok(Some(session));
    }
    let Some(record) = app.store.session(hash)?.filter(|r| now_ms < r.expires_ms) else { return Ok(None) };
    let session = Session { user_id: record.user_id, expires_ms: record.expires_ms };
    // Put back for the other instances; failing that costs them a lookup.
    let _ = app.cache.put_sessions(&[(*hash, session)]);
    Ok(Some(session))
}

/// Milliseconds since the Unix epoch of the loop's wall clock.
fn wall_ms(exchange: &Exchange<'_>) -> u64 {
    crate::clock::ms_of(exchange.wall_now())
}

impl Handler for LoopHandler {
    type Completion = Completion;

    fn handle(&mut self, request: &Request<'_>, exchange: &mut Exchange<'_>) {
        let (route, result) = match router::route(request.method, request.path) {
            Ok(matched) => {
                let now_ms = wall_ms(exchange);
                let mut call = Call { request, exchange: &mut *exchange, matched, now_ms };
                let result = match self.dispatch(&mut call) {
                    Err(ApiError::SessionElsewhere) => self.find_session_elsewhere(request, exchange, matched.route),
                    Err(ApiError::StockElsewhere) => self.refill_then_replay(request, exchange, matched),
                    result => result,
                };
                self.replaying = false;
                self.refill_rounds = 0;
                (Some(matched.route), result)
            }
            Err(Miss::NotFound) => (None, Err(ApiError::NotFound)),
            Err(Miss::MethodNotAllowed { allow }) => (None, Err(ApiError::MethodNotAllowed { allow })),
        };
        let status = match result {
            Ok(Answered::Now(status)) => status,
            Ok(Answered::Later) => return,
            Err(error) => {
                error.finish(exchange.respond(error.status()));
                error.status()
            }
        };
        self.app.metrics().shard(self.loop_id).record(route, status, exchange.now().elapsed());
    }

    fn complete(
        &mut self,
        completion: Completion,
        info: RequestInfo,
        parked_at: Instant,
        date: &DateHeader,
        out: &mut Vec<u8>,
    ) {
        let status = completion.answer.status();
        completion.answer.write(info, date, out);
        self.app.metrics().shard(self.loop_id).record(Some(completion.route), status, parked_at.elapsed());
    }

    fn replay(&mut self, completion: Completion) -> Result<OwnedRequest, Completion> {
        match completion.answer {
            Answer::Replay { request, token, session } => {
                // Revocations first (a resynchronisation would otherwise
                // wipe the entry before the replay reads it).
                self.sessions.catch_up(&self.app.revocations);
                self.sessions.insert(token, session, crate::clock::now_ms());
                self.replaying = true;
                Ok(*request)
            }
            Answer::Refilled { request, rounds } => {
                self.refill_rounds = rounds;
                Ok(*request)
            }
            answer => Err(Completion { route: completion.route, answer }),
        }
    }

    fn park_expired(&mut self, info: RequestInfo, parked_at: Instant, date: &DateHeader, out: &mut Vec<u8>) {
        let error = ApiError::Unavailable;
        Reply::error(error).write(info, date, out);
        self.app.metrics().shard(self.loop_id).record(None, error.status(), parked_at.elapsed());
    }
}
