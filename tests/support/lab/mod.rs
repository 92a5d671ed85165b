//! The multi-host lab: failoverd hosts as network namespaces on one machine, as root.
//!
//! Topology of one lab (names unique per run: `fl<id>...`):
//!
//! ```text
//!   bridge fl<id>r0 (ring0, 10.200.0.0/24) ── veth r0 ── mds1 10.200.0.11, mds2 .12, mds3 .13, witness .50
//!   bridge fl<id>r1 (ring1, 10.201.0.0/24) ── veth r1 ── mds1 10.201.0.11, mds2 .12, mds3 .13, witness .50
//!   bridge fl<id>mg (mgmt,  10.202.0.0/24) ── veth mg ── mds1 10.202.0.11, ...;  BMC namespace .101, .102, .103
//! ```
//!
//! The bridges carry no address in the root namespace and no namespace has a default route: nothing leaves
//! the lab. Each host namespace runs `failoverd run --log-format json` with its own config, state directory and
//! control socket, `FAILOVERD_SIM_HOST`/`FAILOVERD_SAN` set and the simulated storage tools (`failoverd
//! sim-san wrappers`) first on PATH. The BMC namespace runs one OpenIPMI `ipmi_sim` per host; its chassis
//! control program (`chassis.sh`) powers a host off by marking it off in the SAN and SIGKILLing every process of
//! the host's namespace, and on by starting the daemon again. The BMC must not live in the host's namespace,
//! or powering the host off would kill its own BMC.
//!
//! Faults: a link is cut with nftables drop rules on that interface inside the host namespace; partial loss is
//! a `numgen random mod 100 < N` drop rule (this kernel has no netem); a crash is a SIGKILL of the daemon alone
//! (the host stays powered and keeps writing MMP until it is fenced).
//!
//! Teardown happens in `Drop`, also when a test panics: processes killed namespace by namespace, namespaces and
//! bridges deleted, temporary directory removed. Each lab is recorded in `/run/failoverd-lab/` while it lives;
//! a lab whose test process died without running `Drop` (SIGKILL) is swept by the next lab that starts. Labs
//! take a machine-wide lock, so the cases of several test binaries or threads run one after the other: their
//! timing (dead_after 1 s) must not compete for the two CPUs with another lab.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::fcntl::{Flock, FlockArg};
use serde_json::Value;

pub use super::BIN;
use super::netns;
/// The ipmi_sim chassis-control program.
pub const CHASSIS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/lab/chassis.sh");
/// Where live labs are recorded, and the machine-wide lock.
const REGISTRY: &str = "/run/failoverd-lab";
/// Tools the lab drives.
pub const TOOLS: &[&str] = &["ip", "nft", "ipmi_sim", "ipmitool", "ss", "setsid"];
/// The UDP port of every heartbeat link and the witness.
const PORT: u16 = 7405;
const WITNESS_PORT: u16 = 7406;
const BMC_USER: &str = "admin";
const BMC_PASSWORD: &str = "lab-secret";
/// How often waits poll.
const POLL: Duration = Duration::from_millis(100);

// ----- what a lab is made of ---------------------------------------------------------------------------------

/// One failoverd node of a lab.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    pub name: String,
    pub hostid: u32,
    pub fence_priority: u32,
}

/// One ZFS target of a lab.
#[derive(Clone, Debug)]
pub struct TargetSpec {
    pub name: String,
    pub pool: String,
    pub dataset: String,
    pub mountpoint: String,
    pub lctl_device: String,
    /// Preference order.
    pub nodes: Vec<String>,
    pub start_order: i32,
}

/// The shape and timing of a lab.
#[derive(Clone, Debug)]
pub struct LabSpec {
    pub nodes: Vec<NodeSpec>,
    pub targets: Vec<TargetSpec>,
    /// `sim-san init --owner` values: `NODE` or `TARGET=NODE`.
    pub owners: Vec<String>,
    /// Run `failoverd witness` in its own namespace and give the cluster a `[witness]`.
    pub witness: bool,
    pub heartbeat_interval: Duration,
    pub dead_after: Duration,
    pub fence_delay: Duration,
    /// The simulated MMP activity check (OpenZFS: 20 s + up to 25 %).
    pub mmp_wait: Duration,
    /// `[cluster] disk_heartbeat` on a file in the lab's directory that every namespace host sees (the hosts
    /// share the filesystem), standing for the small shared LUN.
    pub disk_heartbeat: bool,
}

fn node(name: &str, hostid: u32, fence_priority: u32) -> NodeSpec {
    NodeSpec { name: name.into(), hostid, fence_priority }
}

impl LabSpec {
    /// mds1 (fence_priority 10) and mds2 (5); MGT (`mgspool/mgt`) and MDT0000 (`mdt0pool/mdt0`), both
    /// preferring mds1 and running there; heartbeat 100 ms, dead_after 1 s, fence_delay 2 s, MMP check 2 s.
    pub fn two_node() -> LabSpec {
        let nodes = vec![node("mds1", 0xa1b2_c3d4, 10), node("mds2", 0xb2c3_d4e5, 5)];
        LabSpec::with_nodes(nodes)
    }

    /// mds1, mds2 and mds3 (quorum two of three); both targets prefer mds1, then mds2, then mds3.
    pub fn three_node() -> LabSpec {
        let nodes = vec![node("mds1", 0xa1b2_c3d4, 10), node("mds2", 0xb2c3_d4e5, 5), node("mds3", 0xc3d4_e5f6, 1)];
        LabSpec::with_nodes(nodes)
    }

    fn with_nodes(nodes: Vec<NodeSpec>) -> LabSpec {
        let order: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
        let target = |name: &str, pool: &str, ds: &str, mp: &str, lctl: &str, start_order| TargetSpec {
            name: name.into(),
            pool: pool.into(),
            dataset: format!("{pool}/{ds}"),
            mountpoint: mp.into(),
            lctl_device: lctl.into(),
            nodes: order.clone(),
            start_order,
        };
        LabSpec {
            targets: vec![
                target("MGT", "mgspool", "mgt", "/lustre/mgt", "MGS", 0),
                target("MDT0000", "mdt0pool", "mdt0", "/lustre/mdt0", "lustre-MDT0000", 1),
            ],
            owners: vec![nodes[0].name.clone()],
            nodes,
            witness: false,
            heartbeat_interval: Duration::from_millis(100),
            dead_after: Duration::from_secs(1),
            fence_delay: Duration::from_secs(2),
            mmp_wait: Duration::from_secs(2),
            disk_heartbeat: false,
        }
    }

