//! `--redis-cluster` against a real 3-master, 3-replica Redis Cluster started by
//! `scripts/redis-cluster` (each test its own, on free loopback ports), exact values read
//! back, the key layout checked slot by slot and command by command, the URL index repairing
//! itself, many clients at once, a slot resharded, a master frozen, and a master killed
//! under load. The API itself runs against a cluster in the shared suite, `tests/api.rs`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::cluster::{Cluster, UNUSED_REDIS_URL};
use common::{encode, now_ms, request, wait_until, HitMe};
use hitme::store::cluster::keys::{index_shard, slot_of_tag, url_tag, ClusterKeys};
use hitme::time::{Calendar, Period, WeekStart};
use serde_json::json;

/// 2023-11-15T01:02:03.456Z, a Wednesday.
const T: i64 = 1_700_010_123_456;
/// The last millisecond of 2023 (a Sunday) and the first of 2024 (a Monday).
const END_2023: i64 = 1_704_067_199_999;
const START_2024: i64 = 1_704_067_200_000;

/// Words of the cluster protocol that must never reach a client.
const CLUSTER_WORDS: [&str; 3] = ["CROSSSLOT", "MOVED", "ASK"];

fn counts(hitme: &HitMe, url: &str, ts: i64) -> serde_json::Value {
    let resp = hitme.get(&format!("/hit?url={}&timestamp={ts}", encode(url)));
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.json()
}

fn expected(url: &str, c: [i64; 6]) -> serde_json::Value {
    json!({"status": "OK", "url": url, "all_time": c[0], "last_month": c[1], "last_week": c[2],
           "last_day": c[3], "last_hour": c[4], "last_minute": c[5]})
}

fn hget(conn: &mut impl redis::ConnectionLike, key: &str, field: &str) -> Option<i64> {
    redis::cmd("HGET").arg(key).arg(field).query(conn).unwrap()
}

/// GET `target` until it answers 200 (a pooled connection that still knew the dead master
/// answers one 503 before it is replaced).
fn get_ok(hitme: &HitMe, target: &str) -> serde_json::Value {
    for _ in 0..20 {
        let resp = hitme.get(target);
        if resp.status == 200 {
            return resp.json();
        }
        assert_eq!(resp.status, 503, "{target}: {}", resp.text());
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{target} kept answering 503");
}

/// The API's answers in cluster mode are checked by the shared suite (`tests/api.rs` runs
/// every HTTP test against a cluster too); here, what only the cluster layout shows: bucket
/// keys under the URL's hash tag, and bad input writing no key at all.
#[test]
fn buckets_sit_under_the_urls_tag_and_bad_input_writes_no_key() {
    let cluster = Cluster::start();
    let hitme = cluster.hitme(&[]);
    let url = "http://a.example/";
    for ts in [
        END_2023,
        START_2024,
        START_2024 + 59_999,
        START_2024 + 60_000,
    ] {
        hitme.hit(url, ts);
    }
    let mut client = cluster.client();
    let tag = url_tag(url);
    let week = |start: i64| format!("hits:{{{tag}}}:week:{start}");
    assert_eq!(hget(&mut client, &week(1_703_462_400_000), url), Some(1)); // Monday 2023-12-25
    assert_eq!(hget(&mut client, &week(1_704_067_200_000), url), Some(3)); // Monday 2024-01-01
    assert_eq!(
        hget(&mut client, &format!("hits:{{{tag}}}:all"), url),
        Some(4)
    );

    let before = cluster.keys();
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let json_ct = [("Content-Type", "application/json")];
    for (method, target, headers, body) in [
        ("POST", "/hit", &form[..], "timestamp=5"),
        ("POST", "/hit", &form[..], "url=www.olark.com"),
        (
            "POST",
            "/hit",
            &form[..],
            "url=http%3A%2F%2Fx.org%2F&timestamp=-1",
        ),
        ("POST", "/hit", &json_ct[..], "[1,2,3]"),
        ("GET", "/hits?timestamp=abc", &[][..], ""),
        (
            "GET",
            "/series?url=http%3A%2F%2Fa.b%2F&period=year",
            &[][..],
            "",
        ),
    ] {
        let resp = request(hitme.addr, method, target, headers, body.as_bytes());
        assert_eq!(
            resp.status,
            400,
            "{method} {target} {body}: {}",
            resp.text()
        );
    }
    assert_eq!(cluster.keys(), before, "bad requests wrote to the cluster");
}

/// A site's worth of URLs: `/top` and `/hits` list every one, with exact totals, read shard
/// by shard in chunks.
#[test]
fn twenty_thousand_urls_are_ranked_and_listed_whole() {
    const URLS: usize = 20_000;
    let cluster = Cluster::start();
    let hitme = cluster.hitme(&["--threads", "8"]);
    let ts = now_ms();
    std::thread::scope(|scope| {
        for part in 0..8 {
            let hitme = &hitme;
            scope.spawn(move || {
                for i in (part..URLS).step_by(8) {
                    hitme.hit(&format!("http://site.example/page/{i}"), ts);
                    if i % 1000 == 0 {
                        hitme.hit(&format!("http://site.example/page/{i}"), ts);
                    }
                }
            });
        }
    });
    let extra = URLS / 1000;
    let top = hitme
        .get(&format!("/top?period=day&limit=3&timestamp={ts}"))
        .json();
    assert_eq!(top["urls"], json!(URLS));
    assert_eq!(top["total"], json!(URLS + extra));
    assert_eq!(
        top["top"],
        json!([
            {"url": "http://site.example/page/0", "count": 2},
            {"url": "http://site.example/page/1000", "count": 2},
            {"url": "http://site.example/page/10000", "count": 2},
        ])
    );
    let filtered = hitme
        .get(&format!("/top?q=PAGE/1999&timestamp={ts}"))
        .json();
    assert_eq!(
        (filtered["urls"].clone(), filtered["total"].clone()),
        (json!(11), json!(11))
    );
    let hits = hitme.get(&format!("/hits?timestamp={ts}"));
    assert_eq!(hits.status, 200);
    let hits = hits.json();
    for period in ["all_time", "last_day", "last_minute"] {
        let counts = hits[period].as_object().unwrap();
        let total: i64 = counts.values().map(|n| n.as_i64().unwrap()).sum();
        assert_eq!(
            (counts.len(), total),
            (URLS, (URLS + extra) as i64),
            "{period}"
        );
    }
}

#[test]
fn get_hits_and_series_list_exact_counts_and_the_index_repairs_itself() {
    let cluster = Cluster::start();
    let hitme = cluster.hitme(&[]);
    let (a, b, c) = (
        "http://a.example/",
        "http://b.example/x?y=1",
        "https://c.example/deep/path",
    );
    hitme.hit(a, T);
    hitme.hit(a, T);
    hitme.hit(b, T);
    hitme.hit(b, T - 3_600_000); // the hour before: same day
    hitme.hit(c, T - 86_400_000); // the day before: same week
    let resp = hitme.get(&format!("/hits?timestamp={T}"));
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        resp.json(),
        json!({"status": "OK",
               "all_time": {a: 2, b: 2, c: 1}, "last_month": {a: 2, b: 2, c: 1},
               "last_week": {a: 2, b: 2, c: 1}, "last_day": {a: 2, b: 2},
               "last_hour": {a: 2, b: 1}, "last_minute": {a: 2, b: 1}})
    );
    let later = hitme
        .get(&format!("/hits?timestamp={}", T + 86_400_000))
        .json();
    assert_eq!(later["last_day"], json!({}));
    assert_eq!(later["all_time"], json!({a: 2, b: 2, c: 1}));

    // A series: the last 4 hours, oldest first, empty buckets 0.
    let url = "http://series.example/";
    let hour = 3_600_000;
    let base = 1_700_006_400_000; // 2023-11-15T00:00Z
    for (offset, n) in [(0, 2), (2 * hour, 1), (3 * hour + 59_999, 3)] {
        for _ in 0..n {
            hitme.hit(url, base + offset);
        }
    }
    let target = format!(
        "/series?url={}&period=hour&count=4&timestamp={}",
        encode(url),
        base + 3 * hour
    );
    let resp = hitme.get(&target);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        resp.json(),
        json!({"status": "OK", "url": url, "period": "hour", "time_zone": "UTC", "buckets": [
            {"start": base, "count": 2},
            {"start": base + hour, "count": 0},
            {"start": base + 2 * hour, "count": 1},
            {"start": base + 3 * hour, "count": 3},
        ]})
    );
    let months = hitme
        .get(&format!(
            "/series?url={}&period=month&timestamp={base}",
            encode(url)
        ))
        .json();
    let buckets = months["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 12, "a year of months by default");
    assert_eq!(
        buckets[11],
        json!({"start": 1_698_796_800_000_i64, "count": 6})
    );
    assert_eq!(
        buckets[10],
        json!({"start": 1_696_118_400_000_i64, "count": 0})
    );

    // An index update that failed after the count (simulated: the URL is out of its shard
    // and still marked unindexed) is repaired by the URL's next hit.
    let mut client = cluster.client();
    let keys = ClusterKeys {
        prefix: "hits".into(),
    };
    let (shard, unindexed) = (keys.index(index_shard(c)), keys.unindexed(&url_tag(c)));
    let _: () = redis::cmd("SREM")
        .arg(&shard)
        .arg(c)
        .query(&mut client)
        .unwrap();
    let _: () = redis::cmd("SADD")
        .arg(&unindexed)
        .arg(c)
        .query(&mut client)
        .unwrap();
    let listed = hitme.get(&format!("/hits?timestamp={T}")).json();
    assert_eq!(listed["all_time"], json!({a: 2, b: 2, url: 6}));
    assert_eq!(counts(&hitme, c, T - 86_400_000), expected(c, [1; 6]));
    hitme.hit(c, T);
    let listed = hitme.get(&format!("/hits?timestamp={T}")).json();
    assert_eq!(listed["all_time"], json!({a: 2, b: 2, c: 2, url: 6}));
    assert_eq!(listed["last_day"], json!({a: 2, b: 2, c: 1, url: 6}));
    let marked: bool = redis::cmd("EXISTS")
        .arg(&unindexed)
        .query(&mut client)
        .unwrap();
    assert!(!marked, "the repaired URL is still marked unindexed");
}

