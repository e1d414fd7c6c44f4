//! Many clients at once: every acknowledged hit is counted, exactly, in all six buckets.

mod common;

use std::io::Write;
use std::time::Duration;

use common::{read_response, read_responses, send, HitMe, Redis};

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
/// one it picks up and records their hits in one transaction (equal hits as one `HINCRBY`
/// by their number). Bad requests and reads among them are answered on their own; every
/// hit answered 200 is counted once, in its own URL's buckets.
#[test]
fn keep_alive_clients_share_round_trips_and_get_exact_totals() {
    const CLIENTS: usize = 24;
    const ROUNDS: usize = 40;
    // The next minute, for some of the hits.
    const T2: i64 = T + 60_000;
    let redis = Redis::start();
    let hitme = HitMe::start_with(&redis.url(), &["--threads", "2"]);
    let post = |url: &str, timestamp: i64| {
        let body = format!("url={url}&timestamp={timestamp}");
        format!(
            "POST /hit HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let (a, b) = ("http%3A%2F%2Fa.example%2F", "http%3A%2F%2Fb.example%2F");
    let statuses: Vec<Vec<u16>> = std::thread::scope(|s| {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let (hitme, post) = (&hitme, &post);
                s.spawn(move || {
                    let mut stream = send(hitme.addr, post(a, T).as_bytes());
                    let mut statuses = vec![read_response(&mut stream).status];
                    for round in 1..ROUNDS {
                        let request = match (client + round) % 10 {
                            0 => post("not-a-url", T),
                            1 => format!("GET /hit?url={a} HTTP/1.1\r\nHost: x\r\n\r\n"),
                            2 => post(b, T),
                            3 => post(a, T2),
                            _ => post(a, T),
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
            .count() as i64
    };
    let (bad, reads, on_b, next_minute) = (kinds(0), kinds(1), kinds(2), kinds(3));
    let all = (CLIENTS * ROUNDS) as i64;
    assert_eq!(count(400) as i64, bad);
    assert_eq!(count(200) as i64, all - bad);
    let on_a = all - bad - reads - on_b;
    assert_eq!(redis.hget("hits:all", "http://a.example/"), Some(on_a));
    assert_eq!(redis.hget("hits:all", "http://b.example/"), Some(on_b));
    assert_eq!(
        redis.hget("hits:minute:1700010120000", "http://a.example/"),
        Some(on_a - next_minute)
    );
    assert_eq!(
        redis.hget("hits:minute:1700010180000", "http://a.example/"),
        Some(next_minute)
    );
    assert_eq!(
        redis.hget("hits:minute:1700010120000", "http://b.example/"),
        Some(on_b)
    );
    let counted = hitme
        .metric(r#"hitme_http_requests_total{route="/hit",status="200"}"#)
        .unwrap();
    assert_eq!(counted as i64, all - bad);
    // Two workers for 24 clients: hits did share round trips.
    let hits = on_a + on_b;
    let batched = hitme.metric("hitme_hits_batched_total").unwrap();
    assert!(
        batched > 0.0 && batched <= hits as f64,
        "{batched} of {hits} hits batched"
    );
}

/// Requests pipelined on one connection and taken by one worker together are answered in
/// their order (tiny_http sends a connection's answers in order, so an answer sent ahead of
/// an earlier one would wait for ever), and a read among hits sees the hits before it.
#[test]
fn pipelined_hits_and_reads_taken_together_are_answered_in_order() {
    let redis = Redis::start();
    let hitme = HitMe::start_with(&redis.url(), &["--threads", "1"]);
    let url = "http%3A%2F%2Fpipelined.example%2F";
    let post = |body: &str| {
        format!(
            "POST /hit HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    // The only worker is kept busy reading a slow body (over 1 KiB, so read as it comes)
    // while the pipelined requests queue up behind it.
    let slow_body = format!(
        "url=http%3A%2F%2Fslow.example%2F&timestamp={T}&pad={}",
        "x".repeat(2000)
    );
    let slow = post(&slow_body);
    let (head, tail) = slow.split_at(slow.len() - 100);
    let mut slow = send(hitme.addr, head.as_bytes());
    std::thread::sleep(std::time::Duration::from_millis(300));
    let hit = post(&format!("url={url}&timestamp={T}"));
    let read = format!("GET /hit?url={url}&timestamp={T} HTTP/1.1\r\nHost: x\r\n\r\n");
    let pipelined = [hit.as_str(), &hit, &read, &hit, &hit].concat();
    let mut stream = send(hitme.addr, pipelined.as_bytes());
    std::thread::sleep(std::time::Duration::from_millis(500));
    slow.write_all(tail.as_bytes()).unwrap();
    assert_eq!(read_response(&mut slow).status, 200);

    let answers = read_responses(&mut stream, 5);
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [200; 5]);
    assert_eq!(answers[2].json()["all_time"], 2, "{}", answers[2].text());
    assert_eq!(redis.hget("hits:all", "http://pipelined.example/"), Some(4));
    assert_eq!(
        redis.hget("hits:minute:1700010120000", "http://pipelined.example/"),
        Some(4)
    );
    // Taken as one batch: two hits recorded together before the read, two after it.
    assert_eq!(hitme.metric("hitme_hits_batched_total"), Some(4.0));
}

/// A hit whose body is still coming (over 1 KiB, read by the worker as it arrives) ends a
/// batch: the hits taken before it are recorded and answered first, never held while its
/// client takes its time.
#[test]
fn a_hit_whose_body_is_still_coming_does_not_hold_the_hits_taken_before_it() {
    let redis = Redis::start();
    let hitme = HitMe::start_with(&redis.url(), &["--threads", "1"]);
    let post = |body: &str| {
        format!(
            "POST /hit HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let slow_body = |host: &str| {
        format!(
            "url=http%3A%2F%2F{host}%2F&timestamp={T}&pad={}",
            "x".repeat(2000)
        )
    };
    // The only worker waits for a first slow body while the others queue behind it.
    let first = post(&slow_body("first.example"));
    let (first_head, first_tail) = first.split_at(first.len() - 100);
    let mut first = send(hitme.addr, first_head.as_bytes());
    std::thread::sleep(Duration::from_millis(300));
    let quick_hit = post(&format!("url=http%3A%2F%2Fquick.example%2F&timestamp={T}"));
    let mut quick = send(hitme.addr, quick_hit.as_bytes());
    std::thread::sleep(Duration::from_millis(200));
    let second = post(&slow_body("second.example"));
    let (second_head, second_tail) = second.split_at(second.len() - 100);
    let mut second = send(hitme.addr, second_head.as_bytes());
    std::thread::sleep(Duration::from_millis(500));
    // The worker now takes the quick hit and the second slow one together.
    first.write_all(first_tail.as_bytes()).unwrap();
    assert_eq!(read_response(&mut first).status, 200);
    // Answered while the second body is incomplete (the read would time out otherwise).
    quick
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(read_response(&mut quick).status, 200);
    assert_eq!(redis.hget("hits:all", "http://quick.example/"), Some(1));
    assert_eq!(redis.hget("hits:all", "http://second.example/"), None);
    second.write_all(second_tail.as_bytes()).unwrap();
    assert_eq!(read_response(&mut second).status, 200);
    assert_eq!(redis.hget("hits:all", "http://second.example/"), Some(1));
    assert_eq!(redis.hget("hits:all", "http://first.example/"), Some(1));
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
    for period in common::PERIODS {
        let total: i64 = all[period]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_i64().unwrap())
            .sum();
        assert_eq!(total, (CLIENTS * HITS_EACH) as i64, "{period}");
    }
}