    /// Where targets start (`NODE` or `TARGET=NODE`, as `sim-san init --owner`), replacing the default.
    pub fn owners(mut self, owners: &[&str]) -> LabSpec {
        self.owners = owners.iter().map(|s| s.to_string()).collect();
        self
    }

    /// A target's preference order.
    pub fn prefer(mut self, target: &str, nodes: &[&str]) -> LabSpec {
        if let Some(t) = self.targets.iter_mut().find(|t| t.name == target) {
            t.nodes = nodes.iter().map(|s| s.to_string()).collect();
        }
        self
    }

    pub fn with_witness(mut self) -> LabSpec {
        self.witness = true;
        self
    }

    /// Give the cluster a disk heartbeat channel on a shared file (see [`Lab::disk_heartbeat_file`]).
    pub fn with_disk_heartbeat(mut self) -> LabSpec {
        self.disk_heartbeat = true;
        self
    }

    #[allow(dead_code)] // only failover_once (benches/failover.rs) sets it
    pub fn mmp_wait(mut self, d: Duration) -> LabSpec {
        self.mmp_wait = d;
        self
    }
}

fn ms(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

/// Address of a host on a link (`link` 0, 1 = rings, 2 = management).
fn host_ip(index: usize, link: usize) -> String {
    format!("10.{}.0.{}", 200 + link, 11 + index)
}

fn bmc_ip(index: usize) -> String {
    format!("10.202.0.{}", 101 + index)
}

fn witness_ip() -> String {
    "10.200.0.50".into()
}

// ----- prerequisites -----------------------------------------------------------------------------------------

fn is_ci() -> bool {
    matches!(std::env::var("CI").as_deref(), Ok("true") | Ok("1"))
}

/// Why the lab cannot run here, if it cannot: not root, or a tool missing.
pub fn missing_prerequisite() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("the lab needs root (network namespaces, bridges, nftables)".into());
    }
    let path = std::env::var("PATH").unwrap_or_default();
    let dirs: Vec<&str> = path.split(':').chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"]).collect();
    let missing: Vec<&str> =
        TOOLS.iter().copied().filter(|t| !dirs.iter().any(|d| Path::new(d).join(t).is_file())).collect();
    if !missing.is_empty() {
        return Some(format!(
            "missing tools: {} (apt-get install iproute2 nftables openipmi ipmitool util-linux)",
            missing.join(", ")
        ));
    }
    None
}

/// `true` when the lab can run; otherwise prints why and returns `false` (a skip), or panics under CI=true.
pub fn available(test: &str) -> bool {
    match missing_prerequisite() {
        None => true,
        Some(why) if is_ci() => panic!("{test}: CI=true and the lab cannot run: {why}"),
        Some(why) => {
            eprintln!("SKIPPED {test}: {why}");
            false
        }
    }
}

// ----- running commands --------------------------------------------------------------------------------------

pub use super::netns::run;
use super::netns::{kill_namespace, run_in, run_with};

/// The process exists and is not a zombie.
pub fn process_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // the state follows the parenthesised command name
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Poll `f` every [`POLL`] until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Result<T, String> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if start.elapsed() >= timeout {
            return Err(format!("timed out after {:.1} s waiting for {what}", timeout.as_secs_f64()));
        }
        std::thread::sleep(POLL);
    }
}

// ----- the registry of live labs -----------------------------------------------------------------------------

/// What a lab created outside its temporary directory, recorded so that a lab whose test process was killed
/// can be swept later.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
struct Created {
    pid: u32,
    namespaces: Vec<String>,
    bridges: Vec<String>,
    /// The lab's temporary directory.
    #[serde(default)]
    dir: Option<PathBuf>,
}

fn registry_file(id: &str) -> PathBuf {
    Path::new(REGISTRY).join(format!("{id}.json"))
}

/// Remove what `created` lists: processes of each namespace, the namespaces, the bridges.
fn destroy(created: &Created) -> Vec<String> {
    let mut problems = Vec::new();
    for ns in &created.namespaces {
        if let Err(e) = kill_namespace(ns) {
            problems.push(e);
        }
    }
    for ns in &created.namespaces {
        if let Err(e) = netns::delete_namespace(ns) {
            problems.push(e);
        }
    }
    for br in &created.bridges {
        if let Err(e) = netns::delete_bridge(br) {
            problems.push(e);
        }
    }
    problems
}

/// Sweep labs whose test process is gone.
fn sweep_stale() {
    let Ok(dir) = std::fs::read_dir(REGISTRY) else { return };
    for entry in dir.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let Ok(created) = std::fs::read_to_string(&path).map_err(|_| ()).and_then(|t| serde_json::from_str::<Created>(&t).map_err(|_| ()))
        else {
            continue;
        };
        if i32::try_from(created.pid).is_ok_and(process_alive) {
            continue;
        }
        eprintln!("lab: sweeping a lab left by dead process {}: {:?} {:?}", created.pid, created.namespaces, created.bridges);
        let problems = destroy(&created);
        if problems.is_empty() {
            // only a directory this harness made: a failoverd-lab-* folder in the temporary directory
            let ours = created.dir.as_deref().filter(|d| {
                d.parent() == Some(std::env::temp_dir().as_path())
                    && d.file_name().is_some_and(|n| n.to_string_lossy().starts_with("failoverd-lab-"))
            });
            if let Some(d) = ours {
                let _ = std::fs::remove_dir_all(d);
            }
            let _ = std::fs::remove_file(&path);
        } else {
            eprintln!("lab: could not sweep everything: {}", problems.join("; "));
        }
    }
}

// ----- a lab ---------------------------------------------------------------------------------------------------

/// One host of a lab.
#[derive(Clone, Debug)]
pub struct Host {
    pub name: String,
    pub index: usize,
    pub ns: String,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub socket: PathBuf,
    pub log: PathBuf,
    pub pidfile: PathBuf,
    pub start: PathBuf,
}

/// A drop rule on one interface of one namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Drop everything in and out.
    Cut,
    /// Drop this percentage at random, each way.
    #[allow(dead_code)] // partial loss: no lab case uses it yet (see Lab::loss)
    Loss(u32),
}

