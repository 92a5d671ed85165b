//! Simulated shared storage: the "SAN" every simulated host sees, and the storage tools failoverd runs on
//! it (`zdb`, `zpool`, `zfs`, `mkdir`, `mount`, `umount`, `df`, `lctl`, `cat /proc/mounts`), answering in
//! the real tools' formats and exit codes (see `docs/reference/storage-tools-formats.md` and the OpenZFS 2.1.11
//! captures).
//!
//! # Model
//! * Pools live on shared disks: every host can `zdb -e` every pool. A pool carries its on-disk label
//!   (state ACTIVE/EXPORTED, hostid, hostname, txg, time of last use) and the set of hosts that have it
//!   imported. That set is normally one host, but `multihost=off` + `zpool import -f` (or two hosts sharing a
//!   hostid) can make it two: the double import failoverd's fencing must prevent, kept representable so that
//!   [`super::checker::storage_invariants`] can catch it.
//! * MMP (multihost): a pool imported on a powered, non-frozen host whose copy is not suspended "writes"
//!   continuously. The last write is recorded lazily: whenever a writer stops (power off, freeze, export,
//!   suspension) its stop time goes into `last_mmp_write`; while a writer runs, the last write is "now".
//!   An activity check over `[start, end]` sees activity iff the last write is later than `start`, so a host
//!   powered off in the middle of the window still counts for the writes it made before.
//! * Import rules follow OpenZFS 2.1 (`spa_activity_check_required`, `zfs_force_import_required`):
//!   the activity check runs iff multihost=on, the label says ACTIVE and its hostid is not ours (a cleanly
//!   exported pool, or one last used by this very hostid, skips it); `-f` is needed iff the label says ACTIVE
//!   and its hostid is not ours. A host frozen for 10 s (`zfs_multihost_fail_intervals` × 1 s) suspends its
//!   own copy when it resumes; a successful import elsewhere suspends a hung holder's copy at once.
//! * ldiskfs devices have ext4 MMP (5 s update interval): a mount waits `2×5+1` s (twice when the device
//!   was not cleanly unmounted) and fails with EBUSY if the MMP block changed meanwhile.
//!
//! # Timed operations
//! Real commands take time and their outcome depends on what happens meanwhile, so a command is split in two:
//! [`SharedStorage::begin`] parses it, draws its duration and returns a [`Pending`]; the world calls
//! [`SharedStorage::finish`] at `finish_at`, which decides the answer from the state at that time and applies
//! the effects. If the host loses power before `finish_at`, the world drops the pending op: `finish` must not
//! be called for a powered-off host (if it is, it answers "killed by signal 9" and changes nothing). A frozen
//! host runs nothing: the world delays or drops its commands.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::tools_common::{self as common, DEFAULT_EPOCH_UNIX};
use super::{tools_lustre, tools_zfs};
use crate::command::{Command, CommandResult, Exit};
use crate::time::Time;

/// MMP write interval (`zfs_multihost_interval`, 1000 ms).
pub const MMP_INTERVAL: Duration = Duration::from_secs(1);
/// A host that could not write MMP for this long suspends its pool (`zfs_multihost_fail_intervals` = 10).
pub const MMP_SUSPEND_AFTER: Duration = Duration::from_secs(10);
/// Base length of the import activity check (fail_intervals × interval × 2 = 20 s), before the +0–25 %.
pub const ACTIVITY_CHECK: Duration = Duration::from_secs(20);
/// ext4/ldiskfs MMP update interval (`EXT4_MMP_UPDATE_INTERVAL`).
pub const LDISKFS_MMP_INTERVAL: Duration = Duration::from_secs(5);

/// Pool state in the on-disk label (`pool_state_t`), as `zdb` prints it: 0 ACTIVE, 1 EXPORTED.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LabelState {
    Active,
    Exported,
}

impl LabelState {
    /// The number `zdb` prints for `state:`.
    pub fn code(self) -> u64 {
        match self {
            LabelState::Active => 0,
            LabelState::Exported => 1,
        }
    }
}

/// What the pool's on-disk label says about its last user: the facts `zdb -e -C` shows and `zpool import`
/// decides from. It exists separately from `imported_on` because a crash leaves the label ACTIVE with the
/// dead host's identity while no host has the pool imported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolLabel {
    pub state: LabelState,
    pub hostid: u32,
    pub hostname: String,
    pub txg: u64,
    /// Last time the last user was known alive (the uberblock timestamp shown as "Last accessed ... at").
    pub timestamp: Time,
}

/// Pool health as `zpool list -o health` spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PoolHealth {
    Online,
    Degraded,
    Suspended,
}

impl PoolHealth {
    pub fn as_str(self) -> &'static str {
        match self {
            PoolHealth::Online => "ONLINE",
            PoolHealth::Degraded => "DEGRADED",
            PoolHealth::Suspended => "SUSPENDED",
        }
    }
}

