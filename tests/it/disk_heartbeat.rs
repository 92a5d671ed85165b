//! The disk heartbeat's I/O thread against real files on the host's filesystem (ext4 here, which supports
//! O_DIRECT): two workers on one file see each other's slots, a missing path or a directory is reported with
//! the device and the step that failed, a device too small for the configuration is refused, and a round
//! still in flight makes the next beat be skipped and counted.

use std::fs;
use std::path::Path;
use std::time::Duration;

use failoverd::runtime::disk_heartbeat::{Access, AlignedBuf, DiskDevice, DiskWorker, NotStarted, RoundResult, SLOT_BYTES};

fn shared_file(dir: &Path, bytes: u64) -> std::path::PathBuf {
    let path = dir.join("disk-heartbeat.img");
    let f = fs::File::create(&path).unwrap();
    f.set_len(bytes).unwrap();
    path
}

fn slot(fill: u8) -> Vec<u8> {
    let mut s = vec![fill; SLOT_BYTES];
    s[0] = b'S';
    s
}

async fn round(worker: &mut DiskWorker, rx: &mut tokio::sync::mpsc::UnboundedReceiver<RoundResult>, bytes: Vec<u8>) -> RoundResult {
    worker.start_round(bytes).unwrap();
    let r = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.expect("round came back").expect("thread alive");
    worker.round_done();
    r
}

#[test]
fn aligned_buffers_are_aligned() {
    for len in [SLOT_BYTES, 3 * SLOT_BYTES, 1] {
        let b = AlignedBuf::zeroed(len);
        assert_eq!(b.as_slice().as_ptr() as usize % 4096, 0);
        assert_eq!(b.as_slice().len(), len);
        assert!(b.as_slice().iter().all(|&x| x == 0));
    }
}

#[tokio::test(flavor = "current_thread")]
async fn two_workers_on_one_file_see_each_others_slots() {
    let dir = tempfile::tempdir().unwrap();
    let path = shared_file(dir.path(), 3 * SLOT_BYTES as u64);
    let (mut a, mut a_rx) = DiskWorker::spawn(&path, 0, 3).unwrap();
    let (mut b, mut b_rx) = DiskWorker::spawn(&path, 2, 3).unwrap();

    let ra = round(&mut a, &mut a_rx, slot(0xaa)).await;
    let latency = ra.write.as_ref().expect("write ok");
    assert!(*latency < Duration::from_secs(5));
    assert_eq!(ra.slot(0).unwrap(), &slot(0xaa)[..]);
    assert!(ra.slot(2).unwrap().iter().all(|&x| x == 0), "b has not written yet");

    let rb = round(&mut b, &mut b_rx, slot(0xbb)).await;
    assert!(rb.write.is_ok());
    assert_eq!(rb.slot(0).unwrap(), &slot(0xaa)[..], "b reads a's slot");
    assert_eq!(rb.slot(2).unwrap(), &slot(0xbb)[..]);
    assert!(rb.slot(1).unwrap().iter().all(|&x| x == 0), "nobody wrote slot 1");

    // a writes again: b sees the new content (no cached copy)
    let ra = round(&mut a, &mut a_rx, slot(0xcc)).await;
    assert_eq!(ra.slot(2).unwrap(), &slot(0xbb)[..], "a reads b's slot");
    let rb = round(&mut b, &mut b_rx, slot(0xbd)).await;
    assert_eq!(rb.slot(0).unwrap(), &slot(0xcc)[..]);
    assert_eq!(a.rounds(), 2);
    assert_eq!(a.skipped(), 0);

    // and the bytes are in the file itself
    let raw = fs::read(&path).unwrap();
    assert_eq!(&raw[..SLOT_BYTES], &slot(0xcc)[..]);
    assert_eq!(&raw[2 * SLOT_BYTES..], &slot(0xbd)[..]);
}

