//! Redis Cluster mode (`--redis-cluster host:port,...`): a key layout where one hit touches one
//! slot, the pool of cluster connections, and the commands behind each endpoint. See
//! `docs/cluster.md` for the operator's view (local cluster, failover, resharding).
//!
//! The standalone layout (`<prefix>:day:<start>` hashes shared by every URL) cannot run on a
//! cluster: a MULTI over keys in different slots fails with CROSSSLOT, and `<prefix>:all`
//! would be one hot key on one node. Here every key of a URL carries the same hash tag, so a
//! hit touches one slot and runs on one node, and URLs spread over all 16384 slots.
//!
//! # Layout
//!
//! `<tag>` is [`url_tag`]: 16 lowercase hex digits of a 64-bit hash of the canonical URL
//! (FNV-1a, then MurmurHash3's `fmix64`). A collision only puts two URLs in the same keys:
//! each key is a hash whose field is the canonical URL, as in the standalone layout, so
//! their counts never mix.
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `<prefix>:{<tag>}:all` | hash | url -> all-time count |
//! | `<prefix>:{<tag>}:<period>:<start ms>` | hash | url -> count in that bucket; `EXPIREAT` bucket end + retention |
//! | `<prefix>:{<tag>}:unindexed` | set | urls counted but not yet confirmed in the URL index |
//! | `<prefix>:urls:{s<N>}` | set | the URL index; shard N (0..15) = the top 4 bits of the hash |
//!
//! One key per (URL, bucket) rather than one field per URL in a shared bucket hash because
//! Redis 7.0 expires whole keys only (no per-field TTLs), and retention must still work. The
//! price is memory: a key per (URL, bucket) weighs more than a field in a shared hash.
//!
//! # Cost per hit
//!
//! One command (`EVALSHA` of [`HIT_SCRIPT`]), one round trip, one node, atomic: six
//! `HINCRBY` (by the number of equal hits a worker took together, usually 1), one
//! `SISMEMBER`, and `EXPIREAT` on a bucket key only when the hit created the URL's count in
//! it, so expiry costs nothing once set and needs no per-connection memory.
//! The first hit of a URL ever costs two more round trips: `SADD` to its index shard, then
//! `SREM` from `unindexed`. With `--visits`, a hit with a visitor costs one more, to count
//! the visitor among its site's visitors in the visitor's shard (`count_site_visitor`). Reads: `GET /hit` is six `HGET`s in one batch, `/series` one
//! `HGET` per bucket in one batch (one slot, one node, one round trip each); `GET /hits`
//! reads the 16 index shards, then six `HGET`s per URL, each step one batch per master.
//!
//! # Surviving a failover
//!
//! Redis replicates asynchronously: a master that counted a hit and died before its replica
//! had it loses the hit in the failover. So the script is followed, in the same request, by
//! `WAIT <n> <--redis-timeout-ms / 4>` (n = `--wait-replicas`, default 1, at most the
//! master's working replicas per CLUSTER NODES), and the hit is answered once a replica has
//! it. The same round trip, but it lasts until the replica's acknowledgement. A replica that
//! does not confirm in time (dead, hung, lagging) costs that hit the wait, not its 200: the
//! master counted it, and a 503 would make the client send it again. HitMe then reads the slot
//! map again; once the cluster marks the replica failed (`--cluster-node-timeout`), hits stop
//! waiting for it. A master with no working replica (just promoted, say) is not waited for.
//!
//! # The URL index and its failure story
//!
//! `GET /hits` must list every URL without `KEYS`/`SCAN`. The index holds one entry per URL
//! for its lifetime, not per bucket: a per-bucket index is written on a URL's first hit in
//! every new minute, which for long-tail URLs is nearly every hit, doubling their round trips.
//! `/hits` must return every URL's all-time count anyway, so it reads them all.
//!
//! The index lives in other slots than the URL's counts, so it cannot be in the hit's atomic
//! script. Instead the script records, atomically with the count, that the URL still needs
//! indexing (`SADD <prefix>:{<tag>}:unindexed url` when the all-time count becomes 1) and
//! returns whether that marker is set; HitMe then adds the URL to its shard and clears the
//! marker, before it answers. If that fails (shard node down, timeout, HitMe killed in
//! between), the hit is still answered 200 (it is counted; a 503 would make clients retry
//! and count it twice), the error is counted and logged, `GET /hit` and `/series` show the
//! URL at once, and the marker stays, so the URL's next hit repairs the index. Both steps are
//! idempotent, so concurrent first hits are harmless. What remains: a URL never hit again
//! after a failed index update stays out of `/hits`; and the index entry itself is not
//! waited for, so a failover right after a URL's first hit can drop it from the index (its
//! marker, replicated with the count, makes the next hit add it again).
//!
//! # Talking to the cluster
//!
//! redis-rs's sync `ClusterConnection` keeps a slot map and a connection per node. It does
//! not pipeline across nodes, its `ClusterPipeline` is not atomic (commands are regrouped
//! per node), and a MULTI pipeline is routed by its first key but reads its replies one by
//! one, waiting out the read timeout for each on a hung node, and a MOVED during queueing
//! only aborts it. A single `EVALSHA` whose keys share one slot is routed by its first key,
//! runs atomically, and has one reply; MOVED, ASK, TRYAGAIN, CLUSTERDOWN and NOSCRIPT all
//! mean it did not run. So a hit is one script call.
//!
//! The client is built with `retries(0)`: redis-rs's own retries resend a command after a
//! read timeout or a dropped connection, when a hit may have run already (counted twice).
//! HitMe retries only what certainly did not run (`Conn::command`): MOVED or READONLY
//! rebuild the slot map and retry once, ASK sends `ASKING` and the command to the importing
//! node, TRYAGAIN (a hit in a slot in mid-migration) is retried until the timeout, NOSCRIPT
//! falls back to `EVAL`. Anything else is a 503 whose message never carries the cluster's
//! error codes. Reads are batched per node; during a migration a batch that meets ASK is
//! re-read command by command, each following its own redirection.
//!
//! Node connections are [`NodeConn`]s: redis-rs connects to a node with a `PING` before any
//! read timeout is set and reads a batch reply by reply after a timeout, so a hung node
//! could hang a worker. `NodeConn` bounds connect, read and write by `--redis-timeout-ms`
//! from the first byte and fails at once after its first I/O error; a cluster connection
//! with a failed node connection is dropped by the pool. A node that cannot be connected to
//! leaves the cluster connection usable for the other nodes, and it reads the slot map anew
//! at its next checkout (at most every 500 ms), which is how a failover is picked up.
//!
//! `--redis-url`, `--redis-ca-file` and `--group-commit` do not apply in cluster mode (a hit
//! is already one command).

