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

/// An error of the runtime, by what failed, each with a plain, complete sentence for the operator that names
/// the config key, file, argument or command involved (the text is the same whatever the kind: `{0}`).
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The configuration, a file it names (key, secret) or a setting cannot be used here.
    #[error("{0}")]
    Config(String),
    /// A command-line argument is wrong, or the command needs something the invocation lacks (a terminal).
    #[error("{0}")]
    Usage(String),
    /// A resource of this host failed: the state directory, a socket, a thread, a signal handler.
    #[error("{0}")]
    Io(String),
    /// The running daemon cannot be reached, does not answer in time, or answers something unreadable.
    #[error("{0}")]
    Daemon(String),
    /// The daemon refused the request, or the operation it started failed or did not finish in time.
    #[error("{0}")]
    Refused(String),
    /// The daemon stops without finishing what it was doing (a second stop signal while leaving).
    #[error("{0}")]
    Stopped(String),
}

impl RuntimeError {
    /// [`RuntimeError::Config`].
    pub fn config(msg: impl Into<String>) -> RuntimeError {
        RuntimeError::Config(msg.into())
    }

    /// [`RuntimeError::Usage`].
    pub fn usage(msg: impl Into<String>) -> RuntimeError {
        RuntimeError::Usage(msg.into())
    }

    /// [`RuntimeError::Io`].
    pub fn io(msg: impl Into<String>) -> RuntimeError {
        RuntimeError::Io(msg.into())
    }

    /// [`RuntimeError::Daemon`].
    pub fn daemon(msg: impl Into<String>) -> RuntimeError {
        RuntimeError::Daemon(msg.into())
    }

    /// [`RuntimeError::Refused`].
    pub fn refused(msg: impl Into<String>) -> RuntimeError {
        RuntimeError::Refused(msg.into())
    }

    /// [`RuntimeError::Stopped`].
    pub fn stopped(msg: impl Into<String>) -> RuntimeError {
        RuntimeError::Stopped(msg.into())
    }

    /// The kind in one word, for logs: `config`, `usage`, `io`, `daemon`, `refused`, `stopped`.
    pub fn kind(&self) -> &'static str {
        match self {
            RuntimeError::Config(_) => "config",
            RuntimeError::Usage(_) => "usage",
            RuntimeError::Io(_) => "io",
            RuntimeError::Daemon(_) => "daemon",
            RuntimeError::Refused(_) => "refused",
            RuntimeError::Stopped(_) => "stopped",
        }
    }
}

/// Result of runtime operations.
pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;
