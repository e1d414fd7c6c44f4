//! `--sources` in cluster mode: a hit's sources counted in its URL's sources shard, and a
//! bucket's read back from the 16 shards ([`crate::store::sources`] has the layout).

use redis::{Cmd, RedisError};

use super::conn::Conn;
use super::keys::{index_shard, slot_of_tag, url_tag, ClusterKeys, INDEX_SHARDS};
use super::{count, errors, hget, ClusterStore};
use crate::store::sources::{self, Source, SourceCounts, SourceScope, SOURCE_SCRIPT};
use crate::store::{BucketedHit, StoreError};
use crate::time::{clock, Period};

/// The hash tag of a sources shard: `r` and the URL index shard of the URLs it counts.
pub(super) fn source_tag(shard: u64) -> String {
    format!("r{shard}")
}

impl ClusterStore {
    /// Counts the hit's source: [`SOURCE_SCRIPT`] in the URL's sources shard, a round trip
    /// after the hit's own (another slot). As for a site's visitors, the hit is counted either
    /// way: a failure here costs the source figures one hit, logged, not a 503.
    pub(super) fn count_source(
        &self,
        conn: &mut Conn,
        (keys, max): &(ClusterKeys, String),
        hit: &BucketedHit,
        times: usize,
        source: &Source,
    ) {
        let tag = source_tag(index_shard(&hit.url));
        let now = clock::now_ms() / 1000;
        let expiries = sources::script_expiries(self.expiries(&hit.starts), now);
        let mut writes = sources::SourceWrites::default();
        writes.add(
            &keys.keys(&tag, &hit.starts),
            &hit.url,
            source,
            times,
            expiries,
        );
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(SOURCE_SCRIPT).arg(writes.key_count());
        for key in writes.keys() {
            cmd.arg(key);
        }
        for arg in writes.args(max) {
            cmd.arg(arg.as_ref());
        }
        let counted = self.run(conn, |conn, connector| {
            conn.command(connector, &cmd).map(drop)
        });
        if let Err(e) = counted {
            if self.source_failures.allows() {
                log::warn!(
                    "counted a hit for {} but not its source ({}); further ones are logged at most once a second",
                    hit.url,
                    e.message()
                );
            }
        }
    }

    /// Every site's or one site's sources: one `HGETALL` per sources shard, batched per node,
    /// added up. A URL's: one `HGETALL` in its shard and one `HGET` of its hits. Each hash
    /// holds at most `--max-sources` names and two more, whatever the number of URLs.
    pub(super) fn read_sources(
        &self,
        period: Period,
        start: i64,
        scope: SourceScope<'_>,
    ) -> Result<SourceCounts, StoreError> {
        let Some((keys, _)) = &self.sources else {
            return Ok(SourceCounts::default());
        };
        let hgetall = |shard: u64, url: Option<&str>| {
            let tag = source_tag(shard);
            let bucket = keys.key(&tag, period, start);
            let key = match (scope, url) {
                (_, Some(url)) => sources::url_key(&bucket, url),
                (SourceScope::Site(host), None) => sources::site_key(&bucket, host),
                _ => bucket,
            };
            (slot_of_tag(&tag), redis::cmd("HGETALL").arg(key).to_owned())
        };
        let mut reads: Vec<(u16, Cmd)> = match scope {
            SourceScope::Url(url) => vec![hgetall(index_shard(url), Some(url))],
            _ => (0..INDEX_SHARDS)
                .map(|shard| hgetall(shard, None))
                .collect(),
        };
        if let SourceScope::Url(url) = scope {
            let tag = url_tag(url);
            reads.push((
                slot_of_tag(&tag),
                hget(&self.keys.key(&tag, period, start), url),
            ));
        }
        let mut values =
            self.with_connection(|conn, connector| conn.read(connector, &reads, false))?;
        let hits = match scope {
            SourceScope::Url(_) => values.pop().map(count).transpose()?.flatten(),
            _ => None,
        };
        let mut counts = SourceCounts::default();
        for value in values {
            let fields: std::collections::HashMap<String, i64> = redis::from_redis_value(value)
                .map_err(|e| errors::store_error(RedisError::from(e)))?;
            counts.add(fields);
        }
        Ok(match scope {
            SourceScope::Url(_) => counts.with_url_hits(hits.unwrap_or(0)),
            _ => counts,
        })
    }
}