mod bulk;
mod conn;
mod errors;
mod kept;
pub(crate) use kept::RANKINGS_SINCE;
pub mod keys;
mod node;
mod rebuild;
mod sources;
mod topology;

use std::sync::{Arc, OnceLock};

use redis::cluster_routing::{MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo};
use redis::{Cmd, ErrorKind, RedisError, RedisResult, ServerErrorKind, Value};

use self::conn::{Conn, Connector, Replication, SharedConnector};
use self::keys::{index_shard, slot_of_key, slot_of_tag, url_tag, ClusterKeys, INDEX_SHARDS};
use super::breaker::Breaker;
use super::expiry::{expire_at, Retention};
use super::kept::{KeptConfig, KeptPage};
use super::log_limit::OncePerSecond;
use super::pool::{self, PoolProbe};
use super::settings;
use super::sources::{SourceCounts, SourceScope};
use super::standalone::VISIT_SCRIPT;
use super::{
    equal_hits, scan_reply, text, BucketedHit, Chunk, Deleted, Hit, HitStore, Metric, Row, RowSink,
    ScanCursor, StoreConfig, StoreError, Trouble, UrlCounts, Visitor, SCAN_CHUNK,
};
use crate::metrics::StoreCounters;
use crate::time::clock;
use crate::time::PerPeriod;
use crate::time::{Calendar, Period};

/// The hit script, returning `$ret` (Lua): the two variants below differ only there.
macro_rules! hit_script {
    ($ret:literal) => {
        concat!(
            r#"local url, n = ARGV[1], tonumber(ARGV[7] or '1')
if KEYS[8] and not redis.call('SET', KEYS[8], '1', 'EX', ARGV[8], 'GET') then
  redis.call('HINCRBY', KEYS[9], url, 1)
  for i = 10, 14 do
    if redis.call('HINCRBY', KEYS[i], url, 1) == 1 and ARGV[i - 8] ~= '0' then
      redis.call('EXPIREAT', KEYS[i], ARGV[i - 8])
    end
  end
end
local c = {redis.call('HINCRBY', KEYS[1], url, n)}
for i = 2, 6 do
  c[i] = redis.call('HINCRBY', KEYS[i], url, n)
  if c[i] == n and ARGV[i] ~= '0' then
    redis.call('EXPIREAT', KEYS[i], ARGV[i])
  end
end
local index
if c[1] == n then
  redis.call('SADD', KEYS[7], url)
  index = 1
else
  index = redis.call('SISMEMBER', KEYS[7], url)
end
"#,
            $ret
        )
    };
}

