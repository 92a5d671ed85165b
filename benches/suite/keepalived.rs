//! keepalived (VRRP) side by side: two instances in namespaces on one bridge, n1 MASTER (priority 150), n2
//! BACKUP (priority 100). SIGKILL n1 (both of its processes), time until n2 enters MASTER, restart n1 (it
//! preempts back), repeat. State changes are read from keepalived's notify FIFO (`vrrp_notify_fifo`), which
//! keepalived writes at the transition itself: no script start-up delay in the figure.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rand::Rng;

use super::cost;
use super::lab::Lab;
use super::model::{Detection, Record, Summary};
use super::sys::{self, Result};

const MASTER_PRIORITY: u32 = 150;
const BACKUP_PRIORITY: u32 = 100;

/// VRRP timing of a run.
#[derive(Clone, Copy, Debug)]
pub struct Vrrp {
    /// 2 or 3 (sub-second advert_int needs 3).
    pub version: u32,
    /// advert_int (s).
    pub advert_s: f64,
    /// The lab link VRRP runs on (interface `l{link}`, virtual address 10.77.{link}.100).
    pub link: usize,
}

impl Vrrp {
    /// Master_Down_Interval of the backup: 3 x advert + skew, the skew being (256 - priority)/256 s in
    /// VRRPv2 and (256 - priority) x advert/256 in VRRPv3 (keepalived.conf(5); RFC 3768, RFC 5798).
    pub fn nominal_ms(self) -> f64 {
        let skew = f64::from(256 - BACKUP_PRIORITY) / 256.0;
        let skew = if self.version == 3 { skew * self.advert_s } else { skew };
        (3.0 * self.advert_s + skew) * 1000.0
    }

    pub fn describe(self) -> String {
        format!("VRRPv{}, advert_int {}s, backup priority {BACKUP_PRIORITY}", self.version, self.advert_s)
    }
}

/// One keepalived instance: its files and the state changes read from its notify FIFO.
struct Instance {
    dir: PathBuf,
    fifo: PathBuf,
    /// (epoch seconds when read, line) for every FIFO line.
    events: Arc<Mutex<Vec<(f64, String)>>>,
    /// Epoch seconds of the current start; only later events describe this run.
    started: f64,
}

const STOP: &str = "failoverd-bench-stop";

impl Instance {
    fn new(dir: PathBuf) -> Result<Instance> {
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let fifo = dir.join("notify.fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).map_err(|e| format!("mkfifo {}: {e}", fifo.display()))?;
        // read+write: the FIFO never reports end-of-file while keepalived restarts
        let file = std::fs::OpenOptions::new().read(true).write(true).open(&fifo).map_err(|e| format!("{}: {e}", fifo.display()))?;
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(file).lines() {
                let Ok(line) = line else { return };
                let at = sys::epoch_s(SystemTime::now());
                if line == STOP {
                    return;
                }
                if let Ok(mut v) = sink.lock() {
                    v.push((at, line));
                }
            }
        });
        Ok(Instance { dir, fifo, events, started: 0.0 })
    }

    /// The state (`MASTER`, `BACKUP`, `FAULT`...) of the last change since the current start.
    fn state(&self) -> Option<String> {
        let v = self.events.lock().ok()?;
        v.iter().rev().take_while(|(at, _)| *at >= self.started).find_map(|(_, l)| parse_state(l))
    }

    /// The first change to `state` read after `after` (epoch seconds).
    fn entered(&self, state: &str, after: f64) -> Option<f64> {
        let v = self.events.lock().ok()?;
        v.iter().find(|(at, l)| *at > after && parse_state(l).as_deref() == Some(state)).map(|(at, _)| *at)
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        // end the reader thread
        if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&self.fifo) {
            let _ = writeln!(f, "{STOP}");
        }
    }
}

/// `INSTANCE "VI_1" MASTER 150` -> `MASTER`.
fn parse_state(line: &str) -> Option<String> {
    let mut words = line.split_whitespace();
    (words.next()? == "INSTANCE").then_some(())?;
    words.next()?;
    Some(words.next()?.to_string())
}

