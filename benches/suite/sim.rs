//! Simulator throughput: every scenario in simulations/ over a number of seeds, then random swarm clusters,
//! on every core, through the same library calls `failoverd simulate` makes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use failoverd::engine::FaultSwitches;
use failoverd::sim::runner::{run_seeds, scenario_files};
use failoverd::sim::scenario::Scenario;
use failoverd::sim::swarm;
use failoverd::sim::world::RunReport;

use super::model::{Record, SimSet};
use super::sys::{self, Result};

fn set(name: &str, files: usize, reports: &[RunReport], threads: usize, wall_s: f64) -> SimSet {
    let simulated_s: f64 = reports.iter().map(|r| r.sim_time.as_secs_f64()).sum();
    let runs = reports.len() as u64;
    SimSet {
        set: name.into(),
        files,
        runs,
        threads,
        wall_s,
        simulated_s,
        runs_per_s: runs as f64 / wall_s,
        sim_s_per_wall_s: simulated_s / wall_s,
        failed_runs: reports.iter().filter(|r| !r.passed()).count() as u64,
    }
}

/// Run `seeds` seeds of every scenario and `swarm_seeds` swarm clusters.
pub fn run(seeds: u64, swarm_seeds: u64) -> Result<Record> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("simulations");
    let files = scenario_files(std::slice::from_ref(&dir))?;
    if files.is_empty() {
        return Err(format!("no scenario files in {}", dir.display()));
    }
    let scenarios: Vec<Arc<Scenario>> = files.iter().map(|f| Scenario::load(f).map(Arc::new)).collect::<Result<_>>()?;
    let seed_list: Vec<u64> = (1..=seeds.max(1)).collect();
    let started = Instant::now();
    let mut reports = Vec::new();
    for s in &scenarios {
        sys::check_interrupted()?;
        reports.extend(run_seeds(s.clone(), &seed_list, FaultSwitches::default(), threads));
    }
    let scen = set("scenarios", files.len(), &reports, threads, started.elapsed().as_secs_f64());
    tracing::info!(runs = scen.runs, runs_per_s = scen.runs_per_s, sim_s_per_wall_s = scen.sim_s_per_wall_s, failed = scen.failed_runs, "scenarios");

    sys::check_interrupted()?;
    let swarm_list: Vec<u64> = (1..=swarm_seeds.max(1)).collect();
    let started = Instant::now();
    let reports = swarm::run_with(&swarm_list, FaultSwitches::default(), threads, true);
    let sw = set("swarm", 0, &reports, threads, started.elapsed().as_secs_f64());
    tracing::info!(runs = sw.runs, runs_per_s = sw.runs_per_s, sim_s_per_wall_s = sw.sim_s_per_wall_s, failed = sw.failed_runs, "swarm");
    Ok(Record::Sim { sets: vec![scen, sw] })
}
