//! The store: where hits are kept. [`HitStore`] is what the HTTP edge asks of it; [`open`]
//! picks the backend once, from the configuration: a standalone Redis
//! ([`standalone`], with [`group_commit`]) or a Redis Cluster ([`cluster`]).
//!
//! Pieces both backends use live beside them: the pool and connection health ([`pool`]),
//! retention maths ([`expiry`]), the RESP encoder ([`resp`]) and a log limiter.

pub(crate) mod breaker;
pub mod cluster;
mod error;
pub(crate) mod expiry;
pub(crate) mod group_commit;
pub(crate) mod kept;
pub(crate) mod keys;
mod log_limit;
pub(crate) mod pool;
pub(crate) mod resp;
pub mod rows;
pub(crate) mod settings;
pub(crate) mod sources;
pub(crate) mod standalone;

use std::path::PathBuf;
use std::time::Duration;

pub(crate) use self::error::StoreError;
use self::expiry::Retention;
pub(crate) use self::kept::{KeptConfig, KeptPage};
use self::pool::PoolProbe;
pub(crate) use self::sources::{Source, SourceCounts, SourceScope};
use crate::metrics::StoreCounters;
use crate::time::{Calendar, PerPeriod, Period};

/// A visitor, as two 128-bit keyed hashes: of the visitor on the hit's URL (what the
/// visitor's key for that URL is named by) and on its site (what the site-visitor key is
/// named by, so that a visitor's first hit on any URL of a host counts the site's visitors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Visitor {
    pub page: u128,
    pub site: u128,
}

impl Visitor {
    /// 32 lowercase hex digits of the visitor on the URL, for its key.
    pub(crate) fn hex(self) -> String {
        format!("{:032x}", self.page)
    }

    /// 32 lowercase hex digits of the visitor on the site, for its key.
    pub(crate) fn site_hex(self) -> String {
        format!("{:032x}", self.site)
    }
}

/// One hit to record: a canonical URL at a time, and with `--visits` who hit it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hit {
    pub url: String,
    pub timestamp_ms: i64,
    /// With `--visits`: the visitor, whose first hit on the URL within the window is a visit.
    pub visitor: Option<Visitor>,
    /// With `--sources`: where it came from.
    pub source: Option<Source>,
}

/// A hit with its bucket starts, as a store writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BucketedHit {
    pub url: String,
    pub starts: PerPeriod<i64>,
    pub visitor: Option<Visitor>,
    pub source: Option<Source>,
}

impl BucketedHit {
    pub(crate) fn new(hit: Hit, calendar: &Calendar) -> BucketedHit {
        BucketedHit {
            starts: calendar.starts(hit.timestamp_ms),
            url: hit.url,
            visitor: hit.visitor,
            source: hit.source,
        }
    }
}

/// One count of one bucket, as `hitme export` writes it and `hitme import` reads it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Row {
    pub metric: Metric,
    pub period: Period,
    /// The bucket's start (ms); 0 for all-time.
    pub start: i64,
    pub url: String,
    pub count: i64,
}

/// What removing a URL removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Deleted {
    /// Buckets (hashes of every period, of hits and of visits) that held the URL.
    pub buckets: u64,
    /// Its all-time hits and visits.
    pub hits: i64,
    pub visits: i64,
}

/// Receives an export's rows, a chunk at a time; an `Err` (the reader went away) stops it.
pub(crate) type RowSink<'a> = dyn FnMut(Vec<Row>) -> Result<(), String> + 'a;