/// Records `ARGV[7]` equal hits (1 if absent) for the URL `ARGV[1]`, atomically, in one slot.
///
/// KEYS: the all-time hash, the month, week, day, hour and minute hashes, the `unindexed` set.
/// ARGV: the URL, then per period (month to minute) the `EXPIREAT` time in seconds, `0` to
/// keep the bucket forever, then the number of hits. A bucket key gets its expiry when these
/// hits created the URL's count in it (the count is then their number); a time in
/// the past deletes it at once, so a hit older than the retention counts only where kept.
/// Returns 1 when the URL still has to be added to the URL index, else 0.
///
/// Every key it touches is in KEYS, as Redis Cluster requires. No `#!lua` shebang (a Redis 7
/// feature): nothing in it needs one.
pub(crate) const HIT_SCRIPT: &str = hit_script!("return index\n");

/// [`HIT_SCRIPT`] for `--rankings`: returns `{index, count all-time, ..., count minute}`,
/// the URL's new counts, for its shard's rankings ([`kept`]).
pub(crate) const RANKED_HIT_SCRIPT: &str =
    hit_script!("return {index, c[1], c[2], c[3], c[4], c[5], c[6]}\n");

/// Hits kept in a Redis Cluster; see the module documentation for the layout.
pub(crate) struct ClusterStore {
    pool: r2d2::Pool<SharedConnector>,
    /// Rebuilds a pooled connection in place when the cluster's topology changed.
    connector: Arc<Connector>,
    keys: ClusterKeys,
    calendar: Calendar,
    retention: Retention,
    counters: StoreCounters,
    hit_sha: String,
    /// Replicas that must confirm a hit, and for how long to wait for them.
    wait_replicas: usize,
    wait_for: std::time::Duration,
    unconfirmed_logged: OncePerSecond,
    /// Whether a cluster connection can be had at all; each node has its own breaker too
    /// ([`node`]).
    breaker: Breaker,
    /// With `--visits`: the keys of visits (`<prefix>:visits:{<tag>}:...`, the URL's hash
    /// tag, so a hit and its visit are one script in one slot), and the window in seconds.
    visits: Option<(ClusterKeys, String)>,
    /// With `--visits`: the keys of a site's visitors, `<prefix>:sitevisitors:{v<N>}:...`
    /// (field: the host), sharded by the visitor's hash over [`SITE_VISITOR_SHARDS`] slots
    /// so that a popular site is no hot slot; and the sitevisitor keys' failures, logged once
    /// a second.
    site_visitors: Option<ClusterKeys>,
    site_visitor_failures: OncePerSecond,
    /// With `--sources`: the keys of sources, `<prefix>:sources:{r<N>}:...` with N the URL's
    /// index shard (so a URL's and its site's sources are one script in one slot, and a
    /// popular site is spread over 16 slots), and `--max-sources`; failures logged once a
    /// second.
    sources: Option<(ClusterKeys, String)>,
    source_failures: OncePerSecond,
    /// With `--rankings`: what is kept ([`kept`]), the hit script that returns the URL's
    /// counts, the shard script's hash, since when hits are ranked (asked once), and the
    /// shard writes' failures, logged once a second.
    kept: Option<KeptConfig>,
    hit_body: &'static str,
    shard_rank_sha: String,
    since: OnceLock<i64>,
    rank_failures: OncePerSecond,
    /// Tallies (shard, key) whose hits could not be ranked for sure nor marked stale yet.
    unmarked: std::sync::Mutex<std::collections::BTreeSet<(u64, String)>>,
    /// `--redis-timeout-ms`.
    timeout: std::time::Duration,
}

/// Shards of a site's visitors (the top 4 bits of the visitor's hash): a read of a site's
/// visitors is one `HGET` per shard.
pub(crate) const SITE_VISITOR_SHARDS: u32 = 16;

