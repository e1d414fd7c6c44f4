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
//! `HINCRBY`, one `SISMEMBER`, and `EXPIREAT` on a bucket key only when the hit created the
//! URL's count in it, so expiry costs nothing once set and needs no per-connection memory.
//! The first hit of a URL ever costs two more round trips: `SADD` to its index shard, then
//! `SREM` from `unindexed`. Reads: `GET /hit` is six `HGET`s in one batch, `/series` one
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

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::cluster::{ClusterClient, ClusterConnection, Connect};
use redis::cluster_routing::{
    MultipleNodeRoutingInfo, ResponsePolicy, Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr,
};
use redis::io::tcp::TcpSettings;
use redis::{
    Cmd, ConnectionLike, ErrorKind, IntoConnectionInfo, RedisError, RedisResult, ServerErrorKind,
    Value,
};

use crate::buckets::{bucket_end, Period, WeekStart};
use crate::error::ApiError;
use crate::store::{AllCounts, HitStore, KeyLayout, PoolState, Retention, StoreConfig, UrlCounts};

/// Shards of the URL index: enough that no one key takes every new URL, few enough that
/// `/hits` reads them in one request per node.
pub const INDEX_SHARDS: u64 = 16;

/// Slots in a Redis Cluster.
const SLOTS: usize = 16384;

/// Records one hit for the URL `ARGV[1]`, atomically, in one slot.
///
/// KEYS: the all-time hash, the month, week, day, hour and minute hashes, the `unindexed` set.
/// ARGV: the URL, then per period (month to minute) the `EXPIREAT` time in seconds, `0` to
/// keep the bucket forever. A bucket key gets its expiry when this hit created it; a time in
/// the past deletes it at once, so a hit older than the retention counts only where kept.
/// Returns 1 when the URL still has to be added to the URL index, else 0.
///
/// Every key it touches is in KEYS, as Redis Cluster requires. No `#!lua` shebang (a Redis 7
/// feature): nothing in it needs one.
pub const HIT_SCRIPT: &str = r#"local url = ARGV[1]
local first = redis.call('HINCRBY', KEYS[1], url, 1) == 1
for i = 2, 6 do
  if redis.call('HINCRBY', KEYS[i], url, 1) == 1 and ARGV[i] ~= '0' then
    redis.call('EXPIREAT', KEYS[i], ARGV[i])
  end
end
if first then
  redis.call('SADD', KEYS[7], url)
  return 1
end
return redis.call('SISMEMBER', KEYS[7], url)
"#;

/// The URL's hash: 64-bit FNV-1a, then MurmurHash3's `fmix64` finalizer. Both are published
/// and tiny, so every HitMe instance (and an operator's one-line script) finds the same keys;
/// the finalizer is there because FNV-1a alone barely mixes the last bytes of a URL into its
/// high bits, which would crowd the index shards (`example.com/1`, `example.com/2`, ...).
pub fn url_hash(url: &str) -> u64 {
    fmix64(fnv1a64(url.as_bytes()))
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The hash tag of a URL's keys: its hash in 16 lowercase hex digits.
pub fn url_tag(url: &str) -> String {
    format!("{:016x}", url_hash(url))
}

/// The URL index shard of a URL: the top 4 bits of its hash.
pub fn index_shard(url: &str) -> u64 {
    url_hash(url) >> 60
}

/// The cluster slot of a hash tag (CRC16/XMODEM modulo 16384, as Redis computes it).
pub fn slot_of_tag(tag: &str) -> u16 {
    let crc = tag.bytes().fold(0u16, |mut crc, byte| {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
        crc
    });
    crc % SLOTS as u16
}

/// Key names in cluster mode.
#[derive(Debug, Clone)]
pub struct ClusterKeys {
    pub prefix: String,
}

impl ClusterKeys {
    /// `<prefix>:{<tag>}:all`
    pub fn all_time(&self, tag: &str) -> String {
        format!("{}:{{{tag}}}:all", self.prefix)
    }

    /// `<prefix>:{<tag>}:<period>:<start>`
    pub fn bucket(&self, tag: &str, period: Period, start: i64) -> String {
        format!("{}:{{{tag}}}:{}:{start}", self.prefix, period.name())
    }

    /// `<prefix>:{<tag>}:unindexed`
    pub fn unindexed(&self, tag: &str) -> String {
        format!("{}:{{{tag}}}:unindexed", self.prefix)
    }

    /// `<prefix>:urls:{s<shard>}`
    pub fn index(&self, shard: u64) -> String {
        format!("{}:urls:{{s{shard}}}", self.prefix)
    }

    /// The hash tag of an index shard's key.
    pub fn index_tag(shard: u64) -> String {
        format!("s{shard}")
    }

    /// The keys one hit at `starts` touches, in [`HIT_SCRIPT`]'s KEYS order.
    pub fn hit_keys(&self, tag: &str, starts: &[i64; 5]) -> [String; 7] {
        let mut keys: [String; 7] = Default::default();
        keys[0] = self.all_time(tag);
        for (i, period) in Period::ALL.into_iter().enumerate() {
            keys[i + 1] = self.bucket(tag, period, starts[i]);
        }
        keys[6] = self.unindexed(tag);
        keys
    }
}

/// Hits kept in a Redis Cluster; see the module documentation for the layout.
pub struct ClusterStore {
    pool: r2d2::Pool<SharedConnector>,
    /// Rebuilds a pooled connection in place when the cluster's topology changed.
    connector: Arc<Connector>,
    layout: KeyLayout,
    keys: ClusterKeys,
    retention: Retention,
    errors: Arc<AtomicU64>,
    hit_sha: String,
    /// Replicas that must confirm a hit, and for how long to wait for them.
    wait_replicas: usize,
    wait_for: Duration,
    /// Hits answered before enough replicas confirmed them.
    unconfirmed: AtomicU64,
    /// Seconds since the epoch when an unconfirmed hit was last logged: at most once a second.
    unconfirmed_logged: AtomicU64,
}

/// How many replicas a write waited for, and how many confirmed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Replication {
    asked: usize,
    confirmed: usize,
}

