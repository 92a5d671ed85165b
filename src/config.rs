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
    /// `recovery_budget`).
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

// ---------------------------------------------------------------------------------------------------------------
// Raw layer: serde structs whose every key is optional; values are checked by the validator below.
// ---------------------------------------------------------------------------------------------------------------

type Raw = Option<Value>;

#[derive(Deserialize, Default)]
struct RawFile {
    cluster: Raw,
    node: Raw,
    fence_device: Raw,
    target: Raw,
    witness: Raw,
}

#[derive(Deserialize, Default)]
struct RawCluster {
    name: Raw,
    key_file: Raw,
    next_key_file: Raw,
    links: Raw,
    heartbeat_interval: Raw,
    dead_after: Raw,
    fence_delay: Raw,
    wait_for_all: Raw,
    stall_threshold: Raw,
    state_dir: Raw,
    control_socket: Raw,
    monitor_interval: Raw,
    monitor_failures: Raw,
    import_timeout: Raw,
    mount_timeout: Raw,
    command_timeout: Raw,
    fence_retry_initial: Raw,
    fence_retry_max: Raw,
    notify: Raw,
    metrics_listen: Raw,
    lock_memory: Raw,
    recovery_budget: Raw,
    control_allowed_uids: Raw,
}

#[derive(Deserialize, Default)]
struct RawNode {
    name: Raw,
    addresses: Raw,
    hostid: Raw,
    hostname: Raw,
    fence_priority: Raw,
    fence_levels: Raw,
    fencing: Raw,
}

#[derive(Deserialize, Default)]
struct RawDevice {
    name: Raw,
    kind: Raw,
    timeout: Raw,
    power_timeout: Raw,
    poll_interval: Raw,
    host: Raw,
    port: Raw,
    username: Raw,
    password_file: Raw,
    lanplus: Raw,
    privilege: Raw,
    cipher: Raw,
    community_file: Raw,
    outlets: Raw,
    profile: Raw,
    snmp_version: Raw,
    program: Raw,
    options: Raw,
    secret_options: Raw,
    plug: Raw,
}

#[derive(Deserialize, Default)]
struct RawTarget {
    name: Raw,
    kind: Raw,
    pool: Raw,
    dataset: Raw,
    device: Raw,
    mountpoint: Raw,
    nodes: Raw,
    start_order: Raw,
    lctl_device: Raw,
    mount_options: Raw,
    health_nids: Raw,
    check_command: Raw,
    fstype: Raw,
}

#[derive(Deserialize, Default)]
struct RawWitness {
    address: Raw,
}

/// The file split into its sections, each of the right shape.
struct RawSections {
    cluster: Option<RawCluster>,
    nodes: Vec<RawNode>,
    devices: Vec<RawDevice>,
    targets: Vec<RawTarget>,
    witness: Option<RawWitness>,
}

fn parse(text: &str, keys: KeyCheck) -> Result<Config, ConfigErrors> {
    let table: toml::Table = toml::from_str(text).map_err(|e| ConfigErrors::one("(toml)", syntax_message(text, &e)))?;
    let mut p = Problems::default();
    let Some(raw) = split_sections(table, &mut p) else {
        return Err(ConfigErrors { errors: p.0 });
    };
    let config = build(&raw, keys, &mut p);
    p.into_result(config)
}

/// A TOML syntax error as one line: `line 3, column 7: expected ...`.
fn syntax_message(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim().replace('\n', "; ");
    match e.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message,
    }
}

/// Deserialize the top level and each section, reporting unknown keys; `None` when a section has the wrong
/// shape (validation stops there: keys inside would be reported against the wrong entries).
fn split_sections(table: toml::Table, p: &mut Problems) -> Option<RawSections> {
    let file: RawFile = deserialize_reporting(Value::Table(table), "", p).ok()?;
    let cluster = file.cluster.map(|v| single_table(v, "cluster", p)).transpose();
    let nodes = array_of_tables(file.node, "node", p);
    let devices = array_of_tables(file.fence_device, "fence_device", p);
    let targets = array_of_tables(file.target, "target", p);
    let witness = file.witness.map(|v| single_table(v, "witness", p)).transpose();
    Some(RawSections {
        cluster: cluster.ok()?,
        nodes: nodes.ok()?,
        devices: devices.ok()?,
        targets: targets.ok()?,
        witness: witness.ok()?,
    })
}

/// A `[name]` table. `Err` (reported) when it is something else.
fn single_table<T: DeserializeOwned>(value: Value, key: &str, p: &mut Problems) -> Result<T, ()> {
    if !value.is_table() {
        p.push(key, format!("expected a table, written [{key}] on its own line, found {}", describe(&value)));
        return Err(());
    }
    deserialize_reporting(value, key, p)
}

/// `[[name]]` entries (none when absent). `Err` (reported) when the key or one of its entries is something else.
fn array_of_tables<T: DeserializeOwned>(value: Option<Value>, key: &str, p: &mut Problems) -> Result<Vec<T>, ()> {
    let items = match value {
        None => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(Value::Table(_)) => {
            p.push(key, format!("write [[{key}]] (one entry of an array of tables), not [{key}]"));
            return Err(());
        }
        Some(other) => {
            p.push(key, format!("expected [[{key}]] entries, found {}", describe(&other)));
            return Err(());
        }
    };
    let mut out = Ok(Vec::with_capacity(items.len()));
    for (i, item) in items.into_iter().enumerate() {
        let entry_key = format!("{key}[{i}]");
        let entry = if item.is_table() {
            deserialize_reporting(item, &entry_key, p)
        } else {
            p.push(&entry_key, format!("expected a table (a [[{key}]] entry), found {}", describe(&item)));
            Err(())
        };
        match (&mut out, entry) {
            (Ok(list), Ok(raw)) => list.push(raw),
            (_, Err(())) => out = Err(()),
            (Err(()), Ok(_)) => {}
        }
    }
    out
}

/// Deserialize `value` into a raw struct, reporting every key the struct does not know with its full path.
fn deserialize_reporting<T: DeserializeOwned>(value: Value, base: &str, p: &mut Problems) -> Result<T, ()> {
    let mut unknown = Vec::new();
    let result = serde_ignored::deserialize(value, |path| unknown.push(path_key(base, &path)));
    let known = known_fields::<T>();
    for key in unknown {
        let field = key.rsplit('.').next().unwrap_or(&key);
        let message = match suggest(field, known) {
            Some(s) => format!("unknown key (did you mean `{s}`?)"),
            None => "unknown key".to_owned(),
        };
        p.push(key, message);
    }
    result.map_err(|e| p.push(if base.is_empty() { "(toml)" } else { base }, e.message().to_owned()))
}

/// A `serde_ignored` path as a config key: `node[1].adress`.
fn path_key(base: &str, path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => base.to_owned(),
        Path::Seq { parent, index } => format!("{}[{index}]", path_key(base, parent)),
        Path::Map { parent, key } => join_key(&path_key(base, parent), key),
        Path::Some { parent } | Path::NewtypeStruct { parent } | Path::NewtypeVariant { parent } => {
            path_key(base, parent)
        }
    }
}

/// The field names of a derived struct, read from what it asks of its deserializer.
fn known_fields<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(FieldProbe(&mut fields));
    fields
}

/// A deserializer that only records the field list of `deserialize_struct` and then fails.
struct FieldProbe<'a>(&'a mut &'static [&'static str]);

impl<'de> serde::Deserializer<'de> for FieldProbe<'_> {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
        Err(serde::de::Error::custom("field probe"))
    }

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        Err(serde::de::Error::custom("field probe"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
        unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

/// The known key closest to a misspelt one, if it is close enough to be what was meant.
fn suggest(unknown: &str, known: &[&'static str]) -> Option<&'static str> {
    let unknown = unknown.to_ascii_lowercase();
    known
        .iter()
        .map(|k| (edit_distance(&unknown, k), *k))
        .filter(|(d, k)| {
            let prefix = unknown.len() >= 3 && (k.starts_with(unknown.as_str()) || unknown.starts_with(*k));
            *d <= 2usize.max(k.len() / 3) || prefix
        })
        .min()
        .map(|(_, k)| k)
}

/// Levenshtein distance.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

// ---------------------------------------------------------------------------------------------------------------
// Reading values: each converter checks one value; a `Section` reports under `base.field`.
// ---------------------------------------------------------------------------------------------------------------

/// Reads the keys of one table (`cluster`, `node[1]`...) and reports problems under their full key.
/// Unreadable values are reported and replaced by a placeholder; the config is rejected in the end anyway.
struct Section<'p> {
    p: &'p mut Problems,
    base: String,
}

impl<'p> Section<'p> {
    fn new(p: &'p mut Problems, base: impl Into<String>) -> Section<'p> {
        Section { p, base: base.into() }
    }

    fn key(&self, field: &str) -> String {
        join_key(&self.base, field)
    }

    fn push(&mut self, field: &str, message: impl Into<String>) {
        let key = self.key(field);
        self.p.push(key, message);
    }

    fn clean(&self, field: &str) -> bool {
        self.p.clean(&self.key(field))
    }

    /// An optional key: `None` when absent or invalid (then reported).
    fn opt<T>(&mut self, field: &str, v: &Raw, conv: impl Fn(&Value) -> Result<T, String>) -> Option<T> {
        match conv(v.as_ref()?) {
            Ok(x) => Some(x),
            Err(message) => {
                self.push(field, message);
                None
            }
        }
    }

    /// An optional key with a default (also used as placeholder when the value is invalid).
    fn or<T>(&mut self, field: &str, v: &Raw, conv: impl Fn(&Value) -> Result<T, String>, default: T) -> T {
        self.opt(field, v, conv).unwrap_or(default)
    }

    /// A required key: reports it when missing, with an example of how to write it.
    fn req<T>(&mut self, field: &str, v: &Raw, conv: impl Fn(&Value) -> Result<T, String>, example: &str) -> Option<T> {
        if v.is_none() {
            self.missing(field, example);
        }
        self.opt(field, v, conv)
    }

    fn missing(&mut self, field: &str, example: &str) {
        self.push(field, format!("missing; this key is required, e.g. {field} = {example}"));
    }

    /// An optional array whose elements are checked one by one (reported as `field[i]`); invalid elements
    /// are dropped. `None` when absent.
    fn list<T>(&mut self, field: &str, v: &Raw, conv: impl Fn(&Value) -> Result<T, String>) -> Option<Vec<T>> {
        let v = v.as_ref()?;
        let Some(items) = v.as_array() else {
            self.push(field, format!("expected an array [...], found {}", describe(v)));
            return Some(Vec::new());
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match conv(item) {
                Ok(x) => out.push(x),
                Err(message) => self.push(&format!("{field}[{i}]"), message),
            }
        }
        Some(out)
    }

    fn req_list<T>(
        &mut self,
        field: &str,
        v: &Raw,
        conv: impl Fn(&Value) -> Result<T, String>,
        example: &str,
    ) -> Vec<T> {
        if v.is_none() {
            self.missing(field, example);
        }
        self.list(field, v, conv).unwrap_or_default()
    }

    /// An optional inline table `{ key = value, ... }` whose keys are checked by `check_key` and values by
    /// `conv`; each problem is reported as `field.key`.
    fn map<T>(
        &mut self,
        field: &str,
        v: &Raw,
        check_key: impl Fn(&str) -> Result<(), String>,
        conv: impl Fn(&Value) -> Result<T, String>,
    ) -> BTreeMap<String, T> {
        let mut out = BTreeMap::new();
        let Some(v) = v else { return out };
        let Some(table) = v.as_table() else {
            self.push(field, format!("expected a table {{ key = \"value\", ... }}, found {}", describe(v)));
            return out;
        };
        for (k, item) in table {
            let key = format!("{field}.{k}");
            match check_key(k).and_then(|()| conv(item)) {
                Ok(x) => {
                    out.insert(k.clone(), x);
                }
                Err(message) => self.push(&key, message),
            }
        }
        out
    }

    /// Report the second and later occurrences of a value in a list read from `field` (only when the whole
    /// list was valid, so that positions are right).
    fn no_repeats<T: Ord + fmt::Display>(&mut self, field: &str, items: &[T]) {
        if !self.clean(field) {
            return;
        }
        let mut seen = BTreeMap::new();
        for (i, item) in items.iter().enumerate() {
            let first = *seen.entry(item).or_insert(i);
            if first != i {
                let first_key = self.key(&format!("{field}[{first}]"));
                self.push(&format!("{field}[{i}]"), format!("{item} is listed twice (also {first_key}); remove one"));
            }
        }
    }

    /// Keys that do not belong to the chosen kind: `owners` maps each kind-specific key to the kinds using it.
    fn foreign_keys(&mut self, kind: &str, present: &[(&'static str, bool)], owners: &[(&'static str, &[&str])]) {
        for (field, is_present) in present {
            let Some((_, kinds)) = owners.iter().find(|(k, _)| k == field) else { continue };
            if *is_present && !kinds.contains(&kind) {
                let message = format!(
                    "`{field}` does not apply to kind \"{kind}\" (it is a key of kind {}); remove it or change kind",
                    kinds.iter().map(|k| format!("\"{k}\"")).collect::<Vec<_>>().join(" or ")
                );
                self.push(field, message);
            }
        }
    }
}

/// A value as an operator would name it in an error message.
fn describe(v: &Value) -> String {
    match v {
        Value::String(s) => format!("the string \"{s}\""),
        Value::Integer(i) => format!("the integer {i}"),
        Value::Float(f) => format!("the number {f}"),
        Value::Boolean(b) => format!("{b}"),
        Value::Datetime(d) => format!("the date {d}"),
        Value::Array(_) => "an array".to_owned(),
        Value::Table(_) => "a table".to_owned(),
    }
}

fn conv_str(v: &Value) -> Result<&str, String> {
    v.as_str().ok_or_else(|| format!("expected a string in quotes, found {}", describe(v)))
}

fn conv_string(v: &Value) -> Result<String, String> {
    conv_str(v).map(str::to_owned)
}

/// A non-empty string without whitespace or control characters (host names, lctl devices, NIDs...).
fn conv_word(v: &Value) -> Result<String, String> {
    let s = conv_str(v)?;
    if s.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("\"{}\" contains spaces or control characters", s.escape_debug()));
    }
    Ok(s.to_owned())
}

/// A name of a cluster, link, node, device or target: `[A-Za-z0-9_.-]`, 1 to 64 characters.
fn conv_name(v: &Value) -> Result<String, String> {
    let s = conv_str(v)?;
    let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    if s.is_empty() || s.len() > defaults::MAX_NAME_LEN || !s.chars().all(valid) {
        return Err(format!(
            "\"{}\" is not a valid name: use 1 to {} of the characters A-Z a-z 0-9 _ . -",
            s.escape_debug(),
            defaults::MAX_NAME_LEN
        ));
    }
    Ok(s.to_owned())
}

/// A host name as `uname -n` prints it (RFC 1123 characters, at most 64 bytes: the kernel's limit).
fn conv_hostname(v: &Value) -> Result<String, String> {
    let s = conv_str(v)?;
    let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
    if s.is_empty() || s.len() > 64 || !s.chars().all(valid) {
        return Err(format!("\"{}\" is not a host name as `uname -n` prints it (1 to 64 of A-Z a-z 0-9 . - _)", s.escape_debug()));
    }
    Ok(s.to_owned())
}

fn conv_bool(v: &Value) -> Result<bool, String> {
    v.as_bool().ok_or_else(|| format!("expected true or false (without quotes), found {}", describe(v)))
}

fn conv_int(v: &Value, min: i64, max: i64) -> Result<i64, String> {
    let Some(i) = v.as_integer() else {
        return Err(format!("expected an integer (without quotes), found {}", describe(v)));
    };
    if i < min || i > max {
        return Err(format!("{i} is out of range: use {min} to {max}"));
    }
    Ok(i)
}

fn conv_u32(v: &Value) -> Result<u32, String> {
    conv_int(v, 0, u32::MAX.into()).map(|i| i as u32)
}

fn conv_port(v: &Value) -> Result<u16, String> {
    conv_int(v, 1, u16::MAX.into()).map(|i| i as u16)
}

fn conv_duration(v: &Value) -> Result<Duration, String> {
    let Some(s) = v.as_str() else {
        return Err(format!(
            "expected a duration in quotes such as \"250ms\", \"3s\" or \"2min\", found {}",
            describe(v)
        ));
    };
    humantime::parse_duration(s).map_err(|e| {
        format!("\"{}\" is not a duration ({e}); write e.g. \"250ms\", \"3s\" or \"2min\"", s.escape_debug())
    })
}

fn conv_positive_duration(v: &Value) -> Result<Duration, String> {
    let d = conv_duration(v)?;
    if d.is_zero() {
        return Err("must be longer than 0".to_owned());
    }
    Ok(d)
}

fn conv_abs_path(v: &Value) -> Result<PathBuf, String> {
    let s = conv_str(v)?;
    if !s.starts_with('/') {
        return Err(format!("\"{}\" is not an absolute path; write the full path, starting with /", s.escape_debug()));
    }
    if s.chars().any(char::is_control) {
        return Err(format!("\"{}\" contains control characters", s.escape_debug()));
    }
    Ok(PathBuf::from(s))
}

/// A program: a name looked up on PATH, or an absolute path (never relative to the working directory).
fn conv_program(v: &Value) -> Result<String, String> {
    let s = conv_word(v)?;
    if s.contains('/') && !s.starts_with('/') {
        return Err(format!("\"{s}\" is a relative path; write an absolute path or a program name found on PATH"));
    }
    Ok(s)
}

/// An `ip:port` a peer can send to.
fn conv_peer_addr(v: &Value) -> Result<SocketAddr, String> {
    let addr = conv_listen_addr(v)?;
    if addr.port() == 0 {
        return Err(format!("{addr}: port 0 cannot be reached; use a fixed UDP port such as 7405"));
    }
    if addr.ip().is_unspecified() {
        return Err(format!(
            "{addr}: {} is not an address peers can send to; write this host's address on the link",
            addr.ip()
        ));
    }
    Ok(addr)
}

fn conv_listen_addr(v: &Value) -> Result<SocketAddr, String> {
    let s = conv_str(v)?;
    s.parse().map_err(|_| {
        format!(
            "\"{}\" is not an ip:port address; write e.g. \"10.0.0.1:7405\" or \"[fd00::1]:7405\" (host names are not accepted)",
            s.escape_debug()
        )
    })
}

/// A hostid: `"a1a1a1a1"` or `"0xa1a1a1a1"` (8 hex digits, as hostid(1) prints), or a TOML integer.
fn conv_hostid(v: &Value) -> Result<u32, String> {
    let id = match v {
        Value::Integer(i) => u32::try_from(*i)
            .map_err(|_| format!("{i} does not fit in 32 bits; write the 8 hex digits hostid prints"))?,
        Value::String(s) => parse_hostid(s)?,
        other => {
            return Err(format!(
                "expected 8 hex digits in quotes as hostid(1) prints them, e.g. \"a1a1a1a1\", found {}",
                describe(other)
            ))
        }
    };
    if id == 0 {
        return Err(
            "hostid 0 means \"no hostid\" to ZFS; create a persistent one with zgenhostid and write what hostid prints"
                .to_owned(),
        );
    }
    Ok(id)
}

fn parse_hostid(s: &str) -> Result<u32, String> {
    let digits = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")).unwrap_or(s);
    if digits.len() != 8 || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!(
            "\"{}\" is not 8 hex digits; write what hostid prints on that node, e.g. \"a1a1a1a1\"",
            s.escape_debug()
        ));
    }
    u32::from_str_radix(digits, 16).map_err(|e| e.to_string())
}

