//! The seed's storage sequences, as data.
//!
//! This file is meant to be read next to the Lustre wiki's "forced migration" and "controlled migration"
//! procedures for Lustre on ZFS: each table below is one procedure, each [`Step`] one command of it, with the
//! exact argv in [`argv`]. How each step's output is judged lives in `judge.rs`; the parsers in `parse.rs`.
//!
//! Forced migration (after the previous owner was fenced and confirmed off):
//!
//! | step          | command                                                    | passes when                              |
//! |---------------|------------------------------------------------------------|------------------------------------------|
//! | `zdb-check`   | `zdb -e -C <pool>`                                          | the label names the fenced host or us    |
//! | `import`      | `zpool import [-f] -o cachefile=none <pool>`               | exit 0 (`-f` only: ACTIVE + fenced host) |
//! | `pool-status` | `zpool status -x <pool>`                                   | `pool '<pool>' is healthy`               |
//! | `dataset`     | `zfs list -H <pool/dataset>`                               | the dataset is listed                    |
//! | `mkdir`       | `mkdir -p <mountpoint>`                                    | exit 0                                   |
//! | `mount`       | `mount -t lustre [-o <opts>] <pool/dataset> <mountpoint>`  | exit 0                                   |
//! | `verify-df`   | `df -ht lustre`                                            | source mounted on the mount point        |
//! | `verify-lctl` | `lctl dl`                                                  | the Lustre device is `UP`                |
//!
//! Controlled migration: `umount` + `zpool export` on the owner ([`RELEASE_ZFS`]), then the same as forced on
//! the destination but never with `-f` ([`ACQUIRE_ZFS`]). ldiskfs targets have no pool: mount, verify, umount.
//!
//! A plain ZFS dataset (`fstype = "zfs"`, [`TargetKind::ZfsDataset`]) takes the same pool steps and is mounted
//! with `mount -t zfs <pool/dataset> <mountpoint>`; the Lustre checks (`df -ht lustre`, `lctl dl`, `lctl
//! get_param health_check`, `lctl ping`) are replaced by one `verify-mount`: `cat /proc/mounts` shows the
//! dataset on the mount point with fstype `zfs` ([`FORCED_ZFS_DATASET`], [`ACQUIRE_ZFS_DATASET`],
//! [`MONITOR_ZFS_DATASET`]; [`lustre_checks_skipped`] names what is left out).

use std::time::Duration;

use crate::config::{TargetConfig, TargetKind};

use super::parse::{PoolState, ZdbLabel};
use super::{HostIdentity, SequenceKind, StorageError, StorageTimeouts};

/// One command of a storage sequence. Each step has a stable name (used in logs, events, traces and by the
/// simulator's scripts), an argv ([`argv`]) and a judge of its result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub enum Step {
    /// `zdb -e -C <pool>`: who imported the pool last, read from the pool's own config (works on an exported
    /// or foreign pool, read-only, skipping MMP).
    ZdbCheck,
    /// `zpool import [-f] -o cachefile=none <pool>`.
    Import,
    /// `zpool status -x <pool>`.
    PoolStatus,
    /// `zfs list -H <pool/dataset>`.
    Dataset,
    /// `mkdir -p <mountpoint>`.
    Mkdir,
    /// `mount -t lustre [-o <opts>] <source> <mountpoint>`.
    Mount,
    /// `df -ht lustre`.
    VerifyDf,
    /// `lctl dl`.
    VerifyLctl,
    /// `zpool export <pool>`.
    Export,
    /// `umount <mountpoint>`, where "not mounted" is fine: a release wants the target unmounted, and a daemon
    /// killed after its `umount` ran finds it already done when it tries again.
    UmountIfMounted,
    /// `zpool export <pool>`, where "no such pool" is fine (undoing a failed start).
    ExportIfImported,
    /// `zpool list -H -o name,health <pool>`.
    PoolHealth,
    /// `cat /proc/mounts`.
    Mounted,
    /// `lctl get_param -n health_check`.
    HealthCheck,
    /// `lctl ping <nid>`, once per `health_nids` entry.
    LnetPing,
    /// The target's own `check_command`, if it has one.
    CheckCommand,
    /// `cat /proc/mounts`: a plain ZFS dataset (`fstype = "zfs"`) is mounted on its mount point with fstype
    /// `zfs` (the verification of [`TargetKind::ZfsDataset`] targets, after the mount and in the monitor).
    VerifyMount,
}

