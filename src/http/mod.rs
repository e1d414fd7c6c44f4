//! The HTTP edge. A request is parsed once into a [`Command`] ([`parse`]): its path and
//! method pick the endpoint ([`route`]), whose module under [`cmd`] checks its parameters;
//! the command is then applied and its [`Response`] sent with the headers of the connection
//! and of CORS ([`edge_headers`]). Statuses and error bodies are made here, and nowhere else.

pub(crate) mod access;
pub(crate) mod bots;
pub mod canonical;
pub(crate) mod client;
pub(crate) mod cmd;
pub(crate) mod cors;
pub(crate) mod error;
pub(crate) mod images;
pub mod params;
pub(crate) mod rate_limit;
mod response;
mod route;
pub(crate) mod sites;

use std::io::Read;
use std::sync::Arc;

use tiny_http::{Header, Method, Request};

use self::access::{AdminAccess, ReadAccess};
use self::bots::Bots;
use self::canonical::UrlRules;
use self::client::TrustedProxies;
use self::cmd::{
    AllUrlCounts, Badge, DeleteUrl, Export, Pixel, Posted, Series, SiteList, SourceList, Top,
    UrlCounts, Visitors,
};
pub(crate) use self::cmd::{Command, Placed, RecordHit};
use self::cors::Cors;
use self::error::ApiError;
use self::params::Fields;
use self::rate_limit::RateLimiter;
pub(crate) use self::response::keep_alive_header;
pub use self::response::{Body, Response};
use self::route::{Endpoint, Route};
use self::sites::Sites;
use crate::metrics::Metrics;
use crate::sources::Origin;
use crate::store::pool::PoolProbe;
use crate::store::HitStore;
use crate::store::Visitor;
use crate::time::Calendar;
use crate::top::Rankings;
use crate::visits::{Sighting, Visits};

/// The largest request body accepted; a hit needs only a URL and a timestamp.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// What every worker shares, built once from the flags at start-up (`start::app`).
pub struct App {
    pub(crate) store: Arc<dyn HitStore>,
    /// `/top`'s rankings, shared between requests.
    pub(crate) rankings: Rankings,
    /// The store's connection pool, for `/metrics`.
    pub(crate) pool: PoolProbe,
    /// How timestamps fall into buckets, for `/series`.
    pub(crate) calendar: Calendar,
    /// What canonicalisation drops from URLs.
    pub(crate) url_rules: UrlRules,
    /// Origins whose pages may read the API (`--cors-origins`).
    pub(crate) cors: Cors,
    pub(crate) metrics: Metrics,
    /// `Keep-Alive` for HTTP/1.0 keep-alive clients, naming how long an idle connection is
    /// kept (`--client-timeout-ms`).
    pub(crate) keep_alive: Header,
    /// The hosts counted (`--sites`).
    pub(crate) sites: Sites,
    /// Whose forwarding headers name the client (`--trusted-proxies`).
    pub(crate) proxies: TrustedProxies,
    /// Per-client quotas of counting requests (`--rate-limit`).
    pub(crate) limiter: Option<RateLimiter>,
    /// Bots whose pixel, badge and script loads are not counted (unless `--count-bots`).
    pub(crate) bots: Bots,
    /// Who may read the statistics (`--read-token`, `--public-counts`).
    pub(crate) access: ReadAccess,
    /// With `--visits`: visits are counted beside hits.
    pub(crate) visits: Option<Visits>,
    /// Who may delete and export (`--admin-token`).
    pub(crate) admin: AdminAccess,
    /// With `--rankings`: what each bucket's kept ranking holds, and for how long.
    pub(crate) kept_rankings: Option<crate::store::KeptConfig>,
    /// With `--sources`: how a hit's source is named, and which referrers are spam.
    pub(crate) sources: Option<crate::sources::Sources>,
}

impl App {
    /// With `--visits`, what names the visitor of a hit from `request`: read from the request
    /// alone, so that parsing never waits on Redis.
    pub(crate) fn sighting(&self, request: &Request) -> Option<Sighting> {
        self.visits.as_ref()?;
        Some(Sighting {
            client: self.proxies.client_of(request),
            user_agent: header(request, "User-Agent").map(str::to_string),
        })
    }

