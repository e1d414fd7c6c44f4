//! Time buckets: which month, week, day, hour and minute a timestamp falls in, in UTC here
//! and on a zone's local calendar in [`super::zone`].
//!
//! A bucket is named by its first millisecond since the Unix epoch, the same numbers the
//! original HitMe used in its Redis keys. The all-time "bucket" starts at the epoch and never
//! ends. Pure functions only: no clock, no I/O.

use ::time::{Date, OffsetDateTime};

use super::period::{PerPeriod, Period, WeekStart, MAX_TIMESTAMP_MS};
use super::zone::Zone;

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;

/// The calendar buckets are cut on: UTC or a time zone's local calendar
/// ([`super::zone`]), with a chosen first day of the week.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Calendar {
    pub week_start: WeekStart,
    /// `None` is UTC, cut with plain arithmetic.
    pub zone: Option<Zone>,
}

impl Calendar {
    /// A UTC calendar.
    pub fn new(week_start: WeekStart) -> Calendar {
        Calendar {
            week_start,
            zone: None,
        }
    }

    /// A calendar in `zone` (`None`: UTC).
    pub fn in_zone(week_start: WeekStart, zone: Option<Zone>) -> Calendar {
        Calendar { week_start, zone }
    }

    /// The zone's IANA name: `UTC` when there is none.
    pub fn zone_name(&self) -> &str {
        self.zone.as_ref().map_or("UTC", Zone::name)
    }

    /// The start of each period's bucket holding `timestamp_ms` (0 for all-time).
    pub fn starts(&self, timestamp_ms: i64) -> PerPeriod<i64> {
        PerPeriod::from_fn(|period| self.start(timestamp_ms, period))
    }

    /// The start of the `period` bucket holding `timestamp_ms`.
    pub fn start(&self, timestamp_ms: i64, period: Period) -> i64 {
        match (&self.zone, period) {
            (_, Period::All) => 0,
            (None, _) => bucket_start(timestamp_ms, period, self.week_start),
            (Some(zone), _) => zone.start(timestamp_ms, period, self.week_start),
        }
    }

    /// The first millisecond after the `period` bucket that starts at `start`.
    pub fn end(&self, start: i64, period: Period) -> i64 {
        match (&self.zone, period) {
            (_, Period::All) => MAX_TIMESTAMP_MS + 1,
            (None, _) => bucket_end(start, period, self.week_start),
            (Some(zone), _) => zone.end(start, period, self.week_start),
        }
    }

    /// The starts of the last `count` buckets of `period` up to and including the one
    /// holding `timestamp_ms`, oldest first. Buckets before the epoch are left out, so near
    /// 1970 there may be fewer.
    pub fn series(&self, timestamp_ms: i64, period: Period, count: usize) -> Vec<i64> {
        let mut starts = Vec::with_capacity(count);
        let mut start = self.start(timestamp_ms, period);
        starts.push(start);
        while starts.len() < count && start > 0 {
            start = self.start(start - 1, period);
            starts.push(start);
        }
        starts.reverse();
        starts
    }
}

/// The start, in ms since the epoch, of the `period` bucket holding `timestamp_ms`.
///
/// `timestamp_ms` must lie in `0..=MAX_TIMESTAMP_MS`; the result can be negative for
/// weeks that began in 1969.
pub(crate) fn bucket_start(timestamp_ms: i64, period: Period, week_start: WeekStart) -> i64 {
    debug_assert!((0..=MAX_TIMESTAMP_MS).contains(&timestamp_ms));
    match period {
        Period::All => 0,
        Period::Minute => floor_to(timestamp_ms, MINUTE_MS),
        Period::Hour => floor_to(timestamp_ms, HOUR_MS),
        Period::Day => floor_to(timestamp_ms, DAY_MS),
        Period::Week => {
            let day = floor_to(timestamp_ms, DAY_MS);
            let weekday = date_of(timestamp_ms).weekday();
            let days_into_week = match week_start {
                WeekStart::Monday => weekday.number_days_from_monday(),
                WeekStart::Sunday => weekday.number_days_from_sunday(),
            };
            day - i64::from(days_into_week) * DAY_MS
        }
        Period::Month => {
            let date = date_of(timestamp_ms);
            let first = Date::from_calendar_date(date.year(), date.month(), 1)
                .expect("the 1st of a valid date's month is valid");
            first.midnight().assume_utc().unix_timestamp() * 1000
        }
    }
}

