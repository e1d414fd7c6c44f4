//! HitMe facing the internet: which hosts it counts (`--sites`), how often one client may
//! count (`--rate-limit`) and who that client is (`--trusted-proxies`), bots loading pixels
//! and badges, and who may read the statistics (`--read-token`). `tests/proxy.rs` has the
//! same through the real nginx of `deploy/nginx.conf`.

mod common;

use common::{encode, request, HitMe, Redis};

const T: i64 = 1_700_010_123_456;
const SITE: &str = "http://real.example/";

/// A form POST of a hit for `url`, with `headers`.
fn post(hitme: &HitMe, target: &str, url: &str, headers: &[(&str, &str)]) -> common::Resp {
    let body = format!("url={}&timestamp={T}", encode(url));
    let mut all = vec![("Content-Type", "application/x-www-form-urlencoded")];
    all.extend_from_slice(headers);
    request(hitme.addr, "POST", target, &all, body.as_bytes())
}

fn get(hitme: &HitMe, target: &str, headers: &[(&str, &str)]) -> common::Resp {
    request(hitme.addr, "GET", target, headers, b"")
}

/// Every field of every hash under `hits`: the URLs Redis holds.
fn every_url(redis: &Redis) -> Vec<String> {
    let mut conn = redis.conn();
    let mut urls = Vec::new();
    for key in redis.keys() {
        let fields: Vec<String> = redis::cmd("HKEYS").arg(&key).query(&mut conn).unwrap();
        urls.extend(fields);
    }
    urls
}

/// A junk flood and a greedy client, both from one address (named by the trusted proxy's
/// `X-Forwarded-For`): junk hosts are refused and never reach Redis, the real site is
/// counted up to the rate limit and refused with exact 429 headers beyond it, images
/// included, and another client's hits are all counted.
#[test]
fn a_flood_from_one_client_leaves_no_junk_and_costs_other_clients_nothing() {
    let redis = Redis::start();
    let hitme = HitMe::start_with(
        &redis.url(),
        &[
            "--sites",
            "real.example,*.real.example",
            "--rate-limit",
            "20/5s",
            "--trusted-proxies",
            "127.0.0.1/32",
        ],
    );
    let flooder = [("X-Forwarded-For", "203.0.113.66")];
    let other = [("X-Forwarded-For", "198.51.100.7")];

    let statuses: Vec<u16> = (0..40)
        .map(|_| post(&hitme, "/hit", SITE, &flooder).status)
        .collect();
    assert_eq!(statuses[..20], [200; 20]);
    assert_eq!(statuses[20..], [429; 20]);
    let refused = post(&hitme, "/hit", SITE, &flooder);
    assert_eq!(refused.status, 429);
    assert_eq!(
        refused.json(),
        serde_json::json!({"status": "error", "error": "this client sent more hits than --rate-limit 20/5s allows; nothing was counted, retry in 1 s"})
    );
    for (name, value) in [
        ("Retry-After", "1"),
        ("RateLimit-Limit", "20"),
        ("RateLimit-Remaining", "0"),
        ("RateLimit-Reset", "5"),
    ] {
        assert_eq!(refused.header(name), Some(value), "{name}");
    }
    // The pixel and the counting badge still answer their image.
    let pixel = get(
        &hitme,
        &format!("/pixel.gif?url={}", encode(SITE)),
        &flooder,
    );
    assert_eq!(
        (pixel.status, pixel.header("Content-Type")),
        (429, Some("image/gif"))
    );
    assert_eq!(pixel.header("Retry-After"), Some("1"));
    let badge = get(
        &hitme,
        &format!("/badge.svg?url={}&count=1", encode(SITE)),
        &flooder,
    );
    assert_eq!(badge.status, 429);
    assert!(
        badge.text().contains("<title>hits: too many hits</title>"),
        "{}",
        badge.text()
    );
    // A badge that only shows is no counting request.
    let shown = get(
        &hitme,
        &format!("/badge.svg?url={}", encode(SITE)),
        &flooder,
    );
    assert_eq!(shown.status, 200);

    // Junk hosts: refused before the rate limit is even asked.
    for i in 0..100 {
        let junk = post(
            &hitme,
            "/hit",
            &format!("http://junk{i}.example/x"),
            &flooder,
        );
        assert_eq!(junk.status, 403);
        if i == 0 {
            assert_eq!(
                junk.error(),
                "HitMe counts only the hosts in --sites, and junk0.example is not one of them"
            );
        }
    }
    let junk_pixel = get(
        &hitme,
        "/pixel.gif?url=http%3A%2F%2Fjunk.example%2F",
        &other,
    );
    assert_eq!(
        (junk_pixel.status, junk_pixel.header("Content-Type")),
        (403, Some("image/gif"))
    );
    let junk_badge = get(
        &hitme,
        "/badge.svg?url=http%3A%2F%2Fjunk.example%2F&count=1",
        &other,
    );
    assert_eq!(junk_badge.status, 403);
    assert!(junk_badge.text().contains("not counted here"));
    // The bare name of a wildcard is not its subdomain.
    assert_eq!(post(&hitme, "/hit", "http://example/", &other).status, 403);

    // Another client meanwhile: every hit counted, a subdomain too.
    for _ in 0..10 {
        assert_eq!(post(&hitme, "/hit", SITE, &other).status, 200);
    }
    assert_eq!(
        post(&hitme, "/hit", "https://www.real.example/a", &other).status,
        200
    );

    assert_eq!(redis.hget("hits:all", SITE), Some(30));
    assert_eq!(
        redis.hget("hits:all", "https://www.real.example/a"),
        Some(1)
    );
    let urls = every_url(&redis);
    assert!(urls.iter().all(|u| !u.contains("junk")), "{urls:?}");
    assert!(!urls.is_empty());
}

