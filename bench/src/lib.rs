//! `seckill-bench`: seckill's own HTTP/1.1 load generator. It treats the
//! server as a black box on the wire, so it measures nginx (or anything that
//! speaks HTTP/1.1) the same way.
//!
//! # Usage
//!
//! ```text
//! # closed loop: 64 keep-alive connections, 2 load threads, 10 s
//! seckill-bench -c 64 -t 2 -d 10s http://127.0.0.1:8080/healthz
//! # pipelined 16 deep
//! seckill-bench -c 64 --pipeline 16 -d 10s http://127.0.0.1:8080/healthz
//! # open loop at 40,000 requests/s, corrected for coordinated omission, JSON too
//! seckill-bench -c 64 --rate 40k -d 10s --warmup 2s --json out.json http://127.0.0.1:8080/healthz
//! # a POST with headers and a body
//! seckill-bench -m POST -H 'Content-Type: application/json' --body '{"item":1}' http://127.0.0.1:8080/buy
//! # 10,000 idle keep-alive connections held 5 s; the server's RSS per connection
//! seckill-bench idle --connections 10000 --hold 5s --pid "$SERVER_PID" http://127.0.0.1:8080/healthz
//! # 100 faults during sales on 3 instances, Redis, MariaDB and nginx it starts
//! seckill-bench nemesis --faults 100 --seed 42
//! # capacity, then 3 × capacity offered: goodput, shedding, memory, promises
//! seckill-bench overload --json overload.json
//! # a whole flash sale on a server the bench starts, then the promise check
//! seckill-bench sale --users 10000 --stock 1000 -c 64 -d 5s --report sale.html
//! # the same sale across server variants, 3 alternating rounds
//! seckill-bench compare --rounds 3 -d 3s
//! # seckill's sale: 10,000 users with sessions and paths, then buys vs /healthz, 3 pairs
//! seckill-bench buy --target http://127.0.0.1:8080 --admin-token-file data/admin_token \
//!     --users 10000 -c 64 -d 5s --alternate-healthz 3
//! ```
//!
//! `seckill-bench --help` lists every option. The exit status is 1 when a
//! connection could not be opened or no request completed, 2 on a usage error.
//!
//! # What is measured
//!
//! - **Closed loop** (default): every connection keeps `--pipeline` requests
//!   outstanding; as responses arrive, new requests are written, all those of
//!   one read in one write. The latency is the service time: response
//!   complete minus request sent.
//! - **Open loop** (`--rate R`): request `g` of the run is due at `g / R`
//!   seconds, whatever the server does. It is sent on a connection with fewer
//!   than `--pipeline` outstanding; if none has room it waits, and its latency
//!   still counts from the due time (the coordinated-omission correction). The
//!   uncorrected service time is reported apart, and `unsent` counts requests
//!   still waiting at the end. A `timerfd` paces the schedule to the
//!   microsecond without spinning.
//! - Only responses completing inside the window `[warmup, warmup + duration)`
//!   are counted; `requests_per_s` is that count over the duration.
//! - Errors by kind: `connect` (an attempt failed), `closed` (the server closed
//!   a connection with requests outstanding), `read`, `write`, `parse`. Every
//!   closed connection is re-opened and counted in `reconnects`. Statuses are
//!   counted one by one; `non_2xx` sums those outside 200..=299.
//! - Memory is bounded: per connection one 16 KiB read buffer, the pending
//!   write and `pipeline` in-flight records; response bodies (Content-Length,
//!   chunked or close-delimited) are skipped as they stream past; two
//!   fixed-size histograms per thread.
//!
//! # Map of the modules
//!
//! - [`cli`]: the command line and `--help`.
//! - [`target`]: the `http://` URL.
//! - [`workload`]: the [`RequestSource`] trait (what each connection sends,
//!   and the responses reported back) and the [`FixedRequest`] of a plain run.
//! - [`schedule`]: the open-loop send schedule.
//! - [`driver`]: the connection driver, one mio event loop per load thread.
//! - [`response`]: sans-I/O response framing over any split of the bytes.
//! - [`recorder`]: per-thread histograms and counters, merged at the end.
//! - [`report`]: the [`Summary`], its table and its JSON.
//! - [`mod@run`]: a load run from configuration to summary ([`run()`], [`run_with`]).
//! - [`idle`]: the `idle` subcommand.
//! - [`client`]: a blocking keep-alive client for setup requests, bodies kept.
//! - [`setup`]: a sale through seckill's admin and sale API: item, users with
//!   sessions, captcha-checked paths, one buy per user.
//! - [`metrics`]: `/metrics` read before and after, the commit counter picked by name.
//! - [`buy`]: the `buy` subcommand: setup, pre-buys, buy runs (a
//!   [`UserCycle`]) alternating with `/healthz` runs, and its [`BuyReport`].
//! - [`sys`]: timerfd, the open-file limit, a process's RSS.
//! - [`spawn`]: a `seckill` started on the embedded default (port 0, its
//!   own data directory), stopped at the end.
//! - [`promises`]: the promise check, a pure function of the client's
//!   observations and the store's view (shared with the fault campaign).
//! - [`sale`]: the `sale` subcommand: a whole flash sale (setup, start,
//!   the rush, bots), every answer on its user's account, the promise check.
//! - [`html`]: the sale's self-contained HTML report with SVG plots.
//! - [`compare`]: the `compare` subcommand: one sale across server variants,
//!   alternating rounds, a ratio table.
//! - [`overload`]: the `overload` subcommand: the durable-order capacity
//!   (closed loop), then 3 × that offered (open loop); goodput, every answer
//!   by status and code, `Retry-After` on each 429/503, the server's RSS, and
//!   the promise check.
//! - [`nemesis`]: the `nemesis` subcommand: sales on real processes (Redis,
//!   MariaDB, instances, nginx) under seeded faults, and the promise check.
//!
//! A subcommand plugs in the same way: [`setup`] to prepare, a
//! [`RequestSource`] driven by [`run_with`], and a report over [`Summary`]s;
//! the driver, the recorder and the parser stay as they are.
//!
//! Architecture invariant: the bench depends on no seckill crate. It sees the
//! server only through its sockets, so it can measure other servers too.

pub mod buy;
pub mod cli;
pub mod client;
pub mod compare;
pub mod driver;
pub mod html;
pub mod idle;
pub mod metrics;
pub mod nemesis;
pub mod nginx;
pub mod overload;
pub mod promises;
pub mod recorder;
pub mod redis_stats;
pub mod report;
pub mod response;
pub mod run;
pub mod sale;
pub mod schedule;
pub mod setup;
pub mod spawn;
pub mod sys;
pub mod target;
pub mod workload;

pub use buy::{BuyConfig, BuyReport, run_buy};
pub use compare::{CompareConfig, CompareReport, run_compare};
pub use idle::{IdleConfig, IdleSummary, run_idle};
pub use nemesis::{NemesisConfig, NemesisReport, run_nemesis};
pub use overload::{OverloadConfig, OverloadReport, run_overload};
pub use report::{Percentiles, Summary};
pub use run::{BenchError, RunConfig, run, run_with};
pub use sale::{SaleConfig, SaleReport, run_sale};
pub use target::Target;
pub use workload::{Bodyless, FixedRequest, RequestSource, StatusTally, UserCycle};
