//! Simulated power hardware: nodes' chassis power, BMCs (answering `ipmitool`), switched PDUs (answering
//! `snmpget`/`snmpset` with the APC rPDU, APC MasterSwitch and Tripplite OIDs) and ClusterLabs fence agents
//! (`fence_*`, stdin `key=value` API), in the real tools' output formats and exit codes (see
//! `docs/reference/fence-lab.md` §1–§2 and `docs/reference/ha-stacks-facts.md` §3).
//!
//! # Power model
//! A node is powered iff its chassis is on and, when PDU outlets feed it, its outlets allow it: with
//! redundant power supplies (the default) ANY outlet on keeps it running, so fencing must switch off all of
//! them; a node marked non-redundant needs ALL its outlets on. A BMC runs on standby power: it is
//! unreachable while every outlet feeding its node is off. Power comes back on its own when an outlet returns
//! and the chassis is on (BIOS "restore power").
//!
//! # Faults
//! Each device has [`DeviceFaults`]: unreachable (times out), slow (answers late; past the tool's own
//! timeout it times out, with no effect), lying (acknowledges and reports off/on but the power does not
//! change), wrong password (authentication fails at once). A management-network partition between a host and
//! a device address is `blocked`.
//!
//! # Timed operations
//! As in `storage`: [`Hardware::begin`] parses the command and decides reachability and duration;
//! [`Hardware::finish`] at `finish_at` reads and changes the power state and returns the answer plus the
//! [`PowerEffect`]s the world must apply (crash or boot the hosts, `SharedStorage::set_powered`). The world
//! drops pending ops of a host that lost power.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::tools_common::{self as common, between_ms};
use super::tools_fence;
use crate::command::{Command, CommandResult, SecretInto};
use crate::config::PduProfile;
use crate::time::Time;

/// Faults injectable on a BMC, a PDU or a fence-agent plug.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceFaults {
    /// Nothing answers: the tool retries, then times out.
    pub unreachable: bool,
    /// Every exchange with the device takes this much longer.
    pub slow: Option<Duration>,
    /// Acknowledges power commands and reports the state asked for, but the power does not change.
    pub lying: bool,
    /// Authentication fails (IPMI RAKP HMAC, SNMP community: no answer at all).
    pub wrong_password: bool,
    /// A fence agent talking to it never returns (stuck in a connect, a half-open TCP session): it runs until
    /// its timeout kills it.
    pub hang: bool,
}

/// A node's own power: its chassis state and how its power supplies combine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimNode {
    pub chassis_on: bool,
    /// Redundant PSUs: one outlet on is enough to run (the default).
    pub redundant_psu: bool,
}

/// A BMC at an address, controlling one node's chassis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimBmc {
    pub node: String,
    pub faults: DeviceFaults,
    /// What a lying BMC claims the chassis state is.
    pub reported_on: Option<bool>,
}

/// One PDU outlet and the node it feeds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimOutlet {
    pub node: String,
    pub on: bool,
    /// What a lying PDU claims the outlet state is.
    pub reported_on: Option<bool>,
}

/// A switched PDU answering SNMP with the OIDs of its profile.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimPdu {
    pub profile: PduProfile,
    pub outlets: BTreeMap<u32, SimOutlet>,
    pub faults: DeviceFaults,
}

/// A fence-agent plug (`plug=` on stdin) switching one node's power directly, like a hypervisor or a
/// vendor power controller behind `fence_failoverd_sim`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimPlug {
    pub node: String,
    pub faults: DeviceFaults,
    pub reported_on: Option<bool>,
}

/// The power side of the simulated world: every node's power and every device that can cut it.
/// Serializable so several processes can share it as JSON.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hardware {
    pub nodes: BTreeMap<String, SimNode>,
    /// By address `host:port`.
    pub bmcs: BTreeMap<String, SimBmc>,
    /// By address `host:port`.
    pub pdus: BTreeMap<String, SimPdu>,
    /// By plug name.
    pub plugs: BTreeMap<String, SimPlug>,
    /// Management-network partitions: (host running the tool, device address) pairs that cannot talk.
    pub blocked: BTreeSet<(String, String)>,
}

/// A node's power changed: the world crashes (`powered: false`) or boots (`true`) that host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PowerEffect {
    pub node: String,
    pub powered: bool,
}

/// A hardware command in flight.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HwPending {
    pub finish_at: Time,
    pub op: HwOp,
}

/// The parsed command, who runs it and since when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HwOp {
    pub from: String,
    pub started: Time,
    pub kind: HwOpKind,
}