/// The first millisecond after the `period` bucket that starts at `start`.
pub(crate) fn bucket_end(start: i64, period: Period, week_start: WeekStart) -> i64 {
    match period {
        Period::All => MAX_TIMESTAMP_MS + 1,
        Period::Minute => start + MINUTE_MS,
        Period::Hour => start + HOUR_MS,
        Period::Day => start + DAY_MS,
        Period::Week => start + 7 * DAY_MS,
        // Every month is shorter than 32 days, so 32 days on is in the next one.
        Period::Month if start + 32 * DAY_MS > MAX_TIMESTAMP_MS => MAX_TIMESTAMP_MS + 1,
        Period::Month => bucket_start(start + 32 * DAY_MS, period, week_start),
    }
}

fn floor_to(timestamp_ms: i64, unit_ms: i64) -> i64 {
    timestamp_ms.div_euclid(unit_ms) * unit_ms
}

fn date_of(timestamp_ms: i64) -> Date {
    OffsetDateTime::from_unix_timestamp(timestamp_ms.div_euclid(1000))
        .expect("timestamps up to year 9999 are in range")
        .date()
}

#[cfg(test)]
mod tests {
    use super::*;
    use Period::*;
    use WeekStart::*;

    /// ms since the epoch of a UTC date and time, computed independently of the code under test.
    fn at(y: i32, mo: u8, d: u8, h: u8, mi: u8, s: u8, ms: u16) -> i64 {
        let month = time::Month::try_from(mo).unwrap();
        let date = Date::from_calendar_date(y, month, d).unwrap();
        let dt = date.with_hms_milli(h, mi, s, ms).unwrap().assume_utc();
        (dt.unix_timestamp_nanos() / 1_000_000) as i64
    }

    fn all(ts: i64, ws: WeekStart) -> [i64; 5] {
        Period::BUCKETED.map(|p| bucket_start(ts, p, ws))
    }

    #[test]
    fn known_vector_mid_month() {
        // 2023-11-15T01:02:03.456Z is a Wednesday.
        let ts = 1_700_010_123_456;
        assert_eq!(ts, at(2023, 11, 15, 1, 2, 3, 456));
        assert_eq!(
            all(ts, Monday),
            [
                1_698_796_800_000, // 2023-11-01
                1_699_833_600_000, // Monday 2023-11-13
                1_700_006_400_000, // 2023-11-15
                1_700_010_000_000, // 01:00
                1_700_010_120_000, // 01:02
            ]
        );
        assert_eq!(bucket_start(ts, Week, Sunday), 1_699_747_200_000); // Sunday 2023-11-12
    }

    #[test]
    fn epoch_start_weeks_begin_in_1969() {
        // 1970-01-01 was a Thursday.
        assert_eq!(all(0, Monday), [0, -3 * DAY_MS, 0, 0, 0]);
        assert_eq!(bucket_start(0, Week, Sunday), -4 * DAY_MS);
        assert_eq!(bucket_start(1, Minute, Monday), 0);
    }

    #[test]
    fn leap_day() {
        let ts = at(2024, 2, 29, 23, 59, 59, 999);
        assert_eq!(bucket_start(ts, Month, Monday), at(2024, 2, 1, 0, 0, 0, 0));
        assert_eq!(bucket_start(ts, Day, Monday), at(2024, 2, 29, 0, 0, 0, 0));
        assert_eq!(bucket_start(ts, Week, Monday), at(2024, 2, 26, 0, 0, 0, 0));
        let next = ts + 1;
        assert_eq!(
            bucket_start(next, Month, Monday),
            at(2024, 3, 1, 0, 0, 0, 0)
        );
        assert_eq!(bucket_start(next, Day, Monday), next);
        // 2000 was a leap year (divisible by 400).
        let y2k = at(2000, 2, 29, 12, 0, 0, 0);
        assert_eq!(bucket_start(y2k, Month, Monday), at(2000, 2, 1, 0, 0, 0, 0));
    }

    #[test]
    fn year_end() {
        let ts = at(2023, 12, 31, 23, 59, 59, 999);
        assert_eq!(
            all(ts, Monday),
            [
                at(2023, 12, 1, 0, 0, 0, 0),
                at(2023, 12, 25, 0, 0, 0, 0),
                at(2023, 12, 31, 0, 0, 0, 0),
                at(2023, 12, 31, 23, 0, 0, 0),
                at(2023, 12, 31, 23, 59, 0, 0),
            ]
        );
        // 2023-12-31 is a Sunday: it starts the Sunday week and ends the Monday one.
        assert_eq!(bucket_start(ts, Week, Sunday), at(2023, 12, 31, 0, 0, 0, 0));
        assert_eq!(
            all(ts + 1, Monday),
            [at(2024, 1, 1, 0, 0, 0, 0); 5],
            "2024-01-01 00:00 is a Monday and starts every bucket"
        );
    }

