//! Checks across sections.

use super::*;

/// Report every value seen a second time. `entries` are (key, value) pairs of clean keys only.
pub(super) fn report_repeats<K: Ord>(p: &mut Problems, entries: Vec<(String, K)>, message: impl Fn(&K, &str) -> String) {
    let mut first: BTreeMap<K, String> = BTreeMap::new();
    let mut repeats = Vec::new();
    for (key, value) in entries {
        match first.get(&value) {
            Some(first_key) => repeats.push((key, message(&value, first_key))),
            None => {
                first.insert(value, key);
            }
        }
    }
    for (key, msg) in repeats {
        p.push(key, msg);
    }
}

/// (key, value) for each entry whose key is clean.
pub(super) fn clean_entries<T, K>(
    p: &Problems,
    items: &[T],
    key: impl Fn(usize) -> String,
    value: impl Fn(&T) -> K,
) -> Vec<(String, K)> {
    items.iter().enumerate().map(|(i, x)| (key(i), value(x))).filter(|(k, _)| p.clean(k)).collect()
}

pub(super) fn check_nodes(c: &Config, p: &mut Problems) {
    if c.nodes.is_empty() && p.clean("node") {
        p.push("node", "no [[node]] defined; list every host of the cluster (two or more to fail over)");
    }
    let names = clean_entries(p, &c.nodes, |i| format!("node[{i}].name"), |n| n.name.clone());
    report_repeats(p, names, |name, first| {
        format!("duplicate node name \"{name}\" (already {first}); every node needs its own name")
    });
    let hostids = clean_entries(p, &c.nodes, |i| format!("node[{i}].hostid"), |n| n.hostid);
    report_repeats(p, hostids, |id, first| {
        format!("hostid {id:08x} is already {first}: ZFS could not tell which host imported a pool; run zgenhostid on one of the nodes and write what hostid prints")
    });
}

pub(super) fn check_addresses(c: &Config, p: &mut Problems) {
    let links = c.link_count();
    let links_clean = p.clean("cluster.links");
    for (i, node) in c.nodes.iter().enumerate() {
        let key = format!("node[{i}].addresses");
        if links_clean && p.clean(&key) && node.addresses.len() != links {
            p.push(
                &key,
                format!("{} but the cluster has {}", count(node.addresses.len(), "address"), count(links, "link")),
            );
        }
    }
    let mut entries = Vec::new();
    for (i, node) in c.nodes.iter().enumerate() {
        let key = format!("node[{i}].addresses");
        if p.clean(&key) {
            entries.extend(node.addresses.iter().enumerate().map(|(a, addr)| (format!("{key}[{a}]"), *addr)));
        }
    }
    if let (Some(w), true) = (&c.witness, p.clean("witness.address")) {
        entries.push(("witness.address".to_owned(), w.address));
    }
    report_repeats(p, dedup_within_nodes(entries), |addr, first| {
        format!("{addr} is already {first}; every node and the witness need their own addresses")
    });
}

/// Repeats inside one node's list were already reported by the node itself: keep the first of each.
pub(super) fn dedup_within_nodes(entries: Vec<(String, SocketAddr)>) -> Vec<(String, SocketAddr)> {
    let mut seen = BTreeSet::new();
    entries
        .into_iter()
        .filter(|(key, addr)| {
            seen.insert((key.split_once(".addresses").map_or(key.as_str(), |(n, _)| n).to_owned(), *addr))
        })
        .collect()
}

pub(super) fn check_fence_levels(c: &Config, p: &mut Problems) {
    let names = clean_entries(p, &c.fence_devices, |i| format!("fence_device[{i}].name"), |d| d.name.clone());
    report_repeats(p, names, |name, first| format!("duplicate fence_device name \"{name}\" (already {first})"));
    let mut owner: BTreeMap<&str, &str> = BTreeMap::new();
    for (i, node) in c.nodes.iter().enumerate() {
        for (l, level) in node.fence_levels.iter().enumerate() {
            let level_key = format!("node[{i}].fence_levels[{l}]");
            for (d, device) in level.iter().enumerate() {
                let key = format!("{level_key}[{d}]");
                if !p.clean(&key) || !p.clean(&format!("fence_device[{}].kind", device_index(c, device))) {
                    continue;
                }
                check_level_device(c, p, &key, node, device, &mut owner);
            }
        }
    }
}

