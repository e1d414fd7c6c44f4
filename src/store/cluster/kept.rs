//! `--rankings` in cluster mode: each bucket's ranking kept in 16 shards, one per URL index
//! shard, so that no key is a hot slot, and merged when read (the top K of a union is within
//! the union of the shards' top Ks).
//!
//! Shard N (the top 4 bits of the URL's hash, [`index_shard`]) holds, in the slot of its
//! tag `{r<N>}` (the sources shards' tag): `<prefix>:rank:{r<N>}:<bucket>` (a sorted set,
//! score `-count`), `<prefix>:tally:{r<N>}:<bucket>` (`total`, `urls`, `since`, and `stale`
//! or `rebuilding` when not to be trusted), `<prefix>:rebuilding:{r<N>}` (bucket -> token)
//! and, while a rebuild runs, its notes `<prefix>:seen:{r<N>}:<bucket>:<token>`. A URL's
//! counts live in another slot, so a hit is two round trips: the hit's own script, which then
//! returns the URL's six new counts, then [`SHARD_RANK_SCRIPT`] in the URL's shard with
//! them. Reports of one URL's counts may so arrive out of order: the set only ever lowers a
//! score (`ZADD LT`), and the tally adds what each hit added, which commutes.
//!
//! When a shard has no tally for a bucket, either no URL of the shard was hit there, or the
//! hits came before rankings were kept. `<prefix>:config` records since when they are
//! (`rankings_since`, ms, set by the first HitMe with `--rankings`; every HitMe of a cluster
//! must agree on the flag, HitMe checks it as it starts): a bucket that began after that
//! instant has had every hit ranked, and a missing tally there is an empty shard. Every
//! tally names the `since` it was kept under, so that rankings kept before the record was
//! removed (rankings turned off, then on) are rebuilt rather than trusted.
//!
//! A rebuild of a bucket's shards is [`super::rebuild`]'s.

use redis::{Cmd, ErrorKind, RedisResult, ServerErrorKind, Value};

use super::conn::Conn;
use super::keys::{index_shard, slot_of_key, slot_of_tag, INDEX_SHARDS};
use super::sources::source_tag;
use super::{errors, ClusterStore};
use crate::store::kept::{lua_before, ranked, KeptConfig, KeptKeys, KeptPage};
use crate::store::{settings, BucketedHit, StoreError};
use crate::time::clock::now_ms;
use crate::time::Period;

/// The field of `<prefix>:config` that says since when (ms) hits are ranked.
pub(crate) const RANKINGS_SINCE: &str = "rankings_since";

/// Ranks one URL's hit in its shard, in the six buckets of the hit.
/// KEYS: the six sets (all-time to minute), the six tallies, the shard's `rebuilding` hash.
/// ARGV: K, the URL, how many hits, `since`, the shard's notes prefix
/// (`<prefix>:seen:{r<N>}:`), then per bucket its name, the URL's new count there and the
/// ranking's `EXPIREAT` (0: keep).
///
/// The set: a member's score is lowered (`XX LT`: a report older than the one applied
/// changes nothing); any other URL is compared with the K-th member and, if it beats it,
/// added (`LT`) and the set trimmed back to K. The tally: `total` and, on the URL's first
/// hit in the bucket, `urls`; a new tally gets `since` and its expiry. While the bucket's
/// shard is rebuilt, the URL's note keeps the highest count seen, and the tally takes what
/// raises it. The notes' key is named by the rebuild's token, so it is not in KEYS; its
/// hash tag puts it in this slot.
pub(crate) const SHARD_RANK_SCRIPT: &str = concat!(
    lua_before!(),
    r#"local k, url, n, since, seen_pre = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
local rebuilding = redis.call('HLEN', KEYS[13]) > 0
for i = 1, 6 do
  local rank, tally = KEYS[i], KEYS[6 + i]
  local a = 3 + 3 * i
  local bucket, c, at = ARGV[a], tonumber(ARGV[a + 1]), ARGV[a + 2]
  local s = -c
  if redis.call('ZADD', rank, 'XX', 'LT', 'CH', s, url) == 0 then
    local last = redis.call('ZRANGE', rank, k - 1, k - 1, 'WITHSCORES')
    local edge = #last > 0 and tonumber(last[2])
    if #last == 0 or s < edge or (s == edge and before(url, last[1])) then
      if redis.call('ZADD', rank, 'LT', s, url) == 1 then
        redis.call('ZREMRANGEBYRANK', rank, k, -1)
        if at ~= '0' then
          redis.call('EXPIREAT', rank, at)
        end
      end
    end
  end
  local token = rebuilding and redis.call('HGET', KEYS[13], bucket)
  if token then
    local seen = seen_pre .. bucket .. ':' .. token
    local was = tonumber(redis.call('HGET', seen, url) or '0')
    if c > was then
      redis.call('HSET', seen, url, c)
      redis.call('HINCRBY', tally, 'total', c - was)
      if was == 0 then
        redis.call('HINCRBY', tally, 'urls', 1)
      end
    end
  else
    if redis.call('HINCRBY', tally, 'total', n) == n then
      redis.call('HSETNX', tally, 'since', since)
      if at ~= '0' then
        redis.call('EXPIREAT', tally, at)
      end
    end
    if c == n then
      redis.call('HINCRBY', tally, 'urls', 1)
    end
  end
end
return 0
"#
);

