//! Engine tests: one engine (mds2) driven by a hand-stepped clock, heartbeats of a scripted peer (mds1), and
//! canned answers of the real tools. No sleeps, no sockets, no processes.

use std::sync::Arc;
use std::time::Duration;

use super::test_support::{fail, heartbeat, mds_pair, ok};
use super::*;
use crate::protocol::{Body, Envelope, Heartbeat, TargetState, TargetView};

const ZDB_BY_MDS1: &str = "\nMOS Configuration:\n        version: 5000\n        name: 'POOL'\n        state: 0\n        txg: 4\n        pool_guid: 1537015387864575324\n        errata: 0\n        hostid: 2711724449\n        hostname: 'mds1'\n        vdev_children: 1\n";

/// A scripted world around one engine.
struct Harness {
    engine: Engine,
    now: Time,
    /// Every output so far, as (time, description).
    log: Vec<(Time, String)>,
    events: Vec<(Time, Event)>,
    commands: Vec<(Time, String)>,
    pending: Vec<(CommandId, Command)>,
    peer_seq: u64,
    peer_incarnation: u64,
    answer: Box<dyn FnMut(&Command) -> CommandResult>,
    replies: Vec<Result<String, AdminError>>,
    /// mds1 runs with this configuration (default: the same as mds2's).
    peer_cfg: Option<Config>,
    /// mds1 sends its config summary after each heartbeat (a peer of an older version does not).
    peer_summaries: bool,
    /// Config summary parts mds2 sent (each checked to fit one datagram).
    summaries_sent: usize,
    /// `Output::DiskBeat`s seen (times), and whether one waits for its round.
    disk_beats: Vec<Time>,
    beat_pending: bool,
    /// Commands whose display starts with this are not answered but kept in `held` (a slow command).
    hold: Option<&'static str>,
    held: Vec<(CommandId, Command)>,
}

fn standard_answers(cmd: &Command) -> CommandResult {
    let a = cmd.argv.join(" ");
    let pool = cmd.argv.last().cloned().unwrap_or_default();
    match a.as_str() {
        "zpool list -H -o name,health" => ok(""),
        "cat /proc/mounts" => ok("/dev/vda1 / ext4 rw 0 0\n"),
        _ if a.starts_with("ipmitool") && a.ends_with("off") => ok("Chassis Power Control: Down/Off\n"),
        _ if a.starts_with("ipmitool") && a.ends_with("status") => ok("Chassis Power is off\n"),
        _ if a.starts_with("zdb -e -C") => ok(&ZDB_BY_MDS1.replace("POOL", &pool)),
        _ if a.starts_with("zpool import") => ok(""),
        _ if a.starts_with("zpool status -x") => ok(&format!("pool '{pool}' is healthy\n")),
        _ if a.starts_with("zfs list -H") => ok(&format!("{pool}\t3.7M\t40G\t3.7M\t/{pool}\n")),
        _ if a.starts_with("mkdir -p") || a.starts_with("mount -t lustre") || a.starts_with("umount") || a.starts_with("zpool export") => ok(""),
        "df -ht lustre" => ok("Filesystem      Size  Used Avail Use% Mounted on\nmgspool/mgt     960M  2.2M  956M   1% /lustre/mgt\nmdt0pool/mdt0    40G  3.7M   40G   1% /lustre/mdt0\n"),
        "lctl dl" => ok("  0 UP osd-zfs MGS-osd MGS-osd_UUID 5\n  1 UP mgs MGS MGS 7\n  2 UP mdt lustre-MDT0000 lustre-MDT0000_UUID 3\n"),
        "lctl get_param -n health_check" => ok("healthy\n"),
        _ => fail(127, &format!("{}: command not found", cmd.program())),
    }
}

/// An engine of mds2 whose driver found no command of an earlier run left (as the daemon reports at start).
fn started(cfg: Config, incarnation: u64) -> Engine {
    let mut e = Engine::new(Arc::new(cfg), "mds2", incarnation, None, Time::ZERO).unwrap();
    e.handle(Time::ZERO, Input::OrphansGone);
    e
}

impl Harness {
    fn new(cfg: Config) -> Harness {
        let engine = started(cfg, 7);
        let mut h = Harness {
            engine,
            now: Time::ZERO,
            log: vec![],
            events: vec![],
            commands: vec![],
            pending: vec![],
            peer_seq: 0,
            peer_incarnation: 3,
            answer: Box::new(standard_answers),
            replies: vec![],
            peer_cfg: None,
            peer_summaries: true,
            summaries_sent: 0,
            disk_beats: vec![],
            beat_pending: false,
            hold: None,
            held: vec![],
        };
        h.drain();
        h
    }

    fn drain(&mut self) {
        while let Some(o) = self.engine.poll_output() {
            match o {
                Output::Run { id, command, .. } => {
                    self.commands.push((self.now, command.display()));
                    self.pending.push((id, command));
                }
                Output::Event(e) => {
                    self.log.push((self.now, format!("{e:?}")));
                    self.events.push((self.now, e));
                }
                Output::AdminReply { result, .. } => self.replies.push(result),
                Output::DiskBeat { slot } => {
                    assert_eq!((slot.cluster.as_str(), slot.node.as_str()), ("lfs", "mds2"));
                    self.disk_beats.push(self.now);
                    self.beat_pending = true;
                }
                Output::Send { envelope, .. } if matches!(envelope.body, Body::ConfigSummary(_)) => {
                    let bytes = crate::protocol::encode(&envelope, &[7; 32]).expect("a summary part fits one datagram");
                    assert!(bytes.len() <= crate::protocol::MAX_DATAGRAM);
                    self.summaries_sent += 1;
                }
                _ => {}
            }
        }
    }

    /// Answer every pending command (instantly), repeatedly, until none is left.
    fn answer_all(&mut self) {
        for _ in 0..100 {
            if self.pending.is_empty() {
                return;
            }
            let pending = std::mem::take(&mut self.pending);
            for (id, cmd) in pending {
                if self.hold.is_some_and(|p| cmd.display().starts_with(p)) {
                    self.held.push((id, cmd));
                    continue;
                }
                let result = (self.answer)(&cmd);
                self.engine.handle(self.now, Input::CommandDone { id, result });
                self.drain();
            }
        }
    }

    fn heartbeat_from_mds1(&mut self, targets: Vec<TargetView>) {
        let cfg = self.peer_cfg.clone().unwrap_or_else(|| self.engine.config().clone());
        let target_digests: Vec<(String, u32)> = cfg.targets.iter().map(|t| (t.name.clone(), cfg.target_digest(&t.name).unwrap())).collect();
        for link in 0..2u8 {
            self.peer_seq += 1;
            // mds1 hears this run of mds2, as a live peer's heartbeats say
            let hears = crate::protocol::PeerView { node: "mds2".into(), links_up: 3, alive: true, incarnation: self.engine.incarnation() };
            let hb = Heartbeat { config_digest: cfg.digest(), target_digests: target_digests.clone(), peers: vec![hears], ..heartbeat(link, targets.clone()) };
            let env = Envelope { cluster: "lfs".into(), sender: "mds1".into(), incarnation: self.peer_incarnation, seq: self.peer_seq, body: Body::Heartbeat(hb) };
            self.engine.handle(self.now, Input::Datagram { link: link as usize, envelope: env });
            self.drain();
        }
        if self.peer_cfg.is_some() && self.peer_summaries {
            for part in super::membership::summary_parts(&cfg, cfg.digest()).unwrap() {
                self.peer_seq += 1;
                let env = Envelope { cluster: "lfs".into(), sender: "mds1".into(), incarnation: self.peer_incarnation, seq: self.peer_seq, body: Body::ConfigSummary(part) };
                self.engine.handle(self.now, Input::Datagram { link: 0, envelope: env });
                self.drain();
            }
        }
    }

