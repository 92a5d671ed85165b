//! `ipmi`: a BMC driven with `ipmitool` (1.8.19 texts).
//!
//! argv: `ipmitool -I lanplus|lan -H <host> -p <port> -U <user> -E -L <PRIV> [-C <cipher>] -N 1 -R 2
//! chassis power off|on|status`. `-E` makes ipmitool read the password from `IPMI_PASSWORD`, which the
//! driver fills from `password_file`: the password is never on the command line.
//!
//! Answers: `Chassis Power is on|off` (status), `Chassis Power Control: Down/Off` (off),
//! `Chassis Power Control: Up/On` (on), all on stdout with exit 0. Errors go to stderr with exit 1.
//!
//! Error classification. At its default verbosity ipmitool 1.8.19 prints the RAKP details (`RAKP 2 message
//! indicates an error : unauthorized name`, `RAKP 2 HMAC is invalid`) only with `-v`; without them a wrong
//! password and a silent BMC both end in `Error: Unable to establish IPMI v2 / RMCP+ session`. What tells
//! them apart is time: ipmitool waits `-N` seconds for an answer before it retransmits, so a session that
//! failed sooner than that was refused by a BMC that did answer (measured against OpenIPMI's ipmi_sim: a
//! wrong password or user fails in ~50 ms, a silent BMC after 6 s with `-N 1 -R 2`). So:
//! texts that name a refusal (RAKP 2 errors, invalid user name, privilege refused), or a session that failed
//! before the first retransmission → `AuthFailed`; a session that could not be set up without saying why →
//! `Unreachable` (the detail says it may also be the credentials); a command the BMC answered with a
//! completion code → `CommandFailed`. A result with a zero duration (synthesized, not measured) is never
//! judged by its duration.

use std::time::Duration;

use crate::command::{Command, SecretInto, SecretUse};
use crate::config::IpmiConfig;

use super::{FenceError, Judge, PowerState, Reading, Verb};

/// Environment variable `ipmitool -E` reads the password from.
pub const PASSWORD_ENV: &str = "IPMI_PASSWORD";

/// ipmitool's `-N`: seconds it waits for an answer before it retransmits a request.
const RETRANSMIT_SECS: u64 = 1;

/// The ipmitool command for `verb`.
pub fn command(cfg: &IpmiConfig, verb: Verb, timeout: Duration) -> Command {
    let mut argv: Vec<String> = vec![
        "ipmitool".into(),
        "-I".into(),
        if cfg.lanplus { "lanplus" } else { "lan" }.into(),
        "-H".into(),
        cfg.host.clone(),
        "-p".into(),
        cfg.port.to_string(),
        "-U".into(),
        cfg.username.clone(),
        "-E".into(),
        "-L".into(),
        cfg.privilege.as_ipmitool().into(),
    ];
    if let Some(cipher) = cfg.cipher {
        argv.push("-C".into());
        argv.push(cipher.to_string());
    }
    for a in ["-N", &RETRANSMIT_SECS.to_string(), "-R", "2", "chassis", "power", verb.as_str()] {
        argv.push(a.into());
    }
    Command::new(argv, timeout)
        .with_secret(SecretUse { file: cfg.password_file.clone(), into: SecretInto::Env(PASSWORD_ENV.into()) })
}

pub(super) fn validate(cfg: &IpmiConfig) -> Result<(), String> {
    if cfg.host.trim().is_empty() {
        return Err("ipmi host is empty".into());
    }
    if cfg.port == 0 {
        return Err("ipmi port is 0".into());
    }
    Ok(())
}

/// Judge an ipmitool result (normal exit) for `verb`.
pub(super) fn judge(j: &Judge<'_>, cfg: &IpmiConfig, verb: Verb) -> Result<Reading, FenceError> {
    if j.code() != 0 {
        return Err(classify_error(j, cfg));
    }
    match verb {
        Verb::Status => parse_status(&j.result.stdout)
            .map(Reading::Single)
            .ok_or_else(|| j.unparseable(format!("expected `Chassis Power is on|off`, got: {}", j.text()))),
        Verb::Off | Verb::On => {
            let (want, expected) = match verb {
                Verb::Off => (PowerState::Off, "Chassis Power Control: Down/Off"),
                _ => (PowerState::On, "Chassis Power Control: Up/On"),
            };
            if j.result.stdout.lines().any(|l| l.trim() == expected) {
                Ok(Reading::Single(want))
            } else {
                Err(j.unparseable(format!("expected `{expected}`, got: {}", j.text())))
            }
        }
    }
}

