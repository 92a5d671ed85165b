//! The disk heartbeat's I/O: one blocking thread that writes this node's slot on the shared device
//! (`cluster.disk_heartbeat`) and reads every slot back.
//!
//! The device is opened with `O_RDWR | O_DIRECT | O_DSYNC`: the write goes past the page cache and is on
//! the device (or its write-through cache) when `pwrite` returns, and the read sees what the other nodes
//! wrote, not this host's cached copy. O_DIRECT needs the buffer, the offset and the length aligned to the
//! device's logical block size; every slot is [`SLOT_BYTES`] (4096) long at `index * 4096`, and the buffers
//! are 4096-aligned (over-allocated `Vec`s sliced at their first aligned byte: no `unsafe`).
//!
//! The event loop never waits for the device: it hands one round (the encoded slot) to the thread through
//! a channel and gets the result back through another ([`DiskWorker::start_round`], [`DiskWorker::results`]).
//! While a round is in flight a new one is refused and counted as skipped ([`DiskWorker::skipped`]): a hung
//! device (a dead path, a SAN that stopped answering) shows as rounds that never come back, never as work
//! queued without bound or a blocked loop.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

/// Bytes of one node's slot (the alignment of every O_DIRECT transfer too).
pub const SLOT_BYTES: usize = 4096;

/// Alignment of the I/O buffers.
const ALIGN: usize = 4096;

/// A 4096-aligned, zeroed buffer of `len` bytes, in safe code: a `Vec` over-allocated by one alignment,
/// used from its first aligned byte.
pub struct AlignedBuf {
    storage: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    /// A zeroed buffer of `len` bytes starting on a 4096-byte boundary.
    pub fn zeroed(len: usize) -> AlignedBuf {
        let storage = vec![0u8; len + ALIGN];
        let start = storage.as_ptr().align_offset(ALIGN);
        assert!(start < ALIGN, "align_offset on a u8 pointer is always below the alignment");
        AlignedBuf { storage, start, len }
    }

    /// The aligned bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.storage[self.start..self.start + self.len]
    }

    /// The aligned bytes, writable.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.start + self.len]
    }
}

/// How the device is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// `O_RDWR | O_DIRECT | O_DSYNC`: the daemon.
    ReadWrite,
    /// `O_RDONLY | O_DIRECT`: `failoverd doctor`, which must never write a slot.
    ReadOnly,
}

/// The shared device (or, in the lab, a shared file) opened for direct I/O, large enough for `slots` slots.
pub struct DiskDevice {
    path: PathBuf,
    file: File,
    slots: usize,
    size: u64,
}

impl DiskDevice {
    /// Open `path` for direct I/O and check it holds `slots` slots. Errors name the device, the step and the
    /// system's reason: "disk_heartbeat /dev/sdx: open with O_RDWR|O_DIRECT|O_DSYNC: No such file or directory".
    pub fn open(path: &Path, slots: usize, access: Access) -> Result<DiskDevice, String> {
        let mut opts = OpenOptions::new();
        let flags = match access {
            Access::ReadWrite => {
                opts.read(true).write(true);
                opts.custom_flags(nix::libc::O_DIRECT | nix::libc::O_DSYNC);
                "O_RDWR|O_DIRECT|O_DSYNC"
            }
            Access::ReadOnly => {
                opts.read(true);
                opts.custom_flags(nix::libc::O_DIRECT);
                "O_RDONLY|O_DIRECT"
            }
        };
        let mut file = opts.open(path).map_err(|e| {
            let hint = match e.raw_os_error() {
                Some(nix::libc::EINVAL) => " (the filesystem or device does not support O_DIRECT; use a block device or a file on ext4/xfs)",
                _ => "",
            };
            format!("disk_heartbeat {}: open with {flags}: {e}{hint}", path.display())
        })?;
        // the size of a block device is where its end is (its metadata says 0); a file's too
        let size = file
            .seek(SeekFrom::End(0))
            .map_err(|e| format!("disk_heartbeat {}: cannot find its size (lseek SEEK_END): {e}", path.display()))?;
        let need = (slots * SLOT_BYTES) as u64;
        if size < need {
            return Err(format!(
                "disk_heartbeat {}: too small: {size} bytes, the {slots} nodes of the configuration need {need} \
                 ({SLOT_BYTES} bytes each); use a larger partition or LUN (1 MiB is plenty)",
                path.display()
            ));
        }
        Ok(DiskDevice { path: path.to_path_buf(), file, slots, size })
    }

    /// The device's path as configured.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The device's size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Number of slots read back by [`DiskDevice::read_area`].
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// pwrite `slot` (exactly [`SLOT_BYTES`]) at `index * SLOT_BYTES`; returns how long the call took.
    pub fn write_slot(&self, index: usize, slot: &[u8]) -> Result<Duration, String> {
        let offset = (index * SLOT_BYTES) as u64;
        if slot.len() != SLOT_BYTES || index >= self.slots {
            return Err(format!(
                "disk_heartbeat {}: slot {index} of {} bytes does not fit ({} slots of {SLOT_BYTES} bytes)",
                self.path.display(),
                slot.len(),
                self.slots
            ));
        }
        let mut buf = AlignedBuf::zeroed(SLOT_BYTES);
        buf.as_mut_slice().copy_from_slice(slot);
        let started = Instant::now();
        self.file
            .write_all_at(buf.as_slice(), offset)
            .map_err(|e| format!("disk_heartbeat {}: pwrite at offset {offset}: {e}", self.path.display()))?;
        Ok(started.elapsed())
    }

