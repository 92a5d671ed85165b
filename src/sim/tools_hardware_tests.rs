//! Tests of the simulated power hardware through the `begin`/`finish` API: ipmitool against BMCs (outputs of
//! `docs/reference/fence-lab.md` §1), net-snmp against PDUs, and fence agents (FenceAgentAPI, §2).
#![cfg(test)]

use std::path::PathBuf;
use std::time::Duration;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::hardware::*;
use super::tools_fence;
use crate::command::{Command, CommandResult, Exit, SecretInto, SecretUse};
use crate::config::PduProfile;
use crate::time::Time;

const BMC1: &str = "10.0.0.11:623";
const PDU: &str = "10.0.0.20:161";

/// Nodes n1 (BMC1) and n2 (outlets 3 and 4 of an APC rPDU, redundant PSUs), plug `vm-n1` for n1.
fn lab() -> Hardware {
    let mut hw = Hardware::new();
    hw.add_node("n1").unwrap();
    hw.add_node("n2").unwrap();
    hw.add_bmc(BMC1, "n1").unwrap();
    hw.add_pdu(PDU, PduProfile::ApcRpdu).unwrap();
    hw.add_outlet(PDU, 3, "n2").unwrap();
    hw.add_outlet(PDU, 4, "n2").unwrap();
    hw.add_plug("vm-n1", "n1").unwrap();
    hw
}

fn ipmi(action: &str) -> Command {
    let argv = [
        "ipmitool",
        "-I",
        "lanplus",
        "-H",
        "10.0.0.11",
        "-p",
        "623",
        "-U",
        "admin",
        "-E",
        "-L",
        "ADMINISTRATOR",
        "-C",
        "3",
        "-N",
        "1",
        "-R",
        "2",
        "chassis",
        "power",
        action,
    ];
    Command::new(argv, Duration::from_secs(10)).with_secret(SecretUse {
        file: PathBuf::from("/etc/failoverd/bmc.pw"),
        into: SecretInto::Env("IPMI_PASSWORD".into()),
    })
}

fn snmp(prog: &str, args: &[&str]) -> Command {
    let mut argv = vec![prog, "-v1", "-m", "", "-Oqv", "-t", "2", "-r", "1", "udp:10.0.0.20:161"];
    argv.extend_from_slice(args);
    Command::new(argv, Duration::from_secs(10))
}

fn agent(program: &str, stdin: &str) -> Command {
    Command::new([program], Duration::from_secs(60)).with_stdin(stdin)
}

fn run(hw: &mut Hardware, rng: &mut ChaCha8Rng, cmd: &Command) -> (CommandResult, Vec<PowerEffect>) {
    let p = hw.begin("n9", cmd, Time::from_secs(100), rng);
    let at = p.finish_at;
    hw.finish(p.op, at)
}

fn seeded() -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(5)
}

fn off(node: &str) -> PowerEffect {
    PowerEffect { node: node.into(), powered: false }
}

fn on(node: &str) -> PowerEffect {
    PowerEffect { node: node.into(), powered: true }
}

#[test]
fn ipmitool_status_off_on_with_the_real_outputs() {
    let (mut hw, mut rng) = (lab(), seeded());
    let (r, fx) = run(&mut hw, &mut rng, &ipmi("status"));
    assert_eq!((r.exit, r.stdout.as_str(), fx.len()), (Exit::Code(0), "Chassis Power is on\n", 0));
    assert!(r.duration >= Duration::from_millis(35) && r.duration <= Duration::from_millis(50));
    let (r, fx) = run(&mut hw, &mut rng, &ipmi("off"));
    assert_eq!((r.stdout.as_str(), fx), ("Chassis Power Control: Down/Off\n", vec![off("n1")]));
    assert!(!hw.node_powered("n1"));
    assert_eq!(run(&mut hw, &mut rng, &ipmi("status")).0.stdout, "Chassis Power is off\n");
    let (r, fx) = run(&mut hw, &mut rng, &ipmi("on"));
    assert_eq!((r.stdout.as_str(), fx), ("Chassis Power Control: Up/On\n", vec![on("n1")]));
    let (r, fx) = run(&mut hw, &mut rng, &ipmi("cycle"));
    assert_eq!((r.stdout.as_str(), fx), ("Chassis Power Control: Cycle\n", vec![off("n1"), on("n1")]));
}

