//! `--sources`: where a hit's source is counted, and how. Sources are kept for the all-time,
//! month, week and day buckets ([`SOURCE_PERIODS`]), at three levels: every site's, one
//! site's (host) and one URL's. Each is a hash, field = the source's name, counted by
//! [`SOURCE_SCRIPT`] in the hit's own round trip. A hash keeps at most `--max-sources`
//! names; past that, the rest count under the field `(other)`. A site's direct hits count under
//! `(direct)`; a URL's are its hits less those with a source, so that a direct hit, the
//! common case, costs the URL nothing. A batch's hits on one site share one script and the
//! site's hashes ([`SourceWrites`]).

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

/// Counts sources in groups of four hashes (all-time, month, week, day: `KEYS[4g+1..4g+4]`
/// for group g): `ARGV[1]` is `--max-sources`; then per group five arguments, the source's
/// field, how many hits, and the `EXPIREAT` of its month, week and day hash (0: keep). A name
/// new to a hash that then holds more than `--max-sources` names (besides `(direct)` and
/// `(other)`) is taken back and counted under `(other)`. A hash is given its `EXPIREAT` when
/// the name made it. One `HINCRBY` per hash when the name is known there, the common case;
/// an `HLEN` more when it is new.
pub(crate) const SOURCE_SCRIPT: &str = r#"local cap = tonumber(ARGV[1])
for g = 0, #KEYS / 4 - 1 do
  local a = 2 + g * 5
  local field, n = ARGV[a], tonumber(ARGV[a + 1])
  for p = 0, 3 do
    local key = KEYS[g * 4 + p + 1]
    if redis.call('HINCRBY', key, field, n) == n then
      local len = redis.call('HLEN', key)
      if field ~= '(direct)' and len > cap then
        local named = len
        for _, reserved in ipairs({'(direct)', '(other)'}) do
          if redis.call('HGET', key, reserved) then
            named = named - 1
          end
        end
        if named > cap then
          redis.call('HDEL', key, field)
          redis.call('HINCRBY', key, '(other)', n)
        end
      end
      if len == 1 and p > 0 and ARGV[a + 1 + p] ~= '0' then
        redis.call('EXPIREAT', key, ARGV[a + 1 + p])
      end
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

/// What joins a bucket's key and a host into a site's hash of it ([`site_key`]).
const SITE: &str = ":site:";
/// What joins a bucket's key and a URL into a URL's hash of it ([`url_key`]).
const URL: &str = ":url:";

/// A hash of `bucket` (a bucket's key, of the sources' own layout) for one site.
pub(crate) fn site_key(bucket: &str, host: &str) -> String {
    [bucket, SITE, host].concat()
}

/// A hash of `bucket` for one URL.
pub(crate) fn url_key(bucket: &str, url: &str) -> String {
    [bucket, URL, url].concat()
}

/// What one [`SOURCE_SCRIPT`] counts: groups of four hashes with their field, hits and
/// expiries. Hits a batch holds on one site from one source share its site's and every
/// site's group, so a worker's batch of direct hits on many URLs of a site increments 8
/// hashes, not 8 per hit.
#[derive(Debug, Default)]
pub(crate) struct SourceWrites {
    groups: Vec<Group>,
}

#[derive(Debug)]
struct Group {
    keys: [String; 4],
    field: String,
    hits: usize,
    expiries: [i64; 3],
}

impl SourceWrites {
    /// Adds `hits` hits on `url` from `source`, given the keys of its buckets in the sources'
    /// layout and their expiries ([`script_expiries`]): every site's group, its site's and,
    /// for a named source, its URL's. A group the batch already holds is added to without
    /// building its keys: most hits of a batch are direct hits on one site.
    pub(crate) fn add(
        &mut self,
        buckets: &PerPeriod<String>,
        url: &str,
        source: &Source,
        hits: usize,
        expiries: [i64; 3],
    ) {
        let host = crate::host::host_of(url);
        let buckets = SOURCE_PERIODS.map(|period| buckets[period].as_str());
        self.count(buckets, &[], source, hits, expiries);
        self.count(buckets, &[SITE, host], source, hits, expiries);
        if let Source::Named(_) = source {
            self.count(buckets, &[URL, url], source, hits, expiries);
        }
    }