/// `-O` output options of net-snmp that matter here: `q` quick, `v` value only, `n` numeric OIDs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnmpFormat {
    pub quick: bool,
    pub value_only: bool,
    pub numeric: bool,
}

/// The hardware commands the simulator understands, parsed from argv.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HwOpKind {
    /// An answer fixed when the command began (unreachable device, usage error...).
    Answer(CommandResult),
    /// Killed at its timeout: no effect.
    Hang,
    /// `ipmitool ... chassis power <action>` on a reachable BMC.
    Ipmi {
        addr: String,
        action: String,
    },
    SnmpGet {
        addr: String,
        oids: Vec<String>,
        v1: bool,
        format: SnmpFormat,
    },
    SnmpSet {
        addr: String,
        sets: Vec<(String, i64)>,
        v1: bool,
        format: SnmpFormat,
    },
    /// A fence agent's status/on/off/reboot on a reachable device.
    Agent {
        target: PowerSwitch,
        action: String,
    },
}

/// What a device's state means to the tools: the node behind it and how to read or switch it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PowerSwitch {
    Bmc(String),
    Outlet { pdu: String, outlet: u32 },
    Plug(String),
}

/// A setup mistake in a scenario.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HardwareError {
    #[error("unknown node {0}")]
    UnknownNode(String),
    #[error("unknown device {0}")]
    UnknownDevice(String),
    #[error("{0} already exists")]
    Duplicate(String),
}

type HwPlanner = fn(&Hardware, &str, &Command, &mut ChaCha8Rng) -> (Duration, HwOpKind);

/// Program name → planner (fence agents, `fence_*`, are matched by prefix in [`Hardware::begin`]).
const TOOLS: &[(&str, HwPlanner)] = &[("ipmitool", plan_ipmitool), ("snmpget", plan_snmp), ("snmpset", plan_snmp)];

/// ipmitool's defaults when `-N`/`-R` are not given (gives up after ~20 s, as measured in the fence lab).
const IPMI_DEFAULT_TIMEOUT_S: u64 = 4;
const IPMI_DEFAULT_RETRIES: u64 = 4;
/// net-snmp's defaults: `-t 1 -r 5`.
const SNMP_DEFAULT_TIMEOUT_S: u64 = 1;
const SNMP_DEFAULT_RETRIES: u64 = 5;
const SYS_OBJECT_ID: &str = "1.3.6.1.2.1.1.2.0";

impl Hardware {
    /// No nodes, no devices.
    pub fn new() -> Hardware {
        Hardware::default()
    }

    // ----- setup -------------------------------------------------------------------------------------

    /// A powered node with redundant power supplies.
    pub fn add_node(&mut self, name: &str) -> Result<(), HardwareError> {
        if self.nodes.contains_key(name) {
            return Err(HardwareError::Duplicate(format!("node {name}")));
        }
        self.nodes.insert(name.into(), SimNode { chassis_on: true, redundant_psu: true });
        Ok(())
    }

    fn known_node(&self, node: &str) -> Result<(), HardwareError> {
        self.nodes.contains_key(node).then_some(()).ok_or_else(|| HardwareError::UnknownNode(node.into()))
    }

    /// A BMC at `host:port` for `node`.
    pub fn add_bmc(&mut self, addr: &str, node: &str) -> Result<(), HardwareError> {
        self.known_node(node)?;
        if self.bmcs.contains_key(addr) {
            return Err(HardwareError::Duplicate(format!("BMC {addr}")));
        }
        self.bmcs.insert(addr.into(), SimBmc { node: node.into(), faults: DeviceFaults::default(), reported_on: None });
        Ok(())
    }

    /// A PDU at `host:port` with no outlets yet.
    pub fn add_pdu(&mut self, addr: &str, profile: PduProfile) -> Result<(), HardwareError> {
        if self.pdus.contains_key(addr) {
            return Err(HardwareError::Duplicate(format!("PDU {addr}")));
        }
        self.pdus.insert(addr.into(), SimPdu { profile, outlets: BTreeMap::new(), faults: DeviceFaults::default() });
        Ok(())
    }

    /// Outlet `outlet` of the PDU at `addr` feeds `node` (on).
    pub fn add_outlet(&mut self, addr: &str, outlet: u32, node: &str) -> Result<(), HardwareError> {
        self.known_node(node)?;
        let pdu = self.pdus.get_mut(addr).ok_or_else(|| HardwareError::UnknownDevice(addr.into()))?;
        pdu.outlets.insert(outlet, SimOutlet { node: node.into(), on: true, reported_on: None });
        Ok(())
    }

