//! The standalone backend: a pool of connections to one Redis (`--redis-url`) and the
//! commands behind each endpoint, in the original HitMe's key layout (`super::keys`).

use std::path::Path;
use std::time::Duration;

use redis::io::tcp::TcpSettings;
use redis::{ConnectionLike, IntoConnectionInfo, RedisResult, Value};

mod bulk;
mod kept;
mod sources;

use super::breaker::{self, Breaker, Probe, WriteRefusal};
use super::expiry::{expire_at, Retention};
use super::group_commit::GroupCommit;
use super::kept::{KeptConfig, KeptKeys, KeptPage};
use super::keys::KeyLayout;
use super::log_limit::OncePerSecond;
use super::pool::{self, Health, PoolProbe};
use super::settings;
use super::sources::{SourceCounts, SourceScope};
use super::{
    equal_hits, resp, scan_reply, text, BucketedHit, Chunk, Deleted, Hit, HitStore, Metric, Row,
    RowSink, ScanCursor, StoreConfig, StoreError, Trouble, UrlCounts, SCAN_CHUNK,
};
use crate::metrics::StoreCounters;
use crate::time::clock;
use crate::time::PerPeriod;
use crate::time::{Calendar, Period};

/// A pool of connections to a standalone Redis and the commands HitMe runs on them.
pub(crate) struct StandaloneStore {
    pool: r2d2::Pool<Connector>,
    layout: KeyLayout,
    calendar: Calendar,
    retention: Retention,
    counters: StoreCounters,
    failures_logged: OncePerSecond,
    /// Set with `--group-commit`: concurrent hits share a round trip.
    group: Option<GroupCommit<BucketedHit, Result<(), StoreError>>>,
    breaker: Breaker,
    refusal: WriteRefusal,
    /// With `--visits`: where visits are kept, and for how long a visitor's key lives.
    visits: Option<VisitKeys>,
    /// With `--rankings`: each bucket's top URLs and tally, kept as hits are written.
    kept: Option<KeptRankings>,
    /// With `--sources`: hashes `<prefix>:sources:<period>:<start>` (every site's), with
    /// `:site:<host>` (one site's) and `:url:<url>` (one URL's) after it
    /// ([`super::sources`]), and `--max-sources`.
    sources: Option<(KeyLayout, String)>,
}

/// Rankings kept at write time ([`super::kept`]): their keys and how many URLs each keeps.
struct KeptRankings {
    keys: KeptKeys,
    config: KeptConfig,
}

/// Where visits go in the standalone layout: hashes `<prefix>:visits:all` and
/// `<prefix>:visits:<period>:<start>`, and one key `<prefix>:visitor:<hash>` per (visitor,
/// URL) in the window.
struct VisitKeys {
    layout: KeyLayout,
    visitor_prefix: String,
    /// A site's visitors: hashes `<prefix>:sitevisitors:all` and
    /// `<prefix>:sitevisitors:<period>:<start>` (field: the host), and one key
    /// `<prefix>:sitevisitor:<hash>` per (visitor, site) in the window.
    sites: KeyLayout,
    site_visitor_prefix: String,
    window_secs: String,
}

/// A visit, atomically: the visitor's key for this URL is set (or its window restarted); if
/// it was not there, the URL's visits go up by one in every bucket, each bucket hash given
/// its expiry with its first field. KEYS: the visitor's key, then the visit hashes from
/// all-time to minute; ARGV: the URL, the window in seconds, the `EXPIREAT` of month to
/// minute (0: keep).
pub(crate) const VISIT_SCRIPT: &str = r#"if redis.call('SET', KEYS[1], '1', 'EX', ARGV[2], 'GET') then
  return 0
end
redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
for i = 3, 7 do
  if redis.call('HINCRBY', KEYS[i], ARGV[1], 1) == 1 and ARGV[i] ~= '0' then
    redis.call('EXPIREAT', KEYS[i], ARGV[i])
  end
end
return 1
"#;

