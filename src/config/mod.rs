//! The TOML configuration: schema, defaults and validation.
//!
//! The validated [`Config`] below is what the rest of failoverd consumes. Every node of a cluster runs with the
//! same file. Parsing goes through a raw layer (serde structs whose every key is optional, wrapped in
//! `serde_ignored` to catch unknown keys) and a validator that collects *every* problem at once and reports each
//! with the key that holds it, e.g. `node[1].addresses: 1 address but the cluster has 2 links`. Array entries are
//! counted from 0 in keys: `node[0]` is the first `[[node]]` of the file.
//!
//! Entry points: [`Config::from_toml_str`] (pure), [`Config::load`] (reads the file and checks the key files),
//! [`load_key`] (reads a key file), [`Config::digest`] / [`Config::target_digest`] (carried in heartbeats so that
//! nodes notice a different configuration), [`Config::warnings`] (legal but questionable settings).
//!
//! # Schema
//!
//! ```toml
//! [cluster]
//! name = "lfs-mds"                          # required; [A-Za-z0-9_.-], at most 64 characters
//! key_file = "/etc/failoverd/cluster.key"   # required; absolute; at least 32 bytes (`failoverd keygen`)
//! next_key_file = "/etc/failoverd/next.key" # optional; also accepted on receive during a key roll
//! links = ["ring0", "ring1"]                # required; 1 to 8 unique names; one address per link per node
//! heartbeat_interval = "250ms"              # default 250ms; at least 10ms
//! dead_after = "3s"                         # default 3s; at least 3 x heartbeat_interval
//! fence_delay = "10s"                       # default 10s; must not be 0 in a two-node cluster without witness
//! wait_for_all = true                       # default true
//! stall_threshold = "1500ms"                # default dead_after / 2; must be shorter than dead_after
//! state_dir = "/var/lib/failoverd"          # default; absolute
//! control_socket = "/run/failoverd/control.sock"  # default; absolute
//! monitor_interval = "10s"                  # default 10s
//! monitor_failures = 3                      # default 3; at least 1
//! import_timeout = "120s"                   # default 120s (the MMP activity check is ~20s + 25%, can run twice)
//! mount_timeout = "300s"                    # default 300s (as Lustre's resource agent)
//! command_timeout = "60s"                   # default 60s
//! fence_retry_initial = "2s"                # default 2s
//! fence_retry_max = "60s"                   # default 60s; at least fence_retry_initial
//! notify = "/usr/local/bin/failoverd-notify"  # optional; absolute
//! metrics_listen = "127.0.0.1:9405"         # optional; ip:port
//! lock_memory = false                       # default false
//! recovery_budget = "900s"                  # default 900s (Lustre's recovery_time_hard); 0s: do not follow
//! control_allowed_uids = []                 # default empty (root only)
//! disk_heartbeat = "/dev/disk/by-id/dm-name-hb"  # optional; absolute; a small shared LUN, never a pool
//!                                           # member; set or unset cluster-wide, the path is node-local
//!
//! [[node]]                                  # at least one
//! name = "mds1"                             # required; unique
//! addresses = ["10.0.0.1:7405", "10.1.0.1:7405"]  # required; one ip:port per link, in the order of links
//! hostid = "a1a1a1a1"                       # required; 8 hex digits as hostid(1) prints them, optional 0x;
//!                                           # a TOML integer (0xa1a1a1a1) works too; not 0; unique
//! # hostname = "mds1.lab.example"         # optional: what `uname -n` prints there (ZFS writes it into pool
//!                                           # labels); default: the name, or an FQDN starting with "<name>."
//! fence_priority = 10                       # default 0
//! fence_levels = [["mds1-ipmi"], ["mds1-pdu-a", "mds1-pdu-b"]]  # tried in order; all devices of a level
//! # fencing = "manual"                      # instead of fence_levels: only an operator fences this node
//!
//! [[fence_device]]
//! name = "mds1-ipmi"                        # required; unique
//! kind = "ipmi"                             # required: ipmi | pdu-snmp | agent | manual
//! timeout = "20s"                           # default 20s: one command sent to the device
//! power_timeout = "20s"                     # default 20s: polling status after off until it reads off
//! poll_interval = "1s"                      # default 1s; at most power_timeout
//! # ipmi:     host (required), port = 623, username (required), password_file (required, absolute),
//! #           lanplus = true, privilege = "administrator" (callback | user | operator | administrator),
//! #           cipher = 3 (0-255; lanplus only; without lanplus no -C is passed)
//! # pdu-snmp: host (required), port = 161, community_file (required, absolute), outlets = [3, 4] (required,
//! #           at least one, each >= 1), profile = "apc-rpdu" (apc-rpdu | apc-masterswitch | tripplite),
//! #           snmp_version = "1" ("1" | "2c")
//! # agent:    program = "fence_ipmilan" (required; a name on PATH or an absolute path),
//! #           options = { ip = "10.0.9.1", username = "admin" } (strings; not action, plug, port, password),
//! #           secret_options = { password = "/etc/failoverd/bmc.pw" } (values are absolute paths read at run
//! #           time), plug = "3" (optional)
//! # manual:   nothing else; the operator confirms with `failoverd confirm-fenced NODE`
//!
//! [[target]]
//! name = "MGT"                              # required; unique
//! kind = "zfs"                              # required: zfs | ldiskfs
//! pool = "mgspool"                          # zfs, required; one target per pool
//! dataset = "mgspool/mgt"                   # zfs, required; "mgt" alone means "mgspool/mgt"
//! # device = "/dev/mapper/mdt0"             # ldiskfs, required, absolute
//! mountpoint = "/lustre/mgt"                # required; absolute; unique
//! nodes = ["mds1", "mds2"]                  # required; known nodes, most preferred first, no duplicates
//! start_order = 0                           # default 0; lower starts first
//! lctl_device = "MGS"                       # default: the target name; unique
//! mount_options = "abort_recov"             # optional
//! health_nids = ["10.0.0.9@tcp"]            # default empty
//! check_command = ["/usr/local/bin/check-mgt"]  # optional argv; exit 0 = healthy
//! fstype = "lustre"                         # default; "zfs": a plain ZFS dataset (mount -t zfs, no lctl)
//!
//! [witness]                                 # optional
//! address = "10.0.0.9:7406"
//! ```
//!
//! # Choices made here
//!
//! * Keys that belong to another kind (`pool` on an ldiskfs target, `outlets` on an ipmi device) are errors.
//! * `fencing = "manual"` together with `fence_levels` is rejected as ambiguous: to fall back to an operator
//!   after the devices failed, end the levels with a `[[fence_device]]` of kind `manual`.
//! * A device other than `manual` may appear in the levels of one node only: it cuts that node's power, and
//!   sharing it would fence the wrong host. A device that no node uses is only a warning.
//! * Two targets may not share a pool: failoverd imports and exports the whole pool with each target.
//! * Node addresses are IP literals (no DNS lookup may stand between a failure and its failover).
//! * Paths of files read by the daemon must be absolute (it runs with `/` as working directory).
//! * A key file holds raw bytes; a trailing line end is not part of the key, so the 64 hex characters written
//!   by `failoverd keygen` are a 64-byte key.
//! * A section of the wrong shape (`[node]` instead of `[[node]]`, `cluster = 1`) stops validation after the
//!   structural problems are reported; every other problem is collected in one pass.
#![deny(clippy::disallowed_methods, clippy::disallowed_types)] // the pure core: see clippy.toml

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use toml::Value;

