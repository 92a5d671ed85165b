//! The simulated ZFS tools (`zdb`, `zpool`, `zfs`) of [`SharedStorage`]: argv parsing (the `plan_*`
//! functions, run when a command begins) and the answers in OpenZFS 2.1 formats (the `finish_*` functions,
//! run when it completes). Texts come from `cmd/zpool/zpool_main.c`, `lib/libzfs` and the 2.1.11 captures.

use std::time::Duration;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::storage::{
    Ctx, HostImport, HostStorage, LabelState, Plan, PoolHealth, PoolLabel, SharedStorage, SimPool, StorageOp,
    ACTIVITY_CHECK,
};
use super::tools_common::{self as common, between_ms};
use crate::command::CommandResult;
use crate::time::Time;

type SubPlanner = fn(&SharedStorage, &Ctx, &[String], &mut ChaCha8Rng) -> Plan;

/// `zpool` subcommand → planner.
const ZPOOL_SUBCOMMANDS: &[(&str, SubPlanner)] = &[
    ("import", plan_import),
    ("export", plan_export),
    ("status", plan_status),
    ("list", plan_list),
    ("get", plan_get),
];

/// Fields `zpool list -o` knows here.
const LIST_FIELDS: &[&str] =
    &["name", "size", "alloc", "free", "ckpoint", "expandsz", "frag", "cap", "dedup", "health", "altroot", "guid"];
/// Properties `zpool get` knows here.
const GET_PROPS: &[&str] = &["name", "guid", "health", "multihost", "cachefile", "size"];
/// Columns of `zpool get -o`.
const GET_FIELDS: &[&str] = &["name", "property", "value", "source"];

fn usage(ctx: &Ctx, rng: &mut ChaCha8Rng) -> Plan {
    (between_ms(rng, 1, 5), StorageOp::Answer(common::unsupported(ctx.cmd)))
}

fn fail(msg: String) -> CommandResult {
    CommandResult::exited(1, "", msg)
}

fn ok(stdout: String) -> CommandResult {
    CommandResult::exited(0, stdout, "")
}

fn no_such_pool(pool: &str) -> CommandResult {
    fail(format!("cannot open '{pool}': no such pool\n"))
}

/// Split a comma list (`name,health`).
fn comma_list(s: &str) -> Vec<String> {
    s.split(',').filter(|p| !p.is_empty()).map(str::to_string).collect()
}

// ----- zdb -------------------------------------------------------------------------------------------

/// `zdb [-e] -C <pool>`.
pub(crate) fn plan_zdb(st: &SharedStorage, ctx: &Ctx, args: &[String], rng: &mut ChaCha8Rng) -> Plan {
    let (mut exported, mut config, mut pool) = (false, false, None);
    for a in args {
        match a.strip_prefix('-') {
            Some(flags) if !flags.is_empty() => {
                for c in flags.chars() {
                    match c {
                        'e' => exported = true,
                        'C' => config = true,
                        _ => return usage(ctx, rng),
                    }
                }
            }
            _ if pool.is_none() => pool = Some(a.clone()),
            _ => return usage(ctx, rng),
        }
    }
    let Some(pool) = pool.filter(|_| config) else { return usage(ctx, rng) };
    let took =
        if exported && st.pools.contains_key(&pool) { between_ms(rng, 3500, 5000) } else { between_ms(rng, 250, 400) };
    (took, StorageOp::Zdb { pool, exported })
}

/// Without `-e`, zdb reads the cache file, which failoverd's pools do not use (`cachefile=none`).
pub(crate) fn finish_zdb(st: &SharedStorage, pool: &str, exported: bool) -> CommandResult {
    match st.pools.get(pool).filter(|_| exported) {
        Some(p) => ok(mos_configuration(p)),
        None => fail(format!("zdb: can't open '{pool}': No such file or directory\n")),
    }
}

