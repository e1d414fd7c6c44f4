//! The HTTP edge: routes a request to its handler and turns the outcome into a JSON response.

use std::io::{Cursor, Read};
use std::time::{SystemTime, UNIX_EPOCH};

use tiny_http::{Header, Method, Request, Response, StatusCode};

use crate::assets;
use crate::buckets::{series_starts, Period};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::params::Fields;
use crate::store::HitStore;

/// The largest request body accepted; a hit needs only a URL and a timestamp.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

const OK_BODY: &[u8] = br#"{"status":"OK"}"#;
const JSON: &str = "application/json";

/// The JSON names of the six counts, in the order the store returns them.
const COUNT_NAMES: [&str; 6] = [
    "all_time",
    Period::ALL[0].json_name(),
    Period::ALL[1].json_name(),
    Period::ALL[2].json_name(),
    Period::ALL[3].json_name(),
    Period::ALL[4].json_name(),
];

/// What every worker shares: the store and the metrics.
pub struct App {
    pub store: Box<dyn HitStore>,
    pub metrics: Metrics,
    /// `Keep-Alive` for HTTP/1.0 keep-alive clients, naming how long an idle connection is
    /// kept (`--client-timeout-ms`).
    pub keep_alive: Header,
}

/// What to send back: a status, a content type and a body.
#[derive(Debug)]
pub struct Reply {
    /// The route that answered, as a metrics label.
    pub route: &'static str,
    pub status: u16,
    pub content_type: &'static str,
    pub body: Body,
    pub allow: Option<&'static str>,
    /// The request body was left unread (too large, or the client stalled): answering must
    /// not hold up a worker while tiny_http drains it.
    pub body_unread: bool,
    /// The client asked HTTP/1.0 keep-alive: say it is kept, or clients like `ab -k` wait
    /// for a close that never comes.
    pub keep_alive: Option<Header>,
}

#[derive(Debug)]
pub enum Body {
    Static(&'static [u8]),
    Owned(Vec<u8>),
}

impl AsRef<[u8]> for Body {
    fn as_ref(&self) -> &[u8] {
        match self {
            Body::Static(bytes) => bytes,
            Body::Owned(bytes) => bytes,
        }
    }
}

impl Reply {
    fn json(body: Vec<u8>) -> Reply {
        Reply {
            route: "",
            status: 200,
            content_type: JSON,
            body: Body::Owned(body),
            allow: None,
            body_unread: false,
            keep_alive: None,
        }
    }

    fn ok() -> Reply {
        Reply {
            body: Body::Static(OK_BODY),
            ..Reply::json(Vec::new())
        }
    }

    pub fn error(err: &ApiError) -> Reply {
        Reply {
            status: err.status,
            allow: err.allow,
            ..Reply::json(err.to_json())
        }
    }

    /// The tiny_http response for this reply.
    pub fn into_response(self) -> Response<Cursor<Body>> {
        let mut headers = Vec::with_capacity(4);
        headers.push(header("Content-Type", self.content_type));
        headers.push(header("Server", "hitme"));
        if self.content_type == JSON {
            headers.push(header("Cache-Control", "no-store"));
        } else {
            headers.push(header("Cache-Control", "no-cache"));
        }
        if let Some(allow) = self.allow {
            headers.push(header("Allow", allow));
        }
        // tiny_http refuses to let a response set `Connection`; HTTP/1.0 clients such as ab
        // look for a `Keep-Alive` header instead.
        headers.extend(self.keep_alive);
        let len = self.body.as_ref().len();
        Response::new(
            StatusCode(self.status),
            headers,
            Cursor::new(self.body),
            Some(len),
            None,
        )
    }
}

fn header(name: &'static str, value: &'static str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("static headers are valid")
}

/// The `Keep-Alive` header for connections closed after `idle` without a request.
pub fn keep_alive_header(idle: Option<std::time::Duration>) -> Header {
    // Without a timeout HitMe never closes an idle connection; the header wants a number,
    // and a day says as much to a client.
    let secs = idle.map_or(86_400, |d| d.as_secs().max(1));
    Header::from_bytes(&b"Keep-Alive"[..], format!("timeout={secs}").as_bytes())
        .expect("a number is a valid header value")
}

/// Answers one request. Never panics on client input; errors become JSON replies.
pub fn handle(request: &mut Request, app: &App) -> Reply {
    let mut body_unread = false;
    let mut route = "other";
    let result = dispatch(request, app, &mut route, &mut body_unread);
    let mut reply = result.unwrap_or_else(|err| Reply::error(&err));
    reply.route = route;
    reply.body_unread = body_unread;
    if wants_http10_keep_alive(request) {
        reply.keep_alive = Some(app.keep_alive.clone());
    }
    reply
}

fn wants_http10_keep_alive(request: &Request) -> bool {
    request.http_version() == &tiny_http::HTTPVersion(1, 0)
        && request.headers().iter().any(|h| {
            h.field.equiv("Connection") && h.value.as_str().eq_ignore_ascii_case("keep-alive")
        })
}

/// The route a path belongs to, as a static metrics label.
fn route_of(path: &str) -> &'static str {
    match path {
        "/hit" => "/hit",
        "/hits" => "/hits",
        "/series" => "/series",
        "/healthz" => "/healthz",
        "/metrics" => "/metrics",
        _ if assets::lookup(path).is_some() => "static",
        _ => "other",
    }
}

