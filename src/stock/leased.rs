//! [`LeasedSource`]: the stock source of several instances sharing one pool
//! per item (issue 7). Instances sell from local allotments leased in chunks
//! from the pool; the pool itself lives behind [`SharedPool`] (Redis, in
//! `crate::cache::redis_stock`), so this module knows leases, not Redis.
//!
//! **The pool.** An item's units not in any allotment are split over
//! `stock_shards` shards (in Redis: one key each, with its own hash tag, so a
//! Redis Cluster spreads a hot item over several nodes). Each shard also
//! records the leases taken from it: `lease id → units, expiry`. Every
//! operation on a shard is one atomic script on that shard alone.
//!
//! **A refill** asks one shard, starting at a random one and skipping shards
//! this instance last saw empty (a per-item bitmap, cleared when another
//! instance announces returned units); it asks the next shard only if that
//! one had nothing. The shard grants `min(lease_chunk_max, pool,
//! max(ceil(pool / (2 × holders)), ceil(lease_chunk_max / 8)))` where
//! `holders` counts the live leases on the shard, this one included: the
//! chunk shrinks as the pool runs low and as more instances sell, so the last
//! units are not hoarded by one instance while another answers 503; the
//! floor keeps a shard's tail from costing a round trip per unit. A shard that
//! holds a lapsed lease grants nothing and answers `Lapsed`: see below.
//!
//! **Leases** expire `lease_ms` after their last renewal. The refiller
//! renews every item a few times per period ([`StockSource::renew`]): the
//! units sold since the last renewal are subtracted from the leases (they
//! are in orders now, whose outcome the store decides), the rest is
//! extended; a lease of which nothing sold since the last renewal is handed
//! back ([`Renewal::GiveBack`]), so that an idle instance does not keep
//! units from busy ones. A lease that lapsed (its holder was paused, killed
//! or cut off) or is gone (wiped with the pool) is **fenced**: the renewal
//! answers [`Renewal::Revoked`] and the local units are dropped unsold, and
//! a lease whose renewal is overdue here is treated the same way without
//! asking.
//!
//! **A lapsed lease is settled by a rebuild**, never by handing its units
//! back: its holder may have sold some of them since its last renewal, in
//! orders committed or still on their way, which no one but the store
//! knows. So the first refill (or the holder's renewal) that finds it starts
//! a rebuild (below): the pool's new generation counts from the store what
//! is really left, and the holder's orders still in flight carry the old
//! generation and are fenced at commit. A restarted node that finds a lease
//! of its previous run (killed) does the same.
//!
//! **Answers.** While some shard has units, `Beyond::Pool` (refill, 503
//! meanwhile); when every shard is empty but other instances' leases still
//! hold units, `Elsewhere` (503); only when every shard is empty and no other
//! lease holds a unit, `Nothing` (410).
//!
//! **Recovery and fencing.** A shard that is missing (Redis lost its data)
//! makes the refill answer `Pool` with no units (503) and start a rebuild:
//! the one instance that claims it starts a new generation of the pool in
//! the store (`Store::renew_pool_epoch`: `items.pool_epoch` + 1 and the stock
//! left, `total − pending − paid`, in one transaction) and replaces every
//! shard with its share, stamped with that epoch; every lease on the old
//! pool is gone with it. Units carry their generation from the shard to the
//! allotment (its counter word holds it beside the count) and on to the
//! order, and the store refuses an order of an older generation than the
//! item's (`OrderOutcome::Fenced`, 503): the rebuild counted its units as
//! unsold, so they are not sold twice — whether its instance was paused,
//! partitioned or merely slow to notice. A shard still of an older
//! generation than one already seen (a rebuild cut short) starts another
//! rebuild. Admin changes of an item's stock and reconcile rebuild the same
//! way (`Seeding::Replace`), and a start-up that finds no whole pool too.
//! The store's conditional stock update stays the last word.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::ItemId;
use super::source::{Beyond, Refill, Renewal, Return, Seeding, SourceError, StockSource};