impl ClusterStore {
    /// Builds the pool without connecting: HitMe starts while the cluster is down and answers
    /// 503 until it is up. `nodes` are seed nodes (`host:port` or `redis://...`); the rest of
    /// the cluster is discovered from them. `config.redis_url` is ignored.
    pub fn new(config: &StoreConfig, nodes: &[String]) -> Result<ClusterStore, String> {
        let prefix = &config.layout.prefix;
        if prefix.contains(['{', '}']) {
            return Err(format!(
                "--key-prefix {prefix:?} contains a brace; with --redis-cluster braces choose the hash slot, so use a prefix without {{ or }}"
            ));
        }
        let seeds = seed_urls(nodes)?;
        let client = ClusterClient::builder(seeds)
            // Never let redis-rs resend a command on its own: see the module documentation.
            .retries(0)
            .connection_timeout(config.timeout)
            .response_timeout(config.timeout)
            .tcp_settings(TcpSettings::default().set_nodelay(true))
            .build()
            .map_err(|e| format!("invalid --redis-cluster ({e})"))?;
        let connector = Arc::new(Connector {
            client,
            timeout: config.timeout,
        });
        let pool = r2d2::Pool::builder()
            .max_size(config.pool_size)
            .min_idle(Some(0))
            .connection_timeout(config.timeout)
            // Redis errors are logged per request as 503s; r2d2's own log would repeat them.
            .error_handler(Box::new(r2d2::NopErrorHandler))
            .build_unchecked(SharedConnector(connector.clone()));
        Ok(ClusterStore {
            pool,
            connector,
            layout: config.layout.clone(),
            keys: ClusterKeys {
                prefix: prefix.clone(),
            },
            retention: config.retention,
            errors: Arc::default(),
            hit_sha: redis::Script::new(HIT_SCRIPT).get_hash().to_string(),
            wait_replicas: config.wait_replicas,
            wait_for: config.timeout / 4,
            unconfirmed: AtomicU64::new(0),
            unconfirmed_logged: AtomicU64::new(0),
        })
    }