fn config(node: usize, vrrp: Vrrp, fifo: &Path) -> String {
    let priority = if node == 0 { MASTER_PRIORITY } else { BACKUP_PRIORITY };
    let vip = std::net::Ipv4Addr::new(10, 77, vrrp.link as u8, 100);
    format!(
        "global_defs {{\n    router_id bench-n{}\n    vrrp_version {}\n    vrrp_notify_fifo {}\n}}\n\n\
         vrrp_instance VI_1 {{\n    state BACKUP\n    interface l{}\n    virtual_router_id 51\n    priority {priority}\n    \
         advert_int {}\n    virtual_ipaddress {{\n        {vip}/24\n    }}\n}}\n",
        node + 1,
        vrrp.version,
        fifo.display(),
        vrrp.link,
        vrrp.advert_s
    )
}

fn start(lab: &Lab, node: usize, inst: &mut Instance) -> Result<()> {
    let conf = inst.dir.join("keepalived.conf");
    let mut cmd = lab.command(node, "keepalived");
    cmd.args(["--dont-fork", "--log-console", "--log-detail", "--vrrp", "--no-syslog", "--use-file"])
        .arg(&conf)
        .arg("--pid")
        .arg(inst.dir.join("keepalived.pid"))
        .arg("--vrrp_pid")
        .arg(inst.dir.join("vrrp.pid"));
    inst.started = sys::epoch_s(SystemTime::now());
    sys::spawn_daemon(&mut cmd, &inst.dir.join("keepalived.log"))?;
    Ok(())
}

/// keepalived's version line (it prints it on stderr).
pub fn version() -> String {
    match Command::new("keepalived").arg("--version").output() {
        Ok(o) => {
            let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
            text.lines().next().unwrap_or("").trim().to_string()
        }
        Err(e) => format!("keepalived --version: {e}"),
    }
}

/// Run the rounds.
pub fn run(lab: Lab, profile: &str, vrrp: Vrrp, rounds: usize, idle_window: Duration) -> Result<Record> {
    let dir = tempfile::Builder::new().prefix("failoverd-bench-keepalived-").tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let mut nodes = [Instance::new(dir.path().join("n1"))?, Instance::new(dir.path().join("n2"))?];
    for (i, inst) in nodes.iter().enumerate() {
        let text = config(i, vrrp, &inst.fifo);
        std::fs::write(inst.dir.join("keepalived.conf"), text).map_err(|e| format!("{}: {e}", inst.dir.display()))?;
    }
    let n1_log = nodes[0].dir.join("keepalived.log");
    for (i, inst) in nodes.iter_mut().enumerate() {
        start(&lab, i, inst)?;
    }
    let converge_limit = Duration::from_secs_f64(vrrp.nominal_ms() / 1000.0 * 3.0 + 20.0);
    let converged = |nodes: &[Instance; 2]| -> Result<Option<()>> {
        Ok((nodes[0].state().as_deref() == Some("MASTER") && nodes[1].state().as_deref() == Some("BACKUP")).then_some(()))
    };
    sys::wait_for("keepalived n1 MASTER and n2 BACKUP", converge_limit, Duration::from_millis(10), || converged(&nodes))
        .map_err(|e| format!("{e}; n1 log:\n{}", super::pair::tail(&n1_log)))?;
    let idle = if idle_window.is_zero() { None } else { Some(cost::measure(idle_window, || lab.pids(0))?) };

    let mut rng = rand::rng();
    let mut samples = Vec::new();
    let mut missed = 0;
    let advert = Duration::from_secs_f64(vrrp.advert_s);
    for round in 0..rounds {
        sys::wait_for("keepalived n1 MASTER and n2 BACKUP", converge_limit, Duration::from_millis(10), || converged(&nodes))?;
        sys::sleep(advert * 2 + advert.mul_f64(rng.random::<f64>()))?;
        let killed = sys::epoch_s(lab.crash(0)?);
        let limit = Duration::from_secs_f64(vrrp.nominal_ms() / 1000.0 + 10.0);
        match sys::wait_for("keepalived n2 enters MASTER", limit, Duration::from_millis(5), || Ok(nodes[1].entered("MASTER", killed))) {
            Ok(at) => {
                let ms = (at - killed) * 1000.0;
                tracing::info!(round, detect_ms = format!("{ms:.1}"), "keepalived takeover");
                samples.push(ms);
            }
            Err(e) => {
                sys::check_interrupted()?;
                tracing::warn!(round, error = %e, "no takeover");
                missed += 1;
            }
        }
        if round + 1 < rounds {
            start(&lab, 0, &mut nodes[0])?;
        }
    }
    let nominal_ms = vrrp.nominal_ms();
    let overshoot: Vec<f64> = samples.iter().map(|s| s - nominal_ms).collect();
    Ok(Record::Detection(Box::new(Detection {
        tool: "keepalived".into(),
        profile: profile.into(),
        settings: vrrp.describe(),
        verdict: "BACKUP enters MASTER (notify FIFO)".into(),
        nominal_ms,
        net: "netns".into(),
        rounds,
        missed,
        detect: Summary::of(&samples),
        overshoot: Summary::of(&overshoot),
        silence_overshoot: None,
        samples,
        idle,
        version: version(),
    })))
}

