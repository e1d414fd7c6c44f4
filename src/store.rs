//! The Redis store: the key layout, the connection pool, and the commands behind each endpoint.
//!
//! Layout (interchangeable with the original HitMe): hashes `<prefix>:all` and
//! `<prefix>:<period>:<bucket start ms>`, field = canonical URL, value = hit count.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::io::tcp::TcpSettings;
use redis::{ConnectionLike, IntoConnectionInfo, RedisResult, Value};

use crate::buckets::{bucket_end, bucket_start, Period, WeekStart};
use crate::error::ApiError;
use crate::group_commit::GroupCommit;
use crate::resp;

/// How keys are named: the prefix and the week convention both change which hash a hit lands in.
#[derive(Debug, Clone)]
pub struct KeyLayout {
    pub prefix: String,
    pub week_start: WeekStart,
}

impl KeyLayout {
    /// The all-time hash, e.g. `hits:all`.
    pub fn all_time(&self) -> String {
        format!("{}:all", self.prefix)
    }

    /// The hash of the `period` bucket that starts at `start`, e.g. `hits:day:1700006400000`.
    pub fn bucket_at(&self, period: Period, start: i64) -> String {
        format!("{}:{}:{}", self.prefix, period.name(), start)
    }

    /// The start of each period's bucket holding `timestamp_ms`, month to minute.
    pub fn starts_for(&self, timestamp_ms: i64) -> [i64; 5] {
        Period::ALL.map(|p| bucket_start(timestamp_ms, p, self.week_start))
    }

    /// Every hash one hit at `timestamp_ms` increments: all-time first, then month to minute.
    pub fn keys_for(&self, timestamp_ms: i64) -> [String; 6] {
        let starts = self.starts_for(timestamp_ms);
        let [month, week, day, hour, minute] =
            [0, 1, 2, 3, 4].map(|i| self.bucket_at(Period::ALL[i], starts[i]));
        [self.all_time(), month, week, day, hour, minute]
    }
}

/// How long each period's buckets are kept after they end, month to minute; `None` = forever.
pub type Retention = [Option<Duration>; 5];

/// Counts for one URL: all-time, then month to minute.
pub type UrlCounts = [i64; 6];

/// Counts for every URL: all-time, then month to minute; URLs sorted.
pub type AllCounts = [BTreeMap<String, i64>; 6];

/// Connection settings for Redis.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub redis_url: String,
    /// The certificate authority to trust for TLS, when not the system's roots.
    pub redis_ca_file: Option<std::path::PathBuf>,
    pub pool_size: u32,
    /// Bounds connecting, each command, and waiting for a free pooled connection.
    pub timeout: Duration,
    pub layout: KeyLayout,
    pub retention: Retention,
    /// Write concurrent hits together (see `crate::group_commit`).
    pub group_commit: bool,
    /// Cluster mode: replicas that must confirm a hit before it is answered.
    pub wait_replicas: usize,
}

/// What the HTTP edge needs of a place to keep hits: a standalone Redis (`Store`) or a
/// Redis Cluster (`crate::cluster::ClusterStore`).
pub trait HitStore: Send + Sync {
    /// Records one hit in every bucket, atomically, in one round trip.
    fn record_hit(&self, url: &str, timestamp_ms: i64) -> Result<(), ApiError>;
    /// The counts of one URL in the buckets holding `timestamp_ms`.
    fn url_counts(&self, url: &str, timestamp_ms: i64) -> Result<UrlCounts, ApiError>;
    /// The counts of every URL in the buckets holding `timestamp_ms`.
    fn all_counts(&self, timestamp_ms: i64) -> Result<AllCounts, ApiError>;
    /// The counts of one URL in the `period` buckets starting at `starts`.
    fn series(&self, url: &str, period: Period, starts: &[i64]) -> Result<Vec<i64>, ApiError>;
    /// Whether Redis answers now.
    fn ping(&self) -> Result<(), ApiError>;
    /// Redis commands that failed since startup.
    fn errors(&self) -> u64;
    /// Hits answered before enough replicas confirmed them (cluster mode's `--wait-replicas`).
    fn unconfirmed_hits(&self) -> u64 {
        0
    }
    fn pool_state(&self) -> PoolState;
    fn week_start(&self) -> WeekStart;
}

