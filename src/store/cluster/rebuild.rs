//! Rebuilding a bucket's kept ranking in cluster mode ([`super::kept`] has the layout):
//! shard by shard, from the URL index shard and the URLs' counts, while hits go on.
//!
//! A rebuild cannot read a shard's counts atomically with its ranking (other slots). So
//! while one runs, hits and the rebuild's chunks both note per URL the highest count they
//! have seen, and add to the tally only what raises it: the order of the two no longer
//! matters. The rebuild waits a while after its last chunk before hits go back to adding
//! what they add, so that a hit counted before the last chunk but ranked after it is not
//! added twice.

use std::time::Duration;

use super::conn::Conn;
use super::kept::ShardKeys;
use super::keys::INDEX_SHARDS;
use super::{errors, ClusterStore};
use crate::store::kept::{
    start_reply, KeptConfig, KeptKeys, EMPTY_NOTES, NOTES_KEEP_SECS, REBUILD_CHUNK_URLS,
    REBUILD_END, REBUILD_STALE_MS,
};
use crate::store::{text, Metric, StoreError};
use crate::time::clock::{self, now_ms};
use crate::time::Period;

/// Starts the rebuild of one shard of a bucket's ranking: the shard's set and tally emptied
/// and marked `rebuilding` with this rebuild's token, unless another rebuild progressed
/// within the last `stale after` ms (0: take over whatever runs). The tally is made even for
/// a shard without URLs, so that it reads as known and empty. Returns `{1, old token or
/// ''}` when started (the notes of a rebuild taken over are the caller's to empty), `{0}`
/// when another rebuild is under way.
/// KEYS: set, tally, the shard's `rebuilding` hash, the notes; ARGV: bucket, token, now
/// (ms), stale after (ms), the notes' `EXPIREAT`, the ranking's (0: none), `since`.
pub(crate) const SHARD_REBUILD_START: &str = r#"local old = redis.call('HGET', KEYS[3], ARGV[1])
if old then
  local at = tonumber(redis.call('HGET', KEYS[2], 'progress') or '0')
  if tonumber(ARGV[3]) - at < tonumber(ARGV[4]) then
    return {0}
  end
end
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -1)
redis.call('HDEL', KEYS[2], 'total', 'urls', 'stale', 'rebuilding', 'progress', 'since')
redis.call('HSET', KEYS[2], 'total', 0, 'urls', 0, 'rebuilding', ARGV[2], 'progress', ARGV[3], 'since', ARGV[7])
redis.call('HSET', KEYS[4], '', 0)
redis.call('EXPIREAT', KEYS[4], ARGV[5])
if ARGV[6] ~= '0' then
  redis.call('EXPIREAT', KEYS[2], ARGV[6])
end
return {1, old or ''}
"#;

/// One chunk of a shard's rebuild: URLs with their counts as read from their own slots. A
/// count above the URL's note raises the note, the tally by the difference (and `urls` when
/// the URL is new to it) and the URL's score; the set is trimmed back to K. Returns 1, or -1
/// when another rebuild took this one over.
/// KEYS: set, tally, notes; ARGV: token, K, now (ms), the ranking's `EXPIREAT` (0: none),
/// then pairs of URL and count.
pub(crate) const SHARD_REBUILD_CHUNK: &str = r#"if redis.call('HGET', KEYS[2], 'rebuilding') ~= ARGV[1] then
  return -1
end
local total, urls = 0, 0
for i = 5, #ARGV, 2 do
  local url, c = ARGV[i], tonumber(ARGV[i + 1])
  local was = tonumber(redis.call('HGET', KEYS[3], url) or '0')
  if c > was then
    redis.call('HSET', KEYS[3], url, c)
    total = total + c - was
    if was == 0 then
      urls = urls + 1
    end
    redis.call('ZADD', KEYS[1], 'LT', -c, url)
  end
end
redis.call('ZREMRANGEBYRANK', KEYS[1], tonumber(ARGV[2]), -1)
redis.call('HINCRBY', KEYS[2], 'total', total)
redis.call('HINCRBY', KEYS[2], 'urls', urls)
redis.call('HSET', KEYS[2], 'progress', ARGV[3])
if ARGV[4] ~= '0' then
  redis.call('EXPIREAT', KEYS[1], ARGV[4])
