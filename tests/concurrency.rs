//! Many clients at once: every acknowledged hit is counted, exactly, in all six buckets.

mod common;

use std::io::Write;

use common::{read_response, send, HitMe, Redis};

const T: i64 = 1_700_010_123_456;

#[test]
fn concurrent_clients_get_exact_totals_in_every_bucket() {
    exact_totals(&["--threads", "8"]);
}

#[test]
fn concurrent_clients_get_exact_totals_with_group_commit() {
    exact_totals(&["--threads", "8", "--group-commit"]);
}

/// Keep-alive clients outnumbering the workers: a worker takes the requests queued behind the
/// one it picks up and records their hits in one round trip. Bad requests and reads among
/// them are answered on their own; every hit answered 200 is counted once.
#[test]
fn keep_alive_clients_share_round_trips_and_get_exact_totals() {
    const CLIENTS: usize = 24;
    const ROUNDS: usize = 40;
    let redis = Redis::start();
    let hitme = HitMe::start_with(&redis.url(), &["--threads", "2"]);
    let post = |url: &str| {
        let body = format!("url={url}&timestamp={T}");
        format!(
            "POST /hit HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let statuses: Vec<Vec<u16>> = std::thread::scope(|s| {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let (hitme, post) = (&hitme, &post);
                s.spawn(move || {
                    let mut stream = send(hitme.addr, post("http%3A%2F%2Fa.example%2F").as_bytes());
                    let mut statuses = vec![read_response(&mut stream).status];
                    for round in 1..ROUNDS {
                        let request = match (client + round) % 10 {
                            0 => post("not-a-url"),
                            1 => {
                                "GET /hit?url=http%3A%2F%2Fa.example%2F HTTP/1.1\r\nHost: x\r\n\r\n"
                                    .to_string()
                            }
                            _ => post("http%3A%2F%2Fa.example%2F"),
                        };
                        stream.write_all(request.as_bytes()).unwrap();
                        statuses.push(read_response(&mut stream).status);
                    }
                    statuses
                })
            })
            .collect();
        clients.into_iter().map(|c| c.join().unwrap()).collect()
    });
    let count = |status: u16| statuses.iter().flatten().filter(|s| **s == status).count();
    let kinds = |kind: usize| {
        (0..CLIENTS)
            .flat_map(|client| (1..ROUNDS).map(move |round| (client + round) % 10))
            .filter(|k| *k == kind)
            .count()
    };
    let (bad, reads) = (kinds(0), kinds(1));
    assert_eq!(count(400), bad);
    assert_eq!(count(200), CLIENTS * ROUNDS - bad);
    let hits = (CLIENTS * ROUNDS - bad - reads) as i64;
    assert_eq!(redis.hget("hits:all", "http://a.example/"), Some(hits));
    assert_eq!(
        redis.hget("hits:minute:1700010120000", "http://a.example/"),
        Some(hits)
    );
    let counted = hitme
        .metric(r#"hitme_http_requests_total{route="/hit",status="200"}"#)
        .unwrap();
    assert_eq!(counted as usize, CLIENTS * ROUNDS - bad);
    // Two workers for 24 clients: hits did share round trips.
    let batched = hitme.metric("hitme_hits_batched_total").unwrap();
    assert!(
        batched > 0.0 && batched <= hits as f64,
        "{batched} of {hits} hits batched"
    );
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
