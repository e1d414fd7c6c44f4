//! Cluster connections: the pool's connector, and each pooled connection's routing of
//! commands: redirects followed, reads grouped per node, writes confirmed by replicas.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::cluster::{ClusterClient, ClusterConnection};
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::io::tcp::TcpSettings;
use redis::{
    Cmd, ConnectionLike, ErrorKind, IntoConnectionInfo, RedisError, RedisResult, ServerErrorKind,
    Value,
};

use super::errors::{ask_target, did_not_run, reconfiguring_error, topology_changed};
use super::node::NodeConn;
use super::topology::{slot_table, working_replicas, SlotMap, UNASSIGNED};
use crate::store::pool::{self, Health};

/// How many replicas a write waited for, and how many confirmed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Replication {
    pub asked: usize,
    pub confirmed: usize,
}

/// A pooled cluster connection: a connection per node and a slot map (redis-rs's), plus what
/// HitMe knows of it.
pub(super) struct Conn {
    pub cluster: ClusterConnection<NodeConn>,
    /// `broken`: an error may have left a node connection or the slot map stale.
    health: Health,
    /// A node could not be reached: it may be dead, hung, or replaced by a failover, which
    /// only a new slot map tells. Set by an I/O error; acted on at the next checkout.
    pub refresh: bool,
    /// When the slot map was last read, to read it at most once per `REFRESH_EVERY`.
    mapped_at: Instant,
    /// From CLUSTER SLOTS and NODES: which node serves a slot, to group `/hits`'s reads by
    /// node, and how many working replicas it has, to know what a hit can wait for. Fetched
    /// when first needed and dropped when the topology changes.
    slots: Option<SlotMap>,
}

/// How long to wait before retrying a command the cluster answered TRYAGAIN (a slot in
/// mid-migration); retries stop at the timeout.
const TRY_AGAIN_AFTER: Duration = Duration::from_millis(50);

impl Conn {
    pub(super) fn run<T>(
        &mut self,
        command: impl FnOnce(&mut Conn) -> RedisResult<T>,
    ) -> RedisResult<T> {
        let result = command(self);
        match &result {
            Ok(_) => self.health.ok(),
            // A redirection left after HitMe's one retry means the slot map is still wrong.
            Err(e) if topology_changed(e) || ask_target(e).is_some() => self.health.broken = true,
            // Other error replies (CLUSTERDOWN during a failover, WRONGTYPE) leave the
            // connection in step with the cluster.
            Err(e) if pool::is_error_reply(e) => {}
            // An I/O error either came from a node connection, which then failed for good and
            // makes the whole connection `!is_open()` (the pool drops it), or from connecting
            // to a node, which left nothing behind: the connection still serves the other
            // nodes, and reads the slot map afresh at its next checkout (a failover may have
            // replaced the node). Keeping it matters when a node hangs: a new connection costs
            // a timeout per hung node, and dropping every connection that tried would starve
            // the pool and fail requests for the healthy nodes too.
            Err(e) if e.kind() == ErrorKind::Io => self.refresh = true,
            // Parse errors, an empty or unreadable slot map: start afresh.
            Err(_) => self.health.broken = true,
        }
        result
    }

    /// Replaces the cluster connection with a new one, which reads the slot map afresh.
    fn rebuild(&mut self, connector: &Connector) -> RedisResult<()> {
        self.mapped_at = Instant::now();
        self.cluster = connector.open()?;
        self.slots = None;
        self.refresh = false;
        Ok(())
    }

