//! The shipped example configurations, and `failoverd check-config` / `failoverd keygen` as an operator runs them.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use failoverd::config::{load_key, Config, FenceDeviceKind, FencingMode, KeyCheck, TargetKind};

use crate::support::BIN;

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config").join(name)
}

/// A copy of `file` in `dir` whose key_file names a freshly made 64-character key in `dir`.
fn with_key(file: &Path, dir: &Path) -> PathBuf {
    let key = dir.join("cluster.key");
    std::fs::write(&key, format!("{}\n", "5a".repeat(32))).unwrap();
    let mut table: toml::Table = std::fs::read_to_string(file).unwrap().parse().unwrap();
    let cluster = table.get_mut("cluster").and_then(|c| c.as_table_mut()).unwrap();
    cluster.insert("key_file".into(), toml::Value::String(key.display().to_string()));
    let out = dir.join(file.file_name().unwrap());
    std::fs::write(&out, toml::to_string(&table).unwrap()).unwrap();
    out
}

/// [`with_key`], and the fence devices' secret files (passwords, communities, agent secrets) in `dir` too:
/// check-config checks that they exist and can be read.
fn with_secrets(file: &Path, dir: &Path) -> PathBuf {
    let out = with_key(file, dir);
    let mut table: toml::Table = std::fs::read_to_string(&out).unwrap().parse().unwrap();
    let local = |p: &str| {
        let local = dir.join(Path::new(p).file_name().unwrap());
        std::fs::write(&local, "secret\n").unwrap();
        toml::Value::String(local.display().to_string())
    };
    for device in table.get_mut("fence_device").and_then(|d| d.as_array_mut()).into_iter().flatten() {
        let device = device.as_table_mut().unwrap();
        for k in ["password_file", "community_file"] {
            if let Some(p) = device.get(k).and_then(|v| v.as_str()).map(str::to_string) {
                device.insert(k.into(), local(&p));
            }
        }
        if let Some(opts) = device.get_mut("secret_options").and_then(|o| o.as_table_mut()) {
            for (_, v) in opts.iter_mut() {
                if let Some(p) = v.as_str().map(str::to_string) {
                    *v = local(&p);
                }
            }
        }
    }
    std::fs::write(&out, toml::to_string(&table).unwrap()).unwrap();
    out
}

/// Run the binary; its stdout and stderr together.
fn run(args: &[&str]) -> (Output, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out, text)
}

#[test]
fn every_example_is_valid_and_warning_free() {
    let files = examples();
    assert!(files.len() >= 3, "{files:?}");
    let dir = tempfile::tempdir().unwrap();
    for file in files {
        let config = Config::load(&with_key(&file, dir.path())).unwrap_or_else(|e| panic!("{}:\n{e}", file.display()));
        assert_eq!(config.warnings(), vec![], "{}", file.display());
        let text = std::fs::read_to_string(&file).unwrap();
        assert_eq!(Config::from_toml_str(&text).unwrap().digest(), config.digest(), "the key path is node-local");
    }
}

#[test]
fn two_node_mds_example() {
    let c = Config::load_with(&example("two-node-mds.toml"), KeyCheck::Skip).unwrap();
    let names: Vec<&str> = c.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["mds1", "mds2"]);
    assert_eq!(c.link_count(), 2);
    let mgt = c.target("MGT").unwrap();
    assert_eq!(mgt.kind, TargetKind::Zfs { pool: "mgspool".into(), dataset: "mgspool/mgt".into() });
    assert_eq!((mgt.lctl_device.as_str(), mgt.start_order), ("MGS", 0));
    let mdt = c.target("lustre-MDT0000").unwrap();
    assert_eq!(mdt.kind, TargetKind::Zfs { pool: "mdt0pool".into(), dataset: "mdt0pool/mdt0".into() });
    assert_eq!((mdt.lctl_device.as_str(), mdt.start_order), ("lustre-MDT0000", 1));
    for node in &c.nodes {
        assert_eq!(node.fence_levels.len(), 2, "{}: an IPMI level then a PDU level", node.name);
        assert!(matches!(c.device(&node.fence_levels[0][0]).unwrap().kind, FenceDeviceKind::Ipmi(_)));
        let pdu_outlets: usize = node.fence_levels[1]
            .iter()
            .map(|d| match &c.device(d).unwrap().kind {
                FenceDeviceKind::PduSnmp(p) => p.outlets.len(),
                other => panic!("not a PDU: {other:?}"),
            })
            .sum();
        assert_eq!(pdu_outlets, 2, "{}: both power supplies", node.name);
    }
}

