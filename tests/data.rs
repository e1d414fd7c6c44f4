//! Owning the data: `hitme export` and `hitme import` move every count between Redis servers
//! and layouts (standalone and cluster, both ways) exactly; importing twice changes nothing,
//! `--add` adds; a file with one bad line writes nothing and names the line; `url,count`
//! totals import; with `--admin-token`, `DELETE /hit` removes exactly one URL everywhere and
//! `GET /export` streams the export.

mod common;

use std::collections::BTreeMap;
use std::process::{Output, Stdio};

use common::cluster::Cluster;
use common::{encode, request, HitMe, Redis};

const T: i64 = 1_700_010_123_456;
const DAY: i64 = 86_400_000;

/// URLs that need care in CSV: commas, quotes, a long query.
fn urls() -> Vec<String> {
    let mut urls: Vec<String> = (0..30)
        .map(|i| format!("http://site.example/page/{i}"))
        .collect();
    urls.push("http://site.example/a,b?q=\"quoted\"&x=1,2".into());
    urls.push(format!("https://other.example/{}", "long/".repeat(40)));
    urls
}

/// Hits over three days and two hours, and visits by two visitors.
fn record(hitme: &HitMe) {
    for (i, url) in urls().iter().enumerate() {
        for k in 0..(1 + i % 4) {
            let ts = T - (k as i64 % 3) * DAY - (k as i64 % 2) * 3_600_000;
            let body = format!("url={}&timestamp={ts}", encode(url));
            for visitor in ["10.0.0.1", "10.0.0.2"] {
                let headers = [
                    ("Content-Type", "application/x-www-form-urlencoded"),
                    ("X-Forwarded-For", visitor),
                ];
                let resp = request(hitme.addr, "POST", "/hit", &headers, body.as_bytes());
                assert_eq!(resp.status, 200, "{}", resp.text());
            }
        }
    }
}

/// Every field of every hash under the prefix, by key: the whole of the counts.
/// The counting hashes under the prefix (a site's visitors, which an export leaves out, and
/// the settings are not among them).
fn hashes(redis: &Redis) -> BTreeMap<String, BTreeMap<String, i64>> {
    let mut conn = redis.conn();
    let mut all = BTreeMap::new();
    for key in redis.keys() {
        let kind: String = redis::cmd("TYPE").arg(&key).query(&mut conn).unwrap();
        if kind == "hash" && !key.ends_with(":config") && !key.contains(":sitevisitors:") {
            let fields: BTreeMap<String, i64> =
                redis::cmd("HGETALL").arg(&key).query(&mut conn).unwrap();
            all.insert(key, fields);
        }
    }
    all
}