    /// Advance the clock to `until` tick by tick (as a driver would), answering commands, with mds1
    /// heartbeating every 250 ms while `mds1_alive(now)`.
    fn run_until(&mut self, until: Time, mds1_targets: &[TargetView], mds1_alive: impl Fn(Time) -> bool) {
        let mut next_peer_hb = self.now;
        while self.now < until {
            self.answer_all();
            let next = self.engine.next_deadline().min(next_peer_hb).min(until);
            self.now = next.max(self.now);
            if self.now >= next_peer_hb {
                if mds1_alive(self.now) {
                    self.heartbeat_from_mds1(mds1_targets.to_vec());
                }
                next_peer_hb = self.now + Duration::from_millis(250);
            }
            self.engine.handle(self.now, Input::Tick);
            self.drain();
        }
        self.answer_all();
    }

    fn first_event(&self, pred: impl Fn(&Event) -> bool) -> Option<Time> {
        self.events.iter().find(|(_, e)| pred(e)).map(|(t, _)| *t)
    }

    fn first_command(&self, prefix: &str) -> Option<Time> {
        self.commands.iter().find(|(_, c)| c.starts_with(prefix)).map(|(t, _)| *t)
    }

    fn commands_matching(&self, prefix: &str) -> Vec<String> {
        self.commands.iter().filter(|(_, c)| c.starts_with(prefix)).map(|(_, c)| c.clone()).collect()
    }
}

fn mds1_holds_both() -> Vec<TargetView> {
    vec![TargetView { name: "MGT".into(), state: TargetState::Running }, TargetView { name: "lustre-MDT0000".into(), state: TargetState::Running }]
}

fn ms(t: u64) -> Time {
    Time::from_millis(t)
}

#[test]
fn owner_crash_is_detected_fenced_after_the_race_delay_then_both_labels_checked_at_once_imports_one_at_a_time_mounts_in_start_order() {
    let mut h = Harness::new(mds_pair());
    let targets = mds1_holds_both();
    // mds1 heartbeats until 5 s, then dies
    h.run_until(ms(60_000), &targets, |t| t < ms(5_000));

    let dead = h.first_event(|e| matches!(e, Event::PeerDead { node, .. } if node == "mds1")).expect("declared dead");
    // last heartbeat at 4.75 s; dead_after 3 s
    assert!(dead >= ms(7_750) && dead <= ms(7_750 + 250), "declared dead at {dead}");
    // mds1 outranks mds2 (priority 10 > 5): mds2 waits fence_delay (10 s) before fencing
    assert!(h.first_event(|e| matches!(e, Event::FenceDelayed { delay_ms: 10_000, .. })).is_some());
    let fence_cmd = h.first_command("ipmitool").expect("fenced");
    assert_eq!(fence_cmd, dead + Duration::from_secs(10));
    let confirmed = h.first_event(|e| matches!(e, Event::FenceConfirmed { node, .. } if node == "mds1")).unwrap();
    // the forced sequences only after the confirmation, both at once (zdb and import of both pools side by
    // side), and the mounts in start_order: the MDT's only after the MGT is verified (its `lctl dl`)
    let zdb = h.first_command("zdb -e -C").unwrap();
    assert!(zdb >= confirmed);
    let imports = h.commands_matching("zpool import");
    assert_eq!(imports, vec!["zpool import -f -o cachefile=none mgspool", "zpool import -f -o cachefile=none mdt0pool"]);
    let index = |pred: &dyn Fn(&str) -> bool| h.commands.iter().position(|(_, c)| pred(c)).unwrap();
    let second_import = index(&|c| c == "zpool import -f -o cachefile=none mdt0pool");
    let first_mount = index(&|c| c.starts_with("mount -t lustre"));
    assert!(second_import < first_mount, "the second import does not wait for the first mount: {:?}", h.commands);
    // both label checks at once, the forced imports one at a time: OpenZFS runs one MMP activity check at a
    // time per kernel, so the MDT's import waits (import_waiting) until the MGT's has ended
    let zdbs = h.commands.iter().take(second_import).filter(|(_, c)| c.starts_with("zdb -e -C")).count();
    assert_eq!(zdbs, 2, "both label checks before the second import: {:?}", h.commands);
    let waits: Vec<&Event> = h.events.iter().map(|(_, e)| e).filter(|e| matches!(e, Event::ImportWaiting { .. })).collect();
    assert!(
        matches!(waits.as_slice(), [Event::ImportWaiting { target, waiting_for }] if target == "lustre-MDT0000" && waiting_for == &["MGT".to_string()]),
        "{waits:?}"
    );
    let mgt_verified = index(&|c| c == "lctl dl");
    let mdt_mount = index(&|c| c.starts_with("mount -t lustre mdt0pool"));
    assert!(mgt_verified < mdt_mount, "MDT mounted before the MGT was verified: {:?}", h.commands);
    let mgt_started = h.first_event(|e| matches!(e, Event::SequenceStarted { target, .. } if target == "MGT")).unwrap();
    let mdt_started = h.first_event(|e| matches!(e, Event::SequenceStarted { target, .. } if target == "lustre-MDT0000")).unwrap();
    assert_eq!(mgt_started, mdt_started, "both takeovers start together");
    assert!(h.events.iter().any(|(_, e)| matches!(e, Event::MountWaiting { target, waiting_for } if target == "lustre-MDT0000" && waiting_for == &["MGT".to_string()])));
    let st = h.engine.status(h.now);
    for t in &st.targets {
        assert_eq!(t.owner.as_deref(), Some("mds2"), "{t:?}");
        assert_eq!(t.local, "running");
    }
    // one fence, never a second one
    assert_eq!(h.events.iter().filter(|(_, e)| matches!(e, Event::FenceStarted { .. })).count(), 1);
}

#[test]
fn a_node_that_never_saw_its_peer_never_fences_it() {
    let mut h = Harness::new(mds_pair());
    h.run_until(ms(120_000), &[], |_| false);
    assert!(h.first_command("ipmitool").is_none(), "{:?}", h.commands);
    assert!(h.first_command("zpool import").is_none());
    assert!(!h.engine.is_quorate());
    // the operator may override wait_for_all: then it fences
    h.engine.handle(h.now, Input::Admin { id: 1, request: AdminRequest::OverrideWaitForAll });
    h.drain();
    let t = h.now;
    h.run_until(t + Duration::from_secs(30), &[], |_| false);
    assert!(h.first_command("ipmitool").is_some());
}

#[test]
fn a_label_naming_a_third_host_aborts_the_takeover_and_alerts() {
    let mut h = Harness::new(mds_pair());
    h.answer = Box::new(|cmd| {
        if cmd.program() == "zdb" {
            ok(&ZDB_BY_MDS1.replace("POOL", cmd.argv.last().unwrap()).replace("2711724449", "1234567").replace("'mds1'", "'oss9'"))
        } else {
            standard_answers(cmd)
        }
    });
    h.run_until(ms(60_000), &mds1_holds_both(), |t| t < ms(2_000));
    assert!(h.first_event(|e| matches!(e, Event::FenceConfirmed { .. })).is_some());
    assert!(h.first_command("zpool import").is_none(), "never imported: {:?}", h.commands);
    assert!(h.first_event(|e| matches!(e, Event::TargetBlocked { target, reason } if target == "MGT" && reason.contains("oss9"))).is_some(), "{:#?}", h.log);
}

#[test]
fn every_fence_level_failing_means_no_import_and_retries_with_backoff() {
    let mut h = Harness::new(mds_pair());
    h.answer = Box::new(|cmd| match cmd.program() {
        "ipmitool" => fail(1, "Error: Unable to establish IPMI v2 / RMCP+ session\n"),
        "snmpset" | "snmpget" => fail(1, "Timeout: No Response from udp:10.9.1.1:161.\n"),
        _ => standard_answers(cmd),
    });
    h.run_until(ms(120_000), &mds1_holds_both(), |t| t < ms(2_000));
    assert!(h.first_command("zdb").is_none() && h.first_command("zpool import").is_none());
    let failures: Vec<(Time, u64)> = h.events.iter().filter_map(|(t, e)| match e { Event::FenceFailed { retry_in_ms, .. } => Some((*t, *retry_in_ms)), _ => None }).collect();
    assert!(failures.len() >= 4, "{failures:?}");
    assert_eq!(failures[0].1, 2_000);
    assert_eq!(failures[1].1, 4_000);
    assert_eq!(failures[2].1, 8_000);
    assert!(failures.windows(2).all(|w| w[1].0 >= w[0].0 + Duration::from_millis(w[0].1)));
}

