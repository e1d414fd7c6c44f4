//! `--sources`: a hit's source is its URL's tag, else its referrer's host or name, else
//! direct; the site's own hosts are no source; referrer spam is answered and not counted;
//! past `--max-sources` the rest count under `(other)`. Every figure is exact, for every
//! site, one site and one URL. Without the flag nothing changes.

mod common;

use common::{encode, request, HitMe, Redis};
use serde_json::{json, Value};

const T: i64 = 1_700_010_123_456;
const A: &str = "http://site.example/a";
const B: &str = "http://site.example/b";
const SHOP: &str = "http://shop.example/p";
/// The first host of the vendored spam list.
const SPAM: &str = "0-0.fr";

/// Posts a hit on `url` as a form, with `referrer` if given.
fn hit(hitme: &HitMe, url: &str, referrer: Option<&str>) {
    let mut body = format!("url={}&timestamp={T}", encode(url));
    if let Some(referrer) = referrer {
        body.push_str(&format!("&referrer={}", encode(referrer)));
    }
    let resp = hitme.post_form("/hit", &body);
    assert_eq!(resp.status, 200, "{}", resp.text());
}

fn sources(hitme: &HitMe, query: &str) -> Value {
    let resp = hitme.get(&format!("/sources?timestamp={T}&{query}"));
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.json()
}

/// The `sources` list of an answer, as (name, count).
fn listed(answer: &Value) -> Vec<(String, i64)> {
    answer["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["source"].as_str().unwrap().to_string(),
                s["count"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, i64)]) -> Vec<(String, i64)> {
    list.iter().map(|(s, n)| (s.to_string(), *n)).collect()
}

