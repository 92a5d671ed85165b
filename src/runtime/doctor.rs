//! `failoverd doctor`: the wiki's warnings about Lustre failover on ZFS, checked on this host against the
//! configuration, before a failure shows them the hard way.
//!
//! Every check gives one [`Check`]: `ok`, `warn` or `FAIL`, what was checked, what was found, and for a
//! problem the fix. The checks, in the order printed:
//!
//! 1. **config**: the file parses and validates, and names this node.
//! 2. **hostid**: `/etc/hostid` exists, holds exactly 4 bytes (the 32-bit hostid in host byte order, as
//!    `zgenhostid` writes it with `fwrite(&hostid, 1, 4, fp)` and glibc's `gethostid` reads it), is not 0, is
//!    this node's configured `hostid` and no peer's. MMP (`multihost=on`) only protects a pool from a second
//!    import when every host has its own hostid, and the zdb label rule of a forced takeover compares it.
//!    When the spl module is loaded, the hostid it uses (`/proc/sys/kernel/spl/hostid`) must be the same:
//!    it reads `/etc/hostid` when it loads, so an edited file counts only after a reload or a reboot.
//! 3. **pools**: every ZFS pool of a target this node may run has `multihost=on` and `cachefile=none`, read
//!    with one `zpool get -H -o name,property,value multihost,cachefile POOL...`. A pool that is not imported
//!    here (`cannot open 'POOL': no such pool` on stderr, exit 1, the other pools still printed) is a warning:
//!    its properties can only be read where it is imported. ldiskfs targets have no pool and are skipped.
//! 4. **mount points** of this node's targets exist as directories, or can be made: their nearest existing
//!    ancestor is a writable directory (the start sequence runs `mkdir -p`). Nothing is created.
//! 5. **secret files** this node reads: `cluster.key_file`, `cluster.next_key_file`, and the password,
//!    community and `secret_options` files of the fence devices that fence its peers. Mode 0400 or 0600
//!    (FAIL when group or others may read or write, warn for another owner-only mode), owned by root (warn).
//! 6. **tools**: every program this node runs is on `PATH` and executable: the storage tools of its targets
//!    (`zpool`, `zdb`, `zfs` for ZFS; `mount`, `umount`, `mkdir`, `df`, `lctl`), the fence tools of the
//!    devices that fence its peers (`ipmitool`, `snmpset`/`snmpget`, the agent programs) and the `notify`
//!    program.
//!
//! 7. **disk heartbeat** (`cluster.disk_heartbeat`, when set): the device exists, opens with
//!    `O_RDWR|O_DIRECT|O_DSYNC`, holds a 4096-byte slot for every node, carries no ZFS label (`zdb -l DEVICE`
//!    exits 2) and is no vdev of an imported pool (`zpool status -P`); then every slot is read twice
//!    (`2 * heartbeat_interval` apart) to show whether each node's daemon writes it. Nothing is written.
//!
//! Whether each fence device answers `status` is a separate probe added to the same list (see
//! [`Check`]): the list is a plain `Vec<Check>` that any check can append to.

use std::collections::BTreeSet;
use std::fmt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use nix::unistd::{access, AccessFlags};

use crate::command::{Command, CommandResult, Exit};
use crate::config::{load_key, Config, FenceDeviceKind, KeyCheck, TargetKind};
use crate::storage::parse::{parse_hostid_hex, parse_zpool_get};

/// Where the hostid file is, by default.
pub const HOSTID_FILE: &str = "/etc/hostid";

/// Where the loaded spl module shows its hostid.
pub const SPL_HOSTID_FILE: &str = "/proc/sys/kernel/spl/hostid";

/// Timeout of the `zpool get` run by the pool check.
pub const ZPOOL_TIMEOUT: Duration = Duration::from_secs(30);

/// `failoverd doctor`.
#[derive(clap::Args, Debug)]
pub struct DoctorArgs {
    /// The cluster configuration file.
    #[arg(long, short, value_name = "FILE", default_value = crate::manpages::DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// This node's name in the configuration (default: the host name, or its part before the first dot).
    #[arg(long, value_name = "NAME")]
    pub node: Option<String>,
    /// The hostid file to check (tests).
    #[arg(long, value_name = "PATH", default_value = HOSTID_FILE, hide = true)]
    pub hostid_file: PathBuf,
    /// The spl module's hostid to check (tests).
    #[arg(long, value_name = "PATH", default_value = SPL_HOSTID_FILE, hide = true)]
    pub spl_hostid_file: PathBuf,
    /// This host's `uname -n` instead of the real one (tests).
    #[arg(long, value_name = "NAME", hide = true)]
    pub uname: Option<String>,
}

/// How a check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Nothing to do.
    Ok,
    /// Worth a look; failover can still work.
    Warn,
    /// Failover is unsafe or will not work until this is fixed.
    Fail,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
        })
    }
}

/// The result of one check: one line of `failoverd doctor`'s output. Doctor's checks are a `Vec<Check>`, so
/// that more (the fence devices' `status` probe) can be appended by whoever runs them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub level: Level,
    /// What was checked, e.g. `hostid` or `pool ost0pool multihost`.
    pub what: String,
    /// What was found.
    pub detail: String,
    /// How to fix it (for warn and FAIL).
    pub fix: Option<String>,
}

impl Check {
    /// A passed check.
    pub fn ok(what: impl Into<String>, detail: impl Into<String>) -> Check {
        Check { level: Level::Ok, what: what.into(), detail: detail.into(), fix: None }
    }

    /// A warning, with its fix.
    pub fn warn(what: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check { level: Level::Warn, what: what.into(), detail: detail.into(), fix: Some(fix.into()) }
    }

