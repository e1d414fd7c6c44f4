//! `POST /hit`: record one hit, from a form or JSON body and the query string. A host outside
//! `--sites` is refused; a hit `hitme.js` sends (`src=js`) from a bot's browser is answered
//! but not counted.

use crate::clock::now_ms;
use crate::http::error::ApiError;
use crate::http::params::Fields;
use crate::http::response::Response;
use crate::http::App;
use crate::store::Hit;

pub(crate) struct RecordHit {
    pub hit: Hit,
}

/// What a valid `POST /hit` asks: a hit to count, or one to answer and leave uncounted.
pub(crate) enum Posted {
    Hit(RecordHit),
    /// Why it is not counted (a metrics label: `bot`).
    Ignored(&'static str),
}

impl RecordHit {
    /// Body fields (form or JSON) win over query fields.
    pub(crate) fn parse(
        query: Fields,
        body: &[u8],
        body_is_json: bool,
        user_agent: Option<&str>,
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
        if fields.src.as_deref() == Some("js") && app.bots.is_bot(user_agent) {
            return Ok(Posted::Ignored("bot"));
        }
        Ok(Posted::Hit(RecordHit {
            hit: Hit {
                url,
                timestamp_ms,
                visitor: None,
            },
        }))
    }

    /// Records the hit alone; a worker that took several records them together instead.
    pub(crate) fn apply(self, app: &App) -> Result<Response, ApiError> {
        app.store.record_hit(self.hit)?;
        Ok(Response::ok())
    }
}
