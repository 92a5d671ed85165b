//! Following a Lustre target's recovery window after it is verified here.
//!
//! A takeover ends for the clients only when the MDT or OST has finished recovery (clients reconnected and
//! replayed, or the window ran out). After a start sequence is done, the engine reads
//! `lctl get_param -n <mdt|obdfilter>.<device>.recovery_status` every [`RECOVERY_POLL`] until it says
//! COMPLETE or INACTIVE, or until `recovery_budget` has passed since the target was verified; the driver runs
//! the command like any other (`Purpose::Storage`, step `recovery-status`). Events: `target_recovering` (once,
//! at the first read that shows a window open) and `target_recovered` (at the end, with an outcome). Pure: the
//! time is the `now` the driver passes.

use std::time::Duration;

use crate::command::{Command, CommandResult, Exit};
use crate::storage::recovery::{parse_recovery_status, recovery_argv, recovery_param, RecoveryParam, RecoveryStatus};
use crate::time::Time;

use super::targets::Local;
use super::{Engine, Event, Purpose, Waiter};

/// Pause between two reads of `recovery_status` (Lustre's test-framework waits 5 s; failoverd reports the end
/// of recovery within this much).
pub const RECOVERY_POLL: Duration = Duration::from_secs(2);

/// Unreadable reads in a row after which the recovery is no longer followed (reported as `unreadable`).
const MAX_READ_ERRORS: u32 = 5;

/// The recovery of one target being followed.
#[derive(Clone, Debug)]
pub struct RecoveryFollow {
    pub param: String,
    /// When the target was verified here.
    pub since: Time,
    pub next_poll: Time,
    pub polling: bool,
    pub last: Option<RecoveryStatus>,
    pub announced: bool,
    pub errors: u32,
    pub last_error: Option<String>,
}

/// How a followed recovery ended (`target_recovered`'s `outcome`).
fn outcome_of(s: &RecoveryStatus) -> &'static str {
    match s.state() {
        crate::storage::recovery::RecoveryState::Inactive => "inactive",
        _ => "complete",
    }
}

impl Engine {
    /// A start sequence of `name` is done (verified here): follow its recovery, or say why not.
    pub(crate) fn start_recovery_follow(&mut self, now: Time, name: &str) {
        let budget = self.cfg.cluster.recovery_budget;
        let Some(slot) = self.targets.get_mut(name) else { return };
        slot.recovery = None;
        slot.recovery_none = None;
        match recovery_param(&slot.cfg) {
            RecoveryParam::None(why) => {
                slot.recovery_none = Some(why);
                tracing::info!(node = %self.me.name, target = name, "Lustre recovery not followed: {why}");
            }
            RecoveryParam::Param(_) if budget.is_zero() => {
                slot.recovery_none = Some("recovery_budget = 0s: recovery not followed");
            }
            RecoveryParam::Param(param) => {
                slot.recovery = Some(RecoveryFollow {
                    param,
                    since: now,
                    next_poll: now,
                    polling: false,
                    last: None,
                    announced: false,
                    errors: 0,
                    last_error: None,
                });
            }
        }
    }

    /// Poll the recoveries that are due; end those over budget; forget those of targets no longer running.
    pub(crate) fn drive_recovery(&mut self, now: Time) {
        let budget = self.cfg.cluster.recovery_budget;
        let timeout = self.cfg.cluster.command_timeout;
        let names: Vec<String> = self.targets.iter().filter(|(_, s)| s.recovery.is_some()).map(|(n, _)| n.clone()).collect();
        for name in names {
            let slot = self.targets.get_mut(&name).expect("slot");
            if !matches!(slot.local, Local::Running { .. }) {
                slot.recovery = None;
                continue;
            }
            let Some(f) = slot.recovery.as_mut() else { continue };
            if f.polling || now < f.next_poll {
                continue;
            }
            if now.since(f.since) >= budget {
                let f = slot.recovery.take().expect("recovery");
                self.recovery_over(now, &name, &f, "budget_exceeded");
                continue;
            }
            f.polling = true;
            let command = Command::new(recovery_argv(&f.param), timeout);
            let purpose = Purpose::RecoveryStatus { target: name.clone() };
            self.run_command(command, purpose, Waiter::Recovery { target: name.clone() });
        }
    }

