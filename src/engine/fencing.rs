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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::test_support::{fail, mds_pair, ok};
    use std::time::Duration;

    fn t(ms: u64) -> Time {
        Time::from_millis(ms)
    }

    fn run_argv(p: &JobProgress) -> String {
        match p {
            JobProgress::Run { command, .. } => command.display(),
            other => panic!("expected a command, got {other:?}"),
        }
    }

    #[test]
    fn ipmi_level_confirms_off_after_a_status_poll() {
        let cfg = mds_pair();
        let victim = cfg.node("mds1").unwrap().clone();
        let mut job = FenceJob::new(&victim, FenceAction::Off, FenceReason::PeerDead, t(0));
        let p = job.start_attempt(&cfg, t(0));
        assert!(run_argv(&p).starts_with("ipmitool -I lanplus -H 10.9.0.1 -p 623 -U admin -E"), "{p:?}");
        assert!(run_argv(&p).ends_with("chassis power off"));
        let p = job.on_result(&cfg, t(50), &ok("Chassis Power Control: Down/Off\n"));
        assert!(run_argv(&p).ends_with("chassis power status"));
        let p = job.on_result(&cfg, t(100), &ok("Chassis Power is off\n"));
        assert_eq!(p, JobProgress::Confirmed { level: 0, devices: vec!["mds1-ipmi".into()], power: PowerState::Off });
        assert_eq!(job.attempt, 1);
    }

    #[test]
    fn unreachable_bmc_falls_through_to_the_pdu_level() {
        let cfg = mds_pair();
        let victim = cfg.node("mds1").unwrap().clone();
        let mut job = FenceJob::new(&victim, FenceAction::Off, FenceReason::PeerDead, t(0));
        let _ = job.start_attempt(&cfg, t(0));
        let p = job.on_result(&cfg, t(3000), &CommandResult::timed_out());
        assert_eq!(job.new_level_failures.len(), 1, "level 1 failure recorded");
        let argv = run_argv(&p);
        assert!(argv.starts_with("snmpset -v1 -m  -Oqv"), "{argv}");
        assert!(argv.contains(".1.3.6.1.4.1.318.1.1.12.3.3.1.1.4.1 i 2") && argv.contains(".4.2 i 2"), "{argv}");
        let p = job.on_result(&cfg, t(3100), &ok("2\n2\n"));
        assert!(run_argv(&p).starts_with("snmpget"));
        let p = job.on_result(&cfg, t(3200), &ok("2\n2\n"));
        assert_eq!(p, JobProgress::Confirmed { level: 1, devices: vec!["mds1-pdu".into()], power: PowerState::Off });
    }

    #[test]
    fn every_level_failing_reports_all_failed_and_a_retry_starts_over() {
        let cfg = mds_pair();
        let victim = cfg.node("mds2").unwrap().clone();
        let mut job = FenceJob::new(&victim, FenceAction::Off, FenceReason::PeerDead, t(0));
        let _ = job.start_attempt(&cfg, t(0));
        let _ = job.on_result(&cfg, t(10), &fail(1, "Error: Unable to establish IPMI v2 / RMCP+ session\n"));
        let p = job.on_result(&cfg, t(20), &fail(1, "Timeout: No Response from udp:10.9.1.1:161.\n"));
        match p {
            JobProgress::AllFailed { errors } => {
                assert_eq!(errors.len(), 2);
                assert!(errors[0].starts_with("level 1:") && errors[1].starts_with("level 2:"), "{errors:?}");
            }
            other => panic!("{other:?}"),
        }
        let p = job.start_attempt(&cfg, t(2020));
        assert!(run_argv(&p).starts_with("ipmitool"));
        assert_eq!(job.attempt, 2);
    }

    #[test]
    fn a_bmc_that_keeps_reading_on_fails_the_level_after_power_timeout() {
        let cfg = mds_pair();
        let victim = cfg.node("mds1").unwrap().clone();
        let mut job = FenceJob::new(&victim, FenceAction::Off, FenceReason::PeerDead, t(0));
        let _ = job.start_attempt(&cfg, t(0));
        let mut p = job.on_result(&cfg, t(40), &ok("Chassis Power Control: Down/Off\n"));
        let mut now = 40;
        for _ in 0..100 {
            match p {
                JobProgress::Run { ref command, .. } if command.display().ends_with("status") => {
                    p = job.on_result(&cfg, t(now), &ok("Chassis Power is on\n"));
                }
                JobProgress::WaitUntil(w) => {
                    now = w.as_millis();
                    p = job.on_wake(&cfg, w);
                }
                _ => break,
            }
        }
        assert!(run_argv(&p).starts_with("snmpset"), "went on to the PDU level: {p:?}");
        assert!(now >= 20_000 && now <= 20_040 + Duration::from_secs(1).as_millis() as u64, "gave up at power_timeout, not before: {now}");
        assert!(job.new_level_failures[0].1.contains("on"), "{:?}", job.new_level_failures);
    }

    #[test]
    fn a_node_without_levels_needs_the_operator() {
        let mut cfg = mds_pair();
        cfg.nodes[1].fence_levels.clear();
        let victim = cfg.node("mds2").unwrap().clone();
        let mut job = FenceJob::new(&victim, FenceAction::Off, FenceReason::PeerDead, t(0));
        assert_eq!(job.start_attempt(&cfg, t(0)), JobProgress::NeedsOperator);
    }
}
