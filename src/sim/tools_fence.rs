//! Simulated ClusterLabs fence agents (`fence_*`) for [`Hardware`]: options from stdin `key=value` lines
//! (FenceAgentAPI; `#` lines ignored, last duplicate wins, legacy names accepted) or from `--key=value`
//! arguments; the victim found by `ip=` (+ `ipport=`) matching a BMC or a PDU (then `plug=` is the outlet),
//! or by `plug=` naming a configured plug. Messages and exit codes follow fencing.py: off/on 0 ok / 1 fail,
//! status 0 on / 2 off / 1 error, `Success: Powered OFF`, `Status: ON`, ...

use std::collections::BTreeMap;
use std::time::Duration;

use rand_chacha::ChaCha8Rng;

use super::hardware::{Hardware, HwOpKind, PowerEffect, PowerSwitch};
use super::tools_common::{self as common, between_ms};
use crate::command::{Command, CommandResult, SecretInto};

/// Legacy and long option names → the canonical name used here.
const ALIASES: &[(&str, &str)] =
    &[("ipaddr", "ip"), ("login", "username"), ("passwd", "password"), ("port", "plug"), ("option", "action")];
/// Short command-line options of fencing.py → canonical names.
const SHORT_OPTIONS: &[(&str, &str)] =
    &[("-o", "action"), ("-n", "plug"), ("-a", "ip"), ("-u", "ipport"), ("-l", "username"), ("-p", "password")];
/// Agents whose `power_wait` defaults to 2 s (fence_ipmilan and its aliases), as in fence-agents 4.12.
const IPMI_AGENTS: &[&str] =
    &["fence_ipmilan", "fence_ipmilanplus", "fence_idrac", "fence_ilo3", "fence_ilo4", "fence_ilo5", "fence_imm"];
const PLUG_FAILURE: &str = "ERROR: Failed: Unable to obtain correct plug status or plug is not available\n";
const DEFAULT_POWER_TIMEOUT: Duration = Duration::from_secs(20);

/// The options an agent received, canonical names → values.
pub fn parse_options(cmd: &Command) -> BTreeMap<String, String> {
    let mut opts = if cmd.argv.len() > 1 {
        options_from_args(&cmd.argv[1..])
    } else {
        options_from_stdin(cmd.stdin.as_deref().unwrap_or(""))
    };
    for secret in &cmd.secrets {
        if let SecretInto::StdinLine(key) = &secret.into {
            // The simulator cannot read the secret file: the value is taken as correct (see DeviceFaults).
            opts.entry(canonical_key(key)).or_insert_with(|| "(secret)".into());
        }
    }
    opts
}

fn options_from_stdin(stdin: &str) -> BTreeMap<String, String> {
    stdin
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (canonical_key(k), unquote(v)))
        .collect()
}

fn options_from_args(args: &[String]) -> BTreeMap<String, String> {
    let mut opts = BTreeMap::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if let Some((k, v)) = a.strip_prefix("--").and_then(|kv| kv.split_once('=')) {
            opts.insert(canonical_key(k), unquote(v));
        } else if let Some((_, name)) = SHORT_OPTIONS.iter().find(|(s, _)| s == a) {
            if let Some(v) = it.next() {
                opts.insert(name.to_string(), unquote(v));
            }
        } else if let Some(flag) = a.strip_prefix("--") {
            opts.insert(canonical_key(flag), "1".into());
        }
    }
    opts
}

fn canonical_key(key: &str) -> String {
    let k = key.trim().trim_start_matches('-').replace('-', "_");
    ALIASES.iter().find(|(legacy, _)| *legacy == k).map_or(k, |(_, name)| name.to_string())
}

fn unquote(v: &str) -> String {
    let v = v.trim();
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return v[1..v.len() - 1].to_string();
        }
    }
    v.to_string()
}