#[test]
fn ipmitool_unreachable_partitioned_and_wrong_password() {
    let session = "Error: Unable to establish IPMI v2 / RMCP+ session\n";
    let (mut hw, mut rng) = (lab(), seeded());
    hw.faults_mut(BMC1).unwrap().unreachable = true;
    let (r, fx) = run(&mut hw, &mut rng, &ipmi("off"));
    assert_eq!((r.exit, r.stderr.as_str(), fx.len()), (Exit::Code(1), session, 0));
    assert!(r.duration >= Duration::from_secs(3) && r.duration < Duration::from_millis(3100), "N=1 × (R=2 + 1)");
    assert!(hw.node_powered("n1"));
    hw.faults_mut(BMC1).unwrap().unreachable = false;
    hw.set_reachable("n9", BMC1, false);
    assert_eq!(run(&mut hw, &mut rng, &ipmi("status")).0.stderr, session);
    hw.set_reachable("n9", BMC1, true);
    hw.faults_mut(BMC1).unwrap().wrong_password = true;
    let (r, _) = run(&mut hw, &mut rng, &ipmi("status"));
    assert_eq!(
        (r.exit, r.stderr.as_str()),
        (Exit::Code(1), "RAKP 2 HMAC is invalid\nError: Unable to establish IPMI v2 / RMCP+ session\n")
    );
    assert!(r.duration < Duration::from_millis(100));
    hw.faults_mut(BMC1).unwrap().wrong_password = false;
    let mut no_password = ipmi("status");
    no_password.secrets.clear();
    let (r, _) = run(&mut hw, &mut rng, &no_password);
    assert!(r.stderr.starts_with("Unable to read password from environment\n"));
    let mut short = ipmi("off");
    short.timeout = Duration::from_secs(1);
    hw.faults_mut(BMC1).unwrap().unreachable = true;
    let (r, _) = run(&mut hw, &mut rng, &short);
    assert_eq!((r.exit, r.duration), (Exit::TimedOut, Duration::from_secs(1)));
}

#[test]
fn slow_and_lying_bmcs() {
    let (mut hw, mut rng) = (lab(), seeded());
    hw.faults_mut(BMC1).unwrap().slow = Some(Duration::from_millis(800));
    let (r, _) = run(&mut hw, &mut rng, &ipmi("status"));
    assert_eq!(r.exit, Exit::Code(0));
    assert!(r.duration >= Duration::from_millis(835));
    hw.faults_mut(BMC1).unwrap().slow = Some(Duration::from_secs(5));
    assert_eq!(run(&mut hw, &mut rng, &ipmi("status")).0.exit, Exit::Code(1), "slower than ipmitool's 3 s: gives up");
    let faults = hw.faults_mut(BMC1).unwrap();
    faults.slow = None;
    faults.lying = true;
    let (r, fx) = run(&mut hw, &mut rng, &ipmi("off"));
    assert_eq!((r.exit, fx.len()), (Exit::Code(0), 0));
    assert_eq!(run(&mut hw, &mut rng, &ipmi("status")).0.stdout, "Chassis Power is off\n");
    assert!(hw.node_powered("n1"), "a lying BMC reports off but the node runs on");
}

#[test]
fn pdu_dual_outlets_must_both_go_off() {
    let (mut hw, mut rng) = (lab(), seeded());
    let control = |n: u32| format!(".1.3.6.1.4.1.318.1.1.12.3.3.1.1.4.{n}");
    let status = |n: u32| format!(".1.3.6.1.4.1.318.1.1.12.3.5.1.1.4.{n}");
    let (r, fx) = run(&mut hw, &mut rng, &snmp("snmpset", &[&control(3), "i", "2"]));
    assert_eq!((r.exit, r.stdout.as_str(), fx.len()), (Exit::Code(0), "2\n", 0));
    assert!(r.duration >= Duration::from_millis(5) && r.duration <= Duration::from_millis(10));
    assert!(hw.node_powered("n2"), "the second PSU keeps it running");
    let (r, _) = run(&mut hw, &mut rng, &snmp("snmpget", &[&status(3), &status(4)]));
    assert_eq!(r.stdout, "2\n1\n");
    let (r, fx) = run(&mut hw, &mut rng, &snmp("snmpset", &[&control(4), "i", "2"]));
    assert_eq!((r.stdout.as_str(), fx), ("2\n", vec![off("n2")]));
    let (_, fx) = run(&mut hw, &mut rng, &snmp("snmpset", &[&control(3), "i", "1", &control(4), "i", "1"]));
    assert_eq!(fx, vec![on("n2")]);
    // A node without redundant supplies dies with its first outlet; a BMC dies with all of them.
    hw.nodes.get_mut("n2").unwrap().redundant_psu = false;
    assert_eq!(hw.set_outlet(PDU, 3, false), vec![off("n2")]);
    hw.add_bmc("10.0.0.12:623", "n2").unwrap();
    hw.set_outlet(PDU, 4, false);
    assert!(!hw.answers("n9", "10.0.0.12:623"));
}

