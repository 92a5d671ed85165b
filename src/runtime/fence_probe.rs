//! Reading a node's power through every one of its fence devices, without changing it.
//!
//! `failoverd fence NODE --action status` prints what [`probe_node`] returns, one line per device, and
//! `doctor` calls the same function. Every device of every fence level of the node is asked for `status`
//! through the code the daemon fences with: [`DeviceOp`] builds each command and judges its result, and
//! [`exec::run`] runs it as a real process (secrets resolved at run time, timeouts enforced, process group
//! killed on timeout). Every device is asked, also after one has answered: the point is to find the device
//! that would fail when it is needed. The devices are asked concurrently, so a silent BMC costs its `timeout`
//! once, not once per device.
//!
//! For an `agent` device the agent's `metadata` is read as well, and every configured option, secret option
//! and `plug` is checked against the parameters the agent declares: fencing.py ignores an unknown option with
//! a mere warning, so a misspelt `power_timeout` or `lanplus` would silently change how the fence runs.
//!
//! Nothing here powers anything on or off: `status` and `metadata` are read-only. [`run_device_op`] (used by
//! the probes, by the fencing tests and by the fence benchmark) does carry out any action, off included.

use std::fmt;
use std::time::Duration;

use crate::config::{AgentConfig, Config, FenceDeviceConfig, FenceDeviceKind, NodeConfig};
use crate::fence::{self, DeviceOp, DeviceOutcome, FenceAction, FenceError, OpStep, PowerState};

use super::clock::Clock;
use super::exec;

/// What one fence device of a node answered to `status` (and, for an agent, whether the agent declares the
/// configured options). One per (level, device) of the node; `doctor` and `failoverd fence --action status`
/// report these.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceProbe {
    /// The fence level the device belongs to, counted from 1 as in events and `fence_levels` order.
    pub level: usize,
    /// `[[fence_device]] name`.
    pub device: String,
    /// `ipmi`, `pdu-snmp`, `agent` or `manual`, as in the config's `kind`.
    pub kind: &'static str,
    /// The device and how it is reached, without secrets (see [`fence::describe`]).
    pub summary: String,
    /// What `status` said.
    pub answer: ProbeAnswer,
    /// For an `agent` device: the check of its configured options against its metadata. `None` otherwise.
    pub options: Option<OptionsCheck>,
    /// How long the status read (and, for an agent, the metadata read) took.
    pub elapsed: Duration,
}

/// What a device said when asked for the power state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeAnswer {
    /// The device answered with this power state (a PDU reads on while any of the node's outlets is on).
    Power(PowerState),
    /// A `manual` device: there is nothing to ask (an operator fences with `failoverd confirm-fenced`).
    /// Not an error.
    Manual,
    /// No usable answer: the error names the device and, where there is one, the command and what the tool
    /// said.
    Error(FenceError),
}

/// The check of an agent's configured options against the parameters its `metadata` declares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OptionsCheck {
    /// Every configured option, secret option and `plug` is declared by the agent.
    Declared,
    /// These configured names are not declared by the agent (it would ignore them).
    Undeclared(Vec<String>),
    /// The metadata could not be read or understood: why, naming the program.
    Unreadable(String),
}

impl DeviceProbe {
    /// True when the device answered (or is manual) and, for an agent, declares every configured option.
    pub fn ok(&self) -> bool {
        !matches!(self.answer, ProbeAnswer::Error(_))
            && !matches!(self.options, Some(OptionsCheck::Undeclared(_)) | Some(OptionsCheck::Unreadable(_)))
    }
}

impl fmt::Display for ProbeAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProbeAnswer::Power(p) => write!(f, "{p}"),
            ProbeAnswer::Manual => f.write_str("manual (no status: an operator powers the node off)"),
            ProbeAnswer::Error(e) => write!(f, "error: {e}"),
        }
    }
}

impl fmt::Display for OptionsCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptionsCheck::Declared => f.write_str("options: all declared by the agent"),
            OptionsCheck::Undeclared(names) => {
                write!(f, "options NOT declared by the agent (it would ignore them): {}", names.join(", "))
            }
            OptionsCheck::Unreadable(why) => write!(f, "options not checked: {why}"),
        }
    }
}

