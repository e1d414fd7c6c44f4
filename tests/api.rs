//! The HTTP API end to end: the real hitme binary against a real Redis, exact values read
//! back. Every test that speaks only HTTP runs three times: against a standalone Redis,
//! against a Redis Cluster (`--redis-cluster`), whose key layout differs but whose answers
//! must not, and against a standalone Redis with buckets cut by a time zone's rules
//! (`--time-zone`), whose answers must be those of UTC wherever the zone agrees with it.

mod common;

use common::cluster::Cluster;
use common::{encode, now_ms, request, send, HitMe, Redis};
use serde_json::json;

/// Where a test's HitMe keeps its hits.
enum Backend {
    Standalone(Redis),
    Cluster(Cluster),
    /// A standalone Redis, with HitMe cutting buckets by the rules of `SUITE_ZONE`.
    Zoned(Redis),
}

/// A zone on UTC's calendar at every moment the suite uses (GMT, without DST, since 1968),
/// so that the suite's UTC expectations hold while every bucket goes through the zone rules.
const SUITE_ZONE: &str = "Atlantic/Reykjavik";

impl Backend {
    fn standalone() -> Backend {
        Backend::Standalone(Redis::start())
    }

    fn cluster() -> Backend {
        Backend::Cluster(Cluster::start())
    }

    fn zoned() -> Backend {
        Backend::Zoned(Redis::start())
    }

    /// A HitMe on this backend with `args` added.
    fn hitme(&self, args: &[&str]) -> HitMe {
        match self {
            Backend::Standalone(redis) => HitMe::start_with(&redis.url(), args),
            Backend::Cluster(cluster) => cluster.hitme(args),
            Backend::Zoned(redis) if args.contains(&"--time-zone") => {
                HitMe::start_with(&redis.url(), args)
            }
            Backend::Zoned(redis) => {
                let mut all = vec!["--time-zone", SUITE_ZONE];
                all.extend_from_slice(args);
                HitMe::start_with(&redis.url(), &all)
            }
        }
    }

    /// The zone HitMe names in its answers when not given one.
    fn zone(&self) -> &'static str {
        match self {
            Backend::Zoned(_) => SUITE_ZONE,
            _ => "UTC",
        }
    }
}

/// Each named test function, run once per backend.
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod standalone {
            $(#[test]
            fn $name() {
                super::$name(&super::Backend::standalone());
            })*
        }
        mod cluster {
            $(#[test]
            fn $name() {
                super::$name(&super::Backend::cluster());
            })*
        }
        mod zoned {
            $(#[test]
            fn $name() {
                super::$name(&super::Backend::zoned());
            })*
        }
    };
}

on_every_backend!(
    seed_examples_work_verbatim,
    the_seed_ab_data_files_are_counted_byte_for_byte,
    buckets_roll_over_at_their_boundaries,
    sunday_weeks_and_key_prefix_are_configurable,
    a_missing_empty_or_zero_timestamp_means_now,
    hits_can_come_as_query_form_or_json_and_body_wins,
    spellings_of_one_url_count_as_one,
    get_hits_reports_every_url_per_period,
    top_ranks_filters_and_pages_one_bucket,
    reads_of_many_urls_come_whole_in_chunks,
    series_lists_the_last_buckets_oldest_first,
    healthz_and_dashboard,
    bad_input_gets_a_clear_json_error,
    a_huge_declared_body_is_refused_unread,
    buckets_follow_a_local_calendar_across_dst,
);

/// 2023-11-15T01:02:03.456Z, a Wednesday.
const T: i64 = 1_700_010_123_456;
/// The last millisecond of 2023 (a Sunday) and the first of 2024 (a Monday).
const END_2023: i64 = 1_704_067_199_999;
const START_2024: i64 = 1_704_067_200_000;

fn counts(hitme: &HitMe, url: &str, ts: i64) -> serde_json::Value {
    let resp = hitme.get(&format!("/hit?url={}&timestamp={ts}", encode(url)));
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("Content-Type"), Some("application/json"));
    resp.json()
}

