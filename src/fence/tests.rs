//! Hand-stepped tests of every device kind: exact commands, every outcome, no clock, no sleeps.

use std::path::PathBuf;
use std::time::Duration;

use super::testutil::*;
use super::*;
use crate::command::{SecretInto, SecretUse};
use crate::config::{FenceDeviceKind, PduProfile, SnmpVersion};

fn t(ms: u64) -> Time {
    Time::from_millis(ms)
}

fn argv(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[track_caller]
fn expect_run(step: OpStep) -> Command {
    match step {
        OpStep::Run(c) => c,
        other => panic!("expected Run, got {other:?}"),
    }
}

#[track_caller]
fn expect_wait(step: OpStep) -> Time {
    match step {
        OpStep::WaitUntil(at) => at,
        other => panic!("expected WaitUntil, got {other:?}"),
    }
}

#[track_caller]
fn expect_done(step: OpStep) -> DeviceOutcome {
    match step {
        OpStep::Done(o) => o,
        other => panic!("expected Done, got {other:?}"),
    }
}

#[track_caller]
fn expect_failed(step: OpStep) -> FenceError {
    match expect_done(step) {
        DeviceOutcome::Failed(e) => e,
        other => panic!("expected Failed, got {other:?}"),
    }
}

fn ipmi_dev() -> FenceDeviceConfig {
    device("bmc-mds2", FenceDeviceKind::Ipmi(ipmi_cfg()))
}

fn ipmi_argv(verb: &str) -> Vec<String> {
    argv(&[
        "ipmitool",
        "-I",
        "lanplus",
        "-H",
        "10.0.1.2",
        "-p",
        "623",
        "-U",
        "admin",
        "-E",
        "-L",
        "ADMINISTRATOR",
        "-C",
        "3",
        "-N",
        "1",
        "-R",
        "2",
        "chassis",
        "power",
        verb,
    ])
}

fn ipmi_secret() -> SecretUse {
    SecretUse { file: PathBuf::from("/etc/failoverd/bmc-mds2.pw"), into: SecretInto::Env("IPMI_PASSWORD".into()) }
}

// ---------------------------------------------------------------------------------------------- ipmi

#[test]
fn ipmi_off_polls_status_until_off() {
    let dev = ipmi_dev();
    let (mut op, step) = DeviceOp::start(&dev, &node("mds2"), FenceAction::Off, t(0));
    assert_eq!((op.device_name(), op.victim(), op.action()), ("bmc-mds2", "mds2", FenceAction::Off));

    let off = expect_run(step);
    assert_eq!(off.argv, ipmi_argv("off"));
    assert_eq!(off.secrets, vec![ipmi_secret()]);
    assert_eq!(off.stdin, None);
    assert!(off.env.is_empty());
    assert_eq!(off.timeout, Duration::from_secs(10));

    // off done at 500 ms: status at once.
    let status = expect_run(op.on_result(t(500), &ok("Chassis Power Control: Down/Off\n")));
    assert_eq!(status.argv, ipmi_argv("status"));
    assert_eq!(status.secrets, vec![ipmi_secret()]);

    // Still on: wait poll_interval (1 s) and read again.
    assert_eq!(expect_wait(op.on_result(t(550), &ok("Chassis Power is on\n"))), t(1550));
    let again = expect_run(op.on_wake(t(1550)));
    assert_eq!(again.argv, ipmi_argv("status"));
    assert_eq!(
        expect_done(op.on_result(t(1600), &ok("Chassis Power is off\n"))),
        DeviceOutcome::Confirmed(PowerState::Off)
    );
    assert_eq!(op.outcome(), Some(&DeviceOutcome::Confirmed(PowerState::Off)));
}

#[test]
fn ipmi_password_never_on_argv_or_stdin() {
    let dev = ipmi_dev();
    for verb in [Verb::Off, Verb::On, Verb::Status] {
        let cmd = device_command(&dev, verb).unwrap();
        assert!(!cmd.argv.iter().any(|a| a == "-P" || a == "-f" || a.contains("bmc-mds2.pw")), "{:?}", cmd.argv);
        assert!(cmd.argv.contains(&"-E".to_string()));
        assert_eq!(cmd.stdin, None);
        assert!(cmd.env.is_empty(), "the password is a secret, never a literal env entry");
        assert_eq!(cmd.secrets, vec![ipmi_secret()]);
    }
}

#[test]
fn ipmi_lan_without_cipher() {
    let mut cfg = ipmi_cfg();
    cfg.lanplus = false;
    cfg.cipher = None;
    cfg.privilege = crate::config::IpmiPrivilege::Operator;
    let dev = device("bmc", FenceDeviceKind::Ipmi(cfg));
    let cmd = device_command(&dev, Verb::Status).unwrap();
    assert_eq!(
        cmd.argv,
        argv(&[
            "ipmitool", "-I", "lan", "-H", "10.0.1.2", "-p", "623", "-U", "admin", "-E", "-L", "OPERATOR", "-N", "1",
            "-R", "2", "chassis", "power", "status"
        ])
    );
}

#[test]
fn ipmi_still_on_at_power_timeout_fails() {
    let dev = ipmi_dev(); // power_timeout 20 s, poll 1 s
    let (mut op, step) = DeviceOp::start(&dev, &node("mds2"), FenceAction::Off, t(0));
    expect_run(step);
    let mut now = t(1000); // off completes at 1 s: deadline 21 s
    let mut step = op.on_result(now, &ok("Chassis Power Control: Down/Off\n"));
    let mut polls = 0;
    loop {
        expect_run(step);
        polls += 1;
        now = now + Duration::from_millis(40);
        match op.on_result(now, &ok("Chassis Power is on\n")) {
            OpStep::WaitUntil(at) => {
                assert!(at <= t(21_000), "never sleeps past the deadline");
                now = at;
                step = op.on_wake(now);
            }
            OpStep::Done(DeviceOutcome::Failed(FenceError::StillOn { device, waited })) => {
                assert_eq!(device, "bmc-mds2");
                assert!(waited >= Duration::from_secs(20), "{waited:?}");
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(polls < 100);
    }
    assert!(polls >= 20, "polled about every second: {polls}");
}

#[test]
fn ipmi_timed_out_off_is_a_failure() {
    let (mut op, _) = DeviceOp::start(&ipmi_dev(), &node("mds2"), FenceAction::Off, t(0));
    let e = expect_failed(op.on_result(t(10_000), &CommandResult::timed_out()));
    assert_eq!(e, FenceError::TimedOut { device: "bmc-mds2".into(), command: ipmi_argv("off").join(" ") });
}

#[test]
fn ipmi_timed_out_status_is_a_failure() {
    let (mut op, _) = DeviceOp::start(&ipmi_dev(), &node("mds2"), FenceAction::Status, t(0));
    assert!(matches!(expect_failed(op.on_result(t(10_000), &CommandResult::timed_out())), FenceError::TimedOut { .. }));
}

fn ipmi_off_error(stderr: &str) -> FenceError {
    let (mut op, _) = DeviceOp::start(&ipmi_dev(), &node("mds2"), FenceAction::Off, t(0));
    expect_failed(op.on_result(t(100), &exit(1, "", stderr)))
}

#[test]
fn ipmi_wrong_password_is_auth_failed() {
    for stderr in [
        "RAKP 2 message indicates an error : unauthorized name\nError: Unable to establish IPMI v2 / RMCP+ session\n",
        "> RAKP 2 HMAC is invalid\nError: Unable to establish IPMI v2 / RMCP+ session\n",
        "Invalid user name\nError: Unable to establish LAN session\n",
        "Set Session Privilege Level to ADMINISTRATOR failed: Requested privilege level exceeds limit\n\
         Error: Unable to establish IPMI v2 / RMCP+ session\n",
    ] {
        match ipmi_off_error(stderr) {
            FenceError::AuthFailed { device, detail } => {
                assert_eq!(device, "bmc-mds2");
                assert!(detail.contains("10.0.1.2:623"), "{detail}");
            }
            other => panic!("{stderr:?} gave {other:?}"),
        }
    }
}

#[test]
fn ipmi_no_session_is_unreachable() {
    for stderr in [
        "Error: Unable to establish IPMI v2 / RMCP+ session\n",
        "> Error: no response from RAKP 1 message\nError: Unable to establish IPMI v2 / RMCP+ session\n",
        "Error: Unable to establish LAN session\n",
        "Address lookup for bmc-nowhere failed\n",
    ] {
        match ipmi_off_error(stderr) {
            FenceError::Unreachable { detail, .. } => {
                let first = stderr.lines().next().unwrap().trim();
                assert!(detail.contains(first), "{detail}");
            }
            other => panic!("{stderr:?} gave {other:?}"),
        }
    }
}

#[test]
fn ipmi_session_refused_before_the_first_retransmission_is_auth_failed() {
    let session = "Error: Unable to establish IPMI v2 / RMCP+ session\n";
    let judged = |ms: u64, stderr: &str| {
        let (mut op, _) = DeviceOp::start(&ipmi_dev(), &node("mds2"), FenceAction::Off, t(0));
        let mut r = exit(1, "", stderr);
        r.duration = Duration::from_millis(ms);
        expect_failed(op.on_result(t(100), &r))
    };
    // ipmi_sim with a wrong password: refused in ~50 ms, long before ipmitool's 1 s retransmission timeout.
    match judged(48, session) {
        FenceError::AuthFailed { device, detail } => {
            assert_eq!(device, "bmc-mds2");
            assert!(detail.contains("10.0.1.2:623") && detail.contains("48 ms") && detail.contains("password"), "{detail}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(judged(48, "Error: Unable to establish LAN session\n"), FenceError::AuthFailed { .. }));
    // A silent BMC: ipmitool gave up after its retransmissions.
    assert!(matches!(judged(6_004, session), FenceError::Unreachable { .. }));
    // Fast, but not a refusal: no answer to RAKP 1, a name that does not resolve.
    assert!(matches!(
        judged(40, "> Error: no response from RAKP 1 message\nError: Unable to establish IPMI v2 / RMCP+ session\n"),
        FenceError::Unreachable { .. }
    ));
    assert!(matches!(judged(3, "Address lookup for bmc-nowhere failed\n"), FenceError::Unreachable { .. }));
}

#[test]
fn ipmi_completion_code_and_odd_answers() {
    let e = ipmi_off_error("Set Chassis Power Control to Down/Off failed: Unspecified error\n");
    assert!(matches!(&e, FenceError::CommandFailed { detail, .. } if detail.contains("Unspecified error")), "{e:?}");
    let e = ipmi_off_error(
        "Error in open session response message : invalid authentication algorithm\n\n\
         Error: Unable to establish IPMI v2 / RMCP+ session\n",
    );
    assert!(matches!(e, FenceError::CommandFailed { .. }), "a cipher-suite mismatch is a config problem: {e:?}");
    let e = ipmi_off_error("Unable to set Chassis Power Control to Down/Off\n");
    assert!(matches!(e, FenceError::Unreachable { .. }), "{e:?}");

    // Exit 0 but not ipmitool's answer.
    let (mut op, _) = DeviceOp::start(&ipmi_dev(), &node("mds2"), FenceAction::Off, t(0));
    let e = expect_failed(op.on_result(t(100), &ok("hello\n")));
    assert!(matches!(e, FenceError::Unparseable { .. }), "{e:?}");

    let (mut op, _) = DeviceOp::start(&ipmi_dev(), &node("mds2"), FenceAction::Off, t(0));
    let e = expect_failed(op.on_result(t(100), &spawn_failed("ipmitool: No such file or directory")));
    assert!(matches!(&e, FenceError::CommandFailed { detail, .. } if detail.contains("could not start")), "{e:?}");
}

#[test]
fn ipmi_status_action() {
    let (mut op, step) = DeviceOp::start(&ipmi_dev(), &node("mds2"), FenceAction::Status, t(0));
    assert_eq!(expect_run(step).argv, ipmi_argv("status"));
    assert_eq!(
        expect_done(op.on_result(t(40), &ok("Chassis Power is on\n"))),
        DeviceOutcome::Confirmed(PowerState::On)
    );

    let (mut op, _) = DeviceOp::start(&ipmi_dev(), &node("mds2"), FenceAction::Status, t(0));
    assert_eq!(
        expect_done(op.on_result(t(40), &ok("Chassis Power is off\n"))),
        DeviceOutcome::Confirmed(PowerState::Off)
    );

    let (mut op, _) = DeviceOp::start(&ipmi_dev(), &node("mds2"), FenceAction::Status, t(0));
    let e = expect_failed(op.on_result(t(40), &ok("Chassis Power is sideways\n")));
    assert!(matches!(e, FenceError::Unparseable { .. }), "{e:?}");
}

#[test]
fn verify_retries_a_failed_poll_but_not_a_refusal() {
    // A status poll that fails for want of an answer is polled again.
    let (mut op, _) = DeviceOp::start(&ipmi_dev(), &node("mds2"), FenceAction::Off, t(0));
    expect_run(op.on_result(t(100), &ok("Chassis Power Control: Down/Off\n")));
    let at = expect_wait(op.on_result(t(200), &exit(1, "", "Unable to get Chassis Power Status\n")));
    expect_run(op.on_wake(at));
    assert_eq!(expect_done(op.on_result(at, &ok("Chassis Power is off\n"))), DeviceOutcome::Confirmed(PowerState::Off));

    // If the last poll before the deadline failed, that failure is the outcome (not "still on").
    let mut dev = ipmi_dev();
    dev.power_timeout = Duration::from_secs(1);
    let (mut op, _) = DeviceOp::start(&dev, &node("mds2"), FenceAction::Off, t(0));
    expect_run(op.on_result(t(0), &ok("Chassis Power Control: Down/Off\n")));
    let at = expect_wait(op.on_result(t(10), &ok("Chassis Power is on\n")));
    assert_eq!(at, t(1000));
    expect_run(op.on_wake(at));
    let e = expect_failed(op.on_result(t(1010), &CommandResult::timed_out()));
    assert!(matches!(e, FenceError::TimedOut { .. }), "{e:?}");

    // A refusal ends the op at once.
    let (mut op, _) = DeviceOp::start(&ipmi_dev(), &node("mds2"), FenceAction::Off, t(0));
    expect_run(op.on_result(t(100), &ok("Chassis Power Control: Down/Off\n")));
    let e = expect_failed(op.on_result(
        t(200),
        &exit(1, "", "RAKP 2 HMAC is invalid\nError: Unable to establish IPMI v2 / RMCP+ session\n"),
    ));
    assert!(matches!(e, FenceError::AuthFailed { .. }), "{e:?}");
}

#[test]
fn waits_and_stray_calls_are_harmless() {
    let (mut op, _) = DeviceOp::start(&ipmi_dev(), &node("mds2"), FenceAction::Off, t(0));
    expect_run(op.on_result(t(100), &ok("Chassis Power Control: Down/Off\n")));
    let at = expect_wait(op.on_result(t(200), &ok("Chassis Power is on\n")));
    // Woken early: wait again for the same time.
    assert_eq!(expect_wait(op.on_wake(t(500))), at);
    // A stray result while waiting is ignored.
    assert_eq!(expect_wait(op.on_result(t(600), &ok("Chassis Power is off\n"))), at);
    // A wake while a command is out returns that command again.
    let cmd = expect_run(op.on_wake(at));
    assert_eq!(expect_run(op.on_wake(at)), cmd);
    let done = expect_done(op.on_result(at, &ok("Chassis Power is off\n")));
    assert_eq!(expect_done(op.on_wake(at + Duration::from_secs(5))), done);
    assert_eq!(expect_done(op.on_result(at, &ok("Chassis Power is on\n"))), done);
}

#[test]
fn ipmi_on_polls_until_on_or_fails_still_off() {
    let (mut op, step) = DeviceOp::start(&ipmi_dev(), &node("mds2"), FenceAction::On, t(0));
    assert_eq!(expect_run(step).argv, ipmi_argv("on"));
    expect_run(op.on_result(t(100), &ok("Chassis Power Control: Up/On\n")));
    assert_eq!(
        expect_done(op.on_result(t(200), &ok("Chassis Power is on\n"))),
        DeviceOutcome::Confirmed(PowerState::On)
    );

    let mut dev = ipmi_dev();
    dev.power_timeout = Duration::ZERO;
    let (mut op, _) = DeviceOp::start(&dev, &node("mds2"), FenceAction::On, t(0));
    expect_run(op.on_result(t(100), &ok("Chassis Power Control: Up/On\n")));
    let e = expect_failed(op.on_result(t(200), &ok("Chassis Power is off\n")));
    assert_eq!(e, FenceError::StillOff { device: "bmc-mds2".into(), waited: Duration::from_millis(100) });
}

#[test]
fn ipmi_reboot_is_off_verified_then_on() {
    let (mut op, step) = DeviceOp::start(&ipmi_dev(), &node("mds2"), FenceAction::Reboot, t(0));
    assert_eq!(expect_run(step).argv, ipmi_argv("off"));
    assert_eq!(expect_run(op.on_result(t(100), &ok("Chassis Power Control: Down/Off\n"))).argv, ipmi_argv("status"));
    let on = expect_run(op.on_result(t(200), &ok("Chassis Power is off\n")));
    assert_eq!(on.argv, ipmi_argv("on"));
    assert_eq!(expect_run(op.on_result(t(300), &ok("Chassis Power Control: Up/On\n"))).argv, ipmi_argv("status"));
    assert_eq!(
        expect_done(op.on_result(t(400), &ok("Chassis Power is on\n"))),
        DeviceOutcome::Confirmed(PowerState::Off)
    );
    assert_eq!(op.reboot_on_outcome(), Some(&DeviceOutcome::Confirmed(PowerState::On)));
}

#[test]
fn reboot_with_failed_on_still_succeeds_and_failed_off_never_powers_on() {
    let (mut op, _) = DeviceOp::start(&ipmi_dev(), &node("mds2"), FenceAction::Reboot, t(0));
    expect_run(op.on_result(t(100), &ok("Chassis Power Control: Down/Off\n")));
    expect_run(op.on_result(t(200), &ok("Chassis Power is off\n")));
    let out = expect_done(op.on_result(t(300), &exit(1, "", "Set Chassis Power Control to Up/On failed: Node busy\n")));
    assert_eq!(out, DeviceOutcome::Confirmed(PowerState::Off));
    assert!(matches!(op.reboot_on_outcome(), Some(DeviceOutcome::Failed(FenceError::CommandFailed { .. }))));

    let (mut op, _) = DeviceOp::start(&ipmi_dev(), &node("mds2"), FenceAction::Reboot, t(0));
    let e = expect_failed(op.on_result(t(100), &CommandResult::timed_out()));
    assert!(matches!(e, FenceError::TimedOut { .. }));
    assert_eq!(op.reboot_on_outcome(), None);
}

// ---------------------------------------------------------------------------------------------- pdu

fn pdu_dev(outlets: &[u32]) -> FenceDeviceConfig {
    device("pdu-a", FenceDeviceKind::PduSnmp(pdu_cfg(outlets)))
}

fn pdu_secret() -> SecretUse {
    SecretUse {
        file: PathBuf::from("/etc/failoverd/pdu.community"),
        into: SecretInto::ConfDir {
            env_var: "SNMPCONFPATH".into(),
            file_name: "snmp.conf".into(),
            prefix: "defCommunity ".into(),
        },
    }
}

#[test]
fn pdu_off_two_outlets_then_verify_each() {
    let (mut op, step) = DeviceOp::start(&pdu_dev(&[3, 4]), &node("oss1"), FenceAction::Off, t(0));
    let set = expect_run(step);
    assert_eq!(
        set.argv,
        argv(&[
            "snmpset",
            "-v1",
            "-m",
            "",
            "-Oqv",
            "-t",
            "2",
            "-r",
            "1",
            "udp:10.0.2.1:161",
            ".1.3.6.1.4.1.318.1.1.12.3.3.1.1.4.3",
            "i",
            "2",
            ".1.3.6.1.4.1.318.1.1.12.3.3.1.1.4.4",
            "i",
            "2",
        ])
    );
    assert_eq!(set.secrets, vec![pdu_secret()]);
    assert!(!set.argv.iter().any(|a| a == "-c"), "community never on argv");
    assert_eq!(set.stdin, None);
    assert!(set.env.is_empty());

    let get = expect_run(op.on_result(t(10), &ok("2\n2\n")));
    assert_eq!(
        get.argv,
        argv(&[
            "snmpget",
            "-v1",
            "-m",
            "",
            "-Oqv",
            "-t",
            "2",
            "-r",
            "1",
            "udp:10.0.2.1:161",
            ".1.3.6.1.4.1.318.1.1.12.3.5.1.1.4.3",
            ".1.3.6.1.4.1.318.1.1.12.3.5.1.1.4.4",
        ])
    );
    assert_eq!(get.secrets, vec![pdu_secret()]);
    // One outlet still on: poll again.
    let at = expect_wait(op.on_result(t(20), &ok("2\n1\n")));
    expect_run(op.on_wake(at));
    assert_eq!(expect_done(op.on_result(at, &ok("2\n2\n"))), DeviceOutcome::Confirmed(PowerState::Off));
}

#[test]
fn pdu_one_outlet_stays_on_names_it() {
    let mut dev = pdu_dev(&[3, 4]);
    dev.power_timeout = Duration::from_secs(2);
    let (mut op, _) = DeviceOp::start(&dev, &node("oss1"), FenceAction::Off, t(0));
    expect_run(op.on_result(t(0), &ok("2\n2\n")));
    let mut now = t(5);
    let e = loop {
        match op.on_result(now, &ok("2\n1\n")) {
            OpStep::WaitUntil(at) => {
                now = at;
                expect_run(op.on_wake(at));
            }
            OpStep::Done(DeviceOutcome::Failed(e)) => break e,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(
        e,
        FenceError::OutletsStillOn { device: "pdu-a".into(), outlets: vec![4], waited: Duration::from_secs(2) }
    );
    assert!(e.to_string().contains("outlet(s) 4 still read on"), "{e}");
}

#[test]
fn pdu_errors() {
    let off_error = |stderr: &str, code: i32| {
        let (mut op, _) = DeviceOp::start(&pdu_dev(&[3, 4]), &node("oss1"), FenceAction::Off, t(0));
        expect_failed(op.on_result(t(10), &exit(code, "", stderr)))
    };
    let e = off_error("Timeout: No Response from udp:10.0.2.1:161.\n", 1);
    assert!(
        matches!(&e, FenceError::Unreachable { detail, .. } if detail.contains("wrong community") && detail.contains("Timeout")),
        "{e:?}"
    );
    let e = off_error(
        "Error in packet.\nReason: (noSuchName) There is no such variable name in this MIB.\n\
         Failed object: iso.3.6.1.4.1.318.1.1.12.3.3.1.1.4.4\n",
        2,
    );
    assert!(matches!(&e, FenceError::CommandFailed { detail, .. } if detail.starts_with("outlet 4:")), "{e:?}");
    let e = off_error(
        "Error in packet.\nReason: wrongValue (The set value is illegal or unsupported in some way)\n\
         Failed object: .1.3.6.1.4.1.318.1.1.12.3.3.1.1.4.3\n",
        2,
    );
    assert!(matches!(&e, FenceError::CommandFailed { detail, .. } if detail.starts_with("outlet 3:")), "{e:?}");
    let e = off_error(
        "Error in packet.\nReason: authorizationError (access denied to that object)\n\
         Failed object: SNMPv2-SMI::enterprises.318.1.1.12.3.3.1.1.4.3\n",
        2,
    );
    assert!(matches!(&e, FenceError::AuthFailed { detail, .. } if detail.contains("outlet 3")), "{e:?}");

    // Status answers that are no outlet state.
    let status_error = |stdout: &str| {
        let (mut op, _) = DeviceOp::start(&pdu_dev(&[3, 4]), &node("oss1"), FenceAction::Status, t(0));
        expect_failed(op.on_result(t(10), &ok(stdout)))
    };
    let e = status_error("1\nNo Such Instance currently exists at this OID\n");
    assert!(matches!(&e, FenceError::CommandFailed { detail, .. } if detail.starts_with("outlet 4:")), "{e:?}");
    let e = status_error("1\n7\n");
    assert!(matches!(&e, FenceError::Unparseable { detail, .. } if detail.starts_with("outlet 4:")), "{e:?}");
    let e = status_error("1\n");
    assert!(matches!(e, FenceError::Unparseable { .. }), "{e:?}");

    // SNMPv1 snmpget: noSuchName for one outlet; net-snmp retries without it, prints the rest, exits 2.
    let (mut op, _) = DeviceOp::start(&pdu_dev(&[3, 9]), &node("oss1"), FenceAction::Status, t(0));
    let e = expect_failed(op.on_result(
        t(10),
        &exit(
            2,
            "2\n",
            "Error in packet\nReason: (noSuchName) There is no such variable name in this MIB.\n\
             Failed object: iso.3.6.1.4.1.318.1.1.12.3.5.1.1.4.9\n",
        ),
    ));
    assert!(
        matches!(&e, FenceError::CommandFailed { detail, .. } if detail.starts_with("outlet 9: no such outlet")),
        "{e:?}"
    );
}

#[test]
fn pdu_status_action_and_profiles() {
    // Any outlet on: the node has power.
    let (mut op, _) = DeviceOp::start(&pdu_dev(&[3, 4]), &node("oss1"), FenceAction::Status, t(0));
    assert_eq!(expect_done(op.on_result(t(10), &ok("2\n1\n"))), DeviceOutcome::Confirmed(PowerState::On));

    let mut cfg = pdu_cfg(&[7]);
    cfg.profile = PduProfile::Tripplite;
    cfg.snmp_version = SnmpVersion::V2c;
    cfg.port = 16100;
    let dev = device("tl", FenceDeviceKind::PduSnmp(cfg.clone()));
    assert_eq!(
        device_command(&dev, Verb::On).unwrap().argv,
        argv(&[
            "snmpset",
            "-v2c",
            "-m",
            "",
            "-Oqv",
            "-t",
            "2",
            "-r",
            "1",
            "udp:10.0.2.1:16100",
            ".1.3.6.1.4.1.850.10.2.3.5.1.4.1.7",
            "i",
            "2"
        ])
    );
    assert_eq!(device_command(&dev, Verb::Off).unwrap().argv.last().unwrap(), "1");
    assert_eq!(device_command(&dev, Verb::Status).unwrap().argv.last().unwrap(), ".1.3.6.1.4.1.850.10.2.3.5.1.2.1.7");
    let (mut op, _) = DeviceOp::start(&dev, &node("oss1"), FenceAction::Status, t(0));
    assert_eq!(expect_done(op.on_result(t(10), &ok("1\n"))), DeviceOutcome::Confirmed(PowerState::Off));

    cfg.profile = PduProfile::ApcMasterSwitch;
    cfg.host = "fd00::5".into();
    let dev = device("ms", FenceDeviceKind::PduSnmp(cfg));
    let set = device_command(&dev, Verb::Off).unwrap().argv;
    assert_eq!(&set[9..], &argv(&["udp6:[fd00::5]:16100", ".1.3.6.1.4.1.318.1.1.4.4.2.1.3.7", "i", "2"])[..]);
    let get = device_command(&dev, Verb::Status).unwrap().argv;
    assert_eq!(get.last().unwrap(), ".1.3.6.1.4.1.318.1.1.4.4.2.1.3.7");
}

#[test]
fn pdu_without_outlets_is_refused() {
    let (_, step) = DeviceOp::start(&pdu_dev(&[]), &node("oss1"), FenceAction::Off, t(0));
    assert!(matches!(expect_failed(step), FenceError::InvalidConfig { .. }));
}

// ---------------------------------------------------------------------------------------------- agent

fn agent_dev() -> FenceDeviceConfig {
    device("fa-mds2", FenceDeviceKind::Agent(agent_cfg()))
}

fn agent_stdin(action: &str) -> String {
    format!("action={action}\ncipher=3\nip=10.0.1.2\nlanplus=1\nusername=admin\n")
}

#[test]
fn agent_off_then_verify_with_status() {
    let (mut op, step) = DeviceOp::start(&agent_dev(), &node("mds2"), FenceAction::Off, t(0));
    let off = expect_run(step);
    assert_eq!(off.argv, argv(&["fence_ipmilan"]));
    assert_eq!(off.stdin.as_deref(), Some(agent_stdin("off").as_str()));
    assert_eq!(
        off.secrets,
        vec![SecretUse {
            file: PathBuf::from("/etc/failoverd/bmc-mds2.pw"),
            into: SecretInto::StdinLine("password".into())
        }]
    );
    assert!(off.env.is_empty());
    assert!(!off.stdin.as_deref().unwrap().contains("password"));

    let status = expect_run(op.on_result(t(2200), &ok("Success: Powered OFF\n")));
    assert_eq!(status.stdin.as_deref(), Some(agent_stdin("status").as_str()));
    assert_eq!(status.secrets, off.secrets);
    // exit 0 = ON: poll again.
    let at = expect_wait(op.on_result(t(2300), &ok("Status: ON\n")));
    expect_run(op.on_wake(at));
    // exit 2 = OFF.
    assert_eq!(expect_done(op.on_result(at, &exit(2, "Status: OFF\n", ""))), DeviceOutcome::Confirmed(PowerState::Off));
}

#[test]
fn agent_plug_goes_last() {
    let mut cfg = agent_cfg();
    cfg.plug = Some("3".into());
    cfg.secret_options.clear();
    let dev = device("fa", FenceDeviceKind::Agent(cfg));
    let cmd = device_command(&dev, Verb::Status).unwrap();
    assert_eq!(cmd.stdin.unwrap(), format!("{}plug=3\n", agent_stdin("status")));
    assert!(cmd.secrets.is_empty());
}

#[test]
fn agent_status_exit_codes() {
    let status = |r: CommandResult| {
        let (mut op, _) = DeviceOp::start(&agent_dev(), &node("mds2"), FenceAction::Status, t(0));
        expect_done(op.on_result(t(100), &r))
    };
    assert_eq!(status(exit(0, "Status: ON\n", "")), DeviceOutcome::Confirmed(PowerState::On));
    assert_eq!(status(exit(2, "Status: OFF\n", "")), DeviceOutcome::Confirmed(PowerState::Off));
    let stderr = "/usr/sbin/fence_ipmilan:5: DeprecationWarning: 'pipes' is deprecated\n  import pipes\n\
                  2024-05-01 10:00:00,000 ERROR: Failed: Unable to obtain correct plug status or plug is not available\n";
    match status(exit(1, "", stderr)) {
        DeviceOutcome::Failed(FenceError::CommandFailed { detail, .. }) => {
            assert!(detail.contains("Unable to obtain correct plug status"), "{detail}");
            assert!(!detail.contains("DeprecationWarning"), "{detail}");
        }
        other => panic!("{other:?}"),
    }
    let e = status(exit(1, "", "2024-05-01 10:00:00,000 ERROR: Connection timed out\n"));
    assert!(matches!(e, DeviceOutcome::Failed(FenceError::Unreachable { .. })), "{e:?}");
    let e = status(exit(
        1,
        "",
        "ERROR: Failed: The user does not have the correct privileges to do the requested action.\n",
    ));
    assert!(matches!(e, DeviceOutcome::Failed(FenceError::AuthFailed { .. })), "{e:?}");
    let e = status(exit(5, "", ""));
    assert!(
        matches!(&e, DeviceOutcome::Failed(FenceError::CommandFailed { detail, .. }) if detail.contains("exit code 5")),
        "{e:?}"
    );
    let e = status(CommandResult::timed_out());
    assert!(matches!(e, DeviceOutcome::Failed(FenceError::TimedOut { .. })), "{e:?}");
}

#[test]
fn agent_off_failures() {
    let (mut op, _) = DeviceOp::start(&agent_dev(), &node("mds2"), FenceAction::Off, t(0));
    let e = expect_failed(op.on_result(t(100), &exit(1, "", "ERROR: Failed: Timed out waiting to power OFF\n")));
    assert!(matches!(e, FenceError::StillOn { .. }), "{e:?}");
    let (mut op, _) = DeviceOp::start(&agent_dev(), &node("mds2"), FenceAction::Off, t(0));
    let e = expect_failed(op.on_result(t(100), &exit(1, "", "ERROR: Unable to connect/login to fencing device\n")));
    assert!(matches!(e, FenceError::Unreachable { .. }), "{e:?}");
}

#[test]
fn agent_reboot_is_our_own_sequence() {
    let (mut op, step) = DeviceOp::start(&agent_dev(), &node("mds2"), FenceAction::Reboot, t(0));
    let mut actions = vec![expect_run(step).stdin.unwrap()];
    actions.push(expect_run(op.on_result(t(100), &ok("Success: Powered OFF\n"))).stdin.unwrap());
    actions.push(expect_run(op.on_result(t(200), &exit(2, "Status: OFF\n", ""))).stdin.unwrap());
    actions.push(expect_run(op.on_result(t(300), &ok("Success: Powered ON\n"))).stdin.unwrap());
    assert_eq!(expect_done(op.on_result(t(400), &ok("Status: ON\n"))), DeviceOutcome::Confirmed(PowerState::Off));
    let firsts: Vec<&str> = actions.iter().map(|s| s.lines().next().unwrap()).collect();
    assert_eq!(firsts, ["action=off", "action=status", "action=on", "action=status"]);
    assert_eq!(op.reboot_on_outcome(), Some(&DeviceOutcome::Confirmed(PowerState::On)));
}

#[test]
fn agent_options_that_would_change_the_action_are_refused() {
    for (key, value) in [("action", "reboot"), ("option", "reboot"), ("ip", "10.0.0.1\naction=reboot")] {
        let mut cfg = agent_cfg();
        cfg.options.insert(key.into(), value.into());
        let (_, step) = DeviceOp::start(&device("fa", FenceDeviceKind::Agent(cfg)), &node("n"), FenceAction::Off, t(0));
        assert!(matches!(expect_failed(step), FenceError::InvalidConfig { .. }), "{key}");
    }
    let mut cfg = agent_cfg();
    cfg.secret_options.insert("action".into(), PathBuf::from("/x"));
    let (_, step) = DeviceOp::start(&device("fa", FenceDeviceKind::Agent(cfg)), &node("n"), FenceAction::Off, t(0));
    assert!(matches!(expect_failed(step), FenceError::InvalidConfig { .. }));
}

const IPMILAN_METADATA: &str = r#"<?xml version="1.0" ?>
<resource-agent name="fence_ipmilan" shortdesc="Fence agent for IPMI" >
<longdesc>fence_ipmilan is a Power Fencing agent for IPMI-capable devices &amp; BMCs. See &lt;parameter&gt; list.</longdesc>
<vendor-url></vendor-url>
<parameters>
	<parameter name="auth" unique="0" required="0">
		<getopt mixed="-A, --auth=[auth]" />
		<content type="select" default="none"  >
			<option value="md5" />
			<option value="password" />
			<option value="none" />
		</content>
		<shortdesc lang="en">IPMI Lan Auth type.</shortdesc>
	</parameter>
	<parameter name="cipher" unique="0" required="0">
		<getopt mixed="-C, --cipher=[cipher]" />
		<content type="string"  />
		<shortdesc lang="en">Ciphersuite to use (same as ipmitool -C parameter)</shortdesc>
	</parameter>
	<parameter name="ip" unique="0" required="1" obsoletes="ipaddr">
		<getopt mixed="-a, --ip=[ip]" />
		<content type="string"  />
	</parameter>
	<parameter name="ipaddr" unique="0" required="1" deprecated="1">
		<getopt mixed="-a, --ip=[ip]" />
		<content type="string"  />
	</parameter>
	<!-- <parameter name="commented_out"/> -->
	<parameter name='ipport' unique="0" required="0">
		<content type="integer" default="623"  />
	</parameter>
	<parameter name="lanplus" unique="0" required="0">
		<content type="boolean" default="0"  />
	</parameter>
	<parameter name="password" unique="0" required="0" obsoletes="passwd"/>
	<parameter name="username" unique="0" required="0" obsoletes="login"/>
	<parameter name="power_wait" unique="0" required="0"/>
	<parameter name="privlvl" unique="0" required="0"/>
</parameters>
<actions>
	<action name="on" automatic="0"/>
	<action name="off" />
	<action name="status" />
	<action name="metadata" />
</actions>
</resource-agent>
"#;

#[test]
fn metadata_parsing_and_option_check() {
    let names = parse_agent_metadata(IPMILAN_METADATA).unwrap();
    assert_eq!(
        names,
        ["auth", "cipher", "ip", "ipaddr", "ipport", "lanplus", "password", "username", "power_wait", "privlvl"]
    );

    let mut cfg = agent_cfg();
    assert!(check_agent_options(&names, &cfg).is_empty());
    cfg.options.insert("power-wait".into(), "0".into()); // `-` and `_` are the same
    cfg.options.insert("lan_plus".into(), "1".into());
    cfg.secret_options.insert("hexadecimal_kg".into(), PathBuf::from("/etc/kg"));
    cfg.plug = Some("3".into());
    assert_eq!(check_agent_options(&names, &cfg), ["hexadecimal_kg", "lan_plus", "plug"]);

    assert_eq!(parse_agent_metadata("<html><body/></html>"), Err(MetadataError::NotMetadata));
    assert!(matches!(
        parse_agent_metadata("<resource-agent><parameter unique=\"0\"/>"),
        Err(MetadataError::ParameterWithoutName(_))
    ));
    assert!(matches!(parse_agent_metadata("<resource-agent><parameter name=\"ip"), Err(MetadataError::Truncated(_))));
    assert!(matches!(parse_agent_metadata("<resource-agent><!-- never closed"), Err(MetadataError::Truncated(_))));
}

#[test]
fn metadata_command_asks_for_metadata_only() {
    let cmd = metadata_command(&agent_cfg(), Duration::from_secs(5));
    assert_eq!(cmd.argv, argv(&["fence_ipmilan"]));
    assert_eq!(cmd.stdin.as_deref(), Some("action=metadata\n"));
    assert!(cmd.secrets.is_empty());
    assert_eq!(cmd.timeout, Duration::from_secs(5));
}

// ---------------------------------------------------------------------------------------------- manual, describe

#[test]
fn manual_needs_an_operator() {
    let dev = device("by-hand", FenceDeviceKind::Manual);
    for action in [FenceAction::Off, FenceAction::Reboot] {
        let (op, step) = DeviceOp::start(&dev, &node("mds2"), action, t(0));
        assert_eq!(expect_done(step), DeviceOutcome::NeedsOperator);
        assert_eq!(op.outcome(), Some(&DeviceOutcome::NeedsOperator));
    }
    let (_, step) = DeviceOp::start(&dev, &node("mds2"), FenceAction::Status, t(0));
    assert_eq!(
        expect_failed(step),
        FenceError::Unsupported { device: "by-hand".into(), detail: "manual device has no status".into() }
    );
    let (_, step) = DeviceOp::start(&dev, &node("mds2"), FenceAction::On, t(0));
    assert!(matches!(expect_failed(step), FenceError::Unsupported { .. }));
    assert!(device_command(&dev, Verb::Off).is_none());
}

#[test]
fn describe_names_kind_and_host_without_secrets() {
    assert_eq!(describe(&ipmi_dev()), "bmc-mds2: ipmi admin@10.0.1.2:623 (lanplus, ADMINISTRATOR, cipher 3)");
    assert_eq!(describe(&pdu_dev(&[3, 4])), "pdu-a: pdu-snmp 10.0.2.1:161 outlet(s) 3,4 (APC rPDU, SNMPv1)");
    let mut cfg = agent_cfg();
    cfg.plug = Some("3".into());
    let d = describe(&device("fa", FenceDeviceKind::Agent(cfg)));
    assert_eq!(d, "fa: agent fence_ipmilan 10.0.1.2 plug 3");
    for d in [describe(&ipmi_dev()), describe(&pdu_dev(&[1])), d] {
        assert!(!d.contains(".pw") && !d.contains("community") && !d.contains("password"), "{d}");
    }
    assert!(describe(&device("m", FenceDeviceKind::Manual)).starts_with("m: manual"));
}
