use super::*;

/// A valid two-node configuration using every device kind and both target kinds.
const BASE: &str = r#"
[cluster]
name = "lfs-test"
key_file = "/etc/failoverd/cluster.key"
links = ["ring0", "ring1"]

[[node]]
name = "n1"
addresses = ["10.0.0.1:7405", "10.1.0.1:7405"]
hostid = "a1a1a1a1"
fence_priority = 10
fence_levels = [["n1-ipmi"], ["n1-pdu"]]

[[node]]
name = "n2"
addresses = ["10.0.0.2:7405", "10.1.0.2:7405"]
hostid = "0xb2b2b2b2"
fence_levels = [["n2-agent"], ["operator"]]

[[fence_device]]
name = "n1-ipmi"
kind = "ipmi"
host = "10.0.9.1"
username = "admin"
password_file = "/etc/failoverd/n1.pw"

[[fence_device]]
name = "n1-pdu"
kind = "pdu-snmp"
host = "10.0.9.10"
community_file = "/etc/failoverd/pdu.community"
outlets = [3, 4]

[[fence_device]]
name = "n2-agent"
kind = "agent"
program = "fence_ipmilan"
options = { ip = "10.0.9.2", username = "admin", lanplus = "1" }
secret_options = { password = "/etc/failoverd/n2.pw" }

[[fence_device]]
name = "operator"
kind = "manual"

[[target]]
name = "MGT"
kind = "zfs"
pool = "mgspool"
dataset = "mgt"
mountpoint = "/lustre/mgt"
nodes = ["n1", "n2"]
lctl_device = "MGS"

[[target]]
name = "lustre-OST0000"
kind = "ldiskfs"
device = "/dev/mapper/ost0"
mountpoint = "/lustre/ost0"
nodes = ["n2", "n1"]
start_order = 1
"#;

/// BASE with `from` replaced by `to` (which must occur).
fn edit(from: &str, to: &str) -> String {
    edit_in(BASE, from, to)
}

fn edit_in(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "test bug: {from:?} not in the config");
    text.replacen(from, to, 1)
}

fn errors(text: &str) -> ConfigErrors {
    match Config::from_toml_str(text) {
        Ok(_) => panic!("config unexpectedly valid:\n{text}"),
        Err(e) => e,
    }
}

/// The message at `key`, failing with the whole list if there is none.
fn error_at(text: &str, key: &str) -> String {
    let errs = errors(text);
    match errs.get(key) {
        Some(e) => e.message.clone(),
        None => panic!("no error at {key}; got:\n{errs}"),
    }
}

fn valid(text: &str) -> Config {
    Config::from_toml_str(text).unwrap_or_else(|e| panic!("config invalid:\n{e}"))
}

#[test]
fn base_is_valid_and_read_as_written() {
    let c = valid(BASE);
    assert_eq!(c.cluster.name, "lfs-test");
    assert_eq!(c.nodes.len(), 2);
    assert_eq!(c.nodes[0].hostid, 0xa1a1a1a1);
    assert_eq!(c.nodes[1].hostid, 0xb2b2b2b2);
    assert_eq!(c.nodes[0].fence_levels, vec![vec!["n1-ipmi".to_owned()], vec!["n1-pdu".to_owned()]]);
    assert_eq!(c.nodes[0].fencing, FencingMode::Devices);
    assert_eq!(
        c.target("MGT").unwrap().kind,
        TargetKind::Zfs { pool: "mgspool".into(), dataset: "mgspool/mgt".into() }
    );
    assert_eq!(c.target("lustre-OST0000").unwrap().kind.mount_source(), "/dev/mapper/ost0");
    match &c.device("n2-agent").unwrap().kind {
        FenceDeviceKind::Agent(a) => {
            assert_eq!(a.options.get("ip").map(String::as_str), Some("10.0.9.2"));
            assert_eq!(a.secret_options.get("password"), Some(&PathBuf::from("/etc/failoverd/n2.pw")));
            assert_eq!(a.plug, None);
        }
        other => panic!("not an agent: {other:?}"),
    }
    assert_eq!(c.device("operator").unwrap().kind, FenceDeviceKind::Manual);
}