    fn failed(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// A hit its master counted but not enough replicas confirmed in time: it is still a 200
    /// (a 503 would make the client send it again, and count it twice), but a failover before
    /// the replica catches up could lose it. The replica may be dead or hung: the slot map is
    /// read again, and once the cluster marks the replica failed the next hits stop waiting
    /// for it.
    fn unconfirmed(&self, conn: &mut Conn, url: &str, replication: Replication) {
        conn.refresh = true;
        self.unconfirmed.fetch_add(1, Ordering::Relaxed);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        if self.unconfirmed_logged.swap(now, Ordering::Relaxed) != now {
            log::warn!(
                "a hit for {url} was counted, but {} of {} replicas confirmed it within {:?}; a failover now could lose it (further ones are logged at most once a second)",
                replication.confirmed,
                replication.asked,
                self.wait_for
            );
        }
    }

    fn checkout(&self) -> Result<r2d2::PooledConnection<SharedConnector>, ApiError> {
        self.pool.get().map_err(|e| {
            self.failed();
            unavailable(&format!(
                "no Redis Cluster connection could be had in time ({e}); retry later, and check the nodes in --redis-cluster"
            ))
        })
    }

    /// Runs `command` on `conn`, keeping count of failures.
    fn run<T>(
        &self,
        conn: &mut Conn,
        command: impl FnOnce(&mut Conn, &Connector) -> RedisResult<T>,
    ) -> Result<T, ApiError> {
        conn.run(|conn| command(conn, &self.connector))
            .map_err(|e| {
                self.failed();
                api_error(e)
            })
    }

    /// Runs `command` on a pooled connection.
    fn with_connection<T>(
        &self,
        command: impl FnOnce(&mut Conn, &Connector) -> RedisResult<T>,
    ) -> Result<T, ApiError> {
        let mut conn = self.checkout()?;
        self.run(&mut conn, command)
    }

    /// The `EXPIREAT` time (seconds) of each period's bucket, month to minute; 0 = keep.
    fn expiries(&self, starts: &[i64; 5]) -> [i64; 5] {
        let mut at = [0; 5];
        for (i, period) in Period::ALL.into_iter().enumerate() {
            if let Some(keep) = self.retention[i] {
                let end_ms = bucket_end(starts[i], period, self.layout.week_start);
                // At least 1: a bucket that ended before 1970 plus its retention is long gone,
                // and 0 means "keep".
                at[i] = (end_ms.div_euclid(1000) + keep.as_secs() as i64).max(1);
            }
        }
        at
    }
}

impl HitStore for ClusterStore {
    /// Records one hit: one `EVALSHA` in the URL's slot; on the URL's first hit (or while a
    /// failed index update awaits repair) also its index entry. See the module documentation.
    fn record_hit(&self, url: &str, timestamp_ms: i64) -> Result<(), ApiError> {
        let tag = url_tag(url);
        let starts = self.layout.starts_for(timestamp_ms);
        let keys = self.keys.hit_keys(&tag, &starts);
        let expiries = self.expiries(&starts);
        let script = |name: &str, body: &str| {
            let mut cmd = redis::cmd(name);
            cmd.arg(body)
                .arg(keys.len())
                .arg(&keys[..])
                .arg(url)
                .arg(&expiries[..]);
            cmd
        };
        let evalsha = script("EVALSHA", &self.hit_sha);
        let slot = slot_of_tag(&tag);
        let (want, wait_for) = (self.wait_replicas, self.wait_for);
        let mut conn = self.checkout()?;
        let (needs_index, replication) = self.run(&mut conn, |conn, connector| {
            let mut hit = |cmd: &Cmd| conn.replicated(connector, cmd, slot, want, wait_for);
            let (reply, replication) = match hit(&evalsha) {
                // A node that never ran the script (new, restarted, promoted): EVAL loads it.
                Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                    hit(&script("EVAL", HIT_SCRIPT))
                }
                result => result,
            }?;
            let needs_index: i64 = redis::from_redis_value(reply)?;
            Ok((needs_index, replication))
        })?;
        if replication.confirmed < replication.asked {
            self.unconfirmed(&mut conn, url, replication);
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
                    e.message
                );
            }
        }
        Ok(())
    }

    /// The counts of one URL in the buckets holding `timestamp_ms`: six `HGET`s in its slot,
    /// one round trip.
    fn url_counts(&self, url: &str, timestamp_ms: i64) -> Result<UrlCounts, ApiError> {
        let tag = url_tag(url);
        let starts = self.layout.starts_for(timestamp_ms);
        let keys = self.keys.hit_keys(&tag, &starts);
        let slot = slot_of_tag(&tag);
        let reads: Vec<(u16, Cmd)> = keys[..6].iter().map(|key| (slot, hget(key, url))).collect();
        let values = self.with_connection(|conn, connector| conn.read(connector, &reads, true))?;
        let mut out = [0; 6];
        for (n, value) in out.iter_mut().zip(values) {
            *n = count(value)?.unwrap_or(0);
        }
        Ok(out)
    }

    /// The counts of every URL in the buckets holding `timestamp_ms`: the 16 index shards,
    /// then six `HGET`s per URL, each step one request per node.
    fn all_counts(&self, timestamp_ms: i64) -> Result<AllCounts, ApiError> {
        let starts = self.layout.starts_for(timestamp_ms);
        let shards: Vec<(u16, Cmd)> = (0..INDEX_SHARDS)
            .map(|shard| {
                let members = redis::cmd("SMEMBERS")
                    .arg(self.keys.index(shard))
                    .to_owned();
                (slot_of_tag(&ClusterKeys::index_tag(shard)), members)
            })
            .collect();
        let mut conn = self.checkout()?;
        let urls = self.run(&mut conn, |conn, connector| {
            let mut urls = BTreeSet::new();
            for members in conn.read(connector, &shards, false)? {
                let members: Vec<String> = redis::from_redis_value(members)?;
                urls.extend(members);
            }
            Ok(urls)
        })?;
        let mut out = AllCounts::default();
        if urls.is_empty() {
            return Ok(out);
        }
        let mut reads: Vec<(u16, Cmd)> = Vec::with_capacity(urls.len() * 6);
        for url in &urls {
            let tag = url_tag(url);
            let slot = slot_of_tag(&tag);
            for key in &self.keys.hit_keys(&tag, &starts)[..6] {
                reads.push((slot, hget(key, url)));
            }
        }
        let values = self.run(&mut conn, |conn, connector| {
            conn.read(connector, &reads, false)
        })?;
        let mut values = values.into_iter();
        for url in urls {
            for map in out.iter_mut() {
                // A URL is indexed only once it is counted, but a bucket without its hits (or
                // past its retention) has no count for it: left out, as in standalone mode.
                if let Some(n) = count(values.next().unwrap_or(Value::Nil))? {
                    map.insert(url.clone(), n);
                }
            }
        }
        Ok(out)
    }

    /// The counts of one URL in the `period` buckets starting at `starts`: one `HGET` each,
    /// all in the URL's slot, one round trip.
    fn series(&self, url: &str, period: Period, starts: &[i64]) -> Result<Vec<i64>, ApiError> {
        if starts.is_empty() {
            return Ok(Vec::new());
        }
        let tag = url_tag(url);
        let slot = slot_of_tag(&tag);
        let reads: Vec<(u16, Cmd)> = starts
            .iter()
            .map(|start| (slot, hget(&self.keys.bucket(&tag, period, *start), url)))
            .collect();
        let values = self.with_connection(|conn, connector| conn.read(connector, &reads, true))?;
        values
            .into_iter()
            .map(|v| Ok(count(v)?.unwrap_or(0)))
            .collect()
    }

    /// Whether every master answers a PING now.
    fn ping(&self) -> Result<(), ApiError> {
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

    /// Redis operations that failed (connection, timeout, error reply, cluster reconfiguring).
    fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    fn unconfirmed_hits(&self) -> u64 {
        self.unconfirmed.load(Ordering::Relaxed)
    }

    fn pool_state(&self) -> PoolState {
        PoolState::of(&self.pool)
    }

    fn week_start(&self) -> WeekStart {
        self.layout.week_start
    }
}

/// `--redis-cluster` entries as redis URLs: `host:port` gets `redis://`.
fn seed_urls(nodes: &[String]) -> Result<Vec<String>, String> {
    const EXAMPLE: &str = "e.g. --redis-cluster 127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002";
    if nodes.is_empty() {
        return Err(format!(
            "--redis-cluster needs at least one node, {EXAMPLE}"
        ));
    }
    nodes
        .iter()
        .map(|node| {
            let node = node.trim();
            if node.is_empty() {
                return Err(format!("--redis-cluster has an empty entry; {EXAMPLE}"));
            }
            let url = if node.contains("://") {
                node.to_string()
            } else {
                format!("redis://{node}")
            };
            let info = url
                .as_str()
                .into_connection_info()
                .map_err(|e| format!("invalid --redis-cluster node {node:?} ({e}); {EXAMPLE}"))?;
            match info.addr() {
                redis::ConnectionAddr::Tcp(..) => {}
                redis::ConnectionAddr::Unix(..) => {
                    return Err(format!(
                        "invalid --redis-cluster node {node:?}: cluster nodes are reached over TCP (host:port); {EXAMPLE}"
                    ))
                }
                _ => {
                    return Err(format!(
                        "invalid --redis-cluster node {node:?}: TLS (rediss://) is not supported with --redis-cluster; {EXAMPLE}"
                    ))
                }
            }
            Ok(url)
        })
        .collect()
}

