//! Detection under loss, side by side (issue #14 item 4, "the loss ladder").
//!
//! Every setting of every tool runs at the same time, each as its own pair of namespaces, for the same
//! window under the same profile: nftables `numgen random` drops on each node's input (both directions) of
//! 20 % of ring0's IPv4 traffic and 5 % of ring1's, and one core kept busy by a bounded spin loop.
//!
//! - failoverd, heartbeat_interval/dead_after 250ms/3s, 100ms/500ms, 50ms/250ms, 20ms/150ms, 10ms/80ms, on
//!   both links. A false verdict: a `peer_dead` in either log (nothing is killed during the window).
//! - keepalived VRRPv3, advert_int 1, 0.3, 0.1, 0.03 s, on ring1 (the 5 % link: VRRP has one link). A false
//!   verdict: the BACKUP (n2) entering MASTER while the MASTER lives.
//! - corosync knet on both links, token 3000, 1000, 500, 300 ms. A false verdict: either node forming a
//!   membership with `Members left:` while nothing was killed.
//!
//! Then, for each tool at its fastest setting with zero false verdicts (and both daemons alive at the end),
//! detection after SIGKILL, n rounds, through the detection benchmarks' own code (`detect`, `keepalived`,
//! `corosync`), in a fresh lab under the same loss rules and the same busy core.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::corosync::{self, Totem};
use super::detect;
use super::keepalived::{self, Vrrp};
use super::lab::{self, Lab};
use super::loss;
use super::model::{Detection, Ladder, LadderRung, Record};
use super::pair::{self, Pair, Placement, Timing};
use super::sys::{self, LogTail, Result};

/// failoverd's settings, slowest first: (heartbeat_interval, dead_after) in ms.
pub const FAILOVERD: [(u64, u64); 5] = [(250, 3000), (100, 500), (50, 250), (20, 150), (10, 80)];
/// keepalived's advert_int (s), slowest first.
pub const KEEPALIVED: [f64; 4] = [1.0, 0.3, 0.1, 0.03];
/// corosync's token (ms), slowest first.
pub const COROSYNC: [u64; 4] = [3000, 1000, 500, 300];

/// The link keepalived's VRRP instance runs on: ring1, the 5 % link.
const VRRP_LINK: usize = 1;

const TABLE: &str = "failoverd_bench_ladder";

/// What to run.
pub struct Options {
    pub prefix: String,
    /// Length of the false-verdict window.
    pub duration: Duration,
    /// Drop percentage per link (ring0, ring1), both directions.
    pub loss: Vec<u32>,
    /// Kill rounds per tool at its fastest passing setting.
    pub rounds: usize,
    /// Keep one core busy.
    pub busy: bool,
}

/// The ruleset: per link, a counter of the IPv4 packets that reach the node's input and a rule dropping
/// `percent` of them (every tool's traffic: failoverd's and knet's UDP, VRRP's protocol 112; ARP is not
/// IPv4 and passes).
fn ruleset(loss: &[u32]) -> String {
    loss::loss_ruleset(TABLE, "meta nfproto ipv4", loss)
}

fn apply_loss(lab: &Lab, loss: &[u32]) -> Result<()> {
    for n in 0..2 {
        lab.nft(n, &ruleset(loss))?;
    }
    Ok(())
}

/// Packets seen and dropped per link, summed over both nodes of a lab.
fn counters(lab: &Lab, links: usize) -> Result<(Vec<u64>, Vec<u64>)> {
    loss::link_counters(lab, TABLE, links)
}

/// One core kept busy by a spin loop that ends by itself at `limit`, or earlier when dropped.
struct Busy {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<u64>>,
}

impl Busy {
    fn start(on: bool, limit: Duration) -> Busy {
        let stop = Arc::new(AtomicBool::new(false));
        if !on {
            return Busy { stop, thread: None };
        }
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let end = Instant::now() + limit;
            let mut spins = 0u64;
            while Instant::now() < end && !flag.load(Ordering::Relaxed) && sys::check_interrupted().is_ok() {
                for _ in 0..10_000 {
                    spins = std::hint::black_box(spins.wrapping_add(1));
                }
            }
            spins
        });
        tracing::info!(limit_s = limit.as_secs(), "one core busy (bounded spin loop)");
        Busy { stop, thread: Some(thread) }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The 1-, 5- and 15-minute load averages.
