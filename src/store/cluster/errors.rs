//! Cluster errors: which ones mean a command did not run (and may be sent again), and what
//! the client is told of the rest.

use redis::{ErrorKind, RedisError, ServerErrorKind};

use crate::store::StoreError;

/// What the client is told of a failed cluster operation. Redirections and slot errors are
/// HitMe's to handle, not the client's: their codes never reach a message.
pub(super) fn store_error(err: RedisError) -> StoreError {
    use ServerErrorKind::*;
    match err.kind() {
        ErrorKind::Server(
            Moved | Ask | TryAgain | ClusterDown | MasterDown | ReadOnly | CrossSlot | BusyLoading,
        ) => reconfiguring(),
        _ if err.is_timeout() => StoreError::Unavailable(
            "a Redis Cluster node did not answer within --redis-timeout-ms; retry later".into(),
        ),
        _ => StoreError::bad_data(&err).unwrap_or_else(|| {
            unavailable(format!(
                "the Redis Cluster is unavailable ({err}); retry later, and check the nodes in --redis-cluster"
            ))
        }),
    }
}

/// No pooled cluster connection in time.
pub(super) fn no_connection(err: r2d2::Error) -> StoreError {
    unavailable(format!(
        "no Redis Cluster connection could be had in time ({err}); retry later, and check the nodes in --redis-cluster"
    ))
}

/// A 503 with `message`, unless it quotes a cluster error code (a connection error can carry
/// one in its text): then the plain "reconfiguring" one.
fn unavailable(message: String) -> StoreError {
    if ["MOVED", "ASK", "CROSSSLOT", "TRYAGAIN", "CLUSTERDOWN"]
        .iter()
        .any(|code| message.contains(code))
    {
        return reconfiguring();
    }
    StoreError::Unavailable(message)
}

fn reconfiguring() -> StoreError {
    StoreError::Unavailable(
        "the Redis Cluster is failing over or moving slots; retry in a few seconds".into(),
    )
}

/// A redirection HitMe does not follow further: still an ASK (a 503 saying the cluster is
/// moving slots), but naming no node, so it is not followed again.
pub(super) fn reconfiguring_error() -> RedisError {
    RedisError::from((
        ErrorKind::Server(ServerErrorKind::Ask),
        "redirected again by the importing node",
    ))
}

/// Whether `err` says the connection's slot map is out of date (a failover or a resharding
/// finished): the command did not run, and a fresh slot map routes it right.
pub(super) fn topology_changed(err: &RedisError) -> bool {
    matches!(
        err.kind(),
        ErrorKind::Server(ServerErrorKind::Moved | ServerErrorKind::ReadOnly)
    )
}

/// Whether `err` says a command did not run and can be sent again: a redirection, or a slot
/// in mid-migration.
pub(super) fn did_not_run(err: &RedisError) -> bool {
    topology_changed(err)
        || ask_target(err).is_some()
        || err.kind() == ErrorKind::Server(ServerErrorKind::TryAgain)
}

/// The node an ASK redirection names.
pub(super) fn ask_target(err: &RedisError) -> Option<(String, u16)> {
    if err.kind() != ErrorKind::Server(ServerErrorKind::Ask) {
        return None;
    }
    let (addr, _slot) = err.redirect_node()?;
    let (host, port) = addr.rsplit_once(':')?;
    Some((host.to_string(), port.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_error_codes_never_reach_clients() {
        for code in [
            "MOVED 3999 127.0.0.1:7001",
            "ASK 3999 127.0.0.1:7001",
            "CROSSSLOT Keys",
            "CLUSTERDOWN The cluster is down",
            "TRYAGAIN x",
        ] {
            let reply = redis::parse_redis_value(format!("-{code}\r\n").as_bytes()).unwrap();
            let err = reply.extract_error().unwrap_err();
            let told = store_error(err);
            assert!(matches!(told, StoreError::Unavailable(_)), "{code}");
            for word in ["MOVED", "ASK", "CROSSSLOT"] {
                assert!(!told.message().contains(word), "{code}: {told}");
            }
        }
    }
}