/// One host's import of a pool. Per host, because a suspended (stale) copy on a hung host and a live copy
/// elsewhere can coexist.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostImport {
    pub since: Time,
    /// The pool is suspended on this host (MMP writes failed, or another host took it over while this one hung).
    pub suspended: bool,
    /// Imported with `-o cachefile=none` (what `zpool get cachefile` reports).
    pub cachefile_none: bool,
}

/// A dataset of a pool (`tank/ost0`), with the sizes `zfs list` and `df` show.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimDataset {
    pub name: String,
    pub used: u64,
    pub refer: u64,
}

/// The single-disk vdev layout `zdb` prints; defaults reproduce the `boot1-create` capture.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VdevLayout {
    /// Name in `zpool status` (`vda`).
    pub disk: String,
    /// `path:` in the label (`/dev/vda1`).
    pub path: String,
    pub guid: u64,
    pub metaslab_array: u64,
    pub metaslab_shift: u64,
    pub ashift: u64,
    pub asize: u64,
    pub create_txg: u64,
    pub zap_leaf: u64,
    pub zap_top: u64,
}

impl Default for VdevLayout {
    fn default() -> Self {
        VdevLayout {
            disk: "vda".into(),
            path: "/dev/vda1".into(),
            guid: 3_511_796_398_808_594_333,
            metaslab_array: 68,
            metaslab_shift: 25,
            ashift: 9,
            asize: 521_666_560,
            create_txg: 4,
            zap_leaf: 66,
            zap_top: 67,
        }
    }
}

/// A ZFS pool on the shared disks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimPool {
    pub name: String,
    pub guid: u64,
    pub multihost: bool,
    pub datasets: Vec<SimDataset>,
    pub label: PoolLabel,
    /// Hosts that have the pool imported (normally at most one; see the module doc).
    pub imported_on: BTreeMap<String, HostImport>,
    /// Last MMP write of a holder that has since stopped writing (see the module doc).
    pub last_mmp_write: Option<Time>,
    /// Injected health when not suspended: `Online` or `Degraded`.
    pub health: PoolHealth,
    /// Pool root sizes for `zfs list` (`used`, `avail`, `refer`).
    pub used: u64,
    pub avail: u64,
    pub refer: u64,
    pub layout: VdevLayout,
}

/// How to build a pool with [`SharedStorage::add_pool`]; defaults reproduce the captured pool `tank`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolSpec {
    pub name: String,
    pub guid: u64,
    pub multihost: bool,
    /// Full dataset names and the Lustre device name (`lctl dl`) of the target each one holds.
    pub datasets: Vec<(String, Option<String>)>,
    pub txg: u64,
    pub layout: VdevLayout,
}

impl PoolSpec {
    /// A multihost=on pool with no datasets, txg 4 and the captured vdev layout.
    pub fn new(name: &str, guid: u64) -> PoolSpec {
        PoolSpec {
            name: name.into(),
            guid,
            multihost: true,
            datasets: Vec::new(),
            txg: 4,
            layout: VdevLayout::default(),
        }
    }

    pub fn multihost(mut self, on: bool) -> PoolSpec {
        self.multihost = on;
        self
    }

    /// Add a dataset (`pool/name`) holding the Lustre target `lustre_name` (e.g. `lfs-OST0000`, `MGS`).
    pub fn target(mut self, dataset: &str, lustre_name: &str) -> PoolSpec {
        self.datasets.push((dataset.into(), Some(lustre_name.into())));
        self
    }

    /// Add a dataset that holds no Lustre target.
    pub fn dataset(mut self, dataset: &str) -> PoolSpec {
        self.datasets.push((dataset.into(), None));
        self
    }

    pub fn txg(mut self, txg: u64) -> PoolSpec {
        self.txg = txg;
        self
    }

    pub fn layout(mut self, layout: VdevLayout) -> PoolSpec {
        self.layout = layout;
        self
    }
}

/// Where a new pool starts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PoolStart {
    /// Imported (and writing MMP) on this host.
    ImportedOn(String),
    /// Cleanly exported by this host (label state 1 with its hostid).
    ExportedBy(String),
    /// Left ACTIVE by this host, which is not running it any more (a crash before the scenario starts).
    LeftActiveBy(String),
}

/// An ldiskfs block device on the shared disks (a Lustre target formatted with ext4 MMP).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimDevice {
    pub device: String,
    /// ext4 `mmp` feature (mkfs.lustre enables it when failover nodes are given).
    pub mmp: bool,
    /// The MMP block says "cleanly unmounted" (seq CLEAN): a mount then skips the first wait.
    pub clean: bool,
    pub last_mmp_write: Option<Time>,
    pub size: u64,
    pub used: u64,
}

/// What backs a Lustre mount.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Backing {
    Zfs { pool: String },
    Ldiskfs,
}

/// A Lustre target mounted on a host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimMount {
    pub source: String,
    pub mountpoint: String,
    /// `lustre` (or `lustre_tgt` when mounted with that type).
    pub fstype: String,
    pub options: Option<String>,
    pub backing: Backing,
    /// The Lustre device name `lctl dl` shows for this target.
    pub lustre_name: String,
    /// ldiskfs only: another host mounted the device while this one hung; this mount is dead.
    pub stale: bool,
    pub since: Time,
}

