//! The `failoverd` command line. One enum variant and one function per subcommand; the work is done in the
//! library.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand};
use failoverd::config::{Config, KeyCheck};
use failoverd::runtime::cli;
use rand::RngCore;

/// `failoverd --version`: the release and the heartbeat wire-format version (nodes of a cluster must share
/// it: a node drops datagrams of another format version). A test checks it against `PROTOCOL_VERSION`.
const LONG_VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (wire protocol 5)");

/// Fencing-aware failover for Lustre targets on shared ZFS or ldiskfs storage.
#[derive(Parser)]
#[command(name = "failoverd", version, long_version = LONG_VERSION)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate configuration files and print every problem found, each with its key.
    CheckConfig(CheckConfigArgs),
    /// Write a new random cluster key (64 hex characters) to a file readable by its owner only.
    Keygen(KeygenArgs),
    /// Run the daemon on this node.
    Run(cli::RunArgs),
    /// Show what the local daemon sees: quorum, peers and links, targets, fencing, recent events.
    Status(cli::StatusArgs),
    /// Move a target to another node (controlled migration: export here, import there).
    Migrate(cli::MigrateArgs),
    /// Tell the cluster that a node is powered off (manual fencing). Wrongly confirming corrupts data.
    ConfirmFenced(cli::ConfirmFencedArgs),
    /// Fence a node through its configured fence levels (or cancel a fence job that waits: --cancel).
    Fence(cli::FenceArgs),
    /// The fences and takeovers this node saw, kept across restarts (like `stonith_admin --history`).
    History(cli::HistoryArgs),
    /// Turn cluster-wide maintenance on (no automatic action) or off.
    Maintenance(cli::MaintenanceArgs),
    /// Move every target off a node (controlled migrations) and keep it off.
    Standby(cli::StandbyArgs),
    /// Let a node in standby run targets again.
    Unstandby(cli::StandbyArgs),
    /// Let this node act without having seen every node since it started (wait_for_all).
    OverrideWaitForAll(cli::OverrideWaitForAllArgs),
    /// Run deterministic failure simulations of scenario files (or random ones with --swarm).
    Simulate(SimulateArgs),
    /// Watch a failover: a two-node pair on 127.0.0.1 with simulated storage and power; mds1 fails, mds2 takes over.
    Demo(failoverd::lab::demo::DemoArgs),
    /// Check this host against the configuration: hostid, ZFS pool properties, mount points, key files, tools.
    Doctor(failoverd::runtime::doctor::DoctorArgs),
    /// Serve the witness vote (a third vote for two-node clusters) to any number of clusters over UDP.
    Witness(failoverd::runtime::witness_server::WitnessArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) on stdout.
    Completions(CompletionsArgs),
    /// Packaging: write the manual pages (failoverd.8, failoverd-SUBCOMMAND.8, failoverd.toml.5) into DIR.
    #[command(hide = true)]
    Manpages(ManpagesArgs),
    /// Lab only: answer a storage command (zpool, zdb, zfs, mount, umount, df, lctl, mkdir, cat) of the simulated
    /// host $FAILOVERD_SIM_HOST from the simulated SAN in $FAILOVERD_SAN.
    #[command(hide = true)]
    SimTool(failoverd::lab::san::SimToolArgs),
    /// Lab only: make, power, show and check a simulated SAN directory.
    #[command(hide = true)]
    SimSan(failoverd::lab::san::SimSanArgs),
}

