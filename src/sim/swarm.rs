//! Swarm mode: a random cluster (2 to 5 nodes, two-node ones with or without a witness) and a random fault
//! schedule per seed — crashes, power cycles, restarts, partitions, loss, BMC, PDU and storage faults, process
//! pauses (SIGSTOP/SIGCONT), late clocks, witness cuts, operator moves, and in half the seeds the rarer classes
//! of `rare_faults` (one-way cuts, other partition shapes, link delay, replays, lying BMCs, DEGRADED pools,
//! foreign labels, frozen storage, a manual fence level) — ending with a `settle` (every fault
//! stops). The safety invariants are checked after every event; `failoverd simulate --swarm` also checks
//! liveness (`scenario_with(seed, true)`). Half the seeds run with a disk heartbeat (`[cluster]
//! disk_heartbeat`) and draw storage path faults (`path-down`, `path-stall`, `path-restore`) on top, from an
//! RNG of their own, so a seed's other draws do not change with it: every target must then end verified on one live node (or an alert
//! must explain why not). The seed alone rebuilds the whole run, so
//! any failure replays with `--seed`.

use std::fmt::Write;
use std::path::Path;
use std::sync::Arc;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::engine::FaultSwitches;

use super::runner::parallel_runs;
use super::scenario::Scenario;
use super::world::{run_once, RunOptions, RunReport};

/// How long after the faults stop (`settle`) every target must be verified on one live node (or an alert
/// explain why not). The run ends earlier once the cluster has converged.
const LIVENESS_BOUND: u64 = 400;

fn cluster_toml(rng: &mut ChaCha8Rng, nodes: usize, witness: bool, targets: usize, ldiskfs: &[bool]) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "[cluster]\nname = \"swarm\"\nkey_file = \"/etc/failoverd/key\"\nlinks = [\"ring0\", \"ring1\"]");
    let _ = writeln!(t, "heartbeat_interval = \"250ms\"\ndead_after = \"3s\"\nfence_delay = \"10s\"");
    for i in 1..=nodes {
        let _ = writeln!(
            t,
            "[[node]]\nname = \"n{i}\"\naddresses = [\"10.0.0.{i}:7405\", \"10.1.0.{i}:7405\"]\nhostid = \"{:08x}\"\nfence_priority = {}\nfence_levels = [[\"n{i}-ipmi\"], [\"n{i}-pdu\"]]",
            0x1000_0000u32 + i as u32,
            rng.random_range(0..3) * 5 + i
        );
        if rng.random_bool(0.3) {
            // the same BMC through the ClusterLabs agent (a `bmc` fault "hang" leaves it stuck until its timeout)
            let _ = writeln!(
                t,
                "[[fence_device]]\nname = \"n{i}-ipmi\"\nkind = \"agent\"\nprogram = \"fence_ipmilan\"\noptions = {{ ip = \"10.9.0.{i}\", username = \"admin\", lanplus = \"1\" }}\nsecret_options = {{ password = \"/etc/failoverd/ipmi.pw\" }}\ntimeout = \"30s\""
            );
        } else {
            let _ = writeln!(
                t,
                "[[fence_device]]\nname = \"n{i}-ipmi\"\nkind = \"ipmi\"\nhost = \"10.9.0.{i}\"\nusername = \"admin\"\npassword_file = \"/etc/failoverd/ipmi.pw\"\npower_timeout = \"10s\"\ntimeout = \"10s\""
            );
        }
        let _ = writeln!(
            t,
            "[[fence_device]]\nname = \"n{i}-pdu\"\nkind = \"pdu-snmp\"\nhost = \"10.9.1.1\"\ncommunity_file = \"/etc/failoverd/pdu.community\"\noutlets = [{}, {}]\npower_timeout = \"10s\"\ntimeout = \"10s\"",
            2 * i - 1,
            2 * i
        );
    }
    for (k, on_ldiskfs) in ldiskfs.iter().enumerate().take(targets) {
        let first = k % nodes + 1;
        let second = (k + 1) % nodes + 1;
        let name = if k == 0 { "MGT".to_string() } else { format!("lfs-OST{:04}", k - 1) };
        let lctl = if k == 0 { "MGS".to_string() } else { name.clone() };
        let storage = if *on_ldiskfs {
            format!("kind = \"ldiskfs\"\ndevice = \"/dev/mapper/t{k}\"")
        } else {
            format!("kind = \"zfs\"\npool = \"pool{k}\"\ndataset = \"pool{k}/t{k}\"")
        };
        let _ = writeln!(
            t,
            "[[target]]\nname = \"{name}\"\n{storage}\nmountpoint = \"/lustre/t{k}\"\nnodes = [\"n{first}\", \"n{second}\"]\nstart_order = {}\nlctl_device = \"{lctl}\"",
            i32::from(k > 0)
        );
    }
    if witness {
        let _ = writeln!(t, "[witness]\naddress = \"10.0.0.99:7406\"");
    }
    t
}