impl StandaloneStore {
    /// Builds the pool without connecting: HitMe starts while Redis is down and answers 503
    /// until it is up. Returns the store and a probe of its pool for `/metrics`.
    pub(crate) fn open(
        config: &StoreConfig,
        redis_url: &str,
        ca_file: Option<&Path>,
        group_commit: bool,
        counters: StoreCounters,
    ) -> Result<(StandaloneStore, PoolProbe), String> {
        let info = redis_url
            .into_connection_info()
            .map_err(|e| format!("invalid --redis-url ({e}); expected e.g. redis://127.0.0.1:6379, redis://:password@host:6379/2 or redis+unix:///run/redis.sock"))?;
        let info = info.set_tcp_settings(TcpSettings::default().set_nodelay(true));
        let connector = Connector {
            client: client(info, ca_file)?,
            timeout: config.timeout,
        };
        let pool = pool::build(connector, config.pool_size, config.timeout);
        let probe = pool::probe(&pool);
        let breaker = Breaker::new(
            "Redis".into(),
            "redis".into(),
            Some(counters.breaker_gauge()),
            ping_probe(pool.clone()),
        );
        let store = StandaloneStore {
            pool,
            layout: KeyLayout {
                prefix: config.prefix.clone(),
            },
            calendar: config.calendar.clone(),
            retention: config.retention,
            counters,
            failures_logged: OncePerSecond::default(),
            group: group_commit.then(GroupCommit::default),
            breaker,
            refusal: WriteRefusal::default(),
            visits: config.visit_window.map(|window| VisitKeys {
                layout: KeyLayout {
                    prefix: format!("{}:visits", config.prefix),
                },
                visitor_prefix: format!("{}:visitor:", config.prefix),
                sites: KeyLayout {
                    prefix: format!("{}:sitevisitors", config.prefix),
                },
                site_visitor_prefix: format!("{}:sitevisitor:", config.prefix),
                window_secs: window.as_secs().max(1).to_string(),
            }),
            kept: config.kept.map(|kept| KeptRankings {
                keys: KeptKeys {
                    prefix: config.prefix.clone(),
                },
                config: kept,
            }),
            sources: config.max_sources.map(|max| {
                let layout = KeyLayout {
                    prefix: format!("{}:sources", config.prefix),
                };
                (layout, max.to_string())
            }),
        };
        Ok((store, probe))
    }

    /// Runs `command` on a pooled connection, keeping count of failures.
    fn with_connection<T>(
        &self,
        command: impl FnOnce(&mut Conn) -> RedisResult<T>,
    ) -> Result<T, StoreError> {
        self.attempt(1, false, command)
    }

    /// Runs `command` (`n` commands; `writes`, hits or another write) on a pooled connection
    /// behind the breaker, noting what its outcome says of Redis: reachable or not, taking
    /// writes or refusing them.
    fn attempt<T>(
        &self,
        n: u64,
        writes: bool,
        command: impl FnOnce(&mut Conn) -> RedisResult<T>,
    ) -> Result<T, StoreError> {
        self.breaker.pass()?;
        let (err, unreachable) = match self.pool.get() {
            Ok(mut conn) => match conn.run(command) {
                Ok(value) => {
                    self.breaker.succeeded();
                    if writes {
                        self.refusal.cleared();
                    }
                    return Ok(value);
                }
                Err(e) => {
                    let unreachable = breaker::unreachable(&e);
                    let code = e.code().map(str::to_owned);
                    let err = StoreError::standalone(e);
                    if writes {
                        self.refusal.note(code.as_deref(), err.message());
                    }
                    (err, unreachable)
                }
            },
            Err(e) => (StoreError::standalone_pool(e), true),
        };
        match unreachable {
            true => self.breaker.failed(err.message()),
            // An error reply: Redis is there.
            false => self.breaker.succeeded(),
        }
        self.failed(n, &err);
        Err(err)
    }

    /// Counts `n` failed commands and logs one of them, once a second at most: an outage
    /// fails every request.
    fn failed(&self, n: u64, error: &StoreError) {
        self.counters.redis_failed(n);
        if self.failures_logged.allows() {
            log::warn!("{}", error.message());
        }
    }

