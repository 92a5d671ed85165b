//! The real daemon, as real processes talking real UDP on 127.0.0.1: failure detection end to end, hostile
//! datagrams, hostile control requests, graceful stop.
//!
//! Every test has its own temporary directory (config, key, state dirs, control sockets, logs) and its own
//! ports; daemons are killed when the test ends, whether it passed or not.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::UdpSocket;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use failoverd::protocol::{self, Body, Envelope, Heartbeat};
use rand::{Rng, RngCore, SeedableRng};
use serde_json::{json, Value};

use crate::support::cluster::{Cluster, DEAD_AFTER_MS, HEARTBEAT_MS};
use crate::support::{wait_until, BIN};

/// Seconds since midnight UTC of an RFC 3339 timestamp as tracing-subscriber writes it
/// (`2026-05-01T12:34:56.123456Z`).
fn seconds_of_day(ts: &str) -> f64 {
    let time = ts.split('T').nth(1).unwrap().trim_end_matches('Z');
    let mut parts = time.split(':');
    let h: f64 = parts.next().unwrap().parse().unwrap();
    let m: f64 = parts.next().unwrap().parse().unwrap();
    let s: f64 = parts.next().unwrap().parse().unwrap();
    h * 3600.0 + m * 60.0 + s
}

fn now_seconds_of_day() -> f64 {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    (d.as_secs() % 86_400) as f64 + f64::from(d.subsec_nanos()) / 1e9
}

#[test]
fn two_daemons_detect_a_killed_peer() {
    let cluster = Cluster::new(&["n1", "n2"], "");
    let mut n1 = cluster.start("n1");
    let n2 = cluster.start("n2");
    wait_until("n1 and n2 see each other alive", Duration::from_secs(15), || n1.peer_alive("n2") && n2.peer_alive("n1"));

    let s = n2.status();
    assert_eq!(s["node"], json!("n2"));
    assert_eq!(s["quorum"]["quorate"], json!(true), "{s:#}");
    assert_eq!(s["all_nodes_seen"], json!(true));
    let links = s["peers"][0]["links"].as_array().unwrap();
    assert!(links.iter().all(|l| l["up"] == json!(true)), "both links up: {s:#}");

    // the human form
    let out = Command::new(BIN).args(["status", "--socket"]).arg(&n2.socket).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success());
    assert!(text.starts_with("cluster: testc") && text.contains("\nquorum: yes"), "{text}");
    assert!(text.contains("n1") && text.contains("online") && text.contains("RING0"), "{text}");
    println!("--- failoverd status (n2) ---\n{text}");

    // SIGKILL n1 and time n2's verdict
    let killed_at = now_seconds_of_day();
    let t0 = Instant::now();
    n1.kill();
    let mut observed = None;
    wait_until("n2 declares n1 dead", Duration::from_secs(10), || {
        let found = n2.events("peer_dead").into_iter().find(|e| e["fields"]["detail"].as_str().unwrap_or("").contains("\"node\":\"n1\""));
        if let Some(e) = found {
            observed = Some((t0.elapsed(), e));
            true
        } else {
            false
        }
    });
    let (polled, event) = observed.unwrap();
    let logged = seconds_of_day(event["timestamp"].as_str().unwrap());
    let mut detection = logged - killed_at;
    if detection < -43_200.0 {
        detection += 86_400.0; // midnight between the two
    }
    let detection = Duration::from_secs_f64(detection.max(0.0));
    let bound = Duration::from_millis(DEAD_AFTER_MS + HEARTBEAT_MS + 100) + Duration::from_secs(1);
    println!(
        "detection time: {} ms from SIGKILL to n2's peer_dead log line (seen by polling after {} ms); \
         dead_after {DEAD_AFTER_MS} ms, heartbeat_interval {HEARTBEAT_MS} ms; event {}",
        detection.as_millis(),
        polled.as_millis(),
        event["fields"]["detail"]
    );
    assert!(detection >= Duration::from_millis(DEAD_AFTER_MS - HEARTBEAT_MS), "declared dead too early: {detection:?}");
    assert!(detection < bound, "detection took {detection:?}, bound {bound:?}");
    assert!(!n2.peer_alive("n1"));
    // n2 does not crash after it (it asks the operator to fence n1: fencing = "manual"); a deliberate wait
    std::thread::sleep(Duration::from_millis(300));
    let s = n2.status();
    assert_eq!(s["peers"][0]["alive"], json!(false));
}