/// The fault schedule, ending with a `settle` (every fault stops); returns it and the settle's time (s).
fn faults_toml(rng: &mut ChaCha8Rng, nodes: usize, targets: usize, witness: bool, ldiskfs: &[bool]) -> (String, u64) {
    let mut t = String::new();
    let count = rng.random_range(2..7);
    let mut at = 15u64;
    for _ in 0..count {
        at += rng.random_range(5..30);
        let n = rng.random_range(1..=nodes);
        let other = n % nodes + 1;
        let action = match rng.random_range(0..15) {
            0 => format!("action = \"crash\"\nnode = \"n{n}\""),
            1 => format!("action = \"power-off\"\nnode = \"n{n}\""),
            2 => format!("action = \"power-on\"\nnode = \"n{n}\""),
            3 => format!("action = \"restart\"\nnode = \"n{n}\""),
            4 => {
                let rest: Vec<String> = (1..=nodes).filter(|x| *x != n).map(|x| format!("\"n{x}\"")).collect();
                let link = if rng.random_bool(0.5) { String::new() } else { format!("\nlink = {}", rng.random_range(0..2)) };
                format!("action = \"partition\"\ngroups = [[\"n{n}\"], [{}]]{link}", rest.join(", "))
            }
            5 | 6 => "action = \"heal\"".to_string(),
            7 => format!("action = \"loss\"\nlink = {}\nrate = {:.2}", rng.random_range(0..2), rng.random_range(0.0..0.4)),
            8 => {
                let f = ["unreachable", "ok", "slow", "hang"][rng.random_range(0..4)];
                format!("action = \"bmc\"\nnode = \"n{n}\"\nfault = \"{f}\"\ndelay = \"2s\"")
            }
            9 if rng.random_bool(0.5) => {
                // storage faults at takeover time: slow, failing or hanging commands, an unhealthy or
                // suspended pool; cleared again later by `clear`
                let k = rng.random_range(0..targets);
                let name = if k == 0 { "MGT".to_string() } else { format!("lfs-OST{:04}", k - 1) };
                let mut f = ["import-slow", "import-fail", "mount-fail", "umount-hang", "not-healthy", "suspend-pool", "clear", "clear"][rng.random_range(0..8)];
                if ldiskfs[k] && f == "suspend-pool" {
                    f = "mount-fail"; // an ldiskfs target has no pool to suspend
                }
                format!("action = \"storage\"\nnode = \"n{n}\"\nfault = \"{f}\"\ntarget = \"{name}\"")
            }
            9 => {
                let k = rng.random_range(0..targets);
                let name = if k == 0 { "MGT".to_string() } else { format!("lfs-OST{:04}", k - 1) };
                format!("action = \"migrate\"\ntarget = \"{name}\"\nto = \"n{other}\"")
            }
            10 => {
                let via = rng.random_range(1..=nodes);
                format!("action = \"standby\"\nnode = \"n{n}\"\non = {}\nvia = \"n{via}\"", rng.random_bool(0.6))
            }
            11 if rng.random_bool(0.5) => {
                let via = rng.random_range(1..=nodes);
                match rng.random_range(0..3) {
                    0 => format!("action = \"maintenance\"\non = {}\nvia = \"n{via}\"", rng.random_bool(0.4)),
                    1 => format!("action = \"confirm-fenced\"\nnode = \"n{n}\"\nvia = \"n{via}\"\nchecked = true"),
                    _ => format!("action = \"bmc\"\nnode = \"n{n}\"\nfault = \"{}\"", ["wrong-password", "ok"][rng.random_range(0..2)]),
                }
            }
            12 => match rng.random_range(0..3) {
                // a process pause with the same incarnation (SIGSTOP, then SIGCONT): short, about dead_after, long
                0 => format!("action = \"pause\"\nnode = \"n{n}\"\nduration = \"{}ms\"", rng.random_range(500..4000)),
                1 => format!("action = \"pause\"\nnode = \"n{n}\"\nduration = \"{}s\"", rng.random_range(4..40)),
                _ => format!("action = \"pause\"\nnode = \"n{n}\""), // until the settle
            },
            // a late local clock: the node's timers fire late (under stall_threshold, or well over it)
            13 => format!("action = \"clock\"\nnode = \"n{n}\"\nlate = \"{}ms\"", [0, 50, 300, 1500, 2500][rng.random_range(0..5)]),
            14 if witness => format!("action = \"witness-cut\"\nnodes = [\"n{n}\"]"),
            _ => format!("action = \"pdu\"\nnode = \"n{n}\"\nfault = \"{}\"", if rng.random_bool(0.5) { "unreachable" } else { "ok" }),
        };
        let _ = writeln!(t, "[[fault]]\nat = \"{at}s\"\n{action}");
    }
    let settle = at + 10;
    let _ = writeln!(t, "[[fault]]\nat = \"{settle}s\"\naction = \"settle\"");
    (t, settle)
}

