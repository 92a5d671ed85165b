//! The observability kit shipped in the package (contrib/): the Prometheus alert rules and the Grafana
//! dashboard, checked against what a real daemon exports.
//!
//! - `promtool check rules` on the rules and `promtool test rules` on their unit tests
//!   (contrib/prometheus/failoverd-alerts.test.yml).
//! - A real two-node pair (`failoverd run`, real UDP heartbeats, simulated storage reached through the
//!   `sim-san` wrapper commands) starts a ZFS target, and its `/metrics` is scraped: every series named by the
//!   rules, by the promtool tests' input series (with their labels) and by the dashboard's queries must be one
//!   the daemon exports. Renaming a metric breaks this test.
//! - The dashboard JSON: its schema (panels, grid positions, targets, datasource), and every query parsed by
//!   promtool (as a recording rule).
//!
//! promtool comes from Debian's `prometheus` package: without it these tests fail under CI=true and are skipped
//! with a warning otherwise. Every daemon is killed when the test ends; every file lives in a temp dir.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{free_tcp_port, free_udp_port, Daemon, BIN};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const KEY: &str = "5a1c2a9be07d3385a6f0c1d2e3f405162738495a6b7c8d9e0f1a2b3c4d5e6f70";

fn contrib(rel: &str) -> PathBuf {
    Path::new(ROOT).join("contrib").join(rel)
}

fn is_ci() -> bool {
    matches!(std::env::var("CI").as_deref(), Ok("true") | Ok("1"))
}

/// promtool, or: under CI a failure, else a warning and None.
fn promtool() -> Option<&'static str> {
    if Command::new("promtool").arg("--version").output().map(|o| o.status.success()).unwrap_or(false) {
        return Some("promtool");
    }
    assert!(!is_ci(), "promtool is missing under CI=true: install Debian's prometheus package (scripts/test does)");
    eprintln!("warning: promtool is missing (apt package prometheus): promtool checks skipped");
    None
}

fn promtool_ok(args: &[&str], dir: &Path) -> String {
    let out = Command::new("promtool").args(args).current_dir(dir).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

#[test]
fn alert_rules_pass_promtool_check_and_their_unit_tests() {
    let Some(_) = promtool() else { return };
    let dir = contrib("prometheus");
    let check = promtool_ok(&["check", "rules", "failoverd-alerts.yml"], &dir);
    assert!(check.contains("SUCCESS: 11 rules found"), "{check}");
    let test = promtool_ok(&["test", "rules", "failoverd-alerts.test.yml"], &dir);
    assert!(test.contains("SUCCESS"), "{test}");

    // The unit tests can fail: a rule that fires on the wrong value is caught.
    let tmp = tempfile::tempdir().unwrap();
    let rules = std::fs::read_to_string(dir.join("failoverd-alerts.yml")).unwrap();
    std::fs::write(tmp.path().join("failoverd-alerts.yml"), rules.replace("failoverd_target_blocked == 1", "failoverd_target_blocked == 0")).unwrap();
    std::fs::copy(dir.join("failoverd-alerts.test.yml"), tmp.path().join("failoverd-alerts.test.yml")).unwrap();
    let out = Command::new("promtool").args(["test", "rules", "failoverd-alerts.test.yml"]).current_dir(tmp.path()).output().unwrap();
    assert!(!out.status.success(), "a broken rule passed its unit tests");
}

// ----- the dashboard --------------------------------------------------------------------------------------

fn dashboard() -> Value {
    let text = std::fs::read_to_string(contrib("grafana/failoverd-dashboard.json")).unwrap();
    serde_json::from_str(&text).expect("the dashboard is valid JSON")
}

/// Every (panel title, refId, expr) of the dashboard.
fn dashboard_queries(d: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push((
                p["title"].as_str().unwrap_or("").to_string(),
                t["refId"].as_str().unwrap_or("").to_string(),
                t["expr"].as_str().unwrap_or("").to_string(),
            ));
        }
    }
    out
}

