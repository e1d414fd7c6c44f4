//! Buckets on a local calendar (`--time-zone`): where a zone's months, weeks, days, hours and
//! minutes begin, as instants, across daylight-saving changes and odd offsets.
//!
//! A bucket starts at a *boundary*: an instant whose local time is the first of a month,
//! week, day, hour or minute, or the instant a clock jumps forward over such a time. The
//! bucket holding a timestamp starts at the latest boundary at or before it and ends at the
//! next one, so buckets never overlap and leave no gaps. Hence:
//! - a 23- or 25-hour day is one day bucket;
//! - when a clock is turned back, the local times it repeats are passed twice, and a
//!   boundary among them starts a bucket each time: the repeated hour of a fall-back is two
//!   hour buckets (and its minutes two minute buckets each); the original node build, whose
//!   `new Date(y, m, d, h)` picks one of the two, merges them;
//! - a boundary skipped by a jump forward starts its bucket at the jump.
//!
//! The zone's rules are parsed once at startup; a bucket start costs a few binary searches
//! over its transitions, not a lookup by name.

use jiff::civil::{DateTime, Time};
use jiff::tz::{AmbiguousOffset, Offset, TimeZone};
use jiff::{Timestamp, ToSpan};

use super::period::{Period, WeekStart, MAX_TIMESTAMP_MS};

/// The most transitions looked at between a bucket's start and a timestamp: real zones have
/// at most a few in a month.
const MAX_TRANSITIONS: usize = 8;

/// A time zone of the IANA database, with its name.
#[derive(Debug, Clone)]
pub struct Zone {
    name: String,
    tz: TimeZone,
}

impl PartialEq for Zone {
    fn eq(&self, other: &Zone) -> bool {
        self.name == other.name
    }
}

impl Eq for Zone {}

