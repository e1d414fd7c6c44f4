//! `--visits`: a thousand visitors (distinct addresses through a trusted proxy, distinct
//! User-Agents) loading one page five times are 5,000 hits and 1,000 visits in every period,
//! and one more visit each after the window; the salt is one key that expires within 48 h,
//! and nothing in Redis names an address or a User-Agent. A site's visitors are counted once
//! per site. Without the flag nothing changes.

mod common;

use std::time::Duration;

use common::{encode, request, HitMe, Redis};

const T: i64 = 1_700_010_123_456;
const PAGE: &str = "http://site.example/article";
const VISITORS: usize = 1000;

/// The six bucket keys of `T` under `prefix`.
fn buckets(prefix: &str) -> [String; 6] {
    [
        format!("{prefix}:all"),
        format!("{prefix}:month:1698796800000"),
        format!("{prefix}:week:1699833600000"),
        format!("{prefix}:day:1700006400000"),
        format!("{prefix}:hour:1700010000000"),
        format!("{prefix}:minute:1700010120000"),
    ]
}

/// Visitor `i`'s address, as the trusted proxy names it.
fn address(i: usize) -> String {
    format!("10.{}.{}.{}", 1 + i / 65536, (i / 256) % 256, i % 256)
}

fn user_agent(i: usize) -> String {
    format!("Mozilla/5.0 (X11; Linux x86_64) TestBrowser/{i}.0")
}

/// Visitor `i` hits `url` at `T`, through the trusted proxy.
fn visit(hitme: &HitMe, i: usize, url: &str) {
    let (from, agent) = (address(i), user_agent(i));
    let headers = [
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("X-Forwarded-For", from.as_str()),
        ("User-Agent", agent.as_str()),
    ];
    let body = format!("url={}&timestamp={T}", encode(url));
    let resp = request(hitme.addr, "POST", "/hit", &headers, body.as_bytes());
    assert_eq!(resp.status, 200, "{}", resp.text());
}

/// Each visitor loads the page `loads` times; 8 clients at once, each its share in order.
fn load_page(hitme: &HitMe, loads: usize) {
    std::thread::scope(|s| {
        for part in 0..8 {
            s.spawn(move || {
                for i in (part..VISITORS).step_by(8) {
                    for _ in 0..loads {
                        visit(hitme, i, PAGE);
                    }
                }
            });
        }
    });
}

fn counts_in(redis: &Redis, prefix: &str) -> Vec<Option<i64>> {
    buckets(prefix)
        .iter()
        .map(|key| redis.hget(key, PAGE))
        .collect()
}