fn seconds_option(opts: &BTreeMap<String, String>, key: &str) -> Option<Duration> {
    opts.get(key)
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

/// What `ip`/`plug` designate.
enum Resolved {
    Switch(PowerSwitch),
    /// An address where no simulated device listens.
    Nothing,
    /// No usable plug.
    NoPlug,
}

fn resolve(hw: &Hardware, opts: &BTreeMap<String, String>) -> Resolved {
    let plug = opts.get("plug");
    if let Some(ip) = opts.get("ip") {
        let port = |default: &str| opts.get("ipport").cloned().unwrap_or_else(|| default.into());
        let bmc = format!("{ip}:{}", port("623"));
        if hw.bmcs.contains_key(&bmc) {
            return Resolved::Switch(PowerSwitch::Bmc(bmc));
        }
        let pdu = format!("{ip}:{}", port("161"));
        let Some(p) = hw.pdus.get(&pdu) else { return Resolved::Nothing };
        return match plug.and_then(|n| n.parse::<u32>().ok()).filter(|n| p.outlets.contains_key(n)) {
            Some(outlet) => Resolved::Switch(PowerSwitch::Outlet { pdu, outlet }),
            None => Resolved::NoPlug,
        };
    }
    match plug.filter(|p| hw.plugs.contains_key(*p)) {
        Some(p) => Resolved::Switch(PowerSwitch::Plug(p.clone())),
        None => Resolved::NoPlug,
    }
}

/// Address a switch is reached at (plugs have none: they can only fail by their own faults).
fn switch_addr(sw: &PowerSwitch) -> Option<&str> {
    match sw {
        PowerSwitch::Bmc(a) | PowerSwitch::Outlet { pdu: a, .. } => Some(a),
        PowerSwitch::Plug(_) => None,
    }
}

fn device_latency(sw: &PowerSwitch, rng: &mut ChaCha8Rng) -> Duration {
    match sw {
        PowerSwitch::Bmc(_) => between_ms(rng, 35, 60),
        PowerSwitch::Outlet { .. } => between_ms(rng, 5, 10),
        PowerSwitch::Plug(_) => between_ms(rng, 20, 50),
    }
}

type Plan = (Duration, HwOpKind);

fn answer(took: Duration, code: i32, stdout: &str, stderr: &str) -> Plan {
    (took, HwOpKind::Answer(CommandResult::exited(code, stdout, stderr)))
}

/// Plan a `fence_*` invocation run by `from`.
pub(crate) fn plan_agent(hw: &Hardware, from: &str, cmd: &Command, rng: &mut ChaCha8Rng) -> Plan {
    let program = common::program_name(cmd.program()).to_string();
    let opts = parse_options(cmd);
    let action = opts.get("action").cloned().unwrap_or_else(|| "reboot".into());
    let startup = between_ms(rng, 60, 90);
    match action.as_str() {
        "metadata" => return answer(startup, 0, &metadata(&program), ""),
        "validate-all" => return answer(startup, 0, "", ""),
        "list" => return answer(startup + between_ms(rng, 10, 50), 0, &list(hw, &opts), ""),
        "on" | "off" | "status" | "reboot" | "monitor" => {}
        other => return answer(startup, 1, "", &format!("ERROR: Failed: Unrecognised action '{other}'\n")),
    }
    let power_timeout = seconds_option(&opts, "power_timeout").unwrap_or(DEFAULT_POWER_TIMEOUT);
    let sw = match resolve(hw, &opts) {
        Resolved::Switch(sw) => sw,
        Resolved::Nothing => return answer(startup + power_timeout, 1, "", "ERROR: Connection timed out\n"),
        Resolved::NoPlug => return answer(startup + between_ms(rng, 20, 40), 1, "", PLUG_FAILURE),
    };
    if let Some(refusal) = refuse(hw, from, &sw, power_timeout, rng) {
        return (startup + refusal.0, refusal.1);
    }
    if action == "monitor" {
        return answer(startup + device_latency(&sw, rng), 0, "", "");
    }
    let took = startup + agent_work(hw, &program, &opts, &sw, &action, rng);
    if took > startup + power_timeout {
        return answer(startup + power_timeout, 1, "", "ERROR: Connection timed out\n");
    }
    (took, HwOpKind::Agent { target: sw, action })
}

/// A device that cannot be used: unreachable, partitioned, wrong credentials.
fn refuse(hw: &Hardware, from: &str, sw: &PowerSwitch, power_timeout: Duration, rng: &mut ChaCha8Rng) -> Option<Plan> {
    let faults = hw.switch_faults(sw);
    if faults.hang {
        // runs until the caller's timeout (`Hardware::begin` turns an answer later than it into a hang)
        return Some((Duration::from_secs(86_400), HwOpKind::Hang));
    }
    let reachable = match switch_addr(sw) {
        Some(addr) => hw.answers(from, addr),
        None => !faults.unreachable,
    };
    let snmp = matches!(sw, PowerSwitch::Outlet { .. });
    if snmp && (!reachable || faults.wrong_password) {
        let addr = switch_addr(sw).unwrap_or_default();
        let msg = format!("ERROR: Returned 1: Timeout: No Response from {addr}\n");
        return Some(answer(between_ms(rng, 6000, 6400), 1, "", &msg));
    }
    if !reachable {
        return Some(answer(power_timeout, 1, "", "ERROR: Connection timed out\n"));
    }
    if faults.wrong_password {
        let msg = if matches!(sw, PowerSwitch::Plug(_)) {
            "ERROR: Failed: Unable to connect/login to fencing device\n"
        } else {
            PLUG_FAILURE
        };
        return Some(answer(between_ms(rng, 10, 30), 1, "", msg));
    }
    None
}

/// Time an action takes on a reachable device: status reads, the set, `power_wait`, the confirming read.
fn agent_work(
    hw: &Hardware,
    program: &str,
    opts: &BTreeMap<String, String>,
    sw: &PowerSwitch,
    action: &str,
    rng: &mut ChaCha8Rng,
) -> Duration {
    let slow = hw.switch_faults(sw).slow.unwrap_or_default();
    let default_wait = if IPMI_AGENTS.contains(&program) { Duration::from_secs(2) } else { Duration::ZERO };
    let power_wait = seconds_option(opts, "power_wait").unwrap_or(default_wait);
    let mut exchange = || device_latency(sw, rng) + slow;
    match action {
        "status" => exchange(),
        "reboot" => (0..6).map(|_| exchange()).sum::<Duration>() + power_wait * 2,
        _ => exchange() + exchange() + exchange() + power_wait,
    }
}

/// Carry out status/on/off/reboot at the end of the command; returns the power effects in order.
pub(crate) fn finish_agent(hw: &mut Hardware, sw: &PowerSwitch, action: &str) -> (CommandResult, Vec<PowerEffect>) {
    let is_on = |hw: &Hardware| hw.read_switch(sw).unwrap_or(false);
    match action {
        "status" if is_on(hw) => (CommandResult::exited(0, "Status: ON\n", ""), Vec::new()),
        "status" => (CommandResult::exited(2, "Status: OFF\n", ""), Vec::new()),
        "on" => set_power(hw, sw, true),
        "off" => set_power(hw, sw, false),
        _ => reboot(hw, sw),
    }
}

/// fencing.py's `set_power_status`: already there → "Already", else set and confirm by reading back.
fn set_power(hw: &mut Hardware, sw: &PowerSwitch, on: bool) -> (CommandResult, Vec<PowerEffect>) {
    let word = if on { "ON" } else { "OFF" };
    if hw.read_switch(sw) == Some(on) {
        return (CommandResult::exited(0, format!("Success: Already {word}\n"), ""), Vec::new());
    }
    let before = hw.power_snapshot();
    hw.set_switch(sw, on);
    let effects = hw.effects_since(&before);
    if hw.read_switch(sw) != Some(on) {
        return (CommandResult::exited(1, "", format!("ERROR: Failed: Timed out waiting to power {word}\n")), effects);
    }
    (CommandResult::exited(0, format!("Success: Powered {word}\n"), ""), effects)
}

/// Reboot (method onoff): off, verified, then on; a failed on does not fail the reboot.
fn reboot(hw: &mut Hardware, sw: &PowerSwitch) -> (CommandResult, Vec<PowerEffect>) {
    let (off, mut effects) = set_power(hw, sw, false);
    if !off.success() {
        return (off, effects);
    }
    let (_, on_effects) = set_power(hw, sw, true);
    effects.extend(on_effects);
    (CommandResult::exited(0, "Success: Rebooted\n", ""), effects)
}

/// `action=list`: the outlets of the PDU at `ip`, or every configured plug; a BMC has no list.
fn list(hw: &Hardware, opts: &BTreeMap<String, String>) -> String {
    if let Some(ip) = opts.get("ip") {
        let port = opts.get("ipport").map_or("161", String::as_str);
        return match hw.pdus.get(&format!("{ip}:{port}")) {
            Some(p) => p.outlets.iter().map(|(n, o)| format!("{n},{}\n", o.node)).collect(),
            None => "NOTICE: List option is not working on this device yet\n".into(),
        };
    }
    hw.plugs.iter().map(|(plug, p)| format!("{plug},{}\n", p.node)).collect()
}

/// `action=metadata`: the agent's parameters and actions in the fencing.py XML layout.
pub fn metadata(program: &str) -> String {
    const PARAMS: &[(&str, &str, &str, &str)] = &[
        ("action", "-o, --action=[action]", "reboot", "Fencing action"),
        ("ip", "-a, --ip=[ip]", "", "IP address or hostname of fencing device"),
        ("ipport", "-u, --ipport=[port]", "623", "TCP/UDP port to use for connection with device"),
        ("username", "-l, --username=[name]", "", "Login name"),
        ("password", "-p, --password=[password]", "", "Login password or passphrase"),
        ("plug", "-n, --plug=[id]", "", "Physical plug number on device, UUID or identification of machine"),
        ("power_timeout", "--power-timeout=[seconds]", "20", "Test X seconds for status change after ON/OFF"),
        ("power_wait", "--power-wait=[seconds]", "0", "Wait X seconds after issuing ON/OFF"),
    ];
    let mut xml = format!(
        "<?xml version=\"1.0\" ?>\n\
         <resource-agent name=\"{program}\" shortdesc=\"Fence agent simulated by failoverd\" >\n\
         <longdesc>{program} is answered by the failoverd simulator: it switches simulated power.</longdesc>\n\
         <parameters>\n"
    );
    for (name, getopt, default, desc) in PARAMS {
        let required = u8::from(*name == "action");
        let default = if default.is_empty() { String::new() } else { format!(" default=\"{default}\"") };
        xml.push_str(&format!(
            "\t<parameter name=\"{name}\" unique=\"0\" required=\"{required}\">\n\
             \t\t<getopt mixed=\"{getopt}\" />\n\
             \t\t<content type=\"string\"{default}  />\n\
             \t\t<shortdesc lang=\"en\">{desc}</shortdesc>\n\
             \t</parameter>\n"
        ));
    }
    xml.push_str("</parameters>\n<actions>\n\t<action name=\"on\" automatic=\"0\"/>\n");
    for action in ["off", "reboot", "status", "list", "monitor", "metadata", "validate-all"] {
        xml.push_str(&format!("\t<action name=\"{action}\" />\n"));
    }
    xml.push_str("</actions>\n</resource-agent>\n");
    xml
}
