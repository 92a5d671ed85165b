//! Digests carried in heartbeats, and the settings compared between nodes.

use super::*;

/// One setting (or a table of them) as `path = text` lines in `out`; a serialized `Duration` reads as in the file.
pub(super) fn flatten_setting(path: &str, v: &serde_json::Value, out: &mut std::collections::BTreeMap<String, String>) {
    use serde_json::Value;
    match v {
        Value::Object(o) if o.len() == 2 && o.contains_key("secs") && o.contains_key("nanos") => {
            let d = Duration::new(o["secs"].as_u64().unwrap_or(0), o["nanos"].as_u64().unwrap_or(0) as u32);
            out.insert(path.to_string(), humantime::format_duration(d).to_string());
        }
        Value::Object(o) => {
            for (k, v) in o {
                if path.ends_with(']') && k == "name" {
                    continue;
                }
                flatten_setting(&format!("{path}.{k}"), v, out);
            }
        }
        Value::Null => {}
        Value::String(s) => {
            out.insert(path.to_string(), s.clone());
        }
        other => {
            out.insert(path.to_string(), other.to_string());
        }
    }
}

/// An agent option whose value may be a secret (see [`Config::agreement_values`]).
pub(super) fn agreement_secret(key: &str) -> bool {
    let Some((_, option)) = key.split_once(".options.") else { return false };
    let option = option.to_ascii_lowercase();
    option == "community" || ["pass", "secret", "key", "token", "auth", "priv"].iter().any(|w| option.contains(w))
}

/// One cluster-wide setting on which configurations differ: its key (as [`Config::cluster_wide_values`] names
/// it) and each configuration's value, in the order they were given (`None`: not set in that one).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingDiff {
    pub key: String,
    pub values: Vec<Option<String>>,
}

/// Every key on which the settings of several configurations (each [`Config::cluster_wide_values`] or
/// [`Config::agreement_values`]) differ, in key order. The one comparison behind both `failoverd check-config A
/// B ...` and the daemons' runtime agreement (`config_mismatch`).
pub fn diff_settings(each: &[&BTreeMap<String, String>]) -> Vec<SettingDiff> {
    let keys: BTreeSet<&String> = each.iter().flat_map(|v| v.keys()).collect();
    keys.into_iter()
        .filter_map(|key| {
            let values: Vec<Option<String>> = each.iter().map(|v| v.get(key).cloned()).collect();
            (!values.windows(2).all(|w| w[0] == w[1])).then(|| SettingDiff { key: key.clone(), values })
        })
        .collect()
}

/// The cluster-wide part of a configuration, in the canonical form hashed by [`Config::digest`].
#[derive(Serialize)]
pub(super) struct ClusterWide<'a> {
    pub(super) name: &'a str,
    pub(super) links: &'a [String],
    pub(super) heartbeat_interval: Duration,
    pub(super) dead_after: Duration,
    pub(super) fence_delay: Duration,
    pub(super) wait_for_all: bool,
    pub(super) stall_threshold: Duration,
    pub(super) monitor_interval: Duration,
    pub(super) monitor_failures: u32,
    pub(super) import_timeout: Duration,
    pub(super) mount_timeout: Duration,
    pub(super) command_timeout: Duration,
    pub(super) fence_retry_initial: Duration,
    pub(super) fence_retry_max: Duration,
    /// Whether a disk heartbeat is configured (the path is node-local). Left out when false, so that the
    /// digests of configurations without it stay those of earlier versions.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(super) disk_heartbeat: bool,
    pub(super) nodes: &'a [NodeConfig],
    pub(super) fence_devices: &'a [FenceDeviceConfig],
    pub(super) targets: &'a [TargetConfig],
    pub(super) witness: Option<&'a WitnessConfig>,
}

impl<'a> ClusterWide<'a> {
    pub(super) fn of(config: &'a Config) -> ClusterWide<'a> {
        // No `..`: a new field of ClusterConfig must be classified here as cluster-wide or node-local.
        let ClusterConfig {
            name,
            key_file: _,
            next_key_file: _,
            links,
            heartbeat_interval,
            dead_after,
            fence_delay,
            wait_for_all,
            stall_threshold,
            state_dir: _,
            control_socket: _,
            monitor_interval,
            monitor_failures,
            import_timeout,
            mount_timeout,
            command_timeout,
            fence_retry_initial,
            fence_retry_max,
            notify: _,
            metrics_listen: _,
            lock_memory: _,
            control_allowed_uids: _,
            recovery_budget: _,
            disk_heartbeat,
        } = &config.cluster;
        ClusterWide {
            name,
            links,
            heartbeat_interval: *heartbeat_interval,
            dead_after: *dead_after,
            fence_delay: *fence_delay,
            wait_for_all: *wait_for_all,
            stall_threshold: *stall_threshold,
            monitor_interval: *monitor_interval,
            monitor_failures: *monitor_failures,
            import_timeout: *import_timeout,
            mount_timeout: *mount_timeout,
            command_timeout: *command_timeout,
            fence_retry_initial: *fence_retry_initial,
            fence_retry_max: *fence_retry_max,
            disk_heartbeat: disk_heartbeat.is_some(),
            nodes: &config.nodes,
            fence_devices: &config.fence_devices,
            targets: &config.targets,
            witness: config.witness.as_ref(),
        }
    }
}

/// SHA-256 over a domain label and the JSON form of `value`.
pub(super) fn sha256_of<T: Serialize + ?Sized>(domain: &str, value: &T) -> [u8; 32] {
    // Serializing plain structs, strings and numbers to JSON only fails on a non-UTF-8 path, which a config
    // read from TOML cannot hold.
    let json = serde_json::to_vec(value).expect("configuration values serialize to JSON");
    let mut hasher = Sha256::new();
    hasher.update(domain.as_bytes());
    hasher.update([0u8]);
    hasher.update(&json);
    hasher.finalize().into()
}
