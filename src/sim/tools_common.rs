//! Helpers shared by the simulated tools (`storage`, `hardware`): random latencies, clock formatting, the
//! standard "command not found" / "unsupported arguments" answers, and the timeout rule.
//!
//! Everything here is pure: randomness comes from the caller's generator, time from the caller's clock.

use std::time::Duration;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::command::{Command, CommandResult, Exit};
use crate::time::Time;

/// Unix time of the simulator's `Time::ZERO` unless a scenario says otherwise: 2026-11-25 00:00:00 UTC, the
/// day the OpenZFS captures in `tests/fixtures/openzfs-2.1.11/` were taken.
pub const DEFAULT_EPOCH_UNIX: u64 = 1_795_564_800;

/// A duration drawn uniformly from `[lo_ms, hi_ms]` milliseconds, at microsecond resolution.
pub fn between_ms(rng: &mut ChaCha8Rng, lo_ms: u64, hi_ms: u64) -> Duration {
    let (lo, hi) = (lo_ms * 1000, hi_ms.max(lo_ms) * 1000);
    Duration::from_micros(rng.random_range(lo..=hi))
}

/// The program's base name: `/usr/sbin/fence_ipmilan` → `fence_ipmilan`.
pub fn program_name(argv0: &str) -> &str {
    argv0.rsplit('/').next().unwrap_or(argv0)
}

/// What a shell answers for a program the simulated host does not have (exit 127).
pub fn command_not_found(cmd: &Command) -> CommandResult {
    let prog = cmd.program();
    CommandResult::exited(127, "", format!("{prog}: command not found\n"))
}

/// The answer to an invocation of a known tool with arguments the simulator does not model (exit 2, like
/// a usage error). The text says plainly that the simulator, not the tool, refused.
pub fn unsupported(cmd: &Command) -> CommandResult {
    let prog = program_name(cmd.program());
    CommandResult::exited(2, "", format!("{prog}: unsupported invocation (failoverd simulator): {}\n", cmd.display()))
}

/// The finish time of a command that would take `took`, honouring the command's own timeout: `None` when
/// the command runs past it (the driver kills it; no side effect happens). A zero timeout means "none".
pub fn within_timeout(cmd: &Command, took: Duration) -> Option<Duration> {
    if cmd.timeout.is_zero() || took <= cmd.timeout {
        Some(took)
    } else {
        None
    }
}

/// A killed-at-timeout result that ran for `ran`.
pub fn timed_out_after(ran: Duration) -> CommandResult {
    CommandResult { exit: Exit::TimedOut, stdout: String::new(), stderr: String::new(), duration: ran }
}

/// Stamp the duration `finish - started` on a result.
pub fn with_duration(mut result: CommandResult, started: Time, finish: Time) -> CommandResult {
    result.duration = finish.since(started);
    result
}

/// `ctime(3)` of a Unix time in UTC, without the trailing newline: `Wed Nov 25 00:26:26 2026`.
pub fn ctime(unix: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let days = unix / 86_400;
    let secs = unix % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{} {}{:>3} {:02}:{:02}:{:02} {}",
        DAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        day,
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        year
    )
}

/// Proleptic Gregorian (year, month 1-12, day 1-31) of a count of days since 1970-01-01.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Shift the epoch to 0000-03-01 so that leap days fall at the end of each 400-year era's years.
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// A stable pseudo-random 64-bit value derived from a string (FNV-1a), for identifiers that real tools
/// generate at random but that must not consume the simulation's random stream (UUIDs of lctl devices).
pub fn stable_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn ctime_matches_the_capture_and_pads_the_day() {
        assert_eq!(ctime(DEFAULT_EPOCH_UNIX + 26 * 60 + 26), "Wed Nov 25 00:26:26 2026");
        assert_eq!(ctime(0), "Thu Jan  1 00:00:00 1970");
        assert_eq!(ctime(951_782_400), "Tue Feb 29 00:00:00 2000");
    }

    #[test]
    fn durations_are_seeded() {
        let mut a = ChaCha8Rng::seed_from_u64(7);
        let mut b = ChaCha8Rng::seed_from_u64(7);
        let d = between_ms(&mut a, 100, 200);
        assert_eq!(d, between_ms(&mut b, 100, 200));
        assert!(d >= Duration::from_millis(100) && d <= Duration::from_millis(200));
    }

    #[test]
    fn timeouts() {
        let cmd = Command::new(["x"], Duration::from_secs(5));
        assert_eq!(within_timeout(&cmd, Duration::from_secs(4)), Some(Duration::from_secs(4)));
        assert_eq!(within_timeout(&cmd, Duration::from_secs(6)), None);
        let unlimited = Command::new(["x"], Duration::ZERO);
        assert!(within_timeout(&unlimited, Duration::from_secs(600)).is_some());
    }
}