/// Removes a URL's count (`ARGV[3]`, read and deleted in its own slot) from its shard's
/// ranking of one bucket: out of the tally and the set; marked `stale` when it left a full
/// set (the next URL is unknown here) or a rebuild is under way. KEYS: set, tally; ARGV:
/// URL, K, count.
pub(crate) const SHARD_DELETE_SCRIPT: &str = r#"if redis.call('HLEN', KEYS[2]) == 0 then
  return 0
end
local urls = tonumber(redis.call('HGET', KEYS[2], 'urls') or '0')
redis.call('HINCRBY', KEYS[2], 'total', -tonumber(ARGV[3]))
redis.call('HINCRBY', KEYS[2], 'urls', -1)
local full = redis.call('ZREM', KEYS[1], ARGV[1]) == 1 and urls > tonumber(ARGV[2])
if full or redis.call('HGET', KEYS[2], 'rebuilding') then
  redis.call('HSET', KEYS[2], 'stale', 1)
end
return 1
"#;

/// The keys of one shard's rankings.
pub(super) struct ShardKeys {
    keys: KeptKeys,
    number: u64,
    tag: String,
}

impl ShardKeys {
    pub(super) fn new(prefix: &str, shard: u64) -> ShardKeys {
        ShardKeys {
            keys: KeptKeys {
                prefix: prefix.to_string(),
            },
            number: shard,
            tag: source_tag(shard),
        }
    }

    pub(super) fn slot(&self) -> u16 {
        slot_of_tag(&self.tag)
    }

    /// The bucket part of the shard's keys, `{r<N>}:<bucket>`.
    fn bucket(&self, bucket: &str) -> String {
        format!("{{{}}}:{bucket}", self.tag)
    }

    pub(super) fn rank(&self, bucket: &str) -> String {
        self.keys.rank(&self.bucket(bucket))
    }

    pub(super) fn tally(&self, bucket: &str) -> String {
        self.keys.tally(&self.bucket(bucket))
    }

    /// The notes of a rebuild, less the bucket and token: `<prefix>:seen:{r<N>}:`.
    pub(super) fn seen_prefix(&self) -> String {
        format!("{}:seen:{{{}}}:", self.keys.prefix, self.tag)
    }

    pub(super) fn rebuilding(&self) -> String {
        format!("{}:rebuilding:{{{}}}", self.keys.prefix, self.tag)
    }
}

/// One shard's tally and page, as read.
struct ShardPage {
    tally: Vec<Option<String>>,
    set_len: usize,
    top: Vec<(String, i64)>,
}

impl ShardPage {
    /// The shard's total and URLs if its ranking can be trusted for a bucket starting at
    /// `start` under rankings kept `since`: a tally of that `since`, unflagged, beside a set
    /// of K or all its URLs; or no tally at all in a bucket that began after `since`.
    fn trusted(&self, start: i64, period: Period, since: i64, size: usize) -> Option<(i64, usize)> {
        let field = |i: usize| self.tally.get(i).cloned().flatten();
        let number = |i: usize| field(i).and_then(|v| v.parse::<i64>().ok());
        if self.tally.iter().all(Option::is_none) {
            let born_ranked = period != Period::All && start >= since;
            return (born_ranked && self.set_len == 0).then_some((0, 0));
        }
        let (total, urls) = (number(0)?, number(1)?);
        let flagged = field(2).is_some() || field(3).is_some();
        let kept_since = number(4) == Some(since);
        let whole = urls >= 0 && self.set_len == (urls as usize).min(size);
        (!flagged && kept_since && whole).then_some((total, urls as usize))
    }
}