#[test]
fn defaults() {
    let c = valid(BASE);
    let k = &c.cluster;
    assert_eq!(k.heartbeat_interval, Duration::from_millis(250));
    assert_eq!(k.dead_after, Duration::from_secs(3));
    assert_eq!(k.fence_delay, Duration::from_secs(10));
    assert!(k.wait_for_all);
    assert_eq!(k.stall_threshold, Duration::from_millis(1500));
    assert_eq!(k.state_dir, PathBuf::from("/var/lib/failoverd"));
    assert_eq!(k.control_socket, PathBuf::from("/run/failoverd/control.sock"));
    assert_eq!(k.monitor_interval, Duration::from_secs(10));
    assert_eq!(k.monitor_failures, 3);
    assert_eq!(k.import_timeout, Duration::from_secs(120));
    assert_eq!(k.mount_timeout, Duration::from_secs(300));
    assert_eq!(k.command_timeout, Duration::from_secs(60));
    assert_eq!(k.fence_retry_initial, Duration::from_secs(2));
    assert_eq!(k.fence_retry_max, Duration::from_secs(60));
    assert_eq!((k.notify.as_ref(), k.metrics_listen, k.lock_memory), (None, None, false));
    assert!(k.control_allowed_uids.is_empty());
    assert_eq!(k.next_key_file, None);
    assert_eq!(c.nodes[1].fence_priority, 0);
    let ipmi = c.device("n1-ipmi").unwrap();
    assert_eq!(
        (ipmi.timeout, ipmi.power_timeout, ipmi.poll_interval),
        (Duration::from_secs(20), Duration::from_secs(20), Duration::from_secs(1))
    );
    let FenceDeviceKind::Ipmi(i) = &ipmi.kind else { panic!("not ipmi") };
    assert_eq!((i.port, i.lanplus, i.privilege, i.cipher), (623, true, IpmiPrivilege::Administrator, Some(3)));
    let FenceDeviceKind::PduSnmp(pdu) = &c.device("n1-pdu").unwrap().kind else { panic!("not pdu") };
    assert_eq!((pdu.port, pdu.profile, pdu.snmp_version), (161, PduProfile::ApcRpdu, SnmpVersion::V1));
    let mgt = c.target("MGT").unwrap();
    assert_eq!((mgt.start_order, mgt.lctl_device.as_str()), (0, "MGS"));
    let ost = c.target("lustre-OST0000").unwrap();
    assert_eq!(ost.lctl_device, "lustre-OST0000", "lctl_device defaults to the target name");
    assert_eq!((&ost.mount_options, &ost.check_command, ost.health_nids.len()), (&None, &None, 0));
    assert_eq!(c.witness, None);
}

#[test]
fn stall_threshold_defaults_to_half_of_dead_after() {
    let c = valid(&edit("links = [\"ring0\", \"ring1\"]", "links = [\"ring0\", \"ring1\"]\ndead_after = \"5s\""));
    assert_eq!(c.cluster.stall_threshold, Duration::from_millis(2500));
}

#[test]
fn no_cipher_without_lanplus() {
    let c =
        valid(&edit("username = \"admin\"\npassword_file", "username = \"admin\"\nlanplus = false\npassword_file"));
    let FenceDeviceKind::Ipmi(i) = &c.device("n1-ipmi").unwrap().kind else { panic!("not ipmi") };
    assert_eq!((i.lanplus, i.cipher), (false, None));
    let text = edit(
        "username = \"admin\"\npassword_file",
        "username = \"admin\"\nlanplus = false\ncipher = 17\npassword_file",
    );
    assert!(error_at(&text, "fence_device[0].cipher").contains("lanplus"));
}

#[test]
fn display_is_one_key_message_line_per_problem() {
    let errs = errors(&edit("name = \"lfs-test\"", "name = \"bad name\"").replace("/lustre/mgt", "lustre/mgt"));
    let text = errs.to_string();
    assert_eq!(text.lines().count(), errs.len());
    for (line, e) in text.lines().zip(errs.iter()) {
        assert_eq!(line, format!("{}: {}", e.key, e.message));
    }
    assert!(text.contains("cluster.name: "), "{text}");
    assert!(text.contains("target[0].mountpoint: "), "{text}");
}

#[test]
fn three_independent_problems_are_all_reported() {
    let text = edit("hostid = \"0xb2b2b2b2\"", "hostid = \"nothex\"");
    let text = edit_in(&text, "outlets = [3, 4]", "outlets = [3, 4]\noutlet = 5");
    let text = edit_in(&text, "mountpoint = \"/lustre/ost0\"", "mountpoint = \"lustre/ost0\"");
    let text = text.replacen("\"10.0.0.2:7405\", ", "", 1);
    let errs = errors(&text);
    for key in ["node[1].hostid", "fence_device[1].outlet", "target[1].mountpoint", "node[1].addresses"] {
        assert!(errs.has_key(key), "missing {key} in:\n{errs}");
    }
    assert_eq!(errs.len(), 4, "{errs}");
}

#[test]
fn toml_syntax_error_is_one_error_with_position() {
    let errs = errors(&edit("name = \"n2\"", "name = \"n2"));
    assert_eq!(errs.len(), 1, "{errs}");
    let e = &errs.errors[0];
    assert_eq!(e.key, "(toml)");
    assert!(e.message.starts_with("line 15, column 11: "), "{}", e.message);
    let dup = errors(&edit("name = \"lfs-test\"", "name = \"lfs-test\"\nname = \"again\""));
    assert!(dup.errors[0].message.contains("duplicate key"), "{dup}");
}

#[test]
fn unknown_keys_are_reported_with_their_path() {
    let text = edit("addresses = [\"10.0.0.2:7405\"", "adress = 1\naddresses = [\"10.0.0.2:7405\"");
    let text = edit_in(&text, "[cluster]", "colour = \"red\"\n[cluster]\nheartbeat = \"1s\"");
    let text = edit_in(&text, "kind = \"manual\"", "kind = \"manual\"\ncomment = \"x\"");
    let errs = errors(&text);
    assert_eq!(errs.get("node[1].adress").unwrap().message, "unknown key (did you mean `addresses`?)");
    assert!(errs.get("colour").unwrap().message.starts_with("unknown key"), "{errs}");
    assert_eq!(errs.get("cluster.heartbeat").unwrap().message, "unknown key (did you mean `heartbeat_interval`?)");
    assert_eq!(errs.get("fence_device[3].comment").unwrap().message, "unknown key");
    assert_eq!(errs.len(), 4, "{errs}");
    let sections = errors(&BASE.replace("[[node]]", "[[nodes]]"));
    assert_eq!(sections.get("nodes").unwrap().message, "unknown key (did you mean `node`?)");
}

