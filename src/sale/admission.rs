//! Admission by queueing time: under overload, a buy is refused at once
//! (503 `overloaded` + `Retry-After`) when the orders already queued for the
//! writer would take longer than `sale.order_queue_wait_max_ms` to commit.
//!
//! Why not the queue's length alone: `sale.order_queue_max` is a memory
//! bound, counted in orders, and the time those orders take to commit
//! depends on the store (SQLite or MySQL, the disk, the machine's load). A
//! queue longer than `sale.confirm_timeout_ms` of writing makes a sync buy
//! wait out its timeout and get 503 "outcome unknown" while its order is
//! still committed later: the writer's work then buys no 200s at all, and
//! goodput collapses exactly when the load is highest. Bounding the queue
//! by time keeps every admitted order's wait short, answers the excess in
//! microseconds instead of holding its connection, and still leaves the
//! writer a full queue to batch from, so it never idles under overload.
//!
//! The bound is the writer's measured drain rate (orders per second of its
//! whole cycle: commit, answers, expiries, checkpoints; the orders of about
//! the last second over the time they took) times the wait, and never less than one full batch
//! (so a writer that was idle, whose rate reads low, can still take a full
//! batch) nor more than the queue's capacity. One relaxed load per buy.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// The drain rate's memory: batches older than this weigh 1/e as much as
/// the newest. A second spans tens of batches under load, so neither one
/// slow batch (a checkpoint, the writer descheduled) nor a run of fast ones
/// swings the bound, and a lasting change shows within a second or two.
/// Counted in batches instead (a weight of 0.25 each), the rate followed
/// ~60 ms of 15 ms batches under overload on a shared 2-core machine and
/// the bound swung from 1,300 to 29,000 orders at a writer that drained
/// ~18,000/s on average: its highs queued more than the confirm timeout.
const RATE_MEMORY_S: f64 = 1.0;

/// The queued-orders bound the loops read.
#[derive(Debug)]
pub struct Admission {
    queued_max: AtomicUsize,
    /// `None`: no time bound (the queue's capacity alone applies).
    wait_max: Option<Duration>,
    floor: usize,
    ceiling: usize,
}

impl Admission {
    /// `wait_max` zero turns the time bound off; `batch_orders_max` is the
    /// floor and `queue_max` the ceiling of the bound.
    pub fn new(wait_max: Duration, batch_orders_max: usize, queue_max: usize) -> Admission {
        let ceiling = queue_max.max(1);
        let floor = batch_orders_max.clamp(1, ceiling);
        // Until the writer has measured itself, only the queue's capacity applies.
        Admission {
            queued_max: AtomicUsize::new(ceiling),
            wait_max: (!wait_max.is_zero()).then_some(wait_max),
            floor,
            ceiling,
        }
    }

    /// Whether a buy may join a queue that holds `queued` orders.
    #[inline]
    pub fn admits(&self, queued: usize) -> bool {
        queued < self.queued_max.load(Relaxed)
    }

    /// The current bound, for `/metrics`.
    pub fn queued_max(&self) -> usize {
        self.queued_max.load(Relaxed)
    }

    fn set_rate(&self, orders_per_s: f64) {
        let Some(wait) = self.wait_max else { return };
        let bound = (orders_per_s * wait.as_secs_f64()).round() as usize;
        self.queued_max.store(bound.clamp(self.floor, self.ceiling), Relaxed);
    }
}

/// The writer's side: measures its drain rate batch by batch.
///
/// The rate is the orders of the recent past over the time they took (both
/// decayed alike, [`RATE_MEMORY_S`]), not an average of each batch's rate:
/// batch times swing by 10× under load (a fast fsync, then a slow one), and
/// averaging their rates weighs the fast batches as much as the slow ones
/// that take ten times longer, overstating the rate. Seen under 3× overload
/// with the average of rates: a bound of 28,706 orders at a writer that
/// drained ~15,000/s, so the admitted buys waited ~2 s, beyond
/// `sale.confirm_timeout_ms`, and got 503 "outcome unknown".
#[derive(Debug, Default)]
pub struct DrainMeter {
    last_batch_done: Option<Instant>,
    /// Decayed sums of the orders decided and of the seconds they took.
    orders: f64,
    seconds: f64,
}

impl DrainMeter {
    /// A batch of `orders` was decided and answered at `now`: its cycle is
    /// the time since the previous one (idle time included, which can only
    /// make the rate, and so the bound, lower than the writer could do).
    pub fn batch_done(&mut self, orders: usize, now: Instant, admission: &Admission) {
        if let Some(last) = self.last_batch_done.replace(now) {
            let cycle = now.duration_since(last).as_secs_f64().max(1e-6);
            let keep = (-cycle / RATE_MEMORY_S).exp();
            self.orders = self.orders * keep + orders as f64;
            self.seconds = self.seconds * keep + cycle;
            admission.set_rate(self.orders / self.seconds);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_bound_is_the_drain_rate_times_the_wait() {
        let admission = Admission::new(ms(500), 100, 65_536);
        assert_eq!(admission.queued_max(), 65_536, "unmeasured: the capacity");
        let mut meter = DrainMeter::default();
        let t0 = Instant::now();
        meter.batch_done(1000, t0, &admission);
        // 1,000 orders every 50 ms: 20,000 orders/s, so 10,000 in 500 ms.
        for i in 1..=20 {
            meter.batch_done(1000, t0 + ms(50 * i), &admission);
        }
        assert_eq!(admission.queued_max(), 10_000);
        assert!(admission.admits(9_999) && !admission.admits(10_000));
    }

    #[test]
    fn fast_and_slow_batches_weigh_by_their_time() {
        let admission = Admission::new(ms(500), 100, 65_536);
        let mut meter = DrainMeter::default();
        let mut at = Instant::now();
        meter.batch_done(1000, at, &admission);
        // 1,000 orders in 10 ms, then 1,000 in 190 ms, over and over:
        // 2,000 orders per 200 ms is 10,000 orders/s, 5,000 in 500 ms (the
        // average of the two rates, 52,632/s, would admit 26,000).
        for i in 0..60 {
            at += ms(if i % 2 == 0 { 10 } else { 190 });
            meter.batch_done(1000, at, &admission);
            if i >= 20 {
                let bound = admission.queued_max();
                assert!((4_500..=5_500).contains(&bound), "batch {i}: {bound}");
            }
        }
    }

    #[test]
    fn the_bound_stays_between_a_batch_and_the_capacity() {
        let admission = Admission::new(ms(500), 100, 5_000);
        let mut meter = DrainMeter::default();
        let t0 = Instant::now();
        meter.batch_done(1, t0, &admission);
        meter.batch_done(1, t0 + Duration::from_secs(10), &admission);
        assert_eq!(admission.queued_max(), 100, "an idle writer still takes a batch");
        meter.batch_done(1_000_000, t0 + Duration::from_secs(11), &admission);
        assert_eq!(admission.queued_max(), 5_000, "never beyond the queue");
    }

    #[test]
    fn zero_turns_the_time_bound_off() {
        let admission = Admission::new(Duration::ZERO, 100, 5_000);
        let mut meter = DrainMeter::default();
        let t0 = Instant::now();
        meter.batch_done(1, t0, &admission);
        meter.batch_done(1, t0 + Duration::from_secs(10), &admission);
        assert_eq!(admission.queued_max(), 5_000);
    }
}
