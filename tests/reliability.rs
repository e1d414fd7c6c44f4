//! Faults and abuse: Redis dying or freezing under load, shutdown under load, the accept loop
//! running out of file descriptors, oversized bodies, and the bookkeeping that proves no
//! acknowledged hit is lost (acked <= counted <= acked + errors).
//!
//! Durations are printed for RELIABILITY.md; the assertions on them are only generous
//! no-hang bounds, not performance targets.

mod common;

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{hitme_command, now_ms, request, send, try_post_hit, wait_until, HitMe, Redis};

const URL: &str = "http://load.example/";

/// Clients posting hits in a loop (bounded in count) until told to stop.
struct Load {
    stop: Arc<AtomicBool>,
    clients: Vec<JoinHandle<Vec<Outcome>>>,
}

/// One request of a load: when it ended, whether it was answered 200, how long it took.
type Outcome = (Instant, bool, Duration);

/// What a load saw: every request's end time, whether it was answered 200, and its time.
struct Tally {
    outcomes: Vec<Outcome>,
}

impl Load {
    fn start(hitme: &HitMe, clients: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let clients = (0..clients)
            .map(|_| {
                let (stop, addr) = (stop.clone(), hitme.addr);
                std::thread::spawn(move || {
                    let mut outcomes = Vec::new();
                    while !stop.load(Ordering::Relaxed) && outcomes.len() < 50_000 {
                        let began = Instant::now();
                        let ok = try_post_hit(addr, URL, Duration::from_secs(10))
                            .is_ok_and(|s| s == 200);
                        outcomes.push((Instant::now(), ok, began.elapsed()));
                        if !ok {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                    }
                    outcomes
                })
            })
            .collect();
        Load { stop, clients }
    }

    fn finish(self) -> Tally {
        self.stop.store(true, Ordering::Relaxed);
        let mut outcomes: Vec<_> = self
            .clients
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect();
        outcomes.sort_by_key(|(at, _, _)| *at);
        Tally { outcomes }
    }
}

impl Tally {
    fn acked(&self) -> i64 {
        self.outcomes.iter().filter(|(_, ok, _)| *ok).count() as i64
    }

    fn errors(&self) -> i64 {
        self.outcomes.len() as i64 - self.acked()
    }

    /// The first answer after `since` that was (`ok`) or was not a 200.
    fn first_after(&self, since: Instant, ok: bool) -> Option<Duration> {
        self.outcomes
            .iter()
            .find(|(at, o, _)| *at > since && *o == ok)
            .map(|(at, _, _)| *at - since)
    }

    /// The times of the requests that failed between `from` and `to`, sorted.
    fn failure_times(&self, from: Instant, to: Instant) -> Vec<Duration> {
        let mut times: Vec<Duration> = self
            .outcomes
            .iter()
            .filter(|(at, ok, took)| !*ok && *at - *took >= from && *at <= to)
            .map(|(_, _, took)| *took)
            .collect();
        times.sort();
        times
    }

