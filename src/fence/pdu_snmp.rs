//! `pdu-snmp`: switched PDU outlets driven with net-snmp's `snmpset` / `snmpget`.
//!
//! off/on: ONE `snmpset -v1|-v2c -m "" -Oqv -t 2 -r 1 udp:<host>:<port> <ctl.N1> i <v> <ctl.N2> i <v> ...`
//! (every outlet of the node in one PDU request; SNMP applies a set request as a whole).
//! status: ONE `snmpget -v1|-v2c -m "" -Oqv -t 2 -r 1 udp:<host>:<port> <st.N1> <st.N2> ...`, whose stdout
//! holds one value per line, in order. A host with a `:` (IPv6) is written `udp6:[<host>]:<port>`.
//!
//! The community never travels on argv (`-c` would show in `ps`): the driver writes it to a private
//! `snmp.conf` as `defCommunity <community>` and points `SNMPCONFPATH` at that directory.
//!
//! OIDs and values (fence_apc_snmp's tables): APC rPDU control `.1.3.6.1.4.1.318.1.1.12.3.3.1.1.4.N`,
//! status `.1.3.6.1.4.1.318.1.1.12.3.5.1.1.4.N` (1 on, 2 off); APC MasterSwitch `.1.3.6.1.4.1.318.1.1.4.4.2.1.3.N`
//! for both (1 on, 2 off); Tripplite control `.1.3.6.1.4.1.850.10.2.3.5.1.4.1.N`, status
//! `.1.3.6.1.4.1.850.10.2.3.5.1.2.1.N` (2 on, 1 off).
//!
//! Errors: `Timeout: No Response from udp:h:p.` (exit 1) is `Unreachable`: an SNMP agent drops a request
//! with an unknown community without a word, so this also is what a wrong community looks like.
//! `Error in packet[.]` / `Reason: ...` / `Failed object: ...` (exit 2) names the outlet when it can.

use std::time::Duration;

use crate::command::{Command, SecretInto, SecretUse};
use crate::config::{PduProfile, PduSnmpConfig, SnmpVersion};

use super::{FenceError, Judge, PowerState, Reading, Verb};

/// The environment variable, file name and line prefix of the community's private config directory.
pub const CONF_ENV: &str = "SNMPCONFPATH";
pub const CONF_FILE: &str = "snmp.conf";
pub const CONF_PREFIX: &str = "defCommunity ";

/// Outlet control OID (the one `snmpset` writes) of `outlet`.
pub fn control_oid(profile: PduProfile, outlet: u32) -> String {
    match profile {
        PduProfile::ApcRpdu => format!(".1.3.6.1.4.1.318.1.1.12.3.3.1.1.4.{outlet}"),
        PduProfile::ApcMasterSwitch => format!(".1.3.6.1.4.1.318.1.1.4.4.2.1.3.{outlet}"),
        PduProfile::Tripplite => format!(".1.3.6.1.4.1.850.10.2.3.5.1.4.1.{outlet}"),
    }
}

/// Outlet status OID (the one `snmpget` reads) of `outlet`.
pub fn status_oid(profile: PduProfile, outlet: u32) -> String {
    match profile {
        PduProfile::ApcRpdu => format!(".1.3.6.1.4.1.318.1.1.12.3.5.1.1.4.{outlet}"),
        PduProfile::ApcMasterSwitch => format!(".1.3.6.1.4.1.318.1.1.4.4.2.1.3.{outlet}"),
        PduProfile::Tripplite => format!(".1.3.6.1.4.1.850.10.2.3.5.1.2.1.{outlet}"),
    }
}

/// The integer that means `state`, for both control and status, in `profile`.
pub fn state_value(profile: PduProfile, state: PowerState) -> u32 {
    match (profile, state) {
        (PduProfile::ApcRpdu | PduProfile::ApcMasterSwitch, PowerState::On) => 1,
        (PduProfile::ApcRpdu | PduProfile::ApcMasterSwitch, PowerState::Off) => 2,
        (PduProfile::Tripplite, PowerState::On) => 2,
        (PduProfile::Tripplite, PowerState::Off) => 1,
    }
}

fn value_state(profile: PduProfile, value: u32) -> Option<PowerState> {
    [PowerState::On, PowerState::Off].into_iter().find(|s| state_value(profile, *s) == value)
}

/// `udp:<host>:<port>` (or `udp6:[<host>]:<port>` for an IPv6 address).
pub fn peer(cfg: &PduSnmpConfig) -> String {
    if cfg.host.contains(':') {
        let host = cfg.host.trim_start_matches('[').trim_end_matches(']');
        format!("udp6:[{host}]:{}", cfg.port)
    } else {
        format!("udp:{}:{}", cfg.host, cfg.port)
    }
}

/// The snmpset (off/on) or snmpget (status) command covering every outlet of `cfg`.
pub fn command(cfg: &PduSnmpConfig, verb: Verb, timeout: Duration) -> Command {
    let tool = if verb == Verb::Status { "snmpget" } else { "snmpset" };
    let version = match cfg.snmp_version {
        SnmpVersion::V1 => "-v1",
        SnmpVersion::V2c => "-v2c",
    };
    let mut argv: Vec<String> =
        [tool, version, "-m", "", "-Oqv", "-t", "2", "-r", "1"].iter().map(|s| s.to_string()).collect();
    argv.push(peer(cfg));
    for &outlet in &cfg.outlets {
        match verb {
            Verb::Status => argv.push(status_oid(cfg.profile, outlet)),
            Verb::Off | Verb::On => {
                let want = if verb == Verb::Off { PowerState::Off } else { PowerState::On };
                argv.push(control_oid(cfg.profile, outlet));
                argv.push("i".into());
                argv.push(state_value(cfg.profile, want).to_string());
            }
        }
    }
    Command::new(argv, timeout).with_secret(SecretUse {
        file: cfg.community_file.clone(),
        into: SecretInto::ConfDir { env_var: CONF_ENV.into(), file_name: CONF_FILE.into(), prefix: CONF_PREFIX.into() },
    })
}