#[test]
fn one_hit_touches_one_slot_in_one_command_and_buckets_expire() {
    let cluster = Cluster::start();
    let hitme = cluster.hitme(&[
        "--retention-minute",
        "48h",
        "--retention-hour",
        "60d",
        "--retention-day",
        "3y",
    ]);
    let urls = ["http://www.olark.com/", "https://slot.example/a?b=c"];
    let ts = now_ms();
    for url in urls {
        hitme.hit(url, ts);
    }
    let starts = Calendar::new(WeekStart::Monday).starts(ts);
    let keys = ClusterKeys {
        prefix: "hits".into(),
    };
    // The calendar this prefix is counted in, recorded at startup.
    let mut expected_keys = BTreeSet::from(["hits:config".to_string()]);
    for url in urls {
        let tag = url_tag(url);
        let hit_keys = keys.hit_keys(&tag, &starts);
        let slot = slot_of_tag(&tag);
        let master = cluster.master_of_slot(slot);
        // Every key of the hit is in the URL's slot, on the master that serves it.
        for key in &hit_keys {
            assert_eq!(cluster.keyslot(key), slot, "{key}");
        }
        let mut node = cluster.node(master);
        for key in &hit_keys[..6] {
            let count: Option<i64> = redis::cmd("HGET")
                .arg(key)
                .arg(url)
                .query(&mut node)
                .unwrap();
            assert_eq!(count, Some(1), "{key} on {master}");
        }
        expected_keys.extend(hit_keys[..6].iter().cloned());
        let index = keys.index(index_shard(url));
        let member: bool = redis::cmd("SISMEMBER")
            .arg(&index)
            .arg(url)
            .query(&mut cluster.client())
            .unwrap();
        assert!(member, "{url} is in its index shard {index}");
        expected_keys.insert(index);

        // Retention: day, hour and minute keys expire at their bucket's end plus retention;
        // all-time, month and week are kept.
        let expiry = |key: &str| -> i64 {
            redis::cmd("EXPIRETIME")
                .arg(key)
                .query(&mut cluster.node(master))
                .unwrap()
        };
        assert_eq!(expiry(&hit_keys[0]), -1);
        assert_eq!(expiry(&hit_keys[1]), -1);
        assert_eq!(expiry(&hit_keys[2]), -1);
        let end = |start: i64, len: i64| (start + len) / 1000;
        assert_eq!(
            expiry(&hit_keys[3]),
            end(starts[Period::Day], 86_400_000) + 3 * 31_557_600
        );
        assert_eq!(
            expiry(&hit_keys[4]),
            end(starts[Period::Hour], 3_600_000) + 60 * 86_400
        );
        assert_eq!(
            expiry(&hit_keys[5]),
            end(starts[Period::Minute], 60_000) + 48 * 3_600
        );
    }
    // Nothing else: the unindexed markers were cleared once the URLs were indexed.
    assert_eq!(
        cluster.keys().into_iter().collect::<BTreeSet<_>>(),
        expected_keys
    );

    // A hit already indexed costs one EVALSHA and one WAIT (for its replica) on one master,
    // nothing anywhere else.
    let masters: Vec<u16> = cluster.masters().keys().copied().collect();
    for port in &masters {
        let _: () = redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query(&mut cluster.node(*port))
            .unwrap();
    }
    for _ in 0..10 {
        hitme.hit(urls[0], ts);
    }
    let mut calls: BTreeMap<(u16, String), u64> = BTreeMap::new();
    for port in &masters {
        for (name, n) in command_calls(&cluster, *port) {
            // PING checks idle pooled connections, CLUSTER SLOTS and NODES open new ones;
            // REPLCONF is the replica's acknowledgements; CONFIG and INFO are this test's.
            let other = [
                "ping",
                "config|resetstat",
                "info",
                "cluster|slots",
                "cluster|nodes",
                "replconf",
            ];
            if !other.contains(&name.as_str()) {
                calls.insert((*port, name), n);
            }
        }
    }
    let master = cluster.master_of_slot(slot_of_tag(&url_tag(urls[0])));
    assert_eq!(
        calls,
        BTreeMap::from([
            ((master, "evalsha".to_string()), 10),
            ((master, "hincrby".to_string()), 60),
            ((master, "sismember".to_string()), 10),
            ((master, "wait".to_string()), 10),
        ]),
        "one hit: one command, and a WAIT for its replica, on one node"
    );

    // A hit older than the minute retention counts only in the buckets still kept.
    let old = ts - 3 * 86_400_000;
    hitme.hit(urls[1], old);
    let c = counts(&hitme, urls[1], old);
    assert_eq!(
        (c["last_hour"].as_i64(), c["last_minute"].as_i64()),
        (Some(1), Some(0))
    );
    assert_eq!(c["all_time"], 2);
}

