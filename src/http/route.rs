//! Routing: a path becomes a [`Route`] once, and a route and a method an [`Action`].

use tiny_http::Method;

use super::error::ApiError;
use crate::assets::{self, Asset};

/// Where a path leads.
#[derive(Debug, Clone, Copy)]
pub enum Route {
    Hit,
    Hits,
    Top,
    Pixel,
    Badge,
    Series,
    Healthz,
    Metrics,
    Asset(Asset),
    NotFound,
}

/// What a request asks for: a route and a method it accepts.
#[derive(Debug, Clone, Copy)]
pub enum Action {
    /// `POST /hit`, the one action with a body.
    RecordHit,
    /// `GET /pixel.gif`: record a hit, answer an image.
    Pixel,
    /// `GET /badge.svg`: a URL's count as an image (recording a hit first with `count=1`).
    Badge,
    /// `OPTIONS` on an API path: a CORS preflight.
    Preflight(&'static str),
    Lookup(Lookup),
}

/// The actions that only read.
#[derive(Debug, Clone, Copy)]
pub enum Lookup {
    Hit,
    Hits,
    Top,
    Series,
    Health,
    Metrics,
    Asset(Asset),
}

impl Route {
    pub fn of(path: &str) -> Route {
        match path {
            "/hit" => Route::Hit,
            "/hits" => Route::Hits,
            "/top" => Route::Top,
            "/pixel.gif" => Route::Pixel,
            "/badge.svg" => Route::Badge,
            "/series" => Route::Series,
            "/healthz" => Route::Healthz,
            "/metrics" => Route::Metrics,
            _ => assets::lookup(path).map_or(Route::NotFound, Route::Asset),
        }
    }

    /// The route as a metrics label.
    pub fn label(&self) -> &'static str {
        match self {
            Route::Hit => "/hit",
            Route::Hits => "/hits",
            Route::Top => "/top",
            Route::Pixel => "/pixel.gif",
            Route::Badge => "/badge.svg",
            Route::Series => "/series",
            Route::Healthz => "/healthz",
            Route::Metrics => "/metrics",
            Route::Asset(_) => "static",
            Route::NotFound => "other",
        }
    }

    /// The methods the route takes, as an `Allow` header says them: the API's paths also
    /// take `OPTIONS` (CORS preflights); the dashboard's files do not.
    pub fn allow(&self) -> &'static str {
        match self {
            Route::Hit => "GET, HEAD, POST, OPTIONS",
            Route::Asset(_) | Route::NotFound => "GET, HEAD",
            _ => "GET, HEAD, OPTIONS",
        }
    }

    /// What `method` asks of this route; 404 for an unknown `path`, 405 for a method the
    /// route does not take.
    pub fn action(&self, method: &Method, path: &str) -> Result<Action, ApiError> {
        let is_get = matches!(method, Method::Get | Method::Head);
        match self {
            Route::NotFound => Err(ApiError::not_found(path)),
            Route::Hit if *method == Method::Post => Ok(Action::RecordHit),
            Route::Asset(asset) if is_get => Ok(Action::Lookup(Lookup::Asset(*asset))),
            Route::Asset(_) => Err(ApiError::method_not_allowed(method.as_str(), self.allow())),
            _ if *method == Method::Options => Ok(Action::Preflight(self.allow())),
            _ if !is_get => Err(ApiError::method_not_allowed(method.as_str(), self.allow())),
            Route::Hit => Ok(Action::Lookup(Lookup::Hit)),
            Route::Pixel => Ok(Action::Pixel),
            Route::Badge => Ok(Action::Badge),
            Route::Hits => Ok(Action::Lookup(Lookup::Hits)),
            Route::Top => Ok(Action::Lookup(Lookup::Top)),
            Route::Series => Ok(Action::Lookup(Lookup::Series)),
            Route::Healthz => Ok(Action::Lookup(Lookup::Health)),
            Route::Metrics => Ok(Action::Lookup(Lookup::Metrics)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(method: Method, path: &str) -> Result<Action, ApiError> {
        Route::of(path).action(&method, path)
    }

    #[test]
    fn paths_and_methods_lead_to_actions() {
        assert!(matches!(
            action(Method::Post, "/hit"),
            Ok(Action::RecordHit)
        ));
        let read = |method, path| match action(method, path) {
            Ok(Action::Lookup(read)) => Some(read),
            _ => None,
        };
        assert!(matches!(read(Method::Get, "/hit"), Some(Lookup::Hit)));
        assert!(matches!(read(Method::Head, "/hit"), Some(Lookup::Hit)));
        assert!(matches!(read(Method::Get, "/hits"), Some(Lookup::Hits)));
        assert!(matches!(read(Method::Get, "/top"), Some(Lookup::Top)));
        assert!(matches!(read(Method::Get, "/series"), Some(Lookup::Series)));
        assert!(matches!(
            read(Method::Get, "/healthz"),
            Some(Lookup::Health)
        ));
        assert!(matches!(
            read(Method::Get, "/metrics"),
            Some(Lookup::Metrics)
        ));
        assert!(matches!(read(Method::Get, "/"), Some(Lookup::Asset(_))));
        assert!(matches!(
            read(Method::Head, "/app.js"),
            Some(Lookup::Asset(_))
        ));
    }

    #[test]
    fn wrong_methods_get_405_with_allow_and_unknown_paths_404() {
        let err = action(Method::Delete, "/hit").unwrap_err();
        assert_eq!(
            (err.status, err.allow),
            (405, Some("GET, HEAD, POST, OPTIONS"))
        );
        let err = action(Method::Post, "/hits").unwrap_err();
        assert_eq!((err.status, err.allow), (405, Some("GET, HEAD, OPTIONS")));
        let err = action(Method::Options, "/app.js").unwrap_err();
        assert_eq!((err.status, err.allow), (405, Some("GET, HEAD")));
        for path in [
            "/hit",
            "/hits",
            "/top",
            "/series",
            "/pixel.gif",
            "/badge.svg",
        ] {
            assert!(
                matches!(action(Method::Options, path), Ok(Action::Preflight(_))),
                "{path}"
            );
        }
        assert!(matches!(
            action(Method::Get, "/pixel.gif"),
            Ok(Action::Pixel)
        ));
        assert!(matches!(
            action(Method::Get, "/badge.svg"),
            Ok(Action::Badge)
        ));
        for method in [Method::Get, Method::Post] {
            let err = action(method, "/nope").unwrap_err();
            assert_eq!(err.status, 404);
            assert!(err.message.contains("/nope"), "{}", err.message);
        }
    }

    #[test]
    fn labels_are_the_routes() {
        let labels = [
            "/hit", "/hits", "/series", "/healthz", "/metrics", "/", "/x",
        ]
        .map(|path| Route::of(path).label());
        assert_eq!(
            labels,
            ["/hit", "/hits", "/series", "/healthz", "/metrics", "static", "other"]
        );
    }
}