/// Gives `sink` every count of one counting hash of `bucket` (metric, period, start), read to
/// its end by `hscan` (a cursor in, `HSCAN`'s reply out), each URL once: `HSCAN` may return
/// a field twice while the hash grows. `to_error` names a reply HitMe cannot use.
pub(crate) fn export_hash(
    bucket: (Metric, Period, i64),
    mut hscan: impl FnMut(u64) -> Result<redis::Value, StoreError>,
    to_error: fn(redis::RedisError) -> StoreError,
    sink: &mut RowSink<'_>,
) -> Result<(), StoreError> {
    let (metric, period, start) = bucket;
    let mut written = std::collections::HashSet::new();
    let mut cursor = 0u64;
    loop {
        let (next, pairs) = scan_reply(hscan(cursor)?).map_err(to_error)?;
        let mut rows = Vec::with_capacity(pairs.len() / 2);
        let mut pairs = pairs.into_iter();
        while let (Some(url), Some(count)) = (pairs.next(), pairs.next()) {
            let url = text(url).map_err(to_error)?;
            let count: i64 = redis::from_redis_value_ref(&count).map_err(|e| to_error(e.into()))?;
            if written.insert(url.clone()) {
                rows.push(Row {
                    metric,
                    period,
                    start,
                    url,
                    count,
                });
            }
        }
        sink(rows).map_err(StoreError::Internal)?;
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

/// The period and start of a bucket key's last part: `all`, or `<period>:<start>`.
pub(crate) fn parse_bucket(rest: &str) -> Option<(Period, i64)> {
    if rest == "all" {
        return Some((Period::All, 0));
    }
    let (name, start) = rest.split_once(':')?;
    let period = Period::bucketed_from_name(name)?;
    let start = start.parse::<i64>().ok()?;
    Some((period, start))
}

/// 16 random bytes from the kernel, as 32 hex digits (a salt, a rebuild's token).
pub(crate) fn random_hex() -> Result<String, StoreError> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| {
            StoreError::Internal(format!("cannot read /dev/urandom for a random token ({e})"))
        })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// What is counted: hits, or (with `--visits`) visits, kept alike under their own keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub(crate) enum Metric {
    #[default]
    Hits,
    Visits,
}

impl Metric {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Metric::Hits => "hits",
            Metric::Visits => "visits",
        }
    }
}

/// The equal hits of a batch (same URL, same buckets, same visitor and source), which a store writes once, by their
/// number: each group's first hit and how many hits it stands for, in batch order. Batches
/// are small (a worker's queue, or a group commit's), so comparing costs less than any map.
pub(crate) fn equal_hits(hits: &[BucketedHit]) -> impl Iterator<Item = (&BucketedHit, usize)> {
    hits.iter()
        .enumerate()
        .filter(|(i, hit)| !hits[..*i].contains(hit))
        .map(|(i, hit)| (hit, hits[i..].iter().filter(|other| *other == hit).count()))
}

/// One URL's count in each period.
pub(crate) type UrlCounts = PerPeriod<i64>;