    /// Writes hits in one MULTI/EXEC, so they count together or not at all, in one round
    /// trip on one connection; one outcome per hit, in order. Hits for the same URL in the
    /// same buckets are written once, as one `HINCRBY` by their number: a batch of hits on a
    /// popular page costs Redis about what one hit does. A single hit is a batch of one.
    fn commit(&self, hits: &[BucketedHit]) -> Vec<Result<(), StoreError>> {
        let result = self.attempt(hits.len() as u64, true, |conn| {
            self.write_transaction(conn, hits)
        });
        vec![result; hits.len()]
    }

    /// Sends `hits` as one transaction on `conn` and checks its replies.
    fn write_transaction(&self, conn: &mut Conn, hits: &[BucketedHit]) -> RedisResult<()> {
        let mut out = std::mem::take(&mut conn.out);
        out.clear();
        let mut expiry_set = conn.expiry_set;
        let mut kept_expiry_set = conn.kept_expiry_set;
        let commands = self.pack_transaction(&mut out, &mut expiry_set, &mut kept_expiry_set, hits);
        let replies = conn.round_trip(&out, commands + 2);
        conn.out = out;
        check_transaction(&mut replies?.into_iter(), commands)?;
        // Remembered only once the transaction ran: a failed one may have held the only
        // EXPIREAT of its bucket.
        conn.expiry_set = expiry_set;
        conn.kept_expiry_set = kept_expiry_set;
        Ok(())
    }

    /// Writes the transaction of `hits` into `out` and returns how many commands it holds
    /// between MULTI and EXEC. `expiry_set` (the connection's memory of expiring buckets) is
    /// updated for the buckets whose EXPIREAT it includes.
    fn pack_transaction(
        &self,
        out: &mut Vec<u8>,
        expiry_set: &mut PerPeriod<i64>,
        kept_expiry_set: &mut PerPeriod<i64>,
        hits: &[BucketedHit],
    ) -> usize {
        let mut digits = PerPeriod::<itoa::Buffer>::default();
        let mut commands = 0;
        resp::simple(out, &[b"MULTI"]);
        for (hit, times) in equal_hits(hits) {
            let mut digits_of_times = itoa::Buffer::new();
            let times = digits_of_times.format(times);
            for (period, start) in hit.starts.iter() {
                resp::command(out, 4);
                resp::arg(out, &[b"HINCRBY"]);
                resp::arg(out, &self.key_parts(&mut digits, period, *start));
                resp::arg(out, &[hit.url.as_bytes()]);
                resp::arg(out, &[times.as_bytes()]);
                commands += 1;
            }
        }
        // Before the EXPIREATs: a bucket past its retention is deleted by its EXPIREAT, and
        // the ranking script reads the counts the HINCRBYs left.
        if let Some(kept) = &self.kept {
            self.pack_kept_ranks(out, kept, &mut digits, hits);
            commands += 1;
        }
        let now = clock::now_secs();
        for hit in hits {
            for (period, keep) in self.retention.iter() {
                let (Some(keep), start) = (keep, hit.starts[period]) else {
                    continue;
                };
                if expiry_set[period] == start {
                    continue;
                }
                let expire_at = expire_at(&self.calendar, period, start, *keep);
                let mut at = itoa::Buffer::new();
                let at = at.format(expire_at).as_bytes();
                resp::command(out, 3);
                resp::arg(out, &[b"EXPIREAT"]);
                resp::arg(out, &self.key_parts(&mut digits, period, start));
                resp::arg(out, &[at]);
                commands += 1;
                // A bucket already past its retention is deleted at once; a later hit in it
                // must delete it again rather than leave a key that never expires.
                if expire_at > now {
                    expiry_set[period] = start;
                }
            }
        }
        if let Some(kept) = &self.kept {
            commands += self.pack_kept_expiry(out, kept, kept_expiry_set, hits);
        }
        if let Some(visits) = &self.visits {
            commands += self.pack_visits(out, visits, hits, now);
        }
        if let Some((layout, max)) = &self.sources {
            commands += self.pack_sources(out, layout, max, hits, now);
        }
        resp::simple(out, &[b"EXEC"]);
        commands
    }

