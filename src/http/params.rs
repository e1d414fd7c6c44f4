//! Request parameters: query strings, form bodies and JSON bodies turned into validated values.
//!
//! Everything a client sends passes through here before it reaches Redis, so the rules are
//! strict and the errors say what to send instead.

use std::borrow::Cow;

use percent_encoding::percent_decode;

use super::canonical::{canonical_url, UrlRules};
use super::error::{truncate, ApiError};
use super::images::MAX_LABEL_CHARS;
use crate::store::Metric;
use crate::time::{Period, MAX_TIMESTAMP_MS};

/// The most buckets one `/series` request may ask for.
pub(crate) const MAX_SERIES_COUNT: usize = 1000;

/// The most URLs one `/top` page may hold.
pub(crate) const MAX_TOP_LIMIT: usize = 1000;

/// The longest host name (RFC 1035: 253 characters).
const MAX_SITE_BYTES: usize = 253;

/// The longest `/top` filter, in bytes.
pub(crate) const MAX_FILTER_BYTES: usize = 200;

/// The raw fields of a request, still unchecked.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Fields {
    pub url: Option<String>,
    pub timestamp: Option<String>,
    pub period: Option<String>,
    pub count: Option<String>,
    pub limit: Option<String>,
    pub offset: Option<String>,
    pub q: Option<String>,
    pub label: Option<String>,
    /// `js` on the hits `hitme.js` sends, which a bot's browser may send too.
    pub src: Option<String>,
    /// `hits` or `visits`, for the reads.
    pub metric: Option<String>,
    /// `GET /export`: `csv` or `jsonl`, and the earliest bucket.
    pub format: Option<String>,
    pub since: Option<String>,
    /// `/top`, `/sites`' and `/visitors`' site: a host.
    pub site: Option<String>,
    /// With `--sources`, the page's referrer (`referrer`, or `ref` for the pixel).
    pub referrer: Option<String>,
}

impl Fields {
    /// Reads the fields from an `application/x-www-form-urlencoded` string (a query string or a
    /// form body). The first occurrence of a field wins; unknown fields are ignored.
    pub fn from_form(form: &[u8]) -> Result<Self, ApiError> {
        let mut fields = Fields::default();
        for pair in form.split(|&b| b == b'&') {
            let (key, value) = match pair.iter().position(|&b| b == b'=') {
                Some(eq) => (&pair[..eq], &pair[eq + 1..]),
                None => (pair, &b""[..]),
            };
            let slot = match key {
                b"url" => &mut fields.url,
                b"timestamp" => &mut fields.timestamp,
                b"period" => &mut fields.period,
                b"count" => &mut fields.count,
                b"limit" => &mut fields.limit,
                b"offset" => &mut fields.offset,
                b"q" => &mut fields.q,
                b"label" => &mut fields.label,
                b"src" => &mut fields.src,
                b"metric" => &mut fields.metric,
                b"format" => &mut fields.format,
                b"since" => &mut fields.since,
                b"site" => &mut fields.site,
                b"referrer" | b"ref" => &mut fields.referrer,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(form_decode(value, key)?);
            }
        }
        Ok(fields)
    }

    /// Reads the fields from a JSON object body: `{"url": "...", "timestamp": 123}`.
    /// The timestamp may be a number or a string of digits.
    pub fn from_json(body: &[u8]) -> Result<Self, ApiError> {
        let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!(
                "the body is not valid JSON ({e}); send an object such as {{\"url\":\"http://example.com/\"}}"
            ))
        })?;
        let serde_json::Value::Object(object) = value else {
            return Err(ApiError::bad_request(
                "the JSON body must be an object such as {\"url\":\"http://example.com/\",\"timestamp\":0}",
            ));
        };
        let url = match object.get("url") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(ApiError::bad_request("url must be a JSON string")),
        };
        let timestamp = match object.get("timestamp") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            Some(_) => {
                return Err(ApiError::bad_request(
                    "timestamp must be a whole number of milliseconds since the Unix epoch",
                ))
            }
        };
        let referrer = match object.get("referrer") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(ApiError::bad_request("referrer must be a JSON string")),
        };
        Ok(Fields {
            url,
            timestamp,
            referrer,
            ..Fields::default()
        })
    }

    /// Fills the fields this one lacks from `fallback` (body fields win over query fields).
    pub fn or(self, fallback: Fields) -> Fields {
        Fields {
            url: self.url.or(fallback.url),
            timestamp: self.timestamp.or(fallback.timestamp),
            period: self.period.or(fallback.period),
            count: self.count.or(fallback.count),
            limit: self.limit.or(fallback.limit),
            offset: self.offset.or(fallback.offset),
            q: self.q.or(fallback.q),
            label: self.label.or(fallback.label),
            src: self.src.or(fallback.src),
            metric: self.metric.or(fallback.metric),
            format: self.format.or(fallback.format),
            since: self.since.or(fallback.since),
            site: self.site.or(fallback.site),
            referrer: self.referrer.or(fallback.referrer),
        }
    }

    /// The canonical URL; an error if it is missing or invalid.
    pub fn require_url(&self, rules: &UrlRules) -> Result<String, ApiError> {
        match self.url.as_deref().map(trim_blanks) {
            None | Some("") => Err(ApiError::bad_request(
                "url is required: an absolute http or https URL, percent-encoded, e.g. url=http%3A%2F%2Fwww.example.com%2F",
            )),
            Some(raw) => canonical_url(raw, rules),
        }
    }

    /// The timestamp in ms since the epoch, with `now_ms` standing in for an absent, empty or 0 one.
    pub fn timestamp_or(&self, now_ms: i64) -> Result<i64, ApiError> {
        match self.timestamp.as_deref().map(trim_blanks) {
            None | Some("") => Ok(now_ms),
            Some(raw) => match parse_timestamp(raw)? {
                0 => Ok(now_ms),
                ts => Ok(ts),
            },
        }
    }
}

