//! End-to-end failover time in the network-namespace lab: SIGKILL of mds1's daemon (the host stays powered with
//! its pools imported) → mds2 declares it dead → fences it through its ipmi_sim BMC → forced sequences of MGT
//! and MDT0000 (pools at once, MDT mounted after the MGT is verified) → both verified on mds2. Prints each round and min/median/max; asserts nothing about time.
//!
//! `cargo bench --bench failover [-- --rounds N --mmp-wait 2s --timeline]` (`--timeline`: each forced step of
//! the survivor, from the kill: the pools' zdb checks and imports run side by side) (root; the lab's tools: ip, nft, ipmi_sim,
//! ipmitool). `--mmp-wait 20s` gives OpenZFS's real activity check.

// The tests' harness (tests/support/): this bench uses only its namespace lab.
#[path = "../tests/support/mod.rs"]
#[allow(dead_code)]
mod support;

use std::time::Duration;

use support::lab;

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // nextest asks every target for its tests: a benchmark has none
    if args.iter().any(|a| a == "--list") {
        return;
    }
    // `cargo test --all-targets` runs bench binaries without `--bench`: only run when asked to bench
    if !args.iter().any(|a| a == "--bench") {
        println!("failover: a benchmark; run it with `cargo bench --bench failover`");
        return;
    }
    let value = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned();
    let rounds: usize = value("--rounds").and_then(|v| v.parse().ok()).unwrap_or(5);
    let timeline = args.iter().any(|a| a == "--timeline");
    let mmp = value("--mmp-wait").and_then(|v| humantime::parse_duration(&v).ok()).unwrap_or(Duration::from_secs(2));
    if let Some(why) = lab::missing_prerequisite() {
        eprintln!("failover: cannot run: {why}");
        std::process::exit(2);
    }
    println!("end-to-end failover (SIGKILL of mds1's daemon -> both targets verified on mds2), MMP check {}", secs(mmp));
    println!("{:>5}  {:>10}  {:>10}  {:>10}", "round", "detected", "fenced", "verified");
    let mut all = Vec::new();
    for round in 1..=rounds {
        match lab::failover_once(mmp, Duration::from_secs(90) + mmp * 3) {
            Ok(t) => {
                println!("{round:>5}  {:>10}  {:>10}  {:>10}", secs(t.detected), secs(t.fenced), secs(t.verified));
                if timeline {
                    for (target, step, start, done) in &t.steps {
                        println!("       {target:<16} {step:<12} {:>9} -> {:>9}  ({})", secs(*start), secs(*done), secs(done.saturating_sub(*start)));
                    }
                }
                all.push(t.verified);
            }
            Err(e) => {
                eprintln!("failover: round {round} failed: {e}");
                std::process::exit(1);
            }
        }
    }
    all.sort();
    println!("verified: min {} median {} max {} ({} rounds)", secs(all[0]), secs(all[all.len() / 2]), secs(all[all.len() - 1]), all.len());
}