/// Make a datagram that looks like n1's but is signed with another key.
fn forged(seq: u64) -> Vec<u8> {
    let env = Envelope {
        cluster: "testc".into(),
        sender: "n1".into(),
        incarnation: u64::MAX / 2,
        seq,
        body: Body::Heartbeat(Heartbeat {
            link: 0,
            peers: vec![],
            quorate: true,
            discovered: true,
            leaving: false,
            maintenance: true,
            maintenance_epoch: 1000,
            standby: vec![],
            standby_epoch: 0,
            fence_me: false,
            config_digest: [0; 16],
            targets: vec![],
            target_digests: vec![],
            move_requests: vec![],
            fenced: vec![],
        }),
    };
    protocol::encode(&env, b"an attacker's key that is long enough to be used").unwrap()
}

#[test]
fn hostile_datagrams_change_nothing() {
    // n3 is the test itself: the daemons send it heartbeats, which gives us genuine datagrams to replay
    let tap0 = UdpSocket::bind("127.0.0.1:0").unwrap();
    let tap1 = UdpSocket::bind("127.0.0.1:0").unwrap();
    let taps = vec![tap0.local_addr().unwrap().port(), tap1.local_addr().unwrap().port()];
    let cluster = Cluster::build(&["n1", "n2"], &[("n3", taps)], "");
    let mut n1 = cluster.start("n1");
    let mut n2 = cluster.start("n2");
    wait_until("n1 and n2 see each other alive", Duration::from_secs(15), || n1.peer_alive("n2") && n2.peer_alive("n1"));

    // capture genuine datagrams from n1 on both links
    tap0.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    tap1.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let n1_ports = cluster.ports("n1");
    let mut captured: Vec<(usize, Vec<u8>)> = Vec::new();
    let mut buf = [0u8; 2048];
    for (link, tap) in [&tap0, &tap1].into_iter().enumerate() {
        while captured.iter().filter(|(l, _)| *l == link).count() < 5 {
            let (n, from) = tap.recv_from(&mut buf).unwrap();
            if from.port() == n1_ports[link] {
                captured.push((link, buf[..n].to_vec()));
            }
        }
    }

    let before = n2.status();
    let n2_ports = cluster.ports("n2");
    let attacker = UdpSocket::bind("127.0.0.1:0").unwrap();
    let target = |link: usize| format!("127.0.0.1:{}", n2_ports[link]);

    // forged (wrong key), 10 000 random datagrams (some with our header, some oversized), while n1 is alive
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    for i in 0..20u64 {
        attacker.send_to(&forged(1_000_000 + i), target(0)).unwrap();
    }
    for i in 0..10_000usize {
        let len = rng.random_range(0..1500usize);
        let mut d = vec![0u8; len];
        rng.fill_bytes(&mut d);
        if i % 3 == 0 && len >= 4 {
            d[..4].copy_from_slice(b"FOD\x01");
        }
        if i % 1000 == 0 {
            d = vec![0x41; 1900];
        }
        let _ = attacker.send_to(&d, target(i % 2));
        if i % 250 == 0 {
            // pacing of the flood, not a wait for anything
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    // a deliberate wait past dead_after: the flood may neither kill n2 nor make it lose n1
    std::thread::sleep(Duration::from_millis(2 * DEAD_AFTER_MS));
    assert!(n2.running(), "n2 died under the flood; log:\n{}", n2.log_text());
    let after = n2.status();
    assert_eq!(after["peers"][0]["node"], json!("n1"));
    assert_eq!(after["peers"][0]["alive"], json!(true), "n1 still alive in n2's view: {after:#}");
    assert_eq!(after["maintenance"], before["maintenance"], "a forged heartbeat turned maintenance on");
    assert_eq!(after["maintenance"], json!(false));
    assert_eq!(after["peers"][0]["incarnation"], before["peers"][0]["incarnation"]);
    assert!(n2.events("peer_dead").is_empty(), "the flood made n2 lose n1");

    // replays: kill n1, wait for n2's verdict, then replay n1's genuine datagrams: n1 must stay dead
    n1.kill();
    wait_until("n2 declares n1 dead", Duration::from_secs(10), || !n2.peer_alive("n1"));
    for _ in 0..20 {
        for (link, d) in &captured {
            attacker.send_to(d, target(*link)).unwrap();
        }
        // pacing of the replays, not a wait for anything
        std::thread::sleep(Duration::from_millis(20));
    }
    // a deliberate wait: the replays may not bring n1 back
    std::thread::sleep(Duration::from_millis(200));
    assert!(n2.running());
    assert!(!n2.peer_alive("n1"), "a replayed datagram made a dead node look alive");
    assert!(n2.events("peer_alive").iter().filter(|e| e["fields"]["detail"].as_str().unwrap().contains("\"n1\"")).count() == 1);
    let rejected = n2.events("heartbeat_rejected");
    assert!(!rejected.is_empty(), "the replays were not reported");
    assert!(rejected[0]["fields"]["detail"].as_str().unwrap().contains("replayed"), "{}", rejected[0]);

    // the daemon counted what it dropped
    let out = Command::new(BIN).args(["status", "--socket"]).arg(&n2.socket).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("dropped datagrams:"), "{text}");
    let mut s = UnixStream::connect(&n2.socket).unwrap();
    s.write_all(b"{\"request\":\"status\"}\n").unwrap();
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line).unwrap();
    let v: Value = serde_json::from_str(&line).unwrap();
    let dropped = v["runtime"]["datagrams"]["dropped"].as_u64().unwrap();
    let bad_mac = v["runtime"]["datagrams"]["bad_mac"].as_u64().unwrap();
    println!("n2 dropped {dropped} datagrams ({bad_mac} failed the MAC); {}", v["runtime"]["datagrams"]);
    assert!(bad_mac >= 20, "forged datagrams were not all rejected by the MAC: {}", v["runtime"]);
    assert!(dropped > 5_000, "the kernel may drop some of the flood, not most: {}", v["runtime"]);
}

