//! `failoverd demo`, run as the built binary, as on a fresh machine: it must exit 0 within a minute, print the
//! failover timeline in order and a final table with both targets on mds2, and leave nothing behind.
//!
//! Each run gets its own `TMPDIR`, so the test can check that the demo removed its temporary directory.

use std::fs::File;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::BIN;

/// The demo stops itself after 60 s; the test gives it a little more before killing it.
const KILL_AFTER: Duration = Duration::from_secs(90);

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
    took: Duration,
}

fn run_demo(args: &[&str]) -> Run {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("tmp");
    std::fs::create_dir(&work).unwrap();
    let (out_path, err_path) = (tmp.path().join("stdout"), tmp.path().join("stderr"));
    let started = Instant::now();
    let mut child = Command::new(BIN)
        .arg("demo")
        .args(args)
        .env("TMPDIR", &work)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).unwrap())
        .stderr(File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > KILL_AFTER {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the demo did not end within {KILL_AFTER:?}; stdout so far:\n{}", std::fs::read_to_string(&out_path).unwrap());
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let took = started.elapsed();
    let leftovers: Vec<_> = std::fs::read_dir(&work).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(leftovers.is_empty(), "the demo left {leftovers:?} behind");
    Run {
        ok: status.success(),
        stdout: std::fs::read_to_string(&out_path).unwrap(),
        stderr: std::fs::read_to_string(&err_path).unwrap(),
        took,
    }
}

/// The index of the first line containing every one of `parts`, or a failure showing the output.
fn line_with(out: &str, parts: &[&str]) -> usize {
    out.lines()
        .position(|l| parts.iter().all(|p| l.contains(p)))
        .unwrap_or_else(|| panic!("no line with {parts:?} in the demo's output:\n{out}"))
}

/// The `+N ms` stamp of a timeline line.
fn stamp_ms(line: &str) -> u64 {
    let after = line.trim_start().strip_prefix('+').unwrap_or_else(|| panic!("not a timeline line: {line}"));
    after.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("no stamp in: {line}"))
}

fn check_takeover(run: &Run) {
    let out = &run.stdout;
    assert!(run.ok, "the demo failed after {:?}\nstdout:\n{out}\nstderr:\n{}", run.took, run.stderr);
    assert!(run.took < Duration::from_secs(60), "the demo took {:?}", run.took);
    assert!(out.contains("(simulated MMP activity check shortened from ~20-25 s to 5 s for the demo)"), "{out}");

    // the timeline, in order
    let lines: Vec<&str> = out.lines().collect();
    let timeline = line_with(out, &["timeline (ms since mds1 failed)"]);
    let dead = line_with(out, &["mds2", "mds1 declared dead"]);
    let delayed = line_with(out, &["mds2", "fence of mds1 delayed 2000 ms"]);
    let off = line_with(out, &["mds2", "ipmitool", "chassis power off", "Chassis Power Control: Down/Off"]);
    let confirmed = line_with(out, &["mds2", "fence confirmed: mds1 is off"]);
    let zdb = line_with(out, &["MGT", "zdb check", "zdb -e -C mgspool", "last imported by mds1"]);
    let import = line_with(out, &["MGT", "import", "zpool import -f -o cachefile=none mgspool"]);
    let mount = line_with(out, &["MGT", "mount -t lustre mgspool/mgt /lustre/mgt"]);
    let df = line_with(out, &["MGT", "verified", "df -ht lustre"]);
    let lctl = line_with(out, &["MGT", "verified", "lctl dl", "MGS"]);
    let mgt = line_with(out, &["MGT: VERIFIED, running on mds2"]);
    let mdt_import = line_with(out, &["MDT0000", "import", "zpool import -f -o cachefile=none mdt0pool"]);
    let mdt_mount = line_with(out, &["MDT0000", "mount -t lustre mdt0pool/mdt0 /lustre/mdt0"]);
    let mdt = line_with(out, &["MDT0000: VERIFIED, running on mds2"]);
    let order = [timeline, dead, delayed, off, confirmed, zdb, import, mount, df, lctl, mgt, mdt_mount, mdt];
    assert!(order.windows(2).all(|w| w[0] < w[1]), "timeline out of order {order:?}:\n{out}");
    // the two pools are imported side by side (after the fence), the MDT mounted only once the MGT is verified
    assert!(confirmed < mdt_import && mdt_import < mgt, "MDT0000's import did not overlap the MGT's sequence:\n{out}");

    // plausible times: detection after dead_after (500 ms), the fence after fence_delay (2 s)
    let dead_ms = stamp_ms(lines[dead]);
    assert!((300..3000).contains(&dead_ms), "declared dead at +{dead_ms} ms");
    let confirmed_ms = stamp_ms(lines[confirmed]);
    assert!(confirmed_ms >= dead_ms + 2000, "fence confirmed at +{confirmed_ms} ms, dead at +{dead_ms} ms");

    // the final table: both targets on mds2, running, and the SAN agrees
    let fin = line_with(out, &["final status"]);
    let row = |target: &str| -> Vec<&str> {
        let prefix = format!("  {target} ");
        let l = lines[fin..].iter().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("no final row for {target}:\n{out}"));
        l.split_whitespace().collect()
    };
    for (target, pool, mountpoint) in [("MGT", "mgspool", "/lustre/mgt"), ("MDT0000", "mdt0pool", "/lustre/mdt0")] {
        let cells = row(target);
        assert_eq!(cells[..3], [target, "mds2", "running"], "final row of {target}:\n{out}");
        assert!(cells.join(" ").contains(&format!("{pool} on mds2 mds2:{mountpoint}")), "final row of {target}:\n{out}");
    }
    let mds1 = lines[fin..].iter().find(|l| l.starts_with("  mds1 ")).unwrap_or_else(|| panic!("no final row for mds1:\n{out}"));
    assert!(mds1.split_whitespace().take(3).eq(["mds1", "off", "stopped"]), "{mds1}");
    assert!(!out.contains("SAFETY RULE BROKEN"), "{out}");
    assert!(out.contains("RESULT: ok: mds2 took MGT and MDT0000 over and verified them"), "{out}");
}

#[test]
fn demo_power_loss_fails_over_to_mds2() {
    let run = run_demo(&[]);
    check_takeover(&run);
    assert!(run.stdout.contains("mds1  POWER OFF (simulated power failure)"), "{}", run.stdout);
}

#[test]
fn demo_hang_is_ended_by_mds2s_fence() {
    let run = run_demo(&["--fault", "hang"]);
    check_takeover(&run);
    let out = &run.stdout;
    let hung = line_with(out, &["mds1", "HUNG"]);
    let powered_off = line_with(out, &["mds1", "POWER OFF (mds2's fence: `chassis power off`)"]);
    assert!(hung < powered_off, "{out}");
}

#[test]
fn demo_help_names_the_faults() {
    let out = Command::new(BIN).args(["demo", "--help"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("power-loss") && text.contains("hang"), "{text}");
}