/// `Chassis Power is on` → On, `Chassis Power is off` → Off.
fn parse_status(stdout: &str) -> Option<PowerState> {
    stdout.lines().find_map(|line| match line.trim().strip_prefix("Chassis Power is ")?.trim() {
        "on" => Some(PowerState::On),
        "off" => Some(PowerState::Off),
        _ => None,
    })
}

/// Texts in which the BMC refused who we are (lanplus RAKP, IPMI 1.5 session challenge, privilege).
const AUTH_MARKERS: &[&str] = &[
    "RAKP 2 message indicates an error",
    "RAKP 2 HMAC is invalid",
    "RAKP 4 message has invalid integrity check value",
    "unauthorized name",
    "Invalid user name",
    "NULL user name not enabled",
    "Insufficient privilege level",
    "Requested privilege level exceeds limit",
    "Set Session Privilege Level to",
    "invalid role",
    "unauthorized role",
];

/// ipmitool's last words when a session could not be set up (lanplus, lan).
const SESSION_SETUP_FAILED: &[&str] = &[
    "Unable to establish IPMI v2 / RMCP+ session",
    "Unable to establish LAN session",
    "Unable to establish IPMI v1.5 / RMCP session",
];

/// Texts in which no session could be set up, without the BMC having said no.
const SESSION_MARKERS: &[&str] = &[
    "Unable to establish IPMI v2 / RMCP+ session",
    "Unable to establish LAN session",
    "Unable to establish IPMI v1.5 / RMCP session",
    "no response from RAKP",
    "Get Auth Capabilities error",
    "Get Session Challenge command failed",
    "Unable to send IPMI presence ping packet",
    "Address lookup for",
    "Could not open socket",
];

fn classify_error(j: &Judge<'_>, cfg: &IpmiConfig) -> FenceError {
    let all = format!("{}\n{}", j.result.stderr, j.result.stdout);
    let text = j.text();
    let target = format!("{}:{}", cfg.host, cfg.port);

    // The BMC answered the session request but not with parameters we can use.
    if let Some(reason) = all.lines().find_map(|l| l.split("Error in open session response message :").nth(1)) {
        let reason = reason.trim();
        return if ["role", "name", "privilege"].iter().any(|w| reason.contains(w)) {
            j.auth_failed(format!("BMC {target} refused the session: {text}"))
        } else {
            j.failed(format!("BMC {target} refused the session parameters (cipher suite?): {text}"))
        };
    }
    if AUTH_MARKERS.iter().any(|m| all.contains(m)) {
        return j.auth_failed(format!("BMC {target} refused user {:?}: {text}", cfg.username));
    }
    // IPMI 1.5: the BMC answered the challenge but dropped the activation, as it does with a bad auth code.
    if all.lines().any(|l| l.trim() == "Activate Session command failed") {
        return j.auth_failed(format!(
            "BMC {target} answered the session challenge but not the activation (wrong password?): {text}"
        ));
    }
    // No answer at all cannot end before ipmitool's first retransmission timeout: a session set-up that failed
    // sooner was refused by a BMC that answered, the way a wrong user name or password shows at default
    // verbosity.
    let took = j.result.duration;
    if SESSION_SETUP_FAILED.iter().any(|m| all.contains(m))
        && took > Duration::ZERO
        && took < Duration::from_secs(RETRANSMIT_SECS)
        && !all.contains("no response from RAKP")
    {
        return j.auth_failed(format!(
            "BMC {target} answered but refused the session of user {:?} after {} ms, before ipmitool's first \
             retransmission (wrong username or password?): {text}",
            cfg.username,
            took.as_millis()
        ));
    }
    if SESSION_MARKERS.iter().any(|m| all.contains(m)) {
        return j.unreachable(format!(
            "no IPMI session with {target} (BMC unreachable, or credentials refused: ipmitool does not say \
             which without -v): {text}"
        ));
    }
    // In a session, the BMC stopped answering the command itself.
    if all.contains("Unable to get Chassis Power Status") || all.contains("Unable to set Chassis Power Control") {
        return j.unreachable(format!("BMC {target} did not answer the command: {text}"));
    }
    // The BMC answered the command with a completion code.
    if all.contains("Get Chassis Power Status failed") || all.contains("Set Chassis Power Control to") {
        return j.failed(text);
    }
    j.failed(format!("exit {}: {text}", j.code()))
}
