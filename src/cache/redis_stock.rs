//! The shared stock pool on Redis: [`SharedPool`] for [`RedisCache`], one
//! Lua script per operation, each touching one key, so that every script
//! runs atomically on one node of a Redis Cluster too.
//!
//! **Keys.** Shard `s` of item `i` is the hash `{prefix}{i:s}` — the braces
//! are its hash tag, different for every shard, so a cluster places the
//! shards of a hot item on different slots. Fields: `pool` (units in no
//! allotment), `epoch` (the pool's generation, from the store's
//! `items.pool_epoch`; absent means 0) and one `L:{lease}` per lease taken
//! from it, `units:expiry_ms`
//! with the expiry on Redis's own clock (`TIME`), so instances' clocks never
//! matter. `{prefix}{i:r}` is the short-lived claim of a pool's rebuild.
//!
//! **Scripts** are sent with EVALSHA; a server that does not know one
//! (restarted, or another cluster node) answers NOSCRIPT, and the call is
//! sent again with EVAL, which also caches it there.

use fred::prelude::*;

use super::redis::RedisCache;
use super::{Cache, CacheEvent};
use crate::stock::leased::{ShardAsk, ShardGrant, ShardLease, SharedPool};
use crate::stock::{ItemId, Seeding, SourceError};

/// Redis's clock in milliseconds, and a lease's `units:expiry` parsed; the
/// parts shared by the scripts that need them.
const PRELUDE: &str = r"
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function parse(lease)
  local units, expires = string.match(lease, '^(%d+):(%d+)$')
  return tonumber(units), tonumber(expires)
end
";

/// KEYS[1] shard; ARGV lease, held_here, chunk_max, lease_ms.
/// Returns {status, units, pool_left, held_elsewhere, epoch}; status 0
/// granted, 1 the caller's lease was fenced, 2 the shard is missing, 3 a
/// lease on it lapsed (nothing granted: a rebuild from the store settles it,
/// since its holder may have sold units it never reported).
const REFILL: &str = r"
local key, me = KEYS[1], 'L:' .. ARGV[1]
local held_here, chunk_max, lease_ms = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local pool = redis.call('HGET', key, 'pool')
if not pool then return {2, 0, 0, 0, 0} end
pool = tonumber(pool)
local epoch = tonumber(redis.call('HGET', key, 'epoch') or '0')
local now = now_ms()
local fields = redis.call('HGETALL', key)
local elsewhere, holders, mine, lapsed = 0, 1, nil, false
for i = 1, #fields, 2 do
  if string.sub(fields[i], 1, 2) == 'L:' then
    local units, expires = parse(fields[i + 1])
    if expires <= now then
      lapsed = true
    elseif fields[i] == me then
      mine = units
    else
      elsewhere = elsewhere + units
      holders = holders + 1
    end
  end
end
if lapsed then return {3, 0, pool, elsewhere, epoch} end
if held_here > 0 and not mine then return {1, 0, pool, elsewhere, epoch} end
-- Halves as the pool runs low, but never below an eighth of chunk_max: the
-- tail of a shard would otherwise cost a round trip per unit or two.
local chunk = math.min(chunk_max, pool, math.max(math.ceil(pool / (2 * holders)), math.ceil(chunk_max / 8)))
pool = pool - chunk
redis.call('HSET', key, 'pool', pool)
if chunk > 0 or mine then
  redis.call('HSET', key, me, ((mine or 0) + chunk) .. ':' .. (now + lease_ms))
end
return {0, chunk, pool, elsewhere, epoch}
";

/// KEYS[1] shard; ARGV lease, units, lease_ms. Returns {status, lapsed}:
/// 0 kept (0 units ends the lease), 1 fenced (gone; lapsed = 1 if it
/// expired, left for a rebuild to settle), 2 the shard is missing.
const RENEW: &str = r"
local key, me = KEYS[1], 'L:' .. ARGV[1]
local units, lease_ms = tonumber(ARGV[2]), tonumber(ARGV[3])
if redis.call('HEXISTS', key, 'pool') == 0 then return {2, 0} end
local lease = redis.call('HGET', key, me)
if not lease then return {1, 0} end
local have, expires = parse(lease)
local now = now_ms()
if expires <= now then return {1, 1} end
if units > have then units = have end
if units == 0 then
  redis.call('HDEL', key, me)
