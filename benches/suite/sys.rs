//! The operating-system plumbing every benchmark needs: running tools, starting and killing daemons,
//! reading their cost from /proc, interruptible waits, and the clocks of the log formats.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{kill, SigHandler, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;

/// Errors of the suite: one sentence naming the command, file or step that failed.
pub type Result<T> = std::result::Result<T, String>;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: nix::libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Make SIGINT and SIGTERM set a flag instead of killing the process, so that every wait returns an error
/// and the guards (`Drop`) tear the namespaces and daemons down. Also make this process the reaper of its
/// orphaned descendants (keepalived forks a child that outlives its killed parent), so none is left a zombie.
pub fn install_handlers() {
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores into an atomic, which is async-signal-safe.
        if let Err(e) = unsafe { nix::sys::signal::signal(sig, SigHandler::Handler(on_signal)) } {
            tracing::warn!(signal = %sig, error = %e, "cannot install the signal handler");
        }
    }
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        tracing::warn!(error = %e, "cannot become the child subreaper; killed daemons' children may stay zombies");
    }
}

/// Fails once SIGINT or SIGTERM arrived.
pub fn check_interrupted() -> Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        Err("interrupted by a signal".into())
    } else {
        Ok(())
    }
}

/// Sleep, in slices, failing early if the run is interrupted.
pub fn sleep(d: Duration) -> Result<()> {
    let end = Instant::now() + d;
    loop {
        check_interrupted()?;
        let now = Instant::now();
        if now >= end {
            return Ok(());
        }
        std::thread::sleep((end - now).min(Duration::from_millis(50)));
    }
}

/// Poll `f` every `every` until it returns `Some`, for at most `limit`; the error says what was awaited.
pub fn wait_for<T>(what: &str, limit: Duration, every: Duration, mut f: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    let start = Instant::now();
    loop {
        check_interrupted()?;
        if let Some(v) = f()? {
            return Ok(v);
        }
        if start.elapsed() >= limit {
            return Err(format!("timed out after {limit:?} waiting until {what}"));
        }
        std::thread::sleep(every);
    }
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Run a tool to completion; its stdout on success, an error quoting the command and its stderr otherwise.
pub fn run(cmd: &mut Command) -> Result<String> {
    run_with_stdin(cmd, None)
}

/// [`run`] with `stdin` fed to the tool.
pub fn run_with_stdin(cmd: &mut Command, stdin: Option<&str>) -> Result<String> {
    let what = describe(cmd);
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() }).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("`{what}`: cannot start: {e}"))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes()).map_err(|e| format!("`{what}`: writing its stdin: {e}"))?;
    }
    let out = child.wait_with_output().map_err(|e| format!("`{what}`: {e}"))?;
    if !out.status.success() {
        return Err(format!("`{what}` failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Start a daemon with stdin closed and stdout/stderr appended to `log`. It gets its own process group (a
/// Ctrl-C on the terminal reaches only the suite, which then tears everything down in order) and is killed
/// by the kernel if the suite dies without cleaning up (PR_SET_PDEATHSIG). Returns its pid; the caller reaps
/// it with [`kill_and_reap`].
pub fn spawn_daemon(cmd: &mut Command, log: &Path) -> Result<i32> {
    let what = describe(cmd);
    let file = OpenOptions::new().create(true).append(true).open(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let err = file.try_clone().map_err(|e| format!("{}: {e}", log.display()))?;
    cmd.stdin(Stdio::null()).stdout(Stdio::from(file)).stderr(Stdio::from(err)).process_group(0);
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from));
    }
    let child = cmd.spawn().map_err(|e| format!("`{what}`: cannot start: {e}"))?;
    Ok(child.id() as i32)
}

/// Whether a pid names a live process (a zombie counts as dead).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// SIGKILL every pid at once (a power cut: no goodbye message can leave), then reap those that are our
/// children (directly, or as orphans through the subreaper) and wait until every one is gone. Returns the
/// wall-clock time taken just before the first kill.
pub fn kill_and_reap(pids: &[i32]) -> SystemTime {
    let at = SystemTime::now();
    for &pid in pids {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    reap(pids);
    at
}

/// Reap the given pids where they are our children, and wait (at most 10 s) until none is alive.
pub fn reap(pids: &[i32]) {
    let start = Instant::now();
    for &pid in pids {
        while start.elapsed() < Duration::from_secs(10) {
            match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
                Ok(nix::sys::wait::WaitStatus::StillAlive) => std::thread::sleep(Duration::from_millis(5)),
                // reaped, or not our child: then wait until it is no longer alive
                _ => {
                    if !alive(pid) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    }
    // orphans handed to us by the subreaper that we never knew by pid (e.g. a grandchild)
    while let Ok(status) = waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
        if matches!(status, nix::sys::wait::WaitStatus::StillAlive) {
            break;
        }
    }
}

/// What a set of processes costs at one instant: resident memory and CPU time consumed so far.
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    /// Sum of VmRSS (KiB).
    pub rss_kib: u64,
    /// Sum of VmHWM, the per-process peaks of resident memory (KiB).
    pub hwm_kib: u64,
    /// utime + stime (clock ticks), every thread, living or exited.
    pub cpu_ticks: u64,
    /// Time on a CPU from the scheduler (ns, /proc/PID/task/*/schedstat): nanosecond precision where the
    /// tick count is too coarse for an idle daemon, but only for threads still alive.
    pub sched_ns: u64,
}

/// Read [`Usage`] of `pids` from /proc/PID/status, /proc/PID/stat and /proc/PID/task/*/schedstat.
pub fn usage(pids: &[i32]) -> Result<Usage> {
    let mut u = Usage::default();
    for &pid in pids {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| format!("/proc/{pid}/status: {e}"))?;
        let kib = |key: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        u.rss_kib += kib("VmRSS:");
        u.hwm_kib += kib("VmHWM:");
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| format!("/proc/{pid}/stat: {e}"))?;
        // fields after the command name (which may hold spaces and parentheses): state is field 3,
        // utime field 14, stime field 15
        let rest = stat.rsplit_once(')').map(|(_, r)| r).ok_or_else(|| format!("/proc/{pid}/stat: unreadable"))?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        u.cpu_ticks += field(14) + field(15);
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).map_err(|e| format!("/proc/{pid}/task: {e}"))?;
        for task in tasks.flatten() {
            let sched = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
            u.sched_ns += sched.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        }
    }
    Ok(u)
}

