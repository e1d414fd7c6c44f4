//! `POST /hit`: record one hit, from a form or JSON body and the query string. A host outside
//! `--sites` is refused; a hit `hitme.js` sends (`src=js`) from a bot's browser, or with
//! `--sources` one whose referrer is spam, is answered but not counted. Hits a worker takes together are applied together ([`RecordHit::apply_all`]),
//! in one round trip.

use tiny_http::Request;

use crate::http::error::ApiError;
use crate::http::header;
use crate::http::params::Fields;
use crate::http::response::Response;
use crate::http::App;
use crate::sources::Origin;
use crate::store::Hit;
use crate::time::clock::now_ms;
use crate::visits::Sighting;

pub(crate) struct RecordHit {
    /// The hit, its visitor not yet named.
    hit: Hit,
    /// With `--visits`, what names its visitor when it is applied.
    sighting: Option<Sighting>,
}

/// What a valid `POST /hit` asks: a hit to count, or one to answer and leave uncounted.
pub(crate) enum Posted {
    Hit(RecordHit),
    /// Why it is not counted (a metrics label: `bot`, `referrer_spam`).
    Ignored(&'static str),
}

impl RecordHit {
    /// Body fields (form or JSON) win over query fields.
    pub(crate) fn parse(
        query: Fields,
        body: &[u8],
        body_is_json: bool,
        request: &Request,
        app: &App,
    ) -> Result<Posted, ApiError> {
        let fields = if body.is_empty() {
            query
        } else if body_is_json {
            Fields::from_json(body)?.or(query)
        } else {
            Fields::from_form(body)?.or(query)
        };
        let url = fields.require_url(&app.url_rules)?;
        let timestamp_ms = fields.timestamp_or(now_ms())?;
        app.sites.check(&url)?;
        if fields.src.as_deref() == Some("js") && app.bots.is_bot(header(request, "User-Agent")) {
            return Ok(Posted::Ignored("bot"));
        }
        let raw_url = fields.url.as_deref().unwrap_or("");
        let source = match app.origin(raw_url, fields.referrer.as_deref(), &url) {
            None => None,
            Some(Origin::Spam) => return Ok(Posted::Ignored("referrer_spam")),
            Some(Origin::Counted(source)) => Some(source),
        };
        Ok(Posted::Hit(RecordHit {
            hit: Hit {
                url,
                timestamp_ms,
                visitor: None,
                source,
            },
            sighting: app.sighting(request),
        }))
    }

    /// Records the hit alone.
    pub(crate) fn apply(self, app: &App) -> Result<Response, ApiError> {
        app.store.record_hit(self.named(app)?)?;
        Ok(Response::ok())
    }

    /// Records hits taken together, in one round trip; one answer per hit, in order.
    pub(crate) fn apply_all(app: &App, hits: Vec<RecordHit>) -> Vec<Response> {
        app.metrics.hits_batched(hits.len());
        let mut answers: Vec<Option<Response>> = Vec::with_capacity(hits.len());
        let mut named = Vec::with_capacity(hits.len());
        for hit in hits {
            match hit.named(app) {
                Ok(hit) => {
                    named.push(hit);
                    answers.push(None);
                }
                Err(err) => answers.push(Some(Response::error(&err))),
            }
        }
        let recorded = match named.is_empty() {
            true => Vec::new(),
            false => app.store.record_hits(named),
        };
        let mut recorded = recorded.into_iter();
        answers
            .into_iter()
            .map(|answer| {
                answer.unwrap_or_else(|| match recorded.next() {
                    Some(Err(err)) => Response::error(&err.into()),
                    _ => Response::ok(),
                })
            })
            .collect()
    }

    /// The hit with its visitor named (with `--visits`; this may read the day's salt).
    fn named(self, app: &App) -> Result<Hit, ApiError> {
        let mut hit = self.hit;
        hit.visitor = app.visitor(self.sighting.as_ref(), &hit.url)?;
        Ok(hit)
    }
}
