//! Multi-host end-to-end cases: failoverd hosts as network namespaces (two heartbeat bridges, a management
//! bridge), real `failoverd run` daemons, real IPMI fencing through OpenIPMI's `ipmi_sim`, and the simulated
//! SAN answering every host's zpool/zdb/zfs/mount/umount/df/lctl (see tests/support/lab/mod.rs).
//!
//! Every case ends with the same proofs: where each target runs according to the SAN, `sim-san check` clean
//! (no pool imported and no target mounted on two powered hosts, no forced import while the last owner was
//! powered, at any moment of the run), and the order of what the daemons logged.
//!
//! Needs root, ip, nft, ipmi_sim, ipmitool: without them each case is skipped with the reason printed, except
//! under CI=true where that is a failure. Timings: heartbeat 100 ms, dead_after 1 s, fence_delay 2 s, MMP
//! activity check 2 s (OpenZFS: 20-25 s). Labs run one at a time (a machine-wide lock).
//!
//! The end-to-end failover time (kill → every target verified on the survivor) is a benchmark, not a test:
//! `cargo bench --bench failover -- --rounds 5 --mmp-wait 2s` (benches/failover.rs, same harness).

use std::time::{Duration, SystemTime};

use crate::support::lab::{self, Lab, LabSpec};

/// Longest a takeover may take here: detection, fence_delay, fence, then per target zdb -e (~4 s), the import
/// with its MMP check, mount (1-3 s) and verification.
const TAKEOVER: Duration = Duration::from_secs(90);

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

fn since(t0: SystemTime, t: SystemTime) -> Duration {
    t.duration_since(t0).unwrap_or_default()
}

/// The forced takeover of every target on `node`'s log: the pools are checked and imported side by side, so
/// what keeps start order is the mount: each target's mount starts only after the lower start_order targets
/// were verified (sequence_done).
fn forced_steps(spec: &LabSpec) -> Vec<(&'static str, Vec<(&'static str, String)>)> {
    let mut targets = spec.targets.clone();
    targets.sort_by_key(|t| t.start_order);
    let mut out = Vec::new();
    for t in targets {
        let step = |s: &str| vec![("target", t.name.clone()), ("sequence", "forced".to_string()), ("step", s.to_string())];
        out.push(("step_started", step("mount")));
        out.push(("sequence_done", vec![("target", t.name.clone()), ("sequence", "forced".to_string())]));
    }
    out
}

/// Every target's forced sequence started after `after` and before the first target's mount: the imports
/// overlap instead of running one after the other.
fn imports_overlap(lab: &Lab, host: &str, after: SystemTime) {
    let log = lab.log(host);
    let first_mount = log.first(after, "step_started", &[("step", "mount"), ("sequence", "forced")]);
    for t in &lab.spec.targets {
        let started = log.first(after, "sequence_started", &[("target", &t.name), ("sequence", "forced")]);
        match (started, first_mount) {
            (Some(s), Some(m)) if s.time() <= m.time() => {}
            _ => lab.fail(&format!("{}: its forced sequence did not start before the first mount: {}", t.name, log.summary(after))),
        }
    }
}

/// `in_order` with owned step values.
fn in_order(lab: &Lab, host: &str, after: SystemTime, steps: &[(&str, Vec<(&str, String)>)]) -> Vec<SystemTime> {
    let log = lab.log(host);
    let borrowed: Vec<Vec<(&str, &str)>> = steps.iter().map(|(_, w)| w.iter().map(|(k, v)| (*k, v.as_str())).collect()).collect();
    let steps: Vec<(&str, &[(&str, &str)])> = steps.iter().zip(&borrowed).map(|((n, _), w)| (*n, w.as_slice())).collect();
    lab.ok(log.in_order(after, &steps)).into_iter().map(|l| l.time()).collect()
}

fn with(pairs: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
}

