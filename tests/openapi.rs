//! HitMe's API description: `GET /openapi.json` serves docs/openapi.json byte for byte and
//! needs no token (scripts/test-openapi checks the server against it with schemathesis);
//! and the small promises the description makes of headers: `Allow` names every method a
//! path takes, and every 401, the badge's too, names its scheme.

mod common;

use common::{request, HitMe, Redis};

const READ: &str = "read-token-openapi-0123";
const ADMIN: &str = "admin-token-openapi-0123";

#[test]
fn the_description_is_served_open_and_its_headers_hold() {
    let redis = Redis::start();
    let hitme = HitMe::start_with(
        &redis.url(),
        &["--read-token", READ, "--admin-token", ADMIN],
    );
    let served = hitme.get("/openapi.json");
    assert_eq!(served.status, 200);
    assert_eq!(served.header("Content-Type"), Some("application/json"));
    let file = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json")).unwrap();
    assert_eq!(served.body, file, "served as docs/openapi.json is");
    assert_eq!(
        served.json()["openapi"].as_str().map(|v| &v[..4]),
        Some("3.1.")
    );

    // With --admin-token, /hit takes DELETE and says so; /export takes its preflight.
    let resp = request(hitme.addr, "PUT", "/hit", &[], b"");
    assert_eq!(resp.status, 405);
    assert_eq!(
        resp.header("Allow"),
        Some("DELETE, GET, HEAD, POST, OPTIONS")
    );
    let resp = request(hitme.addr, "OPTIONS", "/export", &[], b"");
    assert_eq!(
        (resp.status, resp.header("Allow")),
        (204, Some("GET, HEAD, OPTIONS"))
    );

    // The badge's 401 is an image, and names the scheme as the JSON ones do.
    let resp = hitme.get("/badge.svg?url=http%3A%2F%2Fwww.example.com%2F");
    assert_eq!(resp.status, 401);
    assert_eq!(resp.header("Content-Type"), Some("image/svg+xml"));
    assert_eq!(resp.header("WWW-Authenticate"), Some("Bearer"));

    // An empty since says what since is.
    let auth = format!("Bearer {ADMIN}");
    let resp = request(
        hitme.addr,
        "GET",
        "/export?since=x",
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(
        (resp.status, resp.error()),
        (
            400,
            "since must be whole milliseconds since the Unix epoch (0: every bucket)".to_string()
        )
    );
}
