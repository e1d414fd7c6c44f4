//! Rankings kept at write time (`--rankings`): for every bucket a hit touches, Redis holds
//! the bucket's top K URLs (a sorted set), its total and its number of URLs (a hash), updated
//! in the hit's own atomic round trip, so that a `/top` page within K costs O(log K + page)
//! however many URLs the bucket has. This module owns their key names, their Lua scripts
//! and the rule that says when a kept ranking can be trusted.
//!
//! The invariant that keeps a ranking exact with K entries: its set holds the K best URLs of
//! the bucket by (count desc, URL asc). Counts only grow, so a hit on a URL outside the set
//! can only bring that URL in, in place of the set's worst member, exactly when it now
//! beats it. The scripts write a URL with score `-count` (so that Redis's own order, score
//! then member bytes, is rank order), `ZADD LT` it and trim the set back to K: no
//! comparison of URLs in Lua, whose string order depends on the locale.
//!
//! A removal (`DELETE /hit`) or an import can break it: the K+1-th URL is not known. Those
//! mark the bucket's tally `stale`; a ranking is also not trusted when its tally is missing
//! or its number of URLs differs from the bucket's (a HitMe that kept none wrote there). An
//! untrusted ranking is rebuilt from a chunked scan ([`REBUILD_START`], [`REBUILD_CHUNK`],
//! [`REBUILD_END`]) while hits go on: during a rebuild a hit also notes, per URL not yet
//! scanned, what it added, so that each URL's count at the start is summed exactly once.

use crate::time::Period;

/// A page of a kept ranking, with the bucket's figures.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct KeptPage {
    /// The sum of every count of the bucket.
    pub total: i64,
    /// How many URLs the bucket has.
    pub urls: usize,
    /// The page, in rank order.
    pub top: Vec<(String, i64)>,
}

/// How long a rebuild may go without progress before another HitMe takes it over (the first
/// one died, or lost Redis).
pub(crate) const REBUILD_STALE_MS: i64 = 60_000;

/// URLs a rebuild reads per chunk: as [`super::SCAN_CHUNK`], a few milliseconds of Redis.
pub(crate) const REBUILD_CHUNK_URLS: usize = 1000;

/// The keys of one bucket's kept ranking, beside its counting hash `<prefix>:<bucket>`:
/// `<prefix>:rank:<bucket>` (sorted set), `<prefix>:tally:<bucket>` (hash: `total`, `urls`,
/// and `stale` or `rebuilding` when not to be trusted) and, while a rebuild runs,
/// `<prefix>:seen:<bucket>`; `<prefix>:rebuilding` lists the buckets being rebuilt. None of
/// these names is a period, so exports, imports and the original HitMe pass them by.
#[derive(Debug, Clone)]
pub(crate) struct KeptKeys {
    pub prefix: String,
}

impl KeptKeys {
    /// The bucket part of a key: `all`, or `<period>:<start>`.
    pub(crate) fn bucket(period: Period, start: i64) -> String {
        match period {
            Period::All => "all".to_string(),
            _ => format!("{}:{start}", period.name()),
        }
    }

    pub(crate) fn rank(&self, bucket: &str) -> String {
        format!("{}:rank:{bucket}", self.prefix)
    }

    pub(crate) fn tally(&self, bucket: &str) -> String {
        format!("{}:tally:{bucket}", self.prefix)
    }

    pub(crate) fn seen(&self, bucket: &str) -> String {
        format!("{}:seen:{bucket}", self.prefix)
    }

    pub(crate) fn rebuilding(&self) -> String {
        format!("{}:rebuilding", self.prefix)
    }
}

/// What a bucket's tally says: its `total` and `urls`, and whether it is marked `stale` or
/// `rebuilding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Tally {
    pub total: Option<i64>,
    pub urls: Option<i64>,
    pub flagged: bool,
}

