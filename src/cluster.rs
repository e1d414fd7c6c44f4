//! Redis Cluster mode (`--redis-cluster`): a key layout where one hit touches one slot.

use crate::buckets::{Period, WeekStart};
use crate::error::ApiError;
use crate::store::{AllCounts, HitStore, PoolState, StoreConfig, UrlCounts};

/// Hits kept in a Redis Cluster.
pub struct ClusterStore {
    week_start: WeekStart,
}

impl ClusterStore {
    pub fn new(config: &StoreConfig, nodes: &[String]) -> Result<ClusterStore, String> {
        let _ = (config, nodes);
        Err("--redis-cluster is not supported by this build yet".into())
    }
}

impl HitStore for ClusterStore {
    fn record_hit(&self, _url: &str, _timestamp_ms: i64) -> Result<(), ApiError> {
        unimplemented!()
    }
    fn url_counts(&self, _url: &str, _timestamp_ms: i64) -> Result<UrlCounts, ApiError> {
        unimplemented!()
    }
    fn all_counts(&self, _timestamp_ms: i64) -> Result<AllCounts, ApiError> {
        unimplemented!()
    }
    fn series(&self, _url: &str, _period: Period, _starts: &[i64]) -> Result<Vec<i64>, ApiError> {
        unimplemented!()
    }
    fn ping(&self) -> Result<(), ApiError> {
        unimplemented!()
    }
    fn errors(&self) -> u64 {
        0
    }
    fn pool_state(&self) -> PoolState {
        PoolState {
            connections: 0,
            idle: 0,
        }
    }
    fn week_start(&self) -> WeekStart {
        self.week_start
    }
}
