//! Simulated heartbeat links: per-link loss, extra delay, jitter and partitions (directed cuts).

use std::collections::BTreeSet;
use std::time::Duration;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// One heartbeat network.
#[derive(Clone, Debug, Default)]
pub struct Link {
    pub loss: f64,
    pub extra_delay: Duration,
    /// (from, to) pairs that cannot talk on this link.
    pub cuts: BTreeSet<(String, String)>,
}

/// All links, plus the witness's reachability.
#[derive(Clone, Debug)]
pub struct Network {
    pub links: Vec<Link>,
    pub base_delay: Duration,
    pub jitter: Duration,
    /// Nodes cut from the witness.
    pub witness_cut: BTreeSet<String>,
}

impl Network {
    pub fn new(links: usize, base_delay: Duration, jitter: Duration) -> Network {
        Network { links: vec![Link::default(); links], base_delay, jitter, witness_cut: BTreeSet::new() }
    }

    /// When a datagram sent now from `from` to `to` on `link` arrives, or None if it is lost.
    /// Always draws the same number of random values, so one lost datagram does not shift the rest.
    pub fn transit(&self, rng: &mut ChaCha8Rng, link: usize, from: &str, to: &str) -> Option<Duration> {
        let roll: f64 = rng.random();
        let jitter_us = if self.jitter.is_zero() { 0 } else { rng.random_range(0..=self.jitter.as_micros() as u64) };
        let l = self.links.get(link)?;
        if l.cuts.contains(&(from.to_string(), to.to_string())) || roll < l.loss {
            return None;
        }
        Some(self.base_delay + l.extra_delay + Duration::from_micros(jitter_us))
    }

    /// One-way loss: `to` no longer receives what `from` sends (on `link` or all links); `from` still hears `to`.
    pub fn cut_one_way(&mut self, from: &str, to: &str, link: Option<usize>) {
        for (li, l) in self.links.iter_mut().enumerate() {
            if link.is_none_or(|k| k == li) {
                l.cuts.insert((from.to_string(), to.to_string()));
            }
        }
    }

    /// Cut every node of each group from every node of the other groups, on `link` or all links.
    pub fn partition(&mut self, groups: &[Vec<String>], link: Option<usize>) {
        for (i, a) in groups.iter().enumerate() {
            for (j, b) in groups.iter().enumerate() {
                if i == j {
                    continue;
                }
                for x in a {
                    for y in b {
                        for (li, l) in self.links.iter_mut().enumerate() {
                            if link.is_none_or(|k| k == li) {
                                l.cuts.insert((x.clone(), y.clone()));
                            }
                        }
                    }
                }
            }
        }
    }

    pub fn heal(&mut self, link: Option<usize>) {
        for (li, l) in self.links.iter_mut().enumerate() {
            if link.is_none_or(|k| k == li) {
                l.cuts.clear();
            }
        }
        if link.is_none() {
            self.witness_cut.clear();
        }
    }

    /// Can `a` reach `b` on at least one link (ignoring random loss)?
    pub fn connected(&self, a: &str, b: &str) -> bool {
        self.links.iter().any(|l| !l.cuts.contains(&(a.to_string(), b.to_string())) && l.loss < 1.0)
    }
}
