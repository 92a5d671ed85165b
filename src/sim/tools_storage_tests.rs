//! End-to-end tests of the simulated storage tools through the `begin`/`finish` API, replaying the real
//! OpenZFS 2.1.11 captures (`tests/fixtures/openzfs-2.1.11/`).
#![cfg(test)]

use std::time::Duration;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::storage::*;
use crate::command::{Command, CommandResult, Exit};
use crate::time::Time;

const TANK_GUID: u64 = 15_370_153_878_645_753_245;
const HOSTID_A: u32 = 0xa1a1_a1a1;
const HOSTID_B: u32 = 0xb2b2_b2b2;
/// oss-a crashed at 00:26:26 on the capture day (the simulator's default epoch is that day's midnight).
const CRASH: Time = Time(1586 * 1_000_000);

/// `tests/fixtures/openzfs-2.1.11/boot2-03-zdb-e-C-state0.txt` (a real capture), verbatim.
const CAPTURE_ZDB: &str = "
MOS Configuration:
        version: 5000
        name: 'tank'
        state: 0
        txg: 4
        pool_guid: 15370153878645753245
        errata: 0
        hostid: 2711724449
        hostname: 'oss-a'
        com.delphix:has_per_vdev_zaps
        vdev_children: 1
        vdev_tree:
            type: 'root'
            id: 0
            guid: 15370153878645753245
            create_txg: 4
            children[0]:
                type: 'disk'
                id: 0
                guid: 3511796398808594333
                path: '/dev/vda1'
                whole_disk: 1
                metaslab_array: 68
                metaslab_shift: 25
                ashift: 9
                asize: 521666560
                is_log: 0
                create_txg: 4
                com.delphix:vdev_zap_leaf: 66
                com.delphix:vdev_zap_top: 67
        features_for_read:
            com.delphix:hole_birth
            com.delphix:embedded_data
";

const CAPTURE_PREVIOUSLY: &str = "cannot import 'tank': pool was previously in use from another system.
Last accessed by oss-a (hostid=a1a1a1a1) at Wed Nov 25 00:26:26 2026
The pool can be imported, use 'zpool import -f' to import the pool.
";
const CAPTURE_MMP: &str = "cannot import 'tank': pool is imported on oss-a (hostid: 0xa1a1a1a1)
Export the pool on the other system, then run 'zpool import'.
";
const CAPTURE_MMP_FORCE: &str = "cannot import 'tank': pool is imported on host 'oss-a' (hostid=a1a1a1a1).
Export the pool on the other system, then run 'zpool import'.
";

const IMPORT: &[&str] = &["zpool", "import", "-o", "cachefile=none", "tank"];
const IMPORT_F: &[&str] = &["zpool", "import", "-f", "-o", "cachefile=none", "tank"];

fn cmd(argv: &[&str]) -> Command {
    Command::new(argv.iter().copied(), Duration::from_secs(120))
}

/// Two OSS hosts and pool `tank` (dataset `tank/ost0` = `lfs-OST0000`) imported on oss-a since time 0.
fn san(multihost: bool) -> SharedStorage {
    let mut st = SharedStorage::new();
    st.add_host("oss-a", HOSTID_A).unwrap();
    st.add_host("oss-b", HOSTID_B).unwrap();
    let spec = PoolSpec::new("tank", TANK_GUID).multihost(multihost).target("tank/ost0", "lfs-OST0000");
    st.add_pool(spec, PoolStart::ImportedOn("oss-a".into()), Time::ZERO).unwrap();
    st
}

/// The boot1/boot2 situation: oss-a crashed at [`CRASH`] holding `tank`.
fn crashed_san() -> SharedStorage {
    let mut st = san(true);
    st.set_powered("oss-a", false, CRASH);
    st
}

/// Run a command with nothing happening meanwhile; returns the result and the finish time.
fn run(st: &mut SharedStorage, rng: &mut ChaCha8Rng, host: &str, argv: &[&str], now: Time) -> (CommandResult, Time) {
    let p = st.begin(host, &cmd(argv), now, rng);
    let at = p.finish_at;
    (st.finish(host, p.op, at), at)
}

