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

// The namespace builder the integration tests' lab uses too (tests/support/netns.rs); that lab also uses
// the teardown helpers this suite does not need.
#[path = "../../tests/support/netns.rs"]
#[allow(dead_code)]
mod netns;

/// One benchmark's namespaces; torn down on drop.
pub struct Lab {
    name: String,
    switch: Option<String>,
    nodes: Vec<String>,
    links: usize,
}

impl Lab {
    /// Build the namespaces, bridges and veth pairs. `name` must be unique on the machine (the suite
    /// derives it from its run prefix) and short: the namespace names are `{name}-sw` and `{name}-n{i}`.
    pub fn create(name: &str, nodes: usize, links: usize) -> Result<Lab> {
        let mut lab = Lab { name: name.to_string(), switch: None, nodes: Vec::new(), links };
        let sw = format!("{name}-sw");
        netns::add_namespace(&sw)?;
        lab.switch = Some(sw.clone());
        for l in 0..links {
            netns::add_bridge(Some(&sw), &format!("br{l}"))?;
        }
        for n in 0..nodes {
            let ns = format!("{name}-n{}", n + 1);
            netns::add_namespace(&ns)?;
            lab.nodes.push(ns.clone());
            for l in 0..links {
                let addr = lab.addr(n, l).to_string();
                netns::add_port(Some(&sw), &format!("br{l}"), &format!("n{}l{l}", n + 1), &ns, &format!("l{l}"), &[addr])?;
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
        netns::command_in(self.ns(node), program)
    }

    /// Every process inside node `node`'s namespace.
    pub fn pids(&self, node: usize) -> Result<Vec<i32>> {
        Ok(netns::pids_in(self.ns(node)))
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
        netns::run_with(&["ip", "netns", "exec", self.ns(node), "nft", "-f", "-"], Some(ruleset)).map(|_| ())
    }

    /// `nft -j ...` inside node `node`'s namespace, parsed.
    pub fn nft_json(&self, node: usize, args: &[&str]) -> Result<serde_json::Value> {
        let mut argv = vec!["nft", "-j"];
        argv.extend_from_slice(args);
        let out = netns::run_in(self.ns(node), &argv)?;
        serde_json::from_str(&out).map_err(|e| format!("nft -j {}: unreadable JSON: {e}", args.join(" ")))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in self.nodes.iter().chain(self.switch.iter()) {
            sys::kill_and_reap(&netns::pids_in(ns));
            if let Err(e) = netns::delete_namespace(ns) {
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