/// What the HTTP edge needs of a place to keep hits.
pub(crate) trait HitStore: Send + Sync {
    /// Records one hit in every bucket, atomically, in one round trip.
    fn record_hit(&self, hit: Hit) -> Result<(), StoreError>;
    /// Records several hits, each atomically (a backend may write them in one transaction, so
    /// that they count together or not at all); one outcome per hit, in order. A backend that
    /// can send them in one round trip does.
    fn record_hits(&self, hits: Vec<Hit>) -> Vec<Result<(), StoreError>> {
        hits.into_iter().map(|hit| self.record_hit(hit)).collect()
    }
    /// The counts (of `metric`) of one URL in the buckets holding `timestamp_ms`.
    fn url_counts(
        &self,
        url: &str,
        timestamp_ms: i64,
        metric: Metric,
    ) -> Result<UrlCounts, StoreError>;
    /// The counts (of `metric`) of one URL in the `period` buckets starting at `starts`.
    fn series(
        &self,
        url: &str,
        period: Period,
        starts: &[i64],
        metric: Metric,
    ) -> Result<Vec<i64>, StoreError>;
    /// One chunk of every URL's count in the `period` bucket starting at `start` (all-time:
    /// 0), from `cursor` on ([`ScanCursor::START`] first). No chunk is more than a bounded
    /// amount of Redis work, so reading a large bucket never stalls Redis. A URL may come
    /// twice (Redis may return a hash field twice while it resizes the hash).
    fn scan(
        &self,
        period: Period,
        start: i64,
        cursor: ScanCursor,
        metric: Metric,
    ) -> Result<Chunk, StoreError>;
    /// With `--visits`: the visitors of `site` (every site's, summed, when `None`) in the
    /// `period` bucket starting at `start`: one `HGET` (or an `HVALS` of the sites counted).
    fn site_visitors(
        &self,
        period: Period,
        start: i64,
        site: Option<&str>,
    ) -> Result<i64, StoreError>;
    /// The salt of UTC day `day` (`--visits`): `proposed` unless another HitMe made it first,
    /// kept `ttl_secs` (`SET <prefix>:salt:<day> proposed NX EX ttl_secs`, then `GET`).
    fn day_salt(&self, day: i64, proposed: &str, ttl_secs: u64) -> Result<String, StoreError>;
    /// With `--sources`: the sources of `scope` in the `period` bucket (one of
    /// [`sources::SOURCE_PERIODS`]) starting at `start`; nothing without the flag.
    fn sources(
        &self,
        period: Period,
        start: i64,
        scope: SourceScope<'_>,
    ) -> Result<SourceCounts, StoreError>;
    /// Whether Redis answers now.
    fn ping(&self) -> Result<(), StoreError>;
    /// Every count under the prefix (hits and visits), read in chunks (`SCAN` and `HSCAN`,
    /// never `KEYS` or `HGETALL`) and given to `sink` a chunk at a time, each count once.
    /// Buckets that start before `since` are left out; all-time is always in.
    fn export(&self, since: Option<i64>, sink: &mut RowSink<'_>) -> Result<(), StoreError>;
    /// Writes `rows`: each count set (importing twice changes nothing), or with `add` added.
    /// Retention applies as to hits.
    fn import(&self, rows: &[Row], add: bool) -> Result<(), StoreError>;
    /// Removes `url` from every bucket of every period, hits and visits.
    fn delete_url(&self, url: &str) -> Result<Deleted, StoreError>;
    /// With `--rankings`: `limit` URLs from `offset` on of the bucket's kept ranking of hits,
    /// with the bucket's total and number of URLs, in one round trip ([`kept`]). `None`
    /// when no ranking is kept, or the one kept is not to be trusted until it is rebuilt.
    fn kept_page(
        &self,
        _period: Period,
        _start: i64,
        _offset: usize,
        _limit: usize,
    ) -> Result<Option<KeptPage>, StoreError> {
        Ok(None)
    }
    /// With `--rankings`: rebuilds the bucket's kept ranking from a chunked scan, while hits
    /// go on. `false` when another rebuild of it is under way (or none is kept).
    fn rebuild_ranking(&self, _period: Period, _start: i64) -> Result<bool, StoreError> {
        Ok(false)
    }
    /// With `--rankings`: rebuilds the kept ranking of every bucket of hits; how many.
    fn rebuild_rankings(&self) -> Result<usize, StoreError> {
        Ok(0)
    }
    /// What is known to be wrong with Redis without asking it: a server that cannot be
    /// reached (its breaker is open), or writes refused since the last one failed so.
    fn trouble(&self) -> Option<Trouble>;
    /// A small write, to learn whether Redis takes writes again.
    fn probe_write(&self) -> Result<(), StoreError>;
    /// Records each of `settings` (name, value) under `<prefix>:config` unless one is
    /// recorded already, and returns what is recorded now, in order ([`settings`]).
    fn claim_settings(&self, settings: &[(&str, &str)]) -> Result<Vec<String>, StoreError>;
}

/// What is wrong with Redis, as [`HitStore::trouble`] knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Trouble {
    /// A server cannot be reached; requests to it fail at once for now.
    Unreachable(String),
    /// Redis refuses writes (out of memory, read-only, failed snapshot).
    RefusingWrites(String),
}

/// About how many URLs one chunk of [`HitStore::scan`] reads: large enough that a bucket of
/// 100,000 URLs takes 100 round trips, small enough that each is well under a millisecond of
/// Redis's time.
pub(crate) const SCAN_CHUNK: usize = 1000;