fn loadavg() -> Vec<f64> {
    std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split_whitespace().take(3).filter_map(|v| v.parse().ok()).collect()
}

/// One running pair of one setting.
enum Member {
    Failoverd { pair: Box<Pair>, logs: [LogTail; 2], peer_dead: u64, link_down: u64, local_stall: u64 },
    Keepalived(keepalived::Running),
    Corosync(corosync::Running),
}

/// One setting of one tool, running.
struct Rung {
    tool: &'static str,
    setting: String,
    settings: String,
    nominal_ms: f64,
    links: usize,
    member: Member,
    /// A daemon of the pair was found dead during the window.
    died: bool,
}

impl Rung {
    fn lab(&self) -> Result<&Lab> {
        match &self.member {
            Member::Failoverd { pair, .. } => pair.lab().ok_or_else(|| "the ladder's failoverd pair has no lab".to_string()),
            Member::Keepalived(k) => Ok(k.lab()),
            Member::Corosync(c) => Ok(c.lab()),
        }
    }

    fn converged(&mut self) -> Result<bool> {
        Ok(match &mut self.member {
            Member::Failoverd { pair, .. } => pair.sees_peer_fully(0).unwrap_or(false) && pair.sees_peer_fully(1).unwrap_or(false),
            Member::Keepalived(k) => k.converged(),
            Member::Corosync(c) => c.converged()?,
        })
    }

    fn arm(&mut self) -> Result<()> {
        match &mut self.member {
            Member::Failoverd { pair, logs, .. } => {
                *logs = [LogTail::at_end(&pair.log(0)), LogTail::at_end(&pair.log(1))];
            }
            Member::Keepalived(k) => k.arm(),
            Member::Corosync(c) => c.arm()?,
        }
        Ok(())
    }

    /// Read what happened since the last poll; with `check_alive`, also whether both daemons still run.
    fn poll(&mut self, check_alive: bool) -> Result<()> {
        let alive = match &mut self.member {
            Member::Failoverd { pair, logs, peer_dead, link_down, local_stall } => {
                for (n, log) in logs.iter_mut().enumerate() {
                    for e in pair::events(&log.new_lines()?) {
                        match e.name.as_str() {
                            "peer_dead" => {
                                tracing::warn!(setting = %self.setting, node = n + 1, detail = %e.detail, "failoverd: FALSE peer_dead under loss");
                                *peer_dead += 1;
                            }
                            "link_down" => *link_down += 1,
                            "local_stall" => *local_stall += 1,
                            _ => {}
                        }
                    }
                }
                !check_alive || (pair.running(0) && pair.running(1))
            }
            Member::Keepalived(k) => !check_alive || k.running(),
            Member::Corosync(c) => {
                c.poll()?;
                !check_alive || c.running()
            }
        };
        if !alive && !self.died {
            tracing::warn!(tool = self.tool, setting = %self.setting, "a daemon of the pair is gone: this setting cannot pass");
            self.died = true;
        }
        Ok(())
    }

    fn false_verdicts(&self) -> u64 {
        match &self.member {
            Member::Failoverd { peer_dead, .. } => *peer_dead,
            Member::Keepalived(k) => k.false_masters(),
            Member::Corosync(c) => c.false_memberships(),
        }
    }

    fn notes(&self) -> String {
        match &self.member {
            Member::Failoverd { link_down, local_stall, .. } => format!("link_down {link_down}, local_stall {local_stall}"),
            Member::Keepalived(_) | Member::Corosync(_) => String::new(),
        }
    }

    fn log_tail(&self) -> String {
        match &self.member {
            Member::Failoverd { pair, .. } => format!("{}\n---\n{}", pair::tail(&pair.log(0)), pair::tail(&pair.log(1))),
            Member::Keepalived(k) => k.log_tail(),
            Member::Corosync(c) => c.log_tail(),
        }
    }
}

