//! Virtual-or-real time as a plain value.
//!
//! The engine never reads a clock: every call receives `now` as a [`Time`]. The runtime builds it from a
//! monotonic clock, the simulator from its virtual clock. Same inputs, same outputs.
#![deny(clippy::disallowed_methods, clippy::disallowed_types)] // the pure core: see clippy.toml

use std::fmt;
use std::ops::{Add, Sub};
use std::time::Duration;

/// A point in time, in microseconds since an epoch chosen by the driver (daemon start, simulation start).
///
/// It exists so that the pure core can compare and add times without ever asking the OS what time it is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct Time(pub u64);

impl Time {
    /// The driver's epoch.
    pub const ZERO: Time = Time(0);

    pub fn from_micros(us: u64) -> Time {
        Time(us)
    }

    pub fn from_millis(ms: u64) -> Time {
        Time(ms.saturating_mul(1000))
    }

    pub fn from_secs(s: u64) -> Time {
        Time(s.saturating_mul(1_000_000))
    }

    pub fn as_micros(self) -> u64 {
        self.0
    }

    pub fn as_millis(self) -> u64 {
        self.0 / 1000
    }

    /// Time elapsed since `earlier`, zero if `earlier` is in the future.
    pub fn since(self, earlier: Time) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Time {
    type Output = Time;
    fn add(self, d: Duration) -> Time {
        Time(self.0.saturating_add(d.as_micros().min(u64::MAX as u128) as u64))
    }
}

impl Sub<Duration> for Time {
    type Output = Time;
    fn sub(self, d: Duration) -> Time {
        Time(self.0.saturating_sub(d.as_micros().min(u64::MAX as u128) as u64))
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:06}s", self.0 / 1_000_000, self.0 % 1_000_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Time::from_millis(1500);
        assert_eq!((t + Duration::from_millis(500)).as_millis(), 2000);
        assert_eq!((t - Duration::from_secs(10)), Time::ZERO);
        assert_eq!(Time::from_secs(2).since(t), Duration::from_millis(500));
        assert_eq!(t.since(Time::from_secs(2)), Duration::ZERO);
        assert_eq!(t.to_string(), "1.500000s");
    }
}
