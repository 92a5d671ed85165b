//! Cost: resident memory and CPU of one idle daemon, from /proc. The dedicated benchmark is failoverd at 10
//! heartbeats/s on 2 links (issue #5); [`measure`] is also used on keepalived and corosync.

use std::time::{Duration, Instant};

use super::pair::{Pair, Placement, Timing};
use super::model::{Cost, Record};
use super::sys::{self, Result};

/// Sample the processes at the start and the end of `window`: memory at the end, CPU time in between. The
/// process set is read again at the end; it must not have changed (a restart would void the CPU figure).
pub fn measure(window: Duration, mut pids: impl FnMut() -> Result<Vec<i32>>) -> Result<Cost> {
    let before_pids = pids()?;
    if before_pids.is_empty() {
        return Err("no process to measure".into());
    }
    let before = sys::usage(&before_pids)?;
    let t0 = Instant::now();
    sys::sleep(window)?;
    let after_pids = pids()?;
    let elapsed = t0.elapsed().as_secs_f64();
    if after_pids != before_pids {
        return Err(format!("the measured processes changed during the window: {before_pids:?} then {after_pids:?}"));
    }
    let after = sys::usage(&after_pids)?;
    let ticks = after.cpu_ticks.saturating_sub(before.cpu_ticks) as f64;
    Ok(Cost {
        window_s: elapsed,
        processes: after_pids.len(),
        rss_kib: after.rss_kib,
        hwm_kib: after.hwm_kib,
        cpu_percent: 100.0 * ticks / sys::clock_ticks() as f64 / elapsed,
        sched_percent: 100.0 * after.sched_ns.saturating_sub(before.sched_ns) as f64 / 1e9 / elapsed,
    })
}

/// The cost benchmark: a converged pair at heartbeat_interval 100 ms (10 heartbeats/s per link, 2 links),
/// node n1 measured over `window` after a warm-up.
pub fn run(placement: Placement, window: Duration) -> Result<Record> {
    let timing = Timing::Explicit { heartbeat: Duration::from_millis(100), dead_after: Duration::from_millis(500) };
    let mut pair = Pair::new(placement, timing)?;
    pair.start(0)?;
    pair.start(1)?;
    pair.wait_converged(Duration::from_secs(30))?;
    sys::sleep(Duration::from_secs(2))?;
    tracing::info!(window_s = window.as_secs_f64(), "measuring the idle failoverd n1");
    let cost = measure(window, || pair.pids(0))?;
    if !pair.running(0) || !pair.running(1) {
        return Err("a failoverd node died during the cost window".into());
    }
    tracing::info!(rss_kib = cost.rss_kib, hwm_kib = cost.hwm_kib, cpu_percent = cost.cpu_percent, sched_percent = cost.sched_percent, "idle failoverd");
    Ok(Record::Cost { settings: timing.describe(), net: pair.net().to_string(), cost })
}