#[test]
fn an_mmp_refusal_stops_the_takeover_instead_of_forcing_it() {
    let mut h = Harness::new(mds_pair());
    h.answer = Box::new(|cmd| {
        if cmd.argv.starts_with(&["zpool".to_string(), "import".to_string()]) {
            let pool = cmd.argv.last().unwrap();
            fail(1, &format!("cannot import '{pool}': pool is imported on host 'mds1' (hostid=a1a1a1a1).\nExport the pool on the other system, then run 'zpool import'.\n"))
        } else {
            standard_answers(cmd)
        }
    });
    h.run_until(ms(90_000), &mds1_holds_both(), |t| t < ms(2_000));
    // the first import after the confirmed fence meets the MMP refusal: mds1 is alive although its BMC said
    // off. The confirmation is void, so the other forced import is not run; nothing is tried again, nothing
    // is mounted, and mds1 is not fenced again through the same device.
    assert_eq!(h.commands_matching("zpool import"), vec!["zpool import -f -o cachefile=none mgspool"], "{:?}", h.commands);
    assert_eq!(h.commands_matching("ipmitool").iter().filter(|c| c.contains("power off")).count(), 1, "{:?}", h.commands);
    assert!(h.first_command("mount").is_none());
    assert!(h.first_event(|e| matches!(e, Event::FenceLied { node } if node == "mds1")).is_some());
    for t in ["MGT", "lustre-MDT0000"] {
        assert!(h.first_event(|e| matches!(e, Event::TargetBlocked { target, .. } if target == t)).is_some(), "{t}: {:#?}", h.log);
    }
}

#[test]
fn a_forced_takeover_stops_before_its_import_when_the_fence_no_longer_holds() {
    let mut h = Harness::new(mds_pair());
    // the label checks are slow: they are still running when mds1 is heard again
    h.hold = Some("zdb");
    h.run_until(ms(30_000), &mds1_holds_both(), |t| t < ms(2_000));
    assert!(h.first_event(|e| matches!(e, Event::FenceConfirmed { node, .. } if node == "mds1")).is_some(), "{:#?}", h.log);
    assert_eq!(h.held.len(), 2, "both label checks run: {:?}", h.commands);
    // mds1 is heard again in the incarnation it was fenced in: its BMC lied, the confirmation is void
    h.run_until(ms(31_000), &mds1_holds_both(), |_| true);
    assert!(h.first_event(|e| matches!(e, Event::FenceLied { node } if node == "mds1")).is_some(), "{:#?}", h.log);
    // the label checks end (the labels name mds1, as in a real takeover): no forced import follows
    h.hold = None;
    h.pending.append(&mut h.held);
    h.run_until(ms(60_000), &mds1_holds_both(), |_| true);
    assert!(h.commands_matching("zpool import").is_empty(), "{:?}", h.commands);
    for t in ["MGT", "lustre-MDT0000"] {
        assert!(
            h.first_event(|e| matches!(e, Event::SequenceFailed { target, error, .. } if target == t && error.contains("no longer confirmed off"))).is_some(),
            "{t}: {:#?}",
            h.log
        );
    }
}

#[test]
fn replayed_heartbeats_of_a_dead_peer_do_not_revive_it() {
    let mut h = Harness::new(mds_pair());
    h.run_until(ms(2_000), &mds1_holds_both(), |_| true);
    let last_seq = h.peer_seq;
    h.run_until(ms(6_000), &mds1_holds_both(), |_| false);
    assert!(h.first_event(|e| matches!(e, Event::PeerDead { .. })).is_some());
    // replay everything mds1 ever sent
    for seq in 1..=last_seq {
        let link = ((seq + 1) % 2) as u8;
        let hb = heartbeat(link, mds1_holds_both());
        let env = Envelope { cluster: "lfs".into(), sender: "mds1".into(), incarnation: 3, seq, body: Body::Heartbeat(hb) };
        h.engine.handle(h.now, Input::Datagram { link: link as usize, envelope: env });
        h.drain();
    }
    assert!(!h.engine.status(h.now).peers[0].alive);
    assert!(h.first_event(|e| matches!(e, Event::HeartbeatRejected { .. })).is_some());
}

#[test]
fn a_local_stall_convicts_nobody_on_that_tick() {
    let mut h = Harness::new(mds_pair());
    h.run_until(ms(2_000), &mds1_holds_both(), |_| true);
    // the process froze for 5 s (longer than dead_after); heartbeats that arrived meanwhile are queued
    h.now = ms(7_000);
    h.engine.handle(h.now, Input::Tick);
    h.drain();
    assert!(h.first_event(|e| matches!(e, Event::LocalStall { .. })).is_some());
    assert!(h.first_event(|e| matches!(e, Event::PeerDead { .. })).is_none());
    // the queued heartbeats are processed; the peer is fine
    h.run_until(ms(15_000), &mds1_holds_both(), |_| true);
    assert!(h.first_event(|e| matches!(e, Event::PeerDead { .. })).is_none(), "{:#?}", h.log);
}

#[test]
fn controlled_migration_releases_then_hands_off_without_force() {
    let mut h = Harness::new(mds_pair());
    // mds2 starts holding MGT (discovery finds it mounted)
    h.answer = Box::new(|cmd| match cmd.argv.join(" ").as_str() {
        "zpool list -H -o name,health" => ok("mgspool\tONLINE\n"),
        "cat /proc/mounts" => ok("mgspool/mgt /lustre/mgt lustre rw 0 0\n"),
        _ => standard_answers(cmd),
    });
    h.engine = started(mds_pair(), 8);
    h.drain();
    h.answer_all();
    let mdt = vec![TargetView { name: "lustre-MDT0000".into(), state: TargetState::Running }];
    h.run_until(ms(3_000), &mdt, |_| true);
    assert_eq!(h.engine.status(h.now).targets[0].owner.as_deref(), Some("mds2"));
    h.engine.handle(h.now, Input::Admin { id: 5, request: AdminRequest::Migrate { target: "MGT".into(), to: "mds1".into() } });
    h.drain();
    assert!(h.replies.last().unwrap().is_ok(), "{:?}", h.replies);
    h.run_until(ms(6_000), &mdt, |_| true);
    assert_eq!(h.commands_matching("umount"), vec!["umount /lustre/mgt"]);
    assert_eq!(h.commands_matching("zpool export"), vec!["zpool export mgspool"]);
    assert!(h.commands_matching("zpool import").is_empty());
    let (owner, state) = h.engine.owner_of("MGT");
    assert_eq!((owner, state.as_str()), (None, "handed off to mds1"));
    // mds1 picks it up: the hand-off is over
    let both = mds1_holds_both();
    h.run_until(ms(8_000), &both, |_| true);
    assert_eq!(h.engine.owner_of("MGT").0.as_deref(), Some("mds1"));
    assert!(h.first_command("ipmitool").is_none());
}