    /// A fence-agent plug name for `node`.
    pub fn add_plug(&mut self, plug: &str, node: &str) -> Result<(), HardwareError> {
        self.known_node(node)?;
        self.plugs
            .insert(plug.into(), SimPlug { node: node.into(), faults: DeviceFaults::default(), reported_on: None });
        Ok(())
    }

    /// The faults of a BMC or PDU (by address) or of a plug (by name).
    pub fn faults_mut(&mut self, device: &str) -> Option<&mut DeviceFaults> {
        if let Some(b) = self.bmcs.get_mut(device) {
            return Some(&mut b.faults);
        }
        if let Some(p) = self.pdus.get_mut(device) {
            return Some(&mut p.faults);
        }
        self.plugs.get_mut(device).map(|p| &mut p.faults)
    }

    /// Cut (or restore) the management network between a host and a device address.
    pub fn set_reachable(&mut self, from: &str, addr: &str, reachable: bool) {
        let key = (from.to_string(), addr.to_string());
        if reachable {
            self.blocked.remove(&key);
        } else {
            self.blocked.insert(key);
        }
    }

    // ----- power -------------------------------------------------------------------------------------

    /// Is the node running?
    pub fn node_powered(&self, node: &str) -> bool {
        let Some(n) = self.nodes.get(node) else { return false };
        let feeds: Vec<bool> = self.outlets_of(node).map(|o| o.on).collect();
        let fed =
            feeds.is_empty() || if n.redundant_psu { feeds.iter().any(|&on| on) } else { feeds.iter().all(|&on| on) };
        n.chassis_on && fed
    }

