//! The Redis store: the key layout, the connection pool, and the commands behind each endpoint.
//!
//! Layout (interchangeable with the original HitMe): hashes `<prefix>:all` and
//! `<prefix>:<period>:<bucket start ms>`, field = canonical URL, value = hit count.

use std::collections::BTreeMap;
use std::time::Duration;

use redis::io::tcp::TcpSettings;
use redis::{ConnectionLike, IntoConnectionInfo};

use crate::buckets::{bucket_start, Period, WeekStart};
use crate::error::ApiError;

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

    /// The hash of the `period` bucket holding `timestamp_ms`, e.g. `hits:day:1700006400000`.
    pub fn bucket(&self, period: Period, timestamp_ms: i64) -> String {
        self.bucket_at(period, bucket_start(timestamp_ms, period, self.week_start))
    }

    /// The hash of the `period` bucket that starts at `start`.
    pub fn bucket_at(&self, period: Period, start: i64) -> String {
        format!("{}:{}:{}", self.prefix, period.name(), start)
    }

    /// Every hash one hit at `timestamp_ms` increments: all-time first, then month to minute.
    pub fn keys_for(&self, timestamp_ms: i64) -> [String; 6] {
        let [month, week, day, hour, minute] = Period::ALL.map(|p| self.bucket(p, timestamp_ms));
        [self.all_time(), month, week, day, hour, minute]
    }
}

/// Counts for one URL: all-time, then month to minute.
pub type UrlCounts = [i64; 6];

/// Counts for every URL: all-time, then month to minute; URLs sorted.
pub type AllCounts = [BTreeMap<String, i64>; 6];

/// Connection settings for Redis.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub redis_url: String,
    pub pool_size: u32,
    /// Bounds connecting, each command, and waiting for a free pooled connection.
    pub timeout: Duration,
    pub layout: KeyLayout,
}

/// A pool of Redis connections and the commands HitMe runs on them. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: r2d2::Pool<Connector>,
    layout: KeyLayout,
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
            client: redis::Client::open(info).map_err(|e| format!("invalid --redis-url ({e})"))?,
            timeout: config.timeout,
        };
        let pool = r2d2::Pool::builder()
            .max_size(config.pool_size)
            .min_idle(Some(0))
            .connection_timeout(config.timeout)
            .build_unchecked(connector);
        Ok(Store {
            pool,
            layout: config.layout,
        })
    }

    pub fn layout(&self) -> &KeyLayout {
        &self.layout
    }

    fn connection(&self) -> Result<r2d2::PooledConnection<Connector>, ApiError> {
        Ok(self.pool.get()?)
    }

    /// Records one hit in every bucket: one MULTI/EXEC round trip, so a hit counts everywhere
    /// or nowhere.
    pub fn record_hit(&self, url: &str, timestamp_ms: i64) -> Result<(), ApiError> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        for key in self.layout.keys_for(timestamp_ms) {
            pipe.hincr(key, url, 1).ignore();
        }
        let mut conn = self.connection()?;
        pipe.query::<()>(&mut *conn)?;
        Ok(())
    }

    /// The counts of one URL in the buckets holding `timestamp_ms`, in one pipelined round trip.
    pub fn url_counts(&self, url: &str, timestamp_ms: i64) -> Result<UrlCounts, ApiError> {
        let mut pipe = redis::pipe();
        for key in self.layout.keys_for(timestamp_ms) {
            pipe.hget(key, url);
        }
        let mut conn = self.connection()?;
        let counts: Vec<Option<i64>> = pipe.query(&mut *conn)?;
        let mut out = [0; 6];
        for (slot, count) in out.iter_mut().zip(counts) {
            *slot = count.unwrap_or(0);
        }
        Ok(out)
    }

    /// The counts of every URL in the buckets holding `timestamp_ms`, in one pipelined round trip.
    pub fn all_counts(&self, timestamp_ms: i64) -> Result<AllCounts, ApiError> {
        let mut pipe = redis::pipe();
        for key in self.layout.keys_for(timestamp_ms) {
            pipe.hgetall(key);
        }
        let mut conn = self.connection()?;
        let maps: Vec<BTreeMap<String, i64>> = pipe.query(&mut *conn)?;
        let mut out = AllCounts::default();
        for (slot, map) in out.iter_mut().zip(maps) {
            *slot = map;
        }
        Ok(out)
    }

    /// The counts of one URL in the `period` buckets starting at `starts`, in one pipelined round trip.
    pub fn series(&self, url: &str, period: Period, starts: &[i64]) -> Result<Vec<i64>, ApiError> {
        let mut pipe = redis::pipe();
        for start in starts {
            pipe.hget(self.layout.bucket_at(period, *start), url);
        }
        let mut conn = self.connection()?;
        let counts: Vec<Option<i64>> = pipe.query(&mut *conn)?;
        Ok(counts.into_iter().map(|c| c.unwrap_or(0)).collect())
    }

    /// Whether Redis answers a PING now.
    pub fn ping(&self) -> Result<(), ApiError> {
        let mut conn = self.connection()?;
        redis::cmd("PING").query::<()>(&mut *conn)?;
        Ok(())
    }
}

/// Opens Redis connections for the pool with a connect timeout and read/write timeouts, so a
/// dead or frozen Redis turns into a 503 instead of a hung worker.
struct Connector {
    client: redis::Client,
    timeout: Duration,
}

impl r2d2::ManageConnection for Connector {
    type Connection = redis::Connection;
    type Error = redis::RedisError;

    fn connect(&self) -> Result<redis::Connection, redis::RedisError> {
        let conn = self.client.get_connection_with_timeout(self.timeout)?;
        conn.set_read_timeout(Some(self.timeout))?;
        conn.set_write_timeout(Some(self.timeout))?;
        Ok(conn)
    }

    fn is_valid(&self, conn: &mut redis::Connection) -> Result<(), redis::RedisError> {
        redis::cmd("PING").query(conn)
    }

    fn has_broken(&self, conn: &mut redis::Connection) -> bool {
        !conn.is_open()
    }
}

/// The Redis URL with any password removed, fit for logs.
pub fn redact(redis_url: &str) -> String {
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
        assert!(!redact("not a url s3cret").contains("s3cret"));
    }
}