#[test]
fn the_dashboard_has_a_valid_shape() {
    let d = dashboard();
    assert!(d["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(d["uid"].as_str().is_some_and(|u| !u.is_empty() && u.len() <= 40));
    assert!(d["schemaVersion"].as_u64().is_some_and(|v| v >= 30));
    let vars = d["templating"]["list"].as_array().expect("templating.list");
    let ds = vars.iter().find(|v| v["name"] == "datasource").expect("a datasource variable");
    assert_eq!((ds["type"].as_str(), ds["query"].as_str()), (Some("datasource"), Some("prometheus")));
    for v in vars.iter().filter(|v| v["type"] == "query") {
        assert_eq!(v["datasource"]["uid"], "${datasource}", "{v}");
    }

    let panels = d["panels"].as_array().expect("panels");
    assert!(panels.len() >= 10);
    let mut ids = BTreeSet::new();
    let mut cells: BTreeSet<(u64, u64)> = BTreeSet::new();
    let kinds = ["row", "stat", "timeseries", "state-timeline", "table", "bargauge", "gauge"];
    for p in panels {
        let title = p["title"].as_str().unwrap_or_default();
        assert!(!title.is_empty(), "a panel without a title: {p}");
        assert!(ids.insert(p["id"].as_u64().expect("numeric id")), "{title}: duplicate id");
        let kind = p["type"].as_str().unwrap_or_default();
        assert!(kinds.contains(&kind), "{title}: unknown panel type {kind}");
        let g = &p["gridPos"];
        let [x, y, w, h] = ["x", "y", "w", "h"].map(|k| g[k].as_u64().unwrap_or_else(|| panic!("{title}: gridPos.{k}")));
        assert!(w > 0 && h > 0 && x + w <= 24, "{title}: gridPos {g}");
        for cx in x..x + w {
            for cy in y..y + h {
                assert!(cells.insert((cx, cy)), "{title} overlaps another panel at ({cx}, {cy})");
            }
        }
        if kind == "row" {
            continue;
        }
        assert_eq!(p["datasource"]["type"], "prometheus", "{title}");
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{title}");
        let targets = p["targets"].as_array().unwrap_or_else(|| panic!("{title}: no targets"));
        assert!(!targets.is_empty(), "{title}: no targets");
        let mut refs = BTreeSet::new();
        for t in targets {
            assert!(refs.insert(t["refId"].as_str().expect("refId")), "{title}: duplicate refId");
            assert!(t["expr"].as_str().is_some_and(|e| e.contains("failoverd_")), "{title}: {t}");
            assert_eq!(t["datasource"]["uid"], "${datasource}", "{title}");
        }
    }

    // Every query is valid PromQL: promtool parses each as a recording rule (Grafana's variables replaced).
    let Some(_) = promtool() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, (_, _, expr)) in dashboard_queries(&d).iter().enumerate() {
        let expr = expr.replace("$__rate_interval", "1m").replace("$instance", ".*").replace("$cluster", ".*");
        rules.push_str(&format!("      - record: dashboard:query_{i}\n        expr: {}\n", serde_json::to_string(&expr).unwrap()));
    }
    std::fs::write(tmp.path().join("dashboard.yml"), rules).unwrap();
    promtool_ok(&["check", "rules", "dashboard.yml"], tmp.path());
}

// ----- against a real daemon ------------------------------------------------------------------------------

fn scrape(port: u16) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    text.split_once("\r\n\r\n").map(|(_, body)| body.to_string())
}

/// Sample names of an exposition, each with the label names its samples carry.
fn exported(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let name_end = line.find(['{', ' ']).unwrap();
        let labels = out.entry(line[..name_end].to_string()).or_default();
        if line[name_end..].starts_with('{') {
            let inner = &line[name_end + 1..line.rfind('}').unwrap()];
            for pair in inner.split("\",") {
                if let Some((k, _)) = pair.split_once("=\"") {
                    labels.insert(k.trim_start_matches(',').to_string());
                }
            }
        }
    }
    out
}

/// Every metric name (`failoverd_...`) in a text.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("failoverd_") {
        let start = i + at;
        let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
        let mut end = start + "failoverd_".len();
        while end < bytes.len() && ident(bytes[end]) {
            end += 1;
        }
        if start == 0 || !ident(bytes[start - 1]) {
            names.insert(text[start..end].to_string());
        }
        i = end;
    }
    names
}

/// The input series of the promtool tests: (name, label names other than instance and job).
fn test_series() -> Vec<(String, BTreeSet<String>)> {
    let text = std::fs::read_to_string(contrib("prometheus/failoverd-alerts.test.yml")).unwrap();
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("- series: "))
        .map(|s| {
            let s = s.trim_matches(|c| c == '\'' || c == '"');
            let (name, labels) = s.split_once('{').unwrap_or((s, "}"));
            let keys = labels
                .trim_end_matches('}')
                .split(',')
                .filter_map(|p| p.split_once('=').map(|(k, _)| k.to_string()))
                .filter(|k| k != "instance" && k != "job")
                .collect();
            (name.to_string(), keys)
        })
        .collect()
}

