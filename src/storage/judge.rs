//! Judges: what a step's [`CommandResult`] means, using the parsers of `parse.rs`.
//!
//! Common rules: a command that timed out is [`StorageError::TimedOut`]; one that could not be started or was
//! killed by a signal is [`StorageError::CommandFailed`]; an answer that cannot be understood is
//! [`StorageError::Unparseable`]. A step passes only on a positive answer.

use std::path::Path;

use crate::command::{Command, CommandResult, Exit};
use crate::config::TargetConfig;

use super::parse::{
    first_line, parse_df, parse_health_check, parse_import_refusal, parse_lctl_dl, parse_proc_mounts,
    parse_zdb_mos_config, parse_zfs_list, parse_zpool_list_health, parse_zpool_status, ImportRefusal, LustreHealth,
    ParseError, PoolHealth, ZdbLabel,
};
use super::sequence::Step;
use super::StorageError;

/// What a judge needs to know about the step it judges.
pub(super) struct Ctx<'a> {
    pub step: Step,
    pub command: &'a Command,
    pub target: &'a TargetConfig,
    /// The label read by `zdb-check`, for the steps after it.
    pub label: Option<&'a ZdbLabel>,
}

impl Ctx<'_> {
    fn name(&self) -> String {
        self.step.name().to_string()
    }

    fn failed(&self, detail: impl Into<String>) -> StorageError {
        StorageError::CommandFailed { step: self.name(), command: self.command.display(), detail: detail.into() }
    }

    fn unparseable(&self, e: ParseError) -> StorageError {
        StorageError::Unparseable { step: self.name(), command: self.command.display(), detail: e.0 }
    }

    fn unhealthy(&self, detail: impl Into<String>) -> StorageError {
        StorageError::Unhealthy { step: self.name(), detail: detail.into() }
    }

    fn pool(&self) -> &str {
        self.target.kind.pool().unwrap_or_default()
    }
}

/// The exit code of a command that ran to its end; timeouts, signals and spawn failures are errors.
fn exit_code(ctx: &Ctx<'_>, r: &CommandResult) -> Result<i32, StorageError> {
    match &r.exit {
        Exit::Code(c) => Ok(*c),
        Exit::TimedOut => Err(StorageError::TimedOut { step: ctx.name(), command: ctx.command.display() }),
        Exit::Signal(_) | Exit::SpawnFailed(_) => Err(ctx.failed(r.summary())),
    }
}

/// Exit 0, or [`StorageError::CommandFailed`] quoting the exit status and the first line of stderr.
fn require_success(ctx: &Ctx<'_>, r: &CommandResult) -> Result<(), StorageError> {
    match exit_code(ctx, r)? {
        0 => Ok(()),
        _ => Err(ctx.failed(r.summary())),
    }
}

/// Exit 0, or a failure whose stderr says the work was already done (`umount: /x: not mounted.`,
/// `cannot open 'pool': no such pool`).
fn already_done_ok(ctx: &Ctx<'_>, r: &CommandResult, done_texts: &[&str]) -> Result<(), StorageError> {
    match exit_code(ctx, r)? {
        0 => Ok(()),
        _ if done_texts.iter().any(|t| r.stderr.contains(t)) => Ok(()),
        _ => Err(ctx.failed(r.summary())),
    }
}

/// Judge any step but `zdb-check` (see [`zdb_check`]).
pub(super) fn judge(ctx: &Ctx<'_>, r: &CommandResult) -> Result<(), StorageError> {
    match ctx.step {
        Step::ZdbCheck => zdb_check(ctx, r).map(|_| ()),
        Step::Import => import(ctx, r),
        Step::PoolStatus => pool_status(ctx, r).map(|_| ()),
        Step::Dataset => dataset(ctx, r),
        Step::Mkdir | Step::Export => require_success(ctx, r),
        Step::UmountIfMounted => already_done_ok(ctx, r, &["not mounted"]),
        Step::ExportIfImported => already_done_ok(ctx, r, &["no such pool"]),
        Step::Mount => mount(ctx, r),
        Step::VerifyDf => verify_df(ctx, r),
        Step::VerifyLctl => verify_lctl(ctx, r),
        Step::PoolHealth => pool_health(ctx, r),
        Step::Mounted => mounted(ctx, r),
        Step::VerifyMount => verify_mount(ctx, r),
        Step::HealthCheck => health_check(ctx, r),
        Step::LnetPing | Step::CheckCommand => match exit_code(ctx, r)? {
            0 => Ok(()),
            _ => Err(ctx.unhealthy(format!("`{}`: {}", ctx.command.display(), r.summary()))),
        },
    }
}

