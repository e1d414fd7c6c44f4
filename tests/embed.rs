//! Counting from web pages, in a real browser: a page served from a second origin embeds
//! `hitme.js` with a count element, a badge with `count=1` and a pixel; one load in headless
//! Chromium, with a person's browser's User-Agent, counts each exactly once and fills the
//! count; with headless Chromium's own User-Agent (a bot), it counts nothing. CORS headers go
//! to the allowed origin only.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::browser::chromium;
use common::{encode, request, HitMe, Redis};

/// A web server of another origin: answers every GET with `html`, until dropped.
struct Site {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Site {
    fn serve(html: impl Fn(SocketAddr) -> String + Send + 'static) -> Site {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            let page = html(addr);
            // Bounded: a test's page is loaded a few times at most.
            for _ in 0..6000 {
                if stopped.load(Ordering::Relaxed) {
                    return;
                }
                let Ok((stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                stream.set_nonblocking(false).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .unwrap();
                let mut reader = BufReader::new(&stream);
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                    page.len()
                );
                let _ = (&stream).write_all(response.as_bytes());
            }
        });
        Site { addr, stop }
    }

    fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

const BADGE_URL: &str = "http://badge.example/readme";
const PIXEL_URL: &str = "http://pixel.example/no-script";

/// What a person's Chromium sends; headless Chromium's own says `HeadlessChrome`.
const PERSONS_BROWSER: &str = "--user-agent=Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";

/// A site whose one page embeds the script, the counting badge and the pixel; HitMe allows
/// its origin.
fn embedding_site(redis: &Redis) -> (Site, HitMe) {
    // The page's origin is known only once its server listens: reserve it first.
    let hitme_addr = std::sync::OnceLock::<SocketAddr>::new();
    let hitme_addr = Arc::new(hitme_addr);
    let for_page = hitme_addr.clone();
    let site = Site::serve(move |_| {
        let hitme = for_page.wait();
        format!(
            r#"<!doctype html><html><head><title>embed</title></head><body>
<p>Seen <span id="count" data-hitme-count="all_time">?</span> times.</p>
<img id="badge" src="http://{hitme}/badge.svg?url={badge}&count=1&label=views">
<img id="pixel" src="http://{hitme}/pixel.gif?url={pixel}" width="1" height="1">
<script async src="http://{hitme}/hitme.js"></script>
</body></html>"#,
            badge = encode(BADGE_URL),
            pixel = encode(PIXEL_URL),
        )
    });
    let hitme = HitMe::start_with(&redis.url(), &["--cors-origins", &site.origin()]);
    hitme_addr.set(hitme.addr).unwrap();
    (site, hitme)
}

#[test]
fn one_page_load_counts_the_page_the_badge_and_the_pixel_once_each() {
    let redis = Redis::start();
    let (site, hitme) = embedding_site(&redis);
    let page_url = format!("{}/article?id=7&utm_source=news", site.origin());

    let args = ["--dump-dom".to_string(), PERSONS_BROWSER.to_string()];
    let dom = String::from_utf8(chromium(&args, &page_url)).unwrap();

    // The page counted itself without its tracking tag, and showed its own count.
    let page = format!("{}/article?id=7", site.origin());
    assert_eq!(redis.hget("hits:all", &page), Some(1), "the page, once");
    assert_eq!(
        redis.hget("hits:all", BADGE_URL),
        Some(1),
        "the badge, once"
    );
    assert_eq!(
        redis.hget("hits:all", PIXEL_URL),
        Some(1),
        "the pixel, once"
    );
    assert_eq!(redis.hget("hits:all", &page_url), None, "no utm_source");
    assert!(
        dom.contains(r#"<span id="count" data-hitme-count="all_time">1</span>"#),
        "the count element is filled: {dom}"
    );

    // The reads the page made are CORS reads; another origin gets no CORS headers.
    let target = format!("/hit?url={}", encode(&page));
    let allowed = request(
        hitme.addr,
        "GET",
        &target,
        &[("Origin", &site.origin())],
        b"",
    );
    assert_eq!(
        allowed.header("Access-Control-Allow-Origin"),
        Some(site.origin().as_str())
    );
    assert_eq!(allowed.header("Vary"), Some("Origin"));
    assert_eq!(allowed.json()["all_time"], 1);
    let preflight = request(
        hitme.addr,
        "OPTIONS",
        "/hit",
        &[
            ("Origin", &site.origin()),
            ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Headers", "content-type"),
        ],
        b"",
    );
    assert_eq!(preflight.status, 204);
    assert_eq!(
        preflight.header("Access-Control-Allow-Methods"),
        Some("GET, POST, OPTIONS")
    );
    assert_eq!(
        preflight.header("Access-Control-Allow-Headers"),
        Some("Content-Type")
    );
    assert_eq!(preflight.header("Access-Control-Max-Age"), Some("86400"));
    for (method, target) in [("GET", target.as_str()), ("OPTIONS", "/hit")] {
        let other = request(
            hitme.addr,
            method,
            target,
            &[("Origin", "http://other.example")],
            b"",
        );
        assert!(other.status == 200 || other.status == 204, "{method}");
        for name in [
            "Access-Control-Allow-Origin",
            "Vary",
            "Access-Control-Allow-Methods",
        ] {
            assert_eq!(other.header(name), None, "{method}: {name}");
        }
    }
    // Nothing about the visitor is kept: the only keys are the counts.
    let keys = redis.keys();
    assert!(
        keys.iter()
            .all(|k| k == "hits:all" || k.starts_with("hits:")),
        "{keys:?}"
    );
}

#[test]
fn images_answer_what_they_count_and_bad_ones_still_answer_an_image() {
    let redis = Redis::start();
    let hitme = HitMe::start(&redis.url());
    let url = "http://user:secret@host.example/pic?fbclid=x";
    let resp = hitme.get(&format!("/pixel.gif?url={}", encode(url)));
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("Content-Type"), Some("image/gif"));
    assert_eq!(resp.header("Cache-Control"), Some("no-store"));
    assert!(resp.body.starts_with(b"GIF89a"));
    assert_eq!(redis.hget("hits:all", "http://host.example/pic"), Some(1));
    assert!(
        redis.keys().iter().all(|k| !k.contains("secret")),
        "no credentials stored"
    );
    assert!(!hitme.log().contains("secret"), "{}", hitme.log());
    // No url: the Referer is counted.
    let resp = request(
        hitme.addr,
        "GET",
        "/pixel.gif",
        &[("Referer", "http://blog.example/post")],
        b"",
    );
    assert_eq!(resp.status, 200);
    assert_eq!(redis.hget("hits:all", "http://blog.example/post"), Some(1));
    // Nothing usable: still a GIF, with a 400, and nothing counted.
    let resp = hitme.get("/pixel.gif");
    assert_eq!(
        (resp.status, resp.header("Content-Type")),
        (400, Some("image/gif"))
    );

    let badge = |query: &str| hitme.get(&format!("/badge.svg?{query}"));
    let read = badge(&format!("url={}", encode("http://host.example/pic")));
    assert_eq!(read.status, 200);
    assert_eq!(read.header("Content-Type"), Some("image/svg+xml"));
    assert_eq!(read.header("Cache-Control"), Some("no-cache"));
    assert!(
        read.text().contains("<title>hits: 1</title>"),
        "{}",
        read.text()
    );
    let counted = badge(&format!(
        "url={}&count=1&period=day&label={}",
        encode("http://host.example/pic"),
        encode("<views>")
    ));
    assert!(
        counted.text().contains("<title>&lt;views&gt;: 2</title>"),
        "{}",
        counted.text()
    );
    assert_eq!(redis.hget("hits:all", "http://host.example/pic"), Some(2));
    let bad = badge("url=nope");
    assert_eq!(bad.status, 400);
    assert!(bad.text().contains("bad request"));
}

/// The same page loaded by headless Chromium as it is (a bot, by its User-Agent): the page,
/// the badge and the pixel are answered as usual, and nothing is counted.
#[test]
fn a_headless_browser_loading_the_page_counts_nothing() {
    let redis = Redis::start();
    let (site, hitme) = embedding_site(&redis);
    let page_url = format!("{}/article?id=7", site.origin());
    let dom = String::from_utf8(chromium(&["--dump-dom".to_string()], &page_url)).unwrap();
    for url in [page_url.as_str(), BADGE_URL, PIXEL_URL] {
        assert_eq!(redis.hget("hits:all", url), None, "{url}");
    }
    // The page still shows its (uncounted) count, and the badge and pixel loaded.
    assert!(
        dom.contains(r#"<span id="count" data-hitme-count="all_time">0</span>"#),
        "{dom}"
    );
    assert_eq!(
        hitme.metric(r#"hitme_hits_ignored_total{reason="bot"}"#),
        Some(3.0)
    );
    let badges = hitme.metric(r#"hitme_http_requests_total{route="/badge.svg",status="200"}"#);
    assert_eq!(badges, Some(1.0), "the badge was answered as usual");
}

/// Chromium resolves every `.example` host to this machine, so that pages can live on hosts
/// of their own (a referrer on this machine's address is no source).
const EXAMPLE_HOSTS: &str = "--host-resolver-rules=MAP *.example 127.0.0.1";

/// `--sources` in a real browser: a visit through a link on another site counts that site,
/// a direct load counts direct, a reload counts no new source, a tagged link counts its tag
/// (and the URL without it), and a link from a spam host counts nothing.
#[test]
fn a_browser_tells_where_a_visit_came_from() {
    let redis = Redis::start();
    let hitme_addr = Arc::new(std::sync::OnceLock::<SocketAddr>::new());
    let for_page = hitme_addr.clone();
    // The article reloads itself once on /reloaded, after its hit is in (its count shown).
    let blog = Site::serve(move |_| {
        let hitme = for_page.wait();
        format!(
            r#"<!doctype html><html><head><title>article</title></head><body>
<p>Seen <span id="count" data-hitme-count="all_time">?</span> times.</p>
<script>
if (location.pathname === "/reloaded" && !sessionStorage.getItem("reloaded")) {{
  var wait = setInterval(function () {{
    if (document.getElementById("count").textContent !== "?") {{
      clearInterval(wait);
      sessionStorage.setItem("reloaded", "1");
      location.reload();
    }}
  }}, 20);
}}
</script>
<script async src="http://{hitme}/hitme.js"></script>
</body></html>"#
        )
    });
    let blog_port = blog.addr.port();
    let origin = format!("http://blog.example:{blog_port}");
    // A page elsewhere whose script follows a link to the article's path (the query's `to`).
    let news = Site::serve(move |_| {
        format!(
            r#"<!doctype html><html><head><title>news</title></head><body>
<script>location.href = "http://blog.example:{blog_port}" + new URLSearchParams(location.search).get("to");</script>
</body></html>"#
        )
    });
    let spam_file = std::env::temp_dir().join(format!("hitme-embed-spam-{}", std::process::id()));
    std::fs::write(&spam_file, "spam.example\n").unwrap();
    let hitme = HitMe::start_with(
        &redis.url(),
        &[
            "--sources",
            "--cors-origins",
            &origin,
            "--referrer-spam-file",
            spam_file.to_str().unwrap(),
        ],
    );
    hitme_addr.set(hitme.addr).unwrap();
    let browse = |url: &str| {
        let args = [
            "--dump-dom".to_string(),
            PERSONS_BROWSER.to_string(),
            EXAMPLE_HOSTS.to_string(),
        ];
        String::from_utf8(chromium(&args, url)).unwrap()
    };
    let news_port = news.addr.port();
    browse(&format!("http://news.example:{news_port}/?to=/article"));
    browse(&format!("{origin}/article"));
    browse(&format!("{origin}/article?utm_source=newsletter"));
    browse(&format!("http://spam.example:{news_port}/?to=/article"));
    browse(&format!("http://news.example:{news_port}/?to=/reloaded"));
    std::fs::remove_file(&spam_file).unwrap();

    let article = format!("{origin}/article");
    let reloaded = format!("{origin}/reloaded");
    assert_eq!(
        redis.hget("hits:all", &article),
        Some(3),
        "the spam link is not counted"
    );
    assert_eq!(
        redis.hget("hits:all", &reloaded),
        Some(2),
        "the load and its reload"
    );
    let sources = |url: &str| {
        let resp = hitme.get(&format!("/sources?url={}", encode(url)));
        assert_eq!(resp.status, 200, "{}", resp.text());
        let answer = resp.json();
        (answer["direct"].clone(), answer["sources"].clone())
    };
    assert_eq!(
        sources(&article),
        (
            serde_json::json!(1),
            serde_json::json!([
                {"source": "news.example", "count": 1},
                {"source": "newsletter", "count": 1},
            ])
        )
    );
    assert_eq!(
        sources(&reloaded),
        (
            serde_json::json!(1),
            serde_json::json!([{"source": "news.example", "count": 1}])
        )
    );
    assert_eq!(
        hitme.metric("hitme_hits_ignored_total{reason=\"referrer_spam\"}"),
        Some(1.0)
    );
}