mod build;
mod checks;
mod digest;
mod raw;
mod read;
mod warnings;
#[cfg(test)]
mod tests;

use build::*;
use checks::*;
pub use digest::*;
use raw::*;
use read::*;
use warnings::*;

/// A whole, validated cluster configuration. Every node of a cluster runs with the same file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// `[cluster]`.
    pub cluster: ClusterConfig,
    /// `[[node]]` entries, in file order.
    pub nodes: Vec<NodeConfig>,
    /// `[[fence_device]]` entries, in file order.
    pub fence_devices: Vec<FenceDeviceConfig>,
    /// `[[target]]` entries, in file order.
    pub targets: Vec<TargetConfig>,
    /// `[witness]`, if any.
    pub witness: Option<WitnessConfig>,
}

/// `[cluster]`: identity, key, timing and local paths.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClusterConfig {
    /// Cluster name; heartbeats naming another cluster are dropped.
    pub name: String,
    /// File holding the shared heartbeat key (at least 32 bytes).
    pub key_file: PathBuf,
    /// Optional second key accepted on receive during a key roll (sending uses `key_file`).
    pub next_key_file: Option<PathBuf>,
    /// Names of the heartbeat links, e.g. `["ring0", "ring1"]`; every node has one address per link.
    pub links: Vec<String>,
    /// How often every node sends a heartbeat to every peer on every link.
    pub heartbeat_interval: Duration,
    /// A peer silent on every link for this long is dead (and a link silent this long is down).
    pub dead_after: Duration,
    /// How long the lower-`fence_priority` node of a two-node cluster without witness waits before fencing.
    pub fence_delay: Duration,
    /// Do not fence or take over until every node has been seen at least once since start.
    pub wait_for_all: bool,
    /// A tick served later than asked by more than this means this process itself stalled: convict nobody.
    pub stall_threshold: Duration,
    /// Where the incarnation counter and other state persist across restarts.
    pub state_dir: PathBuf,
    /// Unix socket of the control interface (`failoverd status`, `migrate`, ...).
    pub control_socket: PathBuf,
    /// Pause between two health checks of a running target.
    pub monitor_interval: Duration,
    /// Consecutive failed health checks after which a target is declared failed.
    pub monitor_failures: u32,
    /// Timeout of `zpool import` (must cover the MMP activity check: 20 s + 25 %, sometimes twice).
    pub import_timeout: Duration,
    /// Timeout of `mount -t lustre` and `umount`.
    pub mount_timeout: Duration,
    /// Timeout of every other storage command (zdb, zpool status, zfs list, df, lctl...).
    pub command_timeout: Duration,
    /// First retry delay after every fence level failed; doubles up to `fence_retry_max`.
    pub fence_retry_initial: Duration,
    /// Longest delay between two rounds of fencing attempts.
    pub fence_retry_max: Duration,
    /// Program run with every important event as JSON on stdin (mail, chat, paging).
    pub notify: Option<PathBuf>,
    /// Address serving Prometheus metrics.
    pub metrics_listen: Option<SocketAddr>,
    /// mlockall() at start, as HA daemons do.
    pub lock_memory: bool,
    /// How long a Lustre MDT/OST's recovery (clients reconnecting and replaying after a takeover) is followed
    /// after the target is verified, through `recovery_status`; 0: not followed. Node-local: it changes only
    /// what this node watches and reports.
    pub recovery_budget: Duration,
    /// Uids besides root allowed on the control socket.
    pub control_allowed_uids: Vec<u32>,
    /// The shared block device (or, in a lab, a shared file) holding one disk heartbeat slot per node (see
    /// `crate::diskbeat`): one more liveness channel beside the network links. Whether it is set must agree
    /// cluster-wide (it is in the digest); the path itself is node-local (the same LUN may have another name
    /// on each host).
    #[serde(default)]
    pub disk_heartbeat: Option<PathBuf>,
}