/// A controlled move of both targets to mds2 (mds1 in standby): the MDT handed off first is imported at once,
/// but its mount waits while the MGT is still on its way (released by mds1 to mds2), and runs only once the MGT
/// is verified here.
#[test]
fn a_moved_mdt_is_imported_at_once_but_mounted_only_after_the_moving_mgt_is_verified() {
    let mut h = Harness::new(mds_pair());
    h.answer = Box::new(|cmd| {
        let a = cmd.argv.join(" ");
        if a.starts_with("zdb -e -C") {
            let pool = cmd.argv.last().cloned().unwrap_or_default();
            return ok(&ZDB_BY_MDS1.replace("POOL", &pool).replace("state: 0", "state: 1"));
        }
        standard_answers(cmd)
    });
    h.run_until(ms(3_000), &mds1_holds_both(), |_| true);
    let view = |name: &str, state: TargetState| TargetView { name: name.into(), state };
    let to = || "mds2".to_string();
    let moving = vec![view("MGT", TargetState::Releasing { to: Some(to()) }), view("lustre-MDT0000", TargetState::HandedOff { to: to() })];
    h.run_until(ms(5_000), &moving, |_| true);
    assert_eq!(h.commands_matching("zpool import"), vec!["zpool import -o cachefile=none mdt0pool"]);
    assert!(h.commands_matching("mount -t lustre").is_empty(), "{:?}", h.commands);
    assert!(h.events.iter().any(|(_, e)| matches!(e, Event::MountWaiting { target, waiting_for } if target == "lustre-MDT0000" && waiting_for == &["MGT".to_string()])));
    let st = h.engine.status(h.now);
    let mdt = st.targets.iter().find(|t| t.target == "lustre-MDT0000").unwrap();
    assert_eq!((mdt.local.as_str(), mdt.mount_waits_for.clone()), ("starting", vec!["MGT".to_string()]));
    assert!(mdt.import_ms.is_some() && !mdt.import_forced, "{mdt:?}");
    let handed = vec![view("MGT", TargetState::HandedOff { to: to() }), view("lustre-MDT0000", TargetState::HandedOff { to: to() })];
    h.run_until(ms(8_000), &handed, |_| true);
    let mounts = h.commands_matching("mount -t lustre");
    assert_eq!(mounts, vec!["mount -t lustre mgspool/mgt /lustre/mgt", "mount -t lustre mdt0pool/mdt0 /lustre/mdt0"]);
    let mgt_done = h.first_event(|e| matches!(e, Event::SequenceDone { target, .. } if target == "MGT")).unwrap();
    let mdt_done = h.first_event(|e| matches!(e, Event::SequenceDone { target, .. } if target == "lustre-MDT0000")).unwrap();
    assert!(mgt_done <= mdt_done);
    for t in &h.engine.status(h.now).targets {
        assert_eq!((t.owner.as_deref(), t.local.as_str()), (Some("mds2"), "running"), "{t:?}");
    }
    assert!(h.commands_matching("zpool import -f").is_empty());
}

#[test]
fn a_release_that_fails_asks_to_be_fenced() {
    let mut h = Harness::new(mds_pair());
    h.answer = Box::new(|cmd| match cmd.argv.join(" ").as_str() {
        "zpool list -H -o name,health" => ok("mgspool\tONLINE\n"),
        "cat /proc/mounts" => ok("mgspool/mgt /lustre/mgt lustre rw 0 0\n"),
        "umount /lustre/mgt" => CommandResult::timed_out(),
        _ => standard_answers(cmd),
    });
    h.engine = started(mds_pair(), 8);
    h.drain();
    h.answer_all();
    h.run_until(ms(2_000), &[], |_| true);
    h.engine.handle(h.now, Input::Admin { id: 5, request: AdminRequest::Migrate { target: "MGT".into(), to: "mds1".into() } });
    h.drain();
    h.run_until(ms(3_000), &[], |_| true);
    assert!(h.first_event(|e| matches!(e, Event::AskingToBeFenced { .. })).is_some());
    let st = h.engine.status(h.now);
    assert!(st.asking_to_be_fenced.is_some());
    assert_eq!(st.targets[0].local, "failed");
    assert_eq!(st.targets[0].owner.as_deref(), Some("mds2"), "still claims it: nobody else may import it before a fence");
}

#[test]
fn maintenance_stops_fencing_and_takeover() {
    let mut h = Harness::new(mds_pair());
    h.run_until(ms(2_000), &mds1_holds_both(), |_| true);
    h.engine.handle(h.now, Input::Admin { id: 9, request: AdminRequest::Maintenance { on: true } });
    h.drain();
    h.run_until(ms(60_000), &mds1_holds_both(), |_| false);
    assert!(h.first_event(|e| matches!(e, Event::PeerDead { .. })).is_some(), "detection goes on");
    assert!(h.first_command("ipmitool").is_none() && h.first_command("zpool import").is_none());
    assert!(h.engine.status(h.now).maintenance);
}

/// A `config_mismatch`'s fields: (node, targets, keys, keys_known, blocks_fencing).
type MismatchFields<'a> = (&'a String, &'a Vec<String>, &'a Vec<KeyDiff>, bool, bool);

fn mismatch_of(e: &Event) -> Option<MismatchFields<'_>> {
    match e {
        Event::ConfigMismatch { node, targets, keys, keys_known, blocks_fencing } => Some((node, targets, keys, *keys_known, *blocks_fencing)),
        _ => None,
    }
}

#[test]
fn a_peer_with_another_definition_of_a_target_blocks_its_takeover() {
    let mut h = Harness::new(mds_pair());
    let mut theirs = mds_pair();
    theirs.targets[1].mountpoint = "/mnt/elsewhere".into();
    h.peer_cfg = Some(theirs);
    h.run_until(ms(2_000), &mds1_holds_both(), |_| true);
    let mismatches: Vec<_> = h.events.iter().filter_map(|(_, e)| mismatch_of(e)).collect();
    assert_eq!(mismatches.len(), 1, "one alert, with the keys: {:#?}", h.log);
    let (node, targets, keys, known, blocks) = mismatches[0];
    assert_eq!((node.as_str(), targets.clone(), known, blocks), ("mds1", vec!["lustre-MDT0000".to_string()], true, false));
    let mine = h.engine.config().targets[1].mountpoint.display().to_string();
    assert_eq!(keys, &vec![KeyDiff { key: "target[lustre-MDT0000].mountpoint".into(), here: Some(mine.clone()), there: Some("/mnt/elsewhere".into()) }]);
    let message = h.events.iter().find(|(_, e)| mismatch_of(e).is_some()).unwrap().1.message();
    assert!(message.contains(&format!("target[lustre-MDT0000].mountpoint: {mine} here, /mnt/elsewhere on mds1")), "{message}");
    assert!(message.contains("no automatic takeover of lustre-MDT0000"), "{message}");
    let st = h.engine.status(h.now);
    let m = st.peers[0].config_mismatch.clone().unwrap();
    assert_eq!((m.targets, m.blocks_fencing, m.keys.len()), (vec!["lustre-MDT0000".to_string()], false, 1));
    // mds1 dies: the fence and the MGT takeover happen; the disputed MDT is not taken over
    let t = h.now;
    h.run_until(t + Duration::from_secs(60), &mds1_holds_both(), |now| now < t + Duration::from_secs(1));
    assert_eq!(h.commands_matching("zpool import"), vec!["zpool import -f -o cachefile=none mgspool"]);
    assert!(h.first_event(|e| matches!(e, Event::FenceBlocked { .. })).is_none());
}

/// mds1 runs with dead_after 5 s and fence_delay 15 s against mds2's 3 s / 10 s (issue 12): mds2 names both
/// keys with both values, and when mds1 then dies it is neither fenced nor taken over automatically; the
/// alert says what to run. An operator's fence then lets the takeover go on.
#[test]
fn a_timing_mismatch_names_both_values_and_blocks_fencing_of_that_peer() {
    let mut h = Harness::new(mds_pair());
    let mut theirs = mds_pair();
    theirs.cluster.dead_after = Duration::from_secs(5);
    theirs.cluster.fence_delay = Duration::from_secs(15);
    h.peer_cfg = Some(theirs);
    h.run_until(ms(2_000), &mds1_holds_both(), |_| true);
    let mismatches: Vec<_> = h.events.iter().filter_map(|(_, e)| mismatch_of(e)).collect();
    assert_eq!(mismatches.len(), 1, "{:#?}", h.log);
    let (_, targets, keys, known, blocks) = mismatches[0];
    assert!(targets.is_empty() && known && blocks);
    let described: Vec<String> = keys.iter().map(|k| k.describe("mds1")).collect();
    assert_eq!(described, vec!["cluster.dead_after: 3s here, 5s on mds1", "cluster.fence_delay: 10s here, 15s on mds1"]);
    // the summary went out from mds2 too (the peer needs it to say the same)
    // mds1 dies at 2 s: declared dead, but no fence and no import; one fence_blocked alert naming the commands
    let t = h.now;
    h.run_until(t + Duration::from_secs(60), &mds1_holds_both(), |_| false);
    assert!(h.first_event(|e| matches!(e, Event::PeerDead { .. })).is_some());
    assert!(h.first_command("ipmitool").is_none(), "{:?}", h.commands);
    assert!(h.first_command("zpool import").is_none());
    let blocked: Vec<&Event> = h.events.iter().map(|(_, e)| e).filter(|e| matches!(e, Event::FenceBlocked { .. })).collect();
    assert_eq!(blocked.len(), 1, "{:#?}", h.log);
    let text = blocked[0].message();
    for needle in ["cluster.dead_after: 3s here, 5s on mds1", "failoverd check-config A B", "failoverd fence mds1", "failoverd confirm-fenced mds1"] {
        assert!(text.contains(needle), "{needle} not in {text}");
    }
    assert_eq!(blocked[0].severity(), Severity::Alert);
    let st = h.engine.status(h.now);
    assert_eq!(st.fence_blocked.len(), 1);
    assert!(st.peers[0].config_mismatch.as_ref().is_some_and(|m| m.blocks_fencing), "still known while mds1 is silent");
    // the operator fences by hand: the fence runs and the targets are taken over
    h.engine.handle(h.now, Input::Admin { id: 1, request: AdminRequest::Fence { node: "mds1".into(), action: crate::fence::FenceAction::Off } });
    h.drain();
    let t = h.now;
    h.run_until(t + Duration::from_secs(60), &[], |_| false);
    assert!(h.first_command("ipmitool").is_some());
    assert_eq!(h.commands_matching("zpool import").len(), 2, "{:?}", h.commands);
}

