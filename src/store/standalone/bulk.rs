//! Moving a standalone Redis's counts in and out (`hitme export`, `hitme import`,
//! `DELETE /hit`): the counting hashes found by a chunked `SCAN` of the keys under the prefix.

use std::collections::HashSet;

use redis::Value;

use super::StandaloneStore;
use crate::store::expiry::expire_at;
use crate::store::kept::{KeptKeys, DELETE_SCRIPT, MARK_STALE};
use crate::store::keys::KeyLayout;
use crate::store::sources::{self, SOURCE_PERIODS};
use crate::store::{
    export_hash, parse_bucket, Deleted, Metric, Row, RowSink, StoreError, SCAN_CHUNK,
};
use crate::time::clock;
use crate::time::Period;

impl StandaloneStore {
    /// The counting hashes under the prefix (hits' and visits'), a `SCAN` chunk at a time,
    /// each once, with what they count; other keys (settings, salts, visitors) are passed by.
    pub(super) fn each_bucket(
        &self,
        mut visit: impl FnMut(String, Metric, Period, i64) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let prefix = format!("{}:", self.layout.prefix);
        let pattern = format!("{prefix}*");
        let mut seen = HashSet::new();
        let mut cursor = 0u64;
        loop {
            let (next, keys): (u64, Vec<String>) = self.with_connection(|conn| {
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(SCAN_CHUNK)
                    .arg("TYPE")
                    .arg("hash")
                    .query(&mut conn.redis)
            })?;
            for key in keys {
                let rest = &key[prefix.len()..];
                let (metric, rest) = match rest.strip_prefix("visits:") {
                    Some(rest) => (Metric::Visits, rest),
                    None => (Metric::Hits, rest),
                };
                let Some((period, start)) = parse_bucket(rest) else {
                    continue;
                };
                if seen.insert(key.clone()) {
                    visit(key, metric, period, start)?;
                }
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }

    /// The key of `metric`'s bucket, with or without `--visits` in force (an import may bring
    /// visits to a HitMe that does not count them).
    fn bucket_key(&self, metric: Metric, period: Period, start: i64) -> String {
        match metric {
            Metric::Hits => self.layout.key(period, start),
            Metric::Visits => KeyLayout {
                prefix: format!("{}:visits", self.layout.prefix),
            }
            .key(period, start),
        }
    }

    pub(super) fn export_counts(
        &self,
        since: Option<i64>,
        sink: &mut RowSink<'_>,
    ) -> Result<(), StoreError> {
        self.each_bucket(|key, metric, period, start| {
            if since.is_some_and(|since| period != Period::All && start < since) {
                return Ok(());
            }
            let hscan = |cursor: u64| {
                self.with_connection(|conn| {
                    redis::cmd("HSCAN")
                        .arg(&key)
                        .arg(cursor)
                        .arg("COUNT")
                        .arg(SCAN_CHUNK)
                        .query::<Value>(&mut conn.redis)
                })
            };
            export_hash((metric, period, start), hscan, StoreError::standalone, sink)
        })
    }

    pub(super) fn import_counts(&self, rows: &[Row], add: bool) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        let mut buckets = HashSet::new();
        // Rankings are kept of hits only; visits' keys start `<prefix>:visits:`.
        let hits_prefix = format!("{}:", self.layout.prefix);
        let visits_prefix = format!("{}:visits:", self.layout.prefix);
        let hits_prefix = (hits_prefix, visits_prefix);
        for row in rows {
            let key = self.bucket_key(row.metric, row.period, row.start);
            let command = if add { "HINCRBY" } else { "HSET" };
            pipe.cmd(command)
                .arg(&key)
                .arg(&row.url)
                .arg(row.count)
                .ignore();
            buckets.insert((key, row.period, row.start));
        }
        let now = clock::now_secs();
        for (key, period, start) in buckets {
            let of_hits = key.starts_with(&hits_prefix.0) && !key.starts_with(&hits_prefix.1);
            if let Some(kept) = self.kept.as_ref().filter(|_| of_hits) {
                // Imported counts may be lower than kept ones, or new: the ranking is rebuilt
                // when next read. A bucket without a tally has no ranking to mark.
                pipe.cmd("EVAL")
                    .arg(MARK_STALE)
                    .arg(1)
                    .arg(kept.keys.tally(&KeptKeys::bucket(period, start)))
                    .ignore();
            }
            if let Some(keep) = self.retention[period] {
                // A bucket past its retention goes at once, as a hit's would.
                let at = expire_at(&self.calendar, period, start, keep);
                pipe.cmd("EXPIREAT").arg(key).arg(at.max(now)).ignore();
            }
        }
        self.attempt(rows.len() as u64, true, |conn| {
            pipe.query::<()>(&mut conn.redis)
        })
    }

    pub(super) fn delete_counts(&self, url: &str) -> Result<Deleted, StoreError> {
        let mut deleted = Deleted::default();
        self.each_bucket(|key, metric, period, start| {
            if metric == Metric::Hits && SOURCE_PERIODS.contains(&period) {
                // The URL's own sources (of `--sources`, now or in an earlier run); its site's
                // figures, which name no URL, keep what it added.
                let sources = KeyLayout {
                    prefix: format!("{}:sources", self.layout.prefix),
                };
                let key = sources::url_key(&sources.key(period, start), url);
                self.attempt(1, true, |conn| {
                    redis::cmd("EVAL")
                        .arg(sources::CLEAR_SCRIPT)
                        .arg(1)
                        .arg(key)
                        .query::<i64>(&mut conn.redis)
                })?;
            }
            let (count, removed): (Option<i64>, i64) = match (&self.kept, metric) {
                (Some(kept), Metric::Hits) => {
                    let bucket = KeptKeys::bucket(period, start);
                    let count: i64 = self.attempt(1, true, |conn| {
                        redis::cmd("EVAL")
                            .arg(DELETE_SCRIPT)
                            .arg(3)
                            .arg(&key)
                            .arg(kept.keys.rank(&bucket))
                            .arg(kept.keys.tally(&bucket))
                            .arg(url)
                            .arg(kept.config.size)
                            .query(&mut conn.redis)
                    })?;
                    (Some(count), i64::from(count > 0))
                }
                _ => self.attempt(1, true, |conn| {
                    redis::pipe()
                        .atomic()
                        .cmd("HGET")
                        .arg(&key)
                        .arg(url)
                        .cmd("HDEL")
                        .arg(&key)
                        .arg(url)
                        .query(&mut conn.redis)
                })?,
            };
            if removed == 1 {
                deleted.buckets += 1;
                match (metric, period) {
                    (Metric::Hits, Period::All) => deleted.hits = count.unwrap_or(0),
                    (Metric::Visits, Period::All) => deleted.visits = count.unwrap_or(0),
                    _ => {}
                }
            }
            Ok(())
        })?;
        Ok(deleted)
    }
}