/// One line per probe: `level 1  mds1-ipmi  ipmi  off  (42 ms)`, then the options check for an agent.
impl fmt::Display for DeviceProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "level {}  {}  {}  {}  ({} ms)", self.level, self.device, self.kind, self.answer, self.elapsed.as_millis())?;
        if let Some(check) = &self.options {
            write!(f, "; {check}")?;
        }
        Ok(())
    }
}

/// The config's name of a device kind.
pub fn kind_name(kind: &FenceDeviceKind) -> &'static str {
    match kind {
        FenceDeviceKind::Ipmi(_) => "ipmi",
        FenceDeviceKind::PduSnmp(_) => "pdu-snmp",
        FenceDeviceKind::Agent(_) => "agent",
        FenceDeviceKind::Manual => "manual",
    }
}

/// Ask every fence device of `node` for its power state, and check the options of every agent device.
///
/// Returns one [`DeviceProbe`] per device of each of the node's `fence_levels`, in level order then device
/// order. A node that is not in `cfg`, or that has `fencing = "manual"` (no levels), gives an empty list:
/// callers that want to tell those apart check `cfg.node(node)` first. A device named in a level but not
/// configured (which a validated config rules out) gives an [`ProbeAnswer::Error`].
///
/// Blocking: it runs the commands on a private single-threaded tokio runtime and returns when every one of
/// them ended, at most the longest device `timeout` (twice for an agent: status, then metadata). It must not
/// be called from inside a tokio runtime; use [`probe_node_async`] there.
pub fn probe_node(cfg: &Config, node: &str) -> Vec<DeviceProbe> {
    match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt.block_on(probe_node_async(cfg, node)),
        Err(e) => {
            // Without a runtime no process can be run: report it on every device rather than panic.
            let why = format!("cannot start the runtime that runs the status commands: {e}");
            devices_of(cfg, node)
                .into_iter()
                .map(|(level, name, device)| DeviceProbe {
                    level,
                    kind: device.map_or("unknown", |d| kind_name(&d.kind)),
                    summary: device.map(fence::describe).unwrap_or_default(),
                    answer: ProbeAnswer::Error(FenceError::CommandFailed {
                        device: name.clone(),
                        command: "status".into(),
                        detail: why.clone(),
                    }),
                    device: name,
                    options: None,
                    elapsed: Duration::ZERO,
                })
                .collect()
        }
    }
}

/// [`probe_node`] for callers already inside a tokio runtime (needs the `process` and `time` drivers).
pub async fn probe_node_async(cfg: &Config, node: &str) -> Vec<DeviceProbe> {
    let Some(victim) = cfg.node(node) else { return Vec::new() };
    let mut set = tokio::task::JoinSet::new();
    let devices = devices_of(cfg, node);
    for (i, (level, name, device)) in devices.into_iter().enumerate() {
        let victim = victim.clone();
        let device = device.cloned();
        set.spawn(async move {
            let probe = match device {
                Some(d) => probe_device(&d, &victim, level).await,
                None => DeviceProbe {
                    level,
                    kind: "unknown",
                    summary: String::new(),
                    answer: ProbeAnswer::Error(FenceError::InvalidConfig {
                        device: name.clone(),
                        detail: format!("node {} names fence device {name:?}, which is not configured", victim.name),
                    }),
                    device: name,
                    options: None,
                    elapsed: Duration::ZERO,
                },
            };
            (i, probe)
        });
    }
    let mut probes: Vec<(usize, DeviceProbe)> = Vec::new();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(p) => probes.push(p),
            // A probe task only awaits processes; a panic in it is a bug worth showing, not hiding.
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => tracing::warn!(node, error = %e, "a fence device probe was cancelled"),
        }
    }
    probes.sort_by_key(|(i, _)| *i);
    probes.into_iter().map(|(_, p)| p).collect()
}

/// (level counted from 1, device name, its config if it exists) for every device of every level of `node`.
fn devices_of<'a>(cfg: &'a Config, node: &str) -> Vec<(usize, String, Option<&'a FenceDeviceConfig>)> {
    let Some(victim) = cfg.node(node) else { return Vec::new() };
    victim
        .fence_levels
        .iter()
        .enumerate()
        .flat_map(|(l, level)| level.iter().map(move |name| (l + 1, name.clone(), cfg.device(name))))
        .collect()
}

