//! What an operator does by mistake or on purpose, with real daemons on 127.0.0.1 (issue 12): a second
//! daemon for a node, a graceful stop, what the notify program receives, a closed pipe.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::cluster::{notified, notify_recorder, Cluster, DEAD_AFTER_MS};
use crate::support::{free_tcp_port, wait_until, Daemon, BIN};
use serde_json::{json, Value};

fn detail_names(events: &[Value], node: &str) -> usize {
    events.iter().filter(|e| e["fields"]["detail"].as_str().unwrap_or("").contains(&format!("\"node\":\"{node}\""))).count()
}

#[test]
fn a_second_daemon_for_a_node_is_refused_and_nobody_is_fenced() {
    let cluster = Cluster::new(&["n1", "n2"], "");
    let n1 = cluster.start("n1");
    let n2 = cluster.start("n2");
    wait_until("n1 and n2 see each other alive", Duration::from_secs(15), || n1.peer_alive("n2") && n2.peer_alive("n1"));

    // the operator's slip: another state dir and control socket, the same addresses
    let (config, socket) = cluster.instance_config("n1-again");
    let t = Instant::now();
    let mut second = cluster.spawn("n1", "n1-again", &config, &socket);
    let status = loop {
        if let Some(s) = second.child.as_mut().unwrap().try_wait().unwrap() {
            break s;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "the second daemon did not exit; log:\n{}", second.log_text());
        std::thread::sleep(Duration::from_millis(20));
    };
    second.child = None;
    let log = second.log_text();
    assert!(!status.success(), "{log}");
    assert!(log.contains("cannot bind UDP") && log.contains(&format!("pid {}", n1.pid())), "names the running daemon: {log}");
    println!("second daemon (other state_dir) refused after {} ms: {}", t.elapsed().as_millis(), log.lines().last().unwrap_or(""));

    // the same state_dir (another control socket): refused by the state_dir lock, naming the pid
    let (own_config, _) = cluster.node_config("n1");
    let text = std::fs::read_to_string(&own_config).unwrap();
    let other_socket = cluster.dir.path().join("n1-sock2.sock");
    let same_state = cluster.dir.path().join("same-state.toml");
    let sock_line = text.lines().find(|l| l.starts_with("control_socket")).unwrap().to_string();
    std::fs::write(&same_state, text.replace(&sock_line, &format!("control_socket = \"{}\"", other_socket.display()))).unwrap();
    let out = Command::new(BIN).args(["run", "--config"]).arg(&same_state).args(["--node", "n1"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("cluster.state_dir") && err.contains("another failoverd is running") && err.contains(&format!("pid {}", n1.pid())), "{err}");
    assert!(!other_socket.exists(), "the refused daemon left a socket behind");

    // nobody convicted, nobody fenced, and the real n1 is still heard by n2 (a deliberate wait: nothing may happen)
    std::thread::sleep(Duration::from_millis(3 * DEAD_AFTER_MS));
    for d in [&n1, &n2] {
        assert!(d.events("peer_dead").is_empty(), "{}: {:?}", d.name, d.events("peer_dead"));
        assert!(d.events("fence_started").is_empty() && d.events("fence_needs_operator").is_empty(), "{}", d.name);
        assert!(d.events("heartbeat_rejected").is_empty(), "{}: {:?}", d.name, d.events("heartbeat_rejected"));
    }
    assert!(n2.peer_alive("n1") && n1.peer_alive("n2"));
}

#[test]
fn sigterm_is_a_departure_not_a_death() {
    let tmp = tempfile::tempdir().unwrap();
    let (script, file) = notify_recorder(tmp.path());
    let cluster = Cluster::new(&["n1", "n2"], &format!("notify = \"{}\"", script.display()));
    let n1 = cluster.start("n1");
    let mut n2 = cluster.start("n2");
    wait_until("n1 and n2 see each other alive", Duration::from_secs(15), || n1.peer_alive("n2") && n2.peer_alive("n1"));

    let status = n2.terminate(Duration::from_secs(35));
    assert!(status.success(), "n2 exit status {status:?}");
    wait_until("n1 reports n2 left", Duration::from_secs(10), || detail_names(&n1.events("peer_left"), "n2") == 1);
    // a deliberate wait past dead_after: no peer_dead may follow the departure
    std::thread::sleep(Duration::from_millis(2 * DEAD_AFTER_MS));
    assert_eq!(detail_names(&n1.events("peer_dead"), "n2"), 0, "a graceful stop was read as a death");
    let peer = n1.peer("n2");
    assert_eq!(peer["left"], json!(true), "{peer:#}");
    assert_eq!(peer["alive"], json!(false));
    let text = n1.status_text();
    let row = text.lines().find(|l| l.trim_start().starts_with("n2")).unwrap_or("");
    assert!(row.contains("LEFT") && !row.contains("DEAD"), "{text}");

    // the notify program heard it as info, never as an alert about n2
    wait_until("peer_left notified", Duration::from_secs(5), || notified(&file).iter().any(|e| e["event"] == json!("peer_left")));
    let all = notified(&file);
    let left = all.iter().find(|e| e["event"] == json!("peer_left")).unwrap();
    assert_eq!(left["severity"], json!("info"), "{left}");
    assert_eq!(left["node"], json!("n2"));
    assert!(!all.iter().any(|e| e["event"] == json!("peer_dead")), "{all:#?}");
    assert!(!all.iter().any(|e| e["severity"] == json!("alert") && e["node"] == json!("n2")), "{all:#?}");
}

#[test]
fn a_closed_pipe_ends_status_quietly() {
    let cluster = Cluster::new(&["n1", "n2"], "");
    let n1 = cluster.start("n1");
    for args in [vec!["status", "--json"], vec!["status"]] {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("'{BIN}' {} --socket '{}' | head -c1", args.join(" "), n1.socket.display()))
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {:?} {err}", out.status);
        assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{args:?}: {err}");
        assert_eq!(out.stdout.len(), 1);
    }
    // without a shell: the process itself dies of SIGPIPE (as `ls` does), never of a panic (exit 101)
    use std::os::unix::process::ExitStatusExt;
    let mut child = Command::new(BIN)
        .args(["status", "--json", "--socket"])
        .arg(&n1.socket)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success() || out.status.signal() == Some(13), "{:?}: {}", out.status, String::from_utf8_lossy(&out.stderr));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}

