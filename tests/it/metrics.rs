//! Prometheus metrics of a real `failoverd run` daemon with `cluster.metrics_listen` on 127.0.0.1, scraped
//! over TCP: the peer and link series, a parse of the whole text format, the HTTP edge cases, and the series
//! after the peer is killed.
//!
//! Every daemon is killed when the test ends, passed or not; every file lives in the test's temp dir.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::Command;
use std::time::Duration;

use crate::support::cluster::{Cluster, Spec};
use crate::support::{free_tcp_port, wait_until, Daemon, BIN};


/// Two nodes, n1 serving metrics on `metrics_port` (the cluster holds their files: keep it while they run).
fn start_pair(metrics_port: u16) -> (Cluster, Daemon, Daemon) {
    start_pair_with(metrics_port, "")
}

/// [`start_pair`] with `extra` lines in both nodes' `[cluster]`.
fn start_pair_with(metrics_port: u16, extra: &str) -> (Cluster, Daemon, Daemon) {
    let cluster = Cluster::with(&["n1", "n2"], &[], Spec { name: "metricsc", extra_cluster: extra, ..Spec::default() });
    let (config, socket) = cluster.node_config_with("n1", &format!("metrics_listen = \"127.0.0.1:{metrics_port}\""));
    let n1 = cluster.spawn("n1", "n1", &config, &socket);
    n1.wait_for_socket();
    let n2 = cluster.start("n2");
    (cluster, n1, n2)
}

/// Send `request` raw, read the whole response: (status line, headers, body).
fn http(port: u16, request: &[u8]) -> (String, BTreeMap<String, String>, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    // like curl after its request: nothing more to send (this is how a half-sent head ends, too)
    s.shutdown(Shutdown::Write).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or("").to_string();
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .collect();
    (status, headers, body.to_string())
}

fn scrape(port: u16) -> String {
    let (status, headers, body) = http(port, b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nAccept: text/plain\r\n\r\n");
    assert_eq!(status, "HTTP/1.0 200 OK");
    assert_eq!(headers["content-type"], "text/plain; version=0.0.4; charset=utf-8");
    assert_eq!(headers["content-length"].parse::<usize>().unwrap(), body.len());
    body
}

/// One sample: metric name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

/// Parse the Prometheus text format (0.0.4) strictly enough to catch a broken exposition: every sample
/// belongs to a family declared by `# TYPE` (histograms through `_bucket`/`_sum`/`_count`, counters through
/// `_total`), label values are quoted, values are numbers.
fn parse_exposition(text: &str) -> Vec<Sample> {
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (kind, name, what) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap_or(""));
            assert!(name.starts_with("failoverd_"), "{line}");
            match kind {
                "HELP" => assert!(!what.is_empty(), "{line}"),
                "TYPE" => {
                    assert!(["gauge", "counter", "histogram"].contains(&what), "{line}");
                    types.insert(name.to_string(), what.to_string());
                }
                _ => panic!("unexpected comment {line:?}"),
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value: {line:?}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').unwrap_or_else(|| panic!("unclosed labels: {line:?}"));
                let labels = body
                    .split("\",")
                    .map(|kv| {
                        let (k, v) = kv.split_once("=\"").unwrap_or_else(|| panic!("bad label in {line:?}"));
                        (k.to_string(), v.trim_end_matches('"').to_string())
                    })
                    .collect();
                (name.to_string(), labels)
            }
            None => (series.to_string(), BTreeMap::new()),
        };
        let family_declared = types.get(&name).is_some_and(|t| t != "histogram")
            || ["_bucket", "_sum", "_count"]
                .iter()
                .any(|s| name.strip_suffix(s).is_some_and(|f| types.get(f).map(String::as_str) == Some("histogram")));
        assert!(family_declared, "sample of an undeclared family: {line:?}");
        samples.push((name, labels, value));
    }
    samples
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|(n, l, _)| n == name && l.len() == labels.len() && labels.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v)))
        .map(|(_, _, v)| *v)
}