#[test]
fn a_slot_being_resharded_is_read_through_asking_and_written_after_it_moved() {
    let cluster = Cluster::start();
    let hitme = cluster.hitme(&[]);
    let (url, other) = ("http://migrating.example/", "http://elsewhere.example/");
    let tag = url_tag(url);
    let slot = slot_of_tag(&tag);
    assert_ne!(slot_of_tag(&url_tag(other)), slot);
    hitme.hit(url, T);
    let source = cluster.master_of_slot(slot);
    let target = *cluster.masters().keys().find(|p| **p != source).unwrap();
    let id = |port: u16| -> String {
        redis::cmd("CLUSTER")
            .arg("MYID")
            .query(&mut cluster.node(port))
            .unwrap()
    };
    let setslot = |port: u16, state: &str, node: &str| {
        let _: () = redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg(state)
            .arg(node)
            .query(&mut cluster.node(port))
            .unwrap();
    };
    let keys = ClusterKeys {
        prefix: "hits".into(),
    };
    let hit_keys = keys.hit_keys(&tag, &Calendar::new(WeekStart::Monday).starts(T));
    let migrate = |keys: &[String]| {
        let _: () = redis::cmd("MIGRATE")
            .arg("127.0.0.1")
            .arg(target)
            .arg("")
            .arg(0)
            .arg(5000)
            .arg("KEYS")
            .arg(keys)
            .query(&mut cluster.node(source))
            .unwrap();
    };
    let check_reads = |n: i64| {
        assert_eq!(counts(&hitme, url, T), expected(url, [n; 6]));
        let all = hitme.get(&format!("/hits?timestamp={T}")).json();
        assert_eq!(all["all_time"][url], n, "{all}");
        assert_eq!(all["last_minute"][url], n, "{all}");
        let target = format!(
            "/series?url={}&period=minute&count=2&timestamp={T}",
            encode(url)
        );
        assert_eq!(hitme.get(&target).json()["buckets"][1]["count"], n);
    };

    // Resharding, as `redis-cli --cluster reshard` does it: mark the slot, move its keys in
    // batches, then hand the slot over.
    setslot(target, "IMPORTING", &id(source));
    setslot(source, "MIGRATING", &id(target));
    check_reads(1);
    migrate(&hit_keys[..3]);
    // Half of the URL's keys have moved: reads of the moved ones follow ASK.
    check_reads(1);
    // A hit needs all its keys in one place: the cluster answers TRYAGAIN, HitMe retries
    // until its timeout, then answers 503 without counting anything.
    let resp = hitme.post_form("/hit", &format!("url={}&timestamp={T}", encode(url)));
    assert_eq!(resp.status, 503, "{}", resp.text());
    assert!(resp.error().contains("moving slots"), "{}", resp.error());
    for word in CLUSTER_WORDS {
        assert!(!resp.text().contains(word), "{}", resp.text());
    }
    check_reads(1);
    // Other slots are not affected.
    hitme.hit(other, T);
    migrate(&hit_keys[3..6]);
    let target_id = id(target);
    for port in cluster.masters().keys() {
        setslot(*port, "NODE", &target_id);
    }
    // The slot has moved: HitMe's stale slot maps get MOVED, rebuild, and carry on.
    hitme.hit(url, T);
    check_reads(2);
    assert_eq!(cluster.master_of_slot(slot), target);
    let on_target: Vec<String> = redis::cmd("KEYS")
        .arg(format!("*{{{tag}}}*"))
        .query(&mut cluster.node(target))
        .unwrap();
    assert_eq!(on_target.len(), 6, "{on_target:?}");
    assert_eq!(counts(&hitme, other, T), expected(other, [1; 6]));
}

#[test]
fn concurrent_clients_get_exact_totals_in_cluster_mode() {
    const CLIENTS: usize = 16;
    const HITS_EACH: usize = 25;
    const URLS: [&str; 4] = [
        "http://a.example/",
        "http://b.example/",
        "http://c.example/",
        "http://d.example/",
    ];
    let cluster = Cluster::start();
    let hitme = cluster.hitme(&["--threads", "8"]);
    // Every client starts on every URL at once: concurrent first hits of new URLs.
    std::thread::scope(|s| {
        for client in 0..CLIENTS {
            let hitme = &hitme;
            s.spawn(move || {
                for i in 0..HITS_EACH {
                    hitme.hit(URLS[(client + i) % URLS.len()], T + (i as i64 % 1000));
                }
            });
        }
    });
    let per_url = (CLIENTS * HITS_EACH / URLS.len()) as i64;
    for url in URLS {
        assert_eq!(counts(&hitme, url, T), expected(url, [per_url; 6]), "{url}");
    }
    let all = hitme.get(&format!("/hits?timestamp={T}")).json();
    let exact: serde_json::Map<String, serde_json::Value> = URLS
        .iter()
        .map(|u| (u.to_string(), json!(per_url)))
        .collect();
    for period in common::PERIODS {
        assert_eq!(
            all[period],
            serde_json::Value::Object(exact.clone()),
            "{period}"
        );
    }
}

#[test]
fn hitme_starts_before_the_cluster_and_recovers_and_bad_flags_are_refused() {
    // A prefix with a brace would choose the slot itself: refused at startup.
    let out = common::hitme_command(
        UNUSED_REDIS_URL,
        &["--redis-cluster", "127.0.0.1:1", "--key-prefix", "a{b}"],
    )
    .output()
    .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("brace"));
    // Flags of the standalone backend mean nothing here: refused, naming both flags.
    for flag in [
        &["--group-commit"][..],
        &["--redis-url", "redis://127.0.0.1:6379"],
        &["--redis-ca-file", "/nonexistent.pem"],
    ] {
        let mut args = vec!["--redis-cluster", "127.0.0.1:1"];
        args.extend_from_slice(flag);
        let out = common::hitme_command(UNUSED_REDIS_URL, &args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{flag:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(flag[0]) && stderr.contains("--redis-cluster"),
            "{stderr}"
        );
    }

    let mut cluster = Cluster::reserve();
    let hitme = cluster.hitme(&[]);
    let url = "http://early.example/";
    for target in ["/healthz", "/hits"] {
        let resp = hitme.get(target);
        assert_eq!(resp.status, 503, "{target}: {}", resp.text());
        assert!(resp.error().contains("Redis Cluster"), "{}", resp.error());
    }
    let resp = hitme.post_form("/hit", &format!("url={}&timestamp={T}", encode(url)));
    assert_eq!(resp.status, 503, "{}", resp.text());
    assert!(resp.error().contains("--redis-cluster"), "{}", resp.error());

    cluster.start_reserved();
    wait_until(
        Duration::from_secs(20),
        "HitMe to reach the cluster",
        || hitme.get("/healthz").status == 200,
    );
    hitme.hit(url, T);
    assert_eq!(counts(&hitme, url, T), expected(url, [1; 6]));
}