fn hget(key: &str, field: &str) -> Cmd {
    redis::cmd("HGET").arg(key).arg(field).to_owned()
}

/// A count as HGET returns it: absent, or a number (as a bulk string, or an integer).
fn count(value: Value) -> Result<Option<i64>, ApiError> {
    redis::from_redis_value::<Option<i64>>(value).map_err(|e| ApiError::from(RedisError::from(e)))
}

/// A 503 whose text never carries the cluster's redirection or slot error codes: those are
/// HitMe's to handle, not the client's.
fn unavailable(message: &str) -> ApiError {
    if ["MOVED", "ASK", "CROSSSLOT", "TRYAGAIN", "CLUSTERDOWN"]
        .iter()
        .any(|code| message.contains(code))
    {
        return reconfiguring();
    }
    ApiError::unavailable(message.to_string())
}

/// A redirection HitMe does not follow further: still an ASK (a 503 saying the cluster is
/// moving slots), but naming no node, so it is not followed again.
fn reconfiguring_error() -> RedisError {
    RedisError::from((
        ErrorKind::Server(ServerErrorKind::Ask),
        "redirected again by the importing node",
    ))
}

fn reconfiguring() -> ApiError {
    ApiError::unavailable(
        "the Redis Cluster is failing over or moving slots; retry in a few seconds",
    )
}

/// The API error for a failed Redis operation.
fn api_error(err: RedisError) -> ApiError {
    use ServerErrorKind::*;
    match err.kind() {
        ErrorKind::Server(
            Moved | Ask | TryAgain | ClusterDown | MasterDown | ReadOnly | CrossSlot | BusyLoading,
        ) => reconfiguring(),
        // Data HitMe cannot use is a 500 that names the likely cause.
        ErrorKind::Parse | ErrorKind::UnexpectedReturnType => ApiError::from(err),
        _ if err.code() == Some("WRONGTYPE") => ApiError::from(err),
        _ if err.is_timeout() => ApiError::unavailable(
            "a Redis Cluster node did not answer within --redis-timeout-ms; retry later",
        ),
        _ => unavailable(&format!(
            "the Redis Cluster is unavailable ({err}); retry later, and check the nodes in --redis-cluster"
        )),
    }
}

/// Whether `err` says the connection's slot map is out of date (a failover or a resharding
/// finished): the command did not run, and a fresh slot map routes it right.
fn topology_changed(err: &RedisError) -> bool {
    matches!(
        err.kind(),
        ErrorKind::Server(ServerErrorKind::Moved | ServerErrorKind::ReadOnly)
    )
}

/// Whether `err` says a command did not run and can be sent again: a redirection, or a slot
/// in mid-migration.
fn did_not_run(err: &RedisError) -> bool {
    topology_changed(err)
        || ask_target(err).is_some()
        || err.kind() == ErrorKind::Server(ServerErrorKind::TryAgain)
}

/// The node an ASK redirection names.
fn ask_target(err: &RedisError) -> Option<(String, u16)> {
    if err.kind() != ErrorKind::Server(ServerErrorKind::Ask) {
        return None;
    }
    let (addr, _slot) = err.redirect_node()?;
    let (host, port) = addr.rsplit_once(':')?;
    Some((host.to_string(), port.parse().ok()?))
}

/// A pooled cluster connection: a connection per node and a slot map (redis-rs's), plus what
/// HitMe knows of it.
pub struct Conn {
    cluster: ClusterConnection<NodeConn>,
    /// An error may have left a node connection or the slot map stale; the pool drops it.
    broken: bool,
    last_ok: Instant,
    /// A node could not be reached: it may be dead, hung, or replaced by a failover, which
    /// only a new slot map tells. Set by an I/O error; acted on at the next checkout.
    refresh: bool,
    /// When the slot map was last read, to read it at most once per `REFRESH_EVERY`.
    mapped_at: Instant,
    /// From CLUSTER SLOTS and NODES: which node serves a slot, to group `/hits`'s reads by
    /// node, and how many working replicas it has, to know what a hit can wait for. Fetched
    /// when first needed and dropped when the topology changes.
    slots: Option<SlotMap>,
}

/// How long to wait before retrying a command the cluster answered TRYAGAIN (a slot in
/// mid-migration); retries stop at the timeout.
const TRY_AGAIN_AFTER: Duration = Duration::from_millis(50);

/// A slot no node serves in `Conn::slots`.
const UNASSIGNED: u16 = u16::MAX;

impl Conn {
    fn run<T>(&mut self, command: impl FnOnce(&mut Conn) -> RedisResult<T>) -> RedisResult<T> {
        let result = command(self);
        match &result {
            Ok(_) => self.last_ok = Instant::now(),
            // A redirection left after HitMe's one retry means the slot map is still wrong.
            Err(e) if topology_changed(e) || ask_target(e).is_some() => self.broken = true,
            // Other error replies (CLUSTERDOWN during a failover, WRONGTYPE) leave the
            // connection in step with the cluster.
            Err(e) if matches!(e.kind(), ErrorKind::Server(_)) => {}
            // An I/O error either came from a node connection, which then failed for good and
            // makes the whole connection `!is_open()` (the pool drops it), or from connecting
            // to a node, which left nothing behind: the connection still serves the other
            // nodes, and reads the slot map afresh at its next checkout (a failover may have
            // replaced the node). Keeping it matters when a node hangs: a new connection costs
            // a timeout per hung node, and dropping every connection that tried would starve
            // the pool and fail requests for the healthy nodes too.
            Err(e) if e.kind() == ErrorKind::Io => self.refresh = true,
            // Parse errors, an empty or unreadable slot map: start afresh.
            Err(_) => self.broken = true,
        }
        result
    }

