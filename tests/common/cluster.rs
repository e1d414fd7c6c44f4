//! A local Redis Cluster for tests, started with `scripts/redis-cluster` on free loopback
//! ports and stopped when dropped.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use super::HitMe;

/// What cluster tests hand the harness for a standalone Redis: nothing listens there, and
/// the harness leaves `--redis-url` out in cluster mode, which refuses it.
pub const UNUSED_REDIS_URL: &str = "redis://127.0.0.1:1";

/// A local Redis Cluster (ports `base..base+6`, bus ports `+10000`) started with
/// `scripts/redis-cluster`, stopped and deleted when dropped, even when the test panics.
pub struct Cluster {
    pub base: u16,
    dir: PathBuf,
    started: bool,
}

/// Hands each cluster of this test process its own block of ports.
static NEXT_BASE: AtomicU16 = AtomicU16::new(0);

impl Cluster {
    /// Finds 6 free ports whose bus ports are free too, below the ephemeral range (32768) so
    /// that no test's outgoing connection takes one between the check and the start.
    pub fn reserve() -> Cluster {
        let status = Command::new("redis-server").arg("--version").output();
        assert!(
            status.is_ok_and(|s| s.status.success()),
            "redis-server is missing: the cluster tests need a real Redis; install it with `apt-get install redis-server` or run scripts/test, which does"
        );
        let _ = NEXT_BASE.compare_exchange(
            0,
            12_000 + (std::process::id() % 500) as u16 * 20,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
        for _ in 0..100 {
            let mut base = NEXT_BASE.fetch_add(10, Ordering::SeqCst);
            if base > 22_700 {
                base = 12_000 + base % 10_700;
            }
            let free = (0..6).all(|i| {
                std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok()
                    && std::net::TcpListener::bind(("127.0.0.1", base + i + 10_000)).is_ok()
            });
            if free {
                let dir = std::env::temp_dir()
                    .join(format!("hitme-test-cluster-{}-{base}", std::process::id()));
                let _ = std::fs::remove_dir_all(&dir);
                return Cluster {
                    base,
                    dir,
                    started: false,
                };
            }
        }
        panic!("no block of 6 free loopback ports (and their bus ports) found");
    }

    pub fn start() -> Cluster {
        let mut cluster = Self::reserve();
        cluster.start_reserved();
        cluster
    }

    pub fn script(&self, action: &str) -> std::process::Output {
        Command::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/redis-cluster"
        ))
        .arg(action)
        .arg(self.base.to_string())
        .arg(&self.dir)
        .output()
        .expect("scripts/redis-cluster runs")
    }

    /// Starts the reserved nodes and creates the cluster (the drop guard already exists, so
    /// even a half-started cluster is stopped).
    pub fn start_reserved(&mut self) {
        self.started = true;
        let out = self.script("start");
        assert!(
            out.status.success(),
            "scripts/redis-cluster start failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), self.nodes());
    }

    pub fn ports(&self) -> Vec<u16> {
        (0..6).map(|i| self.base + i).collect()
    }

    /// The `--redis-cluster` value.
    pub fn nodes(&self) -> String {
        let nodes: Vec<String> = self
            .ports()
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        nodes.join(",")
    }

    /// HitMe in cluster mode, with `args` added.
    pub fn hitme(&self, args: &[&str]) -> HitMe {
        let nodes = self.nodes();
        let mut all = vec!["--redis-cluster", nodes.as_str()];
        all.extend_from_slice(args);
        HitMe::start_with(UNUSED_REDIS_URL, &all)
    }

    pub fn node(&self, port: u16) -> redis::Connection {
        redis::Client::open(format!("redis://127.0.0.1:{port}"))
            .unwrap()
            .get_connection_with_timeout(Duration::from_secs(2))
            .unwrap_or_else(|e| panic!("node {port} answers: {e}"))
    }

    /// A node that still answers (the first one may have been killed).
    pub fn any_node(&self) -> redis::Connection {
        for port in self.ports() {
            let conn = redis::Client::open(format!("redis://127.0.0.1:{port}"))
                .unwrap()
                .get_connection_with_timeout(Duration::from_millis(300));
            if let Ok(mut conn) = conn {
                if redis::cmd("PING").query::<String>(&mut conn).is_ok() {
                    return conn;
                }
            }
        }
        panic!("no cluster node answers");
    }

    /// A connection to the cluster as a whole, routed by key.
    pub fn client(&self) -> redis::cluster::ClusterConnection {
        let nodes: Vec<String> = self
            .ports()
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect();
        redis::cluster::ClusterClient::builder(nodes)
            .connection_timeout(Duration::from_secs(2))
            .response_timeout(Duration::from_secs(2))
            .build()
            .unwrap()
            .get_connection()
            .expect("the cluster answers")
    }

    /// Masters and the slot ranges each serves, from CLUSTER SLOTS of a node that answers.
    pub fn masters(&self) -> BTreeMap<u16, Vec<(u16, u16)>> {
        let slots: Vec<redis::Value> = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query(&mut self.any_node())
            .unwrap();
        let mut masters: BTreeMap<u16, Vec<(u16, u16)>> = BTreeMap::new();
        for range in slots {
            let redis::Value::Array(fields) = range else {
                panic!("odd CLUSTER SLOTS entry {range:?}")
            };
            let (start, end): (u16, u16) = (
                redis::from_redis_value(fields[0].clone()).unwrap(),
                redis::from_redis_value(fields[1].clone()).unwrap(),
            );
            let redis::Value::Array(master) = &fields[2] else {
                panic!("odd CLUSTER SLOTS node {fields:?}")
            };
            let port: u16 = redis::from_redis_value(master[1].clone()).unwrap();
            masters.entry(port).or_default().push((start, end));
        }
        masters
    }

    pub fn master_of_slot(&self, slot: u16) -> u16 {
        let masters = self.masters();
        let found = masters
            .iter()
            .find(|(_, ranges)| ranges.iter().any(|(s, e)| (*s..=*e).contains(&slot)));
        *found
            .unwrap_or_else(|| panic!("no master serves slot {slot}"))
            .0
    }

    /// Every key on the masters, sorted.
    pub fn keys(&self) -> Vec<String> {
        let mut keys = Vec::new();
        for port in self.masters().keys() {
            let mut some: Vec<String> = redis::cmd("KEYS")
                .arg("*")
                .query(&mut self.node(*port))
                .unwrap();
            keys.append(&mut some);
        }
        keys.sort();
        keys
    }

    pub fn keyslot(&self, key: &str) -> u16 {
        redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut self.any_node())
            .unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.started {
            let out = self.script("stop");
            if !out.status.success() {
                eprintln!(
                    "scripts/redis-cluster stop failed:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
