//! Whole runs of the storage sequences through the public API: the exact argv of every step, fed realistic
//! results (the real OpenZFS 2.1.11 captures of tests/fixtures where there is one).

use std::path::PathBuf;
use std::time::Duration;

use failoverd::command::{Command, CommandResult, Exit};
use failoverd::config::{TargetConfig, TargetKind};
use failoverd::storage::{
    discover_commands, parse_discovery, HostIdentity, LocalHoldings, PoolState, SequenceKind, SequenceRun, StepVerdict,
    StorageError, StorageTimeouts,
};

/// A fixture's body and exit code (its framing lines dropped).
fn capture(text: &str) -> (String, i32) {
    let c = crate::support::capture::parse(text);
    (c.stdout, c.rc)
}

macro_rules! fixture {
    ($path:literal) => {
        capture(include_str!(concat!("../fixtures/", $path)))
    };
}

/// A result on stdout (captures merge the streams; exit 0 means it was stdout).
fn out_fixture((body, rc): (String, i32)) -> CommandResult {
    CommandResult::exited(rc, body, "")
}

/// A refusal on stderr.
fn err_fixture((body, rc): (String, i32)) -> CommandResult {
    CommandResult::exited(rc, "", body)
}

fn ok(stdout: &str) -> CommandResult {
    CommandResult::exited(0, stdout, "")
}

fn t() -> StorageTimeouts {
    StorageTimeouts {
        import: Duration::from_secs(90),
        mount: Duration::from_secs(300),
        command: Duration::from_secs(30),
    }
}

fn oss_a() -> HostIdentity {
    HostIdentity::new("oss-a", 0xa1a1a1a1)
}
fn oss_b() -> HostIdentity {
    HostIdentity::new("oss-b", 0xb2b2b2b2)
}
fn oss_c() -> HostIdentity {
    HostIdentity::new("oss-c", 0xc3c3c3c3)
}
fn cluster() -> Vec<HostIdentity> {
    vec![oss_a(), oss_b(), oss_c()]
}

fn zfs_target() -> TargetConfig {
    TargetConfig {
        name: "ost0".into(),
        kind: TargetKind::Zfs { pool: "tank".into(), dataset: "tank/ost0".into() },
        mountpoint: PathBuf::from("/lustre/ost0"),
        nodes: vec!["oss-a".into(), "oss-b".into()],
        start_order: 10,
        lctl_device: "lfs-OST0000".into(),
        mount_options: None,
        health_nids: vec![],
        check_command: None,
    }
}

fn ldiskfs_target() -> TargetConfig {
    TargetConfig {
        name: "mdt0".into(),
        kind: TargetKind::Ldiskfs { device: PathBuf::from("/dev/sdb") },
        mountpoint: PathBuf::from("/lfs/mdt0"),
        nodes: vec!["mds-a".into(), "mds-b".into()],
        start_order: 0,
        lctl_device: "gcfs-MDT0000".into(),
        mount_options: Some("abort_recov".into()),
        health_nids: vec!["192.168.201.141@tcp".into()],
        check_command: None,
    }
}

/// The real `zdb -e -C tank` of boot2-takeover (state 0, oss-a, hostid a1a1a1a1), with edits.
fn zdb_label(state: u32, hostname: &str, hostid: Option<u32>) -> CommandResult {
    let (out, _) = fixture!("openzfs-2.1.11/boot2-03-zdb-e-C-state0.txt");
    let out = out.replace("state: 0", &format!("state: {state}")).replace("'oss-a'", &format!("'{hostname}'"));
    let out = match hostid {
        Some(id) => out.replace("hostid: 2711724449", &format!("hostid: {id}")),
        None => out.replace("        hostid: 2711724449\n", ""),
    };
    ok(&out)
}

/// A world where everything about ost0 (ZFS) / mdt0 (ldiskfs) goes well.
fn healthy_world(step: &str, _: &Command) -> CommandResult {
    match step {
        "zdb-check" => out_fixture(fixture!("openzfs-2.1.11/boot2-03-zdb-e-C-state0.txt")),
        "import" => out_fixture(fixture!("openzfs-2.1.11/boot2-08-import-f-ok.txt")),
        "pool-status" => ok("pool 'tank' is healthy\n"),
        "dataset" => ok("tank/ost0\t24K\t352M\t24K\t/tank/ost0\n"),
        "verify-df" => ok(
            "Filesystem      Size  Used Avail Use% Mounted on\ntank/ost0       352M   24K  352M   1% /lustre/ost0\n\
             /dev/sdb        2.8T  4.1G  2.7T   1% /lfs/mdt0\n",
        ),
        "verify-lctl" => ok(
            "  0 UP osd-zfs lfs-OST0000-osd lfs-OST0000-osd_UUID 4\n  1 UP mgc MGC192.168.56.121@tcp 14a8bf49 4\n\
               2 UP ost OSS OSS_uuid 2\n  3 UP obdfilter lfs-OST0000 lfs-OST0000_UUID 4\n\
               4 UP osd-ldiskfs gcfs-MDT0000-osd gcfs-MDT0000-osd_UUID 8\n  5 UP mdt gcfs-MDT0000 gcfs-MDT0000_UUID 3\n",
        ),
        "pool-health" => out_fixture(fixture!("openzfs-2.1.11/boot1-08-zpool-list-H-name-health.txt")),
        "mounted" => ok("/dev/vda2 / ext4 rw 0 0\ntank/ost0 /lustre/ost0 lustre ro,svname=lfs-OST0000 0 0\n\
                         /dev/sdb /lfs/mdt0 lustre ro,svname=gcfs-MDT0000 0 0\n"),
        "health-check" => ok("healthy\n"),
        _ => ok(""),
    }
}