/// A peer that sends digests but no summary (another version, or every summary lost): after the grace the
/// mismatch is reported without keys, and it blocks fencing; agreeing again clears it.
#[test]
fn an_unexplained_mismatch_blocks_fencing_and_clears_when_the_digests_agree() {
    let mut h = Harness::new(mds_pair());
    let mut theirs = mds_pair();
    theirs.cluster.monitor_interval = Duration::from_secs(11);
    h.peer_cfg = Some(theirs);
    h.peer_summaries = false;
    h.run_until(ms(1_000), &mds1_holds_both(), |_| true);
    assert!(h.first_event(|e| mismatch_of(e).is_some()).is_none(), "not before the grace: {:#?}", h.log);
    h.run_until(ms(5_000), &mds1_holds_both(), |_| true);
    let at = h.first_event(|e| mismatch_of(e).is_some_and(|m| !m.3 && m.4)).expect("reported without keys");
    assert!(at >= ms(3_000), "{at}");
    assert!(h.engine.status(h.now).peers[0].config_mismatch.as_ref().is_some_and(|m| !m.keys_known));
    // mds2 sends its own summary while the digests differ, on both links, and not at every heartbeat
    // (covered by the summary counting test below); the peer fixes its file and restarts: agreed
    h.peer_cfg = None;
    h.peer_incarnation += 1;
    h.run_until(ms(6_000), &mds1_holds_both(), |_| true);
    assert!(h.first_event(|e| matches!(e, Event::ConfigAgreed { node } if node == "mds1")).is_some(), "{:#?}", h.log);
    assert!(h.engine.status(h.now).peers[0].config_mismatch.is_none());
}

/// The summary this node sends while a peer's digest differs: on every link, again every SUMMARY_EVERY, never
/// while the digests agree, and each part fits one datagram.
#[test]
fn summaries_are_sent_only_while_digests_differ_and_fit_a_datagram() {
    let mut h = Harness::new(mds_pair());
    h.run_until(ms(12_000), &mds1_holds_both(), |_| true);
    assert_eq!(h.summaries_sent, 0, "digests agree: no summary");
    let mut theirs = mds_pair();
    theirs.cluster.dead_after = Duration::from_secs(5);
    h.peer_cfg = Some(theirs);
    let parts = super::membership::summary_parts(h.engine.config(), h.engine.config().digest()).unwrap().len();
    h.run_until(ms(12_000 + 11_000), &mds1_holds_both(), |_| true);
    let sent = h.summaries_sent;
    // at once, then after 5 s and 10 s: three rounds of every part on both links
    assert_eq!(sent, 3 * 2 * parts, "{parts} parts");
}

#[test]
fn summary_parts_cover_every_value_and_check_config_uses_the_same_diff() {
    let cfg = mds_pair();
    let parts = super::membership::summary_parts(&cfg, cfg.digest()).unwrap();
    let back: std::collections::BTreeMap<String, String> = parts.iter().flat_map(|p| p.entries.clone()).collect();
    assert_eq!(back, cfg.agreement_values());
    assert!(parts.iter().enumerate().all(|(i, p)| p.part as usize == i && p.parts as usize == parts.len()));
    // a long value is cut to fit, never dropped
    let mut long = mds_pair();
    long.targets[0].mount_options = Some("o".repeat(3000));
    let parts = super::membership::summary_parts(&long, long.digest()).unwrap();
    let value = parts.iter().flat_map(|p| p.entries.iter()).find(|(k, _)| k == "target[MGT].mount_options").unwrap();
    assert!(value.1.ends_with('…') && value.1.len() < 1200);
}

#[test]
fn a_config_whose_heartbeat_cannot_fit_is_refused() {
    let mut cfg = mds_pair();
    let t = cfg.targets[0].clone();
    for i in 0..40 {
        let mut x = t.clone();
        x.name = format!("lustre-OST{i:04}-with-a-rather-long-descriptive-name-{i}");
        cfg.targets.push(x);
    }
    let err = Engine::new(Arc::new(cfg), "mds2", 1, None, Time::ZERO).err().unwrap();
    assert!(err.contains("would not fit in one datagram"), "{err}");
    assert!(heartbeat_fits(&mds_pair()).is_ok());
}

/// After a takeover the MDT's Lustre recovery is followed (`recovery_status` every 2 s) until COMPLETE:
/// `target_recovering`, then `target_recovered` with the clients; the MGS has no recovery window; status says
/// "recovering 37/99 clients, 120 s left" meanwhile.
#[test]
fn the_mdt_recovery_is_followed_until_complete_and_the_mgs_is_not_followed() {
    use std::cell::Cell;
    use std::rc::Rc;
    let reads = Rc::new(Cell::new(0u32));
    let seen = reads.clone();
    let mut h = Harness::new(mds_pair());
    h.answer = Box::new(move |cmd| {
        if cmd.argv.join(" ") == "lctl get_param -n mdt.lustre-MDT0000.recovery_status" {
            seen.set(seen.get() + 1);
            return if seen.get() < 4 {
                ok("status: RECOVERING\nrecovery_start: 1765054800\ntime_remaining: 120\nconnected_clients: 37/99\nreq_replay_clients: 0\nlock_repay_clients: 2\ncompleted_clients: 35\nevicted_clients: 0\nreplayed_requests: 14\nqueued_requests: 0\nnext_transno: 4294967301\n")
            } else {
                ok("status: COMPLETE\nrecovery_start: 1765054800\nrecovery_duration: 67\ncompleted_clients: 99/99\nreplayed_requests: 1523\nlast_transno: 4294968823\nVBR: DISABLED\nIR: DISABLED\n")
            };
        }
        standard_answers(cmd)
    });
    h.run_until(ms(30_000), &mds1_holds_both(), |t| t < ms(2_000));
    let verified = h.first_event(|e| matches!(e, Event::SequenceDone { target, .. } if target == "lustre-MDT0000")).expect("verified");
    let recovering = h.first_event(|e| matches!(e, Event::TargetRecovering { target, connected_clients: Some(37), total_clients: Some(99), .. } if target == "lustre-MDT0000")).expect("recovering");
    assert_eq!(recovering, verified);
    let done = h
        .events
        .iter()
        .find_map(|(t, e)| match e {
            Event::TargetRecovered { target, outcome, completed_clients, total_clients, recovery_duration_s, followed_ms, .. } if target == "lustre-MDT0000" => {
                Some((*t, outcome.clone(), *completed_clients, *total_clients, *recovery_duration_s, *followed_ms))
            }
            _ => None,
        })
        .expect("recovered");
    assert_eq!((done.1.as_str(), done.2, done.3, done.4), ("complete", Some(99), Some(99), Some(67)));
    // four reads, 2 s apart: the end is seen 6 s after verification
    assert_eq!(reads.get(), 4);
    assert_eq!(done.0, verified + Duration::from_secs(6));
    assert_eq!(done.5, 6_000);
    assert!(h.commands_matching("lctl get_param -n mgs").is_empty(), "the MGS has no recovery_status to follow");
    let st = h.engine.status(h.now);
    let words = |t: &str| st.targets.iter().find(|x| x.target == t).and_then(|x| x.recovery.clone()).unwrap_or_default();
    assert_eq!(words("lustre-MDT0000"), "recovery complete in 67 s, 99/99 clients");
    assert!(words("MGT").contains("MGS"), "{}", words("MGT"));
    assert_eq!(h.events.iter().filter(|(_, e)| matches!(e, Event::TargetRecovering { .. })).count(), 1);
}