    /// Replaces the cluster connection with a new one, which reads the slot map afresh.
    fn rebuild(&mut self, connector: &Connector) -> RedisResult<()> {
        self.mapped_at = Instant::now();
        self.cluster = connector.open()?;
        self.slots = None;
        self.refresh = false;
        Ok(())
    }

    /// Runs one command routed by its first key. Every error handled here means the command
    /// did not run, so sending it again cannot count a hit twice:
    /// - MOVED (or READONLY): the slot map is out of date; rebuild it and retry, once;
    /// - ASK: the slot is being migrated and the key is on the importing node; send `ASKING`
    ///   and the command there, once per answer from the slot's owner;
    /// - TRYAGAIN: a multi-key command (the hit script) met a slot in mid-migration; wait a
    ///   little and retry until the timeout, after which it is a 503.
    fn command(&mut self, connector: &Connector, cmd: &Cmd) -> RedisResult<Value> {
        let deadline = Instant::now() + connector.timeout;
        let mut rebuilt = false;
        let mut asking: Option<(String, u16)> = None;
        loop {
            let result = match asking.take() {
                None => self.cluster.req_command(cmd),
                Some((host, port)) => {
                    let node =
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress { host, port });
                    // ASKING lets the importing node serve the next command on this connection.
                    self.cluster
                        .route_command(&redis::cmd("ASKING"), node.clone())
                        .and_then(|_| self.cluster.route_command(cmd, node))
                        // A second redirection from the importing node is not followed.
                        .map_err(|e| match ask_target(&e) {
                            Some(_) => reconfiguring_error(),
                            None => e,
                        })
                }
            };
            let err = match result {
                Ok(value) => return Ok(value),
                Err(err) => err,
            };
            if topology_changed(&err) && !rebuilt {
                log::debug!("cluster topology changed ({err}); reading the slot map afresh");
                self.rebuild(connector)?;
                rebuilt = true;
            } else if let Some(node) = ask_target(&err) {
                log::debug!("slot in migration ({err}); asking {}:{}", node.0, node.1);
                asking = Some(node);
            } else if err.kind() == ErrorKind::Server(ServerErrorKind::TryAgain)
                && Instant::now() + TRY_AGAIN_AFTER < deadline
            {
                std::thread::sleep(TRY_AGAIN_AFTER);
            } else {
                return Err(err);
            }
        }
    }

    /// Runs read commands, each given with its key's slot, in one request per node: with
    /// `one_slot` they all go to the node of the first key; otherwise they are grouped by the
    /// node serving their slot (from CLUSTER SLOTS), and each group is sent as one batch, which
    /// the cluster connection routes by its first key. Replies come back in order.
    ///
    /// If the topology changed under it (MOVED), the slot maps are rebuilt and the whole read
    /// is retried once. During a slot migration (ASK) a batch cannot tell which of its keys
    /// have moved, so the reads are sent one by one, each following its own redirection.
    fn read(
        &mut self,
        connector: &Connector,
        commands: &[(u16, Cmd)],
        one_slot: bool,
    ) -> RedisResult<Vec<Value>> {
        let result = match self.read_once(commands, one_slot) {
            Err(e) if topology_changed(&e) => {
                self.rebuild(connector)?;
                self.read_once(commands, one_slot)
            }
            result => result,
        };
        match result {
            Err(e) if ask_target(&e).is_some() => commands
                .iter()
                .map(|(_, cmd)| self.command(connector, cmd))
                .collect(),
            result => result,
        }
    }

    fn read_once(&mut self, commands: &[(u16, Cmd)], one_slot: bool) -> RedisResult<Vec<Value>> {
        if one_slot {
            return self.send_batch(commands.iter().map(|(_, cmd)| cmd));
        }
        let slots = self.slot_map(None)?;
        let mut groups: HashMap<u16, Vec<usize>> = HashMap::new();
        for (i, (slot, _)) in commands.iter().enumerate() {
            let node = slots
                .node_of
                .get(usize::from(*slot))
                .copied()
                .unwrap_or(UNASSIGNED);
            groups.entry(node).or_default().push(i);
        }
        let mut out = vec![Value::Nil; commands.len()];
        for members in groups.into_values() {
            let values = self.send_batch(members.iter().map(|i| &commands[*i].1))?;
            for (i, value) in members.into_iter().zip(values) {
                out[i] = value;
            }
        }
        Ok(out)
    }

    /// The slot map, read if need be from the master of `near` (a node the caller is about to
    /// use anyway, so a hung node elsewhere cannot hold it up) or else from any node.
    fn slot_map(&mut self, near: Option<u16>) -> RedisResult<&SlotMap> {
        if self.slots.is_none() {
            let node = match near {
                Some(slot) => {
                    SingleNodeRoutingInfo::SpecificNode(Route::new(slot, SlotAddr::Master))
                }
                None => SingleNodeRoutingInfo::Random,
            };
            // Both from one node, so that they tell of the same topology.
            let mut ask = |what: &str| {
                let cmd = redis::cmd("CLUSTER").arg(what).to_owned();
                self.cluster
                    .route_command(&cmd, RoutingInfo::SingleNode(node.clone()))
            };
            let slots = ask("SLOTS")?;
            let nodes: String = redis::from_redis_value(ask("NODES")?)?;
            self.slots = Some(slot_table(slots, &working_replicas(&nodes))?);
        }
        Ok(self.slots.as_ref().expect("just filled"))
    }

    /// Runs a write routed by its first key, in `slot`, and has up to `want` of its master's
    /// replicas confirm it (`WAIT`, bounded by `wait_for`). Returns the write's reply and how
    /// many replicas were asked for and confirmed it.
    ///
    /// The write and the `WAIT` go out together (one round trip). If the write was redirected
    /// or met a migrating slot, it did not run, and goes the way of `command` (which follows
    /// the redirection); the `WAIT` then follows on the slot's master. (During a migration a
    /// write that went to the importing node is not covered by that `WAIT`, which counts the
    /// writes of its own connection only.) NOSCRIPT is returned for the caller to send the
    /// script itself.
    fn replicated(
        &mut self,
        connector: &Connector,
        cmd: &Cmd,
        slot: u16,
        want: usize,
        wait_for: Duration,
    ) -> RedisResult<(Value, Replication)> {
        let asked = if want == 0 {
            0
        } else {
            want.min(self.slot_map(Some(slot))?.replicas_of(slot))
        };
        if asked == 0 {
            let reply = self.command(connector, cmd)?;
            return Ok((
                reply,
                Replication {
                    asked,
                    confirmed: 0,
                },
            ));
        }
        let wait = redis::cmd("WAIT")
            .arg(asked)
            .arg(wait_for.as_millis().max(1) as u64)
            .to_owned();
        let (reply, confirmed) = match self.send_batch([cmd, &wait].into_iter()) {
            Ok(mut values) => {
                let confirmed = values.pop().expect("two replies");
                (values.pop().expect("two replies"), confirmed)
            }
            Err(e) if did_not_run(&e) => {
                let reply = self.command(connector, cmd)?;
                let master = Route::new(slot, SlotAddr::Master);
                let confirmed = self.cluster.route_command(
                    &wait,
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(master)),
                )?;
                (reply, confirmed)
            }
            Err(e) => return Err(e),
        };
        let confirmed = redis::from_redis_value::<usize>(confirmed)?;
        Ok((reply, Replication { asked, confirmed }))
    }

    /// Sends `commands` as one batch to the node of the first one's key and reads every reply.
    fn send_batch<'a>(
        &mut self,
        commands: impl Iterator<Item = &'a Cmd>,
    ) -> RedisResult<Vec<Value>> {
        let mut packed = Vec::with_capacity(256);
        let mut count = 0;
        for cmd in commands {
            cmd.write_packed_command(&mut packed);
            count += 1;
        }
        let values = self.cluster.req_packed_commands(&packed, 0, count)?;
        if values.len() != count {
            return Err(RedisError::from((
                ErrorKind::UnexpectedReturnType,
                "a pipeline did not return every reply",
            )));
        }
        Ok(values)
    }
}