else
  redis.call('HSET', key, me, units .. ':' .. (now + lease_ms))
end
return {0, 0}
";

/// KEYS[1] shard; ARGV lease, units. Ends a live lease, at most `units` of
/// it back to the pool; a lapsed one is left for a rebuild. Returns {returned}.
const RELEASE: &str = r"
local key, me = KEYS[1], 'L:' .. ARGV[1]
local lease = redis.call('HGET', key, me)
if not lease then return {0} end
local have, expires = parse(lease)
if expires <= now_ms() then return {0} end
local back = math.min(have, tonumber(ARGV[2]))
redis.call('HDEL', key, me)
redis.call('HINCRBY', key, 'pool', back)
return {back}
";

/// KEYS[1] shard; ARGV units, epoch ('' for any). Returns {1} if added, {0}
/// if the shard is missing or of another generation than `epoch`.
const PUT: &str = r"
if redis.call('HEXISTS', KEYS[1], 'pool') == 0 then return {0} end
if ARGV[2] ~= '' and (redis.call('HGET', KEYS[1], 'epoch') or '0') ~= ARGV[2] then return {0} end
redis.call('HINCRBY', KEYS[1], 'pool', ARGV[1])
return {1}
";

/// KEYS[1] shard; ARGV units. Takes at most `units` out of the pool for
/// good. Returns {taken}.
const TAKE: &str = r"
local pool = redis.call('HGET', KEYS[1], 'pool')
if not pool then return {0} end
local taken = math.min(tonumber(pool), tonumber(ARGV[1]))
if taken > 0 then redis.call('HINCRBY', KEYS[1], 'pool', -taken) end
return {taken}
";

/// KEYS[1] shard; ARGV units, 'absent' or 'replace', epoch. Returns {1} if
/// written; a shard of a newer generation is never replaced by an older one.
const SEED: &str = r"
if ARGV[2] == 'absent' and redis.call('EXISTS', KEYS[1]) == 1 then return {0} end
local was = redis.call('HGET', KEYS[1], 'epoch')
if was and tonumber(was) > tonumber(ARGV[3]) then return {0} end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'pool', ARGV[1], 'epoch', ARGV[3])
return {1}
";

/// KEYS[1] shard. Returns {1, units}: its pool plus every lease taken from
/// it, lapsed ones included (a rebuild settles them); {0, 0} if missing.
const COUNT: &str = r"
local fields = redis.call('HGETALL', KEYS[1])
if #fields == 0 then return {0, 0} end
local units = 0
for i = 1, #fields, 2 do
  if fields[i] == 'pool' then
    units = units + tonumber(fields[i + 1])
  elseif string.sub(fields[i], 1, 2) == 'L:' then
    units = units + parse(fields[i + 1])
  end
end
return {1, units}
";

/// One script: its text (with the prelude) and its SHA-1 once known.
#[derive(Debug)]
pub(super) struct Script {
    pub(super) lua: String,
    pub(super) sha: std::sync::OnceLock<String>,
}

impl Script {
    fn new(body: &str) -> Self {
        Self::plain(&format!("{PRELUDE}{body}"))
    }

    /// A script without the prelude: what it says is all it runs.
    pub(super) fn plain(lua: &str) -> Self {
        Self { lua: lua.to_owned(), sha: std::sync::OnceLock::new() }
    }
}

/// The pool's scripts, loaded lazily.
#[derive(Debug)]
struct StockScripts {
    refill: Script,
    renew: Script,
    release: Script,
    put: Script,
    take: Script,
    seed: Script,
    count: Script,
}

impl StockScripts {
    fn new() -> Self {
        Self {
            refill: Script::new(REFILL),
            renew: Script::new(RENEW),
            release: Script::new(RELEASE),
            put: Script::new(PUT),
            take: Script::new(TAKE),
            seed: Script::new(SEED),
            count: Script::new(COUNT),
        }
    }
}

pub(super) fn failed(e: impl std::fmt::Display) -> SourceError {
    SourceError(e.to_string())
}