/// Faults a scenario injects on one host's storage tools.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostFaults {
    /// `zpool import` fails with an I/O error.
    pub import_fails: bool,
    /// `mount -t lustre` fails with EIO.
    pub mount_fails: bool,
    /// Commands that hang until their timeout: argv prefixes joined by spaces (`"umount"`, `"zpool import"`,
    /// `"*"` for every command). A hung command has no effect (a hung umount leaves the target mounted).
    pub hang: BTreeSet<String>,
    /// Text `lctl get_param -n health_check` prints instead of `healthy` (e.g. `NOT HEALTHY`).
    pub health_check: Option<String>,
    /// `lctl ping` fails.
    pub lctl_ping_fails: bool,
    /// `zpool import` takes this much longer (a slow SAN, a pool with many datasets to mount).
    #[serde(default)]
    pub import_extra: Option<Duration>,
}

/// One host's local view: identity, power, mounts, directories and injected faults.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostStorage {
    pub name: String,
    pub hostid: u32,
    /// Set by the world (from the hardware model).
    pub powered: bool,
    /// Since when the host is hung (its MMP writes stopped), if it is.
    pub frozen_since: Option<Time>,
    pub mounts: Vec<SimMount>,
    /// Directories that exist (for `mkdir -p` and mount points); they survive reboots.
    pub dirs: BTreeSet<String>,
    pub faults: HostFaults,
    /// What `uname -n` prints when it is not the node name (a fully qualified name): ZFS writes it into the
    /// label of the pools this host imports.
    #[serde(default)]
    pub uname: Option<String>,
    /// Until when this kernel's `spa_namespace_lock` is held by an import's MMP activity check. OpenZFS runs
    /// the check with that global lock held (`spa_tryimport` for its whole load; `spa_load_impl` drops it only
    /// after `spa_ld_mos_with_trusted_config`), so the checks of one host run one after the other: an import
    /// started while another checks waits for it (measured in the real-ZFS lab, 2.3.2: two imports started
    /// together both ended after ~71 s instead of ~36 s).
    #[serde(default)]
    pub activity_lock_until: Option<Time>,
}

impl HostStorage {
    /// The hostname ZFS writes into a label: `uname -n`.
    pub fn label_name(&self) -> String {
        self.uname.clone().unwrap_or_else(|| self.name.clone())
    }
}

/// Tunables of the timing model that scenarios may change.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageTiming {
    /// Percent chance that a forced import runs its activity check twice (seen in `boot4-forceB`: 49 s).
    pub forced_double_check_percent: u32,
    /// Base length of one MMP activity check instead of [`ACTIVITY_CHECK`] (20 s), for demonstrations that
    /// cannot wait that long. `None` (the default) keeps the real length. An import that runs the check is
    /// scaled as a whole by `activity_check / ACTIVITY_CHECK`, so its +0–25 % jitter and a second check keep
    /// their proportions; imports that run no check are not affected.
    #[serde(default)]
    pub activity_check: Option<Duration>,
}

/// The whole simulated SAN plus every host's storage view: the state the storage tools read and change.
/// Serializable so several processes can share it as JSON in a directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedStorage {
    pub pools: BTreeMap<String, SimPool>,
    pub ldiskfs: BTreeMap<String, SimDevice>,
    pub hosts: BTreeMap<String, HostStorage>,
    /// Mount source (`tank/ost0`, `/dev/sdb`) → Lustre device name shown by `lctl dl` (`lfs-OST0000`).
    pub lustre_names: BTreeMap<String, String>,
    /// Unix time of `Time::ZERO`, for the dates tools print.
    pub epoch_unix: u64,
    /// NID of the MGS, shown in the `mgc` line of `lctl dl`.
    pub mgs_nid: String,
    pub timing: StorageTiming,
    /// The Lustre recovery windows of the simulated servers (`recovery.rs`).
    #[serde(default)]
    pub recovery: super::recovery::RecoveryModel,
}

/// A setup mistake in a scenario.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SetupError {
    #[error("unknown host {0}")]
    UnknownHost(String),
    #[error("unknown pool {0}")]
    UnknownPool(String),
    #[error("{0} already exists")]
    Duplicate(String),
    #[error("dataset {dataset} is not inside pool {pool}")]
    BadDataset { pool: String, dataset: String },
}

/// A command in flight: when it completes and what to do then.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub finish_at: Time,
    pub op: PendingOp,
}

/// The parsed command, its start time and what was decided when it began.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingOp {
    pub host: String,
    pub started: Time,
    pub kind: StorageOp,
}