    /// No acknowledged hit lost, no hit counted that was never sent.
    fn assert_accounted(&self, counted: i64, what: &str) {
        let (acked, errors) = (self.acked(), self.errors());
        println!("{what}: acked {acked}, errors {errors}, counted {counted}");
        assert!(acked > 0, "{what}: no hit was acknowledged");
        assert!(
            acked <= counted,
            "{what}: lost acknowledged hits: acked {acked} > counted {counted}"
        );
        assert!(
            counted <= acked + errors,
            "{what}: counted {counted} > acked {acked} + errors {errors}"
        );
    }
}

fn counted(redis: &Redis) -> i64 {
    redis.hget("hits:all", URL).unwrap_or(0)
}

#[test]
fn redis_killed_under_load_gives_503s_then_recovers_with_no_acked_hit_lost() {
    redis_killed_under_load(&[]);
}

#[test]
fn redis_killed_under_load_with_group_commit_loses_no_acked_hit() {
    redis_killed_under_load(&["--group-commit"]);
}

fn redis_killed_under_load(args: &[&str]) {
    let mut redis = Redis::start_persistent();
    let hitme = HitMe::start_with(&redis.url(), args);
    let load = Load::start(&hitme, 8);
    std::thread::sleep(Duration::from_millis(700));

    let killed = Instant::now();
    redis.kill();
    std::thread::sleep(Duration::from_millis(1500));
    redis.restart(); // replays its append-only file
    let back = Instant::now();
    std::thread::sleep(Duration::from_millis(1500));
    let tally = load.finish();

    let to_503 = tally
        .first_after(killed, false)
        .expect("the outage was noticed");
    let to_200 = tally
        .first_after(back, true)
        .expect("the service recovered");
    println!("Redis killed {args:?}: first error after {to_503:?}; Redis back: first 200 after {to_200:?}");
    assert!(
        to_503 < Duration::from_secs(5),
        "requests hung for {to_503:?}"
    );
    assert!(to_200 < Duration::from_secs(5), "recovery took {to_200:?}");
    tally.assert_accounted(
        counted(&redis),
        &format!("Redis killed under load {args:?}"),
    );
    assert!(hitme.metric("hitme_redis_errors_total").unwrap() >= 1.0);
}

/// The nearest-rank percentile `q` of sorted `times`.
fn percentile(times: &[Duration], q: f64) -> Duration {
    times[((q * times.len() as f64).ceil() as usize).clamp(1, times.len()) - 1]
}

/// Redis killed under 50 clients: once the first failures open the breaker, hits are answered
/// 503 at once (one request at a time probes Redis), `/healthz` says so, and the dashboard
/// and `/metrics` are answered meanwhile; once Redis is back, hits are counted again within
/// a second or so, and every acknowledged hit is counted.
#[test]
fn a_redis_outage_is_answered_at_once_and_healthz_tells_the_truth() {
    let mut redis = Redis::start_persistent();
    let hitme = HitMe::start(&redis.url());
    let load = Load::start(&hitme, 50);
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(hitme.get("/healthz").status, 200);

    redis.kill();
    let killed = Instant::now();
    // The breaker opens at the first failures.
    wait_until(Duration::from_secs(5), "the breaker open", || {
        hitme.metric(r#"hitme_redis_breaker_open{server="redis"}"#) == Some(1.0)
    });
    let opened = Instant::now();
    let mut side: Vec<(&str, Duration)> = Vec::new();
    for _ in 0..10 {
        for (path, status) in [("/healthz", 503), ("/index.html", 200), ("/metrics", 200)] {
            let began = Instant::now();
            let resp = hitme.get(path);
            side.push((path, began.elapsed()));
            assert_eq!(resp.status, status, "{path}: {}", resp.text());
            if path == "/healthz" {
                let body = resp.json();
                assert_eq!(body["reason"], "unreachable", "{body}");
                assert!(body["error"].as_str().unwrap().contains("Redis"), "{body}");
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let outage_seen = Instant::now();
    redis.restart(); // replays its append-only file
    let back = Instant::now();
    wait_until(Duration::from_secs(5), "hits counted again", || {
        try_post_hit(hitme.addr, URL, Duration::from_secs(5)).is_ok_and(|s| s == 200)
    });
    let recovered = back.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    let tally = load.finish();
    assert_eq!(hitme.get("/healthz").status, 200);
    assert_eq!(
        hitme.metric(r#"hitme_redis_breaker_open{server="redis"}"#),
        Some(0.0)
    );

    let failures = tally.failure_times(opened, outage_seen);
    assert!(
        failures.len() > 50,
        "{} 503s while Redis was down",
        failures.len()
    );
    let (p50, p99, max) = (
        percentile(&failures, 0.5),
        percentile(&failures, 0.99),
        *failures.last().unwrap(),
    );
    let slowest = |path: &str| {
        side.iter()
            .filter(|(p, _)| *p == path)
            .map(|(_, took)| *took)
            .max()
            .unwrap()
    };
    println!(
        "Redis down under 50 clients: breaker open {:?} after the kill; {} 503s, p50 {p50:?}, p99 {p99:?}, max {max:?}; slowest /healthz {:?}, /index.html {:?}, /metrics {:?}; hits counted again {recovered:?} after Redis was back",
        opened - killed,
        failures.len(),
        slowest("/healthz"),
        slowest("/index.html"),
        slowest("/metrics"),
    );
    // Generous no-hang bounds; the figures go to RELIABILITY.md.
    assert!(p99 < Duration::from_secs(1), "503s took {p99:?} at p99");
    assert!(recovered < Duration::from_secs(5));
    tally.assert_accounted(counted(&redis), "Redis down under 50 clients");
}

/// Redis out of memory with `noeviction`: hits are 503s, `/healthz` says Redis refuses writes
/// (and why), reads still work; once memory is freed, `/healthz` and hits are 200 again.
#[test]
fn healthz_says_when_redis_refuses_writes_until_it_takes_them_again() {
    let redis = Redis::start();
    let hitme = HitMe::start(&redis.url());
    let t = now_ms();
    hitme.hit(URL, t);
    assert_eq!(hitme.get("/healthz").status, 200);
    let config = |name: &str, value: &str| {
        let () = redis::cmd("CONFIG")
            .arg("SET")
            .arg(name)
            .arg(value)
            .query(&mut redis.conn())
            .unwrap();
    };
    config("maxmemory-policy", "noeviction");
    config("maxmemory", "1");

    let refused = hitme.post_form("/hit", &format!("url={}", common::encode(URL)));
    assert_eq!(refused.status, 503);
    assert!(refused.error().contains("OOM"), "{}", refused.error());
    for _ in 0..2 {
        let health = hitme.get("/healthz");
        assert_eq!(health.status, 503);
        let body = health.json();
        assert_eq!(body["reason"], "refusing_writes", "{body}");
        let error = body["error"].as_str().unwrap();
        assert!(
            error.starts_with("Redis refuses writes (") && error.contains("OOM"),
            "{error}"
        );
    }
    // Reading needs no memory.
    let read = hitme.get(&format!("/hit?url={}&timestamp={t}", common::encode(URL)));
    assert_eq!(
        (read.status, read.json()["all_time"].as_i64()),
        (200, Some(1))
    );

    config("maxmemory", "0");
    assert_eq!(hitme.get("/healthz").status, 200);
    hitme.hit(URL, t);
    assert_eq!(counted(&redis), 2);
}

/// A connection holds one descriptor while it is open (its read and write halves share one
/// socket) and none once it is closed: after 300 requests on connections of their own the
/// descriptors are as many as before, and an open keep-alive connection adds exactly one.
#[test]
fn connections_hold_one_descriptor_and_leave_none_behind() {
    let redis = Redis::start();
    let hitme = HitMe::start(&redis.url());
    hitme.hit(URL, 0);
    let descriptors = || {
        std::fs::read_dir(format!("/proc/{}/fd", hitme.pid()))
            .unwrap()
            .count()
    };
    // The first hit's connection may still be closing: its descriptor counts as gone.
    let before = descriptors();
    for _ in 0..300 {
        hitme.hit(URL, 0);
    }
    wait_until(
        Duration::from_secs(5),
        "the connections' descriptors closed",
        || descriptors() <= before,
    );
    // Settled: the last connections' halves (and any idle pooled Redis connection) may
    // still be closing a moment after the count first drops.
    let mut idle = descriptors();
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(50));
        let now = descriptors();
        if now == idle {
            break;
        }
        idle = now;
    }
    let mut open = send(hitme.addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(common::read_response(&mut open).status, 200);
    assert_eq!(
        descriptors(),
        idle + 1,
        "one descriptor for an open connection"
    );
    drop(open);
    wait_until(Duration::from_secs(5), "the last connection closed", || {
        descriptors() == idle
    });
    assert_eq!(counted(&redis), 301);
}

/// A request that does not parse as HTTP/1.1 (no version, bytes that are not ASCII, a header
/// without a colon) is answered 400 with a JSON error saying what was wrong, and the
/// connection closed: where a next request would start is unknown.
#[test]
fn requests_that_do_not_parse_get_a_400_that_says_why() {
    use std::io::Read;
    let redis = Redis::start();
    let hitme = HitMe::start(&redis.url());
    for (raw, why) in [
        (
            &b"GET /hit\r\n\r\n"[..],
            "the request line is not METHOD /path HTTP/1.1",
        ),
        (
            &b"GET /h\xffit HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            "the request line or a header has bytes that are not ASCII; percent-encode them",
        ),
        (
            &b"GET /hit HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n"[..],
            "a header line is not Name: value",
        ),
    ] {
        let mut stream = send(hitme.addr, raw);
        let resp = common::read_response(&mut stream);
        assert_eq!(resp.status, 400, "{raw:?}");
        assert_eq!(resp.header("Content-Type"), Some("application/json"));
        assert_eq!(
            resp.json(),
            serde_json::json!({"status": "error", "error": format!("the request could not be read: {why}")})
        );
        let mut rest = Vec::new();
        assert_eq!(stream.read_to_end(&mut rest).unwrap(), 0, "closed after");
    }
    // The server goes on.
    hitme.hit(URL, 0);
}

/// Framings a proxy in front could read differently from HitMe (request smuggling) are
/// refused as RFC 9112 asks, with HitMe's JSON error, the connection closed and nothing
/// counted; a body in chunks alone, or a length with leading zeros, still counts.
#[test]
fn framings_a_proxy_could_read_differently_are_refused_and_the_connection_closed() {
    use std::io::Read;
    let redis = Redis::start();
    let hitme = HitMe::start(&redis.url());
    let body = format!("url={}", common::encode(URL));
    let chunked = format!("{:x}\r\n{body}\r\n0\r\n\r\n", body.len());
    let form = "Content-Type: application/x-www-form-urlencoded";
    let cases = [
        (
            format!("POST /hit HTTP/1.1\r\nHost: x\r\n{form}\r\nTransfer-Encoding: chunked, gzip\r\n\r\n{chunked}"),
            400,
            "Transfer-Encoding must end in chunked, once; or send Content-Length",
        ),
        (
            format!("POST /hit HTTP/1.1\r\nHost: x\r\n{form}\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n{chunked}"),
            400,
            "Transfer-Encoding must end in chunked, once; or send Content-Length",
        ),
        (
            format!("POST /hit HTTP/1.1\r\nHost: x\r\n{form}\r\nTransfer-Encoding: gzip, chunked\r\n\r\n{chunked}"),
            501,
            "the only Transfer-Encoding HitMe reads is chunked; send the body uncompressed",
        ),
        (
            format!("POST /hit HTTP/1.1\r\nHost: x\r\n{form}\r\nContent-Length: +{}\r\n\r\n{body}", body.len()),
            400,
            "Content-Length must be a number of bytes, digits only",
        ),
        (
            format!("POST /hit HTTP/1.1\r\nHost: x\r\n{form}\r\nContent-Length: {0}, {0}\r\n\r\n{body}", body.len()),
            400,
            "Content-Length must be a number of bytes, digits only",
        ),
        (
            format!("POST /hit HTTP/1.1\r\nHost: x\r\n{form}\r\nContent-Length: 99999999999999999999999\r\n\r\n{body}"),
            400,
            "Content-Length is too large",
        ),
        (
            format!("POST /hit HTTP/1.1\r\nHost: x\r\n{form}\r\nContent-Length: {}\r\nContent-Length: 0\r\n\r\n{body}", body.len()),
            400,
            "the request has two different Content-Length headers",
        ),
        (
            format!("POST /hit HTTP/1.1\r\nHost: x\r\n{form}\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n{chunked}", body.len()),
            400,
            "the request has both Content-Length and Transfer-Encoding; send one",
        ),
        (
            format!("POST /hit HTTP/1.0\r\n{form}\r\nTransfer-Encoding: chunked\r\n\r\n{chunked}"),
            400,
            "Transfer-Encoding is not HTTP/1.0; send Content-Length",
        ),
        (
            format!("POST /hit HTTP/1.1\r\n{form}\r\nContent-Length: {}\r\n\r\n{body}", body.len()),
            400,
            "an HTTP/1.1 request needs a Host header",
        ),
        (
            format!("POST /hit HTTP/1.1\r\nHost: x\r\nHost: y\r\n{form}\r\nContent-Length: {}\r\n\r\n{body}", body.len()),
            400,
            "the request has more than one Host header",
        ),
    ];
    for (raw, status, why) in cases {
        let mut stream = send(hitme.addr, raw.as_bytes());
        let resp = common::read_response(&mut stream);
        assert_eq!(resp.status, status, "{raw:?}");
        assert_eq!(resp.header("Content-Type"), Some("application/json"));
        assert_eq!(
            resp.json(),
            serde_json::json!({"status": "error", "error": format!("the request could not be read: {why}")}),
            "{raw:?}"
        );
        let mut rest = Vec::new();
        assert_eq!(
            stream.read_to_end(&mut rest).unwrap(),
            0,
            "closed after {raw:?}"
        );
    }
    assert_eq!(counted(&redis), 0, "no refused framing counted");

    // The framings that say one thing are read: chunks alone, a length with leading zeros,
    // HTTP/1.0 without Host.
    for raw in [
        format!("POST /hit HTTP/1.1\r\nHost: x\r\n{form}\r\nTransfer-Encoding: Chunked\r\nConnection: close\r\n\r\n{chunked}"),
        format!("POST /hit HTTP/1.1\r\nHost: x\r\n{form}\r\nContent-Length: 00{}\r\nConnection: close\r\n\r\n{body}", body.len()),
        format!("POST /hit HTTP/1.0\r\n{form}\r\nContent-Length: {0}\r\nContent-Length: {0}\r\n\r\n{body}", body.len()),
    ] {
        let mut stream = send(hitme.addr, raw.as_bytes());
        let resp = common::read_response(&mut stream);
        assert_eq!(resp.status, 200, "{raw:?}: {}", resp.text());
    }
    assert_eq!(counted(&redis), 3);
}

/// Lines that end in a bare LF (RFC 9112 section 2.2 lets a server accept them) are read
/// like CRLF ones, a CR before the LF dropped: the request is answered, the hit counted,
/// where the server used to wait for a CRLF that never came and close without a word.
#[test]
fn lines_ending_in_a_bare_lf_are_read_as_lines() {
    let redis = Redis::start();
    let hitme = HitMe::start(&redis.url());
    let mut health = send(hitme.addr, b"GET /healthz HTTP/1.0\n\n");
    assert_eq!(common::read_response(&mut health).status, 200);
    let body = format!("url={}&timestamp=0", common::encode(URL));
    let hit = format!(
        "POST /hit HTTP/1.1\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\nContent-Length: {}\r\n\n{body}",
        body.len()
    );
    let mut stream = send(hitme.addr, hit.as_bytes());
    let resp = common::read_response(&mut stream);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(counted(&redis), 1);
}

/// An HTTP/1.1 client that asks to close is told so in the response (RFC 9112 section 9.6),
/// and the connection then closes; one that keeps the connection, and an HTTP/1.0 one
/// (which expects the close), get no `Connection` header.
#[test]
fn a_client_asking_to_close_is_told_the_connection_closes() {
    let redis = Redis::start();
    let hitme = HitMe::start(&redis.url());
    // common::request sends `Connection: close`.
    let resp = request(hitme.addr, "GET", "/healthz", &[], b"");
    assert_eq!(
        (resp.status, resp.header("Connection")),
        (200, Some("close"))
    );
    let mut kept = send(hitme.addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    let resp = common::read_response(&mut kept);
    assert_eq!((resp.status, resp.header("Connection")), (200, None));
    let mut old = send(hitme.addr, b"GET /healthz HTTP/1.0\r\n\r\n");
    let resp = common::read_response(&mut old);
    assert_eq!((resp.status, resp.header("Connection")), (200, None));
    // After the answer, the connection that asked to close reads EOF.
    let mut closing = send(
        hitme.addr,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let mut all = Vec::new();
    std::io::Read::read_to_end(&mut closing, &mut all).unwrap();
    let text = String::from_utf8_lossy(&all);
    assert!(text.contains("\r\nConnection: close\r\n"), "{text}");
    assert!(text.ends_with("{\"status\":\"OK\"}"), "{text}");
}

#[test]
fn a_frozen_redis_gives_503_not_a_hang() {
    let redis = Redis::start();
    let hitme = HitMe::start(&redis.url()); // --redis-timeout-ms 500
    hitme.hit(URL, 0);
    // SAFETY: signals to our own child.
    unsafe { libc::kill(redis.pid(), libc::SIGSTOP) };
    let started = Instant::now();
    let status = try_post_hit(hitme.addr, URL, Duration::from_secs(20)).unwrap();
    let took = started.elapsed();
    let health = hitme.get("/healthz").status;
    unsafe { libc::kill(redis.pid(), libc::SIGCONT) };
    println!("frozen Redis: POST /hit answered {status} after {took:?}");
    assert_eq!((status, health), (503, 503));
    assert!(
        took < Duration::from_secs(5),
        "the request hung for {took:?}"
    );

    wait_until(Duration::from_secs(10), "recovery", || {
        hitme.get("/healthz").status == 200
    });
    hitme.hit(URL, 0);
    // The frozen request reached Redis before it froze and ran when it woke: a 503 means
    // "not known to be counted", never "not counted".
    let counted = counted(&redis);
    assert!((2..=3).contains(&counted), "counted {counted}");
}

#[test]
fn sigterm_under_load_finishes_in_flight_requests_and_loses_no_acked_hit() {
    let redis = Redis::start();
    let mut hitme = HitMe::start_with(&redis.url(), &["--threads", "4"]);
    let load = Load::start(&hitme, 8);
    std::thread::sleep(Duration::from_millis(700));
    let stopping = Instant::now();
    let status = hitme.signal_and_wait(libc::SIGTERM, Duration::from_secs(10));
    let took = stopping.elapsed();
    let tally = load.finish();
    println!("SIGTERM under load: exited {status:?} after {took:?}");
    assert!(status.success(), "{}", hitme.log());
    assert!(took < Duration::from_secs(5), "shutdown took {took:?}");
    tally.assert_accounted(counted(&redis), "SIGTERM under load");
}

#[test]
fn the_accept_loop_is_restored_after_running_out_of_file_descriptors() {
    use std::os::unix::process::CommandExt;
    let redis = Redis::start();
    let mut cmd = hitme_command(&redis.url(), &["--threads", "2"]);
    // SAFETY: setrlimit is async-signal-safe; it runs in the child between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 64,
                rlim_max: 64,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    let hitme = HitMe::start_command(cmd);
    hitme.hit(URL, 0);

    // Idle connections take every descriptor; the next accept fails with EMFILE.
    let idle: Vec<_> = (0..100)
        .filter_map(|_| std::net::TcpStream::connect(hitme.addr).ok())
        .collect();
    wait_until(Duration::from_secs(10), "the accept loop to fail", || {
        hitme.log().contains("the accept loop stopped")
    });
    drop(idle);
    wait_until(
        Duration::from_secs(10),
        "the accept loop to be restored",
        || hitme.log().contains("accept loop restored"),
    );
    hitme.hit(URL, 0);
    // Once per failure: the idle connections may exhaust descriptors more than once.
    let restarts = hitme.metric("hitme_accept_loop_restarts_total").unwrap();
    let logged = hitme.log().matches("accept loop restored").count() as f64;
    assert!(
        restarts >= 1.0 && restarts == logged,
        "{restarts} restarts; log:\n{}",
        hitme.log()
    );
    assert_eq!(counted(&redis), 2);
}

#[test]
fn a_huge_body_neither_grows_memory_nor_blocks_workers() {
    let redis = Redis::start();
    let hitme = HitMe::start_with(&redis.url(), &["--threads", "2"]);
    hitme.hit(URL, 0);
    let before = hitme.rss_kib();
    let head = b"POST /hit HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n";
    let chunk = vec![b'a'; 64 * 1024];
    let mut streams = Vec::new();
    for _ in 0..4 {
        let mut stream = send(hitme.addr, head);
        let resp = common::read_response(&mut stream);
        assert_eq!(resp.status, 413);
        // Keep sending: the server discards it as it comes.
        for _ in 0..256 {
            stream.write_all(&chunk).unwrap(); // 16 MiB per connection
        }
        streams.push(stream);
    }
    hitme.hit(URL, 0); // workers are free
    let grown = hitme.rss_kib().saturating_sub(before);
    println!("4 x 1 GB declared bodies, 64 MiB sent: RSS grew {grown} KiB");
    assert!(grown < 16 * 1024, "RSS grew {grown} KiB");
    assert_eq!(counted(&redis), 2);
}

#[test]
fn a_burst_of_keep_alive_connections_is_served_at_once() {
    // Each round: a fresh server (4 idle connection threads), then 16 keep-alive connections
    // at once, each holding its connection open. All 16 must be answered while all are open.
    let redis = Redis::start();
    for round in 0..3 {
        let hitme = HitMe::start(&redis.url());
        let raw = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
        let mut open: Vec<_> = (0..16).map(|_| send(hitme.addr, raw)).collect();
        for (i, stream) in open.iter_mut().enumerate() {
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let resp = common::read_response(stream);
            assert_eq!(resp.status, 200, "round {round}, connection {i}");
        }
    }
}

#[test]
fn a_header_block_over_16_kib_gets_431_and_is_not_buffered() {
    let redis = Redis::start();
    let hitme = HitMe::start(&redis.url());
    let before = hitme.rss_kib();
    for _ in 0..20 {
        let mut stream = send(hitme.addr, b"GET /hits HTTP/1.1\r\nHost: x\r\nX-Big: ");
        // Up to 1 MiB of one endless header; the server stops reading at 16 KiB.
        let filler = vec![b'a'; 64 * 1024];
        for _ in 0..16 {
            if stream.write_all(&filler).is_err() {
                break; // closed by the server, as it should
            }
        }
        let resp = common::read_response(&mut stream);
        assert_eq!(resp.status, 431);
        assert_eq!(
            resp.json(),
            serde_json::json!({"status": "error", "error": "the request could not be read: the request line and headers are over 16 KiB; send a long URL in a POST body"})
        );
        assert_eq!(resp.header("Cache-Control"), Some("no-store"));
    }
    let grown = hitme.rss_kib().saturating_sub(before);
    println!("20 x 1 MiB header blocks: RSS grew {grown} KiB");
    assert!(grown < 8 * 1024, "RSS grew {grown} KiB");
    // Ordinary headers are fine.
    let resp = request(
        hitme.addr,
        "GET",
        "/healthz",
        &[("X-Fine", &"b".repeat(4000))],
        b"",
    );
    assert_eq!(resp.status, 200);
}

#[test]
fn a_stalled_client_frees_its_worker_after_the_client_timeout() {
    let redis = Redis::start();
    let args = ["--threads", "1", "--client-timeout-ms", "500"];
    let hitme = HitMe::start_with(&redis.url(), &args);
    // Declares 5000 bytes, sends 2000, then goes silent while holding the connection.
    let head = "POST /hit HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 5000\r\n\r\n";
    let mut stalled = send(hitme.addr, head.as_bytes());
    stalled.write_all(&[b'a'; 2000]).unwrap();
    std::thread::sleep(Duration::from_millis(100)); // the only worker is now reading that body
    let started = Instant::now();
    hitme.hit(URL, 0);
    let waited = started.elapsed();
    println!("a hit behind a stalled body waited {waited:?}");
    assert!(
        waited < Duration::from_secs(5),
        "the worker was held for {waited:?}"
    );
    let resp = common::read_response(&mut stalled);
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert_eq!(counted(&redis), 1);

    // An idle keep-alive connection is closed after the timeout.
    let mut idle = send(hitme.addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(common::read_response(&mut idle).status, 200);
    let mut rest = Vec::new();
    let closed = std::io::Read::read_to_end(&mut idle, &mut rest);
    assert!(closed.is_ok() && rest.is_empty(), "{closed:?} {rest:?}");
}

#[test]
fn metrics_count_requests_by_route_and_status() {
    let redis = Redis::start();
    let hitme = HitMe::start(&redis.url());
    for _ in 0..3 {
        hitme.hit(URL, 0);
    }
    assert_eq!(hitme.post_form("/hit", "url=nope").status, 400);
    assert_eq!(hitme.get("/nope").status, 404);
    let text = hitme.get("/metrics").text();
    for (sample, value) in [
        (
            r#"hitme_http_requests_total{route="/hit",status="200"}"#,
            3.0,
        ),
        (
            r#"hitme_http_requests_total{route="/hit",status="400"}"#,
            1.0,
        ),
        (
            r#"hitme_http_requests_total{route="other",status="404"}"#,
            1.0,
        ),
        (
            r#"hitme_http_request_duration_seconds_count{route="/hit"}"#,
            4.0,
        ),
        ("hitme_http_requests_in_flight", 1.0), // this very request
        ("hitme_accept_loop_restarts_total", 0.0),
        ("hitme_redis_errors_total", 0.0),
    ] {
        let found = text.lines().find_map(|l| {
            l.strip_prefix(sample)?
                .strip_prefix(' ')?
                .parse::<f64>()
                .ok()
        });
        assert_eq!(found, Some(value), "{sample} in\n{text}");
    }
    assert!(text.contains("hitme_redis_pool_connections "));
    assert!(text.contains("# TYPE hitme_http_request_duration_seconds histogram"));
    let resp = hitme.get("/metrics");
    assert_eq!(
        resp.header("Content-Type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
}

#[test]
fn http10_keep_alive_clients_get_a_keep_alive_answer_and_the_connection_stays_open() {
    let redis = Redis::start();
    let hitme = HitMe::start(&redis.url());
    let body = "url=http%3A%2F%2Fka.example%2F";
    let one = format!(
        "POST /hit HTTP/1.0\r\nConnection: Keep-Alive\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut stream = send(hitme.addr, one.as_bytes());
    for i in 0..3 {
        if i > 0 {
            stream.write_all(one.as_bytes()).unwrap();
        }
        let resp = common::read_response(&mut stream);
        assert_eq!(resp.status, 200);
        assert_eq!(
            resp.header("Keep-Alive"),
            Some("timeout=15"),
            "{:?}",
            resp.headers
        );
    }
    assert_eq!(redis.hget("hits:all", "http://ka.example/"), Some(3));
    // Plain HTTP/1.1 needs no such header.
    let resp = request(hitme.addr, "GET", "/healthz", &[], b"");
    assert_eq!(resp.header("Keep-Alive"), None);
}

fn ttl(redis: &Redis, key: &str) -> i64 {
    redis::cmd("TTL").arg(key).query(&mut redis.conn()).unwrap()
}

fn expireat_calls(redis: &Redis) -> i64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut redis.conn())
        .unwrap();
    info.lines()
        .find_map(|l| {
            l.strip_prefix("cmdstat_expireat:calls=")?
                .split(',')
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

#[test]
fn retention_expires_fine_buckets_once_per_bucket_and_keeps_coarse_ones() {
    let redis = Redis::start();
    let args = [
        "--threads",
        "1",
        "--retention-minute",
        "48h",
        "--retention-hour",
        "60d",
    ];
    let hitme = HitMe::start_with(&redis.url(), &args); // day: the default 3y
    let ts = now_ms();
    for _ in 0..5 {
        hitme.hit(URL, ts);
    }
    // One worker, one connection: three buckets with a retention, one EXPIREAT each.
    assert_eq!(expireat_calls(&redis), 3);
    let keys = redis.keys();
    let key = |period: &str| {
        keys.iter()
            .find(|k| k.starts_with(&format!("hits:{period}:")))
            .unwrap()
            .clone()
    };
    let hour = 3600;
    let minute_ttl = ttl(&redis, &key("minute"));
    assert!(
        (48 * hour..=48 * hour + 60).contains(&minute_ttl),
        "minute TTL {minute_ttl}"
    );
    let hour_ttl = ttl(&redis, &key("hour"));
    assert!(
        (60 * 24 * hour..=60 * 24 * hour + hour).contains(&hour_ttl),
        "hour TTL {hour_ttl}"
    );
    let day_ttl = ttl(&redis, &key("day"));
    let three_years = 3 * 31_557_600;
    assert!(
        (three_years..=three_years + 24 * hour).contains(&day_ttl),
        "day TTL {day_ttl}"
    );
    for kept in ["hits:all".to_string(), key("week"), key("month")] {
        assert_eq!(ttl(&redis, &kept), -1, "{kept} has a TTL");
    }
    // A hit from long ago lands only in the buckets still kept.
    let old = 1_700_010_123_456;
    hitme.hit(URL, old);
    let resp = hitme
        .get(&format!("/hit?url={}&timestamp={old}", common::encode(URL)))
        .json();
    assert_eq!(
        [
            &resp["all_time"],
            &resp["last_month"],
            &resp["last_week"],
            &resp["last_day"],
            &resp["last_hour"],
            &resp["last_minute"]
        ],
        [6, 1, 1, 0, 0, 0]
    );
    assert_eq!(redis.hget("hits:minute:1700010120000", URL), None);
}

/// The answer's head as tiny_http writes it for HitMe: the status line, `Date` first (the
/// current second, as `date -u` prints it), HitMe's headers, `Content-Length` last and
/// equal to the body; and a keep-alive connection's second answer, a second later, with
/// the date of its own second.
#[test]
fn an_answer_carries_one_date_of_its_second_and_its_length_last() {
    let redis = Redis::start();
    let hitme = HitMe::start(&redis.url());
    let now = || {
        let out = std::process::Command::new("date")
            .args(["-u", "+%a, %d %b %Y %H:%M:%S GMT"])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let mut kept = common::send(hitme.addr, b"");
    for round in 0..2 {
        let before = now();
        std::io::Write::write_all(
            &mut kept,
            b"GET /hit?url=http%3A%2F%2Fa.example%2F HTTP/1.1\r\nHost: x\r\n\r\n",
        )
        .unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8];
        while !head.ends_with(b"\r\n\r\n") {
            std::io::Read::read_exact(&mut kept, &mut byte).unwrap();
            head.push(byte[0]);
        }
        let after = now();
        let head = String::from_utf8(head).unwrap();
        let lines: Vec<&str> = head.trim_end().split("\r\n").collect();
        assert_eq!(lines[0], "HTTP/1.1 200 OK", "{head}");
        let date = lines[1].strip_prefix("Date: ").expect("Date comes first");
        assert!(
            date == before || date == after,
            "{date} is not {before} or {after}"
        );
        assert_eq!(head.matches("\r\nDate: ").count(), 1, "{head}");
        let length: usize = lines[lines.len() - 1]
            .strip_prefix("Content-Length: ")
            .expect("Content-Length comes last")
            .parse()
            .unwrap();
        let mut body = vec![0u8; length];
        std::io::Read::read_exact(&mut kept, &mut body).unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["all_time"], 0, "round {round}");
        // The next answer falls in another second.
        std::thread::sleep(Duration::from_millis(1100));
    }
}
