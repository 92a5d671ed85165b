//! Fence devices as pure state machines: each device kind turns an action into commands and judges their
//! results into a typed outcome. No process is run here; the engine asks its driver to run the commands.
//!
//! Contract used by the engine (`engine/fencing.rs`):
//! `DeviceOp::start(device, victim, action, now)` gives the first [`OpStep`]; the engine runs the command or
//! waits, then feeds back `on_result(now, result)` / `on_wake(now)` until it gets `OpStep::Done`.
//!
//! Semantics, the same for every kind that has commands (`ipmi`, `pdu-snmp`, `agent`):
//!
//! * **Off**: send off (always: it is idempotent, there is no pre-read), then read the status at once and
//!   every `poll_interval` until it reads off → `Confirmed(Off)`. `power_timeout` is measured from the
//!   completion of the off command; if the last read at that point still says on → `StillOn`
//!   (`OutletsStillOn` for a PDU, naming the outlets). A status read that fails (unreachable, timed out,
//!   unparseable) is polled again until `power_timeout`; if the last read failed, that error is the
//!   outcome. An authentication failure or a configuration error ends the operation at once.
//! * **On**: the same with on (`StillOff` / `OutletsStillOff`).
//! * **Status**: one status read → `Confirmed(On|Off)` or `Failed`. A PDU with some outlets on reads `On`
//!   (the node still has power through that supply).
//! * **Reboot**: our own sequencing: Off (verified), then On (verified). As in the FenceAgentAPI, a reboot
//!   succeeds iff its off part succeeded: the outcome is then `Confirmed(Off)` ("the node was confirmed
//!   off"), whatever the on part did; the on part's outcome is kept in [`DeviceOp::reboot_on_outcome`] for
//!   logs. A failed off part ends the reboot with that failure and never sends on.
//! * A command that ran past its timeout (`Exit::TimedOut`) is a failure (`TimedOut`), never a success.
//! * **Manual**: Off/Reboot → `NeedsOperator` at once; Status/On → `Unsupported`.
#![deny(clippy::disallowed_methods, clippy::disallowed_types)] // the pure core: see clippy.toml

pub mod agent;
pub mod ipmi;
mod manual;
pub mod pdu_snmp;

use std::fmt;
use std::time::Duration;

use crate::command::{Command, CommandResult, Exit};
use crate::config::{FenceDeviceConfig, FenceDeviceKind, NodeConfig, PduProfile, SnmpVersion};
use crate::time::Time;

pub use agent::{check_agent_options, metadata_command, parse_agent_metadata, MetadataError};

/// Shortest pause between two status polls, whatever `poll_interval` says (a zero interval would spin).
pub const MIN_POLL_INTERVAL: Duration = Duration::from_millis(10);

/// What an operator or the engine asks a device to do.
/// In JSON (events, notify, control requests): `off`, `on`, `status`, `reboot` (the capitalised names of
/// earlier versions are still read).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FenceAction {
    /// Cut the power and verify it reads off.
    #[serde(alias = "Off")]
    Off,
    /// Restore the power and verify it reads on.
    #[serde(alias = "On")]
    On,
    /// Read the power state once.
    #[serde(alias = "Status")]
    Status,
    /// Off (verified), then on; succeeds when the off part succeeded.
    #[serde(alias = "Reboot")]
    Reboot,
}

impl FenceAction {
    /// `off`, `on`, `status`, `reboot`.
    pub fn as_str(self) -> &'static str {
        match self {
            FenceAction::Off => "off",
            FenceAction::On => "on",
            FenceAction::Status => "status",
            FenceAction::Reboot => "reboot",
        }
    }
}

/// Power state of a fenced node as a device reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum PowerState {
    On,
    Off,
}

impl fmt::Display for PowerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PowerState::On => "on",
            PowerState::Off => "off",
        })
    }
}

