//! How connections reach the workers, through the vendored tiny_http's patches
//! (vendor/tiny_http/PATCHED.md) and the listening socket (`src/listener.rs`): connection
//! threads that accept for themselves and leave a few at a time when idle, connections
//! accepted once their first bytes are in, and a request queue that wakes a waiting worker
//! for every request.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{request, wait_until, HitMe, Redis};

/// Threads of process `pid`.
fn threads(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("the process is running")
        .count()
}

/// After a burst of 200 connections, the 200 connection threads it started leave once idle
/// (one every 2 ms, after the client timeout), and the process ends with the threads
/// it started with. A burst's threads leaving all at once would show as a few steps; leaving
/// one at a time shows as many.
#[test]
fn idle_connection_threads_leave_a_few_at_a_time() {
    let redis = Redis::start();
    let hitme = HitMe::start_with(&redis.url(), &["--client-timeout-ms", "1000"]);
    assert_eq!(request(hitme.addr, "GET", "/healthz", &[], b"").status, 200);
    let before = threads(hitme.pid());

    // A request begun, so that each is accepted at once (TCP_DEFER_ACCEPT waits for bytes).
    let open: Vec<TcpStream> = (0..200).map(|_| common::send(hitme.addr, b"GET")).collect();
    // The four threads that waited in accept() before serve four of them.
    wait_until(Duration::from_secs(10), "a thread per connection", || {
        threads(hitme.pid()) > before + 196
    });
    let peak = threads(hitme.pid());
    drop(open);

    let mut seen = vec![peak];
    let deadline = Instant::now() + Duration::from_secs(30);
    while *seen.last().unwrap() > before {
        assert!(
            Instant::now() < deadline,
            "idle threads still there after 30 s: {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
        let now = threads(hitme.pid());
        if now != *seen.last().unwrap() {
            seen.push(now);
        }
    }
    assert_eq!(*seen.last().unwrap(), before, "{seen:?}");
    assert!(
        seen.len() >= 20,
        "the threads left in {} steps: {seen:?}",
        seen.len()
    );
}

/// The listening socket defers accepting a connection until its first bytes arrive
/// (`TCP_DEFER_ACCEPT`), but a client that connects and sends nothing is still accepted, after
/// about a second, and then closed once the client timeout has passed (a connection never
/// accepted would stay open until the test's own 20 s read timeout, an error here).
#[test]
fn a_client_that_sends_nothing_is_accepted_then_closed_after_the_client_timeout() {
    let redis = Redis::start();
    let hitme = HitMe::start_with(&redis.url(), &["--client-timeout-ms", "300"]);
    let mut silent = TcpStream::connect(hitme.addr).expect("hitme accepts connections");
    silent
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut answer = String::new();
    silent
        .read_to_string(&mut answer)
        .expect("the connection is closed by hitme");
    assert_eq!(answer, "", "nothing asked, nothing answered");
    assert_eq!(request(hitme.addr, "GET", "/healthz", &[], b"").status, 200);
}

/// A worker waiting in `recv` (or `recv_timeout`) is woken for each request: 300 requests
/// one after the other, each arriving while the only worker waits for it. A lost wake-up
/// would leave a request unanswered (the client gives up after 10 s).
#[test]
fn a_waiting_worker_is_woken_for_every_request() {
    let server = tiny_http::Server::http("127.0.0.1:0").expect("a free port");
    let addr = server.server_addr().to_ip().unwrap();
    let worker = std::thread::spawn(move || {
        for i in 0..300 {
            let request = if i % 2 == 0 {
                server.recv().expect("a request")
            } else {
                server
                    .recv_timeout(Duration::from_secs(60))
                    .expect("no error")
                    .expect("a request within 60 s")
            };
            let answer = format!("answer {i}");
            request
                .respond(tiny_http::Response::from_string(answer))
                .expect("answered");
        }
    });
    for i in 0..300 {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut reply = String::new();
        stream
            .read_to_string(&mut reply)
            .unwrap_or_else(|e| panic!("request {i} unanswered: {e}"));
        assert!(reply.ends_with(&format!("\r\n\r\nanswer {i}")), "{reply}");
    }
    worker.join().unwrap();
}
