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

impl Cluster {
    /// Nodes `names` (two links each, manual fencing), with `extra_cluster` appended to `[cluster]` (e.g.
    /// `notify = "/path"`).
    pub fn new(names: &[&str], extra_cluster: &str) -> Cluster {
        Cluster::build(names, &[], extra_cluster)
    }

    /// [`Cluster::new`] with `extra` nodes in the config whose "addresses" are sockets the test holds (to
    /// capture what the daemons send).
    pub fn build(names: &[&str], extra: &[(&str, Vec<u16>)], extra_cluster: &str) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("cluster.key");
        std::fs::write(&key, format!("{KEY}\n")).unwrap();
        let port = || free_udp_port(Ipv4Addr::LOCALHOST);
        let mut nodes: Vec<(String, Vec<u16>)> = names.iter().map(|n| (n.to_string(), vec![port(), port()])).collect();
        nodes.extend(extra.iter().map(|(n, p)| (n.to_string(), p.clone())));
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
