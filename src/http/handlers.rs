//! One function per action: validated parameters in, a [`Reply`] or an [`ApiError`] out.

use super::canonical::canonical_url;
use super::error::ApiError;
use super::hits_stream::AllCountsStream;
use super::images;
use super::params::Fields;
use super::reply::{Body, Reply, JSON};
use super::App;
use crate::assets::Asset;
use crate::buckets::Period;
use crate::clock::now_ms;
use crate::store::Hit;
use crate::top::Ranking;

/// URLs on a `/top` page when not told.
const DEFAULT_TOP_LIMIT: usize = 50;

/// `POST /hit`: body fields (form or JSON) win over query fields.
pub fn record_hit(
    app: &App,
    query: Fields,
    body: &[u8],
    body_is_json: bool,
) -> Result<Reply, ApiError> {
    app.store
        .record_hit(hit_of(app, query, body, body_is_json)?)?;
    Ok(Reply::ok())
}

/// The hit a `POST /hit` asks to record: its fields from the body (JSON or a form) over those
/// of the query, checked.
pub fn hit_of(app: &App, query: Fields, body: &[u8], body_is_json: bool) -> Result<Hit, ApiError> {
    let fields = if body.is_empty() {
        query
    } else if body_is_json {
        Fields::from_json(body)?.or(query)
    } else {
        Fields::from_form(body)?.or(query)
    };
    let url = fields.require_url(&app.url_rules)?;
    let timestamp_ms = fields.timestamp_or(now_ms())?;
    Ok(Hit { url, timestamp_ms })
}

