//! `cluster.state_dir`: what survives a restart.
//!
//! - `incarnation`: a counter bumped (and durably written) at every start, *before* the engine starts, so no
//!   two runs of this node ever send heartbeats with the same incarnation: peers drop anything not newer than
//!   what they accepted, so a replayed datagram can never make a dead node look alive. If the file is missing
//!   or unreadable as a number, the new incarnation is taken from the wall clock (seconds since 1970): larger
//!   than any counter, so peers that remember an earlier run still accept this one. The wall clock is also a
//!   floor at every start: a run is always newer than any run that started in an earlier second, even one that
//!   ran from another state_dir (an operator's slip): peers never lock a restarted node out with the replay
//!   window of a stray incarnation.
//! - `lock`: an exclusive `flock` held for the daemon's whole life, holding its pid: a second daemon with
//!   the same state_dir exits at once, naming the running one.
//! - `journal.json`: the engine's [`Journal`] (maintenance, fence confirmations, operations in progress),
//!   written on every `Output::Persist`. A journal that cannot be parsed is set aside as
//!   `journal.json.corrupt` and the daemon starts without one (with a warning): startup discovery, not the
//!   journal, has the last word on what is imported and mounted.
//!
//! Every write is atomic and durable: temp file in the same directory, fsync, rename over the old file, fsync
//! of the directory. A crash leaves either the old file or the new one, never a torn one.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::engine::Journal;

use super::{Result, RuntimeError};

/// File name of the incarnation counter.
pub const INCARNATION_FILE: &str = "incarnation";
/// File name of the journal.
pub const JOURNAL_FILE: &str = "journal.json";
/// File name of the history of fences and takeovers (`failoverd history`): one JSON object per line.
pub const HISTORY_FILE: &str = "history.jsonl";
/// The history keeps at least this many entries (the newest); it is trimmed when it holds twice as many.
pub const HISTORY_KEEP: usize = 1000;

/// File name of the daemon's lock (holds the pid of the daemon that has it).
pub const LOCK_FILE: &str = "lock";

/// The exclusive lock of a state directory, held until dropped (the process exits).
#[derive(Debug)]
pub struct StateLock {
    _lock: nix::fcntl::Flock<File>,
}

/// The state directory of this node (`cluster.state_dir`).
#[derive(Clone, Debug)]
pub struct StateDir {
    path: PathBuf,
}