/// Most shards per item: the empty-shard bitmap is one `u64`.
pub const SHARDS_MAX: u32 = 64;

/// What a refill asks of one shard.
#[derive(Clone, Copy, Debug)]
pub struct ShardAsk<'a> {
    /// This instance's lease id.
    pub lease: &'a str,
    /// Units this instance believes it holds under its lease on the shard:
    /// when above 0, a missing lease means it was fenced.
    pub held_here: u64,
    pub chunk_max: u64,
    pub lease_ms: u64,
}

/// A shard's answer to a refill.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShardGrant {
    /// `units` leased to the caller (possibly 0); `pool_left` units stay in
    /// the shard, and other instances' live leases on it hold
    /// `held_elsewhere`. The shard belongs to generation `epoch` of the pool.
    Granted { units: u64, pool_left: u64, held_elsewhere: u64, epoch: u64 },
    /// The caller's lease on the shard is gone: it was fenced.
    Revoked,
    /// A lease on the shard lapsed: nothing granted until a rebuild settles it.
    Lapsed,
    /// The shard does not exist: the pool was lost.
    Lost,
}

/// A shard's answer to a renewal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShardLease {
    Kept,
    /// The lease is gone, or (`lapsed`) expired and left for a rebuild to settle.
    Revoked {
        lapsed: bool,
    },
    Lost,
}

/// The shared pool, one atomic operation per call on one shard. Every call
/// may block on the network; none is made on an event loop.
pub trait SharedPool: Send + Sync + std::fmt::Debug {
    fn refill_shard(&self, item: ItemId, shard: u32, ask: ShardAsk<'_>) -> Result<ShardGrant, SourceError>;
    /// Sets the caller's lease on the shard to `units` (never more than it
    /// holds), expiring `lease_ms` from now; 0 ends it.
    fn renew_shard(
        &self,
        item: ItemId,
        shard: u32,
        lease: &str,
        units: u64,
        lease_ms: u64,
    ) -> Result<ShardLease, SourceError>;
    /// Ends the caller's lease on the shard, `units` of it back to the pool
    /// (at most what the lease holds; nothing if the lease is gone, and a
    /// lapsed lease is left for a rebuild). Returns the units that went back.
    fn release_shard(&self, item: ItemId, shard: u32, lease: &str, units: u64) -> Result<u64, SourceError>;
    /// Takes up to `units` out of the shard's pool for good; returns how many.
    fn take_units(&self, item: ItemId, shard: u32, units: u64) -> Result<u64, SourceError>;
    /// `units` into the shard's pool; false if the shard is missing (lost),
    /// or, when `epoch` is given, of another generation (the units were
    /// counted by a rebuild already).
    fn put_units(&self, item: ItemId, shard: u32, units: u64, epoch: Option<u64>) -> Result<bool, SourceError>;
    /// Creates the shard with `units` in its pool, no lease, and generation
    /// `epoch`; with `IfAbsent`, only if it does not exist, with `Replace`,
    /// unless it holds a newer generation (a later rebuild won). True if it
    /// was written.
    fn seed_shard(
        &self,
        item: ItemId,
        shard: u32,
        units: u64,
        seeding: Seeding,
        epoch: u64,
    ) -> Result<bool, SourceError>;
    /// The shard's pool plus every lease on it; `None` if it is missing.
    fn count_shard(&self, item: ItemId, shard: u32) -> Result<Option<u64>, SourceError>;
    /// Whether `lease` (live or lapsed) is on the shard.
    fn holds_lease(&self, item: ItemId, shard: u32, lease: &str) -> Result<bool, SourceError>;
    /// Claims the rebuild of a lost pool for `ttl_ms`; true for one claimant.
    fn claim_rebuild(&self, item: ItemId, ttl_ms: u64) -> Result<bool, SourceError>;
    /// Ends a claim once its rebuild is done, so that the next one (another
    /// loss) need not wait for it to lapse.
    fn end_rebuild(&self, item: ItemId) -> Result<(), SourceError>;
    /// Tells every instance that units of `item` went back into the pool.
    fn announce_returned(&self, item: ItemId);
}

/// How leases are sized and timed (`sale.stock_shards`, `sale.lease_chunk_max`, `sale.lease_ms`).
#[derive(Clone, Copy, Debug)]
pub struct LeaseSettings {
    pub shards: u32,
    pub chunk_max: u64,
    pub lease_ms: u64,
}

/// A new generation of an item's pool from the store, for a rebuild:
/// `(epoch, stock left)`, the stock left being `total − pending − paid`
/// (`Store::renew_pool_epoch`); `None` if the store cannot be reached.
pub type PoolBasis = Box<dyn Fn(ItemId) -> Option<(u64, u64)> + Send + Sync>;

/// This instance's leases on one item.
#[derive(Debug, Default)]
struct Leases {
    /// Units held under the lease on each shard, as the shards last agreed.
    held: Vec<u64>,
    /// Shards last seen with an empty pool (bit per shard).
    empty: u64,
    /// A shard fenced this instance's lease: the next renewal drops the units here.
    revoked: bool,
    /// When the leases were last renewed (or first taken).
    renewed: Option<Instant>,
    /// The newest pool generation seen (by a refill, or made by a rebuild here).
    epoch: Option<u64>,
}

/// The distributed stock source. See the module doc.
pub struct LeasedSource {
    pool: Arc<dyn SharedPool>,
    lease: String,
    settings: LeaseSettings,
    items: Mutex<HashMap<ItemId, Leases>>,
    /// One lease operation (refill, renewal, release, seeding) at a time: a
    /// refill that read a shard's lease as held while a renewal was ending
    /// it would find itself fenced. The refiller makes nearly all of them.
    serial: Mutex<()>,
    pool_basis: PoolBasis,
}

impl std::fmt::Debug for LeasedSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeasedSource").field("lease", &self.lease).field("settings", &self.settings).finish()
    }
}