#[tokio::test(flavor = "current_thread")]
async fn a_missing_path_is_a_failed_round_naming_device_and_step() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-dir").join("disk");
    let (mut w, mut rx) = DiskWorker::spawn(&path, 0, 2).unwrap();
    let r = round(&mut w, &mut rx, slot(1)).await;
    let e = r.write.unwrap_err();
    assert!(e.starts_with(&format!("disk_heartbeat {}: open with O_RDWR|O_DIRECT|O_DSYNC: ", path.display())), "{e}");
    assert!(e.contains("No such file or directory"), "{e}");
    assert!(r.area.is_err());

    // the device appears (multipath came up late): the next round opens it and succeeds
    fs::create_dir(dir.path().join("no-such-dir")).unwrap();
    fs::File::create(&path).unwrap().set_len(2 * SLOT_BYTES as u64).unwrap();
    let r = round(&mut w, &mut rx, slot(2)).await;
    assert!(r.write.is_ok(), "{:?}", r.write);
    assert_eq!(r.slot(0).unwrap(), &slot(2)[..]);
}

#[tokio::test(flavor = "current_thread")]
async fn a_directory_cannot_be_the_device() {
    let dir = tempfile::tempdir().unwrap();
    let (mut w, mut rx) = DiskWorker::spawn(dir.path(), 0, 2).unwrap();
    let e = round(&mut w, &mut rx, slot(1)).await.write.unwrap_err();
    assert!(e.contains(&format!("disk_heartbeat {}: open with O_RDWR|O_DIRECT|O_DSYNC", dir.path().display())), "{e}");
    assert!(e.contains("Is a directory"), "{e}");
}

#[test]
fn a_device_too_small_for_every_slot_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = shared_file(dir.path(), 2 * SLOT_BYTES as u64 + 512);
    let e = DiskDevice::open(&path, 3, Access::ReadWrite).err().unwrap();
    assert_eq!(
        e,
        format!(
            "disk_heartbeat {}: too small: 8704 bytes, the 3 nodes of the configuration need 12288 (4096 bytes each); \
             use a larger partition or LUN (1 MiB is plenty)",
            path.display()
        )
    );
    assert!(DiskDevice::open(&path, 2, Access::ReadWrite).is_ok());
}

#[test]
fn read_only_access_reads_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let path = shared_file(dir.path(), 2 * SLOT_BYTES as u64);
    let rw = DiskDevice::open(&path, 2, Access::ReadWrite).unwrap();
    rw.write_slot(1, &slot(7)).unwrap();
    let before = fs::metadata(&path).unwrap().modified().unwrap();
    let ro = DiskDevice::open(&path, 2, Access::ReadOnly).unwrap();
    let area = ro.read_area().unwrap();
    assert_eq!(&area[SLOT_BYTES..], &slot(7)[..]);
    let e = ro.write_slot(0, &slot(8)).unwrap_err();
    assert!(e.contains("pwrite at offset 0: Bad file descriptor"), "{e}");
    assert_eq!(fs::metadata(&path).unwrap().modified().unwrap(), before);
}

#[test]
fn a_slot_of_the_wrong_size_or_index_is_refused_before_any_io() {
    let dir = tempfile::tempdir().unwrap();
    let path = shared_file(dir.path(), 2 * SLOT_BYTES as u64);
    let d = DiskDevice::open(&path, 2, Access::ReadWrite).unwrap();
    assert!(d.write_slot(2, &slot(1)).unwrap_err().contains("slot 2 of 4096 bytes does not fit (2 slots"));
    assert!(d.write_slot(0, &[1u8; 100]).unwrap_err().contains("slot 0 of 100 bytes does not fit"));
}

