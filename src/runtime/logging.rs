//! Log setup: `tracing` events to stderr (human or JSON lines) or to journald.
//!
//! The level filter is `RUST_LOG`-style (`RUST_LOG=debug`, `RUST_LOG=failoverd::runtime::net=debug,info`);
//! the default is `info`. Formats:
//!
//! - `human`: one readable line per event, with its fields as `key=value`.
//! - `json`: one JSON object per line: `timestamp`, `level`, `fields` (with `message` and every structured
//!   field, e.g. `node`, `event`, `detail`), `target`.
//! - journald: chosen when no format is given and the process's stderr *is* the journal (systemd sets
//!   `JOURNAL_STREAM` to the device:inode of the stream; it is checked against stderr, so a shell started from
//!   a service does not log to the journal by accident). Fields become journal fields (`NODE`, `EVENT`...),
//!   levels become priorities. If the journal socket cannot be opened, human lines on stderr are used.

use std::io::IsTerminal;
use std::os::fd::AsFd;

use tracing_subscriber::filter::{EnvFilter, LevelFilter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Readable lines on stderr.
    Human,
    /// One JSON object per line on stderr.
    Json,
}

/// Whether stderr is connected to the systemd journal (`JOURNAL_STREAM` names its device and inode).
fn stderr_is_journal() -> bool {
    let Ok(v) = std::env::var("JOURNAL_STREAM") else { return false };
    let Some((dev, ino)) = v.split_once(':') else { return false };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else { return false };
    // dev_t and ino_t are not u64 on every target
    #[allow(clippy::unnecessary_cast)]
    match nix::sys::stat::fstat(std::io::stderr().as_fd()) {
        Ok(st) => st.st_dev as u64 == dev && st.st_ino as u64 == ino,
        Err(_) => false,
    }
}

/// Install the global subscriber. `format: None` means journald when stderr is the journal, human otherwise.
/// Calling it twice is harmless (the second call changes nothing).
pub fn init(format: Option<LogFormat>) {
    let ansi = std::io::stderr().is_terminal();
    let human = || tracing_subscriber::fmt::layer().with_ansi(ansi).with_writer(std::io::stderr);
    let filter = || EnvFilter::builder().with_default_directive(LevelFilter::INFO.into()).from_env_lossy();
    let registry = tracing_subscriber::registry().with(filter());
    let result = match format {
        Some(LogFormat::Json) => registry
            .with(tracing_subscriber::fmt::layer().json().with_current_span(false).with_span_list(false).with_writer(std::io::stderr))
            .try_init(),
        Some(LogFormat::Human) => registry.with(human()).try_init(),
        None if stderr_is_journal() => match tracing_journald::layer() {
            Ok(layer) => registry.with(layer.with_syslog_identifier("failoverd".into())).try_init(),
            Err(e) => {
                let r = registry.with(human()).try_init();
                tracing::warn!(error = %e, "cannot reach journald; logging to stderr");
                r
            }
        },
        None => registry.with(human()).try_init(),
    };
    // already initialised (tests, or a second call): keep the first subscriber
    let _ = result;
}
