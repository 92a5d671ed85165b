//! corosync 3 side by side: two nodes in namespaces, knet on two links (two bridges), votequorum two_node.
//! SIGKILL one node, time until the survivor forms a membership without it (its log line `A new membership
//! (...) was formed. Members left: N`, millisecond timestamps), restart the victim, repeat.
//!
//! Two instances on one machine: corosync locks the fixed `/var/run/corosync.pid` and keeps its blackbox in
//! /dev/shm, so each runs in its own mount namespace with a private tmpfs on /run and on /dev/shm (both gone
//! when the instance dies), and its own `system.state_dir`. Each is started as Debian's unit starts it
//! (`corosync -f`), with its own defaults (realtime scheduling, memory locking where allowed).

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use rand::Rng;

use super::cost;
use super::lab::Lab;
use super::model::{Detection, Record, Summary};
use super::sys::{self, LogTail, Result};

/// Totem timing of a run: `None` leaves `token` out of the config (corosync's default, 3000 ms).
#[derive(Clone, Copy, Debug)]
pub struct Totem {
    pub token_ms: Option<u64>,
}

impl Totem {
    const DEFAULT_TOKEN_MS: u64 = 3000;

    fn token(self) -> u64 {
        self.token_ms.unwrap_or(Self::DEFAULT_TOKEN_MS)
    }

    /// token + consensus (1.2 x token, corosync.conf(5)) for two nodes.
    pub fn nominal_ms(self) -> f64 {
        self.token() as f64 * 2.2
    }

    pub fn describe(self) -> String {
        let kind = if self.token_ms.is_none() { " (defaults)" } else { "" };
        format!("knet 2 links, token {}ms, consensus {}ms{kind}", self.token(), self.token() * 6 / 5)
    }
}

/// One corosync node: its files and what its log says so far.
struct Node {
    dir: PathBuf,
    nodeid: u32,
    log: LogTail,
    /// Member count of the latest `Members[N]` line since the current start.
    members: Option<usize>,
}

impl Node {
    fn logfile(&self) -> PathBuf {
        self.dir.join("corosync.log")
    }

    /// New log lines, keeping `members` current.
    fn poll(&mut self) -> Result<Vec<String>> {
        let lines = self.log.new_lines()?;
        for l in &lines {
            if let Some(n) = l.split("Members[").nth(1).and_then(|r| r.split(']').next()).and_then(|n| n.parse().ok()) {
                if l.contains("[QUORUM]") && !l.contains("Sync members") {
                    self.members = Some(n);
                }
            }
        }
        Ok(lines)
    }
}

fn config(lab: &Lab, node: &Node, totem: Totem) -> String {
    let token = totem.token_ms.map(|t| format!("    token: {t}\n")).unwrap_or_default();
    let mut nodes = String::new();
    for n in 0..2 {
        nodes.push_str(&format!(
            "    node {{\n        ring0_addr: {}\n        ring1_addr: {}\n        nodeid: {}\n        name: n{}\n    }}\n",
            lab.addr(n, 0),
            lab.addr(n, 1),
            n + 1,
            n + 1
        ));
    }
    format!(
        "totem {{\n    version: 2\n    cluster_name: failoverd-bench\n    transport: knet\n    crypto_cipher: none\n    \
         crypto_hash: none\n{token}    interface {{\n        linknumber: 0\n    }}\n    interface {{\n        linknumber: 1\n    }}\n}}\n\
         nodelist {{\n{nodes}}}\n\
         quorum {{\n    provider: corosync_votequorum\n    two_node: 1\n}}\n\
         logging {{\n    to_logfile: yes\n    logfile: {}\n    to_syslog: no\n    to_stderr: no\n    timestamp: hires\n}}\n\
         system {{\n    state_dir: {}\n}}\n",
        node.logfile().display(),
        node.dir.join("state").display()
    )
}

