//! The store: where hits are kept. [`HitStore`] is what the HTTP edge asks of it; [`open`]
//! picks the backend once, from the configuration: a standalone Redis
//! ([`standalone`], with [`group_commit`]) or a Redis Cluster ([`cluster`]).
//!
//! Pieces both backends use live beside them: the pool and connection health ([`pool`]),
//! retention maths ([`expiry`]), the RESP encoder ([`resp`]) and a log limiter.

pub mod cluster;
mod error;
pub mod expiry;
pub mod group_commit;
pub mod keys;
mod log_limit;
pub mod pool;
pub mod resp;
pub mod standalone;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

pub use self::error::StoreError;
use self::expiry::Retention;
use self::pool::PoolProbe;
use crate::buckets::{Calendar, Period};
use crate::metrics::StoreCounters;
use crate::period::PerPeriod;

/// One hit to record: a canonical URL at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub url: String,
    pub timestamp_ms: i64,
}

/// One URL's count in each period.
pub type UrlCounts = PerPeriod<i64>;

/// Every URL's count in each period, URLs sorted; a URL without hits in a bucket is absent.
pub type AllCounts = PerPeriod<BTreeMap<String, i64>>;

/// What the HTTP edge needs of a place to keep hits.
pub trait HitStore: Send + Sync {
    /// Records one hit in every bucket, atomically, in one round trip.
    fn record_hit(&self, hit: Hit) -> Result<(), StoreError>;
    /// The counts of one URL in the buckets holding `timestamp_ms`.
    fn url_counts(&self, url: &str, timestamp_ms: i64) -> Result<UrlCounts, StoreError>;
    /// The counts of every URL in the buckets holding `timestamp_ms`.
    fn all_counts(&self, timestamp_ms: i64) -> Result<AllCounts, StoreError>;
    /// The counts of one URL in the `period` buckets starting at `starts`.
    fn series(&self, url: &str, period: Period, starts: &[i64]) -> Result<Vec<i64>, StoreError>;
    /// Whether Redis answers now.
    fn ping(&self) -> Result<(), StoreError>;
}

/// Where hits are kept, and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
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
pub struct StoreConfig {
    pub backend: Backend,
    pub pool_size: u32,
    /// Bounds connecting, each command, and waiting for a free pooled connection.
    pub timeout: Duration,
    /// The prefix of every key.
    pub prefix: String,
    pub calendar: Calendar,
    pub retention: Retention,
}

/// An opened store and a probe of its connection pool, for `/metrics`.
pub struct Opened {
    pub store: Box<dyn HitStore>,
    pub pool: PoolProbe,
}

/// Opens the configured backend without connecting: HitMe starts while Redis is down and
/// answers 503 until it is up. Failures it counts go to `counters`.
pub fn open(config: &StoreConfig, counters: StoreCounters) -> Result<Opened, String> {
    let (store, pool): (Box<dyn HitStore>, PoolProbe) = match &config.backend {
        Backend::Standalone {
            redis_url,
            ca_file,
            group_commit,
        } => {
            let (store, pool) = standalone::Store::open(
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
