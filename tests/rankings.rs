//! Rankings kept at write time (`--rankings`): whatever hits, removals, imports, foreign
//! writers and expiries do to a bucket, every `/top` page within the kept size equals a full
//! read of the bucket sorted by (count desc, URL asc), with its `total` and `urls`, and says
//! it was answered from the kept ranking.

mod common;

use std::process::{Command, Stdio};
use std::thread;

use common::{encode, request, HitMe, Redis};

/// URLs each bucket keeps: small, so that most URLs are outside the set and ties at its edge
/// are common.
const K: usize = 5;
const TOKEN: &str = "admin-rankings-test-7c2e";

/// A small deterministic generator (xorshift64*), so that a failure is reproduced exactly.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// An index below `n`, the low ones far more likely (about Zipf's law).
    fn popular(&mut self, n: usize) -> usize {
        let r = (self.next() % 1_000_000) as f64 / 1_000_000.0;
        ((n as f64).powf(r) as usize).saturating_sub(1).min(n - 1)
    }
}

fn url(i: usize) -> String {
    format!("http://shop.example/item/{i}")
}

/// Every count of a hash, in rank order: the truth a kept ranking must match.
fn truth(redis: &Redis, key: &str) -> Vec<(String, i64)> {
    let mut all: Vec<(String, i64)> = redis::cmd("HGETALL")
        .arg(key)
        .query(&mut redis.conn())
        .unwrap();
    all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    all
}

/// A rebuild left nothing behind: no notes, no bucket marked as being rebuilt.
fn assert_no_rebuild_left(redis: &Redis) {
    let keys = redis.keys();
    assert!(
        !keys.iter().any(|k| k.starts_with("hits:seen:")),
        "{keys:?}"
    );
    assert!(!keys.contains(&"hits:rebuilding".to_string()), "{keys:?}");
}

/// A `/top` answer's page as (URL, count) pairs.
fn page_of(body: &serde_json::Value) -> Vec<(String, i64)> {
    let entry = |e: &serde_json::Value| {
        (
            e["url"].as_str().unwrap().to_string(),
            e["count"].as_i64().unwrap(),
        )
    };
    body["top"].as_array().unwrap().iter().map(entry).collect()
}

/// Checks every page within K of the all-time and the minute bucket of `timestamp`.
fn check(hitme: &HitMe, redis: &Redis, timestamp: i64, when: &str) {
    for period in ["all", "minute"] {
        for (offset, limit) in [(0, K), (0, 1), (1, 3), (K - 1, 1), (2, K - 2)] {
            let target =
                format!("/top?period={period}&offset={offset}&limit={limit}&timestamp={timestamp}");
            let resp = hitme.get(&target);
            assert_eq!(resp.status, 200, "{when}: {target}: {}", resp.text());
            let body = resp.json();
            let key = match body["start"].as_i64() {
                Some(start) => format!("hits:{period}:{start}"),
                None => "hits:all".to_string(),
            };
            let want = truth(redis, &key);
            let page = page_of(&body);
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
                "{when}: {target}: urls"
            );
            assert_eq!(body["ranking"], "kept", "{when}: {target}");
        }
    }
}

/// Posts `hits` hits from four clients at once, so that workers take several together and
/// merge equal ones.
fn post_hits(hitme: &HitMe, random: &mut Random, hits: usize, urls: usize, timestamp: i64) {
    let chosen: Vec<String> = (0..hits).map(|_| url(random.popular(urls))).collect();
    hitme.hit_from(&chosen, 4, timestamp);
}