#[test]
fn every_hit_counts_its_source_exactly_once() {
    let redis = Redis::start();
    let hitme = HitMe::start_with(
        &redis.url(),
        &[
            "--sources",
            "--max-sources",
            "5",
            "--sites",
            "site.example,shop.example",
        ],
    );
    hit(&hitme, SHOP, Some("https://duckduckgo.com/?q=shop"));
    for _ in 0..5 {
        hit(&hitme, A, Some("https://news.ycombinator.com/item?id=1"));
    }
    for _ in 0..3 {
        hit(&hitme, A, Some("https://www.google.de/search?q=a"));
    }
    for _ in 0..2 {
        // The tag wins over the referrer, and the URL is counted without it.
        let tagged = format!("{A}?utm_source=Newsletter");
        hit(&hitme, &tagged, Some("https://mail.example/"));
    }
    for _ in 0..4 {
        hit(&hitme, A, None);
    }
    for _ in 0..2 {
        hit(&hitme, A, Some("http://www.site.example/b"));
    }
    // Another host of --sites is no source either.
    hit(&hitme, B, Some("https://shop.example/cart"));
    for _ in 0..3 {
        let body = json!({"url": B, "timestamp": T, "referrer": "https://blog.example/post"});
        assert_eq!(hitme.post_json(&body.to_string()).status, 200);
    }
    for i in 1..=5 {
        hit(&hitme, &format!("{B}?utm_source=s{i}"), None);
    }
    for _ in 0..2 {
        hit(&hitme, A, Some(&format!("https://www.{SPAM}/")));
    }

    let counts = hitme
        .get(&format!("/hit?url={}&timestamp={T}", encode(A)))
        .json();
    assert_eq!(counts["all_time"], 16, "spam is not counted");
    assert_eq!(
        hitme.metric("hitme_hits_ignored_total{reason=\"referrer_spam\"}"),
        Some(2.0)
    );

    // Every site: the cap of 5 names was reached by blog.example; s1..s5 are (other).
    let all = sources(&hitme, "period=day");
    assert_eq!(all["period"], "day");
    assert_eq!(all["start"], 1_700_006_400_000i64);
    assert_eq!(all["url"], Value::Null);
    assert_eq!(all["site"], Value::Null);
    assert_eq!(all["total"], 26);
    assert_eq!(all["direct"], 7);
    assert_eq!(all["distinct"], 6);
    assert_eq!(
        listed(&all),
        pairs(&[
            ("(other)", 5),
            ("Hacker News", 5),
            ("Google", 3),
            ("blog.example", 3),
            ("newsletter", 2),
            ("DuckDuckGo", 1),
        ])
    );
    // Every bucket kept alike, and the text of the answer in its order.
    let month = hitme.get(&format!("/sources?timestamp={T}&period=month&limit=1"));
    assert_eq!(
        month.text(),
        r#"{"status":"OK","period":"month","start":1698796800000,"url":null,"site":null,"total":26,"direct":7,"distinct":6,"sources":[{"source":"(other)","count":5}]}"#
    );
    assert_eq!(sources(&hitme, "")["total"], 26);
    assert_eq!(sources(&hitme, "period=all")["start"], Value::Null);
    assert_eq!(
        listed(&sources(&hitme, "period=week&limit=2&offset=1")),
        pairs(&[("Hacker News", 5), ("Google", 3)])
    );

    // One site.
    let site = sources(&hitme, "period=day&site=site.example");
    assert_eq!(site["site"], "site.example");
    assert_eq!(
        (site["total"].as_i64(), site["direct"].as_i64()),
        (Some(25), Some(7))
    );
    assert_eq!(
        listed(&site),
        pairs(&[
            ("Hacker News", 5),
            ("(other)", 4),
            ("Google", 3),
            ("blog.example", 3),
            ("newsletter", 2),
            ("s1", 1),
        ])
    );
    let shop = sources(&hitme, "period=day&site=shop.example");
    assert_eq!(
        (shop["total"].as_i64(), shop["direct"].as_i64()),
        (Some(1), Some(0))
    );
    assert_eq!(listed(&shop), pairs(&[("DuckDuckGo", 1)]));

    // One URL: its direct hits are the rest of its hits.
    let a = sources(&hitme, &format!("period=day&url={}", encode(A)));
    assert_eq!(a["url"], A);
    assert_eq!(
        (a["total"].as_i64(), a["direct"].as_i64()),
        (Some(16), Some(6))
    );
    assert_eq!(
        listed(&a),
        pairs(&[("Hacker News", 5), ("Google", 3), ("newsletter", 2)])
    );
    let tagged = format!("{A}?utm_source=x");
    assert_eq!(
        sources(&hitme, &format!("period=day&url={}", encode(&tagged))),
        a,
        "a URL is read as it is counted"
    );
    let b = sources(&hitme, &format!("period=all&url={}&limit=100", encode(B)));
    assert_eq!(
        (b["total"].as_i64(), b["direct"].as_i64()),
        (Some(9), Some(1))
    );
    assert_eq!(
        listed(&b),
        pairs(&[
            ("blog.example", 3),
            ("(other)", 1),
            ("s1", 1),
            ("s2", 1),
            ("s3", 1),
            ("s4", 1),
        ])
    );

    // Only names are kept: no referrer's path, no query, no hour or minute.
    let keys = redis.keys();
    assert!(
        keys.iter()
            .all(|k| !k.contains("item") && !k.contains("search")),
        "{keys:?}"
    );
    let source_keys: Vec<&String> = keys
        .iter()
        .filter(|k| k.starts_with("hits:sources:"))
        .collect();
    assert!(source_keys
        .iter()
        .all(|k| !k.contains(":hour:") && !k.contains(":minute:")));
    // 4 buckets, each for every site, 2 sites and 3 URLs with a named source.
    assert_eq!(source_keys.len(), 4 * 6, "{source_keys:?}");
    assert_eq!(
        redis.hget(
            "hits:sources:day:1700006400000:url:http://site.example/a",
            "Google"
        ),
        Some(3)
    );
}

