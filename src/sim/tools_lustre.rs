//! The simulated Lustre-side tools of [`SharedStorage`]: `mkdir`, `mount -t lustre` (ZFS datasets and
//! ldiskfs devices with ext4 MMP), `umount`, `df -ht lustre`, `lctl dl|get_param|ping` and
//! `cat /proc/mounts`. `plan_*` parse argv when a command begins; `finish_*` answer when it completes.
//! Texts follow `lustre/utils/mount_lustre.c`, coreutils `df` and `lustre/obdclass/obd_sysfs.c`.

use std::time::Duration;

use rand_chacha::ChaCha8Rng;

use super::storage::{
    Backing, Ctx, HostStorage, Plan, PoolHealth, SharedStorage, SimMount, StorageOp, LDISKFS_MMP_INTERVAL,
};
use super::tools_common::{self as common, between_ms};
use crate::command::CommandResult;
use crate::time::Time;

type SubPlanner = fn(&SharedStorage, &Ctx, &[String], &mut ChaCha8Rng) -> Plan;

/// `lctl` subcommand → planner.
const LCTL_SUBCOMMANDS: &[(&str, SubPlanner)] =
    &[("dl", plan_lctl_dl), ("device_list", plan_lctl_dl), ("get_param", plan_get_param), ("ping", plan_ping)];

/// Default `lctl ping` timeout when none is given (lnet/utils: 1000 ms).
const LCTL_PING_TIMEOUT: Duration = Duration::from_secs(1);

fn usage(ctx: &Ctx, rng: &mut ChaCha8Rng) -> Plan {
    (between_ms(rng, 1, 5), StorageOp::Answer(common::unsupported(ctx.cmd)))
}

fn answer(rng: &mut ChaCha8Rng, result: CommandResult) -> Plan {
    (between_ms(rng, 1, 5), StorageOp::Answer(result))
}

// ----- mkdir -----------------------------------------------------------------------------------------

/// `mkdir [-p] <dir>...`.
pub(crate) fn plan_mkdir(_st: &SharedStorage, ctx: &Ctx, args: &[String], rng: &mut ChaCha8Rng) -> Plan {
    let parents = args.iter().any(|a| a == "-p");
    let dirs: Vec<String> = args.iter().filter(|a| !a.starts_with('-')).cloned().collect();
    if dirs.is_empty() || args.iter().any(|a| a.starts_with('-') && a != "-p") {
        return usage(ctx, rng);
    }
    (between_ms(rng, 1, 5), StorageOp::Mkdir { dirs, parents })
}

pub(crate) fn finish_mkdir(st: &mut SharedStorage, host: &str, dirs: &[String], parents: bool) -> CommandResult {
    let Some(h) = st.hosts.get_mut(host) else { return CommandResult::exited(1, "", "") };
    let mut stderr = String::new();
    for dir in dirs {
        if !parents && h.dirs.contains(dir) {
            stderr.push_str(&format!("mkdir: cannot create directory '{dir}': File exists\n"));
            continue;
        }
        for (i, _) in dir.match_indices('/').filter(|(i, _)| *i > 0) {
            h.dirs.insert(dir[..i].to_string());
        }
        h.dirs.insert(dir.trim_end_matches('/').to_string());
    }
    CommandResult::exited(if stderr.is_empty() { 0 } else { 1 }, "", stderr)
}

// ----- mount / umount --------------------------------------------------------------------------------