    pub(crate) fn recovery_command_done(&mut self, now: Time, name: &str, result: &CommandResult) {
        let Some(slot) = self.targets.get_mut(name) else { return };
        let Some(f) = slot.recovery.as_mut() else { return };
        f.polling = false;
        f.next_poll = now + RECOVERY_POLL;
        let read = match &result.exit {
            Exit::Code(0) => parse_recovery_status(&result.stdout),
            _ => Err(format!("`lctl get_param -n {}` failed: {}", f.param, result.summary())),
        };
        match read {
            Err(e) => {
                f.errors += 1;
                f.last_error = Some(e.clone());
                tracing::warn!(node = %self.me.name, target = name, error = %e, "cannot read the Lustre recovery status");
                if f.errors >= MAX_READ_ERRORS {
                    let f = slot.recovery.take().expect("recovery");
                    self.recovery_over(now, name, &f, "unreadable");
                }
            }
            Ok(s) => {
                f.errors = 0;
                f.last = Some(s.clone());
                if s.state().is_over() {
                    let f = slot.recovery.take().expect("recovery");
                    let outcome = outcome_of(&s);
                    self.recovery_over(now, name, &f, outcome);
                } else if !f.announced {
                    f.announced = true;
                    self.emit(
                        now,
                        Event::TargetRecovering {
                            target: name.into(),
                            status: s.state().as_str().to_string(),
                            connected_clients: s.connected_clients,
                            total_clients: s.total_clients,
                            time_remaining_s: s.time_remaining,
                        },
                    );
                }
            }
        }
    }

    fn recovery_over(&mut self, now: Time, name: &str, f: &RecoveryFollow, outcome: &str) {
        let last = f.last.clone().unwrap_or_default();
        if let Some(slot) = self.targets.get_mut(name) {
            slot.recovered = Some((outcome.to_string(), last.clone()));
        }
        self.emit(
            now,
            Event::TargetRecovered {
                target: name.into(),
                outcome: outcome.into(),
                followed_ms: now.since(f.since).as_millis() as u64,
                recovery_duration_s: last.recovery_duration,
                completed_clients: last.completed_clients,
                total_clients: last.total_clients,
                evicted_clients: last.evicted_clients,
                ir: last.ir,
                error: f.last_error.clone().filter(|_| outcome == "unreadable"),
            },
        );
    }

    /// The recovery of a target in words for `failoverd status`, when there is something to say.
    pub(crate) fn recovery_words(&self, name: &str, now: Time) -> Option<String> {
        let slot = self.targets.get(name)?;
        if !matches!(slot.local, Local::Running { .. }) {
            return None;
        }
        if let Some(f) = &slot.recovery {
            let age = now.since(f.since).as_secs();
            return Some(match &f.last {
                Some(s) => format!("{} (followed for {age} s)", s.words()),
                None => "recovery: first read of recovery_status pending".into(),
            });
        }
        if let Some((outcome, s)) = &slot.recovered {
            return Some(match outcome.as_str() {
                "budget_exceeded" => format!("recovery still not over after recovery_budget; last read: {}", s.words()),
                "unreadable" => "recovery status unreadable: see the log (`lctl get_param -n ...recovery_status`)".into(),
                _ => s.words(),
            });
        }
        slot.recovery_none.map(|why| format!("no recovery followed: {why}"))
    }

    /// The earliest time a followed recovery needs the engine again.
    pub(crate) fn recovery_deadline(&self) -> Option<Time> {
        let budget = self.cfg.cluster.recovery_budget;
        self.targets
            .values()
            .filter_map(|s| s.recovery.as_ref())
            .filter(|f| !f.polling)
            .map(|f| f.next_poll.min(f.since + budget))
            .min()
    }
}