/// A device that hangs (a dead path with queue_if_no_path, a SAN that stopped answering) stands here as a
/// round that blocks until the test lets it go: the next beats are skipped and counted, the loop is not
/// blocked, and once the round comes back the next one may start.
#[tokio::test(flavor = "current_thread")]
async fn a_hung_round_skips_and_counts_the_next_beats_without_blocking() {
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let (mut w, mut rx) = DiskWorker::spawn_with(Path::new("/dev/hung"), move |slot| {
        let _ = release_rx.recv();
        (Ok(Duration::from_secs(30)), Ok(slot))
    })
    .unwrap();
    w.start_round(slot(1)).unwrap();
    assert!(w.in_flight());
    for _ in 0..3 {
        assert_eq!(w.start_round(slot(2)), Err(NotStarted::InFlight));
    }
    assert_eq!(w.skipped(), 3);
    assert_eq!(w.rounds(), 1);
    // the loop still runs: nothing comes back within 200 ms
    assert!(tokio::time::timeout(Duration::from_millis(200), rx.recv()).await.is_err());
    release_tx.send(()).unwrap();
    let r = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.expect("round came back").unwrap();
    assert_eq!(r.write, Ok(Duration::from_secs(30)));
    assert_eq!(r.slot(0).unwrap(), &slot(1)[..], "the round that hung, not a skipped one");
    w.round_done();
    assert!(!w.in_flight());
    w.start_round(slot(3)).unwrap();
    release_tx.send(()).unwrap();
    let r = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.unwrap().unwrap();
    assert_eq!(r.slot(0).unwrap(), &slot(3)[..]);
    assert_eq!(w.skipped(), 3);
}

// ----- doctor's judgements of the device -------------------------------------------------------------------

mod doctor {
    use super::*;
    use failoverd::command::CommandResult;
    use failoverd::runtime::doctor::{check_disk_device, judge_zdb_label, judge_zpool_status, Level};

    #[test]
    fn a_file_large_enough_opens_without_being_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = shared_file(dir.path(), 1 << 20);
        fs::write(&path, vec![0x5a; 1 << 20]).unwrap();
        let (c, dev) = check_disk_device(&path, 3);
        assert_eq!(c.level, Level::Ok, "{c}");
        assert_eq!(
            c.to_string(),
            format!(
                "ok    disk_heartbeat {}: file of 1048576 bytes opens with O_RDWR|O_DIRECT|O_DSYNC and holds the 3 slots of 4096 bytes (nothing written)",
                path.display()
            )
        );
        assert!(dev.unwrap().read_area().unwrap().iter().all(|&b| b == 0x5a));
        assert!(fs::read(&path).unwrap().iter().all(|&b| b == 0x5a), "doctor wrote to the device");
    }

    #[test]
    fn missing_small_or_directory_fails_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let (c, dev) = check_disk_device(&missing, 2);
        assert!(dev.is_none());
        assert_eq!(c.level, Level::Fail);
        assert!(c.detail.starts_with("No such file or directory"), "{c}");
        assert!(c.fix.as_deref().unwrap().contains("correct cluster.disk_heartbeat"), "{c}");
        let small = shared_file(dir.path(), 4096);
        let (c, _) = check_disk_device(&small, 2);
        assert_eq!(c.level, Level::Fail);
        assert!(c.detail.contains("too small: 4096 bytes, the 2 nodes of the configuration need 8192"), "{c}");
        let (c, _) = check_disk_device(dir.path(), 2);
        assert_eq!((c.level, c.detail.as_str()), (Level::Fail, "is a directory"));
    }

    #[test]
    fn a_zfs_label_on_the_device_fails() {
        let dev = Path::new("/dev/disk/by-id/wwn-0x5000c500a1b2c3d4-part1");
        let none = CommandResult::exited(2, "failed to unpack label 0\nfailed to unpack label 1\nfailed to unpack label 2\nfailed to unpack label 3\n", "");
        let c = judge_zdb_label(dev, &none);
        assert_eq!(c.to_string(), format!("ok    disk_heartbeat {} ZFS label: no ZFS label (zdb -l found none): not a pool member", dev.display()));
        let label = "------------------------------------\nLABEL 0 \n------------------------------------\n    version: 5000\n    name: 'ost0pool'\n    state: 0\n    txg: 1234\n";
        let c = judge_zdb_label(dev, &CommandResult::exited(0, label, ""));
        assert_eq!(c.level, Level::Fail);
        assert!(c.detail.starts_with("carries a ZFS label of pool 'ost0pool'"), "{c}");
        let c = judge_zdb_label(dev, &CommandResult::exited(1, "", "zdb: can't open '/dev/x': Permission denied\n"));
        assert_eq!(c.level, Level::Warn, "{c}");
        assert_eq!(judge_zdb_label(dev, &CommandResult::timed_out()).level, Level::Fail);
    }

    #[test]
    fn a_vdev_of_an_imported_pool_fails_and_a_partition_beside_it_passes() {
        let dir = tempfile::tempdir().unwrap();
        // the device and a symlink to it (as /dev/disk/by-id/... links to /dev/sdX)
        let dev = shared_file(dir.path(), 1 << 20);
        let link = dir.path().join("by-id-link");
        std::os::unix::fs::symlink(&dev, &link).unwrap();
        let status = |vdev: &str| {
            format!(
                "  pool: ost0pool\n state: ONLINE\nconfig:\n\n\tNAME        STATE     READ WRITE CKSUM\n\tost0pool    ONLINE       0     0     0\n\t  {vdev}  ONLINE       0     0     0\n\nerrors: No known data errors\n"
            )
        };
        let c = judge_zpool_status(&link, &CommandResult::exited(0, status(&dev.display().to_string()), ""));
        assert_eq!(c.level, Level::Fail, "{c}");
        assert!(c.detail.contains("is a vdev of the imported pool 'ost0pool'"), "{c}");
        let other = dir.path().join("other-disk");
        fs::write(&other, b"").unwrap();
        let c = judge_zpool_status(&link, &CommandResult::exited(0, status(&other.display().to_string()), ""));
        assert_eq!(c.to_string(), format!("ok    disk_heartbeat {} imported pools: no vdev of an imported pool (zpool status -P)", link.display()));
        let c = judge_zpool_status(&link, &CommandResult::exited(0, "no pools available\n", ""));
        assert_eq!(c.level, Level::Ok);
        // the heartbeat on a whole disk whose partition is a vdev: it would overwrite the partition table
        let c = judge_zpool_status(Path::new("/dev/sdb"), &CommandResult::exited(0, status("/dev/sdb1"), ""));
        assert_eq!(c.level, Level::Fail, "{c}");
        assert!(c.detail.contains("holds /dev/sdb1, which is a vdev"), "{c}");
        // a partition beside the pool's partition on the same disk is fine
        let c = judge_zpool_status(Path::new("/dev/sdb2"), &CommandResult::exited(0, status("/dev/sdb1"), ""));
        assert_eq!(c.level, Level::Ok, "{c}");
        let c = judge_zpool_status(Path::new("/dev/nvme0n1"), &CommandResult::exited(0, status("/dev/nvme0n1p3"), ""));
        assert_eq!(c.level, Level::Fail, "{c}");
    }
}