    /// pread every slot (`slots * SLOT_BYTES` bytes from offset 0).
    pub fn read_area(&self) -> Result<Vec<u8>, String> {
        let len = self.slots * SLOT_BYTES;
        let mut buf = AlignedBuf::zeroed(len);
        self.file
            .read_exact_at(buf.as_mut_slice(), 0)
            .map_err(|e| format!("disk_heartbeat {}: pread of {len} bytes at offset 0: {e}", self.path.display()))?;
        Ok(buf.as_slice().to_vec())
    }
}

/// What one round did: the write (its latency, or the error naming the device and syscall) and the area read
/// back after it (every slot, `slots * SLOT_BYTES` bytes, or the error).
#[derive(Debug)]
pub struct RoundResult {
    /// Latency of the pwrite, or why it failed (the device could not be opened, the pwrite failed).
    pub write: Result<Duration, String>,
    /// The whole slot area as read after the write.
    pub area: Result<Vec<u8>, String>,
    /// When the round was handed to the thread (for the loop's own bookkeeping).
    pub started: Instant,
}

impl RoundResult {
    /// The bytes of slot `index` of a successful read.
    pub fn slot(&self, index: usize) -> Option<&[u8]> {
        let area = self.area.as_ref().ok()?;
        area.get(index * SLOT_BYTES..(index + 1) * SLOT_BYTES)
    }
}

struct Request {
    slot: Vec<u8>,
    started: Instant,
}

/// The handle the event loop keeps: starts rounds on the I/O thread, never blocking.
pub struct DiskWorker {
    path: PathBuf,
    requests: std::sync::mpsc::SyncSender<Request>,
    in_flight: bool,
    skipped: u64,
    rounds: u64,
}

/// Why [`DiskWorker::start_round`] did not start a round.
#[derive(Debug, PartialEq, Eq)]
pub enum NotStarted {
    /// The previous round has not come back (the device is slow or hung): this beat is skipped.
    InFlight,
    /// The I/O thread is gone (it panicked): nothing more can be written.
    ThreadGone,
}

impl DiskWorker {
    /// Start the I/O thread for `path`: this node writes slot `index` of `slots`. The device is opened on the
    /// thread at the first round (and again after an open failure, at each round), so a device that is missing
    /// at start-up shows as failed writes, never as a daemon that will not start. Results arrive on the
    /// returned receiver, one per started round.
    pub fn spawn(path: &Path, index: usize, slots: usize) -> std::io::Result<(DiskWorker, mpsc::UnboundedReceiver<RoundResult>)> {
        let thread_path = path.to_path_buf();
        let mut device: Option<DiskDevice> = None;
        DiskWorker::spawn_with(path, move |slot| run_round(&thread_path, &mut device, index, slots, slot))
    }

    /// Like [`DiskWorker::spawn`], with `io` doing each round on the thread (it gets the encoded slot and
    /// returns the write's result and the area read). The tests use it to stand for a device that hangs.
    pub fn spawn_with(
        path: &Path,
        mut io: impl FnMut(Vec<u8>) -> RoundIo + Send + 'static,
    ) -> std::io::Result<(DiskWorker, mpsc::UnboundedReceiver<RoundResult>)> {
        let (req_tx, req_rx) = std::sync::mpsc::sync_channel::<Request>(1);
        let (res_tx, res_rx) = mpsc::unbounded_channel();
        std::thread::Builder::new().name("disk-heartbeat".into()).spawn(move || {
            while let Ok(req) = req_rx.recv() {
                let (write, area) = io(req.slot);
                if res_tx.send(RoundResult { write, area, started: req.started }).is_err() {
                    break;
                }
            }
        })?;
        Ok((DiskWorker { path: path.to_path_buf(), requests: req_tx, in_flight: false, skipped: 0, rounds: 0 }, res_rx))
    }

    /// Hand `slot` (exactly [`SLOT_BYTES`] encoded bytes) to the thread, unless a round is still in flight
    /// (then the beat is skipped and counted).
    pub fn start_round(&mut self, slot: Vec<u8>) -> Result<(), NotStarted> {
        if self.in_flight {
            self.skipped += 1;
            return Err(NotStarted::InFlight);
        }
        match self.requests.try_send(Request { slot, started: Instant::now() }) {
            Ok(()) => {
                self.in_flight = true;
                self.rounds += 1;
                Ok(())
            }
            Err(std::sync::mpsc::TrySendError::Full(_)) => {
                self.skipped += 1;
                Err(NotStarted::InFlight)
            }
            Err(std::sync::mpsc::TrySendError::Disconnected(_)) => Err(NotStarted::ThreadGone),
        }
    }