#[test]
fn sim_san_show_into_head_does_not_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let san = tmp.path().join("san");
    let cfg = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/two-node-mds.toml");
    let init = Command::new(BIN).args(["sim-san", "--san"]).arg(&san).args(["init", "--config"]).arg(&cfg).output().unwrap();
    assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stderr));
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("'{BIN}' sim-san --san '{}' show | head -n1", san.display()))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !err.contains("panicked"), "{:?} {err}", out.status);
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
    // deterministic: the reader is gone before the first write
    use std::os::unix::process::ExitStatusExt;
    let mut child = Command::new(BIN).args(["sim-san", "--san"]).arg(&san).arg("show").stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() || out.status.signal() == Some(13), "{:?}: {err}", out.status);
    assert!(!err.contains("panicked"), "{err}");
}

/// Every notify payload of a whole failover (the demo: mds1 loses power, mds2 fences it and takes over),
/// received by a real notify program: recoveries included, each with a wall-clock timestamp, the cluster,
/// the reporting node, snake_case values and a message.
#[test]
fn notify_hears_the_whole_failover_with_timestamps() {
    let tmp = tempfile::tempdir().unwrap();
    let (script, file) = notify_recorder(tmp.path());
    let out = Command::new(BIN).args(["demo", "--notify"]).arg(&script).stdin(Stdio::null()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    // notify programs run in the background: the demo's end may come first; wait for what is checked below
    let wanted = ["peer_alive", "quorum_gained", "peer_dead", "fence_started", "fence_confirmed", "sequence_started", "sequence_done"];
    let takeover_done = |e: &Value| e["event"] == json!("sequence_done") && e["sequence"] == json!("forced") && e["reported_by"] == json!("mds2");
    wait_until("every event checked below is notified", Duration::from_secs(10), || {
        let all = notified(&file);
        wanted.iter().all(|w| all.iter().any(|e| e["event"] == json!(w))) && all.iter().any(takeover_done)
    });
    let all = notified(&file);
    let names: Vec<&str> = all.iter().filter_map(|e| e["event"].as_str()).collect();
    println!("notified, in order: {names:?}");
    for wanted in wanted {
        assert!(names.contains(&wanted), "{wanted} never notified: {names:?}");
    }
    let takeover = all
        .iter()
        .find(|e| takeover_done(e))
        .unwrap_or_else(|| panic!("no takeover_done (sequence_done forced) from mds2: {all:#?}"));
    assert!(takeover["message"].as_str().unwrap().contains("takeover done"), "{takeover}");
    let confirmed = all.iter().find(|e| e["event"] == json!("fence_confirmed")).unwrap();
    assert_eq!(confirmed["action"], json!("off"), "{confirmed}");
    let started = all.iter().find(|e| e["event"] == json!("fence_started")).unwrap();
    assert_eq!(started["reason"], json!("peer_dead"), "{started}");
    let now = std::time::SystemTime::now();
    for e in &all {
        for key in ["timestamp", "cluster", "reported_by", "severity", "message"] {
            assert!(e[key].as_str().is_some_and(|s| !s.is_empty()), "{key} missing: {e}");
        }
        assert_eq!(e["cluster"], json!("demo"));
        let ts = humantime::parse_rfc3339(e["timestamp"].as_str().unwrap()).unwrap_or_else(|err| panic!("{err}: {e}"));
        let age = now.duration_since(ts).unwrap_or_default();
        assert!(age < Duration::from_secs(600), "timestamp not the wall clock: {e}");
        // no Rust Debug names anywhere in a payload
        let text = e.to_string();
        for debug in ["\"Off\"", "\"On\"", "\"PeerDead\"", "\"Forced\"", "\"Acquire\"", "\"Release\"", "Replayed {", "Some("] {
            assert!(!text.contains(debug), "Debug text {debug} in {text}");
        }
        assert!(!["step_started", "step_done"].contains(&e["event"].as_str().unwrap()), "progress steps are not paged: {e}");
    }
}

/// A fence job left waiting on an operator (manual fencing) is dropped by itself when its victim comes back
/// in a new incarnation; `failoverd fence --cancel` ends one by hand; `failoverd history` keeps them all
/// across a restart; `status` shows what the operator must do, at a glance.
#[test]
fn stale_fence_jobs_end_and_history_is_kept() {
    let cluster = Cluster::new(&["n1", "n2"], "");
    let mut n1 = cluster.start("n1");
    let n2 = cluster.start("n2");
    wait_until("n1 and n2 see each other alive", Duration::from_secs(15), || n1.peer_alive("n2") && n2.peer_alive("n1"));

    // n1 dies: n2 (manual fencing) waits for an operator; status says so, with the command to run
    n1.kill();
    wait_until("n2 waits for an operator to fence n1", Duration::from_secs(15), || {
        n2.status()["fencing"].as_array().is_some_and(|f| f.iter().any(|j| j["victim"] == json!("n1") && j["waiting"] == json!("operator")))
    });
    let text = n2.status_text();
    println!("--- failoverd status (n2), n1 dead, manual fencing ---\n{text}");
    assert!(text.starts_with("cluster: testc"), "{text}");
    assert!(text.lines().any(|l| l.trim_start().starts_with("n2") && l.contains("this node")), "no row for the local node:\n{text}");
    assert!(text.contains("WAITING FOR AN OPERATOR") && text.contains("failoverd confirm-fenced n1"), "{text}");
    assert!(text.contains("n1 is DEAD"), "events as one human line each:\n{text}");
    let json = n2.status();
    assert!(humantime::parse_rfc3339(json["time"].as_str().unwrap()).is_ok(), "{json:#}");
    assert!(json["events"].as_array().unwrap().iter().all(|e| humantime::parse_rfc3339(e["time"].as_str().unwrap()).is_ok()));

    // an operator's fence request while one waits: refused, and says how to cancel
    let out = Command::new(BIN).args(["fence", "n1", "--action", "on", "--socket"]).arg(&n2.socket).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("fence --cancel n1"), "{}", String::from_utf8_lossy(&out.stderr));

    // n1 comes back in a new incarnation: the waiting job is dropped by itself
    let n1 = cluster.start("n1");
    wait_until("n2's job for n1 is dropped", Duration::from_secs(15), || n2.status()["fencing"].as_array().unwrap().is_empty());
    let cancelled = n2.events("fence_cancelled");
    assert!(cancelled.iter().any(|e| e["fields"]["detail"].as_str().unwrap().contains("new incarnation")), "{cancelled:?}");
    // and fencing it works again (no "already in progress" left behind)
    drop(n1);
    wait_until("n2 waits for an operator again", Duration::from_secs(15), || {
        n2.status()["fencing"].as_array().is_some_and(|f| f.iter().any(|j| j["waiting"] == json!("operator")))
    });
    let out = Command::new(BIN).args(["fence", "--cancel", "n1", "--socket"]).arg(&n2.socket).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("cancelled"));
    let s = n2.status();
    assert!(s["fencing"].as_array().unwrap().is_empty(), "{s:#}");
    assert_eq!(s["fence_cancelled"], json!(["n1"]));
    // a deliberate wait past dead_after: the cancelled fence may not start again
    std::thread::sleep(Duration::from_millis(3 * DEAD_AFTER_MS));
    assert!(n2.status()["fencing"].as_array().unwrap().is_empty(), "a cancelled fence started again");
    let out = Command::new(BIN).args(["fence", "--cancel", "n1", "--socket"]).arg(&n2.socket).output().unwrap();
    assert!(!out.status.success(), "nothing left to cancel");

    // the history, read from the state directory (no daemon needed), kept across a restart of n2
    let (config, _) = cluster.node_config("n2");
    let mut n2 = n2;
    let status = n2.terminate(Duration::from_secs(35));
    assert!(status.success());
    let _n2 = cluster.start("n2");
    let out = Command::new(BIN).args(["history", "--config"]).arg(&config).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    println!("--- failoverd history (n2) ---\n{text}");
    for wanted in ["peer_dead", "fence_needs_operator", "fence_cancelled"] {
        assert!(text.contains(wanted), "{wanted} missing from the history:\n{text}");
    }
    let out = Command::new(BIN).args(["history", "--json", "-n", "1", "--config"]).arg(&config).output().unwrap();
    let last: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(last["timestamp"].is_string() && last["message"].is_string(), "{last}");
}