fn dispatch(
    request: &mut Request,
    app: &App,
    route: &mut &'static str,
    body_unread: &mut bool,
) -> Result<Reply, ApiError> {
    let (path, query) = match request.url().split_once('?') {
        Some((path, query)) => (path, query),
        None => (request.url(), ""),
    };
    *route = route_of(path);
    let method = request.method().clone();
    let is_get = matches!(method, Method::Get | Method::Head);
    let fields = || Fields::from_form(query.as_bytes());
    let store = app.store.as_ref();
    match *route {
        "/hit" if method == Method::Post => {
            let fields = fields()?;
            post_hit(request, fields, store, body_unread)
        }
        "/hit" if is_get => get_hit(fields()?, store),
        "/hit" => Err(ApiError::method_not_allowed(
            method.as_str(),
            "GET, HEAD, POST",
        )),
        "other" => Err(ApiError::not_found(path)),
        _ if !is_get => Err(ApiError::method_not_allowed(method.as_str(), "GET, HEAD")),
        "/hits" => get_hits(fields()?, store),
        "/series" => get_series(fields()?, store),
        "/healthz" => healthz(store),
        "/metrics" => Ok(Reply {
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            ..Reply::json(app.metrics.render(store))
        }),
        _ => {
            let asset = assets::lookup(path).expect("route_of found it");
            Ok(Reply {
                content_type: asset.content_type,
                body: Body::Static(asset.bytes),
                ..Reply::json(Vec::new())
            })
        }
    }
}

fn now_ms() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

/// `POST /hit`: body fields (form or JSON) win over query fields.
fn post_hit(
    request: &mut Request,
    query: Fields,
    store: &dyn HitStore,
    body_unread: &mut bool,
) -> Result<Reply, ApiError> {
    let body = read_body(request, body_unread)?;
    let fields = if body.is_empty() {
        query
    } else if is_json(request) {
        Fields::from_json(&body)?.or(query)
    } else {
        Fields::from_form(&body)?.or(query)
    };
    let url = fields.require_url()?;
    let timestamp = fields.timestamp_or(now_ms())?;
    store.record_hit(&url, timestamp)?;
    Ok(Reply::ok())
}

fn is_json(request: &Request) -> bool {
    request
        .headers()
        .iter()
        .find(|h| h.field.equiv("Content-Type"))
        .is_some_and(|h| {
            let mime = h.value.as_str().split(';').next().unwrap_or("").trim();
            mime.eq_ignore_ascii_case(JSON)
        })
}