/// mds1's daemon dies (SIGKILL) while mds1 stays powered and keeps its pools imported: mds2 declares it dead,
/// waits its fence_delay (it has the lower fence_priority), powers mds1 off through mds1's BMC, confirms it
/// off, and takes MGT then MDT0000 over with the forced sequence.
#[test]
fn crash_is_fenced_then_taken_over() {
    let Some(lab) = Lab::start("crash_is_fenced_then_taken_over", LabSpec::two_node()) else { return };
    let killed = lab.ok(lab.kill_daemon("mds1"));
    lab.ok(lab.wait_all_on("mds2", TAKEOVER));
    lab.assert_safe();
    if lab.ok(lab.powered("mds1")) {
        lab.fail("mds1 is still powered after the takeover");
    }
    if lab.daemon_pid("mds1").is_some() {
        lab.fail("mds1's namespace still runs a daemon after its power-off");
    }

    let mut steps = vec![
        ("peer_dead", with(&[("node", "mds1")])),
        ("fence_delayed", with(&[("node", "mds1"), ("delay_ms", "2000")])),
        ("fence_started", with(&[("node", "mds1")])),
        ("fence_confirmed", with(&[("node", "mds1")])),
    ];
    steps.extend(forced_steps(&lab.spec));
    let times = in_order(&lab, "mds2", killed, &steps);
    imports_overlap(&lab, "mds2", killed);
    let detected = since(killed, times[0]);
    // never convicted before dead_after of silence
    let dead = lab.log("mds2").first(killed, "peer_dead", &[("node", "mds1")]).map(|l| l.detail["silent_ms"].as_u64());
    if dead.flatten().is_none_or(|ms| u128::from(ms) < lab.spec.dead_after.as_millis()) {
        lab.fail(&format!("mds2 declared mds1 dead after less than dead_after of silence: silent_ms {dead:?}"));
    }

    // The SAN's own record: mds1 lost power before mds2's first forced import, and both imports succeeded.
    let history = lab.ok(lab.san_history());
    let off = history.iter().position(|r| r["kind"] == "power" && r["host"] == "mds1" && r["on"] == false);
    let Some(off) = off else { lab.fail("the SAN never saw mds1 powered off") };
    let forced: Vec<(usize, &serde_json::Value)> = history
        .iter()
        .enumerate()
        .filter(|(_, r)| r["kind"] == "command" && r["argv"][0] == "zpool" && r["argv"][1] == "import")
        .filter(|(_, r)| r["argv"].as_array().is_some_and(|a| a.iter().any(|x| x == "-f")))
        .collect();
    if forced.len() != 2 || forced.iter().any(|(i, r)| *i < off || r["host"] != "mds2" || r["exit"] != "exit 0") {
        lab.fail(&format!("expected two successful forced imports on mds2 after mds1's power-off, got {forced:?}"));
    }
    eprintln!(
        "crash: peer_dead +{}, fence_confirmed +{}, all targets verified on mds2 +{}",
        secs(detected),
        secs(since(killed, times[3])),
        secs(since(killed, *times.last().unwrap_or(&killed)))
    );
}

