//! Storage targets as data: the seed's forced and controlled sequences as lists of typed steps, each turned
//! into an argv and judged by its own parser of the real tool's output. Pure: no process is run here.
//!
//! Contract used by the engine (`engine/targets.rs`): build a [`SequenceRun`], then loop
//! `current()` → run the command → `on_result(result)` until it returns `Done` or `Failed`.
//!
//! - `sequence.rs`: the sequences as tables of steps, the exact argv of each step, and the zdb label rule;
//! - `judge.rs`: what each step's result means;
//! - `parse.rs`: the parsers of the real tools' outputs (also used by `doctor` and the simulator's tests);
//! - `run.rs`: [`SequenceRun`], walking one table for one target.
#![deny(clippy::disallowed_methods, clippy::disallowed_types)] // the pure core: see clippy.toml

use std::time::Duration;

use crate::command::{Command, CommandResult, Exit};

mod judge;
pub mod parse;
pub mod recovery;
mod run;
pub mod sequence;

pub use parse::{
    format_hostid_decimal, format_hostid_hex, format_hostid_padded, parse_hostid_decimal, parse_hostid_hex,
    parse_zpool_get, ParseError, PoolHealth, PoolState, ZdbLabel, ZpoolProperty,
};
pub use judge::PoolRemark;
pub use run::SequenceRun;
pub use sequence::{step_name, ImportMode, Step};

/// A cluster node as ZFS knows it: the hostid (`zdb` prints it in decimal) and the hostname it writes into the
/// labels of the pools it imports (`uname -n`). The label check compares both, so a host renamed or
/// re-hostid'd is never mistaken for another.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HostIdentity {
    /// The node's name in the configuration.
    pub name: String,
    pub hostid: u32,
    /// The node's `uname -n` when configured (`[[node]] hostname`); otherwise see [`HostIdentity::is_named`].
    #[serde(default)]
    pub hostname: Option<String>,
}

impl HostIdentity {
    /// A configured node: its name, hostid and `[[node]] hostname`.
    pub fn of(node: &crate::config::NodeConfig) -> HostIdentity {
        HostIdentity { name: node.name.clone(), hostid: node.hostid, hostname: node.hostname.clone() }
    }

    /// A node known by its name only (its `uname -n` is the node name or starts with it).
    pub fn new(name: impl Into<String>, hostid: u32) -> HostIdentity {
        HostIdentity { name: name.into(), hostid, hostname: None }
    }

    /// Does a label's hostname name this node? With a configured `hostname`, only that exact name does.
    /// Without one, the node name does, and so does a fully qualified name whose first label is the node name
    /// (`mds1.lab.example` for node `mds1`): hosts whose `uname -n` is an FQDN write it whole into labels.
    /// The hostid is compared as well by the label rule, first.
    pub fn is_named(&self, label_hostname: &str) -> bool {
        match &self.hostname {
            Some(h) => label_hostname == h,
            None => {
                label_hostname == self.name
                    || label_hostname.split_once('.').is_some_and(|(short, _)| short == self.name)
            }
        }
    }
}

/// Timeouts of the storage commands (from `[cluster]`): `import` for `zpool import` (covers the MMP activity
/// check), `mount` for mount and umount, `command` for everything else.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StorageTimeouts {
    pub import: Duration,
    pub mount: Duration,
    pub command: Duration,
}

/// Which sequence a run is: the engine picks it, the tables of `sequence.rs` give its steps.
/// In JSON: `forced`, `release`, `acquire`, `monitor` (the capitalised names of earlier versions are still
/// read, e.g. from a journal).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SequenceKind {
    /// After a confirmed fence: zdb label check, import (-f decided from the label), checks, mount, verify.
    #[serde(alias = "Forced")]
    Forced,
    /// Controlled migration, on the owner: umount, export.
    #[serde(alias = "Release")]
    Release,
    /// Controlled migration or first start, on the destination: zdb check, import without -f, checks, mount,
    /// verify.
    #[serde(alias = "Acquire")]
    Acquire,
    /// Periodic health check of a running target.
    #[serde(alias = "Monitor")]
    Monitor,
}

impl SequenceKind {
    /// `forced`, `release`, `acquire`, `monitor`.
    pub fn as_str(self) -> &'static str {
        match self {
            SequenceKind::Forced => "forced",
            SequenceKind::Release => "release",
            SequenceKind::Acquire => "acquire",
            SequenceKind::Monitor => "monitor",
        }
    }
}

