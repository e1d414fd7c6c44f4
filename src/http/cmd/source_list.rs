//! `GET /sources?period=P&url=URL&site=HOST&limit=N&offset=M&timestamp=TS`, with `--sources`:
//! where one bucket's hits came from, most counted first (ties by name), for every site, one
//! site or one URL. Sources are kept at write time ([`crate::store::sources`]), a hash per
//! bucket of at most `--max-sources` names, so a read is one `HGETALL` of that hash (16 in
//! cluster mode) whatever the number of URLs.

use crate::http::error::ApiError;
use crate::http::params::Fields;
use crate::http::response::Response;
use crate::http::App;
use crate::store::sources::SOURCE_PERIODS;
use crate::store::SourceScope;
use crate::time::clock::now_ms;
use crate::time::Period;

/// Sources listed when not told.
const DEFAULT_SOURCES_LIMIT: usize = 10;

pub(crate) struct SourceList {
    period: Period,
    start: i64,
    /// The canonical URL, if one URL's sources are asked for.
    url: Option<String>,
    /// The host, if one site's are; empty for every site.
    site: String,
    limit: usize,
    offset: usize,
}

impl SourceList {
    pub(crate) fn parse(fields: Fields, app: &App) -> Result<SourceList, ApiError> {
        if app.sources.is_none() {
            return Err(ApiError::bad_request(
                "GET /sources needs HitMe started with --sources; without it no source is counted",
            ));
        }
        let period = fields.period_or_all()?;
        if !SOURCE_PERIODS.contains(&period) {
            return Err(ApiError::bad_request(format!(
                "sources are kept for the all, month, week and day buckets, not per {}; ask for one of those",
                period.name()
            )));
        }
        if fields.metric.as_deref().is_some_and(|m| m != "hits") {
            return Err(ApiError::bad_request(
                "/sources counts hits only: leave metric out, or give metric=hits",
            ));
        }
        let url = match fields.url.is_some() {
            true => Some(fields.require_url(&app.url_rules)?),
            false => None,
        };
        let site = fields.site()?;
        if url.is_some() && !site.is_empty() {
            return Err(ApiError::bad_request(
                "give url (one URL's sources) or site (one site's), not both",
            ));
        }
        let timestamp = fields.timestamp_or(now_ms())?;
        Ok(SourceList {
            period,
            start: app.calendar.start(timestamp, period),
            url,
            site,
            limit: fields.limit_or(DEFAULT_SOURCES_LIMIT)?,
            offset: fields.offset()?,
        })
    }

    pub(crate) fn apply(self, app: &App) -> Result<Response, ApiError> {
        let scope = match (&self.url, self.site.as_str()) {
            (Some(url), _) => SourceScope::Url(url),
            (None, "") => SourceScope::AllSites,
            (None, site) => SourceScope::Site(site),
        };
        let counts = app.store.sources(self.period, self.start, scope)?;
        let mut sources: Vec<(String, i64)> = counts.sources.into_iter().collect();
        sources.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let total = counts.direct + sources.iter().map(|(_, n)| n).sum::<i64>();
        let mut out = Vec::with_capacity(192 + 48 * self.limit.min(sources.len()));
        let string = |out: &mut Vec<u8>, text: Option<&str>| {
            serde_json::to_writer(out, &text).expect("a string always serialises")
        };
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
        out.extend_from_slice(br#","url":"#);
        string(&mut out, self.url.as_deref());
        out.extend_from_slice(br#","site":"#);
        string(
            &mut out,
            Some(self.site.as_str()).filter(|site| !site.is_empty()),
        );
        out.extend_from_slice(
            format!(
                r#","total":{total},"direct":{},"distinct":{},"sources":["#,
                counts.direct,
                sources.len()
            )
            .as_bytes(),
        );
        for (i, (source, count)) in sources
            .iter()
            .skip(self.offset)
            .take(self.limit)
            .enumerate()
        {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(br#"{"source":"#);
            string(&mut out, Some(source));
            out.extend_from_slice(format!(r#","count":{count}}}"#).as_bytes());
        }
        out.extend_from_slice(b"]}");
        Ok(Response::json(out))
    }
}