/// Cutting one of the two heartbeat links is a warning, not a failure: both nodes log link_down for that
/// link, status shows it down, nobody is declared dead or fenced, the targets stay. Healing brings it up.
#[test]
fn one_link_cut_is_not_a_failover() {
    let Some(lab) = Lab::start("one_link_cut_is_not_a_failover", LabSpec::two_node()) else { return };
    let before = lab.ok(lab.placement());
    let cut_at = SystemTime::now();
    lab.ok(lab.cut("mds1", 1));
    for (host, peer) in [("mds2", "mds1"), ("mds1", "mds2")] {
        lab.ok(lab::wait_for(&format!("{host} to log link_down for {peer} link 1"), Duration::from_secs(10), || {
            lab.log(host).first(cut_at, "link_down", &[("node", peer), ("link", "1")]).map(|_| ())
        }));
    }
    let link = |host: &str, peer: &str, i: usize| -> (bool, bool) {
        let st = lab.ok(lab.status(host));
        let p = st["peers"].as_array().into_iter().flatten().find(|p| p["node"] == peer).cloned().unwrap_or_default();
        (p["alive"] == true, p["links"][i]["up"] == true)
    };
    if link("mds2", "mds1", 1) != (true, false) || link("mds2", "mds1", 0) != (true, true) {
        lab.fail(&format!("mds2's status should show mds1 alive with ring1 down: {}", lab.ok(lab.status("mds2"))["peers"]));
    }
    // a few more dead_after periods on one link (a deliberate wait): still nobody dead, nothing fenced, nothing moved
    std::thread::sleep(lab.spec.dead_after * 3);
    for host in ["mds1", "mds2"] {
        let log = lab.log(host);
        for bad in ["peer_dead", "fence_started", "sequence_started"] {
            if log.count(cut_at, bad, &[]) > 0 {
                lab.fail(&format!("{host} logged {bad} with one link cut: {}", log.summary(cut_at)));
            }
        }
    }
    if lab.ok(lab.placement()) != before {
        lab.fail("targets moved while one link was cut");
    }

    let healed_at = SystemTime::now();
    lab.ok(lab.heal("mds1", 1));
    for (host, peer) in [("mds2", "mds1"), ("mds1", "mds2")] {
        lab.ok(lab::wait_for(&format!("{host} to log link_up for {peer} link 1"), Duration::from_secs(10), || {
            lab.log(host).first(healed_at, "link_up", &[("node", peer), ("link", "1")]).map(|_| ())
        }));
    }
    if link("mds2", "mds1", 1) != (true, true) {
        lab.fail("mds2's status should show ring1 up again");
    }
    lab.assert_safe();
    if lab.ok(lab.placement()) != before || !lab.ok(lab.powered("mds1")) || !lab.ok(lab.powered("mds2")) {
        lab.fail("the link cut changed placement or power");
    }
}

/// Both links cut between the two nodes, no witness: a symmetric split. mds1 (fence_priority 10) fences at
/// once, mds2 (5) waits fence_delay first and is powered off before its delay ends: exactly one node is
/// off, and mds1 runs everything, including MDT0000, which mds2 was running.
#[test]
fn full_partition_without_witness_leaves_one_node() {
    let spec = LabSpec::two_node().owners(&["MGT=mds1", "MDT0000=mds2"]).prefer("MDT0000", &["mds2", "mds1"]);
    let Some(lab) = Lab::start("full_partition_without_witness_leaves_one_node", spec) else { return };
    let cut_at = SystemTime::now();
    lab.ok(lab.isolate("mds1"));
    lab.ok(lab.wait_all_on("mds1", TAKEOVER));
    let (p1, p2) = (lab.ok(lab.powered("mds1")), lab.ok(lab.powered("mds2")));
    if (p1, p2) != (true, false) {
        lab.fail(&format!("expected mds1 powered and mds2 off, got mds1 {p1} mds2 {p2}"));
    }
    let mut steps = vec![
        ("peer_dead", with(&[("node", "mds2")])),
        ("fence_started", with(&[("node", "mds2")])),
        ("fence_confirmed", with(&[("node", "mds2")])),
    ];
    steps.push(("sequence_done", with(&[("target", "MDT0000"), ("sequence", "forced")])));
    in_order(&lab, "mds1", cut_at, &steps);
    let victim = lab.log("mds2");
    if victim.count(cut_at, "fence_started", &[("node", "mds1")]) > 0 {
        lab.fail(&format!("mds2 started fencing mds1 although it had to wait fence_delay: {}", victim.summary(cut_at)));
    }
    // The race is over: mds2 stays off and mds1 never fences again (a deliberate wait: nothing may happen).
    std::thread::sleep(lab.spec.fence_delay + lab.spec.dead_after);
    if lab.ok(lab.powered("mds2")) || lab.log("mds1").count(cut_at, "fence_started", &[]) != 1 {
        lab.fail("after the race: mds2 must stay off and mds1 must have fenced exactly once");
    }
    lab.assert_safe();
}