/// `[[node]]`: one host that runs failoverd.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeConfig {
    /// Unique node name (usually the short host name).
    pub name: String,
    /// One `ip:port` per heartbeat link, in the order of `cluster.links`.
    pub addresses: Vec<SocketAddr>,
    /// The host's ZFS hostid (as `hostid(1)` prints it: 8 hex digits; written `"a1a1a1a1"` in TOML).
    pub hostid: u32,
    /// What `uname -n` prints on the node, which ZFS writes into the labels of the pools it imports. Unset: the
    /// node name, or a fully qualified name whose first label is the node name (see `storage::HostIdentity`).
    #[serde(default)]
    pub hostname: Option<String>,
    /// In a two-node fence race the higher priority fences at once, the other waits `fence_delay`.
    pub fence_priority: u32,
    /// Ordered fence levels; each level is a list of `fence_device` names that must all succeed.
    pub fence_levels: Vec<Vec<String>>,
    /// `Devices` when fence levels exist; `ManualOnly` when the config says `fencing = "manual"` and the
    /// operator acknowledges each fence with `failoverd confirm-fenced`.
    pub fencing: FencingMode,
}

/// Whether a node is fenced by devices or only by an operator's acknowledgement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FencingMode {
    /// Fenced through its `fence_levels` (never empty in a validated config).
    Devices,
    /// No fence device: only `failoverd confirm-fenced NODE` counts as fenced (`fence_levels` is empty).
    ManualOnly,
}