/// Why a device operation did not confirm what was asked. Never a success: a timeout is a failure.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum FenceError {
    /// No answer from the device (or an answer the tool cannot tell apart from none).
    #[error("device {device}: unreachable: {detail}")]
    Unreachable { device: String, detail: String },
    /// The device answered and refused our credentials or privilege.
    #[error("device {device}: authentication failed: {detail}")]
    AuthFailed { device: String, detail: String },
    /// The command ran past its timeout and was killed.
    #[error("device {device}: command timed out: {command}")]
    TimedOut { device: String, command: String },
    /// After off, the status still read on when `power_timeout` ran out.
    #[error("device {device}: still reads on {waited:?} after off")]
    StillOn { device: String, waited: Duration },
    /// After on, the status still read off when `power_timeout` ran out.
    #[error("device {device}: still reads off {waited:?} after on")]
    StillOff { device: String, waited: Duration },
    /// A PDU: these outlets still read on `waited` after off (the others read off).
    #[error("device {device}: outlet(s) {} still read on {waited:?} after off", join_outlets(.outlets))]
    OutletsStillOn { device: String, outlets: Vec<u32>, waited: Duration },
    /// A PDU: these outlets still read off `waited` after on.
    #[error("device {device}: outlet(s) {} still read off {waited:?} after on", join_outlets(.outlets))]
    OutletsStillOff { device: String, outlets: Vec<u32>, waited: Duration },
    /// The command ran and reported a failure (or could not be started, or was killed by a signal).
    #[error("device {device}: `{command}` failed: {detail}")]
    CommandFailed { device: String, command: String, detail: String },
    /// The command succeeded but its output is not what the tool prints.
    #[error("device {device}: cannot understand the answer of `{command}`: {detail}")]
    Unparseable { device: String, command: String, detail: String },
    /// The device kind cannot do this action (e.g. `status` on a manual device).
    #[error("device {device}: {detail}")]
    Unsupported { device: String, detail: String },
    /// The device's configuration cannot be turned into a safe command (e.g. a PDU without outlets).
    #[error("device {device}: invalid configuration: {detail}")]
    InvalidConfig { device: String, detail: String },
}

impl FenceError {
    /// True for errors that polling again cannot cure (wrong credentials, bad configuration).
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            FenceError::AuthFailed { .. } | FenceError::InvalidConfig { .. } | FenceError::Unsupported { .. }
        )
    }
}

fn join_outlets(outlets: &[u32]) -> String {
    outlets.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

/// How a device operation ended.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum DeviceOutcome {
    /// The device confirmed this power state (after `off`: a status read off; after `status`: what it read;
    /// after `reboot`: always `Off`, meaning the off part was confirmed).
    Confirmed(PowerState),
    /// A `manual` device: the operator must confirm with `failoverd confirm-fenced NODE`.
    NeedsOperator,
    /// The device did not confirm what was asked, and why.
    Failed(FenceError),
}

/// What the engine must do next for a device operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpStep {
    /// Run this command and call `on_result` with its result.
    Run(Command),
    /// Call `on_wake` at this time (between status polls).
    WaitUntil(Time),
    /// The operation is over.
    Done(DeviceOutcome),
}

/// The three things a device can be told, whatever its kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    Off,
    On,
    Status,
}

impl Verb {
    /// `off`, `on` or `status`: the word ipmitool and the FenceAgentAPI both use.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Off => "off",
            Verb::On => "on",
            Verb::Status => "status",
        }
    }

    fn switching_to(want: PowerState) -> Verb {
        match want {
            PowerState::Off => Verb::Off,
            PowerState::On => Verb::On,
        }
    }
}

/// What one status read said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Reading {
    /// One power state for the whole node (BMC, agent).
    Single(PowerState),
    /// One state per outlet, in the configured order (PDU).
    Outlets(Vec<(u32, PowerState)>),
}

impl Reading {
    /// The node's power: a node with any outlet on still has power.
    fn power(&self) -> PowerState {
        match self {
            Reading::Single(p) => *p,
            Reading::Outlets(list) => {
                if list.iter().all(|(_, p)| *p == PowerState::Off) {
                    PowerState::Off
                } else {
                    PowerState::On
                }
            }
        }
    }

    /// True when every part of the node reads `want`.
    fn reached(&self, want: PowerState) -> bool {
        match self {
            Reading::Single(p) => *p == want,
            Reading::Outlets(list) => !list.is_empty() && list.iter().all(|(_, p)| *p == want),
        }
    }
}

/// The status-polling part of an off or on.
#[derive(Clone, Debug)]
struct Verify {
    want: PowerState,
    /// Completion of the off/on command: `power_timeout` counts from here.
    switched_at: Time,
    deadline: Time,
    /// The last status read (or why it failed).
    last: Option<Result<Reading, FenceError>>,
}

#[derive(Clone, Debug)]
enum Phase {
    /// The off/on command is out; its result comes to `on_result`.
    Switching {
        want: PowerState,
        command: Command,
    },
    /// A status poll is out.
    Polling {
        verify: Verify,
        command: Command,
    },
    /// Between two polls.
    Sleeping {
        verify: Verify,
        until: Time,
    },
    /// The single status read of `FenceAction::Status` is out.
    Reading {
        command: Command,
    },
    Finished(DeviceOutcome),
}