/// The `MOS Configuration:` nvlist dump of `zdb -e -C`, in `spa_config_generate` order.
pub fn mos_configuration(p: &SimPool) -> String {
    let l = &p.layout;
    let mut s = String::from("\nMOS Configuration:\n");
    let mut kv = |indent: usize, line: String| {
        s.push_str(&" ".repeat(indent));
        s.push_str(&line);
        s.push('\n');
    };
    kv(8, "version: 5000".into());
    kv(8, format!("name: '{}'", p.name));
    kv(8, format!("state: {}", p.label.state.code()));
    kv(8, format!("txg: {}", p.label.txg));
    kv(8, format!("pool_guid: {}", p.guid));
    kv(8, "errata: 0".into());
    if p.label.hostid != 0 {
        kv(8, format!("hostid: {}", p.label.hostid));
    }
    kv(8, format!("hostname: '{}'", p.label.hostname));
    kv(8, "com.delphix:has_per_vdev_zaps".into());
    kv(8, "vdev_children: 1".into());
    kv(8, "vdev_tree:".into());
    kv(12, "type: 'root'".into());
    kv(12, "id: 0".into());
    kv(12, format!("guid: {}", p.guid));
    kv(12, format!("create_txg: {}", l.create_txg));
    kv(12, "children[0]:".into());
    for line in [
        "type: 'disk'".to_string(),
        "id: 0".into(),
        format!("guid: {}", l.guid),
        format!("path: '{}'", l.path),
        "whole_disk: 1".into(),
        format!("metaslab_array: {}", l.metaslab_array),
        format!("metaslab_shift: {}", l.metaslab_shift),
        format!("ashift: {}", l.ashift),
        format!("asize: {}", l.asize),
        "is_log: 0".into(),
        format!("create_txg: {}", l.create_txg),
        format!("com.delphix:vdev_zap_leaf: {}", l.zap_leaf),
        format!("com.delphix:vdev_zap_top: {}", l.zap_top),
    ] {
        kv(16, line);
    }
    kv(8, "features_for_read:".into());
    kv(12, "com.delphix:hole_birth".into());
    kv(12, "com.delphix:embedded_data".into());
    s
}

// ----- zpool -----------------------------------------------------------------------------------------

/// `zpool <subcommand> ...`.
pub(crate) fn plan_zpool(st: &SharedStorage, ctx: &Ctx, args: &[String], rng: &mut ChaCha8Rng) -> Plan {
    let Some(sub) = args.first() else { return usage(ctx, rng) };
    match ZPOOL_SUBCOMMANDS.iter().find(|(name, _)| name == sub) {
        Some((_, planner)) => planner(st, ctx, &args[1..], rng),
        None => usage(ctx, rng),
    }
}

/// Is the MMP activity check required (`spa_activity_check_required` of OpenZFS 2.1)? Only for an ACTIVE
/// label whose hostid is not ours: a clean export, or our own hostid, skips it.
fn check_needed(pool: &SimPool, label: &PoolLabel, my_hostid: u32) -> bool {
    pool.multihost && label.state == LabelState::Active && label.hostid != my_hostid
}

/// Does the import need `-f` (`zfs_force_import_required`, MMP aside)?
fn force_required(label: &PoolLabel, my_hostid: u32) -> bool {
    label.state == LabelState::Active && label.hostid != my_hostid
}

/// One activity check: 20 s + 0–25 %.
fn activity_check(rng: &mut ChaCha8Rng) -> Duration {
    let jitter = ACTIVITY_CHECK.as_micros() as u64 / 4;
    ACTIVITY_CHECK + Duration::from_micros(rng.random_range(0..=jitter))
}