fn seeded() -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(42)
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn zdb_after_the_crash_is_byte_identical_to_the_capture() {
    let (mut st, mut rng) = (crashed_san(), seeded());
    let (r, _) = run(&mut st, &mut rng, "oss-b", &["zdb", "-e", "-C", "tank"], CRASH + secs(60));
    assert_eq!(r.exit, Exit::Code(0));
    assert_eq!(r.stdout, CAPTURE_ZDB);
    assert!(r.duration >= Duration::from_millis(3500) && r.duration <= secs(5));
    let (r, _) = run(&mut st, &mut rng, "oss-b", &["zdb", "-C", "tank"], CRASH + secs(70));
    assert_eq!((r.exit, r.stderr.as_str()), (Exit::Code(1), "zdb: can't open 'tank': No such file or directory\n"));
    let (r, _) = run(&mut st, &mut rng, "oss-b", &["zdb", "-e", "-C", "nope"], CRASH + secs(80));
    assert_eq!((r.exit, r.stderr.as_str()), (Exit::Code(1), "zdb: can't open 'nope': No such file or directory\n"));
}

#[test]
fn import_without_f_after_a_crash_is_refused_only_after_the_activity_check() {
    let (mut st, mut rng) = (crashed_san(), seeded());
    let (r, _) = run(&mut st, &mut rng, "oss-b", IMPORT, CRASH + secs(60));
    assert_eq!(r.exit, Exit::Code(1));
    assert_eq!(r.stderr, CAPTURE_PREVIOUSLY);
    assert!(r.duration >= secs(20) && r.duration <= secs(27), "{:?}", r.duration);
    assert!(st.holders("tank").is_empty());
}

/// Two forced imports started at once on one host: OpenZFS holds its global `spa_namespace_lock` through each
/// MMP activity check, so the second check starts only when the first ended (the real-ZFS lab, 2.3.2: two
/// imports started together both ended after ~71 s instead of ~36 s). Both succeed.
#[test]
fn two_forced_imports_at_once_take_turns_for_the_activity_check() {
    let mut st = SharedStorage::new();
    st.add_host("oss-a", HOSTID_A).unwrap();
    st.add_host("oss-b", HOSTID_B).unwrap();
    for (name, guid) in [("tank", TANK_GUID), ("tank2", TANK_GUID + 1)] {
        let spec = PoolSpec::new(name, guid).multihost(true).target(&format!("{name}/ost0"), &format!("lfs-{name}"));
        st.add_pool(spec, PoolStart::ImportedOn("oss-a".into()), Time::ZERO).unwrap();
    }
    st.set_powered("oss-a", false, CRASH);
    let mut rng = seeded();
    let now = CRASH + secs(60);
    let first = st.begin("oss-b", &cmd(IMPORT_F), now, &mut rng);
    let second = st.begin("oss-b", &cmd(&["zpool", "import", "-f", "-o", "cachefile=none", "tank2"]), now, &mut rng);
    let (one, two) = (first.finish_at.since(now), second.finish_at.since(now));
    assert!(one >= secs(20) && one <= secs(27), "{one:?}");
    assert!(two >= one + secs(20), "the second check waited for the first: {one:?} then {two:?}");
    let (a, b) = (first.finish_at, second.finish_at);
    assert_eq!(st.finish("oss-b", first.op, a).exit, Exit::Code(0));
    assert_eq!(st.finish("oss-b", second.op, b).exit, Exit::Code(0));
    assert_eq!((st.holders("tank"), st.holders("tank2")), (vec!["oss-b".to_string()], vec!["oss-b".to_string()]));
    // another host's kernel has its own lock
    let mut st2 = crashed_san();
    let p = st2.begin("oss-b", &cmd(IMPORT_F), now, &mut rng);
    assert!(p.finish_at.since(now) <= secs(27));
}