impl Step {
    /// The step named `name` ([`Step::name`]); `export` and `umount` read as the steps that always run
    /// ([`Step::Export`], [`Step::UmountIfMounted`]).
    pub fn from_name(name: &str) -> Option<Step> {
        const ALL: &[Step] = &[
            Step::ZdbCheck,
            Step::Import,
            Step::PoolStatus,
            Step::Dataset,
            Step::Mkdir,
            Step::Mount,
            Step::VerifyDf,
            Step::VerifyLctl,
            Step::UmountIfMounted,
            Step::Export,
            Step::PoolHealth,
            Step::Mounted,
            Step::HealthCheck,
            Step::LnetPing,
            Step::CheckCommand,
            Step::VerifyMount,
        ];
        ALL.iter().copied().find(|s| s.name() == name)
    }

    /// The step's stable name.
    pub const fn name(self) -> &'static str {
        match self {
            Step::ZdbCheck => "zdb-check",
            Step::Import => "import",
            Step::PoolStatus => "pool-status",
            Step::Dataset => "dataset",
            Step::Mkdir => "mkdir",
            Step::Mount => "mount",
            Step::VerifyDf => "verify-df",
            Step::VerifyLctl => "verify-lctl",
            Step::UmountIfMounted => "umount",
            Step::Export | Step::ExportIfImported => "export",
            Step::PoolHealth => "pool-health",
            Step::Mounted => "mounted",
            Step::HealthCheck => "health-check",
            Step::LnetPing => "lnet-ping",
            Step::CheckCommand => "check-command",
            Step::VerifyMount => "verify-mount",
        }
    }

    /// How long the step may run: the MMP activity check makes `zpool import` the slow one; mount and umount
    /// of a Lustre target are next (recovery set-up, journal replay).
    pub fn timeout(self, t: &StorageTimeouts) -> Duration {
        match self {
            Step::Import => t.import,
            Step::Mount | Step::UmountIfMounted => t.mount,
            _ => t.command,
        }
    }
}

// ----- The sequences ---------------------------------------------------------------------------------------------

/// Forced migration of a ZFS target, after the fence confirmed the previous owner off.
pub const FORCED_ZFS: &[Step] = &[
    Step::ZdbCheck,   // zdb -e -C <pool>: last imported by the fenced host (hostname AND hostid), or by us?
    Step::Import,     // zpool import -f -o cachefile=none <pool>   (-f only when the label is ACTIVE + fenced host)
    Step::PoolStatus, // zpool status -x <pool>
    Step::Dataset,    // zfs list -H <pool/dataset>
    Step::Mkdir,      // mkdir -p <mountpoint>
    Step::Mount,      // mount -t lustre <pool/dataset> <mountpoint>
    Step::VerifyDf,   // df -ht lustre
    Step::VerifyLctl, // lctl dl
];

/// Controlled migration (destination side) or first start of a ZFS target: the pool must have been exported
/// (or be ours); the import is never forced.
pub const ACQUIRE_ZFS: &[Step] = &[
    Step::ZdbCheck,   // zdb -e -C <pool>: EXPORTED by a cluster host, or ours
    Step::Import,     // zpool import -o cachefile=none <pool>
    Step::PoolStatus, // zpool status -x <pool>
    Step::Dataset,    // zfs list -H <pool/dataset>
    Step::Mkdir,      // mkdir -p <mountpoint>
    Step::Mount,      // mount -t lustre <pool/dataset> <mountpoint>
    Step::VerifyDf,   // df -ht lustre
    Step::VerifyLctl, // lctl dl
];