/// A running lab. Dropping it tears everything down.
pub struct Lab {
    pub spec: LabSpec,
    pub id: String,
    pub hosts: Vec<Host>,
    pub san: PathBuf,
    pub bmc_ns: String,
    pub witness_ns: Option<String>,
    created: Created,
    children: Vec<Child>,
    /// (namespace, interface) → fault.
    faults: std::cell::RefCell<BTreeMap<(String, String), Fault>>,
    stopped: PathBuf,
    dir: tempfile::TempDir,
    _serial: Flock<File>,
}

impl Lab {
    /// Build the lab and start every daemon; `None` (skip) when the machine cannot run labs, see
    /// [`available`]. Panics on any other setup failure (what was built is torn down first).
    pub fn start(test: &str, spec: LabSpec) -> Option<Lab> {
        if !available(test) {
            return None;
        }
        if spec.witness && !witness_available() {
            let why = "this failoverd has no `witness` subcommand yet";
            if is_ci() {
                panic!("{test}: {why}");
            }
            eprintln!("SKIPPED {test}: {why}");
            return None;
        }
        let mut lab = match Lab::build(spec) {
            Ok(lab) => lab,
            Err(e) => panic!("{test}: cannot build the lab: {e}"),
        };
        if let Err(e) = lab.boot() {
            panic!("{test}: cannot start the lab: {e}");
        }
        Some(lab)
    }