/// Run to the end, answering each step with `world`; returns every argv issued and the final verdict.
fn drive(run: &mut SequenceRun, world: impl Fn(&str, &Command) -> CommandResult) -> (Vec<String>, StepVerdict) {
    let mut issued = Vec::new();
    for _ in 0..64 {
        let (name, command) = run.current().expect("a running sequence has a current step");
        assert_eq!(run.step_name(), Some(name));
        issued.push(command.display());
        let verdict = run.on_result(&world(name, &command));
        match verdict {
            StepVerdict::Next => continue,
            done_or_failed => {
                assert!(run.current().is_none(), "no step after {done_or_failed:?}");
                return (issued, done_or_failed);
            }
        }
    }
    panic!("sequence does not end");
}

/// `healthy_world` except for one step.
fn world_with(bad_step: &'static str, answer: CommandResult) -> impl Fn(&str, &Command) -> CommandResult {
    move |step, cmd| if step == bad_step { answer.clone() } else { healthy_world(step, cmd) }
}

const FORCED_F: [&str; 8] = [
    "zdb -e -C tank",
    "zpool import -f -o cachefile=none tank",
    "zpool status -x tank",
    "zfs list -H tank/ost0",
    "mkdir -p /lustre/ost0",
    "mount -t lustre tank/ost0 /lustre/ost0",
    "df -ht lustre",
    "lctl dl",
];

fn without_f() -> Vec<String> {
    let mut v: Vec<String> = FORCED_F.iter().map(|s| s.to_string()).collect();
    v[1] = "zpool import -o cachefile=none tank".into();
    v
}

// ----- forced -----------------------------------------------------------------------------------------------------

#[test]
fn forced_after_crash_of_fenced_owner_uses_f() {
    // boot2-takeover: oss-b takes over after oss-a lost power; the label is ACTIVE with oss-a's hostid.
    let mut run = SequenceRun::forced(&zfs_target(), &oss_b(), &oss_a(), &cluster(), t());
    assert_eq!(run.kind(), SequenceKind::Forced);
    assert_eq!(run.target().name, "ost0");
    assert_eq!(
        run.plan(),
        ["zdb-check", "import", "pool-status", "dataset", "mkdir", "mount", "verify-df", "verify-lctl"]
    );
    let mut issued = Vec::new();
    let mut timeouts = Vec::new();
    let mut names = Vec::new();
    let verdict = loop {
        let (name, cmd) = run.current().unwrap();
        names.push(name);
        issued.push(cmd.argv.clone());
        timeouts.push(cmd.timeout);
        assert!(cmd.stdin.is_none() && cmd.env.is_empty() && cmd.secrets.is_empty());
        match run.on_result(&healthy_world(name, &cmd)) {
            StepVerdict::Next => {
                if name == "zdb-check" {
                    assert!(run.used_force());
                    let label = run.label().unwrap();
                    assert_eq!(
                        (label.state, label.hostid, label.hostname.as_str()),
                        (PoolState::Active, Some(0xa1a1a1a1), "oss-a")
                    );
                }
            }
            v => break v,
        }
    };
    assert_eq!(verdict, StepVerdict::Done);
    assert_eq!(issued.iter().map(|a| a.join(" ")).collect::<Vec<_>>(), FORCED_F);
    assert_eq!(issued[1], ["zpool", "import", "-f", "-o", "cachefile=none", "tank"]);
    assert_eq!(names, run.plan());
    let s = Duration::from_secs;
    assert_eq!(timeouts, [s(30), s(90), s(30), s(30), s(30), s(300), s(30), s(30)]);
    assert_eq!(run.steps_done(), 8);
    assert_eq!(run.outcome(), Some(&StepVerdict::Done));
    // Finished: no step, and the verdict repeats.
    assert!(run.current().is_none() && run.step_name().is_none());
    assert_eq!(run.on_result(&ok("")), StepVerdict::Done);
}

/// Hosts whose `uname -n` is fully qualified write it whole into the label: the rule compares the hostid, then
/// the hostname with the node name, its configured `hostname`, or (when none is configured) an FQDN whose first
/// label is the node name.
#[test]
fn forced_label_rule_with_fully_qualified_hostnames() {
    let label = |host: &str| zdb_label(0, host, Some(0xa1a1a1a1));
    let forced = |fenced: &HostIdentity, host: &str| {
        let mut run = SequenceRun::forced(&zfs_target(), &oss_b(), fenced, &cluster(), t());
        let world = world_with("zdb-check", label(host));
        let (issued, v) = drive(&mut run, world);
        (issued, v)
    };
    let (issued, v) = forced(&oss_a(), "oss-a.lab.example");
    assert!(matches!(v, StepVerdict::Done), "{v:?}");
    assert!(issued.iter().any(|c| c == "zpool import -f -o cachefile=none tank"), "{issued:?}");
    // another host's FQDN, a name that only starts like ours, or the right name with another hostid: refused
    for host in ["oss-b.lab.example", "oss-ab.lab.example", "oss-a-old"] {
        let (_, v) = forced(&oss_a(), host);
        assert!(matches!(v, StepVerdict::Failed(StorageError::ForeignOwner { .. })), "{host}: {v:?}");
    }
    // a configured hostname is the only name accepted
    let named = HostIdentity { hostname: Some("server-17.lab.example".into()), ..oss_a() };
    let (_, v) = forced(&named, "server-17.lab.example");
    assert!(matches!(v, StepVerdict::Done), "{v:?}");
    let (_, v) = forced(&named, "oss-a.lab.example");
    assert!(matches!(v, StepVerdict::Failed(StorageError::ForeignOwner { .. })), "{v:?}");
}