/// The storage commands the simulator understands, parsed from argv.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StorageOp {
    /// An answer fixed when the command began (unknown program, usage error).
    Answer(CommandResult),
    /// Runs until the command's timeout, then is killed: no effect.
    Hang,
    Zdb {
        pool: String,
        exported: bool,
    },
    /// `label_at_start`: the label as `zpool import` first read it (None: no such pool then).
    Import {
        pool: String,
        force: bool,
        cachefile_none: bool,
        label_at_start: Option<PoolLabel>,
    },
    Export {
        pool: String,
    },
    Status {
        pool: Option<String>,
        only_unhealthy: bool,
    },
    List {
        pool: Option<String>,
        fields: Vec<String>,
        scripted: bool,
    },
    Get {
        pool: String,
        props: Vec<String>,
        fields: Vec<String>,
        scripted: bool,
    },
    ZfsList {
        target: Option<String>,
        scripted: bool,
    },
    Mkdir {
        dirs: Vec<String>,
        parents: bool,
    },
    Mount {
        source: String,
        mountpoint: String,
        fstype: String,
        options: Option<String>,
    },
    Umount {
        target: String,
    },
    Df,
    LctlDl,
    LctlHealth,
    /// `lctl get_param -n <mdt|obdfilter>.<device>.recovery_status`.
    LctlRecovery {
        device: String,
    },
    LctlPing {
        nid: String,
    },
    CatMounts,
}

/// The context of one command being planned.
pub(crate) struct Ctx<'a> {
    pub host: &'a str,
    pub cmd: &'a Command,
}

/// A planned command: how long it takes and what it is.
pub(crate) type Plan = (Duration, StorageOp);

type Planner = fn(&SharedStorage, &Ctx, &[String], &mut ChaCha8Rng) -> Plan;

/// Program name → planner: the commands this module answers.
const TOOLS: &[(&str, Planner)] = &[
    ("zdb", tools_zfs::plan_zdb),
    ("zpool", tools_zfs::plan_zpool),
    ("zfs", tools_zfs::plan_zfs),
    ("mkdir", tools_lustre::plan_mkdir),
    ("mount", tools_lustre::plan_mount),
    ("umount", tools_lustre::plan_umount),
    ("df", tools_lustre::plan_df),
    ("lctl", tools_lustre::plan_lctl),
    ("cat", tools_lustre::plan_cat),
];

impl Default for SharedStorage {
    fn default() -> Self {
        SharedStorage::new()
    }
}

impl SharedStorage {
    /// An empty SAN with no hosts.
    pub fn new() -> SharedStorage {
        SharedStorage {
            pools: BTreeMap::new(),
            ldiskfs: BTreeMap::new(),
            hosts: BTreeMap::new(),
            lustre_names: BTreeMap::new(),
            epoch_unix: DEFAULT_EPOCH_UNIX,
            mgs_nid: "10.0.0.1@tcp".into(),
            timing: StorageTiming::default(),
            recovery: super::recovery::RecoveryModel::new(super::recovery::DEFAULT_CLIENTS, 0),
        }
    }

    // ----- setup -------------------------------------------------------------------------------------

    /// Add a powered host with this ZFS hostid (0 = unset).
    /// The host whose `uname -n` a label names, if it is one of ours.
    pub fn host_named_in_label(&self, hostname: &str) -> Option<String> {
        self.hosts.values().find(|h| h.label_name() == hostname).map(|h| h.name.clone())
    }

    pub fn add_host(&mut self, name: &str, hostid: u32) -> Result<(), SetupError> {
        if self.hosts.contains_key(name) {
            return Err(SetupError::Duplicate(format!("host {name}")));
        }
        let host = HostStorage {
            name: name.into(),
            hostid,
            powered: true,
            frozen_since: None,
            activity_lock_until: None,
            mounts: Vec::new(),
            dirs: BTreeSet::new(),
            faults: HostFaults::default(),
            uname: None,
        };
        self.hosts.insert(name.into(), host);
        Ok(())
    }

    /// Add a pool, imported on, exported by, or left active by a known host.
    pub fn add_pool(&mut self, spec: PoolSpec, start: PoolStart, now: Time) -> Result<(), SetupError> {
        if self.pools.contains_key(&spec.name) {
            return Err(SetupError::Duplicate(format!("pool {}", spec.name)));
        }
        let (host_name, state, imported) = match &start {
            PoolStart::ImportedOn(h) => (h, LabelState::Active, true),
            PoolStart::ExportedBy(h) => (h, LabelState::Exported, false),
            PoolStart::LeftActiveBy(h) => (h, LabelState::Active, false),
        };
        let host = self.hosts.get(host_name).ok_or_else(|| SetupError::UnknownHost(host_name.clone()))?;
        let label =
            PoolLabel { state, hostid: host.hostid, hostname: host.label_name(), txg: spec.txg, timestamp: now };
        let datasets = self.dataset_list(&spec)?;
        let mut pool = SimPool {
            name: spec.name.clone(),
            guid: spec.guid,
            multihost: spec.multihost,
            datasets,
            label,
            imported_on: BTreeMap::new(),
            last_mmp_write: None,
            health: PoolHealth::Online,
            used: 147 * 1024,
            avail: 352 * 1024 * 1024,
            refer: 24 * 1024,
            layout: spec.layout.clone(),
        };
        if imported {
            pool.imported_on
                .insert(host_name.clone(), HostImport { since: now, suspended: false, cachefile_none: true });
        }
        self.pools.insert(spec.name.clone(), pool);
        Ok(())
    }