#[test]
fn snmp_errors_and_other_profiles() {
    let (mut hw, mut rng) = (lab(), seeded());
    let (r, _) = run(&mut hw, &mut rng, &snmp("snmpget", &[".1.3.6.1.4.1.318.1.1.12.3.5.1.1.4.9"]));
    assert_eq!(r.exit, Exit::Code(2));
    assert_eq!(
        r.stderr,
        "Error in packet.\nReason: (noSuchName) There is no such variable name in this MIB.\nFailed object: iso.3.6.1.4.1.318.1.1.12.3.5.1.1.4.9\n"
    );
    let (r, _) = run(&mut hw, &mut rng, &snmp("snmpset", &[".1.3.6.1.4.1.318.1.1.12.3.5.1.1.4.3", "i", "2"]));
    assert_eq!(r.exit, Exit::Code(2), "status OIDs are read-only");
    let (r, _) = run(&mut hw, &mut rng, &snmp("snmpset", &[".1.3.6.1.4.1.318.1.1.12.3.3.1.1.4.3", "i", "7"]));
    assert!(r.stderr.contains("(badValue)"));
    hw.faults_mut(PDU).unwrap().unreachable = true;
    let (r, _) = run(&mut hw, &mut rng, &snmp("snmpget", &[".1.3.6.1.4.1.318.1.1.12.3.5.1.1.4.3"]));
    assert_eq!((r.exit, r.stderr.as_str()), (Exit::Code(1), "Timeout: No Response from udp:10.0.0.20:161.\n"));
    assert!(r.duration >= Duration::from_secs(4), "t=2 s × (r=1 + 1)");
    hw.add_pdu("10.0.0.21:161", PduProfile::Tripplite).unwrap();
    hw.add_node("n3").unwrap();
    hw.add_outlet("10.0.0.21:161", 1, "n3").unwrap();
    let trip = |args: &[&str]| {
        let mut argv = vec!["snmpset", "-v1", "-m", "", "-Oqv", "-t", "2", "-r", "1", "udp:10.0.0.21:161"];
        argv.extend_from_slice(args);
        Command::new(argv, Duration::from_secs(10))
    };
    let (r, fx) = run(&mut hw, &mut rng, &trip(&[".1.3.6.1.4.1.850.10.2.3.5.1.4.1.1", "i", "1"]));
    assert_eq!((r.stdout.as_str(), fx), ("1\n", vec![off("n3")]), "Tripplite: 1 = off");
}

#[test]
fn agent_options_come_from_stdin_like_fencing_py() {
    let cmd = agent(
        "fence_x",
        "# a comment\naction=on\nipaddr=10.0.0.11\nlogin=admin\n\nport=\"3\"\naction=status\nipport = 624\n",
    )
    .with_secret(SecretUse { file: PathBuf::from("/p"), into: SecretInto::StdinLine("password".into()) });
    let opts = tools_fence::parse_options(&cmd);
    let get = |k: &str| opts.get(k).map(String::as_str);
    assert_eq!(
        (get("action"), get("ip"), get("username"), get("plug"), get("ipport")),
        (Some("status"), Some("10.0.0.11"), Some("admin"), Some("3"), Some("624"))
    );
    assert!(opts.contains_key("password"));
}