#[test]
fn a_thousand_visitors_loading_a_page_five_times_are_a_thousand_visits() {
    let redis = Redis::start();
    let hitme = HitMe::start_with(
        &redis.url(),
        &[
            "--visits",
            "--visit-window",
            // Long enough that every visitor key of the five loads (which take about 3 s
            // here, more on a busy machine) is still there when they are counted.
            "10s",
            "--trusted-proxies",
            "127.0.0.1/32",
        ],
    );
    load_page(&hitme, 5);
    assert_eq!(counts_in(&redis, "hits"), vec![Some(5000); 6]);
    assert_eq!(counts_in(&redis, "hits:visits"), vec![Some(1000); 6]);

    // The reads.
    let counts = hitme
        .get(&format!("/hit?url={}&timestamp={T}", encode(PAGE)))
        .json();
    assert_eq!(counts["all_time"], 5000);
    for period in common::PERIODS {
        assert_eq!(counts["visits"][period], 1000, "{period}");
    }
    let top = hitme
        .get(&format!("/top?period=day&metric=visits&timestamp={T}"))
        .json();
    assert_eq!(
        (top["total"].as_i64(), top["metric"].as_str()),
        (Some(1000), Some("visits"))
    );
    assert_eq!(
        hitme.get(&format!("/top?period=day&timestamp={T}")).json()["metric"],
        "hits"
    );
    let series = hitme
        .get(&format!(
            "/series?url={}&period=minute&count=1&metric=visits&timestamp={T}",
            encode(PAGE)
        ))
        .json();
    assert_eq!(series["buckets"][0]["count"], 1000);
    let all = hitme
        .get(&format!("/hits?metric=visits&timestamp={T}"))
        .json();
    assert_eq!(all["last_hour"][PAGE], 1000);
    let badge = hitme
        .get(&format!(
            "/badge.svg?url={}&metric=visits&period=all",
            encode(PAGE)
        ))
        .text();
    assert!(badge.contains("<title>visits: 1000</title>"), "{badge}");

    // The salt: one key, kept at most 48 h.
    let salts: Vec<String> = redis
        .keys()
        .into_iter()
        .filter(|k| k.starts_with("hits:salt:"))
        .collect();
    assert_eq!(salts.len(), 1, "{salts:?}");
    let ttl: i64 = redis::cmd("TTL")
        .arg(&salts[0])
        .query(&mut redis.conn())
        .unwrap();
    assert!(ttl > 0 && ttl <= 48 * 3600, "{ttl}");

    // Nothing names a visitor: no key or value holds an address or a User-Agent.
    let mut conn = redis.conn();
    for key in redis.keys() {
        let kind: String = redis::cmd("TYPE").arg(&key).query(&mut conn).unwrap();
        let mut texts = vec![key.clone()];
        match kind.as_str() {
            "hash" => texts.extend(
                redis::cmd("HGETALL")
                    .arg(&key)
                    .query::<Vec<String>>(&mut conn)
                    .unwrap(),
            ),
            "string" => texts.push(redis::cmd("GET").arg(&key).query(&mut conn).unwrap()),
            other => panic!("{key} is a {other}"),
        }
        for text in texts {
            assert!(
                !text.contains("10.") && !text.contains("TestBrowser") && !text.contains("Mozilla"),
                "{key} holds {text:?}"
            );
        }
    }
    let visitor_keys = redis
        .keys()
        .into_iter()
        .filter(|k| k.starts_with("hits:visitor:"))
        .count();
    assert_eq!(visitor_keys, VISITORS, "one key per (visitor, URL)");

    // After the window, each visitor's next load is a visit again.
    std::thread::sleep(Duration::from_millis(10_500));
    load_page(&hitme, 1);
    assert_eq!(counts_in(&redis, "hits"), vec![Some(6000); 6]);
    assert_eq!(counts_in(&redis, "hits:visits"), vec![Some(2000); 6]);
}

/// Without `--visits`, no answer mentions visits, and asking for them says what to do.
#[test]
fn without_visits_nothing_changes_and_asking_for_them_says_how() {
    let redis = Redis::start();
    let hitme = HitMe::start(&redis.url());
    hitme.hit(PAGE, T);
    let counts = hitme.get(&format!("/hit?url={}&timestamp={T}", encode(PAGE)));
    assert_eq!(
        counts.text(),
        r#"{"status":"OK","url":"http://site.example/article","all_time":1,"last_month":1,"last_week":1,"last_day":1,"last_hour":1,"last_minute":1}"#
    );
    let top = hitme.get(&format!("/top?period=day&timestamp={T}"));
    assert!(!top.text().contains("metric"), "{}", top.text());
    let refused = hitme.get("/top?metric=visits");
    assert_eq!(
        (refused.status, refused.error()),
        (
            400,
            "metric=visits needs HitMe started with --visits; without it only hits are counted"
                .to_string()
        )
    );
    let refused = hitme.get("/visitors?period=day");
    assert_eq!(
        (refused.status, refused.error()),
        (
            400,
            "GET /visitors needs HitMe started with --visits; without it no visitor is counted"
                .to_string()
        )
    );
    assert!(redis
        .keys()
        .iter()
        .all(|k| !k.contains("visit") && !k.contains("salt")));
}