fn unsigned(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

impl RedisCache {
    fn shard_key(&self, item: ItemId, shard: u32) -> String {
        format!("{}{{{item}:{shard}}}", self.prefix())
    }

    /// Runs `script` on `key`: EVALSHA, or EVAL when the server does not
    /// know it (its SHA-1 is learnt from the first SCRIPT LOAD).
    pub(super) fn eval(
        &self,
        script: &'static Script,
        key: String,
        args: Vec<String>,
    ) -> Result<Vec<i64>, SourceError> {
        let lua = script.lua.as_str();
        let sha = match script.sha.get() {
            Some(sha) => sha.clone(),
            None => match self.run(move |client| async move { client.script_load::<String, _>(lua).await }) {
                Ok(sha) => script.sha.get_or_init(|| sha).clone(),
                // A server that will not load it (a cluster may refuse a
                // keyless command): EVAL this time, and learn the SHA later.
                Err(_) => {
                    return self.run(move |client| async move { client.eval(lua, key, args).await }).map_err(failed);
                }
            },
        };
        self.run(move |client| async move {
            match client.evalsha::<Vec<i64>, _, _, _>(sha, key.clone(), args.clone()).await {
                Err(e) if e.details().starts_with("NOSCRIPT") => client.eval(lua, key, args).await,
                result => result,
            }
        })
        .map_err(failed)
    }
}

/// The scripts live as long as the program: the bridge's jobs are `'static`.
fn scripts() -> &'static StockScripts {
    static SCRIPTS: std::sync::OnceLock<StockScripts> = std::sync::OnceLock::new();
    SCRIPTS.get_or_init(StockScripts::new)
}

impl SharedPool for RedisCache {
    fn refill_shard(&self, item: ItemId, shard: u32, ask: ShardAsk<'_>) -> Result<ShardGrant, SourceError> {
        let args =
            vec![ask.lease.to_owned(), ask.held_here.to_string(), ask.chunk_max.to_string(), ask.lease_ms.to_string()];
        let reply = self.eval(&scripts().refill, self.shard_key(item, shard), args)?;
        let [status, units, pool_left, held_elsewhere, epoch] = reply[..] else {
            return Err(SourceError(format!("refill script answered {reply:?}")));
        };
        Ok(match status {
            0 => ShardGrant::Granted {
                units: unsigned(units),
                pool_left: unsigned(pool_left),
                held_elsewhere: unsigned(held_elsewhere),
                epoch: unsigned(epoch),
            },
            1 => ShardGrant::Revoked,
            3 => ShardGrant::Lapsed,
            _ => ShardGrant::Lost,
        })
    }

    fn renew_shard(
        &self,
        item: ItemId,
        shard: u32,
        lease: &str,
        units: u64,
        lease_ms: u64,
    ) -> Result<ShardLease, SourceError> {
        let args = vec![lease.to_owned(), units.to_string(), lease_ms.to_string()];
        let reply = self.eval(&scripts().renew, self.shard_key(item, shard), args)?;
        Ok(match reply[..] {
            [0, _] => ShardLease::Kept,
            [1, lapsed] => ShardLease::Revoked { lapsed: lapsed == 1 },
            [2, _] => ShardLease::Lost,
            _ => return Err(SourceError(format!("renew script answered {reply:?}"))),
        })
    }

    fn release_shard(&self, item: ItemId, shard: u32, lease: &str, units: u64) -> Result<u64, SourceError> {
        let args = vec![lease.to_owned(), units.to_string()];
        let reply = self.eval(&scripts().release, self.shard_key(item, shard), args)?;
        Ok(reply.first().copied().map_or(0, unsigned))
    }

    fn put_units(&self, item: ItemId, shard: u32, units: u64, epoch: Option<u64>) -> Result<bool, SourceError> {
        let epoch = epoch.map(|e| e.to_string()).unwrap_or_default();
        let reply = self.eval(&scripts().put, self.shard_key(item, shard), vec![units.to_string(), epoch])?;
        Ok(reply.first() == Some(&1))
    }

    fn take_units(&self, item: ItemId, shard: u32, units: u64) -> Result<u64, SourceError> {
        let reply = self.eval(&scripts().take, self.shard_key(item, shard), vec![units.to_string()])?;
        Ok(reply.first().copied().map_or(0, unsigned))
    }