#[test]
fn forced_import_after_a_crash_succeeds_after_the_activity_check() {
    let (mut st, mut rng) = (crashed_san(), seeded());
    let (r, at) = run(&mut st, &mut rng, "oss-b", IMPORT_F, CRASH + secs(60));
    assert_eq!((r.exit, r.stdout.as_str(), r.stderr.as_str()), (Exit::Code(0), "", ""));
    assert!(r.duration >= secs(20) && r.duration <= secs(27), "{:?}", r.duration);
    assert_eq!(st.holders("tank"), vec!["oss-b".to_string()]);
    let label = st.label("tank").unwrap();
    assert_eq!((label.state, label.hostid, label.hostname.as_str()), (LabelState::Active, HOSTID_B, "oss-b"));
    let (r, _) = run(&mut st, &mut rng, "oss-b", &["zpool", "list", "-H", "-o", "name,health"], at);
    assert_eq!(r.stdout, "tank\tONLINE\n");
    let (r, _) = run(&mut st, &mut rng, "oss-b", &["zpool", "status", "-x", "tank"], at);
    assert_eq!(r.stdout, "pool 'tank' is healthy\n");
    let (r, _) = run(
        &mut st,
        &mut rng,
        "oss-b",
        &["zpool", "get", "-H", "-o", "name,property,value", "multihost,cachefile", "tank"],
        at,
    );
    assert_eq!(r.stdout, "tank\tmultihost\ton\ntank\tcachefile\tnone\n");
    let (r, _) = run(&mut st, &mut rng, "oss-b", &["zfs", "list", "-H", "tank/ost0"], at);
    assert_eq!(r.stdout, "tank/ost0\t24K\t352M\t24K\t/tank/ost0\n");
    let (r, _) = run(&mut st, &mut rng, "oss-b", &["zfs", "list", "-H"], at);
    assert_eq!(r.stdout, "tank\t147K\t352M\t24K\t/tank\ntank/ost0\t24K\t352M\t24K\t/tank/ost0\n");
    let (r, _) = run(&mut st, &mut rng, "oss-b", &["zpool", "status", "tank"], at);
    let capture_status = "  pool: tank\n state: ONLINE\nconfig:\n\n\
        \tNAME        STATE     READ WRITE CKSUM\n\
        \ttank        ONLINE       0     0     0\n\
        \t  vda       ONLINE       0     0     0\n\
        \nerrors: No known data errors\n";
    assert_eq!(r.stdout, capture_status);
    assert!(crate::sim::checker::storage_invariants(&st).is_empty());
}

#[test]
fn a_live_owner_refuses_both_imports_within_about_two_seconds() {
    let (mut st, mut rng) = (san(true), seeded());
    let t = secs(100);
    let (r, _) = run(&mut st, &mut rng, "oss-b", IMPORT, Time::ZERO + t);
    assert_eq!((r.exit, r.stderr.as_str()), (Exit::Code(1), CAPTURE_MMP));
    assert!(r.duration >= Duration::from_millis(1500) && r.duration <= Duration::from_millis(2200));
    let (r, _) = run(&mut st, &mut rng, "oss-b", IMPORT_F, Time::ZERO + t + secs(10));
    assert_eq!((r.exit, r.stderr.as_str()), (Exit::Code(1), CAPTURE_MMP_FORCE));
    assert!(r.duration <= Duration::from_millis(2200));
    assert_eq!(st.holders("tank"), vec!["oss-a".to_string()]);
    let (r, _) = run(&mut st, &mut rng, "oss-b", &["zpool", "list", "-H", "-o", "name,health"], Time::ZERO + t);
    assert_eq!((r.exit, r.stdout.as_str()), (Exit::Code(0), ""));
}