/// `[[fence_device]]`: something that can cut one node's power.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FenceDeviceConfig {
    /// Unique device name, referenced by `node.fence_levels`.
    pub name: String,
    /// What the device is and how to reach it.
    pub kind: FenceDeviceKind,
    /// Timeout of one command sent to the device.
    pub timeout: Duration,
    /// How long to poll `status` after `off` until it reads off.
    pub power_timeout: Duration,
    /// Pause between two status polls.
    pub poll_interval: Duration,
}

/// The device kinds failoverd can drive.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum FenceDeviceKind {
    /// `kind = "ipmi"`.
    Ipmi(IpmiConfig),
    /// `kind = "pdu-snmp"`.
    PduSnmp(PduSnmpConfig),
    /// `kind = "agent"`.
    Agent(AgentConfig),
    /// `kind = "manual"`: the operator confirms with `failoverd confirm-fenced`.
    Manual,
}

/// A BMC reached with `ipmitool`; the password comes from a file and travels in `IPMI_PASSWORD`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IpmiConfig {
    /// BMC address or name.
    pub host: String,
    /// RMCP port (default 623).
    pub port: u16,
    /// BMC user.
    pub username: String,
    /// File holding the BMC password (read at run time).
    pub password_file: PathBuf,
    /// IPMI 2.0 (`-I lanplus`, default) rather than 1.5 (`-I lan`).
    pub lanplus: bool,
    /// Privilege level (`-L`), default administrator.
    pub privilege: IpmiPrivilege,
    /// Cipher suite (`-C`); 3 is the usual one and avoids ipmitool's slow cipher-suite probe.
    /// `Some(3)` by default with lanplus; always `None` without lanplus.
    pub cipher: Option<u8>,
}

/// IPMI privilege level (`-L`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum IpmiPrivilege {
    /// `callback`.
    Callback,
    /// `user`.
    User,
    /// `operator`.
    Operator,
    /// `administrator` (default).
    Administrator,
}

impl IpmiPrivilege {
    /// The spelling ipmitool's `-L` takes.
    pub fn as_ipmitool(self) -> &'static str {
        match self {
            IpmiPrivilege::Callback => "CALLBACK",
            IpmiPrivilege::User => "USER",
            IpmiPrivilege::Operator => "OPERATOR",
            IpmiPrivilege::Administrator => "ADMINISTRATOR",
        }
    }
}

/// A switched PDU driven over SNMP (net-snmp `snmpget`/`snmpset`); community from a file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PduSnmpConfig {
    /// PDU address or name.
    pub host: String,
    /// SNMP port (default 161).
    pub port: u16,
    /// File holding the write community (read at run time).
    pub community_file: PathBuf,
    /// The outlets feeding this node (one per power supply): all must read off.
    pub outlets: Vec<u32>,
    /// OID profile (default apc-rpdu).
    pub profile: PduProfile,
    /// SNMP version (default 1).
    pub snmp_version: SnmpVersion,
}

/// OID profile of a PDU family (values from fence_apc_snmp).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PduProfile {
    /// APC rPDU: control .1.3.6.1.4.1.318.1.1.12.3.3.1.1.4.N (1 on / 2 off), status ...12.3.5.1.1.4.N.
    ApcRpdu,
    /// APC MasterSwitch (classic): .1.3.6.1.4.1.318.1.1.4.4.2.1.3.N for both (1 on / 2 off).
    ApcMasterSwitch,
    /// Tripplite: control .1.3.6.1.4.1.850.10.2.3.5.1.4.1.N, status ...5.1.2.1.N (2 on / 1 off).
    Tripplite,
}

/// SNMP protocol version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SnmpVersion {
    /// `snmp_version = "1"` (default).
    V1,
    /// `snmp_version = "2c"`.
    V2c,
}

/// Any ClusterLabs `fence_*` agent, fed `key=value` lines on stdin.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentConfig {
    /// Program name (looked up on PATH) or absolute path, e.g. `fence_ipmilan`.
    pub program: String,
    /// Options passed as `key=value` lines.
    pub options: BTreeMap<String, String>,
    /// Options whose value is read from a file at run time (e.g. `password = "/etc/failoverd/bmc.pw"`).
    pub secret_options: BTreeMap<String, PathBuf>,
    /// The plug/port naming this node on a multi-node device, passed as `plug=`.
    pub plug: Option<String>,
}

