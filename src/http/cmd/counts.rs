//! `GET /hit?url=URL&timestamp=TS`: one URL's six counts.

use crate::clock::now_ms;
use crate::http::error::ApiError;
use crate::http::params::Fields;
use crate::http::response::Response;
use crate::http::App;

pub(crate) struct Counts {
    url: String,
    timestamp_ms: i64,
}

impl Counts {
    pub(crate) fn parse(fields: Fields, app: &App) -> Result<Counts, ApiError> {
        Ok(Counts {
            url: fields.require_url(&app.url_rules)?,
            timestamp_ms: fields.timestamp_or(now_ms())?,
        })
    }

    pub(crate) fn apply(self, app: &App) -> Result<Response, ApiError> {
        let counts = app.store.url_counts(&self.url, self.timestamp_ms)?;
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(br#"{"status":"OK","url":"#);
        serde_json::to_writer(&mut out, &self.url).expect("a string always serialises");
        for (period, count) in counts {
            out.extend_from_slice(format!(r#","{}":{count}"#, period.json_name()).as_bytes());
        }
        out.push(b'}');
        Ok(Response::json(out))
    }
}