    /// With `--sources`, where a hit on the canonical `url` came from: the tag of the URL as
    /// sent (`raw_url`), else `referrer` ([`crate::sources`]).
    pub(crate) fn origin(
        &self,
        raw_url: &str,
        referrer: Option<&str>,
        url: &str,
    ) -> Option<Origin> {
        let sources = self.sources.as_ref()?;
        let is_site = |host: &str| !self.sites.all() && self.sites.allows(host);
        Some(sources.origin(raw_url, referrer, crate::host::host_of(url), is_site))
    }

    /// The source of a hit that names none (a badge's): direct, with `--sources`.
    pub(crate) fn no_source(&self) -> Option<crate::store::Source> {
        self.sources.as_ref().map(|_| crate::store::Source::Direct)
    }

    /// The visitor of a hit on `url` by `sighting` (none without `--visits`): a keyed hash,
    /// see [`crate::visits`]. It may read the day's salt from Redis, so it is asked when the
    /// hit is applied.
    pub(crate) fn visitor(
        &self,
        sighting: Option<&Sighting>,
        url: &str,
    ) -> Result<Option<Visitor>, ApiError> {
        let (Some(visits), Some(sighting)) = (&self.visits, sighting) else {
            return Ok(None);
        };
        let visitor = visits.visitor(
            self.store.as_ref(),
            crate::host::host_of(url),
            sighting,
            url,
        )?;
        Ok(Some(visitor))
    }
}

/// Parses `request` into the command it asks for: its route, its method and its parameters,
/// checked. A `POST /hit`'s body is read here (after its query is checked, so a bad one is
/// refused unread).
pub(crate) fn parse(request: &mut Request, app: &App) -> Result<Command, ApiError> {
    let (path, query) = match request.url().split_once('?') {
        Some((path, query)) => (path, query),
        None => (request.url(), ""),
    };
    let mut route = Route::of(path);
    if route.endpoint == Endpoint::Hit && app.admin.enabled() {
        route.allow = route::HIT_WITH_ADMIN;
    }
    let method = request.method();
    let is_get = matches!(method, Method::Get | Method::Head);
    let not_allowed = || ApiError::method_not_allowed(method.as_str(), route.allow);
    let fields = || Fields::from_form(query.as_bytes());
    // Whether a read may go on (`--read-token`): used by the read arms below.
    let access = match is_get {
        true => app.access.check(request, route.endpoint),
        false => Ok(()),
    };
    match route.endpoint {
        Endpoint::NotFound => Err(ApiError::not_found(path)),
        // The admin routes exist only with an admin token.
        Endpoint::Export if !app.admin.enabled() => Err(ApiError::not_found(path)),
        Endpoint::Hit if *method == Method::Delete && app.admin.enabled() => {
            app.admin.check(request)?;
            DeleteUrl::parse(fields()?, app).map(Command::DeleteUrl)
        }
        Endpoint::Hit if *method == Method::Post => {
            let query = fields()?;
            let body_is_json = is_json(request);
            let body = read_body(request).map_err(ApiError::with_body_unread)?;
            match RecordHit::parse(query, &body, body_is_json, request, app)? {
                Posted::Hit(hit) => Ok(Command::RecordHit(hit)),
                Posted::Ignored(reason) => Ok(Command::Ignored(reason)),
            }
        }
        Endpoint::Asset(asset) if is_get => Ok(Command::Asset(asset)),
        Endpoint::Asset(_) => Err(not_allowed()),
        _ if *method == Method::Options => Ok(Command::Preflight(route.allow)),
        _ if !is_get => Err(not_allowed()),
        Endpoint::Hit => {
            access?;
            UrlCounts::parse(fields()?, app).map(Command::UrlCounts)
        }
        Endpoint::Hits => {
            access?;
            AllUrlCounts::parse(fields()?, app).map(Command::AllUrlCounts)
        }
        Endpoint::Top => {
            access?;
            Top::parse(fields()?, app).map(Command::Top)
        }
        Endpoint::Series => {
            access?;
            Series::parse(fields()?, app).map(Command::Series)
        }
        Endpoint::Sites => {
            access?;
            SiteList::parse(fields()?, app).map(Command::SiteList)
        }
        Endpoint::Visitors => {
            access?;
            Visitors::parse(fields()?, app).map(Command::Visitors)
        }
        Endpoint::Sources => {
            access?;
            SourceList::parse(fields()?, app).map(Command::SourceList)
        }
        Endpoint::Metrics => access.map(|()| Command::Metrics),
        Endpoint::Export => {
            app.admin.check(request)?;
            Export::parse(fields()?).map(Command::Export)
        }
        Endpoint::Badge => Ok(Command::Badge(match access {
            Ok(()) => Badge::parse(query, request, app),
            Err(refused) => Badge::refusing(refused),
        })),
        Endpoint::Pixel => Ok(Command::Pixel(Pixel::parse(query, request, app))),
        Endpoint::Healthz => Ok(Command::Health),
    }
}