    /// Namespaces, bridges, veths, addresses, the SAN, configs, BMCs (no daemon yet).
    fn build(spec: LabSpec) -> Result<Lab, String> {
        std::fs::create_dir_all(REGISTRY).map_err(|e| format!("cannot create {REGISTRY}: {e}"))?;
        let lock_path = Path::new(REGISTRY).join("serial.lock");
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| format!("cannot open {}: {e}", lock_path.display()))?;
        let serial =
            Flock::lock(lock_file, FlockArg::LockExclusive).map_err(|(_, e)| format!("cannot lock {}: {e}", lock_path.display()))?;
        sweep_stale();
        let id = unique_id();
        let dir = tempfile::Builder::new().prefix(&format!("failoverd-lab-{id}-")).tempdir().map_err(|e| e.to_string())?;
        let san = dir.path().join("san");
        let stopped = dir.path().join("stopped");
        let hosts = spec
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let d = dir.path().join(&n.name);
                Host {
                    name: n.name.clone(),
                    index: i,
                    ns: format!("fl{id}-{}", n.name),
                    config: d.join("failoverd.toml"),
                    socket: d.join("control.sock"),
                    log: d.join("daemon.log"),
                    pidfile: d.join("daemon.pid"),
                    start: d.join("start.sh"),
                    dir: d,
                }
            })
            .collect();
        let mut lab = Lab {
            bmc_ns: format!("fl{id}-bmc"),
            witness_ns: spec.witness.then(|| format!("fl{id}-witness")),
            spec,
            id: id.clone(),
            hosts,
            san,
            created: Created { pid: std::process::id(), dir: Some(dir.path().to_path_buf()), ..Created::default() },
            children: Vec::new(),
            faults: std::cell::RefCell::new(BTreeMap::new()),
            stopped,
            dir,
            _serial: serial,
        };
        lab.build_network()?;
        lab.write_files()?;
        lab.start_bmcs()?;
        lab.start_witness()?;
        Ok(lab)
    }

    fn record(&self) {
        if let Ok(text) = serde_json::to_string(&self.created) {
            let _ = std::fs::write(registry_file(&self.id), text);
        }
    }

    fn add_namespace(&mut self, ns: &str) -> Result<(), String> {
        let made = netns::add_namespace(ns);
        // recorded whenever it exists: a namespace half set up is still swept
        if Path::new("/run/netns").join(ns).exists() {
            self.created.namespaces.push(ns.to_string());
            self.record();
        }
        made
    }

    fn add_bridge(&mut self, br: &str) -> Result<(), String> {
        netns::add_bridge(None, br)?;
        self.created.bridges.push(br.to_string());
        self.record();
        Ok(())
    }

    /// A veth from `bridge` (root namespace) into `ns`, named `inner` there, with `addrs` (/24).
    fn add_port(&mut self, bridge: &str, outer: &str, ns: &str, inner: &str, addrs: &[String]) -> Result<(), String> {
        netns::add_port(None, bridge, outer, ns, inner, addrs)
    }

    fn bridge(&self, link: usize) -> String {
        let suffix = ["r0", "r1", "mg"][link];
        format!("fl{}{suffix}", self.id)
    }

    fn build_network(&mut self) -> Result<(), String> {
        for link in 0..3 {
            let br = self.bridge(link);
            self.add_bridge(&br)?;
        }
        let id = self.id.clone();
        for h in self.hosts.clone() {
            self.add_namespace(&h.ns)?;
            for (link, inner) in ["r0", "r1", "mg"].iter().enumerate() {
                let outer = format!("fl{id}{}{}", h.index, ["a", "b", "m"][link]);
                self.add_port(&self.bridge(link), &outer, &h.ns, inner, &[host_ip(h.index, link)])?;
            }
        }
        let bmc = self.bmc_ns.clone();
        self.add_namespace(&bmc)?;
        let bmc_addrs: Vec<String> = (0..self.hosts.len()).map(bmc_ip).collect();
        self.add_port(&self.bridge(2), &format!("fl{id}bmc"), &bmc, "mg", &bmc_addrs)?;
        if let Some(w) = self.witness_ns.clone() {
            self.add_namespace(&w)?;
            for (link, inner) in ["r0", "r1"].iter().enumerate() {
                let addr = format!("10.{}.0.50", 200 + link);
                self.add_port(&self.bridge(link), &format!("fl{id}w{}", ["a", "b"][link]), &w, inner, &[addr])?;
            }
        }
        Ok(())
    }

    fn key_file(&self) -> PathBuf {
        self.dir.path().join("cluster.key")
    }

    /// The shared file of `[cluster] disk_heartbeat` (1 MiB of zeros at the start; used when the spec asks).
    pub fn disk_heartbeat_file(&self) -> PathBuf {
        self.dir.path().join("disk-heartbeat.img")
    }

    /// The cluster configuration as `host` runs it (its own state_dir and control socket).
    fn config_text(&self, host: &Host) -> String {
        let s = &self.spec;
        let mut t = format!(
            "# failoverd lab {id}: written by tests/support/lab\n[cluster]\nname = \"lab\"\nkey_file = \"{key}\"\n\
             links = [\"ring0\", \"ring1\"]\nheartbeat_interval = \"{hb}\"\ndead_after = \"{dead}\"\nfence_delay = \"{fd}\"\n\
             wait_for_all = true\nstate_dir = \"{state}\"\ncontrol_socket = \"{sock}\"\nimport_timeout = \"60s\"\n\
             mount_timeout = \"60s\"\ncommand_timeout = \"30s\"\nfence_retry_initial = \"1s\"\nfence_retry_max = \"4s\"\n\n",
            id = self.id,
            key = self.key_file().display(),
            hb = ms(s.heartbeat_interval),
            dead = ms(s.dead_after),
            fd = ms(s.fence_delay),
            state = host.dir.join("state").display(),
            sock = host.socket.display(),
        );
        if s.disk_heartbeat {
            let at = t.rfind("\n\n").unwrap_or(t.len());
            t.insert_str(at, &format!("\ndisk_heartbeat = \"{}\"", self.disk_heartbeat_file().display()));
        }
        for (i, n) in s.nodes.iter().enumerate() {
            let _ = write!(
                t,
                "[[node]]\nname = \"{name}\"\naddresses = [\"{}:{PORT}\", \"{}:{PORT}\"]\nhostid = \"{:08x}\"\n\
                 fence_priority = {}\nfence_levels = [[\"{name}-ipmi\"]]\n\n\
                 [[fence_device]]\nname = \"{name}-ipmi\"\nkind = \"ipmi\"\nhost = \"{}\"\nusername = \"{BMC_USER}\"\n\
                 password_file = \"{}\"\ncipher = 3\ntimeout = \"5s\"\npower_timeout = \"5s\"\npoll_interval = \"200ms\"\n\n",
                host_ip(i, 0),
                host_ip(i, 1),
                n.hostid,
                n.fence_priority,
                bmc_ip(i),
                self.dir.path().join("bmc.pw").display(),
                name = n.name,
            );
        }
        for tg in &s.targets {
            let nodes: Vec<String> = tg.nodes.iter().map(|n| format!("\"{n}\"")).collect();
            let _ = write!(
                t,
                "[[target]]\nname = \"{}\"\nkind = \"zfs\"\npool = \"{}\"\ndataset = \"{}\"\nmountpoint = \"{}\"\n\
                 nodes = [{}]\nstart_order = {}\nlctl_device = \"{}\"\n\n",
                tg.name,
                tg.pool,
                tg.dataset,
                tg.mountpoint,
                nodes.join(", "),
                tg.start_order,
                tg.lctl_device
            );
        }
        if s.witness {
            let _ = write!(t, "[witness]\naddress = \"{}:{WITNESS_PORT}\"\n", witness_ip());
        }
        t
    }

    fn write_files(&mut self) -> Result<(), String> {
        let write = |p: &Path, text: &str, mode: u32| -> Result<(), String> {
            std::fs::write(p, text).map_err(|e| format!("cannot write {}: {e}", p.display()))?;
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).map_err(|e| format!("chmod {}: {e}", p.display()))
        };
        let key: String = (0..32).map(|i| format!("{:02x}", (i * 37 + self.id.len() * 11 + 5) % 256)).collect();
        write(&self.key_file(), &format!("{key}\n"), 0o400)?;
        write(&self.dir.path().join("bmc.pw"), &format!("{BMC_PASSWORD}\n"), 0o400)?;
        if self.spec.disk_heartbeat {
            let img = self.disk_heartbeat_file();
            let f = File::create(&img).map_err(|e| format!("cannot create {}: {e}", img.display()))?;
            f.set_len(1 << 20).map_err(|e| format!("cannot size {}: {e}", img.display()))?;
        }
        for h in &self.hosts {
            std::fs::create_dir_all(h.dir.join("bmc/state")).map_err(|e| e.to_string())?;
            write(&h.config, &self.config_text(h), 0o644)?;
        }
        // the SAN, from the first host's config (every host's config describes the same cluster)
        let mut init = vec![
            BIN.to_string(),
            "sim-san".into(),
            "--san".into(),
            self.san.display().to_string(),
            "init".into(),
            "--config".into(),
            self.hosts[0].config.display().to_string(),
            "--mmp-wait".into(),
            ms(self.spec.mmp_wait),
        ];
        for o in &self.spec.owners {
            init.push("--owner".into());
            init.push(o.clone());
        }
        run(&init.iter().map(String::as_str).collect::<Vec<_>>())?;
        for h in &self.hosts {
            let wrappers = h.dir.join("bin");
            run(&[BIN, "sim-san", "--san", &self.san.display().to_string(), "wrappers", &wrappers.display().to_string(), "--host", &h.name])?;
            let start = format!(
                "#!/bin/sh\n# Boot {name}: start its daemon (run inside namespace {ns} by the lab and by its BMC's power-on)\n\
                 [ -e '{stopped}' ] && exit 0\n\
                 export FAILOVERD_SIM_HOST='{name}' FAILOVERD_SAN='{san}' RUST_LOG=info\n\
                 export PATH='{wrappers}':/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n\
                 echo $$ > '{pidfile}'\n\
                 exec '{bin}' run --config '{config}' --node '{name}' --log-format json </dev/null >/dev/null 2>>'{log}'\n",
                name = h.name,
                ns = h.ns,
                stopped = self.stopped.display(),
                san = self.san.display(),
                wrappers = wrappers.display(),
                pidfile = h.pidfile.display(),
                bin = BIN,
                config = h.config.display(),
                log = h.log.display(),
            );
            write(&h.start, &start, 0o755)?;
            let env = format!(
                "FAILOVERD='{BIN}'\nFAILOVERD_SAN='{}'\nHOST='{}'\nNETNS='{}'\nSTART='{}'\nSTOPPED='{}'\n",
                self.san.display(),
                h.name,
                h.ns,
                h.start.display(),
                self.stopped.display()
            );
            write(&h.dir.join("lab.env"), &env, 0o644)?;
            let lan = format!(
                "name \"bmc-{name}\"\nset_working_mc 0x20\n  startlan 1\n    addr {ip} 623\n    priv_limit admin\n\
                 \x20   allowed_auths_callback none md2 md5 straight\n    allowed_auths_user none md2 md5 straight\n\
                 \x20   allowed_auths_operator none md2 md5 straight\n    allowed_auths_admin none md2 md5 straight\n\
                 \x20   guid a123456789abcdefa123456789abcd{idx:02x}\n  endlan\n  chassis_control \"{CHASSIS} {dir}\"\n\
                 \x20 user 2 true \"{BMC_USER}\" \"{BMC_PASSWORD}\" admin 10 none md2 md5 straight\n",
                name = h.name,
                ip = bmc_ip(h.index),
                idx = h.index,
                dir = h.dir.display(),
            );
            write(&h.dir.join("bmc/lan.conf"), &lan, 0o644)?;
            write(&h.dir.join("bmc/bmc.emu"), "mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02\nmc_enable 0x20\n", 0o644)?;
        }
        Ok(())
    }

    fn spawn_logged(&mut self, ns: &str, argv: &[&str], log: &Path) -> Result<(), String> {
        let out = File::create(log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let child = netns::command_in(ns, argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .map_err(|e| format!("cannot start `{}` in {ns}: {e}", argv.join(" ")))?;
        self.children.push(child);
        Ok(())
    }

    fn start_bmcs(&mut self) -> Result<(), String> {
        for h in self.hosts.clone() {
            let d = h.dir.join("bmc");
            let (conf, emu, state) = (d.join("lan.conf"), d.join("bmc.emu"), d.join("state"));
            let bmc = self.bmc_ns.clone();
            let argv = ["ipmi_sim", "-n", "-c", &conf.display().to_string(), "-f", &emu.display().to_string(), "-s", &state.display().to_string()];
            self.spawn_logged(&bmc, &argv.iter().map(|s| s.as_ref()).collect::<Vec<&str>>(), &d.join("sim.log"))?;
        }
        for h in &self.hosts {
            let filter = format!("src {}:623", bmc_ip(h.index));
            wait_for(&format!("the BMC of {} to listen", h.name), Duration::from_secs(10), || {
                run_in(&self.bmc_ns, &["ss", "-Hlun", &filter]).ok().filter(|o| !o.trim().is_empty())
            })
            .map_err(|e| format!("{e}; ipmi_sim log: {}", std::fs::read_to_string(h.dir.join("bmc/sim.log")).unwrap_or_default()))?;
        }
        Ok(())
    }

    fn start_witness(&mut self) -> Result<(), String> {
        let Some(ns) = self.witness_ns.clone() else { return Ok(()) };
        let listen = format!("{}:{WITNESS_PORT}", witness_ip());
        let cluster = format!("lab={}", self.key_file().display());
        let log = self.dir.path().join("witness.log");
        let lease = ms(self.spec.dead_after);
        let argv = [BIN, "witness", "--listen", &listen, "--cluster", &cluster, "--lease", &lease, "--log-format", "json"];
        self.spawn_logged(&ns, &argv, &log)?;
        let filter = format!("src {listen}");
        wait_for("the witness to listen", Duration::from_secs(10), || {
            run_in(&ns, &["ss", "-Hlun", &filter]).ok().filter(|o| !o.trim().is_empty())
        })
        .map_err(|e| format!("{e}; witness log: {}", std::fs::read_to_string(&log).unwrap_or_default()))?;
        Ok(())
    }

    /// Start every daemon and wait until the cluster has settled.
    fn boot(&mut self) -> Result<(), String> {
        for h in self.hosts.clone() {
            self.start_daemon(&h.name)?;
        }
        self.wait_settled(Duration::from_secs(30))
    }

    pub fn host(&self, name: &str) -> &Host {
        self.hosts.iter().find(|h| h.name == name).unwrap_or_else(|| panic!("{name} is not a host of this lab"))
    }

    /// Start a host's daemon in its namespace, detached (as its BMC's power-on does).
    pub fn start_daemon(&self, name: &str) -> Result<(), String> {
        let h = self.host(name);
        let _ = std::fs::remove_file(&h.pidfile);
        run(&["ip", "netns", "exec", &h.ns, "setsid", "-f", &h.start.display().to_string()])?;
        wait_for(&format!("{name}'s control socket"), Duration::from_secs(20), || {
            std::os::unix::net::UnixStream::connect(&h.socket).ok()
        })
        .map(|_| ())
        .map_err(|e| format!("{e}\n{}", tail(&h.log, 20)))
    }

    /// Wait until every powered host's daemon answers, has discovered its storage, sees every other node on
    /// every link with quorum, and every target runs on exactly one host.
    pub fn wait_settled(&self, timeout: Duration) -> Result<(), String> {
        let mut last = String::new();
        wait_for("the cluster to settle", timeout, || match self.settled() {
            Ok(()) => Some(()),
            Err(e) => {
                last = e;
                None
            }
        })
        .map_err(|e| format!("{e}: {last}"))
    }

    fn settled(&self) -> Result<(), String> {
        for h in &self.hosts {
            let st = self.status(&h.name)?;
            if st["discovered"] != Value::Bool(true) || st["quorum"]["quorate"] != Value::Bool(true) {
                return Err(format!("{}: discovered {} quorum {}", h.name, st["discovered"], st["quorum"]));
            }
            for p in st["peers"].as_array().into_iter().flatten() {
                let links_up = p["links"].as_array().into_iter().flatten().all(|l| l["up"] == Value::Bool(true));
                if p["alive"] != Value::Bool(true) || !links_up {
                    return Err(format!("{} sees {} alive {} links {}", h.name, p["node"], p["alive"], p["links"]));
                }
            }
        }
        let show = self.san_show()?;
        for t in &self.spec.targets {
            let on = &show["targets"][&t.name]["mounted_on"];
            if on.as_array().map(Vec::len) != Some(1) {
                return Err(format!("target {} mounted on {on}", t.name));
            }
        }
        Ok(())
    }

    // ----- faults ------------------------------------------------------------------------------------------

    /// SIGKILL a host's daemon (the host stays powered). Returns when it was killed.
    pub fn kill_daemon(&self, name: &str) -> Result<SystemTime, String> {
        self.signal_daemon(name, nix::sys::signal::Signal::SIGKILL)
    }

    /// Send `signal` to a host's daemon. Returns when it was sent.
    pub fn signal_daemon(&self, name: &str, signal: nix::sys::signal::Signal) -> Result<SystemTime, String> {
        let h = self.host(name);
        let pid: i32 = std::fs::read_to_string(&h.pidfile)
            .map_err(|e| format!("{}: {e}", h.pidfile.display()))?
            .trim()
            .parse()
            .map_err(|e| format!("{}: {e}", h.pidfile.display()))?;
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() != "failoverd" || !process_alive(pid) {
            return Err(format!("{name}'s daemon (pid {pid}) is not running (comm {comm:?})"));
        }
        let at = SystemTime::now();
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal).map_err(|e| format!("kill -{signal} {pid}: {e}"))?;
        Ok(at)
    }

    /// The daemon pid of a host, if it runs.
    pub fn daemon_pid(&self, name: &str) -> Option<i32> {
        let pid: i32 = std::fs::read_to_string(&self.host(name).pidfile).ok()?.trim().parse().ok()?;
        process_alive(pid).then_some(pid)
    }

    fn apply_faults(&self, ns: &str) -> Result<(), String> {
        let mut rules = String::new();
        for ((n, iface), f) in self.faults.borrow().iter() {
            if n != ns {
                continue;
            }
            let cond = match f {
                Fault::Cut => String::new(),
                Fault::Loss(pct) => format!("numgen random mod 100 < {pct} "),
            };
            let _ = writeln!(rules, "    iifname \"{iface}\" {cond}drop");
            let _ = writeln!(rules, "    oifname \"{iface}\" {cond}drop");
        }
        // The table is replaced as a whole in one transaction: create (harmless if there), delete, re-create.
        let mut text = String::from("table inet folab {}\ndelete table inet folab\n");
        if !rules.is_empty() {
            let (input, output): (Vec<&str>, Vec<&str>) = rules.lines().partition(|l| l.contains("iifname"));
            let _ = write!(
                text,
                "table inet folab {{\n  chain input {{\n    type filter hook input priority 0; policy accept;\n{}\n  }}\n  \
                 chain output {{\n    type filter hook output priority 0; policy accept;\n{}\n  }}\n}}\n",
                input.join("\n"),
                output.join("\n")
            );
        }
        run_with(&["ip", "netns", "exec", ns, "nft", "-f", "-"], Some(&text)).map(|_| ())
    }

    fn set_fault(&self, host: &str, link: usize, fault: Option<Fault>) -> Result<(), String> {
        let ns = self.host(host).ns.clone();
        let key = (ns.clone(), format!("r{link}"));
        match fault {
            Some(f) => self.faults.borrow_mut().insert(key, f),
            None => self.faults.borrow_mut().remove(&key),
        };
        self.apply_faults(&ns)
    }

    /// Drop everything on `host`'s ring `link` (both ways).
    pub fn cut(&self, host: &str, link: usize) -> Result<(), String> {
        self.set_fault(host, link, Some(Fault::Cut))
    }

    /// Drop `pct` % of `host`'s packets on ring `link` at random, each way.
    #[allow(dead_code)] // no lab case uses partial loss yet
    pub fn loss(&self, host: &str, link: usize, pct: u32) -> Result<(), String> {
        self.set_fault(host, link, Some(Fault::Loss(pct)))
    }

    /// Remove the fault on `host`'s ring `link`.
    pub fn heal(&self, host: &str, link: usize) -> Result<(), String> {
        self.set_fault(host, link, None)
    }

    /// Cut both rings of `host`: it hears nobody and nobody hears it (the management network stays up, so
    /// the BMCs can still be reached).
    pub fn isolate(&self, host: &str) -> Result<(), String> {
        self.cut(host, 0)?;
        self.cut(host, 1)
    }

    /// Power a host on or off through its BMC with `ipmitool` (lanplus, cipher 3), from the BMC network.
    pub fn bmc_power(&self, host: &str, on: bool) -> Result<String, String> {
        let h = self.host(host);
        let ip = bmc_ip(h.index);
        let verb = if on { "on" } else { "off" };
        let argv = [
            "env", &format!("IPMI_PASSWORD={BMC_PASSWORD}"), "ipmitool", "-I", "lanplus", "-H", &ip, "-p", "623", "-U", BMC_USER, "-E",
            "-L", "ADMINISTRATOR", "-C", "3", "-N", "1", "-R", "2", "chassis", "power", verb,
        ];
        run_in(&self.bmc_ns, &argv)
    }

    // ----- observation -------------------------------------------------------------------------------------

    /// `failoverd status --json` of a host's daemon.
    pub fn status(&self, host: &str) -> Result<Value, String> {
        let h = self.host(host);
        let out = run(&[BIN, "status", "--json", "--socket", &h.socket.display().to_string()])?;
        serde_json::from_str(&out).map_err(|e| format!("{host}: status is not JSON: {e}"))
    }

    /// `failoverd migrate TARGET --to NODE`, asked of `via`'s daemon; returns when the command does (it follows
    /// the move until the target runs on NODE).
    pub fn migrate(&self, via: &str, target: &str, to: &str) -> Result<String, String> {
        let h = self.host(via);
        run(&[BIN, "migrate", target, "--to", to, "--socket", &h.socket.display().to_string()])
    }

    /// `failoverd migrate TARGET --to NODE --no-wait`: returns once the daemon accepted the request.
    pub fn migrate_no_wait(&self, via: &str, target: &str, to: &str) -> Result<String, String> {
        let h = self.host(via);
        run(&[BIN, "migrate", target, "--to", to, "--no-wait", "--socket", &h.socket.display().to_string()])
    }

    /// `sim-san show`.
    pub fn san_show(&self) -> Result<Value, String> {
        let out = run(&[BIN, "sim-san", "--san", &self.san.display().to_string(), "show"])?;
        serde_json::from_str(&out).map_err(|e| format!("sim-san show: {e}"))
    }

    /// `sim-san check`: Ok(its "ok" line) or Err(the violations).
    pub fn san_check(&self) -> Result<String, String> {
        run(&[BIN, "sim-san", "--san", &self.san.display().to_string(), "check"])
    }

    /// `sim-san history --json`, one value per record.
    pub fn san_history(&self) -> Result<Vec<Value>, String> {
        let out = run(&[BIN, "sim-san", "--san", &self.san.display().to_string(), "history", "--json"])?;
        out.lines().map(|l| serde_json::from_str(l).map_err(|e| format!("history line {l:?}: {e}"))).collect()
    }

    /// The SAN's commands whose argv starts with `prefix` (e.g. `["zpool", "import"]`), as (host, argv, exit).
    pub fn san_commands(&self, prefix: &[&str]) -> Result<Vec<(String, Vec<String>, String)>, String> {
        Ok(self
            .san_history()?
            .into_iter()
            .filter(|r| r["kind"] == "command")
            .filter_map(|r| {
                let argv: Vec<String> = r["argv"].as_array()?.iter().filter_map(|a| a.as_str().map(str::to_string)).collect();
                argv.iter().zip(prefix).all(|(a, p)| a == p).then(|| (r["host"].as_str().unwrap_or("").to_string(), argv, r["exit"].as_str().unwrap_or("").to_string()))
            })
            .collect())
    }

    /// Where the SAN says each target is mounted (on powered hosts).
    pub fn placement(&self) -> Result<BTreeMap<String, Vec<String>>, String> {
        let show = self.san_show()?;
        Ok(self
            .spec
            .targets
            .iter()
            .map(|t| {
                let on = show["targets"][&t.name]["mounted_on"].as_array().into_iter().flatten().filter_map(|v| v.as_str().map(str::to_string)).collect();
                (t.name.clone(), on)
            })
            .collect())
    }

    /// Whether the SAN says a host is powered.
    pub fn powered(&self, host: &str) -> Result<bool, String> {
        Ok(self.san_show()?["hosts"][host]["powered"] == Value::Bool(true))
    }

    /// Wait until every target is imported and mounted on `node` alone, and `node`'s daemon says it runs them.
    pub fn wait_all_on(&self, node: &str, timeout: Duration) -> Result<(), String> {
        let mut last = String::new();
        wait_for(&format!("every target to run on {node}"), timeout, || {
            let placement = self.placement().ok()?;
            let st = self.status(node).ok()?;
            let running = self.spec.targets.iter().all(|t| {
                st["targets"].as_array().into_iter().flatten().any(|s| s["target"] == t.name.as_str() && s["local"] == "running")
            });
            last = format!("SAN placement {placement:?}; {node} targets {}", st["targets"]);
            (running && placement.values().all(|on| on == &[node.to_string()])).then_some(())
        })
        .map_err(|e| format!("{e}: {last}"))
    }

    /// The events (and other lines) of a host's daemon log, every incarnation.
    pub fn log(&self, host: &str) -> Timeline {
        Timeline::read(&self.host(host).log)
    }

    /// Logs of every host, SAN history and BMC calls: printed when a test fails.
    pub fn diagnostics(&self) -> String {
        let mut s = String::new();
        for h in &self.hosts {
            let _ = writeln!(s, "----- {} daemon log (last 40 lines) -----\n{}", h.name, tail(&h.log, 40));
            let _ = writeln!(s, "----- {} BMC calls -----\n{}", h.name, tail(&h.dir.join("bmc/calls.log"), 20));
        }
        let history = run(&[BIN, "sim-san", "--san", &self.san.display().to_string(), "history"]).unwrap_or_else(|e| e);
        let _ = writeln!(s, "----- SAN history -----\n{history}");
        if self.witness_ns.is_some() {
            let _ = writeln!(s, "----- witness log -----\n{}", tail(&self.dir.path().join("witness.log"), 30));
        }
        s
    }

    /// Fail the test (the lab's diagnostics are printed by `Drop` while it unwinds).
    pub fn fail(&self, msg: &str) -> ! {
        panic!("lab {}: {msg}", self.id)
    }

    /// Unwrap a result or fail with the diagnostics.
    pub fn ok<T>(&self, r: Result<T, String>) -> T {
        r.unwrap_or_else(|e| self.fail(&e))
    }

    /// The checks every case ends with: `sim-san check` clean and each target on exactly one powered host.
    pub fn assert_safe(&self) {
        if let Err(e) = self.san_check() {
            self.fail(&format!("the SAN saw a safety violation: {e}"));
        }
        for (t, on) in self.ok(self.placement()) {
            if on.len() != 1 {
                self.fail(&format!("target {t} is mounted on {on:?}, not on exactly one powered host"));
            }
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("lab {} diagnostics:\n{}", self.id, self.diagnostics());
        }
        let _ = File::create(&self.stopped);
        // BMCs first: a power-on in flight must not start a daemon after its namespace was emptied
        let mut order = vec![self.bmc_ns.clone()];
        order.extend(self.created.namespaces.iter().filter(|n| **n != self.bmc_ns).cloned());
        let created = Created { namespaces: order, ..self.created.clone() };
        let problems = destroy(&created);
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        if problems.is_empty() {
            let _ = std::fs::remove_file(registry_file(&self.id));
        } else {
            eprintln!("lab {}: teardown problems (left in {REGISTRY} for the next sweep): {}", self.id, problems.join("; "));
        }
    }
}

