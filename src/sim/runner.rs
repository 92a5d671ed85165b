//! `failoverd simulate`: runs scenario files over many seeds (on every core), and reports per scenario.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use crate::engine::FaultSwitches;

use super::scenario::Scenario;
use super::swarm;
use super::world::{run_once, RunOptions, RunReport};

/// What to run.
#[derive(Clone, Debug, Default)]
pub struct SimArgs {
    pub paths: Vec<PathBuf>,
    pub seeds: u64,
    pub seed: Option<u64>,
    /// Random scenarios; each run checks the safety invariants after every event and liveness once the faults
    /// stop.
    pub swarm: bool,
    /// The first seed of `--seeds` (default 1): long soaks run in slices.
    pub first_seed: u64,
    pub trace: bool,
    /// With `swarm` and `seed`: print that seed's scenario as a scenario file instead of running it.
    pub print_scenario: bool,
    pub json: bool,
    pub junit: Option<PathBuf>,
    pub faults: FaultSwitches,
    pub threads: usize,
}

/// One scenario's results over all its seeds.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub scenario: String,
    pub seeds: u64,
    pub violations: u64,
    pub unmet: u64,
    pub detect_ms_p50: Option<u64>,
    pub detect_ms_p99: Option<u64>,
    pub failover_ms_p50: Option<u64>,
    pub failover_ms_p99: Option<u64>,
    /// Until the clients are served again: the end of the Lustre recovery of every target taken over.
    pub restored_ms_p50: Option<u64>,
    pub restored_ms_p99: Option<u64>,
    pub fences: u64,
    pub false_failovers: u64,
    pub sim_speedup: f64,
    #[serde(skip)]
    pub failures: Vec<(u64, Vec<String>)>,
    #[serde(skip)]
    pub path: String,
    #[serde(skip)]
    pub wall_s: f64,
}

impl Summary {
    pub fn passed(&self) -> bool {
        self.violations == 0 && self.unmet == 0
    }
}

/// Find scenario files: each path is a file or a folder of `*.toml` (sorted).
pub fn scenario_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| format!("{}: {e}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "toml"))
                .collect();
            files.sort();
            out.extend(files);
        } else if p.exists() {
            out.push(p.clone());
        } else {
            return Err(format!("{}: no such file or folder", p.display()));
        }
    }
    Ok(out)
}

fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    Some(sorted[idx.min(sorted.len() - 1)])
}

/// Run `run(seed)` for every seed on `threads` threads; reports come back sorted by seed.
pub fn parallel_runs(seeds: &[u64], threads: usize, run: impl Fn(u64) -> RunReport + Sync) -> Vec<RunReport> {
    let threads = threads.max(1).min(seeds.len().max(1));
    let run = &run;
    let mut reports: Vec<RunReport> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let chunk: Vec<u64> = seeds.iter().copied().skip(t).step_by(threads).collect();
                s.spawn(move || chunk.into_iter().map(run).collect::<Vec<_>>())
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect()
    });
    reports.sort_by_key(|r| r.seed);
    reports
}

/// Run the given seeds of one scenario on `threads` threads.
pub fn run_seeds(scenario: Arc<Scenario>, seeds: &[u64], faults: FaultSwitches, threads: usize) -> Vec<RunReport> {
    parallel_runs(seeds, threads, |seed| run_once(scenario.clone(), RunOptions { seed, keep_trace: false, faults }))
}

/// Summarize the reports of one scenario.
pub fn summarize(name: &str, path: &str, reports: &[RunReport], wall_s: f64) -> Summary {
    let mut detect: Vec<u64> = reports.iter().flat_map(|r| r.detect_ms.iter().copied()).collect();
    let mut failover: Vec<u64> = reports.iter().flat_map(|r| r.failover_ms.iter().copied()).collect();
    let mut restored: Vec<u64> = reports.iter().flat_map(|r| r.restored_ms.iter().copied()).collect();
    detect.sort_unstable();
    failover.sort_unstable();
    restored.sort_unstable();
    let sim_s: f64 = reports.iter().map(|r| r.sim_time.as_secs_f64()).sum();
    Summary {
        scenario: name.to_string(),
        seeds: reports.len() as u64,
        violations: reports.iter().filter(|r| !r.violations.is_empty()).count() as u64,
        unmet: reports.iter().filter(|r| !r.unmet.is_empty()).count() as u64,
        detect_ms_p50: percentile(&detect, 0.50),
        detect_ms_p99: percentile(&detect, 0.99),
        failover_ms_p50: percentile(&failover, 0.50),
        failover_ms_p99: percentile(&failover, 0.99),
        restored_ms_p50: percentile(&restored, 0.50),
        restored_ms_p99: percentile(&restored, 0.99),
        fences: reports.iter().map(|r| u64::from(r.fences)).sum(),
        false_failovers: reports.iter().map(|r| u64::from(r.false_failovers)).sum(),
        sim_speedup: if wall_s > 0.0 { sim_s / wall_s } else { 0.0 },
        failures: reports
            .iter()
            .filter(|r| !r.passed())
            .map(|r| (r.seed, r.violations.iter().chain(r.unmet.iter()).cloned().collect()))
            .collect(),
        path: path.to_string(),
        wall_s,
    }
}

