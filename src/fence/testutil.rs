//! Builders shared by the fence tests.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::command::{CommandResult, Exit};
use crate::config::{
    AgentConfig, FenceDeviceConfig, FenceDeviceKind, FencingMode, IpmiConfig, IpmiPrivilege, NodeConfig, PduProfile,
    PduSnmpConfig, SnmpVersion,
};

pub fn node(name: &str) -> NodeConfig {
    NodeConfig {
        name: name.into(),
        addresses: vec!["10.0.0.2:7400".parse().unwrap()],
        hostid: 0xa1a1_a1a1,
        hostname: None,
        fence_priority: 1,
        fence_levels: vec![vec!["dev".into()]],
        fencing: FencingMode::Devices,
    }
}

pub fn device(name: &str, kind: FenceDeviceKind) -> FenceDeviceConfig {
    FenceDeviceConfig {
        name: name.into(),
        kind,
        timeout: Duration::from_secs(10),
        power_timeout: Duration::from_secs(20),
        poll_interval: Duration::from_secs(1),
    }
}

pub fn ipmi_cfg() -> IpmiConfig {
    IpmiConfig {
        host: "10.0.1.2".into(),
        port: 623,
        username: "admin".into(),
        password_file: PathBuf::from("/etc/failoverd/bmc-mds2.pw"),
        lanplus: true,
        privilege: IpmiPrivilege::Administrator,
        cipher: Some(3),
    }
}

pub fn pdu_cfg(outlets: &[u32]) -> PduSnmpConfig {
    PduSnmpConfig {
        host: "10.0.2.1".into(),
        port: 161,
        community_file: PathBuf::from("/etc/failoverd/pdu.community"),
        outlets: outlets.to_vec(),
        profile: PduProfile::ApcRpdu,
        snmp_version: SnmpVersion::V1,
    }
}

pub fn agent_cfg() -> AgentConfig {
    let mut options = BTreeMap::new();
    options.insert("lanplus".to_string(), "1".to_string());
    options.insert("ip".to_string(), "10.0.1.2".to_string());
    options.insert("username".to_string(), "admin".to_string());
    options.insert("cipher".to_string(), "3".to_string());
    let mut secret_options = BTreeMap::new();
    secret_options.insert("password".to_string(), PathBuf::from("/etc/failoverd/bmc-mds2.pw"));
    AgentConfig { program: "fence_ipmilan".into(), options, secret_options, plug: None }
}

pub fn ok(stdout: &str) -> CommandResult {
    CommandResult::exited(0, stdout, "")
}

pub fn exit(code: i32, stdout: &str, stderr: &str) -> CommandResult {
    CommandResult::exited(code, stdout, stderr)
}

pub fn spawn_failed(why: &str) -> CommandResult {
    CommandResult {
        exit: Exit::SpawnFailed(why.into()),
        stdout: String::new(),
        stderr: String::new(),
        duration: Duration::ZERO,
    }
}