end
return 1
"#;

/// Renews a rebuild's lock, shard 0's tally of the bucket, if the rebuild still holds it.
/// KEYS: the tally; ARGV: token, now (ms).
const RENEW_LOCK: &str = r#"if redis.call('HGET', KEYS[1], 'rebuilding') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'progress', ARGV[2])
end
return 0
"#;

/// A rebuild under way: what is kept, the bucket, the rebuild's token and the ranking's
/// `EXPIREAT` (0: none).
struct Rebuild<'a> {
    kept: &'a KeptConfig,
    bucket: (Period, i64),
    token: &'a str,
    expire_at: i64,
}

impl ClusterStore {
    /// Rebuilds the bucket's kept ranking, shard after shard: each started (shard 0 first, as
    /// the rebuild's lock: a rebuild found there, progressing, means `false`), read in chunks
    /// (`SSCAN` of the URL index shard, then the URLs' counts, one batch per master, then
    /// [`SHARD_REBUILD_CHUNK`]), then, after a wait that outlasts any hit in flight, ended
    /// ([`REBUILD_END`]) and its notes emptied.
    pub(super) fn rebuild_kept(
        &self,
        kept: &KeptConfig,
        period: Period,
        start: i64,
    ) -> Result<bool, StoreError> {
        let bucket = KeptKeys::bucket(period, start);
        let token = crate::store::random_hex()?;
        let expire_at = kept
            .expire_at(&self.calendar, &self.retention, period, start)
            .unwrap_or(0);
        let notes_at = match expire_at {
            0 => clock::now_secs() + NOTES_KEEP_SECS,
            at => at,
        };
        let mut conn = self.checkout()?;
        let since = self.rankings_since(&mut conn)?;
        let shards: Vec<ShardKeys> = (0..INDEX_SHARDS)
            .map(|shard| ShardKeys::new(&self.keys.prefix, shard))
            .collect();
        let notes =
            |keys: &ShardKeys, token: &str| format!("{}{bucket}:{token}", keys.seen_prefix());
        for (shard, keys) in shards.iter().enumerate() {
            let stale_after = if shard == 0 { REBUILD_STALE_MS } else { 0 };
            let started = self.run(&mut conn, |conn, connector| {
                let cmd = redis::cmd("EVAL")
                    .arg(SHARD_REBUILD_START)
                    .arg(4)
                    .arg(keys.rank(&bucket))
                    .arg(keys.tally(&bucket))
                    .arg(keys.rebuilding())
                    .arg(notes(keys, &token))
                    .arg(&bucket)
                    .arg(&token)
                    .arg(now_ms())
                    .arg(stale_after)
                    .arg(notes_at)
                    .arg(expire_at)
                    .arg(since)
                    .to_owned();
                start_reply(conn.command(connector, &cmd)?)
            })?;
            match started {
                (0, _) => return Ok(false),
                (_, Some(old)) => {
                    log::warn!("taking over a rebuild of the kept ranking of {bucket} (shard {shard}) that stopped");
                    self.empty_shard_notes(&mut conn, &notes(keys, &old))?;
                }
                _ => {}
            }
        }
        log::debug!("rebuilding the kept ranking of {bucket} in cluster mode");
        let rebuild = Rebuild {
            kept,
            bucket: (period, start),
            token: &token,
            expire_at,
        };
        for (shard, keys) in shards.iter().enumerate() {
            if !self.rebuild_shard(&mut conn, &rebuild, keys, shard as u64)? {
                return Ok(false);
            }
        }
        // A hit counted before a chunk read its URL may be ranked after it: until it has been,
        // hits must go on adding only what raises a URL's note.
        std::thread::sleep(self.rebuild_grace());
        for keys in &shards {
            let ended: i64 = self.run(&mut conn, |conn, connector| {
                let cmd = redis::cmd("EVAL")
                    .arg(REBUILD_END)
                    .arg(2)
                    .arg(keys.tally(&bucket))
                    .arg(keys.rebuilding())
                    .arg(&bucket)
                    .arg(&token)
                    .to_owned();
                Ok(redis::from_redis_value(conn.command(connector, &cmd)?)?)
            })?;
            if ended != 1 {
                return Ok(false);
            }
        }
        for keys in &shards {
            self.empty_shard_notes(&mut conn, &notes(keys, &token))?;
        }
        // Every shard was read anew, the hits that could not be ranked with the rest.
        self.forget_unmarked(&bucket);
        Ok(true)
    }

