//! The storage sequences of a plain ZFS dataset (`fstype = "zfs"`, `TargetKind::ZfsDataset`): the pool steps of a
//! Lustre-on-ZFS target, then `mount -t zfs` and a check of `/proc/mounts` instead of `df -ht lustre` and
//! `lctl dl`. Fed realistic results: the outputs of real OpenZFS 2.1.11 and 2.3.2 captured by
//! `scripts/real-zfs-lab` in QEMU guests (tests/fixtures/openzfs-<version>/real-zfs-lab/).

use std::path::PathBuf;
use std::time::Duration;

use failoverd::command::{Command, CommandResult};
use failoverd::config::{Fstype, TargetConfig, TargetKind};
use failoverd::storage::sequence::{lustre_checks_skipped, Step};
use failoverd::storage::{
    discover_commands, parse_discovery, HostIdentity, SequenceKind, SequenceRun, StepVerdict, StorageError,
    StorageTimeouts,
};

fn t() -> StorageTimeouts {
    StorageTimeouts {
        import: Duration::from_secs(300),
        mount: Duration::from_secs(120),
        command: Duration::from_secs(60),
    }
}

fn oss_a() -> HostIdentity {
    HostIdentity::new("oss-a", 0xa1a1a1a1)
}
fn oss_b() -> HostIdentity {
    HostIdentity::new("oss-b", 0xb2b2b2b2)
}

fn dataset_target() -> TargetConfig {
    TargetConfig {
        name: "OST0".into(),
        kind: TargetKind::ZfsDataset { pool: "ost0pool".into(), dataset: "ost0pool/data".into() },
        mountpoint: PathBuf::from("/srv/ost0"),
        nodes: vec!["oss-a".into(), "oss-b".into()],
        start_order: 0,
        lctl_device: "OST0".into(),
        mount_options: None,
        health_nids: vec![],
        check_command: None,
    }
}

fn ok(stdout: &str) -> CommandResult {
    CommandResult::exited(0, stdout, "")
}

/// A capture of the lab's command wrapper as the result the daemon would have read.
fn capture(text: &str) -> CommandResult {
    let c = crate::support::capture::parse(text);
    CommandResult::exited(c.rc, c.stdout, c.stderr)
}

macro_rules! real {
    ($version:literal, $name:literal) => {
        capture(include_str!(concat!("../fixtures/openzfs-", $version, "/real-zfs-lab/", $name)))
    };
}

const MOUNTS_OK: &str = "proc /proc proc rw,relatime 0 0\ntmpfs /run tmpfs rw,relatime 0 0\n\
                         ost0pool/data /srv/ost0 zfs rw,relatime,xattr,noacl 0 0\n";

/// Every step of a healthy takeover of OST0 on oss-b, answered with `version`'s real outputs.
fn world(version: &str, step: &str) -> CommandResult {
    match (version, step) {
        ("2.1", "zdb-check") => real!("2.1.11", "zdb-e-C-ost0pool-active-oss-a.txt"),
        ("2.3", "zdb-check") => real!("2.3.2", "zdb-e-C-ost0pool-active-oss-a.txt"),
        ("2.1", "import") => real!("2.1.11", "zpool-import-f-ost0pool.txt"),
        ("2.3", "import") => real!("2.3.2", "zpool-import-f-ost0pool.txt"),
        ("2.1", "pool-status") => real!("2.1.11", "zpool-status-x-ost0pool.txt"),
        ("2.3", "pool-status") => real!("2.3.2", "zpool-status-x-ost0pool.txt"),
        ("2.1", "dataset") => real!("2.1.11", "zfs-list-H-ost0pool-data.txt"),
        ("2.3", "dataset") => real!("2.3.2", "zfs-list-H-ost0pool-data.txt"),
        ("2.1", "verify-mount") => real!("2.1.11", "cat-proc-mounts-ost0-mounted.txt"),
        ("2.3", "verify-mount") => real!("2.3.2", "cat-proc-mounts-ost0-mounted.txt"),
        ("2.1", "pool-health") => real!("2.1.11", "zpool-list-H-name-health-ost0pool.txt"),
        ("2.3", "pool-health") => real!("2.3.2", "zpool-list-H-name-health-ost0pool.txt"),
        _ => ok(""),
    }
}