#[test]
fn a_daemon_serves_its_metrics_over_http() {
    let port = free_tcp_port();
    let (_cluster, n1, mut n2) = start_pair(port);
    wait_until("n1's metrics show n2 alive on both links", Duration::from_secs(20), || {
        let s = parse_exposition(&scrape(port));
        value(&s, "failoverd_peer_alive", &[("node", "n2")]) == Some(1.0)
            && value(&s, "failoverd_peer_link_up", &[("node", "n2"), ("link", "ring0")]) == Some(1.0)
            && value(&s, "failoverd_peer_link_up", &[("node", "n2"), ("link", "ring1")]) == Some(1.0)
            && value(&s, "failoverd_quorate", &[]) == Some(1.0)
    });
    let body = scrape(port);
    println!("--- GET /metrics (n1) ---\n{body}");
    let s = parse_exposition(&body);
    assert_eq!(value(&s, "failoverd_info", &[("node", "n1"), ("cluster", "metricsc"), ("version", env!("CARGO_PKG_VERSION"))]), Some(1.0));
    for link in ["ring0", "ring1"] {
        let age = value(&s, "failoverd_peer_last_heard_seconds", &[("node", "n2"), ("link", link)]).expect("last heard");
        assert!((0.0..0.5).contains(&age), "{link}: heard {age}s ago, yet up");
    }
    assert!(value(&s, "failoverd_datagrams_received_total", &[]).unwrap() > 0.0);
    assert_eq!(value(&s, "failoverd_datagrams_rejected_total", &[("reason", "bad_mac")]), Some(0.0));
    assert_eq!(value(&s, "failoverd_maintenance", &[]), Some(0.0));
    assert_eq!(value(&s, "failoverd_quorum_votes", &[]), Some(2.0));
    assert_eq!(value(&s, "failoverd_events_total", &[("event", "peer_alive")]), Some(1.0));

    // HEAD: the headers alone
    let (status, headers, rest) = http(port, b"HEAD /metrics HTTP/1.0\r\n\r\n");
    assert_eq!(status, "HTTP/1.0 200 OK");
    assert!(headers["content-length"].parse::<usize>().unwrap() > 0);
    assert_eq!(rest, "");
    // anything else
    assert_eq!(http(port, b"GET / HTTP/1.1\r\n\r\n").0, "HTTP/1.0 404 Not Found");
    let (status, headers, _) = http(port, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert_eq!((status.as_str(), headers["allow"].as_str()), ("HTTP/1.0 405 Method Not Allowed", "GET, HEAD"));
    assert_eq!(http(port, b"hello\r\n\r\n").0, "HTTP/1.0 400 Bad Request");
    let huge = format!("GET /metrics HTTP/1.1\r\nX-Filler: {}\r\n\r\n", "x".repeat(20_000));
    assert_eq!(http(port, huge.as_bytes()).0, "HTTP/1.0 400 Bad Request");
    // a client that sends half a head and closes gets a 400, and the server goes on
    assert_eq!(http(port, b"GET /metr").0, "HTTP/1.0 400 Bad Request");
    scrape(port);

    // Kill n2: n1's series follow.
    n2.kill();
    wait_until("n1's metrics show n2 dead", Duration::from_secs(20), || {
        let s = parse_exposition(&scrape(port));
        value(&s, "failoverd_peer_alive", &[("node", "n2")]) == Some(0.0)
    });
    let s = parse_exposition(&scrape(port));
    assert_eq!(value(&s, "failoverd_peer_link_up", &[("node", "n2"), ("link", "ring0")]), Some(0.0));
    assert!(value(&s, "failoverd_peer_last_heard_seconds", &[("node", "n2"), ("link", "ring0")]).unwrap() >= 0.5);
    assert_eq!(value(&s, "failoverd_events_total", &[("event", "peer_dead")]), Some(1.0));
    assert!(n1.log_text().contains("serving Prometheus metrics at /metrics"), "{}", n1.log_text());
}

/// With `disk_heartbeat` on a shared file: both daemons write their slots (the file shows both), n1's metrics
/// show its writes ok, their latency and n2's slot advancing; `failoverd status` shows the channel; after n2
/// is killed its slot age grows past dead_after while n1's writes stay ok.
#[test]
fn disk_heartbeat_series_and_status_of_a_real_pair() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("hb.img");
    File::create(&img).unwrap().set_len(1 << 20).unwrap();
    let port = free_tcp_port();
    let (cluster, n1, mut n2) = start_pair_with(port, &format!("disk_heartbeat = \"{}\"", img.display()));
    let age = |text: &str| value(&parse_exposition(text), "failoverd_peer_disk_slot_age_seconds", &[("node", "n2")]);
    let mut text = String::new();
    wait_until("n1 exports its disk heartbeat writes ok and n2's slot advancing", Duration::from_secs(20), || {
        text = scrape(port);
        text.contains("failoverd_disk_heartbeat_write_ok 1\n") && age(&text).is_some_and(|a| a < 0.5)
    });
    let samples = parse_exposition(&text);
    assert!(value(&samples, "failoverd_disk_heartbeat_rounds_total", &[("result", "ok")]).unwrap() >= 1.0, "{text}");
    assert_eq!(value(&samples, "failoverd_disk_heartbeat_rounds_total", &[("result", "failed")]), Some(0.0), "{text}");
    assert!(value(&samples, "failoverd_disk_heartbeat_write_seconds_count", &[]).unwrap() >= 1.0, "{text}");
    assert_eq!(value(&samples, "failoverd_peer_disk_slot_valid", &[("node", "n2")]), Some(1.0), "{text}");
    let raw = std::fs::read(&img).unwrap();
    assert_eq!(&raw[..7], b"FODDISK", "n1's slot 0");
    assert_eq!(&raw[4096..4096 + 7], b"FODDISK", "n2's slot 1");

    let out = Command::new(BIN).args(["status", "--socket"]).arg(cluster.dir.path().join("n1/control.sock")).output().unwrap();
    let status = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(status.contains(&format!("disk heartbeat {}: writes ok (last ", img.display())), "{status}");
    assert!(status.lines().any(|l| l.trim_start().starts_with("n2  slot advanced ")), "{status}");

    if let Some(mut c) = n2.child.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
    wait_until("n2's slot age to pass dead_after (500 ms) on n1", Duration::from_secs(10), || {
        text = scrape(port);
        age(&text).is_some_and(|a| a > 0.8)
    });
    assert!(text.contains("failoverd_disk_heartbeat_write_ok 1\n"), "{text}");
    let log = n1.log_text();
    assert!(log.contains("\"event\":\"peer_disk_silent\"") || log.contains("peer_disk_silent"), "{log}");
}
