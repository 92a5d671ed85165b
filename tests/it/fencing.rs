//! Fencing against real implementations of each device's protocol, on loopback: OpenIPMI's `ipmi_sim`
//! driven by `ipmitool` and by Debian's `fence_ipmilan`; net-snmp's `snmpd` (APC rPDU, APC MasterSwitch and
//! Tripplite outlet tables) driven by `snmpset`/`snmpget` and by `fence_apc_snmp`; and failoverd's own
//! `fence_failoverd_lab` agent. The simulators live in `tests/support/fence/`.
//!
//! The devices are driven through failoverd's own code: [`run_device_op`] (the engine's `DeviceOp` state
//! machine with its commands run by `runtime::exec`), the engine's `FenceJob` for levels, and a real
//! `failoverd run` daemon with `failoverd fence` for levels, operator fencing and retries with backoff.
//! Each test starts its own simulators and daemons (own temporary directories, loopback addresses and
//! ports) and stops them when it ends, passed or not. A missing tool skips the test, or fails it under
//! `CI=true`.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use failoverd::config::{Config, FenceDeviceConfig, FenceDeviceKind, FencingMode, NodeConfig, PduProfile};
use failoverd::engine::JobProgress;
use failoverd::fence::{DeviceOutcome, FenceAction, FenceError, PowerState};
use failoverd::runtime::fence_probe::{check_agent_metadata, run_device_op, OptionsCheck};
use serde_json::{json, Value};

use crate::support::{free_udp_port, wait_until, Daemon, BIN};
use crate::support::fence::{self as lab, block_on, tools_present, Bmc, LabHosts, OutletFault, Pdu, Victim};

const IPMI_TOOLS: &[&str] = &["ipmi_sim", "ipmitool"];
const SNMP_TOOLS: &[&str] = &["snmpd", "snmpset", "snmpget", lab::PYTHON];

/// How long a SIGKILLed victim may take to be reaped (the device kills it before answering).
const KILL_SEEN: Duration = Duration::from_secs(5);

fn victim_node() -> NodeConfig {
    NodeConfig {
        name: "beta".into(),
        addresses: vec![],
        hostid: 0x1a2b_3c02,
        hostname: None,
        fence_priority: 5,
        fence_levels: vec![],
        fencing: FencingMode::Devices,
    }
}

fn op(device: &FenceDeviceConfig, action: FenceAction) -> DeviceOutcome {
    block_on(run_device_op(device, &victim_node(), action))
}

fn failed(outcome: DeviceOutcome) -> FenceError {
    match outcome {
        DeviceOutcome::Failed(e) => e,
        other => panic!("expected a failure, got {other:?}"),
    }
}

// ----- ipmi ------------------------------------------------------------------------------------------------

#[test]
fn ipmi_status_on_then_off_kills_the_node_then_on() {
    if !tools_present("ipmi_status_on_then_off_kills_the_node_then_on", IPMI_TOOLS) {
        return;
    }
    let bmc = Bmc::start("s3cret");
    let mut node = Victim::spawn();
    bmc.attach(&node);
    let dev = bmc.device("beta-ipmi", "s3cret");

    assert_eq!(op(&dev, FenceAction::Status), DeviceOutcome::Confirmed(PowerState::On));
    assert!(node.alive(), "a status read must not touch the power");

    assert_eq!(op(&dev, FenceAction::Off), DeviceOutcome::Confirmed(PowerState::Off), "calls: {}", bmc.calls());
    assert!(node.killed_within(KILL_SEEN), "the victim survived the power-off; calls:\n{}", bmc.calls());
    assert_eq!(bmc.power(), "off");
    let calls = bmc.calls();
    let off = calls.find("set power 0").expect("the BMC was told to power off");
    assert!(calls[off..].contains("get power"), "the off was verified by a status read after it:\n{calls}");
    assert_eq!(op(&dev, FenceAction::Status), DeviceOutcome::Confirmed(PowerState::Off));

    assert_eq!(op(&dev, FenceAction::On), DeviceOutcome::Confirmed(PowerState::On));
    assert_eq!(bmc.power(), "on");
    assert_eq!(op(&dev, FenceAction::Status), DeviceOutcome::Confirmed(PowerState::On));
}