#[test]
fn forced_with_exported_label_of_fenced_host_imports_without_f() {
    let mut run = SequenceRun::forced(&zfs_target(), &oss_b(), &oss_a(), &cluster(), t());
    let (issued, v) = drive(&mut run, world_with("zdb-check", zdb_label(1, "oss-a", Some(0xa1a1a1a1))));
    assert_eq!(v, StepVerdict::Done);
    assert_eq!(issued, without_f());
    assert!(!run.used_force());
}

#[test]
fn forced_with_own_label_imports_without_f() {
    // The label names this host (oss-b, 2998055602), ACTIVE: our own hostid needs no -f.
    for state in [0, 1] {
        let mut run = SequenceRun::forced(&zfs_target(), &oss_b(), &oss_a(), &cluster(), t());
        let (issued, v) = drive(&mut run, world_with("zdb-check", zdb_label(state, "oss-b", Some(2998055602))));
        assert_eq!(v, StepVerdict::Done);
        assert_eq!(issued, without_f());
    }
}

#[test]
fn forced_refuses_a_label_that_does_not_name_the_fenced_host_or_us() {
    let cases = [
        ("third host outside the cluster", zdb_label(0, "oss-z", Some(0x12345678)), "oss-z", 0x12345678),
        ("cluster host that was not fenced", zdb_label(0, "oss-c", Some(0xc3c3c3c3)), "oss-c", 0xc3c3c3c3),
        ("exported by a host that was not fenced", zdb_label(1, "oss-c", Some(0xc3c3c3c3)), "oss-c", 0xc3c3c3c3),
        ("fenced host's name, another hostid", zdb_label(0, "oss-a", Some(0xc3c3c3c3)), "oss-a", 0xc3c3c3c3),
        ("fenced host's hostid, another name", zdb_label(0, "oss-c", Some(0xa1a1a1a1)), "oss-c", 0xa1a1a1a1),
        ("our hostid, the fenced host's name", zdb_label(0, "oss-a", Some(0xb2b2b2b2)), "oss-a", 0xb2b2b2b2),
        ("empty hostname (doc sample)", ok(&fixture!("derived/zdb-e-C-hostname-empty.txt").0), "", 2746588504),
        ("no hostid (hostid 0)", zdb_label(0, "oss-a", None), "oss-a", 0),
    ];
    for (why, answer, hostname, hostid) in cases {
        let mut run = SequenceRun::forced(&zfs_target(), &oss_b(), &oss_a(), &cluster(), t());
        let (issued, v) = drive(&mut run, world_with("zdb-check", answer));
        assert_eq!(issued, ["zdb -e -C tank"], "{why}: no import is ever issued");
        assert_eq!(
            v,
            StepVerdict::Failed(StorageError::ForeignOwner {
                step: "zdb-check".into(),
                pool: "tank".into(),
                hostname: hostname.into(),
                hostid,
            }),
            "{why}"
        );
        assert!(!run.used_force() && run.label().is_none(), "{why}");
    }
}

#[test]
fn forced_unreadable_label_aborts_before_import() {
    let grep_only = out_fixture(fixture!("openzfs-2.1.11/boot2-16-zdb-e-C-grep-state1.txt"));
    let cases: Vec<(&str, CommandResult, &str)> = vec![
        ("zdb cannot open the pool", err_fixture(fixture!("openzfs-2.1.11/boot1-11-zdb-C-cannot-open.txt")), "failed"),
        ("no MOS header", grep_only, "cannot understand"),
        ("garbage", ok("Segmentation fault\n"), "cannot understand"),
        ("empty", ok(""), "cannot understand"),
        (
            "another pool's config",
            ok(&zdb_label(0, "oss-a", Some(0xa1a1a1a1)).stdout.replace("'tank'", "'tank2'")),
            "cannot understand",
        ),
        (
            "no state",
            ok(&zdb_label(0, "oss-a", Some(0xa1a1a1a1)).stdout.replace("        state: 0\n", "")),
            "cannot understand",
        ),
        (
            "no hostname",
            ok(&zdb_label(0, "oss-a", Some(0xa1a1a1a1)).stdout.replace("        hostname: 'oss-a'\n", "")),
            "cannot understand",
        ),
        ("unknown state", zdb_label(6, "oss-a", Some(0xa1a1a1a1)), "cannot understand"),
        ("spawn failed", CommandResult { exit: Exit::SpawnFailed("zdb: not found".into()), ..ok("") }, "failed"),
        ("signal", CommandResult { exit: Exit::Signal(9), ..ok("") }, "failed"),
        ("timeout", CommandResult::timed_out(), "timed out"),
    ];
    for (why, answer, expect) in cases {
        let mut run = SequenceRun::forced(&zfs_target(), &oss_b(), &oss_a(), &cluster(), t());
        let (issued, v) = drive(&mut run, world_with("zdb-check", answer));
        assert_eq!(issued, ["zdb -e -C tank"], "{why}");
        let StepVerdict::Failed(e) = v else { panic!("{why}: {v:?}") };
        assert!(e.to_string().contains(expect), "{why}: {e}");
        assert!(e.to_string().starts_with("zdb-check: "), "{why}: {e}");
    }
}

