//! HitMe: a Redis-backed HTTP hit counter.
//!
//! A fixed pool of worker threads pulls requests off a `tiny_http` listener; each checks out
//! a pooled Redis connection and counts the hit in time-bucketed hashes in one atomic round
//! trip. Data flows one way: flags ([`config`]) → built parts ([`start`]) → serving
//! ([`serve`]) → the HTTP edge ([`http`]) → Redis ([`store`]), with [`time`] below them all.
//! The map:
//!
//! - [`config`]: the flags and the `export`/`import` tools' arguments, checked.
//! - [`start`]: the one place that builds what the server shares ([`http::App`]) and its
//!   socket from the flags; start-up errors.
//! - [`serve`]: the worker threads, the batching of hits, the read pool, the accept loop and
//!   its watchdog, the socket; a graceful stop. Its module doc traces one `POST /hit`.
//! - [`http`]: a request parsed once, without I/O, into a command (one module per endpoint
//!   under `http::cmd`), then applied and answered.
//! - [`store`]: the Redis backends, standalone and cluster, each behind a breaker; an
//!   export's rows.
//! - [`top`]: rankings shared between `/top` requests; [`visits`]: who a visitor is
//!   (`--visits`); [`transfer`]: `hitme export` and `hitme import`.
//! - [`time`]: periods, buckets on UTC and local calendars, the clock.
//! - [`metrics`], [`assets`]: `/metrics`, the dashboard's files.
//!
//! What is `pub` is what the binary, the examples and the integration tests use.

#![deny(unreachable_pub)]

pub(crate) mod assets;
pub mod config;
pub(crate) mod host;
pub mod http;
pub(crate) mod metrics;
pub mod serve;
pub(crate) mod sources;
pub mod start;
pub mod store;
pub mod time;
pub(crate) mod top;
pub mod transfer;
pub(crate) mod visits;

pub use config::Config;