#[test]
fn forced_import_from_a_frozen_owner_succeeds_and_suspends_the_owner() {
    let (mut st, mut rng) = (san(true), seeded());
    st.set_frozen("oss-a", true, Time::from_secs(100));
    let (r, at) = run(&mut st, &mut rng, "oss-b", IMPORT_F, Time::from_secs(101));
    assert_eq!(r.exit, Exit::Code(0), "{}", r.stderr);
    assert!(r.duration >= secs(20));
    assert_eq!(st.health_on("tank", "oss-a"), Some(PoolHealth::Suspended));
    assert_eq!(st.health_on("tank", "oss-b"), Some(PoolHealth::Online));
    assert!(crate::sim::checker::storage_invariants(&st).is_empty(), "a suspended copy cannot write");
    st.set_frozen("oss-a", false, at + secs(5));
    let (r, _) = run(&mut st, &mut rng, "oss-a", &["zpool", "status", "-x", "tank"], at + secs(6));
    assert_eq!(r.exit, Exit::Code(0));
    assert!(r.stdout.contains(" state: SUSPENDED\n"));
    assert!(r.stdout.contains("status: The pool is suspended because multihost writes failed or were delayed;\n"));
    assert!(r.stdout.contains("ZFS-8000-MM"));
    let (r, _) = run(&mut st, &mut rng, "oss-a", &["zpool", "list", "-H", "-o", "name,health"], at + secs(7));
    assert_eq!(r.stdout, "tank\tSUSPENDED\n");
    let (r, _) = run(&mut st, &mut rng, "oss-a", &["zpool", "export", "tank"], at + secs(8));
    assert_eq!((r.exit, r.stderr.as_str()), (Exit::Code(1), "cannot export 'tank': pool I/O is currently suspended\n"));
}

#[test]
fn a_power_off_during_the_check_still_refuses_the_import() {
    // Owner alive when the import starts, powered off before the answer.
    let (mut st, mut rng) = (san(true), seeded());
    let p = st.begin("oss-b", &cmd(IMPORT_F), Time::from_secs(100), &mut rng);
    st.set_powered("oss-a", false, Time::from_millis(100_500));
    let r = st.finish("oss-b", p.op, p.finish_at);
    assert_eq!(r.stderr, CAPTURE_MMP_FORCE);
    // Owner hung when the long check starts, resumes writing (frozen < 10 s), then loses power: the writes
    // it made meanwhile are seen at the end of the window.
    let (mut st, mut rng) = (san(true), seeded());
    st.set_frozen("oss-a", true, Time::from_secs(100));
    let p = st.begin("oss-b", &cmd(IMPORT_F), Time::from_secs(101), &mut rng);
    assert!(p.finish_at >= Time::from_secs(121));
    st.set_frozen("oss-a", false, Time::from_secs(105));
    st.set_powered("oss-a", false, Time::from_secs(108));
    let r = st.finish("oss-b", p.op, p.finish_at);
    assert_eq!((r.exit, r.stderr.as_str()), (Exit::Code(1), CAPTURE_MMP_FORCE));
    assert!(st.holders("tank").is_empty());
}

#[test]
fn a_host_thawed_after_ten_seconds_suspends_its_own_pool() {
    let (mut st, mut rng) = (san(true), seeded());
    st.set_frozen("oss-a", true, Time::from_secs(100));
    st.set_frozen("oss-a", false, Time::from_secs(111));
    assert_eq!(st.health_on("tank", "oss-a"), Some(PoolHealth::Suspended));
    // Its copy no longer writes: a forced import elsewhere now passes the activity check.
    let (r, _) = run(&mut st, &mut rng, "oss-b", IMPORT_F, Time::from_secs(112));
    assert_eq!(r.exit, Exit::Code(0), "{}", r.stderr);
}

#[test]
fn a_clean_export_lets_the_peer_import_without_f_and_without_activity_check() {
    // OpenZFS 2.1 skips the check for a cleanly exported pool whatever its hostid (boot3-holdA: 1.17 s).
    let (mut st, mut rng) = (san(true), seeded());
    let (r, at) = run(&mut st, &mut rng, "oss-a", &["zpool", "export", "tank"], Time::from_secs(50));
    assert_eq!(r.exit, Exit::Code(0));
    let label = st.label("tank").unwrap();
    assert_eq!((label.state, label.hostid, label.hostname.as_str()), (LabelState::Exported, HOSTID_A, "oss-a"));
    let (r, at) = run(&mut st, &mut rng, "oss-b", &["zdb", "-e", "-C", "tank"], at);
    assert!(
        r.stdout.contains("        state: 1\n        txg: 6\n") && r.stdout.contains("hostid: 2711724449\n"),
        "{}",
        r.stdout
    );
    let (r, _) = run(&mut st, &mut rng, "oss-b", IMPORT, at);
    assert_eq!(r.exit, Exit::Code(0), "{}", r.stderr);
    assert!(r.duration < secs(2));
    assert_eq!(st.holders("tank"), vec!["oss-b".to_string()]);
    let (r, _) = run(&mut st, &mut rng, "oss-a", &["zpool", "export", "tank"], at + secs(5));
    assert_eq!((r.exit, r.stderr.as_str()), (Exit::Code(1), "cannot open 'tank': no such pool\n"));
}

