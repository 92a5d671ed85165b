//! How long a confirmed fence takes, per device kind, against real device simulators on loopback.
//!
//!     cargo bench --bench fence
//!
//! A confirmed fence is what the engine waits for before a forced takeover: `off`, then a status read that
//! says off, driven by failoverd's own `DeviceOp` with real processes (`runtime::fence_probe::run_device_op`).
//! For each kind the bench starts its simulator (tests/support/fence/), runs one untimed warm-up fence, then
//! times 10 fences and prints the median, min and max. Before each fence (untimed) the node is powered on
//! again and a fresh process is attached to stand for it; after each, the bench checks that the process was
//! SIGKILLed by the device and that the device reads off. A kind whose tools are missing is skipped with the
//! reason.
//!
//! Kinds: `ipmi` (ipmitool → ipmi_sim), `pdu-snmp` (snmpset/snmpget → snmpd, two outlets), `agent`
//! fence_ipmilan (→ ipmi_sim, `power_wait=0`), `agent` fence_apc_snmp (→ snmpd) and `agent`
//! fence_failoverd_lab (state file + SIGKILL).
//!
//! Under `cargo test --all-targets` / `cargo nextest` (no `--bench` argument) it runs nothing: timings are
//! printed by this bench, never asserted in tests.

// The tests' harness (tests/support/): this bench uses only its fence simulators.
#[path = "../tests/support/mod.rs"]
#[allow(dead_code)]
mod support;

use std::time::{Duration, Instant};

use failoverd::config::{FenceDeviceConfig, FencingMode, NodeConfig, PduProfile};
use failoverd::fence::{DeviceOutcome, FenceAction, PowerState};
use failoverd::runtime::fence_probe::run_device_op;

use support::fence::{self as lab, Bmc, LabHosts, Pdu, Victim};

const RUNS: usize = 10;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        // cargo-nextest asks every test binary for its tests: this one has none.
        return;
    }
    if !args.iter().any(|a| a == "--bench") {
        println!("benches/fence.rs: a benchmark, not a test; run it with `cargo bench --bench fence`");
        return;
    }
    println!("confirmed fence (off + a status read that says off), {RUNS} runs per device kind after 1 warm-up");
    println!("{:<48} {:>10} {:>10} {:>10}", "device kind", "median", "min", "max");
    let mut failures = 0;
    for kind in KINDS {
        match (kind.run)() {
            Ok(Some(times)) => {
                let (median, min, max) = summary(&times);
                println!("{:<48} {:>10} {:>10} {:>10}", kind.name, ms(median), ms(min), ms(max));
            }
            Ok(None) => {}
            Err(e) => {
                failures += 1;
                println!("{:<48} FAILED: {e}", kind.name);
            }
        }
    }
    if failures > 0 {
        std::process::exit(1);
    }
}

struct Kind {
    name: &'static str,
    run: fn() -> Result<Option<Vec<Duration>>, String>,
}

const KINDS: &[Kind] = &[
    Kind { name: "ipmi (ipmitool -> ipmi_sim)", run: ipmi },
    Kind { name: "pdu-snmp (snmpset/snmpget -> snmpd, 2 outlets)", run: pdu },
    Kind { name: "agent fence_ipmilan (-> ipmi_sim)", run: fence_ipmilan },
    Kind { name: "agent fence_apc_snmp (-> snmpd)", run: fence_apc_snmp },
    Kind { name: "agent fence_failoverd_lab", run: fence_failoverd_lab },
];

/// Print why a kind is skipped when a tool is missing; true when everything is there.
fn have(kind: &str, tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools.iter().copied().filter(|t| lab::tool_path(t).is_none()).collect();
    if missing.is_empty() {
        return true;
    }
    println!("{kind:<42} skipped: {} not installed", missing.join(", "));
    false
}

fn victim_node() -> NodeConfig {
    NodeConfig {
        name: "beta".into(),
        addresses: vec![],
        hostid: 0x1a2b_3c02,
        hostname: None,
        fence_priority: 0,
        fence_levels: vec![],
        fencing: FencingMode::Devices,
    }
}