#[test]
fn forced_destroyed_pool_aborts() {
    let mut run = SequenceRun::forced(&zfs_target(), &oss_b(), &oss_a(), &cluster(), t());
    let (issued, v) = drive(&mut run, world_with("zdb-check", zdb_label(2, "oss-a", Some(0xa1a1a1a1))));
    assert_eq!(issued, ["zdb -e -C tank"]);
    assert_eq!(v, StepVerdict::Failed(StorageError::Destroyed { step: "zdb-check".into(), pool: "tank".into() }));
}

#[test]
fn forced_mmp_refusal_means_the_owner_is_alive() {
    // boot3-tryB: oss-a still holds the pool; oss-b's import -f is refused by the MMP activity check.
    let mut run = SequenceRun::forced(&zfs_target(), &oss_b(), &oss_a(), &cluster(), t());
    let answer = err_fixture(fixture!("openzfs-2.1.11/boot3-tryB-05-import-f-mmp-active.txt"));
    let (issued, v) = drive(&mut run, world_with("import", answer));
    assert_eq!(issued, FORCED_F[..2]);
    assert_eq!(
        v,
        StepVerdict::Failed(StorageError::MmpActive {
            step: "import".into(),
            detail: "cannot import 'tank': pool is imported on host 'oss-a' (hostid=a1a1a1a1).".into(),
        })
    );
    // Without -f (exported label), the other MMP text.
    let mut run = SequenceRun::forced(&zfs_target(), &oss_b(), &oss_a(), &cluster(), t());
    let answer = err_fixture(fixture!("openzfs-2.1.11/boot3-tryB-04-import-mmp-active.txt"));
    let (issued, v) = drive(&mut run, move |step, cmd| match step {
        "zdb-check" => zdb_label(1, "oss-a", Some(0xa1a1a1a1)),
        "import" => answer.clone(),
        _ => healthy_world(step, cmd),
    });
    assert_eq!(issued, without_f()[..2]);
    assert!(matches!(v, StepVerdict::Failed(StorageError::MmpActive { .. })), "{v:?}");
}

#[test]
fn forced_import_refusals_and_timeouts() {
    let previously = err_fixture(fixture!("openzfs-2.1.11/boot2-07-import-previously-in-use.txt"));
    let mut run = SequenceRun::forced(&zfs_target(), &oss_b(), &oss_a(), &cluster(), t());
    let (_, v) = drive(&mut run, world_with("import", previously));
    assert_eq!(
        v,
        StepVerdict::Failed(StorageError::NotExported {
            step: "import".into(),
            pool: "tank".into(),
            hostname: "oss-a".into(),
            hostid: 0xa1a1a1a1,
        })
    );
    let mut run = SequenceRun::forced(&zfs_target(), &oss_b(), &oss_a(), &cluster(), t());
    let (issued, v) = drive(&mut run, world_with("import", CommandResult::timed_out()));
    assert_eq!(issued.len(), 2);
    assert_eq!(
        v,
        StepVerdict::Failed(StorageError::TimedOut {
            step: "import".into(),
            command: "zpool import -f -o cachefile=none tank".into(),
        })
    );
    for (fixture, why) in [
        (fixture!("derived/import-no-such-pool.txt"), "no such pool available"),
        (fixture!("derived/import-name-exists.txt"), "a pool with that name already exists"),
        (fixture!("derived/import-hostid-unset-doc.txt"), "multihost property"),
    ] {
        let mut run = SequenceRun::forced(&zfs_target(), &oss_b(), &oss_a(), &cluster(), t());
        let (_, v) = drive(&mut run, world_with("import", err_fixture(fixture)));
        let StepVerdict::Failed(StorageError::CommandFailed { step, detail, .. }) = v else { panic!("{v:?}") };
        assert_eq!(step, "import");
        assert!(detail.contains(why), "{detail}");
    }
}

