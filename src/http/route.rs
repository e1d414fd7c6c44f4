//! Routing: a path becomes a [`Route`]: the endpoint it leads to, its label in metrics and
//! the methods it takes. Each API path is one row of [`API`]; what a method asks of it is
//! decided once, in [`super::parse`].

use crate::assets::{self, Asset};

/// Where a path leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Hit,
    Hits,
    Top,
    Pixel,
    Badge,
    Series,
    /// `GET /sites`
    Sites,
    /// `GET /visitors`, with `--visits`.
    Visitors,
    /// `GET /sources`, with `--sources`.
    Sources,
    Healthz,
    Metrics,
    /// `GET /export`, with `--admin-token`.
    Export,
    Asset(Asset),
    NotFound,
}

/// A path, routed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Route {
    pub endpoint: Endpoint,
    /// The route as a metrics label: the API path itself, `static` or `other`.
    pub label: &'static str,
    /// The methods the route takes, as an `Allow` header says them.
    pub allow: &'static str,
}

/// The API's paths take `OPTIONS` too (CORS preflights); the dashboard's files do not.
const READ_ONLY: &str = "GET, HEAD, OPTIONS";

/// Every API path: the endpoint, and the methods it takes.
const API: [(&str, Endpoint, &str); 12] = [
    ("/hit", Endpoint::Hit, "GET, HEAD, POST, OPTIONS"),
    ("/hits", Endpoint::Hits, READ_ONLY),
    ("/top", Endpoint::Top, READ_ONLY),
    ("/pixel.gif", Endpoint::Pixel, READ_ONLY),
    ("/badge.svg", Endpoint::Badge, READ_ONLY),
    ("/series", Endpoint::Series, READ_ONLY),
    ("/sites", Endpoint::Sites, READ_ONLY),
    ("/visitors", Endpoint::Visitors, READ_ONLY),
    ("/sources", Endpoint::Sources, READ_ONLY),
    ("/healthz", Endpoint::Healthz, READ_ONLY),
    ("/metrics", Endpoint::Metrics, READ_ONLY),
    ("/export", Endpoint::Export, READ_ONLY),
];

/// The methods of `/hit` with `--admin-token`, which adds `DELETE`.
pub(crate) const HIT_WITH_ADMIN: &str = "DELETE, GET, HEAD, POST, OPTIONS";

impl Route {
    pub(super) fn of(path: &str) -> Route {
        if let Some(&(label, endpoint, allow)) = API.iter().find(|(p, _, _)| *p == path) {
            return Route {
                endpoint,
                label,
                allow,
            };
        }
        let (endpoint, label) = match assets::lookup(path) {
            Some(asset) => (Endpoint::Asset(asset), "static"),
            None => (Endpoint::NotFound, "other"),
        };
        Route {
            endpoint,
            label,
            allow: "GET, HEAD",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_lead_to_endpoints_with_their_labels_and_methods() {
        let route = Route::of("/hit");
        assert_eq!(
            (route.endpoint, route.label, route.allow),
            (Endpoint::Hit, "/hit", "GET, HEAD, POST, OPTIONS")
        );
        let route = Route::of("/top");
        assert_eq!(
            (route.endpoint, route.label, route.allow),
            (Endpoint::Top, "/top", "GET, HEAD, OPTIONS")
        );
        let route = Route::of("/app.js");
        assert!(matches!(route.endpoint, Endpoint::Asset(_)));
        assert_eq!((route.label, route.allow), ("static", "GET, HEAD"));
        let route = Route::of("/nope");
        assert_eq!(
            (route.endpoint, route.label, route.allow),
            (Endpoint::NotFound, "other", "GET, HEAD")
        );
        let labels = [
            "/hit", "/hits", "/series", "/healthz", "/metrics", "/", "/x",
        ]
        .map(|path| Route::of(path).label);
        assert_eq!(
            labels,
            ["/hit", "/hits", "/series", "/healthz", "/metrics", "static", "other"]
        );
    }
}