/// `standby` of a node running an MGT and an MDT: the receiving node mounts the MDT only once the MGT runs
/// there and is verified (start_order), on every seed; the pools' imports may overlap. Read from the simulator's trace of the real engines.
#[test]
fn standby_keeps_start_order() {
    let scenario = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("simulations/standby-start-order.toml");
    for seed in 1..=12 {
        let out = Command::new(BIN).arg("simulate").arg(&scenario).args(["--seed", &seed.to_string(), "--trace"]).output().unwrap();
        let trace = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "seed {seed}:\n{trace}");
        let at = |needle: &str| {
            trace
                .lines()
                .position(|l| l.contains("mds2: event") && l.contains(needle))
                .unwrap_or_else(|| panic!("seed {seed}: no `{needle}` on mds2 in the trace"))
        };
        let mgt_verified = at(r#""event":"sequence_done","target":"MGT","sequence":"acquire""#);
        // Both pools are imported side by side; start_order holds at the mount.
        let mdt_mount = at(r#""event":"step_started","target":"lustre-MDT0000","sequence":"acquire","step":"mount""#);
        assert!(mgt_verified < mdt_mount, "seed {seed}: MDT0000 was mounted on mds2 before the MGT ran there");
    }
}

/// Every `failoverd ...` command the README shows runs as written: the subcommand exists, each `--option` it
/// uses is one `--help` lists, and every option `--help`'s usage line requires is given (the README once
/// said `failoverd migrate <TARGET> <NODE>` where the real form takes `--to`).
#[test]
fn readme_commands_match_their_help() {
    use std::collections::BTreeMap;
    let readme = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let mut snippets: Vec<String> = Vec::new();
    let mut in_code = false;
    for line in readme.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            let l = line.trim().trim_start_matches("$ ").trim_start_matches("sudo ");
            if l.starts_with("failoverd ") {
                snippets.push(l.split('#').next().unwrap().trim().trim_end_matches('\\').trim().to_string());
            }
            continue;
        }
        for (i, span) in line.split('`').enumerate() {
            if i % 2 == 1 && span.starts_with("failoverd ") {
                snippets.push(span.to_string());
            }
        }
    }
    let mut help: BTreeMap<String, String> = BTreeMap::new();
    let mut checked = 0;
    for snippet in &snippets {
        let words: Vec<&str> = snippet.split_whitespace().collect();
        let sub = words[1];
        if !sub.chars().all(|c| c.is_ascii_lowercase() || c == '-') || sub.starts_with('-') {
            continue;
        }
        let mut get = |path: Vec<&str>| -> String {
            help.entry(path.join(" "))
                .or_insert_with(|| {
                    let out = Command::new(BIN).arg("help").args(&path).output().unwrap();
                    assert!(out.status.success(), "README: `{snippet}`: `failoverd {}` is no subcommand", path.join(" "));
                    String::from_utf8_lossy(&out.stdout).to_string()
                })
                .clone()
        };
        let mut text = get(vec![sub]);
        // a nested subcommand (`sim-san --san DIR init ...`): its own help, plus the parent's global options
        if let Some(commands) = text.split("Commands:").nth(1).map(|c| c.split("\n\n").next().unwrap_or("").to_string()) {
            let names: Vec<&str> = commands.lines().filter_map(|l| l.split_whitespace().next()).collect();
            if let Some(nested) = words[2..].iter().find(|w| names.contains(w)) {
                text = format!("{}\n{text}", get(vec![sub, nested]));
            }
        }
        for w in &words[2..] {
            let opt = w.trim_start_matches(['[', '(']).split(['=', ']', ')', ',', '\\']).next().unwrap();
            if opt.starts_with("--") && opt.len() > 2 {
                assert!(text.contains(opt), "README: `{snippet}`: {opt} is not an option of `failoverd {sub}`:\n{text}");
            }
        }
        let usage = text.lines().find(|l| l.starts_with("Usage:")).unwrap_or("");
        let mut depth = 0;
        let mut required = Vec::new();
        for tok in usage.split_whitespace() {
            let opens = tok.matches('[').count() as i32;
            if depth == 0 && opens == 0 && tok.starts_with("--") {
                required.push(tok.to_string());
            }
            depth += opens - tok.matches(']').count() as i32;
        }
        // a bare `failoverd keygen` in prose names the command; a longer one is a command line
        if !snippet.contains("...") && words.len() > 2 {
            for r in required {
                assert!(snippet.contains(&r), "README: `{snippet}`: `failoverd {sub}` requires {r} ({usage})");
            }
        }
        checked += 1;
    }
    println!("{checked} README commands checked against --help");
    assert!(checked >= 25, "only {checked} commands found in the README");
}

