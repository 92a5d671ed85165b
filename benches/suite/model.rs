//! The figures each benchmark writes (one JSON file per benchmark run) and the report reads back.

use serde::{Deserialize, Serialize};

/// Order statistics of one set of samples (milliseconds). Percentiles are nearest-rank: with fewer than
/// 100 samples p99 is the maximum.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Summary {
    pub n: usize,
    pub min: f64,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Summary {
    /// Summarize `samples` (any order); `None` when there are none.
    pub fn of(samples: &[f64]) -> Option<Summary> {
        if samples.is_empty() {
            return None;
        }
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        let rank = |p: f64| s[((p * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1];
        Some(Summary {
            n: s.len(),
            min: s[0],
            p50: rank(0.50),
            p99: rank(0.99),
            max: s[s.len() - 1],
            mean: s.iter().sum::<f64>() / s.len() as f64,
        })
    }
}

/// What one daemon (all its processes) cost while idle over a window.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Cost {
    /// Length of the CPU measurement window (s).
    pub window_s: f64,
    /// Processes measured (keepalived runs two).
    pub processes: usize,
    /// VmRSS at the end of the window, summed over the processes (KiB).
    pub rss_kib: u64,
    /// VmHWM at the end of the window, summed over the processes (KiB).
    pub hwm_kib: u64,
    /// utime + stime over the window, as a percentage of one core (tick resolution: 10 ms).
    pub cpu_percent: f64,
    /// Scheduler run time over the window (schedstat, ns resolution), as a percentage of one core.
    #[serde(default)]
    pub sched_percent: f64,
}

/// Kill-to-verdict latency of one tool at one setting.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Detection {
    /// `failoverd`, `keepalived` or `corosync`.
    pub tool: String,
    /// `fast` or `default`.
    pub profile: String,
    /// The settings, in the tool's own words (`heartbeat_interval 100ms, dead_after 500ms`).
    pub settings: String,
    /// What "declared dead" means for this tool.
    pub verdict: String,
    /// The tool's configured failure-detection bound (ms): dead_after; 3 x advert_int + skew; token +
    /// consensus.
    pub nominal_ms: f64,
    /// `loopback` or `netns`.
    pub net: String,
    pub rounds: usize,
    /// Rounds in which no verdict came within the time limit.
    pub missed: usize,
    /// SIGKILL to verdict (ms).
    pub detect: Option<Summary>,
    /// `detect - nominal` (ms); negative when the last message left the victim before the kill.
    pub overshoot: Option<Summary>,
    /// failoverd only: the survivor's own `silent_ms - dead_after` at the verdict (ms): its timer precision.
    pub silence_overshoot: Option<Summary>,
    /// The raw samples (ms), in round order.
    pub samples: Vec<f64>,
    /// One node of the pair while both run and nothing fails.
    pub idle: Option<Cost>,
    /// Version string of the tool.
    pub version: String,
}

/// The false-failover run: two daemons under random loss on both links.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Loss {
    pub duration_s: f64,
    pub settings: String,
    /// Configured drop percentage per link (in both directions).
    pub loss_percent: Vec<u32>,
    /// Observed drop percentage per link, from the nftables counters of both nodes.
    pub observed_percent: Vec<f64>,
    /// Heartbeats that reached the nodes' input hooks per link (both nodes).
    pub datagrams: Vec<u64>,
    /// `peer_dead` events in both logs: every one is a false failover.
    pub peer_dead: u64,
    pub link_down: u64,
    pub link_up: u64,
    pub local_stall: u64,
    /// Per link, the longest silence a node saw from its peer (status polled every 50 ms).
    pub max_silence_ms: Vec<u64>,
    /// The longest time every link was silent at once; a false failover needs it to reach dead_after.
    pub max_all_links_silence_ms: u64,
    pub dead_after_ms: u64,
    /// Both daemons were still running at the end.
    pub daemons_survived: bool,
}

/// One setting of one tool in the loss ladder.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LadderRung {
    /// `failoverd`, `keepalived` or `corosync`.
    pub tool: String,
    /// Short label (`10ms/80ms`, `advert_int 0.1s`, `token 500ms`).
    pub setting: String,
    /// The settings in the tool's own words.
    pub settings: String,
    /// The tool's configured detection bound (ms), as in [`Detection::nominal_ms`].
    pub nominal_ms: f64,
    /// failoverd: `peer_dead` in either log; keepalived: the BACKUP entering MASTER; corosync: a membership
    /// formed with `Members left:` on either node. Nothing was killed: every one is false.
    pub false_verdicts: u64,
    /// Both daemons were running until the end of the window.
    pub survived: bool,
    /// IPv4 packets that reached the nodes' input per link (both nodes).
    pub packets: Vec<u64>,
    /// Dropped / seen per link (%).
    pub observed_percent: Vec<f64>,
    /// Tool-specific counts (failoverd: link_down, local_stall).
    pub notes: String,
}

/// Detection under loss, side by side: every setting's false verdicts over one window, then detection at
/// each tool's fastest passing setting.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Ladder {
    pub duration_s: f64,
    /// Drop percentage per link (ring0, ring1), both directions.
    pub loss_percent: Vec<u32>,
    /// One core kept busy by a spin loop during the window and the detection runs.
    pub busy_core: bool,
    /// Kill rounds asked per detection run.
    pub rounds: usize,
    /// /proc/loadavg (1, 5, 15 min) before the pairs started and at the end of the window.
    pub load_before: Vec<f64>,
    pub load_after: Vec<f64>,
    /// The highest 1-minute load average sampled (every second) during the window.
    pub load_max_1min: f64,
    pub rungs: Vec<LadderRung>,
    /// One per tool that had a passing setting: at that setting, under the same loss.
    pub detections: Vec<Detection>,
    /// Tools without a passing setting, or whose detection run failed.
    pub errors: Vec<String>,
}

/// Scenario runs of the simulator.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SimSet {
    /// `scenarios` (every file in simulations/) or `swarm` (random clusters).
    pub set: String,
    pub files: usize,
    pub runs: u64,
    pub threads: usize,
    pub wall_s: f64,
    pub simulated_s: f64,
    pub runs_per_s: f64,
    pub sim_s_per_wall_s: f64,
    /// Runs with a safety violation or an unmet expectation.
    pub failed_runs: u64,
}

/// One benchmark's output file.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "bench", rename_all = "snake_case")]
pub enum Record {
    Detection(Box<Detection>),
    Loss(Loss),
    /// The idle daemon at 10 heartbeats/s on 2 links (issue #5 "cost").
    Cost { settings: String, net: String, cost: Cost },
    Sim { sets: Vec<SimSet> },
    /// Detection under loss, side by side (issue #14 item 4).
    Ladder(Box<Ladder>),
}

impl Record {
    /// Write this record as pretty JSON.
    pub fn write(&self, path: &std::path::Path) -> Result<(), String> {
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        std::fs::write(path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))
    }
}
