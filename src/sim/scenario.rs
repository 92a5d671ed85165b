//! Scenario files (TOML): a cluster, a fault schedule and expectations.
//!
//! ```toml
//! [scenario]
//! name = "owner-crash"
//! description = "mds1 crashes; mds2 fences it and takes MGT and MDT0000 over"
//! duration = "3m"
//! config = "../config/two-node-mds.toml"   # or an inline [config] table with the config schema
//!
//! [world]
//! link_delay = "1ms"        # one-way delay per datagram
//! link_jitter = "1ms"       # + uniform random 0..jitter
//! multihost = true          # pools have multihost=on (MMP)
//! initial_owners = { MGT = "mds1" }   # imported+mounted there at t=0 (default: the cluster starts them)
//! orphans = "killed"        # a restarted daemon's leftover commands: killed | unkillable
//! openzfs = "2.1"           # MMP timings of OpenZFS 2.1 (one activity check) or 2.3 (two)
//! domain = "lab.example"    # hosts' uname -n is <node>.<domain> (what ZFS writes into labels)
//! lustre_clients = 8        # clients that reconnect and replay after a failover (Lustre recovery)
//! lustre_clients_lost = 0   # of them, never coming back: recovery lasts the soft window
//!
//! [config_overlay.cluster]   # every node (and the world) runs with the config overlaid with these keys
//! disk_heartbeat = "/dev/disk/by-id/dm-name-hb"
//!
//! [node_config.mds2.cluster]  # mds2 runs with the cluster's config overlaid with these keys (an operator's
//! dead_after = "5s"           # drift); [[node_config.mds2.target]] entries overlay the target of that name
//!
//! [[fault]]
//! at = "60s"
//! action = "crash"          # crash | power-off | power-on | restart | partition | cut | heal | loss | delay |
//! node = "mds1"             # bmc | pdu | migrate | replay | storage | maintenance | confirm-fenced | standby |
//!                           # pause | resume | clock | witness-cut | settle
//!
//! [expect]
//! owners = { MGT = "mds2" }
//! max_detect = "5s"
//! max_failover = "90s"
//! max_fences = 1
//! overlapping_imports = true   # two pools' imports ran at once on one host
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::config::Config;

/// A whole scenario, parsed and with its config validated.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    pub path: PathBuf,
    pub duration: Duration,
    pub config: Config,
    pub world: WorldSettings,
    pub faults: Vec<Fault>,
    pub expect: Expect,
    /// Nodes that run with another configuration than `config` (`[node_config.NODE]` overlays).
    pub node_configs: BTreeMap<String, Config>,
}

/// Settings of the simulated world.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorldSettings {
    #[serde(default = "default_delay", with = "humantime_serde")]
    pub link_delay: Duration,
    #[serde(default = "default_delay", with = "humantime_serde")]
    pub link_jitter: Duration,
    #[serde(default = "yes")]
    pub multihost: bool,
    #[serde(default)]
    pub initial_owners: BTreeMap<String, String>,
    /// What happens to the commands a daemon left running when it restarts on a powered host: `killed` (the
    /// daemon's start kills them and waits, as `runtime/orphans.rs` does) or `unkillable` (stuck in the
    /// kernel: they run to their end, and the new daemon waits for that).
    #[serde(default)]
    pub orphans: OrphanFate,
    /// The OpenZFS release whose timings the simulated SAN follows: `2.1` (one MMP activity check on a forced
    /// import, ~25 s) or `2.3` (two checks, 43-50 s, as measured on 2.3.2).
    #[serde(default)]
    pub openzfs: ZfsRelease,
    /// Hosts' `uname -n` is `<node>.<domain>` (fully qualified), which ZFS writes into pool labels.
    #[serde(default)]
    pub domain: Option<String>,
    /// Lustre clients of the file system: they reconnect and replay after a failover (the recovery window of
    /// `sim/recovery.rs`); 0: no recovery anywhere.
    #[serde(default = "default_clients")]
    pub lustre_clients: u32,
    /// Clients that never come back after a failover: recovery then lasts the whole soft window.
    #[serde(default)]
    pub lustre_clients_lost: u32,
}

fn default_clients() -> u32 {
    super::recovery::DEFAULT_CLIENTS
}

/// See [`WorldSettings::orphans`].
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum OrphanFate {
    #[default]
    Killed,
    Unkillable,
}

/// See [`WorldSettings::openzfs`].
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
pub enum ZfsRelease {
    #[default]
    #[serde(rename = "2.1")]
    V2_1,
    #[serde(rename = "2.3")]
    V2_3,
}