/// One of a fixed set of spellings.
fn conv_choice<T: Copy>(v: &Value, choices: &[(&str, T)]) -> Result<T, String> {
    let s = conv_str(v)?;
    choices.iter().find(|(name, _)| *name == s).map(|(_, x)| *x).ok_or_else(|| {
        let names: Vec<String> = choices.iter().map(|(n, _)| format!("\"{n}\"")).collect();
        format!("\"{}\" is not one of {}", s.escape_debug(), names.join(", "))
    })
}

fn fmt_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// `n thing` or `n things`.
fn count(n: usize, thing: &str) -> String {
    match (n, thing.ends_with("ss")) {
        (1, _) => format!("1 {thing}"),
        (_, true) => format!("{n} {thing}es"),
        _ => format!("{n} {thing}s"),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Building and checking each section
// ---------------------------------------------------------------------------------------------------------------

fn build(raw: &RawSections, keys: KeyCheck, p: &mut Problems) -> Config {
    let cluster = match &raw.cluster {
        Some(c) => build_cluster(c, keys, p),
        None => {
            p.push("cluster", "missing [cluster] table; it is required (at least name, key_file and links)");
            placeholder_cluster()
        }
    };
    let node_names = Known::new("node", raw.nodes.iter().map(|n| &n.name));
    let device_names = Known::new("fence_device", raw.devices.iter().map(|d| &d.name));
    let config = Config {
        cluster,
        nodes: raw.nodes.iter().enumerate().map(|(i, n)| build_node(n, i, &device_names, p)).collect(),
        fence_devices: raw.devices.iter().enumerate().map(|(i, d)| build_device(d, i, p)).collect(),
        targets: raw.targets.iter().enumerate().map(|(i, t)| build_target(t, i, &node_names, p)).collect(),
        witness: raw.witness.as_ref().map(|w| build_witness(w, p)),
    };
    check_nodes(&config, p);
    check_addresses(&config, p);
    check_fence_levels(&config, p);
    check_targets(&config, p);
    check_fence_delay(&config, p);
    config
}

/// The names a section defines (read before validation), to check references to them element by element.
struct Known {
    section: &'static str,
    names: Vec<String>,
}

impl Known {
    fn new<'a>(section: &'static str, raw: impl Iterator<Item = &'a Raw>) -> Known {
        let mut names: Vec<String> = Vec::new();
        for name in raw.filter_map(|v| v.as_ref()?.as_str()) {
            if !names.iter().any(|n| n == name) {
                names.push(name.to_owned());
            }
        }
        Known { section, names }
    }

    /// A name that must be one of the defined ones.
    fn reference(&self, v: &Value) -> Result<String, String> {
        let name = conv_name(v)?;
        if self.names.contains(&name) {
            return Ok(name);
        }
        let defined = if self.names.is_empty() {
            "none is defined".to_owned()
        } else {
            format!("defined: {}", self.names.join(", "))
        };
        Err(format!(
            "unknown {} \"{name}\"; define it with a [[{}]] entry whose name = \"{name}\" ({defined})",
            self.section, self.section
        ))
    }
}

fn placeholder_cluster() -> ClusterConfig {
    ClusterConfig {
        name: String::new(),
        key_file: PathBuf::new(),
        next_key_file: None,
        links: Vec::new(),
        heartbeat_interval: defaults::HEARTBEAT_INTERVAL,
        dead_after: defaults::DEAD_AFTER,
        fence_delay: defaults::FENCE_DELAY,
        wait_for_all: defaults::WAIT_FOR_ALL,
        stall_threshold: defaults::DEAD_AFTER / 2,
        state_dir: PathBuf::from(defaults::STATE_DIR),
        control_socket: PathBuf::from(defaults::CONTROL_SOCKET),
        monitor_interval: defaults::MONITOR_INTERVAL,
        monitor_failures: defaults::MONITOR_FAILURES,
        import_timeout: defaults::IMPORT_TIMEOUT,
        mount_timeout: defaults::MOUNT_TIMEOUT,
        command_timeout: defaults::COMMAND_TIMEOUT,
        fence_retry_initial: defaults::FENCE_RETRY_INITIAL,
        fence_retry_max: defaults::FENCE_RETRY_MAX,
        notify: None,
        metrics_listen: None,
        lock_memory: defaults::LOCK_MEMORY,
        recovery_budget: defaults::RECOVERY_BUDGET,
        control_allowed_uids: Vec::new(),
    }
}

// --- [cluster] ---------------------------------------------------------------------------------------------------

fn build_cluster(raw: &RawCluster, keys: KeyCheck, p: &mut Problems) -> ClusterConfig {
    let mut s = Section::new(p, "cluster");
    let mut c = placeholder_cluster();
    read_identity(&mut s, raw, &mut c);
    read_timing(&mut s, raw, &mut c);
    check_timing(&mut s, &c);
    read_local(&mut s, raw, &mut c);
    if keys == KeyCheck::Check {
        check_key_files(&mut s, &c);
    }
    c
}

fn read_identity(s: &mut Section, raw: &RawCluster, c: &mut ClusterConfig) {
    c.name = s.req("name", &raw.name, conv_name, "\"lfs-mds\"").unwrap_or_default();
    c.key_file = s.req("key_file", &raw.key_file, conv_abs_path, "\"/etc/failoverd/cluster.key\"").unwrap_or_default();
    c.next_key_file = s.opt("next_key_file", &raw.next_key_file, conv_abs_path);
    c.links = s.req_list("links", &raw.links, conv_name, "[\"ring0\", \"ring1\"]");
    if s.clean("links") && (c.links.is_empty() || c.links.len() > defaults::MAX_LINKS) {
        s.push(
            "links",
            format!(
                "{} listed; list 1 to {} heartbeat links, e.g. [\"ring0\", \"ring1\"]",
                count(c.links.len(), "link"),
                defaults::MAX_LINKS
            ),
        );
    }
    s.no_repeats("links", &c.links);
}

fn read_timing(s: &mut Section, raw: &RawCluster, c: &mut ClusterConfig) {
    use defaults as d;
    let positive = conv_positive_duration;
    c.heartbeat_interval = s.or("heartbeat_interval", &raw.heartbeat_interval, positive, d::HEARTBEAT_INTERVAL);
    c.dead_after = s.or("dead_after", &raw.dead_after, positive, d::DEAD_AFTER);
    c.fence_delay = s.or("fence_delay", &raw.fence_delay, conv_duration, d::FENCE_DELAY);
    c.wait_for_all = s.or("wait_for_all", &raw.wait_for_all, conv_bool, d::WAIT_FOR_ALL);
    c.stall_threshold = s.or("stall_threshold", &raw.stall_threshold, positive, c.dead_after / 2);
    c.monitor_interval = s.or("monitor_interval", &raw.monitor_interval, positive, d::MONITOR_INTERVAL);
    let failures = |v: &Value| conv_int(v, 1, u32::MAX.into()).map(|i| i as u32);
    c.monitor_failures = s.or("monitor_failures", &raw.monitor_failures, failures, d::MONITOR_FAILURES);
    c.import_timeout = s.or("import_timeout", &raw.import_timeout, positive, d::IMPORT_TIMEOUT);
    c.mount_timeout = s.or("mount_timeout", &raw.mount_timeout, positive, d::MOUNT_TIMEOUT);
    c.command_timeout = s.or("command_timeout", &raw.command_timeout, positive, d::COMMAND_TIMEOUT);
    c.fence_retry_initial = s.or("fence_retry_initial", &raw.fence_retry_initial, positive, d::FENCE_RETRY_INITIAL);
    c.fence_retry_max = s.or("fence_retry_max", &raw.fence_retry_max, positive, d::FENCE_RETRY_MAX);
}

fn check_timing(s: &mut Section, c: &ClusterConfig) {
    let hb = c.heartbeat_interval;
    if s.clean("heartbeat_interval") && hb < defaults::MIN_HEARTBEAT_INTERVAL {
        s.push(
            "heartbeat_interval",
            format!(
                "{} is too short; use at least {} (the default is {})",
                fmt_duration(hb),
                fmt_duration(defaults::MIN_HEARTBEAT_INTERVAL),
                fmt_duration(defaults::HEARTBEAT_INTERVAL)
            ),
        );
    }
    let min_dead = hb * defaults::MIN_MISSED_HEARTBEATS;
    if s.clean("heartbeat_interval") && s.clean("dead_after") && c.dead_after < min_dead {
        s.push("dead_after", format!(
            "{} is less than 3 x heartbeat_interval ({}): a peer would be declared dead after fewer than three missed heartbeats; raise dead_after to at least {} or lower heartbeat_interval",
            fmt_duration(c.dead_after), fmt_duration(min_dead), fmt_duration(min_dead)));
    }
    if s.clean("dead_after") && s.clean("stall_threshold") && c.stall_threshold >= c.dead_after {
        s.push("stall_threshold", format!(
            "{} must be shorter than dead_after ({}): a stall that long would already make peers look dead; leave it out to use dead_after / 2",
            fmt_duration(c.stall_threshold), fmt_duration(c.dead_after)));
    }
    if s.clean("fence_retry_initial") && s.clean("fence_retry_max") && c.fence_retry_max < c.fence_retry_initial {
        s.push(
            "fence_retry_max",
            format!(
                "{} is shorter than fence_retry_initial ({}); it must be at least as long",
                fmt_duration(c.fence_retry_max),
                fmt_duration(c.fence_retry_initial)
            ),
        );
    }
}

fn read_local(s: &mut Section, raw: &RawCluster, c: &mut ClusterConfig) {
    c.state_dir = s.or("state_dir", &raw.state_dir, conv_abs_path, PathBuf::from(defaults::STATE_DIR));
    c.control_socket =
        s.or("control_socket", &raw.control_socket, conv_abs_path, PathBuf::from(defaults::CONTROL_SOCKET));
    c.notify = s.opt("notify", &raw.notify, conv_abs_path);
    c.metrics_listen = s.opt("metrics_listen", &raw.metrics_listen, conv_listen_addr);
    c.lock_memory = s.or("lock_memory", &raw.lock_memory, conv_bool, defaults::LOCK_MEMORY);
    c.recovery_budget = s.or("recovery_budget", &raw.recovery_budget, conv_duration, defaults::RECOVERY_BUDGET);
    c.control_allowed_uids = s.list("control_allowed_uids", &raw.control_allowed_uids, conv_u32).unwrap_or_default();
}

fn check_key_files(s: &mut Section, c: &ClusterConfig) {
    if s.clean("key_file") {
        if let Err(e) = load_key(&c.key_file) {
            s.push("key_file", e.to_string());
        }
    }
    if let (Some(path), true) = (&c.next_key_file, s.clean("next_key_file")) {
        if let Err(e) = load_key(path) {
            s.push("next_key_file", e.to_string());
        }
    }
}

// --- [[node]] ------------------------------------------------------------------------------------------------------

fn build_node(raw: &RawNode, i: usize, devices: &Known, p: &mut Problems) -> NodeConfig {
    let mut s = Section::new(p, format!("node[{i}]"));
    let name = s.req("name", &raw.name, conv_name, "\"mds1\"").unwrap_or_default();
    let addresses = s.req_list("addresses", &raw.addresses, conv_peer_addr, "[\"10.0.0.1:7405\", \"10.1.0.1:7405\"]");
    s.no_repeats("addresses", &addresses);
    let hostid = s.req("hostid", &raw.hostid, conv_hostid, "\"a1a1a1a1\" (what `hostid` prints on that node)");
    let hostname = s.opt("hostname", &raw.hostname, conv_hostname);
    let fence_priority = s.or("fence_priority", &raw.fence_priority, conv_u32, defaults::FENCE_PRIORITY);
    let fence_levels = read_fence_levels(&mut s, &raw.fence_levels, devices);
    let manual = s.opt("fencing", &raw.fencing, |v| conv_choice(v, &[("manual", true), ("devices", false)]));
    let fencing = fencing_mode(&mut s, &name, fence_levels.as_deref(), manual);
    NodeConfig {
        name,
        addresses,
        hostid: hostid.unwrap_or(0),
        hostname,
        fence_priority,
        fence_levels: fence_levels.unwrap_or_default(),
        fencing,
    }
}

fn read_fence_levels(s: &mut Section, v: &Raw, devices: &Known) -> Option<Vec<Vec<String>>> {
    let v = v.as_ref()?;
    let Some(levels) = v.as_array() else {
        s.push(
            "fence_levels",
            format!(
                "expected an array of levels such as [[\"mds1-ipmi\"], [\"mds1-pdu-a\", \"mds1-pdu-b\"]], found {}",
                describe(v)
            ),
        );
        return Some(Vec::new());
    };
    Some(
        levels
            .iter()
            .enumerate()
            .map(|(l, level)| read_fence_level(s, &format!("fence_levels[{l}]"), level, devices))
            .collect(),
    )
}

fn read_fence_level(s: &mut Section, field: &str, level: &Value, known: &Known) -> Vec<String> {
    let Some(devices) = level.as_array() else {
        s.push(field, format!("expected a level: an array of fence_device names; fence_levels is an array of arrays, e.g. [[\"mds1-ipmi\"]], found {}", describe(level)));
        return Vec::new();
    };
    if devices.is_empty() {
        s.push(
            field,
            "empty level: it would count as fenced without cutting any power; list at least one fence_device",
        );
    }
    // An invalid entry stays as an empty placeholder so that positions still match the keys.
    let mut names = Vec::new();
    for (d, device) in devices.iter().enumerate() {
        names.push(known.reference(device).unwrap_or_else(|message| {
            s.push(&format!("{field}[{d}]"), message);
            String::new()
        }));
    }
    s.no_repeats(field, &names);
    names
}

/// `fence_levels` and `fencing` together: levels alone = devices; `fencing = "manual"` alone = operator only;
/// neither is refused (the operator must choose); both is refused as ambiguous.
fn fencing_mode(s: &mut Section, name: &str, levels: Option<&[Vec<String>]>, manual: Option<bool>) -> FencingMode {
    let has_levels = levels.is_some_and(|l| !l.is_empty());
    match (has_levels, manual) {
        (true, Some(true)) => {
            s.push("fencing", "fencing = \"manual\" cannot be combined with fence_levels; remove one of them (to let an operator confirm after the devices failed, end fence_levels with a [[fence_device]] of kind = \"manual\")");
            FencingMode::Devices
        }
        (true, _) => FencingMode::Devices,
        (false, Some(true)) => FencingMode::ManualOnly,
        (false, _) => {
            if s.clean("fence_levels") && s.clean("fencing") {
                s.push("fence_levels", format!(
                    "node \"{name}\" has no fence_levels: add fence_levels = [[\"<fence_device name>\"], ...] naming its [[fence_device]] entries, or set fencing = \"manual\" to acknowledge that only an operator can fence it (with `failoverd confirm-fenced {name}`)"));
            }
            FencingMode::Devices
        }
    }
}

// --- [[fence_device]] ----------------------------------------------------------------------------------------------

/// The kind-specific keys of `[[fence_device]]` and the kinds they belong to.
const DEVICE_KEY_OWNERS: &[(&str, &[&str])] = &[
    ("host", &["ipmi", "pdu-snmp"]),
    ("port", &["ipmi", "pdu-snmp"]),
    ("username", &["ipmi"]),
    ("password_file", &["ipmi"]),
    ("lanplus", &["ipmi"]),
    ("privilege", &["ipmi"]),
    ("cipher", &["ipmi"]),
    ("community_file", &["pdu-snmp"]),
    ("outlets", &["pdu-snmp"]),
    ("profile", &["pdu-snmp"]),
    ("snmp_version", &["pdu-snmp"]),
    ("program", &["agent"]),
    ("options", &["agent"]),
    ("secret_options", &["agent"]),
    ("plug", &["agent"]),
];

impl RawDevice {
    fn specific_keys(&self) -> [(&'static str, bool); 15] {
        [
            ("host", self.host.is_some()),
            ("port", self.port.is_some()),
            ("username", self.username.is_some()),
            ("password_file", self.password_file.is_some()),
            ("lanplus", self.lanplus.is_some()),
            ("privilege", self.privilege.is_some()),
            ("cipher", self.cipher.is_some()),
            ("community_file", self.community_file.is_some()),
            ("outlets", self.outlets.is_some()),
            ("profile", self.profile.is_some()),
            ("snmp_version", self.snmp_version.is_some()),
            ("program", self.program.is_some()),
            ("options", self.options.is_some()),
            ("secret_options", self.secret_options.is_some()),
            ("plug", self.plug.is_some()),
        ]
    }
}

const DEVICE_KINDS: &[(&str, &str)] =
    &[("ipmi", "ipmi"), ("pdu-snmp", "pdu-snmp"), ("agent", "agent"), ("manual", "manual")];

fn build_device(raw: &RawDevice, i: usize, p: &mut Problems) -> FenceDeviceConfig {
    let mut s = Section::new(p, format!("fence_device[{i}]"));
    let name = s.req("name", &raw.name, conv_name, "\"mds1-ipmi\"").unwrap_or_default();
    let kind =
        s.req("kind", &raw.kind, |v| conv_choice(v, DEVICE_KINDS), "\"ipmi\" (or \"pdu-snmp\", \"agent\", \"manual\")");
    let timeout = s.or("timeout", &raw.timeout, conv_positive_duration, defaults::DEVICE_TIMEOUT);
    let power_timeout = s.or("power_timeout", &raw.power_timeout, conv_positive_duration, defaults::POWER_TIMEOUT);
    let poll_interval = s.or("poll_interval", &raw.poll_interval, conv_positive_duration, defaults::POLL_INTERVAL);
    if s.clean("poll_interval") && s.clean("power_timeout") && poll_interval > power_timeout {
        s.push(
            "poll_interval",
            format!(
                "{} is longer than power_timeout ({}): status would be read at most once",
                fmt_duration(poll_interval),
                fmt_duration(power_timeout)
            ),
        );
    }
    if let Some(kind) = kind {
        s.foreign_keys(kind, &raw.specific_keys(), DEVICE_KEY_OWNERS);
    }
    let kind = match kind {
        Some("ipmi") => FenceDeviceKind::Ipmi(read_ipmi(&mut s, raw)),
        Some("pdu-snmp") => FenceDeviceKind::PduSnmp(read_pdu(&mut s, raw)),
        Some("agent") => FenceDeviceKind::Agent(read_agent(&mut s, raw)),
        _ => FenceDeviceKind::Manual,
    };
    FenceDeviceConfig { name, kind, timeout, power_timeout, poll_interval }
}

const PRIVILEGES: &[(&str, IpmiPrivilege)] = &[
    ("callback", IpmiPrivilege::Callback),
    ("user", IpmiPrivilege::User),
    ("operator", IpmiPrivilege::Operator),
    ("administrator", IpmiPrivilege::Administrator),
];

fn read_ipmi(s: &mut Section, raw: &RawDevice) -> IpmiConfig {
    let lanplus = s.or("lanplus", &raw.lanplus, conv_bool, defaults::IPMI_LANPLUS);
    let cipher = s.opt("cipher", &raw.cipher, |v| conv_int(v, 0, u8::MAX.into()).map(|i| i as u8));
    if cipher.is_some() && !lanplus && s.clean("lanplus") {
        s.push("cipher", "a cipher suite applies only to IPMI 2.0: remove cipher or set lanplus = true");
    }
    IpmiConfig {
        host: s.req("host", &raw.host, conv_word, "\"10.0.9.1\" (the BMC)").unwrap_or_default(),
        port: s.or("port", &raw.port, conv_port, defaults::IPMI_PORT),
        username: s.req("username", &raw.username, conv_string, "\"admin\"").unwrap_or_default(),
        password_file: s
            .req("password_file", &raw.password_file, conv_abs_path, "\"/etc/failoverd/bmc.pw\"")
            .unwrap_or_default(),
        lanplus,
        privilege: s.or("privilege", &raw.privilege, |v| conv_choice(v, PRIVILEGES), IpmiPrivilege::Administrator),
        cipher: if lanplus { Some(cipher.unwrap_or(defaults::IPMI_CIPHER)) } else { None },
    }
}

const PROFILES: &[(&str, PduProfile)] = &[
    ("apc-rpdu", PduProfile::ApcRpdu),
    ("apc-masterswitch", PduProfile::ApcMasterSwitch),
    ("tripplite", PduProfile::Tripplite),
];

const SNMP_VERSIONS: &[(&str, SnmpVersion)] = &[("1", SnmpVersion::V1), ("2c", SnmpVersion::V2c)];

fn read_pdu(s: &mut Section, raw: &RawDevice) -> PduSnmpConfig {
    let outlet = |v: &Value| conv_int(v, 1, u32::MAX.into()).map(|i| i as u32);
    let outlets = s.req_list("outlets", &raw.outlets, outlet, "[3, 4] (one outlet per power supply of the node)");
    if s.clean("outlets") && outlets.is_empty() {
        s.push("outlets", "no outlet listed; list every outlet feeding the node, e.g. [3, 4] for two power supplies");
    }
    s.no_repeats("outlets", &outlets);
    PduSnmpConfig {
        host: s.req("host", &raw.host, conv_word, "\"10.0.9.10\" (the PDU)").unwrap_or_default(),
        port: s.or("port", &raw.port, conv_port, defaults::SNMP_PORT),
        community_file: s
            .req("community_file", &raw.community_file, conv_abs_path, "\"/etc/failoverd/pdu.community\"")
            .unwrap_or_default(),
        outlets,
        profile: s.or("profile", &raw.profile, |v| conv_choice(v, PROFILES), PduProfile::ApcRpdu),
        snmp_version: s.or("snmp_version", &raw.snmp_version, |v| conv_choice(v, SNMP_VERSIONS), SnmpVersion::V1),
    }
}

fn read_agent(s: &mut Section, raw: &RawDevice) -> AgentConfig {
    let program = s.req("program", &raw.program, conv_program, "\"fence_ipmilan\"").unwrap_or_default();
    let options = s.map("options", &raw.options, check_option_name, conv_option_value);
    let secret_options = s.map("secret_options", &raw.secret_options, check_secret_name, conv_abs_path);
    for key in secret_options.keys().filter(|k| options.contains_key(*k)) {
        s.push(&format!("secret_options.{key}"), format!("`{key}` is also in options; keep it in one place"));
    }
    let plug = s.opt("plug", &raw.plug, |v| match v {
        Value::Integer(i) => Ok(i.to_string()),
        other => conv_word(other),
    });
    AgentConfig { program, options, secret_options, plug }
}

fn check_secret_name(key: &str) -> Result<(), String> {
    if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Err(format!("\"{}\" is not an agent option name (letters, digits, _ and -)", key.escape_debug()));
    }
    match key {
        "action" => Err("failoverd sets action= itself; remove this option".to_owned()),
        "plug" | "port" => Err(format!("use the `plug` key of the fence_device instead of {key}")),
        _ => Ok(()),
    }
}

fn check_option_name(key: &str) -> Result<(), String> {
    check_secret_name(key)?;
    match key {
        "password" | "passwd" => {
            Err(format!("do not write secrets in the config: put `{key} = \"/path/to/file\"` in secret_options"))
        }
        _ => Ok(()),
    }
}

/// An agent option value: one `key=value` line on the agent's stdin, so no line break.
fn conv_option_value(v: &Value) -> Result<String, String> {
    let s = conv_str(v)?;
    if s.contains('\n') || s.contains('\r') {
        return Err("must not contain a line break (options are passed as key=value lines)".to_owned());
    }
    Ok(s.to_owned())
}

// --- [[target]] ----------------------------------------------------------------------------------------------------

const TARGET_KEY_OWNERS: &[(&str, &[&str])] = &[("pool", &["zfs"]), ("dataset", &["zfs"]), ("device", &["ldiskfs"])];

const TARGET_KINDS: &[(&str, &str)] = &[("zfs", "zfs"), ("ldiskfs", "ldiskfs")];

const FSTYPES: &[(&str, Fstype)] = &[("lustre", Fstype::Lustre), ("zfs", Fstype::Zfs)];

/// `fstype = "zfs"`: only on a ZFS target, and without the Lustre-only keys (`lctl_device`, `health_nids`).
fn read_fstype(s: &mut Section, raw: &RawTarget, kind: Option<&str>) -> Fstype {
    let fstype = s.or("fstype", &raw.fstype, |v| conv_choice(v, FSTYPES), Fstype::Lustre);
    if fstype == Fstype::Zfs && s.clean("fstype") {
        if kind == Some("ldiskfs") {
            s.push("fstype", "\"zfs\" needs kind = \"zfs\" (a pool and a dataset); an ldiskfs device is mounted as lustre");
        }
        if raw.lctl_device.is_some() {
            s.push("lctl_device", "a target with fstype = \"zfs\" is a plain ZFS dataset, it has no Lustre device: remove lctl_device (or set fstype = \"lustre\")");
        }
        if raw.health_nids.is_some() {
            s.push("health_nids", "a target with fstype = \"zfs\" runs no lctl ping: remove health_nids, or check the service with check_command");
        }
    }
    fstype
}

fn build_target(raw: &RawTarget, i: usize, known_nodes: &Known, p: &mut Problems) -> TargetConfig {
    let mut s = Section::new(p, format!("target[{i}]"));
    let name = s.req("name", &raw.name, conv_name, "\"lustre-MDT0000\"").unwrap_or_default();
    let kind = s.req("kind", &raw.kind, |v| conv_choice(v, TARGET_KINDS), "\"zfs\" (or \"ldiskfs\")");
    let present = [("pool", raw.pool.is_some()), ("dataset", raw.dataset.is_some()), ("device", raw.device.is_some())];
    if let Some(kind) = kind {
        s.foreign_keys(kind, &present, TARGET_KEY_OWNERS);
    }
    let fstype = read_fstype(&mut s, raw, kind);
    let kind = match kind {
        Some("zfs") => match (read_zfs(&mut s, raw), fstype) {
            (TargetKind::Zfs { pool, dataset }, Fstype::Zfs) => TargetKind::ZfsDataset { pool, dataset },
            (k, _) => k,
        },
        Some(_) => TargetKind::Ldiskfs {
            device: s.req("device", &raw.device, conv_abs_path, "\"/dev/mapper/mdt0\"").unwrap_or_default(),
        },
        None => TargetKind::Ldiskfs { device: PathBuf::new() },
    };
    let nodes =
        s.req_list("nodes", &raw.nodes, |v| known_nodes.reference(v), "[\"mds1\", \"mds2\"] (most preferred first)");
    if s.clean("nodes") && nodes.is_empty() {
        s.push("nodes", "no node listed; list the nodes that may run this target, most preferred first");
    }
    s.no_repeats("nodes", &nodes);
    let lctl_device = s.opt("lctl_device", &raw.lctl_device, conv_word).unwrap_or_else(|| name.clone());
    TargetConfig {
        name,
        kind,
        mountpoint: s.req("mountpoint", &raw.mountpoint, conv_mountpoint, "\"/lustre/mgt\"").unwrap_or_default(),
        nodes,
        start_order: s.or(
            "start_order",
            &raw.start_order,
            |v| conv_int(v, i32::MIN.into(), i32::MAX.into()).map(|i| i as i32),
            defaults::START_ORDER,
        ),
        lctl_device,
        mount_options: s.opt("mount_options", &raw.mount_options, conv_word),
        health_nids: s.list("health_nids", &raw.health_nids, conv_nid).unwrap_or_default(),
        check_command: read_check_command(&mut s, &raw.check_command),
    }
}

fn read_zfs(s: &mut Section, raw: &RawTarget) -> TargetKind {
    let pool = s.req("pool", &raw.pool, conv_pool, "\"mdt0pool\"");
    let dataset = s.req("dataset", &raw.dataset, conv_dataset, "\"mdt0pool/mdt0\"");
    let dataset = match (&pool, dataset) {
        (Some(pool), Some(ds)) if !ds.contains('/') => format!("{pool}/{ds}"),
        (Some(pool), Some(ds)) if !ds.starts_with(&format!("{pool}/")) => {
            s.push(
                "dataset",
                format!("\"{ds}\" is not in pool \"{pool}\": write \"{pool}/<name>\", or just the name below the pool"),
            );
            ds
        }
        (_, ds) => ds.unwrap_or_default(),
    };
    TargetKind::Zfs { pool: pool.unwrap_or_default(), dataset }
}

/// A ZFS pool name: starts with a letter; letters, digits, `_ - . :`.
fn conv_pool(v: &Value) -> Result<String, String> {
    let s = conv_str(v)?;
    let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':');
    if !s.starts_with(|c: char| c.is_ascii_alphabetic()) || !s.chars().all(valid) {
        return Err(format!(
            "\"{}\" is not a ZFS pool name: it starts with a letter and holds only letters, digits, _ - . :",
            s.escape_debug()
        ));
    }
    Ok(s.to_owned())
}

