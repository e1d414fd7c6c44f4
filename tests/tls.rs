//! Redis over TLS (rediss://) with a password, against a real TLS redis-server and a
//! certificate authority made for the test with openssl.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{encode, free_port, wait_until, HitMe};

const URL: &str = "http://tls.example/";

/// A CA and a server certificate for 127.0.0.1, made with the openssl command.
fn make_certificates(dir: &Path) {
    let run = |args: &[&str]| {
        let status = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("cannot run openssl ({e}): install it (apt-get install openssl) or run scripts/test, which does"));
        assert!(status.success(), "openssl {args:?} failed");
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=hitme-test-ca",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
}

/// A redis-server that speaks only TLS and wants a password; stopped when dropped.
struct TlsRedis {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl TlsRedis {
    fn start(password: &str) -> TlsRedis {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("hitme-test-tls-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        make_certificates(&dir);
        let child = Command::new("redis-server")
            .current_dir(&dir)
            .args([
                "--port",
                "0",
                "--tls-port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .args([
                "--tls-cert-file",
                "server.crt",
                "--tls-key-file",
                "server.key",
            ])
            .args(["--tls-ca-cert-file", "ca.crt", "--tls-auth-clients", "no"])
            .args([
                "--requirepass",
                password,
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (apt-get install redis-server, or scripts/test)");
        wait_until(
            Duration::from_secs(10),
            "the TLS redis-server to listen",
            || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
        );
        TlsRedis { child, port, dir }
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn rediss_with_a_password_and_a_private_ca_works_and_hides_the_password() {
    let redis = TlsRedis::start("tls-s3cret");
    let url = format!("rediss://:tls-s3cret@127.0.0.1:{}", redis.port);
    let ca = redis.dir.join("ca.crt");
    let hitme = HitMe::start_with(&url, &["--redis-ca-file", ca.to_str().unwrap()]);
    for _ in 0..3 {
        hitme.hit(URL, 1_700_010_123_456);
    }
    let counts = hitme
        .get(&format!("/hit?url={}&timestamp=1700010123456", encode(URL)))
        .json();
    assert_eq!(counts["all_time"], 3);
    assert_eq!(counts["last_minute"], 3);
    assert_eq!(hitme.get("/healthz").status, 200);
    assert!(!hitme.log().contains("tls-s3cret"), "{}", hitme.log());
    assert!(
        hitme.log().contains("rediss://:***@127.0.0.1"),
        "{}",
        hitme.log()
    );

    // Without the private CA the server's certificate is not trusted: 503, not a hang.
    let untrusting = HitMe::start(&url);
    let resp = untrusting.post_form("/hit", "url=http%3A%2F%2Ftls.example%2F");
    assert_eq!(resp.status, 503, "{}", resp.text());
    let again = hitme
        .get(&format!("/hit?url={}&timestamp=0", encode(URL)))
        .json();
    assert_eq!(again["all_time"], 3, "the refused hit was not counted");
}