#[test]
fn wrong_section_shapes() {
    assert!(error_at(&BASE.replace("[[node]]", "[node]"), "(toml)").contains("duplicate key"));
    let single =
        edit("[[target]]\nname = \"lustre", "[target]\nname = \"lustre").replacen("[[target]]", "[[x]]", 1);
    assert_eq!(error_at(&single, "target"), "write [[target]] (one entry of an array of tables), not [target]");
    let text = "target = 3\n".to_owned() + BASE.replace("[[target]]", "[[old_target]]").as_str();
    assert!(error_at(&text, "target").contains("expected [[target]] entries"));
    let text = "node = [1]\n".to_owned() + BASE.replace("[[node]]", "[[old_node]]").as_str();
    assert!(error_at(&text, "node[0]").contains("expected a table"));
    let text = "cluster = 1\n".to_owned() + &BASE.replace("[cluster]", "[old_cluster]");
    assert!(error_at(&text, "cluster").contains("expected a table"));
}

#[test]
fn missing_required_keys() {
    let text = edit("name = \"lfs-test\"\n", "");
    assert!(error_at(&text, "cluster.name").contains("required, e.g. name = \"lfs-mds\""));
    assert!(
        error_at(&edit("key_file = \"/etc/failoverd/cluster.key\"\n", ""), "cluster.key_file").contains("required")
    );
    assert!(error_at(&edit("links = [\"ring0\", \"ring1\"]\n", ""), "cluster.links").contains("required"));
    assert!(error_at(&edit("hostid = \"a1a1a1a1\"\n", ""), "node[0].hostid").contains("hostid"));
    assert!(error_at(&edit("program = \"fence_ipmilan\"\n", ""), "fence_device[2].program").contains("required"));
    assert!(error_at(&edit("outlets = [3, 4]\n", ""), "fence_device[1].outlets").contains("required"));
    assert!(error_at(&edit("kind = \"manual\"\n", ""), "fence_device[3].kind").contains("required"));
    assert!(error_at(&edit("pool = \"mgspool\"\n", ""), "target[0].pool").contains("required"));
    assert!(error_at(&edit("device = \"/dev/mapper/ost0\"\n", ""), "target[1].device").contains("required"));
    assert!(error_at(&edit("mountpoint = \"/lustre/mgt\"\n", ""), "target[0].mountpoint").contains("required"));
    let no_cluster = BASE.replace("[cluster]\nname = \"lfs-test\"\nkey_file = \"/etc/failoverd/cluster.key\"\nlinks = [\"ring0\", \"ring1\"]\n", "");
    assert!(error_at(&no_cluster, "cluster").contains("[cluster]"));
    assert!(!errors(&no_cluster).has_key("node[0].addresses"), "no address count check without links");
}

#[test]
fn at_least_one_node() {
    let text = BASE.split("[[node]]").next().unwrap().to_owned();
    assert!(error_at(&text, "node").contains("[[node]]"));
}

#[test]
fn names_are_checked() {
    assert!(
        error_at(&edit("name = \"lfs-test\"", "name = \"lfs test\""), "cluster.name").contains("A-Z a-z 0-9 _ . -")
    );
    assert!(errors(&edit("links = [\"ring0\", \"ring1\"]", "links = [\"ring0\", \"ring/1\"]"))
        .has_key("cluster.links[1]"));
    assert!(errors(&edit("name = \"n2\"", "name = \"\"")).has_key("node[1].name"));
    assert!(errors(&edit("name = \"n2\"", &format!("name = \"{}\"", "n".repeat(65)))).has_key("node[1].name"));
}

#[test]
fn link_count_and_duplicates() {
    assert!(error_at(&edit("links = [\"ring0\", \"ring1\"]", "links = []"), "cluster.links").contains("1 to 8"));
    let nine = (0..9).map(|i| format!("\"r{i}\"")).collect::<Vec<_>>().join(", ");
    assert!(errors(&edit("links = [\"ring0\", \"ring1\"]", &format!("links = [{nine}]"))).has_key("cluster.links"));
    let dup = edit("links = [\"ring0\", \"ring1\"]", "links = [\"ring0\", \"ring0\"]");
    assert!(error_at(&dup, "cluster.links[1]").contains("twice"));
}

#[test]
fn duplicate_names() {
    assert!(error_at(&edit("name = \"n2\"", "name = \"n1\""), "node[1].name").contains("node[0].name"));
    let dev = edit("name = \"n1-pdu\"", "name = \"n1-ipmi\"").replace("[\"n1-pdu\"]", "[\"n1-ipmi\"]");
    assert!(error_at(&dev, "fence_device[1].name").contains("fence_device[0].name"));
    assert!(
        error_at(&edit("name = \"lustre-OST0000\"", "name = \"MGT\""), "target[1].name").contains("target[0].name")
    );
}