/// `GET /metrics` of a daemon's `metrics_listen`.
fn scrape(port: u16) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text
}

/// Write `node`'s config copy with `metrics_listen` on a free port (node-local, so it may differ), and
/// `edit` applied; returns (config, socket, metrics port).
fn config_with_metrics(cluster: &Cluster, node: &str, edit: impl Fn(String) -> String) -> (std::path::PathBuf, std::path::PathBuf, u16) {
    let (config, socket) = cluster.instance_config(node);
    let port = free_tcp_port();
    let text = std::fs::read_to_string(&config).unwrap();
    let text = edit(text.replacen("[cluster]\n", &format!("[cluster]\nmetrics_listen = \"127.0.0.1:{port}\"\n"), 1));
    std::fs::write(&config, text).unwrap();
    (config, socket, port)
}

/// n2 runs with another dead_after than n1 (a timing, no target differs): before, nothing reported it, then
/// only "cluster-wide settings differ". Now both daemons name the key with both values, in status, `status
/// --json`, the notify payload and the metrics; and when n2 then dies, n1 does not fence it (manual fencing
/// here: it would otherwise ask the operator) but raises fence_blocked naming the commands.
#[test]
fn a_timing_mismatch_is_reported_with_both_values() {
    let tmp = tempfile::tempdir().unwrap();
    let (script, file) = notify_recorder(tmp.path());
    let cluster = Cluster::new(&["n1", "n2"], &format!("notify = \"{}\"", script.display()));
    let (c1, s1, m1) = config_with_metrics(&cluster, "n1", |t| t);
    let (c2, s2, m2) = config_with_metrics(&cluster, "n2", |t| {
        let changed = t.replacen(&format!("dead_after = \"{DEAD_AFTER_MS}ms\""), "dead_after = \"700ms\"", 1);
        assert_ne!(t, changed);
        changed
    });
    let n1 = cluster.spawn("n1", "n1", &c1, &s1);
    let mut n2 = cluster.spawn("n2", "n2", &c2, &s2);
    n1.wait_for_socket();
    n2.wait_for_socket();
    let dead_after = |here: &str, there: &str| json!({"key": "cluster.dead_after", "here": here, "there": there});
    for (d, peer, here, there) in [(&n1, "n2", "500ms", "700ms"), (&n2, "n1", "700ms", "500ms")] {
        wait_until(&format!("{} names the differing key", d.name), Duration::from_secs(15), || {
            d.peer(peer)["config_mismatch"]["keys"].as_array().is_some_and(|k| k.contains(&dead_after(here, there)))
        });
        let m = d.peer(peer)["config_mismatch"].clone();
        assert_eq!(m["keys"], json!([dead_after(here, there)]), "only dead_after differs: {m:#}");
        assert_eq!((m["keys_known"].clone(), m["blocks_fencing"].clone()), (json!(true), json!(true)), "{m:#}");
        let human = d.status_text();
        println!("{human}");
        assert!(human.contains(&format!("CONFIG MISMATCH with {peer} (no automatic fencing of {peer} nor takeover from it)")), "{human}");
        assert!(human.contains(&format!("cluster.dead_after: {here} here, {there} on {peer}")), "{human}");
        assert!(human.contains("failoverd check-config A B"), "{human}");
    }
    // the metrics name the key
    for (port, peer) in [(m1, "n2"), (m2, "n1")] {
        let text = scrape(port);
        let series = format!("failoverd_config_mismatch{{peer=\"{peer}\",key=\"cluster.dead_after\"}} 1");
        assert!(text.contains(&series), "{series} missing:\n{text}");
        assert!(text.contains(&format!("failoverd_peer_config_mismatch{{node=\"{peer}\"}} 1")), "{text}");
    }
    // the notify program got one alert from each side, with the key and both values
    wait_until("both alerts notified", Duration::from_secs(5), || {
        notified(&file).iter().filter(|e| e["event"] == json!("config_mismatch")).count() >= 2
    });
    let alerts: Vec<Value> = notified(&file).into_iter().filter(|e| e["event"] == json!("config_mismatch")).collect();
    assert_eq!(alerts.len(), 2, "one alert per side, not one per heartbeat: {alerts:#?}");
    let from_n1 = alerts.iter().find(|e| e["reported_by"] == json!("n1")).unwrap();
    assert_eq!(from_n1["severity"], json!("alert"));
    assert_eq!(from_n1["node"], json!("n2"));
    assert_eq!(from_n1["keys"], json!([dead_after("500ms", "700ms")]), "{from_n1}");
    assert!(from_n1["message"].as_str().unwrap().contains("cluster.dead_after: 500ms here, 700ms on n2"), "{from_n1}");
    let from_n2 = alerts.iter().find(|e| e["reported_by"] == json!("n2")).unwrap();
    assert!(from_n2["message"].as_str().unwrap().contains("cluster.dead_after: 700ms here, 500ms on n1"), "{from_n2}");
    // n2 dies: n1 declares it dead, keeps the mismatch, and does not fence it
    n2.kill();
    wait_until("n1 blocks the fence of n2", Duration::from_secs(15), || !n1.events("fence_blocked").is_empty());
    let status = n1.status();
    let peer = status["peers"].as_array().unwrap().iter().find(|p| p["node"] == json!("n2")).unwrap().clone();
    assert_eq!(peer["alive"], json!(false));
    assert!(peer["config_mismatch"]["blocks_fencing"] == json!(true), "kept while n2 is silent: {peer:#}");
    assert!(n1.events("fence_needs_operator").is_empty() && n1.events("fence_started").is_empty(), "no fence of n2");
    let human = n1.status_text();
    println!("{human}");
    assert!(human.contains("n2: NOT FENCED AUTOMATICALLY"), "{human}");
    wait_until("fence_blocked notified", Duration::from_secs(5), || notified(&file).iter().any(|e| e["event"] == json!("fence_blocked")));
    let blocked = notified(&file).into_iter().find(|e| e["event"] == json!("fence_blocked")).unwrap();
    let text = blocked["message"].as_str().unwrap();
    for needle in ["cluster.dead_after: 500ms here, 700ms on n2", "failoverd check-config A B", "failoverd confirm-fenced n2"] {
        assert!(text.contains(needle), "{needle} not in {text}");
    }
    // both files side by side name the key and both values, through the same comparison
    let out = Command::new(BIN).args(["check-config", "--no-key-check"]).arg(&c1).arg(&c2).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains(&format!("differs: cluster.dead_after: {} = 500ms, {} = 700ms", c1.display(), c2.display())), "{err}");
}