fn import(redis: &Redis, rows: &str) {
    let file = std::env::temp_dir().join(format!(
        "hitme-rankings-import-{}-{}",
        std::process::id(),
        common::free_port()
    ));
    std::fs::write(
        &file,
        format!("# hitme export v1\nmetric,period,start,url,count\n{rows}"),
    )
    .unwrap();
    let out = common::hitme_command(
        &redis.url(),
        &["--rankings", "import", file.to_str().unwrap(), "--add"],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .output()
    .unwrap();
    std::fs::remove_file(&file).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn kept_rankings_equal_a_full_read_through_hits_removals_imports_and_foreign_writes() {
    let redis = Redis::start();
    let k = K.to_string();
    let hitme = HitMe::start_with(
        &redis.url(),
        &["--rankings", "--ranking-size", &k, "--admin-token", TOKEN],
    );
    let mut random = Random(0x9e37_79b9_7f4a_7c15);
    let now = common::now_ms();

    // Hits on 40 URLs, most on a few: ties at the set's edge, URLs coming in and going out.
    for round in 0..4 {
        post_hits(&hitme, &mut random, 150, 40, now);
        check(&hitme, &redis, now, &format!("after round {round} of hits"));
    }

    // Removing URLs from the set (the next one must take their place) and from outside it.
    let ranked = truth(&redis, "hits:all");
    for victim in [&ranked[0].0, &ranked[K - 1].0, &ranked[ranked.len() - 1].0] {
        let target = format!("/hit?url={}", encode(victim));
        let auth = [("Authorization", format!("Bearer {TOKEN}"))];
        let auth: Vec<(&str, &str)> = auth.iter().map(|(h, v)| (*h, v.as_str())).collect();
        let resp = request(hitme.addr, "DELETE", &target, &auth, b"");
        assert_eq!(resp.status, 200, "{}", resp.text());
        check(&hitme, &redis, now, &format!("after removing {victim}"));
    }

    // An import that adds to a URL outside the set, beyond the first: it must lead.
    let tail = &truth(&redis, "hits:all")[K + 2].0;
    import(&redis, &format!("hits,all,0,{tail},100000\n"));
    check(&hitme, &redis, now, "after an import");
    assert_eq!(truth(&redis, "hits:all")[0].0, *tail);

    // A writer that keeps no rankings (the original HitMe) adds a URL: the bucket's number
    // of URLs no longer matches, and the ranking is rebuilt.
    redis::cmd("HINCRBY")
        .arg("hits:all")
        .arg("http://other.example/")
        .arg(1_000_000)
        .query::<i64>(&mut redis.conn())
        .unwrap();
    check(&hitme, &redis, now, "after a foreign write");

    // More hits after all that.
    post_hits(&hitme, &mut random, 150, 40, now);
    check(&hitme, &redis, now, "after the last hits");
}

/// A bucket's kept ranking and tally in Redis are its K best URLs and its figures, as the
/// hits wrote them.
fn assert_kept_as_written(redis: &Redis, bucket: &str, when: &str) {
    let want = truth(redis, &format!("hits:{bucket}"));
    let set: Vec<(String, f64)> = redis::cmd("ZRANGE")
        .arg(format!("hits:rank:{bucket}"))
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query(&mut redis.conn())
        .unwrap();
    let set: Vec<(String, i64)> = set.into_iter().map(|(u, s)| (u, -s as i64)).collect();
    assert_eq!(set, want[..K.min(want.len())], "{when}: the set");
    let tally = format!("hits:tally:{bucket}");
    let total: i64 = want.iter().map(|(_, n)| n).sum();
    assert_eq!(redis.hget(&tally, "total"), Some(total), "{when}: total");
    assert_eq!(
        redis.hget(&tally, "urls"),
        Some(want.len() as i64),
        "{when}: urls"
    );
}

/// URLs whose order at equal counts is byte order, not a locale's: capitals before small
/// letters, a prefix before what extends it, bytes past ASCII (percent-encoded) last.
fn edge_url(i: usize) -> String {
    let tails = ["a", "B", "a/", "b", "Ab", "%C3%A4", "a0", "_"];
    format!(
        "http://shop.example/{}{}",
        tails[i % tails.len()],
        i / tails.len()
    )
}

/// Many clients at once, with `--group-commit`, so that one script holds many different
/// URLs of a bucket: most rank after the set's K-th member, and those are not written to
/// the set; the others enter it, settle ties at its edge, or push members out.
#[test]
fn batches_of_many_urls_keep_the_ranking_exact_at_its_edge() {
    let redis = Redis::start();
    let k = K.to_string();
    let hitme = HitMe::start_with(
        &redis.url(),
        &[
            "--rankings",
            "--ranking-size",
            &k,
            "--group-commit",
            "--threads",
            "8",
        ],
    );
    let mut random = Random(0x2545_f491);
    let now = common::now_ms();
    for round in 0..3 {
        // Even odds over 200 URLs: a few hits each, so the K-th count is shared by many.
        let chosen: Vec<String> = (0..640)
            .map(|_| edge_url((random.next() % 200) as usize))
            .collect();
        hitme.hit_from(&chosen, 16, now);
        // As the hits left them, before a read could rebuild them.
        let minute = format!("minute:{}", now / 60_000 * 60_000);
        for bucket in ["all", minute.as_str()] {
            assert_kept_as_written(&redis, bucket, &format!("round {round}, {bucket}"));
        }
        check(&hitme, &redis, now, &format!("after round {round}"));
    }
    let batched = hitme.metric("hitme_hits_batched_total").unwrap_or(0.0);
    assert!(batched > 100.0, "hits written with others: {batched}");
}

#[test]
fn a_rebuild_under_hits_is_exact() {
    let redis = Redis::start();
    // 5,000 URLs written without rankings: five chunks to rebuild, hits between them.
    let mut pipe = redis::pipe();
    for i in 0..5000 {
        pipe.cmd("HINCRBY")
            .arg("hits:all")
            .arg(url(i))
            .arg(1 + (i * 7919) % 50)
            .ignore();
    }
    pipe.query::<()>(&mut redis.conn()).unwrap();
    let hitme = HitMe::start_with(&redis.url(), &["--rankings", "--ranking-size", "50"]);
    let now = common::now_ms();
    let addr = hitme.addr;
    let hitting = thread::spawn(move || {
        let mut random = Random(7);
        for _ in 0..400 {
            let u = url(random.popular(6000));
            let body = format!("url={}&timestamp={now}", encode(&u));
            let ct = [("Content-Type", "application/x-www-form-urlencoded")];
            assert_eq!(
                request(addr, "POST", "/hit", &ct, body.as_bytes()).status,
                200
            );
        }
    });
    // The first /top finds no ranking, rebuilds it while the hits go on.
    let first = hitme.get("/top?limit=50").json();
    assert_eq!(first["ranking"], "kept");
    hitting.join().unwrap();
    let want = truth(&redis, "hits:all");
    let body = hitme.get("/top?limit=50").json();
    assert_eq!(body["ranking"], "kept");
    assert_eq!(body["urls"].as_u64().unwrap() as usize, want.len());
    assert_eq!(
        body["total"].as_i64().unwrap(),
        want.iter().map(|(_, n)| n).sum::<i64>()
    );
    assert_eq!(page_of(&body), want[..50]);
    assert_no_rebuild_left(&redis);
}

#[test]
fn rankings_expire_with_their_bucket_and_filters_and_deep_pages_scan() {
    let redis = Redis::start();
    let hitme = HitMe::start_with(
        &redis.url(),
        &[
            "--rankings",
            "--ranking-size",
            "3",
            "--retention-minute",
            "1h",
        ],
    );
    // A hit two hours ago: its minute bucket is past its retention, and goes at once with
    // its ranking and tally.
    let old = common::now_ms() - 2 * 3_600_000;
    hitme.hit("http://a.example/", old);
    let minute = (old / 60_000) * 60_000;
    let keys = redis.keys();
    for key in [
        format!("hits:minute:{minute}"),
        format!("hits:rank:minute:{minute}"),
        format!("hits:tally:minute:{minute}"),
    ] {
        assert!(!keys.contains(&key), "{key} outlived its bucket: {keys:?}");
    }
    let ttl = |key: &str| -> i64 { redis::cmd("TTL").arg(key).query(&mut redis.conn()).unwrap() };
    let now = common::now_ms();
    hitme.hit("http://a.example/", now);
    let minute = (now / 60_000) * 60_000;
    for key in [
        format!("hits:minute:{minute}"),
        format!("hits:rank:minute:{minute}"),
        format!("hits:tally:minute:{minute}"),
    ] {
        assert!(ttl(&key) > 3000, "{key} expires with its bucket");
    }
    assert_eq!(ttl("hits:rank:all"), -1, "all-time is kept");

    // A filter, or a page past the kept three, reads the bucket as without the flag.
    for target in ["/top?q=a.example", "/top?limit=4", "/top?offset=2&limit=2"] {
        assert_eq!(hitme.get(target).json()["ranking"], "scanned", "{target}");
    }
    assert_eq!(hitme.get("/top?limit=3").json()["ranking"], "kept");
}

#[test]
fn a_rebuild_under_way_is_left_alone_and_one_that_stopped_is_taken_over() {
    let redis = Redis::start();
    let mut conn = redis.conn();
    for i in 0..20 {
        redis::cmd("HINCRBY")
            .arg("hits:all")
            .arg(url(i))
            .arg(i + 1)
            .query::<i64>(&mut conn)
            .unwrap();
    }
    let hitme = HitMe::start_with(&redis.url(), &["--rankings", "--ranking-size", "5"]);
    // Another HitMe's rebuild, with progress a moment ago: this one reads the bucket.
    let now = common::now_ms();
    let set = |progress: i64| {
        redis::pipe()
            .cmd("HSET")
            .arg("hits:rebuilding")
            .arg("all")
            .arg("othertoken")
            .ignore()
            .cmd("HSET")
            .arg("hits:tally:all")
            .arg("rebuilding")
            .arg("othertoken")
            .arg("progress")
            .arg(progress)
            .arg("total")
            .arg(3)
            .ignore()
            .cmd("HSET")
            .arg("hits:seen:all:othertoken")
            .arg(url(1))
            .arg("done")
            .ignore()
            .query::<()>(&mut redis.conn())
            .unwrap();
    };
    set(now);
    let body = hitme.get("/top?limit=5").json();
    assert_eq!(body["ranking"], "scanned");
    assert_eq!(body["total"], 210);
    // It stopped a minute ago: this HitMe takes it over, exactly, and empties its notes.
    set(now - 61_000);
    let body = hitme.get("/top?limit=5").json();
    assert_eq!(body["ranking"], "kept");
    assert_eq!(
        (body["total"].as_i64(), body["urls"].as_i64()),
        (Some(210), Some(20))
    );
    assert_eq!(body["top"][0]["url"], url(19));
    assert_no_rebuild_left(&redis);
}

#[test]
fn a_past_bucket_keeps_its_counts_but_not_its_ranking_after_the_ranking_retention() {
    let redis = Redis::start();
    // Counts kept for ever (the tests' default), rankings for an hour after their bucket.
    let hitme = HitMe::start_with(&redis.url(), &["--rankings", "--ranking-retention", "1h"]);
    let old = common::now_ms() - 2 * 3_600_000;
    hitme.hit("http://a.example/", old);
    hitme.hit("http://b.example/", old);
    let minute = (old / 60_000) * 60_000;
    let keys = redis.keys();
    assert!(keys.contains(&format!("hits:minute:{minute}")), "{keys:?}");
    assert!(
        !keys.contains(&format!("hits:rank:minute:{minute}")),
        "{keys:?}"
    );
    assert!(
        !keys.contains(&format!("hits:tally:minute:{minute}")),
        "{keys:?}"
    );
    // Its /top reads the bucket, exactly, and builds no ranking again.
    let body = hitme
        .get(&format!("/top?period=minute&timestamp={old}"))
        .json();
    assert_eq!(
        (
            body["ranking"].as_str(),
            body["total"].as_i64(),
            body["urls"].as_i64()
        ),
        (Some("scanned"), Some(2), Some(2))
    );
    assert!(!redis.keys().contains(&format!("hits:rank:minute:{minute}")));
    // The current minute's ranking lives an hour after the minute ends, not for ever.
    let now = common::now_ms();
    hitme.hit("http://a.example/", now);
    let minute = (now / 60_000) * 60_000;
    let ttl: i64 = redis::cmd("TTL")
        .arg(format!("hits:rank:minute:{minute}"))
        .query(&mut redis.conn())
        .unwrap();
    assert!((3000..=3660).contains(&ttl), "TTL {ttl}");
    assert_eq!(hitme.get("/top?period=minute").json()["ranking"], "kept");
}

#[test]
fn ranking_flags_are_refused_where_they_mean_nothing() {
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_hitme"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, said) = run(&["--ranking-size", "10"]);
    assert_eq!(code, Some(2));
    assert!(
        said.contains("--ranking-size applies only with --rankings"),
        "{said}"
    );
    let (code, said) = run(&["--ranking-retention", "2h"]);
    assert_eq!(code, Some(2));
    assert!(
        said.contains("--ranking-retention applies only with --rankings"),
        "{said}"
    );
    let (code, said) = run(&["--rankings", "--ranking-size", "0"]);
    assert_eq!(code, Some(2));
    assert!(said.contains("--ranking-size"), "{said}");
}
