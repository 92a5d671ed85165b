//! `failoverd doctor` as a real process, against fake tools put first on PATH that print what the real ones
//! print (`zpool get -H -o name,property,value multihost,cachefile POOL...`: one `pool\tproperty\tvalue`
//! line per property, `cannot open 'POOL': no such pool` on stderr and exit 1 for a pool not imported), a
//! temporary hostid file, and key files of various modes. Each test asserts the printed lines and the exit
//! code.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::BIN;
const KEY: &str = "4f1c2a9be07d3385a6f0c1d2e3f405162738495a6b7c8d9e0f1a2b3c4d5e6f70";
const MDS1_HOSTID: u32 = 0xa1a1_a1a1;
const MDS2_HOSTID: u32 = 0xb2b2_b2b2;

const FAKE_ZPOOL: &str = r#"#!/bin/sh
# fake zpool: `zpool get -H -o name,property,value multihost,cachefile POOL...` in the real format
echo "$*" >> "$(dirname "$0")/zpool.argv"
if [ "$1" != get ] || [ "$2" != -H ] || [ "$3" != -o ] || [ "$4" != name,property,value ] || [ "$5" != multihost,cachefile ]; then
    echo "fake zpool: unexpected arguments: $*" >&2
    exit 2
fi
shift 5
rc=0
for pool in "$@"; do
    case "$pool" in
        goodpool) printf '%s\tmultihost\ton\n%s\tcachefile\tnone\n' "$pool" "$pool" ;;
        mmpoff) printf '%s\tmultihost\toff\n%s\tcachefile\tnone\n' "$pool" "$pool" ;;
        cached) printf '%s\tmultihost\ton\n%s\tcachefile\t-\n' "$pool" "$pool" ;;
        *) echo "cannot open '$pool': no such pool" >&2; rc=1 ;;
    esac
done
exit $rc
"#;

/// `ipmitool ... chassis power status` as a BMC that reads on answers it; the state comes from a file
/// beside the script (absent: on), so a test can power the peer "off".
const FAKE_IPMITOOL: &str = r#"#!/bin/sh
state=$(cat "$(dirname "$0")/../bmc.state" 2>/dev/null || echo on)
[ "$state" = down ] && { echo "Error: Unable to establish IPMI v2 / RMCP+ session" >&2; exit 1; }
echo "Chassis Power is $state"
"#;

/// A FenceAgentAPI agent: options on stdin, `metadata` declares ip, username, password and plug; `status`
/// exits 0 (on).
const FAKE_AGENT: &str = r#"#!/bin/sh
input=$(cat)
case "$input" in
*action=metadata*)
    cat <<'XML'
<?xml version="1.0" ?>
<resource-agent name="fence_fake" shortdesc="a fake agent for doctor's tests">
<parameters>
    <parameter name="action"><content type="string" default="reboot"/></parameter>
    <parameter name="ip"><content type="string"/></parameter>
    <parameter name="username"><content type="string"/></parameter>
    <parameter name="password"><content type="string"/></parameter>
    <parameter name="plug"><content type="string"/></parameter>
</parameters>
<actions><action name="on"/><action name="off"/><action name="status"/><action name="metadata"/></actions>
</resource-agent>
XML
    exit 0 ;;
*action=status*) exit 0 ;;
esac
exit 1
"#;

/// A temporary host: fake tools, hostid file, key and secret files, and a config.
struct Host {
    dir: tempfile::TempDir,
}

