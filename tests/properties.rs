//! Property tests: whatever a client sends, parsing never panics and what it accepts is
//! valid; every timestamp lies in its buckets. `PROPTEST_CASES=N` runs longer.

use hitme::buckets::{
    bucket_end, bucket_start, series_starts, Period, WeekStart, MAX_TIMESTAMP_MS,
};
use hitme::http::canonical::{canonical_url, UrlRules, MAX_URL_BYTES};
use hitme::http::params::{parse_timestamp, Fields};
use proptest::prelude::*;

fn period() -> impl Strategy<Value = Period> {
    prop::sample::select(Period::BUCKETED.to_vec())
}

fn week_start() -> impl Strategy<Value = WeekStart> {
    prop::sample::select(vec![WeekStart::Monday, WeekStart::Sunday])
}

/// URL-shaped strings, valid and not, to reach deep into the URL parser.
fn url_like() -> impl Strategy<Value = String> {
    "(HTTP|http|https|ftp|)(://|:/|:)[a-zA-Z0-9.\\-\\[\\]%@:]{0,24}(:[0-9]{0,6})?(/[ -~]{0,40})?(\\?[ -~]{0,20})?(#[ -~]{0,10})?"
}

/// Percent-encodes every byte, as a strict client would.
fn encode(s: &str) -> String {
    s.bytes().map(|b| format!("%{b:02X}")).collect()
}

proptest! {
    #[test]
    fn every_timestamp_lies_in_its_bucket(ts in 0..=MAX_TIMESTAMP_MS, p in period(), ws in week_start()) {
        let start = bucket_start(ts, p, ws);
        let end = bucket_end(start, p, ws);
        prop_assert!(start <= ts && ts < end, "{:?}: {} not in [{}, {})", p, ts, start, end);
        if start >= 0 {
            prop_assert_eq!(bucket_start(start, p, ws), start);
        }
        if end <= MAX_TIMESTAMP_MS {
            prop_assert_eq!(bucket_start(end, p, ws), end, "the next bucket starts at the end");
        }
    }

    #[test]
    fn series_are_contiguous(ts in 0..=MAX_TIMESTAMP_MS, p in period(), ws in week_start(), n in 1usize..40) {
        let starts = series_starts(ts, p, ws, n);
        prop_assert!(!starts.is_empty() && starts.len() <= n);
        prop_assert_eq!(*starts.last().unwrap(), bucket_start(ts, p, ws));
        for pair in starts.windows(2) {
            prop_assert_eq!(bucket_end(pair[0], p, ws), pair[1]);
        }
    }

    #[test]
    fn any_form_body_parses_or_is_refused_cleanly(body in prop::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(fields) = Fields::from_form(&body) {
            check_fields(&fields)?;
        }
    }

    #[test]
    fn form_shaped_bodies_parse_or_are_refused_cleanly(
        url in url_like(),
        ts in "[-+0-9a-z.]{0,24}",
        junk in "[&=%+a-z0-9]{0,12}",
    ) {
        let body = format!("{junk}&url={}&timestamp={ts}&{junk}", encode(&url));
        match Fields::from_form(body.as_bytes()) {
            Ok(fields) => check_fields(&fields)?,
            Err(e) => prop_assert_eq!(e.status, 400),
        }
    }

    #[test]
    fn any_json_body_parses_or_is_refused_cleanly(body in prop::collection::vec(any::<u8>(), 0..200), url in url_like(), ts in any::<i128>()) {
        if let Ok(fields) = Fields::from_json(&body) {
            check_fields(&fields)?;
        }
        let json = format!(r#"{{"url":{},"timestamp":{ts}}}"#, serde_json::to_string(&url).unwrap());
        match Fields::from_json(json.as_bytes()) {
            Ok(fields) => check_fields(&fields)?,
            Err(e) => prop_assert_eq!(e.status, 400),
        }
    }

    #[test]
    fn percent_encoding_round_trips(s in any::<String>()) {
        let fields = Fields::from_form(format!("url={}", encode(&s)).as_bytes()).unwrap();
        prop_assert_eq!(fields.url.as_deref(), Some(s.as_str()));
    }

    #[test]
    fn canonical_urls_are_valid_and_stable(url in url_like()) {
        if let Ok(canonical) = canonical_url(&url, &UrlRules::default()) {
            prop_assert!(canonical.len() <= MAX_URL_BYTES);
            prop_assert!(canonical.starts_with("http://") || canonical.starts_with("https://"));
            prop_assert!(!canonical.contains('#'));
            prop_assert_eq!(canonical_url(&canonical, &UrlRules::default()).unwrap(), canonical.clone(), "canonicalising twice changes {}", url);
        }
    }

    #[test]
    fn timestamps_are_in_range_or_refused(raw in "[-+]?[0-9]{0,22}|[ -~]{0,12}") {
        match parse_timestamp(&raw) {
            Ok(ts) => prop_assert!((0..=MAX_TIMESTAMP_MS).contains(&ts)),
            Err(e) => prop_assert_eq!(e.status, 400),
        }
    }
}

/// What validation promises of whatever it accepts.
fn check_fields(fields: &Fields) -> Result<(), TestCaseError> {
    match fields.require_url(&UrlRules::default()) {
        Ok(url) => {
            prop_assert!(url.len() <= MAX_URL_BYTES);
            prop_assert_eq!(canonical_url(&url, &UrlRules::default()).unwrap(), url);
        }
        Err(e) => prop_assert_eq!(e.status, 400),
    }
    match fields.timestamp_or(42) {
        Ok(ts) => prop_assert!((0..=MAX_TIMESTAMP_MS).contains(&ts)),
        Err(e) => prop_assert_eq!(e.status, 400),
    }
    Ok(())
}