/// Ask one device for `victim`'s power state (and check an agent's options); `level` is only reported.
pub async fn probe_device(device: &FenceDeviceConfig, victim: &NodeConfig, level: usize) -> DeviceProbe {
    let started = tokio::time::Instant::now();
    let answer = match run_device_op(device, victim, FenceAction::Status).await {
        DeviceOutcome::Confirmed(p) => ProbeAnswer::Power(p),
        DeviceOutcome::NeedsOperator => ProbeAnswer::Manual,
        DeviceOutcome::Failed(_) if matches!(device.kind, FenceDeviceKind::Manual) => ProbeAnswer::Manual,
        DeviceOutcome::Failed(e) => ProbeAnswer::Error(e),
    };
    let options = match &device.kind {
        FenceDeviceKind::Agent(agent) => Some(check_agent_metadata(agent, device.timeout).await),
        _ => None,
    };
    let probe = DeviceProbe {
        level,
        device: device.name.clone(),
        kind: kind_name(&device.kind),
        summary: fence::describe(device),
        answer,
        options,
        elapsed: started.elapsed(),
    };
    tracing::info!(node = %victim.name, level, device = %probe.device, kind = probe.kind, answer = %probe.answer,
        elapsed_ms = probe.elapsed.as_millis() as u64, "fence device probed");
    probe
}

/// Run `action` on `device` for `victim` to its end: the [`DeviceOp`] state machine the engine uses, with
/// its commands run as real processes by [`exec::run`] and its status polls slept on a monotonic clock.
///
/// For `Off` this is a whole confirmed fence: off, then status polls until one reads off or
/// `power_timeout` runs out. It ends within the device's `power_timeout` plus a few command `timeout`s.
pub async fn run_device_op(device: &FenceDeviceConfig, victim: &NodeConfig, action: FenceAction) -> DeviceOutcome {
    let clock = Clock::start();
    let (mut op, mut step) = DeviceOp::start(device, victim, action, clock.now());
    loop {
        step = match step {
            OpStep::Run(command) => {
                let result = exec::run(&command).await;
                tracing::debug!(device = %device.name, command = %command.display(), exit = %exec::exit_text(&result.exit),
                    duration_ms = result.duration.as_millis() as u64, "fence device command finished");
                op.on_result(clock.now(), &result)
            }
            OpStep::WaitUntil(t) => {
                tokio::time::sleep_until(clock.instant_of(t)).await;
                op.on_wake(clock.now())
            }
            OpStep::Done(outcome) => return outcome,
        };
    }
}