/// `GET /hit?url=URL&timestamp=TS`: one URL's six counts.
pub fn read_hit(app: &App, fields: Fields) -> Result<Reply, ApiError> {
    let url = fields.require_url(&app.url_rules)?;
    let timestamp = fields.timestamp_or(now_ms())?;
    let counts = app.store.url_counts(&url, timestamp)?;
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(br#"{"status":"OK","url":"#);
    serde_json::to_writer(&mut out, &url).expect("a string always serialises");
    for (period, count) in counts {
        out.extend_from_slice(format!(r#","{}":{count}"#, period.json_name()).as_bytes());
    }
    out.push(b'}');
    Ok(Reply::json(out))
}

/// `GET /hits?timestamp=TS`: every URL's counts, one object per period, streamed as the
/// buckets are read from Redis chunk by chunk. Redis is asked for the first chunk before the
/// answer starts, so an unavailable Redis is still a 503.
pub fn read_hits(app: &App, fields: Fields) -> Result<Reply, ApiError> {
    let timestamp = fields.timestamp_or(now_ms())?;
    let permit = app.hits_streams.take().ok_or_else(|| {
        ApiError::unavailable(format!(
            "GET /hits is already being answered to as many clients at once as HitMe allows ({}), so that its other workers stay free for hits; retry in a few seconds, or page through one period with GET /top",
            app.hits_streams.max()
        ))
    })?;
    let stream = AllCountsStream::open(app.store.clone(), app.calendar.starts(timestamp), permit)?;
    Ok(Reply::with(JSON, Body::Stream(Box::new(stream))))
}

/// `GET /top?period=P&limit=N&offset=M&q=TEXT&timestamp=TS`: the URLs of one bucket ranked
/// by count, filtered and paged; `total` and `urls` cover every URL that matches.
pub fn read_top(app: &App, fields: Fields) -> Result<Reply, ApiError> {
    let period = fields.period_or_all()?;
    let limit = fields.limit_or(DEFAULT_TOP_LIMIT)?;
    let offset = fields.offset()?;
    let filter = fields.filter()?;
    let timestamp = fields.timestamp_or(now_ms())?;
    let start = app.calendar.start(timestamp, period);
    let ranking = app.rankings.get(period, start, || {
        Ranking::read(app.store.as_ref(), period, start)
    })?;
    let page = ranking.page(filter, offset, limit);
    let mut out = Vec::with_capacity(128 + 64 * page.top.len());
    out.extend_from_slice(
        format!(r#"{{"status":"OK","period":"{}","start":"#, period.name()).as_bytes(),
    );
    match period {
        Period::All => out.extend_from_slice(b"null"),
        _ => out.extend_from_slice(itoa::Buffer::new().format(start).as_bytes()),
    }
    out.extend_from_slice(
        format!(r#","total":{},"urls":{},"top":["#, page.total, page.urls).as_bytes(),
    );
    for (i, (url, count)) in page.top.iter().enumerate() {
        out.extend_from_slice(if i == 0 { b"{\"url\":" } else { b",{\"url\":" });
        serde_json::to_writer(&mut out, url).expect("a string always serialises");
        out.extend_from_slice(format!(r#","count":{count}}}"#).as_bytes());
    }
    out.extend_from_slice(b"]}");
    Ok(Reply::json(out))
}

/// `GET /series?url=URL&period=P&count=N&timestamp=TS`: one URL's counts in the last N buckets
/// of a period, oldest first, with the time zone whose calendar cut them.
pub fn read_series(app: &App, fields: Fields) -> Result<Reply, ApiError> {
    let url = fields.require_url(&app.url_rules)?;
    let period = fields.require_period()?;
    let count = fields.count_or(period.default_series_len())?;
    let timestamp = fields.timestamp_or(now_ms())?;
    let starts = app.calendar.series(timestamp, period, count);
    let counts = app.store.series(&url, period, &starts)?;
    let mut out = Vec::with_capacity(64 + 40 * starts.len());
    out.extend_from_slice(br#"{"status":"OK","url":"#);
    serde_json::to_writer(&mut out, &url).expect("a string always serialises");
    out.extend_from_slice(format!(r#","period":"{}","time_zone":"#, period.name()).as_bytes());
    serde_json::to_writer(&mut out, app.calendar.zone_name()).expect("a string always serialises");
    out.extend_from_slice(br#","buckets":["#);
    for (i, (start, count)) in starts.iter().zip(counts).enumerate() {
        let comma = if i == 0 { "" } else { "," };
        out.extend_from_slice(format!(r#"{comma}{{"start":{start},"count":{count}}}"#).as_bytes());
    }
    out.extend_from_slice(b"]}");
    Ok(Reply::json(out))
}

/// `GET /pixel.gif?url=URL`: records a hit for `url`, or for the page that embeds the image
/// (its `Referer`) when there is no `url`, and answers a transparent pixel. Whatever happens,
/// the answer is an image, so no page shows a broken one; the status says how it went.
pub fn pixel(app: &App, fields: Fields, referer: Option<&str>) -> Reply {
    let url = match (&fields.url, referer) {
        (None, Some(referer)) => canonical_url(referer, &app.url_rules),
        _ => fields.require_url(&app.url_rules),
    };
    let recorded = url.and_then(|url| {
        let timestamp_ms = now_ms();
        Ok(app.store.record_hit(Hit { url, timestamp_ms })?)
    });
    match recorded {
        Ok(()) => gif(200),
        Err(err) => pixel_refused(&err),
    }
}

/// The pixel for a request that counted nothing.
pub fn pixel_refused(err: &ApiError) -> Reply {
    gif(err.status)
}

fn gif(status: u16) -> Reply {
    Reply {
        status,
        cache_control: "no-store",
        ..Reply::with("image/gif", Body::Static(images::PIXEL_GIF))
    }
}

/// `GET /badge.svg?url=URL&period=P&label=TEXT&count=1`: the URL's count in the bucket of
/// `period` holding now, as a badge; with `count=1` the hit is recorded first.
pub fn badge(app: &App, fields: Fields) -> Result<Reply, ApiError> {
    let url = fields.require_url(&app.url_rules)?;
    let period = fields.period_or_all()?;
    let label = fields.badge_label()?;
    let now = now_ms();
    if fields.badge_counts()? {
        app.store.record_hit(Hit {
            url: url.clone(),
            timestamp_ms: now,
        })?;
    }
    let counts = app.store.url_counts(&url, now)?;
    let value = counts[period].to_string();
    Ok(svg(200, images::badge(&label, &value, false)))
}

/// The badge for a request that failed: the error, in red.
pub fn badge_refused(err: &ApiError) -> Reply {
    let value = match err.status {
        400 => "bad request",
        503 => "unavailable",
        _ => "error",
    };
    svg(err.status, images::badge("hits", value, true))
}

fn svg(status: u16, body: Vec<u8>) -> Reply {
    Reply {
        status,
        ..Reply::with("image/svg+xml", Body::Owned(body))
    }
}

/// `GET /healthz`: 200 when Redis answers a PING, 503 when it does not.
pub fn health(app: &App) -> Result<Reply, ApiError> {
    app.store.ping()?;
    Ok(Reply::ok())
}

/// `GET /metrics`, in the Prometheus text format.
pub fn metrics(app: &App) -> Reply {
    let text = app.metrics.render(&app.pool);
    Reply::with(
        "text/plain; version=0.0.4; charset=utf-8",
        Body::Owned(text),
    )
}

/// A dashboard file.
pub fn asset(asset: Asset) -> Reply {
    Reply::with(asset.content_type, Body::Static(asset.bytes))
}