/// Working replicas per master `host:port`, from CLUSTER NODES: replicas not marked failed
/// or suspected of it. (CLUSTER SLOTS cannot tell: it leaves out replicas that have not yet
/// reported any replicated data, as in a cluster that has taken no write yet.)
fn working_replicas(nodes: &str) -> HashMap<String, usize> {
    let mut addr_of: HashMap<&str, &str> = HashMap::new();
    let mut count_of: HashMap<&str, usize> = HashMap::new();
    for line in nodes.lines() {
        // <id> <ip:port@cport[,hostname]> <flags> <master id or -> ...
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [id, addr, flags, master, ..] = fields[..] else {
            continue;
        };
        let flags: Vec<&str> = flags.split(',').collect();
        let addr = addr.split(['@', ',']).next().unwrap_or(addr);
        if flags.contains(&"master") {
            addr_of.insert(id, addr);
        } else if flags.contains(&"slave")
            && !flags
                .iter()
                .any(|f| ["fail", "fail?", "handshake", "noaddr"].contains(f))
        {
            *count_of.entry(master).or_default() += 1;
        }
    }
    addr_of
        .into_iter()
        .map(|(id, addr)| (addr.to_string(), count_of.get(id).copied().unwrap_or(0)))
        .collect()
}

/// Which master serves each slot, and how many working replicas each master has.
struct SlotMap {
    /// Slot -> node number (arbitrary, but equal for equal masters), `UNASSIGNED` if none.
    node_of: Vec<u16>,
    /// Node number -> replicas.
    replicas: Vec<usize>,
}

impl SlotMap {
    fn replicas_of(&self, slot: u16) -> usize {
        let node = self.node_of.get(usize::from(slot)).copied();
        node.and_then(|n| self.replicas.get(usize::from(n)))
            .copied()
            .unwrap_or(0)
    }
}

/// The slot map from a CLUSTER SLOTS reply and the working replicas of each master (by
/// `host:port`).
fn slot_table(reply: Value, replicas: &HashMap<String, usize>) -> RedisResult<SlotMap> {
    let Value::Array(ranges) = reply else {
        return Err(RedisError::from((
            ErrorKind::UnexpectedReturnType,
            "CLUSTER SLOTS did not return an array",
        )));
    };
    let mut table = vec![UNASSIGNED; SLOTS];
    let mut nodes: Vec<(Vec<u8>, i64)> = Vec::new();
    let mut replica_counts = Vec::new();
    for range in ranges {
        let Value::Array(fields) = range else {
            continue;
        };
        let (Some(Value::Int(start)), Some(Value::Int(end)), Some(Value::Array(master))) =
            (fields.first(), fields.get(1), fields.get(2))
        else {
            continue;
        };
        let host = match master.first() {
            Some(Value::BulkString(host)) => host.clone(),
            _ => Vec::new(),
        };
        let Some(Value::Int(port)) = master.get(1) else {
            continue;
        };
        let node = (host, *port);
        let number = match nodes.iter().position(|n| *n == node) {
            Some(number) => number,
            None => {
                // A master CLUSTER NODES names otherwise (a hostname endpoint): the replicas
                // CLUSTER SLOTS lists after it.
                let addr = format!("{}:{}", String::from_utf8_lossy(&node.0), node.1);
                let listed = fields.len().saturating_sub(3);
                replica_counts.push(replicas.get(&addr).copied().unwrap_or(listed));
                nodes.push(node);
                nodes.len() - 1
            }
        };
        let last = SLOTS as i64 - 1;
        for slot in (*start).clamp(0, last)..=(*end).clamp(0, last) {
            table[slot as usize] = number as u16;
        }
    }
    Ok(SlotMap {
        node_of: table,
        replicas: replica_counts,
    })
}

