//! `--sources`: where a hit's source is counted, and how. Sources are kept for the all-time,
//! month, week and day buckets ([`SOURCE_PERIODS`]), at three levels: every site's, one
//! site's (host) and one URL's. Each is a hash, field = the source's name, counted by
//! [`SOURCE_SCRIPT`] in the hit's own round trip. A hash keeps at most `--max-sources`
//! names; past that, the rest count under the field `(other)`. A site's direct hits count under
//! `(direct)`; a URL's are its hits less those with a source, so that a direct hit, the
//! common case, costs the URL nothing.

use std::collections::HashMap;

use crate::time::{PerPeriod, Period};

/// The periods whose buckets keep sources: an hour's or a minute's would cost a hash per
/// URL for a figure few read.
pub(crate) const SOURCE_PERIODS: [Period; 4] =
    [Period::All, Period::Month, Period::Week, Period::Day];

/// The field of a site's direct hits.
pub(crate) const DIRECT: &str = "(direct)";

/// Where a hit came from, with `--sources`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// No referrer, or the site itself.
    Direct,
    /// A tag or a referrer's host or name.
    Named(String),
}

impl Source {
    /// The hash field it counts under.
    pub(crate) fn field(&self) -> &str {
        match self {
            Source::Direct => DIRECT,
            Source::Named(name) => name,
        }
    }
}

/// Whose sources are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SourceScope<'a> {
    /// Every site's.
    AllSites,
    /// One host's.
    Site(&'a str),
    /// One canonical URL's.
    Url(&'a str),
}

/// One bucket's sources, as read: the direct hits and every source with its count (`(other)`
/// among them), unordered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SourceCounts {
    pub direct: i64,
    pub sources: HashMap<String, i64>,
}

impl SourceCounts {
    /// Adds a hash of sources as read (a shard of it in cluster mode).
    pub(crate) fn add(&mut self, fields: HashMap<String, i64>) {
        for (name, count) in fields {
            match name == DIRECT {
                true => self.direct += count,
                false => *self.sources.entry(name).or_default() += count,
            }
        }
    }

    /// A URL's direct hits: its hits in the bucket less those with a source (so hits counted
    /// before `--sources` are direct).
    pub(crate) fn with_url_hits(mut self, hits: i64) -> SourceCounts {
        self.direct = (hits - self.sources.values().sum::<i64>()).max(0);
        self
    }
}

/// Counts `ARGV[2]` hits from source `ARGV[1]` in each hash of KEYS: groups of four (all-time,
/// month, week, day) for every site, the hit's site and, for a named source, its URL. A name
/// new to a hash that already holds `ARGV[3]` names (besides `(direct)` and `(other)`)
/// counts under `(other)`. A hash is given the `EXPIREAT` of its period (`ARGV[4..6]`, month
/// to day; 0: keep) when a name is new to it.
pub(crate) const SOURCE_SCRIPT: &str = r#"local field, n, cap = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
for i, key in ipairs(KEYS) do
  local f = field
  if f ~= '(direct)' and not redis.call('HGET', key, f) then
    local len = redis.call('HLEN', key)
    if len >= cap then
      for _, reserved in ipairs({'(direct)', '(other)'}) do
        if redis.call('HGET', key, reserved) then
          len = len - 1
        end
      end
      if len >= cap then
        f = '(other)'
      end
    end
  end
  if redis.call('HINCRBY', key, f, n) == n then
    local p = (i - 1) % 4
    if p > 0 and ARGV[3 + p] ~= '0' then
      redis.call('EXPIREAT', key, ARGV[3 + p])
    end
  end
end
return 1
"#;

/// Empties the hash `KEYS[1]` field by field (`HDEL`, which the ACL user of
/// `deploy/redis.conf` may send, where it may not `DEL`); returns how many fields it held.
pub(crate) const CLEAR_SCRIPT: &str = r#"local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  redis.call('HDEL', KEYS[1], all[i])
end
return #all / 2
"#;

/// A hash of `bucket` (a bucket's key, of the sources' own layout) for one site.
pub(crate) fn site_key(bucket: &str, host: &str) -> String {
    format!("{bucket}:site:{host}")
}

/// A hash of `bucket` for one URL.
pub(crate) fn url_key(bucket: &str, url: &str) -> String {
    format!("{bucket}:url:{url}")
}

/// The KEYS of [`SOURCE_SCRIPT`] for a hit on `url` from `source`, given the keys of its
/// buckets in the sources' layout.
pub(crate) fn script_keys(buckets: &PerPeriod<String>, url: &str, source: &Source) -> Vec<String> {
    let host = crate::host::host_of(url);
    let bucket = |period: Period| buckets[period].as_str();
    let mut keys: Vec<String> = SOURCE_PERIODS
        .iter()
        .map(|p| bucket(*p).to_string())
        .collect();
    keys.extend(SOURCE_PERIODS.iter().map(|p| site_key(bucket(*p), host)));
    if let Source::Named(_) = source {
        keys.extend(SOURCE_PERIODS.iter().map(|p| url_key(bucket(*p), url)));
    }
    keys
}

/// The `EXPIREAT` arguments of [`SOURCE_SCRIPT`] (month, week, day), from the hit's own
/// (month to minute, 0: keep). A bucket already past its retention is given a second rather
/// than a past time, which would delete it at once: it simply keeps no sources.
pub(crate) fn script_expiries(expiries: [i64; 5], now_secs: i64) -> [i64; 3] {
    let at = |at: i64| match at != 0 && at <= now_secs {
        true => now_secs + 1,
        false => at,
    };
    [at(expiries[0]), at(expiries[1]), at(expiries[2])]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::keys::KeyLayout;
    use crate::time::{Calendar, WeekStart};

    #[test]
    fn a_named_source_counts_for_every_site_its_site_and_its_url() {
        let layout = KeyLayout {
            prefix: "hits:sources".into(),
        };
        let starts = Calendar::new(WeekStart::Monday).starts(1_700_010_123_456);
        let buckets = layout.keys(&starts);
        let url = "http://site.example/a";
        let keys = script_keys(&buckets, url, &Source::Named("x".into()));
        assert_eq!(keys.len(), 12);
        assert_eq!(keys[0], "hits:sources:all");
        assert_eq!(keys[3], "hits:sources:day:1700006400000");
        assert_eq!(keys[4], "hits:sources:all:site:site.example");
        assert_eq!(
            keys[11],
            "hits:sources:day:1700006400000:url:http://site.example/a"
        );
        assert_eq!(script_keys(&buckets, url, &Source::Direct).len(), 8);
    }

    #[test]
    fn counts_add_up_and_a_urls_direct_hits_are_the_rest() {
        let mut counts = SourceCounts::default();
        counts.add(HashMap::from([
            (DIRECT.to_string(), 3),
            ("a".to_string(), 2),
        ]));
        counts.add(HashMap::from([
            (DIRECT.to_string(), 1),
            ("a".to_string(), 1),
        ]));
        assert_eq!(counts.direct, 4);
        assert_eq!(counts.sources["a"], 3);
        assert_eq!(counts.clone().with_url_hits(10).direct, 7);
        assert_eq!(counts.with_url_hits(1).direct, 0);
        assert_eq!(script_expiries([0, 50, 200, 300, 400], 100), [0, 101, 200]);
    }
}