/// A recovery still running after `recovery_budget` is no longer followed, with a warning; while it runs,
/// `status` shows the clients and the time left.
#[test]
fn a_recovery_longer_than_the_budget_is_reported_and_no_longer_followed() {
    let mut cfg = mds_pair();
    cfg.cluster.recovery_budget = Duration::from_secs(10);
    let mut h = Harness::new(cfg);
    h.answer = Box::new(|cmd| {
        if cmd.argv.join(" ").ends_with("recovery_status") {
            return ok("status: RECOVERING\nrecovery_start: 1765054800\ntime_remaining: 120\nconnected_clients: 37/99\ncompleted_clients: 35\n");
        }
        standard_answers(cmd)
    });
    // mds1 last heard at 1.75 s: dead at 4.75 s, fenced after the 10 s race delay, verified at ~14.75 s
    h.run_until(ms(20_000), &mds1_holds_both(), |t| t < ms(2_000));
    let verified = h.first_event(|e| matches!(e, Event::SequenceDone { target, .. } if target == "lustre-MDT0000")).expect("verified");
    assert!(h.now < verified + Duration::from_secs(10), "run until mid-recovery: verified at {verified}, now {}", h.now);
    let st = h.engine.status(h.now);
    let mdt = st.targets.iter().find(|t| t.target == "lustre-MDT0000").unwrap();
    assert!(mdt.recovery.as_deref().unwrap_or_default().starts_with("recovering 37/99 clients, 120 s left"), "{mdt:?}");
    h.run_until(ms(60_000), &mds1_holds_both(), |t| t < ms(2_000));
    let over = h.first_event(|e| matches!(e, Event::TargetRecovered { outcome, .. } if outcome == "budget_exceeded")).expect("budget");
    assert_eq!(over, verified + Duration::from_secs(10));
    let n = h.commands_matching("lctl get_param -n mdt.").len();
    h.run_until(ms(80_000), &mds1_holds_both(), |t| t < ms(2_000));
    assert_eq!(h.commands_matching("lctl get_param -n mdt.").len(), n, "no longer polled");
    assert_eq!(Event::TargetRecovered { target: "x".into(), outcome: "budget_exceeded".into(), followed_ms: 0, recovery_duration_s: None, completed_clients: None, total_clients: None, evicted_clients: None, ir: None, error: None }.severity(), Severity::Warning);
}

// ----- a fencer that may not run the dead node's targets (simulations/fencer-not-candidate.toml) ---------

/// mds_pair plus mds3: the highest fence_priority (the designated fencer once mds1 is dead), in no target's
/// `nodes`.
fn three_nodes() -> Config {
    let mut cfg = mds_pair();
    cfg.nodes.push(super::test_support::node("mds3", 3, 20, 0xc3c3_c3c3));
    cfg.fence_devices.extend(super::test_support::devices("mds3", 3));
    cfg
}

/// mds2's events and commands, each with its time.
type ThreeNodeRun = (Vec<(Time, Event)>, Vec<(Time, String)>);

/// mds2 (the engine) between mds1, which holds both targets and heartbeats while `mds1_alive`, and mds3,
/// which shares `confirmation(now)` in its heartbeats. Returns mds2's events and commands.
fn run_three(
    until: Time,
    mds1_alive: impl Fn(Time) -> bool,
    confirmation: impl Fn(Time) -> Option<crate::protocol::FenceConfirmation>,
) -> ThreeNodeRun {
    let cfg = three_nodes();
    let digest = cfg.digest();
    let target_digests: Vec<(String, u32)> = cfg.targets.iter().map(|t| (t.name.clone(), cfg.target_digest(&t.name).unwrap())).collect();
    let mut engine = started(cfg, 7);
    let (mut events, mut commands) = (Vec::new(), Vec::new());
    let mut pending: Vec<(CommandId, Command)> = Vec::new();
    let (mut now, mut next_hb, mut seq) = (Time::ZERO, Time::ZERO, 0u64);
    while now < until {
        for _ in 0..100 {
            while let Some(o) = engine.poll_output() {
                match o {
                    Output::Run { id, command, .. } => {
                        commands.push((now, command.display()));
                        pending.push((id, command));
                    }
                    Output::Event(e) => events.push((now, e)),
                    _ => {}
                }
            }
            if pending.is_empty() {
                break;
            }
            for (id, cmd) in std::mem::take(&mut pending) {
                engine.handle(now, Input::CommandDone { id, result: standard_answers(&cmd) });
            }
        }
        now = engine.next_deadline().min(next_hb).min(until).max(now);
        if now >= next_hb {
            let mds1_up = mds1_alive(now);
            let incarnations = [("mds1", 3), ("mds2", engine.incarnation()), ("mds3", 5)];
            let view = |node: &str, alive: bool| {
                let incarnation = incarnations.iter().find(|(n, _)| *n == node).map_or(0, |(_, i)| *i);
                crate::protocol::PeerView { node: node.into(), links_up: if alive { 3 } else { 0 }, alive, incarnation }
            };
            for link in 0..2u8 {
                let base = Heartbeat { config_digest: digest, target_digests: target_digests.clone(), ..heartbeat(link, vec![]) };
                let mut sends = vec![(
                    "mds3",
                    5,
                    Heartbeat { peers: vec![view("mds1", mds1_up), view("mds2", true)], fenced: confirmation(now).into_iter().collect(), ..base.clone() },
                )];
                if mds1_up {
                    sends.push(("mds1", 3, Heartbeat { peers: vec![view("mds2", true), view("mds3", true)], targets: mds1_holds_both(), ..base.clone() }));
                }
                for (sender, incarnation, hb) in sends {
                    seq += 1;
                    let envelope = Envelope { cluster: "lfs".into(), sender: sender.into(), incarnation, seq, body: Body::Heartbeat(hb) };
                    engine.handle(now, Input::Datagram { link: link as usize, envelope });
                }
            }
            next_hb = now + Duration::from_millis(250);
        }
        engine.handle(now, Input::Tick);
    }
    (events, commands)
}

/// mds3 confirmed mds1 (incarnation 3) off at 12 s by level 1.
fn mds3_fenced_mds1_at_12s(now: Time) -> Option<crate::protocol::FenceConfirmation> {
    (now >= ms(12_000)).then(|| crate::protocol::FenceConfirmation { node: "mds1".into(), incarnation: Some(3), age_ms: now.since(ms(12_000)).as_millis() as u64, level: 1 })
}

#[test]
fn a_candidate_takes_over_with_the_confirmation_the_designated_fencer_shared() {
    // mds1 dies at 5 s; mds3, the designated fencer, fences it; mds2, the only other node of the targets,
    // must take them over with mds3's confirmation (before the fix: never, and no alert)
    let (events, commands) = run_three(ms(120_000), |t| t < ms(5_000), mds3_fenced_mds1_at_12s);
    assert!(commands.iter().all(|(_, c)| !c.starts_with("ipmitool") && !c.starts_with("snmp")), "mds2 is not the designated fencer: {commands:?}");
    let taken = events
        .iter()
        .find(|(_, e)| matches!(e, Event::FenceConfirmedByPeer { node, peer, level: 1, devices } if node == "mds1" && peer == "mds3" && devices == &["mds1-ipmi"]))
        .map(|(t, _)| *t)
        .expect("mds2 takes mds3's confirmation");
    assert!(taken >= ms(12_000), "not before mds3 confirmed it: {taken}");
    let imports: Vec<&(Time, String)> = commands.iter().filter(|(_, c)| c.starts_with("zpool import")).collect();
    assert_eq!(imports.iter().map(|(_, c)| c.as_str()).collect::<Vec<_>>(), vec!["zpool import -f -o cachefile=none mgspool", "zpool import -f -o cachefile=none mdt0pool"]);
    assert!(imports[0].0 >= taken);
    let done = events.iter().filter(|(_, e)| matches!(e, Event::SequenceDone { sequence: crate::storage::SequenceKind::Forced, .. })).count();
    assert_eq!(done, 2, "both targets taken over");
}

