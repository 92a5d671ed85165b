//! Building and checking each section of the file.

use super::*;

pub(super) fn build(raw: &RawSections, keys: KeyCheck, p: &mut Problems) -> Config {
    let cluster = match &raw.cluster {
        Some(c) => build_cluster(c, keys, p),
        None => {
            p.push("cluster", "missing [cluster] table; it is required (at least name, key_file and links)");
            placeholder_cluster()
        }
    };
    let node_names = Known::new("node", raw.nodes.iter().map(|n| &n.name));
    let device_names = Known::new("fence_device", raw.devices.iter().map(|d| &d.name));
    let config = Config {
        cluster,
        nodes: raw.nodes.iter().enumerate().map(|(i, n)| build_node(n, i, &device_names, p)).collect(),
        fence_devices: raw.devices.iter().enumerate().map(|(i, d)| build_device(d, i, p)).collect(),
        targets: raw.targets.iter().enumerate().map(|(i, t)| build_target(t, i, &node_names, p)).collect(),
        witness: raw.witness.as_ref().map(|w| build_witness(w, p)),
    };
    check_nodes(&config, p);
    check_addresses(&config, p);
    check_fence_levels(&config, p);
    check_targets(&config, p);
    check_fence_delay(&config, p);
    config
}

/// The names a section defines (read before validation), to check references to them element by element.
pub(super) struct Known {
    pub(super) section: &'static str,
    pub(super) names: Vec<String>,
}

impl Known {
    pub(super) fn new<'a>(section: &'static str, raw: impl Iterator<Item = &'a Raw>) -> Known {
        let mut names: Vec<String> = Vec::new();
        for name in raw.filter_map(|v| v.as_ref()?.as_str()) {
            if !names.iter().any(|n| n == name) {
                names.push(name.to_owned());
            }
        }
        Known { section, names }
    }

    /// A name that must be one of the defined ones.
    pub(super) fn reference(&self, v: &Value) -> Result<String, String> {
        let name = conv_name(v)?;
        if self.names.contains(&name) {
            return Ok(name);
        }
        let defined = if self.names.is_empty() {
            "none is defined".to_owned()
        } else {
            format!("defined: {}", self.names.join(", "))
        };
        Err(format!(
            "unknown {} \"{name}\"; define it with a [[{}]] entry whose name = \"{name}\" ({defined})",
            self.section, self.section
        ))
    }
}

pub(super) fn placeholder_cluster() -> ClusterConfig {
    ClusterConfig {
        name: String::new(),
        key_file: PathBuf::new(),
        next_key_file: None,
        links: Vec::new(),
        heartbeat_interval: defaults::HEARTBEAT_INTERVAL,
        dead_after: defaults::DEAD_AFTER,
        fence_delay: defaults::FENCE_DELAY,
        wait_for_all: defaults::WAIT_FOR_ALL,
        stall_threshold: defaults::DEAD_AFTER / 2,
        state_dir: PathBuf::from(defaults::STATE_DIR),
        control_socket: PathBuf::from(defaults::CONTROL_SOCKET),
        monitor_interval: defaults::MONITOR_INTERVAL,
        monitor_failures: defaults::MONITOR_FAILURES,
        import_timeout: defaults::IMPORT_TIMEOUT,
        mount_timeout: defaults::MOUNT_TIMEOUT,
        command_timeout: defaults::COMMAND_TIMEOUT,
        fence_retry_initial: defaults::FENCE_RETRY_INITIAL,
        fence_retry_max: defaults::FENCE_RETRY_MAX,
        notify: None,
        metrics_listen: None,
        lock_memory: defaults::LOCK_MEMORY,
        recovery_budget: defaults::RECOVERY_BUDGET,
        control_allowed_uids: Vec::new(),
        disk_heartbeat: None,
    }
}

// --- [cluster] ---------------------------------------------------------------------------------------------------

