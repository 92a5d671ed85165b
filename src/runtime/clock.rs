//! The daemon's clock: a monotonic epoch taken at start, turned into the engine's [`Time`].
//!
//! Only the monotonic clock is used, so a wall-clock step (NTP, an operator's `date -s`) never makes a peer look
//! dead or a timer fire early.

use std::time::Duration;

use tokio::time::Instant;

use crate::time::Time;

/// Monotonic clock with its epoch at daemon start: `now()` is the engine's [`Time`].
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    epoch: Instant,
}

impl Clock {
    /// A clock whose epoch is now.
    pub fn start() -> Clock {
        Clock { epoch: Instant::now() }
    }

    /// The current time, in microseconds since the epoch.
    pub fn now(&self) -> Time {
        self.time_of(Instant::now())
    }

    /// The engine time of an instant (zero for instants before the epoch).
    pub fn time_of(&self, at: Instant) -> Time {
        let us = at.saturating_duration_since(self.epoch).as_micros();
        Time::from_micros(u64::try_from(us).unwrap_or(u64::MAX))
    }

    /// The instant of an engine time, for `tokio::time::sleep_until`.
    pub fn instant_of(&self, t: Time) -> Instant {
        // Far-future deadlines are capped: tokio's timer cannot represent arbitrary instants.
        let capped = t.as_micros().min(Duration::from_secs(86_400 * 365).as_micros() as u64);
        self.epoch + Duration::from_micros(capped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn round_trips_and_is_monotonic() {
        let c = Clock::start();
        let a = c.now();
        tokio::time::sleep(Duration::from_millis(5)).await;
        let b = c.now();
        assert!(b > a);
        assert!(b.since(a) >= Duration::from_millis(5));
        let t = Time::from_millis(1234);
        assert_eq!(c.time_of(c.instant_of(t)), t);
        // instants before the epoch clamp to zero
        assert_eq!(c.time_of(c.instant_of(Time::ZERO) - Duration::from_secs(1)), Time::ZERO);
    }
}