impl LeasedSource {
    /// `lease` names this node's leases: kept in its data directory, so that
    /// a restart reclaims what a killed run held (see [`StockSource::seed`]).
    pub fn new(pool: Arc<dyn SharedPool>, lease: String, settings: LeaseSettings, pool_basis: PoolBasis) -> Self {
        assert!((1..=SHARDS_MAX).contains(&settings.shards), "stock shards {} out of 1..=64", settings.shards);
        Self { pool, lease, settings, items: Mutex::new(HashMap::new()), serial: Mutex::new(()), pool_basis }
    }

    fn one_at_a_time(&self) -> MutexGuard<'_, ()> {
        self.serial.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn items(&self) -> MutexGuard<'_, HashMap<ItemId, Leases>> {
        // Each critical section is a few field updates that leave the map whole.
        self.items.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn with<T>(&self, item: ItemId, f: impl FnOnce(&mut Leases) -> T) -> T {
        let mut items = self.items();
        let leases = items.entry(item).or_default();
        if leases.held.is_empty() {
            leases.held = vec![0; self.settings.shards as usize];
        }
        f(leases)
    }

    /// Shards in the order a refill asks them: from a random one, those not
    /// known empty first.
    fn shard_order(&self, empty: u64) -> impl Iterator<Item = u32> + use<> {
        let shards = self.settings.shards;
        let start = rand::random_range(0..shards);
        let ring = (0..shards).map(move |i| (start + i) % shards);
        let known_empty = move |shard: &u32| empty & (1 << shard) != 0;
        ring.clone().filter(move |s| !known_empty(s)).chain(ring.filter(known_empty))
    }

    /// Builds the item's pool anew from the store: a new generation
    /// (`epoch`) and the stock left, read in one store transaction, then
    /// every shard replaced with its share. Orders taken from the old pool
    /// and not yet committed are fenced by the store; every lease on the old
    /// pool is gone with it. With `claim`, only if this instance wins the
    /// claim (a lost pool: every instance notices, one rebuilds).
    fn rebuild(&self, item: ItemId, claim: bool) -> Result<(), SourceError> {
        if claim && !self.pool.claim_rebuild(item, self.settings.lease_ms)? {
            return Ok(());
        }
        let rebuilt = self.rebuild_claimed(item);
        if claim {
            // A failed rebuild lets the next claimant try at once, too.
            let _ = self.pool.end_rebuild(item);
        }
        rebuilt
    }