pub(super) fn build_cluster(raw: &RawCluster, keys: KeyCheck, p: &mut Problems) -> ClusterConfig {
    let mut s = Section::new(p, "cluster");
    let mut c = placeholder_cluster();
    read_identity(&mut s, raw, &mut c);
    read_timing(&mut s, raw, &mut c);
    check_timing(&mut s, &c);
    read_local(&mut s, raw, &mut c);
    if keys == KeyCheck::Check {
        check_key_files(&mut s, &c);
    }
    c
}

pub(super) fn read_identity(s: &mut Section, raw: &RawCluster, c: &mut ClusterConfig) {
    c.name = s.req("name", &raw.name, conv_name, "\"lfs-mds\"").unwrap_or_default();
    c.key_file = s.req("key_file", &raw.key_file, conv_abs_path, "\"/etc/failoverd/cluster.key\"").unwrap_or_default();
    c.next_key_file = s.opt("next_key_file", &raw.next_key_file, conv_abs_path);
    c.links = s.req_list("links", &raw.links, conv_name, "[\"ring0\", \"ring1\"]");
    if s.clean("links") && (c.links.is_empty() || c.links.len() > defaults::MAX_LINKS) {
        s.push(
            "links",
            format!(
                "{} listed; list 1 to {} heartbeat links, e.g. [\"ring0\", \"ring1\"]",
                count(c.links.len(), "link"),
                defaults::MAX_LINKS
            ),
        );
    }
    s.no_repeats("links", &c.links);
}

pub(super) fn read_timing(s: &mut Section, raw: &RawCluster, c: &mut ClusterConfig) {
    use defaults as d;
    let positive = conv_positive_duration;
    c.heartbeat_interval = s.or("heartbeat_interval", &raw.heartbeat_interval, positive, d::HEARTBEAT_INTERVAL);
    c.dead_after = s.or("dead_after", &raw.dead_after, positive, d::DEAD_AFTER);
    c.fence_delay = s.or("fence_delay", &raw.fence_delay, conv_duration, d::FENCE_DELAY);
    c.wait_for_all = s.or("wait_for_all", &raw.wait_for_all, conv_bool, d::WAIT_FOR_ALL);
    c.stall_threshold = s.or("stall_threshold", &raw.stall_threshold, positive, c.dead_after / 2);
    c.monitor_interval = s.or("monitor_interval", &raw.monitor_interval, positive, d::MONITOR_INTERVAL);
    let failures = |v: &Value| conv_int(v, 1, u32::MAX.into()).map(|i| i as u32);
    c.monitor_failures = s.or("monitor_failures", &raw.monitor_failures, failures, d::MONITOR_FAILURES);
    c.import_timeout = s.or("import_timeout", &raw.import_timeout, positive, d::IMPORT_TIMEOUT);
    c.mount_timeout = s.or("mount_timeout", &raw.mount_timeout, positive, d::MOUNT_TIMEOUT);
    c.command_timeout = s.or("command_timeout", &raw.command_timeout, positive, d::COMMAND_TIMEOUT);
    c.fence_retry_initial = s.or("fence_retry_initial", &raw.fence_retry_initial, positive, d::FENCE_RETRY_INITIAL);
    c.fence_retry_max = s.or("fence_retry_max", &raw.fence_retry_max, positive, d::FENCE_RETRY_MAX);
}

