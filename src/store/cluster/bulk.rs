//! Moving a cluster's counts in and out (`hitme export`, `hitme import`, `DELETE /hit`):
//! every master `SCAN`ned for the counting hashes, each count written in its URL's slot, a
//! URL's keys found on the one node its hash tag puts them on.

use std::collections::HashSet;

use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{Cmd, RedisResult};

use super::keys::{index_shard, slot_of_tag, url_tag, ClusterKeys};
use super::sources::source_tag;
use super::{count, errors, ClusterStore};
use crate::store::expiry::expire_at;
use crate::store::sources::{self, SOURCE_PERIODS};
use crate::store::{
    export_hash, parse_bucket, scan_reply, text, Deleted, Metric, Row, RowSink, StoreError,
    SCAN_CHUNK,
};
use crate::time::Period;

impl ClusterStore {
    /// The keys of `metric`'s hashes, with or without `--visits` in force (an import may bring
    /// visits to a HitMe that does not count them).
    fn bucket_keys(&self, metric: Metric) -> ClusterKeys {
        match metric {
            Metric::Hits => self.keys.clone(),
            Metric::Visits => ClusterKeys {
                prefix: format!("{}:visits", self.keys.prefix),
            },
        }
    }

    /// What a counting hash's key counts: its metric, period and start (`None` for any other
    /// key under the prefix).
    fn parse_key(&self, key: &str) -> Option<(Metric, Period, i64)> {
        let rest = key.strip_prefix(&self.keys.prefix)?.strip_prefix(':')?;
        let (metric, rest) = match rest.strip_prefix("visits:") {
            Some(rest) => (Metric::Visits, rest),
            None => (Metric::Hits, rest),
        };
        let (_, rest) = rest.strip_prefix('{')?.split_once("}:")?;
        let (period, start) = parse_bucket(rest)?;
        Some((metric, period, start))
    }

    /// `SCAN ... MATCH pattern TYPE hash` on one node, to its end: each key once.
    fn scan_node(
        &self,
        node: &SingleNodeRoutingInfo,
        pattern: &str,
    ) -> Result<Vec<String>, StoreError> {
        let mut keys = HashSet::new();
        let mut cursor = 0u64;
        loop {
            let scan = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(SCAN_CHUNK)
                .arg("TYPE")
                .arg("hash")
                .to_owned();
            let (next, found) = self.with_connection(|conn, _| {
                let reply = conn
                    .cluster
                    .route_command(&scan, RoutingInfo::SingleNode(node.clone()))?;
                let (next, found) = scan_reply(reply)?;
                let found = found
                    .into_iter()
                    .map(text)
                    .collect::<RedisResult<Vec<_>>>()?;
                Ok((next, found))
            })?;
            keys.extend(found);
            if next == 0 {
                return Ok(keys.into_iter().collect());
            }
            cursor = next;
        }
    }

