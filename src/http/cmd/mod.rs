//! Commands: what a request asks for, parsed once into exactly its checked parameters, then
//! applied. One module per endpoint, each holding its command's struct, its parse and its
//! apply; [`super::parse`] picks the module from the path and the method.

mod admin;
mod all_url_counts;
mod badge;
mod pixel;
mod record_hit;
mod series;
mod service;
mod site_list;
mod source_list;
mod top;
mod url_counts;
mod visitors;

pub(crate) use self::admin::{DeleteUrl, Export};
pub(crate) use self::all_url_counts::AllUrlCounts;
pub(crate) use self::badge::Badge;
pub(crate) use self::pixel::Pixel;
pub(crate) use self::record_hit::{Posted, RecordHit};
pub(crate) use self::series::Series;
pub(crate) use self::site_list::SiteList;
pub(crate) use self::source_list::SourceList;
pub(crate) use self::top::Top;
pub(crate) use self::url_counts::UrlCounts;
pub(crate) use self::visitors::Visitors;

use super::error::ApiError;
use super::response::Response;
use super::App;
use crate::assets::Asset;

/// A request, parsed.
pub(crate) enum Command {
    /// `POST /hit`
    RecordHit(RecordHit),
    /// A `POST /hit` answered but not counted, and why (a metrics label).
    Ignored(&'static str),
    /// `GET /hit`
    UrlCounts(UrlCounts),
    /// `GET /hits`
    AllUrlCounts(AllUrlCounts),
    /// `GET /top`
    Top(Top),
    /// `GET /series`
    Series(Series),
    /// `GET /sites`
    SiteList(SiteList),
    /// `GET /visitors`
    Visitors(Visitors),
    /// `GET /sources`
    SourceList(SourceList),
    /// `GET /pixel.gif`
    Pixel(Pixel),
    /// `GET /badge.svg`
    Badge(Badge),
    /// `OPTIONS` on an API path (a CORS preflight), with the methods the path takes.
    Preflight(&'static str),
    /// `GET /healthz`
    Health,
    /// `GET /metrics`
    Metrics,
    /// A dashboard file.
    Asset(Asset),
    /// `DELETE /hit`, with the admin token.
    DeleteUrl(DeleteUrl),
    /// `GET /export`, with the admin token.
    Export(Export),
}

/// A command and where it is applied.
pub(crate) enum Placed {
    /// By the worker that took it: it costs at most a round trip to Redis.
    Worker(Command),
    /// On the read pool: it scans buckets, or writes an answer as long as its client takes.
    Reads(Command),
}

impl Command {
    /// Where this command is applied. A `/top` page is placed by [`Top::place`].
    pub(crate) fn place(self, app: &App) -> Placed {
        match self {
            Command::AllUrlCounts(_) | Command::DeleteUrl(_) | Command::Export(_) => {
                Placed::Reads(self)
            }
            Command::Top(top) => top.place(app),
            Command::SiteList(list) => list.place(app),
            _ => Placed::Worker(self),
        }
    }

    /// Whether applying it counts a hit: what `--rate-limit` limits.
    pub(crate) fn counts(&self) -> bool {
        match self {
            Command::RecordHit(_) => true,
            Command::Pixel(pixel) => pixel.counts(),
            Command::Badge(badge) => badge.counts(),
            _ => false,
        }
    }

    /// The answer when it is refused before being applied: an image for the pixel and the
    /// badge, so that no page shows a broken one; JSON otherwise.
    pub(crate) fn refused(&self, err: &ApiError) -> Response {
        match self {
            Command::Pixel(_) => Pixel::refused(err),
            Command::Badge(_) => Badge::refused(err),
            _ => Response::error(err),
        }
    }

    pub(crate) fn apply(self, app: &App) -> Response {
        let applied = match self {
            Command::RecordHit(cmd) => cmd.apply(app),
            Command::Ignored(reason) => {
                app.metrics.hit_ignored(reason);
                Ok(Response::ok())
            }
            Command::UrlCounts(cmd) => cmd.apply(app),
            Command::AllUrlCounts(cmd) => cmd.apply(app),
            Command::Top(cmd) => cmd.apply(app),
            Command::Series(cmd) => cmd.apply(app),
            Command::SiteList(cmd) => cmd.apply(app),
            Command::Visitors(cmd) => cmd.apply(app),
            Command::SourceList(cmd) => cmd.apply(app),
            Command::Pixel(cmd) => Ok(cmd.apply(app)),
            Command::Badge(cmd) => Ok(cmd.apply(app)),
            Command::Preflight(allow) => Ok(Response::no_content(allow)),
            Command::Health => service::health(app),
            Command::Metrics => Ok(service::metrics(app)),
            Command::Asset(asset) => Ok(service::asset(asset)),
            Command::DeleteUrl(cmd) => cmd.apply(app),
            Command::Export(cmd) => cmd.apply(app),
        };
        applied.unwrap_or_else(|err| Response::error(&err))
    }
}
