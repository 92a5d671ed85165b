//! The production driver: the pure [`Engine`](crate::engine::Engine) wrapped in real sockets, real
//! processes, a real clock and a control socket.
//!
//! One tokio loop (see [`daemon`]) waits for the earliest of: a datagram on any heartbeat link ([`net`]), a
//! finished command ([`exec`]), an operator's request ([`control`]), the engine's next deadline ([`clock`]) or
//! a signal; it feeds that to the engine as one `Input` and carries out every `Output`: datagrams, commands,
//! journal writes ([`state`]), events (logs and the `notify` program) and admin replies.
//!
//! Nothing in here decides anything about the cluster: every decision is the engine's. What lives here is the
//! I/O the engine must not do, done carefully: atomic state writes, process groups killed on timeout, secrets
//! kept off command lines, hostile datagrams dropped without a fuss.

pub mod cli;
pub mod clock;
pub mod control;
pub mod daemon;
pub mod disk_heartbeat;
pub mod doctor;
pub mod exec;
pub mod fence_probe;
pub mod follow;
pub mod logging;
pub mod metrics;
pub mod net;
pub mod orphans;
pub mod state;
pub mod witness_server;

/// An error of the runtime: a plain, complete sentence for the operator, naming the config key, file or
/// command that failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RuntimeError(pub String);

impl RuntimeError {
    /// An error from anything printable.
    pub fn new(msg: impl Into<String>) -> RuntimeError {
        RuntimeError(msg.into())
    }
}

/// Result of runtime operations.
pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;