#[test]
fn the_last_owner_reimports_its_own_crashed_pool_without_f_or_check() {
    let (mut st, mut rng) = (crashed_san(), seeded());
    st.set_powered("oss-a", true, CRASH + secs(100));
    let (r, _) = run(&mut st, &mut rng, "oss-a", IMPORT, CRASH + secs(120));
    assert_eq!(r.exit, Exit::Code(0), "{}", r.stderr);
    assert!(r.duration < secs(2));
}

#[test]
fn multihost_off_allows_a_double_import_that_the_invariants_catch() {
    let (mut st, mut rng) = (san(false), seeded());
    let (r, _) = run(&mut st, &mut rng, "oss-b", IMPORT, Time::from_secs(10));
    assert_eq!(r.exit, Exit::Code(1));
    assert!(r.stderr.starts_with("cannot import 'tank': pool was previously in use from another system.\n"));
    assert!(r.duration < secs(2), "no activity check without multihost");
    let (r, at) = run(&mut st, &mut rng, "oss-b", IMPORT_F, Time::from_secs(20));
    assert_eq!(r.exit, Exit::Code(0));
    assert_eq!(st.holders("tank"), vec!["oss-a".to_string(), "oss-b".to_string()]);
    let v = crate::sim::checker::storage_invariants(&st);
    assert_eq!(v, vec!["pool tank imported on 2 powered hosts at once: oss-a, oss-b".to_string()]);
    for host in ["oss-a", "oss-b"] {
        run(&mut st, &mut rng, host, &["mkdir", "-p", "/lustre/ost0"], at);
        let (r, _) = run(&mut st, &mut rng, host, &["mount", "-t", "lustre", "tank/ost0", "/lustre/ost0"], at);
        assert_eq!(r.exit, Exit::Code(0), "{}", r.stderr);
    }
    assert_eq!(crate::sim::checker::storage_invariants(&st).len(), 2);
    st.set_powered("oss-a", false, at + secs(10));
    assert!(crate::sim::checker::storage_invariants(&st).is_empty());
}

#[test]
fn import_refusals_and_errors() {
    let (mut st, mut rng) = (san(true), seeded());
    let (r, _) = run(&mut st, &mut rng, "oss-a", IMPORT, Time::from_secs(1));
    assert_eq!(
        r.stderr,
        "cannot import 'tank': a pool with that name already exists\nuse the form 'zpool import <pool | id> <newpool>' to give it a new name\n"
    );
    let (r, _) =
        run(&mut st, &mut rng, "oss-b", &["zpool", "import", "-f", "-o", "cachefile=none", "nope"], Time::from_secs(2));
    assert_eq!((r.exit, r.stderr.as_str()), (Exit::Code(1), "cannot import 'nope': no such pool available\n"));
    st.add_host("oss-c", 0).unwrap();
    let (r, _) = run(&mut st, &mut rng, "oss-c", IMPORT, Time::from_secs(3));
    assert!(r
        .stderr
        .starts_with("Cannot import 'tank': pool has the multihost property on and the\nsystem's hostid is not set."));
    st.set_powered("oss-a", false, Time::from_secs(4));
    st.faults_mut("oss-b").unwrap().import_fails = true;
    let (r, _) = run(&mut st, &mut rng, "oss-b", IMPORT_F, Time::from_secs(5));
    assert_eq!((r.exit, r.stderr.lines().next()), (Exit::Code(1), Some("cannot import 'tank': I/O error")));
    assert!(st.holders("tank").is_empty());
}

