//! Time and its buckets: the six periods ([`period`]), where a timestamp's bucket of each
//! starts on a UTC or local calendar ([`buckets`], [`zone`]), and the clock. Everything here
//! is pure arithmetic except [`clock`]; nothing above it is imported.

pub mod buckets;
pub(crate) mod clock;
pub mod period;
pub mod zone;

pub use self::buckets::Calendar;
pub use self::period::{PerPeriod, Period, WeekStart, MAX_TIMESTAMP_MS};
pub use self::zone::Zone;