impl Fields {
    /// The bucketed period named by `period`.
    pub(crate) fn require_period(&self) -> Result<Period, ApiError> {
        let name = self.period.as_deref().unwrap_or("");
        Period::bucketed_from_name(name).ok_or_else(|| {
            ApiError::bad_request(format!(
                "period must be one of minute, hour, day, week, month (got {:?})",
                truncate(name, 40)
            ))
        })
    }

    /// The period of a `/top` request: any of them, all-time when absent.
    pub(crate) fn period_or_all(&self) -> Result<Period, ApiError> {
        match self.period.as_deref() {
            None | Some("") => Ok(Period::All),
            Some(name) => Period::EVERY
                .into_iter()
                .find(|p| p.name() == name)
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "period must be one of all, month, week, day, hour, minute (got {:?})",
                        truncate(name, 40)
                    ))
                }),
        }
    }

    /// How many URLs a `/top` page holds: 1 to `MAX_TOP_LIMIT`, `default` when absent.
    pub(crate) fn limit_or(&self, default: usize) -> Result<usize, ApiError> {
        whole_number(self.limit.as_deref(), default, 1, MAX_TOP_LIMIT, "limit")
    }

    /// How many URLs a `/top` page skips: 0 when absent.
    pub fn offset(&self) -> Result<usize, ApiError> {
        whole_number(self.offset.as_deref(), 0, 0, usize::MAX, "offset")
    }

    /// The `/top` filter, trimmed; empty when absent.
    pub fn filter(&self) -> Result<&str, ApiError> {
        let q = self.q.as_deref().map_or("", trim_blanks);
        if q.len() > MAX_FILTER_BYTES {
            return Err(ApiError::bad_request(format!(
                "q must be at most {MAX_FILTER_BYTES} bytes"
            )));
        }
        Ok(q)
    }

    /// The site asked for: a host name (lower-cased), or empty for every site.
    pub(crate) fn site(&self) -> Result<String, ApiError> {
        let site = self.site.as_deref().map_or("", trim_blanks);
        let valid = site.len() <= MAX_SITE_BYTES
            && site
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b':'));
        match valid {
            true => Ok(site.to_ascii_lowercase()),
            false => Err(ApiError::bad_request(format!(
                "site must be a host name such as example.com, as in the URLs counted (got {:?})",
                truncate(site, 40)
            ))),
        }
    }

    /// A badge's label: `default` (`hits`, `visits`) when absent, at most `MAX_LABEL_CHARS`
    /// characters.
    pub(crate) fn badge_label(&self, default: &str) -> Result<String, ApiError> {
        match self.label.as_deref().map(trim_blanks) {
            None | Some("") => Ok(default.to_string()),
            Some(label) if label.chars().count() > MAX_LABEL_CHARS => Err(ApiError::bad_request(
                format!("label must be at most {MAX_LABEL_CHARS} characters"),
            )),
            Some(label) => Ok(label.to_string()),
        }
    }

    /// Whether a badge request also records a hit: `count=1` (`0` or absent: it does not).
    pub(crate) fn badge_counts(&self) -> Result<bool, ApiError> {
        match self.count.as_deref().map(trim_blanks) {
            None | Some("") | Some("0") => Ok(false),
            Some("1") => Ok(true),
            Some(_) => Err(ApiError::bad_request(
                "count must be 1 (record a hit, then show the count) or 0",
            )),
        }
    }

    /// What a read counts: `hits` (also when absent) or, when HitMe counts them, `visits`.
    pub(crate) fn metric(&self, visits_counted: bool) -> Result<Metric, ApiError> {
        match self.metric.as_deref().map(trim_blanks) {
            None | Some("") | Some("hits") => Ok(Metric::Hits),
            Some("visits") if visits_counted => Ok(Metric::Visits),
            Some("visits") => Err(ApiError::bad_request(
                "metric=visits needs HitMe started with --visits; without it only hits are counted",
            )),
            Some(other) => Err(ApiError::bad_request(format!(
                "metric must be hits or visits (got {:?})",
                truncate(other, 40)
            ))),
        }
    }

    /// The number of buckets asked for, `default` when absent.
    pub(crate) fn count_or(&self, default: usize) -> Result<usize, ApiError> {
        whole_number(self.count.as_deref(), default, 1, MAX_SERIES_COUNT, "count")
    }
}