#[test]
fn the_target_lifecycle_mount_verify_umount_export() {
    let (mut st, mut rng) = (san(true), seeded());
    let t = Time::from_secs(10);
    let mount = ["mount", "-t", "lustre", "-o", "abort_recov", "tank/ost0", "/lustre/ost0"];
    let (r, _) = run(&mut st, &mut rng, "oss-a", &mount, t);
    assert_eq!(
        (r.exit, r.stderr.as_str()),
        (Exit::Code(2), "mount.lustre: mount tank/ost0 at /lustre/ost0 failed: No such file or directory\n")
    );
    let (r, _) = run(&mut st, &mut rng, "oss-a", &["df", "-ht", "lustre"], t);
    assert_eq!((r.exit, r.stderr.as_str()), (Exit::Code(1), "df: no file systems processed\n"));
    let (r, _) = run(&mut st, &mut rng, "oss-a", &["lctl", "dl"], t);
    assert_eq!((r.exit, r.stdout.as_str()), (Exit::Code(0), ""));
    assert_eq!(run(&mut st, &mut rng, "oss-a", &["mkdir", "-p", "/lustre/ost0"], t).0.exit, Exit::Code(0));
    let (r, _) = run(&mut st, &mut rng, "oss-a", &mount, t);
    assert_eq!(r.exit, Exit::Code(0), "{}", r.stderr);
    assert!(r.duration >= secs(1) && r.duration <= secs(3));
    let (r, _) = run(&mut st, &mut rng, "oss-a", &mount, t);
    assert_eq!(
        (r.exit, r.stderr.as_str()),
        (Exit::Code(17), "mount.lustre: according to /etc/mtab tank/ost0 is already mounted on /lustre/ost0\n")
    );
    let (r, _) = run(&mut st, &mut rng, "oss-a", &["df", "-ht", "lustre"], t);
    assert_eq!(
        r.stdout,
        "Filesystem      Size  Used Avail Use% Mounted on\ntank/ost0       353M   24K  352M   1% /lustre/ost0\n"
    );
    let (r, _) = run(&mut st, &mut rng, "oss-a", &["lctl", "dl"], t);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines[0], "  0 UP osd-zfs lfs-OST0000-osd lfs-OST0000-osd_UUID 4");
    assert!(lines[1].starts_with("  1 UP mgc MGC10.0.0.1@tcp "));
    assert_eq!(lines[2..], ["  2 UP ost OSS OSS_uuid 2", "  3 UP obdfilter lfs-OST0000 lfs-OST0000_UUID 4"]);
    let (r, _) = run(&mut st, &mut rng, "oss-a", &["cat", "/proc/mounts"], t);
    assert!(r.stdout.ends_with("tank/ost0 /lustre/ost0 lustre rw,abort_recov 0 0\n"));
    let (r, _) = run(&mut st, &mut rng, "oss-a", &["lctl", "get_param", "-n", "health_check"], t);
    assert_eq!(r.stdout, "healthy\n");
    let (r, _) = run(&mut st, &mut rng, "oss-a", &["lctl", "ping", "10.0.0.2@tcp"], t);
    assert_eq!((r.exit, r.stdout.as_str()), (Exit::Code(0), "12345-0@lo\n12345-10.0.0.2@tcp\n"));
    let (r, _) = run(&mut st, &mut rng, "oss-a", &["zpool", "export", "tank"], t);
    assert_eq!((r.exit, r.stderr.as_str()), (Exit::Code(1), "cannot export 'tank': pool is busy\n"));
    assert_eq!(run(&mut st, &mut rng, "oss-a", &["umount", "/lustre/ost0"], t).0.exit, Exit::Code(0));
    let (r, _) = run(&mut st, &mut rng, "oss-a", &["umount", "/lustre/ost0"], t);
    assert_eq!((r.exit, r.stderr.as_str()), (Exit::Code(32), "umount: /lustre/ost0: not mounted.\n"));
    assert_eq!(run(&mut st, &mut rng, "oss-a", &["zpool", "export", "tank"], t).0.exit, Exit::Code(0));
}

