//! failoverd's benchmark suite (issue #5 "Benchmarks"): one subcommand per benchmark, each writing one JSON
//! record, and `report`, which prints the tables and regenerates the figures in BENCHMARKS.md.
//!
//! Run it through `scripts/bench` (as root: namespaces, nftables, keepalived, corosync), which builds it with
//! `cargo bench` and calls the subcommands in order. By hand:
//!
//! ```text
//! cargo bench --bench suite -- detect --profile fast --net loopback --rounds 10 --out /tmp/d.json
//! cargo bench --bench suite -- sim --seeds 5 --swarm-seeds 100 --out /tmp/s.json
//! cargo bench --bench suite -- report --results /tmp --command "..."
//! ```
//!
//! Run with no subcommand (as `cargo bench` and `cargo test --benches` do) it only prints how to use it, and
//! it lists no tests to test runners (`--list`), so test runs never start a benchmark. Figures are printed,
//! never asserted on.

mod corosync;
mod cost;
mod detect;
mod pair;
mod keepalived;
mod lab;
mod ladder;
mod loss;
mod model;
mod report;
mod sim;
mod sys;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use pair::Timing;
use lab::Lab;

/// The benchmark suite behind scripts/bench.
#[derive(Parser)]
#[command(name = "suite")]
struct Cli {
    #[command(subcommand)]
    command: Bench,
    /// Prefix of the network namespaces made by this run (unique per run; scripts/bench passes its own and
    /// removes whatever is left under it when it exits).
    #[arg(long, global = true, default_value_t = default_prefix())]
    prefix: String,
}

/// Where failoverd nodes run.
#[derive(Clone, Copy, ValueEnum)]
enum Net {
    /// One network namespace per node, one bridge per link (root).
    Netns,
    /// 127.0.0.1 (no root needed).
    Loopback,
}

/// Timing profile of a detection benchmark.
#[derive(Clone, Copy, ValueEnum)]
enum Profile {
    /// The tool's defaults.
    Default,
    /// An aggressive setting: failoverd 100 ms / 500 ms, keepalived VRRPv3 advert_int 0.1 s, corosync
    /// token 500 ms (each overridable).
    Fast,
}

impl Profile {
    fn name(self) -> &'static str {
        match self {
            Profile::Default => "default",
            Profile::Fast => "fast",
        }
    }
}

