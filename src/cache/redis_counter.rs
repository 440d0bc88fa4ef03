//! The evalsha strategy's stock counter on Redis: [`SharedCounter`] for
//! [`RedisCache`]. One string key per item, `{prefix}{item}:stock` — the
//! braces are its hash tag, so on a Redis Cluster each item's counter sits
//! on the slot of its id — and two scripts on it, each on that one key.
//!
//! The take script ([`TAKE`]) is the one the README prints and
//! redis-benchmark runs: every buy sends it with EVALSHA (EVAL on NOSCRIPT,
//! which caches it on that node), without waiting; fred pipelines the
//! commands of concurrent buys on its connection by itself.

use fred::prelude::*;

use super::redis::RedisCache;
use super::redis_stock::{Script, failed};
use crate::stock::evalsha::{Answer, Counted, SharedCounter};
use crate::stock::{ItemId, Seeding, SharedPool, SourceError};

/// KEYS[1] the item's counter; ARGV[1] units. Returns the units left after
/// taking them, -1 if fewer are left, -2 if the counter is missing.
pub const TAKE: &str = r"local stock = redis.call('GET', KEYS[1])
if not stock then return -2 end
local units = tonumber(ARGV[1])
if tonumber(stock) >= units then
  return redis.call('DECRBY', KEYS[1], units)
end
return -1
";

/// KEYS[1] the item's counter; ARGV[1] units. Adds them if the counter
/// exists (a missing one is rebuilt from the store, which counts them).
/// Returns the units left, or -2 if the counter is missing.
const PUT: &str = r"if redis.call('EXISTS', KEYS[1]) == 0 then return -2 end
return redis.call('INCRBY', KEYS[1], ARGV[1])
";

/// The scripts live as long as the program: the bridge's jobs are `'static`.
fn scripts() -> &'static (Script, Script) {
    static SCRIPTS: std::sync::OnceLock<(Script, Script)> = std::sync::OnceLock::new();
    SCRIPTS.get_or_init(|| (Script::plain(TAKE), Script::plain(PUT)))
}

/// The take script's reply as the strategy reads it.
fn counted(reply: i64) -> Counted {
    match reply {
        -2 => Counted::Missing,
        left @ 0.. => Counted::Taken { left: left.unsigned_abs() },
        _ => Counted::SoldOut,
    }
}

/// Runs `script` on `key` from the client's thread: EVALSHA (its SHA-1
/// learnt with SCRIPT LOAD the first time), sent again as EVAL on NOSCRIPT.
async fn eval_here(client: Client, script: &'static Script, key: String, units: u64) -> Result<i64, Error> {
    let lua = script.lua.as_str();
    let args = vec![units.to_string()];
    let sha = match script.sha.get() {
        Some(sha) => sha.clone(),
        None => match client.script_load::<String, _>(lua).await {
            Ok(sha) => script.sha.get_or_init(|| sha).clone(),
            // A server that will not load it: EVAL this time.
            Err(_) => return client.eval(lua, key, args).await,
        },
    };
    match client.evalsha(sha, key.clone(), args.clone()).await {
        Err(e) if e.details().starts_with("NOSCRIPT") => client.eval(lua, key, args).await,
        result => result,
    }
}

impl RedisCache {
    fn counter_key(&self, item: ItemId) -> String {
        format!("{}{{{item}}}:stock", self.prefix())
    }

    /// Runs `script` and waits for its one integer reply.
    fn eval_now(&self, script: &'static Script, item: ItemId, units: u64) -> Result<i64, SourceError> {
        let reply = self.eval(script, self.counter_key(item), vec![units.to_string()])?;
        reply.first().copied().ok_or_else(|| SourceError(format!("counter script answered {reply:?}")))
    }
}

impl SharedCounter for RedisCache {
    fn take(&self, item: ItemId, units: u64, answer: Answer) -> bool {
        let key = self.counter_key(item);
        self.spawn(move |client| async move {
            let reply = eval_here(client, &scripts().0, key, units).await;
            answer(reply.map_or(Counted::Failed, counted));
        })
    }

    fn take_now(&self, item: ItemId, units: u64) -> Result<Counted, SourceError> {
        self.eval_now(&scripts().0, item, units).map(counted)
    }