#[test]
fn forced_checks_after_import() {
    let suspended = out_fixture(fixture!("derived/zpool-status-x-suspended.txt"));
    let mut run = SequenceRun::forced(&zfs_target(), &oss_b(), &oss_a(), &cluster(), t());
    let (issued, v) = drive(&mut run, world_with("pool-status", suspended));
    assert_eq!(issued.len(), 3);
    let StepVerdict::Failed(StorageError::Unhealthy { step, detail }) = v else { panic!("{v:?}") };
    assert_eq!(step, "pool-status");
    assert!(detail.contains("state: SUSPENDED"), "{detail}");

    // A DEGRADED pool serves data (one side of a mirror missing): the takeover goes on.
    let degraded = out_fixture(fixture!("derived/zpool-status-x-degraded.txt"));
    let mut run = SequenceRun::forced(&zfs_target(), &oss_b(), &oss_a(), &cluster(), t());
    let (issued, v) = drive(&mut run, world_with("pool-status", degraded));
    assert!(matches!(v, StepVerdict::Done), "{v:?}");
    assert!(issued.iter().any(|c| c.starts_with("mount -t lustre")), "{issued:?}");

    // An ONLINE pool with a remark is printed in full by `-x` (status_callback): it serves data; the remark
    // comes back to the engine (pool_remark event), the takeover goes on.
    let ashift = out_fixture(fixture!("derived/zpool-status-x-online-non-native-ashift.txt"));
    let mut run = SequenceRun::forced(&zfs_target(), &oss_b(), &oss_a(), &cluster(), t());
    let (issued, v) = drive(&mut run, world_with("pool-status", ashift));
    assert!(matches!(v, StepVerdict::Done), "{v:?}");
    assert!(issued.iter().any(|c| c.starts_with("mount -t lustre")), "{issued:?}");
    let remarks = run.take_remarks();
    assert_eq!(remarks.len(), 1, "{remarks:?}");
    assert_eq!(remarks[0].state, "ONLINE");
    assert_eq!(remarks[0].status.as_deref(), Some("One or more devices are configured to use a non-native block size."));

    // `all pools are healthy` does not name the pool: not the answer to `status -x tank`.
    let mut run = SequenceRun::forced(&zfs_target(), &oss_b(), &oss_a(), &cluster(), t());
    let (_, v) = drive(&mut run, world_with("pool-status", ok("pool 'tank2' is healthy\n")));
    assert!(matches!(v, StepVerdict::Failed(StorageError::Unhealthy { .. })), "{v:?}");

    let missing = err_fixture(fixture!("derived/zfs-list-missing.txt"));
    let mut run = SequenceRun::forced(&zfs_target(), &oss_b(), &oss_a(), &cluster(), t());
    let (issued, v) = drive(&mut run, world_with("dataset", missing));
    assert_eq!(issued.len(), 4);
    assert!(
        matches!(v, StepVerdict::Failed(StorageError::CommandFailed { ref step, .. }) if step == "dataset"),
        "{v:?}"
    );
    // Only the pool's root dataset listed.
    let mut run = SequenceRun::forced(&zfs_target(), &oss_b(), &oss_a(), &cluster(), t());
    let (_, v) = drive(&mut run, world_with("dataset", ok("tank\t147K\t352M\t24K\t/tank\n")));
    assert!(matches!(v, StepVerdict::Failed(StorageError::CommandFailed { .. })), "{v:?}");

    let ebusy = err_fixture(fixture!("derived/mount-lustre-ebusy.txt"));
    let mut run = SequenceRun::forced(&zfs_target(), &oss_b(), &oss_a(), &cluster(), t());
    let (issued, v) = drive(&mut run, world_with("mount", ebusy));
    assert_eq!(issued.len(), 6);
    assert_eq!(
        v,
        StepVerdict::Failed(StorageError::DeviceBusy {
            step: "mount".into(),
            detail: "mount.lustre: mount tank/ost0 at /lustre/ost0 failed: Device or resource busy".into(),
        })
    );
    let enodev = err_fixture(fixture!("derived/mount-lustre-enodev.txt"));
    let mut run = SequenceRun::forced(&zfs_target(), &oss_b(), &oss_a(), &cluster(), t());
    let (_, v) = drive(&mut run, world_with("mount", enodev));
    assert!(matches!(v, StepVerdict::Failed(StorageError::CommandFailed { .. })), "{v:?}");
    let mut run = SequenceRun::forced(&zfs_target(), &oss_b(), &oss_a(), &cluster(), t());
    let (_, v) = drive(&mut run, world_with("mount", CommandResult::timed_out()));
    assert!(matches!(v, StepVerdict::Failed(StorageError::TimedOut { .. })), "{v:?}");

    let mut run = SequenceRun::forced(&zfs_target(), &oss_b(), &oss_a(), &cluster(), t());
    let (_, v) = drive(&mut run, world_with("verify-df", ok(&fixture!("derived/df-ht-lustre-file-system.txt").0)));
    assert!(matches!(v, StepVerdict::Failed(StorageError::Unhealthy { ref step, .. }) if step == "verify-df"), "{v:?}");

    let mut run = SequenceRun::forced(&zfs_target(), &oss_b(), &oss_a(), &cluster(), t());
    let (issued, v) = drive(&mut run, world_with("verify-lctl", ok(&fixture!("derived/lctl-dl-mgs-zfs.txt").0)));
    assert_eq!(issued.len(), 8);
    assert!(
        matches!(v, StepVerdict::Failed(StorageError::Unhealthy { ref step, .. }) if step == "verify-lctl"),
        "{v:?}"
    );
    let mut run = SequenceRun::forced(&zfs_target(), &oss_b(), &oss_a(), &cluster(), t());
    let (_, v) = drive(&mut run, world_with("verify-lctl", ok("  3 ST obdfilter lfs-OST0000 lfs-OST0000_UUID 4\n")));
    let StepVerdict::Failed(StorageError::Unhealthy { detail, .. }) = v else { panic!("{v:?}") };
    assert!(detail.contains("ST"), "{detail}");
}

