//! `GET /hit?url=URL&timestamp=TS`: one URL's six counts.

use crate::http::error::ApiError;
use crate::http::params::Fields;
use crate::http::response::Response;
use crate::http::App;
use crate::store::Metric;
use crate::time::clock::now_ms;

pub(crate) struct UrlCounts {
    url: String,
    timestamp_ms: i64,
}

/// Writes `,"<period>":N` for each period of `counts`.
fn write_counts(out: &mut Vec<u8>, counts: crate::store::UrlCounts) {
    for (period, count) in counts {
        out.extend_from_slice(format!(r#","{}":{count}"#, period.json_name()).as_bytes());
    }
}

impl UrlCounts {
    pub(crate) fn parse(fields: Fields, app: &App) -> Result<UrlCounts, ApiError> {
        Ok(UrlCounts {
            url: fields.require_url(&app.url_rules)?,
            timestamp_ms: fields.timestamp_or(now_ms())?,
        })
    }

    pub(crate) fn apply(self, app: &App) -> Result<Response, ApiError> {
        let counts = app
            .store
            .url_counts(&self.url, self.timestamp_ms, Metric::Hits)?;
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(br#"{"status":"OK","url":"#);
        serde_json::to_writer(&mut out, &self.url).expect("a string always serialises");
        write_counts(&mut out, counts);
        // With --visits, the visits beside the hits; without, the original's bytes.
        if app.visits.is_some() {
            let visits = app
                .store
                .url_counts(&self.url, self.timestamp_ms, Metric::Visits)?;
            let mut object = Vec::with_capacity(160);
            write_counts(&mut object, visits);
            out.extend_from_slice(br#","visits":{"#);
            out.extend_from_slice(&object[1..]);
            out.push(b'}');
        }
        out.push(b'}');
        Ok(Response::json(out))
    }
}