fn start(lab: &Lab, i: usize, node: &mut Node) -> Result<()> {
    let conf = node.dir.join("corosync.conf");
    let mut cmd = lab.command(i, "unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(
            "mount -t tmpfs -o size=64m,mode=0755 failoverd-bench /run && \
             mount -t tmpfs -o size=64m,mode=1777 failoverd-bench /dev/shm && exec corosync -f -c \"$0\"",
        )
        .arg(&conf)
        // log timestamps in UTC: they carry no date and no zone
        .env("TZ", "UTC");
    node.members = None;
    node.log = LogTail::at_end(&node.logfile());
    sys::spawn_daemon(&mut cmd, &node.dir.join("stdout.log"))?;
    Ok(())
}

/// corosync's version line.
pub fn version() -> String {
    sys::run(Command::new("corosync").arg("-v")).map(|s| s.lines().next().unwrap_or("").trim().to_string()).unwrap_or_else(|e| e)
}

/// `token timed out (3000ms), waiting 3600ms for consensus` -> (3000, 3600).
fn timers_in(line: &str) -> Option<(f64, f64)> {
    let token = line.split("token timed out (").nth(1)?.split("ms)").next()?.parse().ok()?;
    let consensus = line.split("waiting ").nth(1)?.split("ms for consensus").next()?.parse().ok()?;
    Some((token, consensus))
}

