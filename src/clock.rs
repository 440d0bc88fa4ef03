//! Wall-clock time in the contract's unit: integer Unix milliseconds.

use std::time::{SystemTime, UNIX_EPOCH};

pub fn now_ms() -> u64 {
    ms_of(SystemTime::now())
}

pub fn ms_of(time: SystemTime) -> u64 {
    // Before 1970 only on a broken clock; 0 is as good an answer as any.
    time.duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
