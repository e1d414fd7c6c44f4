//! URL canonicalisation: the one spelling under which a page is counted, with credentials,
//! the fragment and tracking parameters removed, so that they are never stored or shown.

use percent_encoding::percent_decode;
use url::Url;

use super::error::ApiError;

/// The longest URL accepted, in bytes, both as sent and once canonicalised.
pub const MAX_URL_BYTES: usize = 2048;

/// What canonicalisation removes besides what every URL loses (credentials, the fragment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlRules {
    /// Query parameters removed before counting (tracking tags).
    pub drop_params: Vec<String>,
}

impl UrlRules {
    /// `--drop-query-params`' default: the campaign and click tags of the common trackers.
    pub(crate) const DEFAULT_DROPPED: &'static str =
        "utm_source,utm_medium,utm_campaign,utm_term,utm_content,gclid,fbclid";

    /// Rules from a comma-separated list of parameters to drop; empty keeps them all.
    pub(crate) fn dropping(list: &str) -> UrlRules {
        UrlRules {
            drop_params: list
                .split(',')
                .map(str::trim)
                .filter(|name| !name.is_empty())
                .map(str::to_string)
                .collect(),
        }
    }

    /// The query without the dropped parameters, the others in their order and spelling;
    /// `None` when nothing is left.
    fn filter_query(&self, query: &str) -> Option<String> {
        let kept: Vec<&str> = query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .filter(|pair| {
                let name = pair.split('=').next().unwrap_or("").replace('+', " ");
                let name = percent_decode(name.as_bytes()).decode_utf8_lossy();
                !self.drop_params.iter().any(|dropped| *dropped == name)
            })
            .collect();
        (!kept.is_empty()).then(|| kept.join("&"))
    }
}

impl Default for UrlRules {
    fn default() -> Self {
        UrlRules::dropping(UrlRules::DEFAULT_DROPPED)
    }
}

/// Validates and canonicalises a URL so that spellings of one page count as one, in this
/// order: it must parse as an absolute http or https URL with a host; the scheme and host are
/// lower-cased (an internationalised host becomes punycode), a default port is dropped, an
/// empty path becomes `/`, and what the URL library percent-encodes is encoded; then the
/// credentials (`user:password@`) and the fragment are dropped, and so are the query
/// parameters `rules` names (the others keep their order; an empty query goes).
pub fn canonical_url(raw: &str, rules: &UrlRules) -> Result<String, ApiError> {
    let invalid = |why: &str| {
        ApiError::bad_request(format!(
            "Invalid URL: {why}; send an absolute http or https URL of at most {MAX_URL_BYTES} bytes"
        ))
    };
    if raw.len() > MAX_URL_BYTES {
        return Err(invalid("it is too long"));
    }
    let mut url = Url::parse(raw).map_err(|e| invalid(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("the scheme must be http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("it has no host"));
    }
    // Both succeed for every URL with a host.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.set_fragment(None);
    if let Some(query) = url.query() {
        let kept = match rules.drop_params.is_empty() {
            true => Some(query.to_string()),
            false => rules.filter_query(query),
        };
        url.set_query(kept.as_deref());
    }
    let canonical: String = url.into();
    if canonical.len() > MAX_URL_BYTES {
        return Err(invalid("it is too long once encoded"));
    }
    Ok(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonicalisation() {
        for (raw, want) in [
            ("http://WWW.Olark.com", "http://www.olark.com/"),
            ("http://www.olark.com/", "http://www.olark.com/"),
            ("http://www.olark.com:80/a#frag", "http://www.olark.com/a"),
            ("https://x.org:443/?q=1", "https://x.org/?q=1"),
            ("https://x.org:8443/Path", "https://x.org:8443/Path"),
            ("http://bücher.de/", "http://xn--bcher-kva.de/"),
        ] {
            assert_eq!(
                canonical_url(raw, &UrlRules::default()).unwrap(),
                want,
                "{raw}"
            );
        }
        for bad in [
            "",
            "/relative",
            "www.olark.com",
            "ftp://x.org/",
            "mailto:a@b.c",
            "http://",
            "javascript:alert(1)",
        ] {
            let err = canonical_url(bad, &UrlRules::default()).unwrap_err();
            assert!(
                err.message.starts_with("Invalid URL"),
                "{bad}: {}",
                err.message
            );
        }
        let long = format!("http://x.org/{}", "a".repeat(MAX_URL_BYTES));
        assert_eq!(
            canonical_url(&long, &UrlRules::default())
                .unwrap_err()
                .status,
            400
        );
    }

    #[test]
    fn credentials_never_stay_and_tracking_parameters_go() {
        let rules = UrlRules::default();
        for (raw, want) in [
            ("http://user:secret@host.example/", "http://host.example/"),
            ("https://user@host.example/a", "https://host.example/a"),
            (
                "https://shop.example/p?utm_source=news&id=3",
                "https://shop.example/p?id=3",
            ),
            (
                "https://shop.example/p?b=2&gclid=x&a=1&utm_medium=mail&fbclid=y",
                "https://shop.example/p?b=2&a=1",
            ),
            (
                "https://shop.example/p?utm_campaign=x",
                "https://shop.example/p",
            ),
            ("https://shop.example/p?utm_term", "https://shop.example/p"),
            (
                "https://shop.example/p?utm%5Fcontent=x&q=a+b",
                "https://shop.example/p?q=a+b",
            ),
            (
                "https://shop.example/p?id=3&&#frag",
                "https://shop.example/p?id=3",
            ),
            (
                "https://shop.example/p?UTM_SOURCE=x",
                "https://shop.example/p?UTM_SOURCE=x",
            ),
        ] {
            assert_eq!(canonical_url(raw, &rules).unwrap(), want, "{raw}");
        }
        let keep_all = UrlRules::dropping("");
        assert!(keep_all.drop_params.is_empty());
        assert_eq!(
            canonical_url("https://a.example/?utm_source=x&&id=1", &keep_all).unwrap(),
            "https://a.example/?utm_source=x&&id=1"
        );
        let own = UrlRules::dropping(" ref , session ");
        assert_eq!(own.drop_params, ["ref", "session"]);
        assert_eq!(
            canonical_url("http://a.example/?ref=x&utm_source=y", &own).unwrap(),
            "http://a.example/?utm_source=y"
        );
    }
}
