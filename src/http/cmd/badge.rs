//! `GET /badge.svg?url=URL&period=P&label=TEXT&count=1`: the URL's count in the bucket of
//! `period` holding now, as a badge; with `count=1` the hit is recorded first. A badge that
//! fails says so in red, with the error's status.

use crate::buckets::Period;
use crate::clock::now_ms;
use crate::http::error::ApiError;
use crate::http::images;
use crate::http::params::Fields;
use crate::http::response::{Body, Response};
use crate::http::App;
use crate::store::Hit;

pub(crate) struct Badge {
    /// What to show, or why it cannot be shown.
    asked: Result<Asked, ApiError>,
}

struct Asked {
    url: String,
    period: Period,
    label: String,
    counts: bool,
}

impl Badge {
    pub(crate) fn parse(query: &str, app: &App) -> Badge {
        let asked = Fields::from_form(query.as_bytes()).and_then(|fields| {
            Ok(Asked {
                url: fields.require_url(&app.url_rules)?,
                period: fields.period_or_all()?,
                label: fields.badge_label()?,
                counts: fields.badge_counts()?,
            })
        });
        Badge { asked }
    }

    pub(crate) fn apply(self, app: &App) -> Response {
        match self.asked.and_then(|asked| show(asked, app)) {
            Ok(response) => response,
            Err(err) => {
                let value = match err.status {
                    400 => "bad request",
                    503 => "unavailable",
                    _ => "error",
                };
                svg(err.status, images::badge("hits", value, true))
            }
        }
    }
}

fn show(asked: Asked, app: &App) -> Result<Response, ApiError> {
    let now = now_ms();
    if asked.counts {
        app.store.record_hit(Hit {
            url: asked.url.clone(),
            timestamp_ms: now,
        })?;
    }
    let counts = app.store.url_counts(&asked.url, now)?;
    let value = counts[asked.period].to_string();
    Ok(svg(200, images::badge(&asked.label, &value, false)))
}

fn svg(status: u16, body: Vec<u8>) -> Response {
    Response::with("image/svg+xml", Body::Owned(body)).with_status(status)
}