#[test]
fn bad_requests_for_sources_say_what_to_send() {
    let redis = Redis::start();
    let hitme = HitMe::start_with(&redis.url(), &["--sources"]);
    for (query, expected) in [
        ("period=hour", "sources are kept for the all, month, week and day buckets, not per hour; ask for one of those"),
        ("period=minute", "sources are kept for the all, month, week and day buckets, not per minute; ask for one of those"),
        ("period=year", "period must be one of all, month, week, day, hour, minute (got \"year\")"),
        ("metric=visits", "/sources counts hits only: leave metric out, or give metric=hits"),
        ("url=http%3A%2F%2Fa.example%2F&site=a.example", "give url (one URL's sources) or site (one site's), not both"),
        ("site=a%20b", "site must be a host name such as example.com, as in the URLs counted (got \"a b\")"),
    ] {
        let resp = hitme.get(&format!("/sources?{query}"));
        assert_eq!(resp.status, 400, "{query}");
        assert_eq!(resp.error(), expected, "{query}");
    }
    let empty = hitme.get("/sources");
    assert_eq!(
        empty.text(),
        r#"{"status":"OK","period":"all","start":null,"url":null,"site":null,"total":0,"direct":0,"distinct":0,"sources":[]}"#
    );
    assert_eq!(hitme.post_form("/sources", "").status, 405);
    let body = json!({"url": A, "referrer": 7});
    let resp = hitme.post_json(&body.to_string());
    assert_eq!(
        (resp.status, resp.error()),
        (400, "referrer must be a JSON string".to_string())
    );
}

#[test]
fn the_pixel_takes_the_pages_referrer_as_ref() {
    let redis = Redis::start();
    let hitme = HitMe::start_with(&redis.url(), &["--sources"]);
    let headers = [("Referer", A)];
    let pixel = |query: &str| {
        request(
            hitme.addr,
            "GET",
            &format!("/pixel.gif{query}"),
            &headers,
            b"",
        )
        .status
    };
    // The pixel's Referer is the page; ref= is the page's referrer.
    assert_eq!(pixel("?ref=https%3A%2F%2Fnews.ycombinator.com%2F"), 200);
    assert_eq!(pixel(""), 200);
    assert_eq!(
        pixel(&format!("?url={}&ref=https%3A%2F%2Ft.co%2Fx", encode(B))),
        200
    );
    assert_eq!(pixel(&format!("?ref=https%3A%2F%2F{SPAM}%2F")), 200);
    let a = sources(&hitme, &format!("url={}", encode(A)));
    assert_eq!(
        (a["total"].as_i64(), a["direct"].as_i64()),
        (Some(2), Some(1))
    );
    assert_eq!(listed(&a), pairs(&[("Hacker News", 1)]));
    assert_eq!(
        listed(&sources(&hitme, &format!("url={}", encode(B)))),
        pairs(&[("Twitter", 1)])
    );
    assert_eq!(sources(&hitme, "")["total"], 3);
    // A badge names no source: its hit is direct.
    let badge = request(
        hitme.addr,
        "GET",
        &format!("/badge.svg?count=1&url={}", encode(A)),
        &[],
        b"",
    );
    assert_eq!(badge.status, 200);
    assert_eq!(sources(&hitme, "")["direct"], 2);
}

#[test]
fn without_sources_nothing_changes_and_asking_for_them_says_how() {
    let redis = Redis::start();
    let hitme = HitMe::start(&redis.url());
    hit(&hitme, A, Some("https://news.ycombinator.com/"));
    hit(&hitme, A, Some(&format!("https://{SPAM}/")));
    let resp = hitme.get("/sources");
    assert_eq!(resp.status, 400);
    assert_eq!(
        resp.error(),
        "GET /sources needs HitMe started with --sources; without it no source is counted"
    );
    assert_eq!(
        redis.hget("hits:all", A),
        Some(2),
        "spam is counted without the flag"
    );
    assert!(redis.keys().iter().all(|k| !k.contains("sources")));
}