#[test]
fn two_node_oss_example() {
    let c = Config::load_with(&example("two-node-oss.toml"), KeyCheck::Skip).unwrap();
    assert!(c.witness.is_some());
    assert_eq!(c.target("lustre-OST0000").unwrap().nodes, ["oss1", "oss2"]);
    assert_eq!(c.target("lustre-OST0001").unwrap().nodes, ["oss2", "oss1"]);
    assert_eq!(c.target("lustre-OST0000").unwrap().kind.pool(), Some("ost0pool"));
    assert_eq!(c.target("lustre-OST0001").unwrap().kind.pool(), Some("ost1pool"));
    let first_device = |node: &str| &c.device(&c.node(node).unwrap().fence_levels[0][0]).unwrap().kind;
    match first_device("oss1") {
        FenceDeviceKind::Agent(a) => {
            assert_eq!(a.program, "fence_ipmilan");
            assert!(a.secret_options.contains_key("password"));
        }
        other => panic!("oss1 should be fenced by an agent: {other:?}"),
    }
    assert!(matches!(first_device("oss2"), FenceDeviceKind::Ipmi(_)));
}

#[test]
fn three_node_lab_example() {
    let c = Config::load_with(&example("three-node-lab.toml"), KeyCheck::Skip).unwrap();
    assert_eq!((c.nodes.len(), c.targets.len()), (3, 4));
    assert!(c.targets.iter().any(|t| matches!(t.kind, TargetKind::Ldiskfs { .. })));
    assert_eq!(c.node("lab3").unwrap().fencing, FencingMode::ManualOnly);
}

#[test]
fn check_config_accepts_a_good_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = with_secrets(&example("two-node-mds.toml"), dir.path());
    let (out, text) = run(&["check-config", file.to_str().unwrap()]);
    assert!(out.status.success(), "{text}");
    assert_eq!(text.trim(), format!("{}: ok (2 nodes, 2 targets, 2 links)", file.display()));
}

#[test]
fn check_config_of_shipped_examples_without_key_check() {
    let files: Vec<String> = examples().iter().map(|p| p.display().to_string()).collect();
    let mut args = vec!["check-config", "--no-key-check"];
    args.extend(files.iter().map(String::as_str));
    let (out, text) = run(&args);
    assert!(out.status.success(), "{text}");
    assert_eq!(text.lines().filter(|l| l.contains(": ok (")).count(), files.len(), "{text}");
}