impl ClusterStore {
    /// Builds the pool without connecting: HitMe starts while the cluster is down and answers
    /// 503 until it is up. `seeds` are seed nodes (`host:port` or `redis://...`); the rest of
    /// the cluster is discovered from them. Returns the store and a probe of its pool.
    pub(crate) fn open(
        config: &StoreConfig,
        seeds: &[String],
        wait_replicas: usize,
        counters: StoreCounters,
    ) -> Result<(ClusterStore, PoolProbe), String> {
        let prefix = &config.prefix;
        if prefix.contains(['{', '}']) {
            return Err(format!(
                "--key-prefix {prefix:?} contains a brace; with --redis-cluster braces choose the hash slot, so use a prefix without {{ or }}"
            ));
        }
        let connector = Arc::new(Connector::new(seeds, config.timeout)?);
        let hit_body = match config.kept {
            Some(_) => RANKED_HIT_SCRIPT,
            None => HIT_SCRIPT,
        };
        let pool = pool::build(
            SharedConnector(connector.clone()),
            config.pool_size,
            config.timeout,
        );
        let probe = pool::probe(&pool);
        node::node_breakers().show_in(counters.breaker_gauge());
        let probe_pool = pool.clone();
        let breaker = Breaker::new(
            "the Redis Cluster".into(),
            "cluster".into(),
            Some(counters.breaker_gauge()),
            Box::new(move || {
                probe_pool
                    .get()
                    .map(drop)
                    .map_err(|e| errors::no_connection(e).message().to_string())
            }),
        );
        let store = ClusterStore {
            pool,
            connector,
            keys: ClusterKeys {
                prefix: prefix.clone(),
            },
            calendar: config.calendar.clone(),
            retention: config.retention,
            counters,
            hit_sha: redis::Script::new(hit_body).get_hash().to_string(),
            wait_replicas,
            wait_for: config.timeout / 4,
            unconfirmed_logged: OncePerSecond::default(),
            breaker,
            visits: config.visit_window.map(|window| {
                let keys = ClusterKeys {
                    prefix: format!("{prefix}:visits"),
                };
                (keys, window.as_secs().max(1).to_string())
            }),
            site_visitors: config.visit_window.map(|_| ClusterKeys {
                prefix: format!("{prefix}:sitevisitors"),
            }),
            site_visitor_failures: OncePerSecond::default(),
            sources: config.max_sources.map(|max| {
                let keys = ClusterKeys {
                    prefix: format!("{prefix}:sources"),
                };
                (keys, max.to_string())
            }),
            source_failures: OncePerSecond::default(),
            kept: config.kept,
            hit_body,
            shard_rank_sha: redis::Script::new(kept::SHARD_RANK_SCRIPT)
                .get_hash()
                .to_string(),
            since: OnceLock::new(),
            rank_failures: OncePerSecond::default(),
            unmarked: Default::default(),
            timeout: config.timeout,
        };
        Ok((store, probe))
    }

    /// A hit its master counted but not enough replicas confirmed in time: it is still a 200
    /// (a 503 would make the client send it again, and count it twice), but a failover before
    /// the replica catches up could lose it. The replica may be dead or hung: the slot map is
    /// read again, and once the cluster marks the replica failed the next hits stop waiting
    /// for it.
    fn unconfirmed(&self, conn: &mut Conn, url: &str, times: usize, replication: Replication) {
        conn.refresh = true;
        self.counters.unconfirmed_hits(times);
        if self.unconfirmed_logged.allows() {
            log::warn!(
                "a hit for {url} was counted, but {} of {} replicas confirmed it within {:?}; a failover now could lose it (further ones are logged at most once a second)",
                replication.confirmed,
                replication.asked,
                self.wait_for
            );
        }
    }

    fn checkout(&self) -> Result<r2d2::PooledConnection<SharedConnector>, StoreError> {
        self.breaker.pass()?;
        match self.pool.get() {
            Ok(conn) => {
                self.breaker.succeeded();
                Ok(conn)
            }
            Err(e) => {
                self.counters.redis_failed(1);
                let err = errors::no_connection(e);
                self.breaker.failed(err.message());
                Err(err)
            }
        }
    }

    /// Runs `command` on `conn`, keeping count of failures.
    fn run<T>(
        &self,
        conn: &mut Conn,
        command: impl FnOnce(&mut Conn, &Connector) -> RedisResult<T>,
    ) -> Result<T, StoreError> {
        conn.run(|conn| command(conn, &self.connector))
            .map_err(|e| {
                self.counters.redis_failed(1);
                errors::store_error(e)
            })
    }

    /// Runs `command` on a pooled connection.
    fn with_connection<T>(
        &self,
        command: impl FnOnce(&mut Conn, &Connector) -> RedisResult<T>,
    ) -> Result<T, StoreError> {
        let mut conn = self.checkout()?;
        self.run(&mut conn, command)
    }