fn expected(url: &str, c: [i64; 6]) -> serde_json::Value {
    json!({"status": "OK", "url": url, "all_time": c[0], "last_month": c[1], "last_week": c[2],
           "last_day": c[3], "last_hour": c[4], "last_minute": c[5]})
}

fn seed_examples_work_verbatim(backend: &Backend) {
    let hitme = backend.hitme(&[]);
    let resp = hitme.post_form("/hit", "url=http%3A%2F%2Fwww.olark.com%2F&timestamp=0");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.text(), r#"{"status":"OK"}"#);
    assert_eq!(resp.header("Content-Type"), Some("application/json"));

    let resp = hitme.get("/hit?url=http%3A%2F%2Fwww.olark.com%2F&timestamp=0");
    assert_eq!(resp.status, 200);
    let text = resp.text();
    assert!(
        text.starts_with(r#"{"status":"OK","url":"http://www.olark.com/","all_time":1,"#),
        "{text}"
    );
    assert_eq!(resp.json(), expected("http://www.olark.com/", [1; 6]));
}

/// The original project's load test posts these files as they are, each ending in a newline.
fn the_seed_ab_data_files_are_counted_byte_for_byte(backend: &Backend) {
    let hitme = backend.hitme(&[]);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ab_data");
    let files = [
        ("ab_data0", "http://www.olark.com/"),
        ("ab_data1", "http://www.olark.com/about.html"),
        ("ab_data2", "http://www.olark.com/features.html"),
    ];
    for (n, (file, _)) in files.iter().enumerate() {
        let body = std::fs::read(dir.join(file)).unwrap();
        assert_eq!(
            body.last(),
            Some(&b'\n'),
            "{file} is the seed's file, newline included"
        );
        for _ in 0..=n {
            let resp = request(
                hitme.addr,
                "POST",
                "/hit",
                &[("Content-Type", "application/x-www-form-urlencoded")],
                &body,
            );
            assert_eq!(resp.status, 200, "{file}: {}", resp.text());
            assert_eq!(resp.text(), r#"{"status":"OK"}"#);
        }
    }
    let now = now_ms();
    for (n, (file, url)) in files.iter().enumerate() {
        let all_time = counts(&hitme, url, now)["all_time"].clone();
        assert_eq!(all_time, json!(n + 1), "{file}");
    }
}

#[test]
fn a_hit_lands_in_every_bucket_with_the_original_key_layout() {
    let redis = Redis::start();
    let hitme = HitMe::start(&redis.url());
    hitme.hit("http://www.olark.com/", T);
    hitme.hit("http://www.olark.com/", T + 1);
    let keys = [
        "hits:all",
        "hits:config",
        "hits:day:1700006400000",
        "hits:hour:1700010000000",
        "hits:minute:1700010120000",
        "hits:month:1698796800000",
        "hits:week:1699833600000",
    ];
    assert_eq!(redis.keys(), keys);
    for key in keys.iter().filter(|k| **k != "hits:config") {
        assert_eq!(redis.hget(key, "http://www.olark.com/"), Some(2), "{key}");
    }
    // The calendar the buckets were cut on, recorded at startup.
    assert_eq!(
        redis.hget_text("hits:config", "time_zone").as_deref(),
        Some("UTC")
    );
    assert_eq!(
        redis.hget_text("hits:config", "week_start").as_deref(),
        Some("monday")
    );
    assert_eq!(
        counts(&hitme, "http://www.olark.com/", T),
        expected("http://www.olark.com/", [2; 6])
    );
}

fn buckets_roll_over_at_their_boundaries(backend: &Backend) {
    let hitme = backend.hitme(&[]);
    let url = "http://a.example/";
    hitme.hit(url, END_2023);
    hitme.hit(url, START_2024);
    hitme.hit(url, START_2024 + 59_999); // still the first minute of 2024
    hitme.hit(url, START_2024 + 60_000); // the second minute
    assert_eq!(
        counts(&hitme, url, END_2023),
        expected(url, [4, 1, 1, 1, 1, 1])
    );
    assert_eq!(
        counts(&hitme, url, START_2024),
        expected(url, [4, 3, 3, 3, 3, 2])
    );
    assert_eq!(
        counts(&hitme, url, START_2024 + 60_000),
        expected(url, [4, 3, 3, 3, 3, 1])
    );
    // Another hour, day and month: only all-time remains.
    assert_eq!(
        counts(&hitme, url, START_2024 + 3_600_000),
        expected(url, [4, 3, 3, 3, 0, 0])
    );
    assert_eq!(counts(&hitme, url, T), expected(url, [4, 0, 0, 0, 0, 0]));
}

fn sunday_weeks_and_key_prefix_are_configurable(backend: &Backend) {
    let hitme = backend.hitme(&["--week-start", "sunday", "--key-prefix", "site1"]);
    let url = "http://a.example/";
    hitme.hit(url, END_2023);
    hitme.hit(url, START_2024);
    // 2023-12-31 is a Sunday, so both hits share the week that began then.
    assert_eq!(
        counts(&hitme, url, START_2024),
        expected(url, [2, 1, 2, 1, 1, 1])
    );
    // Another prefix on the same Redis sees none of them.
    let other = backend.hitme(&[]);
    assert_eq!(counts(&other, url, START_2024), expected(url, [0; 6]));
}

#[test]
fn standalone_keys_follow_the_original_layout_weeks_and_prefix() {
    let redis = Redis::start();
    let url = "http://a.example/";
    let hitme = HitMe::start(&redis.url());
    for ts in [
        END_2023,
        START_2024,
        START_2024 + 59_999,
        START_2024 + 60_000,
    ] {
        hitme.hit(url, ts);
    }
    assert_eq!(redis.hget("hits:week:1703462400000", url), Some(1)); // Monday 2023-12-25
    assert_eq!(redis.hget("hits:week:1704067200000", url), Some(3)); // Monday 2024-01-01
    let sunday = HitMe::start_with(
        &redis.url(),
        &["--week-start", "sunday", "--key-prefix", "site1"],
    );
    sunday.hit(url, END_2023);
    sunday.hit(url, START_2024);
    assert_eq!(redis.hget("site1:week:1703980800000", url), Some(2)); // Sunday 2023-12-31
    assert_eq!(redis.hget("site1:all", url), Some(2));
    assert_eq!(redis.hget("hits:all", url), Some(4));
}

fn a_missing_empty_or_zero_timestamp_means_now(backend: &Backend) {
    let hitme = backend.hitme(&[]);
    let url = "http://now.example/";
    let before = now_ms();
    for body in ["", "&timestamp=", "&timestamp=0"] {
        let resp = hitme.post_form("/hit", &format!("url={}{body}", encode(url)));
        assert_eq!(resp.status, 200, "{body}");
    }
    let after = now_ms();
    let at = |ts: i64| counts(&hitme, url, ts);
    assert_eq!(at(after)["all_time"], 3);
    // Each hit is in the minute of a moment between `before` and `after`: the two minutes
    // hold all three (one minute, counted once, when both are the same).
    let (first, last) = (
        at(before)["last_minute"].as_i64().unwrap(),
        at(after)["last_minute"].as_i64().unwrap(),
    );
    let same_minute = before / 60_000 == after / 60_000;
    assert_eq!(
        if same_minute { last } else { first + last },
        3,
        "before {before}, after {after}"
    );
    if same_minute {
        assert_eq!(first, 3);
    }
}

fn hits_can_come_as_query_form_or_json_and_body_wins(backend: &Backend) {
    let hitme = backend.hitme(&[]);
    let q = format!("/hit?url={}&timestamp={T}", encode("http://query.example/"));
    assert_eq!(request(hitme.addr, "POST", &q, &[], b"").status, 200);
    let json = format!(r#"{{"url":"http://json.example/","timestamp":{T}}}"#);
    assert_eq!(hitme.post_json(&json).status, 200);
    let resp = request(
        hitme.addr,
        "POST",
        &q,
        &[(
            "Content-Type",
            "application/x-www-form-urlencoded; charset=UTF-8",
        )],
        format!("url={}", encode("http://body.example/")).as_bytes(),
    );
    assert_eq!(resp.status, 200);
    for url in [
        "http://query.example/",
        "http://json.example/",
        "http://body.example/",
    ] {
        // The body's url won, the query's timestamp filled the gap.
        assert_eq!(counts(&hitme, url, T), expected(url, [1; 6]), "{url}");
    }
}

fn spellings_of_one_url_count_as_one(backend: &Backend) {
    let hitme = backend.hitme(&[]);
    for spelling in [
        "http://WWW.Olark.com",
        "http://www.olark.com/",
        "http://www.olark.com:80/#pricing",
        "HTTP://www.OLARK.com",
    ] {
        hitme.hit(spelling, T);
    }
    hitme.hit("https://www.olark.com/", T);
    let all = hitme.get(&format!("/hits?timestamp={T}")).json();
    assert_eq!(
        all["all_time"],
        json!({"http://www.olark.com/": 4, "https://www.olark.com/": 1})
    );
    let resp = counts(&hitme, "http://WWW.OLARK.COM:80", T);
    assert_eq!(resp, expected("http://www.olark.com/", [4; 6]));
}

fn get_hits_reports_every_url_per_period(backend: &Backend) {
    let hitme = backend.hitme(&[]);
    let (a, b) = ("http://a.example/", "http://b.example/x?y=1");
    hitme.hit(a, T);
    hitme.hit(a, T);
    hitme.hit(b, T);
    hitme.hit(b, T - 3_600_000); // the hour before: same day
    let resp = hitme.get(&format!("/hits?timestamp={T}"));
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.json(),
        json!({"status": "OK",
               "all_time": {a: 2, b: 2}, "last_month": {a: 2, b: 2}, "last_week": {a: 2, b: 2},
               "last_day": {a: 2, b: 2}, "last_hour": {a: 2, b: 1}, "last_minute": {a: 2, b: 1}})
    );
    let later = hitme
        .get(&format!("/hits?timestamp={}", T + 86_400_000))
        .json();
    assert_eq!(later["last_day"], json!({}));
    assert_eq!(later["all_time"], json!({a: 2, b: 2}));
}

fn top(hitme: &HitMe, query: &str) -> serde_json::Value {
    let resp = hitme.get(&format!("/top?{query}"));
    assert_eq!(resp.status, 200, "{query}: {}", resp.text());
    assert_eq!(resp.header("Content-Type"), Some("application/json"));
    resp.json()
}

fn top_ranks_filters_and_pages_one_bucket(backend: &Backend) {
    let hitme = backend.hitme(&[]);
    let (shoes, hats, laces, blog) = (
        "http://shop.example/Shoes",
        "http://shop.example/hats",
        "http://shop.example/shoelaces",
        "http://blog.example/",
    );
    for (url, n) in [(shoes, 3), (hats, 5), (laces, 3)] {
        for _ in 0..n {
            hitme.hit(url, T);
        }
    }
    hitme.hit(blog, T - 86_400_000); // the day before
    let entry = |url: &str, count: i64| json!({"url": url, "count": count});
    assert_eq!(
        top(&hitme, &format!("timestamp={T}")),
        json!({"status": "OK", "period": "all", "start": null, "total": 12, "urls": 4,
               "top": [entry(hats, 5), entry(shoes, 3), entry(laces, 3), entry(blog, 1)]})
    );
    assert_eq!(
        top(&hitme, &format!("period=day&timestamp={T}")),
        json!({"status": "OK", "period": "day", "start": 1_700_006_400_000_i64, "total": 11,
               "urls": 3, "top": [entry(hats, 5), entry(shoes, 3), entry(laces, 3)]})
    );
    let page = top(
        &hitme,
        &format!("period=day&limit=1&offset=1&timestamp={T}"),
    );
    assert_eq!(
        (page["total"].clone(), page["urls"].clone()),
        (json!(11), json!(3))
    );
    assert_eq!(page["top"], json!([entry(shoes, 3)]));
    let filtered = top(&hitme, &format!("period=week&q=SHOE&timestamp={T}"));
    assert_eq!(
        (filtered["total"].clone(), filtered["urls"].clone()),
        (json!(6), json!(2))
    );
    assert_eq!(filtered["top"], json!([entry(shoes, 3), entry(laces, 3)]));
    let empty = top(&hitme, &format!("period=minute&timestamp={}", T + 60_000));
    assert_eq!(empty["top"], json!([]));
    assert_eq!(
        (empty["total"].clone(), empty["urls"].clone()),
        (json!(0), json!(0))
    );

    for (query, error) in [
        ("period=year", "period must be one of all"),
        ("limit=0", "limit must be a whole number from 1 to 1000"),
        ("limit=1001", "limit must be a whole number from 1 to 1000"),
        ("offset=-1", "offset must be a whole number from 0 up"),
        ("timestamp=abc", "timestamp is not a whole number"),
    ] {
        let resp = hitme.get(&format!("/top?{query}"));
        assert_eq!(resp.status, 400, "{query}");
        assert!(resp.error().starts_with(error), "{query}: {}", resp.error());
    }

    // A new hit shows within the 2 s a ranking is kept.
    hitme.hit(blog, T);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let now = top(&hitme, &format!("period=day&timestamp={T}"));
        if now["urls"] == json!(4) {
            assert_eq!(now["total"], json!(12));
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the new hit never showed: {now}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// More URLs than one chunk of a scan: `/hits` and `/top` still list every one, once.
fn reads_of_many_urls_come_whole_in_chunks(backend: &Backend) {
    let hitme = backend.hitme(&[]);
    let urls: Vec<String> = (0..1100)
        .map(|i| format!("http://many.example/{i}"))
        .collect();
    for (i, url) in urls.iter().enumerate() {
        hitme.hit(url, T);
        if i % 100 == 0 {
            hitme.hit(url, T);
        }
    }
    let resp = hitme.get(&format!("/hits?timestamp={T}"));
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("Transfer-Encoding"), Some("chunked"));
    let hits = resp.json();
    for period in ["all_time", "last_month", "last_day", "last_minute"] {
        let counts = hits[period].as_object().unwrap();
        assert_eq!(counts.len(), 1100, "{period}");
        assert_eq!(counts["http://many.example/0"], json!(2), "{period}");
        assert_eq!(counts["http://many.example/1"], json!(1), "{period}");
        let sum: i64 = counts.values().map(|v| v.as_i64().unwrap()).sum();
        assert_eq!(sum, 1111, "{period}");
    }
    let ranked = top(
        &hitme,
        &format!("period=hour&limit=1000&offset=5&timestamp={T}"),
    );
    assert_eq!(
        (ranked["urls"].clone(), ranked["total"].clone()),
        (json!(1100), json!(1111))
    );
    let top = ranked["top"].as_array().unwrap();
    assert_eq!(top.len(), 1000);
    // Eleven URLs have 2 hits (/0, /100, /1000, /200, ... by URL): the page starts with
    // the sixth of them.
    assert_eq!(
        top[0],
        json!({"url": "http://many.example/400", "count": 2})
    );
    assert_eq!(
        top[5],
        json!({"url": "http://many.example/900", "count": 2})
    );
    assert_eq!(top[6]["count"], json!(1));
}

fn series_lists_the_last_buckets_oldest_first(backend: &Backend) {
    let hitme = backend.hitme(&[]);
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
        json!({"status": "OK", "url": url, "period": "hour", "time_zone": backend.zone(), "buckets": [
            {"start": base, "count": 2},
            {"start": base + hour, "count": 0},
            {"start": base + 2 * hour, "count": 1},
            {"start": base + 3 * hour, "count": 3},
        ]})
    );
    let months = hitme
        .get(&format!(
            "/series?url={}&period=month&timestamp={}",
            encode(url),
            base
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
    for (query, message) in [
        ("period=hour&count=3", "url is required"),
        (
            "url=http%3A%2F%2Fa.b%2F&period=year",
            "period must be one of",
        ),
        (
            "url=http%3A%2F%2Fa.b%2F&period=day&count=1001",
            "count must be a whole number from 1 to 1000",
        ),
        (
            "url=http%3A%2F%2Fa.b%2F&period=day&count=0",
            "count must be",
        ),
    ] {
        let resp = hitme.get(&format!("/series?{query}"));
        assert_eq!(resp.status, 400, "{query}");
        assert!(resp.error().contains(message), "{query}: {}", resp.error());
    }
}

fn healthz_and_dashboard(backend: &Backend) {
    let hitme = backend.hitme(&[]);
    let resp = hitme.get("/healthz");
    assert_eq!(
        (resp.status, resp.text()),
        (200, r#"{"status":"OK"}"#.into())
    );
    for path in ["/", "/index.html"] {
        let resp = hitme.get(path);
        assert_eq!(resp.status, 200);
        assert_eq!(
            resp.header("Content-Type"),
            Some("text/html; charset=utf-8")
        );
        assert!(resp.text().contains("<title>HitMe dashboard</title>"));
    }
    let js = hitme.get("/app.js");
    assert_eq!(
        js.header("Content-Type"),
        Some("text/javascript; charset=utf-8")
    );
    assert!(js.text().contains("get(\"/top\""));
    assert_eq!(hitme.get("/style.css").status, 200);
    let head = request(hitme.addr, "HEAD", "/hits", &[], b"");
    assert_eq!(head.status, 200);
}

/// method, target, headers, body, expected status, expected words in the error.
type Case<'a> = (
    &'a str,
    &'a str,
    &'a [(&'a str, &'a str)],
    Vec<u8>,
    u16,
    &'a str,
);

/// Every kind of bad input gets its status and a JSON error, and nothing reaches Redis.
fn bad_input_gets_a_clear_json_error(backend: &Backend) {
    let hitme = backend.hitme(&[]);
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let json_ct = [("Content-Type", "application/json")];
    let long_url = format!("url=http%3A%2F%2Fx.example%2F{}", "a".repeat(10_000));
    let cases: Vec<Case> = vec![
        (
            "POST",
            "/hit",
            &form,
            b"timestamp=5".to_vec(),
            400,
            "url is required",
        ),
        (
            "POST",
            "/hit",
            &form,
            b"url=&timestamp=5".to_vec(),
            400,
            "url is required",
        ),
        (
            "POST",
            "/hit",
            &form,
            b"url=%2Frelative".to_vec(),
            400,
            "Invalid URL",
        ),
        (
            "POST",
            "/hit",
            &form,
            b"url=www.olark.com".to_vec(),
            400,
            "Invalid URL",
        ),
        (
            "POST",
            "/hit",
            &form,
            b"url=ftp%3A%2F%2Fx.org%2F".to_vec(),
            400,
            "Invalid URL",
        ),
        (
            "POST",
            "/hit",
            &form,
            long_url.into_bytes(),
            400,
            "Invalid URL",
        ),
        (
            "POST",
            "/hit",
            &form,
            b"url=http%3A%2F%2Fx.org%2F%zz".to_vec(),
            400,
            "bad percent-encoding",
        ),
        (
            "POST",
            "/hit",
            &form,
            b"url=http%3A%2F%2Fx.org%2F%FF".to_vec(),
            400,
            "not UTF-8",
        ),
        (
            "POST",
            "/hit",
            &form,
            b"url=http%3A%2F%2Fx.org%2F\xff\xfe".to_vec(),
            400,
            "not UTF-8",
        ),
        (
            "POST",
            "/hit",
            &form,
            b"url=http%3A%2F%2Fx.org%2F&timestamp=abc".to_vec(),
            400,
            "not a whole number",
        ),
        (
            "POST",
            "/hit",
            &form,
            b"url=http%3A%2F%2Fx.org%2F&timestamp=1.5".to_vec(),
            400,
            "not a whole number",
        ),
        (
            "POST",
            "/hit",
            &form,
            b"url=http%3A%2F%2Fx.org%2F&timestamp=-1".to_vec(),
            400,
            "must not be negative",
        ),
        (
            "POST",
            "/hit",
            &form,
            b"url=http%3A%2F%2Fx.org%2F&timestamp=253402300800000".to_vec(),
            400,
            "out of range",
        ),
        (
            "POST",
            "/hit",
            &form,
            b"url=http%3A%2F%2Fx.org%2F&timestamp=18446744073709551616".to_vec(),
            400,
            "out of range",
        ),
        (
            "POST",
            "/hit",
            &json_ct,
            b"[1,2,3]".to_vec(),
            400,
            "must be an object",
        ),
        (
            "POST",
            "/hit",
            &json_ct,
            b"{\"url\":".to_vec(),
            400,
            "not valid JSON",
        ),
        (
            "POST",
            "/hit",
            &json_ct,
            b"{\"url\":\"http://x.org/\",\"timestamp\":-5}".to_vec(),
            400,
            "must not be negative",
        ),
        ("GET", "/hit", &[], Vec::new(), 400, "url is required"),
        (
            "GET",
            "/hit?url=http%3A%2F%2Fx.org%2F&timestamp=x",
            &[],
            Vec::new(),
            400,
            "not a whole number",
        ),
        (
            "GET",
            "/hits?timestamp=-3",
            &[],
            Vec::new(),
            400,
            "must not be negative",
        ),
        ("GET", "/nope", &[], Vec::new(), 404, "no such path: /nope"),
        ("GET", "/hit/extra", &[], Vec::new(), 404, "no such path"),
        (
            "POST",
            "/hit",
            &form,
            vec![b'a'; 70_000],
            413,
            "over the 65536-byte limit",
        ),
    ];
    for (method, target, headers, body, status, message) in cases {
        let resp = request(hitme.addr, method, target, headers, &body);
        let what = format!(
            "{method} {target} {}",
            String::from_utf8_lossy(&body[..body.len().min(60)])
        );
        assert_eq!(resp.status, status, "{what}: {}", resp.text());
        let error = resp.error();
        assert!(
            error.contains(message),
            "{what}: {error:?} lacks {message:?}"
        );
    }
    for (method, path, allow) in [
        ("DELETE", "/hit", "GET, HEAD, POST, OPTIONS"),
        ("PUT", "/hits", "GET, HEAD, OPTIONS"),
        ("POST", "/healthz", "GET, HEAD, OPTIONS"),
        ("POST", "/", "GET, HEAD"),
    ] {
        let resp = request(hitme.addr, method, path, &[], b"");
        assert_eq!(resp.status, 405, "{method} {path}");
        assert_eq!(resp.header("Allow"), Some(allow), "{method} {path}");
        assert!(resp
            .error()
            .contains(&format!("method {method} is not allowed")));
    }
    let nothing = json!({"status": "OK", "all_time": {}, "last_month": {}, "last_week": {},
                         "last_day": {}, "last_hour": {}, "last_minute": {}});
    let all = hitme.get(&format!("/hits?timestamp={T}")).json();
    assert_eq!(all, nothing, "bad requests recorded hits");
    // The server is still fine.
    hitme.hit("http://x.org/", T);
    assert_eq!(counts(&hitme, "http://x.org/", T)["all_time"], 1);
}

fn a_huge_declared_body_is_refused_unread(backend: &Backend) {
    let hitme = backend.hitme(&[]);
    // Declares a gigabyte and sends nothing: answered at once, no worker waits for it.
    let raw = b"POST /hit HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000000000\r\n\r\n";
    let mut stalled = Vec::new();
    for _ in 0..8 {
        let mut stream = send(hitme.addr, raw);
        let resp = common::read_response(&mut stream);
        assert_eq!(resp.status, 413);
        assert!(resp.error().contains("over the 65536-byte limit"));
        stalled.push(stream); // keep them open and silent
    }
    hitme.hit("http://still.serving/", T);
    assert_eq!(counts(&hitme, "http://still.serving/", T)["all_time"], 1);
}

/// 2024-03-10 in New York: 00:00 EST is 05:00Z; at 02:00 EST (07:00Z) clocks jump to 03:00 EDT.
const NY_MAR10: i64 = 1_710_046_800_000;
/// 2024-03-10 23:30 EDT, 2024-03-11T03:30Z: the same local day as NY_MAR10, another UTC day.
const NY_MAR10_2330: i64 = 1_710_127_800_000;
/// 2024-03-11 00:00 EDT, a Monday.
const NY_MAR11: i64 = 1_710_129_600_000;
/// 2024-11-03 01:30 EDT (05:30Z) and, an hour later, 01:30 EST (06:30Z): the repeated hour.
const NY_NOV3_0130_EDT: i64 = 1_730_611_800_000;
const NY_NOV3_0130_EST: i64 = 1_730_615_400_000;

fn buckets_follow_a_local_calendar_across_dst(backend: &Backend) {
    let hitme = backend.hitme(&["--time-zone", "America/New_York"]);
    let url = "http://ny.example/";
    for ts in [NY_MAR10 + 1_800_000, NY_MAR10_2330, NY_MAR11 + 1_800_000] {
        hitme.hit(url, ts);
    }
    // 00:30 EST and 23:30 EDT are one local day (of 23 hours) and week (Monday 4 to Sunday
    // 10), though two UTC days; 00:30 on Monday 11 starts the next day and week.
    assert_eq!(
        counts(&hitme, url, NY_MAR10_2330),
        expected(url, [3, 3, 2, 2, 1, 1])
    );
    assert_eq!(
        counts(&hitme, url, NY_MAR11),
        expected(url, [3, 3, 1, 1, 1, 0])
    );
    // The repeated hour of the fall-back is two hour buckets in one day.
    hitme.hit(url, NY_NOV3_0130_EDT);
    hitme.hit(url, NY_NOV3_0130_EST);
    assert_eq!(
        counts(&hitme, url, NY_NOV3_0130_EST),
        expected(url, [5, 2, 2, 2, 1, 1])
    );
    // Hours around the jump: 00:00 EST, 01:00 EST, then 03:00 EDT; days of 23 and 24 hours.
    let series = |query: &str| {
        let resp = hitme.get(&format!("/series?url={}&{query}", encode(url)));
        assert_eq!(resp.status, 200, "{}", resp.text());
        resp.json()
    };
    assert_eq!(
        series(&format!(
            "period=hour&count=3&timestamp={}",
            NY_MAR10 + 7_200_000
        )),
        json!({"status": "OK", "url": url, "period": "hour", "time_zone": "America/New_York",
        "buckets": [
            {"start": NY_MAR10, "count": 1},
            {"start": NY_MAR10 + 3_600_000, "count": 0},
            {"start": NY_MAR10 + 7_200_000, "count": 0},
        ]})
    );
    assert_eq!(
        series(&format!("period=day&count=2&timestamp={NY_MAR11}")),
        json!({"status": "OK", "url": url, "period": "day", "time_zone": "America/New_York",
        "buckets": [
            {"start": NY_MAR10, "count": 2},
            {"start": NY_MAR11, "count": 1},
        ]})
    );
    // /top cuts the same bucket.
    let day = top(&hitme, &format!("period=day&timestamp={NY_MAR10_2330}"));
    assert_eq!(
        (&day["start"], &day["total"]),
        (&json!(NY_MAR10), &json!(2))
    );
}

#[test]
fn a_new_york_hit_lands_in_its_local_buckets() {
    let redis = Redis::start();
    let hitme = HitMe::start_with(&redis.url(), &["--time-zone", "America/New_York"]);
    hitme.hit("http://ny.example/", NY_MAR10_2330);
    // Named by their first millisecond, as the node build names them under TZ=America/New_York.
    let keys = [
        "hits:all",
        "hits:config",
        "hits:day:1710046800000",    // 2024-03-10 00:00 EST
        "hits:hour:1710126000000",   // 23:00 EDT
        "hits:minute:1710127800000", // 23:30 EDT
        "hits:month:1709269200000",  // 2024-03-01 00:00 EST
        "hits:week:1709528400000",   // Monday 2024-03-04 00:00 EST
    ];
    assert_eq!(redis.keys(), keys);
    for key in keys.iter().filter(|k| **k != "hits:config") {
        assert_eq!(redis.hget(key, "http://ny.example/"), Some(1), "{key}");
    }
    assert_eq!(
        redis.hget_text("hits:config", "time_zone").as_deref(),
        Some("America/New_York")
    );
}
