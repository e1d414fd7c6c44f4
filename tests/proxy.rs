//! `deploy/nginx.conf` in front of HitMe enforces the limits tiny_http cannot: header size
//! (431) and body size (413, before HitMe sees it), in HitMe's JSON error shape; and names
//! the client in `X-Forwarded-For`, which HitMe believes from it (`--trusted-proxies`) and
//! from nobody else.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{free_port, request, request_from, wait_until, HitMe, Redis};

/// A private nginx serving `deploy/nginx.conf`, pointed at `upstream`; stopped when dropped.
struct Nginx {
    child: Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl Nginx {
    fn start(upstream: std::net::SocketAddr) -> Nginx {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("hitme-test-nginx-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let site =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/nginx.conf"))
                .unwrap();
        assert!(site.contains("listen 80;") && site.contains("server 127.0.0.1:8080;"));
        let site = site
            .replace("listen 80;", &format!("listen 127.0.0.1:{port};"))
            .replace("server 127.0.0.1:8080;", &format!("server {upstream};"));
        std::fs::write(dir.join("hitme.conf"), site).unwrap();
        let d = dir.display();
        let main = format!(
            "worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{ worker_connections 256; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  \
             fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  include {d}/hitme.conf;\n}}\n"
        );
        std::fs::write(dir.join("nginx.conf"), main).unwrap();
        let child = Command::new("nginx")
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start nginx ({e}): install it with `apt-get install nginx-light` or run scripts/test, which does")
            });
        wait_until(Duration::from_secs(10), "nginx to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Nginx { child, port, dir }
    }

    fn addr(&self) -> std::net::SocketAddr {
        ([127, 0, 0, 1], self.port).into()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SAFETY: a signal to our own child; SIGTERM makes the master stop its workers too.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn nginx_in_front_enforces_header_and_body_limits_with_json_errors() {
    let redis = Redis::start();
    let hitme = HitMe::start(&redis.url());
    let nginx = Nginx::start(hitme.addr);
    let form = [("Content-Type", "application/x-www-form-urlencoded")];

    let resp = request(
        nginx.addr(),
        "POST",
        "/hit",
        &form,
        b"url=http%3A%2F%2Fproxied.example%2F",
    );
    assert_eq!(
        (resp.status, resp.text()),
        (200, r#"{"status":"OK"}"#.to_string())
    );
    let resp = request(
        nginx.addr(),
        "GET",
        "/hit?url=http%3A%2F%2Fproxied.example%2F",
        &[],
        b"",
    );
    assert_eq!(resp.json()["all_time"], 1);

    let big = "a".repeat(20_000);
    let resp = request(nginx.addr(), "GET", "/hits", &[("X-Big", &big)], b"");
    assert_eq!(resp.status, 431);
    assert!(resp.error().contains("request headers are too large"));

    let many: Vec<(String, String)> = (0..40)
        .map(|i| (format!("X-H{i}"), "b".repeat(1000)))
        .collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    assert_eq!(
        request(nginx.addr(), "GET", "/hits", &many, b"").status,
        431
    );

    let huge = [
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("Content-Length", "1000000000"),
    ];
    let resp = request(nginx.addr(), "POST", "/hit", &huge, b"");
    assert_eq!(resp.status, 413);
    assert!(resp.error().contains("over the 65536-byte limit"));
    let resp = request(nginx.addr(), "POST", "/hit", &form, &vec![b'a'; 70_000]);
    assert_eq!(resp.status, 413);

    // Nothing over the limits reached HitMe.
    let total = hitme.metric(r#"hitme_http_requests_total{route="/hit",status="200"}"#);
    assert_eq!(total, Some(2.0));
    assert_eq!(redis.hget("hits:all", "http://proxied.example/"), Some(1));
}

/// Behind nginx, each client is limited by its own address, whatever `X-Forwarded-For` it
/// sends itself (nginx appends the address it saw, the right-most untrusted one); sent to
/// HitMe directly, the header is ignored and the peer counts.
#[test]
fn behind_nginx_the_client_is_the_address_nginx_saw() {
    let redis = Redis::start();
    let hitme = HitMe::start_with(
        &redis.url(),
        &["--rate-limit", "2/1m", "--trusted-proxies", "127.0.0.1/32"],
    );
    let nginx = Nginx::start(hitme.addr);
    let hit = "/pixel.gif?url=http%3A%2F%2Fa.example%2F";
    let from = |source: [u8; 4], addr, spoof: &str| {
        request_from(
            source.into(),
            addr,
            "GET",
            hit,
            &[("X-Forwarded-For", spoof)],
        )
        .status
    };
    // One client at 127.0.0.5, changing the address it claims each time.
    let statuses: Vec<u16> = (0..3)
        .map(|i| from([127, 0, 0, 5], nginx.addr(), &format!("192.0.2.{i}")))
        .collect();
    assert_eq!(statuses, [200, 200, 429]);
    // Another client through nginx has its own quota.
    assert_eq!(from([127, 0, 0, 6], nginx.addr(), "127.0.0.5"), 200);
    // Straight to HitMe from an untrusted peer, claiming to be the fresh client: the peer
    // counts, and it has a quota of its own.
    let direct: Vec<u16> = (0..3)
        .map(|_| from([127, 0, 0, 7], hitme.addr, "127.0.0.6"))
        .collect();
    assert_eq!(direct, [200, 200, 429]);
    assert_eq!(redis.hget("hits:all", "http://a.example/"), Some(5));
}
