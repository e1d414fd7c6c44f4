//! `GET /top?period=P&limit=N&offset=M&q=TEXT&timestamp=TS`: the URLs of one bucket ranked
//! by count, filtered and paged; `total` and `urls` cover every URL that matches. A page of a
//! ranking kept fresh is answered by the worker that took it; one whose ranking must be read
//! (or whose page must be filtered or ordered) waits for the read pool.

use std::sync::Arc;

use crate::http::error::ApiError;
use crate::http::params::Fields;
use crate::http::response::Response;
use crate::http::App;
use crate::store::Metric;
use crate::time::clock::now_ms;
use crate::time::Period;
use crate::top::Ranking;

/// URLs on a `/top` page when not told.
const DEFAULT_TOP_LIMIT: usize = 50;

pub(crate) struct Top {
    metric: Metric,
    period: Period,
    start: i64,
    limit: usize,
    offset: usize,
    filter: String,
    /// The ranking to page, when a fresh one was kept as the command was placed.
    ranking: Option<Arc<Ranking>>,
}

impl Top {
    pub(crate) fn parse(fields: Fields, app: &App) -> Result<Top, ApiError> {
        let period = fields.period_or_all()?;
        let limit = fields.limit_or(DEFAULT_TOP_LIMIT)?;
        let offset = fields.offset()?;
        let filter = fields.filter()?.to_string();
        let timestamp = fields.timestamp_or(now_ms())?;
        Ok(Top {
            metric: fields.metric(app.visits.is_some())?,
            period,
            start: app.calendar.start(timestamp, period),
            limit,
            offset,
            filter,
            ranking: None,
        })
    }

    /// The bucket's ranking if one is kept fresh and the page costs next to nothing; `None`
    /// when answering means reading or ordering.
    pub(crate) fn fresh_ranking(&self, app: &App) -> Option<Arc<Ranking>> {
        app.rankings
            .fresh(self.period, self.start, self.metric)
            .filter(|r| r.page_is_cheap(&self.filter, self.offset, self.limit))
    }

    /// This page, answered from `ranking` (a fresh one) without reading.
    pub(crate) fn paging(self, ranking: Arc<Ranking>) -> Top {
        Top {
            ranking: Some(ranking),
            ..self
        }
    }

    pub(crate) fn apply(self, app: &App) -> Result<Response, ApiError> {
        let (period, start, metric) = (self.period, self.start, self.metric);
        let ranking = match self.ranking {
            Some(ranking) => ranking,
            None => app.rankings.get(period, start, metric, || {
                Ranking::read(app.store.as_ref(), period, start, metric)
            })?,
        };
        let page = ranking.page(&self.filter, self.offset, self.limit);
        let mut out = Vec::with_capacity(128 + 64 * page.top.len());
        out.extend_from_slice(
            format!(r#"{{"status":"OK","period":"{}","start":"#, period.name()).as_bytes(),
        );
        match period {
            Period::All => out.extend_from_slice(b"null"),
            _ => out.extend_from_slice(itoa::Buffer::new().format(start).as_bytes()),
        }
        out.extend_from_slice(
            format!(r#","total":{},"urls":{},"top":["#, page.total, page.urls).as_bytes(),
        );
        for (i, (url, count)) in page.top.iter().enumerate() {
            out.extend_from_slice(if i == 0 { b"{\"url\":" } else { b",{\"url\":" });
            serde_json::to_writer(&mut out, url).expect("a string always serialises");
            out.extend_from_slice(format!(r#","count":{count}}}"#).as_bytes());
        }
        out.extend_from_slice(b"]");
        // With --visits, which of the two was ranked (the dashboard learns from it that
        // there are visits); without, the original's bytes.
        if app.visits.is_some() {
            out.extend_from_slice(format!(r#","metric":"{}""#, metric.name()).as_bytes());
        }
        out.push(b'}');
        Ok(Response::json(out))
    }
}