/// A pool of connections to a standalone Redis and the commands HitMe runs on them.
#[derive(Clone)]
pub struct Store {
    pool: r2d2::Pool<Connector>,
    layout: KeyLayout,
    retention: Retention,
    errors: Arc<AtomicU64>,
    /// The second (since the epoch) of the last failure logged.
    last_failure_logged: Arc<AtomicU64>,
    /// Set with `--group-commit`: concurrent hits share a round trip.
    group: Option<Arc<GroupCommit<QueuedHit, Result<(), ApiError>>>>,
}

/// Pool occupancy, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolState {
    pub connections: u32,
    pub idle: u32,
}

impl PoolState {
    pub fn of<M: r2d2::ManageConnection>(pool: &r2d2::Pool<M>) -> PoolState {
        let state = pool.state();
        PoolState {
            connections: state.connections,
            idle: state.idle_connections,
        }
    }
}

impl Store {
    /// Builds the pool without connecting: HitMe starts while Redis is down and answers 503
    /// until it is up.
    pub fn new(config: StoreConfig) -> Result<Store, String> {
        let info = config
            .redis_url
            .as_str()
            .into_connection_info()
            .map_err(|e| format!("invalid --redis-url ({e}); expected e.g. redis://127.0.0.1:6379, redis://:password@host:6379/2 or redis+unix:///run/redis.sock"))?;
        let info = info.set_tcp_settings(TcpSettings::default().set_nodelay(true));
        let connector = Connector {
            client: client(info, config.redis_ca_file.as_deref())?,
            timeout: config.timeout,
        };
        let pool = r2d2::Pool::builder()
            .max_size(config.pool_size)
            .min_idle(Some(0))
            .connection_timeout(config.timeout)
            // Failures are logged by `with_connection`, at most once a second; r2d2's own
            // log would repeat each one.
            .error_handler(Box::new(r2d2::NopErrorHandler))
            .build_unchecked(connector);
        Ok(Store {
            pool,
            layout: config.layout,
            retention: config.retention,
            errors: Arc::default(),
            last_failure_logged: Arc::default(),
            group: config.group_commit.then(Arc::default),
        })
    }

    /// Runs `command` on a pooled connection, keeping count of failures.
    fn with_connection<T>(
        &self,
        command: impl FnOnce(&mut Conn) -> RedisResult<T>,
    ) -> Result<T, ApiError> {
        let result = match self.pool.get() {
            Ok(mut conn) => conn.run(command).map_err(ApiError::from),
            Err(e) => Err(ApiError::from(e)),
        };
        if let Err(e) = &result {
            self.errors.fetch_add(1, Ordering::Relaxed);
            self.log_failure(e);
        }
        result
    }

    /// Logs a Redis failure, once a second at most: an outage fails every request.
    fn log_failure(&self, error: &ApiError) {
        let now = unix_now_secs() as u64;
        if self.last_failure_logged.swap(now, Ordering::Relaxed) != now {
            log::warn!("{}: {}", error.status, error.message);
        }
    }

    /// Writes a batch of hits, each its own MULTI/EXEC, in one round trip on one connection.
    fn commit_batch(&self, hits: &[QueuedHit]) -> Vec<Result<(), ApiError>> {
        let committed = self.with_connection(|conn| {
            let mut out = std::mem::take(&mut conn.out);
            out.clear();
            let mut expiry_set = conn.expiry_set;
            let commands: Vec<usize> = hits
                .iter()
                .map(|hit| self.pack_hit(&mut out, &mut expiry_set, &hit.url, &hit.starts))
                .collect();
            let replies = conn.round_trip(&out, commands.iter().map(|n| n + 2).sum());
            conn.out = out;
            let mut replies = replies?.into_iter();
            let outcomes: Vec<RedisResult<()>> = commands
                .iter()
                .map(|n| check_transaction(&mut replies, *n))
                .collect();
            // The expiries are remembered only if every transaction ran: one that failed may
            // have held the only EXPIREAT of its bucket.
            if outcomes.iter().all(|o| o.is_ok()) {
                conn.expiry_set = expiry_set;
            }
            // A reply out of step poisons the connection for whatever comes next.
            let out_of_step = |o: &RedisResult<()>| {
                matches!(o, Err(e) if !matches!(e.kind(), redis::ErrorKind::Server(_)))
            };
            conn.broken |= outcomes.iter().any(out_of_step);
            Ok(outcomes)
        });
        match committed {
            Ok(outcomes) => {
                let failed = outcomes.iter().filter(|o| o.is_err()).count() as u64;
                self.errors.fetch_add(failed, Ordering::Relaxed);
                outcomes
                    .into_iter()
                    .map(|o| o.map_err(ApiError::from))
                    .collect()
            }
            Err(e) => hits.iter().map(|_| Err(e.clone())).collect(),
        }
    }

