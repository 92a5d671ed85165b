//! Two real `failoverd run` processes (the release build cargo bench made), on 127.0.0.1 or in a [`Lab`],
//! with two heartbeat links, manual fencing (nothing is ever fenced) and JSON logs.

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};

use super::lab::Lab;
use super::sys::{self, Result};

/// The failoverd binary cargo built next to this benchmark.
pub const BIN: &str = env!("CARGO_BIN_EXE_failoverd");

/// The UDP port of every link inside a lab (each node has its own addresses there).
const LAB_PORT: u16 = 7405;

/// The heartbeat timings of a benchmark.
#[derive(Clone, Copy, Debug)]
pub enum Timing {
    /// `heartbeat_interval` and `dead_after` absent from the config: the daemon's defaults.
    Defaults,
    /// Both set explicitly.
    Explicit { heartbeat: Duration, dead_after: Duration },
}

impl Timing {
    /// heartbeat_interval, dead_after as the daemon will use them.
    pub fn values(self) -> (Duration, Duration) {
        match self {
            Timing::Defaults => (failoverd::config::defaults::HEARTBEAT_INTERVAL, failoverd::config::defaults::DEAD_AFTER),
            Timing::Explicit { heartbeat, dead_after } => (heartbeat, dead_after),
        }
    }

    /// The settings in config words.
    pub fn describe(self) -> String {
        let (hb, dead) = self.values();
        let kind = if matches!(self, Timing::Defaults) { " (defaults)" } else { "" };
        format!("heartbeat_interval {}ms, dead_after {}ms{kind}", hb.as_millis(), dead.as_millis())
    }
}

/// Where the two nodes run.
pub enum Placement {
    /// 127.0.0.1, a free port per node per link.
    Loopback,
    /// One namespace per node, one bridge per link.
    Lab(Lab),
}

/// A two-node failoverd cluster; every daemon still running is killed on drop.
pub struct Pair {
    dir: tempfile::TempDir,
    placement: Placement,
    names: [String; 2],
    pids: [Option<i32>; 2],
}

fn free_udp_port() -> Result<u16> {
    let s = UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("binding a free UDP port on 127.0.0.1: {e}"))?;
    s.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

impl Pair {
    /// Write the configs (one per node: each has its own state_dir and control socket) and the key.
    pub fn new(placement: Placement, timing: Timing) -> Result<Pair> {
        let dir = tempfile::Builder::new().prefix("failoverd-bench-").tempdir().map_err(|e| format!("temporary directory: {e}"))?;
        let key = dir.path().join("cluster.key");
        let mut bytes = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
        write_private(&key, &format!("{}\n", hex::encode(bytes)))?;
        let addresses: Vec<[String; 2]> = match &placement {
            Placement::Loopback => (0..2)
                .map(|_| Ok([format!("127.0.0.1:{}", free_udp_port()?), format!("127.0.0.1:{}", free_udp_port()?)]))
                .collect::<Result<_>>()?,
            Placement::Lab(lab) => {
                if lab.links() < 2 {
                    return Err("the failoverd pair needs a lab with 2 links".into());
                }
                (0..2).map(|n| [format!("{}:{LAB_PORT}", lab.addr(n, 0)), format!("{}:{LAB_PORT}", lab.addr(n, 1))]).collect()
            }
        };
        let names = ["n1".to_string(), "n2".to_string()];
        let timing_keys = match timing {
            Timing::Defaults => String::new(),
            Timing::Explicit { heartbeat, dead_after } => {
                format!("heartbeat_interval = \"{}ms\"\ndead_after = \"{}ms\"\n", heartbeat.as_millis(), dead_after.as_millis())
            }
        };
        for name in &names {
            let nd = dir.path().join(name);
            std::fs::create_dir_all(&nd).map_err(|e| format!("{}: {e}", nd.display()))?;
            let mut toml = format!(
                "[cluster]\nname = \"bench\"\nkey_file = \"{}\"\nlinks = [\"ring0\", \"ring1\"]\n{timing_keys}\
                 state_dir = \"{}\"\ncontrol_socket = \"{}\"\n\n",
                key.display(),
                nd.join("state").display(),
                nd.join("control.sock").display()
            );
            for (j, peer) in names.iter().enumerate() {
                toml.push_str(&format!(
                    "[[node]]\nname = \"{peer}\"\naddresses = [\"{}\", \"{}\"]\nhostid = \"{:08x}\"\nfence_priority = {}\nfencing = \"manual\"\n\n",
                    addresses[j][0],
                    addresses[j][1],
                    0x5eed_0000 + j as u32 + 1,
                    10 - j
                ));
            }
            std::fs::write(nd.join("cluster.toml"), toml).map_err(|e| format!("{}: {e}", nd.display()))?;
        }
        Ok(Pair { dir, placement, names, pids: [None, None] })
    }

