//! Detection latency of failoverd on real sockets: SIGKILL one of two daemons, time the survivor's
//! `peer_dead` log line, restart the victim, repeat.

use std::time::Duration;

use rand::Rng;

use super::cost;
use super::pair::{self, Pair, Placement, Timing};
use super::model::{Detection, Record, Summary};
use super::sys::{self, LogTail, Result};

/// What to run.
pub struct Options {
    pub placement: Placement,
    pub timing: Timing,
    /// `fast` or `default` (a label for the report).
    pub profile: String,
    pub rounds: usize,
    /// Idle window measured on n1 before the first kill (0: none).
    pub idle_window: Duration,
}

/// Run the rounds; the victim alternates between n1 and n2.
pub fn run(opts: Options) -> Result<Record> {
    let (heartbeat, dead_after) = opts.timing.values();
    let mut pair = Pair::new(opts.placement, opts.timing)?;
    let net = pair.net().to_string();
    pair.start(0)?;
    pair.start(1)?;
    pair.wait_converged(Duration::from_secs(30))?;
    let idle = if opts.idle_window.is_zero() {
        None
    } else {
        Some(cost::measure(opts.idle_window, || pair.pids(0))?)
    };

    let mut rng = rand::rng();
    let mut samples = Vec::new();
    let mut silence = Vec::new();
    let mut missed = 0;
    for round in 0..opts.rounds {
        let victim = round % 2;
        let survivor = 1 - victim;
        pair.wait_converged(Duration::from_secs(30))?;
        // a few heartbeats in steady state, and a random phase between the kill and the heartbeat clock
        sys::sleep(heartbeat * 2 + heartbeat.mul_f64(rng.random::<f64>()))?;
        let mut log = LogTail::at_end(&pair.log(survivor));
        let victim_name = pair.name(victim).to_string();
        let killed = sys::epoch_s(pair.crash(victim)?);
        let verdict = sys::wait_for(
            &format!("{} declares {victim_name} dead", pair.name(survivor)),
            dead_after + Duration::from_secs(10),
            Duration::from_millis(10),
            || {
                Ok(pair::events(&log.new_lines()?)
                    .into_iter()
                    .find(|e| e.name == "peer_dead" && e.detail["node"].as_str() == Some(victim_name.as_str())))
            },
        );
        match verdict {
            Ok(e) => {
                let ms = (e.at - killed) * 1000.0;
                let silent = e.detail["silent_ms"].as_f64();
                tracing::info!(round, victim = %victim_name, detect_ms = format!("{ms:.1}"), silent_ms = silent.unwrap_or(f64::NAN), "verdict");
                samples.push(ms);
                if let Some(s) = silent {
                    silence.push(s - dead_after.as_secs_f64() * 1000.0);
                }
            }
            Err(e) => {
                sys::check_interrupted()?;
                tracing::warn!(round, error = %e, "no verdict");
                missed += 1;
            }
        }
        if round + 1 < opts.rounds {
            pair.start(victim)?;
        }
    }

    let nominal_ms = dead_after.as_secs_f64() * 1000.0;
    let overshoot: Vec<f64> = samples.iter().map(|s| s - nominal_ms).collect();
    Ok(Record::Detection(Box::new(Detection {
        tool: "failoverd".into(),
        profile: opts.profile,
        settings: opts.timing.describe(),
        verdict: "survivor logs peer_dead".into(),
        nominal_ms,
        net,
        rounds: opts.rounds,
        missed,
        detect: Summary::of(&samples),
        overshoot: Summary::of(&overshoot),
        silence_overshoot: Summary::of(&silence),
        samples,
        idle,
        version: pair::version(),
    })))
}