/// One action on one device for one victim node: the state machine that polls until the power state is
/// confirmed or `power_timeout` runs out.
#[derive(Clone, Debug)]
pub struct DeviceOp {
    device: FenceDeviceConfig,
    victim: String,
    action: FenceAction,
    phase: Phase,
    /// For a reboot: how the on part ended.
    reboot_on: Option<DeviceOutcome>,
}

impl DeviceOp {
    /// Begin `action` on `device` for `victim`; returns the op and its first step.
    pub fn start(
        device: &FenceDeviceConfig,
        victim: &NodeConfig,
        action: FenceAction,
        now: Time,
    ) -> (DeviceOp, OpStep) {
        let _ = now; // nothing is timed before the first command completes
        let mut op = DeviceOp {
            device: device.clone(),
            victim: victim.name.clone(),
            action,
            phase: Phase::Finished(DeviceOutcome::NeedsOperator),
            reboot_on: None,
        };
        op.phase = if let FenceDeviceKind::Manual = device.kind {
            Phase::Finished(manual::outcome(&device.name, action))
        } else if let Err(detail) = validate(device) {
            Phase::Finished(DeviceOutcome::Failed(FenceError::InvalidConfig { device: device.name.clone(), detail }))
        } else {
            match action {
                FenceAction::Status => Phase::Reading { command: op.command(Verb::Status) },
                FenceAction::Off | FenceAction::Reboot => {
                    Phase::Switching { want: PowerState::Off, command: op.command(Verb::Off) }
                }
                FenceAction::On => Phase::Switching { want: PowerState::On, command: op.command(Verb::On) },
            }
        };
        let step = op.step();
        (op, step)
    }

    /// Feed the result of the command the last step asked for.
    ///
    /// A result that arrives when no command is out (the op is waiting or done) is ignored and the current
    /// step is returned again.
    pub fn on_result(&mut self, now: Time, result: &CommandResult) -> OpStep {
        let phase = std::mem::replace(&mut self.phase, Phase::Finished(DeviceOutcome::NeedsOperator));
        self.phase = match phase {
            Phase::Switching { want, command } => match self.judge(Verb::switching_to(want), &command, result) {
                Err(e) => self.part_done(want, DeviceOutcome::Failed(e)),
                Ok(_) => {
                    let verify =
                        Verify { want, switched_at: now, deadline: now + self.device.power_timeout, last: None };
                    Phase::Polling { verify, command: self.command(Verb::Status) }
                }
            },
            Phase::Polling { mut verify, command } => {
                let read = self.judge(Verb::Status, &command, result);
                match read {
                    Ok(ref r) if r.reached(verify.want) => {
                        self.part_done(verify.want, DeviceOutcome::Confirmed(verify.want))
                    }
                    Err(e) if e.is_permanent() => self.part_done(verify.want, DeviceOutcome::Failed(e)),
                    read => {
                        verify.last = Some(read);
                        if now >= verify.deadline {
                            let err = self.deadline_error(&verify, now);
                            self.part_done(verify.want, DeviceOutcome::Failed(err))
                        } else {
                            let interval = self.device.poll_interval.max(MIN_POLL_INTERVAL);
                            let until = (now + interval).min(verify.deadline);
                            Phase::Sleeping { verify, until }
                        }
                    }
                }
            }
            Phase::Reading { command } => match self.judge(Verb::Status, &command, result) {
                Ok(r) => Phase::Finished(DeviceOutcome::Confirmed(r.power())),
                Err(e) => Phase::Finished(DeviceOutcome::Failed(e)),
            },
            other @ (Phase::Sleeping { .. } | Phase::Finished(_)) => other,
        };
        self.step()
    }

    /// Called at (or after) the time a `WaitUntil` step named. Called early, it asks to wait again; called
    /// while a command is out, it returns that `Run` step again (the engine must not run it twice).
    pub fn on_wake(&mut self, now: Time) -> OpStep {
        if let Phase::Sleeping { verify, until } = &self.phase {
            if now >= *until {
                let verify = verify.clone();
                self.phase = Phase::Polling { verify, command: self.command(Verb::Status) };
            }
        }
        self.step()
    }

    /// The step the op is at: the command that is out, the time it waits for, or its outcome.
    pub fn step(&self) -> OpStep {
        match &self.phase {
            Phase::Switching { command, .. } | Phase::Polling { command, .. } | Phase::Reading { command } => {
                OpStep::Run(command.clone())
            }
            Phase::Sleeping { until, .. } => OpStep::WaitUntil(*until),
            Phase::Finished(outcome) => OpStep::Done(outcome.clone()),
        }
    }