fn control_roundtrip(socket: &Path, bytes: &[u8]) -> (Option<Value>, bool) {
    let mut s = UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // the daemon may close while we are still writing an oversized request
    let _ = s.write_all(bytes);
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let reply = serde_json::from_str(&line).ok();
    let mut rest = Vec::new();
    let closed = matches!(r.read_to_end(&mut rest), Ok(0)) || rest.is_empty();
    (reply, closed)
}

fn stable_view(s: &Value) -> Value {
    json!({
        "maintenance": s["maintenance"],
        "quorum": s["quorum"],
        "peers": s["peers"].as_array().unwrap().iter().map(|p| json!([p["node"], p["alive"], p["fenced"], p["incarnation"]])).collect::<Vec<_>>(),
        "incarnation": s["incarnation"],
        "fencing": s["fencing"],
        "targets": s["targets"],
    })
}

#[test]
fn bad_control_requests_change_nothing_and_sigterm_stops_cleanly() {
    let cluster = Cluster::new(&["n1", "n2"], "");
    let mut n1 = cluster.start("n1");
    let before = n1.status();

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("not JSON", b"this is not json\n".to_vec()),
        ("truncated JSON", b"{\"request\":\"maintenance\",\"on\":tr\n".to_vec()),
        ("unknown request", b"{\"request\":\"format_all_disks\"}\n".to_vec()),
        ("missing field", b"{\"request\":\"migrate\",\"target\":\"MDT0\"}\n".to_vec()),
        ("wrong type", b"{\"request\":\"maintenance\",\"on\":\"yes\"}\n".to_vec()),
        ("not an object", b"[\"maintenance\", true]\n".to_vec()),
        ("binary", vec![0xff, 0x00, 0xfe, b'\n']),
    ];
    for (what, bytes) in &cases {
        let mut s = UnixStream::connect(&n1.socket).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(bytes).unwrap();
        let mut line = String::new();
        BufReader::new(&s).read_line(&mut line).unwrap();
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{what}: reply {line:?} is not JSON: {e}"));
        assert_eq!(v["ok"], json!(false), "{what}: {v}");
        assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{what}: {v}");
    }
    // an oversized line: error, then the connection is closed
    let mut big = b"{\"request\":\"maintenance\",\"on\":true,\"pad\":\"".to_vec();
    big.extend(vec![b'x'; 70_000]);
    big.extend_from_slice(b"\"}\n");
    let (reply, closed) = control_roundtrip(&n1.socket, &big);
    let reply = reply.expect("a JSON error reply to an oversized request");
    assert_eq!(reply["ok"], json!(false));
    assert!(reply["error"].as_str().unwrap().contains("longer than"), "{reply}");
    assert!(closed, "connection not closed after an oversized request");

    assert!(n1.running());
    let after = n1.status();
    assert_eq!(stable_view(&after), stable_view(&before), "a bad request changed the daemon's state");

    // a good admin request through the CLI still works, and is reflected in status
    let out = Command::new(BIN).args(["maintenance", "on", "--socket"]).arg(&n1.socket).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(n1.status()["maintenance"], json!(true));
    let out = Command::new(BIN).args(["status", "--socket"]).arg(&n1.socket).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("\nMAINTENANCE: on"));
    let out = Command::new(BIN).args(["maintenance", "off", "--socket"]).arg(&n1.socket).output().unwrap();
    assert!(out.status.success());
    assert_eq!(n1.status()["maintenance"], json!(false));
    // the engine's refusal comes back as an error and a failing exit status
    let out = Command::new(BIN).args(["migrate", "NOPE", "--to", "n2", "--socket"]).arg(&n1.socket).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "an unknown target can never succeed: exit 1, not 3 (retry later)");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "failoverd migrate: unknown target NOPE\n");
    // confirm-fenced without a terminal and without --yes does nothing
    let out = Command::new(BIN).args(["confirm-fenced", "n2", "--socket"]).arg(&n1.socket).stdin(Stdio::null()).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "a command line that lacks --yes without a terminal: exit 2");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--yes"));

    // SIGTERM: leave, exit 0, remove the control socket
    let t = Instant::now();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(n1.pid()), nix::sys::signal::Signal::SIGTERM).unwrap();
    let mut child = n1.child.take().unwrap();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(t.elapsed() < Duration::from_secs(35), "n1 did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status {status:?}; log:\n{}", n1.log_text());
    assert!(!n1.socket.exists(), "control socket left behind");
    assert!(n1.log_text().contains("left the cluster"), "{}", n1.log_text());
    println!("SIGTERM to exit: {} ms", t.elapsed().as_millis());

    // a restart bumps the incarnation and finds its journal
    let n1b = cluster.start("n1");
    let s = n1b.status();
    assert_eq!(s["incarnation"].as_u64().unwrap(), before["incarnation"].as_u64().unwrap() + 1);
}