/// A site's visitors: 40 visitors each loading three pages of one site twice, 15 of them
/// one page of another site, are 40 and 15 visitors of the two sites in every period (a
/// visitor counted once per site, whichever of its URLs it hit first), 55 in all; `/sites`
/// lists both sites with their hits, URLs and visits, and `/top?site=` keeps one site's URLs.
#[test]
fn a_sites_visitors_are_counted_once_whatever_pages_they_load() {
    let redis = Redis::start();
    let hitme = HitMe::start_with(
        &redis.url(),
        &[
            "--visits",
            "--visit-window",
            "1h",
            "--trusted-proxies",
            "127.0.0.1/32",
        ],
    );
    let pages = [
        "http://a.example/",
        "http://a.example/1",
        "http://a.example/2",
    ];
    let post = |i: usize, url: &str| visit(&hitme, i, url);
    std::thread::scope(|s| {
        for part in 0..4 {
            s.spawn(move || {
                for i in (part..40).step_by(4) {
                    for _ in 0..2 {
                        pages.iter().for_each(|page| post(i, page));
                    }
                    if i < 15 {
                        post(i, "http://b.example/only");
                    }
                }
            });
        }
    });
    for (period, key) in common::PERIODS.iter().zip(buckets("hits:sitevisitors")) {
        assert_eq!(redis.hget(&key, "a.example"), Some(40), "{key}");
        assert_eq!(redis.hget(&key, "b.example"), Some(15), "{key}");
        let api = |query: &str| {
            period
                .trim_start_matches("last_")
                .replace("all_time", "all")
                + query
        };
        for (site, visitors) in [
            ("a.example", 40),
            ("b.example", 15),
            ("", 55),
            ("c.example", 0),
        ] {
            let answer = hitme
                .get(&format!(
                    "/visitors?period={}&site={site}&timestamp={T}",
                    api("")
                ))
                .json();
            assert_eq!(answer["visitors"], visitors, "{period} {site}");
            assert_eq!(
                answer["site"],
                if site.is_empty() {
                    serde_json::Value::Null
                } else {
                    site.into()
                }
            );
        }
    }
    let minute = hitme.get(&format!(
        "/visitors?period=minute&site=A.Example&timestamp={T}"
    ));
    assert_eq!(
        minute.text(),
        r#"{"status":"OK","period":"minute","start":1700010120000,"site":"a.example","visitors":40}"#
    );
    assert_eq!(
        hitme
            .get(&format!("/sites?period=day&timestamp={T}"))
            .text(),
        r#"{"status":"OK","period":"day","start":1700006400000,"total":255,"sites":2,"top":[{"site":"a.example","count":240,"urls":3},{"site":"b.example","count":15,"urls":1}],"metric":"hits"}"#
    );
    assert_eq!(
        hitme
            .get(&format!("/sites?metric=visits&limit=1&timestamp={T}"))
            .text(),
        r#"{"status":"OK","period":"all","start":null,"total":135,"sites":2,"top":[{"site":"a.example","count":120,"urls":3}],"metric":"visits"}"#
    );
    let b = hitme
        .get(&format!("/top?period=hour&site=b.example&timestamp={T}"))
        .json();
    assert_eq!(
        (b["total"].as_i64(), b["urls"].as_i64()),
        (Some(15), Some(1))
    );
    assert_eq!(b["top"][0]["url"], "http://b.example/only");
    let bad = hitme.get("/visitors?site=a%20b");
    assert_eq!(bad.status, 400);
    assert!(
        bad.error().starts_with("site must be a host name"),
        "{}",
        bad.error()
    );
    let site_visitor_keys = redis
        .keys()
        .into_iter()
        .filter(|k| k.starts_with("hits:sitevisitor:"))
        .count();
    assert_eq!(site_visitor_keys, 55, "one key per (visitor, site)");
}