    fn outlets_of<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a SimOutlet> + 'a {
        self.pdus.values().flat_map(|p| p.outlets.values()).filter(move |o| o.node == node)
    }

    /// Standby power for the node's BMC: no outlets modelled, or at least one on.
    fn standby_power(&self, node: &str) -> bool {
        let mut feeds = self.outlets_of(node).peekable();
        feeds.peek().is_none() || self.outlets_of(node).any(|o| o.on)
    }

    /// Every node's power, to diff after a change.
    pub(crate) fn power_snapshot(&self) -> BTreeMap<String, bool> {
        self.nodes.keys().map(|n| (n.clone(), self.node_powered(n))).collect()
    }

    /// The nodes whose power differs between two snapshots.
    pub(crate) fn effects_since(&self, before: &BTreeMap<String, bool>) -> Vec<PowerEffect> {
        let after = self.power_snapshot();
        after
            .iter()
            .filter(|(n, on)| before.get(*n) != Some(on))
            .map(|(n, on)| PowerEffect { node: n.clone(), powered: *on })
            .collect()
    }

    /// Switch a node's chassis directly (an operator at the console, a scenario's power event).
    pub fn set_chassis(&mut self, node: &str, on: bool) -> Vec<PowerEffect> {
        let before = self.power_snapshot();
        if let Some(n) = self.nodes.get_mut(node) {
            n.chassis_on = on;
        }
        self.effects_since(&before)
    }

    /// Switch an outlet directly (a scenario's event).
    pub fn set_outlet(&mut self, pdu: &str, outlet: u32, on: bool) -> Vec<PowerEffect> {
        let before = self.power_snapshot();
        if let Some(o) = self.pdus.get_mut(pdu).and_then(|p| p.outlets.get_mut(&outlet)) {
            o.on = on;
        }
        self.effects_since(&before)
    }

    /// The state a device reports: a lying device's claim, else the truth (a device whose lie was cleared,
    /// by an `ok` fault or the settle, tells the truth again).
    pub(crate) fn read_switch(&self, sw: &PowerSwitch) -> Option<bool> {
        let truth = self.true_switch(sw)?;
        if !self.switch_faults(sw).lying {
            return Some(truth);
        }
        let claim = match sw {
            PowerSwitch::Bmc(addr) => self.bmcs.get(addr)?.reported_on,
            PowerSwitch::Outlet { pdu, outlet } => self.pdus.get(pdu)?.outlets.get(outlet)?.reported_on,
            PowerSwitch::Plug(name) => self.plugs.get(name)?.reported_on,
        };
        Some(claim.unwrap_or(truth))
    }

    /// The state a device would report if it told the truth.
    fn true_switch(&self, sw: &PowerSwitch) -> Option<bool> {
        match sw {
            PowerSwitch::Bmc(addr) => {
                let b = self.bmcs.get(addr)?;
                Some(self.nodes.get(&b.node)?.chassis_on)
            }
            PowerSwitch::Outlet { pdu, outlet } => Some(self.pdus.get(pdu)?.outlets.get(outlet)?.on),
            PowerSwitch::Plug(name) => {
                let p = self.plugs.get(name)?;
                Some(self.node_powered(&p.node))
            }
        }
    }

    /// Switch a device; a lying device only changes what it reports.
    pub(crate) fn set_switch(&mut self, sw: &PowerSwitch, on: bool) {
        let lying = self.switch_faults(sw).lying;
        match sw {
            PowerSwitch::Bmc(addr) => {
                let Some(b) = self.bmcs.get_mut(addr) else { return };
                b.reported_on = lying.then_some(on);
                let node = b.node.clone();
                if !lying {
                    self.set_chassis(&node, on);
                }
            }
            PowerSwitch::Outlet { pdu, outlet } => {
                if let Some(o) = self.pdus.get_mut(pdu).and_then(|p| p.outlets.get_mut(outlet)) {
                    o.reported_on = lying.then_some(on);
                    if !lying {
                        o.on = on;
                    }
                }
            }
            PowerSwitch::Plug(name) => {
                let Some(p) = self.plugs.get_mut(name) else { return };
                p.reported_on = lying.then_some(on);
                let node = p.node.clone();
                if !lying {
                    self.set_chassis(&node, on);
                }
            }
        }
    }

    /// The faults of the device behind a switch.
    pub(crate) fn switch_faults(&self, sw: &PowerSwitch) -> DeviceFaults {
        let f = match sw {
            PowerSwitch::Bmc(addr) => self.bmcs.get(addr).map(|b| &b.faults),
            PowerSwitch::Outlet { pdu, .. } => self.pdus.get(pdu).map(|p| &p.faults),
            PowerSwitch::Plug(name) => self.plugs.get(name).map(|p| &p.faults),
        };
        f.cloned().unwrap_or_default()
    }

    /// Can `from` talk to the device at `addr` at all (exists, not unreachable, not partitioned, powered)?
    pub(crate) fn answers(&self, from: &str, addr: &str) -> bool {
        if self.blocked.contains(&(from.to_string(), addr.to_string())) {
            return false;
        }
        if let Some(b) = self.bmcs.get(addr) {
            return !b.faults.unreachable && self.standby_power(&b.node);
        }
        self.pdus.get(addr).is_some_and(|p| !p.faults.unreachable)
    }

    // ----- commands ----------------------------------------------------------------------------------

    /// Is this a command the hardware model answers (`ipmitool`, `snmpget`, `snmpset`, `fence_*`)?
    pub fn handles(cmd: &Command) -> bool {
        let prog = common::program_name(cmd.program());
        prog.starts_with("fence_") || TOOLS.iter().any(|(name, _)| *name == prog)
    }

    /// Start a command run by host `from` at `now`.
    pub fn begin(&mut self, from: &str, cmd: &Command, now: Time, rng: &mut ChaCha8Rng) -> HwPending {
        let prog = common::program_name(cmd.program());
        let (took, kind) = if prog.starts_with("fence_") {
            tools_fence::plan_agent(self, from, cmd, rng)
        } else {
            match TOOLS.iter().find(|(name, _)| *name == prog) {
                Some((_, planner)) => planner(self, from, cmd, rng),
                None => (between_ms(rng, 1, 3), HwOpKind::Answer(common::command_not_found(cmd))),
            }
        };
        let (took, kind) = match common::within_timeout(cmd, took) {
            Some(d) => (d, kind),
            None => (cmd.timeout, HwOpKind::Hang),
        };
        HwPending { finish_at: now + took, op: HwOp { from: from.into(), started: now, kind } }
    }

    /// Complete a command at `now`: the answer, and the power changes it caused, in order.
    pub fn finish(&mut self, op: HwOp, now: Time) -> (CommandResult, Vec<PowerEffect>) {
        let (result, effects) = match op.kind {
            HwOpKind::Answer(r) => (r, Vec::new()),
            HwOpKind::Hang => (common::timed_out_after(Duration::ZERO), Vec::new()),
            HwOpKind::Ipmi { addr, action } => self.finish_ipmi(&addr, &action),
            HwOpKind::SnmpGet { addr, oids, v1, format } => {
                (self.finish_snmp_get(&addr, &oids, v1, format), Vec::new())
            }
            HwOpKind::SnmpSet { addr, sets, v1, format } => self.finish_snmp_set(&addr, &sets, v1, format),
            HwOpKind::Agent { target, action } => tools_fence::finish_agent(self, &target, &action),
        };
        (common::with_duration(result, op.started, now), effects)
    }

    // ----- ipmitool ----------------------------------------------------------------------------------

    fn finish_ipmi(&mut self, addr: &str, action: &str) -> (CommandResult, Vec<PowerEffect>) {
        let sw = PowerSwitch::Bmc(addr.to_string());
        let before = self.power_snapshot();
        let on = self.read_switch(&sw).unwrap_or(false);
        let out = match action {
            "status" => format!("Chassis Power is {}\n", if on { "on" } else { "off" }),
            "off" | "soft" => {
                self.set_switch(&sw, false);
                format!("Chassis Power Control: {}\n", if action == "off" { "Down/Off" } else { "Soft" })
            }
            "on" => {
                self.set_switch(&sw, true);
                "Chassis Power Control: Up/On\n".into()
            }
            _ => return self.ipmi_cycle(&sw, action, before),
        };
        (CommandResult::exited(0, out, ""), self.effects_since(&before))
    }

    /// `cycle` / `reset`: off then on again (only if it was on); both effects are returned.
    fn ipmi_cycle(
        &mut self,
        sw: &PowerSwitch,
        action: &str,
        before: BTreeMap<String, bool>,
    ) -> (CommandResult, Vec<PowerEffect>) {
        let mut effects = Vec::new();
        if self.read_switch(sw) == Some(true) {
            self.set_switch(sw, false);
            effects = self.effects_since(&before);
            let middle = self.power_snapshot();
            self.set_switch(sw, true);
            effects.extend(self.effects_since(&middle));
        }
        let word = if action == "cycle" { "Cycle" } else { "Reset" };
        (CommandResult::exited(0, format!("Chassis Power Control: {word}\n"), ""), effects)
    }

    // ----- snmp --------------------------------------------------------------------------------------

    fn finish_snmp_get(&self, addr: &str, oids: &[String], v1: bool, format: SnmpFormat) -> CommandResult {
        let Some(pdu) = self.pdus.get(addr) else { return CommandResult::exited(1, "", "") };
        let mut out = String::new();
        for oid in oids {
            match snmp_read(pdu, oid) {
                Some(value) => out.push_str(&snmp_line(oid, &value, format)),
                None if v1 => {
                    return snmp_error("(noSuchName) There is no such variable name in this MIB.", oid, format)
                }
                None => out.push_str(&snmp_line(oid, &SnmpValue::NoSuchInstance, format)),
            }
        }
        CommandResult::exited(0, out, "")
    }

    fn finish_snmp_set(
        &mut self,
        addr: &str,
        sets: &[(String, i64)],
        v1: bool,
        format: SnmpFormat,
    ) -> (CommandResult, Vec<PowerEffect>) {
        let Some(pdu) = self.pdus.get(addr) else { return (CommandResult::exited(1, "", ""), Vec::new()) };
        let mut changes = Vec::new();
        for (oid, value) in sets {
            match snmp_write_check(pdu, oid, *value) {
                Ok(change) => changes.push(change),
                Err(e) => return (snmp_error(e.reason(v1), oid, format), Vec::new()),
            }
        }
        let before = self.power_snapshot();
        let mut out = String::new();
        for ((oid, value), (outlet, on)) in sets.iter().zip(changes) {
            self.set_switch(&PowerSwitch::Outlet { pdu: addr.to_string(), outlet }, on);
            out.push_str(&snmp_line(oid, &SnmpValue::Integer(*value), format));
        }
        (CommandResult::exited(0, out, ""), self.effects_since(&before))
    }
}