fn ms_label(ms: u64) -> String {
    if ms >= 1000 && ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

fn vrrp(advert_s: f64) -> Vrrp {
    Vrrp { version: 3, advert_s, link: VRRP_LINK }
}

/// Start every setting of every tool, each in its own lab (2 nodes, 2 links).
fn start_all(prefix: &str) -> Result<Vec<Rung>> {
    let mut rungs = Vec::new();
    for (i, &(hb, dead)) in FAILOVERD.iter().enumerate() {
        let lab = Lab::create(&lab::lab_name(prefix, &format!("Lf{i}")), 2, 2)?;
        let timing = Timing::Explicit { heartbeat: Duration::from_millis(hb), dead_after: Duration::from_millis(dead) };
        let mut pair = Pair::new(Placement::Lab(lab), timing)?;
        pair.start(0)?;
        pair.start(1)?;
        let logs = [LogTail::at_end(&pair.log(0)), LogTail::at_end(&pair.log(1))];
        rungs.push(Rung {
            tool: "failoverd",
            setting: format!("{}/{}", ms_label(hb), ms_label(dead)),
            settings: timing.describe(),
            nominal_ms: dead as f64,
            links: 2,
            member: Member::Failoverd { pair: Box::new(pair), logs, peer_dead: 0, link_down: 0, local_stall: 0 },
            died: false,
        });
    }
    for (i, &advert) in KEEPALIVED.iter().enumerate() {
        let lab = Lab::create(&lab::lab_name(prefix, &format!("Lk{i}")), 2, 2)?;
        let v = vrrp(advert);
        rungs.push(Rung {
            tool: "keepalived",
            setting: format!("advert_int {advert}s"),
            settings: format!("{} on ring{VRRP_LINK}", v.describe()),
            nominal_ms: v.nominal_ms(),
            links: 2,
            member: Member::Keepalived(keepalived::Running::start(lab, v)?),
            died: false,
        });
    }
    for (i, &token) in COROSYNC.iter().enumerate() {
        let lab = Lab::create(&lab::lab_name(prefix, &format!("Lc{i}")), 2, 2)?;
        let t = Totem { token_ms: Some(token) };
        rungs.push(Rung {
            tool: "corosync",
            setting: format!("token {token}ms"),
            settings: t.describe(),
            nominal_ms: t.nominal_ms(),
            links: 2,
            member: Member::Corosync(corosync::Running::start(lab, t)?),
            died: false,
        });
    }
    Ok(rungs)
}

/// Detection after SIGKILL at one tool's fastest passing setting, in a fresh lab under the same loss.
fn detection(prefix: &str, tool: &str, index: usize, opts: &Options) -> Result<Detection> {
    let lab = Lab::create(&lab::lab_name(prefix, &format!("D{}", &tool[..1])), 2, 2)?;
    apply_loss(&lab, &opts.loss)?;
    let record = match tool {
        "failoverd" => {
            let (hb, dead) = FAILOVERD[index];
            detect::run(detect::Options {
                placement: Placement::Lab(lab),
                timing: Timing::Explicit { heartbeat: Duration::from_millis(hb), dead_after: Duration::from_millis(dead) },
                profile: "ladder".into(),
                rounds: opts.rounds,
                idle_window: Duration::ZERO,
            })?
        }
        "keepalived" => keepalived::run(lab, "ladder", vrrp(KEEPALIVED[index]), opts.rounds, Duration::ZERO)?,
        _ => corosync::run(lab, "ladder", Totem { token_ms: Some(COROSYNC[index]) }, opts.rounds, Duration::ZERO)?,
    };
    match record {
        Record::Detection(d) => Ok(*d),
        _ => Err(format!("{tool}: the detection benchmark returned no detection record")),
    }
}

/// Run the ladder.
pub fn run(opts: Options) -> Result<Record> {
    if opts.loss.len() != 2 {
        return Err(format!("--loss: give one percentage per link (2), not {}", opts.loss.len()));
    }
    let load_before = loadavg();
    let mut rungs = start_all(&opts.prefix)?;
    tracing::info!(pairs = rungs.len(), "every setting started; waiting until each pair has converged");
    for r in &mut rungs {
        let what = format!("{} {} converges", r.tool, r.setting);
        sys::wait_for(&what, Duration::from_secs(60), Duration::from_millis(50), || Ok(r.converged()?.then_some(())))
            .map_err(|e| format!("{e}; logs:\n{}", r.log_tail()))?;
    }
    for r in &mut rungs {
        apply_loss(r.lab()?, &opts.loss)?;
        r.arm()?;
    }
    let busy = Busy::start(opts.busy, opts.duration + Duration::from_secs(5));
    tracing::info!(duration_s = opts.duration.as_secs(), loss = ?opts.loss, busy = opts.busy, "loss rules in place on every pair; running side by side");
    let start = Instant::now();
    let mut load_max = load_before.first().copied().unwrap_or(0.0);
    let mut last_report = Instant::now();
    let mut last_alive_check = Instant::now();
    while start.elapsed() < opts.duration {
        sys::sleep(Duration::from_secs(1).min(opts.duration.saturating_sub(start.elapsed())))?;
        // `ip netns pids` for every pair is not free: liveness every 10 s, the logs every second
        let check_alive = last_alive_check.elapsed() >= Duration::from_secs(10);
        if check_alive {
            last_alive_check = Instant::now();
        }
        for r in &mut rungs {
            r.poll(check_alive)?;
        }
        load_max = load_max.max(loadavg().first().copied().unwrap_or(0.0));
        if last_report.elapsed() >= Duration::from_secs(60) {
            last_report = Instant::now();
            let falses: Vec<String> = rungs.iter().map(|r| format!("{} {}: {}", r.tool, r.setting, r.false_verdicts())).collect();
            tracing::info!(elapsed_s = start.elapsed().as_secs(), false_verdicts = %falses.join(", "), "loss ladder in progress");
        }
    }
    let duration_s = start.elapsed().as_secs_f64();
    drop(busy);
    for r in &mut rungs {
        r.poll(true)?;
    }
    let load_after = loadavg();
    let mut table = Vec::new();
    for r in &rungs {
        let (seen, dropped) = counters(r.lab()?, r.links)?;
        let observed = seen.iter().zip(&dropped).map(|(&s, &d)| if s > 0 { 100.0 * d as f64 / s as f64 } else { 0.0 }).collect();
        table.push(LadderRung {
            tool: r.tool.into(),
            setting: r.setting.clone(),
            settings: r.settings.clone(),
            nominal_ms: r.nominal_ms,
            false_verdicts: r.false_verdicts(),
            survived: !r.died,
            packets: seen,
            observed_percent: observed,
            notes: r.notes(),
        });
    }
    for t in &table {
        tracing::info!(tool = %t.tool, setting = %t.setting, false_verdicts = t.false_verdicts, survived = t.survived, observed = ?t.observed_percent, "ladder rung");
    }
    // every pair of the window stops here (namespaces removed) before the detection runs
    drop(rungs);

    let mut detections = Vec::new();
    let mut errors = Vec::new();
    for tool in ["failoverd", "keepalived", "corosync"] {
        // the tool's rungs, slowest first (the order of its settings' array)
        let of_tool: Vec<(usize, &LadderRung)> = table.iter().enumerate().filter(|(_, t)| t.tool == tool).collect();
        let first = of_tool.first().map_or(0, |(i, _)| *i);
        let Some((index, rung)) = of_tool.iter().rev().find(|(_, t)| t.false_verdicts == 0 && t.survived).map(|(i, t)| (*i - first, *t)) else {
            tracing::warn!(tool, "no setting passed (zero false verdicts, both daemons alive): no detection run");
            errors.push(format!("{tool}: no setting passed"));
            continue;
        };
        tracing::info!(tool, setting = %rung.setting, rounds = opts.rounds, "detection at the fastest passing setting, under the same loss");
        let busy = Busy::start(opts.busy, Duration::from_secs(30 * 60));
        match detection(&opts.prefix, tool, index, &opts) {
            Ok(d) => detections.push(d),
            Err(e) => {
                sys::check_interrupted()?;
                tracing::error!(tool, error = %e, "detection run failed");
                errors.push(format!("{tool}: {e}"));
            }
        }
        drop(busy);
    }
    Ok(Record::Ladder(Box::new(Ladder {
        duration_s,
        loss_percent: opts.loss.clone(),
        busy_core: opts.busy,
        rounds: opts.rounds,
        load_before,
        load_after,
        load_max_1min: load_max,
        rungs: table,
        detections,
        errors,
    })))
}