/// `mount -t lustre [-o opts] <source> <mountpoint>`.
pub(crate) fn plan_mount(st: &SharedStorage, ctx: &Ctx, args: &[String], rng: &mut ChaCha8Rng) -> Plan {
    let (mut fstype, mut options, mut pos) = (None, None, Vec::new());
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-t" => fstype = it.next().cloned(),
            "-o" => options = it.next().cloned(),
            s if s.starts_with('-') => return usage(ctx, rng),
            s => pos.push(s.to_string()),
        }
    }
    let [source, mountpoint] = pos.as_slice() else { return usage(ctx, rng) };
    let fstype = match fstype.as_deref() {
        Some(t @ ("lustre" | "lustre_tgt")) => t.to_string(),
        // a plain ZFS dataset (`fstype = "zfs"` targets): only a `pool/dataset` source
        Some("zfs") if zfs_pool_of(st, source).is_some() => "zfs".to_string(),
        _ => return usage(ctx, rng),
    };
    let Some(host) = st.hosts.get(ctx.host) else { return usage(ctx, rng) };
    let took = mount_duration(st, host, source, rng);
    (took, StorageOp::Mount { source: source.clone(), mountpoint: mountpoint.clone(), fstype, options })
}

/// ext4 MMP wait of one check: `2 × interval + 1` s (11 s), plus a little.
fn mmp_wait(rng: &mut ChaCha8Rng) -> Duration {
    LDISKFS_MMP_INTERVAL * 2 + Duration::from_secs(1) + between_ms(rng, 0, 1000)
}

fn mount_duration(st: &SharedStorage, host: &HostStorage, source: &str, rng: &mut ChaCha8Rng) -> Duration {
    if host.mounts.iter().any(|m| m.source == source) {
        return between_ms(rng, 20, 50);
    }
    if host.faults.mount_fails {
        return between_ms(rng, 1000, 3000);
    }
    match st.ldiskfs.get(source) {
        Some(dev) if dev.mmp && device_writer_live(st, source, &host.name) => mmp_wait(rng),
        Some(dev) if dev.mmp && dev.clean => mmp_wait(rng),
        Some(dev) if dev.mmp => mmp_wait(rng) + mmp_wait(rng),
        Some(_) => between_ms(rng, 1000, 3000),
        None if zfs_pool_of(st, source).is_some() => between_ms(rng, 1000, 3000),
        None => between_ms(rng, 50, 200),
    }
}

/// The pool of a `pool/dataset` source, if such a pool exists.
fn zfs_pool_of<'a>(st: &SharedStorage, source: &'a str) -> Option<&'a str> {
    let (pool, _) = source.split_once('/')?;
    st.pools.contains_key(pool).then_some(pool)
}

/// Is another live host updating the device's MMP block right now?
fn device_writer_live(st: &SharedStorage, device: &str, except: &str) -> bool {
    st.ldiskfs.get(device).is_some_and(|d| d.mmp)
        && st
            .hosts
            .values()
            .filter(|h| h.name != except && st.host_alive(&h.name))
            .any(|h| h.mounts.iter().any(|m| m.source == device && !m.stale))
}

/// Did another host update the device's MMP block at or after `since`?
fn device_written_since(st: &SharedStorage, device: &str, except: &str, since: Time) -> bool {
    if device_writer_live(st, device, except) {
        return true;
    }
    st.ldiskfs.get(device).and_then(|d| d.last_mmp_write).is_some_and(|t| t >= since)
}

/// A `mount -t lustre` being completed.
pub(crate) struct MountRequest {
    pub source: String,
    pub mountpoint: String,
    pub fstype: String,
    pub options: Option<String>,
    pub started: Time,
}

fn mount_failed(source: &str, mountpoint: &str, errno: i32) -> CommandResult {
    let (text, hint) = match errno {
        2 => ("No such file or directory", ""),
        5 => ("Input/output error", "Is the MGS running?\n"),
        _ => ("Device or resource busy", "Is the backend filesystem mounted?\n Check /etc/mtab and /proc/mounts\n"),
    };
    CommandResult::exited(errno, "", format!("mount.lustre: mount {source} at {mountpoint} failed: {text}\n{hint}"))
}

