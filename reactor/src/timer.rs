//! A coarse hashed timing wheel: 100 ms ticks, 1024 slots (about 100 s).
//!
//! Each connection keeps at most one *live* entry, for the earliest of its
//! deadlines (head, idle, linger, parked requests); the entry carries the
//! tick it was scheduled for, and the connection remembers that tick, so an
//! entry superseded by an earlier one is recognised as stale when it fires
//! and ignored. A deadline that moves later keeps its entry: when that fires
//! early, the loop finds nothing due and schedules again. A deadline beyond
//! the wheel's span is clamped to its last slot and rescheduled the same
//! way. So the wheel never needs cancelling, never scans connections, and
//! firing is precise to one tick (±100 ms).

use std::time::{Duration, Instant};

pub(crate) const TICK: Duration = Duration::from_millis(100);
const SLOTS: u64 = 1024;

/// A timer entry: an opaque key (a connection token) and the tick it fires at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub key: usize,
    pub tick: u64,
}

#[derive(Debug)]
pub(crate) struct Wheel {
    epoch: Instant,
    slots: Vec<Vec<Entry>>,
    /// Every tick up to and including this one has fired.
    fired: u64,
    len: usize,
}

impl Wheel {
    pub fn new(epoch: Instant) -> Wheel {
        Wheel { epoch, slots: (0..SLOTS).map(|_| Vec::new()).collect(), fired: 0, len: 0 }
    }

    /// The tick containing `at`.
    pub fn tick_of(&self, at: Instant) -> u64 {
        (at.saturating_duration_since(self.epoch).as_millis() / TICK.as_millis()) as u64
    }

    /// The tick at which an entry for `deadline` fires: the first tick that
    /// starts at or after it, clamped to the ticks the wheel can hold.
    pub fn fire_tick(&self, deadline: Instant) -> u64 {
        let since = deadline.saturating_duration_since(self.epoch).as_nanos();
        let tick = since.div_ceil(TICK.as_nanos()) as u64;
        tick.clamp(self.fired + 1, self.fired + SLOTS - 1)
    }

    /// Schedules `key` for `deadline`; returns the tick it will fire at.
    pub fn schedule(&mut self, key: usize, deadline: Instant) -> u64 {
        let tick = self.fire_tick(deadline);
        self.slots[(tick % SLOTS) as usize].push(Entry { key, tick });
        self.len += 1;
        tick
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How long until the next tick boundary, if anything is scheduled.
    pub fn timeout(&self, now: Instant) -> Option<Duration> {
        if self.is_empty() {
            return None;
        }
        let next = self.epoch + TICK * (self.tick_of(now) as u32 + 1);
        Some(next.saturating_duration_since(now))
    }

    /// Moves every entry due at `now` into `due` (cleared first).
    pub fn expire(&mut self, now: Instant, due: &mut Vec<Entry>) {
        due.clear();
        let current = self.tick_of(now);
        if current <= self.fired {
            return;
        }
        // After a long stall every slot is visited once.
        let last = current.min(self.fired + SLOTS);
        for tick in self.fired + 1..=last {
            let slot = &mut self.slots[(tick % SLOTS) as usize];
            let before = due.len();
            // Entries in a slot fire at the same tick modulo SLOTS; only a
            // stall longer than the span leaves later ones here.
            let mut i = 0;
            while i < slot.len() {
                if slot[i].tick <= current {
                    due.push(slot.swap_remove(i));
                } else {
                    i += 1;
                }
            }
            self.len -= due.len() - before;
        }
        self.fired = current;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn fires_at_the_first_tick_after_the_deadline() {
        let t0 = Instant::now();
        let mut wheel = Wheel::new(t0);
        let mut due = Vec::new();
        let tick = wheel.schedule(1, t0 + ms(250));
        assert_eq!(tick, 3);
        wheel.expire(t0 + ms(299), &mut due);
        assert!(due.is_empty());
        wheel.expire(t0 + ms(300), &mut due);
        assert_eq!(due, vec![Entry { key: 1, tick: 3 }]);
        assert!(wheel.is_empty());
    }

    #[test]
    fn past_deadlines_fire_on_the_next_tick() {
        let t0 = Instant::now();
        let mut wheel = Wheel::new(t0);
        let mut due = Vec::new();
        wheel.expire(t0 + ms(1000), &mut due);
        let tick = wheel.schedule(2, t0);
        assert_eq!(tick, 11);
        wheel.expire(t0 + ms(1100), &mut due);
        assert_eq!(due.len(), 1);
    }

    #[test]
    fn far_deadlines_are_clamped_and_fire_early() {
        let t0 = Instant::now();
        let mut wheel = Wheel::new(t0);
        let mut due = Vec::new();
        let tick = wheel.schedule(3, t0 + Duration::from_secs(1000));
        assert_eq!(tick, SLOTS - 1);
        wheel.expire(t0 + TICK * (SLOTS as u32 - 1), &mut due);
        assert_eq!(due.len(), 1, "fires at the end of the span; the owner reschedules");
    }

    #[test]
    fn a_long_stall_fires_everything_due_once() {
        let t0 = Instant::now();
        let mut wheel = Wheel::new(t0);
        let mut due = Vec::new();
        for i in 0..50 {
            wheel.schedule(i, t0 + ms(100 * i as u64 + 50));
        }
        wheel.expire(t0 + Duration::from_secs(500), &mut due);
        assert_eq!(due.len(), 50);
        assert!(wheel.is_empty());
        assert!(wheel.timeout(t0).is_none());
    }

    #[test]
    fn timeout_reaches_the_next_tick() {
        let t0 = Instant::now();
        let mut wheel = Wheel::new(t0);
        wheel.schedule(1, t0 + ms(5000));
        assert_eq!(wheel.timeout(t0 + ms(30)), Some(ms(70)));
    }
}