#[test]
fn a_confirmation_naming_an_older_incarnation_covers_the_one_heard_before_it() {
    // mds3 knew mds1 only in incarnation 2 (it was cut off from it when mds1 restarted); mds2 heard incarnation
    // 3 until 4.75 s, and mds3 powered mds1 off at 12 s: that fence stopped incarnation 3 too, so mds2 takes the
    // confirmation and the targets over (swarm seed 226958: refused as void, the target stayed down for good)
    let (events, commands) =
        run_three(ms(120_000), |t| t < ms(5_000), |now| mds3_fenced_mds1_at_12s(now).map(|c| crate::protocol::FenceConfirmation { incarnation: Some(2), ..c }));
    assert!(events.iter().any(|(_, e)| matches!(e, Event::FenceConfirmedByPeer { node, .. } if node == "mds1")), "{events:?}");
    let done = events.iter().filter(|(_, e)| matches!(e, Event::SequenceDone { sequence: crate::storage::SequenceKind::Forced, .. })).count();
    assert_eq!(done, 2, "both targets taken over: {commands:?}");
}

#[test]
fn no_takeover_without_a_confirmation_or_with_an_inconsistent_one() {
    let no_import = |commands: &[(Time, String)]| commands.iter().all(|(_, c)| !c.starts_with("zpool import") && !c.starts_with("zdb"));
    let taken = |events: &[(Time, Event)]| events.iter().any(|(_, e)| matches!(e, Event::FenceConfirmedByPeer { .. }));
    // nobody shares a confirmation: mds2 never fences (mds3 must) and never imports
    let (events, commands) = run_three(ms(60_000), |t| t < ms(5_000), |_| None);
    assert!(no_import(&commands) && !taken(&events), "{commands:?}");
    // a confirmation of an older incarnation than the one mds2 heard, made (mds3 says) at 4.7 s, while mds2
    // heard that newer incarnation until 4.75 s (inside the in-flight margin, which a datagram of the fenced
    // incarnation may arrive in): the newer incarnation may have booted after that fence; it is not taken
    let (events, commands) = run_three(
        ms(60_000),
        |t| t < ms(5_000),
        |now| mds3_fenced_mds1_at_12s(now).map(|c| crate::protocol::FenceConfirmation { incarnation: Some(2), age_ms: now.since(ms(4_700)).as_millis() as u64, ..c }),
    );
    assert!(no_import(&commands) && !taken(&events), "{commands:?}");
    // a confirmation made (mds3 says) at 1 s, but mds2 heard mds1 until 4.75 s: not consistent
    let (events, commands) =
        run_three(ms(60_000), |t| t < ms(5_000), |now| mds3_fenced_mds1_at_12s(now).map(|c| crate::protocol::FenceConfirmation { age_ms: now.since(ms(1_000)).as_millis() as u64, ..c }));
    assert!(no_import(&commands) && !taken(&events), "{commands:?}");
    // mds1 still heard by mds2 (only mds3 lost it): nothing is taken while it is alive here
    let (events, commands) = run_three(ms(60_000), |_| true, mds3_fenced_mds1_at_12s);
    assert!(no_import(&commands) && !taken(&events), "{commands:?}");
}

