//! Hosts as network namespaces, for the benchmarks that need more than 127.0.0.1: nftables loss rules,
//! keepalived's VRRP multicast, corosync's fixed pid file.
//!
//! Layout for a lab named P with N nodes and L links:
//!
//! ```text
//!   namespace P-sw: bridges br0 .. br{L-1} and the switch ends of the veth pairs (n1l0, n1l1, ...)
//!   namespace P-n1: l0 = 10.77.0.1/24 on br0, l1 = 10.77.1.1/24 on br1, lo
//!   namespace P-n2: l0 = 10.77.0.2/24,        l1 = 10.77.1.2/24,        lo
//! ```
//!
//! Nothing is created in the root namespace: no bridge there, no address, no route, so no packet can leave
//! the machine. Dropping the lab kills every process still in its namespaces and deletes them.

use std::net::Ipv4Addr;
use std::process::Command;
use std::time::SystemTime;

use super::sys::{self, Result};

/// One benchmark's namespaces; torn down on drop.
pub struct Lab {
    name: String,
    switch: Option<String>,
    nodes: Vec<String>,
    links: usize,
}

fn ip() -> Command {
    Command::new("ip")
}

impl Lab {
    /// Build the namespaces, bridges and veth pairs. `name` must be unique on the machine (the suite
    /// derives it from its run prefix) and short: the namespace names are `{name}-sw` and `{name}-n{i}`.
    pub fn create(name: &str, nodes: usize, links: usize) -> Result<Lab> {
        let mut lab = Lab { name: name.to_string(), switch: None, nodes: Vec::new(), links };
        let sw = format!("{name}-sw");
        sys::run(ip().args(["netns", "add", &sw]))?;
        lab.switch = Some(sw.clone());
        for l in 0..links {
            let br = format!("br{l}");
            sys::run(ip().args(["-n", &sw, "link", "add", &br, "type", "bridge"]))?;
            sys::run(ip().args(["-n", &sw, "link", "set", &br, "up"]))?;
        }
        for n in 0..nodes {
            let ns = format!("{name}-n{}", n + 1);
            sys::run(ip().args(["netns", "add", &ns]))?;
            lab.nodes.push(ns.clone());
            sys::run(ip().args(["-n", &ns, "link", "set", "lo", "up"]))?;
            for l in 0..links {
                let host_end = format!("l{l}");
                let switch_end = format!("n{}l{l}", n + 1);
                sys::run(ip().args(["link", "add", &host_end, "netns", &ns, "type", "veth", "peer", "name", &switch_end, "netns", &sw]))?;
                sys::run(ip().args(["-n", &sw, "link", "set", &switch_end, "master", &format!("br{l}")]))?;
                sys::run(ip().args(["-n", &sw, "link", "set", &switch_end, "up"]))?;
                let cidr = format!("{}/24", lab.addr(n, l));
                sys::run(ip().args(["-n", &ns, "addr", "add", &cidr, "dev", &host_end]))?;
                sys::run(ip().args(["-n", &ns, "link", "set", &host_end, "up"]))?;
            }
        }
        tracing::info!(lab = %name, nodes, links, "network namespaces ready");
        Ok(lab)
    }

    /// The address of node `node` (0-based) on link `link`.
    pub fn addr(&self, node: usize, link: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, 77, link as u8, node as u8 + 1)
    }

    /// How many links each node has.
    pub fn links(&self) -> usize {
        self.links
    }

    /// The namespace of node `node` (0-based).
    pub fn ns(&self, node: usize) -> &str {
        &self.nodes[node]
    }

    /// A command that runs `program` inside node `node`'s namespace (`ip netns exec` execs the program, so
    /// the spawned pid is the program's own).
    pub fn command(&self, node: usize, program: &str) -> Command {
        let mut c = ip();
        c.args(["netns", "exec", self.ns(node), program]);
        c
    }

    /// Every process inside node `node`'s namespace.
    pub fn pids(&self, node: usize) -> Result<Vec<i32>> {
        Ok(sys::run(ip().args(["netns", "pids", self.ns(node)]))?.split_whitespace().filter_map(|p| p.parse().ok()).collect())
    }

    /// Power node `node` off: SIGKILL everything in its namespace at once. Returns the time just before the
    /// kill.
    pub fn crash(&self, node: usize) -> Result<SystemTime> {
        let pids = self.pids(node)?;
        if pids.is_empty() {
            return Err(format!("nothing runs in namespace {} to kill", self.ns(node)));
        }
        Ok(sys::kill_and_reap(&pids))
    }

    /// Load an nftables ruleset inside node `node`'s namespace.
    pub fn nft(&self, node: usize, ruleset: &str) -> Result<()> {
        sys::run_with_stdin(ip().args(["netns", "exec", self.ns(node), "nft", "-f", "-"]), Some(ruleset)).map(|_| ())
    }

    /// `nft -j ...` inside node `node`'s namespace, parsed.
    pub fn nft_json(&self, node: usize, args: &[&str]) -> Result<serde_json::Value> {
        let out = sys::run(ip().args(["netns", "exec", self.ns(node), "nft", "-j"]).args(args))?;
        serde_json::from_str(&out).map_err(|e| format!("nft -j {}: unreadable JSON: {e}", args.join(" ")))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in self.nodes.iter().chain(self.switch.iter()) {
            if let Ok(out) = sys::run(ip().args(["netns", "pids", ns])) {
                let pids: Vec<i32> = out.split_whitespace().filter_map(|p| p.parse().ok()).collect();
                sys::kill_and_reap(&pids);
            }
            if let Err(e) = sys::run(ip().args(["netns", "del", ns])) {
                tracing::warn!(namespace = %ns, error = %e, "cannot delete the namespace");
            }
        }
        tracing::info!(lab = %self.name, "network namespaces removed");
    }
}

/// A unique short lab name: the suite's run prefix and the benchmark's tag.
pub fn lab_name(prefix: &str, tag: &str) -> String {
    format!("{prefix}{tag}")
}