    /// The `EXPIREAT` time (seconds) of each bucket, month to minute, as [`HIT_SCRIPT`] takes
    /// them; 0 = keep.
    fn expiries(&self, starts: &PerPeriod<i64>) -> [i64; 5] {
        Period::BUCKETED.map(|period| match self.retention[period] {
            Some(keep) => expire_at(&self.calendar, period, starts[period], keep),
            None => 0,
        })
    }

    /// The keys of `metric`'s hashes (the URL index is the hits' in either case).
    fn counting(&self, metric: Metric) -> &ClusterKeys {
        match (metric, &self.visits) {
            (Metric::Visits, Some((keys, _))) => keys,
            _ => &self.keys,
        }
    }

    /// Records `times` equal hits: one `EVALSHA` in the URL's slot; on the URL's first hit
    /// (or while a failed index update awaits repair) also its index entry. See the module
    /// documentation.
    fn record_times(&self, hit: &BucketedHit, times: usize) -> Result<(), StoreError> {
        let url = hit.url.as_str();
        let tag = url_tag(url);
        let keys = self.keys.hit_keys(&tag, &hit.starts);
        let expiries = self.expiries(&hit.starts);
        // With a visitor, the script also counts the visit: the visitor's key and the visit
        // hashes follow the hit's keys, and the window its arguments.
        let visit = self
            .visits
            .as_ref()
            .zip(hit.visitor)
            .map(|((keys, window), visitor)| {
                let mut visit_keys = vec![format!(
                    "{}:{{{tag}}}:visitor:{}",
                    self.keys.prefix,
                    visitor.hex()
                )];
                visit_keys.extend(keys.keys(&tag, &hit.starts).into_iter().map(|(_, key)| key));
                (visit_keys, window.as_str())
            });
        let script = |name: &str, body: &str| {
            let mut cmd = redis::cmd(name);
            let visit_keys = visit.as_ref().map_or(0, |(keys, _)| keys.len());
            cmd.arg(body).arg(keys.len() + visit_keys).arg(&keys[..]);
            if let Some((visit_keys, _)) = &visit {
                cmd.arg(&visit_keys[..]);
            }
            cmd.arg(url).arg(&expiries[..]).arg(times);
            if let Some((_, window)) = &visit {
                cmd.arg(*window);
            }
            cmd
        };
        let evalsha = script("EVALSHA", &self.hit_sha);
        let slot = slot_of_tag(&tag);
        let (want, wait_for) = (self.wait_replicas, self.wait_for);
        let mut conn = self.checkout()?;
        let (reply, replication) = self.run(&mut conn, |conn, connector| {
            let mut hit = |cmd: &Cmd| conn.replicated(connector, cmd, slot, want, wait_for);
            let (reply, replication) = match hit(&evalsha) {
                // A node that never ran the script (new, restarted, promoted): EVAL loads it.
                Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                    hit(&script("EVAL", self.hit_body))
                }
                result => result,
            }?;
            // With --rankings: the index flag, then the URL's six counts.
            let reply: Vec<i64> = match reply {
                Value::Array(_) => redis::from_redis_value(reply)?,
                reply => vec![redis::from_redis_value(reply)?],
            };
            Ok((reply, replication))
        })?;
        let (needs_index, counts) = (reply[0], &reply[1..]);
        if replication.confirmed < replication.asked {
            self.unconfirmed(&mut conn, url, times, replication);
        }
        if let (Some(sites), Some(visitor)) = (&self.site_visitors, hit.visitor) {
            self.count_site_visitor(&mut conn, sites, hit, visitor);
        }
        if let (Some(sources), Some(source)) = (&self.sources, &hit.source) {
            self.count_source(&mut conn, sources, hit, times, source);
        }
        if let (Some(kept), 6) = (&self.kept, counts.len()) {
            self.rank_hit(&mut conn, kept, hit, times, counts);
        }
        if needs_index == 1 {
            let index = self.keys.index(index_shard(url));
            let add = redis::cmd("SADD").arg(&index).arg(url).to_owned();
            let done = redis::cmd("SREM").arg(&keys[6]).arg(url).to_owned();
            let indexed = self.run(&mut conn, |conn, connector| {
                conn.command(connector, &add)?;
                conn.command(connector, &done)?;
                Ok(())
            });
            if let Err(e) = indexed {
                // The hit is counted, so it is still a 200; its next hit retries the index.
                log::warn!(
                    "counted a hit for {url} but could not add it to the URL index {index} ({}); GET /hits lists it after its next hit",
                    e.message()
                );
            }
        }
        Ok(())
    }
}

