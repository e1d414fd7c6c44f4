//! Connections to single cluster nodes, bounded from their first byte, each node behind a
//! breaker of its own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use prometheus::IntGaugeVec;
use redis::cluster::Connect;
use redis::{ConnectionInfo, ConnectionLike, IntoConnectionInfo, RedisError, RedisResult, Value};

use crate::store::breaker::{self, Breaker};
use crate::store::pool;

/// The nodes' breakers, by address, shared by every cluster connection of the process (which
/// talks to one cluster): redis-rs makes node connections through [`Connect::connect`], which
/// is given only the node's address.
pub(super) struct NodeBreakers {
    gauge: OnceLock<IntGaugeVec>,
    nodes: Mutex<HashMap<String, Arc<Breaker>>>,
}

pub(super) fn node_breakers() -> &'static NodeBreakers {
    static BREAKERS: OnceLock<NodeBreakers> = OnceLock::new();
    BREAKERS.get_or_init(|| NodeBreakers {
        gauge: OnceLock::new(),
        nodes: Mutex::default(),
    })
}

impl NodeBreakers {
    /// Shows the breakers in `gauge`, by node.
    pub(super) fn show_in(&self, gauge: IntGaugeVec) {
        let _ = self.gauge.set(gauge);
    }

    /// The breaker of the node at `info`, probed (while open) with a connection and a PING
    /// bounded by `timeout`.
    fn of(&self, node: &str, info: &ConnectionInfo, timeout: Duration) -> Arc<Breaker> {
        let mut nodes = self.nodes.lock().unwrap_or_else(|e| e.into_inner());
        nodes
            .entry(node.to_string())
            .or_insert_with(|| {
                let (info, name) = (info.clone(), node.to_string());
                let probe = Box::new(move || {
                    ping(&info, timeout)
                        .map_err(|e| format!("Redis node {name} cannot be reached ({e})"))
                });
                Arc::new(Breaker::new(
                    format!("Redis node {node}"),
                    node.to_string(),
                    self.gauge.get().cloned(),
                    probe,
                ))
            })
            .clone()
    }
}

/// A connection to the node at `info` and a PING, each bounded by `timeout`.
fn ping(info: &ConnectionInfo, timeout: Duration) -> RedisResult<()> {
    let mut redis = redis::Client::open(info.clone())?.get_connection_with_timeout(timeout)?;
    redis.set_read_timeout(Some(timeout))?;
    redis.set_write_timeout(Some(timeout))?;
    redis::cmd("PING").query(&mut redis)
}

/// The error of a request to a node whose breaker is open.
fn unreachable_node(why: &str) -> RedisError {
    RedisError::from(std::io::Error::new(
        std::io::ErrorKind::ConnectionRefused,
        why.to_string(),
    ))
}

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
    breaker: Arc<Breaker>,
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
        match &result {
            Ok(_) => self.breaker.succeeded(),
            Err(e) => {
                self.failed = true;
                if breaker::unreachable(e) {
                    self.breaker.failed(&e.to_string());
                }
            }
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
        let info = info.into_connection_info()?;
        let node = info.addr().to_string();
        let breaker = node_breakers().of(&node, &info, timeout);
        breaker.pass().map_err(|e| unreachable_node(e.message()))?;
        let connected = redis::Client::open(info)
            .and_then(|client| client.get_connection_with_timeout(timeout))
            .and_then(|redis| {
                redis.set_read_timeout(Some(timeout))?;
                redis.set_write_timeout(Some(timeout))?;
                Ok(redis)
            });
        let redis = match connected {
            Ok(redis) => redis,
            Err(e) => {
                if breaker::unreachable(&e) {
                    breaker.failed(&format!("Redis node {node} cannot be reached ({e})"));
                }
                return Err(e);
            }
        };
        breaker.succeeded();
        Ok(NodeConn {
            redis,
            timeout,
            failed: false,
            breaker,
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
