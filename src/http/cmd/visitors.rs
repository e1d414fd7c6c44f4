//! `GET /visitors?period=P&site=HOST&timestamp=TS`, with `--visits`: a site's visitors in one
//! bucket (every site's, added up, without `site`). A visitor is counted once per site and
//! visit window, on its first hit on any of the site's URLs, in that hit's own round trip;
//! reading it is one `HGET` (every site's: an `HVALS` of the sites counted).

use crate::http::error::ApiError;
use crate::http::params::Fields;
use crate::http::response::Response;
use crate::http::App;
use crate::time::clock::now_ms;
use crate::time::Period;

pub(crate) struct Visitors {
    period: Period,
    start: i64,
    /// The host; empty for every site.
    site: String,
}

impl Visitors {
    pub(crate) fn parse(fields: Fields, app: &App) -> Result<Visitors, ApiError> {
        if app.visits.is_none() {
            return Err(ApiError::bad_request(
                "GET /visitors needs HitMe started with --visits; without it no visitor is counted",
            ));
        }
        let period = fields.period_or_all()?;
        let timestamp = fields.timestamp_or(now_ms())?;
        Ok(Visitors {
            period,
            start: app.calendar.start(timestamp, period),
            site: fields.site()?,
        })
    }

    pub(crate) fn apply(self, app: &App) -> Result<Response, ApiError> {
        let site = Some(self.site.as_str()).filter(|site| !site.is_empty());
        let visitors = app.store.site_visitors(self.period, self.start, site)?;
        let mut out = Vec::with_capacity(128);
        out.extend_from_slice(
            format!(
                r#"{{"status":"OK","period":"{}","start":"#,
                self.period.name()
            )
            .as_bytes(),
        );
        match self.period {
            Period::All => out.extend_from_slice(b"null"),
            _ => out.extend_from_slice(itoa::Buffer::new().format(self.start).as_bytes()),
        }
        out.extend_from_slice(br#","site":"#);
        serde_json::to_writer(&mut out, &site).expect("a string always serialises");
        out.extend_from_slice(format!(r#","visitors":{visitors}}}"#).as_bytes());
        Ok(Response::json(out))
    }
}