/// A peer that is not a trusted proxy cannot choose its address with a header.
#[test]
fn forwarding_headers_of_untrusted_peers_are_ignored() {
    let redis = Redis::start();
    let hitme = HitMe::start_with(
        &redis.url(),
        &["--rate-limit", "2/1m", "--trusted-proxies", "10.0.0.0/8"],
    );
    let statuses: Vec<u16> = (0..3)
        .map(|i| {
            let spoofed = format!("192.0.2.{i}");
            post(&hitme, "/hit", SITE, &[("X-Forwarded-For", &spoofed)]).status
        })
        .collect();
    assert_eq!(statuses, [200, 200, 429]);
}

/// Crawlers, link checkers and headless browsers loading the pixel, a counting badge or
/// hitme.js are answered as usual and not counted; clients posting to /hit themselves (curl,
/// ab, the seed's scripts) always count, and so does curl loading the pixel.
#[test]
fn bots_loading_pixels_and_badges_count_nothing_and_api_clients_always_count() {
    const GOOGLEBOT: &str =
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
    let redis = Redis::start();
    let hitme = HitMe::start(&redis.url());
    let bot = [("User-Agent", GOOGLEBOT)];
    let pixel = format!("/pixel.gif?url={}", encode(SITE));
    let badge = format!("/badge.svg?url={}&count=1", encode(SITE));

    let seen = get(&hitme, &pixel, &bot);
    assert_eq!(
        (seen.status, seen.header("Content-Type")),
        (200, Some("image/gif"))
    );
    let shown = get(&hitme, &badge, &bot);
    assert_eq!(shown.status, 200);
    assert!(
        shown.text().contains("<title>hits: 0</title>"),
        "{}",
        shown.text()
    );
    let from_script = post(&hitme, "/hit?src=js", SITE, &bot);
    assert_eq!(
        (from_script.status, from_script.text()),
        (200, r#"{"status":"OK"}"#.into())
    );
    assert_eq!(redis.hget("hits:all", SITE), None);
    assert_eq!(
        hitme.metric(r#"hitme_hits_ignored_total{reason="bot"}"#),
        Some(3.0)
    );

    // An API client posting itself is never filtered, whatever it calls itself.
    assert_eq!(post(&hitme, "/hit", SITE, &bot).status, 200);
    assert_eq!(
        post(&hitme, "/hit", SITE, &[("User-Agent", "curl/8.5.0")]).status,
        200
    );
    assert_eq!(
        get(&hitme, &pixel, &[("User-Agent", "curl/8.5.0")]).status,
        200
    );
    assert_eq!(redis.hget("hits:all", SITE), Some(3));

    // --count-bots counts them.
    let counting = HitMe::start_with(&redis.url(), &["--count-bots"]);
    assert_eq!(get(&counting, &pixel, &bot).status, 200);
    assert_eq!(redis.hget("hits:all", SITE), Some(4));
}

/// With a read token, every read needs it (401 with `WWW-Authenticate: Bearer` otherwise),
/// and nothing else does: counting, `/healthz`, preflights and the dashboard's files.
#[test]
fn a_read_token_guards_every_read_and_nothing_else() {
    const TOKEN: &str = "s3cret-4f9a1c7e2b";
    let redis = Redis::start();
    let hitme = HitMe::start_with(&redis.url(), &["--read-token", TOKEN]);
    assert_eq!(post(&hitme, "/hit", SITE, &[]).status, 200);
    let bearer = format!("Bearer {TOKEN}");
    let with_token = [("Authorization", bearer.as_str())];
    let url = encode(SITE);
    for target in [
        "/hits".to_string(),
        "/top?period=all".to_string(),
        format!("/series?url={url}&period=day"),
        format!("/hit?url={url}&timestamp={T}"),
        "/metrics".to_string(),
    ] {
        let refused = get(&hitme, &target, &[]);
        assert_eq!(refused.status, 401, "{target}");
        assert_eq!(
            refused.header("WWW-Authenticate"),
            Some("Bearer"),
            "{target}"
        );
        assert_eq!(
            refused.json(),
            serde_json::json!({"status": "error", "error": "this HitMe's statistics need its read token: send Authorization: Bearer <token> (the token it was started with, --read-token)", "reason": "token"}),
            "{target}"
        );
        let wrong = get(&hitme, &target, &[("Authorization", "Bearer s3cret")]);
        assert_eq!(
            (wrong.status, wrong.error()),
            (401, "the read token is not this HitMe's".to_string())
        );
        assert_eq!(get(&hitme, &target, &with_token).status, 200, "{target}");
    }
    let counts = get(
        &hitme,
        &format!("/hit?url={url}&timestamp={T}"),
        &with_token,
    );
    assert_eq!(counts.json()["all_time"], 1);
    let badge = get(&hitme, &format!("/badge.svg?url={url}"), &[]);
    assert_eq!(
        (badge.status, badge.header("Content-Type")),
        (401, Some("image/svg+xml"))
    );
    assert!(badge.text().contains("token needed"));
    assert_eq!(
        get(&hitme, &format!("/badge.svg?url={url}"), &with_token).status,
        200
    );
    for open in ["/healthz", "/", "/app.js", "/hitme.js"] {
        assert_eq!(get(&hitme, open, &[]).status, 200, "{open}");
    }
    assert_eq!(
        get(&hitme, &format!("/pixel.gif?url={url}"), &[]).status,
        200
    );
    assert_eq!(request(hitme.addr, "OPTIONS", "/top", &[], b"").status, 204);
    assert_eq!(redis.hget("hits:all", SITE), Some(2));
    assert!(!hitme.log().contains(TOKEN), "the token is never logged");
}

/// `--public-counts` leaves a page's own count open (`GET /hit`, `/badge.svg`) and every
/// other read closed; the token may come from a file.
#[test]
fn public_counts_leave_a_pages_own_count_open() {
    let redis = Redis::start();
    let file = std::env::temp_dir().join(format!("hitme-token-{}", std::process::id()));
    std::fs::write(&file, "from-a-file-7d2e9b1c\n").unwrap();
    let hitme = HitMe::start_with(
        &redis.url(),
        &[
            "--read-token-file",
            file.to_str().unwrap(),
            "--public-counts",
        ],
    );
    std::fs::remove_file(&file).unwrap();
    let url = encode(SITE);
    assert_eq!(get(&hitme, &format!("/hit?url={url}"), &[]).status, 200);
    assert_eq!(
        get(&hitme, &format!("/badge.svg?url={url}"), &[]).status,
        200
    );
    assert_eq!(get(&hitme, "/top", &[]).status, 401);
    let read = get(
        &hitme,
        "/top",
        &[("Authorization", "Bearer from-a-file-7d2e9b1c")],
    );
    assert_eq!(read.status, 200);
}

#[test]
fn public_counts_without_a_token_is_refused_at_startup() {
    let output = common::hitme_command("redis://127.0.0.1:1", &["--public-counts"])
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--public-counts applies only with --read-token or --read-token-file"),
        "{stderr}"
    );
}