    /// A failed check, with its fix.
    pub fn fail(what: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check { level: Level::Fail, what: what.into(), detail: detail.into(), fix: Some(fix.into()) }
    }
}

/// `ok    what: detail` or `FAIL  what: detail; fix: ...`.
impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:<4}  {}: {}", self.level.to_string(), self.what, self.detail)?;
        if let Some(fix) = &self.fix {
            write!(f, "; fix: {fix}")?;
        }
        Ok(())
    }
}

/// The files doctor reads besides the configuration (replaceable for tests).
#[derive(Clone, Debug)]
pub struct HostFiles {
    pub hostid: PathBuf,
    pub spl_hostid: PathBuf,
    /// This host's `uname -n` instead of the real one (tests).
    pub uname: Option<String>,
}

impl Default for HostFiles {
    fn default() -> HostFiles {
        HostFiles { hostid: HOSTID_FILE.into(), spl_hostid: SPL_HOSTID_FILE.into(), uname: None }
    }
}

/// `failoverd doctor --config FILE [--node NAME]`: print every check, then a summary; exit 1 on any FAIL.
pub fn run(args: DoctorArgs) -> ExitCode {
    let files = HostFiles { hostid: args.hostid_file, spl_hostid: args.spl_hostid_file, uname: args.uname };
    let checks = checks_for_file(&args.config, args.node.as_deref(), &files);
    // every command doctor runs has ended: from here a closed stdout may end it quietly
    super::cli::end_quietly_when_the_reader_goes();
    for c in &checks {
        println!("{c}");
    }
    let count = |l: Level| checks.iter().filter(|c| c.level == l).count();
    let fails = count(Level::Fail);
    println!("doctor: {} ok, {} warn, {fails} FAIL", count(Level::Ok), count(Level::Warn));
    if fails > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Load the configuration and run every check. A configuration that does not load gives its errors as FAIL
/// lines and nothing else.
pub fn checks_for_file(config_path: &Path, node: Option<&str>, files: &HostFiles) -> Vec<Check> {
    let what = format!("config {}", config_path.display());
    let cfg = match Config::load_with(config_path, KeyCheck::Skip) {
        Ok(c) => c,
        Err(errors) => {
            return errors
                .iter()
                .map(|e| Check::fail(&what, e.to_string(), "correct the file (`failoverd check-config` lists every problem)"))
                .collect()
        }
    };
    let node = match super::daemon::resolve_node(&cfg, node) {
        Ok(n) => n,
        Err(e) => return vec![Check::fail(&what, e.to_string(), "pass --node NAME with this host's [[node]] name")],
    };
    let mut out = vec![Check::ok(
        &what,
        format!("node {node} of cluster {} ({}, {})", cfg.cluster.name, count(cfg.nodes.len(), "node"), count(cfg.targets.len(), "target")),
    )];
    out.extend(checks(&cfg, &node, files));
    out
}

/// Every check of this host as `node` of `cfg` (see the module documentation for the list).
pub fn checks(cfg: &Config, node: &str, files: &HostFiles) -> Vec<Check> {
    let mut out = Vec::new();
    out.extend(check_hostid(cfg, node, &files.hostid));
    out.extend(check_spl_hostid(cfg, node, &files.spl_hostid));
    if cfg.targets.iter().any(|t| t.kind.pool().is_some()) {
        let uname = match &files.uname {
            Some(u) => u.clone(),
            None => nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default(),
        };
        out.extend(check_label_hostname(cfg, node, &uname));
    }
    let pools = pools_of(cfg, node);
    if !pools.is_empty() {
        let result = run_blocking(&zpool_get_command(&pools));
        out.extend(judge_pools(&pools, &result));
    }
    out.extend(check_mountpoints(cfg, node));
    out.extend(check_secret_files(cfg, node));
    out.extend(check_tools(cfg, node));
    out.extend(check_fence_devices(cfg, node));
    out.extend(check_disk_heartbeat(cfg, node));
    for (key, message) in cfg.imperative_recovery_warnings() {
        out.push(Check::warn(format!("Lustre recovery ({key})"), message, "see README, takeover step 9 (Lustre recovery)"));
    }
    out
}

// ----- fence devices ---------------------------------------------------------------------------------------

/// Every fence device this node would use against each peer answers `status` (and an agent declares every
/// option configured for it): this node fences its peers, never itself.
pub fn check_fence_devices(cfg: &Config, node: &str) -> Vec<Check> {
    let mut out = Vec::new();
    for peer in cfg.nodes.iter().filter(|n| n.name != node) {
        let probes = super::fence_probe::probe_node(cfg, &peer.name);
        if probes.is_empty() {
            out.push(Check::warn(
                format!("fencing of {}", peer.name),
                "no fence device: a takeover from it waits for `failoverd confirm-fenced`",
                format!("add fence_levels to node {} if it has a BMC or a switched PDU", peer.name),
            ));
        }
        out.extend(probes.iter().map(|p| judge_probe(&peer.name, p)));
    }
    out
}

/// One fence probe as a doctor line.
pub fn judge_probe(peer: &str, p: &super::fence_probe::DeviceProbe) -> Check {
    use super::fence_probe::{OptionsCheck, ProbeAnswer};
    use crate::fence::PowerState;
    let what = format!("fence device {} (level {} for {peer}, {})", p.device, p.level, p.kind);
    let elapsed = p.elapsed.as_millis();
    match (&p.answer, &p.options) {
        (ProbeAnswer::Error(e), _) => Check::fail(
            what,
            format!("status failed: {e}"),
            format!("check {} (address, port, credentials, outlets) from this host; `failoverd fence {peer} --action status --config FILE` repeats this probe", p.summary),
        ),
        (_, Some(OptionsCheck::Undeclared(names))) => Check::fail(
            what,
            format!("the agent does not declare {} (it would ignore them)", names.join(", ")),
            "remove or rename these options (see the agent's `-o metadata`)",
        ),
        (_, Some(OptionsCheck::Unreadable(why))) => {
            Check::fail(what, format!("cannot read the agent's metadata: {why}"), "make sure the agent runs here and supports `action=metadata`")
        }
        (ProbeAnswer::Manual, _) => Check::warn(what, "manual: a takeover from it waits for an operator", "add an ipmi, pdu-snmp or agent level if there is one"),
        (ProbeAnswer::Power(PowerState::Off), _) => Check::warn(
            what,
            format!("answered in {elapsed} ms: {peer} is powered OFF"),
            format!("if {peer} should be running, power it on (`failoverd fence {peer} --action on`)"),
        ),
        (ProbeAnswer::Power(state), _) => Check::ok(what, format!("answered in {elapsed} ms: {peer} is {state}")),
    }
}

fn count(n: usize, thing: &str) -> String {
    if n == 1 {
        format!("1 {thing}")
    } else {
        format!("{n} {thing}s")
    }
}

// ----- hostid ----------------------------------------------------------------------------------------------

/// What ZFS will write into the label of a pool this node imports (`uname -n`, here `uname`) must be
/// recognised by the label rule of every peer as this node, and as no other node: otherwise a peer's forced
/// takeover of this node's pools stops at `zdb-check` (ForeignOwner).
pub fn check_label_hostname(cfg: &Config, node: &str, uname: &str) -> Vec<Check> {
    let what = "label hostname";
    let ident = crate::storage::HostIdentity::of;
    let Some(me) = cfg.node(node) else { return Vec::new() };
    let others: Vec<&str> = cfg.nodes.iter().filter(|n| n.name != node && ident(n).is_named(uname)).map(|n| n.name.as_str()).collect();
    if !ident(me).is_named(uname) {
        let fix = match &me.hostname {
            Some(h) => format!("set [[node]] hostname = \"{uname}\" for node {node} (it says \"{h}\"), or give the host the name {h}"),
            None => format!("set [[node]] hostname = \"{uname}\" for node {node}, or name the node after the host"),
        };
        return vec![Check::fail(
            what,
            format!("uname -n is \"{uname}\": ZFS writes it into the labels of pools this host imports, and the label rule does not recognise it as node {node}: a peer's forced takeover of them would stop at zdb-check (ForeignOwner)"),
            fix,
        )];
    }
    if !others.is_empty() {
        return vec![Check::fail(
            what,
            format!("uname -n \"{uname}\" also names node {}: the label rule could not tell the hosts apart by name", others.join(", ")),
            "give every node a distinct [[node]] hostname",
        )];
    }
    vec![Check::ok(what, format!("uname -n is \"{uname}\": pool labels written here name node {node}"))]
}

fn configured_hostid(cfg: &Config, node: &str) -> u32 {
    cfg.node(node).map(|n| n.hostid).unwrap_or_default()
}

/// The hostid file: present, 4 bytes, not 0, this node's configured hostid and no peer's.
pub fn check_hostid(cfg: &Config, node: &str, path: &Path) -> Vec<Check> {
    let mine = configured_hostid(cfg, node);
    let what = "hostid";
    let regen = format!("zgenhostid -f {mine:08x} (then reboot, or reload the zfs modules, so the kernel uses it)");
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return vec![Check::fail(what, format!("{} does not exist: ZFS runs with hostid 0 and refuses multihost pools", path.display()), regen)]
        }
        Err(e) => return vec![Check::fail(what, format!("cannot read {}: {e}", path.display()), regen)],
    };
    let Ok(raw) = <[u8; 4]>::try_from(bytes.as_slice()) else {
        return vec![Check::fail(
            what,
            format!("{} holds {} bytes; it must be exactly 4 (the 32-bit hostid in host byte order)", path.display(), bytes.len()),
            regen,
        )];
    };
    let found = u32::from_ne_bytes(raw);
    if found == 0 {
        return vec![Check::fail(what, format!("{} holds hostid 0, which means no hostid to ZFS", path.display()), regen)];
    }
    if let Some(peer) = cfg.nodes.iter().find(|n| n.name != node && n.hostid == found) {
        return vec![Check::fail(
            what,
            format!(
                "{} is {found:08x}, the hostid of node {}: two hosts with one hostid defeat multihost protection",
                path.display(),
                peer.name
            ),
            regen,
        )];
    }
    if found != mine {
        return vec![Check::fail(
            what,
            format!("{} is {found:08x} but node {node}'s configured hostid is {mine:08x}", path.display()),
            format!("{regen}, or correct this node's hostid in the configuration"),
        )];
    }
    vec![Check::ok(what, format!("{} is {found:08x}, node {node}'s configured hostid, and no peer's", path.display()))]
}

