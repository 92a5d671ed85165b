//! Network namespaces, bridges and veth pairs: the one namespace builder behind the tests' multi-host lab
//! ([`super::lab`]) and the benchmark suite's labs (`benches/suite/lab.rs`, which includes this file alone by
//! `#[path]`). It needs root and `ip` (iproute2).
//!
//! Nothing here gives a namespace a default route or a bridge an address in the root namespace: a lab built
//! with it has no way out of the machine. Each lab keeps its own list of what it built and tears it down with
//! [`kill_namespace`], [`delete_namespace`] and [`delete_bridge`].

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Run a command to completion; its stdout, or an error naming it with its stderr.
pub fn run(argv: &[&str]) -> Result<String, String> {
    run_with(argv, None)
}

/// [`run`], writing `stdin` to the command's standard input.
pub fn run_with(argv: &[&str], stdin: Option<&str>) -> Result<String, String> {
    let mut cmd = Command::new(argv[0]);
    cmd.args(&argv[1..]).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    let mut child = cmd.spawn().map_err(|e| format!("`{}`: cannot start: {e}", argv.join(" ")))?;
    if let Some(text) = stdin {
        use std::io::Write;
        if let Some(mut s) = child.stdin.take() {
            let _ = s.write_all(text.as_bytes());
        }
    }
    let out = child.wait_with_output().map_err(|e| format!("`{}`: {e}", argv.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`{}` failed ({}): {}{}",
            argv.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        ))
    }
}

/// Run `argv` inside namespace `ns` (`ip netns exec`).
pub fn run_in(ns: &str, argv: &[&str]) -> Result<String, String> {
    let mut full = vec!["ip", "netns", "exec", ns];
    full.extend_from_slice(argv);
    run(&full)
}

/// A command that runs `program` inside namespace `ns` (`ip netns exec` execs the program, so a spawned
/// child's pid is the program's own).
pub fn command_in(ns: &str, program: &str) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns, program]);
    c
}

/// `ip -n NS ...`, or plain `ip ...` in the root namespace when `ns` is `None`.
fn ip_in(ns: Option<&str>, args: &[&str]) -> Result<String, String> {
    let mut argv = vec!["ip"];
    if let Some(ns) = ns {
        argv.extend(["-n", ns]);
    }
    argv.extend_from_slice(args);
    run(&argv)
}

/// Create namespace `ns` with its loopback up.
pub fn add_namespace(ns: &str) -> Result<(), String> {
    run(&["ip", "netns", "add", ns])?;
    ip_in(Some(ns), &["link", "set", "lo", "up"]).map(|_| ())
}

/// Create bridge `br`, up, in namespace `ns` (`None`: the root namespace, where it gets no address).
pub fn add_bridge(ns: Option<&str>, br: &str) -> Result<(), String> {
    ip_in(ns, &["link", "add", br, "type", "bridge"])?;
    ip_in(ns, &["link", "set", br, "up"]).map(|_| ())
}

/// A veth pair: `outer` a port of bridge `bridge` (which lives in namespace `bridge_ns`, `None` for the root
/// namespace), `inner` its other end inside namespace `ns`, up, with the addresses `addrs` (each a /24).
pub fn add_port(bridge_ns: Option<&str>, bridge: &str, outer: &str, ns: &str, inner: &str, addrs: &[String]) -> Result<(), String> {
    match bridge_ns {
        Some(b) => run(&["ip", "link", "add", inner, "netns", ns, "type", "veth", "peer", "name", outer, "netns", b])?,
        None => run(&["ip", "link", "add", outer, "type", "veth", "peer", "name", inner, "netns", ns])?,
    };
    ip_in(bridge_ns, &["link", "set", outer, "master", bridge, "up"])?;
    for a in addrs {
        ip_in(Some(ns), &["addr", "add", &format!("{a}/24"), "dev", inner])?;
    }
    ip_in(Some(ns), &["link", "set", inner, "up"]).map(|_| ())
}

/// Every process inside namespace `ns` (none when it does not exist).
pub fn pids_in(ns: &str) -> Vec<i32> {
    run(&["ip", "netns", "pids", ns]).unwrap_or_default().split_whitespace().filter_map(|p| p.parse().ok()).collect()
}

/// SIGKILL every process of namespace `ns` until none is left (bounded: 2 s).
pub fn kill_namespace(ns: &str) -> Result<(), String> {
    for _ in 0..100 {
        let pids = pids_in(ns);
        if pids.is_empty() {
            return Ok(());
        }
        for p in pids {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), nix::sys::signal::Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!("processes of namespace {ns} survive SIGKILL: {:?}", pids_in(ns)))
}

/// Delete namespace `ns` (with the bridges and veth ends inside it); not an error when it is already gone.
pub fn delete_namespace(ns: &str) -> Result<(), String> {
    match run(&["ip", "netns", "del", ns]) {
        Err(e) if Path::new("/run/netns").join(ns).exists() => Err(e),
        _ => Ok(()),
    }
}

/// Delete bridge `br` of the root namespace; not an error when it is already gone.
pub fn delete_bridge(br: &str) -> Result<(), String> {
    if Path::new("/sys/class/net").join(br).exists() {
        run(&["ip", "link", "del", br])?;
    }
    Ok(())
}