#[test]
fn forced_verify_df_tolerates_wrapped_source_and_mount_options() {
    let mut target = zfs_target();
    target.kind = TargetKind::Zfs {
        pool: "tank".into(),
        dataset: "tank/a-very-long-dataset-name-that-does-not-fit-in-the-df-column".into(),
    };
    target.mount_options = Some("abort_recov".into());
    let mut run = SequenceRun::forced(&target, &oss_b(), &oss_a(), &cluster(), t());
    let (issued, v) = drive(&mut run, |step, cmd| match step {
        "dataset" => ok("tank/a-very-long-dataset-name-that-does-not-fit-in-the-df-column\t24K\t352M\t24K\t-\n"),
        "verify-df" => ok("File system      Size  Used Avail Use% Mounted on\n\
                           tank/a-very-long-dataset-name-that-does-not-fit-in-the-df-column\n\
                           \x20                352M   24K  352M   1% /lustre/ost0\n"),
        _ => healthy_world(step, cmd),
    });
    assert_eq!(v, StepVerdict::Done);
    assert_eq!(
        issued[5],
        "mount -t lustre -o abort_recov tank/a-very-long-dataset-name-that-does-not-fit-in-the-df-column /lustre/ost0"
    );
}

// ----- acquire ----------------------------------------------------------------------------------------------------

#[test]
fn acquire_after_controlled_export_never_uses_f() {
    let mut run = SequenceRun::acquire(&zfs_target(), &oss_b(), &cluster(), t());
    assert_eq!(run.kind(), SequenceKind::Acquire);
    let (issued, v) = drive(&mut run, world_with("zdb-check", zdb_label(1, "oss-a", Some(0xa1a1a1a1))));
    assert_eq!(v, StepVerdict::Done);
    assert_eq!(issued, without_f());
    assert!(!run.used_force());
    // Our own label, ACTIVE (we crashed and came back) or EXPORTED: import without -f.
    for state in [0, 1] {
        let mut run = SequenceRun::acquire(&zfs_target(), &oss_b(), &cluster(), t());
        let (issued, v) = drive(&mut run, world_with("zdb-check", zdb_label(state, "oss-b", Some(0xb2b2b2b2))));
        assert_eq!((issued, v), (without_f(), StepVerdict::Done));
    }
}

#[test]
fn acquire_refuses_a_pool_still_active_elsewhere() {
    // The crash capture: ACTIVE on oss-a. Never -f in a controlled migration.
    let mut run = SequenceRun::acquire(&zfs_target(), &oss_b(), &cluster(), t());
    let (issued, v) = drive(&mut run, healthy_world);
    assert_eq!(issued, ["zdb -e -C tank"]);
    assert_eq!(
        v,
        StepVerdict::Failed(StorageError::NotExported {
            step: "zdb-check".into(),
            pool: "tank".into(),
            hostname: "oss-a".into(),
            hostid: 0xa1a1a1a1,
        })
    );
    for label in [
        zdb_label(1, "oss-z", Some(0x12345678)),
        zdb_label(1, "oss-a", Some(0xc3c3c3c3)),
        zdb_label(0, "oss-z", Some(1)),
    ] {
        let mut run = SequenceRun::acquire(&zfs_target(), &oss_b(), &cluster(), t());
        let (issued, v) = drive(&mut run, world_with("zdb-check", label));
        assert_eq!(issued, ["zdb -e -C tank"]);
        assert!(matches!(v, StepVerdict::Failed(StorageError::ForeignOwner { .. })), "{v:?}");
    }
    // The label changed between zdb and import: "previously in use" → NotExported.
    let mut run = SequenceRun::acquire(&zfs_target(), &oss_b(), &cluster(), t());
    let (issued, v) = drive(&mut run, move |step, cmd| match step {
        "zdb-check" => zdb_label(1, "oss-a", Some(0xa1a1a1a1)),
        "import" => err_fixture(fixture!("openzfs-2.1.11/boot2-07-import-previously-in-use.txt")),
        _ => healthy_world(step, cmd),
    });
    assert_eq!(issued, without_f()[..2]);
    assert!(matches!(v, StepVerdict::Failed(StorageError::NotExported { ref step, .. }) if step == "import"), "{v:?}");
}

// ----- release ----------------------------------------------------------------------------------------------------

#[test]
fn release_umounts_then_exports() {
    let mut run = SequenceRun::release(&zfs_target(), t());
    assert_eq!(run.kind(), SequenceKind::Release);
    let (name, cmd) = run.current().unwrap();
    assert_eq!((name, cmd.timeout), ("umount", Duration::from_secs(300)));
    assert_eq!(cmd.argv, ["umount", "/lustre/ost0"]);
    assert_eq!(run.on_result(&ok("")), StepVerdict::Next);
    let (name, cmd) = run.current().unwrap();
    assert_eq!((name, cmd.timeout), ("export", Duration::from_secs(30)));
    assert_eq!(cmd.argv, ["zpool", "export", "tank"]);
    assert_eq!(run.on_result(&ok("")), StepVerdict::Done);
    assert!(run.current().is_none());

    let busy = err_fixture(fixture!("derived/zpool-export-busy.txt"));
    let mut run = SequenceRun::release(&zfs_target(), t());
    let (issued, v) = drive(&mut run, world_with("export", busy));
    assert_eq!(issued, ["umount /lustre/ost0", "zpool export tank"]);
    let StepVerdict::Failed(StorageError::CommandFailed { step, detail, .. }) = v else { panic!("{v:?}") };
    assert_eq!(step, "export");
    assert!(detail.contains("cannot export 'tank': pool is busy"), "{detail}");

    let mut run = SequenceRun::release(&zfs_target(), t());
    let (issued, v) =
        drive(&mut run, world_with("umount", CommandResult::exited(32, "", "umount: /lustre/ost0: target is busy.\n")));
    assert_eq!(issued, ["umount /lustre/ost0"]);
    assert!(matches!(v, StepVerdict::Failed(StorageError::CommandFailed { .. })), "{v:?}");
}