#[test]
fn addresses() {
    let text = edit("addresses = [\"10.0.0.2:7405\", \"10.1.0.2:7405\"]", "addresses = [\"10.0.0.2:7405\"]");
    assert_eq!(error_at(&text, "node[1].addresses"), "1 address but the cluster has 2 links");
    let text = edit(
        "addresses = [\"10.0.0.2:7405\", \"10.1.0.2:7405\"]",
        "addresses = [\"10.0.0.2:7405\", \"10.1.0.2:7405\", \"10.2.0.2:7405\"]",
    );
    assert_eq!(error_at(&text, "node[1].addresses"), "3 addresses but the cluster has 2 links");
    let dup = edit("\"10.1.0.2:7405\"", "\"10.1.0.1:7405\"");
    assert!(error_at(&dup, "node[1].addresses[1]").contains("node[0].addresses[1]"));
    let same_node = edit("\"10.1.0.2:7405\"", "\"10.0.0.2:7405\"");
    assert!(error_at(&same_node, "node[1].addresses[1]").contains("twice"));
    assert!(errors(&edit("\"10.1.0.2:7405\"", "\"mds2:7405\"")).has_key("node[1].addresses[1]"));
    assert!(error_at(&edit("\"10.1.0.2:7405\"", "\"10.1.0.2:0\""), "node[1].addresses[1]").contains("port 0"));
    assert!(errors(&edit("\"10.1.0.2:7405\"", "\"0.0.0.0:7405\"")).has_key("node[1].addresses[1]"));
    let v6 = valid(&edit("\"10.1.0.2:7405\"", "\"[fd00::2]:7405\""));
    assert!(v6.nodes[1].addresses[1].is_ipv6());
    let witness = BASE.to_owned() + "\n[witness]\naddress = \"10.0.0.1:7405\"\n";
    assert!(error_at(&witness, "witness.address").contains("node[0].addresses[0]"));
}

#[test]
fn hostids() {
    assert!(error_at(&edit("hostid = \"0xb2b2b2b2\"", "hostid = \"a1a1a1a1\""), "node[1].hostid")
        .contains("node[0].hostid"));
    assert!(error_at(&edit("hostid = \"0xb2b2b2b2\"", "hostid = \"00000000\""), "node[1].hostid")
        .contains("zgenhostid"));
    assert!(errors(&edit("hostid = \"0xb2b2b2b2\"", "hostid = 0")).has_key("node[1].hostid"));
    assert!(error_at(&edit("hostid = \"0xb2b2b2b2\"", "hostid = \"b2b2b2b\""), "node[1].hostid")
        .contains("8 hex digits"));
    assert!(errors(&edit("hostid = \"0xb2b2b2b2\"", "hostid = \"b2b2b2bz\"")).has_key("node[1].hostid"));
    assert!(errors(&edit("hostid = \"0xb2b2b2b2\"", "hostid = 0x1b2b2b2b2")).has_key("node[1].hostid"));
    assert_eq!(valid(&edit("hostid = \"0xb2b2b2b2\"", "hostid = 0x00b2b2b2")).nodes[1].hostid, 0x00b2b2b2);
    assert_eq!(valid(&edit("hostid = \"0xb2b2b2b2\"", "hostid = \"007f0101\"")).nodes[1].hostid, 0x007f0101);
}

#[test]
fn target_nodes() {
    let text = edit("nodes = [\"n1\", \"n2\"]", "nodes = [\"n1\", \"n3\"]");
    assert!(error_at(&text, "target[0].nodes[1]").contains("unknown node \"n3\""));
    assert!(error_at(&edit("nodes = [\"n1\", \"n2\"]", "nodes = []"), "target[0].nodes").contains("no node"));
    assert!(errors(&edit("nodes = [\"n1\", \"n2\"]", "nodes = [\"n1\", \"n1\"]")).has_key("target[0].nodes[1]"));
}

#[test]
fn fence_levels_name_known_devices() {
    let text = edit("[[\"n1-ipmi\"], [\"n1-pdu\"]]", "[[\"n1-ipmi\"], [\"n1-pdu\", \"n1-pdu-b\"]]");
    let message = error_at(&text, "node[0].fence_levels[1][1]");
    assert!(message.contains("unknown fence_device \"n1-pdu-b\""), "{message}");
    assert!(error_at(&edit("[[\"n1-ipmi\"], [\"n1-pdu\"]]", "[[\"n1-ipmi\"], []]"), "node[0].fence_levels[1]")
        .contains("empty level"));
    assert!(errors(&edit("[[\"n1-ipmi\"], [\"n1-pdu\"]]", "[\"n1-ipmi\"]")).has_key("node[0].fence_levels[0]"));
    assert!(errors(&edit("[[\"n1-ipmi\"], [\"n1-pdu\"]]", "[[\"n1-pdu\", \"n1-pdu\"]]"))
        .has_key("node[0].fence_levels[0][1]"));
}

#[test]
fn unused_device_is_only_a_warning() {
    let text = edit("[[\"n1-ipmi\"], [\"n1-pdu\"]]", "[[\"n1-ipmi\"]]");
    let c = valid(&text);
    let w = c.warnings();
    assert!(w.iter().any(|w| w.key == "fence_device[1]" && w.message.contains("not used")), "{w:?}");
}

#[test]
fn a_device_fences_one_node_only() {
    let text = edit("[[\"n2-agent\"], [\"operator\"]]", "[[\"n2-agent\"], [\"n1-pdu\"], [\"operator\"]]");
    assert!(error_at(&text, "node[1].fence_levels[1][0]").contains("already fences node \"n1\""));
    let manual = edit("[[\"n1-ipmi\"], [\"n1-pdu\"]]", "[[\"n1-ipmi\"], [\"n1-pdu\"], [\"operator\"]]");
    valid(&manual);
}

