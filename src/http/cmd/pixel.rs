//! `GET /pixel.gif?url=URL`: records a hit for `url`, or for the page that embeds the image
//! (its `Referer`) when there is no `url`, and answers a transparent pixel. Whatever happens,
//! the answer is an image, so no page shows a broken one; the status says how it went.

use crate::clock::now_ms;
use crate::http::canonical::canonical_url;
use crate::http::error::ApiError;
use crate::http::images;
use crate::http::params::Fields;
use crate::http::response::{Body, Response};
use crate::http::App;
use crate::store::Hit;

pub(crate) struct Pixel {
    /// The URL to count, or why there is none.
    url: Result<String, ApiError>,
}

impl Pixel {
    pub(crate) fn parse(query: &str, referer: Option<&str>, app: &App) -> Pixel {
        let url =
            Fields::from_form(query.as_bytes()).and_then(|fields| match (&fields.url, referer) {
                (None, Some(referer)) => canonical_url(referer, &app.url_rules),
                _ => fields.require_url(&app.url_rules),
            });
        Pixel { url }
    }

    pub(crate) fn apply(self, app: &App) -> Response {
        let recorded = self.url.and_then(|url| {
            let timestamp_ms = now_ms();
            Ok(app.store.record_hit(Hit { url, timestamp_ms })?)
        });
        match recorded {
            Ok(()) => gif(200),
            Err(err) => gif(err.status),
        }
    }
}

fn gif(status: u16) -> Response {
    Response::with("image/gif", Body::Static(images::PIXEL_GIF))
        .with_status(status)
        .with_cache_control("no-store")
}