    fn seed_shard(
        &self,
        item: ItemId,
        shard: u32,
        units: u64,
        seeding: Seeding,
        epoch: u64,
    ) -> Result<bool, SourceError> {
        let mode = match seeding {
            Seeding::IfAbsent => "absent",
            Seeding::Replace => "replace",
        };
        let args = vec![units.to_string(), mode.to_owned(), epoch.to_string()];
        let reply = self.eval(&scripts().seed, self.shard_key(item, shard), args)?;
        Ok(reply.first() == Some(&1))
    }

    fn count_shard(&self, item: ItemId, shard: u32) -> Result<Option<u64>, SourceError> {
        let reply = self.eval(&scripts().count, self.shard_key(item, shard), Vec::new())?;
        Ok(match reply[..] {
            [1, units] => Some(unsigned(units)),
            _ => None,
        })
    }

    fn holds_lease(&self, item: ItemId, shard: u32, lease: &str) -> Result<bool, SourceError> {
        let (key, field) = (self.shard_key(item, shard), format!("L:{lease}"));
        self.run(move |client| async move { client.hexists::<bool, _, _>(key, field).await }).map_err(failed)
    }

    fn claim_rebuild(&self, item: ItemId, ttl_ms: u64) -> Result<bool, SourceError> {
        let key = format!("{}{{{item}:r}}", self.prefix());
        let ttl = i64::try_from(ttl_ms.max(1)).unwrap_or(i64::MAX);
        let set: Option<String> = self
            .run(move |client| async move {
                client.set(key, "1", Some(Expiration::PX(ttl)), Some(SetOptions::NX), false).await
            })
            .map_err(failed)?;
        Ok(set.is_some())
    }

    fn end_rebuild(&self, item: ItemId) -> Result<(), SourceError> {
        let key = format!("{}{{{item}:r}}", self.prefix());
        self.run(move |client| async move { client.del::<i64, _>(key).await }).map(drop).map_err(failed)
    }

    fn announce_returned(&self, item: ItemId) {
        if let Err(e) = self.announce(&CacheEvent::StockReturned(item)) {
            crate::log!(crate::log::Level::Warn, "returned stock not announced", item_id = item, error = e);
        }
    }
}