    /// Writes one hit's transaction into `out` and returns how many commands it holds between
    /// MULTI and EXEC. `expiry_set` (the connection's memory of expiring buckets) is updated
    /// for the buckets whose EXPIREAT it includes.
    fn pack_hit(
        &self,
        out: &mut Vec<u8>,
        expiry_set: &mut [i64; 5],
        url: &str,
        starts: &[i64; 5],
    ) -> usize {
        let (prefix, url) = (self.layout.prefix.as_bytes(), url.as_bytes());
        resp::simple(out, &[b"MULTI"]);
        resp::command(out, 4);
        resp::arg(out, &[b"HINCRBY"]);
        resp::arg(out, &[prefix, b":all"]);
        resp::arg(out, &[url]);
        resp::arg(out, &[b"1"]);
        let mut digits: [itoa::Buffer; 5] = std::array::from_fn(|_| itoa::Buffer::new());
        let mut starts_text: [&[u8]; 5] = [b""; 5];
        for ((text, buffer), start) in starts_text.iter_mut().zip(&mut digits).zip(starts) {
            *text = buffer.format(*start).as_bytes();
        }
        for (period, start) in Period::ALL.into_iter().zip(starts_text) {
            resp::command(out, 4);
            resp::arg(out, &[b"HINCRBY"]);
            resp::arg(out, &[prefix, b":", period.name().as_bytes(), b":", start]);
            resp::arg(out, &[url]);
            resp::arg(out, &[b"1"]);
        }
        let mut commands = 6;
        for (i, period) in Period::ALL.into_iter().enumerate() {
            let Some(keep) = self.retention[i] else {
                continue;
            };
            if expiry_set[i] == starts[i] {
                continue;
            }
            let end_ms = bucket_end(starts[i], period, self.layout.week_start);
            let expire_at = end_ms.div_euclid(1000) + keep.as_secs() as i64;
            resp::command(out, 3);
            resp::arg(out, &[b"EXPIREAT"]);
            resp::arg(
                out,
                &[prefix, b":", period.name().as_bytes(), b":", starts_text[i]],
            );
            resp::arg(out, &[itoa::Buffer::new().format(expire_at).as_bytes()]);
            commands += 1;
            // A bucket already past its retention is deleted at once; a later hit in it
            // must delete it again rather than leave a key that never expires.
            if expire_at > unix_now_secs() {
                expiry_set[i] = starts[i];
            }
        }
        resp::simple(out, &[b"EXEC"]);
        commands
    }
}

/// A Redis client for `info`; a rediss:// URL is checked against `ca_file` when given.
fn client(
    info: redis::ConnectionInfo,
    ca_file: Option<&std::path::Path>,
) -> Result<redis::Client, String> {
    // rustls needs a process-wide crypto provider; a second install is a no-op error.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = match ca_file {
        None => redis::Client::open(info),
        Some(path) => {
            let root_cert = std::fs::read(path)
                .map_err(|e| format!("cannot read --redis-ca-file {} ({e})", path.display()))?;
            let certs = redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(root_cert),
            };
            redis::Client::build_with_tls(info, certs)
        }
    };
    client.map_err(|e| format!("invalid --redis-url or --redis-ca-file ({e})"))
}

/// A hit waiting for its group commit.
struct QueuedHit {
    url: String,
    starts: [i64; 5],
}

/// Reads one MULTI/EXEC's replies (always all `commands + 2` of them, so the next
/// transaction's replies stay aligned) and checks each against what the transaction must
/// return, so a miscount shows up as an error (and a dropped connection) rather than as
/// replies answering the wrong commands.
fn check_transaction(
    replies: &mut impl Iterator<Item = Value>,
    commands: usize,
) -> RedisResult<()> {
    let replies: Vec<Value> = replies.take(commands + 2).collect();
    let unexpected = |what: &'static str| {
        redis::RedisError::from((redis::ErrorKind::UnexpectedReturnType, what))
    };
    if replies.len() != commands + 2 {
        return Err(unexpected("fewer replies than commands"));
    }
    let mut replies = replies.into_iter();
    if !matches!(replies.next(), Some(Value::Okay)) {
        return Err(unexpected("MULTI was not answered OK"));
    }
    for _ in 0..commands {
        match replies.next() {
            Some(Value::SimpleString(s)) if s == "QUEUED" => {}
            Some(Value::ServerError(e)) => return Err(e.into()),
            _ => return Err(unexpected("a command was not QUEUED")),
        }
    }
    match replies.next().map(Value::extract_error).transpose()? {
        Some(Value::Array(results)) if results.len() == commands => Ok(()),
        Some(Value::Nil) => Err(unexpected("the transaction was aborted")),
        _ => Err(unexpected("EXEC did not return every result")),
    }
}