pub(super) fn check_timing(s: &mut Section, c: &ClusterConfig) {
    let hb = c.heartbeat_interval;
    if s.clean("heartbeat_interval") && hb < defaults::MIN_HEARTBEAT_INTERVAL {
        s.push(
            "heartbeat_interval",
            format!(
                "{} is too short; use at least {} (the default is {})",
                fmt_duration(hb),
                fmt_duration(defaults::MIN_HEARTBEAT_INTERVAL),
                fmt_duration(defaults::HEARTBEAT_INTERVAL)
            ),
        );
    }
    let min_dead = hb * defaults::MIN_MISSED_HEARTBEATS;
    if s.clean("heartbeat_interval") && s.clean("dead_after") && c.dead_after < min_dead {
        s.push("dead_after", format!(
            "{} is less than 3 x heartbeat_interval ({}): a peer would be declared dead after fewer than three missed heartbeats; raise dead_after to at least {} or lower heartbeat_interval",
            fmt_duration(c.dead_after), fmt_duration(min_dead), fmt_duration(min_dead)));
    }
    if s.clean("dead_after") && s.clean("stall_threshold") && c.stall_threshold >= c.dead_after {
        s.push("stall_threshold", format!(
            "{} must be shorter than dead_after ({}): a stall that long would already make peers look dead; leave it out to use dead_after / 2",
            fmt_duration(c.stall_threshold), fmt_duration(c.dead_after)));
    }
    if s.clean("fence_retry_initial") && s.clean("fence_retry_max") && c.fence_retry_max < c.fence_retry_initial {
        s.push(
            "fence_retry_max",
            format!(
                "{} is shorter than fence_retry_initial ({}); it must be at least as long",
                fmt_duration(c.fence_retry_max),
                fmt_duration(c.fence_retry_initial)
            ),
        );
    }
}

pub(super) fn read_local(s: &mut Section, raw: &RawCluster, c: &mut ClusterConfig) {
    c.state_dir = s.or("state_dir", &raw.state_dir, conv_abs_path, PathBuf::from(defaults::STATE_DIR));
    c.control_socket =
        s.or("control_socket", &raw.control_socket, conv_abs_path, PathBuf::from(defaults::CONTROL_SOCKET));
    c.notify = s.opt("notify", &raw.notify, conv_abs_path);
    c.metrics_listen = s.opt("metrics_listen", &raw.metrics_listen, conv_listen_addr);
    c.lock_memory = s.or("lock_memory", &raw.lock_memory, conv_bool, defaults::LOCK_MEMORY);
    c.recovery_budget = s.or("recovery_budget", &raw.recovery_budget, conv_duration, defaults::RECOVERY_BUDGET);
    c.control_allowed_uids = s.list("control_allowed_uids", &raw.control_allowed_uids, conv_u32).unwrap_or_default();
    c.disk_heartbeat = s.opt("disk_heartbeat", &raw.disk_heartbeat, conv_abs_path);
}

pub(super) fn check_key_files(s: &mut Section, c: &ClusterConfig) {
    if s.clean("key_file") {
        if let Err(e) = load_key(&c.key_file) {
            s.push("key_file", e.to_string());
        }
    }
    if let (Some(path), true) = (&c.next_key_file, s.clean("next_key_file")) {
        if let Err(e) = load_key(path) {
            s.push("next_key_file", e.to_string());
        }
    }
}

// --- [[node]] ------------------------------------------------------------------------------------------------------

pub(super) fn build_node(raw: &RawNode, i: usize, devices: &Known, p: &mut Problems) -> NodeConfig {
    let mut s = Section::new(p, format!("node[{i}]"));
    let name = s.req("name", &raw.name, conv_name, "\"mds1\"").unwrap_or_default();
    let addresses = s.req_list("addresses", &raw.addresses, conv_peer_addr, "[\"10.0.0.1:7405\", \"10.1.0.1:7405\"]");
    s.no_repeats("addresses", &addresses);
    let hostid = s.req("hostid", &raw.hostid, conv_hostid, "\"a1a1a1a1\" (what `hostid` prints on that node)");
    let hostname = s.opt("hostname", &raw.hostname, conv_hostname);
    let fence_priority = s.or("fence_priority", &raw.fence_priority, conv_u32, defaults::FENCE_PRIORITY);
    let fence_levels = read_fence_levels(&mut s, &raw.fence_levels, devices);
    let manual = s.opt("fencing", &raw.fencing, |v| conv_choice(v, &[("manual", true), ("devices", false)]));
    let fencing = fencing_mode(&mut s, &name, fence_levels.as_deref(), manual);
    NodeConfig {
        name,
        addresses,
        hostid: hostid.unwrap_or(0),
        hostname,
        fence_priority,
        fence_levels: fence_levels.unwrap_or_default(),
        fencing,
    }
}