/// The loaded spl module's hostid, when the module is loaded (no line otherwise).
pub fn check_spl_hostid(cfg: &Config, node: &str, path: &Path) -> Vec<Check> {
    let Ok(text) = std::fs::read_to_string(path) else { return Vec::new() };
    let mine = configured_hostid(cfg, node);
    let what = "hostid (kernel)";
    let fix = format!("make {HOSTID_FILE} right (zgenhostid -f {mine:08x}), then reboot or reload the zfs and spl modules");
    match parse_hostid_hex(&text) {
        Some(h) if h == mine => vec![Check::ok(what, format!("the spl module uses {h:08x}"))],
        Some(h) => vec![Check::fail(what, format!("the spl module uses {h:08x}, not node {node}'s {mine:08x}"), fix)],
        None => vec![Check::warn(what, format!("cannot parse {} ({:?})", path.display(), text.trim()), fix)],
    }
}

// ----- pools -----------------------------------------------------------------------------------------------

/// The ZFS pools of the targets `node` may run, in configuration order.
pub fn pools_of(cfg: &Config, node: &str) -> Vec<String> {
    let mut seen = BTreeSet::new();
    cfg.targets
        .iter()
        .filter(|t| t.nodes.iter().any(|n| n == node))
        .filter_map(|t| t.kind.pool())
        .filter(|p| seen.insert(p.to_string()))
        .map(str::to_string)
        .collect()
}