#[test]
fn startup_errors_name_what_is_wrong() {
    let cluster = Cluster::new(&["n1", "n2"], "");
    let (config, _) = cluster.node_config("n1");
    // a node name that is not in the config
    let out = Command::new(BIN).args(["run", "--config"]).arg(&config).args(["--node", "zz", "--log-format", "json"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--node zz") && err.contains("n1, n2"), "{err}");
    // a state_dir that is a file
    let text = std::fs::read_to_string(&config).unwrap();
    let blocker = cluster.dir.path().join("blocker");
    std::fs::write(&blocker, "x").unwrap();
    let state_line = text.lines().find(|l| l.starts_with("state_dir")).unwrap().to_string();
    let bad = cluster.dir.path().join("bad.toml");
    std::fs::write(&bad, text.replace(&state_line, &format!("state_dir = \"{}\"", blocker.display()))).unwrap();
    let out = Command::new(BIN).args(["run", "--config"]).arg(&bad).args(["--node", "n1"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cluster.state_dir"), "{err}");
    // a second daemon on the same node is refused
    let _n1 = cluster.start("n1");
    let out = Command::new(BIN).args(["run", "--config"]).arg(&config).args(["--node", "n1"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    // refused by the state_dir lock (taken first), naming the running daemon
    assert!(err.contains("cluster.state_dir") && err.contains("another failoverd") && err.contains(&format!("pid {}", _n1.pid())), "{err}");
    // status against nothing says what to check
    let out = Command::new(BIN).args(["status", "--socket"]).arg(cluster.dir.path().join("nope.sock")).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is failoverd running"));
}

#[test]
fn a_frozen_daemon_reports_its_own_stall_and_convicts_nobody() {
    use nix::sys::signal::{kill, Signal};
    let cluster = Cluster::new(&["n1", "n2"], "");
    let n1 = cluster.start("n1");
    let n2 = cluster.start("n2");
    wait_until("n1 and n2 see each other alive", Duration::from_secs(15), || n1.peer_alive("n2") && n2.peer_alive("n1"));

    // freeze n2 for twice dead_after (a VM pause, a swap storm): when it wakes, the silence it measured is its own
    let pid = nix::unistd::Pid::from_raw(n2.pid());
    kill(pid, Signal::SIGSTOP).unwrap();
    // the freeze itself: time deliberately let pass
    std::thread::sleep(Duration::from_millis(2 * DEAD_AFTER_MS));
    kill(pid, Signal::SIGCONT).unwrap();
    wait_until("n2 reports a local stall", Duration::from_secs(5), || !n2.events("local_stall").is_empty());
    // a deliberate wait past dead_after: n2 may not convict n1 for its own stall
    std::thread::sleep(Duration::from_millis(DEAD_AFTER_MS));
    assert!(n2.events("peer_dead").is_empty(), "n2 convicted n1 for n2's own stall: {:?}", n2.events("peer_dead"));
    assert!(n2.peer_alive("n1"));
    // n1 did hear nothing from n2 for a second: for n1, n2 was dead, and is alive again now
    assert!(!n1.events("peer_dead").is_empty());
    wait_until("n1 sees n2 alive again", Duration::from_secs(5), || n1.peer_alive("n2"));
    println!("n2 stall events: {:?}", n2.events("local_stall").iter().map(|e| e["fields"]["detail"].clone()).collect::<Vec<_>>());
}

/// Fence confirmations journaled in another boot of the host are dropped at start, with a warning that names
/// the nodes (the host went down after them, perhaps fenced by one of those nodes); those of this boot
/// (`/proc/sys/kernel/random/boot_id`) are kept, as a daemon restarted within one boot needs them.
#[test]
fn journaled_fence_confirmations_of_an_earlier_boot_are_dropped() {
    let cluster = Cluster::new(&["n1", "n2"], "");
    let this_boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap().trim().to_string();
    let state = cluster.dir.path().join("n1").join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::set_permissions(&state, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let journal = |boot: &str| {
        let n2 = json!({ "node": "n2", "at": 0, "incarnation": null, "by_operator": false, "level": 1 });
        json!({ "node": "n1", "incarnation": 1, "maintenance_epoch": 0, "maintenance": false, "fenced": [n2],
                "operations": [], "asking_to_be_fenced": null, "boot_id": boot })
        .to_string()
    };
    let n2_fenced = |s: &Value| s["peers"].as_array().unwrap().iter().any(|p| p["node"] == json!("n2") && p["fenced"] == json!(true));
    for (boot, kept) in [("an-earlier-boot", false), (this_boot.as_str(), true)] {
        std::fs::write(state.join("journal.json"), journal(boot)).unwrap();
        let mut n1 = cluster.start("n1");
        let warning = n1.log_lines().into_iter().find(|l| {
            l["fields"]["message"].as_str().is_some_and(|m| m.contains("journaled before this host last booted")) && l["fields"]["nodes"] == json!("n2")
        });
        println!("--- journal of boot {boot}: n2 fenced {} ---\n{warning:?}", n2_fenced(&n1.status()));
        assert_eq!((n2_fenced(&n1.status()), warning.is_some()), (kept, !kept), "journal of boot {boot}:\n{}", n1.log_text());
        n1.kill();
    }
}
