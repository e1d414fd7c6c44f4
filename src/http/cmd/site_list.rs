//! `GET /sites?period=P&limit=N&timestamp=TS&metric=M`: the sites (hosts) counted in one
//! bucket, most counted first, each with its count and its number of URLs: what the
//! dashboard's site picker lists. It adds up the bucket's ranking, the one `/top` pages
//! ([`crate::top`]): a read of the bucket at most once per ranking's life, shared with
//! `/top`, and the sum over its URLs once per read; the dashboard asks for it once a minute.

use std::sync::Arc;

use crate::http::cmd::{Command, Placed};
use crate::http::error::ApiError;
use crate::http::params::Fields;
use crate::http::response::Response;
use crate::http::App;
use crate::store::Metric;
use crate::time::clock::now_ms;
use crate::time::Period;
use crate::top::Ranking;

/// Sites listed when not told.
const DEFAULT_SITES_LIMIT: usize = 100;

pub(crate) struct SiteList {
    metric: Metric,
    period: Period,
    start: i64,
    limit: usize,
    /// The bucket's ranking, when a fresh one was kept as the command was placed.
    ranking: Option<Arc<Ranking>>,
}

impl SiteList {
    pub(crate) fn parse(fields: Fields, app: &App) -> Result<SiteList, ApiError> {
        let period = fields.period_or_all()?;
        let timestamp = fields.timestamp_or(now_ms())?;
        Ok(SiteList {
            metric: fields.metric(app.visits.is_some())?,
            period,
            start: app.calendar.start(timestamp, period),
            limit: fields.limit_or(DEFAULT_SITES_LIMIT)?,
            ranking: None,
        })
    }

    /// On the worker when the bucket's ranking is fresh, else on the read pool (which reads
    /// it).
    pub(crate) fn place(self, app: &App) -> Placed {
        match app.rankings.fresh(self.period, self.start, self.metric) {
            Some(ranking) => Placed::Worker(Command::SiteList(SiteList {
                ranking: Some(ranking),
                ..self
            })),
            None => Placed::Reads(Command::SiteList(self)),
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
        let sites = ranking.sites();
        let mut out = Vec::with_capacity(128 + 64 * self.limit.min(sites.len()));
        out.extend_from_slice(
            format!(r#"{{"status":"OK","period":"{}","start":"#, period.name()).as_bytes(),
        );
        match period {
            Period::All => out.extend_from_slice(b"null"),
            _ => out.extend_from_slice(itoa::Buffer::new().format(start).as_bytes()),
        }
        let (total, count) = (ranking.total, sites.len());
        out.extend_from_slice(format!(r#","total":{total},"sites":{count},"top":["#).as_bytes());
        for (i, site) in sites.iter().take(self.limit).enumerate() {
            out.extend_from_slice(if i == 0 {
                b"{\"site\":"
            } else {
                b",{\"site\":"
            });
            serde_json::to_writer(&mut out, &site.site).expect("a string always serialises");
            out.extend_from_slice(
                format!(r#","count":{},"urls":{}}}"#, site.count, site.urls).as_bytes(),
            );
        }
        out.extend_from_slice(b"]");
        if app.visits.is_some() {
            out.extend_from_slice(format!(r#","metric":"{}""#, metric.name()).as_bytes());
        }
        out.push(b'}');
        Ok(Response::json(out))
    }
}