/// Clock ticks per second of /proc/PID/stat (USER_HZ), from `getconf CLK_TCK`; 100 if that fails, which is
/// its value on every Linux architecture this runs on.
pub fn clock_ticks() -> u64 {
    run(Command::new("getconf").arg("CLK_TCK")).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(100)
}

/// Seconds since the Unix epoch of a wall-clock time.
pub fn epoch_s(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Seconds of a `HH:MM:SS[.fraction]` time of day.
fn time_of_day(s: &str) -> Option<f64> {
    let mut parts = s.split(':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let sec: f64 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || !(0.0..24.0).contains(&h) || !(0.0..60.0).contains(&m) || !(0.0..61.0).contains(&sec) {
        return None;
    }
    Some(h * 3600.0 + m * 60.0 + sec)
}

/// Epoch seconds of an RFC 3339 timestamp as tracing-subscriber's JSON log writes it
/// (`2026-11-25T02:28:11.557750Z`, or with a `+HH:MM` offset).
pub fn parse_rfc3339(ts: &str) -> Option<f64> {
    let (date, time) = ts.split_once('T')?;
    let mut d = date.split('-');
    let (y, m, day): (i64, i64, i64) = (d.next()?.parse().ok()?, d.next()?.parse().ok()?, d.next()?.parse().ok()?);
    let (clock, offset_s) = if let Some(c) = time.strip_suffix('Z') {
        (c, 0.0)
    } else {
        let at = time.rfind(['+', '-'])?;
        let (c, off) = time.split_at(at);
        let sign = if off.starts_with('-') { -1.0 } else { 1.0 };
        let (oh, om) = off[1..].split_once(':')?;
        (c, sign * (oh.parse::<f64>().ok()? * 3600.0 + om.parse::<f64>().ok()? * 60.0))
    };
    Some(days_from_civil(y, m, day) as f64 * 86_400.0 + time_of_day(clock)? - offset_s)
}

/// Epoch seconds of a log time of day in UTC that carries no date (corosync's `Nov 25 02:28:17.701` with
/// TZ=UTC): the instant with that time of day nearest to `near` (epoch seconds).
pub fn time_of_day_near(tod: &str, near: f64) -> Option<f64> {
    let secs = time_of_day(tod)?;
    let midnight = (near / 86_400.0).floor() * 86_400.0;
    let candidates = [midnight - 86_400.0 + secs, midnight + secs, midnight + 86_400.0 + secs];
    candidates.into_iter().min_by(|a, b| (a - near).abs().total_cmp(&(b - near).abs()))
}

/// An append-only log file read line by line from a remembered offset (daemons restarted between rounds
/// append to the same file).
pub struct LogTail {
    path: std::path::PathBuf,
    offset: u64,
}

impl LogTail {
    /// Start reading `path` at its current end (or at 0 if it does not exist yet).
    pub fn at_end(path: &Path) -> LogTail {
        let offset = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        LogTail { path: path.to_path_buf(), offset }
    }

    /// Complete lines appended since the last call (a partial last line is left for the next call).
    pub fn new_lines(&mut self) -> Result<Vec<String>> {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(format!("{}: {e}", self.path.display())),
        };
        f.seek(SeekFrom::Start(self.offset)).map_err(|e| format!("{}: {e}", self.path.display()))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf).map_err(|e| format!("{}: {e}", self.path.display()))?;
        let complete = buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        self.offset += complete as u64;
        Ok(String::from_utf8_lossy(&buf[..complete]).lines().map(str::to_string).collect())
    }
}