#[test]
fn ipmi_wrong_password_fails_clearly_and_touches_nothing() {
    if !tools_present("ipmi_wrong_password_fails_clearly_and_touches_nothing", IPMI_TOOLS) {
        return;
    }
    let bmc = Bmc::start("s3cret");
    let mut node = Victim::spawn();
    bmc.attach(&node);
    let dev = bmc.device("beta-ipmi", "not-the-password");
    for action in [FenceAction::Off, FenceAction::Status] {
        match failed(op(&dev, action)) {
            FenceError::AuthFailed { device, detail } => {
                assert_eq!(device, "beta-ipmi");
                let target = format!("{}:{}", bmc.addr, bmc.port);
                assert!(detail.contains(&target) && detail.contains("refused"), "{detail}");
                assert!(detail.contains("wrong username or password"), "{detail}");
            }
            other => panic!("{action:?} with a wrong password gave {other:?}"),
        }
    }
    assert!(node.alive(), "a refused fence killed the node");
    assert_eq!(bmc.power(), "on");
    assert!(!bmc.calls().contains("set power"), "the BMC switched power for a refused session:\n{}", bmc.calls());
}

#[test]
fn ipmi_bmc_not_listening_times_out_within_the_device_timeout() {
    if !tools_present("ipmi_bmc_not_listening_times_out_within_the_device_timeout", IPMI_TOOLS) {
        return;
    }
    // A BMC that was started and then died: its address and port answer nothing.
    let mut bmc = Bmc::start("s3cret");
    let mut dev = bmc.device("beta-ipmi", "s3cret");
    bmc.stop();
    let timeout = Duration::from_millis(1500);
    dev.timeout = timeout;
    let t = Instant::now();
    let e = failed(op(&dev, FenceAction::Off));
    let took = t.elapsed();
    match &e {
        FenceError::TimedOut { device, command } => {
            assert_eq!(device, "beta-ipmi");
            assert!(command.starts_with("ipmitool ") && command.ends_with("chassis power off"), "{command}");
            assert!(!command.contains("s3cret"));
        }
        other => panic!("a silent BMC gave {other:?}"),
    }
    // ipmitool alone would retry for 6 s (-N 1 -R 2); the device timeout cuts it. The slack covers process
    // start and a loaded machine, not another retry round.
    assert!(took >= timeout && took < timeout + Duration::from_secs(2), "took {took:?} for a {timeout:?} timeout");

    // Reported as a fence failure: the level fails with that error.
    let cfg = config_with_levels(&[&[&dev]]);
    let (progress, failures) = block_on(lab::run_fence_job(&cfg, "beta", FenceAction::Off));
    match progress {
        JobProgress::AllFailed { errors } => {
            assert_eq!(errors.len(), 1);
            assert!(errors[0].starts_with("level 1: device beta-ipmi: command timed out: ipmitool"), "{errors:?}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(failures.len(), 1);
}

// ----- pdu-snmp --------------------------------------------------------------------------------------------

#[test]
fn pdu_switches_two_outlets_off_and_verifies_both() {
    if !tools_present("pdu_switches_two_outlets_off_and_verifies_both", SNMP_TOOLS) {
        return;
    }
    let pdu = Pdu::start(PduProfile::ApcRpdu, 8);
    let (mut psu_a, mut psu_b, mut neighbour) = (Victim::spawn(), Victim::spawn(), Victim::spawn());
    pdu.attach(3, &psu_a);
    pdu.attach(4, &psu_b);
    pdu.attach(5, &neighbour);
    let dev = pdu.device("beta-pdu", &[3, 4], "private");

    assert_eq!(op(&dev, FenceAction::Status), DeviceOutcome::Confirmed(PowerState::On));
    // One supply off is not the node off.
    pdu.set_outlet(4, false);
    assert_eq!(op(&dev, FenceAction::Status), DeviceOutcome::Confirmed(PowerState::On));
    pdu.set_outlet(4, true);

    assert_eq!(op(&dev, FenceAction::Off), DeviceOutcome::Confirmed(PowerState::Off), "calls:\n{}", pdu.calls());
    assert!(psu_a.killed_within(KILL_SEEN) && psu_b.killed_within(KILL_SEEN), "calls:\n{}", pdu.calls());
    assert_eq!((pdu.outlet(3).as_str(), pdu.outlet(4).as_str()), ("off", "off"));
    assert!(neighbour.alive() && pdu.outlet(5) == "on", "another node's outlet was switched");
    assert_eq!(op(&dev, FenceAction::Status), DeviceOutcome::Confirmed(PowerState::Off));

    assert_eq!(op(&dev, FenceAction::On), DeviceOutcome::Confirmed(PowerState::On));
    assert_eq!((pdu.outlet(3).as_str(), pdu.outlet(4).as_str()), ("on", "on"));
}

#[test]
fn pdu_second_and_third_profiles_masterswitch_and_tripplite() {
    if !tools_present("pdu_second_and_third_profiles_masterswitch_and_tripplite", SNMP_TOOLS) {
        return;
    }
    for profile in [PduProfile::ApcMasterSwitch, PduProfile::Tripplite] {
        let pdu = Pdu::start(profile, 4);
        let mut node = Victim::spawn();
        pdu.attach(2, &node);
        let dev = pdu.device("beta-pdu", &[2], "private");
        assert_eq!(op(&dev, FenceAction::Status), DeviceOutcome::Confirmed(PowerState::On), "{profile:?}");
        assert_eq!(op(&dev, FenceAction::Off), DeviceOutcome::Confirmed(PowerState::Off), "{profile:?}: {}", pdu.calls());
        assert!(node.killed_within(KILL_SEEN), "{profile:?}");
        assert_eq!(pdu.outlet(2), "off", "{profile:?}");
        assert_eq!(pdu.outlet(1), "on", "{profile:?}");
        assert_eq!(op(&dev, FenceAction::On), DeviceOutcome::Confirmed(PowerState::On), "{profile:?}");
        assert_eq!(pdu.outlet(2), "on", "{profile:?}");
    }
}

#[test]
fn pdu_wrong_community_fails_clearly() {
    if !tools_present("pdu_wrong_community_fails_clearly", SNMP_TOOLS) {
        return;
    }
    let pdu = Pdu::start(PduProfile::ApcRpdu, 4);
    let mut node = Victim::spawn();
    pdu.attach(1, &node);

    // An unknown community gets no answer at all (snmpset -t 2 -r 1 gives up after 4 s).
    match failed(op(&pdu.device("beta-pdu", &[1], "wrong"), FenceAction::Off)) {
        FenceError::Unreachable { device, detail } => {
            assert_eq!(device, "beta-pdu");
            assert!(detail.contains("wrong community") && detail.contains(&pdu.addr.to_string()), "{detail}");
        }
        other => panic!("unknown community gave {other:?}"),
    }
    // The read-only community: SNMPv1 answers noSuchName.
    match failed(op(&pdu.device("beta-pdu", &[1], "public"), FenceAction::Off)) {
        FenceError::CommandFailed { detail, .. } => {
            assert!(detail.contains("outlet 1") && detail.contains("community may only read"), "{detail}");
        }
        other => panic!("read-only community gave {other:?}"),
    }
    assert!(node.alive());
    assert_eq!(pdu.outlet(1), "on");
}

#[test]
fn pdu_one_failing_outlet_fails_the_level() {
    if !tools_present("pdu_one_failing_outlet_fails_the_level", SNMP_TOOLS) {
        return;
    }
    let pdu = Pdu::start(PduProfile::ApcRpdu, 8);
    let mut dev = pdu.device("beta-pdu", &[3, 4], "private");
    dev.power_timeout = Duration::from_secs(1);
    let cfg = config_with_levels(&[&[&dev]]);

    // Outlet 4 refuses the SET: the PDU names it, and the level fails at once.
    pdu.set_fault(4, Some(OutletFault::Refuse));
    let (progress, _) = block_on(lab::run_fence_job(&cfg, "beta", FenceAction::Off));
    match progress {
        JobProgress::AllFailed { errors } => {
            assert_eq!(errors.len(), 1, "{errors:?}");
            assert!(errors[0].starts_with("level 1: device beta-pdu:") && errors[0].contains("outlet 4"), "{errors:?}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(pdu.outlet(4), "on");

    // Outlet 4 takes the SET but its relay sticks: the status reads show it, the level fails naming it.
    pdu.set_outlet(3, true);
    pdu.set_fault(4, Some(OutletFault::Stuck));
    let (progress, _) = block_on(lab::run_fence_job(&cfg, "beta", FenceAction::Off));
    match progress {
        JobProgress::AllFailed { errors } => {
            assert!(errors[0].contains("outlet(s) 4 still read on"), "{errors:?}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!((pdu.outlet(3).as_str(), pdu.outlet(4).as_str()), ("off", "on"));
    assert!(pdu.calls().contains("outlet 4: SET 2 -> accepted, relay stuck"), "{}", pdu.calls());
}

// ----- agents ----------------------------------------------------------------------------------------------

#[test]
fn agent_fence_ipmilan_through_stdin_against_ipmi_sim() {
    if !tools_present("agent_fence_ipmilan_through_stdin_against_ipmi_sim", &["ipmi_sim", "ipmitool", "fence_ipmilan"]) {
        return;
    }
    let bmc = Bmc::start("s3cret");
    let mut node = Victim::spawn();
    bmc.attach(&node);
    let dev = bmc.fence_ipmilan_device("beta-ipmilan");

    let FenceDeviceKind::Agent(agent) = &dev.kind else { unreachable!() };
    assert_eq!(block_on(check_agent_metadata(agent, dev.timeout)), OptionsCheck::Declared);

    assert_eq!(op(&dev, FenceAction::Status), DeviceOutcome::Confirmed(PowerState::On));
    assert_eq!(op(&dev, FenceAction::Off), DeviceOutcome::Confirmed(PowerState::Off), "calls:\n{}", bmc.calls());
    assert!(node.killed_within(KILL_SEEN));
    assert_eq!(bmc.power(), "off");
    assert_eq!(op(&dev, FenceAction::Status), DeviceOutcome::Confirmed(PowerState::Off));
    assert_eq!(op(&dev, FenceAction::On), DeviceOutcome::Confirmed(PowerState::On));
    assert_eq!(bmc.power(), "on");

    // A misspelt option is caught by the metadata check, before a fence would run without it.
    let mut bad = agent.clone();
    bad.options.insert("power_wiat".into(), "0".into());
    assert_eq!(block_on(check_agent_metadata(&bad, dev.timeout)), OptionsCheck::Undeclared(vec!["power_wiat".into()]));
}

#[test]
fn agent_fence_apc_snmp_against_snmpd() {
    if !tools_present("agent_fence_apc_snmp_against_snmpd", &["snmpd", "snmpset", "snmpget", lab::PYTHON, "fence_apc_snmp"]) {
        return;
    }
    let pdu = Pdu::start(PduProfile::ApcRpdu, 8);
    let mut node = Victim::spawn();
    pdu.attach(6, &node);
    let dev = pdu.fence_apc_snmp_device("beta-apc", 6);
    let FenceDeviceKind::Agent(agent) = &dev.kind else { unreachable!() };
    assert_eq!(block_on(check_agent_metadata(agent, dev.timeout)), OptionsCheck::Declared);

    assert_eq!(op(&dev, FenceAction::Status), DeviceOutcome::Confirmed(PowerState::On));
    assert_eq!(op(&dev, FenceAction::Off), DeviceOutcome::Confirmed(PowerState::Off), "calls:\n{}", pdu.calls());
    assert!(node.killed_within(KILL_SEEN));
    assert_eq!(pdu.outlet(6), "off");
    assert_eq!(pdu.outlet(5), "on");
    assert_eq!(op(&dev, FenceAction::Status), DeviceOutcome::Confirmed(PowerState::Off));
    assert_eq!(op(&dev, FenceAction::On), DeviceOutcome::Confirmed(PowerState::On));
    assert_eq!(pdu.outlet(6), "on");
}

#[test]
fn agent_fence_failoverd_lab_powers_a_test_host() {
    if !tools_present("agent_fence_failoverd_lab_powers_a_test_host", &[lab::PYTHON]) {
        return;
    }
    let hosts = LabHosts::new();
    let mut node = Victim::spawn();
    hosts.attach("beta", &node);
    let marker = hosts.dir.path().join("off-command-ran");
    let off_command = format!("echo \"$PLUG\" > {}", marker.display());
    let dev = hosts.device("beta-lab", "beta", &[("power_wait", "0"), ("off_command", &off_command)]);
    let FenceDeviceKind::Agent(agent) = &dev.kind else { unreachable!() };
    assert_eq!(block_on(check_agent_metadata(agent, dev.timeout)), OptionsCheck::Declared);

    assert_eq!(op(&dev, FenceAction::Status), DeviceOutcome::Confirmed(PowerState::On));
    assert_eq!(op(&dev, FenceAction::Off), DeviceOutcome::Confirmed(PowerState::Off));
    assert!(node.killed_within(KILL_SEEN));
    assert_eq!(hosts.power("beta"), "off");
    assert_eq!(std::fs::read_to_string(&marker).unwrap().trim(), "beta", "off_command ran with PLUG set");
    assert_eq!(op(&dev, FenceAction::Reboot), DeviceOutcome::Confirmed(PowerState::Off), "a reboot reports its off part");
    assert_eq!(hosts.power("beta"), "on");

    // A failing off_command fails the fence, with the agent's own message.
    let bad = hosts.device("beta-lab", "beta", &[("off_command", "echo relay jammed >&2; exit 3")]);
    match failed(op(&bad, FenceAction::Off)) {
        FenceError::CommandFailed { detail, .. } => assert!(detail.contains("off_command exited 3: relay jammed"), "{detail}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(hosts.power("beta"), "on");
}

// ----- helpers for configs and daemons ---------------------------------------------------------------------

/// A config (alpha fenced manually, beta with `levels`) built from the devices' TOML-equivalent structs.
fn config_with_levels(levels: &[&[&FenceDeviceConfig]]) -> Config {
    let mut cfg = Config::from_toml_str(
        "[cluster]\nname = \"fencetest\"\nkey_file = \"/nonexistent/cluster.key\"\nlinks = [\"ring0\"]\n\
         [[node]]\nname = \"alpha\"\naddresses = [\"127.0.0.1:1\"]\nhostid = \"1a2b3c01\"\nfence_priority = 10\nfencing = \"manual\"\n\
         [[node]]\nname = \"beta\"\naddresses = [\"127.0.0.1:2\"]\nhostid = \"1a2b3c02\"\nfencing = \"manual\"\n",
    )
    .expect("the base test config is valid");
    let beta = cfg.nodes.iter_mut().find(|n| n.name == "beta").unwrap();
    beta.fencing = FencingMode::Devices;
    beta.fence_levels = levels.iter().map(|l| l.iter().map(|d| d.name.clone()).collect()).collect();
    for level in levels {
        cfg.fence_devices.extend(level.iter().map(|d| (*d).clone()));
    }
    cfg
}

const KEY: &str = "4f1c2a9be07d3385a6f0c1d2e3f405162738495a6b7c8d9e0f1a2b3c4d5e6f70";

/// A two-node cluster (alpha, beta) of which the test runs only alpha; beta is fenced through `levels`.
struct Cluster {
    dir: tempfile::TempDir,
    config: PathBuf,
    socket: PathBuf,
}

impl Cluster {
    /// `devices`: `[[fence_device]]` TOML; `levels`: beta's fence_levels as TOML (`[["a"], ["b"]]`).
    fn new(devices: &[String], levels: &str, wait_for_all: bool) -> Cluster {
        let dir = tempfile::Builder::new().prefix("failoverd-fencing-").tempdir().unwrap();
        let key = dir.path().join("cluster.key");
        std::fs::write(&key, format!("{KEY}\n")).unwrap();
        let socket = dir.path().join("control.sock");
        let port = || free_udp_port(Ipv4Addr::LOCALHOST);
        let mut toml = format!(
            "[cluster]\nname = \"fencetest\"\nkey_file = \"{}\"\nlinks = [\"ring0\", \"ring1\"]\n\
             heartbeat_interval = \"100ms\"\ndead_after = \"500ms\"\nstall_threshold = \"400ms\"\n\
             wait_for_all = {wait_for_all}\nfence_delay = \"1s\"\nfence_retry_initial = \"300ms\"\n\
             fence_retry_max = \"1200ms\"\nstate_dir = \"{}\"\ncontrol_socket = \"{}\"\n\n\
             [[node]]\nname = \"alpha\"\naddresses = [\"127.0.0.1:{}\", \"127.0.0.1:{}\"]\nhostid = \"1a2b3c01\"\n\
             fence_priority = 10\nfencing = \"manual\"\n\n\
             [[node]]\nname = \"beta\"\naddresses = [\"127.0.0.1:{}\", \"127.0.0.1:{}\"]\nhostid = \"1a2b3c02\"\n\
             fence_priority = 5\nfence_levels = {levels}\n\n",
            key.display(),
            dir.path().join("state").display(),
            socket.display(),
            port(),
            port(),
            port(),
            port(),
        );
        for d in devices {
            toml.push_str(d);
            toml.push('\n');
        }
        let config = dir.path().join("cluster.toml");
        std::fs::write(&config, toml).unwrap();
        Cluster { dir, config, socket }
    }

    /// `failoverd run` as alpha, JSON logs in the cluster's folder; returns once its control socket answers.
    fn start_alpha(&self) -> Daemon {
        let log = self.dir.path().join("alpha.jsonl");
        let d = Daemon::run("alpha", &self.config, &self.socket, &log, &[("PATH", &lab::full_path())]);
        d.wait_for_socket();
        d
    }

    /// Run `failoverd ARGS...` and return (success, stdout, stderr).
    fn cli(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(BIN).args(args).env("PATH", lab::full_path()).stdin(Stdio::null()).output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    }

    fn status(&self) -> Value {
        let (ok, out, err) = self.cli(&["status", "--json", "--socket", self.socket.to_str().unwrap()]);
        assert!(ok, "status failed: {err}");
        serde_json::from_str(&out).unwrap()
    }
}

/// Seconds since midnight of a tracing-subscriber RFC 3339 timestamp (`2026-05-01T12:34:56.123456Z`).
fn seconds_of_day(ts: &str) -> f64 {
    let time = ts.split('T').nth(1).unwrap_or("0:0:0").trim_end_matches('Z');
    time.split(':').map(|p| p.parse::<f64>().unwrap_or(0.0)).fold(0.0, |acc, p| acc * 60.0 + p)
}

/// `[[fence_device]]` TOML of an ipmi device whose BMC does not exist (nothing listens), `timeout` 1 s.
fn dead_bmc_toml(dir: &Path, name: &str) -> String {
    let (addr, port) = lab::silent_endpoint();
    let pw = dir.join(format!("{name}.pw"));
    std::fs::write(&pw, "s3cret\n").unwrap();
    format!(
        "[[fence_device]]\nname = \"{name}\"\nkind = \"ipmi\"\nhost = \"{addr}\"\nport = {port}\nusername = \"admin\"\n\
         password_file = \"{}\"\ntimeout = \"1s\"\npower_timeout = \"2s\"\npoll_interval = \"100ms\"\n",
        pw.display()
    )
}

// ----- levels, through a real daemon -------------------------------------------------------------------------

#[test]
fn daemon_level_one_bmc_down_level_two_pdu_confirms_off() {
    if !tools_present("daemon_level_one_bmc_down_level_two_pdu_confirms_off", &["ipmitool", "snmpd", "snmpset", "snmpget", lab::PYTHON]) {
        return;
    }
    let pdu = Pdu::start(PduProfile::ApcRpdu, 4);
    let (mut psu_a, mut psu_b) = (Victim::spawn(), Victim::spawn());
    pdu.attach(1, &psu_a);
    pdu.attach(2, &psu_b);
    let scratch = tempfile::tempdir().unwrap();
    let devices = [dead_bmc_toml(scratch.path(), "beta-ipmi"), pdu.toml("beta-pdu", &[1, 2])];
    // wait_for_all: beta, never seen, is not fenced automatically; the operator fences it.
    let cluster = Cluster::new(&devices, "[[\"beta-ipmi\"], [\"beta-pdu\"]]", true);
    let alpha = cluster.start_alpha();

    let socket = cluster.socket.to_str().unwrap();
    let (ok, out, err) = cluster.cli(&["fence", "beta", "--action", "off", "--socket", socket]);
    assert!(ok, "failoverd fence failed: {err}\nlog:\n{}", alpha.log_text());
    assert_eq!(out.trim(), "beta confirmed off by level 2");
    assert!(psu_a.killed_within(KILL_SEEN) && psu_b.killed_within(KILL_SEEN), "calls:\n{}", pdu.calls());
    assert_eq!((pdu.outlet(1).as_str(), pdu.outlet(2).as_str()), ("off", "off"));

    let level_failed = alpha.event_details("fence_level_failed");
    assert_eq!(level_failed.len(), 1, "{level_failed:?}");
    assert_eq!(level_failed[0].1["level"], json!(1));
    assert!(level_failed[0].1["error"].as_str().unwrap().contains("beta-ipmi: command timed out: ipmitool"), "{level_failed:?}");
    let confirmed = alpha.event_details("fence_confirmed");
    assert_eq!(confirmed.len(), 1, "{confirmed:?}");
    assert_eq!(confirmed[0].1["level"], json!(2));
    assert_eq!(confirmed[0].1["devices"], json!(["beta-pdu"]));
    let status = cluster.status();
    let beta = status["peers"].as_array().unwrap().iter().find(|p| p["node"] == json!("beta")).unwrap().clone();
    assert_eq!(beta["fenced"], json!(true), "{status:#}");
}

#[test]
fn daemon_every_level_failing_means_no_confirmation_and_retries_with_backoff() {
    if !tools_present("daemon_every_level_failing_means_no_confirmation_and_retries_with_backoff", &["ipmitool", "snmpd", "snmpset", "snmpget", lab::PYTHON]) {
        return;
    }
    let pdu = Pdu::start(PduProfile::ApcRpdu, 4);
    // Outlet 2 (beta's second power supply) refuses to switch: beta keeps power whatever outlet 1 does.
    pdu.set_fault(2, Some(OutletFault::Refuse));
    let scratch = tempfile::tempdir().unwrap();
    let devices = [dead_bmc_toml(scratch.path(), "beta-ipmi"), pdu.toml("beta-pdu", &[1, 2])];
    // Without wait_for_all a node never seen is judged dead after dead_after and fenced automatically: the
    // engine retries that fence with backoff for as long as every level fails.
    let cluster = Cluster::new(&devices, "[[\"beta-ipmi\"], [\"beta-pdu\"]]", false);
    let alpha = cluster.start_alpha();

    wait_until("4 rounds of fencing failed", Duration::from_secs(60), || alpha.event_details("fence_failed").len() >= 4);
    let failed = alpha.event_details("fence_failed");
    let retries: Vec<u64> = failed.iter().map(|(_, e)| e["retry_in_ms"].as_u64().unwrap()).collect();
    assert_eq!(&retries[..4], &[300, 600, 1200, 1200], "backoff doubles from fence_retry_initial up to fence_retry_max");
    let attempts: Vec<u64> = failed.iter().map(|(_, e)| e["attempt"].as_u64().unwrap()).collect();
    assert_eq!(&attempts[..4], &[1, 2, 3, 4]);
    for (_, e) in &failed[..4] {
        let errors: Vec<&str> = e["errors"].as_array().unwrap().iter().map(|x| x.as_str().unwrap()).collect();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].starts_with("level 1: device beta-ipmi: command timed out"), "{errors:?}");
        assert!(errors[1].starts_with("level 2: device beta-pdu:") && errors[1].contains("outlet 2"), "{errors:?}");
    }
    // Each new round starts no sooner than the backoff announced by the failure before it.
    let started = alpha.event_details("fence_started");
    for (i, (at, e)) in failed[..3].iter().enumerate() {
        let next = started.iter().find(|(_, s)| s["attempt"].as_u64() == Some(i as u64 + 2)).expect("the next round started");
        let gap = seconds_of_day(&next.0) - seconds_of_day(at);
        let backoff = e["retry_in_ms"].as_u64().unwrap() as f64 / 1000.0;
        assert!(gap >= backoff - 0.005, "round {} started {gap:.3}s after the failure, before its {backoff}s backoff", i + 2);
    }

    assert!(alpha.event_details("fence_confirmed").is_empty(), "no level succeeded, yet a fence was confirmed");
    let status = cluster.status();
    let beta = status["peers"].as_array().unwrap().iter().find(|p| p["node"] == json!("beta")).unwrap().clone();
    assert_eq!(beta["fenced"], json!(false), "{status:#}");
    let job = status["fencing"].as_array().unwrap().iter().find(|f| f["victim"] == json!("beta")).cloned();
    assert!(job.is_some_and(|j| j["attempt"].as_u64().unwrap_or(0) >= 4), "{status:#}");
    assert_eq!(pdu.outlet(2), "on");
}

// ----- fence --action status -------------------------------------------------------------------------------

#[test]
fn fence_status_reads_every_device_of_every_level() {
    if !tools_present("fence_status_reads_every_device_of_every_level", &["ipmi_sim", "ipmitool", "snmpd", "snmpset", "snmpget", lab::PYTHON]) {
        return;
    }
    let mut bmc = Bmc::start("s3cret");
    let pdu = Pdu::start(PduProfile::ApcRpdu, 4);
    let hosts = LabHosts::new();
    let lab_device = format!(
        "[[fence_device]]\nname = \"beta-lab\"\nkind = \"agent\"\nprogram = \"{}\"\nplug = \"beta\"\n\
         options = {{ state_dir = \"{}\", power_wait = \"0\" }}\n",
        LabHosts::program().display(),
        hosts.dir.path().display()
    );
    let devices = [bmc.toml("beta-ipmi"), pdu.toml("beta-pdu", &[3, 4]), lab_device];
    let cluster = Cluster::new(&devices, "[[\"beta-ipmi\"], [\"beta-pdu\", \"beta-lab\"]]", true);
    let config = cluster.config.to_str().unwrap();
    let status = || cluster.cli(&["fence", "beta", "--action", "status", "--config", config]);

    // No daemon runs: status is read from the devices by the command itself.
    let (ok, out, err) = status();
    assert!(ok, "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].starts_with("level 1  beta-ipmi  ipmi  on  ("), "{out}");
    assert!(lines[1].starts_with("level 2  beta-pdu  pdu-snmp  on  ("), "{out}");
    assert!(lines[2].starts_with("level 2  beta-lab  agent  on  (") && lines[2].ends_with("options: all declared by the agent"), "{out}");

    bmc.set_power(false);
    pdu.set_outlet(3, false);
    pdu.set_outlet(4, false);
    let (ok, out, _) = status();
    assert!(ok);
    assert!(out.contains("beta-ipmi  ipmi  off") && out.contains("beta-pdu  pdu-snmp  off"), "{out}");
    assert!(!bmc.calls().contains("set power"), "status switched something:\n{}", bmc.calls());
    assert!(pdu.calls().is_empty(), "status sent a SET:\n{}", pdu.calls());

    // A dead BMC: its line says why, the others still answer, and the command fails.
    bmc.stop();
    let (ok, out, err) = status();
    assert!(!ok);
    assert!(out.lines().next().unwrap().starts_with("level 1  beta-ipmi  ipmi  error: device beta-ipmi: unreachable"), "{out}");
    assert!(out.contains("beta-pdu  pdu-snmp  off"), "{out}");
    assert!(err.contains("1 of 3 fence device(s) of beta did not answer cleanly"), "{err}");

    // Without --config there is nothing to read the devices from.
    let (ok, _, err) = cluster.cli(&["fence", "beta", "--action", "status", "--socket", "/nonexistent.sock"]);
    assert!(!ok && err.contains("pass --config FILE"), "{err}");
}
