//! `GET /top?period=P&limit=N&offset=M&q=TEXT&site=HOST&timestamp=TS`: the URLs of one bucket
//! ranked by count, filtered (by text, by site) and paged; `total` and `urls` cover every URL
//! that matches. A page of a
//! ranking kept fresh is answered by the worker that took it; one whose ranking must be read
//! (or whose page must be filtered or ordered) waits for the read pool. With `--rankings`,
//! an unfiltered page within the ranking Redis keeps is read from it by the worker, in one
//! round trip; a kept ranking that cannot be trusted is rebuilt on the read pool first.

use std::sync::Arc;

use crate::http::cmd::{Command, Placed};
use crate::http::error::ApiError;
use crate::http::params::Fields;
use crate::http::response::Response;
use crate::http::App;
use crate::store::{KeptPage, Metric};
use crate::time::clock::now_ms;
use crate::time::Period;
use crate::top::{Filter, Ranking};

/// URLs on a `/top` page when not told.
const DEFAULT_TOP_LIMIT: usize = 50;

pub(crate) struct Top {
    metric: Metric,
    period: Period,
    start: i64,
    limit: usize,
    offset: usize,
    filter: Filter,
    /// The ranking to page, when a fresh one was kept as the command was placed.
    ranking: Option<Arc<Ranking>>,
    /// With `--rankings`: the page, read from Redis's kept ranking as the command was placed.
    kept: Option<KeptPage>,
}

impl Top {
    pub(crate) fn parse(fields: Fields, app: &App) -> Result<Top, ApiError> {
        let period = fields.period_or_all()?;
        let limit = fields.limit_or(DEFAULT_TOP_LIMIT)?;
        let offset = fields.offset()?;
        let filter = Filter {
            q: fields.filter()?.to_string(),
            site: fields.site()?,
        };
        let timestamp = fields.timestamp_or(now_ms())?;
        Ok(Top {
            metric: fields.metric(app.visits.is_some())?,
            period,
            start: app.calendar.start(timestamp, period),
            limit,
            offset,
            filter,
            ranking: None,
            kept: None,
        })
    }

    /// Where the page is answered. With `--rankings`, a page Redis's kept ranking holds is
    /// read from it now (one round trip), so that the worker answers it; without, or when the
    /// kept one cannot be trusted, a page of a ranking kept fresh in memory is answered by
    /// the worker too, and any other waits for the read pool.
    pub(crate) fn place(self, app: &App) -> Placed {
        if self.within_kept(app) {
            let page = app
                .store
                .kept_page(self.period, self.start, self.offset, self.limit);
            if let Ok(Some(page)) = page {
                let kept = Some(page);
                return Placed::Worker(Command::Top(Top { kept, ..self }));
            }
        }
        match self.fresh_ranking(app) {
            Some(ranking) => Placed::Worker(Command::Top(self.paging(ranking))),
            None => Placed::Reads(Command::Top(self)),
        }
    }

    /// Whether `--rankings` keeps this page: unfiltered hits within the first K.
    fn within_kept(&self, app: &App) -> bool {
        app.kept_rankings.is_some_and(|kept| {
            self.metric == Metric::Hits
                && self.filter.is_empty()
                && self.offset.saturating_add(self.limit) <= kept.size
                && kept.keeps(&app.calendar, self.period, self.start, now_ms())
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
        if let Some(page) = &self.kept {
            return Ok(self.render(app, page.total, page.urls, &page.top, "kept"));
        }
        if self.within_kept(app) && app.store.rebuild_ranking(self.period, self.start)? {
            let page = app
                .store
                .kept_page(self.period, self.start, self.offset, self.limit)?;
            if let Some(page) = page {
                return Ok(self.render(app, page.total, page.urls, &page.top, "kept"));
            }
        }
        let (period, start, metric) = (self.period, self.start, self.metric);
        let ranking = match &self.ranking {
            Some(ranking) => ranking.clone(),
            None => app.rankings.get(period, start, metric, || {
                Ranking::read(app.store.as_ref(), period, start, metric)
            })?,
        };
        let page = ranking.page(&self.filter, self.offset, self.limit);
        Ok(self.render(app, page.total, page.urls, page.top, "scanned"))
    }

    /// The answer: the bucket, its figures and the page. With `--rankings` it says where the
    /// page came from (`"ranking":"kept"` or `"scanned"`); without, the original's bytes.
    fn render<'p>(
        &self,
        app: &App,
        total: i64,
        urls: usize,
        top: impl IntoIterator<Item = &'p (String, i64)>,
        from: &str,
    ) -> Response {
        let (period, start, metric) = (self.period, self.start, self.metric);
        let mut out = Vec::with_capacity(128 + 64 * self.limit.min(1000));
        out.extend_from_slice(
            format!(r#"{{"status":"OK","period":"{}","start":"#, period.name()).as_bytes(),
        );
        match period {
            Period::All => out.extend_from_slice(b"null"),
            _ => out.extend_from_slice(itoa::Buffer::new().format(start).as_bytes()),
        }
        out.extend_from_slice(format!(r#","total":{total},"urls":{urls},"top":["#).as_bytes());
        for (i, (url, count)) in top.into_iter().enumerate() {
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
        if app.kept_rankings.is_some() {
            out.extend_from_slice(format!(r#","ranking":"{from}""#).as_bytes());
        }
        out.push(b'}');
        Response::json(out)
    }
}