/// `[[target]]`: one Lustre target (MGT, MDT, OST) that runs on exactly one node at a time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TargetConfig {
    /// Unique target name, e.g. `MGT`, `lustre-MDT0000`.
    pub name: String,
    /// Backing storage.
    pub kind: TargetKind,
    /// Absolute mount point.
    pub mountpoint: PathBuf,
    /// Nodes allowed to run it, most preferred first.
    pub nodes: Vec<String>,
    /// Lower starts first when one node starts several targets (the MGT before the MDTs and OSTs).
    pub start_order: i32,
    /// The Lustre device name `lctl dl` must show UP once mounted (e.g. `MGS`, `lfs-MDT0000`).
    pub lctl_device: String,
    /// Extra `mount -o` options (e.g. `abort_recov`).
    pub mount_options: Option<String>,
    /// NIDs the monitor checks with `lctl ping`.
    pub health_nids: Vec<String>,
    /// An operator's own health check (argv); exit 0 = healthy.
    pub check_command: Option<Vec<String>>,
}

/// Backing storage of a target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TargetKind {
    /// ZFS: pool and the full dataset name (`mgspool/mgt`).
    Zfs { pool: String, dataset: String },
    /// ldiskfs: a block device path.
    Ldiskfs { device: PathBuf },
    /// A plain ZFS dataset (`kind = "zfs"` with `fstype = "zfs"`): the pool moves like a Lustre target's, and
    /// the dataset is mounted with `mount -t zfs` and verified from `/proc/mounts`. No Lustre command runs for
    /// it (no `df -ht lustre`, `lctl dl`, `lctl get_param health_check`, `lctl ping`).
    ZfsDataset { pool: String, dataset: String },
}

/// The filesystem a target is mounted as (`fstype` in `[[target]]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Fstype {
    /// `mount -t lustre`: a Lustre server target (the default).
    Lustre,
    /// `mount -t zfs`: a plain ZFS dataset (ZFS targets only; the dataset should have `mountpoint=legacy`).
    Zfs,
}

impl Fstype {
    /// The name `mount -t` and `/proc/mounts` use.
    pub const fn as_str(self) -> &'static str {
        match self {
            Fstype::Lustre => "lustre",
            Fstype::Zfs => "zfs",
        }
    }
}

impl TargetKind {
    /// What `mount -t lustre` mounts: `pool/dataset` or the device path.
    pub fn mount_source(&self) -> String {
        match self {
            TargetKind::Zfs { dataset, .. } | TargetKind::ZfsDataset { dataset, .. } => dataset.clone(),
            TargetKind::Ldiskfs { device } => device.display().to_string(),
        }
    }

    /// The ZFS pool, if any.
    pub fn pool(&self) -> Option<&str> {
        match self {
            TargetKind::Zfs { pool, .. } | TargetKind::ZfsDataset { pool, .. } => Some(pool),
            TargetKind::Ldiskfs { .. } => None,
        }
    }

    /// What the target is mounted as: `lustre`, or `zfs` for a plain dataset.
    pub fn fstype(&self) -> Fstype {
        match self {
            TargetKind::ZfsDataset { .. } => Fstype::Zfs,
            TargetKind::Zfs { .. } | TargetKind::Ldiskfs { .. } => Fstype::Lustre,
        }
    }

    /// A Lustre target (checked with `df -ht lustre` and `lctl`), as opposed to a plain ZFS dataset.
    pub fn is_lustre(&self) -> bool {
        self.fstype() == Fstype::Lustre
    }
}

/// `[witness]`: a third-party vote for two-node clusters (`failoverd witness`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WitnessConfig {
    /// Where the witness listens (UDP).
    pub address: SocketAddr,
}

/// Default values of optional keys, and the limits the validator enforces.
pub mod defaults {
    use std::time::Duration;