/// Same split with a witness on the ring networks: mds1 is cut off from mds2 and from the witness. mds2 holds
/// the witness's vote, so mds2 fences mds1 (although mds1 has the higher fence_priority) and takes over; mds1,
/// without quorum, fences nobody.
#[test]
fn full_partition_with_witness_the_witness_side_wins() {
    let spec = LabSpec::two_node().with_witness();
    let Some(lab) = Lab::start("full_partition_with_witness_the_witness_side_wins", spec) else { return };
    let cut_at = SystemTime::now();
    lab.ok(lab.isolate("mds1"));
    lab.ok(lab.wait_all_on("mds2", TAKEOVER));
    if lab.ok(lab.powered("mds1")) || !lab.ok(lab.powered("mds2")) {
        lab.fail("expected mds1 off and mds2 powered");
    }
    let mut steps = vec![
        ("peer_dead", with(&[("node", "mds1")])),
        ("fence_started", with(&[("node", "mds1")])),
        ("fence_confirmed", with(&[("node", "mds1")])),
    ];
    steps.extend(forced_steps(&lab.spec));
    in_order(&lab, "mds2", cut_at, &steps);
    let loser = lab.log("mds1");
    if loser.count(cut_at, "fence_started", &[]) > 0 {
        lab.fail(&format!("mds1 fenced without the witness's vote: {}", loser.summary(cut_at)));
    }
    // mds2, alone, is quorate through the witness's vote
    let quorum = &lab.ok(lab.status("mds2"))["quorum"];
    if quorum["quorate"] != true || quorum["witness_vote"] != true {
        lab.fail(&format!("mds2 should be quorate with the witness's vote: {quorum}"));
    }
    lab.assert_safe();
}

/// `failoverd migrate MGT --to mds2`: mds1 unmounts and exports, mds2 imports without `-f` and mounts. No
/// fence, both nodes stay powered, MDT0000 stays on mds1.
#[test]
fn controlled_migration_needs_no_fence_and_no_force() {
    let Some(lab) = Lab::start("controlled_migration_needs_no_fence_and_no_force", LabSpec::two_node()) else { return };
    let asked = SystemTime::now();
    lab.ok(lab.migrate("mds1", "MGT", "mds2"));
    // the SAN shows the mount before mds2 has verified it: wait for mds2 to say it runs MGT
    lab.ok(lab::wait_for("MGT to run on mds2 and MDT0000 on mds1", TAKEOVER, || {
        let p = lab.placement().ok()?;
        let st = lab.status("mds2").ok()?;
        let running = st["targets"].as_array()?.iter().any(|t| t["target"] == "MGT" && t["local"] == "running");
        (running && p["MGT"] == ["mds2"] && p["MDT0000"] == ["mds1"]).then_some(())
    }));
    in_order(&lab, "mds1", asked, &[("sequence_done", with(&[("target", "MGT"), ("sequence", "release")]))]);
    in_order(&lab, "mds2", asked, &[("sequence_done", with(&[("target", "MGT"), ("sequence", "acquire")]))]);
    for host in ["mds1", "mds2"] {
        if lab.log(host).count(asked, "fence_started", &[]) > 0 {
            lab.fail(&format!("{host} fenced during a controlled migration"));
        }
        if !lab.ok(lab.powered(host)) {
            lab.fail(&format!("{host} lost power during a controlled migration"));
        }
    }
    let imports = lab.ok(lab.san_commands(&["zpool", "import"]));
    if imports.iter().any(|(_, argv, _)| argv.iter().any(|a| a == "-f")) {
        lab.fail(&format!("a controlled migration used zpool import -f: {imports:?}"));
    }
    let exports = lab.ok(lab.san_commands(&["zpool", "export", "mgspool"]));
    let ok_import = imports.iter().any(|(h, argv, exit)| h == "mds2" && argv.last().is_some_and(|p| p == "mgspool") && exit == "exit 0");
    if !ok_import || !exports.iter().any(|(h, _, exit)| h == "mds1" && exit == "exit 0") {
        lab.fail(&format!("expected mds1 to export mgspool and mds2 to import it: exports {exports:?} imports {imports:?}"));
    }
    lab.assert_safe();
}

