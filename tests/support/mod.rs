//! The harness shared by the integration tests (`tests/it/`, one test binary) and the benches
//! (`benches/failover.rs`, `benches/fence.rs`, which include this module by `#[path]`):
//!
//! * here: [`free_udp_port`], [`free_tcp_port`], [`wait_until`] and [`Daemon`], the one wrapper of a `failoverd` process;
//! * [`capture`]: the parser of the real command outputs in tests/fixtures/;
//! * [`cluster`]: a temporary cluster of real daemons on 127.0.0.1;
//! * [`fence`]: real fence devices (ipmi_sim, snmpd, fence agents) on loopback;
//! * [`lab`]: the multi-host lab, hosts as network namespaces (root);
//! * [`netns`]: the namespace, bridge and veth builder under [`lab`] and the benchmark suite's labs.

pub mod capture;
pub mod cluster;
pub mod fence;
pub mod lab;
pub mod netns;

use std::fs::File;
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The failoverd binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_failoverd");

/// A UDP port nobody uses on `addr` right now (`Ipv4Addr::LOCALHOST` for daemons on 127.0.0.1).
pub fn free_udp_port(addr: Ipv4Addr) -> u16 {
    UdpSocket::bind((addr, 0)).and_then(|s| s.local_addr()).map(|a| a.port()).expect("bind a loopback UDP port")
}

/// A TCP port nobody listens on at 127.0.0.1 right now (for `metrics_listen`).
pub fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Poll `f` every 20 ms until it holds; panic naming `what` after `limit`.
pub fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while t.elapsed() < limit {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out after {limit:?} waiting until {what}");
}

/// A running `failoverd` process (`run` or `witness`) logging JSON to `log`, SIGKILLed and reaped on drop.
pub struct Daemon {
    pub name: String,
    pub child: Option<Child>,
    /// Its control socket (empty for a process that has none, like the witness).
    pub socket: PathBuf,
    pub log: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Daemon {
    /// Spawn `cmd` with `RUST_LOG=info`, stdin and stdout closed, stderr to `log`; does not wait.
    pub fn spawn(name: &str, cmd: &mut Command, socket: &Path, log: &Path) -> Daemon {
        let child = cmd
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(File::create(log).unwrap()))
            .spawn()
            .unwrap();
        Daemon { name: name.to_string(), child: Some(child), socket: socket.to_path_buf(), log: log.to_path_buf() }
    }

    /// Spawn `failoverd run --config CONFIG --node NODE --log-format json` with `env` added; does not wait
    /// (see [`Daemon::wait_for_socket`]).
    pub fn run(node: &str, config: &Path, socket: &Path, log: &Path, env: &[(&str, &str)]) -> Daemon {
        let mut cmd = Command::new(BIN);
        cmd.args(["run", "--config"]).arg(config).args(["--node", node, "--log-format", "json"]);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Daemon::spawn(node, &mut cmd, socket, log)
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    pub fn running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    /// Panic (with the log) if the process has exited.
    pub fn assert_running(&mut self) {
        let exited = self.child.as_mut().and_then(|c| c.try_wait().unwrap());
        assert!(exited.is_none(), "{} exited ({exited:?}); log:\n{}", self.name, self.log_text());
    }

    /// Wait (at most 20 s) until the control socket accepts a connection.
    pub fn wait_for_socket(&self) {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(20) {
            if UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("{} never opened its control socket; log:\n{}", self.name, self.log_text());
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn log_lines(&self) -> Vec<Value> {
        self.log_text().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }

    /// Events (as logged) with this name.
    pub fn events(&self, name: &str) -> Vec<Value> {
        self.log_lines().into_iter().filter(|l| l["fields"]["event"] == json!(name)).collect()
    }

    /// The events of this name, each as the log line's timestamp and its parsed JSON detail.
    pub fn event_details(&self, name: &str) -> Vec<(String, Value)> {
        self.events(name)
            .into_iter()
            .map(|l| {
                let detail = l["fields"]["detail"].as_str().and_then(|d| serde_json::from_str(d).ok()).unwrap_or(Value::Null);
                (l["timestamp"].as_str().unwrap_or_default().to_string(), detail)
            })
            .collect()
    }

    /// `failoverd status --json --socket ...`
    pub fn status(&self) -> Value {
        let out = Command::new(BIN).args(["status", "--json", "--socket"]).arg(&self.socket).output().unwrap();
        assert!(out.status.success(), "status of {} failed: {}", self.name, String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// `failoverd status --socket ...` (the human form).
    pub fn status_text(&self) -> String {
        let out = Command::new(BIN).args(["status", "--socket"]).arg(&self.socket).output().unwrap();
        assert!(out.status.success(), "status of {} failed: {}", self.name, String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    /// This peer's entry of `status --json` (Null when it is not listed).
    pub fn peer(&self, peer: &str) -> Value {
        let s = self.status();
        s["peers"].as_array().unwrap().iter().find(|p| p["node"] == json!(peer)).cloned().unwrap_or(Value::Null)
    }

    pub fn peer_alive(&self, peer: &str) -> bool {
        self.peer(peer)["alive"] == json!(true)
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        let mut c = self.child.take().unwrap();
        c.kill().unwrap();
        c.wait().unwrap();
    }

    /// SIGTERM, then wait (at most `limit`) for the exit status.
    pub fn terminate(&mut self, limit: Duration) -> std::process::ExitStatus {
        use nix::sys::signal::{kill, Signal};
        kill(nix::unistd::Pid::from_raw(self.pid()), Signal::SIGTERM).unwrap();
        let mut child = self.child.take().unwrap();
        let t = Instant::now();
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                return s;
            }
            if t.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{} did not exit within {limit:?} of SIGTERM; log:\n{}", self.name, self.log_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