#[test]
fn node_without_fencing_must_say_manual() {
    let text = edit("fence_levels = [[\"n2-agent\"], [\"operator\"]]\n", "");
    let message = error_at(&text, "node[1].fence_levels");
    assert!(message.contains("add fence_levels") && message.contains("fencing = \"manual\""), "{message}");
    assert!(errors(&edit("fence_levels = [[\"n2-agent\"], [\"operator\"]]", "fence_levels = []"))
        .has_key("node[1].fence_levels"));
    let manual = valid(&edit("fence_levels = [[\"n2-agent\"], [\"operator\"]]", "fencing = \"manual\""));
    assert_eq!(manual.nodes[1].fencing, FencingMode::ManualOnly);
    assert!(manual.nodes[1].fence_levels.is_empty());
    assert!(errors(&edit("fence_levels = [[\"n2-agent\"], [\"operator\"]]", "fencing = \"devices\""))
        .has_key("node[1].fence_levels"));
    assert!(errors(&edit("fence_levels = [[\"n2-agent\"], [\"operator\"]]", "fencing = \"off\""))
        .has_key("node[1].fencing"));
}

#[test]
fn manual_together_with_levels_is_rejected() {
    let text = edit(
        "fence_levels = [[\"n2-agent\"], [\"operator\"]]",
        "fence_levels = [[\"n2-agent\"]]\nfencing = \"manual\"",
    );
    assert!(error_at(&text, "node[1].fencing").contains("kind = \"manual\""));
}

#[test]
fn timing_rules() {
    let text = edit(
        "links = [\"ring0\", \"ring1\"]",
        "links = [\"ring0\", \"ring1\"]\nheartbeat_interval = \"1s\"\ndead_after = \"2s\"",
    );
    let message = error_at(&text, "cluster.dead_after");
    assert!(message.contains("3 x heartbeat_interval") && message.contains("at least 3s"), "{message}");
    valid(&edit(
        "links = [\"ring0\", \"ring1\"]",
        "links = [\"ring0\", \"ring1\"]\nheartbeat_interval = \"1s\"\ndead_after = \"3s\"",
    ));
    let fast =
        edit("links = [\"ring0\", \"ring1\"]", "links = [\"ring0\", \"ring1\"]\nheartbeat_interval = \"5ms\"");
    assert!(error_at(&fast, "cluster.heartbeat_interval").contains("at least 10ms"));
    let stall = edit("links = [\"ring0\", \"ring1\"]", "links = [\"ring0\", \"ring1\"]\nstall_threshold = \"3s\"");
    assert!(errors(&stall).has_key("cluster.stall_threshold"));
    let retry =
        edit("links = [\"ring0\", \"ring1\"]", "links = [\"ring0\", \"ring1\"]\nfence_retry_initial = \"2min\"");
    assert!(errors(&retry).has_key("cluster.fence_retry_max"));
    let failures = edit("links = [\"ring0\", \"ring1\"]", "links = [\"ring0\", \"ring1\"]\nmonitor_failures = 0");
    assert!(errors(&failures).has_key("cluster.monitor_failures"));
    let poll = edit("kind = \"manual\"", "kind = \"manual\"\npoll_interval = \"30s\"");
    assert!(errors(&poll).has_key("fence_device[3].poll_interval"));
}

#[test]
fn invalid_durations() {
    let text = edit(
        "links = [\"ring0\", \"ring1\"]",
        "links = [\"ring0\", \"ring1\"]\ndead_after = \"3 parsecs\"\nfence_delay = 10\nimport_timeout = \"0s\"",
    );
    let errs = errors(&text);
    assert!(errs.get("cluster.dead_after").unwrap().message.contains("is not a duration"), "{errs}");
    assert!(errs.get("cluster.fence_delay").unwrap().message.contains("duration in quotes"), "{errs}");
    assert!(errs.get("cluster.import_timeout").unwrap().message.contains("longer than 0"), "{errs}");
    assert_eq!(errs.len(), 3, "no follow-up errors from the invalid values: {errs}");
}

#[test]
fn zero_fence_delay_needs_a_witness_in_two_node_clusters() {
    let text = edit("links = [\"ring0\", \"ring1\"]", "links = [\"ring0\", \"ring1\"]\nfence_delay = \"0s\"");
    assert!(errors(&text).has_key("cluster.fence_delay"));
    valid(&(text + "\n[witness]\naddress = \"10.0.0.9:7406\"\n"));
}

#[test]
fn types_are_checked() {
    let text = edit("fence_priority = 10", "fence_priority = \"10\"");
    assert!(error_at(&text, "node[0].fence_priority").contains("expected an integer"));
    let text = edit("links = [\"ring0\", \"ring1\"]", "links = [\"ring0\", \"ring1\"]\nwait_for_all = \"yes\"");
    assert!(error_at(&text, "cluster.wait_for_all").contains("true or false"));
    assert!(errors(&edit("fence_priority = 10", "fence_priority = -1")).has_key("node[0].fence_priority"));
    assert!(errors(&edit("outlets = [3, 4]", "outlets = [3, 0]")).has_key("fence_device[1].outlets[1]"));
    assert!(errors(&edit("outlets = [3, 4]", "outlets = []")).has_key("fence_device[1].outlets"));
    assert!(errors(&edit("outlets = [3, 4]", "outlets = [3, 3]")).has_key("fence_device[1].outlets[1]"));
    assert!(errors(&edit("kind = \"ipmi\"", "kind = \"idrac\"")).has_key("fence_device[0].kind"));
    assert!(errors(&edit("kind = \"zfs\"", "kind = \"btrfs\"")).has_key("target[0].kind"));
}