/// `zpool get -H -o name,property,value multihost,cachefile POOL...`.
pub fn zpool_get_command(pools: &[String]) -> Command {
    let mut argv: Vec<String> = ["zpool", "get", "-H", "-o", "name,property,value", "multihost,cachefile"].map(String::from).to_vec();
    argv.extend(pools.iter().cloned());
    Command::new(argv, ZPOOL_TIMEOUT)
}

/// Judge the `zpool get` output: one line per pool and property, or one warning per pool not imported here.
pub fn judge_pools(pools: &[String], result: &CommandResult) -> Vec<Check> {
    let shown = |e: &str| format!("`{}` {e}", zpool_get_command(pools).display());
    match &result.exit {
        Exit::SpawnFailed(why) => {
            return vec![Check::fail("pools", shown(&format!("could not start: {why}")), "install zfsutils-linux (zpool must be on PATH)")]
        }
        Exit::TimedOut => {
            return vec![Check::fail(
                "pools",
                shown(&format!("timed out after {}s", ZPOOL_TIMEOUT.as_secs())),
                "find out why zpool hangs (a suspended pool?) before relying on failover",
            )]
        }
        Exit::Signal(_) | Exit::Code(_) => {}
    }
    let props = match parse_zpool_get(&result.stdout) {
        Ok(p) => p,
        Err(e) => return vec![Check::fail("pools", shown(&format!("printed something unexpected: {}", e.0)), "report this zpool version's output")],
    };
    let mut out = Vec::new();
    for pool in pools {
        let value = |prop: &str| props.iter().find(|p| &p.pool == pool && p.property == prop).map(|p| p.value.as_str());
        let (Some(multihost), Some(cachefile)) = (value("multihost"), value("cachefile")) else {
            let quoted = format!("'{pool}'");
            let said = result
                .stderr
                .lines()
                .find(|l| l.contains(&quoted))
                .map(|l| l.trim().to_string())
                .unwrap_or_else(|| result.summary());
            out.push(Check::warn(
                format!("pool {pool}"),
                format!("not imported here, cannot check multihost and cachefile (zpool: {said})"),
                "run failoverd doctor on the node that has it imported",
            ));
            continue;
        };
        out.push(if multihost == "on" {
            Check::ok(format!("pool {pool} multihost"), "on")
        } else {
            Check::fail(
                format!("pool {pool} multihost"),
                format!("{multihost}: nothing stops a second host from importing the pool while this one has it"),
                format!("zpool set multihost=on {pool}"),
            )
        });
        out.push(if cachefile == "none" {
            Check::ok(format!("pool {pool} cachefile"), "none")
        } else {
            let shown = if cachefile == "-" { "- (the default, /etc/zfs/zpool.cache)" } else { cachefile };
            Check::fail(
                format!("pool {pool} cachefile"),
                format!("{shown}: the pool would be imported at boot, behind failoverd's back"),
                format!("zpool set cachefile=none {pool}"),
            )
        });
    }
    out
}

/// Run a command to completion on a private single-threaded runtime (doctor is a short offline command).
fn run_blocking(cmd: &Command) -> CommandResult {
    match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt.block_on(super::exec::run(cmd)),
        Err(e) => CommandResult {
            exit: Exit::SpawnFailed(format!("cannot start an event loop: {e}")),
            stdout: String::new(),
            stderr: String::new(),
            duration: Duration::ZERO,
        },
    }
}

// ----- mount points ----------------------------------------------------------------------------------------

/// Each mount point of `node`'s targets exists as a directory, or its nearest existing ancestor is a
/// writable directory.
pub fn check_mountpoints(cfg: &Config, node: &str) -> Vec<Check> {
    let mut out = Vec::new();
    for (i, t) in cfg.targets.iter().enumerate() {
        if !t.nodes.iter().any(|n| n == node) {
            continue;
        }
        let what = format!("target {} mount point", t.name);
        let mp = &t.mountpoint;
        let key = format!("target[{i}].mountpoint");
        match std::fs::metadata(mp) {
            Ok(m) if m.is_dir() => out.push(Check::ok(&what, format!("{} exists", mp.display()))),
            Ok(_) => out.push(Check::fail(&what, format!("{} exists but is not a directory", mp.display()), format!("remove it, or change {key}"))),
            // ENOTDIR: some ancestor is not a directory, which the walk below reports
            Err(e) if e.kind() == std::io::ErrorKind::NotFound || e.raw_os_error() == Some(nix::libc::ENOTDIR) => {
                let ancestor = mp.ancestors().skip(1).find(|a| std::fs::symlink_metadata(a).is_ok());
                out.push(match ancestor {
                    Some(a) if !a.is_dir() => Check::fail(
                        &what,
                        format!("{} does not exist and cannot be made: {} is not a directory", mp.display(), a.display()),
                        format!("change {key}"),
                    ),
                    Some(a) if access(a, AccessFlags::W_OK | AccessFlags::X_OK).is_err() => Check::fail(
                        &what,
                        format!("{} does not exist and cannot be made: {} is not writable", mp.display(), a.display()),
                        format!("mkdir -p {}", mp.display()),
                    ),
                    Some(a) => Check::ok(&what, format!("{} does not exist yet; it will be made under {}", mp.display(), a.display())),
                    None => Check::fail(&what, format!("{}: no existing parent directory", mp.display()), format!("change {key}")),
                });
            }
            Err(e) => out.push(Check::fail(&what, format!("{}: {e}", mp.display()), format!("make {} reachable, or change {key}", mp.display()))),
        }
    }
    out
}