/// An idle pair is quiet at INFO: after start-up, a handful of lines at most in 10 s (issue 12: 72 INFO lines a
/// minute at idle, mostly the health checks' command lines). n1 runs the MGT on the simulated SAN (`sim-san`
/// wrappers first on its PATH, as the lab does) with a health check every second, so ten checks fall in the
/// window; each daemon logs at INFO (RUST_LOG=info) as a packaged one does.
#[test]
fn an_idle_pair_is_quiet_at_info() {
    let cluster = Cluster::new(&["n1", "n2"], "monitor_interval = \"1s\"");
    let mut text = std::fs::read_to_string(&cluster.config).unwrap();
    text.push_str(
        "[[target]]\nname = \"MGT\"\nkind = \"zfs\"\npool = \"mgspool\"\ndataset = \"mgspool/mgt\"\n\
         mountpoint = \"/lustre/mgt\"\nnodes = [\"n1\", \"n2\"]\nlctl_device = \"MGS\"\n",
    );
    std::fs::write(&cluster.config, text).unwrap();
    let san = cluster.dir.path().join("san");
    let sim_san = |args: &[&str]| {
        let out = Command::new(BIN).arg("sim-san").arg("--san").arg(&san).args(args).output().unwrap();
        assert!(out.status.success(), "sim-san {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    sim_san(&["init", "--config", cluster.config.to_str().unwrap(), "--owner", "MGT=n1", "--mmp-wait", "1s"]);
    let start = |node: &str| {
        let bin = cluster.dir.path().join(format!("bin-{node}"));
        sim_san(&["wrappers", bin.to_str().unwrap(), "--host", node]);
        let (config, socket) = cluster.node_config(node);
        let log = cluster.dir.path().join(node).join("log.jsonl");
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
        let d = Daemon::run(node, &config, &socket, &log, &[("PATH", &path)]);
        d.wait_for_socket();
        d
    };
    let n1 = start("n1");
    let n2 = start("n2");
    wait_until("both see each other and n1 runs the MGT", Duration::from_secs(30), || {
        n1.peer_alive("n2")
            && n2.peer_alive("n1")
            && n1.status()["targets"].as_array().is_some_and(|t| t.iter().any(|t| t["target"] == json!("MGT") && t["local"] == json!("running")))
    });
    // a deliberate settling time: the start's last log lines are written before the idle window opens
    std::thread::sleep(Duration::from_secs(2));
    // the health checks run in the window (at DEBUG): the SAN's history has them
    let checks = || {
        let out = Command::new(BIN).arg("sim-san").arg("--san").arg(&san).arg("history").output().unwrap();
        let history = String::from_utf8_lossy(&out.stdout).to_string();
        history.lines().filter(|l| l.contains("n1") && l.contains("lctl") && l.contains("health_check")).count()
    };
    let checks_before = checks();
    let before: Vec<usize> = [&n1, &n2].iter().map(|d| d.log_lines().len()).collect();
    // the idle window itself: time deliberately let pass, then what happened in it is counted
    std::thread::sleep(Duration::from_secs(10));
    let checks = checks() - checks_before;
    println!("n1 ran {checks} health checks (lctl get_param health_check) in the 10 s window");
    assert!(checks >= 5, "the MGT's health checks did not run about every second: {checks}");
    for (d, skip) in [&n1, &n2].into_iter().zip(before) {
        let lines = d.log_lines();
        let idle: Vec<&Value> = lines.iter().skip(skip).filter(|l| l["level"] != json!("DEBUG") && l["level"] != json!("TRACE")).collect();
        println!("{}: {} lines at INFO or above in 10 s of idling ({} in all since start)", d.name, idle.len(), lines.len());
        assert!(idle.len() <= 3, "{} is not quiet at idle: {idle:#?}", d.name);
    }
}