// ----- ipmitool parsing ------------------------------------------------------------------------------

/// Parsed `ipmitool` options.
#[derive(Default)]
struct IpmiArgs {
    lanplus: bool,
    host: Option<String>,
    port: u16,
    env_password: bool,
    password: bool,
    timeout_s: u64,
    retries: u64,
    command: Vec<String>,
}

fn parse_ipmitool(argv: &[String]) -> Option<IpmiArgs> {
    let mut a =
        IpmiArgs { port: 623, timeout_s: IPMI_DEFAULT_TIMEOUT_S, retries: IPMI_DEFAULT_RETRIES, ..IpmiArgs::default() };
    let mut it = argv.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "-E" => a.env_password = true,
            "-I" => a.lanplus = it.next()? == "lanplus",
            "-H" => a.host = Some(it.next()?.clone()),
            "-p" => a.port = it.next()?.parse().ok()?,
            "-P" | "-f" => {
                it.next()?;
                a.password = true;
            }
            "-N" => a.timeout_s = it.next()?.parse().ok()?,
            "-R" => a.retries = it.next()?.parse().ok()?,
            "-U" | "-L" | "-C" | "-A" | "-y" | "-t" => {
                it.next()?;
            }
            s if s.starts_with('-') => return None,
            s => a.command.push(s.to_string()),
        }
    }
    Some(a)
}