    /// The masters' addresses, from CLUSTER NODES.
    fn masters(&self) -> Result<Vec<(String, u16)>, StoreError> {
        let nodes: String = self.with_connection(|conn, _| {
            let cmd = redis::cmd("CLUSTER").arg("NODES").to_owned();
            let reply = conn
                .cluster
                .route_command(&cmd, RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random))?;
            Ok(redis::from_redis_value(reply)?)
        })?;
        Ok(nodes
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let flags = fields.get(2)?;
                if !flags.split(',').any(|f| f == "master") || flags.contains("fail") {
                    return None;
                }
                let addr = fields.get(1)?.split(['@', ',']).next()?;
                let (host, port) = addr.rsplit_once(':')?;
                Some((host.to_string(), port.parse().ok()?))
            })
            .collect())
    }

    /// Every master's counting hashes, `SCAN`ned node by node: `each` is given each one's
    /// key, metric, period and start.
    fn each_counting_hash(
        &self,
        mut each: impl FnMut(String, Metric, Period, i64) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let pattern = format!("{}:*", self.keys.prefix);
        for (host, port) in self.masters()? {
            let node = SingleNodeRoutingInfo::ByAddress { host, port };
            for key in self.scan_node(&node, &pattern)? {
                if let Some((metric, period, start)) = self.parse_key(&key) {
                    each(key, metric, period, start)?;
                }
            }
        }
        Ok(())
    }

    /// Every bucket of hits the cluster holds.
    pub(super) fn hit_buckets(&self) -> Result<Vec<(Period, i64)>, StoreError> {
        let mut buckets = std::collections::BTreeSet::new();
        self.each_counting_hash(|_, metric, period, start| {
            if metric == Metric::Hits {
                buckets.insert((period, start));
            }
            Ok(())
        })?;
        Ok(buckets.into_iter().collect())
    }

    /// Every master's counting hashes, each read with `HSCAN`.
    pub(super) fn export_counts(
        &self,
        since: Option<i64>,
        sink: &mut RowSink<'_>,
    ) -> Result<(), StoreError> {
        self.each_counting_hash(|key, metric, period, start| {
            if since.is_some_and(|since| period != Period::All && start < since) {
                return Ok(());
            }
            let hscan = |cursor: u64| {
                let hscan = redis::cmd("HSCAN")
                    .arg(&key)
                    .arg(cursor)
                    .arg("COUNT")
                    .arg(SCAN_CHUNK)
                    .to_owned();
                self.with_connection(|conn, connector| conn.command(connector, &hscan))
            };
            export_hash((metric, period, start), hscan, errors::store_error, sink)
        })
    }

    /// Each count by `HSET` (or `HINCRBY`) in its URL's slot, its bucket's `EXPIREAT`, and
    /// each URL in the index, batched per node.
    pub(super) fn import_counts(&self, rows: &[Row], add: bool) -> Result<(), StoreError> {
        let mut commands: Vec<(u16, Cmd)> = Vec::with_capacity(rows.len() * 2);
        let mut buckets = HashSet::new();
        let now = crate::time::clock::now_secs();
        for row in rows {
            let tag = url_tag(&row.url);
            let slot = slot_of_tag(&tag);
            let key = self
                .bucket_keys(row.metric)
                .key(&tag, row.period, row.start);
            let command = if add { "HINCRBY" } else { "HSET" };
            let write = redis::cmd(command)
                .arg(&key)
                .arg(&row.url)
                .arg(row.count)
                .to_owned();
            commands.push((slot, write));
            if let (true, Some(keep)) = (buckets.insert(key.clone()), self.retention[row.period]) {
                let at = expire_at(&self.calendar, row.period, row.start, keep).max(now);
                commands.push((slot, redis::cmd("EXPIREAT").arg(&key).arg(at).to_owned()));
            }
            if (row.metric, row.period) == (Metric::Hits, Period::All) {
                let shard = index_shard(&row.url);
                let index_slot = slot_of_tag(&ClusterKeys::index_tag(shard));
                let index = redis::cmd("SADD")
                    .arg(self.keys.index(shard))
                    .arg(&row.url)
                    .to_owned();
                commands.push((index_slot, index));
            }
        }
        let replies =
            self.with_connection(|conn, connector| conn.read(connector, &commands, false))?;
        for reply in replies {
            reply.extract_error().map_err(errors::store_error)?;
        }
        if self.kept.is_some() {
            // Imported counts may be lower than kept ones, or new: the rankings of the
            // buckets they went into are rebuilt when next read.
            let mut imported: Vec<(u64, Period, i64)> = rows
                .iter()
                .filter(|row| row.metric == Metric::Hits)
                .map(|row| (index_shard(&row.url), row.period, row.start))
                .collect();
            imported.sort_unstable();
            imported.dedup();
            self.mark_imported(&imported)?;
        }
        Ok(())
    }

    /// The URL's keys share its hash tag, so they are on one node: `SCAN` it for them.
    /// Removes the URL's own sources in one bucket (written by `--sources`, now or in an
    /// earlier run); its site's figures, which name no URL, keep what it added.
    fn delete_url_sources(&self, url: &str, period: Period, start: i64) -> Result<(), StoreError> {
        let keys = ClusterKeys {
            prefix: format!("{}:sources", self.keys.prefix),
        };
        let tag = source_tag(index_shard(url));
        let key = sources::url_key(&keys.key(&tag, period, start), url);
        let del = redis::cmd("EVAL")
            .arg(sources::CLEAR_SCRIPT)
            .arg(1)
            .arg(key)
            .to_owned();
        self.with_connection(|conn, connector| conn.command(connector, &del).map(drop))
    }

    pub(super) fn delete_counts(&self, url: &str) -> Result<Deleted, StoreError> {
        let tag = url_tag(url);
        let node =
            SingleNodeRoutingInfo::SpecificNode(Route::new(slot_of_tag(&tag), SlotAddr::Master));
        let mut deleted = Deleted::default();
        for pattern in [
            format!("{}:{{{tag}}}:*", self.keys.prefix),
            format!("{}:visits:{{{tag}}}:*", self.keys.prefix),
        ] {
            for key in self.scan_node(&node, &pattern)? {
                let Some((metric, period, start)) = self.parse_key(&key) else {
                    continue;
                };
                if metric == Metric::Hits && SOURCE_PERIODS.contains(&period) {
                    self.delete_url_sources(url, period, start)?;
                }
                let get = redis::cmd("HGET").arg(&key).arg(url).to_owned();
                let del = redis::cmd("HDEL").arg(&key).arg(url).to_owned();
                let (had, removed) = self.with_connection(|conn, connector| {
                    let had = conn.command(connector, &get)?;
                    let removed: i64 = redis::from_redis_value(conn.command(connector, &del)?)?;
                    Ok((had, removed))
                })?;
                if removed == 1 {
                    deleted.buckets += 1;
                    let had = count(had)?.unwrap_or(0);
                    if let (Some(kept), Metric::Hits) = (&self.kept, metric) {
                        self.unrank(kept, url, (period, start), had)?;
                    }
                    match (metric, period) {
                        (Metric::Hits, Period::All) => deleted.hits = had,
                        (Metric::Visits, Period::All) => deleted.visits = had,
                        _ => {}
                    }
                }
            }
        }
        let unindex = redis::cmd("SREM")
            .arg(self.keys.index(index_shard(url)))
            .arg(url)
            .to_owned();
        self.with_connection(|conn, connector| conn.command(connector, &unindex).map(drop))?;
        Ok(deleted)
    }
}