/// Run the rounds; the victim alternates between n1 and n2.
pub fn run(lab: Lab, profile: &str, totem: Totem, rounds: usize, idle_window: Duration) -> Result<Record> {
    let dir = tempfile::Builder::new().prefix("failoverd-bench-corosync-").tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let mut nodes = Vec::new();
    for i in 0..2 {
        let nd = dir.path().join(format!("n{}", i + 1));
        std::fs::create_dir_all(nd.join("state")).map_err(|e| format!("{}: {e}", nd.display()))?;
        let node = Node { log: LogTail::at_end(&nd.join("corosync.log")), dir: nd, nodeid: i as u32 + 1, members: None };
        std::fs::write(node.dir.join("corosync.conf"), config(&lab, &node, totem)).map_err(|e| format!("{}: {e}", node.dir.display()))?;
        nodes.push(node);
    }
    for (i, node) in nodes.iter_mut().enumerate() {
        start(&lab, i, node)?;
    }
    let converge_limit = Duration::from_secs(60);
    let converge = |nodes: &mut Vec<Node>| -> Result<()> {
        sys::wait_for("both corosync nodes report Members[2]", converge_limit, Duration::from_millis(20), || {
            for n in nodes.iter_mut() {
                n.poll()?;
            }
            Ok(nodes.iter().all(|n| n.members == Some(2)).then_some(()))
        })
        .map_err(|e| {
            let logs: Vec<String> = nodes.iter().map(|n| super::pair::tail(&n.logfile())).collect();
            format!("{e}; logs:\n{}", logs.join("\n---\n"))
        })
    };
    converge(&mut nodes)?;
    let idle = if idle_window.is_zero() { None } else { Some(cost::measure(idle_window, || lab.pids(0))?) };

    let mut rng = rand::rng();
    let token = Duration::from_millis(totem.token());
    let mut samples = Vec::new();
    let mut missed = 0;
    let mut seen_timers = None;
    for round in 0..rounds {
        let victim = round % 2;
        let survivor = 1 - victim;
        converge(&mut nodes)?;
        sys::sleep(token / 2 + token.mul_f64(rng.random::<f64>()))?;
        nodes[survivor].poll()?;
        let killed = sys::epoch_s(lab.crash(victim)?);
        let victim_id = nodes[victim].nodeid.to_string();
        let limit = Duration::from_secs_f64(totem.nominal_ms() / 1000.0 + 15.0);
        let verdict = sys::wait_for("the corosync survivor drops the victim from its membership", limit, Duration::from_millis(10), || {
            for l in nodes[survivor].poll()? {
                if let Some(t) = timers_in(&l) {
                    seen_timers = Some(t);
                }
                let left = l.split("Members left:").nth(1).map(|ids| ids.split_whitespace().any(|id| id == victim_id));
                if l.contains("A new membership") && left == Some(true) {
                    let tod = l.split_whitespace().nth(2).unwrap_or("");
                    let at = sys::time_of_day_near(tod, killed).ok_or_else(|| format!("unreadable corosync log time in: {l}"))?;
                    return Ok(Some(at));
                }
            }
            Ok(None)
        });
        match verdict {
            Ok(at) => {
                let ms = (at - killed) * 1000.0;
                tracing::info!(round, victim = victim + 1, detect_ms = format!("{ms:.1}"), "corosync membership without the victim");
                samples.push(ms);
            }
            Err(e) => {
                sys::check_interrupted()?;
                tracing::warn!(round, error = %e, "no new membership");
                missed += 1;
            }
        }
        if round + 1 < rounds {
            start(&lab, victim, &mut nodes[victim])?;
        }
    }
    let mut nominal_ms = totem.nominal_ms();
    if let Some((t, c)) = seen_timers {
        if (t + c - nominal_ms).abs() > 1.0 {
            tracing::warn!(configured = nominal_ms, logged = t + c, "corosync's logged token + consensus differ from the expected; using the logged");
        }
        nominal_ms = t + c;
    }
    let overshoot: Vec<f64> = samples.iter().map(|s| s - nominal_ms).collect();
    Ok(Record::Detection(Box::new(Detection {
        tool: "corosync".into(),
        profile: profile.into(),
        settings: totem.describe(),
        verdict: "survivor forms a membership without the victim".into(),
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

/// A corosync pair left running (the loss ladder): every membership formed without a node counted.
pub struct Running {
    nodes: Vec<Node>,
    lab: Lab,
    _dir: tempfile::TempDir,
    /// Memberships formed with `Members left:` per node since [`Running::arm`]; `None` before.
    left: Option<[u64; 2]>,
}

impl Running {
    /// Write the configs and start both nodes (without waiting).
    pub fn start(lab: Lab, totem: Totem) -> Result<Running> {
        let dir = tempfile::Builder::new().prefix("failoverd-bench-corosync-").tempdir().map_err(|e| format!("temporary directory: {e}"))?;
        let mut nodes = Vec::new();
        for i in 0..2 {
            let nd = dir.path().join(format!("n{}", i + 1));
            std::fs::create_dir_all(nd.join("state")).map_err(|e| format!("{}: {e}", nd.display()))?;
            let mut node = Node { log: LogTail::at_end(&nd.join("corosync.log")), dir: nd, nodeid: i as u32 + 1, members: None };
            std::fs::write(node.dir.join("corosync.conf"), config(&lab, &node, totem)).map_err(|e| format!("{}: {e}", node.dir.display()))?;
            start(&lab, i, &mut node)?;
            nodes.push(node);
        }
        Ok(Running { nodes, lab, _dir: dir, left: None })
    }

    /// Read the logs; true once both nodes report Members[2] (before [`Running::arm`]).
    pub fn converged(&mut self) -> Result<bool> {
        self.poll()?;
        Ok(self.nodes.iter().all(|n| n.members == Some(2)))
    }

    /// Count memberships formed without a node from now on.
    pub fn arm(&mut self) -> Result<()> {
        self.poll()?;
        self.left = Some([0, 0]);
        Ok(())
    }

    /// Read both logs, counting `A new membership (...) was formed. Members left: N` once armed.
    pub fn poll(&mut self) -> Result<()> {
        for (i, node) in self.nodes.iter_mut().enumerate() {
            for l in node.poll()? {
                if l.contains("A new membership") && l.split("Members left:").nth(1).is_some_and(|ids| !ids.trim().is_empty()) {
                    if let Some(left) = self.left.as_mut() {
                        tracing::warn!(node = i + 1, line = %l, "corosync: membership without a node while nothing was killed");
                        left[i] += 1;
                    }
                }
            }
        }
        Ok(())
    }

    /// Memberships formed without a node, summed over both nodes, since [`Running::arm`].
    pub fn false_memberships(&self) -> u64 {
        self.left.map_or(0, |l| l[0] + l[1])
    }

    /// Whether both nodes still have processes in their namespaces.
    pub fn running(&self) -> bool {
        (0..2).all(|n| self.lab.pids(n).is_ok_and(|p| !p.is_empty()))
    }

    /// The lab, for its loss rules.
    pub fn lab(&self) -> &Lab {
        &self.lab
    }

    /// Both logs' last lines, for error messages.
    pub fn log_tail(&self) -> String {
        self.nodes.iter().map(|n| super::pair::tail(&n.logfile())).collect::<Vec<_>>().join("\n---\n")
    }
}
