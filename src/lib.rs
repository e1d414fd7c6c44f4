//! HitMe: a Redis-backed HTTP hit counter.
//!
//! A fixed pool of worker threads pulls requests off a `tiny_http` listener; each checks out
//! a pooled Redis connection and counts the hit in time-bucketed hashes in one atomic round trip.

pub mod acceptor;
pub mod assets;
pub mod buckets;
pub mod clock;
pub mod config;
pub mod http;
pub mod listener;
pub mod metrics;
pub mod period;
pub mod server;
pub mod store;
pub mod top;
pub mod zone;

pub use config::Config;
pub use server::run;