/// After the split is decided (mds1 fenced mds2), mds2 is powered back on through its BMC while the partition
/// persists. Its daemon starts, has never seen mds1 since it started (wait_for_all), and fences nobody; mds1
/// does not fence it again either. Healing the partition brings mds2 back as a member, still without a fence.
#[test]
fn fenced_node_back_in_a_partition_does_not_fence() {
    let spec = LabSpec::two_node().owners(&["MGT=mds1", "MDT0000=mds2"]).prefer("MDT0000", &["mds2", "mds1"]);
    let Some(lab) = Lab::start("fenced_node_back_in_a_partition_does_not_fence", spec) else { return };
    lab.ok(lab.isolate("mds1"));
    lab.ok(lab.wait_all_on("mds1", TAKEOVER));
    if lab.ok(lab.powered("mds2")) {
        lab.fail("mds2 should have been fenced by mds1");
    }

    let on_at = SystemTime::now();
    lab.ok(lab.bmc_power("mds2", true));
    lab.ok(lab::wait_for("mds2's daemon to boot and answer", Duration::from_secs(20), || lab.status("mds2").ok()));
    // a deliberate wait, long enough for a fence from either side: detection, the fence_delay, retries
    std::thread::sleep(lab.spec.dead_after * 3 + lab.spec.fence_delay * 2);
    let st = lab.ok(lab.status("mds2"));
    if st["quorum"]["quorate"] != false {
        lab.fail(&format!("mds2 alone, never having seen mds1, must not be quorate: {}", st["quorum"]));
    }
    for host in ["mds1", "mds2"] {
        if lab.log(host).count(on_at, "fence_started", &[]) > 0 {
            lab.fail(&format!("{host} fenced after mds2 came back during the partition: {}", lab.log(host).summary(on_at)));
        }
    }
    if !lab.ok(lab.powered("mds1")) || !lab.ok(lab.powered("mds2")) {
        lab.fail("both nodes should be powered");
    }
    if lab.ok(lab.placement()).values().any(|on| on != &["mds1"]) {
        lab.fail("every target should still run on mds1");
    }

    lab.ok(lab.heal("mds1", 0));
    lab.ok(lab.heal("mds1", 1));
    lab.ok(lab.wait_settled(Duration::from_secs(60)));
    for host in ["mds1", "mds2"] {
        if lab.log(host).count(on_at, "fence_started", &[]) > 0 {
            lab.fail(&format!("{host} fenced after the partition healed"));
        }
    }
    lab.assert_safe();
}

/// Three nodes, quorum two of three: mds1's daemon dies; one of the two survivors fences it, and mds2 (the
/// next in the targets' preference order) takes both targets over. Exactly one fence.
#[test]
fn three_nodes_crash_one_fence_one_takeover() {
    let Some(lab) = Lab::start("three_nodes_crash_one_fence_one_takeover", LabSpec::three_node()) else { return };
    let killed = lab.ok(lab.kill_daemon("mds1"));
    lab.ok(lab.wait_all_on("mds2", TAKEOVER));
    if lab.ok(lab.powered("mds1")) || !lab.ok(lab.powered("mds3")) {
        lab.fail("expected mds1 off and mds3 still powered");
    }
    let fences: usize = ["mds2", "mds3"].iter().map(|h| lab.log(h).count(killed, "fence_confirmed", &[("node", "mds1")])).sum();
    if fences != 1 {
        lab.fail(&format!("expected exactly one confirmed fence of mds1, got {fences}"));
    }
    in_order(&lab, "mds2", killed, &forced_steps(&lab.spec));
    imports_overlap(&lab, "mds2", killed);
    lab.assert_safe();
}

/// Wait until every target is mounted on exactly one powered host whose daemon says it runs it; the placement.
fn wait_each_target_once(lab: &Lab, timeout: Duration) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut last = String::new();
    let found = lab::wait_for("every target to run on exactly one host", timeout, || {
        let placement = lab.placement().ok()?;
        last = format!("{placement:?}");
        for (target, on) in &placement {
            let [owner] = on.as_slice() else { return None };
            let st = lab.status(owner).ok()?;
            let running = st["targets"].as_array()?.iter().any(|t| t["target"] == target.as_str() && t["local"] == "running");
            if !running {
                return None;
            }
        }
        Some(placement)
    });
    match found {
        Ok(p) => p,
        Err(e) => lab.fail(&format!("{e}; last placement {last}")),
    }
}