    /// Runs one command routed by its first key. Every error handled here means the command
    /// did not run, so sending it again cannot count a hit twice:
    /// - MOVED (or READONLY): the slot map is out of date; rebuild it and retry, once;
    /// - ASK: the slot is being migrated and the key is on the importing node; send `ASKING`
    ///   and the command there, once per answer from the slot's owner;
    /// - TRYAGAIN: a multi-key command (the hit script) met a slot in mid-migration; wait a
    ///   little and retry until the timeout, after which it is a 503.
    pub(super) fn command(&mut self, connector: &Connector, cmd: &Cmd) -> RedisResult<Value> {
        let deadline = Instant::now() + connector.timeout;
        let mut rebuilt = false;
        let mut asking: Option<(String, u16)> = None;
        loop {
            let result = match asking.take() {
                None => self.cluster.req_command(cmd),
                Some((host, port)) => {
                    let node =
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress { host, port });
                    // ASKING lets the importing node serve the next command on this connection.
                    self.cluster
                        .route_command(&redis::cmd("ASKING"), node.clone())
                        .and_then(|_| self.cluster.route_command(cmd, node))
                        // A second redirection from the importing node is not followed.
                        .map_err(|e| match ask_target(&e) {
                            Some(_) => reconfiguring_error(),
                            None => e,
                        })
                }
            };
            let err = match result {
                Ok(value) => return Ok(value),
                Err(err) => err,
            };
            if topology_changed(&err) && !rebuilt {
                log::debug!("cluster topology changed ({err}); reading the slot map afresh");
                self.rebuild(connector)?;
                rebuilt = true;
            } else if let Some(node) = ask_target(&err) {
                log::debug!("slot in migration ({err}); asking {}:{}", node.0, node.1);
                asking = Some(node);
            } else if err.kind() == ErrorKind::Server(ServerErrorKind::TryAgain)
                && Instant::now() + TRY_AGAIN_AFTER < deadline
            {
                std::thread::sleep(TRY_AGAIN_AFTER);
            } else {
                return Err(err);
            }
        }
    }

    /// Runs read commands, each given with its key's slot, in one request per node: with
    /// `one_slot` they all go to the node of the first key; otherwise they are grouped by the
    /// node serving their slot (from CLUSTER SLOTS), and each group is sent as one batch, which
    /// the cluster connection routes by its first key. Replies come back in order.
    ///
    /// If the topology changed under it (MOVED), the slot maps are rebuilt and the whole read
    /// is retried once. During a slot migration (ASK) a batch cannot tell which of its keys
    /// have moved, so the reads are sent one by one, each following its own redirection.
    pub(super) fn read(
        &mut self,
        connector: &Connector,
        commands: &[(u16, Cmd)],
        one_slot: bool,
    ) -> RedisResult<Vec<Value>> {
        let result = match self.read_once(commands, one_slot) {
            Err(e) if topology_changed(&e) => {
                self.rebuild(connector)?;
                self.read_once(commands, one_slot)
            }
            result => result,
        };
        match result {
            Err(e) if ask_target(&e).is_some() => commands
                .iter()
                .map(|(_, cmd)| self.command(connector, cmd))
                .collect(),
            result => result,
        }
    }

    fn read_once(&mut self, commands: &[(u16, Cmd)], one_slot: bool) -> RedisResult<Vec<Value>> {
        if one_slot {
            return self.send_batch(commands.iter().map(|(_, cmd)| cmd));
        }
        let slots = self.slot_map(None)?;
        let mut groups: HashMap<u16, Vec<usize>> = HashMap::new();
        for (i, (slot, _)) in commands.iter().enumerate() {
            let node = slots
                .node_of
                .get(usize::from(*slot))
                .copied()
                .unwrap_or(UNASSIGNED);
            groups.entry(node).or_default().push(i);
        }
        let mut out = vec![Value::Nil; commands.len()];
        for members in groups.into_values() {
            let values = self.send_batch(members.iter().map(|i| &commands[*i].1))?;
            for (i, value) in members.into_iter().zip(values) {
                out[i] = value;
            }
        }
        Ok(out)
    }

    /// The slot map, read if need be from the master of `near` (a node the caller is about to
    /// use anyway, so a hung node elsewhere cannot hold it up) or else from any node.
    fn slot_map(&mut self, near: Option<u16>) -> RedisResult<&SlotMap> {
        if self.slots.is_none() {
            let node = match near {
                Some(slot) => {
                    SingleNodeRoutingInfo::SpecificNode(Route::new(slot, SlotAddr::Master))
                }
                None => SingleNodeRoutingInfo::Random,
            };
            // Both from one node, so that they tell of the same topology.
            let mut ask = |what: &str| {
                let cmd = redis::cmd("CLUSTER").arg(what).to_owned();
                self.cluster
                    .route_command(&cmd, RoutingInfo::SingleNode(node.clone()))
            };
            let slots = ask("SLOTS")?;
            let nodes: String = redis::from_redis_value(ask("NODES")?)?;
            self.slots = Some(slot_table(slots, &working_replicas(&nodes))?);
        }
        Ok(self.slots.as_ref().expect("just filled"))
    }

    /// Runs a write routed by its first key, in `slot`, and has up to `want` of its master's
    /// replicas confirm it (`WAIT`, bounded by `wait_for`). Returns the write's reply and how
    /// many replicas were asked for and confirmed it.
    ///
    /// The write and the `WAIT` go out together (one round trip). If the write was redirected
    /// or met a migrating slot, it did not run, and goes the way of `command` (which follows
    /// the redirection); the `WAIT` then follows on the slot's master. (During a migration a
    /// write that went to the importing node is not covered by that `WAIT`, which counts the
    /// writes of its own connection only.) NOSCRIPT is returned for the caller to send the
    /// script itself.
    pub(super) fn replicated(
        &mut self,
        connector: &Connector,
        cmd: &Cmd,
        slot: u16,
        want: usize,
        wait_for: Duration,
    ) -> RedisResult<(Value, Replication)> {
        let asked = if want == 0 {
            0
        } else {
            want.min(self.slot_map(Some(slot))?.replicas_of(slot))
        };
        if asked == 0 {
            let reply = self.command(connector, cmd)?;
            return Ok((
                reply,
                Replication {
                    asked,
                    confirmed: 0,
                },
            ));
        }
        let wait = redis::cmd("WAIT")
            .arg(asked)
            .arg(wait_for.as_millis().max(1) as u64)
            .to_owned();
        let (reply, confirmed) = match self.send_batch([cmd, &wait].into_iter()) {
            Ok(mut values) => {
                let confirmed = values.pop().expect("two replies");
                (values.pop().expect("two replies"), confirmed)
            }
            Err(e) if did_not_run(&e) => {
                let reply = self.command(connector, cmd)?;
                let master = Route::new(slot, SlotAddr::Master);
                let confirmed = self.cluster.route_command(
                    &wait,
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(master)),
                )?;
                (reply, confirmed)
            }
            Err(e) => return Err(e),
        };
        let confirmed = redis::from_redis_value::<usize>(confirmed)?;
        Ok((reply, Replication { asked, confirmed }))
    }

    /// Sends `commands` as one batch to the node of the first one's key and reads every reply.
    fn send_batch<'a>(
        &mut self,
        commands: impl Iterator<Item = &'a Cmd>,
    ) -> RedisResult<Vec<Value>> {
        let mut packed = Vec::with_capacity(256);
        let mut count = 0;
        for cmd in commands {
            cmd.write_packed_command(&mut packed);
            count += 1;
        }
        let values = self.cluster.req_packed_commands(&packed, 0, count)?;
        if values.len() != count {
            return Err(RedisError::from((
                ErrorKind::UnexpectedReturnType,
                "a pipeline did not return every reply",
            )));
        }
        Ok(values)
    }
}

