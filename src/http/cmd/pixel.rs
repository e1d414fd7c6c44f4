//! `GET /pixel.gif?url=URL`: records a hit for `url`, or for the page that embeds the image
//! (its `Referer`) when there is no `url`, and answers a transparent pixel. Whatever happens,
//! the answer is an image, so no page shows a broken one; the status says how it went. A host
//! outside `--sites` is a 403; a bot's load (and with `--sources` one whose `ref=` is referrer
//! spam) is answered but not counted.

use crate::http::canonical::canonical_url;
use crate::http::error::ApiError;
use crate::http::header;
use crate::http::images;
use crate::http::params::Fields;
use crate::http::response::{Body, Response};
use crate::http::App;
use crate::sources::Origin;
use crate::store::Hit;
use crate::time::clock::now_ms;
use crate::visits::Sighting;
use tiny_http::Request;

pub(crate) struct Pixel {
    /// The URL to count (and with `--visits` what names its visitor), or why there is none.
    url: Result<(String, Option<Sighting>), ApiError>,
    /// With `--sources`, where the page came from: its tag, or the pixel's `ref=`.
    origin: Option<Origin>,
    bot: bool,
}

impl Pixel {
    pub(crate) fn parse(query: &str, request: &Request, app: &App) -> Pixel {
        let referer = header(request, "Referer");
        let fields = Fields::from_form(query.as_bytes());
        let url =
            fields
                .as_ref()
                .map_err(Clone::clone)
                .and_then(|fields| match (&fields.url, referer) {
                    (None, Some(referer)) => canonical_url(referer, &app.url_rules),
                    _ => fields.require_url(&app.url_rules),
                });
        let bot = app.bots.is_bot(header(request, "User-Agent"));
        let url = url.and_then(|url| app.sites.check(&url).map(|()| url));
        // The pixel's own Referer is the page; the page's referrer comes as `ref=`.
        let origin = match (&fields, &url) {
            (Ok(fields), Ok(url)) => {
                let raw_url = fields.url.as_deref().or(referer).unwrap_or("");
                app.origin(raw_url, fields.referrer.as_deref(), url)
            }
            _ => None,
        };
        let url = url.map(|url| match bot {
            true => (url, None),
            false => (url, app.sighting(request)),
        });
        Pixel { url, origin, bot }
    }

    /// Why a valid pixel load is answered and not counted, if it is not.
    fn ignored(&self) -> Option<&'static str> {
        match (self.bot, &self.origin) {
            (true, _) => Some("bot"),
            (false, Some(Origin::Spam)) => Some("referrer_spam"),
            _ => None,
        }
    }

    /// Whether applying it counts a hit.
    pub(crate) fn counts(&self) -> bool {
        self.url.is_ok() && self.ignored().is_none()
    }

    /// The pixel for a request refused before it was applied.
    pub(crate) fn refused(err: &ApiError) -> Response {
        gif(err.status)
    }

    pub(crate) fn apply(self, app: &App) -> Response {
        if let (Some(reason), true) = (self.ignored(), self.url.is_ok()) {
            app.metrics.hit_ignored(reason);
            return gif(200);
        }
        let source = match self.origin {
            Some(Origin::Counted(source)) => Some(source),
            _ => None,
        };
        let recorded = self.url.and_then(|(url, sighting)| {
            let visitor = app.visitor(sighting.as_ref(), &url)?;
            let timestamp_ms = now_ms();
            let hit = Hit {
                url,
                timestamp_ms,
                visitor,
                source,
            };
            Ok(app.store.record_hit(hit)?)
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