/// A daemon killed (SIGKILL) in the middle of a controlled migration and started again at once: the restarted
/// daemon rediscovers what its host really holds (`zpool list`, /proc/mounts) before it claims anything, so
/// the moving target ends on exactly one host and nothing is ever imported twice. `victim` is the node killed,
/// `step` the JSON log step it is killed at (the release on mds1, or the import on mds2).
fn restart_during_migration(test: &str, victim: &str, sequence: &str, step: &str, orphan_expected: bool) {
    let Some(lab) = Lab::start(test, LabSpec::two_node()) else { return };
    let asked = SystemTime::now();
    lab.ok(lab.migrate_no_wait("mds1", "MGT", "mds2"));
    let at_step = [("target", "MGT"), ("sequence", sequence), ("step", step)];
    lab.ok(lab::wait_for(&format!("{victim} to start {sequence}/{step} of MGT"), TAKEOVER, || {
        lab.log(victim).first(asked, "step_started", &at_step).map(|_| ())
    }));
    let killed = lab.ok(lab.kill_daemon(victim));
    lab.ok(lab.start_daemon(victim));
    let placement = wait_each_target_once(&lab, TAKEOVER);
    println!("{victim} killed at {sequence}/{step} and restarted: placement {placement:?}");
    // the command the killed daemon left running was killed (and waited for) before the restarted one looked
    let reaped: Vec<String> = lab
        .log(victim)
        .lines
        .iter()
        .filter(|l| l.unix_us >= killed.duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_micros() as u64 && l.message.starts_with("a command of the previous run"))
        .map(|l| l.fields["command"].as_str().unwrap_or("").to_string())
        .collect();
    println!("orphans reaped by the restarted {victim}: {reaped:?}");
    if orphan_expected && reaped.is_empty() {
        lab.fail(&format!("{victim}'s restarted daemon did not report the command its previous run left running"));
    }
    // the restarted daemon looked before it claimed: its discovery comes before any sequence of its own
    let log = lab.log(victim);
    let first_discovery = log.first(killed, "target_discovered", &[("target", "MGT")]);
    let first_sequence = log.first(killed, "sequence_started", &[]);
    match (first_discovery, first_sequence) {
        (None, _) => lab.fail(&format!("{victim}'s restarted daemon logged no discovery of MGT:\n{}", log.summary(killed))),
        (Some(d), Some(s)) if s.time() < d.time() => lab.fail(&format!("{victim} started a sequence before discovering:\n{}", log.summary(killed))),
        _ => {}
    }
    lab.assert_safe();
}

#[test]
fn restart_of_the_releasing_node_during_a_migration() {
    restart_during_migration("restart_of_the_releasing_node_during_a_migration", "mds1", "release", "export", false);
}

#[test]
fn restart_of_the_importing_node_during_a_migration() {
    // the import waits out the MMP activity check (2 s here): the killed daemon leaves it running
    restart_during_migration("restart_of_the_importing_node_during_a_migration", "mds2", "acquire", "import", true);
}

