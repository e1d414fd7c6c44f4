//! An async build of HitMe's hit path, to compare the blocking design with: `POST /hit`
//! (form body or query string, `url` and `timestamp`), `GET /hit?url=` and `/healthz`, on
//! axum and tokio with one multiplexed Redis connection. A hit is HitMe's six `HINCRBY` in one
//! `MULTI`/`EXEC`, on the same keys (UTC, weeks from Monday), so the kit can check its counts.
//!
//!     hitme-async [LISTEN (127.0.0.1:9000)] [REDIS URL (redis://127.0.0.1:6379)] [PREFIX (hits)]

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use redis::aio::MultiplexedConnection;

struct Peer {
    redis: MultiplexedConnection,
    prefix: String,
}

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:9000".into());
    let redis_url = args
        .next()
        .unwrap_or_else(|| "redis://127.0.0.1:6379".into());
    let prefix = args.next().unwrap_or_else(|| "hits".into());
    let client = redis::Client::open(redis_url.as_str()).expect("a redis:// URL");
    let redis = client
        .get_multiplexed_async_connection()
        .await
        .expect("Redis reachable");
    let peer = Arc::new(Peer { redis, prefix });
    let app = Router::new()
        .route("/hit", get(counts).post(hit))
        .route(
            "/healthz",
            get(|| async { json(StatusCode::OK, r#"{"status":"OK"}"#.into()) }),
        )
        .with_state(peer);
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .expect("a free address");
    eprintln!("hitme-async listening on http://{listen}");
    axum::serve(listener, app).await.expect("serving");
}

fn json(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn error(status: StatusCode, message: &str) -> Response {
    json(
        status,
        format!(r#"{{"status":"error","error":"{message}"}}"#),
    )
}

/// `url` and `timestamp` (ms, absent or 0 for now) from a form body or a query string.
fn params(query: Option<&str>, body: &[u8]) -> Result<(String, i64), Response> {
    let (mut url, mut timestamp) = (None, 0);
    let pairs = form_urlencoded(body).chain(form_urlencoded(query.unwrap_or("").as_bytes()));
    for (name, value) in pairs {
        match &*name {
            "url" if url.is_none() => url = Some(value.into_owned()),
            "timestamp" if timestamp == 0 => {
                // ab's bodies end in a newline, as HitMe accepts.
                timestamp = value
                    .trim()
                    .parse()
                    .map_err(|_| error(StatusCode::BAD_REQUEST, "timestamp is not a number"))?
            }
            _ => {}
        }
    }
    let url = url
        .filter(|u| !u.is_empty())
        .ok_or_else(|| error(StatusCode::BAD_REQUEST, "url is required"))?;
    if timestamp == 0 {
        timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
    }
    Ok((url, timestamp))
}

fn form_urlencoded(bytes: &[u8]) -> url::form_urlencoded::Parse<'_> {
    url::form_urlencoded::parse(bytes)
}

/// The keys of the buckets `timestamp` falls in, `<prefix>:all` first.
fn keys(prefix: &str, timestamp: i64) -> [String; 6] {
    let day = timestamp.div_euclid(DAY) * DAY;
    let days = timestamp.div_euclid(DAY);
    // 1970-01-01 was a Thursday: three days after a Monday.
    let week = (days - (days + 3).rem_euclid(7)) * DAY;
    let month = month_start(days) * DAY;
    [
        format!("{prefix}:all"),
        format!("{prefix}:month:{month}"),
        format!("{prefix}:week:{week}"),
        format!("{prefix}:day:{day}"),
        format!("{prefix}:hour:{}", timestamp.div_euclid(HOUR) * HOUR),
        format!("{prefix}:minute:{}", timestamp.div_euclid(MINUTE) * MINUTE),
    ]
}

/// The first day of the month of day `days` since 1970-01-01 (Hinnant's civil calendar).
fn month_start(days: i64) -> i64 {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day_of_month = doy - (153 * mp + 2) / 5; // 0-based
    days - day_of_month
}

async fn hit(State(peer): State<Arc<Peer>>, RawQuery(query): RawQuery, body: Bytes) -> Response {
    let (url, timestamp) = match params(query.as_deref(), &body) {
        Ok(p) => p,
        Err(response) => return response,
    };
    let mut pipe = redis::pipe();
    pipe.atomic();
    for key in keys(&peer.prefix, timestamp) {
        pipe.hincr(key, &url, 1).ignore();
    }
    match pipe.query_async::<()>(&mut peer.redis.clone()).await {
        Ok(()) => json(StatusCode::OK, r#"{"status":"OK"}"#.into()),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &format!("Redis: {e}")),
    }
}

async fn counts(State(peer): State<Arc<Peer>>, RawQuery(query): RawQuery) -> Response {
    let (url, timestamp) = match params(query.as_deref(), b"") {
        Ok(p) => p,
        Err(response) => return response,
    };
    let mut pipe = redis::pipe();
    for key in keys(&peer.prefix, timestamp) {
        pipe.hget(key, &url);
    }
    match pipe
        .query_async::<Vec<Option<i64>>>(&mut peer.redis.clone())
        .await
    {
        Ok(c) => {
            let n = |i: usize| c.get(i).copied().flatten().unwrap_or(0);
            json(
                StatusCode::OK,
                format!(
                    r#"{{"all":{},"month":{},"week":{},"day":{},"hour":{},"minute":{}}}"#,
                    n(0),
                    n(1),
                    n(2),
                    n(3),
                    n(4),
                    n(5)
                ),
            )
        }
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &format!("Redis: {e}")),
    }
}
