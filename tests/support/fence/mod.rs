//! Real fence devices on loopback, for `tests/it/fencing.rs` and `benches/fence.rs`.
//!
//! * [`Bmc`]: OpenIPMI's `ipmi_sim` (started by `bmc.sh`), whose chassis power is a state file that
//!   `chassis.sh` keeps; powering off SIGKILLs the [`Victim`] attached to it.
//! * [`Pdu`]: net-snmp's `snmpd` (started by `pdu.sh`), with the outlets of an APC rPDU, APC MasterSwitch or
//!   Tripplite PDU served by `pdu_handler.py` from one state file per outlet; switching an outlet off SIGKILLs
//!   the victim attached to it; a per-outlet fault switch refuses SETs or leaves the relay stuck.
//! * [`LabHosts`]: a state directory for `fence-agents/fence_failoverd_lab`.
//!
//! Every simulator gets its own temporary directory, its own loopback address (127.x.y.z, unique per process
//! and instance, so that tests running in parallel never share a port even though ipmi_sim binds with
//! SO_REUSEADDR) and a free UDP port. It runs in its own process group, which is SIGKILLed when the guard is
//! dropped (also when a test panics) and, through PR_SET_PDEATHSIG, when the test process dies. `start`
//! returns only once the simulator answers a real request (ipmitool / snmpget), within a bounded wait.
//!
//! The tools come from Debian packages (openipmi, ipmitool, snmpd, snmp, fence-agents, python3): call
//! [`tools_present`] first; it skips the test with a printed reason, or fails it under `CI=true`.
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use failoverd::config::{
    AgentConfig, Config, FenceDeviceConfig, FenceDeviceKind, IpmiConfig, IpmiPrivilege, PduProfile, PduSnmpConfig,
    SnmpVersion,
};
use failoverd::engine::{FenceJob, FenceReason, JobProgress};
use failoverd::fence::FenceAction;
use failoverd::runtime::clock::Clock;
use failoverd::runtime::exec;

use super::free_udp_port;

/// This folder: the simulator scripts.
pub const SUPPORT_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/fence");
/// The agents shipped with failoverd.
pub const AGENTS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fence-agents");

/// The interpreter named by the shebang of `pdu_handler.py` and `fence_failoverd_lab` (Debian's python3), as
/// a tool for [`tools_present`].
pub const PYTHON: &str = "/usr/bin/python3";

/// How long a simulator may take to start answering.
const START_LIMIT: Duration = Duration::from_secs(15);

/// Timings of the devices built here: generous enough for a loaded CI machine, short enough that a failing
/// device does not stall a test for long.
pub const DEVICE_TIMEOUT: Duration = Duration::from_secs(10);
pub const POWER_TIMEOUT: Duration = Duration::from_secs(5);
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

// ----- tools ---------------------------------------------------------------------------------------------

/// Folders searched besides PATH: root's PATH on some machines lacks the sbin folders (snmpd, fence agents).
const EXTRA_PATH: &[&str] = &["/usr/local/sbin", "/usr/sbin", "/sbin"];