    /// Writes two [`VISIT_SCRIPT`]s per group of equal hits that names its visitor, one for
    /// the URL's visits and one for its site's visitors; returns how many.
    fn pack_visits(
        &self,
        out: &mut Vec<u8>,
        visits: &VisitKeys,
        hits: &[BucketedHit],
        now: i64,
    ) -> usize {
        let mut written = 0;
        for (hit, _) in equal_hits(hits) {
            let Some(visitor) = hit.visitor else {
                continue;
            };
            let expiries = Period::BUCKETED.map(|period| {
                let at = match self.retention[period] {
                    Some(keep) => expire_at(&self.calendar, period, hit.starts[period], keep),
                    None => 0,
                };
                // A bucket already past its retention is not given a past expiry (which
                // would delete it at once): it simply keeps no visits.
                if at != 0 && at <= now {
                    now + 1
                } else {
                    at
                }
            });
            let page = format!("{}{}", visits.visitor_prefix, visitor.hex());
            let site = format!("{}{}", visits.site_visitor_prefix, visitor.site_hex());
            let host = crate::host::host_of(&hit.url);
            for (marker, layout, field) in [
                (&page, &visits.layout, hit.url.as_str()),
                (&site, &visits.sites, host),
            ] {
                resp::command(out, 3 + 7 + 2 + 5);
                resp::arg(out, &[b"EVAL"]);
                resp::arg(out, &[VISIT_SCRIPT.as_bytes()]);
                resp::arg(out, &[b"7"]);
                resp::arg(out, &[marker.as_bytes()]);
                for (_, key) in layout.keys(&hit.starts).iter() {
                    resp::arg(out, &[key.as_bytes()]);
                }
                resp::arg(out, &[field.as_bytes()]);
                resp::arg(out, &[visits.window_secs.as_bytes()]);
                for at in expiries {
                    resp::arg(out, &[itoa::Buffer::new().format(at).as_bytes()]);
                }
                written += 1;
            }
        }
        written
    }

    /// The standalone layout of `metric`'s hashes.
    fn layout(&self, metric: Metric) -> &KeyLayout {
        match (metric, &self.visits) {
            (Metric::Visits, Some(visits)) => &visits.layout,
            _ => &self.layout,
        }
    }

    /// The key of `period`'s bucket at `start`, formatted into `digits` without allocating.
    fn key_parts<'a>(
        &'a self,
        digits: &'a mut PerPeriod<itoa::Buffer>,
        period: Period,
        start: i64,
    ) -> [&'a [u8]; 5] {
        let start = digits[period].format(start).as_bytes();
        self.layout.parts(period, start)
    }
}

impl HitStore for StandaloneStore {
    /// Records one hit in every bucket: one MULTI/EXEC round trip, so a hit counts everywhere
    /// or nowhere. Buckets with a retention get their expiry in the same transaction, once per
    /// bucket and connection. With group commit, concurrent hits share the transaction.
    fn record_hit(&self, hit: Hit) -> Result<(), StoreError> {
        let hit = BucketedHit::new(hit, &self.calendar);
        match &self.group {
            Some(group) => {
                let bug = || {
                    Err(StoreError::Internal(
                        "committing a batch of hits failed; it has been logged".into(),
                    ))
                };
                group.submit(hit, |hits| self.commit(&hits), bug)
            }
            None => self
                .commit(std::slice::from_ref(&hit))
                .pop()
                .expect("one outcome per hit"),
        }
    }

    /// Records hits a worker took together in one MULTI/EXEC ([`StandaloneStore::commit`]).
    fn record_hits(&self, hits: Vec<Hit>) -> Vec<Result<(), StoreError>> {
        let hits: Vec<BucketedHit> = hits
            .into_iter()
            .map(|hit| BucketedHit::new(hit, &self.calendar))
            .collect();
        self.commit(&hits)
    }