/// The route of `request` as a metrics label.
pub(crate) fn route_label(request: &Request) -> &'static str {
    let path = request.url().split('?').next().unwrap_or("");
    Route::of(path).label
}

/// The headers of the connection and of CORS that go with `response` to `request`.
pub(crate) fn edge_headers(request: &Request, response: &Response, app: &App) -> Vec<Header> {
    let mut headers = Vec::new();
    // tiny_http refuses to let a response set `Connection`; HTTP/1.0 clients such as ab
    // look for a `Keep-Alive` header instead, or wait for a close that never comes.
    if wants_http10_keep_alive(request) {
        headers.push(app.keep_alive.clone());
    }
    if let Some(allow_origin) = app.cors.allow(header(request, "Origin")) {
        headers.push(allow_origin);
        headers.push(cors::vary());
        // A preflight from an allowed origin is told what a page may send.
        if *request.method() == Method::Options && response.status == 204 {
            headers.extend(cors::preflight());
        }
    }
    headers
}

/// The largest body tiny_http reads in full before it queues a request (without
/// `Expect: 100-continue`); a larger one is read by the worker, as the client sends it.
const BODY_READ_AHEAD: usize = 1024;

/// Whether `request`'s body (if any) is already in memory, so that parsing it never waits on
/// its client and a worker may take it together with others.
pub(crate) fn body_in_memory(request: &Request) -> bool {
    let upgrade = header(request, "Connection").is_some_and(|c| {
        c.as_bytes()
            .windows(7)
            .any(|w| w.eq_ignore_ascii_case(b"upgrade"))
    });
    !upgrade
        && match request.body_length() {
            Some(0) => true,
            Some(n) => n <= BODY_READ_AHEAD && header(request, "Expect").is_none(),
            // No length: no body, unless it is chunked.
            None => header(request, "Transfer-Encoding").is_none(),
        }
}

/// The value of the request's `name` header, if it has one.
fn header<'r>(request: &'r Request, name: &'static str) -> Option<&'r str> {
    request
        .headers()
        .iter()
        .find(|h| h.field.equiv(name))
        .map(|h| h.value.as_str())
}

fn wants_http10_keep_alive(request: &Request) -> bool {
    request.http_version() == &tiny_http::HTTPVersion(1, 0)
        && request.headers().iter().any(|h| {
            h.field.equiv("Connection") && h.value.as_str().eq_ignore_ascii_case("keep-alive")
        })
}

fn is_json(request: &Request) -> bool {
    header(request, "Content-Type").is_some_and(|value| {
        let mime = value.split(';').next().unwrap_or("").trim();
        mime.eq_ignore_ascii_case(response::JSON)
    })
}

