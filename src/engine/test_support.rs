//! Test helpers: a two-node MDS pair config built in code, and canned tool answers.

use std::path::PathBuf;
use std::time::Duration;

use crate::command::CommandResult;
use crate::protocol::{Heartbeat, TargetView};
use crate::config::*;

pub fn cluster() -> ClusterConfig {
    ClusterConfig {
        name: "lfs".into(),
        key_file: PathBuf::from("/etc/failoverd/key"),
        next_key_file: None,
        links: vec!["ring0".into(), "ring1".into()],
        heartbeat_interval: Duration::from_millis(250),
        dead_after: Duration::from_secs(3),
        fence_delay: Duration::from_secs(10),
        wait_for_all: true,
        stall_threshold: Duration::from_millis(1500),
        state_dir: PathBuf::from("/var/lib/failoverd"),
        control_socket: PathBuf::from("/run/failoverd/control.sock"),
        monitor_interval: Duration::from_secs(10),
        monitor_failures: 3,
        import_timeout: Duration::from_secs(120),
        mount_timeout: Duration::from_secs(300),
        command_timeout: Duration::from_secs(60),
        fence_retry_initial: Duration::from_secs(2),
        fence_retry_max: Duration::from_secs(60),
        notify: None,
        metrics_listen: None,
        lock_memory: false,
        control_allowed_uids: vec![],
        recovery_budget: Duration::from_secs(900),
        disk_heartbeat: None,
    }
}

pub fn node(name: &str, i: u8, prio: u32, hostid: u32) -> NodeConfig {
    NodeConfig {
        name: name.into(),
        addresses: vec![format!("10.0.0.{i}:7405").parse().unwrap(), format!("10.1.0.{i}:7405").parse().unwrap()],
        hostid,
        hostname: None,
        fence_priority: prio,
        fence_levels: vec![vec![format!("{name}-ipmi")], vec![format!("{name}-pdu")]],
        fencing: FencingMode::Devices,
    }
}

pub fn devices(name: &str, i: u8) -> Vec<FenceDeviceConfig> {
    let timing = |d| FenceDeviceConfig {
        name: String::new(),
        kind: d,
        timeout: Duration::from_secs(20),
        power_timeout: Duration::from_secs(20),
        poll_interval: Duration::from_secs(1),
    };
    vec![
        FenceDeviceConfig {
            name: format!("{name}-ipmi"),
            ..timing(FenceDeviceKind::Ipmi(IpmiConfig {
                host: format!("10.9.0.{i}"),
                port: 623,
                username: "admin".into(),
                password_file: PathBuf::from("/etc/failoverd/ipmi.pw"),
                lanplus: true,
                privilege: IpmiPrivilege::Administrator,
                cipher: Some(3),
            }))
        },
        FenceDeviceConfig {
            name: format!("{name}-pdu"),
            ..timing(FenceDeviceKind::PduSnmp(PduSnmpConfig {
                host: "10.9.1.1".into(),
                port: 161,
                community_file: PathBuf::from("/etc/failoverd/pdu.community"),
                outlets: vec![u32::from(i) * 2 - 1, u32::from(i) * 2],
                profile: PduProfile::ApcRpdu,
                snmp_version: SnmpVersion::V1,
            }))
        },
    ]
}

pub fn target(name: &str, pool: &str, ds: &str, order: i32, lctl: &str) -> TargetConfig {
    TargetConfig {
        name: name.into(),
        kind: TargetKind::Zfs { pool: pool.into(), dataset: format!("{pool}/{ds}") },
        mountpoint: PathBuf::from(format!("/lustre/{ds}")),
        nodes: vec!["mds1".into(), "mds2".into()],
        start_order: order,
        lctl_device: lctl.into(),
        mount_options: None,
        health_nids: vec![],
        check_command: None,
    }
}

/// mds1 (priority 10, hostid a1a1a1a1) and mds2 (priority 5, hostid b2b2b2b2); MGT and MDT0000.
pub fn mds_pair() -> Config {
    let mut fence_devices = devices("mds1", 1);
    fence_devices.extend(devices("mds2", 2));
    Config {
        cluster: cluster(),
        nodes: vec![node("mds1", 1, 10, 0xa1a1_a1a1), node("mds2", 2, 5, 0xb2b2_b2b2)],
        fence_devices,
        targets: vec![target("MGT", "mgspool", "mgt", 0, "MGS"), target("lustre-MDT0000", "mdt0pool", "mdt0", 1, "lustre-MDT0000")],
        witness: None,
    }
}

pub fn ok(stdout: &str) -> CommandResult {
    CommandResult::exited(0, stdout, "")
}

pub fn fail(code: i32, stderr: &str) -> CommandResult {
    CommandResult::exited(code, "", stderr)
}

/// A heartbeat of a discovered, quorate peer on `link`, holding `targets`.
pub fn heartbeat(link: u8, targets: Vec<TargetView>) -> Heartbeat {
    Heartbeat {
        link,
        peers: vec![],
        quorate: true,
        discovered: true,
        leaving: false,
        maintenance: false,
        maintenance_epoch: 0,
        standby: vec![],
        standby_epoch: 0,
        fence_me: false,
        config_digest: [0; 16],
        targets,
        target_digests: vec![],
        move_requests: vec![],
        fenced: vec![],
    }
}