fn unix_now_secs() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    since_epoch.as_secs() as i64
}

impl HitStore for Store {
    /// Records one hit in every bucket: one MULTI/EXEC round trip, so a hit counts everywhere
    /// or nowhere. Buckets with a retention get their expiry in the same transaction, once per
    /// bucket and connection. With group commit, concurrent hits share the round trip, each in
    /// a MULTI/EXEC of its own.
    fn record_hit(&self, url: &str, timestamp_ms: i64) -> Result<(), ApiError> {
        let starts = self.layout.starts_for(timestamp_ms);
        if let Some(group) = &self.group {
            let hit = QueuedHit {
                url: url.to_owned(),
                starts,
            };
            let bug = || {
                Err(ApiError::internal(
                    "committing a batch of hits failed; it has been logged",
                ))
            };
            return group.submit(hit, |hits| self.commit_batch(&hits), bug);
        }
        self.with_connection(|conn| {
            let mut out = std::mem::take(&mut conn.out);
            out.clear();
            let mut expiry_set = conn.expiry_set;
            let commands = self.pack_hit(&mut out, &mut expiry_set, url, &starts);
            let replies = conn.round_trip(&out, commands + 2);
            conn.out = out;
            check_transaction(&mut replies?.into_iter(), commands)?;
            conn.expiry_set = expiry_set;
            Ok(())
        })
    }

    /// The counts of one URL in the buckets holding `timestamp_ms`, in one pipelined round trip.
    fn url_counts(&self, url: &str, timestamp_ms: i64) -> Result<UrlCounts, ApiError> {
        let mut pipe = redis::pipe();
        for key in self.layout.keys_for(timestamp_ms) {
            pipe.hget(key, url);
        }
        let counts: Vec<Option<i64>> = self.with_connection(|conn| conn.pipeline(&pipe))?;
        let mut out = [0; 6];
        for (slot, count) in out.iter_mut().zip(counts) {
            *slot = count.unwrap_or(0);
        }
        Ok(out)
    }

    /// The counts of every URL in the buckets holding `timestamp_ms`, in one pipelined round trip.
    fn all_counts(&self, timestamp_ms: i64) -> Result<AllCounts, ApiError> {
        let mut pipe = redis::pipe();
        for key in self.layout.keys_for(timestamp_ms) {
            pipe.hgetall(key);
        }
        let maps: Vec<BTreeMap<String, i64>> = self.with_connection(|conn| conn.pipeline(&pipe))?;
        let mut out = AllCounts::default();
        for (slot, map) in out.iter_mut().zip(maps) {
            *slot = map;
        }
        Ok(out)
    }

    /// The counts of one URL in the `period` buckets starting at `starts`, in one pipelined round trip.
    fn series(&self, url: &str, period: Period, starts: &[i64]) -> Result<Vec<i64>, ApiError> {
        let mut pipe = redis::pipe();
        for start in starts {
            pipe.hget(self.layout.bucket_at(period, *start), url);
        }
        let counts: Vec<Option<i64>> = self.with_connection(|conn| conn.pipeline(&pipe))?;
        Ok(counts.into_iter().map(|c| c.unwrap_or(0)).collect())
    }

    /// Whether Redis answers a PING now.
    fn ping(&self) -> Result<(), ApiError> {
        self.with_connection(|conn| redis::cmd("PING").query::<()>(&mut conn.redis))
    }

    /// Redis commands that failed (connection, timeout or error reply) since startup.
    fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    fn pool_state(&self) -> PoolState {
        PoolState::of(&self.pool)
    }

    fn week_start(&self) -> WeekStart {
        self.layout.week_start
    }
}

