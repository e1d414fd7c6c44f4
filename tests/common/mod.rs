//! Test harness: a real `redis-server` on a free loopback port, the `hitme` binary run against
//! it, and a small HTTP/1.1 client that can also send malformed requests.

#![allow(dead_code)]

pub mod browser;
pub mod cluster;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A `redis-server` of the test's own, stopped when dropped.
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    /// Where a persistent Redis keeps its append-only file; `None` keeps nothing on disk.
    dir: Option<std::path::PathBuf>,
}

impl Redis {
    pub fn start() -> Redis {
        Self::start_on(free_port())
    }

    pub fn start_on(port: u16) -> Redis {
        let mut redis = Redis {
            child: None,
            port,
            dir: None,
        };
        redis.spawn();
        redis
    }

    /// A Redis with an append-only file fsynced before every reply (`appendfsync always`):
    /// whatever it acknowledged survives a kill and a restart, so a hit missing afterwards was
    /// lost by HitMe. (`everysec`, which `scripts/run` uses, may postpone the AOF write for up to
    /// 2 s while a background fsync runs, yet still reply: a kill in that window loses
    /// acknowledged writes on Redis's side.)
    pub fn start_persistent() -> Redis {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("hitme-test-redis-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut redis = Redis {
            child: None,
            port,
            dir: Some(dir),
        };
        redis.spawn();
        redis
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new("redis-server");
        cmd.args([
            "--port",
            &self.port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ]);
        match &self.dir {
            Some(dir) => cmd
                .args(["--appendonly", "yes", "--appendfsync", "always"])
                .arg("--dir")
                .arg(dir),
            None => cmd
                .args(["--appendonly", "no"])
                .arg("--dir")
                .arg(std::env::temp_dir()),
        };
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start redis-server ({e}): the tests need a real Redis; install it with `apt-get install redis-server` or run scripts/test, which does")
            });
        self.child = Some(child);
        wait_until(
            Duration::from_secs(10),
            "redis-server to answer PING",
            || self.connection_quiet().is_some(),
        );
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("Redis is running").id() as i32
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn connection_quiet(&self) -> Option<redis::Connection> {
        let client = redis::Client::open(self.url()).ok()?;
        let mut conn = client
            .get_connection_with_timeout(Duration::from_secs(1))
            .ok()?;
        redis::cmd("PING").query::<String>(&mut conn).ok()?;
        Some(conn)
    }

    pub fn conn(&self) -> redis::Connection {
        self.connection_quiet().expect("the test Redis answers")
    }

    /// Kills Redis (SIGKILL): as sudden as a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts Redis again on the same port, with no data.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub fn hget(&self, key: &str, field: &str) -> Option<i64> {
        redis::cmd("HGET")
            .arg(key)
            .arg(field)
            .query(&mut self.conn())
            .unwrap()
    }

    pub fn hget_text(&self, key: &str, field: &str) -> Option<String> {
        redis::cmd("HGET")
            .arg(key)
            .arg(field)
            .query(&mut self.conn())
            .unwrap()
    }

    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut self.conn()).unwrap();
        keys.sort();
        keys
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Milliseconds since the Unix epoch, now.
/// The periods of a counts answer, in its order.
pub const PERIODS: [&str; 6] = [
    "all_time",
    "last_month",
    "last_week",
    "last_day",
    "last_hour",
    "last_minute",
];