    /// Adds hits to the group whose keys are each bucket's key followed by `tail`.
    fn count(
        &mut self,
        buckets: [&str; 4],
        tail: &[&str],
        source: &Source,
        hits: usize,
        expiries: [i64; 3],
    ) {
        let field = source.field();
        let is_key = |key: &str, bucket: &str| {
            let mut rest = key.strip_prefix(bucket);
            for part in tail {
                rest = rest.and_then(|rest| rest.strip_prefix(part));
            }
            rest == Some("")
        };
        let found = self.groups.iter_mut().find(|g| {
            g.field == field && g.keys.iter().zip(buckets).all(|(key, b)| is_key(key, b))
        });
        match found {
            Some(group) => group.hits += hits,
            None => self.groups.push(Group {
                keys: buckets.map(|bucket| [bucket].iter().chain(tail).copied().collect()),
                field: field.to_string(),
                hits,
                expiries,
            }),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// The script's KEYS, in order.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &str> {
        self.groups
            .iter()
            .flat_map(|g| g.keys.iter().map(String::as_str))
    }

    pub(crate) fn key_count(&self) -> usize {
        self.groups.len() * 4
    }

    /// The script's ARGV, `--max-sources` (`max`) first.
    pub(crate) fn args<'a>(&'a self, max: &'a str) -> Vec<std::borrow::Cow<'a, str>> {
        let mut args = vec![std::borrow::Cow::Borrowed(max)];
        for group in &self.groups {
            args.push(std::borrow::Cow::Borrowed(group.field.as_str()));
            args.push(group.hits.to_string().into());
            args.extend(group.expiries.iter().map(|at| at.to_string().into()));
        }
        args
    }
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
    fn a_batchs_hits_on_one_site_share_its_groups() {
        let layout = KeyLayout {
            prefix: "hits:sources".into(),
        };
        let starts = Calendar::new(WeekStart::Monday).starts(1_700_010_123_456);
        let buckets = layout.keys(&starts);
        let (a, b) = ("http://site.example/a", "http://site.example/b");
        let mut writes = SourceWrites::default();
        writes.add(&buckets, a, &Source::Named("x".into()), 1, [1, 2, 3]);
        let keys: Vec<&str> = writes.keys().collect();
        assert_eq!(keys.len(), 12);
        assert_eq!(keys[0], "hits:sources:all");
        assert_eq!(keys[3], "hits:sources:day:1700006400000");
        assert_eq!(keys[4], "hits:sources:all:site:site.example");
        assert_eq!(
            keys[11],
            "hits:sources:day:1700006400000:url:http://site.example/a"
        );
        writes.add(&buckets, b, &Source::Named("x".into()), 2, [1, 2, 3]);
        writes.add(&buckets, a, &Source::Direct, 1, [1, 2, 3]);
        writes.add(&buckets, b, &Source::Direct, 4, [1, 2, 3]);
        // x: every site's, the site's, a's and b's; direct: every site's and the site's.
        assert_eq!(writes.key_count(), 6 * 4);
        let args = writes.args("1000");
        assert_eq!(args[..6], ["1000", "x", "3", "1", "2", "3"]);
        let direct = args.iter().position(|a| a == DIRECT).unwrap();
        assert_eq!(args[direct + 1], "5");
        // A URL whose keys begin with another's keys is a group of its own.
        writes.add(
            &buckets,
            &format!("{a}b"),
            &Source::Named("x".into()),
            1,
            [1, 2, 3],
        );
        assert_eq!(writes.key_count(), 7 * 4);
        let keys: Vec<&str> = writes.keys().collect();
        assert_eq!(
            keys[27],
            "hits:sources:day:1700006400000:url:http://site.example/ab"
        );
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