impl Tally {
    /// Whether the ranking beside this tally can be trusted, given the bucket's number of
    /// URLs (`HLEN`) and the set's size (`ZCARD`), for rankings of `size`.
    pub(crate) fn trusted(&self, hash_len: usize, set_len: usize, size: usize) -> bool {
        self.total.is_some()
            && !self.flagged
            && self.urls == Some(hash_len as i64)
            && set_len == hash_len.min(size)
    }
}

/// Counts the hits of a batch in their buckets and keeps each bucket's ranking and tally:
/// in place of the `HINCRBY`s of the hit's `MULTI`, one script for the batch.
/// KEYS: the counting hashes, six per group of equal hits (all-time to minute); ARGV: K,
/// the key prefix, then per group the URL and how many hits it stands for.
pub(crate) const HIT_SCRIPT: &str = r#"local k, pre = tonumber(ARGV[1]), ARGV[2]
local cut = #pre + 2
local rebuilding_key = pre .. ':rebuilding'
local rebuilding = redis.call('SCARD', rebuilding_key) > 0
local key = 1
for g = 3, #ARGV, 2 do
  local url, n = ARGV[g], tonumber(ARGV[g + 1])
  for _ = 1, 6 do
    local hash = KEYS[key]
    key = key + 1
    local bucket = string.sub(hash, cut)
    local c = redis.call('HINCRBY', hash, url, n)
    local tally = pre .. ':tally:' .. bucket
    redis.call('HINCRBY', tally, 'total', n)
    if c == n then
      redis.call('HINCRBY', tally, 'urls', 1)
    end
    local rank = pre .. ':rank:' .. bucket
    redis.call('ZADD', rank, 'LT', -c, url)
    redis.call('ZREMRANGEBYRANK', rank, k, -1)
    if rebuilding and redis.call('SISMEMBER', rebuilding_key, bucket) == 1 then
      local seen = pre .. ':seen:' .. bucket
      if redis.call('HGET', seen, url) ~= 'done' then
        redis.call('HINCRBY', seen, url, n)
      end
    end
  end
end
return 0
"#;

/// Starts a rebuild of one bucket's ranking, unless another one progressed within the last
/// [`REBUILD_STALE_MS`]: empties its set and tally and marks them `rebuilding` with this
/// rebuild's token. Returns 1 when started, 0 when another rebuild is under way, 2 when the
/// bucket is empty (an empty bucket needs no ranking, and gets no keys that would outlive it).
/// KEYS: hash, rank, tally, seen, rebuilding; ARGV: bucket, token, now (ms), stale after (ms).
pub(crate) const REBUILD_START: &str = r#"if redis.call('EXISTS', KEYS[1]) == 0 then
  return 2
end
if redis.call('SISMEMBER', KEYS[5], ARGV[1]) == 1 then
  local at = tonumber(redis.call('HGET', KEYS[3], 'progress') or '0')
  if tonumber(ARGV[3]) - at < tonumber(ARGV[4]) then
    return 0
  end
end
redis.call('SADD', KEYS[5], ARGV[1])
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
redis.call('HSET', KEYS[3], 'total', 0, 'urls', 0, 'rebuilding', ARGV[2], 'progress', ARGV[3])
redis.call('HSET', KEYS[4], '', 'done')
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[3], ttl)
  redis.call('PEXPIRE', KEYS[4], ttl)
end
return 1
"#;

/// One chunk of a rebuild: the URLs of one `HSCAN` step, each taken once (`seen` marks it
/// `done`) with its count at the rebuild's start (its count now, less what hits added since)
/// in the tally, and its count now in the set. Returns the next cursor ("0": the scan is
/// over), or -1 when another rebuild took this one over.
/// KEYS: hash, rank, tally, seen; ARGV: cursor, K, token, now (ms), URLs per chunk.
pub(crate) const REBUILD_CHUNK: &str = r#"if redis.call('HGET', KEYS[3], 'rebuilding') ~= ARGV[3] then
  return -1