/// Opens cluster connections for the pool.
pub struct Connector {
    client: ClusterClient,
    timeout: Duration,
}

impl Connector {
    fn open(&self) -> RedisResult<ClusterConnection<NodeConn>> {
        // `get_generic_connection` is redis-rs's (hidden but public) way to choose the node
        // connection type; `NodeConn` keeps every node connection bounded from its first byte.
        let cluster = self.client.get_generic_connection::<NodeConn>()?;
        cluster.set_read_timeout(Some(self.timeout))?;
        cluster.set_write_timeout(Some(self.timeout))?;
        Ok(cluster)
    }
}

/// The pool's handle on the connector, shared with the store for rebuilding in place.
struct SharedConnector(Arc<Connector>);

/// A connection idle this long is checked (a PING to each node it holds) before use; busier
/// ones are not, so a hit costs one round trip, and a failure on them drops them anyway.
const CHECK_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// A connection that could not reach a node reads the slot map again at most this often: soon
/// enough to follow a failover (which takes seconds), rarely enough that a hung node (which
/// costs a timeout per new slot map) does not slow every request.
const REFRESH_EVERY: Duration = Duration::from_millis(500);

impl r2d2::ManageConnection for SharedConnector {
    type Connection = Conn;
    type Error = RedisError;

    fn connect(&self) -> Result<Conn, RedisError> {
        Ok(Conn {
            cluster: self.0.open()?,
            broken: false,
            last_ok: Instant::now(),
            refresh: false,
            mapped_at: Instant::now(),
            slots: None,
        })
    }

    fn is_valid(&self, conn: &mut Conn) -> Result<(), RedisError> {
        if conn.refresh && conn.mapped_at.elapsed() >= REFRESH_EVERY {
            // A node was unreachable: learn whether a failover replaced it. On failure the
            // pool drops this connection and opens another.
            conn.rebuild(&self.0)?;
            conn.last_ok = Instant::now();
            return Ok(());
        }
        if conn.last_ok.elapsed() < CHECK_IF_IDLE_FOR {
            return Ok(());
        }
        if conn.cluster.check_connection() {
            conn.last_ok = Instant::now();
            Ok(())
        } else {
            Err(RedisError::from((
                ErrorKind::Io,
                "a cluster node did not answer PING",
            )))
        }
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.broken || !conn.cluster.is_open()
    }
}

/// A connection to one cluster node, bounded by the timeout from the start, and failing at
/// once after its first I/O error.
///
/// redis-rs's own node connections run a handshake PING before their read timeout is set (a
/// frozen node would hang it), and read a pipeline's replies one by one even after the
/// first timed out (one timeout per reply). After an I/O error nothing on this connection
/// can be trusted to be in step, so every later use fails fast and the pool replaces the
/// whole cluster connection.
pub struct NodeConn {
    redis: redis::Connection,
    timeout: Duration,
    failed: bool,
}

impl NodeConn {
    fn usable(&self) -> RedisResult<()> {
        if self.failed {
            return Err(RedisError::from(std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                "an earlier command on this cluster node connection failed",
            )));
        }
        Ok(())
    }

    /// Notes a failure: only transport and protocol errors come back as `Err` here (error
    /// replies are values), and after those the connection is done.
    fn note<T>(&mut self, result: RedisResult<T>) -> RedisResult<T> {
        if result.is_err() {
            self.failed = true;
        }
        result
    }
}

impl Connect for NodeConn {
    fn connect<T>(info: T, timeout: Option<Duration>) -> RedisResult<Self>
    where
        T: IntoConnectionInfo,
    {
        // The cluster client passes its connection timeout, which is --redis-timeout-ms.
        let timeout = timeout.unwrap_or(Duration::from_secs(1));
        let redis = redis::Client::open(info)?.get_connection_with_timeout(timeout)?;
        redis.set_read_timeout(Some(timeout))?;
        redis.set_write_timeout(Some(timeout))?;
        Ok(NodeConn {
            redis,
            timeout,
            failed: false,
        })
    }

    fn send_packed_command(&mut self, cmd: &[u8]) -> RedisResult<()> {
        self.usable()?;
        let result = self.redis.send_packed_command(cmd);
        self.note(result)
    }

    /// `None` (which the cluster client passes when no write timeout was set yet) keeps the
    /// connection's own bound rather than blocking forever.
    fn set_write_timeout(&self, dur: Option<Duration>) -> RedisResult<()> {
        self.redis
            .set_write_timeout(Some(dur.unwrap_or(self.timeout)))
    }

    fn set_read_timeout(&self, dur: Option<Duration>) -> RedisResult<()> {
        self.redis
            .set_read_timeout(Some(dur.unwrap_or(self.timeout)))
    }

    fn recv_response(&mut self) -> RedisResult<Value> {
        self.usable()?;
        let result = self.redis.recv_response();
        self.note(result)
    }
}

impl ConnectionLike for NodeConn {
    fn req_packed_command(&mut self, cmd: &[u8]) -> RedisResult<Value> {
        self.usable()?;
        let result = self.redis.req_packed_command(cmd);
        self.note(result)
    }

    /// Sends the commands and reads their replies, giving up at the first failure instead of
    /// waiting out the read timeout once per remaining reply. Error replies are returned as
    /// values, for the caller to turn into errors.
    fn req_packed_commands(
        &mut self,
        cmd: &[u8],
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        self.usable()?;
        let redis = &mut self.redis;
        let result = (|| {
            redis.send_packed_command(cmd)?;
            let mut values = Vec::with_capacity(count);
            for i in 0..offset + count {
                let value = redis.recv_response()?;
                if i >= offset {
                    values.push(value);
                }
            }
            Ok(values)
        })();
        self.note(result)
    }

    fn get_db(&self) -> i64 {
        self.redis.get_db()
    }

    fn check_connection(&mut self) -> bool {
        let ok = !self.failed && self.redis.check_connection();
        self.failed |= !ok;
        ok
    }

