//! `--sources`: where a hit came from. A hit's source is, in this order, the page URL's
//! `utm_source`, `source` or `ref` tag (read before the URL is canonicalised), else the host
//! of its referrer (lower case, without `www.`; an `android-app://` referrer keeps its
//! package; search engines and social sites under one name each, from [`NAMED`]), else none:
//! the hit is direct. A referrer on the page's own host, on a host of `--sites` or on this
//! machine is no source either, so moving between a site's pages counts as direct. Only that
//! name is kept: no path, no query, nothing of the visitor.
//!
//! A referrer on the spam list (a host or any parent domain of it) marks the hit as spam: it
//! is answered as usual and not counted. The list is matomo-org/referrer-spam-list, vendored
//! in `vendor/referrer-spam-list` (public domain), plus `--referrer-spam-file`.

use std::collections::HashSet;
use std::path::Path;

use percent_encoding::percent_decode;
use url::Url;

use crate::store::Source;

/// The vendored referrer spam list: one host per line.
const SPAM_LIST: &str = include_str!("../vendor/referrer-spam-list/spammers.txt");

/// The longest source name kept, in characters: a tag longer than this is cut.
pub(crate) const MAX_SOURCE_CHARS: usize = 100;

/// The page URL parameters that name a source, the first present winning.
const TAGS: [&str; 3] = ["utm_source", "source", "ref"];

/// Hosts shown under one name: an exact host or any subdomain of it. Google and Yandex,
/// which have a domain per country, are matched by [`search_engine_of_country`].
const NAMED: &[(&str, &str)] = &[
    ("bing.com", "Bing"),
    ("duckduckgo.com", "DuckDuckGo"),
    ("search.yahoo.com", "Yahoo"),
    ("ecosia.org", "Ecosia"),
    ("baidu.com", "Baidu"),
    ("search.brave.com", "Brave Search"),
    ("news.ycombinator.com", "Hacker News"),
    ("reddit.com", "Reddit"),
    ("t.co", "Twitter"),
    ("twitter.com", "Twitter"),
    ("x.com", "Twitter"),
    ("facebook.com", "Facebook"),
    ("fb.me", "Facebook"),
    ("instagram.com", "Instagram"),
    ("linkedin.com", "LinkedIn"),
    ("lnkd.in", "LinkedIn"),
    ("youtube.com", "YouTube"),
    ("mail.google.com", "Gmail"),
    ("com.google.android.gm", "Gmail"),
    ("com.google.android.googlequicksearchbox", "Google"),
];

/// What a hit's request says of where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Counted, from this source (or direct).
    Counted(Source),
    /// Its referrer is on the spam list: answered, not counted.
    Spam,
}

/// Which referrers are spam, built once from the flags.
#[derive(Debug, Clone)]
pub(crate) struct Sources {
    spam: HashSet<String>,
}

impl Sources {
    /// The vendored spam list, plus the hosts of `extra` (one per line, `#` comments).
    pub(crate) fn new(extra: Option<&Path>) -> Result<Sources, String> {
        let mut spam: HashSet<String> = SPAM_LIST.lines().map(str::to_string).collect();
        if let Some(path) = extra {
            let text = std::fs::read_to_string(path).map_err(|e| {
                format!(
                    "cannot read --referrer-spam-file {} ({e}); give a file of host names, one per line",
                    path.display()
                )
            })?;
            for line in text.lines() {
                let host = line.split('#').next().unwrap_or("").trim();
                if host.is_empty() {
                    continue;
                }
                let host = host.to_ascii_lowercase();
                let host = host.strip_prefix("www.").unwrap_or(&host);
                spam.insert(host.to_string());
            }
        }
        Ok(Sources { spam })
    }

    /// How many hosts are on the spam list.
    pub(crate) fn spam_hosts(&self) -> usize {
        self.spam.len()
    }

    /// Where a hit on `raw_url` (as sent, before canonicalisation) of `page_host` came from,
    /// given the referrer its request names; `is_site` tells the hosts of `--sites`, which
    /// refer to each other without being sources.
    pub(crate) fn origin(
        &self,
        raw_url: &str,
        referrer: Option<&str>,
        page_host: &str,
        is_site: impl Fn(&str) -> bool,
    ) -> Origin {
        let referrer = referrer.map(str::trim).filter(|r| !r.is_empty());
        let referrer = referrer.and_then(referrer_host);
        if let Some((host, _)) = &referrer {
            if self.is_spam(host) {
                return Origin::Spam;
            }
        }
        if let Some(tag) = tag_of(raw_url) {
            return Origin::Counted(Source::Named(tag));
        }
        let Some((host, app)) = referrer else {
            return Origin::Counted(Source::Direct);
        };
        if !app && is_own(&host, page_host, is_site) {
            return Origin::Counted(Source::Direct);
        }
        let host = without_www(&host);
        let name = match (app, named(host)) {
            (_, Some(name)) => name.to_string(),
            (true, None) => format!("android-app://{host}"),
            (false, None) => host.to_string(),
        };
        Origin::Counted(Source::Named(name))
    }