pub(super) fn read_fence_levels(s: &mut Section, v: &Raw, devices: &Known) -> Option<Vec<Vec<String>>> {
    let v = v.as_ref()?;
    let Some(levels) = v.as_array() else {
        s.push(
            "fence_levels",
            format!(
                "expected an array of levels such as [[\"mds1-ipmi\"], [\"mds1-pdu-a\", \"mds1-pdu-b\"]], found {}",
                describe(v)
            ),
        );
        return Some(Vec::new());
    };
    Some(
        levels
            .iter()
            .enumerate()
            .map(|(l, level)| read_fence_level(s, &format!("fence_levels[{l}]"), level, devices))
            .collect(),
    )
}

pub(super) fn read_fence_level(s: &mut Section, field: &str, level: &Value, known: &Known) -> Vec<String> {
    let Some(devices) = level.as_array() else {
        s.push(field, format!("expected a level: an array of fence_device names; fence_levels is an array of arrays, e.g. [[\"mds1-ipmi\"]], found {}", describe(level)));
        return Vec::new();
    };
    if devices.is_empty() {
        s.push(
            field,
            "empty level: it would count as fenced without cutting any power; list at least one fence_device",
        );
    }
    // An invalid entry stays as an empty placeholder so that positions still match the keys.
    let mut names = Vec::new();
    for (d, device) in devices.iter().enumerate() {
        names.push(known.reference(device).unwrap_or_else(|message| {
            s.push(&format!("{field}[{d}]"), message);
            String::new()
        }));
    }
    s.no_repeats(field, &names);
    names
}

/// `fence_levels` and `fencing` together: levels alone = devices; `fencing = "manual"` alone = operator only;
/// neither is refused (the operator must choose); both is refused as ambiguous.
pub(super) fn fencing_mode(s: &mut Section, name: &str, levels: Option<&[Vec<String>]>, manual: Option<bool>) -> FencingMode {
    let has_levels = levels.is_some_and(|l| !l.is_empty());
    match (has_levels, manual) {
        (true, Some(true)) => {
            s.push("fencing", "fencing = \"manual\" cannot be combined with fence_levels; remove one of them (to let an operator confirm after the devices failed, end fence_levels with a [[fence_device]] of kind = \"manual\")");
            FencingMode::Devices
        }
        (true, _) => FencingMode::Devices,
        (false, Some(true)) => FencingMode::ManualOnly,
        (false, _) => {
            if s.clean("fence_levels") && s.clean("fencing") {
                s.push("fence_levels", format!(
                    "node \"{name}\" has no fence_levels: add fence_levels = [[\"<fence_device name>\"], ...] naming its [[fence_device]] entries, or set fencing = \"manual\" to acknowledge that only an operator can fence it (with `failoverd confirm-fenced {name}`)"));
            }
            FencingMode::Devices
        }
    }
}

// --- [[fence_device]] ----------------------------------------------------------------------------------------------

/// The kind-specific keys of `[[fence_device]]` and the kinds they belong to.
pub(super) const DEVICE_KEY_OWNERS: &[(&str, &[&str])] = &[
    ("host", &["ipmi", "pdu-snmp"]),
    ("port", &["ipmi", "pdu-snmp"]),
    ("username", &["ipmi"]),
    ("password_file", &["ipmi"]),
    ("lanplus", &["ipmi"]),
    ("privilege", &["ipmi"]),
    ("cipher", &["ipmi"]),
    ("community_file", &["pdu-snmp"]),
    ("outlets", &["pdu-snmp"]),
    ("profile", &["pdu-snmp"]),
    ("snmp_version", &["pdu-snmp"]),
    ("program", &["agent"]),
    ("options", &["agent"]),
    ("secret_options", &["agent"]),
    ("plug", &["agent"]),
];