    /// The counts of one URL in the buckets holding `timestamp_ms`, in one pipelined round trip.
    fn url_counts(
        &self,
        url: &str,
        timestamp_ms: i64,
        metric: Metric,
    ) -> Result<UrlCounts, StoreError> {
        let mut pipe = redis::pipe();
        for (_, key) in self
            .layout(metric)
            .keys(&self.calendar.starts(timestamp_ms))
        {
            pipe.hget(key, url);
        }
        let counts: Vec<Option<i64>> = self.with_connection(|conn| conn.pipeline(&pipe))?;
        let mut counts = counts.into_iter();
        Ok(PerPeriod::from_fn(|_| counts.next().flatten().unwrap_or(0)))
    }

    fn site_visitors(
        &self,
        period: Period,
        start: i64,
        site: Option<&str>,
    ) -> Result<i64, StoreError> {
        let Some(visits) = &self.visits else {
            return Ok(0);
        };
        let key = visits.sites.key(period, start);
        self.with_connection(|conn| match site {
            Some(site) => {
                let count: Option<i64> = redis::cmd("HGET")
                    .arg(&key)
                    .arg(site)
                    .query(&mut conn.redis)?;
                Ok(count.unwrap_or(0))
            }
            None => {
                let counts: Vec<i64> = redis::cmd("HVALS").arg(&key).query(&mut conn.redis)?;
                Ok(counts.iter().sum())
            }
        })
    }

    fn sources(
        &self,
        period: Period,
        start: i64,
        scope: SourceScope<'_>,
    ) -> Result<SourceCounts, StoreError> {
        self.read_sources(period, start, scope)
    }

    /// The counts of one URL in the `period` buckets starting at `starts`, in one pipelined round trip.
    fn series(
        &self,
        url: &str,
        period: Period,
        starts: &[i64],
        metric: Metric,
    ) -> Result<Vec<i64>, StoreError> {
        let mut pipe = redis::pipe();
        for start in starts {
            pipe.hget(self.layout(metric).key(period, *start), url);
        }
        let counts: Vec<Option<i64>> = self.with_connection(|conn| conn.pipeline(&pipe))?;
        Ok(counts.into_iter().map(|c| c.unwrap_or(0)).collect())
    }

    /// One `HSCAN ... COUNT 1000` of the bucket's hash.
    fn scan(
        &self,
        period: Period,
        start: i64,
        cursor: ScanCursor,
        metric: Metric,
    ) -> Result<Chunk, StoreError> {
        let scan = redis::cmd("HSCAN")
            .arg(self.layout(metric).key(period, start))
            .arg(cursor.cursor)
            .arg("COUNT")
            .arg(SCAN_CHUNK)
            .to_owned();
        let (next, pairs) = self.with_connection(|conn| {
            let reply: Value = scan.query(&mut conn.redis)?;
            scan_reply(reply)
        })?;
        let mut counts = Vec::with_capacity(pairs.len() / 2);
        let mut pairs = pairs.into_iter();
        while let (Some(url), Some(count)) = (pairs.next(), pairs.next()) {
            let pair = text(url).and_then(|url| Ok((url, redis::from_redis_value_ref(&count)?)));
            counts.push(pair.map_err(StoreError::standalone)?);
        }
        Ok(Chunk {
            counts,
            next: (next != 0).then_some(ScanCursor {
                part: 0,
                cursor: next,
            }),
        })
    }

    /// Whether Redis answers a PING now.
    fn ping(&self) -> Result<(), StoreError> {
        self.with_connection(|conn| redis::cmd("PING").query::<()>(&mut conn.redis))
    }

    fn trouble(&self) -> Option<Trouble> {
        if let Some(why) = self.breaker.open_because() {
            return Some(Trouble::Unreachable(why));
        }
        self.refusal.refused_because().map(Trouble::RefusingWrites)
    }