/// Where a chunked read of a bucket goes on from; opaque to callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct ScanCursor {
    /// Which part of the bucket (cluster mode: the URL index shard).
    pub(crate) part: u64,
    /// Redis's cursor within it.
    pub(crate) cursor: u64,
}

impl ScanCursor {
    pub(crate) const START: ScanCursor = ScanCursor { part: 0, cursor: 0 };
}

/// One chunk of a bucket's counts, and where the next one starts (`None`: this was the last).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Chunk {
    pub counts: Vec<(String, i64)>,
    pub next: Option<ScanCursor>,
}

/// Where hits are kept, and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Backend {
    /// One Redis (`--redis-url`).
    Standalone {
        redis_url: String,
        /// The certificate authority to trust for TLS, when not the system's roots.
        ca_file: Option<PathBuf>,
        /// Write concurrent hits together (see [`group_commit`]).
        group_commit: bool,
    },
    /// A Redis Cluster (`--redis-cluster`).
    Cluster {
        seeds: Vec<String>,
        /// Replicas that must confirm a hit before it is answered.
        wait_replicas: usize,
    },
}

/// Everything a store is opened with.
#[derive(Debug, Clone)]
pub(crate) struct StoreConfig {
    pub backend: Backend,
    pub pool_size: u32,
    /// Bounds connecting, each command, and waiting for a free pooled connection.
    pub timeout: Duration,
    /// The prefix of every key.
    pub prefix: String,
    pub calendar: Calendar,
    pub retention: Retention,
    /// `--visit-window`, with `--visits`: visits are counted beside hits.
    pub visit_window: Option<Duration>,
    /// With `--rankings`: each bucket's top URLs are kept at write time.
    pub kept: Option<KeptConfig>,
    /// `--max-sources`, with `--sources`: hits' sources are counted beside them.
    pub max_sources: Option<usize>,
}

/// An opened store and a probe of its connection pool, for `/metrics`.
pub(crate) struct Opened {
    pub store: Box<dyn HitStore>,
    pub pool: PoolProbe,
}

/// Opens the configured backend without connecting: HitMe starts while Redis is down and
/// answers 503 until it is up. Failures it counts go to `counters`.
pub(crate) fn open(config: &StoreConfig, counters: StoreCounters) -> Result<Opened, String> {
    let (store, pool): (Box<dyn HitStore>, PoolProbe) = match &config.backend {
        Backend::Standalone {
            redis_url,
            ca_file,
            group_commit,
        } => {
            let (store, pool) = standalone::StandaloneStore::open(
                config,
                redis_url,
                ca_file.as_deref(),
                *group_commit,
                counters,
            )?;
            (Box::new(store), pool)
        }
        Backend::Cluster {
            seeds,
            wait_replicas,
        } => {
            let (store, pool) =
                cluster::ClusterStore::open(config, seeds, *wait_replicas, counters)?;
            (Box::new(store), pool)
        }
    };
    Ok(Opened { store, pool })
}

/// The reply of `HSCAN` or `SSCAN`: the next cursor (0 at the end) and the flat list of
/// elements (field, value, field, value, ... for `HSCAN`).
pub(crate) fn scan_reply(reply: redis::Value) -> redis::RedisResult<(u64, Vec<redis::Value>)> {
    let unexpected = || {
        redis::RedisError::from((
            redis::ErrorKind::UnexpectedReturnType,
            "a SCAN reply is [cursor, [elements]]",
        ))
    };
    let redis::Value::Array(mut parts) = reply.extract_error()? else {
        return Err(unexpected());
    };
    if parts.len() != 2 {
        return Err(unexpected());
    }
    let elements = match parts.pop() {
        Some(redis::Value::Array(elements)) => elements,
        _ => return Err(unexpected()),
    };
    let cursor = redis::from_redis_value_ref(&parts[0])?;
    Ok((cursor, elements))
}

/// A bulk string reply as text, taking its bytes over rather than copying them (a scan
/// converts a thousand at a time).
pub(crate) fn text(value: redis::Value) -> redis::RedisResult<String> {
    Ok(redis::from_redis_value(value)?)
}
