//! `GET /pixel.gif?url=URL`: records a hit for `url`, or for the page that embeds the image
//! (its `Referer`) when there is no `url`, and answers a transparent pixel. Whatever happens,
//! the answer is an image, so no page shows a broken one; the status says how it went. A host
//! outside `--sites` is a 403; a bot's load is answered but not counted.

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
    bot: bool,
}

impl Pixel {
    pub(crate) fn parse(
        query: &str,
        referer: Option<&str>,
        user_agent: Option<&str>,
        app: &App,
    ) -> Pixel {
        let url =
            Fields::from_form(query.as_bytes()).and_then(|fields| match (&fields.url, referer) {
                (None, Some(referer)) => canonical_url(referer, &app.url_rules),
                _ => fields.require_url(&app.url_rules),
            });
        let url = url.and_then(|url| app.sites.check(&url).map(|()| url));
        Pixel {
            url,
            bot: app.bots.is_bot(user_agent),
        }
    }

    /// Whether applying it counts a hit.
    pub(crate) fn counts(&self) -> bool {
        self.url.is_ok() && !self.bot
    }

    /// The pixel for a request refused before it was applied.
    pub(crate) fn refused(err: &ApiError) -> Response {
        gif(err.status)
    }

    pub(crate) fn apply(self, app: &App) -> Response {
        if self.bot && self.url.is_ok() {
            app.metrics.hit_ignored("bot");
            return gif(200);
        }
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