/// `zpool import [-f] [-N] [-o prop=value]... <pool>`.
fn plan_import(st: &SharedStorage, ctx: &Ctx, args: &[String], rng: &mut ChaCha8Rng) -> Plan {
    let (mut force, mut props, mut names) = (false, Vec::new(), Vec::new());
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-f" => force = true,
            "-N" => {}
            "-o" => match it.next() {
                Some(p) => props.push(p.clone()),
                None => return usage(ctx, rng),
            },
            "-d" => {
                it.next();
            }
            s if s.starts_with('-') => return usage(ctx, rng),
            s => names.push(s.to_string()),
        }
    }
    let [pool] = names.as_slice() else { return usage(ctx, rng) };
    let Some(host) = st.hosts.get(ctx.host) else { return usage(ctx, rng) };
    let found = st.pools.get(pool);
    let took = import_duration(st, host, found, force, rng) + host.faults.import_extra.unwrap_or_default();
    let cachefile_none = props.iter().any(|p| p == "cachefile=none");
    let label_at_start = found.map(|p| p.label.clone());
    (took, StorageOp::Import { pool: pool.clone(), force, cachefile_none, label_at_start })
}

fn import_duration(
    st: &SharedStorage,
    host: &HostStorage,
    pool: Option<&SimPool>,
    force: bool,
    rng: &mut ChaCha8Rng,
) -> Duration {
    let Some(pool) = pool else { return between_ms(rng, 200, 500) };
    if pool.imported_on.contains_key(&host.name) {
        return between_ms(rng, 50, 300);
    }
    if host.faults.import_fails {
        return between_ms(rng, 1000, 3000);
    }
    if !check_needed(pool, &pool.label, host.hostid) {
        return between_ms(rng, 800, 1500);
    }
    if host.hostid == 0 {
        return between_ms(rng, 300, 800);
    }
    if st.pool_writer_live(pool, &host.name) {
        // The owner's next MMP write (every second) changes the uberblock: refused within ~2 s.
        return between_ms(rng, 1500, 2200);
    }
    let mut took = activity_check(rng) + between_ms(rng, 300, 1500);
    if force && rng.random_range(0..100) < st.timing.forced_double_check_percent {
        took += activity_check(rng);
    }
    took
}

/// A `zpool import` being completed.
pub(crate) struct ImportRequest {
    pub pool: String,
    pub force: bool,
    pub cachefile_none: bool,
    pub label_at_start: Option<PoolLabel>,
    pub started: Time,
}

/// Decide a `zpool import` at its end: refusals in the order `do_import` and the kernel apply them.
pub(crate) fn finish_import(st: &mut SharedStorage, host: &str, req: ImportRequest, now: Time) -> CommandResult {
    let name = req.pool.as_str();
    let (Some(pool), Some(h), Some(label)) = (st.pools.get(name), st.hosts.get(host), req.label_at_start.as_ref())
    else {
        return fail(format!("cannot import '{name}': no such pool available\n"));
    };
    if pool.imported_on.contains_key(host) {
        return fail(format!(
            "cannot import '{name}': a pool with that name already exists\n\
             use the form 'zpool import <pool | id> <newpool>' to give it a new name\n"
        ));
    }
    if h.faults.import_fails {
        return fail(format!(
            "cannot import '{name}': I/O error\n\tDestroy and re-create the pool from\n\ta backup source.\n"
        ));
    }
    if check_needed(pool, label, h.hostid) {
        if h.hostid == 0 {
            return fail(hostid_unset_text(name, req.force));
        }
        if st.pool_written_since(pool, host, req.started, now) {
            return fail(mmp_active_text(name, &pool.label, req.force));
        }
    }
    if !req.force && force_required(label, h.hostid) {
        let when = common::ctime(st.epoch_unix + st.last_accessed(pool, now).as_micros() / 1_000_000);
        return fail(format!(
            "cannot import '{name}': pool was previously in use from another system.\n\
             Last accessed by {} (hostid={:x}) at {when}\n\
             The pool can be imported, use 'zpool import -f' to import the pool.\n",
            label.hostname, label.hostid
        ));
    }
    do_import(st, host, name, req.cachefile_none, now);
    ok(String::new())
}

fn hostid_unset_text(pool: &str, force: bool) -> String {
    if force {
        format!(
            "cannot import '{pool}': pool has the multihost property on and the\n\
             system's hostid is not set. Set a unique system hostid with the zgenhostid(8) command.\n\n"
        )
    } else {
        format!(
            "Cannot import '{pool}': pool has the multihost property on and the\n\
             system's hostid is not set. Set a unique hostid with the zgenhostid(8) command.\n"
        )
    }
}

