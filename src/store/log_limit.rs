//! A limiter for log lines that would repeat on every request during an outage.

use std::sync::atomic::{AtomicI64, Ordering};

use crate::time::clock;

/// Lets one log line through per second of the wall clock.
#[derive(Debug, Default)]
pub(super) struct OncePerSecond {
    /// The second (since the epoch) of the last line let through.
    last: AtomicI64,
}

impl OncePerSecond {
    /// Whether to log now: true for the first call in each second.
    pub(super) fn allows(&self) -> bool {
        let now = clock::now_secs();
        self.last.swap(now, Ordering::Relaxed) != now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_a_second() {
        let limit = OncePerSecond::default();
        let first = limit.allows();
        assert!(first);
        // The same second, most likely; at a second's edge, one more line at most.
        let again = (0..100).filter(|_| limit.allows()).count();
        assert!(again <= 1, "{again}");
    }
}