fn ms(v: Option<u64>) -> String {
    v.map_or("-".into(), |x| x.to_string())
}

/// Print the human table.
pub fn print_table(rows: &[Summary]) {
    println!(
        "{:<34} {:>6} {:>10} {:>14} {:>16} {:>17} {:>10} {:>6} {:>12}",
        "scenario", "seeds", "violations", "detect p50/99", "failover p50/99", "restored p50/99", "fences/run", "false", "sim s/wall s"
    );
    for r in rows {
        let unmet = if r.unmet > 0 { format!(" (+{} unmet)", r.unmet) } else { String::new() };
        println!(
            "{:<34} {:>6} {:>10} {:>14} {:>16} {:>17} {:>10.2} {:>6} {:>12.0}{unmet}",
            r.scenario,
            r.seeds,
            r.violations,
            format!("{}/{} ms", ms(r.detect_ms_p50), ms(r.detect_ms_p99)),
            format!("{}/{} ms", ms(r.failover_ms_p50), ms(r.failover_ms_p99)),
            format!("{}/{} ms", ms(r.restored_ms_p50), ms(r.restored_ms_p99)),
            r.fences as f64 / r.seeds.max(1) as f64,
            r.false_failovers,
            r.sim_speedup
        );
    }
}

/// Failing seeds printed in full (their problems, up to 6 lines each, and the replay command).
const FAILURES_IN_FULL: usize = 10;
/// Failing seeds printed at all: after the first [`FAILURES_IN_FULL`], one line each (the first problem and
/// the replay command); the rest are counted.
const FAILURES_LISTED: usize = 500;

fn print_failures(r: &Summary) {
    for line in failure_lines(r) {
        eprintln!("{line}");
    }
}

/// What `simulate` prints (on stderr) about a scenario's failing seeds: every failing seed's replay command,
/// up to [`FAILURES_LISTED`] seeds, then how many more failed.
pub fn failure_lines(r: &Summary) -> Vec<String> {
    let replay = |seed: u64| {
        if r.path.is_empty() {
            format!("failoverd simulate --swarm --seed {seed} --trace")
        } else {
            format!("failoverd simulate {} --seed {seed} --trace", r.path)
        }
    };
    let mut out = Vec::new();
    for (i, (seed, problems)) in r.failures.iter().take(FAILURES_LISTED).enumerate() {
        if i < FAILURES_IN_FULL {
            out.push(format!("FAIL {} seed {seed}:", r.scenario));
            out.extend(problems.iter().take(6).map(|p| format!("    {p}")));
            if problems.len() > 6 {
                out.push(format!("    ... and {} more", problems.len() - 6));
            }
            out.push(format!("    replay: {}", replay(*seed)));
            if r.path.is_empty() {
                out.push(format!("    as a scenario file: failoverd simulate --swarm --seed {seed} --print-scenario > simulations/swarm-{seed}.toml"));
            }
        } else {
            let first = problems.first().map_or("", String::as_str);
            out.push(format!("FAIL {} seed {seed}: {first} | replay: {}", r.scenario, replay(*seed)));
        }
    }
    if r.failures.len() > FAILURES_LISTED {
        out.push(format!("... and {} more failing seeds of {} (not listed)", r.failures.len() - FAILURES_LISTED, r.scenario));
    }
    out
}

fn junit(rows: &[Summary]) -> String {
    let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
    let failures = rows.iter().filter(|r| !r.passed()).count();
    let mut x = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"failoverd-simulate\" tests=\"{}\" failures=\"{failures}\">\n", rows.len());
    for r in rows {
        x += &format!("  <testcase classname=\"simulate\" name=\"{}\" time=\"{:.3}\">\n", esc(&r.scenario), r.wall_s);
        if !r.passed() {
            let detail: Vec<String> = r.failures.iter().take(5).map(|(s, p)| format!("seed {s}: {}", p.join("; "))).collect();
            x += &format!("    <failure message=\"{} of {} seeds failed\">{}</failure>\n", r.failures.len(), r.seeds, esc(&detail.join("\n")));
        }
        x += "  </testcase>\n";
    }
    x + "</testsuite>\n"
}

/// Run a single seed with its trace printed.
fn trace_one(scenario: Arc<Scenario>, seed: u64, faults: FaultSwitches) -> bool {
    let r = run_once(scenario, RunOptions { seed, keep_trace: true, faults });
    for line in &r.trace {
        println!("{line}");
    }
    for v in r.violations.iter().chain(r.unmet.iter()) {
        println!("FAIL: {v}");
    }
    println!("trace-sha256: {}", r.trace_sha256);
    r.passed()
}