fn tool(redis_url: &str, extra: &[&str], args: &[&str]) -> Output {
    let mut all = extra.to_vec();
    all.extend_from_slice(args);
    common::hitme_command(redis_url, &all)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

fn export(redis_url: &str, extra: &[&str]) -> String {
    let out = tool(redis_url, extra, &["export"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn import(redis_url: &str, extra: &[&str], text: &str, add: bool) -> Output {
    let file = std::env::temp_dir().join(format!(
        "hitme-import-test-{}-{}",
        std::process::id(),
        common::free_port()
    ));
    std::fs::write(&file, text).unwrap();
    let path = file.to_str().unwrap().to_string();
    let mut args = vec!["import", path.as_str()];
    if add {
        args.push("--add");
    }
    let out = tool(redis_url, extra, &args);
    std::fs::remove_file(&file).unwrap();
    out
}

/// The lines of an export after its two first ones, sorted: its rows.
fn rows(export: &str) -> Vec<String> {
    let mut lines: Vec<String> = export.lines().skip(2).map(String::from).collect();
    lines.sort();
    lines
}

fn counts(hitme: &HitMe, url: &str) -> serde_json::Value {
    hitme
        .get(&format!("/hit?url={}&timestamp={T}", encode(url)))
        .json()
}

/// A Redis with hits and visits recorded through a HitMe, and its export.
fn recorded_and_exported() -> (Redis, HitMe, String) {
    let source = Redis::start();
    let hitme = HitMe::start_with(
        &source.url(),
        &["--visits", "--trusted-proxies", "127.0.0.1/32"],
    );
    record(&hitme);
    let text = export(&source.url(), &[]);
    (source, hitme, text)
}

#[test]
fn an_export_imported_elsewhere_is_every_count_exactly_and_twice_is_once() {
    let (source, hitme, text) = recorded_and_exported();
    assert!(
        text.starts_with("# hitme export v1\nmetric,period,start,url,count\n"),
        "{}",
        &text[..80]
    );
    // A URL with commas is one quoted field.
    assert!(
        text.contains(",\"http://site.example/a,b?q="),
        "CSV quoting"
    );
    assert!(text.lines().any(|l| l.starts_with("visits,day,")));

    let target = Redis::start();
    let out = import(&target.url(), &[], &text, false);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains(&format!("imported {} counts", rows(&text).len())),
        "{said}"
    );
    let expected = hashes(&source);
    assert_eq!(hashes(&target), expected);
    let reader = HitMe::start_with(&target.url(), &["--visits"]);
    for url in urls() {
        assert_eq!(counts(&reader, &url), counts(&hitme, &url), "{url}");
    }
    // Twice is once; --add adds.
    assert!(import(&target.url(), &[], &text, false).status.success());
    assert_eq!(hashes(&target), expected);
    assert!(import(&target.url(), &[], &text, true).status.success());
    let doubled: BTreeMap<String, BTreeMap<String, i64>> = expected
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.iter().map(|(u, n)| (u.clone(), 2 * n)).collect(),
            )
        })
        .collect();
    assert_eq!(hashes(&target), doubled);

    // JSON lines say the same.
    let jsonl = tool(&source.url(), &[], &["export", "--format", "jsonl"]);
    let jsonl = String::from_utf8(jsonl.stdout).unwrap();
    assert_eq!(jsonl.lines().count(), rows(&text).len());
    let again = Redis::start();
    assert!(import(&again.url(), &[], &jsonl, false).status.success());
    assert_eq!(hashes(&again), expected);

    // --since leaves older buckets out, all-time in.
    let from_today = tool(
        &source.url(),
        &[],
        &["export", "--since", &(T - T % DAY).to_string()],
    );
    let from_today = String::from_utf8(from_today.stdout).unwrap();
    assert!(rows(&from_today).len() < rows(&text).len());
    assert!(rows(&from_today)
        .iter()
        .any(|r| r.starts_with("hits,all,0,")));
    assert!(!rows(&from_today)
        .iter()
        .any(|r| r.starts_with(&format!("hits,day,{},", T - T % DAY - DAY))));
}

#[test]
fn a_file_with_one_bad_line_writes_nothing_and_names_the_line() {
    let redis = Redis::start();
    let text = "# hitme export v1\nmetric,period,start,url,count\n\
                hits,all,0,http://a.example/,3\n\
                hits,day,1700006400000,http://a.example/,3\n\
                hits,dya,1700006400000,http://a.example/,3\n\
                hits,hour,1700010000000,http://a.example/,3\n";
    let out = import(&redis.url(), &[], text, false);
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("line 5: period \"dya\" is not one of all, month, week, day, hour, minute; nothing was written"),
        "{said}"
    );
    assert_eq!(
        redis.keys(),
        vec!["hits:config".to_string()],
        "only the calendar it checked"
    );
}

