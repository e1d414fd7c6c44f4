//! Reads beside hits: `GET /hits` and `/top` run on the read pool, queue for it rather than
//! fail, and a client that takes its answer too slowly is cut off; hits are answered all the
//! while, and counted exactly.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{read_response, send, HitMe, Redis};

const T: i64 = 1_700_010_123_456;

/// Long enough that an answer of many is far larger than a client's socket buffers.
fn url(i: usize) -> String {
    format!(
        "https://www.example.com/a/rather/long/path/{}/to/page/number/{i:08}",
        "x".repeat(160)
    )
}

/// Counts `n` URLs once each, all-time.
fn count_urls(redis: &Redis, n: usize) {
    let mut conn = redis.conn();
    for chunk in (0..n).collect::<Vec<_>>().chunks(10_000) {
        let mut cmd = redis::cmd("HSET");
        cmd.arg("hits:all");
        for i in chunk {
            cmd.arg(url(*i)).arg(1);
        }
        let () = cmd.query(&mut conn).unwrap();
    }
}

/// Sends `GET /hits` and waits until its answer has started.
fn start_hits_answer(hitme: &HitMe) -> TcpStream {
    let stream = send(hitme.addr, b"GET /hits HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut start = [0u8; 12];
    let mut peeked = 0;
    while peeked < start.len() {
        peeked = stream.peek(&mut start).unwrap();
    }
    assert_eq!(&start, b"HTTP/1.1 200");
    stream
}

/// Reads what is left of an answer until the server closes the connection.
fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).expect("the server closes");
    rest
}

/// The all-time counts of a whole `GET /hits` answer, checked: every URL counted once, and
/// `extra` more (the probe's).
fn assert_all_urls(answer: &common::Resp, urls: usize, extra: &[&str]) {
    assert_eq!(answer.status, 200);
    let all = answer.json();
    let all_time = all["all_time"].as_object().unwrap();
    let counted = all_time
        .keys()
        .filter(|u| !extra.contains(&u.as_str()))
        .count();
    assert_eq!(counted, urls);
    assert_eq!(all_time[&url(0)], 1);
    assert_eq!(all_time[&url(urls - 1)], 1);
}

