//! What the nemesis does and when, drawn from one seed: the campaign's
//! fault kinds in fixed proportions, shuffled, then given to the sales with
//! a random moment, target and length each. The same seed and flags draw
//! the same schedule (the system's own timing is not replayed, only the
//! nemesis's choices).

use serde::Serialize;
use std::time::Duration;

/// SplitMix64: a small, fast, seedable generator (no dependency needed for
/// drawing a schedule; it is not for anything secret).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `low..high` (`low` when the range is empty).
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        if high <= low { low } else { low + self.next_u64() % (high - low) }
    }

    pub fn millis(&mut self, low_ms: u64, high_ms: u64) -> Duration {
        Duration::from_millis(self.range(low_ms, high_ms))
    }
}

/// One kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// `kill -9` an instance, restart it on its port after a short downtime.
    KillInstance,
    /// SIGSTOP an instance for longer than `--pause-ms`, then SIGCONT.
    PauseLong,
    /// SIGSTOP an instance for well under a second.
    PauseShort,
    /// `kill -9` redis-server, restart it (empty: it keeps nothing).
    CrashRedis,
    /// `kill -9` mariadbd, restart it on the same data (crash recovery).
    CrashMariadb,
    /// Close an instance's connections to a backend (FIN).
    ProxyDrop,
    /// Reset an instance's connections to a backend (RST).
    ProxyReset,
    /// Add latency to an instance's traffic with a backend, for a while.
    ProxyDelay,
    /// Hold an instance's traffic with a backend, for a while.
    ProxyBlackhole,
}

impl FaultKind {
    /// Every kind with its share of the campaign, in per mille (sums to 1000).
    /// The shares make a 100-fault run meet issue 10's floor: 14 kills,
    /// 14 long pauses, 8 Redis and 8 MariaDB crashes.
    pub const SHARES: [(FaultKind, u64); 9] = [
        (FaultKind::KillInstance, 140),
        (FaultKind::PauseLong, 140),
        (FaultKind::PauseShort, 60),
        (FaultKind::CrashRedis, 80),
        (FaultKind::CrashMariadb, 80),
        (FaultKind::ProxyDrop, 120),
        (FaultKind::ProxyReset, 120),
        (FaultKind::ProxyDelay, 130),
        (FaultKind::ProxyBlackhole, 130),
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::KillInstance => "kill -9 instance",
            FaultKind::PauseLong => "pause instance > --pause-ms",
            FaultKind::PauseShort => "pause instance < 1 s",
            FaultKind::CrashRedis => "kill -9 redis-server",
            FaultKind::CrashMariadb => "kill -9 mariadbd",
            FaultKind::ProxyDrop => "proxy: drop connections",
            FaultKind::ProxyReset => "proxy: reset connections",
            FaultKind::ProxyDelay => "proxy: delay",
            FaultKind::ProxyBlackhole => "proxy: blackhole",
        }
    }
}

/// Which backend a proxy fault is between an instance and.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    Redis,
    Mariadb,
}

/// One fault of one sale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Fault {
    pub kind: FaultKind,
    /// From the start of the sale's buying.
    pub at: Duration,
    /// The instance (for instance and proxy faults).
    pub instance: usize,
    /// The backend (for proxy faults).
    pub backend: Backend,
    /// How long the fault lasts: a pause, a downtime before the restart,
    /// a delay or a blackhole.
    pub hold: Duration,
    /// The latency a delay adds.
    pub latency: Duration,
}

/// The campaign's `total` kinds in [`FaultKind::SHARES`] proportions
/// (largest remainders first), shuffled.
pub fn plan(total: usize, rng: &mut Rng) -> Vec<FaultKind> {
    let total_u = total as u64;
    let mut counts: Vec<(FaultKind, u64, u64)> =
        FaultKind::SHARES.iter().map(|&(kind, share)| (kind, total_u * share / 1000, total_u * share % 1000)).collect();
    let mut short = total_u - counts.iter().map(|c| c.1).sum::<u64>();
    let mut by_remainder: Vec<usize> = (0..counts.len()).collect();
    by_remainder.sort_by_key(|&i| std::cmp::Reverse(counts[i].2));
    for i in by_remainder {
        if short == 0 {
            break;
        }
        counts[i].1 += 1;
        short -= 1;
    }
    let mut kinds: Vec<FaultKind> = counts.iter().flat_map(|&(kind, n, _)| (0..n).map(move |_| kind)).collect();
    // Fisher–Yates.
    for i in (1..kinds.len()).rev() {
        let j = rng.range(0, i as u64 + 1) as usize;
        kinds.swap(i, j);
    }
    kinds
}