/// One warm-up and RUNS timed fences of `device`. `prepare` powers the node on and attaches fresh victims
/// (untimed); after each fence the victims must have been SIGKILLed and `check` checks the device's state.
fn time_fences(
    device: &FenceDeviceConfig,
    mut prepare: impl FnMut() -> Vec<Victim>,
    check: impl Fn() -> Result<(), String>,
) -> Result<Option<Vec<Duration>>, String> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    let node = victim_node();
    let mut times = Vec::with_capacity(RUNS);
    for run in 0..=RUNS {
        let mut victims = prepare();
        let t = Instant::now();
        let outcome = rt.block_on(run_device_op(device, &node, FenceAction::Off));
        let took = t.elapsed();
        if outcome != DeviceOutcome::Confirmed(PowerState::Off) {
            return Err(format!("run {run}: {outcome:?}"));
        }
        for v in &mut victims {
            if !v.killed_within(Duration::from_secs(5)) {
                return Err(format!("run {run}: confirmed off, but the node's process {} survived", v.pid()));
            }
        }
        check().map_err(|e| format!("run {run}: {e}"))?;
        if run > 0 {
            times.push(took);
        }
    }
    Ok(Some(times))
}

fn ipmi() -> Result<Option<Vec<Duration>>, String> {
    if !have("ipmi", &["ipmi_sim", "ipmitool"]) {
        return Ok(None);
    }
    let bmc = Bmc::start("s3cret");
    let device = bmc.device("bench-ipmi", "s3cret");
    time_fences(
        &device,
        || {
            bmc.set_power(true);
            let v = Victim::spawn();
            bmc.attach(&v);
            vec![v]
        },
        || if bmc.power() == "off" { Ok(()) } else { Err("the BMC does not read off".into()) },
    )
}

fn pdu() -> Result<Option<Vec<Duration>>, String> {
    if !have("pdu-snmp", &["snmpd", "snmpset", "snmpget", lab::PYTHON]) {
        return Ok(None);
    }
    let pdu = Pdu::start(PduProfile::ApcRpdu, 8);
    let device = pdu.device("bench-pdu", &[3, 4], "private");
    time_fences(
        &device,
        || {
            [3, 4]
                .into_iter()
                .map(|n| {
                    pdu.set_outlet(n, true);
                    let v = Victim::spawn();
                    pdu.attach(n, &v);
                    v
                })
                .collect()
        },
        || if pdu.outlet(3) == "off" && pdu.outlet(4) == "off" { Ok(()) } else { Err("an outlet does not read off".into()) },
    )
}

fn fence_ipmilan() -> Result<Option<Vec<Duration>>, String> {
    if !have("agent fence_ipmilan", &["ipmi_sim", "ipmitool", "fence_ipmilan"]) {
        return Ok(None);
    }
    let bmc = Bmc::start("s3cret");
    let device = bmc.fence_ipmilan_device("bench-ipmilan");
    time_fences(
        &device,
        || {
            bmc.set_power(true);
            let v = Victim::spawn();
            bmc.attach(&v);
            vec![v]
        },
        || if bmc.power() == "off" { Ok(()) } else { Err("the BMC does not read off".into()) },
    )
}

fn fence_apc_snmp() -> Result<Option<Vec<Duration>>, String> {
    if !have("agent fence_apc_snmp", &["snmpd", "snmpset", "snmpget", lab::PYTHON, "fence_apc_snmp"]) {
        return Ok(None);
    }
    let pdu = Pdu::start(PduProfile::ApcRpdu, 8);
    let device = pdu.fence_apc_snmp_device("bench-apc", 5);
    time_fences(
        &device,
        || {
            pdu.set_outlet(5, true);
            let v = Victim::spawn();
            pdu.attach(5, &v);
            vec![v]
        },
        || if pdu.outlet(5) == "off" { Ok(()) } else { Err("the outlet does not read off".into()) },
    )
}

fn fence_failoverd_lab() -> Result<Option<Vec<Duration>>, String> {
    if !have("agent fence_failoverd_lab", &[lab::PYTHON]) {
        return Ok(None);
    }
    let hosts = LabHosts::new();
    let device = hosts.device("bench-lab", "beta", &[("power_wait", "0")]);
    time_fences(
        &device,
        || {
            hosts.set_power("beta", true);
            let v = Victim::spawn();
            hosts.attach("beta", &v);
            vec![v]
        },
        || if hosts.power("beta") == "off" { Ok(()) } else { Err("the host does not read off".into()) },
    )
}

/// (median, min, max); the median of an even count is the mean of the two middle values.
fn summary(times: &[Duration]) -> (Duration, Duration, Duration) {
    let mut sorted = times.to_vec();
    sorted.sort();
    let n = sorted.len();
    let median = if n.is_multiple_of(2) { (sorted[n / 2 - 1] + sorted[n / 2]) / 2 } else { sorted[n / 2] };
    (median, sorted[0], sorted[n - 1])
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}