pub(super) fn validate(cfg: &PduSnmpConfig) -> Result<(), String> {
    if cfg.host.trim().is_empty() {
        return Err("pdu host is empty".into());
    }
    if cfg.port == 0 {
        return Err("pdu port is 0".into());
    }
    // An empty outlet list would "confirm" off without cutting anything.
    if cfg.outlets.is_empty() {
        return Err("pdu has no outlets: nothing would be switched off".into());
    }
    if cfg.outlets.contains(&0) {
        return Err("pdu outlet 0 does not exist (outlets count from 1)".into());
    }
    Ok(())
}

/// Judge an snmpset / snmpget result (normal exit).
pub(super) fn judge(j: &Judge<'_>, cfg: &PduSnmpConfig, verb: Verb) -> Result<Reading, FenceError> {
    if j.code() != 0 {
        return Err(classify_error(j, cfg, verb));
    }
    match verb {
        Verb::Off | Verb::On => {
            let want = if verb == Verb::Off { PowerState::Off } else { PowerState::On };
            Ok(Reading::Outlets(cfg.outlets.iter().map(|&n| (n, want)).collect()))
        }
        Verb::Status => parse_status(j, cfg).map(Reading::Outlets),
    }
}

fn parse_status(j: &Judge<'_>, cfg: &PduSnmpConfig) -> Result<Vec<(u32, PowerState)>, FenceError> {
    let lines: Vec<&str> = j.result.stdout.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    if lines.len() != cfg.outlets.len() {
        return Err(j.unparseable(format!(
            "expected {} value(s) (outlet(s) {}), got {} line(s): {}",
            cfg.outlets.len(),
            super::join_outlets(&cfg.outlets),
            lines.len(),
            j.text()
        )));
    }
    let mut out = Vec::with_capacity(lines.len());
    for (&outlet, line) in cfg.outlets.iter().zip(lines) {
        if line.starts_with("No Such Instance") || line.starts_with("No Such Object") {
            return Err(j.failed(format!("outlet {outlet}: {line} (no such outlet on this PDU?)")));
        }
        let raw = line.strip_prefix("INTEGER:").unwrap_or(line).trim();
        let state = raw.parse::<u32>().ok().and_then(|v| value_state(cfg.profile, v));
        match state {
            Some(s) => out.push((outlet, s)),
            None => {
                return Err(j.unparseable(format!(
                    "outlet {outlet}: status {line:?} is neither on ({}) nor off ({})",
                    state_value(cfg.profile, PowerState::On),
                    state_value(cfg.profile, PowerState::Off)
                )))
            }
        }
    }
    Ok(out)
}

/// The outlet whose OID net-snmp printed after `Failed object:`, in whatever form (`.1.3.6...`,
/// `iso.3.6...`, `SNMPv2-SMI::enterprises.318...`).
fn failed_outlet(stderr: &str, cfg: &PduSnmpConfig, verb: Verb) -> Option<u32> {
    let printed = stderr.lines().find_map(|l| l.trim().strip_prefix("Failed object:"))?.trim();
    cfg.outlets.iter().copied().find(|&n| {
        let oid = if verb == Verb::Status { status_oid(cfg.profile, n) } else { control_oid(cfg.profile, n) };
        // Compare from the enterprise number on: ".1.3.6.1.4.1." is spelled in several ways.
        let tail = oid.trim_start_matches(".1.3.6.1.4.1.");
        printed.strip_suffix(tail).is_some_and(|head| head.ends_with('.'))
    })
}

fn classify_error(j: &Judge<'_>, cfg: &PduSnmpConfig, verb: Verb) -> FenceError {
    let stderr = &j.result.stderr;
    let text = j.text();
    let target = peer(cfg);
    if stderr.contains("Timeout: No Response from") {
        return j.unreachable(format!(
            "no answer from {target} (PDU unreachable or wrong community: an SNMP agent drops requests \
             with an unknown community): {text}"
        ));
    }
    if stderr.contains("Unknown host") {
        return j.unreachable(text);
    }
    if stderr.contains("Authentication failure") {
        return j.auth_failed(text);
    }
    if stderr.contains("Error in packet") {
        let reason = stderr.lines().find_map(|l| l.trim().strip_prefix("Reason:")).unwrap_or("").trim();
        let outlet = match failed_outlet(stderr, cfg, verb) {
            Some(n) => format!("outlet {n}"),
            None => format!("outlet(s) {}", super::join_outlets(&cfg.outlets)),
        };
        if reason.contains("noSuchName") {
            let why = if verb == Verb::Status {
                "no such outlet on this PDU"
            } else {
                "no such outlet, or the community may only read (SNMPv1 says noSuchName for both)"
            };
            return j.failed(format!("{outlet}: {why}: {text}"));
        }
        if ["authorizationError", "noAccess", "(readOnly)"].iter().any(|r| reason.contains(r)) {
            return j.auth_failed(format!("{target} refused the community for {outlet}: {text}"));
        }
        return j.failed(format!("{outlet}: {text}"));
    }
    j.failed(format!("exit {}: {text}", j.code()))
}