/// The full path of `tool`, from PATH or the sbin folders.
pub fn tool_path(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(EXTRA_PATH.iter().map(PathBuf::from))
        .map(|dir| dir.join(tool))
        .find(|p| p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

/// True when every tool is installed. Otherwise: under `CI=true` (or `CI=1`) the test fails, naming the
/// missing tools; elsewhere it prints why it is skipped and returns false (the caller returns).
pub fn tools_present(test: &str, tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools.iter().copied().filter(|t| tool_path(t).is_none()).collect();
    if missing.is_empty() {
        return true;
    }
    let why = format!(
        "{test}: missing {} (apt-get install openipmi ipmitool snmpd snmp fence-agents python3; scripts/test does it)",
        missing.join(", ")
    );
    if matches!(std::env::var("CI").as_deref(), Ok("true") | Ok("1")) {
        panic!("CI=true and a fencing tool is missing: {why}");
    }
    eprintln!("SKIPPED {why}");
    false
}

/// A PATH that also holds the sbin folders, for the simulators' scripts and the daemons under test.
pub fn full_path() -> String {
    let mut p = std::env::var("PATH").unwrap_or_default();
    for extra in EXTRA_PATH {
        p.push(':');
        p.push_str(extra);
    }
    p
}

// ----- addresses -------------------------------------------------------------------------------------------

static INSTANCE: AtomicU32 = AtomicU32::new(0);

/// A loopback address of its own for each simulator of this process: 127.x.y.z with x.y from the pid and z
/// from a counter (every 127/8 address is local on Linux; no setup needed).
pub fn unique_loopback() -> Ipv4Addr {
    let pid = std::process::id();
    let n = INSTANCE.fetch_add(1, Ordering::Relaxed);
    Ipv4Addr::new(127, (10 + (pid >> 8) % 240) as u8, (pid % 256) as u8, (1 + n % 254) as u8)
}

/// An address and port where nothing listens: a BMC or PDU that is down.
pub fn silent_endpoint() -> (Ipv4Addr, u16) {
    let addr = unique_loopback();
    (addr, free_udp_port(addr))
}

/// Is a UDP socket bound to addr:port? (from /proc/net/udp; the kernel prints the address as a host-order
/// u32 in hex).
fn udp_bound(addr: Ipv4Addr, port: u16) -> bool {
    let o = addr.octets();
    let want = format!("{:02X}{:02X}{:02X}{:02X}:{port:04X}", o[3], o[2], o[1], o[0]);
    std::fs::read_to_string("/proc/net/udp")
        .map(|t| t.lines().skip(1).any(|l| l.split_whitespace().nth(1) == Some(want.as_str())))
        .unwrap_or(false)
}

// ----- processes -------------------------------------------------------------------------------------------

/// A simulator process in its own process group; the whole group is SIGKILLed on drop.
struct Sim {
    what: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Sim {
    fn spawn(what: String, mut cmd: Command, log: PathBuf) -> Sim {
        let log_file = || std::fs::OpenOptions::new().create(true).append(true).open(&log).expect("open a simulator log");
        cmd.env("PATH", full_path()).stdin(Stdio::null()).stdout(log_file()).stderr(log_file()).process_group(0);
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL).map_err(std::io::Error::from)
            });
        }
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        Sim { what, child: Some(child), log }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_else(|e| format!("(no log {}: {e})", self.log.display()))
    }

    /// Panic (with the simulator's log) if it exited.
    fn check_running(&mut self) {
        if let Some(c) = self.child.as_mut() {
            if let Ok(Some(status)) = c.try_wait() {
                panic!("{} exited ({status}) while starting; log:\n{}", self.what, self.log_text());
            }
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(c.id() as i32), nix::sys::signal::Signal::SIGKILL);
            let _ = c.wait();
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A process standing for a node: `sleep`, SIGKILLed by the simulated device when its power goes off.
pub struct Victim {
    child: Option<Child>,
}

impl Victim {
    pub fn spawn() -> Victim {
        let mut cmd = Command::new("sleep");
        cmd.arg("3600").stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        // SAFETY: as in Sim::spawn.
        unsafe {
            cmd.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL).map_err(std::io::Error::from)
            });
        }
        Victim { child: Some(cmd.spawn().expect("spawn a victim sleep")) }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Still running (not exited, not killed)?
    pub fn alive(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Wait up to `limit` for the victim to end: true if it was killed by SIGKILL.
    pub fn killed_within(&mut self, limit: Duration) -> bool {
        let Some(c) = self.child.as_mut() else { return false };
        let t = Instant::now();
        loop {
            match c.try_wait() {
                Ok(Some(status)) => return status.signal() == Some(nix::sys::signal::Signal::SIGKILL as i32),
                Ok(None) if t.elapsed() < limit => std::thread::sleep(Duration::from_millis(10)),
                _ => return false,
            }
        }
    }
}