impl ClusterStore {
    /// One chunk of a bucket's counts from one URL index shard: an `SSCAN ... COUNT 1000`
    /// of the shard from `cursor`, then the bucket's `HGET` of each URL it returned, one
    /// batch per master. Returns the shard's next cursor (0: done) and the URLs counted in
    /// the bucket with their counts.
    fn scan_shard(
        &self,
        conn: &mut Conn,
        (period, start): (Period, i64),
        shard: u64,
        cursor: u64,
        metric: Metric,
    ) -> Result<(u64, Vec<(String, i64)>), StoreError> {
        let sscan = redis::cmd("SSCAN")
            .arg(self.keys.index(shard))
            .arg(cursor)
            .arg("COUNT")
            .arg(SCAN_CHUNK)
            .to_owned();
        let slot = slot_of_tag(&ClusterKeys::index_tag(shard));
        let (next, urls) = self.run(conn, |conn, connector| {
            let reply = conn.read(connector, &[(slot, sscan)], true)?.pop();
            let (next, members) = scan_reply(reply.unwrap_or(Value::Nil))?;
            let urls = members
                .into_iter()
                .map(text)
                .collect::<RedisResult<Vec<_>>>()?;
            Ok((next, urls))
        })?;
        let reads: Vec<(u16, Cmd)> = urls
            .iter()
            .map(|url| {
                let tag = url_tag(url);
                (
                    slot_of_tag(&tag),
                    hget(&self.counting(metric).key(&tag, period, start), url),
                )
            })
            .collect();
        let values = match reads.is_empty() {
            true => Vec::new(),
            false => self.run(conn, |conn, connector| conn.read(connector, &reads, false))?,
        };
        let mut counts = Vec::with_capacity(urls.len());
        for (url, value) in urls.into_iter().zip(values) {
            // Indexed, but without hits in this bucket (or past its retention).
            if let Some(n) = count(value)? {
                counts.push((url, n));
            }
        }
        Ok((next, counts))
    }

    /// Counts the hit's visitor among its site's visitors, if it is the visitor's first hit
    /// on the site within the window: [`VISIT_SCRIPT`] in the visitor's shard, a round trip
    /// after the hit's own (another slot, so not in its script). The hit is counted either
    /// way: a failure here costs one visitor of the site's figure, logged, not a 503.
    fn count_site_visitor(
        &self,
        conn: &mut Conn,
        sites: &ClusterKeys,
        hit: &BucketedHit,
        visitor: Visitor,
    ) {
        let tag = site_visitor_tag(visitor);
        let now = clock::now_ms() / 1000;
        let window = self
            .visits
            .as_ref()
            .map_or("1", |(_, window)| window.as_str());
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(VISIT_SCRIPT).arg(7).arg(format!(
            "{}:{{{tag}}}:sitevisitor:{}",
            self.keys.prefix,
            visitor.site_hex()
        ));
        for (_, key) in sites.keys(&tag, &hit.starts) {
            cmd.arg(key);
        }
        cmd.arg(crate::host::host_of(&hit.url)).arg(window);
        for at in self.expiries(&hit.starts) {
            // A bucket past its retention keeps no visitors rather than being deleted.
            cmd.arg(if at != 0 && at <= now { now + 1 } else { at });
        }
        let counted = self.run(conn, |conn, connector| {
            conn.command(connector, &cmd).map(drop)
        });
        if let Err(e) = counted {
            if self.site_visitor_failures.allows() {
                log::warn!(
                    "counted a hit for {} but not its visitor among its site's visitors ({}); further ones are logged at most once a second",
                    hit.url,
                    e.message()
                );
            }
        }
    }
}

/// The hash tag of a site visitor's shard.
fn site_visitor_tag(visitor: Visitor) -> String {
    format!(
        "v{}",
        visitor.site >> (128 - SITE_VISITOR_SHARDS.trailing_zeros())
    )
}

impl HitStore for ClusterStore {
    /// Records one hit: one `EVALSHA` in the URL's slot; on the URL's first hit (or while a
    /// failed index update awaits repair) also its index entry. See the module documentation.
    fn record_hit(&self, hit: Hit) -> Result<(), StoreError> {
        self.record_times(&BucketedHit::new(hit, &self.calendar), 1)
    }