    /// Call when a [`RoundResult`] arrived: the next round may start.
    pub fn round_done(&mut self) {
        self.in_flight = false;
    }

    /// True while a round is on the thread.
    pub fn in_flight(&self) -> bool {
        self.in_flight
    }

    /// Beats skipped because the previous round was still in flight.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Rounds handed to the thread.
    pub fn rounds(&self) -> u64 {
        self.rounds
    }

    /// The device's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// What one round of I/O returns: the write's latency or error, and the area read or the error.
pub type RoundIo = (Result<Duration, String>, Result<Vec<u8>, String>);

fn run_round(path: &Path, device: &mut Option<DiskDevice>, index: usize, slots: usize, slot: Vec<u8>) -> RoundIo {
    let dev = match device {
        Some(d) => &*d,
        None => match DiskDevice::open(path, slots, Access::ReadWrite) {
            Ok(d) => &*device.insert(d),
            Err(e) => return (Err(e.clone()), Err(e)),
        },
    };
    let write = dev.write_slot(index, &slot);
    let area = dev.read_area();
    if write.is_err() && area.is_err() {
        // the device may have gone away (a path failed, a LUN was remapped): open it again next round
        *device = None;
    }
    (write, area)
}

/// What this node has seen of the disk channel, kept by the event loop for status and metrics (the engine
/// decides; these are the operator's figures): the last write, the rounds and skipped beats, and for each
/// peer when its slot last advanced.
#[derive(Debug)]
pub struct DiskStats {
    /// The device.
    pub device: PathBuf,
    /// Rounds that came back.
    pub rounds: u64,
    /// Rounds whose write (or the read after it) failed.
    pub failed: u64,
    /// Beats skipped because the previous round was still in flight.
    pub skipped: u64,
    /// The last round's write: its latency, or the error.
    pub last_write: Option<Result<Duration, String>>,
    /// When the last write succeeded.
    pub last_ok: Option<Instant>,
    /// The peers, in configuration order.
    pub peers: Vec<PeerSlot>,
}

/// A peer's slot as one round read it: its (incarnation, seq), or why it is not valid.
pub type SlotSeen = (String, Result<(u64, u64), String>);

/// One peer's slot as this node last read it.
#[derive(Debug, Clone)]
pub struct PeerSlot {
    pub node: String,
    /// Its (incarnation, seq) as last read validly.
    pub last: Option<(u64, u64)>,
    /// When (incarnation, seq) last changed.
    pub advanced_at: Option<Instant>,
    /// Why the last read of the slot was not valid (`never written`, `bad MAC` ...), if it was not.
    pub problem: Option<String>,
}

impl DiskStats {
    /// Nothing seen yet on `device`, for `peers`.
    pub fn new(device: &Path, peers: &[String]) -> DiskStats {
        DiskStats {
            device: device.to_path_buf(),
            rounds: 0,
            failed: 0,
            skipped: 0,
            last_write: None,
            last_ok: None,
            peers: peers.iter().map(|n| PeerSlot { node: n.clone(), last: None, advanced_at: None, problem: None }).collect(),
        }
    }

    /// A round came back at `now`: `write` is its write (the read's error when the read failed), and
    /// `slots` each peer's decoded (incarnation, seq) or why it could not be decoded (only when read).
    pub fn on_round(&mut self, now: Instant, write: &Result<Duration, String>, slots: &[SlotSeen]) {
        self.rounds += 1;
        match write {
            Ok(_) => self.last_ok = Some(now),
            Err(_) => self.failed += 1,
        }
        self.last_write = Some(write.clone());
        for (node, slot) in slots {
            let Some(p) = self.peers.iter_mut().find(|p| &p.node == node) else { continue };
            match slot {
                Ok(v) => {
                    if p.last != Some(*v) {
                        p.last = Some(*v);
                        p.advanced_at = Some(now);
                    }
                    p.problem = None;
                }
                Err(e) => p.problem = Some(e.clone()),
            }
        }
    }

    /// The figures as JSON for `failoverd status` (`runtime.disk_heartbeat`).
    pub fn to_json(&self, now: Instant) -> serde_json::Value {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let peers: Vec<serde_json::Value> = self
            .peers
            .iter()
            .map(|p| {
                serde_json::json!({
                    "node": p.node,
                    "incarnation": p.last.map(|l| l.0),
                    "seq": p.last.map(|l| l.1),
                    "age_ms": p.advanced_at.map(|t| now.saturating_duration_since(t).as_millis() as u64),
                    "problem": p.problem,
                })
            })
            .collect();
        serde_json::json!({
            "device": self.device.display().to_string(),
            "rounds": self.rounds,
            "failed": self.failed,
            "skipped": self.skipped,
            "write_ok": matches!(self.last_write, Some(Ok(_))),
            "last_write_ms": match &self.last_write { Some(Ok(d)) => Some(ms(*d)), _ => None },
            "last_error": match &self.last_write { Some(Err(e)) => Some(e.clone()), _ => None },
            "last_ok_ago_ms": self.last_ok.map(|t| now.saturating_duration_since(t).as_millis() as u64),
            "peers": peers,
        })
    }
}