/// A short id unique among live labs: 4 hex digits (interface names must stay within 15 characters).
fn unique_id() -> String {
    let seed = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0) ^ std::process::id().rotate_left(16);
    for k in 0..0x1_0000u32 {
        let id = format!("{:04x}", (seed.wrapping_add(k.wrapping_mul(0x9e37))) & 0xffff);
        let taken = registry_file(&id).exists() || Path::new("/sys/class/net").join(format!("fl{id}r0")).exists();
        if !taken {
            return id;
        }
    }
    panic!("no free lab id")
}

/// Whether this failoverd has the `witness` subcommand.
fn witness_available() -> bool {
    Command::new(BIN).args(["witness", "--help"]).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// The last `n` lines of a file.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| format!("({}: {e})", path.display()));
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

// ----- the daemons' JSON logs --------------------------------------------------------------------------------

/// One line of a daemon's JSON log.
#[derive(Clone, Debug)]
pub struct LogLine {
    /// Wall-clock time, microseconds since the Unix epoch.
    pub unix_us: u64,
    #[allow(dead_code)] // shown when a line is printed ({:?}); no case reads it
    pub level: String,
    pub message: String,
    /// For `event` lines: the event name (`peer_dead`...).
    pub event: Option<String>,
    /// For `event` lines: the event's own JSON (`{"event":"peer_dead","node":"mds1",...}`).
    pub detail: Value,
    pub fields: Value,
}

impl LogLine {
    /// Whether this is event `name` and every (key, value) of `with` matches its detail (strings compare
    /// as strings, anything else as the JSON the value parses to: `("link", "1")` matches `"link": 1`).
    pub fn is(&self, name: &str, with: &[(&str, &str)]) -> bool {
        self.event.as_deref() == Some(name)
            && with.iter().all(|(k, v)| match &self.detail[*k] {
                Value::String(s) => s == v,
                other => serde_json::from_str::<Value>(v).is_ok_and(|want| &want == other),
            })
    }

    pub fn time(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_micros(self.unix_us)
    }
}

/// A daemon's log, parsed.
#[derive(Clone, Debug, Default)]
pub struct Timeline {
    pub lines: Vec<LogLine>,
}

impl Timeline {
    pub fn read(path: &Path) -> Timeline {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter_map(|v| {
                let unix_us = parse_rfc3339_us(v["timestamp"].as_str()?)?;
                let fields = v["fields"].clone();
                let message = fields["message"].as_str().unwrap_or("").to_string();
                let event = (message == "event").then(|| fields["event"].as_str().map(str::to_string)).flatten();
                let detail = fields["detail"].as_str().and_then(|d| serde_json::from_str(d).ok()).unwrap_or(Value::Null);
                Some(LogLine { unix_us, level: v["level"].as_str().unwrap_or("").to_string(), message, event, detail, fields })
            })
            .collect();
        Timeline { lines }
    }

    /// Events only.
    pub fn events(&self) -> impl Iterator<Item = &LogLine> {
        self.lines.iter().filter(|l| l.event.is_some())
    }

    /// The first matching event at or after `since`.
    pub fn first(&self, since: SystemTime, name: &str, with: &[(&str, &str)]) -> Option<&LogLine> {
        self.events().find(|l| l.time() >= since && l.is(name, with))
    }

    /// Matching events at or after `since`.
    pub fn count(&self, since: SystemTime, name: &str, with: &[(&str, &str)]) -> usize {
        self.events().filter(|l| l.time() >= since && l.is(name, with)).count()
    }

    /// Each step found after the previous one (and after `since`), or an error naming the first missing step.
    pub fn in_order(&self, since: SystemTime, steps: &[(&str, &[(&str, &str)])]) -> Result<Vec<&LogLine>, String> {
        let mut at = 0usize;
        let mut found = Vec::new();
        for (name, with) in steps {
            let pos = self.lines[at..]
                .iter()
                .position(|l| l.time() >= since && l.is(name, with))
                .ok_or_else(|| format!("event {name} {with:?} not found after {:?} in order; events: {}", found.last().map(|l: &&LogLine| l.event.clone()), self.summary(since)))?;
            at += pos;
            found.push(&self.lines[at]);
            at += 1;
        }
        Ok(found)
    }

    /// The events since `since`, one per line, for error messages.
    pub fn summary(&self, since: SystemTime) -> String {
        self.events().filter(|l| l.time() >= since).map(|l| l.detail.to_string()).collect::<Vec<_>>().join("\n  ")
    }
}

/// `2026-11-25T02:31:14.633981Z` → microseconds since the Unix epoch.
pub fn parse_rfc3339_us(s: &str) -> Option<u64> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':').map(|x| x.parse::<u64>().ok());
    let (hh, mm, ss) = (t.next()??, t.next()??, t.next()??);
    let digits = frac.len().min(6);
    let us_frac = frac[..digits].parse::<u64>().ok()? * 10u64.pow((6 - digits) as u32);
    // days from civil (Howard Hinnant's algorithm)
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = u64::try_from(era * 146_097 + doe - 719_468).ok()?;
    Some(((days * 86_400 + hh * 3600 + mm * 60 + ss) * 1_000_000) + us_frac)
}