pub(crate) fn finish_mount(st: &mut SharedStorage, host: &str, req: MountRequest, now: Time) -> CommandResult {
    if req.fstype == "zfs" {
        return finish_mount_zfs(st, host, req, now);
    }
    let Some(h) = st.hosts.get(host) else { return mount_failed(&req.source, &req.mountpoint, 2) };
    if let Some(m) = h.mounts.iter().find(|m| m.source == req.source) {
        let msg =
            format!("mount.lustre: according to /etc/mtab {} is already mounted on {}\n", req.source, m.mountpoint);
        return CommandResult::exited(17, "", msg);
    }
    if !h.dirs.contains(&req.mountpoint) {
        return mount_failed(&req.source, &req.mountpoint, 2);
    }
    if h.faults.mount_fails {
        return mount_failed(&req.source, &req.mountpoint, 5);
    }
    let backing = if st.ldiskfs.contains_key(&req.source) {
        if let Some(refused) = ldiskfs_claim(st, host, &req, now) {
            return refused;
        }
        Backing::Ldiskfs
    } else {
        match zfs_mountable(st, host, &req.source) {
            Ok(pool) => Backing::Zfs { pool },
            Err(errno) => return mount_failed(&req.source, &req.mountpoint, errno),
        }
    };
    let lustre_name = st.lustre_names.get(&req.source).cloned().unwrap_or_else(|| req.source.replace('/', "-"));
    // Imperative Recovery needs the MGS: the earliest MGS mount on a powered host
    let mgs_since = st
        .hosts
        .values()
        .filter(|h| h.powered)
        .flat_map(|h| h.mounts.iter())
        .filter(|m| m.lustre_name == "MGS" || m.lustre_name.ends_with("-MGS"))
        .map(|m| m.since)
        .min();
    st.recovery.on_mount(&lustre_name, now, mgs_since);
    let mount = SimMount {
        source: req.source,
        mountpoint: req.mountpoint,
        fstype: req.fstype,
        options: req.options,
        backing,
        lustre_name,
        stale: false,
        since: now,
    };
    if let Some(h) = st.hosts.get_mut(host) {
        h.mounts.push(mount);
    }
    CommandResult::exited(0, "", "")
}

/// `mount -t zfs <pool/dataset> <mountpoint>` (util-linux `mount` → `mount.zfs`, OpenZFS 2.1/2.3 texts).
fn finish_mount_zfs(st: &mut SharedStorage, host: &str, req: MountRequest, now: Time) -> CommandResult {
    let Some(h) = st.hosts.get(host) else { return CommandResult::exited(1, "", "") };
    if h.mounts.iter().any(|m| m.source == req.source) {
        return CommandResult::exited(1, "", format!("filesystem '{}' is already mounted\n", req.source));
    }
    if !h.dirs.contains(&req.mountpoint) {
        return CommandResult::exited(2, "", format!("mount: {}: mount point does not exist.\n", req.mountpoint));
    }
    if h.faults.mount_fails {
        let msg = format!("filesystem '{}' can not be mounted: Input/output error\n", req.source);
        return CommandResult::exited(1, "", msg);
    }
    let pool = match zfs_mountable(st, host, &req.source) {
        Ok(pool) => pool,
        Err(5) => {
            let msg = format!("filesystem '{}' can not be mounted: Input/output error\n", req.source);
            return CommandResult::exited(1, "", msg);
        }
        Err(_) => {
            let msg = format!("filesystem '{}' cannot be mounted, unable to open the dataset\n", req.source);
            return CommandResult::exited(1, "", msg);
        }
    };
    let mount = SimMount {
        lustre_name: String::new(),
        source: req.source,
        mountpoint: req.mountpoint,
        fstype: req.fstype,
        options: req.options,
        backing: Backing::Zfs { pool },
        stale: false,
        since: now,
    };
    if let Some(h) = st.hosts.get_mut(host) {
        h.mounts.push(mount);
    }
    CommandResult::exited(0, "", "")
}

/// A ZFS source can be mounted when its pool is imported here, not suspended, and holds the dataset.
fn zfs_mountable(st: &SharedStorage, host: &str, source: &str) -> Result<String, i32> {
    let pool = zfs_pool_of(st, source).ok_or(2)?;
    let health = st.health_on(pool, host).ok_or(2)?;
    let has_dataset = st.pools.get(pool).is_some_and(|p| p.datasets.iter().any(|d| d.name == source));
    match (health, has_dataset) {
        (_, false) => Err(2),
        (PoolHealth::Suspended, _) => Err(5),
        _ => Ok(pool.to_string()),
    }
}