/// A pair n1, n2 with one ZFS target (MGT, preferring n1) on a simulated SAN; n1 serves metrics.
fn start_pair(dir: &Path, metrics_port: u16) -> (Daemon, Daemon) {
    let port = || free_udp_port(Ipv4Addr::LOCALHOST);
    let ports = [("n1", [port(), port()]), ("n2", [port(), port()])];
    std::fs::write(dir.join("cluster.key"), format!("{KEY}\n")).unwrap();
    let mut nodes = String::new();
    for (i, (name, p)) in ports.iter().enumerate() {
        nodes.push_str(&format!(
            "[[node]]\nname = \"{name}\"\naddresses = [\"127.0.0.1:{}\", \"127.0.0.1:{}\"]\nhostid = \"{:08x}\"\n\
             fence_priority = {}\nfencing = \"manual\"\n\n",
            p[0],
            p[1],
            0x5d00_0001 + i as u32,
            10 - i
        ));
    }
    let target = "[[target]]\nname = \"MGT\"\nkind = \"zfs\"\npool = \"mgspool\"\ndataset = \"mgspool/mgt\"\n\
                  mountpoint = \"/lustre/mgt\"\nnodes = [\"n1\", \"n2\"]\nlctl_device = \"MGS\"\n";
    let san = dir.join("san");
    let mut daemons = Vec::new();
    for (me, _) in &ports {
        let nd = dir.join(me);
        std::fs::create_dir_all(&nd).unwrap();
        let metrics = if *me == "n1" { format!("metrics_listen = \"127.0.0.1:{metrics_port}\"\n") } else { String::new() };
        let toml = format!(
            "[cluster]\nname = \"obs\"\nkey_file = \"{}\"\nlinks = [\"ring0\", \"ring1\"]\n\
             heartbeat_interval = \"100ms\"\ndead_after = \"500ms\"\nstall_threshold = \"400ms\"\nfence_delay = \"1s\"\n\
             state_dir = \"{}\"\ncontrol_socket = \"{}\"\n{metrics}\n{nodes}{target}",
            dir.join("cluster.key").display(),
            nd.join("state").display(),
            nd.join("control.sock").display()
        );
        let config = nd.join("failoverd.toml");
        std::fs::write(&config, toml).unwrap();
        if *me == "n1" {
            let out = Command::new(BIN)
                .args(["sim-san", "--san"])
                .arg(&san)
                .args(["init", "--config"])
                .arg(&config)
                .args(["--mmp-wait", "1s"])
                .output()
                .unwrap();
            assert!(out.status.success(), "sim-san init: {}", String::from_utf8_lossy(&out.stderr));
        }
        let bin = nd.join("bin");
        let out = Command::new(BIN).args(["sim-san", "--san"]).arg(&san).arg("wrappers").arg(&bin).args(["--host", me]).output().unwrap();
        assert!(out.status.success(), "sim-san wrappers: {}", String::from_utf8_lossy(&out.stderr));
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
        daemons.push(Daemon::run(me, &config, &nd.join("control.sock"), &nd.join("log.jsonl"), &[("PATH", &path)]));
    }
    let n2 = daemons.pop().unwrap();
    (daemons.pop().unwrap(), n2)
}

#[test]
fn rules_tests_and_dashboard_name_only_series_a_real_daemon_exports() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_tcp_port();
    let (n1, _n2) = start_pair(dir.path(), port);

    // Wait until n1 runs MGT (a controlled start: steps and a sequence duration observed).
    let t = Instant::now();
    let text = loop {
        if let Some(text) = scrape(port) {
            if text.contains("failoverd_target_owned{target=\"MGT\"} 1") && text.contains("failoverd_migration_duration_seconds_count{") {
                break text;
            }
        }
        assert!(
            t.elapsed() < Duration::from_secs(90),
            "n1 did not start MGT within 90 s; its log:\n{}",
            std::fs::read_to_string(&n1.log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    let series = exported(&text);
    for expected in ["failoverd_peer_alive", "failoverd_target_blocked", "failoverd_peer_config_mismatch", "failoverd_fence_outcomes_total"] {
        assert!(series.contains_key(expected), "{expected} not exported:\n{text}");
    }

    let mut unknown = Vec::new();
    let rules = std::fs::read_to_string(contrib("prometheus/failoverd-alerts.yml")).unwrap();
    let rule_names = metric_names(&rules);
    assert!(rule_names.len() >= 8, "{rule_names:?}");
    for name in &rule_names {
        if !series.contains_key(name) {
            unknown.push(format!("alert rules: {name}"));
        }
    }
    let inputs = test_series();
    assert!(inputs.len() >= 15, "{inputs:?}");
    for (name, labels) in &inputs {
        match series.get(name) {
            None => unknown.push(format!("promtool test input: {name}")),
            Some(real) if !labels.is_subset(real) => {
                unknown.push(format!("promtool test input: {name} with labels {labels:?}; the daemon's carry {real:?}"))
            }
            Some(_) => {}
        }
    }
    // every series an alert rule uses is exercised by the unit tests
    for name in &rule_names {
        assert!(inputs.iter().any(|(n, _)| n == name), "no promtool test feeds {name}");
    }
    for (panel, refid, expr) in dashboard_queries(&dashboard()) {
        for name in metric_names(&expr) {
            if !series.contains_key(&name) {
                unknown.push(format!("dashboard panel {panel:?} {refid}: {name}"));
            }
        }
    }
    assert!(unknown.is_empty(), "series the daemon does not export:\n{}\n\nits exposition:\n{text}", unknown.join("\n"));
}
