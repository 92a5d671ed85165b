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