/// The world of one seed: pools with or without MMP, the fate of a restarted daemon's leftover commands, the
/// OpenZFS release's timings, and hosts whose `uname -n` is fully qualified.
/// Also says whether the pools run MMP (`multihost`).
fn world_toml(rng: &mut ChaCha8Rng) -> (String, bool) {
    let multihost = !rng.random_bool(0.15);
    let orphans = if rng.random_bool(0.5) { "killed" } else { "unkillable" };
    let openzfs = if rng.random_bool(0.5) { "2.1" } else { "2.3" };
    let domain = if rng.random_bool(0.2) { "domain = \"lab.example\"\n" } else { "" };
    (format!("[world]\nmultihost = {multihost}\norphans = \"{orphans}\"\nopenzfs = \"{openzfs}\"\n{domain}"), multihost)
}

/// The rarer fault classes, drawn in half the seeds from an RNG of their own (so that a seed's other draws stay
/// the same): one-way cuts, partitions of other shapes (two or three groups of any size, the witness on one
/// side), an extra delay on a link, replayed heartbeats, a BMC that lies (says off, the power stays on), a
/// DEGRADED pool, a foreign label, a host whose storage hangs, and a `manual` last-resort fence level for one
/// node (`fence_needs_operator`). A lying BMC is drawn only where MMP
/// guards every target (ZFS pools with `multihost=on`): without it nothing can stop the double import a lying
/// fence device makes, by failoverd or any other HA stack (README, Limits).
fn rare_faults(rng: &mut ChaCha8Rng, nodes: usize, witness: bool, settle: u64, ldiskfs: &[bool], mmp_everywhere: bool, config: &mut toml::Table) -> String {
    let mut t = String::new();
    let names: Vec<String> = (1..=nodes).map(|i| format!("n{i}")).collect();
    for _ in 0..rng.random_range(1..=3) {
        let at = rng.random_range(16..settle.max(17));
        let n = rng.random_range(1..=nodes);
        let other = (n - 1 + rng.random_range(1..nodes)) % nodes + 1;
        let action = match rng.random_range(0..7) {
            0 => {
                let link = if rng.random_bool(0.5) { String::new() } else { format!("\nlink = {}", rng.random_range(0..2)) };
                format!("action = \"cut\"\nfrom = \"n{other}\"\nto = \"n{n}\"{link}")
            }
            1 => {
                // every node in one of two or three groups (none empty)
                let k = if nodes >= 3 && rng.random_bool(0.4) { 3 } else { 2 };
                let mut groups: Vec<Vec<String>> = vec![Vec::new(); k];
                for (i, name) in names.iter().enumerate() {
                    let g = if i < k { i } else { rng.random_range(0..k) };
                    groups[g].push(format!("\"{name}\""));
                }
                let list: Vec<String> = groups.iter().map(|g| format!("[{}]", g.join(", "))).collect();
                let link = if rng.random_bool(0.3) { format!("\nlink = {}", rng.random_range(0..2)) } else { String::new() };
                let side = if witness && rng.random_bool(0.5) { format!("\nwitness_with = \"n{n}\"") } else { String::new() };
                format!("action = \"partition\"\ngroups = [{}]{link}{side}", list.join(", "))
            }
            2 => format!("action = \"delay\"\nlink = {}\ndelay = \"{}ms\"", rng.random_range(0..2), [40, 400, 1500, 2800][rng.random_range(0..4)]),
            3 => format!("action = \"replay\"\nnode = \"n{n}\""),
            4 if mmp_everywhere => format!("action = \"bmc\"\nnode = \"n{n}\"\nfault = \"lying\""),
            5 => {
                // the rarer storage faults: a pool that lost a disk (DEGRADED, it still serves), a label that names
                // a host outside the cluster (the takeover must refuse it), a host whose storage hangs (thawed by
                // the settle)
                let zfs: Vec<usize> = (0..ldiskfs.len()).filter(|k| !ldiskfs[*k]).collect();
                let k = zfs[rng.random_range(0..zfs.len())];
                let name = if k == 0 { "MGT".to_string() } else { format!("lfs-OST{:04}", k - 1) };
                match rng.random_range(0..3) {
                    0 => format!("action = \"storage\"\nnode = \"n{n}\"\nfault = \"degraded\"\ntarget = \"{name}\""),
                    // at 16 s, before any fault of the schedule, so that no takeover is between its label check and
                    // its import when the label changes (that window is the same for any procedure: zdb, then
                    // `zpool import`; a foreign host that imported the pool in it would hold it under MMP)
                    1 => {
                        let _ = writeln!(t, "[[fault]]\nat = \"16s\"\naction = \"storage\"\nnode = \"n{n}\"\nfault = \"foreign-label\"\ntarget = \"{name}\"");
                        continue;
                    }
                    _ => format!("action = \"storage\"\nnode = \"n{n}\"\nfault = \"freeze\""),
                }
            }
            _ => "action = \"heal\"".to_string(),
        };
        let _ = writeln!(t, "[[fault]]\nat = \"{at}s\"\n{action}");
    }
    if rng.random_bool(0.3) {
        // a manual device as the last level of one node: when its BMC and PDU fail, an operator must act
        let n = rng.random_range(1..=nodes);
        let device = format!("n{n}-manual");
        if let Some(toml::Value::Array(devices)) = config.get_mut("fence_device") {
            let mut d = toml::Table::new();
            d.insert("name".into(), toml::Value::String(device.clone()));
            d.insert("kind".into(), toml::Value::String("manual".into()));
            devices.push(toml::Value::Table(d));
        }
        if let Some(toml::Value::Array(list)) = config.get_mut("node") {
            if let Some(toml::Value::Table(node)) = list.get_mut(n - 1) {
                if let Some(toml::Value::Array(levels)) = node.get_mut("fence_levels") {
                    levels.push(toml::Value::Array(vec![toml::Value::String(device)]));
                }
            }
        }
    }
    t
}