impl Drop for Victim {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Write `content` to a new file of mode 0600.
fn secret_file(path: &Path, content: &str) -> PathBuf {
    std::fs::write(path, format!("{content}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path.to_path_buf()
}

fn read_state(path: &Path) -> String {
    std::fs::read_to_string(path).map(|s| s.trim().to_string()).unwrap_or_else(|_| "on".into())
}

fn write_state(path: &Path, value: &str) {
    std::fs::write(path, format!("{value}\n")).unwrap();
}

fn device(name: &str, kind: FenceDeviceKind) -> FenceDeviceConfig {
    FenceDeviceConfig {
        name: name.into(),
        kind,
        timeout: DEVICE_TIMEOUT,
        power_timeout: POWER_TIMEOUT,
        poll_interval: POLL_INTERVAL,
    }
}

fn toml_timings(out: &mut String) {
    let _ = writeln!(
        out,
        "timeout = \"{}ms\"\npower_timeout = \"{}ms\"\npoll_interval = \"{}ms\"",
        DEVICE_TIMEOUT.as_millis(),
        POWER_TIMEOUT.as_millis(),
        POLL_INTERVAL.as_millis()
    );
}

// ----- BMC -------------------------------------------------------------------------------------------------

/// A simulated BMC: ipmi_sim on its own loopback address, user `admin`, chassis power in a state file.
pub struct Bmc {
    pub addr: Ipv4Addr,
    pub port: u16,
    pub user: String,
    password: String,
    /// bmc.sh's directory: lan.conf, the chassis state (power, victim.pid, calls.log, fail, delay).
    pub dir: PathBuf,
    sim: Sim,
    _tmp: tempfile::TempDir,
}

impl Bmc {
    /// Start a BMC whose user `admin` has password `password`; it answers before this returns.
    pub fn start(password: &str) -> Bmc {
        let tmp = tempfile::Builder::new().prefix("failoverd-bmc-").tempdir().unwrap();
        let dir = tmp.path().join("bmc");
        std::fs::create_dir_all(&dir).unwrap();
        let addr = unique_loopback();
        let port = free_udp_port(addr);
        let mut cmd = Command::new(Path::new(SUPPORT_DIR).join("bmc.sh"));
        cmd.arg(&dir).arg(addr.to_string()).arg(port.to_string()).arg("admin").arg(password);
        let sim = Sim::spawn(format!("ipmi_sim on {addr}:{port}"), cmd, dir.join("ipmi_sim.log"));
        let mut bmc = Bmc { addr, port, user: "admin".into(), password: password.into(), dir, sim, _tmp: tmp };
        bmc.wait_until_answering();
        bmc
    }

    fn wait_until_answering(&mut self) {
        let t = Instant::now();
        while !udp_bound(self.addr, self.port) {
            self.sim.check_running();
            assert!(t.elapsed() < START_LIMIT, "ipmi_sim never bound {}:{}; log:\n{}", self.addr, self.port, self.sim.log_text());
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut last = String::new();
        while t.elapsed() < START_LIMIT {
            let out = Command::new(tool_path("ipmitool").expect("ipmitool"))
                .args(["-I", "lanplus", "-C", "3", "-N", "1", "-R", "1", "-H", &self.addr.to_string(), "-p"])
                .arg(self.port.to_string())
                .args(["-U", &self.user, "-E", "-L", "ADMINISTRATOR", "chassis", "power", "status"])
                .env("IPMI_PASSWORD", &self.password)
                .stdin(Stdio::null())
                .output()
                .expect("run ipmitool");
            let stdout = String::from_utf8_lossy(&out.stdout);
            if out.status.success() && stdout.contains("Chassis Power is") {
                return;
            }
            last = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
            self.sim.check_running();
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("ipmi_sim on {}:{} never answered ipmitool: {last}\nlog:\n{}", self.addr, self.port, self.sim.log_text());
    }

    /// A file holding `content` (a password, right or wrong) for `password_file` / `secret_options`.
    pub fn password_file(&self, content: &str) -> PathBuf {
        let n = INSTANCE.fetch_add(1, Ordering::Relaxed);
        secret_file(&self.dir.join(format!("password-{n}")), content)
    }

    /// An `ipmi` device for this BMC (lanplus, cipher 3, administrator), with `password`.
    pub fn device(&self, name: &str, password: &str) -> FenceDeviceConfig {
        device(
            name,
            FenceDeviceKind::Ipmi(IpmiConfig {
                host: self.addr.to_string(),
                port: self.port,
                username: self.user.clone(),
                password_file: self.password_file(password),
                lanplus: true,
                privilege: IpmiPrivilege::Administrator,
                cipher: Some(3),
            }),
        )
    }

    /// An `agent` device running Debian's fence_ipmilan against this BMC (options on stdin).
    pub fn fence_ipmilan_device(&self, name: &str) -> FenceDeviceConfig {
        let options = [
            ("ip", self.addr.to_string()),
            ("ipport", self.port.to_string()),
            ("username", self.user.clone()),
            ("lanplus", "1".into()),
            ("cipher", "3".into()),
            ("power_wait", "0".into()),
            ("power_timeout", "5".into()),
        ];
        let program = tool_path("fence_ipmilan").expect("fence_ipmilan");
        device(
            name,
            FenceDeviceKind::Agent(AgentConfig {
                program: program.display().to_string(),
                options: options.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
                secret_options: [("password".to_string(), self.password_file(&self.password))].into_iter().collect(),
                plug: None,
            }),
        )
    }

    /// The `[[fence_device]]` TOML of [`Bmc::device`] with the right password.
    pub fn toml(&self, name: &str) -> String {
        let mut s = format!(
            "[[fence_device]]\nname = \"{name}\"\nkind = \"ipmi\"\nhost = \"{}\"\nport = {}\nusername = \"{}\"\n\
             password_file = \"{}\"\n",
            self.addr,
            self.port,
            self.user,
            self.password_file(&self.password).display()
        );
        toml_timings(&mut s);
        s
    }

    /// "on" or "off": the chassis power as chassis.sh keeps it.
    pub fn power(&self) -> String {
        read_state(&self.dir.join("power"))
    }

    pub fn set_power(&self, on: bool) {
        write_state(&self.dir.join("power"), if on { "on" } else { "off" });
    }

    /// Powering off will SIGKILL `victim`.
    pub fn attach(&self, victim: &Victim) {
        std::fs::write(self.dir.join("victim.pid"), victim.pid().to_string()).unwrap();
    }

    /// Every call of the chassis script so far (`get power`, `set power 0`, `killed <pid>`...).
    pub fn calls(&self) -> String {
        std::fs::read_to_string(self.dir.join("calls.log")).unwrap_or_default()
    }

    /// Kill ipmi_sim: the BMC stops answering.
    pub fn stop(&mut self) {
        self.sim.stop();
    }
}

// ----- PDU -------------------------------------------------------------------------------------------------

/// How a faulty outlet misbehaves (pdu_handler.py's `outletN.fail`).
#[derive(Clone, Copy, Debug)]
pub enum OutletFault {
    /// A SET of the outlet is refused (inconsistentValue) and nothing changes.
    Refuse,
    /// The SET is accepted but the relay does not move.
    Stuck,
}

/// A simulated switched PDU: snmpd on its own loopback address with a pass_persist outlet handler.
pub struct Pdu {
    pub addr: Ipv4Addr,
    pub port: u16,
    pub profile: PduProfile,
    /// The community that may write; `public` may only read.
    pub community: String,
    /// pdu.sh's directory: snmpd.conf and the outlet state (outletN, outletN.pid, outletN.fail, calls.log).
    pub dir: PathBuf,
    sim: Sim,
    _tmp: tempfile::TempDir,
}

/// The config/`pdu.sh` name of a profile.
pub fn profile_name(p: PduProfile) -> &'static str {
    match p {
        PduProfile::ApcRpdu => "apc-rpdu",
        PduProfile::ApcMasterSwitch => "apc-masterswitch",
        PduProfile::Tripplite => "tripplite",
    }
}

impl Pdu {
    /// Start a PDU of `profile` with `outlets` outlets (all on) and write community `private`.
    pub fn start(profile: PduProfile, outlets: u32) -> Pdu {
        let tmp = tempfile::Builder::new().prefix("failoverd-pdu-").tempdir().unwrap();
        let dir = tmp.path().join("pdu");
        std::fs::create_dir_all(&dir).unwrap();
        let addr = unique_loopback();
        let port = free_udp_port(addr);
        let community = "private".to_string();
        let mut cmd = Command::new(Path::new(SUPPORT_DIR).join("pdu.sh"));
        cmd.arg(&dir)
            .arg(addr.to_string())
            .arg(port.to_string())
            .arg(profile_name(profile))
            .arg(outlets.to_string())
            .arg(&community);
        let sim = Sim::spawn(format!("snmpd on {addr}:{port}"), cmd, dir.join("snmpd.log"));
        let mut pdu = Pdu { addr, port, profile, community, dir, sim, _tmp: tmp };
        pdu.wait_until_answering();
        pdu
    }

    fn wait_until_answering(&mut self) {
        let t = Instant::now();
        while !udp_bound(self.addr, self.port) {
            self.sim.check_running();
            assert!(t.elapsed() < START_LIMIT, "snmpd never bound {}:{}; log:\n{}", self.addr, self.port, self.sim.log_text());
            std::thread::sleep(Duration::from_millis(10));
        }
        // The outlet subtree answers only once snmpd has started the pass_persist handler: read outlet 1.
        let oid = failoverd::fence::pdu_snmp::status_oid(self.profile, 1);
        let mut last = String::new();
        while t.elapsed() < START_LIMIT {
            let out = Command::new(tool_path("snmpget").expect("snmpget"))
                .args(["-v1", "-m", "", "-Oqv", "-t", "1", "-r", "0", "-c", "public"])
                .arg(format!("udp:{}:{}", self.addr, self.port))
                .arg(&oid)
                .stdin(Stdio::null())
                .output()
                .expect("run snmpget");
            let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if out.status.success() && stdout.parse::<u32>().is_ok() {
                return;
            }
            last = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
            self.sim.check_running();
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("snmpd on {}:{} never answered snmpget {oid}: {last}\nlog:\n{}", self.addr, self.port, self.sim.log_text());
    }

    /// A file holding `community` for `community_file` / `secret_options`.
    pub fn community_file(&self, community: &str) -> PathBuf {
        let n = INSTANCE.fetch_add(1, Ordering::Relaxed);
        secret_file(&self.dir.join(format!("community-{n}")), community)
    }

    /// A `pdu-snmp` device (SNMPv1) switching `outlets` of this PDU with `community`.
    pub fn device(&self, name: &str, outlets: &[u32], community: &str) -> FenceDeviceConfig {
        device(
            name,
            FenceDeviceKind::PduSnmp(PduSnmpConfig {
                host: self.addr.to_string(),
                port: self.port,
                community_file: self.community_file(community),
                outlets: outlets.to_vec(),
                profile: self.profile,
                snmp_version: SnmpVersion::V1,
            }),
        )
    }

    /// An `agent` device running Debian's fence_apc_snmp against this PDU for `outlet`.
    pub fn fence_apc_snmp_device(&self, name: &str, outlet: u32) -> FenceDeviceConfig {
        let options = [("ip", self.addr.to_string()), ("ipport", self.port.to_string()), ("snmp_version", "1".into())];
        let program = tool_path("fence_apc_snmp").expect("fence_apc_snmp");
        device(
            name,
            FenceDeviceKind::Agent(AgentConfig {
                program: program.display().to_string(),
                options: options.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
                secret_options: [("community".to_string(), self.community_file(&self.community))].into_iter().collect(),
                plug: Some(outlet.to_string()),
            }),
        )
    }

    /// The `[[fence_device]]` TOML of a `pdu-snmp` device for `outlets`, with the write community.
    pub fn toml(&self, name: &str, outlets: &[u32]) -> String {
        let list: Vec<String> = outlets.iter().map(u32::to_string).collect();
        let mut s = format!(
            "[[fence_device]]\nname = \"{name}\"\nkind = \"pdu-snmp\"\nhost = \"{}\"\nport = {}\n\
             community_file = \"{}\"\noutlets = [{}]\nprofile = \"{}\"\n",
            self.addr,
            self.port,
            self.community_file(&self.community).display(),
            list.join(", "),
            profile_name(self.profile)
        );
        toml_timings(&mut s);
        s
    }

    /// "on" or "off": outlet `n` as the handler keeps it.
    pub fn outlet(&self, n: u32) -> String {
        read_state(&self.dir.join(format!("outlet{n}")))
    }

    pub fn set_outlet(&self, n: u32, on: bool) {
        write_state(&self.dir.join(format!("outlet{n}")), if on { "on" } else { "off" });
    }

    /// Make outlet `n` misbehave (`Some`) or work again (`None`).
    pub fn set_fault(&self, n: u32, fault: Option<OutletFault>) {
        let path = self.dir.join(format!("outlet{n}.fail"));
        match fault {
            None => {
                let _ = std::fs::remove_file(path);
            }
            Some(OutletFault::Refuse) => std::fs::write(path, "refuse\n").unwrap(),
            Some(OutletFault::Stuck) => std::fs::write(path, "stuck\n").unwrap(),
        }
    }

    /// Switching outlet `n` off will SIGKILL `victim`.
    pub fn attach(&self, n: u32, victim: &Victim) {
        std::fs::write(self.dir.join(format!("outlet{n}.pid")), victim.pid().to_string()).unwrap();
    }

    /// Every SET so far, as the handler logged it.
    pub fn calls(&self) -> String {
        std::fs::read_to_string(self.dir.join("calls.log")).unwrap_or_default()
    }

    /// Kill snmpd and its handler: the PDU stops answering.
    #[allow(dead_code)] // as Bmc::stop; no test stops a PDU yet
    pub fn stop(&mut self) {
        self.sim.stop();
    }
}

// ----- fence_failoverd_lab ---------------------------------------------------------------------------------

/// A state directory for `fence-agents/fence_failoverd_lab`: one file per test host.
pub struct LabHosts {
    pub dir: tempfile::TempDir,
}

impl LabHosts {
    pub fn new() -> LabHosts {
        LabHosts { dir: tempfile::Builder::new().prefix("failoverd-labhosts-").tempdir().unwrap() }
    }

    /// The agent's path in this repository.
    pub fn program() -> PathBuf {
        Path::new(AGENTS_DIR).join("fence_failoverd_lab")
    }

    /// An `agent` device powering test host `plug` through fence_failoverd_lab, with `extra` options.
    pub fn device(&self, name: &str, plug: &str, extra: &[(&str, &str)]) -> FenceDeviceConfig {
        let mut options: std::collections::BTreeMap<String, String> =
            [("state_dir".to_string(), self.dir.path().display().to_string())].into_iter().collect();
        options.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        device(
            name,
            FenceDeviceKind::Agent(AgentConfig {
                program: Self::program().display().to_string(),
                options,
                secret_options: Default::default(),
                plug: Some(plug.into()),
            }),
        )
    }

    /// "on" or "off": host `plug` as the agent keeps it.
    pub fn power(&self, plug: &str) -> String {
        read_state(&self.dir.path().join(plug))
    }

    #[allow(dead_code)] // benches/fence.rs powers the host back on; the tests do not
    pub fn set_power(&self, plug: &str, on: bool) {
        write_state(&self.dir.path().join(plug), if on { "on" } else { "off" });
    }

    /// Powering `plug` off will SIGKILL `victim`.
    pub fn attach(&self, plug: &str, victim: &Victim) {
        std::fs::write(self.dir.path().join(format!("{plug}.pid")), victim.pid().to_string()).unwrap();
    }
}

impl Default for LabHosts {
    fn default() -> Self {
        LabHosts::new()
    }
}

/// Run `fut` to completion on a fresh single-threaded tokio runtime (process and time drivers on).
pub fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime").block_on(fut)
}

// ----- fence levels without a daemon -----------------------------------------------------------------------

/// Run the engine's [`FenceJob`] for `victim` through every level of `cfg`, its commands run as real
/// processes: the final progress (`Confirmed`, `AllFailed` or `NeedsOperator`) and each level failure.
pub async fn run_fence_job(cfg: &Config, victim: &str, action: FenceAction) -> (JobProgress, Vec<(usize, String)>) {
    let clock = Clock::start();
    let node = cfg.node(victim).unwrap_or_else(|| panic!("no node {victim} in the test config")).clone();
    let mut job = FenceJob::new(&node, action, FenceReason::Operator, clock.now());
    let mut progress = job.start_attempt(cfg, clock.now());
    let mut failures = Vec::new();
    loop {
        failures.append(&mut job.new_level_failures);
        progress = match progress {
            JobProgress::Run { command, .. } => {
                let result = exec::run(&command).await;
                job.on_result(cfg, clock.now(), &result)
            }
            JobProgress::WaitUntil(t) => {
                tokio::time::sleep_until(clock.instant_of(t)).await;
                job.on_wake(cfg, clock.now())
            }
            done => return (done, failures),
        };
    }
}