pub(super) fn device_index(c: &Config, name: &str) -> usize {
    c.fence_devices.iter().position(|d| d.name == name).unwrap_or(usize::MAX)
}

pub(super) fn check_level_device<'c>(
    c: &'c Config,
    p: &mut Problems,
    key: &str,
    node: &'c NodeConfig,
    device: &'c str,
    owner: &mut BTreeMap<&'c str, &'c str>,
) {
    let Some(dev) = c.device(device) else { return };
    if matches!(dev.kind, FenceDeviceKind::Manual) {
        return;
    }
    match owner.get(device) {
        Some(other) if *other != node.name => p.push(key, format!(
            "fence_device \"{device}\" already fences node \"{other}\": a device cuts one node's power, so give \"{}\" a [[fence_device]] of its own (its own BMC, outlets or plug)", node.name)),
        _ => {
            owner.insert(device, &node.name);
        }
    }
}

pub(super) fn check_targets(c: &Config, p: &mut Problems) {
    let ts = &c.targets;
    let names = clean_entries(p, ts, |i| format!("target[{i}].name"), |t| t.name.clone());
    report_repeats(p, names, |name, first| format!("duplicate target name \"{name}\" (already {first})"));
    let lctl = clean_entries(p, ts, |i| format!("target[{i}].lctl_device"), |t| t.lctl_device.clone());
    report_repeats(p, lctl, |d, first| {
        let entry = first.rsplit_once('.').map_or(first, |(entry, _)| entry);
        format!("lctl device \"{d}\" is already used by {entry} (lctl_device defaults to the target name); each target has its own Lustre device name")
    });
    let mounts = clean_entries(p, ts, |i| format!("target[{i}].mountpoint"), |t| t.mountpoint.clone());
    report_repeats(p, mounts, |m, first| {
        format!("{} is already {first}; each target needs its own mount point", m.display())
    });
    check_target_storage(c, p);
}

pub(super) fn check_target_storage(c: &Config, p: &mut Problems) {
    let (mut datasets, mut pools, mut devices) = (Vec::new(), Vec::new(), Vec::new());
    for (i, t) in c.targets.iter().enumerate().filter(|(i, _)| p.clean(&format!("target[{i}].kind"))) {
        match &t.kind {
            TargetKind::Zfs { pool, dataset } | TargetKind::ZfsDataset { pool, dataset } => {
                let (pk, dk) = (format!("target[{i}].pool"), format!("target[{i}].dataset"));
                let dataset = (p.clean(&pk) && p.clean(&dk)).then(|| dataset.clone());
                if let Some(ds) = &dataset {
                    datasets.push((dk, ds.clone()));
                }
                if p.clean(&pk) {
                    pools.push((pk, (pool.clone(), dataset)));
                }
            }
            TargetKind::Ldiskfs { device } => devices.push((format!("target[{i}].device"), device.clone())),
        }
    }
    let devices = devices.into_iter().filter(|(k, _)| p.clean(k)).collect();
    report_repeats(p, datasets, |ds, first| {
        format!("dataset {ds} is already {first}; each target needs its own dataset")
    });
    report_repeats(p, devices, |d, first| {
        format!("{} is already {first}; each target needs its own device", d.display())
    });
    report_shared_pools(p, pools);
}

/// Two targets on one pool (unless with the same valid dataset, which is reported on its own).
pub(super) fn report_shared_pools(p: &mut Problems, pools: Vec<(String, (String, Option<String>))>) {
    let mut first: BTreeMap<String, (String, Option<String>)> = BTreeMap::new();
    for (key, (pool, dataset)) in pools {
        match first.get(&pool) {
            Some((first_key, first_ds)) if dataset.is_none() || *first_ds != dataset => p.push(key, format!(
                "pool \"{pool}\" is already {first_key}: failoverd imports and exports a whole pool with each target, so each target needs a pool of its own")),
            Some(_) => {}
            None => {
                first.insert(pool, (key, dataset));
            }
        }
    }
}

pub(super) fn check_fence_delay(c: &Config, p: &mut Problems) {
    if c.nodes.len() == 2 && c.witness.is_none() && c.cluster.fence_delay.is_zero() && p.clean("cluster.fence_delay") {
        p.push("cluster.fence_delay", "0 in a two-node cluster without [witness]: after a split both nodes would fence each other at once; use e.g. \"10s\" (the default) or add a [witness]");
    }
}
