//! Key names of the standalone layout, interchangeable with the original HitMe: hashes
//! `<prefix>:all` and `<prefix>:<period>:<bucket start ms>`, field = canonical URL.

use crate::time::PerPeriod;
use crate::time::Period;

/// How standalone keys are named.
#[derive(Debug, Clone)]
pub(crate) struct KeyLayout {
    pub prefix: String,
}

impl KeyLayout {
    /// The pieces of the key of `period`'s bucket that starts at `start` (its decimal digits),
    /// to be joined: the hot path writes them into a command without allocating.
    pub(crate) fn parts<'a>(&'a self, period: Period, start: &'a [u8]) -> [&'a [u8]; 5] {
        let (prefix, name) = (self.prefix.as_bytes(), period.name().as_bytes());
        match period {
            Period::All => [prefix, b":", name, b"", b""],
            _ => [prefix, b":", name, b":", start],
        }
    }

    /// The hash of `period`'s bucket that starts at `start`, e.g. `hits:day:1700006400000`,
    /// or `hits:all`.
    pub(crate) fn key(&self, period: Period, start: i64) -> String {
        let mut digits = itoa::Buffer::new();
        let key = self.parts(period, digits.format(start).as_bytes()).concat();
        String::from_utf8(key).expect("a prefix and digits are UTF-8")
    }

    /// Every hash a hit in the buckets starting at `starts` increments.
    pub(crate) fn keys(&self, starts: &PerPeriod<i64>) -> PerPeriod<String> {
        starts.map(|period, start| self.key(period, start))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{Calendar, WeekStart};

    #[test]
    fn key_layout_matches_the_original() {
        let layout = KeyLayout {
            prefix: "hits".into(),
        };
        let starts = Calendar::new(WeekStart::Monday).starts(1_700_010_123_456);
        let keys: Vec<String> = layout.keys(&starts).into_iter().map(|(_, k)| k).collect();
        assert_eq!(
            keys,
            [
                "hits:all",
                "hits:month:1698796800000",
                "hits:week:1699833600000",
                "hits:day:1700006400000",
                "hits:hour:1700010000000",
                "hits:minute:1700010120000",
            ]
        );
        for (period, key) in layout.keys(&starts) {
            assert!(key.starts_with("hits:"), "{period:?}");
            assert!(key.contains(period.name()), "{period:?}");
        }
    }
}