/// Read `agent`'s metadata (`action=metadata` on stdin) and check the configured options against it.
pub async fn check_agent_metadata(agent: &AgentConfig, timeout: Duration) -> OptionsCheck {
    let command = fence::metadata_command(agent, timeout);
    let result = exec::run(&command).await;
    if !result.success() {
        return OptionsCheck::Unreadable(format!("`{}` with action=metadata: {}", agent.program, result.summary()));
    }
    match fence::parse_agent_metadata(&result.stdout) {
        Ok(declared) => {
            let missing = fence::check_agent_options(&declared, agent);
            if missing.is_empty() {
                OptionsCheck::Declared
            } else {
                OptionsCheck::Undeclared(missing)
            }
        }
        Err(e) => OptionsCheck::Unreadable(format!("metadata of `{}`: {e}", agent.program)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    fn agent_device(name: &str, script: &str, options: &[(&str, &str)]) -> FenceDeviceConfig {
        FenceDeviceConfig {
            name: name.into(),
            kind: FenceDeviceKind::Agent(AgentConfig {
                program: script.into(),
                options: options.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
                secret_options: BTreeMap::new(),
                plug: Some("node2".into()),
            }),
            timeout: Duration::from_secs(5),
            power_timeout: Duration::from_secs(2),
            poll_interval: Duration::from_millis(50),
        }
    }

    fn victim() -> NodeConfig {
        NodeConfig {
            name: "node2".into(),
            addresses: vec![],
            hostid: 2,
            hostname: None,
            fence_priority: 0,
            fence_levels: vec![],
            fencing: crate::config::FencingMode::ManualOnly,
        }
    }

    /// A tiny FenceAgentAPI agent in sh: status exits with the code in `$dir/code`, metadata declares
    /// `ip` and `plug`.
    fn write_agent(dir: &std::path::Path, status_code: i32) -> PathBuf {
        let path = dir.join("fence_tiny");
        let script = format!(
            "#!/bin/sh\nin=$(cat)\ncase \"$in\" in\n*action=metadata*) \
             printf '<resource-agent name=\"fence_tiny\"><parameters><parameter name=\"ip\"/>\
             <parameter name=\"plug\"/></parameters></resource-agent>\\n'; exit 0 ;;\n\
             *action=status*) echo 'ERROR: failed to read' >&2; exit {status_code} ;;\nesac\nexit 1\n"
        );
        std::fs::write(&path, script).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[tokio::test]
    async fn an_agent_probe_reads_status_and_checks_the_options() {
        let d = tempfile::tempdir().unwrap();
        let program = write_agent(d.path(), 2);
        let dev = agent_device("tiny", program.to_str().unwrap(), &[("ip", "10.0.0.1"), ("lanplsu", "1")]);
        let p = probe_device(&dev, &victim(), 3).await;
        assert_eq!(p.answer, ProbeAnswer::Power(PowerState::Off));
        assert_eq!(p.options, Some(OptionsCheck::Undeclared(vec!["lanplsu".into()])));
        assert!(!p.ok());
        assert_eq!((p.level, p.kind, p.device.as_str()), (3, "agent", "tiny"));
        let line = p.to_string();
        assert!(line.starts_with("level 3  tiny  agent  off  ("), "{line}");
        assert!(line.ends_with("it would ignore them): lanplsu"), "{line}");
    }

    #[tokio::test]
    async fn an_agent_error_and_a_missing_program_are_errors_not_answers() {
        let d = tempfile::tempdir().unwrap();
        let program = write_agent(d.path(), 1);
        let dev = agent_device("tiny", program.to_str().unwrap(), &[("ip", "10.0.0.1")]);
        let p = probe_device(&dev, &victim(), 1).await;
        assert!(matches!(&p.answer, ProbeAnswer::Error(e) if e.to_string().contains("failed to read")), "{p:?}");
        assert_eq!(p.options, Some(OptionsCheck::Declared));
        assert!(!p.ok());

        let dev = agent_device("gone", "/nonexistent/fence_gone", &[]);
        let p = probe_device(&dev, &victim(), 1).await;
        assert!(matches!(&p.answer, ProbeAnswer::Error(e) if e.to_string().contains("/nonexistent/fence_gone")), "{p:?}");
        assert!(matches!(&p.options, Some(OptionsCheck::Unreadable(why)) if why.contains("/nonexistent/fence_gone")), "{p:?}");
    }

    #[test]
    fn every_device_of_every_level_is_probed_in_order_and_manual_is_not_an_error() {
        let d = tempfile::tempdir().unwrap();
        let on = write_agent(d.path(), 0);
        let mut cfg = crate::engine::test_support::mds_pair();
        let mut a = agent_device("mds2-agent", on.to_str().unwrap(), &[("ip", "10.0.0.1")]);
        a.name = "mds2-agent".into();
        cfg.fence_devices.push(a);
        cfg.fence_devices.push(FenceDeviceConfig {
            name: "mds2-manual".into(),
            kind: FenceDeviceKind::Manual,
            timeout: Duration::from_secs(1),
            power_timeout: Duration::from_secs(1),
            poll_interval: Duration::from_secs(1),
        });
        let node = cfg.nodes.iter_mut().find(|n| n.name == "mds2").unwrap();
        node.fence_levels = vec![vec!["mds2-agent".into()], vec!["mds2-manual".into(), "not-configured".into()]];
        let probes = probe_node(&cfg, "mds2");
        let got: Vec<(usize, &str, bool)> = probes.iter().map(|p| (p.level, p.device.as_str(), p.ok())).collect();
        assert_eq!(got, [(1, "mds2-agent", true), (2, "mds2-manual", true), (2, "not-configured", false)]);
        assert_eq!(probes[0].answer, ProbeAnswer::Power(PowerState::On));
        assert_eq!(probes[1].answer, ProbeAnswer::Manual);
        assert!(probes[2].to_string().contains("not configured"), "{}", probes[2]);
        assert!(probe_node(&cfg, "nobody").is_empty());
    }
}