/// Sends SIGCONT to a stopped process when dropped, so a failed assertion never leaves a
/// node frozen.
struct Frozen(i32);

impl Frozen {
    fn freeze(pid: i32) -> Frozen {
        // SAFETY: kill(2) on the pid of a redis-server this test started.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
        Frozen(pid)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        // SAFETY: as above.
        unsafe { libc::kill(self.0, libc::SIGCONT) };
    }
}

/// The value of `field` in the `section` of `INFO` from the node on `port`.
fn info_field(cluster: &Cluster, port: u16, section: &str, field: &str) -> String {
    let info: String = redis::cmd("INFO")
        .arg(section)
        .query(&mut cluster.node(port))
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("INFO {section} of node {port} has no {field}"))
        .trim()
        .to_string()
}

/// The port of a replica of the master on `master`.
fn replica_of(cluster: &Cluster, master: u16) -> u16 {
    // slave0:ip=127.0.0.1,port=7003,state=online,...
    let replica = info_field(cluster, master, "replication", "slave0");
    let port = replica.split(',').find_map(|f| f.strip_prefix("port="));
    port.expect("the replica's port").parse().unwrap()
}

/// Hits a worker takes together: equal ones (same URL, same buckets) are one script that adds
/// their number, with one `WAIT`; a different one is its own. Counts stay exact.
#[test]
fn equal_hits_taken_together_are_one_script_in_cluster_mode() {
    use std::io::Write;
    let cluster = Cluster::start();
    let hitme = cluster.hitme(&["--threads", "1"]);
    let (a, b) = ("http://together.example/", "http://apart.example/");
    // Loads the script on the URLs' masters and indexes both URLs.
    hitme.hit(a, T);
    hitme.hit(b, T);
    let masters: Vec<u16> = cluster.masters().keys().copied().collect();
    for port in &masters {
        let () = redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query(&mut cluster.node(*port))
            .unwrap();
    }
    let post = |url: &str, pad: usize| {
        let body = format!("url={}&timestamp={T}&pad={}", encode(url), "x".repeat(pad));
        format!(
            "POST /hit HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    // The only worker waits for a slow body (over 1 KiB) while the others queue behind it.
    let slow = post(a, 2000);
    let (head, tail) = slow.split_at(slow.len() - 100);
    let mut slow = common::send(hitme.addr, head.as_bytes());
    std::thread::sleep(Duration::from_millis(300));
    let queued: Vec<_> = [a, a, a, b, a]
        .into_iter()
        .map(|url| {
            let stream = common::send(hitme.addr, post(url, 0).as_bytes());
            std::thread::sleep(Duration::from_millis(100));
            stream
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    slow.write_all(tail.as_bytes()).unwrap();
    assert_eq!(common::read_response(&mut slow).status, 200);
    for mut stream in queued {
        assert_eq!(common::read_response(&mut stream).status, 200);
    }
    assert_eq!(counts(&hitme, a, T), expected(a, [6; 6]));
    assert_eq!(counts(&hitme, b, T), expected(b, [2; 6]));
    let calls = |name: &str| -> u64 { masters.iter().map(|p| calls_of(&cluster, *p, name)).sum() };
    // The slow hit alone, then the four equal ones as one, and the different one.
    assert_eq!((calls("evalsha"), calls("wait")), (3, 3));
    assert_eq!(hitme.metric("hitme_hits_batched_total"), Some(5.0));
}

/// How many times the node on `port` ran each command since its stats were reset.
fn command_calls(cluster: &Cluster, port: u16) -> BTreeMap<String, u64> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut cluster.node(port))
        .unwrap();
    info.lines()
        .filter_map(|line| line.strip_prefix("cmdstat_")?.split_once(':'))
        .map(|(name, stats)| {
            let calls = stats.split(',').find_map(|s| s.strip_prefix("calls="));
            (name.to_string(), calls.unwrap().parse().unwrap())
        })
        .collect()
}

fn calls_of(cluster: &Cluster, port: u16, name: &str) -> u64 {
    command_calls(cluster, port).get(name).copied().unwrap_or(0)
}

#[test]
fn a_frozen_replica_slows_hits_down_but_never_fails_them() {
    let cluster = Cluster::start();
    let hitme = cluster.hitme(&[]);
    let url = "http://replica.example/";
    hitme.hit(url, T);
    let master = cluster.master_of_slot(slot_of_tag(&url_tag(url)));
    let replica = replica_of(&cluster, master);
    let body = format!("url={}&timestamp={T}", encode(url));
    let (mut sent, mut waited) = (1, 0);
    {
        // Frozen for longer than --cluster-node-timeout (2 s): the cluster marks it failed.
        let _frozen = Frozen::freeze(pid_of(&cluster, replica));
        let mut waited_for = |calls: &mut u64| {
            let before = calls_of(&cluster, master, "wait");
            let resp = hitme.post_form("/hit", &body);
            assert_eq!(resp.status, 200, "{}", resp.text());
            sent += 1;
            *calls = calls_of(&cluster, master, "wait") - before;
            waited += u64::from(*calls > 0);
            *calls > 0
        };
        // Each hit waits for the frozen replica until HitMe, told by the WAIT timing out,
        // reads the slot map again and finds the replica marked failed.
        let mut calls = 0;
        assert!(waited_for(&mut calls), "the first hit did not WAIT");
        wait_until(
            Duration::from_secs(20),
            "hits to stop waiting for the failed replica",
            || !waited_for(&mut calls),
        );
    }
    assert!(
        hitme.log().contains("0 of 1 replicas confirmed it"),
        "{}",
        hitme.log()
    );
    // Every hit that waited in vain, and only those, is counted as unconfirmed.
    assert_eq!(
        hitme.metric("hitme_redis_unconfirmed_hits_total"),
        Some(waited as f64)
    );
    let n = counts(&hitme, url, T)["all_time"].as_i64().unwrap();
    assert_eq!(n, sent);
}

/// Waits (bounded) until a replica serves `slot` in place of the killed master `victim` and
/// every other node reports the cluster ok.
fn wait_for_failover(cluster: &Cluster, slot: u16, victim: u16) {
    wait_until(
        Duration::from_secs(30),
        "a replica to take over the killed master's slots",
        || {
            cluster.master_of_slot(slot) != victim
                && cluster.ports().iter().filter(|p| **p != victim).all(|p| {
                    let info: String = redis::cmd("CLUSTER")
                        .arg("INFO")
                        .query(&mut cluster.node(*p))
                        .unwrap();
                    info.contains("cluster_state:ok")
                })
        },
    );
}

fn pid_of(cluster: &Cluster, port: u16) -> i32 {
    info_field(cluster, port, "server", "process_id")
        .parse()
        .unwrap()
}

#[test]
fn a_frozen_master_costs_a_bounded_503_not_a_hung_worker() {
    let cluster = Cluster::start();
    let hitme = cluster.hitme(&["--threads", "2", "--pool-size", "2"]);
    let urls: Vec<String> = (0..20)
        .map(|i| format!("http://frozen.example/{i}"))
        .collect();
    let master = |u: &str| cluster.master_of_slot(slot_of_tag(&url_tag(u)));
    let frozen_url = urls[0].as_str();
    let live_url = urls
        .iter()
        .find(|u| master(u) != master(frozen_url))
        .unwrap()
        .as_str();
    hitme.hit(frozen_url, T);
    hitme.hit(live_url, T);
    let pid = pid_of(&cluster, master(frozen_url));
    let body = |url: &str| format!("url={}&timestamp={T}", encode(url));
    // Both pooled connections open (so one is free while the other waits on the frozen
    // node), and used within the last second (so neither is PINGed on checkout).
    wait_until(Duration::from_secs(10), "two pooled connections", || {
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| hitme.get(&format!("/hit?url={}&timestamp={T}", encode(live_url))));
            }
        });
        hitme.metric("hitme_redis_pool_connections") == Some(2.0)
    });
    let stop = AtomicBool::new(false);
    let live = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        // Frozen for less than --cluster-node-timeout (2 s): no failover, just a node that
        // accepts connections and never answers, as in a stall or a network partition.
        let _frozen = Frozen::freeze(pid);
        // Meanwhile hits for a URL on another master keep coming.
        s.spawn(|| {
            while !stop.load(Ordering::SeqCst) {
                let status = hitme.post_form("/hit", &body(live_url)).status;
                assert!([200, 503].contains(&status), "{status}");
                live.lock().unwrap().push(status);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let started = Instant::now();
        let resp = hitme.post_form("/hit", &body(frozen_url));
        let took = started.elapsed();
        stop.store(true, Ordering::SeqCst);
        assert_eq!(resp.status, 503, "{}", resp.text());
        assert!(
            resp.error().contains("--redis-timeout-ms"),
            "{}",
            resp.error()
        );
        // One 500 ms timeout for the command, at most a second one when a new connection
        // tries the frozen node: bounded, never a hung worker.
        assert!(
            took < Duration::from_millis(1_400),
            "a frozen node took {took:?}"
        );
    });
    let live = live.into_inner().unwrap();
    assert!(
        live.contains(&200),
        "the other masters stopped serving: {live:?}"
    );
    wait_until(
        Duration::from_secs(10),
        "the thawed master to serve again",
        || hitme.post_form("/hit", &body(frozen_url)).status == 200,
    );
    // The hit answered 503 was sent before the freeze: Redis ran it when it woke up, as the
    // README says of a 503 ("not known to be counted").
    let n = counts(&hitme, frozen_url, T)["all_time"].as_i64().unwrap();
    assert!((2..=3).contains(&n), "{n}");
    let acked = 1 + live.iter().filter(|s| **s == 200).count() as i64;
    let n = counts(&hitme, live_url, T)["all_time"].as_i64().unwrap();
    assert!(
        acked <= n && n <= 1 + live.len() as i64,
        "acked {acked}, counted {n}, {live:?}"
    );
}