impl Host {
    fn new() -> Host {
        let dir = tempfile::tempdir().unwrap();
        let host = Host { dir };
        fs::create_dir_all(host.bin()).unwrap();
        host.tool("zpool", FAKE_ZPOOL);
        // every tool doctor looks for, so the result does not depend on what this machine has installed
        for t in ["zdb", "zfs", "lctl", "mount", "umount", "mkdir", "df"] {
            host.tool(t, "#!/bin/sh\nexit 0\n");
        }
        // the fence devices answer `status` (doctor asks every device this node would use against a peer)
        host.tool("ipmitool", FAKE_IPMITOOL);
        host.tool("fence_fake", FAKE_AGENT);
        host.secret("cluster.key", KEY, 0o400);
        host.secret("bmc.pw", "secret", 0o400);
        host.secret("agent.pw", "secret", 0o600);
        host.hostid_bytes(&MDS1_HOSTID.to_ne_bytes());
        fs::create_dir_all(host.path("mnt")).unwrap();
        host
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn bin(&self) -> PathBuf {
        self.path("bin")
    }

    fn tool(&self, name: &str, script: &str) {
        let p = self.bin().join(name);
        fs::write(&p, script).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn secret(&self, name: &str, contents: &str, mode: u32) {
        let p = self.path(name);
        let _ = fs::remove_file(&p);
        fs::write(&p, contents).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    }

    fn hostid_bytes(&self, bytes: &[u8]) {
        fs::write(self.path("hostid"), bytes).unwrap();
    }

    /// The config: mds1 (this host) and mds2, mds2 fenced by an agent then a BMC (so mds1 runs those), and
    /// `targets` (TOML `[[target]]` blocks; `@` stands for the temp dir).
    fn config(&self, targets: &str, agent_program: &str) -> PathBuf {
        let d = self.dir.path().display().to_string();
        let text = format!(
            r#"[cluster]
name = "doc"
key_file = "{d}/cluster.key"
links = ["ring0"]
state_dir = "{d}/state"
control_socket = "{d}/control.sock"

[[node]]
name = "mds1"
addresses = ["127.0.0.1:17401"]
hostid = "{MDS1_HOSTID:08x}"
fence_levels = [["mds1-bmc"]]

[[node]]
name = "mds2"
addresses = ["127.0.0.1:17402"]
hostid = "{MDS2_HOSTID:08x}"
fence_levels = [["mds2-agent"], ["mds2-bmc"]]

[[fence_device]]
name = "mds1-bmc"
kind = "ipmi"
host = "10.0.9.1"
username = "admin"
password_file = "{d}/not-read-by-mds1.pw"

[[fence_device]]
name = "mds2-bmc"
kind = "ipmi"
host = "10.0.9.2"
username = "admin"
password_file = "{d}/bmc.pw"

[[fence_device]]
name = "mds2-agent"
kind = "agent"
program = "{agent_program}"
options = {{ ip = "10.0.9.2", username = "admin" }}
secret_options = {{ password = "{d}/agent.pw" }}

{}
"#,
            targets.replace('@', &d)
        );
        let p = self.path("cluster.toml");
        fs::write(&p, text).unwrap();
        p
    }

    /// Run `failoverd doctor` as mds1; (exit code, stdout lines).
    fn doctor(&self, config: &Path, extra: &[&str]) -> (i32, Vec<String>) {
        let no_spl = self.path("no-spl-module").display().to_string();
        let extra = if extra.contains(&"--spl-hostid-file") { extra.to_vec() } else { [extra, &["--spl-hostid-file", &no_spl]].concat() };
        let path = format!("{}:{}", self.bin().display(), std::env::var("PATH").unwrap_or_default());
        let out = Command::new(BIN)
            .args(["doctor", "--config"])
            .arg(config)
            .args(["--node", "mds1", "--uname", "mds1.lab.example", "--hostid-file"])
            .arg(self.path("hostid"))
            .args(extra)
            .env("PATH", path)
            .output()
            .unwrap();
        let stdout = String::from_utf8(out.stdout).unwrap();
        println!("--- failoverd doctor ---\n{stdout}{}", String::from_utf8_lossy(&out.stderr));
        (out.status.code().unwrap(), stdout.lines().map(str::to_string).collect())
    }

    /// Run `failoverd doctor` as mds1 (uname mds1, no SPL module) with exactly `path` as PATH.
    fn doctor_with_path(&self, config: &Path, path: impl AsRef<std::ffi::OsStr>) -> std::process::Output {
        Command::new(BIN)
            .args(["doctor", "--config"])
            .arg(config)
            .args(["--node", "mds1", "--uname", "mds1", "--hostid-file"])
            .arg(self.path("hostid"))
            .arg("--spl-hostid-file")
            .arg(self.path("none"))
            .env("PATH", path)
            .output()
            .unwrap()
    }

    fn zpool_calls(&self) -> Vec<String> {
        fs::read_to_string(self.bin().join("zpool.argv")).unwrap_or_default().lines().map(str::to_string).collect()
    }
}

fn zfs_target(name: &str, pool: &str, mountpoint: &str) -> String {
    format!(
        "[[target]]\nname = \"{name}\"\nkind = \"zfs\"\npool = \"{pool}\"\ndataset = \"{}\"\nmountpoint = \"{mountpoint}\"\nnodes = [\"mds1\", \"mds2\"]\n\n",
        name.to_lowercase()
    )
}

/// The one line whose `what` is exactly `what`.
fn line<'a>(lines: &'a [String], what: &str) -> &'a str {
    let found: Vec<&String> = lines.iter().filter(|l| l.get(6..).is_some_and(|rest| rest.starts_with(&format!("{what}: ")))).collect();
    assert_eq!(found.len(), 1, "expected one line for {what:?} in {lines:#?}");
    found[0]
}

