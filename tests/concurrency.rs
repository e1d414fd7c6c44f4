//! Many clients at once: every acknowledged hit is counted, exactly, in all six buckets.

mod common;

use common::{HitMe, Redis};

const T: i64 = 1_700_010_123_456;

#[test]
fn concurrent_clients_get_exact_totals_in_every_bucket() {
    exact_totals(&["--threads", "8"]);
}

#[test]
fn concurrent_clients_get_exact_totals_with_group_commit() {
    exact_totals(&["--threads", "8", "--group-commit"]);
}

fn exact_totals(args: &[&str]) {
    const CLIENTS: usize = 32;
    const HITS_EACH: usize = 50;
    const URLS: [&str; 4] = [
        "http://a.example/",
        "http://b.example/",
        "http://c.example/",
        "http://d.example/",
    ];
    let redis = Redis::start();
    let hitme = HitMe::start_with(&redis.url(), args);
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
    let keys = [
        "hits:all",
        "hits:month:1698796800000",
        "hits:week:1699833600000",
        "hits:day:1700006400000",
        "hits:hour:1700010000000",
        "hits:minute:1700010120000",
    ];
    for url in URLS {
        for key in keys {
            assert_eq!(redis.hget(key, url), Some(per_url), "{key} {url}");
        }
    }
    let all = hitme.get(&format!("/hits?timestamp={T}")).json();
    for period in [
        "all_time",
        "last_month",
        "last_week",
        "last_day",
        "last_hour",
        "last_minute",
    ] {
        let total: i64 = all[period]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_i64().unwrap())
            .sum();
        assert_eq!(total, (CLIENTS * HITS_EACH) as i64, "{period}");
    }
}