    /// `SET <prefix>:healthz <now> PX 60000`: a small write that expires by itself.
    fn probe_write(&self) -> Result<(), StoreError> {
        let key = format!("{}:healthz", self.layout.prefix);
        self.attempt(1, true, |conn| {
            redis::cmd("SET")
                .arg(key)
                .arg(clock::now_secs())
                .arg("PX")
                .arg(60_000)
                .query::<()>(&mut conn.redis)
        })
    }

    fn day_salt(&self, day: i64, proposed: &str, ttl_secs: u64) -> Result<String, StoreError> {
        let key = format!("{}:salt:{day}", self.layout.prefix);
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(&key)
            .arg(proposed)
            .arg("NX")
            .arg("EX")
            .arg(ttl_secs)
            .ignore()
            .cmd("GET")
            .arg(&key);
        let (salt,): (String,) = self.attempt(2, true, |conn| pipe.query(&mut conn.redis))?;
        Ok(salt)
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

    fn rebuild_rankings(&self) -> Result<usize, StoreError> {
        let Some(kept) = &self.kept else {
            return Ok(0);
        };
        let mut buckets = Vec::new();
        self.each_bucket(|_, metric, period, start| {
            if metric == Metric::Hits {
                buckets.push((period, start));
            }
            Ok(())
        })?;
        super::kept::rebuild_current(&kept.config, &self.calendar, buckets, |period, start| {
            self.rebuild_kept(kept, period, start)
        })
    }

    /// One pipeline: an `HSETNX` per setting, then an `HMGET` of them all.
    fn claim_settings(&self, settings: &[(&str, &str)]) -> Result<Vec<String>, StoreError> {
        let mut pipe = redis::pipe();
        for command in settings::claim_commands(&settings::key(&self.layout.prefix), settings) {
            pipe.add_command(command);
        }
        self.with_connection(|conn| settings::claimed(pipe.query(&mut conn.redis)?))
    }
}

/// The breaker's probe: a pooled connection, and a `PING` on it.
fn ping_probe(pool: r2d2::Pool<Connector>) -> Probe {
    Box::new(move || {
        let mut conn = pool
            .get()
            .map_err(|e| StoreError::standalone_pool(e).message().to_string())?;
        conn.run(|conn| redis::cmd("PING").query::<()>(&mut conn.redis))
            .map_err(|e| StoreError::standalone(e).message().to_string())
    })
}

/// A Redis client for `info`; a rediss:// URL is checked against `ca_file` when given.
fn client(info: redis::ConnectionInfo, ca_file: Option<&Path>) -> Result<redis::Client, String> {
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

/// A pooled connection and what it knows of the Redis at its other end.
pub(crate) struct Conn {
    redis: redis::Connection,
    health: Health,
    /// Per period, the bucket whose expiry this connection last set, so a hit pays for
    /// EXPIREAT only when its bucket changes.
    expiry_set: PerPeriod<i64>,
    /// The same for the buckets' kept rankings (`--rankings`), which may expire sooner.
    kept_expiry_set: PerPeriod<i64>,
    /// The outgoing command buffer, kept between hits.
    out: Vec<u8>,
}

impl Conn {
    /// Sends `packed` commands and reads `replies` replies ([`pool::round_trip`]).
    fn round_trip(&mut self, packed: &[u8], replies: usize) -> RedisResult<Vec<Value>> {
        pool::round_trip(&mut self.redis, packed, 0, replies)
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
        self.health.note(&result);
        result
    }
}

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
            health: Health::new(),
            expiry_set: PerPeriod::from_fn(|_| i64::MIN),
            kept_expiry_set: PerPeriod::from_fn(|_| i64::MIN),
            out: Vec::with_capacity(512),
        })
    }

    fn is_valid(&self, conn: &mut Conn) -> Result<(), redis::RedisError> {
        if !conn.health.idle() {
            return Ok(());
        }
        conn.run(|conn| redis::cmd("PING").query(&mut conn.redis))
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.health.broken || !conn.redis.is_open()
    }
}