// ----- monitor ----------------------------------------------------------------------------------------------------

fn monitored() -> TargetConfig {
    let mut target = zfs_target();
    target.health_nids = vec!["192.168.56.121@tcp".into(), "10.0.0.2@o2ib".into()];
    target.check_command = Some(vec!["/usr/local/bin/check-ost".into(), "ost0".into()]);
    target
}

#[test]
fn monitor_checks_pool_mount_lustre_lnet_and_operator_check() {
    let mut run = SequenceRun::monitor(&monitored(), t());
    assert_eq!(run.kind(), SequenceKind::Monitor);
    assert_eq!(run.plan(), ["pool-health", "mounted", "health-check", "lnet-ping", "lnet-ping", "check-command"]);
    let (issued, v) = drive(&mut run, healthy_world);
    assert_eq!(v, StepVerdict::Done);
    assert_eq!(
        issued,
        [
            "zpool list -H -o name,health tank",
            "cat /proc/mounts",
            "lctl get_param -n health_check",
            "lctl ping 192.168.56.121@tcp",
            "lctl ping 10.0.0.2@o2ib",
            "/usr/local/bin/check-ost ost0",
        ]
    );
    // Without NIDs nor check command.
    let mut run = SequenceRun::monitor(&zfs_target(), t());
    assert_eq!(run.plan(), ["pool-health", "mounted", "health-check"]);
    assert_eq!(drive(&mut run, healthy_world).1, StepVerdict::Done);
}

#[test]
fn monitor_failures() {
    let unhealthy = |step: &'static str, answer: CommandResult, expect: &str| {
        let mut run = SequenceRun::monitor(&monitored(), t());
        let (_, v) = drive(&mut run, world_with(step, answer));
        let StepVerdict::Failed(StorageError::Unhealthy { step: s, detail }) = v else { panic!("{step}: {v:?}") };
        assert_eq!(s, step);
        assert!(detail.contains(expect), "{step}: {detail}");
    };
    unhealthy("pool-health", out_fixture(fixture!("derived/zpool-list-H-suspended.txt")), "SUSPENDED");
    unhealthy("pool-health", ok("tank\tFAULTED\n"), "FAULTED");
    unhealthy(
        "pool-health",
        out_fixture(fixture!("openzfs-2.1.11/boot3-tryB-06-zpool-list-H-empty.txt")),
        "not imported",
    );
    unhealthy("pool-health", err_fixture(fixture!("derived/zpool-list-no-such-pool.txt")), "no such pool");
    unhealthy("mounted", ok("/dev/vda2 / ext4 rw 0 0\n"), "/lustre/ost0");
    unhealthy("mounted", ok("192.168.56.121@tcp:/lfs /lustre/ost0 lustre rw 0 0\n"), "/lustre/ost0");
    unhealthy("health-check", out_fixture(fixture!("derived/health-check-not-healthy.txt")), "NOT HEALTHY");
    unhealthy("health-check", out_fixture(fixture!("derived/health-check-lbug.txt")), "LBUG");
    unhealthy("lnet-ping", err_fixture(fixture!("derived/lctl-ping-failed.txt")), "failed to ping");
    unhealthy("check-command", CommandResult::exited(2, "", "ost0 is slow\n"), "ost0 is slow");

    // DEGRADED still serves; lustre_tgt counts as mounted.
    let mut run = SequenceRun::monitor(&monitored(), t());
    let (_, v) = drive(&mut run, |step, cmd| match step {
        "pool-health" => ok("tank\tDEGRADED\n"),
        "mounted" => ok("tank/ost0 /lustre/ost0 lustre_tgt ro 0 0\n"),
        _ => healthy_world(step, cmd),
    });
    assert_eq!(v, StepVerdict::Done);

    let mut run = SequenceRun::monitor(&monitored(), t());
    let (issued, v) = drive(&mut run, world_with("pool-health", CommandResult::timed_out()));
    assert_eq!(issued.len(), 1);
    assert!(matches!(v, StepVerdict::Failed(StorageError::TimedOut { .. })), "{v:?}");
    let mut run = SequenceRun::monitor(&monitored(), t());
    let (_, v) = drive(&mut run, world_with("health-check", ok("maybe\n")));
    assert!(matches!(v, StepVerdict::Failed(StorageError::Unparseable { .. })), "{v:?}");
}

// ----- ldiskfs ----------------------------------------------------------------------------------------------------

