//! Rate limits per user and per client address (`[limits]`, answered with 429
//! `rate_limited` and `Retry-After`).
//!
//! One [`TokenBuckets`] per limit, built at start-up and shared by every event
//! loop (in an `Arc`): `check(key, now)` takes a token from the key's bucket
//! or returns a [`RetryAfter`]. Keys are user ids, or [`ip_key`]s of client
//! addresses (IPv6 by /64 prefix). A rate of 0 turns the limit off.
//!
//! Code map:
//! - `gcra` — one bucket's arithmetic: a bucket is a single number, the
//!   instant it will be full again;
//! - `buckets` — the table of buckets, its lock-free updates and takeovers;
//! - `ip` — client addresses to keys;
//! - `metrics` — sharded counters of decisions;
//! - `sync` — std atomics, or loom's when model checking.
//!
//! Invariants:
//! - memory is fixed at start-up: `slots` × 16 bytes, and `check` never
//!   allocates, blocks or takes a lock (`tests/alloc.rs` counts);
//! - a key is never admitted more than `burst + rate × elapsed` times, even
//!   across threads, evictions and a full table;
//! - only a *full* bucket is evicted. A full bucket is indistinguishable from
//!   a new one, so eviction never forgives a debt: bounded memory costs no
//!   accuracy.
//!
//! When every slot a new key may use holds an active bucket, the check is
//! *refused* (counted as `refused_table_full`, `Retry-After` = when the first
//! of those buckets is full again). Admitting instead would let anyone with
//! enough addresses (an IPv6 /48 holds 65,536 /64s) switch the limit off by
//! filling the table; sharing or evicting an active bucket would let the same
//! flood spend, or forgive, the tokens of clients who already have a bucket.
//! Refusing touches only newcomers, and cannot be sustained cheaply: a slot
//! stays active only while its bucket owes tokens, and each owed token is a
//! request that was *admitted*, so the time-averaged number of active slots
//! is at most `admitted requests per second / rate_per_s`. With `slots ×
//! rate_per_s` above what an instance can serve (4,096 slots × 200/s is
//! 819,200 requests/s), nobody can keep the table full; the keyed hashes stop
//! anyone from aiming at one group.
//!
//! One race is tolerated: two loops whose cached clocks differ may both
//! install a bucket for a key that has none, at the same instant; the key then
//! gets one extra token per such loop, once. Admitting is otherwise exact.

#![forbid(unsafe_code)]

mod buckets;
mod gcra;
mod ip;
mod metrics;

pub use buckets::{BUCKETS_MAX_LIMIT, RetryAfter, TokenBuckets};
pub use ip::{IPV6_PREFIX_BITS, ip_key};
pub use metrics::Metrics;