/// Opens cluster connections for the pool.
pub(super) struct Connector {
    client: ClusterClient,
    timeout: Duration,
}

impl Connector {
    /// A connector to the cluster that `seeds` (`--redis-cluster`) belong to.
    pub(super) fn new(seeds: &[String], timeout: Duration) -> Result<Connector, String> {
        let client = ClusterClient::builder(seed_urls(seeds)?)
            // Never let redis-rs resend a command on its own: see the module documentation.
            .retries(0)
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .tcp_settings(TcpSettings::default().set_nodelay(true))
            .build()
            .map_err(|e| format!("invalid --redis-cluster ({e})"))?;
        Ok(Connector { client, timeout })
    }

    fn open(&self) -> RedisResult<ClusterConnection<NodeConn>> {
        // `get_generic_connection` is redis-rs's (hidden but public) way to choose the node
        // connection type; `NodeConn` keeps every node connection bounded from its first byte.
        let cluster = self.client.get_generic_connection::<NodeConn>()?;
        cluster.set_read_timeout(Some(self.timeout))?;
        cluster.set_write_timeout(Some(self.timeout))?;
        Ok(cluster)
    }
}

/// The pool's handle on the connector, shared with the store for rebuilding in place.
pub(super) struct SharedConnector(pub Arc<Connector>);