#[test]
fn keys_of_another_kind() {
    let text = edit("device = \"/dev/mapper/ost0\"", "device = \"/dev/mapper/ost0\"\npool = \"ost0pool\"");
    assert!(error_at(&text, "target[1].pool").contains("does not apply to kind \"ldiskfs\""));
    let text =
        edit("password_file = \"/etc/failoverd/n1.pw\"", "password_file = \"/etc/failoverd/n1.pw\"\noutlets = [1]");
    assert!(error_at(&text, "fence_device[0].outlets").contains("kind \"pdu-snmp\""));
    assert!(errors(&edit("kind = \"manual\"", "kind = \"manual\"\nhost = \"x\"")).has_key("fence_device[3].host"));
    assert!(errors(&edit("pool = \"mgspool\"", "pool = \"mgspool\"\ndevice = \"/dev/sda\""))
        .has_key("target[0].device"));
}

#[test]
fn agent_options() {
    let text =
        edit("lanplus = \"1\" }", "lanplus = \"1\", action = \"off\", port = \"3\", password = \"secret\" }");
    let errs = errors(&text);
    for key in ["action", "port", "password"] {
        assert!(errs.has_key(&format!("fence_device[2].options.{key}")), "{key}: {errs}");
    }
    let text = edit(
        "secret_options = { password = \"/etc/failoverd/n2.pw\" }",
        "secret_options = { ip = \"relative.pw\" }",
    );
    assert!(errors(&text).has_key("fence_device[2].secret_options.ip"));
    assert!(errors(&edit("program = \"fence_ipmilan\"", "program = \"bin/fence_x\""))
        .has_key("fence_device[2].program"));
    let plug = valid(&edit("program = \"fence_ipmilan\"", "program = \"/usr/sbin/fence_ipmilan\"\nplug = 3"));
    let FenceDeviceKind::Agent(a) = &plug.device("n2-agent").unwrap().kind else { panic!("not an agent") };
    assert_eq!((a.program.as_str(), a.plug.as_deref()), ("/usr/sbin/fence_ipmilan", Some("3")));
}

#[test]
fn storage_sharing() {
    let same_ds = edit("pool = \"mgspool\"\ndataset = \"mgt\"", "pool = \"ostpool\"\ndataset = \"ostpool/ost0\"");
    let same_ds = edit_in(&same_ds, "device = \"/dev/mapper/ost0\"", "pool = \"ostpool\"\ndataset = \"ost0\"")
        .replace("kind = \"ldiskfs\"", "kind = \"zfs\"");
    let errs = errors(&same_ds);
    assert!(errs.get("target[1].dataset").unwrap().message.contains("target[0].dataset"), "{errs}");
    assert!(!errs.has_key("target[1].pool"), "{errs}");
    let same_pool = edit_in(&same_ds, "dataset = \"ost0\"", "dataset = \"ost1\"");
    assert!(error_at(&same_pool, "target[1].pool").contains("pool of its own"));
    let device = edit("pool = \"mgspool\"\ndataset = \"mgt\"", "device = \"/dev/mapper/ost0\"").replacen(
        "kind = \"zfs\"",
        "kind = \"ldiskfs\"",
        1,
    );
    assert!(error_at(&device, "target[1].device").contains("target[0].device"));
    let mount = edit("mountpoint = \"/lustre/ost0\"", "mountpoint = \"/lustre/mgt/\"");
    assert!(error_at(&mount, "target[1].mountpoint").contains("target[0].mountpoint"));
    let lctl = edit("lctl_device = \"MGS\"", "lctl_device = \"lustre-OST0000\"");
    assert!(errors(&lctl).has_key("target[1].lctl_device"));
}

#[test]
fn mountpoints_and_paths() {
    assert!(error_at(&edit("mountpoint = \"/lustre/mgt\"", "mountpoint = \"lustre/mgt\""), "target[0].mountpoint")
        .contains("absolute"));
    assert!(errors(&edit("mountpoint = \"/lustre/mgt\"", "mountpoint = \"/\"")).has_key("target[0].mountpoint"));
    assert!(errors(&edit("device = \"/dev/mapper/ost0\"", "device = \"mapper/ost0\"")).has_key("target[1].device"));
    assert!(errors(&edit("key_file = \"/etc/failoverd/cluster.key\"", "key_file = \"cluster.key\""))
        .has_key("cluster.key_file"));
    assert!(errors(&edit("password_file = \"/etc/failoverd/n1.pw\"", "password_file = \"n1.pw\""))
        .has_key("fence_device[0].password_file"));
}

#[test]
fn pool_and_dataset() {
    let c = valid(&edit("dataset = \"mgt\"", "dataset = \"mgspool/lustre/mgt\""));
    assert_eq!(c.targets[0].kind.mount_source(), "mgspool/lustre/mgt");
    let message = error_at(&edit("dataset = \"mgt\"", "dataset = \"otherpool/mgt\""), "target[0].dataset");
    assert!(message.contains("not in pool \"mgspool\""), "{message}");
    assert!(errors(&edit("dataset = \"mgt\"", "dataset = \"mgspoolx/mgt\"")).has_key("target[0].dataset"));
    assert!(errors(&edit("dataset = \"mgt\"", "dataset = \"mgspool/mgt@snap\"")).has_key("target[0].dataset"));
    assert!(errors(&edit("pool = \"mgspool\"", "pool = \"1pool\"")).has_key("target[0].pool"));
}