    /// Records hits a worker took together. Equal hits (same URL, same buckets) are one
    /// `EVALSHA` that counts them all, with one `WAIT`: a batch on a popular page costs the
    /// cluster about what one hit does. Different hits go one after the other, each its own
    /// script: a pipeline of scripts for several slots could not tell, after a redirection,
    /// which of them ran.
    fn record_hits(&self, hits: Vec<Hit>) -> Vec<Result<(), StoreError>> {
        let hits: Vec<BucketedHit> = hits
            .into_iter()
            .map(|hit| BucketedHit::new(hit, &self.calendar))
            .collect();
        let recorded: Vec<(&BucketedHit, Result<(), StoreError>)> = equal_hits(&hits)
            .map(|(hit, times)| (hit, self.record_times(hit, times)))
            .collect();
        hits.iter()
            .map(|hit| {
                let (_, outcome) = recorded
                    .iter()
                    .find(|(first, _)| *first == hit)
                    .expect("every hit is in a group");
                outcome.clone()
            })
            .collect()
    }

    /// The counts of one URL in the buckets holding `timestamp_ms`: six `HGET`s in its slot,
    /// one round trip.
    fn url_counts(
        &self,
        url: &str,
        timestamp_ms: i64,
        metric: Metric,
    ) -> Result<UrlCounts, StoreError> {
        let tag = url_tag(url);
        let starts = self.calendar.starts(timestamp_ms);
        let slot = slot_of_tag(&tag);
        let reads: Vec<(u16, Cmd)> = (self.counting(metric).keys(&tag, &starts).into_iter())
            .map(|(_, key)| (slot, hget(&key, url)))
            .collect();
        let values = self.with_connection(|conn, connector| conn.read(connector, &reads, true))?;
        let mut counts = PerPeriod::default();
        for (n, value) in counts.values_mut().zip(values) {
            *n = count(value)?.unwrap_or(0);
        }
        Ok(counts)
    }

    /// A site's visitors: one `HGET` (every site's: one `HVALS`) per visitor shard, batched
    /// per node.
    fn site_visitors(
        &self,
        period: Period,
        start: i64,
        site: Option<&str>,
    ) -> Result<i64, StoreError> {
        let Some(sites) = &self.site_visitors else {
            return Ok(0);
        };
        let reads: Vec<(u16, Cmd)> = (0..u128::from(SITE_VISITOR_SHARDS))
            .map(|shard| {
                let tag = format!("v{shard}");
                let key = sites.key(&tag, period, start);
                let read = match site {
                    Some(site) => hget(&key, site),
                    None => redis::cmd("HVALS").arg(&key).to_owned(),
                };
                (slot_of_tag(&tag), read)
            })
            .collect();
        // The shards live in different slots: the batch is split per node.
        let values = self.with_connection(|conn, connector| conn.read(connector, &reads, false))?;
        let mut visitors = 0;
        for value in values {
            let counts: Vec<i64> = match site {
                Some(_) => count(value)?.into_iter().collect(),
                None => redis::from_redis_value(value)
                    .map_err(|e| errors::store_error(RedisError::from(e)))?,
            };
            visitors += counts.iter().sum::<i64>();
        }
        Ok(visitors)
    }

    fn sources(
        &self,
        period: Period,
        start: i64,
        scope: SourceScope<'_>,
    ) -> Result<SourceCounts, StoreError> {
        self.read_sources(period, start, scope)
    }

    /// The counts of one URL in the `period` buckets starting at `starts`: one `HGET` each,
    /// all in the URL's slot, one round trip.
    fn series(
        &self,
        url: &str,
        period: Period,
        starts: &[i64],
        metric: Metric,
    ) -> Result<Vec<i64>, StoreError> {
        if starts.is_empty() {
            return Ok(Vec::new());
        }
        let tag = url_tag(url);
        let slot = slot_of_tag(&tag);
        let reads: Vec<(u16, Cmd)> = starts
            .iter()
            .map(|start| {
                (
                    slot,
                    hget(&self.counting(metric).key(&tag, period, *start), url),
                )
            })
            .collect();
        let values = self.with_connection(|conn, connector| conn.read(connector, &reads, true))?;
        values
            .into_iter()
            .map(|v| Ok(count(v)?.unwrap_or(0)))
            .collect()
    }