#[derive(Args)]
struct CompletionsArgs {
    /// The shell to complete for. bash: save as /usr/share/bash-completion/completions/failoverd (or source
    /// it); zsh: as _failoverd in a folder of $fpath; fish: as ~/.config/fish/completions/failoverd.fish.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

#[derive(Args)]
struct ManpagesArgs {
    /// Folder to write the pages into (created if missing).
    #[arg(value_name = "DIR")]
    dir: PathBuf,
}

#[derive(Args)]
struct SimulateArgs {
    /// Scenario files or folders of them (default: simulations/).
    #[arg(value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// How many seeds per scenario (1..=N).
    #[arg(long, default_value_t = 20)]
    seeds: u64,
    /// Run only this seed (with --trace: print its event trace).
    #[arg(long)]
    seed: Option<u64>,
    /// Random clusters and fault schedules, one per seed, checking the safety invariants after every event and
    /// liveness once the faults stop (every target verified on one live node, or an alert that says why not).
    #[arg(long)]
    swarm: bool,
    /// Accepted for older scripts: --swarm always checks liveness once the faults stop (every target verified
    /// on one live node, or an alert that says why not).
    #[arg(long, requires = "swarm", hide = true)]
    liveness: bool,
    /// The first of the --seeds seeds (default 1): a long soak runs in slices.
    #[arg(long, default_value_t = 1)]
    first_seed: u64,
    /// Print the event trace of the run given by --seed, ending with `trace-sha256: <hex>`.
    #[arg(long, requires = "seed")]
    trace: bool,
    /// Print the random scenario of --swarm --seed N as a scenario file (run it with `failoverd simulate
    /// FILE --seed N`: the same run), to keep a failing seed as a file of simulations/.
    #[arg(long, requires_all = ["seed", "swarm"], conflicts_with = "trace")]
    print_scenario: bool,
    /// One JSON object per scenario per line.
    #[arg(long)]
    json: bool,
    /// Write JUnit XML (one test case per scenario) to this file.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Worker threads (default: every core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Self-test of the checker: the engine skips fencing (the run must then report violations).
    #[arg(long, hide = true)]
    fault_skip_fence: bool,
    /// Self-test of the checker: a restarted daemon does not reap the commands its previous run left.
    #[arg(long, hide = true)]
    fault_ignore_orphans: bool,
    /// Self-test of the checker: every target is mounted as soon as its pool is imported (start_order ignored).
    #[arg(long, hide = true)]
    fault_ignore_start_order: bool,
    /// Self-test of the liveness checker: no node takes a peer's shared fence confirmation.
    #[arg(long, hide = true)]
    fault_ignore_peer_confirmations: bool,
}

#[derive(Args)]
struct CheckConfigArgs {
    /// Configuration files to check.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Do not read the key files the configuration names (e.g. when checking a file away from the cluster).
    #[arg(long)]
    no_key_check: bool,
}

#[derive(Args)]
struct KeygenArgs {
    /// Where to write the key.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Replace an existing key file (every node then needs the new key).
    #[arg(long)]
    force: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The commands that print for an operator die quietly (as `ls | head` does) when their reader goes away.
    // Not the long-running processes (`run`, `witness`, `demo`): a peer closing a socket must never kill
    // them; and `doctor` and `fence` only once their fence agents and tools have ended (see the function).
    if !matches!(cli.command, Command::Run(_) | Command::Witness(_) | Command::Demo(_) | Command::Doctor(_) | Command::Fence(_)) {
        failoverd::runtime::cli::end_quietly_when_the_reader_goes();
    }
    match cli.command {
        Command::CheckConfig(args) => check_config(&args),
        Command::Keygen(args) => keygen(&args),
        Command::Run(args) => cli::run(args),
        Command::Status(args) => cli::status(args),
        Command::Migrate(args) => cli::migrate(args),
        Command::ConfirmFenced(args) => cli::confirm_fenced(args),
        Command::Fence(args) => cli::fence(args),
        Command::History(args) => cli::history(args),
        Command::Maintenance(args) => cli::maintenance(args),
        Command::Standby(args) => cli::standby(args),
        Command::Unstandby(args) => cli::unstandby(args),
        Command::OverrideWaitForAll(args) => cli::override_wait_for_all(args),
        Command::Simulate(args) => simulate(args),
        Command::Demo(args) => failoverd::lab::demo::run(args),
        Command::Doctor(args) => failoverd::runtime::doctor::run(args),
        Command::Witness(args) => failoverd::runtime::witness_server::run(args),
        Command::Completions(args) => completions(&args),
        Command::Manpages(args) => manpages(&args),
        Command::SimTool(args) => failoverd::lab::san::sim_tool(args),
        Command::SimSan(args) => failoverd::lab::san::sim_san(args),
    }
}

/// `failoverd completions SHELL`: the completion script on stdout.
fn completions(args: &CompletionsArgs) -> ExitCode {
    let mut out = std::io::stdout().lock();
    failoverd::manpages::completions(args.shell, &Cli::command(), &mut out);
    ExitCode::SUCCESS
}

/// `failoverd manpages DIR`: every manual page into DIR, one file name per line on stdout.
fn manpages(args: &ManpagesArgs) -> ExitCode {
    match failoverd::manpages::write_manpages(Cli::command(), LONG_VERSION, &args.dir) {
        Ok(files) => {
            for f in files {
                println!("{}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("failoverd manpages: cannot write into {}: {e}", args.dir.display());
            ExitCode::FAILURE
        }
    }
}

/// `failoverd simulate [PATH...]`: see `failoverd::sim::runner`.
fn simulate(a: SimulateArgs) -> ExitCode {
    let _always_on = a.liveness; // --swarm checks liveness in any case
    let args = failoverd::sim::runner::SimArgs {
        paths: a.paths,
        seeds: a.seeds,
        seed: a.seed,
        swarm: a.swarm,
        first_seed: a.first_seed,
        trace: a.trace,
        print_scenario: a.print_scenario,
        json: a.json,
        junit: a.junit,
        faults: failoverd::engine::FaultSwitches {
            skip_fence: a.fault_skip_fence,
            ignore_orphans: a.fault_ignore_orphans,
            ignore_start_order: a.fault_ignore_start_order,
            ignore_peer_confirmations: a.fault_ignore_peer_confirmations,
        },
        threads: a.threads,
    };
    ExitCode::from(failoverd::sim::runner::simulate(&args).clamp(0, 255) as u8)
}

/// `failoverd check-config FILE...`: `FILE: ok (...)` on stdout, or every problem as `FILE: key: message` on
/// stderr; warnings as `FILE: warning: key: message`. Unless `--no-key-check`, every secret file the
/// configuration names (keys, fence passwords, communities, agent secrets) must exist and be readable.
/// With several files of one cluster (the same `cluster.name`), says how they differ: every cluster-wide key whose values differ, with
/// each file's value (node-local keys such as state_dir may differ). Fails if any file has an error or the
/// files disagree.
fn check_config(args: &CheckConfigArgs) -> ExitCode {
    let keys = if args.no_key_check { KeyCheck::Skip } else { KeyCheck::Check };
    let mut failed = false;
    let mut loaded: Vec<(String, Config)> = Vec::new();
    for file in &args.files {
        let name = file.display();
        match Config::load_with(file, keys) {
            Ok(config) if failoverd::engine::heartbeat_fits(&config).is_err() => {
                failed = true;
                if let Err(e) = failoverd::engine::heartbeat_fits(&config) {
                    eprintln!("{name}: target: {e}");
                }
            }
            Ok(config) => {
                for warning in config.warnings() {
                    eprintln!("{name}: warning: {warning}");
                }
                let secrets = if args.no_key_check { Vec::new() } else { unreadable_secrets(&config) };
                for problem in &secrets {
                    eprintln!("{name}: {problem}");
                }
                if secrets.is_empty() {
                    println!(
                        "{name}: ok ({}, {}, {})",
                        plural(config.nodes.len(), "node"),
                        plural(config.targets.len(), "target"),
                        plural(config.link_count(), "link")
                    );
                } else {
                    failed = true;
                }
                loaded.push((name.to_string(), config));
            }
            Err(errors) => {
                failed = true;
                for error in &errors {
                    eprintln!("{name}: {error}");
                }
            }
        }
    }
    // files of one cluster (same cluster.name) must agree on every cluster-wide key
    let mut clusters: std::collections::BTreeMap<String, Vec<(String, Config)>> = std::collections::BTreeMap::new();
    for (name, config) in loaded {
        clusters.entry(config.cluster.name.clone()).or_default().push((name, config));
    }
    for files in clusters.values().filter(|f| f.len() >= 2) {
        if !compare_configs(files) {
            failed = true;
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Every secret file any node of the configuration reads that is missing or unreadable here, as
/// `key: path: problem` lines.
fn unreadable_secrets(cfg: &Config) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for node in &cfg.nodes {
        for (key, path) in failoverd::runtime::doctor::secret_files(cfg, &node.name) {
            if !seen.insert(path.clone()) {
                continue;
            }
            match std::fs::File::open(&path) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => out.push(format!(
                    "{key}: {}: cannot read it as this user ({e}); the daemon runs as root: run check-config as root \
                     (or pass --no-key-check to skip the secret files)",
                    path.display()
                )),
                Err(e) => out.push(format!("{key}: {}: {e}; create it (mode 0400, owner root) or correct {key}", path.display())),
            }
        }
    }
    out
}

/// Print every cluster-wide key on which the files differ, with each file's value. True when they agree.
fn compare_configs(loaded: &[(String, Config)]) -> bool {
    let values: Vec<std::collections::BTreeMap<String, String>> = loaded.iter().map(|(_, c)| c.cluster_wide_values()).collect();
    let diffs = failoverd::config::diff_settings(&values.iter().collect::<Vec<_>>());
    for d in &diffs {
        let each: Vec<String> = loaded
            .iter()
            .zip(&d.values)
            .map(|((name, _), v)| format!("{name} = {}", v.as_deref().unwrap_or("(not set)")))
            .collect();
        eprintln!("differs: {}: {}", d.key, each.join(", "));
    }
    let names: Vec<&str> = loaded.iter().map(|(n, _)| n.as_str()).collect();
    if diffs.is_empty() {
        println!("{}: the cluster-wide settings agree (node-local keys such as state_dir may differ)", names.join(", "));
        true
    } else {
        eprintln!(
            "{}: {} cluster-wide setting(s) differ: the daemons would report config_mismatch and not take over what \
             differs; make the files agree",
            names.join(", "),
            diffs.len()
        );
        false
    }
}

fn plural(n: usize, thing: &str) -> String {
    if n == 1 {
        format!("1 {thing}")
    } else {
        format!("{n} {thing}s")
    }
}

/// `failoverd keygen --out FILE [--force]`: 32 random bytes, hex-encoded, in a new file of mode 0400.
fn keygen(args: &KeygenArgs) -> ExitCode {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    let text = format!("{}\n", hex::encode(key));
    match write_key(&args.out, text.as_bytes(), args.force) {
        Ok(()) => {
            eprintln!(
                "wrote a new key to {}; copy it to the same path on every node (mode 0400, owner root)",
                args.out.display()
            );
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("failoverd keygen: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Write a key file of mode 0400. Without `force` an existing file is kept; with it, the new key replaces the
/// old one atomically (written beside it, then renamed over it).
fn write_key(out: &Path, contents: &[u8], force: bool) -> Result<(), String> {
    if !force {
        return create_private(out, contents).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => {
                format!(
                    "{} already exists; keeping it (use --force to replace it, then copy the new key to every node)",
                    out.display()
                )
            }
            _ => format!("cannot create {}: {e}", out.display()),
        });
    }
    let file_name = out.file_name().ok_or_else(|| format!("{} is not a file name", out.display()))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = out.with_file_name(tmp_name);
    create_private(&tmp, contents).map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, out).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot replace {}: {e}", out.display())
    })
}

/// Create a new file (never an existing one) of mode 0400 holding `contents`, flushed to disk.
fn create_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut file = OpenOptions::new().write(true).create_new(true).mode(0o400).open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    #[test]
    fn long_version_names_the_wire_protocol() {
        let wire = format!("(wire protocol {})", failoverd::protocol::PROTOCOL_VERSION);
        assert!(super::LONG_VERSION.ends_with(&wire), "{} must end with {wire}", super::LONG_VERSION);
    }

    #[test]
    fn command_line_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
