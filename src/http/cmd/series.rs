//! `GET /series?url=URL&period=P&count=N&timestamp=TS`: one URL's counts in the last N buckets
//! of a period, oldest first, with the time zone whose calendar cut them.

use crate::http::error::ApiError;
use crate::http::params::Fields;
use crate::http::response::Response;
use crate::http::App;
use crate::store::Metric;
use crate::time::clock::now_ms;
use crate::time::Period;

pub(crate) struct Series {
    metric: Metric,
    url: String,
    period: Period,
    count: usize,
    timestamp_ms: i64,
}

impl Series {
    pub(crate) fn parse(fields: Fields, app: &App) -> Result<Series, ApiError> {
        let url = fields.require_url(&app.url_rules)?;
        let period = fields.require_period()?;
        Ok(Series {
            metric: fields.metric(app.visits.is_some())?,
            url,
            period,
            count: fields.count_or(period.default_series_len())?,
            timestamp_ms: fields.timestamp_or(now_ms())?,
        })
    }

    pub(crate) fn apply(self, app: &App) -> Result<Response, ApiError> {
        let starts = app
            .calendar
            .series(self.timestamp_ms, self.period, self.count);
        let counts = app
            .store
            .series(&self.url, self.period, &starts, self.metric)?;
        let mut out = Vec::with_capacity(64 + 40 * starts.len());
        out.extend_from_slice(br#"{"status":"OK","url":"#);
        serde_json::to_writer(&mut out, &self.url).expect("a string always serialises");
        out.extend_from_slice(
            format!(r#","period":"{}","time_zone":"#, self.period.name()).as_bytes(),
        );
        serde_json::to_writer(&mut out, app.calendar.zone_name())
            .expect("a string always serialises");
        out.extend_from_slice(br#","buckets":["#);
        for (i, (start, count)) in starts.iter().zip(counts).enumerate() {
            let comma = if i == 0 { "" } else { "," };
            out.extend_from_slice(
                format!(r#"{comma}{{"start":{start},"count":{count}}}"#).as_bytes(),
            );
        }
        out.extend_from_slice(b"]}");
        Ok(Response::json(out))
    }
}