/// A whole number from `min` to `max` in `raw`, `default` when absent or empty.
fn whole_number(
    raw: Option<&str>,
    default: usize,
    min: usize,
    max: usize,
    name: &str,
) -> Result<usize, ApiError> {
    match raw.map(trim_blanks) {
        None | Some("") => Ok(default),
        Some(raw) => match raw.parse::<usize>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ if max == usize::MAX => Err(ApiError::bad_request(format!(
                "{name} must be a whole number from {min} up"
            ))),
            _ => Err(ApiError::bad_request(format!(
                "{name} must be a whole number from {min} to {max}"
            ))),
        },
    }
}

/// Drops the spaces, tabs and line ends around a value, as the original servers did (node's
/// `parseInt`, Python's `int()`): the seed's own `ab_data` files end in a newline.
fn trim_blanks(value: &str) -> &str {
    value.trim_matches([' ', '\t', '\r', '\n'])
}

/// Decodes one form value: `+` is a space, `%XX` a byte; the result must be UTF-8.
fn form_decode<'a>(raw: &'a [u8], field: &[u8]) -> Result<String, ApiError> {
    let field = String::from_utf8_lossy(field);
    let bad = |what: &str| {
        ApiError::bad_request(format!(
            "{field} has {what}; percent-encode it as UTF-8 (e.g. with encodeURIComponent or curl --data-urlencode)"
        ))
    };
    let mut i = 0;
    while let Some(pos) = raw[i..].iter().position(|&b| b == b'%') {
        let at = i + pos;
        let hex = raw.get(at + 1..at + 3);
        if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
            return Err(bad(
                "a bad percent-encoding (% must be followed by two hex digits)",
            ));
        }
        i = at + 3;
    }
    let plus_decoded: Cow<'a, [u8]> = if raw.contains(&b'+') {
        Cow::Owned(
            raw.iter()
                .map(|&b| if b == b'+' { b' ' } else { b })
                .collect(),
        )
    } else {
        Cow::Borrowed(raw)
    };
    percent_decode(&plus_decoded)
        .decode_utf8()
        .map(Cow::into_owned)
        .map_err(|_| bad("bytes that are not UTF-8"))
}