/// The random scenario of one seed, checking safety only (see [`scenario_with`]).
pub fn scenario(seed: u64) -> Scenario {
    scenario_with(seed, false)
}

/// The random scenario of one seed; with `liveness`, the run must also end with every target verified on one
/// live node after the faults stop (or an alert that explains why not: `sim/world/liveness.rs`).
pub fn scenario_with(seed: u64, liveness: bool) -> Scenario {
    let text = scenario_text(seed, liveness);
    match Scenario::parse(&text, Path::new("swarm.toml")) {
        Ok(s) => s,
        Err(e) => panic!("swarm scenario of seed {seed} is invalid (a bug in swarm.rs): {e}\n{text}"),
    }
}

/// The random scenario of one seed as a scenario file's text (`failoverd simulate --swarm --seed N
/// --print-scenario`): what turns a failing seed into a file of `simulations/`.
pub fn scenario_text(seed: u64, liveness: bool) -> String {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5a5a_5a5a_5a5a_5a5a);
    let nodes = if rng.random_bool(0.15) { rng.random_range(4..=5) } else { rng.random_range(2..=3) };
    let witness = nodes == 2 && rng.random_bool(0.3);
    let targets = rng.random_range(1..=3);
    // an OST on ldiskfs (a shared block device, no MMP and no label check) beside the ZFS ones
    let ldiskfs: Vec<bool> = (0..targets).map(|k| k > 0 && rng.random_bool(0.2)).collect();
    let mut config = toml::Table::new();
    if let Ok(t) = cluster_toml(&mut rng, nodes, witness, targets, &ldiskfs).parse::<toml::Table>() {
        config = t;
    }
    let (world, multihost) = world_toml(&mut rng);
    let (mut faults, settle) = faults_toml(&mut rng, nodes, targets, witness, &ldiskfs);
    // the disk heartbeat and its path faults come from their own RNG: the seed's other draws stay the same
    let mut disk_rng = ChaCha8Rng::seed_from_u64(seed ^ 0xd15c_d15c_d15c_d15c);
    if disk_rng.random_bool(0.5) {
        if let Some(toml::Value::Table(cluster)) = config.get_mut("cluster") {
            cluster.insert("disk_heartbeat".into(), toml::Value::String("/dev/disk/by-id/swarm-hb".into()));
        }
        for _ in 0..disk_rng.random_range(0..4) {
            let at = disk_rng.random_range(16..settle.max(17));
            let n = disk_rng.random_range(1..=nodes);
            let f = ["path-down", "path-stall", "path-stall", "path-restore"][disk_rng.random_range(0..4)];
            let _ = writeln!(faults, "[[fault]]\nat = \"{at}s\"\naction = \"storage\"\nnode = \"n{n}\"\nfault = \"{f}\"");
        }
    }
    let mut rare_rng = ChaCha8Rng::seed_from_u64(seed ^ 0x0e47_0e47_0e47_0e47);
    if rare_rng.random_bool(0.5) {
        let mmp_everywhere = multihost && !ldiskfs.iter().any(|l| *l);
        faults.push_str(&rare_faults(&mut rare_rng, nodes, witness, settle, &ldiskfs, mmp_everywhere, &mut config));
    }
    let duration = settle + LIVENESS_BOUND;
    let head = format!("[scenario]\nname = \"swarm-{seed}\"\nduration = \"{duration}s\"\n\n{world}\n[expect]\nliveness = {liveness}\n\n{faults}");
    let mut root: toml::Table = head.parse().unwrap_or_default();
    root.insert("config".into(), toml::Value::Table(config));
    // an operator's drift: one node runs with another dead_after or fence_delay (config_mismatch; fencing
    // the nodes that disagree is blocked, `fence_blocked`)
    if rng.random_bool(0.05) {
        let n = rng.random_range(1..=nodes);
        let drift = if rng.random_bool(0.5) { "dead_after = \"5s\"" } else { "fence_delay = \"15s\"" };
        if let Ok(t) = format!("[n{n}.cluster]\n{drift}").parse::<toml::Table>() {
            root.insert("node_config".into(), toml::Value::Table(t));
        }
    }
    toml::to_string(&root).unwrap_or_default()
}