#[test]
fn ldiskfs_sequences() {
    let target = ldiskfs_target();
    let mds_a = HostIdentity::new("mds-a", 1);
    let mds_b = HostIdentity::new("mds-b", 2);
    let expected =
        ["mkdir -p /lfs/mdt0", "mount -t lustre -o abort_recov /dev/sdb /lfs/mdt0", "df -ht lustre", "lctl dl"];
    let mut run = SequenceRun::forced(&target, &mds_b, &mds_a, &[mds_a.clone(), mds_b.clone()], t());
    let (issued, v) = drive(&mut run, healthy_world);
    assert_eq!((issued, v), (expected.map(String::from).to_vec(), StepVerdict::Done));
    assert!(run.label().is_none() && !run.used_force());
    let mut run = SequenceRun::acquire(&target, &mds_b, &[mds_a.clone(), mds_b.clone()], t());
    let (issued, v) = drive(&mut run, healthy_world);
    assert_eq!((issued, v), (expected.map(String::from).to_vec(), StepVerdict::Done));

    // ext4 MMP: the device is active on another node → abort, do not retry.
    let mut run = SequenceRun::forced(&target, &mds_b, &mds_a, &[], t());
    let (issued, v) = drive(&mut run, world_with("mount", err_fixture(fixture!("derived/mount-ldiskfs-mmp.txt"))));
    assert_eq!(issued.len(), 2);
    assert!(matches!(v, StepVerdict::Failed(StorageError::DeviceBusy { ref step, .. }) if step == "mount"), "{v:?}");

    let mut run = SequenceRun::release(&target, t());
    let (issued, v) = drive(&mut run, healthy_world);
    assert_eq!((issued, v), (vec!["umount /lfs/mdt0".to_string()], StepVerdict::Done));

    let mut run = SequenceRun::monitor(&target, t());
    let (issued, v) = drive(&mut run, healthy_world);
    assert_eq!(v, StepVerdict::Done);
    assert_eq!(issued, ["cat /proc/mounts", "lctl get_param -n health_check", "lctl ping 192.168.201.141@tcp"]);
}

// ----- discovery --------------------------------------------------------------------------------------------------

#[test]
fn discovery() {
    let cmds = discover_commands(t());
    assert_eq!(
        cmds.iter().map(Command::display).collect::<Vec<_>>(),
        ["zpool list -H -o name,health", "cat /proc/mounts"]
    );
    assert!(cmds.iter().all(|c| c.timeout == Duration::from_secs(30)));

    let pools = out_fixture(fixture!("openzfs-2.1.11/boot1-08-zpool-list-H-name-health.txt"));
    let mounts = out_fixture(fixture!("derived/proc-mounts.txt"));
    assert_eq!(
        parse_discovery(&pools, &mounts).unwrap(),
        LocalHoldings { pools: vec!["tank".into()], lustre_mounts: vec!["/lustre/ost0".into(), "/lfs/mdt 0".into()] }
    );
    let none = out_fixture(fixture!("openzfs-2.1.11/boot3-tryB-06-zpool-list-H-empty.txt"));
    assert_eq!(parse_discovery(&none, &ok("proc /proc proc rw 0 0\n")).unwrap(), LocalHoldings::default());
    // A suspended pool is still held here.
    let suspended = out_fixture(fixture!("derived/zpool-list-H-suspended.txt"));
    assert_eq!(parse_discovery(&suspended, &ok("")).unwrap().pools, ["tank"]);

    assert!(matches!(parse_discovery(&CommandResult::timed_out(), &mounts), Err(StorageError::TimedOut { .. })));
    assert!(matches!(parse_discovery(&ok("tank\n"), &mounts), Err(StorageError::Unparseable { .. })));
    assert!(matches!(
        parse_discovery(&pools, &CommandResult::exited(1, "", "cat: /proc/mounts: No such file\n")),
        Err(StorageError::CommandFailed { .. })
    ));
}


#[test]
fn cleanup_tolerates_what_is_already_released() {
    use failoverd::command::CommandResult;
    use failoverd::storage::{SequenceRun, StepVerdict};
    let t = cleanup_target();
    let mut run = SequenceRun::cleanup(&t, cleanup_timeouts());
    assert_eq!(run.current().unwrap().1.argv, vec!["umount", "/lustre/mdt0"]);
    let v = run.on_result(&CommandResult::exited(32, "", "umount: /lustre/mdt0: not mounted.\n"));
    assert_eq!(v, StepVerdict::Next);
    assert_eq!(run.current().unwrap().1.argv, vec!["zpool", "export", "mdt0pool"]);
    assert_eq!(run.on_result(&CommandResult::exited(1, "", "cannot open 'mdt0pool': no such pool\n")), StepVerdict::Done);
    // a real failure still fails
    let mut run = SequenceRun::cleanup(&t, cleanup_timeouts());
    assert_eq!(run.on_result(&CommandResult::exited(32, "", "umount: /lustre/mdt0: target is busy.\n")).clone(), run.outcome().unwrap().clone());
    assert!(matches!(run.outcome(), Some(StepVerdict::Failed(_))));
}

fn cleanup_timeouts() -> failoverd::storage::StorageTimeouts {
    use std::time::Duration;
    failoverd::storage::StorageTimeouts { import: Duration::from_secs(120), mount: Duration::from_secs(300), command: Duration::from_secs(60) }
}

fn cleanup_target() -> failoverd::config::TargetConfig {
    use failoverd::config::{TargetConfig, TargetKind};
    TargetConfig {
        name: "lustre-MDT0000".into(),
        kind: TargetKind::Zfs { pool: "mdt0pool".into(), dataset: "mdt0pool/mdt0".into() },
        mountpoint: "/lustre/mdt0".into(),
        nodes: vec!["mds1".into(), "mds2".into()],
        start_order: 1,
        lctl_device: "lustre-MDT0000".into(),
        mount_options: None,
        health_nids: vec![],
        check_command: None,
    }
}