fn drive(run: &mut SequenceRun, answer: impl Fn(&str, &Command) -> CommandResult) -> (Vec<String>, StepVerdict) {
    let mut issued = Vec::new();
    for _ in 0..32 {
        let (name, command) = run.current().expect("a running sequence has a current step");
        issued.push(command.display());
        match run.on_result(&answer(name, &command)) {
            StepVerdict::Next => continue,
            end => return (issued, end),
        }
    }
    panic!("sequence does not end");
}

#[test]
fn fstype_of_each_kind() {
    assert_eq!(dataset_target().kind.fstype(), Fstype::Zfs);
    assert_eq!(dataset_target().kind.fstype().as_str(), "zfs");
    assert!(!dataset_target().kind.is_lustre());
    assert_eq!(dataset_target().kind.pool(), Some("ost0pool"));
    assert_eq!(dataset_target().kind.mount_source(), "ost0pool/data");
    let lustre = TargetKind::Zfs { pool: "p".into(), dataset: "p/d".into() };
    assert_eq!(lustre.fstype(), Fstype::Lustre);
    assert!(lustre.is_lustre());
}

#[test]
fn forced_takeover_of_a_dataset_on_real_2_1_and_2_3_outputs() {
    for version in ["2.1", "2.3"] {
        let mut run = SequenceRun::forced(&dataset_target(), &oss_b(), &oss_a(), &[oss_a(), oss_b()], t());
        assert_eq!(run.plan(), ["zdb-check", "import", "pool-status", "dataset", "mkdir", "mount", "verify-mount"]);
        let (issued, verdict) = drive(&mut run, |step, _| world(version, step));
        assert_eq!(verdict, StepVerdict::Done, "OpenZFS {version}");
        assert!(run.used_force(), "OpenZFS {version}: the real label is ACTIVE and names the fenced oss-a");
        assert_eq!(
            issued,
            [
                "zdb -e -C ost0pool",
                "zpool import -f -o cachefile=none ost0pool",
                "zpool status -x ost0pool",
                "zfs list -H ost0pool/data",
                "mkdir -p /srv/ost0",
                "mount -t zfs ost0pool/data /srv/ost0",
                "cat /proc/mounts",
            ],
            "OpenZFS {version}"
        );
        let label = run.label().expect("label read");
        assert_eq!((label.hostname.as_str(), label.hostid_or_zero()), ("oss-a", 0xa1a1a1a1), "OpenZFS {version}");
    }
}

#[test]
fn acquire_never_forces_and_mount_options_pass_through() {
    let mut target = dataset_target();
    target.mount_options = Some("noatime".into());
    let run = SequenceRun::acquire(&target, &oss_b(), &[oss_a(), oss_b()], t());
    assert_eq!(run.plan(), ["zdb-check", "import", "pool-status", "dataset", "mkdir", "mount", "verify-mount"]);
    let mut run = run;
    let exported = |step: &str, _: &Command| match step {
        "zdb-check" => ok(&world("2.1", "zdb-check").stdout.replace("state: 0", "state: 1")),
        "verify-mount" => ok(MOUNTS_OK),
        s => world("2.1", s),
    };
    let (issued, verdict) = drive(&mut run, exported);
    assert_eq!(verdict, StepVerdict::Done);
    assert!(!run.used_force());
    assert!(issued.contains(&"zpool import -o cachefile=none ost0pool".to_string()));
    assert!(issued.contains(&"mount -t zfs -o noatime ost0pool/data /srv/ost0".to_string()));
}