    /// The outcome, once the op is done.
    pub fn outcome(&self) -> Option<&DeviceOutcome> {
        match &self.phase {
            Phase::Finished(outcome) => Some(outcome),
            _ => None,
        }
    }

    /// For a reboot whose off part was confirmed: how the on part ended (for logs; it does not change the
    /// outcome). `None` for other actions, or before the on part ended.
    pub fn reboot_on_outcome(&self) -> Option<&DeviceOutcome> {
        self.reboot_on.as_ref()
    }

    /// Name of the device (`[[fence_device]] name`).
    pub fn device_name(&self) -> &str {
        &self.device.name
    }

    /// Name of the node being fenced.
    pub fn victim(&self) -> &str {
        &self.victim
    }

    /// The action this op carries out.
    pub fn action(&self) -> FenceAction {
        self.action
    }

    /// One part (off or on) ended with `outcome`: move on to the on part of a reboot, or finish.
    fn part_done(&mut self, want: PowerState, outcome: DeviceOutcome) -> Phase {
        if self.action != FenceAction::Reboot {
            return Phase::Finished(outcome);
        }
        match (want, outcome) {
            (PowerState::Off, DeviceOutcome::Confirmed(PowerState::Off)) => {
                Phase::Switching { want: PowerState::On, command: self.command(Verb::On) }
            }
            (PowerState::Off, failed) => Phase::Finished(failed),
            (PowerState::On, on_outcome) => {
                self.reboot_on = Some(on_outcome);
                Phase::Finished(DeviceOutcome::Confirmed(PowerState::Off))
            }
        }
    }

    /// The failure when `power_timeout` ran out before the state was reached.
    fn deadline_error(&self, verify: &Verify, now: Time) -> FenceError {
        let device = self.device.name.clone();
        let waited = now.since(verify.switched_at);
        match &verify.last {
            Some(Err(e)) => e.clone(),
            Some(Ok(Reading::Outlets(list))) => {
                let outlets: Vec<u32> = list.iter().filter(|(_, p)| *p != verify.want).map(|(n, _)| *n).collect();
                match verify.want {
                    PowerState::Off => FenceError::OutletsStillOn { device, outlets, waited },
                    PowerState::On => FenceError::OutletsStillOff { device, outlets, waited },
                }
            }
            Some(Ok(Reading::Single(_))) | None => match verify.want {
                PowerState::Off => FenceError::StillOn { device, waited },
                PowerState::On => FenceError::StillOff { device, waited },
            },
        }
    }

    fn command(&self, verb: Verb) -> Command {
        device_command(&self.device, verb).unwrap_or_else(|| Command::new(Vec::<String>::new(), self.device.timeout))
    }

    fn judge(&self, verb: Verb, command: &Command, result: &CommandResult) -> Result<Reading, FenceError> {
        let ctx = Judge { device: &self.device.name, command, result };
        if let Some(e) = ctx.abnormal_exit() {
            return Err(e);
        }
        match &self.device.kind {
            FenceDeviceKind::Ipmi(cfg) => ipmi::judge(&ctx, cfg, verb),
            FenceDeviceKind::PduSnmp(cfg) => pdu_snmp::judge(&ctx, cfg, verb),
            FenceDeviceKind::Agent(_) => agent::judge(&ctx, verb),
            FenceDeviceKind::Manual => Err(manual::unsupported(&self.device.name, verb)),
        }
    }
}

/// The command that tells `device` to do `verb` (`None` for a manual device, which has no commands).
///
/// This is exactly what [`DeviceOp`] runs; it is public so that tools (`doctor`, tests, the simulator's
/// own checks) can build the same argv.
pub fn device_command(device: &FenceDeviceConfig, verb: Verb) -> Option<Command> {
    match &device.kind {
        FenceDeviceKind::Ipmi(cfg) => Some(ipmi::command(cfg, verb, device.timeout)),
        FenceDeviceKind::PduSnmp(cfg) => Some(pdu_snmp::command(cfg, verb, device.timeout)),
        FenceDeviceKind::Agent(cfg) => Some(agent::command(cfg, verb.as_str(), device.timeout)),
        FenceDeviceKind::Manual => None,
    }
}

/// Check that `device` can be turned into safe commands; the reason if not.
pub fn validate(device: &FenceDeviceConfig) -> Result<(), String> {
    match &device.kind {
        FenceDeviceKind::Ipmi(cfg) => ipmi::validate(cfg),
        FenceDeviceKind::PduSnmp(cfg) => pdu_snmp::validate(cfg),
        FenceDeviceKind::Agent(cfg) => agent::validate(cfg),
        FenceDeviceKind::Manual => Ok(()),
    }
}

