//! The standalone backend's side of rankings kept at write time (`super::super::kept`):
//! writing them in the hit's transaction, reading a page of one, and rebuilding one from a
//! chunked scan while hits go on.

use redis::Value;

use super::{KeptRankings, StandaloneStore};
use crate::store::kept::{
    ranked, start_reply, KeptKeys, KeptPage, Tally, EMPTY_NOTES, NOTES_KEEP_SECS, RANK_SCRIPT,
    RANK_SCRIPT_URLS, REBUILD_CHUNK, REBUILD_CHUNK_URLS, REBUILD_END, REBUILD_STALE_MS,
    REBUILD_START,
};
use crate::store::{equal_hits, resp, text, BucketedHit, StoreError};
use crate::time::clock::{self, now_ms};
use crate::time::{PerPeriod, Period};

/// A bucket: its period and start.
type Bucket = (Period, i64);

/// A URL of a batch, and how many hits the batch holds on it in one bucket.
type UrlHits<'a> = (&'a str, usize);

impl StandaloneStore {
    /// Writes one [`RANK_SCRIPT`] that keeps the rankings and tallies of the batch's buckets,
    /// to follow the batch's `HINCRBY`s in its transaction: each bucket's key, with the URLs
    /// the batch counted there and how many hits each.
    pub(super) fn pack_kept_ranks(
        &self,
        out: &mut Vec<u8>,
        kept: &KeptRankings,
        digits: &mut PerPeriod<itoa::Buffer>,
        hits: &[BucketedHit],
    ) {
        // Per bucket, its URLs and what the batch added to each, in batch order. Batches are
        // small (a worker's queue, or a group commit's), so a scan beats a map.
        let mut buckets: Vec<(Bucket, Vec<UrlHits>)> = Vec::new();
        for (hit, times) in equal_hits(hits) {
            for (period, start) in hit.starts.iter() {
                let bucket = (period, *start);
                let at = match buckets.iter().position(|(b, _)| *b == bucket) {
                    Some(at) => at,
                    None => {
                        buckets.push((bucket, Vec::new()));
                        buckets.len() - 1
                    }
                };
                let urls = &mut buckets[at].1;
                match urls.iter_mut().find(|(url, _)| *url == hit.url) {
                    Some((_, n)) => *n += times,
                    None => urls.push((&hit.url, times)),
                }
            }
        }
        let keys: Vec<(Bucket, &[UrlHits])> = buckets
            .iter()
            .flat_map(|(bucket, urls)| urls.chunks(RANK_SCRIPT_URLS).map(|urls| (*bucket, urls)))
            .collect();
        // A key whose URLs and hits are the previous key's says so with `=`.
        let same = |i: usize| i > 0 && keys[i - 1].1 == keys[i].1;
        let args: usize = (0..keys.len())
            .map(|i| if same(i) { 1 } else { 1 + 2 * keys[i].1.len() })
            .sum();
        resp::command(out, 3 + keys.len() + 2 + args);
        resp::arg(out, &[b"EVAL"]);
        resp::arg(out, &[RANK_SCRIPT.as_bytes()]);
        resp::arg(out, &[itoa::Buffer::new().format(keys.len()).as_bytes()]);
        for ((period, start), _) in &keys {
            resp::arg(out, &self.key_parts(digits, *period, *start));
        }
        resp::arg(
            out,
            &[itoa::Buffer::new().format(kept.config.size).as_bytes()],
        );
        resp::arg(out, &[self.layout.prefix.as_bytes()]);
        for (i, (_, urls)) in keys.iter().enumerate() {
            if same(i) {
                resp::arg(out, &[b"="]);
                continue;
            }
            resp::arg(out, &[itoa::Buffer::new().format(urls.len()).as_bytes()]);
            for (url, times) in *urls {
                resp::arg(out, &[url.as_bytes()]);
                resp::arg(out, &[itoa::Buffer::new().format(*times).as_bytes()]);
            }
        }
    }

    /// Writes the `EXPIREAT` of the rankings and tallies of the batch's buckets, once per
    /// bucket and connection as for the buckets' own (`kept_expiry_set`); returns how many.
    pub(super) fn pack_kept_expiry(
        &self,
        out: &mut Vec<u8>,
        kept: &KeptRankings,
        kept_expiry_set: &mut PerPeriod<i64>,
        hits: &[BucketedHit],
    ) -> usize {
        let mut written = 0;
        let now = clock::now_secs();
        for hit in hits {
            for (period, start) in hit.starts.iter() {
                let start = *start;
                if kept_expiry_set[period] == start {
                    continue;
                }
                let Some(at) =
                    kept.config
                        .expire_at(&self.calendar, &self.retention, period, start)
                else {
                    continue;
                };
                let mut digits = itoa::Buffer::new();
                let at_digits = digits.format(at).as_bytes();
                let bucket = KeptKeys::bucket(period, start);
                for key in [kept.keys.rank(&bucket), kept.keys.tally(&bucket)] {
                    resp::simple(out, &[b"EXPIREAT", key.as_bytes(), at_digits]);
                    written += 1;
                }
                // Past its time the ranking is deleted at once; a later hit deletes it again.
                if at > now {
                    kept_expiry_set[period] = start;
                }
            }
        }
        written
    }