/// Controlled migration (owner side) of a ZFS target.
pub const RELEASE_ZFS: &[Step] = &[
    Step::UmountIfMounted, // umount <mountpoint>   ("not mounted" is fine)
    Step::Export, // zpool export <pool>
];

/// Health check of a running ZFS target (one `lnet-ping` per health NID; `check-command` only if configured).
pub const MONITOR_ZFS: &[Step] = &[
    Step::PoolHealth,   // zpool list -H -o name,health <pool>: ONLINE or DEGRADED
    Step::Mounted,      // cat /proc/mounts: the mount point, fstype lustre/lustre_tgt
    Step::HealthCheck,  // lctl get_param -n health_check: healthy
    Step::LnetPing,     // lctl ping <nid>
    Step::CheckCommand, // the operator's check_command
];

/// Forced migration of a plain ZFS dataset (`fstype = "zfs"`): the pool steps of [`FORCED_ZFS`], then
/// `mount -t zfs` and a check of `/proc/mounts` instead of `df -ht lustre` and `lctl dl`.
pub const FORCED_ZFS_DATASET: &[Step] = &[
    Step::ZdbCheck,    // zdb -e -C <pool>
    Step::Import,      // zpool import [-f] -o cachefile=none <pool>
    Step::PoolStatus,  // zpool status -x <pool>
    Step::Dataset,     // zfs list -H <pool/dataset>
    Step::Mkdir,       // mkdir -p <mountpoint>
    Step::Mount,       // mount -t zfs <pool/dataset> <mountpoint>
    Step::VerifyMount, // cat /proc/mounts: <pool/dataset> <mountpoint> zfs
];

/// Controlled acquire or first start of a plain ZFS dataset: as [`FORCED_ZFS_DATASET`], never with `-f`.
pub const ACQUIRE_ZFS_DATASET: &[Step] = FORCED_ZFS_DATASET;

/// Health check of a running plain ZFS dataset: pool health, the mount, and the operator's `check_command`.
pub const MONITOR_ZFS_DATASET: &[Step] = &[
    Step::PoolHealth,   // zpool list -H -o name,health <pool>: ONLINE or DEGRADED
    Step::VerifyMount,  // cat /proc/mounts: <pool/dataset> <mountpoint> zfs
    Step::CheckCommand, // the operator's check_command
];

/// The Lustre-only checks a target does not run: none for a Lustre target; for a plain ZFS dataset
/// (`fstype = "zfs"`) the steps that need Lustre's `df -t lustre` and `lctl`, with their commands.
pub fn lustre_checks_skipped(target: &TargetConfig) -> &'static [(&'static str, &'static str)] {
    match target.kind {
        TargetKind::ZfsDataset { .. } => &[
            ("verify-df", "df -ht lustre"),
            ("verify-lctl", "lctl dl"),
            ("health-check", "lctl get_param -n health_check"),
            ("lnet-ping", "lctl ping <nid>"),
        ],
        TargetKind::Zfs { .. } | TargetKind::Ldiskfs { .. } => &[],
    }
}

/// Forced migration of an ldiskfs target: ext4 MMP in the kernel refuses the mount while another node holds it.
pub const FORCED_LDISKFS: &[Step] = &[
    Step::Mkdir,      // mkdir -p <mountpoint>
    Step::Mount,      // mount -t lustre <device> <mountpoint>
    Step::VerifyDf,   // df -ht lustre
    Step::VerifyLctl, // lctl dl
];

/// Controlled acquire of an ldiskfs target.
pub const ACQUIRE_LDISKFS: &[Step] = FORCED_LDISKFS;

/// Controlled release of an ldiskfs target.
pub const RELEASE_LDISKFS: &[Step] = &[
    Step::UmountIfMounted, // umount <mountpoint>   ("not mounted" is fine)
];

/// Undo a failed start of a ZFS target (or a half-held pool found at startup): whatever is still mounted or
/// imported here is released; what is already gone is fine.
pub const CLEANUP_ZFS: &[Step] = &[
    Step::UmountIfMounted,  // umount <mountpoint>   ("not mounted" is fine)
    Step::ExportIfImported, // zpool export <pool>   ("no such pool" is fine)
];