/// An operator's refusals are typed (`AdminError`), so the CLI can tell "ask again later" from "never".
#[test]
fn admin_refusals_are_typed_and_say_whether_to_retry() {
    let mut h = Harness::new(mds_pair());
    h.drain();
    h.answer_all();
    let ask = |h: &mut Harness, id: u64, target: &str, to: &str| {
        h.engine.handle(h.now, Input::Admin { id, request: AdminRequest::Migrate { target: target.into(), to: to.into() } });
        h.drain();
        h.replies.last().cloned().expect("a reply")
    };
    // mds1 was never heard: wait_for_all holds this node without quorum
    match ask(&mut h, 1, "MGT", "mds1") {
        Err(e @ AdminError::NotNow { .. }) => assert!(e.retry_later() && e.to_string().starts_with("no action allowed now: no quorum"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(ask(&mut h, 2, "MGX", "mds1"), Err(AdminError::UnknownTarget { target: "MGX".into() }));
    assert_eq!(ask(&mut h, 3, "MGT", "mds9"), Err(AdminError::UnknownNode { node: "mds9".into() }));
    h.engine.handle(h.now, Input::Admin { id: 4, request: AdminRequest::ConfirmFenced { node: "mds2".into() } });
    h.drain();
    assert!(matches!(h.replies.last(), Some(Err(AdminError::OnItself { .. }))), "{:?}", h.replies);
    assert!(!h.replies.iter().filter_map(|r| r.as_ref().err()).skip(1).any(AdminError::retry_later));
}

// --- disk heartbeat (`[cluster] disk_heartbeat`) -------------------------------------------------------------

/// What mds1's slot holds when mds2 reads it.
#[derive(Clone, Copy)]
enum Slot {
    /// mds1 writes: (incarnation, seq) with seq = 250 ms periods so far.
    Writing(u64),
    /// Unchanged since `at`.
    Frozen(u64, u64),
    /// Another node's slot content (wrong index).
    Foreign,
}

fn disk_pair() -> Config {
    let mut cfg = mds_pair();
    cfg.cluster.disk_heartbeat = Some(std::path::PathBuf::from("/dev/disk/by-id/hb"));
    cfg
}

impl Harness {
    /// [`Harness::run_until`] with the disk channel: every `Output::DiskBeat` of mds2 is answered at once with
    /// `own(now)` as its write (`None`: the device hangs, no round) and mds1's slot as `slot(now)` gives it;
    /// mds1's heartbeats arrive while `net(now)`.
    fn run_disk(
        &mut self,
        until: Time,
        targets: &[TargetView],
        net: impl Fn(Time) -> bool,
        slot: impl Fn(Time) -> Slot,
        own: impl Fn(Time) -> Option<Result<Duration, String>>,
    ) {
        let mut next_peer_hb = self.now;
        while self.now < until {
            self.answer_all();
            let next = self.engine.next_deadline().min(next_peer_hb).min(until);
            self.now = next.max(self.now);
            if self.now >= next_peer_hb {
                if net(self.now) {
                    self.heartbeat_from_mds1(targets.to_vec());
                }
                next_peer_hb = self.now + Duration::from_millis(250);
            }
            self.engine.handle(self.now, Input::Tick);
            self.drain();
            if std::mem::take(&mut self.beat_pending) {
                if let Some(write) = own(self.now) {
                    let read = match slot(self.now) {
                        Slot::Writing(inc) => Ok(crate::diskbeat::DiskSlot { cluster: "lfs".into(), node: "mds1".into(), incarnation: inc, seq: self.now.0 / 250 }),
                        Slot::Frozen(inc, seq) => Ok(crate::diskbeat::DiskSlot { cluster: "lfs".into(), node: "mds1".into(), incarnation: inc, seq }),
                        Slot::Foreign => Ok(crate::diskbeat::DiskSlot { cluster: "lfs".into(), node: "mds2".into(), incarnation: 9, seq: self.now.0 }),
                    };
                    self.engine.handle(self.now, Input::DiskRound { write, slots: vec![("mds1".into(), read)] });
                    self.drain();
                }
            }
        }
        self.answer_all();
    }

    fn fenced_at(&self) -> Option<Time> {
        self.first_command("ipmitool")
    }
}

fn lat() -> Option<Result<Duration, String>> {
    Some(Ok(Duration::from_micros(800)))
}

#[test]
fn disk_beat_every_interval_only_when_configured() {
    let mut h = Harness::new(mds_pair());
    h.run_until(ms(5_000), &mds1_holds_both(), |_| true);
    assert!(h.disk_beats.is_empty());
    let mut h = Harness::new(disk_pair());
    h.run_disk(ms(5_000), &mds1_holds_both(), |_| true, |_| Slot::Writing(3), |_| lat());
    // one per heartbeat_interval (250 ms), from time 0
    let gaps: Vec<u64> = h.disk_beats.windows(2).map(|w| w[1].since(w[0]).as_millis() as u64).collect();
    assert!(gaps.iter().all(|g| (250..=260).contains(g)), "{:?} / {gaps:?}", h.disk_beats);
    assert!(h.disk_beats.len() >= 20, "{} beats", h.disk_beats.len());
    let st = h.engine.status(h.now);
    let disk = st.disk.expect("status shows the channel");
    assert!(disk.writes_ok && disk.last_latency_us == Some(800) && disk.error.is_none());
    assert_eq!(disk.device, "/dev/disk/by-id/hb");
    assert!(disk.peers[0].alive && disk.peers[0].slot_age_ms <= 250, "{:?}", disk.peers);
}

/// The peer crashed (network and slot silent) while this node's writes succeed: it cannot be partitioned
/// away, so mds2 fences at once although mds1 has the higher fence_priority (without the disk: 10 s later).
#[test]
fn disk_crash_fences_without_the_race_delay() {
    let mut h = Harness::new(disk_pair());
    let alive = |t: Time| t < ms(5_000);
    h.run_disk(ms(30_000), &mds1_holds_both(), alive, |t| if alive(t) { Slot::Writing(3) } else { Slot::Frozen(3, 19) }, |_| lat());
    let dead = h.first_event(|e| matches!(e, Event::PeerDead { node, .. } if node == "mds1")).expect("dead");
    let fenced = h.fenced_at().expect("fenced");
    assert!(fenced <= dead + Duration::from_millis(500), "dead at {dead}, fenced at {fenced}");
    assert!(h.first_event(|e| matches!(e, Event::PeerDiskSilent { node, .. } if node == "mds1")).is_some());
    assert!(h.first_command("zpool import -f").is_some(), "takeover after the fence");
}

/// Every link silent but the slot advances: the peer is alive, nobody is fenced, nothing moves.
#[test]
fn disk_partition_with_the_disk_alive_no_fence_no_move() {
    let mut h = Harness::new(disk_pair());
    h.run_disk(ms(60_000), &mds1_holds_both(), |t| t < ms(5_000), |_| Slot::Writing(3), |_| lat());
    assert!(h.first_event(|e| matches!(e, Event::PeerDead { .. })).is_some(), "the network says dead");
    assert_eq!(h.fenced_at(), None, "{:#?}", h.log);
    assert!(h.commands_matching("zpool import").is_empty() && h.commands_matching("zdb").is_empty());
    let n = h.events.iter().filter(|(_, e)| matches!(e, Event::PeerAliveOnDiskOnly { node, .. } if node == "mds1")).count();
    assert_eq!(n, 1, "reported once");
    assert!(!h.events.iter().any(|(_, e)| matches!(e, Event::FenceDelayed { .. } | Event::FenceStarted { .. })));
}

/// This node's own writes fail (or hang: no round at all): it fences nobody, says so, and fences once they
/// work again.
#[test]
fn disk_own_writes_failing_or_hung_never_fence() {
    for hung in [false, true] {
        let mut h = Harness::new(disk_pair());
        let alive = |t: Time| t < ms(5_000);
        let own = move |t: Time| {
            if t < ms(4_000) {
                lat()
            } else if hung {
                None
            } else {
                Some(Err("pwrite /dev/disk/by-id/hb: Input/output error (os error 5)".into()))
            }
        };
        h.run_disk(ms(60_000), &mds1_holds_both(), alive, |t| if alive(t) { Slot::Writing(3) } else { Slot::Frozen(3, 19) }, own);
        assert_eq!(h.fenced_at(), None, "hung {hung}: {:#?}", h.log);
        assert!(h.commands_matching("zpool import").is_empty());
        let failed = h.events.iter().filter(|(_, e)| matches!(e, Event::DiskHeartbeatFailed { .. })).count();
        assert_eq!(failed, 1, "hung {hung}");
        let held = h.events.iter().filter(|(_, e)| matches!(e, Event::FenceHeldDiskFailing { node, .. } if node == "mds1")).count();
        assert_eq!(held, 1, "hung {hung}");
        assert!(!h.engine.status(h.now).disk.unwrap().writes_ok);
        // writes work again: the crash is judged now, and mds1 is fenced
        h.run_disk(ms(90_000), &mds1_holds_both(), |_| false, |_| Slot::Frozen(3, 19), |_| lat());
        assert!(h.first_event(|e| matches!(e, Event::DiskHeartbeatRestored { .. })).is_some());
        assert!(h.fenced_at().is_some_and(|t| t > ms(60_000)), "hung {hung}");
    }
}

/// A slot that never advances after this node started (a stale slot of a node that died before) is no sign
/// of life, nor is another node's content in mds1's slot: mds1 silent on the network is fenced.
#[test]
fn disk_stale_or_foreign_slot_is_no_sign_of_life() {
    for foreign in [false, true] {
        let mut h = Harness::new(disk_pair());
        let slot = move |_| if foreign { Slot::Foreign } else { Slot::Frozen(2, 777) };
        h.run_disk(ms(30_000), &mds1_holds_both(), |t| t < ms(5_000), slot, |_| lat());
        assert!(h.fenced_at().is_some(), "foreign {foreign}: {:#?}", h.log);
        assert!(h.first_event(|e| matches!(e, Event::PeerAliveOnDiskOnly { .. })).is_none());
    }
}

/// A peer that restarted writes a higher incarnation with a small seq: that is an advance, so it is alive.
#[test]
fn disk_restarted_peer_new_incarnation_is_alive() {
    let mut h = Harness::new(disk_pair());
    let slot = |t: Time| if t < ms(5_000) { Slot::Writing(3) } else if t < ms(6_000) { Slot::Frozen(3, 19) } else { Slot::Writing(4) };
    // Writing(4) starts at seq 24 here; make it smaller than the old seq to check the order is (incarnation, seq)
    let slot = move |t: Time| match slot(t) {
        Slot::Writing(3) => Slot::Frozen(3, 1_000_000 + t.0 / 250),
        s => s,
    };
    h.run_disk(ms(40_000), &mds1_holds_both(), |t| t < ms(5_000), slot, |_| lat());
    assert_eq!(h.fenced_at(), None, "{:#?}", h.log);
    assert!(h.first_event(|e| matches!(e, Event::PeerAliveOnDiskOnly { .. })).is_some());
}

/// The peer's own path failed (its slot stopped) while it is heard on the network: it is alive, nothing is
/// fenced; the silent slot is reported.
#[test]
fn disk_peer_path_failed_network_alive_no_fence() {
    let mut h = Harness::new(disk_pair());
    h.run_disk(ms(30_000), &mds1_holds_both(), |_| true, |t| if t < ms(5_000) { Slot::Writing(3) } else { Slot::Frozen(3, 19) }, |_| lat());
    assert_eq!(h.fenced_at(), None);
    let silent = h.first_event(|e| matches!(e, Event::PeerDiskSilent { node, .. } if node == "mds1")).expect("reported");
    assert!(silent >= ms(7_750) && silent <= ms(8_500), "at {silent}");
    let disk = h.engine.status(h.now).disk.unwrap();
    assert!(!disk.peers[0].alive && disk.peers[0].slot_age_ms > 20_000);
}

/// Partitioned, both alive on the disk; then this node's path hangs (no more rounds). Its last view of the
/// peer's slot ages exactly as its own writes do: it must not take the live peer for dead in between, even
/// as the higher-priority node that would fence at once (the peer, seeing this node's slot stop, fences it:
/// two fences). The peer's slot advances every 500 ms here, so it did not advance in the last good round.
#[test]
fn disk_own_path_hanging_does_not_take_a_live_peer_for_dead() {
    let mut cfg = disk_pair();
    cfg.nodes[1].fence_priority = 20; // mds2 outranks mds1: no race delay of its own
    let mut h = Harness::new(cfg);
    let slot = |t: Time| Slot::Frozen(3, t.0 / 500_000);
    h.run_disk(ms(60_000), &mds1_holds_both(), |t| t < ms(5_000), slot, |t| if t < ms(20_300) { lat() } else { None });
    assert_eq!(h.fenced_at(), None, "{:#?}", h.log);
    assert!(h.first_event(|e| matches!(e, Event::FenceHeldDiskFailing { .. })).is_some());
}