/// `zdb -e -C <pool>`: the MOS config of the pool named in the command. An unreadable label aborts.
pub(super) fn zdb_check(ctx: &Ctx<'_>, r: &CommandResult) -> Result<ZdbLabel, StorageError> {
    require_success(ctx, r)?;
    let label = parse_zdb_mos_config(&r.stdout).map_err(|e| ctx.unparseable(e))?;
    if label.name != ctx.pool() {
        return Err(ctx.unparseable(ParseError(format!(
            "the config names pool {:?}, not {:?}",
            label.name,
            ctx.pool()
        ))));
    }
    Ok(label)
}

/// `zpool import [-f] -o cachefile=none <pool>`: refusals are judged by their text.
fn import(ctx: &Ctx<'_>, r: &CommandResult) -> Result<(), StorageError> {
    if exit_code(ctx, r)? == 0 {
        return Ok(());
    }
    match parse_import_refusal(&r.stderr) {
        // The previous owner is writing the pool: it is alive. A fence that said "off" lied.
        ImportRefusal::ActiveElsewhere { .. } => {
            Err(StorageError::MmpActive { step: ctx.name(), detail: first_line(&r.stderr).to_string() })
        }
        ImportRefusal::PreviouslyInUse { host, hostid } => Err(StorageError::NotExported {
            step: ctx.name(),
            pool: ctx.pool().to_string(),
            hostname: host.or_else(|| ctx.label.map(|l| l.hostname.clone())).unwrap_or_default(),
            hostid: hostid.or_else(|| ctx.label.map(ZdbLabel::hostid_or_zero)).unwrap_or(0),
        }),
        ImportRefusal::HostidNotSet
        | ImportRefusal::NoSuchPool
        | ImportRefusal::NameExists
        | ImportRefusal::Other(_) => Err(ctx.failed(r.summary())),
    }
}

/// `zpool status -x <pool>`: the pool's `state:` decides, not the wording. `pool '<pool>' is healthy` is
/// ONLINE without remarks; otherwise `-x` prints the pool's full block, and it does so for ONLINE pools too
/// whenever OpenZFS has something to say (`status_callback` in zpool_main.c: a non-native block size,
/// recovered checksum errors, features not enabled, an old on-disk format...). ONLINE and DEGRADED serve data
/// (as the health monitor and ocf:heartbeat:ZFS judge them): the step passes and the remark comes back as a
/// [`PoolRemark`] for the engine to report. Any other state (SUSPENDED, FAULTED, UNAVAIL...) stops the run.
pub(super) fn pool_status(ctx: &Ctx<'_>, r: &CommandResult) -> Result<Option<PoolRemark>, StorageError> {
    require_success(ctx, r)?;
    let st = parse_zpool_status(&r.stdout).map_err(|e| ctx.unparseable(e))?;
    if st.healthy.iter().any(|p| p == ctx.pool()) {
        return Ok(None);
    }
    let Some(block) = st.pool(ctx.pool()) else {
        return Err(ctx.unhealthy(format!("pool {} not reported healthy: {}", ctx.pool(), first_line(&r.stdout))));
    };
    let state = block.state.as_deref().unwrap_or("(no state line)");
    let health = PoolHealth::parse(state);
    if health.is_healthy() {
        return Ok(Some(PoolRemark { pool: ctx.pool().to_string(), state: health.to_string(), status: block.status.clone() }));
    }
    let detail = match &block.status {
        Some(status) => format!("pool {}: state: {state}; status: {status}", ctx.pool()),
        None => format!("pool {}: state: {state}", ctx.pool()),
    };
    Err(ctx.unhealthy(detail))
}

/// What `zpool status -x` said about a pool that serves data but is not simply healthy: DEGRADED, or ONLINE with a
/// `status:` line. The engine reports it as an event (`pool_remark`) so notify and metrics see it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PoolRemark {
    pub pool: String,
    /// `ONLINE` or `DEGRADED`.
    pub state: String,
    /// The first line of the `status:` paragraph, if any.
    pub status: Option<String>,
}

/// `zfs list -H <pool/dataset>`: the dataset is listed (first field).
fn dataset(ctx: &Ctx<'_>, r: &CommandResult) -> Result<(), StorageError> {
    require_success(ctx, r)?;
    let ds = ctx.target.kind.mount_source();
    let list = parse_zfs_list(&r.stdout).map_err(|e| ctx.unparseable(e))?;
    if list.iter().any(|e| e.name == ds) {
        Ok(())
    } else {
        Err(ctx.failed(format!("dataset {ds} is not listed")))
    }
}

/// `mount -t lustre ...`: a busy device (another node holds it: ldiskfs MMP, or the backend is in use) is its
/// own error, so the engine aborts instead of retrying.
fn mount(ctx: &Ctx<'_>, r: &CommandResult) -> Result<(), StorageError> {
    if exit_code(ctx, r)? == 0 {
        return Ok(());
    }
    let text = format!("{}\n{}", r.stderr, r.stdout);
    const BUSY: &[&str] =
        &["already active on another node", "Device or resource busy", "Is the backend filesystem mounted"];
    if BUSY.iter().any(|b| text.contains(b)) {
        return Err(StorageError::DeviceBusy { step: ctx.name(), detail: first_line(&text).to_string() });
    }
    Err(ctx.failed(r.summary()))
}