    fn dataset_list(&mut self, spec: &PoolSpec) -> Result<Vec<SimDataset>, SetupError> {
        let prefix = format!("{}/", spec.name);
        let mut out = Vec::new();
        for (name, lustre) in &spec.datasets {
            if !name.starts_with(&prefix) {
                return Err(SetupError::BadDataset { pool: spec.name.clone(), dataset: name.clone() });
            }
            if let Some(l) = lustre {
                self.lustre_names.insert(name.clone(), l.clone());
            }
            out.push(SimDataset { name: name.clone(), used: 24 * 1024, refer: 24 * 1024 });
        }
        Ok(out)
    }

    /// Add an ldiskfs device (`/dev/sdb`) holding the Lustre target `lustre_name`, unmounted and clean.
    pub fn add_ldiskfs(&mut self, device: &str, lustre_name: &str, mmp: bool) -> Result<(), SetupError> {
        if self.ldiskfs.contains_key(device) {
            return Err(SetupError::Duplicate(format!("device {device}")));
        }
        let dev = SimDevice {
            device: device.into(),
            mmp,
            clean: true,
            last_mmp_write: None,
            size: 960 * 1024 * 1024,
            used: 2_300_000,
        };
        self.ldiskfs.insert(device.into(), dev);
        self.lustre_names.insert(device.into(), lustre_name.into());
        Ok(())
    }

    /// Set the Lustre device name `lctl dl` shows for a mount source.
    pub fn set_lustre_name(&mut self, source: &str, name: &str) {
        self.lustre_names.insert(source.into(), name.into());
    }

    /// Create a directory on a host (e.g. a mount point made at install time).
    pub fn add_dir(&mut self, host: &str, dir: &str) -> Result<(), SetupError> {
        let h = self.hosts.get_mut(host).ok_or_else(|| SetupError::UnknownHost(host.into()))?;
        h.dirs.insert(dir.into());
        Ok(())
    }

    /// The faults of a host, to inject or clear them.
    pub fn faults_mut(&mut self, host: &str) -> Option<&mut HostFaults> {
        self.hosts.get_mut(host).map(|h| &mut h.faults)
    }

    // ----- world hooks -------------------------------------------------------------------------------

    /// Power a host on or off. Off is a crash: its imports and mounts vanish from it, the pool labels stay
    /// ACTIVE with its hostid, its MMP writes stop now, its ldiskfs devices are left not-clean.
    pub fn set_powered(&mut self, host: &str, on: bool, now: Time) {
        let Some(h) = self.hosts.get(host) else { return };
        if h.powered == on {
            return;
        }
        if on {
            if let Some(h) = self.hosts.get_mut(host) {
                h.powered = true;
            }
            return;
        }
        self.checkpoint_writes(host, now);
        for pool in self.pools.values_mut() {
            pool.imported_on.remove(host);
        }
        let Some(h) = self.hosts.get_mut(host) else { return };
        let mounts = std::mem::take(&mut h.mounts);
        h.powered = false;
        h.activity_lock_until = None;
        for m in &mounts {
            self.recovery.on_down(&m.lustre_name, now);
        }
        h.frozen_since = None;
        for m in mounts.iter().filter(|m| m.backing == Backing::Ldiskfs && !m.stale) {
            if let Some(dev) = self.ldiskfs.get_mut(&m.source) {
                dev.clean = false;
            }
        }
    }

    /// Freeze (hang) or thaw a host. Frozen, it writes no MMP. Thawed after at least [`MMP_SUSPEND_AFTER`],
    /// its multihost pools suspend themselves (their MMP writes were late).
    pub fn set_frozen(&mut self, host: &str, frozen: bool, now: Time) {
        let Some(since) = self.hosts.get(host).map(|h| h.frozen_since) else { return };
        match (frozen, since) {
            (true, None) => {
                self.checkpoint_writes(host, now);
                if let Some(h) = self.hosts.get_mut(host) {
                    h.frozen_since = Some(now);
                }
            }
            (false, Some(since)) => {
                if now.since(since) >= MMP_SUSPEND_AFTER {
                    self.suspend_multihost_imports(host);
                }
                if let Some(h) = self.hosts.get_mut(host) {
                    h.frozen_since = None;
                }
            }
            _ => {}
        }
    }

    /// Suspend a pool on every host that has it imported (injected fault: its owner sees SUSPENDED).
    pub fn suspend_pool(&mut self, pool: &str, now: Time) {
        let holders: Vec<String> =
            self.pools.get(pool).map(|p| p.imported_on.keys().cloned().collect()).unwrap_or_default();
        for host in holders {
            self.note_stop_writing(pool, &host, now);
            if let Some(imp) = self.pools.get_mut(pool).and_then(|p| p.imported_on.get_mut(&host)) {
                imp.suspended = true;
            }
        }
    }