/// Reads the body up to `MAX_BODY_BYTES`. A declared length over the limit is refused unread.
fn read_body(request: &mut Request, body_unread: &mut bool) -> Result<Vec<u8>, ApiError> {
    let declared = request.body_length().unwrap_or(0);
    if declared > MAX_BODY_BYTES {
        *body_unread = true;
        return Err(ApiError::payload_too_large(MAX_BODY_BYTES));
    }
    let mut body = Vec::with_capacity(declared);
    request
        .as_reader()
        .take(MAX_BODY_BYTES as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| {
            // The rest of the body may still come, slowly: answer without waiting for it.
            *body_unread = true;
            ApiError::bad_request(format!("the request body could not be read ({e})"))
        })?;
    if body.len() > MAX_BODY_BYTES {
        *body_unread = true;
        return Err(ApiError::payload_too_large(MAX_BODY_BYTES));
    }
    Ok(body)
}

/// `GET /hit?url=URL&timestamp=TS`: one URL's six counts.
fn get_hit(fields: Fields, store: &dyn HitStore) -> Result<Reply, ApiError> {
    let url = fields.require_url()?;
    let timestamp = fields.timestamp_or(now_ms())?;
    let counts = store.url_counts(&url, timestamp)?;
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(br#"{"status":"OK","url":"#);
    serde_json::to_writer(&mut out, &url).expect("a string always serialises");
    for (name, count) in COUNT_NAMES.iter().zip(counts) {
        out.extend_from_slice(format!(r#","{name}":{count}"#).as_bytes());
    }
    out.push(b'}');
    Ok(Reply::json(out))
}

/// `GET /hits?timestamp=TS`: every URL's counts, one object per period.
fn get_hits(fields: Fields, store: &dyn HitStore) -> Result<Reply, ApiError> {
    let timestamp = fields.timestamp_or(now_ms())?;
    let all = store.all_counts(timestamp)?;
    let mut out = Vec::with_capacity(1024);
    out.extend_from_slice(br#"{"status":"OK""#);
    for (name, counts) in COUNT_NAMES.iter().zip(&all) {
        out.extend_from_slice(format!(r#","{name}":"#).as_bytes());
        serde_json::to_writer(&mut out, counts).expect("a map of strings to integers serialises");
    }
    out.push(b'}');
    Ok(Reply::json(out))
}

/// `GET /series?url=URL&period=P&count=N&timestamp=TS`: one URL's counts in the last N buckets
/// of a period, oldest first.
fn get_series(fields: Fields, store: &dyn HitStore) -> Result<Reply, ApiError> {
    let url = fields.require_url()?;
    let period = fields.require_period()?;
    let count = fields.count_or(period.default_series_len())?;
    let timestamp = fields.timestamp_or(now_ms())?;
    let starts = series_starts(timestamp, period, store.week_start(), count);
    let counts = store.series(&url, period, &starts)?;
    let mut out = Vec::with_capacity(64 + 40 * starts.len());
    out.extend_from_slice(br#"{"status":"OK","url":"#);
    serde_json::to_writer(&mut out, &url).expect("a string always serialises");
    out.extend_from_slice(format!(r#","period":"{}","buckets":["#, period.name()).as_bytes());
    for (i, (start, count)) in starts.iter().zip(counts).enumerate() {
        let comma = if i == 0 { "" } else { "," };
        out.extend_from_slice(format!(r#"{comma}{{"start":{start},"count":{count}}}"#).as_bytes());
    }
    out.extend_from_slice(b"]}");
    Ok(Reply::json(out))
}

/// `GET /healthz`: 200 when Redis answers a PING, 503 when it does not.
fn healthz(store: &dyn HitStore) -> Result<Reply, ApiError> {
    store.ping()?;
    Ok(Reply::ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tiny_http::TestRequest;

    fn with_content_type(value: &str) -> Request {
        TestRequest::new()
            .with_method(Method::Post)
            .with_path("/hit")
            .with_header(Header::from_bytes(&b"Content-Type"[..], value.as_bytes()).unwrap())
            .into()
    }

    #[test]
    fn content_types_with_parameters_are_recognised() {
        for json in [
            "application/json",
            "application/json; charset=UTF-8",
            "Application/JSON ;charset=utf-8",
        ] {
            assert!(is_json(&with_content_type(json)), "{json}");
        }
        for form in [
            "application/x-www-form-urlencoded",
            "application/x-www-form-urlencoded; charset=UTF-8",
            "text/plain",
        ] {
            assert!(!is_json(&with_content_type(form)), "{form}");
        }
    }
}
