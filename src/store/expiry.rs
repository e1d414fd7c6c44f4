//! Retention: when a bucket's hash expires, for both backends.

use std::time::Duration;

use crate::time::PerPeriod;
use crate::time::{Calendar, Period};

/// How long each period's buckets are kept after they end; `None` keeps them forever (always
/// so for all-time).
pub(crate) type Retention = PerPeriod<Option<Duration>>;

/// The `EXPIREAT` time, in seconds since the epoch, of the `period` bucket that starts at
/// `start`: its end plus `keep`. At least 1: a bucket that ended before 1970 plus its
/// retention is long gone, and Redis takes 0 or less as "now" anyway.
pub(crate) fn expire_at(calendar: &Calendar, period: Period, start: i64, keep: Duration) -> i64 {
    let end_ms = calendar.end(start, period);
    (end_ms.div_euclid(1000) + keep.as_secs() as i64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::WeekStart;

    #[test]
    fn a_bucket_expires_its_retention_after_it_ends() {
        let calendar = Calendar::new(WeekStart::Monday);
        let hour = Duration::from_secs(3600);
        // The minute 1970-01-01T00:01 ends at 120 s.
        assert_eq!(
            expire_at(&calendar, Period::Minute, 60_000, hour),
            120 + 3600
        );
        // A bucket of 1969 (a week that began before the epoch) never gives 0.
        assert_eq!(
            expire_at(
                &calendar,
                Period::Minute,
                -3_600_000,
                Duration::from_secs(1)
            ),
            1
        );
    }
}
