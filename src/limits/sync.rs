//! The atomics of the bucket table: std's, or loom's when model checking
//! (`RUSTFLAGS="--cfg loom" cargo test --release --lib loom`).

#[cfg(loom)]
pub(super) use loom::sync::atomic::{AtomicU64, Ordering};
#[cfg(not(loom))]
pub(super) use std::sync::atomic::{AtomicU64, Ordering};

/// Pause before retrying a compare-and-swap that a peer won. Under loom this
/// must yield, or the model checker would spin through the retries forever.
pub(super) fn backoff() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::hint::spin_loop();
}