#[test]
fn a_healthy_host_passes() {
    let h = Host::new();
    let cfg = h.config(&zfs_target("MGT", "goodpool", "@/mnt/mgt"), "fence_fake");
    let (code, lines) = h.doctor(&cfg, &[]);
    assert_eq!(code, 0, "{lines:#?}");
    let d = h.dir.path().display().to_string();
    assert!(line(&lines, &format!("config {d}/cluster.toml")).starts_with("ok    "));
    assert_eq!(line(&lines, "hostid"), format!("ok    hostid: {d}/hostid is a1a1a1a1, node mds1's configured hostid, and no peer's"));
    assert_eq!(line(&lines, "pool goodpool multihost"), "ok    pool goodpool multihost: on");
    assert_eq!(line(&lines, "pool goodpool cachefile"), "ok    pool goodpool cachefile: none");
    assert_eq!(
        line(&lines, "target MGT mount point"),
        format!("ok    target MGT mount point: {d}/mnt/mgt does not exist yet; it will be made under {d}/mnt")
    );
    assert!(line(&lines, &format!("cluster.key_file {d}/cluster.key")).starts_with("ok    "));
    assert!(line(&lines, &format!("fence_device[1].password_file {d}/bmc.pw")).starts_with("ok    "));
    assert!(line(&lines, &format!("fence_device[2].secret_options.password {d}/agent.pw")).ends_with(": mode 0600, owner root"));
    assert!(line(&lines, "tool fence_fake").contains("(for fence_device[2] mds2-agent)"));
    assert!(line(&lines, "tool zpool").starts_with("ok    "));
    // mds1 never runs its own fence device, so its password file (which does not exist) is not checked
    assert!(!lines.iter().any(|l| l.contains("not-read-by-mds1")), "{lines:#?}");
    assert!(lines.iter().filter(|l| !l.starts_with("doctor:")).all(|l| l.starts_with("ok    ")), "{lines:#?}");
    assert!(lines.last().unwrap().ends_with(" ok, 0 warn, 0 FAIL"));
    assert_eq!(h.zpool_calls(), ["get -H -o name,property,value multihost,cachefile goodpool"]);
}

#[test]
fn fence_devices_are_asked_for_status() {
    let h = Host::new();
    let cfg = h.config(&zfs_target("MGT", "goodpool", "@/mnt/mgt"), "fence_fake");
    let (code, lines) = h.doctor(&cfg, &[]);
    assert_eq!(code, 0, "{lines:#?}");
    let agent = line(&lines, "fence device mds2-agent (level 1 for mds2, agent)");
    assert!(agent.starts_with("ok    ") && agent.contains("mds2 is on"), "{agent}");
    let bmc = line(&lines, "fence device mds2-bmc (level 2 for mds2, ipmi)");
    assert!(bmc.starts_with("ok    ") && bmc.contains("mds2 is on"), "{bmc}");
    // mds1 is this host: its own BMC is never asked
    assert!(!lines.iter().any(|l| l.contains("mds1-bmc")), "{lines:#?}");

    // the peer reads off: worth a warning, not a failure
    fs::write(h.path("bmc.state"), "off").unwrap();
    let (code, lines) = h.doctor(&cfg, &[]);
    assert_eq!(code, 0, "{lines:#?}");
    let bmc = line(&lines, "fence device mds2-bmc (level 2 for mds2, ipmi)");
    assert!(bmc.starts_with("warn  ") && bmc.contains("powered OFF"), "{bmc}");

    // the BMC does not answer: a takeover could not fence mds2 through it
    fs::write(h.path("bmc.state"), "down").unwrap();
    let (code, lines) = h.doctor(&cfg, &[]);
    assert_eq!(code, 1, "{lines:#?}");
    let bmc = line(&lines, "fence device mds2-bmc (level 2 for mds2, ipmi)");
    assert!(bmc.starts_with("FAIL  ") && bmc.contains("status failed") && bmc.contains("fix: check"), "{bmc}");

    // an agent option the agent does not declare
    let cfg_text = fs::read_to_string(&cfg).unwrap().replace("username = \"admin\" }", "username = \"admin\", lanplus = \"1\" }");
    fs::write(&cfg, cfg_text).unwrap();
    fs::remove_file(h.path("bmc.state")).unwrap();
    let (code, lines) = h.doctor(&cfg, &[]);
    assert_eq!(code, 1, "{lines:#?}");
    let agent = line(&lines, "fence device mds2-agent (level 1 for mds2, agent)");
    assert!(agent.starts_with("FAIL  ") && agent.contains("lanplus"), "{agent}");
}