/// `ipmitool -I lanplus -H <host> -p <port> -U <user> -E -L <priv> [-C n] -N 1 -R 2 chassis power <action>`.
fn plan_ipmitool(hw: &Hardware, from: &str, cmd: &Command, rng: &mut ChaCha8Rng) -> (Duration, HwOpKind) {
    let usage = |rng: &mut ChaCha8Rng| (between_ms(rng, 1, 5), HwOpKind::Answer(common::unsupported(cmd)));
    let Some(a) = parse_ipmitool(&cmd.argv[1..]) else { return usage(rng) };
    let action = match a.command.as_slice() {
        [c, p, action] if c == "chassis" && p == "power" => action.clone(),
        _ => return usage(rng),
    };
    if !["status", "on", "off", "cycle", "reset", "soft"].contains(&action.as_str()) {
        return usage(rng);
    }
    let Some(host) = a.host.as_deref() else { return usage(rng) };
    let addr = format!("{host}:{}", a.port);
    let session_error = if a.lanplus {
        "Error: Unable to establish IPMI v2 / RMCP+ session\n"
    } else {
        "Error: Unable to establish LAN session\n"
    };
    let give_up = Duration::from_secs(a.timeout_s * (a.retries + 1));
    let slow = hw.bmcs.get(&addr).and_then(|b| b.faults.slow).unwrap_or_default();
    if !hw.answers(from, &addr) || slow >= give_up {
        return (give_up + between_ms(rng, 20, 80), HwOpKind::Answer(CommandResult::exited(1, "", session_error)));
    }
    let has_password = a.password || (a.env_password && env_has(cmd, "IPMI_PASSWORD"));
    let wrong = hw.bmcs.get(&addr).is_some_and(|b| b.faults.wrong_password);
    if !has_password || wrong {
        let prefix = if has_password { "" } else { "Unable to read password from environment\n" };
        let rakp = if a.lanplus { "RAKP 2 HMAC is invalid\n" } else { "" };
        let msg = format!("{prefix}{rakp}{session_error}");
        return (slow + between_ms(rng, 30, 80), HwOpKind::Answer(CommandResult::exited(1, "", msg)));
    }
    (slow + between_ms(rng, 35, 50), HwOpKind::Ipmi { addr, action })
}

/// The variable is set in the command's environment or will be by the driver from a secret.
fn env_has(cmd: &Command, var: &str) -> bool {
    cmd.env.contains_key(var) || cmd.secrets.iter().any(|s| matches!(&s.into, SecretInto::Env(v) if v == var))
}

// ----- snmp parsing and MIB --------------------------------------------------------------------------

/// Parsed `snmpget` / `snmpset` options.
struct SnmpArgs {
    v1: bool,
    format: SnmpFormat,
    timeout_s: u64,
    retries: u64,
    agent: String,
    rest: Vec<String>,
}

fn parse_snmp(argv: &[String]) -> Option<SnmpArgs> {
    let mut a = SnmpArgs {
        v1: false,
        format: SnmpFormat::default(),
        timeout_s: SNMP_DEFAULT_TIMEOUT_S,
        retries: SNMP_DEFAULT_RETRIES,
        agent: String::new(),
        rest: Vec::new(),
    };
    let mut version = None;
    let mut it = argv.iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = if arg.starts_with('-') && arg.len() > 2 {
            (&arg[..2], Some(arg[2..].to_string()))
        } else {
            (arg.as_str(), None)
        };
        let mut value = || inline.clone().or_else(|| it.next().cloned());
        match flag {
            "-v" => version = value(),
            "-O" => a.format = snmp_format(&value()?),
            "-t" => a.timeout_s = value()?.parse().ok()?,
            "-r" => a.retries = value()?.parse().ok()?,
            "-m" | "-c" | "-M" => {
                value()?;
            }
            s if s.starts_with('-') => return None,
            _ if a.agent.is_empty() => a.agent = arg.clone(),
            _ => a.rest.push(arg.clone()),
        }
    }
    a.v1 = match version.as_deref() {
        Some("1") => true,
        Some("2c") => false,
        _ => return None,
    };
    (!a.agent.is_empty()).then_some(a)
}