impl RawDevice {
    pub(super) fn specific_keys(&self) -> [(&'static str, bool); 15] {
        [
            ("host", self.host.is_some()),
            ("port", self.port.is_some()),
            ("username", self.username.is_some()),
            ("password_file", self.password_file.is_some()),
            ("lanplus", self.lanplus.is_some()),
            ("privilege", self.privilege.is_some()),
            ("cipher", self.cipher.is_some()),
            ("community_file", self.community_file.is_some()),
            ("outlets", self.outlets.is_some()),
            ("profile", self.profile.is_some()),
            ("snmp_version", self.snmp_version.is_some()),
            ("program", self.program.is_some()),
            ("options", self.options.is_some()),
            ("secret_options", self.secret_options.is_some()),
            ("plug", self.plug.is_some()),
        ]
    }
}

pub(super) const DEVICE_KINDS: &[(&str, &str)] =
    &[("ipmi", "ipmi"), ("pdu-snmp", "pdu-snmp"), ("agent", "agent"), ("manual", "manual")];

pub(super) fn build_device(raw: &RawDevice, i: usize, p: &mut Problems) -> FenceDeviceConfig {
    let mut s = Section::new(p, format!("fence_device[{i}]"));
    let name = s.req("name", &raw.name, conv_name, "\"mds1-ipmi\"").unwrap_or_default();
    let kind =
        s.req("kind", &raw.kind, |v| conv_choice(v, DEVICE_KINDS), "\"ipmi\" (or \"pdu-snmp\", \"agent\", \"manual\")");
    let timeout = s.or("timeout", &raw.timeout, conv_positive_duration, defaults::DEVICE_TIMEOUT);
    let power_timeout = s.or("power_timeout", &raw.power_timeout, conv_positive_duration, defaults::POWER_TIMEOUT);
    let poll_interval = s.or("poll_interval", &raw.poll_interval, conv_positive_duration, defaults::POLL_INTERVAL);
    if s.clean("poll_interval") && s.clean("power_timeout") && poll_interval > power_timeout {
        s.push(
            "poll_interval",
            format!(
                "{} is longer than power_timeout ({}): status would be read at most once",
                fmt_duration(poll_interval),
                fmt_duration(power_timeout)
            ),
        );
    }
    if let Some(kind) = kind {
        s.foreign_keys(kind, &raw.specific_keys(), DEVICE_KEY_OWNERS);
    }
    let kind = match kind {
        Some("ipmi") => FenceDeviceKind::Ipmi(read_ipmi(&mut s, raw)),
        Some("pdu-snmp") => FenceDeviceKind::PduSnmp(read_pdu(&mut s, raw)),
        Some("agent") => FenceDeviceKind::Agent(read_agent(&mut s, raw)),
        _ => FenceDeviceKind::Manual,
    };
    FenceDeviceConfig { name, kind, timeout, power_timeout, poll_interval }
}

pub(super) const PRIVILEGES: &[(&str, IpmiPrivilege)] = &[
    ("callback", IpmiPrivilege::Callback),
    ("user", IpmiPrivilege::User),
    ("operator", IpmiPrivilege::Operator),
    ("administrator", IpmiPrivilege::Administrator),
];

pub(super) fn read_ipmi(s: &mut Section, raw: &RawDevice) -> IpmiConfig {
    let lanplus = s.or("lanplus", &raw.lanplus, conv_bool, defaults::IPMI_LANPLUS);
    let cipher = s.opt("cipher", &raw.cipher, |v| conv_int(v, 0, u8::MAX.into()).map(|i| i as u8));
    if cipher.is_some() && !lanplus && s.clean("lanplus") {
        s.push("cipher", "a cipher suite applies only to IPMI 2.0: remove cipher or set lanplus = true");
    }
    IpmiConfig {
        host: s.req("host", &raw.host, conv_word, "\"10.0.9.1\" (the BMC)").unwrap_or_default(),
        port: s.or("port", &raw.port, conv_port, defaults::IPMI_PORT),
        username: s.req("username", &raw.username, conv_string, "\"admin\"").unwrap_or_default(),
        password_file: s
            .req("password_file", &raw.password_file, conv_abs_path, "\"/etc/failoverd/bmc.pw\"")
            .unwrap_or_default(),
        lanplus,
        privilege: s.or("privilege", &raw.privilege, |v| conv_choice(v, PRIVILEGES), IpmiPrivilege::Administrator),
        cipher: if lanplus { Some(cipher.unwrap_or(defaults::IPMI_CIPHER)) } else { None },
    }
}

pub(super) const PROFILES: &[(&str, PduProfile)] = &[
    ("apc-rpdu", PduProfile::ApcRpdu),
    ("apc-masterswitch", PduProfile::ApcMasterSwitch),
    ("tripplite", PduProfile::Tripplite),
];

pub(super) const SNMP_VERSIONS: &[(&str, SnmpVersion)] = &[("1", SnmpVersion::V1), ("2c", SnmpVersion::V2c)];

pub(super) fn read_pdu(s: &mut Section, raw: &RawDevice) -> PduSnmpConfig {
    let outlet = |v: &Value| conv_int(v, 1, u32::MAX.into()).map(|i| i as u32);
    let outlets = s.req_list("outlets", &raw.outlets, outlet, "[3, 4] (one outlet per power supply of the node)");
    if s.clean("outlets") && outlets.is_empty() {
        s.push("outlets", "no outlet listed; list every outlet feeding the node, e.g. [3, 4] for two power supplies");
    }
    s.no_repeats("outlets", &outlets);
    PduSnmpConfig {
        host: s.req("host", &raw.host, conv_word, "\"10.0.9.10\" (the PDU)").unwrap_or_default(),
        port: s.or("port", &raw.port, conv_port, defaults::SNMP_PORT),
        community_file: s
            .req("community_file", &raw.community_file, conv_abs_path, "\"/etc/failoverd/pdu.community\"")
            .unwrap_or_default(),
        outlets,
        profile: s.or("profile", &raw.profile, |v| conv_choice(v, PROFILES), PduProfile::ApcRpdu),
        snmp_version: s.or("snmp_version", &raw.snmp_version, |v| conv_choice(v, SNMP_VERSIONS), SnmpVersion::V1),
    }
}

pub(super) fn read_agent(s: &mut Section, raw: &RawDevice) -> AgentConfig {
    let program = s.req("program", &raw.program, conv_program, "\"fence_ipmilan\"").unwrap_or_default();
    let options = s.map("options", &raw.options, check_option_name, conv_option_value);
    let secret_options = s.map("secret_options", &raw.secret_options, check_secret_name, conv_abs_path);
    for key in secret_options.keys().filter(|k| options.contains_key(*k)) {
        s.push(&format!("secret_options.{key}"), format!("`{key}` is also in options; keep it in one place"));
    }
    let plug = s.opt("plug", &raw.plug, |v| match v {
        Value::Integer(i) => Ok(i.to_string()),
        other => conv_word(other),
    });
    AgentConfig { program, options, secret_options, plug }
}

pub(super) fn check_secret_name(key: &str) -> Result<(), String> {
    if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Err(format!("\"{}\" is not an agent option name (letters, digits, _ and -)", key.escape_debug()));
    }
    match key {
        "action" => Err("failoverd sets action= itself; remove this option".to_owned()),
        "plug" | "port" => Err(format!("use the `plug` key of the fence_device instead of {key}")),
        _ => Ok(()),
    }
}

