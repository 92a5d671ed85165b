//! Commands the engine asks its driver to run, and what came back.
//!
//! Everything failoverd does to the world — fencing through `ipmitool` or a `fence_*` agent, `zpool import`,
//! `mount -t lustre` — is a [`Command`]: plain data built by the pure modules `fence/` and `storage/`.
//! The daemon runs it as a real process; the simulator answers it in the real tools' formats. Both hand the
//! engine a [`CommandResult`], which the same pure code then judges.
#![deny(clippy::disallowed_methods, clippy::disallowed_types)] // the pure core: see clippy.toml

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One process to run: argv, optional stdin, environment and a hard timeout.
///
/// Secrets never appear in `argv`: they are named in `secrets` and resolved by the driver at run time
/// (read from a file, then put in the environment, on stdin, or in a private config file).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    pub argv: Vec<String>,
    pub stdin: Option<String>,
    pub env: BTreeMap<String, String>,
    pub secrets: Vec<SecretUse>,
    pub timeout: Duration,
}

impl Command {
    /// A command with no stdin, no extra environment and no secrets.
    pub fn new<I, S>(argv: I, timeout: Duration) -> Command
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Command {
            argv: argv.into_iter().map(Into::into).collect(),
            stdin: None,
            env: BTreeMap::new(),
            secrets: Vec::new(),
            timeout,
        }
    }

    pub fn with_stdin(mut self, stdin: impl Into<String>) -> Command {
        self.stdin = Some(stdin.into());
        self
    }

    pub fn with_env(mut self, key: impl Into<String>, value: impl Into<String>) -> Command {
        self.env.insert(key.into(), value.into());
        self
    }

    pub fn with_secret(mut self, secret: SecretUse) -> Command {
        self.secrets.push(secret);
        self
    }

    /// The program name (argv[0]), or "" for an empty argv.
    pub fn program(&self) -> &str {
        self.argv.first().map(String::as_str).unwrap_or("")
    }

    /// argv joined with spaces, for logs and traces (secrets are never in argv).
    pub fn display(&self) -> String {
        self.argv.join(" ")
    }
}

/// A secret the driver reads from `file` (trailing newline stripped) and hands to the process as `into` says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretUse {
    pub file: PathBuf,
    pub into: SecretInto,
}

/// Where a secret goes. None of these puts it on the command line, where `ps` would show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SecretInto {
    /// Set this environment variable (e.g. `IPMI_PASSWORD` for `ipmitool -E`).
    Env(String),
    /// Append the line `key=value` to stdin (ClusterLabs fence agents).
    StdinLine(String),
    /// Write a private directory holding `file_name` with `prefix` + secret + "\n" in it, and point the
    /// environment variable `env_var` at that directory (net-snmp: `SNMPCONFPATH` + `snmp.conf` +
    /// `defCommunity `).
    ConfDir { env_var: String, file_name: String, prefix: String },
}

/// How a command ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Exit {
    /// Exited with this status code.
    Code(i32),
    /// Killed by this signal (not by our timeout).
    Signal(i32),
    /// Ran past its timeout and was killed (with its whole process group). Never a success.
    TimedOut,
    /// Could not be started at all (program missing, not executable, secret file unreadable...).
    SpawnFailed(String),
}

/// What a finished command returned: the input every judge in `fence/` and `storage/` works from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandResult {
    pub exit: Exit,
    pub stdout: String,
    pub stderr: String,
    pub duration: Duration,
}

impl CommandResult {
    /// A result that exited with `code`.
    pub fn exited(code: i32, stdout: impl Into<String>, stderr: impl Into<String>) -> CommandResult {
        CommandResult { exit: Exit::Code(code), stdout: stdout.into(), stderr: stderr.into(), duration: Duration::ZERO }
    }

    /// A result that hit its timeout.
    pub fn timed_out() -> CommandResult {
        CommandResult { exit: Exit::TimedOut, stdout: String::new(), stderr: String::new(), duration: Duration::ZERO }
    }

    /// True when the process exited with status 0.
    pub fn success(&self) -> bool {
        self.exit == Exit::Code(0)
    }

    /// The exit code, if the process exited normally.
    pub fn code(&self) -> Option<i32> {
        match self.exit {
            Exit::Code(c) => Some(c),
            _ => None,
        }
    }

    /// A one-line description for errors and logs: exit status and the first line of stderr (or stdout).
    pub fn summary(&self) -> String {
        let status = match &self.exit {
            Exit::Code(c) => format!("exit {c}"),
            Exit::Signal(s) => format!("killed by signal {s}"),
            Exit::TimedOut => "timed out".to_string(),
            Exit::SpawnFailed(why) => format!("could not start: {why}"),
        };
        let first = self
            .stderr
            .lines()
            .chain(self.stdout.lines())
            .map(str::trim)
            .find(|l| !l.is_empty());
        match first {
            Some(line) => format!("{status}: {line}"),
            None => status,
        }
    }
}