    // `[cluster]`
    pub const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(250);
    pub const DEAD_AFTER: Duration = Duration::from_secs(3);
    pub const FENCE_DELAY: Duration = Duration::from_secs(10);
    pub const WAIT_FOR_ALL: bool = true;
    pub const STATE_DIR: &str = "/var/lib/failoverd";
    pub const CONTROL_SOCKET: &str = "/run/failoverd/control.sock";
    pub const MONITOR_INTERVAL: Duration = Duration::from_secs(10);
    pub const MONITOR_FAILURES: u32 = 3;
    pub const IMPORT_TIMEOUT: Duration = Duration::from_secs(120);
    pub const MOUNT_TIMEOUT: Duration = Duration::from_secs(300);
    pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
    pub const FENCE_RETRY_INITIAL: Duration = Duration::from_secs(2);
    pub const FENCE_RETRY_MAX: Duration = Duration::from_secs(60);
    pub const LOCK_MEMORY: bool = false;
    /// Lustre's default `recovery_time_hard` (9 x obd_timeout 100 s).
    pub const RECOVERY_BUDGET: Duration = Duration::from_secs(900);
    // `[[node]]`
    pub const FENCE_PRIORITY: u32 = 0;
    // `[[fence_device]]`
    pub const DEVICE_TIMEOUT: Duration = Duration::from_secs(20);
    pub const POWER_TIMEOUT: Duration = Duration::from_secs(20);
    pub const POLL_INTERVAL: Duration = Duration::from_secs(1);
    pub const IPMI_PORT: u16 = 623;
    pub const IPMI_LANPLUS: bool = true;
    pub const IPMI_CIPHER: u8 = 3;
    pub const SNMP_PORT: u16 = 161;
    // `[[target]]`
    pub const START_ORDER: i32 = 0;

    /// Shortest accepted `heartbeat_interval`.
    pub const MIN_HEARTBEAT_INTERVAL: Duration = Duration::from_millis(10);
    /// `dead_after` must be at least this many heartbeat intervals.
    pub const MIN_MISSED_HEARTBEATS: u32 = 3;
    /// Shortest accepted key, in bytes.
    pub const MIN_KEY_BYTES: usize = 32;
    /// Most heartbeat links.
    pub const MAX_LINKS: usize = 8;
    /// Longest name (cluster, link, node, device, target).
    pub const MAX_NAME_LEN: usize = 64;
    /// `import_timeout` below this draws a warning (two MMP activity checks of ~25 s each).
    pub const IMPORT_TIMEOUT_WARN: Duration = Duration::from_secs(60);
}

// ---------------------------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------------------------

/// One problem in a configuration file: the key that holds it (`node[1].addresses`, `cluster.dead_after`;
/// `(toml)` for a syntax error, `(file)` when the file cannot be read) and what is wrong and how to fix it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigError {
    /// Where the problem is, e.g. `node[1].addresses` (array entries count from 0).
    pub key: String,
    /// What is wrong, and how to fix it.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Every problem found in one configuration file (at least one), in the order found. Displays one
/// `key: message` line per problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors {
    /// The problems, in the order found (never empty).
    pub errors: Vec<ConfigError>,
}

impl ConfigErrors {
    fn one(key: &str, message: String) -> ConfigErrors {
        ConfigErrors { errors: vec![ConfigError { key: key.to_owned(), message }] }
    }

    /// The problems, in the order found.
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.errors.iter()
    }

    /// Number of problems.
    pub fn len(&self) -> usize {
        self.errors.len()
    }

    /// Always false for a `ConfigErrors` returned by this module.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// The first problem reported at exactly this key.
    pub fn get(&self, key: &str) -> Option<&ConfigError> {
        self.errors.iter().find(|e| e.key == key)
    }

    /// Whether some problem is reported at exactly this key.
    pub fn has_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.errors.iter()
    }
}

/// Why a key file cannot be used. The messages start with the path and say how to make a good key.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file does not exist, is not readable by this user, or is not a file.
    #[error("{}: cannot read: {source} ({})", path.display(), unreadable_advice(source))]
    Unreadable { path: PathBuf, source: std::io::Error },
    #[error(
        "{}: {len} bytes, need at least {min} (make one with `failoverd keygen --out FILE`)",
        path.display(),
        min = defaults::MIN_KEY_BYTES
    )]
    /// The key (without its trailing line end) is shorter than 32 bytes.
    TooShort { path: PathBuf, len: usize },
}