// ----- status and metrics ----------------------------------------------------------------------------------

mod figures {
    use super::*;
    use failoverd::runtime::cli::render_disk_heartbeat;
    use failoverd::runtime::disk_heartbeat::DiskStats;
    use failoverd::runtime::metrics::Metrics;
    use std::time::Instant;

    fn stats() -> (DiskStats, Instant) {
        let mut s = DiskStats::new(Path::new("/dev/disk/by-id/hb-part1"), &["mds2".to_string(), "mds3".to_string()]);
        let t0 = Instant::now();
        s.on_round(t0, &Ok(Duration::from_micros(420)), &[("mds2".into(), Ok((7, 100))), ("mds3".into(), Err("never written".into()))]);
        s.on_round(t0 + Duration::from_millis(100), &Ok(Duration::from_micros(380)), &[("mds2".into(), Ok((7, 100))), ("mds3".into(), Err("never written".into()))]);
        (s, t0)
    }

    #[test]
    fn a_peer_slot_ages_from_its_last_advance() {
        let (mut s, t0) = stats();
        let j = s.to_json(t0 + Duration::from_millis(1500));
        assert_eq!(j["peers"][0]["age_ms"], 1500, "seq did not advance in the second round: age from the first");
        assert_eq!(j["peers"][0]["seq"], 100);
        assert_eq!(j["peers"][1]["problem"], "never written");
        assert_eq!(j["write_ok"], true);
        assert_eq!(j["last_write_ms"], 0.38);
        s.on_round(t0 + Duration::from_millis(1600), &Ok(Duration::from_micros(400)), &[("mds2".into(), Ok((7, 101)))]);
        assert_eq!(s.to_json(t0 + Duration::from_millis(1700))["peers"][0]["age_ms"], 100);
    }