#[test]
fn hostid_problems_fail() {
    let h = Host::new();
    let cfg = h.config(&zfs_target("MGT", "goodpool", "@/mnt/mgt"), "fence_fake");
    let file = h.path("hostid").display().to_string();
    let cases: [(&[u8], String); 4] = [
        (&0x1234_5678u32.to_ne_bytes(), format!("{file} is 12345678 but node mds1's configured hostid is a1a1a1a1")),
        (&MDS1_HOSTID.to_ne_bytes()[..3], format!("{file} holds 3 bytes; it must be exactly 4")),
        (&MDS2_HOSTID.to_ne_bytes(), format!("{file} is b2b2b2b2, the hostid of node mds2")),
        (&[0, 0, 0, 0], format!("{file} holds hostid 0")),
    ];
    for (bytes, expected) in cases {
        h.hostid_bytes(bytes);
        let (code, lines) = h.doctor(&cfg, &[]);
        assert_eq!(code, 1, "{lines:#?}");
        let l = line(&lines, "hostid");
        assert!(l.starts_with(&format!("FAIL  hostid: {expected}")), "{l}");
        assert!(l.ends_with("fix: zgenhostid -f a1a1a1a1 (then reboot, or reload the zfs modules, so the kernel uses it)")
            || l.contains("fix: zgenhostid -f a1a1a1a1 (then reboot, or reload the zfs modules, so the kernel uses it), or correct"), "{l}");
    }
    fs::remove_file(h.path("hostid")).unwrap();
    let (code, lines) = h.doctor(&cfg, &[]);
    assert_eq!(code, 1);
    assert!(line(&lines, "hostid").starts_with(&format!("FAIL  hostid: {file} does not exist")));

    // the loaded spl module's hostid, when there is one
    h.hostid_bytes(&MDS1_HOSTID.to_ne_bytes());
    fs::write(h.path("spl-hostid"), "12345678\n").unwrap();
    let spl = h.path("spl-hostid").display().to_string();
    let (code, lines) = h.doctor(&cfg, &["--spl-hostid-file", &spl]);
    assert_eq!(code, 1);
    assert!(line(&lines, "hostid (kernel)").starts_with("FAIL  hostid (kernel): the spl module uses 12345678, not node mds1's a1a1a1a1"));
    fs::write(h.path("spl-hostid"), "a1a1a1a1\n").unwrap();
    let (code, lines) = h.doctor(&cfg, &["--spl-hostid-file", &spl]);
    assert_eq!(code, 0, "{lines:#?}");
    assert_eq!(line(&lines, "hostid (kernel)"), "ok    hostid (kernel): the spl module uses a1a1a1a1");
}

#[test]
fn pool_properties_come_from_one_zpool_get() {
    let h = Host::new();
    let targets = [
        zfs_target("MGT", "goodpool", "@/mnt/mgt"),
        zfs_target("MDT0", "mmpoff", "@/mnt/mdt0"),
        zfs_target("OST0", "cached", "@/mnt/ost0"),
        zfs_target("OST1", "missing", "@/mnt/ost1"),
    ]
    .concat();
    let cfg = h.config(&targets, "fence_fake");
    let (code, lines) = h.doctor(&cfg, &[]);
    assert_eq!(code, 1, "{lines:#?}");
    assert_eq!(h.zpool_calls(), ["get -H -o name,property,value multihost,cachefile goodpool mmpoff cached missing"]);
    assert_eq!(line(&lines, "pool goodpool multihost"), "ok    pool goodpool multihost: on");
    assert_eq!(
        line(&lines, "pool mmpoff multihost"),
        "FAIL  pool mmpoff multihost: off: nothing stops a second host from importing the pool while this one has it; \
         fix: zpool set multihost=on mmpoff"
    );
    assert_eq!(line(&lines, "pool mmpoff cachefile"), "ok    pool mmpoff cachefile: none");
    assert_eq!(
        line(&lines, "pool cached cachefile"),
        "FAIL  pool cached cachefile: - (the default, /etc/zfs/zpool.cache): the pool would be imported at boot, \
         behind failoverd's back; fix: zpool set cachefile=none cached"
    );
    assert_eq!(
        line(&lines, "pool missing"),
        "warn  pool missing: not imported here, cannot check multihost and cachefile \
         (zpool: cannot open 'missing': no such pool); fix: run failoverd doctor on the node that has it imported"
    );
    assert!(lines.last().unwrap().ends_with(" 1 warn, 2 FAIL"), "{lines:#?}");

    // only pools: the warning alone does not fail the run
    let cfg = h.config(&[zfs_target("MGT", "goodpool", "@/mnt/mgt"), zfs_target("OST1", "missing", "@/mnt/ost1")].concat(), "fence_fake");
    let (code, lines) = h.doctor(&cfg, &[]);
    assert_eq!(code, 0, "{lines:#?}");
}

