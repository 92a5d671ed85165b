//! The safety checker: every safety invariant of README.md's "Safety rules" as it can be seen from outside the
//! engines, one function each, used by every driver of the models: the simulator after every event
//! (`sim/world.rs`), the demo (`lab/demo.rs`) and the lab's simulated SAN at every mutation (`lab/san.rs`,
//! `failoverd sim-san check`). A driver never writes its own copy of a rule: it calls these.
//!
//! | function | rule |
//! |---|---|
//! | [`pool_imported_once`] | 1: a pool is never imported on two powered hosts at once (a suspended copy, which MMP stopped, does not count) |
//! | [`target_mounted_once`] | 1: a target is never mounted on two powered hosts at once (a mount on a suspended pool or a stale ldiskfs mount does not count) |
//! | [`forced_import_after_fence`] | 2: `zpool import -f` of a pool whose label names another host only once that host is cleared |
//! | [`storage_invariants`] | rules 1, both checks together (what a driver runs after every change of the SAN) |
//!
//! What "cleared" means for rule 2 is the one thing a driver supplies, because drivers see different things:
//! the demo and the lab's SAN see the hardware (the owner is powered off), the simulator also sees the
//! importer's own fence confirmations (the owner was confirmed off by this importer and has not imported the
//! pool again since), which is stricter.

use crate::command::Command;

use super::storage::SharedStorage;

/// Rule 1 for pools: one message per pool imported on more than one powered host with a live (not suspended)
/// copy.
pub fn pool_imported_once(storage: &SharedStorage) -> Vec<String> {
    storage
        .pools_live_on()
        .into_iter()
        .filter(|(_, hosts)| hosts.len() > 1)
        .map(|(pool, hosts)| format!("pool {pool} imported on {} powered hosts at once: {}", hosts.len(), hosts.join(", ")))
        .collect()
}

/// Rule 1 for targets: one message per block device (or dataset) mounted live on more than one powered host.
pub fn target_mounted_once(storage: &SharedStorage) -> Vec<String> {
    storage
        .live_mounts_by_source()
        .into_iter()
        .filter(|(_, hosts)| hosts.len() > 1)
        .map(|(source, hosts)| format!("target {source} mounted on {} powered hosts at once: {}", hosts.len(), hosts.join(", ")))
        .collect()
}

/// Both halves of rule 1: what a driver checks after every change of the shared storage.
pub fn storage_invariants(storage: &SharedStorage) -> Vec<String> {
    let mut out = pool_imported_once(storage);
    out.extend(target_mounted_once(storage));
    out
}

/// Is `cmd` a forced import (`zpool import ... -f ... POOL`)? Returns the pool.
pub fn forced_import_pool(cmd: &Command) -> Option<&str> {
    let a = &cmd.argv;
    let forced = cmd.program().rsplit('/').next() == Some("zpool") && a.get(1).is_some_and(|s| s == "import") && a.iter().skip(2).any(|x| x == "-f");
    forced.then(|| a.last().map(String::as_str)).flatten()
}

/// Rule 2: `host` runs `cmd`; if it is a forced import of a pool whose label names another host (resolved
/// through the SAN's host names, so an FQDN in the label finds its node), that host must be `cleared`.
/// `why_not` says, for the message, what was missing ("still powered", "not confirmed off").
pub fn forced_import_after_fence(
    storage: &SharedStorage,
    host: &str,
    cmd: &Command,
    cleared: impl Fn(&str) -> bool,
    why_not: &str,
) -> Option<String> {
    let pool = forced_import_pool(cmd)?;
    let label = storage.label(pool)?;
    let last = storage.host_named_in_label(&label.hostname).unwrap_or_else(|| label.hostname.clone());
    (last != host && !cleared(&last))
        .then(|| format!("{host} ran `{}` but {last}, the pool's last owner, was {why_not}", cmd.display()))
}