pub(super) fn check_option_name(key: &str) -> Result<(), String> {
    check_secret_name(key)?;
    match key {
        "password" | "passwd" => {
            Err(format!("do not write secrets in the config: put `{key} = \"/path/to/file\"` in secret_options"))
        }
        _ => Ok(()),
    }
}

/// An agent option value: one `key=value` line on the agent's stdin, so no line break.
pub(super) fn conv_option_value(v: &Value) -> Result<String, String> {
    let s = conv_str(v)?;
    if s.contains('\n') || s.contains('\r') {
        return Err("must not contain a line break (options are passed as key=value lines)".to_owned());
    }
    Ok(s.to_owned())
}

// --- [[target]] ----------------------------------------------------------------------------------------------------

pub(super) const TARGET_KEY_OWNERS: &[(&str, &[&str])] = &[("pool", &["zfs"]), ("dataset", &["zfs"]), ("device", &["ldiskfs"])];

pub(super) const TARGET_KINDS: &[(&str, &str)] = &[("zfs", "zfs"), ("ldiskfs", "ldiskfs")];

pub(super) const FSTYPES: &[(&str, Fstype)] = &[("lustre", Fstype::Lustre), ("zfs", Fstype::Zfs)];

/// `fstype = "zfs"`: only on a ZFS target, and without the Lustre-only keys (`lctl_device`, `health_nids`).
pub(super) fn read_fstype(s: &mut Section, raw: &RawTarget, kind: Option<&str>) -> Fstype {
    let fstype = s.or("fstype", &raw.fstype, |v| conv_choice(v, FSTYPES), Fstype::Lustre);
    if fstype == Fstype::Zfs && s.clean("fstype") {
        if kind == Some("ldiskfs") {
            s.push("fstype", "\"zfs\" needs kind = \"zfs\" (a pool and a dataset); an ldiskfs device is mounted as lustre");
        }
        if raw.lctl_device.is_some() {
            s.push("lctl_device", "a target with fstype = \"zfs\" is a plain ZFS dataset, it has no Lustre device: remove lctl_device (or set fstype = \"lustre\")");
        }
        if raw.health_nids.is_some() {
            s.push("health_nids", "a target with fstype = \"zfs\" runs no lctl ping: remove health_nids, or check the service with check_command");
        }
    }
    fstype
}

