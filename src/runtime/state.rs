//! `cluster.state_dir`: what survives a restart.
//!
//! - `incarnation`: a counter bumped (and durably written) at every start, *before* the engine starts, so no
//!   two runs of this node ever send heartbeats with the same incarnation: peers drop anything not newer than
//!   what they accepted, so a replayed datagram can never make a dead node look alive. If the file is missing
//!   or unreadable as a number, the new incarnation is taken from the wall clock (seconds since 1970): larger
//!   than any counter, so peers that remember an earlier run still accept this one.
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

/// The state directory of this node (`cluster.state_dir`).
#[derive(Clone, Debug)]
pub struct StateDir {
    path: PathBuf,
}

impl StateDir {
    /// Open (and create, mode 0700, if missing) the state directory and check it can be written.
    /// Errors name `cluster.state_dir`.
    pub fn open(path: &Path) -> Result<StateDir> {
        let err = |what: String| RuntimeError::new(format!("cluster.state_dir {}: {what}", path.display()));
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
            Err(e) => return Err(RuntimeError::new(format!("cluster.state_dir: cannot read {}: {e}", file.display()))),
        };
        let wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let next = match previous {
            Some(n) => n.saturating_add(1),
            None => wall.max(1),
        }
        .max(floor.saturating_add(1));
        atomic_write(&file, format!("{next}\n").as_bytes())
            .map_err(|e| RuntimeError::new(format!("cluster.state_dir: cannot write {}: {e}", file.display())))?;
        Ok(next)
    }

    /// The journal a previous run wrote, if any. A corrupt journal is renamed aside and `None` returned with a
    /// warning; only an I/O error other than "not found" is an error.
    pub fn load_journal(&self) -> Result<Option<Journal>> {
        let file = self.path.join(JOURNAL_FILE);
        let bytes = match fs::read(&file) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(RuntimeError::new(format!("cluster.state_dir: cannot read {}: {e}", file.display()))),
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
        let mut bytes = serde_json::to_vec_pretty(journal).map_err(|e| RuntimeError::new(format!("cannot serialize the journal: {e}")))?;
        bytes.push(b'\n');
        atomic_write(&file, &bytes).map_err(|e| RuntimeError::new(format!("cluster.state_dir: cannot write {}: {e}", file.display())))
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
        assert_eq!(s.bump_incarnation(0).unwrap(), first + 1);
        assert_eq!(s.bump_incarnation(0).unwrap(), first + 2);
        // the journal's incarnation is a floor
        assert_eq!(s.bump_incarnation(first + 10).unwrap(), first + 11);
        fs::write(d.path().join("state/incarnation"), "7\n").unwrap();
        assert_eq!(s.bump_incarnation(0).unwrap(), 8);
        // garbage: the wall clock, never a crash
        fs::write(d.path().join("state/incarnation"), "garbage").unwrap();
        assert!(s.bump_incarnation(0).unwrap() > 1_600_000_000);
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
