//! The six periods HitMe counts in (all-time, month, week, day, hour, minute), the day weeks
//! start on, the last timestamp accepted, and
//! `PerPeriod`, one value for each, in that order: counts, keys, retention and expiries all
//! travel in it, so no code indexes arrays by position.

use std::ops::{Index, IndexMut};

/// The last millisecond HitMe accepts: 9999-12-31T23:59:59.999Z.
pub const MAX_TIMESTAMP_MS: i64 = 253_402_300_799_999;

/// The day a week starts on: ISO weeks start on Monday; the original node build used Sunday.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeekStart {
    #[default]
    Monday,
    Sunday,
}

impl WeekStart {
    /// The name `--week-start` takes.
    pub const fn name(self) -> &'static str {
        match self {
            WeekStart::Monday => "monday",
            WeekStart::Sunday => "sunday",
        }
    }
}

/// A period a hit is counted in: all-time, or one of the five calendar buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Period {
    All,
    Month,
    Week,
    Day,
    Hour,
    Minute,
}

impl Period {
    /// Every period, in the order the API reports them.
    pub(crate) const EVERY: [Period; 6] = [
        Period::All,
        Period::Month,
        Period::Week,
        Period::Day,
        Period::Hour,
        Period::Minute,
    ];

    /// The periods cut into calendar buckets, longest first.
    pub const BUCKETED: [Period; 5] = [
        Period::Month,
        Period::Week,
        Period::Day,
        Period::Hour,
        Period::Minute,
    ];

    /// The name in Redis keys (`hits:all`, `hits:<name>:<start>`) and in `period=` parameters.
    pub const fn name(self) -> &'static str {
        match self {
            Period::All => "all",
            Period::Month => "month",
            Period::Week => "week",
            Period::Day => "day",
            Period::Hour => "hour",
            Period::Minute => "minute",
        }
    }

    /// The name in API responses.
    pub const fn json_name(self) -> &'static str {
        match self {
            Period::All => "all_time",
            Period::Month => "last_month",
            Period::Week => "last_week",
            Period::Day => "last_day",
            Period::Hour => "last_hour",
            Period::Minute => "last_minute",
        }
    }

    /// The bucketed period with this name, if any (`all` is not one).
    pub(crate) fn bucketed_from_name(name: &str) -> Option<Period> {
        Period::BUCKETED.into_iter().find(|p| p.name() == name)
    }

    /// How many buckets `/series` returns when not told: an hour of minutes, a day of hours,
    /// a month of days, a quarter of weeks, a year of months.
    pub const fn default_series_len(self) -> usize {
        match self {
            Period::All => 1,
            Period::Month => 12,
            Period::Week => 13,
            Period::Day => 30,
            Period::Hour => 24,
            Period::Minute => 60,
        }
    }

    const fn position(self) -> usize {
        self as usize
    }
}

/// One `T` for each period, all-time first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PerPeriod<T>([T; 6]);

impl<T> PerPeriod<T> {
    /// Each period's value, made by `f`.
    pub(crate) fn from_fn(mut f: impl FnMut(Period) -> T) -> PerPeriod<T> {
        PerPeriod(Period::EVERY.map(&mut f))
    }

    pub fn map<U>(self, mut f: impl FnMut(Period, T) -> U) -> PerPeriod<U> {
        let mut periods = Period::EVERY.into_iter();
        PerPeriod(
            self.0
                .map(|value| f(periods.next().expect("six periods"), value)),
        )
    }

    /// Each period with its value, all-time first.
    pub fn iter(&self) -> impl Iterator<Item = (Period, &T)> {
        Period::EVERY.into_iter().zip(&self.0)
    }

    /// Each bucketed period with its value (all-time left out), longest first.
    pub fn buckets(&self) -> impl Iterator<Item = (Period, &T)> {
        self.iter().skip(1)
    }

    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.0.iter()
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.0.iter_mut()
    }
}

impl<T> Index<Period> for PerPeriod<T> {
    type Output = T;
    fn index(&self, period: Period) -> &T {
        &self.0[period.position()]
    }
}

impl<T> IndexMut<Period> for PerPeriod<T> {
    fn index_mut(&mut self, period: Period) -> &mut T {
        &mut self.0[period.position()]
    }
}

impl<T> IntoIterator for PerPeriod<T> {
    type Item = (Period, T);
    type IntoIter = std::iter::Zip<std::array::IntoIter<Period, 6>, std::array::IntoIter<T, 6>>;
    fn into_iter(self) -> Self::IntoIter {
        Period::EVERY.into_iter().zip(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_follow_their_period() {
        let names = PerPeriod::from_fn(Period::name);
        assert_eq!(names[Period::All], "all");
        assert_eq!(names[Period::Minute], "minute");
        let order: Vec<&str> = names.iter().map(|(_, n)| *n).collect();
        assert_eq!(order, ["all", "month", "week", "day", "hour", "minute"]);
        let bucketed: Vec<Period> = names.buckets().map(|(p, _)| p).collect();
        assert_eq!(bucketed, Period::BUCKETED);
        let lengths = names.map(|_, n| n.len());
        assert_eq!(lengths[Period::Week], 4);
    }

    #[test]
    fn names_round_trip() {
        for p in Period::BUCKETED {
            assert_eq!(Period::bucketed_from_name(p.name()), Some(p));
        }
        assert_eq!(Period::bucketed_from_name("all"), None);
        assert_eq!(Period::bucketed_from_name("Hour"), None);
    }
}