/// A one-line description of a device for logs: name, kind and address. Never a secret (passwords and
/// communities live in files that are only named by the command's secrets, and are not named here either).
pub fn describe(device: &FenceDeviceConfig) -> String {
    let what = match &device.kind {
        FenceDeviceKind::Ipmi(c) => {
            let mut s = format!(
                "ipmi {}@{}:{} ({}, {}",
                c.username,
                c.host,
                c.port,
                if c.lanplus { "lanplus" } else { "lan" },
                c.privilege.as_ipmitool()
            );
            if let Some(cipher) = c.cipher {
                s.push_str(&format!(", cipher {cipher}"));
            }
            s.push(')');
            s
        }
        FenceDeviceKind::PduSnmp(c) => format!(
            "pdu-snmp {}:{} outlet(s) {} ({}, {})",
            c.host,
            c.port,
            join_outlets(&c.outlets),
            match c.profile {
                PduProfile::ApcRpdu => "APC rPDU",
                PduProfile::ApcMasterSwitch => "APC MasterSwitch",
                PduProfile::Tripplite => "Tripplite",
            },
            match c.snmp_version {
                SnmpVersion::V1 => "SNMPv1",
                SnmpVersion::V2c => "SNMPv2c",
            }
        ),
        FenceDeviceKind::Agent(c) => {
            let mut s = format!("agent {}", c.program);
            let host = ["ip", "ipaddr", "hostname"].iter().find_map(|k| c.options.get(*k));
            if let Some(host) = host {
                s.push_str(&format!(" {host}"));
            }
            if let Some(plug) = &c.plug {
                s.push_str(&format!(" plug {plug}"));
            }
            s
        }
        FenceDeviceKind::Manual => "manual (operator confirms with `failoverd confirm-fenced`)".to_string(),
    };
    format!("{}: {}", device.name, what)
}

/// Everything a judge needs to name what it judged.
pub(crate) struct Judge<'a> {
    pub device: &'a str,
    pub command: &'a Command,
    pub result: &'a CommandResult,
}

/// Longest tool text quoted in an error.
const MAX_DETAIL: usize = 400;

impl Judge<'_> {
    /// Exits that are failures whatever the tool: timeout, signal, could not start.
    fn abnormal_exit(&self) -> Option<FenceError> {
        match &self.result.exit {
            Exit::Code(_) => None,
            Exit::TimedOut => {
                Some(FenceError::TimedOut { device: self.device.to_string(), command: self.command.display() })
            }
            Exit::Signal(s) => Some(self.failed(format!("killed by signal {s}"))),
            Exit::SpawnFailed(why) => Some(self.failed(format!("could not start: {why}"))),
        }
    }

    pub fn failed(&self, detail: impl Into<String>) -> FenceError {
        FenceError::CommandFailed {
            device: self.device.to_string(),
            command: self.command.display(),
            detail: detail.into(),
        }
    }

    pub fn unparseable(&self, detail: impl Into<String>) -> FenceError {
        FenceError::Unparseable {
            device: self.device.to_string(),
            command: self.command.display(),
            detail: detail.into(),
        }
    }

    pub fn unreachable(&self, detail: impl Into<String>) -> FenceError {
        FenceError::Unreachable { device: self.device.to_string(), detail: detail.into() }
    }

    pub fn auth_failed(&self, detail: impl Into<String>) -> FenceError {
        FenceError::AuthFailed { device: self.device.to_string(), detail: detail.into() }
    }

    /// The exit code (the caller has ruled out abnormal exits).
    pub fn code(&self) -> i32 {
        self.result.code().unwrap_or(-1)
    }

    /// What the tool said, on one line: stderr's non-empty lines joined with "; " (stdout's if stderr is
    /// empty), cut to a sane length.
    pub fn text(&self) -> String {
        let pick = |s: &str| s.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; ");
        let mut t = pick(&self.result.stderr);
        if t.is_empty() {
            t = pick(&self.result.stdout);
        }
        if t.is_empty() {
            t = format!("exit {} with no output", self.code());
        }
        clip(t)
    }
}

/// Cut `s` to [`MAX_DETAIL`] bytes on a character boundary.
pub(crate) fn clip(mut s: String) -> String {
    if s.len() > MAX_DETAIL {
        let mut end = MAX_DETAIL;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

#[cfg(test)]
pub(crate) mod testutil;

#[cfg(test)]
mod tests;