// ----- secret files ----------------------------------------------------------------------------------------

/// Indices of the fence devices this node may run: those in its peers' fence levels.
fn devices_run_by(cfg: &Config, node: &str) -> Vec<usize> {
    let names: BTreeSet<&str> = cfg
        .nodes
        .iter()
        .filter(|n| n.name != node)
        .flat_map(|n| n.fence_levels.iter().flatten())
        .map(String::as_str)
        .collect();
    (0..cfg.fence_devices.len()).filter(|&i| names.contains(cfg.fence_devices[i].name.as_str())).collect()
}

/// The secret files this node reads, each with the configuration key that names it.
pub fn secret_files(cfg: &Config, node: &str) -> Vec<(String, PathBuf)> {
    let mut out = vec![("cluster.key_file".to_string(), cfg.cluster.key_file.clone())];
    if let Some(p) = &cfg.cluster.next_key_file {
        out.push(("cluster.next_key_file".into(), p.clone()));
    }
    for i in devices_run_by(cfg, node) {
        match &cfg.fence_devices[i].kind {
            FenceDeviceKind::Ipmi(c) => out.push((format!("fence_device[{i}].password_file"), c.password_file.clone())),
            FenceDeviceKind::PduSnmp(c) => out.push((format!("fence_device[{i}].community_file"), c.community_file.clone())),
            FenceDeviceKind::Agent(c) => {
                for (k, p) in &c.secret_options {
                    out.push((format!("fence_device[{i}].secret_options.{k}"), p.clone()));
                }
            }
            FenceDeviceKind::Manual => {}
        }
    }
    out
}

/// Mode 0400/0600 and owner root of every secret file; the cluster keys must also be long enough.
pub fn check_secret_files(cfg: &Config, node: &str) -> Vec<Check> {
    secret_files(cfg, node).into_iter().map(|(key, path)| check_secret_file(&key, &path)).collect()
}

fn check_secret_file(key: &str, path: &Path) -> Check {
    let what = format!("{key} {}", path.display());
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => return Check::fail(what, format!("cannot read: {e}"), format!("create it (mode 0400, owner root), or correct {key}")),
    };
    if !meta.is_file() {
        return Check::fail(what, "not a regular file", format!("correct {key}"));
    }
    if key.starts_with("cluster.") {
        if let Err(e) = load_key(path) {
            let fix = if matches!(&e, crate::config::KeyFileError::Unreadable { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied) {
                "run doctor as root (do not make a new key: every node needs the same one)"
            } else {
                "failoverd keygen --out FILE, then copy it to every node"
            };
            return Check::fail(what, e.to_string(), fix);
        }
    }
    let mode = meta.permissions().mode() & 0o7777;
    let chmod = format!("chmod 0400 {}", path.display());
    if mode & 0o077 != 0 {
        return Check::fail(what, format!("mode {mode:04o}: group or others may read or change it"), chmod);
    }
    let mut problems = Vec::new();
    let mut fixes = Vec::new();
    if mode != 0o400 && mode != 0o600 {
        problems.push(format!("mode {mode:04o}, expected 0400 or 0600"));
        fixes.push(chmod);
    }
    if meta.uid() != 0 {
        problems.push(format!("owned by uid {}, not root", meta.uid()));
        fixes.push(format!("chown root:root {}", path.display()));
    }
    if problems.is_empty() {
        Check::ok(what, format!("mode {mode:04o}, owner root"))
    } else {
        Check::warn(what, problems.join(", "), fixes.join(" and "))
    }
}

// ----- tools -----------------------------------------------------------------------------------------------

