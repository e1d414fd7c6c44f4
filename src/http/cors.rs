//! CORS: which origins' pages may read HitMe's answers (`--cors-origins`), and the headers
//! that tell a browser so.

use tiny_http::Header;

/// Origins allowed to read the API from their pages.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) enum Cors {
    /// No CORS headers at all (the default): pages can still count hits (a form `POST` or an
    /// image needs none), but not read answers.
    #[default]
    Off,
    /// Every origin (`*`).
    Any,
    /// These origins (`scheme://host[:port]`, lower-case).
    Listed(Vec<String>),
}

impl Cors {
    /// Parses `--cors-origins`: empty, `*`, or a comma-separated list of origins.
    pub(crate) fn parse(list: &str) -> Result<Cors, String> {
        let list = list.trim();
        if list.is_empty() {
            return Ok(Cors::Off);
        }
        if list == "*" {
            return Ok(Cors::Any);
        }
        let origins = list
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(|origin| {
                let url = url::Url::parse(origin)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
                    .filter(|u| u.path() == "/" && u.query().is_none() && u.username().is_empty())
                    .ok_or_else(|| {
                        format!("{origin:?} is not an origin; give scheme://host[:port], e.g. https://www.example.com, or * for any")
                    })?;
                Ok(url.origin().ascii_serialization())
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Cors::Listed(origins))
    }

    /// The `Access-Control-Allow-Origin` header for a request from `origin`, if it is allowed.
    pub(crate) fn allow(&self, origin: Option<&str>) -> Option<Header> {
        let origin = origin?;
        let value = match self {
            Cors::Off => return None,
            Cors::Any => "*",
            Cors::Listed(origins) => origins
                .iter()
                .find(|o| o.eq_ignore_ascii_case(origin))
                .map(String::as_str)?,
        };
        Header::from_bytes(&b"Access-Control-Allow-Origin"[..], value.as_bytes()).ok()
    }
}

/// The headers that go with an allowed origin's `Access-Control-Allow-Origin`: caches must
/// keep answers per origin.
pub(crate) fn vary() -> Header {
    Header::from_bytes(&b"Vary"[..], &b"Origin"[..]).expect("a valid header")
}

/// What an allowed preflight (`OPTIONS`) is told: the methods and header a page may use, and
/// for how long the browser may remember it.
pub(crate) fn preflight() -> [Header; 3] {
    [
        ("Access-Control-Allow-Methods", "GET, POST, OPTIONS"),
        ("Access-Control-Allow-Headers", "Content-Type"),
        ("Access-Control-Max-Age", "86400"),
    ]
    .map(|(name, value)| {
        Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("a valid header")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(cors: &Cors, origin: &str) -> Option<String> {
        cors.allow(Some(origin)).map(|h| h.value.to_string())
    }

    #[test]
    fn only_listed_origins_are_allowed() {
        let cors = Cors::parse("https://www.example.com, http://127.0.0.1:8000/").unwrap();
        assert_eq!(
            allowed(&cors, "https://www.example.com").as_deref(),
            Some("https://www.example.com")
        );
        assert_eq!(
            allowed(&cors, "http://127.0.0.1:8000").as_deref(),
            Some("http://127.0.0.1:8000")
        );
        assert_eq!(allowed(&cors, "https://evil.example"), None);
        assert_eq!(allowed(&cors, "http://www.example.com"), None);
        assert!(cors.allow(None).is_none());
    }

    #[test]
    fn any_off_and_bad_lists() {
        assert_eq!(
            allowed(&Cors::parse("*").unwrap(), "https://x.example").as_deref(),
            Some("*")
        );
        assert_eq!(Cors::parse(" ").unwrap(), Cors::Off);
        assert_eq!(allowed(&Cors::Off, "https://x.example"), None);
        for bad in [
            "www.example.com",
            "https://x.example/path",
            "ftp://x.example",
            "*,https://a.b",
        ] {
            assert!(Cors::parse(bad).is_err(), "{bad}");
        }
    }
}
