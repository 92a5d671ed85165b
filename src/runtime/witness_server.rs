//! `failoverd witness`: the third-party vote for two-node clusters, as a small UDP server.
//!
//! One socket serves any number of clusters, each known by its name and its key (as corosync-qnetd does), so
//! a site with fifty server pairs runs one witness.
//!
//! The receive pipeline (framing, keys, replay window, the vote, the signed reply) is the pure
//! [`WitnessServer`] of src/witness.rs, which the simulator runs too; this module is the socket around it,
//! the rate-limited logging of drops, and the command line. Every change of a cluster's vote holder is logged
//! with `cluster` and `node` fields.
//!
//! The witness keeps no state on disk: after a restart the first node to ask holds each cluster's vote.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::net::UdpSocket;
use tokio::signal::unix::{signal, SignalKind};

use crate::config::{defaults, load_key};
use crate::protocol::Keys;
pub use crate::witness::{Answer, Dropped, WitnessCounters, WitnessServer, MAX_NODES_PER_CLUSTER, SENDER};

use super::clock::Clock;
use super::logging::LogFormat;
use super::net::{bind_udp, RateLimit, RECV_BUFFER};
use super::{Result, RuntimeError};

/// `failoverd witness`.
#[derive(clap::Args, Debug)]
pub struct WitnessArgs {
    /// UDP address to listen on, e.g. 10.0.0.9:7406 (the `[witness] address` of the clusters' configs).
    #[arg(long, value_name = "ADDR")]
    pub listen: SocketAddr,
    /// A cluster to serve: its `cluster.name` and the path of its `cluster.key_file`. Repeat for each cluster;
    /// give a name twice (key, then next key) during a key roll.
    #[arg(long = "cluster", value_name = "NAME=KEYFILE")]
    pub clusters: Vec<String>,
    /// A file of `NAME=KEYFILE` lines (blank lines and `#` comments ignored), for sites with many clusters.
    #[arg(long, value_name = "FILE")]
    pub cluster_file: Option<PathBuf>,
    /// How long a node keeps the vote after its last query; use the clusters' `dead_after`.
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = humantime::parse_duration)]
    pub lease: Duration,
    /// Log format on stderr (default: journald when stderr is the journal, human otherwise).
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
}

/// One `NAME=KEYFILE` argument (from `--cluster` or a line of `--cluster-file`; `origin` says which, for
/// errors).
fn parse_cluster_arg(arg: &str, origin: &str) -> Result<(String, PathBuf)> {
    let Some((name, path)) = arg.split_once('=') else {
        return Err(RuntimeError::new(format!("{origin}: {arg:?} is not NAME=KEYFILE")));
    };
    let (name, path) = (name.trim(), path.trim());
    let valid = !name.is_empty()
        && name.len() <= defaults::MAX_NAME_LEN
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !valid {
        return Err(RuntimeError::new(format!(
            "{origin}: cluster name {name:?} is not a valid cluster.name ([A-Za-z0-9_.-], 1 to {} characters)",
            defaults::MAX_NAME_LEN
        )));
    }
    if !Path::new(path).is_absolute() {
        return Err(RuntimeError::new(format!("{origin}: key file {path:?} of cluster {name} must be an absolute path")));
    }
    Ok((name.to_string(), PathBuf::from(path)))
}

/// Read every cluster's keys: from `--cluster` arguments, then from `--cluster-file`. A name given twice
/// gets its second key as the next key (key roll); a third time is an error.
pub fn load_clusters(args: &[String], file: Option<&Path>) -> Result<BTreeMap<String, Keys>> {
    let mut entries: Vec<(String, PathBuf, String)> = Vec::new();
    for (i, a) in args.iter().enumerate() {
        let origin = format!("--cluster #{}", i + 1);
        let (name, path) = parse_cluster_arg(a, &origin)?;
        entries.push((name, path, origin));
    }
    if let Some(file) = file {
        let text = std::fs::read_to_string(file)
            .map_err(|e| RuntimeError::new(format!("--cluster-file {}: cannot read: {e}", file.display())))?;
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let origin = format!("{}:{}", file.display(), i + 1);
            let (name, path) = parse_cluster_arg(line, &origin)?;
            entries.push((name, path, origin));
        }
    }
    if entries.is_empty() {
        return Err(RuntimeError::new("no cluster to serve: give --cluster NAME=KEYFILE (or --cluster-file FILE)"));
    }
    let mut clusters: BTreeMap<String, Keys> = BTreeMap::new();
    for (name, path, origin) in entries {
        let key = load_key(&path).map_err(|e| RuntimeError::new(format!("{origin} (cluster {name}): {e}")))?;
        match clusters.get_mut(&name) {
            None => {
                clusters.insert(name, Keys::new(key, None));
            }
            Some(keys) if keys.next().is_none() => keys.set_next(key),
            Some(_) => {
                return Err(RuntimeError::new(format!(
                    "{origin}: cluster {name} is given a third time (at most a key and a next key)"
                )))
            }
        }
    }
    Ok(clusters)
}