/// The whole `simulate` command; returns the process exit status.
pub fn simulate(args: &SimArgs) -> i32 {
    let threads = if args.threads > 0 { args.threads } else { std::thread::available_parallelism().map_or(2, |n| n.get()) };
    let seeds: Vec<u64> = match args.seed {
        Some(s) => vec![s],
        None => {
            let first = args.first_seed.max(1);
            (first..first + args.seeds.max(1)).collect()
        }
    };
    if args.swarm {
        if let (Some(seed), true) = (args.seed, args.print_scenario) {
            print!("{}", swarm::scenario_text(seed, true));
            return 0;
        }
        if let (Some(seed), true) = (args.seed, args.trace) {
            return i32::from(!trace_one(Arc::new(swarm::scenario_with(seed, true)), seed, args.faults));
        }
        let (reports, wall) = timed(|| swarm::run_with(&seeds, args.faults, threads, true));
        let s = summarize("swarm", "", &reports, wall);
        return report(&[s], args);
    }
    let paths = if args.paths.is_empty() { vec![PathBuf::from("simulations")] } else { args.paths.clone() };
    let files = match scenario_files(&paths) {
        Ok(f) if !f.is_empty() => f,
        Ok(_) => {
            eprintln!("no scenario files in {}", paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "));
            return 2;
        }
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    let mut rows = Vec::new();
    for f in &files {
        let scenario = match Scenario::load(f) {
            Ok(s) => Arc::new(s),
            Err(e) => {
                eprintln!("{e}");
                return 2;
            }
        };
        if let (Some(seed), true) = (args.seed, args.trace) {
            if !trace_one(scenario, seed, args.faults) {
                return 1;
            }
            continue;
        }
        let (reports, wall) = timed(|| run_seeds(scenario.clone(), &seeds, args.faults, threads));
        rows.push(summarize(&scenario.name, &display_path(f), &reports, wall));
    }
    if rows.is_empty() {
        return 0;
    }
    report(&rows, args)
}

/// `f`'s result and its wall time in seconds, for the report. The one clock in `sim/`: it times the runs from
/// outside, and no simulated world ever reads it.
#[allow(clippy::disallowed_methods, clippy::disallowed_types)]
fn timed<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let started = std::time::Instant::now();
    let out = f();
    (out, started.elapsed().as_secs_f64())
}

fn display_path(p: &Path) -> String {
    p.display().to_string()
}

fn report(rows: &[Summary], args: &SimArgs) -> i32 {
    if args.json {
        for r in rows {
            println!("{}", serde_json::to_string(r).unwrap_or_default());
        }
    } else {
        print_table(rows);
    }
    for r in rows.iter().filter(|r| !r.passed()) {
        print_failures(r);
    }
    if let Some(path) = &args.junit {
        if let Err(e) = std::fs::write(path, junit(rows)) {
            eprintln!("--junit {}: {e}", path.display());
            return 2;
        }
    }
    i32::from(rows.iter().any(|r| !r.passed()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failing(scenario: &str, path: &str, n: u64) -> Summary {
        Summary {
            scenario: scenario.into(),
            seeds: n,
            violations: 0,
            unmet: n,
            detect_ms_p50: None,
            detect_ms_p99: None,
            failover_ms_p50: None,
            failover_ms_p99: None,
            restored_ms_p50: None,
            restored_ms_p99: None,
            fences: 0,
            false_failovers: 0,
            sim_speedup: 0.0,
            failures: (1..=n).map(|s| (s, (0..8).map(|i| format!("problem {i} of seed {s}")).collect())).collect(),
            path: path.into(),
            wall_s: 0.0,
        }
    }

    #[test]
    fn every_failing_seed_gets_its_replay_command_up_to_the_bound() {
        // more than the three seeds printed before, fewer than the bound: every one is listed
        let lines = failure_lines(&failing("swarm", "", 40));
        for seed in 1..=40 {
            let replay = format!("failoverd simulate --swarm --seed {seed} --trace");
            assert_eq!(lines.iter().filter(|l| l.contains(&replay)).count(), 1, "seed {seed}: {lines:#?}");
        }
        assert!(lines.contains(&"    problem 5 of seed 10".to_string()) && lines.contains(&"    ... and 2 more".to_string()));
        assert!(lines.contains(&"FAIL swarm seed 11: problem 0 of seed 11 | replay: failoverd simulate --swarm --seed 11 --trace".to_string()));
        assert!(!lines.iter().any(|l| l.contains("not listed")));
        // past the bound: listed up to it, the rest counted
        let lines = failure_lines(&failing("owner-crash", "simulations/owner-crash.toml", 600));
        assert_eq!(lines.iter().filter(|l| l.contains("replay: failoverd simulate simulations/owner-crash.toml --seed")).count(), FAILURES_LISTED);
        assert!(lines.iter().any(|l| l.contains("--seed 500 --trace")) && !lines.iter().any(|l| l.contains("--seed 501 --trace")));
        assert_eq!(lines.last().unwrap(), "... and 100 more failing seeds of owner-crash (not listed)");
    }
}