fn snmp_format(flags: &str) -> SnmpFormat {
    SnmpFormat { quick: flags.contains('q'), value_only: flags.contains('v'), numeric: flags.contains('n') }
}

/// `udp:host:port`, `host:port` or `host` → the PDU address key `host:port`.
fn agent_address(agent: &str) -> String {
    let bare = agent.strip_prefix("udp:").unwrap_or(agent);
    if bare.contains(':') {
        bare.to_string()
    } else {
        format!("{bare}:161")
    }
}

/// `snmpget|snmpset -v1 -m "" -Oqv -t 2 -r 1 udp:<host>:<port> <oid> [i <value>] ...`.
fn plan_snmp(hw: &Hardware, from: &str, cmd: &Command, rng: &mut ChaCha8Rng) -> (Duration, HwOpKind) {
    let usage = |rng: &mut ChaCha8Rng| (between_ms(rng, 1, 5), HwOpKind::Answer(common::unsupported(cmd)));
    let Some(a) = parse_snmp(&cmd.argv[1..]) else { return usage(rng) };
    let addr = agent_address(&a.agent);
    let give_up = Duration::from_secs(a.timeout_s * (a.retries + 1));
    let faults = hw.pdus.get(&addr).map(|p| p.faults.clone()).unwrap_or_default();
    let slow = faults.slow.unwrap_or_default();
    if !hw.answers(from, &addr) || faults.wrong_password || slow >= Duration::from_secs(a.timeout_s) {
        let msg = format!("Timeout: No Response from {}.\n", a.agent);
        return (give_up + between_ms(rng, 1, 10), HwOpKind::Answer(CommandResult::exited(1, "", msg)));
    }
    let took = slow + between_ms(rng, 5, 10);
    let oids: Vec<String> = a.rest.iter().step_by(if is_set(cmd) { 3 } else { 1 }).map(|o| normalize_oid(o)).collect();
    if !is_set(cmd) {
        return (took, HwOpKind::SnmpGet { addr, oids, v1: a.v1, format: a.format });
    }
    let sets: Option<Vec<(String, i64)>> = a
        .rest
        .chunks(3)
        .map(|c| match c {
            [oid, t, v] if t == "i" => v.parse().ok().map(|v| (normalize_oid(oid), v)),
            _ => None,
        })
        .collect();
    match sets {
        Some(sets) if !sets.is_empty() => (took, HwOpKind::SnmpSet { addr, sets, v1: a.v1, format: a.format }),
        _ => usage(rng),
    }
}

fn is_set(cmd: &Command) -> bool {
    common::program_name(cmd.program()) == "snmpset"
}

/// `.1.3.6...` / `iso.3.6...` / `1.3.6...` → `1.3.6...`.
fn normalize_oid(oid: &str) -> String {
    let o = oid.trim_start_matches('.');
    match o.strip_prefix("iso.") {
        Some(rest) => format!("1.{rest}"),
        None => o.to_string(),
    }
}

/// What an outlet OID is in a profile.
#[derive(Clone, Copy, PartialEq, Eq)]
enum OidRole {
    Control,
    Status,
    /// The classic MasterSwitch uses one OID for both.
    Both,
}

/// (control prefix, status prefix, value for on, value for off) of each PDU family (fence_apc_snmp).
fn profile_oids(profile: PduProfile) -> (&'static str, &'static str, i64, i64) {
    match profile {
        PduProfile::ApcRpdu => ("1.3.6.1.4.1.318.1.1.12.3.3.1.1.4.", "1.3.6.1.4.1.318.1.1.12.3.5.1.1.4.", 1, 2),
        PduProfile::ApcMasterSwitch => ("1.3.6.1.4.1.318.1.1.4.4.2.1.3.", "1.3.6.1.4.1.318.1.1.4.4.2.1.3.", 1, 2),
        PduProfile::Tripplite => ("1.3.6.1.4.1.850.10.2.3.5.1.4.1.", "1.3.6.1.4.1.850.10.2.3.5.1.2.1.", 2, 1),
    }
}