/// A master killed: its node's breaker opens and hits on its slots fail at once, while every
/// other node's breaker stays closed and the hits on their slots are counted.
#[test]
fn a_killed_master_opens_the_breaker_of_its_node_only() {
    let cluster = Cluster::start();
    let hitme = cluster.hitme(&[]);
    let urls: Vec<String> = (0..24)
        .map(|i| format!("http://breaker.example/{i}"))
        .collect();
    for url in &urls {
        hitme.hit(url, T);
    }
    let master_of: Vec<u16> = urls
        .iter()
        .map(|u| cluster.master_of_slot(slot_of_tag(&url_tag(u))))
        .collect();
    let victim = master_of[0];
    let masters: Vec<u16> = cluster.masters().keys().copied().collect();
    let breaker = |port: u16| {
        hitme.metric(&format!(
            r#"hitme_redis_breaker_open{{server="127.0.0.1:{port}"}}"#
        ))
    };
    // SAFETY: kill(2) on the pid of a redis-server this test started.
    assert_eq!(
        unsafe { libc::kill(pid_of(&cluster, victim), libc::SIGKILL) },
        0
    );
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let post = |url: &str| {
        let body = format!("url={}&timestamp={T}", encode(url));
        request(hitme.addr, "POST", "/hit", &form, body.as_bytes()).status
    };
    wait_until(
        Duration::from_secs(10),
        "the killed master's breaker open",
        || {
            post(&urls[0]);
            breaker(victim) == Some(1.0)
        },
    );
    for (url, master) in urls.iter().zip(&master_of) {
        if *master != victim {
            assert_eq!(post(url), 200, "{url} on {master}");
        }
    }
    for master in masters.iter().filter(|p| **p != victim) {
        assert_eq!(breaker(*master), Some(0.0), "{master}");
    }
    assert_eq!(
        hitme.metric(r#"hitme_redis_breaker_open{server="cluster"}"#),
        Some(0.0)
    );
}

/// `--sites` and `--rate-limit` in cluster mode: junk hosts never reach the cluster, and a
/// client's hits beyond its limit count nothing.
#[test]
fn sites_and_rate_limits_hold_in_cluster_mode() {
    let cluster = Cluster::start();
    let hitme = cluster.hitme(&["--sites", "real.example", "--rate-limit", "3/1m"]);
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let post = |url: &str| {
        let body = format!("url={}&timestamp={T}", encode(url));
        request(hitme.addr, "POST", "/hit", &form, body.as_bytes()).status
    };
    let before = cluster.keys();
    assert_eq!(post("http://junk.example/1"), 403);
    assert_eq!(cluster.keys(), before, "a junk host reached the cluster");
    let statuses: Vec<u16> = (0..5).map(|_| post("http://real.example/")).collect();
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    let counts = hitme.get(&format!(
        "/hit?url={}&timestamp={T}",
        encode("http://real.example/")
    ));
    assert_eq!(counts.json()["all_time"], 3);
}

/// `--visits` in cluster mode: a hit and its visit are one script in the URL's slot; 100
/// visitors loading a page three times are 300 hits and 100 visits, and 100 visitors of the
/// site (with another page loaded by 10 of them), kept in 16 shards by visitor.
#[test]
fn visits_are_counted_in_cluster_mode() {
    let cluster = Cluster::start();
    let hitme = cluster.hitme(&["--visits", "--trusted-proxies", "127.0.0.1/32"]);
    let page = "http://site.example/cluster";
    for i in 0..100 {
        let from = format!("10.0.0.{i}");
        let other = format!("url={}&timestamp={T}", encode("http://site.example/other"));
        let body = format!("url={}&timestamp={T}", encode(page));
        let bodies = [&body, &body, &body, &other];
        for body in &bodies[..if i < 10 { 4 } else { 3 }] {
            let headers = [
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("X-Forwarded-For", from.as_str()),
                ("User-Agent", "TestBrowser/1.0"),
            ];
            assert_eq!(
                request(hitme.addr, "POST", "/hit", &headers, body.as_bytes()).status,
                200
            );
        }
    }
    let counts = hitme
        .get(&format!("/hit?url={}&timestamp={T}", encode(page)))
        .json();
    assert_eq!(counts["all_time"], 300);
    for period in common::PERIODS {
        assert_eq!(counts["visits"][period], 100, "{period}");
    }
    let top = hitme
        .get(&format!("/top?period=minute&metric=visits&timestamp={T}"))
        .json();
    assert_eq!(top["total"], 110);
    let tag = url_tag(page);
    let keys = cluster.keys();
    assert!(
        keys.contains(&format!("hits:visits:{{{tag}}}:all")),
        "{keys:?}"
    );
    assert_eq!(keys.iter().filter(|k| k.contains(":visitor:")).count(), 110);
    assert_eq!(
        keys.iter()
            .filter(|k| k.contains(":visitor:") && k.contains(&format!("{{{tag}}}")))
            .count(),
        100
    );
    // The site's visitors: each counted once, whichever page it loaded.
    for period in ["all", "month", "day", "minute"] {
        let answer = hitme
            .get(&format!(
                "/visitors?period={period}&site=site.example&timestamp={T}"
            ))
            .json();
        assert_eq!(answer["visitors"], 100, "{period}");
        let every = hitme
            .get(&format!("/visitors?period={period}&timestamp={T}"))
            .json();
        assert_eq!(every["visitors"], 100, "{period}");
    }
    let site_keys: Vec<&String> = keys
        .iter()
        .filter(|k| k.starts_with("hits:sitevisitors:{v"))
        .collect();
    let shards: std::collections::BTreeSet<&str> = site_keys
        .iter()
        .map(|k| k.split(['{', '}']).nth(1).unwrap())
        .collect();
    assert!(
        shards.len() > 8,
        "100 visitors over the 16 shards: {shards:?}"
    );
    assert_eq!(
        keys.iter().filter(|k| k.contains(":sitevisitor:")).count(),
        100
    );
}

/// What the load clients saw for one URL.
#[derive(Default)]
struct Tally {
    acked: AtomicU64,
    errors: AtomicU64,
    acked_after_failover: AtomicU64,
}

#[test]
fn a_master_killed_under_load_fails_over_without_losing_acknowledged_hits() {
    const CLIENTS: usize = 4;
    let cluster = Cluster::start();
    let hitme = cluster.hitme(&["--threads", "8"]);
    let urls: Vec<String> = (0..24)
        .map(|i| format!("http://failover.example/{i}"))
        .collect();
    for url in &urls {
        hitme.hit(url, T); // indexed before the kill; counted in what follows
    }
    let masters = cluster.masters();
    assert_eq!(masters.len(), 3, "{masters:?}");
    // The victim: the master of the first URL's slot; every master holds some URLs.
    let slot_master: Vec<u16> = urls
        .iter()
        .map(|u| cluster.master_of_slot(slot_of_tag(&url_tag(u))))
        .collect();
    let victim = slot_master[0];
    let victims: Vec<usize> = (0..urls.len())
        .filter(|i| slot_master[*i] == victim)
        .collect();
    assert!(victims.len() < urls.len(), "all URLs on one master");

    let tallies: Vec<Tally> = urls.iter().map(|_| Tally::default()).collect();
    let stop = AtomicBool::new(false);
    let failed_over = AtomicBool::new(false);
    let deadline = Instant::now() + Duration::from_secs(60);
    let check_body = |resp: &common::Resp, what: &str| {
        let text = resp.text();
        for word in CLUSTER_WORDS {
            assert!(!text.contains(word), "{what} answered {text}");
        }
    };
    std::thread::scope(|s| {
        for client in 0..CLIENTS {
            let (hitme, urls, tallies, stop, failed_over) =
                (&hitme, &urls, &tallies, &stop, &failed_over);
            s.spawn(move || {
                let form = [("Content-Type", "application/x-www-form-urlencoded")];
                let mut i = client;
                while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                    let n = i % urls.len();
                    i += CLIENTS;
                    let body = format!("url={}&timestamp={T}", encode(&urls[n]));
                    let after = failed_over.load(Ordering::SeqCst);
                    let resp = request(hitme.addr, "POST", "/hit", &form, body.as_bytes());
                    check_body(&resp, "POST /hit");
                    match resp.status {
                        200 => {
                            tallies[n].acked.fetch_add(1, Ordering::SeqCst);
                            if after {
                                tallies[n]
                                    .acked_after_failover
                                    .fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        503 => {
                            tallies[n].errors.fetch_add(1, Ordering::SeqCst);
                        }
                        status => panic!("POST /hit answered {status}: {}", resp.text()),
                    }
                }
            });
        }
        // A reader: the read paths must not leak cluster errors either.
        {
            let (hitme, urls, stop) = (&hitme, &urls, &stop);
            s.spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                    let target = if i % 2 == 0 {
                        format!("/hits?timestamp={T}")
                    } else {
                        format!("/hit?url={}&timestamp={T}", encode(&urls[i % urls.len()]))
                    };
                    let resp = hitme.get(&target);
                    check_body(&resp, &target);
                    assert!(
                        [200, 503].contains(&resp.status),
                        "{target}: {}",
                        resp.text()
                    );
                    i += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
            });
        }

        std::thread::sleep(Duration::from_secs(1));
        let pid = pid_of(&cluster, victim);
        let killed_at = Instant::now();
        // SAFETY: kill(2) on the pid of a redis-server this test started.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
        let slot = slot_of_tag(&url_tag(&urls[0]));
        wait_for_failover(&cluster, slot, victim);
        let promoted_after = killed_at.elapsed();
        failed_over.store(true, Ordering::SeqCst);
        // HitMe serves the moved slots again without being told.
        wait_until(
            Duration::from_secs(15),
            "hits on the killed master's URLs to succeed again",
            || {
                victims
                    .iter()
                    .all(|i| tallies[*i].acked_after_failover.load(Ordering::SeqCst) > 0)
            },
        );
        let served_after = killed_at.elapsed();
        std::thread::sleep(Duration::from_secs(1));
        stop.store(true, Ordering::SeqCst);
        eprintln!(
            "replica promoted {promoted_after:?} after the kill, its URLs served again after {served_after:?}"
        );
    });

    let (mut acked, mut errors, mut counted) = (0, 0, 0);
    for (url, tally) in urls.iter().zip(&tallies) {
        let resp = get_ok(&hitme, &format!("/hit?url={}&timestamp={T}", encode(url)));
        // The hit made before the load is counted too.
        let n = resp["all_time"].as_u64().unwrap() - 1;
        let (a, e) = (
            tally.acked.load(Ordering::SeqCst),
            tally.errors.load(Ordering::SeqCst),
        );
        assert!(
            a <= n && n <= a + e,
            "{url}: acked {a}, errors {e}, counted {n}"
        );
        acked += a;
        errors += e;
        counted += n;
    }
    eprintln!("acked {acked}, errors {errors}, counted {counted}");
    assert!(acked > 0);
    let all = get_ok(&hitme, &format!("/hits?timestamp={T}"));
    assert_eq!(
        all["all_time"].as_object().unwrap().len(),
        urls.len(),
        "{all}"
    );
    get_ok(&hitme, "/healthz");
}

