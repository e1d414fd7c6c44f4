//! Starting, stopping and surviving Redis outages, with the real binary and a real Redis.

mod common;

use std::time::Duration;

use common::{free_port, hitme_command, wait_until, HitMe, Redis};

const T: i64 = 1_700_010_123_456;
const URL: &str = "http://outage.example/";

fn post(hitme: &HitMe) -> u16 {
    hitme
        .post_form(
            "/hit",
            &format!("url={}&timestamp={T}", common::encode(URL)),
        )
        .status
}

#[test]
fn redis_outage_gives_503_and_recovery_needs_no_restart() {
    let mut redis = Redis::start();
    let hitme = HitMe::start(&redis.url());
    assert_eq!(post(&hitme), 200);

    redis.kill();
    let resp = hitme.post_form(
        "/hit",
        &format!("url={}&timestamp={T}", common::encode(URL)),
    );
    assert_eq!(resp.status, 503, "{}", resp.text());
    assert!(
        resp.error().contains("Redis is unavailable")
            || resp.error().contains("no Redis connection")
    );
    assert_eq!(hitme.get("/healthz").status, 503);
    assert_eq!(hitme.get(&format!("/hits?timestamp={T}")).status, 503);

    redis.restart(); // an empty Redis on the same port
    wait_until(
        Duration::from_secs(10),
        "hitme to reach Redis again",
        || hitme.get("/healthz").status == 200,
    );
    let mut acked = 0;
    for _ in 0..20 {
        if post(&hitme) == 200 {
            acked += 1;
        }
    }
    assert_eq!(acked, 20, "every hit after recovery is acknowledged");
    assert_eq!(redis.hget("hits:all", URL), Some(20));
}

#[test]
fn starts_while_redis_is_down_and_serves_once_it_is_up() {
    let port = free_port();
    let hitme = HitMe::start(&format!("redis://127.0.0.1:{port}"));
    assert_eq!(hitme.get("/healthz").status, 503);
    assert_eq!(post(&hitme), 503);
    let redis = Redis::start_on(port);
    wait_until(Duration::from_secs(10), "hitme to reach Redis", || {
        hitme.get("/healthz").status == 200
    });
    assert_eq!(post(&hitme), 200);
    assert_eq!(redis.hget("hits:all", URL), Some(1));
}

#[test]
fn sigterm_and_sigint_stop_gracefully_with_exit_0() {
    let redis = Redis::start();
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let mut hitme = HitMe::start(&redis.url());
        assert_eq!(post(&hitme), 200);
        let status = hitme.signal_and_wait(signal, Duration::from_secs(10));
        assert!(
            status.success(),
            "exit status {status:?}; log:\n{}",
            hitme.log()
        );
        assert!(hitme.log().contains("stopped"), "{}", hitme.log());
        assert!(
            std::net::TcpStream::connect(hitme.addr).is_err(),
            "still accepting after exit"
        );
    }
    assert_eq!(redis.hget("hits:all", URL), Some(2));
}