#[test]
fn check_command_and_nids() {
    let c = valid(&edit("start_order = 1", "start_order = 1\ncheck_command = [\"/usr/local/bin/check\", \"ost0\"]\nhealth_nids = [\"10.0.0.9@tcp\"]\nmount_options = \"abort_recov\""));
    assert_eq!(
        c.targets[1].check_command.as_deref(),
        Some(&["/usr/local/bin/check".to_owned(), "ost0".to_owned()][..])
    );
    assert_eq!(c.targets[1].health_nids, vec!["10.0.0.9@tcp".to_owned()]);
    assert!(
        errors(&edit("start_order = 1", "start_order = 1\ncheck_command = []")).has_key("target[1].check_command")
    );
    assert!(errors(&edit("start_order = 1", "start_order = 1\ncheck_command = [\"./check\"]"))
        .has_key("target[1].check_command[0]"));
    assert!(errors(&edit("start_order = 1", "start_order = 1\nhealth_nids = [\"10.0.0.9\"]"))
        .has_key("target[1].health_nids[0]"));
}

#[test]
fn digest_is_stable_and_ignores_node_local_keys() {
    let a = valid(BASE);
    assert_eq!(a.digest(), valid(BASE).digest());
    let local = edit("links = [\"ring0\", \"ring1\"]", "links = [\"ring0\", \"ring1\"]\nstate_dir = \"/srv/failoverd\"\ncontrol_socket = \"/run/x.sock\"\nnotify = \"/bin/true\"\nmetrics_listen = \"127.0.0.1:9999\"\nlock_memory = true\ncontrol_allowed_uids = [1000]\nnext_key_file = \"/etc/failoverd/next.key\"");
    let local = edit_in(&local, "key_file = \"/etc/failoverd/cluster.key\"", "key_file = \"/root/other.key\"");
    assert_eq!(valid(&local).digest(), a.digest());
    // Comments, spacing and spelled-out defaults do not matter either.
    let spelled = edit(
        "links = [\"ring0\", \"ring1\"]",
        "links = [ \"ring0\",\"ring1\" ] # two rings\nheartbeat_interval = \"250ms\"",
    );
    assert_eq!(valid(&spelled).digest(), a.digest());
}

#[test]
fn digest_changes_with_every_cluster_wide_key() {
    let base = valid(BASE).digest();
    let changes = [
        ("name = \"lfs-test\"", "name = \"lfs-test2\""),
        ("links = [\"ring0\", \"ring1\"]", "links = [\"ring0\", \"ringB\"]"),
        ("links = [\"ring0\", \"ring1\"]", "links = [\"ring0\", \"ring1\"]\nheartbeat_interval = \"200ms\""),
        ("links = [\"ring0\", \"ring1\"]", "links = [\"ring0\", \"ring1\"]\ndead_after = \"4s\""),
        ("links = [\"ring0\", \"ring1\"]", "links = [\"ring0\", \"ring1\"]\nfence_delay = \"11s\""),
        ("links = [\"ring0\", \"ring1\"]", "links = [\"ring0\", \"ring1\"]\nwait_for_all = false"),
        ("links = [\"ring0\", \"ring1\"]", "links = [\"ring0\", \"ring1\"]\nimport_timeout = \"121s\""),
        ("links = [\"ring0\", \"ring1\"]", "links = [\"ring0\", \"ring1\"]\nfence_retry_max = \"61s\""),
        ("\"10.1.0.2:7405\"", "\"10.1.0.3:7405\""),
        ("hostid = \"a1a1a1a1\"", "hostid = \"a1a1a1a2\""),
        ("fence_priority = 10", "fence_priority = 11"),
        ("outlets = [3, 4]", "outlets = [4, 3]"),
        ("host = \"10.0.9.1\"", "host = \"10.0.9.5\""),
        ("nodes = [\"n1\", \"n2\"]", "nodes = [\"n2\", \"n1\"]"),
        ("lctl_device = \"MGS\"", "lctl_device = \"MGS2\""),
        ("start_order = 1", "start_order = 2"),
    ];
    for (from, to) in changes {
        assert_ne!(valid(&edit(from, to)).digest(), base, "digest unchanged by {to}");
    }
    let witness = BASE.to_owned() + "\n[witness]\naddress = \"10.0.0.9:7406\"\n";
    assert_ne!(valid(&witness).digest(), base);
}

#[test]
fn target_digest() {
    let a = valid(BASE);
    let mgt = a.target_digest("MGT").unwrap();
    assert_eq!(valid(BASE).target_digest("MGT"), Some(mgt));
    assert_ne!(a.target_digest("lustre-OST0000"), Some(mgt));
    assert_eq!(a.target_digest("nope"), None);
    let other = valid(&edit("nodes = [\"n1\", \"n2\"]", "nodes = [\"n2\", \"n1\"]"));
    assert_ne!(other.target_digest("MGT"), Some(mgt));
    assert_eq!(other.target_digest("lustre-OST0000"), a.target_digest("lustre-OST0000"));
}