#[test]
fn mgs_and_mdt_devices_in_lctl_dl() {
    let mut st = SharedStorage::new();
    let mut rng = seeded();
    st.add_host("mds-a", 1).unwrap();
    let spec = PoolSpec::new("mdtpool", 7).target("mdtpool/mgt", "MGS").target("mdtpool/mdt0", "lfs-MDT0000");
    st.add_pool(spec, PoolStart::ImportedOn("mds-a".into()), Time::ZERO).unwrap();
    for (src, mp) in [("mdtpool/mgt", "/lustre/mgt"), ("mdtpool/mdt0", "/lustre/mdt0")] {
        st.add_dir("mds-a", mp).unwrap();
        assert_eq!(
            run(&mut st, &mut rng, "mds-a", &["mount", "-t", "lustre", src, mp], Time::ZERO).0.exit,
            Exit::Code(0)
        );
    }
    let (r, _) = run(&mut st, &mut rng, "mds-a", &["lctl", "dl"], Time::ZERO);
    let kinds: Vec<String> =
        r.stdout.lines().map(|l| l.split_whitespace().skip(2).take(2).collect::<Vec<_>>().join(" ")).collect();
    assert_eq!(
        kinds,
        ["osd-zfs MGS-osd", "mgs MGS", "mgc MGC10.0.0.1@tcp", "osd-zfs lfs-MDT0000-osd", "mds MDS", "mdt lfs-MDT0000"]
    );
}

#[test]
fn ldiskfs_mmp_refuses_a_live_device_and_waits_on_a_crashed_one() {
    let mut st = SharedStorage::new();
    let mut rng = seeded();
    st.add_host("mds-a", 1).unwrap();
    st.add_host("mds-b", 2).unwrap();
    st.add_ldiskfs("/dev/sdb", "lfs-MDT0000", true).unwrap();
    for h in ["mds-a", "mds-b"] {
        st.add_dir(h, "/lustre/mdt0").unwrap();
    }
    let mount = ["mount", "-t", "lustre", "/dev/sdb", "/lustre/mdt0"];
    let (r, at) = run(&mut st, &mut rng, "mds-a", &mount, Time::ZERO);
    assert_eq!(r.exit, Exit::Code(0));
    assert!(r.duration >= secs(11), "clean device: one MMP wait");
    let (r, at) = run(&mut st, &mut rng, "mds-b", &mount, at);
    assert_eq!(r.exit, Exit::Code(16));
    assert!(r.stderr.starts_with("mount.lustre: mount /dev/sdb at /lustre/mdt0 failed: Device or resource busy\n"));
    assert!(r.stderr.contains("Device is already active on another node."));
    assert!(r.duration >= secs(11));
    st.set_powered("mds-a", false, at);
    let (r, _) = run(&mut st, &mut rng, "mds-b", &mount, at + secs(1));
    assert_eq!(r.exit, Exit::Code(0), "{}", r.stderr);
    assert!(r.duration >= secs(22), "unclean device: two MMP waits");
    assert!(crate::sim::checker::storage_invariants(&st).is_empty());
}

#[test]
fn ldiskfs_without_mmp_can_be_double_mounted() {
    let mut st = SharedStorage::new();
    let mut rng = seeded();
    for (h, id) in [("a", 1), ("b", 2)] {
        st.add_host(h, id).unwrap();
        st.add_dir(h, "/mnt/t").unwrap();
    }
    st.add_ldiskfs("/dev/shared", "lfs-OST0001", false).unwrap();
    for h in ["a", "b"] {
        assert_eq!(
            run(&mut st, &mut rng, h, &["mount", "-t", "lustre", "/dev/shared", "/mnt/t"], Time::ZERO).0.exit,
            Exit::Code(0)
        );
    }
    assert_eq!(
        crate::sim::checker::storage_invariants(&st),
        vec!["target /dev/shared mounted on 2 powered hosts at once: a, b".to_string()]
    );
}

