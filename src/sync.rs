//! The atomics of the lock-free structures (rate-limit buckets, stock):
//! std's, or loom's when model checking
//! (`RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test --release --lib loom`).

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};

/// Pause before retrying a compare-and-swap that a peer won. Under loom this
/// must yield, or the model checker would spin through the retries forever.
pub(crate) fn backoff() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::hint::spin_loop();
}

/// Tries `mutex` with a short spin before parking on it: for locks an event
/// loop takes around a few nanoseconds of work, where another core holds it
/// for about as long. Parking would put the loop to sleep (loops never
/// block) and, the first time a thread parks, allocate parking_lot's
/// per-thread data. Only if the holder stays longer than the spin (it was
/// preempted) does the caller park.
pub(crate) fn lock_spinning<T>(mutex: &parking_lot::Mutex<T>) -> parking_lot::MutexGuard<'_, T> {
    /// About a few microseconds of spinning.
    const SPINS: u32 = 4096;
    for _ in 0..SPINS {
        if let Some(guard) = mutex.try_lock() {
            return guard;
        }
        std::hint::spin_loop();
    }
    mutex.lock()
}