#[test]
fn warnings() {
    assert!(valid(BASE).warnings().is_empty(), "{:?}", valid(BASE).warnings());
    let one_link = BASE
        .replace("links = [\"ring0\", \"ring1\"]", "links = [\"ring0\"]")
        .replace(", \"10.1.0.1:7405\"", "")
        .replace(", \"10.1.0.2:7405\"", "");
    assert!(valid(&one_link).warnings().iter().any(|w| w.key == "cluster.links"));
    let equal = edit("fence_priority = 10\n", "");
    assert!(valid(&equal).warnings().iter().any(|w| w.key == "node[1].fence_priority"));
    let single = edit("nodes = [\"n1\", \"n2\"]", "nodes = [\"n1\"]");
    assert!(valid(&single).warnings().iter().any(|w| w.key == "target[0].nodes"));
    // an MDT0000 that runs first on the MGS's node: Imperative Recovery cannot help when that node fails
    let mdt = edit("lctl_device = \"MGS\"\n", "lctl_device = \"MGS\"\n").replacen("device = \"/dev/mapper/ost0\"", "device = \"/dev/mapper/mdt0\"\nlctl_device = \"lustre-MDT0000\"", 1);
    assert!(valid(&mdt).warnings().iter().all(|w| !w.message.contains("Imperative Recovery")), "{:?}", valid(&mdt).warnings());
    let together = mdt.replacen("nodes = [\"n2\", \"n1\"]", "nodes = [\"n1\", \"n2\"]", 1);
    let w = valid(&together).warnings();
    assert!(w.iter().any(|w| w.key == "target[1].nodes" && w.message.contains("Imperative Recovery cannot help")), "{w:?}");
}

#[test]
fn key_files() {
    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short.key");
    std::fs::write(&short, "0123456789ab\n").unwrap();
    let message = load_key(&short).unwrap_err().to_string();
    assert_eq!(
        message,
        format!("{}: 12 bytes, need at least 32 (make one with `failoverd keygen --out FILE`)", short.display())
    );
    let hex = dir.path().join("hex.key");
    std::fs::write(&hex, format!("{}\n", "ab".repeat(32))).unwrap();
    assert_eq!(load_key(&hex).unwrap(), "ab".repeat(32).into_bytes());
    let raw = dir.path().join("raw.key");
    std::fs::write(&raw, [7u8; 32]).unwrap();
    assert_eq!(load_key(&raw).unwrap(), vec![7u8; 32]);
    assert!(load_key(&dir.path().join("missing.key")).unwrap_err().to_string().contains("cannot read"));

    let text = edit(
        "key_file = \"/etc/failoverd/cluster.key\"",
        &format!(
            "key_file = \"{}\"\nnext_key_file = \"{}\"",
            short.display(),
            dir.path().join("missing.key").display()
        ),
    );
    let file = dir.path().join("failoverd.toml");
    std::fs::write(&file, &text).unwrap();
    let errs = Config::load(&file).unwrap_err();
    assert_eq!(errs.get("cluster.key_file").unwrap().message, message);
    assert!(errs.has_key("cluster.next_key_file"), "{errs}");
    assert!(Config::load_with(&file, KeyCheck::Skip).is_ok());
    let good = edit("key_file = \"/etc/failoverd/cluster.key\"", &format!("key_file = \"{}\"", hex.display()));
    std::fs::write(&file, good).unwrap();
    assert!(Config::load(&file).is_ok());
    assert_eq!(Config::load(&dir.path().join("none.toml")).unwrap_err().errors[0].key, "(file)");
}

#[test]
fn helpers() {
    assert_eq!(edit_distance("adress", "addresses"), 3);
    assert_eq!(suggest("fence_level", &["fence_levels", "fencing"]), Some("fence_levels"));
    assert_eq!(suggest("zzz", &["name", "kind"]), None);
    assert!(related_keys("node[1]", "node[1].addresses[0]"));
    assert!(!related_keys("node[1]", "node[10].name"));
    assert_eq!(known_fields::<RawWitness>(), &["address"]);
}

#[test]
fn disk_heartbeat_is_agreed_on_but_its_path_is_node_local() {
    let links = "links = [\"ring0\", \"ring1\"]";
    let base = valid(BASE);
    assert_eq!(base.cluster.disk_heartbeat, None);
    let a = valid(&edit(links, &format!("{links}\ndisk_heartbeat = \"/dev/disk/by-id/dm-name-hb\"")));
    let b = valid(&edit(links, &format!("{links}\ndisk_heartbeat = \"/dev/mapper/hb\"")));
    assert_eq!(a.cluster.disk_heartbeat.as_deref(), Some(Path::new("/dev/disk/by-id/dm-name-hb")));
    // set on one node and not on another: the digests differ, and the agreement values name the key
    assert_ne!(a.digest(), base.digest());
    let diff = diff_settings(&[&base.agreement_values(), &a.agreement_values()]);
    assert_eq!(diff.len(), 1, "{diff:?}");
    assert_eq!(diff[0].key, "cluster.disk_heartbeat");
    // another path for the same LUN on another host: the same digest
    assert_eq!(a.digest(), b.digest());
    // an absolute path, as every path the daemon reads
    assert!(errors(&edit(links, &format!("{links}\ndisk_heartbeat = \"dev/hb\""))).has_key("cluster.disk_heartbeat"));
}