/// What to do about a key file that cannot be read: a missing one can be made; one this user may not read
/// belongs to root (making a new key would break the cluster: every node must have the same one).
fn unreadable_advice(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::PermissionDenied => {
            "this user may not read it: run as root (do not make a new key: every node needs the same one)"
        }
        _ => "make one with `failoverd keygen --out FILE` and copy it to every node",
    }
}

/// Whether [`Config::load_with`] checks the key files named by `[cluster]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyCheck {
    /// Read `key_file` (and `next_key_file`) and require at least 32 bytes: what a node needs to run.
    Check,
    /// Do not touch the key files (e.g. checking a file on another machine than the cluster's nodes).
    Skip,
}

/// Read a heartbeat key file. The key is the file's raw bytes without a trailing line end (`\n` or `\r\n`),
/// so the 64 hex characters written by `failoverd keygen` are a 64-byte key; at least 32 bytes are required.
pub fn load_key(path: &Path) -> Result<Vec<u8>, KeyFileError> {
    let mut key = std::fs::read(path).map_err(|source| KeyFileError::Unreadable { path: path.to_owned(), source })?;
    while matches!(key.last(), Some(b'\n' | b'\r')) {
        key.pop();
    }
    if key.len() < defaults::MIN_KEY_BYTES {
        return Err(KeyFileError::TooShort { path: path.to_owned(), len: key.len() });
    }
    Ok(key)
}

// ---------------------------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------------------------