    /// Set a pool's health when not suspended (`Online` or `Degraded`).
    pub fn set_pool_health(&mut self, pool: &str, health: PoolHealth) -> Result<(), SetupError> {
        let p = self.pools.get_mut(pool).ok_or_else(|| SetupError::UnknownPool(pool.into()))?;
        p.health = health;
        Ok(())
    }

    fn suspend_multihost_imports(&mut self, host: &str) {
        for pool in self.pools.values_mut().filter(|p| p.multihost) {
            if let Some(imp) = pool.imported_on.get_mut(host) {
                imp.suspended = true;
            }
        }
    }

    // ----- read access for the world -----------------------------------------------------------------

    pub fn pool(&self, name: &str) -> Option<&SimPool> {
        self.pools.get(name)
    }

    pub fn host(&self, name: &str) -> Option<&HostStorage> {
        self.hosts.get(name)
    }

    /// The on-disk label of a pool.
    pub fn label(&self, pool: &str) -> Option<&PoolLabel> {
        self.pools.get(pool).map(|p| &p.label)
    }

    /// Hosts that have the pool imported (suspended copies included), in name order.
    pub fn holders(&self, pool: &str) -> Vec<String> {
        self.pools.get(pool).map(|p| p.imported_on.keys().cloned().collect()).unwrap_or_default()
    }

    /// Pools imported on a host, in name order.
    pub fn imported_pools(&self, host: &str) -> Vec<String> {
        self.pools.values().filter(|p| p.imported_on.contains_key(host)).map(|p| p.name.clone()).collect()
    }

    /// The Lustre mounts of a host, in mount order.
    pub fn mounts(&self, host: &str) -> &[SimMount] {
        self.hosts.get(host).map(|h| h.mounts.as_slice()).unwrap_or(&[])
    }

    /// The pool's health on this host, if imported here.
    pub fn health_on(&self, pool: &str, host: &str) -> Option<PoolHealth> {
        let p = self.pools.get(pool)?;
        let imp = p.imported_on.get(host)?;
        Some(if imp.suspended { PoolHealth::Suspended } else { p.health })
    }

    /// Each pool with a live copy (imported, not suspended) on a powered host, and those hosts: what
    /// [`super::checker::pool_imported_once`] checks.
    pub(crate) fn pools_live_on(&self) -> Vec<(String, Vec<String>)> {
        self.pools
            .values()
            .map(|pool| {
                let live = pool.imported_on.iter().filter(|(h, imp)| !imp.suspended && self.is_powered(h)).map(|(h, _)| h.clone());
                (pool.name.clone(), live.collect())
            })
            .collect()
    }

    /// Each mounted source and the powered hosts where its mount is live: what
    /// [`super::checker::target_mounted_once`] checks.
    pub(crate) fn live_mounts_by_source(&self) -> BTreeMap<String, Vec<String>> {
        let mut by_source: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for host in self.hosts.values().filter(|h| h.powered) {
            for m in host.mounts.iter().filter(|m| self.mount_is_live(&host.name, m)) {
                by_source.entry(m.source.clone()).or_default().push(host.name.clone());
            }
        }
        by_source
    }

    fn mount_is_live(&self, host: &str, m: &SimMount) -> bool {
        match &m.backing {
            Backing::Ldiskfs => !m.stale,
            Backing::Zfs { pool } => self.health_on(pool, host).is_some_and(|h| h != PoolHealth::Suspended),
        }
    }

    // ----- MMP bookkeeping ---------------------------------------------------------------------------

    pub(crate) fn is_powered(&self, host: &str) -> bool {
        self.hosts.get(host).is_some_and(|h| h.powered)
    }

    /// Powered and not hung: the host's kernel threads (MMP, kmmpd) run.
    pub(crate) fn host_alive(&self, host: &str) -> bool {
        self.hosts.get(host).is_some_and(|h| h.powered && h.frozen_since.is_none())
    }

    /// The host holds the pool and is alive, and its copy is not suspended.
    fn holder_live(&self, pool: &SimPool, host: &str) -> bool {
        pool.imported_on.get(host).is_some_and(|imp| !imp.suspended) && self.host_alive(host)
    }

    /// Is a holder other than `except` writing MMP on the pool right now?
    pub(crate) fn pool_writer_live(&self, pool: &SimPool, except: &str) -> bool {
        pool.multihost && pool.imported_on.keys().any(|h| h != except && self.holder_live(pool, h))
    }

    /// Time of the last MMP write on the pool by a host other than `except`, as of `now`.
    pub(crate) fn pool_last_write(&self, pool: &SimPool, except: &str, now: Time) -> Option<Time> {
        if !pool.multihost {
            None
        } else if self.pool_writer_live(pool, except) {
            Some(now)
        } else {
            pool.last_mmp_write
        }
    }

    /// Did a holder other than `except` write MMP at or after `since` (and up to `now`)? "At" counts, so
    /// that a writer stopping in the very instant a check begins is still seen (the conservative choice).
    pub(crate) fn pool_written_since(&self, pool: &SimPool, except: &str, since: Time, now: Time) -> bool {
        self.pool_last_write(pool, except, now).is_some_and(|t| t >= since)
    }