/// The limits a sale's faults are drawn within.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Faults start in the first 80% of this (the rest lets the last settle).
    pub buying: Duration,
    pub instances: usize,
    /// A long pause lasts from this to 1.5 times it.
    pub pause_ms: u64,
}

/// Gives each kind a moment, a target and a length; sorted by moment.
pub fn draw(kinds: &[FaultKind], bounds: Bounds, rng: &mut Rng) -> Vec<Fault> {
    let window_ms = bounds.buying.as_millis() as u64 * 4 / 5;
    let mut faults: Vec<Fault> = kinds
        .iter()
        .map(|&kind| {
            let at = rng.millis(0, window_ms.max(1));
            let instance = rng.range(0, bounds.instances as u64) as usize;
            let backend = if rng.range(0, 2) == 0 { Backend::Redis } else { Backend::Mariadb };
            let (hold, latency) = match kind {
                FaultKind::KillInstance => (rng.millis(0, 1_000), Duration::ZERO),
                FaultKind::PauseLong => (rng.millis(bounds.pause_ms, bounds.pause_ms * 3 / 2 + 1), Duration::ZERO),
                FaultKind::PauseShort => (rng.millis(50, 900), Duration::ZERO),
                FaultKind::CrashRedis | FaultKind::CrashMariadb => (rng.millis(0, 1_500), Duration::ZERO),
                FaultKind::ProxyDrop | FaultKind::ProxyReset => (Duration::ZERO, Duration::ZERO),
                FaultKind::ProxyDelay => (rng.millis(500, 3_000), rng.millis(20, 400)),
                FaultKind::ProxyBlackhole => (rng.millis(300, 3_000), Duration::ZERO),
            };
            Fault { kind, at, instance, backend, hold, latency }
        })
        .collect();
    faults.sort_by_key(|f| f.at);
    faults
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_draws_one_schedule() {
        let bounds = Bounds { buying: Duration::from_secs(10), instances: 3, pause_ms: 4_000 };
        let schedule = |seed| {
            let mut rng = Rng::new(seed);
            let kinds = plan(30, &mut rng);
            draw(&kinds, bounds, &mut rng)
        };
        assert_eq!(schedule(7), schedule(7));
        assert_ne!(schedule(7), schedule(8));
    }

    #[test]
    fn a_hundred_faults_meet_the_floor() {
        let kinds = plan(100, &mut Rng::new(1));
        assert_eq!(kinds.len(), 100);
        let count = |k| kinds.iter().filter(|&&x| x == k).count();
        assert!(count(FaultKind::KillInstance) >= 10);
        assert!(count(FaultKind::PauseLong) >= 10);
        assert!(count(FaultKind::CrashRedis) >= 5);
        assert!(count(FaultKind::CrashMariadb) >= 5);
        assert_eq!(FaultKind::SHARES.iter().map(|s| s.1).sum::<u64>(), 1000);
        // Any total is met exactly.
        assert_eq!(plan(7, &mut Rng::new(1)).len(), 7);
    }

    #[test]
    fn faults_fall_inside_the_bounds() {
        let bounds = Bounds { buying: Duration::from_secs(10), instances: 3, pause_ms: 4_000 };
        let mut rng = Rng::new(3);
        let kinds = plan(200, &mut rng);
        let faults = draw(&kinds, bounds, &mut rng);
        assert!(faults.windows(2).all(|w| w[0].at <= w[1].at));
        for f in &faults {
            assert!(f.at < Duration::from_secs(8) && f.instance < 3, "{f:?}");
            if f.kind == FaultKind::PauseLong {
                assert!(f.hold >= Duration::from_millis(4_000), "{f:?}");
            }
        }
    }
}
