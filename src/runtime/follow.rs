//! Following a move from the command line: `failoverd migrate` and `failoverd standby` return when the
//! daemon has accepted the request, but an operator wants to see the move happen and to know when it is over.
//! This polls the daemon's status and prints each change of the targets involved (owner and state) with the
//! time since the request, until the goal is reached, a target fails or is blocked, or the wait times out.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::engine::Status;

use super::cli::request;
use super::{Result, RuntimeError};

/// How often the status is polled while following.
const POLL: Duration = Duration::from_millis(200);

/// What the operator is waiting for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Goal {
    /// `target` runs on `node`.
    TargetOn { target: String, node: String },
    /// `node` holds no target.
    NodeEmpty { node: String },
}

impl Goal {
    fn reached(&self, s: &Status) -> bool {
        match self {
            Goal::TargetOn { target, node } => {
                s.targets.iter().any(|t| t.target == *target && t.owner.as_deref() == Some(node) && t.state == "running")
            }
            // and every target that moved is verified where it went: nothing starting, releasing or handed
            // off is left (a target with no owner stays stopped: its own line says why)
            Goal::NodeEmpty { node } => {
                !s.targets.iter().any(|t| t.owner.as_deref() == Some(node))
                    && s.targets.iter().all(|t| t.owner.is_none() && !t.state.starts_with("handed off") || t.state == "running")
            }
        }
    }

    /// The targets whose changes are printed.
    fn watched<'a>(&self, s: &'a Status) -> Vec<&'a crate::engine::TargetStatus> {
        match self {
            Goal::TargetOn { target, .. } => s.targets.iter().filter(|t| t.target == *target).collect(),
            Goal::NodeEmpty { .. } => s.targets.iter().collect(),
        }
    }
}

/// Poll `socket` until `goal` holds, printing every change of the watched targets. Errors when a watched
/// target is blocked or failed, when the daemon stops answering, or after `timeout`.
pub fn follow(socket: &Path, goal: &Goal, timeout: Duration) -> Result<()> {
    let start = Instant::now();
    let mut last: BTreeMap<String, (Option<String>, String)> = BTreeMap::new();
    loop {
        let reply = request(socket, &json!({"request": "status"}), Duration::from_secs(10))?;
        let status: Status = serde_json::from_value(reply["status"].clone())
            .map_err(|e| RuntimeError::daemon(format!("unreadable status from failoverd: {e}")))?;
        for t in goal.watched(&status) {
            let now = (t.owner.clone(), t.state.clone());
            if last.get(&t.target) != Some(&now) {
                let step = match (&t.sequence, &t.step) {
                    (Some(seq), Some(step)) => format!(" ({seq}: {step})"),
                    _ => String::new(),
                };
                let on = match &t.owner {
                    Some(o) => format!("on {o}"),
                    None => "-".into(),
                };
                println!("  +{:>5.1}s  {:<16} {:<8} {}{step}", start.elapsed().as_secs_f64(), t.target, on, t.state);
                last.insert(t.target.clone(), now);
            }
            if let Some(why) = &t.blocked {
                return Err(RuntimeError::refused(format!("{} is blocked: {why}", t.target)));
            }
            if t.state == "failed" || t.local == "failed" {
                return Err(RuntimeError::refused(format!(
                    "{} failed on {}: see `failoverd status` and the daemon's log",
                    t.target,
                    t.owner.as_deref().unwrap_or("its owner")
                )));
            }
        }
        if goal.reached(&status) {
            return Ok(());
        }
        if start.elapsed() > timeout {
            return Err(RuntimeError::refused(format!(
                "not done after {}s; the move may still be in progress: see `failoverd status`",
                timeout.as_secs()
            )));
        }
        std::thread::sleep(POLL);
    }
}