/// `--sources` in cluster mode: a URL's and its site's sources live in the URL's sources
/// shard (`{r<N>}`, N its index shard), so a site's are spread over the 16 shards and read
/// back added up, every figure exact.
#[test]
fn sources_are_counted_in_cluster_mode() {
    let cluster = Cluster::start();
    let hitme = cluster.hitme(&["--sources"]);
    let referrers = [
        Some("https://news.ycombinator.com/item?id=7"),
        Some("https://www.google.fr/"),
        Some("http://site.example/elsewhere"),
        None,
    ];
    for i in 0..40 {
        let url = format!("http://site.example/page/{i}");
        for referrer in &referrers[..1 + i % 4] {
            let mut body = format!("url={}&timestamp={T}", encode(&url));
            if let Some(referrer) = referrer {
                body.push_str(&format!("&referrer={}", encode(referrer)));
            }
            assert_eq!(hitme.post_form("/hit", &body).status, 200);
        }
    }
    // 40 hits from Hacker News, 30 from Google, 20 + 10 direct.
    for query in ["period=day", "period=all&site=site.example"] {
        let answer = hitme.get(&format!("/sources?{query}&timestamp={T}")).json();
        assert_eq!(answer["total"], 100, "{query}");
        assert_eq!(answer["direct"], 30, "{query}");
        assert_eq!(
            answer["sources"],
            json!([
                {"source": "Hacker News", "count": 40},
                {"source": "Google", "count": 30},
            ]),
            "{query}"
        );
    }
    let url = "http://site.example/page/3";
    let one = hitme
        .get(&format!(
            "/sources?period=week&url={}&timestamp={T}",
            encode(url)
        ))
        .json();
    assert_eq!(
        (one["total"].as_i64(), one["direct"].as_i64()),
        (Some(4), Some(2))
    );
    let keys = cluster.keys();
    let shard = format!("hits:sources:{{r{}}}:week:", index_shard(url));
    assert!(
        keys.iter()
            .any(|k| k.starts_with(&shard) && k.ends_with(&format!(":url:{url}"))),
        "{keys:?}"
    );
    let shards: BTreeSet<&str> = keys
        .iter()
        .filter(|k| k.starts_with("hits:sources:{r"))
        .map(|k| k.split(['{', '}']).nth(1).unwrap())
        .collect();
    assert!(shards.len() > 8, "40 URLs over the 16 shards: {shards:?}");
}