#[test]
fn ldiskfs_targets_skip_the_zfs_checks_and_mount_points_are_checked() {
    let h = Host::new();
    fs::write(h.path("a-file"), "").unwrap();
    fs::create_dir_all(h.path("mnt/ost2")).unwrap();
    let targets = "[[target]]\nname = \"OST2\"\nkind = \"ldiskfs\"\ndevice = \"/dev/mapper/ost2\"\nmountpoint = \"@/mnt/ost2\"\nnodes = [\"mds1\", \"mds2\"]\n\n\
                   [[target]]\nname = \"OST3\"\nkind = \"ldiskfs\"\ndevice = \"/dev/mapper/ost3\"\nmountpoint = \"@/a-file/ost3\"\nnodes = [\"mds1\", \"mds2\"]\n\n\
                   [[target]]\nname = \"OST4\"\nkind = \"ldiskfs\"\ndevice = \"/dev/mapper/ost4\"\nmountpoint = \"@/a-file\"\nnodes = [\"mds1\", \"mds2\"]\n";
    let cfg = h.config(targets, "fence_fake");
    let (code, lines) = h.doctor(&cfg, &[]);
    assert_eq!(code, 1, "{lines:#?}");
    assert!(h.zpool_calls().is_empty(), "no zpool run for ldiskfs targets");
    assert!(!lines.iter().any(|l| l.contains("pool") || l.contains("tool zpool") || l.contains("tool zdb")), "{lines:#?}");
    let d = h.dir.path().display().to_string();
    assert_eq!(line(&lines, "target OST2 mount point"), format!("ok    target OST2 mount point: {d}/mnt/ost2 exists"));
    assert!(line(&lines, "target OST3 mount point")
        .starts_with(&format!("FAIL  target OST3 mount point: {d}/a-file/ost3 does not exist and cannot be made: {d}/a-file is not a directory")));
    assert!(line(&lines, "target OST4 mount point").starts_with(&format!("FAIL  target OST4 mount point: {d}/a-file exists but is not a directory")));
    assert!(line(&lines, "tool lctl").starts_with("ok    "));
}