#[test]
fn verify_mount_wants_this_dataset_as_zfs_on_the_mount_point() {
    let cases = [
        ("ost0pool/data /srv/ost0 zfs rw 0 0\n", true),
        ("ost0pool/other /srv/ost0 zfs rw 0 0\n", false), // another dataset there
        ("ost0pool/data /srv/ost1 zfs rw 0 0\n", false),  // mounted elsewhere
        ("tmpfs /srv/ost0 tmpfs rw 0 0\n", false),        // something else on the mount point
        ("ost0pool/data /srv/ost0 lustre rw 0 0\n", false),
        ("", false),
    ];
    for (mounts, good) in cases {
        let mut run = SequenceRun::forced(&dataset_target(), &oss_b(), &oss_a(), &[oss_a(), oss_b()], t());
        let (_, verdict) =
            drive(&mut run, |step, _| if step == "verify-mount" { ok(mounts) } else { world("2.1", step) });
        match (good, verdict) {
            (true, StepVerdict::Done) => {}
            (false, StepVerdict::Failed(StorageError::Unhealthy { step, detail })) => {
                assert_eq!(step, "verify-mount");
                assert!(detail.contains("/srv/ost0"), "{detail}");
            }
            (g, v) => panic!("{mounts:?}: expected good={g}, got {v:?}"),
        }
    }
}

#[test]
fn mount_zfs_failure_stops_the_takeover() {
    let mut run = SequenceRun::forced(&dataset_target(), &oss_b(), &oss_a(), &[oss_a(), oss_b()], t());
    let refused =
        CommandResult::exited(1, "", "filesystem 'ost0pool/data' cannot be mounted, unable to open the dataset\n");
    let (issued, verdict) =
        drive(&mut run, |step, _| if step == "mount" { refused.clone() } else { world("2.3", step) });
    assert_eq!(issued.last().map(String::as_str), Some("mount -t zfs ost0pool/data /srv/ost0"));
    assert!(matches!(verdict, StepVerdict::Failed(StorageError::CommandFailed { ref step, .. }) if step == "mount"));
}

#[test]
fn monitor_checks_pool_and_mount_and_no_lustre() {
    let mut target = dataset_target();
    let run = SequenceRun::monitor(&target, t());
    assert_eq!(run.plan(), ["pool-health", "verify-mount"]);
    target.check_command = Some(vec!["/usr/local/bin/check-ost0".into()]);
    let mut run = SequenceRun::monitor(&target, t());
    assert_eq!(run.plan(), ["pool-health", "verify-mount", "check-command"]);
    let (issued, verdict) = drive(&mut run, |step, _| world("2.1", step));
    assert_eq!(verdict, StepVerdict::Done);
    assert_eq!(issued, ["zpool list -H -o name,health ost0pool", "cat /proc/mounts", "/usr/local/bin/check-ost0"]);
    // SUSPENDED (the real 2.1.11 answer after MMP suspended the pool) fails the health check
    let suspended = real!("2.1.11", "zpool-list-H-name-health-suspended.txt");
    let mut run = SequenceRun::monitor(&dataset_target(), t());
    let (_, verdict) =
        drive(&mut run, |step, _| if step == "pool-health" { suspended.clone() } else { world("2.1", step) });
    assert!(matches!(verdict, StepVerdict::Failed(StorageError::Unhealthy { ref step, .. }) if step == "pool-health"));
}

#[test]
fn release_and_cleanup_are_the_zfs_ones() {
    let run = SequenceRun::release(&dataset_target(), t());
    assert_eq!(run.kind(), SequenceKind::Release);
    assert_eq!(run.plan(), ["umount", "export"]);
    let run = SequenceRun::cleanup(&dataset_target(), t());
    assert_eq!(run.plan(), ["umount", "export"]);
}