/// A client that stops reading a long answer holds a read thread only until a write to it
/// has waited 5 s: the answer is then cut short, without its last chunk, and the connection
/// closed. Hits are answered meanwhile, and a second `GET /hits` waits its turn (one read
/// thread) instead of failing.
#[test]
fn a_stalled_hits_reader_is_cut_off_without_a_last_chunk() {
    const URLS: usize = 60_000;
    let redis = Redis::start();
    count_urls(&redis, URLS);
    let hitme = HitMe::start_with(&redis.url(), &["--threads", "2", "--read-threads", "1"]);
    let mut stalled = start_hits_answer(&hitme);
    let queued = std::thread::scope(|s| {
        let queued = s.spawn(|| hitme.get("/hits"));
        hitme.hit("http://meanwhile.example/", T);
        assert_eq!(redis.hget("hits:all", "http://meanwhile.example/"), Some(1));
        queued.join().unwrap()
    });
    assert_all_urls(&queued, URLS, &["http://meanwhile.example/"]);
    assert_eq!(
        hitme.metric(r#"hitme_http_responses_cut_total{reason="slow_client"}"#),
        Some(1.0)
    );
    let cut = read_to_close(&mut stalled);
    assert!(cut.len() > 100_000, "{} bytes", cut.len());
    assert!(
        !cut.ends_with(b"0\r\n\r\n"),
        "a cut answer must not end as a whole one"
    );
    assert!(hitme.log().contains("cut short the answer to GET /hits"));
    assert_eq!(
        hitme.metric(r#"hitme_reads_refused_total{reason="queue_full"}"#),
        None
    );
}

/// Reads wait their turn in a bounded queue: past 32 per read thread they are refused at
/// once, and one that waited past --read-queue-ms is refused when a read thread takes it.
#[test]
fn reads_past_the_queue_or_its_wait_are_refused_with_a_503() {
    const URLS: usize = 60_000;
    let redis = Redis::start();
    count_urls(&redis, URLS);
    let hitme = HitMe::start_with(
        &redis.url(),
        &["--read-threads", "1", "--read-queue-ms", "1000"],
    );
    // The one read thread is held by a client that does not read.
    let _stalled = start_hits_answer(&hitme);
    let waiting: Vec<TcpStream> = (0..32)
        .map(|_| send(hitme.addr, b"GET /top HTTP/1.1\r\nHost: x\r\n\r\n"))
        .collect();
    // The workers hand each over as they take it.
    std::thread::sleep(Duration::from_millis(500));
    let refused = hitme.get("/top");
    assert_eq!(refused.status, 503);
    assert_eq!(
        refused.json(),
        serde_json::json!({"status": "error", "error": "32 reads (GET /hits, GET /top) are already waiting for HitMe's read threads; retry in a few seconds, or raise --read-threads"})
    );
    // The queued reads waited past 1 s by the time the thread is free again.
    for mut stream in waiting {
        let refused = read_response(&mut stream);
        assert_eq!(refused.status, 503);
        let error = refused.error();
        assert!(
            error.starts_with("this read waited ")
                && error.ends_with(" ms for one of HitMe's read threads, past --read-queue-ms; retry later, or raise --read-threads"),
            "{error}"
        );
    }
    assert_eq!(
        hitme.metric(r#"hitme_reads_refused_total{reason="waited"}"#),
        Some(32.0)
    );
    // Free again, a read is answered.
    assert_eq!(hitme.get("/top?limit=1").status, 200);
}

/// The scenario reads used to stall hits in: a client reading `GET /hits` slowly (64 bytes
/// every half second), three tabs polling `/top` over the periods, bursts of three
/// concurrent `GET /hits`, and a probe posting a hit every 20 ms, all with the default
/// threads. Every burst's answer is whole, every poll and probe is answered 200, and the
/// probe's hits are counted exactly.
#[test]
fn reads_never_hold_hits_up() {
    const URLS: usize = 40_000;
    const PROBE: &str = "http://probe.example/";
    let redis = Redis::start();
    count_urls(&redis, URLS);
    let hitme = HitMe::start_with(&redis.url(), &["--threads", "2", "--read-threads", "2"]);
    let stop = AtomicBool::new(false);
    let (probes, slowest) = std::thread::scope(|s| {
        let mut slow = start_hits_answer(&hitme);
        let stopping = &stop;
        let slow_reader = s.spawn(move || {
            let mut buf = [0u8; 64];
            while !stopping.load(Ordering::SeqCst) && matches!(slow.read(&mut buf), Ok(1..)) {
                std::thread::sleep(Duration::from_millis(500));
            }
        });
        let pollers: Vec<_> = ["all", "day", "hour"]
            .into_iter()
            .map(|period| {
                let (hitme, stop) = (&hitme, &stop);
                s.spawn(move || {
                    let mut polls = 0;
                    while !stop.load(Ordering::SeqCst) {
                        let top = hitme.get(&format!("/top?period={period}&limit=20"));
                        assert_eq!(top.status, 200, "{}", top.text());
                        polls += 1;
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    polls
                })
            })
            .collect();
        let probe = s.spawn(|| {
            let (mut answered, mut slowest) = (0, Duration::ZERO);
            while !stop.load(Ordering::SeqCst) {
                let began = Instant::now();
                hitme.hit(PROBE, T);
                slowest = slowest.max(began.elapsed());
                answered += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            (answered, slowest)
        });
        for _burst in 0..2 {
            let answers: Vec<_> = (0..3).map(|_| s.spawn(|| hitme.get("/hits"))).collect();
            for answer in answers {
                assert_all_urls(&answer.join().unwrap(), URLS, &[PROBE]);
            }
        }
        // Its answer was cut short within 5 s of the client taking nothing; what the socket
        // buffers hold of it would take the client hours to read.
        common::wait_until(Duration::from_secs(30), "the slow reader cut off", || {
            hitme.metric(r#"hitme_http_responses_cut_total{reason="slow_client"}"#) == Some(1.0)
        });
        stop.store(true, Ordering::SeqCst);
        slow_reader.join().unwrap();
        for poller in pollers {
            assert!(poller.join().unwrap() > 0);
        }
        probe.join().unwrap()
    });
    assert_eq!(redis.hget("hits:all", PROBE), Some(probes));
    eprintln!("{probes} probe hits, the slowest answered in {slowest:?}");
}

/// Keeps the test file's stream helpers honest: a whole answer read by hand ends with its
/// last chunk.
#[test]
fn a_whole_hits_answer_ends_with_its_last_chunk() {
    let redis = Redis::start();
    count_urls(&redis, 10);
    let hitme = HitMe::start(&redis.url());
    let mut stream = send(
        hitme.addr,
        b"GET /hits HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    stream.flush().unwrap();
    let whole = read_to_close(&mut stream);
    assert!(whole.ends_with(b"0\r\n\r\n"));
}