/// The MMP refusal: zpool's own form without `-f`, libzfs's EREMOTEIO form with `-f`.
fn mmp_active_text(pool: &str, label: &PoolLabel, force: bool) -> String {
    let tail = "Export the pool on the other system, then run 'zpool import'.\n";
    if force {
        format!(
            "cannot import '{pool}': pool is imported on host '{}' (hostid={:x}).\n{tail}",
            label.hostname, label.hostid
        )
    } else {
        format!("cannot import '{pool}': pool is imported on {} (hostid: 0x{:x})\n{tail}", label.hostname, label.hostid)
    }
}

/// Apply a successful import: a hung holder's copy is now stale (suspended); the label names us.
fn do_import(st: &mut SharedStorage, host: &str, pool: &str, cachefile_none: bool, now: Time) {
    let Some(me) = st.hosts.get(host).map(|h| (h.hostid, h.label_name())) else { return };
    let hung: Vec<String> = st
        .pools
        .get(pool)
        .map(|p| p.imported_on.keys().filter(|h| p.multihost && !st.host_alive(h)).cloned().collect())
        .unwrap_or_default();
    let Some(p) = st.pools.get_mut(pool) else { return };
    for h in hung {
        if let Some(imp) = p.imported_on.get_mut(&h) {
            imp.suspended = true;
        }
    }
    p.imported_on.insert(host.into(), HostImport { since: now, suspended: false, cachefile_none });
    let txg = p.label.txg + 6;
    p.label = PoolLabel { state: LabelState::Active, hostid: me.0, hostname: me.1, txg, timestamp: now };
}

/// `zpool export [-f] <pool>`.
fn plan_export(_st: &SharedStorage, ctx: &Ctx, args: &[String], rng: &mut ChaCha8Rng) -> Plan {
    let names: Vec<&String> = args.iter().filter(|a| a.as_str() != "-f").collect();
    match names.as_slice() {
        [pool] if !pool.starts_with('-') => (between_ms(rng, 150, 350), StorageOp::Export { pool: pool.to_string() }),
        _ => usage(ctx, rng),
    }
}

pub(crate) fn finish_export(st: &mut SharedStorage, host: &str, pool: &str, now: Time) -> CommandResult {
    let Some(health) = st.health_on(pool, host) else { return no_such_pool(pool) };
    if health == PoolHealth::Suspended {
        return fail(format!("cannot export '{pool}': pool I/O is currently suspended\n"));
    }
    let busy =
        st.mounts(host).iter().any(|m| matches!(&m.backing, super::storage::Backing::Zfs { pool: p } if p == pool));
    if busy {
        return fail(format!("cannot export '{pool}': pool is busy\n"));
    }
    st.note_stop_writing(pool, host, now);
    let Some(me) = st.hosts.get(host).map(|h| (h.hostid, h.label_name())) else { return no_such_pool(pool) };
    if let Some(p) = st.pools.get_mut(pool) {
        p.imported_on.remove(host);
        let txg = p.label.txg + 2;
        p.label = PoolLabel { state: LabelState::Exported, hostid: me.0, hostname: me.1, txg, timestamp: now };
    }
    ok(String::new())
}

/// `zpool status [-x] [pool]`.
fn plan_status(_st: &SharedStorage, ctx: &Ctx, args: &[String], rng: &mut ChaCha8Rng) -> Plan {
    let (mut only_unhealthy, mut pool) = (false, None);
    for a in args {
        match a.as_str() {
            "-x" => only_unhealthy = true,
            s if s.starts_with('-') => return usage(ctx, rng),
            s if pool.is_none() => pool = Some(s.to_string()),
            _ => return usage(ctx, rng),
        }
    }
    (between_ms(rng, 100, 150), StorageOp::Status { pool, only_unhealthy })
}