/// `systemctl stop` on mds1 (SIGTERM): mds1 first moves MGT and MDT0000 to mds2 by controlled migrations (no
/// `-f`), then tells mds2 it is leaving and exits; mds2 never fences it, and mds1 stays powered.
#[test]
fn sigterm_is_a_graceful_leave() {
    let Some(lab) = Lab::start("sigterm_is_a_graceful_leave", LabSpec::two_node()) else { return };
    let pid = lab.daemon_pid("mds1").unwrap_or_else(|| lab.fail("mds1's daemon is not running"));
    let stopped = lab.ok(lab.signal_daemon("mds1", nix::sys::signal::Signal::SIGTERM));
    lab.ok(lab::wait_for("mds1's daemon to exit", TAKEOVER, || (!lab::process_alive(pid)).then_some(())));
    let left_after = since(stopped, SystemTime::now());
    lab.ok(lab.wait_all_on("mds2", TAKEOVER));
    for t in ["MGT", "MDT0000"] {
        in_order(&lab, "mds1", stopped, &[("sequence_done", with(&[("target", t), ("sequence", "release")]))]);
        in_order(&lab, "mds2", stopped, &[("sequence_done", with(&[("target", t), ("sequence", "acquire")]))]);
    }
    // a deliberate wait, long enough for a fence: detection, the fence_delay, a retry
    std::thread::sleep(lab.spec.dead_after * 3 + lab.spec.fence_delay * 2);
    if lab.log("mds2").count(stopped, "fence_started", &[]) > 0 {
        lab.fail(&format!("mds2 fenced a node that left gracefully: {}", lab.log("mds2").summary(stopped)));
    }
    if !lab.ok(lab.powered("mds1")) {
        lab.fail("mds1 lost power after a graceful stop");
    }
    let imports = lab.ok(lab.san_commands(&["zpool", "import"]));
    if imports.iter().any(|(_, argv, _)| argv.iter().any(|a| a == "-f")) {
        lab.fail(&format!("a graceful leave used zpool import -f: {imports:?}"));
    }
    println!("mds1 left in {}", secs(left_after));
    lab.assert_safe();
}

/// With `disk_heartbeat` on a file every host shares: mds1's daemon dies, so both its network heartbeats and
/// its disk slot stop, while mds2's own slot writes succeed. mds1 is down, not partitioned away: mds2 fences
/// it with NO fence_delay although mds1 has the higher fence_priority, then takes everything over.
#[test]
fn crash_with_disk_heartbeat_is_fenced_without_race_delay() {
    let spec = LabSpec::two_node().with_disk_heartbeat();
    let Some(lab) = Lab::start("crash_with_disk_heartbeat_is_fenced_without_race_delay", spec) else { return };
    // both daemons write their slots before the kill (status shows the peer's slot advancing)
    lab.ok(lab::wait_for("mds2 to read mds1's slot advancing", Duration::from_secs(10), || {
        let st = lab.status("mds2").ok()?;
        let peer = st["runtime"]["disk_heartbeat"]["peers"].as_array()?.iter().find(|p| p["node"] == "mds1")?.clone();
        (st["runtime"]["disk_heartbeat"]["write_ok"] == true && peer["age_ms"].as_u64()? < 1000).then_some(())
    }));
    let killed = lab.ok(lab.kill_daemon("mds1"));
    lab.ok(lab.wait_all_on("mds2", TAKEOVER));
    lab.assert_safe();
    if lab.ok(lab.powered("mds1")) {
        lab.fail("mds1 is still powered after the takeover");
    }
    let mut steps = vec![
        ("peer_dead", with(&[("node", "mds1")])),
        ("fence_started", with(&[("node", "mds1")])),
        ("fence_confirmed", with(&[("node", "mds1")])),
    ];
    steps.extend(forced_steps(&lab.spec));
    let times = in_order(&lab, "mds2", killed, &steps);
    // the disk said so: mds1's slot stopped while mds2's writes succeeded, before the fence started
    let log = lab.log("mds2");
    let silent = log.first(killed, "peer_disk_silent", &[("node", "mds1")]).map(|l| l.time());
    if silent.is_none_or(|t| t > times[1]) {
        lab.fail(&format!("mds2 did not log peer_disk_silent for mds1 before fencing it: {}", log.summary(killed)));
    }
    // and no race delay was even announced
    let delayed = log.count(killed, "fence_delayed", &[("node", "mds1")]);
    if delayed > 0 {
        lab.fail(&format!("mds2 announced a fence delay for a node the disk showed down: {}", log.summary(killed)));
    }
    // fence started within dead_after (+ a heartbeat and scheduling slack) of the kill, well before
    // dead_after + fence_delay, which is when it would start without the disk channel
    let fence_started = since(killed, times[1]);
    let limit = lab.spec.dead_after + Duration::from_millis(800);
    if fence_started > limit || fence_started + Duration::from_millis(100) < lab.spec.dead_after {
        lab.fail(&format!(
            "fence_started +{} after the kill: expected about dead_after ({}), at most {} (without the disk channel: {})",
            secs(fence_started),
            secs(lab.spec.dead_after),
            secs(limit),
            secs(lab.spec.dead_after + lab.spec.fence_delay)
        ));
    }
    eprintln!(
        "crash with disk heartbeat: peer_dead +{}, peer_disk_silent +{}, fence_started +{}, fence_confirmed +{}, all targets verified on mds2 +{}",
        secs(since(killed, times[0])),
        secs(since(killed, silent.unwrap_or(killed))),
        secs(fence_started),
        secs(since(killed, times[2])),
        secs(since(killed, *times.last().unwrap_or(&killed)))
    );
}

