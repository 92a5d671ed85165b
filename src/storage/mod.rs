//! Storage targets as data: the seed's forced and controlled sequences as lists of typed steps, each turned
//! into an argv and judged by its own parser of the real tool's output. Pure: no process is run here.
//!
//! Contract used by the engine (`engine/targets.rs`): build a [`SequenceRun`], then loop
//! `current()` → run the command → `on_result(result)` until it returns `Done` or `Failed`.

use std::time::Duration;

use crate::command::{Command, CommandResult};
use crate::config::TargetConfig;

/// A host as ZFS knows it: `uname -n` and the hostid (`zdb` prints it in decimal).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HostIdentity {
    pub name: String,
    pub hostid: u32,
}

/// Timeouts of the storage commands (from `[cluster]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StorageTimeouts {
    pub import: Duration,
    pub mount: Duration,
    pub command: Duration,
}

/// Which sequence a run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SequenceKind {
    /// After a confirmed fence: zdb label check, import (-f decided from the label), checks, mount, verify.
    Forced,
    /// Controlled migration, on the owner: umount, export.
    Release,
    /// Controlled migration or first start, on the destination: zdb check, import without -f, checks, mount,
    /// verify.
    Acquire,
    /// Periodic health check of a running target.
    Monitor,
}

/// Why a sequence stopped. Every variant stops the sequence; none is a guess.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum StorageError {
    #[error("{step}: pool {pool} was last used by {hostname} (hostid {hostid:08x}), neither this host nor the fenced one")]
    ForeignOwner { step: String, pool: String, hostname: String, hostid: u32 },
    #[error("{step}: pool {pool} is still active on {hostname} (hostid {hostid:08x}) and was not exported")]
    NotExported { step: String, pool: String, hostname: String, hostid: u32 },
    #[error("{step}: pool is imported on another live host (MMP): {detail}")]
    MmpActive { step: String, detail: String },
    #[error("{step}: device is active on another node (MMP): {detail}")]
    DeviceBusy { step: String, detail: String },
    #[error("{step}: `{command}` timed out")]
    TimedOut { step: String, command: String },
    #[error("{step}: `{command}` failed: {detail}")]
    CommandFailed { step: String, command: String, detail: String },
    #[error("{step}: cannot understand the output of `{command}`: {detail}")]
    Unparseable { step: String, command: String, detail: String },
    #[error("{step}: unhealthy: {detail}")]
    Unhealthy { step: String, detail: String },
}

/// What a step's result means for the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepVerdict {
    /// The step succeeded; `current()` gives the next one.
    Next,
    /// The last step succeeded: the sequence is complete.
    Done,
    Failed(StorageError),
}

/// One run of a sequence for one target: the steps left, and what earlier steps learnt (the zdb label).
#[derive(Clone, Debug)]
pub struct SequenceRun {
    kind: SequenceKind,
    target: TargetConfig,
}

impl SequenceRun {
    /// Forced migration after `fenced` was confirmed off; `known` are all cluster hosts.
    pub fn forced(target: &TargetConfig, me: &HostIdentity, fenced: &HostIdentity, known: &[HostIdentity], t: StorageTimeouts) -> SequenceRun {
        let _ = (me, fenced, known, t);
        SequenceRun { kind: SequenceKind::Forced, target: target.clone() }
    }

    /// Controlled acquire (or first start): import without -f.
    pub fn acquire(target: &TargetConfig, me: &HostIdentity, known: &[HostIdentity], t: StorageTimeouts) -> SequenceRun {
        let _ = (me, known, t);
        SequenceRun { kind: SequenceKind::Acquire, target: target.clone() }
    }

    /// Controlled release on the owner.
    pub fn release(target: &TargetConfig, t: StorageTimeouts) -> SequenceRun {
        let _ = t;
        SequenceRun { kind: SequenceKind::Release, target: target.clone() }
    }

    /// Health check of a running target.
    pub fn monitor(target: &TargetConfig, t: StorageTimeouts) -> SequenceRun {
        let _ = t;
        SequenceRun { kind: SequenceKind::Monitor, target: target.clone() }
    }

    pub fn kind(&self) -> SequenceKind {
        self.kind
    }

    pub fn target(&self) -> &TargetConfig {
        &self.target
    }

    /// The step to run now (its name, e.g. "zdb-check", and its command), or None when finished.
    pub fn current(&self) -> Option<(&'static str, Command)> {
        None
    }

    /// Judge the result of the current step's command.
    pub fn on_result(&mut self, result: &CommandResult) -> StepVerdict {
        let _ = result;
        StepVerdict::Failed(StorageError::Unhealthy { step: "none".into(), detail: "not implemented".into() })
    }
}

/// What a host holds locally, found at startup before it claims anything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocalHoldings {
    /// Pools imported here.
    pub pools: Vec<String>,
    /// Mount points with a lustre (or lustre_tgt) filesystem mounted here.
    pub lustre_mounts: Vec<String>,
}

// TEMPORARY (replaced by the storage work at merge)
impl SequenceRun {
    pub fn cleanup(target: &TargetConfig, t: StorageTimeouts) -> SequenceRun {
        let _ = t;
        SequenceRun { kind: SequenceKind::Release, target: target.clone() }
    }
}
pub fn discover_commands(t: StorageTimeouts) -> Vec<Command> {
    vec![Command::new(["zpool", "list", "-H", "-o", "name,health"], t.command), Command::new(["cat", "/proc/mounts"], t.command)]
}
pub fn parse_discovery(a: &CommandResult, b: &CommandResult) -> Result<LocalHoldings, StorageError> {
    let _ = (a, b);
    Ok(LocalHoldings::default())
}
