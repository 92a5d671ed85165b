//! The simulated SAN as real commands (`failoverd sim-tool`, `failoverd sim-san`): two "hosts" are two
//! environments (`FAILOVERD_SIM_HOST`) sharing one SAN directory. No root needed.
//!
//! Commands take the model's time for real (zdb -e ~4 s, an import with its MMP check); the MMP check is
//! shortened to 1 s here.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use failoverd::lab::san::STATE_FILE;
use serde_json::Value;

use crate::support::{wait_until, BIN};

/// A SAN directory made from a two-node config: mds1 (hostid a1b2c3d4), mds2 (b2c3d4e5); MGT in `mgspool`,
/// MDT0000 in `mdt0pool`.
struct San {
    dir: tempfile::TempDir,
}

impl San {
    fn new(owners: &[&str]) -> San {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("cluster.toml");
        std::fs::write(
            &cfg,
            format!(
                "[cluster]\nname = \"t\"\nkey_file = \"{}\"\nlinks = [\"ring0\"]\n\n\
                 [[node]]\nname = \"mds1\"\naddresses = [\"10.9.0.1:7405\"]\nhostid = \"a1b2c3d4\"\nfencing = \"manual\"\n\n\
                 [[node]]\nname = \"mds2\"\naddresses = [\"10.9.0.2:7405\"]\nhostid = \"b2c3d4e5\"\nfencing = \"manual\"\n\n\
                 [[target]]\nname = \"MGT\"\nkind = \"zfs\"\npool = \"mgspool\"\ndataset = \"mgspool/mgt\"\n\
                 mountpoint = \"/lustre/mgt\"\nnodes = [\"mds1\", \"mds2\"]\nlctl_device = \"MGS\"\n\n\
                 [[target]]\nname = \"MDT0000\"\nkind = \"zfs\"\npool = \"mdt0pool\"\ndataset = \"mdt0pool/mdt0\"\n\
                 mountpoint = \"/lustre/mdt0\"\nnodes = [\"mds1\", \"mds2\"]\nlctl_device = \"lustre-MDT0000\"\n",
                dir.path().join("unused.key").display()
            ),
        )
        .unwrap();
        let san = San { dir };
        let mut args = vec!["init", "--config", cfg.to_str().unwrap(), "--mmp-wait", "1s"];
        for o in owners {
            args.extend(["--owner", o]);
        }
        let out = san.sim_san(&args);
        assert!(out.status.success(), "init: {}", text(&out.stderr));
        san
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("san")
    }

    fn sim_san(&self, args: &[&str]) -> Output {
        Command::new(BIN).arg("sim-san").arg("--san").arg(self.path()).args(args).output().unwrap()
    }

    /// Run `tool args` as `host`.
    fn tool(&self, host: &str, argv: &[&str]) -> Output {
        Command::new(BIN)
            .arg("sim-tool")
            .args(argv)
            .env("FAILOVERD_SIM_HOST", host)
            .env("FAILOVERD_SAN", self.path())
            .output()
            .unwrap()
    }

