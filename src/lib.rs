//! HitMe: a Redis-backed HTTP hit counter.
//!
//! A fixed pool of worker threads pulls requests off a `tiny_http` listener; each checks out
//! a pooled Redis connection and counts the hit in time-bucketed hashes in one atomic round
//! trip. The map:
//!
//! - [`server`]: the workers, batching of hits, and a graceful stop; [`read_pool`], the
//!   threads that answer the reads that scan; [`acceptor`] and [`listener`], the socket.
//! - [`http`]: a request parsed once into a command (one module per endpoint), and answered.
//! - [`store`]: the Redis backends, standalone and cluster, each behind a breaker; [`top`],
//!   rankings shared between `/top` requests; [`visits`], who a visitor is (`--visits`).
//! - [`buckets`], [`zone`], [`period`], [`clock`]: time and its buckets.
//! - [`config`], [`metrics`], [`assets`]: flags, `/metrics`, the dashboard's files.
//!
//! What is `pub` is what the binary, the examples and the integration tests use.

#![deny(unreachable_pub)]

pub mod acceptor;
pub(crate) mod assets;
pub mod buckets;
pub(crate) mod clock;
pub mod config;
pub(crate) mod data;
pub mod http;
pub mod listener;
pub(crate) mod metrics;
pub mod period;
pub(crate) mod read_pool;
pub(crate) mod server;
pub mod store;
pub(crate) mod top;
pub(crate) mod visits;
pub mod zone;

pub use config::Config;
pub use data::run_tool;
pub use server::run;