#[test]
fn check_config_reports_every_problem_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(with_key(&example("two-node-mds.toml"), dir.path())).unwrap();
    let broken = good
        .replacen("dead_after = \"3s\"", "dead_after = \"500ms\"", 1)
        .replacen("hostid = \"b2c3d4e5\"", "hostid = \"a1b2c3d4\"", 1)
        .replacen("mountpoint = \"/lustre/mdt0\"", "mountpoint = \"lustre/mdt0\"\nmount_opts = \"x\"", 1);
    assert_ne!(broken, good);
    let file = dir.path().join("broken.toml");
    std::fs::write(&file, broken).unwrap();
    let (out, text) = run(&["check-config", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let prefix = format!("{}: ", file.display());
    for key in ["cluster.dead_after", "node[1].hostid", "target[1].mountpoint", "target[1].mount_opts"] {
        assert!(text.lines().any(|l| l.starts_with(&format!("{prefix}{key}: "))), "no line for {key}:\n{text}");
    }
    assert_eq!(text.lines().count(), 4, "{text}");
}

#[test]
fn check_config_fails_on_a_missing_key_file_and_goes_on_with_other_files() {
    let dir = tempfile::tempdir().unwrap();
    let good = with_secrets(&example("two-node-oss.toml"), dir.path());
    let shipped = example("two-node-mds.toml");
    let (out, text) = run(&["check-config", shipped.to_str().unwrap(), good.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let expected = format!("{}: cluster.key_file: /etc/failoverd/cluster.key: cannot read", shipped.display());
    assert!(text.contains(&expected), "{text}");
    assert!(text.contains(&format!("{}: ok (2 nodes, 2 targets, 2 links)", good.display())), "{text}");
}

#[test]
fn check_config_fails_on_a_missing_secret_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = with_secrets(&example("two-node-mds.toml"), dir.path());
    std::fs::remove_file(dir.path().join("mds1-bmc.pw")).unwrap();
    let (out, text) = run(&["check-config", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("password_file") && text.contains("mds1-bmc.pw") && text.contains("No such file"), "{text}");
    let (out, text) = run(&["check-config", "--no-key-check", file.to_str().unwrap()]);
    assert!(out.status.success(), "{text}");
}

/// Two files of one cluster with different timings (mds2 with dead_after 5s / fence_delay 15s against mds1's
/// 3s / 10s): check-config names each differing key with both values and fails.
#[test]
fn check_config_says_how_files_of_one_cluster_differ() {
    let dir = tempfile::tempdir().unwrap();
    let a = with_secrets(&example("two-node-mds.toml"), dir.path());
    let text_a = std::fs::read_to_string(&a).unwrap();
    let b = dir.path().join("mds2.toml");
    let text_b = text_a.replacen("dead_after = \"3s\"", "dead_after = \"5s\"", 1).replacen("fence_delay = \"10s\"", "fence_delay = \"15s\"", 1);
    assert_ne!(text_a, text_b);
    std::fs::write(&b, text_b).unwrap();
    let (out, text) = run(&["check-config", a.to_str().unwrap(), b.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let (an, bn) = (a.display(), b.display());
    assert!(text.contains(&format!("differs: cluster.dead_after: {an} = 3s, {bn} = 5s")), "{text}");
    assert!(text.contains(&format!("differs: cluster.fence_delay: {an} = 10s, {bn} = 15s")), "{text}");
    // stall_threshold defaults to half of dead_after: its effective value differs too, and is said so
    assert!(text.contains("differs: cluster.stall_threshold:"), "{text}");
    assert!(text.contains("3 cluster-wide setting(s) differ"), "{text}");
    // a target changed in more than its name: the changed key is named
    let c = dir.path().join("mds2-target.toml");
    std::fs::write(&c, text_a.replacen("mountpoint = \"/lustre/mgt\"", "mountpoint = \"/lustre/mgs\"", 1)).unwrap();
    let (_, text) = run(&["check-config", a.to_str().unwrap(), c.to_str().unwrap()]);
    assert!(text.contains("differs: target[MGT].mountpoint:") && text.contains("= /lustre/mgs"), "{text}");
    // and identical files agree
    let (out, text) = run(&["check-config", a.to_str().unwrap(), a.to_str().unwrap()]);
    assert!(out.status.success() && text.contains("agree"), "{text}");
}

#[test]
fn keygen_writes_a_private_key_once() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("cluster.key");
    let path = key.to_str().unwrap();
    let (out, text) = run(&["keygen", "--out", path]);
    assert!(out.status.success(), "{text}");
    let contents = std::fs::read_to_string(&key).unwrap();
    assert_eq!(contents.len(), 65);
    assert!(contents.ends_with('\n') && contents.trim_end().chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o400);
    assert_eq!(load_key(&key).unwrap().len(), 64);

    let (out, text) = run(&["keygen", "--out", path]);
    assert!(!out.status.success());
    assert!(text.contains("already exists") && text.contains("--force"), "{text}");
    assert_eq!(std::fs::read_to_string(&key).unwrap(), contents, "an existing key is kept");

    let (out, text) = run(&["keygen", "--out", path, "--force"]);
    assert!(out.status.success(), "{text}");
    let replaced = std::fs::read_to_string(&key).unwrap();
    assert_ne!(replaced, contents);
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o400);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left behind");
}