/// Every count of `urls` in one bucket (`hits:{tag}:<bucket>`), in rank order: the truth a
/// kept ranking must match.
fn truth_of(cluster: &Cluster, urls: &[String], bucket: &str) -> Vec<(String, i64)> {
    let mut conn = cluster.client();
    let mut all: Vec<(String, i64)> = urls
        .iter()
        .filter_map(|url| {
            let key = format!("hits:{{{}}}:{bucket}", url_tag(url));
            hget(&mut conn, &key, url).map(|n| (url.clone(), n))
        })
        .collect();
    all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    all
}

/// The shards' tallies of a bucket, added up, as the hits wrote them.
fn tallied(cluster: &Cluster, bucket: &str) -> (i64, i64) {
    let mut conn = cluster.client();
    (0..16).fold((0, 0), |(total, urls), shard| {
        let tally = format!("hits:tally:{{r{shard}}}:{bucket}");
        (
            total + hget(&mut conn, &tally, "total").unwrap_or(0),
            urls + hget(&mut conn, &tally, "urls").unwrap_or(0),
        )
    })
}

/// Every `/top` page within K of the all-time and the minute bucket of `ts` is the truth,
/// with its total and number of URLs, and says it was answered from the kept ranking.
fn check_kept(cluster: &Cluster, hitme: &HitMe, urls: &[String], ts: i64, k: usize, when: &str) {
    let minute = format!("minute:{}", ts / 60_000 * 60_000);
    for (period, bucket) in [("all", "all"), ("minute", minute.as_str())] {
        let want = truth_of(cluster, urls, bucket);
        for (offset, limit) in [(0, k), (0, 1), (1, 3), (k - 1, 1)] {
            let target =
                format!("/top?period={period}&offset={offset}&limit={limit}&timestamp={ts}");
            let body = get_ok(hitme, &target);
            assert_eq!(body["ranking"], "kept", "{when}: {target}");
            let page: Vec<(String, i64)> = body["top"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    (
                        e["url"].as_str().unwrap().to_string(),
                        e["count"].as_i64().unwrap(),
                    )
                })
                .collect();
            let end = (offset + limit).min(want.len());
            assert_eq!(page, want[offset.min(end)..end], "{when}: {target}");
            assert_eq!(
                body["total"].as_i64().unwrap(),
                want.iter().map(|(_, n)| n).sum::<i64>(),
                "{when}: {target}: total"
            );
            assert_eq!(
                body["urls"].as_u64().unwrap() as usize,
                want.len(),
                "{when}: {target}"
            );
        }
    }
}

/// Hits from eight clients at once, on `urls` with Zipf-like popularity.
fn post_many(hitme: &HitMe, urls: &[String], hits: usize, seed: u64, ts: i64) {
    let mut state = seed;
    let chosen: Vec<String> = (0..hits)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let r = (state % 1_000_000) as f64 / 1_000_000.0;
            let i = ((urls.len() as f64).powf(r) as usize).saturating_sub(1);
            urls[i.min(urls.len() - 1)].clone()
        })
        .collect();
    hitme.hit_from(&chosen, 8, ts);
}

