//! Shared helper for tests that run real `failoverd run` daemons on 127.0.0.1: a temporary cluster
//! (config, key, one state_dir and control socket per node, free UDP ports), daemons that are SIGKILLed when
//! dropped, their JSON logs, `status --json`, and a polling `wait_until`.
//!
//! Use it with `#[path = "support/cluster/mod.rs"] mod cluster;` rather than another copy of a daemon
//! wrapper.
#![allow(dead_code)]

use std::fs::File;
use std::net::UdpSocket;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub const BIN: &str = env!("CARGO_BIN_EXE_failoverd");
pub const HEARTBEAT_MS: u64 = 100;
pub const DEAD_AFTER_MS: u64 = 500;
pub const KEY: &str = "4f1c2a9be07d3385a6f0c1d2e3f405162738495a6b7c8d9e0f1a2b3c4d5e6f70";

/// A temporary cluster definition: config file, key, and per-node directories.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    /// (node, [port per link])
    pub nodes: Vec<(String, Vec<u16>)>,
}

pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Cluster {
    /// Nodes `names` (two links each, manual fencing), with `extra_cluster` appended to `[cluster]` (e.g.
    /// `notify = "/path"`).
    pub fn new(names: &[&str], extra_cluster: &str) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("cluster.key");
        std::fs::write(&key, format!("{KEY}\n")).unwrap();
        let nodes: Vec<(String, Vec<u16>)> = names.iter().map(|n| (n.to_string(), vec![free_udp_port(), free_udp_port()])).collect();
        let mut toml = format!(
            "[cluster]\nname = \"testc\"\nkey_file = \"{}\"\nlinks = [\"ring0\", \"ring1\"]\n\
             heartbeat_interval = \"{HEARTBEAT_MS}ms\"\ndead_after = \"{DEAD_AFTER_MS}ms\"\nstall_threshold = \"400ms\"\n\
             wait_for_all = true\nfence_delay = \"1s\"\nstate_dir = \"{}\"\ncontrol_socket = \"{}\"\n{extra_cluster}\n\n",
            key.display(),
            dir.path().join("state").display(),
            dir.path().join("control.sock").display()
        );
        for (i, (name, ports)) in nodes.iter().enumerate() {
            toml.push_str(&format!(
                "[[node]]\nname = \"{name}\"\naddresses = [\"127.0.0.1:{}\", \"127.0.0.1:{}\"]\nhostid = \"{:08x}\"\nfence_priority = {}\nfencing = \"manual\"\n\n",
                ports[0],
                ports[1],
                0x1a2b_3c00 + i as u32 + 1,
                10 - i
            ));
        }
        let config = dir.path().join("cluster.toml");
        std::fs::write(&config, toml).unwrap();
        Cluster { dir, config, nodes }
    }

    pub fn ports(&self, node: &str) -> Vec<u16> {
        self.nodes.iter().find(|(n, _)| n == node).unwrap().1.clone()
    }

    /// A copy of the config for `node` run from directory `instance` (its own state_dir and control_socket:
    /// each daemon on one host needs its own).
    pub fn instance_config(&self, instance: &str) -> (PathBuf, PathBuf) {
        let text = std::fs::read_to_string(&self.config).unwrap();
        let nd = self.dir.path().join(instance);
        std::fs::create_dir_all(&nd).unwrap();
        let socket = nd.join("control.sock");
        let text = text
            .replace(&self.dir.path().join("state").display().to_string(), &nd.join("state").display().to_string())
            .replace(&self.dir.path().join("control.sock").display().to_string(), &socket.display().to_string());
        let path = nd.join("cluster.toml");
        std::fs::write(&path, text).unwrap();
        (path, socket)
    }

    pub fn node_config(&self, node: &str) -> (PathBuf, PathBuf) {
        self.instance_config(node)
    }

    /// Start `failoverd run --node NODE` with the node's own config copy; waits for its control socket.
    pub fn start(&self, node: &str) -> Daemon {
        let (config, socket) = self.node_config(node);
        let d = self.spawn(node, node, &config, &socket);
        d.wait_for_socket();
        d
    }

    /// Spawn `failoverd run --config CONFIG --node NODE` logging to `<instance>/log.jsonl`, without waiting.
    pub fn spawn(&self, node: &str, instance: &str, config: &Path, socket: &Path) -> Daemon {
        let nd = self.dir.path().join(instance);
        std::fs::create_dir_all(&nd).unwrap();
        let log = nd.join("log.jsonl");
        let child = Command::new(BIN)
            .args(["run", "--config"])
            .arg(config)
            .args(["--node", node, "--log-format", "json"])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(File::create(&log).unwrap()))
            .spawn()
            .unwrap();
        Daemon { name: node.to_string(), child: Some(child), socket: socket.to_path_buf(), log }
    }
}

/// A running `failoverd run`, SIGKILLed on drop.
pub struct Daemon {
    pub name: String,
    pub child: Option<Child>,
    pub socket: PathBuf,
    pub log: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Daemon {
    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    pub fn running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    pub fn wait_for_socket(&self) {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(20) {
            if UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("{} never opened its control socket; log:\n{}", self.name, self.log_text());
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn log_lines(&self) -> Vec<Value> {
        self.log_text().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }

    /// Events (as logged) with this name.
    pub fn events(&self, name: &str) -> Vec<Value> {
        self.log_lines().into_iter().filter(|l| l["fields"]["event"] == json!(name)).collect()
    }

    /// `failoverd status --json --socket ...`
    pub fn status(&self) -> Value {
        let out = Command::new(BIN).args(["status", "--json", "--socket"]).arg(&self.socket).output().unwrap();
        assert!(out.status.success(), "status of {} failed: {}", self.name, String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// `failoverd status --socket ...` (the human form).
    pub fn status_text(&self) -> String {
        let out = Command::new(BIN).args(["status", "--socket"]).arg(&self.socket).output().unwrap();
        assert!(out.status.success(), "status of {} failed: {}", self.name, String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn peer(&self, peer: &str) -> Value {
        let s = self.status();
        s["peers"].as_array().unwrap().iter().find(|p| p["node"] == json!(peer)).cloned().unwrap_or(Value::Null)
    }

    pub fn peer_alive(&self, peer: &str) -> bool {
        self.peer(peer)["alive"] == json!(true)
    }

    pub fn kill(&mut self) {
        let mut c = self.child.take().unwrap();
        c.kill().unwrap();
        c.wait().unwrap();
    }

    /// SIGTERM, then wait (at most `limit`) for the exit status.
    pub fn terminate(&mut self, limit: Duration) -> std::process::ExitStatus {
        use nix::sys::signal::{kill, Signal};
        kill(nix::unistd::Pid::from_raw(self.pid()), Signal::SIGTERM).unwrap();
        let mut child = self.child.take().unwrap();
        let t = Instant::now();
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                return s;
            }
            if t.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{} did not exit within {limit:?} of SIGTERM; log:\n{}", self.name, self.log_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

pub fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while t.elapsed() < limit {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out after {limit:?} waiting until {what}");
}

/// A `notify` program in `dir` that appends each JSON event it receives on stdin to `<dir>/notified.jsonl`.
pub fn notify_recorder(dir: &Path) -> (PathBuf, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let out = dir.join("notified.jsonl");
    let script = dir.join("notify.sh");
    std::fs::write(&script, format!("#!/bin/sh\ncat >> '{}'\n", out.display())).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (script, out)
}

/// The JSON payloads a [`notify_recorder`] received.
pub fn notified(file: &Path) -> Vec<Value> {
    std::fs::read_to_string(file).unwrap_or_default().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}