pub(super) fn build_target(raw: &RawTarget, i: usize, known_nodes: &Known, p: &mut Problems) -> TargetConfig {
    let mut s = Section::new(p, format!("target[{i}]"));
    let name = s.req("name", &raw.name, conv_name, "\"lustre-MDT0000\"").unwrap_or_default();
    let kind = s.req("kind", &raw.kind, |v| conv_choice(v, TARGET_KINDS), "\"zfs\" (or \"ldiskfs\")");
    let present = [("pool", raw.pool.is_some()), ("dataset", raw.dataset.is_some()), ("device", raw.device.is_some())];
    if let Some(kind) = kind {
        s.foreign_keys(kind, &present, TARGET_KEY_OWNERS);
    }
    let fstype = read_fstype(&mut s, raw, kind);
    let kind = match kind {
        Some("zfs") => match (read_zfs(&mut s, raw), fstype) {
            (TargetKind::Zfs { pool, dataset }, Fstype::Zfs) => TargetKind::ZfsDataset { pool, dataset },
            (k, _) => k,
        },
        Some(_) => TargetKind::Ldiskfs {
            device: s.req("device", &raw.device, conv_abs_path, "\"/dev/mapper/mdt0\"").unwrap_or_default(),
        },
        None => TargetKind::Ldiskfs { device: PathBuf::new() },
    };
    let nodes =
        s.req_list("nodes", &raw.nodes, |v| known_nodes.reference(v), "[\"mds1\", \"mds2\"] (most preferred first)");
    if s.clean("nodes") && nodes.is_empty() {
        s.push("nodes", "no node listed; list the nodes that may run this target, most preferred first");
    }
    s.no_repeats("nodes", &nodes);
    let lctl_device = s.opt("lctl_device", &raw.lctl_device, conv_word).unwrap_or_else(|| name.clone());
    TargetConfig {
        name,
        kind,
        mountpoint: s.req("mountpoint", &raw.mountpoint, conv_mountpoint, "\"/lustre/mgt\"").unwrap_or_default(),
        nodes,
        start_order: s.or(
            "start_order",
            &raw.start_order,
            |v| conv_int(v, i32::MIN.into(), i32::MAX.into()).map(|i| i as i32),
            defaults::START_ORDER,
        ),
        lctl_device,
        mount_options: s.opt("mount_options", &raw.mount_options, conv_word),
        health_nids: s.list("health_nids", &raw.health_nids, conv_nid).unwrap_or_default(),
        check_command: read_check_command(&mut s, &raw.check_command),
    }
}