/// `failoverd witness --listen ADDR --cluster NAME=KEYFILE [...]`: serve until SIGTERM or SIGINT.
pub fn run(args: WitnessArgs) -> ExitCode {
    super::logging::init(args.log_format);
    let result = (|| {
        if args.lease.is_zero() {
            return Err(RuntimeError::new("--lease must be longer than 0"));
        }
        let clusters = load_clusters(&args.clusters, args.cluster_file.as_deref())?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| RuntimeError::new(format!("cannot start the event loop: {e}")))?;
        runtime.block_on(async {
            let (socket, _) =
                bind_udp(args.listen).map_err(|e| RuntimeError::new(format!("--listen {}: cannot bind UDP: {e}", args.listen)))?;
            let incarnation = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(1);
            let server = WitnessServer::new(clusters, args.lease, incarnation);
            serve(socket, server).await
        })
    })();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("failoverd witness stopped: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Serve `server` on `socket` until SIGTERM or SIGINT.
pub async fn serve(socket: UdpSocket, mut server: WitnessServer) -> Result<()> {
    let signal_err = |e: std::io::Error| RuntimeError::new(format!("cannot install signal handlers: {e}"));
    let mut sigterm = signal(SignalKind::terminate()).map_err(signal_err)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(signal_err)?;
    let local = socket.local_addr().map_err(|e| RuntimeError::new(format!("cannot read the socket's address: {e}")))?;
    let names: Vec<&str> = server.clusters().collect();
    tracing::info!(listen = %local, clusters = %names.join(","), count = names.len(),
        version = env!("CARGO_PKG_VERSION"), "failoverd witness started");

    let clock = Clock::start();
    let mut buf = vec![0u8; RECV_BUFFER];
    let mut summary = RateLimit::new();
    let mut dropped_at_summary = 0u64;
    let mut send_failed = 0u64;
    loop {
        let (len, from) = tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok(r) => r,
                Err(e) => {
                    // ICMP errors from an earlier reply surface here on Linux: not fatal, never spin
                    tracing::debug!(error = %e, "receive error on the witness socket");
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                }
            },
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
        };
        match server.handle(clock.now(), &buf[..len]) {
            Ok(answer) => {
                if let Some(previous) = &answer.holder_changed {
                    tracing::info!(cluster = %answer.cluster, node = answer.reply.holder.as_deref().unwrap_or(""),
                        previous = previous.as_deref().unwrap_or("none"), asked_by = %answer.node,
                        "witness vote holder changed");
                }
                tracing::debug!(cluster = %answer.cluster, node = %answer.node, %from, granted = answer.reply.granted,
                    "answered witness query");
                if let Err(e) = socket.try_send_to(&answer.bytes, from) {
                    send_failed += 1;
                    tracing::warn!(cluster = %answer.cluster, node = %answer.node, %from, error = %e, send_failed,
                        "cannot send the witness reply");
                }
            }
            Err(why) => {
                tracing::debug!(%from, len, reason = why.kind(), detail = %why, "dropped datagram");
                if summary.ready().is_some() {
                    let total = server.counters().dropped_total();
                    tracing::warn!(last_from = %from, last_reason = why.kind(), last_detail = %why,
                        dropped_since_last_report = total - dropped_at_summary,
                        "dropping datagrams without reply (unknown cluster, wrong key, replay, or an attack)");
                    dropped_at_summary = total;
                }
            }
        }
    }
    let c = server.counters();
    tracing::info!(answered = c.answered, dropped = c.dropped_total(), send_failed, "failoverd witness stopping");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_arguments_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("a.key");
        let next = dir.path().join("a-next.key");
        std::fs::write(&key, "k".repeat(40)).unwrap();
        std::fs::write(&next, "n".repeat(40)).unwrap();
        let arg = |name: &str, p: &Path| format!("{name}={}", p.display());

        let c = load_clusters(&[arg("a", &key), arg("a", &next)], None).unwrap();
        assert_eq!(c["a"].active(), b"k".repeat(40));
        assert_eq!(c["a"].next(), Some(&b"n".repeat(40)[..]));

        let err = |args: &[String]| load_clusters(args, None).unwrap_err().to_string();
        assert!(err(&[]).contains("no cluster to serve"));
        assert!(err(&["a".into()]).contains("is not NAME=KEYFILE"));
        assert!(err(&["a=relative.key".into()]).contains("absolute"));
        assert!(err(&[arg("bad name", &key)]).contains("not a valid cluster.name"));
        assert!(err(&[arg("a", &dir.path().join("missing"))]).contains("--cluster #1 (cluster a)"));
        assert!(err(&[arg("a", &key), arg("a", &key), arg("a", &next)]).contains("third time"));

        let file = dir.path().join("clusters");
        std::fs::write(&file, format!("# site witness\n\n{}\nb = {}\n", arg("a", &key), next.display())).unwrap();
        let c = load_clusters(&[], Some(&file)).unwrap();
        assert_eq!(c.keys().collect::<Vec<_>>(), ["a", "b"]);
        std::fs::write(&file, "b\n").unwrap();
        assert!(load_clusters(&[], Some(&file)).unwrap_err().to_string().contains(":1: \"b\" is not NAME=KEYFILE"));
    }
}