/// `hitme import --add` of `rows` (CSV lines under the export's header) with `args`.
fn import_rows(args: &[&str], rows: &str) {
    let file = std::env::temp_dir().join(format!(
        "hitme-cluster-import-{}-{}",
        std::process::id(),
        common::free_port()
    ));
    let header = "# hitme export v1\nmetric,period,start,url,count\n";
    std::fs::write(&file, format!("{header}{rows}")).unwrap();
    let import = [args, &["import", file.to_str().unwrap(), "--add"]].concat();
    let out = common::hitme_command(UNUSED_REDIS_URL, &import)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    std::fs::remove_file(&file).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `--rankings` in cluster mode: each bucket's ranking kept in 16 shards by the URL's index
/// shard and merged when read, equal to the counts through hits from many clients, counts
/// written before rankings were kept (rebuilt), a removal, an import and a rebuild under
/// hits; a bucket begun after rankings were kept needs no rebuild for the shards it has no
/// URL in; and every HitMe of the cluster must agree on the flag.
#[test]
fn rankings_are_kept_in_shards_and_merged_in_cluster_mode() {
    const K: usize = 5;
    const TOKEN: &str = "admin-cluster-rankings-4b1d";
    let cluster = Cluster::start();
    let urls: Vec<String> = (0..60)
        .map(|i| format!("http://shop.example/item/{i}"))
        .collect();
    let now = now_ms();

    // Counts written without rankings, then a HitMe with them: refused until the record of
    // the first is removed.
    let plain = cluster.hitme(&[]);
    post_many(&plain, &urls, 120, 7, now);
    drop(plain);
    let nodes = cluster.nodes();
    let ranked_args = [
        "--redis-cluster",
        nodes.as_str(),
        "--rankings",
        "--ranking-size",
        "5",
    ];
    let out = common::hitme_command(
        UNUSED_REDIS_URL,
        &[&ranked_args[..], &["rebuild-rankings"]].concat(),
    )
    .stderr(std::process::Stdio::piped())
    .output()
    .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("--rankings off (this HitMe: on)")
            && said.contains("HDEL hits:config rankings rankings_since"),
        "{said}"
    );
    redis::cmd("HDEL")
        .arg("hits:config")
        .arg("rankings")
        .query::<i64>(&mut cluster.client())
        .unwrap();
    let hitme = cluster.hitme(&["--rankings", "--ranking-size", "5", "--admin-token", TOKEN]);

    // An export writes nothing: it needs no --rankings.
    let export = common::hitme_command(UNUSED_REDIS_URL, &["--redis-cluster", &nodes, "export"])
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );

    // The first reads rebuild what was counted before; then hits keep the shards.
    check_kept(&cluster, &hitme, &urls, now, K, "counts from before");
    for round in 0..3 {
        post_many(&hitme, &urls, 300, 11 + round, now);
        let minute = format!("minute:{}", now / 60_000 * 60_000);
        for bucket in ["all", minute.as_str()] {
            let want = truth_of(&cluster, &urls, bucket);
            assert_eq!(
                tallied(&cluster, bucket),
                (want.iter().map(|(_, n)| n).sum(), want.len() as i64),
                "round {round}: the shards' tallies of {bucket} as the hits left them"
            );
        }
        check_kept(&cluster, &hitme, &urls, now, K, &format!("round {round}"));
    }

    // Removing the first URL: its place is taken by the next.
    let first = truth_of(&cluster, &urls, "all")[0].0.clone();
    let target = format!("/hit?url={}", encode(&first));
    let auth = format!("Bearer {TOKEN}");
    let resp = request(
        hitme.addr,
        "DELETE",
        &target,
        &[("Authorization", auth.as_str())],
        b"",
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    check_kept(&cluster, &hitme, &urls, now, K, "after a removal");

    // An import adding to a URL of the tail: it leads.
    let tail = truth_of(&cluster, &urls, "all")[K + 3].0.clone();
    import_rows(&ranked_args, &format!("hits,all,0,{tail},100000\n"));
    check_kept(&cluster, &hitme, &urls, now, K, "after an import");
    assert_eq!(truth_of(&cluster, &urls, "all")[0].0, tail);

    // A rebuild while hits go on (an import marked every shard of the bucket stale).
    let everywhere: String = urls
        .iter()
        .map(|url| format!("hits,all,0,{url},1\n"))
        .collect();
    import_rows(&ranked_args, &everywhere);
    let hitting = {
        let (addr, urls) = (hitme.addr, urls.clone());
        std::thread::spawn(move || {
            for i in 0..400 {
                let body = format!("url={}&timestamp={now}", encode(&urls[(i * 7) % 60]));
                let ct = [("Content-Type", "application/x-www-form-urlencoded")];
                assert_eq!(
                    request(addr, "POST", "/hit", &ct, body.as_bytes()).status,
                    200
                );
            }
        })
    };
    assert_eq!(get_ok(&hitme, "/top?limit=5")["ranking"], "kept");
    hitting.join().unwrap();
    check_kept(
        &cluster,
        &hitme,
        &urls,
        now,
        K,
        "after a rebuild under hits",
    );
    let keys = cluster.keys();
    assert!(
        !keys.iter().any(|k| k.starts_with("hits:seen:")),
        "notes left: {keys:?}"
    );

    // A bucket begun after rankings were kept: shards without its URLs have no tally, and
    // are read as empty, not rebuilt.
    let later = now + 3_600_000;
    for url in &urls[..3] {
        hitme.hit(url, later);
    }
    let hour = format!("hour:{}", later / 3_600_000 * 3_600_000);
    let body = get_ok(
        &hitme,
        &format!("/top?period=hour&limit=5&timestamp={later}"),
    );
    assert_eq!(
        (body["ranking"].as_str(), body["total"].as_i64()),
        (Some("kept"), Some(3))
    );
    let tallies = cluster
        .keys()
        .into_iter()
        .filter(|k| k.starts_with("hits:tally:{r") && k.ends_with(&hour))
        .count();
    let shards: BTreeSet<u64> = urls[..3].iter().map(|u| index_shard(u)).collect();
    assert_eq!(tallies, shards.len(), "only the shards hit keep a tally");

    // Rankings spread over the shards: no hot slot.
    let ranked: BTreeSet<String> = cluster
        .keys()
        .into_iter()
        .filter(|k| k.starts_with("hits:rank:{r"))
        .map(|k| k.split(['{', '}']).nth(1).unwrap().to_string())
        .collect();
    assert!(ranked.len() > 8, "60 URLs over the 16 shards: {ranked:?}");
}

/// The master holding a ranking shard killed: the hits counted meanwhile on the other
/// masters cannot be ranked, and their shard's rankings cannot be marked either. HitMe
/// remembers them, marks them once the shard answers again (after the failover), and does
/// not serve them until then: every page is exact afterwards.
#[test]
fn hits_ranked_while_their_shard_is_down_are_not_lost_to_the_ranking() {
    const K: usize = 5;
    let cluster = Cluster::start();
    let hitme = cluster.hitme(&["--rankings", "--ranking-size", "5", "--threads", "8"]);
    let urls: Vec<String> = (0..120)
        .map(|i| format!("http://failover.example/{i}"))
        .collect();
    let now = now_ms();
    hitme.hit_from(&urls, 4, now); // every URL indexed and counted before the kill
    check_kept(&cluster, &hitme, &urls, now, K, "before the kill");

    let shard_master =
        |url: &str| cluster.master_of_slot(slot_of_tag(&format!("r{}", index_shard(url))));
    let own_master = |url: &str| cluster.master_of_slot(slot_of_tag(&url_tag(url)));
    let first = urls
        .iter()
        .find(|u| shard_master(u) != own_master(u))
        .expect("a URL whose shard is on another master");
    let victim = shard_master(first);
    let stranded: Vec<String> = urls
        .iter()
        .filter(|u| shard_master(u) == victim && own_master(u) != victim)
        .take(8)
        .cloned()
        .collect();
    let shard_slot = slot_of_tag(&format!("r{}", index_shard(first)));

    let pid = pid_of(&cluster, victim);
    // SAFETY: kill(2) on the pid of a redis-server this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    // Counted on their own masters, which are up: 200, though they cannot be ranked.
    for _ in 0..3 {
        for url in &stranded {
            let body = format!("url={}&timestamp={now}", encode(url));
            assert_eq!(hitme.post_form("/hit", &body).status, 200, "{url}");
        }
    }
    wait_for_failover(&cluster, shard_slot, victim);
    check_kept(&cluster, &hitme, &urls, now, K, "after the failover");
}
