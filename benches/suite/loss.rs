//! False failovers: two failoverd nodes in namespaces at the default timings, with random loss on both
//! links (nftables `numgen random` drop rules on each node's input, so both directions lose), for a fixed
//! time. Every `peer_dead` is a false failover.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::pair::{self, Pair, Placement, Timing};
use super::lab::Lab;
use super::model::{Loss, Record};
use super::sys::{self, LogTail, Result};

const TABLE: &str = "failoverd_bench_loss";

/// The ruleset: per link, one counter of failoverd datagrams seen and one rule dropping `percent` of them.
fn ruleset(loss: &[u32]) -> String {
    loss_ruleset(TABLE, "udp dport 7405", loss)
}

/// An nftables table `table` that, per link `l<i>`, counts the input packets matching `matching`
/// (`l<i>_seen`) and drops `loss[i]` percent of them at random (`l<i>_dropped`).
pub fn loss_ruleset(table: &str, matching: &str, loss: &[u32]) -> String {
    let mut counters = String::new();
    let mut rules = String::new();
    for (l, pct) in loss.iter().enumerate() {
        counters.push_str(&format!("  counter l{l}_seen {{ }}\n  counter l{l}_dropped {{ }}\n"));
        rules.push_str(&format!(
            "    iifname \"l{l}\" {matching} counter name \"l{l}_seen\"\n    \
             iifname \"l{l}\" {matching} numgen random mod 100 < {pct} counter name \"l{l}_dropped\" drop\n"
        ));
    }
    format!(
        "table inet {table} {{\n{counters}  chain input {{\n    type filter hook input priority 0; policy accept;\n{rules}  }}\n}}\n"
    )
}

/// Packets seen and dropped per link by the table `table` of [`loss_ruleset`], summed over both nodes of a lab.
pub fn link_counters(lab: &Lab, table: &str, links: usize) -> Result<(Vec<u64>, Vec<u64>)> {
    let mut seen = vec![0u64; links];
    let mut dropped = vec![0u64; links];
    for n in 0..2 {
        let listing = lab.nft_json(n, &["list", "counters", "table", "inet", table])?;
        for l in 0..links {
            seen[l] += counter(&listing, &format!("l{l}_seen"));
            dropped[l] += counter(&listing, &format!("l{l}_dropped"));
        }
    }
    Ok((seen, dropped))
}

/// Packets counted by a named counter of the loss table.
pub fn counter(listing: &Value, name: &str) -> u64 {
    listing["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|o| (o["counter"]["name"].as_str() == Some(name)).then(|| o["counter"]["packets"].as_u64()).flatten())
        .unwrap_or(0)
}

/// The longest silences seen so far, from `status` polls (`last_heard_ms` of the peer on each link).
#[derive(Default)]
struct Silences {
    /// Per link: the longest time since a heartbeat was last heard on it (ms).
    per_link: Vec<u64>,
    /// The longest time in which every link was silent at once (ms): what `dead_after` is compared with.
    all_links: u64,
}

impl Silences {
    fn observe(&mut self, status: &Value) {
        for peer in status["peers"].as_array().into_iter().flatten() {
            let heard: Vec<Option<u64>> =
                peer["links"].as_array().into_iter().flatten().map(|l| l["last_heard_ms"].as_u64()).collect();
            if self.per_link.len() < heard.len() {
                self.per_link.resize(heard.len(), 0);
            }
            for (l, h) in heard.iter().enumerate() {
                if let Some(ms) = h {
                    self.per_link[l] = self.per_link[l].max(*ms);
                }
            }
            if let Some(all) = heard.iter().map(|h| h.unwrap_or(u64::MAX)).min().filter(|&m| m != u64::MAX) {
                self.all_links = self.all_links.max(all);
            }
        }
    }
}

/// How often the loss run reads both nodes' status to find the longest silences.
const POLL: Duration = Duration::from_millis(50);

/// Run the pair for `duration` under `loss` (percent per link).
pub fn run(lab: Lab, loss: Vec<u32>, duration: Duration) -> Result<Record> {
    let timing = Timing::Defaults;
    let mut pair = Pair::new(Placement::Lab(lab), timing)?;
    pair.start(0)?;
    pair.start(1)?;
    pair.wait_converged(Duration::from_secs(30))?;
    let mut logs = [LogTail::at_end(&pair.log(0)), LogTail::at_end(&pair.log(1))];
    let lab = pair.lab().ok_or("the loss run needs namespaces")?;
    for n in 0..2 {
        lab.nft(n, &ruleset(&loss))?;
    }
    tracing::info!(duration_s = duration.as_secs(), ?loss, "loss rules in place on both nodes; running");
    let start = Instant::now();
    let mut peer_dead = 0;
    let mut link_down = 0;
    let mut link_up = 0;
    let mut local_stall = 0;
    let mut last_report = Instant::now();
    let mut last_logs = Instant::now();
    let mut silences = Silences::default();
    while start.elapsed() < duration {
        sys::sleep(POLL.min(duration.saturating_sub(start.elapsed())))?;
        for n in 0..2 {
            // a status that cannot be read now (the daemon busy) is simply a missed sample
            if let Ok(s) = pair.status(n) {
                silences.observe(&s);
            }
        }
        if last_logs.elapsed() < Duration::from_secs(1) && start.elapsed() < duration {
            continue;
        }
        last_logs = Instant::now();
        for log in &mut logs {
            for e in pair::events(&log.new_lines()?) {
                match e.name.as_str() {
                    "peer_dead" => {
                        tracing::warn!(detail = %e.detail, "FALSE FAILOVER: peer_dead under loss");
                        peer_dead += 1;
                    }
                    "link_down" => link_down += 1,
                    "link_up" => link_up += 1,
                    "local_stall" => local_stall += 1,
                    _ => {}
                }
            }
        }
        if !pair.running(0) || !pair.running(1) {
            return Err(format!("a failoverd node died during the loss run; logs:\n{}\n{}", pair::tail(&pair.log(0)), pair::tail(&pair.log(1))));
        }
        if last_report.elapsed() >= Duration::from_secs(60) {
            last_report = Instant::now();
            tracing::info!(elapsed_s = start.elapsed().as_secs(), peer_dead, link_down, "loss run in progress");
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let (seen, dropped) = link_counters(lab, TABLE, loss.len())?;
    if seen.contains(&0) {
        return Err(format!("the loss rules saw no heartbeat on some link (seen per link: {seen:?}): the rules do not match the traffic"));
    }
    let observed: Vec<f64> = seen.iter().zip(&dropped).map(|(&s, &d)| 100.0 * d as f64 / s as f64).collect();
    let survived = pair.running(0) && pair.running(1);
    tracing::info!(peer_dead, link_down, link_up, ?observed, max_silence_ms = ?silences.per_link, all_links_ms = silences.all_links, "loss run done");
    Ok(Record::Loss(Loss {
        duration_s: elapsed,
        settings: timing.describe(),
        loss_percent: loss,
        observed_percent: observed,
        datagrams: seen,
        peer_dead,
        link_down,
        link_up,
        local_stall,
        max_silence_ms: silences.per_link,
        max_all_links_silence_ms: silences.all_links,
        dead_after_ms: timing.values().1.as_millis() as u64,
        daemons_survived: survived,
    }))
}