    fn is_open(&self) -> bool {
        !self.failed && self.redis.is_open()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis() {
        // From the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(slot_of_tag("123456789"), 0x31C3);
        assert_eq!(slot_of_tag("foo"), 12182);
    }

    #[test]
    fn every_key_of_a_hit_shares_the_urls_tag() {
        let keys = ClusterKeys {
            prefix: "hits".into(),
        };
        let url = "http://www.olark.com/";
        let tag = url_tag(url);
        assert_eq!(tag.len(), 16);
        assert_eq!(tag, format!("{:016x}", url_hash(url)));
        let layout = KeyLayout {
            prefix: "hits".into(),
            week_start: WeekStart::Monday,
        };
        let hit = keys.hit_keys(&tag, &layout.starts_for(1_700_010_123_456));
        assert_eq!(
            hit,
            [
                format!("hits:{{{tag}}}:all"),
                format!("hits:{{{tag}}}:month:1698796800000"),
                format!("hits:{{{tag}}}:week:1699833600000"),
                format!("hits:{{{tag}}}:day:1700006400000"),
                format!("hits:{{{tag}}}:hour:1700010000000"),
                format!("hits:{{{tag}}}:minute:1700010120000"),
                format!("hits:{{{tag}}}:unindexed"),
            ]
        );
        assert_eq!(
            keys.index(index_shard(url)),
            format!("hits:urls:{{s{}}}", url_hash(url) >> 60)
        );
    }

    #[test]
    fn the_hash_is_fnv1a_then_fmix64() {
        // Test vectors of the 64-bit FNV-1a hash.
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x85944171f73967e8);
        // fmix64 is a bijection that fixes 0 and spreads one bit over the word.
        assert_eq!(fmix64(0), 0);
        // Cross-checked with an independent implementation (see docs/cluster.md).
        assert_eq!(url_tag("http://www.olark.com/"), "533f41166ce64234");
        assert!(fmix64(1).count_ones() > 16);
    }

    #[test]
    fn index_shards_cover_all_sixteen() {
        let shards: BTreeSet<u64> = (0..2000)
            .map(|i| index_shard(&format!("http://example.com/{i}")))
            .collect();
        assert_eq!(shards, (0..INDEX_SHARDS).collect());
    }

    #[test]
    fn slot_table_from_cluster_slots() {
        let node = |port| {
            Value::Array(vec![
                Value::BulkString(b"127.0.0.1".to_vec()),
                Value::Int(port),
                Value::BulkString(b"id".to_vec()),
            ])
        };
        let reply = Value::Array(vec![
            Value::Array(vec![
                Value::Int(0),
                Value::Int(5460),
                node(7000),
                node(7003),
            ]),
            Value::Array(vec![Value::Int(5461), Value::Int(10922), node(7001)]),
            Value::Array(vec![Value::Int(10923), Value::Int(16000), node(7000)]),
        ]);
        // 7000 has a replica in CLUSTER NODES; 7001 is not in it, and CLUSTER SLOTS lists none.
        let replicas = HashMap::from([("127.0.0.1:7000".to_string(), 1)]);
        let map = slot_table(reply, &replicas).unwrap();
        let table = &map.node_of;
        assert_eq!(table[0], table[5460]);
        assert_eq!(table[0], table[10923]);
        assert_ne!(table[0], table[5461]);
        assert_eq!(table[16001], UNASSIGNED);
        assert_eq!(
            [0, 5461, 10923, 16001].map(|slot| map.replicas_of(slot)),
            [1, 0, 1, 0]
        );
    }

    #[test]
    fn working_replicas_from_cluster_nodes() {
        let nodes = "\
a1 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460
b2 127.0.0.1:7001@17001 master - 0 0 2 connected 5461-10922
c3 127.0.0.1:7002@17002,node-c master - 0 0 3 connected 10923-16383 [16000->-a1]
d4 127.0.0.1:7003@17003 slave a1 0 0 1 connected
e5 127.0.0.1:7004@17004 slave,fail b2 0 0 2 disconnected
f6 127.0.0.1:7005@17005 slave,fail? b2 0 0 2 connected
g7 127.0.0.1:7006@17006 slave c3 0 0 3 connected
h8 127.0.0.1:7007@17007 slave c3 0 0 3 connected
";
        assert_eq!(
            working_replicas(nodes),
            HashMap::from([
                ("127.0.0.1:7000".to_string(), 1),
                ("127.0.0.1:7001".to_string(), 0),
                ("127.0.0.1:7002".to_string(), 2),
            ])
        );
    }

    #[test]
    fn seeds_accept_host_port_and_urls() {
        assert_eq!(
            seed_urls(&["127.0.0.1:7000".into(), "redis://10.0.0.2:7001".into()]).unwrap(),
            ["redis://127.0.0.1:7000", "redis://10.0.0.2:7001"]
        );
        assert!(seed_urls(&[]).is_err());
        assert!(seed_urls(&["127.0.0.1:7000".into(), " ".into()]).is_err());
        assert!(seed_urls(&["redis+unix:///tmp/r.sock".into()]).is_err());
        assert!(seed_urls(&["rediss://127.0.0.1:7000".into()]).is_err());
    }

    #[test]
    fn cluster_error_codes_never_reach_clients() {
        for code in [
            "MOVED 3999 127.0.0.1:7001",
            "ASK 3999 127.0.0.1:7001",
            "CROSSSLOT Keys",
            "CLUSTERDOWN The cluster is down",
            "TRYAGAIN x",
        ] {
            let reply = redis::parse_redis_value(format!("-{code}\r\n").as_bytes()).unwrap();
            let err = reply.extract_error().unwrap_err();
            let api = api_error(err);
            assert_eq!(api.status, 503, "{code}");
            for word in ["MOVED", "ASK", "CROSSSLOT"] {
                assert!(!api.message.contains(word), "{code}: {}", api.message);
            }
        }
    }
}