    fn rebuild_claimed(&self, item: ItemId) -> Result<(), SourceError> {
        let Some((epoch, units)) = (self.pool_basis)(item) else {
            return Err(SourceError("the store cannot be reached for the stock left".into()));
        };
        crate::log!(
            crate::log::Level::Warn,
            "stock pool rebuilt from the store",
            item_id = item,
            units = units,
            epoch = epoch
        );
        let shards = self.settings.shards;
        for shard in 0..shards {
            if !self.pool.seed_shard(item, shard, share(units, shards, shard), Seeding::Replace, epoch)? {
                // A newer generation is there: a later rebuild won; it wrote
                // every shard, or will.
                break;
            }
        }
        // Every lease on the item went with the old pool; the units here are
        // the old pool's, and the next refill's grant drops them.
        self.with(item, |l| {
            *l = Leases { held: vec![0; shards as usize], epoch: Some(epoch), ..Leases::default() };
        });
        self.pool.announce_returned(item);
        Ok(())
    }

    /// Whether every shard of `item` exists.
    fn pool_exists(&self, item: ItemId) -> Result<bool, SourceError> {
        for shard in 0..self.settings.shards {
            if self.pool.count_shard(item, shard)?.is_none() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// A lease this node's previous run held (killed before it could hand
    /// it back) may have sold units since its last renewal, in orders
    /// committed or not: only a rebuild from the store settles it.
    fn reclaim(&self, item: ItemId) -> Result<(), SourceError> {
        for shard in 0..self.settings.shards {
            if self.pool.holds_lease(item, shard, &self.lease)? {
                return self.rebuild(item, true);
            }
        }
        self.units_returned(item);
        Ok(())
    }

    /// Ends every lease on `item`, `units` of them back to the pool
    /// (shrunk by what was sold since the last renewal first).
    fn end_leases(&self, item: ItemId, units: u64) {
        let held = self.with(item, |leases| {
            let held = shrink(&leases.held, units);
            leases.held.iter_mut().for_each(|h| *h = 0);
            leases.revoked = false;
            leases.renewed = None;
            held
        });
        let mut returned = 0;
        for (shard, &units) in (0u32..).zip(&held) {
            if units > 0 {
                returned += self.pool.release_shard(item, shard, &self.lease, units).unwrap_or(0);
            }
        }
        if returned > 0 {
            self.pool.announce_returned(item);
        }
    }

    /// Whether the leases on `item` went unrenewed for longer than a lease
    /// lasts (this process was paused, or the pool unreachable): they may
    /// have lapsed and a rebuild replaced them, so the units here are no
    /// longer safe to sell.
    fn overdue(&self, leases: &Leases) -> bool {
        let lease = Duration::from_millis(self.settings.lease_ms);
        leases.renewed.is_some_and(|at| at.elapsed() >= lease)
    }
}

/// Lease amounts per shard once `left_here` units remain here: the units
/// sold since the last renewal come off the shards in order.
fn shrink(held: &[u64], left_here: u64) -> Vec<u64> {
    let mut sold = held.iter().sum::<u64>().saturating_sub(left_here);
    held.iter()
        .map(|&units| {
            let off = units.min(sold);
            sold -= off;
            units - off
        })
        .collect()
}

/// `units` split over `shards` as evenly as whole units allow.
pub fn share(units: u64, shards: u32, shard: u32) -> u64 {
    let shards = u64::from(shards);
    units / shards + u64::from(u64::from(shard) < units % shards)
}

impl StockSource for LeasedSource {
    fn refill(&self, item: ItemId, _left_here: u64) -> Refill {
        const BUSY: Refill = Refill { units: 0, beyond: Beyond::Pool };
        let _serial = self.one_at_a_time();
        let (held, empty, revoked) = self.with(item, |l| (l.held.clone(), l.empty, l.revoked));
        if revoked {
            // The next renewal drops the fenced units first.
            return BUSY;
        }
        let mut held_elsewhere = false;
        for shard in self.shard_order(empty) {
            let ask = ShardAsk {
                lease: &self.lease,
                held_here: held[shard as usize],
                chunk_max: self.settings.chunk_max,
                lease_ms: self.settings.lease_ms,
            };
            match self.pool.refill_shard(item, shard, ask) {
                Err(_) => return BUSY,
                Ok(ShardGrant::Lost) => {
                    let _ = self.rebuild(item, true);
                    return BUSY;
                }
                Ok(ShardGrant::Revoked) => {
                    self.with(item, |l| l.revoked = true);
                    return BUSY;
                }
                Ok(ShardGrant::Lapsed) => {
                    let _ = self.rebuild(item, true);
                    return BUSY;
                }
                Ok(ShardGrant::Granted { units, pool_left, held_elsewhere: elsewhere, epoch }) => {
                    let known = self.with(item, |l| l.epoch);
                    if known.is_some_and(|known| epoch < known) {
                        // A shard an interrupted rebuild did not reach: its
                        // units were counted into the newer generation.
                        let _ = self.rebuild(item, true);
                        return BUSY;
                    }
                    held_elsewhere |= elsewhere > 0;
                    self.with(item, |l| {
                        if l.epoch != Some(epoch) {
                            // A newer pool: the leases on the old one are gone
                            // with it (the allotment drops its units).
                            *l = Leases { held: vec![0; l.held.len()], epoch: Some(epoch), ..Leases::default() };
                        }
                        l.held[shard as usize] += units;
                        let bit = 1 << shard;
                        l.empty = if pool_left == 0 { l.empty | bit } else { l.empty & !bit };
                        if units > 0 && l.renewed.is_none() {
                            l.renewed = Some(Instant::now());
                        }
                    });
                    if units > 0 {
                        return Refill { units, beyond: Beyond::Pool };
                    }
                }
            }
        }
        let beyond = if held_elsewhere { Beyond::Elsewhere } else { Beyond::Nothing };
        Refill { units: 0, beyond }
    }

    fn release(&self, item: ItemId, units: u64) {
        let _serial = self.one_at_a_time();
        self.end_leases(item, units);
    }

    fn returned(&self, item: ItemId, units: u64, epoch: Option<u64>) -> Return {
        let shard = rand::random_range(0..self.settings.shards);
        match self.pool.put_units(item, shard, units, epoch) {
            Ok(true) => {
                self.pool.announce_returned(item);
                Return::Pooled
            }
            // The pool is being rebuilt from the store, or was since these
            // units were taken: the store counts them as left already.
            Ok(false) => Return::Pooled,
            // The pool cannot be reached: sell them here rather than lose them.
            Err(_) => Return::Local,
        }
    }

    fn renew(&self, item: ItemId, left_here: u64) -> Renewal {
        let _serial = self.one_at_a_time();
        let (before, revoked, overdue) = self.with(item, |l| {
            if l.held.iter().all(|&units| units == 0) {
                // Nothing leased: nothing to renew, nothing that can lapse.
                l.renewed = None;
            }
            (l.held.clone(), l.revoked, self.overdue(l))
        });
        if revoked || overdue {
            self.end_leases(item, left_here);
            return Renewal::Revoked;
        }
        let leased: u64 = before.iter().sum();
        if leased == 0 {
            return Renewal::Kept;
        }
        if left_here >= leased {
            // Nothing sold here since the last renewal: this instance has no
            // buyers for the item, and others may have.
            return Renewal::GiveBack;
        }
        let after = shrink(&before, left_here);
        let (mut fenced, mut lapsed) = (false, false);
        for (shard, (&was, &now)) in (0u32..).zip(before.iter().zip(&after)) {
            if was == 0 {
                continue;
            }
            match self.pool.renew_shard(item, shard, &self.lease, now, self.settings.lease_ms) {
                // Unreachable: keep selling; the lease lapses and is fenced
                // here (`overdue`) if the pool stays away for a whole lease.
                Err(_) => return Renewal::Kept,
                Ok(ShardLease::Kept) => {}
                Ok(ShardLease::Revoked { lapsed: expired }) => {
                    fenced = true;
                    lapsed |= expired;
                }
                Ok(ShardLease::Lost) => fenced = true,
            }
        }
        if fenced {
            self.with(item, |l| l.held.clone_from(&after));
            self.end_leases(item, left_here);
            if lapsed {
                // This instance was away past its lease: settle it now.
                let _ = self.rebuild(item, true);
            }
            return Renewal::Revoked;
        }
        self.with(item, |l| {
            l.held = after;
            l.renewed = Some(Instant::now());
        });
        Renewal::Kept
    }

    /// The store's own figure is what a shared pool is built from, with a
    /// new generation that fences orders of the old one: `units` (this
    /// instance's view, which cannot see other instances' orders in flight)
    /// is not used. `IfAbsent` keeps a whole pool that exists (instances
    /// starting together build it once: whoever wins the claim).
    fn seed(&self, item: ItemId, _units: u64, seeding: Seeding) -> Result<(), SourceError> {
        let _serial = self.one_at_a_time();
        match seeding {
            Seeding::IfAbsent if self.pool_exists(item)? => self.reclaim(item),
            Seeding::IfAbsent => self.rebuild(item, true),
            Seeding::Replace => self.rebuild(item, false),
        }
    }

    fn epoch(&self, item: ItemId) -> Option<u64> {
        self.items().get(&item).and_then(|l| l.epoch)
    }

    fn is_shared(&self) -> bool {
        true
    }

    fn units_returned(&self, item: ItemId) {
        if let Some(leases) = self.items().get_mut(&item) {
            leases.empty = 0;
        }
    }

    fn withdraw(&self, item: ItemId, units: u64) -> Result<bool, SourceError> {
        let _serial = self.one_at_a_time();
        let mut taken = 0;
        for shard in 0..self.settings.shards {
            if taken == units {
                break;
            }
            taken += self.pool.take_units(item, shard, units - taken)?;
        }
        if taken < units {
            // All or none: what was taken goes back.
            if taken > 0 {
                self.pool.put_units(item, 0, taken, None)?;
            }
            return Ok(false);
        }
        Ok(true)
    }

    fn shared_units(&self, item: ItemId) -> Option<u64> {
        let mut units = 0;
        for shard in 0..self.settings.shards {
            units += self.pool.count_shard(item, shard).ok()??;
        }
        Some(units)
    }

    fn add_units(&self, item: ItemId, units: u64) -> Result<(), SourceError> {
        let shard = rand::random_range(0..self.settings.shards);
        if self.pool.put_units(item, shard, units, None)? {
            self.pool.announce_returned(item);
        }
        Ok(())
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn sold_units_come_off_the_first_shards() {
        assert_eq!(shrink(&[5, 0, 7, 3], 15), vec![5, 0, 7, 3], "nothing sold");
        assert_eq!(shrink(&[5, 0, 7, 3], 8), vec![0, 0, 5, 3]);
        assert_eq!(shrink(&[5, 0, 7, 3], 0), vec![0, 0, 0, 0]);
        assert_eq!(shrink(&[2, 2], 9), vec![2, 2], "units here beyond the leases (returned locally)");
    }

    #[test]
    fn stock_splits_evenly_over_shards() {
        let shares: Vec<u64> = (0..4).map(|s| share(10, 4, s)).collect();
        assert_eq!(shares, vec![3, 3, 2, 2]);
        assert_eq!((0..4).map(|s| share(3, 4, s)).sum::<u64>(), 3);
        assert_eq!(share(7, 1, 0), 7);
    }
}