impl ZfsRelease {
    /// Percent of forced imports whose MMP activity check runs twice.
    pub fn forced_double_check_percent(self) -> u32 {
        match self {
            ZfsRelease::V2_1 => 0,
            ZfsRelease::V2_3 => 100,
        }
    }
}

fn default_delay() -> Duration {
    Duration::from_millis(1)
}

fn yes() -> bool {
    true
}

impl Default for WorldSettings {
    fn default() -> Self {
        WorldSettings {
            link_delay: default_delay(),
            link_jitter: default_delay(),
            multihost: true,
            initial_owners: BTreeMap::new(),
            orphans: OrphanFate::Killed,
            openzfs: ZfsRelease::V2_1,
            domain: None,
            lustre_clients: default_clients(),
            lustre_clients_lost: 0,
        }
    }
}

/// One scheduled fault or operator action.
#[derive(Clone, Debug, PartialEq)]
pub struct Fault {
    pub at: Duration,
    pub action: FaultAction,
}

impl<'de> Deserialize<'de> for Fault {
    /// `at` plus the action's own keys; unknown keys are errors (serde's `flatten` cannot say so).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Fault, D::Error> {
        use serde::de::Error;
        let mut table = toml::Table::deserialize(d)?;
        let at = table.remove("at").ok_or_else(|| D::Error::missing_field("at"))?;
        let at = at.as_str().ok_or_else(|| D::Error::custom("`at` must be a duration string like \"30s\""))?;
        let at = humantime::parse_duration(at).map_err(|e| D::Error::custom(format!("at: {e}")))?;
        let action = FaultAction::deserialize(toml::Value::Table(table)).map_err(D::Error::custom)?;
        Ok(Fault { at, action })
    }
}