/// With `disk_heartbeat`: both heartbeat links of mds1 cut (a full network partition of the two nodes) while
/// both still write their disk slots. Each node sees the other alive on the disk only: it says so
/// (`peer_alive_on_disk_only`), nobody is fenced, nothing moves, for well over dead_after + fence_delay.
/// Healing the links changes nothing either.
#[test]
fn full_partition_with_disk_alive_is_no_failover() {
    let spec = LabSpec::two_node().with_disk_heartbeat().owners(&["MGT=mds1", "MDT0000=mds2"]).prefer("MDT0000", &["mds2", "mds1"]);
    let Some(lab) = Lab::start("full_partition_with_disk_alive_is_no_failover", spec) else { return };
    let before = lab.ok(lab.placement());
    let cut_at = SystemTime::now();
    lab.ok(lab.isolate("mds1"));
    for (host, peer) in [("mds2", "mds1"), ("mds1", "mds2")] {
        lab.ok(lab::wait_for(&format!("{host} to log peer_alive_on_disk_only for {peer}"), Duration::from_secs(15), || {
            lab.log(host).first(cut_at, "peer_alive_on_disk_only", &[("node", peer)]).map(|_| ())
        }));
    }
    let first_seen = since(cut_at, lab.log("mds2").first(cut_at, "peer_alive_on_disk_only", &[("node", "mds1")]).map(|l| l.time()).unwrap_or(cut_at));
    // a deliberate wait of three times dead_after + fence_delay: a fence race would long be over
    let watch = (lab.spec.dead_after + lab.spec.fence_delay) * 3;
    std::thread::sleep(watch);
    for host in ["mds1", "mds2"] {
        let log = lab.log(host);
        for bad in ["fence_started", "fence_delayed", "sequence_started"] {
            if log.count(cut_at, bad, &[]) > 0 {
                lab.fail(&format!("{host} logged {bad} during a network partition with the disk alive: {}", log.summary(cut_at)));
            }
        }
        if !lab.ok(lab.powered(host)) {
            lab.fail(&format!("{host} lost power during a network partition with the disk alive"));
        }
    }
    if lab.ok(lab.placement()) != before {
        lab.fail("targets moved during a network partition with the disk alive");
    }
    let st = lab.ok(lab.status("mds2"));
    let disk = &st["runtime"]["disk_heartbeat"];
    let peer = disk["peers"].as_array().into_iter().flatten().find(|p| p["node"] == "mds1").cloned().unwrap_or_default();
    if disk["write_ok"] != true || peer["age_ms"].as_u64().is_none_or(|ms| ms > 1000) {
        lab.fail(&format!("mds2's status should show its writes ok and mds1's slot advancing: {disk}"));
    }

    let healed_at = SystemTime::now();
    lab.ok(lab.heal("mds1", 0));
    lab.ok(lab.heal("mds1", 1));
    lab.ok(lab.wait_settled(Duration::from_secs(30)));
    for host in ["mds1", "mds2"] {
        if lab.log(host).count(healed_at, "fence_started", &[]) > 0 {
            lab.fail(&format!("{host} fenced after the partition healed"));
        }
    }
    if lab.ok(lab.placement()) != before {
        lab.fail("targets moved after the partition healed");
    }
    lab.assert_safe();
    eprintln!(
        "partition with disk heartbeat: peer_alive_on_disk_only +{} after the cut; no fence and no move in {} of partition",
        secs(first_seen),
        secs(watch)
    );
}
