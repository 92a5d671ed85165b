//! Warnings: legal but questionable settings.

use super::*;

pub(super) fn warn_links(c: &Config, w: &mut Problems) {
    if c.link_count() == 1 {
        w.push("cluster.links", "a single heartbeat link: one network fault looks like a dead node and leads to a fence; add a second, independent link");
    }
    for (i, node) in c.nodes.iter().enumerate() {
        let mut ips = BTreeMap::new();
        for (a, addr) in node.addresses.iter().enumerate() {
            let first = *ips.entry(addr.ip()).or_insert(a);
            if first != a {
                w.push(
                    format!("node[{i}].addresses[{a}]"),
                    format!("same IP as node[{i}].addresses[{first}]: these links are not independent"),
                );
            }
        }
    }
}

pub(super) fn warn_unused_devices(c: &Config, w: &mut Problems) {
    let used: BTreeSet<&str> =
        c.nodes.iter().flat_map(|n| n.fence_levels.iter().flatten()).map(String::as_str).collect();
    for (i, d) in c.fence_devices.iter().enumerate().filter(|(_, d)| !used.contains(d.name.as_str())) {
        w.push(format!("fence_device[{i}]"), format!("\"{}\" is not used in any node's fence_levels", d.name));
    }
}

pub(super) fn warn_fence_race(c: &Config, w: &mut Problems) {
    if let ([a, b], None) = (c.nodes.as_slice(), &c.witness) {
        if a.fence_priority == b.fence_priority {
            w.push("node[1].fence_priority", format!(
                "both nodes have fence_priority {}: give the node that should win a split a higher fence_priority (or add a [witness])", a.fence_priority));
        }
    }
}

impl Config {
    /// Lustre's Imperative Recovery (the MGS telling clients at once where a restarted target now runs, which
    /// halves the recovery window) cannot help when the MGS fails over together with MDT0000: both prefer the
    /// same node, so a crash of that node restarts the MGS with the MDT and the clients must find the new
    /// server by their own timeouts. One `(key, message)` per such MDT0000 (`check-config` and `doctor` warn).
    pub fn imperative_recovery_warnings(&self) -> Vec<(String, String)> {
        let is_mgs = |t: &TargetConfig| t.lctl_device == "MGS" || t.lctl_device.ends_with("-MGS");
        let Some(mgs) = self.targets.iter().find(|t| is_mgs(t)) else { return Vec::new() };
        let Some(home) = mgs.nodes.first() else { return Vec::new() };
        self.targets
            .iter()
            .enumerate()
            .filter(|(_, t)| t.lctl_device.ends_with("-MDT0000") && t.nodes.first() == Some(home))
            .map(|(i, t)| {
                (format!("target[{i}].nodes"), format!(
                    "\"{}\" and the MGS (\"{}\") both run on {home} first: when {home} fails they fail over together and \
                     Imperative Recovery cannot help (the MGS restarts too), so clients reconnect by their own timeouts and \
                     the recovery window can last recovery_time_soft (300 s); prefer another node for one of them",
                    t.name, mgs.name
                ))
            })
            .collect()
    }
}

pub(super) fn warn_targets(c: &Config, w: &mut Problems) {
    if c.targets.is_empty() {
        w.push("target", "no [[target]] defined: this cluster will not run anything");
    }
    for (i, t) in c.targets.iter().enumerate().filter(|(_, t)| t.nodes.len() == 1) {
        w.push(format!("target[{i}].nodes"), format!("only one node can run \"{}\": it cannot fail over", t.name));
    }
}