    #[test]
    fn iso_week_crossing_a_year() {
        // 2021-01-01 (Friday) is in the ISO week that began Monday 2020-12-28.
        let ts = at(2021, 1, 1, 10, 0, 0, 0);
        assert_eq!(bucket_start(ts, Week, Monday), at(2020, 12, 28, 0, 0, 0, 0));
        assert_eq!(bucket_start(ts, Week, Sunday), at(2020, 12, 27, 0, 0, 0, 0));
        assert_eq!(bucket_start(ts, Month, Monday), at(2021, 1, 1, 0, 0, 0, 0));
    }

    #[test]
    fn far_future_up_to_year_9999() {
        let ts = MAX_TIMESTAMP_MS;
        assert_eq!(ts, at(9999, 12, 31, 23, 59, 59, 999));
        assert_eq!(
            all(ts, Monday),
            [
                at(9999, 12, 1, 0, 0, 0, 0),
                at(9999, 12, 27, 0, 0, 0, 0), // 9999-12-31 is a Friday
                at(9999, 12, 31, 0, 0, 0, 0),
                at(9999, 12, 31, 23, 0, 0, 0),
                at(9999, 12, 31, 23, 59, 0, 0),
            ]
        );
    }

    #[test]
    fn bucket_ends() {
        let feb = at(2024, 2, 1, 0, 0, 0, 0);
        assert_eq!(bucket_end(feb, Month, Monday), at(2024, 3, 1, 0, 0, 0, 0));
        let dec = at(9999, 12, 1, 0, 0, 0, 0);
        assert_eq!(bucket_end(dec, Month, Monday), MAX_TIMESTAMP_MS + 1);
        assert_eq!(bucket_end(0, Minute, Monday), 60_000);
        assert_eq!(bucket_end(-3 * DAY_MS, Week, Monday), 4 * DAY_MS);
    }

    #[test]
    fn series_walk_back_over_uneven_months() {
        let ts = at(2024, 3, 15, 12, 0, 0, 0);
        assert_eq!(
            Calendar::new(Monday).series(ts, Month, 4),
            [
                at(2023, 12, 1, 0, 0, 0, 0),
                at(2024, 1, 1, 0, 0, 0, 0),
                at(2024, 2, 1, 0, 0, 0, 0),
                at(2024, 3, 1, 0, 0, 0, 0),
            ]
        );
        assert_eq!(
            Calendar::new(Monday).series(ts, Hour, 3),
            [ts - 2 * HOUR_MS, ts - HOUR_MS, ts]
        );
        assert_eq!(
            Calendar::new(Monday).series(ts, Day, 1),
            [at(2024, 3, 15, 0, 0, 0, 0)]
        );
        // Near the epoch the series stops at the first bucket.
        assert_eq!(Calendar::new(Monday).series(90_000, Minute, 5), [0, 60_000]);
        assert_eq!(Calendar::new(Monday).series(5, Week, 5), [-3 * DAY_MS]);
    }

    #[test]
    fn every_timestamp_lies_in_its_bucket() {
        // A deterministic sweep over the whole range (a cheap stand-in for a property test).
        let mut ts: i64 = 0;
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ts = (ts + (state % (MAX_TIMESTAMP_MS as u64 / 5_000)) as i64) % MAX_TIMESTAMP_MS;
            for ws in [Monday, Sunday] {
                for p in Period::BUCKETED {
                    let start = bucket_start(ts, p, ws);
                    assert!(start <= ts, "{p:?} start {start} after {ts}");
                    assert_eq!(bucket_start(start.max(0), p, ws), start, "{p:?} at {ts}");
                    assert!(ts < bucket_end(start, p, ws), "{p:?} ends before {ts}");
                    let date = date_of(start.max(0));
                    if p == Month {
                        assert_eq!(date.day(), 1);
                    }
                    if p == Week && start >= 0 {
                        let want = match ws {
                            Monday => time::Weekday::Monday,
                            Sunday => time::Weekday::Sunday,
                        };
                        assert_eq!(date.weekday(), want);
                        assert!(ts - start < 7 * DAY_MS);
                    }
                }
            }
        }
    }
}