/// What happens at a fault's time.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(tag = "action", rename_all = "kebab-case", deny_unknown_fields)]
pub enum FaultAction {
    /// The daemon dies (SIGKILL); the host stays powered, its pools stay imported.
    Crash { node: String },
    /// The host loses power.
    PowerOff { node: String },
    /// The host gets power back and boots (a new daemon incarnation).
    PowerOn { node: String },
    /// The daemon restarts (crash then start again) on a powered host.
    Restart { node: String },
    /// Cut the nodes of each group from the nodes of the others, on `link` or on all links.
    Partition { groups: Vec<Vec<String>>, link: Option<usize>, #[serde(default)] witness_with: Option<String> },
    /// One-way loss: `to` stops receiving what `from` sends (on `link`, or all links); `from` still hears `to`.
    Cut { from: String, to: String, link: Option<usize> },
    /// Undo partitions (on `link`, or all).
    Heal { link: Option<usize> },
    /// Random loss on a link (0.0–1.0).
    Loss { link: usize, rate: f64 },
    /// Extra one-way delay on a link.
    Delay { link: usize, #[serde(with = "humantime_serde")] delay: Duration },
    /// A BMC fault: ok | unreachable | slow | lying | wrong-password.
    Bmc { node: String, fault: String, #[serde(default, with = "humantime_serde::option")] delay: Option<Duration> },
    /// A PDU fault: ok | unreachable.
    Pdu { node: String, fault: String },
    /// Operator: controlled migration, asked on `via` (default: the target's current owner... any live node).
    Migrate { target: String, to: String, via: Option<String> },
    /// Replay every datagram captured from `node` so far to every other node.
    Replay { node: String },
    /// A storage fault on a host: suspend-pool | not-healthy | healthy | umount-hang | import-fail |
    /// import-slow (imports take 60 s longer) | mount-fail | clear | freeze | thaw; of the target's pool:
    /// degraded (a disk failed, the pool serves data) | foreign-label (the label names a host outside the
    /// cluster); and its path to the disk heartbeat device
    /// (`[cluster] disk_heartbeat`): path-down (every round fails with an I/O error) | path-stall (rounds
    /// hang) | path-restore.
    Storage { node: String, fault: String, target: Option<String> },
    /// Operator: cluster maintenance on/off, asked on `via`.
    Maintenance { on: bool, via: String },
    /// Operator: `failoverd confirm-fenced NODE`, asked on `via`. With `checked = true` the operator first
    /// looked at the node, as the README tells them to, and confirms only when it is really off (the swarm
    /// draws this; a false confirmation is the operator's double import, not failoverd's).
    ConfirmFenced { node: String, via: String, #[serde(default)] checked: bool },
    /// Operator: `failoverd standby NODE` (`on = true`) or `unstandby NODE`, asked on `via`.
    Standby { node: String, on: bool, via: String },
    /// Operator: `failoverd override-wait-for-all`, asked on `via`.
    OverrideWaitForAll { via: String },
    /// A second daemon claims `node` (`on = true`: started on another host, with a higher incarnation) or
    /// stops (`on = false`).
    Duplicate { node: String, on: bool },
    /// Every fault stops: links healed (no cut, loss or delay; the witness reachable), device and storage
    /// faults cleared, powered-off hosts powered on, a daemon started where none runs, paused daemons resumed,
    /// maintenance and standby undone. Liveness is judged from here (see `sim/world/liveness.rs`).
    Settle,
    /// The daemon of `node` is stopped (SIGSTOP, same incarnation) for `duration` (or until `resume` or
    /// `settle`): it reads nothing, its commands run on, and it then sees everything at once, late.
    Pause { node: String, #[serde(default, with = "humantime_serde::option")] duration: Option<Duration> },
    /// SIGCONT for a paused daemon.
    Resume { node: String },
    /// The timers of `node`'s daemon fire `late` late (a late or skewed local clock, an overloaded host);
    /// `late = "0s"` ends it.
    Clock { node: String, #[serde(with = "humantime_serde")] late: Duration },
    /// The witness becomes unreachable from `nodes` (both ways) until `heal` or `settle`.
    WitnessCut { nodes: Vec<String> },
}

/// What must hold at the end of a run (safety invariants are always checked).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Where each target must run at the end.
    #[serde(default)]
    pub owners: BTreeMap<String, String>,
    /// Targets that must run nowhere at the end.
    #[serde(default)]
    pub not_running: Vec<String>,
    /// Every target must run on exactly one powered host at the end (default true unless `not_running`).
    pub liveness: Option<bool>,
    #[serde(default, with = "humantime_serde::option")]
    pub max_detect: Option<Duration>,
    #[serde(default, with = "humantime_serde::option")]
    pub max_failover: Option<Duration>,
    pub max_fences: Option<u32>,
    pub min_fences: Option<u32>,
    /// No node may be declared dead while it was alive and reachable.
    #[serde(default)]
    pub no_false_failovers: bool,
    /// Event names (as in JSON: `target_blocked`, `fence_failed`...) that must have happened.
    #[serde(default)]
    pub events: Vec<String>,
    /// Event names that must never happen.
    #[serde(default)]
    pub never_events: Vec<String>,
    /// Nodes that must be powered off at the end.
    #[serde(default)]
    pub powered_off: Vec<String>,
    /// Commands (argv prefix, space-joined) that must never be run, e.g. "zpool import -f".
    #[serde(default)]
    pub never_commands: Vec<String>,
    /// Text that must appear in the message (`notify`'s `message`, status) of some event, e.g.
    /// "cluster.dead_after: 3s here, 5s on mds2".
    #[serde(default)]
    pub messages: Vec<String>,
    /// At least one `zpool import` must start on a host while another pool's import runs there (the pools
    /// of a takeover or move are imported side by side, not one after the other).
    #[serde(default)]
    pub overlapping_imports: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    scenario: RawHead,
    config: Option<toml::Table>,
    #[serde(default)]
    world: Option<WorldSettings>,
    #[serde(default)]
    fault: Vec<Fault>,
    #[serde(default)]
    expect: Expect,
    #[serde(default)]
    node_config: BTreeMap<String, toml::Table>,
    #[serde(default)]
    config_overlay: Option<toml::Table>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHead {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(with = "humantime_serde")]
    duration: Duration,
    config: Option<PathBuf>,
}

/// Lay `over` onto `base`: tables merge key by key, an array of tables merges entry by entry on `name` (an
/// entry naming nothing in `base` is added), anything else is replaced.
fn overlay(base: &mut toml::Table, over: &toml::Table) {
    use toml::Value;
    for (key, value) in over {
        match (base.get_mut(key), value) {
            (Some(Value::Table(b)), Value::Table(o)) => overlay(b, o),
            (Some(Value::Array(b)), Value::Array(o)) if o.iter().all(|v| v.get("name").is_some()) && !o.is_empty() => {
                for entry in o {
                    let Some(t) = entry.as_table() else { continue };
                    match b.iter_mut().find(|x| x.get("name") == entry.get("name")) {
                        Some(Value::Table(existing)) => overlay(existing, t),
                        _ => b.push(entry.clone()),
                    }
                }
            }
            _ => {
                base.insert(key.clone(), value.clone());
            }
        }
    }
}

impl Scenario {
    /// Read and validate a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Scenario::parse(&text, path)
    }

    /// Parse a scenario; `path` locates a `config = "..."` file relative to the scenario.
    pub fn parse(text: &str, path: &Path) -> Result<Scenario, String> {
        let raw: RawScenario = toml::from_str(text).map_err(|e| format!("{}: {e}", path.display()))?;
        let config_text = match (&raw.scenario.config, &raw.config) {
            (Some(file), None) => {
                let full = path.parent().unwrap_or(Path::new(".")).join(file);
                std::fs::read_to_string(&full).map_err(|e| format!("{}: scenario.config: {}: {e}", path.display(), full.display()))?
            }
            (None, Some(table)) => toml::to_string(table).map_err(|e| format!("{}: config: {e}", path.display()))?,
            (Some(_), Some(_)) => return Err(format!("{}: give either scenario.config or a [config] table, not both", path.display())),
            (None, None) => return Err(format!("{}: no cluster: add scenario.config = \"FILE\" or a [config] table", path.display())),
        };
        let config_text = match &raw.config_overlay {
            Some(over) => {
                let mut table: toml::Table = config_text.parse().map_err(|e| format!("{}: config: {e}", path.display()))?;
                overlay(&mut table, over);
                toml::to_string(&table).map_err(|e| format!("{}: config_overlay: {e}", path.display()))?
            }
            None => config_text,
        };
        let config = Config::from_toml_str(&config_text).map_err(|e| format!("{}: config: {e}", path.display()))?;
        let mut node_configs = BTreeMap::new();
        for (node, over) in &raw.node_config {
            if config.node(node).is_none() {
                return Err(format!("{}: node_config.{node}: unknown node", path.display()));
            }
            let mut table: toml::Table = config_text.parse().map_err(|e| format!("{}: config: {e}", path.display()))?;
            overlay(&mut table, over);
            let text = toml::to_string(&table).map_err(|e| format!("{}: node_config.{node}: {e}", path.display()))?;
            let c = Config::from_toml_str(&text).map_err(|e| format!("{}: node_config.{node}: {e}", path.display()))?;
            node_configs.insert(node.clone(), c);
        }
        let s = Scenario {
            name: raw.scenario.name,
            description: raw.scenario.description,
            path: path.to_path_buf(),
            duration: raw.scenario.duration,
            config,
            world: raw.world.unwrap_or_default(),
            faults: raw.fault,
            expect: raw.expect,
            node_configs,
        };
        s.check_names()?;
        Ok(s)
    }

    /// Every node and target a fault or expectation names must exist.
    fn check_names(&self) -> Result<(), String> {
        let node_ok = |n: &str| self.config.node(n).is_some();
        let target_ok = |t: &str| self.config.target(t).is_some();
        let mut bad = Vec::new();
        for (i, f) in self.faults.iter().enumerate() {
            let nodes: Vec<&str> = match &f.action {
                FaultAction::Crash { node } | FaultAction::PowerOff { node } | FaultAction::PowerOn { node } | FaultAction::Restart { node } => vec![node],
                FaultAction::Bmc { node, .. } | FaultAction::Pdu { node, .. } | FaultAction::Replay { node } | FaultAction::Storage { node, .. } => vec![node],
                FaultAction::Duplicate { node, .. } | FaultAction::Pause { node, .. } | FaultAction::Resume { node } => vec![node],
                FaultAction::Clock { node, .. } => vec![node],
                FaultAction::WitnessCut { nodes } => nodes.iter().map(String::as_str).collect(),
                FaultAction::Partition { groups, .. } => groups.iter().flatten().map(String::as_str).collect(),
                FaultAction::Cut { from, to, .. } => vec![from, to],
                FaultAction::Migrate { to, via, target } => {
                    if !target_ok(target) {
                        bad.push(format!("fault[{i}].target: unknown target {target}"));
                    }
                    std::iter::once(to.as_str()).chain(via.as_deref()).collect()
                }
                FaultAction::Maintenance { via, .. } | FaultAction::OverrideWaitForAll { via } => vec![via],
                FaultAction::ConfirmFenced { node, via, .. } | FaultAction::Standby { node, via, .. } => vec![node, via],
                _ => vec![],
            };
            for n in nodes.into_iter().filter(|n| !node_ok(n)) {
                bad.push(format!("fault[{i}]: unknown node {n}"));
            }
            if let FaultAction::Loss { link, .. } | FaultAction::Delay { link, .. } = f.action {
                if link >= self.config.link_count() {
                    bad.push(format!("fault[{i}].link: {link} but the cluster has {} links", self.config.link_count()));
                }
            }
        }
        for (t, n) in self.expect.owners.iter().chain(self.world.initial_owners.iter()) {
            if !target_ok(t) {
                bad.push(format!("unknown target {t}"));
            }
            if !node_ok(n) {
                bad.push(format!("unknown node {n}"));
            }
        }
        if bad.is_empty() {
            Ok(())
        } else {
            Err(format!("{}: {}", self.path.display(), bad.join("; ")))
        }
    }
}