/// A dataset name, `pool/a/b` or just `a` (below the pool): components of letters, digits, `_ - . :`.
fn conv_dataset(v: &Value) -> Result<String, String> {
    let s = conv_str(v)?;
    let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':');
    if s.split('/').any(|part| part.is_empty() || !part.chars().all(valid)) {
        return Err(format!(
            "\"{}\" is not a ZFS dataset name such as \"mdt0pool/mdt0\" (no snapshot, no empty component)",
            s.escape_debug()
        ));
    }
    Ok(s.to_owned())
}

fn conv_mountpoint(v: &Value) -> Result<PathBuf, String> {
    let path = conv_abs_path(v)?;
    if path == Path::new("/") || path.components().any(|c| c == std::path::Component::ParentDir) {
        return Err(format!(
            "\"{}\" cannot be a mount point; use a directory of its own such as \"/lustre/mgt\"",
            path.display()
        ));
    }
    Ok(path)
}

/// A Lustre NID: `address@network`, e.g. `10.0.0.9@tcp`.
fn conv_nid(v: &Value) -> Result<String, String> {
    let s = conv_word(v)?;
    match s.split_once('@') {
        Some((addr, net)) if !addr.is_empty() && !net.is_empty() => Ok(s),
        _ => Err(format!("\"{s}\" is not a Lustre NID such as \"10.0.0.9@tcp\" or \"192.168.1.9@o2ib\"")),
    }
}