/// ext4 MMP at mount: refuse (EBUSY) if another host updated the block during our wait; otherwise claim
/// the device, making the mounts of hung holders stale.
fn ldiskfs_claim(st: &mut SharedStorage, host: &str, req: &MountRequest, now: Time) -> Option<CommandResult> {
    let mmp = st.ldiskfs.get(&req.source).is_some_and(|d| d.mmp);
    if mmp && device_written_since(st, &req.source, host, req.started) {
        return Some(ldiskfs_busy(st, host, req, now));
    }
    if mmp {
        for other in st.hosts.values_mut().filter(|h| h.name != host) {
            for m in other.mounts.iter_mut().filter(|m| m.source == req.source) {
                m.stale = true;
            }
        }
    }
    if let Some(dev) = st.ldiskfs.get_mut(&req.source) {
        dev.clean = false;
        dev.last_mmp_write = Some(now);
    }
    None
}

fn ldiskfs_busy(st: &SharedStorage, host: &str, req: &MountRequest, now: Time) -> CommandResult {
    let mut result = mount_failed(&req.source, &req.mountpoint, 16);
    let short = req.source.rsplit('/').next().unwrap_or(&req.source);
    let owner = st
        .hosts
        .values()
        .filter(|h| h.name != host)
        .find(|h| h.mounts.iter().any(|m| m.source == req.source && !m.stale))
        .map_or("<unknown>", |h| h.name.as_str());
    let last_write = if device_writer_live(st, &req.source, host) {
        now
    } else {
        st.ldiskfs.get(&req.source).and_then(|d| d.last_mmp_write).unwrap_or(now)
    };
    let last = st.epoch_unix + last_write.as_micros() / 1_000_000;
    result.stderr.push_str(&format!(
        "LDISKFS-fs warning (device {short}): ldiskfs_multi_mount_protect: Device is already active on another node.\n\
         LDISKFS-fs warning (device {short}): ldiskfs_multi_mount_protect: MMP failure info: \
         last update time: {last}, last update node: {owner}, last update device: {short}\n"
    ));
    result
}

/// `umount [-f] [-l] <mountpoint|source>`.
pub(crate) fn plan_umount(_st: &SharedStorage, ctx: &Ctx, args: &[String], rng: &mut ChaCha8Rng) -> Plan {
    let targets: Vec<&String> = args.iter().filter(|a| !matches!(a.as_str(), "-f" | "-l")).collect();
    match targets.as_slice() {
        [t] if !t.starts_with('-') => (between_ms(rng, 300, 1500), StorageOp::Umount { target: t.to_string() }),
        _ => usage(ctx, rng),
    }
}

pub(crate) fn finish_umount(st: &mut SharedStorage, host: &str, target: &str, now: Time) -> CommandResult {
    let alive = st.host_alive(host);
    let Some(h) = st.hosts.get_mut(host) else { return CommandResult::exited(32, "", "") };
    let Some(i) = h.mounts.iter().position(|m| m.mountpoint == target || m.source == target) else {
        return CommandResult::exited(32, "", format!("umount: {target}: not mounted.\n"));
    };
    let m = h.mounts.remove(i);
    st.recovery.on_down(&m.lustre_name, now);
    if m.backing == Backing::Ldiskfs && !m.stale {
        if let Some(dev) = st.ldiskfs.get_mut(&m.source) {
            dev.clean = true;
            if alive && dev.mmp {
                dev.last_mmp_write = Some(now);
            }
        }
    }
    CommandResult::exited(0, "", "")
}

// ----- df --------------------------------------------------------------------------------------------

