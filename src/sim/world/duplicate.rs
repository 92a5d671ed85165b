//! A second daemon claiming a node (`action = "duplicate"`): an operator started `failoverd run --node mds1`
//! on another host, or with another state_dir. The duplicate is a real [`Engine`] with the node's name and a
//! higher incarnation (a fresh state_dir starts from the wall clock), on a host of its own in the world
//! (`<node>~dup`): it heartbeats on every link and hears everybody, but its commands never come back (it
//! owns no storage and no power), so it never finishes its discovery. `on = false` kills it.

use super::{Host, World};
use crate::engine::Engine;

/// The world's name of the host that runs the duplicate of `node`.
pub(super) fn host_of(node: &str) -> String {
    format!("{node}~dup")
}

/// Is `host` a duplicate's host? Its commands are dropped.
pub(super) fn is_duplicate(host: &str) -> bool {
    host.ends_with("~dup")
}

/// The incarnation a duplicate starts with, above the real node's (a fresh state_dir reads the wall clock).
const DUPLICATE_INCARNATION: u64 = 1_000_000;

impl World {
    /// Start (`on`) or kill the duplicate daemon of `node`.
    pub(super) fn duplicate(&mut self, node: &str, on: bool) {
        let host = host_of(node);
        if !on {
            if let Some(h) = self.hosts.get_mut(&host) {
                if h.engine.take().is_some() {
                    h.boot += 1;
                    h.tick_at = None;
                    self.trace(&host, "duplicate daemon killed");
                }
            }
            return;
        }
        let incarnation = self.hosts.get(node).map_or(0, |h| h.incarnation) + DUPLICATE_INCARNATION;
        // (one draw, as when the engine took a seed: every seed's schedule stays what it was)
        let _ = rand::Rng::random::<u64>(&mut self.rng);
        match Engine::new(self.cfg.clone(), node, incarnation, None, self.now) {
            Ok(mut e) => {
                e.set_faults(self.opts.faults);
                // a fresh host: nothing of an earlier run is left on it
                e.handle(self.now, crate::engine::Input::OrphansGone);
                let boot = self.hosts.get(&host).map_or(1, |h| h.boot + 1);
                self.hosts.insert(
                    host.clone(),
                    Host { engine: Some(e), boot, incarnation, ..Host::new(&host) },
                );
                self.trace(&host, &format!("duplicate daemon of {node} started (incarnation {incarnation})"));
                self.drain(&host);
            }
            Err(e) => self.violation(format!("{host}: duplicate engine did not start: {e}")),
        }
    }
}