fn sys_object_id(profile: PduProfile) -> &'static str {
    match profile {
        PduProfile::ApcRpdu => "1.3.6.1.4.1.318.1.3.4.5",
        PduProfile::ApcMasterSwitch => "1.3.6.1.4.1.318.1.3.4.4",
        PduProfile::Tripplite => "1.3.6.1.4.1.850.1",
    }
}

/// The role and outlet number of an OID of an existing outlet of this PDU.
fn classify_oid(pdu: &SimPdu, oid: &str) -> Option<(OidRole, u32)> {
    let (control, status, _, _) = profile_oids(pdu.profile);
    let (role, rest) = if control == status {
        (OidRole::Both, oid.strip_prefix(control)?)
    } else if let Some(rest) = oid.strip_prefix(control) {
        (OidRole::Control, rest)
    } else {
        (OidRole::Status, oid.strip_prefix(status)?)
    };
    let outlet: u32 = rest.parse().ok()?;
    pdu.outlets.contains_key(&outlet).then_some((role, outlet))
}

/// A value an SNMP agent returns.
enum SnmpValue {
    Integer(i64),
    Oid(String),
    NoSuchInstance,
}

fn snmp_read(pdu: &SimPdu, oid: &str) -> Option<SnmpValue> {
    if oid == SYS_OBJECT_ID {
        return Some(SnmpValue::Oid(sys_object_id(pdu.profile).into()));
    }
    let (_, outlet) = classify_oid(pdu, oid)?;
    let o = pdu.outlets.get(&outlet)?;
    let (_, _, on, off) = profile_oids(pdu.profile);
    Some(SnmpValue::Integer(if o.reported_on.unwrap_or(o.on) { on } else { off }))
}

/// Why a SET is refused (SNMP error status).
enum SetError {
    NoSuchObject,
    NotWritable,
    BadValue,
}

impl SetError {
    /// net-snmp's `snmp_errstring` for the status a v1 or v2c agent sends.
    fn reason(&self, v1: bool) -> &'static str {
        match (self, v1) {
            (SetError::NoSuchObject | SetError::NotWritable, true) => {
                "(noSuchName) There is no such variable name in this MIB."
            }
            (SetError::BadValue, true) => "(badValue) The value given has the wrong type or length.",
            (SetError::NoSuchObject, false) => {
                "noCreation (That table does not support row creation or that object can not ever be created)"
            }
            (SetError::NotWritable, false) => "notWritable (That object does not support modification)",
            (SetError::BadValue, false) => "wrongValue (The set value is illegal or unsupported in some way)",
        }
    }
}

/// Validate one SET varbind: the outlet and whether it turns it on.
fn snmp_write_check(pdu: &SimPdu, oid: &str, value: i64) -> Result<(u32, bool), SetError> {
    let (role, outlet) = classify_oid(pdu, oid).ok_or(SetError::NoSuchObject)?;
    if role == OidRole::Status {
        return Err(SetError::NotWritable);
    }
    let (_, _, on, off) = profile_oids(pdu.profile);
    match value {
        v if v == on => Ok((outlet, true)),
        v if v == off => Ok((outlet, false)),
        _ => Err(SetError::BadValue),
    }
}

fn print_oid(oid: &str, format: SnmpFormat) -> String {
    if format.numeric {
        format!(".{oid}")
    } else {
        format!("iso{}", oid.strip_prefix('1').unwrap_or(oid))
    }
}

/// One output line of net-snmp for a variable, honouring `-Oq`, `-Ov`, `-On`.
fn snmp_line(oid: &str, value: &SnmpValue, format: SnmpFormat) -> String {
    let (typed, bare) = match value {
        SnmpValue::Integer(v) => (format!("INTEGER: {v}"), v.to_string()),
        SnmpValue::Oid(o) => (format!("OID: {}", print_oid(o, format)), print_oid(o, format)),
        SnmpValue::NoSuchInstance => {
            let t = "No Such Instance currently exists at this OID".to_string();
            (t.clone(), t)
        }
    };
    let shown = if format.quick { bare } else { typed };
    match (format.value_only, format.quick) {
        (true, _) => format!("{shown}\n"),
        (false, true) => format!("{} {shown}\n", print_oid(oid, format)),
        (false, false) => format!("{} = {shown}\n", print_oid(oid, format)),
    }
}

/// An error-status response: net-snmp's apps exit 2.
fn snmp_error(reason: &str, oid: &str, format: SnmpFormat) -> CommandResult {
    let msg = format!("Error in packet.\nReason: {reason}\nFailed object: {}\n", print_oid(oid, format));
    CommandResult::exited(2, "", msg)
}