    /// Whether `host` or a parent domain of it is on the spam list.
    fn is_spam(&self, host: &str) -> bool {
        let mut rest = host;
        loop {
            if self.spam.contains(rest) {
                return true;
            }
            match rest.split_once('.') {
                Some((_, parent)) if parent.contains('.') => rest = parent,
                _ => return false,
            }
        }
    }
}

/// Whether a referrer on `host` is the site itself: the page's host, a host of `--sites`,
/// or this machine.
fn is_own(host: &str, page_host: &str, is_site: impl Fn(&str) -> bool) -> bool {
    without_www(host) == without_www(page_host)
        || is_site(host)
        || is_site(without_www(host))
        || host == "localhost"
        || host.ends_with(".localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn without_www(host: &str) -> &str {
    host.strip_prefix("www.").unwrap_or(host)
}

/// The first source tag of the page URL's query, trimmed, lower case, at most
/// [`MAX_SOURCE_CHARS`]; none when absent or empty. A tag in parentheses is refused, so that
/// no tag can pass for `(direct)` or `(other)`.
fn tag_of(raw_url: &str) -> Option<String> {
    let query = raw_url.split_once('?')?.1;
    let query = query.split('#').next().unwrap_or("");
    TAGS.iter().find_map(|tag| {
        query.split('&').find_map(|pair| {
            let (name, value) = pair.split_once('=')?;
            if name != *tag {
                return None;
            }
            let value = value.replace('+', " ");
            let value = percent_decode(value.as_bytes()).decode_utf8_lossy();
            let value: String = value
                .trim()
                .chars()
                .filter(|c| !c.is_control())
                .take(MAX_SOURCE_CHARS)
                .collect::<String>()
                .to_lowercase();
            let value = value.trim();
            (!value.is_empty() && !value.starts_with('(')).then(|| value.to_string())
        })
    })
}

/// The host of a referrer (lower case, without its port) and whether it names an
/// Android app (`android-app://package`); none for a referrer that is no web page (`about:`,
/// a file, an extension). A bare host (`news.example`) is taken as one.
fn referrer_host(referrer: &str) -> Option<(String, bool)> {
    let url = match Url::parse(referrer) {
        Ok(url) => url,
        Err(url::ParseError::RelativeUrlWithoutBase) => {
            Url::parse(&format!("http://{referrer}")).ok()?
        }
        Err(_) => return None,
    };
    let app = match url.scheme() {
        "http" | "https" => false,
        "android-app" => true,
        _ => return None,
    };
    let host = url.host_str()?.to_ascii_lowercase();
    let host = host.trim_end_matches('.');
    (!host.is_empty()).then(|| (host.to_string(), app))
}

/// The name a host is shown under, if it has one.
fn named(host: &str) -> Option<&'static str> {
    if let Some(name) = search_engine_of_country(host) {
        return Some(name);
    }
    NAMED.iter().find_map(|(named, name)| {
        let matches = host == *named
            || (host.len() > named.len()
                && host.ends_with(named)
                && host.as_bytes()[host.len() - named.len() - 1] == b'.');
        matches.then_some(*name)
    })
}