impl std::fmt::Display for SequenceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a sequence stopped. Every variant stops the sequence; none is a guess.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum StorageError {
    /// The zdb label names a host this one may not take the pool from (a third host, a cluster host that was not
    /// fenced, a name and hostid that do not belong together, an empty hostname). Abort and alert.
    #[error(
        "{step}: pool {pool} was last used by {hostname} (hostid {hostid:08x}), not a host this one may take it from"
    )]
    ForeignOwner { step: String, pool: String, hostname: String, hostid: u32 },
    /// A controlled acquire found the pool ACTIVE on another cluster host, or `zpool import` said `pool was
    /// previously in use from another system`: it was never exported, and only `-f` (after a fence) may take it.
    #[error("{step}: pool {pool} is still active on {hostname} (hostid {hostid:08x}) and was not exported")]
    NotExported { step: String, pool: String, hostname: String, hostid: u32 },
    /// MMP saw another host writing the pool: its owner is alive. After a fence this means the fence lied.
    #[error("{step}: pool is imported on another live host (MMP): {detail}")]
    MmpActive { step: String, detail: String },
    /// The mount was refused because the device is in use (ldiskfs MMP, or the backend is busy).
    #[error("{step}: device is active on another node (MMP): {detail}")]
    DeviceBusy { step: String, detail: String },
    /// The command ran past its timeout (and was killed). Never a success.
    #[error("{step}: `{command}` timed out")]
    TimedOut { step: String, command: String },
    /// The command failed for another reason (exit status, signal, could not start); `detail` quotes it.
    #[error("{step}: `{command}` failed: {detail}")]
    CommandFailed { step: String, command: String, detail: String },
    /// The command's answer could not be understood (e.g. a zdb config without its header): never guessed.
    #[error("{step}: cannot understand the output of `{command}`: {detail}")]
    Unparseable { step: String, command: String, detail: String },
    /// A check answered, and the answer is bad (pool SUSPENDED, device not UP, health_check NOT HEALTHY...).
    #[error("{step}: unhealthy: {detail}")]
    Unhealthy { step: String, detail: String },
    /// The zdb label says the pool was destroyed (state 2): nothing to take over.
    #[error("{step}: pool {pool} was destroyed (zdb label state 2)")]
    Destroyed { step: String, pool: String },
}

/// What a step's result means for the run: go on, finished, or stop (the error says why).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepVerdict {
    /// The step succeeded; `current()` gives the next one.
    Next,
    /// The last step succeeded: the sequence is complete.
    Done,
    /// The step failed: the sequence stops here.
    Failed(StorageError),
}

/// What a host holds locally, found at startup before it claims anything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocalHoldings {
    /// Pools imported here.
    pub pools: Vec<String>,
    /// Mount points with a target mounted here: a lustre (or lustre_tgt) filesystem, or a ZFS dataset (fstype
    /// `zfs`, the mounts of `fstype = "zfs"` targets; only a target's own mount point counts for the engine).
    pub lustre_mounts: Vec<String>,
}

/// The commands a host runs at startup to learn what it already holds, before it claims anything:
/// `zpool list -H -o name,health` and `cat /proc/mounts`. Judge them with [`parse_discovery`].
pub fn discover_commands(t: StorageTimeouts) -> Vec<Command> {
    vec![
        Command::new(["zpool", "list", "-H", "-o", "name,health"], t.command),
        Command::new(["cat", "/proc/mounts"], t.command),
    ]
}

/// What the two [`discover_commands`] answered: the pools imported here (whatever their health: a SUSPENDED
/// pool is still held) and the mount points of Lustre targets (fstype `lustre` or `lustre_tgt`; client mounts
/// `nid:/fsname` are not targets and are left out). Any failure or unreadable answer is an error: a host that
/// cannot tell what it holds must not claim anything.
pub fn parse_discovery(pool_list: &CommandResult, mounts: &CommandResult) -> Result<LocalHoldings, StorageError> {
    fn ran(step: &str, command: &str, r: &CommandResult) -> Result<(), StorageError> {
        match r.exit {
            Exit::Code(0) => Ok(()),
            Exit::TimedOut => Err(StorageError::TimedOut { step: step.into(), command: command.into() }),
            _ => Err(StorageError::CommandFailed { step: step.into(), command: command.into(), detail: r.summary() }),
        }
    }
    const POOLS: (&str, &str) = ("discover-pools", "zpool list -H -o name,health");
    const MOUNTS: (&str, &str) = ("discover-mounts", "cat /proc/mounts");
    let unparseable = |(step, command): (&str, &str), e: ParseError| StorageError::Unparseable {
        step: step.into(),
        command: command.into(),
        detail: e.0,
    };
    ran(POOLS.0, POOLS.1, pool_list)?;
    ran(MOUNTS.0, MOUNTS.1, mounts)?;
    let pools = parse::parse_zpool_list_health(&pool_list.stdout).map_err(|e| unparseable(POOLS, e))?;
    let mounted = parse::parse_proc_mounts(&mounts.stdout).map_err(|e| unparseable(MOUNTS, e))?;
    Ok(LocalHoldings {
        pools: pools.into_iter().map(|p| p.name).collect(),
        lustre_mounts: mounted
            .into_iter()
            .filter(|m| m.is_lustre_target() || m.is_zfs_dataset())
            .map(|m| m.mountpoint)
            .collect(),
    })
}