pub(crate) fn finish_status(st: &SharedStorage, host: &str, pool: Option<&str>, only_unhealthy: bool) -> CommandResult {
    if let Some(name) = pool {
        let (Some(p), Some(health)) = (st.pools.get(name), st.health_on(name, host)) else { return no_such_pool(name) };
        if only_unhealthy && health == PoolHealth::Online {
            return ok(format!("pool '{name}' is healthy\n"));
        }
        return ok(full_status(p, health));
    }
    let mine: Vec<(&SimPool, PoolHealth)> =
        st.pools.values().filter_map(|p| st.health_on(&p.name, host).map(|h| (p, h))).collect();
    if mine.is_empty() {
        return CommandResult::exited(0, "", "no pools available\n");
    }
    let shown: Vec<String> = mine
        .iter()
        .filter(|(_, h)| !only_unhealthy || *h != PoolHealth::Online)
        .map(|(p, h)| full_status(p, *h))
        .collect();
    if shown.is_empty() {
        return ok("all pools are healthy\n".into());
    }
    ok(shown.join("\n"))
}

/// The full `zpool status <pool>` block (layout of the 2.1.11 captures).
pub fn full_status(p: &SimPool, health: PoolHealth) -> String {
    let mut s = format!("  pool: {}\n state: {}\n", p.name, health.as_str());
    s.push_str(match health {
        PoolHealth::Online => "",
        PoolHealth::Suspended => concat!(
            "status: The pool is suspended because multihost writes failed or were delayed;\n",
            "\tanother system could import the pool undetected.\n",
            "action: Make sure the pool's devices are connected, then reboot your system and\n",
            "\timport the pool.\n",
            "   see: https://openzfs.github.io/openzfs-docs/msg/ZFS-8000-MM\n"
        ),
        PoolHealth::Degraded => concat!(
            "status: One or more devices are faulted in response to persistent errors.\n",
            "\tSufficient replicas exist for the pool to continue functioning in a\n",
            "\tdegraded state.\n",
            "action: Replace the faulted device, or use 'zpool clear' to mark the device\n",
            "\trepaired.\n"
        ),
    });
    s.push_str("config:\n\n");
    let width = 10.max(p.name.len()).max(p.layout.disk.len() + 2);
    let pool_state = if health == PoolHealth::Degraded { "DEGRADED" } else { "ONLINE" };
    s.push_str(&format!("\t{:<width$}  {:<8} {:>5} {:>5} {:>5}\n", "NAME", "STATE", "READ", "WRITE", "CKSUM"));
    s.push_str(&format!("\t{:<width$}  {:<8} {:>5} {:>5} {:>5}\n", p.name, pool_state, 0, 0, 0));
    s.push_str(&format!("\t  {:<w$}  {:<8} {:>5} {:>5} {:>5}\n", p.layout.disk, "ONLINE", 0, 0, 0, w = width - 2));
    s.push_str("\nerrors: No known data errors\n");
    s
}

/// Parse the common `[-H] [-o fields] [names...]` shape of `zpool list` / `zpool get` / `zfs list`.
struct Listing {
    scripted: bool,
    fields: Option<Vec<String>>,
    names: Vec<String>,
}

fn parse_listing(args: &[String]) -> Option<Listing> {
    let mut l = Listing { scripted: false, fields: None, names: Vec::new() };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-H" => l.scripted = true,
            "-p" => {}
            "-o" => l.fields = Some(comma_list(it.next()?)),
            s if s.starts_with('-') => return None,
            s => l.names.push(s.to_string()),
        }
    }
    Some(l)
}

/// `zpool list [-H] [-o fields] [pool]`.
fn plan_list(_st: &SharedStorage, ctx: &Ctx, args: &[String], rng: &mut ChaCha8Rng) -> Plan {
    let Some(l) = parse_listing(args) else { return usage(ctx, rng) };
    let fields = l.fields.unwrap_or_else(|| LIST_FIELDS[..11].iter().map(|s| s.to_string()).collect());
    let known = fields.iter().all(|f| LIST_FIELDS.contains(&f.as_str()));
    if !known || l.names.len() > 1 {
        return usage(ctx, rng);
    }
    let pool = l.names.into_iter().next();
    (between_ms(rng, 100, 150), StorageOp::List { pool, fields, scripted: l.scripted })
}