/// `df -ht lustre` (also `-h -t lustre`).
pub(crate) fn plan_df(_st: &SharedStorage, ctx: &Ctx, args: &[String], rng: &mut ChaCha8Rng) -> Plan {
    let (mut human, mut fstype) = (false, None);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-h" => human = true,
            "-t" => fstype = it.next().cloned(),
            "-ht" => {
                human = true;
                fstype = it.next().cloned();
            }
            _ => return usage(ctx, rng),
        }
    }
    if !human || fstype.as_deref() != Some("lustre") {
        return usage(ctx, rng);
    }
    (between_ms(rng, 5, 20), StorageOp::Df)
}

/// Only type `lustre` matches: targets mounted as `lustre_tgt` are not listed (as with the real `df -t`).
pub(crate) fn finish_df(st: &SharedStorage, host: &str) -> CommandResult {
    let rows: Vec<[String; 6]> =
        st.mounts(host).iter().filter(|m| m.fstype == "lustre").map(|m| df_row(st, m)).collect();
    if rows.is_empty() {
        return CommandResult::exited(1, "", "df: no file systems processed\n");
    }
    let header = ["Filesystem", "Size", "Used", "Avail", "Use%", "Mounted on"].map(String::from);
    let min = [14, 5, 5, 5, 4, 0];
    let widths: Vec<usize> =
        (0..6).map(|i| rows.iter().map(|r| r[i].len()).chain([header[i].len(), min[i]]).max().unwrap_or(0)).collect();
    let line = |r: &[String; 6]| {
        format!(
            "{:<w0$} {:>w1$} {:>w2$} {:>w3$} {:>w4$} {}\n",
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
            r[5],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3],
            w4 = widths[4]
        )
    };
    let mut out = line(&header);
    for r in &rows {
        out.push_str(&line(r));
    }
    CommandResult::exited(0, out, "")
}

fn df_row(st: &SharedStorage, m: &SimMount) -> [String; 6] {
    let (used, avail) = match &m.backing {
        Backing::Zfs { pool } => {
            let p = st.pools.get(pool);
            let refer = p.and_then(|p| p.datasets.iter().find(|d| d.name == m.source)).map_or(0, |d| d.refer);
            (refer, p.map_or(0, |p| p.avail))
        }
        Backing::Ldiskfs => st.ldiskfs.get(&m.source).map_or((0, 0), |d| (d.used, d.size.saturating_sub(d.used))),
    };
    let total = used + avail;
    let pct = if total == 0 { "-".to_string() } else { format!("{}%", (used * 100).div_ceil(total)) };
    [m.source.clone(), human(total), human(used), human(avail), pct, m.mountpoint.clone()]
}

/// coreutils `-h`: 1024-based, rounded up, one decimal below 10 (`2.2M`, `956M`).
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["K", "M", "G", "T", "P", "E"];
    if bytes < 1024 {
        return bytes.to_string();
    }
    let mut v = bytes as f64 / 1024.0;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if v < 10.0 {
        let r = (v * 10.0).ceil() / 10.0;
        if r < 10.0 {
            return format!("{r:.1}{}", UNITS[i]);
        }
        return format!("10{}", UNITS[i]);
    }
    let r = v.ceil();
    if r >= 1024.0 && i < UNITS.len() - 1 {
        return format!("1.0{}", UNITS[i + 1]);
    }
    format!("{r:.0}{}", UNITS[i])
}

// ----- lctl ------------------------------------------------------------------------------------------

/// `lctl <subcommand> ...`.
pub(crate) fn plan_lctl(st: &SharedStorage, ctx: &Ctx, args: &[String], rng: &mut ChaCha8Rng) -> Plan {
    let Some(sub) = args.first() else { return usage(ctx, rng) };
    match LCTL_SUBCOMMANDS.iter().find(|(name, _)| name == sub) {
        Some((_, planner)) => planner(st, ctx, &args[1..], rng),
        None => usage(ctx, rng),
    }
}

fn plan_lctl_dl(_st: &SharedStorage, ctx: &Ctx, args: &[String], rng: &mut ChaCha8Rng) -> Plan {
    if !args.is_empty() {
        return usage(ctx, rng);
    }
    (between_ms(rng, 5, 20), StorageOp::LctlDl)
}