    /// `loopback` or `netns`.
    pub fn net(&self) -> &'static str {
        match self.placement {
            Placement::Loopback => "loopback",
            Placement::Lab(_) => "netns",
        }
    }

    /// The lab, when the nodes live in namespaces.
    pub fn lab(&self) -> Option<&Lab> {
        match &self.placement {
            Placement::Lab(lab) => Some(lab),
            Placement::Loopback => None,
        }
    }

    /// Node `i`'s name (`n1`, `n2`).
    pub fn name(&self, i: usize) -> &str {
        &self.names[i]
    }

    fn node_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(&self.names[i])
    }

    /// Node `i`'s JSON log (every incarnation appends to it).
    pub fn log(&self, i: usize) -> PathBuf {
        self.node_dir(i).join("log.jsonl")
    }

    fn socket(&self, i: usize) -> PathBuf {
        self.node_dir(i).join("control.sock")
    }

    /// Start node `i` and wait until its control socket answers.
    pub fn start(&mut self, i: usize) -> Result<()> {
        let config = self.node_dir(i).join("cluster.toml");
        let mut cmd = match &self.placement {
            Placement::Loopback => Command::new(BIN),
            Placement::Lab(lab) => lab.command(i, BIN),
        };
        cmd.args(["run", "--config"]).arg(&config).args(["--node", &self.names[i], "--log-format", "json"]).env("RUST_LOG", "info");
        let started = sys::epoch_s(SystemTime::now());
        let pid = sys::spawn_daemon(&mut cmd, &self.log(i))?;
        self.pids[i] = Some(pid);
        let socket = self.socket(i);
        let log = self.log(i);
        sys::wait_for(&format!("failoverd {} answers on {}", self.names[i], socket.display()), Duration::from_secs(20), Duration::from_millis(10), || {
            if !sys::alive(pid) {
                return Err(format!("failoverd {} exited at start; its log {}:\n{}", self.names[i], log.display(), tail(&log)));
            }
            Ok(self.status(i).ok().map(|_| ()))
        })?;
        check_log_clock(&log, started)
    }

    /// `status` over node `i`'s control socket.
    pub fn status(&self, i: usize) -> Result<Value> {
        let reply = failoverd::runtime::cli::request(&self.socket(i), &json!({"request": "status"}), Duration::from_secs(5))
            .map_err(|e| e.to_string())?;
        if reply["ok"] != json!(true) {
            return Err(format!("status of {} refused: {}", self.names[i], reply["error"]));
        }
        Ok(reply["status"].clone())
    }

    /// Node `i` sees its peer alive with every link up.
    pub fn sees_peer_fully(&self, i: usize) -> Result<bool> {
        let s = self.status(i)?;
        let peer = &self.names[1 - i];
        Ok(s["peers"].as_array().into_iter().flatten().any(|p| {
            p["node"] == json!(peer)
                && p["alive"] == json!(true)
                && p["links"].as_array().is_some_and(|ls| !ls.is_empty() && ls.iter().all(|l| l["up"] == json!(true)))
        }))
    }

    /// Wait until both nodes run and see each other alive on every link.
    pub fn wait_converged(&self, limit: Duration) -> Result<()> {
        sys::wait_for("both failoverd nodes see each other on every link", limit, Duration::from_millis(20), || {
            for i in 0..2 {
                if let Some(pid) = self.pids[i] {
                    if !sys::alive(pid) {
                        return Err(format!("failoverd {} died; its log:\n{}", self.names[i], tail(&self.log(i))));
                    }
                }
            }
            Ok((self.sees_peer_fully(0).unwrap_or(false) && self.sees_peer_fully(1).unwrap_or(false)).then_some(()))
        })
    }

    /// Node `i`'s processes (for /proc sampling).
    pub fn pids(&self, i: usize) -> Result<Vec<i32>> {
        match &self.placement {
            Placement::Lab(lab) => lab.pids(i),
            Placement::Loopback => Ok(self.pids[i].into_iter().collect()),
        }
    }

    /// Whether node `i`'s daemon still runs.
    pub fn running(&self, i: usize) -> bool {
        self.pids[i].is_some_and(sys::alive)
    }

    /// SIGKILL node `i` (its whole namespace in a lab). Returns the time just before the kill.
    pub fn crash(&mut self, i: usize) -> Result<SystemTime> {
        let at = match &self.placement {
            Placement::Lab(lab) => lab.crash(i)?,
            Placement::Loopback => {
                let pid = self.pids[i].ok_or_else(|| format!("failoverd {} is not running", self.names[i]))?;
                sys::kill_and_reap(&[pid])
            }
        };
        self.pids[i] = None;
        Ok(at)
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        let pids: Vec<i32> = self.pids.iter().flatten().copied().collect();
        sys::kill_and_reap(&pids);
        // a Lab in `placement` is dropped after this, removing its namespaces
    }
}

/// One JSON log line of failoverd's event: its name, detail object and time (epoch seconds).
pub struct LoggedEvent {
    pub name: String,
    pub detail: Value,
    pub at: f64,
}

/// Parse the `event` lines among JSON log lines (`fields.event`, `fields.detail` holding the event as JSON).
pub fn events(lines: &[String]) -> Vec<LoggedEvent> {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| {
            let name = v["fields"]["event"].as_str()?.to_string();
            let detail = v["fields"]["detail"].as_str().and_then(|d| serde_json::from_str(d).ok()).unwrap_or(Value::Null);
            let at = sys::parse_rfc3339(v["timestamp"].as_str()?)?;
            Some(LoggedEvent { name, detail, at })
        })
        .collect()
}

/// The first log line's timestamp must be close to the wall clock at start: otherwise the timestamps are not
/// what this suite thinks (another format, another clock) and every latency would be wrong.
fn check_log_clock(log: &Path, started: f64) -> Result<()> {
    let text = std::fs::read_to_string(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let Some(ts) = text
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find_map(|v| v["timestamp"].as_str().and_then(sys::parse_rfc3339))
    else {
        return Err(format!("{}: no JSON line with a readable `timestamp`:\n{}", log.display(), tail(log)));
    };
    if (ts - started).abs() > 30.0 {
        return Err(format!(
            "{}: log timestamp {ts:.3} is {:.1}s away from the start time {started:.3}; cannot time events from it",
            log.display(),
            ts - started
        ));
    }
    Ok(())
}

/// The last lines of a file, for error messages.
pub fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(text.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))
}

/// failoverd's version line.
pub fn version() -> String {
    sys::run(Command::new(BIN).arg("--version")).map(|s| s.trim().to_string()).unwrap_or_else(|e| e)
}