fn read_check_command(s: &mut Section, v: &Raw) -> Option<Vec<String>> {
    let argv = s.list("check_command", v, conv_string)?;
    if s.clean("check_command") {
        match argv.first() {
            None => s.push(
                "check_command",
                "empty command; write the program and its arguments, e.g. [\"/usr/local/bin/check-mgt\"]",
            ),
            Some(program) => {
                if let Err(message) = conv_program(&Value::String(program.clone())) {
                    s.push("check_command[0]", message);
                }
            }
        }
    }
    Some(argv)
}

// --- [witness] -----------------------------------------------------------------------------------------------------

fn build_witness(raw: &RawWitness, p: &mut Problems) -> WitnessConfig {
    let mut s = Section::new(p, "witness");
    let address = s.req("address", &raw.address, conv_peer_addr, "\"10.0.0.9:7406\"");
    WitnessConfig { address: address.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0))) }
}

// ---------------------------------------------------------------------------------------------------------------
// Checks across sections
// ---------------------------------------------------------------------------------------------------------------

/// Report every value seen a second time. `entries` are (key, value) pairs of clean keys only.
fn report_repeats<K: Ord>(p: &mut Problems, entries: Vec<(String, K)>, message: impl Fn(&K, &str) -> String) {
    let mut first: BTreeMap<K, String> = BTreeMap::new();
    let mut repeats = Vec::new();
    for (key, value) in entries {
        match first.get(&value) {
            Some(first_key) => repeats.push((key, message(&value, first_key))),
            None => {
                first.insert(value, key);
            }
        }
    }
    for (key, msg) in repeats {
        p.push(key, msg);
    }
}

/// (key, value) for each entry whose key is clean.
fn clean_entries<T, K>(
    p: &Problems,
    items: &[T],
    key: impl Fn(usize) -> String,
    value: impl Fn(&T) -> K,
) -> Vec<(String, K)> {
    items.iter().enumerate().map(|(i, x)| (key(i), value(x))).filter(|(k, _)| p.clean(k)).collect()
}

fn check_nodes(c: &Config, p: &mut Problems) {
    if c.nodes.is_empty() && p.clean("node") {
        p.push("node", "no [[node]] defined; list every host of the cluster (two or more to fail over)");
    }
    let names = clean_entries(p, &c.nodes, |i| format!("node[{i}].name"), |n| n.name.clone());
    report_repeats(p, names, |name, first| {
        format!("duplicate node name \"{name}\" (already {first}); every node needs its own name")
    });
    let hostids = clean_entries(p, &c.nodes, |i| format!("node[{i}].hostid"), |n| n.hostid);
    report_repeats(p, hostids, |id, first| {
        format!("hostid {id:08x} is already {first}: ZFS could not tell which host imported a pool; run zgenhostid on one of the nodes and write what hostid prints")
    });
}

fn check_addresses(c: &Config, p: &mut Problems) {
    let links = c.link_count();
    let links_clean = p.clean("cluster.links");
    for (i, node) in c.nodes.iter().enumerate() {
        let key = format!("node[{i}].addresses");
        if links_clean && p.clean(&key) && node.addresses.len() != links {
            p.push(
                &key,
                format!("{} but the cluster has {}", count(node.addresses.len(), "address"), count(links, "link")),
            );
        }
    }
    let mut entries = Vec::new();
    for (i, node) in c.nodes.iter().enumerate() {
        let key = format!("node[{i}].addresses");
        if p.clean(&key) {
            entries.extend(node.addresses.iter().enumerate().map(|(a, addr)| (format!("{key}[{a}]"), *addr)));
        }
    }
    if let (Some(w), true) = (&c.witness, p.clean("witness.address")) {
        entries.push(("witness.address".to_owned(), w.address));
    }
    report_repeats(p, dedup_within_nodes(entries), |addr, first| {
        format!("{addr} is already {first}; every node and the witness need their own addresses")
    });
}

/// Repeats inside one node's list were already reported by the node itself: keep the first of each.
fn dedup_within_nodes(entries: Vec<(String, SocketAddr)>) -> Vec<(String, SocketAddr)> {
    let mut seen = BTreeSet::new();
    entries
        .into_iter()
        .filter(|(key, addr)| {
            seen.insert((key.split_once(".addresses").map_or(key.as_str(), |(n, _)| n).to_owned(), *addr))
        })
        .collect()
}

