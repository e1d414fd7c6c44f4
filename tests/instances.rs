//! Several HitMe processes, one Redis: stateless instances sharing a port (SO_REUSEPORT) or
//! on ports of their own count every hit exactly once.

mod common;

use common::{encode, HitMe, Redis};

const URL: &str = "http://shared.example/";

fn answered_hits(hitme: &HitMe) -> f64 {
    hitme
        .metric(r#"hitme_http_requests_total{route="/hit",status="200"}"#)
        .unwrap_or(0.0)
}

#[test]
fn two_instances_on_one_port_count_exact_totals() {
    let redis = Redis::start();
    let first = HitMe::start_with(&redis.url(), &["--reuse-port"]);
    let port = first.addr.port().to_string();
    let listen = format!("127.0.0.1:{port}");
    let second = HitMe::start_with(&redis.url(), &["--reuse-port", "--listen", &listen]);
    assert_eq!(first.addr, second.addr);

    // An odd total cannot split evenly, so the two instances' counts always differ and each
    // /metrics answer below tells which instance gave it.
    const CLIENTS: usize = 7;
    const HITS_EACH: usize = 101;
    std::thread::scope(|s| {
        for _ in 0..CLIENTS {
            s.spawn(|| {
                for _ in 0..HITS_EACH {
                    first.hit(URL, 1_700_010_123_456); // a new connection each: spread by the kernel
                }
            });
        }
    });
    let total = (CLIENTS * HITS_EACH) as i64;
    assert_eq!(redis.hget("hits:all", URL), Some(total));
    assert_eq!(redis.hget("hits:minute:1700010120000", URL), Some(total));
    // /metrics goes to whichever instance the kernel picks; ask until both have answered.
    let (mut a, mut b) = (None, None);
    for _ in 0..200 {
        let served = answered_hits(&first);
        if a.is_none() {
            a = Some(served);
        } else if a != Some(served) {
            b = Some(served);
            break;
        }
    }
    let a = a.unwrap();
    let b = b.unwrap_or_else(|| {
        panic!("200 /metrics answers all said {a}: one instance served them all")
    });
    assert_eq!(
        a + b,
        total as f64,
        "the two instances split the {total} hits: {a} + {b}"
    );
    assert!(a > 0.0 && b > 0.0);
    let counts = second.get(&format!("/hit?url={}&timestamp=1700010123456", encode(URL)));
    assert_eq!(counts.json()["all_time"], total);
}

#[test]
fn instances_on_separate_ports_share_one_redis() {
    let redis = Redis::start();
    let a = HitMe::start(&redis.url());
    let b = HitMe::start(&redis.url());
    for i in 0..50 {
        (if i % 2 == 0 { &a } else { &b }).hit(URL, 1_700_010_123_456);
    }
    assert_eq!((answered_hits(&a), answered_hits(&b)), (25.0, 25.0));
    assert_eq!(redis.hget("hits:all", URL), Some(50));
}

#[test]
fn without_reuse_port_a_second_instance_is_refused() {
    let redis = Redis::start();
    let first = HitMe::start(&redis.url());
    let listen = first.addr.to_string();
    let out = common::hitme_command(&redis.url(), &["--listen", &listen])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--reuse-port"));
}