#[test]
fn deleting_a_url_removes_its_own_sources() {
    let redis = Redis::start();
    let token = "0123456789abcdef0123";
    let hitme = HitMe::start_with(&redis.url(), &["--sources", "--admin-token", token]);
    hit(&hitme, A, Some("https://news.ycombinator.com/"));
    hit(&hitme, A, None);
    hit(&hitme, B, Some("https://news.ycombinator.com/"));
    let bearer = format!("Bearer {token}");
    let target = format!("/hit?url={}", encode(A));
    let resp = request(
        hitme.addr,
        "DELETE",
        &target,
        &[("Authorization", &bearer)],
        b"",
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    let a = sources(&hitme, &format!("url={}", encode(A)));
    assert_eq!(
        (a["total"].as_i64(), a["distinct"].as_i64()),
        (Some(0), Some(0))
    );
    let b = sources(&hitme, &format!("url={}", encode(B)));
    assert_eq!(listed(&b), pairs(&[("Hacker News", 1)]));
    assert!(redis
        .keys()
        .iter()
        .all(|k| !k.ends_with(":url:http://site.example/a")));
    // The site's figures name no URL: they keep what it added.
    assert_eq!(listed(&sources(&hitme, "")), pairs(&[("Hacker News", 2)]));
}

/// Hits sent at once are taken together by the workers, and a batch's hits on one site share
/// its site's hashes: every figure still adds up exactly.
#[test]
fn hits_taken_together_count_their_sources_exactly() {
    let redis = Redis::start();
    let hitme = HitMe::start_with(&redis.url(), &["--sources"]);
    let referrers = [
        None,
        Some("https://news.ycombinator.com/"),
        Some("https://www.google.com/"),
        Some("https://friend.example/"),
    ];
    std::thread::scope(|s| {
        for client in 0..8 {
            let hitme = &hitme;
            s.spawn(move || {
                for i in 0..200 {
                    let site = ["a.example", "b.example"][(client + i) % 2];
                    let url = format!("http://{site}/page/{}", i % 25);
                    hit(hitme, &url, referrers[i % 4]);
                }
            });
        }
    });
    // 1,600 hits, a quarter from each referrer; each site half of them.
    let all = sources(&hitme, "period=day");
    assert_eq!(
        (all["total"].as_i64(), all["direct"].as_i64()),
        (Some(1600), Some(400))
    );
    assert_eq!(
        listed(&all),
        pairs(&[
            ("Google", 400),
            ("Hacker News", 400),
            ("friend.example", 400)
        ])
    );
    for site in ["a.example", "b.example"] {
        let one = sources(&hitme, &format!("period=week&site={site}"));
        assert_eq!(
            (one["total"].as_i64(), one["direct"].as_i64()),
            (Some(800), Some(200))
        );
    }
    // Every URL's sources add up to its hits.
    let mut total = 0;
    for site in ["a.example", "b.example"] {
        for page in 0..25 {
            let url = format!("http://{site}/page/{page}");
            let one = sources(&hitme, &format!("period=all&url={}", encode(&url)));
            assert_eq!(one["total"].as_i64(), redis.hget("hits:all", &url), "{url}");
            total += one["total"].as_i64().unwrap();
        }
    }
    assert_eq!(total, 1600);
}

/// Each sources hash of a bucket with a retention expires with its bucket, set when the
/// hash is made; those of buckets kept for ever (all-time, and weeks and months by default)
/// do not.
#[test]
fn sources_expire_with_their_buckets() {
    let redis = Redis::start();
    let hitme = HitMe::start_with(&redis.url(), &["--sources", "--retention-day", "48h"]);
    let now = common::now_ms();
    for (url, referrer) in [
        (A, Some("https://news.ycombinator.com/")),
        (A, Some("https://news.ycombinator.com/")),
        (B, Some("https://friend.example/")),
        (B, None),
    ] {
        let mut body = format!("url={}&timestamp={now}", encode(url));
        if let Some(referrer) = referrer {
            body.push_str(&format!("&referrer={}", encode(referrer)));
        }
        assert_eq!(hitme.post_form("/hit", &body).status, 200);
    }
    // The absolute time, so that no second passes between two readings.
    let expires = |key: &str| -> i64 {
        redis::cmd("EXPIRETIME")
            .arg(key)
            .query(&mut redis.conn())
            .unwrap()
    };
    let day = format!("hits:sources:day:{}", now / 86_400_000 * 86_400_000);
    let bucket = expires(&format!("hits:day:{}", now / 86_400_000 * 86_400_000));
    assert!(bucket > now / 1000 + 86_400, "{bucket}");
    for key in [
        day.clone(),
        format!("{day}:site:site.example"),
        format!("{day}:url:{A}"),
        format!("{day}:url:{B}"),
    ] {
        assert_eq!(expires(&key), bucket, "{key} expires with its bucket");
    }
    for key in [
        "hits:sources:all".to_string(),
        format!("hits:sources:all:url:{A}"),
    ] {
        assert_eq!(expires(&key), -1, "{key} is kept");
    }
    assert_eq!(
        redis.hget(&format!("{day}:url:{A}"), "Hacker News"),
        Some(2),
        "counted once per hit"
    );
}