impl StateDir {
    /// Open (and create, mode 0700, if missing) the state directory and check it can be written.
    /// Errors name `cluster.state_dir`.
    pub fn open(path: &Path) -> Result<StateDir> {
        let err = |what: String| RuntimeError::io(format!("cluster.state_dir {}: {what}", path.display()));
        match fs::metadata(path) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(err("exists but is not a directory".into())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                fs::DirBuilder::new().recursive(true).mode(0o700).create(path).map_err(|e| err(format!("cannot create: {e}")))?;
            }
            Err(e) => return Err(err(format!("cannot access: {e}"))),
        }
        fs::read_dir(path).map_err(|e| err(format!("cannot read: {e}")))?;
        let probe = path.join(".write-test");
        File::create(&probe).and_then(|f| f.sync_all()).map_err(|e| err(format!("cannot write: {e}")))?;
        let _ = fs::remove_file(&probe);
        Ok(StateDir { path: path.to_path_buf() })
    }

    /// Take the exclusive lock of the directory for this process (`flock` on `lock`, which then holds our
    /// pid). Fails at once, naming the running daemon's pid, if another process holds it.
    pub fn lock(&self) -> Result<StateLock> {
        use nix::fcntl::{Flock, FlockArg};
        use std::io::{Read, Seek};
        let file_path = self.path.join(LOCK_FILE);
        let err = |what: String| RuntimeError::io(format!("cluster.state_dir {}: {what}", self.path.display()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&file_path)
            .map_err(|e| err(format!("cannot open {}: {e}", file_path.display())))?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(mut lock) => {
                let pid = std::process::id();
                let write = lock.set_len(0).and_then(|_| lock.rewind()).and_then(|_| writeln!(lock, "{pid}")).and_then(|_| lock.sync_all());
                if let Err(e) = write {
                    tracing::warn!(file = %file_path.display(), error = %e, "cannot write this daemon's pid into the lock file");
                }
                Ok(StateLock { _lock: lock })
            }
            Err((mut file, errno)) if errno == nix::errno::Errno::EWOULDBLOCK => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let holder = match text.trim().parse::<u32>() {
                    Ok(pid) => format!("pid {pid}{}", process_line(pid)),
                    Err(_) => "a process that wrote no pid".to_string(),
                };
                Err(err(format!(
                    "another failoverd is running for this node: {holder} holds {}; stop it first (one daemon per node)",
                    file_path.display()
                )))
            }
            Err((_, errno)) => Err(err(format!("cannot lock {}: {errno}", file_path.display()))),
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Read the incarnation counter, add one, write it back durably and return the new value. `floor` (e.g.
    /// the journal's incarnation) is a lower bound the new value exceeds.
    pub fn bump_incarnation(&self, floor: u64) -> Result<u64> {
        let file = self.path.join(INCARNATION_FILE);
        let previous = match fs::read_to_string(&file) {
            Ok(text) => match text.trim().parse::<u64>() {
                Ok(n) => Some(n),
                Err(_) => {
                    tracing::warn!(file = %file.display(), "incarnation file is not a number; starting from the wall clock");
                    None
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::info!(file = %file.display(), "no incarnation file: first start of this node (or state_dir was wiped)");
                None
            }
            Err(e) => return Err(RuntimeError::io(format!("cluster.state_dir: cannot read {}: {e}", file.display()))),
        };
        let wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let next = match previous {
            Some(n) => n.saturating_add(1),
            None => 1,
        }
        .max(wall)
        .max(floor.saturating_add(1));
        atomic_write(&file, format!("{next}\n").as_bytes())
            .map_err(|e| RuntimeError::io(format!("cluster.state_dir: cannot write {}: {e}", file.display())))?;
        Ok(next)
    }

    /// The journal a previous run wrote, if any. A corrupt journal is renamed aside and `None` returned with a
    /// warning; only an I/O error other than "not found" is an error.
    pub fn load_journal(&self) -> Result<Option<Journal>> {
        let file = self.path.join(JOURNAL_FILE);
        let bytes = match fs::read(&file) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(RuntimeError::io(format!("cluster.state_dir: cannot read {}: {e}", file.display()))),
        };
        match serde_json::from_slice::<Journal>(&bytes) {
            Ok(j) => Ok(Some(j)),
            Err(e) => {
                let aside = self.path.join(format!("{JOURNAL_FILE}.corrupt"));
                let moved = fs::rename(&file, &aside).is_ok();
                tracing::warn!(
                    file = %file.display(),
                    error = %e,
                    moved_to = %if moved { aside.display().to_string() } else { "(could not move it)".into() },
                    "journal is corrupt: starting without it (discovery will find what this node holds)"
                );
                Ok(None)
            }
        }
    }

    /// Write the journal atomically.
    pub fn save_journal(&self, journal: &Journal) -> Result<()> {
        let file = self.path.join(JOURNAL_FILE);
        let mut bytes = serde_json::to_vec_pretty(journal).map_err(|e| RuntimeError::io(format!("cannot serialize the journal: {e}")))?;
        bytes.push(b'\n');
        atomic_write(&file, &bytes).map_err(|e| RuntimeError::io(format!("cluster.state_dir: cannot write {}: {e}", file.display())))
    }
}

/// The persistent, bounded history of fences and takeovers in `state_dir` (`history.jsonl`), kept across
/// restarts. Appends are plain `O_APPEND` writes of one line each; when the file holds `2 * HISTORY_KEEP`
/// lines it is rewritten atomically with the newest `HISTORY_KEEP`.
#[derive(Debug)]
pub struct History {
    path: PathBuf,
    lines: usize,
}

impl History {
    pub fn open(dir: &Path) -> History {
        let path = dir.join(HISTORY_FILE);
        let lines = fs::read_to_string(&path).map(|t| t.lines().count()).unwrap_or(0);
        History { path, lines }
    }

    pub fn append(&mut self, entry: &serde_json::Value) -> std::io::Result<()> {
        let mut line = entry.to_string();
        line.push('\n');
        OpenOptions::new().create(true).append(true).mode(0o600).open(&self.path)?.write_all(line.as_bytes())?;
        self.lines += 1;
        if self.lines >= 2 * HISTORY_KEEP {
            let text = fs::read_to_string(&self.path)?;
            let all: Vec<&str> = text.lines().collect();
            let keep = &all[all.len().saturating_sub(HISTORY_KEEP)..];
            let mut out = keep.join("\n");
            out.push('\n');
            atomic_write(&self.path, out.as_bytes())?;
            self.lines = keep.len();
        }
        Ok(())
    }

    /// The entries of `dir`'s history, oldest first (unreadable lines are skipped).
    pub fn read(dir: &Path) -> std::io::Result<Vec<serde_json::Value>> {
        match fs::read_to_string(dir.join(HISTORY_FILE)) {
            Ok(text) => Ok(text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }
}

/// ` (failoverd run --config ...)`: the command line of `pid` as /proc shows it, or nothing.
pub fn process_line(pid: u32) -> String {
    match fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(bytes) if !bytes.is_empty() => {
            let args: Vec<String> = bytes.split(|b| *b == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
            format!(" ({})", args.join(" "))
        }
        _ => String::new(),
    }
}

/// Replace `path` with `bytes` atomically and durably: write `path.tmp` (mode 0600), fsync it, rename it over
/// `path`, fsync the directory.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "no file name"))?;
    let mut tmp_name = name.to_os_string();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    {
        let mut f = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        atomic_write(&p, b"one").unwrap();
        atomic_write(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(d.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("f")]);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn incarnation_bump_survives_restarts() {
        let d = tempfile::tempdir().unwrap();
        let s = StateDir::open(&d.path().join("state")).unwrap();
        let first = s.bump_incarnation(0).unwrap();
        assert!(first > 1_600_000_000, "first start seeds from the wall clock: {first}");
        let s = StateDir::open(&d.path().join("state")).unwrap();
        let second = s.bump_incarnation(0).unwrap();
        assert!(second > first);
        let third = s.bump_incarnation(0).unwrap();
        assert!(third > second);
        // the journal's incarnation is a floor
        assert_eq!(s.bump_incarnation(third + 1_000_000).unwrap(), third + 1_000_001);
        // a counter behind the wall clock (a node whose first start was long ago, or a stray run from another
        // state_dir that peers heard since): the wall clock wins, so peers accept this run
        fs::write(d.path().join("state/incarnation"), "7\n").unwrap();
        assert!(s.bump_incarnation(0).unwrap() > 1_600_000_000);
        // garbage: the wall clock, never a crash
        fs::write(d.path().join("state/incarnation"), "garbage").unwrap();
        assert!(s.bump_incarnation(0).unwrap() > 1_600_000_000);
    }

    #[test]
    fn a_second_lock_is_refused_naming_the_holder() {
        let d = tempfile::tempdir().unwrap();
        let s = StateDir::open(d.path()).unwrap();
        let held = s.lock().unwrap();
        let e = StateDir::open(d.path()).unwrap().lock().unwrap_err().to_string();
        assert!(e.contains("another failoverd is running") && e.contains(&format!("pid {}", std::process::id())), "{e}");
        drop(held);
        let _again = s.lock().unwrap();
    }

    #[test]
    fn history_is_kept_and_bounded() {
        let d = tempfile::tempdir().unwrap();
        let mut h = History::open(d.path());
        for i in 0..(2 * HISTORY_KEEP + 5) {
            h.append(&serde_json::json!({ "i": i })).unwrap();
        }
        let all = History::read(d.path()).unwrap();
        assert!(all.len() >= HISTORY_KEEP && all.len() < 2 * HISTORY_KEEP, "{}", all.len());
        assert_eq!(all.last().unwrap()["i"], serde_json::json!(2 * HISTORY_KEEP + 4));
        // a restart finds it and goes on counting
        let mut h = History::open(d.path());
        h.append(&serde_json::json!({ "i": "after restart" })).unwrap();
        assert_eq!(History::read(d.path()).unwrap().last().unwrap()["i"], serde_json::json!("after restart"));
    }

    #[test]
    fn journal_round_trip_and_corruption() {
        let d = tempfile::tempdir().unwrap();
        let s = StateDir::open(d.path()).unwrap();
        assert_eq!(s.load_journal().unwrap(), None);
        let j = Journal { node: "n1".into(), incarnation: 4, maintenance_epoch: 2, maintenance: true, ..Journal::default() };
        s.save_journal(&j).unwrap();
        assert_eq!(s.load_journal().unwrap(), Some(j));
        fs::write(d.path().join(JOURNAL_FILE), "{ not json").unwrap();
        assert_eq!(s.load_journal().unwrap(), None);
        assert!(d.path().join("journal.json.corrupt").exists());
        assert!(!d.path().join(JOURNAL_FILE).exists());
    }

    #[test]
    fn unusable_state_dir_is_named() {
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("plainfile");
        fs::write(&file, "x").unwrap();
        let e = StateDir::open(&file).unwrap_err().to_string();
        assert!(e.starts_with("cluster.state_dir ") && e.contains("not a directory"), "{e}");
        let e = StateDir::open(&file.join("sub")).unwrap_err().to_string();
        assert!(e.starts_with("cluster.state_dir ") && e.contains("plainfile/sub"), "{e}");
    }
}