    #[test]
    fn status_shows_the_channel_and_a_failing_write() {
        let (mut s, t0) = stats();
        let text = render_disk_heartbeat(&s.to_json(t0 + Duration::from_millis(200)));
        assert_eq!(
            text,
            "\ndisk heartbeat /dev/disk/by-id/hb-part1: writes ok (last 0.38 ms), 2 rounds, 0 failed, 0 skipped\n\
             \x20 mds2  slot advanced 0.2s ago (incarnation 7, seq 100)\n\
             \x20 mds3  slot unreadable: never written\n"
        );
        s.skipped = 4;
        s.on_round(t0 + Duration::from_millis(300), &Err("disk_heartbeat /dev/disk/by-id/hb-part1: pwrite at offset 0: Input/output error (os error 5)".into()), &[]);
        let text = render_disk_heartbeat(&s.to_json(t0 + Duration::from_millis(2300)));
        assert!(
            text.starts_with(
                "\ndisk heartbeat /dev/disk/by-id/hb-part1: WRITES FAILING (last good write 2.2s ago), 3 rounds, 1 failed, 4 skipped: \
                 disk_heartbeat /dev/disk/by-id/hb-part1: pwrite at offset 0: Input/output error (os error 5)\n"
            ),
            "{text}"
        );
        assert!(text.contains("beats are being skipped"), "{text}");
        assert_eq!(render_disk_heartbeat(&serde_json::Value::Null), "", "nothing without the channel");
    }

    #[test]
    fn metrics_show_writes_latency_skips_and_slot_ages() {
        let plain = Metrics::new("mds1", "lab").encode();
        assert!(!plain.contains("disk_heartbeat"), "no disk series without the channel");
        let m = Metrics::new("mds1", "lab").with_disk_heartbeat();
        let (mut s, t0) = stats();
        s.skipped = 2;
        m.on_disk_round(&Ok(Duration::from_micros(420)));
        m.on_disk_round(&Err("x".into()));
        m.refresh_disk(&s, t0 + Duration::from_millis(2500));
        let text = m.encode();
        for want in [
            "failoverd_disk_heartbeat_write_ok 0\n",
            "failoverd_disk_heartbeat_last_write_seconds 0.00042\n",
            "failoverd_disk_heartbeat_write_seconds_count 1\n",
            "failoverd_disk_heartbeat_rounds_total{result=\"ok\"} 1\n",
            "failoverd_disk_heartbeat_rounds_total{result=\"failed\"} 1\n",
            "failoverd_disk_heartbeat_skipped_total 2\n",
            "failoverd_peer_disk_slot_age_seconds{node=\"mds2\"} 2.5\n",
            "failoverd_peer_disk_slot_valid{node=\"mds2\"} 1\n",
            "failoverd_peer_disk_slot_valid{node=\"mds3\"} 0\n",
        ] {
            assert!(text.contains(want), "{want:?} not in\n{text}");
        }
        assert!(!text.contains("peer_disk_slot_age_seconds{node=\"mds3\"}"), "no age for a slot never read validly");
    }
}

/// 200 rounds (write then read of two slots) on a file of the test's filesystem: prints the write latency
/// (min, median, p99, max) for the record; asserts only that every round worked.
#[tokio::test(flavor = "current_thread")]
async fn write_latency_figures_on_this_filesystem() {
    let dir = tempfile::tempdir().unwrap();
    let path = shared_file(dir.path(), 2 * SLOT_BYTES as u64);
    let (mut w, mut rx) = DiskWorker::spawn(&path, 0, 2).unwrap();
    let mut lat = Vec::new();
    for i in 0..200u32 {
        let r = round(&mut w, &mut rx, slot((i % 251) as u8)).await;
        lat.push(r.write.unwrap());
        assert!(r.area.is_ok());
    }
    lat.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    eprintln!(
        "disk heartbeat O_DIRECT|O_DSYNC 4 KiB pwrite on {}: min {:.0} us, median {:.0} us, p99 {:.0} us, max {:.0} us (200 rounds)",
        dir.path().display(),
        us(lat[0]),
        us(lat[100]),
        us(lat[197]),
        us(lat[199])
    );
}