#[test]
fn injected_faults() {
    let (mut st, mut rng) = (san(true), seeded());
    st.add_dir("oss-a", "/lustre/ost0").unwrap();
    let mount = ["mount", "-t", "lustre", "tank/ost0", "/lustre/ost0"];
    run(&mut st, &mut rng, "oss-a", &mount, Time::ZERO);
    st.faults_mut("oss-a").unwrap().hang.insert("umount".into());
    let umount = Command::new(["umount", "/lustre/ost0"], secs(30));
    let p = st.begin("oss-a", &umount, Time::from_secs(1), &mut rng);
    assert_eq!(p.finish_at, Time::from_secs(31));
    let r = st.finish("oss-a", p.op, p.finish_at);
    assert_eq!((r.exit, r.duration), (Exit::TimedOut, secs(30)));
    assert_eq!(st.mounts("oss-a").len(), 1, "a hung umount leaves the target mounted");
    let faults = st.faults_mut("oss-a").unwrap();
    faults.hang.clear();
    faults.health_check = Some("NOT HEALTHY".into());
    faults.lctl_ping_fails = true;
    faults.mount_fails = true;
    let (r, _) = run(&mut st, &mut rng, "oss-a", &["lctl", "get_param", "-n", "health_check"], Time::from_secs(40));
    assert_eq!(r.stdout, "NOT HEALTHY\n");
    let (r, _) = run(&mut st, &mut rng, "oss-a", &["lctl", "ping", "10.0.0.9@tcp"], Time::from_secs(40));
    assert_eq!(
        (r.exit, r.stderr.as_str(), r.duration),
        (Exit::Code(1), "failed to ping 10.0.0.9@tcp: Input/output error\n", secs(1))
    );
    run(&mut st, &mut rng, "oss-a", &["umount", "/lustre/ost0"], Time::from_secs(41));
    let (r, _) = run(&mut st, &mut rng, "oss-a", &mount, Time::from_secs(42));
    assert_eq!(r.exit, Exit::Code(5));
    st.suspend_pool("tank", Time::from_secs(50));
    let (r, _) =
        run(&mut st, &mut rng, "oss-a", &["zpool", "list", "-H", "-o", "name,health", "tank"], Time::from_secs(51));
    assert_eq!(r.stdout, "tank\tSUSPENDED\n");
}

#[test]
fn a_timeout_shorter_than_the_activity_check_kills_the_import() {
    let (mut st, mut rng) = (crashed_san(), seeded());
    let short = Command::new(IMPORT_F.iter().copied(), secs(15));
    let p = st.begin("oss-b", &short, CRASH + secs(10), &mut rng);
    assert_eq!(p.finish_at, CRASH + secs(25));
    let r = st.finish("oss-b", p.op, p.finish_at);
    assert_eq!(r.exit, Exit::TimedOut);
    assert!(st.holders("tank").is_empty());
}

#[test]
fn unknown_commands_and_usage_errors() {
    let (mut st, mut rng) = (san(true), seeded());
    let (r, _) = run(&mut st, &mut rng, "oss-a", &["frobnicate", "-x"], Time::ZERO);
    assert_eq!((r.exit, r.stderr.as_str()), (Exit::Code(127), "frobnicate: command not found\n"));
    let (r, _) = run(&mut st, &mut rng, "oss-a", &["zpool", "scrub", "tank"], Time::ZERO);
    assert_eq!(r.exit, Exit::Code(2));
    let (r, _) = run(&mut st, &mut rng, "oss-a", &["zpool", "status", "-x", "nope"], Time::ZERO);
    assert_eq!((r.exit, r.stderr.as_str()), (Exit::Code(1), "cannot open 'nope': no such pool\n"));
    let (r, _) = run(&mut st, &mut rng, "oss-b", &["zfs", "list", "-H", "tank/ost0"], Time::ZERO);
    assert_eq!((r.exit, r.stderr.as_str()), (Exit::Code(1), "cannot open 'tank/ost0': dataset does not exist\n"));
}

#[test]
fn the_same_seed_gives_the_same_durations_and_the_state_round_trips_as_json() {
    let trace = |seed: u64| {
        let mut st = crashed_san();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut out = Vec::new();
        let mut now = CRASH + secs(10);
        for argv in [&["zdb", "-e", "-C", "tank"][..], IMPORT, IMPORT_F, &["zpool", "status", "-x", "tank"]] {
            let (r, at) = run(&mut st, &mut rng, "oss-b", argv, now);
            out.push(r.duration);
            now = at;
        }
        (out, st)
    };
    let (a, st) = trace(9);
    assert_eq!(a, trace(9).0);
    assert_ne!(a, trace(10).0);
    let json = serde_json::to_string(&st).unwrap();
    let back: SharedStorage = serde_json::from_str(&json).unwrap();
    assert_eq!(back, st);
}