/// Parses a timestamp in ms since the epoch; 0 is allowed (it means "now" to callers).
pub fn parse_timestamp(raw: &str) -> Result<i64, ApiError> {
    let msg = |why: &str| {
        ApiError::bad_request(format!(
            "timestamp {why}; send whole milliseconds since the Unix epoch from 0 (now) to {MAX_TIMESTAMP_MS} (year 9999)"
        ))
    };
    let digits = raw.strip_prefix('+').unwrap_or(raw);
    if raw.starts_with('-') {
        return Err(msg("must not be negative"));
    }
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(msg("is not a whole number"));
    }
    match digits.parse::<i64>() {
        Ok(ts) if ts <= MAX_TIMESTAMP_MS => Ok(ts),
        _ => Err(msg("is out of range")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(s: &str) -> Result<Fields, ApiError> {
        Fields::from_form(s.as_bytes())
    }

    #[test]
    fn seed_form_body() {
        let f = form("url=http%3A%2F%2Fwww.olark.com%2F&timestamp=0").unwrap();
        assert_eq!(f.url.as_deref(), Some("http://www.olark.com/"));
        assert_eq!(f.timestamp.as_deref(), Some("0"));
        assert_eq!(f.timestamp_or(42).unwrap(), 42);
        assert_eq!(
            f.require_url(&UrlRules::default()).unwrap(),
            "http://www.olark.com/"
        );
    }

    #[test]
    fn the_seed_ab_data_files_parse_with_their_trailing_newline() {
        for (file, url) in [
            (
                "url=http%3A%2F%2Fwww.olark.com%2F&timestamp=0\n",
                "http://www.olark.com/",
            ),
            (
                "url=http%3A%2F%2Fwww.olark.com%2Fabout.html&timestamp=0\n",
                "http://www.olark.com/about.html",
            ),
            (
                "url=http%3A%2F%2Fwww.olark.com%2Ffeatures.html&timestamp=0\n",
                "http://www.olark.com/features.html",
            ),
        ] {
            let f = form(file).unwrap();
            assert_eq!(
                f.require_url(&UrlRules::default()).unwrap(),
                url,
                "{file:?}"
            );
            assert_eq!(f.timestamp_or(42).unwrap(), 42, "{file:?}");
        }
    }

    #[test]
    fn values_are_trimmed_of_spaces_tabs_and_line_ends_only() {
        for body in [
            "url=http://a.com/&timestamp=1700000000000\r\n",
            "url=http://a.com/&timestamp=%201700000000000%09",
            "url=%0A+http://a.com/%0D%0A&timestamp=+1700000000000+",
            "url=\thttp://a.com/ &timestamp=\n1700000000000",
        ] {
            let f = form(body).unwrap();
            assert_eq!(
                f.require_url(&UrlRules::default()).unwrap(),
                "http://a.com/",
                "{body:?}"
            );
            assert_eq!(f.timestamp_or(0).unwrap(), 1_700_000_000_000, "{body:?}");
        }
        let f = Fields::from_json(br#"{"url":" http://a.com/\n","timestamp":"12\n"}"#).unwrap();
        assert_eq!(
            f.require_url(&UrlRules::default()).unwrap(),
            "http://a.com/"
        );
        assert_eq!(f.timestamp_or(0).unwrap(), 12);
        // Only blanks: the same as empty.
        assert_eq!(
            form("timestamp=%20%0A").unwrap().timestamp_or(7).unwrap(),
            7
        );
        assert_eq!(
            form("url=%20%0A")
                .unwrap()
                .require_url(&UrlRules::default())
                .unwrap_err()
                .status,
            400
        );
        // Whatever is not a whole number once trimmed stays an error.
        for bad in [
            "timestamp=abc\n",
            "timestamp=1%202",
            "timestamp=%0C1",
            "timestamp=1%00",
            "timestamp=0x10",
        ] {
            assert_eq!(
                form(bad).unwrap().timestamp_or(0).unwrap_err().status,
                400,
                "{bad}"
            );
        }
    }

    #[test]
    fn forms_as_clients_really_send_them() {
        // Leading and trailing `&`, empty pairs.
        let f = form("&url=http://a.com/&&timestamp=5&").unwrap();
        assert_eq!(
            f.require_url(&UrlRules::default()).unwrap(),
            "http://a.com/"
        );
        assert_eq!(f.timestamp_or(0).unwrap(), 5);
        // `+` is a space, which the canonical URL percent-encodes.
        let f = form("url=http://a.com/a+b").unwrap();
        assert_eq!(
            f.require_url(&UrlRules::default()).unwrap(),
            "http://a.com/a%20b"
        );
        // Lower-case percent escapes.
        let f = form("url=http%3a%2f%2fwww.olark.com%2f").unwrap();
        assert_eq!(
            f.require_url(&UrlRules::default()).unwrap(),
            "http://www.olark.com/"
        );
        // A URL sent without any encoding.
        let f = form("url=http://a.example/plain").unwrap();
        assert_eq!(
            f.require_url(&UrlRules::default()).unwrap(),
            "http://a.example/plain"
        );
    }

    #[test]
    fn first_field_wins_and_unknown_fields_are_ignored() {
        let f = form("x=1&url=http://a.com/&url=http://b.com/&flag&timestamp=5").unwrap();
        assert_eq!(f.url.as_deref(), Some("http://a.com/"));
        assert_eq!(f.timestamp_or(0).unwrap(), 5);
    }

    #[test]
    fn plus_is_a_space_and_bad_encodings_are_rejected() {
        let f = form("url=http://a.com/?q=a+b%2Bc").unwrap();
        assert_eq!(f.url.as_deref(), Some("http://a.com/?q=a b+c"));
        for bad in ["url=%zz", "url=%4", "url=abc%", "url=%FF%FE"] {
            let err = form(bad).unwrap_err();
            assert_eq!(err.status, 400, "{bad}");
            assert!(err.message.starts_with("url has"), "{bad}: {}", err.message);
        }
    }

    #[test]
    fn body_fields_win_over_query_fields() {
        let body = form("url=http://body.com/").unwrap();
        let query = form("url=http://query.com/&timestamp=7").unwrap();
        let f = body.or(query);
        assert_eq!(f.url.as_deref(), Some("http://body.com/"));
        assert_eq!(f.timestamp.as_deref(), Some("7"));
    }

    #[test]
    fn json_bodies() {
        let f = Fields::from_json(br#"{"url":"http://a.com/","timestamp":1700000000000}"#).unwrap();
        assert_eq!(f.timestamp_or(0).unwrap(), 1_700_000_000_000);
        let f = Fields::from_json(br#"{"url":"http://a.com/","timestamp":"12"}"#).unwrap();
        assert_eq!(f.timestamp_or(0).unwrap(), 12);
        for bad in [
            &br#"[1,2]"#[..],
            br#""x""#,
            br#"{"url":5}"#,
            br#"{"url":"http://a.com/","timestamp":1.5}"#,
            br#"{"url":"http://a.com/","timestamp":-1}"#,
            br#"{"url":"http://a.com/","timestamp":true}"#,
            b"{not json",
        ] {
            let result = Fields::from_json(bad).and_then(|f| f.timestamp_or(0).map(|_| f));
            let result = result.and_then(|f| f.require_url(&UrlRules::default()));
            assert_eq!(
                result.unwrap_err().status,
                400,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn series_fields() {
        let f = form("period=hour&count=24").unwrap();
        assert_eq!(f.require_period().unwrap(), Period::Hour);
        assert_eq!(f.count_or(5).unwrap(), 24);
        assert_eq!(Fields::default().count_or(5).unwrap(), 5);
        for bad in ["count=0", "count=1001", "count=-1", "count=x"] {
            assert_eq!(
                form(bad).unwrap().count_or(5).unwrap_err().status,
                400,
                "{bad}"
            );
        }
        for bad in ["", "period=year", "period=Hour", "period=all"] {
            assert_eq!(
                form(bad).unwrap().require_period().unwrap_err().status,
                400,
                "{bad}"
            );
        }
    }

    #[test]
    fn top_fields() {
        let f = form("period=all&limit=10&offset=20&q=+Shoe+").unwrap();
        assert_eq!(f.period_or_all().unwrap(), Period::All);
        assert_eq!(f.limit_or(50).unwrap(), 10);
        assert_eq!(f.offset().unwrap(), 20);
        assert_eq!(f.filter().unwrap(), "Shoe");
        let none = Fields::default();
        assert_eq!(none.period_or_all().unwrap(), Period::All);
        assert_eq!(none.limit_or(50).unwrap(), 50);
        assert_eq!(none.offset().unwrap(), 0);
        assert_eq!(none.filter().unwrap(), "");
        assert_eq!(
            form("period=minute").unwrap().period_or_all().unwrap(),
            Period::Minute
        );
        for bad in ["period=year", "period=All", "period=last_day"] {
            let err = form(bad).unwrap().period_or_all().unwrap_err();
            assert!(
                err.message.starts_with("period must be one of all"),
                "{bad}"
            );
        }
        for bad in ["limit=0", "limit=1001", "limit=-1", "limit=ten"] {
            let err = form(bad).unwrap().limit_or(50).unwrap_err();
            assert_eq!(
                err.message, "limit must be a whole number from 1 to 1000",
                "{bad}"
            );
        }
        for bad in ["offset=-1", "offset=1.5", "offset=x"] {
            let err = form(bad).unwrap().offset().unwrap_err();
            assert_eq!(
                err.message, "offset must be a whole number from 0 up",
                "{bad}"
            );
        }
        let long = format!("q={}", "a".repeat(MAX_FILTER_BYTES + 1));
        assert_eq!(form(&long).unwrap().filter().unwrap_err().status, 400);
    }

    #[test]
    fn timestamps() {
        assert_eq!(parse_timestamp("0").unwrap(), 0);
        assert_eq!(parse_timestamp("1700000000000").unwrap(), 1_700_000_000_000);
        assert_eq!(
            parse_timestamp(&MAX_TIMESTAMP_MS.to_string()).unwrap(),
            MAX_TIMESTAMP_MS
        );
        for bad in [
            "-1",
            "1.5",
            "abc",
            "1e3",
            " 1",
            "253402300800000",
            "18446744073709551616",
            "99999999999999999999999",
        ] {
            assert_eq!(parse_timestamp(bad).unwrap_err().status, 400, "{bad}");
        }
        let none = Fields::default();
        assert_eq!(none.timestamp_or(99).unwrap(), 99);
    }
}