/// Run every seed's random scenario (safety only).
pub fn run(seeds: &[u64], faults: FaultSwitches, threads: usize) -> Vec<RunReport> {
    run_with(seeds, faults, threads, false)
}

/// Run every seed's random scenario, with or without the liveness checks.
pub fn run_with(seeds: &[u64], faults: FaultSwitches, threads: usize, liveness: bool) -> Vec<RunReport> {
    parallel_runs(seeds, threads, |seed| run_once(Arc::new(scenario_with(seed, liveness)), RunOptions { seed, keep_trace: false, faults }))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::scenario_text;

    /// What one seed's scenario draws, as names such as `action:crash`, `storage:freeze` or `world:openzfs=2.3`.
    fn drawn(seed: u64) -> Vec<String> {
        let text = scenario_text(seed, true);
        let root: toml::Table = text.parse().unwrap_or_else(|e| panic!("seed {seed}: {e}\n{text}"));
        let mut out = Vec::new();
        let str_of = |t: &toml::Table, k: &str| t.get(k).and_then(|v| v.as_str()).map(str::to_string);
        for f in root.get("fault").and_then(|v| v.as_array()).into_iter().flatten().filter_map(|v| v.as_table()) {
            let action = str_of(f, "action").unwrap_or_default();
            out.push(format!("action:{action}"));
            if let Some(fault) = str_of(f, "fault") {
                out.push(format!("{action}:{fault}"));
            }
            if action == "partition" {
                let groups = f.get("groups").and_then(|g| g.as_array()).map_or(0, Vec::len);
                out.push(format!("partition:{groups}-groups"));
                if f.contains_key("witness_with") {
                    out.push("partition:witness_with".into());
                }
            }
        }
        if let Some(world) = root.get("world").and_then(|v| v.as_table()) {
            for (k, v) in world {
                let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                out.push(if k == "domain" { "world:domain".into() } else { format!("world:{k}={v}") });
            }
        }
        let config = root.get("config").and_then(|v| v.as_table()).cloned().unwrap_or_default();
        let nodes = config.get("node").and_then(|v| v.as_array()).map_or(0, Vec::len);
        out.push(format!("nodes:{nodes}"));
        if config.contains_key("witness") {
            out.push("config:witness".into());
        }
        if config.get("cluster").and_then(|c| c.get("disk_heartbeat")).is_some() {
            out.push("config:disk_heartbeat".into());
        }
        for d in config.get("fence_device").and_then(|v| v.as_array()).into_iter().flatten().filter_map(|v| v.as_table()) {
            out.push(format!("fence_device:{}", str_of(d, "kind").unwrap_or_default()));
        }
        for t in config.get("target").and_then(|v| v.as_array()).into_iter().flatten().filter_map(|v| v.as_table()) {
            out.push(format!("target:{}", str_of(t, "kind").unwrap_or_default()));
        }
        if root.contains_key("node_config") {
            out.push("node_config".into());
        }
        out.sort();
        out.dedup();
        out
    }

    /// Issue #10's million is "with every fault class drawn": this fails when a class is no longer drawn in the
    /// first 3,000 seeds (a draw removed, or made unreachable by an edit of the RNG's order). The counts are
    /// printed (`cargo nextest run swarm_draws --no-capture`).
    #[test]
    fn swarm_draws_every_fault_class() {
        let mut seeds_drawing: BTreeMap<String, u32> = BTreeMap::new();
        for seed in 1..=3000 {
            for name in drawn(seed) {
                *seeds_drawing.entry(name).or_default() += 1;
            }
        }
        for (name, n) in &seeds_drawing {
            eprintln!("{n:>5} seeds of 3000 draw {name}");
        }
        let expected = [
            "action:crash", "action:power-off", "action:power-on", "action:restart", "action:partition", "action:heal",
            "action:loss", "action:migrate", "action:standby", "action:maintenance", "action:confirm-fenced",
            "action:pause", "action:clock", "action:witness-cut", "action:cut", "action:delay", "action:replay",
            "action:settle", "action:bmc", "action:pdu", "action:storage", "bmc:unreachable", "bmc:ok", "bmc:slow", "bmc:hang", "bmc:wrong-password", "bmc:lying",
            "pdu:unreachable", "pdu:ok", "storage:import-slow", "storage:import-fail", "storage:mount-fail",
            "storage:umount-hang", "storage:not-healthy", "storage:suspend-pool", "storage:clear", "storage:degraded",
            "storage:foreign-label", "storage:freeze", "storage:path-down", "storage:path-stall",
            "storage:path-restore", "partition:2-groups", "partition:3-groups", "partition:witness_with",
            "world:multihost=true", "world:multihost=false", "world:orphans=killed", "world:orphans=unkillable",
            "world:openzfs=2.1", "world:openzfs=2.3", "world:domain", "nodes:2", "nodes:3", "nodes:4", "nodes:5",
            "config:witness", "config:disk_heartbeat", "fence_device:ipmi", "fence_device:pdu-snmp",
            "fence_device:agent", "fence_device:manual", "target:zfs", "target:ldiskfs", "node_config",
        ];
        let missing: Vec<&str> = expected.iter().copied().filter(|e| !seeds_drawing.contains_key(*e)).collect();
        assert!(missing.is_empty(), "the swarm no longer draws {missing:?} in seeds 1-3000");
        let unknown: Vec<&String> = seeds_drawing.keys().filter(|k| !expected.contains(&k.as_str())).collect();
        assert!(unknown.is_empty(), "the swarm draws {unknown:?}, which this test does not list: add them");
    }
}