impl Config {
    /// Parse and validate a configuration from its text. Pure: reads no file (key files are not checked).
    /// On failure, every problem found is returned, each naming its key.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigErrors> {
        parse(text, KeyCheck::Skip)
    }

    /// Read, parse and validate a configuration file, and check that `cluster.key_file` (and
    /// `cluster.next_key_file`) can be read and hold at least 32 bytes.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        Config::load_with(path, KeyCheck::Check)
    }

    /// [`Config::load`], with the key-file check chosen by the caller.
    pub fn load_with(path: &Path, keys: KeyCheck) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigErrors::one("(file)", format!("cannot read {}: {e}", path.display())))?;
        parse(&text, keys)
    }

    /// The node called `name`.
    pub fn node(&self, name: &str) -> Option<&NodeConfig> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The fence device called `name`.
    pub fn device(&self, name: &str) -> Option<&FenceDeviceConfig> {
        self.fence_devices.iter().find(|d| d.name == name)
    }

    /// The target called `name`.
    pub fn target(&self, name: &str) -> Option<&TargetConfig> {
        self.targets.iter().find(|t| t.name == name)
    }

    /// Number of heartbeat links (and of addresses of every node).
    pub fn link_count(&self) -> usize {
        self.cluster.links.len()
    }

    /// Digest of the cluster-wide configuration, carried in heartbeats so that nodes running with different
    /// files notice. It covers the cluster name, links and timing keys, every node, fence device and target
    /// (in file order) and the witness; it leaves out node-local keys (`key_file`, `next_key_file`,
    /// `state_dir`, `control_socket`, `notify`, `metrics_listen`, `lock_memory`, `control_allowed_uids`,
    /// `recovery_budget`, the path of `disk_heartbeat`; whether `disk_heartbeat` is set is covered).
    /// SHA-256 of a canonical JSON form, truncated to 16 bytes. The form follows the structs of this failoverd
    /// version, so a version that adds a cluster-wide key gives another digest for the same file.
    pub fn digest(&self) -> [u8; 16] {
        let hash = sha256_of("failoverd-config-digest-v1", &ClusterWide::of(self));
        let mut out = [0u8; 16];
        out.copy_from_slice(&hash[..16]);
        out
    }

    /// Every cluster-wide setting (what [`Config::digest`] covers) as `key = value` text, keyed by a path
    /// that names the section the way an operator finds it in the file: `cluster.dead_after`,
    /// `node[mds1].fence_priority`, `fence_device[mds1-ipmi].host`, `target[MGT].pool`, `witness.address`.
    /// Durations read as in the file (`3s`). Used by `check-config A B ...` to say how files of one cluster
    /// differ.
    pub fn cluster_wide_values(&self) -> std::collections::BTreeMap<String, String> {
        let mut out = std::collections::BTreeMap::new();
        let Ok(value) = serde_json::to_value(ClusterWide::of(self)) else { return out };
        let Some(obj) = value.as_object() else { return out };
        for (key, v) in obj {
            match key.as_str() {
                "nodes" | "fence_devices" | "targets" => {
                    let section = match key.as_str() {
                        "nodes" => "node",
                        "fence_devices" => "fence_device",
                        _ => "target",
                    };
                    for (i, item) in v.as_array().into_iter().flatten().enumerate() {
                        let name = item["name"].as_str().map(str::to_string).unwrap_or_else(|| i.to_string());
                        flatten_setting(&format!("{section}[{name}]"), item, &mut out);
                    }
                }
                "witness" => flatten_setting("witness", v, &mut out),
                "name" => {
                    out.insert("cluster.name".into(), v.as_str().unwrap_or_default().to_string());
                }
                _ => flatten_setting(&format!("cluster.{key}"), v, &mut out),
            }
        }
        out
    }

    /// What nodes exchange when their digests differ (the `ConfigSummary` datagrams): the
    /// [`Config::cluster_wide_values`], except that the value of an agent option whose name looks like a
    /// secret (`community`, `*pass*`, `*secret*`, `*key*`, `*token*`) is never sent in clear: it is replaced by
    /// `(secret, N bytes)`. A difference there still shows in the digest; the summary then explains nothing
    /// and the mismatch is reported as a hidden one.
    pub fn agreement_values(&self) -> BTreeMap<String, String> {
        let mut values = self.cluster_wide_values();
        for (key, value) in values.iter_mut() {
            if agreement_secret(key) {
                *value = format!("(secret, {} bytes)", value.len());
            }
        }
        values
    }

    /// Digest of one target's definition (first 4 bytes of SHA-256 of its canonical form, big-endian), so
    /// that nodes can refuse to take over a target whose definition differs from theirs.
    pub fn target_digest(&self, name: &str) -> Option<u32> {
        let target = self.target(name)?;
        let hash = sha256_of("failoverd-target-digest-v1", target);
        Some(u32::from_be_bytes([hash[0], hash[1], hash[2], hash[3]]))
    }

    /// Legal but questionable settings (an unused fence device, a single heartbeat link, a target that cannot
    /// move...), in the same `key: message` form as errors. `check-config` prints them as warnings.
    pub fn warnings(&self) -> Vec<ConfigError> {
        let mut w = Problems::default();
        warn_links(self, &mut w);
        warn_unused_devices(self, &mut w);
        warn_fence_race(self, &mut w);
        warn_targets(self, &mut w);
        for (key, message) in self.imperative_recovery_warnings() {
            w.push(key, message);
        }
        if self.cluster.import_timeout < defaults::IMPORT_TIMEOUT_WARN {
            w.push(
                "cluster.import_timeout",
                format!(
                    "{} may be too short: the MMP activity check alone takes about 25s and can run twice; {} is the default",
                    fmt_duration(self.cluster.import_timeout),
                    fmt_duration(defaults::IMPORT_TIMEOUT)
                ),
            );
        }
        w.0
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Problem collection
// ---------------------------------------------------------------------------------------------------------------

/// The problems found so far.
#[derive(Default)]
struct Problems(Vec<ConfigError>);

impl Problems {
    fn push(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigError { key: key.into(), message: message.into() });
    }

    /// No problem was reported at `key`, below it, or at one of its parents: its value can be trusted by
    /// checks that involve other keys.
    fn clean(&self, key: &str) -> bool {
        !self.0.iter().any(|e| related_keys(&e.key, key))
    }

    fn into_result(self, config: Config) -> Result<Config, ConfigErrors> {
        if self.0.is_empty() {
            Ok(config)
        } else {
            Err(ConfigErrors { errors: self.0 })
        }
    }
}

/// Whether one key is the other, or a parent of it (`node[1]` of `node[1].addresses[0]`).
fn related_keys(a: &str, b: &str) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    long.strip_prefix(short).is_some_and(|rest| rest.is_empty() || rest.starts_with('.') || rest.starts_with('['))
}

/// `base.field`, or `field` at the top level.
fn join_key(base: &str, field: &str) -> String {
    if base.is_empty() {
        field.to_owned()
    } else {
        format!("{base}.{field}")
    }
}