#[derive(Subcommand)]
enum Bench {
    /// failoverd detection latency: SIGKILL one of two daemons, time the survivor's peer_dead.
    Detect {
        #[arg(long, value_enum)]
        profile: Profile,
        #[arg(long, value_enum, default_value = "netns")]
        net: Net,
        #[arg(long, default_value_t = 30)]
        rounds: usize,
        /// Idle cost window before the first kill (s; 0: none).
        #[arg(long, default_value_t = 20.0)]
        idle_window: f64,
        #[arg(long)]
        out: PathBuf,
    },
    /// False failovers: two daemons at default timings under random loss on both links.
    Loss {
        /// Length of the run (s).
        #[arg(long, default_value_t = 600)]
        duration: u64,
        /// Drop percentage per link (ring0,ring1).
        #[arg(long, value_delimiter = ',', default_values_t = [20, 5])]
        loss: Vec<u32>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Detection under loss, side by side: every setting of failoverd, keepalived and corosync at once under
    /// the same loss and a busy core, false verdicts counted; then detection at each tool's fastest passing
    /// setting.
    Ladder {
        /// Length of the false-verdict window (s).
        #[arg(long, default_value_t = 600)]
        duration: u64,
        /// Drop percentage per link (ring0,ring1), both directions.
        #[arg(long, value_delimiter = ',', default_values_t = [20, 5])]
        loss: Vec<u32>,
        /// Kill rounds per tool at its fastest passing setting.
        #[arg(long, default_value_t = 15)]
        rounds: usize,
        /// Leave every core idle (no busy loop).
        #[arg(long)]
        no_busy: bool,
        #[arg(long)]
        out: PathBuf,
    },
    /// Cost of one idle failoverd at 10 heartbeats/s on 2 links.
    Cost {
        #[arg(long, value_enum, default_value = "netns")]
        net: Net,
        /// Measurement window (s).
        #[arg(long, default_value_t = 60.0)]
        window: f64,
        #[arg(long)]
        out: PathBuf,
    },
    /// Simulator throughput over simulations/ and the swarm.
    Sim {
        #[arg(long, default_value_t = 50)]
        seeds: u64,
        #[arg(long, default_value_t = 2000)]
        swarm_seeds: u64,
        #[arg(long)]
        out: PathBuf,
    },
    /// keepalived takeover time after the MASTER is SIGKILLed.
    Keepalived {
        #[arg(long, value_enum)]
        profile: Profile,
        /// advert_int of the fast profile (s; VRRPv3).
        #[arg(long, default_value_t = 0.1)]
        fast_advert: f64,
        #[arg(long, default_value_t = 10)]
        rounds: usize,
        #[arg(long, default_value_t = 20.0)]
        idle_window: f64,
        #[arg(long)]
        out: PathBuf,
    },
    /// corosync membership change after a node is SIGKILLed.
    Corosync {
        #[arg(long, value_enum)]
        profile: Profile,
        /// token of the fast profile (ms).
        #[arg(long, default_value_t = 500)]
        fast_token: u64,
        #[arg(long, default_value_t = 10)]
        rounds: usize,
        #[arg(long, default_value_t = 20.0)]
        idle_window: f64,
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the tables of every record in a folder; regenerate BENCHMARKS.md's figures.
    Report {
        #[arg(long)]
        results: PathBuf,
        #[arg(long)]
        markdown: Option<PathBuf>,
        /// The command line to quote as the one that produced the figures.
        #[arg(long)]
        command: String,
        /// A benchmark that failed in this run (repeatable).
        #[arg(long)]
        failed: Vec<String>,
        /// Wall time of the whole run (s).
        #[arg(long)]
        elapsed: Option<f64>,
    },
}

fn default_prefix() -> String {
    format!("fb{:04x}", std::process::id() & 0xffff)
}

fn seconds(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

fn placement(net: Net, prefix: &str, tag: &str) -> sys::Result<pair::Placement> {
    Ok(match net {
        Net::Loopback => pair::Placement::Loopback,
        Net::Netns => pair::Placement::Lab(Lab::create(&lab::lab_name(prefix, tag), 2, 2)?),
    })
}

fn run(cli: Cli) -> sys::Result<()> {
    let prefix = cli.prefix.as_str();
    let (record, out) = match cli.command {
        Bench::Detect { profile, net, rounds, idle_window, out } => {
            let timing = match profile {
                Profile::Default => Timing::Defaults,
                Profile::Fast => Timing::Explicit { heartbeat: Duration::from_millis(100), dead_after: Duration::from_millis(500) },
            };
            let opts = detect::Options {
                placement: placement(net, prefix, &format!("d{}", &profile.name()[..1]))?,
                timing,
                profile: profile.name().into(),
                rounds,
                idle_window: seconds(idle_window),
            };
            (detect::run(opts)?, out)
        }
        Bench::Loss { duration, loss, out } => {
            if loss.len() != 2 {
                return Err(format!("--loss: give one percentage per link (2), not {}", loss.len()));
            }
            let lab = Lab::create(&lab::lab_name(prefix, "l"), 2, 2)?;
            (loss::run(lab, loss, Duration::from_secs(duration))?, out)
        }
        Bench::Ladder { duration, loss, rounds, no_busy, out } => {
            let opts = ladder::Options { prefix: prefix.to_string(), duration: Duration::from_secs(duration), loss, rounds, busy: !no_busy };
            (ladder::run(opts)?, out)
        }
        Bench::Cost { net, window, out } => (cost::run(placement(net, prefix, "c")?, seconds(window))?, out),
        Bench::Sim { seeds, swarm_seeds, out } => (sim::run(seeds, swarm_seeds)?, out),
        Bench::Keepalived { profile, fast_advert, rounds, idle_window, out } => {
            let vrrp = match profile {
                Profile::Default => keepalived::Vrrp { version: 2, advert_s: 1.0, link: 0 },
                Profile::Fast => keepalived::Vrrp { version: 3, advert_s: fast_advert, link: 0 },
            };
            let lab = Lab::create(&lab::lab_name(prefix, &format!("k{}", &profile.name()[..1])), 2, 1)?;
            (keepalived::run(lab, profile.name(), vrrp, rounds, seconds(idle_window))?, out)
        }
        Bench::Corosync { profile, fast_token, rounds, idle_window, out } => {
            let totem = corosync::Totem {
                token_ms: match profile {
                    Profile::Default => None,
                    Profile::Fast => Some(fast_token),
                },
            };
            let lab = Lab::create(&lab::lab_name(prefix, &format!("c{}", &profile.name()[..1])), 2, 2)?;
            (corosync::run(lab, profile.name(), totem, rounds, seconds(idle_window))?, out)
        }
        Bench::Report { results, markdown, command, failed, elapsed } => {
            return report::run(&report::Options { results, markdown, command, failed, elapsed_s: elapsed });
        }
    };
    record.write(&out)?;
    tracing::info!(file = %out.display(), "record written");
    Ok(())
}

const USAGE: &str = "failoverd benchmark suite: run `scripts/bench` (as root) for every benchmark and BENCHMARKS.md,\n\
or one benchmark: cargo bench --bench suite -- <detect|loss|ladder|cost|sim|keepalived|corosync|report> --help";

fn main() -> ExitCode {
    // cargo bench appends --bench; test runners ask for a list of tests (there are none here)
    let args: Vec<String> = std::env::args().filter(|a| a != "--bench").collect();
    if args.iter().any(|a| a == "--list") {
        return ExitCode::SUCCESS;
    }
    if args.len() <= 1 {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let cli = Cli::parse_from(args);
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_ansi(std::io::stderr().is_terminal()).with_target(false).compact().init();
    sys::install_handlers();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            // interrupted: 130, as a shell reports SIGINT, so that scripts/bench stops instead of writing a
            // report of a run cut short over BENCHMARKS.md's figures
            if sys::check_interrupted().is_err() {
                ExitCode::from(130)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
