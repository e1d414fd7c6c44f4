//! Cluster topology: which master serves each slot, and how many working replicas it has,
//! from CLUSTER SLOTS and CLUSTER NODES.

use std::collections::HashMap;

use redis::{ErrorKind, RedisError, RedisResult, Value};

use super::keys::SLOTS;

/// A slot no node serves in `Conn::slots`.
pub(super) const UNASSIGNED: u16 = u16::MAX;

/// Working replicas per master `host:port`, from CLUSTER NODES: replicas not marked failed
/// or suspected of it. (CLUSTER SLOTS cannot tell: it leaves out replicas that have not yet
/// reported any replicated data, as in a cluster that has taken no write yet.)
pub(super) fn working_replicas(nodes: &str) -> HashMap<String, usize> {
    let mut addr_of: HashMap<&str, &str> = HashMap::new();
    let mut count_of: HashMap<&str, usize> = HashMap::new();
    for line in nodes.lines() {
        // <id> <ip:port@cport[,hostname]> <flags> <master id or -> ...
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [id, addr, flags, master, ..] = fields[..] else {
            continue;
        };
        let flags: Vec<&str> = flags.split(',').collect();
        let addr = addr.split(['@', ',']).next().unwrap_or(addr);
        if flags.contains(&"master") {
            addr_of.insert(id, addr);
        } else if flags.contains(&"slave")
            && !flags
                .iter()
                .any(|f| ["fail", "fail?", "handshake", "noaddr"].contains(f))
        {
            *count_of.entry(master).or_default() += 1;
        }
    }
    addr_of
        .into_iter()
        .map(|(id, addr)| (addr.to_string(), count_of.get(id).copied().unwrap_or(0)))
        .collect()
}

/// Which master serves each slot, and how many working replicas each master has.
pub(super) struct SlotMap {
    /// Slot -> node number (arbitrary, but equal for equal masters), `UNASSIGNED` if none.
    pub node_of: Vec<u16>,
    /// Node number -> replicas.
    replicas: Vec<usize>,
}

impl SlotMap {
    pub(super) fn replicas_of(&self, slot: u16) -> usize {
        let node = self.node_of.get(usize::from(slot)).copied();
        node.and_then(|n| self.replicas.get(usize::from(n)))
            .copied()
            .unwrap_or(0)
    }
}

/// The slot map from a CLUSTER SLOTS reply and the working replicas of each master (by
/// `host:port`).
pub(super) fn slot_table(reply: Value, replicas: &HashMap<String, usize>) -> RedisResult<SlotMap> {
    let Value::Array(ranges) = reply else {
        return Err(RedisError::from((
            ErrorKind::UnexpectedReturnType,
            "CLUSTER SLOTS did not return an array",
        )));
    };
    let mut table = vec![UNASSIGNED; SLOTS];
    let mut nodes: Vec<(Vec<u8>, i64)> = Vec::new();
    let mut replica_counts = Vec::new();
    for range in ranges {
        let Value::Array(fields) = range else {
            continue;
        };
        let (Some(Value::Int(start)), Some(Value::Int(end)), Some(Value::Array(master))) =
            (fields.first(), fields.get(1), fields.get(2))
        else {
            continue;
        };
        let host = match master.first() {
            Some(Value::BulkString(host)) => host.clone(),
            _ => Vec::new(),
        };
        let Some(Value::Int(port)) = master.get(1) else {
            continue;
        };
        let node = (host, *port);
        let number = match nodes.iter().position(|n| *n == node) {
            Some(number) => number,
            None => {
                // A master CLUSTER NODES names otherwise (a hostname endpoint): the replicas
                // CLUSTER SLOTS lists after it.
                let addr = format!("{}:{}", String::from_utf8_lossy(&node.0), node.1);
                let listed = fields.len().saturating_sub(3);
                replica_counts.push(replicas.get(&addr).copied().unwrap_or(listed));
                nodes.push(node);
                nodes.len() - 1
            }
        };
        let last = SLOTS as i64 - 1;
        for slot in (*start).clamp(0, last)..=(*end).clamp(0, last) {
            table[slot as usize] = number as u16;
        }
    }
    Ok(SlotMap {
        node_of: table,
        replicas: replica_counts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_table_from_cluster_slots() {
        let node = |port| {
            Value::Array(vec![
                Value::BulkString(b"127.0.0.1".to_vec()),
                Value::Int(port),
                Value::BulkString(b"id".to_vec()),
            ])
        };
        let reply = Value::Array(vec![
            Value::Array(vec![
                Value::Int(0),
                Value::Int(5460),
                node(7000),
                node(7003),
            ]),
            Value::Array(vec![Value::Int(5461), Value::Int(10922), node(7001)]),
            Value::Array(vec![Value::Int(10923), Value::Int(16000), node(7000)]),
        ]);
        // 7000 has a replica in CLUSTER NODES; 7001 is not in it, and CLUSTER SLOTS lists none.
        let replicas = HashMap::from([("127.0.0.1:7000".to_string(), 1)]);
        let map = slot_table(reply, &replicas).unwrap();
        let table = &map.node_of;
        assert_eq!(table[0], table[5460]);
        assert_eq!(table[0], table[10923]);
        assert_ne!(table[0], table[5461]);
        assert_eq!(table[16001], UNASSIGNED);
        assert_eq!(
            [0, 5461, 10923, 16001].map(|slot| map.replicas_of(slot)),
            [1, 0, 1, 0]
        );
    }

    #[test]
    fn working_replicas_from_cluster_nodes() {
        let nodes = "\
a1 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460
b2 127.0.0.1:7001@17001 master - 0 0 2 connected 5461-10922
c3 127.0.0.1:7002@17002,node-c master - 0 0 3 connected 10923-16383 [16000->-a1]
d4 127.0.0.1:7003@17003 slave a1 0 0 1 connected
e5 127.0.0.1:7004@17004 slave,fail b2 0 0 2 disconnected
f6 127.0.0.1:7005@17005 slave,fail? b2 0 0 2 connected
g7 127.0.0.1:7006@17006 slave c3 0 0 3 connected
h8 127.0.0.1:7007@17007 slave c3 0 0 3 connected
";
        assert_eq!(
            working_replicas(nodes),
            HashMap::from([
                ("127.0.0.1:7000".to_string(), 1),
                ("127.0.0.1:7001".to_string(), 0),
                ("127.0.0.1:7002".to_string(), 2),
            ])
        );
    }
}