fn check_fence_levels(c: &Config, p: &mut Problems) {
    let names = clean_entries(p, &c.fence_devices, |i| format!("fence_device[{i}].name"), |d| d.name.clone());
    report_repeats(p, names, |name, first| format!("duplicate fence_device name \"{name}\" (already {first})"));
    let mut owner: BTreeMap<&str, &str> = BTreeMap::new();
    for (i, node) in c.nodes.iter().enumerate() {
        for (l, level) in node.fence_levels.iter().enumerate() {
            let level_key = format!("node[{i}].fence_levels[{l}]");
            for (d, device) in level.iter().enumerate() {
                let key = format!("{level_key}[{d}]");
                if !p.clean(&key) || !p.clean(&format!("fence_device[{}].kind", device_index(c, device))) {
                    continue;
                }
                check_level_device(c, p, &key, node, device, &mut owner);
            }
        }
    }
}

fn device_index(c: &Config, name: &str) -> usize {
    c.fence_devices.iter().position(|d| d.name == name).unwrap_or(usize::MAX)
}

fn check_level_device<'c>(
    c: &'c Config,
    p: &mut Problems,
    key: &str,
    node: &'c NodeConfig,
    device: &'c str,
    owner: &mut BTreeMap<&'c str, &'c str>,
) {
    let Some(dev) = c.device(device) else { return };
    if matches!(dev.kind, FenceDeviceKind::Manual) {
        return;
    }
    match owner.get(device) {
        Some(other) if *other != node.name => p.push(key, format!(
            "fence_device \"{device}\" already fences node \"{other}\": a device cuts one node's power, so give \"{}\" a [[fence_device]] of its own (its own BMC, outlets or plug)", node.name)),
        _ => {
            owner.insert(device, &node.name);
        }
    }
}

fn check_targets(c: &Config, p: &mut Problems) {
    let ts = &c.targets;
    let names = clean_entries(p, ts, |i| format!("target[{i}].name"), |t| t.name.clone());
    report_repeats(p, names, |name, first| format!("duplicate target name \"{name}\" (already {first})"));
    let lctl = clean_entries(p, ts, |i| format!("target[{i}].lctl_device"), |t| t.lctl_device.clone());
    report_repeats(p, lctl, |d, first| {
        let entry = first.rsplit_once('.').map_or(first, |(entry, _)| entry);
        format!("lctl device \"{d}\" is already used by {entry} (lctl_device defaults to the target name); each target has its own Lustre device name")
    });
    let mounts = clean_entries(p, ts, |i| format!("target[{i}].mountpoint"), |t| t.mountpoint.clone());
    report_repeats(p, mounts, |m, first| {
        format!("{} is already {first}; each target needs its own mount point", m.display())
    });
    check_target_storage(c, p);
}

fn check_target_storage(c: &Config, p: &mut Problems) {
    let (mut datasets, mut pools, mut devices) = (Vec::new(), Vec::new(), Vec::new());
    for (i, t) in c.targets.iter().enumerate().filter(|(i, _)| p.clean(&format!("target[{i}].kind"))) {
        match &t.kind {
            TargetKind::Zfs { pool, dataset } | TargetKind::ZfsDataset { pool, dataset } => {
                let (pk, dk) = (format!("target[{i}].pool"), format!("target[{i}].dataset"));
                let dataset = (p.clean(&pk) && p.clean(&dk)).then(|| dataset.clone());
                if let Some(ds) = &dataset {
                    datasets.push((dk, ds.clone()));
                }
                if p.clean(&pk) {
                    pools.push((pk, (pool.clone(), dataset)));
                }
            }
            TargetKind::Ldiskfs { device } => devices.push((format!("target[{i}].device"), device.clone())),
        }
    }
    let devices = devices.into_iter().filter(|(k, _)| p.clean(k)).collect();
    report_repeats(p, datasets, |ds, first| {
        format!("dataset {ds} is already {first}; each target needs its own dataset")
    });
    report_repeats(p, devices, |d, first| {
        format!("{} is already {first}; each target needs its own device", d.display())
    });
    report_shared_pools(p, pools);
}

/// Two targets on one pool (unless with the same valid dataset, which is reported on its own).
fn report_shared_pools(p: &mut Problems, pools: Vec<(String, (String, Option<String>))>) {
    let mut first: BTreeMap<String, (String, Option<String>)> = BTreeMap::new();
    for (key, (pool, dataset)) in pools {
        match first.get(&pool) {
            Some((first_key, first_ds)) if dataset.is_none() || *first_ds != dataset => p.push(key, format!(
                "pool \"{pool}\" is already {first_key}: failoverd imports and exports a whole pool with each target, so each target needs a pool of its own")),
            Some(_) => {}
            None => {
                first.insert(pool, (key, dataset));
            }
        }
    }
}