#[test]
fn url_count_totals_from_another_counter_import_as_all_time_hits() {
    let redis = Redis::start();
    let out = import(
        &redis.url(),
        &[],
        "url,count\nhttp://a.example/,120\nhttp://b.example/x,7\n",
        false,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(redis.hget("hits:all", "http://a.example/"), Some(120));
    assert_eq!(redis.hget("hits:all", "http://b.example/x"), Some(7));
    assert_eq!(
        redis.keys(),
        vec!["hits:all".to_string(), "hits:config".to_string()]
    );
}

/// Standalone to cluster and back: every count the same.
#[test]
fn counts_move_between_standalone_and_cluster_mode() {
    let (_source, hitme, text) = recorded_and_exported();
    let cluster = Cluster::start();
    let nodes = cluster.nodes();
    let in_cluster = ["--redis-cluster", nodes.as_str()];
    let out = import("unused", &in_cluster, &text, false);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reader = cluster.hitme(&["--visits"]);
    for url in urls() {
        assert_eq!(counts(&reader, &url), counts(&hitme, &url), "{url}");
    }
    // /hits finds every URL through the cluster's index.
    let all = reader.get(&format!("/hits?timestamp={T}")).json();
    assert_eq!(all["all_time"].as_object().unwrap().len(), urls().len());
    // And back.
    let back = export("unused", &in_cluster);
    assert_eq!(rows(&back), rows(&text));
}

#[test]
fn delete_removes_one_url_everywhere_and_only_with_the_admin_token() {
    const TOKEN: &str = "admin-5e1f9a7c3b2d";
    let redis = Redis::start();
    let plain = HitMe::start(&redis.url());
    assert_eq!(plain.get("/export").status, 404);
    assert_eq!(
        request(plain.addr, "DELETE", "/hit?url=x", &[], b"").status,
        405
    );

    let hitme = HitMe::start_with(
        &redis.url(),
        &[
            "--admin-token",
            TOKEN,
            "--visits",
            "--trusted-proxies",
            "127.0.0.1/32",
        ],
    );
    record(&hitme);
    let victim = "http://site.example/page/3";
    let before = hashes(&redis);
    let target = format!("/hit?url={}", encode(victim));
    let refused = request(hitme.addr, "DELETE", &target, &[], b"");
    assert_eq!(
        (refused.status, refused.header("WWW-Authenticate")),
        (401, Some("Bearer"))
    );
    let wrong = request(
        hitme.addr,
        "DELETE",
        &target,
        &[("Authorization", "Bearer nope")],
        b"",
    );
    assert_eq!(wrong.status, 401);
    let bearer = format!("Bearer {TOKEN}");
    let auth = [("Authorization", bearer.as_str())];
    let deleted = request(hitme.addr, "DELETE", &target, &auth, b"");
    assert_eq!(deleted.status, 200, "{}", deleted.text());
    let answer = deleted.json();
    let buckets = before
        .values()
        .filter(|fields| fields.contains_key(victim))
        .count();
    assert_eq!(answer["buckets"], buckets as i64);
    assert_eq!(answer["hits"], before["hits:all"][victim]);
    assert_eq!(answer["visits"], before["hits:visits:all"][victim]);
    // Exactly that URL, everywhere, and nothing else.
    let mut expected = before.clone();
    for fields in expected.values_mut() {
        fields.remove(victim);
    }
    expected.retain(|_, fields| !fields.is_empty());
    assert_eq!(hashes(&redis), expected);

    // GET /export streams what hitme export writes.
    assert_eq!(hitme.get("/export").status, 401);
    let streamed = request(hitme.addr, "GET", "/export", &auth, b"");
    assert_eq!(
        streamed.header("Content-Type"),
        Some("text/csv; charset=utf-8")
    );
    assert_eq!(rows(&streamed.text()), rows(&export(&redis.url(), &[])));
}

#[test]
fn delete_in_cluster_mode_removes_one_url_everywhere() {
    let cluster = Cluster::start();
    let hitme = cluster.hitme(&[
        "--admin-token",
        "adm-4c8e1f0b9d2a",
        "--visits",
        "--trusted-proxies",
        "127.0.0.1/32",
    ]);
    record(&hitme);
    let victim = "http://site.example/page/3";
    let kept = "http://site.example/page/7";
    let (victim_before, kept_before) = (counts(&hitme, victim), counts(&hitme, kept));
    assert_eq!(victim_before["all_time"], 8);
    let deleted = request(
        hitme.addr,
        "DELETE",
        &format!("/hit?url={}", encode(victim)),
        &[("Authorization", "Bearer adm-4c8e1f0b9d2a")],
        b"",
    );
    assert_eq!(deleted.status, 200, "{}", deleted.text());
    assert_eq!(deleted.json()["hits"], 8);
    let gone = counts(&hitme, victim);
    for period in common::PERIODS {
        assert_eq!(gone[period], 0, "{period}");
        assert_eq!(gone["visits"][period], 0, "{period}");
    }
    assert_eq!(counts(&hitme, kept), kept_before);
    let all = hitme.get(&format!("/hits?timestamp={T}")).json();
    assert!(all["all_time"].get(victim).is_none());
    assert_eq!(all["all_time"].as_object().unwrap().len(), urls().len() - 1);
}