/// Google and Yandex under one name whatever the country: `google.de`, `google.co.uk`,
/// `google.com.au`, `yandex.ru` (also with a subdomain such as `news.google.com` for Google
/// News, which keeps its host).
fn search_engine_of_country(host: &str) -> Option<&'static str> {
    let mut labels = host.split('.');
    let name = match labels.next()? {
        "google" => "Google",
        "yandex" | "ya" => "Yandex",
        _ => return None,
    };
    let country: Vec<&str> = labels.collect();
    let is_country = match country.as_slice() {
        [tld] => tld.len() <= 3,
        [second, tld] => matches!(*second, "co" | "com") && tld.len() == 2,
        _ => false,
    };
    is_country.then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::sites::Sites;

    /// Sources as with `--sites shop.example,*.blog.example`.
    struct Counted(Sources);

    impl Counted {
        fn origin(&self, raw_url: &str, referrer: Option<&str>, page_host: &str) -> Origin {
            let sites = Sites::parse("shop.example,*.blog.example").unwrap();
            self.0
                .origin(raw_url, referrer, page_host, |host| sites.allows(host))
        }

        fn spam_hosts(&self) -> usize {
            self.0.spam_hosts()
        }
    }

    fn sources() -> Counted {
        Counted(Sources::new(None).unwrap())
    }

    fn named(name: &str) -> Origin {
        Origin::Counted(Source::Named(name.to_string()))
    }

    const DIRECT: Origin = Origin::Counted(Source::Direct);

    #[test]
    fn a_tag_wins_over_the_referrer() {
        let s = sources();
        let page = "http://site.example/a?utm_source=Newsletter&x=1";
        assert_eq!(
            s.origin(
                page,
                Some("https://news.ycombinator.com/item?id=1"),
                "site.example"
            ),
            named("newsletter")
        );
        assert_eq!(
            s.origin("http://site.example/?ref=producthunt", None, "site.example"),
            named("producthunt")
        );
        assert_eq!(
            s.origin("http://site.example/?source=a%20b+c", None, "site.example"),
            named("a b c")
        );
        // Empty tags and tags posing as the reserved names are no tags.
        assert_eq!(
            s.origin("http://site.example/?utm_source=", None, "site.example"),
            DIRECT
        );
        assert_eq!(
            s.origin("http://site.example/?ref=(direct)", None, "site.example"),
            DIRECT
        );
        let long = format!("http://site.example/?ref={}", "x".repeat(500));
        assert_eq!(
            s.origin(&long, None, "site.example"),
            named(&"x".repeat(MAX_SOURCE_CHARS))
        );
    }

    #[test]
    fn a_referrer_is_its_host_or_its_name() {
        let s = sources();
        let from =
            |referrer: &str| s.origin("http://site.example/", Some(referrer), "site.example");
        assert_eq!(
            from("https://www.Other.example:8443/path?q=1"),
            named("other.example")
        );
        assert_eq!(from("https://www.google.co.uk/"), named("Google"));
        assert_eq!(from("https://google.de/search?q=x"), named("Google"));
        assert_eq!(from("https://news.google.com/"), named("news.google.com"));
        assert_eq!(from("https://yandex.ru/"), named("Yandex"));
        assert_eq!(from("https://old.reddit.com/r/rust"), named("Reddit"));
        assert_eq!(from("https://t.co/abc"), named("Twitter"));
        assert_eq!(from("https://notreddit.com/"), named("notreddit.com"));
        assert_eq!(from("android-app://com.google.android.gm/"), named("Gmail"));
        assert_eq!(
            from("android-app://org.example.reader"),
            named("android-app://org.example.reader")
        );
        assert_eq!(from("news.example"), named("news.example"));
        assert_eq!(from("about:blank"), DIRECT);
        assert_eq!(from("   "), DIRECT);
    }

    #[test]
    fn the_site_itself_is_no_source() {
        let s = sources();
        let from =
            |referrer: &str, host: &str| s.origin(&format!("http://{host}/"), Some(referrer), host);
        assert_eq!(from("https://site.example/other", "site.example"), DIRECT);
        assert_eq!(
            from("https://www.site.example/", "www.site.example"),
            DIRECT
        );
        assert_eq!(from("https://shop.example/cart", "site.example"), DIRECT);
        assert_eq!(from("https://www.shop.example/", "site.example"), DIRECT);
        assert_eq!(from("https://a.blog.example/", "site.example"), DIRECT);
        assert_eq!(from("http://localhost:3000/", "site.example"), DIRECT);
        assert_eq!(from("http://127.0.0.1/", "site.example"), DIRECT);
        assert_eq!(from("http://[::1]/", "site.example"), DIRECT);
        assert_eq!(
            from("https://blog.example/", "site.example"),
            named("blog.example")
        );
    }

    #[test]
    fn spam_is_matched_by_host_and_parent_domain() {
        let s = sources();
        assert!(s.spam_hosts() > 2000);
        let spam = SPAM_LIST.lines().next().unwrap();
        let from = |referrer: String| {
            s.origin(
                "http://site.example/?ref=x",
                Some(&referrer),
                "site.example",
            )
        };
        assert_eq!(from(format!("https://{spam}/")), Origin::Spam);
        assert_eq!(from(format!("https://www.{spam}/")), Origin::Spam);
        assert_eq!(from(format!("https://deep.sub.{spam}/")), Origin::Spam);
        assert_eq!(from(format!("https://not{spam}/")), named("x"));
    }

    #[test]
    fn an_operators_spam_file_adds_hosts() {
        let dir = std::env::temp_dir().join(format!("hitme-spam-{}", std::process::id()));
        std::fs::write(&dir, "# ours\nWWW.Junk.Example  # a comment\n\n").unwrap();
        let s = Counted(Sources::new(Some(&dir)).unwrap());
        std::fs::remove_file(&dir).unwrap();
        assert_eq!(s.spam_hosts(), SPAM_LIST.lines().count() + 1);
        assert_eq!(
            s.origin(
                "http://site.example/",
                Some("http://a.junk.example/"),
                "site.example"
            ),
            Origin::Spam
        );
        let missing = Sources::new(Some(Path::new("/nonexistent/spam.txt")));
        assert!(missing
            .unwrap_err()
            .contains("--referrer-spam-file /nonexistent/spam.txt"));
    }
}