/// The executable `program` resolves to: itself when it holds a `/`, else the first match on `PATH`.
pub fn find_program(program: &str) -> Result<PathBuf, String> {
    let executable = |p: &Path| p.is_file() && access(p, AccessFlags::X_OK).is_ok();
    if program.contains('/') {
        let p = Path::new(program);
        return match std::fs::metadata(p) {
            Err(e) => Err(format!("{program}: {e}")),
            Ok(_) if !executable(p) => Err(format!("{program} is not an executable file")),
            Ok(_) => Ok(p.to_path_buf()),
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| executable(p))
        .ok_or_else(|| format!("{program} is not on PATH"))
}

/// Every program this node runs is there and executable.
pub fn check_tools(cfg: &Config, node: &str) -> Vec<Check> {
    // (program, who needs it, how to get it)
    let mut wanted: Vec<(String, String, String)> = Vec::new();
    let mut add = |program: &str, why: String, fix: &str| {
        if !wanted.iter().any(|(p, _, _)| p == program) {
            wanted.push((program.to_string(), why, fix.to_string()));
        }
    };
    let mine: Vec<_> = cfg.targets.iter().filter(|t| t.nodes.iter().any(|n| n == node)).collect();
    if let Some(t) = mine.iter().find(|t| matches!(t.kind, TargetKind::Zfs { .. } | TargetKind::ZfsDataset { .. })) {
        for p in ["zpool", "zdb", "zfs"] {
            add(p, format!("ZFS target {}", t.name), "install zfsutils-linux");
        }
    }
    if let Some(t) = mine.first() {
        for p in ["mount", "umount", "mkdir"] {
            add(p, format!("target {}", t.name), "install util-linux and coreutils");
        }
    }
    // df -ht lustre and lctl only for Lustre targets: a plain ZFS dataset (fstype = "zfs") needs neither
    if let Some(t) = mine.iter().find(|t| t.kind.is_lustre()) {
        add("df", format!("target {}", t.name), "install coreutils");
        add("lctl", format!("target {}", t.name), "install the Lustre server utilities");
    }
    for i in devices_run_by(cfg, node) {
        let d = &cfg.fence_devices[i];
        let why = format!("fence_device[{i}] {}", d.name);
        match &d.kind {
            FenceDeviceKind::Ipmi(_) => add("ipmitool", why, "install ipmitool"),
            FenceDeviceKind::PduSnmp(_) => {
                add("snmpset", why.clone(), "install snmp (net-snmp tools)");
                add("snmpget", why, "install snmp (net-snmp tools)");
            }
            FenceDeviceKind::Agent(a) => {
                add(&a.program, why, &format!("install the fence agent (fence-agents), or correct fence_device[{i}].program"))
            }
            FenceDeviceKind::Manual => {}
        }
    }
    if let Some(n) = &cfg.cluster.notify {
        add(&n.display().to_string(), "cluster.notify".into(), "make it executable, or correct cluster.notify");
    }
    wanted
        .into_iter()
        .map(|(program, why, fix)| match find_program(&program) {
            Ok(p) => Check::ok(format!("tool {program}"), format!("{} (for {why})", p.display())),
            Err(e) => Check::fail(format!("tool {program}"), format!("{e} (needed for {why})"), fix),
        })
        .collect()
}

// ----- disk heartbeat --------------------------------------------------------------------------------------

/// `cluster.disk_heartbeat`, when set: the device opens for direct I/O and is large enough ([`check_disk_device`]),
/// carries no ZFS label ([`judge_zdb_label`]), is no vdev of an imported pool ([`judge_zpool_status`]), and every
/// slot is read twice, `2 * heartbeat_interval` apart, to show whether each node's slot advances
/// ([`judge_slots`]). Doctor never writes a slot.
pub fn check_disk_heartbeat(cfg: &Config, node: &str) -> Vec<Check> {
    let Some(path) = &cfg.cluster.disk_heartbeat else { return Vec::new() };
    let (device_check, device) = check_disk_device(path, cfg.nodes.len());
    let mut out = vec![device_check];
    out.push(judge_zdb_label(path, &run_blocking(&zdb_label_command(path))));
    out.push(judge_zpool_status(path, &run_blocking(&zpool_status_paths_command())));
    let Some(device) = device else { return out };
    let keys = match super::daemon::load_keys(cfg) {
        Ok(k) => k,
        Err(e) => {
            out.push(Check::warn("disk_heartbeat slots", format!("cannot check them: {e}"), "run doctor as root"));
            return out;
        }
    };
    let gap = (cfg.cluster.heartbeat_interval * 2).clamp(Duration::from_millis(200), Duration::from_secs(5));
    let first = device.read_area();
    std::thread::sleep(gap);
    let second = device.read_area();
    match (first, second) {
        (Ok(a), Ok(b)) => out.extend(judge_slots(cfg, node, &keys, &a, &b, gap)),
        (Err(e), _) | (_, Err(e)) => out.push(Check::fail("disk_heartbeat slots", e, "check the device's paths (multipath -ll, dmesg)")),
    }
    out
}

/// Each node's slot in two reads of the whole area taken `gap` apart: advancing (its daemon writes), still,
/// never written, or not a valid slot of this cluster.
pub fn judge_slots(cfg: &Config, node: &str, keys: &crate::protocol::Keys, first: &[u8], second: &[u8], gap: Duration) -> Vec<Check> {
    use crate::diskbeat::{decode_slot, SlotError, SLOT_BYTES};
    let slot_of = |area: &[u8], i: usize| area.get(i * SLOT_BYTES..(i + 1) * SLOT_BYTES).map(|b| decode_slot(b, keys));
    let secs = gap.as_secs_f64();
    let mut out = Vec::new();
    for (i, n) in cfg.nodes.iter().enumerate() {
        let me = n.name == node;
        let what = format!("disk_heartbeat slot {i} ({}{})", n.name, if me { ", this node" } else { "" });
        let whose = if me { "this node's daemon".to_string() } else { format!("{}'s daemon", n.name) };
        let start_it = if me { "start failoverd here".to_string() } else { format!("start failoverd on {} (or check its path to the device)", n.name) };
        let check = match (slot_of(first, i), slot_of(second, i)) {
            (_, None) | (None, _) => Check::fail(what, "beyond the end of the area read", "report this"),
            (_, Some(Ok(s))) if s.cluster != cfg.cluster.name || s.node != n.name => Check::fail(
                what,
                format!("holds node {} of cluster {}: another cluster or another node order shares this device", s.node, s.cluster),
                "give every cluster its own heartbeat device, and list the [[node]]s in the same order on every node",
            ),
            (Some(Ok(a)), Some(Ok(b))) if (b.incarnation, b.seq) != (a.incarnation, a.seq) => Check::ok(
                what,
                format!("advancing: incarnation {}, seq {} -> {} in {secs:.1} s ({whose} writes it)", b.incarnation, a.seq, b.seq),
            ),
            (_, Some(Ok(b))) => Check::warn(
                what,
                format!("not advancing in {secs:.1} s (incarnation {}, seq {}): {whose} is not running or cannot write", b.incarnation, b.seq),
                start_it,
            ),
            (_, Some(Err(SlotError::Empty))) => Check::warn(what, format!("never written: {whose} has not run with disk_heartbeat set"), start_it),
            (_, Some(Err(SlotError::BadMac))) => Check::fail(
                what,
                "bad MAC: written with another key (or damaged)",
                "every node needs the same cluster.key_file (copy it from one node)",
            ),
            (_, Some(Err(e))) => Check::fail(
                what,
                format!("{e}: something other than failoverd wrote there"),
                "make sure cluster.disk_heartbeat names the heartbeat LUN on every node (not a data disk)",
            ),
        };
        out.push(check);
    }
    out
}

/// Timeout of `zdb -l DEVICE` and `zpool status -P` in the disk heartbeat check.
pub const DISK_TOOL_TIMEOUT: Duration = Duration::from_secs(30);

/// The disk heartbeat device: it opens the way the daemon opens it (`O_RDWR|O_DIRECT|O_DSYNC`, nothing is
/// written) and holds a slot for each of the `slots` nodes. Returns the check and, when it opened, the device.
pub fn check_disk_device(path: &Path, slots: usize) -> (Check, Option<super::disk_heartbeat::DiskDevice>) {
    use super::disk_heartbeat::{Access, DiskDevice, SLOT_BYTES};
    let what = format!("disk_heartbeat {}", path.display());
    match std::fs::metadata(path) {
        Err(e) => {
            return (
                Check::fail(
                    what,
                    format!("{e}: the disk channel cannot work, so every takeover waits for fence_delay as without it"),
                    "make the shared LUN or partition visible on this node (multipath, zoning), or correct cluster.disk_heartbeat",
                ),
                None,
            )
        }
        Ok(m) if m.is_dir() => return (Check::fail(what, "is a directory", "correct cluster.disk_heartbeat (a block device, e.g. /dev/disk/by-id/...-part1)"), None),
        Ok(_) => {}
    }
    match DiskDevice::open(path, slots, Access::ReadWrite) {
        Ok(dev) => {
            let kind = match std::fs::metadata(path) {
                Ok(m) if std::os::unix::fs::FileTypeExt::is_block_device(&m.file_type()) => "block device",
                _ => "file",
            };
            let detail = format!(
                "{kind} of {} bytes opens with O_RDWR|O_DIRECT|O_DSYNC and holds the {} slots of {SLOT_BYTES} bytes (nothing written)",
                dev.size(),
                slots
            );
            (Check::ok(what, detail), Some(dev))
        }
        Err(e) => {
            // the error names the device, which the line's `what` already does
            let e = e.strip_prefix(&format!("disk_heartbeat {}: ", path.display())).map(str::to_string).unwrap_or(e);
            let fix = if e.contains("too small") {
                "use a larger partition or LUN (1 MiB is plenty), the same on every node"
            } else {
                "run doctor as root, and use a block device (or, for a lab, a file on ext4/xfs) that supports O_DIRECT"
            };
            (Check::fail(what, e, fix), None)
        }
    }
}

/// `zdb -l DEVICE`: the device must carry no ZFS label.
pub fn zdb_label_command(path: &Path) -> Command {
    Command::new(["zdb".to_string(), "-l".to_string(), path.display().to_string()], DISK_TOOL_TIMEOUT)
}

/// `zpool status -P`: every vdev of the imported pools by its full path.
pub fn zpool_status_paths_command() -> Command {
    Command::new(["zpool", "status", "-P"].map(String::from).to_vec(), DISK_TOOL_TIMEOUT)
}

/// Judge `zdb -l DEVICE` (exit 0: a valid label, 1: an error, 2: no valid label). A label means the device is,
/// or was, a pool member: the disk heartbeat would overwrite its first label.
pub fn judge_zdb_label(path: &Path, result: &CommandResult) -> Check {
    let what = format!("disk_heartbeat {} ZFS label", path.display());
    let shown = zdb_label_command(path).display();
    match &result.exit {
        Exit::SpawnFailed(why) => Check::warn(
            what,
            format!("`{shown}` could not start ({why}): cannot check that the device is no pool member"),
            "install zfsutils-linux if this cluster has ZFS pools, and run doctor again",
        ),
        Exit::TimedOut => Check::fail(what, format!("`{shown}` timed out after {}s", DISK_TOOL_TIMEOUT.as_secs()), "find out why the device does not answer"),
        Exit::Code(2) => Check::ok(what, "no ZFS label (zdb -l found none): not a pool member"),
        Exit::Code(0) => {
            let pool = result
                .stdout
                .lines()
                .map(str::trim)
                .find_map(|l| l.strip_prefix("name: "))
                .map(|n| n.trim_matches('\'').to_string())
                .unwrap_or_else(|| "?".into());
            Check::fail(
                what,
                format!("carries a ZFS label of pool '{pool}': writing heartbeat slots there would destroy the pool's first label"),
                "give cluster.disk_heartbeat its own small partition or LUN, never a pool member (`zpool labelclear` only if the pool is truly gone)",
            )
        }
        _ => Check::warn(what, format!("`{shown}` failed: {}", result.summary()), "run it by hand to see why"),
    }
}

/// `/dev/sdb1` is a partition of `/dev/sdb`, `/dev/nvme0n1p1` of `/dev/nvme0n1`.
fn is_partition_of(part: &Path, disk: &Path) -> bool {
    let (p, d) = (part.to_string_lossy(), disk.to_string_lossy());
    match p.strip_prefix(d.as_ref()) {
        Some(rest) => {
            let rest = rest.strip_prefix('p').unwrap_or(rest);
            !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

/// Judge `zpool status -P`: the device is no vdev of an imported pool (nor the whole disk of one). Paths are
/// compared after resolving symlinks (`/dev/disk/by-id/...` and `/dev/sdX`).
pub fn judge_zpool_status(path: &Path, result: &CommandResult) -> Check {
    let what = format!("disk_heartbeat {} imported pools", path.display());
    let shown = zpool_status_paths_command().display();
    match &result.exit {
        Exit::SpawnFailed(why) => {
            return Check::warn(
                what,
                format!("`{shown}` could not start ({why}): cannot check the imported pools"),
                "install zfsutils-linux if this cluster has ZFS pools, and run doctor again",
            )
        }
        Exit::TimedOut => {
            return Check::fail(what, format!("`{shown}` timed out after {}s", DISK_TOOL_TIMEOUT.as_secs()), "find out why zpool hangs (a suspended pool?)")
        }
        Exit::Code(0) => {}
        _ => return Check::warn(what, format!("`{shown}` failed: {}", result.summary()), "run it by hand to see why"),
    }
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let device = canon(path);
    let mut pool = String::new();
    for line in result.stdout.lines() {
        if let Some(name) = line.trim().strip_prefix("pool: ") {
            pool = name.trim().to_string();
            continue;
        }
        let Some(first) = line.split_whitespace().next() else { continue };
        if !first.starts_with('/') {
            continue;
        }
        let vdev = canon(Path::new(first));
        if vdev == device || is_partition_of(&vdev, &device) {
            let how = if vdev == device { "is".to_string() } else { format!("holds {}, which is", vdev.display()) };
            return Check::fail(
                what,
                format!("{} {how} a vdev of the imported pool '{pool}': heartbeat writes would corrupt it", path.display()),
                "give cluster.disk_heartbeat its own small partition or LUN, never a pool member",
            );
        }
    }
    Check::ok(what, "no vdev of an imported pool (zpool status -P)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_hostname_short_fqdn_and_configured() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/two-node-mds.toml")).unwrap();
        let cfg = Config::from_toml_str(&text).unwrap();
        let level = |cfg: &Config, uname: &str| check_label_hostname(cfg, "mds1", uname)[0].level;
        assert_eq!(level(&cfg, "mds1"), Level::Ok);
        assert_eq!(level(&cfg, "mds1.lab.example"), Level::Ok);
        assert_eq!(level(&cfg, "mds2"), Level::Fail);
        assert_eq!(level(&cfg, "mds10.lab.example"), Level::Fail);
        let named = Config::from_toml_str(&text.replacen("hostid = \"a1b2c3d4\"", "hostid = \"a1b2c3d4\"\nhostname = \"server-17.lab.example\"", 1)).unwrap();
        assert_eq!(named.nodes[0].hostname.as_deref(), Some("server-17.lab.example"));
        assert_eq!(level(&named, "server-17.lab.example"), Level::Ok);
        let c = &check_label_hostname(&named, "mds1", "mds1")[0];
        assert_eq!(c.level, Level::Fail);
        assert!(c.fix.as_deref().unwrap_or_default().contains("hostname = \"mds1\""), "{c}");
    }

    fn pools() -> Vec<String> {
        vec!["good".into(), "mmpoff".into(), "gone".into()]
    }

    #[test]
    fn the_zpool_command_is_exact() {
        assert_eq!(
            zpool_get_command(&pools()).argv,
            ["zpool", "get", "-H", "-o", "name,property,value", "multihost,cachefile", "good", "mmpoff", "gone"]
        );
    }

    #[test]
    fn pools_are_judged_from_the_real_format() {
        let out = "good\tmultihost\ton\ngood\tcachefile\tnone\nmmpoff\tmultihost\toff\nmmpoff\tcachefile\t-\n";
        let r = CommandResult::exited(1, out, "cannot open 'gone': no such pool\n");
        let checks = judge_pools(&pools(), &r);
        let lines: Vec<String> = checks.iter().map(|c| c.to_string()).collect();
        assert_eq!(lines[0], "ok    pool good multihost: on");
        assert_eq!(lines[1], "ok    pool good cachefile: none");
        assert!(lines[2].starts_with("FAIL  pool mmpoff multihost: off:") && lines[2].ends_with("fix: zpool set multihost=on mmpoff"));
        assert!(lines[3].starts_with("FAIL  pool mmpoff cachefile: - (the default"), "{}", lines[3]);
        assert!(lines[4].starts_with("warn  pool gone: not imported here") && lines[4].contains("cannot open 'gone': no such pool"));
        assert_eq!(checks.len(), 5);
    }

    #[test]
    fn zpool_missing_or_hanging_fails() {
        let r = CommandResult { exit: Exit::SpawnFailed("zpool: No such file".into()), ..CommandResult::exited(0, "", "") };
        assert_eq!(judge_pools(&pools(), &r)[0].level, Level::Fail);
        assert_eq!(judge_pools(&pools(), &CommandResult::timed_out())[0].level, Level::Fail);
        let garbage = CommandResult::exited(0, "what\n", "");
        assert!(judge_pools(&pools(), &garbage)[0].detail.contains("unexpected"));
    }

    #[test]
    fn a_line_reads_level_what_detail_fix() {
        assert_eq!(Check::ok("hostid", "fine").to_string(), "ok    hostid: fine");
        assert_eq!(Check::fail("x", "bad", "do y").to_string(), "FAIL  x: bad; fix: do y");
        assert!(Level::Fail > Level::Warn && Level::Warn > Level::Ok);
    }
}