// ----- the failover measurement for benchmarks ---------------------------------------------------------------

/// One crash-to-takeover run, each duration measured from the SIGKILL of the victim's daemon.
#[allow(dead_code)] // benches/failover.rs's measurement: no test builds one
#[derive(Clone, Debug)]
pub struct FailoverTiming {
    /// Until the survivor logged `peer_dead` for the victim.
    pub detected: Duration,
    /// Until the survivor logged `fence_confirmed` for the victim.
    pub fenced: Duration,
    /// Until the survivor logged `sequence_done` (forced) for the last target: every target imported, mounted
    /// and verified (`df`, `lctl dl`).
    pub verified: Duration,
    /// The survivor's steps of the forced sequences: (target, step, started, done), from its `step_started`
    /// and `step_done` events, in the order they started (shows the pools' steps overlapping).
    pub steps: Vec<(String, String, Duration, Duration)>,
}

/// Build a two-node lab (both targets on mds1), SIGKILL mds1's daemon, and measure until mds2 runs every
/// target verified. `mmp_wait` is the simulated MMP activity check (20 s is OpenZFS's real base length).
/// Errors when the lab cannot run here or the failover does not complete within `timeout`.
#[allow(dead_code)] // called by benches/failover.rs only
pub fn failover_once(mmp_wait: Duration, timeout: Duration) -> Result<FailoverTiming, String> {
    if let Some(why) = missing_prerequisite() {
        return Err(format!("the lab cannot run here: {why}"));
    }
    let spec = LabSpec::two_node().mmp_wait(mmp_wait);
    let mut lab = Lab::build(spec)?;
    lab.boot().map_err(|e| format!("{e}\n{}", lab.diagnostics()))?;
    let killed = lab.kill_daemon("mds1")?;
    lab.wait_all_on("mds2", timeout).map_err(|e| format!("{e}\n{}", lab.diagnostics()))?;
    let log = lab.log("mds2");
    let since = |name: &str, with: &[(&str, &str)]| -> Result<Duration, String> {
        let line = log.first(killed, name, with).ok_or_else(|| format!("mds2 never logged {name} {with:?}"))?;
        line.time().duration_since(killed).map_err(|e| e.to_string())
    };
    let detected = since("peer_dead", &[("node", "mds1")])?;
    let fenced = since("fence_confirmed", &[("node", "mds1")])?;
    let mut verified = Duration::ZERO;
    for t in &lab.spec.targets {
        verified = verified.max(since("sequence_done", &[("target", &t.name), ("sequence", "forced")])?);
    }
    let mut steps = Vec::new();
    for start in log.events().filter(|l| l.time() >= killed && l.is("step_started", &[("sequence", "forced")])) {
        let target = start.detail["target"].as_str().unwrap_or_default().to_string();
        let step = start.detail["step"].as_str().unwrap_or_default().to_string();
        let begun = start.time().duration_since(killed).map_err(|e| e.to_string())?;
        let done = log
            .events()
            .find(|l| l.time() >= start.time() && l.is("step_done", &[("target", &target), ("step", &step), ("sequence", "forced")]))
            .and_then(|l| l.time().duration_since(killed).ok())
            .unwrap_or(begun);
        steps.push((target, step, begun, done));
    }
    Ok(FailoverTiming { detected, fenced, verified, steps })
}