/// Undo a failed start of an ldiskfs target.
pub const CLEANUP_LDISKFS: &[Step] = &[
    Step::UmountIfMounted, // umount <mountpoint>   ("not mounted" is fine)
];

/// Health check of a running ldiskfs target.
pub const MONITOR_LDISKFS: &[Step] = &[Step::Mounted, Step::HealthCheck, Step::LnetPing, Step::CheckCommand];

/// The table of a sequence kind for a target's backing storage.
pub fn steps(kind: SequenceKind, target: &TargetConfig) -> &'static [Step] {
    if let TargetKind::ZfsDataset { .. } = target.kind {
        return match kind {
            SequenceKind::Forced => FORCED_ZFS_DATASET,
            SequenceKind::Acquire => ACQUIRE_ZFS_DATASET,
            SequenceKind::Release => RELEASE_ZFS,
            SequenceKind::Monitor => MONITOR_ZFS_DATASET,
        };
    }
    let zfs = target.kind.pool().is_some();
    match (kind, zfs) {
        (SequenceKind::Forced, true) => FORCED_ZFS,
        (SequenceKind::Acquire, true) => ACQUIRE_ZFS,
        (SequenceKind::Release, true) => RELEASE_ZFS,
        (SequenceKind::Monitor, true) => MONITOR_ZFS,
        (SequenceKind::Forced, false) => FORCED_LDISKFS,
        (SequenceKind::Acquire, false) => ACQUIRE_LDISKFS,
        (SequenceKind::Release, false) => RELEASE_LDISKFS,
        (SequenceKind::Monitor, false) => MONITOR_LDISKFS,
    }
}

// ----- The argv of each step ------------------------------------------------------------------------------------

/// Whether `zpool import` gets `-f`. Decided by [`import_mode`] from the zdb label, never configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ImportMode {
    /// `zpool import -o cachefile=none <pool>`
    Plain,
    /// `zpool import -f -o cachefile=none <pool>`
    Force,
}

/// The exact argv of a step for a target. `nid` is the NID of an `lnet-ping` step.
pub fn argv(step: Step, target: &TargetConfig, import: ImportMode, nid: Option<&str>) -> Vec<String> {
    let pool = target.kind.pool().unwrap_or_default();
    let source = target.kind.mount_source();
    let mountpoint = target.mountpoint.display().to_string();
    let v = |args: &[&str]| args.iter().map(|s| s.to_string()).collect::<Vec<String>>();
    match step {
        Step::ZdbCheck => v(&["zdb", "-e", "-C", pool]),
        Step::Import => match import {
            ImportMode::Force => v(&["zpool", "import", "-f", "-o", "cachefile=none", pool]),
            ImportMode::Plain => v(&["zpool", "import", "-o", "cachefile=none", pool]),
        },
        Step::PoolStatus => v(&["zpool", "status", "-x", pool]),
        Step::Dataset => v(&["zfs", "list", "-H", &source]),
        Step::Mkdir => v(&["mkdir", "-p", &mountpoint]),
        Step::Mount => {
            let fstype = target.kind.fstype().as_str();
            match target.mount_options.as_deref().map(str::trim).filter(|o| !o.is_empty()) {
                Some(opts) => v(&["mount", "-t", fstype, "-o", opts, &source, &mountpoint]),
                None => v(&["mount", "-t", fstype, &source, &mountpoint]),
            }
        }
        Step::VerifyDf => v(&["df", "-ht", "lustre"]),
        Step::VerifyLctl => v(&["lctl", "dl"]),
        Step::UmountIfMounted => v(&["umount", &mountpoint]),
        Step::Export | Step::ExportIfImported => v(&["zpool", "export", pool]),
        Step::PoolHealth => v(&["zpool", "list", "-H", "-o", "name,health", pool]),
        Step::Mounted | Step::VerifyMount => v(&["cat", "/proc/mounts"]),
        Step::HealthCheck => v(&["lctl", "get_param", "-n", "health_check"]),
        Step::LnetPing => v(&["lctl", "ping", nid.unwrap_or_default()]),
        Step::CheckCommand => target.check_command.clone().unwrap_or_default(),
    }
}