/// A connection that could not reach a node reads the slot map again at most this often: soon
/// enough to follow a failover (which takes seconds), rarely enough that a hung node (which
/// costs a timeout per new slot map) does not slow every request.
const REFRESH_EVERY: Duration = Duration::from_millis(500);

impl r2d2::ManageConnection for SharedConnector {
    type Connection = Conn;
    type Error = RedisError;

    fn connect(&self) -> Result<Conn, RedisError> {
        Ok(Conn {
            cluster: self.0.open()?,
            health: Health::new(),
            refresh: false,
            mapped_at: Instant::now(),
            slots: None,
        })
    }

    fn is_valid(&self, conn: &mut Conn) -> Result<(), RedisError> {
        if conn.refresh && conn.mapped_at.elapsed() >= REFRESH_EVERY {
            // A node was unreachable: learn whether a failover replaced it. On failure the
            // pool drops this connection and opens another.
            conn.rebuild(&self.0)?;
            conn.health.ok();
            return Ok(());
        }
        // A connection idle for a while is checked (a PING to each node it holds).
        if !conn.health.idle() {
            return Ok(());
        }
        if conn.cluster.check_connection() {
            conn.health.ok();
            Ok(())
        } else {
            Err(RedisError::from((
                ErrorKind::Io,
                "a cluster node did not answer PING",
            )))
        }
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.health.broken || !conn.cluster.is_open()
    }
}

/// `--redis-cluster` entries as redis URLs: `host:port` gets `redis://`.
fn seed_urls(nodes: &[String]) -> Result<Vec<String>, String> {
    const EXAMPLE: &str = "e.g. --redis-cluster 127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002";
    if nodes.is_empty() {
        return Err(format!(
            "--redis-cluster needs at least one node, {EXAMPLE}"
        ));
    }
    nodes
        .iter()
        .map(|node| {
            let node = node.trim();
            if node.is_empty() {
                return Err(format!("--redis-cluster has an empty entry; {EXAMPLE}"));
            }
            let url = if node.contains("://") {
                node.to_string()
            } else {
                format!("redis://{node}")
            };
            let info = url
                .as_str()
                .into_connection_info()
                .map_err(|e| format!("invalid --redis-cluster node {node:?} ({e}); {EXAMPLE}"))?;
            match info.addr() {
                redis::ConnectionAddr::Tcp(..) => {}
                redis::ConnectionAddr::Unix(..) => {
                    return Err(format!(
                        "invalid --redis-cluster node {node:?}: cluster nodes are reached over TCP (host:port); {EXAMPLE}"
                    ))
                }
                _ => {
                    return Err(format!(
                        "invalid --redis-cluster node {node:?}: TLS (rediss://) is not supported with --redis-cluster; {EXAMPLE}"
                    ))
                }
            }
            Ok(url)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_accept_host_port_and_urls() {
        assert_eq!(
            seed_urls(&["127.0.0.1:7000".into(), "redis://10.0.0.2:7001".into()]).unwrap(),
            ["redis://127.0.0.1:7000", "redis://10.0.0.2:7001"]
        );
        assert!(seed_urls(&[]).is_err());
        assert!(seed_urls(&["127.0.0.1:7000".into(), " ".into()]).is_err());
        assert!(seed_urls(&["redis+unix:///tmp/r.sock".into()]).is_err());
        assert!(seed_urls(&["rediss://127.0.0.1:7000".into()]).is_err());
    }
}
