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
//! then member bytes, is rank order); a URL outside a full set is compared with the worst
//! member (count, then URL byte by byte, as Redis orders members: Lua's own string order
//! follows the locale), and one that beats it is added and the set trimmed back to K.
//!
//! A removal (`DELETE /hit`) or an import can break it: the K+1-th URL is not known. Those
//! mark the bucket's tally `stale`; a ranking is also not trusted when its tally is missing
//! or its number of URLs differs from the bucket's (a HitMe that kept none wrote there). An
//! untrusted ranking is rebuilt from a chunked scan ([`REBUILD_START`], [`REBUILD_CHUNK`],
//! [`REBUILD_END`]) while hits go on: during a rebuild a hit also notes, per URL not yet
//! scanned, what it added, so that each URL's count at the start is summed exactly once.

use std::time::Duration;

use super::expiry::{expire_at, Retention};
use super::text;
use crate::time::{Calendar, Period};

/// What `--rankings` keeps: how many URLs per bucket, and how long after a bucket ends its
/// ranking stays (`--ranking-retention`; `None`: as long as the bucket).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeptConfig {
    pub size: usize,
    pub keep: Option<Duration>,
}

impl KeptConfig {
    /// The `EXPIREAT` (seconds) of the ranking and tally of `period`'s bucket at `start`:
    /// the earlier of the bucket's own expiry and its end plus the ranking retention; `None`
    /// for a bucket kept forever with rankings kept as long.
    pub(crate) fn expire_at(
        &self,
        calendar: &Calendar,
        retention: &Retention,
        period: Period,
        start: i64,
    ) -> Option<i64> {
        if period == Period::All {
            return None;
        }
        let bucket = retention[period].map(|keep| expire_at(calendar, period, start, keep));
        let ranking = self
            .keep
            .map(|keep| expire_at(calendar, period, start, keep));
        match (bucket, ranking) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether the bucket still has its ranking kept at `now_ms`: all-time always, another
    /// until its end plus the ranking retention. An older bucket's `/top` reads the bucket,
    /// and is never rebuilt.
    pub(crate) fn keeps(
        &self,
        calendar: &Calendar,
        period: Period,
        start: i64,
        now_ms: i64,
    ) -> bool {
        match (period, self.keep) {
            (Period::All, _) | (_, None) => true,
            (_, Some(keep)) => calendar.end(start, period) + keep.as_millis() as i64 > now_ms,
        }
    }
}

/// Rebuilds (with `rebuild`) the kept ranking of each bucket of hits in `buckets` that still
/// has one at this time (older buckets' `/top` reads the bucket); returns how many. Each
/// backend finds its buckets its own way; this is what `hitme rebuild-rankings` does then.
pub(crate) fn rebuild_current(
    config: &KeptConfig,
    calendar: &Calendar,
    buckets: Vec<(Period, i64)>,
    mut rebuild: impl FnMut(Period, i64) -> Result<bool, super::StoreError>,
) -> Result<usize, super::StoreError> {
    let now = crate::time::clock::now_ms();
    let mut rebuilt = 0;
    for (period, start) in buckets {
        if config.keeps(calendar, period, start, now) {
            // `false`: another HitMe is rebuilding it now.
            rebuild(period, start)?;
            rebuilt += 1;
        }
    }
    Ok(rebuilt)
}

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

/// How long a rebuild's notes live at most (of a bucket kept for ever): a HitMe that died
/// before emptying them leaves them this long.
pub(crate) const NOTES_KEEP_SECS: i64 = 86_400;

/// URLs a rebuild reads (or notes it empties) per chunk: each costs Redis about 7 µs, so a
/// chunk holds Redis (and the hits waiting on it) about 2 ms.
pub(crate) const REBUILD_CHUNK_URLS: usize = 250;

/// The keys of one bucket's kept ranking, beside its counting hash `<prefix>:<bucket>`:
/// `<prefix>:rank:<bucket>` (sorted set), `<prefix>:tally:<bucket>` (hash: `total`, `urls`,
/// and `stale` or `rebuilding` when not to be trusted) and, while a rebuild runs, its notes
/// `<prefix>:seen:<bucket>:<token>`; `<prefix>:rebuilding` maps the buckets being rebuilt
/// to their rebuild's token. None of these names is a period, so exports, imports and the
/// original HitMe pass them by.
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