    /// One pipeline: the tally, the bucket's and the set's sizes, and the page.
    pub(super) fn read_kept_page(
        &self,
        kept: &KeptRankings,
        period: Period,
        start: i64,
        offset: usize,
        limit: usize,
    ) -> Result<Option<KeptPage>, StoreError> {
        let bucket = KeptKeys::bucket(period, start);
        let rank = kept.keys.rank(&bucket);
        let mut pipe = redis::pipe();
        pipe.cmd("HMGET")
            .arg(kept.keys.tally(&bucket))
            .arg(&["total", "urls", "stale", "rebuilding"])
            .cmd("HLEN")
            .arg(self.layout.key(period, start))
            .cmd("ZCARD")
            .arg(&rank);
        // ZRANGE with a stop before its start is empty (a stop of -1 would mean the end).
        let (first, last) = match limit {
            0 => (1, 0),
            _ => (offset as i64, (offset + limit - 1) as i64),
        };
        pipe.cmd("ZRANGE")
            .arg(&rank)
            .arg(first)
            .arg(last)
            .arg("WITHSCORES");
        type Reply = (Vec<Option<String>>, usize, usize, Value);
        let (tally, hash_len, set_len, page): Reply =
            self.with_connection(|conn| pipe.query(&mut conn.redis))?;
        if hash_len == 0 {
            return Ok(Some(KeptPage::default()));
        }
        let number = |i: usize| tally.get(i).cloned().flatten().and_then(|v| v.parse().ok());
        let tally = Tally {
            total: number(0),
            urls: number(1),
            flagged: tally.iter().skip(2).any(Option::is_some),
        };
        if !tally.trusted(hash_len, set_len, kept.config.size) {
            return Ok(None);
        }
        Ok(Some(KeptPage {
            total: tally.total.unwrap_or(0),
            urls: hash_len,
            top: ranked(page).map_err(StoreError::standalone)?,
        }))
    }

    /// Rebuilds a bucket's ranking: [`REBUILD_START`], a [`REBUILD_CHUNK`] per thousand URLs
    /// (each a few milliseconds of Redis, so hits go on between them), [`REBUILD_END`].
    pub(super) fn rebuild_kept(
        &self,
        kept: &KeptRankings,
        period: Period,
        start: i64,
    ) -> Result<bool, StoreError> {
        let bucket = KeptKeys::bucket(period, start);
        let hash = self.layout.key(period, start);
        let (rank, tally, seen) = (
            kept.keys.rank(&bucket),
            kept.keys.tally(&bucket),
            kept.keys.seen(&bucket),
        );
        let rebuilding = kept.keys.rebuilding();
        let token = crate::store::random_hex()?;
        let expire_at = kept
            .config
            .expire_at(&self.calendar, &self.retention, period, start)
            .unwrap_or(0);
        let notes_at = match expire_at {
            0 => clock::now_secs() + NOTES_KEEP_SECS,
            at => at,
        };
        let started: Value = self.attempt(1, true, |conn| {
            redis::cmd("EVAL")
                .arg(REBUILD_START)
                .arg(4)
                .arg(&[&hash, &rank, &tally, &rebuilding])
                .arg(&bucket)
                .arg(&token)
                .arg(now_ms())
                .arg(REBUILD_STALE_MS)
                .arg(&seen)
                .arg(notes_at)
                .arg(expire_at)
                .query(&mut conn.redis)
        })?;
        let (status, taken_over) = start_reply(started).map_err(StoreError::standalone)?;
        match status {
            0 => return Ok(false),
            2 => return Ok(true),
            _ => {}
        }
        if let Some(old) = taken_over {
            log::warn!("taking over a rebuild of the kept ranking of {hash} that stopped");
            self.empty_notes(&format!("{seen}{old}"))?;
        }
        log::debug!("rebuilding the kept ranking of {hash}");
        let notes = format!("{seen}{token}");
        let mut cursor = "0".to_string();
        loop {
            let next: Value = self.attempt(1, true, |conn| {
                redis::cmd("EVAL")
                    .arg(REBUILD_CHUNK)
                    .arg(4)
                    .arg(&[&hash, &rank, &tally, &notes])
                    .arg(&cursor)
                    .arg(kept.config.size)
                    .arg(&token)
                    .arg(now_ms())
                    .arg(REBUILD_CHUNK_URLS)
                    .arg(expire_at)
                    .query(&mut conn.redis)
            })?;
            match next {
                // Another HitMe took the rebuild over, and empties these notes.
                Value::Int(-1) => return Ok(false),
                next => cursor = text(next).map_err(StoreError::standalone)?,
            }
            if cursor == "0" {
                break;
            }
        }
        let ended: i64 = self.attempt(1, true, |conn| {
            redis::cmd("EVAL")
                .arg(REBUILD_END)
                .arg(2)
                .arg(&[&tally, &rebuilding])
                .arg(&bucket)
                .arg(&token)
                .query(&mut conn.redis)
        })?;
        self.empty_notes(&notes)?;
        Ok(ended == 1)
    }

    /// Empties a rebuild's notes, [`EMPTY_NOTES`] a chunk at a time, in passes until none
    /// is left (bounded: no hit adds to them once their rebuild ended or was taken over).
    fn empty_notes(&self, notes: &str) -> Result<(), StoreError> {
        for _ in 0..4 {
            let mut cursor = "0".to_string();
            loop {
                let next: Value = self.attempt(1, true, |conn| {
                    redis::cmd("EVAL")
                        .arg(EMPTY_NOTES)
                        .arg(1)
                        .arg(notes)
                        .arg(&cursor)
                        .arg(REBUILD_CHUNK_URLS)
                        .query(&mut conn.redis)
                })?;
                cursor = text(next).map_err(StoreError::standalone)?;
                if cursor == "0" {
                    break;
                }
            }
            let left: usize =
                self.with_connection(|conn| redis::cmd("HLEN").arg(notes).query(&mut conn.redis))?;
            if left == 0 {
                break;
            }
        }
        Ok(())
    }
}