#[test]
fn secret_files_need_mode_0400_or_0600() {
    let h = Host::new();
    let cfg = h.config(&zfs_target("MGT", "goodpool", "@/mnt/mgt"), "fence_fake");
    let d = h.dir.path().display().to_string();
    let key_line = format!("cluster.key_file {d}/cluster.key");

    h.secret("cluster.key", KEY, 0o644);
    let (code, lines) = h.doctor(&cfg, &[]);
    assert_eq!(code, 1);
    assert_eq!(
        line(&lines, &key_line),
        format!("FAIL  {key_line}: mode 0644: group or others may read or change it; fix: chmod 0400 {d}/cluster.key")
    );

    h.secret("cluster.key", KEY, 0o600);
    h.secret("agent.pw", "secret", 0o640);
    let (code, lines) = h.doctor(&cfg, &[]);
    assert_eq!(code, 1);
    assert!(line(&lines, &key_line).starts_with("ok    "));
    assert!(line(&lines, &format!("fence_device[2].secret_options.password {d}/agent.pw")).starts_with("FAIL  "));

    h.secret("agent.pw", "secret", 0o400);
    h.secret("cluster.key", KEY, 0o700);
    let (code, lines) = h.doctor(&cfg, &[]);
    assert_eq!(code, 0, "a warning alone passes: {lines:#?}");
    assert_eq!(
        line(&lines, &key_line),
        format!("warn  {key_line}: mode 0700, expected 0400 or 0600; fix: chmod 0400 {d}/cluster.key")
    );

    h.secret("cluster.key", "too short", 0o400);
    let (code, lines) = h.doctor(&cfg, &[]);
    assert_eq!(code, 1);
    assert!(line(&lines, &key_line).contains("9 bytes, need at least 32"), "{lines:#?}");

    fs::remove_file(h.path("bmc.pw")).unwrap();
    h.secret("cluster.key", KEY, 0o400);
    let (code, lines) = h.doctor(&cfg, &[]);
    assert_eq!(code, 1);
    assert!(line(&lines, &format!("fence_device[1].password_file {d}/bmc.pw")).starts_with("FAIL  "));

    if nix::unistd::geteuid().is_root() {
        h.secret("bmc.pw", "secret", 0o400);
        nix::unistd::chown(&h.path("cluster.key"), Some(nix::unistd::Uid::from_raw(1000)), None).unwrap();
        let (code, lines) = h.doctor(&cfg, &[]);
        assert_eq!(code, 0, "{lines:#?}");
        assert_eq!(
            line(&lines, &key_line),
            format!("warn  {key_line}: owned by uid 1000, not root; fix: chown root:root {d}/cluster.key")
        );
    } else {
        println!("not root: the owner check (chown to uid 1000) is skipped");
    }
}

#[test]
fn missing_or_non_executable_tools_fail() {
    let h = Host::new();
    let cfg = h.config(&zfs_target("MGT", "goodpool", "@/mnt/mgt"), "fence_absent");
    let (code, lines) = h.doctor(&cfg, &[]);
    assert_eq!(code, 1);
    assert_eq!(
        line(&lines, "tool fence_absent"),
        "FAIL  tool fence_absent: fence_absent is not on PATH (needed for fence_device[2] mds2-agent); \
         fix: install the fence agent (fence-agents), or correct fence_device[2].program"
    );

    let agent = h.path("agent-not-executable");
    fs::write(&agent, "#!/bin/sh\n").unwrap();
    fs::set_permissions(&agent, fs::Permissions::from_mode(0o644)).unwrap();
    let cfg = h.config(&zfs_target("MGT", "goodpool", "@/mnt/mgt"), &agent.display().to_string());
    let (code, lines) = h.doctor(&cfg, &[]);
    assert_eq!(code, 1);
    assert!(line(&lines, &format!("tool {}", agent.display())).contains("is not an executable file"));

    // zpool itself missing
    fs::remove_file(h.bin().join("zpool")).unwrap();
    let cfg = h.config(&zfs_target("MGT", "goodpool", "@/mnt/mgt"), "fence_fake");
    let out = h.doctor_with_path(&cfg, h.bin());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text.lines().any(|l| l.starts_with("FAIL  pools: `zpool get") && l.contains("could not start")), "{text}");
    assert!(text.lines().any(|l| l.starts_with("FAIL  tool zpool: zpool is not on PATH")), "{text}");
}