pub fn now_ms() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since.unwrap().as_millis() as i64
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `ready` every 20 ms until it holds; panics after `limit`.
pub fn wait_until(limit: Duration, what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ready() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running `hitme` binary, killed when dropped.
pub struct HitMe {
    child: Child,
    pub addr: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl HitMe {
    pub fn start(redis_url: &str) -> HitMe {
        Self::start_with(redis_url, &[])
    }

    pub fn start_with(redis_url: &str, args: &[&str]) -> HitMe {
        Self::start_command(hitme_command(redis_url, args))
    }

    /// Starts `cmd` (made by `hitme_command`) and waits for its startup line.
    pub fn start_command(mut cmd: Command) -> HitMe {
        let mut child = cmd
            .stderr(Stdio::piped())
            .spawn()
            .expect("the hitme binary runs");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (addr_tx, addr_rx) = mpsc::channel();
        let log_writer = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let addr = rest
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_string();
                    let _ = addr_tx.send(addr);
                }
                let mut log = log_writer.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let addr = match addr_rx.recv_timeout(Duration::from_secs(20)) {
            Ok(addr) => addr.parse().expect("the startup line names the address"),
            Err(_) => {
                let _ = child.kill();
                panic!("hitme did not start; its log:\n{}", log.lock().unwrap());
            }
        };
        HitMe { child, addr, log }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends `signal` and waits (at most `limit`) for hitme to exit.
    pub fn signal_and_wait(&mut self, signal: i32, limit: Duration) -> ExitStatus {
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(self.pid(), signal) }, 0);
        self.wait_exit(limit)
    }

    /// Waits (at most `limit`) for hitme to exit by itself.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "hitme did not exit within {limit:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Resident memory now, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// The value of one sample in `/metrics`, e.g. `hitme_http_requests_in_flight` or
    /// `hitme_http_requests_total{route="/hit",status="200"}`.
    pub fn metric(&self, sample: &str) -> Option<f64> {
        let text = self.get("/metrics").text();
        text.lines()
            .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
    }

    pub fn get(&self, target: &str) -> Resp {
        request(self.addr, "GET", target, &[], b"")
    }

    pub fn post_form(&self, target: &str, body: &str) -> Resp {
        let ct = [("Content-Type", "application/x-www-form-urlencoded")];
        request(self.addr, "POST", target, &ct, body.as_bytes())
    }

    pub fn post_json(&self, body: &str) -> Resp {
        let ct = [("Content-Type", "application/json")];
        request(self.addr, "POST", "/hit", &ct, body.as_bytes())
    }

    /// Posts one hit and asserts it was acknowledged.
    pub fn hit(&self, url: &str, timestamp: i64) {
        let body = format!("url={}&timestamp={timestamp}", encode(url));
        let resp = self.post_form("/hit", &body);
        assert_eq!(
            (resp.status, resp.text()),
            (200, r#"{"status":"OK"}"#.to_string())
        );
    }

    /// A hit on each of `urls` at `timestamp`, from `clients` clients at once, so that
    /// workers take several together.
    pub fn hit_from(&self, urls: &[String], clients: usize, timestamp: i64) {
        std::thread::scope(|s| {
            for part in urls.chunks(urls.len().div_ceil(clients).max(1)) {
                s.spawn(move || {
                    for url in part {
                        self.hit(url, timestamp);
                    }
                });
            }
        });
    }
}

impl Drop for HitMe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `hitme` command with the test's Redis (unless `args` name a cluster) and a free port;
/// retention is off unless `args` set some.
pub fn hitme_command(redis_url: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hitme"));
    if !args.contains(&"--listen") {
        cmd.args(["--listen", "127.0.0.1:0"]);
    }
    // Most tests record hits at fixed past timestamps; retention would expire them at once.
    if !args.iter().any(|a| a.starts_with("--retention")) {
        for period in ["minute", "hour", "day"] {
            cmd.args([format!("--retention-{period}").as_str(), "0"]);
        }
    }
    // Cluster mode refuses --redis-url.
    if !args.contains(&"--redis-cluster") {
        cmd.args(["--redis-url", redis_url]);
    }
    cmd.args(["--redis-timeout-ms", "500"])
        .args(args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    for var in [
        "HITME_LISTEN",
        "HITME_REDIS_URL",
        "HITME_REDIS_CLUSTER",
        "HITME_REDIS_CA_FILE",
        "HITME_THREADS",
        "HITME_READ_THREADS",
        "HITME_READ_QUEUE_MS",
        "HITME_POOL_SIZE",
        "HITME_TIME_ZONE",
        "HITME_KEY_PREFIX",
        "HITME_WEEK_START",
        "HITME_GROUP_COMMIT",
        "HITME_REUSE_PORT",
        "HITME_CLIENT_TIMEOUT_MS",
        "HITME_REDIS_TIMEOUT_MS",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// `s` as a form value (`application/x-www-form-urlencoded`), exactly as browsers'
/// `URLSearchParams` write it: the dashboard's own hash is compared with it.
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                (b as char).to_string()
            }
            b' ' => "+".to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An HTTP response as received.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `error` message of a JSON error reply, after checking its shape.
    pub fn error(&self) -> String {
        let json = self.json();
        assert_eq!(json["status"], "error", "{}", self.text());
        assert_eq!(self.header("Content-Type"), Some("application/json"));
        json["error"]
            .as_str()
            .expect("error is a string")
            .to_string()
    }
}

/// Sends one request (with `Connection: close` and a `Content-Length` when there is a body).
pub fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty()
        && !headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-length"))
    {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut raw = head.into_bytes();
    raw.extend_from_slice(body);
    let mut stream = send(addr, &raw);
    read_response_to(&mut stream, method == "HEAD")
}

/// As [`request`], from the loopback address `source` (any of 127.0.0.0/8), so that HitMe and
/// proxies see another client.
pub fn request_from(
    source: std::net::IpAddr,
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> Resp {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&SocketAddr::new(source, 0).into()).unwrap();
    socket
        .connect(&addr.into())
        .expect("the server accepts connections");
    let mut stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    read_response(&mut stream)
}

/// Sends raw bytes and reads one response (its body by `Content-Length`, else to EOF).
pub fn raw_request(addr: SocketAddr, raw: &[u8]) -> Resp {
    read_response(&mut send(addr, raw))
}

/// Connects and sends raw bytes; the stream times out reads after 20 s.
pub fn send(addr: SocketAddr, raw: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(addr).expect("hitme accepts connections");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream.write_all(raw).expect("request sent");
    stream
}

pub fn read_response(stream: &mut TcpStream) -> Resp {
    read_response_to(stream, false)
}

/// Reads one response; the answer to a HEAD request has no body whatever its headers say.
/// Reads a chunked body to its last (empty) chunk; an answer cut short fails the test.
fn read_chunks(reader: &mut impl BufRead, body: &mut Vec<u8>) {
    loop {
        let mut size = String::new();
        reader.read_line(&mut size).expect("a chunk size line");
        let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)
            .unwrap_or_else(|_| panic!("a chunk size, got {size:?}: the answer was cut short"));
        let start = body.len();
        body.resize(start + size, 0);
        reader
            .read_exact(&mut body[start..])
            .expect("a whole chunk");
        let mut end = String::new();
        reader.read_line(&mut end).expect("a chunk's CRLF");
        if size == 0 {
            return;
        }
    }
}

pub fn read_response_to(stream: &mut TcpStream, head: bool) -> Resp {
    read_one_response(&mut BufReader::new(stream), head)
}

/// Reads `n` answers from one connection, to requests sent together (pipelined): one
/// reader for all, as a fresh one per answer would lose what it read ahead.
pub fn read_responses(stream: &mut TcpStream, n: usize) -> Vec<Resp> {
    let mut reader = BufReader::new(stream);
    (0..n)
        .map(|_| read_one_response(&mut reader, false))
        .collect()
}

fn read_one_response(mut reader: &mut impl BufRead, head: bool) -> Resp {
    let mut status_line = String::new();
    reader.read_line(&mut status_line).expect("a status line");
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("a header line");
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').expect("a header has a colon");
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    let length = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.parse::<usize>().unwrap());
    let chunked = headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    let mut body = Vec::new();
    match length {
        _ if head => {}
        _ if chunked => read_chunks(&mut reader, &mut body),
        Some(n) => {
            body.resize(n, 0);
            reader.read_exact(&mut body).expect("the whole body");
        }
        None => {
            reader.read_to_end(&mut body).expect("the body");
        }
    }
    Resp {
        status,
        headers,
        body,
    }
}

/// Posts one hit without panicking: the status, or the I/O error that kept it from an answer.
pub fn try_post_hit(addr: SocketAddr, url: &str, timeout: Duration) -> std::io::Result<u16> {
    let body = format!("url={}", encode(url));
    let raw = format!(
        "POST /hit HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(raw.as_bytes())?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let head = String::from_utf8_lossy(&response[..response.len().min(16)]).into_owned();
    head.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad response {head:?}")))
}