    /// When the pool's last user was last seen alive ("Last accessed ... at").
    pub(crate) fn last_accessed(&self, pool: &SimPool, now: Time) -> Time {
        if pool.imported_on.keys().any(|h| self.holder_live(pool, h)) {
            now
        } else {
            pool.label.timestamp
        }
    }

    /// The host is about to stop writing (power off, freeze): record its last writes and last-alive times.
    fn checkpoint_writes(&mut self, host: &str, now: Time) {
        let pools: Vec<String> = self.pools.keys().cloned().collect();
        for pool in pools {
            self.note_stop_writing(&pool, host, now);
        }
        let devices: Vec<String> = self
            .mounts(host)
            .iter()
            .filter(|m| m.backing == Backing::Ldiskfs && !m.stale)
            .map(|m| m.source.clone())
            .collect();
        if !self.host_alive(host) {
            return;
        }
        for dev in devices {
            if let Some(d) = self.ldiskfs.get_mut(&dev).filter(|d| d.mmp) {
                d.last_mmp_write = Some(now);
            }
        }
    }

    /// `host` stops using `pool` now (export, suspension, power off, freeze): if it was writing, its last
    /// write and the label's last-alive time are now.
    pub(crate) fn note_stop_writing(&mut self, pool: &str, host: &str, now: Time) {
        let live = self.pools.get(pool).is_some_and(|p| self.holder_live(p, host));
        if !live {
            return;
        }
        if let Some(p) = self.pools.get_mut(pool) {
            p.label.timestamp = now;
            if p.multihost {
                p.last_mmp_write = Some(now);
            }
        }
    }

    // ----- commands ----------------------------------------------------------------------------------

    /// Start a command on `host` at `now`: parse it, draw its duration, and say when it completes.
    pub fn begin(&mut self, host: &str, cmd: &Command, now: Time, rng: &mut ChaCha8Rng) -> Pending {
        let (took, kind) = self.plan(host, cmd, rng);
        let took = self.with_activity_check_override(&kind, took);
        // an import with an MMP activity check first waits for this kernel's namespace lock
        let checks = matches!(kind, StorageOp::Import { .. }) && took >= self.activity_check_length();
        let queued = if checks {
            self.hosts.get(host).and_then(|h| h.activity_lock_until).filter(|t| *t > now).map_or(Duration::ZERO, |t| t.since(now))
        } else {
            Duration::ZERO
        };
        let (took, kind) = match common::within_timeout(cmd, queued + took) {
            Some(d) => (d, kind),
            None => (cmd.timeout, StorageOp::Hang),
        };
        if checks && !matches!(kind, StorageOp::Hang) {
            if let Some(h) = self.hosts.get_mut(host) {
                h.activity_lock_until = Some(now + took);
            }
        }
        Pending { finish_at: now + took, op: PendingOp { host: host.into(), started: now, kind } }
    }

    /// The length from which an import includes an MMP activity check ([`ACTIVITY_CHECK`], or the scenario's
    /// shorter `activity_check`).
    fn activity_check_length(&self) -> Duration {
        self.timing.activity_check.unwrap_or(ACTIVITY_CHECK).min(ACTIVITY_CHECK)
    }

    /// Apply [`StorageTiming::activity_check`] to a planned command. Only an import that waits for an MMP
    /// activity check takes [`ACTIVITY_CHECK`] or longer (every other import answers within seconds), so
    /// those are the ones scaled.
    fn with_activity_check_override(&self, kind: &StorageOp, took: Duration) -> Duration {
        match (self.timing.activity_check, kind) {
            (Some(check), StorageOp::Import { .. }) if took >= ACTIVITY_CHECK => {
                let scaled = took.as_micros() * check.as_micros() / ACTIVITY_CHECK.as_micros();
                Duration::from_micros(u64::try_from(scaled).unwrap_or(u64::MAX))
            }
            _ => took,
        }
    }

    fn plan(&self, host: &str, cmd: &Command, rng: &mut ChaCha8Rng) -> Plan {
        let Some(h) = self.hosts.get(host) else {
            let why = format!("unknown simulated host {host}");
            let result = CommandResult {
                exit: Exit::SpawnFailed(why),
                stdout: String::new(),
                stderr: String::new(),
                duration: Duration::ZERO,
            };
            return (Duration::ZERO, StorageOp::Answer(result));
        };
        if hangs(&h.faults, cmd) {
            return (hang_duration(cmd), StorageOp::Hang);
        }
        let prog = common::program_name(cmd.program());
        let ctx = Ctx { host, cmd };
        match TOOLS.iter().find(|(name, _)| *name == prog) {
            Some((_, planner)) => planner(self, &ctx, &cmd.argv[1..], rng),
            None => (common::between_ms(rng, 1, 3), StorageOp::Answer(common::command_not_found(cmd))),
        }
    }

