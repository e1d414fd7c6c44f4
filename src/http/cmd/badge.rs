//! `GET /badge.svg?url=URL&period=P&label=TEXT&count=1`: the URL's count in the bucket of
//! `period` holding now, as a badge; with `count=1` the hit is recorded first. A badge that
//! fails says so in red, with the error's status.

use crate::http::error::ApiError;
use crate::http::header;
use crate::http::images;
use crate::http::params::Fields;
use crate::http::response::{Body, Response};
use crate::http::App;
use crate::store::{Hit, Metric};
use crate::time::clock::now_ms;
use crate::time::Period;
use crate::visits::Sighting;
use tiny_http::Request;

pub(crate) struct Badge {
    /// What to show, or why it cannot be shown.
    asked: Result<Asked, ApiError>,
}

struct Asked {
    url: String,
    period: Period,
    label: String,
    counts: bool,
    /// Loaded by a bot: shown, never counted.
    bot: bool,
    /// Hits or (`metric=visits`) visits.
    metric: Metric,
    /// With `--visits`, what names the visitor of the hit it counts.
    sighting: Option<Sighting>,
}

impl Badge {
    pub(crate) fn parse(query: &str, request: &Request, app: &App) -> Badge {
        let asked = Fields::from_form(query.as_bytes()).and_then(|fields| {
            let metric = fields.metric(app.visits.is_some())?;
            let mut asked = Asked {
                url: fields.require_url(&app.url_rules)?,
                period: fields.period_or_all()?,
                label: fields.badge_label(metric.name())?,
                counts: fields.badge_counts()?,
                bot: app.bots.is_bot(header(request, "User-Agent")),
                metric,
                sighting: None,
            };
            if asked.counts {
                app.sites.check(&asked.url)?;
                if !asked.bot {
                    asked.sighting = app.sighting(request);
                }
            }
            Ok(asked)
        });
        Badge { asked }
    }

    /// A badge that shows only why it was refused.
    pub(crate) fn refusing(err: ApiError) -> Badge {
        Badge { asked: Err(err) }
    }

    /// Whether applying it counts a hit.
    pub(crate) fn counts(&self) -> bool {
        self.asked.as_ref().is_ok_and(|a| a.counts && !a.bot)
    }

    pub(crate) fn apply(self, app: &App) -> Response {
        match self.asked.and_then(|asked| show(asked, app)) {
            Ok(response) => response,
            Err(err) => Badge::refused(&err),
        }
    }

    /// The badge of a request refused: the error, in red, with its status.
    pub(crate) fn refused(err: &ApiError) -> Response {
        let value = match err.status {
            400 => "bad request",
            401 => "token needed",
            403 => "not counted here",
            429 => "too many hits",
            503 => "unavailable",
            _ => "error",
        };
        let badge = svg(err.status, images::badge("hits", value, true));
        match err.challenge {
            // A 401 names the scheme (RFC 9110), as the JSON endpoints' do.
            true => badge.with_bearer_challenge(),
            false => badge,
        }
    }
}

fn show(asked: Asked, app: &App) -> Result<Response, ApiError> {
    let now = now_ms();
    if asked.counts && asked.bot {
        app.metrics.hit_ignored("bot");
    }
    if asked.counts && !asked.bot {
        app.store.record_hit(Hit {
            url: asked.url.clone(),
            timestamp_ms: now,
            visitor: app.visitor(asked.sighting.as_ref(), &asked.url)?,
            source: app.no_source(),
        })?;
    }
    let counts = app.store.url_counts(&asked.url, now, asked.metric)?;
    let value = counts[asked.period].to_string();
    Ok(svg(200, images::badge(&asked.label, &value, false)))
}

fn svg(status: u16, body: Vec<u8>) -> Response {
    Response::with("image/svg+xml", Body::Owned(body)).with_status(status)
}