/// A keepalived pair left running (the loss ladder): n1 MASTER, n2 BACKUP, every state change kept.
pub struct Running {
    // field order is drop order: the FIFO readers end before the lab kills the daemons and the files go
    nodes: [Instance; 2],
    lab: Lab,
    _dir: tempfile::TempDir,
    /// Epoch seconds from which n2's MASTER transitions count as false verdicts.
    since: f64,
}

impl Running {
    /// Write the configs and start both instances (without waiting).
    pub fn start(lab: Lab, vrrp: Vrrp) -> Result<Running> {
        let dir = tempfile::Builder::new().prefix("failoverd-bench-keepalived-").tempdir().map_err(|e| format!("temporary directory: {e}"))?;
        let mut nodes = [Instance::new(dir.path().join("n1"))?, Instance::new(dir.path().join("n2"))?];
        for (i, inst) in nodes.iter_mut().enumerate() {
            let text = config(i, vrrp, &inst.fifo);
            std::fs::write(inst.dir.join("keepalived.conf"), text).map_err(|e| format!("{}: {e}", inst.dir.display()))?;
            start(&lab, i, inst)?;
        }
        Ok(Running { nodes, lab, _dir: dir, since: f64::INFINITY })
    }

    /// n1 is MASTER and n2 BACKUP.
    pub fn converged(&self) -> bool {
        self.nodes[0].state().as_deref() == Some("MASTER") && self.nodes[1].state().as_deref() == Some("BACKUP")
    }

    /// Count n2's MASTER transitions from now on.
    pub fn arm(&mut self) {
        self.since = sys::epoch_s(SystemTime::now());
    }

    /// n2's MASTER transitions since [`Running::arm`]: every one happened while n1 was alive.
    pub fn false_masters(&self) -> u64 {
        self.nodes[1].events.lock().map_or(0, |v| v.iter().filter(|(at, l)| *at >= self.since && parse_state(l).as_deref() == Some("MASTER")).count() as u64)
    }

    /// Whether both instances still have processes in their namespaces.
    pub fn running(&self) -> bool {
        (0..2).all(|n| self.lab.pids(n).is_ok_and(|p| !p.is_empty()))
    }

    /// The lab, for its loss rules.
    pub fn lab(&self) -> &Lab {
        &self.lab
    }

    /// n1's log, for error messages.
    pub fn log_tail(&self) -> String {
        super::pair::tail(&self.nodes[0].dir.join("keepalived.log"))
    }
}