impl Zone {
    /// The zone named `name` (`America/New_York`, `Asia/Kolkata`, ...), from the database
    /// compiled into HitMe, so every machine cuts the same buckets whatever its own
    /// `/usr/share/zoneinfo` holds.
    pub fn named(name: &str) -> Result<Zone, String> {
        let tz = jiff::tz::db().get(name).map_err(|_| {
            format!(
                "unknown time zone '{name}': give an IANA zone name such as UTC, \
                 America/New_York, Europe/Berlin or Asia/Kolkata"
            )
        })?;
        Ok(Zone {
            name: name.to_string(),
            tz,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The start of the `period` bucket (not `All`) holding `timestamp_ms`: the latest
    /// boundary at or before it.
    pub fn start(&self, timestamp_ms: i64, period: Period, week_start: WeekStart) -> i64 {
        let ts = timestamp(timestamp_ms);
        let floor = local_floor(self.tz.to_datetime(ts), period, week_start);
        let mut start = self.at_or_before(floor, ts);
        // A clock turned back since `start` may have passed a boundary that the wound-back
        // local time has not reached again; the latest such boundary starts the bucket.
        let transitions = self.tz.preceding(timestamp(timestamp_ms + 1));
        for transition in transitions.take(MAX_TRANSITIONS) {
            let at = transition.timestamp().as_millisecond();
            if at <= start {
                break;
            }
            if transition.offset() < self.offset_at(at - 1) {
                start = start.max(self.start(at - 1, period, week_start));
            }
        }
        start
    }

    /// The first millisecond after the `period` bucket that starts at `start`: the next
    /// boundary.
    pub fn end(&self, start: i64, period: Period, week_start: WeekStart) -> i64 {
        // Timestamps past jiff's range count in the bucket of its last one, as in `start`.
        let in_bucket = |t: i64| self.start(t.min(max_ms()), period, week_start) == start;
        // Nearly always the next local boundary: the next day's midnight, say.
        let floor = local_floor(self.tz.to_datetime(timestamp(start)), period, week_start);
        if let Some(next) = next_floor(floor, period) {
            let guess = self.earliest(next);
            if guess > start && in_bucket(guess - 1) && !in_bucket(guess) {
                return guess;
            }
        }
        // Around a change of offset: the first instant in another bucket, by bisection
        // (`start` is in the bucket; a bucket is shorter than 33 days).
        let (mut inside, mut outside) = (start, start + 33 * 86_400_000);
        while outside - inside > 1 {
            let mid = inside + (outside - inside) / 2;
            match in_bucket(mid) {
                true => inside = mid,
                false => outside = mid,
            }
        }
        outside.min(MAX_TIMESTAMP_MS + 1)
    }

    fn offset_at(&self, timestamp_ms: i64) -> Offset {
        self.tz.to_offset(timestamp(timestamp_ms))
    }

    /// The latest instant at or before `ts` whose local time is `local`, or, when the clock
    /// jumped over `local`, the instant of the jump.
    fn at_or_before(&self, local: DateTime, ts: Timestamp) -> i64 {
        let ts = ts.as_millisecond();
        match self.tz.to_ambiguous_timestamp(local).offset() {
            AmbiguousOffset::Unambiguous { offset } => instant(local, offset),
            AmbiguousOffset::Fold { before, after } => {
                let later = instant(local, after);
                if later <= ts {
                    later
                } else {
                    instant(local, before)
                }
            }
            AmbiguousOffset::Gap { after, .. } => self.jump_after(instant(local, after)),
        }
    }

    /// The earliest instant whose local time is `local`, or the jump over it.
    fn earliest(&self, local: DateTime) -> i64 {
        match self.tz.to_ambiguous_timestamp(local).offset() {
            AmbiguousOffset::Unambiguous { offset } => instant(local, offset),
            AmbiguousOffset::Fold { before, .. } => instant(local, before),
            AmbiguousOffset::Gap { after, .. } => self.jump_after(instant(local, after)),
        }
    }

    /// The first transition after `ms`: for a local time in a gap read with the offset after
    /// it, that is the jump over the gap.
    fn jump_after(&self, ms: i64) -> i64 {
        self.tz
            .following(timestamp(ms))
            .next()
            .map_or(ms, |t| t.timestamp().as_millisecond())
    }
}

/// The last millisecond a zoned calendar takes: jiff's timestamps stop short of HitMe's
/// `MAX_TIMESTAMP_MS` so that every offset keeps the local date within year 9999. Later
/// timestamps count in the buckets of this one.
fn max_ms() -> i64 {
    Timestamp::MAX.as_second() * 1000
}

fn timestamp(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms.clamp(Timestamp::MIN.as_second() * 1000, max_ms()))
        .expect("clamped into jiff's range")
}

/// The instant at which local time `local` is read at `offset`. Plain arithmetic rather
/// than jiff's conversion, which refuses instants past its range in year 9999.
fn instant(local: DateTime, offset: Offset) -> i64 {
    let date = local.date();
    let days = days_from_civil(
        i64::from(date.year()),
        i64::from(date.month()),
        i64::from(date.day()),
    );
    let time_ms = ((i64::from(local.hour()) * 60 + i64::from(local.minute())) * 60
        + i64::from(local.second()))
        * 1000
        + i64::from(local.millisecond());
    days * 86_400_000 + time_ms - i64::from(offset.seconds()) * 1000
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The local time that starts the `period` bucket holding local time `local`.
fn local_floor(local: DateTime, period: Period, week_start: WeekStart) -> DateTime {
    let date = local.date();
    match period {
        Period::Minute => date.to_datetime(Time::constant(local.hour(), local.minute(), 0, 0)),
        Period::Hour => date.to_datetime(Time::constant(local.hour(), 0, 0, 0)),
        Period::Day => date.to_datetime(Time::midnight()),
        Period::Week => {
            let days_into_week = match week_start {
                WeekStart::Monday => date.weekday().to_monday_zero_offset(),
                WeekStart::Sunday => date.weekday().to_sunday_zero_offset(),
            };
            // Before jiff's first day only near year -9999: not a timestamp HitMe takes.
            date.checked_sub(i64::from(days_into_week).days())
                .unwrap_or(date)
                .to_datetime(Time::midnight())
        }
        Period::Month => date.first_of_month().to_datetime(Time::midnight()),
        Period::All => unreachable!("the all-time bucket has no local start"),
    }
}

/// The local time that starts the bucket after the one `floor` starts; `None` past year 9999.
fn next_floor(floor: DateTime, period: Period) -> Option<DateTime> {
    let step = match period {
        Period::Minute => 1.minute(),
        Period::Hour => 1.hour(),
        Period::Day => 1.day(),
        Period::Week => 7.days(),
        Period::Month => 1.month(),
        Period::All => return None,
    };
    floor.checked_add(step).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use Period::*;

    /// (zone, timestamp, [(start, end)] of month, week (from Monday), day, hour, minute),
    /// computed independently: with Python's zoneinfo, by walking minute by minute to the
    /// nearest instants whose local time is a boundary or jumps over one.
    type Vector = (&'static str, i64, [(i64, i64); 5]);

    #[rustfmt::skip]
    const VECTORS: [Vector; 19] = [
    ("America/New_York", 1710072000000, [(1709269200000, 1711944000000), (1709528400000, 1710129600000), (1710046800000, 1710129600000), (1710072000000, 1710075600000), (1710072000000, 1710072060000)]), // 2024-03-10T12:00:00Z, local 2024-03-10 08:00:00
    ("America/New_York", 1710055800000, [(1709269200000, 1711944000000), (1709528400000, 1710129600000), (1710046800000, 1710129600000), (1710054000000, 1710057600000), (1710055800000, 1710055860000)]), // 2024-03-10T07:30:00Z, local 2024-03-10 03:30:00
    ("America/New_York", 1710053940000, [(1709269200000, 1711944000000), (1709528400000, 1710129600000), (1710046800000, 1710129600000), (1710050400000, 1710054000000), (1710053940000, 1710054000000)]), // 2024-03-10T06:59:00Z, local 2024-03-10 01:59:00
    ("America/New_York", 1730611800000, [(1730433600000, 1733029200000), (1730088000000, 1730696400000), (1730606400000, 1730696400000), (1730610000000, 1730613600000), (1730611800000, 1730611860000)]), // 2024-11-03T05:30:00Z, local 2024-11-03 01:30:00
    ("America/New_York", 1730615400000, [(1730433600000, 1733029200000), (1730088000000, 1730696400000), (1730606400000, 1730696400000), (1730613600000, 1730617200000), (1730615400000, 1730615460000)]), // 2024-11-03T06:30:00Z, local 2024-11-03 01:30:00
    ("America/New_York", 1730613630000, [(1730433600000, 1733029200000), (1730088000000, 1730696400000), (1730606400000, 1730696400000), (1730613600000, 1730617200000), (1730613600000, 1730613660000)]), // 2024-11-03T06:00:30Z, local 2024-11-03 01:00:30
    ("America/New_York", 1710127800000, [(1709269200000, 1711944000000), (1709528400000, 1710129600000), (1710046800000, 1710129600000), (1710126000000, 1710129600000), (1710127800000, 1710127860000)]), // 2024-03-11T03:30:00Z, local 2024-03-10 23:30:00
    ("Europe/London", 1711845000000, [(1709251200000, 1711926000000), (1711324800000, 1711926000000), (1711843200000, 1711926000000), (1711843200000, 1711846800000), (1711845000000, 1711845060000)]), // 2024-03-31T00:30:00Z, local 2024-03-31 00:30:00
    ("Europe/London", 1711848600000, [(1709251200000, 1711926000000), (1711324800000, 1711926000000), (1711843200000, 1711926000000), (1711846800000, 1711850400000), (1711848600000, 1711848660000)]), // 2024-03-31T01:30:00Z, local 2024-03-31 02:30:00
    ("Europe/London", 1729989000000, [(1727737200000, 1730419200000), (1729465200000, 1730073600000), (1729983600000, 1730073600000), (1729987200000, 1729990800000), (1729989000000, 1729989060000)]), // 2024-10-27T00:30:00Z, local 2024-10-27 01:30:00
    ("Europe/London", 1729992600000, [(1727737200000, 1730419200000), (1729465200000, 1730073600000), (1729983600000, 1730073600000), (1729990800000, 1729994400000), (1729992600000, 1729992660000)]), // 2024-10-27T01:30:00Z, local 2024-10-27 01:30:00
    ("Australia/Lord_Howe", 1712414700000, [(1711890000000, 1714483800000), (1711890000000, 1712496600000), (1712408400000, 1712496600000), (1712412000000, 1712417400000), (1712414700000, 1712414760000)]), // 2024-04-06T14:45:00Z, local 2024-04-07 01:45:00
    ("Australia/Lord_Howe", 1712416200000, [(1711890000000, 1714483800000), (1711890000000, 1712496600000), (1712408400000, 1712496600000), (1712412000000, 1712417400000), (1712416200000, 1712416260000)]), // 2024-04-06T15:10:00Z, local 2024-04-07 01:40:00
    ("Australia/Lord_Howe", 1712418000000, [(1711890000000, 1714483800000), (1711890000000, 1712496600000), (1712408400000, 1712496600000), (1712417400000, 1712421000000), (1712418000000, 1712418060000)]), // 2024-04-06T15:40:00Z, local 2024-04-07 02:10:00
    ("Australia/Lord_Howe", 1728141600000, [(1727703000000, 1730379600000), (1727616600000, 1728219600000), (1728135000000, 1728219600000), (1728138600000, 1728142200000), (1728141600000, 1728141660000)]), // 2024-10-05T15:20:00Z, local 2024-10-06 01:50:00
    ("Australia/Lord_Howe", 1728142800000, [(1727703000000, 1730379600000), (1727616600000, 1728219600000), (1728135000000, 1728219600000), (1728142200000, 1728144000000), (1728142800000, 1728142860000)]), // 2024-10-05T15:40:00Z, local 2024-10-06 02:40:00
    ("Asia/Kolkata", 1705256999000, [(1704047400000, 1706725800000), (1704652200000, 1705257000000), (1705170600000, 1705257000000), (1705253400000, 1705257000000), (1705256940000, 1705257000000)]), // 2024-01-14T18:29:59Z, local 2024-01-14 23:59:59
    ("Asia/Kolkata", 1705257000000, [(1704047400000, 1706725800000), (1705257000000, 1705861800000), (1705257000000, 1705343400000), (1705257000000, 1705260600000), (1705257000000, 1705257060000)]), // 2024-01-14T18:30:00Z, local 2024-01-15 00:00:00
    ("Asia/Kolkata", 1709237700000, [(1709231400000, 1711909800000), (1708885800000, 1709490600000), (1709231400000, 1709317800000), (1709235000000, 1709238600000), (1709237700000, 1709237760000)]), // 2024-02-29T20:15:00Z, local 2024-03-01 01:45:00
    ];

    #[test]
    fn buckets_at_both_dst_switches_and_odd_offsets() {
        for (name, ts, want) in VECTORS {
            let zone = Zone::named(name).unwrap();
            for (period, (start, end)) in Period::BUCKETED.into_iter().zip(want) {
                let got = zone.start(ts, period, WeekStart::Monday);
                assert_eq!(got, start, "{name} {ts} {period:?} start");
                assert_eq!(
                    zone.end(got, period, WeekStart::Monday),
                    end,
                    "{name} {ts} {period:?} end"
                );
            }
        }
    }

    #[test]
    fn a_dst_day_is_one_bucket_of_23_or_25_hours() {
        let ny = Zone::named("America/New_York").unwrap();
        let hours = |ts: i64| {
            let start = ny.start(ts, Day, WeekStart::Monday);
            (ny.end(start, Day, WeekStart::Monday) - start) / 3_600_000
        };
        assert_eq!(hours(1_710_072_000_000), 23); // 2024-03-10
        assert_eq!(hours(1_730_635_200_000), 25); // 2024-11-03
        assert_eq!(hours(1_730_808_000_000), 24); // 2024-11-05
    }

    #[test]
    fn the_repeated_hour_of_a_fall_back_is_two_buckets() {
        let ny = Zone::named("America/New_York").unwrap();
        // 01:30 EDT and 01:30 EST on 2024-11-03.
        let (first, second) = (1_730_611_800_000, 1_730_615_400_000);
        assert_eq!(ny.start(first, Hour, WeekStart::Monday), 1_730_610_000_000);
        assert_eq!(ny.start(second, Hour, WeekStart::Monday), 1_730_613_600_000);
        assert_eq!(
            ny.end(1_730_610_000_000, Hour, WeekStart::Monday),
            1_730_613_600_000
        );
    }

    #[test]
    fn sunday_weeks_and_historic_oddities() {
        let ny = Zone::named("America/New_York").unwrap();
        // Sunday 2024-03-10 starts a Sunday week at local midnight, before the jump.
        assert_eq!(
            ny.start(1_710_072_000_000, Week, WeekStart::Sunday),
            1_710_046_800_000
        );
        // Apia skipped 2011-12-30: the 29th (-10) ends where the 31st (+14) begins.
        let apia = Zone::named("Pacific/Apia").unwrap();
        let dec29 = apia.start(1_325_239_000_000, Day, WeekStart::Monday);
        assert_eq!(dec29, 1_325_152_800_000); // 2011-12-29T10:00Z
        assert_eq!(apia.end(dec29, Day, WeekStart::Monday), 1_325_239_200_000); // 2011-12-30T10:00Z
                                                                                // Monrovia kept -00:44:30 until 1972: its minutes start 30 s into the UTC minute.
        let monrovia = Zone::named("Africa/Monrovia").unwrap();
        let minute = monrovia.start(31_536_000_000, Minute, WeekStart::Monday); // 1971-01-01
        assert_eq!(minute.rem_euclid(60_000), 30_000);
    }

    #[test]
    fn unknown_zones_are_refused_with_examples() {
        let err = Zone::named("Mars/Olympus_Mons").unwrap_err();
        assert!(
            err.starts_with("unknown time zone 'Mars/Olympus_Mons'"),
            "{err}"
        );
        assert!(err.contains("America/New_York"), "{err}");
    }

    #[test]
    fn the_far_end_of_year_9999_stays_in_range() {
        for name in ["America/New_York", "Asia/Kolkata", "Pacific/Kiritimati"] {
            let zone = Zone::named(name).unwrap();
            for period in Period::BUCKETED {
                let start = zone.start(MAX_TIMESTAMP_MS, period, WeekStart::Monday);
                assert!(start <= MAX_TIMESTAMP_MS, "{name} {period:?}");
                assert_eq!(
                    zone.end(start, period, WeekStart::Monday),
                    MAX_TIMESTAMP_MS + 1,
                    "{name} {period:?}"
                );
            }
        }
    }
}
