//! Fence devices as pure state machines: each device kind turns an action into commands and judges their
//! results into a typed outcome. No process is run here; the engine asks its driver to run the commands.
//!
//! Contract used by the engine (`engine/fencing.rs`):
//! `DeviceOp::start(device, victim, action, now)` gives the first [`OpStep`]; the engine runs the command or
//! waits, then feeds back `on_result(now, result)` / `on_wake(now)` until it gets `OpStep::Done`.

use std::time::Duration;

use crate::command::{Command, CommandResult};
use crate::config::{FenceDeviceConfig, NodeConfig};
use crate::time::Time;

/// What an operator or the engine asks a device to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum FenceAction {
    Off,
    On,
    Status,
    /// Off (verified), then on; succeeds when the off part succeeded.
    Reboot,
}

/// Power state of a fenced node as a device reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum PowerState {
    On,
    Off,
}

/// Why a device operation did not confirm what was asked. Never a success: a timeout is a failure.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum FenceError {
    #[error("device {device}: unreachable: {detail}")]
    Unreachable { device: String, detail: String },
    #[error("device {device}: authentication failed: {detail}")]
    AuthFailed { device: String, detail: String },
    #[error("device {device}: command timed out: {command}")]
    TimedOut { device: String, command: String },
    #[error("device {device}: still reads on {waited:?} after off")]
    StillOn { device: String, waited: Duration },
    #[error("device {device}: `{command}` failed: {detail}")]
    CommandFailed { device: String, command: String, detail: String },
    #[error("device {device}: cannot understand the answer of `{command}`: {detail}")]
    Unparseable { device: String, command: String, detail: String },
    #[error("device {device}: {detail}")]
    Unsupported { device: String, detail: String },
}

/// How a device operation ended.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum DeviceOutcome {
    /// The device confirmed this power state (after `off`: a status read off; after `status`: what it read).
    Confirmed(PowerState),
    /// A `manual` device: the operator must confirm with `failoverd confirm-fenced NODE`.
    NeedsOperator,
    Failed(FenceError),
}

/// What the engine must do next for a device operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpStep {
    /// Run this command and call `on_result` with its result.
    Run(Command),
    /// Call `on_wake` at this time (between status polls).
    WaitUntil(Time),
    Done(DeviceOutcome),
}

/// One action on one device for one victim node: the state machine that polls until the power state is
/// confirmed or `power_timeout` runs out.
#[derive(Clone, Debug)]
pub struct DeviceOp {
    device: FenceDeviceConfig,
    victim: String,
    action: FenceAction,
}

impl DeviceOp {
    /// Begin `action` on `device` for `victim`; returns the op and its first step.
    pub fn start(device: &FenceDeviceConfig, victim: &NodeConfig, action: FenceAction, now: Time) -> (DeviceOp, OpStep) {
        let _ = now;
        let op = DeviceOp { device: device.clone(), victim: victim.name.clone(), action };
        let step = OpStep::Done(DeviceOutcome::Failed(FenceError::Unsupported {
            device: device.name.clone(),
            detail: "fence device kinds are not implemented yet".into(),
        }));
        (op, step)
    }

    /// Feed the result of the command the last step asked for.
    pub fn on_result(&mut self, now: Time, result: &CommandResult) -> OpStep {
        let _ = (now, result);
        OpStep::Done(DeviceOutcome::Failed(FenceError::Unsupported { device: self.device.name.clone(), detail: "not implemented".into() }))
    }

    /// Called at (or after) the time a `WaitUntil` step named.
    pub fn on_wake(&mut self, now: Time) -> OpStep {
        let _ = now;
        OpStep::Done(DeviceOutcome::Failed(FenceError::Unsupported { device: self.device.name.clone(), detail: "not implemented".into() }))
    }

    pub fn device_name(&self) -> &str {
        &self.device.name
    }

    pub fn victim(&self) -> &str {
        &self.victim
    }

    pub fn action(&self) -> FenceAction {
        self.action
    }
}
