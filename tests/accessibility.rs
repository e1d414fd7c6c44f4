//! The dashboard against WCAG 2.1 A and AA, as axe-core checks it in headless Chromium: the
//! ready page (two sites, the site picker, visits, a site's visitors and the Sources card),
//! the token form and the empty state each have no violation.
//!
//! axe-core is not part of HitMe: its release tarball is fetched once from the npm registry
//! (pinned, its SHA-256 checked) into target/axe-core. The page is loaded through a small
//! proxy on 127.0.0.1 that passes every request to HitMe and adds axe and its runner to
//! index.html, so that they run in the dashboard's own origin; the runner waits for the
//! page to leave its loading state, runs axe, and writes the violations into the DOM that
//! chromium dumps.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;

use common::browser::chromium;
use common::{now_ms, request, HitMe, Redis};

const AXE_VERSION: &str = "4.14.1";
const AXE_SHA256: &str = "e6b0ce02b84d892e2e33e403485e7f3d6c29e2be6df65daf44d89ba564139745";

/// Runs axe once the dashboard has rendered, and writes what it found into `#axe-result`.
const RUNNER: &str = r#"
(async () => {
  const out = document.createElement("pre");
  out.id = "axe-result";
  try {
    const until = Date.now() + 8000;
    while (document.getElementById("dashboard").dataset.state === "loading" && Date.now() < until) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await new Promise((resolve) => setTimeout(resolve, 300));
    const result = await axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] } });
    const state = document.getElementById("dashboard").dataset.state;
    out.textContent = JSON.stringify({ state, violations: result.violations.map((v) => ({ id: v.id, help: v.help, nodes: v.nodes.map((n) => n.target.join(" ")) })) });
  } catch (err) {
    out.textContent = JSON.stringify({ error: String(err) });
  }
  document.body.append(out);
})();
"#;

/// axe.min.js, fetched into target/axe-core the first time.
fn axe_script() -> Vec<u8> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/axe-core");
    let script = dir.join(format!("axe-{AXE_VERSION}.min.js"));
    if let Ok(bytes) = std::fs::read(&script) {
        return bytes;
    }
    std::fs::create_dir_all(&dir).unwrap();
    let tarball = dir.join(format!("axe-core-{AXE_VERSION}.tgz"));
    let url = format!("https://registry.npmjs.org/axe-core/-/axe-core-{AXE_VERSION}.tgz");
    let fetched = Command::new("curl")
        .args(["-sSfL", "--max-time", "60", "-o"])
        .arg(&tarball)
        .arg(&url)
        .status()
        .unwrap_or_else(|e| panic!("cannot run curl ({e}) to fetch axe-core: install curl"));
    assert!(
        fetched.success(),
        "could not fetch {url}: the accessibility test needs axe-core from the npm registry"
    );
    let sum = Command::new("sha256sum").arg(&tarball).output().unwrap();
    let sum = String::from_utf8_lossy(&sum.stdout);
    assert!(
        sum.starts_with(AXE_SHA256),
        "{url} is not the axe-core {AXE_VERSION} this test pins (sha256 {sum}); delete {} and check",
        tarball.display()
    );
    let unpacked = Command::new("tar")
        .arg("-xzf")
        .arg(&tarball)
        .arg("-C")
        .arg(&dir)
        .arg("package/axe.min.js")
        .status()
        .unwrap();
    assert!(unpacked.success(), "could not unpack {}", tarball.display());
    std::fs::rename(dir.join("package/axe.min.js"), &script).unwrap();
    std::fs::read(&script).unwrap()
}

/// A proxy in front of `hitme` that adds axe and its runner to the dashboard's page; its
/// address. It lives as long as the test process.
fn proxy(hitme: SocketAddr) -> SocketAddr {
    let axe = axe_script();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let axe = axe.clone();
            std::thread::spawn(move || pass(stream, hitme, &axe));
        }
    });
    addr
}

/// Answers one request (GETs only, one per connection): axe and its runner from here,
/// anything else from HitMe, index.html with them added.
fn pass(stream: TcpStream, hitme: SocketAddr, axe: &[u8]) {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let target = line.split(' ').nth(1).unwrap_or("/").to_string();
    let mut auth = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("authorization") {
                auth = Some(value.trim().to_string());
            }
        }
    }
    let (status, kind, body) = match target.as_str() {
        "/axe.min.js" => (200, "text/javascript".to_string(), axe.to_vec()),
        "/axe-run.js" => (
            200,
            "text/javascript".to_string(),
            RUNNER.as_bytes().to_vec(),
        ),
        _ => {
            let headers: Vec<(&str, &str)> =
                auth.iter().map(|a| ("Authorization", a.as_str())).collect();
            let resp = request(hitme, "GET", &target, &headers, b"");
            let kind = resp
                .header("Content-Type")
                .unwrap_or("text/plain")
                .to_string();
            let mut body = resp.body.clone();
            if kind.starts_with("text/html") {
                let html = String::from_utf8(body).unwrap().replace(
                    "</body>",
                    r#"<script src="/axe.min.js"></script><script src="/axe-run.js"></script></body>"#,
                );
                body = html.into_bytes();
            }
            (resp.status, kind, body)
        }
    };
    let mut stream = reader.into_inner();
    let head = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&body);
}

/// What axe found on the dashboard at `hash` (through `proxy`): the page's state and its
/// violations, as JSON.
fn audit(proxy: SocketAddr, hash: &str) -> serde_json::Value {
    let url = format!("http://{proxy}/{hash}");
    let html = String::from_utf8(chromium(&["--dump-dom".to_string()], &url)).unwrap();
    let start = html
        .find(r#"<pre id="axe-result">"#)
        .unwrap_or_else(|| panic!("axe did not finish on {url}:\n{html}"));
    let text = &html[start + r#"<pre id="axe-result">"#.len()..];
    let text = &text[..text.find("</pre>").unwrap()];
    let text = text
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn assert_clean(found: &serde_json::Value, state: &str, what: &str) {
    assert_eq!(found["error"], serde_json::Value::Null, "{what}: {found}");
    assert_eq!(found["state"], state, "{what}: {found}");
    assert_eq!(
        found["violations"],
        serde_json::json!([]),
        "{what}: WCAG violations: {found:#}"
    );
}

#[test]
fn the_dashboard_has_no_wcag_aa_violation_in_any_state() {
    let redis = Redis::start();
    let hitme = HitMe::start_with(&redis.url(), &["--visits", "--sources"]);
    let now = now_ms();
    for url in [
        "https://shop.example/",
        "https://shop.example/",
        "https://shop.example/pricing",
        "https://blog.example/post",
    ] {
        hitme.hit(url, now);
    }
    // A hit with a source, for the Sources card.
    let body = format!(
        "url=https%3A%2F%2Fshop.example%2F&timestamp={now}&referrer=https%3A%2F%2Fnews.ycombinator.com%2F"
    );
    assert_eq!(hitme.post_form("/hit", &body).status, 200);
    let through = proxy(hitme.addr);
    assert_clean(&audit(through, ""), "ready", "the ready page");
    assert_clean(
        &audit(through, "#period=last_day&site=shop.example&metric=visits"),
        "ready",
        "one site's visits",
    );

    let private = HitMe::start_with(&redis.url(), &["--read-token", "a11y-token-0123456789"]);
    assert_clean(&audit(proxy(private.addr), ""), "token", "the token form");

    let empty_redis = Redis::start();
    let empty = HitMe::start(&empty_redis.url());
    assert_clean(&audit(proxy(empty.addr), ""), "empty", "the empty state");
}
