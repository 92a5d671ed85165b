//! A temporary cluster of real `failoverd run` daemons on 127.0.0.1: config, key, one state_dir and control
//! socket per node, free UDP ports; the daemons are [`Daemon`]s (SIGKILLed when dropped).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{free_udp_port, Daemon};
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

/// What [`Cluster::with`] writes: the defaults are those of [`Cluster::new`].
pub struct Spec<'a> {
    /// `cluster.name`.
    pub name: &'a str,
    /// The cluster key (hex), written to `cluster.key` in the cluster's directory.
    pub key: &'a str,
    pub wait_for_all: bool,
    /// More `[cluster]` lines (e.g. `notify = "/path"`), in every node's copy.
    pub extra_cluster: &'a str,
    /// Sections after `[cluster]` (e.g. `[witness]`), in every node's copy.
    pub sections: &'a str,
}

impl Default for Spec<'_> {
    fn default() -> Self {
        Spec { name: "testc", key: KEY, wait_for_all: true, extra_cluster: "", sections: "" }
    }
}

impl Cluster {
    /// Nodes `names` (two links each, manual fencing), with `extra_cluster` appended to `[cluster]` (e.g.
    /// `notify = "/path"`).
    pub fn new(names: &[&str], extra_cluster: &str) -> Cluster {
        Cluster::build(names, &[], extra_cluster)
    }

    /// [`Cluster::new`] with `extra` nodes in the config whose "addresses" are sockets the test holds (to
    /// capture what the daemons send).
    pub fn build(names: &[&str], extra: &[(&str, Vec<u16>)], extra_cluster: &str) -> Cluster {
        Cluster::with(names, extra, Spec { extra_cluster, ..Spec::default() })
    }

    /// The one writer of the tests' cluster files: nodes `names` on free loopback ports (two links each,
    /// manual fencing, 100 ms heartbeats, dead after 500 ms), `extra` nodes on ports the test holds, and what
    /// `spec` sets.
    pub fn with(names: &[&str], extra: &[(&str, Vec<u16>)], spec: Spec) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("cluster.key");
        std::fs::write(&key, format!("{}\n", spec.key)).unwrap();
        let port = || free_udp_port(Ipv4Addr::LOCALHOST);
        let mut nodes: Vec<(String, Vec<u16>)> = names.iter().map(|n| (n.to_string(), vec![port(), port()])).collect();
        nodes.extend(extra.iter().map(|(n, p)| (n.to_string(), p.clone())));
        let mut toml = format!(
            "[cluster]\nname = \"{}\"\nkey_file = \"{}\"\nlinks = [\"ring0\", \"ring1\"]\n\
             heartbeat_interval = \"{HEARTBEAT_MS}ms\"\ndead_after = \"{DEAD_AFTER_MS}ms\"\nstall_threshold = \"400ms\"\n\
             wait_for_all = {}\nfence_delay = \"1s\"\nstate_dir = \"{}\"\ncontrol_socket = \"{}\"\n{}\n\n{}\n",
            spec.name,
            key.display(),
            spec.wait_for_all,
            dir.path().join("state").display(),
            dir.path().join("control.sock").display(),
            spec.extra_cluster,
            spec.sections
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

    /// The cluster key file.
    pub fn key_file(&self) -> PathBuf {
        self.dir.path().join("cluster.key")
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

    /// [`Cluster::node_config`] with `lines` added to that node's `[cluster]` only (a node-local key such as
    /// `metrics_listen`).
    pub fn node_config_with(&self, node: &str, lines: &str) -> (PathBuf, PathBuf) {
        let (path, socket) = self.instance_config(node);
        let text = std::fs::read_to_string(&path).unwrap().replacen("[cluster]\n", &format!("[cluster]\n{lines}\n"), 1);
        std::fs::write(&path, text).unwrap();
        (path, socket)
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
        Daemon::run(node, config, socket, &nd.join("log.jsonl"), &[])
    }
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