pub(super) fn read_zfs(s: &mut Section, raw: &RawTarget) -> TargetKind {
    let pool = s.req("pool", &raw.pool, conv_pool, "\"mdt0pool\"");
    let dataset = s.req("dataset", &raw.dataset, conv_dataset, "\"mdt0pool/mdt0\"");
    let dataset = match (&pool, dataset) {
        (Some(pool), Some(ds)) if !ds.contains('/') => format!("{pool}/{ds}"),
        (Some(pool), Some(ds)) if !ds.starts_with(&format!("{pool}/")) => {
            s.push(
                "dataset",
                format!("\"{ds}\" is not in pool \"{pool}\": write \"{pool}/<name>\", or just the name below the pool"),
            );
            ds
        }
        (_, ds) => ds.unwrap_or_default(),
    };
    TargetKind::Zfs { pool: pool.unwrap_or_default(), dataset }
}

/// A ZFS pool name: starts with a letter; letters, digits, `_ - . :`.
pub(super) fn conv_pool(v: &Value) -> Result<String, String> {
    let s = conv_str(v)?;
    let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':');
    if !s.starts_with(|c: char| c.is_ascii_alphabetic()) || !s.chars().all(valid) {
        return Err(format!(
            "\"{}\" is not a ZFS pool name: it starts with a letter and holds only letters, digits, _ - . :",
            s.escape_debug()
        ));
    }
    Ok(s.to_owned())
}

/// A dataset name, `pool/a/b` or just `a` (below the pool): components of letters, digits, `_ - . :`.
pub(super) fn conv_dataset(v: &Value) -> Result<String, String> {
    let s = conv_str(v)?;
    let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':');
    if s.split('/').any(|part| part.is_empty() || !part.chars().all(valid)) {
        return Err(format!(
            "\"{}\" is not a ZFS dataset name such as \"mdt0pool/mdt0\" (no snapshot, no empty component)",
            s.escape_debug()
        ));
    }
    Ok(s.to_owned())
}

pub(super) fn conv_mountpoint(v: &Value) -> Result<PathBuf, String> {
    let path = conv_abs_path(v)?;
    if path == Path::new("/") || path.components().any(|c| c == std::path::Component::ParentDir) {
        return Err(format!(
            "\"{}\" cannot be a mount point; use a directory of its own such as \"/lustre/mgt\"",
            path.display()
        ));
    }
    Ok(path)
}

/// A Lustre NID: `address@network`, e.g. `10.0.0.9@tcp`.
pub(super) fn conv_nid(v: &Value) -> Result<String, String> {
    let s = conv_word(v)?;
    match s.split_once('@') {
        Some((addr, net)) if !addr.is_empty() && !net.is_empty() => Ok(s),
        _ => Err(format!("\"{s}\" is not a Lustre NID such as \"10.0.0.9@tcp\" or \"192.168.1.9@o2ib\"")),
    }
}

pub(super) fn read_check_command(s: &mut Section, v: &Raw) -> Option<Vec<String>> {
    let argv = s.list("check_command", v, conv_string)?;
    if s.clean("check_command") {
        match argv.first() {
            None => s.push(
                "check_command",
                "empty command; write the program and its arguments, e.g. [\"/usr/local/bin/check-mgt\"]",
            ),
            Some(program) => {
                if let Err(message) = conv_program(&Value::String(program.clone())) {
                    s.push("check_command[0]", message);
                }
            }
        }
    }
    Some(argv)
}

// --- [witness] -----------------------------------------------------------------------------------------------------

pub(super) fn build_witness(raw: &RawWitness, p: &mut Problems) -> WitnessConfig {
    let mut s = Section::new(p, "witness");
    let address = s.req("address", &raw.address, conv_peer_addr, "\"10.0.0.9:7406\"");
    WitnessConfig { address: address.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0))) }
}