    /// Complete a command at `now` (its `finish_at`): decide the answer from the state now and apply the
    /// effects. Must not be called for a host that lost power meanwhile (see the module doc).
    pub fn finish(&mut self, host: &str, op: PendingOp, now: Time) -> CommandResult {
        if !self.is_powered(host) {
            let killed = CommandResult {
                exit: Exit::Signal(9),
                stdout: String::new(),
                stderr: String::new(),
                duration: Duration::ZERO,
            };
            return common::with_duration(killed, op.started, now);
        }
        let started = op.started;
        let result = match op.kind {
            StorageOp::Answer(r) => r,
            StorageOp::Hang => common::timed_out_after(Duration::ZERO),
            StorageOp::Zdb { pool, exported } => tools_zfs::finish_zdb(self, &pool, exported),
            StorageOp::Import { pool, force, cachefile_none, label_at_start } => {
                let req = tools_zfs::ImportRequest { pool, force, cachefile_none, label_at_start, started };
                tools_zfs::finish_import(self, host, req, now)
            }
            StorageOp::Export { pool } => tools_zfs::finish_export(self, host, &pool, now),
            StorageOp::Status { pool, only_unhealthy } => {
                tools_zfs::finish_status(self, host, pool.as_deref(), only_unhealthy)
            }
            StorageOp::List { pool, fields, scripted } => {
                tools_zfs::finish_list(self, host, pool.as_deref(), &fields, scripted)
            }
            StorageOp::Get { pool, props, fields, scripted } => {
                tools_zfs::finish_get(self, host, &pool, &props, &fields, scripted)
            }
            StorageOp::ZfsList { target, scripted } => {
                tools_zfs::finish_zfs_list(self, host, target.as_deref(), scripted)
            }
            StorageOp::Mkdir { dirs, parents } => tools_lustre::finish_mkdir(self, host, &dirs, parents),
            StorageOp::Mount { source, mountpoint, fstype, options } => {
                let req = tools_lustre::MountRequest { source, mountpoint, fstype, options, started };
                tools_lustre::finish_mount(self, host, req, now)
            }
            StorageOp::Umount { target } => tools_lustre::finish_umount(self, host, &target, now),
            StorageOp::Df => tools_lustre::finish_df(self, host),
            StorageOp::LctlDl => tools_lustre::finish_lctl_dl(self, host),
            StorageOp::LctlHealth => tools_lustre::finish_health(self, host),
            StorageOp::LctlRecovery { device } => tools_lustre::finish_recovery_status(self, host, &device, now),
            StorageOp::LctlPing { nid } => tools_lustre::finish_ping(self, host, &nid),
            StorageOp::CatMounts => tools_lustre::finish_cat_mounts(self, host),
        };
        common::with_duration(result, started, now)
    }
}

/// Does an injected hang pattern match this command?
fn hangs(faults: &HostFaults, cmd: &Command) -> bool {
    let line = cmd.display();
    faults.hang.iter().any(|p| p == "*" || line == *p || line.starts_with(&format!("{p} ")))
}

/// How long a hung command runs: its timeout, or a day when it has none.
fn hang_duration(cmd: &Command) -> Duration {
    if cmd.timeout.is_zero() {
        Duration::from_secs(86_400)
    } else {
        cmd.timeout
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    /// mds1 crashed at 60 s holding `mdt0pool`; mds2 imports it with `-f` at 90 s.
    fn forced_import(timing: StorageTiming) -> (CommandResult, Duration) {
        let mut st = SharedStorage::new();
        st.timing = timing;
        st.add_host("mds1", 0xa1a1_a1a1).unwrap();
        st.add_host("mds2", 0xb2b2_b2b2).unwrap();
        let spec = PoolSpec::new("mdt0pool", 7).target("mdt0pool/mdt0", "lustre-MDT0000");
        st.add_pool(spec, PoolStart::ImportedOn("mds1".into()), Time::ZERO).unwrap();
        st.set_powered("mds1", false, Time::from_secs(60));
        let cmd = Command::new(["zpool", "import", "-f", "-o", "cachefile=none", "mdt0pool"], Duration::from_secs(120));
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let start = Time::from_secs(90);
        let p = st.begin("mds2", &cmd, start, &mut rng);
        let took = p.finish_at.since(start);
        (st.finish("mds2", p.op, p.finish_at), took)
    }

    #[test]
    fn activity_check_override_shortens_only_the_check() {
        let (real, real_took) = forced_import(StorageTiming::default());
        assert!(real.success() && real_took >= ACTIVITY_CHECK, "{real:?} {real_took:?}");
        let short = StorageTiming { activity_check: Some(Duration::from_secs(5)), ..StorageTiming::default() };
        let (r, took) = forced_import(short);
        assert!(r.success(), "{r:?}");
        // the same draw, scaled by 5/20: 5 s plus the scaled jitter and import work
        assert_eq!(took.as_micros(), real_took.as_micros() / 4);
        assert!(took >= Duration::from_secs(5) && took < Duration::from_secs(7), "{took:?}");
    }
}