impl ClusterStore {
    /// The instant rankings are kept since, recording it as now if none is: `HSETNX` and
    /// `HGET` of `<prefix>:config`, asked once per HitMe.
    pub(super) fn rankings_since(&self, conn: &mut Conn) -> Result<i64, StoreError> {
        if let Some(since) = self.since.get() {
            return Ok(*since);
        }
        let key = settings::key(&self.keys.prefix);
        let slot = slot_of_key(&key);
        let claim = [
            (
                slot,
                redis::cmd("HSETNX")
                    .arg(&key)
                    .arg(RANKINGS_SINCE)
                    .arg(now_ms())
                    .to_owned(),
            ),
            (
                slot,
                redis::cmd("HGET").arg(&key).arg(RANKINGS_SINCE).to_owned(),
            ),
        ];
        let since = self.run(conn, |conn, connector| {
            let recorded = conn.read(connector, &claim, true)?.pop();
            Ok(redis::from_redis_value::<i64>(
                recorded.unwrap_or(Value::Nil),
            )?)
        })?;
        Ok(*self.since.get_or_init(|| since))
    }

    /// Ranks `times` equal hits of `hit`, whose counts the hit's script returned, in the URL's
    /// shard: [`SHARD_RANK_SCRIPT`], a round trip after the hit's own, confirmed by replicas
    /// as the hit was. The hit is counted either way: a ranking not written for sure (an
    /// error, or no replica's confirmation) is logged, and the shard's rankings of the hit's
    /// buckets are marked for a rebuild, now or once the shard answers again.
    pub(super) fn rank_hit(
        &self,
        conn: &mut Conn,
        kept: &KeptConfig,
        hit: &BucketedHit,
        times: usize,
        counts: &[i64],
    ) {
        self.mark_remembered(conn);
        let shard = ShardKeys::new(&self.keys.prefix, index_shard(&hit.url));
        let buckets = hit.starts.map(KeptKeys::bucket);
        let ranked = self.rankings_since(conn).and_then(|since| {
            let script = |name: &str, body: &str| {
                let mut cmd = redis::cmd(name);
                cmd.arg(body).arg(13);
                for (_, bucket) in buckets.iter() {
                    cmd.arg(shard.rank(bucket));
                }
                for (_, bucket) in buckets.iter() {
                    cmd.arg(shard.tally(bucket));
                }
                cmd.arg(shard.rebuilding())
                    .arg(kept.size)
                    .arg(&hit.url)
                    .arg(times)
                    .arg(since)
                    .arg(shard.seen_prefix());
                for ((period, bucket), count) in buckets.iter().zip(counts) {
                    let at = kept
                        .expire_at(&self.calendar, &self.retention, period, hit.starts[period])
                        .unwrap_or(0);
                    cmd.arg(bucket).arg(*count).arg(at);
                }
                cmd
            };
            let evalsha = script("EVALSHA", &self.shard_rank_sha);
            let (want, wait_for) = (self.wait_replicas, self.wait_for);
            self.run(conn, |conn, connector| {
                let mut send =
                    |cmd: &Cmd| conn.replicated(connector, cmd, shard.slot(), want, wait_for);
                match send(&evalsha) {
                    // A node that never ran the script: EVAL loads it.
                    Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                        send(&script("EVAL", SHARD_RANK_SCRIPT))
                    }
                    result => result,
                }
            })
        });
        let why = match ranked {
            Ok((_, replication)) if replication.confirmed >= replication.asked => return,
            // Written, but a failover now could lose it.
            Ok(_) => "no replica confirmed it in time".to_string(),
            Err(e) => e.message().to_string(),
        };
        if self.rank_failures.allows() {
            log::warn!(
                "counted a hit for {} but could not rank it for sure ({why}); its shard's rankings are marked for a rebuild (further ones are logged at most once a second)",
                hit.url
            );
        }
        let tallies: Vec<String> = buckets.iter().map(|(_, b)| shard.tally(b)).collect();
        self.mark_or_remember(conn, &shard, tallies);
    }

    /// Marks `tallies` (of `shard`'s slot) stale, confirmed by replicas as a hit is; what
    /// cannot be is remembered and marked once the shard answers ([`Self::mark_remembered`]),
    /// and until then its bucket's ranking is not served by this HitMe. One command for them
    /// all: a node that does not answer costs one more timeout at most.
    fn mark_or_remember(&self, conn: &mut Conn, shard: &ShardKeys, tallies: Vec<String>) {
        let mark = mark_stale(&tallies);
        let (want, wait_for) = (self.wait_replicas, self.wait_for);
        let marked = self.run(conn, |conn, connector| {
            conn.replicated(connector, &mark, shard.slot(), want, wait_for)
        });
        if !matches!(marked, Ok((_, r)) if r.confirmed >= r.asked) {
            let mut unmarked = self.unmarked();
            for tally in tallies {
                unmarked.insert((shard.number, tally));
            }
        }
    }

    /// Marks the tallies remembered by [`Self::mark_or_remember`], shard by shard; those
    /// that still cannot be are kept for the next try. Free when none is remembered.
    fn mark_remembered(&self, conn: &mut Conn) {
        let remembered = {
            let mut unmarked = self.unmarked();
            if unmarked.is_empty() {
                return;
            }
            std::mem::take(&mut *unmarked)
        };
        let mut by_shard: std::collections::BTreeMap<u64, Vec<String>> = Default::default();
        for (shard, tally) in remembered {
            by_shard.entry(shard).or_default().push(tally);
        }
        for (shard, tallies) in by_shard {
            let keys = ShardKeys::new(&self.keys.prefix, shard);
            self.mark_or_remember(conn, &keys, tallies);
        }
    }

    /// Forgets the remembered tallies of a bucket that was rebuilt since.
    pub(super) fn forget_unmarked(&self, bucket: &str) {
        self.unmarked()
            .retain(|(_, tally)| !is_tally_of(tally, bucket));
    }

    /// The tallies remembered by [`Self::mark_or_remember`]; a panic elsewhere while they
    /// were held leaves them as they were, still worth marking.
    fn unmarked(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeSet<(u64, String)>> {
        self.unmarked.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A page of the bucket's kept ranking: each shard's tally, set size and first
    /// `offset + limit` members, one batch per master, merged. `None` when a shard's ranking
    /// cannot be trusted.
    pub(super) fn read_kept_page(
        &self,
        kept: &KeptConfig,
        period: Period,
        start: i64,
        offset: usize,
        limit: usize,
    ) -> Result<Option<KeptPage>, StoreError> {
        let bucket = KeptKeys::bucket(period, start);
        let mut conn = self.checkout()?;
        let since = self.rankings_since(&mut conn)?;
        self.mark_remembered(&mut conn);
        if self
            .unmarked()
            .iter()
            .any(|(_, tally)| is_tally_of(tally, &bucket))
        {
            return Ok(None);
        }
        let mut reads: Vec<(u16, Cmd)> = Vec::with_capacity(3 * INDEX_SHARDS as usize);
        for shard in 0..INDEX_SHARDS {
            let keys = ShardKeys::new(&self.keys.prefix, shard);
            let rank = keys.rank(&bucket);
            reads.push((
                keys.slot(),
                redis::cmd("HMGET")
                    .arg(keys.tally(&bucket))
                    .arg(&["total", "urls", "stale", "rebuilding", "since"])
                    .to_owned(),
            ));
            reads.push((keys.slot(), redis::cmd("ZCARD").arg(&rank).to_owned()));
            // ZRANGE with a stop before its start is empty (a stop of -1 would mean the end).
            let last = (offset + limit) as i64 - 1;
            reads.push((
                keys.slot(),
                redis::cmd("ZRANGE")
                    .arg(&rank)
                    .arg(if limit == 0 { 1 } else { 0 })
                    .arg(last.max(0))
                    .arg("WITHSCORES")
                    .to_owned(),
            ));
        }
        let values = self.run(&mut conn, |conn, connector| {
            conn.read(connector, &reads, false)
        })?;
        let mut page = KeptPage::default();
        let mut top = Vec::new();
        let mut values = values.into_iter();
        while let (Some(tally), Some(set_len), Some(members)) =
            (values.next(), values.next(), values.next())
        {
            let shard = (|| -> RedisResult<ShardPage> {
                Ok(ShardPage {
                    tally: redis::from_redis_value(tally.extract_error()?)?,
                    set_len: redis::from_redis_value(set_len.extract_error()?)?,
                    top: ranked(members)?,
                })
            })()
            .map_err(errors::store_error)?;
            let Some((total, urls)) = shard.trusted(start, period, since, kept.size) else {
                return Ok(None);
            };
            page.total += total;
            page.urls += urls;
            top.extend(shard.top);
        }
        top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        page.top = top.into_iter().skip(offset).take(limit).collect();
        Ok(Some(page))
    }

    /// Takes `count`, removed from the URL's bucket, out of its shard's ranking of that
    /// bucket ([`SHARD_DELETE_SCRIPT`]).
    pub(super) fn unrank(
        &self,
        kept: &KeptConfig,
        url: &str,
        (period, start): (Period, i64),
        count: i64,
    ) -> Result<(), StoreError> {
        let keys = ShardKeys::new(&self.keys.prefix, index_shard(url));
        let bucket = KeptKeys::bucket(period, start);
        let cmd = redis::cmd("EVAL")
            .arg(SHARD_DELETE_SCRIPT)
            .arg(2)
            .arg(keys.rank(&bucket))
            .arg(keys.tally(&bucket))
            .arg(url)
            .arg(kept.size)
            .arg(count)
            .to_owned();
        self.with_connection(|conn, connector| conn.command(connector, &cmd).map(drop))
    }

    /// Marks for a rebuild the shards' rankings of buckets an import wrote into: one
    /// `MARK_STALE` per (shard, bucket), batched per master.
    pub(super) fn mark_imported(&self, buckets: &[(u64, Period, i64)]) -> Result<(), StoreError> {
        let marks: Vec<(u16, Cmd)> = buckets
            .iter()
            .map(|&(shard, period, start)| {
                let keys = ShardKeys::new(&self.keys.prefix, shard);
                (
                    keys.slot(),
                    mark_stale(&[keys.tally(&KeptKeys::bucket(period, start))]),
                )
            })
            .collect();
        if marks.is_empty() {
            return Ok(());
        }
        self.with_connection(|conn, connector| conn.read(connector, &marks, false).map(drop))
    }
}

/// Whether `tally` (a shard's tally key, `...:tally:{r<N>}:<bucket>`) is one of `bucket`'s.
fn is_tally_of(tally: &str, bucket: &str) -> bool {
    tally
        .strip_suffix(bucket)
        .is_some_and(|head| head.ends_with("}:"))
}

/// `MARK_STALE` of tallies in one slot.
fn mark_stale(tallies: &[String]) -> Cmd {
    redis::cmd("EVAL")
        .arg(crate::store::kept::MARK_STALE)
        .arg(tallies.len())
        .arg(tallies)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_keys_share_their_shards_tag() {
        let keys = ShardKeys::new("hits", 3);
        let bucket = KeptKeys::bucket(Period::Day, 1_700_006_400_000);
        assert_eq!(keys.rank(&bucket), "hits:rank:{r3}:day:1700006400000");
        assert_eq!(keys.tally("all"), "hits:tally:{r3}:all");
        assert!(is_tally_of(&keys.tally(&bucket), &bucket));
        assert!(!is_tally_of(&keys.tally(&bucket), "day:700006400000"));
        assert!(!is_tally_of(&keys.tally("all"), &bucket));
        assert_eq!(keys.rebuilding(), "hits:rebuilding:{r3}");
        assert_eq!(keys.seen_prefix(), "hits:seen:{r3}:");
        for key in [keys.rank("all"), keys.tally("all"), keys.rebuilding()] {
            assert_eq!(slot_of_key(&key), keys.slot(), "{key}");
        }
    }

    #[test]
    fn a_shard_without_a_tally_is_empty_only_in_a_bucket_born_ranked() {
        let empty = ShardPage {
            tally: vec![None; 5],
            set_len: 0,
            top: Vec::new(),
        };
        assert_eq!(empty.trusted(2_000, Period::Day, 1_000, 5), Some((0, 0)));
        assert_eq!(empty.trusted(500, Period::Day, 1_000, 5), None, "older");
        assert_eq!(empty.trusted(0, Period::All, 0, 5), None, "all-time");
        let tally = |fields: [Option<&str>; 5], set_len| ShardPage {
            tally: fields.iter().map(|f| f.map(str::to_string)).collect(),
            set_len,
            top: Vec::new(),
        };
        let kept = tally([Some("9"), Some("7"), None, None, Some("1000")], 5);
        assert_eq!(kept.trusted(0, Period::All, 1_000, 5), Some((9, 7)));
        assert_eq!(
            kept.trusted(0, Period::All, 2_000, 5),
            None,
            "another since"
        );
        assert_eq!(
            kept.trusted(0, Period::All, 1_000, 6),
            None,
            "a set short of K"
        );
        let stale = tally([Some("9"), Some("7"), Some("1"), None, Some("1000")], 5);
        assert_eq!(stale.trusted(0, Period::All, 1_000, 5), None);
    }
}
