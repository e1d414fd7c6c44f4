//! The wall clock, read in the units HitMe stores: milliseconds and seconds since the epoch.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 if the clock is set before it).
pub(crate) fn now_ms() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

/// Whole seconds since the Unix epoch.
pub(crate) fn now_secs() -> i64 {
    now_ms().div_euclid(1000)
}