pub(crate) fn finish_list(
    st: &SharedStorage,
    host: &str,
    pool: Option<&str>,
    fields: &[String],
    scripted: bool,
) -> CommandResult {
    if let Some(name) = pool {
        if st.health_on(name, host).is_none() {
            return no_such_pool(name);
        }
    }
    let rows: Vec<Vec<String>> = st
        .pools
        .values()
        .filter(|p| pool.is_none_or(|n| n == p.name))
        .filter_map(|p| st.health_on(&p.name, host).map(|h| fields.iter().map(|f| list_field(p, h, f)).collect()))
        .collect();
    if rows.is_empty() && !scripted {
        return ok("no pools available\n".into());
    }
    ok(render(fields, &rows, scripted))
}

fn list_field(p: &SimPool, health: PoolHealth, field: &str) -> String {
    let size = p.layout.asize;
    match field {
        "name" => p.name.clone(),
        "health" => health.as_str().into(),
        "guid" => p.guid.to_string(),
        "size" => nicenum(size),
        "alloc" => nicenum(p.used),
        "free" => nicenum(size.saturating_sub(p.used)),
        "frag" | "cap" => "0%".into(),
        "dedup" => "1.00x".into(),
        _ => "-".into(),
    }
}

/// Rows as `-H` (tabs) or as a table with an upper-case header and two-space gaps (approximate alignment).
fn render(fields: &[String], rows: &[Vec<String>], scripted: bool) -> String {
    if scripted {
        return rows.iter().map(|r| format!("{}\n", r.join("\t"))).collect();
    }
    let header: Vec<String> = fields.iter().map(|f| f.to_uppercase()).collect();
    let all: Vec<&Vec<String>> = std::iter::once(&header).chain(rows.iter()).collect();
    let widths: Vec<usize> = (0..fields.len()).map(|i| all.iter().map(|r| r[i].len()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for r in all {
        let cells: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| if i + 1 == r.len() { c.clone() } else { format!("{c:<w$}", w = widths[i]) })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// `zpool get [-H] [-o fields] <props> <pool>`.
fn plan_get(_st: &SharedStorage, ctx: &Ctx, args: &[String], rng: &mut ChaCha8Rng) -> Plan {
    let Some(l) = parse_listing(args) else { return usage(ctx, rng) };
    let fields = l.fields.unwrap_or_else(|| GET_FIELDS.iter().map(|s| s.to_string()).collect());
    let [props, pool] = l.names.as_slice() else { return usage(ctx, rng) };
    let props = comma_list(props);
    if !fields.iter().all(|f| GET_FIELDS.contains(&f.as_str())) {
        return usage(ctx, rng);
    }
    if let Some(bad) = props.iter().find(|p| !GET_PROPS.contains(&p.as_str())) {
        let msg = format!("bad property list: invalid property '{bad}'\n");
        return (between_ms(rng, 5, 20), StorageOp::Answer(CommandResult::exited(2, "", msg)));
    }
    (between_ms(rng, 100, 150), StorageOp::Get { pool: pool.clone(), props, fields, scripted: l.scripted })
}

pub(crate) fn finish_get(
    st: &SharedStorage,
    host: &str,
    pool: &str,
    props: &[String],
    fields: &[String],
    scripted: bool,
) -> CommandResult {
    let (Some(p), Some(health)) = (st.pools.get(pool), st.health_on(pool, host)) else { return no_such_pool(pool) };
    let cachefile_none = p.imported_on.get(host).is_some_and(|i| i.cachefile_none);
    let rows: Vec<Vec<String>> = props
        .iter()
        .map(|prop| {
            let (value, source) = prop_value(p, health, cachefile_none, prop);
            fields
                .iter()
                .map(|f| match f.as_str() {
                    "name" => p.name.clone(),
                    "property" => prop.clone(),
                    "value" => value.clone(),
                    _ => source.to_string(),
                })
                .collect()
        })
        .collect();
    ok(render(fields, &rows, scripted))
}

fn prop_value(p: &SimPool, health: PoolHealth, cachefile_none: bool, prop: &str) -> (String, &'static str) {
    match prop {
        "name" => (p.name.clone(), "-"),
        "guid" => (p.guid.to_string(), "-"),
        "health" => (health.as_str().into(), "-"),
        "size" => (nicenum(p.layout.asize), "-"),
        "multihost" if p.multihost => ("on".into(), "local"),
        "multihost" => ("off".into(), "default"),
        "cachefile" if cachefile_none => ("none".into(), "local"),
        _ => ("-".into(), "default"),
    }
}

// ----- zfs -------------------------------------------------------------------------------------------

/// `zfs list [-H] [dataset]` (default columns only).
pub(crate) fn plan_zfs(_st: &SharedStorage, ctx: &Ctx, args: &[String], rng: &mut ChaCha8Rng) -> Plan {
    let Some(("list", rest)) = args.split_first().map(|(a, r)| (a.as_str(), r)) else { return usage(ctx, rng) };
    let Some(l) = parse_listing(rest) else { return usage(ctx, rng) };
    if l.fields.is_some() || l.names.len() > 1 {
        return usage(ctx, rng);
    }
    let target = l.names.into_iter().next();
    (between_ms(rng, 130, 300), StorageOp::ZfsList { target, scripted: l.scripted })
}

pub(crate) fn finish_zfs_list(st: &SharedStorage, host: &str, target: Option<&str>, scripted: bool) -> CommandResult {
    let mut rows = Vec::new();
    for p in st.pools.values().filter(|p| p.imported_on.contains_key(host)) {
        rows.push(vec![p.name.clone(), nicenum(p.used), nicenum(p.avail), nicenum(p.refer), format!("/{}", p.name)]);
        for d in &p.datasets {
            rows.push(vec![
                d.name.clone(),
                nicenum(d.used),
                nicenum(p.avail),
                nicenum(d.refer),
                format!("/{}", d.name),
            ]);
        }
    }
    if let Some(t) = target {
        rows.retain(|r| r[0] == t);
        if rows.is_empty() {
            return fail(format!("cannot open '{t}': dataset does not exist\n"));
        }
    }
    if rows.is_empty() && !scripted {
        return CommandResult::exited(0, "", "no datasets available\n");
    }
    let fields: Vec<String> = ["name", "used", "avail", "refer", "mountpoint"].iter().map(|s| s.to_string()).collect();
    ok(render(&fields, &rows, scripted))
}

/// `zfs_nicenum`: 1024-based, exact values as integers, else at most 5 characters (`147K`, `3.70M`, `40.1G`).
pub fn nicenum(n: u64) -> String {
    const UNITS: [&str; 7] = ["", "K", "M", "G", "T", "P", "E"];
    let mut index = 0;
    let mut v = n;
    while v >= 1024 && index < 6 {
        v /= 1024;
        index += 1;
    }
    let unit = UNITS[index];
    let scale = 1u64 << (10 * index);
    if n.is_multiple_of(scale) {
        return format!("{}{unit}", n / scale);
    }
    let val = n as f64 / scale as f64;
    (0..=2)
        .rev()
        .map(|prec| format!("{val:.prec$}{unit}"))
        .find(|s| s.len() <= 5)
        .unwrap_or_else(|| format!("{val:.0}{unit}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nicenum_like_zfs() {
        assert_eq!(nicenum(147 * 1024), "147K");
        assert_eq!(nicenum(352 * 1024 * 1024), "352M");
        assert_eq!(nicenum(3_879_731), "3.70M");
        assert_eq!(nicenum(43_056_000_000), "40.1G");
        assert_eq!(nicenum(512), "512");
    }
}
