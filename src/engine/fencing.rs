//! One fencing job: a victim, an action, and the walk through its fence levels.
//!
//! Levels are tried in order; within a level every device must confirm (for `off`: a status that reads off).
//! One failed device fails the level and the next level is tried. When every level failed, the engine
//! schedules a retry with backoff. A job never reports success on a timeout.

use crate::command::{Command, CommandResult};
use crate::config::{Config, NodeConfig};
use crate::fence::{DeviceOp, DeviceOutcome, FenceAction, OpStep, PowerState};
use crate::time::Time;

use super::events::FenceReason;

/// What the engine must do next for a fencing job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobProgress {
    /// Run this command for `device`, then call `on_result`.
    Run { command: Command, device: String, level: usize },
    /// Call `on_wake` at this time.
    WaitUntil(Time),
    /// Every device of `level` confirmed `power`.
    Confirmed { level: usize, devices: Vec<String>, power: PowerState },
    /// A `manual` device: wait for `failoverd confirm-fenced`.
    NeedsOperator,
    /// Every level failed; `errors` has one line per failed level.
    AllFailed { errors: Vec<String> },
}

/// A fencing job in progress.
#[derive(Clone, Debug)]
pub struct FenceJob {
    pub victim: NodeConfig,
    pub action: FenceAction,
    pub reason: FenceReason,
    pub attempt: u32,
    pub started_at: Time,
    /// Every level failed; the engine retries at the time it scheduled.
    pub waiting_retry: bool,
    level: usize,
    device: usize,
    op: Option<DeviceOp>,
    confirmed_power: Option<PowerState>,
    errors: Vec<String>,
    /// Level failures not yet reported as events.
    pub new_level_failures: Vec<(usize, String)>,
}

impl FenceJob {
    pub fn new(victim: &NodeConfig, action: FenceAction, reason: FenceReason, now: Time) -> FenceJob {
        FenceJob {
            victim: victim.clone(),
            action,
            reason,
            attempt: 0,
            started_at: now,
            waiting_retry: false,
            level: 0,
            device: 0,
            op: None,
            confirmed_power: None,
            errors: Vec::new(),
            new_level_failures: Vec::new(),
        }
    }

    /// Begin (or, after a failed round, begin again) with the first level.
    pub fn start_attempt(&mut self, cfg: &Config, now: Time) -> JobProgress {
        self.attempt += 1;
        self.level = 0;
        self.device = 0;
        self.errors.clear();
        self.confirmed_power = None;
        self.start_device(cfg, now)
    }

    pub fn on_result(&mut self, cfg: &Config, now: Time, result: &CommandResult) -> JobProgress {
        let step = match self.op.as_mut() {
            Some(op) => op.on_result(now, result),
            None => return self.start_device(cfg, now),
        };
        self.follow(cfg, now, step)
    }

    pub fn on_wake(&mut self, cfg: &Config, now: Time) -> JobProgress {
        let step = match self.op.as_mut() {
            Some(op) => op.on_wake(now),
            None => return self.start_device(cfg, now),
        };
        self.follow(cfg, now, step)
    }

    fn start_device(&mut self, cfg: &Config, now: Time) -> JobProgress {
        loop {
            let levels = self.victim.fence_levels.clone();
            let Some(level) = levels.get(self.level) else {
                self.op = None;
                if levels.is_empty() {
                    return JobProgress::NeedsOperator;
                }
                return JobProgress::AllFailed { errors: self.errors.clone() };
            };
            let Some(dev_name) = level.get(self.device) else {
                // every device of this level confirmed
                self.op = None;
                return JobProgress::Confirmed {
                    level: self.level,
                    devices: level.clone(),
                    power: self.confirmed_power.unwrap_or(PowerState::Off),
                };
            };
            let Some(dev) = cfg.device(dev_name) else {
                self.fail_level(format!("fence device {dev_name} is not configured"));
                continue;
            };
            let (op, step) = DeviceOp::start(dev, &self.victim, self.action, now);
            self.op = Some(op);
            match self.step_to_progress(step) {
                Ok(p) => return p,
                Err(outcome) => {
                    if let Some(p) = self.device_done(outcome) {
                        return p;
                    }
                }
            }
        }
    }

    fn follow(&mut self, cfg: &Config, now: Time, step: OpStep) -> JobProgress {
        match self.step_to_progress(step) {
            Ok(p) => p,
            Err(outcome) => match self.device_done(outcome) {
                Some(p) => p,
                None => self.start_device(cfg, now),
            },
        }
    }

    /// Ok(progress) while the device op runs; Err(outcome) when it is done.
    fn step_to_progress(&self, step: OpStep) -> Result<JobProgress, DeviceOutcome> {
        let device = self.op.as_ref().map(|o| o.device_name().to_string()).unwrap_or_default();
        match step {
            OpStep::Run(command) => Ok(JobProgress::Run { command, device, level: self.level }),
            OpStep::WaitUntil(t) => Ok(JobProgress::WaitUntil(t)),
            OpStep::Done(outcome) => Err(outcome),
        }
    }

    /// A device finished: move to the next device or level. Some(progress) only for NeedsOperator.
    fn device_done(&mut self, outcome: DeviceOutcome) -> Option<JobProgress> {
        let device = self.op.as_ref().map(|o| o.device_name().to_string()).unwrap_or_default();
        self.op = None;
        match outcome {
            DeviceOutcome::Confirmed(power) => {
                let wanted = match self.action {
                    FenceAction::Off | FenceAction::Reboot => Some(PowerState::Off),
                    FenceAction::On => Some(PowerState::On),
                    FenceAction::Status => None,
                };
                match wanted {
                    Some(w) if w != power => {
                        self.fail_level(format!("{device}: reads {power:?} after {:?}", self.action));
                    }
                    _ => {
                        // for status, a level reads off only if every device reads off
                        self.confirmed_power = Some(match (self.confirmed_power, power) {
                            (Some(PowerState::On), _) | (_, PowerState::On) => PowerState::On,
                            _ => PowerState::Off,
                        });
                        self.device += 1;
                    }
                }
                None
            }
            DeviceOutcome::NeedsOperator => Some(JobProgress::NeedsOperator),
            DeviceOutcome::Failed(e) => {
                self.fail_level(e.to_string());
                None
            }
        }
    }

    fn fail_level(&mut self, error: String) {
        let line = format!("level {}: {}", self.level + 1, error);
        self.new_level_failures.push((self.level, error));
        self.errors.push(line);
        self.level += 1;
        self.device = 0;
        self.confirmed_power = None;
    }
}