    fn put(&self, item: ItemId, units: u64) -> Result<bool, SourceError> {
        Ok(self.eval_now(&scripts().1, item, units)? != -2)
    }

    fn put_later(&self, item: ItemId, units: u64) {
        let key = self.counter_key(item);
        let sent = self.spawn(move |client| async move {
            if let Err(e) = eval_here(client, &scripts().1, key, units).await {
                crate::log!(crate::log::Level::Warn, "returned units not counted", item_id = item, error = e);
            }
        });
        if !sent {
            crate::log!(crate::log::Level::Warn, "returned units not counted: the cache is busy", item_id = item);
        }
    }

    fn set(&self, item: ItemId, units: u64, seeding: Seeding) -> Result<bool, SourceError> {
        let key = self.counter_key(item);
        let only_if_absent = (seeding == Seeding::IfAbsent).then_some(SetOptions::NX);
        let units = i64::try_from(units).map_err(failed)?;
        let written: Option<String> = self
            .run(move |client| async move { client.set(key, units, None, only_if_absent, false).await })
            .map_err(failed)?;
        Ok(written.is_some())
    }

    fn claim_rebuild(&self, item: ItemId, ttl_ms: u64) -> Result<bool, SourceError> {
        SharedPool::claim_rebuild(self, item, ttl_ms)
    }
}

/// The scripts against a real Redis (`SECKILL_TEST_REDIS_URL`, default the
/// local one), each test under its own key prefix.
#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::cache::redis::test_options;

    const ITEM: ItemId = 9;

    fn redis(test: &str) -> RedisCache {
        RedisCache::open(&test_options(test)).expect("Redis for the stock counter tests (tests/run starts one)")
    }

    /// `take` through the cache's thread, waiting here for the answer.
    fn take(counter: &RedisCache, units: u64) -> Counted {
        let (tx, rx) = crossbeam_channel::bounded(1);
        assert!(counter.take(ITEM, units, Box::new(move |c| tx.send(c).unwrap())));
        rx.recv_timeout(Duration::from_secs(5)).unwrap()
    }

    #[test]
    fn takes_all_or_nothing_until_sold_out() {
        let counter = redis("counter-take");
        assert_eq!(take(&counter, 1), Counted::Missing, "no counter yet");
        assert_eq!(counter.set(ITEM, 3, Seeding::IfAbsent), Ok(true));
        assert_eq!(counter.set(ITEM, 99, Seeding::IfAbsent), Ok(false), "a second instance starting");
        assert_eq!(take(&counter, 2), Counted::Taken { left: 1 });
        assert_eq!(take(&counter, 2), Counted::SoldOut, "all or nothing");
        assert_eq!(counter.take_now(ITEM, 1), Ok(Counted::Taken { left: 0 }));
        assert_eq!(take(&counter, 1), Counted::SoldOut);
        assert_eq!(counter.put(ITEM, 2), Ok(true), "a cancelled order");
        assert_eq!(take(&counter, 2), Counted::Taken { left: 0 });
        assert_eq!(counter.set(ITEM, 5, Seeding::Replace), Ok(true));
        assert_eq!(take(&counter, 5), Counted::Taken { left: 0 });
    }

    #[test]
    fn a_missing_counter_is_not_created_by_returns() {
        let counter = redis("counter-put");
        assert_eq!(counter.put(ITEM, 2), Ok(false));
        assert_eq!(take(&counter, 1), Counted::Missing);
        assert_eq!(SharedCounter::claim_rebuild(&counter, ITEM, 60_000), Ok(true));
        assert_eq!(SharedCounter::claim_rebuild(&counter, ITEM, 60_000), Ok(false), "one rebuild at a time");
    }

    #[test]
    fn the_script_is_sent_again_when_the_server_forgot_it() {
        let counter = redis("counter-noscript");
        counter.set(ITEM, 2, Seeding::IfAbsent).unwrap();
        assert_eq!(take(&counter, 1), Counted::Taken { left: 1 });
        counter.run(|client| async move { client.script_flush(false).await }).unwrap();
        assert_eq!(take(&counter, 1), Counted::Taken { left: 0 });
    }
}