end
local k = tonumber(ARGV[2])
local reply = redis.call('HSCAN', KEYS[1], ARGV[1], 'COUNT', ARGV[5])
local fields = reply[2]
local total, urls = 0, 0
for i = 1, #fields, 2 do
  local url, c = fields[i], tonumber(fields[i + 1])
  local noted = redis.call('HGET', KEYS[4], url)
  if noted ~= 'done' then
    local before = c - (tonumber(noted) or 0)
    if before > 0 then
      total = total + before
      urls = urls + 1
    end
    redis.call('ZADD', KEYS[2], 'LT', -c, url)
    redis.call('HSET', KEYS[4], url, 'done')
  end
end
redis.call('ZREMRANGEBYRANK', KEYS[2], k, -1)
redis.call('HINCRBY', KEYS[3], 'total', total)
redis.call('HINCRBY', KEYS[3], 'urls', urls)
redis.call('HSET', KEYS[3], 'progress', ARGV[4])
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[2], ttl)
end
return reply[1]
"#;

/// Ends a rebuild whose scan is over: the ranking is trusted again. Returns 1, or 0 when
/// another rebuild took this one over. KEYS: tally, seen, rebuilding; ARGV: bucket, token.
pub(crate) const REBUILD_END: &str = r#"if redis.call('HGET', KEYS[1], 'rebuilding') ~= ARGV[2] then
  return 0
end
redis.call('HDEL', KEYS[1], 'rebuilding', 'progress')
redis.call('DEL', KEYS[2])
redis.call('SREM', KEYS[3], ARGV[1])
return 1
"#;

/// Removes a URL's count from one bucket with its ranking kept: the count leaves the tally
/// and the set; a URL removed from a full set leaves a place the next URL (unknown here)
/// should take, so the tally is marked `stale` for a rebuild. Returns the removed count
/// (0: the bucket did not hold the URL). KEYS: hash, rank, tally; ARGV: URL, K.
pub(crate) const DELETE_SCRIPT: &str = r#"local c = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if c == 0 then
  return 0
end
redis.call('HDEL', KEYS[1], ARGV[1])
if redis.call('EXISTS', KEYS[3]) == 1 then
  local urls = tonumber(redis.call('HGET', KEYS[3], 'urls') or '0')
  redis.call('HINCRBY', KEYS[3], 'total', -c)
  redis.call('HINCRBY', KEYS[3], 'urls', -1)
  if redis.call('ZREM', KEYS[2], ARGV[1]) == 1 and urls > tonumber(ARGV[2]) then
    redis.call('HSET', KEYS[3], 'stale', 1)
  end
end
return c
"#;

/// Marks a bucket's kept ranking for a rebuild (an import wrote counts beside it), if it
/// has one. KEYS: tally.
pub(crate) const MARK_STALE: &str = r#"if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], 'stale', 1)
end
return 0
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names_are_no_bucket_of_the_original_layout() {
        let keys = KeptKeys {
            prefix: "hits".into(),
        };
        let bucket = KeptKeys::bucket(Period::Day, 1_700_006_400_000);
        assert_eq!(keys.rank(&bucket), "hits:rank:day:1700006400000");
        assert_eq!(
            keys.tally(&KeptKeys::bucket(Period::All, 0)),
            "hits:tally:all"
        );
        for name in ["rank", "tally", "seen", "rebuilding"] {
            assert!(Period::bucketed_from_name(name).is_none(), "{name}");
        }
    }

    #[test]
    fn a_ranking_is_trusted_only_when_its_tally_matches_the_bucket() {
        let tally = Tally {
            total: Some(10),
            urls: Some(3),
            flagged: false,
        };
        assert!(tally.trusted(3, 3, 1000));
        assert!(tally.trusted(3, 2, 2), "a full set of K");
        assert!(
            !tally.trusted(4, 3, 1000),
            "a URL written by another writer"
        );
        assert!(!tally.trusted(3, 2, 1000), "a member missing");
        assert!(!Tally::default().trusted(0, 0, 1000), "no tally");
        let flagged = Tally {
            flagged: true,
            ..tally
        };
        assert!(!flagged.trusted(3, 3, 1000), "stale or rebuilding");
    }
}