    fn show(&self) -> Value {
        let out = self.sim_san(&["show"]);
        assert!(out.status.success(), "show: {}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Commands begun so far: the counter `sim-tool` saves in `san.json` before it sleeps a command's time.
    fn commands_begun(&self) -> u64 {
        let state: Value = serde_json::from_str(&std::fs::read_to_string(self.path().join(STATE_FILE)).unwrap()).unwrap();
        state["commands"].as_u64().expect("san.json counts the commands begun")
    }

    fn power(&self, host: &str, state: &str) {
        let out = self.sim_san(&["power", host, state]);
        assert!(out.status.success(), "power: {}", text(&out.stderr));
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "expected exit 0, got {:?}: {}{}", out.status, text(&out.stdout), text(&out.stderr));
    text(&out.stdout)
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array().into_iter().flatten().filter_map(|x| x.as_str().map(str::to_string)).collect()
}

#[test]
fn an_import_on_one_host_is_seen_and_refused_on_the_other() {
    let san = San::new(&[]);
    // exported by mds1 at init: mds2 imports it without -f and without an MMP check
    ok(&san.tool("mds2", &["zpool", "import", "-o", "cachefile=none", "mgspool"]));
    assert_eq!(ok(&san.tool("mds2", &["zpool", "list", "-H", "-o", "name,health"])), "mgspool\tONLINE\n");
    assert_eq!(ok(&san.tool("mds1", &["zpool", "list", "-H", "-o", "name,health"])), "");
    // mds1 reads mds2's identity in the label and is refused by MMP while mds2 is powered
    let label = ok(&san.tool("mds1", &["zdb", "-e", "-C", "mgspool"]));
    assert!(label.contains("hostname: 'mds2'") && label.contains(&format!("hostid: {}", 0xb2c3_d4e5u32)), "{label}");
    let refused = san.tool("mds1", &["zpool", "import", "-o", "cachefile=none", "mgspool"]);
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(
        text(&refused.stderr),
        "cannot import 'mgspool': pool is imported on mds2 (hostid: 0xb2c3d4e5)\n\
         Export the pool on the other system, then run 'zpool import'.\n"
    );
    let show = san.show();
    assert_eq!(strs(&show["pools"]["mgspool"]["imported_on"]), ["mds2"]);
    assert_eq!(strs(&show["targets"]["MGT"]["imported_on"]), ["mds2"]);
    assert_eq!(strs(&show["targets"]["MGT"]["mounted_on"]), Vec::<String>::new());
    ok(&san.sim_san(&["check"]));
}

#[test]
fn after_the_holder_loses_power_a_forced_import_succeeds() {
    let san = San::new(&["mds1"]);
    let show = san.show();
    assert_eq!(strs(&show["targets"]["MDT0000"]["mounted_on"]), ["mds1"]);
    let refused = san.tool("mds2", &["zpool", "import", "-o", "cachefile=none", "mdt0pool"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(text(&refused.stderr).starts_with("cannot import 'mdt0pool': pool is imported on mds1"), "{}", text(&refused.stderr));

    san.power("mds1", "off");
    assert_eq!(ok(&san.sim_san(&["power", "mds1", "status"])), "off\n");
    // no live writer any more, but the label still names mds1: -f is required
    let plain = san.tool("mds2", &["zpool", "import", "-o", "cachefile=none", "mdt0pool"]);
    assert_eq!(plain.status.code(), Some(1));
    assert!(text(&plain.stderr).contains("pool was previously in use from another system."), "{}", text(&plain.stderr));
    ok(&san.tool("mds2", &["zpool", "import", "-f", "-o", "cachefile=none", "mdt0pool"]));
    ok(&san.tool("mds2", &["mkdir", "-p", "/lustre/mdt0"]));
    ok(&san.tool("mds2", &["mount", "-t", "lustre", "mdt0pool/mdt0", "/lustre/mdt0"]));
    assert!(ok(&san.tool("mds2", &["df", "-ht", "lustre"])).contains("mdt0pool/mdt0"));
    assert!(ok(&san.tool("mds2", &["lctl", "dl"])).contains("UP mdt lustre-MDT0000"));
    assert!(ok(&san.tool("mds2", &["cat", "/proc/mounts"])).contains("mdt0pool/mdt0 /lustre/mdt0 lustre"));

    let show = san.show();
    assert_eq!(show["hosts"]["mds1"]["powered"], false);
    assert_eq!(strs(&show["targets"]["MDT0000"]["mounted_on"]), ["mds2"]);
    assert_eq!(show["pools"]["mdt0pool"]["label"]["hostname"], "mds2");
    ok(&san.sim_san(&["check"]));
    // the history has the power-off before the forced import
    let history: Vec<Value> =
        ok(&san.sim_san(&["history", "--json"])).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let off = history.iter().position(|r| r["kind"] == "power" && r["host"] == "mds1").unwrap();
    let forced = history.iter().position(|r| r["kind"] == "command" && r["argv"][2] == "-f").unwrap();
    assert!(off < forced && history[forced]["exit"] == "exit 0", "{history:?}");
}

#[test]
fn a_forced_import_while_the_owner_is_powered_is_a_violation() {
    let san = San::new(&["mds1"]);
    let refused = san.tool("mds2", &["zpool", "import", "-f", "-o", "cachefile=none", "mgspool"]);
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(
        text(&refused.stderr),
        "cannot import 'mgspool': pool is imported on host 'mds1' (hostid=a1b2c3d4).\n\
         Export the pool on the other system, then run 'zpool import'.\n"
    );
    let check = san.sim_san(&["check"]);
    assert_eq!(check.status.code(), Some(1));
    assert!(text(&check.stdout).contains("mds2 ran `zpool import -f -o cachefile=none mgspool` but mds1, the pool's last owner, was still powered"), "{}", text(&check.stdout));
}

#[test]
fn a_command_in_flight_dies_with_its_host() {
    let san = San::new(&["mds1"]);
    let begun = san.commands_begun();
    // zdb -e takes 3.5-5 s; the host loses power meanwhile
    let child = Command::new(BIN)
        .args(["sim-tool", "zdb", "-e", "-C", "mgspool"])
        .env("FAILOVERD_SIM_HOST", "mds2")
        .env("FAILOVERD_SAN", san.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("sim-tool zdb has begun its command", Duration::from_secs(10), || san.commands_begun() > begun);
    san.power("mds2", "off");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.signal(), Some(9), "{:?}", out.status);
    assert!(out.stdout.is_empty());
    // powered back on, the host runs commands again; the killed one left no trace
    san.power("mds2", "on");
    ok(&san.tool("mds2", &["zpool", "list", "-H", "-o", "name"]));
    let history = ok(&san.sim_san(&["history", "--json"]));
    assert!(!history.contains("\"zdb\""), "{history}");
    assert_eq!(san.show()["hosts"]["mds2"]["boots"], 1);
}

#[test]
fn wrappers_answer_from_the_san_and_leave_other_files_alone() {
    let san = San::new(&["MGT=mds1"]);
    let bin = san.dir.path().join("bin-mds1");
    ok(&san.sim_san(&["wrappers", bin.to_str().unwrap(), "--host", "mds1"]));
    let run = |tool: &str, args: &[&str]| Command::new(bin.join(tool)).args(args).env_remove("FAILOVERD_SAN").output().unwrap();
    assert_eq!(ok(&run("zpool", &["list", "-H", "-o", "name"])), "mgspool\n");
    assert!(ok(&run("cat", &["/proc/mounts"])).contains("mgspool/mgt /lustre/mgt lustre"));
    let cfg = san.dir.path().join("cluster.toml");
    assert_eq!(ok(&run("cat", &[cfg.to_str().unwrap()])), std::fs::read_to_string(&cfg).unwrap());
    for tool in ["zpool", "zdb", "zfs", "mount", "umount", "df", "lctl", "mkdir", "cat"] {
        assert!(Path::new(&bin.join(tool)).is_file(), "{tool} wrapper missing");
    }
}

#[test]
fn usage_errors_name_what_is_wrong() {
    let san = San::new(&[]);
    let unknown = san.tool("mds9", &["zpool", "list"]);
    assert_eq!(unknown.status.code(), Some(125));
    assert!(text(&unknown.stderr).contains("mds9 is not a host of this SAN (hosts: mds1, mds2)"), "{}", text(&unknown.stderr));
    let cfg = san.dir.path().join("cluster.toml");
    let again = san.sim_san(&["init", "--config", cfg.to_str().unwrap()]);
    assert!(!again.status.success() && text(&again.stderr).contains("already holds a SAN"), "{}", text(&again.stderr));
    let bad_owner = san.sim_san(&["init", "--config", cfg.to_str().unwrap(), "--force", "--owner", "MGT=mds7"]);
    assert!(text(&bad_owner.stderr).contains("--owner MGT=mds7: mds7 is not a [[node]]"), "{}", text(&bad_owner.stderr));
    let no_host = Command::new(BIN).args(["sim-tool", "zpool", "list"]).env_remove("FAILOVERD_SIM_HOST").output().unwrap();
    assert_eq!(no_host.status.code(), Some(125));
}
