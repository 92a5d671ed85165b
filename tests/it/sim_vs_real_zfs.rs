//! The simulator's SAN model held against real OpenZFS: the takeover of the real-zfs-lab case `crash` (the lab's
//! own cluster file, plain ZFS datasets) is replayed through `failoverd sim-tool`, and every answer is compared
//! with what real OpenZFS 2.1.11 and 2.3.2 answered in the QEMU guests (tests/fixtures/openzfs-*/real-zfs-lab/,
//! written by `scripts/real-zfs-lab` + `tests/support/real-zfs-lab/save-fixtures.sh`). Exit codes, the lines
//! failoverd's parsers read, and the judges' verdicts must agree. Known, deliberate differences (timings: zdb
//! ~4 s in the model, 15–40 s in a TCG guest; the MMP check) are in BENCHMARKS.md, not tested here.

use std::process::{Command, Output};

use crate::support::BIN;
const CLUSTER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/real-zfs-lab/cluster.toml");

/// A real capture: (command, stdout, stderr, rc).
fn capture(text: &str) -> Capture {
    let c = crate::support::capture::parse(text);
    (c.cmd, c.stdout, c.stderr, c.rc)
}

/// One captured command: what the wrapper logged (command line, stdout, stderr, exit code).
type Capture = (String, String, String, i32);

macro_rules! real {
    ($name:literal) => {
        [
            ("2.1.11", capture(include_str!(concat!("../fixtures/openzfs-2.1.11/real-zfs-lab/", $name)))),
            ("2.3.2", capture(include_str!(concat!("../fixtures/openzfs-2.3.2/real-zfs-lab/", $name)))),
        ]
    };
}

struct San(tempfile::TempDir);

impl San {
    fn new() -> San {
        let san = San(tempfile::tempdir().unwrap());
        let out = san.sim_san(&["init", "--config", CLUSTER, "--owner", "oss-a", "--mmp-wait", "1s"]);
        assert!(out.status.success(), "init: {}", String::from_utf8_lossy(&out.stderr));
        san
    }
    fn sim_san(&self, args: &[&str]) -> Output {
        Command::new(BIN).arg("sim-san").arg("--san").arg(self.0.path().join("san")).args(args).output().unwrap()
    }
    /// `argv` (one string, as the capture names it) run as `host`: (stdout, stderr, rc).
    fn run(&self, host: &str, argv: &str) -> (String, String, i32) {
        let out = Command::new(BIN)
            .arg("sim-tool")
            .args(argv.split(' '))
            .env("FAILOVERD_SIM_HOST", host)
            .env("FAILOVERD_SAN", self.0.path().join("san"))
            .output()
            .unwrap();
        let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (s(&out.stdout), s(&out.stderr), out.status.code().unwrap_or(-1))
    }
}

/// The zdb lines failoverd's label rule reads.
fn label_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| {
            l.starts_with("name: ")
                || l.starts_with("state: ")
                || l.starts_with("hostid: ")
                || l.starts_with("hostname: ")
        })
        .map(str::to_string)
        .take(4)
        .collect()
}

#[test]
fn the_model_answers_the_takeover_like_real_openzfs() {
    let san = San::new();
    // oss-a runs OST0 and OST1 (pools imported, datasets mounted); it loses power, oss-b fences and takes over
    let out = san.sim_san(&["power", "oss-a", "off"]);
    assert!(out.status.success());

    for (version, (cmd, out, _, rc)) in real!("zdb-e-C-ost0pool-active-oss-a.txt") {
        let (sim_out, _, sim_rc) = san.run("oss-b", &cmd);
        assert_eq!((sim_rc, rc), (0, 0), "{version}: {cmd}");
        assert_eq!(label_lines(&sim_out), label_lines(&out), "{version}: {cmd}: the label lines");
        assert_eq!(
            label_lines(&out),
            ["name: 'ost0pool'", "state: 0", "hostid: 2711724449", "hostname: 'oss-a'"],
            "{version}: the real label of a pool oss-a held when it lost power"
        );
    }
    let steps: [(&str, [(&str, Capture); 2]); 4] = [
        ("import", real!("zpool-import-f-ost0pool.txt")),
        ("status", real!("zpool-status-x-ost0pool.txt")),
        ("list", real!("zfs-list-H-ost0pool-data.txt")),
        ("mount", real!("mount-t-zfs-ost0pool-data.txt")),
    ];
    for (what, reals) in steps {
        if what == "mount" {
            assert_eq!(san.run("oss-b", "mkdir -p /srv/ost0").2, 0);
        }
        // each command runs once in the model; its answer is compared with both releases' answers
        let cmd = reals[0].1 .0.clone();
        let (sim_out, sim_err, sim_rc) = san.run("oss-b", &cmd);
        for (version, (real_cmd, out, _err, rc)) in reals {
            assert_eq!(real_cmd, cmd, "{version}: the same command");
            assert_eq!(sim_rc, rc, "{version}: `{cmd}` exit code: model {sim_rc} ({sim_err}), real {rc}");
            match what {
                "import" | "mount" => {
                    assert_eq!((sim_out.as_str(), out.as_str()), ("", ""), "{version}: `{cmd}` prints nothing")
                }
                "status" => assert_eq!(sim_out, out, "{version}: `{cmd}`"),
                _ => assert_eq!(
                    sim_out.split('\t').next(),
                    out.split('\t').next(),
                    "{version}: `{cmd}`: the dataset field"
                ),
            }
        }
    }
    for (version, (cmd, out, _, rc)) in real!("zpool-list-H-name-health-ost0pool.txt") {
        let sim = san.run("oss-b", &cmd);
        assert_eq!((sim.0.as_str(), sim.2), (out.as_str(), rc), "{version}: `{cmd}`");
    }
    for (version, (cmd, out, _, rc)) in real!("cat-proc-mounts-ost0-mounted.txt") {
        let sim = san.run("oss-b", &cmd);
        assert_eq!(sim.2, rc);
        let line = |t: &str| {
            t.lines()
                .find(|l| l.starts_with("ost0pool/data "))
                .map(|l| l.split(' ').take(3).collect::<Vec<_>>().join(" "))
        };
        assert_eq!(line(&sim.0), line(&out), "{version}: the /proc/mounts line of the dataset");
        assert_eq!(line(&out).as_deref(), Some("ost0pool/data /srv/ost0 zfs"));
    }
    let check = san.sim_san(&["check"]);
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));
}