fn check_fence_delay(c: &Config, p: &mut Problems) {
    if c.nodes.len() == 2 && c.witness.is_none() && c.cluster.fence_delay.is_zero() && p.clean("cluster.fence_delay") {
        p.push("cluster.fence_delay", "0 in a two-node cluster without [witness]: after a split both nodes would fence each other at once; use e.g. \"10s\" (the default) or add a [witness]");
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Warnings
// ---------------------------------------------------------------------------------------------------------------

fn warn_links(c: &Config, w: &mut Problems) {
    if c.link_count() == 1 {
        w.push("cluster.links", "a single heartbeat link: one network fault looks like a dead node and leads to a fence; add a second, independent link");
    }
    for (i, node) in c.nodes.iter().enumerate() {
        let mut ips = BTreeMap::new();
        for (a, addr) in node.addresses.iter().enumerate() {
            let first = *ips.entry(addr.ip()).or_insert(a);
            if first != a {
                w.push(
                    format!("node[{i}].addresses[{a}]"),
                    format!("same IP as node[{i}].addresses[{first}]: these links are not independent"),
                );
            }
        }
    }
}

fn warn_unused_devices(c: &Config, w: &mut Problems) {
    let used: BTreeSet<&str> =
        c.nodes.iter().flat_map(|n| n.fence_levels.iter().flatten()).map(String::as_str).collect();
    for (i, d) in c.fence_devices.iter().enumerate().filter(|(_, d)| !used.contains(d.name.as_str())) {
        w.push(format!("fence_device[{i}]"), format!("\"{}\" is not used in any node's fence_levels", d.name));
    }
}

fn warn_fence_race(c: &Config, w: &mut Problems) {
    if let ([a, b], None) = (c.nodes.as_slice(), &c.witness) {
        if a.fence_priority == b.fence_priority {
            w.push("node[1].fence_priority", format!(
                "both nodes have fence_priority {}: give the node that should win a split a higher fence_priority (or add a [witness])", a.fence_priority));
        }
    }
}

impl Config {
    /// Lustre's Imperative Recovery (the MGS telling clients at once where a restarted target now runs, which
    /// halves the recovery window) cannot help when the MGS fails over together with MDT0000: both prefer the
    /// same node, so a crash of that node restarts the MGS with the MDT and the clients must find the new
    /// server by their own timeouts. One `(key, message)` per such MDT0000 (`check-config` and `doctor` warn).
    pub fn imperative_recovery_warnings(&self) -> Vec<(String, String)> {
        let is_mgs = |t: &TargetConfig| t.lctl_device == "MGS" || t.lctl_device.ends_with("-MGS");
        let Some(mgs) = self.targets.iter().find(|t| is_mgs(t)) else { return Vec::new() };
        let Some(home) = mgs.nodes.first() else { return Vec::new() };
        self.targets
            .iter()
            .enumerate()
            .filter(|(_, t)| t.lctl_device.ends_with("-MDT0000") && t.nodes.first() == Some(home))
            .map(|(i, t)| {
                (format!("target[{i}].nodes"), format!(
                    "\"{}\" and the MGS (\"{}\") both run on {home} first: when {home} fails they fail over together and \
                     Imperative Recovery cannot help (the MGS restarts too), so clients reconnect by their own timeouts and \
                     the recovery window can last recovery_time_soft (300 s); prefer another node for one of them",
                    t.name, mgs.name
                ))
            })
            .collect()
    }
}

fn warn_targets(c: &Config, w: &mut Problems) {
    if c.targets.is_empty() {
        w.push("target", "no [[target]] defined: this cluster will not run anything");
    }
    for (i, t) in c.targets.iter().enumerate().filter(|(_, t)| t.nodes.len() == 1) {
        w.push(format!("target[{i}].nodes"), format!("only one node can run \"{}\": it cannot fail over", t.name));
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Digests
// ---------------------------------------------------------------------------------------------------------------

/// One setting (or a table of them) as `path = text` lines in `out`; a serialized `Duration` reads as in the file.
fn flatten_setting(path: &str, v: &serde_json::Value, out: &mut std::collections::BTreeMap<String, String>) {
    use serde_json::Value;
    match v {
        Value::Object(o) if o.len() == 2 && o.contains_key("secs") && o.contains_key("nanos") => {
            let d = Duration::new(o["secs"].as_u64().unwrap_or(0), o["nanos"].as_u64().unwrap_or(0) as u32);
            out.insert(path.to_string(), humantime::format_duration(d).to_string());
        }
        Value::Object(o) => {
            for (k, v) in o {
                if path.ends_with(']') && k == "name" {
                    continue;
                }
                flatten_setting(&format!("{path}.{k}"), v, out);
            }
        }
        Value::Null => {}
        Value::String(s) => {
            out.insert(path.to_string(), s.clone());
        }
        other => {
            out.insert(path.to_string(), other.to_string());
        }
    }
}

/// An agent option whose value may be a secret (see [`Config::agreement_values`]).
fn agreement_secret(key: &str) -> bool {
    let Some((_, option)) = key.split_once(".options.") else { return false };
    let option = option.to_ascii_lowercase();
    option == "community" || ["pass", "secret", "key", "token", "auth", "priv"].iter().any(|w| option.contains(w))
}

/// One cluster-wide setting on which configurations differ: its key (as [`Config::cluster_wide_values`] names
/// it) and each configuration's value, in the order they were given (`None`: not set in that one).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingDiff {
    pub key: String,
    pub values: Vec<Option<String>>,
}

/// Every key on which the settings of several configurations (each [`Config::cluster_wide_values`] or
/// [`Config::agreement_values`]) differ, in key order. The one comparison behind both `failoverd check-config A
/// B ...` and the daemons' runtime agreement (`config_mismatch`).
pub fn diff_settings(each: &[&BTreeMap<String, String>]) -> Vec<SettingDiff> {
    let keys: BTreeSet<&String> = each.iter().flat_map(|v| v.keys()).collect();
    keys.into_iter()
        .filter_map(|key| {
            let values: Vec<Option<String>> = each.iter().map(|v| v.get(key).cloned()).collect();
            (!values.windows(2).all(|w| w[0] == w[1])).then(|| SettingDiff { key: key.clone(), values })
        })
        .collect()
}

/// The cluster-wide part of a configuration, in the canonical form hashed by [`Config::digest`].
#[derive(Serialize)]
struct ClusterWide<'a> {
    name: &'a str,
    links: &'a [String],
    heartbeat_interval: Duration,
    dead_after: Duration,
    fence_delay: Duration,
    wait_for_all: bool,
    stall_threshold: Duration,
    monitor_interval: Duration,
    monitor_failures: u32,
    import_timeout: Duration,
    mount_timeout: Duration,
    command_timeout: Duration,
    fence_retry_initial: Duration,
    fence_retry_max: Duration,
    nodes: &'a [NodeConfig],
    fence_devices: &'a [FenceDeviceConfig],
    targets: &'a [TargetConfig],
    witness: Option<&'a WitnessConfig>,
}

impl<'a> ClusterWide<'a> {
    fn of(config: &'a Config) -> ClusterWide<'a> {
        // No `..`: a new field of ClusterConfig must be classified here as cluster-wide or node-local.
        let ClusterConfig {
            name,
            key_file: _,
            next_key_file: _,
            links,
            heartbeat_interval,
            dead_after,
            fence_delay,
            wait_for_all,
            stall_threshold,
            state_dir: _,
            control_socket: _,
            monitor_interval,
            monitor_failures,
            import_timeout,
            mount_timeout,
            command_timeout,
            fence_retry_initial,
            fence_retry_max,
            notify: _,
            metrics_listen: _,
            lock_memory: _,
            control_allowed_uids: _,
            recovery_budget: _,
        } = &config.cluster;
        ClusterWide {
            name,
            links,
            heartbeat_interval: *heartbeat_interval,
            dead_after: *dead_after,
            fence_delay: *fence_delay,
            wait_for_all: *wait_for_all,
            stall_threshold: *stall_threshold,
            monitor_interval: *monitor_interval,
            monitor_failures: *monitor_failures,
            import_timeout: *import_timeout,
            mount_timeout: *mount_timeout,
            command_timeout: *command_timeout,
            fence_retry_initial: *fence_retry_initial,
            fence_retry_max: *fence_retry_max,
            nodes: &config.nodes,
            fence_devices: &config.fence_devices,
            targets: &config.targets,
            witness: config.witness.as_ref(),
        }
    }
}

/// SHA-256 over a domain label and the JSON form of `value`.
fn sha256_of<T: Serialize + ?Sized>(domain: &str, value: &T) -> [u8; 32] {
    // Serializing plain structs, strings and numbers to JSON only fails on a non-UTF-8 path, which a config
    // read from TOML cannot hold.
    let json = serde_json::to_vec(value).expect("configuration values serialize to JSON");
    let mut hasher = Sha256::new();
    hasher.update(domain.as_bytes());
    hasher.update([0u8]);
    hasher.update(&json);
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A valid two-node configuration using every device kind and both target kinds.
    const BASE: &str = r#"
[cluster]
name = "lfs-test"
key_file = "/etc/failoverd/cluster.key"
links = ["ring0", "ring1"]

[[node]]
name = "n1"
addresses = ["10.0.0.1:7405", "10.1.0.1:7405"]
hostid = "a1a1a1a1"
fence_priority = 10
fence_levels = [["n1-ipmi"], ["n1-pdu"]]

[[node]]
name = "n2"
addresses = ["10.0.0.2:7405", "10.1.0.2:7405"]
hostid = "0xb2b2b2b2"
fence_levels = [["n2-agent"], ["operator"]]

[[fence_device]]
name = "n1-ipmi"
kind = "ipmi"
host = "10.0.9.1"
username = "admin"
password_file = "/etc/failoverd/n1.pw"

[[fence_device]]
name = "n1-pdu"
kind = "pdu-snmp"
host = "10.0.9.10"
community_file = "/etc/failoverd/pdu.community"
outlets = [3, 4]

[[fence_device]]
name = "n2-agent"
kind = "agent"
program = "fence_ipmilan"
options = { ip = "10.0.9.2", username = "admin", lanplus = "1" }
secret_options = { password = "/etc/failoverd/n2.pw" }

[[fence_device]]
name = "operator"
kind = "manual"

[[target]]
name = "MGT"
kind = "zfs"
pool = "mgspool"
dataset = "mgt"
mountpoint = "/lustre/mgt"
nodes = ["n1", "n2"]
lctl_device = "MGS"

[[target]]
name = "lustre-OST0000"
kind = "ldiskfs"
device = "/dev/mapper/ost0"
mountpoint = "/lustre/ost0"
nodes = ["n2", "n1"]
start_order = 1
"#;

    /// BASE with `from` replaced by `to` (which must occur).
    fn edit(from: &str, to: &str) -> String {
        edit_in(BASE, from, to)
    }

    fn edit_in(text: &str, from: &str, to: &str) -> String {
        assert!(text.contains(from), "test bug: {from:?} not in the config");
        text.replacen(from, to, 1)
    }

    fn errors(text: &str) -> ConfigErrors {
        match Config::from_toml_str(text) {
            Ok(_) => panic!("config unexpectedly valid:\n{text}"),
            Err(e) => e,
        }
    }

    /// The message at `key`, failing with the whole list if there is none.
    fn error_at(text: &str, key: &str) -> String {
        let errs = errors(text);
        match errs.get(key) {
            Some(e) => e.message.clone(),
            None => panic!("no error at {key}; got:\n{errs}"),
        }
    }

    fn valid(text: &str) -> Config {
        Config::from_toml_str(text).unwrap_or_else(|e| panic!("config invalid:\n{e}"))
    }

    #[test]
    fn base_is_valid_and_read_as_written() {
        let c = valid(BASE);
        assert_eq!(c.cluster.name, "lfs-test");
        assert_eq!(c.nodes.len(), 2);
        assert_eq!(c.nodes[0].hostid, 0xa1a1a1a1);
        assert_eq!(c.nodes[1].hostid, 0xb2b2b2b2);
        assert_eq!(c.nodes[0].fence_levels, vec![vec!["n1-ipmi".to_owned()], vec!["n1-pdu".to_owned()]]);
        assert_eq!(c.nodes[0].fencing, FencingMode::Devices);
        assert_eq!(
            c.target("MGT").unwrap().kind,
            TargetKind::Zfs { pool: "mgspool".into(), dataset: "mgspool/mgt".into() }
        );
        assert_eq!(c.target("lustre-OST0000").unwrap().kind.mount_source(), "/dev/mapper/ost0");
        match &c.device("n2-agent").unwrap().kind {
            FenceDeviceKind::Agent(a) => {
                assert_eq!(a.options.get("ip").map(String::as_str), Some("10.0.9.2"));
                assert_eq!(a.secret_options.get("password"), Some(&PathBuf::from("/etc/failoverd/n2.pw")));
                assert_eq!(a.plug, None);
            }
            other => panic!("not an agent: {other:?}"),
        }
        assert_eq!(c.device("operator").unwrap().kind, FenceDeviceKind::Manual);
    }

    #[test]
    fn defaults() {
        let c = valid(BASE);
        let k = &c.cluster;
        assert_eq!(k.heartbeat_interval, Duration::from_millis(250));
        assert_eq!(k.dead_after, Duration::from_secs(3));
        assert_eq!(k.fence_delay, Duration::from_secs(10));
        assert!(k.wait_for_all);
        assert_eq!(k.stall_threshold, Duration::from_millis(1500));
        assert_eq!(k.state_dir, PathBuf::from("/var/lib/failoverd"));
        assert_eq!(k.control_socket, PathBuf::from("/run/failoverd/control.sock"));
        assert_eq!(k.monitor_interval, Duration::from_secs(10));
        assert_eq!(k.monitor_failures, 3);
        assert_eq!(k.import_timeout, Duration::from_secs(120));
        assert_eq!(k.mount_timeout, Duration::from_secs(300));
        assert_eq!(k.command_timeout, Duration::from_secs(60));
        assert_eq!(k.fence_retry_initial, Duration::from_secs(2));
        assert_eq!(k.fence_retry_max, Duration::from_secs(60));
        assert_eq!((k.notify.as_ref(), k.metrics_listen, k.lock_memory), (None, None, false));
        assert!(k.control_allowed_uids.is_empty());
        assert_eq!(k.next_key_file, None);
        assert_eq!(c.nodes[1].fence_priority, 0);
        let ipmi = c.device("n1-ipmi").unwrap();
        assert_eq!(
            (ipmi.timeout, ipmi.power_timeout, ipmi.poll_interval),
            (Duration::from_secs(20), Duration::from_secs(20), Duration::from_secs(1))
        );
        let FenceDeviceKind::Ipmi(i) = &ipmi.kind else { panic!("not ipmi") };
        assert_eq!((i.port, i.lanplus, i.privilege, i.cipher), (623, true, IpmiPrivilege::Administrator, Some(3)));
        let FenceDeviceKind::PduSnmp(pdu) = &c.device("n1-pdu").unwrap().kind else { panic!("not pdu") };
        assert_eq!((pdu.port, pdu.profile, pdu.snmp_version), (161, PduProfile::ApcRpdu, SnmpVersion::V1));
        let mgt = c.target("MGT").unwrap();
        assert_eq!((mgt.start_order, mgt.lctl_device.as_str()), (0, "MGS"));
        let ost = c.target("lustre-OST0000").unwrap();
        assert_eq!(ost.lctl_device, "lustre-OST0000", "lctl_device defaults to the target name");
        assert_eq!((&ost.mount_options, &ost.check_command, ost.health_nids.len()), (&None, &None, 0));
        assert_eq!(c.witness, None);
    }

    #[test]
    fn stall_threshold_defaults_to_half_of_dead_after() {
        let c = valid(&edit("links = [\"ring0\", \"ring1\"]", "links = [\"ring0\", \"ring1\"]\ndead_after = \"5s\""));
        assert_eq!(c.cluster.stall_threshold, Duration::from_millis(2500));
    }

    #[test]
    fn no_cipher_without_lanplus() {
        let c =
            valid(&edit("username = \"admin\"\npassword_file", "username = \"admin\"\nlanplus = false\npassword_file"));
        let FenceDeviceKind::Ipmi(i) = &c.device("n1-ipmi").unwrap().kind else { panic!("not ipmi") };
        assert_eq!((i.lanplus, i.cipher), (false, None));
        let text = edit(
            "username = \"admin\"\npassword_file",
            "username = \"admin\"\nlanplus = false\ncipher = 17\npassword_file",
        );
        assert!(error_at(&text, "fence_device[0].cipher").contains("lanplus"));
    }

    #[test]
    fn display_is_one_key_message_line_per_problem() {
        let errs = errors(&edit("name = \"lfs-test\"", "name = \"bad name\"").replace("/lustre/mgt", "lustre/mgt"));
        let text = errs.to_string();
        assert_eq!(text.lines().count(), errs.len());
        for (line, e) in text.lines().zip(errs.iter()) {
            assert_eq!(line, format!("{}: {}", e.key, e.message));
        }
        assert!(text.contains("cluster.name: "), "{text}");
        assert!(text.contains("target[0].mountpoint: "), "{text}");
    }

    #[test]
    fn three_independent_problems_are_all_reported() {
        let text = edit("hostid = \"0xb2b2b2b2\"", "hostid = \"nothex\"");
        let text = edit_in(&text, "outlets = [3, 4]", "outlets = [3, 4]\noutlet = 5");
        let text = edit_in(&text, "mountpoint = \"/lustre/ost0\"", "mountpoint = \"lustre/ost0\"");
        let text = text.replacen("\"10.0.0.2:7405\", ", "", 1);
        let errs = errors(&text);
        for key in ["node[1].hostid", "fence_device[1].outlet", "target[1].mountpoint", "node[1].addresses"] {
            assert!(errs.has_key(key), "missing {key} in:\n{errs}");
        }
        assert_eq!(errs.len(), 4, "{errs}");
    }

    #[test]
    fn toml_syntax_error_is_one_error_with_position() {
        let errs = errors(&edit("name = \"n2\"", "name = \"n2"));
        assert_eq!(errs.len(), 1, "{errs}");
        let e = &errs.errors[0];
        assert_eq!(e.key, "(toml)");
        assert!(e.message.starts_with("line 15, column 11: "), "{}", e.message);
        let dup = errors(&edit("name = \"lfs-test\"", "name = \"lfs-test\"\nname = \"again\""));
        assert!(dup.errors[0].message.contains("duplicate key"), "{dup}");
    }

    #[test]
    fn unknown_keys_are_reported_with_their_path() {
        let text = edit("addresses = [\"10.0.0.2:7405\"", "adress = 1\naddresses = [\"10.0.0.2:7405\"");
        let text = edit_in(&text, "[cluster]", "colour = \"red\"\n[cluster]\nheartbeat = \"1s\"");
        let text = edit_in(&text, "kind = \"manual\"", "kind = \"manual\"\ncomment = \"x\"");
        let errs = errors(&text);
        assert_eq!(errs.get("node[1].adress").unwrap().message, "unknown key (did you mean `addresses`?)");
        assert!(errs.get("colour").unwrap().message.starts_with("unknown key"), "{errs}");
        assert_eq!(errs.get("cluster.heartbeat").unwrap().message, "unknown key (did you mean `heartbeat_interval`?)");
        assert_eq!(errs.get("fence_device[3].comment").unwrap().message, "unknown key");
        assert_eq!(errs.len(), 4, "{errs}");
        let sections = errors(&BASE.replace("[[node]]", "[[nodes]]"));
        assert_eq!(sections.get("nodes").unwrap().message, "unknown key (did you mean `node`?)");
    }

    #[test]
    fn wrong_section_shapes() {
        assert!(error_at(&BASE.replace("[[node]]", "[node]"), "(toml)").contains("duplicate key"));
        let single =
            edit("[[target]]\nname = \"lustre", "[target]\nname = \"lustre").replacen("[[target]]", "[[x]]", 1);
        assert_eq!(error_at(&single, "target"), "write [[target]] (one entry of an array of tables), not [target]");
        let text = "target = 3\n".to_owned() + BASE.replace("[[target]]", "[[old_target]]").as_str();
        assert!(error_at(&text, "target").contains("expected [[target]] entries"));
        let text = "node = [1]\n".to_owned() + BASE.replace("[[node]]", "[[old_node]]").as_str();
        assert!(error_at(&text, "node[0]").contains("expected a table"));
        let text = "cluster = 1\n".to_owned() + &BASE.replace("[cluster]", "[old_cluster]");
        assert!(error_at(&text, "cluster").contains("expected a table"));
    }

    #[test]
    fn missing_required_keys() {
        let text = edit("name = \"lfs-test\"\n", "");
        assert!(error_at(&text, "cluster.name").contains("required, e.g. name = \"lfs-mds\""));
        assert!(
            error_at(&edit("key_file = \"/etc/failoverd/cluster.key\"\n", ""), "cluster.key_file").contains("required")
        );
        assert!(error_at(&edit("links = [\"ring0\", \"ring1\"]\n", ""), "cluster.links").contains("required"));
        assert!(error_at(&edit("hostid = \"a1a1a1a1\"\n", ""), "node[0].hostid").contains("hostid"));
        assert!(error_at(&edit("program = \"fence_ipmilan\"\n", ""), "fence_device[2].program").contains("required"));
        assert!(error_at(&edit("outlets = [3, 4]\n", ""), "fence_device[1].outlets").contains("required"));
        assert!(error_at(&edit("kind = \"manual\"\n", ""), "fence_device[3].kind").contains("required"));
        assert!(error_at(&edit("pool = \"mgspool\"\n", ""), "target[0].pool").contains("required"));
        assert!(error_at(&edit("device = \"/dev/mapper/ost0\"\n", ""), "target[1].device").contains("required"));
        assert!(error_at(&edit("mountpoint = \"/lustre/mgt\"\n", ""), "target[0].mountpoint").contains("required"));
        let no_cluster = BASE.replace("[cluster]\nname = \"lfs-test\"\nkey_file = \"/etc/failoverd/cluster.key\"\nlinks = [\"ring0\", \"ring1\"]\n", "");
        assert!(error_at(&no_cluster, "cluster").contains("[cluster]"));
        assert!(!errors(&no_cluster).has_key("node[0].addresses"), "no address count check without links");
    }

    #[test]
    fn at_least_one_node() {
        let text = BASE.split("[[node]]").next().unwrap().to_owned();
        assert!(error_at(&text, "node").contains("[[node]]"));
    }

    #[test]
    fn names_are_checked() {
        assert!(
            error_at(&edit("name = \"lfs-test\"", "name = \"lfs test\""), "cluster.name").contains("A-Z a-z 0-9 _ . -")
        );
        assert!(errors(&edit("links = [\"ring0\", \"ring1\"]", "links = [\"ring0\", \"ring/1\"]"))
            .has_key("cluster.links[1]"));
        assert!(errors(&edit("name = \"n2\"", "name = \"\"")).has_key("node[1].name"));
        assert!(errors(&edit("name = \"n2\"", &format!("name = \"{}\"", "n".repeat(65)))).has_key("node[1].name"));
    }

    #[test]
    fn link_count_and_duplicates() {
        assert!(error_at(&edit("links = [\"ring0\", \"ring1\"]", "links = []"), "cluster.links").contains("1 to 8"));
        let nine = (0..9).map(|i| format!("\"r{i}\"")).collect::<Vec<_>>().join(", ");
        assert!(errors(&edit("links = [\"ring0\", \"ring1\"]", &format!("links = [{nine}]"))).has_key("cluster.links"));
        let dup = edit("links = [\"ring0\", \"ring1\"]", "links = [\"ring0\", \"ring0\"]");
        assert!(error_at(&dup, "cluster.links[1]").contains("twice"));
    }

    #[test]
    fn duplicate_names() {
        assert!(error_at(&edit("name = \"n2\"", "name = \"n1\""), "node[1].name").contains("node[0].name"));
        let dev = edit("name = \"n1-pdu\"", "name = \"n1-ipmi\"").replace("[\"n1-pdu\"]", "[\"n1-ipmi\"]");
        assert!(error_at(&dev, "fence_device[1].name").contains("fence_device[0].name"));
        assert!(
            error_at(&edit("name = \"lustre-OST0000\"", "name = \"MGT\""), "target[1].name").contains("target[0].name")
        );
    }

    #[test]
    fn addresses() {
        let text = edit("addresses = [\"10.0.0.2:7405\", \"10.1.0.2:7405\"]", "addresses = [\"10.0.0.2:7405\"]");
        assert_eq!(error_at(&text, "node[1].addresses"), "1 address but the cluster has 2 links");
        let text = edit(
            "addresses = [\"10.0.0.2:7405\", \"10.1.0.2:7405\"]",
            "addresses = [\"10.0.0.2:7405\", \"10.1.0.2:7405\", \"10.2.0.2:7405\"]",
        );
        assert_eq!(error_at(&text, "node[1].addresses"), "3 addresses but the cluster has 2 links");
        let dup = edit("\"10.1.0.2:7405\"", "\"10.1.0.1:7405\"");
        assert!(error_at(&dup, "node[1].addresses[1]").contains("node[0].addresses[1]"));
        let same_node = edit("\"10.1.0.2:7405\"", "\"10.0.0.2:7405\"");
        assert!(error_at(&same_node, "node[1].addresses[1]").contains("twice"));
        assert!(errors(&edit("\"10.1.0.2:7405\"", "\"mds2:7405\"")).has_key("node[1].addresses[1]"));
        assert!(error_at(&edit("\"10.1.0.2:7405\"", "\"10.1.0.2:0\""), "node[1].addresses[1]").contains("port 0"));
        assert!(errors(&edit("\"10.1.0.2:7405\"", "\"0.0.0.0:7405\"")).has_key("node[1].addresses[1]"));
        let v6 = valid(&edit("\"10.1.0.2:7405\"", "\"[fd00::2]:7405\""));
        assert!(v6.nodes[1].addresses[1].is_ipv6());
        let witness = BASE.to_owned() + "\n[witness]\naddress = \"10.0.0.1:7405\"\n";
        assert!(error_at(&witness, "witness.address").contains("node[0].addresses[0]"));
    }

    #[test]
    fn hostids() {
        assert!(error_at(&edit("hostid = \"0xb2b2b2b2\"", "hostid = \"a1a1a1a1\""), "node[1].hostid")
            .contains("node[0].hostid"));
        assert!(error_at(&edit("hostid = \"0xb2b2b2b2\"", "hostid = \"00000000\""), "node[1].hostid")
            .contains("zgenhostid"));
        assert!(errors(&edit("hostid = \"0xb2b2b2b2\"", "hostid = 0")).has_key("node[1].hostid"));
        assert!(error_at(&edit("hostid = \"0xb2b2b2b2\"", "hostid = \"b2b2b2b\""), "node[1].hostid")
            .contains("8 hex digits"));
        assert!(errors(&edit("hostid = \"0xb2b2b2b2\"", "hostid = \"b2b2b2bz\"")).has_key("node[1].hostid"));
        assert!(errors(&edit("hostid = \"0xb2b2b2b2\"", "hostid = 0x1b2b2b2b2")).has_key("node[1].hostid"));
        assert_eq!(valid(&edit("hostid = \"0xb2b2b2b2\"", "hostid = 0x00b2b2b2")).nodes[1].hostid, 0x00b2b2b2);
        assert_eq!(valid(&edit("hostid = \"0xb2b2b2b2\"", "hostid = \"007f0101\"")).nodes[1].hostid, 0x007f0101);
    }

    #[test]
    fn target_nodes() {
        let text = edit("nodes = [\"n1\", \"n2\"]", "nodes = [\"n1\", \"n3\"]");
        assert!(error_at(&text, "target[0].nodes[1]").contains("unknown node \"n3\""));
        assert!(error_at(&edit("nodes = [\"n1\", \"n2\"]", "nodes = []"), "target[0].nodes").contains("no node"));
        assert!(errors(&edit("nodes = [\"n1\", \"n2\"]", "nodes = [\"n1\", \"n1\"]")).has_key("target[0].nodes[1]"));
    }

    #[test]
    fn fence_levels_name_known_devices() {
        let text = edit("[[\"n1-ipmi\"], [\"n1-pdu\"]]", "[[\"n1-ipmi\"], [\"n1-pdu\", \"n1-pdu-b\"]]");
        let message = error_at(&text, "node[0].fence_levels[1][1]");
        assert!(message.contains("unknown fence_device \"n1-pdu-b\""), "{message}");
        assert!(error_at(&edit("[[\"n1-ipmi\"], [\"n1-pdu\"]]", "[[\"n1-ipmi\"], []]"), "node[0].fence_levels[1]")
            .contains("empty level"));
        assert!(errors(&edit("[[\"n1-ipmi\"], [\"n1-pdu\"]]", "[\"n1-ipmi\"]")).has_key("node[0].fence_levels[0]"));
        assert!(errors(&edit("[[\"n1-ipmi\"], [\"n1-pdu\"]]", "[[\"n1-pdu\", \"n1-pdu\"]]"))
            .has_key("node[0].fence_levels[0][1]"));
    }

    #[test]
    fn unused_device_is_only_a_warning() {
        let text = edit("[[\"n1-ipmi\"], [\"n1-pdu\"]]", "[[\"n1-ipmi\"]]");
        let c = valid(&text);
        let w = c.warnings();
        assert!(w.iter().any(|w| w.key == "fence_device[1]" && w.message.contains("not used")), "{w:?}");
    }

    #[test]
    fn a_device_fences_one_node_only() {
        let text = edit("[[\"n2-agent\"], [\"operator\"]]", "[[\"n2-agent\"], [\"n1-pdu\"], [\"operator\"]]");
        assert!(error_at(&text, "node[1].fence_levels[1][0]").contains("already fences node \"n1\""));
        let manual = edit("[[\"n1-ipmi\"], [\"n1-pdu\"]]", "[[\"n1-ipmi\"], [\"n1-pdu\"], [\"operator\"]]");
        valid(&manual);
    }

    #[test]
    fn node_without_fencing_must_say_manual() {
        let text = edit("fence_levels = [[\"n2-agent\"], [\"operator\"]]\n", "");
        let message = error_at(&text, "node[1].fence_levels");
        assert!(message.contains("add fence_levels") && message.contains("fencing = \"manual\""), "{message}");
        assert!(errors(&edit("fence_levels = [[\"n2-agent\"], [\"operator\"]]", "fence_levels = []"))
            .has_key("node[1].fence_levels"));
        let manual = valid(&edit("fence_levels = [[\"n2-agent\"], [\"operator\"]]", "fencing = \"manual\""));
        assert_eq!(manual.nodes[1].fencing, FencingMode::ManualOnly);
        assert!(manual.nodes[1].fence_levels.is_empty());
        assert!(errors(&edit("fence_levels = [[\"n2-agent\"], [\"operator\"]]", "fencing = \"devices\""))
            .has_key("node[1].fence_levels"));
        assert!(errors(&edit("fence_levels = [[\"n2-agent\"], [\"operator\"]]", "fencing = \"off\""))
            .has_key("node[1].fencing"));
    }

    #[test]
    fn manual_together_with_levels_is_rejected() {
        let text = edit(
            "fence_levels = [[\"n2-agent\"], [\"operator\"]]",
            "fence_levels = [[\"n2-agent\"]]\nfencing = \"manual\"",
        );
        assert!(error_at(&text, "node[1].fencing").contains("kind = \"manual\""));
    }

    #[test]
    fn timing_rules() {
        let text = edit(
            "links = [\"ring0\", \"ring1\"]",
            "links = [\"ring0\", \"ring1\"]\nheartbeat_interval = \"1s\"\ndead_after = \"2s\"",
        );
        let message = error_at(&text, "cluster.dead_after");
        assert!(message.contains("3 x heartbeat_interval") && message.contains("at least 3s"), "{message}");
        valid(&edit(
            "links = [\"ring0\", \"ring1\"]",
            "links = [\"ring0\", \"ring1\"]\nheartbeat_interval = \"1s\"\ndead_after = \"3s\"",
        ));
        let fast =
            edit("links = [\"ring0\", \"ring1\"]", "links = [\"ring0\", \"ring1\"]\nheartbeat_interval = \"5ms\"");
        assert!(error_at(&fast, "cluster.heartbeat_interval").contains("at least 10ms"));
        let stall = edit("links = [\"ring0\", \"ring1\"]", "links = [\"ring0\", \"ring1\"]\nstall_threshold = \"3s\"");
        assert!(errors(&stall).has_key("cluster.stall_threshold"));
        let retry =
            edit("links = [\"ring0\", \"ring1\"]", "links = [\"ring0\", \"ring1\"]\nfence_retry_initial = \"2min\"");
        assert!(errors(&retry).has_key("cluster.fence_retry_max"));
        let failures = edit("links = [\"ring0\", \"ring1\"]", "links = [\"ring0\", \"ring1\"]\nmonitor_failures = 0");
        assert!(errors(&failures).has_key("cluster.monitor_failures"));
        let poll = edit("kind = \"manual\"", "kind = \"manual\"\npoll_interval = \"30s\"");
        assert!(errors(&poll).has_key("fence_device[3].poll_interval"));
    }

    #[test]
    fn invalid_durations() {
        let text = edit(
            "links = [\"ring0\", \"ring1\"]",
            "links = [\"ring0\", \"ring1\"]\ndead_after = \"3 parsecs\"\nfence_delay = 10\nimport_timeout = \"0s\"",
        );
        let errs = errors(&text);
        assert!(errs.get("cluster.dead_after").unwrap().message.contains("is not a duration"), "{errs}");
        assert!(errs.get("cluster.fence_delay").unwrap().message.contains("duration in quotes"), "{errs}");
        assert!(errs.get("cluster.import_timeout").unwrap().message.contains("longer than 0"), "{errs}");
        assert_eq!(errs.len(), 3, "no follow-up errors from the invalid values: {errs}");
    }

    #[test]
    fn zero_fence_delay_needs_a_witness_in_two_node_clusters() {
        let text = edit("links = [\"ring0\", \"ring1\"]", "links = [\"ring0\", \"ring1\"]\nfence_delay = \"0s\"");
        assert!(errors(&text).has_key("cluster.fence_delay"));
        valid(&(text + "\n[witness]\naddress = \"10.0.0.9:7406\"\n"));
    }

    #[test]
    fn types_are_checked() {
        let text = edit("fence_priority = 10", "fence_priority = \"10\"");
        assert!(error_at(&text, "node[0].fence_priority").contains("expected an integer"));
        let text = edit("links = [\"ring0\", \"ring1\"]", "links = [\"ring0\", \"ring1\"]\nwait_for_all = \"yes\"");
        assert!(error_at(&text, "cluster.wait_for_all").contains("true or false"));
        assert!(errors(&edit("fence_priority = 10", "fence_priority = -1")).has_key("node[0].fence_priority"));
        assert!(errors(&edit("outlets = [3, 4]", "outlets = [3, 0]")).has_key("fence_device[1].outlets[1]"));
        assert!(errors(&edit("outlets = [3, 4]", "outlets = []")).has_key("fence_device[1].outlets"));
        assert!(errors(&edit("outlets = [3, 4]", "outlets = [3, 3]")).has_key("fence_device[1].outlets[1]"));
        assert!(errors(&edit("kind = \"ipmi\"", "kind = \"idrac\"")).has_key("fence_device[0].kind"));
        assert!(errors(&edit("kind = \"zfs\"", "kind = \"btrfs\"")).has_key("target[0].kind"));
    }

    #[test]
    fn keys_of_another_kind() {
        let text = edit("device = \"/dev/mapper/ost0\"", "device = \"/dev/mapper/ost0\"\npool = \"ost0pool\"");
        assert!(error_at(&text, "target[1].pool").contains("does not apply to kind \"ldiskfs\""));
        let text =
            edit("password_file = \"/etc/failoverd/n1.pw\"", "password_file = \"/etc/failoverd/n1.pw\"\noutlets = [1]");
        assert!(error_at(&text, "fence_device[0].outlets").contains("kind \"pdu-snmp\""));
        assert!(errors(&edit("kind = \"manual\"", "kind = \"manual\"\nhost = \"x\"")).has_key("fence_device[3].host"));
        assert!(errors(&edit("pool = \"mgspool\"", "pool = \"mgspool\"\ndevice = \"/dev/sda\""))
            .has_key("target[0].device"));
    }

    #[test]
    fn agent_options() {
        let text =
            edit("lanplus = \"1\" }", "lanplus = \"1\", action = \"off\", port = \"3\", password = \"secret\" }");
        let errs = errors(&text);
        for key in ["action", "port", "password"] {
            assert!(errs.has_key(&format!("fence_device[2].options.{key}")), "{key}: {errs}");
        }
        let text = edit(
            "secret_options = { password = \"/etc/failoverd/n2.pw\" }",
            "secret_options = { ip = \"relative.pw\" }",
        );
        assert!(errors(&text).has_key("fence_device[2].secret_options.ip"));
        assert!(errors(&edit("program = \"fence_ipmilan\"", "program = \"bin/fence_x\""))
            .has_key("fence_device[2].program"));
        let plug = valid(&edit("program = \"fence_ipmilan\"", "program = \"/usr/sbin/fence_ipmilan\"\nplug = 3"));
        let FenceDeviceKind::Agent(a) = &plug.device("n2-agent").unwrap().kind else { panic!("not an agent") };
        assert_eq!((a.program.as_str(), a.plug.as_deref()), ("/usr/sbin/fence_ipmilan", Some("3")));
    }

    #[test]
    fn storage_sharing() {
        let same_ds = edit("pool = \"mgspool\"\ndataset = \"mgt\"", "pool = \"ostpool\"\ndataset = \"ostpool/ost0\"");
        let same_ds = edit_in(&same_ds, "device = \"/dev/mapper/ost0\"", "pool = \"ostpool\"\ndataset = \"ost0\"")
            .replace("kind = \"ldiskfs\"", "kind = \"zfs\"");
        let errs = errors(&same_ds);
        assert!(errs.get("target[1].dataset").unwrap().message.contains("target[0].dataset"), "{errs}");
        assert!(!errs.has_key("target[1].pool"), "{errs}");
        let same_pool = edit_in(&same_ds, "dataset = \"ost0\"", "dataset = \"ost1\"");
        assert!(error_at(&same_pool, "target[1].pool").contains("pool of its own"));
        let device = edit("pool = \"mgspool\"\ndataset = \"mgt\"", "device = \"/dev/mapper/ost0\"").replacen(
            "kind = \"zfs\"",
            "kind = \"ldiskfs\"",
            1,
        );
        assert!(error_at(&device, "target[1].device").contains("target[0].device"));
        let mount = edit("mountpoint = \"/lustre/ost0\"", "mountpoint = \"/lustre/mgt/\"");
        assert!(error_at(&mount, "target[1].mountpoint").contains("target[0].mountpoint"));
        let lctl = edit("lctl_device = \"MGS\"", "lctl_device = \"lustre-OST0000\"");
        assert!(errors(&lctl).has_key("target[1].lctl_device"));
    }

    #[test]
    fn mountpoints_and_paths() {
        assert!(error_at(&edit("mountpoint = \"/lustre/mgt\"", "mountpoint = \"lustre/mgt\""), "target[0].mountpoint")
            .contains("absolute"));
        assert!(errors(&edit("mountpoint = \"/lustre/mgt\"", "mountpoint = \"/\"")).has_key("target[0].mountpoint"));
        assert!(errors(&edit("device = \"/dev/mapper/ost0\"", "device = \"mapper/ost0\"")).has_key("target[1].device"));
        assert!(errors(&edit("key_file = \"/etc/failoverd/cluster.key\"", "key_file = \"cluster.key\""))
            .has_key("cluster.key_file"));
        assert!(errors(&edit("password_file = \"/etc/failoverd/n1.pw\"", "password_file = \"n1.pw\""))
            .has_key("fence_device[0].password_file"));
    }

    #[test]
    fn pool_and_dataset() {
        let c = valid(&edit("dataset = \"mgt\"", "dataset = \"mgspool/lustre/mgt\""));
        assert_eq!(c.targets[0].kind.mount_source(), "mgspool/lustre/mgt");
        let message = error_at(&edit("dataset = \"mgt\"", "dataset = \"otherpool/mgt\""), "target[0].dataset");
        assert!(message.contains("not in pool \"mgspool\""), "{message}");
        assert!(errors(&edit("dataset = \"mgt\"", "dataset = \"mgspoolx/mgt\"")).has_key("target[0].dataset"));
        assert!(errors(&edit("dataset = \"mgt\"", "dataset = \"mgspool/mgt@snap\"")).has_key("target[0].dataset"));
        assert!(errors(&edit("pool = \"mgspool\"", "pool = \"1pool\"")).has_key("target[0].pool"));
    }

    #[test]
    fn check_command_and_nids() {
        let c = valid(&edit("start_order = 1", "start_order = 1\ncheck_command = [\"/usr/local/bin/check\", \"ost0\"]\nhealth_nids = [\"10.0.0.9@tcp\"]\nmount_options = \"abort_recov\""));
        assert_eq!(
            c.targets[1].check_command.as_deref(),
            Some(&["/usr/local/bin/check".to_owned(), "ost0".to_owned()][..])
        );
        assert_eq!(c.targets[1].health_nids, vec!["10.0.0.9@tcp".to_owned()]);
        assert!(
            errors(&edit("start_order = 1", "start_order = 1\ncheck_command = []")).has_key("target[1].check_command")
        );
        assert!(errors(&edit("start_order = 1", "start_order = 1\ncheck_command = [\"./check\"]"))
            .has_key("target[1].check_command[0]"));
        assert!(errors(&edit("start_order = 1", "start_order = 1\nhealth_nids = [\"10.0.0.9\"]"))
            .has_key("target[1].health_nids[0]"));
    }

    #[test]
    fn digest_is_stable_and_ignores_node_local_keys() {
        let a = valid(BASE);
        assert_eq!(a.digest(), valid(BASE).digest());
        let local = edit("links = [\"ring0\", \"ring1\"]", "links = [\"ring0\", \"ring1\"]\nstate_dir = \"/srv/failoverd\"\ncontrol_socket = \"/run/x.sock\"\nnotify = \"/bin/true\"\nmetrics_listen = \"127.0.0.1:9999\"\nlock_memory = true\ncontrol_allowed_uids = [1000]\nnext_key_file = \"/etc/failoverd/next.key\"");
        let local = edit_in(&local, "key_file = \"/etc/failoverd/cluster.key\"", "key_file = \"/root/other.key\"");
        assert_eq!(valid(&local).digest(), a.digest());
        // Comments, spacing and spelled-out defaults do not matter either.
        let spelled = edit(
            "links = [\"ring0\", \"ring1\"]",
            "links = [ \"ring0\",\"ring1\" ] # two rings\nheartbeat_interval = \"250ms\"",
        );
        assert_eq!(valid(&spelled).digest(), a.digest());
    }

    #[test]
    fn digest_changes_with_every_cluster_wide_key() {
        let base = valid(BASE).digest();
        let changes = [
            ("name = \"lfs-test\"", "name = \"lfs-test2\""),
            ("links = [\"ring0\", \"ring1\"]", "links = [\"ring0\", \"ringB\"]"),
            ("links = [\"ring0\", \"ring1\"]", "links = [\"ring0\", \"ring1\"]\nheartbeat_interval = \"200ms\""),
            ("links = [\"ring0\", \"ring1\"]", "links = [\"ring0\", \"ring1\"]\ndead_after = \"4s\""),
            ("links = [\"ring0\", \"ring1\"]", "links = [\"ring0\", \"ring1\"]\nfence_delay = \"11s\""),
            ("links = [\"ring0\", \"ring1\"]", "links = [\"ring0\", \"ring1\"]\nwait_for_all = false"),
            ("links = [\"ring0\", \"ring1\"]", "links = [\"ring0\", \"ring1\"]\nimport_timeout = \"121s\""),
            ("links = [\"ring0\", \"ring1\"]", "links = [\"ring0\", \"ring1\"]\nfence_retry_max = \"61s\""),
            ("\"10.1.0.2:7405\"", "\"10.1.0.3:7405\""),
            ("hostid = \"a1a1a1a1\"", "hostid = \"a1a1a1a2\""),
            ("fence_priority = 10", "fence_priority = 11"),
            ("outlets = [3, 4]", "outlets = [4, 3]"),
            ("host = \"10.0.9.1\"", "host = \"10.0.9.5\""),
            ("nodes = [\"n1\", \"n2\"]", "nodes = [\"n2\", \"n1\"]"),
            ("lctl_device = \"MGS\"", "lctl_device = \"MGS2\""),
            ("start_order = 1", "start_order = 2"),
        ];
        for (from, to) in changes {
            assert_ne!(valid(&edit(from, to)).digest(), base, "digest unchanged by {to}");
        }
        let witness = BASE.to_owned() + "\n[witness]\naddress = \"10.0.0.9:7406\"\n";
        assert_ne!(valid(&witness).digest(), base);
    }

    #[test]
    fn target_digest() {
        let a = valid(BASE);
        let mgt = a.target_digest("MGT").unwrap();
        assert_eq!(valid(BASE).target_digest("MGT"), Some(mgt));
        assert_ne!(a.target_digest("lustre-OST0000"), Some(mgt));
        assert_eq!(a.target_digest("nope"), None);
        let other = valid(&edit("nodes = [\"n1\", \"n2\"]", "nodes = [\"n2\", \"n1\"]"));
        assert_ne!(other.target_digest("MGT"), Some(mgt));
        assert_eq!(other.target_digest("lustre-OST0000"), a.target_digest("lustre-OST0000"));
    }

    #[test]
    fn warnings() {
        assert!(valid(BASE).warnings().is_empty(), "{:?}", valid(BASE).warnings());
        let one_link = BASE
            .replace("links = [\"ring0\", \"ring1\"]", "links = [\"ring0\"]")
            .replace(", \"10.1.0.1:7405\"", "")
            .replace(", \"10.1.0.2:7405\"", "");
        assert!(valid(&one_link).warnings().iter().any(|w| w.key == "cluster.links"));
        let equal = edit("fence_priority = 10\n", "");
        assert!(valid(&equal).warnings().iter().any(|w| w.key == "node[1].fence_priority"));
        let single = edit("nodes = [\"n1\", \"n2\"]", "nodes = [\"n1\"]");
        assert!(valid(&single).warnings().iter().any(|w| w.key == "target[0].nodes"));
        // an MDT0000 that runs first on the MGS's node: Imperative Recovery cannot help when that node fails
        let mdt = edit("lctl_device = \"MGS\"\n", "lctl_device = \"MGS\"\n").replacen("device = \"/dev/mapper/ost0\"", "device = \"/dev/mapper/mdt0\"\nlctl_device = \"lustre-MDT0000\"", 1);
        assert!(valid(&mdt).warnings().iter().all(|w| !w.message.contains("Imperative Recovery")), "{:?}", valid(&mdt).warnings());
        let together = mdt.replacen("nodes = [\"n2\", \"n1\"]", "nodes = [\"n1\", \"n2\"]", 1);
        let w = valid(&together).warnings();
        assert!(w.iter().any(|w| w.key == "target[1].nodes" && w.message.contains("Imperative Recovery cannot help")), "{w:?}");
    }

    #[test]
    fn key_files() {
        let dir = tempfile::tempdir().unwrap();
        let short = dir.path().join("short.key");
        std::fs::write(&short, "0123456789ab\n").unwrap();
        let message = load_key(&short).unwrap_err().to_string();
        assert_eq!(
            message,
            format!("{}: 12 bytes, need at least 32 (make one with `failoverd keygen --out FILE`)", short.display())
        );
        let hex = dir.path().join("hex.key");
        std::fs::write(&hex, format!("{}\n", "ab".repeat(32))).unwrap();
        assert_eq!(load_key(&hex).unwrap(), "ab".repeat(32).into_bytes());
        let raw = dir.path().join("raw.key");
        std::fs::write(&raw, [7u8; 32]).unwrap();
        assert_eq!(load_key(&raw).unwrap(), vec![7u8; 32]);
        assert!(load_key(&dir.path().join("missing.key")).unwrap_err().to_string().contains("cannot read"));

        let text = edit(
            "key_file = \"/etc/failoverd/cluster.key\"",
            &format!(
                "key_file = \"{}\"\nnext_key_file = \"{}\"",
                short.display(),
                dir.path().join("missing.key").display()
            ),
        );
        let file = dir.path().join("failoverd.toml");
        std::fs::write(&file, &text).unwrap();
        let errs = Config::load(&file).unwrap_err();
        assert_eq!(errs.get("cluster.key_file").unwrap().message, message);
        assert!(errs.has_key("cluster.next_key_file"), "{errs}");
        assert!(Config::load_with(&file, KeyCheck::Skip).is_ok());
        let good = edit("key_file = \"/etc/failoverd/cluster.key\"", &format!("key_file = \"{}\"", hex.display()));
        std::fs::write(&file, good).unwrap();
        assert!(Config::load(&file).is_ok());
        assert_eq!(Config::load(&dir.path().join("none.toml")).unwrap_err().errors[0].key, "(file)");
    }

    #[test]
    fn helpers() {
        assert_eq!(edit_distance("adress", "addresses"), 3);
        assert_eq!(suggest("fence_level", &["fence_levels", "fencing"]), Some("fence_levels"));
        assert_eq!(suggest("zzz", &["name", "kind"]), None);
        assert!(related_keys("node[1]", "node[1].addresses[0]"));
        assert!(!related_keys("node[1]", "node[10].name"));
        assert_eq!(known_fields::<RawWitness>(), &["address"]);
    }
}