#[test]
fn a_bad_config_or_unknown_node_fails() {
    let h = Host::new();
    let cfg = h.config(&zfs_target("MGT", "goodpool", "@/mnt/mgt"), "fence_fake");
    let out = Command::new(BIN).args(["doctor", "--config"]).arg(&cfg).args(["--node", "mds9"]).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text.starts_with(&format!("FAIL  config {}: --node mds9: no [[node]] has this name", cfg.display())), "{text}");

    fs::write(&cfg, "[cluster]\nname = 1\n").unwrap();
    let out = Command::new(BIN).args(["doctor", "--config"]).arg(&cfg).args(["--node", "mds1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8(out.stdout).unwrap().starts_with("FAIL  config "));
}

/// A fence agent that exits without reading the options failoverd writes on its stdin must not kill the
/// process that runs it: `doctor` (and `failoverd fence --action status`) once gave SIGPIPE its default
/// action so that `doctor | head` ends quietly, and then died by SIGPIPE whenever its write to such an
/// agent's stdin came after the agent's exit (a race: about one run in three). Many runs, so the race shows.
#[test]
fn an_agent_that_ignores_its_stdin_does_not_kill_doctor() {
    let h = Host::new();
    h.tool("fence_deaf", "#!/bin/sh\nexec 0<&-\nexit 1\n");
    let cfg = h.config(&zfs_target("MGT", "goodpool", "@/mnt/mgt"), "fence_deaf");
    let path = format!("{}:{}", h.bin().display(), std::env::var("PATH").unwrap_or_default());
    let mut signals = Vec::new();
    for run in 0..40 {
        let out = h.doctor_with_path(&cfg, &path);
        match out.status.code() {
            Some(1) => {
                let text = String::from_utf8_lossy(&out.stdout);
                assert!(text.lines().any(|l| l.starts_with("FAIL") && l.contains("mds2-agent")), "run {run}:\n{text}");
            }
            Some(c) => panic!("run {run}: exit {c}:\n{}", String::from_utf8_lossy(&out.stdout)),
            None => signals.push((run, out.status.signal())),
        }
    }
    assert!(signals.is_empty(), "doctor died by a signal in these runs (run, signal): {signals:?}");
}

// ----- disk heartbeat ----------------------------------------------------------------------------------------

/// zdb -l as on a device without a ZFS label (exit 2), or, when `label` exists beside it, with pool
/// ost0pool's label (exit 0); every call is recorded.
const FAKE_ZDB: &str = r#"#!/bin/sh
echo "$*" >> "$(dirname "$0")/zdb.argv"
if [ -e "$(dirname "$0")/label" ]; then
    printf -- '------------------------------------\nLABEL 0 \n------------------------------------\n    version: 5000\n    name: '"'"'ost0pool'"'"'\n    state: 0\n'
    exit 0
fi
for i in 0 1 2 3; do echo "failed to unpack label $i"; done
exit 2
"#;

/// zpool: `get` as FAKE_ZPOOL's healthy pool, `status -P` listing the vdev path in the file `vdev` beside it
/// (none: "no pools available").
const FAKE_ZPOOL_STATUS: &str = r#"#!/bin/sh
echo "$*" >> "$(dirname "$0")/zpool.argv"
if [ "$1" = status ] && [ "$2" = -P ]; then
    vdev=$(cat "$(dirname "$0")/vdev" 2>/dev/null) || { echo "no pools available"; exit 0; }
    printf '  pool: ost0pool\n state: ONLINE\nconfig:\n\n\tNAME        STATE     READ WRITE CKSUM\n\tost0pool    ONLINE       0     0     0\n\t  %s  ONLINE       0     0     0\n\nerrors: No known data errors\n' "$vdev"
    exit 0
fi
echo "fake zpool: unexpected arguments: $*" >&2
exit 2
"#;

impl Host {
    /// A config with `[cluster] disk_heartbeat` on a 64 KiB file in the temp dir (no targets).
    fn disk_config(&self) -> (PathBuf, PathBuf) {
        let img = self.path("hb.img");
        fs::File::create(&img).unwrap().set_len(64 * 1024).unwrap();
        self.tool("zdb", FAKE_ZDB);
        self.tool("zpool", FAKE_ZPOOL_STATUS);
        let cfg = self.config("", "fence_fake");
        let text = fs::read_to_string(&cfg).unwrap().replacen(
            "links = [\"ring0\"]\n",
            &format!("links = [\"ring0\"]\nheartbeat_interval = \"100ms\"\ndisk_heartbeat = \"{}\"\n", img.display()),
            1,
        );
        fs::write(&cfg, text).unwrap();
        (cfg, img)
    }
}

/// mds2's daemon stands as a thread writing mds2's slot every 50 ms with the cluster key, as the daemon does,
/// until `stop` (at least once).
fn write_peer_slot(img: &Path, key_file: &Path, stop: std::sync::Arc<std::sync::atomic::AtomicBool>) -> std::thread::JoinHandle<()> {
    use failoverd::diskbeat::{encode_slot, DiskSlot};
    use failoverd::runtime::disk_heartbeat::{Access, DiskDevice};
    let key = failoverd::config::load_key(key_file).unwrap();
    let dev = DiskDevice::open(img, 2, Access::ReadWrite).unwrap();
    std::thread::spawn(move || {
        let mut seq = 0;
        loop {
            seq += 1;
            let slot = DiskSlot { cluster: "doc".into(), node: "mds2".into(), incarnation: 3, seq };
            dev.write_slot(1, &encode_slot(&slot, &key)).unwrap();
            if stop.load(std::sync::atomic::Ordering::Relaxed) {
                break;
            }
            // the writer's pace (a peer heartbeating on disk), not a wait for anything
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    })
}

#[test]
fn disk_heartbeat_device_is_checked_and_slots_read_without_writing() {
    let h = Host::new();
    let (cfg, img) = h.disk_config();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = write_peer_slot(&img, &h.path("cluster.key"), stop.clone());
    let (code, lines) = h.doctor(&cfg, &[]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    let dev = img.display().to_string();
    assert_eq!(code, 0, "{lines:#?}");
    assert_eq!(
        line(&lines, &format!("disk_heartbeat {dev}")),
        format!("ok    disk_heartbeat {dev}: file of 65536 bytes opens with O_RDWR|O_DIRECT|O_DSYNC and holds the 2 slots of 4096 bytes (nothing written)")
    );
    assert_eq!(
        line(&lines, &format!("disk_heartbeat {dev} ZFS label")),
        format!("ok    disk_heartbeat {dev} ZFS label: no ZFS label (zdb -l found none): not a pool member")
    );
    assert!(line(&lines, &format!("disk_heartbeat {dev} imported pools")).starts_with("ok    "));
    let peer = line(&lines, "disk_heartbeat slot 1 (mds2)");
    assert!(peer.starts_with("ok    disk_heartbeat slot 1 (mds2): advancing: incarnation 3, seq "), "{peer}");
    assert!(peer.ends_with("in 0.2 s (mds2's daemon writes it)"), "{peer}");
    assert_eq!(
        line(&lines, "disk_heartbeat slot 0 (mds1, this node)"),
        "warn  disk_heartbeat slot 0 (mds1, this node): never written: this node's daemon has not run with disk_heartbeat set; fix: start failoverd here"
    );
    // doctor read, never wrote: this node's slot is still all zero
    assert!(fs::read(&img).unwrap()[..4096].iter().all(|&b| b == 0), "doctor wrote this node's slot");
    assert_eq!(fs::read_to_string(h.bin().join("zdb.argv")).unwrap(), format!("-l {dev}\n"));
    assert!(h.zpool_calls().contains(&"status -P".to_string()), "{:?}", h.zpool_calls());
}

#[test]
fn disk_heartbeat_on_a_pool_member_or_a_silent_peer() {
    let h = Host::new();
    let (cfg, img) = h.disk_config();
    let dev = img.display().to_string();
    fs::write(h.bin().join("label"), "").unwrap();
    fs::write(h.bin().join("vdev"), &dev).unwrap();
    // mds2 wrote its slot once and stopped (its daemon died)
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    write_peer_slot(&img, &h.path("cluster.key"), stop).join().unwrap();
    let (code, lines) = h.doctor(&cfg, &[]);
    assert_eq!(code, 1, "{lines:#?}");
    let label = line(&lines, &format!("disk_heartbeat {dev} ZFS label"));
    assert!(label.starts_with(&format!("FAIL  disk_heartbeat {dev} ZFS label: carries a ZFS label of pool 'ost0pool'")), "{label}");
    let pools = line(&lines, &format!("disk_heartbeat {dev} imported pools"));
    assert!(pools.starts_with(&format!("FAIL  disk_heartbeat {dev} imported pools: {dev} is a vdev of the imported pool 'ost0pool'")), "{pools}");
    assert_eq!(
        line(&lines, "disk_heartbeat slot 1 (mds2)"),
        "warn  disk_heartbeat slot 1 (mds2): not advancing in 0.2 s (incarnation 3, seq 1): mds2's daemon is not running or cannot write; \
         fix: start failoverd on mds2 (or check its path to the device)"
    );

    // another cluster key wrote mds2's slot
    let other = h.path("other.key");
    fs::write(&other, "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n").unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    write_peer_slot(&img, &other, stop).join().unwrap();
    let (_, lines) = h.doctor(&cfg, &[]);
    assert!(line(&lines, "disk_heartbeat slot 1 (mds2)").starts_with("FAIL  disk_heartbeat slot 1 (mds2): bad MAC"), "{lines:#?}");

    // too small for two slots
    fs::File::create(&img).unwrap().set_len(4096).unwrap();
    let (code, lines) = h.doctor(&cfg, &[]);
    assert_eq!(code, 1);
    assert!(line(&lines, &format!("disk_heartbeat {dev}")).contains("too small: 4096 bytes, the 2 nodes of the configuration need 8192"), "{lines:#?}");
}