#[test]
fn agent_by_plug_status_off_on_reboot() {
    let (mut hw, mut rng) = (lab(), seeded());
    let sim = |action: &str| agent("fence_failoverd_sim", &format!("action={action}\nplug=vm-n1\n"));
    let (r, _) = run(&mut hw, &mut rng, &sim("status"));
    assert_eq!((r.exit, r.stdout.as_str()), (Exit::Code(0), "Status: ON\n"));
    let (r, fx) = run(&mut hw, &mut rng, &sim("off"));
    assert_eq!((r.exit, r.stdout.as_str(), fx), (Exit::Code(0), "Success: Powered OFF\n", vec![off("n1")]));
    let (r, _) = run(&mut hw, &mut rng, &sim("status"));
    assert_eq!((r.exit, r.stdout.as_str()), (Exit::Code(2), "Status: OFF\n"));
    assert_eq!(run(&mut hw, &mut rng, &sim("off")).0.stdout, "Success: Already OFF\n");
    let (r, fx) = run(&mut hw, &mut rng, &sim("reboot"));
    assert_eq!((r.stdout.as_str(), fx), ("Success: Rebooted\n", vec![on("n1")]), "already off: only the on part acts");
    let (r, fx) = run(&mut hw, &mut rng, &sim("reboot"));
    assert_eq!((r.exit, fx), (Exit::Code(0), vec![off("n1"), on("n1")]));
    let (r, _) = run(&mut hw, &mut rng, &agent("fence_failoverd_sim", "action=off\nplug=nope\n"));
    assert_eq!(
        (r.exit, r.stderr.as_str()),
        (Exit::Code(1), "ERROR: Failed: Unable to obtain correct plug status or plug is not available\n")
    );
    let (r, _) = run(&mut hw, &mut rng, &agent("fence_failoverd_sim", "action=monitor\nplug=vm-n1\n"));
    assert_eq!((r.exit, r.stdout.as_str()), (Exit::Code(0), ""));
    let (r, _) = run(&mut hw, &mut rng, &agent("fence_failoverd_sim", "action=metadata\n"));
    assert!(
        r.success() && r.stdout.contains("<parameter name=\"plug\"") && r.stdout.contains("<action name=\"off\" />")
    );
    let (r, _) = run(&mut hw, &mut rng, &agent("fence_failoverd_sim", "action=dance\nplug=vm-n1\n"));
    assert_eq!((r.exit, r.stderr.as_str()), (Exit::Code(1), "ERROR: Failed: Unrecognised action 'dance'\n"));
}

#[test]
fn fence_ipmilan_through_a_bmc_and_fence_apc_snmp_through_a_pdu() {
    let (mut hw, mut rng) = (lab(), seeded());
    let ipmilan = |extra: &str| {
        agent("fence_ipmilan", &format!("action=off\nip=10.0.0.11\nusername=admin\nlanplus=1\ncipher=3\n{extra}"))
    };
    let (r, fx) = run(&mut hw, &mut rng, &ipmilan(""));
    assert_eq!((r.stdout.as_str(), fx), ("Success: Powered OFF\n", vec![off("n1")]));
    assert!(r.duration >= Duration::from_secs(2), "power_wait defaults to 2 s");
    hw.set_chassis("n1", true);
    let (r, _) = run(&mut hw, &mut rng, &ipmilan("power_wait=0\n"));
    assert!(r.success() && r.duration < Duration::from_millis(400));
    hw.faults_mut(BMC1).unwrap().unreachable = true;
    let (r, _) = run(&mut hw, &mut rng, &ipmilan("power_timeout=4\n"));
    assert_eq!((r.exit, r.stderr.as_str()), (Exit::Code(1), "ERROR: Connection timed out\n"));
    assert!(r.duration >= Duration::from_secs(4) && r.duration < Duration::from_secs(5));
    hw.faults_mut(BMC1).unwrap().unreachable = false;
    hw.faults_mut(BMC1).unwrap().wrong_password = true;
    let (r, _) = run(&mut hw, &mut rng, &ipmilan(""));
    assert_eq!(r.stderr, "ERROR: Failed: Unable to obtain correct plug status or plug is not available\n");
    let apc =
        |plug: u32| agent("fence_apc_snmp", &format!("action=off\nip=10.0.0.20\ncommunity=private\nplug={plug}\n"));
    let (r, fx) = run(&mut hw, &mut rng, &apc(3));
    assert_eq!((r.stdout.as_str(), fx.len()), ("Success: Powered OFF\n", 0));
    let (_, fx) = run(&mut hw, &mut rng, &apc(4));
    assert_eq!(fx, vec![off("n2")]);
    let (r, _) = run(&mut hw, &mut rng, &agent("fence_apc_snmp", "action=list\nip=10.0.0.20\n"));
    assert_eq!(r.stdout, "3,n2\n4,n2\n");
}

#[test]
fn the_same_seed_gives_the_same_durations_and_the_state_round_trips_as_json() {
    let trace = |seed: u64| {
        let mut hw = lab();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let cmds = [ipmi("status"), ipmi("off"), agent("fence_failoverd_sim", "action=reboot\nplug=vm-n1\n")];
        let durations: Vec<Duration> = cmds.iter().map(|c| run(&mut hw, &mut rng, c).0.duration).collect();
        (durations, hw)
    };
    let (a, hw) = trace(1);
    assert_eq!(a, trace(1).0);
    assert_ne!(a, trace(2).0);
    let back: Hardware = serde_json::from_str(&serde_json::to_string(&hw).unwrap()).unwrap();
    assert_eq!(back, hw);
    assert!(Hardware::handles(&ipmi("status")) && Hardware::handles(&agent("/usr/sbin/fence_ipmilan", "")));
    assert!(!Hardware::handles(&Command::new(["zpool", "list"], Duration::from_secs(1))));
}