    /// How long a rebuild waits after its last chunk: past any hit in flight, whose two
    /// round trips are each bounded by the Redis timeout.
    fn rebuild_grace(&self) -> Duration {
        self.timeout * 2
    }

    /// The chunks of one shard of a rebuild; `false` when another rebuild took it over.
    fn rebuild_shard(
        &self,
        conn: &mut Conn,
        rebuild: &Rebuild<'_>,
        keys: &ShardKeys,
        shard: u64,
    ) -> Result<bool, StoreError> {
        let mut cursor = 0u64;
        loop {
            let (next, counts) =
                self.scan_shard(conn, rebuild.bucket, shard, cursor, Metric::Hits)?;
            // A step that found no count still renews the lock and the set's expiry.
            let chunks: Vec<&[(String, i64)]> = match counts.is_empty() {
                true => vec![&[]],
                false => counts.chunks(REBUILD_CHUNK_URLS).collect(),
            };
            for chunk in chunks {
                if !self.rebuild_chunk(conn, rebuild, keys, chunk)? {
                    return Ok(false);
                }
            }
            if next == 0 {
                return Ok(true);
            }
            cursor = next;
        }
    }

    /// One [`SHARD_REBUILD_CHUNK`] of `counts`; `false` when another rebuild took this one
    /// over. Shard 0's tally holds the rebuild's lock: its progress is renewed first, so
    /// that the rebuild is seen alive whatever shard it is in.
    fn rebuild_chunk(
        &self,
        conn: &mut Conn,
        rebuild: &Rebuild<'_>,
        keys: &ShardKeys,
        counts: &[(String, i64)],
    ) -> Result<bool, StoreError> {
        let bucket = KeptKeys::bucket(rebuild.bucket.0, rebuild.bucket.1);
        let token = rebuild.token;
        let lock = ShardKeys::new(&self.keys.prefix, 0);
        let alive = redis::cmd("EVAL")
            .arg(RENEW_LOCK)
            .arg(1)
            .arg(lock.tally(&bucket))
            .arg(token)
            .arg(now_ms())
            .to_owned();
        let mut chunk = redis::cmd("EVAL");
        chunk
            .arg(SHARD_REBUILD_CHUNK)
            .arg(3)
            .arg(keys.rank(&bucket))
            .arg(keys.tally(&bucket))
            .arg(format!("{}{bucket}:{token}", keys.seen_prefix()))
            .arg(token)
            .arg(rebuild.kept.size)
            .arg(now_ms())
            .arg(rebuild.expire_at);
        for (url, count) in counts {
            chunk.arg(url).arg(*count);
        }
        let taken: i64 = self.run(conn, |conn, connector| {
            conn.command(connector, &alive)?;
            Ok(redis::from_redis_value(conn.command(connector, &chunk)?)?)
        })?;
        Ok(taken != -1)
    }

    /// Empties a rebuild's notes in one shard, [`EMPTY_NOTES`] a chunk at a time.
    fn empty_shard_notes(&self, conn: &mut Conn, notes: &str) -> Result<(), StoreError> {
        let mut cursor = "0".to_string();
        loop {
            let cmd = redis::cmd("EVAL")
                .arg(EMPTY_NOTES)
                .arg(1)
                .arg(notes)
                .arg(&cursor)
                .arg(REBUILD_CHUNK_URLS)
                .to_owned();
            let next = self.run(conn, |conn, connector| conn.command(connector, &cmd))?;
            cursor = text(next).map_err(errors::store_error)?;
            if cursor == "0" {
                return Ok(());
            }
        }
    }
}
