//! seckill: a flash-sale HTTP/1.1 server.
//!
//! The binary (`src/main.rs`) reads the configuration, starts the event
//! loops of `seckill-reactor` with one [`handler::LoopHandler`] each, and
//! shuts them down gracefully on SIGTERM/SIGINT.
//!
//! Map of the modules:
//! - [`router`]: (method, path) → route, 404/405.
//! - [`handler`]: the per-loop request handler: routing, sessions, limits, offloading.
//! - [`api`]: the endpoints, one file per area.
//! - [`reply`]: answers prepared by workers for parked requests.
//! - [`api_error`]: every API error with its status and code.
//! - [`bridge`]: plain threads calling an async client on its own thread, with deadlines.
//! - [`auth`]: secrets, password hashing, sessions, the hidden path.
//! - [`cache`]: sessions, captchas and results every instance sees; in process by default.
//! - [`captcha`]: arithmetic questions drawn into PNGs.
//! - [`catalogue`]: items with their JSON serialised once and live fields spliced in.
//! - [`etag`]: strong entity tags and `If-None-Match` for bodies served from memory.
//! - [`pages`]: the web pages, rendered when an item changes, with their HTML, CSS and JS.
//! - [`client_addr`]: the client address, believing X-Forwarded-For only from trusted proxies.
//! - [`store`]: the durable store (users, sessions, items, orders); SQLite by default.
//! - [`limits`]: lock-free token buckets per user and per address.
//! - [`clock`]: Unix milliseconds.
//! - [`stock`]: the lock-free local stock counter, sold-out bits, stock sources, order ids.
//! - [`expiry`]: the payment-window timer wheel.
//! - [`sync`]: std or loom atomics for the lock-free structures.
//! - [`orders`]: the group-commit order writer.
//! - [`sale`]: the buy's shared state (holdings, request ids, queue) and the writer's sink.
//! - [`app`]: state shared by the loops (readiness, draining, metrics).
//! - [`metrics`]: per-loop counters and the Prometheus exposition.
//! - [`log`]: structured JSON-lines logs on stderr.
//! - [`server`]: start-up and graceful shutdown.
//! - [`workers`]: the bounded pool for blocking work (hashing, store calls).

pub mod api;
pub mod api_error;
pub mod app;
pub mod auth;
pub mod bridge;
pub mod cache;
pub mod captcha;
pub mod catalogue;
pub mod client_addr;
pub mod clock;
pub mod etag;
pub mod expiry;
pub mod handler;
pub mod limits;
pub mod log;
pub mod metrics;
pub mod orders;
pub mod pages;
pub mod reply;
pub mod router;
pub mod sale;
pub mod server;
pub mod stock;
pub mod store;
pub(crate) mod sync;
pub mod workers;