fn plan_get_param(_st: &SharedStorage, ctx: &Ctx, args: &[String], rng: &mut ChaCha8Rng) -> Plan {
    match args {
        [n, p] if n == "-n" && p == "health_check" => (between_ms(rng, 5, 15), StorageOp::LctlHealth),
        [n, p] if n == "-n" && recovery_device(p).is_some() => {
            (between_ms(rng, 3, 10), StorageOp::LctlRecovery { device: recovery_device(p).unwrap_or_default().to_string() })
        }
        [n, p] if n == "-n" => {
            let msg = format!("error: get_param: param_path '{p}': No such file or directory\n");
            answer(rng, CommandResult::exited(2, "", msg))
        }
        _ => usage(ctx, rng),
    }
}

/// The device of `mdt.<device>.recovery_status` / `obdfilter.<device>.recovery_status`.
fn recovery_device(param: &str) -> Option<&str> {
    let rest = param.strip_prefix("mdt.").or_else(|| param.strip_prefix("obdfilter."))?;
    rest.strip_suffix(".recovery_status").filter(|d| !d.is_empty() && !d.contains('.'))
}

/// `recovery_status` of a device mounted on `host`; the real error when it is not mounted there.
pub(crate) fn finish_recovery_status(st: &SharedStorage, host: &str, device: &str, now: Time) -> CommandResult {
    let mounted = st.hosts.get(host).is_some_and(|h| h.mounts.iter().any(|m| m.lustre_name == device && !m.stale));
    if !mounted {
        let msg = format!("error: get_param: param_path '*/{device}/recovery_status': No such file or directory\n");
        return CommandResult::exited(2, "", msg);
    }
    CommandResult::exited(0, st.recovery.status_text(device, now, st.epoch_unix), "")
}

/// `lctl ping <nid> [timeout seconds]`.
fn plan_ping(st: &SharedStorage, ctx: &Ctx, args: &[String], rng: &mut ChaCha8Rng) -> Plan {
    let timeout = match args.get(1).map(|t| t.parse::<u64>()) {
        None => LCTL_PING_TIMEOUT,
        Some(Ok(secs)) => Duration::from_secs(secs),
        Some(Err(_)) => return usage(ctx, rng),
    };
    let Some(nid) = args.first().filter(|_| args.len() <= 2) else { return usage(ctx, rng) };
    let faulty = st.hosts.get(ctx.host).is_some_and(|h| h.faults.lctl_ping_fails);
    let took = if faulty { timeout } else { between_ms(rng, 1, 5) };
    (took, StorageOp::LctlPing { nid: nid.clone() })
}

pub(crate) fn finish_ping(st: &SharedStorage, host: &str, nid: &str) -> CommandResult {
    if st.hosts.get(host).is_some_and(|h| h.faults.lctl_ping_fails) {
        return CommandResult::exited(1, "", format!("failed to ping {nid}: Input/output error\n"));
    }
    CommandResult::exited(0, format!("12345-0@lo\n12345-{nid}\n"), "")
}

/// `healthy`, the injected text, or `NOT HEALTHY` with the devices whose backing storage is dead.
pub(crate) fn finish_health(st: &SharedStorage, host: &str) -> CommandResult {
    if let Some(text) = st.hosts.get(host).and_then(|h| h.faults.health_check.clone()) {
        return CommandResult::exited(0, format!("{}\n", text.trim_end()), "");
    }
    let sick: Vec<String> = st
        .mounts(host)
        .iter()
        .filter(|m| m.fstype != "zfs" && !mount_healthy(st, host, m))
        .map(|m| format!("device {}-osd reported unhealthy\n", m.lustre_name))
        .collect();
    if sick.is_empty() {
        return CommandResult::exited(0, "healthy\n", "");
    }
    CommandResult::exited(0, format!("{}NOT HEALTHY\n", sick.concat()), "")
}

