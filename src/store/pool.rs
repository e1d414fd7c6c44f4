//! Connection pools, for both backends: r2d2 bounded by `--redis-timeout-ms`, the health each
//! pooled connection keeps of itself, and the pool's occupancy for `/metrics`.

use std::time::{Duration, Instant};

use redis::{ErrorKind, RedisError, RedisResult, Value};

use crate::metrics::PoolState;

/// A connection that has been idle this long is checked with a PING before use; busier ones
/// are not, so a hit costs one round trip, and a failure on them drops them anyway.
pub(crate) const CHECK_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// A pool of at most `size` connections that opens none up front (HitMe starts while Redis is
/// down and answers 503 until it is up) and waits at most `timeout` for a free one.
pub(crate) fn build<M: r2d2::ManageConnection>(
    manager: M,
    size: u32,
    timeout: Duration,
) -> r2d2::Pool<M> {
    r2d2::Pool::builder()
        .max_size(size)
        .min_idle(Some(0))
        .connection_timeout(timeout)
        // Failures are logged by the stores, at most once a second; r2d2's own log would
        // repeat each one.
        .error_handler(Box::new(r2d2::NopErrorHandler))
        .build_unchecked(manager)
}

/// What a pooled connection knows of its own state.
#[derive(Debug)]
pub(crate) struct Health {
    /// An error may have left the connection out of step with Redis; the pool drops it.
    pub broken: bool,
    last_ok: Instant,
}

impl Health {
    pub(crate) fn new() -> Health {
        Health {
            broken: false,
            last_ok: Instant::now(),
        }
    }

    /// A command just succeeded.
    pub(crate) fn ok(&mut self) {
        self.last_ok = Instant::now();
    }

    /// Idle long enough to be checked before use.
    pub(crate) fn idle(&self) -> bool {
        self.last_ok.elapsed() >= CHECK_IF_IDLE_FOR
    }

    /// Notes a command's outcome: an error reply (e.g. WRONGTYPE) leaves the protocol in step;
    /// anything else (I/O, timeout, parse) may not, and a late reply must never answer a later
    /// command.
    pub(crate) fn note<T>(&mut self, result: &RedisResult<T>) {
        match result {
            Ok(_) => self.ok(),
            Err(e) if is_error_reply(e) => {}
            Err(_) => self.broken = true,
        }
    }
}

impl Default for Health {
    fn default() -> Self {
        Self::new()
    }
}

/// Whether `err` is an error reply from Redis, after which the connection is still in step.
pub(crate) fn is_error_reply(err: &RedisError) -> bool {
    matches!(err.kind(), ErrorKind::Server(_))
}

/// Reads a pool's occupancy when asked (at each `/metrics` scrape).
pub(crate) type PoolProbe = Box<dyn Fn() -> PoolState + Send + Sync>;

/// A probe of `pool`.
pub(crate) fn probe<M: r2d2::ManageConnection>(pool: &r2d2::Pool<M>) -> PoolProbe {
    let pool = pool.clone();
    Box::new(move || {
        let state = pool.state();
        PoolState {
            connections: state.connections,
            idle: state.idle_connections,
        }
    })
}

/// Sends `packed` commands and reads their replies, keeping those after the first `skip`,
/// and gives up at the first failure: redis-rs's own pipelines wait out the read timeout once
/// per reply, which turns a frozen Redis into a hang of many timeouts. Error replies come back
/// as values, for the caller to check.
pub(crate) fn round_trip(
    redis: &mut redis::Connection,
    packed: &[u8],
    skip: usize,
    keep: usize,
) -> RedisResult<Vec<Value>> {
    redis.send_packed_command(packed)?;
    let mut values = Vec::with_capacity(keep);
    for i in 0..skip + keep {
        let value = redis.recv_response()?;
        if i >= skip {
            values.push(value);
        }
    }
    Ok(values)
}