// ----- The label rule (DESIGN §2 rule 3) ------------------------------------------------------------------------

/// Who the label says last imported the pool, and whether that allows an import here — and with `-f` or not.
///
/// - Forced (`fenced` is the host confirmed off): the label must name the fenced host (hostname AND hostid) or
///   this host; `-f` only when it is ACTIVE and names the fenced host. Anything else aborts: a third host, a
///   cluster host that was not fenced, a name and hostid that belong to different hosts.
/// - Acquire (`fenced` is `None`): the label must name this host, or a cluster host (`known`) that EXPORTED it.
///   ACTIVE on another cluster host means it was never released: [`StorageError::NotExported`]. Never `-f`.
/// - DESTROYED, or an unknown state, aborts both.
///
/// An absent hostid in the label means hostid 0 (zdb omits the key then).
pub fn import_mode(
    step: &str,
    label: &ZdbLabel,
    me: &HostIdentity,
    fenced: Option<&HostIdentity>,
    known: &[HostIdentity],
) -> Result<ImportMode, StorageError> {
    match label.state {
        PoolState::Active | PoolState::Exported => {}
        PoolState::Destroyed => return Err(StorageError::Destroyed { step: step.into(), pool: label.name.clone() }),
        PoolState::Other(n) => {
            return Err(StorageError::Unparseable {
                step: step.into(),
                command: "zdb -e -C".into(),
                detail: format!("pool {} has unexpected state {n}", label.name),
            })
        }
    }
    let names = |h: &HostIdentity| label.hostid_or_zero() == h.hostid && h.is_named(&label.hostname);
    let foreign = || StorageError::ForeignOwner {
        step: step.into(),
        pool: label.name.clone(),
        hostname: label.hostname.clone(),
        hostid: label.hostid_or_zero(),
    };
    if names(me) {
        // Our own hostid: zpool imports without -f whether the label is ACTIVE or EXPORTED.
        return Ok(ImportMode::Plain);
    }
    match fenced {
        Some(fenced) if names(fenced) => match label.state {
            PoolState::Active => Ok(ImportMode::Force),
            _ => Ok(ImportMode::Plain),
        },
        Some(_) => Err(foreign()),
        None => match known.iter().find(|h| names(h)) {
            Some(_) if label.state == PoolState::Exported => Ok(ImportMode::Plain),
            Some(owner) => Err(StorageError::NotExported {
                step: step.into(),
                pool: label.name.clone(),
                hostname: owner.name.clone(),
                hostid: owner.hostid,
            }),
            None => Err(foreign()),
        },
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Serialize a [`Step`] as its stable name (`"zdb-check"`), as events and traces show it:
/// `#[serde(with = "crate::storage::step_name")]`.
pub mod step_name {
    use super::Step;

    /// The name of `step`.
    pub fn serialize<S: serde::Serializer>(step: &Step, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(step.name())
    }

    /// The step of a name.
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Step, D::Error> {
        let name = <String as serde::Deserialize>::deserialize(d)?;
        Step::from_name(&name).ok_or_else(|| serde::de::Error::custom(format!("unknown storage step `{name}`")))
    }

    /// The same for an optional step (`null` when there is none): `#[serde(with = "crate::storage::step_name::option")]`.
    pub mod option {
        use super::Step;

        /// The name of `step`, or `null`.
        pub fn serialize<S: serde::Serializer>(step: &Option<Step>, s: S) -> Result<S::Ok, S::Error> {
            match step {
                Some(step) => s.serialize_some(step.name()),
                None => s.serialize_none(),
            }
        }

        /// The step of a name, or `None` for `null`.
        pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Step>, D::Error> {
            let name = <Option<String> as serde::Deserialize>::deserialize(d)?;
            name.map(|n| Step::from_name(&n).ok_or_else(|| serde::de::Error::custom(format!("unknown storage step `{n}`")))).transpose()
        }
    }
}