#[test]
fn a_port_in_use_or_a_bad_flag_exits_non_zero_with_a_clear_message() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = hitme_command("redis://127.0.0.1:1", &["--listen", &addr])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );

    let out = hitme_command("redis://127.0.0.1:1", &["--threads", "zero"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--threads"));

    // A flag of the cluster backend means nothing with a standalone Redis: refused.
    let out = hitme_command("redis://127.0.0.1:1", &["--wait-replicas", "2"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--wait-replicas") && stderr.contains("--redis-cluster"),
        "{stderr}"
    );

    let out = hitme_command("not-a-url", &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("invalid value 'not-a-url' for '--redis-url <URL>': it is not a URL")
            && stderr.contains("redis://127.0.0.1:6379"),
        "{stderr}"
    );
}

#[test]
fn passwords_in_the_redis_url_work_and_are_never_logged() {
    let redis = Redis::start();
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg("s3cret-pw")
        .query::<()>(&mut redis.conn())
        .unwrap();
    let url = format!("redis://:s3cret-pw@127.0.0.1:{}/3", redis.port);
    let hitme = HitMe::start(&url);
    assert_eq!(post(&hitme), 200);
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_connection().unwrap();
    let count: Option<i64> = redis::cmd("HGET")
        .arg("hits:all")
        .arg(URL)
        .query(&mut conn)
        .unwrap();
    assert_eq!(count, Some(1), "the hit is in db 3");
    assert!(!hitme.log().contains("s3cret-pw"), "{}", hitme.log());

    let wrong = HitMe::start(&format!("redis://:wrong@127.0.0.1:{}", redis.port));
    assert_eq!(post(&wrong), 503);
    assert!(!wrong.log().contains("wrong@"));
}

#[test]
fn a_calendar_other_than_the_recorded_one_is_refused() {
    let redis = Redis::start();
    let ny = ["--time-zone", "America/New_York"];
    let hitme = HitMe::start_with(&redis.url(), &ny);
    assert_eq!(post(&hitme), 200);
    drop(hitme);
    assert_eq!(
        redis.hget_text("hits:config", "time_zone").as_deref(),
        Some("America/New_York")
    );

    // Another zone, or another week start, under the same prefix: refused before counting.
    for (args, named) in [
        (vec![], "--time-zone America/New_York (this HitMe: UTC)"),
        (
            vec!["--time-zone", "America/New_York", "--week-start", "sunday"],
            "--week-start monday (this HitMe: sunday)",
        ),
    ] {
        let out = hitme_command(&redis.url(), &args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(named), "{args:?}: {stderr}");
        assert!(
            stderr.contains("another --key-prefix") && stderr.contains("hits:config"),
            "{stderr}"
        );
    }
    assert_eq!(redis.hget("hits:all", URL), Some(1));

    // The same flags start; so does another prefix, which records its own calendar.
    let same = HitMe::start_with(&redis.url(), &ny);
    assert_eq!(post(&same), 200);
    let other = HitMe::start_with(&redis.url(), &["--key-prefix", "site2"]);
    assert_eq!(post(&other), 200);
    assert_eq!(
        redis.hget_text("site2:config", "time_zone").as_deref(),
        Some("UTC")
    );
    assert_eq!(redis.hget("hits:all", URL), Some(2));
}

#[test]
fn a_mismatch_found_once_redis_answers_stops_hitme() {
    let redis = Redis::start();
    let _: () = redis::cmd("HSET")
        .arg("hits:config")
        .arg("time_zone")
        .arg("Europe/Berlin")
        .query(&mut redis.conn())
        .unwrap();
    // Redis answers no command for 3 s: the check at startup times out, HitMe starts, and
    // checks again until Redis answers.
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(3000)
        .query(&mut redis.conn())
        .unwrap();
    let mut hitme = HitMe::start(&redis.url());
    let status = hitme.wait_exit(Duration::from_secs(15));
    assert_eq!(status.code(), Some(2), "log:\n{}", hitme.log());
    let log = hitme.log();
    assert!(log.contains("cannot check the calendar recorded"), "{log}");
    assert!(
        log.contains("--time-zone Europe/Berlin (this HitMe: UTC)"),
        "{log}"
    );
}

/// The server runs in-process from its built parts, as `main` runs it: the App and the socket
/// from the flags, then `serve::run` until the acceptor is told to stop.
#[test]
fn a_server_built_from_flags_runs_in_process_and_stops_when_told() {
    use hitme::start::{self, RedisDown};
    let redis = Redis::start();
    let config = hitme::Config::try_parse_checked([
        "hitme".to_string(),
        format!("--redis-url={}", redis.url()),
        "--listen=127.0.0.1:0".to_string(),
        "--threads=2".to_string(),
    ])
    .unwrap();
    let app = std::sync::Arc::new(start::app(&config, RedisDown::Fail).unwrap());
    let acceptor = start::acceptor(&config).unwrap();
    let addr = acceptor.local_addr().unwrap();
    let serving = {
        let acceptor = acceptor.clone();
        std::thread::spawn(move || hitme::serve::run(app, acceptor, start::threads(&config)))
    };
    let body = format!("url={}&timestamp={T}", common::encode(URL));
    let ct = [("Content-Type", "application/x-www-form-urlencoded")];
    let resp = common::request(addr, "POST", "/hit", &ct, body.as_bytes());
    assert_eq!(
        (resp.status, resp.text()),
        (200, r#"{"status":"OK"}"#.into())
    );
    assert_eq!(redis.hget("hits:all", URL), Some(1));
    acceptor.stop();
    wait_until(Duration::from_secs(5), "the server to stop", || {
        serving.is_finished()
    });
    serving.join().unwrap().unwrap();
}

/// A tool has nothing to do without Redis: it says so once, naming where it looked.
#[test]
fn a_tool_with_redis_down_fails_with_one_clear_error() {
    let port = free_port();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hitme"))
        .args([
            "--redis-url",
            &format!("redis://127.0.0.1:{port}"),
            "export",
        ])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(said.lines().count(), 1, "{said}");
    assert!(
        said.starts_with(&format!(
            "hitme: cannot reach Redis at redis://127.0.0.1:{port}: no Redis connection"
        )),
        "{said}"
    );
}
