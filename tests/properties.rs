//! Property tests: whatever a client sends, parsing never panics and what it accepts is
//! valid; every timestamp lies in its buckets. `PROPTEST_CASES=N` runs longer.

mod common;

use common::encode;
use hitme::http::canonical::{canonical_url, UrlRules, MAX_URL_BYTES};
use hitme::http::params::{parse_timestamp, Fields};
use hitme::time::Zone;
use hitme::time::{Calendar, Period, WeekStart, MAX_TIMESTAMP_MS};
use proptest::prelude::*;

fn period() -> impl Strategy<Value = Period> {
    prop::sample::select(Period::BUCKETED.to_vec())
}

fn week_start() -> impl Strategy<Value = WeekStart> {
    prop::sample::select(vec![WeekStart::Monday, WeekStart::Sunday])
}

/// Zones with what makes local calendars hard: DST both ways, a 30-minute DST (Lord Howe),
/// half- and quarter-hour offsets (Kolkata, Kathmandu), a day skipped (Apia, 2011-12-30), a
/// fall-back across midnight (Sao Paulo until 2019), an offset in seconds (Monrovia until
/// 1972) and a southern-hemisphere DST (Santiago, which jumps at midnight).
const ZONES: [&str; 10] = [
    "America/New_York",
    "Europe/London",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Pacific/Apia",
    "America/Sao_Paulo",
    "Africa/Monrovia",
    "America/Santiago",
    "Europe/Berlin",
];

/// UTC, or one of `ZONES`.
fn calendar() -> impl Strategy<Value = Calendar> {
    let zones = std::iter::once(None)
        .chain(ZONES.iter().map(|z| Some(*z)))
        .collect::<Vec<_>>();
    (prop::sample::select(zones), week_start())
        .prop_map(|(zone, ws)| Calendar::in_zone(ws, zone.map(|name| Zone::named(name).unwrap())))
}

/// Timestamps anywhere from 1970 to 9999, and more often in the decades with the most
/// changes of offset.
fn timestamp() -> impl Strategy<Value = i64> {
    prop_oneof![0..=MAX_TIMESTAMP_MS, 0..=2_000_000_000_000i64]
}

/// URL-shaped strings, valid and not, to reach deep into the URL parser.
fn url_like() -> impl Strategy<Value = String> {
    "(HTTP|http|https|ftp|)(://|:/|:)[a-zA-Z0-9.\\-\\[\\]%@:]{0,24}(:[0-9]{0,6})?(/[ -~]{0,40})?(\\?[ -~]{0,20})?(#[ -~]{0,10})?"
}

proptest! {
    #[test]
    fn every_timestamp_lies_in_exactly_one_bucket(ts in timestamp(), p in period(), cal in calendar()) {
        let start = cal.start(ts, p);
        let end = cal.end(start, p);
        prop_assert!(start <= ts && ts < end, "{:?} in {}: {} not in [{}, {})", p, cal.zone_name(), ts, start, end);
        // The bucket is one: its start maps back to itself, and the next one starts at its end.
        if start >= 0 {
            prop_assert_eq!(cal.start(start, p), start, "{:?} in {}", p, cal.zone_name());
        }
        if end <= MAX_TIMESTAMP_MS {
            prop_assert_eq!(cal.start(end, p), end, "{:?} in {}: the next bucket starts at the end", p, cal.zone_name());
            prop_assert_eq!(cal.start(end - 1, p), start, "{:?} in {}", p, cal.zone_name());
        }
    }

    #[test]
    fn series_are_contiguous_and_ordered(ts in timestamp(), p in period(), cal in calendar(), n in 1usize..40) {
        let starts = cal.series(ts, p, n);
        prop_assert!(!starts.is_empty() && starts.len() <= n);
        prop_assert_eq!(*starts.last().unwrap(), cal.start(ts, p));
        for pair in starts.windows(2) {
            prop_assert!(pair[0] < pair[1]);
            prop_assert_eq!(cal.end(pair[0], p), pair[1], "{:?} in {}", p, cal.zone_name());
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