/// Reads the body up to `MAX_BODY_BYTES`. A declared length over the limit is refused unread;
/// on any error the rest of the body is left unread.
fn read_body(request: &mut Request) -> Result<Vec<u8>, ApiError> {
    let declared = request.body_length().unwrap_or(0);
    if declared > MAX_BODY_BYTES {
        return Err(ApiError::payload_too_large(MAX_BODY_BYTES));
    }
    let mut body = Vec::with_capacity(declared);
    request
        .as_reader()
        .take(MAX_BODY_BYTES as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| {
            // The rest of the body may still come, slowly: answer without waiting for it.
            ApiError::bad_request(format!("the request body could not be read ({e})"))
        })?;
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::payload_too_large(MAX_BODY_BYTES));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use tiny_http::{HTTPVersion, Method, TestRequest};

    use super::*;

    /// An app whose Redis is not there (nothing listens on port 1): whatever reaches the store
    /// fails fast with a 503, and everything else is answered without it.
    fn app() -> App {
        let config = crate::Config::try_parse_checked([
            "hitme",
            "--redis-url=redis://127.0.0.1:1",
            "--pool-size=1",
            "--redis-timeout-ms=50",
            "--cors-origins=http://allowed.example",
        ])
        .unwrap();
        crate::start::app(&config, crate::start::RedisDown::CheckLater).unwrap()
    }

    fn header(name: &str, value: &str) -> Header {
        Header::from_bytes(name.as_bytes(), value.as_bytes()).unwrap()
    }

    /// A request answered as a worker would, without the read pool.
    #[derive(Debug)]
    struct Answer {
        response: Response,
        route: &'static str,
        headers: Vec<Header>,
    }

    fn answer(request: TestRequest) -> Answer {
        let app = app();
        let mut request: Request = request.into();
        let response = parse(&mut request, &app)
            .map(|command| command.apply(&app))
            .unwrap_or_else(|err| Response::error(&err));
        Answer {
            route: route_label(&request),
            headers: edge_headers(&request, &response, &app),
            response,
        }
    }

    fn get(path: &str) -> Answer {
        answer(TestRequest::new().with_path(path))
    }

    fn post(path: &str, content_type: &str, body: &'static str) -> Answer {
        answer(
            TestRequest::new()
                .with_method(Method::Post)
                .with_path(path)
                .with_header(header("Content-Type", content_type))
                .with_body(body),
        )
    }

    fn error_of(answer: &Answer) -> (u16, String) {
        let body: serde_json::Value = serde_json::from_slice(answer.response.body.bytes()).unwrap();
        assert_eq!(body["status"], "error");
        (
            answer.response.status,
            body["error"].as_str().unwrap().to_string(),
        )
    }

    #[test]
    fn unknown_paths_and_methods_get_json_errors() {
        let answer = get("/nope?x=1");
        assert_eq!(answer.route, "other");
        assert_eq!(error_of(&answer).0, 404);
        let answer = answer_with_method(Method::Delete, "/hit");
        assert_eq!(answer.route, "/hit");
        assert_eq!(error_of(&answer).0, 405);
        assert_eq!(answer.response.allow, Some("GET, HEAD, POST, OPTIONS"));
    }

    fn answer_with_method(method: Method, path: &str) -> Answer {
        answer(TestRequest::new().with_method(method).with_path(path))
    }

    #[test]
    fn parameters_are_checked_before_the_store_is_asked() {
        let (status, message) = error_of(&get("/hit"));
        assert_eq!(status, 400);
        assert!(message.starts_with("url is required"), "{message}");
        let (status, message) = error_of(&get("/series?url=http://a.com/&period=year"));
        assert_eq!(status, 400);
        assert!(message.starts_with("period must be"), "{message}");
        let (status, _) = error_of(&get("/hits?timestamp=abc"));
        assert_eq!(status, 400);
        // A bad query is refused before the body is read.
        let answer = post("/hit?url=%zz", "application/x-www-form-urlencoded", "url=x");
        assert_eq!(
            (answer.response.status, answer.response.body_unread),
            (400, false)
        );
    }

    #[test]
    fn bodies_are_read_as_their_content_type_says() {
        for content_type in ["application/json", "Application/JSON; charset=UTF-8"] {
            let answer = post("/hit", content_type, r#"{"url":"ftp://a.com/"}"#);
            let (status, message) = error_of(&answer);
            assert_eq!(status, 400, "{content_type}");
            assert!(message.contains("scheme must be http"), "{message}");
        }
        for content_type in [
            "application/x-www-form-urlencoded",
            "application/x-www-form-urlencoded; charset=UTF-8",
        ] {
            let answer = post("/hit", content_type, "url=ftp%3A%2F%2Fa.com%2F");
            let (status, message) = error_of(&answer);
            assert_eq!(status, 400, "{content_type}");
            assert!(message.contains("scheme must be http"), "{message}");
        }
    }

    #[test]
    fn a_body_over_the_limit_is_refused_unread() {
        let answer = answer(
            TestRequest::new()
                .with_method(Method::Post)
                .with_path("/hit")
                .with_header(header("Content-Length", "1000000")),
        );
        assert_eq!(error_of(&answer).0, 413);
        assert!(answer.response.body_unread);
    }

    #[test]
    fn store_failures_are_503s_that_say_what_to_check() {
        let answer = post(
            "/hit",
            "application/x-www-form-urlencoded",
            "url=http%3A%2F%2Fa.com%2F",
        );
        let (status, message) = error_of(&answer);
        assert_eq!(status, 503);
        assert!(message.contains("--redis-url"), "{message}");
        assert_eq!(error_of(&get("/healthz")).0, 503);
    }

    #[test]
    fn the_dashboard_and_metrics_need_no_store() {
        let answer = get("/");
        assert_eq!((answer.response.status, answer.route), (200, "static"));
        assert_eq!(answer.response.content_type, "text/html; charset=utf-8");
        let answer = get("/metrics");
        assert_eq!(answer.response.status, 200);
        let text = String::from_utf8_lossy(answer.response.body.bytes()).into_owned();
        assert!(text.contains("hitme_redis_pool_connections 0"), "{text}");
    }

    #[test]
    fn http10_keep_alive_is_noticed() {
        let request = || {
            TestRequest::new()
                .with_path("/")
                .with_http_version(HTTPVersion(1, 0))
        };
        assert!(answer(request()).headers.is_empty());
        let answer = answer(request().with_header(header("Connection", "Keep-Alive")));
        assert_eq!(names(&answer.headers), ["Keep-Alive"]);
        assert_eq!(answer.headers[0].value.as_str(), "timeout=15");
    }

    fn with_origin(method: Method, path: &str, origin: &str) -> Answer {
        answer(
            TestRequest::new()
                .with_method(method)
                .with_path(path)
                .with_header(header("Origin", origin)),
        )
    }

    fn names(headers: &[Header]) -> Vec<String> {
        headers.iter().map(|h| h.field.to_string()).collect()
    }

    #[test]
    fn allowed_origins_get_cors_headers_and_others_none() {
        let preflight = with_origin(Method::Options, "/hit", "http://allowed.example");
        assert_eq!(preflight.response.status, 204);
        assert_eq!(preflight.response.allow, Some("GET, HEAD, POST, OPTIONS"));
        assert_eq!(
            names(&preflight.headers),
            [
                "Access-Control-Allow-Origin",
                "Vary",
                "Access-Control-Allow-Methods",
                "Access-Control-Allow-Headers",
                "Access-Control-Max-Age"
            ]
        );
        assert_eq!(
            preflight.headers[0].value.as_str(),
            "http://allowed.example"
        );
        let read = with_origin(Method::Get, "/hit", "http://allowed.example");
        assert_eq!(
            names(&read.headers),
            ["Access-Control-Allow-Origin", "Vary"]
        );
        for answer in [
            with_origin(Method::Options, "/top", "http://other.example"),
            with_origin(Method::Get, "/hit", "http://other.example"),
            get("/hit"),
        ] {
            assert!(answer.headers.is_empty(), "{answer:?}");
        }
        assert_eq!(
            with_origin(Method::Options, "/top", "http://other.example")
                .response
                .status,
            204
        );
    }

    #[test]
    fn the_pixel_is_an_image_whatever_happens() {
        for (path, status) in [
            ("/pixel.gif", 400),
            ("/pixel.gif?url=ftp%3A%2F%2Fx%2F", 400),
            ("/pixel.gif?url=%zz", 400),
            ("/pixel.gif?url=http%3A%2F%2Fa.example%2F", 503),
        ] {
            let answer = get(path);
            assert_eq!(answer.response.status, status, "{path}");
            assert_eq!(answer.response.content_type, "image/gif");
            assert_eq!(answer.response.cache_control, "no-store");
            assert_eq!(answer.response.body.bytes(), images::PIXEL_GIF);
        }
        let from_referer = answer(
            TestRequest::new()
                .with_path("/pixel.gif")
                .with_header(header("Referer", "http://a.example/page")),
        );
        assert_eq!(from_referer.response.status, 503, "the store was asked");
    }

    #[test]
    fn a_badge_that_fails_says_so_in_red() {
        for (path, status, text) in [
            ("/badge.svg", 400, "bad request"),
            (
                "/badge.svg?url=http%3A%2F%2Fa.example%2F&count=2",
                400,
                "bad request",
            ),
            (
                "/badge.svg?url=http%3A%2F%2Fa.example%2F&period=year",
                400,
                "bad request",
            ),
            (
                "/badge.svg?url=http%3A%2F%2Fa.example%2F",
                503,
                "unavailable",
            ),
        ] {
            let answer = get(path);
            assert_eq!(answer.response.status, status, "{path}");
            assert_eq!(answer.response.content_type, "image/svg+xml");
            let svg = String::from_utf8_lossy(answer.response.body.bytes()).into_owned();
            assert!(
                svg.contains(&format!("<title>hits: {text}</title>")),
                "{svg}"
            );
        }
    }

    #[test]
    fn the_embed_script_is_served() {
        let answer = get("/hitme.js");
        assert_eq!(answer.response.status, 200);
        assert_eq!(
            answer.response.content_type,
            "text/javascript; charset=utf-8"
        );
        let script = String::from_utf8_lossy(answer.response.body.bytes()).into_owned();
        assert!(script.contains("sendBeacon"));
    }
}
