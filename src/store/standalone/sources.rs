//! `--sources` in a standalone Redis: a batch's sources written as one script in its
//! transaction, and a bucket's read back ([`crate::store::sources`] has the layout).

use redis::Value;

use super::StandaloneStore;
use crate::store::expiry::expire_at;
use crate::store::keys::KeyLayout;
use crate::store::resp;
use crate::store::sources::{self, SourceCounts, SourceScope, SOURCE_SCRIPT};
use crate::store::{equal_hits, BucketedHit, StoreError};
use crate::time::Period;

impl StandaloneStore {
    /// Writes one [`SOURCE_SCRIPT`] for the hits that name their source, their site's hashes
    /// shared ([`sources::SourceWrites`]); returns how many scripts (0 or 1).
    pub(super) fn pack_sources(
        &self,
        out: &mut Vec<u8>,
        layout: &KeyLayout,
        max: &str,
        hits: &[BucketedHit],
        now: i64,
    ) -> usize {
        let mut writes = sources::SourceWrites::default();
        for (hit, times) in equal_hits(hits) {
            let Some(source) = &hit.source else {
                continue;
            };
            let expiries = Period::BUCKETED.map(|period| match self.retention[period] {
                Some(keep) => expire_at(&self.calendar, period, hit.starts[period], keep),
                None => 0,
            });
            let expiries = sources::script_expiries(expiries, now);
            writes.add(&layout.keys(&hit.starts), &hit.url, source, times, expiries);
        }
        if writes.is_empty() {
            return 0;
        }
        let args = writes.args(max);
        resp::command(out, 3 + writes.key_count() + args.len());
        resp::arg(out, &[b"EVAL"]);
        resp::arg(out, &[SOURCE_SCRIPT.as_bytes()]);
        resp::arg(
            out,
            &[itoa::Buffer::new().format(writes.key_count()).as_bytes()],
        );
        for key in writes.keys() {
            resp::arg(out, &[key.as_bytes()]);
        }
        for arg in &args {
            resp::arg(out, &[arg.as_bytes()]);
        }
        1
    }

    /// One `HGETALL` of the scope's hash (a URL's with an `HGET` of its hits), one round trip.
    /// A sources hash holds at most `--max-sources` names and two more, whatever the number
    /// of URLs, so reading it whole is bounded.
    pub(super) fn read_sources(
        &self,
        period: Period,
        start: i64,
        scope: SourceScope<'_>,
    ) -> Result<SourceCounts, StoreError> {
        let Some((layout, _)) = &self.sources else {
            return Ok(SourceCounts::default());
        };
        let bucket = layout.key(period, start);
        let mut pipe = redis::pipe();
        match scope {
            SourceScope::AllSites => pipe.hgetall(&bucket),
            SourceScope::Site(host) => pipe.hgetall(sources::site_key(&bucket, host)),
            SourceScope::Url(url) => pipe
                .hgetall(sources::url_key(&bucket, url))
                .hget(self.layout.key(period, start), url),
        };
        let mut replies = self
            .with_connection(|conn| conn.pipeline::<Value>(&pipe))?
            .into_iter();
        let fields = replies.next().map(redis::from_redis_value).transpose();
        let hits = replies.next().map(redis::from_redis_value).transpose();
        let to_error = |e: redis::ParsingError| StoreError::standalone(e.into());
        let fields: std::collections::HashMap<String, i64> =
            fields.map_err(to_error)?.unwrap_or_default();
        let hits: Option<i64> = hits.map_err(to_error)?.flatten();
        let mut counts = SourceCounts::default();
        counts.add(fields);
        Ok(match scope {
            SourceScope::Url(_) => counts.with_url_hits(hits.unwrap_or(0)),
            _ => counts,
        })
    }
}