    /// A rebuild's notes, less its token.
    pub(crate) fn seen(&self, bucket: &str) -> String {
        format!("{}:seen:{bucket}:", self.prefix)
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

/// The Lua function `before(a, b)`: whether URL `a` sorts before URL `b` as Redis orders a
/// sorted set's members at equal scores, byte by byte (Lua's own string order follows the
/// locale). The head of every script that compares URLs.
macro_rules! lua_before {
    () => {
        r#"local function before(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then
      return x < y
    end
  end
  return #a < #b
end
"#
    };
}
pub(crate) use lua_before;

/// Keeps the rankings and tallies of a batch's buckets, run in the hit's `MULTI` after the
/// batch's `HINCRBY`s, which are the same as without rankings: the script reads the counts
/// they left. KEYS: the counting hashes of the batch's buckets (a bucket may come more than
/// once, each time with other URLs); ARGV: K, the key prefix, then per key the number m of
/// its URLs and m pairs of a URL and how many hits the batch added to it there, or `=` for
/// the previous key's (a batch's buckets usually hold the same URLs).
///
/// Per bucket, a few calls whatever the batch holds: one `HMGET` of the URLs' counts, one
/// `ZRANGE` of the set's K-th member (its *edge*), one `ZADD` of the URLs that now rank
/// before the edge (members, whose scores rise, and newcomers), and, when that added any,
/// one trim back to K. A URL ranked after the edge is neither in the set nor can it enter:
/// a site's long tail costs the set nothing. Adding every URL that beats the edge read
/// before the batch and then trimming leaves the K best of the set and the batch, which are
/// the K best of the bucket. A batch of one URL that is a member is one `ZADD XX CH`. Two
/// URLs at equal counts are compared byte by byte, as Redis orders members (Lua's own string
/// order follows the locale). The tally gets one `HINCRBY` of `total`, and one of `urls`
/// when the batch brought URLs new to the bucket (its count is then what the batch added).
/// While the bucket is rebuilt, what the batch added is noted for the rebuild (see
/// [`REBUILD_CHUNK`]) until the rebuild has taken the URL.
pub(crate) const RANK_SCRIPT: &str = concat!(
    lua_before!(),
    r#"local k, pre = tonumber(ARGV[1]), ARGV[2]
local cut = #pre + 2
local rebuilding_key = pre .. ':rebuilding'
local rebuilding = redis.call('HLEN', rebuilding_key) > 0
local a, m, urls, added = 3, 0, {}, {}
for i = 1, #KEYS do
  local hash = KEYS[i]
  if ARGV[a] == '=' then
    a = a + 1
  else
    m, urls, added = tonumber(ARGV[a]), {}, {}
    for j = 1, m do
      urls[j], added[j] = ARGV[a + 2 * j - 1], tonumber(ARGV[a + 2 * j])
    end
    a = a + 1 + 2 * m
  end
  local name = string.sub(hash, cut)
  local rank = pre .. ':rank:' .. name
  -- Never missing (the batch's HINCRBYs just ran); were one, the batch's own hits stand.
  local found = redis.call('HMGET', hash, unpack(urls))
  local counts = {}
  local total, new = 0, 0
  for j = 1, m do
    found[j] = found[j] or tostring(added[j])
    counts[j] = tonumber(found[j])
    total = total + added[j]
    if counts[j] == added[j] then
      new = new + 1
    end
  end
  if not (m == 1 and redis.call('ZADD', rank, 'XX', 'CH', -counts[1], urls[1]) == 1) then
    local last = redis.call('ZRANGE', rank, k - 1, k - 1, 'WITHSCORES')
    local edge, edge_url = nil, nil
    if #last > 0 then
      edge, edge_url = tonumber(last[2]), last[1]
    end
    local entering = {}
    for j = 1, m do
      local s = -counts[j]
      if edge == nil or s < edge or (s == edge and before(urls[j], edge_url)) then
        -- The count as Redis wrote it: no number to format.
        entering[#entering + 1] = '-' .. found[j]
        entering[#entering + 1] = urls[j]
      end
    end
    if #entering > 0 and redis.call('ZADD', rank, unpack(entering)) > 0 then
      redis.call('ZREMRANGEBYRANK', rank, k, -1)
    end
  end
  local tally = pre .. ':tally:' .. name
  redis.call('HINCRBY', tally, 'total', total)
  if new > 0 then
    redis.call('HINCRBY', tally, 'urls', new)
  end
  if rebuilding then
    local token = redis.call('HGET', rebuilding_key, name)
    if token then
      local seen = pre .. ':seen:' .. name .. ':' .. token
      for j = 1, m do
        if redis.call('HGET', seen, urls[j]) ~= 'done' then
          redis.call('HINCRBY', seen, urls[j], added[j])
        end
      end
    end
  end
end
return 0
"#
);

/// The most URLs of one bucket that one [`RANK_SCRIPT`] key takes: Lua unpacks a key's
/// URLs (and their scores) onto its stack, which holds about 8,000 values. A larger batch
/// names the bucket again.
pub(crate) const RANK_SCRIPT_URLS: usize = 1000;

/// Starts a rebuild of one bucket's ranking, unless another one progressed within the last
/// [`REBUILD_STALE_MS`]: empties its set and tally and marks them `rebuilding` with this
/// rebuild's token (`<prefix>:rebuilding` maps the bucket to it; its notes are
/// `<prefix>:seen:<bucket>:<token>`, expiring with the ranking, or in a day). Returns
/// `{1, old token or ''}` when started (the notes of a rebuild taken over are HitMe's to
/// empty, [`EMPTY_NOTES`]), `{0}` when another rebuild is under way, `{2}` when the bucket
/// is empty (an empty bucket needs no ranking, and gets no keys that would outlive it).
/// Keys are emptied field by field, so that HitMe's Redis user needs no `DEL`.
/// KEYS: hash, rank, tally, rebuilding; ARGV: bucket, token, now (ms), stale after (ms),
/// the bucket's note key less its token, the notes' `EXPIREAT`, the ranking's (0: none).
pub(crate) const REBUILD_START: &str = r#"if redis.call('HLEN', KEYS[1]) == 0 then
  return {2}
end
local old = redis.call('HGET', KEYS[4], ARGV[1])
if old then
  local at = tonumber(redis.call('HGET', KEYS[3], 'progress') or '0')
  if tonumber(ARGV[3]) - at < tonumber(ARGV[4]) then
    return {0}
  end
end
redis.call('HSET', KEYS[4], ARGV[1], ARGV[2])
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -1)
redis.call('HDEL', KEYS[3], 'total', 'urls', 'stale', 'rebuilding', 'progress')
redis.call('HSET', KEYS[3], 'total', 0, 'urls', 0, 'rebuilding', ARGV[2], 'progress', ARGV[3])
local seen = ARGV[5] .. ARGV[2]
redis.call('HSET', seen, '', 'done')
redis.call('EXPIREAT', seen, ARGV[6])
if ARGV[7] ~= '0' then
  redis.call('EXPIREAT', KEYS[3], ARGV[7])
end
return {1, old or ''}
"#;

/// One chunk of a rebuild: the URLs of one `HSCAN` step, each taken once (its note marked
/// `done`) with its count at the rebuild's start (its count now, less what hits added since)
/// in the tally, and its count now in the set. Returns the next cursor ("0": the scan is
/// over), or -1 when another rebuild took this one over.
/// KEYS: hash, rank, tally, notes; ARGV: cursor, K, token, now (ms), URLs per chunk, the
/// ranking's `EXPIREAT` (0: none).
pub(crate) const REBUILD_CHUNK: &str = r#"if redis.call('HGET', KEYS[3], 'rebuilding') ~= ARGV[3] then
  return -1
end
local k = tonumber(ARGV[2])
local reply = redis.call('HSCAN', KEYS[1], ARGV[1], 'COUNT', ARGV[5])
local fields = reply[2]
local total, urls = 0, 0
-- The set's worst score (-count) once it is full; it only falls (counts only rise), so a
-- URL scoring above it cannot enter and is not written.
local worst = math.huge
local last = redis.call('ZRANGE', KEYS[2], k - 1, k - 1, 'WITHSCORES')
if #last > 0 then
  worst = tonumber(last[2])
end
for i = 1, #fields, 2 do
  local url, c = fields[i], tonumber(fields[i + 1])
  local noted = redis.call('HGET', KEYS[4], url)
  if noted ~= 'done' then
    local before = c - (tonumber(noted) or 0)
    if before > 0 then
      total = total + before
      urls = urls + 1
    end
    if -c <= worst then
      redis.call('ZADD', KEYS[2], 'LT', -c, url)
    end
    redis.call('HSET', KEYS[4], url, 'done')
  end
end
redis.call('ZREMRANGEBYRANK', KEYS[2], k, -1)
redis.call('HINCRBY', KEYS[3], 'total', total)
redis.call('HINCRBY', KEYS[3], 'urls', urls)
redis.call('HSET', KEYS[3], 'progress', ARGV[4])
if ARGV[6] ~= '0' then
  redis.call('EXPIREAT', KEYS[2], ARGV[6])
end
return reply[1]
"#;

/// Ends a rebuild whose scan is over: the ranking is trusted again, and hits stop adding to
/// its notes, which HitMe then empties ([`EMPTY_NOTES`]). Returns 1, or 0 when another
/// rebuild took this one over. KEYS: tally, rebuilding; ARGV: bucket, token.
pub(crate) const REBUILD_END: &str = r#"if redis.call('HGET', KEYS[1], 'rebuilding') ~= ARGV[2] then
  return 0
end
redis.call('HDEL', KEYS[1], 'rebuilding', 'progress')
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
"#;

/// Empties a rebuild's notes a chunk at a time: they hold a mark for every URL of the
/// bucket, and deleting a hash of millions of fields at once would hold Redis for seconds.
/// Returns the next cursor ("0": a pass is over). KEYS: notes; ARGV: cursor, count.
pub(crate) const EMPTY_NOTES: &str = r#"local reply = redis.call('HSCAN', KEYS[1], ARGV[1], 'COUNT', ARGV[2])
local fields = reply[2]
for i = 1, #fields, 2 do
  redis.call('HDEL', KEYS[1], fields[i])
end
return reply[1]
"#;

/// Removes a URL's count from one bucket with its ranking kept: the count leaves the tally
/// and the set; a URL removed from a full set leaves a place the next URL (unknown here)
/// should take, and a rebuild under way may have summed the URL or not, so either way the
/// tally is marked `stale` for a rebuild. Returns the removed count
/// (0: the bucket did not hold the URL). KEYS: hash, rank, tally; ARGV: URL, K.
pub(crate) const DELETE_SCRIPT: &str = r#"local c = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if c == 0 then
  return 0
end
redis.call('HDEL', KEYS[1], ARGV[1])
if redis.call('HLEN', KEYS[3]) > 0 then
  local urls = tonumber(redis.call('HGET', KEYS[3], 'urls') or '0')
  redis.call('HINCRBY', KEYS[3], 'total', -c)
  redis.call('HINCRBY', KEYS[3], 'urls', -1)
  local full = redis.call('ZREM', KEYS[2], ARGV[1]) == 1 and urls > tonumber(ARGV[2])
  if full or redis.call('HGET', KEYS[3], 'rebuilding') then
    redis.call('HSET', KEYS[3], 'stale', 1)
  end
end
return c
"#;

/// Marks buckets' kept rankings for a rebuild (an import wrote counts beside them, or a
/// hit's ranking could not be written), those that have one. KEYS: the tallies (one slot).
pub(crate) const MARK_STALE: &str = r#"for _, tally in ipairs(KEYS) do
  if redis.call('HLEN', tally) > 0 then
    redis.call('HSET', tally, 'stale', 1)
  end
end
return 0
"#;

/// A rebuild's start reply (`{status}` or `{status, old token or ''}`): its status, and the
/// token of a rebuild it took over.
pub(crate) fn start_reply(reply: redis::Value) -> redis::RedisResult<(i64, Option<String>)> {
    let items: Vec<redis::Value> = redis::from_redis_value(reply.extract_error()?)?;
    let mut items = items.into_iter();
    let status: i64 = match items.next() {
        Some(v) => redis::from_redis_value(v)?,
        None => 0,
    };
    let old = match items.next() {
        Some(v) => Some(text(v)?).filter(|t| !t.is_empty()),
        None => None,
    };
    Ok((status, old))
}

/// A `ZRANGE ... WITHSCORES` reply of a kept ranking (scores are `-count`) as (URL, count)
/// pairs in rank order.
pub(crate) fn ranked(reply: redis::Value) -> redis::RedisResult<Vec<(String, i64)>> {
    let items: Vec<redis::Value> = redis::from_redis_value(reply.extract_error()?)?;
    let mut items = items.into_iter();
    let mut top = Vec::with_capacity(items.len() / 2);
    while let (Some(url), Some(score)) = (items.next(), items.next()) {
        let score: f64 = redis::from_redis_value(score)?;
        top.push((text(url)?, -score as i64));
    }
    Ok(top)
}

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