fn mount_healthy(st: &SharedStorage, host: &str, m: &SimMount) -> bool {
    match &m.backing {
        Backing::Ldiskfs => !m.stale,
        Backing::Zfs { pool } => st.health_on(pool, host) != Some(PoolHealth::Suspended),
    }
}

pub(crate) fn finish_lctl_dl(st: &SharedStorage, host: &str) -> CommandResult {
    let devices = lctl_devices(st, host);
    let out: String = devices
        .iter()
        .enumerate()
        .map(|(i, (kind, name, uuid, refs))| format!("{i:3} UP {kind} {name} {uuid} {refs}\n"))
        .collect();
    CommandResult::exited(0, out, "")
}

/// The device list of a host: per mounted target its OSD and service device, plus one MGC per host and
/// one OSS/MDS service per kind, in the order of the real samples.
fn lctl_devices(st: &SharedStorage, host: &str) -> Vec<(String, String, String, u32)> {
    let mut out = Vec::new();
    let (mut mgc, mut oss, mut mds) = (false, false, false);
    for m in st.mounts(host).iter().filter(|m| m.fstype != "zfs") {
        let name = m.lustre_name.as_str();
        let osd = if m.backing == Backing::Ldiskfs { "osd-ldiskfs" } else { "osd-zfs" };
        out.push((osd.into(), format!("{name}-osd"), format!("{name}-osd_UUID"), 4));
        if name == "MGS" {
            out.push(("mgs".into(), "MGS".into(), "MGS".into(), 7));
        }
        if !mgc {
            mgc = true;
            out.push(("mgc".into(), format!("MGC{}", st.mgs_nid), fake_uuid(host), 5));
        }
        if name.contains("MDT") {
            if !mds {
                mds = true;
                out.push(("mds".into(), "MDS".into(), "MDS_uuid".into(), 3));
            }
            out.push(("mdt".into(), name.into(), format!("{name}_UUID"), 3));
        } else if name.contains("OST") {
            if !oss {
                oss = true;
                out.push(("ost".into(), "OSS".into(), "OSS_uuid".into(), 2));
            }
            out.push(("obdfilter".into(), name.into(), format!("{name}_UUID"), 4));
        }
    }
    out
}

/// A UUID-shaped identifier stable per host (the real MGC UUID is random per mount).
fn fake_uuid(host: &str) -> String {
    let a = common::stable_hash(host);
    let b = common::stable_hash(&format!("{host}/mgc"));
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}

// ----- cat /proc/mounts ------------------------------------------------------------------------------

/// `cat /proc/mounts` (any other file: not found).
pub(crate) fn plan_cat(_st: &SharedStorage, ctx: &Ctx, args: &[String], rng: &mut ChaCha8Rng) -> Plan {
    match args {
        [f] if f == "/proc/mounts" => (between_ms(rng, 1, 3), StorageOp::CatMounts),
        [f] => answer(rng, CommandResult::exited(1, "", format!("cat: {f}: No such file or directory\n"))),
        _ => usage(ctx, rng),
    }
}

pub(crate) fn finish_cat_mounts(st: &SharedStorage, host: &str) -> CommandResult {
    let mut out = String::from(concat!(
        "sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0\n",
        "proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0\n",
        "/dev/sda1 / ext4 rw,relatime,errors=remount-ro 0 0\n"
    ));
    for m in st.mounts(host) {
        let opts = m.options.as_ref().map_or(String::new(), |o| format!(",{o}"));
        out.push_str(&format!("{} {} {} rw{opts} 0 0\n", m.source, m.mountpoint, m.fstype));
    }
    CommandResult::exited(0, out, "")
}

#[cfg(test)]
mod tests {
    use super::human;

    #[test]
    fn human_like_coreutils() {
        assert_eq!(human(960 * 1024 * 1024), "960M");
        assert_eq!(human(2_300_000), "2.2M");
        assert_eq!(human(24 * 1024), "24K");
        assert_eq!(human(0), "0");
        assert_eq!(human(1023 * 1024 * 1024 + 1), "1.0G");
    }
}