#[test]
fn the_skipped_lustre_checks_are_named() {
    let skipped: Vec<&str> = lustre_checks_skipped(&dataset_target()).iter().map(|(s, _)| *s).collect();
    assert_eq!(skipped, ["verify-df", "verify-lctl", "health-check", "lnet-ping"]);
    let lustre = TargetConfig {
        kind: TargetKind::Zfs { pool: "ost0pool".into(), dataset: "ost0pool/ost0".into() },
        ..dataset_target()
    };
    assert!(lustre_checks_skipped(&lustre).is_empty());
    assert_eq!(Step::VerifyMount.name(), "verify-mount");
}

#[test]
fn discovery_finds_a_mounted_dataset() {
    let cmds = discover_commands(t());
    assert_eq!(cmds.len(), 2);
    let pools = ok("ost0pool\tONLINE\n");
    let mounts = ok(MOUNTS_OK);
    let held = parse_discovery(&pools, &mounts).expect("parsed");
    assert_eq!(held.pools, ["ost0pool"]);
    assert_eq!(held.lustre_mounts, ["/srv/ost0"], "a zfs dataset mount is a target mount");
    // tmpfs, proc and a zfs root without a dataset path are not
    let held = parse_discovery(&pools, &ok("rpool / zfs rw 0 0\ntmpfs /run tmpfs rw 0 0\n")).expect("parsed");
    assert!(held.lustre_mounts.is_empty());
}

#[test]
fn acquire_after_a_real_export_imports_without_f_on_both_releases() {
    let zdb =
        [real!("2.1.11", "zdb-e-C-ost0pool-exported-oss-a.txt"), real!("2.3.2", "zdb-e-C-ost0pool-exported-oss-a.txt")];
    let import =
        [real!("2.1.11", "zpool-import-ost0pool-exported.txt"), real!("2.3.2", "zpool-import-ost0pool-exported.txt")];
    for (zdb, import) in zdb.into_iter().zip(import) {
        assert!(zdb.stdout.contains("state: 1"), "the real label of an exported pool: {}", zdb.stdout);
        let mut run = SequenceRun::acquire(&dataset_target(), &oss_b(), &[oss_a(), oss_b()], t());
        let (issued, verdict) = drive(&mut run, |step, _| match step {
            "zdb-check" => zdb.clone(),
            "import" => import.clone(),
            "verify-mount" => ok(MOUNTS_OK),
            s => world("2.1", s),
        });
        assert_eq!(verdict, StepVerdict::Done);
        assert!(!run.used_force());
        assert_eq!(issued[1], "zpool import -o cachefile=none ost0pool");
    }
}

#[test]
fn the_real_mmp_suspension_fails_the_pool_status_check() {
    // `zpool status -x` on the resumed owner after MMP suspended its pools (the lab's lying-bmc case on 2.1.11;
    // the file begins with the kernel's "MMP writes ... suspending pool" lines, which zpool does not print)
    {
        let text = include_str!("../fixtures/openzfs-2.1.11/real-zfs-lab/harness-lying-bmc-oss-a-status-after-resume.txt");
        assert!(text.contains("suspending pool"), "the kernel's MMP message: {text}");
        let status = &text[text.find("  pool: ").expect("a zpool status block")..];
        assert!(status.contains("state: SUSPENDED"));
        let mut run = SequenceRun::forced(&dataset_target(), &oss_b(), &oss_a(), &[oss_a(), oss_b()], t());
        let (issued, verdict) =
            drive(&mut run, |step, _| if step == "pool-status" { ok(status) } else { world("2.1", step) });
        assert_eq!(issued.last().map(String::as_str), Some("zpool status -x ost0pool"));
        match verdict {
            StepVerdict::Failed(StorageError::Unhealthy { step, detail }) => {
                assert_eq!(step, "pool-status");
                assert!(detail.contains("SUSPENDED"), "{detail}");
            }
            v => panic!("a SUSPENDED pool must stop the takeover: {v:?}"),
        }
    }
}