    /// One `SSCAN` of a URL index shard, then one `HGET` of the bucket per URL found, one
    /// batch per node; shard after shard.
    fn scan(
        &self,
        period: Period,
        start: i64,
        cursor: ScanCursor,
        metric: Metric,
    ) -> Result<Chunk, StoreError> {
        let shard = cursor.part;
        if shard >= INDEX_SHARDS {
            return Ok(Chunk::default());
        }
        let mut conn = self.checkout()?;
        let (next, counts) =
            self.scan_shard(&mut conn, (period, start), shard, cursor.cursor, metric)?;
        let next = match (next, shard + 1) {
            (0, next_shard) if next_shard == INDEX_SHARDS => None,
            (0, next_shard) => Some(ScanCursor {
                part: next_shard,
                cursor: 0,
            }),
            (cursor, _) => Some(ScanCursor {
                part: shard,
                cursor,
            }),
        };
        Ok(Chunk { counts, next })
    }

    /// An `HSETNX` per setting and an `HMGET`, in one request to the node of `<prefix>:config`.
    fn claim_settings(&self, settings: &[(&str, &str)]) -> Result<Vec<String>, StoreError> {
        let key = settings::key(&self.keys.prefix);
        let slot = slot_of_key(&key);
        let commands: Vec<(u16, Cmd)> = settings::claim_commands(&key, settings)
            .into_iter()
            .map(|command| (slot, command))
            .collect();
        self.with_connection(|conn, connector| {
            settings::claimed(conn.read(connector, &commands, true)?)
        })
    }

    fn export(&self, since: Option<i64>, sink: &mut RowSink<'_>) -> Result<(), StoreError> {
        self.export_counts(since, sink)
    }

    fn import(&self, rows: &[Row], add: bool) -> Result<(), StoreError> {
        self.import_counts(rows, add)
    }

    fn delete_url(&self, url: &str) -> Result<Deleted, StoreError> {
        self.delete_counts(url)
    }

    /// `SET ... NX EX` then `GET`, on the node of the salt's key.
    fn day_salt(&self, day: i64, proposed: &str, ttl_secs: u64) -> Result<String, StoreError> {
        let key = format!("{}:salt:{day}", self.keys.prefix);
        let set = redis::cmd("SET")
            .arg(&key)
            .arg(proposed)
            .arg("NX")
            .arg("EX")
            .arg(ttl_secs)
            .to_owned();
        let get = redis::cmd("GET").arg(&key).to_owned();
        self.with_connection(|conn, connector| {
            conn.command(connector, &set)?;
            let salt: String = redis::from_redis_value(conn.command(connector, &get)?)?;
            Ok(salt)
        })
    }

    fn kept_page(
        &self,
        period: Period,
        start: i64,
        offset: usize,
        limit: usize,
    ) -> Result<Option<KeptPage>, StoreError> {
        match &self.kept {
            Some(kept) => self.read_kept_page(kept, period, start, offset, limit),
            None => Ok(None),
        }
    }

    fn rebuild_ranking(&self, period: Period, start: i64) -> Result<bool, StoreError> {
        match &self.kept {
            Some(kept) => self.rebuild_kept(kept, period, start),
            None => Ok(false),
        }
    }

    /// Every bucket of hits within the ranking retention, found by `SCAN`ning the masters.
    fn rebuild_rankings(&self) -> Result<usize, StoreError> {
        let Some(kept) = &self.kept else {
            return Ok(0);
        };
        super::kept::rebuild_current(
            kept,
            &self.calendar,
            self.hit_buckets()?,
            |period, start| self.rebuild_kept(kept, period, start),
        )
    }

    /// Only a cluster that cannot be reached at all: a node's open breaker may be a master
    /// that failed over, which nothing will probe again once it is out of the slot map.
    fn trouble(&self) -> Option<Trouble> {
        self.breaker.open_because().map(Trouble::Unreachable)
    }

    /// Refused writes are not tracked in cluster mode: nothing to learn.
    fn probe_write(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Whether every master answers a PING now.
    fn ping(&self) -> Result<(), StoreError> {
        self.with_connection(|conn, _| {
            let all_masters = RoutingInfo::MultiNode((
                MultipleNodeRoutingInfo::AllMasters,
                Some(ResponsePolicy::AllSucceeded),
            ));
            conn.cluster
                .route_command(&redis::cmd("PING"), all_masters)
                .map(drop)
        })
    }
}

fn hget(key: &str, field: &str) -> Cmd {
    redis::cmd("HGET").arg(key).arg(field).to_owned()
}

/// A count as HGET returns it: absent, or a number (as a bulk string, or an integer).
fn count(value: Value) -> Result<Option<i64>, StoreError> {
    redis::from_redis_value::<Option<i64>>(value)
        .map_err(|e| errors::store_error(RedisError::from(e)))
}