/// `df -ht lustre`: a line with our source mounted on our mount point.
fn verify_df(ctx: &Ctx<'_>, r: &CommandResult) -> Result<(), StorageError> {
    require_success(ctx, r)?;
    let source = ctx.target.kind.mount_source();
    let entries = parse_df(&r.stdout).map_err(|e| ctx.unparseable(e))?;
    let found = entries
        .iter()
        .any(|e| Path::new(&e.mountpoint) == ctx.target.mountpoint && Path::new(&e.source) == Path::new(&source));
    if found {
        Ok(())
    } else {
        Err(ctx.unhealthy(format!("df -t lustre does not show {source} on {}", ctx.target.mountpoint.display())))
    }
}

/// `lctl dl`: the target's device is listed and `UP`.
fn verify_lctl(ctx: &Ctx<'_>, r: &CommandResult) -> Result<(), StorageError> {
    require_success(ctx, r)?;
    let devices = parse_lctl_dl(&r.stdout).map_err(|e| ctx.unparseable(e))?;
    let name = &ctx.target.lctl_device;
    match devices.iter().find(|d| &d.name == name) {
        Some(d) if d.status == "UP" => Ok(()),
        Some(d) => Err(ctx.unhealthy(format!("lustre device {name} is {}, not UP", d.status))),
        None => Err(ctx.unhealthy(format!("lustre device {name} is not in lctl dl"))),
    }
}

/// `zpool list -H -o name,health <pool>`: imported and ONLINE or DEGRADED. An absent pool is not healthy.
fn pool_health(ctx: &Ctx<'_>, r: &CommandResult) -> Result<(), StorageError> {
    if exit_code(ctx, r)? != 0 {
        return Err(ctx.unhealthy(format!("pool {} is not imported: {}", ctx.pool(), r.summary())));
    }
    let list = parse_zpool_list_health(&r.stdout).map_err(|e| ctx.unparseable(e))?;
    match list.iter().find(|p| p.name == ctx.pool()) {
        Some(p) if p.health.is_healthy() => Ok(()),
        Some(p) => Err(ctx.unhealthy(format!("pool {} is {}", p.name, p.health))),
        None => Err(ctx.unhealthy(format!("pool {} is not imported", ctx.pool()))),
    }
}

/// `cat /proc/mounts`: a Lustre target (fstype `lustre` or `lustre_tgt`) is mounted on the mount point.
fn mounted(ctx: &Ctx<'_>, r: &CommandResult) -> Result<(), StorageError> {
    require_success(ctx, r)?;
    let mounts = parse_proc_mounts(&r.stdout).map_err(|e| ctx.unparseable(e))?;
    if mounts.iter().any(|m| m.is_lustre_target() && Path::new(&m.mountpoint) == ctx.target.mountpoint) {
        Ok(())
    } else {
        Err(ctx.unhealthy(format!("no lustre target is mounted on {}", ctx.target.mountpoint.display())))
    }
}

/// `cat /proc/mounts` for a plain ZFS dataset: the dataset is mounted on the mount point with fstype `zfs`.
/// Anything else mounted there (another dataset, another filesystem) is not the target.
fn verify_mount(ctx: &Ctx<'_>, r: &CommandResult) -> Result<(), StorageError> {
    require_success(ctx, r)?;
    let mounts = parse_proc_mounts(&r.stdout).map_err(|e| ctx.unparseable(e))?;
    let source = ctx.target.kind.mount_source();
    let fstype = ctx.target.kind.fstype().as_str();
    let here: Vec<_> = mounts.iter().filter(|m| Path::new(&m.mountpoint) == ctx.target.mountpoint).collect();
    if here.iter().any(|m| m.fstype == fstype && m.source == source) {
        return Ok(());
    }
    let mountpoint = ctx.target.mountpoint.display();
    Err(ctx.unhealthy(match here.last() {
        Some(m) => format!("{mountpoint} holds {} ({}), not {source} ({fstype})", m.source, m.fstype),
        None => format!("{source} is not mounted on {mountpoint} (/proc/mounts has no {fstype} mount there)"),
    }))
}

/// `lctl get_param -n health_check`: `healthy`.
fn health_check(ctx: &Ctx<'_>, r: &CommandResult) -> Result<(), StorageError> {
    require_success(ctx, r)?;
    match parse_health_check(&r.stdout).map_err(|e| ctx.unparseable(e))? {
        LustreHealth::Healthy => Ok(()),
        LustreHealth::NotHealthy(detail) => Err(ctx.unhealthy(format!("lustre health_check: {detail}"))),
        LustreHealth::Lbug => Err(ctx.unhealthy("lustre health_check: LBUG")),
    }
}
