//! Connections to single cluster nodes, bounded from their first byte.

use std::time::Duration;

use redis::cluster::Connect;
use redis::{ConnectionLike, IntoConnectionInfo, RedisError, RedisResult, Value};

use crate::store::pool;

/// A connection to one cluster node, bounded by the timeout from the start, and failing at
/// once after its first I/O error.
///
/// redis-rs's own node connections run a handshake PING before their read timeout is set (a
/// frozen node would hang it), and read a pipeline's replies one by one even after the
/// first timed out (one timeout per reply). After an I/O error nothing on this connection
/// can be trusted to be in step, so every later use fails fast and the pool replaces the
/// whole cluster connection.
pub(super) struct NodeConn {
    redis: redis::Connection,
    timeout: Duration,
    failed: bool,
}

impl NodeConn {
    fn usable(&self) -> RedisResult<()> {
        if self.failed {
            return Err(RedisError::from(std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                "an earlier command on this cluster node connection failed",
            )));
        }
        Ok(())
    }

    /// Notes a failure: only transport and protocol errors come back as `Err` here (error
    /// replies are values), and after those the connection is done.
    fn note<T>(&mut self, result: RedisResult<T>) -> RedisResult<T> {
        if result.is_err() {
            self.failed = true;
        }
        result
    }
}

impl Connect for NodeConn {
    fn connect<T>(info: T, timeout: Option<Duration>) -> RedisResult<Self>
    where
        T: IntoConnectionInfo,
    {
        // The cluster client passes its connection timeout, which is --redis-timeout-ms.
        let timeout = timeout.unwrap_or(Duration::from_secs(1));
        let redis = redis::Client::open(info)?.get_connection_with_timeout(timeout)?;
        redis.set_read_timeout(Some(timeout))?;
        redis.set_write_timeout(Some(timeout))?;
        Ok(NodeConn {
            redis,
            timeout,
            failed: false,
        })
    }

    fn send_packed_command(&mut self, cmd: &[u8]) -> RedisResult<()> {
        self.usable()?;
        let result = self.redis.send_packed_command(cmd);
        self.note(result)
    }

    /// `None` (which the cluster client passes when no write timeout was set yet) keeps the
    /// connection's own bound rather than blocking forever.
    fn set_write_timeout(&self, dur: Option<Duration>) -> RedisResult<()> {
        self.redis
            .set_write_timeout(Some(dur.unwrap_or(self.timeout)))
    }

    fn set_read_timeout(&self, dur: Option<Duration>) -> RedisResult<()> {
        self.redis
            .set_read_timeout(Some(dur.unwrap_or(self.timeout)))
    }

    fn recv_response(&mut self) -> RedisResult<Value> {
        self.usable()?;
        let result = self.redis.recv_response();
        self.note(result)
    }
}

impl ConnectionLike for NodeConn {
    fn req_packed_command(&mut self, cmd: &[u8]) -> RedisResult<Value> {
        self.usable()?;
        let result = self.redis.req_packed_command(cmd);
        self.note(result)
    }

    /// Sends the commands and reads their replies, giving up at the first failure instead of
    /// waiting out the read timeout once per remaining reply. Error replies are returned as
    /// values, for the caller to turn into errors.
    fn req_packed_commands(
        &mut self,
        cmd: &[u8],
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        self.usable()?;
        let result = pool::round_trip(&mut self.redis, cmd, offset, count);
        self.note(result)
    }

    fn get_db(&self) -> i64 {
        self.redis.get_db()
    }

    fn check_connection(&mut self) -> bool {
        let ok = !self.failed && self.redis.check_connection();
        self.failed |= !ok;
        ok
    }

    fn is_open(&self) -> bool {
        !self.failed && self.redis.is_open()
    }
}