/// A pooled connection and what it knows of the Redis at its other end.
pub struct Conn {
    redis: redis::Connection,
    /// An error may have left the connection out of step with Redis; the pool drops it.
    broken: bool,
    last_ok: Instant,
    /// Per period (month to minute), the bucket whose expiry this connection last set, so a
    /// hit pays for EXPIREAT only when its bucket changes.
    expiry_set: [i64; 5],
    /// The outgoing command buffer, kept between hits.
    out: Vec<u8>,
}

impl Conn {
    /// Sends `packed` commands and reads `replies` replies, giving up at the first failure:
    /// redis-rs's own pipelines wait out the read timeout once per reply, which turns a frozen
    /// Redis into a hang of many timeouts.
    fn round_trip(&mut self, packed: &[u8], replies: usize) -> RedisResult<Vec<Value>> {
        self.redis.send_packed_command(packed)?;
        let mut values = Vec::with_capacity(replies);
        for _ in 0..replies {
            values.push(self.redis.recv_response()?);
        }
        Ok(values)
    }

    /// Runs a non-atomic pipeline and converts its replies.
    fn pipeline<T: redis::FromRedisValue>(
        &mut self,
        pipe: &redis::Pipeline,
    ) -> RedisResult<Vec<T>> {
        let values = self.round_trip(&pipe.get_packed_pipeline(), pipe.len())?;
        values
            .into_iter()
            .map(|v| Ok(redis::from_redis_value(v.extract_error()?)?))
            .collect()
    }

    fn run<T>(&mut self, command: impl FnOnce(&mut Conn) -> RedisResult<T>) -> RedisResult<T> {
        let result = command(self);
        match &result {
            Ok(_) => self.last_ok = Instant::now(),
            // An error reply (e.g. WRONGTYPE) leaves the protocol in step; anything else
            // (I/O, timeout, parse) may not, and a late reply must never answer a later command.
            Err(e) if matches!(e.kind(), redis::ErrorKind::Server(_)) => {}
            Err(_) => self.broken = true,
        }
        result
    }
}

/// A connection that has been idle this long is checked with a PING before use; busier ones
/// are not, so a hit costs one round trip, and a failure on them drops them anyway.
const CHECK_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// Opens Redis connections for the pool with a connect timeout and read/write timeouts, so a
/// dead or frozen Redis turns into a 503 instead of a hung worker.
struct Connector {
    client: redis::Client,
    timeout: Duration,
}

impl r2d2::ManageConnection for Connector {
    type Connection = Conn;
    type Error = redis::RedisError;

    fn connect(&self) -> Result<Conn, redis::RedisError> {
        let redis = self.client.get_connection_with_timeout(self.timeout)?;
        redis.set_read_timeout(Some(self.timeout))?;
        redis.set_write_timeout(Some(self.timeout))?;
        Ok(Conn {
            redis,
            broken: false,
            last_ok: Instant::now(),
            expiry_set: [i64::MIN; 5],
            out: Vec::with_capacity(512),
        })
    }

    fn is_valid(&self, conn: &mut Conn) -> Result<(), redis::RedisError> {
        if conn.last_ok.elapsed() < CHECK_IF_IDLE_FOR {
            return Ok(());
        }
        conn.run(|conn| redis::cmd("PING").query(&mut conn.redis))
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.broken || !conn.redis.is_open()
    }
}

/// The Redis URL with any password removed, fit for logs; a bare `host:port` is kept.
pub fn redact(redis_url: &str) -> String {
    if !redis_url.contains("://") && !redis_url.contains('@') {
        return redis_url.to_string();
    }
    match url::Url::parse(redis_url) {
        Ok(mut url) => {
            if url.password().is_some() {
                let _ = url.set_password(Some("***"));
            }
            url.into()
        }
        Err(_) => "<unparseable redis url>".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_layout_matches_the_original() {
        let layout = KeyLayout {
            prefix: "hits".into(),
            week_start: WeekStart::Monday,
        };
        assert_eq!(
            layout.keys_for(1_700_010_123_456),
            [
                "hits:all",
                "hits:month:1698796800000",
                "hits:week:1699833600000",
                "hits:day:1700006400000",
                "hits:hour:1700010000000",
                "hits:minute:1700010120000",
            ]
        );
    }

    #[test]
    fn passwords_never_reach_logs() {
        assert_eq!(
            redact("redis://:s3cret@127.0.0.1:6380/2"),
            "redis://:***@127.0.0.1:6380/2"
        );
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert!(!redact("not a url :s3cret@x").contains("s3cret"));
        assert_eq!(redact("127.0.0.1:7000"), "127.0.0.1:7000");
    }
}