/// The scripts against a real Redis (`SECKILL_TEST_REDIS_URL`, default the
/// local one), each test under its own key prefix.
#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;
    use crate::cache::redis::test_options;
    use crate::stock::leased::{LeaseSettings, LeasedSource};
    use crate::stock::{Beyond, Refill, Renewal, Return, StockSource};

    const ITEM: ItemId = 7;

    fn redis(test: &str) -> RedisCache {
        RedisCache::open(&test_options(test)).expect("Redis for the stock pool tests (tests/run starts one)")
    }

    fn ask(lease: &str, held_here: u64, chunk_max: u64) -> ShardAsk<'_> {
        ShardAsk { lease, held_here, chunk_max, lease_ms: 60_000 }
    }

    fn granted(grant: ShardGrant) -> (u64, u64, u64) {
        match grant {
            ShardGrant::Granted { units, pool_left, held_elsewhere, .. } => (units, pool_left, held_elsewhere),
            other => panic!("expected a grant, got {other:?}"),
        }
    }

    #[test]
    fn seeding_if_absent_happens_once_and_replace_always() {
        let pool = redis("seed");
        assert_eq!(pool.seed_shard(ITEM, 0, 10, Seeding::IfAbsent, 0), Ok(true));
        assert_eq!(pool.seed_shard(ITEM, 0, 99, Seeding::IfAbsent, 0), Ok(false), "a second instance starting");
        assert_eq!(granted(pool.refill_shard(ITEM, 0, ask("a", 0, 8)).unwrap()), (5, 5, 0));
        assert_eq!(pool.seed_shard(ITEM, 0, 3, Seeding::Replace, 0), Ok(true));
        // The lease went with the old pool: its holder is fenced.
        assert_eq!(pool.refill_shard(ITEM, 0, ask("a", 5, 100)), Ok(ShardGrant::Revoked));
        assert_eq!(granted(pool.refill_shard(ITEM, 0, ask("b", 0, 8)).unwrap()), (2, 1, 0));
    }

    /// The chunk is min(chunk_max, pool, max(ceil(pool / (2 × holders)), ceil(chunk_max / 8))).
    #[test]
    fn chunks_shrink_as_the_pool_runs_low_and_holders_multiply() {
        let pool = redis("chunks");
        pool.seed_shard(ITEM, 0, 1_000, Seeding::IfAbsent, 0).unwrap();
        assert_eq!(granted(pool.refill_shard(ITEM, 0, ask("a", 0, 100)).unwrap()), (100, 900, 0), "capped");
        // Two holders now (a, and b asking): ceil(900 / 4) = 225, capped at 300.
        assert_eq!(granted(pool.refill_shard(ITEM, 0, ask("b", 0, 300)).unwrap()), (225, 675, 100));
        pool.seed_shard(ITEM, 1, 60, Seeding::IfAbsent, 0).unwrap();
        let mut chunks = Vec::new();
        loop {
            let held: u64 = chunks.iter().sum();
            let (units, left, _) = granted(pool.refill_shard(ITEM, 1, ask("a", held, 100)).unwrap());
            chunks.push(units);
            if left == 0 {
                break;
            }
        }
        assert_eq!(chunks, vec![30, 15, 13, 2], "halving down to the floor of 13, then what is left");
        assert_eq!(granted(pool.refill_shard(ITEM, 1, ask("b", 0, 100)).unwrap()), (0, 0, 60), "held by a");
    }

    /// A lapsed lease's units never go back by themselves (its holder may
    /// have sold some): the shard grants nothing until a rebuild settles it,
    /// and the holder is fenced.
    #[test]
    fn an_expired_lease_stops_its_shard_until_a_rebuild_and_its_holder_is_fenced() {
        let pool = redis("expiry");
        pool.seed_shard(ITEM, 0, 10, Seeding::IfAbsent, 0).unwrap();
        // A lease of 0 ms has expired by the next call, whatever the clock.
        let lapsing = ShardAsk { lease_ms: 0, ..ask("a", 0, 4) };
        assert_eq!(granted(pool.refill_shard(ITEM, 0, lapsing).unwrap()), (4, 6, 0));
        assert_eq!(pool.refill_shard(ITEM, 0, ask("b", 0, 1)), Ok(ShardGrant::Lapsed));
        assert_eq!(pool.release_shard(ITEM, 0, "a", 4), Ok(0), "a lapsed lease is not handed back either");
        assert_eq!(pool.renew_shard(ITEM, 0, "a", 4, 60_000), Ok(ShardLease::Revoked { lapsed: true }));
        assert_eq!(pool.count_shard(ITEM, 0), Ok(Some(10)), "its units are still counted");
        assert_eq!(pool.seed_shard(ITEM, 0, 7, Seeding::Replace, 1), Ok(true), "the rebuild");
        assert_eq!(pool.renew_shard(ITEM, 0, "a", 4, 60_000), Ok(ShardLease::Revoked { lapsed: false }));
        assert_eq!(pool.refill_shard(ITEM, 0, ask("a", 4, 1)), Ok(ShardGrant::Revoked));
        assert_eq!(granted(pool.refill_shard(ITEM, 0, ask("b", 0, 1)).unwrap()), (1, 6, 0));
    }

    #[test]
    fn renewals_shrink_leases_and_expired_ones_are_fenced() {
        let pool = redis("renew");
        pool.seed_shard(ITEM, 0, 20, Seeding::IfAbsent, 0).unwrap();
        pool.refill_shard(ITEM, 0, ask("a", 0, 8)).unwrap();
        assert_eq!(pool.renew_shard(ITEM, 0, "a", 50, 60_000), Ok(ShardLease::Kept), "never grows");
        assert_eq!(granted(pool.refill_shard(ITEM, 0, ask("b", 0, 1)).unwrap()).2, 8);
        assert_eq!(pool.renew_shard(ITEM, 0, "a", 3, 60_000), Ok(ShardLease::Kept));
        assert_eq!(granted(pool.refill_shard(ITEM, 0, ask("b", 1, 1)).unwrap()).2, 3);
        // Renewed with 0 ms: expired at the next renewal, left for a rebuild.
        assert_eq!(pool.renew_shard(ITEM, 0, "a", 3, 0), Ok(ShardLease::Kept));
        assert_eq!(pool.renew_shard(ITEM, 0, "a", 3, 60_000), Ok(ShardLease::Revoked { lapsed: true }));
        assert_eq!(pool.renew_shard(ITEM, 1, "a", 3, 60_000), Ok(ShardLease::Lost), "no such shard");
    }

    #[test]
    fn releases_and_returns_go_back_to_the_pool() {
        let pool = redis("release");
        pool.seed_shard(ITEM, 0, 10, Seeding::IfAbsent, 0).unwrap();
        assert_eq!(granted(pool.refill_shard(ITEM, 0, ask("a", 0, 6)).unwrap()), (5, 5, 0));
        assert_eq!(pool.release_shard(ITEM, 0, "a", 9), Ok(5), "at most what the lease holds");
        assert_eq!(pool.release_shard(ITEM, 0, "a", 9), Ok(0), "the lease is over");
        assert_eq!(pool.put_units(ITEM, 0, 2, None), Ok(true));
        assert_eq!(pool.put_units(ITEM, 3, 2, None), Ok(false), "a missing shard is not created");
        assert_eq!(granted(pool.refill_shard(ITEM, 0, ask("b", 0, 8)).unwrap()), (6, 6, 0));
    }

    #[test]
    fn a_count_adds_the_pool_and_every_lease() {
        let pool = redis("count");
        assert_eq!(pool.count_shard(ITEM, 0), Ok(None), "missing");
        pool.seed_shard(ITEM, 0, 20, Seeding::IfAbsent, 0).unwrap();
        pool.refill_shard(ITEM, 0, ask("a", 0, 8)).unwrap();
        pool.refill_shard(ITEM, 0, ShardAsk { lease_ms: 0, ..ask("b", 0, 8) }).unwrap();
        assert_eq!(pool.count_shard(ITEM, 0), Ok(Some(20)), "a lapsed lease still counts until a rebuild");
        pool.renew_shard(ITEM, 0, "a", 5, 60_000).unwrap();
        assert_eq!(pool.count_shard(ITEM, 0), Ok(Some(17)), "3 of a's units sold");
    }

    #[test]
    fn a_rebuild_is_claimed_once() {
        let pool = redis("claim");
        assert_eq!(pool.claim_rebuild(ITEM, 60_000), Ok(true));
        assert_eq!(pool.claim_rebuild(ITEM, 60_000), Ok(false));
        assert_eq!(pool.refill_shard(ITEM, 0, ask("a", 0, 1)), Ok(ShardGrant::Lost));
    }

    #[test]
    fn scripts_unknown_to_the_server_are_sent_again() {
        let pool = redis("noscript");
        pool.seed_shard(ITEM, 0, 1, Seeding::IfAbsent, 0).unwrap();
        pool.run(|client| async move { client.script_flush(false).await }).unwrap();
        assert_eq!(granted(pool.refill_shard(ITEM, 0, ask("a", 0, 1)).unwrap()), (1, 0, 0));
    }

    /// The store's side of a rebuild, as `Store::renew_pool_epoch` answers
    /// it: each call a new generation, with the stock left set by the test.
    #[derive(Debug, Default)]
    struct StoreLeft {
        epoch: AtomicU64,
        units: AtomicU64,
    }

    impl StoreLeft {
        fn with(units: u64) -> Arc<Self> {
            Arc::new(Self { epoch: AtomicU64::new(0), units: AtomicU64::new(units) })
        }
    }

    fn source_on(pool: &Arc<RedisCache>, lease: &str, settings: LeaseSettings, store: &Arc<StoreLeft>) -> LeasedSource {
        let store = store.clone();
        let basis = Box::new(move |_| {
            Some((store.epoch.fetch_add(1, Ordering::SeqCst) + 1, store.units.load(Ordering::SeqCst)))
        });
        LeasedSource::new(pool.clone(), lease.into(), settings, basis)
    }

    fn source(
        pool: &Arc<RedisCache>,
        lease: &str,
        chunk_max: u64,
        lease_ms: u64,
        store: &Arc<StoreLeft>,
    ) -> LeasedSource {
        source_on(pool, lease, LeaseSettings { shards: 4, chunk_max, lease_ms }, store)
    }

    /// Two instances on one pool: 410 only when the pool and every lease are empty.
    #[test]
    fn sold_out_only_when_no_lease_holds_a_unit() {
        let pool = Arc::new(redis("beyond"));
        let store = StoreLeft::with(8);
        let (a, b) = (source(&pool, "a", 100, 60_000, &store), source(&pool, "b", 100, 60_000, &store));
        a.seed(ITEM, 8, Seeding::IfAbsent).unwrap();
        b.seed(ITEM, 1_000, Seeding::IfAbsent).unwrap();
        let mut taken = 0;
        while let Refill { units: units @ 1.., .. } = a.refill(ITEM, taken) {
            taken += units;
        }
        assert_eq!(taken, 8, "a leased every unit (2 per shard), b's seed was ignored");
        assert_eq!(b.refill(ITEM, 0), Refill { units: 0, beyond: Beyond::Elsewhere });
        // a sold 5 and renews with 3 left: still elsewhere.
        assert_eq!(a.renew(ITEM, 3), Renewal::Kept);
        assert_eq!(b.refill(ITEM, 0), Refill { units: 0, beyond: Beyond::Elsewhere });
        // a shuts down: its 3 go back, and b gets them.
        a.release(ITEM, 3);
        let mut got = 0;
        while let Refill { units: units @ 1.., .. } = b.refill(ITEM, got) {
            got += units;
        }
        assert_eq!(got, 3);
        assert_eq!(b.renew(ITEM, 0), Renewal::Kept, "all sold");
        assert_eq!(a.refill(ITEM, 0), Refill { units: 0, beyond: Beyond::Nothing });
        assert_eq!(a.returned(ITEM, 2, None), Return::Pooled, "a cancelled order");
        b.units_returned(ITEM);
        assert_eq!(b.refill(ITEM, 0).units + b.refill(ITEM, 0).units, 2);
    }

    /// An instance that sold nothing of its lease since the last renewal
    /// hands it back, and another instance gets the units.
    #[test]
    fn an_idle_lease_is_handed_back() {
        let pool = Arc::new(redis("idle"));
        let store = StoreLeft::with(4);
        let (idle, busy) = (source(&pool, "idle", 100, 60_000, &store), source(&pool, "busy", 100, 60_000, &store));
        idle.seed(ITEM, 4, Seeding::IfAbsent).unwrap();
        let mut held = 0;
        while let Refill { units: units @ 1.., .. } = idle.refill(ITEM, held) {
            held += units;
        }
        assert_eq!(busy.refill(ITEM, 0), Refill { units: 0, beyond: Beyond::Elsewhere });
        assert_eq!(idle.renew(ITEM, held), Renewal::GiveBack);
        idle.release(ITEM, held);
        busy.units_returned(ITEM);
        let mut got = 0;
        while let Refill { units: units @ 1.., .. } = busy.refill(ITEM, got) {
            got += units;
        }
        assert_eq!(got, 4);
    }

    /// A lease that lapses (its holder paused) makes the next refill on its
    /// shard rebuild the pool from the store (which knows what the holder
    /// sold), and the holder's next renewal drops its units: revoked.
    #[test]
    fn a_lapsed_lease_is_settled_by_a_rebuild_and_its_holder_revoked() {
        let pool = Arc::new(redis("lapse"));
        let store = StoreLeft::with(4);
        let paused = source(&pool, "paused", 100, 0, &store);
        let other = source(&pool, "other", 100, 60_000, &store);
        paused.seed(ITEM, 4, Seeding::IfAbsent).unwrap();
        // One unit per shard, each refill from a shard not yet asked.
        let mut held = 0;
        for _ in 0..4 {
            held += paused.refill(ITEM, held).units;
        }
        assert_eq!((held, paused.epoch(ITEM)), (4, Some(1)));
        // The paused instance sold 1 of them; the store knows it.
        store.units.store(3, Ordering::SeqCst);
        assert_eq!(other.refill(ITEM, 0).units, 0, "a lapsed lease: a rebuild, nothing granted meanwhile");
        assert_eq!(other.epoch(ITEM), Some(2));
        let mut got = 0;
        while let Refill { units: units @ 1.., .. } = other.refill(ITEM, got) {
            got += units;
        }
        assert_eq!(got, 3, "what the store says is left, no more");
        assert_eq!(paused.renew(ITEM, 4), Renewal::Revoked);
        assert_eq!(paused.refill(ITEM, 0), Refill { units: 0, beyond: Beyond::Elsewhere });
    }

    #[test]
    fn shards_keep_their_generation_and_refuse_older_ones() {
        let pool = redis("epochs");
        assert_eq!(pool.seed_shard(ITEM, 0, 10, Seeding::Replace, 3), Ok(true));
        let grant = pool.refill_shard(ITEM, 0, ask("a", 0, 2)).unwrap();
        assert!(matches!(grant, ShardGrant::Granted { units: 2, epoch: 3, .. }), "{grant:?}");
        assert_eq!(pool.seed_shard(ITEM, 0, 99, Seeding::Replace, 2), Ok(false), "an older rebuild, late");
        assert_eq!(pool.put_units(ITEM, 0, 1, Some(2)), Ok(false), "units of an older generation");
        assert_eq!(pool.put_units(ITEM, 0, 1, Some(3)), Ok(true));
        assert_eq!(pool.put_units(ITEM, 0, 1, None), Ok(true), "a cancelled order's units, any generation");
        assert_eq!(pool.count_shard(ITEM, 0), Ok(Some(12)));
        assert_eq!(pool.seed_shard(ITEM, 0, 5, Seeding::Replace, 4), Ok(true));
        assert_eq!(pool.count_shard(ITEM, 0), Ok(Some(5)), "the newer generation replaced it, leases and all");
    }

    /// A rebuild (here on demand: `Replace`, as reconcile does) starts a new
    /// generation from the store's figure; the other instance learns it at
    /// its next refill, and a shard an interrupted rebuild left behind
    /// starts another rebuild rather than granting its units.
    #[test]
    fn a_rebuild_starts_a_generation_that_every_instance_adopts() {
        let pool = Arc::new(redis("generations"));
        let store = StoreLeft::with(8);
        let settings = LeaseSettings { shards: 2, chunk_max: 100, lease_ms: 60_000 };
        let (a, b) = (source_on(&pool, "a", settings, &store), source_on(&pool, "b", settings, &store));
        a.seed(ITEM, 0, Seeding::IfAbsent).unwrap();
        assert_eq!(a.epoch(ITEM), Some(1), "a built the pool");
        assert!(b.refill(ITEM, 0).units > 0);
        assert_eq!(b.epoch(ITEM), Some(1), "b learnt it from a shard");
        store.units.store(6, Ordering::SeqCst);
        a.seed(ITEM, 0, Seeding::Replace).unwrap();
        assert_eq!(a.epoch(ITEM), Some(2));
        assert_eq!(pool.count_shard(ITEM, 0).unwrap().zip(pool.count_shard(ITEM, 1).unwrap()), Some((3, 3)));
        let mut got = b.refill(ITEM, 0).units;
        assert_eq!(b.epoch(ITEM), Some(2), "b's next grant is of the new pool");
        got += b.refill(ITEM, got).units;
        assert_eq!(got, 6, "the new pool's units, none of the old ones");
        // A rebuild cut short: shard 1 still of generation 2 while 3 exists.
        pool.seed_shard(ITEM, 0, 4, Seeding::Replace, 3).unwrap();
        pool.seed_shard(ITEM, 1, 4, Seeding::Replace, 2).unwrap();
        let c = source_on(&pool, "c", LeaseSettings { shards: 2, ..settings }, &store);
        // c sees 3 first or 2 first; either way, once it has seen 3, a shard
        // of 2 makes it rebuild (generation 4 from the store, 6 units).
        for _ in 0..4 {
            c.refill(ITEM, 0);
        }
        let epochs: Vec<u64> = (0..2)
            .map(|shard| match pool.refill_shard(ITEM, shard, ask("d", 0, 1)).unwrap() {
                ShardGrant::Granted { epoch, .. } => epoch,
                other => panic!("{other:?}"),
            })
            .collect();
        assert!(epochs.iter().all(|&e| e == epochs[0] && e >= 3), "one generation again: {epochs:?}");
    }
}
