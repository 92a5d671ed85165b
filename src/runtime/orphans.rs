//! Commands a killed daemon left running.
//!
//! When `failoverd run` dies (SIGKILL, OOM, a crash), the commands it started live on: a `zpool import` in its
//! MMP activity check finishes seconds later and imports the pool, an `umount` completes. A restarted daemon
//! that looked at the storage before they ended would see a state that is about to change under it: "not
//! here" for a pool that is imported a second later, by nobody's decision. So every command a daemon runs
//! carries a tag in its environment ([`TAG_VAR`] = the node's `state_dir`), and a starting daemon first finds
//! the processes carrying its tag, kills their process groups and waits until they are gone. Only then does
//! it look at what is imported and mounted.

use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// The environment variable that marks a command as started by the daemon of one node.
pub const TAG_VAR: &str = "FAILOVERD_COMMAND_OF";

static TAG: OnceLock<String> = OnceLock::new();

/// Set this process's tag (the node's `state_dir`). Every command run afterwards carries it.
pub fn set_tag(state_dir: &Path) {
    let _ = TAG.set(state_dir.display().to_string());
}

/// The tag of this process's commands, if set.
pub fn tag() -> Option<&'static str> {
    TAG.get().map(String::as_str)
}

/// A process left by an earlier run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Orphan {
    pub pid: i32,
    pub command: String,
}

/// Processes other than this one whose environment carries `TAG_VAR=tag`.
pub fn find(tag: &str) -> Vec<Orphan> {
    let wanted = format!("{TAG_VAR}={tag}");
    let me = std::process::id() as i32;
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        if pid == me {
            continue;
        }
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else { continue };
        if environ.split(|b| *b == 0).any(|kv| kv == wanted.as_bytes()) {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let command = cmdline.split(|b| *b == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect::<Vec<_>>().join(" ");
            out.push(Orphan { pid, command });
        }
    }
    out
}

/// Kill the process groups of every orphan carrying `tag` and wait (at most `limit`) until none is left.
/// Returns the orphans found, and those still there at the end (a process stuck in the kernel, in an
/// uninterruptible wait, only dies when its system call returns).
pub fn reap(tag: &str, limit: Duration) -> (Vec<Orphan>, Vec<Orphan>) {
    let found = find(tag);
    let start = Instant::now();
    let mut left = found.clone();
    while !left.is_empty() {
        for o in &left {
            let pgid = nix::unistd::getpgid(Some(Pid::from_raw(o.pid))).unwrap_or(Pid::from_raw(o.pid));
            let _ = killpg(pgid, Signal::SIGKILL);
            let _ = nix::sys::signal::kill(Pid::from_raw(o.pid), Signal::SIGKILL);
        }
        if start.elapsed() >= limit {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        // a zombie carries no environment any more, so it is not found again
        left = find(tag);
    }
    (found, left)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_and_kills_only_tagged_processes() {
        let tag = format!("/tmp/orphans-test-{}", std::process::id());
        let spawn = |tagged: bool| {
            let mut c = std::process::Command::new("sleep");
            c.arg("30");
            if tagged {
                c.env(TAG_VAR, &tag);
            }
            std::os::unix::process::CommandExt::process_group(&mut c, 0);
            c.spawn().expect("sleep runs")
        };
        let mut tagged = spawn(true);
        let mut other = spawn(false);
        // until the child has exec'd, /proc shows the test binary's environment: wait for it (bounded)
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut found = find(&tag);
        while found.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
            found = find(&tag);
        }
        assert_eq!(found.iter().map(|o| o.pid).collect::<Vec<_>>(), vec![tagged.id() as i32], "{found:?}");
        assert!(found[0].command.starts_with("sleep 30"));
        let (reaped, left) = reap(&tag, Duration::from_secs(5));
        assert_eq!(reaped.len(), 1);
        assert!(left.is_empty(), "{left:?}");
        assert!(tagged.wait().expect("waits").code().is_none(), "killed by a signal");
        assert!(other.try_wait().expect("try_wait").is_none(), "the untagged process is left alone");
        let _ = other.kill();
        let _ = other.wait();
    }
}
