//! One function per action: validated parameters in, a [`Reply`] or an [`ApiError`] out.

use super::error::ApiError;
use super::params::Fields;
use super::reply::{Body, Reply};
use super::App;
use crate::assets::Asset;
use crate::clock::now_ms;
use crate::store::Hit;

/// `POST /hit`: body fields (form or JSON) win over query fields.
pub fn record_hit(
    app: &App,
    query: Fields,
    body: &[u8],
    body_is_json: bool,
) -> Result<Reply, ApiError> {
    let fields = if body.is_empty() {
        query
    } else if body_is_json {
        Fields::from_json(body)?.or(query)
    } else {
        Fields::from_form(body)?.or(query)
    };
    let url = fields.require_url()?;
    let timestamp_ms = fields.timestamp_or(now_ms())?;
    app.store.record_hit(Hit { url, timestamp_ms })?;
    Ok(Reply::ok())
}

/// `GET /hit?url=URL&timestamp=TS`: one URL's six counts.
pub fn read_hit(app: &App, fields: Fields) -> Result<Reply, ApiError> {
    let url = fields.require_url()?;
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

/// `GET /hits?timestamp=TS`: every URL's counts, one object per period.
pub fn read_hits(app: &App, fields: Fields) -> Result<Reply, ApiError> {
    let timestamp = fields.timestamp_or(now_ms())?;
    let all = app.store.all_counts(timestamp)?;
    let mut out = Vec::with_capacity(1024);
    out.extend_from_slice(br#"{"status":"OK""#);
    for (period, counts) in all {
        out.extend_from_slice(format!(r#","{}":"#, period.json_name()).as_bytes());
        serde_json::to_writer(&mut out, &counts).expect("a map of strings to integers serialises");
    }
    out.push(b'}');
    Ok(Reply::json(out))
}

/// `GET /series?url=URL&period=P&count=N&timestamp=TS`: one URL's counts in the last N buckets
/// of a period, oldest first.
pub fn read_series(app: &App, fields: Fields) -> Result<Reply, ApiError> {
    let url = fields.require_url()?;
    let period = fields.require_period()?;
    let count = fields.count_or(period.default_series_len())?;
    let timestamp = fields.timestamp_or(now_ms())?;
    let starts = app.calendar.series(timestamp, period, count);
    let counts = app.store.series(&url, period, &starts)?;
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
